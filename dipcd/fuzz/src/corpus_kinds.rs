//! `corpus-kinds [--require-all] [--verbose] DIR...`: replays corpora
//! through the fuzz target's checks and counts the frames of each kind that
//! decoded, so a run can show (and a test can require) that every kind was
//! reached.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let require_all = args.iter().any(|a| a == "--require-all");
    let verbose = args.iter().any(|a| a == "--verbose");
    let dirs: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if dirs.is_empty() {
        eprintln!("usage: corpus-kinds [--require-all] [--verbose] DIR...");
        return ExitCode::from(2);
    }
    let mut counts = vec![0u64; usize::from(dipc_wire_fuzz::KINDS)];
    let mut inputs = 0u64;
    for dir in &dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("corpus-kinds: {dir}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for entry in entries.flatten() {
            let Ok(data) = std::fs::read(entry.path()) else {
                continue;
            };
            inputs += 1;
            dipc_wire_fuzz::check(&data, &mut |k| counts[k as usize] += 1);
        }
    }
    let missing: Vec<usize> = (1..counts.len()).filter(|&k| counts[k] == 0).collect();
    println!(
        "corpus: {inputs} inputs; frame kinds decoded: {}/{}",
        counts.len() - 1 - missing.len(),
        counts.len() - 1
    );
    if verbose {
        for (k, n) in counts.iter().enumerate().skip(1) {
            println!("  kind {k:>2}: {n} frames");
        }
    }
    if require_all && !missing.is_empty() {
        eprintln!("corpus-kinds: kinds never decoded: {missing:?}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
