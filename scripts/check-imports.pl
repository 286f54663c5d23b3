#!/usr/bin/perl
# check-imports.pl [DIR]: fails if the module's files in DIR (default src/)
# import each other in a cycle. A file "imports" another when it names it
# as crate::NAME, in a `use crate::{...}` list or in a path (comments do not
# count). The crate root (dipc_main.rs) declares every module and is left
# out. Prints each file's imports with -v.
use strict;
use warnings;

my $verbose = grep { $_ eq '-v' } @ARGV;
my ($dir) = grep { $_ ne '-v' } @ARGV;
$dir //= 'src';

opendir(my $dh, $dir) or die "check-imports: cannot read $dir: $!\n";
my @mods = sort map { /^(\w+)\.rs$/ ? $1 : () } readdir $dh;
closedir $dh;
@mods = grep { $_ ne 'dipc_main' } @mods;
my %is_mod = map { $_ => 1 } @mods;

my %deps;
for my $m (@mods) {
	open(my $fh, '<', "$dir/$m.rs") or die "check-imports: $dir/$m.rs: $!\n";
	my $text = do { local $/; <$fh> };
	close $fh;
	$text =~ s{//[^\n]*}{}g;
	my %d;
	# use crate::{a, b::{..}, c::d}: the names at the list's top level.
	while ($text =~ /use\s+crate::\{/g) {
		my ($depth, $tok, $pos) = (1, '', pos($text));
		while ($depth > 0 && $pos < length $text) {
			my $ch = substr($text, $pos++, 1);
			if ($ch eq '{') { $depth++; }
			elsif ($ch eq '}') { $depth--; }
			if ($depth == 1 && $ch eq ',' || $depth == 0) {
				my ($name) = $tok =~ /^\s*(\w+)/;
				$d{$name} = 1 if defined $name && $is_mod{$name};
				$tok = '';
			} elsif ($depth >= 1) {
				$tok .= $ch if $depth == 1 && $ch ne '{';
				$tok .= $ch if $depth > 1;
			}
		}
	}
	while ($text =~ /crate::(\w+)/g) {
		$d{$1} = 1 if $is_mod{$1};
	}
	delete $d{$m};
	$deps{$m} = [sort keys %d];
}

if ($verbose) {
	print "$_ -> @{$deps{$_}}\n" for @mods;
}

# Depth-first search; a back edge closes a cycle.
my (%state, @stack, @cycles);
sub visit {
	my ($m) = @_;
	$state{$m} = 1;
	push @stack, $m;
	for my $n (@{$deps{$m}}) {
		if (!$state{$n}) {
			visit($n);
		} elsif ($state{$n} == 1) {
			my ($i) = grep { $stack[$_] eq $n } 0 .. $#stack;
			push @cycles, join(' -> ', @stack[$i .. $#stack], $n);
		}
	}
	pop @stack;
	$state{$m} = 2;
}
visit($_) for grep { !$state{$_} } @mods;

if (@cycles) {
	print STDERR "check-imports: $dir has import cycles:\n";
	print STDERR "  $_\n" for @cycles;
	exit 1;
}
printf "check-imports: %d files in %s, no import cycle\n", scalar @mods, $dir;
