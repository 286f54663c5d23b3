// SPDX-License-Identifier: GPL-2.0

//! Distributed shared memory on the node side.
//!
//! `shmget`/`shmat`/`shmdt`/`shmctl` of a distributed segment go to the
//! referee for the cluster-wide checks and counts; each node keeps a real
//! local shadow segment whose pages are its cache of the segment. Its VMAs
//! are wrapped (`rust/helpers/shm.c`), so every fault on a page this node
//! may not access asks the referee first ([`acquire`]).
//!
//! Each page's access on this node (none, read, write) lives in a word with
//! a change count ([`Seg`]). Only the connection thread changes it, in the
//! order the referee's frames arrive: a grant installs the page's bytes and
//! then raises the access; an invalidation lowers it, unmaps the page from
//! every process and, for an owner, sends the bytes back. Both happen with
//! the page's folio locked, which is what a fault holds when it checks the
//! access a last time before the page is mapped.
//!
//! Lock order (`Documentation/dsm.md`): mmap lock / VMA lock → folio lock →
//! [`Node::segs`] → a segment's state spin lock. Nothing sleeps for the
//! network with a folio or a spin lock held; the connection thread takes no
//! mmap lock.

use crate::{
    ids::{self, get_object},
    layout::{self, Abi},
    node::Node,
    seg::{next_word, sufficient, Seg, ACC_MASK, ACC_NONE, ACC_READ, ACC_WRITE},
    shadow::{ProcStat, Shadow},
    shim::{self, Socket, HOOK_SHMGET},
    util::{checked, copy_out, neg, transport_err, IPC_CREAT},
    wire::{
        errno, shmcmd, Class, Frame, GetReply, PageAck, PageData, PageGrant, PageInval, PageReq,
        ShmAt, ShmCtl, ShmNattch, PAGE_LEN,
    },
};
use kernel::{
    bindings,
    prelude::*,
    sync::{atomic::Relaxed, Arc},
    task::Task,
    time::{Delta, Instant, Monotonic},
};

const SHM_RND: i32 = 0o20000;
const SHM_REMAP: i32 = 0o40000;
const SHM_HUGETLB: i32 = 0o4000;
const SHM_NORESERVE: i32 = 0o10000;
/// Per-CPU counters (after the hooks' `calls_*`): page requests sent,
/// requests sent again after a second without an answer, grants and
/// invalidations applied.
pub(crate) const COUNT_REQUESTS: usize = 24;
pub(crate) const COUNT_RESENDS: usize = 25;
pub(crate) const COUNT_GRANTS: usize = 26;
pub(crate) const COUNT_INVALS: usize = 27;
/// Invalidations held back for a page's time quantum.
pub(crate) const COUNT_HELD: usize = 28;

impl Node {
    fn seg_by_oid(&self, oid: u64) -> Option<Arc<Seg>> {
        self.segs.lock().get(&oid).cloned()
    }

    fn seg_by_mapping(&self, mapping: usize) -> Option<Arc<Seg>> {
        self.segs
            .lock()
            .values()
            .find(|s| s.mapping() == mapping)
            .cloned()
    }
}

/// `shmget` of a distributed key: the referee decides (`newseg()` and the
/// checks on an existing segment); then the local shadow is found or
/// created with the segment's size.
pub(crate) fn shmget(node: &Node, key: i32, size: usize, flg: i32) -> c_long {
    if flg & SHM_HUGETLB != 0 {
        // A distributed segment's pages move one base page at a time.
        return neg(errno::EINVAL);
    }
    let reply = match get_object(node, Class::Shm, key, flg, size as u64) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match shadow(node, &reply) {
        id if id < 0 => ids::undo_create(node, Class::Shm, &reply, id),
        id => id,
    }
}

/// Finds or creates the local shadow of the segment the referee described
/// in `r`, at its cluster-wide id.
pub(crate) fn shadow(node: &Node, r: &GetReply) -> c_long {
    // The shadow is a cache filled on demand: no swap reservation
    // (SHM_NORESERVE), so a segment larger than this node's memory can be
    // attached and used sparsely. The referee accounts for segments
    // (`shmall`).
    let flags = IPC_CREAT | SHM_NORESERVE | (r.perm.mode & 0o777) as i32;
    let make = ids::Make {
        get: || {
            shim::call_original_args(
                HOOK_SHMGET,
                [r.key as c_long, r.size as c_long, flags as c_long, 0],
            )
        },
        stale: |_| false,
        // The segment's page states, once per segment.
        ready: || {
            let mut segs = node.segs.lock();
            if segs.get(&r.oid).is_none() {
                let seg = Seg::new(r.oid, r.key, r.size).map_err(transport_err)?;
                segs.try_create_and_insert(r.oid, seg, GFP_KERNEL)
                    .map_err(transport_err)?;
                node.nsegs.fetch_add(1, Relaxed);
            }
            Ok(())
        },
    };
    ids::shadow(node, Class::Shm, r, make)
}

/// Tells the referee this node's attach count of `seg` and waits for it
/// to be taken, so a `shmdt` that destroys the segment has done so when it
/// returns (then the local shadow goes too, as in Linux).
fn sync_nattch(node: &Node, seg: &Seg, pid: u32, detach: bool) {
    let (nattch, seq) = seg.state.lock().take_count();
    let f = Frame::ShmNattch(ShmNattch {
        oid: seg.oid,
        pid,
        nattch,
        detach: u8::from(detach),
        seq,
    });
    match node.call(&f, None) {
        Ok(a) => {
            if let Ok(Frame::Status { result: 1 }) = a.frame() {
                removed(node, seg.oid);
            }
        }
        // Not heard: the connection thread sends the count again (a new
        // session starts from it; a resumed one takes it if it is newer).
        Err(_) => {
            seg.state.lock().nattch_sent = -1;
            node.shm_dirty.store(1, Relaxed);
        }
    }
}

/// `shmat` of shadow `s`: `do_shmat()`'s address checks, the referee's
/// permission check, the local attach, and the wrapper on the new VMA.
///
/// # Safety
///
/// `regs` is the user register set the trampoline of hook `hook` (the
/// x86-64 `shmat`, or a 32-bit program's `shmat` or `ipc(SHMAT)`) got: the
/// local attach is that hook's original, with those registers.
pub(crate) unsafe fn shmat(
    node: &Node,
    s: Shadow,
    hook: u32,
    regs: *const bindings::pt_regs,
    addr: usize,
    flg: i32,
) -> c_long {
    let page = PAGE_LEN - 1;
    if addr != 0 {
        if addr & page != 0 {
            if flg & SHM_RND == 0 || (addr & !page == 0 && flg & SHM_REMAP != 0) {
                return neg(errno::EINVAL);
            }
        }
    } else if flg & SHM_REMAP != 0 {
        return neg(errno::EINVAL);
    }
    // The attach counts from the moment the referee allows it (the count
    // sent with `ShmAt` includes it) until its VMA counts instead.
    let seg = node.seg_by_oid(s.oid);
    let (nattch, seq) = match &seg {
        Some(seg) => {
            let mut st = seg.state.lock();
            st.pending += 1;
            st.take_count()
        }
        None => (0, 0),
    };
    // The `shm_mmap()` hook wraps the VMA this task's shmat() makes.
    let task = Task::current_raw() as usize;
    let mut ret = match node.attaching.lock().push((task, s.oid), GFP_KERNEL) {
        Ok(()) => 0,
        Err(_) => neg(errno::ENOMEM),
    };
    if ret == 0 {
        let req = ShmAt {
            oid: s.oid,
            pid: shim::current_tgid(),
            cred: shim::current_cred(),
            flags: flg,
            nattch,
            seq,
        };
        ret = match node.call(&Frame::ShmAt(req), None) {
            Ok(a) => match a.frame() {
                Ok(Frame::Status { result: 0 }) => {
                    // The referee checked the permissions; the shadow's
                    // own may be stale.
                    // SAFETY: per the function's contract.
                    unsafe { shim::call_original_priv(hook, regs) }
                }
                Ok(Frame::Status { result }) => checked(result),
                _ => neg(errno::EIO),
            },
            Err(e) => transport_err(e),
        };
        let mut attaching = node.attaching.lock();
        if let Some(i) = attaching.iter().position(|&(t, _)| t == task) {
            let _ = attaching.remove(i);
        }
    }
    if let Some(seg) = seg {
        // The VMA (if the attach made one) counts now; a refused or
        // failed attach must leave the referee's count as it was.
        let changed = {
            let mut st = seg.state.lock();
            st.pending -= 1;
            st.count_changed()
        };
        if changed {
            sync_nattch(node, &seg, shim::current_tgid(), false);
        }
    }
    ret
}

/// `shmdt(addr)`: `None` unless a distributed segment is attached at
/// `addr`. The kernel's `shmdt()` recognises a segment by its own VMA ops,
/// so the shim unmaps the attach's VMAs itself; their close handlers count
/// them down, and the referee hears the new count before this returns.
pub(crate) fn shmdt(node: &Node, addr: usize) -> Option<c_long> {
    if node.nsegs.load(Relaxed) == 0 {
        return None;
    }
    let (ret, mapping) = shim::shm_detach(addr);
    if mapping == 0 {
        // -EINTR: killed while waiting for the mmap lock, as in shmdt().
        return (ret < 0).then_some(ret);
    }
    if let Some(seg) = node.seg_by_mapping(mapping) {
        sync_nattch(node, &seg, shim::current_tgid(), true);
    }
    Some(ret)
}

/// `shmctl` of a shadow: `IPC_STAT`, `IPC_SET` and `IPC_RMID` go to the
/// referee, and so do `SHM_STAT` and `SHM_STAT_ANY` of a shadow's slot (the
/// attach count, times and pids are the segment's, not the shadow's);
/// everything else (`SHM_LOCK`, `SHM_UNLOCK`, the info commands) concerns
/// the local shadow and runs locally.
pub(crate) fn shmctl(node: &Node, shmid: i32, cmd: i32, buf: usize, abi: Abi) -> Option<c_long> {
    let s = match cmd {
        shmcmd::IPC_STAT | shmcmd::IPC_SET | shmcmd::IPC_RMID => {
            node.shadows.get(Class::Shm, shmid)?
        }
        shmcmd::SHM_STAT | shmcmd::SHM_STAT_ANY => node.shadows.by_index(Class::Shm, shmid)?,
        _ => return None,
    };
    let mut req = ShmCtl::new(s.oid, shim::current_tgid(), shim::current_cred(), cmd);
    if cmd == shmcmd::IPC_SET {
        let set = match layout::read_set(abi, Class::Shm, buf) {
            Ok(set) => set,
            Err(e) => return Some(e),
        };
        (req.set_uid, req.set_gid, req.set_mode) = (set.uid, set.gid, set.mode);
    }
    let answer = match node.call(&Frame::ShmCtl(req), None) {
        Ok(a) => a,
        Err(e) => return Some(transport_err(e)),
    };
    let reply = match answer.frame() {
        Ok(Frame::ShmCtlReply(r)) => r,
        _ => return Some(neg(errno::EIO)),
    };
    if reply.result == -i64::from(errno::EIDRM) {
        // Destroyed meanwhile: the id is no longer valid, as locally.
        removed(node, s.oid);
        return Some(neg(errno::EINVAL));
    }
    if reply.result < 0 {
        return Some(checked(reply.result));
    }
    match cmd {
        shmcmd::IPC_STAT => {
            if let Err(e) = copy_out(buf, layout::shmid_ds(abi, &reply.stat, s.local_id).bytes()) {
                return Some(e);
            }
        }
        // They return the id of the slot's segment.
        shmcmd::SHM_STAT | shmcmd::SHM_STAT_ANY => {
            if let Err(e) = copy_out(buf, layout::shmid_ds(abi, &reply.stat, s.local_id).bytes()) {
                return Some(e);
            }
            return Some(s.local_id as c_long);
        }
        // The shadow has the new owner and mode already: the referee
        // sent them to every node before this answer (`Frame::Perm`).
        shmcmd::IPC_SET => {}
        // 1: destroyed at once (no attach anywhere); 0: marked SHM_DEST,
        // and the shadow is marked here so its key is free locally too.
        _ if reply.result == 1 => {
            removed(node, s.oid);
            ids::drop_local(node, Class::Shm, s.local_id);
        }
        _ => ids::rmid_local(Class::Shm, s.local_id),
    }
    Some(0)
}

/// What `/proc/sysvipc/shm` shows of segment shadow `s` (`SHM_STAT_ANY`
/// at the referee); `None` if it cannot be had.
pub(crate) fn proc_stat(node: &Node, s: Shadow) -> Option<ProcStat> {
    let req = ShmCtl::new(
        s.oid,
        shim::current_tgid(),
        shim::current_cred(),
        shmcmd::SHM_STAT_ANY,
    );
    let answer = node.call(&Frame::ShmCtl(req), None).ok()?;
    let st = match answer.frame() {
        Ok(Frame::ShmCtlReply(r)) if r.result == 0 => r.stat,
        _ => return None,
    };
    Some(ProcStat {
        size: st.segsz,
        count: st.nattch,
        pid: [st.cpid, st.lpid],
        time: [st.atime, st.dtime, st.ctime],
    })
}

/// The referee destroyed segment `oid`: forget it here, drop the shadow.
pub(crate) fn removed(node: &Node, oid: u64) {
    let seg = {
        let Some(seg) = node.segs.lock().remove(&oid) else {
            return;
        };
        Some(seg)
    };
    if let Some(seg) = seg {
        node.nsegs.fetch_sub(1, Relaxed);
        let mapping = {
            let mut st = seg.state.lock();
            st.dead = true;
            core::mem::replace(&mut st.mapping, 0)
        };
        shim::shm_wake();
        if mapping != 0 {
            shim::shm_mapping_put(mapping);
        }
    }
    ids::drop_shadow(node, Class::Shm, oid);
}

/// Sets page `idx` of `seg` to access `acc`, with the folio locked when
/// the segment is mapped here: for a lower access, unmaps it everywhere on
/// this node and copies its bytes to `out` if given (returns whether it
/// did); for a grant of transaction `txn` (0: none), first installs `data`
/// and starts the page's time quantum, unless a grant of `txn` or a later
/// one was applied already (returns whether it applied this one). Called
/// by the connection thread, and for grants by a peer receiver: the folio
/// lock orders them.
fn set_page(
    seg: &Seg,
    idx: u64,
    acc: u32,
    data: Option<PageData<'_>>,
    out: Option<&mut [u8]>,
    txn: u64,
) -> bool {
    let Ok(i) = usize::try_from(idx) else {
        return false;
    };
    let held = seg.hold_mapping();
    let mapping = held.as_ref().map_or(0, |h| h.0);
    let folio = if mapping != 0 {
        shim::shm_page_lock(mapping, idx)
    } else {
        0
    };
    if txn != 0 && seg.applied(idx) >= txn {
        // Stale: this grant, or a later one, is in already.
        if folio != 0 {
            shim::shm_page_unlock(folio);
        }
        return false;
    }
    if folio != 0 {
        match data {
            Some(PageData::Bytes(b)) => shim::shm_page_copy_in(folio, idx, Some(b)),
            Some(PageData::Zero) => shim::shm_page_copy_in(folio, idx, None),
            _ => {}
        }
    } else if matches!(data, Some(PageData::Bytes(_) | PageData::Zero)) {
        // Without the page there is nothing to grant: leave the access
        // unchanged, and wake the fault, which asks again.
        pr_warn!(
            "segment {}: page {} not installed (no memory)\n",
            seg.oid,
            idx
        );
        shim::shm_wake_page(seg, idx);
        return false;
    }
    {
        // A grant starts the page's time quantum.
        let now = data.is_some().then(|| seg.now_ms());
        let mut st = seg.state.lock();
        if let Some(w) = st.pages.get_mut(i) {
            *w = next_word(*w, acc);
        }
        if let (Some(now), Some(t)) = (now, st.since.get_mut(i)) {
            *t = now;
        }
        if let Some(a) = st.applied.get_mut(i) {
            *a = (*a).max(txn);
        }
    }
    if acc != ACC_WRITE && mapping != 0 {
        shim::shm_unmap(mapping, idx);
    }
    let copied = match (out, folio != 0) {
        (Some(out), true) => {
            shim::shm_page_copy_out(folio, idx, out);
            true
        }
        (Some(_), false) => false,
        (None, _) => data.is_some(),
    };
    if folio != 0 {
        shim::shm_page_unlock(folio);
    }
    shim::shm_wake_page(seg, idx);
    copied
}

/// Whether a frame for page `page` of segment `oid` that must follow the
/// grant `after` may be handled now (it has been applied here, or the
/// segment is gone).
pub(crate) fn ready(node: &Node, oid: u64, page: u64, after: u64) -> bool {
    after == 0
        || node
            .seg_by_oid(oid)
            .is_none_or(|seg| seg.applied(page) >= after)
}

/// A [`PageGrant`] of transaction `txn` arrived from the referee
/// (connection thread; [`ready`] for its `after`).
pub(crate) fn grant(node: &Node, g: &PageGrant<'_>, txn: u64) {
    apply_grant(node, g, txn);
}

/// A [`PageGrant`] of transaction `txn` arrived straight from the page's
/// owner (a peer receiver, holding the node's token lock): whether it was
/// applied (false: stale, or for no segment here).
pub(crate) fn grant_direct(node: &Node, g: &PageGrant<'_>, txn: u64) -> bool {
    txn != 0 && apply_grant(node, g, txn)
}

fn apply_grant(node: &Node, g: &PageGrant<'_>, txn: u64) -> bool {
    let Some(seg) = node.seg_by_oid(g.oid) else {
        return false;
    };
    if g.result < 0 {
        pr_warn!(
            "segment {}: page {} refused ({})\n",
            g.oid,
            g.page,
            g.result
        );
        seg.state.lock().dead = true;
        shim::shm_wake();
        return false;
    }
    let Some(word) = seg.word(g.page) else {
        return false;
    };
    shim::Counter::inc(COUNT_GRANTS);
    let acc = if g.write != 0 {
        ACC_WRITE
    } else {
        (word & ACC_MASK).max(ACC_READ)
    };
    shim::trace::grant(
        g.oid,
        g.page,
        acc == ACC_WRITE,
        match g.data {
            PageData::Keep => 0,
            PageData::Zero => 1,
            PageData::Bytes(_) => 2,
        },
    );
    set_page(&seg, g.page, acc, Some(g.data), None, txn)
}

/// A frame from the referee the connection thread holds back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeldFrame {
    /// An invalidation.
    Inval(PageInval),
    /// A grant that keeps the node's copy, waiting for its `after`.
    Keep {
        oid: u64,
        page: u64,
        write: u8,
        after: u64,
    },
}

impl HeldFrame {
    fn page(&self) -> (u64, u64, u64) {
        match *self {
            HeldFrame::Inval(i) => (i.oid, i.page, i.after),
            HeldFrame::Keep {
                oid, page, after, ..
            } => (oid, page, after),
        }
    }
}

/// A frame held back until the page's time quantum ends and the grant it
/// must follow is applied.
struct HeldInval {
    due: Instant<Monotonic>,
    txn: u64,
    frame: HeldFrame,
    /// When the node last asked for the grant it waits for.
    asked: Instant<Monotonic>,
}

/// How long a frame waits for a grant sent straight by another node
/// before the node asks the referee for it again.
const AFTER_RETRY_MS: i64 = 500;
/// How often the connection thread looks at frames waiting for a grant.
const AFTER_POLL_MS: u32 = 2;

/// The frames the connection thread holds back:
/// - invalidations within the page's time quantum (DIPC's, Mirage's Δ):
///   a page this node acquired less than its quantum ago is given up only
///   when the quantum ends. That is as if the invalidation had been slower
///   on the wire, which the protocol allows anyway, so nothing stale is
///   ever read: the requester waits;
/// - frames that must follow a grant another node sends straight to this
///   one (their `after`), which they may overtake. If that grant does not
///   come within [`AFTER_RETRY_MS`], the node asks the referee, which
///   grants it again from home.
///
/// Frames for other pages go on meanwhile; the referee sends nothing more
/// for a page while its invalidation is unanswered. Dropped with the
/// connection (the referee sends unanswered invalidations again when the
/// session resumes).
#[derive(Default)]
pub(crate) struct Held(KVec<HeldInval>);

impl Held {
    /// Milliseconds until the connection thread should look again.
    pub(crate) fn next_due_ms(&self) -> Option<u32> {
        let now = Instant::<Monotonic>::now();
        self.0
            .iter()
            .map(|h| {
                if h.frame.page().2 != 0 {
                    return AFTER_POLL_MS;
                }
                let left = (h.due - now).as_millis_ceil();
                u32::try_from(left.max(0)).unwrap_or(u32::MAX)
            })
            .min()
    }

    /// Whether a frame for `page` of `oid` is held: a later frame for
    /// that page must wait behind it (frames of one page are handled in
    /// the order they came).
    fn holds_page(&self, oid: u64, page: u64) -> bool {
        Self::any_of_page(&self.0, oid, page)
    }

    fn any_of_page(frames: &[HeldInval], oid: u64, page: u64) -> bool {
        frames.iter().any(|h| {
            let (o, p, _) = h.frame.page();
            o == oid && p == page
        })
    }

    /// Handles every held frame that may go now, each page's in the order
    /// they came; asks again for grants that are late.
    pub(crate) fn run_due(&mut self, node: &Node, sock: &Socket) -> Result {
        let now = Instant::<Monotonic>::now();
        let mut i = 0;
        while i < self.0.len() {
            let (oid, page, after) = self.0[i].frame.page();
            if Self::any_of_page(&self.0[..i], oid, page) {
                i += 1;
                continue;
            }
            if !ready(node, oid, page, after) {
                if (now - self.0[i].asked).as_millis() >= AFTER_RETRY_MS {
                    self.0[i].asked = now;
                    ask_again(node, oid, page)?;
                }
                i += 1;
                continue;
            }
            if (self.0[i].due - now).as_nanos() > 0 {
                i += 1;
                continue;
            }
            let Ok(h) = self.0.remove(i) else {
                break;
            };
            match h.frame {
                HeldFrame::Inval(inv) => answer_inval(node, sock, h.txn, &inv)?,
                HeldFrame::Keep {
                    oid, page, write, ..
                } => {
                    let g = PageGrant {
                        oid,
                        page,
                        write,
                        result: 0,
                        after: 0,
                        data: PageData::Keep,
                    };
                    grant(node, &g, h.txn);
                }
            }
        }
        Ok(())
    }

    fn hold(&mut self, due: Instant<Monotonic>, txn: u64, frame: HeldFrame) -> Result {
        let h = HeldInval {
            due,
            txn,
            frame,
            asked: Instant::<Monotonic>::now(),
        };
        self.0.push(h, GFP_KERNEL)?;
        Ok(())
    }
}

/// The node waits too long for a grant another node should have sent it:
/// it asks the referee (for a read copy, with the last grant it applied),
/// which grants that page again from home.
fn ask_again(node: &Node, oid: u64, page: u64) -> Result {
    let Some(seg) = node.seg_by_oid(oid) else {
        return Ok(());
    };
    let req = PageReq {
        oid,
        page,
        write: 0,
        whole: 0,
        applied: seg.applied(page),
    };
    shim::Counter::inc(COUNT_RESENDS);
    node.send_oneway(&Frame::PageReq(req))
}

/// A [`PageGrant`] of transaction `txn` arrived from the referee
/// (connection thread): applied, or held until the grant it must follow.
pub(crate) fn grant_or_hold(node: &Node, g: &PageGrant<'_>, txn: u64, held: &mut Held) {
    let waits = !ready(node, g.oid, g.page, g.after) || held.holds_page(g.oid, g.page);
    if waits && matches!(g.data, PageData::Keep) {
        let f = HeldFrame::Keep {
            oid: g.oid,
            page: g.page,
            write: g.write,
            after: g.after,
        };
        // Without memory to hold it, applying it now is what the node
        // would have done before direct transfers: the page may then be
        // read before the grant it follows arrives, so drop it instead;
        // the fault asks again.
        if held.hold(Instant::<Monotonic>::now(), txn, f).is_err() {
            pr_warn!(
                "segment {}: page {} grant dropped (no memory)\n",
                g.oid,
                g.page
            );
        }
        return;
    }
    grant(node, g, txn);
}

/// A [`PageInval`] arrived (connection thread): give the copy up, then
/// ack; or hold it in `held`, within the page's time quantum or until the
/// grant it must follow is applied.
pub(crate) fn inval(
    node: &Node,
    sock: &Socket,
    txn: u64,
    i: &PageInval,
    held: &mut Held,
) -> Result {
    if held
        .0
        .iter()
        .any(|h| h.txn == txn && h.frame == HeldFrame::Inval(*i))
    {
        // Sent again after a resume: the first is still held.
        return Ok(());
    }
    let left = node.seg_by_oid(i.oid).and_then(|seg| {
        let q = node.quantum_ms(seg.key);
        if q == 0 {
            return None;
        }
        seg.quantum_left(i.page, q)
    });
    // Behind a frame of the same page still held, or before the grant it
    // must follow.
    let waits = !ready(node, i.oid, i.page, i.after) || held.holds_page(i.oid, i.page);
    if left.is_some() || waits {
        let ms = left.unwrap_or(0);
        let due = Instant::<Monotonic>::now() + Delta::from_millis(i64::from(ms));
        match held.hold(due, txn, HeldFrame::Inval(*i)) {
            Ok(()) => {
                if left.is_some() {
                    shim::Counter::inc(COUNT_HELD);
                }
                return Ok(());
            }
            // Without memory to hold it: a quantum is only a preference,
            // but answering before the grant it follows would ack a page
            // this node may yet receive, so that one fails the session.
            Err(e) if waits => return Err(e),
            Err(_) => {}
        }
    }
    answer_inval(node, sock, txn, i)
}

/// Gives page `i.page` up as [`PageInval`] `i` asks, then acks; an owner
/// asked to send the page to the requester itself does so first.
fn answer_inval(node: &Node, sock: &Socket, txn: u64, i: &PageInval) -> Result {
    shim::Counter::inc(COUNT_INVALS);
    let mut buf = KVVec::from_elem(0u8, PAGE_LEN, GFP_KERNEL)?;
    let mut have = false;
    if let Some(seg) = node.seg_by_oid(i.oid) {
        if let Some(word) = seg.word(i.page) {
            let acc = if i.keep_read != 0 {
                (word & ACC_MASK).min(ACC_READ)
            } else {
                ACC_NONE
            };
            let want = i.want_data != 0;
            have = set_page(&seg, i.page, acc, None, want.then_some(&mut buf[..]), 0);
        }
    }
    let sent = have && crate::peer::send_page(node, i, txn, &buf);
    shim::trace::inval(i.oid, i.page, i.keep_read != 0, have);
    let ack = PageAck {
        oid: i.oid,
        page: i.page,
        data: have.then_some(&buf[..]),
        sent: u8::from(sent),
    };
    node.send_on(sock, &Frame::PageAck(ack), txn)
}

/// The connection is lost (connection thread): until the next hello ack
/// says whether the referee still holds our session, no page may be used.
/// Every page is unmapped, its access kept; faults wait in [`acquire`].
pub(crate) fn suspend(node: &Node) {
    node.shm_suspended.store(1, Relaxed);
    for seg in segs_of(node).iter() {
        let Some(held) = seg.hold_mapping() else {
            continue;
        };
        for idx in 0..seg.npages {
            if seg.word(idx).is_some_and(|w| w & ACC_MASK != ACC_NONE) {
                shim::shm_unmap(held.0, idx);
            }
        }
    }
}

/// The hello ack came (after [`connection_lost`] if the session is new):
/// pages may be used again.
pub(crate) fn resume(node: &Node) {
    node.shm_suspended.store(0, Relaxed);
    // Counts sent on the lost connection may not have arrived: send each
    // again (numbered anew, so a late copy of an old one changes nothing).
    for seg in segs_of(node).iter() {
        seg.state.lock().nattch_sent = -1;
    }
    node.shm_dirty.store(1, Relaxed);
    shim::shm_wake();
}

/// The segments in use here, as a list that outlives the lock (as many as
/// could be copied: a page walk that misses some under memory pressure is
/// no worse than one that fails).
fn segs_of(node: &Node) -> KVec<Arc<Seg>> {
    let segs = node.segs.lock();
    let mut v = KVec::new();
    for s in segs.values() {
        if v.push(s.clone(), GFP_KERNEL).is_err() {
            break;
        }
    }
    v
}

/// What this node holds of a segment, for `dipcctl objects`.
pub(crate) struct Cached {
    /// Pages cached read-only.
    pub(crate) read: u64,
    /// Pages owned (writable) here.
    pub(crate) write: u64,
    /// Attaches on this node (its share of `shm_nattch`).
    pub(crate) nattch: u64,
}

/// The pages of segment `oid` this node holds, and its attaches here.
pub(crate) fn cached(node: &Node, oid: u64) -> Cached {
    let mut c = Cached {
        read: 0,
        write: 0,
        nattch: 0,
    };
    if let Some(seg) = node.seg_by_oid(oid) {
        let st = seg.state.lock();
        for &w in st.pages.iter() {
            match w & ACC_MASK {
                ACC_READ => c.read += 1,
                ACC_WRITE => c.write += 1,
                _ => {}
            }
        }
        c.nattch = u64::try_from(st.nattch).unwrap_or(0);
    }
    c
}

/// Processes on this node that have a distributed segment attached (VMAs
/// mapping one).
pub(crate) fn attached_here(node: &Node) -> i32 {
    segs_of(node)
        .iter()
        .map(|s| s.state.lock().nattch.max(0))
        .sum()
}

/// A new session: the referee forgot this node's copies, so every page
/// becomes invalid here too (writes not yet sent are lost).
pub(crate) fn connection_lost(node: &Node) {
    for seg in segs_of(node).iter() {
        for idx in 0..seg.npages {
            if seg.word(idx).is_some_and(|w| w & ACC_MASK != ACC_NONE) {
                set_page(seg, idx, ACC_NONE, None, None, 0);
            }
        }
        seg.state.lock().nattch_sent = -1;
    }
    node.shm_dirty.store(1, Relaxed);
    shim::shm_wake();
}

/// Sends the attach counts that changed since the referee last heard
/// (connection thread, between reads).
pub(crate) fn send_nattch_updates(node: &Node, sock: &Socket) -> Result {
    if node.shm_dirty.xchg(0, Relaxed) == 0 {
        return Ok(());
    }
    let segs: KVec<Arc<Seg>> = {
        let segs = node.segs.lock();
        let mut v = KVec::new();
        for s in segs.values() {
            v.push(s.clone(), GFP_KERNEL)?;
        }
        v
    };
    for seg in segs.iter() {
        let (n, seq) = {
            let mut st = seg.state.lock();
            if !st.count_changed() {
                continue;
            }
            st.take_count()
        };
        let f = Frame::ShmNattch(ShmNattch {
            oid: seg.oid,
            pid: 0,
            nattch: n,
            detach: 0,
            seq,
        });
        if let Err(e) = node.send_on(sock, &f, 0) {
            seg.state.lock().nattch_sent = -1;
            node.shm_dirty.store(1, Relaxed);
            return Err(e);
        }
    }
    Ok(())
}

/// Fault path: waits until this node may access page `idx` of the segment
/// behind `mapping` as asked, at most `budget_ms` if it is not 0 (then
/// `FAULT_SLOW`). Returns a `DIPC_FAULT_*` value. `cont`: this call goes on
/// with a fault that ran out of its budget (traced even if the grant came
/// in between and no request was needed).
fn acquire(
    node: &Node,
    mapping: usize,
    idx: u64,
    write: bool,
    user: bool,
    budget_ms: u32,
    cont: bool,
) -> c_int {
    let start = Instant::<Monotonic>::now();
    let mut requests = 0u32;
    let outcome = acquire_counted(
        node,
        mapping,
        idx,
        write,
        user,
        (start, budget_ms),
        &mut requests,
    );
    // Only faults that asked the referee: the others cost no more than a
    // local fault. The rest of a slow fault is traced whatever it needed,
    // so that a fault traced `slow` is always followed by its end.
    if requests > 0 || cont {
        let oid = node.seg_by_mapping(mapping).map_or(0, |s| s.oid);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
        shim::trace::fault(oid, idx, write, outcome, requests, ns);
    }
    outcome
}

/// [`acquire`], counting the page requests sent in `requests`; the budget
/// runs from `start`, when [`acquire`] began.
fn acquire_counted(
    node: &Node,
    mapping: usize,
    idx: u64,
    write: bool,
    user: bool,
    (start, budget_ms): (Instant<Monotonic>, u32),
    requests: &mut u32,
) -> c_int {
    // What is left of the budget, in ms (`None`: no budget).
    let left = || {
        (budget_ms != 0).then(|| {
            let spent = u32::try_from(start.elapsed().as_millis()).unwrap_or(u32::MAX);
            budget_ms.saturating_sub(spent)
        })
    };
    // A task being killed stops here: a user fault returns to be killed, a
    // kernel access (copy_from_user) fails.
    let give_up = if user {
        shim::FAULT_RETRY
    } else {
        shim::FAULT_SIGBUS
    };
    let Some(seg) = node.seg_by_mapping(mapping) else {
        return shim::FAULT_SIGBUS;
    };
    loop {
        if shim::fatal_signal_pending() {
            return give_up;
        }
        if node.shm_suspended.load(Relaxed) != 0 {
            if left().is_some() {
                return shim::FAULT_SLOW;
            }
            // Whether our copies still count is not known yet.
            match node.wait_for_connection() {
                Ok(()) => continue,
                Err(e) if e == EINTR => return give_up,
                Err(_) => return shim::FAULT_SIGBUS,
            }
        }
        let Some(word) = seg.word(idx) else {
            return shim::FAULT_SIGBUS;
        };
        if sufficient(word, write) {
            return shim::FAULT_OK;
        }
        let req = PageReq {
            oid: seg.oid,
            page: idx,
            write: u8::from(write),
            whole: u8::from(node.whole_keys.lock().contains(seg.key)),
            applied: seg.applied(idx),
        };
        if node.send_oneway(&Frame::PageReq(req)).is_err() {
            if left().is_some() {
                return shim::FAULT_SLOW;
            }
            // No connection: wait for one (the node gave up every page
            // when it was lost), then ask again from the start.
            match node.wait_for_connection() {
                Ok(()) => continue,
                Err(e) if e == EINTR => return give_up,
                Err(_) => return shim::FAULT_SIGBUS,
            }
        }
        shim::Counter::inc(COUNT_REQUESTS);
        *requests += 1;
        // The referee answers every request; a second without a change is
        // not expected, and the request goes out again (a duplicate is
        // harmless: the referee grants what is already held at once). The
        // counter shows whether it ever happens.
        loop {
            let ms = match left() {
                Some(0) => return shim::FAULT_SLOW,
                Some(ms) => ms.min(1000),
                None => 1000,
            };
            match shim::shm_wait(&*seg, idx, word, ms) {
                Ok(true) => break,
                Ok(false) if left().is_some() => {}
                Ok(false) => {
                    shim::Counter::inc(COUNT_RESENDS);
                    *requests += 1;
                    let req = PageReq {
                        applied: seg.applied(idx),
                        ..req
                    };
                    if node.send_oneway(&Frame::PageReq(req)).is_err() {
                        // The connection went: start over (wait for it).
                        break;
                    }
                }
                Err(_) => return give_up,
            }
        }
    }
}

/// Called by the fault handlers.
///
/// # Safety
///
/// `ctx` is the context given to [`shim::Hooks::register`], alive while
/// any wrapped VMA exists (each holds a module reference).
#[no_mangle]
unsafe extern "C" fn dipc_rust_shm_acquire(
    ctx: *mut c_void,
    mapping: *mut c_void,
    idx: c_ulong,
    write: bool,
    user: bool,
    budget_ms: c_uint,
    cont: bool,
) -> c_int {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    acquire(
        &node,
        mapping as usize,
        idx as u64,
        write,
        user,
        budget_ms,
        cont,
    )
}

/// Called by the fault handlers with the page's folio locked: may the
/// page be mapped for this access?
///
/// # Safety
///
/// As for [`dipc_rust_shm_acquire`].
#[no_mangle]
unsafe extern "C" fn dipc_rust_shm_valid(
    ctx: *mut c_void,
    mapping: *mut c_void,
    idx: c_ulong,
    write: bool,
) -> bool {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    node.shm_suspended.load(Relaxed) == 0
        && node
            .seg_by_mapping(mapping as usize)
            .and_then(|s| s.word(idx as u64))
            .is_some_and(|w| sufficient(w, write))
}

/// Called by the fault handler with a large folio locked: the first page
/// of `idx..idx + n` (within the segment) that may not be mapped for this
/// access, or -1.
///
/// # Safety
///
/// As for [`dipc_rust_shm_acquire`].
#[no_mangle]
unsafe extern "C" fn dipc_rust_shm_first_invalid(
    ctx: *mut c_void,
    mapping: *mut c_void,
    idx: c_ulong,
    n: c_ulong,
    write: bool,
) -> c_long {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    let first = idx as c_long;
    if node.shm_suspended.load(Relaxed) != 0 {
        return first;
    }
    let Some(seg) = node.seg_by_mapping(mapping as usize) else {
        return first;
    };
    let st = seg.state.lock();
    if st.dead {
        return first;
    }
    let end = (idx as u64).saturating_add(n as u64).min(seg.npages);
    for i in idx as u64..end {
        let ok = usize::try_from(i)
            .ok()
            .and_then(|i| st.pages.get(i))
            .is_some_and(|&w| sufficient(w, write));
        if !ok {
            return i as c_long;
        }
    }
    -1
}

/// `shm_mmap()` set up a VMA of the shm segment behind `mapping` (with the
/// mmap write lock held): whether it is a distributed segment's, which is
/// then wrapped and counted. A segment's first VMA on this node is known by
/// the task in [`shmat`] that makes it.
///
/// # Safety
///
/// As for [`dipc_rust_shm_acquire`]; `mapping` is the new VMA's.
#[no_mangle]
unsafe extern "C" fn dipc_rust_shm_mmap(ctx: *mut c_void, mapping: *mut c_void) -> bool {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    let mapping = mapping as usize;
    let seg = node.seg_by_mapping(mapping).or_else(|| {
        let task = Task::current_raw() as usize;
        let oid = node
            .attaching
            .lock()
            .iter()
            .find(|&&(t, _)| t == task)
            .map(|&(_, oid)| oid)?;
        node.seg_by_oid(oid)
    });
    let Some(seg) = seg else {
        return false;
    };
    let mut st = seg.state.lock();
    if st.mapping != 0 && st.mapping != mapping {
        // Not this segment's shadow.
        return false;
    }
    if st.mapping == 0 && !st.dead {
        // The first VMA here: the segment holds the inode from now on. The
        // new VMA's file keeps it alive, so `igrab` (which takes only the
        // inode's spin lock) cannot fail, and the reference is taken
        // before anyone can read the mapping.
        shim::shm_mapping_get(mapping);
        st.mapping = mapping;
    }
    st.nattch += 1;
    drop(st);
    node.shm_dirty.store(1, Relaxed);
    true
}

/// A wrapped VMA was opened (`delta` 1: fork, split) or closed (-1).
///
/// # Safety
///
/// As for [`dipc_rust_shm_acquire`].
#[no_mangle]
unsafe extern "C" fn dipc_rust_shm_vma_open(ctx: *mut c_void, mapping: *mut c_void, delta: c_int) {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    if let Some(seg) = node.seg_by_mapping(mapping as usize) {
        seg.state.lock().nattch += delta;
        node.shm_dirty.store(1, Relaxed);
    }
}
