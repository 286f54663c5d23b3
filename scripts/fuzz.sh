#!/usr/bin/env bash
# Fuzzes the wire decoder (dipcd/fuzz, target `frames`: every frame kind,
# decode -> encode -> decode) with cargo fuzz / libFuzzer and AddressSanitizer.
#   scripts/fuzz.sh [SECONDS] [JOBS]     default 30 s, 1 job
# Starts from the committed seeds (dipcd/fuzz/seeds, read-only) plus the
# corpus kept in $DIPC_CACHE/fuzz/frames by earlier runs (a cache: the run
# works without it). Fails on a crash (the input is saved under
# dipcd/fuzz/artifacts/frames/) or if the corpus does not decode into every
# frame kind. Prints the executions and the corpus size.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"
secs="${1:-30}" jobs="${2:-1}"
fuzz="$here/../dipcd/fuzz"
cargo_fuzz="$DIPC_TOOLS/bin/cargo-fuzz"
[ -x "$cargo_fuzz" ] || { echo "fuzz: $cargo_fuzz missing (run scripts/setup.sh)" >&2; exit 1; }
corpus="$DIPC_CACHE/fuzz/frames"
mkdir -p "$corpus"
# libFuzzer's flags are nightly-only in rustc; the stable toolchain accepts
# them with RUSTC_BOOTSTRAP (the kernel's own Rust build does the same).
export RUSTC_BOOTSTRAP=1
cd "$fuzz"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "fuzz: target frames for ${secs} s, ${jobs} job(s); corpus $corpus"
rc=0
par=()
[ "$jobs" = 1 ] || par=(-jobs="$jobs" -workers="$jobs")
"$cargo_fuzz" run --release frames "$corpus" seeds -- \
	-max_total_time="$secs" -max_len=70000 -timeout=10 -rss_limit_mb=2048 \
	"${par[@]}" -print_final_stats=1 >"$log" 2>&1 || rc=$?
# With -jobs, each job logs to fuzz-N.log; fold them in.
for f in fuzz-*.log; do [ -e "$f" ] && { cat "$f" >>"$log"; rm -f "$f"; }; done
grep -E '^(#[0-9]+\s+DONE|Done [0-9]+ runs|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY|thread .* panicked)' "$log" || true
if [ "$rc" != 0 ] || grep -qE '==[0-9]+==ERROR|panicked|deadly signal' "$log"; then
	tail -n 60 "$log"
	echo "fuzz: FAILED (crash inputs in $fuzz/artifacts/frames/)" >&2
	exit 1
fi
execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | awk '{s += $2} END {print s + 0}')
echo "fuzz: $execs executions, no crash; corpus $(find "$corpus" -type f | wc -l) inputs"
cargo run --quiet --release --bin corpus-kinds -- --require-all "$corpus" seeds
