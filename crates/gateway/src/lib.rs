//! The promrelay gateway: agents behind NAT or firewalls dial out to it
//! over an egress tunnel (see the `tunnel` crate), and Prometheus scrapes
//! them through it.
//!
//! - [`registry`]: which agent names have a live tunnel, and the rules for
//!   holding a name ([`Registry`], [`LocalRegistry`]).
//! - [`auth`]: the agents' credentials ([`AgentAuth`]).
//! - [`routes`]: the HTTP interface ([`router`]): the `/tunnel` upgrade,
//!   path-mode scrapes `/agents/<agent>/metrics`, discovery (`/clients`,
//!   `/api/v1/sd`), health and the gateway's own `/metrics`.
//! - [`fanin`]: `GET /metrics/connected`, every connected agent's page
//!   merged into one.
//! - [`metrics`]: the gateway's own counters.
//! - [`config`]: the configuration file, and what a reload may change.
//! - `status`: the status page for people at `/`.
//! - [`pushprox`]: PushProx wire compatibility (`/poll`, `/push`), so
//!   unmodified PushProx clients are scraped like tunnel agents.
//!
//! The binary wires [`router`] to a listener (with upgrades enabled, as
//! `axum::serve` and `web::serve` do).

use core::time::Duration;
use std::path::PathBuf;

use settings::PromDuration;
use std::sync::Arc;

pub mod auth;
pub mod config;
pub mod fanin;
pub mod metrics;
pub mod pushprox;
pub mod registry;
pub mod routes;
mod status;

pub use auth::{AgentAuth, AuthConfigError, AuthError, AuthHandle, CredentialId, NameError};
pub use config::{ConfigError, GatewayFile};
pub use fanin::FaninError;
pub use metrics::{GatewayMetrics, Occupancy, ScrapeOutcome, ScrapeRoute};
pub use registry::{
    AgentCounts, AgentInfo, Generation, LocalRegistry, RegisterError, Registration, Registry, Route,
};
pub use routes::router;

/// The gateway's tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The scrape deadline when the request has no
    /// `X-Prometheus-Scrape-Timeout-Seconds` header (10 s).
    pub default_scrape_timeout: Duration,
    /// The longest scrape deadline honoured, whatever the header says (60 s).
    pub max_scrape_timeout: Duration,
    /// How long a disconnected agent is remembered (answered with 503
    /// rather than 404) before it is forgotten (5 minutes).
    pub retention: Duration,
    /// The most agent names held at once, connected or disconnected
    /// (100 000); new names past it are refused.
    pub max_agents: usize,
    /// The most agent scrapes one fan-in request (`/metrics/connected`)
    /// keeps in flight at once (64).
    pub fanin_concurrency: usize,
    /// The largest page body accepted from one agent in a fan-in request
    /// (64 MiB); a larger page costs that agent's samples.
    pub fanin_max_body: usize,
    /// Whether fan-in asks agents for gzipped pages (on): less traffic on
    /// the tunnels for some CPU on both ends.
    pub fanin_compression: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            default_scrape_timeout: Duration::from_secs(10),
            max_scrape_timeout: Duration::from_secs(60),
            retention: Duration::from_secs(5 * 60),
            max_agents: 100_000,
            fanin_concurrency: 64,
            fanin_max_body: 64 * 1024 * 1024,
            fanin_compression: true,
        }
    }
}

/// Everything the gateway's routes share: the registry, the agents'
/// credentials, the counters and the configuration.
#[derive(Debug)]
pub struct Gateway {
    /// The registry of agents.
    pub registry: Arc<dyn Registry>,
    /// The agents' credentials, replaced on reload.
    pub auth: AuthHandle,
    /// The gateway's own counters.
    pub metrics: GatewayMetrics,
    /// The configuration.
    pub config: GatewayConfig,
    /// The files read at start and again on reload.
    sources: ConfigSources,
    /// Configuration outside the gateway's own reloaded with it.
    companion: Option<ReloadCompanion>,
    /// The pushed groups, served with the gateway's own metrics.
    pub push: Option<Arc<push::PushStore>>,
    /// The PushProx clients: held polls and scrapes waiting for a push.
    pub pushprox: pushprox::Coordinator,
}

/// A configuration reloaded together with the gateway's own (the web
/// configuration, say): the function reads and validates it and returns
/// how to apply it, which is called only once the gateway's own
/// configuration is valid too, so either both change or neither does.
pub type ReloadCompanionFn =
    dyn Fn() -> Result<Box<dyn FnOnce() + Send>, String> + Send + Sync + 'static;

struct ReloadCompanion(Box<ReloadCompanionFn>);

impl core::fmt::Debug for ReloadCompanion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ReloadCompanion")
    }
}

/// The files the gateway's configuration is read from, at start and again
/// on every reload (`SIGHUP`, `POST /-/reload`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// The YAML configuration file ([`GatewayFile`]); without it, the
    /// embedded defaults.
    pub config_file: Option<PathBuf>,
    /// The file holding the token every agent without its own may use.
    pub shared_token_file: Option<PathBuf>,
    /// `--push.default-ttl`: replaces the file's `push.default_ttl`.
    pub push_default_ttl: Option<Duration>,
    /// `--push.max-ttl`: replaces the file's `push.max_ttl`.
    pub push_max_ttl: Option<Duration>,
}

impl ConfigSources {
    /// Reads both files: the whole configuration, or the first error.
    pub fn read(&self) -> Result<(GatewayFile, AgentAuth), ConfigError> {
        let mut file = match &self.config_file {
            Some(path) => GatewayFile::load(path)?,
            None => GatewayFile::default(),
        };
        if self.push_default_ttl.is_some() || self.push_max_ttl.is_some() {
            let push = &mut file.push;
            push.default_ttl = self.push_default_ttl.map(PromDuration).or(push.default_ttl);
            push.max_ttl = self.push_max_ttl.map(PromDuration).or(push.max_ttl);
            push.validate().map_err(|error| ConfigError::Invalid {
                path: PathBuf::from("--push.default-ttl/--push.max-ttl"),
                key: format!("push.{}", error.key),
                problem: error.problem,
            })?;
        }
        let mut auth = file.agent_auth(None)?;
        if let Some(path) = self
            .shared_token_file
            .as_ref()
            .filter(|_| file.agents.shared_token)
        {
            auth = auth.with_shared_token_file(path)?;
        }
        Ok((file, auth))
    }
}

impl Gateway {
    /// A gateway with a [`LocalRegistry`], configured from `sources`.
    pub fn from_sources(sources: ConfigSources) -> Result<Gateway, ConfigError> {
        let (file, auth) = sources.read()?;
        let mut gateway = Gateway::new(file.gateway_config(), auth);
        gateway.sources = sources;
        Ok(gateway)
    }

    /// Reads the configuration again and applies the agents' credentials.
    /// Nothing changes when the files do not validate or when a setting
    /// that only takes effect at start was changed (see [`config`]).
    pub fn reload(&self) -> Result<(), ConfigError> {
        let result = self.sources.read().and_then(|(file, auth)| {
            let running_push = self.push.as_ref().map(|store| store.config());
            if let Some(key) = file.restart_only_change(&self.config, running_push) {
                return Err(ConfigError::NeedsRestart {
                    path: self.sources.config_file.clone().unwrap_or_default(),
                    key,
                });
            }
            let apply_companion = match &self.companion {
                Some(ReloadCompanion(prepare)) => Some(prepare().map_err(ConfigError::Companion)?),
                None => None,
            };
            self.auth.replace(auth);
            if let Some(apply) = apply_companion {
                apply();
            }
            Ok(())
        });
        self.metrics.config_reloaded(result.is_ok());
        result
    }

    /// Accepts pushes into `store` (the Pushgateway API) and serves its
    /// groups at `/metrics`.
    pub fn with_push(mut self, store: Arc<push::PushStore>) -> Gateway {
        self.push = Some(store);
        self
    }

    /// Reloads `companion` together with the gateway's own configuration
    /// (see [`ReloadCompanionFn`]).
    pub fn with_reload_companion(mut self, companion: Box<ReloadCompanionFn>) -> Gateway {
        self.companion = Some(ReloadCompanion(companion));
        self
    }

    /// The files the configuration is read from.
    pub fn sources(&self) -> &ConfigSources {
        &self.sources
    }

    /// A gateway with a [`LocalRegistry`] built from `config`.
    pub fn new(config: GatewayConfig, auth: AgentAuth) -> Gateway {
        let registry = Arc::new(LocalRegistry::<tunnel::TunnelClient>::new(
            config.retention,
            config.max_agents,
        ));
        Gateway::with_registry(config, auth, registry)
    }

    /// A gateway using `registry` (for example a clustered one).
    pub fn with_registry(
        config: GatewayConfig,
        auth: AgentAuth,
        registry: Arc<dyn Registry>,
    ) -> Gateway {
        Gateway {
            registry,
            auth: AuthHandle::new(auth),
            sources: ConfigSources::default(),
            companion: None,
            push: None,
            metrics: GatewayMetrics::default(),
            pushprox: pushprox::Coordinator::new(config.retention, config.max_agents),
            config,
        }
    }
}
