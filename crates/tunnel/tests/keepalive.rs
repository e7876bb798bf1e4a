//! Dead tunnels are found while nobody scrapes: before its first request
//! the gateway holds only the WebSocket and pings over it, and the agent
//! counts a gateway it has not heard from for `SILENCE_LIMIT` as gone.
//! Time is paused and advances by itself whenever everything waits.

use core::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::StreamExt as _;
use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake;
use tunnel::{TunnelError, TunnelUpgrade, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, SILENCE_LIMIT};

/// Fails a test that would otherwise wait forever (paused time makes the
/// wait itself instant).
async fn guard<F: core::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(600), future)
        .await
        .expect("waited ten minutes")
}

/// The tunnel's subprotocol on a WebSocket handshake answer.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
fn answer_with_subprotocol(
    _: &handshake::server::Request,
    mut response: handshake::server::Response,
) -> Result<handshake::server::Response, handshake::server::ErrorResponse> {
    response.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(tunnel::SUBPROTOCOL),
    );
    Ok(response)
}

/// A gateway whose tunnels are never scraped; each tunnel's end is sent on.
async fn idle_gateway() -> (String, mpsc::UnboundedReceiver<Result<(), TunnelError>>) {
    async fn route(
        State(ended): State<mpsc::UnboundedSender<Result<(), TunnelError>>>,
        upgrade: TunnelUpgrade,
    ) -> Response {
        upgrade.on_upgrade(move |_client, connection| async move {
            let _ = ended.send(connection.await);
        })
    }
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/tunnel", get(route))
        .with_state(ended_tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("ws://{addr}/tunnel"), ended)
}

/// An agent's WebSocket to `url` that does nothing by itself.
async fn raw_agent(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(tunnel::SUBPROTOCOL),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

#[tokio::test(start_paused = true)]
async fn an_idle_tunnel_whose_agent_stops_answering_pings_ends() {
    let (url, mut ended) = idle_gateway().await;
    let start = tokio::time::Instant::now();
    // Connected, but never reads: the gateway's pings go unanswered.
    let _agent = raw_agent(&url).await;
    let result = guard(ended.recv()).await.unwrap();
    assert!(
        matches!(result, Err(TunnelError::KeepaliveTimeout(_))),
        "{result:?}"
    );
    let took = start.elapsed();
    assert!(
        took >= KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT
            && took < 2 * (KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_tunnel_whose_agent_answers_pings_stays() {
    let (url, mut ended) = idle_gateway().await;
    let mut agent = raw_agent(&url).await;
    // Reading answers the pings; count them for a minute.
    let mut pings = 0;
    let minute = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(minute);
    loop {
        tokio::select! {
            message = agent.next() => match message {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_))) => pings += 1,
                other => panic!("unexpected {other:?}"),
            },
            () = &mut minute => break,
        }
    }
    assert!((5..=6).contains(&pings), "{pings} pings in a minute");
    assert!(ended.try_recv().is_err(), "the tunnel ended");
    agent.close(None).await.unwrap();
    while agent.next().await.is_some() {}
    assert!(guard(ended.recv()).await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_hears_nothing_from_its_gateway_gives_up() {
    // A "gateway" that accepts the WebSocket and then says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _silent = tokio_tungstenite::accept_hdr_async(tcp, answer_with_subprotocol)
            .await
            .unwrap();
        std::future::pending::<()>().await;
    });
    let ws = tunnel::connect(&format!("ws://{addr}/tunnel"), "token", "agent")
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let result = guard(tunnel::serve_over(
        ws,
        Router::new(),
        std::future::pending(),
    ))
    .await;
    assert!(matches!(result, Err(TunnelError::Silent(_))), "{result:?}");
    assert!(start.elapsed() >= SILENCE_LIMIT, "{:?}", start.elapsed());
}
