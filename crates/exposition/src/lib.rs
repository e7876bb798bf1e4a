//! The exposition engine: parse, validate, relabel and merge Prometheus
//! exposition pages.
//!
//! Everything else in promrelay moves pages through this crate, so it knows
//! nothing about async runtimes or HTTP and works on borrowed bytes: a parsed
//! [`Page`] points into the input and allocates per family, never per sample.
//!
//! # Layout
//!
//! - [`format`]: the two wire formats (Prometheus text 0.0.4 and OpenMetrics
//!   1.0 text), their content types and `Accept` negotiation.
//! - [`model`]: [`Page`], [`Family`], [`Sample`], [`MetricType`] and the
//!   label iterator; the vocabulary shared by every other module.
//! - [`parse`]: bytes to [`Page`], accepting what Prometheus's own scraper
//!   accepts (the lenient level). Errors carry line and column.
//! - [`validate`]: the strict level: everything the OpenMetrics specification
//!   requires of a valid exposition (grouping, suffixes, buckets, labels, ...).
//! - [`relabel`]: the labels a source adds to every sample, and Prometheus's
//!   `exported_` rule for names that already exist.
//! - [`merge`]: N labelled pages into one page where every family appears
//!   once; type conflicts are resolved by a documented rule and reported.
//! - [`write`]: rendering in either format, converting between them.
//! - `value` (private): number and timestamp syntax.

pub mod format;
pub mod merge;
pub mod model;
pub mod parse;
pub mod relabel;
pub mod validate;
mod value;
pub mod write;

pub use format::Format;
pub use merge::{conflicts, merge, merge_in_chunks, MergeReport, SourcePage, TypeConflict};
pub use model::{unescape, Family, Label, Labels, MetricType, Page, Sample};
pub use parse::{parse, ParseError, ParseErrorKind};
pub use relabel::{escape_label_value, LabelSet, LabelSetError};
pub use validate::{validate_strict, Violation};
pub use write::write_page;
