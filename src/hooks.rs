// SPDX-License-Identifier: GPL-2.0

//! What a hooked SysV IPC syscall does.
//!
//! The C shim redirects each hooked syscall here (see `rust/helpers/hooks.c`)
//! unless `/proc/sys/dipc/enabled` is 0. Every call is counted. A call on a
//! distributed object goes to its handler ([`crate::sem`]); every other call
//! runs the original syscall unchanged, after one lock-free bitmap test
//! ([`crate::shadow::Shadows::maybe`]) for calls that take an id.

use crate::{
    compat::{self, Call, Decoded},
    ids, msg,
    node::Node,
    sem,
    shim::{
        self, Counter, HOOK_MSGCTL, HOOK_MSGGET, HOOK_MSGRCV, HOOK_MSGSND, HOOK_SEMCTL,
        HOOK_SEMGET, HOOK_SEMOP, HOOK_SEMTIMEDOP, HOOK_SHMAT, HOOK_SHMCTL, HOOK_SHMDT, HOOK_SHMGET,
    },
    shm,
    wire::{errno, Class},
};
use kernel::{bindings, prelude::*};

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
    ctx: *mut c_void,
    id: c_uint,
    regs: *const bindings::pt_regs,
) -> c_long {
    Counter::inc(calls_counter(id as usize));
    // SAFETY: per the function's contract `ctx` is the registered `Node`.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    // SAFETY: `regs` is what the trampoline of hook `id` received.
    let r = unsafe { shim::syscall_args(id, regs) };
    // The call in the 64-bit entry's terms (a 32-bit program's too).
    let call = match compat::decode(id, &r) {
        Decoded::Call(c) => c,
        // SAFETY: `regs` and `id` are what the trampoline of hook `id` received.
        Decoded::Local => return unsafe { shim::call_original(id, regs) },
        Decoded::Fail(e) => return e,
    };
    // SAFETY: `regs` is the trampoline's register set for hook `id`.
    if let Some(ret) = unsafe { run(&node, id, regs, &call) } {
        return ret;
    }
    // SAFETY: `regs` and `id` are what the trampoline of hook `id` received.
    let ret = unsafe { shim::call_original(id, regs) };
    // An id this node has no shadow of may be another node's: an id in
    // the upper half that the local kernel does not know is asked about.
    let Some(class) = takes_id(call.hook, [call.a[0], call.a[1], call.a[2]]) else {
        return ret;
    };
    let obj = call.a[0] as i32;
    if ret != -(errno::EINVAL as c_long) || !ids::in_cluster_range(obj) {
        return ret;
    }
    let Some(reply) = ids::lookup(&node, class, obj) else {
        return ret;
    };
    let made = match class {
        Class::Sem => sem::shadow(&node, &reply),
        Class::Msg => msg::shadow(&node, &reply),
        Class::Shm => shm::shadow(&node, &reply),
    };
    if made != obj as c_long {
        return ret;
    }
    // SAFETY: as above.
    unsafe { run(&node, id, regs, &call) }.unwrap_or(ret)
}

/// Runs `call` (of hook `id`, with the user's registers `regs`) if it is
/// on a distributed object; `None` for every other call.
///
/// # Safety
///
/// `regs` must be the register set the trampoline of hook `id` received.
unsafe fn run(node: &Node, id: u32, regs: *const bindings::pt_regs, call: &Call) -> Option<c_long> {
    let a = call.a;
    match call.hook {
        // shmat runs the original call itself, with the user's registers
        // (for `ipc(SHMAT)` that original also stores the address);
        // shmdt of a distributed segment is done by the module.
        HOOK_SHMAT => {
            let s = node.shadows.get(Class::Shm, a[0] as i32)?;
            // SAFETY: per the function's contract.
            Some(unsafe { shm::shmat(node, s, id, regs, a[1], a[2] as i32) })
        }
        HOOK_SHMDT => shm::shmdt(node, a[0]),
        _ => dispatch(node, call),
    }
}

/// The class of the object a call of hook `id` with arguments `a` names
/// by its id (the first argument); `None` for calls that take a key, an
/// index or nothing.
fn takes_id(id: u32, a: [usize; 3]) -> Option<Class> {
    // IPC_RMID, IPC_SET and IPC_STAT are 0, 1, 2 for every class.
    let ctl_by_id = |cmd: usize| matches!(cmd as i32, 0..=2);
    match id {
        HOOK_SEMOP | HOOK_SEMTIMEDOP => Some(Class::Sem),
        HOOK_SEMCTL if sem::semctl_uses_id(a[2] as i32) => Some(Class::Sem),
        HOOK_MSGSND | HOOK_MSGRCV => Some(Class::Msg),
        HOOK_MSGCTL if ctl_by_id(a[1]) => Some(Class::Msg),
        HOOK_SHMAT => Some(Class::Shm),
        HOOK_SHMCTL if ctl_by_id(a[1]) => Some(Class::Shm),
        _ => None,
    }
}

/// Runs a call on a distributed object; `None` for every other call.
fn dispatch(node: &Node, call: &Call) -> Option<c_long> {
    let (id, a, abi) = (call.hook, call.a, call.abi);
    match id {
        HOOK_SEMGET => {
            let (key, nsems, flg) = (a[0] as i32, a[1] as i32, a[2] as i32);
            ids::is_distributed(node, key, flg).then(|| sem::semget(node, key, nsems, flg))
        }
        HOOK_SEMOP | HOOK_SEMTIMEDOP => {
            // `get` is the lock-free bitmap test first, the map only on a hit.
            let s = node.shadows.get(Class::Sem, a[0] as i32)?;
            let timeout = if id == HOOK_SEMTIMEDOP { a[3] } else { 0 };
            // nsops is an unsigned int.
            Some(sem::semtimedop(
                node,
                s,
                a[1],
                a[2] as u32 as usize,
                timeout,
                call.time,
            ))
        }
        HOOK_SEMCTL => {
            let (semid, semnum, cmd) = (a[0] as i32, a[1] as i32, a[2] as i32);
            if sem::semctl_stat(cmd) {
                // A slot, not an id: the shadow there shows the set as the
                // referee has it (its otime and ctime are not the shadow's).
                let s = node.shadows.by_index(Class::Sem, semid)?;
                return Some(sem::semctl(node, s, semnum, cmd, a[3], abi));
            }
            if !sem::semctl_uses_id(cmd) {
                return None;
            }
            let s = node.shadows.get(Class::Sem, semid)?;
            Some(sem::semctl(node, s, semnum, cmd, a[3], abi))
        }
        HOOK_MSGGET => {
            let (key, flg) = (a[0] as i32, a[1] as i32);
            ids::is_distributed(node, key, flg).then(|| msg::msgget(node, key, flg))
        }
        HOOK_MSGSND => {
            let s = node.shadows.get(Class::Msg, a[0] as i32)?;
            Some(msg::msgsnd(node, s, a[1], a[2], a[3] as i32, abi))
        }
        HOOK_MSGRCV => {
            let s = node.shadows.get(Class::Msg, a[0] as i32)?;
            Some(msg::msgrcv(
                node,
                s,
                a[1],
                a[2],
                a[3] as i64,
                a[4] as i32,
                abi,
            ))
        }
        HOOK_MSGCTL => msg::msgctl(node, a[0] as i32, a[1] as i32, a[2], abi),
        HOOK_SHMGET => {
            let (key, size, flg) = (a[0] as i32, a[1], a[2] as i32);
            ids::is_distributed(node, key, flg).then(|| shm::shmget(node, key, size, flg))
        }
        HOOK_SHMCTL => shm::shmctl(node, a[0] as i32, a[1] as i32, a[2], abi),
        _ => None,
    }
}
