//! Shared test helpers: certificates made on the spot with rcgen, a server
//! started with `web::serve` on 127.0.0.1:0, and reqwest clients.

#![allow(dead_code)]

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Router};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use web::{PeerIdentity, WebConfigHandle};

pub(crate) use testkit::tls::{Ca, Pem};

/// reqwest forms of the test certificates.
pub(crate) trait ReqwestTls {
    fn identity(&self) -> reqwest::Identity;
}

impl ReqwestTls for Pem {
    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(self.identity_pem().as_bytes()).expect("identity PEM")
    }
}

/// The authority's certificate as a reqwest root.
pub(crate) fn root(ca: &Ca) -> reqwest::Certificate {
    reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()
}

/// A self-signed client certificate (no CA will verify it).
pub(crate) fn self_signed_client(cn: &str) -> Pem {
    Ca::new("rogue").client(cn, &["rogue.example"])
}

/// The router every server test serves.
pub(crate) fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/whoami",
            get(
                |ConnectInfo(remote): ConnectInfo<SocketAddr>,
                 identity: Option<Extension<PeerIdentity>>| async move {
                    let who = match identity {
                        Some(Extension(id)) => format!(
                            "cn={} dns={} ip={:?} email={:?} uri={:?} der={}",
                            id.common_name.as_deref().unwrap_or("-"),
                            id.dns_sans.join(","),
                            id.ip_sans,
                            id.email_sans,
                            id.uri_sans,
                            !id.certificate_der.is_empty(),
                        ),
                        None => "anonymous".to_string(),
                    };
                    format!("{} {who}", remote.ip())
                },
            ),
        )
        .route(
            "/own-frame-options",
            get(|| async { ([("x-frame-options", "sameorigin")], "own") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_millis(700)).await;
                "slow done"
            }),
        )
}

/// A running `web::serve`.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: WebConfigHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub(crate) async fn start(config: web::WebConfig) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = WebConfigHandle::new(config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(web::serve(listener, handle.clone(), router(), async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            handle,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// Signals shutdown and returns the serve task to await.
    pub(crate) fn shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("shut down once")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A plain-HTTP client that opens a fresh connection per client.
pub(crate) fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// An HTTPS client trusting `ca`, optionally presenting `identity`.
pub(crate) fn tls_client(ca: &Ca, identity: Option<&Pem>) -> reqwest::Client {
    tls_client_builder(ca, identity).build().unwrap()
}

pub(crate) fn tls_client_builder(ca: &Ca, identity: Option<&Pem>) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root(ca))
        .pool_max_idle_per_host(0);
    if let Some(pem) = identity {
        builder = builder.identity(pem.identity());
    }
    builder
}

/// A bcrypt hash of `password` at the lowest cost, with its `$2b$` prefix
/// rewritten to `prefix` (`"2a"`, `"2b"` or `"2y"`: the algorithm is the same).
pub(crate) fn hash_with_prefix(password: &str, prefix: &str) -> String {
    let hash = bcrypt::hash(password, 4).unwrap();
    let rest = hash
        .strip_prefix("$2b$")
        .expect("the bcrypt crate writes $2b$");
    format!("${prefix}${rest}")
}

/// A TLS web config YAML for certificates written by [`Pem::write`] as
/// `server.*`, with `extra` appended under `tls_server_config`.
pub(crate) fn tls_yaml(extra: &str) -> String {
    let mut yaml =
        String::from("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    for line in extra.lines() {
        yaml.push_str("  ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}
