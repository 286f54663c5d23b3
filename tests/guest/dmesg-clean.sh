#!/bin/sh
# dmesg-clean.sh: no warning, oops, BUG or leak report in the kernel log. On
# a debug kernel also: no lockdep, KASAN, DEBUG_OBJECTS or list report, and
# no object kmemleak finds unreferenced (scanned twice, as its documentation
# advises, so objects in flight are not reported).
. /tests/lib.sh
bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection|suspected memory leak|UBSAN|KASAN|refcount_t|possible circular|possible recursive|inconsistent lock|ODEBUG|list_(add|del) corruption|INFO: task .* blocked')
[ -z "$bad" ] || { dmesg | tail -n 80; fail "kernel log has reports: $bad"; }
if [ -e /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	leaks=$(cat /sys/kernel/debug/kmemleak)
	[ -z "$leaks" ] || {
		echo "$leaks" | head -n 120
		fail "kmemleak: $(echo "$leaks" | grep -c unreferenced) unreferenced object(s)"
	}
	echo "kmemleak: nothing unreferenced"
fi
dmesg | grep 'dipc' || true
echo "dmesg clean"
