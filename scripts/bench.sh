#!/usr/bin/env bash
# make bench: runs bench/cluster.scenario on a 3-node test cluster,
# bench/scale.scenario on 4 nodes, bench/wan.scenario (50 ms round trips
# under netem) and bench/replicated.scenario (three replicated referees
# against one) on 3, loads a host dipcd on one core with
# dipc-bench's simulated nodes, then sets every figure beside its baseline:
# the table is printed and put into README.md, the record goes to
# bench/results/DATE.json and the plots to bench/plots/.
# Needs build/initramfs-bench.cpio.gz (make bench builds it).
#   scripts/bench.sh [--no-readme]
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
readme=(--readme README.md)
[ "${1:-}" = --no-readme ] && readme=()
kdir="$(scripts/kernel.sh --dir)"
(cd dipcd && cargo build --quiet --release --locked -p dipc-cluster -p dipc-bench -p dipcd)
runner=dipcd/target/release/dipc-cluster
tool=dipcd/target/release/dipc-bench
out=build/bench
rm -rf "$out"
mkdir -p "$out"
date="$(date +%F)"
started=$SECONDS

# Progress: every step as it starts; BENCH lines without their percentiles.
cluster() { # NAME NODES MEM
	echo "bench: $1 on $2 nodes (log: $out/$1.log)"
	"$runner" --nodes "$2" --mem "$3" --kernel "$kdir/arch/x86/boot/bzImage" \
		--initrd build/initramfs-bench.cpio.gz --out "$out/$1" "bench/$1.scenario" \
		2>&1 | tee "$out/$1.log" | sed -u -e 's/ q=[^ ]*//' -e 's/^/  /'
	return "${PIPESTATUS[0]}"
}
cluster cluster 3 512
cluster scale 4 512
cluster wan 3 512
cluster replicated 3 512

# The referee on one core, the load generator on another (where there is one).
echo "bench: referee load (dipcd on the host)"
pin_ref=() pin_load=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	pin_ref=(taskset -c 0) pin_load=(taskset -c 1)
fi
port=$((17420 + RANDOM % 1000))
"${pin_ref[@]}" dipcd/target/release/dipcd --listen "127.0.0.1:$port" >"$out/dipcd.log" 2>&1 &
ref=$!
trap 'kill $ref 2>/dev/null || true' EXIT
sleep 0.5
for conns in 1 4 16; do
	"${pin_load[@]}" "$tool" load --referee "127.0.0.1:$port" --pid "$ref" --conns "$conns" \
		--window 64 --secs 4 --json "$out/load-$conns.json" | tee -a "$out/load.log"
done
kill "$ref"
# The best of the three connection counts is the referee's figure.
best="$(for f in "$out"/load-*.json; do
	printf '%s %s\n' "$(sed -n 's/.*"ops_per_s": *\([0-9.]*\).*/\1/p' "$f")" "$f"
done | sort -g | tail -1 | cut -d' ' -f2)"

accel="$(sed -n 's/^dipc-cluster: accelerator \([a-z]*\).*/\1/p' "$out/cluster.log" | head -1)"
# As the guests reported it when they booted (the runner checks nproc).
vcpus="$(sed -n 's/^dipc-cluster: node [0-9]* booted in .* with \([0-9]*\) CPU(s).*/\1/p' "$out/cluster.log" | head -1)"
cpu="$(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo | head -1)"
echo "bench: report (the clusters took $((SECONDS - started)) s)"
"$tool" report --log "$out/cluster.log" --log "$out/scale.log" --log "$out/wan.log" --log "$out/replicated.log" --load "$best" --date "$date" \
	--meta "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--meta "guests=QEMU $accel, ${vcpus:-?} vCPUs each" --meta "host=$cpu × $(nproc)" \
	"${readme[@]}"
