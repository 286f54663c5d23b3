//! The configuration file, `/etc/dipc/dipcd.toml` by default.
//!
//! Every key is optional and names the command-line option of the same
//! name (`secret_file` for `--secret-file`); an option given on the command
//! line wins over the file, the file over the built-in default. Unknown keys
//! are errors, so a misspelt key is not silently ignored. An example with
//! every key: `packaging/dipcd.toml`.

use crate::auth::Net;
use crate::store::Fsync;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where `dipcd` looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/dipc/dipcd.toml";

/// The file, each value already checked.
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    /// `listen = "0.0.0.0:7420"`.
    pub listen: Option<SocketAddr>,
    /// `control = "/run/dipcd.sock"`.
    pub control: Option<PathBuf>,
    /// `log = "info"`.
    pub log: Option<String>,
    /// `secret_file = "/etc/dipc/secret"`.
    pub secret_file: Option<PathBuf>,
    /// `allow = ["10.0.0.0/24"]`.
    pub allow: Option<Vec<Net>>,
    /// `keepalive = 15.0` (seconds).
    pub keepalive: Option<f64>,
    /// `state_dir = "/var/lib/dipcd"`.
    pub state_dir: Option<PathBuf>,
    /// `fsync = "always"`.
    pub fsync: Option<Fsync>,
    /// `snapshot_every = 100000`.
    pub snapshot_every: Option<u64>,
    /// `readahead = 32` (pages).
    pub readahead: Option<u64>,
    /// `msg_leases = true`.
    pub msg_leases: Option<bool>,
    /// `replica_id = 1`: this referee's id among several.
    pub replica_id: Option<u64>,
    /// `replica_secret_file = "/etc/dipc/referees.secret"`.
    pub replica_secret_file: Option<PathBuf>,
    /// `replicas = ["1=10.0.0.1:7421", ...]`: the first referees.
    pub replicas: Option<Vec<(u64, String)>>,
    /// The `[limits]` table.
    pub limits: FileLimits,
}

/// The `[limits]` table: the referee's IPC limits.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Most semaphores in one set.
    pub semmsl: Option<usize>,
    /// Most semaphores in all sets.
    pub semmns: Option<usize>,
    /// Most operations in one `semop`.
    pub semopm: Option<usize>,
    /// Most sets.
    pub semmni: Option<usize>,
    /// Largest message, bytes.
    pub msgmax: Option<usize>,
    /// A new queue's capacity, bytes.
    pub msgmnb: Option<usize>,
    /// Most queues.
    pub msgmni: Option<usize>,
    /// Largest segment, bytes.
    pub shmmax: Option<u64>,
    /// Most pages in all segments.
    pub shmall: Option<u64>,
    /// Most segments.
    pub shmmni: Option<usize>,
}

/// The file as TOML gives it, before the values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    control: Option<PathBuf>,
    log: Option<String>,
    secret_file: Option<PathBuf>,
    allow: Option<Vec<String>>,
    keepalive: Option<f64>,
    state_dir: Option<PathBuf>,
    fsync: Option<String>,
    snapshot_every: Option<u64>,
    readahead: Option<u64>,
    msg_leases: Option<bool>,
    replica_id: Option<u64>,
    replica_secret_file: Option<PathBuf>,
    replicas: Option<Vec<String>>,
    #[serde(default)]
    limits: FileLimits,
}

/// Seconds a keepalive may be.
pub const KEEPALIVE_RANGE: std::ops::RangeInclusive<f64> = 0.3..=3600.0;

/// Checks a keepalive in seconds.
pub fn check_keepalive(v: f64) -> Result<f64, String> {
    if !KEEPALIVE_RANGE.contains(&v) {
        return Err("the keepalive must lie between 0.3 and 3600 seconds".into());
    }
    Ok(v)
}

/// Parses the text of a configuration file.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    let raw: Raw = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
    let listen = raw
        .listen
        .map(|s| {
            s.parse::<SocketAddr>()
                .map_err(|e| format!("listen = {s:?}: {e} (want ADDRESS:PORT)"))
        })
        .transpose()?;
    let allow = raw
        .allow
        .map(|v| {
            v.iter()
                .map(|s| s.parse::<Net>().map_err(|e| format!("allow: {e}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let fsync = raw
        .fsync
        .map(|s| s.parse::<Fsync>().map_err(|e| format!("fsync: {e}")))
        .transpose()?;
    let replicas = raw
        .replicas
        .map(|v| {
            v.iter()
                .map(|s| crate::replicated::parse_replica(s).map_err(|e| format!("replicas: {e}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if let Some(id) = raw
        .replica_id
        .filter(|&i| !(1..=u64::from(u32::MAX)).contains(&i))
    {
        return Err(format!("replica_id = {id}: 1 to {}", u32::MAX));
    }
    let keepalive = raw
        .keepalive
        .map(|v| check_keepalive(v).map_err(|e| format!("keepalive = {v}: {e}")))
        .transpose()?;
    if let Some(r) = raw.readahead.filter(|&r| r > 1024) {
        return Err(format!("readahead = {r}: at most 1024 pages"));
    }
    if raw.snapshot_every == Some(0) {
        return Err("snapshot_every must be at least 1".into());
    }
    if let Some(log) = &raw.log {
        tracing_subscriber::EnvFilter::try_new(log).map_err(|e| format!("log = {log:?}: {e}"))?;
    }
    Ok(FileConfig {
        listen,
        control: raw.control,
        log: raw.log,
        secret_file: raw.secret_file,
        allow,
        keepalive,
        state_dir: raw.state_dir,
        fsync,
        snapshot_every: raw.snapshot_every,
        readahead: raw.readahead,
        msg_leases: raw.msg_leases,
        replica_id: raw.replica_id,
        replica_secret_file: raw.replica_secret_file,
        replicas,
        limits: raw.limits,
    })
}

/// Reads the configuration: `path` if given (it must exist), else
/// [`DEFAULT_PATH`] if it exists, else nothing.
pub fn load(path: Option<&Path>) -> Result<(Option<PathBuf>, FileConfig), String> {
    let (path, must_exist) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text)
            .map(|c| (Some(path.clone()), c))
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            Ok((None, FileConfig::default()))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_with_every_key() {
        let text = include_str!("../../../packaging/dipcd.toml");
        let c = parse(text).expect("packaging/dipcd.toml parses");
        assert_eq!(c.listen, Some("0.0.0.0:7420".parse().unwrap()));
        assert_eq!(c.control, Some(PathBuf::from("/run/dipcd.sock")));
        assert_eq!(c.secret_file, Some(PathBuf::from("/etc/dipc/secret")));
        assert_eq!(c.allow.as_ref().map(Vec::len), Some(1));
        assert_eq!(c.keepalive, Some(15.0));
        assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/dipcd")));
        assert_eq!(c.fsync, Some(Fsync::Always));
        assert_eq!(c.snapshot_every, Some(100_000));
        assert_eq!(c.readahead, Some(32));
        assert_eq!(c.log.as_deref(), Some("info"));
        assert_eq!(c.limits.msgmax, Some(8192));
        assert_eq!(c.limits.msgmnb, Some(16384));
        assert_eq!(c.limits.msgmni, Some(32000));
        assert_eq!(c.limits.shmmni, Some(4096));
        assert!(c.limits.shmmax.is_some() && c.limits.shmall.is_some());
    }

    #[test]
    fn the_replica_keys_of_the_example_parse_uncommented() {
        let text = include_str!("../../../packaging/dipcd.toml")
            .replace("#replica_id", "replica_id")
            .replace("#replicas", "replicas")
            .replace("#replica_secret_file", "replica_secret_file");
        let c = parse(&text).expect("the replica keys parse");
        assert_eq!(c.replica_id, Some(1));
        assert_eq!(
            c.replica_secret_file,
            Some(PathBuf::from("/etc/dipc/referees.secret"))
        );
        assert_eq!(
            c.replicas.as_deref().map(|r| r[2].clone()),
            Some((3, "10.0.0.3:7421".to_string()))
        );
        assert!(parse("replicas = [\"0=a:1\"]").is_err());
        assert!(parse("replicas = [\"1=nowhere\"]").is_err());
        assert!(parse("replica_id = 0").is_err());
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        assert_eq!(parse("").unwrap(), FileConfig::default());
        assert_eq!(parse("# only a comment\n").unwrap(), FileConfig::default());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, want) in [
            ("lisen = \"0.0.0.0:1\"", "unknown field `lisen`"),
            ("[limits]\nmsgmox = 1", "unknown field `msgmox`"),
            ("listen = \"10.0.0.1\"", "want ADDRESS:PORT"),
            ("allow = [\"10.0.0.0/33\"]", "prefix must be 0..=32"),
            ("allow = \"10.0.0.0/8\"", "invalid type"),
            ("fsync = \"sometimes\"", "fsync policy"),
            ("keepalive = 0.1", "between 0.3 and 3600"),
            ("snapshot_every = 0", "at least 1"),
            ("[limits]\nmsgmax = -1", "invalid value"),
            ("listen = ", "line 1, column 10"),
            ("log = \"dipcd=loud\"", "log = "),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn a_missing_default_file_is_no_file_but_a_missing_named_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("dipcd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope.toml");
        let e = load(Some(&missing)).unwrap_err();
        assert!(e.contains("nope.toml") && e.contains("No such file"), "{e}");
        let good = dir.join("good.toml");
        std::fs::write(&good, "listen = \"127.0.0.1:9\"\n").unwrap();
        let (p, c) = load(Some(&good)).unwrap();
        assert_eq!(p.as_deref(), Some(good.as_path()));
        assert_eq!(c.listen, Some("127.0.0.1:9".parse().unwrap()));
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "\n\nlisten = 7\n").unwrap();
        let e = load(Some(&bad)).unwrap_err();
        assert!(e.contains("bad.toml") && e.contains("line 3"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
