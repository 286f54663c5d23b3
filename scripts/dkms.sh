#!/usr/bin/env bash
# DKMS packaging of dipc.ko (dkms.conf).
#   scripts/dkms.sh install   copy the module's sources to
#                             /usr/src/dipc-VERSION and `dkms add` them
#                             (then: dkms install dipc/VERSION)
#   scripts/dkms.sh check [FLAVOUR]
#                             add and build them with DKMS in a scratch tree
#                             against the test kernel (make check-dkms; the
#                             `arm64` flavour: cross-built against the arm64
#                             test kernel, DKMS's make given its ARCH,
#                             CROSS_COMPILE and CC): the module must come out
#                             built for that kernel and architecture
# The sources are what kbuild reads: Kbuild, src/, rust/, include/ and the
# wire format shared with dipcd (dipcd/wire/src/).
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
# shellcheck source=scripts/versions.sh
. scripts/versions.sh
fail() { echo "dkms: FAIL: $*" >&2; exit 1; }

version="$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)"
cargo_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' dipcd/Cargo.toml | head -n 1)"
[ "$version" = "$cargo_version" ] ||
	fail "dkms.conf says $version, dipcd/Cargo.toml says $cargo_version: keep them equal"

# Copies the sources into $1.
copy_sources() {
	mkdir -p "$1"
	git ls-files -co --exclude-standard dkms.conf Kbuild src rust include dipcd/wire/src scripts/dkms-make.sh scripts/stock-kbuild.sh |
		grep -v '\.o$' | tar -cf - -T - | tar -xf - -C "$1"
}

case "${1:-}" in
install)
	[ "$(id -u)" = 0 ] || fail "run as root"
	dest="/usr/src/dipc-$version"
	# Installed before: DKMS forgets that copy (and its builds) first.
	if [ -n "$(dkms status -m dipc -v "$version" 2>/dev/null)" ]; then
		dkms remove -m dipc -v "$version" --all >/dev/null
	fi
	rm -rf "$dest"
	copy_sources "$dest"
	dkms add -m dipc -v "$version"
	echo "dkms: dipc/$version added; build and install it with: dkms install dipc/$version"
	;;
check)
	flavour="${2:-test}"
	kdir="$(scripts/kernel.sh --flavour "$flavour" --dir)"
	krel="$(cat "$kdir/include/config/kernel.release")"
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	copy_sources "$tmp/src/dipc-$version"
	mkdir -p "$tmp/tree" "$tmp/install"
	opts=(--dkmstree "$tmp/tree" --sourcetree "$tmp/src" --installtree "$tmp/install")
	dkms add -m dipc -v "$version" "${opts[@]}" >"$tmp/add.log" 2>&1 || { cat "$tmp/add.log"; fail "dkms add"; }
	# The test kernel's toolchain, as make module uses it.
	if ! DIPC_RUSTC="$KRUSTC" DIPC_BINDGEN="$KBINDGEN" DIPC_KMAKE_ARGS="$(scripts/kernel.sh --flavour "$flavour" --make-args)" \
		dkms build -m dipc -v "$version" -k "$krel" --kernelsourcedir "$kdir" "${opts[@]}" \
		>"$tmp/build.log" 2>&1; then
		cat "$tmp/build.log"
		find "$tmp/tree" -name make.log -exec cat {} + 2>/dev/null || true
		fail "dkms build"
	fi
	ko="$(find "$tmp/tree/dipc/$version/$krel" -name dipc.ko | head -n 1)"
	[ -n "$ko" ] || { cat "$tmp/build.log"; fail "no dipc.ko in the DKMS tree"; }
	magic="$(modinfo -F vermagic "$ko")"
	case "$magic" in "$krel "*) ;; *) fail "dipc.ko is for '$magic', not $krel" ;; esac
	modinfo -F parm "$ko" | grep -q '^referee:' || fail "dipc.ko has no referee parameter"
	# ELF e_machine (offset 18): 62 is EM_X86_64, 183 EM_AARCH64.
	machine="$(od -An -tu2 -j18 -N2 "$ko" | tr -d ' ')"
	want=62
	[ "$flavour" != arm64 ] || want=183
	[ "$machine" = "$want" ] || fail "dipc.ko is built for ELF machine $machine, not $want"
	echo "dkms: dipc/$version builds with DKMS for $krel, $flavour ($(du -k "$ko" | cut -f1) KiB, vermagic $magic)"
	;;
*)
	echo "usage: scripts/dkms.sh install|check" >&2
	exit 2
	;;
esac
