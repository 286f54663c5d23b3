#!/bin/sh
# wan.sh PROFILE [all|one] [PEER]: makes this node's link a wide-area one
# with netem on eth0 (the guest kernel's sch_netem, iproute2's tc as
# /usr/sbin/tc: busybox's tc has no netem).
# netem shapes what a node sends, so a round trip between two nodes is the
# sum of both ends' delays:
#   all  every node runs it with the same PROFILE: each sends with half
#        the profile's round trip, so any two nodes see the whole of it;
#   one  only this node runs it: it sends with the whole round trip, so
#        its links to every other node have it, and the others' links to
#        each other stay as they were.
# Profiles (round trip between shaped nodes):
#   lan      no shaping (removes netem)
#   rtt50    50 ms
#   rtt150   150 ms
#   loss     50 ms, and 1 % of the packets each node sends lost
#   reorder  50 ms with 5 ms of jitter, and 25 % of the packets (with a 50 %
#            correlation) sent at once, ahead of the delayed ones
# With PEER, the round trip to it is measured afterwards (busybox ping) and
# must be at least the profile's (all: both ends must be shaped by then).
. /tests/lib.sh
profile=${1:?usage: wan.sh PROFILE [all|one] [PEER]}
scope=${2:-all}
peer=$3
case "$profile" in
lan) rtt=0 extra= ;;
rtt50) rtt=50 extra= ;;
rtt150) rtt=150 extra= ;;
loss) rtt=50 extra="loss 1%" ;;
reorder) rtt=50 extra="reorder 25% 50%" ;;
*) fail "unknown profile $profile" ;;
esac
case "$scope" in
all) delay=$((rtt / 2)) ;;
one) delay=$rtt ;;
*) fail "scope must be all or one, not $scope" ;;
esac
/usr/sbin/tc qdisc del dev eth0 root 2>/dev/null
if [ "$rtt" != 0 ]; then
	jitter=
	[ "$profile" = reorder ] && jitter="5ms distribution normal"
	# shellcheck disable=SC2086 # $jitter and $extra are lists of words
	/usr/sbin/tc qdisc add dev eth0 root netem limit 10000 delay "${delay}ms" $jitter $extra ||
		fail "tc could not add netem"
fi
/usr/sbin/tc qdisc show dev eth0
if [ -n "$peer" ] && [ "$rtt" != 0 ]; then
	# 10 pings (loss may drop some): none may be faster than the profile,
	# but with reordering, whose packets sent at once are; there the mean
	# must be at least half of it.
	out=$(ping -c 10 -i 0.2 -W 2 "$peer" | sed -n 's|.*= \([0-9.]*\)/\([0-9.]*\)/.*|\1 \2|p')
	[ -n "$out" ] || fail "no answer from $peer"
	set -- $out
	echo "round trip to $peer: min $1 ms, mean $2 ms (profile $profile: ${rtt} ms)"
	if [ "$profile" = reorder ]; then
		[ "${2%.*}" -ge "$((rtt / 2))" ] || fail "mean round trip $2 ms is below $((rtt / 2)) ms"
	else
		[ "${1%.*}" -ge "$((rtt - 1))" ] || fail "round trip $1 ms is below ${rtt} ms"
	fi
fi
