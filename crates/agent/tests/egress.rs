//! Egress mode end to end, in process: a minimal fake gateway (axum with a
//! `/tunnel` route built on `tunnel::TunnelUpgrade`) on 127.0.0.1, and an
//! agent running `run_egress` / `Egress::run` against it.

use core::future::Future;
use core::time::Duration;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use agent::config::Config;
use agent::egress::{run_egress, Egress, EgressConfig, EgressStatus};
use agent::service::Agent;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle};
use tunnel::{TunnelClient, TunnelUpgrade};

const TOKEN: &str = "egress-s3cret";
const AGENT: &str = "edge-1";
/// Only a guard against hangs: nothing here should take anywhere near it.
const HANG_GUARD: Duration = Duration::from_secs(20);
const EXPECTED: &str = "egress_value{exporter=\"a\"} 1";

async fn guard<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

// ---------- the fake gateway ----------

#[derive(Clone)]
struct GatewayState {
    token: &'static str,
    clients: mpsc::UnboundedSender<(Option<String>, TunnelClient)>,
    /// The tasks driving accepted tunnels, aborted when the gateway stops.
    tunnels: Arc<Mutex<Vec<AbortHandle>>>,
}

async fn tunnel_route(State(state): State<GatewayState>, upgrade: TunnelUpgrade) -> Response {
    if upgrade.bearer_token() != Some(state.token) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let name = upgrade.agent_name().map(str::to_owned);
    let (response, pending) = upgrade.accept();
    let clients = state.clients.clone();
    let task = tokio::spawn(async move {
        let Ok((client, connection)) = pending.establish().await else {
            return;
        };
        let _ = clients.send((name, client));
        let _ = connection.await;
    });
    state.tunnels.lock().unwrap().push(task.abort_handle());
    response
}

struct Gateway {
    addr: SocketAddr,
    server: JoinHandle<()>,
    tunnels: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Gateway {
    /// Starts a gateway on `addr` (port 0 for any) that accepts `token`.
    async fn start(
        addr: SocketAddr,
        token: &'static str,
    ) -> (
        Gateway,
        mpsc::UnboundedReceiver<(Option<String>, TunnelClient)>,
    ) {
        let (clients, accepted) = mpsc::unbounded_channel();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/tunnel", get(tunnel_route))
            .with_state(GatewayState {
                token,
                clients,
                tunnels: Arc::clone(&tunnels),
            });
        let listener = guard("binding the gateway's port", bind(addr)).await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (
            Gateway {
                addr,
                server,
                tunnels,
            },
            accepted,
        )
    }

    fn url(&self) -> String {
        format!("http://{}/tunnel", self.addr)
    }

    /// Stops listening and drops every tunnel; returns once the port is
    /// free again.
    async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        for tunnel in self.tunnels.lock().unwrap().drain(..) {
            tunnel.abort();
        }
    }
}

/// Binds `addr`, retrying while the port is still held by the stopped
/// gateway.
async fn bind(addr: SocketAddr) -> TcpListener {
    loop {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr).and_then(|()| socket.listen(64)) {
            Ok(listener) => return listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

// ---------- the agent ----------

fn start_agent() -> Arc<Agent> {
    let yaml = "sources:\n- name: a\n  exec: {command: /bin/echo, args: ['egress_value 1']}\n";
    Agent::start(Box::new(move || {
        Config::from_yaml(yaml, Path::new("agent.yml"))
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn egress_config(url: String, token: &str) -> EgressConfig {
    EgressConfig {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(5),
        ..EgressConfig::new(url, AGENT, token)
    }
}

/// Runs the egress loop on a task; returns its status, the shutdown
/// trigger and the task.
fn spawn_egress(
    agent: &Arc<Agent>,
    config: EgressConfig,
) -> (Arc<EgressStatus>, oneshot::Sender<()>, JoinHandle<()>) {
    let egress = Egress::new(config).unwrap();
    let status = egress.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(egress.run(Arc::clone(agent), async move {
        let _ = stopped.await;
    }));
    (status, stop, task)
}

async fn scrape(client: &TunnelClient) -> (StatusCode, String) {
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = guard("a scrape over the tunnel", client.request(request))
        .await
        .unwrap();
    let status = response.status();
    let body = guard("the scrape's body", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn assert_scrape_works(client: &TunnelClient) {
    let (status, page) = scrape(client).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(EXPECTED), "{EXPECTED} missing from:\n{page}");
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    guard(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

// ---------- the tests ----------

#[tokio::test(flavor = "multi_thread")]
async fn scrapes_through_the_tunnel_and_reconnects_after_a_gateway_restart() {
    let agent = start_agent();
    let (gateway, mut accepted) = Gateway::start(([127, 0, 0, 1], 0).into(), TOKEN).await;
    let addr = gateway.addr;
    let (status, stop, task) = spawn_egress(&agent, egress_config(gateway.url(), TOKEN));

    let (name, client) = guard("the first tunnel", accepted.recv()).await.unwrap();
    assert_eq!(name.as_deref(), Some(AGENT));
    assert_scrape_works(&client).await;
    wait_until("the status to say connected", || status.connected()).await;
    assert_eq!(status.connects(), 1);

    // The gateway goes away and comes back on the same port.
    drop(client);
    gateway.stop().await;
    wait_until("the agent to notice the tunnel is lost", || {
        !status.connected()
    })
    .await;
    let (gateway, mut accepted) = Gateway::start(addr, TOKEN).await;
    let (_, client) = guard("the tunnel after the restart", accepted.recv())
        .await
        .unwrap();
    assert_scrape_works(&client).await;
    wait_until("the status to say connected again", || status.connected()).await;
    assert_eq!(status.connects(), 2);
    assert!(status.disconnects() >= 1);

    // Shutdown closes the live tunnel and ends the loop.
    stop.send(()).unwrap();
    guard("run_egress to end on shutdown", task).await.unwrap();
    assert!(!status.connected());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_retried_with_backoff_and_never_connects() {
    let agent = start_agent();
    let (gateway, mut accepted) = Gateway::start(([127, 0, 0, 1], 0).into(), TOKEN).await;
    let (status, stop, task) = spawn_egress(&agent, egress_config(gateway.url(), "wrong"));

    wait_until("two refused dials", || status.failures() >= 2).await;
    assert!(!status.connected());
    assert_eq!(status.connects(), 0);
    assert!(accepted.try_recv().is_err(), "a tunnel was accepted");

    // Shutdown also ends the loop while it waits out a backoff delay.
    stop.send(()).unwrap();
    guard("run_egress to end on shutdown", task).await.unwrap();
    assert_eq!(status.connects(), 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_run_egress_while_connected_and_while_waiting() {
    let agent = start_agent();
    let (gateway, mut accepted) = Gateway::start(([127, 0, 0, 1], 0).into(), TOKEN).await;

    // Connected: the tunnel is closed gracefully and the loop returns.
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_egress(
        Arc::clone(&agent),
        egress_config(gateway.url(), TOKEN),
        async move {
            let _ = stopped.await;
        },
    ));
    let (_, client) = guard("the tunnel", accepted.recv()).await.unwrap();
    assert_scrape_works(&client).await;
    stop.send(()).unwrap();
    guard("run_egress to end on shutdown", task)
        .await
        .unwrap()
        .unwrap();
    wait_until("the gateway to see the tunnel closed", || {
        client.is_closed()
    })
    .await;

    // Waiting out a long backoff after a refusal: shutdown does not wait
    // for the delay to pass.
    let mut config = egress_config(gateway.url(), "wrong");
    config.backoff_min = Duration::from_secs(3600);
    config.backoff_max = Duration::from_secs(3600);
    let (status, stop, task) = spawn_egress(&agent, config);
    wait_until("the first refusal", || status.failures() >= 1).await;
    stop.send(()).unwrap();
    guard("run_egress to end during a backoff delay", task)
        .await
        .unwrap();
    assert_eq!(status.failures(), 1);

    // Dialing an address that never answers: shutdown interrupts the dial.
    let (status, stop, task) = spawn_egress(
        &agent,
        egress_config("http://10.255.255.1:9/tunnel".to_owned(), TOKEN),
    );
    stop.send(()).unwrap();
    guard("run_egress to end while dialing", task)
        .await
        .unwrap();
    assert_eq!(status.connects(), 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_egress_refuses_an_unusable_configuration() {
    let agent = start_agent();
    let mut config = egress_config("ftp://gateway/tunnel".to_owned(), TOKEN);
    let error = run_egress(Arc::clone(&agent), config.clone(), async {})
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("ftp://gateway/tunnel"),
        "{error}"
    );
    config.gateway_url = "http://gateway/tunnel".to_owned();
    config.backoff_min = Duration::ZERO;
    assert!(run_egress(agent, config, async {}).await.is_err());
}
