#!/bin/sh
# sem-errno-compare.sh KEY_LOCAL KEY_DIST [dipc]: runs sem_errno (or, with
# ERRNO_ABI=32 or 32d, its 32-bit build: tests/programs/ipc32.h) once with
# dipc switched off (a plain local kernel) and once on a distributed key, and
# fails if the two outputs differ in any line.
. /tests/lib.sh
prog=sem_errno${ERRNO_ABI:-}
local_key=$1 dist_key=$2 flag=$3
echo 0 >/proc/sys/dipc/enabled
"$prog" "$local_key" $flag >/tmp/errno-local.txt 2>&1
echo 1 >/proc/sys/dipc/enabled
"$prog" "$dist_key" $flag >/tmp/errno-dist.txt 2>&1
# The keys differ, and so does the line that prints them.
sed -i "s/key $local_key /key KEY /" /tmp/errno-local.txt
sed -i "s/key $dist_key /key KEY /" /tmp/errno-dist.txt
cat /tmp/errno-dist.txt
lines=$(wc -l </tmp/errno-dist.txt)
[ "$lines" -ge 60 ] || fail "$prog printed only $lines lines"
diff /tmp/errno-local.txt /tmp/errno-dist.txt || fail "dipc differs from the local kernel (above: - local, + dipc)"
echo "$prog: $lines lines, identical to the local kernel"
