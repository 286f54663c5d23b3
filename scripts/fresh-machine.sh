#!/usr/bin/env bash
# A fresh machine in a root (make check-fresh, part of make check): proves
# that scripts/setup.sh installs every package the build uses, so a green
# make check means a new Debian 12 machine works too.
#
# 1. A clean Debian 12 root: debootstrap --variant=minbase bookworm, made
#    once and cached in $DIPC_CACHE/fresh/root-KEY (KEY: what made it); each
#    run works in a new copy of it, so nothing installed by an earlier run
#    is there.
# 2. In the copy, scripts/setup.sh runs from nothing. The only thing the
#    root is given is what the README asks of a machine before setup.sh:
#    the Rust toolchain installed with rustup (this machine's, mounted read
#    only), and this machine's local certificate authorities.
# 3. Then, in the root, every artefact that needs a compiler or a tool of
#    the machine: the test programs (x86-64, i386, arm64, MPI), dipcd (the
#    guests' static build), the fuzz target (libFuzzer is C++; a 5 s run), the module
#    for x86-64 and arm64 (with their kernels), the module under clippy,
#    the packaging checks and the initramfs images (test, arm64, bench).
#
# A failing step prints the end of its log and the packages that hold what
# it missed (looked up with dpkg -S on this machine, where make setup has
# installed them) and that the root lacks: the names to add to setup.sh.
#
# Caches (none is needed): the root; the .debs and crates downloaded; the
# build directory of setup.sh's cargo installs (compiled crates only); and,
# per version of setup.sh and versions.sh (what decides the root's tools),
# the root's $DIPC_CACHE (kernel source, the kernels built in the root). A
# change to either script builds the kernels in the root again, unless the
# root it made has every package the earlier one had (a package added
# cannot break what was built without it; one removed must be tried).
# Kernels the root built are lent to this machine's cache (hard links)
# when it has none of the same key, so a cold make check builds each
# kernel once.
#
#   scripts/fresh-machine.sh
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
# shellcheck source=scripts/versions.sh
. scripts/versions.sh
# shellcheck source=scripts/chroot.sh
. scripts/chroot.sh

FRESH_SUITE=bookworm
FRESH_MIRROR="http://deb.debian.org/debian"

log() { printf 'fresh: %s\n' "$*" >&2; }
die() { printf 'fresh: error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/setup.sh"

base="$DIPC_CACHE/fresh"
root_key="$(printf '%s\n' "$FRESH_SUITE" "$FRESH_MIRROR" minbase | sha256sum | cut -c1-16)"
pristine="$base/root-$root_key"
setup_key="$(cat scripts/setup.sh scripts/versions.sh | sha256sum | cut -c1-16)"
inner="$base/cache-$setup_key"
work="$base/work"
logs="$base/logs"

# The machine's Rust toolchain (rustup's), as the root gets it.
cargo_bin="$(command -v cargo)" || die "cargo not found (install Rust with rustup first)"
toolchain="$(dirname "$(dirname "$(rustup which cargo 2>/dev/null || readlink -f "$cargo_bin")")")"
[ -x "$toolchain/bin/rustc" ] || die "no rustc beside cargo in $toolchain"
# A distribution's cargo would lend the root this machine's /usr.
case "$toolchain" in /usr | /usr/local | /) die "cargo is not rustup's ($cargo_bin): the root needs a toolchain of its own" ;; esac

start=$(date +%s)
if [ ! -f "$pristine/.dipc-complete" ]; then
	log "making a Debian $FRESH_SUITE root in $pristine (debootstrap, a few minutes)"
	make_root "$FRESH_SUITE" "$FRESH_MIRROR" "$pristine" "$base/debootstrap.log" || die "no Debian $FRESH_SUITE root"
fi
rm -rf "$work" "$logs"
mkdir -p "$logs" "$inner" "$base/cargo-target" "$base/apt-archives/partial" "$base/cargo-home"
cp -a "$pristine" "$work"
cp /etc/resolv.conf "$work/etc/resolv.conf"
# This machine's own certificate authorities, if it has any (a network that
# inspects TLS): the ca-certificates package setup.sh installs takes them in.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
	mkdir -p "$work/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$work/usr/local/share/ca-certificates/"
fi
cat >"$work/etc/apt/sources.list" <<EOF
deb $FRESH_MIRROR $FRESH_SUITE main
deb $FRESH_MIRROR $FRESH_SUITE-updates main
deb $FRESH_MIRROR-security $FRESH_SUITE-security main
EOF
# The repository: a clone, with this tree's changes on top (tracked files,
# new ones not ignored, and files deleted here deleted there too).
git clone -q "$top" "$work/dipc"
git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -cf - -T - 2>/dev/null |
	tar -xf - -C "$work/dipc"
git ls-files -z -d | (cd "$work/dipc" && xargs -0 -r rm -f)
# Packages install as into a container: no daemon starts (redis-server's).
printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
chmod 755 "$work/usr/sbin/policy-rc.d"
log "root ready in $(($(date +%s) - start)) s"

ROOT_BINDS=(
	"$toolchain:$toolchain:ro"
	"$base/cargo-home:/root/.cargo"
	"$base/apt-archives:/var/cache/apt/archives"
	"$inner:/var/cache/dipc"
	"$base/cargo-target:/var/cache/dipc-cargo-target"
)
ROOT_PATH="$toolchain/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOT_ENV=(DIPC_CACHE=/var/cache/dipc)

# Packages that hold a file the log of a failed step says it missed, and
# that the root does not have.
suspects() { # LOG
	local what pkgs=() p
	while IFS= read -r what; do
		[ -n "$what" ] || continue
		while IFS= read -r p; do
			p="${p%%:*}"
			[ -n "$p" ] || continue
			case " ${pkgs[*]:-} " in *" $p "*) continue ;; esac
			in_root "$work" dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || pkgs+=("$p")
		done < <(dpkg -S "$what" 2>/dev/null | sed '/^diversion by /d; s/: .*//; s/, /\n/g')
	done < <(sed -nE \
		-e 's/.*fatal error: ([^:]+): No such file or directory.*/*\/\1/p' \
		-e 's/.*cannot find -l([A-Za-z0-9_+.-]+).*/*\/lib\1.[as]*/p' \
		-e 's/.*[: ]([A-Za-z0-9_.+-]+): (command )?not found.*/*bin\/\1/p' \
		-e 's/^make(\[[0-9]+\])?: ([A-Za-z0-9_.+-]+): No such file or directory.*/*bin\/\2/p' \
		-e 's/.*linker `([^`]+)` not found.*/*bin\/\1/p' \
		-e 's/.*Unable to find libclang.*/*\/libclang.so*/p' \
		"$1" | sort -u)
	printf '%s\n' "${pkgs[@]:-}"
}

# Runs one step in the root; on failure, says which packages it lacked.
step() { # NAME COMMAND...
	local name="$1" t
	shift
	t=$(date +%s)
	if ! in_root "$work" bash -c "cd /dipc && $*" >"$logs/$name.log" 2>&1; then
		tail -n 30 "$logs/$name.log" >&2
		local missing
		missing="$(suspects "$logs/$name.log" | xargs)"
		if [ -n "$missing" ]; then
			die "$name failed on a fresh machine: it needs $missing, which scripts/setup.sh does not install (log: $logs/$name.log)"
		fi
		die "$name failed on a fresh machine (log: $logs/$name.log)"
	fi
	log "$name: $(($(date +%s) - t)) s"
}

# setup.sh's cargo installs build in a cached directory (compiled crates
# only; the tools are installed into the root from nothing every time).
step setup "CARGO_TARGET_DIR=/var/cache/dipc-cargo-target scripts/setup.sh"
in_root "$work" dpkg-query -W -f='${Package}\n' | sort >"$inner/packages"
# The kernels of another version of setup.sh whose root had no package
# this one lacks still hold here.
for d in "$base"/cache-*; do
	[ "$d" != "$inner" ] && [ -d "$d" ] || continue
	if [ ! -d "$inner/kernel" ] && [ -d "$d/kernel" ] && [ -f "$d/packages" ] &&
		[ -z "$(comm -23 "$d/packages" "$inner/packages")" ]; then
		log "keeping the kernels built in $(basename "$d"): this root has every package that one had"
		mv "$d/kernel" "$inner/kernel"
	fi
done
step programs "make programs && make -C tests/programs arm64 mpi"
step dipcd "make dipcd"
step fuzz "scripts/fuzz.sh 5"
step module "make module"
step module-arm64 "make KFLAVOUR=arm64 module"
step clippy "make clippy-module"
step packaging "make check-packaging check-imports"
step initramfs "scripts/initramfs.sh build/initramfs.cpio.gz && scripts/initramfs.sh --arch arm64 --module build/module-arm64/dipc.ko build/initramfs-arm64.cpio.gz && scripts/initramfs.sh --bench build/initramfs-bench.cpio.gz"

# Lend the kernels the root built to this machine's cache.
if [ "$DIPC_CACHE" = /var/cache/dipc ]; then
	for k in "$inner"/kernel/*/; do
		k="${k%/}"
		[ -f "$k/.dipc-complete" ] || continue
		mine="$DIPC_CACHE/kernel/$(basename "$k")"
		[ ! -f "$mine/.dipc-complete" ] || continue
		log "lending the root's kernel $(basename "$k") to this machine"
		rm -rf "$mine" && mkdir -p "$(dirname "$mine")"
		cp -al "$k" "$mine"
	done
fi
# Caches of other versions of setup.sh go once this one passed (the
# kernels they lent stay).
for d in "$base"/cache-*; do
	[ "$d" = "$inner" ] || rm -rf "$d"
done
rm -rf "$work"
log "passed: setup.sh made a fresh Debian $FRESH_SUITE machine build everything, in $(($(date +%s) - start)) s"
