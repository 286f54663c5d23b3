#!/bin/sh
# referee-nodes.sh N...: the referee lists exactly these node ids.
. /tests/lib.sh
json=$(dipcd status --json) || fail "dipcd status failed"
echo "$json"
dipcd status
for n in "$@"; do
	echo "$json" | grep -qE "\"node_id\":$n[,}]" || fail "the referee does not list node $n"
done
count=$(echo "$json" | grep -o '"node_id":' | wc -l)
[ "$count" -eq "$#" ] || fail "the referee lists $count nodes, expected $#"
