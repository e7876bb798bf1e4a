//! Simulated agents: many tunnels to one gateway from this process.
//!
//! Each agent dials the gateway with [`tunnel::connect`] and serves a
//! router over the tunnel with [`tunnel::serve_over`], as `promrelay agent`
//! does in egress mode; the router serves a page from memory, so the agents
//! cost the gateway what real ones would and cost this process little.

use std::io::Write as _;
use std::time::Duration;

use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::task::JoinSet;

/// The content type of the pages agents serve: Prometheus text 0.0.4.
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long one dial may take before it is tried again.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Dials per agent before the benchmark gives up.
const DIAL_ATTEMPTS: usize = 3;

/// A page as it is served: the text, and for a server that honours
/// `Accept-Encoding: gzip` as `promrelay agent` does, the same text
/// gzipped once up front, so serving it costs this process nothing.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    text: Bytes,
    gzip: Option<Bytes>,
}

impl Page {
    /// A page always served as text, whatever the client accepts.
    pub(crate) fn text(text: Bytes) -> Page {
        Page { text, gzip: None }
    }

    /// A page served gzipped to clients that accept it, compressed at the
    /// agent's level (fast).
    pub(crate) fn with_gzip(text: Bytes) -> Page {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::fast(),
        );
        let gzip = encoder
            .write_all(&text)
            .and_then(|()| encoder.finish())
            .expect("gzip into memory");
        Page {
            text,
            gzip: Some(Bytes::from(gzip)),
        }
    }

    /// The text's length.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// The gzipped length, when the page is served gzipped.
    pub(crate) fn gzip_len(&self) -> Option<usize> {
        self.gzip.as_ref().map(Bytes::len)
    }

    fn respond(&self, headers: &HeaderMap) -> Response {
        let accepts_gzip = headers
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("gzip"));
        match &self.gzip {
            Some(gzip) if accepts_gzip => (
                [
                    (CONTENT_TYPE, TEXT_CONTENT_TYPE),
                    (CONTENT_ENCODING, "gzip"),
                ],
                gzip.clone(),
            )
                .into_response(),
            _ => ([(CONTENT_TYPE, TEXT_CONTENT_TYPE)], self.text.clone()).into_response(),
        }
    }
}

/// A router serving `page` at `/metrics`; clones share the page.
pub(crate) fn page_router(page: Page) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let response = page.respond(&headers);
            async move { response }
        }),
    )
}

/// Connected simulated agents; dropping this closes every tunnel.
#[derive(Debug)]
pub(crate) struct SimulatedAgents {
    tunnels: JoinSet<()>,
}

impl SimulatedAgents {
    /// How many tunnels are still being served.
    pub(crate) fn len(&self) -> usize {
        self.tunnels.len()
    }
}

/// Connects one agent per `(name, router)`, at most `parallel` dials at
/// once, and serves each router over its tunnel as soon as it is up.
pub(crate) async fn connect(
    tunnel_url: &str,
    token: &str,
    agents: impl Iterator<Item = (String, Router)>,
    parallel: usize,
) -> Result<SimulatedAgents, String> {
    let mut dials = futures::stream::iter(agents)
        .map(|(name, router)| async move {
            let mut attempt = 1;
            loop {
                let dialed =
                    tokio::time::timeout(DIAL_TIMEOUT, tunnel::connect(tunnel_url, token, &name))
                        .await;
                let error = match dialed {
                    Ok(Ok(ws)) => return Ok((ws, router)),
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => format!("timed out after {DIAL_TIMEOUT:?}"),
                };
                if attempt == DIAL_ATTEMPTS {
                    return Err(format!("agent {name} cannot connect: {error}"));
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .buffer_unordered(parallel.max(1));
    let mut tunnels = JoinSet::new();
    while let Some(dialed) = dials.next().await {
        let (ws, router) = dialed?;
        tunnels.spawn(async move {
            // Served until the gateway goes or the set is dropped.
            let _ = tunnel::serve_over(ws, router, core::future::pending()).await;
        });
    }
    Ok(SimulatedAgents { tunnels })
}
