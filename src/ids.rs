// SPDX-License-Identifier: GPL-2.0

//! Cluster-wide ids: a distributed object has one SysV id, chosen by the
//! referee, and every node's shadow of it has that id.
//!
//! The referee hands out ids from the top of the id table down (slot
//! 32767 first, the upper half while it has room; `dipcd`'s
//! `referee/ids.rs`). A node makes a shadow as before, through the
//! original `*get`, which puts it where the kernel puts any new object (the
//! lowest free slots), and then moves it to its id ([`place`], through
//! `rust/helpers/ipcid.c`) before the id is returned to anyone.
//!
//! When the slot is taken on this node:
//! - by a shadow of an object the referee has since removed (the node did
//!   not hear of it), that shadow goes and the move is made;
//! - by a local object (the node has more than about 21 000 objects of
//!   the class, so the kernel's own allocation reaches the upper half),
//!   the call fails with `ENOSPC`, as a `*get` does when the table is full,
//!   the shadow is not made, and the kernel log names the key and the id.
//!   The object never appears here under another id.
//!
//! A call given an id that is not a shadow here (printed on another node,
//! passed in a message or a file) reaches the module when the id lies in
//! the upper half ([`CLUSTER_FLOOR`]; `dipc_needs_module()` in
//! `rust/helpers/hooks.c`). The module runs it locally first; only if the
//! local kernel answers `EINVAL` (no such object) does it ask the referee
//! ([`lookup`]), make the shadow, and run the call on the distributed
//! object.

use crate::{
    node::Node,
    shadow::{Late, Shadow},
    shim::{self, HOOK_MSGCTL, HOOK_SEMCTL, HOOK_SHMCTL},
    util::{checked, neg, transport_err, IPCMNI, IPC_DIPC},
    wire::{errno, Class, Frame, Get, GetReply, IpcPerm, Lookup, MsgCtl, SemCtl, ShmCtl},
};
use kernel::{prelude::*, sync::atomic::Relaxed};

/// The lowest slot of the upper half, where the referee hands out ids
/// while it has room: calls on ids from here up reach the module even when
/// they are no shadow (the C side has the same number).
pub(crate) const CLUSTER_FLOOR: i32 = IPCMNI / 2;

/// Whether `id` may be a cluster-wide id this node has no shadow of.
pub(crate) fn in_cluster_range(id: i32) -> bool {
    id >= 0 && id % IPCMNI >= CLUSTER_FLOOR
}

/// The kernel's index of `class`'s id table (`IPC_SEM_IDS` & co.).
fn table(class: Class) -> i32 {
    class.ids_index() as i32
}

/// Removes local object `id` of `class` (a shadow being dropped or one
/// that could not be placed), with the kernel's `IPC_RMID` and the
/// module's privileges: the shadow is the module's, whoever's call finds
/// it stale, and a caller's own `IPC_RMID` was checked at the referee.
pub(crate) fn rmid_local(class: Class, id: i32) {
    let hook = match class {
        Class::Sem => HOOK_SEMCTL,
        Class::Msg => HOOK_MSGCTL,
        Class::Shm => HOOK_SHMCTL,
    };
    // IPC_RMID is 0 for every class, and the zeroes after the id are what
    // each *ctl needs: semctl's semnum and cmd, msgctl's and shmctl's cmd.
    shim::call_original_args_priv(hook, [id as c_long, 0, 0, 0]);
}

/// What making a shadow needs from its class.
pub(crate) struct Make<G, E, R> {
    /// The original `*get` that creates the local object (`IPC_CREAT` and
    /// the object's mode): its id or a negative errno.
    pub(crate) get: G,
    /// A failed `get`: `true` if it found a stale local object with the
    /// key and removed it, so the `get` is tried again.
    pub(crate) stale: E,
    /// Called once the shadow is placed, before it is recorded: what else
    /// the class keeps for the object (a segment's page states).
    pub(crate) ready: R,
}

/// Finds or makes the local shadow of the object the referee described in
/// `r`, at its cluster-wide id: its id, or what the `*get` returns.
pub(crate) fn shadow<G, E, R>(
    node: &Node,
    class: Class,
    r: &GetReply,
    mut m: Make<G, E, R>,
) -> c_long
where
    G: FnMut() -> c_long,
    E: FnMut(c_long) -> bool,
    R: FnMut() -> core::result::Result<(), c_long>,
{
    let mut making = node.shadows.making();
    if let Some(s) = node.shadows.by_oid(class, r.oid) {
        return s.local_id as c_long;
    }
    // Two tries: the first may find a stale shadow with this key (its
    // object was removed while this node did not hear of it).
    for _ in 0..2 {
        let id = (m.get)();
        if id < 0 {
            if (m.stale)(id) {
                continue;
            }
            return id;
        }
        let id = id as i32;
        if let Some(old) = node.shadows.get(class, id) {
            if old.oid != r.oid {
                node.shadows.remove(class, id);
                rmid_local(class, id);
                continue;
            }
        }
        if let Err(e) = place(node, class, r, id, &mut making) {
            return e;
        }
        if let Err(e) = (m.ready)() {
            rmid_local(class, r.id);
            return e;
        }
        let s = Shadow {
            class,
            local_id: r.id,
            oid: r.oid,
            size: r.size,
        };
        return match node.shadows.insert(s) {
            Ok(()) => r.id as c_long,
            Err(e) => e.to_errno() as c_long,
        };
    }
    -(errno::EEXIST as c_long)
}

/// The caller's `IPC_RMID` removed the object at the referee: its shadow
/// `id` goes before the call returns. The connection thread, told by the
/// referee, may be dropping it at the same moment ([`drop_shadow`]) and may
/// have taken it out of the table already; the local object is removed
/// here all the same, and the kernel's `IPC_RMID` waits for the other one
/// (the table's rwsem), so the id names nothing when this returns and a
/// call on it fails as locally (`EINVAL`, not `EIDRM`).
pub(crate) fn drop_local(node: &Node, class: Class, id: i32) {
    node.shadows.remove(class, id);
    rmid_local(class, id);
}

/// Drops the shadow of object `oid` of `class`, if this node has one: the
/// referee removed the object.
pub(crate) fn drop_shadow(node: &Node, class: Class, oid: u64) {
    if let Some(s) = node.shadows.by_oid(class, oid) {
        node.shadows.remove(class, s.local_id);
        rmid_local(class, s.local_id);
    }
}

/// Moves the new local object `id`, the shadow being made for the object
/// the referee described in `r`, to the object's cluster-wide id, and
/// gives it the object's owner, creator and mode (or newer ones from
/// `late`). On failure the local object is removed and the call's result
/// returned as `Err`. The caller holds [`crate::shadow::Shadows::making`],
/// whose guard `late` is.
pub(crate) fn place(
    node: &Node,
    class: Class,
    r: &GetReply,
    id: i32,
    late: &mut Late,
) -> core::result::Result<(), c_long> {
    move_to(node, class, r.key, id, r.id, r.oid)?;
    let perm = late.take(class, r.oid).unwrap_or(r.perm);
    // Fails only for an id that names nothing, which the making lock
    // rules out, or for ids the referee never hands out ((uid_t)-1).
    set_perm(class, r.id, &perm);
    Ok(())
}

/// Gives shadow `id` of `class` the owner, creator and mode in `perm`.
fn set_perm(class: Class, id: i32, perm: &IpcPerm) -> c_int {
    shim::ipc_set_perm(table(class), id, perm)
}

/// The referee says an `IPC_SET` gave object `oid` the owner and mode in
/// `perm` (connection thread): its shadow here shows them from now on, or
/// the shadow being made will ([`Late`]).
pub(crate) fn perm_changed(node: &Node, class: Class, oid: u64, perm: IpcPerm) {
    let mut late = node.shadows.making();
    match node.shadows.by_oid(class, oid) {
        Some(s) => {
            set_perm(class, s.local_id, &perm);
        }
        None => late.put(class, oid, perm),
    }
}

/// [`place`]'s move of local object `id` (made for object `oid` with key
/// `key`) to id `want`.
fn move_to(
    node: &Node,
    class: Class,
    key: i32,
    id: i32,
    want: i32,
    oid: u64,
) -> core::result::Result<(), c_long> {
    if id == want {
        return Ok(());
    }
    // Two tries: the first may find a stale shadow in the slot.
    for _ in 0..2 {
        let r = shim::ipc_move(table(class), id, want);
        if r == 0 {
            return Ok(());
        }
        if r != -errno::ENOSPC {
            rmid_local(class, id);
            return Err(r as c_long);
        }
        match node.shadows.by_index(class, want % IPCMNI) {
            Some(old) if old.oid != oid => {
                // Its object is gone at the referee, which reused the slot.
                node.shadows.remove(class, old.local_id);
                rmid_local(class, old.local_id);
            }
            _ => break,
        }
    }
    rmid_local(class, id);
    pr_warn!(
        "{:?} key {:#x}: id {} is taken by a local object on this node; not distributed here (ENOSPC)\n",
        class,
        key,
        want
    );
    Err(-(errno::ENOSPC as c_long))
}

/// Asks the referee which object has id `id` (no permission check: the
/// call that follows makes its own). `None` when none has, or when there
/// is no referee to ask.
pub(crate) fn lookup(node: &Node, class: Class, id: i32) -> Option<GetReply> {
    let answer = node.call(&Frame::Lookup(Lookup { class, id }), None).ok()?;
    match answer.frame() {
        Ok(Frame::GetReply(r)) if r.result == 0 && r.id == id => Some(r),
        _ => None,
    }
}

/// The node could not make the shadow of an object its `*get` had just
/// created at the referee (`r.created`): removes the object again, as the
/// caller, its owner, so a failed `*get` leaves nothing behind, as
/// locally. Returns `err`, the call's result.
pub(crate) fn undo_create(node: &Node, class: Class, r: &GetReply, err: c_long) -> c_long {
    if r.created == 0 {
        return err;
    }
    let (pid, cred, oid) = (shim::current_tgid(), shim::current_cred(), r.oid);
    // IPC_RMID is 0 for every class.
    let frame = match class {
        Class::Sem => Frame::SemCtl(SemCtl::new(oid, pid, cred, 0)),
        Class::Msg => Frame::MsgCtl(MsgCtl::new(oid, pid, cred, 0)),
        Class::Shm => Frame::ShmCtl(ShmCtl::new(oid, pid, cred, 0)),
    };
    // Nothing more can be done if this fails: the object stays, as one a
    // node that died right after creating it leaves.
    let _ = node.call(&frame, None);
    err
}

/// Whether a `semget` (or `msgget`) with `key` and `flg` is for a
/// distributed object.
pub(crate) fn is_distributed(node: &Node, key: i32, flg: i32) -> bool {
    key != 0
        && node.joined.load(Relaxed) != 0
        && (flg & IPC_DIPC != 0
            || (node.policy_any.load(Relaxed) != 0 && node.policy.lock().contains(key)))
}

/// Asks the referee for the object of class `class` with `key` (`ipcget()`
/// there): its `GetReply`, or the value the `get` syscall returns on
/// failure.
pub(crate) fn get_object(
    node: &Node,
    class: Class,
    key: i32,
    flg: i32,
    size: u64,
) -> core::result::Result<GetReply, c_long> {
    let get = Get {
        class,
        key,
        flags: flg & !IPC_DIPC,
        size,
        cred: shim::current_cred(),
        pid: shim::current_tgid(),
    };
    let answer = node.call(&Frame::Get(get), None).map_err(transport_err)?;
    let reply = match answer.frame() {
        Ok(Frame::GetReply(r)) => r,
        _ => return Err(neg(errno::EIO)),
    };
    if reply.result < 0 {
        return Err(checked(reply.result.into()));
    }
    Ok(reply)
}
