//! Message queues, after `ipc/msg.c`: plain state and plain functions, no I/O.
//!
//! A sleeping `msgsnd` or `msgrcv` is an entry in the queue's sender or
//! receiver list that names the request it answers ([`Waiter`]). Linux's
//! rules are kept:
//! - a new message goes straight to the first sleeping receiver that wants
//!   it (`pipelined_send()`), and a receiver whose buffer is too small for it
//!   gets `E2BIG` on the way;
//! - a receive that frees space completes every sleeping sender whose
//!   message now fits, oldest first (`ss_wakeup()`), each after a fresh
//!   permission check;
//! - `IPC_SET` makes every sleeping receiver look again (`expunge_all(-EAGAIN)`)
//!   and every sender that now fits send;
//! - `IPC_RMID` answers every sleeper `EIDRM` (`freeque()`).
//!
//! Everything a call changes happens inside that call, so the referee never
//! holds a sleeper that could run.
//!
//! The hand-off of a received message: the message leaves the queue in the
//! same step that produces its answer ([`MsgReply`]). A cancel that arrives
//! later finds no sleeper and changes nothing, so the node delivers the
//! message it gets; a cancel that arrives first removes the sleeper, and the
//! message stays queued. Either way a message exists in exactly one place.

use super::ipc::{Errno, KernIpcPerm, S_IRUGO, S_IWUGO};
use super::sem::{Reply, Waiter};
use super::Effects;
use dipc_wire::{errno, Cred, MsgStat};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// `IPC_NOWAIT` in a `msgsnd`/`msgrcv` flag word.
pub const IPC_NOWAIT: i32 = 0o4000;
/// `MSG_NOERROR`: cut a message that is too long instead of failing.
pub const MSG_NOERROR: i32 = 0o10000;
/// `MSG_EXCEPT`: receive the first message of any other type.
pub const MSG_EXCEPT: i32 = 0o20000;
/// `MSG_COPY`: copy the message at an index without removing it.
pub const MSG_COPY: i32 = 0o40000;

/// One queued message (`struct msg_msg`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msg {
    /// `mtype`, at least 1.
    pub mtype: i64,
    /// The body.
    pub text: Vec<u8>,
}

/// The answer to a `msgrcv`: the message, or a negative errno.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgReply {
    /// Whom to answer.
    pub to: Waiter,
    /// Bytes received (`text.len()`), or a negative errno.
    pub result: i64,
    /// The message type (0 for an error).
    pub mtype: i64,
    /// The body, cut to the receiver's buffer.
    pub text: Vec<u8>,
}

impl MsgReply {
    fn err(to: Waiter, e: Errno) -> Self {
        MsgReply {
            to,
            result: -i64::from(e),
            mtype: 0,
            text: Vec::new(),
        }
    }
}

/// How `msgtyp` selects (`SEARCH_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Any message.
    Any,
    /// Type equal to `msgtyp`.
    Equal,
    /// Type other than `msgtyp` (`MSG_EXCEPT`).
    NotEqual,
    /// The lowest type that is at most `msgtyp`.
    LessEqual,
    /// The message at index `msgtyp` (`MSG_COPY`).
    Number,
}

/// `convert_mode()`: the search mode, and `msgtyp` as the search uses it.
pub fn convert_mode(msgtyp: i64, flags: i32) -> (Mode, i64) {
    if flags & MSG_COPY != 0 {
        return (Mode::Number, msgtyp);
    }
    if msgtyp == 0 {
        (Mode::Any, 0)
    } else if msgtyp < 0 {
        (Mode::LessEqual, msgtyp.checked_neg().unwrap_or(i64::MAX))
    } else if flags & MSG_EXCEPT != 0 {
        (Mode::NotEqual, msgtyp)
    } else {
        (Mode::Equal, msgtyp)
    }
}

/// `testmsg()`.
fn testmsg(m: &Msg, msgtyp: i64, mode: Mode) -> bool {
    match mode {
        Mode::Any | Mode::Number => true,
        Mode::LessEqual => m.mtype <= msgtyp,
        Mode::Equal => m.mtype == msgtyp,
        Mode::NotEqual => m.mtype != msgtyp,
    }
}

/// What a receive asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recv {
    /// `msgtyp` after [`convert_mode`].
    pub msgtyp: i64,
    /// The search mode.
    pub mode: Mode,
    /// The caller's buffer size.
    pub bufsz: u64,
    /// The call's flags.
    pub flags: i32,
}

/// A sleeping `msgrcv` (`struct msg_receiver`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Receiver {
    who: Waiter,
    pid: u32,
    #[serde(with = "super::persist::cred")]
    cred: Cred,
    recv: Recv,
}

/// A sleeping `msgsnd` (`struct msg_sender`), holding its message.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sender {
    who: Waiter,
    pid: u32,
    #[serde(with = "super::persist::cred")]
    cred: Cred,
    msg: Msg,
}

/// A message queue (`struct msg_queue`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MsgQueue {
    /// Ownership and mode.
    pub perm: KernIpcPerm,
    /// Last `msgsnd`.
    pub stime: i64,
    /// Last `msgrcv`.
    pub rtime: i64,
    /// Last change.
    pub ctime: i64,
    /// Bytes queued.
    pub cbytes: u64,
    /// Most bytes (and most messages) the queue holds.
    pub qbytes: u64,
    /// Last sender.
    pub lspid: u32,
    /// Last receiver.
    pub lrpid: u32,
    messages: VecDeque<Msg>,
    receivers: VecDeque<Receiver>,
    senders: VecDeque<Sender>,
}

impl MsgQueue {
    /// A new, empty queue holding at most `qbytes` (`newque()`).
    pub fn new(perm: KernIpcPerm, qbytes: u64, now: i64) -> Self {
        MsgQueue {
            perm,
            stime: 0,
            rtime: 0,
            ctime: now,
            cbytes: 0,
            qbytes,
            lspid: 0,
            lrpid: 0,
            messages: VecDeque::new(),
            receivers: VecDeque::new(),
            senders: VecDeque::new(),
        }
    }

    /// Messages queued.
    pub fn qnum(&self) -> usize {
        self.messages.len()
    }

    /// Sleeping senders and receivers.
    pub fn waiters(&self) -> usize {
        self.receivers.len() + self.senders.len()
    }

    /// Whether `who` sleeps here (receiving or sending).
    pub fn has_waiter(&self, who: Waiter) -> bool {
        self.receivers.iter().any(|r| r.who == who) || self.senders.iter().any(|s| s.who == who)
    }

    /// The queued messages, oldest first.
    #[cfg(test)]
    pub fn messages(&self) -> impl Iterator<Item = &Msg> {
        self.messages.iter()
    }

    /// `msg_fits_inqueue()`.
    fn fits(&self, size: usize) -> bool {
        size as u64 + self.cbytes <= self.qbytes && (self.qnum() as u64) < self.qbytes
    }

    /// `IPC_STAT`'s view.
    pub fn stat(&self) -> MsgStat {
        MsgStat {
            key: self.perm.key,
            uid: self.perm.uid,
            gid: self.perm.gid,
            cuid: self.perm.cuid,
            cgid: self.perm.cgid,
            mode: self.perm.mode,
            stime: self.stime,
            rtime: self.rtime,
            ctime: self.ctime,
            cbytes: self.cbytes,
            qnum: self.qnum() as u64,
            qbytes: self.qbytes,
            lspid: self.lspid,
            lrpid: self.lrpid,
        }
    }

    /// `do_msgsnd()` from the point where the queue is found. `Some(result)`
    /// when the call is over, `None` when it sleeps (its answer comes in a
    /// later [`Effects`], or from [`MsgQueue::cancel`]).
    #[allow(clippy::too_many_arguments)]
    pub fn msgsnd(
        &mut self,
        who: Waiter,
        pid: u32,
        cred: &Cred,
        msg: Msg,
        flags: i32,
        now: i64,
        out: &mut Effects,
    ) -> Option<i64> {
        if let Err(e) = self.perm.ipcperms(cred, S_IWUGO) {
            return Some(-i64::from(e));
        }
        if self.fits(msg.text.len()) {
            self.send(pid, msg, now, out);
            return Some(0);
        }
        if flags & IPC_NOWAIT != 0 {
            return Some(-i64::from(errno::EAGAIN));
        }
        self.senders.push_back(Sender {
            who,
            pid,
            cred: *cred,
            msg,
        });
        None
    }

    /// The message is accepted: to a sleeping receiver, or onto the queue.
    fn send(&mut self, pid: u32, msg: Msg, now: i64, out: &mut Effects) {
        self.lspid = pid;
        self.stime = now;
        if let Some(msg) = self.pipelined_send(msg, now, out) {
            self.cbytes += msg.text.len() as u64;
            self.messages.push_back(msg);
        }
    }

    /// `pipelined_send()`: hands `msg` to the first sleeping receiver that
    /// wants it; receivers on the way whose buffer is too small get `E2BIG`.
    /// Returns the message if nobody took it.
    fn pipelined_send(&mut self, msg: Msg, now: i64, out: &mut Effects) -> Option<Msg> {
        let mut i = 0;
        while i < self.receivers.len() {
            let r = &self.receivers[i];
            if !testmsg(&msg, r.recv.msgtyp, r.recv.mode) {
                i += 1;
                continue;
            }
            let Some(r) = self.receivers.remove(i) else {
                break;
            };
            let maxsize = if r.recv.flags & MSG_NOERROR != 0 {
                i32::MAX as u64
            } else {
                r.recv.bufsz
            };
            if maxsize < msg.text.len() as u64 {
                out.msgs.push(MsgReply::err(r.who, errno::E2BIG));
                continue;
            }
            self.lrpid = r.pid;
            self.rtime = now;
            out.msgs.push(deliver(r.who, msg, r.recv.bufsz));
            return None;
        }
        Some(msg)
    }

    /// `find_msg()`: the index of the message a receive takes.
    fn find(&self, msgtyp: i64, mode: Mode) -> Option<usize> {
        let mut found = None;
        let mut bound = msgtyp;
        let mut count = 0i64;
        for (i, m) in self.messages.iter().enumerate() {
            if !testmsg(m, bound, mode) {
                continue;
            }
            match mode {
                Mode::LessEqual if m.mtype != 1 => {
                    // Keep looking for a lower type.
                    bound = m.mtype - 1;
                    found = Some(i);
                }
                Mode::Number => {
                    if count == msgtyp {
                        return Some(i);
                    }
                }
                _ => return Some(i),
            }
            count += 1;
        }
        found
    }

    /// `do_msgrcv()` from the point where the queue is found. `copy_max`
    /// is the size of the copy buffer for `MSG_COPY` (`min(bufsz, msgmax)`).
    /// `Some(answer)` when the call is over, `None` when it sleeps.
    #[allow(clippy::too_many_arguments)]
    pub fn msgrcv(
        &mut self,
        who: Waiter,
        pid: u32,
        cred: &Cred,
        recv: Recv,
        copy_max: u64,
        now: i64,
        out: &mut Effects,
    ) -> Option<MsgReply> {
        match self.try_receive(who, pid, cred, recv, copy_max, now, out) {
            Some(r) => Some(r),
            None if recv.flags & IPC_NOWAIT != 0 => Some(MsgReply::err(who, errno::ENOMSG)),
            None => {
                self.receivers.push_back(Receiver {
                    who,
                    pid,
                    cred: *cred,
                    recv,
                });
                None
            }
        }
    }

    /// One pass of `do_msgrcv()`'s loop: the permission check, then the
    /// search. `None`: no message.
    #[allow(clippy::too_many_arguments)]
    fn try_receive(
        &mut self,
        who: Waiter,
        pid: u32,
        cred: &Cred,
        recv: Recv,
        copy_max: u64,
        now: i64,
        out: &mut Effects,
    ) -> Option<MsgReply> {
        if let Err(e) = self.perm.ipcperms(cred, S_IRUGO) {
            return Some(MsgReply::err(who, e));
        }
        let i = self.find(recv.msgtyp, recv.mode)?;
        let len = self.messages[i].text.len() as u64;
        if recv.bufsz < len && recv.flags & MSG_NOERROR == 0 {
            return Some(MsgReply::err(who, errno::E2BIG));
        }
        if recv.flags & MSG_COPY != 0 {
            // copy_msg(): the copy buffer must hold the whole message.
            if len > copy_max {
                return Some(MsgReply::err(who, errno::EINVAL));
            }
            return Some(deliver(who, self.messages[i].clone(), recv.bufsz));
        }
        let msg = self.messages.remove(i)?;
        self.rtime = now;
        self.lrpid = pid;
        self.cbytes -= len;
        self.wake_senders(now, out);
        Some(deliver(who, msg, recv.bufsz))
    }

    /// `ss_wakeup()`: every sleeping sender whose message now fits sends it,
    /// oldest first, after a fresh permission check.
    fn wake_senders(&mut self, now: i64, out: &mut Effects) {
        let mut i = 0;
        while i < self.senders.len() {
            if !self.fits(self.senders[i].msg.text.len()) {
                i += 1;
                continue;
            }
            let Some(s) = self.senders.remove(i) else {
                break;
            };
            let result = match self.perm.ipcperms(&s.cred, S_IWUGO) {
                Ok(()) => {
                    self.send(s.pid, s.msg, now, out);
                    0
                }
                Err(e) => -i64::from(e),
            };
            out.replies.push(Reply { to: s.who, result });
        }
    }

    /// `IPC_SET` changed the permissions or the size: every sleeping
    /// receiver looks again (`expunge_all(-EAGAIN)`), then every sender
    /// that now fits sends.
    pub fn recheck(&mut self, copy_max: u64, now: i64, out: &mut Effects) {
        for r in core::mem::take(&mut self.receivers) {
            match self.try_receive(r.who, r.pid, &r.cred, r.recv, copy_max, now, out) {
                Some(answer) => out.msgs.push(answer),
                None => self.receivers.push_back(r),
            }
        }
        self.wake_senders(now, out);
    }

    /// Removes the sleeping request `who`, if it is here, answering `-EINTR`.
    pub fn cancel(&mut self, who: Waiter) -> Option<Reply> {
        if let Some(i) = self.receivers.iter().position(|r| r.who == who) {
            self.receivers.remove(i);
        } else {
            let i = self.senders.iter().position(|s| s.who == who)?;
            self.senders.remove(i);
        }
        Some(Reply {
            to: who,
            result: -i64::from(errno::EINTR),
        })
    }

    /// `freeque()`: every sleeper gets `-EIDRM`; the messages go.
    pub fn remove(&mut self, out: &mut Effects) {
        let e = -i64::from(errno::EIDRM);
        out.msgs.extend(
            self.receivers
                .drain(..)
                .map(|r| MsgReply::err(r.who, errno::EIDRM)),
        );
        out.replies.extend(self.senders.drain(..).map(|s| Reply {
            to: s.who,
            result: e,
        }));
        self.messages.clear();
        self.cbytes = 0;
    }

    /// A node is gone: its sleepers are dropped (nobody waits for their
    /// answer; a sleeping sender's message was never accepted).
    pub fn node_gone(&mut self, node: u32) {
        self.receivers.retain(|r| r.who.node != node);
        self.senders.retain(|s| s.who.node != node);
    }

    /// Sleepers that could complete right now; always 0 between calls.
    #[cfg(test)]
    pub fn runnable_sleepers(&self) -> usize {
        let receivers = self
            .receivers
            .iter()
            .filter(|r| {
                r.recv.mode != Mode::Number && self.find(r.recv.msgtyp, r.recv.mode).is_some()
            })
            .count();
        let senders = self
            .senders
            .iter()
            .filter(|s| self.fits(s.msg.text.len()))
            .count();
        receivers + senders
    }
}

/// The answer carrying `msg`, cut to `bufsz` bytes (`do_msg_fill()`).
fn deliver(to: Waiter, mut msg: Msg, bufsz: u64) -> MsgReply {
    if (msg.text.len() as u64) > bufsz {
        msg.text.truncate(bufsz as usize);
    }
    MsgReply {
        to,
        result: msg.text.len() as i64,
        mtype: msg.mtype,
        text: msg.text,
    }
}
