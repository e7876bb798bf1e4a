//! Sources: where the agent's metrics come from.
//!
//! An `http`, `exec`, `file` or `push` source ([`Source`]) answers one question,
//! "give me your page now, within this deadline", and says how it failed
//! when it cannot. A `docker` source ([`DockerSource`]) is a set of such
//! pages, one per container, that changes as containers come and go. The
//! scrape module runs them all side by side and merges what they return.

pub mod docker;
pub mod exec;
pub mod file;
pub mod http;
pub mod push;

use std::time::Duration;

use bytes::Bytes;
use exposition::Format;
use tokio::time::Instant;

pub use docker::DockerSource;
pub use exec::{ExecSource, ParamRule};
pub use file::FileSource;
pub use http::HttpSource;
pub use push::PushSource;

/// A source that gives one page: one of the four kinds.
#[derive(Debug)]
pub enum Source {
    /// An HTTP exporter (boxed: its client is large, the others small).
    Http(Box<HttpSource>),
    /// A command.
    Exec(ExecSource),
    /// `.prom` files.
    File(FileSource),
    /// Groups pushed to the agent.
    Push(PushSource),
}

impl Source {
    /// Scrapes the source once within the context's deadline.
    pub async fn scrape(&self, ctx: &ScrapeContext) -> Result<Scraped, SourceError> {
        match self {
            Source::Http(source) => source.scrape(ctx).await,
            Source::Exec(source) => source.scrape(ctx).await,
            Source::File(source) => source.scrape(ctx).await,
            Source::Push(source) => Ok(source.scrape()),
        }
    }

    /// The query parameters this source accepts; only commands take any.
    pub fn params(&self) -> &[ParamRule] {
        match self {
            Source::Exec(source) => &source.spec().params,
            Source::Http(_) | Source::File(_) | Source::Push(_) => &[],
        }
    }
}

/// What one scrape of the agent asks of a source.
#[derive(Clone, Debug)]
pub struct ScrapeContext {
    /// When the whole scrape must be answered; a source gives up by then.
    pub deadline: Instant,
    /// Query parameters of the scrape that passed the source's allowlist,
    /// in the order the allowlist declares them.
    pub params: Vec<(String, String)>,
}

impl ScrapeContext {
    /// The time left until the deadline, capped by `limit`.
    pub fn budget(&self, limit: Duration) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .min(limit)
    }
}

/// A page as a source delivered it.
#[derive(Clone, Debug)]
pub struct Scraped {
    /// The body, unmodified.
    pub body: Bytes,
    /// The format the body is in.
    pub format: Format,
    /// Extra series about the source (a file's mtime, a cached result's
    /// age), added to the agent's own page with the source's name.
    pub extra: Vec<Series>,
    /// Set when the page is served although something failed (a cached
    /// command whose last run failed, a malformed file left out): the
    /// failure to report in the health series.
    pub stale_error: Option<SourceError>,
}

impl Scraped {
    /// A freshly scraped page.
    pub fn fresh(body: Bytes, format: Format) -> Scraped {
        Scraped {
            body,
            format,
            extra: Vec::new(),
            stale_error: None,
        }
    }
}

/// One gauge sample about a source, for the agent's own page. The agent
/// adds the `source` label and writes HELP and TYPE once per family.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The metric name, e.g. `promrelay_file_mtime_seconds`.
    pub family: &'static str,
    /// Its HELP text.
    pub help: &'static str,
    /// Labels besides `source`.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// Why a source produced no page, by kind for the health series.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The deadline or the source's timeout passed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The backend could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The backend answered with a status other than 200.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The command exited unsuccessfully.
    #[error("command failed: {0}")]
    Command(String),
    /// The page is larger than the source's limit.
    #[error("page larger than {0} bytes")]
    TooLarge(usize),
    /// The page does not parse.
    #[error("invalid page: {0}")]
    Parse(String),
    /// Too many commands are running already.
    #[error("too many commands running (limit {0})")]
    Busy(usize),
    /// Reading failed.
    #[error("{0}")]
    Io(String),
    /// A cached result is older than its `max_age`.
    #[error("last good result is older than {0:?}")]
    Stale(Duration),
}

impl SourceError {
    /// The `kind` label of the health series.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Timeout(_) => "timeout",
            SourceError::Connect(_) => "connect",
            SourceError::Status(_) => "http_status",
            SourceError::Command(_) => "command",
            SourceError::TooLarge(_) => "too_large",
            SourceError::Parse(_) => "parse",
            SourceError::Busy(_) => "busy",
            SourceError::Io(_) => "io",
            SourceError::Stale(_) => "stale",
        }
    }
}
