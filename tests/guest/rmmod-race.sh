#!/bin/sh
# rmmod-race.sh ROUNDS KEY REFEREE: ROUNDS times, a process holds the only
# attach of distributed segment KEY (0x....), the segment is marked for
# removal, the process is killed, and `rmmod dipc` is tried in a loop
# meanwhile: its exit lets rmmod through while the connection thread sends
# the node's count and, on the referee's Removed, removes the local shadow
# (running the original shmctl). Then the module is loaded again. The kernel
# must neither oops nor warn (the scenario checks dmesg after).
. /tests/lib.sh
rounds=$1 key=$2 referee=$3
i=0
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	echo 0x9000-0x9fff > /proc/sys/dipc/keys || fail "keys"
	shmtool create "$key" 4096 >/dev/null || fail "create"
	shmtool hold "$key" 60 >/dev/null 2>&1 &
	pid=$!
	sleep 1
	shmtool rmid "$key" || fail "rmid"
	kill "$pid"
	n=0
	until rmmod dipc 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 200000 ] || fail "rmmod refused for too long"
	done
	wait "$pid" 2>/dev/null
	grep -q '^dipc ' /proc/modules && fail "still loaded"
	insmod /dipc.ko node_id="$NODE" referee="$referee" || fail "insmod"
	/tests/wait-connected.sh 60 >/dev/null || fail "no connection"
done
echo "rmmod-race: $rounds rounds"
