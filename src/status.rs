// SPDX-License-Identifier: GPL-2.0

//! This node's status: `/proc/dipc/status` (one `key value` pair a line, for
//! people and scripts) and the same items over generic netlink
//! (`DIPC_CMD_STATUS`, for `dipcctl status`), plus the object list
//! (`DIPC_CMD_OBJECTS`).

use crate::{hooks, node::Node, shim, shm, wire::Class};
use kernel::{bindings, fmt, prelude::*, seq_file::SeqFile, str::CString, sync::atomic::Relaxed};

/// Where the status items go.
trait Sink {
    /// A counter or setting.
    fn num(&mut self, name: &str, v: u64);
    /// An id, shown in hexadecimal in the file.
    fn hex(&mut self, name: &str, v: u64);
    /// A word or an address.
    fn text(&mut self, name: &str, v: &dyn fmt::Display);
}

/// The status file.
struct Seq<'a>(&'a SeqFile);

impl Sink for Seq<'_> {
    fn num(&mut self, name: &str, v: u64) {
        self.0.call_printf(fmt!("{name} {v}\n"));
    }

    fn hex(&mut self, name: &str, v: u64) {
        self.0.call_printf(fmt!("{name} {v:#x}\n"));
    }

    fn text(&mut self, name: &str, v: &dyn fmt::Display) {
        self.0.call_printf(fmt!("{name} {v}\n"));
    }
}

/// A netlink reply: the first error stops it.
struct Genl {
    msg: shim::GenlMsg,
    result: Result,
}

impl Genl {
    fn put(&mut self, name: &str, v: u64, text: Option<&dyn fmt::Display>) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            let name = CString::try_from_fmt(fmt!("{name}"))?;
            match text {
                Some(t) => {
                    let t = CString::try_from_fmt(fmt!("{t}"))?;
                    self.msg.put_stat(&name, 0, Some(&t))
                }
                None => self.msg.put_stat(&name, v, None),
            }
        })();
    }
}

impl Sink for Genl {
    fn num(&mut self, name: &str, v: u64) {
        self.put(name, v, None);
    }

    fn hex(&mut self, name: &str, v: u64) {
        self.put(name, v, None);
    }

    fn text(&mut self, name: &str, v: &dyn fmt::Display) {
        self.put(name, 0, Some(v));
    }
}

/// Prints the status file.
///
/// # Safety
///
/// Called only by the status file's show callback: `m` is a valid seq_file
/// used by this thread alone, `ctx` the context given to
/// [`shim::Control::register`], alive while the file exists.
#[no_mangle]
unsafe extern "C" fn dipc_rust_status_show(m: *mut bindings::seq_file, ctx: *mut c_void) -> c_int {
    // SAFETY: per the function's contract.
    let m = unsafe { SeqFile::from_raw(m) };
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    report(&mut Seq(m), &node);
    0
}

/// Fills a `DIPC_CMD_STATUS` reply.
///
/// # Safety
///
/// Called only by the family's status handler: `msg` is its reply being
/// built (used by this thread alone), `ctx` the context given to
/// [`shim::Control::register`], alive while the family is registered.
#[no_mangle]
unsafe extern "C" fn dipc_rust_status_genl(ctx: *mut c_void, msg: *mut c_void) -> c_int {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    // SAFETY: per the function's contract.
    let msg = unsafe { shim::GenlMsg::from_raw(msg) };
    let mut out = Genl {
        msg,
        result: Ok(()),
    };
    report(&mut out, &node);
    match out.result {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The first of this node's shadows at or after position `pos` (0 for the
/// first), for `DIPC_CMD_OBJECTS`; `*next` is set to the position after it.
///
/// # Safety
///
/// Called only by the family's dump handler: `ctx` the context given to
/// [`shim::Control::register`], alive while the family is registered, and
/// `next` and `out` valid for writes.
#[no_mangle]
unsafe extern "C" fn dipc_rust_object_at(
    ctx: *mut c_void,
    pos: c_long,
    next: *mut c_long,
    out: *mut shim::GenlObject,
) -> bool {
    // SAFETY: per the function's contract.
    let node = unsafe { shim::borrow_ctx::<Node>(ctx) };
    let Some((s, after)) = u64::try_from(pos).ok().and_then(|p| node.shadows.from(p)) else {
        return false;
    };
    // SAFETY: per the function's contract.
    unsafe { next.write(after as c_long) };
    let mut o = shim::GenlObject {
        class: s.class as u8,
        id: s.local_id,
        oid: s.oid,
        size: s.size,
        pages_read: 0,
        pages_write: 0,
        nattch: 0,
    };
    if s.class == Class::Shm {
        let c = shm::cached(&node, s.oid);
        o.pages_read = c.read;
        o.pages_write = c.write;
        o.nattch = c.nattch;
    }
    // SAFETY: per the function's contract.
    unsafe { out.write(o) };
    true
}

fn report(out: &mut impl Sink, node: &Node) {
    out.num("enabled", u64::from(shim::enabled()));
    out.num("node_id", u64::from(node.id()));
    out.text("referee", &node.referee_display());
    out.num("keepalive_ms", u64::from(node.keepalive_ms));
    {
        let conn = node.conn.lock();
        out.text("connection", &conn.state);
        out.hex("session", conn.session);
        match &conn.referee_now {
            Some(a) => out.text("referee_now", a),
            None => out.text("referee_now", &"none"),
        }
        out.num("handshakes", conn.handshakes);
        out.num("resumes", conn.resumes);
        out.num("frames_in", conn.frames_in);
        out.num("frames_out", conn.frames_out);
    }
    out.num("shadows", node.shadows.len() as u64);
    out.num("in_flight", node.in_flight() as u64);
    out.hex("incarnation", node.incarnation.load(Relaxed));
    let (all, ranges) = node.policy.lock().describe();
    out.num("policy_all", u64::from(all));
    out.num("policy_ranges", ranges as u64);
    // Read under the spin lock, written after it: the netlink sink
    // allocates, which may sleep.
    let (tracked, overflow) = {
        let ex = node.exits.lock();
        (ex.tracked() as u64, ex.overflow)
    };
    out.num("undo_tracked", tracked);
    out.num("undo_overflow", overflow);
    out.num("segments", u64::from(node.nsegs.load(Relaxed)));
    let (recv, send) = crate::msglease::held(node);
    out.num("msg_recv_leases", recv);
    out.num("msg_send_leases", send);
    for (name, idx) in [
        ("dsm_requests", shm::COUNT_REQUESTS),
        ("dsm_resends", shm::COUNT_RESENDS),
        ("dsm_grants", shm::COUNT_GRANTS),
        ("dsm_invalidations", shm::COUNT_INVALS),
        ("dsm_held", shm::COUNT_HELD),
        ("dsm_direct_sent", crate::peer::COUNT_SENT),
        ("dsm_direct_received", crate::peer::COUNT_RECEIVED),
        ("dsm_direct_stale", crate::peer::COUNT_STALE),
        ("dsm_direct_refused", crate::peer::COUNT_REFUSED),
        ("msg_leased_taken", crate::msglease::COUNT_TAKEN),
        ("msg_leased_sent", crate::msglease::COUNT_SENT),
        ("msg_recalls", crate::msglease::COUNT_RECALLED),
        ("msg_retries", crate::msglease::COUNT_RETRIES),
    ] {
        out.num(name, shim::Counter::sum(idx));
    }
    out.num("hooks_registered", hooks::registered_count() as u64);
    for (id, name) in shim::HOOK_NAMES.iter().enumerate() {
        if shim::hook_registered(id) {
            let mut buf = [0u8; 32];
            let key = prefixed(&mut buf, "calls_", name);
            out.num(key, shim::Counter::sum(hooks::calls_counter(id)));
        }
    }
}

/// `prefix` then `name` in `buf` (cut at its length, on a character
/// boundary: both are ASCII here).
fn prefixed<'a>(buf: &'a mut [u8], prefix: &str, name: &str) -> &'a str {
    let mut n = 0;
    for &b in Iterator::chain(prefix.as_bytes().iter(), name.as_bytes()) {
        if n == buf.len() || !b.is_ascii() {
            break;
        }
        buf[n] = b;
        n += 1;
    }
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}
