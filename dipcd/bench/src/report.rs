//! From BENCH records to the report: each figure beside its baseline from
//! the same run, the ratio, and the target it is held to.

use crate::load::LoadResult;
use crate::record::Record;
use serde::Serialize;

/// What a ratio is held to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Target {
    /// The ratio must not exceed this.
    AtMost(f64),
    /// The ratio must reach this.
    AtLeast(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtMost(t) => ratio <= t,
            Target::AtLeast(t) => ratio >= t,
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtMost(t) => format!("≤ {t}×"),
            Target::AtLeast(t) => format!("≥ {t}×"),
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Section of the table.
    pub group: &'static str,
    /// What is measured.
    pub figure: String,
    /// Unit of `value` and `baseline`.
    pub unit: String,
    /// dipc's figure (None: missing from the run).
    pub value: Option<f64>,
    /// What it is compared with.
    pub baseline_name: String,
    /// The baseline's figure.
    pub baseline: Option<f64>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// The target for `ratio`, if there is one.
    pub target: Option<Target>,
    /// Whether the target is met.
    pub met: Option<bool>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Table rows.
    pub rows: Vec<Row>,
    /// Correctness checks made on the way (must all hold).
    pub checks: Vec<(String, bool)>,
    /// Figures the run should have produced and did not.
    pub missing: Vec<String>,
}

/// Record lookup with the missing ones remembered.
struct Find<'a> {
    recs: &'a [Record],
    missing: Vec<String>,
}

impl<'a> Find<'a> {
    /// Every record called `name` whose fields include each of `want`.
    fn all(&self, name: &str, want: &[(&str, &str)]) -> Vec<&'a Record> {
        self.recs
            .iter()
            .filter(|r| r.name == name && want.iter().all(|(k, v)| r.field(k) == Some(*v)))
            .collect()
    }

    /// The last such record, noted as missing if there is none.
    fn one(&mut self, name: &str, want: &[(&str, &str)]) -> Option<&'a Record> {
        let r = self.all(name, want).last().copied();
        if r.is_none() {
            let w: Vec<String> = want.iter().map(|(k, v)| format!("{k}={v}")).collect();
            self.missing
                .push(format!("{name} {}", w.join(" ")).trim().to_string());
        }
        r
    }

    /// The mean value of every such record (repeated rounds).
    fn mean(&mut self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let v: Vec<f64> = self.all(name, want).iter().map(|r| r.value).collect();
        if v.is_empty() {
            self.one(name, want);
            return None;
        }
        Some(v.iter().sum::<f64>() / v.len() as f64)
    }
}

struct Builder {
    rows: Vec<Row>,
    group: &'static str,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        figure: &str,
        unit: &str,
        value: Option<f64>,
        baseline_name: &str,
        baseline: Option<f64>,
        target: Option<Target>,
    ) {
        let ratio = match (value, baseline) {
            (Some(v), Some(b)) if b > 0.0 => Some(v / b),
            _ => None,
        };
        self.rows.push(Row {
            group: self.group,
            figure: figure.to_string(),
            unit: unit.to_string(),
            value,
            baseline_name: baseline_name.to_string(),
            baseline,
            ratio,
            target,
            met: match (ratio, target) {
                (Some(r), Some(t)) => Some(t.met(r)),
                _ => None,
            },
        });
    }
}

fn p99(r: Option<&Record>) -> Option<f64> {
    r.and_then(|r| r.num("p99"))
}

fn val(r: Option<&Record>) -> Option<f64> {
    r.map(|r| r.value)
}

fn times(k: f64, v: Option<f64>) -> Option<f64> {
    v.map(|v| k * v)
}

/// The sum of `name` over the `k` nodes of a contention round (one record
/// per node), with the time quantum tag `quantum` (`None`: untagged); noted
/// as missing unless there is exactly one record per node.
fn per_node_sum(f: &mut Find<'_>, name: &str, k: usize, quantum: Option<&str>) -> Option<f64> {
    let ks = k.to_string();
    let v: Vec<&Record> = f
        .all(name, &[("nodes", &ks)])
        .into_iter()
        .filter(|r| r.field("quantum") == quantum)
        .collect();
    if v.len() != k {
        let q = quantum.map_or(String::new(), |q| format!(" quantum={q}"));
        f.missing
            .push(format!("{name} nodes={k}{q} (one per node)"));
        return None;
    }
    Some(v.iter().map(|r| r.value).sum())
}

/// Builds the report from the cluster's records and the referee load run.
pub fn build(recs: &[Record], load: Option<&LoadResult>) -> Report {
    let mut f = Find {
        recs,
        missing: Vec::new(),
    };
    let mut b = Builder {
        rows: Vec::new(),
        group: "",
    };
    let mut checks = Vec::new();

    let rtt_ref = f.one("tcp_rtt_64", &[("pair", "2-1")]);
    let rtt_peer = f.one("tcp_rtt_64", &[("pair", "2-3")]);
    let rtt1k_ref = f.one("tcp_rtt_1024", &[("pair", "2-1")]);
    let rtt1k_peer = f.one("tcp_rtt_1024", &[("pair", "2-3")]);
    let fetch = f.one("tcp_fetch_4096", &[("pair", "2-3")]);
    let rtt_name = "TCP 64 B round trip, node 2 ↔ referee";

    b.group = "Semaphores (node 2; the referee on node 1)";
    let sem_op = f.one("sem_op", &[]);
    let sem_pv = f.one("sem_pv", &[]);
    let sem_pp = f.one("sem_pingpong", &[]);
    b.row(
        "remote semop, one op (median)",
        "µs",
        val(sem_op),
        rtt_name,
        val(rtt_ref),
        Some(Target::AtMost(1.2)),
    );
    b.row(
        "remote semop, one op (p99)",
        "µs",
        p99(sem_op),
        rtt_name,
        p99(rtt_ref),
        None,
    );
    b.row(
        "remote semop P+V (median)",
        "µs",
        val(sem_pv),
        "2 × TCP 64 B round trip",
        times(2.0, val(rtt_ref)),
        Some(Target::AtMost(1.2)),
    );
    b.row(
        "hand-off node 2 → 3 → 2 by V/P on two semaphores (median)",
        "µs",
        val(sem_pp),
        "TCP 64 B round trip, node 2 ↔ 3",
        val(rtt_peer),
        None,
    );

    b.group = "Message queues (1 KiB messages)";
    let msg_rt = f.one("msg_rt_1024", &[]);
    b.row(
        "remote msgsnd + msgrcv (median)",
        "µs",
        val(msg_rt),
        "2 × TCP 1 KiB round trip, node 2 ↔ referee",
        times(2.0, val(rtt1k_ref)),
        Some(Target::AtMost(1.2)),
    );
    b.row(
        "remote msgsnd + msgrcv (p99)",
        "µs",
        p99(msg_rt),
        "2 × TCP 1 KiB round trip (p99)",
        times(2.0, p99(rtt1k_ref)),
        None,
    );
    b.row(
        "ping-pong node 2 ↔ 3 through two queues (median)",
        "µs",
        val(f.one("msg_pingpong_1024", &[])),
        "TCP 1 KiB round trip, node 2 ↔ 3",
        val(rtt1k_peer),
        None,
    );
    b.row(
        "throughput, 4 pipelined senders on node 2, receiver on 3",
        "MB/s",
        val(f.one("msg_tput_1024", &[])),
        "raw TCP stream of 1 KiB writes",
        val(f.one("tcp_stream_1024", &[("pair", "2-3")])),
        Some(Target::AtLeast(0.3)),
    );

    b.group = "Distributed shared memory (pages owned by the other node)";
    let rm = f.one("dsm_read_miss", &[]);
    let fetch_name = "TCP round trip + 4 KiB, node 2 ↔ 3";
    b.row(
        "read-miss fault (median)",
        "µs",
        val(rm),
        fetch_name,
        val(fetch),
        Some(Target::AtMost(1.3)),
    );
    b.row(
        "read-miss fault (p99)",
        "µs",
        p99(rm),
        fetch_name,
        p99(fetch),
        None,
    );
    b.row(
        "write-ownership transfer (median)",
        "µs",
        val(f.one("dsm_write_miss", &[])),
        fetch_name,
        val(fetch),
        Some(Target::AtMost(1.3)),
    );
    b.row(
        "2-node ping-pong on one page, per round (median)",
        "µs",
        val(f.one("dsm_pingpong", &[])),
        "2 × (TCP round trip + 4 KiB)",
        times(2.0, val(fetch)),
        Some(Target::AtMost(2.5)),
    );
    b.row(
        "sequential read of 64 MiB (read-ahead)",
        "MB/s",
        val(f.one("dsm_seqread", &[])),
        "raw TCP stream (64 KiB writes)",
        val(f.one("tcp_stream_65536", &[("pair", "2-3")])),
        Some(Target::AtLeast(0.5)),
    );
    let handoff_page = val(f.one("dsm_handoff", &[("mode", "page")]));
    b.row(
        "hand-off over 3 pages (data, flag, ack), per round (median)",
        "µs",
        handoff_page,
        "3 × (TCP round trip + 4 KiB)",
        times(3.0, val(fetch)),
        None,
    );
    b.row(
        "the same hand-off, whole-segment mode",
        "µs",
        val(f.one("dsm_handoff", &[("mode", "whole")])),
        "page mode",
        handoff_page,
        None,
    );
    let fractal_page = val(f.one("fractal_nodes", &[("mode", "page")]));
    b.row(
        "fractal demo (tests/programs/fractal.c): one node alone",
        "s",
        val(f.one("fractal_alone", &[("mode", "page")])),
        "3 workers on 3 nodes (ratio: speed-up)",
        fractal_page,
        Some(Target::AtLeast(1.8)),
    );
    b.row(
        "fractal demo on 3 nodes, whole-segment mode",
        "s",
        val(f.one("fractal_nodes", &[("mode", "whole")])),
        "page mode",
        fractal_page,
        None,
    );

    b.group = "A race against MPI (tests/programs/race.c, race_mpi.c; one rank per node; ratio: dipc ÷ MPI, or the speed-up)";
    for (name, what, target) in [
        ("race_pi", "π", 1.0),
        ("race_jacobi", "Jacobi stencil", 1.2),
    ] {
        let mut time =
            |imp: &str, k: usize| f.one(name, &[("impl", imp), ("ranks", &k.to_string())]);
        let sysv: Vec<Option<&Record>> = (1..=3).map(|k| time("sysv", k)).collect();
        let mpi: Vec<Option<&Record>> = (1..=3).map(|k| time("mpi", k)).collect();
        for k in 1..=3 {
            let on = format!("{what} on {k} node{}", if k == 1 { "" } else { "s" });
            b.row(
                &format!("{on}: SysV IPC under dipc"),
                "s",
                val(sysv[k - 1]),
                "MPICH, the same nodes",
                val(mpi[k - 1]),
                Some(Target::AtMost(target)),
            );
            if let (Some(a), Some(m)) = (sysv[k - 1], mpi[k - 1]) {
                let (x, y) = (a.field("check"), m.field("check"));
                checks.push((
                    format!(
                        "{on}: dipc's result ({}) equals MPI's ({}) to the last bit",
                        x.unwrap_or("none"),
                        y.unwrap_or("none")
                    ),
                    x.is_some() && x == y,
                ));
            }
        }
        for (imp, runs) in [("dipc", &sysv), ("MPI", &mpi)] {
            for k in 2..=3 {
                b.row(
                    &format!("{what}, {imp}: 1 node"),
                    "s",
                    val(runs[0]),
                    &format!("{k} nodes (ratio: speed-up)"),
                    val(runs[k - 1]),
                    None,
                );
            }
        }
    }

    b.group = "Creating and removing N semaphore sets (node 2; ratio: distributed ÷ local keys)";
    let mut per_object = |what: &str, mode: &str, n: usize| {
        val(f.one(what, &[("mode", mode), ("n", &n.to_string())]))
    };
    let sizes = [100, 10_000, 32_000];
    let mut dipc_create = Vec::new();
    for n in sizes {
        for (what, verb) in [
            ("create", "semget(IPC_CREAT)"),
            ("remove", "semctl(IPC_RMID)"),
        ] {
            let v = per_object(what, "dipc", n);
            if what == "create" {
                dipc_create.push(v);
            }
            b.row(
                &format!("{verb}, N = {n} (µs per set)"),
                "µs",
                v,
                "the same with local keys",
                per_object(what, "local", n),
                None,
            );
        }
    }
    b.row(
        "distributed semget, µs per set: N = 32 000",
        "µs",
        dipc_create[2],
        "N = 100 (ratio: growth with N)",
        dipc_create[0],
        Some(Target::AtMost(1.5)),
    );
    b.row(
        "distributed semget, N = 32 000: the last 3 200 (µs per set)",
        "µs",
        per_object("create_last", "dipc", 32_000),
        "the first 3 200 of the same run (ratio: growth within it)",
        per_object("create_first", "dipc", 32_000),
        Some(Target::AtMost(1.5)),
    );

    b.group = "Local (non-distributed) IPC, stress-ng bogo ops/s";
    for s in ["sem-sysv", "msg", "shm-sysv"] {
        let name = format!("local_{s}");
        b.row(
            &format!("stress-ng --{s}, module loaded"),
            "ops/s",
            f.mean(&name, &[("module", "loaded")]),
            "the same, module not loaded",
            f.mean(&name, &[("module", "unloaded")]),
            Some(Target::AtLeast(0.98)),
        );
    }
    for (name, what) in [("hook_semop", "semop"), ("hook_semctl", "semctl(GETVAL)")] {
        b.row(
            &format!("one local {what}, module loaded (ns per call)"),
            "ns",
            f.mean(name, &[("module", "loaded")]),
            "the same, module not loaded",
            f.mean(name, &[("module", "unloaded")]),
            None,
        );
    }

    b.group = "dipc against the same operations on Redis (server on node 1)";
    b.row(
        "semaphore op (median)",
        "µs",
        val(sem_op),
        "Redis RPUSH / BLPOP token",
        val(f.one("redis_sem_op", &[])),
        Some(Target::AtMost(0.8)),
    );
    b.row(
        "semaphore hand-off node 2 → 3 → 2 (median)",
        "µs",
        val(sem_pp),
        "Redis, the same with two lists",
        val(f.one("redis_sem_pingpong", &[])),
        None,
    );
    b.row(
        "queue send + receive, 1 KiB (median)",
        "µs",
        val(msg_rt),
        "Redis LPUSH + BRPOP",
        val(f.one("redis_msg_rt_1024", &[])),
        None,
    );

    b.group = "Contention: k nodes on one semaphore / one page (aggregate)";
    let mut shm_two = None;
    for (name, what) in [
        ("scale_sem", "semaphore P+V"),
        ("scale_shm", "atomic add on one page"),
    ] {
        let one = per_node_sum(&mut f, name, 1, None);
        b.row(&format!("{what}, 1 node"), "ops/s", one, "—", None, None);
        for k in 2..=4 {
            let v = per_node_sum(&mut f, name, k, None);
            if name == "scale_shm" && k == 2 {
                shm_two = v;
            }
            b.row(
                &format!("{what}, {k} nodes"),
                "ops/s",
                v,
                "1 node",
                one,
                None,
            );
        }
    }
    // Two nodes on one page with a 2 ms time quantum on both.
    b.row(
        "atomic add on one page, 2 nodes, time quantum 2 ms",
        "ops/s",
        per_node_sum(&mut f, "scale_shm", 2, Some("2")),
        "2 nodes, no quantum",
        shm_two,
        None,
    );
    for (k, q) in [(1, None), (2, None), (3, None), (4, None), (2, Some("2"))] {
        word_check(
            &mut f,
            &mut checks,
            "scale_shm",
            k,
            q,
            &format!("contention on {k} node(s)"),
        );
    }

    wan(&mut f, &mut b, &mut checks);
    replicated(&mut f, &mut b);

    b.group = "Referee (dipcd on one host core, load from the other)";
    match load {
        Some(l) => {
            b.row(
                &format!(
                    "semop requests, {} connections × {} in flight",
                    l.conns, l.window
                ),
                "ops/s",
                Some(l.ops_per_s),
                "target 200 000 ops/s",
                Some(200_000.0),
                Some(Target::AtLeast(1.0)),
            );
            if let Some(c) = l.ops_per_cpu_s {
                b.row(
                    "the same per referee CPU second",
                    "ops/s",
                    Some(c),
                    "target 200 000 ops/s",
                    Some(200_000.0),
                    None,
                );
            }
            checks.push((
                format!("referee load: {} of {} operations failed", l.errors, l.ops),
                l.errors == 0,
            ));
        }
        None => f.missing.push("referee load".into()),
    }

    Report {
        rows: b.rows,
        checks,
        missing: f.missing,
    }
}

/// bench/wan.scenario: the main latencies with a 50 ms round trip between
/// every two nodes (netem), against that profile's own TCP figures, and the
/// time quantum's effect there (its records are named `wan50_*`).
fn wan(f: &mut Find<'_>, b: &mut Builder, checks: &mut Vec<(String, bool)>) {
    b.group = "Wide-area link (netem: 50 ms round trip between every two nodes)";
    let rtt = f.one("wan50_tcp_rtt_64", &[("pair", "2-1")]);
    let rtt1k = f.one("wan50_tcp_rtt_1024", &[("pair", "2-1")]);
    let fetch = f.one("wan50_tcp_fetch_4096", &[("pair", "2-3")]);
    b.row(
        "remote semop, one op (median)",
        "µs",
        val(f.one("wan50_sem_op", &[])),
        "TCP 64 B round trip under the profile, node 2 ↔ referee",
        val(rtt),
        None,
    );
    b.row(
        "remote msgsnd + msgrcv, 1 KiB (median)",
        "µs",
        val(f.one("wan50_msg_rt_1024", &[])),
        "2 × TCP 1 KiB round trip under the profile",
        times(2.0, val(rtt1k)),
        None,
    );
    b.row(
        "DSM read-miss fault, page owned by node 3 (median)",
        "µs",
        val(f.one("wan50_dsm_read_miss", &[])),
        "TCP round trip + 4 KiB under the profile, node 2 ↔ 3",
        val(fetch),
        None,
    );
    let plain = per_node_sum(f, "wan50_scale_shm", 2, None);
    b.row(
        "atomic add on one page, 2 nodes, time quantum 50 ms",
        "ops/s",
        per_node_sum(f, "wan50_scale_shm", 2, Some("50")),
        "2 nodes, no quantum",
        plain,
        None,
    );
    for q in [None, Some("50")] {
        word_check(f, checks, "wan50_scale_shm", 2, q, "50 ms link, 2 nodes");
    }
}

/// Three replicated referees against one (bench/replicated.scenario: the
/// same cluster, the same calls, `rep1_*` and `rep3_*`), and the failover.
fn replicated(f: &mut Find<'_>, b: &mut Builder) {
    b.group = "Replicated referees (3, Raft) against one referee, both syncing before answering";
    for (figure, name) in [
        ("remote semop, one op (median)", "sem_op"),
        ("remote msgsnd + msgrcv, 1 KiB (median)", "msg_rt_1024"),
        (
            "DSM read-miss fault, page owned by node 3 (median)",
            "dsm_read_miss",
        ),
    ] {
        let one = val(f.one(&format!("rep1_{name}"), &[]));
        b.row(
            &format!("{figure}, 3 replicas"),
            "µs",
            val(f.one(&format!("rep3_{name}"), &[])),
            "one referee, the same cluster",
            one,
            None,
        );
    }
    b.row(
        "failover: leader killed → first call answered by the next",
        "ms",
        val(f.one("rep3_failover", &[])),
        "one election timeout (10 ticks of 100 ms, the least a follower waits)",
        Some(1000.0),
        None,
    );
}

/// The check that every atomic add of the `name` records of `k` nodes
/// (with time quantum tag `quantum`; `None`: untagged) is in the shared
/// word, which `dipcbench shm-word` printed as `name_total`; `what` names
/// the run. A missing word is noted as missing.
fn word_check(
    f: &mut Find<'_>,
    checks: &mut Vec<(String, bool)>,
    name: &str,
    k: usize,
    quantum: Option<&str>,
    what: &str,
) {
    let ks = k.to_string();
    let adds: f64 = f
        .all(name, &[("nodes", &ks)])
        .iter()
        .filter(|r| r.field("quantum") == quantum)
        .filter_map(|r| r.num("ops"))
        .sum();
    let total = format!("{name}_total");
    match f
        .all(&total, &[("nodes", &ks)])
        .into_iter()
        .rfind(|r| r.field("quantum") == quantum)
    {
        Some(word) => checks.push((
            format!(
                "{what}{}: the shared word ({}) equals the increments made ({adds})",
                quantum.map_or(String::new(), |q| format!(", quantum {q} ms")),
                word.value
            ),
            word.value == adds,
        )),
        None => f.missing.push(format!(
            "{total} nodes={k}{}",
            quantum.map_or(String::new(), |q| format!(" quantum={q}"))
        )),
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "missing".into(),
        Some(v) if v >= 1000.0 => {
            let s = format!("{:.0}", v);
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push('\u{202f}');
                }
                out.push(c);
            }
            out
        }
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// The report as a Markdown table, one section per group.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let mut group = "";
    for row in &r.rows {
        if row.group != group {
            group = row.group;
            s.push_str(&format!(
                "\n**{group}**\n\n| figure | dipc | baseline | ratio | target |\n|---|---:|---|---:|---|\n"
            ));
        }
        let base = match row.baseline {
            Some(b) => format!("{} {} ({})", num(Some(b)), row.unit, row.baseline_name),
            None => row.baseline_name.clone(),
        };
        let ratio = row
            .ratio
            .map(|x| format!("{x:.2}×"))
            .unwrap_or_else(|| "—".into());
        let target = match (row.target, row.met) {
            (Some(t), Some(true)) => format!("{} met", t.text()),
            (Some(t), Some(false)) => format!("{} **missed**", t.text()),
            (Some(t), None) => t.text(),
            (None, _) => String::new(),
        };
        s.push_str(&format!(
            "| {} | {} {} | {} | {} | {} |\n",
            row.figure,
            num(row.value),
            row.unit,
            base,
            ratio,
            target
        ));
    }
    if !r.checks.is_empty() {
        s.push_str("\nChecks: ");
        let c: Vec<String> = r
            .checks
            .iter()
            .map(|(t, ok)| format!("{} {t}", if *ok { "✓" } else { "✗" }))
            .collect();
        s.push_str(&c.join("; "));
        s.push('\n');
    }
    if !r.missing.is_empty() {
        s.push_str(&format!(
            "\nMissing from this run: {}\n",
            r.missing.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse;

    fn q() -> String {
        (0..=100)
            .map(|i| (i * 10).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn ratios_targets_and_missing() {
        let log = format!(
            "  node2| BENCH tcp_rtt_64 unit=us value=500 p99=900 q={q} pair=2-1\n\
             \x20 node2| BENCH sem_op unit=us value=550 p99=1000 q={q}\n\
             \x20 node2| BENCH sem_pv unit=us value=1500 p99=2000 q={q}\n\
             \x20 node2| BENCH local_msg unit=ops/s value=100 module=unloaded\n\
             \x20 node2| BENCH local_msg unit=ops/s value=300 module=unloaded\n\
             \x20 node2| BENCH local_msg unit=ops/s value=196 module=loaded\n\
             \x20 node2| BENCH scale_shm unit=ops/s value=10 nodes=2 ops=50\n\
             \x20 node3| BENCH scale_shm unit=ops/s value=20 nodes=2 ops=70\n\
             \x20 node2| BENCH scale_shm_total unit=ops value=121 nodes=2\n",
            q = q()
        );
        let r = build(&parse(&log), None);
        let row = |name: &str| {
            r.rows
                .iter()
                .find(|x| x.figure == name)
                .expect(name)
                .clone()
        };
        let op = row("remote semop, one op (median)");
        assert_eq!(op.ratio, Some(1.1));
        assert_eq!(op.met, Some(true));
        let pv = row("remote semop P+V (median)");
        assert_eq!(pv.baseline, Some(1000.0));
        assert_eq!(pv.met, Some(false));
        let local = row("stress-ng --msg, module loaded");
        assert_eq!(local.baseline, Some(200.0));
        assert_eq!(local.ratio, Some(0.98));
        assert_eq!(local.met, Some(true));
        assert_eq!(row("atomic add on one page, 2 nodes").value, Some(30.0));
        assert_eq!(r.checks.len(), 1);
        assert!(!r.checks[0].1, "121 != 50 + 70");
        assert!(r.missing.iter().any(|m| m == "dsm_read_miss"));
        assert!(r.missing.iter().any(|m| m == "referee load"));
        assert!(r.missing.iter().any(|m| m == "rep3_failover"));
        let md = markdown(&r);
        assert!(md.contains("| remote semop, one op (median) | 550 µs | 500 µs"));
        assert!(md.contains("**missed**"));
        assert!(md.contains("Missing from this run:"));
    }

    #[test]
    fn replicated_against_one_referee() {
        let log = format!(
            "  node2| BENCH rep_tcp_rtt_64 unit=us value=500 p99=900 q={q} pair=2-1\n\
             \x20 node2| BENCH rep1_sem_op unit=us value=1000 p99=2000 q={q}\n\
             \x20 node2| BENCH rep3_sem_op unit=us value=1500 p99=2000 q={q}\n\
             \x20 node2| BENCH rep3_failover unit=ms value=2500 ops=100\n",
            q = q()
        );
        let r = build(&parse(&log), None);
        let row = |name: &str| {
            r.rows
                .iter()
                .find(|x| x.figure == name)
                .expect(name)
                .clone()
        };
        assert_eq!(
            row("remote semop, one op (median), 3 replicas").ratio,
            Some(1.5)
        );
        let fo = row("failover: leader killed → first call answered by the next");
        assert_eq!((fo.value, fo.ratio), (Some(2500.0), Some(2.5)));
        assert!(r.missing.iter().any(|m| m == "rep1_msg_rt_1024"));
    }

    #[test]
    fn race_against_mpi() {
        let mut log = String::new();
        for (k, sysv, mpi, check) in [(1, 10.0, 9.0, "0x1p+1"), (2, 6.0, 5.0, "0x1p+1")] {
            log += &format!(
                "  node2| BENCH race_jacobi unit=s value={sysv} impl=sysv ranks={k} check={check}\n\
                 \x20 node2| BENCH race_jacobi unit=s value={mpi} impl=mpi ranks={k} check=0x1p+1\n"
            );
        }
        log += "  node2| BENCH race_jacobi unit=s value=4 impl=sysv ranks=3 check=0x1.8p+1\n\
                \x20 node2| BENCH race_jacobi unit=s value=4 impl=mpi ranks=3 check=0x1p+1\n";
        let r = build(&parse(&log), None);
        let row = |name: &str, base: &str| {
            r.rows
                .iter()
                .find(|x| x.figure == name && x.baseline_name == base)
                .expect(name)
                .clone()
        };
        let one = row(
            "Jacobi stencil on 1 node: SysV IPC under dipc",
            "MPICH, the same nodes",
        );
        assert_eq!(one.value, Some(10.0));
        assert_eq!(one.baseline, Some(9.0));
        assert_eq!(one.met, Some(true));
        let two = row(
            "Jacobi stencil on 2 nodes: SysV IPC under dipc",
            "MPICH, the same nodes",
        );
        assert_eq!(two.ratio, Some(1.2));
        let speed = row("Jacobi stencil, dipc: 1 node", "3 nodes (ratio: speed-up)");
        assert_eq!(speed.ratio, Some(2.5));
        let race: Vec<_> = r
            .checks
            .iter()
            .filter(|c| c.0.starts_with("Jacobi"))
            .collect();
        assert_eq!(race.len(), 3);
        assert!(race[0].1 && race[1].1);
        assert!(!race[2].1, "0x1.8p+1 != 0x1p+1");
        assert!(r.missing.iter().any(|m| m == "race_pi impl=sysv ranks=1"));
    }
}
