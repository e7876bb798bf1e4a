//! A configuration turned into running sources.
//!
//! A [`Runtime`] is built whole from a validated [`Config`]; the agent swaps
//! runtimes atomically on reload, and dropping the old one stops its
//! background commands and its docker discoveries.

use std::sync::Arc;
use std::time::Duration;

use exposition::LabelSet;
use push::PushStore;
use tokio::sync::Semaphore;

use crate::config::{Config, ConfigError, SourceConfig};
use crate::source::exec::{BackgroundGuard, ExecSpec, ParamTarget};
use crate::source::{
    DockerSource, ExecSource, FileSource, HttpSource, ParamRule, PushSource, Source,
};

/// One configured source that gives one page, ready to scrape.
#[derive(Debug)]
pub struct NamedSource {
    /// The source's name.
    pub name: String,
    /// The labels added to its samples: the source label, then static ones.
    /// Shared with each scrape's outcome.
    pub labels: Arc<LabelSet>,
    /// The source itself.
    pub source: Source,
}

/// One configured source as it runs.
#[derive(Debug)]
pub enum RuntimeSource {
    /// An `http`, `exec`, `file` or `push` source: one page.
    Page(NamedSource),
    /// A `docker` source: one page per container.
    Docker(DockerSource),
}

impl RuntimeSource {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            RuntimeSource::Page(source) => &source.name,
            RuntimeSource::Docker(source) => source.name(),
        }
    }
}

/// The running form of a configuration.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration it was built from.
    pub config: Config,
    /// The sources, in merge order.
    pub sources: Vec<RuntimeSource>,
    /// The client for allowlisted local ports (`proxy_url` mode); it
    /// passes the scraper's headers on, so it sets none of its own.
    pub port_client: reqwest::Client,
    /// Stops background commands when the runtime is dropped.
    _background: Vec<BackgroundGuard>,
}

impl Runtime {
    /// Builds every source; fails without lasting side effects when one
    /// cannot be built. Background commands start only once all sources are
    /// built; docker discoveries start as they are built, and stop again if
    /// a later source fails. A `push` source serves `push`, the agent's
    /// store, and cannot be built without one.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (docker discovery runs as a task).
    pub fn build(config: Config, push: Option<&Arc<PushStore>>) -> Result<Runtime, ConfigError> {
        let limiter = Arc::new(Semaphore::new(config.max_concurrent_commands));
        let mut sources = Vec::with_capacity(config.sources.len());
        for (index, source) in config.sources.iter().enumerate() {
            let invalid = |problem: String| ConfigError::Invalid {
                at: format!("sources[{index}] {:?}", source.name),
                problem,
            };
            let first: Vec<(&str, &str)> =
                std::iter::once((config.source_label.as_str(), source.name.as_str()))
                    .chain(source.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .collect();
            if let Some(docker) = &source.docker {
                let first = first
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect();
                let built =
                    DockerSource::start(source.name.clone(), first, docker).map_err(invalid)?;
                sources.push(RuntimeSource::Docker(built));
                continue;
            }
            let labels = LabelSet::new(first).map_err(|e| invalid(e.to_string()))?;
            let built = match (&source.push, push) {
                (Some(_), Some(store)) => Source::Push(PushSource::new(Arc::clone(store))),
                (Some(_), None) => {
                    return Err(invalid(
                        "a push source keeps what it acknowledges on disk: give the agent --storage.path"
                            .into(),
                    ))
                }
                (None, _) => build_source(source, &limiter).map_err(invalid)?,
            };
            sources.push(RuntimeSource::Page(NamedSource {
                name: source.name.clone(),
                labels: Arc::new(labels),
                source: built,
            }));
        }
        let background = sources
            .iter()
            .filter_map(|s| match s {
                RuntimeSource::Page(NamedSource {
                    source: Source::Exec(exec),
                    ..
                }) => exec.start(),
                _ => None,
            })
            .collect();
        // No decompression: a page the exporter gzipped (because the
        // scraper accepts gzip) crosses the tunnel as it is, compressed.
        let port_client = reqwest::Client::builder()
            .user_agent(concat!("promrelay/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .build()
            .map_err(|e| ConfigError::Invalid {
                at: "allowed_ports".into(),
                problem: e.to_string(),
            })?;
        Ok(Runtime {
            config,
            sources,
            port_client,
            _background: background,
        })
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&RuntimeSource> {
        self.sources.iter().find(|s| s.name() == name)
    }

    /// The sources that give one page each, in merge order.
    pub fn page_sources(&self) -> impl Iterator<Item = &NamedSource> {
        self.sources.iter().filter_map(|s| match s {
            RuntimeSource::Page(source) => Some(source),
            RuntimeSource::Docker(_) => None,
        })
    }

    /// The docker sources, in merge order.
    pub fn docker_sources(&self) -> impl Iterator<Item = &DockerSource> {
        self.sources.iter().filter_map(|s| match s {
            RuntimeSource::Docker(source) => Some(source),
            RuntimeSource::Page(_) => None,
        })
    }

    /// Waits (up to `timeout`) until every docker source has first heard
    /// from its daemon or failed to, so that a fresh runtime does not serve
    /// a page without containers for a moment.
    pub async fn settled(&self, timeout: Duration) {
        futures::future::join_all(self.docker_sources().map(|d| d.settled(timeout))).await;
    }

    /// The upper bound of one scrape.
    pub fn scrape_timeout(&self) -> Duration {
        self.config.scrape_timeout.0
    }
}

fn build_source(config: &SourceConfig, limiter: &Arc<Semaphore>) -> Result<Source, String> {
    if let Some(http) = &config.http {
        return HttpSource::new(http.clone())
            .map(|source| Source::Http(Box::new(source)))
            .map_err(|e| e.to_string());
    }
    if let Some(file) = &config.file {
        return Ok(Source::File(FileSource::new(file.clone())));
    }
    let exec = config.exec.as_ref().ok_or("no source kind")?;
    let params = exec
        .params
        .iter()
        .map(|p| {
            let target = match &p.env {
                Some(var) => ParamTarget::Env(var.clone()),
                None => ParamTarget::Arg,
            };
            ParamRule::new(p.name.clone(), &p.pattern, target).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec = ExecSpec {
        command: exec.command.clone(),
        args: exec.args.clone(),
        env: exec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        timeout: exec.timeout.0,
        max_output: exec.max_output,
        interval: exec.interval.map(|i| i.0),
        max_age: exec
            .max_age
            .or(exec.interval)
            .map_or(Duration::ZERO, |d| d.0),
        params,
    };
    spec.validate()?;
    Ok(Source::Exec(ExecSource::new(
        config.name.clone(),
        spec,
        Arc::clone(limiter),
    )))
}
