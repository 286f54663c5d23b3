#!/bin/sh
# wait-connected.sh SECONDS: until /proc/dipc/status says connected.
. /tests/lib.sh
i=0
while [ "$i" -lt "$((${1:-30} * 10))" ]; do
	[ "$(stat connection)" = connected ] && { echo "node $NODE connected (session $(stat session))"; exit 0; }
	sleep 0.1
	i=$((i + 1))
done
cat /proc/dipc/status
fail "node $NODE not connected to the referee after ${1:-30} s"
