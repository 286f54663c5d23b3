// SPDX-License-Identifier: GPL-2.0

//! Local shadows of distributed objects.
//!
//! Every distributed object used on this node has a real local object with
//! the same key, created through the normal kernel path, so `ipcs` and
//! `ipcrm` see it and its id is a valid local id. This table maps a shadow's
//! local id to the object's cluster-wide id at the referee.
//!
//! The question every hooked call asks first, "is this id a shadow?", is
//! answered by [`Shadows::maybe`] from a bitmap indexed like the kernel's id
//! table (`ipcid_to_idx()`): one relaxed load, no lock, no allocation. A set
//! bit is only a hint (the slot may since hold a plain local object); the
//! red-black trees under [`Shadows::maps`] are the truth, looked up only
//! for hits.

use crate::wire::{Class, IpcPerm};
use kernel::{
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex,
    },
};

/// `IPCMNI`, as an index bound.
const IPCMNI: usize = crate::util::IPCMNI as usize;
const WORDS: usize = IPCMNI / 64;

/// One shadow.
#[derive(Clone, Copy)]
pub(crate) struct Shadow {
    pub(crate) class: Class,
    /// The local id (with its sequence number).
    pub(crate) local_id: i32,
    /// The cluster-wide id.
    pub(crate) oid: u64,
    /// `nsems` of a set, the referee's `msgmax` for a queue, the size of a
    /// segment.
    pub(crate) size: u64,
}

/// Slots of one class that may hold a shadow. Written only with
/// [`Shadows::map`] held, read without.
struct Bits([Atomic<u64>; WORDS]);

// SAFETY: `Atomic<u64>` has the layout of a `u64`, for which all zeroes is
// valid (the value 0).
unsafe impl Zeroable for Bits {}

impl Bits {
    fn slot(id: i32) -> (usize, u64) {
        let idx = (id as u32 as usize) % IPCMNI;
        (idx / 64, 1u64 << (idx % 64))
    }

    fn test(&self, id: i32) -> bool {
        let (w, bit) = Self::slot(id);
        self.0[w].load(Relaxed) & bit != 0
    }

    fn set(&self, id: i32, on: bool) {
        let (w, bit) = Self::slot(id);
        let old = self.0[w].load(Relaxed);
        self.0[w].store(if on { old | bit } else { old & !bit }, Relaxed);
    }
}

/// The two indexes of the shadows, kept together under one lock.
struct Maps {
    /// Shadows by class and table slot ([`slot_key`]). The kernel holds
    /// at most one live object per slot, so a new shadow in a slot
    /// replaces whatever stale entry was left there.
    slots: RBTree<u64, Shadow>,
    /// The slot key of each shadow, by class and object id.
    oids: RBTree<(u8, u64), u64>,
    /// Entries in `slots`.
    len: usize,
}

/// The key of table slot `idx` of `class` in [`Maps::slots`]: ordered by
/// class, then slot, as `ipcs` lists them.
fn slot_key(class: Class, id: i32) -> u64 {
    ((class as u64) << 32) | ((id as u32 as usize % IPCMNI) as u64)
}

impl Maps {
    fn remove_slot(&mut self, key: u64) -> Option<Shadow> {
        let s = self.slots.remove(&key)?;
        self.oids.remove(&(s.class as u8, s.oid));
        self.len -= 1;
        Some(s)
    }
}

/// How many [`Late`] news are kept.
const LATE: usize = 16;

/// The last owners and modes an `IPC_SET` gave objects that had no shadow
/// here when the news came. A shadow made from a [`crate::wire::GetReply`]
/// the referee wrote before that `IPC_SET` would show the old ones; the
/// maker looks here ([`Late::take`]) before it lets go of
/// [`Shadows::making`], which the news also takes. Emptied on each new
/// connection: news lost with a connection must not overwrite a newer
/// answer.
pub(crate) struct Late {
    ring: [Option<(Class, u64, IpcPerm)>; LATE],
    next: usize,
}

impl Late {
    /// Keeps the news for object `oid`, dropping the oldest kept.
    pub(crate) fn put(&mut self, class: Class, oid: u64, perm: IpcPerm) {
        self.ring[self.next] = Some((class, oid, perm));
        self.next = (self.next + 1) % LATE;
    }

    /// The newest news kept for object `oid`, forgotten once taken.
    pub(crate) fn take(&mut self, class: Class, oid: u64) -> Option<IpcPerm> {
        let mut found = None;
        // Oldest first, so the newest match is the one returned.
        for i in 0..LATE {
            let slot = &mut self.ring[(self.next + i) % LATE];
            if matches!(slot, Some((c, o, _)) if *c == class && *o == oid) {
                found = slot.take().map(|(_, _, p)| p);
            }
        }
        found
    }

    /// Forgets everything (a new connection).
    pub(crate) fn clear(&mut self) {
        self.ring = [None; LATE];
    }
}

/// All shadows on this node.
#[pin_data]
pub(crate) struct Shadows {
    sem: Bits,
    msg: Bits,
    shm: Bits,
    /// The shadows: lookups by id or object id in O(log n), so that
    /// creating and removing many objects stays linear.
    #[pin]
    maps: Mutex<Maps>,
    /// Held while a shadow is made, from the check that there is none to
    /// its entry in the maps: one shadow per object, and no other shadow
    /// moved meanwhile (see [`crate::ids`]).
    #[pin]
    making: Mutex<Late>,
}

impl Shadows {
    pub(crate) fn new() -> impl PinInit<Self> {
        // The bitmaps are initialised in place: 4 KiB each is too much for
        // a kernel stack.
        pin_init!(Shadows {
            sem <- pin_init::init_zeroed(),
            msg <- pin_init::init_zeroed(),
            shm <- pin_init::init_zeroed(),
            maps <- new_mutex!(Maps {
                slots: RBTree::new(),
                oids: RBTree::new(),
                len: 0,
            }),
            making <- new_mutex!(Late {
                ring: [None; LATE],
                next: 0,
            }),
        })
    }

    /// Serialises the making of shadows (held across calls to the
    /// original `*get` and the move to the cluster-wide id), and the news
    /// of owners and modes with it ([`Late`]).
    pub(crate) fn making(&self) -> kernel::sync::MutexGuard<'_, Late> {
        self.making.lock()
    }

    fn bits(&self, class: Class) -> &Bits {
        match class {
            Class::Sem => &self.sem,
            Class::Msg => &self.msg,
            Class::Shm => &self.shm,
        }
    }

    /// The bitmaps (sem, msg, shm) for the C ftrace callback, which tests them
    /// the way [`Shadows::maybe`] does.
    pub(crate) fn bitmaps(&self) -> [*const u64; 3] {
        // `Atomic<u64>` has the layout of a `u64`.
        [&self.sem, &self.msg, &self.shm].map(|b| b.0.as_ptr().cast::<u64>())
    }

    /// Whether `id` may be a shadow: the hot-path check.
    #[inline]
    pub(crate) fn maybe(&self, class: Class, id: i32) -> bool {
        id >= 0 && self.bits(class).test(id)
    }

    /// The shadow with local id `id`.
    pub(crate) fn get(&self, class: Class, id: i32) -> Option<Shadow> {
        if !self.maybe(class, id) {
            return None;
        }
        self.maps
            .lock()
            .slots
            .get(&slot_key(class, id))
            .filter(|s| s.local_id == id)
            .copied()
    }

    /// The shadow of object `oid`.
    pub(crate) fn by_oid(&self, class: Class, oid: u64) -> Option<Shadow> {
        let maps = self.maps.lock();
        let key = maps.oids.get(&(class as u8, oid))?;
        maps.slots.get(key).copied()
    }

    /// The shadow in table slot `idx` (what `MSG_STAT` and friends name).
    pub(crate) fn by_index(&self, class: Class, idx: i32) -> Option<Shadow> {
        let idx = usize::try_from(idx).ok().filter(|&i| i < IPCMNI)?;
        self.maps
            .lock()
            .slots
            .get(&slot_key(class, idx as i32))
            .copied()
    }

    /// Records `shadow`, replacing any entry in its slot or with its oid.
    pub(crate) fn insert(&self, shadow: Shadow) -> Result {
        let key = slot_key(shadow.class, shadow.local_id);
        // Both nodes are allocated before anything changes, so a failed
        // allocation leaves the maps as they were.
        let slot = RBTreeNode::new(key, shadow, GFP_KERNEL)?;
        let oid = RBTreeNode::new((shadow.class as u8, shadow.oid), key, GFP_KERNEL)?;
        let mut maps = self.maps.lock();
        if let Some(&old) = maps.oids.get(&(shadow.class as u8, shadow.oid)) {
            if old != key {
                maps.remove_slot(old);
                self.bits(shadow.class).set(old as u32 as i32, false);
            }
        }
        maps.remove_slot(key);
        maps.slots.insert(slot);
        maps.oids.insert(oid);
        maps.len += 1;
        self.bits(shadow.class).set(shadow.local_id, true);
        Ok(())
    }

    /// Forgets the shadow with local id `id`; returns it.
    pub(crate) fn remove(&self, class: Class, id: i32) -> Option<Shadow> {
        let key = slot_key(class, id);
        let mut maps = self.maps.lock();
        if maps.slots.get(&key)?.local_id != id {
            return None;
        }
        let s = maps.remove_slot(key)?;
        self.bits(class).set(id, false);
        Some(s)
    }

    /// Number of shadows.
    pub(crate) fn len(&self) -> usize {
        self.maps.lock().len
    }

    /// The position of `class`'s first slot, for [`Shadows::from`].
    pub(crate) fn first_of(class: Class) -> u64 {
        slot_key(class, 0)
    }

    /// The first shadow at or after position `pos` in the order of class
    /// and slot, and the position after it: for listing them one at a
    /// time while shadows come and go.
    pub(crate) fn from(&self, pos: u64) -> Option<(Shadow, u64)> {
        let maps = self.maps.lock();
        let cur = maps.slots.cursor_lower_bound(&pos)?;
        let (&key, &s) = cur.current();
        Some((s, key + 1))
    }
}

/// What a shadow's line shows of its object, by class (C:
/// `struct dipc_proc_stat` in `rust/dipc_helpers.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcStat {
    /// `nsems`, `cbytes` or `segsz`.
    pub(crate) size: u64,
    /// `qnum` or `nattch` (0 for a set).
    pub(crate) count: u64,
    /// `lspid` and `lrpid`, or `cpid` and `lpid` (pids on their nodes).
    pub(crate) pid: [u32; 2],
    /// `otime` and `ctime`; `stime`, `rtime` and `ctime`; or `atime`,
    /// `dtime` and `ctime`.
    pub(crate) time: [i64; 3],
}

// The C side's `struct dipc_proc_stat` has this size (a static_assert
// there checks it too).
const _: () = assert!(core::mem::size_of::<ProcStat>() == 48);

/// The answers of the last open of each class's file, by SysV id (which
/// carries the slot's sequence number, so a reused slot matches no stale
/// answer).
pub(crate) type ProcStats = [RBTree<i32, ProcStat>; 3];

/// An empty [`ProcStats`].
pub(crate) fn proc_stats_empty() -> ProcStats {
    [RBTree::new(), RBTree::new(), RBTree::new()]
}
