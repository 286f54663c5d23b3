//! Message leases, end to end through the referee's [`State`]: a model of
//! three nodes that follows the module's rules (`src/msglease.rs`), over
//! ordered channels that deliver at random moments, with nodes that crash
//! and come back. Each step checks what a single kernel's queue would
//! allow:
//! - a receive served from a lease takes the first matching message of the
//!   queue as it really is (the referee's, less what other receives already
//!   took and have not reported, with messages accepted under a send lease
//!   and still on their way after it);
//! - a message accepted under a send lease reaches the queue behind nothing
//!   that was queued after it was accepted;
//! - `ENOMSG` and `EAGAIN` are answered only when the queue as it really is
//!   has no match, or no room;
//! - no message is received twice, except one a crashed node took and never
//!   reported; none is lost, except one a crashed node accepted and never
//!   sent;
//! - with no new calls, every retried call ends (progress).

use crate::referee::Limits;
use crate::state::{Record, State};
use dipc_wire::{
    decode, errno, msgcmd, Class, Cred, Frame, Get, Message, MsgCtl, MsgRcv, MsgReturn, MsgSnd,
    MsgTaken, Seqs, CAP_IPC_OWNER, CAP_SYS_ADMIN, CAP_SYS_RESOURCE,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const ROOT: Cred = Cred::new(0, 0, CAP_SYS_ADMIN | CAP_IPC_OWNER | CAP_SYS_RESOURCE);
const NODES: usize = 3;
const QBYTES: u64 = 400;
const NOW: i64 = 1;
const RETRY: i64 = -(errno::RETRY as i64);

/// A frame from a node, owned.
#[derive(Clone, Debug)]
enum Up {
    Snd {
        req: u64,
        mtype: i64,
        lease: u64,
        epoch: u64,
        body: Vec<u8>,
    },
    Rcv {
        req: u64,
        msgtyp: i64,
        nowait: bool,
        epoch: u64,
        /// How many messages were accepted when it was made.
        issued: u64,
    },
    Return {
        req: u64,
        lease: u64,
        taken: Vec<u64>,
    },
    Taken {
        lease: u64,
        seqs: Vec<u64>,
    },
    Stat {
        req: u64,
    },
}

/// A call a node waits for the answer to.
#[derive(Clone, Copy, Debug)]
enum Op {
    Snd { mtype: i64 },
    Rcv { msgtyp: i64, nowait: bool },
    Stat,
}

#[derive(Default)]
struct RecvLease {
    id: u64,
    msgs: Vec<(u64, i64, Vec<u8>)>,
    taken: Vec<u64>,
    /// Taken and not reported yet (reports go every few messages).
    unreported: Vec<u64>,
}

/// Takes per report in the model (the module's is larger).
const REPORT_EVERY: usize = 3;

#[derive(Default)]
struct NodeM {
    repoch: u64,
    sepoch: u64,
    floor: u64,
    recv: Option<RecvLease>,
    /// (lease, bytes, msgs)
    send: Option<(u64, u64, u32)>,
    /// Calls waiting for their answer, by request id.
    pending: BTreeMap<u64, (Op, Vec<u8>)>,
    /// Calls answered RETRY, to make again.
    again: Vec<(Op, Vec<u8>)>,
    up: VecDeque<Up>,
    down: VecDeque<(u64, Vec<u8>)>,
    incarnation: u64,
    /// Every call sent and not answered, in order: sent again when the
    /// session resumes.
    calls: Vec<(u64, Up)>,
    /// Messages whose answer was lost with a broken connection: the
    /// referee sends them again when their call comes again.
    limbo: Vec<u64>,
}

impl NodeM {
    fn send(&mut self, up: Up) {
        let req = match &up {
            Up::Snd { req, .. }
            | Up::Rcv { req, .. }
            | Up::Return { req, .. }
            | Up::Stat { req } => *req,
            Up::Taken { .. } => 0,
        };
        if req != 0 {
            self.calls.push((req, up.clone()));
        }
        self.up.push_back(up);
    }

    /// The connection breaks and the session resumes: frames on the way
    /// are lost; every call not answered goes again, in order.
    fn resume(&mut self) {
        self.up = self.calls.iter().map(|(_, u)| u.clone()).collect();
        for (_, bytes) in core::mem::take(&mut self.down) {
            if let Ok((m, _)) = decode(&bytes) {
                if let Frame::MsgRcvReply(r) = m.frame {
                    if r.result >= 0 {
                        self.limbo.push(tag_of(r.text));
                    }
                }
            }
        }
    }
}

struct Sim {
    st: State,
    oid: u64,
    nodes: Vec<NodeM>,
    next_req: u64,
    next_tag: u64,
    /// Tags accepted (msgsnd returned 0), by who: (node, incarnation).
    accepted: BTreeMap<u64, (usize, u64)>,
    /// Accepted under a send lease and not at the referee yet, in order,
    /// with the referee's arrival count when accepted.
    /// (tag, node, arrivals then, mtype, length, accepted count with it)
    on_the_way: Vec<(u64, usize, u64, i64, usize, u64)>,
    /// Referee arrivals so far, and who made each (node).
    arrivals: Vec<usize>,
    /// Tags lost with a crashed node (accepted, never sent).
    lost: BTreeSet<u64>,
    /// Receipts per tag: (node, incarnation).
    received: BTreeMap<u64, Vec<(usize, u64)>>,
    /// Messages taken under a lease whose report the referee has not
    /// processed: seq -> (node, incarnation, tag).
    unreported: BTreeMap<u64, (usize, u64, u64)>,
    /// Tags whose unreported take died with its node.
    may_repeat: BTreeSet<u64>,
}

fn tag_of(body: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&body[..8]);
    u64::from_le_bytes(b)
}

impl Sim {
    fn new() -> Self {
        let mut st = State::new(Limits {
            msgmnb: QBYTES as usize,
            msgmax: 100,
            ..Limits::default()
        });
        let mut nodes = Vec::new();
        for n in 0..NODES {
            st.apply(&Record::Hello {
                node: n as u32 + 1,
                incarnation: 1,
                now: NOW,
            });
            nodes.push(NodeM {
                incarnation: 1,
                ..NodeM::default()
            });
        }
        let g = st.objects.get(
            &Get {
                class: Class::Msg,
                key: 0x77,
                flags: 0o1000 | 0o666,
                size: 0,
                cred: ROOT,
                pid: 1,
            },
            NOW,
        );
        assert_eq!(g.result, 0);
        Sim {
            st,
            oid: g.oid,
            nodes,
            next_req: 1,
            next_tag: 1,
            accepted: BTreeMap::new(),
            on_the_way: Vec::new(),
            arrivals: Vec::new(),
            lost: BTreeSet::new(),
            received: BTreeMap::new(),
            unreported: BTreeMap::new(),
            may_repeat: BTreeSet::new(),
        }
    }

    fn req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// The queue as it really is: the referee's messages less those taken
    /// and not reported, as (seq, mtype, tag, len).
    fn true_queue(&self) -> Vec<(u64, i64, u64, usize)> {
        self.st
            .objects
            .msg(self.oid)
            .map(|q| {
                q.messages()
                    .filter(|m| !self.unreported.contains_key(&m.seq))
                    .map(|m| (m.seq, m.mtype, tag_of(&m.text), m.text.len()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn matches(mtype: i64, msgtyp: i64) -> bool {
        msgtyp == 0 || mtype == msgtyp
    }

    fn receipt(&mut self, n: usize, tag: u64) {
        let inc = self.nodes[n].incarnation;
        let r = self.received.entry(tag).or_default();
        r.push((n, inc));
        assert!(
            r.len() == 1 || self.may_repeat.contains(&tag),
            "message {tag} received twice: {r:?}"
        );
    }

    /// A program on node `n` makes call `op` (`body` for a send).
    fn issue(&mut self, n: usize, op: Op, body: Vec<u8>) {
        match op {
            Op::Snd { mtype, .. } => {
                let len = body.len() as u64;
                let node = &mut self.nodes[n];
                if let Some((lease, bytes, msgs)) = node.send.as_mut() {
                    if *msgs > 0 && len <= *bytes {
                        *bytes -= len;
                        *msgs -= 1;
                        let lease = *lease;
                        let req = self.req();
                        let tag = tag_of(&body);
                        let node = &mut self.nodes[n];
                        node.send(Up::Snd {
                            req,
                            mtype,
                            lease,
                            epoch: 0,
                            body,
                        });
                        self.accepted.insert(tag, (n, node.incarnation));
                        let at = self.arrivals.len() as u64;
                        let clock = self.accepted.len() as u64;
                        self.on_the_way
                            .push((tag, n, at, mtype, len as usize, clock));
                        return;
                    }
                }
                let node = &mut self.nodes[n];
                node.sepoch += 1;
                if let Some((lease, ..)) = node.send.take() {
                    let r = self.next_req + 1;
                    self.next_req = r;
                    self.nodes[n].send(Up::Return {
                        req: r,
                        lease,
                        taken: vec![],
                    });
                }
                let req = self.req();
                let node = &mut self.nodes[n];
                let epoch = node.sepoch;
                node.pending.insert(req, (op, body.clone()));
                node.send(Up::Snd {
                    req,
                    mtype,
                    lease: 0,
                    epoch,
                    body,
                });
            }
            Op::Rcv { msgtyp, nowait } => {
                if let Some(tag) = self.take_local(n, msgtyp) {
                    self.receipt(n, tag);
                    return;
                }
                self.give_back_recv(n);
                let req = self.req();
                let node = &mut self.nodes[n];
                node.repoch += 1;
                let epoch = node.repoch;
                node.pending.insert(req, (op, vec![]));
                let issued = self.accepted.len() as u64;
                let node = &mut self.nodes[n];
                node.send(Up::Rcv {
                    req,
                    msgtyp,
                    nowait,
                    epoch,
                    issued,
                });
            }
            Op::Stat => {
                self.give_back_recv(n);
                let node = &mut self.nodes[n];
                node.repoch += 1;
                node.sepoch += 1;
                if let Some((lease, ..)) = node.send.take() {
                    let r = self.req();
                    self.nodes[n].send(Up::Return {
                        req: r,
                        lease,
                        taken: vec![],
                    });
                }
                let req = self.req();
                let node = &mut self.nodes[n];
                node.pending.insert(req, (op, vec![]));
                node.send(Up::Stat { req });
            }
        }
    }

    fn give_back_recv(&mut self, n: usize) {
        if let Some(l) = self.nodes[n].recv.take() {
            let req = self.req();
            self.nodes[n].send(Up::Return {
                req,
                lease: l.id,
                taken: l.taken,
            });
        }
    }

    /// A receive from node `n`'s lease; checks it takes the queue's first
    /// match.
    fn take_local(&mut self, n: usize, msgtyp: i64) -> Option<u64> {
        let l = self.nodes[n]
            .recv
            .as_mut()
            .filter(|l| l.taken.len() < dipc_wire::MAX_LEASE_MSGS)?;
        let i = l.msgs.iter().position(|m| Self::matches(m.1, msgtyp))?;
        let (seq, _, body) = l.msgs.remove(i);
        l.taken.push(seq);
        l.unreported.push(seq);
        let lease = l.id;
        if l.unreported.len() >= REPORT_EVERY || l.msgs.len() < 2 {
            let seqs = core::mem::take(&mut l.unreported);
            self.nodes[n].send(Up::Taken { lease, seqs });
        }
        let tag = tag_of(&body);
        let first = self
            .true_queue()
            .into_iter()
            .find(|m| Self::matches(m.1, msgtyp));
        assert_eq!(
            first.map(|m| m.0),
            Some(seq),
            "node {n} took {seq} under lease {lease}, but the queue's first match is {first:?}"
        );
        let inc = self.nodes[n].incarnation;
        self.unreported.insert(seq, (n, inc, tag));
        Some(tag)
    }

    /// The referee takes the next frame from node `n`.
    fn referee_step(&mut self, n: usize) {
        let Some(up) = self.nodes[n].up.pop_front() else {
            return;
        };
        let node = n as u32 + 1;
        let oid = self.oid;
        let mut body_keep = Vec::new();
        let taken_bytes: Vec<u8>;
        let (req, frame) = match &up {
            Up::Snd {
                req,
                mtype,
                lease,
                epoch,
                body,
            } => {
                body_keep.clone_from(body);
                (
                    *req,
                    Frame::MsgSnd(MsgSnd {
                        oid,
                        pid: 1,
                        cred: ROOT,
                        mtype: *mtype,
                        flags: 0o4000,
                        lease: *lease,
                        epoch: *epoch,
                        text: &body_keep,
                    }),
                )
            }
            Up::Rcv {
                req,
                msgtyp,
                nowait,
                epoch,
                ..
            } => (
                *req,
                Frame::MsgRcv(MsgRcv {
                    oid,
                    pid: 1,
                    cred: ROOT,
                    msgtyp: *msgtyp,
                    flags: if *nowait { 0o4000 } else { 0 },
                    size: 100,
                    epoch: *epoch,
                }),
            ),
            Up::Return { req, lease, taken } => {
                taken_bytes = taken.iter().flat_map(|s| s.to_le_bytes()).collect();
                (
                    *req,
                    Frame::MsgReturn(MsgReturn {
                        oid,
                        lease: *lease,
                        pid: 1,
                        taken: Seqs::new(&taken_bytes).unwrap(),
                    }),
                )
            }
            Up::Taken { lease, seqs } => {
                taken_bytes = seqs.iter().flat_map(|s| s.to_le_bytes()).collect();
                (
                    0,
                    Frame::MsgTaken(MsgTaken {
                        oid,
                        lease: *lease,
                        pid: 1,
                        seqs: Seqs::new(&taken_bytes).unwrap(),
                    }),
                )
            }
            Up::Stat { req } => (
                *req,
                Frame::MsgCtl(MsgCtl {
                    oid,
                    pid: 1,
                    cred: ROOT,
                    cmd: msgcmd::IPC_STAT,
                    set_uid: 0,
                    set_gid: 0,
                    set_mode: 0,
                    set_qbytes: 0,
                }),
            ),
        };
        // A call seen before (sent again after a resume): its cached answer,
        // or nothing while it still sleeps.
        if let Some(out) = self.st.duplicate(
            node,
            &Message {
                req_id: req,
                clock: 0,
                frame,
            },
        ) {
            for o in out {
                self.nodes[n].down.push_back((o.req_id, o.bytes));
            }
            return;
        }
        // What the queue really holds, before the referee acts.
        let truth = self.true_queue();
        let out = self.st.request(
            node,
            Message {
                req_id: req,
                clock: 0,
                frame,
            },
            NOW,
        );
        // The queue never holds more than its limit allows.
        let st = self
            .st
            .objects
            .msg(self.oid)
            .expect("the queue stays")
            .stat();
        assert!(
            st.cbytes <= QBYTES && st.qnum <= QBYTES,
            "queue over its limit: {} bytes",
            st.cbytes
        );
        match &up {
            Up::Snd { lease, body, .. } if *lease != 0 => {
                let tag = tag_of(body);
                // The first time it arrives (a repeat after a resumed
                // session changes nothing).
                if let Some(i) = self.on_the_way.iter().position(|w| w.0 == tag) {
                    let (_, _, at, ..) = self.on_the_way.remove(i);
                    let since = &self.arrivals[at as usize..];
                    assert!(
                        since.iter().all(|&who| who == n),
                        "message {tag} accepted by node {n} reached the queue behind later ones from {since:?}"
                    );
                    self.arrivals.push(n);
                }
            }
            Up::Snd { req, .. } => {
                // Only a send that was carried out queues a message.
                let queued = out.iter().any(|o| {
                    o.req_id == *req
                        && matches!(
                            decode(&o.bytes).map(|(m, _)| m.frame),
                            Ok(Frame::MsgSndReply(r)) if r.result == 0
                        )
                });
                if queued {
                    self.arrivals.push(n);
                }
            }
            Up::Taken { seqs, .. } => {
                for s in seqs {
                    self.unreported.remove(s);
                }
            }
            Up::Return { taken, .. } => {
                for s in taken {
                    self.unreported.remove(s);
                }
            }
            _ => {}
        }
        for o in out {
            let to = o.to.map(|t| t as usize - 1);
            let (m, _) = decode(&o.bytes).expect("the referee's frames decode");
            self.check_answer(&up, &m.frame, &truth);
            match to {
                Some(t) => self.nodes[t].down.push_back((o.req_id, o.bytes)),
                None => {
                    for x in &mut self.nodes {
                        x.down.push_back((o.req_id, o.bytes.clone()));
                    }
                }
            }
        }
    }

    /// An answer that says the queue has no match or no room must be true
    /// of the queue as it really is.
    fn check_answer(&self, up: &Up, f: &Frame<'_>, truth: &[(u64, i64, u64, usize)]) {
        match (up, f) {
            (Up::Rcv { msgtyp, issued, .. }, Frame::MsgRcvReply(r))
                if r.result == -i64::from(errno::ENOMSG) =>
            {
                // Messages accepted while the call was out may come after
                // it; those accepted before it was made may not.
                let later = self
                    .on_the_way
                    .iter()
                    .any(|w| w.5 <= *issued && Self::matches(w.3, *msgtyp));
                let here = truth.iter().any(|m| Self::matches(m.1, *msgtyp));
                assert!(!later && !here, "ENOMSG with a match queued");
            }
            (Up::Snd { body, lease: 0, .. }, Frame::MsgSndReply(r))
                if r.result == -i64::from(errno::EAGAIN) =>
            {
                let bytes: usize = truth.iter().map(|m| m.3).sum::<usize>()
                    + self.on_the_way.iter().map(|w| w.4).sum::<usize>();
                let msgs = truth.len() + self.on_the_way.len();
                assert!(
                    bytes + body.len() > QBYTES as usize || msgs as u64 >= QBYTES,
                    "EAGAIN with room: {bytes} bytes in {msgs} messages"
                );
            }
            _ => {}
        }
    }

    /// Node `n` takes the next frame from the referee.
    fn node_step(&mut self, n: usize) {
        let Some((req, bytes)) = self.nodes[n].down.pop_front() else {
            return;
        };
        let (m, _) = decode(&bytes).expect("decodes");
        if req != 0 && !matches!(m.frame, Frame::MsgRecall { .. }) {
            // This call is done, and so is every message sent under a lease
            // before it (those are not answered).
            self.nodes[n].calls.retain(|(r, up)| {
                *r != req && !(*r < req && matches!(up, Up::Snd { lease, .. } if *lease != 0))
            });
        }
        match m.frame {
            Frame::MsgRecall { lease, .. } => {
                let node = &mut self.nodes[n];
                if node.recv.as_ref().is_some_and(|l| l.id == lease) {
                    self.give_back_recv(n);
                } else if node.send.is_some_and(|s| s.0 == lease) {
                    node.send = None;
                    let r = self.req();
                    self.nodes[n].send(Up::Return {
                        req: r,
                        lease,
                        taken: vec![],
                    });
                } else {
                    node.floor = node.floor.max(lease);
                    let r = self.req();
                    self.nodes[n].send(Up::Return {
                        req: r,
                        lease,
                        taken: vec![],
                    });
                }
            }
            Frame::MsgRcvReply(r) => {
                if r.lease != 0 {
                    let node = &mut self.nodes[n];
                    if node.repoch == r.epoch && node.recv.is_none() && r.lease > node.floor {
                        node.recv = Some(RecvLease {
                            id: r.lease,
                            msgs: r
                                .batch
                                .iter()
                                .map(|b| (b.seq, b.mtype, b.text.to_vec()))
                                .collect(),
                            taken: vec![],
                            unreported: vec![],
                        });
                    } else {
                        let q = self.req();
                        self.nodes[n].send(Up::Return {
                            req: q,
                            lease: r.lease,
                            taken: vec![],
                        });
                    }
                }
                let Some((op, body)) = self.nodes[n].pending.remove(&req) else {
                    return;
                };
                if r.result == RETRY {
                    self.nodes[n].again.push((op, body));
                } else if r.result >= 0 {
                    let tag = tag_of(r.text);
                    self.nodes[n].limbo.retain(|&t| t != tag);
                    self.receipt(n, tag);
                }
            }
            Frame::MsgSndReply(r) => {
                if r.lease != 0 {
                    let node = &mut self.nodes[n];
                    if node.sepoch == r.epoch && node.send.is_none() && r.lease > node.floor {
                        node.send = Some((r.lease, r.bytes, r.msgs));
                    } else {
                        let q = self.req();
                        self.nodes[n].send(Up::Return {
                            req: q,
                            lease: r.lease,
                            taken: vec![],
                        });
                    }
                }
                self.send_done(n, req, r.result);
            }
            Frame::Status { result } => self.send_done(n, req, result),
            Frame::MsgMore(m) => {
                let node = &mut self.nodes[n];
                if let Some(l) = node.recv.as_mut().filter(|l| l.id == m.lease) {
                    l.msgs
                        .extend(m.batch.iter().map(|b| (b.seq, b.mtype, b.text.to_vec())));
                } else if let Some(l) = node.send.as_mut().filter(|l| l.0 == m.lease) {
                    l.1 += m.bytes;
                    l.2 += m.msgs;
                }
            }
            Frame::MsgCtlReply(r) => {
                if let Some((op, body)) = self.nodes[n].pending.remove(&req) {
                    if r.result == RETRY {
                        self.nodes[n].again.push((op, body));
                    }
                }
            }
            _ => {}
        }
    }

    fn send_done(&mut self, n: usize, req: u64, result: i64) {
        let Some((op, body)) = self.nodes[n].pending.remove(&req) else {
            return;
        };
        if result == RETRY {
            self.nodes[n].again.push((op, body));
        } else if result == 0 {
            let inc = self.nodes[n].incarnation;
            self.accepted.insert(tag_of(&body), (n, inc));
        }
    }

    /// Node `n` crashes; the referee declares it gone; it comes back as a
    /// new incarnation.
    fn crash(&mut self, n: usize) {
        let inc = self.nodes[n].incarnation;
        // What it accepted and never sent is lost with it.
        let mine: Vec<u64> = self
            .on_the_way
            .iter()
            .filter(|w| w.1 == n)
            .map(|w| w.0)
            .collect();
        self.on_the_way.retain(|w| w.1 != n);
        self.lost.extend(mine);
        // What it took and never reported goes back to the queue.
        let back: Vec<u64> = self
            .unreported
            .iter()
            .filter(|(_, v)| v.0 == n && v.1 == inc)
            .map(|(s, _)| *s)
            .collect();
        for s in back {
            let (_, _, tag) = self.unreported.remove(&s).unwrap();
            self.may_repeat.insert(tag);
        }
        // Messages on their way to it die with it.
        self.lost.extend(self.nodes[n].limbo.iter().copied());
        for (_, bytes) in &self.nodes[n].down {
            if let Ok((m, _)) = decode(bytes) {
                if let Frame::MsgRcvReply(r) = m.frame {
                    if r.result >= 0 {
                        self.lost.insert(tag_of(r.text));
                    }
                }
            }
        }
        let node = n as u32 + 1;
        let applied = self.st.apply(&Record::Gone { node, now: NOW });
        for o in applied.out {
            if let Some(t) = o.to {
                if t != node {
                    self.nodes[t as usize - 1]
                        .down
                        .push_back((o.req_id, o.bytes));
                }
            }
        }
        let incarnation = inc + 1;
        self.st.apply(&Record::Hello {
            node,
            incarnation,
            now: NOW,
        });
        self.nodes[n] = NodeM {
            incarnation,
            ..NodeM::default()
        };
    }

    fn body(&mut self, len: usize) -> Vec<u8> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let mut b = tag.to_le_bytes().to_vec();
        b.resize(len.max(8), 0x5a);
        b
    }

    /// Runs until nothing is in flight and no call waits to be made again;
    /// false if that takes too long (no progress).
    fn settle(&mut self) -> bool {
        for _ in 0..20_000 {
            let mut moved = false;
            for n in 0..NODES {
                for (op, body) in core::mem::take(&mut self.nodes[n].again) {
                    self.issue(n, op, body);
                    moved = true;
                }
                if !self.nodes[n].up.is_empty() {
                    self.referee_step(n);
                    moved = true;
                }
                if !self.nodes[n].down.is_empty() {
                    self.node_step(n);
                    moved = true;
                }
            }
            if !moved {
                return true;
            }
        }
        false
    }
}

/// One step of the random schedule.
#[derive(Clone, Debug)]
enum Step {
    Send {
        node: usize,
        mtype: i64,
        len: usize,
    },
    Recv {
        node: usize,
        msgtyp: i64,
        nowait: bool,
    },
    Stat {
        node: usize,
    },
    Referee {
        node: usize,
    },
    Node {
        node: usize,
    },
    Again {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Resume {
        node: usize,
    },
}

fn arb_step() -> impl Strategy<Value = Step> {
    let node = 0..NODES;
    prop_oneof![
        4 => (node.clone(), 1i64..4, 8usize..60).prop_map(|(node, mtype, len)| Step::Send { node, mtype, len }),
        4 => (node.clone(), 0i64..4, any::<bool>()).prop_map(|(node, msgtyp, nowait)| Step::Recv { node, msgtyp, nowait }),
        1 => node.clone().prop_map(|node| Step::Stat { node }),
        8 => node.clone().prop_map(|node| Step::Referee { node }),
        8 => node.clone().prop_map(|node| Step::Node { node }),
        2 => node.clone().prop_map(|node| Step::Again { node }),
        1 => node.clone().prop_map(|node| Step::Crash { node }),
        1 => node.prop_map(|node| Step::Resume { node }),
    ]
}

fn run(steps: &[Step], crashes: bool) -> Sim {
    let mut s = Sim::new();
    for st in steps {
        match *st {
            Step::Send { node, mtype, len } => {
                let body = s.body(len);
                s.issue(node, Op::Snd { mtype }, body);
            }
            Step::Recv {
                node,
                msgtyp,
                nowait,
            } => s.issue(node, Op::Rcv { msgtyp, nowait }, vec![]),
            Step::Stat { node } => s.issue(node, Op::Stat, vec![]),
            Step::Referee { node } => s.referee_step(node),
            Step::Node { node } => s.node_step(node),
            Step::Again { node } => {
                for (op, body) in core::mem::take(&mut s.nodes[node].again) {
                    s.issue(node, op, body);
                }
            }
            Step::Crash { node } if crashes => s.crash(node),
            Step::Crash { .. } => {}
            Step::Resume { node } => s.nodes[node].resume(),
        }
    }
    assert!(s.settle(), "calls still retried with nothing new going on");
    // Drain: node 1 takes everything left, without waiting.
    loop {
        let before: usize = s.received.values().map(Vec::len).sum();
        s.issue(
            0,
            Op::Rcv {
                msgtyp: 0,
                nowait: true,
            },
            vec![],
        );
        assert!(s.settle(), "the drain does not end");
        let after: usize = s.received.values().map(Vec::len).sum();
        if after == before {
            break;
        }
    }
    for (tag, _) in s.accepted.iter() {
        if s.lost.contains(tag) {
            continue;
        }
        assert!(
            s.received.contains_key(tag),
            "message {tag} was accepted and is neither queued nor received"
        );
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn leases_keep_one_queue(steps in proptest::collection::vec(arb_step(), 1..300)) {
        run(&steps, false);
    }

    #[test]
    fn leases_keep_one_queue_when_nodes_crash(steps in proptest::collection::vec(arb_step(), 1..300)) {
        run(&steps, true);
    }
}

/// The schedule the benchmark makes: one node sends, another receives.
/// Both get leases, and every message arrives once, in order.
#[test]
fn one_sender_and_one_receiver_both_get_leases() {
    let mut s = Sim::new();
    let mut got_send = false;
    let mut got_recv = false;
    for i in 0..200 {
        let body = s.body(16);
        s.issue(1, Op::Snd { mtype: 1 }, body);
        if i % 3 == 0 {
            s.issue(
                2,
                Op::Rcv {
                    msgtyp: 0,
                    nowait: false,
                },
                vec![],
            );
        }
        assert!(s.settle());
        got_send |= s.nodes[1].send.is_some();
        got_recv |= s.nodes[2].recv.is_some();
    }
    assert!(
        got_send && got_recv,
        "send lease {got_send}, receive lease {got_recv}"
    );
}
