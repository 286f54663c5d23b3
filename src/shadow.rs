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
//! map under [`Shadows::map`] is the truth, looked up only for hits.

use crate::wire::Class;
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex,
    },
};

/// `IPCMNI`: slots per id table (the kernel's default, without
/// `ipcmni_extend`).
const IPCMNI: usize = 32768;
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

/// All shadows on this node.
#[pin_data]
pub(crate) struct Shadows {
    sem: Bits,
    msg: Bits,
    shm: Bits,
    /// The shadows. A short list: one entry per distributed object in use
    /// on this node, searched only for ids whose bit is set.
    #[pin]
    map: Mutex<KVec<Shadow>>,
}

impl Shadows {
    pub(crate) fn new() -> impl PinInit<Self> {
        // The bitmaps are initialised in place: 4 KiB each is too much for
        // a kernel stack.
        pin_init!(Shadows {
            sem <- pin_init::init_zeroed(),
            msg <- pin_init::init_zeroed(),
            shm <- pin_init::init_zeroed(),
            map <- new_mutex!(KVec::new()),
        })
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
        self.map
            .lock()
            .iter()
            .find(|s| s.class == class && s.local_id == id)
            .copied()
    }

    /// The shadow of object `oid`.
    pub(crate) fn by_oid(&self, class: Class, oid: u64) -> Option<Shadow> {
        self.map
            .lock()
            .iter()
            .find(|s| s.class == class && s.oid == oid)
            .copied()
    }

    /// The shadow in table slot `idx` (what `MSG_STAT` and friends name).
    pub(crate) fn by_index(&self, class: Class, idx: i32) -> Option<Shadow> {
        let idx = usize::try_from(idx).ok().filter(|&i| i < IPCMNI)?;
        self.map
            .lock()
            .iter()
            .find(|s| s.class == class && s.local_id as u32 as usize % IPCMNI == idx)
            .copied()
    }

    /// Records `shadow`, replacing any entry with its local id or its oid.
    pub(crate) fn insert(&self, shadow: Shadow) -> Result {
        let mut map = self.map.lock();
        map.retain(|s| {
            s.class != shadow.class || (s.local_id != shadow.local_id && s.oid != shadow.oid)
        });
        map.push(shadow, GFP_KERNEL)?;
        self.bits(shadow.class).set(shadow.local_id, true);
        Ok(())
    }

    /// Forgets the shadow with local id `id`; returns it.
    pub(crate) fn remove(&self, class: Class, id: i32) -> Option<Shadow> {
        let mut map = self.map.lock();
        let i = map
            .iter()
            .position(|s| s.class == class && s.local_id == id)?;
        let s = map.remove(i).ok()?;
        // Another shadow may share the slot only with another sequence
        // number, which the kernel cannot hand out while this one lived.
        if !map
            .iter()
            .any(|o| o.class == class && Bits::slot(o.local_id) == Bits::slot(id))
        {
            self.bits(class).set(id, false);
        }
        Some(s)
    }

    /// Number of shadows.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// The shadow at position `i` (for listing them one at a time; a
    /// shadow added or removed meanwhile may shift the positions).
    pub(crate) fn at(&self, i: usize) -> Option<Shadow> {
        self.map.lock().get(i).copied()
    }
}
