//! What the integration tests share: our push API served in-process on a
//! local port, and pages reduced to comparable sample sets.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use exposition::Format;
use push::{PushConfig, PushStore};
use testkit::TempDir;

/// The push API on `127.0.0.1`, with `GET /metrics` serving the groups and
/// the store's own metrics, as the gateway will.
pub struct Server {
    pub addr: SocketAddr,
    pub store: Arc<PushStore>,
    // Dropped first: stops serving before the directory goes.
    runtime: tokio::runtime::Runtime,
    _dir: TempDir,
}

impl Server {
    pub fn start(config: PushConfig) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = TempDir::new("push-server");
        let (store, listener) = runtime.block_on(async {
            let store = PushStore::open(dir.path(), config).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (store, listener)
        });
        let addr = listener.local_addr().unwrap();
        let app = app(Arc::clone(&store));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Server {
            addr,
            store,
            runtime,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The push API, `GET /metrics` (the groups, then the store's own metrics)
/// and `GET /-/ready`, as a program serving a store has them.
pub fn app(store: Arc<PushStore>) -> Router {
    let page_store = Arc::clone(&store);
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let store = Arc::clone(&page_store);
                async move {
                    let mut body = Vec::new();
                    store.write_page(&mut body);
                    body.extend_from_slice(store.render_metrics().as_bytes());
                    ([(CONTENT_TYPE, Format::Text.content_type())], body)
                }
            }),
        )
        .route("/-/ready", get(|| async { "Ready\n" }))
        .merge(push::router(store))
}

/// Families that belong to the serving program, not to the pushes.
fn own_family(name: &str) -> bool {
    ["go_", "process_", "pushgateway_", "promrelay_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// A page as a set of comparable lines: `TYPE name kind` per family and
/// `name{sorted, unescaped labels} value` per sample. The serving
/// program's own families are left out; the values of `push_time_seconds`
/// and `push_failure_time_seconds` are reduced to whether they are 0.
pub fn sample_set(page: &[u8]) -> BTreeSet<String> {
    let parsed = exposition::parse(page, Format::Text).unwrap_or_else(|e| {
        panic!(
            "page does not parse: {e}\n{}",
            String::from_utf8_lossy(page)
        )
    });
    let mut set = BTreeSet::new();
    for (family, samples) in parsed.iter() {
        if own_family(family.name) {
            continue;
        }
        set.insert(format!(
            "TYPE {} {}",
            family.name,
            family.kind.word(Format::Text)
        ));
        let push_time =
            family.name == "push_time_seconds" || family.name == "push_failure_time_seconds";
        for sample in samples {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.name, l.unescaped_value()))
                .collect();
            labels.sort();
            let number = sample.number();
            let value = if push_time {
                if number == 0.0 { "zero" } else { "nonzero" }.to_owned()
            } else if number.is_nan() {
                "NaN".to_owned()
            } else {
                format!("{number:?}")
            };
            set.insert(format!("{}{{{}}} {value}", sample.name, labels.join(",")));
        }
    }
    set
}

/// Describes how two sample sets differ, for a failure message.
pub fn difference(
    left_name: &str,
    left: &BTreeSet<String>,
    right_name: &str,
    right: &BTreeSet<String>,
) -> String {
    let mut out = String::new();
    for line in left.difference(right) {
        out.push_str(&format!("  only {left_name}: {line}\n"));
    }
    for line in right.difference(left) {
        out.push_str(&format!("  only {right_name}: {line}\n"));
    }
    out
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}
