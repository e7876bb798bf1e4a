//! The vocabulary of an exposition page: a [`Page`] holds [`Family`]s, a
//! family holds [`Sample`]s, a sample has [`Labels`].
//!
//! Every string borrows from the parsed input and stays exactly as it was
//! written (label values and HELP keep their escapes), so copying a sample to
//! an output page is a handful of slice copies.

use std::borrow::Cow;

use crate::format::Format;

/// A metric family's type, in the union of both formats' vocabularies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A monotonic counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets with `_bucket`, `_sum` and `_count`.
    Histogram,
    /// OpenMetrics gauge histogram: `_bucket`, `_gsum`, `_gcount`.
    GaugeHistogram,
    /// Quantiles with `_sum` and `_count`.
    Summary,
    /// OpenMetrics stateset: one sample per state, valued 0 or 1.
    StateSet,
    /// OpenMetrics info: a `_info` sample valued 1 that carries labels.
    Info,
    /// No type: `untyped` in text 0.0.4, `unknown` in OpenMetrics.
    Unknown,
}

impl MetricType {
    /// Reads a `# TYPE` word as `format` spells it.
    pub fn from_word(word: &str, format: Format) -> Option<MetricType> {
        Some(match (word, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Text) | ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            ("info", Format::OpenMetrics) => MetricType::Info,
            _ => return None,
        })
    }

    /// The `# TYPE` word in `format`. Types that text 0.0.4 lacks are only
    /// written after [`crate::write`] has mapped them to one it has.
    pub const fn word(self, format: Format) -> &'static str {
        match (self, format) {
            (MetricType::Counter, _) => "counter",
            (MetricType::Gauge, _) => "gauge",
            (MetricType::Histogram, _) => "histogram",
            (MetricType::Summary, _) => "summary",
            (MetricType::GaugeHistogram, _) => "gaugehistogram",
            (MetricType::StateSet, _) => "stateset",
            (MetricType::Info, _) => "info",
            (MetricType::Unknown, Format::Text) => "untyped",
            (MetricType::Unknown, Format::OpenMetrics) => "unknown",
        }
    }

    /// The suffixes a sample name may add to its family's name.
    pub const fn suffixes(self, format: Format) -> &'static [&'static str] {
        match (self, format) {
            (MetricType::Counter, Format::Text) => &[""],
            (MetricType::Counter, Format::OpenMetrics) => &["_total", "_created"],
            (MetricType::Histogram, Format::Text) => &["_bucket", "_sum", "_count"],
            (MetricType::Histogram, Format::OpenMetrics) => {
                &["_bucket", "_sum", "_count", "_created"]
            }
            (MetricType::GaugeHistogram, _) => &["_bucket", "_gsum", "_gcount"],
            (MetricType::Summary, Format::Text) => &["", "_sum", "_count"],
            (MetricType::Summary, Format::OpenMetrics) => &["", "_sum", "_count", "_created"],
            (MetricType::Info, _) => &["_info"],
            (MetricType::Gauge | MetricType::StateSet | MetricType::Unknown, _) => &[""],
        }
    }

    /// Whether a sample called `sample` belongs to a family called `family`
    /// of this type.
    pub fn admits(self, format: Format, family: &str, sample: &str) -> bool {
        let suffixes = self.suffixes(format);
        match sample.strip_prefix(family) {
            // Most samples carry the family name exactly; comparing even an
            // empty string goes through `memcmp`, so that case is apart.
            Some("") => suffixes.iter().any(|s| s.is_empty()),
            Some(suffix) => suffixes
                .iter()
                .any(|s| s.len() == suffix.len() && *s == suffix),
            None => false,
        }
    }
}

/// One parsed exposition page.
///
/// All samples live in one vector, in page order; a family holds the range
/// of its own. One allocation per page instead of one per family is what
/// keeps parsing a page of many small families cheap.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page<'a> {
    /// The families in the order they appeared. In a page that is not valid
    /// at the strict level a name can appear more than once.
    pub families: Vec<Family<'a>>,
    /// Every sample of the page, in page order.
    pub samples: Vec<Sample<'a>>,
}

impl<'a> Page<'a> {
    /// The samples of `family`, which must belong to this page.
    pub fn samples_of(&self, family: &Family<'a>) -> &[Sample<'a>] {
        &self.samples[family.samples.clone()]
    }

    /// Each family with its samples.
    pub fn iter(&self) -> impl Iterator<Item = (&Family<'a>, &[Sample<'a>])> {
        self.families.iter().map(|f| (f, self.samples_of(f)))
    }
}

/// A metric family: metadata and the samples that followed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Family<'a> {
    /// The family name (for an OpenMetrics counter, without `_total`).
    pub name: &'a str,
    /// The declared type, [`MetricType::Unknown`] when none was declared.
    pub kind: MetricType,
    /// The HELP text as written, escapes included.
    pub help: Option<&'a str>,
    /// The OpenMetrics UNIT, as written.
    pub unit: Option<&'a str>,
    /// Where its samples are in [`Page::samples`].
    pub samples: std::ops::Range<usize>,
    /// Where the family's lines were, for the strict checks.
    pub lines: FamilyLines,
}

/// Line numbers (1-based, 0 when absent) of a family's metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FamilyLines {
    /// The first line of the family.
    pub first: u32,
    /// The `# HELP` line.
    pub help: u32,
    /// The `# TYPE` line.
    pub kind: u32,
    /// The `# UNIT` line.
    pub unit: u32,
}

impl<'a> Family<'a> {
    /// A family with no metadata whose samples start at index `first`.
    pub(crate) fn new(name: &'a str, line: u32, first: usize) -> Family<'a> {
        Family {
            name,
            kind: MetricType::Unknown,
            help: None,
            unit: None,
            samples: first..first,
            lines: FamilyLines {
                first: line,
                ..FamilyLines::default()
            },
        }
    }
}

/// One sample line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'a> {
    /// The sample's metric name, suffix included (`http_requests_total`).
    pub name: &'a str,
    /// The labels between the braces.
    pub labels: Labels<'a>,
    /// The value as written; known to be a valid number.
    pub value: &'a str,
    /// What follows the value, checked by the parser: a timestamp, then
    /// in OpenMetrics `# ` and an exemplar; empty for most samples. One
    /// slice instead of two options keeps a sample at 80 bytes, and the
    /// page's sample vector a sixth smaller.
    pub(crate) tail: &'a str,
    /// The 1-based line number.
    pub line: u32,
}

impl<'a> Sample<'a> {
    /// The value as a number.
    pub fn number(&self) -> f64 {
        crate::value::parse_float(self.value).unwrap_or(f64::NAN)
    }

    /// The timestamp as written: integer milliseconds in text 0.0.4,
    /// seconds in OpenMetrics.
    pub fn timestamp(&self) -> Option<&'a str> {
        if self.tail.is_empty() {
            return None;
        }
        let word = self.tail.split(' ').next().unwrap_or("");
        (!word.is_empty() && word != "#").then_some(word)
    }

    /// The OpenMetrics exemplar after ` # `, as written:
    /// `{labels} value [timestamp]`.
    pub fn exemplar(&self) -> Option<&'a str> {
        if self.tail.is_empty() {
            return None;
        }
        match self.tail.strip_prefix("# ") {
            Some(exemplar) => Some(exemplar),
            None => self.tail.find(" # ").map(|at| &self.tail[at + 3..]),
        }
    }
}

/// The labels of a sample, kept as the text between the braces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Labels<'a> {
    raw: &'a str,
    /// A 32-bit Bloom filter of the label names (see [`name_bit`]), so that
    /// "might this sample have label X?" costs one AND instead of a scan.
    names: u32,
    /// No whitespace, no trailing comma and only the three standard escapes:
    /// the text can be copied as it is into either format.
    canonical: bool,
}

/// The Bloom filter bit of a label name.
pub(crate) fn name_bit(name: &[u8]) -> u32 {
    let first = name.first().copied().unwrap_or(0);
    let last = name.last().copied().unwrap_or(0);
    let mix = (name.len() as u32)
        .wrapping_mul(7)
        .wrapping_add(u32::from(first).wrapping_mul(31))
        .wrapping_add(u32::from(last));
    1 << (mix & 31)
}

impl<'a> Labels<'a> {
    /// `raw` must have been checked by the parser; `names` is the OR of the
    /// [`name_bit`]s of its label names.
    pub(crate) const fn new(raw: &'a str, names: u32, canonical: bool) -> Labels<'a> {
        Labels {
            raw,
            names,
            canonical,
        }
    }

    /// Whether some label name's Bloom bit is in `bits`: false means none
    /// of those names is present.
    pub(crate) const fn may_have_any(&self, bits: u32) -> bool {
        self.names & bits != 0
    }

    /// The text between the braces, as written.
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether [`Labels::raw`] can be copied verbatim into either format.
    pub const fn is_canonical(&self) -> bool {
        self.canonical
    }

    /// Whether there is no label.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The labels in order.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter {
            rest: self.raw.as_bytes(),
            raw: self.raw,
        }
    }

    /// The escaped value of the label called `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|l| l.name == name).map(|l| l.value)
    }
}

impl<'a> IntoIterator for &Labels<'a> {
    type Item = Label<'a>;
    type IntoIter = LabelIter<'a>;
    fn into_iter(self) -> LabelIter<'a> {
        self.iter()
    }
}

/// One label of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label<'a> {
    /// The label name.
    pub name: &'a str,
    /// The value between the quotes, escapes included.
    pub value: &'a str,
}

impl<'a> Label<'a> {
    /// The value with `\\`, `\"` and `\n` resolved. Other escapes stay as
    /// written, as Prometheus keeps them.
    pub fn unescaped_value(&self) -> Cow<'a, str> {
        unescape(self.value, true)
    }
}

/// Resolves `\\`, `\n` and (when `quote`) `\"`; other escapes are kept.
pub fn unescape(text: &str, quote: bool) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Iterates over checked label text: `name="value"` pairs separated by
/// commas, with optional whitespace in the text format.
#[derive(Clone, Debug)]
pub struct LabelIter<'a> {
    rest: &'a [u8],
    raw: &'a str,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        let bytes = self.rest;
        let base = self.raw.len() - bytes.len();
        let mut i = skip_space(bytes, 0);
        if i < bytes.len() && bytes[i] == b',' {
            i = skip_space(bytes, i + 1);
        }
        if i >= bytes.len() {
            self.rest = &[];
            return None;
        }
        let name_start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b' ' | b'\t') {
            i += 1;
        }
        let name = &self.raw[base + name_start..base + i];
        i = skip_space(bytes, i);
        // `=` then optional space then the opening quote.
        i = skip_space(bytes, i + 1) + 1;
        let value_start = i.min(bytes.len());
        let value_end = closing_quote(bytes, value_start);
        let value = &self.raw[base + value_start..base + value_end];
        self.rest = bytes.get(value_end + 1..).unwrap_or(&[]);
        Some(Label { name, value })
    }
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// The index of the quote that closes a value starting at `start`, or the
/// end of `bytes`.
pub(crate) fn closing_quote(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(offset) = memchr::memchr2(b'"', b'\\', &bytes[i.min(bytes.len())..]) {
        i += offset;
        if bytes[i] == b'"' {
            return i;
        }
        i += 2;
    }
    bytes.len()
}

/// The index of the `}` that closes a label set opening at `text[0]`.
pub(crate) fn closing_brace(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = closing_quote(bytes, i + 1) + 1,
            b'}' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_labels_with_escapes_and_space() {
        let labels = Labels::new(r#" a = "x\"y" , b="\\", c="" , "#, u32::MAX, false);
        let pairs: Vec<_> = labels.iter().map(|l| (l.name, l.value)).collect();
        assert_eq!(pairs, [("a", r#"x\"y"#), ("b", r"\\"), ("c", "")]);
        assert_eq!(labels.get("b"), Some(r"\\"));
        assert_eq!(labels.get("z"), None);
    }

    #[test]
    fn unescapes_like_prometheus() {
        let label = Label {
            name: "a",
            value: r#"q\"n\nb\\t\t"#,
        };
        assert_eq!(label.unescaped_value(), "q\"n\nb\\t\\t");
    }

    #[test]
    fn admits_suffixes_per_format() {
        assert!(MetricType::Counter.admits(Format::OpenMetrics, "a", "a_total"));
        assert!(!MetricType::Counter.admits(Format::OpenMetrics, "a", "a"));
        assert!(MetricType::Counter.admits(Format::Text, "a_total", "a_total"));
        assert!(MetricType::Histogram.admits(Format::Text, "h", "h_bucket"));
        assert!(!MetricType::Histogram.admits(Format::Text, "h", "h"));
        assert!(!MetricType::Gauge.admits(Format::Text, "g", "g_sum"));
        assert!(!MetricType::Gauge.admits(Format::Text, "gg", "g"));
    }
}
