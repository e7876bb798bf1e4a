//! Scraping containers: each target fetched as Prometheus would, side by
//! side, each failure kept to its own container.
//!
//! A request carries Prometheus's `Accept` header (OpenMetrics first) and
//! the time left as `X-Prometheus-Scrape-Timeout-Seconds`; a body is read
//! up to `max_page_size` and no further, and must parse (at the level
//! Prometheus's own scraper accepts) to count as a page. The error kinds
//! are the agent's source error kinds, so its health series read the same
//! for containers as for other sources.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use exposition::Format;
use futures::StreamExt as _;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use tokio::time::Instant;

use crate::config::{ConfigProblem, DockerConfig};
use crate::target::Target;

/// What Prometheus 2 sends: OpenMetrics preferred, text accepted.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Scrapes containers; one per discovery source, shared by all scrapes.
#[derive(Clone, Debug)]
pub struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
    max_page_size: usize,
    concurrency: usize,
}

/// A container's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapedPage {
    /// The body as the container sent it (gzip undone).
    pub body: Bytes,
    /// Its format, from the `Content-Type`.
    pub format: Format,
}

/// Why a container gave no page.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// The deadline or the configured timeout passed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The container could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// It answered with a status other than 200.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The page is larger than `max_page_size`.
    #[error("page larger than {0} bytes")]
    TooLarge(usize),
    /// The page does not parse.
    #[error("invalid page: {0}")]
    Parse(String),
    /// The exchange broke after connecting.
    #[error("{0}")]
    Io(String),
}

impl ScrapeError {
    /// The `kind` label of the health series, as the agent's sources use.
    pub fn kind(&self) -> &'static str {
        match self {
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Connect(_) => "connect",
            ScrapeError::Status(_) => "http_status",
            ScrapeError::TooLarge(_) => "too_large",
            ScrapeError::Parse(_) => "parse",
            ScrapeError::Io(_) => "io",
        }
    }
}

/// One container's result in a scrape of all of them.
#[derive(Clone, Debug)]
pub struct ContainerScrape {
    /// The container.
    pub target: Arc<Target>,
    /// Its page, or why there is none.
    pub result: Result<ScrapedPage, ScrapeError>,
    /// How long it took.
    pub duration: Duration,
}

impl Scraper {
    /// A scraper with the configuration's timeout, page limit, concurrency
    /// and TLS choice.
    pub fn new(config: &DockerConfig) -> Result<Scraper, ConfigProblem> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(PROMETHEUS_ACCEPT));
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("promrelay/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout.0)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::limited(3))
            .danger_accept_invalid_certs(config.insecure_skip_verify)
            .build()
            .map_err(|e| ConfigProblem::new("insecure_skip_verify", e.to_string()))?;
        Ok(Scraper {
            client,
            timeout: config.timeout.0,
            max_page_size: config.max_page_size,
            concurrency: config.max_concurrent_scrapes,
        })
    }

    /// Scrapes every target, at most `max_concurrent_scrapes` at a time,
    /// none past `deadline`; the results are in the targets' order.
    pub async fn scrape_all(
        &self,
        targets: &[Arc<Target>],
        deadline: Instant,
    ) -> Vec<ContainerScrape> {
        // Owned targets: a closure taking `&Arc<Target>` makes a future that
        // is not `Send` for every lifetime, which an axum handler requires.
        futures::stream::iter(targets.iter().cloned().map(|target| async move {
            let start = Instant::now();
            let result = self.scrape(&target, deadline).await;
            if let Err(error) = &result {
                tracing::warn!(container = %target.name, url = %target.url, kind = error.kind(), error = %error, "container scrape failed");
            }
            ContainerScrape {
                target,
                result,
                duration: start.elapsed(),
            }
        }))
        .buffered(self.concurrency)
        .collect()
        .await
    }

    /// Scrapes one container, within `deadline` and the configured timeout.
    pub async fn scrape(
        &self,
        target: &Target,
        deadline: Instant,
    ) -> Result<ScrapedPage, ScrapeError> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(self.timeout);
        if budget.is_zero() {
            return Err(ScrapeError::Timeout(budget));
        }
        match tokio::time::timeout(budget, self.fetch(target, budget)).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Timeout(budget)),
        }
    }

    async fn fetch(&self, target: &Target, budget: Duration) -> Result<ScrapedPage, ScrapeError> {
        let mut response = self
            .client
            .get(&target.url)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{:.3}", budget.as_secs_f64()),
            )
            .send()
            .await
            .map_err(|e| classify(&e, budget))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(status.as_u16()));
        }
        let format = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or(Format::Text, Format::from_content_type);
        let limit = self.max_page_size;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(ScrapeError::TooLarge(limit));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, budget))? {
            if body.len() + chunk.len() > limit {
                return Err(ScrapeError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        exposition::parse(&body, format).map_err(|e| ScrapeError::Parse(e.to_string()))?;
        Ok(ScrapedPage { body, format })
    }
}

fn classify(error: &reqwest::Error, budget: Duration) -> ScrapeError {
    if error.is_timeout() {
        ScrapeError::Timeout(budget)
    } else if error.is_connect() {
        ScrapeError::Connect(crate::client::error_chain(error))
    } else {
        ScrapeError::Io(crate::client::error_chain(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Origin;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serves each of `answers` (a whole HTTP response) to one connection.
    fn serve(answers: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut buf = [0; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let request = String::from_utf8_lossy(&request).to_lowercase();
                assert!(
                    request.contains("x-prometheus-scrape-timeout-seconds: "),
                    "{request}"
                );
                assert!(
                    request.contains("accept: application/openmetrics-text"),
                    "{request}"
                );
                let _ = stream.write_all(&answer);
            }
        });
        (url, thread)
    }

    fn answer(status: &str, content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn target(name: &str, url: &str) -> Arc<Target> {
        Arc::new(Target {
            name: name.into(),
            id: format!("{name:0<64}"),
            image: "img".into(),
            url: url.into(),
            labels: vec![("container", name.into())],
            origin: Origin::Labels,
        })
    }

    #[tokio::test]
    async fn each_container_fails_on_its_own() {
        let (url, server) = serve(vec![
            answer(
                "200 OK",
                "text/plain; version=0.0.4",
                "# TYPE up gauge\nup 1\n",
            ),
            answer("200 OK", "text/plain", "this is {{ not a page\n"),
            answer("503 Service Unavailable", "text/plain", "busy\n"),
            answer(
                "200 OK",
                "application/openmetrics-text; version=1.0.0",
                "# TYPE a gauge\na 1\n# EOF\n",
            ),
        ]);
        let config = DockerConfig {
            max_concurrent_scrapes: 1,
            ..DockerConfig::default()
        };
        let scraper = Scraper::new(&config).unwrap();
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/metrics", listener.local_addr().unwrap())
        };
        let targets = [
            target("good", &url),
            target("garbage", &url),
            target("busy", &url),
            target("openmetrics", &url),
            target("gone", &closed),
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        let results = scraper.scrape_all(&targets, deadline).await;
        server.join().unwrap();
        let kinds: Vec<_> = results
            .iter()
            .map(|r| {
                (
                    r.target.name.as_str(),
                    r.result
                        .as_ref()
                        .map_err(ScrapeError::kind)
                        .map(|p| p.format),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("good", Ok(Format::Text)),
                ("garbage", Err("parse")),
                ("busy", Err("http_status")),
                ("openmetrics", Ok(Format::OpenMetrics)),
                ("gone", Err("connect")),
            ]
        );
        assert_eq!(
            results[0].result.as_ref().unwrap().body,
            Bytes::from_static(b"# TYPE up gauge\nup 1\n")
        );
        let parse = results[1].result.as_ref().unwrap_err().to_string();
        assert!(parse.starts_with("invalid page: "), "{parse}");
    }

    #[tokio::test]
    async fn pages_are_bounded() {
        let big = "a 1\n".repeat(100);
        let (url, server) = serve(vec![answer("200 OK", "text/plain", &big)]);
        let config = DockerConfig {
            max_page_size: 100,
            ..DockerConfig::default()
        };
        let scraper = Scraper::new(&config).unwrap();
        let result = scraper
            .scrape(
                &target("big", &url),
                Instant::now() + Duration::from_secs(5),
            )
            .await;
        server.join().unwrap();
        assert_eq!(result, Err(ScrapeError::TooLarge(100)));
    }

    #[tokio::test]
    async fn a_passed_deadline_is_a_timeout_at_once() {
        let scraper = Scraper::new(&DockerConfig::default()).unwrap();
        let result = scraper
            .scrape(
                &target("late", "http://127.0.0.1:9/metrics"),
                Instant::now(),
            )
            .await;
        assert_eq!(result.unwrap_err().kind(), "timeout");
    }
}
