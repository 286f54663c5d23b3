//! The referee's network side: accepts node connections, one thread each,
//! and drives a [`Session`] per connection.

use crate::auth::{self, Net, Secret};
use crate::referee::dsm::{Data, Out};
use crate::referee::sem::{Proc, Reply, Waiter};
use crate::referee::{Effects, Limits, ObjectStatus, Objects};
use crate::registry::{Closer, NodeStatus, Registry};
use crate::session::{Action, FrameBuf, OwnedReply, Session, State};
use dipc_wire::{
    ErrorCode, Frame, Message, MsgCtlReply, MsgRcvReply, PageData, PageGrant, PageInval,
    SemCtlReply, Sembuf, ShmCtlReply, Vals,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A connection's write half, shared by every thread that answers its node.
type Writer = Arc<Mutex<TcpStream>>;

/// State shared by every connection thread and the control socket.
pub struct Referee {
    /// Connected nodes. One lock: registration is rare and short.
    registry: Mutex<Registry>,
    /// Every distributed object. One lock for all of them: each request is
    /// a short computation on plain state; replies are sent after it is
    /// released, so a slow node never holds it.
    objects: Mutex<Objects>,
    /// Where to send frames for each node: its connection's write half
    /// and that connection's id. Separate from `registry` because it is
    /// used on every reply, while the registry changes only on join/leave.
    writers: Mutex<BTreeMap<u32, (u64, Writer)>>,
    /// Encoded frames not yet written, per node, in the order they were
    /// decided. Frames are queued here while `objects` is held, so two
    /// connection threads that decide frames for the same node one after
    /// the other can never write them the other way round (a grant
    /// overtaking the invalidation decided after it loses a page's
    /// stores). Lock order: `objects`, `writers`, `pending`; a node's
    /// writer lock is taken before `pending` when flushing.
    pending: Mutex<BTreeMap<u32, Vec<u8>>>,
    /// Identifies this run (changes on restart); sent in every hello ack.
    session_id: u64,
    listen: SocketAddr,
    started: Instant,
    next_conn: AtomicU64,
    /// Silence after which a connection is declared dead; also the longest
    /// a write to a node may block.
    keepalive: Duration,
    /// Connection threads running (registered or not).
    open: AtomicUsize,
    /// The cluster secret nodes must prove they hold, if any.
    secret: Option<Secret>,
    /// Networks nodes may connect from (empty: any).
    allow: Vec<Net>,
}

/// What `dipcd status` reports.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Address the referee listens on.
    pub listen: String,
    /// This run's session id.
    pub session: u64,
    /// Seconds since the referee started.
    pub uptime_s: u64,
    /// Silence after which a node is declared dead, in milliseconds.
    pub keepalive_ms: u64,
    /// Open connections, including peers that have not said hello.
    pub connections: usize,
    /// Whether nodes must prove they hold the cluster secret.
    pub authenticated: bool,
    /// Networks nodes may connect from (empty: any).
    pub allow: Vec<String>,
    /// Connected nodes by id.
    pub nodes: Vec<NodeStatus>,
    /// Distributed objects.
    pub objects: Vec<ObjectStatus>,
    /// Requests sleeping at the referee (all objects).
    pub waiters: usize,
}

/// A frame to send to a node, encoded.
struct Outgoing {
    /// `None`: every connected node.
    to: Option<u32>,
    bytes: Vec<u8>,
}

fn encode(to: Option<u32>, req_id: u64, frame: Frame<'_>) -> Outgoing {
    let mut bytes = vec![0u8; frame.encoded_len()];
    // The buffer has exactly the frame's size.
    let n = frame.encode(req_id, &mut bytes).unwrap_or(0);
    bytes.truncate(n);
    Outgoing { to, bytes }
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in another connection thread must not take the referee down;
    // the state it guards is updated by whole-value assignments.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Referee {
    /// A referee that listens on `listen`, with `limits`.
    pub fn new(listen: SocketAddr, limits: Limits) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Referee {
            registry: Mutex::new(Registry::default()),
            objects: Mutex::new(Objects::new(limits)),
            writers: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(BTreeMap::new()),
            // Distinct across restarts of one referee; mixed with the pid so
            // two started in the same nanosecond still differ.
            session_id: nanos ^ u64::from(std::process::id()).rotate_left(48),
            listen,
            started: Instant::now(),
            next_conn: AtomicU64::new(1),
            keepalive: Duration::from_secs(15),
            open: AtomicUsize::new(0),
            secret: None,
            allow: Vec::new(),
        }
    }

    /// Requires nodes to prove they hold `secret` (if given), and to
    /// connect from one of `allow` (if not empty).
    pub fn with_access(mut self, secret: Option<Secret>, allow: Vec<Net>) -> Self {
        self.secret = secret;
        self.allow = allow;
        self
    }

    /// Sets how long a node may stay silent before it is declared dead
    /// (it is pinged after a third of this).
    pub fn with_keepalive(mut self, keepalive: Duration) -> Self {
        self.keepalive = keepalive;
        self
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        lock(&self.objects)
    }

    /// Carries out one IPC request from `node`, queues what it produces,
    /// and returns the nodes with frames queued (see [`Referee::flush`]).
    fn ipc(&self, node: u32, msg: Message<'_>) -> BTreeSet<u32> {
        let now = now_s();
        let req = msg.req_id;
        let mut out = Vec::new();
        let mut objects = self.objects();
        let fx = match msg.frame {
            Frame::Get(g) => {
                let r = objects.get(&g, now);
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
                let (r, fx) = objects.semctl(&c, now);
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
            Frame::MsgSnd(m) => {
                let who = Waiter { node, req };
                let (r, fx) =
                    objects.msgsnd(who, m.pid, m.oid, &m.cred, m.mtype, m.flags, m.text, now);
                if let Some(result) = r {
                    out.push(encode(Some(node), req, Frame::Status { result }));
                }
                fx
            }
            Frame::MsgRcv(m) => {
                let who = Waiter { node, req };
                let (r, mut fx) =
                    objects.msgrcv(who, m.pid, m.oid, &m.cred, m.msgtyp, m.flags, m.size, now);
                // The caller's own answer goes first, then the effects.
                if let Some(r) = r {
                    fx.msgs.insert(0, r);
                }
                fx
            }
            Frame::MsgCtl(c) => {
                let (r, fx) = objects.msgctl(&c, now);
                let reply = MsgCtlReply {
                    result: r.result,
                    stat: r.stat,
                    info: r.info,
                };
                out.push(encode(Some(node), req, Frame::MsgCtlReply(reply)));
                fx
            }
            Frame::Exit { pid } => objects.exit(Proc { node, pid }, now),
            Frame::ShmAt(a) => {
                let result = objects.shmat(&a, now);
                out.push(encode(Some(node), req, Frame::Status { result }));
                Effects::default()
            }
            Frame::ShmNattch(n) => {
                let fx = objects.shm_nattch(node, n.oid, n.pid, n.nattch, n.detach != 0, now);
                // Sent as a request (shmat, shmdt): say whether it destroyed
                // the segment, so the node drops its shadow before returning.
                if req != 0 {
                    let result = i64::from(!fx.removed.is_empty());
                    out.push(encode(Some(node), req, Frame::Status { result }));
                }
                fx
            }
            Frame::ShmCtl(c) => {
                let (r, fx) = objects.shmctl(&c, now);
                let reply = ShmCtlReply {
                    result: r.result,
                    stat: r.stat,
                };
                out.push(encode(Some(node), req, Frame::ShmCtlReply(reply)));
                fx
            }
            Frame::PageReq(p) => objects.page_request(node, p.oid, p.page, p.write != 0),
            Frame::PageAck(a) => {
                let (ok, fx) = objects.page_ack(node, a.oid, a.page, req, a.data);
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
        effects(fx, &mut out);
        // Queued before the lock goes, in the order decided under it.
        self.enqueue(out)
    }

    /// Node `node`'s earlier connection is over: its sleepers go, its
    /// processes' SEM_UNDO adjustments are applied.
    fn node_gone(&self, node: u32) {
        let nodes = {
            let mut objects = self.objects();
            let fx = objects.node_gone(node, now_s());
            let mut out = Vec::new();
            effects(fx, &mut out);
            let nodes = self.enqueue(out);
            drop(objects);
            nodes
        };
        self.flush(&nodes);
    }

    /// Queues each frame for its node(s), in order; returns the nodes that
    /// have frames queued. Called with `objects` held.
    fn enqueue(&self, out: Vec<Outgoing>) -> BTreeSet<u32> {
        let mut nodes = BTreeSet::new();
        if out.is_empty() {
            return nodes;
        }
        let writers = lock(&self.writers);
        let mut pending = lock(&self.pending);
        for o in &out {
            let targets: Vec<u32> = match o.to {
                Some(n) if writers.contains_key(&n) => vec![n],
                Some(_) => Vec::new(),
                None => writers.keys().copied().collect(),
            };
            for n in targets {
                pending.entry(n).or_default().extend_from_slice(&o.bytes);
                nodes.insert(n);
            }
        }
        nodes
    }

    /// Writes what is queued for each of `nodes`, one write per node: a
    /// batch of requests read together is answered with one system call
    /// per node instead of one per frame. The queue is emptied with the
    /// node's writer held, so frames leave in the order they were queued
    /// whichever thread writes them. A node whose connection fails is
    /// closed by its own thread; the others still get theirs.
    fn flush(&self, nodes: &BTreeSet<u32>) {
        for &node in nodes {
            let stream = lock(&self.writers).get(&node).map(|(_, s)| s.clone());
            let Some(stream) = stream else {
                lock(&self.pending).remove(&node);
                continue;
            };
            let mut s = lock(&stream);
            let bytes = lock(&self.pending).remove(&node).unwrap_or_default();
            if bytes.is_empty() {
                continue;
            }
            if let Err(e) = s.write_all(&bytes) {
                // A write that failed or timed out (the node stopped
                // reading for a whole keepalive) may have sent part of a
                // frame: the stream is unusable. Closing it ends the node's
                // connection thread, which declares the node gone.
                tracing::warn!(node, error = %e, "send failed; closing the connection");
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// A snapshot for `dipcd status`.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let (objects, waiters) = {
            let o = self.objects();
            (o.status(), o.waiters())
        };
        Status {
            listen: self.listen.to_string(),
            session: self.session_id,
            uptime_s: now.duration_since(self.started).as_secs(),
            keepalive_ms: self.keepalive.as_millis() as u64,
            connections: self.open.load(Ordering::Relaxed),
            authenticated: self.secret.is_some(),
            allow: self.allow.iter().map(ToString::to_string).collect(),
            nodes: self.registry().status(now),
            objects,
            waiters,
        }
    }

    /// Closes every node connection.
    pub fn close_all(&self) {
        self.registry().close_all();
    }
}

struct SocketCloser(TcpStream);

impl Closer for SocketCloser {
    fn close(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

/// Accepts connections forever, one thread each.
pub fn serve(referee: Arc<Referee>, listener: TcpListener) -> io::Result<()> {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let referee = referee.clone();
        std::thread::Builder::new()
            .name("dipcd-conn".into())
            .spawn(move || {
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                match handle(&referee, stream, peer) {
                    Ok(()) => tracing::info!(%peer, "connection closed"),
                    Err(e) => tracing::warn!(%peer, error = %e, "connection dropped"),
                }
            })?;
    }
    Ok(())
}

fn send(stream: &mut TcpStream, reply: &OwnedReply) -> io::Result<()> {
    let mut buf = vec![0u8; reply.frame.encoded_len()];
    reply
        .frame
        .encode(reply.req_id, &mut buf)
        .map_err(|_| io::Error::other("encode buffer too small"))?;
    stream.write_all(&buf)
}

/// Counts a connection thread while it runs.
struct Open<'a>(&'a AtomicUsize);

impl<'a> Open<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Open(n)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tells the peer why it is being closed. Best effort: the connection is
/// closed next whether or not this arrives.
fn send_error(stream: &mut TcpStream, code: ErrorCode) {
    let _ = send(
        stream,
        &OwnedReply {
            req_id: 0,
            frame: Frame::Error { code },
        },
    );
}

fn handle(referee: &Referee, mut stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    let _open = Open::new(&referee.open);
    if !auth::allowed(&referee.allow, peer.ip()) {
        tracing::warn!(%peer, "refusing a peer outside the allow list");
        send_error(&mut stream, ErrorCode::Refused);
        let _ = stream.shutdown(Shutdown::Both);
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "outside the allow list",
        ));
    }
    tracing::info!(%peer, "connection accepted");
    stream.set_nodelay(true)?;
    // Keepalive: the read wakes every third of the keepalive; a node silent
    // for one third is pinged (a live node answers, and also pings on its
    // own after 5 s of silence), one silent for the whole keepalive is dead.
    // The write timeout (shared by every clone of the socket) bounds how
    // long a node that stopped reading can hold up the threads writing to
    // it.
    let keepalive = referee.keepalive;
    let tick = (keepalive / 3).max(Duration::from_millis(100));
    stream.set_read_timeout(Some(tick))?;
    stream.set_write_timeout(Some(keepalive))?;
    let conn_id = referee.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(referee.session_id);
    if let Some(secret) = &referee.secret {
        session = session.with_auth(secret.clone(), auth::nonce()?);
    }
    let mut frames = FrameBuf::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut writer = None;
    let mut heard = Instant::now();
    let mut pinged = false;
    let result = loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let silent = heard.elapsed();
                if silent >= keepalive {
                    let node = match session.state() {
                        State::Ready { node_id } => Some(node_id),
                        _ => None,
                    };
                    tracing::warn!(
                        %peer,
                        node,
                        silent_ms = silent.as_millis() as u64,
                        "no frame within the keepalive; declaring the peer dead"
                    );
                    break Err(io::Error::new(io::ErrorKind::TimedOut, "keepalive expired"));
                }
                if !pinged && silent >= tick {
                    pinged = true;
                    let ping = Action::Reply(OwnedReply {
                        req_id: 0,
                        frame: Frame::Ping {
                            nonce: silent.as_millis() as u64,
                        },
                    });
                    // Before hello there is nobody to ping: an idle
                    // unregistered peer just times out.
                    if writer.is_some() {
                        if let Err(e) = act(referee, &mut stream, peer, conn_id, &mut writer, ping)
                        {
                            break Err(e);
                        }
                    }
                }
                continue;
            }
            Err(e) => break Err(e),
        };
        heard = Instant::now();
        pinged = false;
        frames.extend(&buf[..n]);
        // What the requests of this read produce is sent when they have all
        // been carried out (or before anything else is written), in order.
        let mut pending = BTreeSet::new();
        let outcome = loop {
            let step = frames.next_with(|m| match session.on_message(m) {
                Action::Ipc { node_id } => Err(referee.ipc(node_id, m)),
                a => Ok(a),
            });
            match step {
                Ok(Some(Err(nodes))) => pending.extend(nodes),
                Ok(Some(Ok(action))) => {
                    referee.flush(&std::mem::take(&mut pending));
                    if let Err(e) = act(referee, &mut stream, peer, conn_id, &mut writer, action) {
                        break Some(e);
                    }
                }
                Ok(None) => break None,
                Err(e) => {
                    referee.flush(&std::mem::take(&mut pending));
                    tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                    send_error(&mut stream, ErrorCode::Protocol);
                    break Some(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
            }
        };
        referee.flush(&pending);
        if let Some(e) = outcome {
            break Err(e);
        }
    };
    if let State::Ready { node_id } = session.state() {
        if referee.registry().unregister(node_id, conn_id) {
            tracing::info!(node_id, %peer, "node left");
            {
                let mut w = lock(&referee.writers);
                if w.get(&node_id).is_some_and(|(c, _)| *c == conn_id) {
                    w.remove(&node_id);
                }
            }
            referee.node_gone(node_id);
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    result
}

fn act(
    referee: &Referee,
    stream: &mut TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    writer: &mut Option<Writer>,
    action: Action,
) -> io::Result<()> {
    match action {
        Action::Register(hello, replies) => {
            let closer = Box::new(SocketCloser(stream.try_clone()?));
            tracing::info!(node_id = hello.node_id, name = %hello.name, %peer, "node joined");
            let writer_new = Arc::new(Mutex::new(stream.try_clone()?));
            let node_id = hello.node_id;
            referee.registry().register(
                hello.node_id,
                hello.name,
                peer,
                conn_id,
                closer,
                Instant::now(),
            );
            // A node says hello on every new connection: whatever it had
            // waiting at the referee belonged to the old one, whose
            // requests the node has failed.
            referee.node_gone(node_id);
            // The ack goes out before any other frame on this connection.
            let mut w = lock(&writer_new);
            {
                // Frames queued for the node's earlier connection are not
                // this one's.
                let mut writers = lock(&referee.writers);
                lock(&referee.pending).remove(&node_id);
                writers.insert(node_id, (conn_id, writer_new.clone()));
            }
            let r = replies.iter().try_for_each(|reply| send(&mut w, reply));
            drop(w);
            *writer = Some(writer_new);
            r
        }
        // Once registered, every write goes through the shared writer, so
        // frames from other threads never interleave with ours.
        Action::Reply(reply) => match writer {
            Some(w) => send(&mut lock(w), &reply),
            None => send(stream, &reply),
        },
        Action::None | Action::Ipc { .. } => Ok(()),
        Action::Refuse(code, why) => {
            tracing::warn!(%peer, %why, "refusing peer");
            send_error(stream, code);
            Err(io::Error::new(io::ErrorKind::InvalidData, why))
        }
    }
}

fn effects(fx: Effects, out: &mut Vec<Outgoing>) {
    for Reply { to, result } in fx.replies {
        out.push(encode(Some(to.node), to.req, Frame::Status { result }));
    }
    for m in fx.msgs {
        let reply = MsgRcvReply {
            result: m.result,
            mtype: m.mtype,
            // At most msgmax <= MAX_MTEXT bytes.
            text: &m.text,
        };
        out.push(encode(Some(m.to.node), m.to.req, Frame::MsgRcvReply(reply)));
    }
    for d in fx.dsm {
        let frame_out = match d.out {
            Out::Grant {
                node,
                page,
                write,
                data,
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
                    data,
                };
                encode(Some(node), 0, Frame::PageGrant(g))
            }
            Out::Inval {
                node,
                page,
                keep_read,
                want_data,
                txn,
            } => {
                let i = PageInval {
                    oid: d.oid,
                    page,
                    keep_read: u8::from(keep_read),
                    want_data: u8::from(want_data),
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
            data: PageData::Keep,
        };
        out.push(encode(Some(r.node), 0, Frame::PageGrant(g)));
    }
    for (class, oid) in fx.removed {
        out.push(encode(None, 0, Frame::Removed { class, oid }));
    }
}
