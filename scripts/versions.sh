# shellcheck shell=bash
# Pinned versions of everything dipc builds with. Sourced by the other scripts;
# a change here changes the kernel cache key, so the test kernel is rebuilt.

# Debian's Rust toolchain for the kernel (bookworm main). The kernel and the
# module must be built by this exact compiler.
RUST_WEB_VERSION="1.85.0+dfsg3-1~deb12u3"
# libclang for bindgen (bookworm main).
LLVM_MAJOR=19
LIBCLANG_VERSION="1:19.1.7-3~deb12u1"
# bindgen-cli from crates.io.
BINDGEN_VERSION="0.71.1"
# Kernel source: linux-source-7.3 from trixie-backports, fetched with a private
# apt configuration so nothing else on the machine comes from a newer suite.
KERNEL_SERIES="7.3"
KERNEL_SOURCE_PKG="linux-source-${KERNEL_SERIES}"
KERNEL_SOURCE_VERSION="7.3.4-1~bpo13+1"
KERNEL_SOURCE_SUITE="trixie-backports"

# Where build outputs are cached, outside the repository.
DIPC_CACHE="${DIPC_CACHE:-/var/cache/dipc}"
# Where bindgen-cli is installed (cargo install --root).
DIPC_TOOLS="${DIPC_TOOLS:-/opt/dipc-tools}"

KRUSTC=/usr/bin/rustc
KBINDGEN="${DIPC_TOOLS}/bin/bindgen"
KCLIPPY_DRIVER=/usr/bin/clippy-driver
LIBCLANG_PATH="/usr/lib/llvm-${LLVM_MAJOR}/lib"
export LIBCLANG_PATH
