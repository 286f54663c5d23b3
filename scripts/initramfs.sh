#!/usr/bin/env bash
# Builds the test guests' initramfs: busybox-static, /init, dipc.ko, dipcd,
# the C test programs, the guest-side test scripts, Debian's `wg`
# (wireguard-tools) and `ip` (iproute2, as /usr/bin/ip; busybox's is /bin/ip)
# for the WireGuard test, util-linux's `ipcs` and `ipcrm` (busybox-static
# has neither), and `tc` with netem's distribution tables for the WAN
# profiles (tests/guest/wan.sh). With --bench, also the peers `make bench` compares
# dipc with: Debian's stress-ng and redis-server, and MPICH's mpiexec.hydra
# and hydra_pmi_proxy with race_mpi (build/mpi, linked against MPICH). Each
# dynamic program comes with the shared libraries it loads. Each --kmod
# module is loaded by /init, in the order given, before the network comes up
# (Debian's kernel has virtio-net as a module). With --arch arm64, the arm64
# node's image: bookworm's arm64 busybox-static (scripts/setup.sh fetches
# it), /init, the module given, the C test programs cross-built into
# build/programs-arm64 and the guest scripts; no Rust programs and no
# Debian tools (the referee and dipcctl run on x86-64 nodes).
#   scripts/initramfs.sh [--bench] [--arch x86_64|arm64] [--module DIPC.KO] [--kmod MOD.KO]... OUT.cpio.gz
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench=0
arch=x86_64
module="$top/dipc.ko"
kmods=()
while [ $# -gt 1 ]; do
	case "$1" in
	--bench) bench=1; shift ;;
	--arch) arch="$2"; shift 2 ;;
	--module) module="$2"; shift 2 ;;
	--kmod) kmods+=("$2"); shift 2 ;;
	*) echo "initramfs: unknown option $1" >&2; exit 1 ;;
	esac
done
out="$(realpath -m "${1:?usage: initramfs.sh [--bench] [--arch x86_64|arm64] [--module DIPC.KO] [--kmod MOD.KO]... OUT.cpio.gz}")"
root="$top/build/rootfs-$arch"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,tests}
# Writes the image from the root.
pack() {
	echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$out"
	echo "initramfs: $out ($(du -k "$out" | cut -f1) KiB)"
}
case "$arch" in
x86_64) busybox=/bin/busybox programs="$top/build/programs" ;;
arm64)
	. "$top/scripts/versions.sh"
	busybox="$DIPC_CACHE/arm64/busybox" programs="$top/build/programs-arm64"
	[ -x "$busybox" ] || { echo "initramfs: $busybox missing (run scripts/setup.sh)" >&2; exit 1; }
	# ELF e_machine (offset 18): 183 is EM_AARCH64.
	[ "$(od -An -tu2 -j18 -N2 "$module" | tr -d ' ')" = 183 ] ||
		{ echo "initramfs: $module is no arm64 module" >&2; exit 1; } ;;
*) echo "initramfs: unknown architecture $arch (x86_64 or arm64)" >&2; exit 1 ;;
esac
install -m 0755 "$busybox" "$root/bin/busybox"
install -m 0755 "$top/tests/guest/init" "$root/init"
install -m 0644 "$module" "$root/dipc.ko"
i=0
for m in "${kmods[@]}"; do
	i=$((i + 1))
	install -D -m 0644 "$m" "$root/lib/modules/boot/$(printf %02d "$i")-$(basename "$m")"
done
for p in "$programs"/*; do
	install -m 0755 "$p" "$root/bin/"
done
for t in "$top"/tests/guest/*.sh; do
	[ -e "$t" ] && install -m 0755 "$t" "$root/tests/"
done
# The arm64 image ends here: the Rust programs and Debian's tools are x86-64's.
if [ "$arch" = arm64 ]; then
	pack
	exit 0
fi
for b in dipcd dipcctl; do
	install -m 0755 "$top/dipcd/target/x86_64-unknown-linux-gnu/release/$b" "$root/bin/$b"
done
# Installs a dynamic program at DEST in the image, with every library it
# loads at the same path, and the dynamic loader.
install_dynamic() { # SOURCE DEST
	[ -x "$1" ] || { echo "initramfs: $1 missing (run scripts/setup.sh; make bench builds build/mpi)" >&2; exit 1; }
	install -D -m 0755 "$1" "$root$2"
	ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
		[ -e "$root$lib" ] || install -D -m 0755 "$(realpath "$lib")" "$root$lib"
	done
}
exes=(/usr/bin/wg /usr/bin/ip /usr/bin/ipcs /usr/bin/ipcrm /usr/sbin/tc)
[ "$bench" = 0 ] || exes+=(/usr/bin/stress-ng /usr/bin/redis-server /usr/bin/mpiexec.hydra /usr/bin/hydra_pmi_proxy)
for exe in "${exes[@]}"; do
	install_dynamic "$exe" "$exe"
done
[ "$bench" = 0 ] || install_dynamic "$top/build/mpi/race_mpi" /bin/race_mpi
# netem's delay distributions (tests/guest/wan.sh: jitter).
for d in /usr/lib/x86_64-linux-gnu/tc/*.dist; do
	install -D -m 0644 "$d" "$root$d"
done
pack
