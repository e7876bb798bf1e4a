//! Rendering families and samples in either format, converting between them.
//!
//! Converting never renames a series: Prometheus stores what it reads, so a
//! sample keeps its name, labels and value whichever format carries it.
//! Families are mapped where the formats disagree:
//!
//! | OpenMetrics family `x`   | text 0.0.4 families                          |
//! |--------------------------|----------------------------------------------|
//! | counter                  | counter `x_total`; gauge `x_created`         |
//! | histogram, summary       | same type `x`; gauge `x_created`             |
//! | gaugehistogram           | gauges `x_bucket`, `x_gcount`, `x_gsum`      |
//! | stateset                 | gauge `x`                                    |
//! | info                     | gauge `x_info`                               |
//! | unknown                  | untyped `x`                                  |
//!
//! A text counter `x_total` becomes the OpenMetrics counter `x`; a text
//! counter whose name lacks `_total` becomes `unknown`, because OpenMetrics
//! would otherwise require renaming its samples. HELP is re-escaped for the
//! target format, special values are written `NaN`/`+Inf`/`-Inf`, timestamps
//! are converted between milliseconds and seconds, and exemplars exist only
//! in OpenMetrics output.

use std::borrow::Cow;

use crate::format::Format;
use crate::merge::{merge, SourcePage};
use crate::model::{unescape, Family, MetricType, Page, Sample};
use crate::relabel::LabelSet;
use crate::value;

/// Writes `page`, read in `from`, in the format `to`.
pub fn write_page(page: &Page<'_>, from: Format, to: Format, out: &mut Vec<u8>) {
    let labels = LabelSet::default();
    let source = SourcePage {
        name: "",
        format: from,
        page,
        labels: &labels,
    };
    merge(std::slice::from_ref(&source), to, out);
}

/// How one input family appears in the output format: up to three output
/// families, each taking the samples with some suffixes.
#[derive(Clone, Debug)]
pub(crate) struct Part<'a> {
    /// The output family name.
    pub(crate) name: Cow<'a, str>,
    /// The output type.
    pub(crate) kind: MetricType,
    /// The sample name suffixes (after the input family name) it takes;
    /// `None` takes every sample.
    pub(crate) suffixes: Option<&'static [&'static str]>,
    /// Whether HELP and UNIT carry over to this part.
    pub(crate) primary: bool,
    /// A text counter `x_total` written as the OpenMetrics counter `x`: it
    /// steps back to `unknown` under its own name when a family really
    /// called `x` exists (Go's runtime has both `go_memstats_alloc_bytes`
    /// and `go_memstats_alloc_bytes_total`).
    pub(crate) renamed: bool,
}

impl Part<'_> {
    pub(crate) fn takes(&self, family: &str, sample: &str) -> bool {
        match self.suffixes {
            None => true,
            Some(list) => sample
                .strip_prefix(family)
                .is_some_and(|suffix| list.contains(&suffix)),
        }
    }
}

/// The output families of `family` when converting `from` → `to`.
/// Up to three parts, without a heap allocation per family.
pub(crate) struct Parts<'a>([Option<Part<'a>>; 3]);

macro_rules! parts {
    ($a:expr $(,)?) => {
        Parts([Some($a), None, None])
    };
    ($a:expr, $b:expr $(,)?) => {
        Parts([Some($a), Some($b), None])
    };
    ($a:expr, $b:expr, $c:expr $(,)?) => {
        Parts([Some($a), Some($b), Some($c)])
    };
}

impl<'a> IntoIterator for Parts<'a> {
    type Item = Part<'a>;
    type IntoIter = std::iter::Flatten<std::array::IntoIter<Option<Part<'a>>, 3>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

pub(crate) fn parts<'a>(family: &Family<'a>, from: Format, to: Format) -> Parts<'a> {
    let name = family.name;
    let part = |suffix: &str, kind, suffixes, primary| Part {
        name: Cow::Owned(format!("{name}{suffix}")),
        kind,
        suffixes: Some(suffixes),
        primary,
        renamed: false,
    };
    match (from, to) {
        (Format::Text, Format::Text) | (Format::OpenMetrics, Format::OpenMetrics) => {
            parts![whole(Cow::Borrowed(name), family.kind)]
        }
        (Format::Text, Format::OpenMetrics) => match family.kind {
            MetricType::Counter => match name.strip_suffix("_total") {
                Some(base) if !base.is_empty() => parts![Part {
                    renamed: true,
                    ..whole(Cow::Borrowed(base), MetricType::Counter)
                }],
                _ => parts![whole(Cow::Borrowed(name), MetricType::Unknown)],
            },
            kind => parts![whole(Cow::Borrowed(name), kind)],
        },
        (Format::OpenMetrics, Format::Text) => {
            let created = || part("_created", MetricType::Gauge, &["_created"], false);
            match family.kind {
                MetricType::Counter => parts![
                    part("_total", MetricType::Counter, &["_total"], true),
                    created(),
                ],
                MetricType::Histogram => parts![
                    Part {
                        name: Cow::Borrowed(name),
                        kind: MetricType::Histogram,
                        suffixes: Some(&["_bucket", "_sum", "_count"]),
                        primary: true,
                        renamed: false,
                    },
                    created(),
                ],
                MetricType::Summary => parts![
                    Part {
                        name: Cow::Borrowed(name),
                        kind: MetricType::Summary,
                        suffixes: Some(&["", "_sum", "_count"]),
                        primary: true,
                        renamed: false,
                    },
                    created(),
                ],
                MetricType::GaugeHistogram => parts![
                    part("_bucket", MetricType::Gauge, &["_bucket"], true),
                    part("_gcount", MetricType::Gauge, &["_gcount"], true),
                    part("_gsum", MetricType::Gauge, &["_gsum"], true),
                ],
                MetricType::Info => parts![part("_info", MetricType::Gauge, &["_info"], true)],
                MetricType::StateSet => parts![whole(Cow::Borrowed(name), MetricType::Gauge)],
                kind @ (MetricType::Gauge | MetricType::Unknown) => {
                    parts![whole(Cow::Borrowed(name), kind)]
                }
            }
        }
    }
}

/// A part that takes every sample of a family.
pub(crate) fn whole(name: Cow<'_, str>, kind: MetricType) -> Part<'_> {
    Part {
        name,
        kind,
        suffixes: None,
        primary: true,
        renamed: false,
    }
}

/// Writes the `# HELP` line, re-escaped for `to`.
pub(crate) fn write_help(name: &str, help: &str, from: Format, to: Format, out: &mut Vec<u8>) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    let quote_matters = from == Format::OpenMetrics || to == Format::OpenMetrics;
    let needs_escaping = help.contains('\\') || (quote_matters && help.contains('"'));
    if !needs_escaping {
        out.extend_from_slice(help.as_bytes());
    } else {
        let plain = unescape(help, from == Format::OpenMetrics);
        for c in plain.chars() {
            match c {
                '\\' => out.extend_from_slice(br"\\"),
                '\n' => out.extend_from_slice(br"\n"),
                '"' if to == Format::OpenMetrics => out.extend_from_slice(b"\\\""),
                c => {
                    let mut buffer = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
            }
        }
    }
    out.push(b'\n');
}

/// Writes one sample line with `labels` added.
pub(crate) fn write_sample(
    sample: &Sample<'_>,
    labels: &LabelSet,
    from: Format,
    to: Format,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(sample.name.as_bytes());
    labels.write_with(&sample.labels, out);
    out.push(b' ');
    write_value(sample.value, out);
    if let Some(timestamp) = sample.timestamp() {
        out.push(b' ');
        match (from, to) {
            (Format::Text, Format::OpenMetrics) => value::write_millis_as_seconds(timestamp, out),
            (Format::OpenMetrics, Format::Text) => value::write_seconds_as_millis(timestamp, out),
            _ => out.extend_from_slice(timestamp.as_bytes()),
        }
    }
    if to == Format::OpenMetrics {
        if let Some(exemplar) = sample.exemplar() {
            out.extend_from_slice(b" # ");
            out.extend_from_slice(exemplar.as_bytes());
        }
    }
    out.push(b'\n');
}

/// Writes a value, with special values in their one spelling both formats
/// read.
fn write_value(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let looks_special = bytes
        .iter()
        .find(|b| !matches!(b, b'+' | b'-'))
        .is_some_and(u8::is_ascii_alphabetic);
    match value::special(bytes).filter(|_| looks_special) {
        Some(special) => out.extend_from_slice(special.canonical().as_bytes()),
        None => out.extend_from_slice(bytes),
    }
}
