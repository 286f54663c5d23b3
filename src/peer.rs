// SPDX-License-Identifier: GPL-2.0

//! Page transfers between nodes.
//!
//! A page another node owns travels straight from that owner to the node
//! that faulted: the referee still orders every transaction and keeps the
//! home copy, but its invalidation names the requester (its address, peer
//! port and session token), and the owner sends the page there itself
//! ([`send_page`]) before it acks the referee with the same bytes. The
//! requester's fault then waits 1.5 round trips instead of 2, and the page
//! crosses the network once on the way to it.
//!
//! Connections are one-way (the opener sends pages, the acceptor applies
//! them) and opened on demand by this node's peer thread, never by the
//! connection thread: until a connection to the requester is up, the owner
//! acks without sending and the referee grants as before. The opener sends
//! [`PeerHello`] with the token the referee gave the acceptor for its
//! current session; the acceptor checks the token, and with a cluster
//! secret both prove it (HMAC, as with the referee, with their own labels).
//! So only a node the referee named can hand a node pages, and a page
//! meant for an earlier session of a node is never applied. A grant that
//! is lost on the way (a connection that fails) is granted again from home
//! when the requester asks again ([`crate::shm`]).
//!
//! The receivers apply what they get with the function
//! [`PeerGuard::start`] is given ([`crate::shm::grant_direct`]), so the page
//! protocol uses this file and not the other way round.

use crate::{
    node::{copy_secret, Node, OutPeer},
    shim::{self, Socket, Thread},
    wire::{
        self, auth_input, Auth, AuthRole, DecodeError, Frame, PageData, PageGrant, PageInval,
        PeerHello, AUTH_LEN, HEADER_LEN, MAX_PAYLOAD, TOKEN_LEN,
    },
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    time::{Instant, Monotonic},
};

/// How long `accept` waits before the peer thread looks up.
const ACCEPT_TIMEOUT_MS: u32 = 20;
/// Longest wait for a connection to another node, and for a send on it:
/// as for the referee's connection, a SYN lost once (sent again after 1 s)
/// on a wide-area link must not fail it.
const CONNECT_TIMEOUT_MS: u32 = 3000;
/// Receive timeout of a peer connection.
const RECV_TIMEOUT_MS: u32 = 100;
/// A handshake not done in this time fails.
const HANDSHAKE_MS: i64 = 2000;
/// After a failed connection to a node, wait this long before another.
const RETRY_MS: i64 = 1000;
/// Most connections from other nodes at once.
const MAX_IN: usize = 64;
/// How often the connecting thread looks for connections to open.
const CONNECT_POLL_MS: u32 = 10;

/// Per-CPU counters: pages sent to and received from other nodes, pages
/// received that were already applied (granted again from home first),
/// connections and frames refused.
pub(crate) const COUNT_SENT: usize = 29;
pub(crate) const COUNT_RECEIVED: usize = 30;
pub(crate) const COUNT_STALE: usize = 31;
pub(crate) const COUNT_REFUSED: usize = 32;

/// What applies a page grant another node sent: [`crate::shm::grant_direct`]
/// (given at [`PeerGuard::start`], so this file does not depend on the
/// page protocol that depends on it). Whether the grant was applied.
pub(crate) type GrantFn = fn(&Node, &PageGrant<'_>, u64) -> bool;

/// A connection from another node, served by its own thread.
pub(crate) struct Rx {
    node: Arc<Node>,
    grant: GrantFn,
    sock: Socket,
    /// The other end's address (for messages).
    ip: u32,
    /// The thread has returned.
    done: Atomic<u32>,
}

/// The accepting thread's context: the node, and the receivers it started.
#[pin_data]
pub(crate) struct Acceptor {
    node: Arc<Node>,
    grant: GrantFn,
    #[pin]
    rx: Mutex<KVec<(Arc<Rx>, Thread<Rx>)>>,
}

/// The peer threads, kept in a [`PeerGuard`]: one accepts connections
/// from other nodes, one opens connections to them. (One thread doing both
/// would deadlock with its counterpart on another node: each waiting in
/// its own handshake for the other to accept.)
pub(crate) struct PeerGuard {
    node: Arc<Node>,
    acceptor: Arc<Acceptor>,
    accept: Option<Thread<Acceptor>>,
    connect: Option<Thread<Node>>,
}

impl PeerGuard {
    /// Starts the peer threads if `peer_port` is set; grants that arrive
    /// are applied with `grant`.
    pub(crate) fn start(node: &Arc<Node>, grant: GrantFn) -> Result<Self> {
        let acceptor = Arc::pin_init(
            pin_init!(Acceptor {
                node: node.clone(),
                grant,
                rx <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )?;
        let mut g = PeerGuard {
            node: node.clone(),
            acceptor,
            accept: None,
            connect: None,
        };
        if shim::peer_port() != 0 {
            g.connect = Some(Thread::start_fn(
                node.clone(),
                c"dipc-peer-out",
                dipc_rust_peer_connect,
            )?);
            g.accept = Some(Thread::start_fn(
                g.acceptor.clone(),
                c"dipc-peer",
                dipc_rust_peer_thread,
            )?);
        }
        Ok(g)
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        // The threads first (they start receivers and open connections),
        // then the receivers and the connections.
        drop(self.accept.take());
        drop(self.connect.take());
        let rx = core::mem::take(&mut *self.acceptor.rx.lock());
        let out = core::mem::take(&mut self.node.peers.lock().out);
        for (r, _) in rx.iter() {
            r.sock.shutdown();
        }
        drop(rx);
        drop(out);
    }
}

/// Sends page `i.page`'s `bytes` to the requester [`PageInval`] `i` (of
/// transaction `txn`) names, if a connection to it is up: the grant the
/// referee would have sent. Otherwise asks the peer thread for one, and
/// returns `false`: this page goes through the referee, as it does when the
/// connection's send buffer has no room for the page now (the send never
/// waits). Connection thread.
pub(crate) fn send_page(node: &Node, i: &PageInval, txn: u64, bytes: &[u8]) -> bool {
    if i.to_node == 0 || i.to_port == 0 || shim::peer_port() == 0 {
        return false;
    }
    let sock = {
        let mut p = node.peers.lock();
        let found = p.out.iter().position(|o| o.node == i.to_node);
        match found {
            Some(k)
                if p.out[k].ip == i.to_ip
                    && p.out[k].port == i.to_port
                    && p.out[k].token == i.to_token =>
            {
                p.out[k].sock.clone()
            }
            found => {
                // New, or the other node's session (or address) changed:
                // the peer thread connects.
                let o = OutPeer {
                    node: i.to_node,
                    ip: i.to_ip,
                    port: i.to_port,
                    token: i.to_token,
                    sock: None,
                    failed: None,
                };
                match found {
                    Some(k) => p.out[k] = o,
                    None => {
                        let _ = p.out.push(o, GFP_ATOMIC);
                    }
                }
                None
            }
        }
    };
    let Some(sock) = sock else {
        return false;
    };
    let g = Frame::PageGrant(PageGrant {
        oid: i.oid,
        page: i.page,
        write: u8::from(i.keep_read == 0),
        result: 0,
        after: 0,
        data: PageData::Bytes(bytes),
    });
    // Without waiting: a requester that stops reading must not hold up
    // this (the connection) thread; the page then goes from home.
    let sent = KVVec::from_elem(0u8, g.encoded_len(), GFP_KERNEL)
        .map_err(Error::from)
        .and_then(|mut buf| {
            g.encode(txn, &mut buf).map_err(|_| EINVAL)?;
            sock.send_nowait(&buf)
        });
    match sent {
        Ok(true) => {
            shim::Counter::inc(COUNT_SENT);
            true
        }
        Ok(false) => false,
        Err(e) => {
            // Part of the frame may have gone: the connection is unusable.
            pr_warn!(
                "page transfer to node {}: error {}\n",
                i.to_node,
                e.to_errno()
            );
            sock.shutdown();
            let mut p = node.peers.lock();
            if let Some(o) = p.out.iter_mut().find(|o| o.node == i.to_node) {
                o.sock = None;
                o.failed = Some(Instant::<Monotonic>::now());
            }
            false
        }
    }
}

/// The connecting thread's body: opens the connections [`send_page`]
/// asked for.
///
/// # Safety
///
/// As for [`dipc_rust_peer_thread`].
unsafe extern "C" fn dipc_rust_peer_connect(ctx: *mut c_void) -> c_int {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    while !shim::kthread_should_stop() {
        connect_wanted(&node);
        shim::kthread_sleep_ms(CONNECT_POLL_MS);
    }
    0
}

/// The accepting thread's body.
///
/// # Safety
///
/// Called only by the C thread function with the context (an [`Acceptor`]) given to
/// [`Thread::start_fn`], which stays alive until the thread has returned.
unsafe extern "C" fn dipc_rust_peer_thread(ctx: *mut c_void) -> c_int {
    // SAFETY: per the function's contract.
    let acc = unsafe { shim::borrow_ctx::<Acceptor>(ctx) };
    let port = shim::peer_port();
    let listener = loop {
        match Socket::listen(port, ACCEPT_TIMEOUT_MS) {
            Ok(l) => break l,
            Err(e) => {
                pr_warn!("peer port {}: error {}; retrying\n", port, e.to_errno());
                shim::kthread_sleep_ms(5000);
                if shim::kthread_should_stop() {
                    return 0;
                }
            }
        }
    };
    pr_info!("taking pages from other nodes on port {}\n", port);
    while !shim::kthread_should_stop() {
        reap(&acc);
        match listener.accept(CONNECT_TIMEOUT_MS, RECV_TIMEOUT_MS) {
            Ok((sock, ip)) => start_rx(&acc, sock, ip),
            Err(e) if e == EAGAIN || e == EINTR => {}
            Err(e) => {
                pr_warn!("peer port {}: accept error {}\n", port, e.to_errno());
                shim::kthread_sleep_ms(100);
            }
        }
    }
    0
}

/// Opens the connections [`send_page`] asked for (one attempt each, and
/// none to a node that failed less than [`RETRY_MS`] ago).
fn connect_wanted(node: &Node) {
    loop {
        let next = {
            let p = node.peers.lock();
            p.out
                .iter()
                .find(|o| {
                    o.sock.is_none() && o.failed.is_none_or(|t| t.elapsed().as_millis() >= RETRY_MS)
                })
                .map(|o| (o.node, o.ip, o.port, o.token))
        };
        let Some((to, ip, port, token)) = next else {
            return;
        };
        let r = Socket::connect(ip, port, CONNECT_TIMEOUT_MS, RECV_TIMEOUT_MS).and_then(|sock| {
            handshake_out(node, &sock, to, &token)?;
            Ok(Arc::new(sock, GFP_KERNEL)?)
        });
        if let Err(e) = &r {
            pr_warn!(
                "connection to node {} for page transfers: error {}\n",
                to,
                e.to_errno()
            );
        }
        let mut p = node.peers.lock();
        match p
            .out
            .iter_mut()
            .find(|o| o.node == to && o.token == token && o.ip == ip && o.port == port)
        {
            Some(o) => match r {
                Ok(sock) => o.sock = Some(sock),
                Err(_) => o.failed = Some(Instant::<Monotonic>::now()),
            },
            // Replaced meanwhile (a newer session of that node): the next
            // round connects to that one.
            None => {}
        }
    }
}

/// Drops the receivers whose thread has returned.
fn reap(acc: &Acceptor) {
    let done = {
        let mut rx = acc.rx.lock();
        let mut done = KVec::new();
        let mut k = 0;
        while k < rx.len() {
            if rx[k].0.done.load(Relaxed) != 0 {
                if let Ok(r) = rx.remove(k) {
                    let _ = done.push(r, GFP_KERNEL);
                }
            } else {
                k += 1;
            }
        }
        done
    };
    // Stopped (at once: they returned) with the lock released.
    drop(done);
}

fn start_rx(acc: &Acceptor, sock: Socket, ip: u32) {
    if acc.rx.lock().len() >= MAX_IN {
        shim::Counter::inc(COUNT_REFUSED);
        return;
    }
    let Ok(rx) = Arc::new(
        Rx {
            node: acc.node.clone(),
            grant: acc.grant,
            sock,
            ip,
            done: Atomic::new(0),
        },
        GFP_KERNEL,
    ) else {
        return;
    };
    match Thread::start_fn(rx.clone(), c"dipc-peer-rx", dipc_rust_peer_rx) {
        Ok(t) => {
            // Without memory for the entry, the thread is stopped as the
            // entry is dropped.
            let _ = acc.rx.lock().push((rx, t), GFP_KERNEL);
        }
        Err(_) => shim::Counter::inc(COUNT_REFUSED),
    }
}

/// Receives one frame from `sock` into `buf` (which holds `filled` bytes)
/// within `deadline_ms` of `start` (0: no deadline while frames come).
fn recv_frame(
    sock: &Socket,
    buf: &mut [u8],
    filled: &mut usize,
    start: Instant<Monotonic>,
    deadline_ms: i64,
) -> Result<usize> {
    loop {
        match wire::decode(&buf[..*filled]) {
            Ok((_, used)) => return Ok(used),
            Err(DecodeError::Incomplete { .. }) => {}
            Err(_) => return Err(EPROTO),
        }
        if deadline_ms != 0 && start.elapsed().as_millis() >= deadline_ms {
            return Err(ETIMEDOUT);
        }
        if shim::kthread_should_stop() {
            return Err(EINTR);
        }
        match sock.recv(&mut buf[*filled..]) {
            Ok(0) => return Err(ECONNRESET),
            Ok(n) => *filled += n,
            Err(e) if e == EAGAIN => {}
            Err(e) => return Err(e),
        }
    }
}

/// Drops the first `used` of `filled` bytes of `buf`.
fn consume(buf: &mut [u8], filled: &mut usize, used: usize) {
    buf.copy_within(used..*filled, 0);
    *filled -= used;
}

/// The opener's side: hello with the other node's token, then the proofs.
fn handshake_out(node: &Node, sock: &Socket, to: u32, token: &[u8; TOKEN_LEN]) -> Result {
    let secret = copy_secret(&node.member.lock().secret)?;
    let me = node.id();
    let mut own = [0u8; AUTH_LEN];
    shim::random_bytes(&mut own);
    send(
        sock,
        &Frame::PeerHello(PeerHello {
            node_id: me,
            token: *token,
            nonce: own,
        }),
    )?;
    let mut buf = KVec::new();
    buf.resize(HEADER_LEN + 2 * AUTH_LEN, 0, GFP_KERNEL)?;
    let mut filled = 0;
    let start = Instant::<Monotonic>::now();
    let used = recv_frame(sock, &mut buf, &mut filled, start, HANDSHAKE_MS)?;
    let theirs = match wire::decode(&buf[..used]).map(|(m, _)| m.frame) {
        Ok(Frame::Auth(a)) => a,
        _ => return Err(EPROTO),
    };
    // The acceptor proves the secret over our nonce; we prove it over its.
    let mac = match secret.as_deref() {
        Some(secret) => {
            let input = auth_input(AuthRole::PeerAcceptor, me, &own, &theirs.nonce);
            if !shim::tags_equal(&shim::hmac_sha256(secret, &input)?, &theirs.mac) {
                pr_warn!(
                    "node {} failed to prove the cluster secret; not sending it pages\n",
                    to
                );
                return Err(EACCES);
            }
            let input = auth_input(AuthRole::PeerConnector, me, &theirs.nonce, &own);
            shim::hmac_sha256(secret, &input)?
        }
        None => [0; AUTH_LEN],
    };
    send(
        sock,
        &Frame::Auth(Auth {
            mac,
            nonce: [0; AUTH_LEN],
        }),
    )
}

fn send(sock: &Socket, frame: &Frame<'_>) -> Result {
    let mut buf = [0u8; HEADER_LEN + 4 + TOKEN_LEN + AUTH_LEN + 2 * AUTH_LEN];
    let n = frame.encode(0, &mut buf).map_err(|_| EINVAL)?;
    sock.send_all(&buf[..n])
}

/// A receiver thread's body: the acceptor's side of the handshake, then
/// every page grant the other node sends.
///
/// # Safety
///
/// As for [`dipc_rust_peer_thread`], with an [`Rx`] context.
unsafe extern "C" fn dipc_rust_peer_rx(ctx: *mut c_void) -> c_int {
    // SAFETY: per the function's contract.
    let rx = unsafe { shim::borrow_ctx::<Rx>(ctx) };
    if let Err(e) = serve(&rx) {
        if e != EINTR && e != ECONNRESET {
            let [a, b, c, d] = rx.ip.to_be_bytes();
            pr_warn!(
                "page transfers from {}.{}.{}.{}: error {}; closing\n",
                a,
                b,
                c,
                d,
                e.to_errno()
            );
        }
    }
    rx.sock.shutdown();
    rx.done.store(1, Relaxed);
    0
}

fn serve(rx: &Rx) -> Result {
    let node = &rx.node;
    let mut buf = KVec::new();
    buf.resize(HEADER_LEN + MAX_PAYLOAD, 0, GFP_KERNEL)?;
    let mut filled = 0;
    let start = Instant::<Monotonic>::now();
    // The hello: the token of this node's current session.
    let used = recv_frame(&rx.sock, &mut buf, &mut filled, start, HANDSHAKE_MS)?;
    let hello = match wire::decode(&buf[..used]).map(|(m, _)| m.frame) {
        Ok(Frame::PeerHello(h)) => h,
        _ => return Err(EPROTO),
    };
    consume(&mut buf, &mut filled, used);
    let token = *node.token.lock();
    if token == [0; TOKEN_LEN] || !shim::tags_equal_token(&hello.token, &token) {
        shim::Counter::inc(COUNT_REFUSED);
        pr_warn!(
            "node {} offered pages with a token this node does not hold; refusing it\n",
            hello.node_id
        );
        return Err(EACCES);
    }
    let secret = copy_secret(&node.member.lock().secret)?;
    let mut own = [0u8; AUTH_LEN];
    shim::random_bytes(&mut own);
    let mac = match secret.as_deref() {
        Some(s) => shim::hmac_sha256(
            s,
            &auth_input(AuthRole::PeerAcceptor, hello.node_id, &hello.nonce, &own),
        )?,
        None => [0; AUTH_LEN],
    };
    send(&rx.sock, &Frame::Auth(Auth { mac, nonce: own }))?;
    let used = recv_frame(&rx.sock, &mut buf, &mut filled, start, HANDSHAKE_MS)?;
    let proof = match wire::decode(&buf[..used]).map(|(m, _)| m.frame) {
        Ok(Frame::Auth(a)) => a,
        _ => return Err(EPROTO),
    };
    consume(&mut buf, &mut filled, used);
    if let Some(s) = secret.as_deref() {
        let input = auth_input(AuthRole::PeerConnector, hello.node_id, &own, &hello.nonce);
        if !shim::tags_equal(&shim::hmac_sha256(s, &input)?, &proof.mac) {
            shim::Counter::inc(COUNT_REFUSED);
            pr_warn!(
                "node {} failed to prove the cluster secret; refusing its pages\n",
                hello.node_id
            );
            return Err(EACCES);
        }
    }
    loop {
        let used = recv_frame(&rx.sock, &mut buf, &mut filled, start, 0)?;
        let msg = wire::decode(&buf[..used]).map_err(|_| EPROTO)?.0;
        match msg.frame {
            Frame::PageGrant(g) if g.result == 0 && matches!(g.data, PageData::Bytes(_)) => {
                // Applied only while this node's session is the one the
                // token belongs to (a new session drops every page).
                let current = node.token.lock();
                if *current != token {
                    return Err(ECONNRESET);
                }
                if (rx.grant)(node, &g, msg.req_id) {
                    shim::Counter::inc(COUNT_RECEIVED);
                } else {
                    shim::Counter::inc(COUNT_STALE);
                }
            }
            other => {
                shim::Counter::inc(COUNT_REFUSED);
                pr_warn!(
                    "node {} sent a {:?} frame on a page connection; closing\n",
                    hello.node_id,
                    other.kind()
                );
                return Err(EPROTO);
            }
        }
        consume(&mut buf, &mut filled, used);
    }
}
