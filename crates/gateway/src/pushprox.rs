//! PushProx wire compatibility: the gateway speaks the PushProx proxy's
//! protocol (`POST /poll`, `POST /push`, `/clients`), so unmodified
//! PushProx clients register with it and Prometheus scrapes them through
//! it as `proxy_url`, exactly as it scrapes tunnel agents. Users migrate one
//! side at a time.
//!
//! # The protocol (PushProx v0.2.0 and master are the same on the wire)
//!
//! 1. A client sends `POST /poll` whose body is its FQDN. The proxy holds
//!    the request until a scrape for that FQDN arrives, then answers 200
//!    with the scrape request written as an HTTP/1.1 request in absolute
//!    form, as Go's `http.Request.WriteProxy` writes it:
//!
//!    ```text
//!    GET http://node-1:9100/metrics HTTP/1.1\r\n
//!    Host: node-1:9100\r\n
//!    User-Agent: Prometheus/2.42.0\r\n
//!    Accept: text/plain;version=0.0.4\r\n
//!    Accept-Encoding: gzip\r\n
//!    Id: 0b9c4a6e-2f7d-4c1e-9a55-3d2f1e8b7c60\r\n
//!    X-Prometheus-Scrape-Timeout-Seconds: 9.025\r\n
//!    \r\n
//!    ```
//!
//!    A newer poll for the same FQDN makes the older one answer 408.
//! 2. The client scrapes the target and sends `POST /push` whose body is
//!    the target's response as Go's `http.Response.Write` writes it (status
//!    line, headers including `Id`, then the body with a `Content-Length`,
//!    chunked, or, for the error responses Go clients build themselves
//!    (`HTTP/0.0 500 ...`), until the end).
//! 3. The proxy answers Prometheus with the pushed status and body.
//!
//! [`Coordinator`] holds the state between the three: the waiting poll of
//! each client, the scrapes handed out and not yet pushed (by their `Id`,
//! a random UUID v4), and when each client last polled. The HTTP handlers
//! ([`poll`], [`push`] and [`proxy_scrape`], which the `proxy_url` route
//! calls) check credentials and bounds and translate to and from the wire.
//!
//! # Routing
//!
//! A `proxy_url` scrape of `http://<host>:<port>/...` goes to a tunnel
//! agent named `<host>` when one is connected; otherwise to a PushProx
//! client of that name if it polled within
//! [`GatewayConfig::retention`](crate::GatewayConfig) (5 minutes, PushProx's
//! registration timeout); otherwise it is answered 404 (or 503 for a
//! recently disconnected tunnel agent) at once. The original absolute URL
//! goes to the client unchanged, `_scheme=https` included: switching to
//! https is the client's business.
//!
//! PushProx clients are listed in `/clients` (the shape PushProx users
//! feed to `file_sd`) but not in `/api/v1/sd` nor reached by path mode
//! (`/agents/<name>/...`): a PushProx scrape names a host and port, which
//! only `proxy_url` mode carries.
//!
//! # Credentials (deliberately unlike PushProx, whose proxy has none)
//!
//! `/poll` and `/push` need the credential a tunnel agent of the same name
//! would need ([`AgentAuth::verify`](crate::AgentAuth::verify)): the token
//! as the password of `Authorization: Basic` (what an unmodified Go
//! PushProx client sends when its `--proxy-url` carries user information,
//! `https://<fqdn>:<token>@gateway:9438/`), or as `Authorization: Bearer`,
//! or a verified client certificate whose common name is the FQDN. The user
//! part of Basic credentials, when not empty, must be the FQDN. Missing or
//! wrong credentials are answered 401 and counted in
//! `promrelay_gateway_auth_failures_total`.
//!
//! # Who may hold a name
//!
//! One name, one owner, whichever protocol it speaks, as for tunnels (see
//! [`crate::registry`]):
//!
//! - a poll is refused with 409 while a tunnel agent of another credential
//!   is connected under the name, or while a PushProx client of another
//!   credential has polled under it within the retention period; and a
//!   tunnel of another credential is refused with 409 while such a PushProx
//!   client holds the name ([`Coordinator::check`]);
//! - the same credential may poll from anywhere: its newest poll wins and
//!   the older one answers 408, as in PushProx;
//! - a push is accepted only for a scrape that was handed to a poll of the
//!   same name and credential; anything else is refused (404 when no such
//!   scrape is waiting, 403 when it was handed to someone else).
//!
//! # Deliberate differences from PushProx
//!
//! - A poll is held at most [`DEFAULT_MAX_POLL_HOLD`] (PushProx: forever),
//!   then answered 408 as PushProx answers an expired poll, so the client
//!   polls again; that keeps polls under the idle timeouts of proxies and
//!   load balancers, and a dead client's poll does not linger.
//! - A scrape of an unknown client is 404 at once (PushProx: a hang until
//!   the timeout, then 500). A scrape of a known client with no poll
//!   waiting waits for its next poll (clients poll again right after each
//!   scrape) until the deadline, then 504 saying which step did not
//!   happen: no poll, or no push.
//! - A push for an unknown or expired `Id` is refused at once (PushProx:
//!   held until its default timeout, then 500).
//! - The client is told the time left for the scrape (less a margin for
//!   answering), not Prometheus's original timeout, so that its push
//!   arrives while Prometheus still waits. Only `User-Agent`, `Accept`,
//!   `Accept-Encoding`, the timeout and `Id` are passed on; Prometheus's
//!   other headers (such as credentials meant for the target) are not.
//! - Prometheus gets the pushed status, `Content-Type`,
//!   `Content-Encoding` and body (PushProx copies every header).
//! - Everything from outside is bounded: the poll body
//!   ([`MAX_POLL_BODY`]), the pushed response's head ([`MAX_PUSH_HEAD`],
//!   [`MAX_PUSH_HEADERS`]) and body
//!   ([`GatewayConfig::fanin_max_body`](crate::GatewayConfig)), the scrapes
//!   in flight per client ([`DEFAULT_MAX_SCRAPES_PER_CLIENT`]) and the
//!   number of clients ([`GatewayConfig::max_agents`](crate::GatewayConfig)).

use core::fmt;
use core::fmt::Write as _;
use core::time::Duration;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING,
    CONTENT_TYPE, USER_AGENT,
};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use tokio::sync::oneshot;
use tokio::time::Instant;
use web::PeerIdentity;

use crate::auth::{validate_agent_name, AuthError, CredentialId, NameError};
use crate::metrics::{ScrapeOutcome, ScrapeRoute};
use crate::registry::{RegisterError, Route};
use crate::routes::scrape_deadline;
use crate::Gateway;

/// The header that links a scrape request to its pushed response.
pub const ID_HEADER: &str = "Id";

/// The largest `/poll` body accepted: an FQDN is at most 253 bytes; the
/// rest is room for whitespace, which is trimmed as PushProx does.
pub const MAX_POLL_BODY: usize = 1024;

/// The longest a poll is held before it is answered 408 (PushProx's
/// answer to an expired poll) so that the client polls again. Shorter than
/// the 60 s idle timeout common in proxies and load balancers.
pub const DEFAULT_MAX_POLL_HOLD: Duration = Duration::from_secs(30);

/// The most scrapes of one client in flight at once (waiting for a poll or
/// for the push); more are answered 503.
pub const DEFAULT_MAX_SCRAPES_PER_CLIENT: usize = 64;

/// The largest status line and header section of a pushed response.
pub const MAX_PUSH_HEAD: usize = 64 * 1024;

/// The most header fields of a pushed response.
pub const MAX_PUSH_HEADERS: usize = 64;

/// The user agent written into a scrape request when the scraper sent none.
const DEFAULT_USER_AGENT: &str = concat!("promrelay-gateway/", env!("CARGO_PKG_VERSION"));

/// The media type of an HTTP message as a body: what a poll answer holds.
const MESSAGE_HTTP: &str = "message/http";

// ---------------------------------------------------------------------------
// Scrape ids
// ---------------------------------------------------------------------------

/// The `Id` of one scrape: a random UUID v4 in its lowercase text form, as
/// PushProx makes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScrapeId(String);

impl ScrapeId {
    /// A new random id.
    fn random(random: &SystemRandom) -> Result<ScrapeId, ScrapeError> {
        let mut bytes = [0u8; 16];
        random.fill(&mut bytes).map_err(|_| ScrapeError::Random)?;
        // Version 4 (random), variant RFC 4122.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut text = String::with_capacity(36);
        for (index, byte) in bytes.iter().enumerate() {
            if matches!(index, 4 | 6 | 8 | 10) {
                text.push('-');
            }
            let _ = write!(text, "{byte:02x}");
        }
        Ok(ScrapeId(text))
    }

    /// Reads an id from a header value: a UUID in its text form (any
    /// case); `None` for anything else.
    pub fn parse(text: &str) -> Option<ScrapeId> {
        let text = text.trim();
        let well_formed = text.len() == 36
            && text.bytes().enumerate().all(|(index, byte)| {
                if matches!(index, 8 | 13 | 18 | 23) {
                    byte == b'-'
                } else {
                    byte.is_ascii_hexdigit()
                }
            });
        well_formed.then(|| ScrapeId(text.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScrapeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------
// The wire: scrape requests out, pushed responses in
// ---------------------------------------------------------------------------

/// A scrape to hand to a PushProx client: what Prometheus asked for, kept
/// until a poll takes it and written then, so that the timeout the client
/// is told is the time actually left.
#[derive(Debug, Clone)]
pub struct ScrapeRequest {
    /// The absolute URL Prometheus asked the proxy for.
    url: String,
    /// Its authority, for the `Host` header.
    host: String,
    /// Prometheus's `User-Agent`.
    user_agent: Option<HeaderValue>,
    /// Prometheus's `Accept` values.
    accept: Vec<HeaderValue>,
    /// Prometheus's `Accept-Encoding` values.
    accept_encoding: Vec<HeaderValue>,
    /// When the gateway stops waiting for the push.
    deadline: Instant,
}

impl ScrapeRequest {
    /// The scrape of the absolute-form `uri` with the scraper's `headers`,
    /// to be answered by `deadline`; `None` when `uri` is not absolute.
    pub fn new(uri: &Uri, headers: &HeaderMap, deadline: Instant) -> Option<ScrapeRequest> {
        let host = uri.authority()?.as_str().to_owned();
        uri.scheme()?;
        let values = |name: &HeaderName| headers.get_all(name).iter().cloned().collect();
        Some(ScrapeRequest {
            url: uri.to_string(),
            host,
            user_agent: headers.get(USER_AGENT).cloned(),
            accept: values(&ACCEPT),
            accept_encoding: values(&ACCEPT_ENCODING),
            deadline,
        })
    }

    /// The time the client has for the scrape when handed it at `now`: the
    /// time left less a margin for pushing and answering; `None` when
    /// nothing is left.
    fn client_timeout(&self, now: Instant) -> Option<Duration> {
        let left = web::work_budget(self.deadline.saturating_duration_since(now));
        (left >= Duration::from_millis(1)).then_some(left)
    }

    /// The request as Go's `http.Request.WriteProxy` writes it: request
    /// line in absolute form, `Host`, `User-Agent`, then the other headers
    /// sorted by name, with the client's `timeout` and `id`.
    pub fn write(&self, id: &ScrapeId, timeout: Duration) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.url.len());
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.url.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        // Header values cannot hold CR or LF (`HeaderValue` refuses them),
        // so nothing from the scraper can add lines of its own.
        let mut header = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        header("Host", self.host.as_bytes());
        let user_agent = self
            .user_agent
            .as_ref()
            .map_or(DEFAULT_USER_AGENT.as_bytes(), HeaderValue::as_bytes);
        header("User-Agent", user_agent);
        // Sorted by name, as Go writes them.
        for value in &self.accept {
            header("Accept", value.as_bytes());
        }
        for value in &self.accept_encoding {
            header("Accept-Encoding", value.as_bytes());
        }
        header(ID_HEADER, id.as_str().as_bytes());
        header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{:.3}", timeout.as_secs_f64()).as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// A response pushed by a client, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its `Id` header, linking it to the scrape.
    pub id: Option<String>,
    /// Its `Content-Type`.
    pub content_type: Option<HeaderValue>,
    /// Its `Content-Encoding` (a gzipped page stays gzipped).
    pub content_encoding: Option<HeaderValue>,
    /// Its body, without transfer encoding.
    pub body: Bytes,
}

/// Why a pushed body is not a usable HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The status line or header section does not end.
    #[error("the response head is incomplete")]
    Incomplete,
    /// The status line and headers are longer than [`MAX_PUSH_HEAD`].
    #[error("the response head is longer than {MAX_PUSH_HEAD} bytes")]
    HeadTooLarge,
    /// The status line is not `HTTP/<major>.<minor> <code> [reason]`.
    #[error("bad status line {0:?}")]
    StatusLine(String),
    /// More than [`MAX_PUSH_HEADERS`] header fields.
    #[error("more than {MAX_PUSH_HEADERS} header fields")]
    TooManyHeaders,
    /// A header field is malformed.
    #[error("bad header field: {0}")]
    Header(String),
    /// `Content-Length` is not a number, or given twice with two values.
    #[error("bad Content-Length {0:?}")]
    ContentLength(String),
    /// A transfer coding other than `chunked`.
    #[error("unsupported Transfer-Encoding {0:?}")]
    TransferEncoding(String),
    /// The body ends before its announced length or last chunk.
    #[error("the body is truncated")]
    Truncated,
    /// A chunk is malformed.
    #[error("bad chunked body: {0}")]
    Chunk(&'static str),
    /// The body is larger than allowed.
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Parses `raw` as an HTTP/1.x response the way Go's `http.ReadResponse`
/// reads what `http.Response.Write` wrote, with a body of at most
/// `max_body` bytes.
///
/// Any `HTTP/<digit>.<digit>` version is accepted: Go clients write the
/// error responses they build themselves as `HTTP/0.0 500 ...`.
pub fn parse_pushed_response(raw: &[u8], max_body: usize) -> Result<PushedResponse, WireError> {
    let head_window = &raw[..raw.len().min(MAX_PUSH_HEAD)];
    let Some(line_end) = head_window.iter().position(|&b| b == b'\n') else {
        return Err(if raw.len() > MAX_PUSH_HEAD {
            WireError::HeadTooLarge
        } else {
            WireError::Incomplete
        });
    };
    let status = parse_status_line(&head_window[..line_end])?;

    let mut fields = [httparse::EMPTY_HEADER; MAX_PUSH_HEADERS];
    let header_window = &head_window[line_end + 1..];
    let (consumed, fields) = match httparse::parse_headers(header_window, &mut fields) {
        Ok(httparse::Status::Complete((consumed, fields))) => (consumed, fields),
        Ok(httparse::Status::Partial) if raw.len() > MAX_PUSH_HEAD => {
            return Err(WireError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Err(WireError::Incomplete),
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::TooManyHeaders),
        Err(error) => return Err(WireError::Header(error.to_string())),
    };
    let rest = &raw[line_end + 1 + consumed..];

    let mut pushed = PushedResponse {
        status,
        id: None,
        content_type: None,
        content_encoding: None,
        body: Bytes::new(),
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for field in fields.iter() {
        let value = field.value;
        let name = field.name;
        if name.eq_ignore_ascii_case(ID_HEADER) {
            let text = core::str::from_utf8(value)
                .map_err(|_| WireError::Header(format!("{name}: not text")))?;
            pushed.id = Some(text.trim().to_owned());
        } else if name.eq_ignore_ascii_case("content-type") {
            pushed.content_type = Some(header_value(name, value)?);
        } else if name.eq_ignore_ascii_case("content-encoding") {
            pushed.content_encoding = Some(header_value(name, value)?);
        } else if name.eq_ignore_ascii_case("content-length") {
            let text = String::from_utf8_lossy(value);
            let length: usize = text
                .trim()
                .parse()
                .map_err(|_| WireError::ContentLength(text.clone().into_owned()))?;
            if content_length.is_some_and(|known| known != length) {
                return Err(WireError::ContentLength(text.into_owned()));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let text = String::from_utf8_lossy(value);
            let codings: Vec<&str> = text
                .split(',')
                .map(str::trim)
                .filter(|coding| !coding.is_empty())
                .collect();
            match codings.as_slice() {
                [] => {}
                [only] if only.eq_ignore_ascii_case("identity") => {}
                [only] if only.eq_ignore_ascii_case("chunked") => chunked = true,
                _ => return Err(WireError::TransferEncoding(text.into_owned())),
            }
        }
    }

    pushed.body = if chunked {
        // Chunked framing wins over a Content-Length, as in Go.
        decode_chunked(rest, max_body)?
    } else if let Some(length) = content_length {
        if length > max_body {
            return Err(WireError::BodyTooLarge { limit: max_body });
        }
        let body = rest.get(..length).ok_or(WireError::Truncated)?;
        Bytes::copy_from_slice(body)
    } else {
        // No framing: the body runs to the end, as with `Connection: close`.
        if rest.len() > max_body {
            return Err(WireError::BodyTooLarge { limit: max_body });
        }
        Bytes::copy_from_slice(rest)
    };
    Ok(pushed)
}

fn header_value(name: &str, value: &[u8]) -> Result<HeaderValue, WireError> {
    HeaderValue::from_bytes(value).map_err(|_| WireError::Header(format!("{name}: invalid value")))
}

/// `HTTP/<digit>.<digit> <3 digits>[ <reason>]`, with or without `\r`.
fn parse_status_line(line: &[u8]) -> Result<StatusCode, WireError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let bad = || WireError::StatusLine(String::from_utf8_lossy(line).into_owned());
    let rest = line.strip_prefix(b"HTTP/").ok_or_else(bad)?;
    match rest {
        [major, b'.', minor, b' ', code @ ..]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            let digits = code.get(..3).ok_or_else(bad)?;
            if !digits.iter().all(u8::is_ascii_digit) || code.get(3).is_some_and(|&b| b != b' ') {
                return Err(bad());
            }
            let code = digits
                .iter()
                .fold(0u16, |code, digit| code * 10 + u16::from(digit - b'0'));
            StatusCode::from_u16(code).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// Removes chunked transfer coding from `raw`, keeping at most `max_body`
/// bytes; trailer fields are skipped.
fn decode_chunked(mut raw: &[u8], max_body: usize) -> Result<Bytes, WireError> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(raw) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Err(WireError::Truncated),
            Err(_) => return Err(WireError::Chunk("bad chunk size line")),
        };
        raw = &raw[consumed..];
        if size == 0 {
            // Trailer fields (if any) end with an empty line; Go writes none.
            let mut trailers = [httparse::EMPTY_HEADER; MAX_PUSH_HEADERS];
            return match httparse::parse_headers(raw, &mut trailers) {
                Ok(httparse::Status::Complete(_)) => Ok(Bytes::from(body)),
                Ok(httparse::Status::Partial) => Err(WireError::Truncated),
                Err(_) => Err(WireError::Chunk("bad trailer")),
            };
        }
        let size =
            usize::try_from(size).map_err(|_| WireError::BodyTooLarge { limit: max_body })?;
        if size > max_body.saturating_sub(body.len()) {
            return Err(WireError::BodyTooLarge { limit: max_body });
        }
        let chunk = raw.get(..size).ok_or(WireError::Truncated)?;
        body.extend_from_slice(chunk);
        raw = &raw[size..];
        raw = raw
            .strip_prefix(b"\r\n")
            .or_else(|| raw.strip_prefix(b"\n"))
            .ok_or(if raw.is_empty() {
                WireError::Truncated
            } else {
                WireError::Chunk("chunk not followed by CRLF")
            })?;
    }
}

// ---------------------------------------------------------------------------
// The coordinator
// ---------------------------------------------------------------------------

/// Why a scrape through a PushProx client failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// No PushProx client of that name polled within the retention period.
    #[error("no PushProx client named {0}")]
    Unknown(String),
    /// The client has its maximum of scrapes in flight.
    #[error("PushProx client {client} already has {max} scrapes in flight")]
    Busy {
        /// The client.
        client: String,
        /// The maximum.
        max: usize,
    },
    /// The client did not poll before the deadline, so it never got the
    /// scrape.
    #[error("PushProx client {client} did not poll within {waited:?}; is it still running?")]
    NoPoll {
        /// The client.
        client: String,
        /// How long the scrape waited.
        waited: Duration,
    },
    /// The client took the scrape but did not push the answer in time.
    #[error("PushProx client {client} took the scrape but pushed no answer within {waited:?}")]
    NoPush {
        /// The client.
        client: String,
        /// How long the scrape waited.
        waited: Duration,
    },
    /// The system's random number generator failed.
    #[error("cannot make a scrape id: the random number generator failed")]
    Random,
}

impl ScrapeError {
    fn status(&self) -> StatusCode {
        match self {
            ScrapeError::Unknown(_) => StatusCode::NOT_FOUND,
            ScrapeError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ScrapeError::NoPoll { .. } | ScrapeError::NoPush { .. } => StatusCode::GATEWAY_TIMEOUT,
            ScrapeError::Random => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn outcome(&self) -> ScrapeOutcome {
        match self {
            ScrapeError::Unknown(_) => ScrapeOutcome::Unknown,
            ScrapeError::NoPoll { .. } | ScrapeError::NoPush { .. } => ScrapeOutcome::Timeout,
            ScrapeError::Busy { .. } | ScrapeError::Random => ScrapeOutcome::Error,
        }
    }
}

/// Why a push was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// No scrape of that id is waiting for its push (never handed out,
    /// already answered, or given up at its deadline).
    #[error("no scrape with Id {0} is waiting for a push")]
    Unknown(ScrapeId),
    /// The scrape was handed to another client or credential.
    #[error("scrape {0} was not handed to this client")]
    NotYours(ScrapeId),
}

/// One PushProx client as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Its FQDN.
    pub name: String,
    /// The credential of its latest poll.
    pub credential: CredentialId,
    /// When it last polled.
    pub last_poll: Instant,
    /// Whether a poll of it is held now.
    pub polling: bool,
    /// Its scrapes in flight.
    pub scrapes: usize,
}

/// What a held poll is answered with.
#[derive(Debug)]
enum PollAnswer {
    /// A scrape, written out.
    Scrape { id: ScrapeId, request: Vec<u8> },
    /// A newer poll of the same client took over.
    Replaced,
}

/// A held poll.
#[derive(Debug)]
struct WaitingPoll {
    /// Tells this poll from a newer one of the same client.
    serial: u64,
    /// The credential it came with: scrapes it takes may only be pushed
    /// with the same one.
    credential: CredentialId,
    answer: oneshot::Sender<PollAnswer>,
}

#[derive(Debug)]
struct Client {
    /// The credential of the latest poll; another credential may not use
    /// the name while the client is known.
    credential: CredentialId,
    last_poll: Instant,
    /// The held poll, if any; only the newest is kept.
    waiting: Option<WaitingPoll>,
    /// Scrapes waiting for a poll, oldest first.
    queue: VecDeque<ScrapeId>,
    /// Scrapes in flight, queued or handed out.
    scrapes: usize,
}

impl Client {
    fn is_polling(&self) -> bool {
        self.waiting
            .as_ref()
            .is_some_and(|poll| !poll.answer.is_closed())
    }

    fn is_known(&self, now: Instant, retention: Duration) -> bool {
        self.is_polling() || now.saturating_duration_since(self.last_poll) < retention
    }
}

#[derive(Debug)]
struct Scrape {
    client: String,
    request: ScrapeRequest,
    /// `Some` once handed to a poll: the credential the push must carry.
    handed_to: Option<CredentialId>,
    reply: Option<oneshot::Sender<PushedResponse>>,
}

#[derive(Debug, Default)]
struct Inner {
    clients: HashMap<String, Client>,
    scrapes: HashMap<ScrapeId, Scrape>,
    next_poll: u64,
}

impl Inner {
    /// Forgets `id`, wherever it is; gives back what it was.
    fn forget(&mut self, id: &ScrapeId) -> Option<Scrape> {
        let scrape = self.scrapes.remove(id)?;
        if let Some(client) = self.clients.get_mut(&scrape.client) {
            client.scrapes = client.scrapes.saturating_sub(1);
            if scrape.handed_to.is_none() {
                client.queue.retain(|queued| queued != id);
            }
        }
        Some(scrape)
    }

    /// Takes the oldest queued scrape of `name` that still has time, marks
    /// it handed to `credential` and writes it out.
    fn take_queued(
        &mut self,
        name: &str,
        credential: &CredentialId,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let client = self.clients.get_mut(name)?;
        while let Some(id) = client.queue.pop_front() {
            let Some(scrape) = self.scrapes.get_mut(&id) else {
                continue;
            };
            // A scrape without time left stays until its own deadline
            // forgets it; nobody would read its answer.
            if let Some(timeout) = scrape.request.client_timeout(now) {
                scrape.handed_to = Some(credential.clone());
                return Some(scrape.request.write(&id, timeout));
            }
        }
        None
    }

    fn sweep(&mut self, now: Instant, retention: Duration) {
        self.clients
            .retain(|_, client| client.scrapes > 0 || client.is_known(now, retention));
    }
}

/// The PushProx side of the gateway: held polls, scrapes in flight and
/// when each client last polled (see the [module documentation](self)).
///
/// All state sits behind one `std::sync::Mutex`: every operation is a few
/// map updates and a non-blocking channel send, never an `.await`, so a
/// blocking mutex is correct and cheaper than an async one. Time is tokio's
/// clock, so tests can pause it.
pub struct Coordinator {
    state: Mutex<Inner>,
    /// How long a client stays known after its last poll.
    retention: Duration,
    /// The most clients held at once.
    max_clients: usize,
    /// The longest a poll is held.
    max_poll_hold: Duration,
    /// The most scrapes of one client in flight.
    max_scrapes_per_client: usize,
    /// Makes scrape ids.
    random: SystemRandom,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("retention", &self.retention)
            .field("max_clients", &self.max_clients)
            .field("max_poll_hold", &self.max_poll_hold)
            .field("max_scrapes_per_client", &self.max_scrapes_per_client)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator that knows a client for `retention` after its last
    /// poll and holds at most `max_clients`, holding polls for at most
    /// [`DEFAULT_MAX_POLL_HOLD`].
    pub fn new(retention: Duration, max_clients: usize) -> Coordinator {
        Coordinator {
            state: Mutex::new(Inner::default()),
            retention,
            max_clients,
            max_poll_hold: DEFAULT_MAX_POLL_HOLD,
            max_scrapes_per_client: DEFAULT_MAX_SCRAPES_PER_CLIENT,
            random: SystemRandom::new(),
        }
    }

    /// Holds polls for at most `hold` instead (at least 1 ms).
    pub fn with_max_poll_hold(mut self, hold: Duration) -> Coordinator {
        self.max_poll_hold = hold.max(Duration::from_millis(1));
        self
    }

    /// Allows at most `max` scrapes of one client in flight (at least 1).
    pub fn with_max_scrapes_per_client(mut self, max: usize) -> Coordinator {
        self.max_scrapes_per_client = max.max(1);
        self
    }

    /// The longest a poll is held.
    pub fn max_poll_hold(&self) -> Duration {
        self.max_poll_hold
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent, even one
        // interrupted by a panic, so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a PushProx client of another credential than `credential`
    /// holds `name` (it polled within the retention period): a tunnel of
    /// that credential may not take the name then.
    pub fn check(&self, name: &str, credential: &CredentialId) -> Result<(), RegisterError> {
        let now = Instant::now();
        let state = self.lock();
        match state.clients.get(name) {
            Some(client)
                if client.is_known(now, self.retention) && client.credential != *credential =>
            {
                Err(RegisterError::NameTaken {
                    name: name.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether a PushProx client of this name polled within the retention
    /// period (or is polling now).
    pub fn is_known(&self, name: &str) -> bool {
        let now = Instant::now();
        let state = self.lock();
        state
            .clients
            .get(name)
            .is_some_and(|client| client.is_known(now, self.retention))
    }

    /// The names of the clients known now, sorted: what `/clients` lists.
    pub fn known_clients(&self) -> Vec<String> {
        self.clients()
            .into_iter()
            .map(|client| client.name)
            .collect()
    }

    /// Every client known now, sorted by name.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let now = Instant::now();
        let mut state = self.lock();
        state.sweep(now, self.retention);
        let mut clients: Vec<ClientInfo> = state
            .clients
            .iter()
            .filter(|(_, client)| client.is_known(now, self.retention))
            .map(|(name, client)| ClientInfo {
                name: name.clone(),
                credential: client.credential.clone(),
                last_poll: client.last_poll,
                polling: client.is_polling(),
                scrapes: client.scrapes,
            })
            .collect();
        drop(state);
        clients.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        clients
    }

    /// A poll of client `name` with `credential` (already verified): either
    /// a scrape that was waiting for it, or a held poll to
    /// [`wait`](HeldPoll::wait) on. Any older held poll of the client
    /// answers [`PollOutcome::Replaced`].
    pub fn poll(&self, name: &str, credential: &CredentialId) -> Result<Poll<'_>, RegisterError> {
        let now = Instant::now();
        let mut state = self.lock();
        match state.clients.get_mut(name) {
            Some(client)
                if client.is_known(now, self.retention) && client.credential != *credential =>
            {
                return Err(RegisterError::NameTaken {
                    name: name.to_owned(),
                });
            }
            Some(client) => {
                client.credential = credential.clone();
                client.last_poll = now;
            }
            None => {
                if state.clients.len() >= self.max_clients {
                    state.sweep(now, self.retention);
                    if state.clients.len() >= self.max_clients {
                        return Err(RegisterError::Full {
                            max: self.max_clients,
                        });
                    }
                }
                state.clients.insert(
                    name.to_owned(),
                    Client {
                        credential: credential.clone(),
                        last_poll: now,
                        waiting: None,
                        queue: VecDeque::new(),
                        scrapes: 0,
                    },
                );
            }
        }
        if let Some(request) = state.take_queued(name, credential, now) {
            return Ok(Poll::Ready(request));
        }
        let serial = state.next_poll;
        state.next_poll += 1;
        let (answer, receiver) = oneshot::channel();
        let older = state.clients.get_mut(name).and_then(|client| {
            client.waiting.replace(WaitingPoll {
                serial,
                credential: credential.clone(),
                answer,
            })
        });
        drop(state);
        if let Some(older) = older {
            let _ = older.answer.send(PollAnswer::Replaced);
        }
        Ok(Poll::Held(HeldPoll {
            coordinator: self,
            name: name.to_owned(),
            serial,
            answer: receiver,
            settled: false,
        }))
    }

    /// Sends `request` to client `name`: to its held poll at once, or to
    /// its next poll. The [`ScrapeTicket`] waits for the push.
    pub fn scrape(
        &self,
        name: &str,
        request: ScrapeRequest,
    ) -> Result<ScrapeTicket<'_>, ScrapeError> {
        let id = ScrapeId::random(&self.random)?;
        let now = Instant::now();
        let deadline = request.deadline;
        let (reply, replied) = oneshot::channel();
        let mut state = self.lock();
        let Inner {
            clients, scrapes, ..
        } = &mut *state;
        let client = match clients.get_mut(name) {
            Some(client) if client.is_known(now, self.retention) => client,
            _ => return Err(ScrapeError::Unknown(name.to_owned())),
        };
        if client.scrapes >= self.max_scrapes_per_client {
            return Err(ScrapeError::Busy {
                client: name.to_owned(),
                max: self.max_scrapes_per_client,
            });
        }
        let mut handed_to = None;
        let timeout = request.client_timeout(now);
        let poll = timeout.and_then(|_| client.waiting.take());
        if let (Some(poll), Some(timeout)) = (poll, timeout) {
            let written = request.write(&id, timeout);
            let credential = poll.credential;
            match poll.answer.send(PollAnswer::Scrape {
                id: id.clone(),
                request: written,
            }) {
                Ok(()) => handed_to = Some(credential),
                // The poll was given up (its client went away): wait for
                // the next one.
                Err(_) => client.queue.push_back(id.clone()),
            }
        } else {
            client.queue.push_back(id.clone());
        }
        client.scrapes += 1;
        scrapes.insert(
            id.clone(),
            Scrape {
                client: name.to_owned(),
                request,
                handed_to,
                reply: Some(reply),
            },
        );
        drop(state);
        Ok(ScrapeTicket {
            coordinator: self,
            id,
            client: name.to_owned(),
            replied,
            started: now,
            deadline,
        })
    }

    /// The client a scrape of `id` was handed to, if it is waiting for its
    /// push: the name whose credential the push must carry.
    pub fn handed_to(&self, id: &ScrapeId) -> Option<String> {
        let state = self.lock();
        state
            .scrapes
            .get(id)
            .filter(|scrape| scrape.handed_to.is_some())
            .map(|scrape| scrape.client.clone())
    }

    /// Delivers the `response` pushed by client `name` with `credential`
    /// for scrape `id` to the scraper waiting for it.
    pub fn complete(
        &self,
        id: &ScrapeId,
        name: &str,
        credential: &CredentialId,
        response: PushedResponse,
    ) -> Result<(), PushError> {
        let mut state = self.lock();
        let Some(scrape) = state.scrapes.get_mut(id) else {
            return Err(PushError::Unknown(id.clone()));
        };
        match &scrape.handed_to {
            None => return Err(PushError::Unknown(id.clone())),
            Some(handed_to) if handed_to != credential || scrape.client != name => {
                return Err(PushError::NotYours(id.clone()));
            }
            Some(_) => {}
        }
        let reply = scrape.reply.take();
        state.forget(id);
        drop(state);
        let delivered = match reply {
            Some(reply) => reply.send(response).is_ok(),
            None => false,
        };
        if delivered {
            Ok(())
        } else {
            // The scraper gave up just now.
            Err(PushError::Unknown(id.clone()))
        }
    }

    /// Called when a held poll ends without having been answered: drops it
    /// if it is still the client's held poll, and puts back a scrape it
    /// was handed too late to deliver.
    fn poll_abandoned(&self, name: &str, serial: u64, answer: &mut oneshot::Receiver<PollAnswer>) {
        let mut state = self.lock();
        if let Some(client) = state.clients.get_mut(name) {
            if client
                .waiting
                .as_ref()
                .is_some_and(|poll| poll.serial == serial)
            {
                client.waiting = None;
                return;
            }
        }
        answer.close();
        if let Ok(PollAnswer::Scrape { id, .. }) = answer.try_recv() {
            let Inner {
                clients, scrapes, ..
            } = &mut *state;
            if let (Some(scrape), Some(client)) = (scrapes.get_mut(&id), clients.get_mut(name)) {
                scrape.handed_to = None;
                client.queue.push_front(id);
            }
        }
    }
}

/// What a poll gets at once.
#[derive(Debug)]
pub enum Poll<'a> {
    /// A scrape was waiting: the written request.
    Ready(Vec<u8>),
    /// Nothing was waiting: the poll is held.
    Held(HeldPoll<'a>),
}

/// How a held poll ended.
#[derive(Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// A scrape for the client: the written request.
    Scrape(Vec<u8>),
    /// A newer poll of the client took over.
    Replaced,
    /// No scrape came within the hold.
    Expired,
}

/// A held poll. Dropping it before it ends (its client went away) lets go
/// of it, and puts back a scrape it had just been handed.
#[derive(Debug)]
pub struct HeldPoll<'a> {
    coordinator: &'a Coordinator,
    name: String,
    serial: u64,
    answer: oneshot::Receiver<PollAnswer>,
    /// Whether the poll ended with an answer (so dropping does nothing).
    settled: bool,
}

impl HeldPoll<'_> {
    /// Waits for a scrape, at most the coordinator's maximum hold.
    pub async fn wait(mut self) -> PollOutcome {
        let hold = self.coordinator.max_poll_hold;
        let answer = match tokio::time::timeout(hold, &mut self.answer).await {
            Ok(Ok(answer)) => answer,
            // The coordinator dropped the poll without answering, or the
            // hold is over: take it back (and any scrape that raced in).
            Ok(Err(_)) | Err(_) => {
                self.coordinator
                    .poll_abandoned(&self.name, self.serial, &mut self.answer);
                self.settled = true;
                return PollOutcome::Expired;
            }
        };
        self.settled = true;
        match answer {
            PollAnswer::Scrape { request, .. } => PollOutcome::Scrape(request),
            PollAnswer::Replaced => PollOutcome::Replaced,
        }
    }
}

impl Drop for HeldPoll<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.coordinator
                .poll_abandoned(&self.name, self.serial, &mut self.answer);
        }
    }
}

/// A scrape handed (or to be handed) to a PushProx client, waiting for its
/// push. Dropping it (the scraper went away) forgets the scrape.
#[derive(Debug)]
pub struct ScrapeTicket<'a> {
    coordinator: &'a Coordinator,
    id: ScrapeId,
    client: String,
    replied: oneshot::Receiver<PushedResponse>,
    started: Instant,
    deadline: Instant,
}

impl ScrapeTicket<'_> {
    /// The scrape's id.
    pub fn id(&self) -> &ScrapeId {
        &self.id
    }

    /// Waits for the pushed response until the scrape's deadline.
    pub async fn answer(mut self) -> Result<PushedResponse, ScrapeError> {
        if let Ok(Ok(response)) = tokio::time::timeout_at(self.deadline, &mut self.replied).await {
            return Ok(response);
        }
        let forgotten = self.coordinator.lock().forget(&self.id);
        // A push may have landed between the deadline and the lock.
        if let Ok(response) = self.replied.try_recv() {
            return Ok(response);
        }
        let waited = Instant::now().saturating_duration_since(self.started);
        let client = self.client.clone();
        Err(match forgotten {
            Some(Scrape {
                handed_to: Some(_), ..
            }) => ScrapeError::NoPush { client, waited },
            _ => ScrapeError::NoPoll { client, waited },
        })
    }
}

impl Drop for ScrapeTicket<'_> {
    fn drop(&mut self) {
        self.coordinator.lock().forget(&self.id);
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Why a `/poll` or `/push` request is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The request body could not be read, or is too large.
    #[error("request body larger than {limit} bytes or unreadable")]
    Body {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The poll body is not a valid client name.
    #[error("invalid client FQDN {name:?} in the poll body: {source}")]
    InvalidName {
        /// The name as sent (lossily decoded).
        name: String,
        /// Why it is invalid.
        #[source]
        source: NameError,
    },
    /// Credentials are missing or wrong.
    #[error("{0}")]
    Auth(AuthError),
    /// The user part of Basic credentials names another client.
    #[error("the user name of the Basic credentials is not the client's FQDN")]
    UserMismatch,
    /// The name is held by another credential, or the gateway is full.
    #[error("{0}")]
    Register(RegisterError),
    /// The pushed response carries no usable `Id`.
    #[error("the pushed response has no valid Id header")]
    MissingId,
    /// The pushed response and the push request name different ids.
    #[error("the pushed response and the push request carry different Id headers")]
    ConflictingIds,
    /// The pushed body is not an HTTP response.
    #[error("the pushed body is not a usable HTTP response: {0}")]
    Wire(#[from] WireError),
    /// No such scrape waits, or it is not this client's.
    #[error("{0}")]
    Push(#[from] PushError),
}

impl ProtocolError {
    fn status(&self) -> StatusCode {
        match self {
            ProtocolError::Body { .. }
            | ProtocolError::Wire(WireError::BodyTooLarge { .. } | WireError::HeadTooLarge) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ProtocolError::InvalidName { .. }
            | ProtocolError::MissingId
            | ProtocolError::ConflictingIds
            | ProtocolError::Wire(_) => StatusCode::BAD_REQUEST,
            ProtocolError::Auth(error) => error.status(),
            ProtocolError::UserMismatch => StatusCode::UNAUTHORIZED,
            ProtocolError::Register(RegisterError::NameTaken { .. }) => StatusCode::CONFLICT,
            ProtocolError::Register(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProtocolError::Push(PushError::Unknown(_)) => StatusCode::NOT_FOUND,
            ProtocolError::Push(PushError::NotYours(_)) => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        (self.status(), format!("{self}\n")).into_response()
    }
}

/// The credentials a `/poll` or `/push` request presents.
#[derive(Default)]
struct Presented {
    /// The user part of Basic credentials, when not empty.
    user: Option<String>,
    /// The Basic password or the Bearer token.
    token: Option<String>,
}

impl Presented {
    fn from_headers(headers: &HeaderMap) -> Presented {
        let Some(value) = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
        else {
            return Presented::default();
        };
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            return Presented::default();
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            return Presented {
                user: None,
                token: Some(rest.trim().to_owned()),
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Presented::default();
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        match decoded.as_deref().and_then(|text| text.split_once(':')) {
            Some((user, password)) => Presented {
                user: (!user.is_empty()).then(|| user.to_owned()),
                token: Some(password.to_owned()),
            },
            None => Presented::default(),
        }
    }
}

/// Checks that the request may act as client `name`, counting refusals
/// for missing or wrong credentials.
fn authenticate(
    gateway: &Gateway,
    name: &str,
    presented: &Presented,
    peer: Option<&PeerIdentity>,
) -> Result<CredentialId, ProtocolError> {
    if presented.user.as_deref().is_some_and(|user| user != name) {
        gateway.metrics.auth_failed();
        return Err(ProtocolError::UserMismatch);
    }
    gateway
        .auth
        .verify(name, presented.token.as_deref(), peer)
        .map_err(|error| {
            if error.status() == StatusCode::UNAUTHORIZED {
                gateway.metrics.auth_failed();
            }
            ProtocolError::Auth(error)
        })
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ProtocolError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ProtocolError::Body { limit })
}

/// `POST /poll`: a PushProx client asks for its next scrape.
pub(crate) async fn poll(
    State(gateway): State<Arc<Gateway>>,
    peer: Option<Extension<PeerIdentity>>,
    request: axum::extract::Request,
) -> Response {
    let peer = peer.as_ref().map(|Extension(peer)| peer);
    match poll_inner(&gateway, peer, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "PushProx poll refused");
            error.into_response()
        }
    }
}

async fn poll_inner(
    gateway: &Gateway,
    peer: Option<&PeerIdentity>,
    request: axum::extract::Request,
) -> Result<Response, ProtocolError> {
    let (parts, body) = request.into_parts();
    let presented = Presented::from_headers(&parts.headers);
    let body = read_body(body, MAX_POLL_BODY).await?;
    let name = String::from_utf8_lossy(&body).trim().to_owned();
    validate_agent_name(&name).map_err(|source| ProtocolError::InvalidName {
        name: name.clone(),
        source,
    })?;
    let credential = authenticate(gateway, &name, &presented, peer)?;
    // A full registry concerns tunnels only; the coordinator has its own
    // bound.
    if let Err(error @ RegisterError::NameTaken { .. }) = gateway.registry.check(&name, &credential)
    {
        tracing::warn!(client = %name, %credential, %error, "PushProx poll refused");
        return Err(ProtocolError::Register(error));
    }
    let held = match gateway.pushprox.poll(&name, &credential) {
        Ok(Poll::Ready(request)) => return Ok(scrape_for_client(request)),
        Ok(Poll::Held(held)) => held,
        Err(error) => {
            tracing::warn!(client = %name, %credential, %error, "PushProx poll refused");
            return Err(ProtocolError::Register(error));
        }
    };
    Ok(match held.wait().await {
        PollOutcome::Scrape(request) => scrape_for_client(request),
        PollOutcome::Replaced => (
            StatusCode::REQUEST_TIMEOUT,
            format!("poll replaced by a newer poll for {name}\n"),
        )
            .into_response(),
        PollOutcome::Expired => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "no scrape for {name} within {:?}; poll again\n",
                gateway.pushprox.max_poll_hold()
            ),
        )
            .into_response(),
    })
}

fn scrape_for_client(request: Vec<u8>) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(MESSAGE_HTTP))],
        request,
    )
        .into_response()
}

/// `POST /push`: a PushProx client delivers the response to a scrape.
pub(crate) async fn push(
    State(gateway): State<Arc<Gateway>>,
    peer: Option<Extension<PeerIdentity>>,
    request: axum::extract::Request,
) -> Response {
    let peer = peer.as_ref().map(|Extension(peer)| peer);
    match push_inner(&gateway, peer, request).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => {
            tracing::debug!(%error, "PushProx push refused");
            error.into_response()
        }
    }
}

async fn push_inner(
    gateway: &Gateway,
    peer: Option<&PeerIdentity>,
    request: axum::extract::Request,
) -> Result<(), ProtocolError> {
    let (parts, body) = request.into_parts();
    let presented = Presented::from_headers(&parts.headers);
    // Refuse early what cannot be authenticated whatever the body says.
    let peer_name = peer.and_then(|peer| peer.common_name.as_deref());
    if presented.token.is_none() && peer_name.is_none() {
        gateway.metrics.auth_failed();
        return Err(ProtocolError::Auth(AuthError::MissingCredentials));
    }
    if let Some(user) = &presented.user {
        authenticate(gateway, user, &presented, peer)?;
    }
    let max_body = gateway.config.fanin_max_body;
    let raw = read_body(body, max_body.saturating_add(MAX_PUSH_HEAD)).await?;
    let pushed = parse_pushed_response(&raw, max_body)?;
    drop(raw);

    // Go clients put the Id in the pushed response; accept it on the push
    // request too.
    let outer = parts
        .headers
        .get(ID_HEADER)
        .map(|value| value.to_str().ok().and_then(ScrapeId::parse));
    let inner = pushed.id.as_deref().map(ScrapeId::parse);
    let id = match (inner, outer) {
        (Some(Some(inner)), Some(Some(outer))) if inner != outer => {
            return Err(ProtocolError::ConflictingIds)
        }
        (Some(Some(id)), _) | (None, Some(Some(id))) => id,
        _ => return Err(ProtocolError::MissingId),
    };
    let client = gateway
        .pushprox
        .handed_to(&id)
        .ok_or_else(|| PushError::Unknown(id.clone()))?;
    if presented.user.as_deref().is_some_and(|user| user != client) {
        return Err(PushError::NotYours(id).into());
    }
    let credential = authenticate(gateway, &client, &presented, peer)?;
    gateway
        .pushprox
        .complete(&id, &client, &credential, pushed)?;
    Ok(())
}

/// `proxy_url` mode for PushProx clients: when the absolute-form `uri`
/// (for `agent`) is not for a connected tunnel agent but for a known
/// PushProx client, scrapes through the client and gives the answer;
/// otherwise `None`, and the request goes the tunnel way.
pub(crate) async fn proxy_scrape(
    gateway: &Gateway,
    agent: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Response> {
    if matches!(gateway.registry.route(agent), Route::Connected(_))
        || !gateway.pushprox.is_known(agent)
    {
        return None;
    }
    // Answer a little before Prometheus gives up, so a 504 reaches it.
    let deadline = Instant::now() + web::work_budget(scrape_deadline(headers, gateway));
    let scrape = ScrapeRequest::new(uri, headers, deadline)?;
    let metrics = &gateway.metrics;
    let started = Instant::now();
    let answer = match gateway.pushprox.scrape(agent, scrape) {
        Ok(ticket) => ticket.answer().await,
        Err(error) => Err(error),
    };
    let pushed = match answer {
        Ok(pushed) => pushed,
        Err(error) => {
            metrics.scrape(ScrapeRoute::Pushprox, error.outcome());
            if error == ScrapeError::Random {
                tracing::error!(client = agent, %error, "PushProx scrape failed");
            } else {
                tracing::debug!(client = agent, %error, "PushProx scrape failed");
            }
            return Some((error.status(), format!("{error}\n")).into_response());
        }
    };
    metrics.scrape(ScrapeRoute::Pushprox, ScrapeOutcome::Ok);
    metrics.answered(
        ScrapeRoute::Pushprox,
        started.elapsed(),
        pushed.body.len() as u64,
    );
    let mut response = Response::new(Body::from(pushed.body));
    *response.status_mut() = pushed.status;
    if let Some(value) = pushed.content_type {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    if let Some(value) = pushed.content_encoding {
        response.headers_mut().insert(CONTENT_ENCODING, value);
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn request(deadline: Instant) -> ScrapeRequest {
        let uri: Uri = "http://node-1:9100/metrics?_scheme=https".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static("Prometheus/2.42.0"));
        headers.insert(ACCEPT, HeaderValue::from_static("text/plain;version=0.0.4"));
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        ScrapeRequest::new(&uri, &headers, deadline).unwrap()
    }

    fn pushed(body: &str) -> PushedResponse {
        PushedResponse {
            status: StatusCode::OK,
            id: None,
            content_type: None,
            content_encoding: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn coordinator() -> Coordinator {
        Coordinator::new(300 * SECOND, 10)
    }

    fn id_of(written: &[u8]) -> ScrapeId {
        let text = core::str::from_utf8(written).unwrap();
        let line = text.lines().find(|l| l.starts_with("Id: ")).unwrap();
        ScrapeId::parse(&line[4..]).unwrap()
    }

    #[test]
    fn ids_are_random_uuid_v4() {
        let random = SystemRandom::new();
        let a = ScrapeId::random(&random).unwrap();
        let b = ScrapeId::random(&random).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
        assert_eq!(&a.as_str()[14..15], "4");
        assert!(matches!(&a.as_str()[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(ScrapeId::parse(&a.as_str().to_uppercase()), Some(a));
        for bad in [
            "",
            "x",
            "0b9c4a6e2f7d4c1e9a553d2f1e8b7c60",
            "0b9c4a6e-2f7d-4c1e-9a55-3d2f1e8b7c6g",
        ] {
            assert_eq!(ScrapeId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_the_request_as_go_writes_a_proxy_request() {
        let id = ScrapeId::parse("0b9c4a6e-2f7d-4c1e-9a55-3d2f1e8b7c60").unwrap();
        let written = request(Instant::now()).write(&id, Duration::from_millis(9025));
        assert_eq!(
            String::from_utf8(written).unwrap(),
            "GET http://node-1:9100/metrics?_scheme=https HTTP/1.1\r\n\
             Host: node-1:9100\r\n\
             User-Agent: Prometheus/2.42.0\r\n\
             Accept: text/plain;version=0.0.4\r\n\
             Accept-Encoding: gzip\r\n\
             Id: 0b9c4a6e-2f7d-4c1e-9a55-3d2f1e8b7c60\r\n\
             X-Prometheus-Scrape-Timeout-Seconds: 9.025\r\n\
             \r\n"
        );
    }

    #[test]
    fn parses_what_go_clients_push() {
        // A page with a length.
        let page = parse_pushed_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nId: abc\r\n\r\nup 1\n",
            100,
        )
        .unwrap();
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.id.as_deref(), Some("abc"));
        assert_eq!(page.content_type.unwrap(), "text/plain");
        assert_eq!(page.body, "up 1\n");
        // A gzipped, chunked page.
        let chunked = parse_pushed_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\nId: x\r\n\r\n\
              3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
            100,
        )
        .unwrap();
        assert_eq!(chunked.body, "abcde");
        assert_eq!(chunked.content_encoding.unwrap(), "gzip");
        // A failed scrape, as the Go client builds it: HTTP/0.0, no length.
        let failed = parse_pushed_response(
            b"HTTP/0.0 500 Internal Server Error\r\nId: x\r\nX-Prometheus-Scrape-Timeout: 9.9\r\n\r\n\
              failed to scrape http://node-1:9100/metrics: connection refused",
            1000,
        )
        .unwrap();
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(failed.body.starts_with(b"failed to scrape"));
    }

    #[test]
    fn refuses_what_is_not_a_bounded_response() {
        let parse = |raw: &[u8]| parse_pushed_response(raw, 8);
        assert_eq!(parse(b""), Err(WireError::Incomplete));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nA: b\r\n"),
            Err(WireError::Incomplete)
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(WireError::StatusLine(_))
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 20 OK\r\n\r\n"),
            Err(WireError::StatusLine(_))
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 2000\r\n\r\n"),
            Err(WireError::StatusLine(_))
        ));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789"),
            Err(WireError::BodyTooLarge { limit: 8 })
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n123"),
            Err(WireError::Truncated)
        );
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(WireError::ContentLength(_))
        ));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n"),
            Err(WireError::BodyTooLarge { limit: 8 })
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"),
            Err(WireError::BodyTooLarge { limit: 8 })
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"),
            Err(WireError::Truncated)
        );
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(WireError::TransferEncoding(_))
        ));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_PUSH_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(WireError::TooManyHeaders));
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(MAX_PUSH_HEAD + 10, b'a');
        assert_eq!(parse(&long), Err(WireError::HeadTooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn a_scrape_reaches_the_held_poll_and_the_push_answers_it() {
        let coordinator = coordinator();
        let credential = CredentialId::shared();
        let Ok(Poll::Held(held)) = coordinator.poll("node-1", &credential) else {
            panic!("poll not held");
        };
        assert!(coordinator.is_known("node-1"));
        let ticket = coordinator
            .scrape("node-1", request(Instant::now() + 10 * SECOND))
            .unwrap();
        let PollOutcome::Scrape(written) = held.wait().await else {
            panic!("no scrape");
        };
        let id = id_of(&written);
        assert_eq!(&id, ticket.id());
        assert_eq!(coordinator.handed_to(&id).as_deref(), Some("node-1"));
        // Another client, or another credential, may not answer it.
        assert_eq!(
            coordinator.complete(&id, "node-2", &credential, pushed("x")),
            Err(PushError::NotYours(id.clone()))
        );
        assert_eq!(
            coordinator.complete(&id, "node-1", &CredentialId::token("node-1"), pushed("x")),
            Err(PushError::NotYours(id.clone()))
        );
        coordinator
            .complete(&id, "node-1", &credential, pushed("up 1\n"))
            .unwrap();
        assert_eq!(ticket.answer().await.unwrap().body, "up 1\n");
        // Answered once only.
        assert_eq!(
            coordinator.complete(&id, "node-1", &credential, pushed("again")),
            Err(PushError::Unknown(id))
        );
        assert_eq!(coordinator.clients()[0].scrapes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scrape_waits_for_the_next_poll() {
        let coordinator = coordinator();
        let credential = CredentialId::shared();
        // Known, but not polling now.
        let Ok(Poll::Held(held)) = coordinator.poll("node-1", &credential) else {
            panic!("poll not held");
        };
        drop(held);
        assert!(!coordinator.clients()[0].polling);
        let ticket = coordinator
            .scrape("node-1", request(Instant::now() + 10 * SECOND))
            .unwrap();
        let Ok(Poll::Ready(written)) = coordinator.poll("node-1", &credential) else {
            panic!("the queued scrape was not handed out");
        };
        let id = id_of(&written);
        coordinator
            .complete(&id, "node-1", &credential, pushed("late poll"))
            .unwrap();
        assert_eq!(ticket.answer().await.unwrap().body, "late poll");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_poll_or_a_push_the_scrape_says_which_is_missing() {
        let coordinator = coordinator();
        let credential = CredentialId::shared();
        drop(coordinator.poll("node-1", &credential).unwrap());
        let ticket = coordinator
            .scrape("node-1", request(Instant::now() + SECOND))
            .unwrap();
        assert!(matches!(
            ticket.answer().await,
            Err(ScrapeError::NoPoll { .. })
        ));
        // The expired scrape is not handed to the next poll.
        let Ok(Poll::Held(_held)) = coordinator.poll("node-1", &credential) else {
            panic!("an expired scrape was handed out");
        };
        let ticket = coordinator
            .scrape("node-1", request(Instant::now() + SECOND))
            .unwrap();
        assert!(matches!(
            ticket.answer().await,
            Err(ScrapeError::NoPush { .. })
        ));
        assert_eq!(coordinator.clients()[0].scrapes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_poll_replaces_the_older_and_holds_are_bounded() {
        let coordinator = coordinator().with_max_poll_hold(30 * SECOND);
        let credential = CredentialId::shared();
        let Ok(Poll::Held(older)) = coordinator.poll("node-1", &credential) else {
            panic!("poll not held");
        };
        let Ok(Poll::Held(newer)) = coordinator.poll("node-1", &credential) else {
            panic!("poll not held");
        };
        assert_eq!(older.wait().await, PollOutcome::Replaced);
        assert_eq!(newer.wait().await, PollOutcome::Expired);
        assert!(!coordinator.clients()[0].polling);
    }

    #[tokio::test(start_paused = true)]
    async fn names_belong_to_one_credential_until_forgotten() {
        let coordinator = Coordinator::new(300 * SECOND, 1);
        let mine = CredentialId::token("node-1");
        drop(coordinator.poll("node-1", &mine).unwrap());
        let other = CredentialId::shared();
        assert!(matches!(
            coordinator.poll("node-1", &other),
            Err(RegisterError::NameTaken { .. })
        ));
        assert!(coordinator.check("node-1", &other).is_err());
        assert!(coordinator.check("node-1", &mine).is_ok());
        assert!(matches!(
            coordinator.poll("node-2", &other),
            Err(RegisterError::Full { max: 1 })
        ));
        assert_eq!(coordinator.known_clients(), ["node-1"]);
        assert!(matches!(
            coordinator.scrape("node-2", request(Instant::now() + SECOND)),
            Err(ScrapeError::Unknown(_))
        ));

        tokio::time::advance(300 * SECOND).await;
        assert!(!coordinator.is_known("node-1"));
        assert!(coordinator.known_clients().is_empty());
        assert!(coordinator.check("node-1", &other).is_ok());
        drop(coordinator.poll("node-2", &other).unwrap());
        assert_eq!(coordinator.known_clients(), ["node-2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn scrapes_in_flight_are_bounded() {
        let coordinator = coordinator().with_max_scrapes_per_client(2);
        drop(coordinator.poll("node-1", &CredentialId::shared()).unwrap());
        let deadline = Instant::now() + SECOND;
        let _a = coordinator.scrape("node-1", request(deadline)).unwrap();
        let b = coordinator.scrape("node-1", request(deadline)).unwrap();
        assert!(matches!(
            coordinator.scrape("node-1", request(deadline)),
            Err(ScrapeError::Busy { max: 2, .. })
        ));
        // A scraper that goes away frees its place.
        drop(b);
        assert!(coordinator.scrape("node-1", request(deadline)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_scrape_handed_to_an_abandoned_poll_goes_to_the_next() {
        let coordinator = coordinator();
        let credential = CredentialId::shared();
        let Ok(Poll::Held(held)) = coordinator.poll("node-1", &credential) else {
            panic!("poll not held");
        };
        let ticket = coordinator
            .scrape("node-1", request(Instant::now() + 10 * SECOND))
            .unwrap();
        // The poll's client went away before the answer was written.
        drop(held);
        let Ok(Poll::Ready(written)) = coordinator.poll("node-1", &credential) else {
            panic!("the scrape was lost with the abandoned poll");
        };
        assert_eq!(&id_of(&written), ticket.id());
    }
}
