//! Man pages generated from the clap definitions (`clap_mangen`), one per
//! command and subcommand (`dipcctl-join.8`, as git does), checked against
//! the pages in `Documentation/man/`. `make man` (`DIPC_UPDATE_MAN=1`)
//! rewrites them. Included by the tests of `dipcd` and `dipcctl`.

use std::path::PathBuf;

/// `cmd`'s pages in `section`: (file name, roff).
pub fn pages(mut cmd: clap::Command, section: &'static str) -> Vec<(String, Vec<u8>)> {
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    render(&cmd, &name, &name, section, &mut out);
    out
}

fn render(
    cmd: &clap::Command,
    title: &str,
    bin: &str,
    section: &'static str,
    out: &mut Vec<(String, Vec<u8>)>,
) {
    // A command's name is a `&'static str` without clap's `string`
    // feature; these few test-only strings live until the test ends.
    let title_static: &'static str = Box::leak(title.to_string().into_boxed_str());
    let page = cmd.clone().name(title_static).bin_name(bin.to_string());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .section(section)
        .manual("dipc")
        .render(&mut roff)
        .expect("rendering a man page into memory");
    out.push((format!("{title}.{section}"), roff));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let t = format!("{title}-{}", sub.get_name());
        let b = format!("{bin} {}", sub.get_name());
        render(sub, &t, &b, section, out);
    }
}

/// Fails unless `Documentation/man/` holds exactly `pages` for the
/// command `name` (with `DIPC_UPDATE_MAN` set, makes it so).
pub fn check(name: &str, pages: &[(String, Vec<u8>)]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Documentation/man");
    let ours = |f: &str| f.starts_with(&format!("{name}.")) || f.starts_with(&format!("{name}-"));
    let existing: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|f| ours(f))
                .collect()
        })
        .unwrap_or_default();
    if std::env::var_os("DIPC_UPDATE_MAN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for f in &existing {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        for (f, roff) in pages {
            std::fs::write(dir.join(f), roff).unwrap();
        }
        return;
    }
    let mut stale: Vec<String> = pages
        .iter()
        .filter(|(f, roff)| std::fs::read(dir.join(f)).ok().as_deref() != Some(&roff[..]))
        .map(|(f, _)| f.clone())
        .collect();
    stale.extend(
        existing
            .into_iter()
            .filter(|f| !pages.iter().any(|(p, _)| p == f)),
    );
    assert!(
        stale.is_empty(),
        "man pages out of date with the command line: {stale:?}; run `make man` and commit Documentation/man/"
    );
}
