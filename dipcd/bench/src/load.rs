//! The referee under load: `C` connections, each registered as a node of
//! its own, keep `W` semaphore operations in flight on one distributed set
//! for a while, and the referee's throughput is what comes back. Each
//! connection works on its own semaphore (+1 then -1, `IPC_NOWAIT`), so no
//! operation ever sleeps and every one is a full request/reply through the
//! referee's object table.
//!
//! The generator batches its frames (one `write` for a window's worth) and
//! reads replies in large chunks, so it costs far less per operation than
//! the referee and the figure is the referee's. The referee's own CPU time
//! is read from `/proc/PID/stat` where its pid is given, so ops per CPU
//! second can be reported beside ops per wall second.
//!
//! Each connection is a node as the referee sees it, so it gets every frame
//! the referee sends a node: pings (keepalive, and sync pings that let the
//! referee drop answers it caches) are answered with a pong, and frames that
//! answer no request in flight are skipped. Every connection says hello
//! with a fresh incarnation, so a run never resumes an earlier run's
//! session (whose cached answers the referee would send again).

use dipc_wire::{
    decode, Class, Cred, DecodeError, Frame, Get, Hello, Message, SemOp, Sembuf, Sops,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `IPC_NOWAIT` as `sem_flg`.
const IPC_NOWAIT: i16 = 0o4000;
/// `IPC_CREAT` in `semget`'s flag word.
const IPC_CREAT: i32 = 0o1000;

/// What one load run measured.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LoadResult {
    /// Connections (simulated nodes).
    pub conns: usize,
    /// Operations in flight per connection.
    pub window: usize,
    /// Completed operations.
    pub ops: u64,
    /// Operations that did not return 0 (should be none).
    pub errors: u64,
    /// Wall seconds measured.
    pub secs: f64,
    /// `ops / secs`.
    pub ops_per_s: f64,
    /// The referee's CPU seconds during the run, where its pid was given.
    pub referee_cpu_s: Option<f64>,
    /// `ops / referee_cpu_s`: what one fully busy core would do.
    pub ops_per_cpu_s: Option<f64>,
}

fn encode(req: u64, frame: Frame<'_>) -> Vec<u8> {
    let mut b = vec![0u8; frame.encoded_len()];
    let n = frame.encode(req, &mut b).unwrap_or(0);
    b.truncate(n);
    b
}

/// Reads until one whole frame is buffered; returns its request id, result
/// word (for replies that carry one) and whether it was a hello ack.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A reply as the generator needs it.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    HelloAck,
    Get { result: i32, oid: u64 },
    Status { result: i64 },
    Other,
}

/// An incarnation no earlier run used: the time, the process and the node.
fn fresh_incarnation(node: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ u64::from(node).rotate_left(48)
}

impl Conn {
    fn open(addr: SocketAddr, node: u32) -> io::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut c = Conn {
            s,
            buf: vec![0; 1 << 20],
            start: 0,
            end: 0,
        };
        let name = format!("load-{node}");
        c.s.write_all(&encode(
            0,
            Frame::Hello(Hello {
                node_id: node,
                features: 0,
                incarnation: fresh_incarnation(node),
                peer_port: 0,
                name: name.as_bytes(),
            }),
        ))?;
        match c.next()? {
            (_, Reply::HelloAck) => Ok(c),
            _ => Err(io::Error::other("the referee did not accept the hello")),
        }
    }

    /// The next frame other than a ping (answered here); reads more when
    /// none is whole.
    fn next(&mut self) -> io::Result<(u64, Reply)> {
        loop {
            match decode(&self.buf[self.start..self.end]) {
                Ok((Message { req_id, frame, .. }, used)) => {
                    self.start += used;
                    let r = match frame {
                        Frame::Ping { nonce } => {
                            self.s.write_all(&encode(req_id, Frame::Pong { nonce }))?;
                            continue;
                        }
                        Frame::HelloAck(_) => Reply::HelloAck,
                        Frame::GetReply(g) => Reply::Get {
                            result: g.result,
                            oid: g.oid,
                        },
                        Frame::Status { result } => Reply::Status { result },
                        _ => Reply::Other,
                    };
                    return Ok((req_id, r));
                }
                Err(DecodeError::Incomplete { .. }) => {}
                Err(e) => return Err(io::Error::other(format!("bad frame: {e}"))),
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.s.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return Err(io::Error::other("the referee closed the connection"));
            }
            self.end += n;
        }
    }
}

fn root() -> Cred {
    Cred::new(0, 0, dipc_wire::CAP_IPC_OWNER | dipc_wire::CAP_SYS_ADMIN)
}

/// Opens (creating it if needed) the set `key` with `nsems` semaphores.
fn open_set(c: &mut Conn, key: i32, nsems: u64) -> io::Result<u64> {
    let get = Get {
        class: Class::Sem,
        key,
        flags: IPC_CREAT | 0o600,
        size: nsems,
        cred: root(),
        pid: std::process::id(),
    };
    c.s.write_all(&encode(1, Frame::Get(get)))?;
    // Anything else (a frame for no request of ours) is skipped.
    loop {
        match c.next()? {
            (1, Reply::Get { result: 0, oid }) => return Ok(oid),
            (1, Reply::Get { result, .. }) => {
                return Err(io::Error::other(format!("semget: {result}")))
            }
            _ => {}
        }
    }
}

/// One connection's share: `window` operations in flight on semaphore `num`
/// until `stop`; returns (ops, errors).
fn drive(
    mut c: Conn,
    oid: u64,
    num: u16,
    window: usize,
    stop: &AtomicBool,
) -> io::Result<(u64, u64)> {
    let ops: Vec<Vec<u8>> = [1i16, -1]
        .iter()
        .map(|&op| {
            Sembuf {
                num,
                op,
                flg: IPC_NOWAIT,
            }
            .to_bytes()
            .to_vec()
        })
        .collect();
    let pid = std::process::id();
    let frame = |req: u64| {
        let sops = Sops::new(&ops[(req & 1) as usize]).expect("one sembuf");
        encode(
            req,
            Frame::SemOp(SemOp {
                oid,
                pid,
                cred: root(),
                sops,
            }),
        )
    };
    let (mut next_req, mut done, mut errors) = (2u64, 0u64, 0u64);
    let mut batch = Vec::new();
    for _ in 0..window {
        batch.extend_from_slice(&frame(next_req));
        next_req += 1;
    }
    c.s.write_all(&batch)?;
    let mut in_flight = window;
    // Requests `first..next_req` are ours; the replies come in order.
    let first = next_req - window as u64;
    while in_flight > 0 {
        let (req, r) = c.next()?;
        if req < first || req >= next_req {
            continue;
        }
        if let Reply::Status { result } = r {
            in_flight -= 1;
            done += 1;
            if result != 0 {
                errors += 1;
            }
        }
        // Refill in batches of half a window, so each write carries many.
        if !stop.load(Ordering::Relaxed) && in_flight <= window / 2 {
            batch.clear();
            while in_flight < window {
                batch.extend_from_slice(&frame(next_req));
                next_req += 1;
                in_flight += 1;
            }
            c.s.write_all(&batch)?;
        }
    }
    Ok((done, errors))
}

/// Utime + stime of `pid`, in seconds.
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that ends the command name: utime is the 12th,
    // stime the 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux architecture dipc runs on.
    Some(ticks / 100.0)
}

/// Runs the load: `conns` connections, `window` in flight each, `secs` long,
/// against the referee at `addr` (pid `pid` for its CPU time).
pub fn run(
    addr: SocketAddr,
    conns: usize,
    window: usize,
    secs: f64,
    key: i32,
    pid: Option<u32>,
) -> io::Result<LoadResult> {
    let window = window.max(2);
    // A key per connection count: a set of another size under the same key
    // would make semget fail with EINVAL.
    let key = key.wrapping_add(conns as i32 * 0x100);
    let mut first = Conn::open(addr, 1000)?;
    let oid = open_set(&mut first, key, conns as u64)?;
    let mut all = vec![first];
    for i in 1..conns {
        all.push(Conn::open(addr, 1000 + i as u32)?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = pid.and_then(cpu_s);
    let t0 = Instant::now();
    let threads: Vec<_> = all
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let stop = stop.clone();
            std::thread::spawn(move || drive(c, oid, i as u16, window, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let (mut ops, mut errors) = (0, 0);
    for t in threads {
        let (o, e) = t
            .join()
            .map_err(|_| io::Error::other("a load thread panicked"))??;
        ops += o;
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = match (cpu0, pid.and_then(cpu_s)) {
        (Some(a), Some(b)) if b > a => Some(b - a),
        _ => None,
    };
    Ok(LoadResult {
        conns,
        window,
        ops,
        errors,
        secs,
        ops_per_s: ops as f64 / secs,
        referee_cpu_s: cpu,
        ops_per_cpu_s: cpu.map(|c| ops as f64 / c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dipc_wire::{GetReply, HelloAck, IpcPerm, Kind};
    use std::net::TcpListener;

    /// Reads one frame from `s`: its request id, kind and (for a pong) nonce.
    fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u64, Kind, u64) {
        loop {
            match decode(buf) {
                Ok((Message { req_id, frame, .. }, used)) => {
                    let nonce = match frame {
                        Frame::Pong { nonce } => nonce,
                        _ => 0,
                    };
                    let kind = frame.kind();
                    buf.drain(..used);
                    return (req_id, kind, nonce);
                }
                Err(DecodeError::Incomplete { .. }) => {}
                Err(e) => panic!("bad frame from the generator: {e}"),
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "the generator closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A referee may send a node a keepalive ping, a sync ping and answers
    /// to no request in flight (a resumed session's cached ones) before
    /// the reply it waits for: the generator answers the pings and skips
    /// the rest (issue 20: "dipc-bench: load: no answer to get").
    #[test]
    fn pings_are_answered_and_stray_frames_skipped() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let referee = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            assert_eq!(read_frame(&mut s, &mut buf).1, Kind::Hello);
            let ack = HelloAck {
                node_id: 1000,
                features: 0,
                session: 1,
                token: Default::default(),
            };
            s.write_all(&encode(0, Frame::HelloAck(ack))).unwrap();
            assert_eq!(read_frame(&mut s, &mut buf).0, 1);
            let reply = |oid| GetReply {
                result: 0,
                oid,
                perm: IpcPerm {
                    mode: 0o600,
                    ..IpcPerm::default()
                },
                size: 1,
                id: 0,
                key: 1,
                created: 0,
            };
            let mut out = encode(0, Frame::Ping { nonce: 7 });
            out.extend(encode(1, Frame::Status { result: 5 }));
            out.extend(encode(99, Frame::GetReply(reply(13))));
            out.extend(encode(0, Frame::Ping { nonce: 1 << 62 }));
            out.extend(encode(1, Frame::GetReply(reply(42))));
            s.write_all(&out).unwrap();
            let pongs = [read_frame(&mut s, &mut buf), read_frame(&mut s, &mut buf)];
            assert_eq!(pongs, [(0, Kind::Pong, 7), (0, Kind::Pong, 1 << 62)]);
        });
        let mut c = Conn::open(addr, 1000).unwrap();
        assert_eq!(open_set(&mut c, 5, 1).unwrap(), 42);
        referee.join().unwrap();
    }

    #[test]
    fn incarnations_differ_between_runs() {
        let a = fresh_incarnation(1000);
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(a, fresh_incarnation(1000));
    }
}
