//! N labelled pages into one page where every metric family appears once.
//!
//! Each source's page is written with the source's [`LabelSet`] added to
//! every sample (see [`crate::relabel`]), and families of the same output
//! name are grouped under one HELP and one TYPE, samples in source order.
//!
//! # Type conflicts
//!
//! When sources disagree on a family's type, the rule is:
//!
//! 1. the family's type is the type of the first source (in the order the
//!    sources are given) that declares one; `untyped`/`unknown` declares
//!    nothing;
//! 2. untyped members join a gauge, and in text output a counter, because
//!    their samples carry the family name exactly as those types' do;
//! 3. every other member of a different type is left out of the page and
//!    reported in [`MergeReport::conflicts`], so the page stays valid.
//!
//! One exception keeps data: a text counter `x_total` is the OpenMetrics
//! counter `x`, but where a family really called `x` exists (Go's runtime
//! has the gauge `go_memstats_alloc_bytes` and the counter
//! `go_memstats_alloc_bytes_total`), the counter keeps its text name as an
//! `unknown` family instead of being dropped.
//!
//! HELP and UNIT come from the first member that has them.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::format::Format;
use crate::model::{Family, MetricType, Page};
use crate::relabel::LabelSet;
use crate::write::{parts, whole, write_help, write_sample, Part};

/// One source's page and the labels to add to its samples.
#[derive(Clone, Copy, Debug)]
pub struct SourcePage<'p, 'a> {
    /// The source's name, used in reports.
    pub name: &'p str,
    /// The format `page` was parsed from.
    pub format: Format,
    /// The parsed page.
    pub page: &'p Page<'a>,
    /// Labels added to each of the page's samples.
    pub labels: &'p LabelSet,
}

/// What a merge did besides writing the page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Families written.
    pub families: usize,
    /// Samples written.
    pub samples: usize,
    /// Families left out because their type disagreed.
    pub conflicts: Vec<TypeConflict>,
}

/// A family that was left out of a merged page because another source
/// declared the same name with another type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeConflict {
    /// The family name in the output format.
    pub family: String,
    /// The source whose type was kept.
    pub kept_source: String,
    /// The kept type.
    pub kept_type: MetricType,
    /// The source whose samples were left out.
    pub dropped_source: String,
    /// The type it declared.
    pub dropped_type: MetricType,
    /// How many of its samples were left out.
    pub dropped_samples: usize,
}

/// Output family names to their slot. foldhash is several times faster
/// than SipHash on short names and still seeded per process, so a source
/// cannot choose names that collide.
type Index<'a> = HashMap<Cow<'a, str>, usize, foldhash::fast::RandomState>;

struct Member<'p, 'a> {
    source: usize,
    family: &'p Family<'a>,
    part: Part<'a>,
}

struct Slot<'p, 'a> {
    members: Vec<Member<'p, 'a>>,
}

/// Merges `sources` into one page in `to`, appended to `out`.
pub fn merge(sources: &[SourcePage<'_, '_>], to: Format, out: &mut Vec<u8>) -> MergeReport {
    let samples: usize = sources.iter().map(|s| s.page.samples.len()).sum();
    // A rough size so the buffer grows once or twice, not twenty times.
    out.reserve(samples * 64);
    merge_in_chunks(sources, to, usize::MAX, out, |_| {})
}

/// [`merge`] for large pages sent as they are written: whenever `buffer`
/// holds at least `chunk` bytes after a source's part of a family, `emit`
/// is given it (to take, send and leave empty or to clear), and once more
/// at the end with what is left. Neither the page nor a family of many
/// sources is ever held whole, and sending can start while later families
/// are still being merged.
pub fn merge_in_chunks(
    sources: &[SourcePage<'_, '_>],
    to: Format,
    chunk: usize,
    buffer: &mut Vec<u8>,
    mut emit: impl FnMut(&mut Vec<u8>),
) -> MergeReport {
    let mut report = MergeReport::default();
    let slots = collect(sources, to);
    for slot in &slots {
        write_slot(slot, sources, to, buffer, &mut report, chunk, &mut emit);
    }
    if to == Format::OpenMetrics {
        buffer.extend_from_slice(b"# EOF\n");
    }
    emit(buffer);
    report
}

/// The type conflicts [`merge`] would report for the same sources, without
/// writing the page: a caller can describe them on the page it merges.
pub fn conflicts(sources: &[SourcePage<'_, '_>], to: Format) -> Vec<TypeConflict> {
    let mut report = MergeReport::default();
    for slot in &collect(sources, to) {
        report_conflicts(slot, sources, to, &mut report);
    }
    report.conflicts
}

/// Groups every family of every source by its output name, in order of
/// first appearance.
fn collect<'p, 'a>(sources: &[SourcePage<'p, 'a>], to: Format) -> Vec<Slot<'p, 'a>> {
    let families = sources.iter().map(|s| s.page.families.len()).sum();
    let mut order: Vec<Slot<'p, 'a>> = Vec::with_capacity(families);
    let mut index: Index<'a> = Index::with_capacity_and_hasher(families, Default::default());
    for (source_index, source) in sources.iter().enumerate() {
        for family in &source.page.families {
            for part in parts(family, source.format, to) {
                let slot = match index.get(part.name.as_ref()) {
                    Some(&slot) => slot,
                    None => {
                        index.insert(part.name.clone(), order.len());
                        order.push(Slot {
                            members: Vec::with_capacity(1),
                        });
                        order.len() - 1
                    }
                };
                order[slot].members.push(Member {
                    source: source_index,
                    family,
                    part,
                });
            }
        }
    }
    step_aside_renamed_counters(&mut order, &mut index);
    order
}

/// Where a family really called `x` that is not a counter meets a text
/// counter `x_total` (renamed to `x` for OpenMetrics), the counter keeps its
/// own name as `unknown`: nothing is dropped and no series is renamed.
fn step_aside_renamed_counters<'p, 'a>(order: &mut Vec<Slot<'p, 'a>>, index: &mut Index<'a>) {
    let mut slot = 0;
    while slot < order.len() {
        let members = &order[slot].members;
        let native_other = members
            .iter()
            .any(|m| !m.part.renamed && m.part.kind != MetricType::Counter);
        if native_other && members.iter().any(|m| m.part.renamed) {
            let (moved, kept) = std::mem::take(&mut order[slot].members)
                .into_iter()
                .partition(|m| m.part.renamed);
            order[slot].members = kept;
            for member in moved {
                let name = member.family.name;
                let target = *index.entry(Cow::Borrowed(name)).or_insert_with(|| {
                    order.push(Slot {
                        members: Vec::new(),
                    });
                    order.len() - 1
                });
                order[target].members.push(Member {
                    part: whole(std::borrow::Cow::Borrowed(name), MetricType::Unknown),
                    ..member
                });
            }
        }
        slot += 1;
    }
}

/// The type a slot's family gets (rule 1 of the module doc), and the member
/// that decided it.
fn resolve<'s, 'p, 'a>(slot: &'s Slot<'p, 'a>) -> (MetricType, Option<&'s Member<'p, 'a>>) {
    let winner = slot
        .members
        .iter()
        .find(|m| m.part.kind != MetricType::Unknown);
    (winner.map_or(MetricType::Unknown, |m| m.part.kind), winner)
}

/// Whether a member's samples belong under a family of `kind` (rule 2).
fn joins(member: &Member<'_, '_>, kind: MetricType, to: Format) -> bool {
    member.part.kind == kind
        || (member.part.kind == MetricType::Unknown
            && (kind == MetricType::Gauge || (kind == MetricType::Counter && to == Format::Text)))
}

/// Records the members left out of a slot (rule 3).
fn report_conflicts(
    slot: &Slot<'_, '_>,
    sources: &[SourcePage<'_, '_>],
    to: Format,
    report: &mut MergeReport,
) {
    let (kind, winner) = resolve(slot);
    for member in slot.members.iter().filter(|m| !joins(m, kind, to)) {
        let family = member.family;
        let dropped = sources[member.source]
            .page
            .samples_of(family)
            .iter()
            .filter(|s| member.part.takes(family.name, s.name))
            .count();
        if dropped > 0 {
            report.conflicts.push(TypeConflict {
                family: member.part.name.clone().into_owned(),
                kept_source: winner.map_or("", |m| sources[m.source].name).to_owned(),
                kept_type: kind,
                dropped_source: sources[member.source].name.to_owned(),
                dropped_type: member.part.kind,
                dropped_samples: dropped,
            });
        }
    }
}

/// Writes one family; after each source's part, `emit`s `out` once it
/// holds `chunk` bytes.
fn write_slot(
    slot: &Slot<'_, '_>,
    sources: &[SourcePage<'_, '_>],
    to: Format,
    out: &mut Vec<u8>,
    report: &mut MergeReport,
    chunk: usize,
    emit: &mut impl FnMut(&mut Vec<u8>),
) {
    report_conflicts(slot, sources, to, report);
    let (kind, _) = resolve(slot);
    let joined = || slot.members.iter().filter(move |m| joins(m, kind, to));
    let name = slot.members[0].part.name.as_ref();
    let start = out.len();
    let mut help = None;
    let mut unit = None;
    for member in joined().filter(|m| m.part.primary) {
        help = help.or(member
            .family
            .help
            .map(|h| (h, sources[member.source].format)));
        unit = unit.or(member.family.unit);
    }
    if let Some((text, from)) = help {
        write_help(name, text, from, to, out);
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.word(to).as_bytes());
    out.push(b'\n');
    if let (Some(unit), Format::OpenMetrics) = (unit, to) {
        out.extend_from_slice(b"# UNIT ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(unit.as_bytes());
        out.push(b'\n');
    }
    let mut samples = 0;
    for member in joined() {
        let source = &sources[member.source];
        let family = member.family;
        for sample in source.page.samples_of(family) {
            if member.part.takes(family.name, sample.name) {
                write_sample(sample, source.labels, source.format, to, out);
                samples += 1;
            }
        }
        // Only once a sample is written: a family left empty is taken
        // back out of `out` below, which needs its header still there.
        if samples > 0 && out.len() >= chunk {
            emit(out);
        }
    }
    if samples == 0 {
        // A family without samples says nothing; leave it out.
        out.truncate(start);
        return;
    }
    report.families += 1;
    report.samples += samples;
}
