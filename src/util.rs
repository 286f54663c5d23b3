// SPDX-License-Identifier: GPL-2.0

//! What every IPC class's node side uses, as `ipc/util.c` is to
//! `ipc/sem.c`: the key lookup at the referee, errno mapping, user copies,
//! and the layout of `struct ipc64_perm` at the start of every
//! `*id64_ds` (x86-64; `rust/helpers/layout.c` checks the offsets against
//! the kernel's headers at build time).

use crate::{
    node::Node,
    shim,
    wire::{errno, Class, Frame, Get, GetReply},
};
use kernel::{
    prelude::*,
    sync::atomic::Relaxed,
    uaccess::{UserPtr, UserSlice},
};

/// `IPC_DIPC` (`include/uapi/dipc.h`): ask for a distributed object.
pub(crate) const IPC_DIPC: i32 = 0o10000;
pub(crate) const IPC_CREAT: i32 = 0o1000;
/// `IPCMNI`: slots per id table (the kernel's default, without
/// `ipcmni_extend`).
pub(crate) const IPCMNI: i32 = 1 << IPCMNI_SHIFT;
/// `IPCMNI_SHIFT`: an id is `seq << 15 | index`.
pub(crate) const IPCMNI_SHIFT: u32 = 15;

/// Offsets in `struct ipc64_perm`, which begins every `*id64_ds` (from
/// the kernel's bindings).
pub(crate) mod perm {
    use core::mem::offset_of;
    use kernel::bindings::ipc64_perm;

    pub(crate) const KEY: usize = offset_of!(ipc64_perm, key);
    pub(crate) const UID: usize = offset_of!(ipc64_perm, uid);
    pub(crate) const GID: usize = offset_of!(ipc64_perm, gid);
    pub(crate) const CUID: usize = offset_of!(ipc64_perm, cuid);
    pub(crate) const CGID: usize = offset_of!(ipc64_perm, cgid);
    pub(crate) const MODE: usize = offset_of!(ipc64_perm, mode);
    pub(crate) const SEQ: usize = offset_of!(ipc64_perm, seq);
}

/// A native-endian `u32` at offset `o` of `b` (a structure copied in).
pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// What `IPC_SET` takes from the `struct ipc64_perm` of a `*id64_ds`: the
/// new owner, group and mode.
pub(crate) fn ipc_set_fields(ds: &[u8]) -> (u32, u32, u32) {
    (
        u32_at(ds, perm::UID),
        u32_at(ds, perm::GID),
        u32_at(ds, perm::MODE),
    )
}

pub(crate) fn neg(e: i32) -> c_long {
    -(e as c_long)
}

/// A result from the referee, as the syscall returns it: negative errno
/// values outside Linux's range become `-EIO`.
pub(crate) fn checked(result: i64) -> c_long {
    if result < -i64::from(errno::MAX) {
        neg(errno::EIO)
    } else {
        result as c_long
    }
}

/// The errno a failed transport gives the caller.
pub(crate) fn transport_err(e: Error) -> c_long {
    e.to_errno() as c_long
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

/// Writes the `struct ipc64_perm` at the start of an x86-64 `*id64_ds`: the
/// referee's owner and mode, and the sequence number of the local shadow's
/// id.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_ipc64_perm(
    ds: &mut [u8],
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    local_id: i32,
) {
    let mut put = |o: usize, b: &[u8]| ds[o..o + b.len()].copy_from_slice(b);
    put(perm::KEY, &key.to_ne_bytes());
    put(perm::UID, &uid.to_ne_bytes());
    put(perm::GID, &gid.to_ne_bytes());
    put(perm::CUID, &cuid.to_ne_bytes());
    put(perm::CGID, &cgid.to_ne_bytes());
    put(perm::MODE, &mode.to_ne_bytes());
    put(
        perm::SEQ,
        &((local_id as u32 >> IPCMNI_SHIFT) as u16).to_ne_bytes(),
    );
}

/// Copies `buf.len()` bytes in from user address `addr`; `-EFAULT` if that fails.
pub(crate) fn copy_in(addr: usize, buf: &mut [u8]) -> core::result::Result<(), c_long> {
    UserSlice::new(UserPtr::from_addr(addr), buf.len())
        .reader()
        .read_slice(buf)
        .map_err(|_| neg(errno::EFAULT))
}

/// Copies `buf` out to user address `addr`; `-EFAULT` if that fails.
pub(crate) fn copy_out(addr: usize, buf: &[u8]) -> core::result::Result<(), c_long> {
    UserSlice::new(UserPtr::from_addr(addr), buf.len())
        .writer()
        .write_slice(buf)
        .map_err(|_| neg(errno::EFAULT))
}
