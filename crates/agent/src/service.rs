//! The agent's HTTP endpoints.
//!
//! - `GET /metrics`: every source merged, with health series.
//! - `GET /sources/<name>/metrics`: one source's page as it gave it; for a
//!   docker source, its containers' pages merged and labelled as on
//!   `/metrics` (502 while its daemon cannot be reached).
//! - `GET /containers/<name>/metrics`: one container's page as it gave it,
//!   from the first docker source (in configuration order) that has a
//!   container of that name.
//! - With a `push` source, Pushgateway's push API
//!   (`PUT|POST|DELETE /metrics/job/...`, `/api/v1/...`; see [`push::routes`]).
//! - `GET /-/healthy`, `GET /-/ready`, `POST|PUT /-/reload`.
//! - `GET /`: a short page for people.
//!
//! The scrape deadline is Prometheus's `X-Prometheus-Scrape-Timeout-Seconds`
//! less a margin, capped by the configured `scrape_timeout`. Query
//! parameters reach a command only through its source's allowlist; any
//! other parameter is refused with 400.

use std::io::Write as _;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use exposition::Format;
use push::PushStore;
use tokio::time::Instant;

use crate::config::{Config, ConfigError};
use crate::runtime::{Runtime, RuntimeSource};
use crate::scrape::{
    params_for, render, render_pages, scrape_all, scrape_docker, scrape_one, AgentSeries,
};
use crate::source::{DockerSource, ScrapeContext, SourceError};

/// Most query parameters one scrape may carry.
pub const MAX_PARAMS: usize = 32;
/// Longest query parameter value accepted.
pub const MAX_PARAM_VALUE: usize = 1024;
/// How long a new configuration waits, at most, for its docker sources to
/// first hear from their daemons before it replaces the old one, so that
/// a reload does not blank the containers from the page for a moment.
pub const DOCKER_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads the configuration: from the file and flags at start, again on
/// each reload.
pub type ConfigLoader = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// The agent: the running configuration and what its endpoints share.
pub struct Agent {
    runtime: ArcSwap<Runtime>,
    /// The pushed groups: opened once, kept across reloads.
    push: Option<Arc<PushStore>>,
    loader: ConfigLoader,
    scrapes: AtomicU64,
    /// Held only to update or read two fields, never across an await.
    reload: Mutex<ReloadState>,
    /// Serialises reloads so two cannot interleave their builds.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("runtime", &self.runtime.load())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug)]
struct ReloadState {
    ok: bool,
    time: f64,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Agent {
    /// Loads and starts the first configuration, which cannot have a push
    /// source (it needs a storage directory, see
    /// [`Agent::start_with_storage`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime when the configuration has a docker source
    /// (see [`Runtime::build`]).
    pub fn start(loader: ConfigLoader) -> Result<Arc<Agent>, ConfigError> {
        Agent::start_with_storage(loader, None)
    }

    /// Loads and starts the first configuration; a push source keeps its
    /// groups in `<storage>/push`, restored from there first.
    ///
    /// # Panics
    ///
    /// As [`Agent::start`].
    pub fn start_with_storage(
        loader: ConfigLoader,
        storage: Option<&FsPath>,
    ) -> Result<Arc<Agent>, ConfigError> {
        let config = loader()?;
        let push = match (push_source(&config), storage) {
            (Some((_, settings)), Some(storage)) => {
                let dir = storage.join("push");
                let store =
                    PushStore::open(&dir, settings.clone()).map_err(|e| ConfigError::Invalid {
                        at: format!("--storage.path={}", storage.display()),
                        problem: e.to_string(),
                    })?;
                Some(store)
            }
            // Runtime::build says what is missing.
            (Some(_), None) | (None, _) => None,
        };
        let runtime = Runtime::build(config, push.as_ref())?;
        Ok(Arc::new(Agent {
            runtime: ArcSwap::from_pointee(runtime),
            push,
            loader,
            scrapes: AtomicU64::new(0),
            reload: Mutex::new(ReloadState {
                ok: true,
                time: now_seconds(),
            }),
            reloading: tokio::sync::Mutex::new(()),
        }))
    }

    /// Loads, validates and builds the configuration again, then swaps it
    /// in whole. On error nothing changes and the old one keeps serving.
    pub async fn reload(&self) -> Result<(), ConfigError> {
        let _one_at_a_time = self.reloading.lock().await;
        let built = (self.loader)()
            .and_then(|config| self.same_push_source(&config).map(|()| config))
            .and_then(|config| Runtime::build(config, self.push.as_ref()));
        if let Ok(runtime) = &built {
            runtime.settled(DOCKER_SETTLE_TIMEOUT).await;
        }
        let mut state = self
            .reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match built {
            Ok(runtime) => {
                self.runtime.store(Arc::new(runtime));
                *state = ReloadState {
                    ok: true,
                    time: now_seconds(),
                };
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(error) => {
                state.ok = false;
                tracing::error!(error = %error, "configuration reload failed; the previous one stays");
                Err(error)
            }
        }
    }

    /// Whether `config` has the push source the agent started with: the
    /// store is opened once, so adding, removing or changing one needs a
    /// restart. Renaming it or changing its labels does not.
    fn same_push_source(&self, config: &Config) -> Result<(), ConfigError> {
        let running = self.push.as_ref().map(|store| store.config());
        let change = match (push_source(config), running) {
            (None, None) => return Ok(()),
            (Some((_, new)), Some(running)) if new == running => return Ok(()),
            (Some((at, _)), Some(_)) => (at, "its settings change"),
            (Some((at, _)), None) => (at, "it is new"),
            (None, Some(_)) => ("sources".to_owned(), "the push source is removed"),
        };
        Err(ConfigError::Invalid {
            at: change.0,
            problem: format!(
                "the push source takes effect at restart, and {}: restart the agent to apply it",
                change.1
            ),
        })
    }

    /// The pushed groups, when the configuration has a push source.
    pub fn push_store(&self) -> Option<&Arc<PushStore>> {
        self.push.as_ref()
    }

    /// The configuration in use.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The HTTP endpoints.
    pub fn router(self: &Arc<Self>) -> Router {
        let pushes = match &self.push {
            Some(store) => push::router(Arc::clone(store)),
            None => Router::new(),
        };
        Router::new()
            .route("/", get(index))
            .route("/metrics", get(metrics))
            .route("/sources/{name}/metrics", get(source_metrics))
            .route("/containers/{name}/metrics", get(container_metrics))
            .route("/-/healthy", get(|| async { "Healthy.\n" }))
            .route("/-/ready", get(|| async { "Ready.\n" }))
            .route("/-/reload", post(reload).put(reload))
            .with_state(Arc::clone(self))
            .merge(pushes)
    }

    /// The endpoints served through the tunnel: [`Agent::router`] and the
    /// allowlisted local ports of `proxy_url` mode (see [`crate::ports`]).
    pub fn tunnel_router(self: &Arc<Self>) -> Router {
        self.router().merge(
            Router::new()
                .route("/ports/{port}/{*path}", get(crate::ports::scrape_port))
                .with_state(Arc::clone(self)),
        )
    }
}

/// Why a request was refused; client errors are not logged as failures.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A query parameter no source accepts.
    #[error("query parameter {0:?} is not allowed")]
    ParamNotAllowed(String),
    /// A value that does not match a source's pattern.
    #[error("query parameter {name:?} does not match the pattern of source {source_name:?}")]
    ParamRejected {
        /// The parameter.
        name: String,
        /// The source whose pattern refused it.
        source_name: String,
    },
    /// Too many or too long parameters.
    #[error("too many query parameters or a value too long (at most {MAX_PARAMS}, {MAX_PARAM_VALUE} bytes each)")]
    ParamsTooLarge,
    /// The same parameter twice.
    #[error("query parameter {0:?} is given twice")]
    ParamTwice(String),
    /// No such source.
    #[error("no source named {0:?}")]
    UnknownSource(String),
    /// The one source asked for failed.
    #[error("source {source_name:?} failed: {error}")]
    SourceFailed {
        /// The source.
        source_name: String,
        /// How.
        error: SourceError,
    },
    /// The docker source asked for cannot reach its daemon.
    #[error("docker source {source_name:?} cannot follow its daemon: {error}")]
    DaemonUnreachable {
        /// The source.
        source_name: String,
        /// How.
        error: docker::DockerError,
    },
    /// No docker source knows a container of this name.
    #[error("no container named {0:?} is scraped")]
    UnknownContainer(String),
    /// The one container asked for failed.
    #[error("container {container:?} failed: {error}")]
    ContainerFailed {
        /// The container.
        container: String,
        /// How.
        error: SourceError,
    },
    /// A reload that did not validate.
    #[error("reload refused, the previous configuration stays: {0}")]
    Reload(ConfigError),
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = match &self {
            RequestError::ParamNotAllowed(_)
            | RequestError::ParamRejected { .. }
            | RequestError::ParamsTooLarge
            | RequestError::ParamTwice(_) => StatusCode::BAD_REQUEST,
            RequestError::UnknownSource(_) | RequestError::UnknownContainer(_) => {
                StatusCode::NOT_FOUND
            }
            RequestError::SourceFailed {
                error: SourceError::Timeout(_),
                ..
            }
            | RequestError::ContainerFailed {
                error: SourceError::Timeout(_),
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            RequestError::SourceFailed { .. }
            | RequestError::ContainerFailed { .. }
            | RequestError::DaemonUnreachable { .. } => StatusCode::BAD_GATEWAY,
            RequestError::Reload(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// When this scrape must be answered.
pub(crate) fn deadline(headers: &HeaderMap, cap: Duration) -> Instant {
    let asked = web::requested_scrape_timeout(headers, cap).unwrap_or(cap);
    // Answer a little before Prometheus gives up, so a late source costs
    // its own series and not the whole page.
    Instant::now() + web::work_budget(asked)
}

/// Checks the query parameters against the allowlists of `sources`.
fn check_params(
    runtime: &Runtime,
    only: Option<&str>,
    params: &[(String, String)],
) -> Result<(), RequestError> {
    if params.len() > MAX_PARAMS || params.iter().any(|(_, v)| v.len() > MAX_PARAM_VALUE) {
        return Err(RequestError::ParamsTooLarge);
    }
    for (index, (name, value)) in params.iter().enumerate() {
        if params[..index].iter().any(|(n, _)| n == name) {
            return Err(RequestError::ParamTwice(name.clone()));
        }
        let mut allowed = false;
        for source in runtime
            .page_sources()
            .filter(|s| only.is_none_or(|o| o == s.name))
        {
            if let Some(rule) = source.source.params().iter().find(|r| r.name == *name) {
                if !rule.accepts(value) {
                    return Err(RequestError::ParamRejected {
                        name: name.clone(),
                        source_name: source.name.clone(),
                    });
                }
                allowed = true;
            }
        }
        if !allowed {
            return Err(RequestError::ParamNotAllowed(name.clone()));
        }
    }
    Ok(())
}

async fn metrics(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, RequestError> {
    let runtime = agent.runtime();
    check_params(&runtime, None, &params)?;
    let deadline = deadline(&headers, runtime.scrape_timeout());
    let scrape = scrape_all(&runtime.sources, deadline, &params).await;
    let scrapes = agent.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
    let reload = *agent
        .reload
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let series = AgentSeries {
        scrapes,
        reload_ok: reload.ok,
        reload_time: reload.time,
        push: agent.push.as_ref().map(|store| store.render_metrics()),
    };
    let format = negotiate(&headers);
    let body = render(&scrape, &series, format);
    Ok(page_response(&headers, format.content_type(), body))
}

async fn source_metrics(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, RequestError> {
    let runtime = agent.runtime();
    let source = runtime
        .source(&name)
        .ok_or_else(|| RequestError::UnknownSource(name.clone()))?;
    check_params(&runtime, Some(&name), &params)?;
    let deadline = deadline(&headers, runtime.scrape_timeout());
    let source = match source {
        RuntimeSource::Page(source) => source,
        RuntimeSource::Docker(source) => {
            return docker_source_metrics(source, &headers, deadline).await;
        }
    };
    let ctx = ScrapeContext {
        deadline,
        params: params_for(source, &params),
    };
    let outcome = scrape_one(source, &ctx).await;
    match outcome.result {
        Ok(scraped) => Ok(page_response(
            &headers,
            scraped.format.content_type(),
            scraped.body.to_vec(),
        )),
        Err(error) => Err(RequestError::SourceFailed {
            source_name: name,
            error,
        }),
    }
}

/// A docker source's part of the merged page: it has no page of its own.
async fn docker_source_metrics(
    source: &DockerSource,
    headers: &HeaderMap,
    deadline: Instant,
) -> Result<Response, RequestError> {
    let (outcomes, discovered) = scrape_docker(source, deadline).await;
    if let docker::DaemonStatus::Disconnected(error) = &discovered.targets.daemon {
        return Err(RequestError::DaemonUnreachable {
            source_name: source.name().to_owned(),
            error: error.clone(),
        });
    }
    let format = negotiate(headers);
    let body = render_pages(&outcomes, format);
    Ok(page_response(headers, format.content_type(), body))
}

async fn container_metrics(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, RequestError> {
    // Containers take no query parameters.
    if let Some((param, _)) = params.first() {
        return Err(RequestError::ParamNotAllowed(param.clone()));
    }
    let runtime = agent.runtime();
    let found = runtime.docker_sources().find_map(|source| {
        let target = Arc::clone(source.targets().get(&name)?);
        Some((source, target))
    });
    let Some((source, target)) = found else {
        return Err(RequestError::UnknownContainer(name));
    };
    let deadline = deadline(&headers, runtime.scrape_timeout());
    match source.scrape(&target, deadline).await {
        Ok(scraped) => Ok(page_response(
            &headers,
            scraped.format.content_type(),
            scraped.body.to_vec(),
        )),
        Err(error) => {
            tracing::warn!(source = %source.name(), container = %name, kind = error.kind(), error = %error, "container scrape failed");
            Err(RequestError::ContainerFailed {
                container: name,
                error,
            })
        }
    }
}

async fn reload(State(agent): State<Arc<Agent>>) -> Result<&'static str, RequestError> {
    agent.reload().await.map_err(RequestError::Reload)?;
    Ok("Configuration reloaded.\n")
}

async fn index(State(agent): State<Arc<Agent>>) -> Html<String> {
    let runtime = agent.runtime();
    let mut rows = String::new();
    for source in &runtime.sources {
        let kind = match source {
            RuntimeSource::Page(page) => match page.source {
                crate::source::Source::Http(_) => "http",
                crate::source::Source::Exec(_) => "exec",
                crate::source::Source::File(_) => "file",
                crate::source::Source::Push(_) => "push",
            },
            RuntimeSource::Docker(_) => "docker",
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"/sources/{0}/metrics\">{0}</a></td><td>{kind}</td></tr>",
            source.name()
        ));
        if let RuntimeSource::Docker(docker) = source {
            // Docker allows only [a-zA-Z0-9_.-] in names: safe in HTML.
            for target in &docker.targets().targets {
                rows.push_str(&format!(
                    "<tr><td>&nbsp;&nbsp;<a href=\"/containers/{0}/metrics\">{0}</a></td><td>container</td></tr>",
                    target.name
                ));
            }
        }
    }
    Html(format!(
        "<!doctype html><html><head><title>promrelay agent</title></head><body>\
         <h1>promrelay agent</h1><p><a href=\"/metrics\">Merged metrics</a></p>\
         <table><tr><th>source</th><th>kind</th></tr>{rows}</table></body></html>"
    ))
}

/// The push source of `config`, where it is (for messages) and its
/// settings.
fn push_source(config: &Config) -> Option<(String, &push::PushConfig)> {
    config
        .sources
        .iter()
        .enumerate()
        .find_map(|(index, source)| {
            let settings = source.push.as_ref()?;
            Some((
                format!("sources[{index}] {:?}: push", source.name),
                settings,
            ))
        })
}

fn negotiate(headers: &HeaderMap) -> Format {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map_or(Format::Text, Format::negotiate)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn page_response(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = if accepts_gzip(headers) {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        let compressed = encoder.write_all(&body).and_then(|()| encoder.finish());
        match compressed {
            Ok(compressed) => {
                let mut response = compressed.into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                response
            }
            Err(_) => body.into_response(),
        }
    } else {
        body.into_response()
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
