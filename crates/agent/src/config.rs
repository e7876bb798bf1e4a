//! The agent's configuration: a YAML file, sources given as flags, or both.
//!
//! Unknown keys are refused with their line; after parsing, [`Config::validate`]
//! checks what YAML cannot (unique names, one kind per source, patterns that
//! compile, limits above zero). The `docker` section is the docker crate's
//! [`DockerConfig`], validated by it and reported here with the source. A configuration is used only whole: a reload
//! that fails validation changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docker::DockerConfig;
use push::PushConfig;
use serde::{Deserialize, Deserializer};

use crate::duration::PromDuration;

/// The whole agent configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The label that tells the sources' samples apart on the merged page.
    #[serde(default = "default_source_label")]
    pub source_label: String,
    /// The longest a scrape may take when Prometheus sends no
    /// `X-Prometheus-Scrape-Timeout-Seconds`, and the cap when it does.
    #[serde(default = "default_scrape_timeout")]
    pub scrape_timeout: PromDuration,
    /// Commands that may run at the same time across all exec sources.
    #[serde(default = "default_max_commands")]
    pub max_concurrent_commands: usize,
    /// The sources, merged in this order.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Local ports the gateway may ask this agent to scrape on
    /// `127.0.0.1` (`proxy_url` mode). Nothing else is ever reached: the
    /// agent is not an open proxy.
    #[serde(default)]
    pub allowed_ports: Vec<u16>,
}

fn default_source_label() -> String {
    "exporter".to_owned()
}

fn default_scrape_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(10))
}

fn default_max_commands() -> usize {
    4
}

impl Default for Config {
    fn default() -> Config {
        Config {
            source_label: default_source_label(),
            scrape_timeout: default_scrape_timeout(),
            max_concurrent_commands: default_max_commands(),
            sources: Vec::new(),
            allowed_ports: Vec::new(),
        }
    }
}

/// One source: a name, labels, and exactly one of `http`, `exec`, `file`,
/// `docker`, `push`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The name: the value of the source label and the path
    /// `/sources/<name>/metrics`. Letters, digits, `_`, `-` and `.`.
    pub name: String,
    /// Static labels added to every sample of this source.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Scrape an HTTP exporter.
    pub http: Option<HttpConfig>,
    /// Run a command.
    pub exec: Option<ExecConfig>,
    /// Read `.prom` files.
    pub file: Option<FileConfig>,
    /// Scrape the containers of a Docker host, each its own page. A bare
    /// `docker:` means every default.
    #[serde(default, deserialize_with = "null_is_default")]
    pub docker: Option<DockerConfig>,
    /// Groups pushed to the agent with the Pushgateway API, kept in
    /// `--storage.path` until they expire: the same settings as the
    /// gateway's `push:` section. A bare `push:` means every default. At
    /// most one per agent; its settings take effect at restart.
    #[serde(default, deserialize_with = "null_is_default")]
    pub push: Option<PushConfig>,
}

/// A key given with no value (`docker:`) is the section with its defaults,
/// not an absent section.
fn null_is_default<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// An HTTP exporter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The exporter's URL, `http` or `https`.
    pub url: String,
    /// Upper bound for one scrape of this source.
    #[serde(default = "default_source_timeout")]
    pub timeout: PromDuration,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Basic auth to the backend.
    pub basic_auth: Option<BasicAuth>,
    /// A bearer token, given inline.
    pub bearer_token: Option<String>,
    /// A bearer token, read from a file at each scrape.
    pub bearer_token_file: Option<PathBuf>,
    /// TLS to the backend.
    pub tls_config: Option<TlsConfig>,
    /// The largest page accepted, in bytes.
    #[serde(default = "default_max_page")]
    pub max_page_size: usize,
}

fn default_source_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(10))
}

fn default_max_page() -> usize {
    64 << 20
}

/// Basic auth credentials, as in `prometheus.yml`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password, inline.
    pub password: Option<String>,
    /// The password, read from a file.
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for BasicAuth {
    // Never print a secret, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// TLS settings toward a backend, as in `prometheus.yml`.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates to trust, PEM.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, PEM.
    pub cert_file: Option<PathBuf>,
    /// Client key, PEM.
    pub key_file: Option<PathBuf>,
    /// Skip verification of the backend's certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// A command run on demand, or in the background with `interval`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program; never run through a shell.
    pub command: String,
    /// Fixed arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Fixed extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Hard limit for one run; the process group is killed after it.
    #[serde(default = "default_source_timeout")]
    pub timeout: PromDuration,
    /// The most bytes of output accepted.
    #[serde(default = "default_max_output")]
    pub max_output: usize,
    /// Run in the background this often and serve the last good result.
    pub interval: Option<PromDuration>,
    /// With `interval`: how old the last good result may be when served.
    pub max_age: Option<PromDuration>,
    /// Query parameters that may reach the command.
    #[serde(default)]
    pub params: Vec<ParamConfig>,
}

fn default_max_output() -> usize {
    16 << 20
}

/// One allowed query parameter.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamConfig {
    /// The query parameter's name.
    pub name: String,
    /// A regular expression the whole value must match.
    pub pattern: String,
    /// Pass the value as the next argument (`arg`) ...
    #[serde(default)]
    pub arg: bool,
    /// ... or as this environment variable.
    pub env: Option<String>,
}

/// `.prom` files read at scrape time.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// A glob, e.g. `/var/lib/node_exporter/textfile/*.prom`.
    pub glob: String,
    /// The largest file read, in bytes.
    #[serde(default = "default_max_page")]
    pub max_file_size: usize,
    /// The most files read.
    #[serde(default = "default_max_files")]
    pub max_files: usize,
}

fn default_max_files() -> usize {
    1000
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
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
    /// A flag that does not read as `NAME=VALUE`.
    #[error("--source.{kind}={value}: expected NAME={what}")]
    Flag {
        /// `http`, `exec`, `file` or `docker`.
        kind: &'static str,
        /// The flag's value.
        value: String,
        /// What follows the `=`.
        what: &'static str,
    },
    /// A rule that YAML cannot express.
    #[error("{at}: {problem}")]
    Invalid {
        /// Where: `sources[2] "name": exec.timeout`.
        at: String,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text, path)
    }

    /// Parses and validates YAML; `path` is only used in messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // An empty file is the default configuration, not an error.
        let config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        config.validate()?;
        Ok(config)
    }

    /// Adds the sources given as flags (`NAME=VALUE`), after the file's.
    pub fn add_flag_sources(&mut self, flags: &FlagSources) -> Result<(), ConfigError> {
        let split = |kind, what, value: &String| {
            value
                .split_once('=')
                .filter(|(name, rest)| !name.is_empty() && !rest.is_empty())
                .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
                .ok_or_else(|| ConfigError::Flag {
                    kind,
                    value: value.clone(),
                    what,
                })
        };
        let blank = |name| SourceConfig {
            name,
            labels: BTreeMap::new(),
            http: None,
            exec: None,
            file: None,
            docker: None,
            push: None,
        };
        for value in &flags.http {
            let (name, url) = split("http", "URL", value)?;
            self.sources.push(SourceConfig {
                http: Some(HttpConfig {
                    url,
                    timeout: default_source_timeout(),
                    headers: BTreeMap::new(),
                    basic_auth: None,
                    bearer_token: None,
                    bearer_token_file: None,
                    tls_config: None,
                    max_page_size: default_max_page(),
                }),
                ..blank(name)
            });
        }
        for value in &flags.exec {
            let (name, command_line) = split("exec", "COMMAND", value)?;
            // Split on whitespace only: no shell, no quoting.
            let mut words = command_line.split_whitespace().map(str::to_owned);
            let command = words.next().unwrap_or_default();
            self.sources.push(SourceConfig {
                exec: Some(ExecConfig {
                    command,
                    args: words.collect(),
                    env: BTreeMap::new(),
                    timeout: default_source_timeout(),
                    max_output: default_max_output(),
                    interval: None,
                    max_age: None,
                    params: Vec::new(),
                }),
                ..blank(name)
            });
        }
        for value in &flags.file {
            let (name, glob) = split("file", "GLOB", value)?;
            self.sources.push(SourceConfig {
                file: Some(FileConfig {
                    glob,
                    max_file_size: default_max_page(),
                    max_files: default_max_files(),
                }),
                ..blank(name)
            });
        }
        for value in &flags.docker {
            let (name, host) = split("docker", "HOST", value)?;
            let docker =
                DockerConfig::with_host(&host).map_err(|problem| ConfigError::Invalid {
                    at: format!("--source.docker={value}"),
                    problem: problem.to_string(),
                })?;
            self.sources.push(SourceConfig {
                docker: Some(docker),
                ..blank(name)
            });
        }
        // The name is checked with the others' by `validate`.
        for name in &flags.push {
            self.sources.push(SourceConfig {
                push: Some(PushConfig::default()),
                ..blank(name.clone())
            });
        }
        self.validate()
    }

    /// Adds ports given as `--scrape.allow-port` flags.
    pub fn add_allowed_ports(&mut self, ports: &[u16]) -> Result<(), ConfigError> {
        for port in ports {
            if !self.allowed_ports.contains(port) {
                self.allowed_ports.push(*port);
            }
        }
        self.validate()
    }

    /// Checks the rules YAML cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |at: String, problem: String| ConfigError::Invalid { at, problem };
        if !exposition::parse::is_label_name(&self.source_label)
            || self.source_label.starts_with("__")
        {
            return Err(invalid(
                "source_label".into(),
                format!("{:?} is not a usable label name", self.source_label),
            ));
        }
        if self.scrape_timeout.0.is_zero() {
            return Err(invalid(
                "scrape_timeout".into(),
                "must be above zero".into(),
            ));
        }
        if self.allowed_ports.contains(&0) {
            return Err(invalid(
                "allowed_ports".into(),
                "port 0 cannot be scraped".into(),
            ));
        }
        if self.max_concurrent_commands == 0 {
            return Err(invalid(
                "max_concurrent_commands".into(),
                "must be at least 1".into(),
            ));
        }
        for (index, source) in self.sources.iter().enumerate() {
            let at = |field: &str| format!("sources[{index}] {:?}{field}", source.name);
            if !is_source_name(&source.name) {
                return Err(invalid(
                    at(": name"),
                    "use letters, digits, '_', '-' and '.' only".into(),
                ));
            }
            if self.sources[..index].iter().any(|s| s.name == source.name) {
                return Err(invalid(at(": name"), "another source has this name".into()));
            }
            let kinds = [
                source.http.is_some(),
                source.exec.is_some(),
                source.file.is_some(),
                source.docker.is_some(),
                source.push.is_some(),
            ];
            if kinds.iter().filter(|&&k| k).count() != 1 {
                return Err(invalid(
                    at(""),
                    "give exactly one of http, exec, file, docker or push".into(),
                ));
            }
            exposition::LabelSet::new(&source.labels)
                .map_err(|e| invalid(at(": labels"), e.to_string()))?;
            if source.labels.contains_key(&self.source_label) {
                return Err(invalid(
                    at(": labels"),
                    format!(
                        "{:?} is the source label; the agent sets it",
                        self.source_label
                    ),
                ));
            }
            if let Some(http) = &source.http {
                validate_http(http)
                    .map_err(|(field, problem)| invalid(at(&format!(": http.{field}")), problem))?;
            }
            if let Some(exec) = &source.exec {
                validate_exec(exec)
                    .map_err(|(field, problem)| invalid(at(&format!(": exec.{field}")), problem))?;
            }
            if let Some(file) = &source.file {
                if file.glob.is_empty() {
                    return Err(invalid(at(": file.glob"), "must not be empty".into()));
                }
                glob::Pattern::new(&file.glob)
                    .map_err(|e| invalid(at(": file.glob"), e.to_string()))?;
                if file.max_file_size == 0 || file.max_files == 0 {
                    return Err(invalid(
                        at(": file"),
                        "max_file_size and max_files must be above zero".into(),
                    ));
                }
            }
            if let Some(push) = &source.push {
                push.validate().map_err(|problem| {
                    invalid(at(&format!(": push.{}", problem.key)), problem.problem)
                })?;
                if let Some(first) = self.sources[..index].iter().find(|s| s.push.is_some()) {
                    return Err(invalid(
                        at(": push"),
                        format!(
                            "source {:?} already takes the pushes; an agent has one push API",
                            first.name
                        ),
                    ));
                }
            }
            if let Some(docker) = &source.docker {
                docker.validate().map_err(|problem| {
                    invalid(at(&format!(": docker.{}", problem.key)), problem.problem)
                })?;
                // Each container's samples get these labels; a static label
                // or the source label of the same name would clash.
                if let Some(name) = source
                    .labels
                    .keys()
                    .find(|name| docker::label::ALL.contains(&name.as_str()))
                {
                    return Err(invalid(
                        at(": labels"),
                        format!("{name:?} is set on each container by docker discovery"),
                    ));
                }
                if docker::label::ALL.contains(&self.source_label.as_str()) {
                    return Err(invalid(
                        at(": docker"),
                        format!(
                            "the source_label {:?} is set on each container by docker discovery; choose another source_label",
                            self.source_label
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Sources given on the command line, each `NAME=VALUE`
/// (`--source.http=node=http://127.0.0.1:9100/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagSources {
    /// `NAME=URL`.
    pub http: Vec<String>,
    /// `NAME=COMMAND [ARGS...]`, split on whitespace.
    pub exec: Vec<String>,
    /// `NAME=GLOB`.
    pub file: Vec<String>,
    /// `NAME=HOST`, the Engine API socket as `unix:///path`.
    pub docker: Vec<String>,
    /// `NAME`: a push source with default settings.
    pub push: Vec<String>,
}

type FieldProblem = (&'static str, String);

fn validate_http(http: &HttpConfig) -> Result<(), FieldProblem> {
    let url = reqwest::Url::parse(&http.url).map_err(|e| ("url", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err((
            "url",
            format!("scheme {:?} is not http or https", url.scheme()),
        ));
    }
    if http.timeout.0.is_zero() {
        return Err(("timeout", "must be above zero".into()));
    }
    if http.max_page_size == 0 {
        return Err(("max_page_size", "must be above zero".into()));
    }
    for (name, value) in &http.headers {
        reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ("headers", format!("{name:?} is not a header name")))?;
        reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            (
                "headers",
                format!("the value of {name:?} is not a valid header value"),
            )
        })?;
    }
    let auth_kinds = [
        http.basic_auth.is_some(),
        http.bearer_token.is_some(),
        http.bearer_token_file.is_some(),
    ];
    if auth_kinds.iter().filter(|&&k| k).count() > 1 {
        return Err((
            "basic_auth",
            "give at most one of basic_auth, bearer_token, bearer_token_file".into(),
        ));
    }
    if let Some(auth) = &http.basic_auth {
        if auth.password.is_some() && auth.password_file.is_some() {
            return Err((
                "basic_auth",
                "give password or password_file, not both".into(),
            ));
        }
    }
    if let Some(tls) = &http.tls_config {
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(("tls_config", "cert_file and key_file go together".into()));
        }
    }
    Ok(())
}

fn validate_exec(exec: &ExecConfig) -> Result<(), FieldProblem> {
    if exec.command.is_empty() {
        return Err(("command", "must not be empty".into()));
    }
    if exec.timeout.0.is_zero() {
        return Err(("timeout", "must be above zero".into()));
    }
    if exec.max_output == 0 {
        return Err(("max_output", "must be above zero".into()));
    }
    match (exec.interval, exec.max_age) {
        (Some(interval), _) if interval.0.is_zero() => {
            return Err(("interval", "must be above zero".into()))
        }
        (Some(_), _) if !exec.params.is_empty() => {
            return Err((
                "params",
                "a command run in the background cannot take query parameters".into(),
            ))
        }
        (Some(interval), Some(max_age)) if max_age < interval => {
            return Err((
                "max_age",
                format!("must be at least the interval ({interval})"),
            ))
        }
        (None, Some(_)) => return Err(("max_age", "only applies with interval".into())),
        _ => {}
    }
    for (index, param) in exec.params.iter().enumerate() {
        if param.name.is_empty() {
            return Err(("params", format!("[{index}]: name must not be empty")));
        }
        if exec.params[..index].iter().any(|p| p.name == param.name) {
            return Err((
                "params",
                format!("[{index}]: {:?} is listed twice", param.name),
            ));
        }
        if param.arg == param.env.is_some() {
            return Err((
                "params",
                format!(
                    "[{index}] {:?}: give exactly one of arg: true or env: NAME",
                    param.name
                ),
            ));
        }
        if let Some(env) = &param.env {
            let valid = !env.is_empty()
                && env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !env.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err((
                    "params",
                    format!(
                        "[{index}] {:?}: env {env:?} is not a variable name",
                        param.name
                    ),
                ));
            }
        }
        regex::Regex::new(&param.pattern).map_err(|e| {
            (
                "params",
                format!("[{index}] {:?}: pattern: {e}", param.name),
            )
        })?;
    }
    Ok(())
}

/// Whether `name` can name a source: it appears in URLs and label values.
pub fn is_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_yaml(text, Path::new("agent.yml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../../../examples/agent.yml");
        let config = parse(text).unwrap();
        assert!(config.sources.len() >= 3);
        let docker = config.sources.iter().find_map(|s| s.docker.as_ref());
        assert_eq!(
            docker.map(|d| d.probe_ports.as_slice()),
            Some(&[9100, 8080][..])
        );
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let error =
            parse("sources:\n  - name: a\n    http:\n      url: http://x/\n      timout: 5s\n")
                .unwrap_err();
        assert!(error.contains("unknown field `timout`"), "{error}");
        assert!(error.contains("line 5"), "{error}");
        let error = parse("scrape_timeout: 10s\nbogus: 1\n").unwrap_err();
        assert!(
            error.contains("line 2") && error.contains("bogus"),
            "{error}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_where() {
        let cases = [
            ("sources:\n  - name: a\n", "exactly one of http, exec, file, docker or push"),
            ("sources:\n  - name: a\n    file: {glob: x}\n    push: {}\n", "exactly one of"),
            ("sources:\n  - name: a\n    push: {max_groups: 0}\n", "sources[0] \"a\": push.max_groups"),
            ("sources:\n  - name: a\n    file: {glob: x}\n    docker: {}\n", "exactly one of"),
            ("sources:\n  - name: a\n    docker: {host: 'tcp://127.0.0.1:2375'}\n", "sources[0] \"a\": docker.host: "),
            ("sources:\n  - name: a\n    docker: {probe_ports: [0]}\n", "sources[0] \"a\": docker.probe_ports: port 0"),
            ("sources:\n  - name: a\n    docker: {filters: {name: '('}}\n", "docker.filters.name: "),
            ("sources:\n  - name: a\n    docker: {colour: blue}\n", "unknown field `colour`"),
            ("sources:\n  - name: a\n    labels: {image: x}\n    docker: {}\n", "\"image\" is set on each container"),
            ("source_label: container\nsources:\n  - name: a\n    docker: {}\n", "choose another source_label"),
            ("sources:\n  - name: a/b\n    file: {glob: x}\n", "name"),
            ("sources:\n  - {name: a, file: {glob: x}}\n  - {name: a, file: {glob: y}}\n", "another source has this name"),
            ("sources:\n  - name: a\n    http: {url: 'ftp://x/'}\n", "scheme"),
            ("sources:\n  - name: a\n    http: {url: 'http://x/', timeout: 0}\n", "above zero"),
            ("sources:\n  - name: a\n    exec: {command: x, timeout: 5q}\n", "not a duration"),
            ("sources:\n  - name: a\n    exec: {command: x, params: [{name: p, pattern: '(', arg: true}]}\n", "pattern"),
            ("sources:\n  - name: a\n    exec: {command: x, params: [{name: p, pattern: 'x'}]}\n", "exactly one of arg"),
            ("sources:\n  - name: a\n    exec: {command: x, interval: 10s, params: [{name: p, pattern: 'x', arg: true}]}\n", "background"),
            ("sources:\n  - name: a\n    exec: {command: x, interval: 10s, max_age: 5s}\n", "max_age"),
            ("sources:\n  - name: a\n    labels: {exporter: x}\n    file: {glob: x}\n", "source label"),
            ("sources:\n  - name: a\n    labels: {'1x': x}\n    file: {glob: x}\n", "not a valid label name"),
            ("source_label: __x\n", "source_label"),
            ("max_concurrent_commands: 0\n", "at least 1"),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn flags_add_sources() {
        let mut config = Config::default();
        config
            .add_flag_sources(&FlagSources {
                http: vec!["node=http://127.0.0.1:9100/metrics".into()],
                exec: vec!["script=/bin/echo a b".into()],
                file: vec!["files=/tmp/*.prom".into()],
                docker: vec!["containers=unix:///run/docker.sock".into()],
                push: vec!["jobs".into()],
            })
            .unwrap();
        let names: Vec<_> = config.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["node", "script", "files", "containers", "jobs"]);
        assert_eq!(config.sources[4].push, Some(PushConfig::default()));
        assert_eq!(config.sources[1].exec.as_ref().unwrap().args, ["a", "b"]);
        assert_eq!(
            config.sources[3].docker,
            Some(DockerConfig::with_host("unix:///run/docker.sock").unwrap())
        );
        let flags = |http: &[&str], docker: &[&str]| FlagSources {
            http: http.iter().map(|s| (*s).to_owned()).collect(),
            docker: docker.iter().map(|s| (*s).to_owned()).collect(),
            ..FlagSources::default()
        };
        let error = config
            .add_flag_sources(&flags(&["nourl"], &[]))
            .unwrap_err();
        assert_eq!(error.to_string(), "--source.http=nourl: expected NAME=URL");
        let error = config
            .add_flag_sources(&flags(&[], &["d=/var/run/docker.sock"]))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--source.docker=d=/var/run/docker.sock: host: "),
            "{error}"
        );
        let mut config = Config::default();
        let error = config
            .add_flag_sources(&flags(&["a=http://x/", "a=http://y/"], &[]))
            .unwrap_err();
        assert!(error.to_string().contains("another source has this name"));
    }

    #[test]
    fn a_bare_docker_key_is_the_defaults() {
        let config = parse("sources:\n  - name: containers\n    docker:\n").unwrap();
        assert_eq!(config.sources[0].docker, Some(DockerConfig::default()));
        let config = parse(
            "sources:\n  - name: containers\n    labels: {site: a}\n    docker:\n      probe_ports: [9100]\n",
        )
        .unwrap();
        let docker = config.sources[0].docker.as_ref().unwrap();
        assert_eq!(docker.probe_ports, [9100]);
        assert_eq!(docker.host, docker::config::DEFAULT_HOST);
        assert!(config.sources[0].http.is_none());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = parse("sources:\n  - name: a\n    http:\n      url: http://x/\n      basic_auth: {username: u, password: hunter2}\n").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
