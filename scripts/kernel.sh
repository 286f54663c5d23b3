#!/usr/bin/env bash
# Builds the dipc test kernel (tinyconfig + scripts/kernel.config + the
# architecture's fragment) once and caches it outside the repository, keyed by
# everything that produced it: the kernel source version, the config
# fragments, this script and the versions of rustc, bindgen, libclang and gcc.
# A change to any of them builds anew.
#
#   scripts/kernel.sh [--flavour F]             build if needed; print the build directory
#   scripts/kernel.sh [--flavour F] --dir       print the build directory only (no build)
#   scripts/kernel.sh [--flavour F] --key       print the cache key
#   scripts/kernel.sh [--flavour F] --make-args print the extra make arguments
#                                               the module must be built with
#   scripts/kernel.sh [--flavour F] --image     print the boot image's path (no build)
# Flavours: `test` (default; x86-64, gcc), `debug` (scripts/kernel-debug.config
# on top: KASAN, lockdep, kmemleak, DEBUG_OBJECTS; built with LLVM, which
# KASAN with Rust requires) and `arm64` (cross-built with Debian's
# gcc-12-aarch64-linux-gnu and the same rustc, whose aarch64-unknown-none-softfloat
# target the kernel uses). DIPC_KERNEL_FLAVOUR sets the default.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"
flavour="${DIPC_KERNEL_FLAVOUR:-test}"
if [ "${1:-}" = --flavour ]; then
	flavour="${2:?--flavour needs a value}"
	shift 2
fi
x86=("$here/kernel.config" "$here/kernel-x86.config")
case "$flavour" in
test) fragments=("${x86[@]}"); margs=(); name=kernel; image=arch/x86/boot/bzImage; cc=gcc ;;
debug) fragments=("${x86[@]}" "$here/kernel-debug.config"); margs=("LLVM=-${LLVM_MAJOR}"); name=debug
	image=arch/x86/boot/bzImage; cc=gcc ;;
arm64) fragments=("$here/kernel.config" "$here/kernel-arm64.config")
	cc=aarch64-linux-gnu-gcc-12
	margs=("ARCH=arm64" "CROSS_COMPILE=aarch64-linux-gnu-" "CC=$cc"); name=arm64; image=arch/arm64/boot/Image ;;
*) printf 'kernel: error: unknown flavour %s (test, debug or arm64)\n' "$flavour" >&2; exit 1 ;;
esac
src="$DIPC_CACHE/src/${KERNEL_SOURCE_PKG}_${KERNEL_SOURCE_VERSION}"

log() { printf 'kernel: %s\n' "$*" >&2; }
die() { printf 'kernel: error: %s\n' "$*" >&2; exit 1; }

key() {
	{
		echo "$KERNEL_SOURCE_PKG $KERNEL_SOURCE_VERSION"
		cat "${fragments[@]}" "$here/kernel.sh" "$here/versions.sh"
		echo "${margs[@]}"
		"$KRUSTC" -vV
		"$KBINDGEN" --version
		"$cc" --version | head -n1
		[ "${#margs[@]}" = 0 ] || "clang-${LLVM_MAJOR}" --version | head -n1
		dpkg-query -W -f='${Version}\n' "libclang1-${LLVM_MAJOR}"
	} | sha256sum | cut -c1-16
}

[ -f "$src/.dipc-complete" ] || die "no kernel source in $src: run scripts/setup.sh first"
[ -x "$KRUSTC" ] && [ -x "$KBINDGEN" ] || die "kernel toolchain missing: run scripts/setup.sh first"
command -v "$cc" >/dev/null || die "$cc missing: run scripts/setup.sh first"
out="$DIPC_CACHE/kernel/${KERNEL_SERIES}-${name}-$(key)"

case "${1:-}" in
--dir) echo "$out"; exit 0 ;;
--key) key; exit 0 ;;
--make-args) echo "${margs[@]}"; exit 0 ;;
--image) echo "$out/$image"; exit 0 ;;
"") ;;
*) die "unknown argument $1" ;;
esac

if [ -f "$out/.dipc-complete" ]; then
	echo "$out"
	exit 0
fi

kmake() {
	make -C "$src" O="$out" RUSTC="$KRUSTC" HOSTRUSTC="$KRUSTC" BINDGEN="$KBINDGEN" "${margs[@]}" "$@"
}

log "building the $flavour kernel in $out (about 6 minutes on 2 cores; debug: longer)"
start=$(date +%s)
rm -rf "$out"
mkdir -p "$out"
kmake -s tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${fragments[@]}" >/dev/null
kmake -s olddefconfig >/dev/null

# Every option of the fragment must have survived olddefconfig.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" "$out/.config" || { log "option did not stick: $line"; bad=1; } ;;
	"# CONFIG_"*" is not set")
		opt="${line#\# }"; opt="${opt%% *}"
		! grep -q "^$opt=" "$out/.config" || { log "option did not stick: $line"; bad=1; } ;;
	esac
done < <(cat "${fragments[@]}")
[ "$bad" = 0 ] || die "the config fragment does not apply cleanly"

kmake -j"$(nproc)" >"$out/build.log" 2>&1 || {
	tail -n 40 "$out/build.log" >&2
	die "kernel build failed (full log: $out/build.log)"
}
touch "$out/.dipc-complete"
log "built in $(($(date +%s) - start)) s"
echo "$out"
