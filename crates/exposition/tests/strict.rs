//! The strict level: each rule accepted when kept and reported when broken,
//! with the line it is about.

use exposition::validate::ViolationKind;
use exposition::{parse, validate_strict, Format};

fn violations(page: &str, format: Format) -> Vec<(u32, ViolationKind)> {
    let parsed = parse(page.as_bytes(), format).unwrap_or_else(|e| panic!("{e}\n{page}"));
    validate_strict(&parsed, format)
        .into_iter()
        .map(|v| (v.line, v.kind))
        .collect()
}

fn om_violations(body: &str) -> Vec<(u32, ViolationKind)> {
    violations(&format!("{body}# EOF\n"), Format::OpenMetrics)
}

fn assert_valid(page: &str, format: Format) {
    let found = violations(page, format);
    assert!(found.is_empty(), "{found:?}\n{page}");
}

#[test]
fn a_complete_openmetrics_page_is_valid() {
    assert_valid(
        concat!(
            "# TYPE c counter\n# HELP c Count \\\"x\\\".\nc_total 1 # {a=\"b\"} 1\nc_created 1\n",
            "# TYPE h_seconds histogram\n# UNIT h_seconds seconds\n",
            "h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2 # {a=\"b\"} 3\nh_seconds_sum 4\nh_seconds_count 2\n",
            "# TYPE gh gaugehistogram\ngh_bucket{le=\"-1\"} -1\ngh_bucket{le=\"+Inf\"} 2\ngh_gcount 2\ngh_gsum -3\n",
            "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n",
            "# TYPE st stateset\nst{st=\"a\"} 1\nst{st=\"b\"} 0\n",
            "# TYPE i info\ni_info{v=\"1\"} 1\n",
            "# EOF\n"
        ),
        Format::OpenMetrics,
    );
}

#[test]
fn a_family_appears_once_with_metadata_first() {
    let found = violations("a 1\nb 1\na 2\n", Format::Text);
    assert!(
        matches!(
            &found[..],
            [(3, ViolationKind::FamilyRepeated { first: 1, .. })]
        ),
        "{found:?}"
    );
    let found = violations("# TYPE a gauge\na 1\n# HELP a late\n", Format::Text);
    assert!(
        matches!(&found[..], [(3, ViolationKind::FamilyRepeated { .. })]),
        "{found:?}"
    );
    let found = om_violations("# TYPE a gauge\n# TYPE a gauge\na 1\n");
    assert!(
        matches!(&found[..], [(2, ViolationKind::FamilyRepeated { .. })]),
        "{found:?}"
    );
}

#[test]
fn sample_names_must_not_clash_between_families() {
    let found = om_violations("# TYPE a counter\na_total 1\n# TYPE a_total gauge\na_total 2\n");
    assert!(
        found
            .iter()
            .any(|(line, k)| *line == 4 && matches!(k, ViolationKind::NameClash { .. })),
        "{found:?}"
    );
}

#[test]
fn histogram_rules() {
    let cases = [
        (
            "h_bucket{le=\"1\"} 1\nh_count 1\n",
            "has no le=\"+Inf\" bucket",
        ),
        (
            "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n",
            "increasing",
        ),
        (
            "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n",
            "may not decrease",
        ),
        ("h_bucket{le=\"+Inf\"} 2\nh_count 3\n", "must equal h_count"),
        ("h_bucket 2\n", "needs an \"le\" label"),
        ("h_bucket{le=\"x\"} 2\n", "needs an \"le\" label"),
        ("h_bucket{le=\"+Inf\"} -1\n", "negative"),
        (
            "h_bucket{le=\"+Inf\"} 1\nh_sum{le=\"1\"} 1\n",
            "only _bucket samples",
        ),
    ];
    for (samples, expected) in cases {
        for format in [Format::Text, Format::OpenMetrics] {
            let mut page = format!("# TYPE h histogram\n{samples}");
            if format == Format::OpenMetrics {
                page.push_str("# EOF\n");
            }
            let found = violations(&page, format);
            assert!(
                found.iter().any(|(_, k)| k.to_string().contains(expected)),
                "{format:?} {samples:?}: expected {expected:?}, got {found:?}"
            );
        }
    }
}

#[test]
fn histogram_series_sets_stay_together() {
    let found = violations(
        "# TYPE h histogram\nh_bucket{a=\"1\",le=\"+Inf\"} 1\nh_bucket{a=\"2\",le=\"+Inf\"} 1\nh_count{a=\"1\"} 1\n",
        Format::Text,
    );
    assert!(
        found
            .iter()
            .any(|(line, k)| *line == 4 && matches!(k, ViolationKind::NotTogether { .. })),
        "{found:?}"
    );
    assert_valid(
        "# TYPE h histogram\nh_bucket{a=\"1\",le=\"+Inf\"} 1\nh_count{a=\"1\"} 1\nh_bucket{a=\"2\",le=\"+Inf\"} 1\nh_count{a=\"2\"} 1\n",
        Format::Text,
    );
}

#[test]
fn summary_rules() {
    let found = violations(
        "# TYPE s summary\ns 1\ns{quantile=\"1.5\"} 1\ns_sum{quantile=\"0.5\"} 1\n",
        Format::Text,
    );
    let lines: Vec<_> = found.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [2, 3, 4], "{found:?}");
    let found = om_violations("# TYPE s summary\ns_count -1\n");
    assert!(
        matches!(&found[..], [(2, ViolationKind::Value { .. })]),
        "{found:?}"
    );
}

#[test]
fn counter_stateset_and_info_values() {
    assert!(matches!(
        &om_violations("# TYPE c counter\nc_total -1\n")[..],
        [(2, ViolationKind::Value { .. })]
    ));
    assert!(matches!(
        &om_violations("# TYPE c counter\nc_total NaN\n")[..],
        [(2, ViolationKind::Value { .. })]
    ));
    assert!(matches!(
        &om_violations("# TYPE s stateset\ns{s=\"a\"} 2\n")[..],
        [(2, ViolationKind::Value { .. })]
    ));
    assert!(matches!(
        &om_violations("# TYPE s stateset\ns{x=\"a\"} 1\n")[..],
        [(2, ViolationKind::Label { .. })]
    ));
    assert!(matches!(
        &om_violations("# TYPE i info\ni_info 2\n")[..],
        [(2, ViolationKind::Value { .. })]
    ));
}

#[test]
fn units_must_be_the_name_suffix() {
    assert!(matches!(
        &om_violations("# TYPE a gauge\n# UNIT a seconds\na 1\n")[..],
        [(2, ViolationKind::Unit { .. })]
    ));
    assert!(matches!(
        &om_violations("# TYPE ab gauge\n# UNIT ab b\nab 1\n")[..],
        [(2, ViolationKind::Unit { .. })]
    ));
    assert!(matches!(
        &om_violations("# TYPE a_info info\n# UNIT a_info info\na_info_info 1\n")[..],
        [(2, ViolationKind::Unit { .. })]
    ));
    assert!(
        om_violations("# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds 1\n").is_empty()
    );
}

#[test]
fn label_rules() {
    assert!(matches!(
        &om_violations("a{__x=\"1\"} 1\n")[..],
        [(1, ViolationKind::ReservedName(_))]
    ));
    assert!(matches!(
        &om_violations("_a 1\n")[..],
        [(1, ViolationKind::ReservedName(_))]
    ));
    assert!(matches!(
        &om_violations("a{x=\"\\t\"} 1\n")[..],
        [(1, ViolationKind::Escape(..))]
    ));
    assert!(matches!(
        &violations("a{x=\"\\t\"} 1\n", Format::Text)[..],
        [(1, ViolationKind::Escape(..))]
    ));
    assert!(matches!(
        &violations("# HELP a \\\" q\na 1\n", Format::Text)[..],
        [(1, ViolationKind::Escape(..))]
    ));
    assert!(om_violations("# HELP a \\\" q\na 1\n").is_empty());
}

#[test]
fn duplicate_series_are_reported_whatever_the_label_order() {
    let found = violations("a{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 1\n", Format::Text);
    assert!(
        matches!(&found[..], [(2, ViolationKind::DuplicateSeries(_))]),
        "{found:?}"
    );
}

#[test]
fn exemplars_only_where_allowed_and_short() {
    let found = om_violations("# TYPE g gauge\ng 1 # {a=\"b\"} 1\n");
    assert!(
        matches!(&found[..], [(2, ViolationKind::Exemplar(_))]),
        "{found:?}"
    );
    let long = "x".repeat(130);
    let found = om_violations(&format!(
        "# TYPE c counter\nc_total 1 # {{a=\"{long}\"}} 1\n"
    ));
    assert!(
        matches!(&found[..], [(2, ViolationKind::Exemplar(_))]),
        "{found:?}"
    );
}

#[test]
fn violations_print_as_line_column_message() {
    let page = parse(b"a 1\na 2\n", Format::Text).unwrap();
    let v = validate_strict(&page, Format::Text);
    assert_eq!(v[0].to_string(), "2:1: series a{} appears twice");
}
