//! Choosing the accelerator: KVM only when a guest really runs under it.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The accelerator a run uses, and why.
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation, with the reason KVM was not used.
    Tcg(String),
}

impl Accel {
    /// The `-accel` value.
    pub fn name(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg(_) => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accel::Kvm => f.write_str("kvm"),
            Accel::Tcg(why) => write!(f, "tcg ({why})"),
        }
    }
}

/// Picks the accelerator for `want` (`auto`, `kvm` or `tcg`).
pub fn choose(
    want: &str,
    qemu: &str,
    kernel: &Path,
    initrd: &Path,
    dir: &Path,
) -> Result<Accel, String> {
    match want {
        "tcg" => Ok(Accel::Tcg("asked for".into())),
        "kvm" => probe(qemu, kernel, initrd, dir)
            .map(|()| Accel::Kvm)
            .map_err(|e| format!("--accel kvm: {e}")),
        _ => Ok(match cached_probe(qemu, kernel, initrd, dir) {
            Ok(()) => Accel::Kvm,
            Err(e) => Accel::Tcg(e),
        }),
    }
}

/// [`probe`], remembered until the host reboots (the answer depends on the
/// host, not on what the guest runs).
fn cached_probe(qemu: &str, kernel: &Path, initrd: &Path, dir: &Path) -> Result<(), String> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = std::env::temp_dir().join(format!("dipc-kvm-probe-{}", boot_id.trim()));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        return match text.strip_prefix("tcg ") {
            Some(why) => Err(format!("{why}; cached in {}", cache.display())),
            None => Ok(()),
        };
    }
    let result = probe(qemu, kernel, initrd, dir);
    let text = match &result {
        Ok(()) => "kvm".to_string(),
        Err(why) => format!("tcg {why}"),
    };
    let _ = std::fs::write(&cache, text);
    result
}

/// Boots a probe guest under KVM and waits for its marker. `/dev/kvm` can
/// exist and open yet be unable to run a guest (no nested virtualisation), so
/// only a real boot answers the question.
fn probe(qemu: &str, kernel: &Path, initrd: &Path, dir: &Path) -> Result<(), String> {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Err("/dev/kvm cannot be opened".into());
    }
    let console = dir.join("kvm-probe.console");
    let _ = std::fs::remove_file(&console);
    let mut child = Command::new(qemu)
        .args([
            "-accel",
            "kvm",
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-m",
            "128",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 dipc.probe=1"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {qemu}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = std::fs::read_to_string(&console).unwrap_or_default();
    if text.contains("@@PROBE-OK") {
        Ok(())
    } else {
        Err(match status {
            Some(s) => format!("/dev/kvm present but a KVM guest failed ({s})"),
            None => "/dev/kvm present but a KVM guest did not boot in 15 s".into(),
        })
    }
}
