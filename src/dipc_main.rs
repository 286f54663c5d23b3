// SPDX-License-Identifier: GPL-2.0

//! dipc: transparent distributed System V IPC.
//!
//! This module hooks the SysV IPC syscalls on a node and (as the project
//! grows) forwards operations on distributed objects to the cluster's referee,
//! `dipcd`. Design: `Documentation/architecture.md`.
//!
//! Crate layout, one concern per file:
//! - [`shim`] - the C shim's `extern "C"` block and safe wrappers;
//! - [`hooks`] - what a hooked syscall does;
//! - [`conn`] - the connection to the referee and its thread;
//! - [`member`] - joining and leaving a cluster at run time;
//! - [`status`] - `/proc/dipc/status`;
//! - [`transport`] - requests to the referee, many waiting at once;
//! - [`sem`] - distributed semaphore sets;
//! - [`msg`] - distributed message queues;
//! - [`shm`] - distributed shared memory;
//! - [`peer`] - pages sent straight between nodes;
//! - [`shadow`] - local shadows of distributed objects, the hot-path check;
//! - [`policy`] - which keys are distributed (`/proc/sys/dipc/keys`);
//! - [`node`] - this node's state, shared by all of them;
//! - [`wire`] - the wire protocol, the same source file `dipcd` uses.

use kernel::{
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

mod compat;
mod conn;
mod hooks;
mod ids;
mod layout;
mod member;
mod msg;
mod msglease;
mod msgq;
mod node;
mod peer;
mod policy;
mod procipc;
mod rpc;
mod seg;
mod sem;
mod shadow;
mod shim;
mod shm;
mod status;
mod transport;
mod util;

#[path = "../dipcd/wire/src/wire.rs"]
pub mod wire;

module! {
    type: Dipc,
    name: "dipc",
    authors: ["dipc developers"],
    description: "Distributed System V IPC",
    license: "GPL",
    params: {
        node_id: u32 {
            default: 0,
            description: "This node's id in the cluster (1..); required with referee=",
        },
        keepalive_ms: u32 {
            default: 10000,
            description: "Declare the referee connection dead after this many ms without a frame (pinged after a third); keep it below dipcd's --keepalive",
        },
        reconnect_wait_ms: u32 {
            default: 30000,
            description: "A call or shm fault made while the referee is unreachable waits this many ms for the connection (killable), then fails with EIO (a fault: SIGBUS)",
        },
    },
}

/// The loaded module. Fields drop in order: the control files and the
/// netlink family first (no join or leave runs after that, and none is
/// still running: unregistering waits for them), then the connection
/// thread (no frame from the referee is handled after that, so nothing
/// runs an original syscall), then the hooks. By then the module's
/// reference count is 0, so no redirected call is in flight and a new one
/// passes through (`try_module_get` fails while the module goes).
struct Dipc {
    _control: shim::Control<node::Node>,
    _conn: ConnGuard,
    _peers: peer::PeerGuard,
    _hooks: shim::Hooks<node::Node>,
}

/// Leaves the cluster, if joined (the node's pages go home, its shadows
/// go: [`member::leave_at_unload`]), and stops the connection thread, if
/// one runs, when dropped. The thread is kept in [`node::Node::member`]
/// (a join starts it, a leave stops it), so the node holds a reference to
/// itself through it until then.
struct ConnGuard(Arc<node::Node>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.joined.load(Relaxed) != 0 {
            member::leave_at_unload(&self.0);
        }
        member::stop_thread(&self.0);
    }
}

impl kernel::Module for Dipc {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let node_id = module_parameters::node_id.value();
        let node = node::Node::new(
            node_id,
            shim::referee_param(),
            module_parameters::keepalive_ms.value(),
            module_parameters::reconnect_wait_ms.value(),
        )?;
        let conn = ConnGuard(node.clone());
        if node.joined.load(Relaxed) != 0 {
            member::start_thread(&node)?;
        }
        let peers = peer::PeerGuard::start(&node, shm::grant_direct)?;
        let control = shim::Control::register(node.clone())?;
        let hooks = shim::Hooks::register(node.clone(), node.shadows.bitmaps())?;
        pr_info!(
            "loaded: node {}, {} hooks, referee {}\n",
            node.id(),
            hooks::registered_count(),
            node.referee_display()
        );
        Ok(Dipc {
            _control: control,
            _conn: conn,
            _peers: peers,
            _hooks: hooks,
        })
    }
}

impl Drop for Dipc {
    fn drop(&mut self) {
        pr_info!("unloading\n");
    }
}
