#!/bin/sh
# referee-shm-pages.sh KEY N: the referee's directory of the segment with
# KEY holds exactly N pages (pages ever touched and not idle).
. /tests/lib.sh
key=$(printf '%d' "$1")
json=$(dipcd status --json) || fail "dipcd status failed"
# One line per object: objects are split at "},{" (a nested map such as
# nattch_by_node never contains it), whatever the order of their fields.
objects=$(echo "$json" | awk '{ gsub(/[}],[{]/, "}\n{"); print }')
echo "$objects" | grep "\"class\":\"shm\"" | grep "\"key\":$key,"
echo "$objects" | grep "\"key\":$key," | grep -q "\"pages\":$2," ||
	fail "segment $1 does not hold exactly $2 pages at the referee"
