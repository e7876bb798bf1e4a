//! The lenient level: what is accepted, what is refused, and where the
//! error points.

use exposition::{parse, Format, MetricType, ParseErrorKind};

fn text(page: &str) -> exposition::Page<'_> {
    parse(page.as_bytes(), Format::Text).unwrap_or_else(|e| panic!("{e}\n{page}"))
}

fn om(page: &str) -> exposition::Page<'_> {
    parse(page.as_bytes(), Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{page}"))
}

fn error(page: &str, format: Format) -> (u32, u32, ParseErrorKind) {
    let e = parse(page.as_bytes(), format).expect_err(page);
    (e.line, e.column, e.kind)
}

#[test]
fn reads_every_text_type() {
    let page = text(concat!(
        "# HELP c_total Requests.\n",
        "# TYPE c_total counter\n",
        "c_total{code=\"200\"} 3 1395066363000\n",
        "# TYPE g gauge\n",
        "g -1.5e3\n",
        "# TYPE h histogram\n",
        "h_bucket{le=\"0.5\"} 1\n",
        "h_bucket{le=\"+Inf\"} 2\n",
        "h_sum 3.5\n",
        "h_count 2\n",
        "# TYPE s summary\n",
        "s{quantile=\"0.9\"} NaN\n",
        "s_sum 0\n",
        "s_count 0\n",
        "# TYPE u untyped\n",
        "u +Inf\n",
        "no_metadata -Inf\n",
    ));
    let kinds: Vec<_> = page
        .families
        .iter()
        .map(|f| (f.name, f.kind, f.samples.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("c_total", MetricType::Counter, 1),
            ("g", MetricType::Gauge, 1),
            ("h", MetricType::Histogram, 4),
            ("s", MetricType::Summary, 3),
            ("u", MetricType::Unknown, 1),
            ("no_metadata", MetricType::Unknown, 1),
        ]
    );
    let counter = &page.families[0];
    assert_eq!(counter.help, Some("Requests."));
    let samples = page.samples_of(counter);
    assert_eq!(samples[0].timestamp(), Some("1395066363000"));
    assert_eq!(samples[0].labels.get("code"), Some("200"));
    assert_eq!(page.samples_of(&page.families[1])[0].number(), -1500.0);
}

#[test]
fn text_tolerates_what_prometheus_tolerates() {
    let page = text(concat!(
        "\n",
        "   # a free comment\n",
        "#   HELP   m   help with  spaces\n",
        "# TYPE m gauge \n",
        "  m { a = \"x\" , b=\"\\t\", }   1   -5  \n",
        "m{} 2\n",
        "m 3\n",
    ));
    let family = &page.families[0];
    assert_eq!(family.help, Some("help with  spaces"));
    assert_eq!(family.kind, MetricType::Gauge);
    let samples = page.samples_of(family);
    assert_eq!(samples.len(), 3);
    let labels = samples[0].labels;
    assert!(!labels.is_canonical());
    let pairs: Vec<_> = labels.iter().map(|l| (l.name, l.value)).collect();
    assert_eq!(pairs, [("a", "x"), ("b", "\\t")]);
    assert_eq!(samples[0].timestamp(), Some("-5"));
    assert!(samples[1].labels.is_empty());
}

#[test]
fn reads_every_openmetrics_type() {
    let page = om(concat!(
        "# TYPE c counter\n",
        "# HELP c A \\\"quoted\\\" help.\n",
        "c_total 1 1.5 # {trace_id=\"abc\"} 1 1.25\n",
        "c_created 1000\n",
        "# TYPE gh gaugehistogram\n",
        "gh_bucket{le=\"+Inf\"} 2\n",
        "gh_gcount 2\n",
        "gh_gsum 1\n",
        "# TYPE st stateset\n",
        "st{st=\"a\"} 1\n",
        "st{st=\"b\"} 0\n",
        "# TYPE i info\n",
        "i_info{version=\"1\"} 1\n",
        "# TYPE d_seconds gauge\n",
        "# UNIT d_seconds seconds\n",
        "d_seconds 1\n",
        "# TYPE x unknown\n",
        "x 1\n",
        "# EOF\n",
    ));
    let kinds: Vec<_> = page
        .families
        .iter()
        .map(|f| (f.name, f.kind, f.samples.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("c", MetricType::Counter, 2),
            ("gh", MetricType::GaugeHistogram, 3),
            ("st", MetricType::StateSet, 2),
            ("i", MetricType::Info, 1),
            ("d_seconds", MetricType::Gauge, 1),
            ("x", MetricType::Unknown, 1),
        ]
    );
    let total = &page.samples[0];
    assert_eq!(total.exemplar(), Some("{trace_id=\"abc\"} 1 1.25"));
    assert_eq!(total.timestamp(), Some("1.5"));
    assert_eq!(page.families[4].unit, Some("seconds"));
    assert_eq!(page.families[0].help, Some("A \\\"quoted\\\" help."));
}

#[test]
fn openmetrics_eof_rules() {
    assert!(parse(b"# EOF", Format::OpenMetrics).is_ok());
    assert!(parse(b"# EOF\n", Format::OpenMetrics).is_ok());
    assert_eq!(
        error("a 1\n", Format::OpenMetrics),
        (2, 1, ParseErrorKind::MissingEof)
    );
    assert_eq!(
        error("", Format::OpenMetrics),
        (1, 1, ParseErrorKind::MissingEof)
    );
    assert_eq!(
        error("# EOF\na 1\n", Format::OpenMetrics).2,
        ParseErrorKind::AfterEof
    );
    assert_eq!(
        error("# EOF\n\n", Format::OpenMetrics).2,
        ParseErrorKind::AfterEof
    );
    assert_eq!(
        error("# EOF junk\n", Format::OpenMetrics).2,
        ParseErrorKind::AfterEof
    );
}

#[test]
fn openmetrics_is_strict_about_spelling() {
    let cases = [
        ("a  1\n# EOF\n", 1, 3),
        (" a 1\n# EOF\n", 1, 1),
        ("a{b=\"c\",} 1\n# EOF\n", 1, 9),
        ("a{b = \"c\"} 1\n# EOF\n", 1, 4),
        ("\n# EOF\n", 1, 1),
        ("# random comment\n# EOF\n", 1, 3),
        ("# TYPE a untyped\n# EOF\n", 1, 10),
        ("a 1 # {x=\"y\"}\n# EOF\n", 1, 14),
        ("a 1 #{x=\"y\"} 1\n# EOF\n", 1, 6),
    ];
    for (page, line, column) in cases {
        let (l, c, kind) = error(page, Format::OpenMetrics);
        assert_eq!((l, c), (line, column), "{page:?}: {kind}");
    }
}

#[test]
fn refuses_bad_lines_with_position() {
    let cases: &[(&str, u32, u32, ParseErrorKind)] = &[
        ("ok 1\n1bad 1\n", 2, 1, ParseErrorKind::MetricName),
        ("m{1a=\"x\"} 1\n", 1, 3, ParseErrorKind::LabelName),
        ("m{a=\"x} 1\n", 1, 5, ParseErrorKind::UnterminatedValue),
        (
            "m{a=\"x\",a=\"y\"} 1\n",
            1,
            9,
            ParseErrorKind::DuplicateLabel("a".into()),
        ),
        ("m one\n", 1, 3, ParseErrorKind::Value("one".into())),
        (
            "m 1 1.5\n",
            1,
            5,
            ParseErrorKind::Timestamp("1.5".into(), "integer milliseconds"),
        ),
        (
            "# TYPE m bogus\n",
            1,
            10,
            ParseErrorKind::UnknownType("bogus".into()),
        ),
        (
            "# TYPE m gaugehistogram\n",
            1,
            10,
            ParseErrorKind::UnknownType("gaugehistogram".into()),
        ),
        ("m 1 # {a=\"b\"} 1\n", 1, 5, ParseErrorKind::ExemplarInText),
        (
            "m\n",
            1,
            2,
            ParseErrorKind::Expected {
                expected: "a value",
                found: exposition::parse::Found::end(),
            },
        ),
    ];
    for (page, line, column, kind) in cases {
        let got = error(page, Format::Text);
        assert_eq!(&got, &(*line, *column, kind.clone()), "{page:?}");
    }
}

#[test]
fn columns_count_characters_not_bytes() {
    let (line, column, _) = error("m{a=\"é\"} x\n", Format::Text);
    assert_eq!((line, column), (1, 10));
}

#[test]
fn refuses_invalid_utf8_with_position() {
    let (line, column, kind) = {
        let e = parse(b"a 1\nb{x=\"\xff\"} 1\n", Format::Text).unwrap_err();
        (e.line, e.column, e.kind)
    };
    assert_eq!((line, column, kind), (2, 6, ParseErrorKind::InvalidUtf8));
}

#[test]
fn error_messages_read_as_sentences() {
    let e = parse(b"m{a=\"x\" b=\"y\"} 1\n", Format::Text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "1:9: expected ',' or '}' after the label value, found 'b'"
    );
    let e = parse(b"a 1\n", Format::OpenMetrics).unwrap_err();
    assert_eq!(e.to_string(), "2:1: the page does not end with # EOF");
}

#[test]
fn groups_samples_by_type_suffixes() {
    // A histogram's own samples stay together; a foreign name starts a new
    // untyped family.
    let page = text("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_total 1\n");
    let names: Vec<_> = page
        .families
        .iter()
        .map(|f| (f.name, f.samples.len()))
        .collect();
    assert_eq!(names, [("h", 2), ("h_total", 1)]);
    // An OpenMetrics counter does not own a sample without `_total`.
    let page = om("# TYPE c counter\nc 1\n# EOF\n");
    let names: Vec<_> = page
        .families
        .iter()
        .map(|f| (f.name, f.kind, f.samples.len()))
        .collect();
    assert_eq!(
        names,
        [("c", MetricType::Counter, 0), ("c", MetricType::Unknown, 1)]
    );
}

#[test]
fn bounds_labels_per_sample() {
    let labels: Vec<String> = (0..=exposition::parse::MAX_LABELS)
        .map(|i| format!("l{i}=\"v\""))
        .collect();
    let page = format!("m{{{}}} 1\n", labels.join(","));
    assert!(matches!(
        error(&page, Format::Text).2,
        ParseErrorKind::TooManyLabels(_)
    ));
}

#[test]
fn timestamps_and_exemplars_in_every_combination() {
    let page = om(concat!(
        "# TYPE c counter\n",
        "c_total{a=\"1\"} 1\n",
        "c_total{a=\"2\"} 1 5.5\n",
        "c_total{a=\"3\"} 1 # {t=\"x # y\"} 2\n",
        "c_total{a=\"4\"} 1 5.5 # {t=\"x\"} 2 6\n",
        "# EOF\n",
    ));
    let got: Vec<_> = page
        .samples
        .iter()
        .map(|s| (s.timestamp(), s.exemplar()))
        .collect();
    assert_eq!(
        got,
        [
            (None, None),
            (Some("5.5"), None),
            (None, Some("{t=\"x # y\"} 2")),
            (Some("5.5"), Some("{t=\"x\"} 2 6")),
        ]
    );
    assert_eq!(text("m 1 -7   \n").samples[0].timestamp(), Some("-7"));
    assert_eq!(text("m 1\n").samples[0].exemplar(), None);
    assert_eq!(std::mem::size_of::<exposition::Sample<'_>>(), 80);
}
