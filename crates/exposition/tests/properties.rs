//! Property: for generated valid pages from several sources, in either
//! format, the merged page (in either format) is valid at the strict level
//! and holds exactly the input samples, each with its source's labels added
//! by Prometheus's `exported_` rule.

use std::collections::BTreeMap;

use exposition::{merge, parse, validate_strict, Format, LabelSet, SourcePage};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

/// One series: its labels (plain values) and the numbers it needs.
type Series = (BTreeMap<String, String>, Vec<f64>);

#[derive(Clone, Debug)]
struct GenSource {
    format: Format,
    families: Vec<(usize, Option<String>, Vec<Series>)>,
}

/// Family `i` always has kind `KINDS[i % 5]`, so sources agree on types.
const KINDS: [Kind; 5] = [
    Kind::Counter,
    Kind::Gauge,
    Kind::Untyped,
    Kind::Histogram,
    Kind::Summary,
];

fn label_value() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "a",
        "x y",
        "quote\"d",
        "back\\slash",
        "new\nline",
        "é€",
        "0.5",
    ])
    .prop_map(str::to_owned)
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "exporter", "exported_exporter", "instance"])
            .prop_map(str::to_owned),
        label_value(),
        0..4,
    )
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..1000).prop_map(f64::from),
        (-1e6f64..1e6),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(1e-9),
    ]
}

fn source() -> impl Strategy<Value = GenSource> {
    let family = (
        0usize..10,
        prop::option::of(
            prop::sample::select(vec!["Help.", "with \\ and \" and\nnewline", ""])
                .prop_map(str::to_owned),
        ),
        prop::collection::vec((labels(), prop::collection::vec(number(), 4)), 1..4),
    );
    (any::<bool>(), prop::collection::vec(family, 0..6)).prop_map(|(om, mut families)| {
        // One entry per family index in a page; a family's series sets are
        // distinct once `le`/`quantile` are set aside.
        families.sort_by_key(|f| f.0);
        families.dedup_by_key(|f| f.0);
        for (_, _, series) in &mut families {
            // An empty value is an absent label.
            for (labels, _) in series.iter_mut() {
                labels.retain(|_, v| !v.is_empty());
            }
            // Distinct after relabelling too: `{exporter="v"}` and
            // `{exported_exporter="v"}` become the same series, in
            // Prometheus as here.
            series.sort_by_key(|s| relabelled(s.0.clone(), "s"));
            series.dedup_by(|a, b| relabelled(a.0.clone(), "s") == relabelled(b.0.clone(), "s"));
        }
        GenSource {
            format: if om {
                Format::OpenMetrics
            } else {
                Format::Text
            },
            families,
        }
    })
}

fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str, format: Format) -> String {
    let escaped = help.replace('\\', "\\\\").replace('\n', "\\n");
    match format {
        Format::OpenMetrics => escaped.replace('"', "\\\""),
        Format::Text => escaped,
    }
}

fn render_labels(labels: &BTreeMap<String, String>, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn render_number(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n == f64::INFINITY {
        "+Inf".into()
    } else if n == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{n:?}")
    }
}

/// A sample as it should come out: name, full label set, value bits.
type Expected = (String, BTreeMap<String, String>, String);

/// Renders a generated source and lists its samples.
fn render(source: &GenSource) -> (String, Vec<Expected>) {
    let mut page = String::new();
    let mut samples = Vec::new();
    for (index, help, series) in &source.families {
        let kind = KINDS[index % KINDS.len()];
        let base = format!("fam{index}");
        let family_name = match (kind, source.format) {
            (Kind::Counter, Format::Text) => format!("{base}_total"),
            _ => base.clone(),
        };
        if let Some(help) = help {
            page.push_str(&format!(
                "# HELP {family_name} {}\n",
                escape_help(help, source.format)
            ));
        }
        let word = match (kind, source.format) {
            (Kind::Counter, _) => "counter",
            (Kind::Gauge, _) => "gauge",
            (Kind::Untyped, Format::Text) => "untyped",
            (Kind::Untyped, Format::OpenMetrics) => "unknown",
            (Kind::Histogram, _) => "histogram",
            (Kind::Summary, _) => "summary",
        };
        page.push_str(&format!("# TYPE {family_name} {word}\n"));
        let mut emit = |name: String,
                        labels: &BTreeMap<String, String>,
                        extra: Option<(&str, &str)>,
                        value: f64| {
            page.push_str(&format!(
                "{name}{} {}\n",
                render_labels(labels, extra),
                render_number(value)
            ));
            let mut all: BTreeMap<String, String> = labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some((k, v)) = extra {
                all.insert(k.to_owned(), v.to_owned());
            }
            samples.push((name, all, render_number(value)));
        };
        for (labels, numbers) in series {
            let non_negative: Vec<f64> = numbers
                .iter()
                .map(|n| if n.is_nan() { 0.0 } else { n.abs() })
                .collect();
            match kind {
                Kind::Gauge | Kind::Untyped => emit(base.clone(), labels, None, numbers[0]),
                Kind::Counter => emit(format!("{base}_total"), labels, None, non_negative[0]),
                Kind::Histogram => {
                    let mut labels = labels.clone();
                    labels.remove("le");
                    let mut count = 0.0;
                    for (le, increment) in [
                        ("0.1", non_negative[0]),
                        ("1", non_negative[1]),
                        ("+Inf", non_negative[2]),
                    ] {
                        count += increment.min(1e9);
                        emit(format!("{base}_bucket"), &labels, Some(("le", le)), count);
                    }
                    emit(format!("{base}_sum"), &labels, None, numbers[3]);
                    emit(format!("{base}_count"), &labels, None, count);
                }
                Kind::Summary => {
                    let mut labels = labels.clone();
                    labels.remove("quantile");
                    emit(base.clone(), &labels, Some(("quantile", "0.5")), numbers[0]);
                    emit(format!("{base}_sum"), &labels, None, numbers[1]);
                    emit(format!("{base}_count"), &labels, None, non_negative[2]);
                }
            }
        }
    }
    if source.format == Format::OpenMetrics {
        page.push_str("# EOF\n");
    }
    (page, samples)
}

/// Applies Prometheus's target-label rule to an expected sample.
fn relabelled(mut labels: BTreeMap<String, String>, source: &str) -> BTreeMap<String, String> {
    if let Some(existing) = labels.remove("exporter") {
        let mut name = "exported_exporter".to_owned();
        while labels.contains_key(&name) {
            name.insert_str(0, "exported_");
        }
        labels.insert(name, existing);
    }
    labels.insert("exporter".into(), source.into());
    labels
}

fn samples_of(page: &str, format: Format) -> Vec<Expected> {
    let parsed = parse(page.as_bytes(), format).unwrap_or_else(|e| panic!("{e}\n{page}"));
    let mut samples = Vec::new();
    for (_, family_samples) in parsed.iter() {
        for sample in family_samples {
            let labels = sample
                .labels
                .iter()
                .map(|l| (l.name.to_owned(), l.unescaped_value().into_owned()))
                .collect();
            samples.push((
                sample.name.to_owned(),
                labels,
                render_number(sample.number()),
            ));
        }
    }
    samples.sort();
    samples
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn merged_pages_are_strictly_valid_and_lose_nothing(sources in prop::collection::vec(source(), 1..5)) {
        let rendered: Vec<_> = sources.iter().map(render).collect();
        let names: Vec<String> = (0..sources.len()).map(|i| format!("source{i}")).collect();
        let label_sets: Vec<LabelSet> = names.iter().map(|n| LabelSet::new([("exporter", n.as_str())]).unwrap()).collect();
        let pages: Vec<_> = sources
            .iter()
            .zip(&rendered)
            .map(|(s, (page, _))| {
                let parsed = parse(page.as_bytes(), s.format).unwrap_or_else(|e| panic!("{e}\n{page}"));
                let violations = validate_strict(&parsed, s.format);
                assert!(violations.is_empty(), "generated page invalid: {violations:?}\n{page}");
                parsed
            })
            .collect();
        let inputs: Vec<_> = (0..sources.len())
            .map(|i| SourcePage { name: &names[i], format: sources[i].format, page: &pages[i], labels: &label_sets[i] })
            .collect();
        let mut expected: Vec<Expected> = rendered
            .iter()
            .zip(&names)
            .flat_map(|((_, samples), name)| {
                samples.iter().map(move |(n, labels, v)| (n.clone(), relabelled(labels.clone(), name), v.clone()))
            })
            .collect();
        expected.sort();
        for to in [Format::Text, Format::OpenMetrics] {
            let mut out = Vec::new();
            let report = merge(&inputs, to, &mut out);
            let out = String::from_utf8(out).unwrap();
            prop_assert!(report.conflicts.is_empty());
            let parsed = parse(out.as_bytes(), to).unwrap_or_else(|e| panic!("{e}\n{out}"));
            let violations = validate_strict(&parsed, to);
            prop_assert!(violations.is_empty(), "{:?}\n{}", violations, out);
            let names: Vec<_> = parsed.families.iter().map(|f| f.name).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), names.len());
            prop_assert_eq!(&samples_of(&out, to), &expected, "{}", out);
        }
    }
}
