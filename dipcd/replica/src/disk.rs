//! A replica's durable raft state, in one directory:
//!
//! - `raft-wal`: an append-only log of frames, each `[len: u32 LE]
//!   [crc32 of body: u32 LE][body]`, body = one kind byte and its protobuf
//!   (or, for members, [`encode_members`]): log entries (a later entry
//!   with index `i` replaces every entry from `i` on, as raft overwrites a
//!   follower's conflicting tail), hard states, configurations and the
//!   referees' addresses; the last of each kind wins. One `fdatasync`
//!   covers everything appended before it.
//! - `raft-snapshot`: the newest snapshot, `SNAP_MAGIC`, the crc32 of the
//!   rest, then raft's `Snapshot` (its metadata, and as data the members
//!   followed by the state machine's own snapshot). Written to a new file,
//!   synced, renamed over the old one; the WAL is then rewritten with only
//!   what follows it.
//!
//! Recovery cuts a torn last frame (a crash in the middle of a write) and
//! refuses a WAL damaged anywhere else. [`Storage`] is what raft-rs reads
//! the same state through.

use crate::frames::{self, FrameError, Frames};
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

const SNAP_MAGIC: &[u8; 8] = b"DIPCRSN1";
const WAL: &str = "raft-wal";
const SNAP: &str = "raft-snapshot";
/// Largest frame accepted when reading the WAL.
const MAX_FRAME: usize = 64 << 20;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_CONF_STATE: u8 = 3;
const KIND_MEMBERS: u8 = 4;

/// Referee id -> the address its peers and the nodes reach it at.
pub type Members = BTreeMap<u64, String>;

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Encodes `members`: a count, then each id, address length and address.
pub fn encode_members(members: &Members) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for (id, addr) in members {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&(addr.len() as u32).to_le_bytes());
        b.extend_from_slice(addr.as_bytes());
    }
    b
}

/// Decodes what [`encode_members`] wrote at the start of `b`; returns the
/// members and the bytes that follow them.
pub fn decode_members(b: &[u8]) -> Option<(Members, &[u8])> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.len() >= n).then(|| b.split_at(n))?;
        *b = rest;
        Some(head)
    }
    let mut b = b;
    let count = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?);
    let mut members = Members::new();
    for _ in 0..count {
        let id = u64::from_le_bytes(take(&mut b, 8)?.try_into().ok()?);
        let len = u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?) as usize;
        let addr = std::str::from_utf8(take(&mut b, len)?).ok()?;
        members.insert(id, addr.to_string());
    }
    Some((members, b))
}

/// What raft-rs reads: the hard state, configuration, newest snapshot and
/// the entries after it.
#[derive(Default)]
pub struct Core {
    hs: HardState,
    cs: ConfState,
    snap: Snapshot,
    /// Entries `snap.index + 1 ..`, in order.
    entries: Vec<Entry>,
    members: Members,
}

impl Core {
    fn snap_index(&self) -> u64 {
        self.snap.get_metadata().index
    }

    fn last_index(&self) -> u64 {
        self.snap_index() + self.entries.len() as u64
    }

    /// Puts `e` in place: entries from its index on are dropped first.
    /// An entry the snapshot covers is skipped.
    fn put(&mut self, e: Entry) -> Result<(), String> {
        let si = self.snap_index();
        if e.index <= si {
            return Ok(());
        }
        if e.index > self.last_index() + 1 {
            return Err(format!(
                "entry {} follows {}: entries are missing",
                e.index,
                self.last_index()
            ));
        }
        self.entries.truncate((e.index - si - 1) as usize);
        self.entries.push(e);
        Ok(())
    }

    /// The newest snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// The referees' addresses.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// The configuration.
    pub fn conf_state(&self) -> &ConfState {
        &self.cs
    }

    /// The term of entry `idx`, if held (or the snapshot's).
    pub fn term_of(&self, idx: u64) -> Option<u64> {
        let si = self.snap_index();
        if idx == si {
            return Some(self.snap.get_metadata().term);
        }
        (idx > si)
            .then(|| self.entries.get((idx - si - 1) as usize))
            .flatten()
            .map(|e| e.term)
    }
}

/// raft-rs's view of a replica's [`Core`] (shared with its [`Disk`]).
#[derive(Clone, Default)]
pub struct Storage(Arc<RwLock<Core>>);

impl Storage {
    /// Reads the core.
    pub fn rl(&self) -> RwLockReadGuard<'_, Core> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn wl(&self) -> RwLockWriteGuard<'_, Core> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl raft::Storage for Storage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let c = self.rl();
        Ok(RaftState::new(c.hs.clone(), c.cs.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let c = self.rl();
        let si = c.snap_index();
        if low <= si {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > c.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut ents = c.entries[(low - si - 1) as usize..(high - si - 1) as usize].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let c = self.rl();
        if idx < c.snap_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        c.term_of(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.rl().snap_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.rl().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let c = self.rl();
        if c.snap_index() < request_index {
            // A newer one is made at the next compaction.
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(c.snap.clone())
    }
}

/// The open WAL and snapshot of one replica.
pub struct Disk {
    dir: PathBuf,
    sync: bool,
    wal: File,
    /// Appended since the last sync.
    dirty: bool,
    storage: Storage,
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1 + body.len());
    payload.push(kind);
    payload.extend_from_slice(body);
    frames::encode(&payload)
}

fn pb<M: protobuf::Message>(m: &M) -> io::Result<Vec<u8>> {
    m.write_to_bytes().map_err(io::Error::other)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` (a new file, synced, renamed over it).
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.new"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// What [`Disk::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Nothing was there: the replica starts with the bootstrap
    /// configuration.
    pub fresh: bool,
    /// Bytes cut from a torn last frame.
    pub torn_bytes: u64,
    /// Frames read.
    pub frames: u64,
}

impl Disk {
    /// Opens (creating) the replica's state in `dir`. A new directory
    /// starts with `voters` as its configuration and `members` as the
    /// referees' addresses (a referee added later starts with none, and
    /// learns both from the leader). With `sync`, every append reaches the
    /// disk before [`Disk::sync`] returns.
    pub fn open(
        dir: &Path,
        sync: bool,
        voters: &[u64],
        members: &Members,
    ) -> io::Result<(Disk, Opened)> {
        std::fs::create_dir_all(dir)?;
        let mut core = Core::default();
        let mut opened = Opened::default();
        let snap_path = dir.join(SNAP);
        match std::fs::read(&snap_path) {
            Ok(bytes) => {
                let bad = || corrupt(format!("{}: not a dipc raft snapshot", snap_path.display()));
                let rest = bytes.strip_prefix(SNAP_MAGIC.as_slice()).ok_or_else(bad)?;
                if rest.len() < 4 {
                    return Err(bad());
                }
                let (crc, body) = rest.split_at(4);
                if crc32fast::hash(body).to_le_bytes() != crc {
                    return Err(corrupt(format!(
                        "{}: checksum mismatch",
                        snap_path.display()
                    )));
                }
                let snap = Snapshot::parse_from_bytes(body).map_err(|_| bad())?;
                let (members, _) = decode_members(snap.get_data()).ok_or_else(bad)?;
                core.members = members;
                core.cs = snap.get_metadata().get_conf_state().clone();
                core.hs.commit = snap.get_metadata().index;
                core.hs.term = snap.get_metadata().term;
                core.snap = snap;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let path = dir.join(WAL);
        let mut wal = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        wal.read_to_end(&mut bytes)?;
        let mut frames = Frames::new(&bytes, MAX_FRAME);
        loop {
            let next = frames.next().map_err(|e| match e {
                FrameError::TooLong { at, len } => corrupt(format!(
                    "{}: frame at byte {at} claims {len} bytes",
                    path.display()
                )),
                FrameError::Damaged { at } => corrupt(format!(
                    "{}: damaged frame at byte {at} (of {}); refusing to recover past it",
                    path.display(),
                    bytes.len()
                )),
            })?;
            let Some((at, payload, _)) = next else {
                break;
            };
            if payload.is_empty() {
                return Err(corrupt(format!(
                    "{}: frame at byte {at} claims 0 bytes",
                    path.display()
                )));
            }
            let body = &payload[1..];
            let bad = |what: &str| {
                corrupt(format!(
                    "{}: undecodable {what} at byte {at}",
                    path.display()
                ))
            };
            match payload[0] {
                KIND_ENTRY => {
                    let e = Entry::parse_from_bytes(body).map_err(|_| bad("entry"))?;
                    core.put(e)
                        .map_err(|m| corrupt(format!("{}: {m}", path.display())))?;
                }
                KIND_HARD_STATE => {
                    let hs = HardState::parse_from_bytes(body).map_err(|_| bad("hard state"))?;
                    // Never behind the snapshot.
                    let commit = hs.commit.max(core.snap_index());
                    core.hs = hs;
                    core.hs.commit = commit;
                }
                KIND_CONF_STATE => {
                    core.cs =
                        ConfState::parse_from_bytes(body).map_err(|_| bad("configuration"))?;
                }
                KIND_MEMBERS => {
                    core.members = decode_members(body).ok_or_else(|| bad("members"))?.0;
                }
                k => return Err(bad(&format!("frame kind {k}"))),
            }
            opened.frames += 1;
        }
        let at = frames.end();
        if at < bytes.len() {
            opened.torn_bytes = (bytes.len() - at) as u64;
            wal.set_len(at as u64)?;
            wal.sync_all()?;
        }
        let mut disk = Disk {
            dir: dir.to_path_buf(),
            sync,
            wal,
            dirty: false,
            storage: Storage::default(),
        };
        if opened.frames == 0 && core.snap_index() == 0 {
            opened.fresh = true;
            core.cs.voters = voters.to_vec();
            core.members = members.clone();
            let mut b = frame(KIND_CONF_STATE, &pb(&core.cs)?);
            b.extend(frame(KIND_MEMBERS, &encode_members(&core.members)));
            disk.write(&b)?;
            disk.sync()?;
        }
        disk.storage = Storage(Arc::new(RwLock::new(core)));
        Ok((disk, opened))
    }

    /// What raft-rs reads.
    pub fn storage(&self) -> Storage {
        self.storage.clone()
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.wal.write_all(b)?;
        self.dirty = true;
        Ok(())
    }

    /// Appends `ents` (replacing any entries from the first one's index on).
    pub fn append(&mut self, ents: &[Entry]) -> io::Result<()> {
        let mut b = Vec::new();
        for e in ents {
            b.extend(frame(KIND_ENTRY, &pb(e)?));
        }
        self.write(&b)?;
        let mut c = self.storage.wl();
        for e in ents {
            c.put(e.clone()).map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Records the hard state.
    pub fn set_hard_state(&mut self, hs: &HardState) -> io::Result<()> {
        self.write(&frame(KIND_HARD_STATE, &pb(hs)?))?;
        self.storage.wl().hs = hs.clone();
        Ok(())
    }

    /// Records the commit index alone.
    pub fn set_commit(&mut self, commit: u64) -> io::Result<()> {
        let mut hs = self.storage.rl().hs.clone();
        hs.commit = commit;
        self.set_hard_state(&hs)
    }

    /// Records a new configuration and the referees' addresses.
    pub fn set_conf(&mut self, cs: &ConfState, members: &Members) -> io::Result<()> {
        let mut b = frame(KIND_CONF_STATE, &pb(cs)?);
        b.extend(frame(KIND_MEMBERS, &encode_members(members)));
        self.write(&b)?;
        let mut c = self.storage.wl();
        c.cs = cs.clone();
        c.members = members.clone();
        Ok(())
    }

    /// With `sync`: brings everything appended to the disk.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.sync && self.dirty {
            self.wal.sync_data()?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Installs `snap` (made here, or received from the leader): written
    /// first, then every entry it covers is dropped and the WAL rewritten
    /// with what follows it (an entry past it is kept only if its term at
    /// the snapshot's index matches, as raft requires).
    pub fn install(&mut self, snap: &Snapshot) -> io::Result<()> {
        let body = pb(snap)?;
        let mut file = SNAP_MAGIC.to_vec();
        file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        file.extend_from_slice(&body);
        replace(&self.dir, SNAP, &file)?;
        let meta = snap.get_metadata();
        let (members, _) = decode_members(snap.get_data())
            .ok_or_else(|| corrupt("a snapshot without members".into()))?;
        let mut c = self.storage.wl();
        let keep = c.term_of(meta.index) == Some(meta.term);
        let si = c.snap_index();
        let tail: Vec<Entry> = if keep && meta.index >= si {
            c.entries[(meta.index - si) as usize..].to_vec()
        } else {
            Vec::new()
        };
        c.snap = snap.clone();
        c.entries = tail;
        c.hs.commit = c.hs.commit.max(meta.index);
        c.hs.term = c.hs.term.max(meta.term);
        if !keep {
            // A snapshot that replaces the log brings its configuration.
            c.cs = meta.get_conf_state().clone();
            c.members = members;
        }
        // The WAL again, with only what follows the snapshot.
        let mut b = frame(KIND_HARD_STATE, &pb(&c.hs)?);
        b.extend(frame(KIND_CONF_STATE, &pb(&c.cs)?));
        b.extend(frame(KIND_MEMBERS, &encode_members(&c.members)));
        for e in &c.entries {
            b.extend(frame(KIND_ENTRY, &pb(e)?));
        }
        drop(c);
        replace(&self.dir, WAL, &b)?;
        self.wal = OpenOptions::new().append(true).open(self.dir.join(WAL))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn members() -> Members {
        [
            (1, "10.0.0.1:7420".to_string()),
            (2, "10.0.0.2:7420".into()),
        ]
        .into()
    }

    #[test]
    fn reopens_what_it_wrote_with_conflicts_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut d, o) = Disk::open(dir.path(), true, &[1, 2], &members()).unwrap();
            assert!(o.fresh);
            d.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])
                .unwrap();
            // A new leader's entries replace 2 and 3.
            d.append(&[entry(2, 2, b"B")]).unwrap();
            let hs = HardState {
                term: 2,
                vote: 2,
                commit: 2,
                ..Default::default()
            };
            d.set_hard_state(&hs).unwrap();
            d.sync().unwrap();
        }
        let (d, o) = Disk::open(dir.path(), true, &[9], &Members::new()).unwrap();
        assert!(!o.fresh);
        let c = d.storage.rl();
        assert_eq!(c.last_index(), 2);
        assert_eq!(c.entries[1].get_data(), b"B");
        assert_eq!((c.hs.term, c.hs.vote, c.hs.commit), (2, 2, 2));
        assert_eq!(c.cs.voters, vec![1, 2]);
        assert_eq!(c.members, members());
    }

    #[test]
    fn a_torn_last_frame_is_cut_and_damage_before_it_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut d, _) = Disk::open(dir.path(), true, &[1], &Members::new()).unwrap();
            d.append(&[entry(1, 1, b"one"), entry(2, 1, b"two")])
                .unwrap();
        }
        let wal = dir.path().join(WAL);
        let len = std::fs::metadata(&wal).unwrap().len();
        let f = OpenOptions::new().write(true).open(&wal).unwrap();
        f.set_len(len - 3).unwrap();
        let (d, o) = Disk::open(dir.path(), true, &[1], &Members::new()).unwrap();
        assert!(o.torn_bytes > 0);
        assert_eq!(d.storage.rl().last_index(), 1);
        drop(d);
        // Damage in the first frame, with frames after it.
        let mut bytes = std::fs::read(&wal).unwrap();
        bytes[9] ^= 0xff;
        std::fs::write(&wal, &bytes).unwrap();
        let err = Disk::open(dir.path(), true, &[1], &Members::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains("damaged frame"), "{err}");
    }

    #[test]
    fn a_snapshot_drops_what_it_covers_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut d, _) = Disk::open(dir.path(), true, &[1, 2], &members()).unwrap();
            let ents: Vec<Entry> = (1..=5).map(|i| entry(i, 1, &[i as u8])).collect();
            d.append(&ents).unwrap();
            let mut s = Snapshot::default();
            s.mut_metadata().index = 3;
            s.mut_metadata().term = 1;
            s.mut_metadata().mut_conf_state().voters = vec![1, 2];
            let mut data = encode_members(&members());
            data.extend_from_slice(b"state");
            s.data = data.into();
            d.install(&s).unwrap();
            assert_eq!(d.storage.rl().entries.len(), 2);
        }
        let (d, _) = Disk::open(dir.path(), true, &[], &Members::new()).unwrap();
        let s = d.storage();
        use raft::Storage as _;
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.last_index().unwrap(), 5);
        assert_eq!(s.term(3).unwrap(), 1);
        assert!(s.term(2).is_err());
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 3);
        let snap = s.snapshot(0, 2).unwrap();
        let (m, rest) = decode_members(snap.get_data()).unwrap();
        assert_eq!((m, rest), (members(), &b"state"[..]));
    }
}
