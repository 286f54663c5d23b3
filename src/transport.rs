// SPDX-License-Identifier: GPL-2.0

//! Requests to the referee over the node's one connection: the state a
//! request in flight keeps ([`Call`]) and the node's sending side
//! ([`Tx`], [`Exits`]). The calls themselves are [`crate::rpc`]'s.
//!
//! Any number of tasks may wait at once: each request gets a fresh request id
//! and a [`Call`] with its own wait queue; the connection thread
//! ([`crate::conn`]) hands each reply to the call with its id and wakes only
//! that task. A task woken by a signal or by its timeout sends `Cancel` and
//! keeps waiting for the answer, which is then either `-EINTR` (the referee
//! dropped the request) or the real result (it completed first, and that
//! result stands). When the connection ends, calls in flight keep waiting:
//! if the next connection resumes the node's session, the connection thread
//! sends each again with its id (the referee carries a call out once and
//! answers a repeat from its cache), followed by its `Cancel` if it was
//! cancelled (the first may have been lost with the connection, and the
//! call would then sleep again at the referee while its task waits for
//! the answer); if it starts a new session, or none comes within
//! `reconnect_wait_ms`, they fail with `EIO`. A process's exit (its
//! `SEM_UNDO` adjustments) is a quiet call too, so it goes again.

use crate::{
    shim::Socket,
    wire::{self, Frame},
};
use kernel::{
    prelude::*,
    sync::{atomic::Atomic, Arc, CondVar, Mutex},
};

/// The sending side of the connection, guarded by [`Node::tx`].
pub(crate) struct Tx {
    /// The connection, once the referee accepted our hello.
    pub(crate) sock: Option<Arc<Socket>>,
    /// The next request id; never reused, not even across reconnects, so a
    /// late reply can never reach the wrong call.
    pub(crate) next_req: u64,
}

impl Tx {
    pub(crate) const fn new() -> Self {
        Tx {
            sock: None,
            next_req: 2,
        }
    }
}

/// Where a call stands.
pub(crate) enum CallState {
    Waiting,
    /// The reply frame's bytes.
    Replied(KVVec<u8>),
    Failed(Error),
}

/// One request in flight.
#[pin_data]
pub(crate) struct Call {
    pub(crate) req_id: u64,
    /// The request's kind (for the trace).
    pub(crate) kind: u16,
    /// Not answered: done once any later call is answered (the referee
    /// takes a connection's frames in order).
    pub(crate) quiet: bool,
    /// The encoded request, sent again when a session resumes.
    pub(crate) bytes: KVVec<u8>,
    /// Its task sent `Cancel` (1): sent again after the request when a
    /// session resumes.
    pub(crate) cancelled: Atomic<u32>,
    #[pin]
    pub(crate) state: Mutex<CallState>,
    #[pin]
    pub(crate) done: CondVar,
}

/// Why a call's wait ended early.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupted {
    /// A signal arrived.
    Signal,
    /// The caller's timeout expired.
    Timeout,
}

/// A reply and whether the wait for it was interrupted.
pub(crate) struct Answer {
    pub(crate) bytes: KVVec<u8>,
    pub(crate) interrupted: Option<Interrupted>,
}

impl Answer {
    /// The decoded reply frame.
    pub(crate) fn frame(&self) -> Result<Frame<'_>> {
        wire::decode(&self.bytes)
            .map(|(m, _)| m.frame)
            .map_err(|_| EIO)
    }
}

/// `SEM_UNDO` bookkeeping read in atomic context (the exit hook): fixed
/// arrays, no allocation. Guarded by [`Node::exits`].
pub(crate) struct Exits {
    /// Processes holding adjustments at the referee.
    pub(crate) undo: [u32; MAX_TRACKED],
    pub(crate) n_undo: usize,
    /// Of those, processes that exited; sent by the connection thread.
    pub(crate) exited: [u32; MAX_TRACKED],
    pub(crate) n_exited: usize,
    /// Processes not tracked because the table was full.
    pub(crate) overflow: u64,
}

// SAFETY: integers and arrays of integers only: all zeroes is the empty
// state.
unsafe impl Zeroable for Exits {}

/// Most processes with `SEM_UNDO` adjustments tracked per node. Beyond this,
/// a process's adjustments are applied when the node disconnects instead of
/// when it exits (and `/proc/dipc/status` counts it in `undo_overflow`).
pub(crate) const MAX_TRACKED: usize = 1024;

impl Exits {
    pub(crate) fn tracked(&self) -> usize {
        self.n_undo
    }
}
