//! The referee's metrics: counters and latency histograms, kept with
//! relaxed atomics on the paths they measure and read over the control
//! socket (`metrics`, shown by `dipcctl metrics`).
//!
//! Latencies go into histograms with power-of-two buckets in microseconds
//! (1, 2, 4, ... µs, the last one unbounded): a percentile is reported as
//! the upper bound of the bucket it falls in, so it is exact to within a
//! factor of two and never below the true value (capped at the maximum
//! seen).

use dipc_wire::{decode, decode_header, Frame, Kind};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets per histogram: bounds 2^0 .. 2^(BUCKETS-2) µs (about 67 s),
/// then one for everything longer.
pub const BUCKETS: usize = 28;
/// Frame kinds are below this (the wire's kinds are 1..=29).
const KINDS: usize = 32;
/// Page requests tracked at once for the grant latency; more are not
/// timed (a node can send any number, and each costs memory).
const MAX_PAGE_TIMERS: usize = 65_536;

/// A latency histogram.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

/// The bucket of a latency of `us` microseconds: the first whose bound is
/// at least `us`.
pub fn bucket(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    ((64 - (us - 1).leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `i` in µs (`None`: unbounded).
pub fn bound(i: usize) -> Option<u64> {
    (i < BUCKETS - 1).then(|| 1u64 << i)
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// A copy, with its percentiles.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        // The count is the buckets' sum, so the percentiles agree with the
        // buckets even while observations arrive.
        let count: u64 = counts.iter().sum();
        let max_us = self.max_us.load(Relaxed);
        let percentile = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let rank = ((q * count as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bound(i).map_or(max_us, |b| b.min(max_us));
                }
            }
            max_us
        };
        HistogramSnapshot {
            count,
            sum_us: self.sum_us.load(Relaxed),
            max_us,
            p50_us: percentile(0.50),
            p90_us: percentile(0.90),
            p99_us: percentile(0.99),
            buckets: counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(i, &c)| Bucket {
                    le_us: bound(i),
                    count: c,
                })
                .collect(),
        }
    }
}

/// One non-empty bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Upper bound in µs (`null`: longer than every bound).
    pub le_us: Option<u64>,
    /// Observations in it.
    pub count: u64,
}

/// A histogram as the control socket reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistogramSnapshot {
    /// Observations.
    pub count: u64,
    /// Their sum in µs (the mean is `sum_us / count`).
    pub sum_us: u64,
    /// The longest, in µs.
    pub max_us: u64,
    /// Median, 90th and 99th percentile: the bound of their bucket.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// The non-empty buckets, shortest first.
    pub buckets: Vec<Bucket>,
}

/// Everything counted since the referee started.
pub struct Metrics {
    started: Instant,
    /// TCP connections accepted (allowed by the allow list).
    connections: AtomicU64,
    /// Peers refused by the allow list.
    refused: AtomicU64,
    /// Connections closed for a malformed frame.
    bad_frames: AtomicU64,
    /// Hellos accepted: new sessions and resumed ones.
    joins: AtomicU64,
    /// Of `joins`, those that resumed a held session.
    resumes: AtomicU64,
    /// Sessions ended because a node died or did not come back.
    nodes_gone: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    frames_in: [AtomicU64; KINDS],
    /// Per node a frame was sent to (a broadcast counts once per node).
    frames_out: [AtomicU64; KINDS],
    /// Time to carry out each request at the referee, from its frame to
    /// its effects queued (its log record included; with `--fsync always`
    /// the sync is in `fsync`), by frame kind. A request that sleeps (a
    /// blocking semop) is counted until it is put to sleep.
    request: [Histogram; KINDS],
    /// From a page request to the grant that answers it: the referee's
    /// share of a remote fault, invalidation round trips included.
    page_grant: Histogram,
    /// Syncs of the log.
    fsync: Histogram,
    /// When each page request being served arrived, by (node, oid, page).
    page_started: Mutex<HashMap<(u32, u64, u64), Instant>>,
    /// Invalidations that asked an owner to send the page to a requester
    /// itself, by transaction: the owner's ack with `sent` grants the
    /// page, and stops the requester's timer.
    page_direct: Mutex<HashMap<u64, (u32, u64, u64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            nodes_gone: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames_in: [const { AtomicU64::new(0) }; KINDS],
            frames_out: [const { AtomicU64::new(0) }; KINDS],
            request: std::array::from_fn(|_| Histogram::default()),
            page_grant: Histogram::default(),
            fsync: Histogram::default(),
            page_started: Mutex::new(HashMap::new()),
            page_direct: Mutex::new(HashMap::new()),
        }
    }
}

/// A frame kind's name in the metrics: `SemOp` is `sem_op`.
pub fn kind_name(kind: Kind) -> String {
    let mut out = String::new();
    for (i, c) in format!("{kind:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every frame kind the wire knows, by number.
fn kinds() -> impl Iterator<Item = (usize, Kind)> {
    (0..KINDS).filter_map(|i| Some((i, Kind::try_from(i as u16).ok()?)))
}

/// The metrics as the control socket reports them.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Seconds since the referee started.
    pub uptime_s: u64,
    /// Event counters.
    pub counters: BTreeMap<&'static str, u64>,
    /// Frames received, by kind (kinds never seen are left out).
    pub frames_in: BTreeMap<String, u64>,
    /// Frames sent, by kind.
    pub frames_out: BTreeMap<String, u64>,
    /// Request handling time by frame kind (kinds never seen left out).
    pub request_us: BTreeMap<String, HistogramSnapshot>,
    /// Page request to grant.
    pub page_grant_us: HistogramSnapshot,
    /// Log syncs.
    pub fsync_us: HistogramSnapshot,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// A connection was accepted.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Relaxed);
    }

    /// A peer outside the allow list was refused.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    /// A connection was closed for a malformed frame.
    pub fn bad_frame(&self) {
        self.bad_frames.fetch_add(1, Relaxed);
    }

    /// A node's hello was accepted.
    pub fn joined(&self, resumed: bool) {
        self.joins.fetch_add(1, Relaxed);
        if resumed {
            self.resumes.fetch_add(1, Relaxed);
        }
    }

    /// Node `node`'s session ended: its page requests will not be granted.
    pub fn node_gone(&self, node: u32) {
        self.nodes_gone.fetch_add(1, Relaxed);
        lock(&self.page_started).retain(|&(n, _, _), _| n != node);
        lock(&self.page_direct).retain(|_, &mut (n, _, _)| n != node);
    }

    /// A frame arrived (`len` bytes, request id `req_id`). A page request
    /// starts its timer; an ack saying the owner sent the page itself
    /// stops the requester's.
    pub fn frame_in(&self, node: Option<u32>, frame: &Frame<'_>, req_id: u64, len: usize) {
        self.bytes_in.fetch_add(len as u64, Relaxed);
        if let Some(c) = self.frames_in.get(frame.kind() as usize) {
            c.fetch_add(1, Relaxed);
        }
        if let (Some(node), Frame::PageReq(p)) = (node, frame) {
            let mut started = lock(&self.page_started);
            if started.len() < MAX_PAGE_TIMERS {
                // A request sent again keeps the first one's time.
                started
                    .entry((node, p.oid, p.page))
                    .or_insert_with(Instant::now);
            }
        }
        if let Frame::PageAck(a) = frame {
            let Some(to) = lock(&self.page_direct).remove(&req_id) else {
                return;
            };
            if a.sent != 0 {
                if let Some(t) = lock(&self.page_started).remove(&to) {
                    self.page_grant.observe(t.elapsed());
                }
            }
        }
    }

    /// The encoded frame `bytes` goes to `nodes` nodes (to `to` when it
    /// is addressed to one). A page grant stops its request's timer.
    pub fn frame_out(&self, to: Option<u32>, bytes: &[u8], nodes: usize) {
        let Ok(h) = decode_header(bytes) else {
            return;
        };
        self.bytes_out
            .fetch_add((bytes.len() * nodes) as u64, Relaxed);
        if let Some(c) = self.frames_out.get(h.kind as usize) {
            c.fetch_add(nodes as u64, Relaxed);
        }
        if h.kind != Kind::PageGrant && h.kind != Kind::PageInval {
            return;
        }
        let (Some(node), Ok((m, _))) = (to, decode(bytes)) else {
            return;
        };
        match m.frame {
            Frame::PageGrant(g) => {
                if let Some(t) = lock(&self.page_started).remove(&(node, g.oid, g.page)) {
                    self.page_grant.observe(t.elapsed());
                }
            }
            Frame::PageInval(i) if i.to_node != 0 => {
                let mut direct = lock(&self.page_direct);
                if direct.len() < MAX_PAGE_TIMERS {
                    direct.insert(m.req_id, (i.to_node, i.oid, i.page));
                }
            }
            _ => {}
        }
    }

    /// A request of `kind` took `d` to carry out.
    pub fn request(&self, kind: Kind, d: Duration) {
        if let Some(h) = self.request.get(kind as usize) {
            h.observe(d);
        }
    }

    /// A log sync took `d`.
    pub fn fsync(&self, d: Duration) {
        self.fsync.observe(d);
    }

    /// Everything, for the control socket.
    pub fn snapshot(&self) -> Snapshot {
        let counters = [
            ("connections", &self.connections),
            ("refused", &self.refused),
            ("bad_frames", &self.bad_frames),
            ("joins", &self.joins),
            ("resumes", &self.resumes),
            ("nodes_gone", &self.nodes_gone),
            ("bytes_in", &self.bytes_in),
            ("bytes_out", &self.bytes_out),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.load(Relaxed)))
        .chain([("page_requests_timed", lock(&self.page_started).len() as u64)])
        .collect();
        let by_kind = |a: &[AtomicU64; KINDS]| {
            kinds()
                .filter_map(|(i, k)| {
                    let n = a[i].load(Relaxed);
                    (n > 0).then(|| (kind_name(k), n))
                })
                .collect()
        };
        Snapshot {
            uptime_s: self.started.elapsed().as_secs(),
            counters,
            frames_in: by_kind(&self.frames_in),
            frames_out: by_kind(&self.frames_out),
            request_us: kinds()
                .filter_map(|(i, k)| {
                    let s = self.request[i].snapshot();
                    (s.count > 0).then(|| (kind_name(k), s))
                })
                .collect(),
            page_grant_us: self.page_grant.snapshot(),
            fsync_us: self.fsync.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dipc_wire::{PageAck, PageData, PageGrant, PageInval, PageReq};

    #[test]
    fn latencies_fall_in_power_of_two_buckets() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 2);
        assert_eq!(bucket(5), 3);
        assert_eq!(bucket(1 << 20), 20);
        assert_eq!(bucket((1 << 20) + 1), 21);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for us in [1u64, 2, 3, 100, 1000, 65_000, 1 << 25] {
            let b = bound(bucket(us)).unwrap();
            assert!(us <= b && (b == 1 || us > b / 2), "{us} in bucket of {b}");
        }
        assert_eq!(bound(BUCKETS - 1), None);
    }

    #[test]
    fn percentiles_are_bucket_bounds_capped_at_the_maximum() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().p99_us, 0);
        // 90 fast (3 µs: bucket <= 4), 9 slower (100 µs: <= 128), 1 slow
        // (5000 µs: <= 8192).
        for _ in 0..90 {
            h.observe(Duration::from_micros(3));
        }
        for _ in 0..9 {
            h.observe(Duration::from_micros(100));
        }
        h.observe(Duration::from_micros(5000));
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.sum_us, 90 * 3 + 9 * 100 + 5000);
        assert_eq!(s.max_us, 5000);
        assert_eq!((s.p50_us, s.p90_us, s.p99_us), (4, 4, 128));
        assert_eq!(
            s.buckets,
            vec![
                Bucket {
                    le_us: Some(4),
                    count: 90
                },
                Bucket {
                    le_us: Some(128),
                    count: 9
                },
                Bucket {
                    le_us: Some(8192),
                    count: 1
                },
            ]
        );
        // One observation alone: its bucket's bound is above the maximum,
        // so the maximum is reported.
        let one = Histogram::default();
        one.observe(Duration::from_micros(5000));
        assert_eq!(one.snapshot().p50_us, 5000);
    }

    #[test]
    fn a_grant_stops_its_page_request_timer() {
        let m = Metrics::default();
        let req = Frame::PageReq(PageReq {
            oid: 7,
            page: 3,
            write: 1,
            whole: 0,
            applied: 0,
        });
        m.frame_in(Some(2), &req, 0, 40);
        // Sent again: still one timer.
        m.frame_in(Some(2), &req, 0, 40);
        assert_eq!(m.snapshot().counters["page_requests_timed"], 1);
        let grant = |node_page: u64| {
            let f = Frame::PageGrant(PageGrant {
                oid: 7,
                page: node_page,
                write: 1,
                result: 0,
                after: 0,
                data: PageData::Zero,
            });
            let mut b = vec![0u8; f.encoded_len()];
            let n = f.encode(0, &mut b).unwrap();
            b.truncate(n);
            b
        };
        // A grant of another page, or to another node, does not stop it.
        m.frame_out(Some(2), &grant(4), 1);
        m.frame_out(Some(3), &grant(3), 1);
        assert_eq!(m.snapshot().page_grant_us.count, 0);
        m.frame_out(Some(2), &grant(3), 1);
        let s = m.snapshot();
        assert_eq!(s.page_grant_us.count, 1);
        assert_eq!(s.counters["page_requests_timed"], 0);
        assert_eq!(s.frames_in["page_req"], 2);
        assert_eq!(s.frames_out["page_grant"], 3);
        // A node that goes takes its timers with it.
        m.frame_in(Some(5), &req, 0, 40);
        m.node_gone(5);
        assert_eq!(m.snapshot().counters["page_requests_timed"], 0);
        // A page the owner sends the requester itself: the owner's ack
        // with `sent`, under the invalidation's transaction, stops the
        // requester's timer; one without `sent` does not.
        m.frame_in(Some(2), &req, 0, 40);
        let inval = Frame::PageInval(PageInval {
            oid: 7,
            page: 3,
            keep_read: 0,
            want_data: 1,
            after: 0,
            to_node: 2,
            to_ip: 1,
            to_port: 7440,
            to_token: [0; 16],
        });
        let mut b = vec![0u8; inval.encoded_len()];
        inval.encode(9, &mut b).unwrap();
        m.frame_out(Some(4), &b, 1);
        let page = [0u8; dipc_wire::PAGE_LEN];
        let ack = |sent| {
            Frame::PageAck(PageAck {
                oid: 7,
                page: 3,
                data: Some(&page),
                sent,
            })
        };
        m.frame_in(Some(4), &ack(0), 8, 4200);
        assert_eq!(m.snapshot().counters["page_requests_timed"], 1);
        m.frame_in(Some(4), &ack(1), 9, 4200);
        let s = m.snapshot();
        assert_eq!(s.counters["page_requests_timed"], 0);
        assert_eq!(s.page_grant_us.count, 2);
        assert_eq!(m.snapshot().counters["nodes_gone"], 1);
    }

    #[test]
    fn kind_names_are_snake_case() {
        assert_eq!(kind_name(Kind::SemOp), "sem_op");
        assert_eq!(kind_name(Kind::Get), "get");
        assert_eq!(kind_name(Kind::PageGrant), "page_grant");
        assert_eq!(kinds().count(), 31);
    }
}
