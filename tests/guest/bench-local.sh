#!/bin/sh
# bench-local.sh LABEL SECONDS: stress-ng's SysV IPC stressors on local
# (non-distributed) objects, one at a time, each for SECONDS; prints one
# BENCH line per stressor (bogo ops/s, real time) tagged module=LABEL.
. /tests/lib.sh
label=$1 secs=${2:-5}
for s in sem-sysv msg shm-sysv; do
	out=$(stress-ng --"$s" 1 --timeout "${secs}s" --metrics-brief 2>&1) || {
		echo "$out"
		fail "stress-ng --$s failed"
	}
	# The metrics line: "stress-ng: metrc: [pid] NAME OPS REAL USR SYS OPS/S OPS/S".
	v=$(echo "$out" | awk -v s="$s" '$4 == s && $5 ~ /^[0-9]+$/ { print $(NF - 1) }')
	[ -n "$v" ] || {
		echo "$out"
		fail "no metrics from stress-ng --$s"
	}
	echo "BENCH local_$s unit=ops/s value=$v module=$label"
done
