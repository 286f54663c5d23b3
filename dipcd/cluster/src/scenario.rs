//! Scenario files: which command runs on which node, in what order.
//!
//! ```text
//! # a comment
//! @1 insmod /dipc.ko node_id=1          run on node 1; must exit 0
//! @all cat /proc/dipc/status            run on every node at once
//! @2,3 some-command                     run on nodes 2 and 3 at once
//! @1 ! insmod /dipc.ko referee=bogus    must exit non-zero
//! @1 timeout=300 long-command           this step may take 300 s
//! @3 %kill                              the runner kills node 3's QEMU
//! @2 %link off                          the runner unplugs node 2's network
//! @2 %link on                           ... and plugs it back in
//! ```
//! Steps whose command starts with `%` are done by the runner, not in the
//! guest. A killed node takes no further steps.
//! A line ending in `\` continues on the next. Commands run in the guest's
//! `sh` with `NODE`, `NODES` and `REFEREE_IP` set.

use std::fmt;

/// One step of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number in the file, for messages.
    pub line: usize,
    /// Nodes it runs on (1-based), in parallel.
    pub nodes: Vec<usize>,
    /// Whether the command must fail (exit non-zero) instead of succeed.
    pub expect_failure: bool,
    /// Per-step time limit in seconds, if given.
    pub timeout_s: Option<u64>,
    /// Shell command (for a runner action, its text).
    pub command: String,
    /// What the runner itself does instead of running `command` in the
    /// guests, if anything.
    pub action: Option<Action>,
}

/// A step the runner carries out on the guests from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Kill the guests' QEMU processes (SIGKILL: no shutdown, no FIN).
    Kill,
    /// Plug (true) or unplug (false) the guests' network cable.
    Link(bool),
}

/// A syntax error in a scenario file.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a scenario for a cluster of `nodes` nodes.
pub fn parse(text: &str, nodes: usize) -> Result<Vec<Step>, ParseError> {
    let mut steps = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (line_no, mut line) = match pending.take() {
            Some((n, mut acc)) => {
                acc.push('\n');
                acc.push_str(raw);
                (n, acc)
            }
            None => (i + 1, raw.to_string()),
        };
        if line.ends_with('\\') {
            line.pop();
            pending = Some((line_no, line));
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        steps.push(parse_step(line_no, trimmed, nodes)?);
    }
    if let Some((n, _)) = pending {
        return Err(ParseError {
            line: n,
            message: "continuation at end of file".into(),
        });
    }
    Ok(steps)
}

fn parse_step(line: usize, text: &str, nodes: usize) -> Result<Step, ParseError> {
    let err = |message: String| ParseError { line, message };
    let rest = text
        .strip_prefix('@')
        .ok_or_else(|| err("a step starts with @NODES".into()))?;
    let (target, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let targets = if target == "all" {
        (1..=nodes).collect()
    } else {
        let mut v = Vec::new();
        for t in target.split(',') {
            let n: usize = t
                .parse()
                .map_err(|_| err(format!("bad node {t:?} (a number or `all`)")))?;
            if n == 0 || n > nodes {
                return Err(err(format!("node {n} is not in a {nodes}-node cluster")));
            }
            if !v.contains(&n) {
                v.push(n);
            }
        }
        v
    };
    let mut expect_failure = false;
    let mut timeout_s = None;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("! ") {
            expect_failure = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix("timeout=") {
            let (n, r) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
            timeout_s = Some(n.parse().map_err(|_| err(format!("bad timeout {n:?}")))?);
            rest = r;
        } else {
            break;
        }
    }
    let command = rest.trim();
    if command.is_empty() {
        return Err(err("empty command".into()));
    }
    let action = match command.strip_prefix('%') {
        None => None,
        Some(a) => Some(match a.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["kill"] => Action::Kill,
            ["link", "on"] => Action::Link(true),
            ["link", "off"] => Action::Link(false),
            _ => return Err(err(format!("unknown runner action {command:?}"))),
        }),
    };
    if action.is_some() && (expect_failure || timeout_s.is_some()) {
        return Err(err("a runner action takes no `!` or `timeout=`".into()));
    }
    Ok(Step {
        line,
        nodes: targets,
        expect_failure,
        timeout_s,
        command: command.to_string(),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps() {
        let s = parse(
            "# c\n\n@1 echo a\n@all ! false\n@3,2 timeout=5 x \\\n  y\n",
            3,
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].nodes, vec![1]);
        assert_eq!(s[0].command, "echo a");
        assert_eq!(s[1].nodes, vec![1, 2, 3]);
        assert!(s[1].expect_failure);
        assert_eq!(s[2].nodes, vec![3, 2]);
        assert_eq!(s[2].timeout_s, Some(5));
        assert_eq!(s[2].command, "x \n  y");
        assert_eq!(s[2].line, 5);
        assert_eq!(s[0].action, None);
    }

    #[test]
    fn parses_runner_actions() {
        let s = parse("@3 %kill\n@2 %link off\n@2 %link  on\n", 3).unwrap();
        assert_eq!(s[0].action, Some(Action::Kill));
        assert_eq!(s[0].nodes, vec![3]);
        assert_eq!(s[1].action, Some(Action::Link(false)));
        assert_eq!(s[2].action, Some(Action::Link(true)));
        assert!(parse("@1 %reboot", 3).is_err());
        assert!(parse("@1 %link", 3).is_err());
        assert!(parse("@1 ! %kill", 3).is_err());
        assert!(parse("@1 timeout=3 %kill", 3).is_err());
    }

    #[test]
    fn rejects_bad_steps() {
        assert!(parse("echo", 3).is_err());
        assert!(parse("@4 echo", 3).is_err());
        assert!(parse("@0 echo", 3).is_err());
        assert!(parse("@x echo", 3).is_err());
        assert!(parse("@1", 3).is_err());
        assert!(parse("@1 timeout=z echo", 3).is_err());
        assert!(parse("@1 echo \\", 3).is_err());
        assert_eq!(parse("@5 echo", 3).unwrap_err().line, 1);
    }
}
