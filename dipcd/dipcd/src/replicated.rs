//! `dipcd` as one of three or five referees (`--replica-id`,
//! `--replicas`): every [`Record`] goes into a log the referees agree on
//! with raft-rs ([`dipc_replica`]), and is applied, on every referee, once a
//! majority holds it. Only the leader serves nodes; what applying produces
//! leaves it then. See `Documentation/replication.md`.
//!
//! Threads: one owns the replica (ticks, proposals, raft messages,
//! applying); one writes what applying queued for the nodes (a slow node
//! must not hold up raft); one per referee sends raft messages to it; one
//! accepts the other referees' connections, and one reads each.

use crate::auth::{Net, Secret};
use crate::server::{Referee, Writer};
use crate::state::{Peer, Record};
use crate::store;
use dipc_replica::{Change, Config, Machine, Members, Message, Replica};
use dipc_wire::{AuthRole, AUTH_LEN};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Raft's clock.
const TICK: Duration = Duration::from_millis(100);
/// Largest raft message read from another referee (a snapshot holds the
/// whole state). It is read as it arrives, never allocated ahead.
const MAX_MESSAGE: usize = 1 << 30;
/// Version 2: the acceptor proves the secret too.
const MAGIC: &[u8; 8] = b"DIPCRAF2";
/// Incoming referee connections that may be in their handshake at once;
/// more are closed at once (each waits up to 5 s for a hello).
const MAX_HANDSHAKES: usize = 8;
/// A connection to another referee silent this long is closed (the leader
/// sends heartbeats every 200 ms; a follower's link to another follower
/// may idle, and is opened again when needed).
const PEER_IDLE: Duration = Duration::from_secs(60);

/// How to start.
pub struct Options {
    /// This referee's id.
    pub id: u64,
    /// The first referees (id -> address the others reach it at), the
    /// same list on each; a referee added later gets it from the leader.
    pub replicas: Members,
    /// Where the raft log and snapshots live.
    pub dir: PathBuf,
    /// Entries reach the disk before they are acknowledged.
    pub sync: bool,
    /// Applied entries between snapshots.
    pub snapshot_every: u64,
    /// Joining running referees: no configuration of its own (a new
    /// directory starts with no voters instead of `replicas`).
    pub join: bool,
    /// The cluster secret, which referees prove to each other too.
    pub secret: Option<Secret>,
    /// Networks the other referees may connect from (empty: any), as for
    /// nodes.
    pub allow: Vec<Net>,
}

/// What a node's new connection registers, once its hello is applied.
pub struct HelloCtx {
    /// The connection.
    pub conn_id: u64,
    /// Its write half.
    pub writer: Writer,
    /// Where other nodes send it pages.
    pub peer: Option<Peer>,
}

type Done = mpsc::Sender<Result<bool, String>>;

enum Event {
    Propose(Vec<u8>, Option<Done>),
    Peer(Message),
    Unreachable(u64),
    SnapshotSent(u64, bool),
    Change(Change, Done),
    Transfer(u64),
    /// The replica thread ends, as if the process had died (tests).
    #[cfg(test)]
    Stop,
}

/// Where this referee stands (`dipcd status`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Info {
    /// This referee's id.
    pub id: u64,
    /// The leader it knows of (0: none).
    pub leader: u64,
    /// The current term.
    pub term: u64,
    /// The commit index.
    pub commit: u64,
    /// The last index applied.
    pub applied: u64,
    /// The referees (id -> address).
    pub members: Members,
    /// Whether it serves nodes (leads, and has applied its whole log).
    pub serving: bool,
}

/// The handle the rest of `dipcd` uses.
pub struct Replication {
    tx: Mutex<mpsc::Sender<Event>>,
    serving: AtomicBool,
    info: Mutex<Info>,
    hellos: Mutex<BTreeMap<u32, HelloCtx>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Replication {
    /// Whether this referee serves nodes now.
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Where it stands.
    pub fn info(&self) -> Info {
        lock(&self.info).clone()
    }

    fn send(&self, e: Event) {
        let _ = lock(&self.tx).send(e);
    }

    /// Proposes `rec`; its effects go out once it is applied.
    pub fn propose(&self, rec: &Record) {
        match bincode::serialize(rec) {
            Ok(b) => self.send(Event::Propose(b, None)),
            Err(e) => tracing::error!(error = %e, "cannot encode a record"),
        }
    }

    /// Proposes a node's hello and waits (up to `wait`) until it is
    /// applied; `Ok(resumed)`. The connection `ctx` is registered for the
    /// node when it is, under the state lock, before anything applied
    /// after it is queued.
    pub fn hello(
        &self,
        node: u32,
        ctx: HelloCtx,
        rec: &Record,
        wait: Duration,
    ) -> io::Result<bool> {
        lock(&self.hellos).insert(node, ctx);
        let (tx, rx) = mpsc::channel();
        let bytes = bincode::serialize(rec).map_err(io::Error::other)?;
        self.send(Event::Propose(bytes, Some(tx)));
        let r = rx
            .recv_timeout(wait)
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "hello not committed in time"))
            .and_then(|r| r.map_err(io::Error::other));
        lock(&self.hellos).remove(&node);
        r
    }

    /// Proposes a membership change and waits until it is applied.
    pub fn change(&self, change: Change, wait: Duration) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.send(Event::Change(change, tx));
        rx.recv_timeout(wait)
            .map_err(|_| "not applied in time".to_string())?
            .map(|_| ())
    }

    /// Stops the replica thread; the referee serves nothing from then on
    /// (a crash, for tests).
    #[cfg(test)]
    pub fn stop(&self) {
        self.send(Event::Stop);
    }

    /// Asks the leader to hand leadership to `id`.
    pub fn transfer(&self, id: u64) {
        self.send(Event::Transfer(id));
    }
}

/// The referee's state as raft-rs's state machine.
struct Referees {
    referee: Arc<Referee>,
    rep: Arc<Replication>,
}

impl Machine for Referees {
    /// Whether a hello resumed its session, and the nodes with frames
    /// queued.
    type Output = (bool, BTreeSet<u32>);

    fn apply(&mut self, index: u64, command: &[u8]) -> Self::Output {
        let rec: Record = match bincode::deserialize(command) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(index, error = %e, "undecodable record in the raft log; skipped");
                return (false, BTreeSet::new());
            }
        };
        let mut st = self.referee.state();
        let applied = st.apply(&rec);
        if !self.rep.serving() {
            // Followers apply and send nothing.
            return (applied.resumed, BTreeSet::new());
        }
        if let Record::Hello { node, .. } = rec {
            if let Some(ctx) = lock(&self.rep.hellos).remove(&node) {
                match ctx.peer {
                    Some(p) => st.peers.insert(node, p),
                    None => st.peers.remove(&node),
                };
                self.referee.register_writer(node, ctx.conn_id, ctx.writer);
            }
        }
        let nodes = self.referee.enqueue(applied.out);
        (applied.resumed, nodes)
    }

    fn snapshot(&self) -> Vec<u8> {
        store::encode_state(&self.referee.state()).unwrap_or_default()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let s = store::decode_state(bytes).map_err(|e| e.to_string())?;
        *self.referee.state() = s;
        Ok(())
    }
}

/// Opens the replica and starts its threads; `referee` must have been made
/// with `rep` ([`Referee::with_replication`]).
pub fn start(
    referee: Arc<Referee>,
    rep: Arc<Replication>,
    rx: Receiver,
    opts: Options,
) -> io::Result<()> {
    let mut cfg = Config::new(opts.id);
    cfg.sync = opts.sync;
    cfg.snapshot_every = opts.snapshot_every;
    let voters: Vec<u64> = if opts.join {
        Vec::new()
    } else {
        opts.replicas.keys().copied().collect()
    };
    // The raft log may hold entries of an older dipcd: they are applied
    // the older way until the first `GrantIds`, which every leader of
    // this version proposes when it starts to serve (a raft snapshot says
    // which way its state is).
    referee.state().objects.set_legacy_ids(true);
    let machine = Referees {
        referee: referee.clone(),
        rep: rep.clone(),
    };
    let (replica, opened) = Replica::open(
        &opts.dir.join("raft"),
        &cfg,
        &voters,
        &opts.replicas,
        machine,
    )?;
    let members = replica.members();
    let listen_at = members
        .get(&opts.id)
        .or_else(|| opts.replicas.get(&opts.id))
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        id = opts.id,
        fresh = opened.fresh,
        frames = opened.frames,
        torn_bytes = opened.torn_bytes,
        applied = replica.applied(),
        members = ?members,
        "replica opened"
    );
    let addr = listen_at
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            io::Error::other(format!(
                "referee {}: no address to listen at ({listen_at:?})",
                opts.id
            ))
        })?;
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port())))?;
    let events = lock(&rep.tx).clone();
    {
        let events = events.clone();
        let secret = opts.secret.clone();
        let allow = opts.allow.clone();
        std::thread::Builder::new()
            .name("dipcd-raft-accept".into())
            .spawn(move || accept(opts.id, listener, events, secret, allow))?;
    }
    let (flush_tx, flush_rx) = mpsc::channel::<BTreeSet<u32>>();
    {
        let referee = referee.clone();
        std::thread::Builder::new()
            .name("dipcd-flush".into())
            .spawn(move || {
                // One writer thread per node, started at its first frame:
                // a node that stops reading holds up its own frames only
                // (each write may block for a keepalive), not every node's.
                let mut writers: BTreeMap<u32, mpsc::Sender<()>> = BTreeMap::new();
                while let Ok(mut nodes) = flush_rx.recv() {
                    while let Ok(more) = flush_rx.try_recv() {
                        nodes.extend(more);
                    }
                    for node in nodes {
                        let w = writers
                            .entry(node)
                            .or_insert_with(|| node_writer(referee.clone(), node));
                        if w.send(()).is_err() {
                            // Its thread could not start: write from here.
                            referee.flush(&BTreeSet::from([node]));
                        }
                    }
                }
            })?;
    }
    let transport = Transport {
        id: opts.id,
        secret: opts.secret,
        events,
        senders: BTreeMap::new(),
        given: opts.replicas,
        exit_when_removed: !cfg!(test),
    };
    std::thread::Builder::new()
        .name("dipcd-raft".into())
        .spawn(move || run(referee, rep, replica, rx, transport, flush_tx))?;
    Ok(())
}

/// Starts the thread that writes what applying queued for `node`; each
/// message on the returned channel asks it to write once more.
fn node_writer(referee: Arc<Referee>, node: u32) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let started = std::thread::Builder::new()
        .name(format!("dipcd-tx-{node}"))
        .spawn(move || {
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                referee.flush(&BTreeSet::from([node]));
            }
        });
    if let Err(e) = started {
        tracing::error!(node, error = %e, "cannot start a writer thread");
    }
    tx
}

/// The replica thread's inbox.
pub struct Receiver(mpsc::Receiver<Event>);

/// A handle and the inbox of the thread [`start`] will run.
pub fn handle(id: u64) -> (Arc<Replication>, Receiver) {
    let (tx, rx) = mpsc::channel();
    let rep = Replication {
        tx: Mutex::new(tx),
        serving: AtomicBool::new(false),
        info: Mutex::new(Info {
            id,
            ..Default::default()
        }),
        hellos: Mutex::new(BTreeMap::new()),
    };
    (Arc::new(rep), Receiver(rx))
}

fn run(
    referee: Arc<Referee>,
    rep: Arc<Replication>,
    mut replica: Replica<Referees>,
    rx: Receiver,
    mut transport: Transport,
    flush: mpsc::Sender<BTreeSet<u32>>,
) {
    let mut next_tick = Instant::now() + TICK;
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    let mut was_leader = false;
    // The index of this term's first entry, once leading: the leader serves
    // once it has applied it (everything committed before is applied then).
    let mut first = u64::MAX;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let mut events = Vec::new();
        match rx.0.recv_timeout(wait) {
            Ok(e) => events.push(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        while events.len() < 1024 {
            match rx.0.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        // A node's frame that could not be proposed while this referee
        // served: its connection must close, so that the node resumes and
        // sends its calls again (never a frame lost while it stays up).
        let mut refused = 0usize;
        for e in events {
            match e {
                Event::Propose(bytes, done) => {
                    let r = if rep.serving() {
                        replica.propose(bytes).map_err(|e| e.to_string())
                    } else {
                        Err("this referee does not lead".to_string())
                    };
                    match (r, done) {
                        (Ok(t), Some(d)) => {
                            waiting.insert(t, d);
                        }
                        (Err(e), Some(d)) => {
                            let _ = d.send(Err(e));
                        }
                        (Ok(_), None) => {}
                        (Err(e), None) => {
                            tracing::debug!(error = %e, "a node's frame not proposed");
                            refused += 1;
                        }
                    }
                }
                Event::Change(c, done) => match replica.propose_change(&c).map_err(|e| match e {
                    dipc_replica::ProposeError::NotLeader(l) => {
                        format!(
                            "this referee does not lead (the leader: {}); ask it",
                            l.unwrap_or(0)
                        )
                    }
                    e => e.to_string(),
                }) {
                    Ok(t) => {
                        waiting.insert(t, done);
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                },
                Event::Peer(m) => replica.step(m),
                Event::Unreachable(id) => replica.report_unreachable(id),
                Event::SnapshotSent(id, ok) => replica.report_snapshot(id, ok),
                Event::Transfer(id) => replica.transfer_leader(id),
                #[cfg(test)]
                Event::Stop => {
                    rep.serving.store(false, Ordering::Release);
                    referee.close_all();
                    return;
                }
            }
        }
        if Instant::now() >= next_tick {
            replica.tick();
            next_tick += TICK;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + TICK;
            }
        }
        let p = match replica.poll() {
            Ok(p) => p,
            Err(e) => {
                // A referee that cannot keep its log must not vote or
                // acknowledge: it stops, and recovers from what reached the
                // disk when started again.
                tracing::error!(error = %e, "cannot write the raft log; stopping");
                std::process::exit(74);
            }
        };
        let members = replica.members();
        transport.send_all(p.messages, &members);
        let mut nodes = BTreeSet::new();
        for a in p.applied {
            let resumed = match a.output {
                Some((resumed, n)) => {
                    nodes.extend(n);
                    resumed
                }
                None => {
                    tracing::info!(index = a.index, voters = ?replica.voters(), members = ?members, "membership changed");
                    false
                }
            };
            if let Some(d) = a.ticket.and_then(|t| waiting.remove(&t)) {
                let _ = d.send(Ok(resumed));
            }
        }
        for t in p.lost {
            if let Some(d) = waiting.remove(&t) {
                let _ = d.send(Err("lost to another leader's entry".into()));
            }
        }
        if !nodes.is_empty() {
            let _ = flush.send(nodes);
        }
        let leader = replica.is_leader();
        if leader && !was_leader {
            first = replica.last_index();
            tracing::info!(
                id = replica.id(),
                term = replica.term(),
                "leading; serving once the log is applied"
            );
        }
        if !leader {
            first = u64::MAX;
        }
        was_leader = leader;
        // A leader handing leadership over takes no proposal (raft-rs drops
        // them): it serves nobody until the transfer ends, either way.
        let serving = leader && replica.transferring().is_none() && replica.applied() >= first;
        if serving != rep.serving() {
            rep.serving.store(serving, Ordering::Release);
            if serving {
                tracing::info!(
                    id = replica.id(),
                    term = replica.term(),
                    applied = replica.applied(),
                    "serving nodes"
                );
                referee.start_serving();
                for rec in referee.settings_records() {
                    if let Ok(b) = bincode::serialize(&rec) {
                        let _ = replica.propose(b);
                    }
                }
            } else {
                tracing::warn!(id = replica.id(), leader = ?replica.leader(), transferring_to = ?replica.transferring(), "not serving (no longer leading, or handing leadership over); closing every node's connection");
                for (_, d) in std::mem::take(&mut waiting) {
                    let _ = d.send(Err("this referee no longer leads".into()));
                }
                referee.close_all();
            }
        }
        if refused > 0 && serving {
            tracing::warn!(
                refused,
                "nodes' frames could not be proposed; closing every node's connection"
            );
            referee.close_all();
        }
        {
            let mut i = lock(&rep.info);
            i.leader = replica.leader().unwrap_or(0);
            i.term = replica.term();
            i.commit = replica.commit();
            i.applied = replica.applied();
            i.members = members;
            i.serving = serving;
        }
        if replica.removed() {
            // Its log ends here: it serves nothing, and the process (whose
            // state would only age) stops.
            tracing::warn!(id = replica.id(), "removed from the referees; stopping");
            rep.serving.store(false, Ordering::Release);
            referee.close_all();
            if transport.exit_when_removed {
                std::process::exit(0);
            }
            return;
        }
    }
}

/// Sends raft messages to the other referees, one thread each.
struct Transport {
    id: u64,
    secret: Option<Secret>,
    events: mpsc::Sender<Event>,
    senders: BTreeMap<u64, mpsc::Sender<Message>>,
    /// Ends the process once this referee is removed (not in tests).
    exit_when_removed: bool,
    /// The addresses given at start (`--replicas`): a joining referee
    /// answers the leader before it has applied the membership that names
    /// it.
    given: Members,
}

impl Transport {
    fn send_all(&mut self, msgs: Vec<Message>, members: &Members) {
        for m in msgs {
            let to = m.to;
            if !self.senders.contains_key(&to) {
                let Some(addr) = members.get(&to).or_else(|| self.given.get(&to)).cloned() else {
                    continue;
                };
                let (tx, rx) = mpsc::channel();
                let (id, secret, events) = (self.id, self.secret.clone(), self.events.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("dipcd-raft-to-{to}"))
                    .spawn(move || send_loop(id, to, addr, secret, rx, events));
                if spawned.is_err() {
                    continue;
                }
                self.senders.insert(to, tx);
            }
            if let Some(s) = self.senders.get(&to) {
                let _ = s.send(m);
            }
        }
    }
}

/// Opens a connection to referee `to` at `addr` as referee `id`: each side
/// proves the secret (if there is one) over the other's nonce, the
/// acceptor last, and nothing is sent before it has.
fn connect(id: u64, to: u64, addr: &str, secret: &Option<Secret>) -> io::Result<TcpStream> {
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("no address"))?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(1))?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut challenge = [0u8; AUTH_LEN];
    s.read_exact(&mut challenge)?;
    let own = crate::auth::nonce()?;
    let tag = match secret {
        Some(sec) => sec.tag(AuthRole::Replica, id as u32, &challenge, &own),
        None => [0u8; AUTH_LEN],
    };
    let mut hello = MAGIC.to_vec();
    hello.extend_from_slice(&id.to_le_bytes());
    hello.extend_from_slice(&own);
    hello.extend_from_slice(&tag);
    s.write_all(&hello)?;
    let mut proof = [0u8; AUTH_LEN];
    s.read_exact(&mut proof)?;
    if let Some(sec) = secret {
        if to > u64::from(u32::MAX)
            || !sec.verify(
                AuthRole::ReplicaAcceptor,
                to as u32,
                &own,
                &challenge,
                &proof,
            )
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{addr} did not prove the secret as referee {to}"),
            ));
        }
    }
    Ok(s)
}

fn send_loop(
    id: u64,
    to: u64,
    addr: String,
    secret: Option<Secret>,
    rx: mpsc::Receiver<Message>,
    events: mpsc::Sender<Event>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut failed_at: Option<Instant> = None;
    let mut logged = false;
    while let Ok(m) = rx.recv() {
        let snapshot = m.get_msg_type() == dipc_replica::MessageType::MsgSnapshot;
        if conn.is_none() && failed_at.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            match connect(id, to, &addr, &secret) {
                Ok(s) => {
                    conn = Some(s);
                    failed_at = None;
                    if logged {
                        tracing::info!(to, %addr, "referee reachable again");
                        logged = false;
                    }
                }
                Err(e) => {
                    failed_at = Some(Instant::now());
                    if !logged {
                        tracing::warn!(to, %addr, error = %e, "cannot reach referee");
                        logged = true;
                    }
                }
            }
        }
        let bytes = dipc_replica::encode_message(&m);
        let ok = match conn.as_mut() {
            Some(s) => {
                let mut b = (bytes.len() as u32).to_le_bytes().to_vec();
                b.extend_from_slice(&bytes);
                s.write_all(&b).is_ok()
            }
            None => false,
        };
        if !ok {
            conn = None;
            let _ = events.send(Event::Unreachable(to));
        }
        if snapshot {
            let _ = events.send(Event::SnapshotSent(to, ok));
        }
    }
}

/// Takes referee `me`'s incoming connections from other referees: a thread
/// each, at most [`MAX_HANDSHAKES`] of them before they proved the secret.
fn accept(
    me: u64,
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    secret: Option<Secret>,
    allow: Vec<Net>,
) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    for s in listener.incoming() {
        let Ok(s) = s else { continue };
        let peer = s.peer_addr().ok();
        if let Some(p) = peer.filter(|p| !crate::auth::allowed(&allow, p.ip())) {
            tracing::warn!(peer = %p, "refusing a referee connection from outside the allow list");
            continue;
        }
        if handshakes.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
            handshakes.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                ?peer,
                "too many referee connections in their handshake; closed"
            );
            continue;
        }
        let (events, secret, counted) = (events.clone(), secret.clone(), handshakes.clone());
        let started = std::thread::Builder::new()
            .name("dipcd-raft-from".into())
            .spawn(move || {
                let peer = s.peer_addr().ok();
                if let Err(e) = receive(me, s, &events, &secret, &counted) {
                    tracing::debug!(?peer, error = %e, "referee connection closed");
                }
            });
        if started.is_err() {
            handshakes.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One connection from another referee: its handshake (counted in
/// `handshakes` until it ends), then its messages.
fn receive(
    me: u64,
    mut s: TcpStream,
    events: &mpsc::Sender<Event>,
    secret: &Option<Secret>,
    handshakes: &AtomicUsize,
) -> io::Result<()> {
    let from = handshake(me, &mut s, secret);
    handshakes.fetch_sub(1, Ordering::AcqRel);
    let from = from?;
    s.set_read_timeout(Some(PEER_IDLE))?;
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_MESSAGE {
            return Err(io::Error::other(format!("a message of {len} bytes")));
        }
        // Read as it comes: a length alone allocates nothing.
        buf.clear();
        (&mut s).take(len as u64).read_to_end(&mut buf)?;
        if buf.len() != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let Some(m) = dipc_replica::decode_message(&buf) else {
            return Err(io::Error::other("an undecodable raft message"));
        };
        if m.from != from {
            return Err(io::Error::other(format!(
                "referee {from} sent a message from {}",
                m.from
            )));
        }
        if events.send(Event::Peer(m)).is_err() {
            return Ok(());
        }
    }
}

/// The acceptor's side of the handshake: the connecting referee's proof
/// over our challenge, then ours over its nonce. Returns its id.
fn handshake(me: u64, s: &mut TcpStream, secret: &Option<Secret>) -> io::Result<u64> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let challenge = crate::auth::nonce()?;
    s.write_all(&challenge)?;
    let mut hello = [0u8; 8 + 8 + 2 * AUTH_LEN];
    s.read_exact(&mut hello)?;
    if &hello[..8] != MAGIC {
        return Err(io::Error::other("not a dipc referee"));
    }
    let from = u64::from_le_bytes(hello[8..16].try_into().unwrap_or_default());
    let own: [u8; AUTH_LEN] = hello[16..16 + AUTH_LEN].try_into().unwrap_or_default();
    let tag: [u8; AUTH_LEN] = hello[16 + AUTH_LEN..].try_into().unwrap_or_default();
    if let Some(sec) = secret {
        if from > u64::from(u32::MAX)
            || !sec.verify(AuthRole::Replica, from as u32, &challenge, &own, &tag)
        {
            tracing::warn!(from, peer = ?s.peer_addr().ok(), "a referee failed to prove the cluster secret; refused");
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "bad proof"));
        }
    }
    let proof = match secret {
        Some(sec) => sec.tag(AuthRole::ReplicaAcceptor, me as u32, &own, &challenge),
        None => [0u8; AUTH_LEN],
    };
    s.write_all(&proof)?;
    Ok(from)
}

/// Parses `ID=HOST:PORT`.
pub fn parse_replica(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ID=HOST:PORT"))?;
    let id: u64 = id
        .parse()
        .ok()
        .filter(|&i| (1..=u64::from(u32::MAX)).contains(&i))
        .ok_or_else(|| format!("{s:?}: the id must be 1 to {}", u32::MAX))?;
    if addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_none()
    {
        return Err(format!("{s:?}: expected ID=HOST:PORT"));
    }
    Ok((id, addr.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(key: &[u8]) -> Option<Secret> {
        Some(Secret::new(key).unwrap())
    }

    /// Found by the review of 3e25eae: a referee connecting to another
    /// never checked that the other held the secret, so whoever answered
    /// at a referee's address was sent the log and snapshots (every
    /// page's home copy). The acceptor proves itself now, and nothing is
    /// sent to one that cannot.
    #[test]
    fn a_referee_sends_nothing_to_an_acceptor_without_the_secret() {
        let key = b"0123456789abcdef0123";
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // An impostor: a challenge, then a proof under another secret.
        let impostor = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let challenge = [7u8; AUTH_LEN];
            s.write_all(&challenge).unwrap();
            let mut hello = [0u8; 8 + 8 + 2 * AUTH_LEN];
            s.read_exact(&mut hello).unwrap();
            let own: [u8; AUTH_LEN] = hello[16..16 + AUTH_LEN].try_into().unwrap();
            let wrong = secret(b"another secret, not the one").unwrap().tag(
                AuthRole::ReplicaAcceptor,
                2,
                &own,
                &challenge,
            );
            s.write_all(&wrong).unwrap();
        });
        let r = connect(1, 2, &addr, &secret(key));
        impostor.join().unwrap();
        let e = r.expect_err("streamed to a referee that did not prove the secret");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);

        // The real thing: each side proves itself, and the connection
        // carries messages.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let acceptor = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            handshake(2, &mut s, &secret(key)).unwrap()
        });
        connect(1, 2, &addr, &secret(key)).expect("a proven acceptor refused");
        assert_eq!(acceptor.join().unwrap(), 1);
    }

    /// Found by the same review: a thread for every incoming connection
    /// before any proof, with no limit. Connections beyond
    /// [`MAX_HANDSHAKES`] still in their handshake are closed at once.
    #[test]
    fn connections_in_their_handshake_are_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, _rx) = mpsc::channel();
        std::thread::spawn(move || {
            accept(1, listener, events, secret(b"0123456789abcdef"), Vec::new())
        });
        let mut idle = Vec::new();
        for _ in 0..MAX_HANDSHAKES {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut c = [0u8; AUTH_LEN];
            s.read_exact(&mut c).expect("a challenge");
            idle.push(s);
        }
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        let n = match s.read(&mut b) {
            Ok(n) => n,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
                0
            }
        };
        assert_eq!(n, 0, "one more connection got a handshake");
        drop(idle);
    }
}
