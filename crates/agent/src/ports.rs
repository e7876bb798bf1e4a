//! `proxy_url` mode on the agent's side: the gateway asks, through the
//! tunnel, for `GET /ports/<port>/<path>`, and the agent scrapes
//! `http://127.0.0.1:<port>/<path>` — only when `<port>` is in its
//! `allowed_ports`. PushProx's `_scheme=https` query parameter switches to
//! https (certificates are verified) and is not passed on.
//!
//! This route is served only over the tunnel, never in listen mode: a
//! listening agent has no business relaying to its host's other ports.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::service::{deadline, Agent};

/// Why a port scrape was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The port is not in the allowlist.
    #[error("port {0} is not in this agent's allowed ports (allowed_ports, --scrape.allow-port)")]
    NotAllowed(u16),
    /// The local exporter could not be reached.
    #[error("cannot scrape {url}: {reason}")]
    Unreachable {
        /// What was scraped.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The local exporter did not answer in time.
    #[error("{url} did not answer within {seconds:.3}s")]
    Timeout {
        /// What was scraped.
        url: String,
        /// The time it had.
        seconds: f64,
    },
}

impl IntoResponse for PortError {
    fn into_response(self) -> Response {
        let status = match self {
            PortError::NotAllowed(_) => StatusCode::FORBIDDEN,
            PortError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            PortError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// `GET /ports/{port}/{*path}`.
pub(crate) async fn scrape_port(
    State(agent): State<Arc<Agent>>,
    Path((port, path)): Path<(u16, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, PortError> {
    let runtime = agent.runtime();
    if !runtime.config.allowed_ports.contains(&port) {
        return Err(PortError::NotAllowed(port));
    }
    let (scheme, query) = split_scheme(query.as_deref().unwrap_or(""));
    let mut url = format!(
        "{scheme}://127.0.0.1:{port}/{}",
        path.trim_start_matches('/')
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    let budget = deadline(&headers, runtime.scrape_timeout())
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(1));
    let mut request = runtime.port_client.get(&url).timeout(budget).header(
        "X-Prometheus-Scrape-Timeout-Seconds",
        format!("{:.3}", budget.as_secs_f64()),
    );
    for name in [header::ACCEPT, header::ACCEPT_ENCODING] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            PortError::Timeout {
                url: url.clone(),
                seconds: budget.as_secs_f64(),
            }
        } else {
            PortError::Unreachable {
                url: url.clone(),
                reason: crate::source::http::error_chain(&e),
            }
        }
    })?;
    let status = response.status();
    let mut reply = Response::builder().status(status.as_u16());
    for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
        if let Some(value) = response.headers().get(&name) {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                reply = reply.header(name, value);
            }
        }
    }
    // The body streams through: a large page is never held whole here.
    Ok(reply
        .body(Body::from_stream(response.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// Takes PushProx's `_scheme` parameter out of the query: the scheme to
/// use and the rest of the query, unchanged.
pub(crate) fn split_scheme(query: &str) -> (&'static str, String) {
    let mut scheme = "http";
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            if *pair == "_scheme=https" {
                scheme = "https";
                false
            } else {
                !pair.is_empty() && !pair.starts_with("_scheme=")
            }
        })
        .collect();
    (scheme, rest.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_scheme_out_of_the_query() {
        assert_eq!(split_scheme(""), ("http", String::new()));
        assert_eq!(split_scheme("_scheme=https"), ("https", String::new()));
        assert_eq!(
            split_scheme("module=http_2xx&_scheme=https&target=a"),
            ("https", "module=http_2xx&target=a".to_owned())
        );
        assert_eq!(split_scheme("_scheme=http&x=1"), ("http", "x=1".to_owned()));
    }
}
