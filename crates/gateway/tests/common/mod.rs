//! What the gateway's integration tests share: a hang guard, fake agents
//! that serve a router over a real tunnel, and waiting on the registry.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::header::AUTHORIZATION;
use axum::http::Request;
use axum::Router;
use gateway::{Gateway, Route};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tunnel::TunnelError;

/// The text format's content type.
pub(crate) const PROM_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Only a guard against hangs: nothing here should take anywhere near it.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it hangs.
pub(crate) async fn guard<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// Serves `gateway`'s router on a free loopback port. A request with
/// `Authorization: Bearer <cert_token>` gets a verified client certificate
/// with common name `cert_name`, standing in for mutual TLS (which the web
/// crate's own tests cover).
pub(crate) async fn serve_pretending_certs(
    gateway: Arc<Gateway>,
    cert_token: &'static str,
    cert_name: &'static str,
) -> SocketAddr {
    let app = gateway::router(gateway).layer(axum::middleware::map_request(
        move |mut request: Request<Body>| async move {
            let pretend = request
                .headers()
                .get(AUTHORIZATION)
                .is_some_and(|value| value == format!("Bearer {cert_token}").as_str());
            if pretend {
                let mut peer = web::PeerIdentity::default();
                peer.common_name = Some(cert_name.to_owned());
                request.extensions_mut().insert(peer);
            }
            request
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Waits (bounded) until the registry's route for `name` satisfies `done`.
pub(crate) async fn wait_route(
    gateway: &Gateway,
    name: &str,
    what: &str,
    done: impl Fn(&Route) -> bool,
) {
    for _ in 0..500 {
        if done(&gateway.registry.route(name)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("agent {name} never became {what}");
}

/// Waits until the agent called `name` is connected.
pub(crate) async fn wait_connected(gateway: &Gateway, name: &str) {
    wait_route(gateway, name, "connected", |route| {
        matches!(route, Route::Connected(_))
    })
    .await;
}

/// A fake agent serving its router over the tunnel on its own task.
pub(crate) struct FakeAgent {
    task: JoinHandle<Result<(), TunnelError>>,
    _shutdown: oneshot::Sender<()>,
}

impl FakeAgent {
    /// Dials the gateway's tunnel endpoint `url` and serves `router`.
    pub(crate) async fn connect(
        url: &str,
        token: &str,
        name: &str,
        router: Router,
    ) -> Result<FakeAgent, TunnelError> {
        let ws = guard("connect", tunnel::connect(url, token, name)).await?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tunnel::serve_over(ws, router, async move {
                let _ = shutdown_rx.await;
            })
            .await
        });
        Ok(FakeAgent {
            task,
            _shutdown: shutdown_tx,
        })
    }

    /// Kills the agent abruptly (its task, and with it the WebSocket).
    pub(crate) fn kill(&self) {
        self.task.abort();
    }

    /// Whether the agent's tunnel task has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the agent's tunnel task to end.
    pub(crate) async fn finished(self) -> Result<Result<(), TunnelError>, tokio::task::JoinError> {
        self.task.await
    }
}
