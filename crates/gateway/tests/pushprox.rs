//! The gateway as a PushProx proxy, in process: its router on 127.0.0.1,
//! a hand-written PushProx client that sends `/poll` and `/push` byte for
//! byte as the Go client does, and Prometheus's side played by an HTTP
//! client that uses the gateway as its proxy (absolute-form requests, as
//! `proxy_url` makes them).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{guard, FakeAgent};
use gateway::auth::sha256_hex;
use gateway::pushprox::ClientInfo;
use gateway::{AgentAuth, Gateway, GatewayConfig, Route};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const SHARED: &str = "shared-secret";
/// A bearer token the test server turns into a verified client
/// certificate with common name [`CERT_NAME`] (standing in for mutual TLS).
const CERT_TOKEN: &str = "pretend-cert";
const CERT_NAME: &str = "cert-client";
/// The per-agent token of [`CERT_NAME`], a second credential for that name.
const CERT_NAME_TOKEN: &str = "cert-client-own-token";
const PAGE: &str = "# TYPE node_load1 gauge\nnode_load1 0.25\n";
const PROM_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

struct TestGateway {
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    /// Prometheus: every request goes to the gateway as its proxy.
    prometheus: reqwest::Client,
}

impl TestGateway {
    async fn start() -> TestGateway {
        let auth = AgentAuth::new()
            .with_shared_token(SHARED)
            .unwrap()
            .with_agent_token_sha256(CERT_NAME, &sha256_hex(CERT_NAME_TOKEN))
            .unwrap()
            .with_client_certificates(true);
        let gateway = Arc::new(Gateway::new(GatewayConfig::default(), auth));
        let addr =
            common::serve_pretending_certs(Arc::clone(&gateway), CERT_TOKEN, CERT_NAME).await;
        let prometheus = reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(format!("http://{addr}")).unwrap())
            .build()
            .unwrap();
        TestGateway {
            gateway,
            addr,
            prometheus,
        }
    }

    /// Prometheus scrapes `url` through the gateway, with a scrape timeout.
    fn scrape(&self, url: &str, timeout: &str) -> JoinHandle<(u16, Option<String>, String)> {
        let request = self
            .prometheus
            .get(url)
            .header("Accept", "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
            .header("User-Agent", "Prometheus/2.42.0")
            .header("X-Prometheus-Scrape-Timeout-Seconds", timeout);
        tokio::spawn(async move {
            let response = guard("scrape", request.send()).await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap().to_owned());
            (status, content_type, response.text().await.unwrap())
        })
    }

    /// Sends `/poll` for `fqdn` as the Go client does; answers once the
    /// gateway does.
    fn poll(&self, fqdn: &str, authorization: Option<&str>) -> JoinHandle<RawResponse> {
        let request = go_post(self.addr, "/poll", authorization, fqdn.as_bytes());
        let addr = self.addr;
        tokio::spawn(async move { exchange(addr, &request).await })
    }

    /// Sends `/push` with `pushed` as its body, as the Go client does.
    async fn push(&self, authorization: Option<&str>, pushed: &[u8]) -> RawResponse {
        let request = go_post(self.addr, "/push", authorization, pushed);
        guard("push", exchange(self.addr, &request)).await
    }

    /// Waits (bounded) until a poll of `fqdn` is held.
    async fn wait_polling(&self, fqdn: &str) {
        self.wait_client(fqdn, "polling", |client| client.polling)
            .await;
    }

    /// Waits (bounded) until the coordinator's view of `fqdn` satisfies
    /// `done`.
    async fn wait_client(&self, fqdn: &str, what: &str, done: impl Fn(&ClientInfo) -> bool) {
        for _ in 0..500 {
            let clients = self.gateway.pushprox.clients();
            if clients.iter().any(|c| c.name == fqdn && done(c)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("PushProx client {fqdn} never became {what}");
    }

    async fn get_text(&self, path: &str) -> (u16, String) {
        let response = guard(
            path,
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(format!("http://{}{path}", self.addr))
                .send(),
        )
        .await
        .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

fn basic(user: &str, password: &str) -> Option<String> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Basic {encoded}"))
}

/// A `POST` as Go's `http.Client.Post(url, "", body)` writes it, with the
/// `Authorization` Go derives from user information in the URL.
fn go_post(addr: SocketAddr, path: &str, authorization: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str("Content-Type: \r\nAccept-Encoding: gzip\r\n\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    request
}

/// A response read off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn text(&self) -> &str {
        core::str::from_utf8(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` on a new connection and reads one response (framed by
/// `Content-Length`, which is how the gateway answers `/poll` and `/push`).
async fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let parsed = {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf).unwrap() {
                httparse::Status::Complete(head) => Some((
                    head,
                    response.code.unwrap(),
                    response
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>(),
                )),
                httparse::Status::Partial => None,
            }
        };
        if let Some((head, status, headers)) = parsed {
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            while buf.len() < head + length {
                assert!(stream.read_buf(&mut buf).await.unwrap() > 0, "body cut");
            }
            return RawResponse {
                status,
                headers,
                body: buf[head..head + length].to_vec(),
            };
        }
        assert!(
            stream.read_buf(&mut buf).await.unwrap() > 0,
            "connection closed before a response"
        );
    }
}

/// The `Id` of a scrape request handed out by `/poll`.
fn scrape_id(request: &str) -> String {
    request
        .lines()
        .find_map(|line| line.strip_prefix("Id: "))
        .unwrap_or_else(|| panic!("no Id in {request:?}"))
        .to_owned()
}

/// The response a Go client pushes for a page served with a length.
fn go_page_response(id: &str, page: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {PROM_TEXT}\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
         Id: {id}\r\nX-Prometheus-Scrape-Timeout: 4.998000\r\n\r\n{page}",
        page.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn a_pushprox_client_registers_and_is_scraped_through_the_gateway() {
    let gw = TestGateway::start().await;
    let poll = gw.poll("node-1", basic("node-1", SHARED).as_deref());
    gw.wait_polling("node-1").await;

    // Listed for discovery, in PushProx's shape.
    let (status, clients) = gw.get_text("/clients").await;
    assert_eq!(status, 200);
    let clients: serde_json::Value = serde_json::from_str(&clients).unwrap();
    assert_eq!(
        clients,
        serde_json::json!([{"targets": ["node-1"], "labels": null}])
    );

    // Prometheus scrapes it as proxy_url; the held poll gets the scrape
    // request as Go's WriteProxy writes it.
    let scrape = gw.scrape("http://node-1:9100/metrics?_scheme=https&module=x", "5");
    let handed = guard("poll answer", poll).await.unwrap();
    assert_eq!(handed.status, 200, "{handed:?}");
    let request = handed.text();
    assert!(
        request.starts_with(
            "GET http://node-1:9100/metrics?_scheme=https&module=x HTTP/1.1\r\n\
             Host: node-1:9100\r\n\
             User-Agent: Prometheus/2.42.0\r\n\
             Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
        ),
        "{request:?}"
    );
    assert!(request.ends_with("\r\n\r\n"), "{request:?}");
    let timeout: f64 = request
        .lines()
        .find_map(|line| line.strip_prefix("X-Prometheus-Scrape-Timeout-Seconds: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(timeout > 0.0 && timeout < 5.0, "{timeout}");
    let id = scrape_id(request);

    // The client pushes the page; Prometheus gets it.
    let pushed = gw
        .push(
            basic("node-1", SHARED).as_deref(),
            &go_page_response(&id, PAGE),
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    let (status, content_type, body) = guard("scrape", scrape).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some(PROM_TEXT));
    assert_eq!(body, PAGE);

    // The next scrape comes before the client polls again: it waits for
    // the poll. The client's local scrape fails, and it pushes the error
    // the way the Go client builds it (HTTP/0.0, no length, chunk-free).
    let scrape = gw.scrape("http://node-1:9100/metrics", "5");
    gw.wait_client("node-1", "a queued scrape", |client| client.scrapes == 1)
        .await;
    let handed = guard(
        "poll",
        gw.poll("node-1", basic("node-1", SHARED).as_deref()),
    )
    .await
    .unwrap();
    assert_eq!(handed.status, 200, "{handed:?}");
    let id = scrape_id(handed.text());
    let failure = format!(
        "HTTP/0.0 500 Internal Server Error\r\nId: {id}\r\nX-Prometheus-Scrape-Timeout: 4.9\r\n\r\n\
         failed to scrape http://node-1:9100/metrics: connection refused"
    );
    let pushed = gw
        .push(basic("node-1", SHARED).as_deref(), failure.as_bytes())
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    let (status, _, body) = guard("scrape", scrape).await.unwrap();
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "failed to scrape http://node-1:9100/metrics: connection refused"
    );

    // A chunked page (an exporter that streamed it) arrives whole.
    let poll = gw.poll("node-1", basic("node-1", SHARED).as_deref());
    gw.wait_polling("node-1").await;
    let scrape = gw.scrape("http://node-1:9100/metrics", "5");
    let handed = guard("poll answer", poll).await.unwrap();
    let id = scrape_id(handed.text());
    let chunked = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: {PROM_TEXT}\r\nId: {id}\r\n\r\n\
         18\r\n# TYPE node_load1 gauge\n\r\n10\r\nnode_load1 0.25\n\r\n0\r\n\r\n"
    );
    assert_eq!(
        gw.push(basic("node-1", SHARED).as_deref(), chunked.as_bytes())
            .await
            .status,
        200
    );
    let (status, _, body) = guard("scrape", scrape).await.unwrap();
    assert_eq!((status, body.as_str()), (200, PAGE));
}

#[tokio::test]
async fn a_newer_poll_makes_the_older_answer_408() {
    let gw = TestGateway::start().await;
    let older = gw.poll("node-1", basic("node-1", SHARED).as_deref());
    gw.wait_polling("node-1").await;
    let newer = gw.poll("node-1", basic("node-1", SHARED).as_deref());
    let older = guard("older poll", older).await.unwrap();
    assert_eq!(older.status, 408, "{older:?}");
    assert!(older.text().contains("newer poll"), "{older:?}");
    // The newer one is the one that gets the scrape.
    let scrape = gw.scrape("http://node-1:9100/metrics", "5");
    let handed = guard("newer poll", newer).await.unwrap();
    assert_eq!(handed.status, 200);
    assert_eq!(handed.header("content-type"), Some("message/http"));
    let id = scrape_id(handed.text());
    gw.push(
        basic("node-1", SHARED).as_deref(),
        &go_page_response(&id, PAGE),
    )
    .await;
    assert_eq!(guard("scrape", scrape).await.unwrap().0, 200);
}

#[tokio::test]
async fn an_unknown_client_is_404_at_once_and_a_silent_one_504() {
    let gw = TestGateway::start().await;
    let (status, _, body) = guard("scrape", gw.scrape("http://nobody:9100/metrics", "30"))
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(body, "no agent named nobody\n");

    // Known (it polled once), but it never polls again: the scrape waits
    // for a poll until its deadline, then says what did not happen.
    let poll = gw.poll("quiet", basic("quiet", SHARED).as_deref());
    gw.wait_polling("quiet").await;
    let first = gw.scrape("http://quiet:9100/metrics", "1");
    let handed = guard("poll answer", poll).await.unwrap();
    assert_eq!(handed.status, 200);
    // The first scrape is never pushed; the second never handed out.
    let (status, _, body) = guard("first scrape", first).await.unwrap();
    assert_eq!(status, 504);
    assert!(
        body.contains("PushProx client quiet took the scrape"),
        "{body}"
    );
    let (status, _, body) = guard(
        "second scrape",
        gw.scrape("http://quiet:9100/metrics", "0.5"),
    )
    .await
    .unwrap();
    assert_eq!(status, 504);
    assert!(
        body.contains("PushProx client quiet did not poll"),
        "{body}"
    );
}

#[tokio::test]
async fn polls_without_valid_credentials_are_401() {
    let gw = TestGateway::start().await;
    for authorization in [
        None,
        basic("node-1", "wrong"),
        bearer("wrong"),
        // The token is right but the user names another client.
        basic("node-2", SHARED),
    ] {
        let answer = guard("poll", gw.poll("node-1", authorization.as_deref()))
            .await
            .unwrap();
        assert_eq!(answer.status, 401, "{authorization:?}: {answer:?}");
    }
    // A name with its own token is reserved to it.
    let answer = guard(
        "poll",
        gw.poll(CERT_NAME, basic(CERT_NAME, SHARED).as_deref()),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 401, "{answer:?}");
    // Not an FQDN.
    let answer = guard("poll", gw.poll("a/b", basic("", SHARED).as_deref()))
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(gw.gateway.pushprox.clients().is_empty());
    assert_eq!(gw.get_text("/clients").await.1, "[]");
    let (_, metrics) = gw.get_text("/metrics").await;
    assert!(
        metrics.contains("\npromrelay_gateway_auth_failures_total 5\n"),
        "{metrics}"
    );

    // A Bearer token (no user) and an empty user are fine.
    let poll = gw.poll("node-1", bearer(SHARED).as_deref());
    gw.wait_polling("node-1").await;
    drop(poll);
    let poll = gw.poll("node-2", basic("", SHARED).as_deref());
    gw.wait_polling("node-2").await;
    drop(poll);
}

#[tokio::test]
async fn pushes_are_accepted_only_for_scrapes_handed_to_the_same_client() {
    let gw = TestGateway::start().await;
    let poll = gw.poll("node-1", basic("node-1", SHARED).as_deref());
    gw.wait_polling("node-1").await;
    let scrape = gw.scrape("http://node-1:9100/metrics", "5");
    let handed = guard("poll answer", poll).await.unwrap();
    let id = scrape_id(handed.text());

    // An id nobody handed out.
    let unknown = "0b9c4a6e-2f7d-4c1e-9a55-3d2f1e8b7c60";
    let answer = gw
        .push(
            basic("node-1", SHARED).as_deref(),
            &go_page_response(unknown, PAGE),
        )
        .await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(answer.text().contains(unknown), "{answer:?}");
    // No credentials; wrong token; no Id at all; not an HTTP response.
    let answer = gw.push(None, &go_page_response(&id, PAGE)).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = gw
        .push(
            basic("node-1", "wrong").as_deref(),
            &go_page_response(&id, PAGE),
        )
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    let answer = gw
        .push(
            basic("node-1", SHARED).as_deref(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )
        .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    let answer = gw
        .push(basic("node-1", SHARED).as_deref(), b"not http")
        .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    // Another client holding a valid credential may not answer it.
    let answer = gw
        .push(
            basic("node-2", SHARED).as_deref(),
            &go_page_response(&id, "forged 1\n"),
        )
        .await;
    assert_eq!(answer.status, 403, "{answer:?}");
    let answer = gw
        .push(
            bearer(CERT_TOKEN).as_deref(),
            &go_page_response(&id, "forged 1\n"),
        )
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");

    // None of that disturbed the scrape: the real push answers it, once.
    let answer = gw
        .push(
            basic("node-1", SHARED).as_deref(),
            &go_page_response(&id, PAGE),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let (status, _, body) = guard("scrape", scrape).await.unwrap();
    assert_eq!((status, body.as_str()), (200, PAGE));
    let again = gw
        .push(
            basic("node-1", SHARED).as_deref(),
            &go_page_response(&id, PAGE),
        )
        .await;
    assert_eq!(again.status, 404, "{again:?}");
}

#[tokio::test]
async fn one_name_one_owner_across_tunnels_and_pushprox() {
    let gw = TestGateway::start().await;
    let tunnel_url = format!("http://{}/tunnel", gw.addr);
    let router = || {
        axum::Router::new().route(
            "/ports/{port}/{*path}",
            axum::routing::get(|| async { "tunnel 1\n" }),
        )
    };
    // A tunnel agent holds the name with its own token: a PushProx client
    // with another valid credential (a client certificate) may not poll.
    let agent = FakeAgent::connect(&tunnel_url, CERT_NAME_TOKEN, CERT_NAME, router())
        .await
        .unwrap();
    common::wait_connected(&gw.gateway, CERT_NAME).await;
    let answer = guard("poll", gw.poll(CERT_NAME, bearer(CERT_TOKEN).as_deref()))
        .await
        .unwrap();
    assert_eq!(answer.status, 409, "{answer:?}");
    // The same credential may; the tunnel still wins the scrapes.
    let poll = gw.poll(CERT_NAME, basic(CERT_NAME, CERT_NAME_TOKEN).as_deref());
    gw.wait_polling(CERT_NAME).await;
    let (status, _, body) = guard(
        "scrape",
        gw.scrape(&format!("http://{CERT_NAME}:9100/metrics"), "5"),
    )
    .await
    .unwrap();
    assert_eq!((status, body.as_str()), (200, "tunnel 1\n"));

    // Once the tunnel is gone the PushProx client is scraped, and while
    // it is known a tunnel of the other credential may not take the name.
    agent.kill();
    common::wait_route(&gw.gateway, CERT_NAME, "disconnected", |route| {
        !matches!(route, Route::Connected(_))
    })
    .await;
    let scrape = gw.scrape(&format!("http://{CERT_NAME}:9100/metrics"), "5");
    let handed = guard("poll answer", poll).await.unwrap();
    assert_eq!(handed.status, 200, "{handed:?}");
    let id = scrape_id(handed.text());
    gw.push(
        basic(CERT_NAME, CERT_NAME_TOKEN).as_deref(),
        &go_page_response(&id, PAGE),
    )
    .await;
    let (status, _, body) = guard("scrape", scrape).await.unwrap();
    assert_eq!((status, body.as_str()), (200, PAGE));
    let refused = FakeAgent::connect(&tunnel_url, CERT_TOKEN, CERT_NAME, router()).await;
    match refused {
        Err(tunnel::TunnelError::Rejected { status }) => assert_eq!(status.as_u16(), 409),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("tunnel of another credential accepted"),
    }
}
