//! A minimal Docker Engine API client over the daemon's unix socket.
//!
//! HTTP/1.1 with hyper, one connection per request (the socket is local,
//! connecting costs microseconds, and nothing is pooled that could go
//! stale across a daemon restart). Every answer is bounded in size and
//! every request in time, except the event stream's body, which is meant to
//! stay open and idle; each of its lines is bounded instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::api::{self, Container, Event, API_VERSION};

/// The largest container list read (a few KiB per container).
pub const MAX_LIST_BYTES: usize = 32 << 20;
/// The largest inspect answer read (one container).
pub const MAX_INSPECT_BYTES: usize = 4 << 20;
/// The longest event line accepted (an event repeats the container's
/// labels, which are small in practice).
pub const MAX_EVENT_LINE: usize = 1 << 20;
/// The most of an error answer read for its message.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// Why a request to the daemon failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// The socket cannot be connected to (missing, refused, permission).
    #[error("cannot connect to the Docker socket {}: {message}", socket.display())]
    Unreachable {
        /// The socket's path.
        socket: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// No (complete) answer in time.
    #[error("the Docker daemon did not answer {request} within {timeout:?}")]
    Timeout {
        /// Method and path.
        request: String,
        /// The limit.
        timeout: Duration,
    },
    /// An answer other than success.
    #[error("the Docker daemon answered {request} with HTTP {status}: {message}")]
    Status {
        /// Method and path.
        request: String,
        /// The status code.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// An answer (or event line) above the limit.
    #[error("the Docker daemon's answer to {request} is larger than {limit} bytes")]
    TooLarge {
        /// Method and path.
        request: String,
        /// The limit.
        limit: usize,
    },
    /// An answer that is not the JSON expected.
    #[error("the Docker daemon's answer to {request} does not read as expected: {message}")]
    Decode {
        /// Method and path.
        request: String,
        /// What serde said.
        message: String,
    },
    /// The HTTP exchange broke.
    #[error("HTTP over the Docker socket failed for {request}: {message}")]
    Http {
        /// Method and path.
        request: String,
        /// hyper's reason.
        message: String,
    },
    /// The daemon closed the event stream (it restarts, or shuts down).
    #[error("the Docker daemon closed the event stream")]
    StreamEnded,
}

impl DockerError {
    /// A short kind, for a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            DockerError::Unreachable { .. } => "unreachable",
            DockerError::Timeout { .. } => "timeout",
            DockerError::Status { .. } => "http_status",
            DockerError::TooLarge { .. } => "too_large",
            DockerError::Decode { .. } => "decode",
            DockerError::Http { .. } => "http",
            DockerError::StreamEnded => "stream_ended",
        }
    }
}

/// A client for one daemon socket.
#[derive(Clone, Debug)]
pub struct DockerClient {
    socket: PathBuf,
    /// Bounds each request (for the event stream: until its headers).
    timeout: Duration,
}

impl DockerClient {
    /// A client for the daemon at `socket`; nothing is connected yet.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> DockerClient {
        DockerClient {
            socket: socket.into(),
            timeout,
        }
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /_ping`: whether the daemon answers at all.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.get("/_ping", "/_ping", MAX_ERROR_BYTES)
            .await
            .map(drop)
    }

    /// The running containers.
    pub async fn containers(&self) -> Result<Vec<Container>, DockerError> {
        let path = format!("/{API_VERSION}/containers/json");
        self.list(&path, &path).await
    }

    /// The container with this ID as it is now (inspected, so it is
    /// current even right after an event); `None` when there is no such
    /// container any more.
    pub async fn container(&self, id: &str) -> Result<Option<Container>, DockerError> {
        let path = format!("/{API_VERSION}/containers/{}/json", encode_query(id));
        let shown = format!("/{API_VERSION}/containers/{{id}}/json");
        let request = format!("GET {shown}");
        match self.get(&shown, &path, MAX_INSPECT_BYTES).await {
            Ok(body) => {
                api::parse_container_inspect(&body)
                    .map(Some)
                    .map_err(|e| DockerError::Decode {
                        request,
                        message: e.to_string(),
                    })
            }
            Err(DockerError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Subscribes to container and network events. Events that happen
    /// after this returns are in the stream, so a list read after it
    /// misses nothing.
    pub async fn events(&self) -> Result<EventStream, DockerError> {
        let path = format!("/{API_VERSION}/events");
        let filters = r#"{"type":["container","network"]}"#;
        let uri = format!("{path}?filters={}", encode_query(filters));
        let request = format!("GET {path}");
        let body = tokio::time::timeout(self.timeout, self.send(&request, &uri))
            .await
            .map_err(|_| DockerError::Timeout {
                request: request.clone(),
                timeout: self.timeout,
            })??;
        Ok(EventStream {
            body,
            line: BytesMut::new(),
            request,
        })
    }

    async fn list(&self, path: &str, uri: &str) -> Result<Vec<Container>, DockerError> {
        let body = self.get(path, uri, MAX_LIST_BYTES).await?;
        api::parse_container_list(&body).map_err(|e| DockerError::Decode {
            request: format!("GET {path}"),
            message: e.to_string(),
        })
    }

    /// A whole answer, within the timeout and `limit` bytes.
    async fn get(&self, path: &str, uri: &str, limit: usize) -> Result<Bytes, DockerError> {
        let request = format!("GET {path}");
        let exchange = async {
            let body = self.send(&request, uri).await?;
            read_limited(body, limit, &request).await
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| DockerError::Timeout {
                request: request.clone(),
                timeout: self.timeout,
            })?
    }

    /// Connects, sends `GET uri`, and returns the body of a 2xx answer.
    async fn send(&self, request: &str, uri: &str) -> Result<Incoming, DockerError> {
        let http = |e: hyper::Error| DockerError::Http {
            request: request.to_owned(),
            message: error_chain(&e),
        };
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|e| DockerError::Unreachable {
                    socket: self.socket.clone(),
                    message: e.to_string(),
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        // The connection ends by itself once the answer is read or dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "docker socket connection ended with an error");
            }
        });
        let get = Request::get(uri)
            .header(header::HOST, "docker")
            .header(
                header::USER_AGENT,
                concat!("promrelay/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| DockerError::Http {
                request: request.to_owned(),
                message: e.to_string(),
            })?;
        let response = sender.send_request(get).await.map_err(http)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let body = read_limited(response.into_body(), MAX_ERROR_BYTES, request)
            .await
            .unwrap_or_default();
        Err(DockerError::Status {
            request: request.to_owned(),
            status: status.as_u16(),
            message: error_message(status, &body),
        })
    }
}

/// The event stream: one JSON object per line, for as long as the daemon
/// keeps it open.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    /// Bytes read but not yet a whole line.
    line: BytesMut,
    request: String,
}

impl EventStream {
    /// The next event; `None` when the daemon closed the stream. Lines
    /// that do not read as events are logged and skipped.
    ///
    /// Cancel-safe: bytes read so far stay in the stream, so this can be
    /// raced against other work in `tokio::select!`.
    pub async fn next(&mut self) -> Result<Option<Event>, DockerError> {
        loop {
            if let Some(end) = self.line.iter().position(|&b| b == b'\n') {
                let line = self.line.split_to(end + 1);
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                match api::parse_event(line) {
                    Ok(event) => return Ok(Some(event)),
                    Err(e) => {
                        tracing::warn!(error = %e, line = %String::from_utf8_lossy(line), "docker event not understood; skipped");
                        continue;
                    }
                }
            }
            if self.line.len() > MAX_EVENT_LINE {
                return Err(DockerError::TooLarge {
                    request: self.request.clone(),
                    limit: MAX_EVENT_LINE,
                });
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(DockerError::Http {
                        request: self.request.clone(),
                        message: error_chain(&e),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.line.extend_from_slice(data.chunk());
                    }
                }
            }
        }
    }
}

async fn read_limited(body: Incoming, limit: usize, request: &str) -> Result<Bytes, DockerError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(DockerError::TooLarge {
            request: request.to_owned(),
            limit,
        }),
        Err(e) => Err(DockerError::Http {
            request: request.to_owned(),
            message: error_chain(&*e),
        }),
    }
}

/// Docker's error answers are `{"message": "..."}`.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("").to_owned()
            } else {
                text
            }
        })
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An error and its causes, for messages: the top level alone is vague.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode_query(r#"{"type":["container"]}"#),
            "%7B%22type%22%3A%5B%22container%22%5D%7D"
        );
    }

    #[test]
    fn error_messages_come_from_the_json_body() {
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, br#"{"message":"page not found"}"#),
            "page not found"
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b""), "Bad Gateway");
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b" oops \n"), "oops");
    }

    #[tokio::test]
    async fn a_missing_socket_names_its_path() {
        let dir = testkit::TempDir::new("docker-client");
        let socket = dir.join("missing.sock");
        let client = DockerClient::new(&socket, Duration::from_secs(1));
        let error = client.containers().await.unwrap_err();
        assert_eq!(error.kind(), "unreachable");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot connect to the Docker socket {}: ",
                socket.display()
            )),
            "{text}"
        );
        assert!(text.contains("No such file"), "{text}");
        assert_eq!(client.events().await.unwrap_err().kind(), "unreachable");
        assert_eq!(client.ping().await.unwrap_err().kind(), "unreachable");
    }
}
