//! The referee's persistence: a snapshot of the [`State`] plus an
//! append-only log of the [`Record`]s applied since, in one directory.
//!
//! - `snapshot`: `SNAPSHOT_MAGIC` (or `SNAPSHOT_MAGIC_LEGACY`, for a state
//!   whose DSM transactions are still numbered the older way:
//!   [`crate::state::Record::GrantIds`]), then bincode of the state.
//!   Written to `snapshot.new`, synced, renamed over `snapshot`, directory
//!   synced.
//! - `log`: records in `dipc_replica::frames`, each `[len: u32 LE][crc32 of payload: u32 LE]
//!   [payload]`, payload = bincode of `(seq, record)`. Emptied after a
//!   snapshot; records the snapshot already holds (a crash between the
//!   rename and the truncation) are skipped by their sequence number.
//!
//! A record is appended before its effects leave the referee; with
//! [`Fsync::Always`] it is also on disk before then (one `fdatasync`
//! for every request decided meanwhile). Recovery cuts a torn
//! last record (a crash in the middle of a write) and refuses a log whose
//! damage is anywhere else.

use crate::state::{Record, State};
use dipc_replica::frames::{self, FrameError, Frames};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const SNAPSHOT_MAGIC: &[u8; 8] = b"DIPCSNP3";
/// The same layout, from before [`crate::state::Record::GrantIds`].
const SNAPSHOT_MAGIC_LEGACY: &[u8; 8] = b"DIPCSNP2";
/// Largest record accepted when reading a log (a request frame, or a page).
const MAX_RECORD: usize = 1 << 20;

/// When the log reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Before any answer that depends on a record leaves the referee.
    Always,
    /// Every interval, by a background thread: a host crash may lose the
    /// last interval's changes; a referee crash loses nothing.
    Every(Duration),
    /// Left to the kernel: a referee crash loses nothing, a host crash
    /// may lose what was not written back.
    Never,
}

impl std::str::FromStr for Fsync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            _ => {
                let ms = s
                    .strip_suffix("ms")
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|&n| (1..=60_000).contains(&n))
                    .ok_or_else(|| format!("fsync policy {s:?}: always, never, or 1ms..60000ms"))?;
                Ok(Fsync::Every(Duration::from_millis(ms)))
            }
        }
    }
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fsync::Always => write!(f, "always"),
            Fsync::Every(d) => write!(f, "{}ms", d.as_millis()),
            Fsync::Never => write!(f, "never"),
        }
    }
}

/// `state` in the snapshot format (also a replicated referee's raft
/// snapshot).
pub fn encode_state(state: &State) -> io::Result<Vec<u8>> {
    let mut b = magic(state).to_vec();
    bincode::serialize_into(&mut b, state).map_err(io::Error::other)?;
    Ok(b)
}

/// The snapshot magic for `state`.
fn magic(state: &State) -> &'static [u8; 8] {
    if state.objects.legacy_ids() {
        SNAPSHOT_MAGIC_LEGACY
    } else {
        SNAPSHOT_MAGIC
    }
}

/// What [`encode_state`] wrote (or an older dipcd of the same layout).
pub fn decode_state(bytes: &[u8]) -> io::Result<State> {
    let (body, legacy) = if let Some(b) = bytes.strip_prefix(SNAPSHOT_MAGIC.as_slice()) {
        (b, false)
    } else if let Some(b) = bytes.strip_prefix(SNAPSHOT_MAGIC_LEGACY.as_slice()) {
        (b, true)
    } else if bytes.starts_with(b"DIPCSNP") {
        return Err(corrupt(
            "a snapshot of another dipcd version (objects without cluster-wide ids); start \
             this referee with an empty --state-dir"
                .into(),
        ));
    } else {
        return Err(corrupt("not a dipcd snapshot".into()));
    };
    let mut s: State = bincode::deserialize(body).map_err(|e| corrupt(e.to_string()))?;
    s.objects.set_legacy_ids(legacy);
    Ok(s)
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Sequence number of the snapshot (0: none).
    pub snapshot_seq: u64,
    /// Log records applied on top of it.
    pub records: u64,
    /// Bytes cut from a torn last record.
    pub torn_bytes: u64,
}

/// The open log.
pub struct Store {
    dir: PathBuf,
    log: Arc<File>,
    fsync: Fsync,
    snapshot_every: u64,
    /// Log bytes written, and known to be on disk.
    written: u64,
    synced: u64,
    /// Records in the log.
    records: u64,
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store {
    /// Opens (creating) the store in `dir` and recovers the state from it;
    /// a new directory gives `fresh`.
    pub fn open(
        dir: &Path,
        fsync: Fsync,
        snapshot_every: u64,
        fresh: State,
    ) -> io::Result<(Store, State, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let mut rec = Recovered::default();
        let snap = dir.join("snapshot");
        let mut state = match std::fs::read(&snap) {
            Ok(bytes) => {
                let s = decode_state(&bytes)
                    .map_err(|e| corrupt(format!("{}: {e}", snap.display())))?;
                rec.snapshot_seq = s.seq;
                s
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The log may have been written by an older dipcd: its
                // records are replayed the older way until a `GrantIds`
                // (which a newer one logs first thing when it starts).
                let mut s = fresh;
                s.objects.set_legacy_ids(true);
                s
            }
            Err(e) => return Err(e),
        };
        let path = dir.join("log");
        let mut log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)?;
        let mut records = 0;
        let mut frames = Frames::new(&bytes, MAX_RECORD);
        let mut at = 0;
        loop {
            let next = frames.next().map_err(|e| match e {
                FrameError::TooLong { at, len } => corrupt(format!(
                    "{}: record at byte {at} claims {len} bytes",
                    path.display()
                )),
                FrameError::Damaged { at } => corrupt(format!(
                    "{}: damaged record at byte {at} (of {}); refusing to recover past it",
                    path.display(),
                    bytes.len()
                )),
            })?;
            let Some((start, payload, last)) = next else {
                break;
            };
            let Ok((seq, r)) = bincode::deserialize::<(u64, Record)>(payload) else {
                if last {
                    // A torn write may leave a whole-looking last record.
                    break;
                }
                return Err(corrupt(format!(
                    "{}: damaged record at byte {start} (of {}); refusing to recover past it",
                    path.display(),
                    bytes.len()
                )));
            };
            at = frames.end();
            records += 1;
            if seq <= state.seq {
                continue;
            }
            if seq != state.seq + 1 {
                return Err(corrupt(format!(
                    "{}: record {seq} follows {}; records are missing",
                    path.display(),
                    state.seq
                )));
            }
            state.apply(&r);
            rec.records += 1;
        }
        if at < bytes.len() {
            rec.torn_bytes = (bytes.len() - at) as u64;
            tracing::warn!(
                path = %path.display(),
                bytes = rec.torn_bytes,
                "the log ends in a torn record (a crash while writing); cutting it"
            );
            log.set_len(at as u64)?;
            log.sync_all()?;
        }
        log.seek(SeekFrom::Start(at as u64))?;
        let store = Store {
            dir: dir.to_path_buf(),
            log: Arc::new(log),
            fsync,
            snapshot_every: snapshot_every.max(1),
            written: at as u64,
            synced: at as u64,
            records,
        };
        Ok((store, state, rec))
    }

    /// The fsync policy.
    pub fn fsync(&self) -> Fsync {
        self.fsync
    }

    /// Appends `rec`, already applied as record `seq`.
    pub fn append(&mut self, seq: u64, rec: &Record) -> io::Result<()> {
        let payload = bincode::serialize(&(seq, rec)).map_err(io::Error::other)?;
        let buf = frames::encode(&payload);
        (&*self.log).write_all(&buf)?;
        self.written += buf.len() as u64;
        self.records += 1;
        Ok(())
    }

    /// Whether the log has grown enough for a snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.records >= self.snapshot_every
    }

    /// What a sync needs to bring the log to the disk, if it is not there
    /// yet: the file and the length to record afterwards. Taken under the
    /// lock; the sync itself runs without it, so requests go on being
    /// logged meanwhile.
    pub fn unsynced(&self) -> Option<(Arc<File>, u64)> {
        (self.synced < self.written).then(|| (self.log.clone(), self.written))
    }

    /// Records that the log is on disk up to `upto`.
    pub fn synced(&mut self, upto: u64) {
        self.synced = self.synced.max(upto);
    }

    /// Writes a snapshot of `state` and empties the log.
    pub fn snapshot(&mut self, state: &State) -> io::Result<()> {
        let tmp = self.dir.join("snapshot.new");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(magic(state))?;
            bincode::serialize_into(io::BufWriter::new(&mut f), state).map_err(io::Error::other)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join("snapshot"))?;
        sync_dir(&self.dir)?;
        self.log.set_len(0)?;
        self.log.sync_all()?;
        (&*self.log).seek(SeekFrom::Start(0))?;
        self.written = 0;
        self.synced = 0;
        self.records = 0;
        Ok(())
    }

    /// Log size in bytes and records (for status).
    pub fn size(&self) -> (u64, u64) {
        (self.written, self.records)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
