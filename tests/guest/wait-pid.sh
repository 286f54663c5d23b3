#!/bin/sh
# wait-pid.sh PIDFILE SECONDS [OUTFILE]: waits until the process whose pid
# is in PIDFILE has exited, at most SECONDS; prints OUTFILE. On a timeout it
# prints where the process is (state, kernel wait channel, DSM counters) and
# fails.
. /tests/lib.sh
pid=$(cat "$1") limit=$2 out=$3
i=0
while kill -0 "$pid" 2>/dev/null; do
	i=$((i + 1))
	if [ "$i" -gt $((limit * 5)) ]; then
		[ -n "$out" ] && cat "$out"
		echo "process $pid still runs after $limit s:"
		grep -E '^(State|voluntary|nonvoluntary)' "/proc/$pid/status"
		echo "wchan $(cat "/proc/$pid/wchan" 2>/dev/null)"
		cat "/proc/$pid/stat"
		grep -E '^(connection|frames|dsm_|segments)' /proc/dipc/status
		fail "process $pid did not finish in $limit s"
	fi
	sleep 0.2
done
[ -n "$out" ] && cat "$out"
true
