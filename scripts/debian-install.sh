#!/usr/bin/env bash
# Installs dipc.ko with DKMS on a Debian machine that runs Debian's own
# Rust-enabled kernel (README: Install on Debian), as root, from a clone of
# this repository:
#   scripts/debian-install.sh [KERNELRELEASE]      (default: the running one)
# It installs the kernel's headers and its source package of the same
# version, the compilers the kernel was built with (trixie's rustc, rust-src,
# bindgen and libclang; the headers bring gcc-14), DKMS and the kernel's build
# tools; puts the module's sources in /usr/src (scripts/dkms.sh install); and
# has DKMS build and install the module, which prepares the kernel's Rust
# metadata on first use (scripts/stock-kbuild.sh, a few minutes).
# Packages come from the suites apt already knows: a trixie-backports kernel
# needs trixie-backports in sources.list, as it did to install the kernel.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { printf 'debian-install: error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages)"
krel="${1:-$(uname -r)}"
series="$(echo "$krel" | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')"
[ -n "$series" ] || die "'$krel' is not a kernel release"
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -q --no-install-recommends "$@"; }

apt_install "linux-headers-$krel"
ver="$(dpkg-query -W -f='${Version}' "linux-headers-$krel")"
apt_install "linux-source-$series=$ver" rustc rust-src bindgen libclang-dev \
	dkms make bc bison flex libelf-dev libssl-dev dwarves python3 xz-utils kmod
"$top/scripts/dkms.sh" install
version="$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$top/dkms.conf")"
dkms install "dipc/$version" -k "$krel"
echo "debian-install: dipc/$version is installed for $krel: modprobe dipc referee=ADDR:7420 node_id=N"
