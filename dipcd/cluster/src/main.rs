//! `dipc-cluster`: boots N QEMU guests on one machine, connected on one
//! virtual network (10.0.0.N/24, no root set-up), runs a scenario on them, and
//! reports every node's output and exit status. QEMU always dies with it.
//!
//! The guests run `tests/guest/init`, whose agent executes the commands this
//! runner sends over a second serial port.

mod accel;
mod clock;
mod guest;
mod scenario;

use clap::Parser;
use guest::{Event, Guest, GuestConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "dipc-cluster", about = "Run a scenario on a QEMU test cluster")]
struct Cli {
    /// Scenario file (see `tests/cluster/*.scenario`).
    scenario: PathBuf,
    /// Number of guests.
    #[arg(long, short = 'n', default_value_t = 3)]
    nodes: usize,
    /// Kernel image (bzImage).
    #[arg(long)]
    kernel: PathBuf,
    /// Initramfs.
    #[arg(long)]
    initrd: PathBuf,
    /// Directory for console logs and sockets (created).
    #[arg(long, default_value = "build/cluster")]
    out: PathBuf,
    /// `auto` uses KVM when a probe guest really runs under it, else TCG.
    #[arg(long, default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
    accel: String,
    /// Guest memory, MiB.
    #[arg(long, default_value_t = 256)]
    mem: u32,
    /// Guest CPUs (QEMU's -smp). Every guest must bring up exactly this
    /// many (`nproc` in the guest, reported when its agent starts), or the
    /// run fails.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Seconds for all guests to boot.
    #[arg(long, default_value_t = 120)]
    boot_timeout: u64,
    /// Default seconds per step.
    #[arg(long, default_value_t = 120)]
    step_timeout: u64,
    /// Multiplies the boot timeout and every step's time limit (a slower
    /// kernel, such as the debug one).
    #[arg(long, default_value_t = 1.0)]
    timeout_scale: f64,
    /// Extra kernel command line for every guest.
    #[arg(long, default_value = "")]
    append: String,
    /// QEMU's CPU model (-cpu) for every guest; QEMU's default when empty.
    /// (scripts/stock-kernel.sh uses Skylake-Client, a CPU the kernel
    /// offers call depth tracking on.)
    #[arg(long, default_value = "")]
    cpu_model: String,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: String,
    /// Nodes that run as arm64 guests (comma-separated node numbers),
    /// beside x86-64 ones on the same network; needs --arm64-kernel and
    /// --arm64-initrd.
    #[arg(long, value_delimiter = ',')]
    arm64_nodes: Vec<usize>,
    /// The arm64 nodes' kernel image.
    #[arg(long)]
    arm64_kernel: Option<PathBuf>,
    /// The arm64 nodes' initramfs.
    #[arg(long)]
    arm64_initrd: Option<PathBuf>,
    /// QEMU binary for the arm64 nodes.
    #[arg(long, default_value = "qemu-system-aarch64")]
    qemu_arm64: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut result = run(&cli);
    // A guest kernel that dies while it boots, before any step ran, is the
    // emulator's (TCG has panicked in early IO-APIC set-up, before any
    // module is loaded): boot the cluster once more, saying so.
    if let Err(e) = &result {
        if e.ends_with(BOOT_DEATH) {
            eprintln!("dipc-cluster: {e} before any step ran; booting the cluster once more");
            result = run(&cli);
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dipc-cluster: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    if cli.nodes == 0 || cli.nodes > 200 {
        return Err(format!("--nodes {} out of range 1..=200", cli.nodes));
    }
    if cli.cpus == 0 || cli.cpus > 64 {
        return Err(format!("--cpus {} out of range 1..=64", cli.cpus));
    }
    let text = std::fs::read_to_string(&cli.scenario)
        .map_err(|e| format!("{}: {e}", cli.scenario.display()))?;
    let steps = scenario::parse(&text, cli.nodes)
        .map_err(|e| format!("{}: {e}", cli.scenario.display()))?;
    std::fs::create_dir_all(&cli.out).map_err(|e| format!("{}: {e}", cli.out.display()))?;
    let out = cli
        .out
        .canonicalize()
        .map_err(|e| format!("{}: {e}", cli.out.display()))?;

    let accel = accel::choose(&cli.accel, &cli.qemu, &cli.kernel, &cli.initrd, &out)?;
    println!("dipc-cluster: accelerator {accel}");

    let append = format!("{} {}", clock::guest_tsc_args(), cli.append);
    if let Some(&n) = cli.arm64_nodes.iter().find(|&&n| n == 0 || n > cli.nodes) {
        return Err(format!(
            "--arm64-nodes: no node {n} in a cluster of {}",
            cli.nodes
        ));
    }
    let none = PathBuf::new();
    let (arm64_kernel, arm64_initrd) = match (&cli.arm64_kernel, &cli.arm64_initrd) {
        (Some(k), Some(i)) => (k, i),
        _ if cli.arm64_nodes.is_empty() => (&none, &none),
        _ => return Err("--arm64-nodes needs --arm64-kernel and --arm64-initrd".into()),
    };
    // A multicast port of our own, so concurrent runs do not share a network.
    let mcast_port = 20000 + (std::process::id() % 20000) as u16;
    let cfg = GuestConfig {
        qemu: &cli.qemu,
        accel: accel.name(),
        kernel: &cli.kernel,
        initrd: &cli.initrd,
        mem_mib: cli.mem,
        cpus: cli.cpus,
        nodes: cli.nodes,
        mcast_port,
        dir: &out,
        append: &append,
        cpu_model: &cli.cpu_model,
        arm64: guest::Arm64 {
            nodes: &cli.arm64_nodes,
            qemu: &cli.qemu_arm64,
            kernel: arm64_kernel,
            initrd: arm64_initrd,
            append: &cli.append,
        },
    };
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let scale = cli.timeout_scale;
    if !(0.1..=100.0).contains(&scale) {
        return Err(format!("--timeout-scale {scale} out of range 0.1..=100"));
    }
    let boot_deadline = start + Duration::from_secs_f64(cli.boot_timeout as f64 * scale);
    let mut guests = Vec::new();
    for node in 1..=cli.nodes {
        guests.push(Guest::start(&cfg, node).map_err(|e| format!("starting node {node}: {e}"))?);
    }
    let mut cluster = Cluster {
        guests,
        rx,
        dir: out.clone(),
        killed: Vec::new(),
    };
    for g in &mut cluster.guests {
        let node = g.node;
        g.connect(&out, tx.clone(), boot_deadline)
            .map_err(|e| format!("node {node}: agent: {e}"))?;
    }
    drop(tx);
    let result = cluster
        .wait_ready(boot_deadline, start)
        .and_then(|()| cluster.check_cpus(cli.cpus))
        .and_then(|()| cluster.run_steps(&steps, cli.step_timeout, scale));
    if let Err((node, e)) = &result {
        if let Some(g) = node.and_then(|n| cluster.guests.get(n - 1)) {
            eprintln!(
                "---- node {} console ({}), last 60 lines ----\n{}\n----",
                g.node,
                g.console.display(),
                g.console_tail(60)
            );
        }
        cluster.stop();
        return Err(e.clone());
    }
    cluster.stop();
    println!(
        "dipc-cluster: {} steps passed on {} nodes in {:.1} s (logs: {})",
        steps.len(),
        cli.nodes,
        start.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The running guests and their agents' events.
struct Cluster {
    guests: Vec<Guest>,
    rx: mpsc::Receiver<Event>,
    /// Where logs and sockets go.
    dir: PathBuf,
    /// Nodes killed by a `%kill` step.
    killed: Vec<usize>,
}

/// The end of the message for a guest that died while booting.
const BOOT_DEATH: &str = " died while booting";

/// A failure, with the node whose console explains it (if any).
type Failure = (Option<usize>, String);

impl Cluster {
    fn wait_ready(&mut self, deadline: Instant, start: Instant) -> Result<(), Failure> {
        let mut pending: Vec<usize> = self.guests.iter().map(|g| g.node).collect();
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Event::Ready(n, cpus)) => {
                    println!(
                        "dipc-cluster: node {n} booted in {:.1} s with {cpus} CPU(s)",
                        start.elapsed().as_secs_f64()
                    );
                    if let Some(g) = self.guests.iter_mut().find(|g| g.node == n) {
                        g.cpus = cpus;
                    }
                    pending.retain(|&p| p != n);
                }
                Ok(Event::Gone(n)) => return Err((Some(n), format!("node {n}{BOOT_DEATH}"))),
                Ok(Event::Done { .. }) => {}
                Err(_) => {
                    return Err((
                        pending.first().copied(),
                        format!("nodes {pending:?} did not boot in time"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Fails unless every guest brought up `want` CPUs: QEMU's `-smp` is
    /// only a request, and a kernel without ACPI (or with too small an
    /// `NR_CPUS`) boots fewer.
    fn check_cpus(&self, want: u32) -> Result<(), Failure> {
        match self.guests.iter().find(|g| g.cpus != want) {
            None => Ok(()),
            Some(g) => Err((
                Some(g.node),
                format!(
                    "node {} has {} CPU(s) (nproc in the guest), the run asked for {want}",
                    g.node, g.cpus
                ),
            )),
        }
    }

    fn run_steps(
        &mut self,
        steps: &[scenario::Step],
        default_timeout: u64,
        scale: f64,
    ) -> Result<(), Failure> {
        let mut next_id = 1u64;
        for (index, step) in steps.iter().enumerate() {
            if let Some(dead) = step.nodes.iter().find(|n| self.killed.contains(n)) {
                return Err((
                    None,
                    format!("line {}: node {dead} was killed earlier", step.line),
                ));
            }
            if let Some(action) = step.action {
                println!(
                    "({}/{}) [{}] {}",
                    index + 1,
                    steps.len(),
                    nodes_label(&step.nodes),
                    step.command
                );
                self.act(action, &step.nodes)
                    .map_err(|(n, e)| (Some(n), format!("line {}: node {n}: {e}", step.line)))?;
                continue;
            }
            let mut waiting = BTreeMap::new();
            for &n in &step.nodes {
                let id = next_id;
                next_id += 1;
                self.guests[n - 1]
                    .send(id, &step.command)
                    .map_err(|e| (Some(n), format!("line {}: node {n}: send: {e}", step.line)))?;
                waiting.insert(id, n);
            }
            let first = step.command.lines().next().unwrap_or("");
            let more = if step.command.contains('\n') {
                " ..."
            } else {
                ""
            };
            println!(
                "({}/{}) [{}] $ {first}{more}",
                index + 1,
                steps.len(),
                nodes_label(&step.nodes)
            );
            let timeout =
                Duration::from_secs_f64(step.timeout_s.unwrap_or(default_timeout) as f64 * scale);
            let began = Instant::now();
            let deadline = began + timeout;
            let mut failure = None;
            while !waiting.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(Event::Done {
                        node,
                        id,
                        rc,
                        output,
                    }) => {
                        if waiting.remove(&id).is_none() {
                            continue;
                        }
                        for l in output.lines() {
                            println!("  node{node}| {l}");
                        }
                        let ok = (rc == 0) != step.expect_failure;
                        if !ok && failure.is_none() {
                            let want = if step.expect_failure { "non-zero" } else { "0" };
                            failure = Some((
                                Some(node),
                                format!(
                                    "line {}: node {node} exited {rc}, expected {want}: {}",
                                    step.line, step.command
                                ),
                            ));
                        }
                    }
                    Ok(Event::Gone(n)) if self.killed.contains(&n) => {}
                    Ok(Event::Gone(n)) => {
                        return Err((Some(n), format!("line {}: node {n} died", step.line)))
                    }
                    Ok(Event::Ready(..)) => {}
                    Err(_) => {
                        let nodes: Vec<usize> = waiting.values().copied().collect();
                        for &n in &nodes {
                            println!(
                                "  node {n} vCPU instruction pointers: {}",
                                self.guests[n - 1].cpu_samples(&self.dir, 8)
                            );
                        }
                        return Err((
                            nodes.first().copied(),
                            format!(
                                "line {}: nodes {nodes:?} did not finish in {} s: {}",
                                step.line,
                                timeout.as_secs(),
                                step.command
                            ),
                        ));
                    }
                }
            }
            if let Some(f) = failure {
                return Err(f);
            }
            // Where a scenario's time goes: the steps that took long.
            let took = began.elapsed().as_secs_f64();
            if took >= 5.0 {
                println!("  ({took:.1} s)");
            }
        }
        Ok(())
    }

    /// Carries out a runner action on `nodes`.
    fn act(&mut self, action: scenario::Action, nodes: &[usize]) -> Result<(), (usize, String)> {
        for &n in nodes {
            let g = &mut self.guests[n - 1];
            match action {
                scenario::Action::Kill => {
                    g.kill().map_err(|e| (n, format!("kill: {e}")))?;
                    self.killed.push(n);
                }
                scenario::Action::Link(up) => {
                    let cmd = format!("set_link n0 {}", if up { "on" } else { "off" });
                    let reply = g
                        .monitor(&self.dir, &cmd)
                        .map_err(|e| (n, format!("monitor: {e}")))?;
                    if reply.contains("rror") {
                        return Err((n, format!("{cmd}: {}", reply.trim())));
                    }
                }
            }
        }
        Ok(())
    }

    fn stop(&mut self) {
        for g in &mut self.guests {
            let _ = g.send(0, "shutdown");
        }
        for g in &mut self.guests {
            g.stop(Duration::from_secs(10));
        }
    }
}

fn nodes_label(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
