//! A configuration turned into running sources.
//!
//! A [`Runtime`] is built whole from a validated [`Config`]; the agent swaps
//! runtimes atomically on reload, and dropping the old one stops its
//! background commands.

use std::sync::Arc;
use std::time::Duration;

use exposition::LabelSet;
use tokio::sync::Semaphore;

use crate::config::{Config, ConfigError, SourceConfig};
use crate::source::exec::{BackgroundGuard, ExecSpec, ParamTarget};
use crate::source::{ExecSource, FileSource, HttpSource, ParamRule, Source};

/// One configured source, ready to scrape.
#[derive(Debug)]
pub struct NamedSource {
    /// The source's name.
    pub name: String,
    /// The labels added to its samples: the source label, then static ones.
    pub labels: LabelSet,
    /// The source itself.
    pub source: Source,
}

/// The running form of a configuration.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration it was built from.
    pub config: Config,
    /// The sources, in merge order.
    pub sources: Vec<Arc<NamedSource>>,
    /// The client for allowlisted local ports (`proxy_url` mode); it
    /// passes the scraper's headers on, so it sets none of its own.
    pub port_client: reqwest::Client,
    /// Stops background commands when the runtime is dropped.
    _background: Vec<BackgroundGuard>,
}

impl Runtime {
    /// Builds every source; fails without side effects when one cannot be
    /// built. Background commands start only once all sources are built.
    pub fn build(config: Config) -> Result<Runtime, ConfigError> {
        let limiter = Arc::new(Semaphore::new(config.max_concurrent_commands));
        let mut sources = Vec::with_capacity(config.sources.len());
        for (index, source) in config.sources.iter().enumerate() {
            let invalid = |problem: String| ConfigError::Invalid {
                at: format!("sources[{index}] {:?}", source.name),
                problem,
            };
            let labels = LabelSet::new(
                std::iter::once((config.source_label.as_str(), source.name.as_str()))
                    .chain(source.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            )
            .map_err(|e| invalid(e.to_string()))?;
            let built = build_source(source, &limiter).map_err(invalid)?;
            sources.push(Arc::new(NamedSource {
                name: source.name.clone(),
                labels,
                source: built,
            }));
        }
        let background = sources
            .iter()
            .filter_map(|s| match &s.source {
                Source::Exec(exec) => exec.start(),
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
    pub fn source(&self, name: &str) -> Option<&Arc<NamedSource>> {
        self.sources.iter().find(|s| s.name == name)
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
