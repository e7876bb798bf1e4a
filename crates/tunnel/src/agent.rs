//! The agent's side: dial the gateway, then serve HTTP/2 over the tunnel.

use core::future::Future;
use std::sync::Arc;

use axum::Router;
use http::header::{HeaderValue, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use http::Uri;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::io::Heard;
use crate::proxy::ProxyConfig;
use crate::{
    ws_config, TunnelError, WsIo, AGENT_HEADER, INITIAL_CONNECTION_WINDOW, INITIAL_STREAM_WINDOW,
    KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, SUBPROTOCOL,
};

/// The WebSocket an agent holds after [`connect`]: plain TCP or TLS.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Options for [`connect_with`] beyond URL, token and name.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: ProxyConfig,
}

impl ConnectOptions {
    /// Uses this TLS client configuration for `wss://` and `https://`
    /// gateway URLs instead of the default (the bundled web PKI roots, no
    /// client certificate). Use it to trust a private CA or to present a
    /// client certificate.
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Whether a TLS client configuration was given (it may carry a
    /// client certificate).
    pub fn has_tls_config(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS client configuration given, for other clients of the same
    /// gateway (the PushProx protocol) to dial with the same trust and
    /// client certificate.
    pub fn tls_config(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Dials through this HTTP proxy (`CONNECT`) unless the gateway is in
    /// its no-proxy list; see [`ProxyConfig::from_env`]. The default is a
    /// direct connection.
    pub fn with_proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = proxy;
        self
    }
}

/// Dials the gateway and opens the tunnel's WebSocket.
///
/// `url` is the gateway's tunnel endpoint, as `http://`, `https://`, `ws://`
/// or `wss://` (`http` means `ws`, `https` means `wss`), for example
/// `http://gateway:9437/tunnel`. The upgrade request carries
/// `Authorization: Bearer <token>`, `X-Promrelay-Agent: <name>` and the
/// tunnel's WebSocket subprotocol. A gateway answering with anything but
/// `101 Switching Protocols` gives [`TunnelError::Rejected`] with its status.
///
/// It has no timeout of its own (dialing an unreachable host can take as
/// long as the system's TCP connect does): wrap it in one. Hand the stream
/// to [`serve_over`].
pub async fn connect(url: &str, token: &str, name: &str) -> Result<WsStream, TunnelError> {
    connect_with(url, token, name, &ConnectOptions::default()).await
}

/// [`connect`] with [`ConnectOptions`].
pub async fn connect_with(
    url: &str,
    token: &str,
    name: &str,
    options: &ConnectOptions,
) -> Result<WsStream, TunnelError> {
    let uri = websocket_uri(url)?;
    let tls = uri.scheme_str() == Some("wss");
    let host = uri.host().unwrap_or_default().to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let mut request = uri.into_client_request()?;
    let headers = request.headers_mut();
    // An agent proving its name with a client certificate has no token.
    if !token.is_empty() {
        headers.insert(
            AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| TunnelError::InvalidHeader("authorization"))?,
        );
    }
    headers.insert(
        AGENT_HEADER,
        HeaderValue::try_from(name).map_err(|_| TunnelError::InvalidHeader(AGENT_HEADER))?,
    );
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );

    let connector = if tls {
        let config = match &options.tls {
            Some(config) => Arc::clone(config),
            None => crate::client_tls_config(None, None)?,
        };
        Connector::Rustls(config)
    } else {
        Connector::Plain
    };
    let (ws, _response) = match options.proxy.dial(&host, port, tls).await? {
        Some(stream) => {
            stream.set_nodelay(true).ok();
            tokio_tungstenite::client_async_tls_with_config(
                request,
                stream,
                Some(ws_config()),
                Some(connector),
            )
            .await?
        }
        None => {
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(ws_config()),
                true,
                Some(connector),
            )
            .await?
        }
    };
    Ok(ws)
}

/// Turns the accepted URL forms into a `ws://` or `wss://` URI.
fn websocket_uri(url: &str) -> Result<Uri, TunnelError> {
    let invalid = |reason| TunnelError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URI"))?;
    let scheme = match uri.scheme_str() {
        Some("http" | "ws") => "ws",
        Some("https" | "wss") => "wss",
        Some(_) => return Err(invalid("scheme must be http, https, ws or wss")),
        None => return Err(invalid("no scheme")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?.clone();
    let path = uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| invalid("not a URI"))
}

/// How long the agent waits, hearing nothing from the gateway, before it
/// counts the tunnel as dead. The gateway sends something at least every
/// [`KEEPALIVE_INTERVAL`]: a ping, or data; twice that plus the ping
/// timeout leaves room for a busy gateway.
pub const SILENCE_LIMIT: core::time::Duration =
    core::time::Duration::from_secs(2 * KEEPALIVE_INTERVAL.as_secs() + KEEPALIVE_TIMEOUT.as_secs());

/// Serves `router` over the tunnel as an HTTP/2 server until the tunnel
/// ends or `shutdown` completes.
///
/// The gateway is the HTTP/2 client: each scrape it forwards is one stream,
/// so concurrent scrapes are multiplexed and bodies stream with per-stream
/// flow control. HTTP/2 pings every [`KEEPALIVE_INTERVAL`] detect a dead
/// tunnel (one whose ping is not answered within [`KEEPALIVE_TIMEOUT`]).
/// Before the gateway starts HTTP/2 (at its first request) there are no
/// HTTP/2 pings, but the gateway pings over the WebSocket as often: a
/// tunnel that has been silent for [`SILENCE_LIMIT`] is dead too.
///
/// When `shutdown` completes, the server sends GOAWAY, lets the requests
/// in flight finish and then returns `Ok(())`. It also returns `Ok(())` when
/// the gateway closes the tunnel cleanly, and an error when the tunnel
/// breaks. Either way the agent should [`connect`] again (with a backoff).
pub async fn serve_over<T, F>(
    ws: WebSocketStream<T>,
    router: Router,
    shutdown: F,
) -> Result<(), TunnelError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let heard = Arc::new(Heard::new());
    let io = TokioIo::new(WsIo::new(ws).with_heard(Arc::clone(&heard)));
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(KEEPALIVE_INTERVAL))
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .initial_stream_window_size(INITIAL_STREAM_WINDOW)
        .initial_connection_window_size(INITIAL_CONNECTION_WINDOW);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::pin!(shutdown);
    tokio::select! {
        result = connection.as_mut() => return result.map_err(TunnelError::Http2),
        silent = heard.silence(SILENCE_LIMIT) => return Err(TunnelError::Silent(silent)),
        () = &mut shutdown => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await.map_err(TunnelError::Http2)
}
