#!/bin/sh
# msg-errno-compare.sh MSGMAX MSGMNB KEY_LOCAL KEY_DIST [dipc]: runs msg_errno
# (or, with ERRNO_ABI=32 or 32d, its 32-bit build: tests/programs/ipc32.h)
# once with dipc switched off (a plain local kernel whose msgmax and msgmnb
# are set to MSGMAX and MSGMNB, the referee's configuration) and once on a
# distributed key, and fails if the two outputs differ in any line.
. /tests/lib.sh
prog=msg_errno${ERRNO_ABI:-}
msgmax=$1 msgmnb=$2 local_key=$3 dist_key=$4 flag=$5
echo "$msgmax" >/proc/sys/kernel/msgmax
echo "$msgmnb" >/proc/sys/kernel/msgmnb
echo 0 >/proc/sys/dipc/enabled
"$prog" "$local_key" $flag >/tmp/msg-errno-local.txt 2>&1
echo 1 >/proc/sys/dipc/enabled
"$prog" "$dist_key" $flag >/tmp/msg-errno-dist.txt 2>&1
cat /tmp/msg-errno-dist.txt
grep -q "msgmax $msgmax msgmnb $msgmnb" /tmp/msg-errno-dist.txt ||
	fail "IPC_INFO does not report the referee's msgmax $msgmax and msgmnb $msgmnb"
lines=$(wc -l </tmp/msg-errno-dist.txt)
[ "$lines" -ge 90 ] || fail "$prog printed only $lines lines"
diff /tmp/msg-errno-local.txt /tmp/msg-errno-dist.txt ||
	fail "dipc differs from the local kernel (above: - local, + dipc)"
echo "$prog: $lines lines, identical to the local kernel"
