//! Cross-checks with independent parsers on pages captured from the real
//! programs: node_exporter, Pushgateway (with pushed groups) and Prometheus's
//! own `/metrics`. Merged pages must pass `promtool check metrics` without
//! parse errors and parse with both of Python `prometheus_client`'s parsers.

use exposition::{
    merge, parse, validate_strict, write_page, Format, LabelSet, MergeReport, Page, SourcePage,
};
use testkit::{
    http_get, http_request, node_exporter, prometheus, promtool_check_metrics, pushgateway,
    python_parse, PythonParser,
};

/// A Pushgateway group with a histogram, a summary, a counter and escapes,
/// so the captured page has more than Go runtime metrics.
const PUSHED: &str = concat!(
    "# HELP job_duration_seconds How long the job ran.\n",
    "# TYPE job_duration_seconds histogram\n",
    "job_duration_seconds_bucket{le=\"1\"} 2\n",
    "job_duration_seconds_bucket{le=\"10\"} 5\n",
    "job_duration_seconds_bucket{le=\"+Inf\"} 6\n",
    "job_duration_seconds_sum 31.5\n",
    "job_duration_seconds_count 6\n",
    "# TYPE job_latency summary\n",
    "job_latency{quantile=\"0.5\"} 0.2\n",
    "job_latency_sum 1.5\n",
    "job_latency_count 7\n",
    "# HELP job_records_total Records with a \\\\ backslash.\n",
    "# TYPE job_records_total counter\n",
    "job_records_total{path=\"C:\\\\tmp\",note=\"say \\\"hi\\\"\\n\"} 42\n",
);

/// A hand-written OpenMetrics page with the types text 0.0.4 lacks.
const OPENMETRICS: &str = concat!(
    "# TYPE app_requests counter\n",
    "# HELP app_requests Requests.\n",
    "app_requests_total{code=\"200\"} 10 # {trace_id=\"abc\"} 1 1.5\n",
    "app_requests_created{code=\"200\"} 1700000000\n",
    "# TYPE app_queue gaugehistogram\n",
    "app_queue_bucket{le=\"1\"} 1\n",
    "app_queue_bucket{le=\"+Inf\"} 3\n",
    "app_queue_gcount 3\n",
    "app_queue_gsum 4\n",
    "# TYPE app_build info\n",
    "app_build_info{version=\"1.2\"} 1\n",
    "# TYPE app_mode stateset\n",
    "app_mode{app_mode=\"a\"} 1\n",
    "app_mode{app_mode=\"b\"} 0\n",
    "# TYPE app_size_bytes gauge\n",
    "# UNIT app_size_bytes bytes\n",
    "app_size_bytes 1024\n",
    "# EOF\n",
);

struct Captured {
    name: &'static str,
    format: Format,
    body: Vec<u8>,
}

fn capture() -> Vec<Captured> {
    let node = node_exporter();
    let gateway = pushgateway();
    let pushed = http_request(
        "PUT",
        &gateway.url("/metrics/job/batch/instance/a"),
        &[],
        PUSHED.as_bytes(),
    );
    assert!(
        pushed.status < 300,
        "push refused: {} {}",
        pushed.status,
        pushed.text()
    );
    let prometheus = prometheus("global:\n  scrape_interval: 1s\nscrape_configs: []\n");
    let get = |url: String| {
        let response = http_get(&url, &[("X-Prometheus-Scrape-Timeout-Seconds", "10")]);
        assert_eq!(response.status, 200, "{url}");
        response.body
    };
    let captured = vec![
        Captured {
            name: "node",
            format: Format::Text,
            body: get(node.url("/metrics")),
        },
        Captured {
            name: "pushgateway",
            format: Format::Text,
            body: get(gateway.url("/metrics")),
        },
        Captured {
            name: "prometheus",
            format: Format::Text,
            body: get(prometheus.url("/metrics")),
        },
        Captured {
            name: "app",
            format: Format::OpenMetrics,
            body: OPENMETRICS.as_bytes().to_vec(),
        },
    ];
    for page in &captured[..3] {
        assert!(
            page.body.len() > 1000,
            "{} page is suspiciously small",
            page.name
        );
    }
    captured
}

fn merged(
    pages: &[(&Captured, Page<'_>)],
    labels: &[LabelSet],
    to: Format,
) -> (Vec<u8>, MergeReport) {
    let sources: Vec<_> = pages
        .iter()
        .zip(labels)
        .map(|((captured, page), labels)| SourcePage {
            name: captured.name,
            format: captured.format,
            page,
            labels,
        })
        .collect();
    let mut out = Vec::new();
    let report = merge(&sources, to, &mut out);
    (out, report)
}

#[test]
fn merged_real_pages_pass_promtool_and_python() {
    let captured = capture();
    let pages: Vec<_> = captured
        .iter()
        .map(|c| {
            (
                c,
                parse(&c.body, c.format).unwrap_or_else(|e| panic!("{}: {e}", c.name)),
            )
        })
        .collect();

    // The naive concatenation (what reverse_exporter serves) is refused by
    // promtool: node_exporter, Pushgateway and Prometheus all expose go_*
    // and process_* families.
    let mut naive = Vec::new();
    for c in &captured[..3] {
        naive.extend_from_slice(&c.body);
    }
    let outcome = promtool_check_metrics(&naive);
    assert!(
        !outcome.parse_ok(),
        "promtool accepted a page with repeated families: {outcome:?}"
    );

    let labels: Vec<_> = captured
        .iter()
        .map(|c| LabelSet::new([("exporter", c.name)]).unwrap())
        .collect();
    let input_samples: usize = pages.iter().map(|(_, p)| p.samples.len()).sum();

    // Text 0.0.4 output: promtool parses it (style warnings from the
    // exporters' own names are theirs), Python reads every sample.
    let (text, report) = merged(&pages, &labels, Format::Text);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    assert_eq!(report.samples, input_samples);
    let outcome = promtool_check_metrics(&text);
    assert!(
        outcome.parse_ok(),
        "promtool refused the merged page: {outcome:?}"
    );
    let strict = validate_strict(&parse(&text, Format::Text).unwrap(), Format::Text);
    assert!(strict.is_empty(), "{strict:?}");
    let python = python_parse(&text, PythonParser::Text)
        .expect("Python's text parser refused the merged page");
    assert_eq!(python.samples, input_samples);
    for family in [
        "go_goroutines",
        "process_cpu_seconds",
        "node_load1",
        "job_duration_seconds",
    ] {
        assert!(
            python.type_of(family).is_some(),
            "{family} missing from the merged page"
        );
    }
    let goroutines = python
        .details
        .iter()
        .filter(|f| f.name == "go_goroutines")
        .flat_map(|f| &f.samples)
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|(k, _)| k == "exporter")
                .map(|(_, v)| v.as_str())
        })
        .collect::<Vec<_>>();
    assert_eq!(goroutines, ["node", "pushgateway", "prometheus"]);

    // OpenMetrics output: Python's OpenMetrics parser (strict about
    // grouping, suffixes, EOF) reads every sample.
    let (om, report) = merged(&pages, &labels, Format::OpenMetrics);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    let strict = validate_strict(
        &parse(&om, Format::OpenMetrics).unwrap(),
        Format::OpenMetrics,
    );
    assert!(strict.is_empty(), "{strict:?}");
    let python = python_parse(&om, PythonParser::OpenMetrics)
        .unwrap_or_else(|e| panic!("Python's OpenMetrics parser refused the merged page: {e}"));
    assert_eq!(python.samples, report.samples);
    assert_eq!(python.type_of("app_queue"), Some("gaugehistogram"));
    assert_eq!(python.type_of("app_requests"), Some("counter"));
}

#[test]
fn real_pages_convert_to_openmetrics_that_python_accepts() {
    for captured in capture().iter().filter(|c| c.format == Format::Text) {
        let page = parse(&captured.body, Format::Text).unwrap();
        let mut om = Vec::new();
        write_page(&page, Format::Text, Format::OpenMetrics, &mut om);
        let python = python_parse(&om, PythonParser::OpenMetrics)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", captured.name, String::from_utf8_lossy(&om)));
        let samples: usize = page.families.iter().map(|f| f.samples.len()).sum();
        assert_eq!(python.samples, samples, "{}", captured.name);
        // And back: the text page promtool reads again.
        let reparsed = parse(&om, Format::OpenMetrics).unwrap();
        let mut text = Vec::new();
        write_page(&reparsed, Format::OpenMetrics, Format::Text, &mut text);
        assert!(
            promtool_check_metrics(&text).parse_ok(),
            "{}",
            captured.name
        );
    }
}
