# SPDX-License-Identifier: GPL-2.0
# dipc top-level Makefile. `make` builds dipc.ko; `make check` runs every test.
# The module itself is described by Kbuild (kbuild reads it, not this file).

SHELL := /bin/bash
include scripts/versions.mk

# Which cached kernel to build against: `test` (the default), `debug`
# (KASAN, lockdep, kmemleak, DEBUG_OBJECTS; built with LLVM) or `arm64`
# (cross-built; scripts/kernel.sh). The debug and arm64 flavours' modules
# are built from a copy of the sources in build/module-FLAVOUR/ (kbuild's
# MO= needs a source tree without build outputs), so the modules coexist.
KFLAVOUR ?= test
# The kernel build tree to build the module against. Unset: the cached test
# (or debug) kernel, built on first use by scripts/kernel.sh.
ifeq ($(origin KDIR),undefined)
KDIR_IS_TEST_KERNEL := 1
KDIR = $(shell scripts/kernel.sh --flavour $(KFLAVOUR) --dir)
KARGS = $(shell scripts/kernel.sh --flavour $(KFLAVOUR) --make-args)
endif
KMOD_DIR = $(CURDIR)
ifneq ($(KFLAVOUR),test)
KMOD_DIR = $(CURDIR)/build/module-$(KFLAVOUR)
endif

KMAKE = $(MAKE) -C $(KDIR) M=$(KMOD_DIR) $(KARGS) RUSTC=$(KRUSTC) HOSTRUSTC=$(KRUSTC) BINDGEN=$(KBINDGEN)
CARGO ?= cargo
GUEST_TARGET := x86_64-unknown-linux-gnu
DIPCD_BIN := dipcd/target/$(GUEST_TARGET)/release/dipcd

.PHONY: all module kernel setup clippy fmt fmt-check dipcd dipcd-test programs \
	initramfs initramfs-arm64 check check-host check-imports check-packaging check-dkms check-cluster check-stock check-debug fuzz soak bench \
	clippy-module check-fresh \
	demo man clean

all: module

setup:
	scripts/setup.sh

kernel:
	@scripts/kernel.sh --flavour $(KFLAVOUR) >/dev/null

# The module, warning-free (Kbuild makes warnings errors).
module: $(if $(KDIR_IS_TEST_KERNEL),kernel)
ifneq ($(KFLAVOUR),test)
	mkdir -p $(KMOD_DIR)
	git ls-files -co --exclude-standard Kbuild src rust include dipcd/wire/src \
		| tar -cf - -T - | tar -xf - -C $(KMOD_DIR)
endif
	$(KMAKE) modules

# The module under clippy with the kernel's lint set, warnings as errors,
# then the userspace crates.
clippy: clippy-module
	cd dipcd && $(CARGO) clippy --all-targets -- -D warnings
	cd dipcd/fuzz && $(CARGO) clippy --all-targets -- -D warnings

clippy-module: $(if $(KDIR_IS_TEST_KERNEL),kernel)
	rm -f src/dipc_main.o
	$(KMAKE) CLIPPY=1 CLIPPY_DRIVER=$(KCLIPPY_DRIVER) modules

fmt:
	rustfmt --edition 2021 --config-path $(KSRC)/.rustfmt.toml src/*.rs
	cd dipcd && $(CARGO) fmt
	cd dipcd/fuzz && $(CARGO) fmt

fmt-check:
	rustfmt --check --edition 2021 --config-path $(KSRC)/.rustfmt.toml src/*.rs
	cd dipcd && $(CARGO) fmt --check
	cd dipcd/fuzz && $(CARGO) fmt --check

# dipcd for the guests: static, so it runs in a busybox initramfs.
dipcd:
	cd dipcd && RUSTFLAGS="-C target-feature=+crt-static" \
		$(CARGO) build --release --locked --target $(GUEST_TARGET)

dipcd-test:
	cd dipcd && $(CARGO) test --locked

# C test programs, static.
programs:
	$(MAKE) -C tests/programs

initramfs: module dipcd programs
	scripts/initramfs.sh build/initramfs.cpio.gz

# The arm64 node's image: the module cross-built against the arm64 test
# kernel, the C test programs cross-built, arm64 busybox.
initramfs-arm64:
	$(MAKE) KFLAVOUR=arm64 module
	$(MAKE) -C tests/programs arm64
	scripts/initramfs.sh --arch arm64 --module build/module-arm64/dipc.ko build/initramfs-arm64.cpio.gz

# The wire decoder under libFuzzer (scripts/fuzz.sh): FUZZ_SECONDS each run.
FUZZ_SECONDS ?= 30
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Host-side tests: the wire format and the referee (with a test peer on
# loopback), a short fuzz run, lints and formatting, the packaging files.
check-host: dipcd-test fmt-check fuzz check-packaging check-imports

# The module's files import each other in no cycle (scripts/check-imports.pl).
check-imports:
	scripts/check-imports.pl src

check-packaging:
	scripts/check-packaging.sh

# The module built by DKMS (dkms.conf) against the test kernels, x86-64 and arm64.
check-dkms: $(if $(KDIR_IS_TEST_KERNEL),kernel)
	scripts/dkms.sh check
	scripts/kernel.sh --flavour arm64 >/dev/null
	scripts/dkms.sh check arm64

# dipc on Debian's own kernel (scripts/stock-kernel.sh): the README's
# "Install on Debian" in a Debian 13 root, then foundation, sem, msg,
# compat32 and a short shm on 3 guests booting Debian's vmlinuz.
check-stock: dipcd programs
	scripts/stock-kernel.sh

# Regenerates the man pages of dipcd and dipcctl (Documentation/man/) from
# their command-line definitions; `make dipcd-test` fails while they differ.
man:
	cd dipcd && DIPC_UPDATE_MAN=1 $(CARGO) test --locked -p dipcd -p dipcctl man_pages

# Every cluster scenario (mixed.scenario boots an arm64 node beside x86-64 ones).
check-cluster: initramfs initramfs-arm64
	tests/cluster/run-all.sh

# scripts/setup.sh on a fresh Debian 12 root (debootstrap), then every
# artefact built in it (scripts/fresh-machine.sh): a package missing from
# setup.sh fails here with its name.
check-fresh:
	scripts/fresh-machine.sh

# Everything: set-up (idempotent), the fresh-machine check (first: on a cold
# cache the kernels it builds serve the rest), host tests, module build +
# clippy, cluster, and the cluster on Debian's stock kernel.
check: setup
	$(MAKE) check-fresh
	$(MAKE) check-host
	$(MAKE) clippy
	$(MAKE) check-dkms
	$(MAKE) check-cluster
	$(MAKE) check-stock

# The whole cluster suite on the debug kernel (KASAN, lockdep, kmemleak,
# DEBUG_OBJECTS): any report in any guest's kernel log fails the scenario
# (tests/guest/dmesg-clean.sh). Slower guests: more memory, longer limits,
# and the long test loops divided by 32 (dipc.scale=32). pci=noacpi: ACPI's
# PCI interrupt routing method (_PRT) runs in the AML interpreter, which on
# this kernel under TCG hit ACPICA's 30 s loop timeout twice per boot and
# left virtio without interrupts; the CPUs still come from ACPI's MADT.
check-debug: setup
	$(MAKE) KFLAVOUR=debug module
	$(MAKE) dipcd programs
	scripts/initramfs.sh --module build/module-debug/dipc.ko build/initramfs-debug.cpio.gz
	DIPC_KERNEL_FLAVOUR=debug DIPC_INITRD=build/initramfs-debug.cpio.gz \
		DIPC_OUT=build/cluster-debug DIPC_MEM=768 DIPC_TIMEOUT_SCALE=4 DIPC_APPEND="dipc.scale=32 pci=noacpi" \
		tests/cluster/run-all.sh

# A long run (not in make check): SOAK_MINUTES on 3 nodes, on the debug
# kernel unless SOAK_KERNEL=test; see scripts/soak.sh.
SOAK_MINUTES ?= 10
SOAK_KERNEL ?= debug
soak: setup
	scripts/soak.sh $(SOAK_MINUTES) $(SOAK_KERNEL)

# Benchmarks: figures beside their baselines from the same run (table,
# bench/results/DATE.json, bench/plots/*.svg, README). Not a test.
bench: setup
	$(MAKE) module dipcd programs
	$(MAKE) -C tests/programs mpi
	scripts/initramfs.sh --bench build/initramfs-bench.cpio.gz
	scripts/bench.sh

# A 3-node cluster running a distributed program (tests/cluster/demo.scenario).
demo: setup
	$(MAKE) initramfs
	tests/cluster/run-all.sh tests/cluster/demo.scenario

clean:
	-$(if $(wildcard $(KDIR)/Makefile),$(KMAKE) clean)
	rm -rf build
	cd dipcd && $(CARGO) clean
	$(MAKE) -C tests/programs clean
