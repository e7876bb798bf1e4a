//! The gateway's side: accept the agent's WebSocket, then be the HTTP/2
//! client of the agent.
//!
//! HTTP/2 starts at the first request, not when the tunnel opens. Until
//! then the gateway holds only the WebSocket and pings the agent over it:
//! an HTTP/2 client connection keeps tens of KiB of buffers (write buffer,
//! codec, request channel, HPACK) that an agent nobody scrapes would never
//! use, and gateways hold many such agents. The few bytes the agent's
//! HTTP/2 server sends first (its SETTINGS) are kept and handed to HTTP/2
//! when it starts.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt as _, StreamExt as _};
use http::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::request::Parts;
use http::uri::{Authority, Scheme};
use http::{Method, Request, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{
    ws_config, TunnelError, WsIo, AGENT_HEADER, INITIAL_CONNECTION_WINDOW, INITIAL_STREAM_WINDOW,
    KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, SUBPROTOCOL,
};

/// The WebSocket read buffer of each tunnel at the gateway. tungstenite
/// allocates and zero-fills `read_buffer_size` bytes per connection at its
/// first read (128 KiB by default), which made almost all of what an idle
/// agent cost the gateway (155 KiB per agent with 10,000 connected). A
/// larger message still arrives whole, the buffer growing to the frame's
/// size; it only takes more reads of at most this many bytes. Going below
/// 4 KiB saves nothing measurable: h2's own per-connection buffers are the
/// rest (docs/benchmarks.md).
const GATEWAY_READ_BUFFER: usize = 4 * 1024;

/// The most bytes an agent may send before the gateway starts HTTP/2: its
/// server SETTINGS frame takes a few dozen.
const MAX_EARLY_BYTES: usize = 16 * 1024;

/// The authority put on requests sent without one (a bare path like
/// `/metrics`); the agent's router only looks at the path.
const DEFAULT_AUTHORITY: &str = "agent.tunnel";

/// An agent's request to open a tunnel, checked to be a WebSocket upgrade
/// offering the tunnel's subprotocol but not yet answered.
///
/// It is an axum extractor (the HTTP server must serve connections with
/// upgrades enabled, as `axum::serve` does); it can also be built from
/// request parts with [`TunnelUpgrade::from_parts`]. Inspect
/// [`headers`](Self::headers) (token, agent name) first, then answer with
/// [`on_upgrade`](Self::on_upgrade) or [`accept`](Self::accept), or with
/// any other response to refuse.
pub struct TunnelUpgrade {
    on_upgrade: OnUpgrade,
    accept_key: HeaderValue,
    headers: HeaderMap,
}

impl fmt::Debug for TunnelUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelUpgrade")
            .field("agent", &self.agent_name())
            .finish_non_exhaustive()
    }
}

fn header_has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

impl TunnelUpgrade {
    /// Checks that the request is a tunnel upgrade and takes its pending
    /// upgrade out of the request's extensions.
    pub fn from_parts(parts: &mut Parts) -> Result<Self, TunnelError> {
        if parts.method != Method::GET {
            return Err(TunnelError::BadUpgrade("method must be GET"));
        }
        if !header_has_token(&parts.headers, CONNECTION, "upgrade") {
            return Err(TunnelError::BadUpgrade("no Connection: upgrade"));
        }
        if !header_has_token(&parts.headers, UPGRADE, "websocket") {
            return Err(TunnelError::BadUpgrade("no Upgrade: websocket"));
        }
        if parts
            .headers
            .get(SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(TunnelError::BadUpgrade("Sec-WebSocket-Version must be 13"));
        }
        if !header_has_token(&parts.headers, SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
            return Err(TunnelError::BadUpgrade(
                "Sec-WebSocket-Protocol does not offer the tunnel protocol",
            ));
        }
        let key = parts
            .headers
            .get(SEC_WEBSOCKET_KEY)
            .ok_or(TunnelError::BadUpgrade("no Sec-WebSocket-Key"))?;
        let accept_key = HeaderValue::try_from(derive_accept_key(key.as_bytes()))
            .map_err(|_| TunnelError::BadUpgrade("bad Sec-WebSocket-Key"))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(TunnelError::BadUpgrade("connection cannot be upgraded"))?;
        Ok(TunnelUpgrade {
            on_upgrade,
            accept_key,
            headers: parts.headers.clone(),
        })
    }

    /// The headers of the upgrade request.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The bearer token of the `Authorization` header, if there is one.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The agent's name from the `X-Promrelay-Agent` header, if there is one.
    pub fn agent_name(&self) -> Option<&str> {
        self.headers.get(AGENT_HEADER)?.to_str().ok()
    }

    /// Accepts the tunnel: gives the `101 Switching Protocols` response to
    /// return from the handler, and the tunnel that becomes usable once the
    /// response is sent ([`PendingTunnel::establish`]).
    pub fn accept(self) -> (Response, PendingTunnel) {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(SEC_WEBSOCKET_ACCEPT, self.accept_key);
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        (
            response,
            PendingTunnel {
                on_upgrade: self.on_upgrade,
            },
        )
    }

    /// Accepts the tunnel and, on a new task, calls `callback` with its
    /// client and connection once it is established. Returns the response
    /// to return from the handler. A tunnel that fails to establish is
    /// logged and dropped.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(TunnelClient, TunnelConnection) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let agent = self.agent_name().map(str::to_owned);
        let (response, pending) = self.accept();
        tokio::spawn(async move {
            match pending.establish().await {
                Ok((client, connection)) => callback(client, connection).await,
                Err(error) => {
                    tracing::warn!(agent = ?agent, %error, "tunnel failed to establish");
                }
            }
        });
        response
    }
}

impl<S> FromRequestParts<S> for TunnelUpgrade
where
    S: Send + Sync,
{
    type Rejection = TunnelError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        TunnelUpgrade::from_parts(parts)
    }
}

/// An accepted tunnel whose `101` response has not been sent yet.
pub struct PendingTunnel {
    on_upgrade: OnUpgrade,
}

impl fmt::Debug for PendingTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingTunnel").finish_non_exhaustive()
    }
}

impl PendingTunnel {
    /// Waits for the connection to be handed over (after the `101` response
    /// is sent). HTTP/2 over it starts with the first request.
    ///
    /// The [`TunnelConnection`] must be polled (spawn it, or await it) for
    /// the [`TunnelClient`] to make progress; it resolves when the tunnel
    /// ends.
    pub async fn establish(self) -> Result<(TunnelClient, TunnelConnection), TunnelError> {
        let upgraded = self.on_upgrade.await.map_err(TunnelError::Upgrade)?;
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config().read_buffer_size(GATEWAY_READ_BUFFER)),
        )
        .await;
        let (phase, _) = watch::channel(Phase::Idle);
        let shared = Arc::new(Shared {
            phase,
            wanted: Notify::new(),
        });
        let connection = TunnelConnection {
            inner: Box::pin(drive(ws, Arc::clone(&shared))),
        };
        Ok((TunnelClient { shared }, connection))
    }
}

/// Where a tunnel's HTTP/2 connection stands.
#[derive(Clone)]
enum Phase {
    /// Nobody has sent a request yet: there is only the WebSocket.
    Idle,
    /// HTTP/2 runs; requests go here.
    Active(SendRequest<Body>),
    /// The tunnel ended.
    Closed,
}

/// What a tunnel's clients and its connection share.
struct Shared {
    phase: watch::Sender<Phase>,
    /// A request is waiting for HTTP/2 to start.
    wanted: Notify,
}

/// Marks the tunnel closed however its connection future ends, dropped
/// included, so no request waits for HTTP/2 that will never start.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.phase.send_replace(Phase::Closed);
    }
}

type TunnelSocket = WebSocketStream<TokioIo<Upgraded>>;

/// The tunnel's life at the gateway: idle until a request wants HTTP/2,
/// then HTTP/2 until the end.
async fn drive(ws: TunnelSocket, shared: Arc<Shared>) -> Result<(), TunnelError> {
    let shared = CloseOnDrop(shared);
    let Some((ws, early)) = idle(ws, &shared.0.wanted).await? else {
        return Ok(());
    };
    let io = TokioIo::new(WsIo::with_received(ws, early));
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(KEEPALIVE_INTERVAL))
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(INITIAL_STREAM_WINDOW)
        .initial_connection_window_size(INITIAL_CONNECTION_WINDOW)
        .handshake::<_, Body>(io)
        .await
        .map_err(TunnelError::Http2)?;
    shared.0.phase.send_replace(Phase::Active(sender));
    connection.await.map_err(TunnelError::Http2)
}

/// Holds the WebSocket of a tunnel nobody has scraped yet: pings the agent
/// every [`KEEPALIVE_INTERVAL`] (a tunnel whose pong is more than
/// [`KEEPALIVE_TIMEOUT`] late is dead) and keeps what the agent sends
/// until `wanted` is notified. `None` when the agent closed the tunnel.
async fn idle(
    mut ws: TunnelSocket,
    wanted: &Notify,
) -> Result<Option<(TunnelSocket, Bytes)>, TunnelError> {
    let mut early = BytesMut::new();
    let mut next_ping = Instant::now() + KEEPALIVE_INTERVAL;
    let mut pong_due: Option<Instant> = None;
    loop {
        tokio::select! {
            () = wanted.notified() => return Ok(Some((ws, early.freeze()))),
            message = ws.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if early.len() + data.len() > MAX_EARLY_BYTES {
                        return Err(TunnelError::Protocol("the agent sent too much before the first request"));
                    }
                    early.extend_from_slice(&data);
                    pong_due = None;
                }
                // Anything heard proves the agent alive; tungstenite answers
                // pings itself.
                Some(Ok(Message::Pong(_) | Message::Ping(_) | Message::Frame(_))) => pong_due = None,
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(Message::Text(_))) => {
                    return Err(TunnelError::Protocol("text message on a binary tunnel"));
                }
                Some(Err(error)) => return Err(error.into()),
            },
            () = tokio::time::sleep_until(pong_due.unwrap_or(next_ping)) => {
                if pong_due.is_some() {
                    return Err(TunnelError::KeepaliveTimeout(KEEPALIVE_TIMEOUT));
                }
                ws.send(Message::Ping(Bytes::new())).await?;
                let now = Instant::now();
                pong_due = Some(now + KEEPALIVE_TIMEOUT);
                next_ping = now + KEEPALIVE_INTERVAL;
            }
        }
    }
}

/// Sends requests to the agent over its tunnel. Cheap to clone: all clones
/// share the one HTTP/2 connection, each request being its own stream.
#[derive(Clone)]
pub struct TunnelClient {
    shared: Arc<Shared>,
}

impl fmt::Debug for TunnelClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelClient")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl TunnelClient {
    /// Sends one request to the agent and waits for the response head; the
    /// body then streams as the agent sends it.
    ///
    /// A request whose URI is only a path (`/metrics`) is sent as
    /// `http://agent.tunnel/metrics`; the agent's router only sees the
    /// path and query. Connection-specific headers are dropped, as HTTP/2
    /// requires. Fails with [`TunnelError::Closed`] when the tunnel is
    /// already gone, and with [`TunnelError::Http2`] when it breaks (or the
    /// agent resets the stream) before the response head arrives.
    pub async fn request(
        &self,
        request: Request<Body>,
    ) -> Result<http::Response<Incoming>, TunnelError> {
        let mut sender = self.sender().await?;
        sender.ready().await.map_err(|_| TunnelError::Closed)?;
        let request = absolute(request)?;
        sender
            .send_request(request)
            .await
            .map_err(TunnelError::Http2)
    }

    /// Whether the tunnel is gone: no request sent now can succeed.
    pub fn is_closed(&self) -> bool {
        match &*self.shared.phase.borrow() {
            Phase::Idle => false,
            Phase::Active(sender) => sender.is_closed(),
            Phase::Closed => true,
        }
    }

    /// The HTTP/2 connection, started by the first caller.
    async fn sender(&self) -> Result<SendRequest<Body>, TunnelError> {
        let mut phase = self.shared.phase.subscribe();
        loop {
            match &*phase.borrow_and_update() {
                Phase::Active(sender) => return Ok(sender.clone()),
                Phase::Closed => return Err(TunnelError::Closed),
                Phase::Idle => self.shared.wanted.notify_one(),
            }
            phase.changed().await.map_err(|_| TunnelError::Closed)?;
        }
    }
}

/// Gives the request an absolute URI (HTTP/2 needs `:scheme` and
/// `:authority`), taking the authority from `Host` when there is one.
fn absolute(mut request: Request<Body>) -> Result<Request<Body>, TunnelError> {
    *request.version_mut() = http::Version::HTTP_2;
    let uri = request.uri();
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Ok(request);
    }
    let authority = request
        .headers()
        .get(HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .unwrap_or_else(|| Authority::from_static(DEFAULT_AUTHORITY));
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *request.uri_mut() = Uri::from_parts(parts)
        .map_err(|_| TunnelError::InvalidRequest("cannot make the URI absolute"))?;
    request.headers_mut().remove(HOST);
    Ok(request)
}

/// Drives the tunnel (its pings while idle, then its HTTP/2 connection);
/// resolves when the tunnel ends: `Ok(())` when it closed cleanly (the
/// agent shut down), an error when it broke (including unanswered keepalive
/// pings). Until it is polled, no
/// request on the [`TunnelClient`] makes progress; once it resolves, every
/// request fails. Dropping it closes the tunnel.
pub struct TunnelConnection {
    inner: Pin<Box<dyn Future<Output = Result<(), TunnelError>> + Send>>,
}

impl fmt::Debug for TunnelConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelConnection").finish_non_exhaustive()
    }
}

impl Future for TunnelConnection {
    type Output = Result<(), TunnelError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}
