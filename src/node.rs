// SPDX-License-Identifier: GPL-2.0

//! This node's state, shared by the hooks, the connection thread and the
//! status file.

use crate::{
    policy::{Policy, Quanta},
    shadow::Shadows,
    shim,
    transport::{Call, Exits, Tx},
    wire,
};
use kernel::{
    fmt, new_mutex, new_spinlock,
    prelude::*,
    rbtree::RBTree,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex, SpinLock,
    },
    time::{Instant, Monotonic},
};

/// A connection this node opens to another, to send it pages
/// ([`crate::peer`]).
pub(crate) struct OutPeer {
    pub(crate) node: u32,
    pub(crate) ip: u32,
    pub(crate) port: u16,
    /// The token the other node's session has, as the referee said.
    pub(crate) token: [u8; wire::TOKEN_LEN],
    /// Up and authenticated.
    pub(crate) sock: Option<Arc<shim::Socket>>,
    /// The last failed attempt.
    pub(crate) failed: Option<Instant<Monotonic>>,
}

/// The connections this node opened to others, guarded by [`Node::peers`].
pub(crate) struct Peers {
    pub(crate) out: KVec<OutPeer>,
}

impl Peers {
    pub(crate) const fn new() -> Self {
        Peers { out: KVec::new() }
    }
}

/// An IPv4 address and port, host byte order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockAddr {
    pub(crate) ip: u32,
    pub(crate) port: u16,
}

impl SockAddr {
    /// Parses `a.b.c.d:port`.
    pub(crate) fn parse(s: &[u8]) -> Option<Self> {
        let colon = s.iter().rposition(|&b| b == b':')?;
        let (host, port) = (&s[..colon], &s[colon + 1..]);
        let port = parse_decimal(port, u16::MAX.into())?;
        if port == 0 {
            return None;
        }
        let mut ip = 0u32;
        let mut parts = 0;
        for part in host.split(|&b| b == b'.') {
            ip = (ip << 8) | parse_decimal(part, 255)?;
            parts += 1;
        }
        (parts == 4).then_some(SockAddr {
            ip,
            port: port as u16,
        })
    }
}

/// Most referees a node knows: three or five replicated referees, one
/// leading (`referee=a:p,b:p,c:p`).
pub(crate) const MAX_REFEREES: usize = 5;

/// The referees a node may connect to, in the order given: one, or the
/// replicated referees, of which only the leader serves nodes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Referees {
    addrs: [SockAddr; MAX_REFEREES],
    len: usize,
}

impl Referees {
    /// Parses `a.b.c.d:port[,a.b.c.d:port...]` (1 to [`MAX_REFEREES`]).
    pub(crate) fn parse(s: &[u8]) -> Option<Self> {
        let mut r = Referees {
            addrs: [SockAddr { ip: 0, port: 0 }; MAX_REFEREES],
            len: 0,
        };
        for part in s.split(|&b| b == b',') {
            if r.len == MAX_REFEREES {
                return None;
            }
            r.addrs[r.len] = SockAddr::parse(part)?;
            r.len += 1;
        }
        Some(r)
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The `i`th, counting round (never empty: [`Referees::parse`] takes
    /// at least one).
    pub(crate) fn get(&self, i: usize) -> SockAddr {
        self.addrs[i % self.len.max(1)]
    }
}

impl fmt::Display for Referees {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.addrs[..self.len].iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            fmt::Display::fmt(a, f)?;
        }
        Ok(())
    }
}

/// A decimal number of 1 to 5 digits, at most `max`.
fn parse_decimal(s: &[u8], max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 5 {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    (v <= max).then_some(v)
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.ip.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}:{}", self.port)
    }
}

/// Where the connection to the referee stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Opening the TCP connection.
    Connecting,
    /// Connected, hello sent, waiting for the referee's answer.
    Handshake,
    /// The referee accepted us.
    Connected,
    /// Waiting before the next attempt, after the error given.
    Backoff(Error),
    /// Told to stop.
    Stopped,
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnState::Connecting => f.write_str("connecting"),
            ConnState::Handshake => f.write_str("handshake"),
            ConnState::Connected => f.write_str("connected"),
            ConnState::Backoff(e) => write!(f, "backoff (error {})", e.to_errno()),
            ConnState::Stopped => f.write_str("stopped"),
        }
    }
}

/// Whom this node connects to, guarded by [`Node::member`]. Set at load
/// (`referee=`) or by `dipcctl join`, cleared by `dipcctl leave`.
pub(crate) struct Member {
    /// The referee (or the replicated referees); `None` while the node is
    /// not in a cluster.
    pub(crate) referee: Option<Referees>,
    /// The cluster secret (see `conn.rs`), read from the secret file when
    /// the node joined.
    pub(crate) secret: Option<KVec<u8>>,
    /// The connection thread, while joined. Stopped with the lock released
    /// (the thread reads this struct when it starts).
    pub(crate) thread: Option<shim::Thread<Node>>,
}

/// The connection's state and statistics, guarded by [`Node::conn`].
pub(crate) struct ConnInfo {
    pub(crate) state: ConnState,
    /// The referee run we are connected to (from its hello ack).
    pub(crate) session: u64,
    /// Successful handshakes since load.
    pub(crate) handshakes: u64,
    /// Handshakes that resumed the session (the referee still held it).
    pub(crate) resumes: u64,
    /// The referee of the last handshake (with replicated referees, the
    /// one that led then).
    pub(crate) referee_now: Option<SockAddr>,
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
}

/// This node.
///
/// Locks are split by who takes them: `conn` by the connection thread and
/// the status file; `tx` by every sender (it serialises frames on the
/// socket); `calls` by callers and the connection thread, briefly, to find
/// a call; `exits` also in atomic context (the exit hook), so it is a spin
/// lock over fixed arrays; `policy` on every `get` call; `admin` by
/// `dipcctl join`/`leave` for their whole run (a leave waits for the
/// referee with it held); `member` briefly, taking no other lock. Lock
/// order: `admin` before everything; `tx` before `calls` and before
/// `conn`.
#[pin_data]
pub(crate) struct Node {
    /// This node's id in the cluster (0: none yet).
    pub(crate) node_id: Atomic<u32>,
    /// Whom we connect to.
    #[pin]
    pub(crate) member: Mutex<Member>,
    /// `member.referee.is_some()`, read without the lock on hot paths.
    pub(crate) joined: Atomic<u32>,
    /// A leave is under way: the connection thread does not reconnect.
    pub(crate) leaving: Atomic<u32>,
    /// The referee takes exits as calls (`ACK_EXIT_CALLS` in its last
    /// hello ack).
    pub(crate) exit_calls: Atomic<u32>,
    /// Serialises joins and leaves.
    #[pin]
    pub(crate) admin: Mutex<()>,
    /// Silence after which the connection is declared dead (ms).
    pub(crate) keepalive_ms: u32,
    /// How long a call or page fault made without a connection waits for
    /// one before it fails (ms).
    pub(crate) reconnect_wait_ms: u32,
    /// Updated by the connection thread, read by the status file.
    #[pin]
    pub(crate) conn: Mutex<ConnInfo>,
    #[pin]
    pub(crate) tx: Mutex<Tx>,
    /// Requests waiting for their reply.
    #[pin]
    pub(crate) calls: Mutex<KVec<Arc<Call>>>,
    #[pin]
    pub(crate) shadows: Shadows,
    /// What `/proc/sysvipc` shows of the shadows (see [`crate::procipc`]).
    #[pin]
    pub(crate) proc_stats: SpinLock<crate::shadow::ProcStats>,
    #[pin]
    pub(crate) policy: SpinLock<Policy>,
    /// Whether `policy` names any key: a `get` of a local key under the
    /// default policy (`none`) takes no lock. Written with `policy` held.
    pub(crate) policy_any: Atomic<u32>,
    /// Per-key-range time quanta (`/proc/sys/dipc/quantum_keys`).
    #[pin]
    pub(crate) quanta: SpinLock<Quanta>,
    /// Keys whose segments move as one unit (`/proc/sys/dipc/segment_keys`).
    #[pin]
    pub(crate) whole_keys: SpinLock<Policy>,
    #[pin]
    pub(crate) exits: SpinLock<Exits>,
    /// Distributed segments used on this node, by object id.
    #[pin]
    pub(crate) segs: Mutex<RBTree<u64, Arc<crate::seg::Seg>>>,
    /// `segs.len()`, read without the lock by `shmdt`.
    pub(crate) nsegs: Atomic<u32>,
    /// Tasks in a distributed `shmat`, and the segment each attaches: how
    /// the `shm_mmap()` hook knows a segment's first VMA here.
    #[pin]
    pub(crate) attaching: Mutex<KVec<(usize, u64)>>,
    /// An attach count changed: the connection thread tells the referee.
    pub(crate) shm_dirty: Atomic<u32>,
    /// The connection is lost and it is not yet known whether the referee
    /// still holds our session: every page access faults and waits.
    pub(crate) shm_suspended: Atomic<u32>,
    /// Random, chosen at load and again after each leave: says "the same
    /// node" in every hello, so a referee that still holds our session
    /// resumes it (and one that holds a session we left does not).
    pub(crate) incarnation: Atomic<u64>,
    /// The peer token of this node's connection to the referee (zeroes:
    /// none): another node must show it to send this node pages. Held
    /// while a page from another node is applied, and while it changes.
    #[pin]
    pub(crate) token: Mutex<[u8; wire::TOKEN_LEN]>,
    /// Connections to and from other nodes (`peer.rs`).
    #[pin]
    pub(crate) peers: Mutex<Peers>,
    /// Message leases, per queue by object id (see [`crate::msglease`]).
    #[pin]
    pub(crate) msgq: Mutex<RBTree<u64, Arc<crate::msgq::Queue>>>,
}

/// A fresh incarnation, never 0 (a referee's state cannot hold a node
/// under incarnation 0 by accident).
pub(crate) fn new_incarnation() -> u64 {
    let mut inc = [0u8; 8];
    shim::random_bytes(&mut inc);
    u64::from_le_bytes(inc) | 1
}

impl Node {
    /// The node, from the module parameters.
    pub(crate) fn new(
        node_id: u32,
        referee: &CStr,
        keepalive_ms: u32,
        reconnect_wait_ms: u32,
    ) -> Result<Arc<Self>> {
        let referee = match referee.to_bytes() {
            [] => None,
            s => match Referees::parse(s) {
                Some(a) => Some(a),
                None => {
                    pr_err!(
                        "referee={:?}: expected a.b.c.d:port (or up to {} of them, comma-separated)\n",
                        referee,
                        MAX_REFEREES
                    );
                    return Err(EINVAL);
                }
            },
        };
        if referee.is_some() && node_id == 0 {
            pr_err!("referee= needs node_id= (1 or more)\n");
            return Err(EINVAL);
        }
        if !(300..=3_600_000).contains(&keepalive_ms) {
            pr_err!("keepalive_ms={}: expected 300..3600000\n", keepalive_ms);
            return Err(EINVAL);
        }
        if reconnect_wait_ms > 3_600_000 {
            pr_err!("reconnect_wait_ms={}: at most 3600000\n", reconnect_wait_ms);
            return Err(EINVAL);
        }
        // Read (and checked) even without `referee=`: a bad file fails the
        // load, not a later `dipcctl join`.
        let secret = load_secret(shim::secret_file_param())?;
        Arc::pin_init(
            pin_init!(Node {
                node_id: Atomic::new(node_id),
                member <- new_mutex!(Member {
                    referee,
                    secret,
                    thread: None,
                }),
                joined: Atomic::new(u32::from(referee.is_some())),
                leaving: Atomic::new(0),
                exit_calls: Atomic::new(0),
                admin <- new_mutex!(()),
                keepalive_ms,
                reconnect_wait_ms,
                conn <- new_mutex!(ConnInfo {
                    state: ConnState::Stopped,
                    session: 0,
                    handshakes: 0,
                    resumes: 0,
                    referee_now: None,
                    frames_in: 0,
                    frames_out: 0,
                }),
                tx <- new_mutex!(Tx::new()),
                calls <- new_mutex!(KVec::new()),
                shadows <- Shadows::new(),
                proc_stats <- new_spinlock!(crate::shadow::proc_stats_empty()),
                policy <- new_spinlock!(Policy::NONE),
                policy_any: Atomic::new(0),
                quanta <- new_spinlock!(Quanta::NONE),
                whole_keys <- new_spinlock!(Policy::NONE),
                // 8 KiB: built in place, not on the stack.
                exits <- new_spinlock!(pin_init::init_zeroed()),
                segs <- new_mutex!(RBTree::new()),
                nsegs: Atomic::new(0),
                attaching <- new_mutex!(KVec::new()),
                shm_dirty: Atomic::new(0),
                shm_suspended: Atomic::new(0),
                incarnation: Atomic::new(new_incarnation()),
                token <- new_mutex!([0; wire::TOKEN_LEN]),
                peers <- new_mutex!(Peers::new()),
                msgq <- new_mutex!(RBTree::new()),
            }),
            GFP_KERNEL,
        )
    }

    /// This node's id (0 until it has one).
    pub(crate) fn id(&self) -> u32 {
        self.node_id.load(Relaxed)
    }

    /// The referee(s), while joined.
    pub(crate) fn referee(&self) -> Option<Referees> {
        self.member.lock().referee
    }

    /// The referee address for messages, or `none`.
    pub(crate) fn referee_display(&self) -> impl fmt::Display {
        struct D(Option<Referees>);
        impl fmt::Display for D {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match &self.0 {
                    Some(a) => fmt::Display::fmt(a, f),
                    None => f.write_str("none"),
                }
            }
        }
        D(self.referee())
    }
}

/// Runs `apply` on the node with the text a sysctl handler was given.
///
/// # Safety
///
/// Called only by the sysctl handlers with the context given to
/// [`crate::shim::Control::register`] (alive while the files exist) and
/// `buf` readable for `len` bytes.
unsafe fn set_from_text(
    ctx: *mut c_void,
    buf: *const u8,
    len: usize,
    apply: impl FnOnce(&Node, &[u8]) -> Result,
) -> c_int {
    // SAFETY: per the function's contract.
    let node = unsafe { crate::shim::borrow_ctx::<Node>(ctx) };
    // SAFETY: per the function's contract.
    let text = unsafe { core::slice::from_raw_parts(buf, len) };
    match apply(&node, text) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Called when `/proc/sys/dipc/keys` is written.
///
/// # Safety
///
/// As for [`set_from_text`].
#[no_mangle]
unsafe extern "C" fn dipc_rust_policy_set(ctx: *mut c_void, buf: *const u8, len: usize) -> c_int {
    // SAFETY: per the function's contract.
    unsafe {
        set_from_text(ctx, buf, len, |node, text| {
            let p = Policy::parse(text)?;
            let mut policy = node.policy.lock();
            *policy = p;
            node.policy_any.store(u32::from(!p.is_none()), Relaxed);
            Ok(())
        })
    }
}

/// `/proc/sys/dipc/quantum_keys` was written.
///
/// # Safety
///
/// As for [`set_from_text`].
#[no_mangle]
unsafe extern "C" fn dipc_rust_quanta_set(ctx: *mut c_void, buf: *const u8, len: usize) -> c_int {
    // SAFETY: per the function's contract.
    unsafe {
        set_from_text(ctx, buf, len, |node, text| {
            *node.quanta.lock() = Quanta::parse(text)?;
            Ok(())
        })
    }
}

/// `/proc/sys/dipc/segment_keys` was written.
///
/// # Safety
///
/// As for [`set_from_text`].
#[no_mangle]
unsafe extern "C" fn dipc_rust_whole_set(ctx: *mut c_void, buf: *const u8, len: usize) -> c_int {
    // SAFETY: per the function's contract.
    unsafe {
        set_from_text(ctx, buf, len, |node, text| {
            *node.whole_keys.lock() = Policy::parse(text)?;
            Ok(())
        })
    }
}

impl Node {
    /// How long this node keeps a page of a segment with `key` after it
    /// acquired it before it answers an invalidation (ms).
    pub(crate) fn quantum_ms(&self, key: i32) -> u32 {
        self.quanta
            .lock()
            .of(key)
            .unwrap_or_else(crate::shim::quantum_ms)
    }
}

/// A copy of the cluster secret (for a thread that proves it without
/// holding [`Node::member`]).
pub(crate) fn copy_secret(secret: &Option<KVec<u8>>) -> Result<Option<KVec<u8>>> {
    let Some(s) = secret else {
        return Ok(None);
    };
    let mut v = KVec::new();
    v.extend_from_slice(s, GFP_KERNEL)?;
    Ok(Some(v))
}

/// Reads the cluster secret from `path` (empty: none). The file must be
/// root's and private; one trailing newline is not part of the secret.
pub(crate) fn load_secret(path: &CStr) -> Result<Option<KVec<u8>>> {
    if path.is_empty() {
        return Ok(None);
    }
    let mut buf = KVec::new();
    buf.resize(wire::SECRET_MAX + 2, 0, GFP_KERNEL)?;
    let n = match shim::read_secret(path, &mut buf) {
        Ok(n) => n,
        Err(e) => {
            if e == EPERM {
                pr_err!(
                    "secret_file={:?}: must be owned by root with mode 0600 or 0400\n",
                    path
                );
            } else {
                pr_err!("secret_file={:?}: error {}\n", path, e.to_errno());
            }
            return Err(e);
        }
    };
    let len = match wire::secret_in_file(&buf[..n]) {
        Ok(secret) => secret.len(),
        Err(len) => {
            pr_err!(
                "secret_file={:?}: {} bytes; the secret needs {} to {}\n",
                path,
                len,
                wire::SECRET_MIN,
                wire::SECRET_MAX
            );
            return Err(EINVAL);
        }
    };
    buf.truncate(len);
    Ok(Some(buf))
}
