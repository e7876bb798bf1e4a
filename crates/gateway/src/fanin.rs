//! Fan-in: `GET /metrics/connected` answers one page holding every known
//! agent's own `/metrics`.
//!
//! # What the page holds
//!
//! Each connected agent is scraped (`GET /metrics`) through its tunnel,
//! concurrently; every page is parsed once, in the format its
//! `Content-Type` announces, and the pages are merged by the exposition
//! engine ([`exposition::merge()`]) with `agent="<name>"` added to every
//! sample. A sample that already has an `agent` label keeps it as
//! `exported_agent`, as Prometheus does for target labels.
//!
//! After the agents' families come the gateway's own, one series per known
//! agent (connected, or disconnected within the registry's retention, so a
//! disappearance shows):
//!
//! - `promrelay_gateway_agent_up{agent}`: 1 when the agent's page is in this
//!   answer, 0 when it is not;
//! - `promrelay_gateway_agent_scrape_duration_seconds{agent}`: how long the
//!   scrape through the tunnel took (connected agents only);
//! - `promrelay_gateway_agent_scrape_error{agent,kind} 1`: why the page is
//!   missing, `kind` being [`FaninError::kind`]: `timeout`, `disconnected`,
//!   `status`, `parse`, `tunnel` or `too_large`.
//!
//! The answer is in the format negotiated from the scraper's `Accept`
//! header (text 0.0.4 unless OpenMetrics is preferred); agents are asked
//! for the same format. Pages are parsed on every core and the merged
//! page is sent in chunks as it is written, so the answer is never held
//! whole. Agents are asked for gzip (unless
//! `fanin.compression` is off), so pages cross the tunnels compressed, as
//! they do in path and `proxy_url` mode; the answer to the scraper is not
//! compressed.
//!
//! # Deadline and limits
//!
//! The deadline is the `X-Prometheus-Scrape-Timeout-Seconds` header with
//! path mode's default and cap, less a margin of 10 % (at most
//! [`web::MAX_MARGIN`]) for merging and answering. Each agent is sent the time
//! left as its own `X-Prometheus-Scrape-Timeout-Seconds`; an agent that has
//! not delivered its whole page by the deadline costs only its own samples
//! (`kind="timeout"`). At most
//! [`GatewayConfig::fanin_concurrency`](crate::GatewayConfig) agents of one
//! request are scraped at once, and a page larger than
//! [`GatewayConfig::fanin_max_body`](crate::GatewayConfig) is dropped
//! (`kind="too_large"`).
//!
//! Every agent's part counts once in
//! `promrelay_gateway_scrapes_total{route="fanin"}`.

use core::fmt::Write as _;
use core::time::Duration;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use exposition::{Format, LabelSet, LabelSetError, Page, ParseError, SourcePage};
use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tunnel::{TunnelClient, TunnelError};

use crate::metrics::{GatewayMetrics, ScrapeOutcome, ScrapeRoute};
use crate::registry::Route;
use crate::routes::{scrape_deadline, SCRAPE_TIMEOUT_HEADER};
use crate::Gateway;

/// The label every agent's samples get, naming the agent.
pub const AGENT_LABEL: &str = "agent";

/// What agents are asked for when the answer is text.
const ACCEPT_TEXT: &str = "text/plain;version=0.0.4";

/// What agents are asked for when the answer is OpenMetrics.
const ACCEPT_OPENMETRICS: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

/// Why one agent's page is missing from a fan-in answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaninError {
    /// The whole page had not arrived by the deadline.
    #[error("no complete page before the deadline")]
    Timeout,
    /// The agent is known but has no live tunnel.
    #[error("the agent is not connected")]
    Disconnected,
    /// The agent answered with a status other than 200.
    #[error("the agent answered with HTTP status {0}")]
    Status(StatusCode),
    /// The page is compressed in a way that was not asked for.
    #[error("unsupported content encoding {0:?}")]
    Encoding(String),
    /// The gzipped page cannot be decompressed.
    #[error("cannot decompress the gzipped page: {0}")]
    Gzip(#[source] std::io::Error),
    /// The page cannot be parsed.
    #[error("unparsable page: {0}")]
    Parse(#[source] ParseError),
    /// The agent's name cannot be a label value (it always can; kept so
    /// that no failure is hidden).
    #[error("agent label: {0}")]
    Label(#[source] LabelSetError),
    /// The tunnel failed before the response head arrived.
    #[error("tunnel: {0}")]
    Tunnel(#[source] TunnelError),
    /// The tunnel failed while the page was streaming.
    #[error("reading the page: {0}")]
    Body(#[source] hyper::Error),
    /// The page is larger than the configured limit.
    #[error("page larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl FaninError {
    /// The value of the `kind` label of
    /// `promrelay_gateway_agent_scrape_error`.
    pub fn kind(&self) -> &'static str {
        match self {
            FaninError::Timeout => "timeout",
            FaninError::Disconnected => "disconnected",
            FaninError::Status(_) => "status",
            FaninError::Encoding(_)
            | FaninError::Gzip(_)
            | FaninError::Parse(_)
            | FaninError::Label(_) => "parse",
            FaninError::Tunnel(_) | FaninError::Body(_) => "tunnel",
            FaninError::TooLarge { .. } => "too_large",
        }
    }

    /// How the agent's part is counted in
    /// `promrelay_gateway_scrapes_total{route="fanin"}`.
    pub fn outcome(&self) -> ScrapeOutcome {
        match self {
            FaninError::Timeout => ScrapeOutcome::Timeout,
            FaninError::Disconnected => ScrapeOutcome::Disconnected,
            _ => ScrapeOutcome::Error,
        }
    }
}

/// One agent's page as received: one chunk kept as is, or several copied
/// into one buffer (the parser needs contiguous bytes).
#[derive(Debug)]
enum BodyData {
    One(Bytes),
    Many(Vec<u8>),
}

impl BodyData {
    fn bytes(&self) -> &[u8] {
        match self {
            BodyData::One(bytes) => bytes,
            BodyData::Many(buffer) => buffer,
        }
    }
}

/// A page received from an agent, not parsed yet.
#[derive(Debug)]
struct PageBody {
    format: Format,
    data: BodyData,
    /// Bytes that crossed the tunnel (before decompression).
    received: u64,
}

/// One known agent's part of a fan-in request.
#[derive(Debug)]
struct AgentScrape {
    name: String,
    /// How long the scrape took; `None` when it was not attempted.
    duration: Option<Duration>,
    result: Result<PageBody, FaninError>,
}

/// `GET /metrics/connected` (see the [module documentation](self)).
pub(crate) async fn scrape_connected(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
) -> Response {
    let deadline = Instant::now() + web::work_budget(scrape_deadline(&headers, &gateway));
    let to = headers
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .map_or(Format::Text, Format::negotiate);

    let scrapes = scrape_all(&gateway, to, deadline).await;
    for scrape in &scrapes {
        match (&scrape.result, scrape.duration) {
            (Ok(page), Some(duration)) => {
                gateway
                    .metrics
                    .answered(ScrapeRoute::Fanin, duration, page.received);
            }
            (Ok(_), None) => {}
            (Err(error), _) => gateway.metrics.scrape(ScrapeRoute::Fanin, error.outcome()),
        }
    }
    // Parsing and merging are CPU work: on a blocking thread, which sends
    // the page in chunks as it is merged, so the whole answer is never
    // held at once and the scraper receives it while it is being written.
    let (chunks, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let merging = Arc::clone(&gateway);
    tokio::task::spawn_blocking(move || {
        render(scrapes, to, &merging.metrics, |chunk| {
            // The scraper hung up: nothing more to send.
            chunks.blocking_send(chunk).is_ok()
        });
    });
    let mut response = Response::new(Body::new(ChunkBody(receiver)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(to.content_type()));
    response
}

/// Chunks of the merged page the merge may be ahead of the scraper.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The merge sends a chunk once it holds this many bytes.
const CHUNK_BYTES: usize = 256 * 1024;

/// The answer's body: the chunks the merge sends, in order.
struct ChunkBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = core::convert::Infallible;

    fn poll_frame(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(hyper::body::Frame::data(chunk))))
    }
}

/// Scrapes every known agent, at most
/// [`GatewayConfig::fanin_concurrency`](crate::GatewayConfig) at once, each
/// bounded by `deadline`. The result is in agent name order.
async fn scrape_all(gateway: &Gateway, to: Format, deadline: Instant) -> Vec<AgentScrape> {
    let mut agents = gateway.registry.agents();
    agents.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    agents.dedup_by(|a, b| a.name == b.name);

    let semaphore = Arc::new(Semaphore::new(gateway.config.fanin_concurrency.max(1)));
    let max_body = gateway.config.fanin_max_body;
    let gzip = gateway.config.fanin_compression;
    let mut tasks = JoinSet::new();
    let mut scrapes = Vec::with_capacity(agents.len());
    for (index, agent) in agents.into_iter().enumerate() {
        let client = match agent.connected.then(|| gateway.registry.route(&agent.name)) {
            Some(Route::Connected(client)) => Some(client),
            _ => None,
        };
        // Stays as is only if the task is lost (it cannot outlive the deadline).
        let mut scrape = AgentScrape {
            name: agent.name,
            duration: None,
            result: Err(FaninError::Disconnected),
        };
        if let Some(client) = client {
            scrape.result = Err(FaninError::Timeout);
            let semaphore = Arc::clone(&semaphore);
            tasks.spawn(async move {
                let Ok(Ok(_permit)) =
                    tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await
                else {
                    return (index, None, Err(FaninError::Timeout));
                };
                let started = Instant::now();
                let result =
                    tokio::time::timeout_at(deadline, fetch(&client, to, deadline, max_body, gzip))
                        .await
                        .unwrap_or(Err(FaninError::Timeout));
                (index, Some(started.elapsed()), result)
            });
        }
        scrapes.push(scrape);
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, duration, result)) => {
                let scrape = &mut scrapes[index];
                scrape.duration = duration;
                scrape.result = result;
            }
            Err(error) => tracing::error!(%error, "fan-in scrape task failed"),
        }
    }
    scrapes
}

/// The scrape request sent to an agent.
fn agent_request(to: Format, left: Duration, gzip: bool) -> Result<Request<Body>, FaninError> {
    let accept = match to {
        Format::Text => ACCEPT_TEXT,
        Format::OpenMetrics => ACCEPT_OPENMETRICS,
    };
    let mut request = Request::get("/metrics")
        .header(ACCEPT, accept)
        .header(SCRAPE_TIMEOUT_HEADER, format!("{:.3}", left.as_secs_f64()));
    if gzip {
        request = request.header(ACCEPT_ENCODING, "gzip");
    }
    request
        .body(Body::empty())
        .map_err(|_| FaninError::Tunnel(TunnelError::InvalidRequest("bad fan-in request")))
}

/// Scrapes one agent's `/metrics` and reads the whole page.
async fn fetch(
    client: &TunnelClient,
    to: Format,
    deadline: Instant,
    max_body: usize,
    gzip: bool,
) -> Result<PageBody, FaninError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(FaninError::Timeout);
    }
    let response = client
        .request(agent_request(to, left, gzip)?)
        .await
        .map_err(|error| match error {
            TunnelError::Closed => FaninError::Disconnected,
            error => FaninError::Tunnel(error),
        })?;
    if response.status() != StatusCode::OK {
        return Err(FaninError::Status(response.status()));
    }
    let headers = response.headers();
    let mut gzipped = false;
    if let Some(encoding) = headers.get(CONTENT_ENCODING) {
        let encoding = encoding.as_bytes();
        if gzip && encoding.eq_ignore_ascii_case(b"gzip") {
            gzipped = true;
        } else if !encoding.eq_ignore_ascii_case(b"identity") {
            return Err(FaninError::Encoding(
                String::from_utf8_lossy(encoding).into_owned(),
            ));
        }
    }
    let format = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map_or(Format::Text, Format::from_content_type);
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body as u64) {
        return Err(FaninError::TooLarge { limit: max_body });
    }
    let declared = declared.map_or(0, |length| length as usize);

    let mut body = response.into_body();
    let mut data: Option<BodyData> = None;
    let mut length = 0_usize;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(FaninError::Body)?.into_data() else {
            continue;
        };
        length += chunk.len();
        if length > max_body {
            return Err(FaninError::TooLarge { limit: max_body });
        }
        data = Some(match data {
            None => BodyData::One(chunk),
            Some(BodyData::One(first)) => {
                let mut buffer = Vec::with_capacity(declared.max(length));
                buffer.extend_from_slice(&first);
                buffer.extend_from_slice(&chunk);
                BodyData::Many(buffer)
            }
            Some(BodyData::Many(mut buffer)) => {
                buffer.extend_from_slice(&chunk);
                BodyData::Many(buffer)
            }
        });
    }
    let data = data.unwrap_or(BodyData::One(Bytes::new()));
    let received = length as u64;
    let data = if gzipped {
        gunzip(data, max_body).await?
    } else {
        data
    };
    Ok(PageBody {
        format,
        data,
        received,
    })
}

/// Compressed pages above this size are decompressed on a blocking thread
/// so that one large page does not hold up the runtime.
const INLINE_GUNZIP_LIMIT: usize = 256 * 1024;

/// Decompresses a gzipped page, refusing one that grows past `max_body`
/// (a small body can expand enormously).
async fn gunzip(data: BodyData, max_body: usize) -> Result<BodyData, FaninError> {
    fn inflate(compressed: &[u8], max_body: usize) -> Result<BodyData, FaninError> {
        use std::io::Read as _;
        // A gzip member ends with its uncompressed size (mod 2^32): size
        // the page once, as a thousand pages at once make slack count. It
        // is only a hint; the limit below is what is enforced.
        let hinted = compressed
            .len()
            .checked_sub(4)
            .and_then(|at| compressed[at..].try_into().ok())
            .map_or(0, |size: [u8; 4]| u32::from_le_bytes(size) as usize);
        let mut page = Vec::with_capacity(hinted.min(max_body).saturating_add(1));
        flate2::read::MultiGzDecoder::new(compressed)
            .take(max_body as u64 + 1)
            .read_to_end(&mut page)
            .map_err(FaninError::Gzip)?;
        if page.len() > max_body {
            return Err(FaninError::TooLarge { limit: max_body });
        }
        Ok(BodyData::Many(page))
    }
    if data.bytes().len() <= INLINE_GUNZIP_LIMIT {
        return inflate(data.bytes(), max_body);
    }
    tokio::task::spawn_blocking(move || inflate(data.bytes(), max_body))
        .await
        .unwrap_or_else(|error| Err(FaninError::Gzip(std::io::Error::other(error))))
}

/// Parses the agents' pages, counts each received page's outcome (ok, or
/// an error when it cannot be parsed), and merges them with the gateway's
/// per-agent series into one page in `to`, given to `send` in chunks until
/// it returns false.
fn render(
    scrapes: Vec<AgentScrape>,
    to: Format,
    metrics: &GatewayMetrics,
    mut send: impl FnMut(Bytes) -> bool,
) {
    let mut names = Vec::with_capacity(scrapes.len());
    let mut durations = Vec::with_capacity(scrapes.len());
    let mut bodies = Vec::with_capacity(scrapes.len());
    let mut errors = Vec::with_capacity(scrapes.len());
    for scrape in scrapes {
        names.push(scrape.name);
        durations.push(scrape.duration);
        match scrape.result {
            Ok(body) => {
                bodies.push(Some(body));
                errors.push(None);
            }
            Err(error) => {
                bodies.push(None);
                errors.push(Some(error));
            }
        }
    }

    // Each page is parsed once and borrows its body, which `bodies` keeps
    // alive until the merge.
    let parsed = parse_all(&names, &bodies);
    let mut pages: Vec<Option<(Format, Page<'_>, LabelSet)>> = Vec::with_capacity(bodies.len());
    for (parsed, error) in parsed.into_iter().zip(&mut errors) {
        match parsed {
            Some(Ok(parsed)) => {
                metrics.scrape(ScrapeRoute::Fanin, ScrapeOutcome::Ok);
                pages.push(Some(parsed));
            }
            Some(Err(failure)) => {
                metrics.scrape(ScrapeRoute::Fanin, failure.outcome());
                *error = Some(failure);
                pages.push(None);
            }
            None => pages.push(None),
        }
    }
    for (name, error) in names.iter().zip(&errors) {
        if let Some(error) = error {
            tracing::debug!(agent = %name, kind = error.kind(), %error, "fan-in scrape failed");
        }
    }

    let own = own_series(&names, &durations, &errors);
    let own_page = exposition::parse(own.as_bytes(), Format::Text);
    if let Err(error) = &own_page {
        tracing::error!(%error, "the gateway's fan-in series do not parse");
    }
    let no_labels = LabelSet::default();

    let mut sources: Vec<SourcePage<'_, '_>> = names
        .iter()
        .zip(&pages)
        .filter_map(|(name, page)| {
            page.as_ref().map(|(format, page, labels)| SourcePage {
                name,
                format: *format,
                page,
                labels,
            })
        })
        .collect();
    if let Ok(page) = &own_page {
        sources.push(SourcePage {
            name: "gateway",
            format: Format::Text,
            page,
            labels: &no_labels,
        });
    }
    let mut buffer = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
    let mut open = true;
    let report = exposition::merge_in_chunks(&sources, to, CHUNK_BYTES, &mut buffer, |buffer| {
        if open && !buffer.is_empty() {
            let chunk =
                core::mem::replace(buffer, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4));
            open = send(Bytes::from(chunk));
        }
        buffer.clear();
    });
    for conflict in &report.conflicts {
        tracing::debug!(
            family = %conflict.family,
            kept = %conflict.kept_source,
            dropped = %conflict.dropped_source,
            samples = conflict.dropped_samples,
            "fan-in type conflict"
        );
    }
}

/// A parsed page, its format and the agent's label.
type Parsed<'a> = Result<(Format, Page<'a>, LabelSet), FaninError>;

/// Parses every received page, on as many threads as there are cores
/// (parsing is most of the fan-in's CPU time).
fn parse_all<'a>(names: &[String], bodies: &'a [Option<PageBody>]) -> Vec<Option<Parsed<'a>>> {
    let parse_one = |name: &String, body: &'a Option<PageBody>| {
        body.as_ref().map(|body| {
            exposition::parse(body.data.bytes(), body.format)
                .map_err(FaninError::Parse)
                .and_then(|mut page| {
                    // The parser sizes its sample vector for short lines;
                    // a thousand pages held at once make the slack count.
                    page.samples.shrink_to_fit();
                    page.families.shrink_to_fit();
                    LabelSet::new([(AGENT_LABEL, name)])
                        .map(|labels| (body.format, page, labels))
                        .map_err(FaninError::Label)
                })
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, core::num::NonZeroUsize::get)
        .min(names.len().div_ceil(PAGES_PER_THREAD))
        .max(1);
    if threads == 1 {
        return names
            .iter()
            .zip(bodies)
            .map(|(n, b)| parse_one(n, b))
            .collect();
    }
    let per_thread = names.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = names
            .chunks(per_thread)
            .zip(bodies.chunks(per_thread))
            .map(|(names, bodies)| {
                scope.spawn(move || {
                    names
                        .iter()
                        .zip(bodies)
                        .map(|(n, b)| parse_one(n, b))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Fewer pages than this are not worth another thread.
const PAGES_PER_THREAD: usize = 16;

/// The gateway's per-agent series, in the text format.
fn own_series(
    names: &[String],
    durations: &[Option<Duration>],
    errors: &[Option<FaninError>],
) -> String {
    let mut out = String::with_capacity(256 + names.len() * 192);
    out.push_str(
        "# HELP promrelay_gateway_agent_up Whether the agent's page is in this fan-in answer.\n\
         # TYPE promrelay_gateway_agent_up gauge\n",
    );
    for (name, error) in names.iter().zip(errors) {
        let up = u8::from(error.is_none());
        let _ = writeln!(
            out,
            "promrelay_gateway_agent_up{{agent=\"{}\"}} {up}",
            Escaped(name)
        );
    }
    if durations.iter().any(Option::is_some) {
        out.push_str(
            "# HELP promrelay_gateway_agent_scrape_duration_seconds How long scraping the agent through its tunnel took.\n\
             # TYPE promrelay_gateway_agent_scrape_duration_seconds gauge\n",
        );
        for (name, duration) in names.iter().zip(durations) {
            if let Some(duration) = duration {
                let _ = writeln!(
                    out,
                    "promrelay_gateway_agent_scrape_duration_seconds{{agent=\"{}\"}} {}",
                    Escaped(name),
                    duration.as_secs_f64()
                );
            }
        }
    }
    if errors.iter().any(Option::is_some) {
        out.push_str(
            "# HELP promrelay_gateway_agent_scrape_error Why the agent's page is missing from this fan-in answer.\n\
             # TYPE promrelay_gateway_agent_scrape_error gauge\n",
        );
        for (name, error) in names.iter().zip(errors) {
            if let Some(error) = error {
                let _ = writeln!(
                    out,
                    "promrelay_gateway_agent_scrape_error{{agent=\"{}\",kind=\"{}\"}} 1",
                    Escaped(name),
                    error.kind()
                );
            }
        }
    }
    out
}

/// A label value escaped for the text format.
struct Escaped<'a>(&'a str);

impl core::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_series_parse_and_validate() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let durations = vec![Some(Duration::from_millis(12)), None];
        let errors = vec![None, Some(FaninError::Disconnected)];
        let text = own_series(&names, &durations, &errors);
        let page = exposition::parse(text.as_bytes(), Format::Text).unwrap();
        assert!(exposition::validate_strict(&page, Format::Text).is_empty());
        assert!(text.contains("promrelay_gateway_agent_up{agent=\"b\"} 0\n"));
        assert!(text.contains(
            "promrelay_gateway_agent_scrape_error{agent=\"b\",kind=\"disconnected\"} 1\n"
        ));
    }
}
