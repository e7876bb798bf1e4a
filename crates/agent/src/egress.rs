//! Egress mode: the agent dials out to a gateway and is scraped through
//! the tunnel, for agents that cannot be reached from outside (NAT,
//! firewalls).
//!
//! [`Egress::run`] (or [`run_egress`]) loops until shutdown:
//!
//! 1. dial the gateway ([`tunnel::connect`]) within
//!    [`EgressConfig::connect_timeout`];
//! 2. on success, start the backoff over and serve the agent's router
//!    ([`Agent::router`], the same service listen mode serves) over the
//!    tunnel ([`tunnel::serve_over`]) until the tunnel ends;
//! 3. on failure, or once the tunnel is lost, wait the next backoff delay
//!    ([`ExponentialBackoff`]) and dial again.
//!
//! A gateway refusing the credentials (HTTP 401 or 403) is logged as an
//! error, since it will not fix itself, but still retried with the capped
//! backoff: the gateway's token list may be fixed without restarting the
//! agent. Shutdown interrupts dialing and waiting at once; a live tunnel
//! is closed gracefully (requests in flight finish).
//!
//! The state of the tunnel is kept in an [`EgressStatus`] shared through an
//! `Arc`, for the agent's own metrics. The token is never logged nor
//! printed by `Debug`.
//!
//! With [`GatewayProtocol::Pushprox`] the agent speaks the PushProx client
//! protocol instead of dialing a tunnel (see [`crate::pushprox`]): it polls
//! the gateway (or an unmodified PushProx proxy) for scrapes and pushes
//! their answers, with the same backoff, status and shutdown behaviour.
//!
//! All waiting goes through tokio's clock ([`tokio::time`]).

use core::fmt;
use core::future::Future;
use core::time::Duration;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use http::{HeaderValue, StatusCode, Uri};
use tokio::sync::watch;
use tunnel::TunnelError;

use crate::backoff::{BackoffError, ExponentialBackoff};
use crate::pushprox::{PushproxClient, DEFAULT_WEB_PORT};
use crate::service::Agent;

/// The fraction of each backoff delay that jitter may take off.
pub const BACKOFF_JITTER: f64 = 0.5;
/// The first delay before dialing again, unless configured.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest delay before dialing again, unless configured.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long one dial (TCP, TLS and the upgrade) may take, unless
/// configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The gateway's tunnel endpoint, used when the gateway URL has no path.
pub const TUNNEL_PATH: &str = "/tunnel";

/// How the agent talks to its gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewayProtocol {
    /// promrelay's own tunnel: one outbound WebSocket carrying HTTP/2.
    #[default]
    Tunnel,
    /// The PushProx client protocol (`/poll`, `/push`), understood by a
    /// promrelay gateway and by an unmodified PushProx proxy.
    Pushprox,
}

impl fmt::Display for GatewayProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GatewayProtocol::Tunnel => "tunnel",
            GatewayProtocol::Pushprox => "pushprox",
        })
    }
}

/// Where and how the agent dials its gateway.
#[derive(Clone)]
pub struct EgressConfig {
    /// The gateway: `http://`, `https://`, `ws://` or `wss://`, for
    /// example `https://gateway:9438`. Without a path the tunnel endpoint
    /// [`TUNNEL_PATH`] is used, so the URL people know the gateway by works.
    /// With [`GatewayProtocol::Pushprox`], the proxy's base URL (`http://`
    /// or `https://`): `/poll` and `/push` are appended to it.
    pub gateway_url: String,
    /// The name the agent announces (`X-Promrelay-Agent`).
    pub agent_name: String,
    /// The bearer token the gateway checks. Never logged, nor printed by
    /// `Debug`. It may be empty only when [`connect`](Self::connect) has
    /// a TLS configuration (whose client certificate proves the name).
    pub token: String,
    /// The first delay before dialing again after a failure.
    pub backoff_min: Duration,
    /// The cap on the delay before dialing again.
    pub backoff_max: Duration,
    /// How long one dial may take before it counts as failed.
    pub connect_timeout: Duration,
    /// TLS (trusted CAs, a client certificate) and the HTTP proxy used to
    /// dial; by default the web PKI roots and a direct connection.
    pub connect: tunnel::ConnectOptions,
    /// The protocol spoken with the gateway.
    pub protocol: GatewayProtocol,
    /// The port by which scrapes reach the agent's own pages rather than
    /// an allowlisted local port (its `--web.listen-address` port); used
    /// by [`GatewayProtocol::Pushprox`], where scrapes name a port.
    pub web_port: u16,
}

impl EgressConfig {
    /// A configuration with the default backoff and connect timeout.
    pub fn new(
        gateway_url: impl Into<String>,
        agent_name: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        EgressConfig {
            gateway_url: gateway_url.into(),
            agent_name: agent_name.into(),
            token: token.into(),
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            connect: tunnel::ConnectOptions::default(),
            protocol: GatewayProtocol::Tunnel,
            web_port: DEFAULT_WEB_PORT,
        }
    }
}

impl fmt::Debug for EgressConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressConfig")
            .field("gateway_url", &self.gateway_url)
            .field("agent_name", &self.agent_name)
            .field("token", &"<redacted>")
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("connect_timeout", &self.connect_timeout)
            .field("connect", &self.connect)
            .field("protocol", &self.protocol)
            .field("web_port", &self.web_port)
            .finish()
    }
}

/// Why an [`EgressConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// The backoff bounds are not usable.
    #[error("egress backoff: {0}")]
    Backoff(#[from] BackoffError),
    /// The gateway URL is not one the tunnel can dial.
    #[error("invalid gateway URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The agent name cannot be sent as a header value.
    #[error("the agent name {0:?} is not a valid header value")]
    InvalidAgentName(String),
    /// The token cannot be sent as a header value (it is not shown).
    #[error("the egress token is empty (and no TLS client configuration is given) or not a valid header value")]
    InvalidToken,
    /// The connect timeout is zero.
    #[error("the egress connect timeout must be greater than zero")]
    ZeroConnectTimeout,
    /// The HTTP client for the PushProx protocol cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// The state of the tunnel, for the agent's metrics
/// (`promrelay_agent_tunnel_connected` and the like). Shared through an
/// `Arc`; every read is a relaxed atomic load.
#[derive(Debug, Default)]
pub struct EgressStatus {
    connected: AtomicBool,
    connects: AtomicU64,
    failures: AtomicU64,
    disconnects: AtomicU64,
}

impl EgressStatus {
    /// Whether a tunnel to the gateway is up now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// How many times a tunnel was opened.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// How many dials failed (refused, timed out, unreachable, rejected).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// How many open tunnels ended (lost, or closed by the gateway or by
    /// shutdown).
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }

    /// The gateway answered (PushProx: a poll was answered); says whether
    /// the agent was not connected before.
    pub(crate) fn record_contact(&self) -> bool {
        let newly = !self.connected.swap(true, Ordering::Relaxed);
        if newly {
            self.connects.fetch_add(1, Ordering::Relaxed);
        }
        newly
    }

    /// Reaching the gateway failed (PushProx: a poll failed).
    pub(crate) fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.record_stop();
    }

    /// The agent stopped talking to the gateway.
    pub(crate) fn record_stop(&self) {
        if self.connected.swap(false, Ordering::Relaxed) {
            self.disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The egress loop, validated and ready to [`run`](Self::run).
#[derive(Debug)]
pub struct Egress {
    config: EgressConfig,
    backoff: ExponentialBackoff,
    status: Arc<EgressStatus>,
    /// The PushProx client, with [`GatewayProtocol::Pushprox`].
    pushprox: Option<Arc<PushproxClient>>,
}

impl Egress {
    /// Checks the configuration: backoff bounds, connect timeout, and that
    /// the URL, name and token can be sent.
    pub fn new(config: EgressConfig) -> Result<Self, EgressError> {
        let backoff =
            ExponentialBackoff::try_new(config.backoff_min, config.backoff_max, BACKOFF_JITTER)?;
        if config.connect_timeout.is_zero() {
            return Err(EgressError::ZeroConnectTimeout);
        }
        if config.protocol == GatewayProtocol::Pushprox {
            // No token is fine here: an unmodified PushProx proxy checks
            // none.
            let pushprox = PushproxClient::new(&config)?;
            return Ok(Egress {
                config,
                backoff,
                status: Arc::new(EgressStatus::default()),
                pushprox: Some(Arc::new(pushprox)),
            });
        }
        let mut config = config;
        config.gateway_url = tunnel_url(&config.gateway_url)?;
        if config.agent_name.is_empty() || HeaderValue::try_from(&config.agent_name).is_err() {
            return Err(EgressError::InvalidAgentName(config.agent_name));
        }
        let has_certificate = config.connect.has_tls_config();
        if (config.token.is_empty() && !has_certificate)
            || HeaderValue::try_from(format!("Bearer {}", config.token)).is_err()
        {
            return Err(EgressError::InvalidToken);
        }
        Ok(Egress {
            config,
            backoff,
            status: Arc::new(EgressStatus::default()),
            pushprox: None,
        })
    }

    /// The tunnel's state, updated while [`run`](Self::run) goes on.
    pub fn status(&self) -> Arc<EgressStatus> {
        Arc::clone(&self.status)
    }

    /// Dials the gateway and serves `agent` over the tunnel, again and
    /// again, until `shutdown` completes. Returns once a live tunnel has
    /// been closed gracefully, or at once when there is none.
    pub async fn run(mut self, agent: Arc<Agent>, shutdown: impl Future<Output = ()>) {
        let gateway = self.config.gateway_url.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let run = self.run_until(&agent, stop_rx);
        tokio::pin!(run);
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut run => return,
            () = &mut shutdown => {}
        }
        tracing::info!(%gateway, "egress shutting down");
        let _ = stop_tx.send(true);
        run.await;
    }

    /// The loop; ends once `stop` turns true.
    async fn run_until(&mut self, agent: &Arc<Agent>, stop: watch::Receiver<bool>) {
        if let Some(pushprox) = &self.pushprox {
            pushprox
                .run_until(agent, &mut self.backoff, &self.status, stop)
                .await;
            return;
        }
        let config = &self.config;
        let gateway = config.gateway_url.as_str();
        let name = config.agent_name.as_str();
        loop {
            if *stop.borrow() {
                return;
            }
            let dial = tokio::time::timeout(
                config.connect_timeout,
                tunnel::connect_with(gateway, &config.token, name, &config.connect),
            );
            let dialed = tokio::select! {
                dialed = dial => dialed,
                () = stopped(stop.clone()) => return,
            };
            match dialed {
                Ok(Ok(ws)) => {
                    self.backoff.reset();
                    self.status.connects.fetch_add(1, Ordering::Relaxed);
                    self.status.connected.store(true, Ordering::Relaxed);
                    tracing::info!(gateway, agent = name, "connected to the gateway");
                    let served =
                        tunnel::serve_over(ws, agent.tunnel_router(), stopped(stop.clone())).await;
                    self.status.connected.store(false, Ordering::Relaxed);
                    self.status.disconnects.fetch_add(1, Ordering::Relaxed);
                    if *stop.borrow() {
                        tracing::info!(gateway, agent = name, "tunnel closed for shutdown");
                        return;
                    }
                    match served {
                        Ok(()) => tracing::warn!(
                            gateway,
                            agent = name,
                            "tunnel lost: closed by the gateway"
                        ),
                        Err(error) => tracing::warn!(gateway, agent = name, %error, "tunnel lost"),
                    }
                }
                Ok(Err(error)) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    log_dial_failure(gateway, name, &error);
                }
                Err(_elapsed) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        gateway,
                        agent = name,
                        timeout = ?config.connect_timeout,
                        "cannot connect to the gateway: timed out"
                    );
                }
            }
            let delay = self.backoff.next_delay();
            tracing::debug!(
                gateway,
                agent = name,
                ?delay,
                "dialing the gateway again after a delay"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(stop.clone()) => return,
            }
        }
    }
}

/// Validates `config`, then runs the egress loop until `shutdown`
/// completes ([`Egress::new`], then [`Egress::run`]). Use [`Egress`]
/// directly to read its [`EgressStatus`].
pub async fn run_egress(
    agent: Arc<Agent>,
    config: EgressConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EgressError> {
    Egress::new(config)?.run(agent, shutdown).await;
    Ok(())
}

/// Resolves once `stop` is true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn log_dial_failure(gateway: &str, agent: &str, error: &TunnelError) {
    match error {
        TunnelError::Rejected { status }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN =>
        {
            tracing::error!(
                gateway,
                agent,
                %status,
                "the gateway refused the agent's credentials; check the egress token"
            );
        }
        _ => tracing::warn!(gateway, agent, %error, "cannot connect to the gateway"),
    }
}

/// The URL forms [`tunnel::connect`] accepts, checked up front so a typo
/// fails at start instead of being retried forever.
/// Checks the gateway URL and gives the tunnel endpoint: the URL itself
/// when it has a path, the URL with [`TUNNEL_PATH`] otherwise.
fn tunnel_url(url: &str) -> Result<String, EgressError> {
    let invalid = |reason| EgressError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URI"))?;
    match uri.scheme_str() {
        Some("http" | "https" | "ws" | "wss") => {}
        Some(_) => return Err(invalid("scheme must be http, https, ws or wss")),
        None => return Err(invalid("no scheme")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => {}
        _ => return Err(invalid("no host")),
    }
    match uri.path() {
        "" | "/" => Ok(format!("{}{TUNNEL_PATH}", url.trim_end_matches('/'))),
        _ => Ok(url.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> EgressConfig {
        EgressConfig::new(url, "edge-1", "s3cret-token")
    }

    #[test]
    fn a_url_without_a_path_reaches_the_tunnel_endpoint() {
        assert_eq!(
            tunnel_url("http://gw:9438").unwrap(),
            "http://gw:9438/tunnel"
        );
        assert_eq!(
            tunnel_url("https://gw:9438/").unwrap(),
            "https://gw:9438/tunnel"
        );
        assert_eq!(
            tunnel_url("wss://gw/custom/tunnel").unwrap(),
            "wss://gw/custom/tunnel"
        );
        assert!(tunnel_url("gw:9438").is_err());
    }

    #[test]
    fn debug_never_prints_the_token() {
        let shown = format!("{:?}", config("http://gw:9437/tunnel"));
        assert!(!shown.contains("s3cret-token"), "{shown}");
        assert!(shown.contains("edge-1"), "{shown}");
        let egress = Egress::new(config("http://gw:9437/tunnel")).unwrap();
        let shown = format!("{egress:?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
    }

    #[test]
    fn accepts_the_url_forms_the_tunnel_dials() {
        for url in [
            "http://gw:9437/tunnel",
            "https://gw/tunnel",
            "ws://127.0.0.1:1/tunnel",
            "wss://[::1]:9437/tunnel",
        ] {
            Egress::new(config(url)).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn refuses_unusable_configurations() {
        for url in [
            "",
            "gw:9437/tunnel",
            "ftp://gw/tunnel",
            "/tunnel",
            "http:///x",
        ] {
            assert!(
                matches!(
                    Egress::new(config(url)),
                    Err(EgressError::InvalidUrl { .. })
                ),
                "{url:?} accepted"
            );
        }
        let mut bad = config("http://gw/tunnel");
        bad.backoff_min = Duration::ZERO;
        assert!(matches!(Egress::new(bad), Err(EgressError::Backoff(_))));
        let mut bad = config("http://gw/tunnel");
        bad.backoff_min = Duration::from_secs(2);
        bad.backoff_max = Duration::from_secs(1);
        assert!(matches!(Egress::new(bad), Err(EgressError::Backoff(_))));
        let mut bad = config("http://gw/tunnel");
        bad.connect_timeout = Duration::ZERO;
        assert!(matches!(
            Egress::new(bad),
            Err(EgressError::ZeroConnectTimeout)
        ));
        let mut bad = config("http://gw/tunnel");
        bad.token = "a\nb".to_owned();
        let error = Egress::new(bad).unwrap_err();
        assert!(matches!(error, EgressError::InvalidToken));
        assert!(!error.to_string().contains("a\nb"));
        let mut bad = config("http://gw/tunnel");
        bad.agent_name = "x\ry".to_owned();
        assert!(matches!(
            Egress::new(bad),
            Err(EgressError::InvalidAgentName(_))
        ));
    }
}
