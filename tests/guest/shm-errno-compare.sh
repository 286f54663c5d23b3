#!/bin/sh
# shm-errno-compare.sh KEY_LOCAL KEY_DIST [dipc]: runs shm_errno once with
# dipc switched off (a plain local kernel) and once on a distributed key,
# and fails if the two outputs differ in any line.
. /tests/lib.sh
prog=shm_errno${ERRNO_ABI:-}
local_key=$1 dist_key=$2 flag=$3
echo 0 >/proc/sys/dipc/enabled
"$prog" "$local_key" $flag >/tmp/shm-errno-local.txt 2>&1
echo 1 >/proc/sys/dipc/enabled
"$prog" "$dist_key" $flag >/tmp/shm-errno-dist.txt 2>&1
cat /tmp/shm-errno-dist.txt
lines=$(wc -l </tmp/shm-errno-dist.txt)
[ "$lines" -ge 50 ] || fail "$prog printed only $lines lines"
diff /tmp/shm-errno-local.txt /tmp/shm-errno-dist.txt ||
	fail "dipc differs from the local kernel (above: - local, + dipc)"
echo "$prog: $lines lines, identical to the local kernel"
