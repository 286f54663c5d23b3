#!/bin/sh
# race.sh IMPL RANKS PROGRAM ARGS...: one round of make bench's race against
# MPI, started from node 2 with one rank per node (ranks 0, 1, 2 on
# 10.0.0.2, .3 and .1; rexec serve must run on each).
#   race.sh sysv RANKS pi|jacobi KEY ARGS...   race (SysV IPC): rank 0 here,
#                                             the others through rexec
#   race.sh mpi RANKS pi|jacobi ARGS...        race_mpi, by MPICH's mpiexec
#                                             with rexec as its launcher
# Fails if any rank fails.
. /tests/lib.sh
impl=$1 ranks=$2 prog=$3
shift 3
hosts=$(echo 10.0.0.2 10.0.0.3 10.0.0.1 | cut -d' ' -f"1-$ranks")
case "$impl" in
mpi)
	# Debian 12's MPICH runs on UCX 1.13, whose TCP transport now and then
	# never finishes tearing down its connections (openucx/ucx#8738): in
	# make bench about half the 2- and 3-rank runs hang in MPI_Finalize
	# after their result. The result is timed before MPI_Finalize, so a
	# run that printed it is given 20 s to finish and is then stopped
	# (hydra kills its ranks).
	out=/tmp/race-mpi.$$
	mpiexec.hydra -launcher rsh -launcher-exec /bin/rexec \
		-hosts "$(echo $hosts | tr ' ' ,)" -n "$ranks" race_mpi "$prog" "$@" >"$out" 2>&1 &
	pid=$! waited=0 stopped=0
	while [ "$stopped" = 0 ] && kill -0 "$pid" 2>/dev/null; do
		if grep -qs '^BENCH ' "$out"; then
			waited=$((waited + 1))
			if [ "$waited" -gt 100 ]; then
				kill "$pid"
				echo "race.sh: MPICH did not finish MPI_Finalize in 20 s after its result (openucx/ucx#8738); stopped" >&2
				stopped=1
			fi
		fi
		sleep 0.2
	done
	rc=0
	wait "$pid" || rc=$?
	cat "$out"
	rm -f "$out"
	[ "$stopped" = 1 ] || [ "$rc" = 0 ] || fail "mpiexec: $prog on $ranks rank(s) exited with $rc"
	;;
sysv)
	key=$1
	shift
	pids="" r=0
	for h in $hosts; do
		[ "$r" -gt 0 ] && { rexec "$h" race "$prog" "$key" "$ranks" "$r" "$@" & pids="$pids $!"; }
		r=$((r + 1))
	done
	rc=0
	race "$prog" "$key" "$ranks" 0 "$@" || rc=$?
	for p in $pids; do
		wait "$p" || rc=1
	done
	[ "$rc" = 0 ] || fail "race $prog on $ranks rank(s) failed"
	;;
*) fail "race.sh: IMPL is sysv or mpi" ;;
esac
