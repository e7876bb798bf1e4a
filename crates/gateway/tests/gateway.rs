//! The gateway end to end, in process: its router served on 127.0.0.1 and
//! fake agents dialing in with `tunnel::connect` + `tunnel::serve_over`.

mod common;

use common::{guard, FakeAgent, PROM_TEXT};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, RawQuery};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use gateway::auth::sha256_hex;
use gateway::{AgentAuth, Gateway, GatewayConfig, Route};
use tunnel::TunnelError;

const SHARED: &str = "shared-secret";
/// A bearer token the test server turns into a verified client
/// certificate with common name `cert-agent` (standing in for mutual TLS).
const CERT_TOKEN: &str = "pretend-cert";
const CERT_NAME: &str = "cert-agent";
/// Per-agent token of `cert-agent`, so the two credentials differ.
const CERT_AGENT_TOKEN: &str = "cert-agent-own-token";

struct TestGateway {
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl TestGateway {
    async fn start() -> TestGateway {
        let auth = AgentAuth::new()
            .with_shared_token(SHARED)
            .unwrap()
            .with_agent_token_sha256(CERT_NAME, &sha256_hex(CERT_AGENT_TOKEN))
            .unwrap()
            .with_client_certificates(true);
        let gateway = Arc::new(Gateway::new(GatewayConfig::default(), auth));
        let addr =
            common::serve_pretending_certs(Arc::clone(&gateway), CERT_TOKEN, CERT_NAME).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        TestGateway {
            gateway,
            addr,
            http,
        }
    }

    fn tunnel_url(&self) -> String {
        format!("http://{}/tunnel", self.addr)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        guard(path, self.http.get(self.url(path)).send())
            .await
            .unwrap()
    }

    async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.text().await.unwrap())
    }

    /// Waits (bounded) until the registry's route for `name` satisfies `done`.
    async fn wait_route(&self, name: &str, what: &str, done: impl Fn(&Route) -> bool) {
        common::wait_route(&self.gateway, name, what, done).await;
    }

    async fn wait_connected(&self, name: &str) {
        common::wait_connected(&self.gateway, name).await;
    }

    /// Connects a fake agent and waits until the gateway has registered it.
    async fn agent(&self, token: &str, name: &str, tag: &str) -> FakeAgent {
        let agent = FakeAgent::connect(&self.tunnel_url(), token, name, agent_router(name, tag))
            .await
            .unwrap();
        self.wait_connected(name).await;
        agent
    }
}

fn agent_router(name: &str, tag: &str) -> Router {
    let page = format!("# agent {name} ({tag})\nup 1\n");
    let source_page = format!("{name} ({tag})");
    let container_page = source_page.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || async move { ([(CONTENT_TYPE, PROM_TEXT)], page) }),
        )
        .route(
            "/containers/{container}/metrics",
            get(
                move |Path(container): Path<String>, RawQuery(query): RawQuery| async move {
                    let query = query.unwrap_or_default();
                    (
                        [(CONTENT_TYPE, PROM_TEXT)],
                        format!("container {container} of {container_page} query={query}"),
                    )
                },
            ),
        )
        .route(
            "/sources/{source}/metrics",
            get(
                move |Path(source): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap| async move {
                    if source == "slow" {
                        core::future::pending::<()>().await;
                    }
                    let accept = headers
                        .get(ACCEPT)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let timeout = headers
                        .get("x-prometheus-scrape-timeout-seconds")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let query = query.unwrap_or_default();
                    (
                        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                        format!("source {source} of {source_page} query={query} accept={accept} timeout={timeout}"),
                    )
                },
            ),
        )
}

#[tokio::test]
async fn path_mode_scrapes_stream_the_agents_pages() {
    let gw = TestGateway::start().await;
    let _agent = gw.agent(SHARED, "node-1", "a").await;

    let response = gw.get("/agents/node-1/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE.as_str()], PROM_TEXT);
    assert_eq!(response.text().await.unwrap(), "# agent node-1 (a)\nup 1\n");

    let response = guard(
        "source scrape",
        gw.http
            .get(gw.url("/agents/node-1/sources/db/metrics?module=x&debug=1"))
            .header(ACCEPT.as_str(), "text/plain;version=0.0.4")
            .header("X-Prometheus-Scrape-Timeout-Seconds", "7")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()[CONTENT_TYPE.as_str()],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        response.text().await.unwrap(),
        "source db of node-1 (a) query=module=x&debug=1 accept=text/plain;version=0.0.4 timeout=7"
    );

    // A container of the agent's docker sources.
    let (status, body) = gw
        .get_text("/agents/node-1/containers/shop-web-1/metrics?x=1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "container shop-web-1 of node-1 (a) query=x=1");

    // Only the three path shapes are forwarded.
    let (status, _) = gw.get_text("/agents/node-1/-/healthy").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A source or container name that is not a plain name is refused.
    let (status, _) = gw.get_text("/agents/node-1/sources/a%2Fb/metrics").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = gw
        .get_text("/agents/node-1/containers/..%2Fmetrics/metrics")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("invalid container name"), "{body}");
}

#[tokio::test]
async fn unknown_agent_is_404() {
    let gw = TestGateway::start().await;
    let (status, body) = gw.get_text("/agents/nope/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "no agent named nope\n");
}

#[tokio::test]
async fn disconnected_agent_is_503() {
    let gw = TestGateway::start().await;
    let agent = gw.agent(SHARED, "gone", "a").await;
    agent.kill();
    gw.wait_route("gone", "disconnected", |route| {
        matches!(route, Route::Disconnected)
    })
    .await;
    let (status, body) = gw.get_text("/agents/gone/metrics").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "agent gone is not connected\n");
    let agents = gw.gateway.registry.agents();
    assert_eq!(agents.len(), 1);
    assert!(!agents[0].connected);
}

#[tokio::test]
async fn slow_agent_times_out_with_504() {
    let gw = TestGateway::start().await;
    let _agent = gw.agent(SHARED, "sloth", "a").await;
    let response = guard(
        "slow scrape",
        gw.http
            .get(gw.url("/agents/sloth/sources/slow/metrics"))
            .header("X-Prometheus-Scrape-Timeout-Seconds", "0.5")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 504);
    let body = response.text().await.unwrap();
    assert!(body.contains("agent sloth"), "{body}");
    // The tunnel still works afterwards.
    let (status, _) = gw.get_text("/agents/sloth/metrics").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_credentials_and_names_are_refused_before_the_upgrade() {
    let gw = TestGateway::start().await;
    let rejected = |result: Result<FakeAgent, TunnelError>| match result {
        Err(TunnelError::Rejected { status }) => status.as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("tunnel accepted"),
    };
    let url = gw.tunnel_url();
    assert_eq!(
        rejected(FakeAgent::connect(&url, "wrong", "node-1", agent_router("node-1", "a")).await),
        401
    );
    // A name with its own token is reserved to it: the shared token is refused.
    assert_eq!(
        rejected(FakeAgent::connect(&url, SHARED, CERT_NAME, agent_router(CERT_NAME, "a")).await),
        401
    );
    assert_eq!(
        rejected(FakeAgent::connect(&url, SHARED, "bad/name", agent_router("bad/name", "a")).await),
        400
    );
    assert_eq!(gw.gateway.registry.counts().known, 0);
}

#[tokio::test]
async fn another_credential_cannot_take_a_connected_name() {
    let gw = TestGateway::start().await;
    let _first = gw.agent(CERT_AGENT_TOKEN, CERT_NAME, "first").await;
    // Same name, valid but different credential (client certificate).
    let second = FakeAgent::connect(
        &gw.tunnel_url(),
        CERT_TOKEN,
        CERT_NAME,
        agent_router(CERT_NAME, "second"),
    )
    .await;
    match second {
        Err(TunnelError::Rejected { status }) => assert_eq!(status.as_u16(), 409),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("second tunnel accepted"),
    }
    let (status, body) = gw.get_text(&format!("/agents/{CERT_NAME}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("(first)"), "{body}");
}

#[tokio::test]
async fn the_same_credential_reconnecting_replaces_its_tunnel() {
    let gw = TestGateway::start().await;
    let first = gw.agent(SHARED, "phoenix", "old").await;
    let _second = FakeAgent::connect(
        &gw.tunnel_url(),
        SHARED,
        "phoenix",
        agent_router("phoenix", "new"),
    )
    .await
    .unwrap();
    // The old tunnel is closed by the gateway: its serve_over returns.
    let _ = guard("old tunnel closing", first.finished()).await;
    gw.wait_connected("phoenix").await;
    let (status, body) = gw.get_text("/agents/phoenix/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "# agent phoenix (new)\nup 1\n");
    // The old tunnel ending did not mark the new one disconnected.
    assert!(matches!(
        gw.gateway.registry.route("phoenix"),
        Route::Connected(_)
    ));
    assert_eq!(gw.gateway.registry.counts().connected, 1);
}

#[tokio::test]
async fn discovery_lists_connected_agents() {
    let gw = TestGateway::start().await;
    let _a = gw.agent(SHARED, "alpha", "a").await;
    let _b = gw.agent(SHARED, "beta", "b").await;
    let gone = gw.agent(SHARED, "gamma", "c").await;
    gone.kill();
    gw.wait_route("gamma", "disconnected", |route| {
        matches!(route, Route::Disconnected)
    })
    .await;

    let response = gw.get("/clients").await;
    assert_eq!(
        response.headers()[CONTENT_TYPE.as_str()],
        "application/json"
    );
    let clients: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        clients,
        serde_json::json!([
            {"targets": ["alpha"], "labels": null},
            {"targets": ["beta"], "labels": null},
        ])
    );

    let (_, sd) = gw.get_text("/api/v1/sd").await;
    let sd: serde_json::Value = serde_json::from_str(&sd).unwrap();
    let host = gw.addr.to_string();
    assert_eq!(
        sd,
        serde_json::json!([
            {"targets": [host], "labels": {"__metrics_path__": "/agents/alpha/metrics", "agent": "alpha"}},
            {"targets": [host], "labels": {"__metrics_path__": "/agents/beta/metrics", "agent": "beta"}},
        ])
    );

    for path in ["/-/healthy", "/-/ready"] {
        let (status, _) = gw.get_text(path).await;
        assert_eq!(status, StatusCode::OK);
    }
}

fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn own_metrics_count() {
    let gw = TestGateway::start().await;
    let (status, page) = gw.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metric(&page, "promrelay_gateway_agents_connected"), 0.0);
    assert_eq!(
        metric(&page, "promrelay_gateway_tunnel_connects_total"),
        0.0
    );

    let _agent = gw.agent(SHARED, "counted", "a").await;
    assert!(
        FakeAgent::connect(&gw.tunnel_url(), "wrong", "x", agent_router("x", "a"))
            .await
            .is_err()
    );
    gw.get_text("/agents/counted/metrics").await;
    gw.get_text("/agents/counted/metrics").await;
    gw.get_text("/agents/missing/metrics").await;

    let response = gw.get("/metrics").await;
    assert_eq!(
        response.headers()[CONTENT_TYPE.as_str()],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let page = response.text().await.unwrap();
    assert_eq!(metric(&page, "promrelay_gateway_agents_connected"), 1.0);
    assert_eq!(metric(&page, "promrelay_gateway_agents_known"), 1.0);
    assert_eq!(
        metric(&page, "promrelay_gateway_tunnel_connects_total"),
        1.0
    );
    assert_eq!(metric(&page, "promrelay_gateway_auth_failures_total"), 1.0);
    assert_eq!(
        metric(
            &page,
            "promrelay_gateway_scrapes_total{route=\"path\",outcome=\"ok\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &page,
            "promrelay_gateway_scrapes_total{route=\"path\",outcome=\"unknown\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &page,
            "promrelay_gateway_scrapes_total{route=\"path\",outcome=\"timeout\"}"
        ),
        0.0
    );
    // Two pages streamed: both timed to their last byte, their bytes
    // counted as they came through the tunnel.
    let page_len = "# agent counted (a)\nup 1\n".len() as f64;
    assert_eq!(
        metric(
            &page,
            "promrelay_gateway_scrape_duration_seconds_count{route=\"path\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &page,
            "promrelay_gateway_scrape_bytes_total{route=\"path\"}"
        ),
        2.0 * page_len
    );

    // The same agent reconnecting counts as a replacement, and the old
    // tunnel as a disconnect.
    let _again = FakeAgent::connect(
        &gw.tunnel_url(),
        SHARED,
        "counted",
        agent_router("counted", "b"),
    )
    .await
    .unwrap();
    let (_, page) = gw.get_text("/metrics").await;
    assert_eq!(
        metric(&page, "promrelay_gateway_tunnel_replacements_total"),
        1.0
    );
    let parsed = exposition::parse(page.as_bytes(), exposition::Format::Text).unwrap();
    assert!(exposition::validate_strict(&parsed, exposition::Format::Text).is_empty());
}
