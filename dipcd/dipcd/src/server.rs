//! The referee's network side: accepts node connections, one thread each,
//! and drives a [`Session`] per connection.

use crate::registry::{Closer, NodeStatus, Registry};
use crate::session::{Action, FrameBuf, OwnedReply, Session, State};
use dipc_wire::{ErrorCode, Frame};
use serde::Serialize;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// State shared by every connection thread and the control socket.
pub struct Referee {
    /// Connected nodes. One lock: registration is rare and short.
    registry: Mutex<Registry>,
    /// Identifies this run (changes on restart); sent in every hello ack.
    session_id: u64,
    listen: SocketAddr,
    started: Instant,
    next_conn: AtomicU64,
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
    /// Connected nodes by id.
    pub nodes: Vec<NodeStatus>,
}

impl Referee {
    /// A referee that listens on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Referee {
            registry: Mutex::new(Registry::default()),
            // Distinct across restarts of one referee; mixed with the pid so
            // two started in the same nanosecond still differ.
            session_id: nanos ^ u64::from(std::process::id()).rotate_left(48),
            listen,
            started: Instant::now(),
            next_conn: AtomicU64::new(1),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic in another connection thread must not take the referee
        // down with it; the registry has no invariant a panic can break.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot for `dipcd status`.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        Status {
            listen: self.listen.to_string(),
            session: self.session_id,
            uptime_s: now.duration_since(self.started).as_secs(),
            nodes: self.registry().status(now),
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

fn handle(referee: &Referee, mut stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    tracing::info!(%peer, "connection accepted");
    stream.set_nodelay(true)?;
    let conn_id = referee.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(referee.session_id);
    let mut frames = FrameBuf::default();
    let mut buf = vec![0u8; 16 * 1024];
    let result = loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        frames.extend(&buf[..n]);
        let outcome = loop {
            match frames.next_with(|m| session.on_message(m)) {
                Ok(Some(action)) => {
                    if let Err(e) = act(referee, &mut stream, peer, conn_id, action) {
                        break Some(e);
                    }
                }
                Ok(None) => break None,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame; closing the connection");
                    let _ = send(
                        &mut stream,
                        &OwnedReply {
                            req_id: 0,
                            frame: Frame::Error {
                                code: ErrorCode::Protocol,
                            },
                        },
                    );
                    break Some(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
            }
        };
        if let Some(e) = outcome {
            break Err(e);
        }
    };
    if let State::Ready { node_id } = session.state() {
        if referee.registry().unregister(node_id, conn_id) {
            tracing::info!(node_id, %peer, "node left");
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
    action: Action,
) -> io::Result<()> {
    match action {
        Action::Register(hello, reply) => {
            let closer = Box::new(SocketCloser(stream.try_clone()?));
            tracing::info!(node_id = hello.node_id, name = %hello.name, %peer, "node joined");
            referee.registry().register(
                hello.node_id,
                hello.name,
                peer,
                conn_id,
                closer,
                Instant::now(),
            );
            send(stream, &reply)
        }
        Action::Reply(reply) => send(stream, &reply),
        Action::None => Ok(()),
        Action::Refuse(code, why) => {
            tracing::warn!(%peer, %why, "refusing peer");
            let _ = send(
                stream,
                &OwnedReply {
                    req_id: 0,
                    frame: Frame::Error { code },
                },
            );
            Err(io::Error::new(io::ErrorKind::InvalidData, why))
        }
    }
}
