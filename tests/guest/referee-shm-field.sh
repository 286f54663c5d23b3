#!/bin/sh
# referee-shm-field.sh KEY FIELD: prints the numeric FIELD (pages, ahead,
# nattch, ...) of the segment with KEY from `dipcd status --json`.
. /tests/lib.sh
key=$(printf '%d' "$1")
json=$(dipcd status --json) || fail "dipcd status failed"
# One line per object, as in referee-shm-pages.sh.
line=$(echo "$json" | awk '{ gsub(/[}],[{]/, "}\n{"); print }' | grep '"class":"shm"' | grep "\"key\":$key,")
[ -n "$line" ] || fail "no segment with key $1 at the referee"
v=$(echo "$line" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p")
[ -n "$v" ] || fail "no field $2 for segment $1"
echo "$v"
