//! `dipcd`, the dipc referee.
//!
//! `dipcd --listen ADDR` runs the referee; `dipcd status` asks a running one
//! which nodes are connected. The configuration comes from the command
//! line, then `/etc/dipc/dipcd.toml` ([`config`]), then the defaults.

mod auth;
mod config;
mod control;
mod metrics;
mod referee;
mod registry;
mod replicated;
mod server;
mod session;
mod state;
mod store;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Default port nodes connect to.
const DEFAULT_PORT: u16 = 7420;
const DEFAULT_CONTROL: &str = dipc_control::DEFAULT_PATH;

#[derive(Parser)]
#[command(
    name = "dipcd",
    version,
    about = "The dipc referee daemon",
    long_about = "The dipc referee: owns the cluster's keys and the authoritative state of \
every distributed System V IPC object (semaphore sets, message queues, shared memory \
segments and their DSM page directory). Nodes running dipc.ko connect to it over TCP.\n\n\
Options come from the command line, then the configuration file (/etc/dipc/dipcd.toml, \
keys named like the options: secret_file for --secret-file, limits in a [limits] table), \
then the defaults shown."
)]
struct Cli {
    /// The configuration file (TOML). Default: /etc/dipc/dipcd.toml if it
    /// exists.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Check the configuration (file and options: addresses, limits, the
    /// secret file and its mode, the state directory), print the
    /// configuration that would run, and exit: 0 if it is good, 1 if not.
    #[arg(long)]
    check_config: bool,
    /// Address to accept node connections on.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    listen: SocketAddr,
    /// Unix socket for local control requests (`dipcd status`, `dipcctl`).
    #[arg(long, default_value = DEFAULT_CONTROL, global = true)]
    control: PathBuf,
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `dipcd=debug`.
    #[arg(long, default_value = "info")]
    log: String,
    /// Most semaphores in one distributed set (`SEMMSL`; Linux's default).
    #[arg(long, default_value_t = 32000)]
    semmsl: usize,
    /// Most semaphores in all distributed sets (`SEMMNS`).
    #[arg(long, default_value_t = 32000 * 32000)]
    semmns: usize,
    /// Most operations in one `semop` on a distributed set (`SEMOPM`).
    #[arg(long, default_value_t = 500)]
    semopm: usize,
    /// Most distributed semaphore sets (`SEMMNI`; at most 32768).
    #[arg(long, default_value_t = 32000)]
    semmni: usize,
    /// Largest message on a distributed queue, in bytes (`msgmax`).
    #[arg(long, default_value_t = 8192)]
    msgmax: usize,
    /// A new distributed queue's capacity in bytes (`msgmnb`).
    #[arg(long, default_value_t = 16384)]
    msgmnb: usize,
    /// Most distributed queues (`msgmni`).
    #[arg(long, default_value_t = 32000)]
    msgmni: usize,
    /// Largest distributed segment, in bytes (`shmmax`; Linux's default).
    #[arg(long, default_value_t = u64::MAX - (1 << 24))]
    shmmax: u64,
    /// Most pages in all distributed segments (`shmall`; Linux's default).
    #[arg(long, default_value_t = u64::MAX - (1 << 24))]
    shmall: u64,
    /// Most distributed segments (`shmmni`).
    #[arg(long, default_value_t = 4096)]
    shmmni: usize,
    /// Seconds of silence after which a node is declared dead: its
    /// connection is closed, its SEM_UNDO adjustments are applied, its
    /// attaches and pages are dropped. The referee pings a node that has
    /// been silent for a third of this. Keep it above every node's
    /// `keepalive_ms` (10 s by default), so a cut-off node gives up its
    /// pages before the referee hands them to another.
    #[arg(long, default_value_t = 15.0, value_parser = parse_keepalive)]
    keepalive: f64,
    /// The cluster secret: a file only root can read (mode 0600), 16 to 256
    /// bytes (one trailing newline is ignored). With it, every node must
    /// prove it holds the same secret (HMAC-SHA256 challenge-response), and
    /// proves the referee's knowledge of it in turn.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Networks nodes may connect from (`10.0.0.0/24`, `10.0.0.7`,
    /// `fd00::/8`); repeat or separate with commas. Default: any address.
    #[arg(long, value_delimiter = ',')]
    allow: Vec<auth::Net>,
    /// Keep the state here (created if missing): every change is appended
    /// to `DIR/log` before its answer leaves, and `DIR/snapshot` is
    /// rewritten now and then. A referee started on the same directory
    /// recovers every object, message, semaphore value, undo record, page
    /// and node session, and the nodes resume. Without it, the state lives
    /// in memory only.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// When the log reaches the disk: `always` (before any answer that
    /// depends on it leaves; one fdatasync per batch), `Nms` (every N
    /// milliseconds: a host crash loses at most that much), or `never`
    /// (left to the kernel). A crash of the referee alone loses nothing
    /// with any of them.
    #[arg(long, default_value = "always")]
    fsync: store::Fsync,
    /// Write a snapshot, and empty the log, after this many records.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: u64,
    /// Most DSM pages read ahead of a node's sequential misses on a
    /// segment (0 to 1024; 0: none). The window starts at 2 pages and
    /// doubles with each miss that continues a run, up to this.
    #[arg(long, default_value_t = referee::dsm::READAHEAD_MAX, value_parser = clap::value_parser!(u64).range(0..=1024))]
    readahead: u64,
    /// Whether a message queue used by one node may be leased to it: its
    /// receivers take queued messages, and its senders queue messages,
    /// without a round trip each (`false`: every call comes here).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    msg_leases: bool,
    /// This referee's id among several (`--replicas`): the referees keep
    /// one replicated log of every change (Raft), and only their leader
    /// serves nodes. Needs `--state-dir`, where the raft log is kept
    /// (`DIR/raft`); `--fsync always` syncs it before acknowledging,
    /// anything else leaves it to the kernel.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
    replica_id: Option<u64>,
    /// The first referees, `ID=HOST:PORT` each (comma-separated or
    /// repeated), the same list on every one: where the referees reach one
    /// another (not the nodes' port). Three or five.
    #[arg(long, value_delimiter = ',', value_parser = replicated::parse_replica)]
    replicas: Vec<(u64, String)>,
    /// This referee joins running referees (`dipcctl referees add` on
    /// their leader): it starts with no configuration and learns it, and
    /// the log, from the leader. `--replicas` still gives its own address
    /// (and may name the others). Only for a new, empty `--state-dir`.
    #[arg(long)]
    replica_join: bool,
    /// The referees' own secret, for their connections to one another
    /// (the raft log, snapshots), as `--secret-file` is formatted. Without
    /// it they prove `--secret-file`'s, which every node holds: a node
    /// could then speak to a referee as a referee. With it, node machines
    /// and referee machines can be kept in different trust domains.
    #[arg(long)]
    replica_secret_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the running referee and its connected nodes.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_keepalive(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    config::check_keepalive(v)
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let (cli, file) = match configure(&matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dipcd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check_config {
        return check_config(&cli, file.as_deref());
    }
    match cli.command {
        Some(Command::Status { json }) => status(&cli.control, json),
        None => run(&cli),
    }
}

/// The options: the command line's, then the file's, then the defaults;
/// and the file read, if any.
fn configure(matches: &ArgMatches) -> Result<(Cli, Option<PathBuf>), String> {
    let mut cli = Cli::from_arg_matches(matches).map_err(|e| e.to_string())?;
    let (path, file) = config::load(cli.config.as_deref())?;
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    macro_rules! take {
        ($field:ident) => {
            if let (false, Some(v)) = (given(stringify!($field)), file.$field) {
                cli.$field = v;
            }
        };
        ($field:ident, option) => {
            if let (false, Some(v)) = (given(stringify!($field)), file.$field) {
                cli.$field = Some(v);
            }
        };
        ($field:ident, limit) => {
            if let (false, Some(v)) = (given(stringify!($field)), file.limits.$field) {
                cli.$field = v;
            }
        };
    }
    take!(listen);
    take!(control);
    take!(log);
    take!(secret_file, option);
    take!(allow);
    take!(keepalive);
    take!(state_dir, option);
    take!(fsync);
    take!(snapshot_every);
    take!(readahead);
    take!(msg_leases);
    take!(replica_id, option);
    take!(replica_secret_file, option);
    if let (false, Some(v)) = (given("replicas"), file.replicas) {
        cli.replicas = v;
    }
    take!(semmsl, limit);
    take!(semmns, limit);
    take!(semopm, limit);
    take!(semmni, limit);
    take!(msgmax, limit);
    take!(msgmnb, limit);
    take!(msgmni, limit);
    take!(shmmax, limit);
    take!(shmall, limit);
    take!(shmmni, limit);
    Ok((cli, path))
}

impl Cli {
    fn limits(&self) -> referee::Limits {
        referee::Limits {
            semmsl: self.semmsl,
            semmns: self.semmns,
            semopm: self.semopm,
            semmni: self.semmni,
            msgmax: self.msgmax,
            msgmnb: self.msgmnb,
            msgmni: self.msgmni,
            shmmax: self.shmmax,
            shmall: self.shmall,
            shmmni: self.shmmni,
        }
    }
}

/// `--check-config`: every check `dipcd` makes before it serves, without
/// binding anything; prints the configuration that would run.
/// `file`: the configuration file `configure` read (a bad one has already
/// stopped `dipcd` there, with its reason).
fn check_config(cli: &Cli, file: Option<&std::path::Path>) -> ExitCode {
    let mut errors = Vec::new();
    let source = match file {
        Some(p) => p.display().to_string(),
        None => format!("none ({} does not exist)", config::DEFAULT_PATH),
    };
    if let Err(e) = cli.limits().check() {
        errors.push(format!("limits: {e}"));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&cli.log) {
        errors.push(format!("log {:?}: {e}", cli.log));
    }
    for (name, path) in [
        ("secret_file", &cli.secret_file),
        ("replica_secret_file", &cli.replica_secret_file),
    ] {
        if let Some(path) = path {
            if let Err(e) = auth::Secret::load(path) {
                errors.push(format!("{name}: {e}"));
            }
        }
    }
    if let Some(dir) = &cli.state_dir {
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                errors.push(format!("state_dir {}: not a directory", dir.display()))
            }
            Ok(_) => {}
            // dipcd creates it, but its parent must exist.
            Err(_) => match dir.parent().map(std::fs::metadata) {
                Some(Ok(m)) if m.is_dir() => {}
                _ => errors.push(format!(
                    "state_dir {}: neither it nor its parent directory exists",
                    dir.display()
                )),
            },
        }
    }
    if let Some(parent) = cli.control.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            errors.push(format!(
                "control {}: {} is not a directory",
                cli.control.display(),
                parent.display()
            ));
        }
    }
    let opt = |p: &Option<PathBuf>| match p {
        Some(p) => format!("{:?}", p.display().to_string()),
        None => "none".into(),
    };
    println!("# dipcd configuration (file: {source})");
    println!("listen = \"{}\"", cli.listen);
    println!("control = {:?}", cli.control.display().to_string());
    println!("log = {:?}", cli.log);
    println!("secret_file = {}", opt(&cli.secret_file));
    println!("replica_secret_file = {}", opt(&cli.replica_secret_file));
    let allow: Vec<String> = cli
        .allow
        .iter()
        .map(|n| format!("{:?}", n.to_string()))
        .collect();
    println!("allow = [{}]", allow.join(", "));
    println!("keepalive = {:?}", cli.keepalive);
    println!("state_dir = {}", opt(&cli.state_dir));
    println!("fsync = \"{}\"", cli.fsync);
    println!("snapshot_every = {}", cli.snapshot_every);
    println!("readahead = {}", cli.readahead);
    println!("msg_leases = {}", cli.msg_leases);
    println!("[limits]");
    let l = cli.limits();
    println!(
        "semmsl = {}\nsemmns = {}\nsemopm = {}\nsemmni = {}",
        l.semmsl, l.semmns, l.semopm, l.semmni
    );
    println!(
        "msgmax = {}\nmsgmnb = {}\nmsgmni = {}",
        l.msgmax, l.msgmnb, l.msgmni
    );
    println!(
        "shmmax = {}\nshmall = {}\nshmmni = {}",
        l.shmmax, l.shmall, l.shmmni
    );
    if errors.is_empty() {
        println!("# configuration OK");
        ExitCode::SUCCESS
    } else {
        for e in &errors {
            eprintln!("dipcd: config: {e}");
        }
        ExitCode::FAILURE
    }
}

fn status(control: &std::path::Path, json: bool) -> ExitCode {
    let v = match dipc_control::ask(control, "status") {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "dipcd: cannot reach the referee at {}: {e}",
                control.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{v}");
        return ExitCode::SUCCESS;
    }
    let nodes = v["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
    println!(
        "referee {} session {:#x} up {}s, {} node(s)",
        v["listen"].as_str().unwrap_or("?"),
        v["session"].as_u64().unwrap_or(0),
        v["uptime_s"].as_u64().unwrap_or(0),
        nodes.len()
    );
    if let Some(r) = v["replication"].as_object() {
        let n = |k: &str| r.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        println!(
            "replica {} of {}: leader {}, term {}, commit {}, {}",
            n("id"),
            r.get("members")
                .and_then(|m| m.as_object())
                .map_or(0, |m| m.len()),
            n("leader"),
            n("term"),
            n("commit"),
            if r.get("serving").and_then(|x| x.as_bool()) == Some(true) {
                "serving nodes"
            } else {
                "following"
            }
        );
    }
    println!(
        "{:>6}  {:<16} {:<22} {:>8}",
        "NODE", "NAME", "ADDRESS", "UP(s)"
    );
    for n in nodes {
        println!(
            "{:>6}  {:<16} {:<22} {:>8}",
            n["node_id"].as_u64().unwrap_or(0),
            n["name"].as_str().unwrap_or(""),
            n["addr"].as_str().unwrap_or(""),
            n["connected_s"].as_u64().unwrap_or(0)
        );
    }
    ExitCode::SUCCESS
}

/// The secret nodes prove (`--secret-file`), and the one referees prove to
/// one another: `--replica-secret-file`'s, or else the nodes' one.
fn secrets(cli: &Cli) -> Result<(Option<auth::Secret>, Option<auth::Secret>), String> {
    let load = |p: &Option<PathBuf>| p.as_deref().map(auth::Secret::load).transpose();
    let nodes = load(&cli.secret_file)?;
    let referees = match load(&cli.replica_secret_file)? {
        Some(s) => Some(s),
        None => nodes.clone(),
    };
    Ok((nodes, referees))
}

fn run(cli: &Cli) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|e| {
        eprintln!("dipcd: bad --log filter {:?}: {e}; using info", cli.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let limits = cli.limits();
    if let Err(e) = limits.check() {
        tracing::error!(error = %e, "bad limits");
        return ExitCode::FAILURE;
    }
    let (secret, secret_for_replicas) = match secrets(cli) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the secret file");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(cli.listen) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %cli.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    // A stale socket file from an earlier run would make bind fail.
    let _ = std::fs::remove_file(&cli.control);
    let control = match UnixListener::bind(&cli.control) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(path = %cli.control.display(), error = %e, "cannot open the control socket");
            return ExitCode::FAILURE;
        }
    };
    let listen = listener.local_addr().unwrap_or(cli.listen);
    let keepalive = std::time::Duration::from_secs_f64(cli.keepalive);
    let authenticated = secret.is_some();
    let allow: Vec<String> = cli.allow.iter().map(ToString::to_string).collect();
    let mut referee = server::Referee::new(listen, limits)
        .with_keepalive(keepalive)
        .with_readahead(cli.readahead)
        .with_msg_leases(cli.msg_leases)
        .with_access(secret, cli.allow.clone());
    let replication = match cli.replica_id {
        Some(id) => {
            let replicas: dipc_replica::Members = cli.replicas.iter().cloned().collect();
            if !replicas.contains_key(&id) {
                tracing::error!(id, "--replicas does not name this referee's --replica-id");
                return ExitCode::FAILURE;
            }
            if cli.state_dir.is_none() {
                tracing::error!(
                    id,
                    "a replicated referee needs --state-dir for its raft log"
                );
                return ExitCode::FAILURE;
            }
            let (rep, rx) = replicated::handle(id);
            referee = referee.with_replication(rep.clone());
            Some((rep, rx, replicas))
        }
        None => None,
    };
    if let (Some(dir), None) = (&cli.state_dir, &replication) {
        let t = std::time::Instant::now();
        referee = match referee.with_store(dir, cli.fsync, cli.snapshot_every) {
            Ok((r, rec)) => {
                tracing::info!(
                    dir = %dir.display(),
                    fsync = %cli.fsync,
                    snapshot_seq = rec.snapshot_seq,
                    log_records = rec.records,
                    torn_bytes = rec.torn_bytes,
                    ms = t.elapsed().as_millis() as u64,
                    "state recovered"
                );
                r
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot recover the state");
                return ExitCode::FAILURE;
            }
        };
    }
    let referee = Arc::new(referee);
    if let Some((rep, rx, replicas)) = replication {
        let opts = replicated::Options {
            id: cli.replica_id.unwrap_or(0),
            replicas,
            dir: cli.state_dir.clone().unwrap_or_default(),
            sync: cli.fsync == store::Fsync::Always,
            snapshot_every: cli.snapshot_every,
            join: cli.replica_join,
            secret: secret_for_replicas.clone(),
            allow: cli.allow.clone(),
        };
        if let Err(e) = replicated::start(referee.clone(), rep, rx, opts) {
            tracing::error!(error = %e, "cannot start the replica");
            return ExitCode::FAILURE;
        }
    }
    tracing::info!(
        %listen,
        control = %cli.control.display(),
        semmni = limits.semmni,
        semopm = limits.semopm,
        msgmax = limits.msgmax,
        msgmnb = limits.msgmnb,
        msgmni = limits.msgmni,
        shmmax = limits.shmmax,
        shmmni = limits.shmmni,
        keepalive_s = cli.keepalive,
        authenticated,
        allow = ?allow,
        "dipcd referee started"
    );
    {
        let referee = referee.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("dipcd-control".into())
            .spawn(move || control::serve(referee, control))
        {
            tracing::error!(error = %e, "cannot start the control thread");
            return ExitCode::FAILURE;
        }
    }
    {
        let r = referee.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("dipcd-reaper".into())
            .spawn(move || r.reap_forever())
        {
            tracing::error!(error = %e, "cannot start the reaper thread");
            return ExitCode::FAILURE;
        }
    }
    if let (store::Fsync::Every(every), None) = (cli.fsync, cli.replica_id) {
        let r = referee.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("dipcd-sync".into())
            .spawn(move || r.sync_every(every))
        {
            tracing::error!(error = %e, "cannot start the sync thread");
            return ExitCode::FAILURE;
        }
    }
    let result = server::serve(referee.clone(), listener);
    referee.close_all();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "referee stopped");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[path = "../../man.rs"]
mod man;

#[cfg(test)]
mod msg_lease_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_pages_match_the_command_line() {
        let pages = man::pages(Cli::command(), "8");
        assert_eq!(pages[0].0, "dipcd.8");
        man::check("dipcd", &pages);
    }

    fn cli(args: &[&str]) -> Result<Cli, String> {
        let mut argv = vec!["dipcd"];
        argv.extend_from_slice(args);
        let m = Cli::command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        configure(&m).map(|(c, _)| c)
    }

    /// Found by the review of 3e25eae: referees proved to one another the
    /// secret every node holds, so any node could speak raft as a
    /// referee. `--replica-secret-file` gives them one of their own.
    #[test]
    fn referees_may_have_a_secret_of_their_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, key: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, key).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p.to_str().unwrap().to_string()
        };
        let nodes = write("secret", "the nodes' secret, 0123456789");
        let refs = write("referees", "the referees' own, 9876543210");
        let (c, o) = ([7u8; dipc_wire::AUTH_LEN], [9u8; dipc_wire::AUTH_LEN]);
        let proves = |a: &auth::Secret, b: &auth::Secret| {
            let t = a.tag(dipc_wire::AuthRole::Replica, 1, &c, &o);
            b.verify(dipc_wire::AuthRole::Replica, 1, &c, &o, &t)
        };
        let cli1 = cli(&["--secret-file", &nodes]).unwrap();
        let (n, r) = secrets(&cli1).unwrap();
        let (n, r) = (n.unwrap(), r.unwrap());
        assert!(
            proves(&n, &r),
            "without its own, the referees use the nodes' secret"
        );
        let cli2 = cli(&["--secret-file", &nodes, "--replica-secret-file", &refs]).unwrap();
        let (n, r) = secrets(&cli2).unwrap();
        let (n, r) = (n.unwrap(), r.unwrap());
        assert!(!proves(&n, &r), "a node's secret proves a referee");
        let own = auth::Secret::load(std::path::Path::new(&refs)).unwrap();
        assert!(proves(&own, &r));
        // Checked like the nodes' secret file.
        std::fs::set_permissions(&refs, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(secrets(&cli2).is_err());
    }

    #[test]
    fn the_command_line_wins_over_the_file_and_the_file_over_the_defaults() {
        let path = std::env::temp_dir().join(format!("dipcd-main-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7500\"\nkeepalive = 4.5\nallow = [\"10.1.0.0/16\"]\n\
             state_dir = \"/srv/dipcd\"\nfsync = \"20ms\"\n[limits]\nmsgmax = 4000\nmsgmnb = 9000\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = cli(&["--config", p, "--msgmax", "100", "--keepalive", "2"]).unwrap();
        assert_eq!(c.msgmax, 100, "command line");
        assert_eq!(c.keepalive, 2.0, "command line");
        assert_eq!(c.msgmnb, 9000, "file");
        assert_eq!(c.listen, "127.0.0.1:7500".parse().unwrap(), "file");
        assert_eq!(c.allow, vec!["10.1.0.0/16".parse().unwrap()], "file");
        assert_eq!(c.state_dir, Some(PathBuf::from("/srv/dipcd")), "file");
        assert_eq!(c.fsync.to_string(), "20ms", "file");
        assert_eq!(c.shmmni, 4096, "default");
        assert_eq!(c.snapshot_every, 100_000, "default");
        assert_eq!(c.control, PathBuf::from(DEFAULT_CONTROL), "default");
        // The subcommand sees the file too (its control socket).
        std::fs::write(&path, "control = \"/tmp/x.sock\"\n").unwrap();
        let c = cli(&["--config", p, "status", "--json"]).unwrap();
        assert_eq!(c.control, PathBuf::from("/tmp/x.sock"));
        std::fs::write(&path, "listen = 1\n").unwrap();
        let e = cli(&["--config", p]).err().unwrap();
        assert!(e.contains(p) && e.contains("invalid type"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
