//! The `docker` source: the containers of one Docker host, each scraped as
//! its own page (discovery and scraping are the docker crate's; this is
//! the agent's side of it).
//!
//! Unlike the other sources, one docker source gives many pages, one per
//! container, so the scrape module asks it for its current targets and
//! scrapes them itself (see [`crate::scrape`]). On the merged page a
//! container's samples carry the source label, the source's static labels,
//! then the container's labels ([`docker::label`]), so replicas of one
//! service never overwrite each other.
//!
//! # Health series
//!
//! A container is reported like a source, in the same families, with a
//! `container` label beside `source` (the docker source's name):
//!
//! ```text
//! promrelay_source_up{source="containers",container="shop-web-1"} 1
//! promrelay_source_error{source="containers",container="shop-web-2",kind="parse"} 1
//! ```
//!
//! so one alert on `promrelay_source_up == 0` covers sources and
//! containers alike. What only discovery knows has its own families, each
//! with the `source` label:
//!
//! - `promrelay_docker_daemon_up`: 1 while the daemon's list is read and
//!   its event stream followed;
//! - `promrelay_docker_daemon_error{kind}`: 1 with the kind of failure
//!   ([`docker::DockerError::kind`]) while it is not (the last known
//!   containers are still scraped meanwhile);
//! - `promrelay_docker_containers`: the containers scraped;
//! - `promrelay_docker_container_problem{container,kind}`: 1 for a
//!   container that asks to be scraped but cannot be
//!   ([`docker::ProblemKind`]: `bad_label`, `no_address`, `too_many`).
//!
//! A container that stops leaves the targets as soon as the daemon's event
//! arrives, and with it all its series.

use std::sync::Arc;
use std::time::Duration;

use docker::{ConfigProblem, ContainerScrape, Discovery, DockerConfig, Scraper, Target, Targets};
use exposition::{LabelSet, LabelSetError};
use tokio::time::Instant;

use super::{Scraped, SourceError};

/// The label that names a container in the health series.
pub const CONTAINER_LABEL: &str = "container";

/// A running docker source: discovery following the daemon, and the
/// scraper its containers share. Dropping it stops discovery.
#[derive(Debug)]
pub struct DockerSource {
    name: String,
    /// The source label and the static labels, put before each container's
    /// own labels.
    first: Vec<(String, String)>,
    discovery: Discovery,
    scraper: Scraper,
}

impl DockerSource {
    /// Starts following the daemon of `config`.
    ///
    /// `first` are the labels every container's samples get before its
    /// own: the source label, then the source's static labels. They must
    /// not name any of [`docker::label::ALL`] (configuration validation
    /// refuses that); this checks it once so that labelling a container
    /// cannot fail later.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(
        name: String,
        first: Vec<(String, String)>,
        config: &DockerConfig,
    ) -> Result<DockerSource, String> {
        let all = first
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(docker::label::ALL.iter().map(|n| (*n, "")));
        LabelSet::new(all).map_err(|e| format!("labels: {e}"))?;
        let problem = |p: ConfigProblem| format!("docker.{p}");
        let scraper = Scraper::new(config).map_err(problem)?;
        let discovery = Discovery::start(config).map_err(problem)?;
        Ok(DockerSource {
            name,
            first,
            discovery,
            scraper,
        })
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The containers to scrape, the ones refused, and the daemon's status,
    /// as discovery knows them now.
    pub fn targets(&self) -> Arc<Targets> {
        self.discovery.targets()
    }

    /// Waits (up to `timeout`) until the first attempt to reach the daemon
    /// has succeeded or failed.
    pub async fn settled(&self, timeout: Duration) {
        self.discovery.settled(timeout).await;
    }

    /// Scrapes every one of `targets` side by side, none past `deadline`;
    /// the results are in the targets' order.
    pub async fn scrape_all(&self, targets: &Targets, deadline: Instant) -> Vec<ContainerScrape> {
        self.scraper.scrape_all(&targets.targets, deadline).await
    }

    /// The labels `target`'s samples get on the merged page.
    pub fn labels(&self, target: &Target) -> Result<LabelSet, LabelSetError> {
        let first: Vec<(&str, &str)> = self
            .first
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        target.label_set(&first)
    }

    /// Scrapes one container within `deadline`.
    pub async fn scrape(&self, target: &Target, deadline: Instant) -> Result<Scraped, SourceError> {
        let page = self.scraper.scrape(target, deadline).await?;
        Ok(Scraped::fresh(page.body, page.format))
    }
}

impl From<docker::ScrapeError> for SourceError {
    fn from(error: docker::ScrapeError) -> SourceError {
        use docker::ScrapeError as E;
        match error {
            E::Timeout(after) => SourceError::Timeout(after),
            E::Connect(why) => SourceError::Connect(why),
            E::Status(status) => SourceError::Status(status),
            E::TooLarge(limit) => SourceError::TooLarge(limit),
            E::Parse(why) => SourceError::Parse(why),
            E::Io(why) => SourceError::Io(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_errors_keep_their_kind() {
        let errors = [
            docker::ScrapeError::Timeout(Duration::from_secs(1)),
            docker::ScrapeError::Connect("refused".into()),
            docker::ScrapeError::Status(503),
            docker::ScrapeError::TooLarge(10),
            docker::ScrapeError::Parse("line 1".into()),
            docker::ScrapeError::Io("reset".into()),
        ];
        for error in errors {
            let kind = error.kind();
            let message = error.to_string();
            let converted = SourceError::from(error);
            assert_eq!(converted.kind(), kind);
            assert_eq!(converted.to_string(), message);
        }
    }

    #[tokio::test]
    async fn labels_that_clash_with_discoverys_are_refused() {
        let config = DockerConfig::with_host("unix:///nonexistent/docker.sock").unwrap();
        let first = |name: &str| {
            vec![
                ("exporter".to_owned(), "d".to_owned()),
                (name.to_owned(), "x".to_owned()),
            ]
        };
        let error = DockerSource::start("d".into(), first("image"), &config).unwrap_err();
        assert!(error.contains("\"image\" is given twice"), "{error}");
        DockerSource::start("d".into(), first("site"), &config).unwrap();
    }
}
