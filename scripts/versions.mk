# The toolchain paths of scripts/versions.sh, for make.
KRUSTC := $(shell . scripts/versions.sh && echo $$KRUSTC)
KBINDGEN := $(shell . scripts/versions.sh && echo $$KBINDGEN)
KCLIPPY_DRIVER := $(shell . scripts/versions.sh && echo $$KCLIPPY_DRIVER)
KSRC := $(shell . scripts/versions.sh && echo $$DIPC_CACHE/src/$${KERNEL_SOURCE_PKG}_$${KERNEL_SOURCE_VERSION})
export LIBCLANG_PATH := $(shell . scripts/versions.sh && echo $$LIBCLANG_PATH)
