//! Cluster-wide SysV ids: every distributed object has one id, chosen
//! here, that every node gives its local shadow, so an id printed on one
//! node names the same object on every other.
//!
//! An id is built as the kernel builds one (`ipc/util.c`,
//! `ipc_idr_alloc()`): `seq << 15 | idx`, `idx` a slot of the node's id
//! table (`IPCMNI` = 32768 slots, the default without `ipcmni_extend`),
//! `seq` below `ipcid_seq_max()` (65535). Slots are handed out from the
//! top down, cyclically within the upper half while it has room: a node's
//! kernel hands its local objects the lowest free slots below
//! `max(in_use * 3 / 2, 64)`, so the two rarely meet, and the nodes pass
//! calls on ids in the upper half that are not yet shadows to the module,
//! which asks here ([`IdSpace::find`]). A slot's sequence number grows
//! with every reuse, so a stale id names no object rather than a new one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Slots in a node's id table.
pub const IPCMNI: u32 = 1 << IPCMNI_SHIFT;
/// Bits of the slot in an id.
pub const IPCMNI_SHIFT: u32 = 15;
/// Sequence numbers stay below this (`ipcid_seq_max()`).
pub const SEQ_MAX: u32 = (i32::MAX as u32) >> IPCMNI_SHIFT;
/// The first slot of the upper half, where ids are handed out first.
pub const UPPER: u32 = IPCMNI / 2;

/// The ids of one class.
#[derive(Clone, Default, Debug, Serialize, Deserialize)]
pub struct IdSpace {
    /// Slots in use: slot -> (sequence number, object).
    used: BTreeMap<u32, (u32, u64)>,
    /// The sequence number each free slot handed out last.
    last_seq: BTreeMap<u32, u32>,
    /// The slot the next search starts below (0: from the top).
    cursor: u32,
    /// Slots in use in the upper half.
    upper: u32,
}

impl IdSpace {
    /// Gives object `oid` an id; `None` when every slot is in use.
    pub fn alloc(&mut self, oid: u64) -> Option<i32> {
        let (lo, hi) = if self.upper < IPCMNI - UPPER {
            (UPPER, IPCMNI)
        } else if self.used.len() < IPCMNI as usize {
            (0, UPPER)
        } else {
            return None;
        };
        // Downward from the cursor, wrapping once within [lo, hi).
        let start = if (lo + 1..=hi).contains(&self.cursor) {
            self.cursor
        } else {
            hi
        };
        let idx = (lo..start)
            .rev()
            .chain((start..hi).rev())
            .find(|i| !self.used.contains_key(i))?;
        let seq = match self.last_seq.remove(&idx) {
            Some(s) if s + 1 < SEQ_MAX => s + 1,
            Some(_) => 0,
            None => 0,
        };
        self.used.insert(idx, (seq, oid));
        self.upper += u32::from(idx >= UPPER);
        self.cursor = idx;
        Some(((seq << IPCMNI_SHIFT) | idx) as i32)
    }

    /// Frees `id` (an object removed).
    pub fn free(&mut self, id: i32) {
        let idx = id as u32 % IPCMNI;
        if let Some((seq, _)) = self.used.remove(&idx) {
            self.upper -= u32::from(idx >= UPPER);
            self.last_seq.insert(idx, seq);
        }
    }

    /// The object with id `id`.
    pub fn find(&self, id: i32) -> Option<u64> {
        if id < 0 {
            return None;
        }
        let (idx, seq) = (id as u32 % IPCMNI, id as u32 >> IPCMNI_SHIFT);
        self.used
            .get(&idx)
            .filter(|&&(s, _)| s == seq)
            .map(|&(_, oid)| oid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_top_and_are_not_reused_at_once() {
        let mut s = IdSpace::default();
        assert_eq!(s.alloc(1), Some(32767));
        assert_eq!(s.alloc(2), Some(32766));
        assert_eq!(s.find(32767), Some(1));
        s.free(32767);
        assert_eq!(s.find(32767), None);
        // The cursor moves on: the freed slot waits for the wrap.
        assert_eq!(s.alloc(3), Some(32765));
        assert_eq!(s.used.len(), 2);
    }

    #[test]
    fn a_reused_slot_gets_a_new_sequence_number() {
        let mut s = IdSpace::default();
        let first = s.alloc(1).unwrap();
        s.free(first);
        // Fill the rest of the upper half, then wrap to the freed slot.
        for oid in 2..=(IPCMNI - UPPER) as u64 {
            s.alloc(oid).unwrap();
        }
        let again = s.alloc(99).unwrap();
        assert_eq!(again as u32 % IPCMNI, first as u32 % IPCMNI);
        assert_eq!(again >> IPCMNI_SHIFT, 1);
        assert_eq!(s.find(first), None, "the stale id names nothing");
        assert_eq!(s.find(again), Some(99));
    }

    #[test]
    fn the_lower_half_is_used_when_the_upper_is_full_and_then_none() {
        let mut s = IdSpace::default();
        for oid in 0..(IPCMNI - UPPER) as u64 {
            assert!(s.alloc(oid).unwrap() as u32 >= UPPER);
        }
        let low = s.alloc(100_000).unwrap();
        assert_eq!(low, UPPER as i32 - 1);
        for oid in 1..UPPER as u64 {
            s.alloc(100_000 + oid).unwrap();
        }
        assert_eq!(s.used.len(), IPCMNI as usize);
        assert_eq!(s.alloc(7), None);
        s.free(low);
        assert_eq!(s.alloc(8), Some((1 << IPCMNI_SHIFT) | (UPPER as i32 - 1)));
    }

    #[test]
    fn sequence_numbers_wrap_below_the_kernels_maximum() {
        let mut s = IdSpace::default();
        s.last_seq.insert(32767, SEQ_MAX - 1);
        assert_eq!(s.alloc(1), Some(32767), "wrapped to 0");
        let id = ((SEQ_MAX - 2) << IPCMNI_SHIFT | 32766) as i32;
        s.last_seq.insert(32766, SEQ_MAX - 3);
        assert_eq!(s.alloc(2), Some(id));
        assert!(id > 0);
    }
}
