//! Egress with the PushProx client protocol (`--gateway.protocol=pushprox`):
//! the agent talks to an unmodified PushProx proxy, or to a promrelay
//! gateway's `/poll` and `/push`, the way a PushProx client does, so a site
//! can replace its PushProx clients before (or without) replacing the
//! proxy.
//!
//! # The protocol (PushProx v0.2.0 and master are the same on the wire)
//!
//! 1. `POST <proxy>/poll` with the agent's name (its FQDN, for PushProx) as
//!    the body. The proxy holds it until Prometheus scrapes
//!    `http://<name>:<port>/<path>` through it, then answers 200 with that
//!    request written as an HTTP/1.1 request in absolute form (Go's
//!    `http.Request.WriteProxy`), carrying an `Id` header. A 408 means the
//!    poll expired or a newer poll of the same name took over.
//! 2. The agent checks the request, serves it, and sends `POST <proxy>/push`
//!    whose body is the response written as Go's `http.Response.Write`
//!    writes it (status line, `Content-Length`, headers with the same
//!    `Id`, body). A scrape that fails is pushed as a 500 with the error
//!    text, as the PushProx client does: the refusals it makes are the
//!    same (the host is not the agent's name; no
//!    `X-Prometheus-Scrape-Timeout-Seconds` header).
//! 3. Each scrape is served on its own task and the agent polls again at
//!    once, as PushProx does; failed polls are retried after an
//!    exponential backoff with jitter ([`crate::backoff`]).
//!
//! # What a scrape reaches
//!
//! What the tunnel reaches, and nothing more ([`Agent::tunnel_router`]):
//! `http://<name>:<port>/<path>?<query>` is served as
//! `/ports/<port>/<path>?<query>`, so only the allowlisted local ports are
//! scraped ([`crate::ports`], which also honours PushProx's
//! `_scheme=https`). The one exception is the agent's own port (its
//! `--web.listen-address` port, 9437 unless configured): a request for it
//! reaches the agent's own pages (`/metrics`, `/sources/<name>/metrics`),
//! whether or not the agent listens there, since in egress mode it
//! usually does not.
//!
//! # Deliberate differences from the PushProx client
//!
//! - Credentials: with a token configured every poll and push carries
//!   `Authorization: Basic` of `<name>:<token>`, which a promrelay gateway
//!   checks and an unmodified PushProx proxy ignores. Credentials in the
//!   URL are refused (they would show in process listings and logs).
//! - The host check ignores ASCII case, as DNS does.
//! - A scrape runs within the request's timeout header, capped by the
//!   agent's `scrape_timeout`; at most [`MAX_CONCURRENT_SCRAPES`] run at
//!   once (polling waits for a free place), a page is pushed only up to
//!   [`MAX_PUSHED_PAGE`] bytes, and a poll's answer is read only up to
//!   [`MAX_SCRAPE_REQUEST`] bytes.
//! - A poll gives up after [`POLL_TIMEOUT`] (PushProx's client waits
//!   forever), so a connection that died silently is noticed; the proxy
//!   drops the stale poll when the next one arrives.
//! - A 408 after a normal hold is not an error: the agent polls again at
//!   once. A 408 sooner than [`MIN_HELD_POLL`] (another client polls under
//!   the same name) backs off like any failure, so two clients of one
//!   name do not take turns as fast as they can.
//! - Pushed responses always carry a `Content-Length`, also for errors
//!   (the Go client writes those as `HTTP/0.0` without one).
//! - TLS: the tunnel's configuration is used (`--gateway.ca-file`, and a
//!   client certificate that proves the name), else the web PKI roots.
//!   HTTP proxies come from the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
//!   `NO_PROXY`).

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION};
use http::{StatusCode, Uri};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::backoff::ExponentialBackoff;
use crate::egress::{stopped, EgressConfig, EgressError, EgressStatus};
use crate::service::Agent;

/// The port of the agent's own pages when `--web.listen-address` does not
/// say otherwise.
pub const DEFAULT_WEB_PORT: u16 = 9437;

/// The longest one poll waits for its answer. A promrelay gateway answers
/// every poll within 30 s; a PushProx proxy holds it until a scrape comes.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// A 408 sooner than this after polling means another client took the
/// poll over, not that it expired.
pub const MIN_HELD_POLL: Duration = Duration::from_secs(1);

/// The largest poll answer (one scrape request) read.
pub const MAX_SCRAPE_REQUEST: usize = 64 * 1024;

/// The most header fields of a scrape request.
pub const MAX_REQUEST_HEADERS: usize = 64;

/// The most scrapes served at once.
pub const MAX_CONCURRENT_SCRAPES: usize = 64;

/// The largest page pushed; a larger one is pushed as a 500 instead.
pub const MAX_PUSHED_PAGE: usize = 64 * 1024 * 1024;

/// The least time a push gets, even when the scrape used up its own.
pub const MIN_PUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// How often an idle connection to the proxy is probed at the TCP level.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The header linking a scrape request to its pushed response.
const ID_HEADER: &str = "id";

/// The request headers passed on to the agent's routes.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 3] = [
    ACCEPT,
    ACCEPT_ENCODING,
    HeaderName::from_static(web::SCRAPE_TIMEOUT_HEADER),
];

// ---------------------------------------------------------------------------
// The wire
// ---------------------------------------------------------------------------

/// Why a poll's answer is not a scrape request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request head does not end.
    #[error("the scrape request is incomplete")]
    Incomplete,
    /// The request is not HTTP/1.x.
    #[error("the scrape request is malformed: {0}")]
    Malformed(String),
    /// The request target is not an absolute `http(s)://host[:port]/...`.
    #[error("the scrape request's target {0:?} is not an absolute URL")]
    NotAbsolute(String),
    /// No `Id` header: its answer could not be pushed.
    #[error("the scrape request has no Id header")]
    MissingId,
}

/// A scrape request handed out by the proxy.
#[derive(Debug, Clone)]
pub struct ScrapeRequest {
    /// Links the pushed response to the scrape.
    pub id: String,
    /// `GET`, as a rule.
    pub method: http::Method,
    /// The absolute URL to scrape.
    pub uri: Uri,
    /// The headers, Prometheus's among them.
    pub headers: HeaderMap,
}

impl ScrapeRequest {
    /// Reads a request written by Go's `http.Request.WriteProxy`.
    pub fn parse(raw: &[u8]) -> Result<ScrapeRequest, RequestError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
        let mut request = httparse::Request::new(&mut fields);
        match request.parse(raw) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(RequestError::Incomplete),
            Err(error) => return Err(RequestError::Malformed(error.to_string())),
        }
        let method = http::Method::from_bytes(request.method.unwrap_or_default().as_bytes())
            .map_err(|error| RequestError::Malformed(error.to_string()))?;
        let target = request.path.unwrap_or_default();
        let uri: Uri = target
            .parse()
            .map_err(|_| RequestError::NotAbsolute(target.to_owned()))?;
        if uri.authority().is_none() || !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(RequestError::NotAbsolute(target.to_owned()));
        }
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for field in request.headers.iter() {
            let name = HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|error| RequestError::Malformed(error.to_string()))?;
            let value = HeaderValue::from_bytes(field.value)
                .map_err(|error| RequestError::Malformed(error.to_string()))?;
            headers.append(name, value);
        }
        let id = headers
            .get(ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or(RequestError::MissingId)?
            .to_owned();
        Ok(ScrapeRequest {
            id,
            method,
            uri,
            headers,
        })
    }
}

/// A scrape's response as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeResponse {
    /// The status.
    pub status: StatusCode,
    /// `Content-Type`, if any.
    pub content_type: Option<HeaderValue>,
    /// `Content-Encoding`, if any (a gzipped page is pushed gzipped).
    pub content_encoding: Option<HeaderValue>,
    /// The body.
    pub body: axum::body::Bytes,
}

impl ScrapeResponse {
    /// A failed scrape: 500 with the error as text, as PushProx pushes it.
    pub fn failure(error: &ScrapeFailure) -> ScrapeResponse {
        ScrapeResponse {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            content_type: Some(HeaderValue::from_static("text/plain; charset=utf-8")),
            content_encoding: None,
            body: error.to_string().into(),
        }
    }

    /// The response as Go's `http.Response.Write` writes one with a known
    /// length: status line, `Content-Length`, the other headers sorted by
    /// name (`Id` among them), an empty line, the body.
    pub fn write(&self, id: &str) -> Vec<u8> {
        let reason = self.status.canonical_reason().unwrap_or("status code");
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\n",
                self.status.as_u16(),
                self.body.len()
            )
            .as_bytes(),
        );
        let mut header = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        if let Some(value) = &self.content_encoding {
            header("Content-Encoding", value.as_bytes());
        }
        if let Some(value) = &self.content_type {
            header("Content-Type", value.as_bytes());
        }
        header("Id", id.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Why a scrape was not served; pushed as a 500 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeFailure {
    /// The request is for another host than this agent.
    #[error("scrape target {host:?} doesn't match client fqdn {name:?}")]
    WrongHost {
        /// The host asked for.
        host: String,
        /// This agent's name.
        name: String,
    },
    /// No usable scrape timeout header.
    #[error(
        "the scrape request has no valid X-Prometheus-Scrape-Timeout-Seconds header; \
         scrape through Prometheus, which always sends one"
    )]
    NoTimeout,
    /// The request could not be made into a local one.
    #[error("cannot serve {url}: {reason}")]
    BadRequest {
        /// What was asked for.
        url: String,
        /// Why it cannot be served.
        reason: String,
    },
    /// The scrape took longer than its timeout.
    #[error("scrape of {url} did not finish within {timeout:?}")]
    Timeout {
        /// What was scraped.
        url: String,
        /// The time it had.
        timeout: Duration,
    },
    /// The page could not be read whole, or is too large.
    #[error(
        "cannot read the page of {url} (at most {MAX_PUSHED_PAGE} bytes are pushed): {reason}"
    )]
    Body {
        /// What was scraped.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// Why a poll did not give a scrape.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("{0}")]
    Transport(String),
    #[error("the proxy refused the agent's credentials (HTTP {0}); check the token")]
    Refused(StatusCode),
    #[error("the proxy answered HTTP {0}")]
    Status(StatusCode),
    #[error("the poll's answer is larger than {MAX_SCRAPE_REQUEST} bytes")]
    TooLarge,
    #[error("{0}")]
    Request(#[from] RequestError),
    #[error(
        "the poll was replaced at once by another poll for this name; is another client \
         polling under the same name?"
    )]
    Replaced,
}

/// What a poll got.
#[derive(Debug)]
enum Polled {
    Scrape(Box<ScrapeRequest>),
    /// 408: the hold ended without a scrape.
    Expired,
}

/// The two routers a scrape may reach.
#[derive(Clone)]
struct Routes {
    /// The agent's own pages, for its own port.
    own: Router,
    /// The tunnel's routes: own pages and allowlisted ports.
    tunnel: Router,
}

/// The PushProx client loop, validated and ready to run (within
/// [`Egress`](crate::egress::Egress)).
pub struct PushproxClient {
    /// `<proxy>/poll`.
    poll_url: String,
    /// `<proxy>/push`.
    push_url: String,
    /// The agent's name: the poll body, and the only host it serves.
    name: String,
    /// `Basic <name:token>`, when a token is configured (sensitive).
    authorization: Option<HeaderValue>,
    /// The port that reaches the agent's own pages.
    web_port: u16,
    http: reqwest::Client,
}

impl fmt::Debug for PushproxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushproxClient")
            .field("poll_url", &self.poll_url)
            .field("push_url", &self.push_url)
            .field("name", &self.name)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("web_port", &self.web_port)
            .finish_non_exhaustive()
    }
}

impl PushproxClient {
    /// Checks the proxy URL, name and token of `config`.
    pub fn new(config: &EgressConfig) -> Result<PushproxClient, EgressError> {
        let url = config.gateway_url.as_str();
        let invalid = |reason| EgressError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URI"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(_) => return Err(invalid("scheme must be http or https for PushProx")),
            None => return Err(invalid("no scheme")),
        }
        let Some(authority) = uri.authority() else {
            return Err(invalid("no host"));
        };
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials in the URL are not accepted; use --agent.token-file",
            ));
        }
        let name = config.agent_name.clone();
        if name.is_empty()
            || name.len() > 253
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(EgressError::InvalidAgentName(name));
        }
        let authorization = if config.token.is_empty() {
            None
        } else {
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{name}:{}", config.token));
            let mut value = HeaderValue::try_from(format!("Basic {credentials}"))
                .map_err(|_| EgressError::InvalidToken)?;
            value.set_sensitive(true);
            Some(value)
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("promrelay/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .tcp_keepalive(TCP_KEEPALIVE);
        // The same trusted CAs and client certificate as the tunnel's.
        let http = match config.connect.tls_config() {
            Some(tls) => http.use_preconfigured_tls(rustls::ClientConfig::clone(tls)),
            None => http,
        };
        let http = http
            .build()
            .map_err(|error| EgressError::HttpClient(error.to_string()))?;
        let base = url.trim_end_matches('/');
        Ok(PushproxClient {
            poll_url: format!("{base}/poll"),
            push_url: format!("{base}/push"),
            name,
            authorization,
            web_port: config.web_port,
            http,
        })
    }

    /// Polls, serves and pushes until `stop` turns true; then waits for the
    /// scrapes in flight (each bounded by its timeout) to push.
    pub(crate) async fn run_until(
        self: &Arc<Self>,
        agent: &Arc<Agent>,
        backoff: &mut ExponentialBackoff,
        status: &EgressStatus,
        stop: watch::Receiver<bool>,
    ) {
        let proxy = self.poll_url.as_str();
        let name = self.name.as_str();
        let routes = Routes {
            own: agent.router(),
            tunnel: agent.tunnel_router(),
        };
        let places = Arc::new(Semaphore::new(MAX_CONCURRENT_SCRAPES));
        let mut scrapes = JoinSet::new();
        loop {
            while scrapes.try_join_next().is_some() {}
            if *stop.borrow() {
                break;
            }
            let place = tokio::select! {
                place = Arc::clone(&places).acquire_owned() => match place {
                    Ok(place) => place,
                    Err(_closed) => break,
                },
                () = stopped(stop.clone()) => break,
            };
            let started = Instant::now();
            let polled = tokio::select! {
                polled = self.poll() => polled,
                () = stopped(stop.clone()) => break,
            };
            let error = match polled {
                Ok(Polled::Scrape(request)) => {
                    self.reached(status, backoff);
                    tracing::debug!(proxy, agent = name, scrape_id = %request.id, url = %request.uri, "scrape request");
                    let cap = agent.runtime().scrape_timeout();
                    scrapes.spawn(Arc::clone(self).serve(routes.clone(), request, cap, place));
                    continue;
                }
                Ok(Polled::Expired) if started.elapsed() >= MIN_HELD_POLL => {
                    self.reached(status, backoff);
                    continue;
                }
                Ok(Polled::Expired) => PollError::Replaced,
                Err(error) => error,
            };
            status.record_failure();
            match &error {
                PollError::Refused(_) => {
                    tracing::error!(proxy, agent = name, %error, "poll refused");
                }
                _ => tracing::warn!(proxy, agent = name, %error, "poll failed"),
            }
            let delay = backoff.next_delay();
            tracing::debug!(proxy, agent = name, ?delay, "polling again after a delay");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(stop.clone()) => break,
            }
        }
        status.record_stop();
        while scrapes.join_next().await.is_some() {}
        tracing::info!(proxy, agent = name, "stopped polling for shutdown");
    }

    /// A poll was answered: the proxy is reachable and takes the agent.
    fn reached(&self, status: &EgressStatus, backoff: &mut ExponentialBackoff) {
        if status.record_contact() {
            tracing::info!(
                proxy = %self.poll_url,
                agent = %self.name,
                "polling the PushProx proxy for scrapes"
            );
        }
        backoff.reset();
    }

    async fn poll(&self) -> Result<Polled, PollError> {
        let mut request = self
            .http
            .post(&self.poll_url)
            .timeout(POLL_TIMEOUT)
            .body(self.name.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let mut response = request
            .send()
            .await
            .map_err(|error| PollError::Transport(crate::source::http::error_chain(&error)))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::REQUEST_TIMEOUT => return Ok(Polled::Expired),
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                return Err(PollError::Refused(status))
            }
            status => return Err(PollError::Status(status)),
        }
        let mut raw = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| PollError::Transport(crate::source::http::error_chain(&error)))?
        {
            if chunk.len() > MAX_SCRAPE_REQUEST - raw.len() {
                return Err(PollError::TooLarge);
            }
            raw.extend_from_slice(&chunk);
        }
        Ok(Polled::Scrape(Box::new(ScrapeRequest::parse(&raw)?)))
    }

    /// Serves one scrape and pushes its response (or its failure).
    async fn serve(
        self: Arc<Self>,
        routes: Routes,
        request: Box<ScrapeRequest>,
        cap: Duration,
        _place: OwnedSemaphorePermit,
    ) {
        let timeout = web::requested_scrape_timeout(&request.headers, cap);
        let response = match timeout {
            Some(timeout) => self.scrape(&routes, &request, timeout).await,
            None => Err(ScrapeFailure::NoTimeout),
        };
        let response = response.unwrap_or_else(|failure| {
            tracing::warn!(agent = %self.name, scrape_id = %request.id, url = %request.uri, %failure, "scrape failed; pushing the error");
            ScrapeResponse::failure(&failure)
        });
        let push_timeout = timeout.unwrap_or(MIN_PUSH_TIMEOUT).max(MIN_PUSH_TIMEOUT);
        self.push(&request.id, &response, push_timeout).await;
    }

    /// Serves `request` with the agent's routes within `timeout`.
    async fn scrape(
        &self,
        routes: &Routes,
        request: &ScrapeRequest,
        timeout: Duration,
    ) -> Result<ScrapeResponse, ScrapeFailure> {
        let uri = &request.uri;
        let host = uri.host().unwrap_or_default();
        if !host.eq_ignore_ascii_case(&self.name) {
            return Err(ScrapeFailure::WrongHost {
                host: host.to_owned(),
                name: self.name.clone(),
            });
        }
        let (router, target) = local_target(uri, self.web_port);
        let (router, target) = match router {
            Local::Own => (routes.own.clone(), target),
            Local::Port => (routes.tunnel.clone(), target),
        };
        let url = uri.to_string();
        let mut local = http::Request::builder()
            .method(request.method.clone())
            .uri(&target);
        for name in &FORWARDED_REQUEST_HEADERS {
            for value in request.headers.get_all(name) {
                local = local.header(name, value);
            }
        }
        let local = local
            .body(Body::empty())
            .map_err(|error| ScrapeFailure::BadRequest {
                url: url.clone(),
                reason: error.to_string(),
            })?;
        let served = async {
            let response = match router.oneshot(local).await {
                Ok(response) => response,
                Err(infallible) => match infallible {},
            };
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, MAX_PUSHED_PAGE).await;
            (parts, body)
        };
        let (parts, body) = tokio::time::timeout(timeout, served)
            .await
            .map_err(|_elapsed| ScrapeFailure::Timeout {
                url: url.clone(),
                timeout,
            })?;
        let body = body.map_err(|error| ScrapeFailure::Body {
            url,
            reason: error.to_string(),
        })?;
        Ok(ScrapeResponse {
            status: parts.status,
            content_type: parts.headers.get(http::header::CONTENT_TYPE).cloned(),
            content_encoding: parts.headers.get(http::header::CONTENT_ENCODING).cloned(),
            body,
        })
    }

    async fn push(&self, id: &str, response: &ScrapeResponse, timeout: Duration) {
        let mut request = self
            .http
            .post(&self.push_url)
            .timeout(timeout)
            .body(response.write(id));
        // The Id travels inside the pushed response, where PushProx reads
        // it; on the request too, for proxies that look there.
        if let Ok(value) = HeaderValue::from_str(id) {
            request = request.header("Id", value);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        match request.send().await {
            Ok(answer) if answer.status().is_success() => {
                tracing::debug!(agent = %self.name, scrape_id = id, status = %response.status, "pushed");
            }
            Ok(answer) => tracing::warn!(
                agent = %self.name,
                scrape_id = id,
                status = %answer.status(),
                "the proxy refused the push (the scrape may have timed out there)"
            ),
            Err(error) => tracing::warn!(
                agent = %self.name,
                scrape_id = id,
                error = %crate::source::http::error_chain(&error),
                "push failed"
            ),
        }
    }
}

/// Which of the agent's routers serves a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    /// The agent's own pages (its own port).
    Own,
    /// An allowlisted local port, through [`crate::ports`].
    Port,
}

/// Where `uri` goes inside the agent: its own port reaches its own pages
/// (PushProx's `_scheme` dropped, it means nothing there); any other port
/// is `/ports/<port>/<path>` with the query as it is.
fn local_target(uri: &Uri, web_port: u16) -> (Local, String) {
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default_port);
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    if port == web_port {
        let (_, query) = crate::ports::split_scheme(query);
        return if query.is_empty() {
            (Local::Own, path.to_owned())
        } else {
            (Local::Own, format!("{path}?{query}"))
        };
    }
    let mut target = format!("/ports/{port}{path}");
    if !query.is_empty() {
        target.push('?');
        target.push_str(query);
    }
    (Local::Port, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape request as the PushProx proxy writes it (Go's WriteProxy
    /// of Prometheus's request, with the Id it adds).
    const GO_REQUEST: &[u8] = b"GET http://edge-1:9100/metrics?_scheme=https&module=x HTTP/1.1\r\n\
        Host: edge-1:9100\r\n\
        User-Agent: Prometheus/2.42.0\r\n\
        Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\
        Accept-Encoding: gzip\r\n\
        Id: 5c8a7f0e-6a0b-4d6e-8f3e-0d8e1f2a3b4c\r\n\
        X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\
        \r\n";

    #[test]
    fn reads_the_request_the_proxy_writes() {
        let request = ScrapeRequest::parse(GO_REQUEST).unwrap();
        assert_eq!(request.id, "5c8a7f0e-6a0b-4d6e-8f3e-0d8e1f2a3b4c");
        assert_eq!(request.method, http::Method::GET);
        assert_eq!(request.uri.host(), Some("edge-1"));
        assert_eq!(request.uri.port_u16(), Some(9100));
        assert_eq!(request.headers[web::SCRAPE_TIMEOUT_HEADER], "10");
        assert_eq!(
            ScrapeRequest::parse(&GO_REQUEST[..40]).unwrap_err(),
            RequestError::Incomplete
        );
        assert!(matches!(
            ScrapeRequest::parse(b"GET /metrics HTTP/1.1\r\nId: x\r\n\r\n"),
            Err(RequestError::NotAbsolute(_))
        ));
        assert_eq!(
            ScrapeRequest::parse(b"GET http://a:1/ HTTP/1.1\r\n\r\n").unwrap_err(),
            RequestError::MissingId
        );
        assert!(matches!(
            ScrapeRequest::parse(b"\x01\x02 nonsense\r\n\r\n"),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn routes_its_own_port_to_its_own_pages_and_others_to_the_allowlist() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert_eq!(
            local_target(&uri("http://edge-1:9437/metrics"), 9437),
            (Local::Own, "/metrics".to_owned())
        );
        assert_eq!(
            local_target(
                &uri("http://edge-1:9437/sources/a/metrics?_scheme=https&x=1"),
                9437
            ),
            (Local::Own, "/sources/a/metrics?x=1".to_owned())
        );
        assert_eq!(
            local_target(&uri("http://edge-1:9100/metrics?_scheme=https"), 9437),
            (Local::Port, "/ports/9100/metrics?_scheme=https".to_owned())
        );
        assert_eq!(
            local_target(&uri("http://edge-1/metrics"), 9437),
            (Local::Port, "/ports/80/metrics".to_owned())
        );
        assert_eq!(
            local_target(&uri("http://edge-1:8080/metrics"), 8080),
            (Local::Own, "/metrics".to_owned())
        );
    }

    #[test]
    fn writes_the_response_as_go_writes_one_with_a_length() {
        let response = ScrapeResponse {
            status: StatusCode::OK,
            content_type: Some(HeaderValue::from_static("text/plain; version=0.0.4")),
            content_encoding: Some(HeaderValue::from_static("gzip")),
            body: "up 1\n".into(),
        };
        assert_eq!(
            String::from_utf8(response.write("abc")).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Encoding: gzip\r\n\
             Content-Type: text/plain; version=0.0.4\r\nId: abc\r\n\r\nup 1\n"
        );
        let failure = ScrapeResponse::failure(&ScrapeFailure::NoTimeout);
        let written = String::from_utf8(failure.write("abc")).unwrap();
        assert!(
            written.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{written}"
        );
        assert!(written.ends_with("which always sends one"), "{written}");
    }

    fn config(url: &str) -> EgressConfig {
        let mut config = EgressConfig::new(url, "edge-1.example", "s3cret");
        config.protocol = crate::egress::GatewayProtocol::Pushprox;
        config
    }

    #[test]
    fn checks_its_configuration() {
        let client = PushproxClient::new(&config("https://proxy:8080/")).unwrap();
        assert_eq!(client.poll_url, "https://proxy:8080/poll");
        assert_eq!(client.push_url, "https://proxy:8080/push");
        let client = PushproxClient::new(&config("http://proxy/prefix")).unwrap();
        assert_eq!(client.poll_url, "http://proxy/prefix/poll");
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("czNjcmV0"),
            "{shown}"
        );
        for url in ["ws://proxy", "proxy:8080", "http://user:pw@proxy/", ""] {
            assert!(
                matches!(
                    PushproxClient::new(&config(url)),
                    Err(EgressError::InvalidUrl { .. })
                ),
                "{url:?} accepted"
            );
        }
        let mut bad = config("http://proxy");
        bad.agent_name = "a b".to_owned();
        assert!(matches!(
            PushproxClient::new(&bad),
            Err(EgressError::InvalidAgentName(_))
        ));
        // Without a token nothing is sent (an unmodified PushProx proxy).
        let mut open = config("http://proxy");
        open.token = String::new();
        assert!(PushproxClient::new(&open).unwrap().authorization.is_none());
    }
}
