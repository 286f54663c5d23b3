//! Distributed shared memory segments, after `ipc/shm.c`: creation and
//! size checks, attach permissions, `shm_nattch` summed over every node,
//! `IPC_RMID` with `SHM_DEST` until the last attach in the cluster goes, and
//! each segment's page directory ([`super::dsm`]).

use super::dsm::{DirError, Directory, Out, Want, PAGE_LEN};
use super::ipc::{ipcget_existing, Errno, KernIpcPerm, IPC_CREAT, S_IRUGO, S_IWUGO};
use super::{Effects, Objects};
use dipc_wire::{
    errno, shmcmd, Class, Get, ShmAt, ShmCtl, ShmNattch, ShmStat, SHM_DEST, SHM_EXEC, SHM_RDONLY,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `SHMMIN`: the smallest segment.
pub const SHMMIN: u64 = 1;
/// `S_IXUGO`.
const S_IXUGO: u32 = 0o111;

/// A DSM transfer the server must send: a grant or an invalidation of a
/// page of segment `oid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dsm {
    /// The segment.
    pub oid: u64,
    /// What to send.
    pub out: Out,
}

/// A refused page request, answered with a grant carrying `result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRefusal {
    /// The node that asked.
    pub node: u32,
    /// The segment.
    pub oid: u64,
    /// The page.
    pub page: u64,
    /// Write access was asked for.
    pub write: bool,
    /// The negative errno.
    pub result: i32,
}

/// One distributed segment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Segment {
    /// Key, owner and mode (with [`SHM_DEST`] once removed).
    pub perm: KernIpcPerm,
    /// Size in bytes.
    pub segsz: u64,
    /// Last attach.
    pub atime: i64,
    /// Last detach.
    pub dtime: i64,
    /// Last change.
    pub ctime: i64,
    /// Creator (tgid on its node).
    pub cpid: u32,
    /// Last attach or detach (tgid on its node).
    pub lpid: u32,
    /// Attaches by node.
    pub nattch: BTreeMap<u32, u32>,
    /// The number of the count in `nattch` by node: an older count that
    /// arrives later is ignored.
    #[serde(default)]
    pub nattch_seq: BTreeMap<u32, u64>,
    /// The page directory.
    pub dir: Directory,
}

impl Segment {
    fn new(perm: KernIpcPerm, segsz: u64, pid: u32, now: i64) -> Self {
        Segment {
            perm,
            segsz,
            atime: 0,
            dtime: 0,
            ctime: now,
            cpid: pid,
            lpid: 0,
            nattch: BTreeMap::new(),
            nattch_seq: BTreeMap::new(),
            dir: Directory::new(pages(segsz)),
        }
    }

    /// Takes node `node`'s count `nattch` numbered `seq`, unless a count
    /// with a higher number came first (0: no count). Whether it was taken.
    fn set_nattch(&mut self, node: u32, nattch: u32, seq: u64) -> bool {
        if seq == 0 || self.nattch_seq.get(&node).is_some_and(|&s| s >= seq) {
            return false;
        }
        self.nattch_seq.insert(node, seq);
        if nattch == 0 {
            self.nattch.remove(&node);
        } else {
            self.nattch.insert(node, nattch);
        }
        true
    }

    /// Node `node` is gone: its attaches go, and its next session's counts
    /// are numbered afresh.
    fn forget_node(&mut self, node: u32) {
        self.nattch.remove(&node);
        self.nattch_seq.remove(&node);
    }

    /// Attaches on every node.
    pub fn total_nattch(&self) -> u64 {
        self.nattch.values().map(|&n| u64::from(n)).sum()
    }

    /// `IPC_RMID` was called; destroyed when the last attach goes.
    pub fn dest(&self) -> bool {
        self.perm.mode & SHM_DEST != 0
    }

    /// `struct shmid64_ds`.
    pub fn stat(&self) -> ShmStat {
        ShmStat {
            key: self.perm.key,
            uid: self.perm.uid,
            gid: self.perm.gid,
            cuid: self.perm.cuid,
            cgid: self.perm.cgid,
            mode: self.perm.mode,
            segsz: self.segsz,
            atime: self.atime,
            dtime: self.dtime,
            ctime: self.ctime,
            cpid: self.cpid,
            lpid: self.lpid,
            nattch: self.total_nattch(),
        }
    }
}

/// Pages in a segment of `size` bytes.
pub fn pages(size: u64) -> u64 {
    size.div_ceil(PAGE_LEN as u64)
}

/// The answer to a `shmctl`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShmCtlResult {
    /// Return value or negative errno.
    pub result: i64,
    /// For `IPC_STAT`.
    pub stat: ShmStat,
}

impl ShmCtlResult {
    fn err(e: Errno) -> Self {
        ShmCtlResult {
            result: -i64::from(e),
            ..Default::default()
        }
    }
}

impl Objects {
    /// The segment `oid`, if it exists.
    #[cfg(test)]
    pub fn shm(&self, oid: u64) -> Option<&Segment> {
        self.shms.get(&oid)
    }

    /// A segment, to change (tests).
    #[cfg(test)]
    pub fn shm_mut(&mut self, oid: u64) -> Option<&mut Segment> {
        self.shms.get_mut(&oid)
    }

    /// `shmget` of a distributed key (`newseg()`, `shm_more_checks()`).
    pub(super) fn shmget(&mut self, g: &Get, now: i64) -> Result<u64, Errno> {
        let size = g.size;
        match self.keys.get(&(Class::Shm, g.key)) {
            Some(&oid) => {
                let seg = &self.shms[&oid];
                ipcget_existing(&seg.perm, g.flags, &g.cred, || {
                    if seg.segsz < size {
                        Err(errno::EINVAL)
                    } else {
                        Ok(())
                    }
                })?;
                Ok(oid)
            }
            None if g.flags & IPC_CREAT == 0 => Err(errno::ENOENT),
            None => {
                if size < SHMMIN || size > self.limits.shmmax {
                    return Err(errno::EINVAL);
                }
                let n = pages(size);
                if self
                    .shm_pages
                    .checked_add(n)
                    .is_none_or(|t| t > self.limits.shmall)
                {
                    return Err(errno::ENOSPC);
                }
                if self.shms.len() >= self.limits.shmmni {
                    return Err(errno::ENOSPC);
                }
                let oid = self.last_oid + 1;
                let mut perm = KernIpcPerm::new(g.key, g.flags, &g.cred);
                perm.id = self.new_id(Class::Shm, oid)?;
                self.last_oid = oid;
                self.shms.insert(oid, Segment::new(perm, size, g.pid, now));
                self.keys.insert((Class::Shm, g.key), oid);
                self.shm_pages += n;
                Ok(oid)
            }
        }
    }

    /// May the caller attach? `do_shmat()`'s permission check; `shm_atime`
    /// and `shm_lpid` as `shm_open()` sets them. An allowed attach counts at
    /// once: the node's count in `a` includes it.
    pub fn shmat(&mut self, node: u32, a: &ShmAt, now: i64) -> i64 {
        // A segment the referee no longer knows is an invalid id, as for
        // `shm_obtain_object_check()`.
        let Some(seg) = self.shms.get_mut(&a.oid) else {
            return -i64::from(errno::EINVAL);
        };
        let mut acc = if a.flags & SHM_RDONLY != 0 {
            S_IRUGO
        } else {
            S_IRUGO | S_IWUGO
        };
        if a.flags & SHM_EXEC != 0 {
            acc |= S_IXUGO;
        }
        if let Err(e) = seg.perm.ipcperms(&a.cred, acc) {
            return -i64::from(e);
        }
        seg.atime = now;
        seg.lpid = a.pid;
        seg.set_nattch(node, a.nattch, a.seq);
        0
    }

    /// Node `node` holds `nattch` attaches of `oid` now (its count number
    /// `seq`; an older count than one already taken changes nothing). A
    /// removed segment whose last attach went is destroyed.
    pub fn shm_nattch(&mut self, node: u32, n: &ShmNattch, now: i64) -> Effects {
        let mut fx = Effects::default();
        let (oid, pid, detach) = (n.oid, n.pid, n.detach != 0);
        let Some(seg) = self.shms.get_mut(&oid) else {
            return fx;
        };
        if !seg.set_nattch(node, n.nattch, n.seq) {
            return fx;
        }
        if pid != 0 {
            seg.lpid = pid;
        }
        if detach {
            seg.dtime = now;
        }
        if seg.dest() && seg.total_nattch() == 0 {
            self.shm_destroy(oid, &mut fx);
        }
        fx
    }

    fn shm_destroy(&mut self, oid: u64, fx: &mut Effects) {
        if let Some(seg) = self.shms.remove(&oid) {
            self.shm_pages -= pages(seg.segsz);
            if !seg.dest() {
                self.keys.remove(&(Class::Shm, seg.perm.key));
            }
            self.free_id(Class::Shm, seg.perm.id);
            fx.removed.push((Class::Shm, oid));
        }
    }

    /// `shmctl` on a distributed segment: `IPC_STAT`, `IPC_SET`, `IPC_RMID`
    /// (whose result is 1 when it destroyed the segment at once, 0 when it
    /// marked it `SHM_DEST`).
    pub fn shmctl(&mut self, c: &ShmCtl, now: i64) -> (ShmCtlResult, Effects) {
        let mut fx = Effects::default();
        let Some(seg) = self.shms.get_mut(&c.oid) else {
            return (ShmCtlResult::err(errno::EIDRM), fx);
        };
        let r = match c.cmd {
            // `shmctl_stat()`: SHM_STAT_ANY makes no read check.
            shmcmd::IPC_STAT | shmcmd::SHM_STAT | shmcmd::SHM_STAT_ANY => {
                match seg.perm.stat_check(&c.cred, c.cmd == shmcmd::SHM_STAT_ANY) {
                    Ok(()) => ShmCtlResult {
                        result: 0,
                        stat: seg.stat(),
                    },
                    Err(e) => ShmCtlResult::err(e),
                }
            }
            shmcmd::IPC_SET => match seg
                .perm
                .ctl_check(&c.cred)
                .and_then(|()| seg.perm.update(c.set_uid, c.set_gid, c.set_mode))
            {
                Ok(()) => {
                    seg.ctime = now;
                    fx.perms.push((Class::Shm, c.oid, seg.perm.shadow_perm()));
                    ShmCtlResult::default()
                }
                Err(e) => ShmCtlResult::err(e),
            },
            shmcmd::IPC_RMID => match seg.perm.ctl_check(&c.cred) {
                Ok(()) => {
                    if seg.total_nattch() == 0 {
                        self.shm_destroy(c.oid, &mut fx);
                        // 1 tells the caller's node it is gone already;
                        // the node returns 0, as Linux does.
                        return (
                            ShmCtlResult {
                                result: 1,
                                ..Default::default()
                            },
                            fx,
                        );
                    } else if !seg.dest() {
                        // `ipc_set_key_private()`: the key is free for a
                        // new segment.
                        seg.perm.mode |= SHM_DEST;
                        let key = seg.perm.key;
                        seg.perm.key = 0;
                        self.keys.remove(&(Class::Shm, key));
                    }
                    ShmCtlResult::default()
                }
                Err(e) => ShmCtlResult::err(e),
            },
            _ => ShmCtlResult::err(errno::EINVAL),
        };
        (r, fx)
    }

    /// A page fault on `node` wants `page` of `oid` (page mode; tests).
    #[cfg(test)]
    pub fn page_request(&mut self, node: u32, oid: u64, page: u64, write: bool) -> Effects {
        self.page_request_mode(node, oid, page, write, false, 0)
    }

    /// As [`Objects::page_request`]; with `whole`, the node wants the
    /// whole segment (whole-segment mode); `applied` is the last grant of
    /// the page the node applied.
    pub fn page_request_mode(
        &mut self,
        node: u32,
        oid: u64,
        page: u64,
        write: bool,
        whole: bool,
        applied: u64,
    ) -> Effects {
        let mut fx = Effects::default();
        let refuse = |result| PageRefusal {
            node,
            oid,
            page,
            write,
            result,
        };
        let Some(seg) = self.shms.get_mut(&oid) else {
            fx.page_refusals.push(refuse(-errno::EIDRM));
            return fx;
        };
        let mut out = Vec::new();
        seg.dir.readahead_max = self.readahead;
        seg.dir.legacy_ids = self.legacy_ids;
        let want = Want { node, write };
        let done = if whole {
            seg.dir
                .request_whole(want, page, applied, &mut self.next_txn, &mut out)
        } else {
            seg.dir
                .request(want, page, applied, &mut self.next_txn, &mut out)
        };
        match done {
            Ok(()) => fx.dsm.extend(out.into_iter().map(|out| Dsm { oid, out })),
            Err(DirError::OutOfRange) => fx.page_refusals.push(refuse(-errno::EFAULT)),
        }
        fx
    }

    /// `node` answered invalidation `txn` (and `sent` the page to the
    /// requester itself).
    pub fn page_ack(
        &mut self,
        node: u32,
        oid: u64,
        page: u64,
        txn: u64,
        data: Option<&[u8]>,
        sent: bool,
    ) -> (bool, Effects) {
        let mut fx = Effects::default();
        let Some(seg) = self.shms.get_mut(&oid) else {
            return (false, fx);
        };
        let mut out = Vec::new();
        seg.dir.legacy_ids = self.legacy_ids;
        let ok = seg
            .dir
            .ack(node, page, txn, data, sent, &mut self.next_txn, &mut out);
        fx.dsm.extend(out.into_iter().map(|out| Dsm { oid, out }));
        (ok, fx)
    }

    /// Node `node` is leaving: every page it owns is called home (see
    /// [`Directory::recall`]).
    pub fn shm_recall(&mut self, node: u32) -> Effects {
        let mut fx = Effects::default();
        for (&oid, seg) in self.shms.iter_mut() {
            let mut out = Vec::new();
            seg.dir.legacy_ids = self.legacy_ids;
            seg.dir.recall(node, &mut self.next_txn, &mut out);
            fx.dsm.extend(out.into_iter().map(|out| Dsm { oid, out }));
        }
        fx
    }

    /// Whether `node` still owns a page of any segment, or owes an ack.
    pub fn shm_holds(&self, node: u32) -> bool {
        self.shms.values().any(|s| s.dir.holds(node))
    }

    /// Node `node` is gone: its attaches and page copies go.
    pub(super) fn shm_node_gone(&mut self, node: u32, fx: &mut Effects) {
        let oids: Vec<u64> = self.shms.keys().copied().collect();
        for oid in oids {
            let Some(seg) = self.shms.get_mut(&oid) else {
                continue;
            };
            seg.forget_node(node);
            let mut out = Vec::new();
            seg.dir.legacy_ids = self.legacy_ids;
            seg.dir.node_gone(node, &mut self.next_txn, &mut out);
            fx.dsm.extend(out.into_iter().map(|out| Dsm { oid, out }));
            if seg.dest() && seg.total_nattch() == 0 {
                self.shm_destroy(oid, fx);
            }
        }
    }
}
