#!/bin/sh
# wait-grep.sh SECONDS PATTERN FILE: until FILE has a line matching PATTERN
# (grep -E); prints FILE either way.
. /tests/lib.sh
i=0
while [ "$i" -lt "$(($1 * 10))" ]; do
	grep -qE "$2" "$3" 2>/dev/null && { cat "$3"; exit 0; }
	sleep 0.1
	i=$((i + 1))
done
cat "$3" 2>/dev/null
fail "no line matching '$2' in $3 after $1 s"
