#!/bin/sh
# referee-waiters.sh N: the referee holds exactly N sleeping requests.
. /tests/lib.sh
json=$(dipcd status --json) || fail "dipcd status failed"
echo "$json"
# The total is the status object's last field; each object has its own
# "waiters" too, always followed by more text.
echo "$json" | grep -q "\"waiters\":$1}\$" || fail "the referee does not hold exactly $1 waiters"
