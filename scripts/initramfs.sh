#!/usr/bin/env bash
# Builds the test guests' initramfs: busybox-static, /init, dipc.ko, dipcd,
# the C test programs and the guest-side test scripts.
#   scripts/initramfs.sh OUT.cpio.gz
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:?usage: initramfs.sh OUT.cpio.gz}")"
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
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 >"$out"
echo "initramfs: $out ($(du -k "$out" | cut -f1) KiB)"
