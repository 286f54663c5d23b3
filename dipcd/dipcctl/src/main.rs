//! `dipcctl`, the dipc admin tool.
//!
//! It asks this node's `dipc.ko` over the "dipc" generic netlink family
//! ([`genl`]) and, where one runs on this machine, the referee `dipcd` over
//! its control socket. Every command prints a table, or JSON with `--json`.

mod genl;
#[allow(unsafe_code)]
mod ipcstat;

use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dipcctl",
    version,
    about = "The dipc admin tool: this node's dipc.ko, and the referee (dipcd)",
    long_about = "The dipc admin tool. It asks this node's dipc.ko over the \"dipc\" generic \
netlink family, and the referee dipcd over its control socket where one runs on this \
machine. Every command prints a table, or JSON with --json."
)]
struct Cli {
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// The referee's control socket (on the machine that runs dipcd).
    #[arg(
        long,
        global = true,
        default_value = dipc_control::DEFAULT_PATH,
        value_name = "PATH"
    )]
    control: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join a cluster: connect this node to the referee at REFEREE and wait
    /// for the connection; with several (replicated referees), to the one
    /// that leads. Needs CAP_NET_ADMIN.
    Join {
        /// The referee, `a.b.c.d:port`, or the replicated referees,
        /// comma-separated (at most 5).
        referee: String,
        /// The cluster secret (root's, mode 0600 or 0400); default: the
        /// module's `secret_file=` option, if any.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// This node's id in the cluster (1 and up); default: the module's
        /// `node_id=` option.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        node_id: Option<u32>,
        /// Seconds to wait for the connection (0: do not wait).
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        wait: u64,
    },
    /// Leave the cluster: the referee takes back every page this node
    /// owns, then the node disconnects and forgets its distributed objects
    /// (their local ids vanish). Refused while a process here has a
    /// distributed segment attached. Needs CAP_NET_ADMIN.
    Leave {
        /// Leave even when the referee cannot confirm (not connected): what
        /// this node owns is lost, as when a node dies.
        #[arg(long)]
        force: bool,
    },
    /// This node: its id, the referee connection and its counters (the
    /// items of /proc/dipc/status), and the referee's summary when it runs
    /// here.
    Status,
    /// Every distributed object this node uses: kind, key, local id,
    /// cluster-wide id, owner and mode, size (semaphores, messages queued,
    /// or bytes), attaches in the cluster and on this node, and pages
    /// cached here (read-only, owned); where the referee runs, its view
    /// too, with each node's attaches.
    Objects,
    /// The key policy: which keys are distributed without IPC_DIPC.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The referee (on the machine that runs dipcd): its nodes, sessions,
    /// persistence and objects.
    Referee,
    /// The referee's metrics (on the machine that runs dipcd): counters,
    /// frames by kind, and latency histograms (request handling by kind,
    /// page request to grant, log syncs) with their percentiles.
    Metrics,
    /// The referees of a replicated referee (on a machine that runs one
    /// of them): the leader, term, log indexes and members; or a change,
    /// made by the leader.
    Referees {
        #[command(subcommand)]
        command: Option<RefereesCommand>,
    },
}

#[derive(Subcommand)]
enum RefereesCommand {
    /// Show them (the default).
    List,
    /// Add referee ID, which the others reach at HOST:PORT (start its
    /// dipcd first, with `--replica-id ID --replica-join` and `--replicas`
    /// naming the current referees and itself; it starts empty and catches
    /// up).
    Add {
        /// Its id.
        id: u64,
        /// Where the referees reach it.
        addr: String,
    },
    /// Remove referee ID (not the leader: transfer first).
    Remove {
        /// Its id.
        id: u64,
    },
    /// Hand leadership to referee ID.
    Transfer {
        /// Its id.
        id: u64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Show the policy.
    List,
    /// Distribute a key, a range (`0x1000-0x1fff`) or `all`.
    Add {
        /// `KEY`, `LOW-HIGH` (decimal or 0x hex) or `all`.
        spec: String,
    },
    /// Stop distributing a key, range or `all` added before (exactly as
    /// listed).
    Del {
        /// As `keys list` shows it.
        spec: String,
    },
}

/// Lets a closed pipe end the process quietly, as it ends C tools
/// (`dipcctl objects | head -1`), where Rust's default would make every
/// print after it panic.
#[allow(unsafe_code)]
fn default_sigpipe() {
    // Called first in main, before any other thread exists.
    // SAFETY: SIG_DFL installs no handler, so no Rust code runs on a signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Join {
            referee,
            secret_file,
            node_id,
            wait,
        } => join(&cli, referee, secret_file.as_deref(), *node_id, *wait),
        Command::Leave { force } => leave(&cli, *force),
        Command::Status => status(&cli),
        Command::Objects => objects(&cli),
        Command::Keys { command } => keys(&cli, command),
        Command::Referee => referee(&cli),
        Command::Metrics => metrics(&cli),
        Command::Referees { command } => referees(&cli, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dipcctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The referee's status if it runs here, else `None`.
fn local_referee(cli: &Cli) -> Option<Value> {
    cli.control
        .exists()
        .then(|| dipc_control::ask(&cli.control, "status").ok())
        .flatten()
}

/// The module's status items, in order.
fn module_status() -> io::Result<Vec<(String, Value)>> {
    let mut c = genl::Client::open()?;
    let replies = c.dipc(genl::CMD_STATUS, false, &[])?;
    let mut items = Vec::new();
    for r in &replies {
        for (t, nest) in genl::attrs(r) {
            if t != genl::A_STAT {
                continue;
            }
            let (mut name, mut value) = (None, Value::Null);
            for (t, p) in genl::attrs(nest) {
                match t {
                    genl::A_STAT_NAME => name = Some(genl::string(p)),
                    genl::A_STAT_VALUE => value = genl::num(p).map_or(Value::Null, Value::from),
                    genl::A_STAT_TEXT => value = Value::from(genl::string(p)),
                    _ => {}
                }
            }
            if let Some(n) = name {
                items.push((n, value));
            }
        }
    }
    if items.is_empty() {
        return Err(io::Error::other("the module sent no status items"));
    }
    Ok(items)
}

/// Checks what the module would refuse, so the error can say why.
fn check_secret_file(path: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let abs = std::fs::canonicalize(path)
        .map_err(|e| io::Error::new(e.kind(), format!("secret file {}: {e}", path.display())))?;
    let m = std::fs::metadata(&abs)?;
    if !m.is_file() || m.uid() != 0 || m.mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "secret file {}: must be a file owned by root with mode 0600 or 0400 (chown root; chmod 600)",
            abs.display()
        )));
    }
    Ok(abs)
}

/// One status item of the module.
fn status_item(name: &str) -> io::Result<Value> {
    Ok(module_status()?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or(Value::Null))
}

fn join(
    cli: &Cli,
    referee: &str,
    secret_file: Option<&Path>,
    node_id: Option<u32>,
    wait: u64,
) -> io::Result<()> {
    let parts: Vec<&str> = referee.split(',').collect();
    if parts.len() > 5
        || parts
            .iter()
            .any(|p| p.parse::<std::net::SocketAddrV4>().is_err())
    {
        return Err(io::Error::other(format!(
            "bad referee address {referee:?}: expected a.b.c.d:port, or up to 5 of them \
             comma-separated (replicated referees)"
        )));
    }
    let secret = secret_file.map(check_secret_file).transpose()?;
    let secret = secret.as_ref().map(|p| p.to_string_lossy().into_owned());
    let mut attrs = vec![genl::Attr::Str(genl::A_REFEREE, referee)];
    if let Some(id) = node_id {
        attrs.push(genl::Attr::U32(genl::A_NODE_ID, id));
    }
    if let Some(s) = &secret {
        attrs.push(genl::Attr::Str(genl::A_SECRET_FILE, s));
    }
    let mut c = genl::Client::open()?;
    c.dipc(genl::CMD_JOIN, false, &attrs).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(1) => "joining needs CAP_NET_ADMIN".to_string(),
            Some(106) => format!(
                "this node is already in a cluster (referee {}); dipcctl leave first",
                cell(&status_item("referee").unwrap_or_default())
            ),
            Some(22) if node_id.is_none() => {
                "the module was loaded without node_id=: give --node-id N, or the secret file's length is wrong (32 to 4096 bytes)".to_string()
            }
            Some(22) => "the module refused the secret file: a secret is 32 to 4096 bytes".to_string(),
            Some(2) => "the module's secret_file= does not exist; give --secret-file".to_string(),
            _ => return e,
        };
        io::Error::other(why)
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    let mut connection = status_item("connection")?;
    while wait > 0 && connection != "connected" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        connection = status_item("connection")?;
    }
    let id = status_item("node_id")?;
    if cli.json {
        println!(
            "{}",
            json!({ "referee": referee, "node_id": id, "connection": connection })
        );
    } else {
        println!(
            "joined referee {referee} as node {}: {}",
            cell(&id),
            cell(&connection)
        );
    }
    if wait > 0 && connection != "connected" {
        return Err(io::Error::other(format!(
            "not connected after {wait} s ({}); the node keeps trying (dipcctl status), or dipcctl leave",
            cell(&connection)
        )));
    }
    Ok(())
}

fn leave(cli: &Cli, force: bool) -> io::Result<()> {
    let referee = status_item("referee")?;
    let mut c = genl::Client::open()?;
    let attrs: &[genl::Attr] = if force {
        &[genl::Attr::Flag(genl::A_FORCE)]
    } else {
        &[]
    };
    c.dipc(genl::CMD_LEAVE, false, attrs).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(1) => "leaving needs CAP_NET_ADMIN",
            Some(107) => "this node is not in a cluster",
            Some(16) => {
                "a process on this node has a distributed segment attached: detach it (or end it) first"
            }
            Some(11) => {
                "not connected to the referee now, so it cannot take back the pages this node owns: \
                 wait for the connection (dipcctl status), or dipcctl leave --force (what this node owns is lost)"
            }
            Some(5) | Some(4) => {
                "the referee did not confirm the leave; nothing changed (dipcctl leave --force leaves anyway, losing what this node owns)"
            }
            _ => return e,
        };
        io::Error::other(why)
    })?;
    if cli.json {
        println!("{}", json!({ "left": referee, "forced": force }));
    } else {
        println!("left the cluster of referee {}", cell(&referee));
    }
    Ok(())
}

fn status(cli: &Cli) -> io::Result<()> {
    let items = module_status()?;
    let referee = local_referee(cli);
    if cli.json {
        let node: Map<String, Value> = items.into_iter().collect();
        let mut out = json!({ "node": node });
        if let Some(r) = referee {
            out["referee"] = referee_summary(&r);
        }
        println!("{out}");
        return Ok(());
    }
    println!("node");
    for (name, v) in &items {
        match (name.as_str(), v) {
            ("session" | "incarnation", Value::Number(n)) => {
                println!("  {name:<22} {:#x}", n.as_u64().unwrap_or(0))
            }
            (_, Value::String(s)) => println!("  {name:<22} {s}"),
            _ => println!("  {name:<22} {v}"),
        }
    }
    if let Some(r) = referee {
        println!("referee (on this machine)");
        for (k, v) in referee_summary(&r).as_object().into_iter().flatten() {
            println!("  {k:<22} {}", cell(v));
        }
    }
    Ok(())
}

fn referee_summary(r: &Value) -> Value {
    let ids: Vec<Value> = r["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["node_id"].clone())
        .collect();
    json!({
        "listen": r["listen"],
        "uptime_s": r["uptime_s"],
        "nodes": ids,
        "away": r["away"],
        "objects": r["objects"].as_array().map_or(0, Vec::len),
        "waiters": r["waiters"],
        "authenticated": r["authenticated"],
        "persistent": !r["persist"].is_null(),
    })
}

const CLASSES: [&str; 4] = ["?", "sem", "msg", "shm"];

/// `(class, local id) -> key` from `/proc/sysvipc/{sem,msg,shm}`.
fn local_keys() -> Vec<(&'static str, i64, i64)> {
    let mut out = Vec::new();
    for class in ["sem", "msg", "shm"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{class}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let mut w = line.split_whitespace();
            if let (Some(Ok(key)), Some(Ok(id))) =
                (w.next().map(str::parse), w.next().map(str::parse))
            {
                out.push((class, key, id));
            }
        }
    }
    out
}

fn objects(cli: &Cli) -> io::Result<()> {
    let mut c = genl::Client::open()?;
    let replies = c.dipc(genl::CMD_OBJECTS, true, &[])?;
    let keys = local_keys();
    let referee = local_referee(cli);
    let mut list = Vec::new();
    for r in &replies {
        let mut o = Map::new();
        for (t, p) in genl::attrs(r) {
            let n = genl::num(p).unwrap_or(0);
            match t {
                genl::A_OBJ_CLASS => {
                    o.insert("kind".into(), CLASSES[(n as usize).min(3)].into());
                }
                genl::A_OBJ_ID => {
                    o.insert("id".into(), (n as u32 as i32).into());
                }
                genl::A_OBJ_OID => {
                    o.insert("oid".into(), n.into());
                }
                genl::A_OBJ_SIZE => {
                    o.insert("size".into(), n.into());
                }
                genl::A_OBJ_PAGES_READ => {
                    o.insert("pages_read".into(), n.into());
                }
                genl::A_OBJ_PAGES_WRITE => {
                    o.insert("pages_write".into(), n.into());
                }
                genl::A_OBJ_NATTCH => {
                    o.insert("nattch_here".into(), n.into());
                }
                _ => {}
            }
        }
        let kind = o
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let id = o.get("id").and_then(Value::as_i64).unwrap_or(-1);
        let key = keys
            .iter()
            .find(|(c, _, i)| *c == kind && *i == id)
            .map(|&(_, k, _)| k);
        o.insert(
            "key".into(),
            key.map_or(Value::Null, |k| format!("{k:#010x}").into()),
        );
        if kind != "shm" {
            for k in ["pages_read", "pages_write", "nattch_here"] {
                o.remove(k);
            }
        }
        // A queue's shadow size is the referee's msgmax, not a size of
        // the queue: its size is in qnum and cbytes.
        if kind == "msg" {
            o.remove("size");
        }
        // Owner, mode and counts for the whole cluster.
        if let Some(st) = ipcstat::stat(&kind, id as i32) {
            o.extend(st);
        }
        if let Some(r) = &referee {
            let oid = o.get("oid").cloned().unwrap_or_default();
            if let Some(ro) = r["objects"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["oid"] == oid && x["class"] == kind)
            {
                o.insert("referee".into(), ro.clone());
            }
        }
        list.push(Value::Object(o));
    }
    if cli.json {
        println!("{}", Value::Array(list));
        return Ok(());
    }
    for line in objects_table(&list) {
        println!("{line}");
    }
    Ok(())
}

/// The table `dipcctl objects` prints: SIZE is semaphores, messages
/// queued or bytes; NATTCH the attaches in the cluster, HERE on this node;
/// BY NODE each node's attaches (where the referee runs).
fn objects_table(list: &[Value]) -> Vec<String> {
    let row = |c: [&str; 12]| {
        format!(
            "{:<4} {:<10} {:>8} {:>6} {:>6} {:>4} {:>12} {:>6} {:>4} {:>8} {:>8}  {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]
        )
    };
    let mut out = vec![row([
        "KIND", "KEY", "ID", "OID", "UID", "MODE", "SIZE", "NATTCH", "HERE", "PAGES_RO",
        "PAGES_RW", "BY NODE",
    ])];
    for o in list {
        let g = |k: &str| o.get(k).map_or("-".to_string(), cell);
        let size = match o["kind"].as_str() {
            Some("sem") => o.get("nsems").or(o.get("size")),
            Some("msg") => o.get("qnum"),
            _ => o.get("size"),
        }
        .map_or("-".to_string(), cell);
        let by_node = o["referee"]["nattch_by_node"]
            .as_object()
            .filter(|m| !m.is_empty())
            .map_or("-".to_string(), |m| {
                m.iter()
                    .map(|(n, a)| format!("{n}:{}", cell(a)))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        out.push(row([
            o["kind"].as_str().unwrap_or("?"),
            o["key"].as_str().unwrap_or("-"),
            &g("id"),
            &g("oid"),
            &g("uid"),
            &g("mode"),
            &size,
            &g("nattch"),
            &g("nattch_here"),
            &g("pages_read"),
            &g("pages_write"),
            &by_node,
        ]));
    }
    out
}

fn get_keys(c: &mut genl::Client) -> io::Result<String> {
    let replies = c.dipc(genl::CMD_KEYS_GET, false, &[])?;
    let keys = replies
        .iter()
        .flat_map(|r| genl::attrs(r))
        .find(|(t, _)| *t == genl::A_KEYS)
        .map(|(_, p)| genl::string(p));
    keys.ok_or_else(|| io::Error::other("no key policy in the module's answer"))
}

/// The policy's words (`none` and empty: no words).
fn words(policy: &str) -> Vec<String> {
    policy
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty() && *w != "none")
        .map(str::to_string)
        .collect()
}

/// The policy with `spec` added (`Ok(None)`: already there).
fn policy_add(policy: &str, spec: &str) -> Option<String> {
    let mut w = words(policy);
    if w.iter().any(|x| x == spec) {
        return None;
    }
    w.push(spec.to_string());
    Some(w.join(","))
}

/// The policy without `spec`, or `None` when it is not in it.
fn policy_del(policy: &str, spec: &str) -> Option<String> {
    let mut w = words(policy);
    let before = w.len();
    w.retain(|x| x != spec);
    if w.len() == before {
        return None;
    }
    Some(if w.is_empty() {
        "none".into()
    } else {
        w.join(",")
    })
}

fn keys(cli: &Cli, command: &KeysCommand) -> io::Result<()> {
    let mut c = genl::Client::open()?;
    let current = get_keys(&mut c)?;
    let new = match command {
        KeysCommand::List => None,
        KeysCommand::Add { spec } => policy_add(&current, spec),
        KeysCommand::Del { spec } => Some(policy_del(&current, spec).ok_or_else(|| {
            io::Error::other(format!("{spec:?} is not in the key policy ({current:?})"))
        })?),
    };
    let policy = match new {
        Some(p) => {
            c.dipc(
                genl::CMD_KEYS_SET,
                false,
                &[genl::Attr::Str(genl::A_KEYS, &p)],
            )
            .map_err(|e| match e.raw_os_error() {
                Some(22) => io::Error::other(format!(
                    "the module refused the policy {p:?}: keys are decimal or 0x hex, \
                         ranges LOW-HIGH with LOW <= HIGH, at most 16 of them, or `all`"
                )),
                Some(1) => io::Error::other("changing the key policy needs CAP_NET_ADMIN"),
                _ => e,
            })?;
            get_keys(&mut c)?
        }
        None => current,
    };
    let w = words(&policy);
    if cli.json {
        println!("{}", json!({ "keys": w }));
    } else if w.is_empty() {
        println!("none");
    } else {
        for x in w {
            println!("{x}");
        }
    }
    Ok(())
}

/// A JSON value as a table cell: strings without quotes.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// Asks the referee on this machine, with an error that says where it
/// looked.
fn ask_local_referee(cli: &Cli, request: &str) -> io::Result<Value> {
    dipc_control::ask(&cli.control, request).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the referee at {} ({e}); run dipcctl on the machine that runs dipcd",
                cli.control.display()
            ),
        )
    })
}

fn referees(cli: &Cli, command: &Option<RefereesCommand>) -> io::Result<()> {
    let request = match command {
        None | Some(RefereesCommand::List) => "referees".to_string(),
        Some(RefereesCommand::Add { id, addr }) => format!("referees add {id} {addr}"),
        Some(RefereesCommand::Remove { id }) => format!("referees remove {id}"),
        Some(RefereesCommand::Transfer { id }) => format!("referees transfer {id}"),
    };
    let v = ask_local_referee(cli, &request)?;
    if let Some(e) = v.get("error") {
        return Err(io::Error::other(cell(e)));
    }
    if cli.json {
        println!("{v}");
        return Ok(());
    }
    let info = v.get("referees").unwrap_or(&v);
    if info.get("id").is_none() {
        println!("ok");
        return Ok(());
    }
    println!(
        "referee {}: leader {}, term {}, commit {}, applied {}, {}",
        cell(&info["id"]),
        cell(&info["leader"]),
        cell(&info["term"]),
        cell(&info["commit"]),
        cell(&info["applied"]),
        if info["serving"].as_bool() == Some(true) {
            "serving nodes"
        } else {
            "not serving"
        }
    );
    println!("ID     ADDRESS");
    for (id, addr) in info["members"].as_object().into_iter().flatten() {
        println!("{id:<6} {}", cell(addr));
    }
    Ok(())
}

fn metrics(cli: &Cli) -> io::Result<()> {
    let m = ask_local_referee(cli, "metrics")?;
    if cli.json {
        println!("{m}");
        return Ok(());
    }
    for line in metrics_table(&m) {
        println!("{line}");
    }
    Ok(())
}

/// The table `dipcctl metrics` prints.
fn metrics_table(m: &Value) -> Vec<String> {
    let mut out = vec![format!("referee metrics, up {}s", cell(&m["uptime_s"]))];
    out.push(format!("{:<22} {:>12}", "COUNTER", "VALUE"));
    for (k, v) in m["counters"].as_object().into_iter().flatten() {
        out.push(format!("{k:<22} {:>12}", cell(v)));
    }
    out.push(format!("{:<22} {:>12} {:>12}", "FRAME", "IN", "OUT"));
    let mut kinds: Vec<&String> = m["frames_in"]
        .as_object()
        .into_iter()
        .chain(m["frames_out"].as_object())
        .flat_map(|o| o.keys())
        .collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        let n = |dir: &str| m[dir].get(k).map_or("0".to_string(), cell);
        out.push(format!(
            "{k:<22} {:>12} {:>12}",
            n("frames_in"),
            n("frames_out")
        ));
    }
    out.push(format!(
        "{:<22} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "LATENCY (us)", "COUNT", "MEAN", "P50", "P90", "P99", "MAX"
    ));
    let mut row = |name: String, h: &Value| {
        let count = h["count"].as_u64().unwrap_or(0);
        let mean = h["sum_us"]
            .as_u64()
            .unwrap_or(0)
            .checked_div(count)
            .unwrap_or(0);
        out.push(format!(
            "{name:<22} {count:>8} {mean:>10} {:>10} {:>10} {:>10} {:>10}",
            cell(&h["p50_us"]),
            cell(&h["p90_us"]),
            cell(&h["p99_us"]),
            cell(&h["max_us"])
        ));
    };
    for (k, h) in m["request_us"].as_object().into_iter().flatten() {
        row(format!("request {k}"), h);
    }
    row("page request to grant".into(), &m["page_grant_us"]);
    row("log sync".into(), &m["fsync_us"]);
    out
}

fn referee(cli: &Cli) -> io::Result<()> {
    let r = ask_local_referee(cli, "status")?;
    if cli.json {
        println!("{r}");
        return Ok(());
    }
    println!(
        "referee {} up {}s, {} node(s), {} object(s), {} waiter(s)",
        r["listen"].as_str().unwrap_or("?"),
        cell(&r["uptime_s"]),
        r["nodes"].as_array().map_or(0, Vec::len),
        r["objects"].as_array().map_or(0, Vec::len),
        cell(&r["waiters"])
    );
    println!(
        "{:>6}  {:<16} {:<22} {:>8}",
        "NODE", "NAME", "ADDRESS", "UP(s)"
    );
    for n in r["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:>6}  {:<16} {:<22} {:>8}",
            cell(&n["node_id"]),
            n["name"].as_str().unwrap_or(""),
            n["addr"].as_str().unwrap_or(""),
            cell(&n["connected_s"])
        );
    }
    println!(
        "{:<4} {:<10} {:>6} {:>6} {:>5} {:>6} {:>8} {:>12} {:>7} {:>6}",
        "KIND", "KEY", "OID", "UID", "MODE", "NSEMS", "MESSAGES", "SIZE", "NATTCH", "PAGES"
    );
    for o in r["objects"].as_array().into_iter().flatten() {
        println!(
            "{:<4} {:<10} {:>6} {:>6} {:>5} {:>6} {:>8} {:>12} {:>7} {:>6}",
            o["class"].as_str().unwrap_or("?"),
            format!("{:#010x}", o["key"].as_i64().unwrap_or(0) as u32),
            cell(&o["oid"]),
            cell(&o["uid"]),
            format!("{:o}", o["mode"].as_u64().unwrap_or(0) & 0o777),
            cell(&o["nsems"]),
            cell(&o["messages"]),
            cell(&o["size"]),
            cell(&o["nattch"]),
            cell(&o["pages"])
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "../../man.rs"]
mod man;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_pages_match_the_command_line() {
        use clap::CommandFactory;
        let pages = man::pages(Cli::command(), "8");
        let names: Vec<&str> = pages.iter().map(|(f, _)| f.as_str()).collect();
        assert!(names.contains(&"dipcctl.8") && names.contains(&"dipcctl-join.8"));
        assert!(names.contains(&"dipcctl-keys-add.8"));
        man::check("dipcctl", &pages);
    }

    #[test]
    fn keys_are_added_once_and_deleted_exactly() {
        assert_eq!(policy_add("", "0x10-0x20").as_deref(), Some("0x10-0x20"));
        assert_eq!(policy_add("none", "5").as_deref(), Some("5"));
        assert_eq!(policy_add("0x10-0x20", "5").as_deref(), Some("0x10-0x20,5"));
        assert_eq!(policy_add("0x10-0x20, 5", "5"), None);
        assert_eq!(policy_del("0x10-0x20,5", "5").as_deref(), Some("0x10-0x20"));
        assert_eq!(policy_del("5", "5").as_deref(), Some("none"));
        assert_eq!(policy_del("0x10-0x20", "0x10"), None);
        assert_eq!(words("all"), vec!["all"]);
        assert!(words("none").is_empty());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["dipcctl", "keys", "add", "0x10-0x20", "--json"]).unwrap();
        assert!(c.json);
        assert!(matches!(
            c.command,
            Command::Keys {
                command: KeysCommand::Add { .. }
            }
        ));
        assert!(Cli::try_parse_from(["dipcctl", "keys"]).is_err());
        let c = Cli::try_parse_from([
            "dipcctl",
            "join",
            "10.0.0.1:7420",
            "--secret-file",
            "/etc/dipc/secret",
            "--node-id",
            "4",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Join {
                node_id: Some(4),
                wait: 10,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["dipcctl", "join", "x", "--node-id", "0"]).is_err());
        assert!(Cli::try_parse_from(["dipcctl", "join"]).is_err());
        let c = Cli::try_parse_from(["dipcctl", "leave", "--force"]).unwrap();
        assert!(matches!(c.command, Command::Leave { force: true }));
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused_before_the_module_sees_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("dipcctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("secret");
        std::fs::write(&f, "x".repeat(40)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_secret_file(&f).unwrap_err().to_string();
        assert!(e.contains("mode 0600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Private and owned by root (the tests run as root on the CI
        // machine): accepted, as an absolute path; else refused.
        let r = check_secret_file(&f);
        let by_root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&f).unwrap()) == 0;
        if by_root {
            assert_eq!(r.unwrap(), std::fs::canonicalize(&f).unwrap());
        } else {
            assert!(r.is_err());
        }
        let e = check_secret_file(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_objects_table_shows_each_kind() {
        let list = vec![
            json!({"kind": "sem", "key": "0x00005101", "id": 3, "oid": 7, "size": 3,
                   "nsems": 3, "uid": 0, "mode": "0666"}),
            json!({"kind": "msg", "key": "0x00005102", "id": 4, "oid": 8, "size": 0,
                   "qnum": 2, "cbytes": 20, "uid": 1000, "mode": "0600"}),
            json!({"kind": "shm", "key": "0x00005103", "id": 5, "oid": 9, "size": 16384,
                   "nattch": 3, "nattch_here": 1, "pages_read": 0, "pages_write": 1,
                   "uid": 0, "mode": "0644",
                   "referee": {"nattch_by_node": {"1": 1, "2": 2}}}),
        ];
        let t = objects_table(&list);
        let words = |i: usize| t[i].split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            words(0),
            "KIND KEY ID OID UID MODE SIZE NATTCH HERE PAGES_RO PAGES_RW BY NODE"
        );
        assert_eq!(words(1), "sem 0x00005101 3 7 0 0666 3 - - - - -");
        assert_eq!(words(2), "msg 0x00005102 4 8 1000 0600 2 - - - - -");
        assert_eq!(words(3), "shm 0x00005103 5 9 0 0644 16384 3 1 0 1 1:1,2:2");
        // Columns line up: every row is as wide as the header up to BY NODE.
        let at = t[0].find("BY NODE").unwrap();
        assert!(t[1..]
            .iter()
            .all(|l| l.len() > at && l.as_bytes()[at - 1] == b' '));
    }

    #[test]
    fn the_metrics_table_shows_every_counter_kind_and_histogram() {
        let m = json!({
            "uptime_s": 12,
            "counters": { "joins": 3, "bad_frames": 0 },
            "frames_in": { "get": 7, "page_req": 2 },
            "frames_out": { "get_reply": 7, "page_grant": 2 },
            "request_us": { "get": { "count": 7, "sum_us": 70, "max_us": 31,
                "p50_us": 8, "p90_us": 16, "p99_us": 31, "buckets": [] } },
            "page_grant_us": { "count": 2, "sum_us": 3000, "max_us": 2000,
                "p50_us": 1024, "p90_us": 2000, "p99_us": 2000, "buckets": [] },
            "fsync_us": { "count": 0, "sum_us": 0, "max_us": 0,
                "p50_us": 0, "p90_us": 0, "p99_us": 0, "buckets": [] },
        });
        let t = metrics_table(&m);
        let find = |prefix: &str| {
            t.iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in {t:#?}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(t[0], "referee metrics, up 12s");
        assert_eq!(find("joins"), ["joins", "3"]);
        assert_eq!(find("get "), ["get", "7", "0"]);
        assert_eq!(find("get_reply"), ["get_reply", "0", "7"]);
        assert_eq!(find("page_req "), ["page_req", "2", "0"]);
        assert_eq!(
            find("request get"),
            ["request", "get", "7", "10", "8", "16", "31", "31"]
        );
        assert_eq!(
            find("page request to grant"),
            ["page", "request", "to", "grant", "2", "1500", "1024", "2000", "2000", "2000"]
        );
        assert_eq!(
            find("log sync"),
            ["log", "sync", "0", "0", "0", "0", "0", "0"]
        );
        assert_eq!(
            find("LATENCY"),
            ["LATENCY", "(us)", "COUNT", "MEAN", "P50", "P90", "P99", "MAX"]
        );
    }
}
