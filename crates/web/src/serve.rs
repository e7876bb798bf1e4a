//! Accepting connections and serving an axum router over them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::auth::Authenticator;
use crate::config::WebConfig;
use crate::handle::WebConfigHandle;
use crate::identity::PeerIdentity;

/// How long a client gets to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 client gets to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests get to finish once shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections served at once by default; past it the listener stops
/// accepting until one closes, so a flood of clients queues in the kernel
/// instead of exhausting memory and file descriptors.
pub const MAX_CONNECTIONS: usize = 16_384;

/// Bounds of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits {
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// The `WWW-Authenticate` challenge sent with every 401.
pub const AUTH_CHALLENGE: &str = "Basic realm=\"promrelay\"";

/// Serves `router` on `listener` until `shutdown` resolves, applying TLS,
/// client-certificate checks, basic auth, the rate limit and the configured
/// headers to every request.
///
/// `config` is read for each new connection (TLS settings, HTTP/2) and for
/// each request (users, headers, rate limit), so a reload — storing a new
/// configuration in the handle — applies to new connections, and to the
/// credentials of new requests, without restarting the listener.
///
/// Each request carries, in its extensions, the client's address as
/// [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo) and, when the
/// client presented a verified certificate, a [`PeerIdentity`].
///
/// Failed handshakes, clients without a required certificate and broken
/// connections are logged at debug level and never stop the listener. When
/// `shutdown` resolves, the listener is closed, idle connections are closed,
/// and in-flight requests get [`SHUTDOWN_GRACE`] to finish before their
/// connections are dropped.
///
/// # Errors
///
/// None today (accept errors are logged and retried); the `Result` leaves
/// room for listener-level failures.
pub async fn serve(
    listener: TcpListener,
    config: WebConfigHandle,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, config, router, ServeLimits::default(), shutdown).await
}

/// [`serve`] with explicit [`ServeLimits`].
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_with(
    listener: TcpListener,
    config: WebConfigHandle,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        config,
        router,
        auth: Authenticator::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        let current = shared.config.load();
        tracing::debug!(%addr, tls = current.is_tls(), "serving");
    }

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "connection task panicked");
                    }
                }
            }
            accepted = listener.accept(), if connections.len() < limits.max_connections => match accepted {
                Ok((tcp, remote)) => {
                    let config = shared.config.load();
                    connections.spawn(connection(tcp, remote, config, shared.clone(), stop_rx.clone()));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors and the like: back off instead
                    // of spinning, as hyper and axum do.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }

    drop(listener);
    drop(stop_tx); // every connection's `stop.changed()` resolves
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::debug!(
            remaining = connections.len(),
            "shutdown grace period over; dropping connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// What every connection of one [`serve`] call shares.
struct Shared {
    config: WebConfigHandle,
    router: Router,
    auth: Authenticator,
}

async fn connection(
    tcp: TcpStream,
    remote: SocketAddr,
    config: Arc<WebConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<()>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &config.tls else {
        serve_http(TokioIo::new(tcp), remote, None, &config, shared, stop).await;
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
    let stream = tokio::select! {
        handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "TLS handshake timed out");
                return;
            }
        },
        _ = stop.changed() => return,
    };
    let identity = if tls.client_auth.verifies() {
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(|cert| PeerIdentity::from_certificate_der(cert))
    } else {
        None
    };
    serve_http(
        TokioIo::new(stream),
        remote,
        identity,
        &config,
        shared,
        stop,
    )
    .await;
}

async fn serve_http<I>(
    io: TokioIo<I>,
    remote: SocketAddr,
    identity: Option<PeerIdentity>,
    config: &WebConfig,
    shared: Arc<Shared>,
    stop: watch::Receiver<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let shared = shared.clone();
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(remote));
        if let Some(identity) = &identity {
            extensions.insert(identity.clone());
        }
        async move { Ok::<_, Infallible>(shared.respond(request).await) }
    });

    if config.http2 {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder.http2().timer(TokioTimer::new());
        let connection = builder.serve_connection_with_upgrades(io, service);
        drive(std::pin::pin!(connection), remote, stop).await;
    } else {
        // auto::Builder::http1_only() is ignored with upgrades: use hyper's
        // HTTP/1 server directly so that HTTP/2 really is off.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let connection = builder.serve_connection(io, service).with_upgrades();
        drive(std::pin::pin!(connection), remote, stop).await;
    }
}

/// A hyper connection that can be asked to finish gracefully.
trait GracefulConnection: Future<Output = Result<(), Self::Error>> {
    type Error: std::fmt::Display;
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    Self: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    type Error = Box<dyn std::error::Error + Send + Sync>;
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B> GracefulConnection for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    Self: Future<Output = hyper::Result<()>>,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    type Error = hyper::Error;
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// Runs `connection` until it ends or the server stops, then lets it finish
/// its in-flight requests.
async fn drive<C: GracefulConnection>(
    mut connection: Pin<&mut C>,
    remote: SocketAddr,
    mut stop: watch::Receiver<()>,
) {
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection error");
            }
            return;
        }
        _ = stop.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(e) = connection.await {
        tracing::debug!(%remote, error = %e, "connection error during shutdown");
    }
}

impl Shared {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let config = self.config.load();
        let mut response = if config
            .rate_limiter
            .as_ref()
            .is_some_and(|limiter| !limiter.allow())
        {
            plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n")
        } else if !self
            .auth
            .check(&config, request.headers().get(header::AUTHORIZATION))
            .await
        {
            let mut response = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(AUTH_CHALLENGE),
            );
            response
        } else {
            match self.router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        // Like exporter-toolkit, the handler's own value wins.
        let headers = response.headers_mut();
        for (name, value) in &config.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        response
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
