//! Fan-in (`GET /metrics/connected`) end to end, in process: the gateway's
//! router served on 127.0.0.1 and fake agents dialing in with
//! `tunnel::connect` + `tunnel::serve_over`.

mod common;

use common::{guard, FakeAgent, PROM_TEXT};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum::Router;
use exposition::Format;
use gateway::{AgentAuth, Gateway, GatewayConfig, Route, ScrapeOutcome, ScrapeRoute};
use tokio::net::TcpListener;

const TOKEN: &str = "shared-secret";

struct TestGateway {
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl TestGateway {
    async fn start() -> TestGateway {
        TestGateway::start_with(GatewayConfig::default()).await
    }

    async fn start_with(config: GatewayConfig) -> TestGateway {
        let auth = AgentAuth::new().with_shared_token(TOKEN).unwrap();
        let gateway = Arc::new(Gateway::new(config, auth));
        let app = gateway::router(Arc::clone(&gateway));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        TestGateway {
            gateway,
            addr,
            http,
        }
    }

    /// Scrapes `/metrics/connected` with `headers`; the status must be 200.
    async fn fanin(&self, headers: &[(&str, &str)]) -> (String, String) {
        let mut request = self
            .http
            .get(format!("http://{}/metrics/connected", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = guard("fan-in scrape", request.send()).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = guard("fan-in body", response.text()).await.unwrap();
        (content_type, body)
    }

    async fn wait_route(&self, name: &str, what: &str, done: impl Fn(&Route) -> bool) {
        common::wait_route(&self.gateway, name, what, done).await;
    }

    /// Connects a fake agent serving `router` and waits until it is registered.
    async fn agent(&self, name: &str, router: Router) -> FakeAgent {
        let url = format!("http://{}/tunnel", self.addr);
        let agent = FakeAgent::connect(&url, TOKEN, name, router).await.unwrap();
        common::wait_connected(&self.gateway, name).await;
        agent
    }
}

/// An agent whose `/metrics` answers `page` as text 0.0.4.
fn page_router(page: &'static str) -> Router {
    Router::new().route(
        "/metrics",
        get(move || async move { ([(CONTENT_TYPE, PROM_TEXT)], page) }),
    )
}

/// An agent whose `/metrics` never answers.
fn stuck_router() -> Router {
    Router::new().route(
        "/metrics",
        get(|| async {
            core::future::pending::<()>().await;
            ""
        }),
    )
}

fn goroutines(count: u32) -> &'static str {
    Box::leak(
        format!(
            "# HELP go_goroutines Number of goroutines that currently exist.\n\
             # TYPE go_goroutines gauge\n\
             go_goroutines {count}\n"
        )
        .into_boxed_str(),
    )
}

fn assert_valid(page: &str, format: Format) {
    let parsed = exposition::parse(page.as_bytes(), format)
        .unwrap_or_else(|error| panic!("fan-in page does not parse: {error}\n{page}"));
    let violations = exposition::validate_strict(&parsed, format);
    assert!(
        violations.is_empty(),
        "fan-in page is not valid: {violations:?}\n{page}"
    );
}

fn has_line(page: &str, line: &str) {
    assert!(
        page.lines().any(|l| l == line),
        "missing line {line:?} in\n{page}"
    );
}

#[tokio::test]
async fn three_agents_merge_into_one_family() {
    let gw = TestGateway::start().await;
    let _a = gw.agent("a", page_router(goroutines(1))).await;
    let _b = gw.agent("b", page_router(goroutines(2))).await;
    let _c = gw.agent("c", page_router(goroutines(3))).await;

    let (content_type, page) = gw.fanin(&[]).await;
    assert_eq!(content_type, Format::Text.content_type());
    assert_valid(&page, Format::Text);
    assert_eq!(
        page.matches("# TYPE go_goroutines gauge").count(),
        1,
        "{page}"
    );
    has_line(&page, "go_goroutines{agent=\"a\"} 1");
    has_line(&page, "go_goroutines{agent=\"b\"} 2");
    has_line(&page, "go_goroutines{agent=\"c\"} 3");
    for agent in ["a", "b", "c"] {
        has_line(
            &page,
            &format!("promrelay_gateway_agent_up{{agent=\"{agent}\"}} 1"),
        );
        assert!(page.contains(&format!(
            "promrelay_gateway_agent_scrape_duration_seconds{{agent=\"{agent}\"}} "
        )));
    }
    assert!(
        !page.contains("promrelay_gateway_agent_scrape_error"),
        "{page}"
    );
    // The gateway's own series come after the agents' families.
    assert!(page.find("go_goroutines").unwrap() < page.find("promrelay_gateway_agent_up").unwrap());
    assert_eq!(
        gw.gateway
            .metrics
            .scrapes(ScrapeRoute::Fanin, ScrapeOutcome::Ok),
        3
    );

    // OpenMetrics when the scraper prefers it, still valid.
    let (content_type, page) = gw
        .fanin(&[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )])
        .await;
    assert_eq!(content_type, Format::OpenMetrics.content_type());
    assert_valid(&page, Format::OpenMetrics);
    assert!(page.ends_with("# EOF\n"), "{page}");
    has_line(&page, "go_goroutines{agent=\"b\"} 2");
    has_line(&page, "promrelay_gateway_agent_up{agent=\"c\"} 1");
}

#[tokio::test]
async fn slow_agent_costs_only_its_own_samples() {
    let gw = TestGateway::start().await;
    let _fast = gw.agent("fast", page_router(goroutines(7))).await;
    let _slow = gw.agent("slow", stuck_router()).await;

    let (_, page) = gw
        .fanin(&[("x-prometheus-scrape-timeout-seconds", "1")])
        .await;
    assert_valid(&page, Format::Text);
    has_line(&page, "go_goroutines{agent=\"fast\"} 7");
    has_line(&page, "promrelay_gateway_agent_up{agent=\"fast\"} 1");
    has_line(&page, "promrelay_gateway_agent_up{agent=\"slow\"} 0");
    has_line(
        &page,
        "promrelay_gateway_agent_scrape_error{agent=\"slow\",kind=\"timeout\"} 1",
    );
    assert_eq!(
        gw.gateway
            .metrics
            .scrapes(ScrapeRoute::Fanin, ScrapeOutcome::Timeout),
        1
    );
}

#[tokio::test]
async fn disconnected_agent_shows_up_zero() {
    let gw = TestGateway::start().await;
    let _here = gw.agent("here", page_router(goroutines(1))).await;
    let gone = gw.agent("gone", page_router(goroutines(2))).await;
    gone.kill();
    gw.wait_route("gone", "disconnected", |route| {
        matches!(route, Route::Disconnected)
    })
    .await;

    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    has_line(&page, "go_goroutines{agent=\"here\"} 1");
    assert!(!page.contains("go_goroutines{agent=\"gone\"}"), "{page}");
    has_line(&page, "promrelay_gateway_agent_up{agent=\"gone\"} 0");
    has_line(
        &page,
        "promrelay_gateway_agent_scrape_error{agent=\"gone\",kind=\"disconnected\"} 1",
    );
    assert_eq!(
        gw.gateway
            .metrics
            .scrapes(ScrapeRoute::Fanin, ScrapeOutcome::Disconnected),
        1
    );
}

#[tokio::test]
async fn garbage_page_is_a_parse_error() {
    let gw = TestGateway::start().await;
    let _good = gw.agent("good", page_router(goroutines(4))).await;
    let _bad = gw
        .agent("bad", page_router("this is {{ not a metric page\n"))
        .await;

    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    has_line(&page, "go_goroutines{agent=\"good\"} 4");
    has_line(&page, "promrelay_gateway_agent_up{agent=\"good\"} 1");
    has_line(&page, "promrelay_gateway_agent_up{agent=\"bad\"} 0");
    has_line(
        &page,
        "promrelay_gateway_agent_scrape_error{agent=\"bad\",kind=\"parse\"} 1",
    );
    assert!(!page.contains("not a metric"), "{page}");
    assert_eq!(
        gw.gateway
            .metrics
            .scrapes(ScrapeRoute::Fanin, ScrapeOutcome::Error),
        1
    );
}

#[tokio::test]
async fn existing_agent_label_becomes_exported_agent() {
    let gw = TestGateway::start().await;
    let _outer = gw
        .agent(
            "outer",
            page_router("# TYPE relayed gauge\nrelayed{agent=\"inner\",job=\"x\"} 5\n"),
        )
        .await;

    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    let line = page
        .lines()
        .find(|line| line.starts_with("relayed{"))
        .unwrap_or_else(|| panic!("no relayed sample in\n{page}"));
    assert!(line.contains("exported_agent=\"inner\""), "{line}");
    assert!(line.contains("agent=\"outer\""), "{line}");
    assert!(line.ends_with(" 5"), "{line}");
}

#[tokio::test]
async fn non_200_and_status_kinds() {
    let gw = TestGateway::start().await;
    let _broken = gw
        .agent(
            "broken",
            Router::new().route(
                "/metrics",
                get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "source failed\n") }),
            ),
        )
        .await;

    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    has_line(
        &page,
        "promrelay_gateway_agent_scrape_error{agent=\"broken\",kind=\"status\"} 1",
    );
}

#[tokio::test]
async fn no_agents_is_an_empty_valid_page() {
    let gw = TestGateway::start().await;
    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    assert!(!page.contains("promrelay_gateway_agent_up{"), "{page}");
}

#[tokio::test]
async fn the_gateway_counts_fanin_scrapes() {
    let gw = TestGateway::start().await;
    let _a = gw.agent("a", page_router(goroutines(1))).await;
    let _ = gw.fanin(&[]).await;
    let response = guard(
        "own metrics",
        gw.http.get(format!("http://{}/metrics", gw.addr)).send(),
    )
    .await
    .unwrap();
    let own = response.text().await.unwrap();
    has_line(
        &own,
        "promrelay_gateway_scrapes_total{route=\"fanin\",outcome=\"ok\"} 1",
    );
}

#[tokio::test]
async fn too_large_page_is_dropped() {
    let config = GatewayConfig {
        fanin_max_body: 64,
        ..GatewayConfig::default()
    };
    let gw = TestGateway::start_with(config).await;
    let _small = gw.agent("small", page_router("small 1\n")).await;
    let _big = gw.agent("big", page_router(goroutines(1))).await;

    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    has_line(&page, "small{agent=\"small\"} 1");
    has_line(
        &page,
        "promrelay_gateway_agent_scrape_error{agent=\"big\",kind=\"too_large\"} 1",
    );
}

#[tokio::test]
async fn one_scrape_at_a_time_still_serves_everyone() {
    let config = GatewayConfig {
        fanin_concurrency: 1,
        ..GatewayConfig::default()
    };
    let gw = TestGateway::start_with(config).await;
    let mut agents = Vec::new();
    for name in ["a", "b", "c", "d"] {
        agents.push(gw.agent(name, page_router(goroutines(1))).await);
    }
    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    for name in ["a", "b", "c", "d"] {
        has_line(&page, &format!("go_goroutines{{agent=\"{name}\"}} 1"));
        has_line(
            &page,
            &format!("promrelay_gateway_agent_up{{agent=\"{name}\"}} 1"),
        );
    }
}

#[tokio::test]
async fn agents_get_the_time_left_and_a_text_accept() {
    let gw = TestGateway::start().await;
    let router = Router::new().route(
        "/metrics",
        get(|headers: axum::http::HeaderMap| async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let timeout = header("x-prometheus-scrape-timeout-seconds");
            let accept = header("accept");
            let page = format!(
                "seen_timeout_seconds {timeout}\nseen_text_accept {}\n",
                u8::from(accept.starts_with("text/plain"))
            );
            ([(CONTENT_TYPE, PROM_TEXT)], page)
        }),
    );
    let _echo = gw.agent("echo", router).await;

    let (_, page) = gw
        .fanin(&[("x-prometheus-scrape-timeout-seconds", "2")])
        .await;
    assert_valid(&page, Format::Text);
    has_line(&page, "seen_text_accept{agent=\"echo\"} 1");
    let timeout: f64 = page
        .lines()
        .find_map(|line| line.strip_prefix("seen_timeout_seconds{agent=\"echo\"} "))
        .unwrap_or_else(|| panic!("no timeout seen in\n{page}"))
        .parse()
        .unwrap();
    // The deadline less its margin (10 % of 2 s), less what has passed.
    assert!(timeout > 0.0 && timeout <= 1.8, "{timeout}");
}

fn gzip(text: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

/// An agent that gzips its page when asked, and says in the page whether
/// it was asked.
fn gzipping_router(body: &'static [u8]) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| async move {
            let asked = headers
                .get("accept-encoding")
                .is_some_and(|value| value.as_bytes() == b"gzip");
            let page = [
                body,
                format!("asked_for_gzip {}\n", u8::from(asked)).as_bytes(),
            ]
            .concat();
            if asked {
                (
                    [(CONTENT_TYPE, PROM_TEXT), (CONTENT_ENCODING, "gzip")],
                    gzip(&page),
                )
                    .into_response()
            } else {
                ([(CONTENT_TYPE, PROM_TEXT)], page).into_response()
            }
        }),
    )
}

#[tokio::test]
async fn pages_cross_the_tunnel_gzipped() {
    let gw = TestGateway::start().await;
    let _agent = gw
        .agent("zipped", gzipping_router(b"zipped_page 7\n"))
        .await;
    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    has_line(&page, "zipped_page{agent=\"zipped\"} 7");
    has_line(&page, "asked_for_gzip{agent=\"zipped\"} 1");
}

#[tokio::test]
async fn compression_can_be_turned_off() {
    let config = GatewayConfig {
        fanin_compression: false,
        ..GatewayConfig::default()
    };
    let gw = TestGateway::start_with(config).await;
    let _agent = gw.agent("plain", gzipping_router(b"plain_page 1\n")).await;
    let (_, page) = gw.fanin(&[]).await;
    has_line(&page, "asked_for_gzip{agent=\"plain\"} 0");
}

#[tokio::test]
async fn a_gzip_bomb_is_too_large_and_garbage_is_a_parse_error() {
    let config = GatewayConfig {
        fanin_max_body: 64 * 1024,
        ..GatewayConfig::default()
    };
    let gw = TestGateway::start_with(config).await;
    // 4 MiB of comment lines: a 4 KiB download that expands past the limit.
    let bomb: &'static [u8] = Box::leak(
        [b"# ".as_slice(), &vec![b'x'; 4 << 20], b"\n"]
            .concat()
            .into_boxed_slice(),
    );
    let _bomb = gw.agent("bomb", gzipping_router(bomb)).await;
    let garbage = Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(CONTENT_TYPE, PROM_TEXT), (CONTENT_ENCODING, "gzip")],
                "this is not gzip",
            )
        }),
    );
    let _garbage = gw.agent("garbage", garbage).await;
    let _fine = gw.agent("fine", page_router("fine 1\n")).await;

    let (_, page) = gw.fanin(&[]).await;
    assert_valid(&page, Format::Text);
    has_line(&page, "fine{agent=\"fine\"} 1");
    has_line(
        &page,
        "promrelay_gateway_agent_scrape_error{agent=\"bomb\",kind=\"too_large\"} 1",
    );
    has_line(
        &page,
        "promrelay_gateway_agent_scrape_error{agent=\"garbage\",kind=\"parse\"} 1",
    );
}
