#!/bin/sh
# Replicated referees: one dipcd replica on every node of the cluster
# (10.0.0.N, raft on port 7421, nodes on $REFEREE_PORT, default 7420), its
# raft log in /var/lib/dipc.
#   referees.sh start [OPTIONS]  start this node's replica (OPTIONS go to
#                                dipcd); its log goes to /tmp/dipcd.log
#   referees.sh check            this node's replica knows a leader, and it
#                                is the referee this node is connected to
#                                (referee_now): checked on every node, one
#                                leader serves them all
#   referees.sh leader           print the leader's id as this replica knows it
#   referees.sh kill-leader      kill -9 this node's replica if it serves
#                                nodes (prints "killed" then)
#   referees.sh kill-follower    kill -9 this node's replica if it is the
#                                one after the leader (ids counting round),
#                                and start it again 2 s later
#   referees.sh diag             print the node's and its referee's state
. /tests/lib.sh
n=${NODES:-3}
port=${REFEREE_PORT:-7420}
replicas() {
	i=1 list=
	while [ "$i" -le "$n" ]; do
		list="$list${list:+,}$i=10.0.0.$i:7421"
		i=$((i + 1))
	done
	echo "$list"
}
leader() {
	dipcctl referees --json | sed -n 's/.*"leader":\([0-9]*\).*/\1/p'
}
case "$1" in
start)
	shift
	mkdir -p /var/lib/dipc
	dipcd --listen "0.0.0.0:$port" --state-dir /var/lib/dipc --replica-id "$NODE" \
		--replicas "$(replicas)" "$@" >>/tmp/dipcd.log 2>&1 &
	;;
check)
	# Up to 30 s: after a failover the node may not have noticed yet.
	i=0
	while :; do
		l=$(leader)
		now=$(stat referee_now)
		if [ -n "$l" ] && [ "$l" -ne 0 ] && [ "$(stat connection)" = connected ] &&
			[ "$now" = "10.0.0.$l:$port" ]; then
			break
		fi
		i=$((i + 1))
		if [ "$i" -ge 300 ]; then
			dipcctl referees --json
			fail "node $NODE is connected to ${now:-nothing} ($(stat connection)), but referee $NODE says referee ${l:-none} leads"
		fi
		sleep 0.1
	done
	dipcctl referees
	echo "node $NODE: referee $l leads and serves this node"
	;;
leader)
	l=$(leader)
	[ -n "$l" ] && [ "$l" -ne 0 ] || fail "referee $NODE knows no leader"
	echo "$l"
	;;
kill-leader)
	if dipcctl referees --json | grep -q '"serving":true'; then
		kill -9 "$(pidof dipcd)"
		echo killed
	fi
	;;
kill-follower)
	l=$(leader)
	[ -n "$l" ] && [ "$l" -ne 0 ] || fail "referee $NODE knows no leader"
	if [ "$NODE" -eq $((l % n + 1)) ]; then
		kill -9 "$(pidof dipcd)"
		echo "killed follower $NODE (leader $l)"
		sleep 2
		shift
		"$0" start "$@"
	fi
	;;
diag)
	# What a failed step leaves to read: the node, its referee, its log.
	cat /proc/dipc/status
	dipcctl referees --json
	dipcd status --json
	tail -n 60 /tmp/dipcd.log
	ps
	;;
*)
	fail "usage: referees.sh start|check|leader|kill-leader|kill-follower|diag"
	;;
esac
