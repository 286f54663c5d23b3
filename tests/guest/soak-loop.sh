#!/bin/sh
# soak-loop.sh SECONDS: rounds until SECONDS have passed, each of:
#   stress-ng's SysV stressors (sem-sysv, shm-sysv, msg) for 20 s, with the
#   key policy `all`, so every object they make with a key is distributed;
#   2000 atomic adds on the shared page 0x5e01 (all nodes at once);
#   4 threads x 500 atomic adds on it, each thread also checking its own
#   page of 0x5e01 (smptool xadd);
#   1000 adds on it from a thread whose faults race shmdt, mprotect, munmap,
#   fork and thread exits in the same process (smptool churn);
#   the races of tests/cluster/races.scenario: 20 rounds of a segment
#   marked for removal detached while another process attaches it
#   (racetool rmid, 0x5e2N), 10 rounds of four detaches at once (racetool
#   nattch, 0x5e3N), and 500 adds on 0x5e01 by threads of a process that
#   also attaches, detaches and forks (racetool detach);
#   50 increments under the distributed semaphore set 0x5e02;
#   a write and read-back of this node's 1 MiB segment 0x5e1N.
# At the end the node's totals go to its slots of the results segment
# 0x5e00: adds at offset 8*NODE, semaphore rounds at 64+8*NODE.
. /tests/lib.sh
end=$(($(date +%s) + $1))
rounds=0 adds=0 mutex=0
while [ "$(date +%s)" -lt "$end" ]; do
	stress-ng --sem-sysv 1 --shm-sysv 1 --msg 1 --timeout 20s --metrics-brief \
		>/tmp/stress.out 2>&1 || {
		cat /tmp/stress.out
		fail "stress-ng failed in round $rounds"
	}
	shmtool add 0x5e01 2000 20 >/dev/null || fail "shmtool add failed in round $rounds"
	adds=$((adds + 2000))
	smptool xadd 0x5e01 4 500 20 >/dev/null || fail "smptool xadd failed in round $rounds"
	adds=$((adds + 2000))
	smptool churn 0x5e01 "0x5e1$NODE" 1000 20 >/dev/null || fail "smptool churn failed in round $rounds"
	adds=$((adds + 1000))
	racetool rmid "0x5e2$NODE" 20 >/dev/null || fail "racetool rmid failed in round $rounds"
	racetool nattch "0x5e3$NODE" 10 4 >/dev/null || fail "racetool nattch failed in round $rounds"
	racetool detach 0x5e01 500 >/dev/null || fail "racetool detach failed in round $rounds"
	semtool mutex 0x5e02 50 >/dev/null || fail "semtool mutex failed in round $rounds"
	mutex=$((mutex + 50))
	seg=0x5e1$NODE
	shmtool fill "$seg" "$rounds" >/dev/null && shmtool check "$seg" "$rounds" >/dev/null ||
		fail "segment $seg lost data in round $rounds"
	rounds=$((rounds + 1))
	echo "soak: node $NODE round $rounds done at $(date +%s)"
done
grep -E 'metrc|fail' /tmp/stress.out || true
shmtool put 0x5e00 $((8 * NODE)) "$adds" || fail "results"
shmtool put 0x5e00 $((64 + 8 * NODE)) "$mutex" || fail "results"
echo "soak: node $NODE: $rounds rounds, $adds adds, $mutex semaphore rounds"
