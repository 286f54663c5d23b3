//! `dipc-bench`: the host side of `make bench`.
//!
//! * `dipc-bench load` drives a running `dipcd` with simulated nodes and
//!   prints its throughput (see [`load`]).
//! * `dipc-bench report` reads the BENCH lines of the cluster runs (see
//!   `tests/programs/bench.h`), sets each figure beside its baseline from
//!   the same run, prints the table, writes `bench/results/DATE.json`, draws
//!   the SVG plots and puts the table into the README.

mod load;
mod record;
mod report;
mod svg;

use clap::{Parser, Subcommand};
use record::Record;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use svg::{Axis, Series};

#[derive(Parser)]
#[command(name = "dipc-bench", about = "make bench's host side")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load a running referee with semop requests and report ops/s.
    Load {
        /// The referee's address.
        #[arg(long, default_value = "127.0.0.1:7420")]
        referee: std::net::SocketAddr,
        /// Connections, each a simulated node.
        #[arg(long, default_value_t = 8)]
        conns: usize,
        /// Requests in flight per connection.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// The semaphore set's key.
        #[arg(long, default_value_t = 0x5eed)]
        key: i32,
        /// The referee's pid, for its CPU time.
        #[arg(long)]
        pid: Option<u32>,
        /// Also write the result here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Build the report from cluster logs and a load result.
    Report {
        /// Cluster runner output files holding BENCH lines.
        #[arg(long = "log", required = true)]
        logs: Vec<PathBuf>,
        /// The `load --json` result.
        #[arg(long)]
        load: Option<PathBuf>,
        /// Date of the run (names the results file).
        #[arg(long)]
        date: String,
        /// `key=value` facts about the run (commit, accelerator, host).
        #[arg(long = "meta")]
        meta: Vec<String>,
        /// Where DATE.json goes.
        #[arg(long, default_value = "bench/results")]
        results: PathBuf,
        /// Where the SVG plots go.
        #[arg(long, default_value = "bench/plots")]
        plots: PathBuf,
        /// A Markdown file whose `<!-- bench:begin -->` … `<!-- bench:end -->`
        /// section gets the table.
        #[arg(long)]
        readme: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("dipc-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<bool, String> {
    match cli.cmd {
        Cmd::Load {
            referee,
            conns,
            window,
            secs,
            key,
            pid,
            json,
        } => {
            let r = load::run(referee, conns.max(1), window, secs, key, pid)
                .map_err(|e| format!("load: {e}"))?;
            println!(
                "BENCH referee_load unit=ops/s value={:.0} conns={} window={} ops={} errors={}{}",
                r.ops_per_s,
                r.conns,
                r.window,
                r.ops,
                r.errors,
                r.ops_per_cpu_s
                    .map(|c| format!(" per_cpu_s={c:.0}"))
                    .unwrap_or_default()
            );
            if let Some(p) = json {
                let text = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
                std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            Ok(r.errors == 0)
        }
        Cmd::Report {
            logs,
            load,
            date,
            meta,
            results,
            plots,
            readme,
        } => {
            let mut recs = Vec::new();
            for l in &logs {
                let text =
                    std::fs::read_to_string(l).map_err(|e| format!("{}: {e}", l.display()))?;
                recs.extend(record::parse(&text));
            }
            let load: Option<load::LoadResult> = match load {
                Some(p) => {
                    let text =
                        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                    Some(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?)
                }
                None => None,
            };
            let rep = report::build(&recs, load.as_ref());
            let md = report::markdown(&rep);
            println!("{md}");
            let meta: serde_json::Map<String, serde_json::Value> = meta
                .iter()
                .filter_map(|m| m.split_once('='))
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect();
            std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
            let out = results.join(format!("{date}.json"));
            let json = serde_json::json!({
                "date": date,
                "meta": meta,
                "rows": rep.rows,
                "checks": rep.checks,
                "missing": rep.missing,
                "load": load,
                "records": recs,
            });
            let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
            std::fs::write(&out, text + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
            println!("results: {}", out.display());
            let files = draw(&recs, &plots)?;
            for f in &files {
                println!("plot: {}", f.display());
            }
            if let Some(readme) = readme {
                let plots_rel: Vec<String> = files
                    .iter()
                    .map(|f| f.to_string_lossy().into_owned())
                    .collect();
                update_readme(&readme, &date, &meta, &md, &plots_rel)?;
                println!("table: {}", readme.display());
            }
            Ok(rep.missing.is_empty() && rep.checks.iter().all(|c| c.1))
        }
    }
}

/// A latency distribution as a CDF: (latency, percentile) points.
fn cdf(r: &Record) -> Vec<(f64, f64)> {
    r.q.as_ref()
        .map(|q| q.iter().enumerate().map(|(i, &v)| (v, i as f64)).collect())
        .unwrap_or_default()
}

fn find<'a>(recs: &'a [Record], name: &str, pair: Option<&str>) -> Option<&'a Record> {
    recs.iter()
        .rev()
        .find(|r| r.name == name && pair.is_none_or(|p| r.field("pair") == Some(p)))
}

fn cdfs(recs: &[Record], want: &[(&str, Option<&str>, &str)]) -> Vec<Series> {
    want.iter()
        .filter_map(|(name, pair, label)| {
            find(recs, name, *pair).map(|r| Series {
                name: label.to_string(),
                points: cdf(r),
            })
        })
        .collect()
}

/// Draws the plots into `dir`; returns their paths.
fn draw(recs: &[Record], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pct = || Axis {
        label: "percentile".into(),
        log: false,
    };
    let us = || Axis {
        label: "latency (µs, log scale)".into(),
        log: true,
    };
    let mut charts = vec![
        (
            "latency-remote-ops.svg",
            svg::chart(
                "Remote operations from node 2: latency distribution",
                &us(),
                &pct(),
                &cdfs(
                    recs,
                    &[
                        ("tcp_rtt_64", Some("2-1"), "TCP 64 B round trip"),
                        ("sem_op", None, "dipc semop"),
                        ("redis_sem_op", None, "Redis RPUSH/BLPOP"),
                        ("tcp_rtt_1024", Some("2-1"), "TCP 1 KiB round trip"),
                        ("msg_rt_1024", None, "dipc msgsnd+msgrcv 1 KiB"),
                        ("redis_msg_rt_1024", None, "Redis LPUSH+BRPOP 1 KiB"),
                    ],
                ),
            ),
        ),
        (
            "latency-dsm.svg",
            svg::chart(
                "DSM faults on node 2, page owned by node 3",
                &us(),
                &pct(),
                &cdfs(
                    recs,
                    &[
                        ("tcp_fetch_4096", Some("2-3"), "TCP round trip + 4 KiB"),
                        ("dsm_read_miss", None, "DSM read miss"),
                        ("dsm_write_miss", None, "DSM write ownership"),
                        ("dsm_pingpong", None, "DSM ping-pong round"),
                    ],
                ),
            ),
        ),
    ];
    let by_size = |prefix: &str| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = recs
            .iter()
            .filter(|r| r.name.starts_with(prefix) && r.field("pair").is_none_or(|p| p == "2-3"))
            .filter_map(|r| Some((r.num("size")?, r.value)))
            .filter(|p| p.0 <= 8192.0)
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    };
    charts.push((
        "throughput-msg-size.svg",
        svg::chart(
            "Message throughput, node 2 → node 3, against message size",
            &Axis {
                label: "message size (bytes, log scale)".into(),
                log: true,
            },
            &Axis {
                label: "MB/s (log scale)".into(),
                log: true,
            },
            &[
                Series {
                    name: "raw TCP stream".into(),
                    points: by_size("tcp_stream_"),
                },
                Series {
                    name: "dipc queue, 4 senders".into(),
                    points: by_size("msg_tput_"),
                },
            ],
        ),
    ));
    let scale = |name: &str| -> Vec<(f64, f64)> {
        (1..=4)
            .filter_map(|k| {
                let ks = k.to_string();
                let v: Vec<f64> = recs
                    .iter()
                    .filter(|r| r.name == name && r.field("nodes") == Some(&ks))
                    .map(|r| r.value)
                    .collect();
                (v.len() == k).then(|| (k as f64, v.iter().sum()))
            })
            .collect()
    };
    charts.push((
        "scaling.svg",
        svg::chart(
            "k nodes contending on one object (aggregate rate)",
            &Axis {
                label: "nodes".into(),
                log: false,
            },
            &Axis {
                label: "ops/s (log scale)".into(),
                log: true,
            },
            &[
                Series {
                    name: "semaphore P+V".into(),
                    points: scale("scale_sem"),
                },
                Series {
                    name: "atomic add, one page".into(),
                    points: scale("scale_shm"),
                },
            ],
        ),
    ));
    let mut out = Vec::new();
    for (name, text) in charts {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

fn update_readme(
    path: &Path,
    date: &str,
    meta: &serde_json::Map<String, serde_json::Value>,
    table: &str,
    plots: &[String],
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!("{}: no {BEGIN} … {END} section", path.display()));
    };
    if e < b {
        return Err(format!("{}: {END} before {BEGIN}", path.display()));
    }
    let facts: Vec<String> = meta
        .iter()
        .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or_default()))
        .collect();
    let images: Vec<String> = plots.iter().map(|p| format!("![{p}]({p})")).collect();
    let section = format!(
        "{BEGIN}\n_Measured {date} by `make bench` ({}); the full record is \
         `bench/results/{date}.json`._\n{table}\n{}\n{END}",
        facts.join(", "),
        images.join("\n")
    );
    let new = format!("{}{}{}", &text[..b], section, &text[e + END.len()..]);
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))
}
