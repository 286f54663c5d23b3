#!/usr/bin/env bash
# Runs every cluster scenario (tests/cluster/*.scenario) on a fresh 3-node
# cluster each (or the size its "# nodes: N" line asks for; 2 vCPUs per
# guest, or what its "# cpus: N" line asks for). Needs `make initramfs` first (make check-cluster does it).
#   tests/cluster/run-all.sh [SCENARIO...]
# Environment: DIPC_KERNEL_FLAVOUR (test or debug), DIPC_BZIMAGE (another
# kernel image: scripts/stock-kernel.sh boots Debian's), DIPC_INITRD (default
# build/initramfs.cpio.gz), DIPC_OUT (logs, default build/cluster),
# DIPC_NODES (3), DIPC_CPUS (vCPUs per guest, 2), DIPC_MEM (guest MiB, 256), DIPC_TIMEOUT_SCALE (1),
# DIPC_APPEND (extra guest kernel command line, e.g. dipc.scale=8, which
# divides the long test loops), DIPC_CPU_MODEL (QEMU's -cpu; its default),
# DIPC_INITRD_ARM64 (default build/initramfs-arm64.cpio.gz: the image of the
# nodes a scenario's "# arm64: N[,M]" line makes arm64 guests, booted with
# the arm64 test kernel; `make initramfs-arm64` builds both).
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$top"
kernel="${DIPC_BZIMAGE:-$(scripts/kernel.sh --dir)/arch/x86/boot/bzImage}"
(cd dipcd && cargo build --quiet --release --locked -p dipc-cluster)
runner=dipcd/target/release/dipc-cluster
scenarios=("$@")
[ "${#scenarios[@]}" -gt 0 ] || scenarios=(tests/cluster/*.scenario)
failed=0 passed=0
for s in "${scenarios[@]}"; do
	name="$(basename "$s" .scenario)"
	echo "=== cluster scenario: $name"
	out="${DIPC_OUT:-build/cluster}/$name"
	# A scenario may ask for its own cluster size with a "# nodes: N" line.
	nodes="$(sed -n 's/^# nodes: \([0-9][0-9]*\)$/\1/p' "$s" | head -n 1)"
	# ... and its own CPU count per guest with "# cpus: N" (default 2).
	cpus="$(sed -n 's/^# cpus: \([0-9][0-9]*\)$/\1/p' "$s" | head -n 1)"
	# ... and arm64 guests for some nodes with "# arm64: N[,M...]".
	arm64="$(sed -n 's/^# arm64: \([0-9,]*\)$/\1/p' "$s" | head -n 1)"
	arm64_args=()
	[ -z "$arm64" ] || arm64_args=(--arm64-nodes "$arm64"
		--arm64-kernel "$(scripts/kernel.sh --flavour arm64 --image)"
		--arm64-initrd "${DIPC_INITRD_ARM64:-build/initramfs-arm64.cpio.gz}")
	if "$runner" --nodes "${nodes:-${DIPC_NODES:-3}}" --cpus "${cpus:-${DIPC_CPUS:-2}}" --kernel "$kernel" \
		--initrd "${DIPC_INITRD:-build/initramfs.cpio.gz}" --out "$out" \
		--mem "${DIPC_MEM:-256}" --timeout-scale "${DIPC_TIMEOUT_SCALE:-1}" \
		--append "${DIPC_APPEND:-}" --cpu-model "${DIPC_CPU_MODEL:-}" "${arm64_args[@]}" "$s"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "=== FAILED: $name (consoles in $out/)"
	fi
done
echo "cluster: $passed passed, $failed failed"
[ "$failed" = 0 ]
