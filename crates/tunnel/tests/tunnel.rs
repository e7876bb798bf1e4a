//! The tunnel end to end, in process: a gateway (axum, `/tunnel` route) and
//! an agent (`connect` + `serve_over` a router) on 127.0.0.1.

use core::time::Duration;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Barrier, Semaphore};
use tokio::task::JoinHandle;
use tunnel::{TunnelClient, TunnelError, TunnelUpgrade};

const TOKEN: &str = "s3cret";
const AGENT: &str = "agent-7";
const BIG_LEN: usize = 8 * 1024 * 1024;
const CONCURRENT: usize = 32;
/// Only a guard against hangs: nothing here should take anywhere near it.
const HANG_GUARD: Duration = Duration::from_secs(10);

async fn guard<F: core::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

// ---------- the gateway ----------

/// What the gateway's `/tunnel` route hands to the test for each tunnel.
struct Accepted {
    client: TunnelClient,
    agent: Option<String>,
    /// Resolves with the gateway's connection result when the tunnel ends.
    ended: oneshot::Receiver<Result<(), TunnelError>>,
}

async fn tunnel_route(
    State(accepted): State<mpsc::UnboundedSender<Accepted>>,
    upgrade: TunnelUpgrade,
) -> Response {
    if upgrade.bearer_token() != Some(TOKEN) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let agent = upgrade.agent_name().map(str::to_owned);
    upgrade.on_upgrade(move |client, connection| async move {
        let (ended_tx, ended) = oneshot::channel();
        let _ = accepted.send(Accepted {
            client,
            agent,
            ended,
        });
        let _ = ended_tx.send(connection.await);
    })
}

async fn start_gateway(
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, mpsc::UnboundedReceiver<Accepted>) {
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/tunnel", get(tunnel_route))
        .with_state(accepted_tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match tls {
        None => {
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            (format!("http://{addr}/tunnel"), accepted_rx)
        }
        Some(acceptor) => {
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let acceptor = acceptor.clone();
                    let app = app.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                    });
                }
            });
            (
                format!("https://localhost:{}/tunnel", addr.port()),
                accepted_rx,
            )
        }
    }
}

// ---------- the agent ----------

#[derive(Clone)]
struct AgentState {
    barrier: Arc<Barrier>,
    slow_entered: mpsc::UnboundedSender<()>,
    slow_release: Arc<Semaphore>,
}

fn big_byte(i: usize) -> u8 {
    ((i * 31) ^ (i >> 16)) as u8
}

fn big_body() -> Body {
    let chunks = (0..BIG_LEN).step_by(100_000).map(|start| {
        let end = (start + 100_000).min(BIG_LEN);
        Ok::<_, std::io::Error>(Bytes::from((start..end).map(big_byte).collect::<Vec<u8>>()))
    });
    Body::from_stream(futures::stream::iter(chunks))
}

fn agent_router(state: AgentState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|headers: HeaderMap| async move {
                let seen = headers
                    .get("x-scrape")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                (
                    [
                        ("content-type", "text/plain; version=0.0.4"),
                        ("x-agent", "yes"),
                    ],
                    format!("# TYPE up gauge\nup 1\nscrape_header{{value=\"{seen}\"}} 1\n"),
                )
            }),
        )
        .route("/big", get(|| async { big_body() }))
        .route(
            "/barrier/{index}",
            get(
                |State(state): State<AgentState>, Path(index): Path<usize>| async move {
                    state.barrier.wait().await;
                    format!("done {index}")
                },
            ),
        )
        .route(
            "/slow",
            get(|State(state): State<AgentState>| async move {
                let _ = state.slow_entered.send(());
                state.slow_release.acquire().await.unwrap().forget();
                "slow"
            }),
        )
        .route("/fast", get(|| async { "fast" }))
        .route("/echo", post(|body: Body| async move { body }))
        .with_state(state)
}

struct Agent {
    task: JoinHandle<Result<(), TunnelError>>,
    stop: Option<oneshot::Sender<()>>,
    slow_entered: mpsc::UnboundedReceiver<()>,
    slow_release: Arc<Semaphore>,
}

async fn start_agent(url: &str, options: &tunnel::ConnectOptions) -> Agent {
    let (slow_entered_tx, slow_entered) = mpsc::unbounded_channel();
    let slow_release = Arc::new(Semaphore::new(0));
    let router = agent_router(AgentState {
        barrier: Arc::new(Barrier::new(CONCURRENT)),
        slow_entered: slow_entered_tx,
        slow_release: Arc::clone(&slow_release),
    });
    let ws = guard("connect", tunnel::connect_with(url, TOKEN, AGENT, options))
        .await
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(tunnel::serve_over(ws, router, async move {
        let _ = stopped.await;
    }));
    Agent {
        task,
        stop: Some(stop),
        slow_entered,
        slow_release,
    }
}

/// A gateway and an agent with the tunnel between them established.
async fn setup() -> (Agent, Accepted) {
    let (url, mut accepted) = start_gateway(None).await;
    let agent = start_agent(&url, &tunnel::ConnectOptions::default()).await;
    let tunnel = guard("accept", accepted.recv()).await.unwrap();
    (agent, tunnel)
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn body_bytes(response: http::Response<hyper::body::Incoming>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

// ---------- tests ----------

#[tokio::test]
async fn scrape_through_the_tunnel() {
    let (_agent, tunnel) = setup().await;
    assert_eq!(tunnel.agent.as_deref(), Some(AGENT));
    assert!(!tunnel.client.is_closed());

    let request = Request::get("/metrics")
        .header("x-scrape", "forwarded")
        .body(Body::empty())
        .unwrap();
    let response = guard("request", tunnel.client.request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    assert_eq!(response.headers()["x-agent"], "yes");
    let body = guard("body", body_bytes(response)).await;
    assert_eq!(
        &body[..],
        b"# TYPE up gauge\nup 1\nscrape_header{value=\"forwarded\"} 1\n"
    );

    // An absolute URI works too, and unknown paths are the router's 404.
    let response = guard(
        "request",
        tunnel.client.request(get_request("http://whatever:1/nope")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn request_body_streams_to_the_agent() {
    let (_agent, tunnel) = setup().await;
    let payload: Vec<u8> = (0..3 * 1024 * 1024).map(big_byte).collect();
    let request = Request::post("/echo")
        .body(Body::from(payload.clone()))
        .unwrap();
    let response = guard("request", tunnel.client.request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = guard("body", body_bytes(response)).await;
    assert!(body[..] == payload[..], "echoed body differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_body_streams_byte_exact() {
    let (_agent, tunnel) = setup().await;
    let response = guard("request", tunnel.client.request(get_request("/big")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut offset = 0;
    while let Some(frame) = guard("frame", body.frame()).await {
        let frame = frame.unwrap();
        let Some(data) = frame.data_ref() else {
            continue;
        };
        for (i, byte) in data.iter().enumerate() {
            assert_eq!(*byte, big_byte(offset + i), "byte {} differs", offset + i);
        }
        offset += data.len();
    }
    assert_eq!(offset, BIG_LEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_multiplexed() {
    let (_agent, tunnel) = setup().await;
    // Each handler waits at a barrier for all the others: they can only
    // complete if all requests are in flight on the one tunnel at once.
    let requests = (0..CONCURRENT).map(|index| {
        let client = tunnel.client.clone();
        tokio::spawn(async move {
            let response = client
                .request(get_request(&format!("/barrier/{index}")))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body = body_bytes(response).await;
            assert_eq!(body, format!("done {index}"));
        })
    });
    let results = guard("concurrent requests", futures::future::join_all(requests)).await;
    for result in results {
        result.unwrap();
    }
}

#[tokio::test]
async fn slow_request_does_not_block_fast_one() {
    let (mut agent, tunnel) = setup().await;
    let client = tunnel.client.clone();
    let slow = tokio::spawn(async move {
        let response = client.request(get_request("/slow")).await.unwrap();
        body_bytes(response).await
    });
    // The slow handler is running and will not finish until released.
    guard("slow handler start", agent.slow_entered.recv())
        .await
        .unwrap();

    let response = guard("fast request", tunnel.client.request(get_request("/fast")))
        .await
        .unwrap();
    assert_eq!(guard("fast body", body_bytes(response)).await, "fast");
    assert!(!slow.is_finished(), "slow request finished before release");

    agent.slow_release.add_permits(1);
    assert_eq!(guard("slow request", slow).await.unwrap(), "slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_drop_ends_the_tunnel() {
    let (agent, tunnel) = setup().await;
    let response = guard("request", tunnel.client.request(get_request("/fast")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // An in-flight request when the agent vanishes must fail, not hang.
    let client = tunnel.client.clone();
    let in_flight = tokio::spawn(async move { client.request(get_request("/slow")).await });
    let mut slow_entered = agent.slow_entered;
    guard("slow handler start", slow_entered.recv())
        .await
        .unwrap();

    agent.task.abort();
    let _ = agent.task.await;

    let ended = guard("gateway connection end", tunnel.ended).await.unwrap();
    drop(ended); // Ok or Err: the tunnel broke; what matters is that it ended.
    let in_flight = guard("in-flight request", in_flight).await.unwrap();
    assert!(in_flight.is_err(), "in-flight request did not fail");

    assert!(tunnel.client.is_closed());
    let error = guard(
        "request after drop",
        tunnel.client.request(get_request("/fast")),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, TunnelError::Closed | TunnelError::Http2(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn agent_shutdown_is_graceful() {
    let (mut agent, tunnel) = setup().await;
    let client = tunnel.client.clone();
    let slow = tokio::spawn(async move {
        let response = client.request(get_request("/slow")).await.unwrap();
        body_bytes(response).await
    });
    guard("slow handler start", agent.slow_entered.recv())
        .await
        .unwrap();

    // Shut down while a request is in flight: it still completes.
    agent.stop.take().unwrap().send(()).unwrap();
    agent.slow_release.add_permits(1);
    assert_eq!(guard("slow request", slow).await.unwrap(), "slow");

    guard("agent serve_over", agent.task)
        .await
        .unwrap()
        .unwrap();
    guard("gateway connection end", tunnel.ended)
        .await
        .unwrap()
        .unwrap();
    assert!(tunnel.client.is_closed());
}

#[tokio::test]
async fn wrong_token_is_rejected() {
    let (url, _accepted) = start_gateway(None).await;
    let error = guard("connect", tunnel::connect(&url, "wrong", AGENT))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TunnelError::Rejected {
                status: StatusCode::UNAUTHORIZED
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn plain_request_to_the_tunnel_route_is_a_bad_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (url, _accepted) = start_gateway(None).await;
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/tunnel")
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /tunnel HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    guard("answer", tcp.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[tokio::test]
async fn invalid_urls_are_refused() {
    for url in ["ftp://gw/tunnel", "gw:9437/tunnel", "not a url"] {
        let error = tunnel::connect(url, TOKEN, AGENT).await.unwrap_err();
        assert!(
            matches!(error, TunnelError::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_over_tls() {
    let ca = testkit::tls::Ca::new("tunnel test CA");
    let server = ca.server();
    let certs = rustls_pemfile::certs(&mut server.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut server.key.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let options = tunnel::ConnectOptions::default().with_tls_config(Arc::new(client_config));

    let (url, mut accepted) = start_gateway(Some(acceptor)).await;
    assert!(url.starts_with("https://"));
    let _agent = start_agent(&url, &options).await;
    let tunnel = guard("accept", accepted.recv()).await.unwrap();
    let response = guard("request", tunnel.client.request(get_request("/big")))
        .await
        .unwrap();
    let body = guard("body", body_bytes(response)).await;
    assert_eq!(body.len(), BIG_LEN);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, byte)| *byte == big_byte(i)));

    // The default configuration (public roots) does not trust the test CA.
    let error = guard("connect", tunnel::connect(&url, TOKEN, AGENT))
        .await
        .unwrap_err();
    assert!(matches!(error, TunnelError::WebSocket(_)), "{error:?}");
}
