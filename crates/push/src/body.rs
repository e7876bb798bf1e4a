//! Push bodies to canonical families, with the checks Pushgateway makes on
//! a push by itself (the checks against other groups are in
//! [`crate::store`]).
//!
//! A body is text 0.0.4 unless its `Content-Type` announces delimited
//! protobuf (as Pushgateway decides); `Content-Encoding: gzip` is undone
//! first, through a size-capped decoder. Either way the result is the
//! group's families in one canonical text form, which is what the store
//! keeps, logs and serves:
//!
//! - every sample carries the grouping labels (overriding the body's values
//!   of the same names) and `instance` (`""` when neither has one); labels
//!   are sorted by name, with `le`/`quantile` last, escaped with only `\\`,
//!   `\"` and `\n`;
//! - values, `le` and `quantile` are written as Go writes them (`1`, not
//!   `1.0`; `+Inf`), so the page matches Pushgateway's;
//! - histograms get their `+Inf` bucket, `_sum` and `_count`, summaries
//!   their `_sum` and `_count` (0 when missing), as Pushgateway adds them;
//! - text families are gathered by name as Go's parser gathers them: an
//!   untyped run of `x` after `# TYPE x counter` belongs to `x`, a second
//!   `TYPE`/`HELP` line for a name is an error.
//!
//! Checks that Pushgateway makes while parsing answer [`PushError::Malformed`];
//! those it makes afterwards (timestamps, duplicate series, and for protobuf
//! names, labels and value kinds) answer [`PushError::Inconsistent`], which
//! also records a failed push for the group.
//!
//! Deliberate differences: a repeated `_sum`, `_count`, bucket or quantile of
//! one series is refused as a duplicate (Go keeps the last), and so is a
//! summary sample without `quantile` or a bucket without `le` (Go drops it
//! or fails later). Family names starting with `promrelay_` are refused:
//! they belong to promrelay's own metrics on the same page. Where
//! Pushgateway 1.5.1 accepts a push but then serves an invalid page, the
//! push is refused: a protobuf family whose name is not a metric name, and
//! a histogram pushed under a grouping label `le` (the page would carry
//! `le` twice; a summary under `quantile` is refused by Pushgateway too).

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read as _;

use exposition::parse::{is_label_name, is_metric_name};
use exposition::{unescape, Format, MetricType, Sample};

use crate::error::PushError;
use crate::format::write_float;
use crate::key::GroupingKey;
use crate::proto;

/// The families Pushgateway maintains itself in every group; pushed ones of
/// these names are replaced, so they are dropped from pushes.
pub(crate) const PUSH_TIME: &str = "push_time_seconds";
/// See [`PUSH_TIME`].
pub(crate) const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
/// Names for promrelay's own metrics, refused in pushes.
pub(crate) const RESERVED_PREFIX: &str = "promrelay_";

const TIMESTAMPS: &str = "pushed metrics must not have timestamps";

/// A decoded push: its families sorted by name, each name once.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Push {
    /// Families without samples are kept: a POST replaces the group's
    /// family of that name by nothing, as in Pushgateway.
    pub(crate) families: Vec<PushedFamily>,
}

/// One family of a push, in canonical text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PushedFamily {
    /// The family name.
    pub(crate) name: String,
    /// Its type (text 0.0.4's four, or untyped).
    pub(crate) kind: MetricType,
    /// HELP, escaped for text 0.0.4.
    pub(crate) help: Option<String>,
    /// The sample lines, each ending in `\n`.
    pub(crate) lines: String,
    /// How many lines.
    pub(crate) series: usize,
}

/// How a body is to be read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimits {
    /// The largest body after decompression.
    pub(crate) max_decompressed_bytes: usize,
    /// The most series in one push.
    pub(crate) max_series: usize,
}

/// Whether a `Content-Type` announces a delimited protobuf body, by
/// Pushgateway's rule (media type and both parameters must match).
pub(crate) fn is_protobuf(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(proto::MEDIA_TYPE) {
        return false;
    }
    let (mut encoding, mut proto) = (false, false);
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "encoding" => encoding = value == "delimited",
            "proto" => proto = value == "io.prometheus.client.MetricFamily",
            _ => {}
        }
    }
    encoding && proto
}

/// Undoes gzip, refusing more than `max` bytes of output.
pub(crate) fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, PushError> {
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(cap);
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    decoder
        .read_to_end(&mut out)
        .map_err(|e| PushError::Malformed(format!("invalid gzip body: {e}")))?;
    if out.len() > max {
        return Err(PushError::TooLarge(format!(
            "the body is larger than {max} bytes once decompressed (max_decompressed_bytes)"
        )));
    }
    Ok(out)
}

/// Decodes a push body for the group `key`.
pub(crate) fn decode(
    body: &[u8],
    protobuf: bool,
    key: &GroupingKey,
    limits: BodyLimits,
) -> Result<Push, PushError> {
    let canon = Canon::new(key);
    let mut budget = SeriesBudget {
        left: limits.max_series,
        max: limits.max_series,
    };
    let mut families = if protobuf {
        decode_protobuf(body, &canon, &mut budget)?
    } else {
        decode_text(body, &canon, &mut budget)?
    };
    families.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Push { families })
}

/// Counts series against the per-group limit while a push is decoded, so a
/// small body cannot expand without bound.
struct SeriesBudget {
    left: usize,
    max: usize,
}

impl SeriesBudget {
    fn take(&mut self, n: usize) -> Result<(), PushError> {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(PushError::TooLarge(format!(
                "the push has more than {} series (max_series_per_group)",
                self.max
            ))),
        }
    }
}

/// The grouping labels, ready to be merged into each sample's labels.
struct Canon {
    /// Name and escaped value, sorted by name.
    grouping: Vec<(String, String)>,
}

impl Canon {
    fn new(key: &GroupingKey) -> Canon {
        let grouping = key
            .iter()
            .map(|(name, value)| {
                let mut escaped = String::with_capacity(value.len());
                exposition::escape_label_value(value, &mut escaped);
                (name.to_owned(), escaped)
            })
            .collect();
        Canon { grouping }
    }

    fn overrides(&self, name: &str) -> bool {
        self.grouping.iter().any(|(n, _)| n == name)
    }

    /// The canonical label text of a sample whose own labels are `body`
    /// (names and escaped values, without `le`/`quantile`).
    fn render(&self, body: &[(&str, Cow<'_, str>)]) -> String {
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(body.len() + self.grouping.len() + 1);
        all.extend(
            body.iter()
                .filter(|(name, _)| !self.overrides(name))
                .map(|(n, v)| (*n, v.as_ref())),
        );
        all.extend(self.grouping.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        if !all.iter().any(|(n, _)| *n == "instance") {
            all.push(("instance", ""));
        }
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = String::with_capacity(all.iter().map(|(n, v)| n.len() + v.len() + 4).sum());
        for (i, (name, value)) in all.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            out.push_str(value);
            out.push('"');
        }
        out
    }
}

/// The samples of one family, collected before they are written.
struct FamilyBuilder {
    name: String,
    kind: MetricType,
    /// Counter, gauge, untyped: label text and value, in order.
    simple: Vec<(String, String)>,
    /// Summary and histogram: one entry per label set.
    sets: Vec<SeriesSet>,
    set_index: HashMap<String, usize>,
}

/// The samples of one summary or histogram series.
#[derive(Default)]
struct SeriesSet {
    labels: String,
    /// Quantiles or buckets: the `quantile`/`le` text and the value.
    points: Vec<(String, String)>,
    sum: Option<String>,
    count: Option<String>,
}

impl FamilyBuilder {
    fn new(name: &str, kind: MetricType) -> FamilyBuilder {
        FamilyBuilder {
            name: name.to_owned(),
            kind,
            simple: Vec::new(),
            sets: Vec::new(),
            set_index: HashMap::new(),
        }
    }

    fn duplicate(&self, suffix: &str, labels: &str, extra: Option<(&str, &str)>) -> PushError {
        let extra = extra.map_or(String::new(), |(n, v)| format!(",{n}=\"{v}\""));
        PushError::Inconsistent(format!(
            "series {}{suffix}{{{labels}{extra}}} was pushed twice with the same name and label values",
            self.name
        ))
    }

    /// The set of `labels`; `fresh` refuses an existing one (a protobuf
    /// metric is a whole set).
    fn set(&mut self, labels: String, fresh: bool) -> Result<&mut SeriesSet, PushError> {
        let index = match self.set_index.entry(labels) {
            Entry::Occupied(entry) if fresh => {
                let labels = entry.key().clone();
                return Err(self.duplicate("", &labels, None));
            }
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                let labels = entry.key().clone();
                entry.insert(self.sets.len());
                self.sets.push(SeriesSet {
                    labels,
                    ..SeriesSet::default()
                });
                self.sets.len() - 1
            }
        };
        Ok(&mut self.sets[index])
    }

    fn point(&mut self, labels: String, point: String, value: String) -> Result<(), PushError> {
        let label = if self.kind == MetricType::Histogram {
            "le"
        } else {
            "quantile"
        };
        let set = self.set(labels, false)?;
        if set.points.iter().any(|(p, _)| *p == point) {
            let labels = set.labels.clone();
            let suffix = if label == "le" { "_bucket" } else { "" };
            return Err(self.duplicate(suffix, &labels, Some((label, &point))));
        }
        set.points.push((point, value));
        Ok(())
    }

    fn sum_or_count(
        &mut self,
        labels: String,
        count: bool,
        value: String,
    ) -> Result<(), PushError> {
        let set = self.set(labels, false)?;
        let slot = if count { &mut set.count } else { &mut set.sum };
        if slot.is_some() {
            let labels = set.labels.clone();
            return Err(self.duplicate(if count { "_count" } else { "_sum" }, &labels, None));
        }
        *slot = Some(value);
        Ok(())
    }

    /// Writes the canonical lines, refusing duplicate series.
    fn finish(
        self,
        help: Option<String>,
        budget: &mut SeriesBudget,
    ) -> Result<PushedFamily, PushError> {
        let mut lines = String::new();
        let mut series = 0;
        let name = &self.name;
        let mut line = |suffix: &str, labels: &str, extra: Option<(&str, &str)>, value: &str| {
            lines.push_str(name);
            lines.push_str(suffix);
            lines.push('{');
            lines.push_str(labels);
            if let Some((n, v)) = extra {
                lines.push(',');
                lines.push_str(n);
                lines.push_str("=\"");
                lines.push_str(v);
                lines.push('"');
            }
            lines.push_str("} ");
            lines.push_str(value);
            lines.push('\n');
            series += 1;
        };
        match self.kind {
            MetricType::Histogram => {
                for set in &self.sets {
                    let has_inf = set.points.iter().any(|(le, _)| le == "+Inf");
                    budget.take(
                        usize::from(!has_inf)
                            + usize::from(set.sum.is_none())
                            + usize::from(set.count.is_none()),
                    )?;
                    for (le, value) in &set.points {
                        line("_bucket", &set.labels, Some(("le", le)), value);
                    }
                    let count = set.count.as_deref().unwrap_or("0");
                    if !has_inf {
                        line("_bucket", &set.labels, Some(("le", "+Inf")), count);
                    }
                    line("_sum", &set.labels, None, set.sum.as_deref().unwrap_or("0"));
                    line("_count", &set.labels, None, count);
                }
            }
            MetricType::Summary => {
                for set in &self.sets {
                    budget
                        .take(usize::from(set.sum.is_none()) + usize::from(set.count.is_none()))?;
                    for (quantile, value) in &set.points {
                        line("", &set.labels, Some(("quantile", quantile)), value);
                    }
                    line("_sum", &set.labels, None, set.sum.as_deref().unwrap_or("0"));
                    line(
                        "_count",
                        &set.labels,
                        None,
                        set.count.as_deref().unwrap_or("0"),
                    );
                }
            }
            _ => {
                let mut seen = HashSet::with_capacity(self.simple.len());
                for (labels, value) in &self.simple {
                    if !seen.insert(labels.as_str()) {
                        return Err(self.duplicate("", labels, None));
                    }
                    line("", labels, None, value);
                }
            }
        }
        Ok(PushedFamily {
            name: self.name,
            kind: self.kind,
            help,
            lines,
            series,
        })
    }
}

/// Whether a family of this name is dropped from pushes, or refused.
fn screen_name(name: &str) -> Result<bool, PushError> {
    if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
        return Ok(false);
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(PushError::Inconsistent(format!(
            "metric family {name:?} is reserved: names starting with {RESERVED_PREFIX} belong to promrelay's own metrics"
        )));
    }
    Ok(true)
}

/// A histogram's samples cannot carry a grouping label `le`, nor a
/// summary's `quantile`: the page would have the label twice.
fn check_grouping_labels(name: &str, kind: MetricType, canon: &Canon) -> Result<(), PushError> {
    let label = match kind {
        MetricType::Histogram => "le",
        MetricType::Summary => "quantile",
        _ => return Ok(()),
    };
    if canon.overrides(label) {
        return Err(PushError::Inconsistent(format!(
            "collected metric {name:?} must not have an explicit {label:?} label, which the grouping key sets"
        )));
    }
    Ok(())
}

fn value_text(value: f64) -> String {
    let mut out = String::new();
    write_float(value, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Text 0.0.4

/// A text family as Go's parser gathers it: by name, across the page.
struct Gathered<'p, 'a> {
    name: &'a str,
    kind: MetricType,
    /// Whether a TYPE line or a sample has fixed the type.
    typed: bool,
    help: Option<&'a str>,
    samples: Vec<&'p Sample<'a>>,
}

fn malformed(line: u32, problem: impl std::fmt::Display) -> PushError {
    PushError::Malformed(format!(
        "text format parsing error in line {line}: {problem}"
    ))
}

fn decode_text(
    body: &[u8],
    canon: &Canon,
    budget: &mut SeriesBudget,
) -> Result<Vec<PushedFamily>, PushError> {
    let page = exposition::parse(body, Format::Text).map_err(|e| malformed(e.line, &e.kind))?;
    let mut gathered: Vec<Gathered<'_, '_>> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (family, samples) in page.iter() {
        let metadata = family.lines.kind != 0 || family.help.is_some();
        let base = if metadata {
            None
        } else {
            parent_of(family.name, &gathered, &by_name)
        };
        let index = match base.or_else(|| by_name.get(family.name).copied()) {
            Some(index) => index,
            None => {
                by_name.insert(family.name, gathered.len());
                gathered.push(Gathered {
                    name: family.name,
                    kind: MetricType::Unknown,
                    typed: false,
                    help: None,
                    samples: Vec::new(),
                });
                gathered.len() - 1
            }
        };
        let entry = &mut gathered[index];
        if let Some(help) = family.help {
            if entry.help.is_some() {
                return Err(malformed(
                    family.lines.help,
                    format_args!("second HELP line for metric name {:?}", family.name),
                ));
            }
            entry.help = Some(help);
        }
        if family.lines.kind != 0 {
            if entry.typed {
                return Err(malformed(
                    family.lines.kind,
                    format_args!(
                        "second TYPE line for metric name {:?}, or TYPE reported after samples",
                        family.name
                    ),
                ));
            }
            entry.kind = family.kind;
        }
        if family.lines.kind != 0 || !samples.is_empty() {
            entry.typed = true;
        }
        entry.samples.extend(samples);
    }
    if page.samples.iter().any(|s| s.timestamp().is_some()) {
        return Err(PushError::Inconsistent(TIMESTAMPS.to_owned()));
    }
    let mut families = Vec::with_capacity(gathered.len());
    for family in gathered {
        if !screen_name(family.name)? {
            continue;
        }
        families.push(build_text_family(&family, canon, budget)?);
    }
    Ok(families)
}

/// The summary or histogram an untyped `x_sum`, `x_count` or `x_bucket`
/// belongs to, when one of that name came before (Go's parser's rule).
fn parent_of(
    name: &str,
    gathered: &[Gathered<'_, '_>],
    by_name: &HashMap<&str, usize>,
) -> Option<usize> {
    if by_name.contains_key(name) {
        return None;
    }
    for (suffix, summary) in [("_sum", true), ("_count", true), ("_bucket", false)] {
        let Some(base) = name.strip_suffix(suffix) else {
            continue;
        };
        let index = *by_name.get(base)?;
        let kind = gathered[index].kind;
        if kind == MetricType::Histogram || (summary && kind == MetricType::Summary) {
            return Some(index);
        }
    }
    None
}

fn build_text_family(
    family: &Gathered<'_, '_>,
    canon: &Canon,
    budget: &mut SeriesBudget,
) -> Result<PushedFamily, PushError> {
    check_grouping_labels(family.name, family.kind, canon)?;
    let mut builder = FamilyBuilder::new(family.name, family.kind);
    let mut labels: Vec<(&str, Cow<'_, str>)> = Vec::new();
    for sample in &family.samples {
        budget.take(1)?;
        let suffix = &sample.name[family.name.len().min(sample.name.len())..];
        // The label that places the sample in its series: `le` of a bucket,
        // `quantile` of a summary's quantile sample.
        let special = match (family.kind, suffix) {
            (MetricType::Histogram, "_bucket") => Some("le"),
            (MetricType::Summary, "") => Some("quantile"),
            _ => None,
        };
        labels.clear();
        let mut point = None;
        for label in &sample.labels {
            if label.name.starts_with("__") {
                return Err(malformed(
                    sample.line,
                    format_args!("label name {:?} is reserved", label.name),
                ));
            }
            if Some(label.name) == special {
                point = Some(label);
                continue;
            }
            labels.push((label.name, canonical_value(label.value)));
        }
        let rendered = canon.render(&labels);
        let value = value_text(sample.number());
        match (family.kind, suffix, special) {
            (MetricType::Histogram | MetricType::Summary, _, Some(name)) => {
                let Some(label) = point else {
                    return Err(malformed(
                        sample.line,
                        format_args!("{} has no {name:?} label", sample.name),
                    ));
                };
                let bound = label.unescaped_value().trim().parse::<f64>().map_err(|_| {
                    malformed(
                        sample.line,
                        format_args!(
                            "expected float as value for {name:?} label, got {:?}",
                            label.value
                        ),
                    )
                })?;
                builder.point(rendered, value_text(bound), value)?;
            }
            (MetricType::Histogram | MetricType::Summary, "_sum", None) => {
                builder.sum_or_count(rendered, false, value)?;
            }
            (MetricType::Histogram | MetricType::Summary, "_count", None) => {
                builder.sum_or_count(rendered, true, value)?;
            }
            (MetricType::Histogram | MetricType::Summary, _, None) => {
                return Err(malformed(
                    sample.line,
                    format_args!("{} does not belong to {}", sample.name, family.name),
                ))
            }
            _ => builder.simple.push((rendered, value)),
        }
    }
    builder.finish(family.help.map(canonical_help), budget)
}

/// A label value as written to its canonical escaping.
fn canonical_value(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let plain = unescape(raw, true);
    let mut out = String::with_capacity(raw.len());
    exposition::escape_label_value(&plain, &mut out);
    Cow::Owned(out)
}

/// A HELP text as written in text 0.0.4 to its canonical escaping.
fn canonical_help(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    escape_help(&unescape(raw, false))
}

/// Escapes a plain HELP text for text 0.0.4: `\\` and `\n`.
pub(crate) fn escape_help(plain: &str) -> String {
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Delimited protobuf

fn decode_protobuf(
    body: &[u8],
    canon: &Canon,
    budget: &mut SeriesBudget,
) -> Result<Vec<PushedFamily>, PushError> {
    let families = proto::read_delimited(body)
        .map_err(|e| PushError::Malformed(format!("invalid protobuf body: {e}")))?;
    // A later family of a name replaces an earlier one, as in Pushgateway.
    let mut by_name: BTreeMap<String, proto::MetricFamily> = BTreeMap::new();
    for family in families {
        by_name.insert(family.name.clone().unwrap_or_default(), family);
    }
    if by_name
        .values()
        .any(|f| f.metric.iter().any(|m| m.timestamp_ms.is_some()))
    {
        return Err(PushError::Inconsistent(TIMESTAMPS.to_owned()));
    }
    let mut out = Vec::with_capacity(by_name.len());
    for (name, family) in by_name {
        if !is_metric_name(&name) {
            return Err(PushError::Inconsistent(format!(
                "{name:?} is not a valid metric name"
            )));
        }
        if !screen_name(&name)? {
            continue;
        }
        out.push(build_proto_family(&name, &family, canon, budget)?);
    }
    Ok(out)
}

fn build_proto_family(
    name: &str,
    family: &proto::MetricFamily,
    canon: &Canon,
    budget: &mut SeriesBudget,
) -> Result<PushedFamily, PushError> {
    let raw_type = family.r#type.unwrap_or(0);
    let kind = match proto::MetricType::try_from(raw_type) {
        Ok(proto::MetricType::Counter) => MetricType::Counter,
        Ok(proto::MetricType::Gauge) => MetricType::Gauge,
        Ok(proto::MetricType::Summary) => MetricType::Summary,
        Ok(proto::MetricType::Untyped) => MetricType::Unknown,
        Ok(proto::MetricType::Histogram) => MetricType::Histogram,
        Ok(proto::MetricType::GaugeHistogram) | Err(_) => {
            return Err(PushError::Inconsistent(format!(
                "metric family {name:?} has type {raw_type}, which text 0.0.4 cannot expose"
            )))
        }
    };
    check_grouping_labels(name, kind, canon)?;
    let mut builder = FamilyBuilder::new(name, kind);
    for metric in &family.metric {
        let mut labels: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(metric.label.len());
        for pair in &metric.label {
            let label = pair.name.as_deref().unwrap_or("");
            let problem = if !is_label_name(label) || label.starts_with("__") {
                Some("has a label with an invalid name")
            } else if labels.iter().any(|(n, _)| *n == label) {
                Some("has two or more labels with the same name")
            } else if (kind == MetricType::Summary && label == "quantile")
                || (kind == MetricType::Histogram && label == "le")
            {
                Some("must not have an explicit label of that name")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(PushError::Inconsistent(format!(
                    "collected metric {name:?} {problem}: {label:?}"
                )));
            }
            let mut escaped = String::new();
            exposition::escape_label_value(pair.value.as_deref().unwrap_or(""), &mut escaped);
            labels.push((label, Cow::Owned(escaped)));
        }
        let rendered = canon.render(&labels);
        let wrong_kind = || {
            PushError::Inconsistent(format!(
                "collected metric {name:?} {{{rendered}}} should be a {}",
                kind.word(Format::Text)
            ))
        };
        match kind {
            MetricType::Histogram => {
                let histogram = metric.histogram.as_ref().ok_or_else(wrong_kind)?;
                budget.take(histogram.bucket.len() + 2)?;
                let set = builder.set(rendered.clone(), true)?;
                for bucket in &histogram.bucket {
                    let le = value_text(bucket.upper_bound.unwrap_or(0.0));
                    let count = match bucket.cumulative_count_float {
                        Some(c) if c > 0.0 => c,
                        _ => bucket.cumulative_count.unwrap_or(0) as f64,
                    };
                    if set.points.iter().any(|(earlier, _)| *earlier == le) {
                        return Err(builder.duplicate("_bucket", &rendered, Some(("le", &le))));
                    }
                    set.points.push((le, value_text(count)));
                }
                let count = match histogram.sample_count_float {
                    Some(c) if c > 0.0 => c,
                    _ => histogram.sample_count.unwrap_or(0) as f64,
                };
                set.sum = Some(value_text(histogram.sample_sum.unwrap_or(0.0)));
                set.count = Some(value_text(count));
            }
            MetricType::Summary => {
                let summary = metric.summary.as_ref().ok_or_else(wrong_kind)?;
                budget.take(summary.quantile.len() + 2)?;
                let set = builder.set(rendered.clone(), true)?;
                for quantile in &summary.quantile {
                    set.points.push((
                        value_text(quantile.quantile.unwrap_or(0.0)),
                        value_text(quantile.value.unwrap_or(0.0)),
                    ));
                }
                set.sum = Some(value_text(summary.sample_sum.unwrap_or(0.0)));
                set.count = Some(value_text(summary.sample_count.unwrap_or(0) as f64));
            }
            _ => {
                let value = match kind {
                    MetricType::Counter => metric.counter.as_ref().map(|c| c.value),
                    MetricType::Gauge => metric.gauge.as_ref().map(|g| g.value),
                    _ => metric.untyped.as_ref().map(|u| u.value),
                }
                .ok_or_else(wrong_kind)?;
                budget.take(1)?;
                builder
                    .simple
                    .push((rendered, value_text(value.unwrap_or(0.0))));
            }
        }
    }
    let help = family
        .help
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(escape_help);
    builder.finish(help, budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Bucket, Counter, Gauge, LabelPair, Metric, MetricFamily, Quantile};

    const LIMITS: BodyLimits = BodyLimits {
        max_decompressed_bytes: 1 << 20,
        max_series: 1000,
    };

    fn key() -> GroupingKey {
        GroupingKey::from_path(false, "j/zone/eu").unwrap()
    }

    fn text(body: &str) -> Result<Push, PushError> {
        decode(body.as_bytes(), false, &key(), LIMITS)
    }

    /// Each family as `name kind [help]` and its lines.
    fn families(push: &Push) -> Vec<(String, String)> {
        push.families
            .iter()
            .map(|f| {
                let help = f.help.as_deref().map_or(String::new(), |h| format!(" {h}"));
                (
                    format!("{} {}{help}", f.name, f.kind.word(Format::Text)),
                    f.lines.clone(),
                )
            })
            .collect()
    }

    fn pair(head: &str, lines: &str) -> (String, String) {
        (head.to_owned(), lines.to_owned())
    }

    #[test]
    fn canonicalises_labels_values_and_help() {
        let push = text(
            "# HELP b Line one\\nline \\\\ two \\t.\n\
             b{z=\"1\", a = \"q\\\"\\\\\", zone=\"us\",job=\"other\",} 1.50\n\
             b{instance=\"i\"} 1e6\n\
             # TYPE a counter\n\
             a 123456789\n",
        )
        .unwrap();
        assert_eq!(
            families(&push),
            [
                pair(
                    "a counter",
                    "a{instance=\"\",job=\"j\",zone=\"eu\"} 1.23456789e+08\n"
                ),
                pair(
                    "b untyped Line one\\nline \\\\ two \\\\t.",
                    "b{a=\"q\\\"\\\\\",instance=\"\",job=\"j\",z=\"1\",zone=\"eu\"} 1.5\n\
                     b{instance=\"i\",job=\"j\",zone=\"eu\"} 1e+06\n"
                ),
            ]
        );
    }

    #[test]
    fn completes_histograms_and_summaries_as_go_does() {
        let push = text(
            "# TYPE h histogram\n\
             h_bucket{le=\"0.50\"} 1\n\
             h_bucket{le=\"1e1\",x=\"a\"} 2\n\
             h_count{x=\"a\"} 3\n\
             # TYPE s summary\n\
             s{quantile=\"0.990\"} NaN\n\
             s_count 4\n",
        )
        .unwrap();
        let l = "instance=\"\",job=\"j\",zone=\"eu\"";
        let x = "instance=\"\",job=\"j\",x=\"a\",zone=\"eu\"";
        assert_eq!(
            families(&push),
            [
                pair(
                    "h histogram",
                    &format!(
                        "h_bucket{{{l},le=\"0.5\"}} 1\nh_bucket{{{l},le=\"+Inf\"}} 0\nh_sum{{{l}}} 0\nh_count{{{l}}} 0\n\
                         h_bucket{{{x},le=\"10\"}} 2\nh_bucket{{{x},le=\"+Inf\"}} 3\nh_sum{{{x}}} 0\nh_count{{{x}}} 3\n"
                    )
                ),
                pair(
                    "s summary",
                    &format!("s{{{l},quantile=\"0.99\"}} NaN\ns_sum{{{l}}} 0\ns_count{{{l}}} 4\n")
                ),
            ]
        );
        assert_eq!(push.families[0].series, 8);
    }

    #[test]
    fn gathers_text_families_by_name_as_go_does() {
        // An untyped run of a typed name joins it; so do `_sum`/`_count`
        // of an earlier summary.
        let push = text(
            "# TYPE a gauge\na{x=\"1\"} 1\nb 2\na{x=\"2\"} 3\n\
             # TYPE s summary\ns_sum 1\nc 1\ns_count 2\n",
        )
        .unwrap();
        let heads: Vec<_> = families(&push).into_iter().map(|(h, _)| h).collect();
        assert_eq!(heads, ["a gauge", "b untyped", "c untyped", "s summary"]);
        assert_eq!(push.families[0].series, 2);
        assert_eq!(push.families[3].series, 2);
        // A HELP after the samples is fine; a second one is not.
        assert!(text("a 1\n# HELP a x\n").is_ok());
        for (body, message) in [
            (
                "# HELP a x\n# HELP a y\na 1\n",
                "line 2: second HELP line for metric name \"a\"",
            ),
            ("a 1\n# TYPE a gauge\n", "line 2: second TYPE line"),
            (
                "# TYPE h histogram\nh_bucket 1\n",
                "h_bucket has no \"le\" label",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
                "expected float as value for \"le\" label",
            ),
            ("# TYPE s summary\ns 1\n", "s has no \"quantile\" label"),
            ("a{__x=\"1\"} 1\n", "label name \"__x\" is reserved"),
        ] {
            match text(body) {
                Err(PushError::Malformed(m)) => assert!(m.contains(message), "{body:?}: {m}"),
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_inconsistent_bodies() {
        for (body, message) in [
            ("a 1 123\n", "must not have timestamps"),
            (
                "a 1\na 2\n",
                "series a{instance=\"\",job=\"j\",zone=\"eu\"} was pushed twice",
            ),
            ("a{zone=\"x\"} 1\na 2\n", "was pushed twice"),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 2\n",
                "series h_bucket{instance=\"\",job=\"j\",zone=\"eu\",le=\"1\"} was pushed twice",
            ),
            ("# TYPE s summary\ns_sum 1\ns_sum 2\n", "series s_sum{"),
            ("promrelay_x 1\n", "\"promrelay_x\" is reserved"),
        ] {
            match text(body) {
                Err(PushError::Inconsistent(m)) => assert!(m.contains(message), "{body:?}: {m}"),
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_grouping_labels_a_histogram_or_summary_uses() {
        for (path, body) in [
            ("j/le/5", "# TYPE h histogram\nh_sum 1\n"),
            ("j/quantile/5", "# TYPE s summary\ns_sum 1\n"),
        ] {
            let key = GroupingKey::from_path(false, path).unwrap();
            let result = decode(body.as_bytes(), false, &key, LIMITS);
            assert!(
                matches!(result, Err(PushError::Inconsistent(ref m)) if m.contains("which the grouping key sets")),
                "{result:?}"
            );
        }
        let key = GroupingKey::from_path(false, "j/le/5").unwrap();
        assert!(decode(b"g 1\n", false, &key, LIMITS).is_ok());
    }

    #[test]
    fn drops_the_push_time_families_and_keeps_empty_ones() {
        let push =
            text("push_time_seconds 5\npush_failure_time_seconds 1\n# TYPE e gauge\n").unwrap();
        assert_eq!(families(&push), [pair("e gauge", "")]);
    }

    #[test]
    fn bounds_series_while_decoding() {
        let limits = BodyLimits {
            max_series: 3,
            ..LIMITS
        };
        let result = decode(b"a 1\nb 1\nc 1\nd 1\n", false, &key(), limits);
        assert!(matches!(result, Err(PushError::TooLarge(m)) if m.contains("more than 3 series")));
        // Synthesised +Inf, _sum and _count count as well.
        let result = decode(
            b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\n",
            false,
            &key(),
            limits,
        );
        assert!(matches!(result, Err(PushError::TooLarge(_))), "{result:?}");
        assert!(decode(b"a 1\nb 1\nc 1\n", false, &key(), limits).is_ok());
    }

    fn protobuf(families: &[MetricFamily]) -> Result<Push, PushError> {
        decode(&proto::write_delimited(families), true, &key(), LIMITS)
    }

    #[test]
    fn converts_protobuf_families() {
        let histogram = MetricFamily {
            name: Some("h".to_owned()),
            help: Some("multi\nline \\".to_owned()),
            r#type: Some(proto::MetricType::Histogram as i32),
            metric: vec![Metric {
                label: LabelPair::list(&[("b", "x\"y"), ("job", "body")]),
                histogram: Some(proto::Histogram {
                    sample_count: Some(3),
                    sample_sum: Some(0.5),
                    bucket: vec![Bucket {
                        cumulative_count: Some(1),
                        upper_bound: Some(0.25),
                        ..Bucket::default()
                    }],
                    ..proto::Histogram::default()
                }),
                ..Metric::default()
            }],
        };
        let summary = MetricFamily {
            name: Some("s".to_owned()),
            help: None,
            r#type: Some(proto::MetricType::Summary as i32),
            metric: vec![Metric {
                summary: Some(proto::Summary {
                    sample_count: Some(2_000_000),
                    sample_sum: Some(1.0),
                    quantile: vec![Quantile {
                        quantile: Some(0.5),
                        value: Some(0.001),
                    }],
                }),
                ..Metric::default()
            }],
        };
        let push = protobuf(&[summary, histogram]).unwrap();
        let l = "b=\"x\\\"y\",instance=\"\",job=\"j\",zone=\"eu\"";
        let s = "instance=\"\",job=\"j\",zone=\"eu\"";
        assert_eq!(
            families(&push),
            [
                pair(
                    "h histogram multi\\nline \\\\",
                    &format!(
                        "h_bucket{{{l},le=\"0.25\"}} 1\nh_bucket{{{l},le=\"+Inf\"}} 3\nh_sum{{{l}}} 0.5\nh_count{{{l}}} 3\n"
                    )
                ),
                pair(
                    "s summary",
                    &format!("s{{{s},quantile=\"0.5\"}} 0.001\ns_sum{{{s}}} 1\ns_count{{{s}}} 2e+06\n")
                ),
            ]
        );
    }

    #[test]
    fn refuses_inconsistent_protobuf() {
        let gauge = |name: &str, label: &[(&str, &str)]| MetricFamily {
            name: Some(name.to_owned()),
            help: None,
            r#type: Some(proto::MetricType::Gauge as i32),
            metric: vec![Metric {
                label: LabelPair::list(label),
                gauge: Some(Gauge { value: Some(1.0) }),
                ..Metric::default()
            }],
        };
        let mut timestamped = gauge("t", &[]);
        timestamped.metric[0].timestamp_ms = Some(1);
        let mut counter_in_gauge = gauge("c", &[]);
        counter_in_gauge.metric[0] = Metric {
            counter: Some(Counter { value: Some(1.0) }),
            ..Metric::default()
        };
        let mut quantile_label = gauge("q", &[("quantile", "1")]);
        quantile_label.r#type = Some(proto::MetricType::Summary as i32);
        quantile_label.metric[0].summary = Some(proto::Summary::default());
        for (family, message) in [
            (timestamped, "must not have timestamps"),
            (
                gauge("bad-name", &[]),
                "\"bad-name\" is not a valid metric name",
            ),
            (
                gauge("g", &[("bad-label", "")]),
                "has a label with an invalid name: \"bad-label\"",
            ),
            (
                gauge("g", &[("__r", "")]),
                "has a label with an invalid name",
            ),
            (
                gauge("g", &[("a", "1"), ("a", "2")]),
                "two or more labels with the same name",
            ),
            (counter_in_gauge, "should be a gauge"),
            (
                quantile_label,
                "must not have an explicit label of that name: \"quantile\"",
            ),
        ] {
            match protobuf(&[family]) {
                Err(PushError::Inconsistent(m)) => assert!(m.contains(message), "{m}"),
                other => panic!("{message}: {other:?}"),
            }
        }
        // A truncated body is malformed, not inconsistent.
        let mut body = proto::write_delimited(&[gauge("g", &[])]);
        body.pop();
        let result = decode(&body, true, &key(), LIMITS);
        assert!(
            matches!(result, Err(PushError::Malformed(m)) if m.contains("invalid protobuf body"))
        );
    }

    #[test]
    fn recognises_content_types_and_gzip() {
        assert!(is_protobuf(proto::CONTENT_TYPE));
        assert!(is_protobuf(
            "Application/vnd.google.protobuf; encoding=\"delimited\"; proto=io.prometheus.client.MetricFamily"
        ));
        assert!(!is_protobuf(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"
        ));
        assert!(!is_protobuf("text/plain; version=0.0.4"));
        let zipped = {
            use std::io::Write as _;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(b"a 1\n").unwrap();
            encoder.finish().unwrap()
        };
        assert_eq!(gunzip(&zipped, 4).unwrap(), b"a 1\n");
        assert!(matches!(gunzip(&zipped, 3), Err(PushError::TooLarge(_))));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(PushError::Malformed(_))
        ));
    }
}
