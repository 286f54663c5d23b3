#!/usr/bin/env bash
# Makes a build tree for out-of-tree Rust modules against a distribution
# kernel whose headers package has no Rust metadata, and prints its path.
#
#   scripts/stock-kbuild.sh KERNELRELEASE [HEADERS]        prepare if needed; print the tree
#   scripts/stock-kbuild.sh --make-args KERNELRELEASE [HEADERS]
#                                                          print the make arguments a
#                                                          module build needs with it
#
# HEADERS defaults to /lib/modules/KERNELRELEASE/build. A tree that already
# holds the kernel crate's metadata (rust/libkernel.rmeta: a kernel you built
# yourself, the test kernel) is used as it is.
#
# Debian's linux-headers-* ship .config, Module.symvers and
# include/generated/rustc_cfg, but none of what rustc needs to compile a
# module: the metadata of the core, compiler_builtins, ffi, bindings, uapi,
# build_error, pin_init, zerocopy and kernel crates (rust/*.rmeta), the macros,
# pin_init_internal and zerocopy_derive proc-macro libraries (rust/*.so) and
# the generated target specification. This script rebuilds them with
# `make modules_prepare` from the same kernel's source package
# (linux-source-X.Y of the headers' exact version), with the headers' own
# .config and the compilers the kernel was built with. The names of the Rust
# symbols a module links against carry a hash of the crate name and of the
# compiler's version, so only the exact rustc (CONFIG_RUSTC_VERSION_TEXT)
# gives names that the running kernel exports; bindgen and gcc must match
# too (CONFIG_BINDGEN_VERSION_TEXT, CONFIG_CC_VERSION_TEXT) for the bindings
# and the configuration to be the kernel's. Each is checked, and after the
# build the Rust symbols the prepared crates export must be exactly the ones
# in the headers' Module.symvers, or the tree is refused.
#
# The tree lives in $DIPC_KBUILD/KERNELRELEASE (default /var/lib/dipc/kbuild),
# is rebuilt when anything that produced it changes, and takes about 2.1 GB
# (the unpacked source and the prepared output).
# DIPC_RUSTC and DIPC_BINDGEN name the compilers when they are not rustc and
# bindgen on PATH.
set -euo pipefail
self="$(realpath "${BASH_SOURCE[0]}")"
log() { printf 'stock-kbuild: %s\n' "$*" >&2; }
die() { printf 'stock-kbuild: error: %s\n' "$*" >&2; exit 1; }

mode=tree
if [ "${1:-}" = --make-args ]; then
	mode=args
	shift
fi
krel="${1:?usage: stock-kbuild.sh [--make-args] KERNELRELEASE [HEADERS]}"
hdr="${2:-/lib/modules/$krel/build}"
[ -f "$hdr/.config" ] || die "no headers for $krel in $hdr (Debian: apt install linux-headers-$krel)"
hdr="$(realpath "$hdr")"
rustc="${DIPC_RUSTC:-rustc}"
bindgen="${DIPC_BINDGEN:-bindgen}"

# A tree with the metadata already: nothing to prepare.
if [ -f "$hdr/rust/libkernel.rmeta" ]; then
	[ "$mode" = args ] || echo "$hdr"
	exit 0
fi

cfg() { sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$hdr/.config"; }
[ "$(cfg CONFIG_RUST)" = y ] || die "$krel is built without Rust (CONFIG_RUST is not set): dipc needs a Rust-enabled kernel"
cc_text="$(cfg CONFIG_CC_VERSION_TEXT)"
cc="${cc_text%% *}"
case "$cc_text" in
*clang*) die "$krel was built with clang ($cc_text): only gcc-built kernels are supported here" ;;
esac
if [ "$mode" = args ]; then
	echo "CC=$cc HOSTCC=$cc"
	exit 0
fi

# The compilers must be the kernel's own.
same() { # WHAT WANT HAVE HOW-TO-GET-IT
	[ "$2" = "$3" ] || die "$1: the kernel was built with '$2', this machine has '${3:-nothing}'. $4"
}
same rustc "$(cfg CONFIG_RUSTC_VERSION_TEXT)" "$("$rustc" --version 2>/dev/null || true)" \
	"The Rust symbol names a module links against depend on the compiler's version, so no other rustc can build a module this kernel loads (Debian: the rustc of the suite the kernel was built in; set DIPC_RUSTC to use another path)."
same bindgen "$(cfg CONFIG_BINDGEN_VERSION_TEXT)" "$("$bindgen" --version 2>/dev/null || true)" \
	"(Debian: apt install bindgen libclang-dev; set DIPC_BINDGEN to use another path.)"
same gcc "$cc_text" "$("$cc" --version 2>/dev/null | head -n 1 || true)" \
	"(Debian: apt install ${cc#*-linux-gnu-}.)"
sysroot="$("$rustc" --print sysroot)"
[ -d "$sysroot/lib/rustlib/src/rust/library/core" ] ||
	die "no Rust standard library source under $sysroot/lib/rustlib/src (Debian: apt install rust-src)"

# The kernel's source: the linux-source package of the headers' exact version.
command -v dpkg-query >/dev/null || die "finding the kernel source needs dpkg (Debian)"
hpkg="$(dpkg-query -S "$hdr/.config" 2>/dev/null | cut -d: -f1 | head -n 1)"
[ -n "$hpkg" ] || die "$hdr/.config belongs to no installed package"
hver="$(dpkg-query -W -f='${Version}' "$hpkg")"
series="$(echo "$krel" | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')"
spkg="linux-source-$series"
sver="$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$spkg" 2>/dev/null || true)"
[ "$sver" = "ii $hver" ] ||
	die "the kernel source must be $spkg $hver (the headers' version), found '${sver:3}' (Debian: apt install $spkg=$hver)"
tarball="/usr/src/$spkg.tar.xz"
[ -f "$tarball" ] || die "$tarball is missing (reinstall $spkg)"

key="$({
	echo "$krel $hpkg $hver $spkg $sver"
	cat "$hdr/.config" "$self"
	sha256sum "$hdr/Module.symvers"
	"$rustc" -vV
	"$bindgen" --version
	"$cc" --version | head -n 1
	pahole --version 2>/dev/null || echo no pahole
} | sha256sum | cut -c1-16)"
dir="${DIPC_KBUILD:-/var/lib/dipc/kbuild}/$krel"
if [ -f "$dir/.dipc-complete" ] && [ "$(cat "$dir/.dipc-complete")" = "$key" ]; then
	echo "$dir/build"
	exit 0
fi

log "preparing a Rust build tree for $krel in $dir (a few minutes, once)"
start=$(date +%s)
rm -rf "$dir"
mkdir -p "$dir/build"
tar -xJf "$tarball" -C "$dir"
src="$dir/$spkg"
[ -f "$src/Makefile" ] || die "$tarball did not unpack into $src"
cp "$hdr/.config" "$dir/build/.config"
kmake() {
	make -C "$src" O="$dir/build" CC="$cc" HOSTCC="$cc" RUSTC="$rustc" HOSTRUSTC="$rustc" \
		BINDGEN="$bindgen" KERNELRELEASE="$krel" "$@"
}
kmake -s olddefconfig >/dev/null
# olddefconfig on this machine must give the kernel's configuration back:
# the options that probe the compilers and tools (and so would differ with
# another gcc, binutils or pahole) included. Only
# CONFIG_OPENSSL_SUPPORTS_ML_DSA may differ: it probes the build machine's
# OpenSSL headers for the module signing tool, which is not built here.
strip_cfg() { grep -v -e '^#' -e '^$' -e '^CONFIG_OPENSSL_SUPPORTS_ML_DSA=' "$1"; }
if ! d="$(diff <(strip_cfg "$hdr/.config") <(strip_cfg "$dir/build/.config"))"; then
	printf '%s\n' "$d" | head -n 20 >&2
	die "the configuration changes when rebuilt here (above: < the kernel's, > here): a tool differs from the kernel's (binutils, pahole)"
fi
kmake -j"$(nproc)" modules_prepare >"$dir/prepare.log" 2>&1 || {
	tail -n 30 "$dir/prepare.log" >&2
	die "make modules_prepare failed (log: $dir/prepare.log)"
}
[ "$(cat "$dir/build/include/config/kernel.release")" = "$krel" ] ||
	die "the tree says it is $(cat "$dir/build/include/config/kernel.release"), not $krel"
for f in libcore.rmeta libkernel.rmeta libmacros.so; do
	[ -f "$dir/build/rust/$f" ] || die "modules_prepare made no rust/$f"
done
# modpost checks the module's imports against the running kernel's exports,
# and the BTF of the module is made against the kernel's (Debian ships a
# vmlinux that holds only its BTF for that).
cp "$hdr/Module.symvers" "$dir/build/Module.symvers"
[ ! -f "$hdr/vmlinux" ] || ln -sf "$hdr/vmlinux" "$dir/build/vmlinux"
# What the crates built here export must be the kernel's, name for name: every
# symbol they export is among the kernel's exports, and every Rust symbol the
# kernel exports is among theirs.
ours="$(sed -n 's/^EXPORT_SYMBOL_RUST_GPL(\(.*\));$/\1/p' "$dir"/build/rust/exports_*_generated.h | sort -u)"
all="$(awk '{ print $2 }' "$hdr/Module.symvers" | sort -u)"
extra="$(comm -23 <(echo "$ours") <(echo "$all"))"
lacking="$(comm -13 <(echo "$ours" | grep '^_R') <(echo "$all" | grep '^_R'))"
if [ -n "$extra$lacking" ]; then
	die "the Rust crates built here are not the kernel's: $(echo "$extra" | grep -c .) of their exports are not the kernel's (first: $(echo "$extra" | head -n 1)), $(echo "$lacking" | grep -c .) of the kernel's Rust exports are not theirs (first: $(echo "$lacking" | head -n 1))"
fi
echo "$key" >"$dir/.dipc-complete"
log "ready in $(($(date +%s) - start)) s: its $(echo "$ours" | grep -c '^_R') Rust exports are the kernel's"
echo "$dir/build"
