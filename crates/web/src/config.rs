//! Reading and validating the web configuration file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::tls::{self, TlsSettings};

/// What [`WebConfigError`] says when the configuration came from
/// [`WebConfig::from_yaml`] rather than a file.
pub const INLINE_SOURCE: &str = "<inline web config>";

/// A web configuration that has been parsed and validated and is ready to
/// serve: certificates and keys are loaded, the client CA pool is built,
/// password hashes are checked.
///
/// Build one with [`WebConfig::load`], [`WebConfig::from_yaml`] or
/// [`WebConfig::none`], and hand it to [`serve`](crate::serve) through a
/// [`WebConfigHandle`](crate::WebConfigHandle).
pub struct WebConfig {
    source: String,
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) http2: bool,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) users: BTreeMap<String, String>,
    pub(crate) rate_limiter: Option<RateLimiter>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password hashes or key material.
        f.debug_struct("WebConfig")
            .field("source", &self.source)
            .field("tls", &self.tls)
            .field("http2", &self.http2)
            .field("headers", &self.headers)
            .field("basic_auth_users", &self.users.keys().collect::<Vec<_>>())
            .field("rate_limiter", &self.rate_limiter)
            .finish()
    }
}

/// Why a web configuration could not be loaded.
///
/// Every variant names the file (or [`INLINE_SOURCE`]); parse errors carry
/// the line serde_yaml reports, and validation errors the key at fault, as
/// a dotted path such as `tls_server_config.cert_file`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebConfigError {
    /// The configuration file itself could not be read.
    #[error("cannot read web config file {}: {source}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key or a value of the wrong
    /// type. The message (from serde_yaml) names the key path and the line.
    #[error("{file}: {source}")]
    Parse {
        /// The configuration file, or [`INLINE_SOURCE`].
        file: String,
        /// The 1-based line serde_yaml points at, when it points at one.
        line: Option<usize>,
        /// The underlying error.
        source: serde_yaml::Error,
    },
    /// A file the configuration refers to (certificate, key, CA) could not be read.
    #[error("{file}: {key}: cannot read {}: {source}", path.display())]
    ReferencedFile {
        /// The configuration file, or [`INLINE_SOURCE`].
        file: String,
        /// The key naming the file, e.g. `tls_server_config.key_file`.
        key: String,
        /// The referenced file, resolved against the configuration's directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration parsed but makes no sense (key without certificate,
    /// unparsable certificate, bad bcrypt hash, ...).
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The configuration file, or [`INLINE_SOURCE`].
        file: String,
        /// The key at fault, e.g. `basic_auth_users.alice`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl WebConfigError {
    /// The 1-based line of the configuration file the error points at, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            WebConfigError::Parse { line, .. } => *line,
            _ => None,
        }
    }
}

/// Context for validation errors: which file, and where relative paths start.
pub(crate) struct Origin<'a> {
    pub(crate) file: &'a str,
    pub(crate) base_dir: &'a Path,
}

impl Origin<'_> {
    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// Reads a file named by `key`, relative to the configuration's directory.
    pub(crate) fn read(&self, key: &str, name: &str) -> Result<Vec<u8>, WebConfigError> {
        let path = self.base_dir.join(name);
        std::fs::read(&path).map_err(|source| WebConfigError::ReferencedFile {
            file: self.file.to_owned(),
            key: key.to_owned(),
            path,
            source,
        })
    }
}

impl WebConfig {
    /// Plain HTTP (with HTTP/2 prior knowledge allowed), no authentication,
    /// no extra headers: what an absent `--web.config.file` means.
    pub fn none() -> WebConfig {
        WebConfig {
            source: String::from("<no web config>"),
            tls: None,
            http2: true,
            headers: Vec::new(),
            users: BTreeMap::new(),
            rate_limiter: None,
        }
    }

    /// Reads and validates the configuration file at `path`. Relative file
    /// names in it are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, base_dir, &path.display().to_string())
    }

    /// Parses and validates configuration text. Relative file names in it are
    /// resolved against `base_dir`; errors name [`INLINE_SOURCE`] as the file.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<WebConfig, WebConfigError> {
        Self::parse(text, base_dir, INLINE_SOURCE)
    }

    fn parse(text: &str, base_dir: &Path, file: &str) -> Result<WebConfig, WebConfigError> {
        let raw: Option<RawConfig> =
            serde_yaml::from_str(text).map_err(|source| WebConfigError::Parse {
                file: file.to_owned(),
                line: source.location().map(|l| l.line()),
                source,
            })?;
        let raw = raw.unwrap_or_default();
        let origin = Origin { file, base_dir };

        let http = raw.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let tls = match raw.tls_server_config {
            Some(raw_tls) if raw_tls.is_enabled() => Some(tls::build(&raw_tls, http2, &origin)?),
            _ => None,
        };
        let headers = validate_headers(http.headers.unwrap_or_default(), &origin)?;
        let users = validate_users(raw.basic_auth_users.unwrap_or_default(), &origin)?;
        let rate_limiter = match raw.rate_limit {
            Some(limit) => RateLimiter::new(&limit, &origin)?,
            None => None,
        };
        Ok(WebConfig {
            source: file.to_owned(),
            tls,
            http2,
            headers,
            users,
            rate_limiter,
        })
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `"https"` when serving TLS, `"http"` otherwise.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() {
            "https"
        } else {
            "http"
        }
    }

    /// Whether HTTP/2 is offered (`http_server_config.http2`, default true).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Whether requests must carry basic-auth credentials.
    pub fn requires_basic_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether clients must present a certificate to complete the handshake
    /// (`RequireAnyClientCert` or `RequireAndVerifyClientCert`).
    pub fn requires_client_certificate(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.client_auth.requires_certificate())
    }

    /// The file the configuration came from, as displayed in errors.
    pub fn source(&self) -> &str {
        &self.source
    }
}

// ---------------------------------------------------------------------------
// The file format, as written. Everything optional, so that `key:` with no
// value means "not set" as it does for the Go implementation.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) client_ca: Option<String>,
    pub(crate) cert_file: Option<String>,
    pub(crate) key_file: Option<String>,
    pub(crate) client_auth_type: Option<ClientAuth>,
    pub(crate) client_ca_file: Option<String>,
    pub(crate) client_allowed_sans: Option<Vec<String>>,
    pub(crate) min_version: Option<TlsVersion>,
    pub(crate) max_version: Option<TlsVersion>,
    pub(crate) cipher_suites: Option<Vec<CipherName>>,
    pub(crate) curve_preferences: Option<Vec<CurveName>>,
    pub(crate) prefer_server_cipher_suites: Option<bool>,
}

impl fmt::Debug for RawTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .field("client_auth_type", &self.client_auth_type)
            .finish_non_exhaustive()
    }
}

impl RawTls {
    /// TLS is on when any certificate, key or client-auth key is set (the
    /// exporter-toolkit rule): an empty `tls_server_config` means plain HTTP.
    fn is_enabled(&self) -> bool {
        [
            &self.cert,
            &self.key,
            &self.client_ca,
            &self.cert_file,
            &self.key_file,
            &self.client_ca_file,
        ]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
            || self.client_auth_type.is_some()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    #[serde(default, deserialize_with = "deserialize_go_duration")]
    interval: Option<Duration>,
    burst: Option<u32>,
}

/// `client_auth_type`, named after Go's `tls.ClientAuthType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    /// `RequireClientCert` is the old exporter-toolkit spelling.
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    pub(crate) fn requires_certificate(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }

    pub(crate) fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// `min_version` / `max_version`. TLS 1.0 and 1.1 are refused while parsing
/// so that the error carries the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
    Tls12,
    Tls13,
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_str_with(deserializer, "a TLS version such as TLS12", |name| {
            match name {
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "{name} is not supported: promrelay's TLS implementation (rustls) speaks only TLS12 and TLS13"
            )),
            _ => Err(format!(
                "unknown TLS version {name:?}, expected one of TLS12, TLS13 (TLS10 and TLS11 are not supported)"
            )),
        }
        })
    }
}

/// Deserializes a string through `parse`, raising its error from inside the
/// YAML deserializer so that serde_yaml points at the value's own line.
fn deserialize_str_with<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            (self.parse)(value).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(Visitor { expecting, parse })
}

/// A `cipher_suites` entry: one of the names Go's `tls.CipherSuites()`
/// lists (the ones exporter-toolkit accepts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CipherName(pub(crate) String);

/// The cipher suite names exporter-toolkit accepts (Go's secure list).
pub(crate) const GO_CIPHER_SUITES: &[&str] = &[
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
];

impl<'de> Deserialize<'de> for CipherName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_str_with(deserializer, "a cipher suite name", |name| {
            if GO_CIPHER_SUITES.contains(&name) {
                Ok(CipherName(name.to_owned()))
            } else {
                Err(format!("unknown cipher: {name}"))
            }
        })
    }
}

/// A `curve_preferences` entry, with exporter-toolkit's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CurveName {
    P256,
    P384,
    P521,
    X25519,
}

impl<'de> Deserialize<'de> for CurveName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_str_with(deserializer, "a curve name", |name| match name {
            "CurveP256" => Ok(CurveName::P256),
            "CurveP384" => Ok(CurveName::P384),
            "CurveP521" => Ok(CurveName::P521),
            "X25519" => Ok(CurveName::X25519),
            _ => Err(format!(
                "unknown curve: {name} (expected one of CurveP256, CurveP384, CurveP521, X25519)"
            )),
        })
    }
}

// ---------------------------------------------------------------------------
// http_server_config.headers

/// The headers exporter-toolkit lets a configuration set, with the values
/// allowed for each (empty: any value).
const CONFIGURABLE_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn validate_headers(
    headers: BTreeMap<String, String>,
    origin: &Origin<'_>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((canonical, allowed)) = CONFIGURABLE_HEADERS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(&name))
        else {
            let names: Vec<&str> = CONFIGURABLE_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(origin.invalid(
                &key,
                format!(
                    "HTTP header {name:?} can not be configured (allowed: {})",
                    names.join(", ")
                ),
            ));
        };
        if value.is_empty() {
            continue; // "Unset if blank."
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(origin.invalid(
                &key,
                format!("invalid value {value:?}, expected one of: {allowed:?}"),
            ));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| origin.invalid(&key, "value is not a valid HTTP header value"))?;
        let name = HeaderName::from_bytes(canonical.to_ascii_lowercase().as_bytes())
            .map_err(|_| origin.invalid(&key, "invalid header name"))?;
        out.push((name, value));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// basic_auth_users

fn validate_users(
    users: BTreeMap<String, String>,
    origin: &Origin<'_>,
) -> Result<BTreeMap<String, String>, WebConfigError> {
    for (user, hash) in &users {
        let key = format!("basic_auth_users.{user}");
        if user.is_empty() {
            return Err(origin.invalid("basic_auth_users", "user names must not be empty"));
        }
        if user.contains(':') {
            return Err(origin.invalid(
                &key,
                "user names can not contain ':' (basic auth could never send them)",
            ));
        }
        // The value is never echoed: it may be a password pasted by mistake.
        if !is_bcrypt_hash(hash) {
            return Err(origin.invalid(
                &key,
                "not a bcrypt hash: expected $2a$, $2b$ or $2y$, a cost from 04 to 31, '$' and 53 characters of salt and hash",
            ));
        }
    }
    Ok(users)
}

/// Whether `hash` is a bcrypt hash `bcrypt::verify` can check.
fn is_bcrypt_hash(hash: &str) -> bool {
    let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
        return false;
    };
    let salt_and_hash = hash.rsplit('$').next().unwrap_or_default();
    (4..=31).contains(&parts.get_cost())
        && salt_and_hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

// ---------------------------------------------------------------------------
// rate_limit

/// A token bucket: `burst` requests at once, refilled by one every `interval`
/// (Go's `rate.NewLimiter(rate.Every(interval), burst)`). Shared by every
/// connection served with the configuration that owns it.
pub(crate) struct RateLimiter {
    interval: Duration,
    burst: u32,
    bucket: Mutex<(f64, Instant)>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval", &self.interval)
            .field("burst", &self.burst)
            .finish()
    }
}

impl RateLimiter {
    fn new(raw: &RawRateLimit, origin: &Origin<'_>) -> Result<Option<Self>, WebConfigError> {
        let interval = raw.interval.unwrap_or(Duration::ZERO);
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = raw.burst.unwrap_or(0);
        if burst == 0 {
            return Err(origin.invalid(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.interval is set (0 would refuse every request)",
            ));
        }
        Ok(Some(RateLimiter {
            interval,
            burst,
            bucket: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    /// Takes a token if one is available.
    pub(crate) fn allow(&self) -> bool {
        let now = Instant::now();
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = &mut *bucket;
        let refill = now.duration_since(*last).as_secs_f64() / self.interval.as_secs_f64();
        *tokens = (*tokens + refill).min(f64::from(self.burst));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Reads a Go `time.Duration` the way yaml.v2 does: a string in
/// `time.ParseDuration` syntax (`"1s"`, `"1m30s"`, `"250ms"`, `"1.5h"`), or
/// an integer number of nanoseconds.
fn deserialize_go_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = Option<Duration>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"1s\", \"1m30s\" or \"250ms\"")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<Self::Value, E> {
            Ok(Some(Duration::from_nanos(nanos)))
        }
        fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<Self::Value, E> {
            u64::try_from(nanos)
                .map(|n| Some(Duration::from_nanos(n)))
                .map_err(|_| E::custom("duration must not be negative"))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse_go_duration(text).map(Some).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(Visitor)
}

/// Go's `time.ParseDuration`, without negative durations.
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {text:?}")),
            _ => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        total = int
            .checked_mul(unit_nanos)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        if !frac_part.is_empty() {
            // Enough digits for nanosecond precision on any unit.
            let digits = &frac_part[..frac_part.len().min(18)];
            let frac: u128 = digits.parse().map_err(|_| bad())?;
            let scale = 10u128.pow(u32::try_from(digits.len()).map_err(|_| bad())?);
            total = total
                .checked_add(frac * unit_nanos / scale)
                .ok_or_else(bad)?;
        }
        rest = after;
    }
    let nanos = u64::try_from(total).map_err(|_| bad())?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = [
            ("0", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("250ms", Duration::from_millis(250)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("10µs", Duration::from_micros(10)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "1",
            "s",
            "-1s",
            "1d",
            "1.s.",
            "1 s",
            "99999999999999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limiter_refills() {
        let origin = Origin {
            file: "t",
            base_dir: Path::new("."),
        };
        let raw = RawRateLimit {
            interval: Some(Duration::from_millis(50)),
            burst: Some(2),
        };
        let limiter = RateLimiter::new(&raw, &origin).unwrap().unwrap();
        assert!(limiter.allow());
        assert!(limiter.allow());
        assert!(!limiter.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.allow());
        assert!(!limiter.allow());
    }
}
