//! The gateway's HTTP interface.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /tunnel` | an agent opens its tunnel (WebSocket upgrade) |
//! | `GET /agents/{agent}/metrics` | path mode: scrape the agent's `/metrics` |
//! | `GET /agents/{agent}/sources/{source}/metrics` | path mode: scrape one source of the agent |
//! | `GET /agents/{agent}/containers/{container}/metrics` | path mode: scrape one container of the agent's docker sources |
//! | `GET /metrics/connected` | fan-in: every known agent's page merged into one (see [`crate::fanin`]) |
//! | `GET /clients` | connected agents and PushProx clients in the PushProx / `file_sd` JSON shape |
//! | `POST /poll`, `POST /push` | the PushProx client protocol (see [`crate::pushprox`]) |
//! | `GET /api/v1/sd` | connected agents for Prometheus `http_sd_configs`, pointing at path mode |
//! | `GET /-/healthy`, `GET /-/ready` | liveness and readiness |
//! | `POST /-/reload`, `PUT /-/reload` | read the configuration again (see [`crate::config`]) |
//! | `GET /` | the status page for people |
//! | `GET /metrics` | the gateway's own metrics, and the pushed groups |
//! | `PUT`/`POST`/`DELETE /metrics/job/…`, `GET /api/v1/metrics`, `/api/v1/status` | the Pushgateway API (see the `push` crate), when a push store is configured |
//!
//! # The upgrade
//!
//! The agent name and credential are checked **before** the upgrade is
//! accepted: 400 for a missing or invalid name, 401 for a missing or wrong
//! credential, 409 when the name is held by a live tunnel of another
//! credential, 503 when the registry is full. The tunnel is then
//! registered once established; if another agent won the name in between,
//! the new tunnel is closed right after the upgrade (the agent sees its
//! tunnel end and dials again).
//!
//! # Path mode
//!
//! A scrape is forwarded as `GET /metrics` (or `GET /sources/{source}/metrics`,
//! `GET /containers/{container}/metrics`) with the query string and the
//! `Accept`, `Accept-Encoding` and `X-Prometheus-Scrape-Timeout-Seconds`
//! headers; the agent's status, `Content-Type`, `Content-Encoding` and body
//! are streamed back without buffering. The deadline for the agent's response head is the
//! `X-Prometheus-Scrape-Timeout-Seconds` header (capped at
//! [`GatewayConfig::max_scrape_timeout`](crate::GatewayConfig)), else the
//! configured default; past it the answer is 504. An unknown agent gets
//! 404 and a disconnected one 503, both at once; a tunnel failure gets 502
//! (503 if the tunnel was already closed).
//!
//! # Discovery
//!
//! `/clients` answers `[{"targets":["<agent>"],"labels":null}]` for every
//! connected agent and every PushProx client seen within the retention
//! period, exactly as PushProx's proxy does (`labels` is `null`, not
//! `{}`), so existing PushProx-style service discovery works unchanged.
//! `/api/v1/sd` answers one target group per connected agent whose target
//! is this gateway (the request's `Host`) and whose `__metrics_path__` is
//! the agent's path-mode URL, with an `agent` label.

use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE,
    HOST,
};
use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper::body::Bytes;
use tokio::time::Instant;
use tunnel::{TunnelError, TunnelUpgrade};
use web::PeerIdentity;

use crate::auth::validate_agent_name;
use crate::metrics::{Occupancy, ScrapeOutcome, ScrapeRoute};
use crate::registry::{RegisterError, Route};
use crate::Gateway;

/// The header Prometheus sets to the scrape timeout, in seconds.
pub const SCRAPE_TIMEOUT_HEADER: &str = web::SCRAPE_TIMEOUT_HEADER;

/// The content type of the gateway's own `/metrics`.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The request headers passed on to the agent in path mode.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 3] = [
    ACCEPT,
    ACCEPT_ENCODING,
    HeaderName::from_static(SCRAPE_TIMEOUT_HEADER),
];

/// The response headers passed back from the agent in path mode.
const FORWARDED_RESPONSE_HEADERS: [HeaderName; 2] = [CONTENT_TYPE, CONTENT_ENCODING];

/// The gateway's routes (see the [module documentation](self)).
///
/// Serve it with upgrades enabled (`axum::serve` and `web::serve` do) so
/// the `/tunnel` route works. Requests reaching it through `web::serve`
/// with a verified client certificate carry a [`PeerIdentity`], which
/// [`AgentAuth`](crate::AgentAuth) may accept as the agent's credential.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let router = Router::new()
        .route("/tunnel", get(tunnel_upgrade))
        .route("/agents/{agent}/metrics", get(scrape_agent))
        .route(
            "/agents/{agent}/sources/{source}/metrics",
            get(scrape_source),
        )
        .route(
            "/agents/{agent}/containers/{container}/metrics",
            get(scrape_container),
        )
        .route("/clients", get(clients))
        .route("/poll", post(crate::pushprox::poll))
        .route("/push", post(crate::pushprox::push))
        .route("/api/v1/sd", get(http_sd))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/-/reload", post(reload).put(reload))
        .route("/", get(crate::status::page))
        .route("/metrics", get(own_metrics))
        .route("/metrics/connected", get(crate::fanin::scrape_connected))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&gateway),
            proxy_url_mode,
        ));
    let push = gateway
        .push
        .as_ref()
        .map(|store| push::router(Arc::clone(store)));
    let router = router.with_state(gateway);
    match push {
        Some(push) => router.merge(push),
        None => router,
    }
}

/// `proxy_url` mode: Prometheus, told to use the gateway as its proxy,
/// sends `GET http://<agent>:<port>/<path>` in absolute form. Such a request
/// goes through the agent's tunnel to `/ports/<port>/<path>`, which the
/// agent serves only for ports in its allowlist (403 otherwise). A host
/// that is not a connected tunnel agent but a known PushProx client is
/// scraped through that client instead ([`crate::pushprox`]). Every
/// other request is routed as usual.
async fn proxy_url_mode(
    State(gateway): State<Arc<Gateway>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match proxy_target(&request) {
        Some((agent, port)) => {
            if let Some(response) =
                crate::pushprox::proxy_scrape(&gateway, &agent, request.uri(), request.headers())
                    .await
            {
                return response;
            }
            let path = format!("/ports/{port}{}", request.uri().path());
            forward(
                &gateway,
                ScrapeRoute::ProxyUrl,
                &agent,
                path,
                request.uri(),
                request.headers(),
            )
            .await
        }
        None => next.run(request).await,
    }
}

/// The agent and port of an absolute-form HTTP/1 request. (HTTP/2 requests
/// always carry an authority, so only HTTP/1's absolute form counts.)
fn proxy_target(request: &axum::extract::Request) -> Option<(String, u16)> {
    if request.version() > http::Version::HTTP_11 {
        return None;
    }
    let uri = request.uri();
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    Some((
        authority.host().to_owned(),
        authority.port_u16().unwrap_or(default_port),
    ))
}

fn text(status: StatusCode, body: String) -> Response {
    (status, body).into_response()
}

async fn tunnel_upgrade(
    State(gateway): State<Arc<Gateway>>,
    peer: Option<Extension<PeerIdentity>>,
    upgrade: TunnelUpgrade,
) -> Response {
    let Some(name) = upgrade.agent_name().map(str::to_owned) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("missing {} header\n", tunnel::AGENT_HEADER),
        );
    };
    let peer = peer.as_ref().map(|Extension(peer)| peer);
    let credential = match gateway.auth.verify(&name, upgrade.bearer_token(), peer) {
        Ok(credential) => credential,
        Err(error) => {
            if error.status() == StatusCode::UNAUTHORIZED {
                gateway.metrics.auth_failed();
            }
            tracing::warn!(agent = %name.escape_debug(), %error, "tunnel refused");
            return text(error.status(), format!("{error}\n"));
        }
    };
    // A PushProx client of another credential holding the name counts too.
    let checked = gateway
        .registry
        .check(&name, &credential)
        .and_then(|()| gateway.pushprox.check(&name, &credential));
    if let Err(error) = checked {
        tracing::warn!(agent = %name, %credential, %error, "tunnel refused");
        return text(register_status(&error), format!("{error}\n"));
    }

    let (response, pending) = upgrade.accept();
    tokio::spawn(async move {
        let (client, connection) = match pending.establish().await {
            Ok(established) => established,
            Err(error) => {
                tracing::warn!(agent = %name, %error, "tunnel failed to establish");
                return;
            }
        };
        let registration = match gateway.registry.register(&name, credential.clone(), client) {
            Ok(registration) => registration,
            Err(error) => {
                // Lost a race since the check: dropping the connection
                // closes the new tunnel.
                tracing::warn!(agent = %name, %credential, %error, "tunnel refused after upgrade");
                return;
            }
        };
        gateway.metrics.tunnel_connected(registration.replaced);
        let generation = registration.generation.get();
        tracing::info!(
            agent = %name,
            %credential,
            generation,
            replaced = registration.replaced,
            "agent connected"
        );
        let reason = tokio::select! {
            result = connection => match result {
                Ok(()) => "closed".to_owned(),
                Err(error) => error.to_string(),
            },
            () = registration.released => "replaced by a newer tunnel".to_owned(),
        };
        gateway
            .registry
            .mark_disconnected(&name, registration.generation);
        gateway.metrics.tunnel_disconnected();
        tracing::info!(agent = %name, generation, %reason, "agent disconnected");
    });
    response
}

fn register_status(error: &RegisterError) -> StatusCode {
    match error {
        RegisterError::NameTaken { .. } => StatusCode::CONFLICT,
        RegisterError::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn scrape_agent(
    State(gateway): State<Arc<Gateway>>,
    Path(agent): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    forward(
        &gateway,
        ScrapeRoute::Path,
        &agent,
        "/metrics".to_owned(),
        &uri,
        &headers,
    )
    .await
}

async fn scrape_source(
    State(gateway): State<Arc<Gateway>>,
    Path((agent, source)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if validate_agent_name(&source).is_err() {
        return text(
            StatusCode::BAD_REQUEST,
            format!("invalid source name {source:?}\n"),
        );
    }
    let path = format!("/sources/{source}/metrics");
    forward(&gateway, ScrapeRoute::Path, &agent, path, &uri, &headers).await
}

async fn scrape_container(
    State(gateway): State<Arc<Gateway>>,
    Path((agent, container)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // Docker names are `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: the same check keeps
    // the forwarded path to one segment.
    if validate_agent_name(&container).is_err() {
        return text(
            StatusCode::BAD_REQUEST,
            format!("invalid container name {container:?}\n"),
        );
    }
    let path = format!("/containers/{container}/metrics");
    forward(&gateway, ScrapeRoute::Path, &agent, path, &uri, &headers).await
}

/// The deadline for the agent's response head.
pub(crate) fn scrape_deadline(headers: &HeaderMap, gateway: &Gateway) -> Duration {
    let config = &gateway.config;
    web::requested_scrape_timeout(headers, config.max_scrape_timeout)
        .unwrap_or(config.default_scrape_timeout.min(config.max_scrape_timeout))
}

async fn forward(
    gateway: &Arc<Gateway>,
    route: ScrapeRoute,
    agent: &str,
    path: String,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let metrics = &gateway.metrics;
    let client = match gateway.registry.route(agent) {
        Route::Connected(client) => client,
        Route::Unknown => {
            metrics.scrape(route, ScrapeOutcome::Unknown);
            return text(StatusCode::NOT_FOUND, format!("no agent named {agent}\n"));
        }
        Route::Disconnected => {
            metrics.scrape(route, ScrapeOutcome::Disconnected);
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("agent {agent} is not connected\n"),
            );
        }
    };

    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut builder = Request::get(target);
    for name in &FORWARDED_REQUEST_HEADERS {
        for value in headers.get_all(name) {
            builder = builder.header(name, value);
        }
    }
    let request = match builder.body(Body::empty()) {
        Ok(request) => request,
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad scrape request: {error}\n"),
            );
        }
    };

    let deadline = scrape_deadline(headers, gateway);
    let started = Instant::now();
    let response = match tokio::time::timeout(deadline, client.request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            metrics.scrape(route, ScrapeOutcome::Error);
            let status = match error {
                TunnelError::Closed => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            };
            tracing::debug!(agent, %error, "scrape through the tunnel failed");
            return text(status, format!("scrape of agent {agent} failed: {error}\n"));
        }
        Err(_elapsed) => {
            metrics.scrape(route, ScrapeOutcome::Timeout);
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                format!("agent {agent} did not answer within {deadline:?}\n"),
            );
        }
    };
    metrics.scrape(route, ScrapeOutcome::Ok);

    let (parts, body) = response.into_parts();
    let body = MeteredBody {
        inner: body,
        gateway: Arc::clone(gateway),
        route,
        started,
        bytes: 0,
        finished: false,
    };
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for name in &FORWARDED_RESPONSE_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

/// A page streaming from an agent to the scraper, counted on its way:
/// its bytes and the time to its last byte (or to the scraper hanging up)
/// go into [`GatewayMetrics::answered`](crate::GatewayMetrics::answered).
struct MeteredBody<B> {
    inner: B,
    gateway: Arc<Gateway>,
    route: ScrapeRoute,
    started: Instant,
    bytes: u64,
    finished: bool,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self) {
        if !core::mem::replace(&mut self.finished, true) {
            self.gateway
                .metrics
                .answered(self.route, self.started.elapsed(), self.bytes);
        }
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B> hyper::body::Body for MeteredBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn json(value: &serde_json::Value) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        value.to_string(),
    )
        .into_response()
}

fn connected_agents(gateway: &Gateway) -> impl Iterator<Item = String> {
    gateway
        .registry
        .agents()
        .into_iter()
        .filter(|agent| agent.connected)
        .map(|agent| agent.name)
}

async fn clients(State(gateway): State<Arc<Gateway>>) -> Response {
    let mut names: Vec<String> = connected_agents(&gateway).collect();
    names.extend(gateway.pushprox.known_clients());
    names.sort_unstable();
    names.dedup();
    let groups: Vec<serde_json::Value> = names
        .into_iter()
        .map(|name| serde_json::json!({ "targets": [name], "labels": null }))
        .collect();
    json(&serde_json::Value::Array(groups))
}

async fn http_sd(State(gateway): State<Arc<Gateway>>, uri: Uri, headers: HeaderMap) -> Response {
    let host = uri
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            headers
                .get(HOST)
                .and_then(|host| host.to_str().ok())
                .map(str::to_owned)
        });
    let Some(host) = host.filter(|host| !host.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "no Host header\n".to_owned());
    };
    let groups: Vec<serde_json::Value> = connected_agents(&gateway)
        .map(|name| {
            serde_json::json!({
                "targets": [host],
                "labels": {
                    "__metrics_path__": format!("/agents/{name}/metrics"),
                    "agent": name,
                },
            })
        })
        .collect();
    json(&serde_json::Value::Array(groups))
}

/// Answers 200 once the new configuration is in use, 500 with the reason
/// (and nothing changed) otherwise, as Prometheus's `/-/reload` does.
async fn reload(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.reload() {
        Ok(()) => {
            tracing::info!("configuration reloaded");
            text(StatusCode::OK, "Reloaded\n".to_owned())
        }
        Err(error) => {
            tracing::error!(%error, "configuration reload failed; the previous one stays");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n"))
        }
    }
}

async fn own_metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let mut body = gateway
        .metrics
        .render(Occupancy {
            agents: gateway.registry.counts(),
            pushprox_clients: gateway.pushprox.clients().len(),
        })
        .into_bytes();
    // As Pushgateway does: the pushed groups on the same page, for a job
    // with `honor_labels: true`.
    if let Some(store) = &gateway.push {
        body.extend_from_slice(store.render_metrics().as_bytes());
        store.write_page(&mut body);
    }
    (
        [(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE))],
        body,
    )
        .into_response()
}
