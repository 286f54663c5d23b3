#!/usr/bin/env bash
# Installs everything dipc needs on a Debian 12 (bookworm) machine, as root:
# the kernel toolchain (pinned Debian rustc-web, libclang 19, bindgen-cli),
# GCC and the kernel build dependencies, QEMU and busybox-static for the test
# cluster, clang/lld/llvm 19 for the debug kernel, wireguard-tools and
# iproute2 for the WireGuard test, stress-ng, redis-server and libhiredis-dev
# for `make bench`, MPICH for its race against MPI, gcc-multilib for the
# 32-bit test programs, debootstrap for the stock-kernel test's Debian 13
# root, gcc-12-aarch64-linux-gnu, qemu-system-arm and bookworm's arm64
# busybox-static (downloaded only) for the arm64 node, and the pinned linux-source-7.3 package (fetched from trixie-backports through a private apt configuration, so nothing else on the
# machine ever comes from a newer suite).
#
# Idempotent: when everything is already in place it only checks and exits.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages)"
[ -r /etc/debian_version ] || die "this script supports Debian 12 only"

# Packages pinned to an exact version (the kernel and the module must meet the
# same compiler; bookworm-security offers a newer rustc-web).
pinned=(
	"rustc-web=${RUST_WEB_VERSION}"
	"rust-web-src=${RUST_WEB_VERSION}"
	"libstd-rust-web-dev=${RUST_WEB_VERSION}"
	"libstd-rust-web-1.85=${RUST_WEB_VERSION}"
	"rust-web-clippy=${RUST_WEB_VERSION}"
	"libclang-${LLVM_MAJOR}-dev=${LIBCLANG_VERSION}"
	"libclang1-${LLVM_MAJOR}=${LIBCLANG_VERSION}"
	# clang, lld and llvm of the same release build the debug kernel
	# (KASAN with Rust needs clang; its LLVM is rustc-web's).
	"clang-${LLVM_MAJOR}=${LIBCLANG_VERSION}"
	"lld-${LLVM_MAJOR}=${LIBCLANG_VERSION}"
	"llvm-${LLVM_MAJOR}=${LIBCLANG_VERSION}"
)
# Everything else, from bookworm at whatever version it has.
plain=(
	gcc make bc bison flex libelf-dev libssl-dev cpio xz-utils kmod
	# the C library for static programs (only a Recommends of gcc), and
	# C++ for libFuzzer (cargo fuzz builds it from source)
	libc6-dev g++
	# the module's copy of its sources (git ls-files), a clean clone's
	# checks; zstd for a stock kernel's compressed modules
	git zstd
	qemu-system-x86 busybox-static ca-certificates
	stress-ng redis-server libhiredis-dev
	# MPICH (mpicc, mpiexec.hydra and its libraries) for the MPI race
	mpich libmpich-dev
	wireguard-tools iproute2
	# ipcs/ipcrm for the guests; systemd-analyze for the unit check
	util-linux systemd
	# the man pages' check (groff) and the DKMS build check
	groff-base dkms
	# 32-bit (-m32 -static) builds of the errno comparison programs
	# (gcc-12-multilib, not the gcc-multilib package: that one conflicts
	# with every cross compiler)
	gcc-12-multilib
	# the Debian 13 root of the stock-kernel test (scripts/stock-kernel.sh)
	debootstrap
	# the arm64 node: its kernel, module and programs (cross-built), and
	# qemu-system-aarch64 to run it
	# (aarch64-linux-gnu-gcc-12: the unversioned gcc-aarch64-linux-gnu
	# conflicts with gcc-multilib's users)
	gcc-12-aarch64-linux-gnu qemu-system-arm
	# its C library and kernel headers: only Recommends of the cross
	# compiler, which --no-install-recommends leaves out (without them
	# it falls back on the host's /usr/include: "asm/errno.h: No such file")
	libc6-dev-arm64-cross linux-libc-dev-arm64-cross
)

missing=()
for p in "${pinned[@]}"; do
	name="${p%%=*}" want="${p#*=}"
	have="$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$name" 2>/dev/null || true)"
	[ "$have" = "ii $want" ] || missing+=("$p")
done
for p in "${plain[@]}"; do
	have="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
	[ "${have:0:2}" = "ii" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# --no-upgrade: a package already installed is never upgraded by this run.
	apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
else
	log "Debian packages: all present"
fi

# Keep the pinned toolchain where it is: a later 'apt-get upgrade' must not
# move rustc-web to the bookworm-security release.
pref=/etc/apt/preferences.d/dipc-rust-web
want_pref="$(printf 'Package: rustc-web rust-web-src libstd-rust-web-dev libstd-rust-web-1.85 rust-web-clippy\nPin: version %s\nPin-Priority: 1001\n' "$RUST_WEB_VERSION")"
if [ "$(cat "$pref" 2>/dev/null)" != "$want_pref" ]; then
	printf '%s\n' "$want_pref" >"$pref"
	log "pinned rustc-web to $RUST_WEB_VERSION in $pref"
fi

# bindgen-cli, pinned, built with the machine's (rustup) cargo.
if [ "$("$KBINDGEN" --version 2>/dev/null)" != "bindgen $BINDGEN_VERSION" ]; then
	command -v cargo >/dev/null || die "cargo not found (install Rust with rustup first)"
	log "installing bindgen-cli $BINDGEN_VERSION into $DIPC_TOOLS"
	cargo install --quiet --locked --root "$DIPC_TOOLS" bindgen-cli --version "$BINDGEN_VERSION"
else
	log "bindgen-cli $BINDGEN_VERSION: present"
fi

# cargo-fuzz, pinned. It drives libFuzzer on the machine's stable toolchain
# (scripts/fuzz.sh sets RUSTC_BOOTSTRAP=1 for the sanitizer flags). Its
# version lives here, not in versions.sh, which keys the kernel cache.
CARGO_FUZZ_VERSION="0.13.2"
CARGO_FUZZ="${DIPC_TOOLS}/bin/cargo-fuzz"
if [ "$("$CARGO_FUZZ" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
	log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $DIPC_TOOLS"
	cargo install --quiet --locked --root "$DIPC_TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
else
	log "cargo-fuzz $CARGO_FUZZ_VERSION: present"
fi

# Downloads PACKAGE (an apt spec) into the directory DEST through a private
# apt in $DIPC_CACHE/NAME: its own sources (SUITE main of Debian's archive),
# lists and caches. It only downloads; it never installs, so the machine's
# packages cannot change. Further arguments are apt options (an
# architecture).
private_download() { # NAME SUITE DEST PACKAGE [APT-OPTION...]
	local dir="$DIPC_CACHE/$1" suite="$2" dest="$3" pkg="$4"
	shift 4
	mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/cache" "$dir/parts"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
		>"$dir/sources.list"
	local opts=(
		-o "Dir::Etc::SourceList=$dir/sources.list"
		-o "Dir::Etc::SourceParts=$dir/parts"
		-o "Dir::State::Lists=$dir/lists"
		-o "Dir::Cache=$dir/cache"
		-o "Dir::Cache::Archives=$dir/archives"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
		"$@"
	)
	apt-get "${opts[@]}" update -qq
	chmod 755 "$dest" # apt drops to the _apt user to download into it
	(cd "$dest" && apt-get "${opts[@]}" download -qq "$pkg")
}

# Kernel source. The extracted tree is read-only input; builds go to O= dirs.
src="$DIPC_CACHE/src/${KERNEL_SOURCE_PKG}_${KERNEL_SOURCE_VERSION}"
if [ ! -f "$src/.dipc-complete" ]; then
	log "fetching ${KERNEL_SOURCE_PKG}=${KERNEL_SOURCE_VERSION} from ${KERNEL_SOURCE_SUITE}"
	deb_dir="$(mktemp -d)"
	trap 'rm -rf "$deb_dir"' EXIT
	private_download apt "${KERNEL_SOURCE_SUITE}" "$deb_dir" "${KERNEL_SOURCE_PKG}=${KERNEL_SOURCE_VERSION}"
	dpkg -x "$deb_dir"/*.deb "$deb_dir/x"
	# Kept: the stock-kernel test installs it in its Debian 13 root.
	mkdir -p "$DIPC_CACHE/debs"
	cp "$deb_dir"/*.deb "$DIPC_CACHE/debs/"
	rm -rf "$src" && mkdir -p "$src"
	log "unpacking the kernel source into $src"
	tar -xJf "$deb_dir/x/usr/src/${KERNEL_SOURCE_PKG}.tar.xz" -C "$src" --strip-components=1
	touch "$src/.dipc-complete"
else
	log "kernel source: present in $src"
fi

# busybox for the arm64 node's initramfs: bookworm's busybox-static for
# arm64, downloaded through a private apt (its own lists, arm64 only) and
# unpacked into the cache; nothing is installed.
bb_arm64="$DIPC_CACHE/arm64/busybox"
if [ ! -x "$bb_arm64" ]; then
	log "fetching busybox-static for arm64"
	bb_dir="$(mktemp -d)"
	private_download apt-arm64 bookworm "$bb_dir" busybox-static \
		-o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
	dpkg -x "$bb_dir"/busybox-static_*_arm64.deb "$bb_dir/x"
	mkdir -p "$(dirname "$bb_arm64")"
	install -m 0755 "$bb_dir/x/bin/busybox" "$bb_arm64"
	rm -rf "$bb_dir"
else
	log "arm64 busybox: present"
fi

# A last check that the kernel's Rust support will be found.
make -s -C "$src" RUSTC="$KRUSTC" BINDGEN="$KBINDGEN" O="$DIPC_CACHE/rustavailable" rustavailable >/dev/null \
	|| die "the kernel's 'make rustavailable' failed"
log "done: toolchain and kernel source ready (cache: $DIPC_CACHE)"
