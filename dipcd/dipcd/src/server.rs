//! The referee's network side: accepts node connections, one thread each,
//! and drives a [`Session`] per connection.

use crate::auth::{self, Net, Secret};
use crate::metrics::Metrics;
use crate::referee::{Limits, ObjectStatus};
use crate::registry::{Closer, NodeStatus, Registry};
use crate::replicated::{HelloCtx, Replication};
use crate::session::{Action, FrameBuf, OwnedReply, Session, State};
use crate::state::{self, LimitsRecord, Outgoing, Peer, Record};
use crate::store::{Fsync, Recovered, Store};
use dipc_wire::{ErrorCode, Frame, Message, ACK_RESUMED, TOKEN_LEN};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A connection's write half, shared by every thread that answers its node.
pub type Writer = Arc<Mutex<TcpStream>>;

/// State shared by every connection thread and the control socket.
pub struct Referee {
    /// Connected nodes. One lock: registration is rare and short.
    registry: Mutex<Registry>,
    /// Every distributed object and the nodes' sessions. One lock for all
    /// of them: each request is a short computation on plain state;
    /// replies are sent after it is released, so a slow node never holds
    /// it.
    state: Mutex<state::State>,
    /// The log, if the referee persists its state. Lock order: `state`,
    /// then `store`.
    store: Option<Mutex<Store>>,
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
    /// The state directory, if persisting.
    dir: Option<std::path::PathBuf>,
    /// Counters and latency histograms (`dipcctl metrics`).
    pub metrics: Metrics,
    /// One of several referees: the log is replicated, and only the leader
    /// serves nodes (`crate::replicated`).
    replication: Option<Arc<Replication>>,
    /// This referee's own limits and tuning, which it records when it
    /// starts to lead (the replicated state carries the leader's).
    settings: Vec<Record>,
    /// Since when this referee serves nodes (a node that has not come back
    /// a keepalive after it has its session ended).
    serving_since: Mutex<Instant>,
}

/// Set in the nonce of a ping that asks which cached answers the node has
/// received: the rest of the nonce is the cache's mark when it was sent.
/// (The keepalive's pings carry milliseconds, far below this bit.)
const SYNC_PING: u64 = 1 << 63;
/// Cached answers for one node beyond which a sync ping is sent.
const SYNC_AFTER: usize = 32;

/// Where the referee keeps its state (`dipcd status`).
#[derive(Debug, Serialize)]
pub struct PersistStatus {
    /// The directory.
    pub dir: String,
    /// The fsync policy.
    pub fsync: String,
    /// Records in the log since the last snapshot.
    pub log_records: u64,
    /// Bytes in the log.
    pub log_bytes: u64,
    /// Records applied since the state was created.
    pub seq: u64,
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
    /// Nodes whose sessions the referee holds while they are disconnected.
    pub away: Vec<u32>,
    /// Answers kept until their nodes are known to have them.
    pub replies_cached: usize,
    /// Persistence, if configured.
    pub persist: Option<PersistStatus>,
    /// Connected nodes by id.
    pub nodes: Vec<NodeStatus>,
    /// Distributed objects.
    pub objects: Vec<ObjectStatus>,
    /// Requests sleeping at the referee (all objects).
    pub waiters: usize,
    /// Where this referee stands among several, if replicated.
    pub replication: Option<crate::replicated::Info>,
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Brings the log to the disk if it is not there yet. One `fdatasync`
/// covers every record logged before it began (group commit); the lock is
/// not held during it, so requests go on being logged. A referee that
/// cannot sync stops rather than answer.
fn sync_log(store: &Mutex<Store>, metrics: &Metrics) {
    let Some((file, upto)) = lock(store).unsynced() else {
        return;
    };
    let t = Instant::now();
    let r = file.sync_data();
    metrics.fsync(t.elapsed());
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot sync the log; stopping");
        std::process::exit(74);
    }
    lock(store).synced(upto);
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
            state: Mutex::new(state::State::new(limits)),
            store: None,
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
            dir: None,
            metrics: Metrics::default(),
            replication: None,
            settings: Vec::new(),
            serving_since: Mutex::new(Instant::now()),
        }
    }

    /// Makes this referee one of several ([`crate::replicated`]): its state
    /// comes from the replicated log, and it serves nodes only while it
    /// leads. After the limits and tuning are set; instead of
    /// [`Referee::with_store`].
    pub fn with_replication(mut self, rep: Arc<Replication>) -> Self {
        self.settings = self.settings_now();
        self.replication = Some(rep);
        self
    }

    /// The records that set this referee's limits and tuning.
    fn settings_now(&self) -> Vec<Record> {
        let st = lock(&self.state);
        vec![
            Record::Limits(LimitsRecord::from(st.objects.limits())),
            Record::Tuning {
                readahead: st.objects.readahead(),
                msg_leases: st.objects.msg_leases(),
            },
            Record::GrantIds,
        ]
    }

    /// The replication, if this referee is one of several.
    pub fn replication(&self) -> Option<&Arc<Replication>> {
        self.replication.as_ref()
    }

    /// What a replicated referee records when it starts to lead.
    pub fn settings_records(&self) -> Vec<Record> {
        self.settings.clone()
    }

    /// A replicated referee starts to serve nodes: the keepalive of the
    /// nodes it knows from the log counts from now.
    pub fn start_serving(&self) {
        *lock(&self.serving_since) = Instant::now();
    }

    /// Registers `writer`, connection `conn_id`, as node `node`'s: frames
    /// queued for an earlier connection are dropped. Call with `state`
    /// held.
    pub fn register_writer(&self, node: u32, conn_id: u64, writer: Writer) {
        let mut writers = lock(&self.writers);
        lock(&self.pending).remove(&node);
        writers.insert(node, (conn_id, writer));
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

    /// Reads up to `pages` DSM pages ahead of a node's sequential misses
    /// (0: none). Before [`Referee::with_store`].
    pub fn with_readahead(self, pages: u64) -> Self {
        lock(&self.state).objects.set_readahead(pages);
        self
    }

    /// Allows or forbids message leases. Before [`Referee::with_store`].
    pub fn with_msg_leases(self, on: bool) -> Self {
        lock(&self.state).objects.set_msg_leases(on);
        self
    }

    /// Keeps the state in `dir`: recovers it from there (the limits and
    /// tuning given before apply from now on) and logs every change.
    pub fn with_store(
        mut self,
        dir: &std::path::Path,
        fsync: Fsync,
        snapshot_every: u64,
    ) -> io::Result<(Self, Recovered)> {
        let (limits, readahead, msg_leases) = {
            let st = lock(&self.state);
            (
                st.objects.limits(),
                st.objects.readahead(),
                st.objects.msg_leases(),
            )
        };
        let (mut store, mut st, rec) =
            Store::open(dir, fsync, snapshot_every, state::State::new(limits))?;
        for r in [
            Record::Limits(LimitsRecord::from(limits)),
            Record::Tuning {
                readahead,
                msg_leases,
            },
            Record::GrantIds,
        ] {
            store.append(st.seq + 1, &r)?;
            st.apply(&r);
        }
        self.state = Mutex::new(st);
        self.store = Some(Mutex::new(store));
        self.dir = Some(dir.to_path_buf());
        Ok((self, rec))
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, state::State> {
        lock(&self.state)
    }

    /// Logs `rec` (if persisting) and applies it. Call with `state` held.
    /// A referee that cannot log must not answer: it stops, and recovers
    /// from what reached the log when it is started again.
    fn record(&self, st: &mut state::State, rec: &Record) -> state::Applied {
        if let Some(rep) = &self.replication {
            // Applied, on every referee, once committed.
            rep.propose(rec);
            return state::Applied::default();
        }
        if let Some(store) = &self.store {
            let mut store = lock(store);
            if let Err(e) = store.append(st.seq + 1, rec) {
                tracing::error!(error = %e, "cannot append to the log; stopping");
                std::process::exit(74);
            }
            let applied = st.apply(rec);
            if store.wants_snapshot() {
                let t = Instant::now();
                match store.snapshot(st) {
                    Ok(()) => tracing::info!(
                        seq = st.seq,
                        ms = t.elapsed().as_millis() as u64,
                        "snapshot written; log emptied"
                    ),
                    Err(e) => tracing::error!(error = %e, "snapshot failed; the log keeps growing"),
                }
            }
            applied
        } else {
            st.apply(rec)
        }
    }

    /// With `--fsync always`: brings the log to the disk before anything
    /// decided so far is sent (see [`sync_log`]).
    fn durable(&self) {
        if let Some(store) = &self.store {
            if lock(store).fsync() == Fsync::Always {
                sync_log(store, &self.metrics);
            }
        }
    }

    /// With `--fsync Nms`: syncs the log every interval, forever.
    pub fn sync_every(&self, every: Duration) {
        let Some(store) = &self.store else {
            return;
        };
        loop {
            std::thread::sleep(every);
            sync_log(store, &self.metrics);
        }
    }

    /// Ends the sessions of nodes away for a whole keepalive, forever
    /// (every third of the keepalive).
    pub fn reap_forever(&self) {
        loop {
            std::thread::sleep((self.keepalive / 3).max(Duration::from_millis(100)));
            self.reap(Instant::now());
        }
    }

    /// Ends the sessions of nodes that have been away (or, after a
    /// restart, not back) for a whole keepalive.
    fn reap(&self, now: Instant) {
        let since = match &self.replication {
            // Only the leader ends sessions, counting from when it began.
            Some(rep) if !rep.serving() => return,
            Some(_) => *lock(&self.serving_since),
            None => self.started,
        };
        let nodes = {
            let mut st = self.state();
            let expired: Vec<u32> = {
                let reg = self.registry();
                st.nodes
                    .keys()
                    .copied()
                    .filter(|&n| {
                        !reg.connected(n)
                            && now.duration_since(reg.away_since(n).unwrap_or(since).max(since))
                                >= self.keepalive
                    })
                    .collect()
            };
            let mut nodes = BTreeSet::new();
            for node in expired {
                tracing::warn!(
                    node,
                    "node did not come back within the keepalive; ending its session"
                );
                self.registry().forget(node);
                self.metrics.node_gone(node);
                let rec = self.gone_record(&st, node);
                let applied = self.record(&mut st, &rec);
                nodes.extend(self.enqueue(applied.out));
            }
            nodes
        };
        self.flush(&nodes);
    }

    /// Carries out one IPC request from `node`, queues what it produces,
    /// and returns the nodes with frames queued (see [`Referee::flush`]).
    /// A call seen before (sent again after a reconnection) is answered
    /// from the cache, or not at all while it still sleeps here.
    /// With the nodes, whether this request ended the node's session: a
    /// leave ends it once the node's pages are home, with its answer or
    /// with its last ack.
    fn ipc(&self, node: u32, msg: Message<'_>, raw: &[u8]) -> (BTreeSet<u32>, bool) {
        let started = Instant::now();
        let kind = msg.frame.kind();
        let leaving = matches!(msg.frame, Frame::Leave | Frame::PageAck(_));
        let mut st = self.state();
        let nodes = self.ipc_locked(&mut st, node, msg, raw);
        let left = leaving && !st.nodes.contains_key(&node);
        drop(st);
        self.metrics.request(kind, started.elapsed());
        (nodes, left)
    }

    /// [`Referee::ipc`] with the state locked.
    fn ipc_locked(
        &self,
        st: &mut state::State,
        node: u32,
        msg: Message<'_>,
        raw: &[u8],
    ) -> BTreeSet<u32> {
        let now = st.stamp(node, msg.clock, now_s());
        if let Some(rep) = &self.replication {
            // Repeats are found when applying (see `State::apply`).
            let frame = raw.to_vec();
            rep.propose(&Record::Request { node, now, frame });
            return BTreeSet::new();
        }
        if let Some(out) = st.duplicate(node, &msg) {
            tracing::debug!(
                node,
                req = msg.req_id,
                answered = !out.is_empty(),
                "call sent again"
            );
            return self.enqueue(out);
        }
        let out = if self.store.is_some() {
            let frame = raw.to_vec();
            self.record(st, &Record::Request { node, now, frame }).out
        } else {
            st.seq += 1;
            st.request(node, msg, now)
        };
        // Queued before the lock goes, in the order decided under it.
        self.enqueue(out)
    }

    /// Node `node` is dead (silent for a whole keepalive): its session
    /// ends, its sleepers go, its processes' SEM_UNDO adjustments are
    /// applied, its pages fall back to their home copies.
    fn node_gone(&self, node: u32) {
        let nodes = {
            let mut st = self.state();
            self.registry().forget(node);
            self.metrics.node_gone(node);
            let rec = self.gone_record(&st, node);
            let applied = self.record(&mut st, &rec);
            self.enqueue(applied.out)
        };
        self.flush(&nodes);
    }

    /// The record that ends `node`'s session now: on a replicated referee,
    /// of the session it has in `st` only (see [`Record::SessionGone`]).
    fn gone_record(&self, st: &state::State, node: u32) -> Record {
        match (&self.replication, st.nodes.get(&node)) {
            (Some(_), Some(&incarnation)) => Record::SessionGone {
                node,
                incarnation,
                now: now_s(),
            },
            _ => Record::Gone { node, now: now_s() },
        }
    }

    /// The node answered ping `nonce`: a sync ping's mark says which
    /// cached answers it has received.
    fn pong(&self, node: u32, nonce: u64) {
        if let (Some(rep), true) = (&self.replication, nonce & SYNC_PING != 0) {
            // Every referee's copy of the cache is pruned alike.
            rep.propose(&Record::Pruned {
                node,
                mark: nonce & !SYNC_PING,
            });
            return;
        }
        if nonce & SYNC_PING != 0 {
            if let Some(c) = self.state().replies.get_mut(&node) {
                c.prune(nonce & !SYNC_PING);
            }
        }
    }

    /// Queues each frame for its node(s), in order; returns the nodes that
    /// have frames queued. Called with `objects` held.
    pub(crate) fn enqueue(&self, out: Vec<Outgoing>) -> BTreeSet<u32> {
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
            self.metrics.frame_out(o.to, &o.bytes, targets.len());
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
    pub(crate) fn flush(&self, nodes: &BTreeSet<u32>) {
        if nodes.is_empty() {
            return;
        }
        self.durable();
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
        let (objects, waiters, sessions, replies_cached, seq) = {
            let st = self.state();
            (
                st.objects.status(),
                st.objects.waiters(),
                st.nodes.keys().copied().collect::<Vec<_>>(),
                st.replies.values().map(|c| c.count()).sum(),
                st.seq,
            )
        };
        let registry = self.registry();
        let away = sessions
            .into_iter()
            .filter(|&n| !registry.connected(n))
            .collect();
        let nodes = registry.status(now);
        drop(registry);
        let persist = self.store.as_ref().map(|s| {
            let s = lock(s);
            let (log_bytes, log_records) = s.size();
            PersistStatus {
                dir: self
                    .dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
                fsync: s.fsync().to_string(),
                log_records,
                log_bytes,
                seq,
            }
        });
        Status {
            listen: self.listen.to_string(),
            session: self.session_id,
            uptime_s: now.duration_since(self.started).as_secs(),
            keepalive_ms: self.keepalive.as_millis() as u64,
            connections: self.open.load(Ordering::Relaxed),
            authenticated: self.secret.is_some(),
            allow: self.allow.iter().map(ToString::to_string).collect(),
            away,
            replies_cached,
            persist,
            nodes,
            objects,
            waiters,
            replication: self.replication.as_ref().map(|r| r.info()),
        }
    }

    /// Node `node`'s write half (tests).
    #[cfg(test)]
    pub(crate) fn writer_of(&self, node: u32) -> Option<Writer> {
        lock(&self.writers).get(&node).map(|(_, w)| w.clone())
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

fn send(stream: &mut TcpStream, reply: &OwnedReply, metrics: &Metrics) -> io::Result<()> {
    let mut buf = vec![0u8; reply.frame.encoded_len()];
    reply
        .frame
        .encode(reply.req_id, &mut buf)
        .map_err(|_| io::Error::other("encode buffer too small"))?;
    metrics.frame_out(None, &buf, 1);
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
fn send_error(stream: &mut TcpStream, code: ErrorCode, metrics: &Metrics) {
    let _ = send(
        stream,
        &OwnedReply {
            req_id: 0,
            frame: Frame::Error { code },
        },
        metrics,
    );
}

fn handle(referee: &Referee, mut stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    let _open = Open::new(&referee.open);
    if !auth::allowed(&referee.allow, peer.ip()) {
        tracing::warn!(%peer, "refusing a peer outside the allow list");
        referee.metrics.refused();
        send_error(&mut stream, ErrorCode::Refused, &referee.metrics);
        let _ = stream.shutdown(Shutdown::Both);
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "outside the allow list",
        ));
    }
    tracing::info!(%peer, "connection accepted");
    referee.metrics.connection();
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
    let nonce = auth::nonce()?;
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&nonce[..TOKEN_LEN]);
    let mut session = Session::new(referee.session_id).with_token(token);
    if let Some(secret) = &referee.secret {
        session = session.with_auth(secret.clone(), auth::nonce()?);
    }
    let mut frames = FrameBuf::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut writer = None;
    let mut heard = Instant::now();
    let mut pinged = false;
    // The cache mark of the last sync ping sent on this connection.
    let mut synced_mark = 0u64;
    let result = loop {
        // After each batch of requests, and on each idle tick.
        if let Err(e) = sync_ping(referee, &session, &writer, &mut synced_mark) {
            break Err(e);
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break Ok(false),
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
        let mut left = false;
        let outcome = loop {
            let step = frames.next_with(|m, raw| {
                let node = match session.state() {
                    State::Ready { node_id } => Some(node_id),
                    _ => None,
                };
                referee
                    .metrics
                    .frame_in(node, &m.frame, m.req_id, raw.len());
                match session.on_message(m) {
                    Action::Ipc { node_id } => {
                        let (nodes, ended) = referee.ipc(node_id, m, raw);
                        left |= ended;
                        Err(nodes)
                    }
                    Action::Pong(nonce) => {
                        if let State::Ready { node_id } = session.state() {
                            referee.pong(node_id, nonce);
                        }
                        Ok(Action::None)
                    }
                    a => Ok(a),
                }
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
                    referee.metrics.bad_frame();
                    tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                    send_error(&mut stream, ErrorCode::Protocol, &referee.metrics);
                    break Some(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
            }
        };
        referee.flush(&pending);
        if let Some(e) = outcome {
            break Err(e);
        }
        if left {
            break Ok(true);
        }
    };
    if let State::Ready { node_id } = session.state() {
        if referee.registry().unregister(node_id, conn_id) {
            {
                let mut w = lock(&referee.writers);
                if w.get(&node_id).is_some_and(|(c, _)| *c == conn_id) {
                    w.remove(&node_id);
                }
            }
            let expired = matches!(&result, Err(e) if e.kind() == io::ErrorKind::TimedOut);
            if matches!(result, Ok(true)) {
                tracing::info!(node_id, %peer, "node left the cluster; its pages are home, its session ended");
                referee.registry().forget(node_id);
            } else if expired {
                tracing::info!(node_id, %peer, "node left (dead)");
                referee.node_gone(node_id);
            } else {
                // A reconnection within the keepalive resumes the session.
                tracing::info!(node_id, %peer, "node left; holding its session for one keepalive");
                referee.registry().went_away(node_id, Instant::now());
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    result.map(|_| ())
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
        Action::Register(hello, replies) if referee.replication.is_some() => {
            register_replicated(referee, stream, peer, conn_id, writer, hello, replies)
        }
        Action::Register(hello, replies) => {
            let writer_new = register(referee, stream, peer, conn_id, &hello)?;
            let node_id = hello.node_id;
            // The ack goes out before any other frame on this connection:
            // nobody else can write to it before it is in `writers`, and
            // whoever flushes after that waits for this lock.
            let mut w = lock(&writer_new);
            let (resumed, nodes) = {
                let mut st = referee.state();
                let rec = Record::Hello {
                    node: node_id,
                    incarnation: hello.incarnation,
                    now: now_s(),
                };
                let applied = referee.record(&mut st, &rec);
                // Where other nodes send it pages: known from now on.
                match hello_peer(peer, &hello, &replies) {
                    Some(p) => st.peers.insert(node_id, p),
                    None => st.peers.remove(&node_id),
                };
                // Frames queued for the node's earlier connection are not
                // this one's; what the hello produced (wake-ups elsewhere,
                // or this node's unanswered invalidations) is.
                referee.register_writer(node_id, conn_id, writer_new.clone());
                (applied.resumed, referee.enqueue(applied.out))
            };
            let r = ack_joined(referee, &hello, peer, resumed, replies, &mut w);
            drop(w);
            *writer = Some(writer_new);
            referee.flush(&nodes);
            r
        }
        // Once registered, every write goes through the shared writer, so
        // frames from other threads never interleave with ours.
        Action::Reply(reply) => match writer {
            Some(w) => send(&mut lock(w), &reply, &referee.metrics),
            None => send(stream, &reply, &referee.metrics),
        },
        Action::None | Action::Pong(_) | Action::Ipc { .. } => Ok(()),
        Action::Refuse(code, why) => {
            tracing::warn!(%peer, %why, "refusing peer");
            send_error(stream, code, &referee.metrics);
            Err(io::Error::new(io::ErrorKind::InvalidData, why))
        }
    }
}

/// [`act`]'s registration of a node on a replicated referee: refused
/// unless this referee leads; the hello is applied through the log, and
/// the connection registered when it is.
fn register_replicated(
    referee: &Referee,
    stream: &mut TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    writer: &mut Option<Writer>,
    hello: crate::session::NodeHello,
    replies: Vec<OwnedReply>,
) -> io::Result<()> {
    let Some(rep) = &referee.replication else {
        return Err(io::Error::other("not replicated"));
    };
    if !rep.serving() {
        let leader = rep.info().leader;
        tracing::info!(node_id = hello.node_id, %peer, leader, "not leading; sending the node on");
        send_error(stream, ErrorCode::NotLeader, &referee.metrics);
        return Err(io::Error::other("not the leader"));
    }
    let writer_new = register(referee, stream, peer, conn_id, &hello)?;
    let node_id = hello.node_id;
    // The ack goes out before any other frame on this connection: the
    // thread that writes what applying queued waits for this lock.
    let mut w = lock(&writer_new);
    let ctx = HelloCtx {
        conn_id,
        writer: writer_new.clone(),
        peer: hello_peer(peer, &hello, &replies),
    };
    let rec = Record::Hello {
        node: node_id,
        incarnation: hello.incarnation,
        now: now_s(),
    };
    let resumed = rep.hello(node_id, ctx, &rec, referee.keepalive)?;
    let r = ack_joined(referee, &hello, peer, resumed, replies, &mut w);
    drop(w);
    *writer = Some(writer_new);
    r
}

/// Registers a node's new connection (replacing any older one with its
/// id) and returns its shared write half, not yet in `writers`.
fn register(
    referee: &Referee,
    stream: &TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    hello: &crate::session::NodeHello,
) -> io::Result<Writer> {
    let closer = Box::new(SocketCloser(stream.try_clone()?));
    referee.registry().register(
        hello.node_id,
        hello.name.clone(),
        peer,
        conn_id,
        closer,
        Instant::now(),
    );
    Ok(Arc::new(Mutex::new(stream.try_clone()?)))
}

/// Where other nodes send `hello`'s node pages: its address and
/// `peer_port`, with the token of its hello ack (none: no port).
fn hello_peer(
    peer: SocketAddr,
    hello: &crate::session::NodeHello,
    replies: &[OwnedReply],
) -> Option<Peer> {
    let token = replies.iter().find_map(|r| match r.frame {
        Frame::HelloAck(a) => Some(a.token),
        _ => None,
    });
    match (peer_ipv4(peer), hello.peer_port, token) {
        (Some(ip), port, Some(token)) if port != 0 => Some(Peer { ip, port, token }),
        _ => None,
    }
}

/// Logs a node's join and sends its hello's replies on `w` (the hello
/// ack says whether its session resumed).
fn ack_joined(
    referee: &Referee,
    hello: &crate::session::NodeHello,
    peer: SocketAddr,
    resumed: bool,
    mut replies: Vec<OwnedReply>,
    w: &mut TcpStream,
) -> io::Result<()> {
    referee.metrics.joined(resumed);
    tracing::info!(
        node_id = hello.node_id,
        name = %hello.name,
        %peer,
        incarnation = format_args!("{:#x}", hello.incarnation),
        resumed,
        "node joined"
    );
    if resumed {
        for r in &mut replies {
            if let Frame::HelloAck(a) = &mut r.frame {
                a.features |= ACK_RESUMED;
            }
        }
    }
    replies
        .iter()
        .try_for_each(|reply| send(w, reply, &referee.metrics))
}

/// `peer`'s IPv4 address (host order), also when it came as an
/// IPv4-mapped IPv6 address.
fn peer_ipv4(peer: SocketAddr) -> Option<u32> {
    match peer.ip() {
        IpAddr::V4(a) => Some(u32::from(a)),
        IpAddr::V6(a) => a.to_ipv4_mapped().map(u32::from),
    }
}

/// Asks the node which cached answers it has received, when enough are
/// cached (see [`SYNC_PING`]). The ping is queued behind every frame
/// already queued for the node, under the state lock, so every answer its
/// mark covers leaves before it: a node that answers it has them all (a
/// ping written at once could overtake an answer still queued, and the
/// answer be dropped from the cache before the node had it; sent again
/// after a reconnection, its call would then be carried out twice).
fn sync_ping(
    referee: &Referee,
    session: &Session,
    writer: &Option<Writer>,
    synced_mark: &mut u64,
) -> io::Result<()> {
    let State::Ready { node_id } = session.state() else {
        return Ok(());
    };
    if writer.is_none() {
        return Ok(());
    }
    let nodes = {
        let st = referee.state();
        let (n, mark) = st
            .replies
            .get(&node_id)
            .map(|c| (c.count(), c.mark()))
            .unwrap_or((0, 0));
        if n <= SYNC_AFTER || mark < *synced_mark + SYNC_AFTER as u64 {
            return Ok(());
        }
        *synced_mark = mark;
        let ping = state::encode(
            Some(node_id),
            0,
            Frame::Ping {
                nonce: SYNC_PING | mark,
            },
        );
        referee.enqueue(vec![ping])
    };
    referee.flush(&nodes);
    Ok(())
}
