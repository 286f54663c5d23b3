// SPDX-License-Identifier: GPL-2.0

//! Distributed semaphore sets on the node side: `semget`, `semop`,
//! `semtimedop` and `semctl` of a distributed set become requests to the
//! referee, which runs `ipc/sem.c`'s semantics; this file marshals user
//! memory, keeps the local shadow, and returns what the local syscall would.
//!
//! Checks that Linux makes before it looks at the set (`nsops`, the timeout)
//! are made here, in the same order; the rest happen at the referee.

use crate::{
    compat::Time,
    ids::{self, get_object},
    layout::{self, Abi},
    node::Node,
    shadow::{ProcStat, Shadow},
    shim::{self, HOOK_SEMGET},
    transport::{Answer, Interrupted},
    util::{checked, copy_in, copy_out, neg, transport_err, IPC_CREAT},
    wire::{
        errno, semcmd, Class, Frame, GetReply, SemCtl, SemOp, Sembuf, Sops, Vals, MAX_SOPS,
        SEMBUF_LEN,
    },
};
use kernel::{
    prelude::*,
    time::{msecs_to_jiffies, Jiffies},
};

const SEM_UNDO: i16 = 0x1000;
/// `semctl` commands that name no set (or a table index): always local.
const IPC_INFO: i32 = 3;
const SEM_INFO: i32 = 19;
/// `semget` of a distributed key: the referee decides (`ipcget()`); then the
/// local shadow is found or created and its id returned.
pub(crate) fn semget(node: &Node, key: i32, nsems: i32, flg: i32) -> c_long {
    // A negative nsems stays out of range at the referee.
    let size = if nsems < 0 { u64::MAX } else { nsems as u64 };
    let reply = match get_object(node, Class::Sem, key, flg, size) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if reply.size == 0 || reply.size > crate::wire::MAX_SEMS as u64 {
        return neg(errno::EIO);
    }
    match shadow(node, &reply) {
        id if id < 0 => ids::undo_create(node, Class::Sem, &reply, id),
        id => id,
    }
}

/// Finds or creates the local shadow of the set the referee described in
/// `r`, at its cluster-wide id.
pub(crate) fn shadow(node: &Node, r: &GetReply) -> c_long {
    let flags = IPC_CREAT | (r.perm.mode & 0o777) as i32;
    let key = r.key as c_long;
    let make = ids::Make {
        get: || shim::call_original_args(HOOK_SEMGET, [key, r.size as c_long, flags as c_long, 0]),
        // A local set with this key but fewer semaphores: stale.
        stale: |id| {
            if id != neg(errno::EINVAL) {
                return false;
            }
            let old = shim::call_original_args(HOOK_SEMGET, [key, 0, 0, 0]);
            if old < 0 {
                return false;
            }
            node.shadows.remove(Class::Sem, old as i32);
            ids::rmid_local(Class::Sem, old as i32);
            true
        },
        ready: || Ok(()),
    };
    ids::shadow(node, Class::Sem, r, make)
}

/// The referee removed object `oid`: drop its shadow here.
pub(crate) fn removed(node: &Node, oid: u64) {
    ids::drop_shadow(node, Class::Sem, oid);
}

/// A timeout as the caller gave it: seconds and nanoseconds.
type Timespec = (i64, i64);

/// Copies the timeout at `ptr` in, in the form `time` (`get_timespec64()`,
/// `get_old_timespec32()`); `-EFAULT` if it cannot be read.
fn copy_timeout(ptr: usize, time: Time) -> core::result::Result<Timespec, c_long> {
    if time == Time::Old32 {
        let mut ts = [0u8; 8];
        copy_in(ptr, &mut ts)?;
        let sec = i32::from_ne_bytes([ts[0], ts[1], ts[2], ts[3]]);
        let nsec = i32::from_ne_bytes([ts[4], ts[5], ts[6], ts[7]]);
        return Ok((sec.into(), nsec.into()));
    }
    let mut ts = [0u8; 16];
    copy_in(ptr, &mut ts)?;
    let sec = i64::from_ne_bytes(ts[..8].try_into().unwrap_or([0; 8]));
    let mut nsec = i64::from_ne_bytes(ts[8..].try_into().unwrap_or([0; 8]));
    if time == Time::Compat64 {
        // A 32-bit program's tv_nsec is 32 bits and padding.
        nsec &= 0xffff_ffff;
    }
    Ok((sec, nsec))
}

/// A timeout as a wait in jiffies (rounded up); `-EINVAL` unless
/// `timespec64_valid()`.
fn timeout_wait((sec, nsec): Timespec) -> core::result::Result<Jiffies, c_long> {
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(neg(errno::EINVAL));
    }
    let ms = (sec as u64)
        .saturating_mul(1000)
        .saturating_add((nsec as u64).div_ceil(1_000_000));
    Ok(msecs_to_jiffies(ms.min(u64::from(u32::MAX)) as u32))
}

/// `semop`/`semtimedop` on shadow `s`; `time` is the form of the timeout
/// at `timeout` (0: none).
pub(crate) fn semtimedop(
    node: &Node,
    s: Shadow,
    sops: usize,
    nsops: usize,
    timeout: usize,
    time: Time,
) -> c_long {
    // ksys_semtimedop() copies the timeout first (EFAULT); do_semtimedop()
    // then checks EINVAL, then E2BIG against this namespace's SEMOPM, then
    // copies the operations (EFAULT), then checks the timeout's validity.
    // The referee applies its own SEMOPM too, and no request carries more
    // than the wire's MAX_SOPS.
    let ts = if timeout != 0 {
        match copy_timeout(timeout, time) {
            Ok(ts) => Some(ts),
            Err(e) => return e,
        }
    } else {
        None
    };
    if nsops < 1 {
        return neg(errno::EINVAL);
    }
    if nsops > shim::ns_semopm() || nsops > MAX_SOPS {
        return neg(errno::E2BIG);
    }
    let mut raw = match KVec::from_elem(0u8, nsops * SEMBUF_LEN, GFP_KERNEL) {
        Ok(v) => v,
        Err(_) => return neg(errno::ENOMEM),
    };
    if let Err(e) = copy_in(sops, &mut raw) {
        return e;
    }
    let wait = match ts.map(timeout_wait) {
        Some(Ok(j)) => Some(j),
        Some(Err(e)) => return e,
        None => None,
    };
    // `struct sembuf` in this host's byte order to the wire's.
    let mut undo = false;
    for c in raw.chunks_exact_mut(SEMBUF_LEN) {
        let b = Sembuf {
            num: u16::from_ne_bytes([c[0], c[1]]),
            op: i16::from_ne_bytes([c[2], c[3]]),
            flg: i16::from_ne_bytes([c[4], c[5]]),
        };
        undo |= b.flg & SEM_UNDO != 0;
        c.copy_from_slice(&b.to_bytes());
    }
    let Some(sops) = Sops::new(&raw) else {
        return neg(errno::EINVAL);
    };
    let pid = shim::current_tgid();
    if undo {
        node.note_undo(pid);
    }
    let op = SemOp {
        oid: s.oid,
        pid,
        cred: shim::current_cred(),
        sops,
    };
    match node.call(&Frame::SemOp(op), wait) {
        Ok(a) => status(&a),
        Err(e) => transport_err(e),
    }
}

/// The result of a [`Frame::Status`] answer; a request cancelled by its
/// timeout returns `EAGAIN`, as `semtimedop` does.
fn status(a: &Answer) -> c_long {
    match a.frame() {
        Ok(Frame::Status { result }) => {
            if result == -i64::from(errno::EINTR) && a.interrupted == Some(Interrupted::Timeout) {
                neg(errno::EAGAIN)
            } else {
                checked(result)
            }
        }
        _ => neg(errno::EIO),
    }
}

/// What `/proc/sysvipc/sem` shows of set shadow `s` (`SEM_STAT_ANY` at
/// the referee); `None` if it cannot be had.
pub(crate) fn proc_stat(node: &Node, s: Shadow) -> Option<ProcStat> {
    let ctl = SemCtl::new(
        s.oid,
        shim::current_tgid(),
        shim::current_cred(),
        semcmd::SEM_STAT_ANY,
    );
    let answer = node.call(&Frame::SemCtl(ctl), None).ok()?;
    let st = match answer.frame() {
        Ok(Frame::SemCtlReply(r)) if r.result == 0 => r.stat,
        _ => return None,
    };
    Some(ProcStat {
        size: u64::from(st.nsems),
        count: 0,
        pid: [0, 0],
        time: [st.otime, st.ctime, 0],
    })
}

/// Whether `semctl` command `cmd` is `SEM_STAT` or `SEM_STAT_ANY`, which
/// name a table slot.
pub(crate) fn semctl_stat(cmd: i32) -> bool {
    matches!(cmd, semcmd::SEM_STAT | semcmd::SEM_STAT_ANY)
}

/// Whether `semctl` command `cmd` acts on the set named by its id (as
/// opposed to the system, or a table index).
pub(crate) fn semctl_uses_id(cmd: i32) -> bool {
    !matches!(cmd, IPC_INFO | SEM_INFO) && !semctl_stat(cmd)
}

/// `semctl` on shadow `s` (`SEM_STAT` and `SEM_STAT_ANY`: the shadow in
/// the slot they name), with structures in the caller's `abi`.
pub(crate) fn semctl(
    node: &Node,
    s: Shadow,
    semnum: i32,
    cmd: i32,
    arg: usize,
    abi: Abi,
) -> c_long {
    let nsems = s.size as usize;
    let mut ctl = SemCtl {
        semnum,
        ..SemCtl::new(s.oid, shim::current_tgid(), shim::current_cred(), cmd)
    };
    let mut setall = KVec::new();
    match cmd {
        semcmd::SETVAL => ctl.val = arg as i32,
        semcmd::IPC_SET => {
            let set = match layout::read_set(abi, Class::Sem, arg) {
                Ok(set) => set,
                Err(e) => return e,
            };
            (ctl.set_uid, ctl.set_gid, ctl.set_mode) = (set.uid, set.gid, set.mode);
        }
        semcmd::SETALL => {
            if setall.resize(nsems * 2, 0u8, GFP_KERNEL).is_err() {
                return neg(errno::ENOMEM);
            }
            if let Err(e) = copy_in(arg, &mut setall) {
                return e;
            }
            for c in setall.chunks_exact_mut(2) {
                let v = u16::from_ne_bytes([c[0], c[1]]);
                c.copy_from_slice(&v.to_le_bytes());
            }
            ctl.vals = match Vals::new(&setall) {
                Some(v) => v,
                None => return neg(errno::EINVAL),
            };
        }
        semcmd::IPC_RMID
        | semcmd::IPC_STAT
        | semcmd::SEM_STAT
        | semcmd::SEM_STAT_ANY
        | semcmd::GETALL
        | semcmd::GETVAL
        | semcmd::GETPID
        | semcmd::GETNCNT
        | semcmd::GETZCNT => {}
        _ => return neg(errno::EINVAL),
    }
    let answer = match node.call(&Frame::SemCtl(ctl), None) {
        Ok(a) => a,
        Err(e) => return transport_err(e),
    };
    let reply = match answer.frame() {
        Ok(Frame::SemCtlReply(r)) => r,
        _ => return neg(errno::EIO),
    };
    if reply.result < 0 {
        return checked(reply.result);
    }
    match cmd {
        semcmd::IPC_RMID => {
            // The referee tells every node; this one drops its shadow now,
            // so a following get of the key finds no stale set.
            ids::drop_local(node, Class::Sem, s.local_id);
        }
        semcmd::IPC_STAT | semcmd::SEM_STAT | semcmd::SEM_STAT_ANY => {
            let ds = layout::semid_ds(abi, &reply.stat, s.local_id);
            if let Err(e) = copy_out(arg, ds.bytes()) {
                return e;
            }
            // The *_STAT commands return the id of the slot's set.
            if cmd != semcmd::IPC_STAT {
                return s.local_id as c_long;
            }
        }
        semcmd::GETALL => {
            if reply.vals.len() != nsems {
                return neg(errno::EIO);
            }
            let mut out = match KVec::from_elem(0u8, nsems * 2, GFP_KERNEL) {
                Ok(v) => v,
                Err(_) => return neg(errno::ENOMEM),
            };
            for (i, v) in reply.vals.iter().enumerate() {
                out[2 * i..2 * i + 2].copy_from_slice(&v.to_ne_bytes());
            }
            if let Err(e) = copy_out(arg, &out) {
                return e;
            }
        }
        _ => {}
    }
    checked(reply.result)
}
