//! Configuration value types the agent and the gateway both read from
//! YAML, written the way operators already write them in `prometheus.yml`.
//!
//! - [`duration`]: Prometheus's duration syntax ([`PromDuration`]).

pub mod duration;

pub use duration::{DurationError, PromDuration};
