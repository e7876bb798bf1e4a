//! The Pushgateway HTTP API over a [`PushStore`].
//!
//! | route | what | success |
//! | --- | --- | --- |
//! | `PUT /metrics/job/{job}{/label/value}` | replace the group | 200 |
//! | `POST /metrics/job/{job}{/label/value}` | replace the pushed families in the group | 200 |
//! | `DELETE /metrics/job/{job}{/label/value}` | remove the group | 202 |
//! | the same under `/metrics/job@base64/{job}` | the job in base64 | |
//! | `GET /api/v1/metrics` | every group as JSON (see the `api` module) | 200 |
//! | `GET /api/v1/status` | settings and start time | 200 |
//! | `PUT /api/v1/admin/wipe` | remove every group; only with `admin_api` | 202 |
//!
//! A push may ask for a TTL with `?ttl=90s` or `X-Push-TTL: 90s`
//! (Prometheus duration syntax; both given must agree). Errors are answered
//! in plain text naming the problem: 400 for what the client must fix, 413
//! for a limit, 503 when the store cannot write to disk, 500 when a push
//! could not be made durable. The pushed groups themselves are served by
//! whoever mounts the router, with [`PushStore::write_page`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use settings::PromDuration;

use crate::error::PushError;
use crate::key::GroupingKey;
use crate::metrics::Method;
use crate::store::{PushBody, PushMode, PushStore};

/// The header a client may set to ask for a TTL.
pub const TTL_HEADER: &str = "x-push-ttl";

/// The push API's routes (see the [module documentation](self)), ready to
/// be merged into the gateway's or the agent's router.
pub fn router(store: Arc<PushStore>) -> Router {
    let mut router = Router::new()
        .route(
            "/metrics/job/{*rest}",
            put(plain_job).post(plain_job).delete(plain_job),
        )
        .route(
            "/metrics/job@base64/{*rest}",
            put(base64_job).post(base64_job).delete(base64_job),
        )
        .route("/api/v1/metrics", get(crate::api::metrics))
        .route("/api/v1/status", get(crate::api::status));
    if store.config().admin_api {
        router = router.route("/api/v1/admin/wipe", put(wipe));
    }
    router.with_state(store)
}

impl IntoResponse for PushError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "push failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "push refused");
        }
        (status, format!("{self}\n")).into_response()
    }
}

/// A request to `/metrics/job/...`.
struct GroupRequest {
    store: Arc<PushStore>,
    method: http::Method,
    /// The path after `/metrics/job/` (or `/metrics/job@base64/`).
    rest: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
}

async fn plain_job(
    State(store): State<Arc<PushStore>>,
    method: http::Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = GroupRequest {
        store,
        method,
        rest,
        query,
        headers,
        body,
    };
    group_request(request, false).await
}

async fn base64_job(
    State(store): State<Arc<PushStore>>,
    method: http::Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = GroupRequest {
        store,
        method,
        rest,
        query,
        headers,
        body,
    };
    group_request(request, true).await
}

async fn group_request(request: GroupRequest, job_base64: bool) -> Response {
    let mode = match request.method {
        http::Method::PUT => PushMode::Replace,
        http::Method::POST => PushMode::Merge,
        // The router sends only PUT, POST and DELETE here.
        _ => return delete(&request.store, job_base64, &request.rest).await,
    };
    push(request, job_base64, mode).await
}

async fn push(request: GroupRequest, job_base64: bool, mode: PushMode) -> Response {
    let GroupRequest {
        store,
        rest,
        query,
        headers,
        body,
        ..
    } = request;
    let method = match mode {
        PushMode::Replace => Method::Put,
        PushMode::Merge => Method::Post,
    };
    // Failures before the store sees the push are counted here.
    let refuse = |store: &PushStore, error: PushError| {
        store.count_refused(method, &error);
        error.into_response()
    };
    let key = match GroupingKey::from_path(job_base64, &rest) {
        Ok(key) => key,
        Err(error) => return refuse(&store, error.into()),
    };
    let ttl = match requested_ttl(query.as_deref(), &headers) {
        Ok(ttl) => ttl,
        Err(error) => return refuse(&store, error),
    };
    let bytes = match read_body(body, store.config().max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => return refuse(&store, error),
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let body = PushBody::with_headers(bytes, header(CONTENT_TYPE), header(CONTENT_ENCODING));
    match store.push(key, mode, body, ttl).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn delete(store: &PushStore, job_base64: bool, rest: &str) -> Response {
    let key = match GroupingKey::from_path(job_base64, rest) {
        Ok(key) => key,
        Err(error) => {
            let error = PushError::from(error);
            store.count_refused(Method::Delete, &error);
            return error.into_response();
        }
    };
    match store.delete(&key).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn wipe(State(store): State<Arc<PushStore>>) -> Response {
    match store.wipe().await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(error) => error.into_response(),
    }
}

/// Reads the body, refusing more than `max` bytes with 413.
async fn read_body(body: Body, max: usize) -> Result<bytes::Bytes, PushError> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(PushError::TooLarge(format!(
                "the body is larger than {max} bytes (max_body_bytes)"
            )))
        }
        Err(error) => Err(PushError::Malformed(format!(
            "cannot read the body: {error}"
        ))),
    }
}

/// The TTL a push asks for, from `?ttl=` or the `X-Push-TTL` header.
fn requested_ttl(query: Option<&str>, headers: &HeaderMap) -> Result<Option<Duration>, PushError> {
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(name, _)| *name == "ttl")
        .map(|(_, value)| value.to_owned());
    let from_header = match headers.get(TTL_HEADER) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| PushError::Ttl(format!("the {TTL_HEADER} header is not text")))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let text = match (from_query, from_header) {
        (Some(q), Some(h)) if q != h => {
            return Err(PushError::Ttl(format!(
                "the ttl parameter ({q:?}) and the {TTL_HEADER} header ({h:?}) disagree"
            )))
        }
        (Some(text), _) | (None, Some(text)) => text,
        (None, None) => return Ok(None),
    };
    let ttl = PromDuration::parse(&text)
        .map_err(|e| PushError::Ttl(format!("invalid TTL: {e}")))?
        .0;
    if ttl.is_zero() {
        return Err(PushError::Ttl("a TTL must be longer than 0".to_owned()));
    }
    Ok(Some(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PushConfig;
    use axum::http::{HeaderValue, Request};
    use tower::ServiceExt as _;

    async fn send(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn answers_like_pushgateway() {
        let store = PushStore::in_memory(PushConfig::default()).unwrap();
        let app = router(Arc::clone(&store));
        let ok = (StatusCode::OK, String::new());
        assert_eq!(send(&app, "PUT", "/metrics/job/a/x/1", "m 1\n").await, ok);
        assert_eq!(
            send(&app, "POST", "/metrics/job@base64/YQ/x/1", "n 2\n").await,
            ok
        );
        let (status, body) = send(&app, "GET", "/api/v1/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let group = &json["data"][0];
        assert_eq!(group["labels"], serde_json::json!({"job": "a", "x": "1"}));
        assert_eq!(group["m"]["metrics"][0]["value"], "1");
        assert_eq!(group["n"]["type"], "UNTYPED");
        assert!(group.get("expires_at").is_none());
        let (status, body) = send(&app, "GET", "/api/v1/status", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("\"web.enable-admin-api\":\"false\""),
            "{body}"
        );
        // Without admin_api there is no wipe.
        assert_eq!(
            send(&app, "PUT", "/api/v1/admin/wipe", "").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            send(&app, "DELETE", "/metrics/job/a/x/1", "").await,
            (StatusCode::ACCEPTED, String::new())
        );
        assert_eq!(store.group_count(), 0);
        assert_eq!(
            send(&app, "GET", "/metrics/job/a", "").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn refusals_name_the_problem() {
        let config = PushConfig {
            max_body_bytes: 16,
            admin_api: true,
            ..PushConfig::default()
        };
        let store = PushStore::in_memory(config).unwrap();
        let app = router(Arc::clone(&store));
        for (method, uri, body, status, message) in [
            (
                "PUT",
                "/metrics/job/a",
                "a_long_name 12345\n",
                413,
                "larger than 16 bytes (max_body_bytes)",
            ),
            (
                "PUT",
                "/metrics/job/a/x",
                "m 1\n",
                400,
                "odd number of components",
            ),
            (
                "DELETE",
                "/metrics/job/a/__x/1",
                "",
                400,
                "improper label name \"__x\"",
            ),
            (
                "PUT",
                "/metrics/job/a?ttl=soon",
                "m 1\n",
                400,
                "\"soon\" is not a duration",
            ),
            (
                "PUT",
                "/metrics/job/a",
                "m{ 1\n",
                400,
                "text format parsing error in line 1",
            ),
            (
                "PUT",
                "/metrics/job/a",
                "m 1 2\n",
                400,
                "must not have timestamps",
            ),
        ] {
            let (got, text) = send(&app, method, uri, body).await;
            assert_eq!(got.as_u16(), status, "{uri}: {text}");
            assert!(
                text.contains(message) && text.ends_with('\n'),
                "{uri}: {text}"
            );
        }
        let metrics = store.render_metrics();
        for line in [
            "promrelay_push_requests_total{method=\"put\",result=\"too_large\"} 1",
            "promrelay_push_requests_total{method=\"put\",result=\"invalid\"} 3",
            "promrelay_push_requests_total{method=\"put\",result=\"inconsistent\"} 1",
            "promrelay_push_requests_total{method=\"delete\",result=\"invalid\"} 1",
        ] {
            assert!(metrics.contains(line), "{line}\n{metrics}");
        }
        // The client asks for a TTL; the API shows the deadline.
        assert_eq!(
            send(&app, "PUT", "/metrics/job/t?ttl=5m", "m 1\n").await.0,
            StatusCode::OK
        );
        let (_, body) = send(&app, "GET", "/api/v1/metrics", "").await;
        assert!(body.contains("\"expires_at\":\""), "{body}");
        assert_eq!(
            send(&app, "PUT", "/api/v1/admin/wipe", "").await,
            (StatusCode::ACCEPTED, String::new())
        );
        assert_eq!(store.group_count(), 0);
    }

    #[test]
    fn reads_the_ttl_from_query_or_header() {
        let mut headers = HeaderMap::new();
        let ttl = |q: Option<&str>, h: &HeaderMap| requested_ttl(q, h);
        assert_eq!(ttl(None, &headers), Ok(None));
        assert_eq!(
            ttl(Some("a=1&ttl=90s"), &headers),
            Ok(Some(Duration::from_secs(90)))
        );
        headers.insert(TTL_HEADER, HeaderValue::from_static("5m"));
        assert_eq!(ttl(None, &headers), Ok(Some(Duration::from_secs(300))));
        assert_eq!(
            ttl(Some("ttl=5m"), &headers),
            Ok(Some(Duration::from_secs(300)))
        );
        assert!(
            matches!(ttl(Some("ttl=6m"), &headers), Err(PushError::Ttl(m)) if m.contains("disagree"))
        );
        let none = HeaderMap::new();
        assert!(
            matches!(ttl(Some("ttl=5"), &none), Err(PushError::Ttl(m)) if m.contains("not a duration"))
        );
        assert!(
            matches!(ttl(Some("ttl=0"), &none), Err(PushError::Ttl(m)) if m.contains("longer than 0"))
        );
        assert!(matches!(ttl(Some("ttl"), &none), Err(PushError::Ttl(_))));
    }
}
