//! One scrape of the agent: every source side by side within one deadline,
//! then one merged page with health series for each page.
//!
//! A source gives one page; a docker source gives one page per container
//! (see [`crate::source::docker`]). Each page is an [`Outcome`], and a page
//! that fails or runs out of time costs only its own samples: its health
//! series say what happened, and every other page is still served.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use docker::{ContainerScrape, DaemonStatus, Targets};
use exposition::{Format, LabelSet, Page, SourcePage};
use tokio::time::Instant;

use crate::runtime::{NamedSource, RuntimeSource};
use crate::source::docker::CONTAINER_LABEL;
use crate::source::{DockerSource, ScrapeContext, Scraped, Series, SourceError};

/// What one page gave in one scrape: a source's, or a container's of a
/// docker source.
#[derive(Debug)]
pub struct Outcome {
    /// The source's name.
    pub source: String,
    /// The container, for a page of a docker source.
    pub container: Option<String>,
    /// The labels its samples get on the merged page.
    pub labels: Arc<LabelSet>,
    /// Its page, or why there is none.
    pub result: Result<Scraped, SourceError>,
    /// How long it took.
    pub duration: Duration,
}

impl Outcome {
    /// The page's name in reports and logs: the source's name, or
    /// `<source>/<container>`. Unique in one scrape, as neither name can
    /// hold a `/`.
    pub fn name(&self) -> String {
        match &self.container {
            Some(container) => format!("{}/{container}", self.source),
            None => self.source.clone(),
        }
    }

    /// Whose health series: `source="a"` or `source="a",container="b"`.
    fn write_origin(&self, text: &mut String) {
        let _ = write!(text, "source=\"{}\"", self.source);
        if let Some(container) = &self.container {
            let _ = write!(text, ",{CONTAINER_LABEL}=\"");
            exposition::escape_label_value(container, text);
            text.push('"');
        }
    }
}

/// What a docker source's discovery knew when it was scraped.
#[derive(Debug)]
pub struct Discovered {
    /// The docker source's name.
    pub source: String,
    /// The targets scraped, the containers refused and the daemon status.
    pub targets: Arc<Targets>,
}

/// Everything one scrape of all sources gave.
#[derive(Debug, Default)]
pub struct Scrape {
    /// The pages, in merge order.
    pub outcomes: Vec<Outcome>,
    /// The docker sources' discovery, in configuration order.
    pub discovered: Vec<Discovered>,
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
    /// The push store's own series (text 0.0.4), when the agent takes
    /// pushes.
    pub push: Option<String>,
}

/// Scrapes `sources` concurrently; each gets the query parameters its own
/// allowlist declares, and none outlives `deadline`.
pub async fn scrape_all(
    sources: &[RuntimeSource],
    deadline: Instant,
    params: &[(String, String)],
) -> Scrape {
    let scrapes = sources.iter().map(|source| async move {
        match source {
            RuntimeSource::Page(source) => {
                let ctx = ScrapeContext {
                    deadline,
                    params: params_for(source, params),
                };
                (vec![scrape_one(source, &ctx).await], None)
            }
            RuntimeSource::Docker(source) => {
                let (outcomes, discovered) = scrape_docker(source, deadline).await;
                (outcomes, Some(discovered))
            }
        }
    });
    let mut scrape = Scrape::default();
    for (outcomes, discovered) in futures::future::join_all(scrapes).await {
        scrape.outcomes.extend(outcomes);
        scrape.discovered.extend(discovered);
    }
    scrape
}

/// Scrapes one source within the context's deadline.
pub async fn scrape_one(source: &NamedSource, ctx: &ScrapeContext) -> Outcome {
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
        source: source.name.clone(),
        container: None,
        labels: Arc::clone(&source.labels),
        result,
        duration: start.elapsed(),
    }
}

/// Scrapes the containers a docker source knows now, side by side, within
/// `deadline`: one outcome per container, in name order.
pub async fn scrape_docker(source: &DockerSource, deadline: Instant) -> (Vec<Outcome>, Discovered) {
    let targets = source.targets();
    let outcomes = source
        .scrape_all(&targets, deadline)
        .await
        .into_iter()
        .map(|scraped| container_outcome(source, scraped))
        .collect();
    let discovered = Discovered {
        source: source.name().to_owned(),
        targets,
    };
    (outcomes, discovered)
}

fn container_outcome(source: &DockerSource, scraped: ContainerScrape) -> Outcome {
    let target = &scraped.target;
    let (labels, result) = match source.labels(target) {
        Ok(labels) => (
            labels,
            scraped
                .result
                .map(|page| Scraped::fresh(page.body, page.format))
                .map_err(SourceError::from),
        ),
        // DockerSource::start checked the labels with every name discovery
        // sets, so this is a bug; it costs this container only.
        Err(error) => {
            tracing::error!(source = %source.name(), container = %target.name, error = %error, "cannot label the container's samples");
            (
                LabelSet::default(),
                Err(SourceError::Io(format!(
                    "cannot label its samples: {error}"
                ))),
            )
        }
    };
    Outcome {
        source: source.name().to_owned(),
        container: Some(target.name.clone()),
        labels: Arc::new(labels),
        result,
        duration: scraped.duration,
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

/// The outcomes' pages, parsed once for the health series and the merge.
struct Parsed<'a> {
    /// Each outcome's [`Outcome::name`].
    names: Vec<String>,
    /// Each outcome's page, if it has one that parses.
    pages: Vec<Option<Page<'a>>>,
    /// Why a page that arrived does not parse: it counts as failed.
    parse_errors: Vec<Option<SourceError>>,
}

impl<'a> Parsed<'a> {
    fn new(outcomes: &'a [Outcome]) -> Parsed<'a> {
        let mut pages = Vec::with_capacity(outcomes.len());
        let mut parse_errors = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match &outcome.result {
                Ok(scraped) => match exposition::parse(&scraped.body, scraped.format) {
                    Ok(page) => {
                        pages.push(Some(page));
                        parse_errors.push(None);
                    }
                    Err(e) => {
                        tracing::warn!(source = %outcome.name(), error = %e, "source page does not parse");
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
        Parsed {
            names: outcomes.iter().map(Outcome::name).collect(),
            pages,
            parse_errors,
        }
    }

    /// The pages to merge, each with its outcome's labels.
    fn sources<'p>(&'p self, outcomes: &'p [Outcome]) -> Vec<SourcePage<'p, 'a>> {
        outcomes
            .iter()
            .zip(&self.pages)
            .zip(&self.names)
            .filter_map(|((outcome, page), name)| {
                Some(SourcePage {
                    name,
                    format: outcome.result.as_ref().ok()?.format,
                    page: page.as_ref()?,
                    labels: &outcome.labels,
                })
            })
            .collect()
    }
}

/// Writes the merged page of `outcomes` in `format`, each page's samples
/// with its labels and nothing else: what `/sources/<docker source>/metrics`
/// serves. A page that failed is left out.
pub fn render_pages(outcomes: &[Outcome], format: Format) -> Vec<u8> {
    let parsed = Parsed::new(outcomes);
    let mut out = Vec::new();
    exposition::merge(&parsed.sources(outcomes), format, &mut out);
    out
}

/// Writes the merged page for `scrape` in `format`: every page's samples
/// with its labels, then the health and agent series.
pub fn render(scrape: &Scrape, agent: &AgentSeries, format: Format) -> Vec<u8> {
    let outcomes = &scrape.outcomes;
    let parsed = Parsed::new(outcomes);
    let mut sources = parsed.sources(outcomes);
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
    let mut own = own_series(outcomes, &parsed, &dropped);
    docker_series(&mut own, &scrape.discovered);
    agent_series(&mut own, agent);
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

fn family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The health series of every page.
fn own_series(
    outcomes: &[Outcome],
    parsed: &Parsed<'_>,
    dropped: &BTreeMap<&str, usize>,
) -> String {
    let mut text = String::with_capacity(256 * outcomes.len() + 1024);
    let dropped_from = |name: &str| dropped.get(name).copied().unwrap_or(0);
    let per_page =
        |text: &mut String, metric: &str, outcome: &Outcome, value: &dyn std::fmt::Display| {
            let _ = write!(text, "{metric}{{");
            outcome.write_origin(text);
            let _ = writeln!(text, "}} {value}");
        };
    family(
        &mut text,
        "promrelay_source_up",
        "gauge",
        "Whether the source's page is on this page.",
    );
    for (outcome, page) in outcomes.iter().zip(&parsed.pages) {
        per_page(
            &mut text,
            "promrelay_source_up",
            outcome,
            &u8::from(page.is_some()),
        );
    }
    family(
        &mut text,
        "promrelay_source_scrape_duration_seconds",
        "gauge",
        "How long the source took in this scrape.",
    );
    for outcome in outcomes {
        per_page(
            &mut text,
            "promrelay_source_scrape_duration_seconds",
            outcome,
            &outcome.duration.as_secs_f64(),
        );
    }
    family(
        &mut text,
        "promrelay_source_samples",
        "gauge",
        "Samples the source put on this page.",
    );
    for ((outcome, page), name) in outcomes.iter().zip(&parsed.pages).zip(&parsed.names) {
        let samples: usize = page.as_ref().map_or(0, |p| p.samples.len());
        let samples = samples.saturating_sub(dropped_from(name));
        per_page(&mut text, "promrelay_source_samples", outcome, &samples);
    }
    family(
        &mut text,
        "promrelay_source_error",
        "gauge",
        "1 with the kind of failure when the source failed, or was served despite one.",
    );
    for (outcome, parse_error) in outcomes.iter().zip(&parsed.parse_errors) {
        let error = match &outcome.result {
            Err(error) => Some(error),
            Ok(scraped) => parse_error.as_ref().or(scraped.stale_error.as_ref()),
        };
        if let Some(error) = error {
            text.push_str("promrelay_source_error{");
            outcome.write_origin(&mut text);
            let _ = writeln!(text, ",kind=\"{}\"}} 1", error.kind());
        }
    }
    family(
        &mut text,
        "promrelay_source_type_conflict_samples",
        "gauge",
        "Samples left out because their family's type disagrees with an earlier source.",
    );
    for (outcome, name) in outcomes.iter().zip(&parsed.names) {
        per_page(
            &mut text,
            "promrelay_source_type_conflict_samples",
            outcome,
            &dropped_from(name),
        );
    }
    extra_series(&mut text, outcomes);
    text
}

/// What docker discovery knows beyond the pages (see
/// [`crate::source::docker`]); nothing without a docker source.
fn docker_series(text: &mut String, discovered: &[Discovered]) {
    if discovered.is_empty() {
        return;
    }
    family(
        text,
        "promrelay_docker_daemon_up",
        "gauge",
        "Whether the Docker daemon's containers are listed and its events followed.",
    );
    for d in discovered {
        let up = u8::from(d.targets.daemon == DaemonStatus::Connected);
        let _ = writeln!(
            text,
            "promrelay_docker_daemon_up{{source=\"{}\"}} {up}",
            d.source
        );
    }
    family(
        text,
        "promrelay_docker_daemon_error",
        "gauge",
        "1 with the kind of failure while the Docker daemon cannot be followed.",
    );
    for d in discovered {
        if let DaemonStatus::Disconnected(error) = &d.targets.daemon {
            let _ = writeln!(
                text,
                "promrelay_docker_daemon_error{{source=\"{}\",kind=\"{}\"}} 1",
                d.source,
                error.kind()
            );
        }
    }
    family(
        text,
        "promrelay_docker_containers",
        "gauge",
        "Containers scraped.",
    );
    for d in discovered {
        let _ = writeln!(
            text,
            "promrelay_docker_containers{{source=\"{}\"}} {}",
            d.source,
            d.targets.targets.len()
        );
    }
    family(
        text,
        "promrelay_docker_container_problem",
        "gauge",
        "1 with the kind of problem for a container that asks to be scraped but cannot be.",
    );
    for d in discovered {
        for problem in &d.targets.problems {
            let _ = write!(
                text,
                "promrelay_docker_container_problem{{source=\"{}\",{CONTAINER_LABEL}=\"",
                d.source
            );
            exposition::escape_label_value(&problem.container, text);
            let _ = writeln!(text, "\",kind=\"{}\"}} 1", problem.kind.as_str());
        }
    }
}

/// The series about the agent itself.
fn agent_series(text: &mut String, agent: &AgentSeries) {
    family(
        text,
        "promrelay_agent_scrapes_total",
        "counter",
        "Scrapes of the merged page served.",
    );
    let _ = writeln!(text, "promrelay_agent_scrapes_total {}", agent.scrapes);
    family(
        text,
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
        text,
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
        text,
        "promrelay_build_info",
        "gauge",
        "The promrelay version.",
    );
    let _ = writeln!(
        text,
        "promrelay_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(push) = &agent.push {
        text.push_str(push);
    }
}

/// One family of the sources' extra series, gathered across sources.
struct ExtraFamily<'a> {
    help: &'a str,
    members: Vec<(&'a Outcome, &'a Series)>,
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
                    .push((outcome, series));
            }
        }
    }
    for (name, family) in families {
        let _ = writeln!(text, "# HELP {name} {}\n# TYPE {name} gauge", family.help);
        for (outcome, series) in family.members {
            let _ = write!(text, "{name}{{");
            outcome.write_origin(text);
            for (label, value) in &series.labels {
                let _ = write!(text, ",{label}=\"");
                exposition::escape_label_value(value, text);
                text.push('"');
            }
            let _ = writeln!(text, "}} {}", series.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use docker::{DockerError, Problem, ProblemKind};

    fn page(
        source: &str,
        container: Option<&str>,
        labels: &[(&str, &str)],
        body: Result<&'static str, SourceError>,
    ) -> Outcome {
        Outcome {
            source: source.into(),
            container: container.map(str::to_owned),
            labels: Arc::new(LabelSet::new(labels.iter().copied()).unwrap()),
            result: body.map(|b| Scraped::fresh(Bytes::from_static(b.as_bytes()), Format::Text)),
            duration: Duration::from_millis(5),
        }
    }

    fn discovered(daemon: DaemonStatus, problems: Vec<Problem>) -> Discovered {
        Discovered {
            source: "containers".into(),
            targets: Arc::new(Targets {
                targets: Vec::new(),
                problems,
                daemon,
            }),
        }
    }

    const REPLICA: &str = "# TYPE requests_total counter\nrequests_total 3\n";

    #[test]
    fn replicas_stay_apart_and_each_container_has_its_health_series() {
        let replica = |name: &'static str, body| {
            page(
                "containers",
                Some(name),
                &[
                    ("exporter", "containers"),
                    ("container", name),
                    ("compose_service", "web"),
                ],
                body,
            )
        };
        let scrape = Scrape {
            outcomes: vec![
                page("node", None, &[("exporter", "node")], Ok(REPLICA)),
                replica("web-1", Ok(REPLICA)),
                replica("web-2", Ok(REPLICA)),
                replica("broken", Ok("not { a page\n")),
                replica("gone", Err(SourceError::Connect("refused".into()))),
            ],
            discovered: vec![discovered(
                DaemonStatus::Connected,
                vec![Problem {
                    container: "odd".into(),
                    id: "0".repeat(64),
                    kind: ProblemKind::BadLabel,
                    message: "label prometheus.io/port=\"x\": not a port number".into(),
                }],
            )],
        };
        let text =
            String::from_utf8(render(&scrape, &AgentSeries::default(), Format::Text)).unwrap();
        assert_eq!(
            text.matches("# TYPE requests_total counter").count(),
            1,
            "{text}"
        );
        for line in [
            "requests_total{exporter=\"node\"} 3",
            "requests_total{exporter=\"containers\",container=\"web-1\",compose_service=\"web\"} 3",
            "requests_total{exporter=\"containers\",container=\"web-2\",compose_service=\"web\"} 3",
            "promrelay_source_up{source=\"node\"} 1",
            "promrelay_source_up{source=\"containers\",container=\"web-1\"} 1",
            "promrelay_source_up{source=\"containers\",container=\"broken\"} 0",
            "promrelay_source_error{source=\"containers\",container=\"broken\",kind=\"parse\"} 1",
            "promrelay_source_up{source=\"containers\",container=\"gone\"} 0",
            "promrelay_source_error{source=\"containers\",container=\"gone\",kind=\"connect\"} 1",
            "promrelay_source_samples{source=\"containers\",container=\"web-2\"} 1",
            "promrelay_docker_daemon_up{source=\"containers\"} 1",
            "promrelay_docker_containers{source=\"containers\"} 0",
            "promrelay_docker_container_problem{source=\"containers\",container=\"odd\",kind=\"bad_label\"} 1",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} missing:\n{text}");
        }
        assert!(!text.contains("promrelay_docker_daemon_error{"), "{text}");
        let parsed = exposition::parse(text.as_bytes(), Format::Text).unwrap();
        let violations = exposition::validate_strict(&parsed, Format::Text);
        assert!(violations.is_empty(), "{violations:?}\n{text}");
    }

    #[test]
    fn a_lost_daemon_is_reported_and_other_pages_served() {
        let error = DockerError::StreamEnded;
        let scrape = Scrape {
            outcomes: vec![page("node", None, &[("exporter", "node")], Ok(REPLICA))],
            discovered: vec![discovered(
                DaemonStatus::Disconnected(error.clone()),
                Vec::new(),
            )],
        };
        let text =
            String::from_utf8(render(&scrape, &AgentSeries::default(), Format::Text)).unwrap();
        assert!(
            text.contains("requests_total{exporter=\"node\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("promrelay_docker_daemon_up{source=\"containers\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "promrelay_docker_daemon_error{{source=\"containers\",kind=\"{}\"}} 1\n",
                error.kind()
            )),
            "{text}"
        );
    }

    #[test]
    fn without_a_docker_source_there_are_no_docker_series() {
        let scrape = Scrape {
            outcomes: vec![page("node", None, &[("exporter", "node")], Ok(REPLICA))],
            discovered: Vec::new(),
        };
        let text =
            String::from_utf8(render(&scrape, &AgentSeries::default(), Format::Text)).unwrap();
        assert!(!text.contains("promrelay_docker"), "{text}");
    }

    #[test]
    fn a_docker_sources_own_page_is_its_containers_merged() {
        let outcomes = [
            page("containers", Some("a"), &[("container", "a")], Ok(REPLICA)),
            page(
                "containers",
                Some("b"),
                &[("container", "b")],
                Err(SourceError::Status(500)),
            ),
            page("containers", Some("c"), &[("container", "c")], Ok(REPLICA)),
        ];
        let text = String::from_utf8(render_pages(&outcomes, Format::Text)).unwrap();
        assert_eq!(
            text,
            "# TYPE requests_total counter\nrequests_total{container=\"a\"} 3\nrequests_total{container=\"c\"} 3\n"
        );
    }
}
