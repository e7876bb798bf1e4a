//! `promrelay lint` as a person runs it: exit codes, messages, and agreement
//! with `promtool check metrics` on what is a parse error.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn lint(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_promrelay"))
        .arg("lint")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promrelay runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn example() -> String {
    format!("{}/../../examples/page.prom", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_valid_page_exits_zero_silently() {
    let out = lint(&[&example()], b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    let page = std::fs::read(example()).unwrap();
    assert!(testkit::promtool_check_metrics(&page).is_clean());
}

#[test]
fn a_parse_error_prints_line_and_column_and_exits_one() {
    let out = lint(&["-"], b"# TYPE a gauge\na{b=\"c\" 1\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2:9: expected ',' or '}' after the label value, found '1'\n"
    );
}

#[test]
fn strict_violations_are_all_listed() {
    let page = b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\na 1\na 2\n";
    let out = lint(&[], page);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[1].starts_with("5:1: series a{} appears twice"),
        "{stdout}"
    );
    assert!(
        lines[0].starts_with("2:1: histogram \"h\": the series set {} has no le=\"+Inf\" bucket"),
        "{stdout}"
    );
    // The lenient level accepts what Prometheus's scraper accepts.
    assert_eq!(lint(&["--level=lenient"], page).status.code(), Some(0));
}

#[test]
fn the_format_is_sniffed_or_forced() {
    let om = b"# TYPE c counter\nc_total 1\n# EOF\n";
    assert_eq!(lint(&[], om).status.code(), Some(0));
    let forced = lint(&["--format=text"], om);
    assert_eq!(forced.status.code(), Some(0), "# EOF is a comment in text");
    let out = lint(&["--format=openmetrics"], b"c_total 1\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2:1: the page does not end with # EOF\n"
    );
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(lint(&["--format=xml"], b"").status.code(), Some(2));
    let out = lint(&["/nonexistent/page.prom"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/page.prom"));
}

#[test]
fn agrees_with_promtool_on_parse_errors() {
    let broken: &[&[u8]] = &[
        b"a{b=\"c\" 1\n",
        b"a one\n",
        b"1a 1\n",
        b"a{b=\"c\",b=\"d\"} 1\n",
        b"# TYPE a gauge\n# TYPE a gauge\na 1\n",
        b"a 1 2 3\n",
    ];
    for page in broken {
        let promtool = testkit::promtool_check_metrics(page);
        assert!(
            !promtool.parse_ok(),
            "promtool accepted {:?}",
            String::from_utf8_lossy(page)
        );
        assert_eq!(
            lint(&[], page).status.code(),
            Some(1),
            "{:?}",
            String::from_utf8_lossy(page)
        );
    }
}
