//! One scrape of the agent: every source side by side within one deadline,
//! then one merged page with a health series for each source.
//!
//! A source that fails or runs out of time costs only its own samples: its
//! health series say what happened, and every other source is still served.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use exposition::{Format, LabelSet, Page, SourcePage};
use tokio::time::Instant;

use crate::runtime::NamedSource;
use crate::source::{ScrapeContext, Scraped, Series, SourceError};

/// What one source gave in one scrape.
#[derive(Debug)]
pub struct Outcome {
    /// The source.
    pub source: Arc<NamedSource>,
    /// Its page, or why there is none.
    pub result: Result<Scraped, SourceError>,
    /// How long it took.
    pub duration: Duration,
}

/// The agent's own series that are not about one source.
#[derive(Clone, Debug, Default)]
pub struct AgentSeries {
    /// Scrapes of `/metrics` served since start, this one included.
    pub scrapes: u64,
    /// Whether the last configuration reload succeeded.
    pub reload_ok: bool,
    /// When the configuration last loaded successfully (Unix seconds).
    pub reload_time: f64,
}

/// Scrapes `sources` concurrently; each gets the query parameters its own
/// allowlist declares, and none outlives `deadline`.
pub async fn scrape_all(
    sources: &[Arc<NamedSource>],
    deadline: Instant,
    params: &[(String, String)],
) -> Vec<Outcome> {
    let scrapes = sources.iter().map(|source| {
        let ctx = ScrapeContext {
            deadline,
            params: params_for(source, params),
        };
        async move { scrape_one(Arc::clone(source), &ctx).await }
    });
    futures::future::join_all(scrapes).await
}

/// Scrapes one source within the context's deadline.
pub async fn scrape_one(source: Arc<NamedSource>, ctx: &ScrapeContext) -> Outcome {
    let start = Instant::now();
    let result = match tokio::time::timeout_at(ctx.deadline, source.source.scrape(ctx)).await {
        Ok(result) => result,
        Err(_) => Err(SourceError::Timeout(
            ctx.deadline.saturating_duration_since(start),
        )),
    };
    if let Err(error) = &result {
        tracing::warn!(source = %source.name, kind = error.kind(), error = %error, "source failed");
    }
    Outcome {
        source,
        result,
        duration: start.elapsed(),
    }
}

/// The parameters of `all` that `source` declares, in its declared order.
pub fn params_for(source: &NamedSource, all: &[(String, String)]) -> Vec<(String, String)> {
    source
        .source
        .params()
        .iter()
        .filter_map(|rule| all.iter().find(|(name, _)| *name == rule.name))
        .cloned()
        .collect()
}

/// Writes the merged page for `outcomes` in `format`: every source's
/// samples with its labels, then the health and agent series.
pub fn render(outcomes: &[Outcome], agent: &AgentSeries, format: Format) -> Vec<u8> {
    // Parse every page first; a page that does not parse counts as a
    // failed source.
    let mut pages: Vec<Option<Page<'_>>> = Vec::with_capacity(outcomes.len());
    let mut parse_errors: Vec<Option<SourceError>> = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match &outcome.result {
            Ok(scraped) => match exposition::parse(&scraped.body, scraped.format) {
                Ok(page) => {
                    pages.push(Some(page));
                    parse_errors.push(None);
                }
                Err(e) => {
                    tracing::warn!(source = %outcome.source.name, error = %e, "source page does not parse");
                    pages.push(None);
                    parse_errors.push(Some(SourceError::Parse(e.to_string())));
                }
            },
            Err(_) => {
                pages.push(None);
                parse_errors.push(None);
            }
        }
    }
    let mut sources: Vec<SourcePage<'_, '_>> = outcomes
        .iter()
        .zip(&pages)
        .filter_map(|(outcome, page)| {
            let page = page.as_ref()?;
            let scraped = outcome.result.as_ref().ok()?;
            Some(SourcePage {
                name: &outcome.source.name,
                format: scraped.format,
                page,
                labels: &outcome.source.labels,
            })
        })
        .collect();
    let conflicts = exposition::conflicts(&sources, format);
    let mut dropped: BTreeMap<&str, usize> = BTreeMap::new();
    for conflict in &conflicts {
        tracing::warn!(
            family = %conflict.family,
            source = %conflict.dropped_source,
            kept_source = %conflict.kept_source,
            "family left out: its type disagrees with an earlier source"
        );
        *dropped.entry(conflict.dropped_source.as_str()).or_default() += conflict.dropped_samples;
    }
    let own = own_series(outcomes, &pages, &parse_errors, &dropped, agent);
    let no_labels = LabelSet::default();
    // The agent writes its own series itself; should that ever produce a
    // page that does not parse, the sources are still served.
    let own_page = exposition::parse(own.as_bytes(), Format::Text)
        .inspect_err(
            |e| tracing::error!(error = %e, "the agent's own series do not parse; left out"),
        )
        .ok();
    if let Some(page) = &own_page {
        sources.push(SourcePage {
            name: "promrelay",
            format: Format::Text,
            page,
            labels: &no_labels,
        });
    }
    let mut out = Vec::new();
    exposition::merge(&sources, format, &mut out);
    out
}

fn own_series(
    outcomes: &[Outcome],
    pages: &[Option<Page<'_>>],
    parse_errors: &[Option<SourceError>],
    dropped: &BTreeMap<&str, usize>,
    agent: &AgentSeries,
) -> String {
    let mut text = String::with_capacity(256 * outcomes.len() + 1024);
    let family = |text: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut text,
        "promrelay_source_up",
        "gauge",
        "Whether the source's page is on this page.",
    );
    for (outcome, page) in outcomes.iter().zip(pages) {
        let _ = writeln!(
            text,
            "promrelay_source_up{{source=\"{}\"}} {}",
            outcome.source.name,
            u8::from(page.is_some())
        );
    }
    family(
        &mut text,
        "promrelay_source_scrape_duration_seconds",
        "gauge",
        "How long the source took in this scrape.",
    );
    for outcome in outcomes {
        let _ = writeln!(
            text,
            "promrelay_source_scrape_duration_seconds{{source=\"{}\"}} {}",
            outcome.source.name,
            outcome.duration.as_secs_f64()
        );
    }
    family(
        &mut text,
        "promrelay_source_samples",
        "gauge",
        "Samples the source put on this page.",
    );
    for (outcome, page) in outcomes.iter().zip(pages) {
        let samples: usize = page.as_ref().map_or(0, |p| p.samples.len());
        let samples = samples.saturating_sub(
            dropped
                .get(outcome.source.name.as_str())
                .copied()
                .unwrap_or(0),
        );
        let _ = writeln!(
            text,
            "promrelay_source_samples{{source=\"{}\"}} {samples}",
            outcome.source.name
        );
    }
    family(
        &mut text,
        "promrelay_source_error",
        "gauge",
        "1 with the kind of failure when the source failed, or was served despite one.",
    );
    for ((outcome, parse_error), _) in outcomes.iter().zip(parse_errors).zip(pages) {
        let error = match &outcome.result {
            Err(error) => Some(error),
            Ok(scraped) => parse_error.as_ref().or(scraped.stale_error.as_ref()),
        };
        if let Some(error) = error {
            let _ = writeln!(
                text,
                "promrelay_source_error{{source=\"{}\",kind=\"{}\"}} 1",
                outcome.source.name,
                error.kind()
            );
        }
    }
    family(
        &mut text,
        "promrelay_source_type_conflict_samples",
        "gauge",
        "Samples left out because their family's type disagrees with an earlier source.",
    );
    for outcome in outcomes {
        let count = dropped
            .get(outcome.source.name.as_str())
            .copied()
            .unwrap_or(0);
        let _ = writeln!(
            text,
            "promrelay_source_type_conflict_samples{{source=\"{}\"}} {count}",
            outcome.source.name
        );
    }
    extra_series(&mut text, outcomes);
    family(
        &mut text,
        "promrelay_agent_scrapes_total",
        "counter",
        "Scrapes of the merged page served.",
    );
    let _ = writeln!(text, "promrelay_agent_scrapes_total {}", agent.scrapes);
    family(
        &mut text,
        "promrelay_agent_config_last_reload_successful",
        "gauge",
        "Whether the last configuration reload succeeded.",
    );
    let _ = writeln!(
        text,
        "promrelay_agent_config_last_reload_successful {}",
        u8::from(agent.reload_ok)
    );
    family(
        &mut text,
        "promrelay_agent_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When the configuration last loaded successfully.",
    );
    let _ = writeln!(
        text,
        "promrelay_agent_config_last_reload_success_timestamp_seconds {}",
        agent.reload_time
    );
    family(
        &mut text,
        "promrelay_build_info",
        "gauge",
        "The promrelay version.",
    );
    let _ = writeln!(
        text,
        "promrelay_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    text
}

/// One family of the sources' extra series, gathered across sources.
struct ExtraFamily<'a> {
    help: &'a str,
    members: Vec<(&'a str, &'a Series)>,
}

/// The sources' own extra series (file mtimes, cache ages), one family each.
fn extra_series(text: &mut String, outcomes: &[Outcome]) {
    let mut families: BTreeMap<&str, ExtraFamily<'_>> = BTreeMap::new();
    for outcome in outcomes {
        if let Ok(scraped) = &outcome.result {
            for series in &scraped.extra {
                families
                    .entry(series.family)
                    .or_insert_with(|| ExtraFamily {
                        help: series.help,
                        members: Vec::new(),
                    })
                    .members
                    .push((&outcome.source.name, series));
            }
        }
    }
    for (name, family) in families {
        let _ = writeln!(text, "# HELP {name} {}\n# TYPE {name} gauge", family.help);
        for (source, series) in family.members {
            let _ = write!(text, "{name}{{source=\"{source}\"");
            for (label, value) in &series.labels {
                let _ = write!(text, ",{label}=\"");
                exposition::escape_label_value(value, text);
                text.push('"');
            }
            let _ = writeln!(text, "}} {}", series.value);
        }
    }
}
