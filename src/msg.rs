// SPDX-License-Identifier: GPL-2.0

//! Distributed message queues on the node side: `msgget`, `msgsnd`, `msgrcv`
//! and `msgctl` of a distributed queue become requests to the referee, which
//! runs `ipc/msg.c`'s semantics and holds the messages; this file marshals
//! user memory, keeps the local shadow, and returns what the local syscall
//! would.
//!
//! Checks that Linux makes before it looks at the queue (sizes, `mtype`,
//! `MSG_COPY`'s flags, the copies from user memory) are made here, in the
//! same order; the rest happen at the referee.
//!
//! The hand-off of a received message: the referee takes a message off the
//! queue in the same step that answers the request. A receiver woken by a
//! signal asks the referee to cancel and waits for its verdict; if a message
//! was already on its way, the call returns it (as Linux's lockless receive
//! does) and the signal is handled after. The receive buffer is faulted in
//! for writing before the request goes out, so the copy after the answer
//! does not depend on the page-fault path, which gives up for a task with a
//! fatal signal pending: a receiver killed while it waits still gets its
//! message into its buffer before it dies.

use crate::{
    ids::{self, get_object},
    layout::{self, Abi},
    msglease::{self, Ends, Local},
    node::Node,
    shadow::{ProcStat, Shadow},
    shim::{self, HOOK_MSGCTL, HOOK_MSGGET},
    transport::{Answer, Interrupted},
    util::{checked, copy_in, copy_out, neg, transport_err, IPC_CREAT},
    wire::{errno, msgcmd, Class, Frame, GetReply, MsgCtl, MsgCtlReply, MsgRcv, MsgSnd, MAX_MTEXT},
};
use kernel::prelude::*;

const IPC_NOWAIT: i32 = 0o4000;
const MSG_EXCEPT: i32 = 0o20000;
const MSG_COPY: i32 = 0o40000;
/// `-ERESTARTNOHAND`: what `msgsnd`/`msgrcv` return when a signal ends the
/// wait; the kernel turns it into `EINTR`, or restarts the call if the
/// signal has no handler.
const ERESTARTNOHAND: c_long = -514;
/// `sizeof(struct msginfo)` (seven ints and a short, padded).
const MSGINFO_LEN: usize = 32;

/// `msgget` of a distributed key: the referee decides (`ipcget()`); then
/// the local shadow is found or created and its id returned.
pub(crate) fn msgget(node: &Node, key: i32, flg: i32) -> c_long {
    let reply = match get_object(node, Class::Msg, key, flg, 0) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // The size is the referee's msgmax.
    if reply.size > MAX_MTEXT as u64 {
        return neg(errno::EIO);
    }
    match shadow(node, &reply) {
        id if id < 0 => ids::undo_create(node, Class::Msg, &reply, id),
        id => id,
    }
}

/// Finds or creates the local shadow of the queue the referee described
/// in `r`, at its cluster-wide id.
pub(crate) fn shadow(node: &Node, r: &GetReply) -> c_long {
    let flags = IPC_CREAT | (r.perm.mode & 0o777) as i32;
    let make = ids::Make {
        get: || shim::call_original_args(HOOK_MSGGET, [r.key as c_long, flags as c_long, 0, 0]),
        stale: |_| false,
        ready: || Ok(()),
    };
    ids::shadow(node, Class::Msg, r, make)
}

/// The referee removed queue `oid`: drop its shadow here.
pub(crate) fn removed(node: &Node, oid: u64) {
    msglease::removed(node, oid);
    ids::drop_shadow(node, Class::Msg, oid);
}

/// The result of a call that may sleep: a request cancelled because of a
/// signal returns `-ERESTARTNOHAND`, as `ipc/msg.c` does.
fn interrupted(a: &Answer, result: i64) -> c_long {
    if result == -i64::from(errno::EINTR) && a.interrupted == Some(Interrupted::Signal) {
        ERESTARTNOHAND
    } else {
        checked(result)
    }
}

/// The `mtype` at the start of the `struct msgbuf` at `msgp`.
fn read_mtype(msgp: usize, abi: Abi) -> core::result::Result<i64, c_long> {
    if abi == Abi::Native {
        let mut t = [0u8; 8];
        copy_in(msgp, &mut t)?;
        Ok(i64::from_ne_bytes(t))
    } else {
        let mut t = [0u8; 4];
        copy_in(msgp, &mut t)?;
        Ok(i32::from_ne_bytes(t).into())
    }
}

/// `msgsnd` on shadow `s` (`ksys_msgsnd()`): `mtype` is read first, then
/// the sizes and the type are checked, then the body is copied. `mtype` is
/// a `long` of the caller's `abi`.
pub(crate) fn msgsnd(
    node: &Node,
    s: Shadow,
    msgp: usize,
    msgsz: usize,
    msgflg: i32,
    abi: Abi,
) -> c_long {
    let mtype = match read_mtype(msgp, abi) {
        Ok(t) => t,
        Err(e) => return e,
    };
    // `s.size` is the referee's msgmax (at most MAX_MTEXT).
    if msgsz as u64 > s.size || (msgsz as isize) < 0 {
        return neg(errno::EINVAL);
    }
    if mtype < 1 {
        return neg(errno::EINVAL);
    }
    let mut text = match KVVec::from_elem(0u8, msgsz, GFP_KERNEL) {
        Ok(v) => v,
        Err(_) => return neg(errno::ENOMEM),
    };
    if let Err(e) = copy_in(msgp.wrapping_add(abi.long_len()), &mut text) {
        return e;
    }
    let snd = MsgSnd {
        oid: s.oid,
        pid: shim::current_tgid(),
        cred: shim::current_cred(),
        mtype,
        flags: msgflg,
        lease: 0,
        epoch: 0,
        text: &text,
    };
    if let Some(r) = msglease::try_send(node, s.oid, &snd) {
        return r;
    }
    loop {
        let a = match msglease::call(node, s.oid, Ends::Send, |epoch| {
            Frame::MsgSnd(MsgSnd { epoch, ..snd })
        }) {
            Ok(a) => a,
            Err(e) => return transport_err(e),
        };
        let result = match a.frame() {
            Ok(Frame::MsgSndReply(r)) => r.result,
            Ok(Frame::Status { result }) => result,
            _ => return neg(errno::EIO),
        };
        match retry(&a, result) {
            Some(r) => return r,
            None => continue,
        }
    }
}

/// `None` when `result` says the call must be made again (the referee was
/// taking a lease back; after a short sleep); otherwise the call's return
/// value. A signal during that sleep ends the call as a signal during the
/// wait would.
fn retry(a: &Answer, result: i64) -> Option<c_long> {
    if result != -i64::from(errno::RETRY) {
        return Some(interrupted(a, result));
    }
    if a.interrupted.is_some() || !msglease::wait_to_retry(false) {
        return Some(ERESTARTNOHAND);
    }
    None
}

/// `msgrcv` on shadow `s` (`do_msgrcv()` + `do_msg_fill()`).
pub(crate) fn msgrcv(
    node: &Node,
    s: Shadow,
    msgp: usize,
    msgsz: usize,
    msgtyp: i64,
    msgflg: i32,
    abi: Abi,
) -> c_long {
    if (msgsz as isize) < 0 {
        return neg(errno::EINVAL);
    }
    // At most this much of the buffer can be written.
    let fill = (msgsz as u64).min(s.size) as usize;
    if msgflg & MSG_COPY != 0 {
        if msgflg & MSG_EXCEPT != 0 || msgflg & IPC_NOWAIT == 0 {
            return neg(errno::EINVAL);
        }
        // prepare_copy() exists only with CONFIG_CHECKPOINT_RESTORE; it
        // reads the buffer first.
        if !cfg!(CONFIG_CHECKPOINT_RESTORE) {
            return neg(errno::ENOSYS);
        }
        let mut scratch = match KVVec::from_elem(0u8, fill, GFP_KERNEL) {
            Ok(v) => v,
            Err(_) => return neg(errno::ENOMEM),
        };
        if let Err(e) = copy_in(msgp, &mut scratch) {
            return e;
        }
    }
    // A bad buffer is not an error yet (Linux finds that out only when it
    // copies a message); the copy below reports it.
    shim::fault_in_writeable(msgp, abi.long_len() + fill);
    match msglease::try_receive(node, s.oid, msgtyp, msgflg, msgsz) {
        Some(Local::Taken(mtype, text)) => return fill_user(msgp, mtype, &text, abi),
        Some(Local::Failed(e)) => return e,
        None => {}
    }
    let rcv = MsgRcv {
        oid: s.oid,
        pid: shim::current_tgid(),
        cred: shim::current_cred(),
        msgtyp,
        flags: msgflg,
        size: msgsz as u64,
        epoch: 0,
    };
    let answer = loop {
        let answer = match msglease::call(node, s.oid, Ends::Recv, |epoch| {
            Frame::MsgRcv(MsgRcv { epoch, ..rcv })
        }) {
            Ok(a) => a,
            Err(e) => return transport_err(e),
        };
        let result = match answer.frame() {
            Ok(Frame::MsgRcvReply(r)) => r.result,
            Ok(Frame::Status { result }) => result,
            _ => return neg(errno::EIO),
        };
        if result >= 0 {
            break answer;
        }
        if let Some(r) = retry(&answer, result) {
            return r;
        }
    };
    let reply = match answer.frame() {
        Ok(Frame::MsgRcvReply(r)) => r,
        _ => return neg(errno::EIO),
    };
    if reply.result as usize != reply.text.len() || reply.text.len() > msgsz {
        return neg(errno::EIO);
    }
    fill_user(msgp, reply.mtype, reply.text, abi)
}

/// `do_msg_fill()`: the type, then the body. The message is consumed
/// whether or not the copies succeed, as in Linux. A 32-bit caller's
/// `mtype` is 4 bytes (`compat_do_msg_fill()`).
fn fill_user(msgp: usize, mtype: i64, text: &[u8], abi: Abi) -> c_long {
    let put = match abi {
        Abi::Native => copy_out(msgp, &mtype.to_ne_bytes()),
        Abi::Compat | Abi::CompatOld => copy_out(msgp, &(mtype as i32).to_ne_bytes()),
    };
    if let Err(e) = put {
        return e;
    }
    if let Err(e) = copy_out(msgp.wrapping_add(abi.long_len()), text) {
        return e;
    }
    text.len() as c_long
}

/// `msgctl` when it concerns a distributed queue: `IPC_STAT`, `IPC_SET`
/// and `IPC_RMID` on a shadow's id, `MSG_STAT`/`MSG_STAT_ANY` on a shadow's
/// slot, and `IPC_INFO`/`MSG_INFO` called with a shadow's id (they then
/// report the referee's limits and usage). `None`: not ours, run locally.
pub(crate) fn msgctl(node: &Node, msqid: i32, cmd: i32, buf: usize, abi: Abi) -> Option<c_long> {
    if msqid < 0 || cmd < 0 {
        return None;
    }
    let s = match cmd {
        msgcmd::MSG_STAT | msgcmd::MSG_STAT_ANY => node.shadows.by_index(Class::Msg, msqid)?,
        msgcmd::IPC_STAT
        | msgcmd::IPC_SET
        | msgcmd::IPC_RMID
        | msgcmd::IPC_INFO
        | msgcmd::MSG_INFO => node.shadows.get(Class::Msg, msqid)?,
        _ => return None,
    };
    Some(ctl(node, s, cmd, buf, abi))
}

fn ctl(node: &Node, s: Shadow, cmd: i32, buf: usize, abi: Abi) -> c_long {
    let mut req = MsgCtl::new(s.oid, shim::current_tgid(), shim::current_cred(), cmd);
    let mut local = 0;
    match cmd {
        msgcmd::IPC_SET => {
            let set = match layout::read_set(abi, Class::Msg, buf) {
                Ok(set) => set,
                Err(e) => return e,
            };
            (req.set_uid, req.set_gid, req.set_mode) = (set.uid, set.gid, set.mode);
            req.set_qbytes = set.qbytes;
        }
        msgcmd::IPC_INFO | msgcmd::MSG_INFO => {
            // The return value (the highest slot in use) and the check of
            // the buffer are the local call's; the contents the referee's.
            local = shim::call_original_args(
                HOOK_MSGCTL,
                [s.local_id as c_long, cmd as c_long, buf as c_long, 0],
            );
            if local < 0 {
                return local;
            }
        }
        _ => {}
    }
    let reply = match ask(node, req) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match cmd {
        msgcmd::IPC_RMID => {
            // The referee tells every node; this one drops its shadow now,
            // so a following get of the key finds no stale queue.
            ids::drop_local(node, Class::Msg, s.local_id);
            0
        }
        msgcmd::IPC_STAT | msgcmd::MSG_STAT | msgcmd::MSG_STAT_ANY => {
            if let Err(e) = copy_out(buf, layout::msqid_ds(abi, &reply.stat, s.local_id).bytes()) {
                return e;
            }
            if cmd == msgcmd::IPC_STAT {
                0
            } else {
                s.local_id as c_long
            }
        }
        msgcmd::IPC_INFO | msgcmd::MSG_INFO => {
            let i = reply.info;
            let mut out = [0u8; MSGINFO_LEN];
            for (k, v) in [
                i.msgpool, i.msgmap, i.msgmax, i.msgmnb, i.msgmni, i.msgssz, i.msgtql,
            ]
            .iter()
            .enumerate()
            {
                out[4 * k..4 * k + 4].copy_from_slice(&v.to_ne_bytes());
            }
            out[28..30].copy_from_slice(&i.msgseg.to_ne_bytes());
            if let Err(e) = copy_out(buf, &out) {
                return e;
            }
            local
        }
        _ => checked(reply.result),
    }
}

/// Sends `msgctl` request `req` and returns the referee's answer, or the
/// call's error.
fn ask(node: &Node, req: MsgCtl) -> core::result::Result<MsgCtlReply, c_long> {
    let cmd = req.cmd;
    // The leases this node holds go back first: they end at the referee.
    let ends = if cmd == msgcmd::MSG_INFO {
        Ends::All
    } else {
        Ends::Both
    };
    let answer = loop {
        let made = if cmd == msgcmd::IPC_INFO {
            // Limits only: no lease is involved.
            node.call(&Frame::MsgCtl(req), None)
        } else {
            msglease::call(node, req.oid, ends, |_| Frame::MsgCtl(req))
        };
        let answer = made.map_err(transport_err)?;
        match answer.frame() {
            Ok(Frame::MsgCtlReply(r)) if r.result == -i64::from(errno::RETRY) => {
                // msgctl does not sleep in Linux: only a fatal signal ends
                // the wait for another node's lease.
                if !msglease::wait_to_retry(true) {
                    return Err(neg(errno::EINTR));
                }
            }
            _ => break answer,
        }
    };
    match answer.frame() {
        Ok(Frame::MsgCtlReply(r)) if r.result < 0 => Err(checked(r.result)),
        Ok(Frame::MsgCtlReply(r)) => Ok(r),
        _ => Err(neg(errno::EIO)),
    }
}

/// What `/proc/sysvipc/msg` shows of queue shadow `s` (`MSG_STAT_ANY` at
/// the referee, after this node's leases of it went back); `None` if it
/// cannot be had.
pub(crate) fn proc_stat(node: &Node, s: Shadow) -> Option<ProcStat> {
    let req = MsgCtl::new(
        s.oid,
        shim::current_tgid(),
        shim::current_cred(),
        msgcmd::MSG_STAT_ANY,
    );
    let st = ask(node, req).ok()?.stat;
    Some(ProcStat {
        size: st.cbytes,
        count: st.qnum,
        pid: [st.lspid, st.lrpid],
        time: [st.stime, st.rtime, st.ctime],
    })
}
