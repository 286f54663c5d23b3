//! The local control socket: `dipcd status` and `dipcctl` ask the
//! running referee questions over a Unix socket, one request line each,
//! answered with one JSON document: `status` (the referee's state) or
//! `metrics` (its counters and latency histograms, [`crate::metrics`]).

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
        other => serde_json::json!({ "error": format!("unknown request {other:?}") }).to_string(),
    };
    (&stream).write_all(reply.as_bytes())?;
    (&stream).write_all(b"\n")
}
