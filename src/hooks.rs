// SPDX-License-Identifier: GPL-2.0

//! What a hooked SysV IPC syscall does.
//!
//! The C shim redirects each hooked syscall here (see `rust/helpers/hooks.c`)
//! unless `/proc/sys/dipc/enabled` is 0. For now every call is counted and
//! passed to the original syscall unchanged; the dispatch of distributed
//! objects to the referee comes next.

use crate::shim::{self, Counter};
use kernel::{bindings, prelude::*};

/// Hook names, in the order of `enum dipc_hook_id` in the C header.
pub(crate) const HOOK_NAMES: [&str; shim::NR_HOOKS] = [
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "ipc",
];

/// Per-CPU counter index of hook `id`'s calls.
pub(crate) const fn calls_counter(id: usize) -> usize {
    id
}

/// How many hooks are registered.
pub(crate) fn registered_count() -> usize {
    (0..shim::NR_HOOKS)
        .filter(|&id| shim::hook_registered(id))
        .count()
}

/// Called by the trampoline of hook `id` with the user's registers.
///
/// # Safety
///
/// Called only by the C trampolines: `ctx` is the context given to
/// [`shim::Hooks::register`] (alive while hooks are registered), `id` is the
/// hook's index (< `NR_HOOKS`), and `regs` the syscall's user registers.
#[no_mangle]
unsafe extern "C" fn dipc_rust_syscall(
    // The `Node`; unused while every call passes through. The dispatch of
    // distributed objects will borrow it with `shim::borrow_ctx`.
    _ctx: *mut c_void,
    id: c_uint,
    regs: *const bindings::pt_regs,
) -> c_long {
    Counter::inc(calls_counter(id as usize));
    // SAFETY: `regs` and `id` are what the trampoline of hook `id` received.
    unsafe { shim::call_original(id, regs) }
}
