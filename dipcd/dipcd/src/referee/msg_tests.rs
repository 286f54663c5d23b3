//! The referee's message queue semantics, against `ipc/msg.c` as documented
//! and against a small model.

use super::ipc::{IPC_CREAT, IPC_EXCL};
use super::msg::{IPC_NOWAIT, MSG_COPY, MSG_EXCEPT, MSG_NOERROR};
use super::sem::Waiter;
use super::*;
use dipc_wire::{msgcmd, MsgCtl, CAP_IPC_OWNER, CAP_SYS_ADMIN, CAP_SYS_RESOURCE};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const ROOT: Cred = Cred::new(0, 0, CAP_SYS_ADMIN | CAP_IPC_OWNER | CAP_SYS_RESOURCE);
const ALICE: Cred = Cred::new(1000, 1000, 0);
const BOB: Cred = Cred::new(1001, 1001, 0);
const NOW: i64 = 100;

/// A registry without message leases: every call decides here, as the
/// semantics tests below assume.
fn plain(l: Limits) -> Objects {
    let mut o = Objects::new(l);
    o.set_msg_leases(false);
    o
}

fn e(e: i32) -> i64 {
    -i64::from(e)
}

fn w(node: u32, req: u64) -> Waiter {
    Waiter { node, req }
}

fn msgget(o: &mut Objects, key: i32, flags: i32, cred: Cred) -> GetReply {
    o.get(
        &Get {
            class: Class::Msg,
            key,
            flags,
            size: 0,
            cred,
            pid: 1,
        },
        NOW,
    )
}

fn new_queue(o: &mut Objects) -> u64 {
    let r = msgget(o, 0x4d51, IPC_CREAT | 0o600, ALICE);
    assert_eq!(r.result, 0);
    r.oid
}

fn snd(
    o: &mut Objects,
    who: Waiter,
    oid: u64,
    mtype: i64,
    text: &[u8],
    flags: i32,
) -> (Option<i64>, Effects) {
    let (r, fx) = o.msgsnd(who, who.node * 100, oid, &ALICE, mtype, flags, text, NOW);
    (r.map(|(r, _)| r), fx)
}

fn rcv(
    o: &mut Objects,
    who: Waiter,
    oid: u64,
    msgtyp: i64,
    bufsz: u64,
    flags: i32,
) -> (Option<MsgReply>, Effects) {
    o.msgrcv(who, who.node * 100, oid, &ALICE, msgtyp, flags, bufsz, NOW)
}

/// A non-blocking receive's outcome: (type, text) or the negative errno.
fn take(
    o: &mut Objects,
    oid: u64,
    msgtyp: i64,
    bufsz: u64,
    flags: i32,
) -> Result<(i64, Vec<u8>), i64> {
    let r = rcv(o, w(1, 1), oid, msgtyp, bufsz, flags | IPC_NOWAIT)
        .0
        .expect("nowait answers");
    if r.result < 0 {
        Err(r.result)
    } else {
        assert_eq!(r.result as usize, r.text.len());
        Ok((r.mtype, r.text))
    }
}

fn ctl(o: &mut Objects, oid: u64, cmd: i32, cred: Cred) -> MsgCtlResult {
    o.msgctl(1, &mctl(oid, cmd, cred), NOW).0
}

fn mctl(oid: u64, cmd: i32, cred: Cred) -> MsgCtl {
    MsgCtl {
        oid,
        pid: 9,
        cred,
        cmd,
        set_uid: 1000,
        set_gid: 1000,
        set_mode: 0o600,
        set_qbytes: 16384,
    }
}

#[test]
fn msgget_semantics() {
    let mut o = plain(Limits {
        msgmni: 2,
        ..Limits::default()
    });
    assert_eq!(msgget(&mut o, 5, 0, ALICE).result, -errno::ENOENT);
    let a = msgget(&mut o, 5, IPC_CREAT | 0o640, ALICE);
    assert_eq!((a.result, a.perm.mode, a.size), (0, 0o640, 8192));
    assert_eq!(msgget(&mut o, 5, 0, BOB).oid, a.oid);
    assert_eq!(
        msgget(&mut o, 5, IPC_CREAT | IPC_EXCL, ALICE).result,
        -errno::EEXIST
    );
    assert_eq!(msgget(&mut o, 5, 0o600, BOB).result, -errno::EACCES);
    // A semaphore key of the same value is another object.
    assert_ne!(
        o.get(
            &Get {
                class: Class::Sem,
                key: 5,
                flags: IPC_CREAT | 0o600,
                size: 1,
                cred: ALICE,
                pid: 1,
            },
            NOW
        )
        .oid,
        a.oid
    );
    assert_eq!(msgget(&mut o, 6, IPC_CREAT, ALICE).result, 0);
    assert_eq!(msgget(&mut o, 7, IPC_CREAT, ALICE).result, -errno::ENOSPC);
}

#[test]
fn msgsnd_errors_in_linux_order() {
    let mut o = plain(Limits {
        msgmax: 100,
        msgmnb: 250,
        ..Limits::default()
    });
    let q = new_queue(&mut o);
    let bob = |o: &mut Objects, t: &[u8]| {
        o.msgsnd(w(1, 1), 1, q, &BOB, 1, 0, t, NOW)
            .0
            .map(|(r, _)| r)
    };
    assert_eq!(bob(&mut o, b"x"), Some(e(errno::EACCES)));
    assert_eq!(
        snd(&mut o, w(1, 1), q, 0, b"x", 0).0,
        Some(e(errno::EINVAL))
    );
    assert_eq!(
        snd(&mut o, w(1, 1), q, 1, &[0; 101], 0).0,
        Some(e(errno::EINVAL))
    );
    assert_eq!(
        snd(&mut o, w(1, 1), q + 9, 1, b"x", 0).0,
        Some(e(errno::EIDRM))
    );
    assert_eq!(snd(&mut o, w(1, 1), q, 1, &[1; 100], 0).0, Some(0));
    assert_eq!(snd(&mut o, w(1, 1), q, 2, &[2; 100], 0).0, Some(0));
    // 200 of 250 bytes used: 51 more do not fit.
    assert_eq!(
        snd(&mut o, w(1, 1), q, 3, &[3; 51], IPC_NOWAIT).0,
        Some(e(errno::EAGAIN))
    );
    assert_eq!(snd(&mut o, w(1, 1), q, 3, &[3; 50], IPC_NOWAIT).0, Some(0));
    let st = ctl(&mut o, q, msgcmd::IPC_STAT, ALICE);
    assert_eq!(
        (st.stat.qnum, st.stat.cbytes, st.stat.qbytes),
        (3, 250, 250)
    );
    assert_eq!((st.stat.lspid, st.stat.stime), (100, NOW));
    // Zero-length messages count against the message limit (qbytes).
    let mut o = plain(Limits {
        msgmnb: 2,
        ..Limits::default()
    });
    let q = new_queue(&mut o);
    assert_eq!(snd(&mut o, w(1, 1), q, 1, b"", 0).0, Some(0));
    assert_eq!(snd(&mut o, w(1, 1), q, 1, b"", 0).0, Some(0));
    assert_eq!(
        snd(&mut o, w(1, 1), q, 1, b"", IPC_NOWAIT).0,
        Some(e(errno::EAGAIN))
    );
}

#[test]
fn msgrcv_selects_like_find_msg() {
    let mut o = Objects::default();
    let q = new_queue(&mut o);
    for (t, body) in [(3, "a"), (1, "b"), (2, "c"), (1, "d"), (5, "e")] {
        assert_eq!(snd(&mut o, w(1, 1), q, t, body.as_bytes(), 0).0, Some(0));
    }
    let body = |r: Result<(i64, Vec<u8>), i64>| r.map(|(t, b)| (t, String::from_utf8(b).unwrap()));
    // Type 0: the oldest. MSG_COPY by index leaves it in place.
    assert_eq!(body(take(&mut o, q, 1, 10, MSG_COPY)), Ok((1, "b".into())));
    assert_eq!(
        body(take(&mut o, q, 9, 10, MSG_COPY)),
        Err(e(errno::ENOMSG))
    );
    assert_eq!(body(take(&mut o, q, 0, 10, 0)), Ok((3, "a".into())));
    // Equal, except, lowest type at most |msgtyp|.
    assert_eq!(body(take(&mut o, q, 2, 10, 0)), Ok((2, "c".into())));
    assert_eq!(
        body(take(&mut o, q, 1, 10, MSG_EXCEPT)),
        Ok((5, "e".into()))
    );
    assert_eq!(body(take(&mut o, q, 4, 10, 0)), Err(e(errno::ENOMSG)));
    assert_eq!(body(take(&mut o, q, -4, 10, 0)), Ok((1, "b".into())));
    assert_eq!(body(take(&mut o, q, i64::MIN, 10, 0)), Ok((1, "d".into())));
    assert_eq!(body(take(&mut o, q, 0, 10, 0)), Err(e(errno::ENOMSG)));
    // Too long: E2BIG and the message stays; MSG_NOERROR cuts it.
    assert_eq!(snd(&mut o, w(1, 1), q, 7, b"hello", 0).0, Some(0));
    assert_eq!(body(take(&mut o, q, 0, 4, 0)), Err(e(errno::E2BIG)));
    // MSG_COPY with MSG_NOERROR into a copy buffer too small: EINVAL.
    assert_eq!(
        body(take(&mut o, q, 0, 4, MSG_COPY | MSG_NOERROR)),
        Err(e(errno::EINVAL))
    );
    assert_eq!(
        body(take(&mut o, q, 0, 4, MSG_NOERROR)),
        Ok((7, "hell".into()))
    );
    // MSG_COPY needs IPC_NOWAIT and refuses MSG_EXCEPT.
    let r = rcv(&mut o, w(1, 1), q, 0, 10, MSG_COPY).0.unwrap();
    assert_eq!(r.result, e(errno::EINVAL));
    assert_eq!(
        body(take(&mut o, q, 0, 10, MSG_COPY | MSG_EXCEPT)),
        Err(e(errno::EINVAL))
    );
    // Reading needs read permission; a negative size is EINVAL.
    let r = o
        .msgrcv(w(1, 1), 1, q, &BOB, 0, IPC_NOWAIT, 10, NOW)
        .0
        .unwrap();
    assert_eq!(r.result, e(errno::EACCES));
    assert_eq!(body(take(&mut o, q, 0, u64::MAX, 0)), Err(e(errno::EINVAL)));
    let st = ctl(&mut o, q, msgcmd::IPC_STAT, ALICE).stat;
    assert_eq!((st.qnum, st.cbytes, st.lrpid, st.rtime), (0, 0, 100, NOW));
}

#[test]
fn sleeping_receivers_get_messages_in_linux_order() {
    let mut o = Objects::default();
    let q = new_queue(&mut o);
    // Three receivers sleep: type 2, any (buffer 2 bytes), any.
    assert_eq!(rcv(&mut o, w(1, 1), q, 2, 100, 0).0, None);
    assert_eq!(rcv(&mut o, w(2, 1), q, 0, 2, 0).0, None);
    assert_eq!(rcv(&mut o, w(3, 1), q, 0, 100, 0).0, None);
    assert_eq!(o.waiters(), 3);
    // A 5-byte type-1 message: receiver 1 does not want it, receiver 2's
    // buffer is too small (E2BIG on the way), receiver 3 gets it.
    let (r, fx) = snd(&mut o, w(4, 1), q, 1, b"12345", 0);
    assert_eq!(r, Some(0));
    let got: Vec<(Waiter, i64)> = fx.msgs.iter().map(|m| (m.to, m.result)).collect();
    assert_eq!(got, vec![(w(2, 1), e(errno::E2BIG)), (w(3, 1), 5)]);
    assert_eq!(fx.msgs[1].text, b"12345");
    // It never entered the queue.
    assert_eq!(o.msg(q).unwrap().qnum(), 0);
    let st = ctl(&mut o, q, msgcmd::IPC_STAT, ALICE).stat;
    assert_eq!((st.lspid, st.lrpid), (400, 300));
    let (_, fx) = snd(&mut o, w(4, 2), q, 2, b"two", 0);
    assert_eq!(fx.msgs[0].to, w(1, 1));
    assert_eq!(o.waiters(), 0);
}

#[test]
fn blocked_sender_is_released_by_a_receive() {
    let mut o = plain(Limits {
        msgmnb: 10,
        ..Limits::default()
    });
    let q = new_queue(&mut o);
    assert_eq!(snd(&mut o, w(1, 1), q, 1, &[1; 8], 0).0, Some(0));
    assert_eq!(snd(&mut o, w(1, 2), q, 2, &[2; 5], 0).0, None);
    assert_eq!(snd(&mut o, w(2, 1), q, 3, &[3; 1], 0).0, Some(0));
    assert_eq!(snd(&mut o, w(2, 2), q, 4, &[4; 2], 0).0, None);
    // Taking the 8 bytes frees room for both sleepers, oldest first.
    let (r, fx) = rcv(&mut o, w(3, 1), q, 1, 100, 0);
    assert_eq!(r.unwrap().result, 8);
    let released: Vec<_> = fx.replies.iter().map(|r| (r.to, r.result)).collect();
    assert_eq!(released, vec![(w(1, 2), 0), (w(2, 2), 0)]);
    let types: Vec<i64> = o.msg(q).unwrap().messages().map(|m| m.mtype).collect();
    assert_eq!(types, vec![3, 2, 4]);
}

#[test]
fn rmid_wakes_every_sleeper_with_eidrm() {
    let mut o = plain(Limits {
        msgmnb: 1,
        ..Limits::default()
    });
    let q = new_queue(&mut o);
    assert_eq!(rcv(&mut o, w(1, 1), q, 5, 100, 0).0, None);
    assert_eq!(snd(&mut o, w(2, 1), q, 1, b"x", 0).0, Some(0));
    assert_eq!(snd(&mut o, w(2, 2), q, 1, b"y", 0).0, None);
    assert_eq!(
        ctl(&mut o, q, msgcmd::IPC_RMID, BOB).result,
        e(errno::EPERM)
    );
    let (r, fx) = o.msgctl(1, &mctl(q, msgcmd::IPC_RMID, ALICE), NOW);
    assert_eq!(r.result, 0);
    assert_eq!(fx.msgs.len(), 1);
    assert_eq!(
        (fx.msgs[0].to, fx.msgs[0].result),
        (w(1, 1), e(errno::EIDRM))
    );
    assert_eq!(
        fx.replies,
        vec![Reply {
            to: w(2, 2),
            result: e(errno::EIDRM)
        }]
    );
    assert_eq!(fx.removed, vec![(Class::Msg, q)]);
    assert_eq!(msgget(&mut o, 0x4d51, 0, ALICE).result, -errno::ENOENT);
    assert_eq!(snd(&mut o, w(2, 3), q, 1, b"x", 0).0, Some(e(errno::EIDRM)));
}

#[test]
fn ipc_set_checks_and_rechecks_sleepers() {
    let mut o = plain(Limits {
        msgmnb: 4,
        ..Limits::default()
    });
    let q = new_queue(&mut o);
    let set = |o: &mut Objects, cred: Cred, qbytes: u64, mode: u32| {
        o.msgctl(
            1,
            &MsgCtl {
                set_qbytes: qbytes,
                set_mode: mode,
                ..mctl(q, msgcmd::IPC_SET, cred)
            },
            NOW + 1,
        )
    };
    assert_eq!(set(&mut o, BOB, 4, 0o600).0.result, e(errno::EPERM));
    // Above msgmnb needs CAP_SYS_RESOURCE.
    assert_eq!(set(&mut o, ALICE, 5, 0o600).0.result, e(errno::EPERM));
    assert_eq!(snd(&mut o, w(1, 1), q, 1, b"abcd", 0).0, Some(0));
    assert_eq!(snd(&mut o, w(1, 2), q, 1, b"ef", 0).0, None);
    assert_eq!(rcv(&mut o, w(2, 1), q, 9, 100, 0).0, None);
    // Root makes room: the sender goes in.
    let (r, fx) = set(&mut o, ROOT, 6, 0o600);
    assert_eq!(r.result, 0);
    assert_eq!(
        fx.replies,
        vec![Reply {
            to: w(1, 2),
            result: 0
        }]
    );
    assert_eq!(ctl(&mut o, q, msgcmd::IPC_STAT, ALICE).stat.ctime, NOW + 1);
    // Taking read permission away: the sleeping receiver gets EACCES.
    let (_, fx) = set(&mut o, ROOT, 6, 0o200);
    assert_eq!(fx.msgs.len(), 1);
    assert_eq!(
        (fx.msgs[0].to, fx.msgs[0].result),
        (w(2, 1), e(errno::EACCES))
    );
    assert_eq!(o.waiters(), 0);
}

#[test]
fn cancel_and_hand_off() {
    let mut o = Objects::default();
    let q = new_queue(&mut o);
    assert_eq!(rcv(&mut o, w(1, 7), q, 0, 100, 0).0, None);
    // Cancelled before any message: EINTR, and a later message stays queued.
    assert_eq!(
        o.cancel(w(1, 7)),
        Some(Reply {
            to: w(1, 7),
            result: e(errno::EINTR)
        })
    );
    let (_, fx) = snd(&mut o, w(2, 1), q, 1, b"m", 0);
    assert!(fx.msgs.is_empty());
    assert_eq!(o.msg(q).unwrap().qnum(), 1);
    // Handed out first: a late cancel changes nothing.
    assert_eq!(take(&mut o, q, 0, 10, 0), Ok((1, b"m".to_vec())));
    assert_eq!(rcv(&mut o, w(1, 8), q, 0, 100, 0).0, None);
    let (_, fx) = snd(&mut o, w(2, 2), q, 1, b"n", 0);
    assert_eq!(fx.msgs[0].to, w(1, 8));
    assert_eq!(o.cancel(w(1, 8)), None);
    // A node that goes away loses its sleepers, never a queued message.
    assert_eq!(snd(&mut o, w(2, 3), q, 1, b"o", 0).0, Some(0));
    assert_eq!(rcv(&mut o, w(3, 1), q, 5, 100, 0).0, None);
    o.node_gone(3, NOW);
    assert_eq!(o.waiters(), 0);
    assert_eq!(o.msg(q).unwrap().qnum(), 1);
}

#[test]
fn info_reports_the_configured_limits() {
    let mut o = plain(Limits {
        msgmax: 1000,
        msgmnb: 3000,
        msgmni: 7,
        ..Limits::default()
    });
    let q = new_queue(&mut o);
    assert_eq!(snd(&mut o, w(1, 1), q, 1, &[0; 10], 0).0, Some(0));
    let i = ctl(&mut o, 0, msgcmd::IPC_INFO, BOB).info;
    assert_eq!(
        (i.msgmax, i.msgmnb, i.msgmni, i.msgssz),
        (1000, 3000, 7, 16)
    );
    let i = ctl(&mut o, 0, msgcmd::MSG_INFO, BOB).info;
    assert_eq!((i.msgpool, i.msgmap, i.msgtql), (1, 1, 10));
    assert_eq!(
        ctl(&mut o, q, msgcmd::IPC_STAT, BOB).result,
        e(errno::EACCES)
    );
    assert_eq!(ctl(&mut o, q, msgcmd::MSG_STAT_ANY, BOB).stat.qnum, 1);
    assert_eq!(ctl(&mut o, q, 99, ALICE).result, e(errno::EINVAL));
    assert!(Limits {
        msgmax: dipc_wire::MAX_MTEXT + 1,
        ..Limits::default()
    }
    .check()
    .is_err());
}

/// The model: a list of (type, text), searched the obvious way.
fn model_take(q: &mut Vec<(i64, Vec<u8>)>, msgtyp: i64, except: bool) -> Option<(i64, Vec<u8>)> {
    let i = if msgtyp == 0 {
        (!q.is_empty()).then_some(0)
    } else if msgtyp < 0 {
        let bound = msgtyp.checked_neg().unwrap_or(i64::MAX);
        let lowest = q.iter().map(|m| m.0).filter(|&t| t <= bound).min()?;
        q.iter().position(|m| m.0 == lowest)
    } else if except {
        q.iter().position(|m| m.0 != msgtyp)
    } else {
        q.iter().position(|m| m.0 == msgtyp)
    }?;
    Some(q.remove(i))
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        node: u32,
        mtype: i64,
        len: usize,
        wait: bool,
    },
    Recv {
        node: u32,
        msgtyp: i64,
        bufsz: u64,
        flags: i32,
        wait: bool,
    },
    Cancel {
        pick: usize,
    },
    SetQbytes {
        qbytes: u64,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..4, 1i64..4, 0usize..40, any::<bool>())
            .prop_map(|(node, mtype, len, wait)| Op::Send { node, mtype, len, wait }),
        4 => (1u32..4, -4i64..4, 0u64..50, prop_oneof![Just(0), Just(MSG_EXCEPT), Just(MSG_NOERROR)], any::<bool>())
            .prop_map(|(node, msgtyp, bufsz, flags, wait)| Op::Recv { node, msgtyp, bufsz, flags, wait }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (40u64..120).prop_map(|qbytes| Op::SetQbytes { qbytes }),
    ]
}

/// A message's text: its id, then filler up to `len` (at least 8 bytes).
fn text(id: u64, len: usize) -> Vec<u8> {
    let mut t = id.to_le_bytes().to_vec();
    t.resize(len.max(8), id as u8);
    t
}

/// What the blocking property test has seen.
#[derive(Default)]
struct Track {
    /// Sleeping requests; for senders, the id of their message.
    sleeping: BTreeMap<Waiter, Option<u64>>,
    answered: BTreeSet<Waiter>,
    /// Ids of messages accepted, by type, in acceptance order.
    accepted: BTreeMap<i64, Vec<u64>>,
    /// Ids of messages received, by type, in order.
    delivered: BTreeMap<i64, Vec<u64>>,
    id_type: BTreeMap<u64, i64>,
}

impl Track {
    /// Takes in one step's answers: each request is answered once, only
    /// sleepers get later answers, and accepted/received messages are noted.
    fn check(&mut self, fx: &Effects) -> Result<(), TestCaseError> {
        for r in &fx.replies {
            prop_assert!(self.answered.insert(r.to), "answered twice");
            let s = self.sleeping.remove(&r.to);
            prop_assert!(s.is_some(), "answer to a request that was not sleeping");
            if let Some(Some(id)) = s {
                if r.result == 0 {
                    self.accepted.entry(self.id_type[&id]).or_default().push(id);
                }
            }
        }
        for m in &fx.msgs {
            prop_assert!(self.answered.insert(m.to), "answered twice");
            prop_assert!(self.sleeping.remove(&m.to).is_some(), "not sleeping");
            if m.result >= 0 {
                let id = u64::from_le_bytes(m.text[..8].try_into().unwrap());
                self.delivered.entry(m.mtype).or_default().push(id);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Non-blocking sends and receives give exactly the model's results.
    #[test]
    fn nowait_msg_ops_match_model(
        ops in proptest::collection::vec((any::<bool>(), -4i64..5, 0usize..30, 0u64..30, any::<bool>()), 1..80),
    ) {
        let mut o = plain(Limits { msgmnb: 100, ..Limits::default() });
        let q = new_queue(&mut o);
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new();
        for (i, &(send, t, len, bufsz, flag)) in ops.iter().enumerate() {
            if send {
                let mtype = t.abs() + 1;
                let body = vec![i as u8; len];
                let used: usize = model.iter().map(|m| m.1.len()).sum();
                let want = if used + len <= 100 && model.len() < 100 { Some(0) } else { Some(e(errno::EAGAIN)) };
                prop_assert_eq!(snd(&mut o, w(1, 1), q, mtype, &body, IPC_NOWAIT).0, want);
                if want == Some(0) {
                    model.push((mtype, body));
                }
            } else {
                let flags = if flag { MSG_NOERROR } else if t > 0 && bufsz % 2 == 0 { MSG_EXCEPT } else { 0 };
                let got = take(&mut o, q, t, bufsz, flags);
                // The model: find, then the size rule.
                let mut m2 = model.clone();
                let want = match model_take(&mut m2, t, flags & MSG_EXCEPT != 0) {
                    None => Err(e(errno::ENOMSG)),
                    Some((_, b)) if b.len() as u64 > bufsz && flags & MSG_NOERROR == 0 => Err(e(errno::E2BIG)),
                    Some((mt, mut b)) => {
                        model = m2;
                        b.truncate(bufsz as usize);
                        Ok((mt, b))
                    }
                };
                prop_assert_eq!(got, want);
            }
            let st = ctl(&mut o, q, msgcmd::IPC_STAT, ALICE).stat;
            prop_assert_eq!(st.qnum as usize, model.len());
            prop_assert_eq!(st.cbytes as usize, model.iter().map(|m| m.1.len()).sum::<usize>());
        }
    }

    /// Blocking senders and receivers on three nodes, with cancels and size
    /// changes: no message is lost or duplicated, each type stays in order,
    /// every request is answered at most once, and no sleeper could run.
    #[test]
    fn blocking_msg_ops_keep_invariants(ops in proptest::collection::vec(arb_op(), 1..120)) {
        let mut o = plain(Limits { msgmnb: 60, ..Limits::default() });
        let q = new_queue(&mut o);
        let mut next_id = 1u64;
        let mut st = Track::default();
        for (req, op) in (1u64..).zip(ops) {
            match op {
                Op::Send { node, mtype, len, wait } => {
                    let id = next_id;
                    next_id += 1;
                    st.id_type.insert(id, mtype);
                    let who = w(node, req);
                    // Acceptance is recorded before the effects: a message
                    // handed straight to a receiver was accepted first.
                    let (r, fx) = snd(&mut o, who, q, mtype, &text(id, len), if wait { 0 } else { IPC_NOWAIT });
                    match r {
                        Some(0) => {
                            st.answered.insert(who);
                            st.accepted.entry(mtype).or_default().push(id);
                        }
                        Some(_) => { st.answered.insert(who); }
                        None => { st.sleeping.insert(who, Some(id)); }
                    }
                    st.check(&fx)?;
                }
                Op::Recv { node, msgtyp, bufsz, flags, wait } => {
                    let who = w(node, req);
                    let flags = flags | if wait { 0 } else { IPC_NOWAIT };
                    // Bodies are at least 8 bytes; keep the id readable.
                    let (r, mut fx) = rcv(&mut o, who, q, msgtyp, bufsz.max(8), flags);
                    match r {
                        Some(r) => {
                            st.sleeping.insert(who, None);
                            fx.msgs.insert(0, r);
                        }
                        None => { st.sleeping.insert(who, None); }
                    }
                    // A request that answered at once is not left sleeping.
                    st.check(&fx)?;
                }
                Op::Cancel { pick } => {
                    if st.sleeping.is_empty() { continue; }
                    let who = *st.sleeping.keys().nth(pick % st.sleeping.len()).unwrap();
                    let r = o.cancel(who);
                    prop_assert!(r.is_some(), "a sleeping request must be cancellable");
                    st.sleeping.remove(&who);
                    st.answered.insert(who);
                }
                Op::SetQbytes { qbytes } => {
                    let (r, fx) = o.msgctl(1, &MsgCtl { set_qbytes: qbytes, ..mctl(q, msgcmd::IPC_SET, ROOT) }, NOW);
                    prop_assert_eq!(r.result, 0);
                    st.check(&fx)?;
                }
            }
            let mq = o.msg(q).unwrap();
            prop_assert_eq!(mq.runnable_sleepers(), 0);
            prop_assert_eq!(mq.waiters(), st.sleeping.len());
            prop_assert_eq!(mq.cbytes, mq.messages().map(|m| m.text.len() as u64).sum::<u64>());
            // Per type: delivered ++ queued == accepted, in order.
            for (t, acc) in &st.accepted {
                let mut seen = st.delivered.get(t).cloned().unwrap_or_default();
                seen.extend(mq.messages().filter(|m| m.mtype == *t).map(|m| u64::from_le_bytes(m.text[..8].try_into().unwrap())));
                prop_assert_eq!(&seen, acc, "type {}", t);
            }
        }
    }
}

/// A receive lease of a long backlog comes in several frames, each within
/// its bound, in queue order, up to the lease's bounds; what it holds is
/// the head of the queue.
#[test]
fn a_long_receive_lease_comes_in_bounded_frames_in_order() {
    let mut o = Objects::new(Limits {
        msgmnb: 1 << 20,
        ..Limits::default()
    });
    let q = new_queue(&mut o);
    let _ = o.msgctl(
        1,
        &MsgCtl {
            set_qbytes: 1 << 20,
            ..mctl(q, msgcmd::IPC_SET, ROOT)
        },
        NOW,
    );
    let body = vec![7u8; 1000];
    for i in 0..400 {
        let (r, _) = snd(&mut o, w(2, 100 + i), q, 1, &body, 0);
        assert_eq!(r, Some(0));
    }
    // Sends from node 2 earned it a send lease; give it back.
    let lease = o.msg(q).unwrap().slease.as_ref().map(|l| l.id).unwrap();
    o.msg_give_back(2, q, lease, &[], 1, NOW);
    let _ = rcv(&mut o, w(3, 1), q, 0, 2000, 0);
    let (r, fx) = rcv(&mut o, w(3, 2), q, 0, 2000, 0);
    let r = r.unwrap();
    let g = r.lease.expect("a lease with the second receive");
    let mut seqs: Vec<u64> = g.msgs.iter().map(|m| m.seq).collect();
    assert!(fx.more.len() >= 4, "{} frames", fx.more.len());
    for m in &fx.more {
        assert_eq!((m.node, m.oid, m.lease), (3, q, g.id));
        let bytes: u64 = m.batch.iter().map(|x| 20 + x.text.len() as u64).sum();
        assert!(bytes <= msg::FRAME_BATCH, "{bytes} bytes in one frame");
        seqs.extend(m.batch.iter().map(|x| x.seq));
    }
    assert_eq!(
        seqs.len(),
        msg::LEASE_MSGS.min((msg::LEASE_BYTES / 1020) as usize)
    );
    let head: Vec<u64> = o
        .msg(q)
        .unwrap()
        .messages()
        .take(seqs.len())
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, head);
    assert_eq!(o.msg(q).unwrap().rlease.as_ref().unwrap().seqs, head);
}
