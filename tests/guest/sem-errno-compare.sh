#!/bin/sh
# sem-errno-compare.sh KEY_LOCAL KEY_DIST [dipc]: runs sem_errno once with
# dipc switched off (a plain local kernel) and once on a distributed key, and
# fails if the two outputs differ in any line.
. /tests/lib.sh
local_key=$1 dist_key=$2 flag=$3
echo 0 >/proc/sys/dipc/enabled
sem_errno "$local_key" $flag >/tmp/errno-local.txt 2>&1
echo 1 >/proc/sys/dipc/enabled
sem_errno "$dist_key" $flag >/tmp/errno-dist.txt 2>&1
# The keys differ, and so does the line that prints them.
sed -i "s/key $local_key /key KEY /" /tmp/errno-local.txt
sed -i "s/key $dist_key /key KEY /" /tmp/errno-dist.txt
cat /tmp/errno-dist.txt
lines=$(wc -l </tmp/errno-dist.txt)
[ "$lines" -ge 60 ] || fail "sem_errno printed only $lines lines"
diff /tmp/errno-local.txt /tmp/errno-dist.txt || fail "dipc differs from the local kernel (above: - local, + dipc)"
echo "sem_errno: $lines lines, identical to the local kernel"
