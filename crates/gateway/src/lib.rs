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
//!
//! The binary wires [`router`] to a listener (with upgrades enabled, as
//! `axum::serve` and `web::serve` do).

use core::time::Duration;
use std::sync::Arc;

pub mod auth;
pub mod fanin;
pub mod metrics;
pub mod registry;
pub mod routes;

pub use auth::{AgentAuth, AuthConfigError, AuthError, CredentialId, NameError};
pub use fanin::FaninError;
pub use metrics::{GatewayMetrics, ScrapeOutcome};
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
        }
    }
}

/// Everything the gateway's routes share: the registry, the agents'
/// credentials, the counters and the configuration.
#[derive(Debug)]
pub struct Gateway {
    /// The registry of agents.
    pub registry: Arc<dyn Registry>,
    /// The agents' credentials.
    pub auth: AgentAuth,
    /// The gateway's own counters.
    pub metrics: GatewayMetrics,
    /// The configuration.
    pub config: GatewayConfig,
}

impl Gateway {
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
            auth,
            metrics: GatewayMetrics::default(),
            config,
        }
    }
}
