// SPDX-License-Identifier: GPL-2.0

//! `/proc/dipc/status`: one `key value` pair a line, for people and scripts.

use crate::{hooks, node::Node, shim, shm};
use kernel::{bindings, prelude::*, seq_file::SeqFile, seq_print, sync::atomic::Relaxed};

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
    show(m, &node);
    0
}

fn show(m: &SeqFile, node: &Node) {
    seq_print!(m, "enabled {}\n", u8::from(shim::enabled()));
    seq_print!(m, "node_id {}\n", node.node_id);
    seq_print!(m, "referee {}\n", node.referee_display());
    seq_print!(m, "keepalive_ms {}\n", node.keepalive_ms);
    {
        let conn = node.conn.lock();
        seq_print!(m, "connection {}\n", conn.state);
        seq_print!(m, "session {:#x}\n", conn.session);
        seq_print!(m, "handshakes {}\n", conn.handshakes);
        seq_print!(m, "resumes {}\n", conn.resumes);
        seq_print!(m, "frames_in {}\n", conn.frames_in);
        seq_print!(m, "frames_out {}\n", conn.frames_out);
    }
    seq_print!(m, "shadows {}\n", node.shadows.len());
    seq_print!(m, "in_flight {}\n", node.in_flight());
    seq_print!(m, "incarnation {:#x}\n", node.incarnation);
    let (all, ranges) = node.policy.lock().describe();
    seq_print!(m, "policy_all {}\n", u8::from(all));
    seq_print!(m, "policy_ranges {}\n", ranges);
    {
        let ex = node.exits.lock();
        seq_print!(m, "undo_tracked {}\n", ex.tracked());
        seq_print!(m, "undo_overflow {}\n", ex.overflow);
    }
    seq_print!(m, "segments {}\n", node.nsegs.load(Relaxed));
    for (name, idx) in [
        ("dsm_requests", shm::COUNT_REQUESTS),
        ("dsm_resends", shm::COUNT_RESENDS),
        ("dsm_grants", shm::COUNT_GRANTS),
        ("dsm_invalidations", shm::COUNT_INVALS),
    ] {
        seq_print!(m, "{} {}\n", name, shim::Counter::sum(idx));
    }
    seq_print!(m, "hooks_registered {}\n", hooks::registered_count());
    for (id, name) in hooks::HOOK_NAMES.iter().enumerate() {
        if shim::hook_registered(id) {
            seq_print!(
                m,
                "calls_{} {}\n",
                name,
                shim::Counter::sum(hooks::calls_counter(id))
            );
        }
    }
}
