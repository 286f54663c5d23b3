//! The referee's network side against real sockets: a test peer that speaks
//! the protocol (and breaks it), and the keepalive.

use super::*;
use crate::session::FrameBuf;
use dipc_wire::{Class, Cred, Get, Hello, Kind, HEADER_LEN, MAGIC, MAX_NAME_LEN, VERSION};

const IPC_CREAT: i32 = 0o1000;

/// A referee serving on a loopback port of its own.
fn start(keepalive: Duration) -> (Arc<Referee>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let referee = Arc::new(Referee::new(addr, Limits::default()).with_keepalive(keepalive));
    let r = referee.clone();
    std::thread::spawn(move || serve(r, listener));
    (referee, addr)
}

/// What a peer received: a frame's kind, request id and, for the few the
/// tests look into, a value.
#[derive(Debug, PartialEq)]
enum Got {
    Frame(Kind, u64, i64),
    /// The referee closed the connection (EOF or reset).
    Closed,
}

/// A test node speaking raw bytes to the referee.
struct Peer {
    s: TcpStream,
    frames: FrameBuf,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Peer {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Peer {
            s,
            frames: FrameBuf::default(),
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        // The referee may already have closed: a refused write is fine.
        let _ = self.s.write_all(bytes);
    }

    fn send(&mut self, req: u64, frame: Frame<'_>) {
        self.raw(&bytes(req, frame));
    }

    /// `f` of the next frame, or `None` when the referee closed; panics
    /// after the read timeout.
    fn next<T>(&mut self, mut f: impl FnMut(dipc_wire::Message<'_>) -> T) -> Option<T> {
        let mut buf = [0u8; 4096];
        loop {
            match self.frames.next_with(|m, _| f(m)) {
                Ok(Some(g)) => return Some(g),
                Ok(None) => {}
                Err(e) => panic!("the referee sent a bad frame: {e}"),
            }
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.frames.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no answer from the referee: {e}"),
            }
        }
    }

    /// The next frame, or `Closed`; panics after the read timeout.
    fn recv(&mut self) -> Got {
        self.next(|m| {
            let v = match m.frame {
                Frame::Status { result } => result,
                Frame::GetReply(g) => i64::from(g.result),
                Frame::HelloAck(a) => i64::from(a.node_id),
                Frame::Error { code } => code as i64,
                Frame::Ping { nonce } | Frame::Pong { nonce } => nonce as i64,
                _ => 0,
            };
            Got::Frame(m.frame.kind(), m.req_id, v)
        })
        .unwrap_or(Got::Closed)
    }

    /// Reads until the referee closes; returns the kinds it sent first.
    fn until_closed(&mut self) -> Vec<Kind> {
        let mut kinds = Vec::new();
        loop {
            match self.recv() {
                Got::Closed => return kinds,
                Got::Frame(k, _, _) => kinds.push(k),
            }
        }
    }

    /// Answers the referee's pings for `d`; false if it closed.
    fn answer_pings(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            while let Some((req, nonce)) = self
                .frames
                .next_with(|m, _| match m.frame {
                    Frame::Ping { nonce } => (m.req_id, nonce),
                    f => panic!("unexpected {:?}", f.kind()),
                })
                .unwrap()
            {
                self.send(req, Frame::Pong { nonce });
            }
            self.s
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            match self.s.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.frames.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return false,
                Err(_) => {}
            }
        }
        self.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        true
    }

    fn hello(&mut self, node_id: u32) {
        self.send(
            1,
            Frame::Hello(Hello {
                node_id,
                features: 0,
                incarnation: 1,
                peer_port: 0,
                name: b"test-peer",
            }),
        );
        assert_eq!(
            self.recv(),
            Got::Frame(Kind::HelloAck, 1, i64::from(node_id))
        );
    }

    /// One operation on semaphore 0 of set `oid`, by process `pid`.
    fn semop(&mut self, req: u64, oid: u64, pid: u32, op: i16, flg: i16) {
        let sops = dipc_wire::Sembuf { num: 0, op, flg }.to_bytes();
        self.send(
            req,
            Frame::SemOp(dipc_wire::SemOp {
                oid,
                pid,
                cred: Cred::new(0, 0, 0),
                sops: dipc_wire::Sops::new(&sops).unwrap(),
            }),
        );
    }

    /// `semget(key, 1, IPC_CREAT | 0666)`: the reply's result.
    fn semget(&mut self, req: u64, key: i32) -> Got {
        self.send(
            req,
            Frame::Get(Get {
                class: Class::Sem,
                key,
                flags: IPC_CREAT | 0o666,
                size: 1,
                cred: Cred::new(0, 0, 0),
                pid: 100,
            }),
        );
        self.recv()
    }
}

fn bytes(req: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut v = vec![0; frame.encoded_len()];
    let n = frame.encode(req, &mut v).unwrap();
    v.truncate(n);
    v
}

/// A header with every field chosen by the test.
fn header(magic: u32, version: u16, kind: u16, len: u32, clock: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&magic.to_le_bytes());
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&kind.to_le_bytes());
    h.extend_from_slice(&7u64.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&clock.to_le_bytes());
    h
}

/// Waits until the referee counts `n` open connections.
fn wait_open(referee: &Referee, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while referee.open.load(Ordering::Relaxed) != n {
        assert!(
            Instant::now() < deadline,
            "{} connections still open, expected {n}",
            referee.open.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_node_is_served() {
    let (referee, addr) = start(Duration::from_secs(30));
    let mut p = Peer::connect(addr);
    p.hello(3);
    assert_eq!(p.semget(2, 0x42), Got::Frame(Kind::GetReply, 2, 0));
    p.send(3, Frame::Ping { nonce: 9 });
    assert_eq!(p.recv(), Got::Frame(Kind::Pong, 3, 9));
    let st = referee.status();
    assert_eq!(st.nodes.len(), 1);
    assert_eq!(st.objects.len(), 1);
    drop(p);
    wait_open(&referee, 0);
    assert!(referee.status().nodes.is_empty());
}

/// An `IPC_SET` is told to every node (`Perm`), to the caller's node
/// before its answer, so that node's shadow has the new owner when the call
/// returns; a refused one is told to nobody.
#[test]
fn ipc_set_is_told_to_every_node_first() {
    let (_referee, addr) = start(Duration::from_secs(30));
    let mut a = Peer::connect(addr);
    a.hello(3);
    let mut b = Peer::connect(addr);
    b.hello(4);
    let oid = {
        a.send(
            2,
            Frame::Get(Get {
                class: Class::Sem,
                key: 0x43,
                flags: IPC_CREAT | 0o600,
                size: 1,
                cred: Cred::new(1000, 1000, 0),
                pid: 100,
            }),
        );
        a.next(|m| match m.frame {
            Frame::GetReply(g) => {
                assert_eq!((g.perm.uid, g.perm.cuid, g.perm.mode), (1000, 1000, 0o600));
                g.oid
            }
            f => panic!("unexpected {:?}", f.kind()),
        })
        .unwrap()
    };
    let set = |p: &mut Peer, req: u64, cred: Cred| {
        p.send(
            req,
            Frame::SemCtl(dipc_wire::SemCtl {
                oid,
                pid: 1,
                cred,
                cmd: dipc_wire::semcmd::IPC_SET,
                semnum: 0,
                val: 0,
                set_uid: 2000,
                set_gid: 2001,
                set_mode: 0o1640,
                vals: dipc_wire::Vals::EMPTY,
            }),
        );
    };
    // Someone else: refused, and nobody hears of it.
    set(&mut a, 3, Cred::new(5, 5, 0));
    assert_eq!(a.recv(), Got::Frame(Kind::SemCtlReply, 3, 0));
    // The owner: the news first, then the answer; the other node too.
    set(&mut a, 4, Cred::new(1000, 1000, 0));
    let perm = |m: dipc_wire::Message<'_>| match m.frame {
        Frame::Perm {
            class,
            oid: o,
            perm,
        } => {
            assert_eq!((class, o, m.req_id), (Class::Sem, oid, 0));
            (perm.uid, perm.gid, perm.cuid, perm.cgid, perm.mode)
        }
        f => panic!("unexpected {:?}", f.kind()),
    };
    let told = Some((2000, 2001, 1000, 1000, 0o640));
    assert_eq!(a.next(perm), told);
    assert_eq!(a.recv(), Got::Frame(Kind::SemCtlReply, 4, 0));
    assert_eq!(b.next(perm), told);
}

/// The metrics count what went over the wire and time each request; a
/// page request is timed until its grant, and a peer refused by the
/// allow list or closed for a bad frame is counted.
#[test]
fn metrics_count_frames_and_time_requests() {
    let (referee, addr) = start(Duration::from_secs(30));
    let mut p = Peer::connect(addr);
    p.hello(3);
    for i in 0..5 {
        assert_eq!(
            p.semget(10 + i, 0x42 + i as i32),
            Got::Frame(Kind::GetReply, 10 + i, 0)
        );
    }
    p.send(20, Frame::Ping { nonce: 1 });
    assert_eq!(p.recv(), Got::Frame(Kind::Pong, 20, 1));
    let m = referee.metrics.snapshot();
    assert_eq!(m.counters["connections"], 1);
    assert_eq!(m.counters["joins"], 1);
    assert_eq!(m.counters["resumes"], 0);
    assert_eq!(m.frames_in["hello"], 1);
    assert_eq!(m.frames_in["get"], 5);
    assert_eq!(m.frames_in["ping"], 1);
    assert_eq!(m.frames_out["hello_ack"], 1);
    assert_eq!(m.frames_out["get_reply"], 5);
    assert_eq!(m.frames_out["pong"], 1);
    assert_eq!(m.request_us["get"].count, 5);
    assert!(m.request_us["get"].p99_us <= m.request_us["get"].max_us);
    assert!(
        !m.request_us.contains_key("ping"),
        "a ping is not a request"
    );
    let sent = m.counters["bytes_in"];
    assert!(sent > 6 * HEADER_LEN as u64, "{sent} bytes in");

    // A bad frame: counted, and the connection closes.
    p.raw(&header(MAGIC ^ 1, VERSION, Kind::Ping as u16, 0, 0));
    assert_eq!(
        p.recv(),
        Got::Frame(Kind::Error, 0, ErrorCode::Protocol as i64)
    );
    wait_open(&referee, 0);
    let m = referee.metrics.snapshot();
    assert_eq!(m.counters["bad_frames"], 1);
    assert_eq!(m.frames_out["error"], 1);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["request_us"]["get"]["count"], 5);
}

/// Every malformed, oversized, out-of-range or out-of-order frame closes
/// the connection at once (well before the keepalive), after an error
/// frame where one can still be sent; the referee keeps serving others,
/// and no connection thread or registration is left behind.
#[test]
fn bad_frames_close_the_connection_and_nothing_else() {
    let (referee, addr) = start(Duration::from_secs(60));
    let hello = bytes(
        1,
        Frame::Hello(Hello {
            node_id: 5,
            features: 0,
            incarnation: 1,
            peer_port: 0,
            name: b"n",
        }),
    );
    let mut cases: Vec<(String, bool, Vec<u8>)> = vec![
        ("garbage".into(), false, vec![0xa5; 64]),
        (
            "bad magic".into(),
            false,
            header(0x1234_5678, VERSION, 1, 0, 0),
        ),
        ("bad version".into(), false, header(MAGIC, 9, 1, 0, 0)),
        (
            "unknown kind".into(),
            false,
            header(MAGIC, VERSION, 999, 0, 0),
        ),
        (
            "oversized".into(),
            false,
            header(MAGIC, VERSION, 6, u32::MAX, 0),
        ),
        (
            "get before hello".into(),
            false,
            bytes(
                2,
                Frame::Get(Get {
                    class: Class::Sem,
                    key: 1,
                    flags: 0,
                    size: 1,
                    cred: Cred::new(0, 0, 0),
                    pid: 1,
                }),
            ),
        ),
        ("second hello".into(), true, hello.clone()),
        (
            "referee-only frame".into(),
            true,
            bytes(4, Frame::Status { result: 0 }),
        ),
        (
            "name too long".into(),
            false,
            bytes(
                1,
                Frame::Hello(Hello {
                    node_id: 5,
                    features: 0,
                    incarnation: 1,
                    peer_port: 0,
                    name: &[b'x'; MAX_NAME_LEN],
                }),
            )
            .into_iter()
            .enumerate()
            // Announce one more name byte than the encoder allows.
            .map(|(i, b)| if i == 16 { b + 1 } else { b })
            .chain([b'x'])
            .collect(),
        ),
    ];
    // Every kind with a payload that is too short for it (or, for Leave,
    // one that should be empty).
    for kind in 1..=38u16 {
        let mut f = header(MAGIC, VERSION, kind, 1, 0);
        f.push(0xff);
        cases.push((format!("kind {kind}, 1-byte payload"), true, f));
    }
    for (what, after_hello, frame) in &cases {
        let mut p = Peer::connect(addr);
        if *after_hello {
            p.hello(5);
        }
        let t = Instant::now();
        p.raw(frame);
        let kinds = p.until_closed();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: closed only after {:?}",
            t.elapsed()
        );
        assert!(
            kinds.iter().all(|k| *k == Kind::Error),
            "{what}: the referee answered {kinds:?}"
        );
        // A good node is still served.
        let mut good = Peer::connect(addr);
        good.hello(9);
        assert_eq!(
            good.semget(2, 0x43),
            Got::Frame(Kind::GetReply, 2, 0),
            "{what}"
        );
        drop(good);
        wait_open(&referee, 0);
        assert!(
            referee.status().nodes.is_empty(),
            "{what}: a node stayed registered"
        );
    }
    assert_eq!(referee.status().waiters, 0);
}

/// A frame cut short and then silence: the connection is closed by the
/// keepalive, not left waiting forever for the rest.
#[test]
fn a_truncated_frame_times_out() {
    let (referee, addr) = start(Duration::from_millis(600));
    let mut p = Peer::connect(addr);
    p.hello(4);
    let whole = bytes(2, Frame::Ping { nonce: 1 });
    p.raw(&whole[..whole.len() - 3]);
    let t = Instant::now();
    // The referee pings the silent node, then gives up on it.
    assert_eq!(p.until_closed(), vec![Kind::Ping]);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    wait_open(&referee, 0);
}

/// Found by the review of 3e25eae: a node sent `Exit` once, one-way, so an
/// exit lost with a connection (or with a leader) left the dead process's
/// `SEM_UNDO` adjustments in place for good. An `Exit` with a request id
/// is now a call: answered, kept in flight by the node and sent again on
/// a resumed session, and a repeat is answered from the reply cache
/// without being carried out again, so a later process with the same pid
/// keeps its own adjustments.
#[test]
fn an_exit_sent_again_on_a_resumed_session_is_carried_out_once() {
    let (referee, addr) = start(Duration::from_secs(30));
    let mut p = Peer::connect(addr);
    // The referee says it takes exits as calls.
    assert_eq!(
        p.hello_as(5, 77)
            .map(|f| f & (ACK_RESUMED | dipc_wire::ACK_EXIT_CALLS)),
        Some(dipc_wire::ACK_EXIT_CALLS)
    );
    assert_eq!(p.semget(2, 0x46), Got::Frame(Kind::GetReply, 2, 0));
    let oid = referee.status().objects[0].oid;
    // Process 100 takes +1 with SEM_UNDO and exits.
    p.semop(3, oid, 100, 1, 0x1000);
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 3, 0));
    p.send(4, Frame::Exit { pid: 100 });
    assert_eq!(
        p.recv(),
        Got::Frame(Kind::Status, 4, 0),
        "an exit call is answered"
    );
    assert_eq!(p.getval(5, oid), 0, "the exit did not undo");
    // A new process 100 takes +1 with SEM_UNDO.
    p.semop(6, oid, 100, 1, 0x1000);
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 6, 0));
    // The connection breaks; the session resumes, and the exit (whose
    // answer the node may not have had) goes again.
    drop(p);
    let mut p = Peer::connect(addr);
    assert_eq!(
        p.hello_as(5, 77).map(|f| f & ACK_RESUMED),
        Some(ACK_RESUMED)
    );
    p.send(4, Frame::Exit { pid: 100 });
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 4, 0));
    assert_eq!(p.getval(7, oid), 1, "a repeated exit undid a later process");
    // An exit without a request id (an older node) is one-way, as before.
    p.send(0, Frame::Exit { pid: 100 });
    assert_eq!(p.getval(8, oid), 0);
}

/// A registered node that stops talking is pinged after a third of the
/// keepalive and declared dead after the keepalive: it leaves the
/// registry, and its SEM_UNDO adjustments are applied.
#[test]
fn a_silent_node_is_declared_dead() {
    let (referee, addr) = start(Duration::from_millis(900));
    let mut a = Peer::connect(addr);
    a.hello(1);
    assert_eq!(a.semget(2, 0x44), Got::Frame(Kind::GetReply, 2, 0));
    let oid = referee.status().objects[0].oid;
    // Node 1 takes +1 with SEM_UNDO.
    a.semop(3, oid, 100, 1, 0x1000);
    assert_eq!(a.recv(), Got::Frame(Kind::Status, 3, 0));
    // Node 2 waits for the value to drop back to 0 (a wait-for-zero).
    let mut b = Peer::connect(addr);
    b.hello(2);
    b.semop(2, oid, 200, 0, 0);
    // Node 1 goes silent (its machine died); node 2 keeps answering pings.
    let t = Instant::now();
    let got = loop {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "node 1 never declared dead"
        );
        match b.recv() {
            Got::Frame(Kind::Ping, req, nonce) => {
                b.send(
                    req,
                    Frame::Pong {
                        nonce: nonce as u64,
                    },
                );
            }
            other => break other,
        }
    };
    // The waiter completes because node 1's undo brought the value to 0.
    assert_eq!(got, Got::Frame(Kind::Status, 2, 0));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "node 1 declared dead after {waited:?}"
    );
    let nodes: Vec<u32> = referee.status().nodes.iter().map(|n| n.node_id).collect();
    assert_eq!(nodes, vec![2]);
    // Node 1's socket was closed (after a ping it never answered).
    let kinds = a.until_closed();
    assert!(kinds.iter().all(|k| *k == Kind::Ping), "{kinds:?}");
    // Node 2, which answers pings, outlives several keepalives.
    assert!(
        b.answer_pings(Duration::from_millis(2500)),
        "node 2 was disconnected"
    );
    assert_eq!(b.semget(9, 0x45), Got::Frame(Kind::GetReply, 9, 0));
    assert_eq!(referee.status().nodes.len(), 1);
}

fn start_with(secret: Option<&[u8]>, allow: &[&str]) -> (Arc<Referee>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let secret = secret.map(|s| Secret::new(s).unwrap());
    let allow = allow.iter().map(|a| a.parse().unwrap()).collect();
    let referee = Arc::new(Referee::new(addr, Limits::default()).with_access(secret, allow));
    let r = referee.clone();
    std::thread::spawn(move || serve(r, listener));
    (referee, addr)
}

/// Runs the node's side of the handshake with `key`; returns what the
/// referee sent after the node's proof.
fn authenticate(p: &mut Peer, node_id: u32, key: &[u8]) -> Vec<Got> {
    let key = Secret::new(key).unwrap();
    p.send(
        1,
        Frame::Hello(Hello {
            node_id,
            features: 0,
            incarnation: 1,
            peer_port: 0,
            name: b"test-peer",
        }),
    );
    let challenge = p
        .next(|m| match m.frame {
            Frame::Challenge { nonce } => nonce,
            f => panic!("expected a challenge, got {:?}", f.kind()),
        })
        .expect("closed before the challenge");
    let own = [0x5au8; dipc_wire::AUTH_LEN];
    p.send(
        2,
        Frame::Auth(dipc_wire::Auth {
            mac: key.tag(dipc_wire::AuthRole::Node, node_id, &challenge, &own),
            nonce: own,
        }),
    );
    // The referee's proof, checked here, then the ack (or an error).
    let mut got = Vec::new();
    loop {
        let Some((k, proof)) = p.next(|m| match m.frame {
            Frame::Auth(a) => (m.frame.kind(), Some(a.mac)),
            f => (f.kind(), None),
        }) else {
            got.push(Got::Closed);
            return got;
        };
        if let Some(mac) = proof {
            let zero = [0; dipc_wire::AUTH_LEN];
            let ok = key.verify(dipc_wire::AuthRole::Referee, node_id, &own, &zero, &mac);
            assert!(ok, "the referee's proof does not check");
        }
        got.push(Got::Frame(k, 0, 0));
        if k == Kind::HelloAck || k == Kind::Error {
            return got;
        }
    }
}

#[test]
fn nodes_must_hold_the_secret() {
    let key = b"0123456789abcdef0123456789abcdef";
    let (referee, addr) = start_with(Some(key), &[]);
    // The right secret: the referee proves itself, then acks.
    let mut good = Peer::connect(addr);
    assert_eq!(
        authenticate(&mut good, 2, key),
        vec![
            Got::Frame(Kind::Auth, 0, 0),
            Got::Frame(Kind::HelloAck, 0, 0)
        ]
    );
    assert_eq!(good.semget(3, 0x46), Got::Frame(Kind::GetReply, 3, 0));
    // A wrong secret: refused and closed, never registered.
    let mut bad = Peer::connect(addr);
    let got = authenticate(&mut bad, 3, b"0123456789abcdef0123456789abcdeX");
    assert_eq!(got[0], Got::Frame(Kind::Error, 0, 0));
    assert_eq!(bad.until_closed(), vec![]);
    // No proof at all: an IPC request right after the hello.
    let mut none = Peer::connect(addr);
    none.send(
        1,
        Frame::Hello(Hello {
            node_id: 4,
            features: 0,
            incarnation: 1,
            peer_port: 0,
            name: b"x",
        }),
    );
    none.send(2, Frame::Ping { nonce: 1 });
    assert_eq!(none.until_closed(), vec![Kind::Challenge, Kind::Error]);
    let nodes: Vec<u32> = referee.status().nodes.iter().map(|n| n.node_id).collect();
    assert_eq!(nodes, vec![2]);
    assert!(referee.status().authenticated);
    drop(good);
    wait_open(&referee, 0);
}

#[test]
fn the_allow_list_refuses_other_addresses() {
    let (referee, addr) = start_with(None, &["10.0.0.0/8"]);
    let mut p = Peer::connect(addr);
    assert_eq!(p.until_closed(), vec![Kind::Error]);
    wait_open(&referee, 0);
    let m = referee.metrics.snapshot();
    assert_eq!((m.counters["refused"], m.counters["connections"]), (1, 0));
    let (_, addr) = start_with(None, &["10.0.0.0/8", "127.0.0.1"]);
    let mut p = Peer::connect(addr);
    p.hello(1);
}

/// `dipcctl leave`: the referee calls the leaving node's pages home (its
/// bytes come back with the ack), answers the Leave, ends the session at
/// once (nothing held for a keepalive) and closes the connection; another
/// node then reads what the leaver wrote.
#[test]
fn a_leaving_node_hands_its_pages_back() {
    use dipc_wire::{PageAck, PageData, PageReq, PAGE_LEN};
    let (referee, addr) = start(Duration::from_secs(30));
    let shmget = |p: &mut Peer, req: u64| -> u64 {
        p.send(
            req,
            Frame::Get(Get {
                class: Class::Shm,
                key: 0x77,
                flags: IPC_CREAT | 0o666,
                size: 2 * PAGE_LEN as u64,
                cred: Cred::new(0, 0, 0),
                pid: 100,
            }),
        );
        p.next(|m| match m.frame {
            Frame::GetReply(g) if g.result >= 0 => g.oid,
            f => panic!("shmget answered {f:?}"),
        })
        .unwrap()
    };
    let mut p = Peer::connect(addr);
    p.hello(2);
    let oid = shmget(&mut p, 2);
    // Node 2 owns page 1 (write grant of a zero page).
    p.send(
        0,
        Frame::PageReq(PageReq {
            oid,
            page: 1,
            write: 1,
            whole: 0,
            applied: 0,
        }),
    );
    assert_eq!(
        p.next(|m| matches!(m.frame, Frame::PageGrant(g) if g.page == 1 && g.write == 1)),
        Some(true)
    );
    p.send(9, Frame::Leave);
    // The page is called home, with its bytes.
    let txn = p
        .next(|m| match m.frame {
            Frame::PageInval(i) if i.page == 1 && i.want_data == 1 && i.keep_read == 0 => m.req_id,
            f => panic!("expected an invalidation, got {f:?}"),
        })
        .unwrap();
    assert!(referee.status().away.is_empty());
    assert_eq!(
        referee.status().nodes.len(),
        1,
        "still connected until the ack"
    );
    let written = [0x5au8; PAGE_LEN];
    p.send(
        txn,
        Frame::PageAck(PageAck {
            oid,
            page: 1,
            data: Some(&written),
            sent: 0,
        }),
    );
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 9, 0));
    assert_eq!(p.recv(), Got::Closed);
    wait_open(&referee, 0);
    let st = referee.status();
    assert!(
        st.nodes.is_empty() && st.away.is_empty(),
        "the session ended at once"
    );

    // Node 3 reads what node 2 wrote.
    let mut q = Peer::connect(addr);
    q.hello(3);
    assert_eq!(shmget(&mut q, 2), oid);
    q.send(
        0,
        Frame::PageReq(PageReq {
            oid,
            page: 1,
            write: 0,
            whole: 0,
            applied: 0,
        }),
    );
    let got = q
        .next(|m| match m.frame {
            Frame::PageGrant(g) => match g.data {
                PageData::Bytes(b) => b.to_vec(),
                d => panic!("grant without the bytes: {d:?}"),
            },
            f => panic!("expected a grant, got {f:?}"),
        })
        .unwrap();
    assert_eq!(got, written);

    // A node that owns nothing leaves at once, and one that joins again
    // can leave again.
    q.send(4, Frame::Leave);
    assert_eq!(q.recv(), Got::Frame(Kind::Status, 4, 0));
    assert_eq!(q.recv(), Got::Closed);
    let mut q = Peer::connect(addr);
    q.hello(3);
    q.send(5, Frame::Leave);
    assert_eq!(q.recv(), Got::Frame(Kind::Status, 5, 0));
    assert_eq!(referee.metrics.snapshot().frames_in["leave"], 3);
}

/// Three referees in one process, each with its own directory and ports,
/// serving the nodes' protocol on `addrs[i]`.
fn start_replicated(
    dirs: &[tempfile::TempDir],
    secret: Option<&[u8]>,
) -> (Vec<Arc<Referee>>, Vec<SocketAddr>, Vec<u16>) {
    let raft_ports: Vec<u16> = (0..dirs.len())
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let members: dipc_replica::Members = raft_ports
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u64 + 1, format!("127.0.0.1:{p}")))
        .collect();
    let mut referees = Vec::new();
    let mut addrs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let id = i as u64 + 1;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (rep, rx) = crate::replicated::handle(id);
        let referee = Arc::new(
            Referee::new(addr, Limits::default())
                .with_keepalive(Duration::from_secs(30))
                .with_replication(rep.clone()),
        );
        let opts = crate::replicated::Options {
            id,
            replicas: members.clone(),
            dir: dir.path().to_path_buf(),
            sync: false,
            snapshot_every: 1000,
            join: false,
            secret: secret.map(|s| Secret::new(s).unwrap()),
            allow: Vec::new(),
        };
        crate::replicated::start(referee.clone(), rep, rx, opts).unwrap();
        let r = referee.clone();
        std::thread::spawn(move || serve(r, listener));
        referees.push(referee);
        addrs.push(addr);
    }
    (referees, addrs, raft_ports)
}

/// The index of the referee that serves nodes, once one does.
fn serving(referees: &[Arc<Referee>], not: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = referees
            .iter()
            .enumerate()
            .find(|(i, r)| Some(*i) != not && r.replication().unwrap().serving());
        if let Some((i, _)) = s {
            return i;
        }
        assert!(Instant::now() < deadline, "no referee serves");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Peer {
    /// A hello with `incarnation`; the ack's feature bits.
    fn hello_as(&mut self, node_id: u32, incarnation: u64) -> Option<u64> {
        self.send(
            1,
            Frame::Hello(Hello {
                node_id,
                features: 0,
                incarnation,
                peer_port: 0,
                name: b"test-peer",
            }),
        );
        self.next(|m| match m.frame {
            Frame::HelloAck(a) => Some(a.features),
            Frame::Error { code } => {
                assert_eq!(code, ErrorCode::NotLeader);
                None
            }
            f => panic!("unexpected {:?}", f.kind()),
        })
        .flatten()
    }

    /// `semctl(oid, 0, GETVAL)`: the value.
    fn getval(&mut self, req: u64, oid: u64) -> i64 {
        self.send(
            req,
            Frame::SemCtl(dipc_wire::SemCtl {
                oid,
                pid: 100,
                cred: Cred::new(0, 0, 0),
                cmd: dipc_wire::semcmd::GETVAL,
                semnum: 0,
                val: 0,
                set_uid: 0,
                set_gid: 0,
                set_mode: 0,
                vals: dipc_wire::Vals::EMPTY,
            }),
        );
        self.next(|m| match m.frame {
            Frame::SemCtlReply(r) if m.req_id == req => r.result,
            f => panic!("unexpected {:?}", f.kind()),
        })
        .expect("the referee closed")
    }
}

/// Node 5 (incarnation 77) joins `referee`, a leader at `addr`, makes a
/// semaphore set (key 0x42) and adds 1 to it (request 3); the set's id.
fn node_with_a_semaphore(referee: &Referee, addr: SocketAddr) -> (Peer, u64) {
    let mut p = Peer::connect(addr);
    assert_eq!(p.hello_as(5, 77).map(|f| f & ACK_RESUMED), Some(0));
    let Got::Frame(Kind::GetReply, 2, _) = p.semget(2, 0x42) else {
        panic!("semget failed");
    };
    let oid = referee.status().objects[0].oid;
    p.semop(3, oid, 100, 1, 0);
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 3, 0));
    (p, oid)
}

/// Node 5 (incarnation 77, as [`node_with_a_semaphore`] made it) resumes
/// its session at `addr` and sends its `semop` (request 3) again: it is
/// answered, and carried out once. `after`: what the session survived.
fn resume_and_send_again(addr: SocketAddr, oid: u64, after: &str) -> Peer {
    let mut p = Peer::connect(addr);
    assert_eq!(
        p.hello_as(5, 77).map(|f| f & ACK_RESUMED),
        Some(ACK_RESUMED),
        "the session did not survive {after}"
    );
    p.semop(3, oid, 100, 1, 0);
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 3, 0));
    assert_eq!(
        p.getval(4, oid),
        1,
        "the call was lost or done twice ({after})"
    );
    p
}

/// Three referees: followers send nodes on, the leader serves; the
/// leader dies, another takes over with every acknowledged change, the
/// node resumes its session there, and a call sent again is carried out
/// once.
#[test]
fn replicated_referees_fail_over() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (referees, addrs, _) = start_replicated(&dirs, None);
    let l = serving(&referees, None);
    let f = (l + 1) % 3;
    let mut p = Peer::connect(addrs[f]);
    assert_eq!(p.hello_as(5, 77), None, "a follower served a node");
    let (mut p, oid) = node_with_a_semaphore(&referees[l], addrs[l]);
    // The leader dies; its node connection goes with it.
    referees[l].replication().unwrap().stop();
    assert_eq!(p.until_closed(), Vec::<Kind>::new());
    let l2 = serving(&referees, Some(l));
    // The semop's answer may have been lost with the old leader: the node
    // sends it again, and it is answered without being done twice.
    let mut p = resume_and_send_again(addrs[l2], oid, "the leader");
    p.semop(5, oid, 100, 1, 0);
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 5, 0));
    assert_eq!(p.getval(6, oid), 2);
    // The remaining follower holds the same state.
    let other = (0..3).find(|&i| i != l && i != l2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while referees[other].status().objects.first().map(|o| o.oid) != Some(oid) {
        assert!(
            Instant::now() < deadline,
            "the follower never applied the log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Found by the review of 3e25eae: a leader handing leadership to a
/// referee that cannot take it (stopped here) dropped every node's frame
/// raft-rs refused meanwhile, and kept serving; the transfer aborted an
/// election timeout later and the call was never answered. Now the leader
/// stops serving for the transfer (its nodes' connections close), and
/// serves again once it is aborted: the call, sent again on the resumed
/// session, is carried out once.
#[test]
fn a_leader_transfer_that_aborts_loses_no_call() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (referees, addrs, _) = start_replicated(&dirs, None);
    let l = serving(&referees, None);
    let (mut p, oid) = node_with_a_semaphore(&referees[l], addrs[l]);
    let t = (l + 1) % 3;
    referees[t].replication().unwrap().stop();
    referees[l].replication().unwrap().transfer(t as u64 + 1);
    // A call made while the transfer is pending.
    p.semop(3, oid, 100, 1, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while referees[l].replication().unwrap().serving() {
        assert!(
            Instant::now() < deadline,
            "the leader served while handing leadership over"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(p.until_closed(), Vec::<Kind>::new());
    // The transfer is aborted (its target is down): the leader serves
    // again, and the node resumes there.
    let l2 = serving(&referees, Some(t));
    assert_eq!(l2, l, "another referee took over from a live leader");
    resume_and_send_again(addrs[l2], oid, "the transfer");
}

/// Found by the review of 3e25eae: a replicated referee wrote what
/// applying queued for every node from one thread, so one node whose write
/// blocked (it stopped reading: a wedged kernel, a hostile node; here its
/// write half is held, as a full socket holds a write) held up every other
/// node's answers for up to a keepalive, again and again. Each node now
/// has a writer thread of its own.
#[test]
fn a_node_that_stops_reading_holds_up_no_other() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (referees, addrs, _) = start_replicated(&dirs, None);
    let l = serving(&referees, None);
    let (mut a, oid) = node_with_a_semaphore(&referees[l], addrs[l]);
    let mut b = Peer::connect(addrs[l]);
    assert_eq!(b.hello_as(6, 78).map(|f| f & ACK_RESUMED), Some(0));
    let w = referees[l].writer_of(5).expect("node 5's writer");
    let held = w.lock().unwrap();
    // Node 5's answer cannot be written ...
    a.semop(4, oid, 100, 1, 0);
    std::thread::sleep(Duration::from_millis(300));
    // ... and node 6 is answered all the same.
    assert_eq!(b.getval(2, oid), 2, "node 6 waited for node 5");
    drop(held);
    assert_eq!(a.recv(), Got::Frame(Kind::Status, 4, 0));
}

/// With a secret, referees that hold it elect a leader among themselves,
/// and a connection to a referee's raft port that cannot prove it is
/// closed before any message is taken.
#[test]
fn replicated_referees_prove_the_secret() {
    let key = b"0123456789abcdef0123";
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (referees, _, raft_ports) = start_replicated(&dirs, Some(key));
    let l = serving(&referees, None);
    let term = referees[l].replication().unwrap().info().term;
    for (i, port) in raft_ports.iter().enumerate() {
        let mut s = TcpStream::connect(("127.0.0.1", *port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut challenge = [0u8; dipc_wire::AUTH_LEN];
        s.read_exact(&mut challenge).unwrap();
        let from = if i == 1 { 3u64 } else { 2 };
        let mut hello = b"DIPCRAF2".to_vec();
        hello.extend_from_slice(&from.to_le_bytes());
        hello.extend_from_slice(&[0u8; 2 * dipc_wire::AUTH_LEN]);
        // A heartbeat of a far term: a referee that took it would move to
        // that term, following the forger.
        let mut m = dipc_replica::Message::default();
        m.set_msg_type(dipc_replica::MessageType::MsgHeartbeat);
        m.to = i as u64 + 1;
        m.from = from;
        m.term = 1000;
        let bytes = dipc_replica::encode_message(&m);
        hello.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        hello.extend_from_slice(&bytes);
        let _ = s.write_all(&hello);
        let mut b = [0u8; 1];
        let closed = match s.read(&mut b) {
            Ok(0) => true,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        };
        assert!(closed, "the referee kept an unproven peer");
    }
    std::thread::sleep(Duration::from_millis(500));
    for r in &referees {
        assert!(
            r.replication().unwrap().info().term < 1000,
            "a forged heartbeat was taken"
        );
    }
    assert_eq!(referees[l].replication().unwrap().info().term, term);
    assert!(referees[l].replication().unwrap().serving());
}

/// A fourth referee joins (started with `join`, empty) through the
/// leader's membership change, catches up with the log, and serves once it
/// leads; then it is removed again, and the three go on.
#[test]
fn a_referee_joins_and_leaves() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (referees, addrs, _) = start_replicated(&dirs[..3], None);
    let l = serving(&referees, None);
    let (mut p, oid) = node_with_a_semaphore(&referees[l], addrs[l]);
    // Referee 4, empty, given the referees' addresses and its own.
    let port4 = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr4 = format!("127.0.0.1:{port4}");
    let mut given = referees[l].replication().unwrap().info().members;
    given.insert(4, addr4.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (rep4, rx4) = crate::replicated::handle(4);
    let r4 = Arc::new(
        Referee::new(listener.local_addr().unwrap(), Limits::default())
            .with_keepalive(Duration::from_secs(30))
            .with_replication(rep4.clone()),
    );
    let opts = crate::replicated::Options {
        id: 4,
        replicas: given,
        dir: dirs[3].path().to_path_buf(),
        sync: false,
        snapshot_every: 1000,
        join: true,
        secret: None,
        allow: Vec::new(),
    };
    crate::replicated::start(r4.clone(), rep4.clone(), rx4, opts).unwrap();
    // A follower cannot change the membership; the leader can.
    let f = (l + 1) % 3;
    let refused = referees[f].replication().unwrap().change(
        dipc_replica::Change::Add {
            id: 4,
            addr: addr4.clone(),
        },
        Duration::from_secs(5),
    );
    assert!(refused.unwrap_err().contains("does not lead"));
    referees[l]
        .replication()
        .unwrap()
        .change(
            dipc_replica::Change::Add {
                id: 4,
                addr: addr4.clone(),
            },
            Duration::from_secs(10),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (i4, il) = (rep4.info(), referees[l].replication().unwrap().info());
        if i4.members.len() == 4 && i4.applied >= il.commit && r4.status().objects.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "referee 4 never caught up: {i4:?} vs {il:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(r4.status().objects[0].oid, oid);
    // Referee 4 leaves; the others keep serving.
    referees[l]
        .replication()
        .unwrap()
        .change(
            dipc_replica::Change::Remove { id: 4 },
            Duration::from_secs(10),
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while referees[l].replication().unwrap().info().members.len() != 3 {
        assert!(Instant::now() < deadline, "referee 4 is still a member");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.semop(4, oid, 100, 1, 0);
    assert_eq!(p.recv(), Got::Frame(Kind::Status, 4, 0));
    assert_eq!(p.getval(5, oid), 2);
}
