// SPDX-License-Identifier: GPL-2.0

//! `/proc/sysvipc/{sem,msg,shm}` show a shadow as its distributed object
//! is, not as the local stand-in is: the message count and bytes of a
//! queue, the attach count of a segment, and every object's time stamps
//! and pids are the referee's. `ipcs` (util-linux) reads these files.
//!
//! The kernel prints each line with the object's spinlock held, where
//! nothing may wait for the network. So when such a file is opened
//! (`sysvipc_proc_open()`, wrapped in `rust/helpers/procipc.c`) the module
//! asks the referee about every shadow of that class (`*_STAT_ANY`, which
//! makes no permission check: the files list every object, as locally)
//! and keeps the answers here; the wrapped `sysvipc_*_proc_show()` prints
//! a shadow's line from them ([`dipc_rust_proc_stat`]) and any other line
//! as the kernel does ([`ProcStat`] is kept in [`crate::shadow`]). The owner, creator and mode come from the shadow
//! itself, which has the object's (see [`crate::ids::perm_changed`]).
//!
//! The answers are as fresh as the open: a line read later in the same
//! open shows the object as it was then. An object the referee could not
//! be asked about (no connection) shows its local values. The cost is one
//! round trip per shadow of the class per open; programs that read the
//! files often on a node with thousands of shadows pay it each time.

use crate::{
    msg,
    node::{ConnState, Node},
    sem,
    shadow::{ProcStat, Shadows},
    shim, shm,
    wire::Class,
};
use kernel::{prelude::*, rbtree::RBTree};

/// The class of id table `cls` (`IPC_SEM_IDS` 0, `IPC_MSG_IDS` 1,
/// `IPC_SHM_IDS` 2).
fn class_of(cls: c_int) -> Option<Class> {
    Class::from_ids_index(usize::try_from(cls).ok()?)
}

/// Asks the referee about every shadow of table `cls` and keeps the
/// answers (the opener's context: may sleep).
fn refresh(node: &Node, cls: usize, class: Class) {
    let mut fresh = RBTree::new();
    let mut pos = Shadows::first_of(class);
    while let Some((s, next)) = node.shadows.from(pos) {
        if s.class != class {
            break;
        }
        pos = next;
        // Without a connection, or for a task being killed, what is not
        // asked shows locally: an open does not wait for the referee once
        // per shadow.
        if shim::fatal_signal_pending() || node.conn.lock().state != ConnState::Connected {
            break;
        }
        let got = match class {
            Class::Sem => sem::proc_stat(node, s),
            Class::Msg => msg::proc_stat(node, s),
            Class::Shm => shm::proc_stat(node, s),
        };
        if let Some(st) = got {
            if fresh
                .try_create_and_insert(s.local_id, st, GFP_KERNEL)
                .is_err()
            {
                break;
            }
        }
    }
    let old = core::mem::replace(&mut node.proc_stats.lock()[cls], fresh);
    // Freed here, without the spinlock.
    drop(old);
}

/// Called when `/proc/sysvipc/{sem,msg,shm}` (table `cls`) is opened.
///
/// # Safety
///
/// `ctx` is the context given to [`shim::Hooks::register`], alive while
/// the hooks are registered.
#[no_mangle]
unsafe extern "C" fn dipc_rust_proc_refresh(ctx: *mut c_void, cls: c_int) {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    if let Some(class) = class_of(cls) {
        refresh(&node, cls as usize, class);
    }
}

/// Fills `*out` with what the line of object `id` in table `cls` shows, if
/// it is a shadow the last open asked about. Called with the object's
/// spinlock held: takes only a spinlock, allocates nothing.
///
/// # Safety
///
/// As for [`dipc_rust_proc_refresh`]; `out` is valid for writes.
#[no_mangle]
unsafe extern "C" fn dipc_rust_proc_stat(
    ctx: *mut c_void,
    cls: c_int,
    id: c_int,
    out: *mut ProcStat,
) -> bool {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    let Some(i) = class_of(cls).map(|_| cls as usize) else {
        return false;
    };
    let Some(st) = node.proc_stats.lock()[i].get(&id).copied() else {
        return false;
    };
    // SAFETY: `out` is valid for writes, per the function's contract.
    unsafe { out.write(st) };
    true
}
