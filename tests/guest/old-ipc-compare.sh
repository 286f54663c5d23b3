#!/bin/sh
# old-ipc-compare.sh KEY_LOCAL KEY_DIST: runs old_ipc (a 32-bit program on
# the old ipc(2) structures, without IPC_64) once with dipc switched off (a
# plain local kernel) and once on a distributed key, and fails if the two
# outputs differ in any line.
. /tests/lib.sh
local_key=$1 dist_key=$2
echo 0 >/proc/sys/dipc/enabled
old_ipc "$local_key" >/tmp/old-local.txt 2>&1
echo 1 >/proc/sys/dipc/enabled
old_ipc "$dist_key" >/tmp/old-dist.txt 2>&1
# The keys differ, and so do the lines that print them.
sed -i "s/key $local_key /key KEY /" /tmp/old-local.txt
sed -i "s/key $dist_key /key KEY /" /tmp/old-dist.txt
cat /tmp/old-dist.txt
lines=$(wc -l </tmp/old-dist.txt)
[ "$lines" -ge 40 ] || fail "old_ipc printed only $lines lines"
grep -q 'uid 65534 gid 65534' /tmp/old-dist.txt || fail "an owner above 65535 does not show as the overflow uid"
diff /tmp/old-local.txt /tmp/old-dist.txt || fail "dipc differs from the local kernel (above: - local, + dipc)"
echo "old_ipc: $lines lines, identical to the local kernel"
