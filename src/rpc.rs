// SPDX-License-Identifier: GPL-2.0

//! The node's calls to the referee (see [`crate::transport`] for how a
//! call waits, is cancelled and is sent again when a session resumes).

use crate::{
    node::Node,
    shim::{self, Socket},
    transport::{Answer, Call, CallState, Interrupted, MAX_TRACKED},
    wire::Frame,
};
use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, CondVarTimeoutResult,
    },
    time::{Instant, Jiffies, Monotonic},
};

impl Node {
    /// Sends `frame` with id `req_id` on `sock`, serialised with every other
    /// sender.
    pub(crate) fn send_on(&self, sock: &Socket, frame: &Frame<'_>, req_id: u64) -> Result {
        let mut buf = frame_buf(frame)?;
        encode(frame, req_id, &mut buf)?;
        let _tx = self.tx.lock();
        self.send_counted(sock, &buf)
    }

    /// Sends a frame that is not a request (no reply is awaited).
    pub(crate) fn send_oneway(&self, frame: &Frame<'_>) -> Result {
        let mut buf = frame_buf(frame)?;
        encode(frame, 0, &mut buf)?;
        let tx = self.tx.lock();
        let sock = tx.sock.as_ref().ok_or(EIO)?;
        self.send_frame(sock, &buf, true)
    }

    /// Sends encoded frame bytes and counts the frame. Call with `tx` held.
    /// A failed send may have sent part of the frame, after which the
    /// stream no longer splits into frames: the socket is shut down, and the
    /// connection thread connects again (resuming the session).
    fn send_counted(&self, sock: &Socket, bytes: &[u8]) -> Result {
        self.send_frame(sock, bytes, false)
    }

    /// [`Node::send_counted`]; `oneway`: no reply is awaited.
    fn send_frame(&self, sock: &Socket, bytes: &[u8], oneway: bool) -> Result {
        // The header's kind: after the magic (4 bytes) and the version (2).
        let kind = bytes
            .get(6..8)
            .map_or(0, |k| u16::from_le_bytes([k[0], k[1]]));
        let cut = shim::test_partial_send(kind, oneway);
        if cut != shim::PartialSend::No {
            // Test only: half the frame goes, and the connection breaks.
            let sent = sock.send_all(&bytes[..bytes.len() / 2]);
            sock.shutdown();
            return match cut {
                shim::PartialSend::Lost => sent,
                _ => sent.and(Err(ETIMEDOUT)),
            };
        }
        if let Err(e) = sock.send_all(bytes) {
            sock.shutdown();
            return Err(e);
        }
        self.conn.lock().frames_out += 1;
        Ok(())
    }

    /// Waits until there is a connection to the referee, at most
    /// `reconnect_wait_ms`, sleeping killably: `Err(EIO)` when none came in
    /// time (or no referee is configured), `Err(EINTR)` when the task is
    /// being killed.
    pub(crate) fn wait_for_connection(&self) -> Result {
        let start = Instant::<Monotonic>::now();
        loop {
            if self.tx.lock().sock.is_some() {
                return Ok(());
            }
            if self.joined.load(Relaxed) == 0
                || start.elapsed().as_millis() >= i64::from(self.reconnect_wait_ms)
            {
                return Err(EIO);
            }
            if !shim::sleep_killable_ms(20) {
                return Err(EINTR);
            }
        }
    }

    /// Sends the request `frame` and waits for its reply, at most `timeout`
    /// jiffies before cancelling it (`None`: no limit). A signal cancels it
    /// too. Without a connection it first waits for one
    /// ([`Node::wait_for_connection`]). `Err(EIO)` when none comes in time
    /// or the connection is lost while the request is out (it may or may
    /// not have been carried out).
    pub(crate) fn call(&self, frame: &Frame<'_>, timeout: Option<Jiffies>) -> Result<Answer> {
        let start = Instant::<Monotonic>::now();
        let mut req_id = 0;
        let r = self.call_traced(frame, timeout, &mut req_id);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
        let result = r.as_ref().map_or_else(|e| e.to_errno(), |_| 0);
        shim::trace::call(frame.kind() as u16, req_id, result, ns);
        r
    }

    /// [`Node::call`], setting `req_id` once the request has one.
    fn call_traced(
        &self,
        frame: &Frame<'_>,
        timeout: Option<Jiffies>,
        req_id_out: &mut u64,
    ) -> Result<Answer> {
        self.wait_for_connection()?;
        let call = self.start_call(frame)?;
        *req_id_out = call.req_id;
        self.wait(&call, timeout)
    }

    /// Sends the request `frame` without waiting for a connection or for
    /// the reply: `Err(EIO)` when there is no connection. The call stays in
    /// flight (sent again when the session resumes) until its reply comes;
    /// a caller that drops the returned call leaves the reply to the
    /// connection thread, which drops it.
    pub(crate) fn start_call(&self, frame: &Frame<'_>) -> Result<Arc<Call>> {
        self.start_call_as(frame, false)
    }

    /// Sends `frame` as a call the referee does not answer (a message sent
    /// under a send lease): it stays in flight, to be sent again if the
    /// session resumes, until a later call is answered.
    pub(crate) fn start_quiet_call(&self, frame: &Frame<'_>) -> Result {
        self.start_call_as(frame, true).map(|_| ())
    }

    fn start_call_as(&self, frame: &Frame<'_>, quiet: bool) -> Result<Arc<Call>> {
        // Allocated before `tx` is taken; encoded once the request id is known.
        let mut buf = frame_buf(frame)?;
        let mut tx = self.tx.lock();
        let sock = tx.sock.clone().ok_or(EIO)?;
        let req_id = tx.next_req;
        tx.next_req += 1;
        encode(frame, req_id, &mut buf)?;
        let call = Arc::pin_init(
            pin_init!(Call {
                req_id,
                kind: frame.kind() as u16,
                quiet,
                bytes: buf,
                cancelled: Atomic::new(0),
                state <- new_mutex!(CallState::Waiting),
                done <- new_condvar!(),
            }),
            GFP_KERNEL,
        )?;
        self.calls.lock().push(call.clone(), GFP_KERNEL)?;
        if let Err(e) = self.send_counted(&sock, &call.bytes) {
            self.forget(req_id);
            // The connection thread notices the broken socket too.
            sock.shutdown();
            pr_debug!("send failed: {}\n", e.to_errno());
            return Err(EIO);
        }
        Ok(call)
    }

    /// Waits for the reply to `call`, made with [`Node::start_call`] (see
    /// [`Node::call`] for `timeout` and signals).
    pub(crate) fn wait_call(&self, call: &Call, timeout: Option<Jiffies>) -> Result<Answer> {
        let start = Instant::<Monotonic>::now();
        let r = self.wait(call, timeout);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
        let result = r.as_ref().map_or_else(|e| e.to_errno(), |_| 0);
        shim::trace::call(call.kind, call.req_id, result, ns);
        r
    }

    fn wait(&self, call: &Call, timeout: Option<Jiffies>) -> Result<Answer> {
        let mut interrupted = None;
        let mut left = timeout.unwrap_or(Jiffies::MAX);
        let mut st = call.state.lock();
        loop {
            match core::mem::replace(&mut *st, CallState::Waiting) {
                CallState::Replied(bytes) => return Ok(Answer { bytes, interrupted }),
                CallState::Failed(e) => return Err(e),
                CallState::Waiting => {}
            }
            if interrupted.is_some() {
                // Cancelled: the answer comes promptly, or the connection
                // fails and so does this call.
                call.done.wait(&mut st);
                continue;
            }
            let why = match call.done.wait_interruptible_timeout(&mut st, left) {
                CondVarTimeoutResult::Woken { jiffies } => {
                    if timeout.is_some() {
                        left = jiffies;
                    }
                    continue;
                }
                CondVarTimeoutResult::Timeout => Interrupted::Timeout,
                CondVarTimeoutResult::Signal { .. } => Interrupted::Signal,
            };
            interrupted = Some(why);
            drop(st);
            call.cancelled.store(1, Relaxed);
            // Without a connection the cancel waits for one: the request
            // may be carried out when the session resumes, so the caller
            // must learn how it ended. A task being killed does not wait;
            // its call is forgotten (its answer is dropped on arrival).
            while self
                .send_oneway(&Frame::Cancel {
                    target: call.req_id,
                })
                .is_err()
            {
                match self.wait_for_connection() {
                    Ok(()) => {}
                    Err(e) if e == EINTR => {
                        self.forget(call.req_id);
                        return Err(EINTR);
                    }
                    Err(_) => {
                        self.fail(call.req_id, EIO);
                        break;
                    }
                }
            }
            st = call.state.lock();
        }
    }

    /// Removes call `req_id` from the table.
    fn forget(&self, req_id: u64) -> Option<Arc<Call>> {
        let mut calls = self.calls.lock();
        let i = calls.iter().position(|c| c.req_id == req_id)?;
        calls.remove(i).ok()
    }

    fn finish(call: &Call, state: CallState) {
        *call.state.lock() = state;
        call.done.notify_all();
    }

    fn fail(&self, req_id: u64, e: Error) {
        if let Some(call) = self.forget(req_id) {
            Self::finish(&call, CallState::Failed(e));
        }
    }

    /// Hands a reply to the call waiting for `req_id`. A reply nobody waits
    /// for (its call failed when a connection dropped) is dropped.
    pub(crate) fn deliver(&self, req_id: u64, frame: &[u8]) -> Result {
        // Quiet calls sent before this one were carried out.
        self.calls
            .lock()
            .retain(|c| !(c.quiet && c.req_id < req_id));
        let Some(call) = self.forget(req_id) else {
            return Ok(());
        };
        match KVVec::from_elem(0u8, frame.len(), GFP_KERNEL) {
            Ok(mut bytes) => {
                bytes.copy_from_slice(frame);
                Self::finish(&call, CallState::Replied(bytes));
                Ok(())
            }
            Err(e) => {
                Self::finish(&call, CallState::Failed(ENOMEM));
                Err(e.into())
            }
        }
    }

    /// The connection is gone: every call in flight fails with `EIO`.
    pub(crate) fn fail_all(&self) {
        let calls = core::mem::take(&mut *self.calls.lock());
        for call in calls.iter() {
            Self::finish(call, CallState::Failed(EIO));
        }
    }

    /// No connection for too long: every call a task waits for fails with
    /// `EIO`. Quiet calls stay: their senders were told the message was
    /// sent, so they go again if the session resumes (a new session drops
    /// them with [`Node::fail_all`]).
    pub(crate) fn fail_waited(&self) {
        loop {
            let call = {
                let mut calls = self.calls.lock();
                let Some(i) = calls.iter().position(|c| !c.quiet) else {
                    return;
                };
                match calls.remove(i) {
                    Ok(c) => c,
                    Err(_) => return,
                }
            };
            Self::finish(&call, CallState::Failed(EIO));
        }
    }

    /// Calls in flight that a task waits for.
    pub(crate) fn waited(&self) -> usize {
        self.calls.lock().iter().filter(|c| !c.quiet).count()
    }

    /// The session resumed on `sock`: sends every call in flight again, in
    /// the order they were made, each cancelled one followed by its
    /// `Cancel` again (connection thread, before new calls may use the
    /// socket).
    pub(crate) fn resend_all(&self, sock: &Socket) -> Result {
        // Each call with its `Cancel`, if it was cancelled; allocated
        // before `tx` is taken.
        let mut calls: KVec<(Arc<Call>, Option<KVVec<u8>>)> = {
            let calls = self.calls.lock();
            let mut v = KVec::with_capacity(calls.len(), GFP_KERNEL)?;
            for c in calls.iter() {
                v.push((c.clone(), None), GFP_KERNEL)?;
            }
            v
        };
        for (c, cancel) in calls.iter_mut() {
            if c.cancelled.load(Relaxed) != 0 {
                let frame = Frame::Cancel { target: c.req_id };
                let mut buf = frame_buf(&frame)?;
                encode(&frame, 0, &mut buf)?;
                *cancel = Some(buf);
            }
        }
        let _tx = self.tx.lock();
        for (c, cancel) in calls.iter() {
            self.send_counted(sock, &c.bytes)?;
            if let Some(cancel) = cancel {
                self.send_counted(sock, cancel)?;
            }
        }
        if !calls.is_empty() {
            pr_info!("sent {} call(s) in flight again\n", calls.len());
        }
        Ok(())
    }

    /// Calls in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.calls.lock().len()
    }

    /// Process `pid` now holds `SEM_UNDO` adjustments at the referee: tell
    /// the referee when it exits.
    pub(crate) fn note_undo(&self, pid: u32) {
        let mut ex = self.exits.lock();
        if ex.undo[..ex.n_undo].contains(&pid) {
            return;
        }
        if ex.n_undo == MAX_TRACKED {
            ex.overflow += 1;
            return;
        }
        let n = ex.n_undo;
        ex.undo[n] = pid;
        ex.n_undo += 1;
    }

    /// Exit hook (atomic context): queue `pid`'s exit if it holds
    /// adjustments.
    pub(crate) fn task_exit(&self, pid: u32) {
        let mut ex = self.exits.lock();
        let n = ex.n_undo;
        if let Some(i) = ex.undo[..n].iter().position(|&p| p == pid) {
            ex.undo[i] = ex.undo[n - 1];
            ex.n_undo -= 1;
            // `exited` has room: every entry came out of `undo`, and both
            // hold at most MAX_TRACKED together.
            let m = ex.n_exited;
            if m < MAX_TRACKED {
                ex.exited[m] = pid;
                ex.n_exited += 1;
            }
        }
    }

    /// Takes the queued exits, at most `out.len()`; returns how many.
    pub(crate) fn take_exits(&self, out: &mut [u32]) -> usize {
        let mut ex = self.exits.lock();
        let n = ex.n_exited.min(out.len());
        let start = ex.n_exited - n;
        out[..n].copy_from_slice(&ex.exited[start..ex.n_exited]);
        ex.n_exited = start;
        n
    }

    /// Puts exits back after a failed send.
    pub(crate) fn requeue_exits(&self, pids: &[u32]) {
        let mut ex = self.exits.lock();
        for &p in pids {
            let m = ex.n_exited;
            if m < MAX_TRACKED {
                ex.exited[m] = p;
                ex.n_exited += 1;
            }
        }
    }
}

/// A zeroed buffer of exactly `frame`'s encoded size.
fn frame_buf(frame: &Frame<'_>) -> Result<KVVec<u8>> {
    Ok(KVVec::from_elem(0u8, frame.encoded_len(), GFP_KERNEL)?)
}

/// Encodes `frame` with `req_id` into `buf`, which [`frame_buf`] sized,
/// with this node's wall clock in the header: the referee takes the time
/// stamps a request sets from it.
fn encode(frame: &Frame<'_>, req_id: u64, buf: &mut [u8]) -> Result {
    frame
        .encode_at(req_id, shim::real_seconds(), buf)
        .map(|_| ())
        .map_err(|_| EINVAL)
}

/// The exit hook's entry point.
///
/// # Safety
///
/// Called only by the exit_sem() ftrace callback with the context given to
/// [`crate::shim::Hooks::register`], alive while the hooks are registered.
#[no_mangle]
unsafe extern "C" fn dipc_rust_task_exit(ctx: *mut c_void, tgid: u32) {
    // SAFETY: per the function's contract.
    let node = unsafe { crate::shim::borrow_ctx::<Node>(ctx) };
    node.task_exit(tgid);
}
