// SPDX-License-Identifier: GPL-2.0

//! The structures the `*ctl` calls copy to and from user memory, in the
//! caller's ABI: `struct *id64_ds` for x86-64 programs; for 32-bit programs
//! (IA32 emulation) `struct compat_*id64_ds`, or with `ipc(2)` and no
//! `IPC_64` flag the old `struct compat_*id_ds` with 16-bit owners, as
//! `ipc/compat.c`, `ipc/sem.c`, `ipc/msg.c` and `ipc/shm.c` write them.
//!
//! Offsets of the x86-64 and `compat_*64` layouts come from the kernel's
//! bindings where it has them (`rust/helpers/layout.c` checks the rest
//! against its headers); the old layouts are defined in `ipc/*.c` only, and
//! are mirrored here.

use crate::{
    util::{copy_in, u32_at, IPCMNI_SHIFT},
    wire::{Class, IpcStat, MsgStat, ShmStat},
};
use core::mem::{offset_of, size_of};
use kernel::{bindings, prelude::*};

/// The ABI of the calling program.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Abi {
    /// x86-64: `struct *id64_ds`, an 8-byte `long`.
    Native,
    /// A 32-bit program, with `IPC_64` (every libc since 2002):
    /// `struct compat_*id64_ds`, a 4-byte `long`.
    Compat,
    /// A 32-bit program's `ipc(2)` without `IPC_64`: the old
    /// `struct compat_*id_ds`.
    CompatOld,
}

impl Abi {
    /// `sizeof(long)`: the `mtype` that begins a `struct msgbuf`.
    pub(crate) fn long_len(self) -> usize {
        match self {
            Abi::Native => 8,
            Abi::Compat | Abi::CompatOld => 4,
        }
    }
}

/// The largest structure written here (`struct msqid64_ds`).
const DS_MAX: usize = 120;

/// A structure in the caller's layout; fields not set are 0, as the kernel
/// clears every structure before it fills it.
pub(crate) struct Ds {
    b: [u8; DS_MAX],
    len: usize,
}

impl Ds {
    fn new(len: usize) -> Self {
        Ds {
            b: [0; DS_MAX],
            len: len.min(DS_MAX),
        }
    }

    fn put(&mut self, o: usize, v: &[u8]) {
        if let Some(d) = self.b.get_mut(o..o + v.len()) {
            d.copy_from_slice(v);
        }
    }

    /// Low and high halves of a 64-bit time at `lo` and `hi` (the
    /// `compat_*id64_ds` layout).
    fn put_split(&mut self, lo: usize, hi: usize, t: i64) {
        self.put(lo, &(t as u32).to_ne_bytes());
        self.put(hi, &((t as u64 >> 32) as u32).to_ne_bytes());
    }

    /// The bytes to copy out.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.b[..self.len]
    }
}

/// `struct compat_ipc_perm` (`ipc/util.h`).
#[repr(C)]
struct OldPerm {
    key: i32,
    uid: u16,
    gid: u16,
    cuid: u16,
    cgid: u16,
    mode: u16,
    seq: u16,
}

/// `struct compat_semid_ds` (`ipc/sem.c`).
#[repr(C)]
struct OldSemid {
    perm: OldPerm,
    otime: i32,
    ctime: i32,
    base: u32,
    pending: u32,
    pending_last: u32,
    undo: u32,
    nsems: u16,
}

/// `struct compat_msqid_ds` (`ipc/msg.c`; `compat_ipc_pid_t` is 16 bits
/// on x86).
#[repr(C)]
struct OldMsqid {
    perm: OldPerm,
    first: u32,
    last: u32,
    stime: i32,
    rtime: i32,
    ctime: i32,
    lcbytes: u32,
    lqbytes: u32,
    cbytes: u16,
    qnum: u16,
    qbytes: u16,
    lspid: u16,
    lrpid: u16,
}

/// `struct compat_shmid_ds` (`ipc/shm.c`).
#[repr(C)]
struct OldShmid {
    perm: OldPerm,
    segsz: i32,
    atime: i32,
    dtime: i32,
    ctime: i32,
    cpid: u16,
    lpid: u16,
    nattch: u16,
    unused: u16,
    unused2: u32,
    unused3: u32,
}

/// The owner and mode an object shows, with the sequence number of the
/// local shadow's id.
struct Perm {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    local_id: i32,
}

/// The [`Perm`] of a referee's `IpcStat`, `MsgStat` or `ShmStat` (each
/// has the same owner fields) for the shadow with id `local_id`.
macro_rules! perm_of {
    ($st:expr, $local_id:expr) => {
        Perm {
            key: $st.key,
            uid: $st.uid,
            gid: $st.gid,
            cuid: $st.cuid,
            cgid: $st.cgid,
            mode: $st.mode,
            local_id: $local_id,
        }
    };
}

/// `high2lowuid()`/`high2lowgid()`: an id that does not fit 16 bits shows
/// as the overflow id (`kernel.overflowuid`, 65534 unless changed).
fn low16(id: u32, gid: bool) -> u16 {
    if id & !0xffff == 0 {
        return id as u16;
    }
    // SAFETY: `overflowuid` and `overflowgid` are plain `int`s the kernel
    // exports and changes only through sysctl; a racy read gives the old
    // or the new value, as it does for `ipc/compat.c`.
    let v = unsafe {
        if gid {
            core::ptr::read_volatile(&raw const bindings::overflowgid)
        } else {
            core::ptr::read_volatile(&raw const bindings::overflowuid)
        }
    };
    v as u16
}

/// The sequence number of id `local_id`.
fn seq(local_id: i32) -> u16 {
    (local_id as u32 >> IPCMNI_SHIFT) as u16
}

/// Writes the permission block that begins every structure, at offset 0.
fn put_perm(ds: &mut Ds, abi: Abi, p: &Perm) {
    match abi {
        Abi::Native => {
            use bindings::ipc64_perm as P;
            ds.put(offset_of!(P, key), &p.key.to_ne_bytes());
            ds.put(offset_of!(P, uid), &p.uid.to_ne_bytes());
            ds.put(offset_of!(P, gid), &p.gid.to_ne_bytes());
            ds.put(offset_of!(P, cuid), &p.cuid.to_ne_bytes());
            ds.put(offset_of!(P, cgid), &p.cgid.to_ne_bytes());
            ds.put(offset_of!(P, mode), &p.mode.to_ne_bytes());
            ds.put(offset_of!(P, seq), &seq(p.local_id).to_ne_bytes());
        }
        Abi::Compat => {
            use bindings::compat_ipc64_perm as P;
            ds.put(offset_of!(P, key), &p.key.to_ne_bytes());
            ds.put(offset_of!(P, uid), &p.uid.to_ne_bytes());
            ds.put(offset_of!(P, gid), &p.gid.to_ne_bytes());
            ds.put(offset_of!(P, cuid), &p.cuid.to_ne_bytes());
            ds.put(offset_of!(P, cgid), &p.cgid.to_ne_bytes());
            ds.put(offset_of!(P, mode), &(p.mode as u16).to_ne_bytes());
            ds.put(offset_of!(P, seq), &seq(p.local_id).to_ne_bytes());
        }
        Abi::CompatOld => {
            ds.put(offset_of!(OldPerm, key), &p.key.to_ne_bytes());
            ds.put(offset_of!(OldPerm, uid), &low16(p.uid, false).to_ne_bytes());
            ds.put(offset_of!(OldPerm, gid), &low16(p.gid, true).to_ne_bytes());
            ds.put(
                offset_of!(OldPerm, cuid),
                &low16(p.cuid, false).to_ne_bytes(),
            );
            ds.put(
                offset_of!(OldPerm, cgid),
                &low16(p.cgid, true).to_ne_bytes(),
            );
            ds.put(offset_of!(OldPerm, mode), &(p.mode as u16).to_ne_bytes());
            ds.put(offset_of!(OldPerm, seq), &seq(p.local_id).to_ne_bytes());
        }
    }
}

/// `struct semid64_ds` (or its 32-bit forms) for `semctl(IPC_STAT)`.
pub(crate) fn semid_ds(abi: Abi, st: &IpcStat, local_id: i32) -> Ds {
    let perm = perm_of!(st, local_id);
    match abi {
        Abi::Native => {
            use bindings::semid64_ds as S;
            let mut ds = Ds::new(size_of::<S>());
            put_perm(&mut ds, abi, &perm);
            ds.put(offset_of!(S, sem_otime), &st.otime.to_ne_bytes());
            ds.put(offset_of!(S, sem_ctime), &st.ctime.to_ne_bytes());
            ds.put(offset_of!(S, sem_nsems), &u64::from(st.nsems).to_ne_bytes());
            ds
        }
        Abi::Compat => {
            use bindings::compat_semid64_ds as S;
            let mut ds = Ds::new(size_of::<S>());
            put_perm(&mut ds, abi, &perm);
            ds.put_split(
                offset_of!(S, sem_otime),
                offset_of!(S, sem_otime_high),
                st.otime,
            );
            ds.put_split(
                offset_of!(S, sem_ctime),
                offset_of!(S, sem_ctime_high),
                st.ctime,
            );
            ds.put(offset_of!(S, sem_nsems), &st.nsems.to_ne_bytes());
            ds
        }
        Abi::CompatOld => {
            let mut ds = Ds::new(size_of::<OldSemid>());
            put_perm(&mut ds, abi, &perm);
            ds.put(
                offset_of!(OldSemid, otime),
                &(st.otime as i32).to_ne_bytes(),
            );
            ds.put(
                offset_of!(OldSemid, ctime),
                &(st.ctime as i32).to_ne_bytes(),
            );
            ds.put(
                offset_of!(OldSemid, nsems),
                &(st.nsems as u16).to_ne_bytes(),
            );
            ds
        }
    }
}

/// `struct msqid64_ds` as x86-64 has it (the bindings lack it;
/// `rust/helpers/layout.c` checks these).
mod msqid64 {
    pub(super) const LEN: usize = 120;
    pub(super) const STIME: usize = 48;
    pub(super) const RTIME: usize = 56;
    pub(super) const CTIME: usize = 64;
    pub(super) const CBYTES: usize = 72;
    pub(super) const QNUM: usize = 80;
    pub(super) const QBYTES: usize = 88;
    pub(super) const LSPID: usize = 96;
    pub(super) const LRPID: usize = 100;
}

/// `struct msqid64_ds` (or its 32-bit forms) for `msgctl(IPC_STAT)`.
pub(crate) fn msqid_ds(abi: Abi, st: &MsgStat, local_id: i32) -> Ds {
    let perm = perm_of!(st, local_id);
    match abi {
        Abi::Native => {
            use msqid64 as M;
            let mut ds = Ds::new(M::LEN);
            put_perm(&mut ds, abi, &perm);
            ds.put(M::STIME, &st.stime.to_ne_bytes());
            ds.put(M::RTIME, &st.rtime.to_ne_bytes());
            ds.put(M::CTIME, &st.ctime.to_ne_bytes());
            ds.put(M::CBYTES, &st.cbytes.to_ne_bytes());
            ds.put(M::QNUM, &st.qnum.to_ne_bytes());
            ds.put(M::QBYTES, &st.qbytes.to_ne_bytes());
            ds.put(M::LSPID, &st.lspid.to_ne_bytes());
            ds.put(M::LRPID, &st.lrpid.to_ne_bytes());
            ds
        }
        Abi::Compat => {
            use bindings::compat_msqid64_ds as M;
            let mut ds = Ds::new(size_of::<M>());
            put_perm(&mut ds, abi, &perm);
            ds.put_split(
                offset_of!(M, msg_stime),
                offset_of!(M, msg_stime_high),
                st.stime,
            );
            ds.put_split(
                offset_of!(M, msg_rtime),
                offset_of!(M, msg_rtime_high),
                st.rtime,
            );
            ds.put_split(
                offset_of!(M, msg_ctime),
                offset_of!(M, msg_ctime_high),
                st.ctime,
            );
            ds.put(offset_of!(M, msg_cbytes), &(st.cbytes as u32).to_ne_bytes());
            ds.put(offset_of!(M, msg_qnum), &(st.qnum as u32).to_ne_bytes());
            ds.put(offset_of!(M, msg_qbytes), &(st.qbytes as u32).to_ne_bytes());
            ds.put(offset_of!(M, msg_lspid), &st.lspid.to_ne_bytes());
            ds.put(offset_of!(M, msg_lrpid), &st.lrpid.to_ne_bytes());
            ds
        }
        Abi::CompatOld => {
            use OldMsqid as M;
            let mut ds = Ds::new(size_of::<M>());
            put_perm(&mut ds, abi, &perm);
            ds.put(offset_of!(M, stime), &(st.stime as i32).to_ne_bytes());
            ds.put(offset_of!(M, rtime), &(st.rtime as i32).to_ne_bytes());
            ds.put(offset_of!(M, ctime), &(st.ctime as i32).to_ne_bytes());
            ds.put(offset_of!(M, cbytes), &(st.cbytes as u16).to_ne_bytes());
            ds.put(offset_of!(M, qnum), &(st.qnum as u16).to_ne_bytes());
            ds.put(offset_of!(M, qbytes), &(st.qbytes as u16).to_ne_bytes());
            ds.put(offset_of!(M, lspid), &(st.lspid as u16).to_ne_bytes());
            ds.put(offset_of!(M, lrpid), &(st.lrpid as u16).to_ne_bytes());
            ds
        }
    }
}

/// `struct shmid64_ds` as x86-64 has it (the bindings lack it;
/// `rust/helpers/layout.c` checks these).
mod shmid64 {
    pub(super) const LEN: usize = 112;
    pub(super) const SEGSZ: usize = 48;
    pub(super) const ATIME: usize = 56;
    pub(super) const DTIME: usize = 64;
    pub(super) const CTIME: usize = 72;
    pub(super) const CPID: usize = 80;
    pub(super) const LPID: usize = 84;
    pub(super) const NATTCH: usize = 88;
}

/// `struct shmid64_ds` (or its 32-bit forms) for `shmctl(IPC_STAT)`.
pub(crate) fn shmid_ds(abi: Abi, st: &ShmStat, local_id: i32) -> Ds {
    let perm = perm_of!(st, local_id);
    match abi {
        Abi::Native => {
            use shmid64 as S;
            let mut ds = Ds::new(S::LEN);
            put_perm(&mut ds, abi, &perm);
            ds.put(S::SEGSZ, &st.segsz.to_ne_bytes());
            ds.put(S::ATIME, &st.atime.to_ne_bytes());
            ds.put(S::DTIME, &st.dtime.to_ne_bytes());
            ds.put(S::CTIME, &st.ctime.to_ne_bytes());
            ds.put(S::CPID, &st.cpid.to_ne_bytes());
            ds.put(S::LPID, &st.lpid.to_ne_bytes());
            ds.put(S::NATTCH, &st.nattch.to_ne_bytes());
            ds
        }
        Abi::Compat => {
            use bindings::compat_shmid64_ds as S;
            let mut ds = Ds::new(size_of::<S>());
            put_perm(&mut ds, abi, &perm);
            ds.put(offset_of!(S, shm_segsz), &(st.segsz as u32).to_ne_bytes());
            ds.put_split(
                offset_of!(S, shm_atime),
                offset_of!(S, shm_atime_high),
                st.atime,
            );
            ds.put_split(
                offset_of!(S, shm_dtime),
                offset_of!(S, shm_dtime_high),
                st.dtime,
            );
            ds.put_split(
                offset_of!(S, shm_ctime),
                offset_of!(S, shm_ctime_high),
                st.ctime,
            );
            ds.put(offset_of!(S, shm_cpid), &st.cpid.to_ne_bytes());
            ds.put(offset_of!(S, shm_lpid), &st.lpid.to_ne_bytes());
            ds.put(offset_of!(S, shm_nattch), &(st.nattch as u32).to_ne_bytes());
            ds
        }
        Abi::CompatOld => {
            use OldShmid as S;
            let mut ds = Ds::new(size_of::<S>());
            put_perm(&mut ds, abi, &perm);
            ds.put(offset_of!(S, segsz), &(st.segsz as i32).to_ne_bytes());
            ds.put(offset_of!(S, atime), &(st.atime as i32).to_ne_bytes());
            ds.put(offset_of!(S, dtime), &(st.dtime as i32).to_ne_bytes());
            ds.put(offset_of!(S, ctime), &(st.ctime as i32).to_ne_bytes());
            ds.put(offset_of!(S, cpid), &(st.cpid as u16).to_ne_bytes());
            ds.put(offset_of!(S, lpid), &(st.lpid as u16).to_ne_bytes());
            ds.put(offset_of!(S, nattch), &(st.nattch as u16).to_ne_bytes());
            ds
        }
    }
}

/// What `IPC_SET` takes from the caller's structure.
pub(crate) struct SetFields {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
    /// `msg_qbytes` (queues only).
    pub(crate) qbytes: u64,
}

/// Reads what `IPC_SET` takes from the structure at `addr`, as the kernel
/// copies it: x86-64 callers' whole `*id64_ds`; 32-bit callers' permission
/// block, then a queue's `msg_qbytes`. `-EFAULT` if a copy fails.
pub(crate) fn read_set(
    abi: Abi,
    of: Class,
    addr: usize,
) -> core::result::Result<SetFields, c_long> {
    match abi {
        Abi::Native => {
            use bindings::ipc64_perm as P;
            let len = match of {
                Class::Sem => size_of::<bindings::semid64_ds>(),
                Class::Msg => msqid64::LEN,
                Class::Shm => shmid64::LEN,
            };
            let mut b = [0u8; DS_MAX];
            copy_in(addr, &mut b[..len])?;
            let qbytes = if of == Class::Msg {
                let mut q = [0u8; 8];
                q.copy_from_slice(&b[msqid64::QBYTES..msqid64::QBYTES + 8]);
                u64::from_ne_bytes(q)
            } else {
                0
            };
            Ok(SetFields {
                uid: u32_at(&b, offset_of!(P, uid)),
                gid: u32_at(&b, offset_of!(P, gid)),
                mode: u32_at(&b, offset_of!(P, mode)),
                qbytes,
            })
        }
        Abi::Compat => {
            use bindings::compat_ipc64_perm as P;
            let mut b = [0u8; size_of::<P>()];
            copy_in(addr, &mut b)?;
            let mode = offset_of!(P, mode);
            let mut fields = SetFields {
                uid: u32_at(&b, offset_of!(P, uid)),
                gid: u32_at(&b, offset_of!(P, gid)),
                mode: u32::from(u16::from_ne_bytes([b[mode], b[mode + 1]])),
                qbytes: 0,
            };
            if of == Class::Msg {
                let mut q = [0u8; 4];
                let o = offset_of!(bindings::compat_msqid64_ds, msg_qbytes);
                copy_in(addr.wrapping_add(o), &mut q)?;
                fields.qbytes = u32::from_ne_bytes(q).into();
            }
            Ok(fields)
        }
        Abi::CompatOld => {
            let mut b = [0u8; size_of::<OldPerm>()];
            copy_in(addr, &mut b)?;
            let u16_at = |o: usize| u32::from(u16::from_ne_bytes([b[o], b[o + 1]]));
            let mut fields = SetFields {
                uid: u16_at(offset_of!(OldPerm, uid)),
                gid: u16_at(offset_of!(OldPerm, gid)),
                mode: u16_at(offset_of!(OldPerm, mode)),
                qbytes: 0,
            };
            if of == Class::Msg {
                let mut q = [0u8; 2];
                copy_in(addr.wrapping_add(offset_of!(OldMsqid, qbytes)), &mut q)?;
                fields.qbytes = u16::from_ne_bytes(q).into();
            }
            Ok(fields)
        }
    }
}
