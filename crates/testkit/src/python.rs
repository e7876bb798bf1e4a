//! The Python `prometheus_client` parsers, as an independent second opinion.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use crate::INSTALL_HINT;

/// The interpreter that has `prometheus_client` (Debian's
/// `python3-prometheus-client`); a `python3` earlier on `PATH` may not.
const PYTHON: &str = "/usr/bin/python3";

/// Exit code the script uses when `prometheus_client` cannot be imported.
const EXIT_NO_MODULE: i32 = 3;
/// Exit code the script uses when the page does not parse.
const EXIT_PARSE_ERROR: i32 = 2;

/// Reads the page from stdin, parses it fully (the parsers are lazy
/// generators) and prints one tab-separated line per family and per sample.
/// Strings are JSON-encoded (ASCII only, so never containing a tab or a
/// newline); numbers are Python `repr`s of floats; timestamps are seconds.
const SCRIPT: &str = r#"
import json, sys
try:
    if sys.argv[1] == "openmetrics":
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    sys.stderr.write("cannot import prometheus_client: %s\n" % e)
    sys.exit(3)
q = json.dumps
out = []
try:
    text = sys.stdin.buffer.read().decode("utf-8")
    for fam in text_string_to_metric_families(text):
        out.append("F\t%s\t%s\t%s" % (q(fam.name), q(fam.type), q(fam.documentation)))
        for s in fam.samples:
            ts = "" if s.timestamp is None else repr(float(s.timestamp))
            fields = ["S", q(s.name), repr(float(s.value)), ts]
            for k in sorted(s.labels):
                fields += [q(k), q(s.labels[k])]
            out.append("\t".join(fields))
except Exception as e:
    sys.stderr.write("%s: %s\n" % (type(e).__name__, e))
    sys.exit(2)
sys.stdout.write("".join(line + "\n" for line in out))
"#;

/// Which `prometheus_client` parser [`python_parse`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonParser {
    /// `prometheus_client.parser`: the Prometheus text format 0.0.4.
    Text,
    /// `prometheus_client.openmetrics.parser`: OpenMetrics 1.0 text, which
    /// must end with `# EOF`.
    OpenMetrics,
}

/// What a Python parser made of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonSummary {
    /// Number of metric families.
    pub families: usize,
    /// Number of samples across all families.
    pub samples: usize,
    /// `(family name, type)` in page order, e.g. `("go_goroutines", "gauge")`,
    /// as Python reports them; see [`PythonFamily`] for how that differs
    /// from the page.
    pub types: Vec<(String, String)>,
    /// The families in full, in page order.
    pub details: Vec<PythonFamily>,
}

impl PythonSummary {
    /// The type of the family named `name`, if there is one.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// One metric family as parsed by Python.
///
/// Both parsers normalise to the OpenMetrics data model, so names and types
/// can differ from the page's `TYPE` lines: a counter family `foo_total` is
/// named `foo` (and the text parser renames the samples of a counter `foo`
/// to `foo_total`), and `untyped` becomes `unknown`. The text parser also
/// turns every sample whose name does not fit the current family (e.g. a
/// counter's `_created`, or each line of a family without `TYPE`) into a
/// single-sample `unknown` family of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonFamily {
    /// Family name (for counters, without `_total`).
    pub name: String,
    /// Type: `counter`, `gauge`, `histogram`, `summary`, `unknown`, ...
    pub kind: String,
    /// The `HELP` text, unescaped (empty if absent).
    pub help: String,
    /// The family's samples in page order.
    pub samples: Vec<PythonSample>,
}

/// One sample as parsed by Python.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonSample {
    /// Sample name, e.g. `http_requests_total` or `latency_bucket`.
    pub name: String,
    /// Labels sorted by name, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (`NaN` and infinities included).
    pub value: f64,
    /// The timestamp in seconds, if the sample had one.
    pub timestamp: Option<f64>,
}

/// Parses `page` with Python's `prometheus_client` (run as
/// `/usr/bin/python3`) and summarises the result.
///
/// Returns `Err` with the Python exception (`Type: message`) if the page is
/// rejected, including when it is not UTF-8.
///
/// # Panics
///
/// If `/usr/bin/python3` or its `prometheus_client` module is missing, or the
/// interpreter fails in an unexpected way.
pub fn python_parse(page: &[u8], parser: PythonParser) -> Result<PythonSummary, String> {
    if !Path::new(PYTHON).is_file() {
        panic!("{PYTHON} was not found; {INSTALL_HINT}");
    }
    let which = match parser {
        PythonParser::Text => "text",
        PythonParser::OpenMetrics => "openmetrics",
    };
    let mut child = Command::new(PYTHON)
        .args(["-c", SCRIPT, which])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let output = thread::scope(|scope| {
        let writer = scope.spawn(move || stdin.write_all(page));
        let output = child.wait_with_output();
        let _ = writer.join();
        output
    })
    .unwrap_or_else(|e| panic!("cannot wait for {PYTHON}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(EXIT_PARSE_ERROR) => return Err(stderr.trim().to_owned()),
        Some(EXIT_NO_MODULE) => panic!("{}; {INSTALL_HINT}", stderr.trim()),
        _ => panic!("{PYTHON} failed ({}): {stderr}", output.status),
    }
    let stdout = String::from_utf8(output.stdout)
        .unwrap_or_else(|e| panic!("python summary is not UTF-8: {e}"));
    Ok(decode_summary(&stdout)
        .unwrap_or_else(|e| panic!("cannot decode python summary ({e}):\n{stdout}")))
}

fn decode_summary(text: &str) -> Result<PythonSummary, String> {
    let mut details: Vec<PythonFamily> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        match fields.next() {
            Some("F") => {
                let mut next = || json_string(fields.next().unwrap_or_default());
                details.push(PythonFamily {
                    name: next()?,
                    kind: next()?,
                    help: next()?,
                    samples: Vec::new(),
                });
            }
            Some("S") => {
                let name = json_string(fields.next().unwrap_or_default())?;
                let value = fields.next().unwrap_or_default();
                let value = value.parse().map_err(|_| format!("bad value {value:?}"))?;
                let timestamp = match fields.next().unwrap_or_default() {
                    "" => None,
                    ts => Some(ts.parse().map_err(|_| format!("bad timestamp {ts:?}"))?),
                };
                let mut labels = Vec::new();
                while let Some(key) = fields.next() {
                    let value = fields.next().ok_or("label without value")?;
                    labels.push((json_string(key)?, json_string(value)?));
                }
                details
                    .last_mut()
                    .ok_or("sample before any family")?
                    .samples
                    .push(PythonSample {
                        name,
                        labels,
                        value,
                        timestamp,
                    });
            }
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    Ok(PythonSummary {
        families: details.len(),
        samples: details.iter().map(|f| f.samples.len()).sum(),
        types: details
            .iter()
            .map(|f| (f.name.clone(), f.kind.clone()))
            .collect(),
        details,
    })
}

/// Decodes one JSON string literal as written by Python's `json.dumps`.
fn json_string(literal: &str) -> Result<String, String> {
    let inner = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| format!("not a JSON string: {literal:?}"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    let hex4 = |chars: &mut std::str::Chars<'_>| -> Result<u32, String> {
        let digits: String = chars.by_ref().take(4).collect();
        u32::from_str_radix(&digits, 16).map_err(|_| format!("bad \\u escape in {literal:?}"))
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('/') => '/',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => {
                let unit = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must be followed by `\uDC00`..`\uDFFF`.
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err(format!("lone surrogate in {literal:?}"));
                    }
                    let low = hex4(&mut chars)?;
                    0x10000 + ((unit - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    unit
                };
                char::from_u32(code).ok_or_else(|| format!("bad code point in {literal:?}"))?
            }
            _ => return Err(format!("bad escape in {literal:?}")),
        };
        out.push(decoded);
    }
    Ok(out)
}

/// Runs `snippet` with Python's `prometheus_client` as a real push client
/// against the Pushgateway-compatible server at `gateway` (`host:port`).
/// The snippet sees `gateway`, an empty `registry`, the metric classes
/// (`Counter`, `Gauge`, `Histogram`) and `push_to_gateway`,
/// `pushadd_to_gateway` and `delete_from_gateway`.
///
/// # Panics
///
/// If Python cannot run or the snippet raises (a push refused with an
/// HTTP error raises); the message has Python's stderr.
pub fn python_push(gateway: &str, snippet: &str) {
    let script = format!(
        "import sys\n\
         from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram\n\
         from prometheus_client import push_to_gateway, pushadd_to_gateway, delete_from_gateway\n\
         gateway = sys.argv[1]\n\
         registry = CollectorRegistry()\n\
         {snippet}\n"
    );
    let output = Command::new(PYTHON)
        .args(["-c", &script, gateway])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}; {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "python failed ({}):\n{}\n{snippet}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_PAGE: &str = "\
# HELP http_requests_total Requests \\\\ served.\n\
# TYPE http_requests_total counter\n\
http_requests_total{code=\"200\",path=\"/a\\\"b\\nc\\\\d\"} 1027 1395066363000\n\
http_requests_total{code=\"500\",path=\"/é\"} 3\n\
# TYPE temperature gauge\n\
temperature NaN\n\
# TYPE latency histogram\n\
latency_bucket{le=\"0.5\"} 1\n\
latency_bucket{le=\"+Inf\"} 2\n\
latency_sum 0.75\n\
latency_count 2\n\
untyped_thing -Inf\n";

    #[test]
    fn parses_text_page() {
        let summary = python_parse(TEXT_PAGE.as_bytes(), PythonParser::Text).unwrap();
        assert_eq!(summary.families, 4, "{summary:#?}");
        assert_eq!(summary.samples, 8);
        // Python names counter families without `_total`, and says `unknown`.
        assert_eq!(summary.type_of("http_requests"), Some("counter"));
        assert_eq!(summary.type_of("temperature"), Some("gauge"));
        assert_eq!(summary.type_of("latency"), Some("histogram"));
        assert_eq!(summary.type_of("untyped_thing"), Some("unknown"));

        let requests = &summary.details[0];
        assert_eq!(requests.help, "Requests \\ served.");
        let first = &requests.samples[0];
        assert_eq!(first.name, "http_requests_total");
        assert_eq!(
            first.labels,
            [
                ("code".to_owned(), "200".to_owned()),
                ("path".to_owned(), "/a\"b\nc\\d".to_owned()),
            ]
        );
        assert_eq!(first.value, 1027.0);
        assert_eq!(first.timestamp, Some(1_395_066_363.0));
        assert_eq!(requests.samples[1].labels[1].1, "/é");
        assert!(summary.details[1].samples[0].value.is_nan());
        assert_eq!(summary.details[3].samples[0].value, f64::NEG_INFINITY);
    }

    #[test]
    fn parses_openmetrics_page() {
        let page = "\
# TYPE requests counter\n\
# HELP requests Requests served.\n\
requests_total{code=\"200\"} 5\n\
requests_created{code=\"200\"} 1.5e9\n\
# TYPE emoji info\n\
emoji_info{face=\"\u{1F600}\"} 1\n\
# EOF\n";
        let summary = python_parse(page.as_bytes(), PythonParser::OpenMetrics).unwrap();
        assert_eq!(summary.families, 2, "{summary:#?}");
        assert_eq!(summary.samples, 3);
        assert_eq!(
            summary.types,
            [
                ("requests".to_owned(), "counter".to_owned()),
                ("emoji".to_owned(), "info".to_owned()),
            ]
        );
        assert_eq!(summary.details[0].samples[1].value, 1.5e9);
        assert_eq!(summary.details[1].samples[0].labels[0].1, "\u{1F600}");
    }

    #[test]
    fn reports_parse_errors() {
        let err = python_parse(b"this is {{ garbage\n", PythonParser::Text).unwrap_err();
        assert!(!err.is_empty());
        let missing_eof = b"# TYPE a gauge\na 1\n";
        let err = python_parse(missing_eof, PythonParser::OpenMetrics).unwrap_err();
        assert!(err.contains("EOF"), "{err}");
        let err = python_parse(b"a{l=\"\xff\"} 1\n", PythonParser::Text).unwrap_err();
        assert!(err.starts_with("UnicodeDecodeError"), "{err}");
    }

    #[test]
    fn decodes_json_strings() {
        assert_eq!(
            json_string(r#""a\"\\\/\b\f\n\r\tz""#).unwrap(),
            "a\"\\/\u{8}\u{c}\n\r\tz"
        );
        assert_eq!(
            json_string(r#""\u00e9\ud83d\ude00""#).unwrap(),
            "é\u{1F600}"
        );
        assert!(json_string(r#""\ud83d""#).is_err());
        assert!(json_string("unquoted").is_err());
    }
}
