// SPDX-License-Identifier: GPL-2.0

//! One queue's message leases on this node: the state [`crate::msglease`]
//! keeps per queue (`Node::msgq`).

use crate::wire::IpcPerm;
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// One leased message.
pub(crate) struct Leased {
    pub(crate) seq: u64,
    pub(crate) mtype: i64,
    pub(crate) text: KVVec<u8>,
    /// Taken (its body moved out).
    pub(crate) gone: bool,
}

pub(crate) struct RecvLease {
    pub(crate) id: u64,
    pub(crate) perm: IpcPerm,
    /// In queue order; those before `head` are all taken.
    pub(crate) msgs: KVec<Leased>,
    pub(crate) head: usize,
    /// Messages not taken.
    pub(crate) live: usize,
    /// Taken, for the `MsgReturn`.
    pub(crate) taken: KVec<u64>,
    /// Taken and not reported yet.
    pub(crate) unreported: KVec<u64>,
    /// The last receiver.
    pub(crate) pid: u32,
    /// Messages the referee added could not be kept (no memory): later
    /// ones are not added either, so what is held stays the head of the
    /// queue.
    pub(crate) short: bool,
}

pub(crate) struct SendLease {
    pub(crate) id: u64,
    pub(crate) perm: IpcPerm,
    pub(crate) bytes: u64,
    pub(crate) msgs: u32,
}

pub(crate) struct State {
    pub(crate) repoch: u64,
    pub(crate) sepoch: u64,
    /// Leases up to this id were recalled before they arrived: one that
    /// arrives now is given back unused.
    pub(crate) floor: u64,
    pub(crate) recv: Option<RecvLease>,
    pub(crate) send: Option<SendLease>,
}

/// One queue's leases on this node.
#[pin_data]
pub(crate) struct Queue {
    pub(crate) oid: u64,
    #[pin]
    pub(crate) st: Mutex<State>,
}

impl Queue {
    /// A queue with no lease.
    pub(crate) fn new(oid: u64) -> Result<Arc<Queue>> {
        Arc::pin_init(
            pin_init!(Queue {
                oid,
                st <- new_mutex!(State {
                    repoch: 0,
                    sepoch: 0,
                    floor: 0,
                    recv: None,
                    send: None,
                }),
            }),
            GFP_KERNEL,
        )
    }
}
