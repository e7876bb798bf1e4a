//! Agent credentials: which agent may open a tunnel under which name.
//!
//! An agent names itself (`X-Promrelay-Agent`) and proves it may use that
//! name with one of three credentials, checked by [`AgentAuth::verify`] in
//! this order:
//!
//! 1. **A verified client certificate** whose subject common name equals
//!    the agent name, when enabled with
//!    [`AgentAuth::with_client_certificates`]. The certificate was verified
//!    by the TLS layer ([`web::PeerIdentity`] is only ever present for
//!    verified certificates). Credential id `cert:<CN>`.
//! 2. **A per-agent token**, configured as the hex SHA-256 hash of the token
//!    for that agent name ([`AgentAuth::with_agent_token_sha256`]).
//!    Credential id `token:<name>`. A name with a per-agent token is
//!    reserved to it: the shared token is not accepted for that name.
//! 3. **The shared token** ([`AgentAuth::with_shared_token`], usually read
//!    from a token file), accepted for every other name. Credential id
//!    `shared`: every agent holding the shared token has the same secret,
//!    so they are indistinguishable, and any of them may replace the tunnel
//!    of any other shared-token agent of the same name. Protection against
//!    an agent taking over another agent's name needs per-agent tokens or
//!    client certificates.
//!
//! Tokens are compared as SHA-256 digests in constant time, so neither the
//! token's content nor its length leaks through timing. Tokens never appear
//! in errors, logs or `Debug` output.

use core::fmt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use http::StatusCode;
use sha2::{Digest, Sha256};

/// The longest agent name accepted (the longest DNS name).
pub const MAX_AGENT_NAME_LEN: usize = 253;

/// Why an agent name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("agent name is empty")]
    Empty,
    /// The name is longer than [`MAX_AGENT_NAME_LEN`].
    #[error("agent name is longer than {MAX_AGENT_NAME_LEN} characters")]
    TooLong,
    /// The name has a character outside `[a-zA-Z0-9_.-]`.
    #[error("agent name may only contain ASCII letters, digits, '_', '.' and '-'")]
    InvalidCharacter,
    /// The name is `.` or `..`, which would change meaning inside a URL path.
    #[error("agent name may not be '.' or '..'")]
    Dots,
}

/// Checks that `name` is a valid agent (or source) name:
/// `[a-zA-Z0-9_.-]{1,253}`, and not `.` or `..`.
///
/// Such names are safe as URL path segments and label values as they are.
pub fn validate_agent_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_AGENT_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(NameError::InvalidCharacter);
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    Ok(())
}

/// Identifies the credential an agent connected with: `shared`,
/// `token:<name>` or `cert:<common name>`.
///
/// The registry compares them to decide whether a new tunnel may replace
/// an existing one of the same name (same credential) or not (different
/// credential).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialId(String);

impl CredentialId {
    /// The credential of every agent using the shared token.
    pub fn shared() -> CredentialId {
        CredentialId("shared".to_owned())
    }

    /// The per-agent token credential of agent `name`.
    pub fn token(name: &str) -> CredentialId {
        CredentialId(format!("token:{name}"))
    }

    /// The client certificate credential with common name `common_name`.
    pub fn cert(common_name: &str) -> CredentialId {
        CredentialId(format!("cert:{common_name}"))
    }

    /// A credential id of another kind (for other registries and tests).
    pub fn new(id: impl Into<String>) -> CredentialId {
        CredentialId(id.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an agent's upgrade request is refused by [`AgentAuth::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The agent name is missing or invalid.
    #[error("invalid agent name: {0}")]
    InvalidName(#[from] NameError),
    /// No credential was presented.
    #[error("no credentials")]
    MissingCredentials,
    /// The credential presented is not valid for this agent name.
    #[error("invalid credentials")]
    InvalidCredentials,
}

impl AuthError {
    /// The HTTP status to answer the upgrade request with: 400 for a bad
    /// name, 401 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::InvalidName(_) => StatusCode::BAD_REQUEST,
            AuthError::MissingCredentials | AuthError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
        }
    }
}

/// Why an [`AgentAuth`] cannot be configured as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// The token file could not be read.
    #[error("cannot read token file {path:?}: {source}")]
    ReadTokenFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The token (after trimming whitespace) is empty.
    #[error("the shared token is empty")]
    EmptyToken,
    /// A per-agent token hash is not 64 hex digits.
    #[error("the token hash for agent {name:?} is not a hex SHA-256 digest (64 hex digits)")]
    InvalidHash {
        /// The agent name it was given for.
        name: String,
    },
    /// A per-agent token was given for an invalid agent name.
    #[error("invalid agent name {name:?}: {source}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is invalid.
        #[source]
        source: NameError,
    },
}

type Digest32 = [u8; 32];

/// Checks agents' credentials on the tunnel upgrade request.
///
/// Built empty with [`AgentAuth::new`] (which accepts nobody) and then
/// given a shared token, per-agent token hashes and/or client certificates.
/// See the [module documentation](self) for the rules.
#[derive(Clone, Default)]
pub struct AgentAuth {
    shared: Option<Digest32>,
    agents: HashMap<String, Digest32>,
    client_certificates: bool,
}

impl fmt::Debug for AgentAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentAuth")
            .field("shared_token", &self.shared.is_some())
            .field("agent_tokens", &self.agents.len())
            .field("client_certificates", &self.client_certificates)
            .finish()
    }
}

/// The SHA-256 digest of `token`, as 64 lowercase hex digits: the form
/// per-agent tokens are configured in.
pub fn sha256_hex(token: &str) -> String {
    use fmt::Write as _;
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn sha256(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hex_digest(hex: &str) -> Option<Digest32> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Compares two digests in constant time (every byte is looked at, no
/// early exit).
fn digest_eq(a: &Digest32, b: &Digest32) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

impl AgentAuth {
    /// An authenticator that accepts nobody until credentials are added.
    pub fn new() -> AgentAuth {
        AgentAuth::default()
    }

    /// Accepts `token` (trimmed of surrounding whitespace) as the shared
    /// token for every name without a per-agent token.
    pub fn with_shared_token(mut self, token: &str) -> Result<AgentAuth, AuthConfigError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthConfigError::EmptyToken);
        }
        self.shared = Some(sha256(token));
        Ok(self)
    }

    /// [`with_shared_token`](Self::with_shared_token) with the contents of
    /// a token file (trimmed, so a trailing newline does not matter).
    pub fn with_shared_token_file(self, path: &Path) -> Result<AgentAuth, AuthConfigError> {
        let contents =
            std::fs::read_to_string(path).map_err(|source| AuthConfigError::ReadTokenFile {
                path: path.to_owned(),
                source,
            })?;
        self.with_shared_token(&contents)
    }

    /// Gives agent `name` its own token, configured as the token's SHA-256
    /// digest in hex ([`sha256_hex`]). From then on only that token (or a
    /// client certificate, when enabled) is accepted for `name`.
    pub fn with_agent_token_sha256(
        mut self,
        name: &str,
        sha256_hex: &str,
    ) -> Result<AgentAuth, AuthConfigError> {
        validate_agent_name(name).map_err(|source| AuthConfigError::InvalidName {
            name: name.to_owned(),
            source,
        })?;
        let digest = parse_hex_digest(sha256_hex).ok_or_else(|| AuthConfigError::InvalidHash {
            name: name.to_owned(),
        })?;
        self.agents.insert(name.to_owned(), digest);
        Ok(self)
    }

    /// Whether a verified client certificate whose common name equals the
    /// agent name is accepted as its credential (off by default: turning it
    /// on lets every holder of a certificate from the client CA register
    /// under its common name).
    pub fn with_client_certificates(mut self, enabled: bool) -> AgentAuth {
        self.client_certificates = enabled;
        self
    }

    /// Whether a shared token is configured.
    pub fn has_shared_token(&self) -> bool {
        self.shared.is_some()
    }

    /// How many agents have their own token.
    pub fn agent_tokens(&self) -> usize {
        self.agents.len()
    }

    /// Whether client certificates are accepted.
    pub fn accepts_client_certificates(&self) -> bool {
        self.client_certificates
    }

    /// Checks that the agent may use `name`, given the bearer token and the
    /// verified client certificate of its upgrade request, and says which
    /// credential it used.
    pub fn verify(
        &self,
        name: &str,
        bearer: Option<&str>,
        peer: Option<&web::PeerIdentity>,
    ) -> Result<CredentialId, AuthError> {
        validate_agent_name(name)?;
        if self.client_certificates {
            if let Some(common_name) = peer.and_then(|peer| peer.common_name.as_deref()) {
                if common_name == name {
                    return Ok(CredentialId::cert(common_name));
                }
            }
        }
        let bearer = bearer.map(str::trim).filter(|token| !token.is_empty());
        if let Some(expected) = self.agents.get(name) {
            let token = bearer.ok_or(AuthError::MissingCredentials)?;
            return if digest_eq(&sha256(token), expected) {
                Ok(CredentialId::token(name))
            } else {
                Err(AuthError::InvalidCredentials)
            };
        }
        let token = bearer.ok_or(AuthError::MissingCredentials)?;
        match &self.shared {
            Some(expected) if digest_eq(&sha256(token), expected) => Ok(CredentialId::shared()),
            _ => Err(AuthError::InvalidCredentials),
        }
    }
}

/// The agents' credentials in use: an [`AgentAuth`] replaced whole when
/// the configuration is reloaded, so a check sees either the old rules or
/// the new ones, never a mix.
#[derive(Debug)]
pub struct AuthHandle(ArcSwap<AgentAuth>);

impl AuthHandle {
    /// Starts with `auth`.
    pub fn new(auth: AgentAuth) -> AuthHandle {
        AuthHandle(ArcSwap::from_pointee(auth))
    }

    /// [`AgentAuth::verify`] with the rules in use now.
    pub fn verify(
        &self,
        name: &str,
        bearer: Option<&str>,
        peer: Option<&web::PeerIdentity>,
    ) -> Result<CredentialId, AuthError> {
        self.0.load().verify(name, bearer, peer)
    }

    /// The rules in use now.
    pub fn current(&self) -> Arc<AgentAuth> {
        self.0.load_full()
    }

    /// Uses `auth` from now on. Tunnels already established stay.
    pub fn replace(&self, auth: AgentAuth) {
        self.0.store(Arc::new(auth));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_agent_name("host-1.example_a").is_ok());
        assert_eq!(validate_agent_name(""), Err(NameError::Empty));
        assert_eq!(validate_agent_name(".."), Err(NameError::Dots));
        assert_eq!(validate_agent_name("a/b"), Err(NameError::InvalidCharacter));
        assert_eq!(
            validate_agent_name(&"a".repeat(254)),
            Err(NameError::TooLong)
        );
        assert!(validate_agent_name(&"a".repeat(253)).is_ok());
    }

    #[test]
    fn shared_and_per_agent_tokens() {
        let auth = AgentAuth::new()
            .with_shared_token(" shared-secret\n")
            .unwrap()
            .with_agent_token_sha256("special", &sha256_hex("mine"))
            .unwrap();
        assert_eq!(
            auth.verify("a", Some("shared-secret"), None),
            Ok(CredentialId::shared())
        );
        assert_eq!(
            auth.verify("a", Some("wrong"), None),
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            auth.verify("a", None, None),
            Err(AuthError::MissingCredentials)
        );
        assert_eq!(
            auth.verify("special", Some("mine"), None),
            Ok(CredentialId::token("special"))
        );
        // A name with its own token is reserved to it.
        assert_eq!(
            auth.verify("special", Some("shared-secret"), None),
            Err(AuthError::InvalidCredentials)
        );
        assert!(matches!(
            auth.verify("bad/name", Some("shared-secret"), None),
            Err(AuthError::InvalidName(_))
        ));
    }

    #[test]
    fn client_certificates() {
        let mut peer = web::PeerIdentity::default();
        peer.common_name = Some("node-1".to_owned());
        let off = AgentAuth::new();
        assert_eq!(
            off.verify("node-1", None, Some(&peer)),
            Err(AuthError::MissingCredentials)
        );
        let on = AgentAuth::new().with_client_certificates(true);
        assert_eq!(
            on.verify("node-1", None, Some(&peer)),
            Ok(CredentialId::cert("node-1"))
        );
        assert_eq!(
            on.verify("node-2", None, Some(&peer)),
            Err(AuthError::MissingCredentials)
        );
    }

    #[test]
    fn hashes() {
        assert!(AgentAuth::new()
            .with_agent_token_sha256("a", "abc")
            .is_err());
        let upper = sha256_hex("t").to_uppercase();
        assert!(AgentAuth::new()
            .with_agent_token_sha256("a", &upper)
            .is_ok());
        assert!(AgentAuth::new().with_shared_token("  \n").is_err());
    }
}
