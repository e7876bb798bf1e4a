//! `promtool check metrics`: the reference Go parser and linter.

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;

use crate::daemon::find_program;

/// The result of [`promtool_check_metrics`].
///
/// Observed exit codes of `promtool check metrics` (Prometheus 2.42):
/// `0` when the page parses and lints clean (an empty page included), `3`
/// when it parses but has lint problems (e.g. a counter without `_total`, a
/// family without `HELP`), `1` when it does not parse. Lint and parse
/// messages are written to stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromtoolOutcome {
    /// The exit code.
    pub code: i32,
    /// What promtool wrote to stdout.
    pub stdout: String,
    /// What promtool wrote to stderr (lint findings and parse errors).
    pub stderr: String,
}

impl PromtoolOutcome {
    /// The page parsed and had no lint findings (exit code 0).
    pub fn is_clean(&self) -> bool {
        self.code == 0
    }

    /// The page parsed, possibly with lint findings (exit code 0 or 3).
    pub fn parse_ok(&self) -> bool {
        matches!(self.code, 0 | 3)
    }
}

/// Runs `promtool check metrics` with `page` on stdin.
///
/// Note that promtool reads the Prometheus text format only; an OpenMetrics
/// `# EOF` line is accepted as a comment.
///
/// # Panics
///
/// If promtool is missing, cannot be run, or is killed by a signal.
pub fn promtool_check_metrics(page: &[u8]) -> PromtoolOutcome {
    let mut child = Command::new(find_program("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let output = thread::scope(|scope| {
        // Feed stdin concurrently so a large page cannot deadlock on pipes.
        let writer = scope.spawn(move || stdin.write_all(page));
        let output = child.wait_with_output();
        // promtool may stop reading early on a parse error: ignore EPIPE.
        let _ = writer.join();
        output
    })
    .unwrap_or_else(|e| panic!("cannot wait for promtool: {e}"));
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("promtool was killed: {}", output.status));
    PromtoolOutcome {
        code,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_page() {
        let outcome = promtool_check_metrics(
            b"# HELP foo_total A counter.\n# TYPE foo_total counter\nfoo_total{a=\"b\"} 1\n",
        );
        assert!(outcome.is_clean(), "{outcome:?}");
        assert!(outcome.parse_ok());
    }

    #[test]
    fn lint_findings_exit_3() {
        let outcome = promtool_check_metrics(b"# TYPE foo counter\nfoo 1\n");
        assert_eq!(outcome.code, 3, "{outcome:?}");
        assert!(!outcome.is_clean());
        assert!(outcome.parse_ok());
        assert!(outcome.stderr.contains("_total"), "{outcome:?}");
        assert!(outcome.stderr.contains("no help text"), "{outcome:?}");
    }

    #[test]
    fn garbage_exits_1() {
        let outcome = promtool_check_metrics(b"this is {{ not a metrics page\n");
        assert_eq!(outcome.code, 1, "{outcome:?}");
        assert!(!outcome.parse_ok());
        assert!(outcome.stderr.contains("parsing error"), "{outcome:?}");
    }

    #[test]
    fn large_page_does_not_deadlock() {
        let mut page = String::from("# HELP big A gauge.\n# TYPE big gauge\n");
        for i in 0..50_000 {
            page.push_str(&format!("big{{i=\"{i}\"}} {i}\n"));
        }
        assert!(promtool_check_metrics(page.as_bytes()).is_clean());
    }
}
