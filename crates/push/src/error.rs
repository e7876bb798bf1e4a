//! What can go wrong with a push, and which HTTP status says so.

use http::StatusCode;

use crate::key::KeyError;

/// Why a push, delete or wipe was refused. The message is the answer to the
/// client; only [`PushError::Unavailable`] and [`PushError::Internal`] are
/// the server's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The grouping key in the path is wrong (400).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The `ttl` parameter or `X-Push-TTL` header is wrong (400).
    #[error("{0}")]
    Ttl(String),
    /// The body does not parse (400). Nothing is recorded, as in
    /// Pushgateway.
    #[error("{0}")]
    Malformed(String),
    /// The body parses but breaks a consistency rule (400). The group's
    /// `push_failure_time_seconds` records it, as in Pushgateway.
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Inconsistent(String),
    /// A size or count limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The store cannot write to its data directory (503).
    #[error("the push store cannot write to its data directory: {0}")]
    Unavailable(String),
    /// A push was applied but could not be made durable (500).
    #[error("the push could not be stored durably")]
    Internal,
}

impl PushError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> StatusCode {
        match self {
            PushError::Key(_)
            | PushError::Ttl(_)
            | PushError::Malformed(_)
            | PushError::Inconsistent(_) => StatusCode::BAD_REQUEST,
            PushError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PushError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PushError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `result` label of the request counter.
    pub(crate) fn result(&self) -> &'static str {
        match self {
            PushError::Key(_) | PushError::Ttl(_) | PushError::Malformed(_) => "invalid",
            PushError::Inconsistent(_) => "inconsistent",
            PushError::TooLarge(_) => "too_large",
            PushError::Unavailable(_) | PushError::Internal => "error",
        }
    }
}
