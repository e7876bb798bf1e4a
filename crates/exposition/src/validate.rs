//! The strict level: what the OpenMetrics 1.0 specification requires of a
//! valid exposition, on top of what [`crate::parse`] already refused.
//!
//! The same family rules apply to text 0.0.4 pages (its format description
//! asks for the same grouping and the same histogram rules), so a page that
//! passes here is read the same way by every strict parser: each family once
//! with its metadata first, sample names that fit the type, histogram buckets
//! complete and in order, no duplicate series.
//!
//! Deliberate difference: the spec wants `le` and `quantile` values written
//! as canonical numbers (`1.0`, not `1`). Prometheus 2 stores them verbatim,
//! so promrelay never rewrites them and does not require it here.

use std::collections::HashMap;

use crate::format::Format;
use crate::model::{Family, MetricType, Page, Sample};
use crate::value;

/// At most this many violations are reported for one page.
pub const MAX_VIOLATIONS: usize = 1000;

/// One rule the page breaks, and where.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{line}:{column}: {kind}")]
pub struct Violation {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column (1 for rules about a whole line).
    pub column: u32,
    /// The rule.
    pub kind: ViolationKind,
}

/// The strict rules.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ViolationKind {
    /// A family's lines are not together, or its metadata comes twice or
    /// after its samples.
    #[error("family {name:?} appears again (first at line {first}): a family's lines must be together, metadata first")]
    FamilyRepeated {
        /// The family.
        name: String,
        /// Where it first appeared.
        first: u32,
    },
    /// A sample name that another family also produces.
    #[error("sample name {name:?} clashes with family {other:?} (line {first})")]
    NameClash {
        /// The sample name.
        name: String,
        /// The other family.
        other: String,
        /// Where the other family is.
        first: u32,
    },
    /// Names starting with `_` are reserved by OpenMetrics.
    #[error("name {0:?} is reserved: names starting with an underscore belong to the standard")]
    ReservedName(String),
    /// The UNIT is not the name's suffix, or is set where it may not be.
    #[error("unit {unit:?} {problem}")]
    Unit {
        /// The unit.
        unit: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A backslash sequence other than the allowed ones.
    #[error("invalid escape sequence in {0} (only {1} are allowed)")]
    Escape(&'static str, &'static str),
    /// The same series twice.
    #[error("series {0} appears twice")]
    DuplicateSeries(String),
    /// The samples of one series set are split up.
    #[error("the samples of {family:?} with labels {{{labels}}} are not together")]
    NotTogether {
        /// The family.
        family: String,
        /// The label set, without `le`/`quantile`.
        labels: String,
    },
    /// A bucket rule.
    #[error("histogram {family:?}: {problem}")]
    Bucket {
        /// The family.
        family: String,
        /// What is wrong.
        problem: String,
    },
    /// A value outside what the type allows.
    #[error("{family:?}: {problem}")]
    Value {
        /// The family.
        family: String,
        /// What is wrong.
        problem: String,
    },
    /// A label that the type requires or forbids.
    #[error("{family:?}: {problem}")]
    Label {
        /// The family.
        family: String,
        /// What is wrong.
        problem: String,
    },
    /// An exemplar where OpenMetrics does not allow one, or too long.
    #[error("exemplar: {0}")]
    Exemplar(&'static str),
}

/// Checks a parsed page against the strict rules; an empty result means the
/// page is valid. At most [`MAX_VIOLATIONS`] are returned, in line order.
pub fn validate_strict(page: &Page<'_>, format: Format) -> Vec<Violation> {
    let mut check = Checker {
        format,
        out: Vec::new(),
    };
    check.page(page);
    check.out.sort_by_key(|v| (v.line, v.column));
    check.out
}

struct Checker {
    format: Format,
    out: Vec<Violation>,
}

impl Checker {
    fn report(&mut self, line: u32, kind: ViolationKind) {
        if self.out.len() < MAX_VIOLATIONS {
            self.out.push(Violation {
                line,
                column: 1,
                kind,
            });
        }
    }

    fn om(&self) -> bool {
        self.format == Format::OpenMetrics
    }

    fn page(&mut self, page: &Page<'_>) {
        let mut families: HashMap<&str, u32> = HashMap::new();
        let mut sample_names: HashMap<&str, (&str, u32)> = HashMap::new();
        for (family, samples) in page.iter() {
            if let Some(&first) = families.get(family.name) {
                self.report(
                    family.lines.first,
                    ViolationKind::FamilyRepeated {
                        name: family.name.to_owned(),
                        first,
                    },
                );
                continue;
            }
            families.insert(family.name, family.lines.first);
            let mut previous = "";
            for sample in samples {
                if sample.name == previous {
                    continue;
                }
                previous = sample.name;
                match sample_names.get(sample.name) {
                    Some(&(other, first)) if other != family.name => self.report(
                        sample.line,
                        ViolationKind::NameClash {
                            name: sample.name.to_owned(),
                            other: other.to_owned(),
                            first,
                        },
                    ),
                    Some(_) => {}
                    None => {
                        sample_names.insert(sample.name, (family.name, family.lines.first));
                    }
                }
            }
            self.family(family, samples);
        }
        // A family name may not be another family's sample name either.
        for family in &page.families {
            if let Some(&(other, first)) = sample_names.get(family.name) {
                if other != family.name {
                    self.report(
                        family.lines.first,
                        ViolationKind::NameClash {
                            name: family.name.to_owned(),
                            other: other.to_owned(),
                            first,
                        },
                    );
                }
            }
        }
    }

    fn family(&mut self, family: &Family<'_>, samples: &[Sample<'_>]) {
        let om = self.om();
        if om && family.name.starts_with('_') {
            self.report(
                family.lines.first,
                ViolationKind::ReservedName(family.name.to_owned()),
            );
        }
        if let Some(help) = family.help {
            let (allowed, list): (&[u8], _) = if om {
                (b"\\n\"", r#"\\, \n and \""#)
            } else {
                (b"\\n", r"\\ and \n")
            };
            if !escapes_ok(help, allowed) {
                self.report(family.lines.help, ViolationKind::Escape("HELP", list));
            }
        }
        if let Some(unit) = family.unit.filter(|u| !u.is_empty()) {
            let problem = if matches!(family.kind, MetricType::Info | MetricType::StateSet) {
                Some("is not allowed on info and stateset families")
            } else if !family
                .name
                .strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'))
            {
                Some("must be the suffix of the family name, after an underscore")
            } else {
                None
            };
            if let Some(problem) = problem {
                self.report(
                    family.lines.unit,
                    ViolationKind::Unit {
                        unit: unit.to_owned(),
                        problem,
                    },
                );
            }
        }
        let mut series: HashMap<String, u32> = HashMap::with_capacity(samples.len());
        for sample in samples {
            self.sample(family, sample);
            let key = series_key(sample, None);
            if series.insert(key, sample.line).is_some() {
                self.report(
                    sample.line,
                    ViolationKind::DuplicateSeries(describe(sample)),
                );
            }
        }
        match family.kind {
            MetricType::Histogram | MetricType::GaugeHistogram => self.histogram(family, samples),
            MetricType::Summary => self.summary(family, samples),
            _ => {}
        }
    }

    fn sample(&mut self, family: &Family<'_>, sample: &Sample<'_>) {
        let om = self.om();
        for label in &sample.labels {
            if om && label.name.starts_with("__") {
                self.report(
                    sample.line,
                    ViolationKind::ReservedName(label.name.to_owned()),
                );
            }
            if !escapes_ok(label.value, b"\\n\"") {
                self.report(
                    sample.line,
                    ViolationKind::Escape("a label value", r#"\\, \n and \""#),
                );
            }
        }
        let suffix = &sample.name[family.name.len().min(sample.name.len())..];
        let number = || sample.number();
        let problem = |problem: String| ViolationKind::Value {
            family: family.name.to_owned(),
            problem,
        };
        match family.kind {
            MetricType::Counter if om && suffix == "_total" => {
                let v = number();
                if v.is_nan() || v < 0.0 {
                    self.report(
                        sample.line,
                        problem(format!(
                            "a counter's total must not be negative or NaN, got {}",
                            sample.value
                        )),
                    );
                }
            }
            MetricType::StateSet => {
                if sample.labels.get(family.name).is_none() {
                    self.report(
                        sample.line,
                        ViolationKind::Label {
                            family: family.name.to_owned(),
                            problem: format!(
                                "a stateset sample needs a label named {:?}",
                                family.name
                            ),
                        },
                    );
                }
                let v = number();
                if v != 0.0 && v != 1.0 {
                    self.report(
                        sample.line,
                        problem(format!("a state must be 0 or 1, got {}", sample.value)),
                    );
                }
            }
            MetricType::Info if number() != 1.0 => {
                self.report(
                    sample.line,
                    problem(format!("an info sample must be 1, got {}", sample.value)),
                );
            }
            _ => {}
        }
        if let Some(exemplar) = sample.exemplar() {
            let allowed = match family.kind {
                MetricType::Counter => suffix == "_total",
                MetricType::Histogram | MetricType::GaugeHistogram => suffix == "_bucket",
                _ => false,
            };
            if !allowed {
                self.report(
                    sample.line,
                    ViolationKind::Exemplar(
                        "only counter totals and histogram buckets may carry one",
                    ),
                );
            }
            let labels_end = crate::model::closing_brace(exemplar);
            let length: usize = crate::model::Labels::new(&exemplar[1..labels_end], u32::MAX, true)
                .iter()
                .map(|l| l.name.chars().count() + l.unescaped_value().chars().count())
                .sum();
            if length > 128 {
                self.report(
                    sample.line,
                    ViolationKind::Exemplar("its labels are longer than 128 characters"),
                );
            }
        }
    }

    fn histogram(&mut self, family: &Family<'_>, samples: &[Sample<'_>]) {
        let gauge = family.kind == MetricType::GaugeHistogram;
        let count_suffix = if gauge { "_gcount" } else { "_count" };
        let bucket_name = format!("{}_bucket", family.name);
        let count_name = format!("{}{count_suffix}", family.name);
        let complain = |problem: String| ViolationKind::Bucket {
            family: family.name.to_owned(),
            problem,
        };
        // Per series set (labels without `le`): the buckets so far and the
        // count, and whether the set is still open (its samples together).
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut current = String::new();
        for sample in samples {
            let key = series_key(sample, Some("le"));
            let is_bucket = sample.name == bucket_name;
            if key != current {
                if let Some(group) = groups.get(&key) {
                    if group.closed {
                        self.report(
                            sample.line,
                            ViolationKind::NotTogether {
                                family: family.name.to_owned(),
                                labels: key.clone(),
                            },
                        );
                    }
                }
                if let Some(group) = groups.get_mut(&current) {
                    group.closed = true;
                }
                current.clone_from(&key);
            }
            let group = groups.entry(key).or_insert_with(|| Group::new(sample.line));
            let value = sample.number();
            if !is_bucket {
                if sample.labels.get("le").is_some() {
                    self.report(
                        sample.line,
                        complain(format!(
                            "only _bucket samples may have an \"le\" label, not {}",
                            sample.name
                        )),
                    );
                }
                if sample.name == count_name {
                    group.count = Some(value);
                }
                continue;
            }
            let Some(le) = sample.labels.get("le").and_then(value::parse_float) else {
                self.report(
                    sample.line,
                    complain("every bucket needs an \"le\" label with a number".to_owned()),
                );
                continue;
            };
            if le.is_nan() {
                self.report(
                    sample.line,
                    complain("a bucket's \"le\" must not be NaN".to_owned()),
                );
            }
            if value.is_nan() || (!gauge && value < 0.0) {
                self.report(
                    sample.line,
                    complain(format!(
                        "a bucket count must not be negative or NaN, got {}",
                        sample.value
                    )),
                );
            }
            if let Some((previous_le, previous_value)) = group.last {
                if le <= previous_le {
                    self.report(sample.line, complain(format!("buckets must be in increasing \"le\" order, {le} follows {previous_le}")));
                } else if value < previous_value {
                    self.report(sample.line, complain(format!("bucket counts are cumulative and may not decrease, {value} follows {previous_value}")));
                }
            }
            group.last = Some((le, value));
            if le == f64::INFINITY {
                group.inf = Some(value);
            }
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by_key(|(_, g)| g.line);
        for (labels, group) in groups {
            match (group.inf, group.count) {
                (None, _) => self.report(
                    group.line,
                    complain(format!("the series set {{{labels}}} has no le=\"+Inf\" bucket")),
                ),
                (Some(inf), Some(count)) if inf != count => self.report(
                    group.line,
                    complain(format!("the +Inf bucket ({inf}) must equal {count_name} ({count}) for {{{labels}}}")),
                ),
                _ => {}
            }
        }
    }

    fn summary(&mut self, family: &Family<'_>, samples: &[Sample<'_>]) {
        let om = self.om();
        for sample in samples {
            let quantile = sample.labels.get("quantile");
            let complain = |problem: String| ViolationKind::Label {
                family: family.name.to_owned(),
                problem,
            };
            if sample.name == family.name {
                match quantile.and_then(value::parse_float) {
                    Some(q) if (0.0..=1.0).contains(&q) => {}
                    _ => self.report(
                        sample.line,
                        complain(
                            "a quantile sample needs a \"quantile\" label between 0 and 1"
                                .to_owned(),
                        ),
                    ),
                }
            } else {
                if quantile.is_some() {
                    self.report(
                        sample.line,
                        complain(format!("{} may not have a \"quantile\" label", sample.name)),
                    );
                }
                let v = sample.number();
                if om && (v.is_nan() || v < 0.0) && sample.name.ends_with("_count") {
                    self.report(
                        sample.line,
                        ViolationKind::Value {
                            family: family.name.to_owned(),
                            problem: format!(
                                "a summary's count must not be negative or NaN, got {}",
                                sample.value
                            ),
                        },
                    );
                }
            }
        }
    }
}

struct Group {
    line: u32,
    closed: bool,
    last: Option<(f64, f64)>,
    inf: Option<f64>,
    count: Option<f64>,
}

impl Group {
    fn new(line: u32) -> Group {
        Group {
            line,
            closed: false,
            last: None,
            inf: None,
            count: None,
        }
    }
}

/// A sample's label set, sorted and unescaped, without `skip`; with the
/// sample name in front when `skip` is `None`.
fn series_key(sample: &Sample<'_>, skip: Option<&str>) -> String {
    let mut labels: Vec<_> = sample
        .labels
        .iter()
        .filter(|l| Some(l.name) != skip && !l.value.is_empty())
        .map(|l| (l.name, l.unescaped_value()))
        .collect();
    labels.sort();
    let mut key = String::new();
    if skip.is_none() {
        key.push_str(sample.name);
        key.push('\u{0}');
    }
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(name);
        key.push_str("=\"");
        crate::relabel::escape_label_value(value, &mut key);
        key.push('"');
    }
    key
}

fn describe(sample: &Sample<'_>) -> String {
    format!("{}{{{}}}", sample.name, sample.labels.raw())
}

/// Whether every backslash in `text` is followed by one of `allowed`.
fn escapes_ok(text: &str, allowed: &[u8]) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = memchr::memchr(b'\\', &bytes[i..]) {
        i += offset;
        match bytes.get(i + 1) {
            Some(next) if allowed.contains(next) => i += 2,
            _ => return false,
        }
    }
    true
}
