//! Everything the referee must not lose, and the one function that changes
//! it: [`State::apply`]. The server applies each [`Record`] as it happens
//! and appends it to the log ([`crate::store`]); recovery applies the
//! logged records again to the last snapshot. Replaying records yields the
//! same state because nothing here reads a clock (the time is in the
//! record), draws a random number, or depends on hash order.

use crate::referee::dsm::{Data, Out};
use crate::referee::msg::SendGrant;
use crate::referee::sem::{Proc, Waiter};
use crate::referee::{Effects, Limits, Objects};
use dipc_wire::{
    decode, Batch, Frame, IpcPerm, Message, MsgCtlReply, MsgMore, MsgRcvReply, MsgSndReply,
    PageData, PageGrant, PageInval, SemCtlReply, Sembuf, ShmCtlReply, Vals, TOKEN_LEN,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A frame to send, encoded.
#[derive(Debug)]
pub struct Outgoing {
    /// `None`: every connected node.
    pub to: Option<u32>,
    /// The frame's request id.
    pub req_id: u64,
    /// The answer to a call (`req_id` is the call's): kept in the
    /// node's [`ReplyCache`] until the node is known to have it.
    pub reply: bool,
    /// The encoded frame.
    pub bytes: Vec<u8>,
}

/// Encodes `frame` for `to`.
pub fn encode(to: Option<u32>, req_id: u64, frame: Frame<'_>) -> Outgoing {
    let mut bytes = vec![0u8; frame.encoded_len()];
    // The buffer has exactly the frame's size.
    let n = frame.encode(req_id, &mut bytes).unwrap_or(0);
    bytes.truncate(n);
    let reply = req_id != 0 && is_reply(&frame);
    Outgoing {
        to,
        req_id,
        reply,
        bytes,
    }
}

/// Frames that answer a node's call (an invalidation carries a
/// transaction id, not a call's).
fn is_reply(frame: &Frame<'_>) -> bool {
    matches!(
        frame,
        Frame::Status { .. }
            | Frame::GetReply(_)
            | Frame::SemCtlReply(_)
            | Frame::MsgRcvReply(_)
            | Frame::MsgSndReply(_)
            | Frame::MsgCtlReply(_)
            | Frame::ShmCtlReply(_)
    )
}

/// Frames a node sends as calls (with a request id), answered by one
/// reply with that id. Only calls are deduplicated: the node's other
/// requests are idempotent (an absolute, numbered `ShmNattch` count,
/// `Cancel`, a page request, which the directory may grant twice) or carry
/// their own check (a page ack's transaction id). An `Exit` is a call
/// when it has a request id (the node keeps it in flight and sends it
/// again on a resumed session, so a repeat must not undo a later process
/// of the same pid); with none (an older node), it is one-way.
pub fn is_call_frame(frame: &Frame<'_>) -> bool {
    matches!(
        frame,
        Frame::Get(_)
            | Frame::Lookup(_)
            | Frame::SemOp(_)
            | Frame::SemCtl(_)
            | Frame::MsgSnd(_)
            | Frame::MsgRcv(_)
            | Frame::MsgCtl(_)
            | Frame::MsgReturn(_)
            | Frame::ShmAt(_)
            | Frame::ShmNattch(_)
            | Frame::ShmCtl(_)
            | Frame::Leave
            | Frame::Exit { .. }
    )
}

/// The answers a node may not have received yet, by request id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplyCache {
    /// Request id -> (serial, encoded reply).
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    /// Serial of the next entry.
    next: u64,
}

impl ReplyCache {
    fn insert(&mut self, req_id: u64, bytes: Vec<u8>) {
        self.next += 1;
        self.entries.insert(req_id, (self.next, bytes));
    }

    /// The serial of the newest entry: [`ReplyCache::prune`] with it drops
    /// everything cached so far.
    pub fn mark(&self) -> u64 {
        self.next
    }

    /// Drops the entries up to serial `mark` (the node has them).
    pub fn prune(&mut self, mark: u64) {
        self.entries.retain(|_, (serial, _)| *serial > mark);
    }

    /// Cached answers.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// The cached answer to `req_id`.
    pub fn get(&self, req_id: u64) -> Option<&[u8]> {
        self.entries.get(&req_id).map(|(_, b)| b.as_slice())
    }
}

/// One state change, as logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The referee started with these limits.
    Limits(LimitsRecord),
    /// The referee started with this DSM tuning (after its limits).
    Tuning {
        /// Most pages read ahead of one miss.
        readahead: u64,
        /// Whether message queues may be leased (absent in older logs:
        /// they may).
        #[serde(default = "yes")]
        msg_leases: bool,
    },
    /// Node `node` said hello with `incarnation` at `now`.
    Hello {
        /// The node.
        node: u32,
        /// Its incarnation.
        incarnation: u64,
        /// Wall-clock seconds.
        now: i64,
    },
    /// Node `node` sent this request (the encoded frame) at `now`.
    Request {
        /// The node.
        node: u32,
        /// Wall-clock seconds, for the objects' times.
        now: i64,
        /// The frame as received.
        frame: Vec<u8>,
    },
    /// Node `node` was declared dead at `now`.
    Gone {
        /// The node.
        node: u32,
        /// Wall-clock seconds.
        now: i64,
    },
    /// Node `node`'s session of `incarnation` is over (declared dead at
    /// `now`); nothing if the node has another session by the time it is
    /// applied. A replicated referee logs this instead of `Gone`: between
    /// the decision and its commit the node may have come back as a new
    /// incarnation, whose session must not end.
    SessionGone {
        /// The node.
        node: u32,
        /// The session's incarnation.
        incarnation: u64,
        /// Wall-clock seconds.
        now: i64,
    },
    /// Node `node` has received the cached answers up to `mark` (a
    /// replicated referee's followers drop them too; a single referee
    /// drops them without a record).
    Pruned {
        /// The node.
        node: u32,
        /// The cache's serial.
        mark: u64,
    },
    /// From here on, DSM transactions are numbered as this version does:
    /// a grant of a page's bytes made at once has an id of its own (logged
    /// by every referee when it starts, after its settings; records before
    /// the first one were written by an older dipcd and are replayed the
    /// older way: [`Objects::legacy_ids`]).
    GrantIds,
}

/// [`Limits`] as logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsRecord(pub [u64; 10]);

impl From<Limits> for LimitsRecord {
    fn from(l: Limits) -> Self {
        LimitsRecord([
            l.semmsl as u64,
            l.semmns as u64,
            l.semopm as u64,
            l.semmni as u64,
            l.msgmax as u64,
            l.msgmnb as u64,
            l.msgmni as u64,
            l.shmmax,
            l.shmall,
            l.shmmni as u64,
        ])
    }
}

impl From<LimitsRecord> for Limits {
    fn from(r: LimitsRecord) -> Self {
        let u = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let [semmsl, semmns, semopm, semmni, msgmax, msgmnb, msgmni, shmmax, shmall, shmmni] = r.0;
        Limits {
            semmsl: u(semmsl),
            semmns: u(semmns),
            semopm: u(semopm),
            semmni: u(semmni),
            msgmax: u(msgmax),
            msgmnb: u(msgmnb),
            msgmni: u(msgmni),
            shmmax,
            shmall,
            shmmni: u(shmmni),
        }
    }
}

/// Where a node takes pages from other nodes (see
/// [`dipc_wire::Hello::peer_port`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// IPv4 address, host order.
    pub ip: u32,
    /// Port.
    pub port: u16,
    /// The token its current connection was given.
    pub token: [u8; TOKEN_LEN],
}

/// What applying a record produced.
#[derive(Debug, Default)]
pub struct Applied {
    /// Frames to send.
    pub out: Vec<Outgoing>,
    /// For a hello: the node's session continues.
    pub resumed: bool,
}

/// Everything the referee persists.
#[derive(Default, Serialize, Deserialize)]
pub struct State {
    /// Every distributed object.
    pub objects: Objects,
    /// The nodes whose sessions the referee holds: id -> incarnation.
    pub nodes: BTreeMap<u32, u64>,
    /// Per node, answers it may not have received.
    pub replies: BTreeMap<u32, ReplyCache>,
    /// Sequence number of the last record applied.
    pub seq: u64,
    /// Nodes leaving the cluster, with the request id of their `Leave`:
    /// answered once the node holds no page, and its session ends then.
    #[serde(default)]
    pub leaving: BTreeMap<u32, u64>,
    /// Per node, the highest request id of a call it made this session: a
    /// call above it is new, so [`State::duplicate`] need not search the
    /// objects' sleepers for it (a search as long as the object table).
    #[serde(default)]
    pub newest_call: BTreeMap<u32, u64>,
    /// Per connected node, where other nodes send it pages. Not persisted
    /// and not part of any decision: it only fills in the requester's
    /// address of an invalidation that asks for a direct transfer (none
    /// known: the page comes through the referee).
    #[serde(skip)]
    pub peers: BTreeMap<u32, Peer>,
    /// Per node, the time stamp its last request got (see
    /// [`State::stamp`]). Not persisted: each request's time is logged.
    #[serde(skip)]
    pub stamps: BTreeMap<u32, i64>,
}

impl State {
    /// The time, in seconds, that a request from `node` sent at `clock`
    /// (the node's wall clock, 0 if it gave none) stamps on the objects it
    /// changes: the node's own clock, so a program that compares its
    /// `time()` with `*_ctime`, `sem_otime`, `msg_stime` & co. sees the two
    /// agree as on one machine; never earlier than the node's previous
    /// request's; the referee's clock `now` when the node gave none.
    pub fn stamp(&mut self, node: u32, clock: u32, now: i64) -> i64 {
        if clock == 0 {
            return now;
        }
        let last = self.stamps.entry(node).or_insert(0);
        *last = (*last).max(i64::from(clock));
        *last
    }

    /// An empty state with `limits`.
    pub fn new(limits: Limits) -> Self {
        State {
            objects: Objects::new(limits),
            ..Default::default()
        }
    }

    /// Applies one record. A request that cannot be decoded (only possible
    /// for a log written by another version) changes nothing.
    pub fn apply(&mut self, rec: &Record) -> Applied {
        self.seq += 1;
        match rec {
            Record::Limits(l) => {
                self.objects.set_limits((*l).into());
                Applied::default()
            }
            Record::Tuning {
                readahead,
                msg_leases,
            } => {
                self.objects.set_readahead(*readahead);
                self.objects.set_msg_leases(*msg_leases);
                Applied::default()
            }
            Record::GrantIds => {
                self.objects.set_legacy_ids(false);
                Applied::default()
            }
            Record::Hello {
                node,
                incarnation,
                now,
            } => self.hello(*node, *incarnation, *now),
            Record::Request { node, now, frame } => match decode(frame) {
                // A call seen before: a replicated log may hold two copies
                // of one call (the second sent again to a new leader before
                // the first was known to be committed), and only the first
                // is carried out. A single referee never logs a repeat, so
                // this finds none when its log is replayed.
                Ok((msg, _)) => Applied {
                    out: match self.duplicate(*node, &msg) {
                        Some(out) => out,
                        None => self.request(*node, msg, *now),
                    },
                    resumed: false,
                },
                Err(e) => {
                    tracing::warn!(node, error = %e, "undecodable request in the log; skipped");
                    Applied::default()
                }
            },
            Record::Gone { node, now } => Applied {
                out: self.gone(*node, *now),
                resumed: false,
            },
            Record::SessionGone {
                node,
                incarnation,
                now,
            } => Applied {
                out: if self.nodes.get(node) == Some(incarnation) {
                    self.gone(*node, *now)
                } else {
                    Vec::new()
                },
                resumed: false,
            },
            Record::Pruned { node, mark } => {
                if let Some(c) = self.replies.get_mut(node) {
                    c.prune(*mark);
                }
                Applied::default()
            }
        }
    }

    /// A hello: the same incarnation resumes the session; another one ends
    /// the old session (its undo applied, its sleepers and pages dropped)
    /// and starts a new one.
    fn hello(&mut self, node: u32, incarnation: u64, now: i64) -> Applied {
        if self.nodes.get(&node) == Some(&incarnation) {
            return Applied {
                out: self.pending_invals(node),
                resumed: true,
            };
        }
        let out = self.gone(node, now);
        self.nodes.insert(node, incarnation);
        Applied {
            out,
            resumed: false,
        }
    }

    /// Node `node`'s session is over.
    fn gone(&mut self, node: u32, now: i64) -> Vec<Outgoing> {
        self.nodes.remove(&node);
        self.peers.remove(&node);
        self.leaving.remove(&node);
        self.replies.remove(&node);
        self.newest_call.remove(&node);
        let fx = self.objects.node_gone(node, now);
        let mut out = Vec::new();
        effects(fx, &self.peers, &mut out);
        self.cache(&out);
        out
    }

    /// Keeps the answers among `out` in their nodes' caches.
    fn cache(&mut self, out: &[Outgoing]) {
        for o in out {
            let (Some(node), true) = (o.to, o.reply) else {
                continue;
            };
            if !self.nodes.contains_key(&node) {
                continue;
            }
            self.replies
                .entry(node)
                .or_default()
                .insert(o.req_id, o.bytes.clone());
        }
    }

    /// A call `msg` from `node` that was seen before: `Some` with what to
    /// send (its cached answer, or nothing while it still sleeps here),
    /// `None` for a new call.
    pub fn duplicate(&self, node: u32, msg: &Message<'_>) -> Option<Vec<Outgoing>> {
        if msg.req_id == 0 || !is_call_frame(&msg.frame) {
            return None;
        }
        if self.newest_call.get(&node).is_none_or(|&n| msg.req_id > n) {
            // Never seen: neither answered nor sleeping here.
            return None;
        }
        if let Some(bytes) = self.replies.get(&node).and_then(|c| c.get(msg.req_id)) {
            return Some(vec![Outgoing {
                to: Some(node),
                req_id: msg.req_id,
                reply: false,
                bytes: bytes.to_vec(),
            }]);
        }
        let who = Waiter {
            node,
            req: msg.req_id,
        };
        self.objects.is_waiting(who).then(Vec::new)
    }

    /// Invalidations node `node` has not answered (sent again when it
    /// resumes: the first ones, or its acks, may have been lost).
    fn pending_invals(&self, node: u32) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for (oid, p) in self.objects.pending_invals(node) {
            let i = PageInval {
                oid,
                page: p.page,
                keep_read: u8::from(p.keep_read),
                want_data: u8::from(p.want_data),
                after: p.after,
                to_node: 0,
                to_ip: 0,
                to_port: 0,
                to_token: [0; TOKEN_LEN],
            };
            out.push(encode(Some(node), p.txn, Frame::PageInval(i)));
        }
        out
    }

    /// Carries out one request from `node` at `now`.
    pub fn request(&mut self, node: u32, msg: Message<'_>, now: i64) -> Vec<Outgoing> {
        let req = msg.req_id;
        if req != 0 && is_call_frame(&msg.frame) {
            let n = self.newest_call.entry(node).or_insert(0);
            *n = (*n).max(req);
        }
        let mut out = Vec::new();
        let objects = &mut self.objects;
        let fx = match msg.frame {
            Frame::Get(g) => {
                let r = objects.get(&g, now);
                out.push(encode(Some(node), req, Frame::GetReply(r)));
                Effects::default()
            }
            Frame::Lookup(l) => {
                let r = objects.lookup(l.class, l.id);
                out.push(encode(Some(node), req, Frame::GetReply(r)));
                Effects::default()
            }
            Frame::SemOp(op) => {
                let sops: Vec<Sembuf> = op.sops.iter().collect();
                let who = Waiter { node, req };
                let p = Proc { node, pid: op.pid };
                let (r, fx) = objects.semop(who, p, op.oid, &op.cred, &sops, now);
                if let Some(result) = r {
                    out.push(encode(Some(node), req, Frame::Status { result }));
                }
                fx
            }
            Frame::SemCtl(c) => {
                let (r, mut fx) = objects.semctl(&c, now);
                perms_first(&mut fx, &mut out);
                let vals: Vec<u8> = r.vals.iter().flat_map(|v| v.to_le_bytes()).collect();
                let reply = SemCtlReply {
                    result: r.result,
                    stat: r.stat,
                    // At most nsems <= MAX_SEMS values.
                    vals: Vals::new(&vals).unwrap_or(Vals::EMPTY),
                };
                out.push(encode(Some(node), req, Frame::SemCtlReply(reply)));
                fx
            }
            Frame::Cancel { target } => {
                let who = Waiter { node, req: target };
                Effects {
                    replies: objects.cancel(who).into_iter().collect(),
                    ..Effects::default()
                }
            }
            Frame::MsgSnd(m) if m.lease != 0 => {
                // Not answered: the node knows it was queued when any later
                // call of its own is answered.
                let (queued, fx) =
                    objects.msgsnd_leased(node, m.lease, req, m.pid, m.oid, m.mtype, m.text, now);
                if !queued {
                    tracing::debug!(node, req, lease = m.lease, "leased message seen before");
                }
                fx
            }
            Frame::MsgSnd(m) => {
                let who = Waiter { node, req };
                let (r, fx) =
                    objects.msgsnd(who, m.pid, m.oid, &m.cred, m.mtype, m.flags, m.text, now);
                if let Some((result, grant)) = r {
                    let g = grant.unwrap_or(SendGrant {
                        id: 0,
                        bytes: 0,
                        msgs: 0,
                    });
                    let reply = MsgSndReply {
                        result,
                        epoch: m.epoch,
                        oid: m.oid,
                        lease: g.id,
                        bytes: g.bytes,
                        msgs: g.msgs as u32,
                        perm: ipc_perm(objects, m.oid),
                    };
                    out.push(encode(Some(node), req, Frame::MsgSndReply(reply)));
                }
                fx
            }
            Frame::MsgRcv(m) => {
                let who = Waiter { node, req };
                let (r, mut fx) =
                    objects.msgrcv(who, m.pid, m.oid, &m.cred, m.msgtyp, m.flags, m.size, now);
                // The caller's own answer goes first, then the effects.
                if let Some(mut r) = r {
                    if let Some(g) = r.lease.as_mut() {
                        g.epoch = m.epoch;
                        g.oid = m.oid;
                        g.perm = ipc_perm(objects, m.oid);
                    }
                    fx.msgs.insert(0, r);
                }
                fx
            }
            Frame::MsgReturn(r) => {
                let taken: Vec<u64> = r.taken.iter().collect();
                let fx = objects.msg_give_back(node, r.oid, r.lease, &taken, r.pid, now);
                out.push(encode(Some(node), req, Frame::Status { result: 0 }));
                fx
            }
            Frame::MsgTaken(t) => {
                let seqs: Vec<u64> = t.seqs.iter().collect();
                objects.msg_taken(node, t.oid, t.lease, &seqs, t.pid, now)
            }
            Frame::MsgCtl(c) => {
                let (r, mut fx) = objects.msgctl(node, &c, now);
                perms_first(&mut fx, &mut out);
                let reply = MsgCtlReply {
                    result: r.result,
                    stat: r.stat,
                    info: r.info,
                };
                out.push(encode(Some(node), req, Frame::MsgCtlReply(reply)));
                fx
            }
            Frame::Exit { pid } => {
                let fx = objects.exit(Proc { node, pid }, now);
                if req != 0 {
                    out.push(encode(Some(node), req, Frame::Status { result: 0 }));
                }
                fx
            }
            Frame::ShmAt(a) => {
                let result = objects.shmat(node, &a, now);
                out.push(encode(Some(node), req, Frame::Status { result }));
                Effects::default()
            }
            Frame::ShmNattch(n) => {
                let fx = objects.shm_nattch(node, &n, now);
                // Sent as a request (shmat, shmdt): say whether it destroyed
                // the segment, so the node drops its shadow before returning.
                if req != 0 {
                    let result = i64::from(!fx.removed.is_empty());
                    out.push(encode(Some(node), req, Frame::Status { result }));
                }
                fx
            }
            Frame::ShmCtl(c) => {
                let (r, mut fx) = objects.shmctl(&c, now);
                perms_first(&mut fx, &mut out);
                let reply = ShmCtlReply {
                    result: r.result,
                    stat: r.stat,
                };
                out.push(encode(Some(node), req, Frame::ShmCtlReply(reply)));
                fx
            }
            Frame::PageReq(p) => objects.page_request_mode(
                node,
                p.oid,
                p.page,
                p.write != 0,
                p.whole != 0,
                p.applied,
            ),
            Frame::Leave => {
                self.leaving.insert(node, req);
                objects.shm_recall(node)
            }
            Frame::PageAck(a) => {
                let (ok, fx) = objects.page_ack(node, a.oid, a.page, req, a.data, a.sent != 0);
                if !ok {
                    tracing::debug!(
                        node,
                        oid = a.oid,
                        page = a.page,
                        txn = req,
                        "stale page ack"
                    );
                }
                fx
            }
            _ => Effects::default(),
        };
        effects(fx, &self.peers, &mut out);
        self.cache(&out);
        self.left(node, now, &mut out);
        out
    }

    /// If `node` is leaving and holds no page any more: answers its
    /// `Leave` and ends its session.
    fn left(&mut self, node: u32, now: i64, out: &mut Vec<Outgoing>) {
        let Some(&req) = self.leaving.get(&node) else {
            return;
        };
        if self.objects.shm_holds(node) {
            return;
        }
        out.push(encode(Some(node), req, Frame::Status { result: 0 }));
        out.extend(self.gone(node, now));
    }
}

/// The new owners and modes an `IPC_SET` gave, to every node before the
/// caller's answer: the caller's node has updated its shadow when the call
/// returns.
fn perms_first(fx: &mut Effects, out: &mut Vec<Outgoing>) {
    for (class, oid, perm) in fx.perms.drain(..) {
        out.push(encode(None, 0, Frame::Perm { class, oid, perm }));
    }
}

/// Encodes what a request changed beyond its own answer; `peers` gives
/// the requester's address of a direct transfer.
fn effects(fx: Effects, peers: &BTreeMap<u32, Peer>, out: &mut Vec<Outgoing>) {
    use crate::referee::sem::Reply;
    for Reply { to, result } in fx.replies {
        out.push(encode(Some(to.node), to.req, Frame::Status { result }));
    }
    for m in fx.msgs {
        let (batch, epoch, oid, lease, perm) = match &m.lease {
            Some(g) => (batch_bytes(&g.msgs), g.epoch, g.oid, g.id, g.perm),
            None => (Vec::new(), 0, 0, 0, IpcPerm::default()),
        };
        let reply = MsgRcvReply {
            result: m.result,
            mtype: m.mtype,
            // At most msgmax <= MAX_MTEXT bytes, and the lease what is left.
            text: &m.text,
            epoch,
            oid,
            lease,
            perm,
            batch: Batch::new(&batch).unwrap_or(Batch::EMPTY),
        };
        out.push(encode(Some(m.to.node), m.to.req, Frame::MsgRcvReply(reply)));
    }
    for (node, oid, lease) in fx.recalls {
        out.push(encode(Some(node), 0, Frame::MsgRecall { oid, lease }));
    }
    for m in fx.more {
        let batch = batch_bytes(&m.batch);
        let more = MsgMore {
            oid: m.oid,
            lease: m.lease,
            bytes: m.bytes,
            msgs: m.msgs.min(u64::from(u32::MAX)) as u32,
            // At most FRAME_BATCH bytes of entries.
            batch: Batch::new(&batch).unwrap_or(Batch::EMPTY),
        };
        out.push(encode(Some(m.node), 0, Frame::MsgMore(more)));
    }
    for d in fx.dsm {
        let frame_out = match d.out {
            Out::Grant {
                node,
                page,
                write,
                data,
                txn,
                after,
            } => {
                let data = match &data {
                    Data::Keep => PageData::Keep,
                    Data::Zero => PageData::Zero,
                    Data::Bytes(b) => PageData::Bytes(b),
                };
                let g = PageGrant {
                    oid: d.oid,
                    page,
                    write: u8::from(write),
                    result: 0,
                    after,
                    data,
                };
                encode(Some(node), txn, Frame::PageGrant(g))
            }
            Out::Inval {
                node,
                page,
                keep_read,
                want_data,
                txn,
                after,
                direct,
            } => {
                let to = direct.and_then(|n| Some((n, peers.get(&n)?)));
                let i = PageInval {
                    oid: d.oid,
                    page,
                    keep_read: u8::from(keep_read),
                    want_data: u8::from(want_data),
                    after,
                    to_node: to.map_or(0, |(n, _)| n),
                    to_ip: to.map_or(0, |(_, p)| p.ip),
                    to_port: to.map_or(0, |(_, p)| p.port),
                    to_token: to.map_or([0; TOKEN_LEN], |(_, p)| p.token),
                };
                encode(Some(node), txn, Frame::PageInval(i))
            }
        };
        out.push(frame_out);
    }
    for r in fx.page_refusals {
        let g = PageGrant {
            oid: r.oid,
            page: r.page,
            write: u8::from(r.write),
            result: r.result,
            after: 0,
            data: PageData::Keep,
        };
        out.push(encode(Some(r.node), 0, Frame::PageGrant(g)));
    }
    for (class, oid) in fx.removed {
        out.push(encode(None, 0, Frame::Removed { class, oid }));
    }
    for (class, oid, perm) in fx.perms {
        out.push(encode(None, 0, Frame::Perm { class, oid, perm }));
    }
}

/// Leased messages as a [`Batch`] carries them.
fn batch_bytes(msgs: &[crate::referee::msg::Msg]) -> Vec<u8> {
    let mut b = Vec::new();
    for m in msgs {
        b.extend_from_slice(&m.seq.to_le_bytes());
        b.extend_from_slice(&m.mtype.to_le_bytes());
        b.extend_from_slice(&(m.text.len() as u32).to_le_bytes());
        b.extend_from_slice(&m.text);
    }
    b
}

fn yes() -> bool {
    true
}

/// Queue `oid`'s permissions, as a lease carries them.
fn ipc_perm(objects: &crate::referee::Objects, oid: u64) -> IpcPerm {
    objects
        .msg(oid)
        .map_or(IpcPerm::default(), |q| q.perm.ipc_perm())
}

#[cfg(test)]
mod stamp_tests {
    use super::*;

    #[test]
    fn a_request_is_stamped_with_its_nodes_clock_never_going_back() {
        let mut st = State::default();
        // The node's clock, not the referee's (an hour ahead here).
        assert_eq!(st.stamp(2, 1_000, 4_600), 1_000);
        assert_eq!(st.stamp(3, 990, 4_600), 990, "each node its own");
        // Node 2's clock steps back: its stamps hold until it catches up.
        assert_eq!(st.stamp(2, 400, 4_600), 1_000);
        assert_eq!(st.stamp(2, 1_001, 4_601), 1_001);
        // A frame without a clock: the referee's.
        assert_eq!(st.stamp(2, 0, 4_602), 4_602);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::referee::Limits;

    /// A session ends only if it is still the one the record names.
    #[test]
    fn session_gone_ends_only_its_own_session() {
        let mut st = State::new(Limits::default());
        let hello = |incarnation| Record::Hello {
            node: 3,
            incarnation,
            now: 1,
        };
        st.apply(&hello(7));
        // The node came back as incarnation 9 before the end of 7 applied.
        st.apply(&hello(9));
        st.apply(&Record::SessionGone {
            node: 3,
            incarnation: 7,
            now: 2,
        });
        assert_eq!(st.nodes.get(&3), Some(&9));
        st.apply(&Record::SessionGone {
            node: 3,
            incarnation: 9,
            now: 3,
        });
        assert!(!st.nodes.contains_key(&3));
    }
}
