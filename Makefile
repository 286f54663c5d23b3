# SPDX-License-Identifier: GPL-2.0
# dipc top-level Makefile. `make` builds dipc.ko; `make check` runs every test.
# The module itself is described by Kbuild (kbuild reads it, not this file).

SHELL := /bin/bash
include scripts/versions.mk

# The kernel build tree to build the module against. Unset: the cached test
# kernel (built on first use by scripts/kernel.sh).
ifeq ($(origin KDIR),undefined)
KDIR_IS_TEST_KERNEL := 1
KDIR = $(shell scripts/kernel.sh --dir)
endif

KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) RUSTC=$(KRUSTC) HOSTRUSTC=$(KRUSTC) BINDGEN=$(KBINDGEN)
CARGO ?= cargo
GUEST_TARGET := x86_64-unknown-linux-gnu
DIPCD_BIN := dipcd/target/$(GUEST_TARGET)/release/dipcd

.PHONY: all module kernel setup clippy fmt fmt-check dipcd dipcd-test programs \
	initramfs check check-host check-cluster bench demo clean

all: module

setup:
	scripts/setup.sh

kernel:
	@scripts/kernel.sh >/dev/null

# The module, warning-free (Kbuild makes warnings errors).
module: $(if $(KDIR_IS_TEST_KERNEL),kernel)
	$(KMAKE) modules

# The module under clippy with the kernel's lint set, warnings as errors.
clippy: $(if $(KDIR_IS_TEST_KERNEL),kernel)
	rm -f src/dipc_main.o
	$(KMAKE) CLIPPY=1 CLIPPY_DRIVER=$(KCLIPPY_DRIVER) modules
	cd dipcd && $(CARGO) clippy --all-targets -- -D warnings

fmt:
	rustfmt --edition 2021 --config-path $(KSRC)/.rustfmt.toml src/*.rs
	cd dipcd && $(CARGO) fmt

fmt-check:
	rustfmt --check --edition 2021 --config-path $(KSRC)/.rustfmt.toml src/*.rs
	cd dipcd && $(CARGO) fmt --check

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

# Host-side tests: the wire format and the referee, lints and formatting.
check-host: dipcd-test fmt-check

# The 3-node cluster scenario.
check-cluster: initramfs
	tests/cluster/run-all.sh

# Everything: set-up (idempotent), host tests, module build + clippy, cluster.
check: setup
	$(MAKE) check-host
	$(MAKE) clippy
	$(MAKE) check-cluster

# Benchmarks: figures beside their baselines from the same run (table,
# bench/results/DATE.json, bench/plots/*.svg, README). Not a test.
bench: setup
	$(MAKE) module dipcd programs
	scripts/initramfs.sh --bench build/initramfs-bench.cpio.gz
	scripts/bench.sh

# A 3-node cluster: the referee and the module on every node.
demo: setup
	$(MAKE) initramfs
	tests/cluster/run-all.sh tests/cluster/foundation.scenario

clean:
	-$(if $(wildcard $(KDIR)/Makefile),$(KMAKE) clean)
	rm -rf build
	cd dipcd && $(CARGO) clean
	$(MAKE) -C tests/programs clean
