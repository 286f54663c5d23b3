#!/usr/bin/env bash
# dipc on Debian's own kernel (make check-stock, part of make check):
#
# 1. A Debian 13 machine as a user has one: a trixie root made by
#    debootstrap (minbase) with trixie-backports in its sources, cached in
#    $DIPC_CACHE/stock/root-KEY. Nothing on this machine is upgraded; the root
#    is only entered with chroot, in a mount namespace of its own.
# 2. In it, the README's "Install on Debian": scripts/debian-install.sh for
#    Debian's kernel $STOCK_KREL: the headers, the same version's
#    linux-source, trixie's rustc/bindgen, DKMS; DKMS builds dipc.ko, after
#    scripts/stock-kbuild.sh has prepared the kernel's Rust metadata.
# 3. Debian's kernel image and modules (linux-binary-*, linux-modules-*:
#    what linux-image-$STOCK_KREL depends on), downloaded only.
# 4. An initramfs with that dipc.ko and the virtio-net driver from the
#    image's modules (Debian builds it as a module), and the cluster
#    scenarios foundation, sem, msg, compat32 (the ia32 entries, which
#    Debian's IBT build seals; with call depth tracking on) and shm (its
#    long loops divided by $STOCK_SHM_SCALE) on 3 guests with 2 vCPUs
#    booting Debian's vmlinuz.
#    Each guest's console must show Debian's kernel banner and the module's
#    load.
#
#   scripts/stock-kernel.sh [SCENARIO...]    (default: the four above)
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
# shellcheck source=scripts/versions.sh
. scripts/versions.sh

# Debian's kernel of the test kernel's version (same source package).
STOCK_KREL="7.3.4+deb13-amd64"
STOCK_VERSION="$KERNEL_SOURCE_VERSION"
STOCK_SUITE="trixie"
STOCK_MIRROR="http://deb.debian.org/debian"
# The long loops of shm.scenario are divided by this (dipc.scale).
STOCK_SHM_SCALE="${STOCK_SHM_SCALE:-10}"
# Guest memory: Debian's kernel is a distribution kernel (MiB).
STOCK_MEM="${STOCK_MEM:-512}"

log() { printf 'stock: %s\n' "$*" >&2; }
die() { printf 'stock: error: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/setup.sh"

# What the root is made of; a change makes a new one. (The packages of the
# install itself are scripts/debian-install.sh's, installed on every run.)
root_base=(git ca-certificates)
root_key="$(printf '%s\n' "$STOCK_SUITE" "$STOCK_MIRROR" "${root_base[@]}" | sha256sum | cut -c1-16)"
root="$DIPC_CACHE/stock/root-$root_key"

# shellcheck source=scripts/chroot.sh
. scripts/chroot.sh
# This repository is in the root, read only, at /dipc.
ROOT_BINDS=("$top:/dipc:ro")

start=$(date +%s)
if [ ! -f "$root/.dipc-complete" ]; then
	log "making a Debian $STOCK_SUITE root in $root (debootstrap, a few minutes)"
	make_root "$STOCK_SUITE" "$STOCK_MIRROR" "$root" "$DIPC_CACHE/stock/debootstrap.log" "${root_base[@]}" ||
		die "no Debian $STOCK_SUITE root"
fi
cat >"$root/etc/apt/sources.list" <<EOF
deb $STOCK_MIRROR $STOCK_SUITE main
deb $STOCK_MIRROR $STOCK_SUITE-updates main
deb $STOCK_MIRROR-security $STOCK_SUITE-security main
deb $STOCK_MIRROR $STOCK_SUITE-backports main
EOF
in_root "$root" apt-get update -q >/dev/null
# scripts/setup.sh kept the source package it fetched: no second download.
src_deb="$DIPC_CACHE/debs/${KERNEL_SOURCE_PKG}_${KERNEL_SOURCE_VERSION/:/%3a}_all.deb"
[ ! -f "$src_deb" ] || cp "$src_deb" "$root/var/cache/apt/archives/"

# The user's steps.
log "scripts/debian-install.sh $STOCK_KREL in the $STOCK_SUITE root"
t=$(date +%s)
if ! in_root "$root" sh -c "cd /dipc && scripts/debian-install.sh $STOCK_KREL" >"$DIPC_CACHE/stock/install.log" 2>&1; then
	tail -n 40 "$DIPC_CACHE/stock/install.log" >&2
	find "$root/var/lib/dkms/dipc" -name make.log -exec tail -n 40 {} + 2>/dev/null || true
	die "the Debian install failed (log: $DIPC_CACHE/stock/install.log)"
fi
in_root "$root" apt-get clean
log "installed with DKMS in $(($(date +%s) - t)) s"
# Another rustc is refused before anything is built, with the reason.
printf '#!/bin/sh\necho "rustc 1.85.0 (4d215e2de 2025-03-15) (built from a source tarball)"\n' >"$root/tmp/other-rustc"
chmod 755 "$root/tmp/other-rustc"
if in_root "$root" env DIPC_RUSTC=/tmp/other-rustc DIPC_KBUILD=/tmp/kbuild-other \
	/dipc/scripts/stock-kbuild.sh "$STOCK_KREL" >"$root/tmp/other.log" 2>&1; then
	die "stock-kbuild.sh accepted a rustc of another version"
fi
grep -q "rustc: the kernel was built with 'rustc 1.85.1 " "$root/tmp/other.log" ||
	{ cat "$root/tmp/other.log" >&2; die "stock-kbuild.sh refused another rustc without saying why"; }
[ ! -e "$root/tmp/kbuild-other" ] || die "stock-kbuild.sh began a tree with another rustc"
ko="$(find "$root/lib/modules/$STOCK_KREL/updates" -name 'dipc.ko*' | head -n 1)"
[ -n "$ko" ] || die "DKMS installed no dipc.ko under /lib/modules/$STOCK_KREL/updates"
# A module file uncompressed (the guests' busybox insmod reads plain ELF).
uncompress() { # MODULE.ko[.xz|.zst] OUT.ko
	case "$1" in
	*.xz) xz -dc "$1" >"$2" ;;
	*.zst) zstd -qdc "$1" >"$2" ;;
	*) cp "$1" "$2" ;;
	esac
}
mkdir -p build/stock
uncompress "$ko" build/stock/dipc.ko

# Debian's kernel image and modules.
img="$DIPC_CACHE/stock/image-${STOCK_KREL}_$STOCK_VERSION"
if [ ! -f "$img/.dipc-complete" ]; then
	log "downloading linux-image-$STOCK_KREL ($STOCK_VERSION)"
	rm -rf "$img" "$root/tmp/image"
	mkdir -p "$root/tmp/image" "$img"
	chmod 777 "$root/tmp/image" # apt downloads as _apt
	in_root "$root" sh -c "cd /tmp/image && apt-get download -q linux-binary-$STOCK_KREL=$STOCK_VERSION linux-modules-$STOCK_KREL=$STOCK_VERSION" >/dev/null
	for d in "$root"/tmp/image/*.deb; do dpkg-deb -x "$d" "$img"; done
	rm -rf "$root/tmp/image"
	[ -f "$img/usr/lib/modules/$STOCK_KREL/vmlinuz" ] || die "no /usr/lib/modules/$STOCK_KREL/vmlinuz in the image packages"
	touch "$img/.dipc-complete"
fi
# (Debian 13 ships them in /usr/lib/modules; the postinst copies vmlinuz to /boot.)
vmlinuz="$img/usr/lib/modules/$STOCK_KREL/vmlinuz"
mods="$img/usr/lib/modules/$STOCK_KREL"

# The module is for this kernel: the same vermagic as the image's own modules.
want="$(modinfo -F vermagic "$(find "$mods" -name 'virtio_net.ko*' | head -n 1)")"
have="$(modinfo -F vermagic build/stock/dipc.ko)"
[ "$want" = "$have" ] || die "dipc.ko's vermagic is '$have', Debian's modules' '$want'"
log "dipc.ko: vermagic $have"

# virtio_net and what it depends on, dependencies first, uncompressed.
kmods=()
add_kmod() {
	local f dep
	f="$(find "$mods" -name "$1.ko*" | head -n 1)"
	[ -n "$f" ] || die "no module $1 in $mods"
	for dep in $(modinfo -F depends "$f" | tr , ' '); do add_kmod "$dep"; done
	local out="build/stock/kmod/$1.ko"
	case " ${kmods[*]:-} " in *" $out "*) return ;; esac
	uncompress "$f" "$out"
	kmods+=("$out")
}
rm -rf build/stock/kmod && mkdir -p build/stock/kmod
add_kmod virtio_net
kargs=()
for m in "${kmods[@]}"; do kargs+=(--kmod "$m"); done
scripts/initramfs.sh --module build/stock/dipc.ko "${kargs[@]}" build/initramfs-stock.cpio.gz
log "prepared in $(($(date +%s) - start)) s"

# The scenarios, on Debian's kernel.
run() { # CPU-MODEL APPEND SCENARIO...
	local cpu="$1" append="$2"
	shift 2
	DIPC_BZIMAGE="$vmlinuz" DIPC_INITRD=build/initramfs-stock.cpio.gz DIPC_OUT=build/cluster-stock \
		DIPC_MEM="$STOCK_MEM" DIPC_CPU_MODEL="$cpu" DIPC_APPEND="$append" tests/cluster/run-all.sh "$@"
}
# compat32 runs with call depth tracking on (CONFIG_CALL_THUNKS, the
# retbleed=stuff mitigation, which the kernel offers on a Skylake CPU and
# QEMU's TCG emulates): every call into the module's functions and from its
# static calls to the sealed ia32 entries then goes through the kernel's
# call thunks, patched at load.
stuffing=(Skylake-Client "retbleed=stuff spectre_v2=retpoline")
if [ $# -gt 0 ]; then
	run "" "" "$@"
	scenarios=("$@")
else
	run "" "" tests/cluster/foundation.scenario tests/cluster/sem.scenario tests/cluster/msg.scenario
	run "${stuffing[@]}" tests/cluster/compat32.scenario
	run "" "dipc.scale=$STOCK_SHM_SCALE" tests/cluster/shm.scenario
	scenarios=(foundation sem msg compat32 shm)
	for c in build/cluster-stock/compat32/node*.console; do
		grep -q "RETBleed: Mitigation: Stuffing" "$c" && grep -q "callthunks: Setting up call depth tracking" "$c" ||
			die "$c: the kernel did not turn call depth tracking on"
	done
fi

# Every guest ran Debian's kernel and loaded this module into it.
for s in "${scenarios[@]}"; do
	s="$(basename "$s" .scenario)"
	for c in build/cluster-stock/"$s"/node*.console; do
		grep -F "Linux version $STOCK_KREL " "$c" | grep -qF " Debian $STOCK_VERSION " ||
			die "$c: no banner of Debian's $STOCK_KREL ($STOCK_VERSION)"
		grep -q "dipc: loaded: node [0-9]*, 24 hooks" "$c" || die "$c: dipc.ko did not load with its 24 hooks"
		grep -q "dipc: connected to referee" "$c" || die "$c: dipc.ko never reached the referee"
	done
done
log "passed on Debian's $STOCK_KREL in $(($(date +%s) - start)) s"
