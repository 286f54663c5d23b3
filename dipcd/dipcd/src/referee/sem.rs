//! Semaphore sets, after `ipc/sem.c`: plain state and plain functions, no I/O.
//!
//! A waiting `semop` is a [`SemQueue`] entry that names the request it
//! answers ([`Waiter`]); whatever completes it returns a [`Reply`] for the
//! server to send. One FIFO queue per set keeps Linux's fairness rule: after
//! every change the queue is rescanned from the front, and an altering
//! operation that succeeds restarts the scan (`update_queue()`), all before
//! the next request is looked at, so a waiter that became possible always
//! runs before any later arrival.

use super::ipc::{Errno, KernIpcPerm, IPC_NOWAIT, S_IRUGO, S_IWUGO};
use dipc_wire::{errno, Cred, Sembuf};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// `SEMVMX`: the largest semaphore value.
pub const SEMVMX: i32 = 32767;
/// `SEMAEM`: the largest undo adjustment.
pub const SEMAEM: i32 = SEMVMX;
/// `SEM_UNDO`.
pub const SEM_UNDO: i16 = 0x1000;

/// A request waiting for an answer: the node it came from and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Waiter {
    /// Node id.
    pub node: u32,
    /// Request id on that node's connection.
    pub req: u64,
}

/// The answer to a waiting request: a return value or a negative errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Whom to answer.
    pub to: Waiter,
    /// What the call returns.
    pub result: i64,
}

/// A process, cluster-wide: `SEM_UNDO` adjustments belong to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Proc {
    /// The node it runs on.
    pub node: u32,
    /// Its tgid there.
    pub pid: u32,
}

/// One semaphore (`struct sem`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sem {
    /// `semval`.
    pub val: i32,
    /// `sempid`: the last process that changed it.
    pub pid: u32,
}

/// A sleeping `semop` (`struct sem_queue`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SemQueue {
    who: Waiter,
    proc_: Proc,
    #[serde(with = "super::persist::sembufs")]
    sops: Vec<Sembuf>,
    alter: bool,
    /// Index of the operation that blocked at the last attempt.
    blocking: usize,
}

/// A semaphore set (`struct sem_array`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SemArray {
    /// Ownership and mode.
    pub perm: KernIpcPerm,
    /// The semaphores.
    pub sems: Vec<Sem>,
    /// Time of the last successful `semop`.
    pub otime: i64,
    /// Time of the last change by `semctl` (or creation).
    pub ctime: i64,
    pending: VecDeque<SemQueue>,
    /// `SEM_UNDO` adjustments per process (`struct sem_undo`'s `semadj`).
    undo: BTreeMap<Proc, Vec<i32>>,
}

/// Outcome of trying one operation list.
#[derive(Debug, PartialEq, Eq)]
enum Try {
    Done,
    Block,
}

impl SemArray {
    /// A new set of `nsems` zero semaphores (`newary()`).
    pub fn new(perm: KernIpcPerm, nsems: usize, now: i64) -> Self {
        SemArray {
            perm,
            sems: vec![Sem::default(); nsems],
            otime: 0,
            ctime: now,
            pending: VecDeque::new(),
            undo: BTreeMap::new(),
        }
    }

    /// Number of semaphores.
    pub fn nsems(&self) -> usize {
        self.sems.len()
    }

    /// Number of sleeping operations.
    pub fn waiters(&self) -> usize {
        self.pending.len()
    }

    /// Whether `who` sleeps here.
    pub fn has_waiter(&self, who: Waiter) -> bool {
        self.pending.iter().any(|q| q.who == who)
    }

    /// `perform_atomic_semop()`: all operations or none, in order, so that
    /// several operations on one semaphore see each other's effect.
    fn try_semop(&mut self, p: Proc, sops: &[Sembuf], blocking: &mut usize) -> Result<Try, Errno> {
        let n = self.sems.len();
        let undo = sops.iter().any(|s| s.flg & SEM_UNDO != 0);
        let mut adj = if undo {
            self.undo.get(&p).cloned().unwrap_or_else(|| vec![0; n])
        } else {
            Vec::new()
        };
        let mut applied = 0;
        let mut outcome = Ok(Try::Done);
        for (i, sop) in sops.iter().enumerate() {
            let num = usize::from(sop.num);
            let cur = self.sems[num].val;
            let op = i32::from(sop.op);
            if (op == 0 && cur != 0) || cur + op < 0 {
                *blocking = i;
                outcome = if sop.flg & IPC_NOWAIT != 0 {
                    Err(errno::EAGAIN)
                } else {
                    Ok(Try::Block)
                };
                break;
            }
            if cur + op > SEMVMX {
                outcome = Err(errno::ERANGE);
                break;
            }
            if sop.flg & SEM_UNDO != 0 {
                let u = adj[num] - op;
                if !(-SEMAEM - 1..=SEMAEM).contains(&u) {
                    outcome = Err(errno::ERANGE);
                    break;
                }
                adj[num] = u;
            }
            self.sems[num].val = cur + op;
            applied = i + 1;
        }
        if outcome == Ok(Try::Done) {
            for sop in sops {
                self.sems[usize::from(sop.num)].pid = p.pid;
            }
            if undo {
                self.undo.insert(p, adj);
            }
        } else {
            for sop in sops[..applied].iter().rev() {
                self.sems[usize::from(sop.num)].val -= i32::from(sop.op);
            }
        }
        outcome
    }

    /// `do_semtimedop()` from the point where the set is found: `EFBIG`,
    /// then `EACCES`, then the operation. `Some(result)` if the call is over,
    /// `None` if it sleeps until a later change (or [`SemArray::cancel`]).
    /// Waiters that the change released are appended to `out`.
    pub fn semop(
        &mut self,
        who: Waiter,
        p: Proc,
        cred: &Cred,
        sops: &[Sembuf],
        now: i64,
        out: &mut Vec<Reply>,
    ) -> Option<i64> {
        let max = sops.iter().map(|s| usize::from(s.num)).max().unwrap_or(0);
        if max >= self.sems.len() {
            return Some(-i64::from(errno::EFBIG));
        }
        let alter = sops.iter().any(|s| s.op != 0);
        if let Err(e) = self
            .perm
            .ipcperms(cred, if alter { S_IWUGO } else { S_IRUGO })
        {
            return Some(-i64::from(e));
        }
        let mut blocking = 0;
        match self.try_semop(p, sops, &mut blocking) {
            Ok(Try::Done) => {
                self.otime = now;
                if alter {
                    self.update_queue(now, out);
                }
                Some(0)
            }
            Ok(Try::Block) => {
                self.pending.push_back(SemQueue {
                    who,
                    proc_: p,
                    sops: sops.to_vec(),
                    alter,
                    blocking,
                });
                None
            }
            Err(e) => Some(-i64::from(e)),
        }
    }

    /// `update_queue()`: runs every sleeping operation that has become
    /// possible, oldest first, restarting after each one that altered a value.
    fn update_queue(&mut self, now: i64, out: &mut Vec<Reply>) {
        'restart: loop {
            let mut i = 0;
            while i < self.pending.len() {
                let Some(mut q) = self.pending.remove(i) else {
                    break;
                };
                match self.try_semop(q.proc_, &q.sops, &mut q.blocking) {
                    Ok(Try::Block) => {
                        self.pending.insert(i, q);
                        i += 1;
                    }
                    Ok(Try::Done) => {
                        self.otime = now;
                        out.push(Reply {
                            to: q.who,
                            result: 0,
                        });
                        if q.alter {
                            continue 'restart;
                        }
                    }
                    Err(e) => out.push(Reply {
                        to: q.who,
                        result: -i64::from(e),
                    }),
                }
            }
            break;
        }
    }

    /// Removes the waiting request `who`, if it is here, answering `-EINTR`.
    pub fn cancel(&mut self, who: Waiter) -> Option<Reply> {
        let i = self.pending.iter().position(|q| q.who == who)?;
        self.pending.remove(i);
        Some(Reply {
            to: who,
            result: -i64::from(errno::EINTR),
        })
    }

    /// `freeary()`: every sleeper gets `-EIDRM`.
    pub fn remove(&mut self, out: &mut Vec<Reply>) {
        out.extend(self.pending.drain(..).map(|q| Reply {
            to: q.who,
            result: -i64::from(errno::EIDRM),
        }));
        self.undo.clear();
    }

    /// `exit_sem()` for one process: applies its adjustments, clamped to
    /// `0..=SEMVMX`, then wakes whoever can now proceed.
    pub fn exit(&mut self, p: Proc, now: i64, out: &mut Vec<Reply>) {
        let Some(adj) = self.undo.remove(&p) else {
            return;
        };
        for (sem, a) in self.sems.iter_mut().zip(adj) {
            if a != 0 {
                sem.val = (sem.val + a).clamp(0, SEMVMX);
                sem.pid = p.pid;
            }
        }
        self.update_queue(now, out);
    }

    /// A node is gone: its sleepers are dropped (nobody waits for their
    /// answer), then its processes' adjustments are applied as at exit.
    pub fn node_gone(&mut self, node: u32, now: i64, out: &mut Vec<Reply>) {
        self.pending.retain(|q| q.who.node != node);
        let procs: Vec<Proc> = self
            .undo
            .keys()
            .filter(|p| p.node == node)
            .copied()
            .collect();
        // Dropping sleepers changes no value, so only the exits (each of
        // which rescans the queue) can release anyone.
        for p in procs {
            self.exit(p, now, out);
        }
    }

    /// `count_semcnt()`: sleepers whose blocking operation on `semnum`
    /// waits for zero (`zero`) or for an increase.
    pub fn count(&self, semnum: usize, zero: bool) -> usize {
        self.pending
            .iter()
            .filter(|q| {
                let sop = q.sops[q.blocking];
                usize::from(sop.num) == semnum && if zero { sop.op == 0 } else { sop.op < 0 }
            })
            .count()
    }

    /// `SETVAL` after the checks: clears every process's adjustment of that
    /// semaphore, then wakes whoever can now proceed.
    pub fn setval(&mut self, semnum: usize, val: i32, pid: u32, now: i64, out: &mut Vec<Reply>) {
        for adj in self.undo.values_mut() {
            adj[semnum] = 0;
        }
        self.sems[semnum] = Sem { val, pid };
        self.ctime = now;
        self.update_queue(now, out);
    }

    /// `SETALL` after the checks.
    pub fn setall(&mut self, vals: &[u16], pid: u32, now: i64, out: &mut Vec<Reply>) {
        for (sem, &v) in self.sems.iter_mut().zip(vals) {
            *sem = Sem {
                val: i32::from(v),
                pid,
            };
        }
        for adj in self.undo.values_mut() {
            adj.iter_mut().for_each(|a| *a = 0);
        }
        self.ctime = now;
        self.update_queue(now, out);
    }

    /// The adjustment `p` holds on `semnum`.
    #[cfg(test)]
    pub fn semadj(&self, p: Proc, semnum: usize) -> i32 {
        self.undo.get(&p).map_or(0, |a| a[semnum])
    }

    /// Sleepers that could complete right now; always 0 between calls.
    #[cfg(test)]
    pub fn runnable_sleepers(&self) -> usize {
        self.pending
            .iter()
            .filter(|q| {
                let mut copy = self.clone();
                let mut b = 0;
                copy.try_semop(q.proc_, &q.sops, &mut b) != Ok(Try::Block)
            })
            .count()
    }
}
