#!/bin/sh
# hooks-count.sh: an unmodified SysV IPC program succeeds with the module
# loaded, and each hook's counter rises by exactly the calls it made.
. /tests/lib.sh
[ "$(stat hooks_registered)" -ge 12 ] || fail "hooks_registered is $(stat hooks_registered)"
before=$(counters)
sysv_smoke || fail "sysv_smoke failed with the hooks active"
after=$(counters)
echo "before: $before"
echo "after:  $after"
# What sysv_smoke calls (see tests/programs/sysv_smoke.c); glibc's semop()
# is the semtimedop syscall, so only the raw SYS_semop counts as semop.
for want in shmget=1 shmat=1 shmdt=2 shmctl=2 semget=1 semop=1 semtimedop=4 semctl=4 \
	msgget=1 msgsnd=1 msgrcv=2 msgctl=2; do
	h=${want%=*} n=${want#*=}
	b=$(echo "$before" | tr ' ' '\n' | sed -n "s/^$h=//p")
	a=$(echo "$after" | tr ' ' '\n' | sed -n "s/^$h=//p")
	[ "$((a - b))" -eq "$n" ] || fail "calls_$h rose by $((a - b)), expected $n"
done
echo "hook counters rose as expected"
