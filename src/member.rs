// SPDX-License-Identifier: GPL-2.0

//! Joining and leaving a cluster at run time: `dipcctl join` and
//! `dipcctl leave`, the generic netlink commands `DIPC_CMD_JOIN` and
//! `DIPC_CMD_LEAVE` (`include/uapi/dipc_netlink.h`). A node loaded with
//! `referee=` has joined at load.
//!
//! A leave loses nothing: the node asks the referee with a `Leave` request,
//! the referee takes back every page this node owns (its latest bytes go
//! home through the ordinary invalidation path, which the connection
//! thread keeps serving meanwhile), then ends the session. Only then does
//! the node stop its connection thread and drop its view of the cluster:
//! every shadow goes (its local id vanishes, as after a remote
//! `IPC_RMID`), calls still in flight fail with `EIO`, cached pages are
//! dropped. A node that cannot reach its referee leaves only when forced,
//! and then what it owned is lost, as when a node dies.
//!
//! Unloading the module (`rmmod`, `modprobe -r`, a package upgrade) is a
//! leave too ([`leave_at_unload`]): the pages this node owns go home and
//! its shadows go before the module does, so no acknowledged store is lost
//! and no shadow stays behind as a local object at a cluster-wide id.

use crate::{
    msg,
    node::{load_secret, new_incarnation, Node, Referees},
    sem, shim, shm,
    wire::{Class, Frame},
};
use kernel::{
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

/// Joins the cluster of the referee at `referee` (`a.b.c.d:port`, or up to
/// five replicated referees comma-separated) as node
/// `node_id` (0: the id given at load), proving the secret in
/// `secret_file` (empty: the `secret_file=` given at load, if any).
///
/// Errors: `EISCONN` already joined; `EINVAL` a bad address, or no node id
/// at all; the secret file's errors (`ENOENT`, `EPERM` when others may
/// read it, `EINVAL` when its length is wrong).
pub(crate) fn join(node: &Arc<Node>, referee: &[u8], node_id: u32, secret_file: &CStr) -> Result {
    let _admin = node.admin.lock();
    if node.joined.load(Relaxed) != 0 {
        return Err(EISCONN);
    }
    let Some(addr) = Referees::parse(referee) else {
        return Err(EINVAL);
    };
    let id = if node_id != 0 { node_id } else { node.id() };
    if id == 0 {
        return Err(EINVAL);
    }
    let path = if secret_file.is_empty() {
        shim::secret_file_param()
    } else {
        secret_file
    };
    let secret = load_secret(path)?;
    node.node_id.store(id, Relaxed);
    {
        let mut m = node.member.lock();
        m.referee = Some(addr);
        m.secret = secret;
    }
    node.joined.store(1, Relaxed);
    start_thread(node).inspect_err(|_| {
        node.joined.store(0, Relaxed);
        let mut m = node.member.lock();
        m.referee = None;
        m.secret = None;
    })?;
    pr_info!("joining referee {} as node {}\n", addr, id);
    Ok(())
}

/// Starts the connection thread (at load with `referee=`, or on a join).
pub(crate) fn start_thread(node: &Arc<Node>) -> Result {
    let t = shim::Thread::start(node.clone(), c"dipc-conn")?;
    node.member.lock().thread = Some(t);
    Ok(())
}

/// Stops the connection thread, if one runs (on a leave, and at unload).
pub(crate) fn stop_thread(node: &Node) {
    // Taken out first: the thread reads `member` when it starts, so it is
    // stopped with the lock released.
    let thread = node.member.lock().thread.take();
    drop(thread);
}

/// Leaves the cluster (see the module's documentation).
///
/// Errors: `ENOTCONN` not joined; `EBUSY` a process here has a distributed
/// segment attached; `EAGAIN` no connection to the referee now (and not
/// `force`); `EIO` or `EINTR` the referee did not confirm (and not
/// `force`). On an error nothing changed.
pub(crate) fn leave(node: &Arc<Node>, force: bool) -> Result {
    let _admin = node.admin.lock();
    if node.joined.load(Relaxed) == 0 {
        return Err(ENOTCONN);
    }
    let attached = shm::attached_here(node);
    if attached > 0 {
        pr_info!(
            "leave refused: {} attach(es) of distributed segments here\n",
            attached
        );
        return Err(EBUSY);
    }
    node.leaving.store(1, Relaxed);
    let confirmed = if node.tx.lock().sock.is_some() {
        confirm(node)
    } else {
        Err(EAGAIN)
    };
    if let Err(e) = confirmed {
        if !force {
            node.leaving.store(0, Relaxed);
            return Err(e);
        }
        if node.conn.lock().session != 0 {
            pr_warn!(
                "leaving without the referee's confirmation (error {}): pages owned here are lost\n",
                e.to_errno()
            );
        }
    }
    let referee = node.referee_display();
    stop_thread(node);
    // Nothing here counts in the cluster any more.
    node.joined.store(0, Relaxed);
    node.fail_all();
    {
        // No other node may send pages here any more.
        let mut token = node.token.lock();
        *token = [0; crate::wire::TOKEN_LEN];
        shm::connection_lost(node);
    }
    forget_shadows(node);
    {
        let mut m = node.member.lock();
        m.referee = None;
        m.secret = None;
    }
    // A later join is a new node to the referee, even if it still holds a
    // session of ours (a forced leave).
    node.incarnation.store(new_incarnation(), Relaxed);
    node.conn.lock().session = 0;
    shm::resume(node);
    node.leaving.store(0, Relaxed);
    pr_info!("left the cluster of referee {}\n", referee);
    Ok(())
}

/// The module is being unloaded while joined (no attach of a distributed
/// segment is left: each holds the module): leaves as `dipcctl leave`
/// does, waiting up to `reconnect_wait_ms` for a connection if there is
/// none. Only a referee that cannot be reached, or that does not
/// confirm, makes it leave without, and then it says what is lost. A node
/// that never had a session (its referee never accepted it) holds nothing
/// of the cluster, and goes at once.
pub(crate) fn leave_at_unload(node: &Arc<Node>) {
    if node.conn.lock().session == 0 && node.tx.lock().sock.is_none() {
        if let Err(e) = leave(node, true) {
            pr_err!("unloading: leave failed ({})\n", e.to_errno());
        }
        return;
    }
    let mut r = leave(node, false);
    if r == Err(EAGAIN) && node.wait_for_connection().is_ok() {
        r = leave(node, false);
    }
    if r.is_err() {
        // `leave` says what is lost.
        if let Err(e) = leave(node, true) {
            pr_err!("unloading: leave failed ({})\n", e.to_errno());
        }
    }
}

/// Asks the referee to end our session once our pages are home.
fn confirm(node: &Node) -> Result {
    let answer = node.call(&Frame::Leave, None)?;
    match answer.frame() {
        Ok(Frame::Status { result: 0 }) => Ok(()),
        Ok(Frame::Status { result }) => {
            pr_warn!("the referee refused the leave ({})\n", result);
            Err(EIO)
        }
        _ => Err(EPROTO),
    }
}

/// Drops every shadow, as if the referee had removed each object.
fn forget_shadows(node: &Node) {
    while let Some((s, _)) = node.shadows.from(0) {
        match s.class {
            Class::Sem => sem::removed(node, s.oid),
            Class::Msg => msg::removed(node, s.oid),
            Class::Shm => shm::removed(node, s.oid),
        }
        if node
            .shadows
            .from(0)
            .is_some_and(|(t, _)| t.oid == s.oid && t.class == s.class)
        {
            // `removed` always drops it; never spin if it did not.
            break;
        }
    }
}

/// `DIPC_CMD_JOIN`.
///
/// # Safety
///
/// Called only by the genl handler with the context given to
/// [`shim::Control::register`] (alive while the family is registered) and
/// `referee` and `secret_file` NUL-terminated.
#[no_mangle]
unsafe extern "C" fn dipc_rust_join(
    ctx: *mut c_void,
    referee: *const c_char,
    node_id: u32,
    secret_file: *const c_char,
) -> c_int {
    // SAFETY: per the function's contract.
    let node: Arc<Node> = unsafe { shim::borrow_ctx::<Node>(ctx) }.into();
    // SAFETY: per the function's contract, both are NUL-terminated and
    // live for this call.
    let (referee, secret_file) = unsafe {
        (
            CStr::from_char_ptr(referee),
            CStr::from_char_ptr(secret_file),
        )
    };
    match join(&node, referee.to_bytes(), node_id, secret_file) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `DIPC_CMD_LEAVE`.
///
/// # Safety
///
/// As for [`dipc_rust_join`].
#[no_mangle]
unsafe extern "C" fn dipc_rust_leave(ctx: *mut c_void, force: bool) -> c_int {
    // SAFETY: per the function's contract.
    let node: Arc<Node> = unsafe { shim::borrow_ctx::<Node>(ctx) }.into();
    match leave(&node, force) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
