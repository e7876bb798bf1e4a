//! Relabel, merge and format conversion through the public API.

use exposition::{
    merge, parse, validate_strict, write_page, Format, LabelSet, MetricType, SourcePage,
};

struct Source {
    name: &'static str,
    format: Format,
    body: &'static str,
    labels: LabelSet,
}

fn source(name: &'static str, format: Format, body: &'static str) -> Source {
    Source {
        name,
        format,
        body,
        labels: LabelSet::new([("exporter", name)]).unwrap(),
    }
}

fn merged(sources: &[Source], to: Format) -> (String, exposition::MergeReport) {
    let pages: Vec<_> = sources
        .iter()
        .map(|s| parse(s.body.as_bytes(), s.format).unwrap())
        .collect();
    let inputs: Vec<_> = sources
        .iter()
        .zip(&pages)
        .map(|(s, page)| SourcePage {
            name: s.name,
            format: s.format,
            page,
            labels: &s.labels,
        })
        .collect();
    let mut out = Vec::new();
    let report = merge(&inputs, to, &mut out);
    assert_eq!(exposition::conflicts(&inputs, to), report.conflicts);
    let out = String::from_utf8(out).unwrap();
    let reparsed = parse(out.as_bytes(), to).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let violations = validate_strict(&reparsed, to);
    assert!(violations.is_empty(), "{violations:?}\n{out}");
    (out, report)
}

const NODE: &str = "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 8\n# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n# TYPE node_load1 gauge\nnode_load1 0.5\n";
const PUSHGATEWAY: &str = "# HELP go_goroutines Goroutines here.\n# TYPE go_goroutines gauge\ngo_goroutines 12\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3\n";

#[test]
fn every_family_once_with_all_samples_labelled() {
    let (page, report) = merged(
        &[
            source("node", Format::Text, NODE),
            source("pushgateway", Format::Text, PUSHGATEWAY),
        ],
        Format::Text,
    );
    assert_eq!(
        page,
        concat!(
            "# HELP go_goroutines Number of goroutines.\n",
            "# TYPE go_goroutines gauge\n",
            "go_goroutines{exporter=\"node\"} 8\n",
            "go_goroutines{exporter=\"pushgateway\"} 12\n",
            "# HELP process_cpu_seconds_total CPU.\n",
            "# TYPE process_cpu_seconds_total counter\n",
            "process_cpu_seconds_total{exporter=\"node\"} 1.5\n",
            "process_cpu_seconds_total{exporter=\"pushgateway\"} 3\n",
            "# TYPE node_load1 gauge\n",
            "node_load1{exporter=\"node\"} 0.5\n",
        )
    );
    assert_eq!(report.families, 3);
    assert_eq!(report.samples, 5);
    assert!(report.conflicts.is_empty());
}

#[test]
fn a_repeated_family_within_one_source_is_grouped() {
    let (page, _) = merged(
        &[source("a", Format::Text, "x 1\ny 2\nx{b=\"c\"} 3\n")],
        Format::Text,
    );
    assert_eq!(
        page,
        "# TYPE x untyped\nx{exporter=\"a\"} 1\nx{exporter=\"a\",b=\"c\"} 3\n# TYPE y untyped\ny{exporter=\"a\"} 2\n"
    );
}

#[test]
fn type_conflicts_keep_the_first_typed_source_and_report_the_rest() {
    let (page, report) = merged(
        &[
            source("a", Format::Text, "m 1\n"),
            source("b", Format::Text, "# TYPE m gauge\nm 2\n"),
            source(
                "c",
                Format::Text,
                "# TYPE m summary\nm{quantile=\"0.5\"} 3\nm_sum 1\nm_count 1\n",
            ),
        ],
        Format::Text,
    );
    // The untyped sample joins the gauge; the summary is left out.
    assert_eq!(
        page,
        "# TYPE m gauge\nm{exporter=\"a\"} 1\nm{exporter=\"b\"} 2\n"
    );
    assert_eq!(report.conflicts.len(), 1);
    let conflict = &report.conflicts[0];
    assert_eq!(
        (
            conflict.family.as_str(),
            conflict.kept_source.as_str(),
            conflict.kept_type
        ),
        ("m", "b", MetricType::Gauge)
    );
    assert_eq!(
        (
            conflict.dropped_source.as_str(),
            conflict.dropped_type,
            conflict.dropped_samples
        ),
        ("c", MetricType::Summary, 3)
    );
}

#[test]
fn conflict_resolution_does_not_depend_on_where_the_untyped_source_is() {
    let order_one = merged(
        &[
            source("b", Format::Text, "# TYPE m counter\nm 2\n"),
            source("a", Format::Text, "m 1\n"),
        ],
        Format::Text,
    );
    let order_two = merged(
        &[
            source("a", Format::Text, "m 1\n"),
            source("b", Format::Text, "# TYPE m counter\nm 2\n"),
        ],
        Format::Text,
    );
    assert!(order_one.0.starts_with("# TYPE m counter\n"));
    assert!(order_two.0.starts_with("# TYPE m counter\n"));
    assert!(order_one.1.conflicts.is_empty() && order_two.1.conflicts.is_empty());
}

#[test]
fn source_labels_that_clash_become_exported() {
    let (page, _) = merged(
        &[source(
            "node",
            Format::Text,
            "up{exporter=\"inner\",job=\"x\"} 1\n",
        )],
        Format::Text,
    );
    assert_eq!(
        page,
        "# TYPE up untyped\nup{exporter=\"node\",exported_exporter=\"inner\",job=\"x\"} 1\n"
    );
}

#[test]
fn converts_openmetrics_to_text() {
    let (page, _) = merged(
        &[source(
            "app",
            Format::OpenMetrics,
            concat!(
                "# TYPE requests counter\n",
                "# HELP requests Handled \\\"requests\\\".\n",
                "requests_total 5 1.5 # {trace_id=\"1\"} 1\n",
                "requests_created 100\n",
                "# TYPE temp gaugehistogram\n",
                "temp_bucket{le=\"+Inf\"} 2\n",
                "temp_gcount 2\n",
                "temp_gsum 9\n",
                "# TYPE build info\n",
                "build_info{version=\"1\"} 1\n",
                "# TYPE state stateset\n",
                "state{state=\"on\"} 1\n",
                "# TYPE size_bytes gauge\n",
                "# UNIT size_bytes bytes\n",
                "size_bytes inf\n",
                "# EOF\n",
            ),
        )],
        Format::Text,
    );
    assert_eq!(
        page,
        concat!(
            "# HELP requests_total Handled \"requests\".\n",
            "# TYPE requests_total counter\n",
            "requests_total{exporter=\"app\"} 5 1500\n",
            "# TYPE requests_created gauge\n",
            "requests_created{exporter=\"app\"} 100\n",
            "# TYPE temp_bucket gauge\n",
            "temp_bucket{exporter=\"app\",le=\"+Inf\"} 2\n",
            "# TYPE temp_gcount gauge\n",
            "temp_gcount{exporter=\"app\"} 2\n",
            "# TYPE temp_gsum gauge\n",
            "temp_gsum{exporter=\"app\"} 9\n",
            "# TYPE build_info gauge\n",
            "build_info{exporter=\"app\",version=\"1\"} 1\n",
            "# TYPE state gauge\n",
            "state{exporter=\"app\",state=\"on\"} 1\n",
            "# TYPE size_bytes gauge\n",
            "size_bytes{exporter=\"app\"} +Inf\n",
        )
    );
}

#[test]
fn converts_text_to_openmetrics() {
    let (page, _) = merged(
        &[source(
            "node",
            Format::Text,
            concat!(
                "# HELP a_total Says \"hi\" \\t.\n",
                "# TYPE a_total counter\n",
                "a_total 1 1395066363042\n",
                "# TYPE no_suffix counter\n",
                "no_suffix 2\n",
                "# TYPE u untyped\n",
                "u{ x = \"y\" } Nan\n",
                "# TYPE h histogram\n",
                "h_bucket{le=\"1\"} 1\n",
                "h_bucket{le=\"+Inf\"} 1\n",
                "h_sum 1\n",
                "h_count 1\n",
            ),
        )],
        Format::OpenMetrics,
    );
    assert_eq!(
        page,
        concat!(
            "# HELP a Says \\\"hi\\\" \\\\t.\n",
            "# TYPE a counter\n",
            "a_total{exporter=\"node\"} 1 1395066363.042\n",
            "# TYPE no_suffix unknown\n",
            "no_suffix{exporter=\"node\"} 2\n",
            "# TYPE u unknown\n",
            "u{exporter=\"node\",x=\"y\"} NaN\n",
            "# TYPE h histogram\n",
            "h_bucket{exporter=\"node\",le=\"1\"} 1\n",
            "h_bucket{exporter=\"node\",le=\"+Inf\"} 1\n",
            "h_sum{exporter=\"node\"} 1\n",
            "h_count{exporter=\"node\"} 1\n",
            "# EOF\n",
        )
    );
}

#[test]
fn openmetrics_round_trip_keeps_exemplars_and_units() {
    let body = concat!(
        "# HELP d_seconds Duration.\n",
        "# TYPE d_seconds histogram\n",
        "# UNIT d_seconds seconds\n",
        "d_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"a\"} 0.05 1.0\n",
        "d_seconds_bucket{le=\"+Inf\"} 2\n",
        "d_seconds_sum 0.3\n",
        "d_seconds_count 2\n",
        "d_seconds_created 10.5\n",
        "# EOF\n",
    );
    let page = parse(body.as_bytes(), Format::OpenMetrics).unwrap();
    let mut out = Vec::new();
    write_page(&page, Format::OpenMetrics, Format::OpenMetrics, &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), body);
}

#[test]
fn text_round_trip_is_identity_for_canonical_pages() {
    let body = "# HELP m Help.\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\n\"} 1 -5\n";
    let page = parse(body.as_bytes(), Format::Text).unwrap();
    let mut out = Vec::new();
    write_page(&page, Format::Text, Format::Text, &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), body);
}

#[test]
fn a_text_counter_steps_aside_for_a_family_really_named_like_its_base() {
    // Go's runtime exposes the gauge `go_memstats_alloc_bytes` and the
    // counter `go_memstats_alloc_bytes_total`. In OpenMetrics both want the
    // family name `go_memstats_alloc_bytes`: the counter keeps its own name
    // as `unknown`, so nothing is lost and nothing is renamed.
    let (page, report) = merged(
        &[
            source("a", Format::Text, "# TYPE x_total counter\nx_total 1\n"),
            source("b", Format::Text, "# TYPE x gauge\nx 1\n"),
        ],
        Format::OpenMetrics,
    );
    assert_eq!(
        page,
        "# TYPE x gauge\nx{exporter=\"b\"} 1\n# TYPE x_total unknown\nx_total{exporter=\"a\"} 1\n# EOF\n"
    );
    assert!(report.conflicts.is_empty());
    let (text, _) = merged(
        &[source(
            "a",
            Format::Text,
            "# TYPE x_total counter\nx_total 1\n# TYPE x gauge\nx 1\n",
        )],
        Format::Text,
    );
    assert_eq!(
        text,
        "# TYPE x_total counter\nx_total{exporter=\"a\"} 1\n# TYPE x gauge\nx{exporter=\"a\"} 1\n"
    );
}

#[test]
fn an_openmetrics_type_conflict_is_reported() {
    let (page, report) = merged(
        &[
            source(
                "a",
                Format::OpenMetrics,
                "# TYPE x counter\nx_total 1\n# EOF\n",
            ),
            source("b", Format::Text, "# TYPE x gauge\nx 1\n"),
        ],
        Format::OpenMetrics,
    );
    assert_eq!(page, "# TYPE x counter\nx_total{exporter=\"a\"} 1\n# EOF\n");
    assert_eq!(report.conflicts[0].dropped_source, "b");
}

#[test]
fn empty_sources_give_an_empty_valid_page() {
    let (text, _) = merged(&[source("a", Format::Text, "")], Format::Text);
    assert_eq!(text, "");
    let (om, _) = merged(
        &[source("a", Format::Text, "# TYPE x gauge\n")],
        Format::OpenMetrics,
    );
    assert_eq!(om, "# EOF\n");
}

#[test]
fn merging_in_chunks_gives_the_same_page() {
    let a = parse(
        b"# TYPE m counter\nm_total{x=\"1\"} 1\n# TYPE g gauge\ng 2\n",
        Format::Text,
    )
    .unwrap();
    let b = parse(b"# TYPE g gauge\ng 3\n# TYPE h gauge\nh 4\n", Format::Text).unwrap();
    let (la, lb) = (
        LabelSet::new([("src", "a")]).unwrap(),
        LabelSet::new([("src", "b")]).unwrap(),
    );
    let sources = [
        SourcePage {
            name: "a",
            format: Format::Text,
            page: &a,
            labels: &la,
        },
        SourcePage {
            name: "b",
            format: Format::Text,
            page: &b,
            labels: &lb,
        },
    ];
    for to in [Format::Text, Format::OpenMetrics] {
        let mut whole = Vec::new();
        exposition::merge(&sources, to, &mut whole);
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut buffer = Vec::new();
        // A one-byte threshold: a chunk after every source's part of a
        // family, so a family of many sources is never held whole.
        exposition::merge_in_chunks(&sources, to, 1, &mut buffer, |buffer| {
            chunks.push(std::mem::take(buffer));
        });
        assert!(chunks.len() >= 4, "{chunks:?}");
        assert_eq!(chunks.concat(), whole);
        let text: Vec<String> = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let split = text
            .windows(2)
            .any(|w| w[0].ends_with("g{src=\"a\"} 2\n") && w[1].starts_with("g{src=\"b\"} 3\n"));
        assert!(split, "family g not split between its sources: {text:?}");
    }
}
