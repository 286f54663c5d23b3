# Helpers for the guest-side test scripts (sourced).
fail() { echo "FAIL: $*" >&2; exit 1; }
# stat NAME: a value from /proc/dipc/status
stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/dipc/status; }
HOOKS="shmget shmat shmdt shmctl semget semop semtimedop semctl msgget msgsnd msgrcv msgctl"
# counters: "name=value ..." of every hook's call counter
counters() { for h in $HOOKS; do printf '%s=%s ' "$h" "$(stat "calls_$h")"; done; }
# conn_policy: the scheduling policy of the connection thread (field 41 of
# its stat: 0 normal, 1 SCHED_FIFO)
conn_policy() { for d in /proc/[0-9]*; do [ "$(cat "$d/comm" 2>/dev/null)" = dipc-conn ] && cut -d' ' -f41 "$d/stat"; done; }
