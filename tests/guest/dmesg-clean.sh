#!/bin/sh
# dmesg-clean.sh: no warning, oops, BUG or leak report in the kernel log.
. /tests/lib.sh
bad=$(dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection|kmemleak|UBSAN|KASAN|refcount_t|possible circular|INFO: task .* blocked')
[ -z "$bad" ] || { dmesg | tail -n 60; fail "kernel log has reports: $bad"; }
dmesg | grep 'dipc' || true
echo "dmesg clean"
