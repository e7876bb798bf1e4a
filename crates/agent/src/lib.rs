//! The promrelay agent: one correct page for many local sources.
//!
//! # Layout
//!
//! - [`config`]: the YAML file and flags, validated whole.
//! - [`duration`]: Prometheus's duration syntax.
//! - [`source`]: the kinds of source: `http`, `exec`, `file` (one page
//!   each) and `docker` (one page per container, found by the docker
//!   crate's discovery).
//! - [`runtime`]: a configuration turned into running sources; swapped
//!   whole on reload.
//! - [`scrape`]: one scrape: all sources within one deadline, merged by the
//!   exposition engine, with health series per source and container.
//! - [`service`]: the HTTP endpoints.
//! - [`egress`]: egress mode: dial the gateway and serve the endpoints over
//!   the tunnel, redialing with a backoff.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`ports`]: `proxy_url` mode: allowlisted local ports, over the tunnel
//!   only.
//! - [`pushprox`]: egress with the PushProx client protocol, for PushProx
//!   proxies and the gateway's `/poll` and `/push`.

pub mod backoff;
pub mod config;
pub use settings::duration;
pub mod egress;
pub mod ports;
pub mod pushprox;
pub mod runtime;
pub mod scrape;
pub mod service;
pub mod source;
