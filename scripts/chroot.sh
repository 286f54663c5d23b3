# shellcheck shell=bash
# Debian roots made with debootstrap and entered with chroot, for the tests
# that need a machine other than this one: the Debian 13 root of the
# stock-kernel test (scripts/stock-kernel.sh) and the fresh Debian 12 root of
# the fresh-machine test (scripts/fresh-machine.sh). Sourced by both.

# Makes a minbase root of SUITE from MIRROR in DIR once (DIR/.dipc-complete
# marks it done), with the packages INCLUDE... added; debootstrap's log goes
# to LOG. Nothing on this machine is installed or upgraded.
make_root() { # SUITE MIRROR DIR LOG [INCLUDE...]
	local suite="$1" mirror="$2" dir="$3" dlog="$4"
	shift 4
	[ ! -f "$dir/.dipc-complete" ] || return 0
	rm -rf "$dir"
	mkdir -p "$(dirname "$dir")" "$(dirname "$dlog")"
	local inc=()
	[ $# = 0 ] || inc=(--include="$(IFS=,; echo "$*")")
	if ! debootstrap --variant=minbase "${inc[@]}" "$suite" "$dir" "$mirror" >"$dlog" 2>&1; then
		tail -n 20 "$dlog" >&2
		printf 'debootstrap of %s failed (log: %s)\n' "$suite" "$dlog" >&2
		return 1
	fi
	touch "$dir/.dipc-complete"
}

# Runs COMMAND... in the root ROOT with /proc, /dev and the directories
# named by ROOT_BINDS mounted, in a private mount namespace that ends with
# it. ROOT_BINDS is an array of "SOURCE:TARGET" or "SOURCE:TARGET:ro"
# (TARGET inside the root, created if missing). The environment is empty but
# for PATH (ROOT_PATH, or the usual one), HOME=/root and LANG, plus the
# NAME=VALUE words of ROOT_ENV.
in_root() { # ROOT COMMAND...
	local root="$1"
	shift
	local b binds=()
	for b in "${ROOT_BINDS[@]}"; do binds+=("$b"); done
	unshare --mount --propagation private -- bash -ec '
		root="$1"; n="$2"; shift 2
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		for ((i = 0; i < n; i++)); do
			IFS=: read -r src dst mode <<<"$1"; shift
			mkdir -p "$root$dst"
			mount --bind "$src" "$root$dst"
			[ "$mode" != ro ] || mount -o remount,bind,ro "$root$dst"
		done
		exec chroot "$root" "$@"
	' in_root "$root" "${#binds[@]}" "${binds[@]}" \
		/usr/bin/env -i PATH="${ROOT_PATH:-/usr/sbin:/usr/bin:/sbin:/bin}" HOME=/root LANG=C.UTF-8 \
		"${ROOT_ENV[@]}" "$@"
}
