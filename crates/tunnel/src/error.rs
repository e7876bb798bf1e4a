//! The one error type of the tunnel.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tokio_tungstenite::tungstenite;

/// Everything that can go wrong while opening, accepting or using a tunnel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// The gateway URL given to [`connect`](crate::connect) cannot be used.
    #[error("invalid gateway URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A proxy URL (`HTTPS_PROXY`, `HTTP_PROXY`) cannot be used.
    #[error("invalid proxy URL {url:?}: {reason}")]
    InvalidProxy {
        /// The URL without its credentials.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The proxy could not be reached or refused the `CONNECT`.
    #[error("proxy {proxy}: {reason}")]
    ProxyFailed {
        /// The proxy's `host:port`.
        proxy: String,
        /// What went wrong.
        reason: String,
    },
    /// A value for a request header (token or agent name) is not a valid
    /// header value.
    #[error("invalid value for header {0}")]
    InvalidHeader(&'static str),
    /// The gateway answered the upgrade request with a non-101 status
    /// (for example 401 for a wrong token).
    #[error("gateway refused the tunnel with HTTP status {status}")]
    Rejected {
        /// The status the gateway answered with.
        status: StatusCode,
    },
    /// The WebSocket layer failed (connect, TLS, handshake or framing).
    #[error("websocket: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    /// The TLS client configuration could not be built.
    #[error("tls: {0}")]
    Tls(#[source] rustls::Error),
    /// A TLS file (CA, client certificate or key) cannot be used.
    #[error("tls file {path}: {reason}")]
    TlsFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request reaching the gateway is not a WebSocket upgrade for this
    /// tunnel protocol.
    #[error("not a tunnel upgrade request: {0}")]
    BadUpgrade(&'static str),
    /// The HTTP server did not hand the connection over after the 101
    /// response (it must serve connections with upgrades enabled).
    #[error("connection upgrade failed: {0}")]
    Upgrade(#[source] hyper::Error),
    /// A request given to [`TunnelClient::request`](crate::TunnelClient::request)
    /// cannot be sent.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The HTTP/2 connection inside the tunnel failed, or a request on it did.
    #[error("http/2 over the tunnel: {0}")]
    Http2(#[source] hyper::Error),
    /// The tunnel is closed: no more requests can be sent over it.
    #[error("the tunnel is closed")]
    Closed,
    /// The other side did not answer a ping in time.
    #[error("no answer to a keepalive ping within {0:?}")]
    KeepaliveTimeout(core::time::Duration),
    /// Nothing came from the other side for this long, although it pings
    /// more often.
    #[error("nothing heard for {0:?}")]
    Silent(core::time::Duration),
    /// The other side broke the tunnel's protocol.
    #[error("tunnel protocol: {0}")]
    Protocol(&'static str),
}

impl From<tungstenite::Error> for TunnelError {
    fn from(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Http(response) => TunnelError::Rejected {
                status: response.status(),
            },
            other => TunnelError::WebSocket(Box::new(other)),
        }
    }
}

/// Lets [`TunnelUpgrade`](crate::TunnelUpgrade) be an axum extractor: a
/// request that is not a tunnel upgrade is answered with a client error.
impl IntoResponse for TunnelError {
    fn into_response(self) -> Response {
        let status = match self {
            TunnelError::BadUpgrade(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}
