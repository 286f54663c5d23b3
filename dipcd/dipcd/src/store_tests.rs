//! The log and snapshots: what is recovered equals what was applied, a
//! torn last record is cut, damage elsewhere is refused.

use super::*;
use crate::referee::Limits;
use crate::state::{Outgoing, Record, State};
use dipc_wire::{
    decode, Class, Cred, Frame, Get, MsgRcv, MsgSnd, PageAck, PageReq, SemOp, Sops, PAGE_LEN,
};
use std::path::PathBuf;

const ROOT: Cred = Cred::new(0, 0, dipc_wire::CAP_SYS_ADMIN | dipc_wire::CAP_IPC_OWNER);
const IPC_CREAT: i32 = 0o1000;
const SEM_UNDO: i16 = 0x1000;

/// A fresh directory under the system's temporary directory.
fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dipcd-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn frame(req: u64, f: Frame<'_>) -> Vec<u8> {
    let mut b = vec![0u8; f.encoded_len()];
    let n = f.encode(req, &mut b).unwrap();
    b.truncate(n);
    b
}

fn req(node: u32, req_id: u64, f: Frame<'_>) -> Record {
    Record::Request {
        node,
        now: 1_700_000_000 + req_id as i64,
        frame: frame(req_id, f),
    }
}

fn get(class: Class, key: i32, size: u64) -> Frame<'static> {
    Frame::Get(Get {
        class,
        key,
        flags: IPC_CREAT | 0o666,
        size,
        cred: ROOT,
        pid: 7,
    })
}

fn semop<'a>(oid: u64, pid: u32, sops: &'a [u8]) -> Frame<'a> {
    Frame::SemOp(SemOp {
        oid,
        pid,
        cred: ROOT,
        sops: Sops::new(sops).unwrap(),
    })
}

/// One `struct sembuf` on the wire.
fn sembuf(num: u16, op: i16, flg: i16) -> Vec<u8> {
    [num.to_le_bytes(), op.to_le_bytes(), flg.to_le_bytes()].concat()
}

/// The status result addressed to `req_id` among `out`.
fn result_of(out: &[Outgoing], req_id: u64) -> Option<i64> {
    out.iter().find_map(|o| {
        let (m, _) = decode(&o.bytes).ok()?;
        match m.frame {
            Frame::Status { result } if m.req_id == req_id => Some(result),
            _ => None,
        }
    })
}

/// A workload over every kind of state: two nodes, a semaphore set with a
/// sleeper and undo records, a queue with messages, a segment with a page
/// written back by its owner and an invalidation in flight.
fn workload() -> Vec<Record> {
    workload_as(false)
}

/// [`workload`] as a dipcd before [`Record::GrantIds`] logged it (`legacy`):
/// no such record, and a grant made at once took no transaction id.
fn workload_as(legacy: bool) -> Vec<Record> {
    let mut v = vec![
        Record::Limits(Limits::default().into()),
        // As the server logs it, after the limits.
        Record::Tuning {
            readahead: crate::referee::dsm::READAHEAD_MAX,
            msg_leases: true,
        },
        Record::Hello {
            node: 1,
            incarnation: 11,
            now: 1,
        },
        Record::Hello {
            node: 2,
            incarnation: 22,
            now: 1,
        },
        req(1, 2, get(Class::Sem, 100, 2)),
        req(1, 3, get(Class::Msg, 200, 0)),
        req(2, 2, get(Class::Shm, 300, 2 * PAGE_LEN as u64)),
    ];
    if !legacy {
        v.insert(2, Record::GrantIds);
    }
    // oids 1, 2, 3 in that order.
    let up = sembuf(0, 3, SEM_UNDO);
    v.push(req(1, 4, semop(1, 50, &up)));
    let down = sembuf(1, -1, 0);
    v.push(req(2, 3, semop(1, 60, &down))); // sleeps
    for i in 0..5u64 {
        v.push(req(
            1,
            10 + i,
            Frame::MsgSnd(MsgSnd {
                oid: 2,
                pid: 50,
                cred: ROOT,
                mtype: 1 + i as i64,
                flags: 0,
                lease: 0,
                epoch: 0,
                text: b"hello, queue",
            }),
        ));
    }
    v.push(req(
        2,
        4,
        Frame::MsgRcv(MsgRcv {
            oid: 2,
            pid: 60,
            cred: ROOT,
            msgtyp: 2,
            flags: 0,
            size: 64,
            epoch: 0,
        }),
    ));
    // Node 1 writes page 0, node 2 takes it over (the data comes back),
    // then node 1 asks for it again: an invalidation to node 2 is pending.
    let page = vec![0x5au8; PAGE_LEN];
    v.push(req(
        1,
        0,
        Frame::PageReq(PageReq {
            oid: 3,
            page: 0,
            write: 1,
            whole: 0,
            applied: 0,
        }),
    ));
    v.push(req(
        2,
        0,
        Frame::PageReq(PageReq {
            oid: 3,
            page: 0,
            write: 1,
            whole: 0,
            applied: 0,
        }),
    ));
    // The invalidation to node 1 was transaction 2 (node 1's grant, made
    // at once, was 1); before GrantIds, 1.
    v.push(req(
        1,
        if legacy { 1 } else { 2 },
        Frame::PageAck(PageAck {
            oid: 3,
            page: 0,
            data: Some(&page),
            sent: 0,
        }),
    ));
    v.push(req(
        1,
        0,
        Frame::PageReq(PageReq {
            oid: 3,
            page: 0,
            write: 0,
            whole: 0,
            applied: 1,
        }),
    ));
    v
}

/// The state's bytes: equal bytes, equal state.
fn image(s: &State) -> Vec<u8> {
    bincode::serialize(s).unwrap()
}

/// Applies and logs `records`; returns the live state.
fn run(dir: &std::path::Path, records: &[Record], every: u64) -> State {
    let (mut store, mut st, rec) =
        Store::open(dir, Fsync::Always, every, State::new(Limits::default())).unwrap();
    assert_eq!(rec, Recovered::default());
    for r in records {
        store.append(st.seq + 1, r).unwrap();
        st.apply(r);
        if store.wants_snapshot() {
            store.snapshot(&st).unwrap();
        }
    }
    st
}

fn recover(dir: &std::path::Path) -> io::Result<(State, Recovered)> {
    Store::open(dir, Fsync::Always, 1000, State::new(Limits::default())).map(|(_, s, r)| (s, r))
}

#[test]
fn recovery_gives_back_what_was_applied() {
    let dir = tempdir("replay");
    let live = run(&dir, &workload(), 1000);
    // The workload reached every kind of state.
    assert_eq!(live.objects.waiters(), 1, "node 2's semop sleeps");
    assert_eq!(live.objects.pending_invals(2).len(), 1);
    assert_eq!(live.nodes.len(), 2);
    let (back, rec) = recover(&dir).unwrap();
    assert_eq!(rec.records, workload().len() as u64);
    assert_eq!(rec.snapshot_seq, 0);
    assert_eq!(image(&back), image(&live));
    // And again: recovery itself writes nothing.
    let (again, _) = recover(&dir).unwrap();
    assert_eq!(image(&again), image(&live));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Found by review: grants made at once now take a transaction id, so a
/// log of an older dipcd replayed the new way would shift every id after
/// the first such grant, and its acks (which name the older ids) would be
/// ignored: the page never home, the directory out of step with the nodes.
/// A log without `GrantIds` is replayed the older way, up to the
/// `GrantIds` a newer referee logs when it starts; a snapshot says which
/// way its state is (its magic).
#[test]
fn a_log_of_an_older_dipcd_is_replayed_as_it_was_numbered() {
    let dir = tempdir("legacy");
    let old = workload_as(true);
    let live = run(&dir, &old, 1000);
    // Node 1's ack (transaction 1, the older way) was taken: the page went
    // home, and node 2, its owner now, owes the invalidation.
    assert_eq!(live.objects.pending_invals(2).len(), 1);
    assert_eq!(live.objects.pending_invals(1).len(), 0);
    let (back, _) = recover(&dir).unwrap();
    assert_eq!(image(&back), image(&live));
    assert_eq!(
        back.objects.pending_invals(2).len(),
        1,
        "an older ack ignored"
    );
    assert!(back.objects.legacy_ids());
    // A snapshot before GrantIds keeps the older magic, and says so.
    {
        let (mut store, st, _) = Store::open(&dir, Fsync::Always, 1000, State::default()).unwrap();
        store.snapshot(&st).unwrap();
    }
    assert!(std::fs::read(dir.join("snapshot"))
        .unwrap()
        .starts_with(b"DIPCSNP2"));
    let (back, _) = recover(&dir).unwrap();
    assert!(back.objects.legacy_ids());
    assert_eq!(image(&back), image(&live));
    // The newer referee starts: GrantIds, and its snapshots are the new kind.
    {
        let (mut store, mut st, _) =
            Store::open(&dir, Fsync::Always, 1000, State::default()).unwrap();
        store.append(st.seq + 1, &Record::GrantIds).unwrap();
        st.apply(&Record::GrantIds);
        assert!(!st.objects.legacy_ids());
        store.snapshot(&st).unwrap();
    }
    assert!(std::fs::read(dir.join("snapshot"))
        .unwrap()
        .starts_with(b"DIPCSNP3"));
    let (back, _) = recover(&dir).unwrap();
    assert!(!back.objects.legacy_ids());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshots_empty_the_log() {
    let dir = tempdir("snap");
    let w = workload();
    let live = run(&dir, &w, 4);
    let (back, rec) = recover(&dir).unwrap();
    assert_eq!(image(&back), image(&live));
    assert!(rec.snapshot_seq >= 4 && rec.snapshot_seq % 4 == 0);
    assert_eq!(rec.snapshot_seq + rec.records, w.len() as u64);
    assert!(std::fs::metadata(dir.join("log")).unwrap().len() < 4096 * 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn records_in_both_snapshot_and_log_apply_once() {
    // A crash after the snapshot's rename, before the log was emptied.
    let dir = tempdir("overlap");
    let w = workload();
    let live = run(&dir, &w, 1000);
    let log = std::fs::read(dir.join("log")).unwrap();
    {
        let (mut store, st, _) = Store::open(&dir, Fsync::Always, 1000, State::default()).unwrap();
        store.snapshot(&st).unwrap();
    }
    std::fs::write(dir.join("log"), &log).unwrap();
    let (back, rec) = recover(&dir).unwrap();
    assert_eq!(rec.records, 0);
    assert_eq!(image(&back), image(&live));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_last_record_is_cut() {
    let dir = tempdir("torn");
    let w = workload();
    let live = run(&dir, &w, 1000);
    let good = std::fs::metadata(dir.join("log")).unwrap().len();
    // Half of one more record, as a crash in the middle of a write leaves.
    let extra = req(1, 99, get(Class::Sem, 101, 1));
    let payload = bincode::serialize(&(live.seq + 1, &extra)).unwrap();
    let mut rec = (payload.len() as u32).to_le_bytes().to_vec();
    rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    rec.extend_from_slice(&payload);
    for cut in [3, 8, rec.len() / 2, rec.len() - 1] {
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("log"))
            .unwrap();
        f.write_all(&rec[..cut]).unwrap();
        drop(f);
        let (back, r) = recover(&dir).unwrap();
        assert_eq!(r.torn_bytes, cut as u64, "cut at {cut}");
        assert_eq!(image(&back), image(&live));
        assert_eq!(std::fs::metadata(dir.join("log")).unwrap().len(), good);
    }
    // A whole last record whose bytes are wrong is a torn write too.
    let mut bad = rec.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    OpenOptions::new()
        .append(true)
        .open(dir.join("log"))
        .unwrap()
        .write_all(&bad)
        .unwrap();
    let (back, r) = recover(&dir).unwrap();
    assert_eq!(r.torn_bytes, bad.len() as u64);
    assert_eq!(image(&back), image(&live));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damage_before_the_end_is_refused() {
    let dir = tempdir("damage");
    run(&dir, &workload(), 1000);
    let path = dir.join("log");
    let mut log = std::fs::read(&path).unwrap();
    // A byte inside the first record's payload.
    log[12] ^= 0x01;
    std::fs::write(&path, &log).unwrap();
    let e = recover(&dir).err().expect("damaged log accepted");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("damaged record at byte 0"), "{e}");
    // A snapshot that is not one.
    std::fs::write(dir.join("snapshot"), b"garbage").unwrap();
    let e = recover(&dir).err().expect("bad snapshot accepted");
    assert!(e.to_string().contains("not a dipcd snapshot"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn same_incarnation_resumes_and_calls_are_answered_once() {
    let mut st = State::new(Limits::default());
    let hello = |st: &mut State, inc| {
        st.apply(&Record::Hello {
            node: 1,
            incarnation: inc,
            now: 5,
        })
        .resumed
    };
    assert!(!hello(&mut st, 7));
    st.apply(&req(1, 2, get(Class::Sem, 1, 1)));
    let up = sembuf(0, 1, SEM_UNDO);
    let out = st.apply(&req(1, 3, semop(1, 9, &up))).out;
    assert_eq!(result_of(&out, 3), Some(0));
    // The same call again (its answer was lost with the connection): the
    // cached answer, and the semaphore moved once.
    let b = frame(3, semop(1, 9, &up));
    let (m, _) = decode(&b).unwrap();
    let dup = st.duplicate(1, &m).expect("not recognised as sent before");
    assert_eq!(result_of(&dup, 3), Some(0));
    assert_eq!(st.objects.sem(1).unwrap().sems[0].val, 1);
    // A sleeping call sent again: nothing to send, still one sleeper.
    let down = sembuf(0, -5, 0);
    assert!(st.apply(&req(1, 4, semop(1, 9, &down))).out.is_empty());
    let b = frame(4, semop(1, 9, &down));
    let (m, _) = decode(&b).unwrap();
    assert_eq!(st.duplicate(1, &m).map(|v| v.len()), Some(0));
    // Resuming keeps the undo record and the sleeper.
    assert!(hello(&mut st, 7));
    assert_eq!(st.objects.waiters(), 1);
    assert_eq!(
        st.objects
            .sem(1)
            .unwrap()
            .semadj(crate::referee::sem::Proc { node: 1, pid: 9 }, 0),
        -1
    );
    // A new incarnation ends the old session: undo applied, sleeper gone,
    // cache dropped.
    assert!(!hello(&mut st, 8));
    assert_eq!(st.objects.waiters(), 0);
    assert_eq!(st.objects.sem(1).unwrap().sems[0].val, 0);
    assert!(st.duplicate(1, &m).is_none());
    // The cache is pruned by a sync ping's mark.
    let mut c = crate::state::ReplyCache::default();
    assert_eq!(c.count(), 0);
    let mark = {
        st.apply(&req(1, 5, get(Class::Sem, 1, 1)));
        st.replies.get(&1).map(|c| c.mark()).unwrap()
    };
    st.replies.get_mut(&1).unwrap().prune(mark);
    assert_eq!(st.replies.get(&1).unwrap().count(), 0);
    c.prune(0);
}
