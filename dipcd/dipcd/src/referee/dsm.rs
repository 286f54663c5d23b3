//! The DSM directory of one segment: for each page, who may read it, who
//! may write it, and the referee's home copy (Ivy's central manager with
//! write-invalidate, single writer / multiple readers).
//!
//! Invariants, checked by [`Directory::check`] in the tests:
//! - a page has an owner (one node with write access) or a copy set (nodes
//!   with read access), never both;
//! - at most one transaction per page is in progress; requests that arrive
//!   meanwhile wait in the page's queue, in arrival order;
//! - the home copy is current whenever the page has no owner.
//!
//! A request is answered at once when no other node has to give anything
//! up. Otherwise the referee sends [`Out::Inval`] to every node that must
//! (the owner with `want_data`, so its bytes come back), and answers the
//! request once every [`Directory::ack`] is in.
//!
//! Direct transfers: when the one node to give the page up is its owner,
//! the invalidation names the requester ([`Out::Inval::direct`]), and the
//! owner may send the page to it itself, then ack with the bytes and
//! `sent`. The home copy stays current (recovery needs it), and the
//! referee grants nothing more: the page crossed once, on the shortest
//! path.
//!
//! Grants that may be lost: every grant that carries the page (its bytes,
//! or zeroes), whether the owner sends it or the referee does, has a
//! transaction id, and the directory remembers it per holder until the
//! holder is known to have applied it ([`Page::granted`]). The directory
//! counts the holder as holding the page from the moment it decides the
//! grant, but the frame may be lost on the way while the node's session
//! goes on (a failed write, a referee restarted between its log's sync
//! and the send, a replicated leader's failover). So frames the referee
//! sends the holder later for the page carry `after`, that grant's id,
//! and the node applies them only once it has applied that grant; and
//! when the holder asks for the page again with an older `applied` id, the
//! grant goes again from home ([`Directory::request`]). A grant that only
//! raises the access of a copy the node has (`Keep`) is never trusted
//! alone: it too waits for the grant that brought the copy.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Bytes in a page.
pub const PAGE_LEN: usize = dipc_wire::PAGE_LEN;

/// A request for a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    /// The node that faulted.
    pub node: u32,
    /// Write access wanted (else a read copy).
    pub write: bool,
}

/// What a grant carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// The node's copy is current.
    Keep,
    /// All zeroes: the page was never written.
    Zero,
    /// The page's bytes.
    Bytes(Box<[u8]>),
}

/// A frame the directory wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Access granted to `node`.
    Grant {
        /// The node.
        node: u32,
        /// The page.
        page: u64,
        /// Write access (else read).
        write: bool,
        /// Contents for the node.
        data: Data,
        /// The transaction the grant completes, or the id a grant of the
        /// page's bytes made at once has (0: granted at once, keeping the
        /// node's copy).
        txn: u64,
        /// Apply once the grant `after` is applied (0: at once).
        after: u64,
    },
    /// `node` must give its copy up (or keep only a read copy).
    Inval {
        /// The node.
        node: u32,
        /// The page.
        page: u64,
        /// Keep a read copy (a downgrade).
        keep_read: bool,
        /// Send the bytes back (the node owns the page).
        want_data: bool,
        /// Transaction id, repeated in the ack.
        txn: u64,
        /// Answer once the grant `after` is applied (0: at once).
        after: u64,
        /// The requester, to which the node may send the page itself.
        direct: Option<u32>,
    },
}

/// An invalidation a node has not answered, as sent again on a resume
/// (without `direct`: the page then comes through the referee).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingInval {
    /// The page.
    pub page: u64,
    /// Keep a read copy.
    pub keep_read: bool,
    /// Send the bytes back.
    pub want_data: bool,
    /// The transaction.
    pub txn: u64,
    /// As in [`Out::Inval`].
    pub after: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Txn {
    id: u64,
    want: Want,
    /// Nodes whose ack is missing.
    pending: BTreeSet<u32>,
    /// The requester left; finish without granting.
    abandoned: bool,
    /// The owner was asked to send the page to the requester itself.
    #[serde(default)]
    direct: bool,
    /// It says it did.
    #[serde(default)]
    sent: bool,
    /// The owner was lost before its ack: the requester may or may not get
    /// the page it sent.
    #[serde(default)]
    lost_owner: bool,
    /// A read copy's bytes are called home ([`Directory::call_home`]).
    #[serde(default)]
    pull: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Page {
    owner: Option<u32>,
    copyset: BTreeSet<u32>,
    home: Option<Box<[u8]>>,
    txn: Option<Txn>,
    queue: VecDeque<Want>,
    /// Per holder, the id of the last grant that brought it the page (sent
    /// by the referee, or directly by the owner), until the holder is known
    /// to have applied it: it answered an invalidation sent after it, or
    /// asked for the page with an `applied` id as recent.
    #[serde(default, alias = "direct")]
    granted: BTreeMap<u32, u64>,
}

impl Page {
    fn idle(&self) -> bool {
        self.owner.is_none()
            && self.copyset.is_empty()
            && self.home.is_none()
            && self.txn.is_none()
            && self.queue.is_empty()
            && self.granted.is_empty()
    }

    /// What a frame to `node` must wait for: the grant of the page it may
    /// not have applied yet.
    fn after(&self, node: u32) -> u64 {
        self.granted.get(&node).copied().unwrap_or(0)
    }

    /// Whether `want.node` already has the access `want` asks for.
    fn holds(&self, want: Want) -> bool {
        self.owner == Some(want.node) || (!want.write && self.copyset.contains(&want.node))
    }

    fn home_data(&self) -> Data {
        match &self.home {
            Some(b) => Data::Bytes(b.clone()),
            None => Data::Zero,
        }
    }
}

/// Counters for status and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirStats {
    /// Grants sent.
    pub grants: u64,
    /// Invalidations sent.
    pub invals: u64,
    /// Pages whose bytes were sent in a grant.
    pub pages_sent: u64,
    /// Requests the referee made on a node's behalf (read-ahead).
    pub ahead: u64,
    /// Requests the referee made on a node's behalf (whole-segment mode).
    pub whole: u64,
    /// Grants whose page went straight from its owner to the requester.
    #[serde(default)]
    pub direct: u64,
    /// Grants granted again from home (the holder asked again with an
    /// older `applied`, or a direct grant's sender was lost).
    #[serde(default)]
    pub regrants: u64,
}

/// Most pages read ahead of one miss.
pub const READAHEAD_MAX: u64 = 32;

/// Largest segment that moves as one unit in whole-segment mode, in pages
/// (16 MiB); a larger one moves page by page.
pub const WHOLE_MAX_PAGES: u64 = 4096;

/// One node's run of sequential misses on a segment: pages `base..start`
/// were missed or read ahead before, `start..next` is the newest window read
/// ahead (possibly still in flight), `window` its size.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Run {
    base: u64,
    start: u64,
    next: u64,
    write: bool,
    window: u64,
}

/// One segment's directory. Pages nobody touched have no entry: a 1 GiB
/// segment with one page in use holds one entry.
#[derive(Debug, Serialize, Deserialize)]
pub struct Directory {
    npages: u64,
    pages: BTreeMap<u64, Page>,
    /// Counters.
    pub stats: DirStats,
    /// Per node, its current run of misses (persisted: a log replayed
    /// over a snapshot must make the same decisions as the first time).
    runs: BTreeMap<u32, Run>,
    /// Most pages read ahead of one miss (0: no read-ahead); set from
    /// `Objects` before each request.
    #[serde(skip)]
    pub readahead_max: u64,
    /// Grants made at once take no transaction id, as dipcd numbered them
    /// before grants were remembered until applied: set from `Objects`
    /// before each call while a log of that version is replayed, so its
    /// acks still name the transactions they answer.
    #[serde(skip)]
    pub legacy_ids: bool,
}

/// Why a request or an ack was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirError {
    /// The page is past the segment's end.
    OutOfRange,
}

impl Directory {
    /// A directory for `npages` pages, all zero and uncached.
    pub fn new(npages: u64) -> Self {
        Directory {
            npages,
            pages: BTreeMap::new(),
            stats: DirStats::default(),
            runs: BTreeMap::new(),
            readahead_max: READAHEAD_MAX,
            legacy_ids: false,
        }
    }

    /// Pages with an entry (touched at some time and not idle).
    pub fn entries(&self) -> usize {
        self.pages.len()
    }

    /// Node `node` faulted on `page`; the last grant of it the node
    /// applied is `applied`. `next_txn` numbers transactions.
    pub fn request(
        &mut self,
        want: Want,
        page: u64,
        applied: u64,
        next_txn: &mut u64,
        out: &mut Vec<Out>,
    ) -> Result<(), DirError> {
        if page >= self.npages {
            return Err(DirError::OutOfRange);
        }
        self.regrant(want.node, page, applied, out);
        // The holder the bytes come from: read-ahead takes only pages that
        // are at home or held by the same node.
        let source = self.pages.get(&page).and_then(|p| p.owner);
        self.enqueue(want, page, next_txn, out);
        self.read_ahead(want, page, source, next_txn, out);
        Ok(())
    }

    /// The node asks for a page while a grant of it, by a later
    /// transaction than the last it applied, is outstanding: that grant
    /// was lost on the way (or is slow), so it goes again, from home. The
    /// home copy is current: the page has no owner but this node, and the
    /// node cannot have written it without the grant. Not a new
    /// transaction: a page whose invalidation the node holds until then
    /// moves on. A node that has applied the grant is trusted from now on.
    fn regrant(&mut self, node: u32, page: u64, applied: u64, out: &mut Vec<Out>) {
        let Some(p) = self.pages.get_mut(&page) else {
            return;
        };
        let Some(&txn) = p.granted.get(&node) else {
            return;
        };
        if applied >= txn {
            p.granted.remove(&node);
            return;
        }
        if !p.holds(Want { node, write: false }) {
            return;
        }
        Self::grant_again(p, node, page, txn, &mut self.stats, out);
    }

    /// Grants `node` the access it holds on `page` again, as transaction
    /// `txn`, from home.
    fn grant_again(
        p: &Page,
        node: u32,
        page: u64,
        txn: u64,
        stats: &mut DirStats,
        out: &mut Vec<Out>,
    ) {
        stats.regrants += 1;
        stats.pages_sent += u64::from(p.home.is_some());
        out.push(Out::Grant {
            node,
            page,
            write: p.owner == Some(node),
            data: p.home_data(),
            txn,
            after: 0,
        });
    }

    /// Queues `want` on `page` and starts what can start.
    fn enqueue(&mut self, want: Want, page: u64, next_txn: &mut u64, out: &mut Vec<Out>) {
        self.pages.entry(page).or_default().queue.push_back(want);
        self.pump(page, next_txn, out);
    }

    /// Node `want.node` faulted on `page` of a segment in whole-segment
    /// mode: after `page`, the same access to every other page of the
    /// segment (from the next one on, wrapping), each an ordinary
    /// transaction, for pages the node neither holds as wanted nor has
    /// asked for yet. A segment above [`WHOLE_MAX_PAGES`] moves page by
    /// page.
    pub fn request_whole(
        &mut self,
        want: Want,
        page: u64,
        applied: u64,
        next_txn: &mut u64,
        out: &mut Vec<Out>,
    ) -> Result<(), DirError> {
        if self.npages > WHOLE_MAX_PAGES {
            return self.request(want, page, applied, next_txn, out);
        }
        if page >= self.npages {
            return Err(DirError::OutOfRange);
        }
        self.regrant(want.node, page, applied, out);
        self.enqueue(want, page, next_txn, out);
        for i in 1..self.npages {
            let q = (page + i) % self.npages;
            let skip = self.pages.get(&q).is_some_and(|p| {
                p.holds(want)
                    || p.txn.as_ref().is_some_and(|t| t.want == want)
                    || p.queue.contains(&want)
            });
            if skip {
                continue;
            }
            self.stats.whole += 1;
            self.enqueue(want, q, next_txn, out);
        }
        Ok(())
    }

    /// Read-ahead, as Linux reads files ahead: a miss at the end of the
    /// node's run (the page after the newest window), or in the newest
    /// window itself (the node caught up with pages still in flight),
    /// doubles the window, up to [`Directory::readahead_max`], and reads
    /// the next window ahead; a miss in an older window of the run changes
    /// nothing; any other miss starts a new run and reads nothing ahead.
    /// Pages are requested on the node's behalf, as ordinary transactions,
    /// while each is free (no transaction, nothing queued) and at home or
    /// owned by `source`, the holder of the missed page; a write also needs
    /// no other node's read copy. The first page that does not qualify ends
    /// the window, so random access reads nothing ahead.
    fn read_ahead(
        &mut self,
        want: Want,
        page: u64,
        source: Option<u32>,
        next_txn: &mut u64,
        out: &mut Vec<Out>,
    ) {
        let n = want.node;
        let max = self.readahead_max;
        let run = self.runs.entry(n).or_default();
        let same = run.write == want.write && run.base < run.next;
        let from = if same && page == run.next {
            page + 1
        } else if same && (run.start..run.next).contains(&page) {
            run.next
        } else if same && (run.base..run.start).contains(&page) {
            return;
        } else {
            *run = Run {
                base: page,
                start: page + 1,
                next: page + 1,
                write: want.write,
                window: 0,
            };
            return;
        };
        run.window = (run.window * 2).max(2).min(max);
        run.start = from;
        let end = from.saturating_add(run.window).min(self.npages);
        let mut next = from;
        while next < end {
            let qualifies = match self.pages.get(&next) {
                None => true,
                Some(p) => {
                    p.txn.is_none()
                        && p.queue.is_empty()
                        && (p.owner.is_none() || p.owner == source)
                        && !(want.write && p.copyset.iter().any(|&c| c != n))
                }
            };
            if !qualifies {
                break;
            }
            if !self.pages.get(&next).is_some_and(|p| p.holds(want)) {
                self.stats.ahead += 1;
                self.enqueue(want, next, next_txn, out);
            }
            next += 1;
        }
        if let Some(run) = self.runs.get_mut(&n) {
            run.next = next;
        }
    }

    /// Node `node` answered invalidation `txn` of `page`, with the page's
    /// bytes if it sent them, and `sent` if it also sent them to the
    /// requester itself. An ack that matches no pending invalidation is
    /// ignored (returns `false`).
    #[allow(clippy::too_many_arguments)]
    pub fn ack(
        &mut self,
        node: u32,
        page: u64,
        txn: u64,
        data: Option<&[u8]>,
        sent: bool,
        next_txn: &mut u64,
        out: &mut Vec<Out>,
    ) -> bool {
        let Some(p) = self.pages.get_mut(&page) else {
            return false;
        };
        let Some(t) = p.txn.as_mut() else {
            return false;
        };
        if t.id != txn || !t.pending.remove(&node) {
            return false;
        }
        let keep_read = !t.want.write;
        // A direct transfer counts only from the owner asked for one, with
        // the bytes for home.
        let from_owner = p.owner == Some(node);
        let bytes = data.filter(|d| d.len() == PAGE_LEN);
        if t.direct && from_owner && bytes.is_some() {
            t.sent = sent;
        }
        if let Some(d) = bytes {
            p.home = Some(d.into());
        }
        // The node held this invalidation until it had applied the grant
        // before it.
        p.granted.remove(&node);
        Self::release(p, node, keep_read);
        if p.txn.as_ref().is_some_and(|t| t.pending.is_empty()) {
            self.finish(page, next_txn, out);
        }
        true
    }

    /// `node` gave its copy up: out of the copy set; an owner's page goes
    /// back to the home copy (with the bytes it sent, if any).
    fn release(p: &mut Page, node: u32, keep_read: bool) {
        if p.owner == Some(node) {
            p.owner = None;
            if keep_read {
                p.copyset.insert(node);
            }
        } else if !keep_read {
            p.copyset.remove(&node);
        }
    }

    /// The transaction of `page` has every ack: grant, then start the next.
    fn finish(&mut self, page: u64, next_txn: &mut u64, out: &mut Vec<Out>) {
        let Some(p) = self.pages.get_mut(&page) else {
            return;
        };
        let Some(t) = p.txn.take() else {
            return;
        };
        if t.sent {
            // The owner sent the page itself: the requester holds it from
            // now on, as if granted here, even if it is leaving meanwhile
            // (a page it now owns is called home at once).
            self.stats.grants += 1;
            self.stats.direct += 1;
            Self::take(p, t.want);
            p.granted.insert(t.want.node, t.id);
            if t.lost_owner {
                // The page may never arrive: the home copy goes too, under
                // the same transaction, so the node applies whichever
                // comes first and drops the other. Nobody else can read
                // the page before the node has applied one of them.
                Self::grant_again(p, t.want.node, page, t.id, &mut self.stats, out);
            }
            if t.abandoned && t.want.write {
                Self::call_home(p, t.want.node, page, false, next_txn, &mut self.stats, out);
            } else if t.lost_owner && !t.want.write {
                // `after` is this grant, just recorded.
                Self::call_home(p, t.want.node, page, true, next_txn, &mut self.stats, out);
            }
        } else if !t.abandoned {
            self.stats.grants += 1;
            let ids = (t.id, !self.legacy_ids);
            Self::grant(p, t.want, page, ids, next_txn, &mut self.stats, out);
        }
        self.pump(page, next_txn, out);
    }

    /// `want.node` holds the page as `want` asks.
    fn take(p: &mut Page, want: Want) {
        let n = want.node;
        if want.write {
            p.copyset.clear();
            p.owner = Some(n);
        } else if p.owner != Some(n) {
            p.copyset.insert(n);
        }
    }

    /// Grants `want` on a page nobody else needs to give up, as
    /// transaction `txn` (0: granted at once; a grant with the page's bytes
    /// then gets an id of its own, from `next_txn`, which the node's
    /// `applied` must reach before its copy is trusted, unless `at_once_ids`
    /// is false: see [`Directory::legacy_ids`]).
    fn grant(
        p: &mut Page,
        want: Want,
        page: u64,
        (mut txn, at_once_ids): (u64, bool),
        next_txn: &mut u64,
        stats: &mut DirStats,
        out: &mut Vec<Out>,
    ) {
        let n = want.node;
        let (data, after) = if p.owner == Some(n) || p.copyset.contains(&n) {
            (Data::Keep, p.after(n))
        } else {
            if txn == 0 && at_once_ids {
                *next_txn += 1;
                txn = *next_txn;
            }
            if txn != 0 {
                p.granted.insert(n, txn);
            }
            (p.home_data(), 0)
        };
        Self::take(p, want);
        if matches!(data, Data::Bytes(_)) {
            stats.pages_sent += 1;
        }
        out.push(Out::Grant {
            node: n,
            page,
            write: want.write,
            data,
            txn,
            after,
        });
    }

    /// Starts queued requests of `page` until one has to wait.
    fn pump(&mut self, page: u64, next_txn: &mut u64, out: &mut Vec<Out>) {
        let Some(p) = self.pages.get_mut(&page) else {
            return;
        };
        while p.txn.is_none() {
            let Some(want) = p.queue.pop_front() else {
                break;
            };
            let n = want.node;
            // Who must give something up first.
            let targets: BTreeSet<u32> = match p.owner {
                Some(o) if o != n => [o].into(),
                Some(_) => BTreeSet::new(),
                None if want.write => p.copyset.iter().copied().filter(|&c| c != n).collect(),
                None => BTreeSet::new(),
            };
            if targets.is_empty() {
                // Granted at once: no transaction (id 0).
                self.stats.grants += 1;
                let ids = (0, !self.legacy_ids);
                Self::grant(p, want, page, ids, next_txn, &mut self.stats, out);
                continue;
            }
            *next_txn += 1;
            let id = *next_txn;
            // The owner alone gives the page up: it may send it to the
            // requester itself.
            let direct = p.owner.is_some_and(|o| o != n);
            for &t in &targets {
                self.stats.invals += 1;
                out.push(Out::Inval {
                    node: t,
                    page,
                    keep_read: !want.write,
                    want_data: p.owner == Some(t),
                    txn: id,
                    after: p.after(t),
                    direct: direct.then_some(n),
                });
            }
            p.txn = Some(Txn {
                id,
                want,
                pending: targets,
                abandoned: false,
                direct,
                sent: false,
                lost_owner: false,
                pull: false,
            });
        }
        if p.idle() {
            self.pages.remove(&page);
        }
    }

    /// Node `node` is leaving the cluster: every page it owns comes home
    /// (an invalidation with `want_data` in a transaction that grants
    /// nothing), its queued requests are dropped, and a transaction it
    /// asked for will grant nothing. A page it owns whose transaction is
    /// already under way comes home through that one (its owner is always
    /// asked for the bytes). Once [`Directory::holds`] is false for the
    /// node, nothing it wrote can be lost.
    pub fn recall(&mut self, node: u32, next_txn: &mut u64, out: &mut Vec<Out>) {
        self.runs.remove(&node);
        for (&page, p) in self.pages.iter_mut() {
            p.queue.retain(|w| w.node != node);
            if let Some(t) = p.txn.as_mut() {
                if t.want.node == node {
                    t.abandoned = true;
                }
                continue;
            }
            if p.owner != Some(node) {
                continue;
            }
            Self::call_home(p, node, page, false, next_txn, &mut self.stats, out);
        }
    }

    /// Calls the bytes of `page` home from `node`, in a transaction that
    /// grants nothing (none is in progress):
    /// - a recall (`keep_read` false): `node` owns the page and gives it
    ///   up entirely (it is leaving);
    /// - a pull (`keep_read` true): the owner of `page` was lost while it
    ///   may have sent `node` a read copy itself, whose bytes may be newer
    ///   than home; `node` keeps its copy and sends the bytes home, once it
    ///   has applied that grant (or, if it never arrives, the grant again
    ///   from home), and readers that ask meanwhile wait for it.
    fn call_home(
        p: &mut Page,
        node: u32,
        page: u64,
        keep_read: bool,
        next_txn: &mut u64,
        stats: &mut DirStats,
        out: &mut Vec<Out>,
    ) {
        *next_txn += 1;
        let id = *next_txn;
        stats.invals += 1;
        out.push(Out::Inval {
            node,
            page,
            keep_read,
            want_data: true,
            txn: id,
            after: p.after(node),
            direct: None,
        });
        p.txn = Some(Txn {
            id,
            // A write want: the ack drops the node's copy entirely; a read
            // want keeps it.
            want: Want {
                node,
                write: !keep_read,
            },
            pending: [node].into(),
            abandoned: true,
            direct: false,
            sent: false,
            lost_owner: false,
            pull: keep_read,
        });
    }

    /// Whether `node` owns a page here, owes an invalidation's ack, or
    /// may be getting a page straight from its owner (whose ack is not in).
    pub fn holds(&self, node: u32) -> bool {
        self.pages.values().any(|p| {
            p.owner == Some(node)
                || p.txn
                    .as_ref()
                    .is_some_and(|t| t.pending.contains(&node) || (t.want.node == node && t.direct))
        })
    }

    /// Node `node` is gone: its copies and ownerships are dropped (an owned
    /// page falls back to the home copy; writes since its last transfer are
    /// lost), its queued requests are forgotten, and transactions waiting
    /// for its ack go on without it.
    pub fn node_gone(&mut self, node: u32, next_txn: &mut u64, out: &mut Vec<Out>) {
        self.runs.remove(&node);
        let pages: Vec<u64> = self.pages.keys().copied().collect();
        for page in pages {
            let Some(p) = self.pages.get_mut(&page) else {
                continue;
            };
            p.queue.retain(|w| w.node != node);
            let owned = p.owner == Some(node);
            if owned {
                p.owner = None;
            }
            p.copyset.remove(&node);
            p.granted.remove(&node);
            let mut done = false;
            if let Some(t) = p.txn.as_mut() {
                if owned && t.direct && !t.abandoned && t.pending.contains(&node) {
                    // It may have sent the page to the requester before it
                    // went: count it as sent (see `call_home`).
                    t.sent = true;
                    t.lost_owner = true;
                }
                if t.want.node == node {
                    // Its session is over: a page sent to it straight
                    // from the owner is dropped there (a new session has
                    // a new token), so nothing counts as granted.
                    t.abandoned = true;
                    t.direct = false;
                    t.sent = false;
                }
                t.pending.remove(&node);
                done = t.pending.is_empty();
            }
            if done {
                self.finish(page, next_txn, out);
            } else {
                self.pump(page, next_txn, out);
            }
        }
    }

    /// Invalidations `node` owes an ack for: what [`Directory::pump`]
    /// sent it.
    pub fn pending_invals(&self, node: u32) -> Vec<PendingInval> {
        self.pages
            .iter()
            .filter_map(|(&page, p)| {
                let t = p.txn.as_ref().filter(|t| t.pending.contains(&node))?;
                Some(PendingInval {
                    page,
                    keep_read: !t.want.write,
                    want_data: p.owner == Some(node) || t.pull,
                    txn: t.id,
                    after: p.after(node),
                })
            })
            .collect()
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    pub fn check(&self) {
        for (page, p) in &self.pages {
            assert!(*page < self.npages);
            assert!(
                p.owner.is_none() || p.copyset.is_empty(),
                "page {page}: owner {:?} and copies {:?}",
                p.owner,
                p.copyset
            );
            if p.txn.is_none() {
                assert!(p.queue.is_empty(), "page {page}: idle with a queue");
            }
            for n in p.granted.keys() {
                assert!(
                    p.owner == Some(*n) || p.copyset.contains(n),
                    "page {page}: a grant to {n}, which does not hold it"
                );
            }
        }
    }

    /// Who holds `page`: its owner and copy set (tests).
    #[cfg(test)]
    pub fn holders(&self, page: u64) -> (Option<u32>, Vec<u32>) {
        self.pages
            .get(&page)
            .map(|p| (p.owner, p.copyset.iter().copied().collect()))
            .unwrap_or((None, Vec::new()))
    }

    /// The home copy of `page` (tests).
    #[cfg(test)]
    pub fn home(&self, page: u64) -> Option<&[u8]> {
        self.pages.get(&page).and_then(|p| p.home.as_deref())
    }
}
