//! The `docker` section of an agent source: which daemon to ask, which
//! containers to scrape and how, and the bounds on all of it.
//!
//! Unknown keys are refused by serde (the agent's YAML loader names the
//! line); [`DockerConfig::validate`] then checks what YAML cannot express
//! (a socket URL, a regular expression, limits above zero) and names the
//! key it refuses.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use settings::PromDuration;

/// Where Docker listens by default.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Docker discovery for one agent source.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// The Engine API socket, as `unix://` and an absolute path. Only the
    /// agent talks to it; Prometheus never needs it.
    #[serde(default = "default_host")]
    pub host: String,
    /// The network whose address is used to reach a container that is
    /// attached to it. Without it (or when a container is not attached to
    /// it), a network the agent's own container shares is preferred, then
    /// the first network by name that gives the container an address.
    #[serde(default)]
    pub network: Option<String>,
    /// Ports tried, in order, on every container that carries no
    /// `prometheus.io/scrape` label (as app-metrics-proxy does): the first
    /// that answers `probe_path` with 200 is scraped from then on.
    #[serde(default)]
    pub probe_ports: Vec<u16>,
    /// The path probed on `probe_ports` and scraped once one answers.
    #[serde(default = "default_metrics_path")]
    pub probe_path: String,
    /// How long one probe request may take.
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout: PromDuration,
    /// How long after a container appears its probe ports are retried
    /// (with growing pauses) while none answers; a slow starter is still
    /// found, a container with no metrics is left alone after it.
    #[serde(default = "default_probe_window")]
    pub probe_window: PromDuration,
    /// Which containers are considered at all.
    #[serde(default)]
    pub filters: Filters,
    /// Upper bound for one container's scrape (the scrape's own deadline
    /// may be shorter).
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// The largest page accepted from one container, in bytes.
    #[serde(default = "default_max_page_size")]
    pub max_page_size: usize,
    /// The most containers scraped; the ones beyond it (by name) are
    /// reported as problems, not scraped.
    #[serde(default = "default_max_containers")]
    pub max_containers: usize,
    /// Containers scraped at the same time in one scrape.
    #[serde(default = "default_max_concurrent_scrapes")]
    pub max_concurrent_scrapes: usize,
    /// Accept any certificate from containers scraped over `https` (they
    /// are reached by IP address, which their certificates rarely name).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Upper bound for one Engine API request (the event stream's answer
    /// headers included; the stream itself may stay idle for ever).
    #[serde(default = "default_api_timeout")]
    pub api_timeout: PromDuration,
    /// How often the container list is read again in full while the event
    /// stream is up. Not a polling loop: a safety net for events the
    /// daemon dropped (it drops them for slow readers). `0` disables it.
    #[serde(default = "default_resync_interval")]
    pub resync_interval: PromDuration,
    /// The pauses between attempts to reach the daemon again after the
    /// socket or the event stream failed.
    #[serde(default)]
    pub reconnect_backoff: BackoffConfig,
}

/// Which containers are considered; all given filters must match.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Container labels that must be present: `key` (any value) or
    /// `key=value`.
    #[serde(default)]
    pub label: Vec<String>,
    /// A regular expression that must match the container name somewhere
    /// (as Docker's own name filter does; anchor it with `^...$`).
    #[serde(default)]
    pub name: Option<String>,
    /// A network the container must be attached to. It is also the
    /// network whose address is used, unless `network` names another.
    #[serde(default)]
    pub network: Option<String>,
}

/// Exponential reconnection pauses: `min`, doubling up to `max`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// The first pause.
    #[serde(default = "default_backoff_min")]
    pub min: PromDuration,
    /// The longest pause.
    #[serde(default = "default_backoff_max")]
    pub max: PromDuration,
}

impl Default for BackoffConfig {
    fn default() -> BackoffConfig {
        BackoffConfig {
            min: default_backoff_min(),
            max: default_backoff_max(),
        }
    }
}

fn default_host() -> String {
    DEFAULT_HOST.to_owned()
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

fn default_probe_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(2))
}

fn default_probe_window() -> PromDuration {
    PromDuration(Duration::from_secs(60))
}

fn default_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(10))
}

fn default_max_page_size() -> usize {
    64 << 20
}

fn default_max_containers() -> usize {
    500
}

fn default_max_concurrent_scrapes() -> usize {
    16
}

fn default_api_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(10))
}

fn default_resync_interval() -> PromDuration {
    PromDuration(Duration::from_secs(300))
}

fn default_backoff_min() -> PromDuration {
    PromDuration(Duration::from_millis(500))
}

fn default_backoff_max() -> PromDuration {
    PromDuration(Duration::from_secs(30))
}

impl Default for DockerConfig {
    fn default() -> DockerConfig {
        DockerConfig {
            host: default_host(),
            network: None,
            probe_ports: Vec::new(),
            probe_path: default_metrics_path(),
            probe_timeout: default_probe_timeout(),
            probe_window: default_probe_window(),
            filters: Filters::default(),
            timeout: default_timeout(),
            max_page_size: default_max_page_size(),
            max_containers: default_max_containers(),
            max_concurrent_scrapes: default_max_concurrent_scrapes(),
            insecure_skip_verify: false,
            api_timeout: default_api_timeout(),
            resync_interval: default_resync_interval(),
            reconnect_backoff: BackoffConfig::default(),
        }
    }
}

/// A key of [`DockerConfig`] and what is wrong with its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigProblem {
    /// The key, e.g. `filters.name` or `probe_ports`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl ConfigProblem {
    pub(crate) fn new(key: &'static str, problem: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key,
            problem: problem.into(),
        }
    }
}

impl DockerConfig {
    /// The defaults with another socket, for a flag such as
    /// `--source.docker=NAME=unix:///var/run/docker.sock`.
    pub fn with_host(host: &str) -> Result<DockerConfig, ConfigProblem> {
        let config = DockerConfig {
            host: host.to_owned(),
            ..DockerConfig::default()
        };
        config.validate()?;
        Ok(config)
    }

    /// The socket's path, from `host`.
    pub fn socket_path(&self) -> Result<PathBuf, ConfigProblem> {
        socket_path(&self.host)
    }

    /// Checks what YAML cannot express; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        self.socket_path()?;
        for (key, value) in [
            ("network", &self.network),
            ("filters.network", &self.filters.network),
        ] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigProblem::new(key, "must not be empty"));
            }
        }
        if self.probe_ports.contains(&0) {
            return Err(ConfigProblem::new("probe_ports", "port 0 cannot be probed"));
        }
        if let Some(index) = (1..self.probe_ports.len())
            .find(|&i| self.probe_ports[..i].contains(&self.probe_ports[i]))
        {
            return Err(ConfigProblem::new(
                "probe_ports",
                format!("port {} is listed twice", self.probe_ports[index]),
            ));
        }
        crate::rules::check_metrics_path(&self.probe_path)
            .map_err(|problem| ConfigProblem::new("probe_path", problem))?;
        let above_zero = [
            ("probe_timeout", self.probe_timeout.0),
            ("timeout", self.timeout.0),
            ("api_timeout", self.api_timeout.0),
            ("reconnect_backoff.min", self.reconnect_backoff.min.0),
        ];
        for (key, value) in above_zero {
            if value.is_zero() {
                return Err(ConfigProblem::new(key, "must be above zero"));
            }
        }
        if self.reconnect_backoff.max < self.reconnect_backoff.min {
            return Err(ConfigProblem::new(
                "reconnect_backoff.max",
                format!(
                    "must be at least reconnect_backoff.min ({})",
                    self.reconnect_backoff.min
                ),
            ));
        }
        for (key, value) in [
            ("max_page_size", self.max_page_size),
            ("max_containers", self.max_containers),
            ("max_concurrent_scrapes", self.max_concurrent_scrapes),
        ] {
            if value == 0 {
                return Err(ConfigProblem::new(key, "must be at least 1"));
            }
        }
        crate::rules::Filter::compile(&self.filters)?;
        Ok(())
    }
}

/// The path in a `unix://` URL. TCP is refused: the Engine API over plain
/// TCP is root on the host for anyone on the network.
fn socket_path(host: &str) -> Result<PathBuf, ConfigProblem> {
    let Some(path) = host.strip_prefix("unix://") else {
        return Err(ConfigProblem::new(
            "host",
            format!("{host:?}: only unix:// sockets are supported, e.g. {DEFAULT_HOST}"),
        ));
    };
    if !path.starts_with('/') {
        return Err(ConfigProblem::new(
            "host",
            format!("{host:?}: the socket path must be absolute, e.g. {DEFAULT_HOST}"),
        ));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        docker: DockerConfig,
    }

    fn parse(text: &str) -> Result<DockerConfig, String> {
        let config: DockerConfig = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../examples/docker.yml");
        let example: Example = serde_yaml::from_str(text).unwrap();
        example.docker.validate().unwrap();
        assert_eq!(example.docker.probe_ports, [9100, 8080]);
        assert_eq!(example.docker.network.as_deref(), Some("monitoring"));
    }

    #[test]
    fn an_empty_section_is_the_defaults() {
        let config = parse("{}").unwrap();
        assert_eq!(config, DockerConfig::default());
        assert_eq!(
            config.socket_path().unwrap(),
            PathBuf::from("/var/run/docker.sock")
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let error = parse("host: unix:///run/docker.sock\nfilter:\n  name: x\n").unwrap_err();
        assert!(error.contains("unknown field `filter`"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        let error = parse("filters:\n  labels: [a]\n").unwrap_err();
        assert!(error.contains("unknown field `labels`"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("host: tcp://127.0.0.1:2375", "host: ", "only unix://"),
            ("host: unix://docker.sock", "host: ", "absolute"),
            ("probe_ports: [9100, 0]", "probe_ports: ", "port 0"),
            ("probe_ports: [9100, 9100]", "probe_ports: ", "twice"),
            ("probe_path: metrics", "probe_path: ", "start with '/'"),
            ("filters: {name: '('}", "filters.name: ", "regex"),
            ("filters: {label: ['=x']}", "filters.label: ", "label name"),
            ("filters: {network: ''}", "filters.network: ", "empty"),
            ("timeout: 0", "timeout: ", "above zero"),
            ("max_containers: 0", "max_containers: ", "at least 1"),
            (
                "reconnect_backoff: {min: 10s, max: 1s}",
                "reconnect_backoff.max: ",
                "at least",
            ),
        ];
        for (text, key, problem) in cases {
            let error = parse(text).expect_err(text);
            assert!(
                error.starts_with(key) && error.contains(problem),
                "{text}: {error}"
            );
        }
        assert!(parse("probe_timeout: 5q")
            .unwrap_err()
            .contains("not a duration"));
    }

    #[test]
    fn a_flag_gives_the_host() {
        let config = DockerConfig::with_host("unix:///run/user/1000/docker.sock").unwrap();
        assert_eq!(
            config.socket_path().unwrap(),
            PathBuf::from("/run/user/1000/docker.sock")
        );
        let error = DockerConfig::with_host("/var/run/docker.sock").unwrap_err();
        assert_eq!(error.key, "host");
    }
}
