#!/usr/bin/env bash
# Host checks of what an operator installs (part of `make check-host`):
# - packaging/dipcd.service passes `systemd-analyze verify`;
# - packaging/dipcd.toml passes `dipcd --check-config` once its secret file
#   and state directory exist, and fails while the secret file is missing
#   or readable by others.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top/dipcd"
cargo build --quiet --locked -p dipcd
dipcd="$top/dipcd/target/debug/dipcd"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-packaging: FAIL: $*" >&2; exit 1; }

# The unit, with ExecStart pointing at the binary just built.
sed "s|/usr/local/sbin/dipcd|$dipcd|g" "$top/packaging/dipcd.service" >"$tmp/dipcd.service"
systemd-analyze verify --man=no "$tmp/dipcd.service" || fail "dipcd.service does not verify"
echo "check-packaging: dipcd.service verifies"

# The example configuration, with its paths moved under $tmp.
conf="$tmp/dipcd.toml"
sed -e "s|/etc/dipc/secret|$tmp/secret|" -e "s|/var/lib/dipcd|$tmp/state|" \
	-e "s|/run/dipcd.sock|$tmp/dipcd.sock|" "$top/packaging/dipcd.toml" >"$conf"
if "$dipcd" --check-config --config "$conf" >"$tmp/out" 2>&1; then
	fail "--check-config accepted a missing secret file"
fi
grep -q "secret_file: $tmp/secret: No such file" "$tmp/out" || { cat "$tmp/out"; fail "no reason given"; }
head -c 32 /dev/urandom | base64 >"$tmp/secret"
chmod 644 "$tmp/secret"
if "$dipcd" --check-config --config "$conf" >"$tmp/out" 2>&1; then
	fail "--check-config accepted a world-readable secret file"
fi
grep -q "chmod 600" "$tmp/out" || { cat "$tmp/out"; fail "no reason given"; }
chmod 600 "$tmp/secret"
"$dipcd" --check-config --config "$conf" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "--check-config refused the example"; }
grep -qx "# configuration OK" "$tmp/out" || fail "no OK line"
grep -qx 'allow = \["10.0.0.0/24"\]' "$tmp/out" || { cat "$tmp/out"; fail "the file's allow list is not in effect"; }
# An option on the command line wins over the file.
# (Into a file, not a pipe: `grep -q` exits at its first match, and dipcd
# would then die of EPIPE under pipefail.)
"$dipcd" --check-config --config "$conf" --msgmax 100 >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "--msgmax 100 refused"; }
grep -qx "msgmax = 100" "$tmp/out" || { cat "$tmp/out"; fail "--msgmax did not win"; }
echo "check-packaging: dipcd.toml passes --check-config (and fails without its secret)"

# The man pages render without a warning (those of dipcd and dipcctl are
# generated; `make dipcd-test` checks they match the command lines).
pages=("$top"/Documentation/man/*.[78])
[ "${#pages[@]}" -ge 3 ] || fail "man pages missing from Documentation/man/"
warnings="$(groff -man -ww -z "${pages[@]}" 2>&1)"
[ -z "$warnings" ] || { echo "$warnings"; fail "man pages have groff warnings"; }
for p in dipc.7 dipcd.8 dipcctl.8; do
	[ -e "$top/Documentation/man/$p" ] || fail "no $p"
done
echo "check-packaging: ${#pages[@]} man pages render cleanly"
