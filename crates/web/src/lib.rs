//! The web configuration of every listening endpoint of promrelay: TLS,
//! client certificates, basic authentication and extra response headers,
//! read from the file given with `--web.config.file`.
//!
//! The file format is the one the Prometheus exporters share, from
//! [exporter-toolkit](https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md),
//! so an existing web config file works here unchanged:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative to the config file's directory
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12
//! http_server_config:
//!   http2: true
//!   headers:
//!     X-Frame-Options: deny
//! basic_auth_users:
//!   alice: $2y$10$...              # bcrypt hash
//! ```
//!
//! [`WebConfig::load`] parses and validates a file (certificates and keys
//! load and match, CA pools build, hashes parse); unknown keys are errors,
//! and every error names the file, the key and, where the YAML parser knows
//! it, the line. An empty file means plain HTTP without authentication, as
//! does [`WebConfig::none`]. [`serve`] then serves an [`axum::Router`] on a
//! listener with that configuration, held in a [`WebConfigHandle`] so it can
//! be replaced at run time. Handlers find the client's address as
//! [`axum::extract::ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo)
//! and, for verified client certificates, its [`PeerIdentity`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let config = web::WebConfig::load(Path::new("web-config.yml"))?;
//! let handle = web::WebConfigHandle::new(config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9091").await?;
//! let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
//! web::serve(listener, handle.clone(), router, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Deliberate differences from exporter-toolkit
//!
//! * **TLS 1.0 and 1.1 are not available**: the TLS stack is rustls, which
//!   implements TLS 1.2 and 1.3 only. `min_version`/`max_version` `TLS10` or
//!   `TLS11` are refused with an error rather than silently raised.
//! * **`cipher_suites`**: names Go accepts but rustls does not implement
//!   (CBC and RSA-key-exchange suites) are ignored with a warning; it is an
//!   error if no listed TLS 1.2 suite remains while TLS 1.2 is allowed. As in
//!   Go, TLS 1.3 suites are always all enabled.
//! * **`curve_preferences`**: `CurveP521` is ignored with a warning (not
//!   implemented by the ring provider).
//! * **`prefer_server_cipher_suites`** (default true) is honoured (rustls'
//!   `ignore_client_order`); Go has ignored it since 1.17.
//! * **The file is not re-read per request or handshake.** Certificates and
//!   users are loaded once by [`WebConfig::load`]; to rotate them, load the
//!   file again and store it in the [`WebConfigHandle`] (for example on
//!   `SIGHUP`, see [`WebConfigHandle::reload`]). New connections pick up the
//!   TLS side, new requests the users, headers and rate limit.
//! * **HTTP/2 without TLS**: with `http2: true` (the default) a plain-HTTP
//!   listener also accepts HTTP/2 with prior knowledge (h2c); exporter-toolkit
//!   serves HTTP/1.1 only there.
//! * **Stricter validation**: `cert` together with `cert_file` (likewise
//!   `key`/`key_file`, `client_ca`/`client_ca_file`) is an error instead of
//!   the file silently winning; a verifying `client_auth_type` without a
//!   client CA, an empty `client_allowed_sans` list, a user name that is
//!   empty or contains `:`, and a `rate_limit` with `burst: 0` are errors.
//! * **Small relaxations**: the header names under
//!   `http_server_config.headers` match case-insensitively (the names and
//!   values allowed are otherwise exporter-toolkit's), and
//!   `client_allowed_sans` compares IP addresses by value.
//! * `rate_limit` (`interval` in Go duration syntax, `burst`) is supported:
//!   over the limit, requests get `429 Too Many Requests` before any
//!   authentication. The bucket belongs to the loaded configuration, so a
//!   reload starts a fresh one.
//! * Errors about `basic_auth_users` never repeat the offending value (it
//!   may be a password pasted where the hash belongs).
//! * The 401 challenge names a realm: `WWW-Authenticate: Basic realm="promrelay"`.
//! * TLS handshakes time out after [`TLS_HANDSHAKE_TIMEOUT`]; shutdown waits
//!   at most [`SHUTDOWN_GRACE`] for in-flight requests.
//! * Listener concerns of exporter-toolkit (systemd socket activation, vsock)
//!   are not here: the caller binds the [`tokio::net::TcpListener`].

mod auth;
mod config;
mod handle;
mod identity;
mod scrape_timeout;
mod serve;
mod tls;

pub use config::{WebConfig, WebConfigError, INLINE_SOURCE};
pub use handle::WebConfigHandle;
pub use identity::PeerIdentity;
pub use scrape_timeout::{
    requested_scrape_timeout, work_budget, MAX_MARGIN, SCRAPE_TIMEOUT_HEADER,
};
pub use serve::{
    serve, serve_with, ServeLimits, AUTH_CHALLENGE, HEADER_READ_TIMEOUT, MAX_CONNECTIONS,
    SHUTDOWN_GRACE, TLS_HANDSHAKE_TIMEOUT,
};
