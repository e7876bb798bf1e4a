//! The push store: Pushgateway's push API with expiry and durability, as a
//! library the gateway and the agent mount.
//!
//! Unmodified Pushgateway clients push groups of metrics
//! (`PUT`/`POST`/`DELETE /metrics/job/<job>{/<label>/<value>}`, text or
//! delimited protobuf, gzip or not); the store checks them as Pushgateway
//! does, keeps them until they expire, and serves them on the mounting
//! server's `/metrics` with `push_time_seconds` and
//! `push_failure_time_seconds`. The reference for behaviour is Pushgateway
//! 1.5.1 (`handler/push.go`, `storage/diskmetricstore.go`, `api/v1/api.go`
//! of prometheus/pushgateway); the differences are listed in the modules
//! that make them (mainly `body`).
//!
//! What Pushgateway lacks: a group can expire ([`config`]), and a push is
//! answered only once it is on disk (`journal`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = push::PushStore::open("data/push", push::PushConfig::default())?;
//! let app = axum::Router::new().merge(push::router(store.clone()));
//! // ... and on GET /metrics: store.write_page(&mut page);
//! # let _ = app; Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`key`]: the grouping key, read from the path (`@base64` segments).
//! - [`config`]: the `push:` settings: TTL rules, limits, admin API.
//! - [`proto`]: the protobuf messages of `io.prometheus.client`.
//! - `body`: push bodies to canonical text, and the checks a push must
//!   pass by itself.
//! - `group`: a group's canonical text and its per-family index.
//! - `store`: [`PushStore`]: the groups, the cross-group checks, expiry,
//!   and the page.
//! - `journal`: the data directory: log, group commit, snapshots.
//! - [`routes`]: the HTTP API ([`router`]); `api`: its JSON endpoints.
//! - [`metrics`]: the store's own metrics.
//! - `format`: numbers and times as Go writes them.

mod api;
mod body;
pub mod config;
mod error;
mod format;
mod group;
mod journal;
pub mod key;
pub mod metrics;
pub mod proto;
pub mod routes;
mod store;

pub use config::{LabelRegex, PushConfig, PushConfigError, TtlRule};
pub use error::PushError;
pub use key::{GroupingKey, KeyError};
pub use routes::{router, TTL_HEADER};
pub use store::{PushBody, PushMode, PushStore, StoreError};
