#!/bin/sh
# bench-as.sh PREFIX CMD [ARG...]: runs CMD, prints its output with every
# BENCH line renamed PREFIX_NAME (bench/wan.scenario: its figures never mix
# with the LAN ones of the same name), and exits with CMD's status.
prefix=${1:?usage: bench-as.sh PREFIX CMD [ARG...]}
shift
out=$(mktemp)
"$@" >"$out" 2>&1
rc=$?
sed "s/^BENCH /BENCH ${prefix}_/" "$out"
rm -f "$out"
exit $rc
