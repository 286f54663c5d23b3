#!/bin/sh
# fault-traced.sh FILE PAGE read|write: FILE (a copy of the trace buffer)
# shows a dipc_fault on PAGE for that access that asked the referee once
# and ended ok. A fault that had no grant within the fault budget (20 ms;
# a loaded TCG host can take that long) is traced twice: `outcome=slow`
# after its first request, then `outcome=ok` when it ends without the mmap
# lock, with the requests sent after the first (0 if the grant came in
# between). Either form counts; anything else fails, with the lines seen.
. /tests/lib.sh
f=$1 page=$2 access=$3
ev="dipc_fault: oid=[0-9]+ page=$page $access"
grep -Eq "$ev outcome=ok requests=1 ns=[1-9]" "$f" && exit 0
grep -Eq "$ev outcome=slow requests=1 ns=[1-9]" "$f" &&
	grep -Eq "$ev outcome=ok requests=[01] ns=[1-9]" "$f" && exit 0
grep -E "dipc_fault: " "$f"
fail "no $access fault on page $page that ended ok in $f"
