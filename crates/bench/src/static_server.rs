//! A plain HTTP server of ours sending one page from memory: the baseline
//! exporter, and the fastest a server can send the same bytes.

use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::simulated::{page_router, Page};

/// A running static server on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub(crate) struct StaticServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl StaticServer {
    /// Serves `page` at `/metrics` (HTTP/1.1 keep-alive, never compressed)
    /// on a free loopback port.
    pub(crate) async fn start(page: Bytes) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the static server");
        let addr = listener.local_addr().expect("static server address");
        // As the gateway does: a page's last segment must not wait for an ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, page_router(Page::text(page))).await;
        });
        StaticServer { addr, task }
    }

    /// The server's port.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>/metrics`.
    pub(crate) fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
