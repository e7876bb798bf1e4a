//! The gateway's configuration file (`--config.file`), YAML:
//!
//! ```yaml
//! agents:
//!   # One token for every agent without its own: --agents.token-file, or
//!   # <storage.path>/agent-token made on first start. `false` accepts only
//!   # per-agent tokens and client certificates.
//!   shared_token: true
//!   # Accept a verified client certificate whose common name is the agent
//!   # name (the web configuration must ask for client certificates).
//!   client_certificates: true
//!   # Per-agent tokens, stored as the hex SHA-256 of the token
//!   # (`printf %s "$TOKEN" | sha256sum`). A name listed here accepts only
//!   # its own token, never the shared one.
//!   tokens:
//!     - name: edge-1
//!       sha256: 4f1c…
//!   forget_after: 5m      # how long a disconnected agent answers 503, not 404
//!   max: 100000           # agent names held at once
//! scrape:
//!   default_timeout: 10s  # without X-Prometheus-Scrape-Timeout-Seconds
//!   max_timeout: 60s      # the most honoured, whatever the header says
//! push:                   # pushed groups, see push::PushConfig
//!   default_ttl: 1h       # never, unless set (as Pushgateway)
//! fanin:
//!   concurrency: 64       # agent scrapes in flight per /metrics/connected
//!   max_page_bytes: 67108864
//!   compression: true     # ask agents for gzip (less traffic, some CPU)
//! ```
//!
//! Unknown keys are refused with their line, then [`GatewayFile::validate`]
//! checks what YAML cannot. Every key is optional; an empty file is the
//! embedded defaults.
//!
//! # Reload
//!
//! `SIGHUP` and `POST /-/reload` read the file again. The agents'
//! credentials (`agents.tokens`, `agents.client_certificates`, and the
//! shared token file) take effect at once; connected agents keep their
//! tunnels. The other settings size the running gateway and take effect at
//! the next start: a reload that changes one of them is refused with a
//! message naming it, and changes nothing.

use serde::Deserialize;
use settings::PromDuration;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::auth::{validate_agent_name, AgentAuth, AuthConfigError};
use crate::GatewayConfig;

/// The most agent scrapes one fan-in request may have in flight.
const MAX_FANIN_CONCURRENCY: usize = 10_000;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// Agents: credentials and how many are held.
    #[serde(default)]
    pub agents: AgentsSection,
    /// Scrape deadlines.
    #[serde(default)]
    pub scrape: ScrapeSection,
    /// `/metrics/connected`.
    #[serde(default)]
    pub fanin: FaninSection,
    /// Pushed groups: expiry rules and limits (see [`push::PushConfig`]).
    #[serde(default)]
    pub push: push::PushConfig,
}

/// `agents:`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentsSection {
    /// Whether a shared token is used at all.
    #[serde(default = "default_true")]
    pub shared_token: bool,
    /// Accept verified client certificates (name = common name).
    #[serde(default)]
    pub client_certificates: bool,
    /// Per-agent tokens.
    #[serde(default)]
    pub tokens: Vec<AgentToken>,
    /// How long a disconnected agent is remembered.
    #[serde(default = "default_forget_after")]
    pub forget_after: PromDuration,
    /// The most agent names held at once.
    #[serde(default = "default_max_agents")]
    pub max: usize,
}

/// One agent's own token, by its SHA-256.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentToken {
    /// The agent name.
    pub name: String,
    /// The token's SHA-256, 64 hex digits.
    pub sha256: String,
}

/// `scrape:`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeSection {
    /// The deadline when Prometheus sends no timeout header.
    #[serde(default = "default_timeout")]
    pub default_timeout: PromDuration,
    /// The longest deadline honoured.
    #[serde(default = "default_max_timeout")]
    pub max_timeout: PromDuration,
}

/// `fanin:`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FaninSection {
    /// Agent scrapes in flight per fan-in request.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The largest page taken from one agent.
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: usize,
    /// Ask agents for gzipped pages.
    #[serde(default = "default_true")]
    pub compression: bool,
}

fn default_true() -> bool {
    true
}
fn defaults() -> GatewayConfig {
    GatewayConfig::default()
}
fn default_forget_after() -> PromDuration {
    PromDuration(defaults().retention)
}
fn default_max_agents() -> usize {
    defaults().max_agents
}
fn default_timeout() -> PromDuration {
    PromDuration(defaults().default_scrape_timeout)
}
fn default_max_timeout() -> PromDuration {
    PromDuration(defaults().max_scrape_timeout)
}
fn default_concurrency() -> usize {
    defaults().fanin_concurrency
}
fn default_max_page_bytes() -> usize {
    defaults().fanin_max_body
}

impl Default for AgentsSection {
    fn default() -> Self {
        AgentsSection {
            shared_token: true,
            client_certificates: false,
            tokens: Vec::new(),
            forget_after: default_forget_after(),
            max: default_max_agents(),
        }
    }
}

impl Default for ScrapeSection {
    fn default() -> Self {
        ScrapeSection {
            default_timeout: default_timeout(),
            max_timeout: default_max_timeout(),
        }
    }
}

impl Default for FaninSection {
    fn default() -> Self {
        FaninSection {
            concurrency: default_concurrency(),
            max_page_bytes: default_max_page_bytes(),
            compression: true,
        }
    }
}

/// Why a configuration file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// YAML that does not fit the schema; the message names line and key.
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// serde_yaml's message, with line and column.
        message: String,
    },
    /// A value YAML accepts but the gateway cannot use.
    #[error("{path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `agents.tokens[2].sha256`.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The agents' credentials cannot be built (the shared token file).
    #[error(transparent)]
    Credentials(#[from] AuthConfigError),
    /// A configuration reloaded with the gateway's is invalid.
    #[error("{0}")]
    Companion(String),
    /// A reload changed a setting that only takes effect at start.
    #[error("{path}: {key} changed; restart the gateway to apply it (nothing was reloaded)")]
    NeedsRestart {
        /// The file.
        path: PathBuf,
        /// The setting.
        key: &'static str,
    },
}

impl GatewayFile {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<GatewayFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        GatewayFile::from_yaml(&text, path)
    }

    /// Parses and validates YAML; `path` is only used in messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<GatewayFile, ConfigError> {
        let file = if text.trim().is_empty() {
            GatewayFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        file.validate(path)?;
        Ok(file)
    }

    /// Checks what YAML cannot: names, hashes, bounds.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem,
        };
        let mut names = BTreeSet::new();
        for (i, token) in self.agents.tokens.iter().enumerate() {
            if let Err(error) = validate_agent_name(&token.name) {
                return Err(invalid(
                    format!("agents.tokens[{i}].name"),
                    format!("{:?}: {error}", token.name),
                ));
            }
            if !names.insert(token.name.as_str()) {
                return Err(invalid(
                    format!("agents.tokens[{i}].name"),
                    format!("{:?} is listed twice", token.name),
                ));
            }
            // Building the rule checks the digest's form.
            if let Err(error) = AgentAuth::new().with_agent_token_sha256(&token.name, &token.sha256)
            {
                return Err(invalid(
                    format!("agents.tokens[{i}].sha256"),
                    error.to_string(),
                ));
            }
        }
        if self.agents.max == 0 {
            return Err(invalid("agents.max".into(), "must be at least 1".into()));
        }
        if !self.agents.shared_token
            && self.agents.tokens.is_empty()
            && !self.agents.client_certificates
        {
            return Err(invalid(
                "agents.shared_token".into(),
                "false, but no agent token is listed and client_certificates is off: no agent could connect".into(),
            ));
        }
        let scrape = &self.scrape;
        if scrape.default_timeout.0.is_zero() || scrape.max_timeout.0.is_zero() {
            return Err(invalid(
                "scrape".into(),
                "timeouts must be greater than zero".into(),
            ));
        }
        if scrape.default_timeout > scrape.max_timeout {
            return Err(invalid(
                "scrape.default_timeout".into(),
                format!(
                    "{:?} is longer than scrape.max_timeout ({:?})",
                    scrape.default_timeout.0, scrape.max_timeout.0
                ),
            ));
        }
        if !(1..=MAX_FANIN_CONCURRENCY).contains(&self.fanin.concurrency) {
            return Err(invalid(
                "fanin.concurrency".into(),
                format!("must be between 1 and {MAX_FANIN_CONCURRENCY}"),
            ));
        }
        if let Err(error) = self.push.validate() {
            return Err(invalid(format!("push.{}", error.key), error.problem));
        }
        if self.fanin.max_page_bytes == 0 {
            return Err(invalid(
                "fanin.max_page_bytes".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The tunables of the running gateway.
    pub fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            default_scrape_timeout: self.scrape.default_timeout.0,
            max_scrape_timeout: self.scrape.max_timeout.0,
            retention: self.agents.forget_after.0,
            max_agents: self.agents.max,
            fanin_concurrency: self.fanin.concurrency,
            fanin_max_body: self.fanin.max_page_bytes,
            fanin_compression: self.fanin.compression,
        }
    }

    /// The agents' credentials: these per-agent tokens and client
    /// certificates, plus `shared_token` for every other name.
    pub fn agent_auth(&self, shared_token: Option<&str>) -> Result<AgentAuth, AuthConfigError> {
        let mut auth = AgentAuth::new().with_client_certificates(self.agents.client_certificates);
        if let Some(token) = shared_token {
            auth = auth.with_shared_token(token)?;
        }
        for token in &self.agents.tokens {
            auth = auth.with_agent_token_sha256(&token.name, &token.sha256)?;
        }
        Ok(auth)
    }

    /// The first setting that differs from `running` (and the running push
    /// store's settings) and needs a restart.
    pub fn restart_only_change(
        &self,
        running: &GatewayConfig,
        running_push: Option<&push::PushConfig>,
    ) -> Option<&'static str> {
        if running_push.is_some_and(|running| *running != self.push) {
            return Some("push");
        }
        let new = self.gateway_config();
        let changes: [(&'static str, bool); 7] = [
            ("agents.forget_after", new.retention != running.retention),
            ("agents.max", new.max_agents != running.max_agents),
            (
                "scrape.default_timeout",
                new.default_scrape_timeout != running.default_scrape_timeout,
            ),
            (
                "scrape.max_timeout",
                new.max_scrape_timeout != running.max_scrape_timeout,
            ),
            (
                "fanin.concurrency",
                new.fanin_concurrency != running.fanin_concurrency,
            ),
            (
                "fanin.max_page_bytes",
                new.fanin_max_body != running.fanin_max_body,
            ),
            (
                "fanin.compression",
                new.fanin_compression != running.fanin_compression,
            ),
        ];
        changes
            .into_iter()
            .find_map(|(key, changed)| changed.then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    use crate::auth::{sha256_hex, CredentialId};

    fn parse(yaml: &str) -> Result<GatewayFile, ConfigError> {
        GatewayFile::from_yaml(yaml, Path::new("gateway.yml"))
    }

    #[test]
    fn an_empty_file_is_the_embedded_defaults() {
        let file = parse("").unwrap();
        assert_eq!(file.gateway_config(), GatewayConfig::default());
        assert_eq!(file, GatewayFile::default());
    }

    #[test]
    fn every_setting_is_read() {
        let hash = sha256_hex("edge-secret");
        let file = parse(&format!(
            "agents:\n  client_certificates: true\n  tokens:\n  - name: edge-1\n    sha256: {hash}\n  \
             forget_after: 2m\n  max: 10\nscrape:\n  default_timeout: 5s\n  max_timeout: 30s\n\
             fanin:\n  concurrency: 8\n  max_page_bytes: 1000\n  compression: false\n"
        ))
        .unwrap();
        assert_eq!(
            file.gateway_config(),
            GatewayConfig {
                default_scrape_timeout: Duration::from_secs(5),
                max_scrape_timeout: Duration::from_secs(30),
                retention: Duration::from_secs(120),
                max_agents: 10,
                fanin_concurrency: 8,
                fanin_max_body: 1000,
                fanin_compression: false,
            }
        );
        let auth = file.agent_auth(Some("shared")).unwrap();
        assert_eq!(
            auth.verify("edge-1", Some("edge-secret"), None),
            Ok(CredentialId::token("edge-1"))
        );
        // The shared token does not open a name with its own token.
        assert!(auth.verify("edge-1", Some("shared"), None).is_err());
        assert_eq!(
            auth.verify("other", Some("shared"), None),
            Ok(CredentialId::shared())
        );
    }

    #[test]
    fn the_example_file_is_valid_and_documents_the_defaults() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/gateway.yml"
        ));
        let file = GatewayFile::load(path).unwrap_or_else(|e| panic!("{e}"));
        // Everything but the example token is the embedded default.
        assert_eq!(file.gateway_config(), GatewayConfig::default());
        assert_eq!(
            GatewayFile {
                agents: AgentsSection {
                    tokens: Vec::new(),
                    ..file.agents.clone()
                },
                ..file.clone()
            },
            GatewayFile::default()
        );
        let auth = file.agent_auth(None).unwrap();
        assert_eq!(
            auth.verify("edge-1", Some("test"), None),
            Ok(CredentialId::token("edge-1"))
        );
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let error = parse("agents:\n  tokens: []\n  client_certs: true\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 3") && error.contains("client_certs"),
            "{error}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "agents:\n  tokens:\n  - name: a\n    sha256: abc\n",
                "agents.tokens[0].sha256",
            ),
            (
                "agents:\n  tokens:\n  - name: a/b\n    sha256: abc\n",
                "agents.tokens[0].name",
            ),
            ("scrape:\n  default_timeout: 2m\n", "scrape.default_timeout"),
            ("fanin:\n  concurrency: 0\n", "fanin.concurrency"),
            ("agents:\n  max: 0\n", "agents.max"),
        ];
        for (yaml, key) in cases {
            let error = parse(yaml).unwrap_err().to_string();
            assert!(error.contains(key), "{yaml}: {error}");
        }
        let hash = sha256_hex("x");
        let twice = format!(
            "agents:\n  tokens:\n  - name: a\n    sha256: {hash}\n  - name: a\n    sha256: {hash}\n"
        );
        let error = parse(&twice).unwrap_err().to_string();
        assert!(
            error.contains("agents.tokens[1].name") && error.contains("twice"),
            "{error}"
        );
    }

    #[test]
    fn restart_only_settings_are_named() {
        let running = GatewayConfig::default();
        let push = push::PushConfig::default();
        assert_eq!(
            parse("")
                .unwrap()
                .restart_only_change(&running, Some(&push)),
            None
        );
        let credentials_only = parse("agents:\n  client_certificates: true\n").unwrap();
        assert_eq!(
            credentials_only.restart_only_change(&running, Some(&push)),
            None
        );
        let resized = parse("fanin:\n  concurrency: 3\n").unwrap();
        assert_eq!(
            resized.restart_only_change(&running, Some(&push)),
            Some("fanin.concurrency")
        );
        let expiring = parse("push:\n  default_ttl: 1h\n").unwrap();
        assert_eq!(
            expiring.restart_only_change(&running, Some(&push)),
            Some("push")
        );
    }
}
