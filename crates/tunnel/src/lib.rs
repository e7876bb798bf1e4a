//! The egress tunnel: how an agent behind NAT or a firewall is scraped
//! through the gateway.
//!
//! # Shape
//!
//! The agent dials **out** to the gateway's one HTTP(S) port with an
//! HTTP/1.1 request that upgrades to a **WebSocket** ([`connect`]). Over the
//! WebSocket's binary messages runs **HTTP/2 with the roles reversed**: the
//! agent is the HTTP/2 *server* ([`serve_over`], serving the same axum
//! `Router` as its listen mode) and the gateway is the HTTP/2 *client*
//! ([`TunnelUpgrade`] → [`TunnelClient`]). When Prometheus scrapes the
//! gateway, the gateway forwards the scrape as one request on the agent's
//! tunnel and streams the response back.
//!
//! ```text
//! Prometheus ──HTTP──▶ gateway ══ WebSocket (agent dialed out) ══ agent
//!                      h2 client ───── HTTP/2 streams ─────▶ h2 server (Router)
//! ```
//!
//! # Why a WebSocket
//!
//! It is an ordinary HTTP/1.1 request on the gateway's existing port, so it
//! passes HTTP proxies, TLS terminators and load balancers that allow
//! WebSocket, and the gateway needs no second port. Authentication reuses
//! HTTP: the upgrade request carries `Authorization: Bearer <token>` and
//! `X-Promrelay-Agent: <name>`, which the gateway checks
//! ([`TunnelUpgrade::headers`]) before accepting. The WebSocket is only a
//! byte pipe ([`WsIo`]): message boundaries mean nothing.
//!
//! # Why reversed HTTP/2
//!
//! HTTP/2 multiplexes concurrent scrapes over the one connection, each on
//! its own stream with its own flow control, so a slow target does not hold
//! up a fast one and a large page streams without being buffered whole.
//! Using a stock HTTP/2 implementation (hyper) in both directions means
//! no framing protocol of our own, and the agent serves scrapes with the
//! very same router it serves when listening. HTTP/2 pings
//! ([`KEEPALIVE_INTERVAL`], [`KEEPALIVE_TIMEOUT`]) find dead tunnels that
//! TCP would only notice much later.
//!
//! The gateway starts HTTP/2 only at its first request over a tunnel, so
//! an agent nobody scrapes costs it a WebSocket and little else; until
//! then it pings over the WebSocket, as often.
//!
//! # Limits
//!
//! - One WebSocket message is at most [`MAX_MESSAGE_SIZE`]; writes are sent
//!   in messages of at most [`MAX_WRITE_CHUNK`].
//! - Per stream, the receiver allows [`INITIAL_STREAM_WINDOW`] bytes in
//!   flight, per connection [`INITIAL_CONNECTION_WINDOW`].
//! - The agent's upgrade request is HTTP/1.1 only (no RFC 8441 WebSocket
//!   over HTTP/2). It may dial through an HTTP proxy with `CONNECT`
//!   ([`ProxyConfig`], from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`).
//! - The tunnel carries no authentication of its own beyond what the
//!   gateway checks on the upgrade request; use `wss://` for secrecy.
//! - A tunnel is not reconnected here: when [`serve_over`] returns, the
//!   agent dials again; when the [`TunnelConnection`] resolves, the gateway
//!   forgets the agent.

mod agent;
mod error;
mod gateway;
mod io;
mod proxy;
mod tls;

use core::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use agent::{connect, connect_with, serve_over, ConnectOptions, WsStream, SILENCE_LIMIT};
pub use error::TunnelError;
pub use gateway::{PendingTunnel, TunnelClient, TunnelConnection, TunnelUpgrade};
pub use io::{WsIo, MAX_WRITE_CHUNK};
pub use proxy::ProxyConfig;
pub use tls::client_tls_config;
pub use tokio_tungstenite::WebSocketStream;

/// The WebSocket subprotocol the agent offers and the gateway requires:
/// HTTP/2, agent as server, version 1.
pub const SUBPROTOCOL: &str = "promrelay-h2.v1";

/// The request header carrying the agent's name on the upgrade request.
pub const AGENT_HEADER: &str = "x-promrelay-agent";

/// The largest WebSocket message (and frame) either side accepts.
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// How often each side sends an HTTP/2 ping over the tunnel.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a ping may go unanswered before the tunnel counts as dead.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP/2 flow-control window of one stream (bytes a sender may have
/// in flight on one request or response before the receiver reads them).
pub const INITIAL_STREAM_WINDOW: u32 = 1024 * 1024;

/// The HTTP/2 flow-control window of the whole tunnel.
pub const INITIAL_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// The WebSocket configuration both sides use.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}
