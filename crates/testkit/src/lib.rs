//! Test kit for promrelay: start the real programs the integration tests run
//! against, and drive them over plain HTTP.
//!
//! Everything here is blocking and std-only, so tests need no async runtime:
//!
//! * [`Daemon`] spawns a long-running program with its output captured to a
//!   private [`TempDir`], waits until an HTTP readiness URL answers `200`, and
//!   kills the program when dropped. [`node_exporter`], [`pushgateway`] and
//!   [`prometheus`] start the stock Prometheus programs that way, each on
//!   `127.0.0.1` with a [`free_port`] and a fresh data directory.
//! * [`http_get`] and [`http_request`] form a minimal HTTP/1.1 client over
//!   [`std::net::TcpStream`] (plain `http` only; `Content-Length`, chunked and
//!   read-until-close bodies).
//! * [`promtool_check_metrics`] and [`python_parse`] run independent parsers
//!   (`promtool check metrics`, and the Python `prometheus_client` text and
//!   OpenMetrics parsers) over an exposition page, so tests can check that
//!   what promrelay serves is understood by other implementations.
//! * [`tls`] makes a certificate authority and server and client
//!   certificates on the spot.
//! * [`docker`] builds a test image `FROM scratch` around a static metrics
//!   server of ours and runs real containers of it, removed on drop.
//!
//! The kit never skips: when a required program is missing it panics and
//! points at `scripts/test`, which installs everything the tests need.
//!
//! ```no_run
//! let exporter = testkit::node_exporter();
//! let page = testkit::http_get(&exporter.url("/metrics"), &[]);
//! assert_eq!(page.status, 200);
//! assert!(testkit::promtool_check_metrics(&page.body).parse_ok());
//! ```

mod daemon;
pub mod docker;
mod http;
mod programs;
mod promtool;
mod python;
mod tempdir;
pub mod tls;

pub use daemon::{find_program, free_port, wait_for, Daemon, READY_TIMEOUT};
pub use http::{http_get, http_request, percent_encode, try_http_request, Response};
pub use programs::{node_exporter, prometheus, pushgateway, tinyproxy, Prometheus};
pub use promtool::{promtool_check_metrics, PromtoolOutcome};
pub use python::{
    python_parse, python_push, PythonFamily, PythonParser, PythonSample, PythonSummary,
};
pub use tempdir::TempDir;

/// The hint appended to every "program missing" panic.
const INSTALL_HINT: &str =
    "run `scripts/test` from the repository root, which installs the programs the tests need";
