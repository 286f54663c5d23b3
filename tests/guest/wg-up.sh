#!/bin/sh
# wg-up.sh PEER...: brings up wg0 with address 10.1.0.$NODE/24 (UDP port
# 51820) and a WireGuard peer for each node number given, reached at
# 10.0.0.PEER. Each node's private key is derived from its number, so every
# node can compute the others' public keys: for tests only, never for real.
. /tests/lib.sh
key() { printf 'dipc-test-wireguard-key-node%04d' "$1" | base64; }
umask 077
key "$NODE" >/tmp/wg.key
/usr/bin/ip link add wg0 type wireguard || fail "cannot create wg0"
wg set wg0 private-key /tmp/wg.key listen-port 51820 || fail "wg set failed"
for p in "$@"; do
	wg set wg0 peer "$(key "$p" | wg pubkey)" allowed-ips "10.1.0.$p/32" \
		endpoint "10.0.0.$p:51820" persistent-keepalive 5 || fail "peer $p"
done
/usr/bin/ip addr add "10.1.0.$NODE/24" dev wg0 || fail "address"
/usr/bin/ip link set wg0 up || fail "link up"
wg show wg0
