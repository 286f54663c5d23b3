//! The referee's semaphore semantics, against `ipc/sem.c` as documented and
//! against a small model.

use super::ipc::{IPC_CREAT, IPC_EXCL, IPC_NOWAIT};
use super::sem::{Proc, Reply, Waiter, SEMAEM, SEMVMX, SEM_UNDO};
use super::*;
use dipc_wire::{Vals, CAP_SYS_ADMIN};
use proptest::prelude::*;

const ROOT: Cred = Cred::new(0, 0, CAP_SYS_ADMIN | dipc_wire::CAP_IPC_OWNER);
const ALICE: Cred = Cred::new(1000, 1000, 0);
const BOB: Cred = Cred::new(1001, 1001, 0);

fn get(o: &mut Objects, key: i32, nsems: u64, flags: i32, cred: Cred) -> GetReply {
    o.get(
        &Get {
            class: Class::Sem,
            key,
            flags,
            size: nsems,
            cred,
            pid: 1,
        },
        100,
    )
}

fn new_set(o: &mut Objects, nsems: u64) -> u64 {
    let r = get(o, 0x1234, nsems, IPC_CREAT | 0o600, ALICE);
    assert_eq!(r.result, 0);
    r.oid
}

fn sop(num: u16, op: i16, flg: i16) -> Sembuf {
    Sembuf { num, op, flg }
}

fn w(node: u32, req: u64) -> Waiter {
    Waiter { node, req }
}

fn p(node: u32, pid: u32) -> Proc {
    Proc { node, pid }
}

/// A `semctl` request with every optional field empty.
fn req(oid: u64, cmd: i32, cred: Cred) -> SemCtl<'static> {
    SemCtl::new(oid, 9, cred, cmd)
}

fn ctl(o: &mut Objects, oid: u64, cmd: i32, semnum: i32, val: i32, cred: Cred) -> SemCtlResult {
    o.semctl(
        &SemCtl {
            semnum,
            val,
            ..req(oid, cmd, cred)
        },
        200,
    )
    .0
}

fn getval(o: &mut Objects, oid: u64, n: i32) -> i64 {
    ctl(o, oid, semcmd::GETVAL, n, 0, ALICE).result
}

#[test]
fn ipcget_semantics() {
    let mut o = Objects::default();
    let e = |e: i32| -e;
    assert_eq!(get(&mut o, 5, 1, 0, ALICE).result, e(errno::ENOENT));
    assert_eq!(get(&mut o, 5, 0, IPC_CREAT, ALICE).result, e(errno::EINVAL));
    assert_eq!(
        get(&mut o, 5, 32001, IPC_CREAT, ALICE).result,
        e(errno::EINVAL)
    );
    let a = get(&mut o, 5, 3, IPC_CREAT | 0o640, ALICE);
    assert_eq!((a.result, a.size, a.perm.mode), (0, 3, 0o640));
    // Same key again: the same object; fewer sems or 0 is fine, more is not.
    assert_eq!(get(&mut o, 5, 0, 0, ALICE).oid, a.oid);
    assert_eq!(get(&mut o, 5, 2, IPC_CREAT, ALICE).oid, a.oid);
    assert_eq!(get(&mut o, 5, 4, 0, ALICE).result, e(errno::EINVAL));
    assert_eq!(
        get(&mut o, 5, 3, IPC_CREAT | IPC_EXCL, ALICE).result,
        e(errno::EEXIST)
    );
    // EEXIST comes before the nsems check, which comes before permissions.
    assert_eq!(
        get(&mut o, 5, 9, IPC_CREAT | IPC_EXCL | 0o600, BOB).result,
        e(errno::EEXIST)
    );
    assert_eq!(get(&mut o, 5, 9, 0o600, BOB).result, e(errno::EINVAL));
    assert_eq!(get(&mut o, 5, 1, 0o600, BOB).result, e(errno::EACCES));
    assert_eq!(get(&mut o, 5, 1, 0o004, BOB).result, e(errno::EACCES));
    assert_eq!(get(&mut o, 5, 1, 0, BOB).oid, a.oid);
    let mut group = BOB;
    group.egid = 1000;
    assert_eq!(get(&mut o, 5, 1, 0o040, group).oid, a.oid);
    // Another key is another object.
    assert_ne!(get(&mut o, 6, 1, IPC_CREAT, ALICE).oid, a.oid);
}

#[test]
fn semmni_and_semmns_limits() {
    let mut o = Objects::new(Limits {
        semmsl: 10,
        semmns: 12,
        semopm: 2,
        semmni: 2,
        ..Limits::default()
    });
    assert_eq!(get(&mut o, 1, 10, IPC_CREAT, ALICE).result, 0);
    assert_eq!(get(&mut o, 2, 3, IPC_CREAT, ALICE).result, -errno::ENOSPC);
    assert_eq!(get(&mut o, 2, 2, IPC_CREAT, ALICE).result, 0);
    assert_eq!(get(&mut o, 3, 1, IPC_CREAT, ALICE).result, -errno::ENOSPC);
    let oid = get(&mut o, 1, 0, 0, ALICE).oid;
    let ops = [sop(0, 1, 0); 3];
    assert_eq!(
        o.semop(w(1, 1), p(1, 1), oid, &ALICE, &ops, 0).0,
        Some(-i64::from(errno::E2BIG))
    );
}

#[test]
fn semop_errors_in_linux_order() {
    let mut o = Objects::default();
    let oid = new_set(&mut o, 2);
    let run = |o: &mut Objects, cred: Cred, ops: &[Sembuf]| {
        o.semop(w(1, 1), p(1, 10), oid, &cred, ops, 300).0
    };
    // EFBIG before EACCES.
    assert_eq!(
        run(&mut o, BOB, &[sop(2, 1, 0)]),
        Some(-i64::from(errno::EFBIG))
    );
    assert_eq!(
        run(&mut o, BOB, &[sop(1, 1, 0)]),
        Some(-i64::from(errno::EACCES))
    );
    assert_eq!(
        run(&mut o, ALICE, &[sop(0, -1, IPC_NOWAIT)]),
        Some(-i64::from(errno::EAGAIN))
    );
    assert_eq!(run(&mut o, ALICE, &[sop(0, SEMVMX as i16, 0)]), Some(0));
    assert_eq!(
        run(&mut o, ALICE, &[sop(0, 1, 0)]),
        Some(-i64::from(errno::ERANGE))
    );
    // Wait-for-zero on a non-zero semaphore with IPC_NOWAIT.
    assert_eq!(
        run(&mut o, ALICE, &[sop(0, 0, IPC_NOWAIT)]),
        Some(-i64::from(errno::EAGAIN))
    );
    assert_eq!(run(&mut o, ALICE, &[sop(1, 0, IPC_NOWAIT)]), Some(0));
    // All or nothing: the second operation fails, the first is rolled back.
    assert_eq!(
        run(&mut o, ALICE, &[sop(1, 5, 0), sop(0, 1, 0)]),
        Some(-i64::from(errno::ERANGE))
    );
    assert_eq!(getval(&mut o, oid, 1), 0);
    // Operations on one semaphore see each other.
    assert_eq!(run(&mut o, ALICE, &[sop(1, 2, 0), sop(1, -2, 0)]), Some(0));
    assert_eq!(getval(&mut o, oid, 1), 0);
    // Undo range: SEMAEM + 1 below zero is the limit.
    let mut o = Objects::default();
    let oid = new_set(&mut o, 1);
    let up = [sop(0, SEMVMX as i16, SEM_UNDO)];
    assert_eq!(o.semop(w(1, 1), p(1, 1), oid, &ALICE, &up, 0).0, Some(0));
    assert_eq!(o.sem(oid).unwrap().semadj(p(1, 1), 0), -SEMAEM);
    assert_eq!(
        o.semop(w(1, 1), p(1, 1), oid, &ALICE, &[sop(0, -1, SEM_UNDO)], 0)
            .0,
        Some(0)
    );
}

#[test]
fn blocking_wakes_in_arrival_order() {
    let mut o = Objects::default();
    let oid = new_set(&mut o, 1);
    let down = [sop(0, -1, 0)];
    assert_eq!(o.semop(w(1, 1), p(1, 1), oid, &ALICE, &down, 0).0, None);
    assert_eq!(o.semop(w(2, 1), p(2, 1), oid, &ALICE, &down, 0).0, None);
    assert_eq!(ctl(&mut o, oid, semcmd::GETNCNT, 0, 0, ALICE).result, 2);
    // One V releases the first sleeper only.
    let (r, fx) = o.semop(w(3, 1), p(3, 1), oid, &ALICE, &[sop(0, 1, 0)], 5);
    assert_eq!(r, Some(0));
    assert_eq!(
        fx.replies,
        vec![Reply {
            to: w(1, 1),
            result: 0
        }]
    );
    // A V of 2 releases the second and leaves 1.
    let (_, fx) = o.semop(w(3, 2), p(3, 1), oid, &ALICE, &[sop(0, 2, 0)], 6);
    assert_eq!(fx.replies.len(), 1);
    assert_eq!(getval(&mut o, oid, 0), 1);
    // Wait-for-zero wakes when the value reaches 0; GETZCNT counts it.
    assert_eq!(
        o.semop(w(1, 2), p(1, 1), oid, &ALICE, &[sop(0, 0, 0)], 7).0,
        None
    );
    assert_eq!(ctl(&mut o, oid, semcmd::GETZCNT, 0, 0, ALICE).result, 1);
    let (_, fx) = o.semop(w(2, 2), p(2, 1), oid, &ALICE, &down, 8);
    assert_eq!(fx.replies[0].to, w(1, 2));
    // GETPID is the last process that changed the semaphore.
    assert_eq!(ctl(&mut o, oid, semcmd::GETPID, 0, 0, ALICE).result, 1);
}

#[test]
fn rmid_wakes_sleepers_with_eidrm() {
    let mut o = Objects::default();
    let oid = new_set(&mut o, 1);
    assert_eq!(
        o.semop(w(2, 7), p(2, 1), oid, &ALICE, &[sop(0, -1, 0)], 0)
            .0,
        None
    );
    assert_eq!(
        ctl(&mut o, oid, semcmd::IPC_RMID, 0, 0, BOB).result,
        -i64::from(errno::EPERM)
    );
    let (r, fx) = o.semctl(&req(oid, semcmd::IPC_RMID, ALICE), 0);
    assert_eq!(r.result, 0);
    assert_eq!(
        fx.replies,
        vec![Reply {
            to: w(2, 7),
            result: -i64::from(errno::EIDRM)
        }]
    );
    assert_eq!(fx.removed, vec![(Class::Sem, oid)]);
    assert_eq!(get(&mut o, 0x1234, 1, 0, ALICE).result, -errno::ENOENT);
    assert_eq!(getval(&mut o, oid, 0), -i64::from(errno::EIDRM));
}

#[test]
fn cancel_leaves_no_waiter() {
    let mut o = Objects::default();
    let oid = new_set(&mut o, 1);
    assert_eq!(
        o.semop(w(2, 7), p(2, 1), oid, &ALICE, &[sop(0, -1, 0)], 0)
            .0,
        None
    );
    assert_eq!(
        o.cancel(w(2, 7)),
        Some(Reply {
            to: w(2, 7),
            result: -i64::from(errno::EINTR)
        })
    );
    assert_eq!(o.waiters(), 0);
    assert_eq!(o.cancel(w(2, 7)), None);
    // A V now leaves the value at 1: the cancelled P did not take it.
    let (_, fx) = o.semop(w(1, 1), p(1, 1), oid, &ALICE, &[sop(0, 1, 0)], 0);
    assert!(fx.replies.is_empty());
    assert_eq!(getval(&mut o, oid, 0), 1);
}

#[test]
fn undo_on_exit_and_on_node_loss() {
    let mut o = Objects::default();
    let oid = new_set(&mut o, 1);
    assert_eq!(ctl(&mut o, oid, semcmd::SETVAL, 0, 1, ALICE).result, 0);
    // Node 1 takes the mutex with SEM_UNDO; node 2 waits.
    let pdown = [sop(0, -1, SEM_UNDO)];
    assert_eq!(
        o.semop(w(1, 1), p(1, 50), oid, &ALICE, &pdown, 0).0,
        Some(0)
    );
    assert_eq!(o.semop(w(2, 1), p(2, 60), oid, &ALICE, &pdown, 0).0, None);
    // The holder exits: its undo releases the waiter.
    let fx = o.exit(p(1, 50), 1);
    assert_eq!(
        fx.replies,
        vec![Reply {
            to: w(2, 1),
            result: 0
        }]
    );
    assert_eq!(getval(&mut o, oid, 0), 0);
    // Node 2 dies while holding: the mutex comes back.
    let fx = o.node_gone(2, 2);
    assert!(fx.replies.is_empty());
    assert_eq!(getval(&mut o, oid, 0), 1);
    // Exit of a process with no adjustments changes nothing.
    let fx = o.exit(p(3, 1), 3);
    assert!(fx.replies.is_empty());
    // SETVAL clears adjustments.
    assert_eq!(
        o.semop(w(1, 2), p(1, 51), oid, &ALICE, &pdown, 0).0,
        Some(0)
    );
    assert_eq!(ctl(&mut o, oid, semcmd::SETVAL, 0, 5, ALICE).result, 0);
    o.exit(p(1, 51), 4);
    assert_eq!(getval(&mut o, oid, 0), 5);
    // Adjustments are clamped to 0..=SEMVMX at exit.
    assert_eq!(
        o.semop(w(1, 3), p(1, 52), oid, &ALICE, &[sop(0, 3, SEM_UNDO)], 0)
            .0,
        Some(0)
    );
    assert_eq!(ctl(&mut o, oid, semcmd::SETVAL, 0, 1, ALICE).result, 0);
    assert_eq!(
        o.semop(w(1, 4), p(1, 53), oid, &ALICE, &[sop(0, 3, SEM_UNDO)], 0)
            .0,
        Some(0)
    );
    assert_eq!(ctl(&mut o, oid, semcmd::SETVAL, 0, 1, ALICE).result, 0);
    assert_eq!(getval(&mut o, oid, 0), 1);
}

#[test]
fn semctl_errors_in_linux_order() {
    let mut o = Objects::default();
    let oid = new_set(&mut o, 2);
    let e = |e: i32| -i64::from(e);
    // SETVAL: ERANGE, then EINVAL (semnum), then EACCES.
    assert_eq!(
        ctl(&mut o, oid, semcmd::SETVAL, 9, -1, BOB).result,
        e(errno::ERANGE)
    );
    assert_eq!(
        ctl(&mut o, oid, semcmd::SETVAL, 9, SEMVMX + 1, BOB).result,
        e(errno::ERANGE)
    );
    assert_eq!(
        ctl(&mut o, oid, semcmd::SETVAL, 9, 1, BOB).result,
        e(errno::EINVAL)
    );
    assert_eq!(
        ctl(&mut o, oid, semcmd::SETVAL, 1, 1, BOB).result,
        e(errno::EACCES)
    );
    // GETVAL: EACCES, then EINVAL.
    assert_eq!(
        ctl(&mut o, oid, semcmd::GETVAL, 9, 0, BOB).result,
        e(errno::EACCES)
    );
    assert_eq!(
        ctl(&mut o, oid, semcmd::GETVAL, 2, 0, ALICE).result,
        e(errno::EINVAL)
    );
    assert_eq!(
        ctl(&mut o, oid, semcmd::GETVAL, -1, 0, ALICE).result,
        e(errno::EINVAL)
    );
    assert_eq!(
        ctl(&mut o, oid, semcmd::IPC_STAT, 0, 0, BOB).result,
        e(errno::EACCES)
    );
    assert_eq!(ctl(&mut o, oid, 99, 0, 0, ALICE).result, e(errno::EINVAL));
    // IPC_STAT reports the set; IPC_SET by the owner changes it.
    let st = ctl(&mut o, oid, semcmd::IPC_STAT, 0, 0, ALICE);
    assert_eq!(
        (st.stat.key, st.stat.uid, st.stat.mode, st.stat.nsems),
        (0x1234, 1000, 0o600, 2)
    );
    assert_eq!((st.stat.otime, st.stat.ctime), (0, 100));
    // SEM_STAT checks read access as IPC_STAT does; SEM_STAT_ANY does not.
    assert_eq!(
        ctl(&mut o, oid, semcmd::SEM_STAT, 0, 0, BOB).result,
        e(errno::EACCES)
    );
    let any = ctl(&mut o, oid, semcmd::SEM_STAT_ANY, 0, 0, BOB);
    assert_eq!((any.result, any.stat), (0, st.stat));
    let set = |o: &mut Objects, cred: Cred, uid: u32| {
        o.semctl(
            &SemCtl {
                set_uid: uid,
                set_gid: 1001,
                set_mode: 0o7660,
                ..req(oid, semcmd::IPC_SET, cred)
            },
            300,
        )
        .0
        .result
    };
    assert_eq!(set(&mut o, BOB, 1001), e(errno::EPERM));
    assert_eq!(set(&mut o, ALICE, 1001), 0);
    // Every node's shadow is told the new owner and mode (S_IRWXUGO only);
    // a refused IPC_SET tells nothing.
    let (_, fx) = o.semctl(
        &SemCtl {
            set_uid: 1001,
            set_gid: 1001,
            set_mode: 0o7660,
            ..req(oid, semcmd::IPC_SET, ALICE)
        },
        300,
    );
    let told = dipc_wire::IpcPerm {
        uid: 1001,
        gid: 1001,
        cuid: 1000,
        cgid: ALICE.egid,
        mode: 0o660,
    };
    assert_eq!(fx.perms, vec![(Class::Sem, oid, told)]);
    let (_, fx) = o.semctl(
        &SemCtl {
            set_uid: 1001,
            ..req(oid, semcmd::IPC_SET, Cred::new(5, 5, 0))
        },
        300,
    );
    assert!(fx.perms.is_empty());
    let st = ctl(&mut o, oid, semcmd::IPC_STAT, 0, 0, BOB);
    assert_eq!(
        (st.stat.uid, st.stat.cuid, st.stat.mode, st.stat.ctime),
        (1001, 1000, 0o660, 300)
    );
    // SETALL / GETALL.
    let vals: Vec<u8> = [3u16, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let big: Vec<u8> = [3u16, 40000].iter().flat_map(|v| v.to_le_bytes()).collect();
    let setall = |o: &mut Objects, v: &[u8], cred: Cred| {
        o.semctl(
            &SemCtl {
                vals: Vals::new(v).unwrap(),
                ..req(oid, semcmd::SETALL, cred)
            },
            400,
        )
        .0
        .result
    };
    assert_eq!(setall(&mut o, &big, ALICE), e(errno::ERANGE));
    assert_eq!(setall(&mut o, &vals, Cred::new(5, 5, 0)), e(errno::EACCES));
    assert_eq!(setall(&mut o, &vals, ALICE), 0);
    assert_eq!(
        ctl(&mut o, oid, semcmd::GETALL, 0, 0, ROOT).vals,
        vec![3, 4]
    );
}

/// A model of one set under non-blocking operations: what Linux's
/// semantics say in the fewest lines.
fn model_semop(vals: &mut [i32], ops: &[Sembuf]) -> i64 {
    let mut next = vals.to_vec();
    for s in ops {
        let v = next[s.num as usize];
        if s.op == 0 && v != 0 || v + i32::from(s.op) < 0 {
            return -i64::from(errno::EAGAIN);
        }
        if v + i32::from(s.op) > SEMVMX {
            return -i64::from(errno::ERANGE);
        }
        next[s.num as usize] = v + i32::from(s.op);
    }
    vals.copy_from_slice(&next);
    0
}

fn arb_ops(nsems: u16) -> impl Strategy<Value = Vec<Sembuf>> {
    proptest::collection::vec(
        (0..nsems, -3i16..=3, prop_oneof![Just(0i16), Just(SEM_UNDO)])
            .prop_map(|(num, op, flg)| sop(num, op, flg)),
        1..5,
    )
}

proptest! {
    /// Non-blocking semops agree with the model, value by value.
    #[test]
    fn nowait_semop_matches_model(
        batches in proptest::collection::vec(arb_ops(3), 1..60),
        start in proptest::collection::vec(0i32..5, 3),
    ) {
        let mut o = Objects::default();
        let oid = new_set(&mut o, 3);
        for (i, &v) in start.iter().enumerate() {
            prop_assert_eq!(ctl(&mut o, oid, semcmd::SETVAL, i as i32, v, ALICE).result, 0);
        }
        let mut model = start.clone();
        for ops in batches {
            let nowait: Vec<Sembuf> = ops.iter().map(|s| sop(s.num, s.op, s.flg | IPC_NOWAIT)).collect();
            let got = o.semop(w(1, 1), p(1, 1), oid, &ALICE, &nowait, 0).0;
            prop_assert_eq!(got, Some(model_semop(&mut model, &nowait)));
            for (i, &v) in model.iter().enumerate() {
                prop_assert_eq!(getval(&mut o, oid, i as i32), i64::from(v));
            }
        }
    }

    /// With blocking operations from several processes on several nodes:
    /// no sleeper is ever left that could run now, only sleeping requests
    /// are answered, and once every process has exited each value is back
    /// where it started (every change carried SEM_UNDO).
    #[test]
    fn blocking_semops_keep_invariants(
        steps in proptest::collection::vec((0u32..6, arb_ops(1), any::<bool>()), 1..80),
    ) {
        let mut o = Objects::default();
        let oid = new_set(&mut o, 1);
        prop_assert_eq!(ctl(&mut o, oid, semcmd::SETVAL, 0, 10, ALICE).result, 0);
        // Which process each sleeping request belongs to.
        let mut sleeping: std::collections::BTreeMap<Waiter, Proc> = Default::default();
        let mut req = 0u64;
        for (proc_no, ops, cancel) in steps {
            let me = p(1 + proc_no % 3, proc_no);
            if sleeping.values().any(|&q| q == me) {
                continue; // a sleeping process makes no calls
            }
            let ops: Vec<Sembuf> = ops.iter().map(|s| sop(s.num, s.op, SEM_UNDO)).collect();
            req += 1;
            let who = w(me.node, req);
            let (r, fx) = o.semop(who, me, oid, &ALICE, &ops, 0);
            match r {
                None => { sleeping.insert(who, me); }
                Some(v) => prop_assert_eq!(v, 0),
            }
            for rep in fx.replies {
                prop_assert_eq!(rep.result, 0);
                prop_assert!(sleeping.remove(&rep.to).is_some(), "answer to a request not sleeping");
            }
            if cancel {
                if let Some((&first, _)) = sleeping.iter().next() {
                    let rep = o.cancel(first).expect("sleeper is cancellable");
                    prop_assert_eq!(rep.result, -i64::from(errno::EINTR));
                    sleeping.remove(&first);
                }
            }
            prop_assert_eq!(o.waiters(), sleeping.len());
            prop_assert_eq!(o.sem(oid).unwrap().runnable_sleepers(), 0);
            prop_assert!((0..=SEMVMX).contains(&o.sem(oid).unwrap().sems[0].val));
        }
        for s in std::mem::take(&mut sleeping).into_keys() {
            prop_assert!(o.cancel(s).is_some());
        }
        // Processes that took units give them back first, so no exit clamps.
        let mut procs: Vec<Proc> = (0..6).map(|n| p(1 + n % 3, n)).collect();
        procs.sort_by_key(|&q| -o.sem(oid).unwrap().semadj(q, 0));
        for q in procs {
            prop_assert!(o.exit(q, 0).replies.is_empty());
        }
        prop_assert_eq!(getval(&mut o, oid, 0), 10);
    }
}

#[test]
fn every_object_has_a_cluster_wide_id_that_lookup_finds() {
    let mut o = Objects::default();
    let a = get(&mut o, 0x10, 1, IPC_CREAT | 0o600, ALICE);
    let b = get(&mut o, 0x11, 2, IPC_CREAT | 0o644, ALICE);
    assert_eq!((a.id, a.key), (32767, 0x10));
    assert_eq!((b.id, b.key), (32766, 0x11));
    // The same key, looked up again (any node), has the same id.
    assert_eq!(get(&mut o, 0x10, 0, 0, ALICE).id, 32767);
    // Lookup by id makes no permission check: BOB may not open the set,
    // but learns which it is; his semop is refused at the referee.
    assert_eq!(get(&mut o, 0x10, 0, 0o400, BOB).result, -errno::EACCES);
    let l = o.lookup(Class::Sem, 32767);
    assert_eq!(
        (l.result, l.oid, l.size, l.perm.mode, l.key),
        (0, a.oid, 1, 0o600, 0x10)
    );
    // Another class's table, and an id with another sequence number, name
    // nothing.
    assert_eq!(o.lookup(Class::Msg, 32767).result, -errno::EINVAL);
    assert_eq!(
        o.lookup(Class::Sem, (1 << 15) | 32767).result,
        -errno::EINVAL
    );
    assert_eq!(o.lookup(Class::Sem, -1).result, -errno::EINVAL);
    // Removed: the id names nothing; the next set takes the next slot.
    assert_eq!(ctl(&mut o, a.oid, semcmd::IPC_RMID, 0, 0, ALICE).result, 0);
    assert_eq!(o.lookup(Class::Sem, 32767).result, -errno::EINVAL);
    assert_eq!(get(&mut o, 0x12, 1, IPC_CREAT | 0o600, ALICE).id, 32765);
}

#[test]
fn a_full_id_table_is_enospc() {
    let mut o = Objects::new(Limits {
        semmni: 40000,
        ..Limits::default()
    });
    for k in 0..32768 {
        assert_eq!(
            get(&mut o, 1 + k, 1, IPC_CREAT | 0o600, ALICE).result,
            0,
            "key {k}"
        );
    }
    assert_eq!(
        get(&mut o, 0x7fff_0000, 1, IPC_CREAT | 0o600, ALICE).result,
        -errno::ENOSPC
    );
    assert!(Limits {
        semmni: 40000,
        ..Limits::default()
    }
    .check()
    .is_err());
}
