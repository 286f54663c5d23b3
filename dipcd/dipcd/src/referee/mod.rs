//! The referee's objects: the key registry and every distributed object,
//! with the semantics of the local kernel. Plain state and plain functions:
//! the server in [`crate::server`] feeds decoded requests in and sends the
//! replies that come out; nothing here does I/O or reads a clock.
//!
//! One file per object kind, after `ipc/`: [`ipc`] (`ipc/util.c`),
//! [`sem`] (`ipc/sem.c`) and [`msg`] (`ipc/msg.c`).

pub mod dsm;
pub mod ids;
pub mod ipc;
pub mod msg;
pub mod persist;
pub mod sem;
pub mod shm;

#[cfg(test)]
mod msg_tests;
#[cfg(test)]
mod shm_tests;
#[cfg(test)]
mod tests;

use dipc_wire::{
    errno, msgcmd, semcmd, Class, Cred, Get, GetReply, IpcPerm, IpcStat, MsgCtl, MsgInfo, MsgStat,
    SemCtl, Sembuf, CAP_SYS_RESOURCE, MAX_MTEXT, MAX_SEMS, MAX_SOPS,
};
use ipc::{ipcget_existing, Errno, KernIpcPerm, IPC_CREAT, S_IRUGO, S_IWUGO};
use msg::{convert_mode, Msg, MsgQueue, MsgReply, Recall, Recv, SendGrant, MSG_COPY};
use sem::{Proc, Reply, SemArray, Waiter, SEMVMX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// System-wide limits, as `/proc/sys/kernel/sem` sets them on a node. The
/// defaults are Linux's (`include/uapi/linux/sem.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `SEMMSL`: most semaphores in one set.
    pub semmsl: usize,
    /// `SEMMNS`: most semaphores in all sets.
    pub semmns: usize,
    /// `SEMOPM`: most operations in one `semop`.
    pub semopm: usize,
    /// `SEMMNI`: most sets.
    pub semmni: usize,
    /// `msgmax`: the largest message (at most [`MAX_MTEXT`]).
    pub msgmax: usize,
    /// `msgmnb`: a new queue's `msg_qbytes`, and the most an unprivileged
    /// `IPC_SET` may ask for.
    pub msgmnb: usize,
    /// `msgmni`: most queues.
    pub msgmni: usize,
    /// `shmmax`: the largest segment, in bytes.
    pub shmmax: u64,
    /// `shmall`: most pages in all segments.
    pub shmall: u64,
    /// `shmmni`: most segments.
    pub shmmni: usize,
}

impl Limits {
    /// Checks a configuration: `Err` names the first limit out of range.
    pub fn check(&self) -> Result<(), String> {
        // Each class's ids come from a table of IPCMNI slots, as on a node.
        let most = ids::IPCMNI as usize;
        if self.semmni > most || self.msgmni > most || self.shmmni > most {
            return Err(format!("semmni, msgmni and shmmni must be at most {most}"));
        }
        // What one frame can carry: a set's values, a semop's operations.
        if self.semmsl > MAX_SEMS {
            return Err(format!("semmsl {} exceeds {MAX_SEMS}", self.semmsl));
        }
        if self.semopm > MAX_SOPS {
            return Err(format!("semopm {} exceeds {MAX_SOPS}", self.semopm));
        }
        if self.msgmax > MAX_MTEXT {
            return Err(format!("msgmax {} exceeds {MAX_MTEXT}", self.msgmax));
        }
        if self.msgmnb > i32::MAX as usize || self.msgmni > i32::MAX as usize {
            return Err("msgmnb and msgmni must fit in an int".into());
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            semmsl: 32000,
            semmns: 32000 * 32000,
            semopm: 500,
            semmni: 32000,
            msgmax: 8192,
            msgmnb: 16384,
            msgmni: 32000,
            // include/uapi/linux/shm.h: SHMMAX = SHMALL = ULONG_MAX - 2^24.
            shmmax: u64::MAX - (1 << 24),
            shmall: u64::MAX - (1 << 24),
            shmmni: 4096,
        }
    }
}

/// What a request changed beyond its own answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Answers to requests that were waiting.
    pub replies: Vec<Reply>,
    /// Objects removed: every node must drop its shadow.
    pub removed: Vec<(Class, u64)>,
    /// Objects whose owner or mode `IPC_SET` changed: every node gives its
    /// shadow the new ones.
    pub perms: Vec<(Class, u64, IpcPerm)>,
    /// Answers to `msgrcv` calls: messages, or errors found while receiving.
    pub msgs: Vec<MsgReply>,
    /// Page grants and invalidations.
    pub dsm: Vec<shm::Dsm>,
    /// Page requests refused (the segment is gone, the page out of range).
    pub page_refusals: Vec<shm::PageRefusal>,
    /// Message leases to ask back: (holder, queue, lease).
    pub recalls: Vec<(u32, u64, u64)>,
    /// More for leases held: messages, or room.
    pub more: Vec<msg::More>,
}

impl Effects {
    /// Names queue `oid` in the lease extensions its calls just made.
    fn name_queue(&mut self, oid: u64) {
        for m in self.more.iter_mut().filter(|m| m.oid == 0) {
            m.oid = oid;
        }
    }
}

/// The answer to a `msgctl`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MsgCtlResult {
    /// Return value or negative errno.
    pub result: i64,
    /// For `IPC_STAT`, `MSG_STAT` and `MSG_STAT_ANY`.
    pub stat: MsgStat,
    /// For `IPC_INFO` and `MSG_INFO`.
    pub info: MsgInfo,
}

impl MsgCtlResult {
    fn err(e: Errno) -> Self {
        MsgCtlResult {
            result: -i64::from(e),
            ..Default::default()
        }
    }
}

/// The answer to a `semctl`, owning its values.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SemCtlResult {
    /// Return value or negative errno.
    pub result: i64,
    /// For `IPC_STAT`.
    pub stat: IpcStat,
    /// For `GETALL`.
    pub vals: Vec<u16>,
}

impl SemCtlResult {
    fn err(e: Errno) -> Self {
        SemCtlResult {
            result: -i64::from(e),
            ..Default::default()
        }
    }

    fn ok(result: i64) -> Self {
        SemCtlResult {
            result,
            ..Default::default()
        }
    }
}

/// One object as `dipcd status` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectStatus {
    /// `sem`, `msg` or `shm`.
    pub class: &'static str,
    /// Cluster-wide id.
    pub oid: u64,
    /// Key.
    pub key: i32,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Semaphores in the set (0 for a queue).
    pub nsems: usize,
    /// Messages in the queue (0 for a set).
    pub messages: usize,
    /// Bytes in the queue (0 for a set).
    pub bytes: u64,
    /// Sleeping operations.
    pub waiters: usize,
    /// Segment size in bytes (0 for a set or a queue).
    pub size: u64,
    /// Attaches on every node (segments).
    pub nattch: u64,
    /// Pages with a directory entry (segments): pages in use.
    pub pages: usize,
    /// Pages requested ahead of nodes' sequential misses (segments).
    pub ahead: u64,
    /// Pages sent straight from their owner to the requester (segments).
    pub direct: u64,
    /// Of those, granted again from home (lost on the way, or the owner
    /// was lost).
    pub regrants: u64,
    /// Attaches by node, for the nodes that have any (segments). Last, so
    /// that each object's scalar fields come before any nested `{`.
    pub nattch_by_node: BTreeMap<u32, u32>,
}

/// Every distributed object, by key and by cluster-wide id.
#[derive(Default, Serialize, Deserialize)]
pub struct Objects {
    limits: Limits,
    #[serde(with = "persist::keys")]
    keys: BTreeMap<(Class, i32), u64>,
    sems: BTreeMap<u64, SemArray>,
    used_sems: usize,
    msgs: BTreeMap<u64, MsgQueue>,
    shms: BTreeMap<u64, shm::Segment>,
    /// Pages in all segments (against `shmall`).
    shm_pages: u64,
    /// The last DSM transaction id.
    next_txn: u64,
    last_oid: u64,
    /// The SysV ids of sets, queues and segments.
    ids: [ids::IdSpace; 3],
    /// Most DSM pages read ahead of one miss (`--readahead`; logged).
    readahead: u64,
    /// No message leases (`--msg-leases false`; logged).
    no_msg_leases: bool,
    /// DSM transactions are numbered as before grants were remembered
    /// until applied ([`dsm::Directory::legacy_ids`]): while a log or
    /// snapshot of that dipcd version is replayed, until the
    /// [`crate::state::Record::GrantIds`] every newer referee logs when it
    /// starts. Not in the snapshot: its magic says it.
    #[serde(skip)]
    legacy_ids: bool,
}

/// The position of `class`'s id table in [`Objects::ids`] (the kernel's
/// `IPC_SEM_IDS`, `IPC_MSG_IDS`, `IPC_SHM_IDS`).
fn class_index(class: Class) -> usize {
    class.ids_index()
}

fn get_failed(e: Errno) -> GetReply {
    GetReply {
        result: -e,
        oid: 0,
        perm: IpcPerm::default(),
        size: 0,
        id: 0,
        key: 0,
        created: 0,
    }
}

fn errno64(e: Errno) -> i64 {
    -i64::from(e)
}

impl Objects {
    /// An empty registry with `limits`.
    pub fn new(limits: Limits) -> Self {
        Objects {
            limits,
            readahead: dsm::READAHEAD_MAX,
            ..Default::default()
        }
    }

    /// Most DSM pages read ahead of one miss (0: none).
    pub fn readahead(&self) -> u64 {
        self.readahead
    }

    /// Sets the read-ahead bound (a restarted referee's configuration
    /// applies from its [`crate::state::Record::Tuning`] on).
    pub fn set_readahead(&mut self, pages: u64) {
        self.readahead = pages;
    }

    /// Whether DSM transactions are numbered the older way (see
    /// [`Objects::legacy_ids`]'s field).
    pub fn legacy_ids(&self) -> bool {
        self.legacy_ids
    }

    /// Numbers DSM transactions the older way, or not.
    pub fn set_legacy_ids(&mut self, on: bool) {
        self.legacy_ids = on;
    }

    /// Whether message queues may be leased to nodes.
    pub fn msg_leases(&self) -> bool {
        !self.no_msg_leases
    }

    /// Allows or forbids message leases (see [`Objects::set_readahead`]).
    /// Forbidding them does not end leases already granted.
    pub fn set_msg_leases(&mut self, on: bool) {
        self.no_msg_leases = !on;
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the limits (a restarted referee's configuration applies
    /// to what comes next; existing objects stay as they are).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether the request `who` sleeps on a set or a queue.
    pub fn is_waiting(&self, who: Waiter) -> bool {
        self.sems.values().any(|s| s.has_waiter(who))
            || self.msgs.values().any(|q| q.has_waiter(who))
    }

    /// Invalidations `node` has not acknowledged, with their segments.
    pub fn pending_invals(&self, node: u32) -> Vec<(u64, dsm::PendingInval)> {
        let mut v = Vec::new();
        for (&oid, seg) in &self.shms {
            for i in seg.dir.pending_invals(node) {
                v.push((oid, i));
            }
        }
        v
    }

    /// The semaphore set `oid`, if it exists.
    #[cfg(test)]
    pub fn sem(&self, oid: u64) -> Option<&SemArray> {
        self.sems.get(&oid)
    }

    /// The message queue `oid`, if it exists.
    pub fn msg(&self, oid: u64) -> Option<&MsgQueue> {
        self.msgs.get(&oid)
    }

    /// `ipcget()` for a distributed key, cluster-wide.
    pub fn get(&mut self, g: &Get, now: i64) -> GetReply {
        let last = self.last_oid;
        let got = match g.class {
            Class::Sem => self.semget(g, now),
            Class::Msg => self.msgget(g, now),
            Class::Shm => self.shmget(g, now),
        };
        match got {
            Ok(oid) => GetReply {
                created: u8::from(oid > last),
                ..self.describe(g.class, oid)
            },
            Err(e) => get_failed(e),
        }
    }

    /// The object with SysV id `id`, for a node that was given the id
    /// and has no shadow of it; `EINVAL` if there is none, as a local
    /// call on an unused id returns.
    pub fn lookup(&self, class: Class, id: i32) -> GetReply {
        match self.ids[class_index(class)].find(id) {
            Some(oid) => self.describe(class, oid),
            None => get_failed(errno::EINVAL),
        }
    }

    /// What a node needs to make the shadow of object `oid`.
    fn describe(&self, class: Class, oid: u64) -> GetReply {
        let (perm, size) = match class {
            Class::Sem => {
                let sma = &self.sems[&oid];
                (&sma.perm, sma.nsems() as u64)
            }
            // The size tells the node this referee's msgmax, which msgsnd
            // checks before it looks at the queue.
            Class::Msg => {
                let q = &self.msgs[&oid];
                (&q.perm, self.limits.msgmax as u64)
            }
            Class::Shm => {
                let seg = &self.shms[&oid];
                (&seg.perm, seg.segsz)
            }
        };
        GetReply {
            result: 0,
            oid,
            perm: perm.shadow_perm(),
            size,
            id: perm.id,
            key: perm.key,
            created: 0,
        }
    }

    /// A new object's id: `Err(ENOSPC)` when every slot of its class's
    /// table is taken.
    fn new_id(&mut self, class: Class, oid: u64) -> Result<i32, Errno> {
        self.ids[class_index(class)].alloc(oid).ok_or(errno::ENOSPC)
    }

    /// Frees a removed object's id.
    fn free_id(&mut self, class: Class, id: i32) {
        self.ids[class_index(class)].free(id);
    }

    /// `ksys_semget()` + `ipcget_public()` + `newary()` / `sem_more_checks()`.
    fn semget(&mut self, g: &Get, now: i64) -> Result<u64, Errno> {
        let nsems = i64::try_from(g.size).unwrap_or(i64::MAX);
        if nsems < 0 || nsems as u64 > self.limits.semmsl as u64 {
            return Err(errno::EINVAL);
        }
        let nsems = nsems as usize;
        match self.keys.get(&(Class::Sem, g.key)) {
            Some(&oid) => {
                let sma = &self.sems[&oid];
                ipcget_existing(&sma.perm, g.flags, &g.cred, || {
                    if nsems > sma.nsems() {
                        Err(errno::EINVAL)
                    } else {
                        Ok(())
                    }
                })?;
                Ok(oid)
            }
            None if g.flags & IPC_CREAT == 0 => Err(errno::ENOENT),
            None => {
                if nsems == 0 {
                    return Err(errno::EINVAL);
                }
                if self.used_sems + nsems > self.limits.semmns
                    || self.sems.len() >= self.limits.semmni
                {
                    return Err(errno::ENOSPC);
                }
                let oid = self.last_oid + 1;
                let mut perm = KernIpcPerm::new(g.key, g.flags, &g.cred);
                perm.id = self.new_id(Class::Sem, oid)?;
                self.last_oid = oid;
                self.sems.insert(oid, SemArray::new(perm, nsems, now));
                self.keys.insert((Class::Sem, g.key), oid);
                self.used_sems += nsems;
                Ok(oid)
            }
        }
    }

    /// `ksys_msgget()` + `ipcget_public()` + `newque()`.
    fn msgget(&mut self, g: &Get, now: i64) -> Result<u64, Errno> {
        match self.keys.get(&(Class::Msg, g.key)) {
            Some(&oid) => {
                ipcget_existing(&self.msgs[&oid].perm, g.flags, &g.cred, || Ok(()))?;
                Ok(oid)
            }
            None if g.flags & IPC_CREAT == 0 => Err(errno::ENOENT),
            None => {
                if self.msgs.len() >= self.limits.msgmni {
                    return Err(errno::ENOSPC);
                }
                let oid = self.last_oid + 1;
                let mut perm = KernIpcPerm::new(g.key, g.flags, &g.cred);
                perm.id = self.new_id(Class::Msg, oid)?;
                self.last_oid = oid;
                let q = MsgQueue::new(perm, self.limits.msgmnb as u64, now);
                self.msgs.insert(oid, q);
                self.keys.insert((Class::Msg, g.key), oid);
                Ok(oid)
            }
        }
    }

    /// `msgsnd` by request `who` of process `pid`. `Some(result)` when the
    /// call is over (with a send lease the node earned); `None` when it
    /// sleeps. `-RETRY` when another node's lease must come back first
    /// (asked for in the effects).
    #[allow(clippy::too_many_arguments)]
    pub fn msgsnd(
        &mut self,
        who: Waiter,
        pid: u32,
        oid: u64,
        cred: &Cred,
        mtype: i64,
        flags: i32,
        text: &[u8],
        now: i64,
    ) -> (Option<(i64, Option<SendGrant>)>, Effects) {
        let mut fx = Effects::default();
        // Checked by the node first; checked again for any other peer.
        if text.len() > self.limits.msgmax || mtype < 1 {
            return (Some((errno64(errno::EINVAL), None)), fx);
        }
        let Some(q) = self.msgs.get_mut(&oid) else {
            return (Some((errno64(errno::EIDRM), None)), fx);
        };
        let msg = Msg {
            mtype,
            text: text.to_vec(),
            seq: 0,
        };
        let leases = !self.no_msg_leases;
        let r = q.msgsnd(who, pid, cred, msg, flags, leases, now, &mut fx);
        fx.name_queue(oid);
        match r {
            Ok(r) => (r, fx),
            Err(r) => {
                recall(&mut fx, oid, &[r]);
                (Some((errno64(errno::RETRY), None)), fx)
            }
        }
    }

    /// A message node `node` accepted under send lease `lease` of queue
    /// `oid`, sent as request `req` (see [`MsgQueue::leased_send`]).
    /// `false`: it changed nothing (sent again, or the queue is gone).
    #[allow(clippy::too_many_arguments)]
    pub fn msgsnd_leased(
        &mut self,
        node: u32,
        lease: u64,
        req: u64,
        pid: u32,
        oid: u64,
        mtype: i64,
        text: &[u8],
        now: i64,
    ) -> (bool, Effects) {
        let mut fx = Effects::default();
        let Some(q) = self.msgs.get_mut(&oid) else {
            return (false, fx);
        };
        let msg = Msg {
            mtype: mtype.max(1),
            text: text[..text.len().min(self.limits.msgmax)].to_vec(),
            seq: 0,
        };
        let queued = q.leased_send(node, lease, req, pid, msg, now, &mut fx);
        fx.name_queue(oid);
        (queued, fx)
    }

    /// Node `node` gives lease `lease` of queue `oid` back.
    pub fn msg_give_back(
        &mut self,
        node: u32,
        oid: u64,
        lease: u64,
        taken: &[u64],
        pid: u32,
        now: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        if let Some(q) = self.msgs.get_mut(&oid) {
            q.give_back(node, lease, taken, pid, now, &mut fx);
        }
        fx.name_queue(oid);
        fx
    }

    /// Node `node` took messages `seqs` under receive lease `lease`.
    pub fn msg_taken(
        &mut self,
        node: u32,
        oid: u64,
        lease: u64,
        seqs: &[u64],
        pid: u32,
        now: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        if let Some(q) = self.msgs.get_mut(&oid) {
            for &seq in seqs {
                q.take_leased(node, lease, seq, pid, now, &mut fx);
            }
        }
        fx.name_queue(oid);
        fx
    }

    /// `msgrcv` by request `who` of process `pid`. `Some(answer)` when the
    /// call is over; `None` when it sleeps; `-RETRY` as for
    /// [`Objects::msgsnd`].
    #[allow(clippy::too_many_arguments)]
    pub fn msgrcv(
        &mut self,
        who: Waiter,
        pid: u32,
        oid: u64,
        cred: &Cred,
        msgtyp: i64,
        flags: i32,
        bufsz: u64,
        now: i64,
    ) -> (Option<MsgReply>, Effects) {
        let mut fx = Effects::default();
        let err = |e| Some(MsgReply::err(who, e));
        if (bufsz as i64) < 0 {
            return (err(errno::EINVAL), fx);
        }
        if flags & MSG_COPY != 0 && (flags & msg::MSG_EXCEPT != 0 || flags & msg::IPC_NOWAIT == 0) {
            return (err(errno::EINVAL), fx);
        }
        let Some(q) = self.msgs.get_mut(&oid) else {
            return (err(errno::EIDRM), fx);
        };
        let (mode, msgtyp) = convert_mode(msgtyp, flags);
        let recv = Recv {
            msgtyp,
            mode,
            bufsz,
            flags,
        };
        let copy_max = bufsz.min(self.limits.msgmax as u64);
        // The answer's own message and the lease share one frame.
        let room = (MAX_MTEXT as u64).saturating_sub(copy_max);
        let room = if self.no_msg_leases { 0 } else { room };
        let r = q.msgrcv(who, pid, cred, recv, copy_max, room, now, &mut fx);
        fx.name_queue(oid);
        match r {
            Ok(r) => (r, fx),
            Err(r) => {
                recall(&mut fx, oid, &[r]);
                (err(errno::RETRY), fx)
            }
        }
    }

    /// `msgctl` (`ksys_msgctl()`, `msgctl_down()`, `msgctl_stat()`,
    /// `msgctl_info()`), with the checks in Linux's order. For `MSG_STAT`
    /// the node has already turned the index into the queue and returns
    /// its own id.
    pub fn msgctl(&mut self, node: u32, c: &MsgCtl, now: i64) -> (MsgCtlResult, Effects) {
        let mut fx = Effects::default();
        let limits = self.limits;
        // Leases first: MSG_INFO counts every queue; the other commands
        // read or change this one.
        let mut recalls = false;
        if c.cmd == msgcmd::MSG_INFO {
            for (&oid, q) in &mut self.msgs {
                let r = q.leases_for_ctl(node, now, &mut fx);
                fx.name_queue(oid);
                recalls |= !r.is_empty();
                recall(&mut fx, oid, &r);
            }
        } else if c.cmd != msgcmd::IPC_INFO {
            if let Some(q) = self.msgs.get_mut(&c.oid) {
                let r = q.leases_for_ctl(node, now, &mut fx);
                fx.name_queue(c.oid);
                recalls |= !r.is_empty();
                recall(&mut fx, c.oid, &r);
            }
        }
        if recalls {
            return (MsgCtlResult::err(errno::RETRY), fx);
        }
        if matches!(c.cmd, msgcmd::IPC_INFO | msgcmd::MSG_INFO) {
            let mut info = MsgInfo {
                msgmax: limits.msgmax as i32,
                msgmnb: limits.msgmnb as i32,
                msgmni: limits.msgmni as i32,
                msgssz: 16,
                ..Default::default()
            };
            // MSGPOOL, MSGMAP, MSGTQL and MSGSEG as Linux computes them.
            let msgpool = (32000i64 * 16384 / 1024) as i32;
            info.msgseg = ((i64::from(msgpool) * 1024 / 16).min(0xffff)) as u16;
            if c.cmd == msgcmd::MSG_INFO {
                info.msgpool = self.msgs.len() as i32;
                let n: usize = self.msgs.values().map(MsgQueue::qnum).sum();
                let b: u64 = self.msgs.values().map(|q| q.cbytes).sum();
                info.msgmap = n.min(i32::MAX as usize) as i32;
                info.msgtql = b.min(i32::MAX as u64) as i32;
            } else {
                info.msgpool = msgpool;
                info.msgmap = 16384;
                info.msgtql = 16384;
            }
            return (
                MsgCtlResult {
                    result: 0,
                    stat: MsgStat::default(),
                    info,
                },
                fx,
            );
        }
        let Some(q) = self.msgs.get_mut(&c.oid) else {
            return (MsgCtlResult::err(errno::EIDRM), fx);
        };
        let r = match c.cmd {
            msgcmd::IPC_STAT | msgcmd::MSG_STAT | msgcmd::MSG_STAT_ANY => {
                match q.perm.stat_check(&c.cred, c.cmd == msgcmd::MSG_STAT_ANY) {
                    Ok(()) => MsgCtlResult {
                        result: 0,
                        stat: q.stat(),
                        info: MsgInfo::default(),
                    },
                    Err(e) => MsgCtlResult::err(e),
                }
            }
            msgcmd::IPC_RMID => match q.perm.ctl_check(&c.cred) {
                Ok(()) => {
                    q.remove(&mut fx);
                    let (key, id) = (q.perm.key, q.perm.id);
                    self.msgs.remove(&c.oid);
                    self.keys.remove(&(Class::Msg, key));
                    self.free_id(Class::Msg, id);
                    fx.removed.push((Class::Msg, c.oid));
                    MsgCtlResult::default()
                }
                Err(e) => MsgCtlResult::err(e),
            },
            msgcmd::IPC_SET => {
                // msgctl_down() takes msg_qbytes as an int and compares it
                // with the unsigned msgmnb.
                let qbytes = c.set_qbytes as i32;
                let check = q.perm.ctl_check(&c.cred).and_then(|()| {
                    if qbytes as u32 as usize > limits.msgmnb && c.cred.caps & CAP_SYS_RESOURCE == 0
                    {
                        Err(errno::EPERM)
                    } else {
                        q.perm.update(c.set_uid, c.set_gid, c.set_mode)
                    }
                });
                match check {
                    Ok(()) => {
                        q.qbytes = i64::from(qbytes) as u64;
                        q.ctime = now;
                        fx.perms.push((Class::Msg, c.oid, q.perm.shadow_perm()));
                        let copy_max = limits.msgmax as u64;
                        q.recheck(copy_max, now, &mut fx);
                        MsgCtlResult::default()
                    }
                    Err(e) => MsgCtlResult::err(e),
                }
            }
            _ => MsgCtlResult::err(errno::EINVAL),
        };
        fx.name_queue(c.oid);
        (r, fx)
    }

    /// `semop`/`semtimedop` by request `who` of process `p`. `Some(result)`
    /// when the call is over; `None` when it sleeps (its answer comes out in
    /// a later [`Effects`], or from [`Objects::cancel`]).
    pub fn semop(
        &mut self,
        who: Waiter,
        p: Proc,
        oid: u64,
        cred: &Cred,
        sops: &[Sembuf],
        now: i64,
    ) -> (Option<i64>, Effects) {
        let mut fx = Effects::default();
        if sops.len() > self.limits.semopm {
            return (Some(errno64(errno::E2BIG)), fx);
        }
        let Some(sma) = self.sems.get_mut(&oid) else {
            return (Some(errno64(errno::EIDRM)), fx);
        };
        let r = sma.semop(who, p, cred, sops, now, &mut fx.replies);
        (r, fx)
    }

    /// Gives up the sleeping request `who`: its answer becomes `-EINTR`. No
    /// answer if it is not sleeping (it completed, and that answer stands).
    pub fn cancel(&mut self, who: Waiter) -> Option<Reply> {
        self.sems
            .values_mut()
            .find_map(|s| s.cancel(who))
            .or_else(|| self.msgs.values_mut().find_map(|q| q.cancel(who)))
    }

    /// Process `p` exited: `exit_sem()` on every set it holds adjustments in.
    pub fn exit(&mut self, p: Proc, now: i64) -> Effects {
        let mut fx = Effects::default();
        for sma in self.sems.values_mut() {
            sma.exit(p, now, &mut fx.replies);
        }
        fx
    }

    /// Node `node` disconnected: its sleepers are dropped and its processes'
    /// adjustments applied.
    pub fn node_gone(&mut self, node: u32, now: i64) -> Effects {
        let mut fx = Effects::default();
        for sma in self.sems.values_mut() {
            sma.node_gone(node, now, &mut fx.replies);
        }
        for (&oid, q) in &mut self.msgs {
            q.node_gone(node, now, &mut fx);
            fx.name_queue(oid);
        }
        self.shm_node_gone(node, &mut fx);
        fx
    }

    /// `semctl` (`ksys_semctl()` and the functions it calls), with the
    /// checks in Linux's order for each command.
    pub fn semctl(&mut self, c: &SemCtl<'_>, now: i64) -> (SemCtlResult, Effects) {
        let mut fx = Effects::default();
        let Some(sma) = self.sems.get_mut(&c.oid) else {
            return (SemCtlResult::err(errno::EIDRM), fx);
        };
        let nsems = sma.nsems();
        let semnum = usize::try_from(c.semnum).ok().filter(|&n| n < nsems);
        let r = match c.cmd {
            semcmd::IPC_RMID => match sma.perm.ctl_check(&c.cred) {
                Ok(()) => {
                    sma.remove(&mut fx.replies);
                    let (key, id) = (sma.perm.key, sma.perm.id);
                    self.used_sems -= nsems;
                    self.sems.remove(&c.oid);
                    self.keys.remove(&(Class::Sem, key));
                    self.free_id(Class::Sem, id);
                    fx.removed.push((Class::Sem, c.oid));
                    SemCtlResult::ok(0)
                }
                Err(e) => SemCtlResult::err(e),
            },
            semcmd::IPC_SET => match sma
                .perm
                .ctl_check(&c.cred)
                .and_then(|()| sma.perm.update(c.set_uid, c.set_gid, c.set_mode))
            {
                Ok(()) => {
                    sma.ctime = now;
                    fx.perms.push((Class::Sem, c.oid, sma.perm.shadow_perm()));
                    SemCtlResult::ok(0)
                }
                Err(e) => SemCtlResult::err(e),
            },
            // `semctl_stat()`: SEM_STAT_ANY makes no read check.
            semcmd::IPC_STAT | semcmd::SEM_STAT | semcmd::SEM_STAT_ANY => {
                match sma.perm.stat_check(&c.cred, c.cmd == semcmd::SEM_STAT_ANY) {
                    Ok(()) => SemCtlResult {
                        result: 0,
                        stat: IpcStat {
                            key: sma.perm.key,
                            uid: sma.perm.uid,
                            gid: sma.perm.gid,
                            cuid: sma.perm.cuid,
                            cgid: sma.perm.cgid,
                            mode: sma.perm.mode,
                            otime: sma.otime,
                            ctime: sma.ctime,
                            nsems: nsems as u32,
                        },
                        vals: Vec::new(),
                    },
                    Err(e) => SemCtlResult::err(e),
                }
            }
            semcmd::GETALL => match sma.perm.ipcperms(&c.cred, S_IRUGO) {
                Ok(()) => SemCtlResult {
                    result: 0,
                    stat: IpcStat::default(),
                    vals: sma.sems.iter().map(|s| s.val as u16).collect(),
                },
                Err(e) => SemCtlResult::err(e),
            },
            semcmd::SETALL => {
                let vals: Vec<u16> = c.vals.iter().collect();
                if let Err(e) = sma.perm.ipcperms(&c.cred, S_IWUGO) {
                    SemCtlResult::err(e)
                } else if vals.len() != nsems {
                    SemCtlResult::err(errno::EINVAL)
                } else if vals.iter().any(|&v| i32::from(v) > SEMVMX) {
                    SemCtlResult::err(errno::ERANGE)
                } else {
                    sma.setall(&vals, c.pid, now, &mut fx.replies);
                    SemCtlResult::ok(0)
                }
            }
            semcmd::GETVAL | semcmd::GETPID | semcmd::GETNCNT | semcmd::GETZCNT => {
                match (sma.perm.ipcperms(&c.cred, S_IRUGO), semnum) {
                    (Err(e), _) => SemCtlResult::err(e),
                    (Ok(()), None) => SemCtlResult::err(errno::EINVAL),
                    (Ok(()), Some(n)) => SemCtlResult::ok(match c.cmd {
                        semcmd::GETVAL => i64::from(sma.sems[n].val),
                        semcmd::GETPID => i64::from(sma.sems[n].pid),
                        semcmd::GETNCNT => sma.count(n, false) as i64,
                        _ => sma.count(n, true) as i64,
                    }),
                }
            }
            semcmd::SETVAL => {
                if !(0..=SEMVMX).contains(&c.val) {
                    SemCtlResult::err(errno::ERANGE)
                } else if let Some(n) = semnum {
                    match sma.perm.ipcperms(&c.cred, S_IWUGO) {
                        Ok(()) => {
                            sma.setval(n, c.val, c.pid, now, &mut fx.replies);
                            SemCtlResult::ok(0)
                        }
                        Err(e) => SemCtlResult::err(e),
                    }
                } else {
                    SemCtlResult::err(errno::EINVAL)
                }
            }
            _ => SemCtlResult::err(errno::EINVAL),
        };
        (r, fx)
    }

    /// Every object, for `dipcd status`.
    pub fn status(&self) -> Vec<ObjectStatus> {
        let sems = self.sems.iter().map(|(&oid, s)| ObjectStatus {
            class: "sem",
            oid,
            key: s.perm.key,
            mode: s.perm.mode,
            uid: s.perm.uid,
            nsems: s.nsems(),
            messages: 0,
            bytes: 0,
            waiters: s.waiters(),
            size: 0,
            nattch: 0,
            pages: 0,
            ahead: 0,
            direct: 0,
            regrants: 0,
            nattch_by_node: BTreeMap::new(),
        });
        let msgs = self.msgs.iter().map(|(&oid, q)| ObjectStatus {
            class: "msg",
            oid,
            key: q.perm.key,
            mode: q.perm.mode,
            uid: q.perm.uid,
            nsems: 0,
            messages: q.qnum(),
            bytes: q.cbytes,
            waiters: q.waiters(),
            size: 0,
            nattch: 0,
            pages: 0,
            ahead: 0,
            direct: 0,
            regrants: 0,
            nattch_by_node: BTreeMap::new(),
        });
        let shms = self.shms.iter().map(|(&oid, s)| ObjectStatus {
            class: "shm",
            oid,
            key: s.perm.key,
            mode: s.perm.mode,
            uid: s.perm.uid,
            nsems: 0,
            messages: 0,
            bytes: 0,
            waiters: 0,
            size: s.segsz,
            nattch: s.total_nattch(),
            nattch_by_node: s
                .nattch
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(&k, &n)| (k, n))
                .collect(),
            pages: s.dir.entries(),
            ahead: s.dir.stats.ahead,
            direct: s.dir.stats.direct,
            regrants: s.dir.stats.regrants,
        });
        let mut all: Vec<ObjectStatus> = sems.chain(msgs).chain(shms).collect();
        all.sort_by_key(|o| o.oid);
        all
    }

    /// Sleeping requests in all objects.
    pub fn waiters(&self) -> usize {
        self.sems.values().map(SemArray::waiters).sum::<usize>()
            + self.msgs.values().map(MsgQueue::waiters).sum::<usize>()
    }
}

/// Asks the holders of `leases` of queue `oid` to give them back.
fn recall(fx: &mut Effects, oid: u64, leases: &[Recall]) {
    fx.recalls
        .extend(leases.iter().map(|r| (r.node, oid, r.lease)));
}
