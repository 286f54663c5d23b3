// SPDX-License-Identifier: GPL-2.0

//! What every IPC class's node side uses, as `ipc/util.c` is to
//! `ipc/sem.c`: errno mapping and user copies. The structures the calls
//! copy are in [`crate::layout`]; the key lookup at the referee is
//! [`crate::ids::get_object`].

use crate::wire::errno;
use kernel::{
    prelude::*,
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

/// A native-endian `u32` at offset `o` of `b` (a structure copied in).
pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
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
