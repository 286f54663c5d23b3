//! One QEMU guest: its process, its console log and its command agent.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// How a guest is started.
pub struct GuestConfig<'a> {
    /// QEMU binary.
    pub qemu: &'a str,
    /// `-accel` value.
    pub accel: &'a str,
    /// Kernel image.
    pub kernel: &'a Path,
    /// Initramfs.
    pub initrd: &'a Path,
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Cluster size.
    pub nodes: usize,
    /// Multicast port of this run's virtual network.
    pub mcast_port: u16,
    /// Where console logs and agent sockets go.
    pub dir: &'a Path,
    /// Extra kernel command line.
    pub append: &'a str,
    /// QEMU's `-cpu` model, or empty for its default.
    pub cpu_model: &'a str,
    /// The arm64 nodes and how they boot.
    pub arm64: Arm64<'a>,
}

/// The nodes that run as arm64 guests (QEMU's `virt` machine under TCG)
/// beside the x86-64 ones, on the same virtual network.
pub struct Arm64<'a> {
    /// Their node numbers (1-based); empty for none.
    pub nodes: &'a [usize],
    /// `qemu-system-aarch64`.
    pub qemu: &'a str,
    /// The arm64 kernel image (`arch/arm64/boot/Image`).
    pub kernel: &'a Path,
    /// Their initramfs.
    pub initrd: &'a Path,
    /// Extra kernel command line for them (the x86-64 guests' clock
    /// options left out).
    pub append: &'a str,
}

/// What a guest's agent reported.
#[derive(Debug)]
pub enum Event {
    /// The guest booted and its agent waits for commands: the node and
    /// how many CPUs the guest's kernel brought up (`nproc` in the guest).
    Ready(usize, u32),
    /// A command finished.
    Done {
        /// Node.
        node: usize,
        /// Command id.
        id: u64,
        /// Exit status.
        rc: i32,
        /// Output (stdout and stderr).
        output: String,
    },
    /// The agent's connection closed (the guest stopped or crashed).
    Gone(usize),
}

/// A running guest. Dropping it kills QEMU.
pub struct Guest {
    /// Node number, 1-based.
    pub node: usize,
    child: Child,
    agent: Option<UnixStream>,
    /// Console log file.
    pub console: PathBuf,
    /// CPUs the guest reported when its agent started (0 until then).
    pub cpus: u32,
}

impl Guest {
    /// Starts QEMU for `node` (1-based).
    pub fn start(cfg: &GuestConfig<'_>, node: usize) -> io::Result<Self> {
        let console = cfg.dir.join(format!("node{node}.console"));
        let agent = cfg.dir.join(format!("node{node}.agent"));
        let _ = std::fs::remove_file(&agent);
        let arm64 = cfg.arm64.nodes.contains(&node);
        // An arm64 guest: QEMU's virt machine (GIC, PL011 console, PCIe),
        // always under TCG, on the `max` CPU (pointer authentication with
        // QEMU's own fast algorithm, and BTI, both emulated).
        let (qemu, accel, kernel, initrd, console_dev, append) = if arm64 {
            (
                cfg.arm64.qemu,
                "tcg",
                cfg.arm64.kernel,
                cfg.arm64.initrd,
                "ttyAMA0",
                cfg.arm64.append,
            )
        } else {
            (
                cfg.qemu, cfg.accel, cfg.kernel, cfg.initrd, "ttyS0", cfg.append,
            )
        };
        let mut cmd = Command::new(qemu);
        if arm64 {
            cmd.args(["-M", "virt", "-cpu", "max,pauth-impdef=on"]);
        }
        cmd.args([
            "-accel",
            accel,
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
        ])
        .args([
            "-m",
            &cfg.mem_mib.to_string(),
            "-smp",
            &cfg.cpus.to_string(),
        ])
        .args(if cfg.cpu_model.is_empty() || arm64 {
            vec![]
        } else {
            vec!["-cpu", cfg.cpu_model]
        })
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console={console_dev} panic=-1 oops=panic dipc.node={node} dipc.nodes={} {append}",
            cfg.nodes
        ))
        .arg("-chardev")
        .arg(format!("file,id=con,path={}", console.display()))
        .args(["-serial", "chardev:con"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=agent,path={},server=on,wait=off",
            agent.display()
        ))
        .args(["-device", "virtio-serial-pci"])
        .args(["-device", "virtconsole,chardev=agent"])
        .arg("-monitor")
        .arg(format!(
            "unix:{},server=on,wait=off",
            cfg.dir.join(format!("node{node}.monitor")).display()
        ))
        .arg("-netdev")
        .arg(format!(
            "socket,id=n0,mcast=230.0.0.1:{},localaddr=127.0.0.1",
            cfg.mcast_port
        ))
        .arg("-device")
        .arg(format!(
            "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:{node:02x}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            cfg.dir.join(format!("node{node}.qemu.log")),
        )?));
        kill_with_parent(&mut cmd);
        let child = cmd.spawn()?;
        Ok(Guest {
            node,
            child,
            agent: None,
            console,
            cpus: 0,
        })
    }

    /// Connects to the agent socket once QEMU created it, and starts a thread
    /// that turns the agent's output into [`Event`]s.
    pub fn connect(
        &mut self,
        dir: &Path,
        events: Sender<Event>,
        deadline: Instant,
    ) -> io::Result<()> {
        let path = dir.join(format!("node{}.agent", self.node));
        let stream = loop {
            match UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    if let Some(status) = self.child.try_wait()? {
                        return Err(io::Error::other(format!("QEMU exited early: {status}")));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let reader = stream.try_clone()?;
        let node = self.node;
        std::thread::spawn(move || read_agent(node, reader, events));
        self.agent = Some(stream);
        Ok(())
    }

    /// Sends a command to the agent.
    pub fn send(&mut self, id: u64, command: &str) -> io::Result<()> {
        let agent = self
            .agent
            .as_mut()
            .ok_or_else(|| io::Error::other("agent not connected"))?;
        writeln!(agent, "{id} {}", base64(command.as_bytes()))
    }

    /// Where the guest's vCPUs are: the instruction pointer of each, sampled
    /// `samples` times through the QEMU monitor (for a step that hangs).
    pub fn cpu_samples(&self, dir: &std::path::Path, samples: usize) -> String {
        let path = dir.join(format!("node{}.monitor", self.node));
        let mut out = String::new();
        let Ok(mut mon) = UnixStream::connect(&path) else {
            return "monitor unreachable".into();
        };
        let _ = mon.set_read_timeout(Some(Duration::from_millis(300)));
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..samples {
            let _ = writeln!(mon, "info registers -a");
            std::thread::sleep(Duration::from_millis(200));
            let mut text = String::new();
            while let Ok(n) = mon.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            for l in text.lines().filter(|l| l.contains("RIP=")) {
                let rip = l.split_whitespace().find(|w| w.starts_with("RIP="));
                out.push_str(rip.unwrap_or(l));
                out.push(' ');
            }
        }
        out
    }

    /// Kills QEMU at once (SIGKILL): the guest's connections end without a
    /// FIN, as when a machine loses power.
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        self.agent = None;
        Ok(())
    }

    /// Runs one human-monitor command and returns what QEMU printed.
    pub fn monitor(&self, dir: &std::path::Path, command: &str) -> io::Result<String> {
        let path = dir.join(format!("node{}.monitor", self.node));
        let mut mon = UnixStream::connect(&path)?;
        mon.set_read_timeout(Some(Duration::from_millis(300)))?;
        writeln!(mon, "{command}")?;
        std::thread::sleep(Duration::from_millis(200));
        let mut text = String::new();
        let mut buf = vec![0u8; 1 << 14];
        while let Ok(n) = mon.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Ok(text)
    }

    /// Asks the guest to power off, waits up to `grace`, then kills it.
    pub fn stop(&mut self, grace: Duration) {
        let _ = self.send(0, "shutdown");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `lines` lines of the console log.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.console).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// QEMU dies with the runner, however the runner ends (even SIGKILL).
fn kill_with_parent(cmd: &mut Command) {
    #[expect(unsafe_code, reason = "pre_exec is unsafe")]
    // The closure runs in the child between fork and exec.
    // SAFETY: it only calls prctl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The CPU count of `node`'s "@@READY NODE NPROC" line, if `text` is one.
/// A missing or garbled count is 0, which no guest has, so the runner's CPU
/// check fails on it.
fn parse_ready(node: usize, text: &str) -> Option<u32> {
    let mut it = text.strip_prefix("@@READY ")?.split_whitespace();
    if it.next()? != node.to_string() {
        return None;
    }
    Some(it.next().and_then(|s| s.parse().ok()).unwrap_or(0))
}

fn read_agent(node: usize, stream: UnixStream, events: Sender<Event>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut current: Option<(u64, String)> = None;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if let Some(cpus) = parse_ready(node, text) {
            let _ = events.send(Event::Ready(node, cpus));
        } else if let Some(rest) = text.strip_prefix("@@BEGIN ") {
            current = rest.trim().parse().ok().map(|id| (id, String::new()));
        } else if let Some(rest) = text.strip_prefix("@@END ") {
            let mut it = rest.split_whitespace();
            let id = it.next().and_then(|s| s.parse().ok());
            let rc = it.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
            if let (Some(id), Some((cur, mut output))) = (id, current.take()) {
                if id == cur {
                    // The agent adds one newline after the output.
                    if output.ends_with("\n\n") || output == "\n" {
                        output.pop();
                    }
                    let _ = events.send(Event::Done {
                        node,
                        id,
                        rc,
                        output,
                    });
                }
            }
        } else if let Some((_, out)) = current.as_mut() {
            out.push_str(text);
            out.push('\n');
        }
    }
    let _ = events.send(Event::Gone(node));
}

/// Standard base64 (RFC 4648) with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{base64, parse_ready};

    #[test]
    fn ready_line_carries_the_cpu_count() {
        assert_eq!(parse_ready(2, "@@READY 2 2"), Some(2));
        assert_eq!(parse_ready(3, "@@READY 3 1"), Some(1));
        // Another node's line, or no READY line at all.
        assert_eq!(parse_ready(2, "@@READY 3 2"), None);
        assert_eq!(parse_ready(2, "@@BEGIN 7"), None);
        // An old guest (no count) or garbage: 0, which fails the check.
        assert_eq!(parse_ready(1, "@@READY 1"), Some(0));
        assert_eq!(parse_ready(1, "@@READY 1 two"), Some(0));
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
}
