//! The `push:` section of a configuration file: expiry and limits.
//!
//! ```yaml
//! push:
//!   default_ttl: 1h          # groups no rule matches; absent: never expire
//!   max_ttl: 1d              # the longest TTL a client may ask for
//!   rules:                   # the first rule whose matchers all match wins
//!     - match: {job: "batch-.*"}     # anchored regexes on grouping labels
//!       ttl: 10m
//!     - match: {job: cron, instance: "db-[0-9]+"}
//!       ttl: 2h
//!   max_body_bytes: 16777216         # a request body, as sent
//!   max_decompressed_bytes: 67108864 # a gzip body, once decompressed
//!   max_series_per_group: 100000
//!   max_groups: 100000
//!   max_series_total: 10000000
//!   admin_api: false                 # PUT /api/v1/admin/wipe
//! ```
//!
//! Unknown keys are refused by serde; [`PushConfig::validate`] checks what
//! YAML cannot (TTLs above `max_ttl`, zero limits, invalid label names).
//!
//! # Which TTL a push gets
//!
//! A `ttl` query parameter or `X-Push-TTL` header on the push, capped at
//! `max_ttl`; else the first rule that matches the grouping key; else
//! `default_ttl`; else none. A matcher on a label the key lacks sees the
//! empty string, as Prometheus matchers do.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use settings::PromDuration;

use crate::key::GroupingKey;

/// The push store's settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The TTL of groups that no rule matches and whose push asked for
    /// none. Absent: they never expire, as in Pushgateway.
    #[serde(default)]
    pub default_ttl: Option<PromDuration>,
    /// The longest TTL a push may ask for; longer requests are cut to it.
    /// Absent: no cap.
    #[serde(default)]
    pub max_ttl: Option<PromDuration>,
    /// TTLs by grouping key, tried in order.
    #[serde(default)]
    pub rules: Vec<TtlRule>,
    /// The largest request body accepted, as sent (compressed or not).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The largest body accepted after gzip decompression.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// The most series (sample lines, after histograms and summaries are
    /// expanded) one group may hold.
    #[serde(default = "default_max_series_per_group")]
    pub max_series_per_group: usize,
    /// The most groups held at once.
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// The most series held at once, all groups together.
    #[serde(default = "default_max_series_total")]
    pub max_series_total: usize,
    /// Serve `PUT /api/v1/admin/wipe`, which deletes every group.
    #[serde(default)]
    pub admin_api: bool,
}

/// One server-side TTL rule.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TtlRule {
    /// Grouping label name → anchored regex its value must match.
    #[serde(rename = "match")]
    pub matchers: BTreeMap<String, LabelRegex>,
    /// The TTL of the groups it matches.
    pub ttl: PromDuration,
}

/// A regex that must match a whole label value (it is anchored as
/// Prometheus anchors relabelling regexes).
#[derive(Clone)]
pub struct LabelRegex {
    source: String,
    anchored: Regex,
}

impl LabelRegex {
    /// Compiles `source`, anchored at both ends.
    pub fn new(source: &str) -> Result<LabelRegex, regex::Error> {
        Ok(LabelRegex {
            source: source.to_owned(),
            anchored: Regex::new(&format!("^(?:{source})$"))?,
        })
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.anchored.is_match(value)
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for LabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for LabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for LabelRegex {}

impl<'de> Deserialize<'de> for LabelRegex {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        LabelRegex::new(&source).map_err(serde::de::Error::custom)
    }
}

fn default_max_body_bytes() -> usize {
    PushConfig::default().max_body_bytes
}
fn default_max_decompressed_bytes() -> usize {
    PushConfig::default().max_decompressed_bytes
}
fn default_max_series_per_group() -> usize {
    PushConfig::default().max_series_per_group
}
fn default_max_groups() -> usize {
    PushConfig::default().max_groups
}
fn default_max_series_total() -> usize {
    PushConfig::default().max_series_total
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            default_ttl: None,
            max_ttl: None,
            rules: Vec::new(),
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_series_per_group: 100_000,
            max_groups: 100_000,
            max_series_total: 10_000_000,
            admin_api: false,
        }
    }
}

/// A value YAML accepts but the store cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("push.{key}: {problem}")]
pub struct PushConfigError {
    /// The key under `push:`, e.g. `rules[2].ttl`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl PushConfig {
    /// Checks what the YAML schema cannot.
    pub fn validate(&self) -> Result<(), PushConfigError> {
        let error = |key: String, problem: String| Err(PushConfigError { key, problem });
        let positive = |key: &str, ttl: PromDuration| {
            if ttl.0.is_zero() {
                error(
                    key.to_owned(),
                    "must be longer than 0 (leave it out for no expiry)".to_owned(),
                )
            } else {
                Ok(())
            }
        };
        let within_max = |key: &str, ttl: PromDuration| match self.max_ttl {
            Some(max) if ttl > max => error(
                key.to_owned(),
                format!("{ttl} is longer than max_ttl ({max})"),
            ),
            _ => Ok(()),
        };
        if let Some(max) = self.max_ttl {
            positive("max_ttl", max)?;
        }
        if let Some(ttl) = self.default_ttl {
            positive("default_ttl", ttl)?;
            within_max("default_ttl", ttl)?;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let key = format!("rules[{i}].ttl");
            positive(&key, rule.ttl)?;
            within_max(&key, rule.ttl)?;
            if rule.matchers.is_empty() {
                return error(
                    format!("rules[{i}].match"),
                    "needs at least one label (use default_ttl for every group)".to_owned(),
                );
            }
            for name in rule.matchers.keys() {
                if !exposition::parse::is_label_name(name) {
                    return error(
                        format!("rules[{i}].match"),
                        format!("{name:?} is not a valid label name"),
                    );
                }
            }
        }
        for (key, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_decompressed_bytes", self.max_decompressed_bytes),
            ("max_series_per_group", self.max_series_per_group),
            ("max_groups", self.max_groups),
            ("max_series_total", self.max_series_total),
        ] {
            if value == 0 {
                return error(key.to_owned(), "must be at least 1".to_owned());
            }
        }
        Ok(())
    }

    /// The TTL of a push to `key` that asked for `requested` (see the
    /// [module documentation](self)); `None` never expires.
    pub fn ttl_for(&self, key: &GroupingKey, requested: Option<Duration>) -> Option<Duration> {
        if let Some(requested) = requested {
            return Some(match self.max_ttl {
                Some(max) => requested.min(max.0),
                None => requested,
            });
        }
        let rule = self.rules.iter().find(|rule| {
            rule.matchers
                .iter()
                .all(|(name, regex)| regex.is_match(key.get(name).unwrap_or("")))
        });
        rule.map(|r| r.ttl.0).or(self.default_ttl.map(|d| d.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PushConfig, String> {
        let config: PushConfig = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    fn key(path: &str) -> GroupingKey {
        GroupingKey::from_path(false, path).unwrap()
    }

    #[test]
    fn the_example_file_parses() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            push: PushConfig,
        }
        let text = include_str!("../examples/push.yml");
        let file: File = serde_yaml::from_str(text).unwrap();
        file.push.validate().unwrap();
        assert_eq!(file.push.rules.len(), 2);
        assert_eq!(
            file.push.ttl_for(&key("batch-nightly"), None),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn defaults_never_expire() {
        let config = parse("{}").unwrap();
        assert_eq!(config, PushConfig::default());
        assert_eq!(config.ttl_for(&key("a"), None), None);
        assert_eq!(
            config.ttl_for(&key("a"), Some(Duration::from_secs(9))),
            Some(Duration::from_secs(9))
        );
    }

    #[test]
    fn rules_match_anchored_in_order() {
        let config = parse(
            "default_ttl: 1h\nmax_ttl: 1d\nrules:\n\
             - match: {job: 'batch-.*'}\n  ttl: 10m\n\
             - match: {job: 'batch-x', zone: eu}\n  ttl: 5m\n\
             - match: {instance: ''}\n  ttl: 20m\n",
        )
        .unwrap();
        let ttl = |path: &str, requested: Option<u64>| {
            config
                .ttl_for(&key(path), requested.map(Duration::from_secs))
                .map(|d| d.as_secs())
        };
        // First match wins, so batch-x in eu still gets the first rule.
        assert_eq!(ttl("batch-x/zone/eu/instance/h", None), Some(600));
        // Anchored: "xbatch-1" does not match `batch-.*`.
        assert_eq!(ttl("xbatch-1/instance/h", None), Some(3600));
        // A label the key lacks is the empty string.
        assert_eq!(ttl("other", None), Some(1200));
        // A client's wish wins over rules, capped at max_ttl.
        assert_eq!(ttl("batch-x", Some(30)), Some(30));
        assert_eq!(ttl("batch-x", Some(10 * 86_400)), Some(86_400));
    }

    #[test]
    fn refuses_bad_settings_naming_the_key() {
        for (yaml, expected) in [
            (
                "max_ttl: 1h\ndefault_ttl: 2h\n",
                "push.default_ttl: 2h is longer than max_ttl (1h)",
            ),
            (
                "default_ttl: 0\n",
                "push.default_ttl: must be longer than 0",
            ),
            (
                "max_ttl: 1m\nrules:\n- match: {job: a}\n  ttl: 5m\n",
                "push.rules[0].ttl: 5m is longer",
            ),
            (
                "rules:\n- match: {}\n  ttl: 5m\n",
                "push.rules[0].match: needs at least one label",
            ),
            (
                "rules:\n- match: {'1a': x}\n  ttl: 5m\n",
                "\"1a\" is not a valid label name",
            ),
            ("max_groups: 0\n", "push.max_groups: must be at least 1"),
            (
                "rules:\n- match: {job: '('}\n  ttl: 5m\n",
                "regex parse error",
            ),
            ("default_ttl: 5x\n", "is not a duration"),
            ("max_tll: 5m\n", "unknown field `max_tll`"),
            (
                "rules:\n- match: {job: a}\n  ttl: 5m\n  extra: 1\n",
                "unknown field `extra`",
            ),
        ] {
            let error = parse(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml:?}: {error}");
        }
    }
}
