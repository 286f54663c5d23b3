//! The client side of `dipcd`'s control socket: one request line (`status`,
//! `metrics`), answered with one line of JSON. `dipcd status` and `dipcctl`
//! both ask through [`ask`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Where `dipcd` listens for control requests unless told otherwise.
pub const DEFAULT_PATH: &str = "/run/dipcd.sock";

/// How long an answer may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest answer read (a referee with very many objects).
const MAX_ANSWER: u64 = 64 << 20;

/// Sends `request` to the referee listening at `path` and returns its JSON
/// answer. An answer `{"error": ...}` is returned as an error with that
/// text; so is an answer that is not JSON.
pub fn ask(path: &Path, request: &str) -> io::Result<serde_json::Value> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.write_all(request.as_bytes())?;
    s.write_all(b"\n")?;
    let mut line = String::new();
    BufReader::new(s.take(MAX_ANSWER)).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the referee's answer is not JSON ({e})"),
        )
    })?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(io::Error::other(e.to_string()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A one-shot server answering `answer` to whatever comes.
    fn serve(answer: &'static str) -> (std::path::PathBuf, std::thread::JoinHandle<String>) {
        let dir = std::env::temp_dir().join(format!(
            "dipc-control-{}-{}",
            std::process::id(),
            answer.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let l = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut req = String::new();
            BufReader::new(&s).read_line(&mut req).unwrap();
            (&s).write_all(answer.as_bytes()).unwrap();
            req
        });
        (path, t)
    }

    #[test]
    fn a_request_gets_its_json_answer() {
        let (path, t) = serve("{\"uptime_s\":3}\n");
        let v = ask(&path, "status").unwrap();
        assert_eq!(v["uptime_s"], 3);
        assert_eq!(t.join().unwrap(), "status\n");
    }

    #[test]
    fn errors_and_garbage_are_errors() {
        let (path, _t) = serve("{\"error\":\"unknown request \\\"x\\\"\"}\n");
        let e = ask(&path, "x").unwrap_err();
        assert_eq!(e.to_string(), "unknown request \"x\"");
        let (path, _t) = serve("not json at all\n");
        let e = ask(&path, "status").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let missing = std::env::temp_dir().join("dipc-control-no-such-socket");
        assert!(ask(&missing, "status").is_err());
    }
}
