#!/usr/bin/env bash
# Builds the test guests' initramfs: busybox-static, /init, dipc.ko, dipcd,
# the C test programs, the guest-side test scripts, Debian's `wg`
# (wireguard-tools) and `ip` (iproute2, as /usr/bin/ip; busybox's is /bin/ip)
# for the WireGuard test, and util-linux's `ipcs` and `ipcrm` (busybox-static
# has neither). With --bench, also the peers `make bench` compares
# dipc with: Debian's stress-ng and redis-server, and MPICH's mpiexec.hydra
# and hydra_pmi_proxy with race_mpi (build/mpi, linked against MPICH). Each
# dynamic program comes with the shared libraries it loads. Each --kmod
# module is loaded by /init, in the order given, before the network comes up
# (Debian's kernel has virtio-net as a module).
#   scripts/initramfs.sh [--bench] [--module DIPC.KO] [--kmod MOD.KO]... OUT.cpio.gz
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench=0
module="$top/dipc.ko"
kmods=()
while [ $# -gt 1 ]; do
	case "$1" in
	--bench) bench=1; shift ;;
	--module) module="$2"; shift 2 ;;
	--kmod) kmods+=("$2"); shift 2 ;;
	*) echo "initramfs: unknown option $1" >&2; exit 1 ;;
	esac
done
out="$(realpath -m "${1:?usage: initramfs.sh [--bench] [--module DIPC.KO] [--kmod MOD.KO]... OUT.cpio.gz}")"
root="$top/build/rootfs"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,tests}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$top/tests/guest/init" "$root/init"
install -m 0644 "$module" "$root/dipc.ko"
i=0
for m in "${kmods[@]}"; do
	i=$((i + 1))
	install -D -m 0644 "$m" "$root/lib/modules/boot/$(printf %02d "$i")-$(basename "$m")"
done
for b in dipcd dipcctl; do
	install -m 0755 "$top/dipcd/target/x86_64-unknown-linux-gnu/release/$b" "$root/bin/$b"
done
for p in "$top"/build/programs/*; do
	install -m 0755 "$p" "$root/bin/"
done
for t in "$top"/tests/guest/*.sh; do
	[ -e "$t" ] && install -m 0755 "$t" "$root/tests/"
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
exes=(/usr/bin/wg /usr/bin/ip /usr/bin/ipcs /usr/bin/ipcrm)
[ "$bench" = 0 ] || exes+=(/usr/bin/stress-ng /usr/bin/redis-server /usr/bin/mpiexec.hydra /usr/bin/hydra_pmi_proxy)
for exe in "${exes[@]}"; do
	install_dynamic "$exe" "$exe"
done
[ "$bench" = 0 ] || install_dynamic "$top/build/mpi/race_mpi" /bin/race_mpi
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$out"
echo "initramfs: $out ($(du -k "$out" | cut -f1) KiB)"
