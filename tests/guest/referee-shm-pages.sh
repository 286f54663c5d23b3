#!/bin/sh
# referee-shm-pages.sh KEY N: the referee's directory of the segment with
# KEY holds exactly N pages (pages ever touched and not idle).
. /tests/lib.sh
key=$(printf '%d' "$1")
json=$(dipcd status --json) || fail "dipcd status failed"
# One line per object (each starts with its class).
objects=$(echo "$json" | sed 's/{"class"/\n{"class"/g')
echo "$objects" | grep "\"class\":\"shm\"" | grep "\"key\":$key,"
echo "$objects" | grep "\"key\":$key," | grep -q "\"pages\":$2," ||
	fail "segment $1 does not hold exactly $2 pages at the referee"
