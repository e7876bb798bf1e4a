//! Docker discovery for the promrelay agent: the containers of one Docker
//! host, found through the Engine API on its unix socket, kept current from
//! the event stream, and scraped so that replicas never overwrite each
//! other. Prometheus never needs the socket: it scrapes the agent.
//!
//! # Layout
//!
//! - [`config`]: the `docker` section of a source ([`DockerConfig`]).
//! - [`api`]: the Engine API's container list and events, read into
//!   [`Container`] and [`Event`].
//! - [`client`]: a minimal API client over the socket ([`DockerClient`]),
//!   bounded in time and size, with typed errors ([`DockerError`]).
//! - [`rules`]: which containers are scraped, where and with which labels:
//!   the `prometheus.io/*` labels, probe ports, filters, the choice of
//!   network. Pure.
//! - [`target`]: what discovery hands over: [`Targets`] (targets, problems,
//!   daemon status), and the [`label`] names.
//! - [`discovery`]: the background task that follows the daemon and
//!   publishes [`Targets`] through a watch channel ([`Discovery`]).
//! - [`scrape`]: scraping the targets side by side ([`Scraper`]).
//!
//! # Use from the agent
//!
//! ```no_run
//! # async fn example() -> Result<(), docker::ConfigProblem> {
//! use std::time::Duration;
//! let config = docker::DockerConfig::with_host("unix:///var/run/docker.sock")?;
//! let discovery = docker::Discovery::start(&config)?;
//! let scraper = docker::Scraper::new(&config)?;
//! // At each scrape:
//! let targets = discovery.targets();
//! let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
//! for scraped in scraper.scrape_all(&targets.targets, deadline).await {
//!     let labels = scraped.target.label_set(&[("exporter", "docker")]);
//!     // merge scraped.result's page with `labels`, or report its error kind
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod client;
pub mod config;
pub mod discovery;
pub mod rules;
pub mod scrape;
pub mod target;

pub use api::{Container, Event};
pub use client::{DockerClient, DockerError};
pub use config::{ConfigProblem, DockerConfig, Filters};
pub use discovery::Discovery;
pub use rules::{Decision, Rules};
pub use scrape::{ContainerScrape, ScrapeError, ScrapedPage, Scraper};
pub use target::{label, DaemonStatus, Origin, Problem, ProblemKind, Target, Targets};
