// SPDX-License-Identifier: GPL-2.0

//! The connection to the referee.
//!
//! One kernel thread per node connects to the referee, sends its hello,
//! answers pings, probes an idle connection, and reconnects with exponential
//! backoff when the connection fails. It is also the receive side of the
//! request transport ([`crate::transport`]): each reply goes to the task
//! waiting for its request id. Between reads it sends the exits of processes
//! that hold `SEM_UNDO` adjustments. The thread checks for `rmmod` at least
//! every [`RECV_TIMEOUT_MS`] (the socket's receive timeout), so unloading
//! never waits on the network for longer than one connect timeout.

use crate::{
    ids, msg, msglease,
    node::{copy_secret, ConnState, Node, Referees, SockAddr},
    sem,
    shim::{self, Socket},
    shm,
    wire::{
        self, auth_input, Auth, AuthRole, Class, DecodeError, ErrorCode, Frame, Hello, Message,
        ACK_EXIT_CALLS, ACK_RESUMED, AUTH_LEN, HEADER_LEN, MAX_PAYLOAD,
    },
};
use kernel::{
    prelude::*,
    sync::{atomic::Relaxed, Arc},
    time::{Instant, Monotonic},
};

/// Longest wait for the TCP handshake: Linux sends a lost SYN again after
/// 1 s, so on a lossy wide-area link one loss must not fail the connect
/// (Documentation/admin.md, "Wide-area links").
const CONNECT_TIMEOUT_MS: u32 = 3000;
/// Socket receive timeout: how often the thread looks up from `recv`.
const RECV_TIMEOUT_MS: u32 = 100;
const BACKOFF_MIN_MS: u32 = 100;
const BACKOFF_MAX_MS: u32 = 5000;
// After `Node::keepalive_ms` without a frame from the referee the connection
// is dead (reconnect); after a third of it, send a ping. The referee's own
// keepalive is longer, so a node cut off from it gives up its pages before
// the referee hands them to anyone else.
/// Request id of the hello.
const HELLO_REQ: u64 = 1;

/// The connection thread's body.
///
/// # Safety
///
/// Called only by the C thread function, with the context given to
/// [`shim::Thread::start`], which stays alive until the thread has returned.
#[no_mangle]
unsafe extern "C" fn dipc_rust_thread(ctx: *mut c_void) -> c_int {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    if let Some(conf) = Conf::of(&node) {
        run(&node, &conf);
    }
    node.conn.lock().state = ConnState::Stopped;
    0
}

/// What the thread connects with, read once when it starts (a join starts
/// a new thread).
struct Conf {
    /// The referees, tried in turn: one leads, the others refuse nodes.
    referees: Referees,
    /// The one tried now (an index into `referees`, counting round).
    at: core::cell::Cell<usize>,
    /// A referee answered `NotLeader` this round: they are up and
    /// electing, so the next round comes after the shortest backoff.
    electing: core::cell::Cell<bool>,
    node_id: u32,
    secret: Option<KVec<u8>>,
}

impl Conf {
    fn of(node: &Node) -> Option<Conf> {
        let m = node.member.lock();
        let secret = copy_secret(&m.secret).ok()?;
        Some(Conf {
            referees: m.referee?,
            at: core::cell::Cell::new(0),
            electing: core::cell::Cell::new(false),
            node_id: node.id(),
            secret,
        })
    }

    /// The referee tried now.
    fn addr(&self) -> SockAddr {
        self.referees.get(self.at.get())
    }
}

fn run(node: &Node, conf: &Conf) {
    let mut buf = KVec::new();
    let mut backoff = BACKOFF_MIN_MS;
    // Log the first failure of an outage, not every retry.
    let mut failing = false;
    // When the last session's connection was lost.
    let mut lost: Option<Instant<Monotonic>> = None;
    while !shim::kthread_should_stop() {
        if node.leaving.load(Relaxed) != 0 {
            // A leave is under way: no new session until it is over (it
            // stops this thread) or has failed. If the connection went
            // before the referee answered it, the leave's call fails like
            // any other after `reconnect_wait_ms`.
            fail_if_lost_too_long(node, lost);
            shim::kthread_sleep_ms(BACKOFF_MIN_MS);
            continue;
        }
        node.conn.lock().state = ConnState::Connecting;
        let addr = conf.addr();
        let result = buf
            .resize(HEADER_LEN + MAX_PAYLOAD, 0, GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|()| Socket::connect(addr.ip, addr.port, CONNECT_TIMEOUT_MS, RECV_TIMEOUT_MS))
            .and_then(|sock| Ok(Arc::new(sock, GFP_KERNEL)?))
            .and_then(|sock| {
                let r = session(node, conf, &sock, &mut buf, &mut backoff, &mut failing);
                // Senders stop using the socket. Calls in flight stay: if
                // the next connection resumes our session they are sent
                // again (the referee carries each out once). Pages stay
                // too, but every access waits until that is known.
                sock.shutdown();
                if node.tx.lock().sock.take().is_some() {
                    lost = Some(Instant::<Monotonic>::now());
                    shm::suspend(node);
                }
                r
            });
        fail_if_lost_too_long(node, lost);
        match result {
            Ok(()) => break,
            // Interrupted by `rmmod`: not a failure worth a log line.
            Err(_) if shim::kthread_should_stop() => break,
            // Replicated referees: this one does not lead; the next at
            // once, backing off only after a whole round.
            Err(e) if conf.referees.len() > 1 && (conf.at.get() + 1) % conf.referees.len() != 0 => {
                conf.at.set(conf.at.get() + 1);
                node.conn.lock().state = ConnState::Backoff(e);
                shim::kthread_sleep_ms(BACKOFF_MIN_MS);
                continue;
            }
            Err(e) => {
                if !failing {
                    pr_warn!("referee {}: error {}; retrying\n", addr, e.to_errno());
                    failing = true;
                }
                node.conn.lock().state = ConnState::Backoff(e);
            }
        }
        if conf.electing.replace(false) {
            // Replicated referees without a leader yet: soon there is one.
            shim::kthread_sleep_ms(BACKOFF_MIN_MS);
        } else {
            shim::kthread_sleep_ms(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX_MS);
        }
        conf.at.set(conf.at.get() + 1);
    }
}

/// No session for `reconnect_wait_ms` since `lost`: calls in flight fail
/// (they may or may not have been carried out).
fn fail_if_lost_too_long(node: &Node, lost: Option<Instant<Monotonic>>) {
    if let Some(t) = lost {
        if t.elapsed().as_millis() >= i64::from(node.reconnect_wait_ms) && node.waited() > 0 {
            pr_warn!(
                "no referee for {} ms; failing {} call(s) in flight\n",
                t.elapsed().as_millis(),
                node.waited()
            );
            node.fail_waited();
        }
    }
}

fn send(node: &Node, sock: &Socket, frame: Frame<'_>, req_id: u64) -> Result {
    node.send_on(sock, &frame, req_id)
}

/// Sends the queued exits of processes with `SEM_UNDO` adjustments, each
/// as a quiet call: it stays in flight, and goes again if the session
/// resumes, until the referee answers it or a later call (the referee
/// carries out a repeat once). To a referee that does not take exits as
/// calls (`ACK_EXIT_CALLS`), one-way, as before.
fn send_exits(node: &Node) -> Result {
    let mut pids = [0u32; 32];
    loop {
        let n = node.take_exits(&mut pids);
        if n == 0 {
            return Ok(());
        }
        for (i, &pid) in pids[..n].iter().enumerate() {
            let exit = Frame::Exit { pid };
            let sent = if node.exit_calls.load(Relaxed) != 0 {
                node.start_quiet_call(&exit)
            } else {
                node.send_oneway(&exit)
            };
            if let Err(e) = sent {
                node.requeue_exits(&pids[i..n]);
                return Err(e);
            }
        }
    }
}

/// Runs one connection until it fails (`Err`) or the thread is told to stop.
fn session(
    node: &Node,
    conf: &Conf,
    sock: &Arc<Socket>,
    buf: &mut [u8],
    backoff: &mut u32,
    failing: &mut bool,
) -> Result {
    node.conn.lock().state = ConnState::Handshake;
    let mut name = [0u8; 65];
    let name = shim::nodename(&mut name);
    let hello = Frame::Hello(Hello {
        node_id: conf.node_id,
        features: 0,
        incarnation: node.incarnation.load(Relaxed),
        peer_port: shim::peer_port(),
        name,
    });
    send(node, sock, hello, HELLO_REQ)?;

    let mut auth = AuthState::default();
    let mut filled = 0;
    let mut heard = Instant::<Monotonic>::now();
    let mut pinged = false;
    let dead_ms = i64::from(node.keepalive_ms);
    // Invalidations held for a page's time quantum, and the receive
    // timeout set now (shortened while one is held, to answer it in time).
    let mut held = shm::Held::default();
    let mut timeout = RECV_TIMEOUT_MS;
    loop {
        if shim::kthread_should_stop() {
            return Ok(());
        }
        if node.conn.lock().state == ConnState::Connected {
            send_exits(node)?;
            shm::send_nattch_updates(node, sock)?;
            held.run_due(node, sock)?;
        }
        let want = held
            .next_due_ms()
            .map_or(RECV_TIMEOUT_MS, |ms| ms.clamp(1, RECV_TIMEOUT_MS));
        if want != timeout {
            sock.set_recv_timeout(want);
            timeout = want;
        }
        match sock.recv(&mut buf[filled..]) {
            Ok(0) => return Err(ECONNRESET),
            Ok(n) => {
                filled += n;
                heard = Instant::<Monotonic>::now();
                pinged = false;
            }
            Err(e) if e == EAGAIN => {
                let idle_ms = heard.elapsed().as_millis();
                if idle_ms >= dead_ms {
                    pr_warn!("referee silent for {} ms; reconnecting\n", idle_ms);
                    return Err(ETIMEDOUT);
                }
                if idle_ms >= dead_ms / 3 && !pinged {
                    send(
                        node,
                        sock,
                        Frame::Ping {
                            nonce: idle_ms as u64,
                        },
                        0,
                    )?;
                    pinged = true;
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        let mut start = 0;
        loop {
            match wire::decode(&buf[start..filled]) {
                Ok((msg, used)) => {
                    node.conn.lock().frames_in += 1;
                    let raw = &buf[start..start + used];
                    let ctx = Ctx {
                        auth: &mut auth,
                        held: &mut held,
                        backoff,
                        failing,
                    };
                    handle(node, conf, sock, msg, raw, ctx)?;
                    start += used;
                }
                // `buf` holds a maximum-size frame, so a whole frame always fits.
                Err(DecodeError::Incomplete { .. }) => break,
                Err(e) => {
                    pr_warn!("bad frame from the referee ({:?}); closing\n", e);
                    return Err(EPROTO);
                }
            }
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// Where this connection's authentication stands. A node with a secret
/// answers the referee's challenge with its tag and a nonce of its own, and
/// accepts the hello ack only after the referee's tag over that nonce
/// checked out: a referee that skips the challenge, or cannot prove the
/// secret, is refused.
#[derive(Default)]
struct AuthState {
    /// Our nonce, once we answered a challenge.
    own: Option<[u8; AUTH_LEN]>,
    /// The referee proved it holds the secret.
    proven: bool,
}

fn answer_challenge(
    node: &Node,
    conf: &Conf,
    sock: &Socket,
    challenge: &[u8; AUTH_LEN],
    auth: &mut AuthState,
) -> Result {
    let Some(secret) = conf.secret.as_deref() else {
        pr_warn!("the referee requires authentication; give dipc a secret_file= (or dipcctl join --secret-file)\n");
        return Err(EACCES);
    };
    let mut own = [0u8; AUTH_LEN];
    shim::random_bytes(&mut own);
    let input = auth_input(AuthRole::Node, conf.node_id, challenge, &own);
    let mac = shim::hmac_sha256(secret, &input)?;
    auth.own = Some(own);
    send(node, sock, Frame::Auth(Auth { mac, nonce: own }), HELLO_REQ)
}

fn check_referee_proof(conf: &Conf, a: &Auth, auth: &mut AuthState) -> Result {
    let (Some(secret), Some(own)) = (conf.secret.as_deref(), auth.own) else {
        pr_warn!("unexpected proof from the referee; closing\n");
        return Err(EPROTO);
    };
    let input = auth_input(AuthRole::Referee, conf.node_id, &own, &[0; AUTH_LEN]);
    let want = shim::hmac_sha256(secret, &input)?;
    if !shim::tags_equal(&want, &a.mac) {
        pr_warn!("the referee failed to prove the cluster secret; refusing it\n");
        return Err(EACCES);
    }
    auth.proven = true;
    Ok(())
}

/// What [`handle`] may change of the session's state.
struct Ctx<'a> {
    auth: &'a mut AuthState,
    held: &'a mut shm::Held,
    backoff: &'a mut u32,
    failing: &'a mut bool,
}

fn handle(
    node: &Node,
    conf: &Conf,
    sock: &Arc<Socket>,
    msg: Message<'_>,
    raw: &[u8],
    ctx: Ctx<'_>,
) -> Result {
    let Ctx {
        auth,
        held,
        backoff,
        failing,
    } = ctx;
    let state = node.conn.lock().state;
    match msg.frame {
        Frame::Challenge { nonce } if state == ConnState::Handshake && auth.own.is_none() => {
            answer_challenge(node, conf, sock, &nonce, auth)
        }
        Frame::Auth(a) if state == ConnState::Handshake && !auth.proven => {
            check_referee_proof(conf, &a, auth)
        }
        Frame::HelloAck(_)
            if state == ConnState::Handshake && conf.secret.is_some() && !auth.proven =>
        {
            pr_warn!("the referee did not authenticate itself; refusing it\n");
            Err(EACCES)
        }
        Frame::HelloAck(ack) if state == ConnState::Handshake && msg.req_id == HELLO_REQ => {
            if ack.node_id != conf.node_id {
                pr_warn!(
                    "referee acknowledged node {}, we are {}\n",
                    ack.node_id,
                    conf.node_id
                );
                return Err(EPROTO);
            }
            let resumed = ack.features & ACK_RESUMED != 0;
            node.exit_calls
                .store(u32::from(ack.features & ACK_EXIT_CALLS != 0), Relaxed);
            // News of owners and modes sent on the old connection may be
            // lost; what is kept must not overwrite newer answers.
            node.shadows.making().clear();
            {
                let mut conn = node.conn.lock();
                conn.state = ConnState::Connected;
                conn.session = ack.session;
                conn.handshakes += 1;
                conn.referee_now = Some(conf.addr());
                if resumed {
                    conn.resumes += 1;
                }
            }
            pr_info!(
                "connected to referee {} as node {} (session {:#x}, {})\n",
                conf.addr(),
                conf.node_id,
                ack.session,
                if resumed { "resumed" } else { "new" }
            );
            // Other nodes send pages with this token from now on; pages
            // sent with an earlier one are refused (under this lock, so
            // none is applied after the copies are dropped below).
            let mut token = node.token.lock();
            *token = ack.token;
            if resumed {
                drop(token);
                // Calls in flight go again, in order, before any new one.
                node.resend_all(sock)?;
            } else {
                // A new session: what the old one had is gone at the
                // referee. Calls in flight fail; page copies are dropped
                // (stores not yet sent are lost).
                node.fail_all();
                shm::connection_lost(node);
                msglease::connection_lost(node);
                drop(token);
            }
            shm::resume(node);
            *backoff = BACKOFF_MIN_MS;
            *failing = false;
            // Requests may go out from now on.
            node.tx.lock().sock = Some(sock.clone());
            Ok(())
        }
        Frame::GetReply(_)
        | Frame::Status { .. }
        | Frame::SemCtlReply(_)
        | Frame::MsgRcvReply(_)
        | Frame::MsgSndReply(_)
        | Frame::MsgCtlReply(_)
        | Frame::ShmCtlReply(_)
            if state == ConnState::Connected && msg.req_id != 0 =>
        {
            // A lease granted with the answer is taken up (or given back)
            // here, in the order of the frames, before any recall of it.
            match &msg.frame {
                Frame::MsgRcvReply(r) => msglease::recv_answer(node, r),
                Frame::MsgSndReply(r) => msglease::send_answer(node, r),
                _ => {}
            }
            node.deliver(msg.req_id, raw)
        }
        Frame::MsgRecall { oid, lease } if state == ConnState::Connected => {
            msglease::recall(node, oid, lease);
            Ok(())
        }
        Frame::MsgMore(m) if state == ConnState::Connected => {
            msglease::more(node, &m);
            Ok(())
        }
        Frame::Perm { class, oid, perm } if state == ConnState::Connected => {
            ids::perm_changed(node, class, oid, perm);
            Ok(())
        }
        Frame::Removed { class, oid } if state == ConnState::Connected => {
            match class {
                Class::Sem => sem::removed(node, oid),
                Class::Msg => msg::removed(node, oid),
                Class::Shm => shm::removed(node, oid),
            }
            Ok(())
        }
        Frame::PageGrant(g) if state == ConnState::Connected => {
            shm::grant_or_hold(node, &g, msg.req_id, held);
            Ok(())
        }
        Frame::PageInval(i) if state == ConnState::Connected => {
            shm::inval(node, sock, msg.req_id, &i, held)
        }
        Frame::Ping { nonce } => send(node, sock, Frame::Pong { nonce }, msg.req_id),
        Frame::Pong { .. } => Ok(()),
        Frame::Error {
            code: ErrorCode::NotLeader,
        } => {
            // One of several referees, not leading now: the next one.
            pr_info!("referee {} does not lead; trying the next\n", conf.addr());
            conf.electing.set(true);
            Err(ECONNREFUSED)
        }
        Frame::Error { code } => {
            pr_warn!("referee refused us: {:?}\n", code);
            Err(ECONNREFUSED)
        }
        other => {
            pr_warn!(
                "unexpected {:?} frame from the referee; closing\n",
                other.kind()
            );
            Err(EPROTO)
        }
    }
}
