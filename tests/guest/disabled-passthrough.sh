#!/bin/sh
# disabled-passthrough.sh: with enabled=0 the program still succeeds and no
# counter moves; with enabled=1 they move again.
. /tests/lib.sh
echo 0 >/proc/sys/dipc/enabled
[ "$(stat enabled)" = 0 ] || fail "status does not show enabled 0"
before=$(counters)
sysv_smoke || fail "sysv_smoke failed with enabled=0"
after=$(counters)
echo 1 >/proc/sys/dipc/enabled
[ "$before" = "$after" ] || fail "counters moved while disabled: $before -> $after"
echo 2 >/proc/sys/dipc/enabled 2>/dev/null && fail "enabled accepted 2"
[ "$(stat enabled)" = 1 ] || fail "enabled is not 1 again"
sysv_smoke >/dev/null || fail "sysv_smoke failed after re-enabling"
[ "$(counters)" != "$after" ] || fail "counters did not move after re-enabling"
echo "enabled=0 is a pure pass-through"
