//! A push group: its grouping key, its families as canonical text, its push
//! times and its deadline.
//!
//! A group's content is one string holding, per family in name order,
//! `# HELP` (when there is one), `# TYPE` and the sample lines, plus a small
//! index of where each family's parts are. Serving the group is copying
//! slices of that string; a POST rebuilds it from the old slices and the new
//! families. Nothing is kept per sample, which is what keeps a stored series
//! at about its text size in memory.

use core::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use exposition::{Format, MetricType};
use tokio::time::Instant;

use crate::body::PushedFamily;
use crate::key::GroupingKey;

/// The families of a group, in canonical text.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Content {
    text: String,
    /// Sorted by name, each name once, each with at least one sample.
    families: Box<[FamilyIndex]>,
    series: usize,
}

/// Where one family is in [`Content::text`].
#[derive(Clone, Debug, PartialEq)]
struct FamilyIndex {
    name: Range<u32>,
    help: Option<Range<u32>>,
    /// The sample lines.
    samples: Range<u32>,
    kind: MetricType,
    series: u32,
    /// When the family was last pushed, Unix milliseconds.
    pushed_ms: u64,
}

/// One family of a group, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FamilyView<'a> {
    /// The family name.
    pub(crate) name: &'a str,
    /// Its type.
    pub(crate) kind: MetricType,
    /// HELP, escaped for text 0.0.4.
    pub(crate) help: Option<&'a str>,
    /// The sample lines, each ending in `\n`.
    pub(crate) lines: &'a str,
    /// How many lines.
    pub(crate) series: usize,
    /// When it was last pushed, Unix milliseconds.
    pub(crate) pushed_ms: u64,
}

impl<'a> FamilyView<'a> {
    /// A view of a freshly pushed family.
    pub(crate) fn pushed(family: &'a PushedFamily, pushed_ms: u64) -> FamilyView<'a> {
        FamilyView {
            name: &family.name,
            kind: family.kind,
            help: family.help.as_deref(),
            lines: &family.lines,
            series: family.series,
            pushed_ms,
        }
    }
}

/// Converts a text offset; content is bounded far below 4 GiB by the body
/// limits, and a larger one saturates (and so reads as empty) rather than
/// wrapping.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Content {
    /// Builds content from families sorted by name; families without
    /// samples are left out.
    pub(crate) fn build<'a>(families: impl IntoIterator<Item = FamilyView<'a>>) -> Content {
        let mut text = String::new();
        let mut index = Vec::new();
        let mut series = 0;
        for family in families.into_iter().filter(|f| f.series > 0) {
            let help = family.help.map(|help| {
                text.push_str("# HELP ");
                text.push_str(family.name);
                text.push(' ');
                let start = text.len();
                text.push_str(help);
                let end = text.len();
                text.push('\n');
                offset(start)..offset(end)
            });
            text.push_str("# TYPE ");
            let name_start = text.len();
            text.push_str(family.name);
            let name_end = text.len();
            text.push(' ');
            text.push_str(family.kind.word(Format::Text));
            text.push('\n');
            let samples_start = text.len();
            text.push_str(family.lines);
            index.push(FamilyIndex {
                name: offset(name_start)..offset(name_end),
                help,
                samples: offset(samples_start)..offset(text.len()),
                kind: family.kind,
                series: u32::try_from(family.series).unwrap_or(u32::MAX),
                pushed_ms: family.pushed_ms,
            });
            series += family.series;
        }
        Content {
            text,
            families: index.into_boxed_slice(),
            series,
        }
    }

    /// A PUT: the pushed families replace all others.
    pub(crate) fn replace(pushed: &[PushedFamily], pushed_ms: u64) -> Content {
        Content::build(pushed.iter().map(|f| FamilyView::pushed(f, pushed_ms)))
    }

    /// A POST: the pushed families replace the families of the same names,
    /// the others stay.
    pub(crate) fn merge(&self, pushed: &[PushedFamily], pushed_ms: u64) -> Content {
        let mut old = self.families().peekable();
        let mut new = pushed.iter().peekable();
        let mut merged = Vec::with_capacity(self.families.len() + pushed.len());
        loop {
            match (old.peek(), new.peek()) {
                (Some(o), Some(n)) if o.name < n.name.as_str() => merged.extend(old.next()),
                (Some(o), Some(n)) if o.name == n.name.as_str() => {
                    old.next();
                }
                (_, Some(_)) => merged.extend(new.next().map(|f| FamilyView::pushed(f, pushed_ms))),
                (Some(_), None) => merged.extend(old.next()),
                (None, None) => break,
            }
        }
        Content::build(merged)
    }

    /// The families, in name order.
    pub(crate) fn families(&self) -> impl Iterator<Item = FamilyView<'_>> {
        self.families.iter().map(|f| self.view(f))
    }

    /// The family at `index` in name order.
    pub(crate) fn family(&self, index: usize) -> Option<FamilyView<'_>> {
        self.families.get(index).map(|f| self.view(f))
    }

    fn view(&self, f: &FamilyIndex) -> FamilyView<'_> {
        let slice = |r: &Range<u32>| {
            self.text
                .get(r.start as usize..r.end as usize)
                .unwrap_or("")
        };
        FamilyView {
            name: slice(&f.name),
            kind: f.kind,
            help: f.help.as_ref().map(slice),
            lines: slice(&f.samples),
            series: f.series as usize,
            pushed_ms: f.pushed_ms,
        }
    }

    /// The sample lines of all families.
    pub(crate) fn series(&self) -> usize {
        self.series
    }

    /// The canonical text: a valid text 0.0.4 page of this group alone.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Roughly what the group occupies, for deciding when to compact.
    pub(crate) fn bytes(&self) -> usize {
        self.text.len() + self.families.len() * core::mem::size_of::<FamilyIndex>()
    }
}

/// When a group expires: on tokio's clock for the timer and the read path,
/// and as wall-clock time for the data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// When it expires in this process.
    pub(crate) at: Instant,
    /// The same moment as Unix milliseconds, which is what is persisted.
    pub(crate) unix_ms: u64,
}

/// One push group.
#[derive(Debug)]
pub(crate) struct Group {
    /// The labels every sample of the group carries
    /// (`instance="",job="x"`), for `push_time_seconds`.
    pub(crate) sample_labels: Box<str>,
    /// The families.
    pub(crate) content: Arc<Content>,
    /// Unix seconds of the last successful push; 0 before one.
    pub(crate) push_time: f64,
    /// Unix seconds of the last failed push; 0 before one.
    pub(crate) failure_time: f64,
    /// When it expires; `None` never.
    pub(crate) deadline: Option<Deadline>,
}

impl Group {
    /// An empty group of `key`.
    pub(crate) fn new(key: &GroupingKey) -> Group {
        Group {
            sample_labels: key.sample_labels().into_boxed_str(),
            content: Arc::new(Content::default()),
            push_time: 0.0,
            failure_time: 0.0,
            deadline: None,
        }
    }

    /// Whether the group is still there at `now`.
    pub(crate) fn is_live(&self, now: Instant) -> bool {
        is_live(self.deadline.as_ref(), now)
    }

    /// Whether the last push succeeded (Pushgateway's
    /// `last_push_successful`).
    pub(crate) fn last_push_successful(&self) -> bool {
        self.push_time >= self.failure_time
    }
}

/// Whether something with `deadline` is still there at `now`.
pub(crate) fn is_live(deadline: Option<&Deadline>, now: Instant) -> bool {
    deadline.is_none_or(|d| d.at > now)
}

/// Converts a wall-clock deadline read back from disk to tokio's clock;
/// `None` when it has passed.
pub(crate) fn deadline_from_unix_ms(
    unix_ms: u64,
    now: Instant,
    wall: SystemTime,
) -> Option<Deadline> {
    let at = crate::format::from_unix_millis(unix_ms);
    let left = at.duration_since(wall).ok().filter(|d| !d.is_zero())?;
    Some(Deadline {
        at: now + left,
        unix_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(name: &str, kind: MetricType, lines: &str) -> PushedFamily {
        PushedFamily {
            name: name.to_owned(),
            kind,
            help: Some(format!("help of {name}")),
            lines: lines.to_owned(),
            series: lines.lines().count(),
        }
    }

    #[test]
    fn builds_a_valid_page_per_group() {
        let content = Content::replace(
            &[
                family("a", MetricType::Counter, "a{job=\"j\"} 1\n"),
                family(
                    "b",
                    MetricType::Gauge,
                    "b{job=\"j\"} 2\nb{job=\"j\",x=\"1\"} 3\n",
                ),
                family("c", MetricType::Gauge, ""),
            ],
            7,
        );
        assert_eq!(
            content.text(),
            "# HELP a help of a\n# TYPE a counter\na{job=\"j\"} 1\n\
             # HELP b help of b\n# TYPE b gauge\nb{job=\"j\"} 2\nb{job=\"j\",x=\"1\"} 3\n"
        );
        assert_eq!(content.series(), 3);
        let names: Vec<_> = content.families().map(|f| f.name).collect();
        assert_eq!(names, ["a", "b"]);
        let b = content.family(1).unwrap();
        assert_eq!(b.help, Some("help of b"));
        assert_eq!(b.lines, "b{job=\"j\"} 2\nb{job=\"j\",x=\"1\"} 3\n");
        assert_eq!((b.series, b.pushed_ms), (2, 7));
        let page = exposition::parse(content.text().as_bytes(), Format::Text).unwrap();
        assert!(exposition::validate_strict(&page, Format::Text).is_empty());
    }

    #[test]
    fn merge_replaces_same_named_families_only() {
        let old = Content::replace(
            &[
                family("a", MetricType::Gauge, "a 1\n"),
                family("b", MetricType::Gauge, "b 1\n"),
                family("d", MetricType::Gauge, "d 1\n"),
            ],
            1,
        );
        let merged = old.merge(
            &[
                family("b", MetricType::Counter, "b 2\n"),
                family("c", MetricType::Gauge, "c 2\n"),
                // An empty family removes the old one of its name.
                family("d", MetricType::Gauge, ""),
            ],
            2,
        );
        let families: Vec<_> = merged
            .families()
            .map(|f| (f.name, f.kind, f.lines, f.pushed_ms))
            .collect();
        assert_eq!(
            families,
            [
                ("a", MetricType::Gauge, "a 1\n", 1),
                ("b", MetricType::Counter, "b 2\n", 2),
                ("c", MetricType::Gauge, "c 2\n", 2),
            ]
        );
        assert_eq!(merged.series(), 3);
    }
}
