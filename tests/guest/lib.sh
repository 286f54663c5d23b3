# Helpers for the guest-side test scripts (sourced).
fail() { echo "FAIL: $*" >&2; exit 1; }
# stat NAME: a value from /proc/dipc/status
stat() { awk -v k="$1" '$1 == k { print $2 }' /proc/dipc/status; }
HOOKS="shmget shmat shmdt shmctl semget semop semtimedop semctl msgget msgsnd msgrcv msgctl"
# counters: "name=value ..." of every hook's call counter
counters() { for h in $HOOKS; do printf '%s=%s ' "$h" "$(stat "calls_$h")"; done; }
