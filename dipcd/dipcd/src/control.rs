//! The local control socket: `dipcd status` and `dipcctl` ask the
//! running referee questions over a Unix socket, one request line each,
//! answered with one JSON document: `status` (the referee's state) or
//! `metrics` (its counters and latency histograms, [`crate::metrics`]),
//! and on a replicated referee `referees` (where it stands) and
//! `referees add ID HOST:PORT`, `referees remove ID`, `referees transfer
//! ID` (membership changes, made by the leader).

use crate::server::Referee;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 256;

/// Answers control requests forever.
pub fn serve(referee: Arc<Referee>, listener: UnixListener) {
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if let Err(e) = answer(&referee, s) {
                    tracing::debug!(error = %e, "control request failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "control accept failed"),
        }
    }
}

fn answer(referee: &Referee, stream: UnixStream) -> io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let reply = match line.trim() {
        "status" => serde_json::to_string(&referee.status()).map_err(io::Error::other)?,
        "metrics" => {
            serde_json::to_string(&referee.metrics.snapshot()).map_err(io::Error::other)?
        }
        other if other == "referees" || other.starts_with("referees ") => {
            referees(referee, other).to_string()
        }
        other => serde_json::json!({ "error": format!("unknown request {other:?}") }).to_string(),
    };
    (&stream).write_all(reply.as_bytes())?;
    (&stream).write_all(b"\n")
}

/// The `referees` requests.
fn referees(referee: &Referee, line: &str) -> serde_json::Value {
    use dipc_replica::Change;
    let Some(rep) = referee.replication() else {
        return serde_json::json!({ "error": "this referee is not replicated (no --replica-id)" });
    };
    let words: Vec<&str> = line.split_whitespace().skip(1).collect();
    let id = |w: Option<&&str>| {
        w.and_then(|w| w.parse::<u64>().ok())
            .filter(|&i| (1..=u64::from(u32::MAX)).contains(&i))
    };
    let wait = std::time::Duration::from_secs(5);
    let done = |r: Result<(), String>| match r {
        Ok(()) => serde_json::json!({ "ok": true, "referees": rep.info() }),
        Err(e) => serde_json::json!({ "error": e }),
    };
    match words.as_slice() {
        [] => serde_json::to_value(rep.info()).unwrap_or_default(),
        ["add", i, addr] if id(Some(i)).is_some() => done(rep.change(
            Change::Add {
                id: id(Some(i)).unwrap_or(0),
                addr: addr.to_string(),
            },
            wait,
        )),
        ["remove", i] if id(Some(i)).is_some() => done(rep.change(
            Change::Remove {
                id: id(Some(i)).unwrap_or(0),
            },
            wait,
        )),
        ["transfer", i] if id(Some(i)).is_some() => {
            rep.transfer(id(Some(i)).unwrap_or(0));
            serde_json::json!({ "ok": true })
        }
        _ => serde_json::json!({
            "error": "expected: referees [add ID HOST:PORT | remove ID | transfer ID]"
        }),
    }
}
