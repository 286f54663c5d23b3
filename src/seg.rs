// SPDX-License-Identifier: GPL-2.0

//! A distributed segment's state on this node: one word per page (its
//! access and a change count), the shadow's `address_space`, the attach
//! counts the referee hears of, and each page's time quantum. The page
//! protocol that changes it is [`crate::shm`]'s.

use crate::{shim, wire::PAGE_LEN};
use kernel::{
    new_spinlock,
    prelude::*,
    sync::{Arc, SpinLock},
    time::{Instant, Monotonic},
};

/// A page's access, in the low bits of its word.
pub(crate) const ACC_MASK: u32 = 3;
pub(crate) const ACC_NONE: u32 = 0;
pub(crate) const ACC_READ: u32 = 1;
pub(crate) const ACC_WRITE: u32 = 2;

/// `word` with access `acc` and its change count advanced.
pub(crate) fn next_word(word: u32, acc: u32) -> u32 {
    ((word >> 2).wrapping_add(1) << 2) | acc
}

/// A segment's mutable state.
pub(crate) struct SegState {
    /// One word per page: access in the low two bits, a change count above.
    pub(crate) pages: KVVec<u32>,
    /// The shadow's `address_space` (0 until the first attach here); we
    /// hold its inode while it is set. Whoever uses it outside the lock
    /// takes a reference of its own under the lock ([`Seg::hold_mapping`]).
    pub(crate) mapping: usize,
    /// VMAs mapping the segment on this node: its share of `shm_nattch`.
    pub(crate) nattch: i32,
    /// Attaches the referee allowed whose VMA is not made yet (`shmat` in
    /// progress). Counted in what the referee hears, so a detach elsewhere
    /// cannot destroy the segment under them.
    pub(crate) pending: i32,
    /// The count the referee last heard of (-1: send it again).
    pub(crate) nattch_sent: i32,
    /// The number of the last count taken for the referee.
    pub(crate) seq: u64,
    /// The segment is gone: every fault gets `SIGBUS`.
    pub(crate) dead: bool,
    /// Per page, when a grant last raised its access ([`Seg::now_ms`]):
    /// the start of its time quantum.
    pub(crate) since: KVVec<u32>,
    /// Per page, the transaction id of the last grant applied: a grant
    /// with an id no larger is stale (a page sent straight by its owner
    /// and granted again from home, the second to arrive), and a frame
    /// whose `after` is larger waits for its grant.
    pub(crate) applied: KVVec<u64>,
}

impl SegState {
    /// This node's count for the referee now, and its number: the referee
    /// keeps the count with the highest number, so counts taken here in
    /// one order may be sent by several tasks in another.
    pub(crate) fn take_count(&mut self) -> (u32, u64) {
        self.seq += 1;
        self.nattch_sent = self.nattch + self.pending;
        (self.nattch_sent.max(0) as u32, self.seq)
    }

    /// Whether the referee's count is out of date.
    pub(crate) fn count_changed(&self) -> bool {
        self.nattch + self.pending != self.nattch_sent
    }
}

/// A reference to a segment's inode, taken under its state lock, so the
/// `address_space` stays valid while [`removed`] drops the segment's own.
pub(crate) struct HeldMapping(pub(crate) usize);

impl Drop for HeldMapping {
    fn drop(&mut self) {
        shim::shm_mapping_put(self.0);
    }
}

/// A distributed segment used on this node.
#[pin_data]
pub(crate) struct Seg {
    pub(crate) oid: u64,
    /// The segment's key (its time quantum may depend on it).
    pub(crate) key: i32,
    pub(crate) npages: u64,
    /// The origin of [`Seg::now_ms`].
    pub(crate) born: Instant<Monotonic>,
    #[pin]
    pub(crate) state: SpinLock<SegState>,
}

impl Seg {
    pub(crate) fn new(oid: u64, key: i32, size: u64) -> Result<Arc<Seg>> {
        let npages = size.div_ceil(PAGE_LEN as u64);
        let n = usize::try_from(npages).map_err(|_| ENOMEM)?;
        let pages = KVVec::from_elem(0u32, n, GFP_KERNEL)?;
        let since = KVVec::from_elem(0u32, n, GFP_KERNEL)?;
        let applied = KVVec::from_elem(0u64, n, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Seg {
                oid,
                key,
                npages,
                born: Instant::<Monotonic>::now(),
                state <- new_spinlock!(SegState {
                    since,
                    applied,
                    pages,
                    mapping: 0,
                    nattch: 0,
                    pending: 0,
                    nattch_sent: 0,
                    seq: 0,
                    dead: false,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The page's word, `None` when out of range or the segment is gone.
    pub(crate) fn word(&self, idx: u64) -> Option<u32> {
        let st = self.state.lock();
        if st.dead {
            return None;
        }
        st.pages.get(usize::try_from(idx).ok()?).copied()
    }

    pub(crate) fn mapping(&self) -> usize {
        self.state.lock().mapping
    }

    /// The last grant of page `idx` applied here (0: none, or out of range).
    pub(crate) fn applied(&self, idx: u64) -> u64 {
        let st = self.state.lock();
        usize::try_from(idx)
            .ok()
            .and_then(|i| st.applied.get(i).copied())
            .unwrap_or(0)
    }

    /// Milliseconds since the `Seg` was made, wrapping (quanta are short).
    pub(crate) fn now_ms(&self) -> u32 {
        self.born.elapsed().as_millis() as u32
    }

    /// How much of page `idx`'s time quantum of `quantum` ms is left, if
    /// this node holds the page.
    pub(crate) fn quantum_left(&self, idx: u64, quantum: u32) -> Option<u32> {
        let i = usize::try_from(idx).ok()?;
        let now = self.now_ms();
        let st = self.state.lock();
        let held = st.pages.get(i).is_some_and(|w| w & ACC_MASK != ACC_NONE);
        let spent = now.wrapping_sub(*st.since.get(i)?);
        (held && !st.dead && spent < quantum).then(|| quantum - spent)
    }

    /// The segment's `address_space` with an inode reference of the
    /// caller's, `None` before the first attach here or once it is gone.
    pub(crate) fn hold_mapping(&self) -> Option<HeldMapping> {
        let st = self.state.lock();
        if st.mapping == 0 || st.dead {
            return None;
        }
        // The segment holds the inode while `mapping` is set, so another
        // reference can be taken (`igrab` only takes the inode's spin lock).
        shim::shm_mapping_get(st.mapping);
        Some(HeldMapping(st.mapping))
    }
}

pub(crate) fn sufficient(word: u32, write: bool) -> bool {
    let acc = word & ACC_MASK;
    acc == ACC_WRITE || (!write && acc == ACC_READ)
}

// SAFETY: `dipc_rust_shm_changed()` casts the pointer `shim::shm_wait()`
// passes back to a `Seg`.
unsafe impl shim::ShmWaitKey for Seg {}

/// The wait condition of [`shim::shm_wait`]: the page's word is no longer
/// `word`, or the segment is gone. Runs in a sleeping task's condition
/// check: takes only the segment's spin lock.
///
/// # Safety
///
/// `seg` is the `Seg` that [`shim::shm_wait`] was given, which the waiting
/// task keeps alive.
#[no_mangle]
unsafe extern "C" fn dipc_rust_shm_changed(seg: *mut c_void, idx: c_ulong, word: u32) -> bool {
    // SAFETY: per the function's contract.
    let seg = unsafe { &*(seg as *const Seg) };
    seg.word(idx as u64) != Some(word)
}
