//! The guests' clock. The test kernel has neither HPET nor an ACPI PM timer,
//! so under TCG its TSC calibration against the PIT often fails and the
//! guest falls back to the 4 ms refined-jiffies clocksource, which makes
//! every latency a multiple of 4 ms. Under TCG the guest's TSC is the host's
//! (QEMU reads the host counter), and under KVM it runs at the host's rate
//! too, so the runner measures the host's TSC frequency and hands it to the
//! guest kernel (`tsc_early_khz=`), which then skips the calibration.

use std::time::{Duration, Instant};

/// Kernel command-line words that give the guest a working TSC clocksource,
/// or "" where the host's TSC cannot be measured.
pub fn guest_tsc_args() -> String {
    match host_tsc_khz() {
        Some(khz) => format!("tsc_early_khz={khz} tsc=reliable"),
        None => String::new(),
    }
}

/// The host's TSC frequency in kHz, measured against the monotonic clock
/// over 100 ms (the best of three, to step around a preemption).
#[cfg(target_arch = "x86_64")]
fn host_tsc_khz() -> Option<u32> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // Without a constant-rate TSC the measurement says nothing.
    if !cpuinfo.split_whitespace().any(|w| w == "constant_tsc") {
        return None;
    }
    let mut best: Option<f64> = None;
    for _ in 0..3 {
        let t0 = Instant::now();
        let c0 = rdtsc();
        std::thread::sleep(Duration::from_millis(100));
        let c1 = rdtsc();
        let ns = t0.elapsed().as_nanos() as f64;
        let khz = (c1.wrapping_sub(c0)) as f64 / ns * 1e6;
        // The three agree to a few kHz; keep the lowest (least inflated by
        // a preemption between the two reads of each pair).
        best = Some(best.map_or(khz, |b: f64| b.min(khz)));
    }
    let khz = best?;
    (1_000.0..20_000_000.0)
        .contains(&khz)
        .then_some(khz.round() as u32)
}

#[cfg(not(target_arch = "x86_64"))]
fn host_tsc_khz() -> Option<u32> {
    None
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}
