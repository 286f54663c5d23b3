#!/usr/bin/env bash
# Builds the test guests' initramfs: busybox-static, /init, dipc.ko, dipcd,
# the C test programs and the guest-side test scripts. With --bench, also
# the peers `make bench` compares dipc with: Debian's stress-ng and
# redis-server, with the shared libraries they load.
#   scripts/initramfs.sh [--bench] OUT.cpio.gz
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench=0
if [ "${1:-}" = --bench ]; then
	bench=1
	shift
fi
out="$(realpath -m "${1:?usage: initramfs.sh [--bench] OUT.cpio.gz}")"
root="$top/build/rootfs"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,tests}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$top/tests/guest/init" "$root/init"
install -m 0644 "$top/dipc.ko" "$root/dipc.ko"
install -m 0755 "$top/dipcd/target/x86_64-unknown-linux-gnu/release/dipcd" "$root/bin/dipcd"
for p in "$top"/build/programs/*; do
	install -m 0755 "$p" "$root/bin/"
done
for t in "$top"/tests/guest/*.sh; do
	[ -e "$t" ] && install -m 0755 "$t" "$root/tests/"
done
if [ "$bench" = 1 ]; then
	for exe in /usr/bin/stress-ng /usr/bin/redis-server; do
		[ -x "$exe" ] || { echo "initramfs: $exe missing (run scripts/setup.sh)" >&2; exit 1; }
		install -D -m 0755 "$exe" "$root$exe"
		# Every library it loads, at the same path, and the dynamic loader.
		ldd "$exe" | grep -o '/[^ ]*' | while read -r lib; do
			[ -e "$root$lib" ] || install -D -m 0755 "$(realpath "$lib")" "$root$lib"
		done
	done
fi
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$out"
echo "initramfs: $out ($(du -k "$out" | cut -f1) KiB)"
