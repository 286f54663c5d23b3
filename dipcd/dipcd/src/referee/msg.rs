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
//! Message leases (see `Documentation/msg.md`): with one node receiving
//! from a queue with a backlog, the referee may lease the head of the queue
//! to it ([`RecvLease`]); with one node sending, it may set room aside for
//! it ([`SendLease`]). The node then receives or sends without a round
//! trip. A leased message stays queued here until the node says it was
//! taken, so the queue is never missing a message; a call of another node
//! that could see the difference first makes the holder give the lease back
//! ([`Recall`]: the call is answered [`errno::RETRY`] and made again).
//!
//! The hand-off of a received message: the message leaves the queue in the
//! same step that produces its answer ([`MsgReply`]). A cancel that arrives
//! later finds no sleeper and changes nothing, so the node delivers the
//! message it gets; a cancel that arrives first removes the sleeper, and the
//! message stays queued. Either way a message exists in exactly one place.

use super::ipc::{Errno, KernIpcPerm, S_IRUGO, S_IWUGO};
use super::sem::{Reply, Waiter};
use super::Effects;
use dipc_wire::{errno, Cred, IpcPerm, MsgStat, BATCH_ENTRY_HEAD, MAX_LEASE_MSGS};
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
    /// Its number in the queue, given when it is queued (a lease names
    /// messages by it).
    #[serde(default)]
    pub seq: u64,
}

/// The head of a queue, leased to one node's receivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecvLease {
    /// The holder.
    pub node: u32,
    /// The lease's number (unique in its queue).
    pub id: u64,
    /// The leased messages not yet taken, in queue order: always the first
    /// messages of the queue.
    pub seqs: Vec<u64>,
}

/// Room in a queue set aside for one node's senders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLease {
    /// The holder.
    pub node: u32,
    /// The lease's number (unique in its queue).
    pub id: u64,
    /// Bytes still set aside.
    pub bytes: u64,
    /// Messages still set aside.
    pub msgs: u64,
    /// The request id of the last message sent under it (a message sent
    /// again after a resumed session, with an id up to this, was queued).
    #[serde(default)]
    pub last_req: u64,
}

/// A lease to take back before a call can go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recall {
    /// The holder.
    pub node: u32,
    /// The lease.
    pub lease: u64,
}

/// A receive lease granted with an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecvGrant {
    /// The lease.
    pub id: u64,
    /// The epoch of the call it answers (set by the server).
    pub epoch: u64,
    /// The queue (set by the server).
    pub oid: u64,
    /// The queue's permissions (set by the server).
    pub perm: IpcPerm,
    /// The leased messages, in queue order.
    pub msgs: Vec<Msg>,
}

/// A send lease granted with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendGrant {
    /// The lease.
    pub id: u64,
    /// Bytes set aside.
    pub bytes: u64,
    /// Messages set aside.
    pub msgs: u64,
}

/// More for a lease already held: messages after those it leased (a receive
/// lease), or more room (a send lease).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct More {
    /// The holder.
    pub node: u32,
    /// The queue (filled in by [`super::Objects`]).
    pub oid: u64,
    /// The lease.
    pub lease: u64,
    /// More room: bytes.
    pub bytes: u64,
    /// More room: messages.
    pub msgs: u64,
    /// More messages, in queue order.
    pub batch: Vec<Msg>,
}

/// Consecutive calls of one kind from one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streak {
    node: u32,
    n: u32,
}

impl Streak {
    /// Counts a call from `node`; returns how many in a row it has made.
    fn count(&mut self, node: u32) -> u32 {
        if self.node == node {
            self.n = self.n.saturating_add(1);
        } else {
            *self = Streak { node, n: 1 };
        }
        self.n
    }
}

/// Calls in a row from one node before it is offered a lease: a queue
/// that several nodes use is not leased.
pub const LEASE_STREAK: u32 = 2;
/// Most bytes of messages one receive lease carries, beside the answer's
/// own message (all of it must fit in one frame).
pub const LEASE_BYTES: u64 = 256 * 1024;
/// Most messages one receive lease holds.
pub const LEASE_MSGS: usize = 256;
/// Most bytes of messages one frame of a lease carries (the answer that
/// grants it, or one [`More`]).
pub const FRAME_BATCH: u64 = 48 * 1024;
/// Most room one send lease sets aside.
pub const SEND_LEASE_BYTES: u64 = 256 * 1024;
/// Most messages one send lease sets room aside for.
pub const SEND_LEASE_MSGS: u64 = 256;

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
    /// A receive lease granted with the answer.
    pub lease: Option<RecvGrant>,
}

impl MsgReply {
    /// An error answer.
    pub fn err(to: Waiter, e: Errno) -> Self {
        MsgReply {
            to,
            result: -i64::from(e),
            mtype: 0,
            text: Vec::new(),
            lease: None,
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
    /// The number the next queued message gets.
    #[serde(default)]
    next_seq: u64,
    /// The number the next lease gets.
    #[serde(default)]
    next_lease: u64,
    /// The head of the queue, leased to one node.
    #[serde(default)]
    pub rlease: Option<RecvLease>,
    /// Room set aside for one node.
    #[serde(default)]
    pub slease: Option<SendLease>,
    #[serde(default)]
    rstreak: Streak,
    #[serde(default)]
    sstreak: Streak,
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
            next_seq: 1,
            next_lease: 1,
            rlease: None,
            slease: None,
            rstreak: Streak::default(),
            sstreak: Streak::default(),
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

    /// `msg_fits_inqueue()`, counting the room a send lease set aside.
    fn fits(&self, size: usize) -> bool {
        let (bytes, msgs) = self.slease.as_ref().map_or((0, 0), |l| (l.bytes, l.msgs));
        size as u64 + self.cbytes + bytes <= self.qbytes && self.qnum() as u64 + msgs < self.qbytes
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

    /// `do_msgsnd()` from the point where the queue is found. `Ok(Some)`
    /// when the call is over (with a send lease for the caller's node, when
    /// it earned one), `Ok(None)` when it sleeps (its answer comes in a
    /// later [`Effects`], or from [`MsgQueue::cancel`]), `Err` when another
    /// node's lease must come back first (nothing changed).
    #[allow(clippy::too_many_arguments)]
    pub fn msgsnd(
        &mut self,
        who: Waiter,
        pid: u32,
        cred: &Cred,
        msg: Msg,
        flags: i32,
        leases: bool,
        now: i64,
        out: &mut Effects,
    ) -> Result<Option<(i64, Option<SendGrant>)>, Recall> {
        // A lease of the caller's node that is still here was never taken
        // up: the node calls only after it gave back the lease it used.
        if self.slease.as_ref().is_some_and(|l| l.node == who.node) {
            self.end_send_lease(now, out);
        }
        if let Some(l) = self.slease.as_ref() {
            // Messages it accepted may be on their way: they go first.
            return Err(Recall {
                node: l.node,
                lease: l.id,
            });
        }
        if let Err(e) = self.perm.ipcperms(cred, S_IWUGO) {
            return Ok(Some((-i64::from(e), None)));
        }
        let len = msg.text.len();
        if !self.fits(len) {
            if let Some(l) = self.rlease.as_ref() {
                // It may have taken messages that make room, and a report
                // of one may have been lost with a broken connection (even
                // the caller's own: it comes back with the lease).
                return Err(Recall {
                    node: l.node,
                    lease: l.id,
                });
            }
        }
        let streak = self.sstreak.count(who.node);
        if self.fits(len) {
            self.send(pid, msg, now, out);
            let grant = if leases && streak >= LEASE_STREAK {
                self.grant_send(who.node, len)
            } else {
                None
            };
            return Ok(Some((0, grant)));
        }
        if flags & IPC_NOWAIT != 0 {
            return Ok(Some((-i64::from(errno::EAGAIN), None)));
        }
        self.senders.push_back(Sender {
            who,
            pid,
            cred: *cred,
            msg,
        });
        Ok(None)
    }

    /// A send lease for `node`, if nobody waits to send and half the room
    /// left holds at least one more message of `len` bytes.
    fn grant_send(&mut self, node: u32, len: usize) -> Option<SendGrant> {
        if !self.senders.is_empty() || self.slease.is_some() {
            return None;
        }
        let free_bytes = self.qbytes.saturating_sub(self.cbytes);
        let free_msgs = self.qbytes.saturating_sub(self.qnum() as u64 + 1);
        let bytes = (free_bytes / 2).min(SEND_LEASE_BYTES);
        let msgs = (free_msgs / 2).min(SEND_LEASE_MSGS);
        if msgs == 0 || bytes < len.max(1) as u64 {
            return None;
        }
        let id = self.next_lease;
        self.next_lease += 1;
        self.slease = Some(SendLease {
            node,
            id,
            bytes,
            msgs,
            last_req: 0,
        });
        Some(SendGrant { id, bytes, msgs })
    }

    /// A message that `node` accepted under send lease `lease`, sent as
    /// request `req` (not answered): it is queued (or handed to a sleeping
    /// receiver) as any send is, and uses up room set aside; the node
    /// checked the permission and the room. One sent again after a resumed
    /// session is recognised by its request id, and one under a lease that
    /// ended was sent again too (every message under a lease comes before
    /// the lease ends): both change nothing. `false` for those.
    #[allow(clippy::too_many_arguments)]
    pub fn leased_send(
        &mut self,
        node: u32,
        lease: u64,
        req: u64,
        pid: u32,
        msg: Msg,
        now: i64,
        out: &mut Effects,
    ) -> bool {
        let Some(l) = self
            .slease
            .as_mut()
            .filter(|l| l.node == node && l.id == lease && req > l.last_req)
        else {
            return false;
        };
        l.last_req = req;
        l.bytes = l.bytes.saturating_sub(msg.text.len() as u64);
        l.msgs = l.msgs.saturating_sub(1);
        self.send(pid, msg, now, out);
        self.extend_send(out);
        true
    }

    /// Ends the send lease: its room is free again, for sleeping senders
    /// first.
    fn end_send_lease(&mut self, now: i64, out: &mut Effects) {
        if self.slease.take().is_some() {
            self.wake_senders(now, out);
        }
    }

    /// `node` gives lease `lease` back, with the messages it took under it
    /// (a receive lease; `pid` took the last). A lease that is not here
    /// (ended already) changes nothing.
    pub fn give_back(
        &mut self,
        node: u32,
        lease: u64,
        taken: &[u64],
        pid: u32,
        now: i64,
        out: &mut Effects,
    ) {
        if self
            .rlease
            .as_ref()
            .is_some_and(|l| l.node == node && l.id == lease)
        {
            for &seq in taken {
                self.take_leased(node, lease, seq, pid, now, out);
            }
            // Messages not taken stay at the head of the queue.
            self.rlease = None;
        } else if self
            .slease
            .as_ref()
            .is_some_and(|l| l.node == node && l.id == lease)
        {
            self.end_send_lease(now, out);
        }
    }

    /// `node` took message `seq` under receive lease `lease`: it leaves the
    /// queue as a receive here would take it. Anything else (a repeat, an
    /// ended lease) changes nothing.
    pub fn take_leased(
        &mut self,
        node: u32,
        lease: u64,
        seq: u64,
        pid: u32,
        now: i64,
        out: &mut Effects,
    ) {
        let Some(l) = self
            .rlease
            .as_mut()
            .filter(|l| l.node == node && l.id == lease)
        else {
            return;
        };
        let Some(k) = l.seqs.iter().position(|&s| s == seq) else {
            return;
        };
        l.seqs.remove(k);
        // Leased messages are at the head of the queue.
        let Some(i) = self.messages.iter().position(|m| m.seq == seq) else {
            return;
        };
        let Some(m) = self.messages.remove(i) else {
            return;
        };
        self.cbytes -= m.text.len() as u64;
        self.rtime = now;
        self.lrpid = pid;
        self.wake_senders(now, out);
        self.extend_recv(out);
    }

    /// Before a call of `node` that reads or changes the whole queue
    /// (`msgctl`): the leases of other nodes that must come back first. The
    /// node's own leases end (it gave back what it used before it called).
    pub fn leases_for_ctl(&mut self, node: u32, now: i64, out: &mut Effects) -> Vec<Recall> {
        if self.rlease.as_ref().is_some_and(|l| l.node == node) {
            self.rlease = None;
        }
        if self.slease.as_ref().is_some_and(|l| l.node == node) {
            self.end_send_lease(now, out);
        }
        self.leases_of_others(node)
    }

    /// Leases held by nodes other than `node`.
    pub fn leases_of_others(&self, node: u32) -> Vec<Recall> {
        let r = self.rlease.as_ref().map(|l| (l.node, l.id));
        let s = self.slease.as_ref().map(|l| (l.node, l.id));
        [r, s]
            .into_iter()
            .flatten()
            .filter(|&(n, _)| n != node)
            .map(|(node, lease)| Recall { node, lease })
            .collect()
    }

    /// The message is accepted: to a sleeping receiver, or onto the queue.
    fn send(&mut self, pid: u32, msg: Msg, now: i64, out: &mut Effects) {
        self.lspid = pid;
        self.stime = now;
        if let Some(mut msg) = self.pipelined_send(msg, now, out) {
            self.cbytes += msg.text.len() as u64;
            msg.seq = self.next_seq;
            self.next_seq += 1;
            self.messages.push_back(msg);
            self.extend_recv(out);
        }
    }

    /// A receive lease running short grows by the messages queued right
    /// behind it (so it stays the head of the queue), as long as nobody
    /// sleeps here to receive: its holder is not starved while messages
    /// wait here. Only once it is down to a quarter (in messages and in
    /// bytes), so that each addition carries many messages.
    fn extend_recv(&mut self, out: &mut Effects) {
        let Some(held) = self.rlease.as_ref().map(|l| l.seqs.len()) else {
            return;
        };
        let held_bytes: u64 = self.messages.iter().take(held).map(entry_len).sum();
        if held >= LEASE_MSGS / 4 || held_bytes >= LEASE_BYTES / 4 {
            return;
        }
        self.fill_recv(out);
    }

    /// Adds the messages queued behind the receive lease to it, up to its
    /// bounds, in frames of at most [`FRAME_BATCH`] bytes; not while
    /// anybody sleeps here to receive.
    fn fill_recv(&mut self, out: &mut Effects) {
        if !self.receivers.is_empty() {
            return;
        }
        let Some(l) = self.rlease.as_mut() else {
            return;
        };
        let held = l.seqs.len();
        let mut held_bytes: u64 = self.messages.iter().take(held).map(entry_len).sum();
        let mut batch = Vec::new();
        let mut used = 0u64;
        for m in self
            .messages
            .iter()
            .skip(held)
            .take(LEASE_MSGS.saturating_sub(held))
        {
            let n = entry_len(m);
            if held_bytes + n > LEASE_BYTES {
                break;
            }
            if used + n > FRAME_BATCH || batch.len() == MAX_LEASE_MSGS {
                out.more.push(More {
                    node: l.node,
                    oid: 0,
                    lease: l.id,
                    bytes: 0,
                    msgs: 0,
                    batch: core::mem::take(&mut batch),
                });
                used = 0;
            }
            used += n;
            held_bytes += n;
            l.seqs.push(m.seq);
            batch.push(m.clone());
        }
        if !batch.is_empty() {
            out.more.push(More {
                node: l.node,
                oid: 0,
                lease: l.id,
                bytes: 0,
                msgs: 0,
                batch,
            });
        }
    }

    /// A send lease whose room runs low gets more, up to what a new one
    /// would get, if nobody waits to send.
    fn extend_send(&mut self, out: &mut Effects) {
        if !self.senders.is_empty() {
            return;
        }
        let (free_bytes, free_msgs) = {
            let Some(l) = self.slease.as_ref() else {
                return;
            };
            // The room not set aside yet.
            (
                self.qbytes.saturating_sub(self.cbytes + l.bytes),
                self.qbytes.saturating_sub(self.qnum() as u64 + l.msgs + 1),
            )
        };
        let Some(l) = self.slease.as_mut() else {
            return;
        };
        let want_bytes = SEND_LEASE_BYTES.min((free_bytes + l.bytes) / 2);
        let want_msgs = SEND_LEASE_MSGS.min((free_msgs + l.msgs) / 2);
        if l.bytes >= want_bytes / 2 && l.msgs >= want_msgs / 2 {
            return;
        }
        let bytes = want_bytes.saturating_sub(l.bytes);
        let msgs = want_msgs.saturating_sub(l.msgs);
        if bytes == 0 && msgs == 0 {
            return;
        }
        l.bytes += bytes;
        l.msgs += msgs;
        out.more.push(More {
            node: l.node,
            oid: 0,
            lease: l.id,
            bytes,
            msgs,
            batch: Vec::new(),
        });
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
    /// is the size of the copy buffer for `MSG_COPY` (`min(bufsz, msgmax)`),
    /// `lease_room` the most bytes of entries a lease granted with the
    /// answer may carry. `Ok(Some(answer))` when the call is over, `Ok(None)`
    /// when it sleeps, `Err` when another node's lease must come back
    /// first (nothing changed).
    #[allow(clippy::too_many_arguments)]
    pub fn msgrcv(
        &mut self,
        who: Waiter,
        pid: u32,
        cred: &Cred,
        recv: Recv,
        copy_max: u64,
        lease_room: u64,
        now: i64,
        out: &mut Effects,
    ) -> Result<Option<MsgReply>, Recall> {
        // A lease of the caller's node that is still here was never taken
        // up (see `msgsnd`).
        if self.rlease.as_ref().is_some_and(|l| l.node == who.node) {
            self.rlease = None;
        }
        if let Some(l) = self.rlease.as_ref() {
            // The head of the queue is away.
            return Err(Recall {
                node: l.node,
                lease: l.id,
            });
        }
        if let Some(l) = self.slease.as_ref().filter(|l| l.node != who.node) {
            // Messages the holder accepted may be on their way; they come
            // after every message here. A search that finds one here may go
            // on, and so may a receiver that will sleep (they will be handed
            // to it). One that would fail, or that looks for the lowest
            // type, waits for them.
            let found = self.perm.ipcperms(cred, S_IRUGO).is_err()
                || self.find(recv.msgtyp, recv.mode).is_some();
            if recv.mode == Mode::LessEqual || (!found && recv.flags & IPC_NOWAIT != 0) {
                return Err(Recall {
                    node: l.node,
                    lease: l.id,
                });
            }
        }
        let streak = self.rstreak.count(who.node);
        Ok(
            match self.try_receive(who, pid, cred, recv, copy_max, now, out) {
                Some(mut r) => {
                    if streak >= LEASE_STREAK
                        && r.result >= 0
                        && recv.mode == Mode::Any
                        && recv.flags & MSG_COPY == 0
                    {
                        r.lease = self.grant_recv(who.node, lease_room, out);
                    }
                    Some(r)
                }
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
            },
        )
    }

    /// A receive lease of the head of the queue for `node`, if nobody
    /// sleeps here to receive: the answer carries at most `room` bytes of
    /// entries; more follow in [`More`] frames (in `out`), up to the
    /// lease's bounds.
    fn grant_recv(&mut self, node: u32, room: u64, out: &mut Effects) -> Option<RecvGrant> {
        if !self.receivers.is_empty() || self.rlease.is_some() || room == 0 {
            return None;
        }
        let room = room.min(FRAME_BATCH);
        let mut used = 0u64;
        let mut msgs = Vec::new();
        for m in self.messages.iter().take(MAX_LEASE_MSGS.min(LEASE_MSGS)) {
            let n = entry_len(m);
            if used + n > room {
                break;
            }
            used += n;
            msgs.push(m.clone());
        }
        if msgs.is_empty() {
            return None;
        }
        let id = self.next_lease;
        self.next_lease += 1;
        self.rlease = Some(RecvLease {
            node,
            id,
            seqs: msgs.iter().map(|m| m.seq).collect(),
        });
        self.fill_recv(out);
        Some(RecvGrant {
            id,
            epoch: 0,
            oid: 0,
            perm: IpcPerm::default(),
            msgs,
        })
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
    /// answer; a sleeping sender's message was never accepted). Its leases
    /// end: messages it leased and was not heard to take stay queued; room
    /// set aside for it is free again (messages it accepted and had not
    /// sent are lost with it).
    pub fn node_gone(&mut self, node: u32, now: i64, out: &mut Effects) {
        self.receivers.retain(|r| r.who.node != node);
        self.senders.retain(|s| s.who.node != node);
        if self.rlease.as_ref().is_some_and(|l| l.node == node) {
            self.rlease = None;
        }
        if self.slease.as_ref().is_some_and(|l| l.node == node) {
            self.end_send_lease(now, out);
        }
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

/// Bytes of `m`'s entry in a [`dipc_wire::Batch`].
fn entry_len(m: &Msg) -> u64 {
    (BATCH_ENTRY_HEAD + m.text.len()) as u64
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
        lease: None,
    }
}
