#!/usr/bin/env bash
# DKMS's build command (dkms.conf's MAKE[0]), run in DKMS's copy of the
# sources:
#   scripts/dkms-make.sh KERNELRELEASE KERNEL_SOURCE_DIR
#   scripts/dkms-make.sh --clean      (CLEAN: removes what a build left)
# Builds dipc.ko against KERNEL_SOURCE_DIR when it holds the kernel's Rust
# metadata (a kernel built from source), and otherwise against the tree
# scripts/stock-kbuild.sh prepares for it from the distribution's headers,
# source package and compilers (Debian's stock kernel). DIPC_RUSTC,
# DIPC_BINDGEN and DIPC_KMAKE_ARGS (extra kbuild arguments, e.g. LLVM=1 for a
# clang-built kernel) come from DKMS's environment.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "${1:-}" = --clean ]; then
	find . \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' -o -name '.*.cmd' \
		-o -name modules.order -o -name Module.symvers \) -delete
	exit 0
fi
krel="${1:?usage: dkms-make.sh KERNELRELEASE KERNEL_SOURCE_DIR}"
ksrc="${2:?usage: dkms-make.sh KERNELRELEASE KERNEL_SOURCE_DIR}"
kdir="$("$here/stock-kbuild.sh" "$krel" "$ksrc")"
read -r -a args <<<"$("$here/stock-kbuild.sh" --make-args "$krel" "$ksrc") ${DIPC_KMAKE_ARGS:-}"
rustc="${DIPC_RUSTC:-rustc}"
bindgen="${DIPC_BINDGEN:-bindgen}"
exec make -C "$kdir" M="$PWD" RUSTC="$rustc" HOSTRUSTC="$rustc" BINDGEN="$bindgen" "${args[@]}" modules
