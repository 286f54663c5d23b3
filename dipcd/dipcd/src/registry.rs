//! The nodes connected to this referee.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// A handle that closes a connection (the server passes a socket clone).
pub trait Closer: Send {
    /// Shuts the connection down; its I/O loop then ends.
    fn close(&self);
}

struct Entry {
    name: String,
    addr: SocketAddr,
    since: Instant,
    conn_id: u64,
    closer: Box<dyn Closer>,
}

/// A node as reported by `dipcd status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Node id.
    pub node_id: u32,
    /// Name it gave in its hello.
    pub name: String,
    /// Its address as seen by the referee.
    pub addr: String,
    /// Seconds since it connected.
    pub connected_s: u64,
}

/// Connected nodes by id.
#[derive(Default)]
pub struct Registry {
    nodes: BTreeMap<u32, Entry>,
    /// Nodes whose connection ended (not by the keepalive), since when:
    /// their sessions are kept for one keepalive in case they come back.
    away: BTreeMap<u32, Instant>,
}

impl Registry {
    /// Registers `node_id` for connection `conn_id`. A newer connection with
    /// the same id replaces the older one, which is closed: a node that
    /// rebooted reconnects before the referee notices its old connection died.
    pub fn register(
        &mut self,
        node_id: u32,
        name: String,
        addr: SocketAddr,
        conn_id: u64,
        closer: Box<dyn Closer>,
        now: Instant,
    ) {
        let entry = Entry {
            name,
            addr,
            since: now,
            conn_id,
            closer,
        };
        self.away.remove(&node_id);
        if let Some(old) = self.nodes.insert(node_id, entry) {
            tracing::warn!(node_id, old = %old.addr, new = %addr, "node reconnected; closing its older connection");
            old.closer.close();
        }
    }

    /// Removes `node_id` if it is still registered by connection `conn_id`
    /// (a replaced connection must not remove its successor).
    pub fn unregister(&mut self, node_id: u32, conn_id: u64) -> bool {
        match self.nodes.get(&node_id) {
            Some(e) if e.conn_id == conn_id => {
                self.nodes.remove(&node_id);
                true
            }
            _ => false,
        }
    }

    /// Whether `node_id` is connected.
    pub fn connected(&self, node_id: u32) -> bool {
        self.nodes.contains_key(&node_id)
    }

    /// `node_id`'s connection ended at `at`; its session waits for it.
    pub fn went_away(&mut self, node_id: u32, at: Instant) {
        self.away.insert(node_id, at);
    }

    /// Since when `node_id` has been away (`None`: never connected to this
    /// run of the referee).
    pub fn away_since(&self, node_id: u32) -> Option<Instant> {
        self.away.get(&node_id).copied()
    }

    /// Forgets that `node_id` was away (its session ended).
    pub fn forget(&mut self, node_id: u32) {
        self.away.remove(&node_id);
    }

    /// Connected nodes, by id.
    pub fn status(&self, now: Instant) -> Vec<NodeStatus> {
        self.nodes
            .iter()
            .map(|(&node_id, e)| NodeStatus {
                node_id,
                name: e.name.clone(),
                addr: e.addr.to_string(),
                connected_s: now.saturating_duration_since(e.since).as_secs(),
            })
            .collect()
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&mut self) {
        for e in self.nodes.values() {
            e.closer.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    struct Count(Arc<AtomicUsize>);
    impl Closer for Count {
        fn close(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], p))
    }

    #[test]
    fn reconnect_replaces_and_closes_old() {
        let closed = Arc::new(AtomicUsize::new(0));
        let mut r = Registry::default();
        let t = Instant::now();
        r.register(
            1,
            "a".into(),
            addr(1),
            10,
            Box::new(Count(closed.clone())),
            t,
        );
        r.register(
            2,
            "b".into(),
            addr(2),
            11,
            Box::new(Count(closed.clone())),
            t,
        );
        r.register(
            1,
            "a".into(),
            addr(3),
            12,
            Box::new(Count(closed.clone())),
            t,
        );
        assert_eq!(closed.load(Ordering::SeqCst), 1);
        // The replaced connection ending does not remove its successor.
        assert!(!r.unregister(1, 10));
        let s = r.status(t + Duration::from_secs(5));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].addr, "10.0.0.1:3");
        assert_eq!(s[0].connected_s, 5);
        assert!(r.unregister(1, 12));
        assert_eq!(r.status(t).len(), 1);
        r.close_all();
        assert_eq!(closed.load(Ordering::SeqCst), 2);
    }
}
