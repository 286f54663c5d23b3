// SPDX-License-Identifier: GPL-2.0

//! Message leases on the node side (`Documentation/msg.md`).
//!
//! When one node alone receives from a queue with a backlog, the referee
//! may lease it the head of the queue: the messages come with an answer,
//! and this node's receivers take them without a round trip (each taken
//! message is reported at once with a one-way `MsgTaken`). When one node
//! alone sends, the referee may set room aside for it: its senders queue
//! messages that fit at once, sending each as a quiet call: not answered,
//! done once a later call is answered, sent again if the session resumes
//! (the referee knows a repeat by its request id).
//!
//! The referee stays the one place that orders a queue: a leased message
//! is still queued there until it is taken, and a call of another node
//! that could tell the difference first makes this node give the lease
//! back (`MsgRecall`, answered with a `MsgReturn` call).
//!
//! How a lease and the calls of this node stay in step: per queue, each
//! kind of lease has an epoch that every call that ends it at the referee
//! raises (a receive or `msgctl` for a receive lease; a send the referee
//! decides, or `msgctl`, for a send lease). The call first gives back the
//! lease it replaces, if it holds one, and names the epoch it raised; a
//! lease granted in answer to an earlier epoch came too late and is given
//! back unused. Everything here happens under the queue's lock, and the
//! frames go out in that order on the node's one connection.

use crate::{
    msgq::{Leased, Queue, RecvLease, SendLease, State},
    node::Node,
    shim,
    transport::Answer,
    wire::{self, Frame, MsgReturn, MsgTaken, Seqs, MAX_LEASE_MSGS},
};
use kernel::{prelude::*, sync::Arc};

/// Counters in `/proc/dipc/status`.
pub(crate) const COUNT_TAKEN: usize = 33;
pub(crate) const COUNT_SENT: usize = 34;
pub(crate) const COUNT_RECALLED: usize = 35;
pub(crate) const COUNT_RETRIES: usize = 36;

/// `S_IRUGO` and `S_IWUGO`, as `ipcperms()` takes them.
const S_IRUGO: u32 = 0o444;
const S_IWUGO: u32 = 0o222;
const MSG_NOERROR: i32 = 0o10000;
const MSG_EXCEPT: i32 = 0o20000;
const MSG_COPY: i32 = 0o40000;

/// Taken messages are reported at least this often (and each one once the
/// lease runs low, so that the referee adds to it in time).
const REPORT_EVERY: usize = 16;
/// A lease holding fewer messages than this counts as running low.
const LOW: usize = 64;

/// The queue `oid`'s entry, made on first use (`None` without memory, or
/// when `create` is false and there is none).
fn queue(node: &Node, oid: u64, create: bool) -> Option<Arc<Queue>> {
    let mut t = node.msgq.lock();
    if let Some(q) = t.get(&oid) {
        return Some(q.clone());
    }
    if !create {
        return None;
    }
    let q = Queue::new(oid).ok()?;
    t.try_create_and_insert(oid, q.clone(), GFP_KERNEL).ok()?;
    Some(q)
}

/// Sends `MsgReturn` for the receive lease in `st` and drops it. `Err` (the
/// lease kept) when the frame could not go out.
fn give_back_recv(node: &Node, oid: u64, st: &mut State) -> Result {
    let Some(l) = st.recv.as_ref() else {
        return Ok(());
    };
    let n = l.taken.len().min(MAX_LEASE_MSGS);
    let mut seqs = KVVec::from_elem(0u8, n * 8, GFP_KERNEL)?;
    for (i, s) in l.taken.iter().take(n).enumerate() {
        seqs[i * 8..i * 8 + 8].copy_from_slice(&s.to_le_bytes());
    }
    let taken = Seqs::new(&seqs).ok_or(EINVAL)?;
    let f = Frame::MsgReturn(MsgReturn {
        oid,
        lease: l.id,
        pid: l.pid,
        taken,
    });
    node.start_call(&f)?;
    st.recv = None;
    Ok(())
}

/// Sends `MsgReturn` for the send lease in `st` and drops it (`Err`, the
/// lease kept, when the frame could not go out).
fn give_back_send(node: &Node, oid: u64, st: &mut State) -> Result {
    let Some(l) = st.send.as_ref() else {
        return Ok(());
    };
    node.start_call(&Frame::MsgReturn(MsgReturn {
        oid,
        lease: l.id,
        pid: 0,
        taken: Seqs::EMPTY,
    }))?;
    st.send = None;
    Ok(())
}

/// Gives back an unused lease `lease` (it came too late, or could not be
/// kept); the referee ignores it if it ended it already.
fn give_back_unused(node: &Node, oid: u64, lease: u64) {
    let _ = node.start_call(&Frame::MsgReturn(MsgReturn {
        oid,
        lease,
        pid: 0,
        taken: Seqs::EMPTY,
    }));
}

/// What a receive under a lease did.
pub(crate) enum Local {
    /// The message (type and body, cut to the caller's size).
    Taken(i64, KVVec<u8>),
    /// A negative errno, as the referee would have answered.
    Failed(c_long),
}

/// A receive served from this node's receive lease of queue `oid`, when the
/// lease holds the message the call must take (the leased messages are the
/// head of the queue, so the first match among them is the queue's first).
/// `None`: the call goes to the referee.
pub(crate) fn try_receive(
    node: &Node,
    oid: u64,
    msgtyp: i64,
    flags: i32,
    msgsz: usize,
) -> Option<Local> {
    // `LessEqual` needs the lowest type in the whole queue; `MSG_COPY`
    // counts the whole queue.
    if msgtyp < 0 || flags & MSG_COPY != 0 {
        return None;
    }
    let q = queue(node, oid, false)?;
    let mut st = q.st.lock();
    // A lease that has served as many messages as one `MsgReturn` lists
    // goes back (the remote receive gives it back and gets a new one).
    let l = st
        .recv
        .as_mut()
        .filter(|l| l.taken.len() < MAX_LEASE_MSGS)?;
    let cred = shim::current_cred();
    if let Err(e) = l.perm.ipcperms(&cred, S_IRUGO) {
        return Some(Local::Failed(-(e as c_long)));
    }
    let i = l.head
        + l.msgs[l.head..].iter().position(|m| {
            !m.gone && (msgtyp == 0 || (m.mtype == msgtyp) != (flags & MSG_EXCEPT != 0))
        })?;
    if l.msgs[i].text.len() > msgsz && flags & MSG_NOERROR == 0 {
        return Some(Local::Failed(-(wire::errno::E2BIG as c_long)));
    }
    let pid = shim::current_tgid();
    // Room for the records first, so a failure leaves the lease as it was.
    l.taken.reserve(1, GFP_KERNEL).ok()?;
    l.unreported.reserve(1, GFP_KERNEL).ok()?;
    let m = &mut l.msgs[i];
    m.gone = true;
    let (seq, mtype) = (m.seq, m.mtype);
    let mut text = core::mem::replace(&mut m.text, KVVec::new());
    let _ = l.taken.push(seq, GFP_KERNEL);
    let _ = l.unreported.push(seq, GFP_KERNEL);
    l.live -= 1;
    while l.head < l.msgs.len() && l.msgs[l.head].gone {
        l.head += 1;
    }
    if l.head == l.msgs.len() {
        l.msgs.clear();
        l.head = 0;
    }
    l.pid = pid;
    if l.unreported.len() >= REPORT_EVERY || l.live < LOW {
        report(node, oid, l);
    }
    shim::Counter::inc(COUNT_TAKEN);
    text.truncate(msgsz);
    Some(Local::Taken(mtype, text))
}

/// Tells the referee which messages were taken since the last report.
fn report(node: &Node, oid: u64, l: &mut RecvLease) {
    let mut b = KVVec::new();
    for s in l.unreported.iter() {
        if b.extend_from_slice(&s.to_le_bytes(), GFP_KERNEL).is_err() {
            // Not reported now: the `MsgReturn` lists it.
            return;
        }
    }
    let Some(seqs) = Seqs::new(&b) else {
        return;
    };
    let _ = node.send_oneway(&Frame::MsgTaken(MsgTaken {
        oid,
        lease: l.id,
        pid: l.pid,
        seqs,
    }));
    l.unreported.clear();
}

/// A copy of `src`. (Zeroed first: `extend_from_slice` copies element by
/// element, which measured slower under TCG than a zeroing pass plus one
/// `memcpy`.)
fn copied(src: &[u8]) -> Result<KVVec<u8>> {
    let mut v = KVVec::from_elem(0u8, src.len(), GFP_KERNEL)?;
    v.copy_from_slice(src);
    Ok(v)
}

/// A send accepted under this node's send lease of queue `oid`, when what
/// is left of it holds the message: `Some(0)` (it went out as a call
/// nobody waits for), `Some(-EACCES)`; `None`: the call goes to the referee.
pub(crate) fn try_send(node: &Node, oid: u64, frame: &wire::MsgSnd<'_>) -> Option<c_long> {
    let q = queue(node, oid, false)?;
    let mut st = q.st.lock();
    let l = st.send.as_mut()?;
    if let Err(e) = l.perm.ipcperms(&frame.cred, S_IWUGO) {
        return Some(-(e as c_long));
    }
    let len = frame.text.len() as u64;
    if l.msgs == 0 || len > l.bytes {
        return None;
    }
    let f = Frame::MsgSnd(wire::MsgSnd {
        lease: l.id,
        ..*frame
    });
    // Without a connection the call waits for the referee like any other.
    node.start_quiet_call(&f).ok()?;
    l.bytes -= len;
    l.msgs -= 1;
    shim::Counter::inc(COUNT_SENT);
    Some(0)
}

/// Which leases a call to the referee ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ends {
    /// A receive: the receive lease.
    Recv,
    /// A send the referee decides: the send lease.
    Send,
    /// `msgctl`: both.
    Both,
    /// `MSG_INFO`: both, on every queue.
    All,
}

/// Makes the call `make(epoch)` on queue `oid` to the referee, after giving
/// back the leases it ends (see the module documentation), and waits for
/// its answer. `make` gets the raised epoch of the lease the call may be
/// granted (0 for `msgctl`).
pub(crate) fn call<'a>(
    node: &Node,
    oid: u64,
    ends: Ends,
    make: impl Fn(u64) -> Frame<'a>,
) -> Result<Answer> {
    let q = queue(node, oid, true).ok_or(ENOMEM)?;
    loop {
        node.wait_for_connection()?;
        match start(node, &q, ends, &make) {
            Ok(call) => return node.wait_call(&call, None),
            // The connection went away under us: wait for the next one.
            Err(e) if e == EIO => {}
            Err(e) => return Err(e),
        }
    }
}

fn start<'a>(
    node: &Node,
    q: &Queue,
    ends: Ends,
    make: &impl Fn(u64) -> Frame<'a>,
) -> Result<Arc<crate::transport::Call>> {
    if ends == Ends::All {
        let all: KVec<Arc<Queue>> = {
            let t = node.msgq.lock();
            let mut v = KVec::new();
            for x in t.values() {
                v.push(x.clone(), GFP_KERNEL)?;
            }
            v
        };
        for other in all.iter().filter(|x| x.oid != q.oid) {
            let mut st = other.st.lock();
            st.repoch += 1;
            st.sepoch += 1;
            give_back_recv(node, other.oid, &mut st)?;
            give_back_send(node, other.oid, &mut st)?;
        }
    }
    let mut st = q.st.lock();
    let epoch = match ends {
        Ends::Recv => {
            st.repoch += 1;
            give_back_recv(node, q.oid, &mut st)?;
            st.repoch
        }
        Ends::Send => {
            st.sepoch += 1;
            give_back_send(node, q.oid, &mut st)?;
            st.sepoch
        }
        Ends::Both | Ends::All => {
            st.repoch += 1;
            st.sepoch += 1;
            give_back_recv(node, q.oid, &mut st)?;
            give_back_send(node, q.oid, &mut st)?;
            0
        }
    };
    node.start_call(&make(epoch))
}

/// Sleeps before a call the referee answered `RETRY` is made again:
/// false when a signal (with `killable`, a fatal one) ends the wait.
pub(crate) fn wait_to_retry(killable: bool) -> bool {
    shim::Counter::inc(COUNT_RETRIES);
    shim::sleep_us(500, killable)
}

/// Connection thread: a lease `lease` of queue `oid` was granted with an
/// answer. `install` takes it up, or says it came too late (a later call
/// ended it) or could not be kept; then it is given back unused.
fn take_up(node: &Node, oid: u64, lease: u64, install: impl FnOnce(&mut State) -> bool) {
    if lease == 0 {
        return;
    }
    let kept = queue(node, oid, true).is_some_and(|q| {
        let mut st = q.st.lock();
        lease > st.floor && install(&mut st)
    });
    if !kept {
        give_back_unused(node, oid, lease);
    }
}

/// Connection thread: an answer to a receive arrived (see [`take_up`]).
pub(crate) fn recv_answer(node: &Node, r: &wire::MsgRcvReply<'_>) {
    take_up(node, r.oid, r.lease, |st| {
        if st.repoch != r.epoch || st.recv.is_some() {
            return false;
        }
        let Ok(msgs) = leased(r) else {
            return false;
        };
        let live = msgs.len();
        st.recv = Some(RecvLease {
            id: r.lease,
            perm: r.perm,
            msgs,
            head: 0,
            live,
            taken: KVec::new(),
            unreported: KVec::new(),
            pid: 0,
            short: false,
        });
        true
    });
}

/// The leased messages of `r`, copied.
fn leased(r: &wire::MsgRcvReply<'_>) -> Result<KVec<Leased>> {
    let mut v = KVec::new();
    for m in r.batch.iter() {
        v.push(
            Leased {
                seq: m.seq,
                mtype: m.mtype,
                text: copied(m.text)?,
                gone: false,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(v)
}

/// Connection thread: an answer to a send arrived (see [`take_up`]).
pub(crate) fn send_answer(node: &Node, r: &wire::MsgSndReply) {
    take_up(node, r.oid, r.lease, |st| {
        if st.sepoch != r.epoch || st.send.is_some() {
            return false;
        }
        st.send = Some(SendLease {
            id: r.lease,
            perm: r.perm,
            bytes: r.bytes,
            msgs: r.msgs,
        });
        true
    });
}

/// Connection thread: the referee wants lease `lease` of queue `oid` back.
/// A lease this node does not hold is given back too (unused), and kept
/// from being taken up should its grant still arrive.
pub(crate) fn recall(node: &Node, oid: u64, lease: u64) {
    shim::Counter::inc(COUNT_RECALLED);
    let Some(q) = queue(node, oid, true) else {
        give_back_unused(node, oid, lease);
        return;
    };
    let mut st = q.st.lock();
    // A failed send leaves the lease held: the referee asks again.
    if st.recv.as_ref().is_some_and(|l| l.id == lease) {
        let _ = give_back_recv(node, oid, &mut st);
    } else if st.send.as_ref().is_some_and(|l| l.id == lease) {
        let _ = give_back_send(node, oid, &mut st);
    } else {
        st.floor = st.floor.max(lease);
        drop(st);
        give_back_unused(node, oid, lease);
    }
}

/// Connection thread: more for a lease this node holds (ignored for one it
/// does not hold any more: what it carries stays at the referee).
pub(crate) fn more(node: &Node, m: &wire::MsgMore<'_>) {
    let Some(q) = queue(node, m.oid, false) else {
        return;
    };
    let mut st = q.st.lock();
    if let Some(l) = st.recv.as_mut().filter(|l| l.id == m.lease && !l.short) {
        for b in m.batch.iter() {
            // Without memory the lease stops short of these: it goes back
            // when its messages run out, and the referee keeps what was
            // not taken.
            let Ok(text) = copied(b.text) else {
                l.short = true;
                break;
            };
            let leased = Leased {
                seq: b.seq,
                mtype: b.mtype,
                text,
                gone: false,
            };
            if l.msgs.push(leased, GFP_KERNEL).is_err() {
                l.short = true;
                break;
            }
            l.live += 1;
        }
    } else if let Some(l) = st.send.as_mut().filter(|l| l.id == m.lease) {
        l.bytes = l.bytes.saturating_add(m.bytes);
        l.msgs = l.msgs.saturating_add(m.msgs);
    }
}

/// A new session: the referee ended every lease this node held.
pub(crate) fn connection_lost(node: &Node) {
    let t = core::mem::take(&mut *node.msgq.lock());
    for q in t.values() {
        let mut st = q.st.lock();
        st.recv = None;
        st.send = None;
    }
}

/// Queue `oid` was removed (its leases were given back before).
pub(crate) fn removed(node: &Node, oid: u64) {
    node.msgq.lock().remove(&oid);
}

/// Leases this node holds: (receive, send).
pub(crate) fn held(node: &Node) -> (u64, u64) {
    let t = node.msgq.lock();
    let mut n = (0, 0);
    for q in t.values() {
        let st = q.st.lock();
        n.0 += u64::from(st.recv.is_some());
        n.1 += u64::from(st.send.is_some());
    }
    n
}
