//! Serves a push store on its own: the Pushgateway API plus `GET /metrics`
//! (the pushed groups, then the store's own metrics) and `GET /-/ready`.
//!
//! ```text
//! cargo run -p promrelay-push --example push_serve -- <data-dir> <listen-address> [config.yml]
//! ```
//!
//! The configuration file, when given, holds a `push:` section (see
//! `examples/push.yml`). Handy for trying the API by hand, and for
//! measuring the store as a process of its own next to Pushgateway.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use push::{PushConfig, PushStore};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    push: Option<PushConfig>,
}

fn config(path: Option<&String>) -> Result<PushConfig, String> {
    let Some(path) = path else {
        return Ok(PushConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let file: File = serde_yaml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    Ok(file.push.unwrap_or_default())
}

async fn page(store: Arc<PushStore>) -> impl IntoResponse {
    let mut body = Vec::new();
    store.write_page(&mut body);
    body.extend_from_slice(store.render_metrics().as_bytes());
    (
        [(CONTENT_TYPE, exposition::Format::Text.content_type())],
        body,
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(addr)) = (args.first(), args.get(1)) else {
        eprintln!("usage: push_serve <data-dir> <listen-address> [config.yml]");
        return ExitCode::from(2);
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("{addr}: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match config(args.get(2)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let store = match PushStore::open(dir, config) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open the push store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::clone(&store);
    let app = Router::new()
        .route("/metrics", get(move || page(Arc::clone(&metrics))))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .merge(push::router(store));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
