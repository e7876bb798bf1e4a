//! `http` sources: scrape an exporter over HTTP(S), as Prometheus would.
//!
//! The request carries Prometheus's `Accept` header (OpenMetrics first) and
//! the time left as `X-Prometheus-Scrape-Timeout-Seconds`; the body is read
//! up to `max_page_size` and never further.

use std::time::Duration;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::{Bytes, BytesMut};
use exposition::Format;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use crate::config::{BasicAuth, HttpConfig};
use crate::source::{ScrapeContext, Scraped, SourceError};

/// What Prometheus 2 sends: OpenMetrics preferred, text accepted.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Secrets read from files are small; bound the read anyway.
const MAX_SECRET_FILE: u64 = 64 << 10;

/// An HTTP exporter and the client that scrapes it.
#[derive(Debug)]
pub struct HttpSource {
    config: HttpConfig,
    client: reqwest::Client,
}

/// Why an `http` source could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpSetupError(String);

impl HttpSource {
    /// Builds the client: TLS material is read now, so a broken file is a
    /// configuration error, not a scrape error.
    pub fn new(config: HttpConfig) -> Result<HttpSource, HttpSetupError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(PROMETHEUS_ACCEPT));
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| HttpSetupError(e.to_string()))?;
            let value = HeaderValue::from_str(value).map_err(|e| HttpSetupError(e.to_string()))?;
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("promrelay/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout.0)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::limited(3));
        if let Some(tls) = &config.tls_config {
            if let Some(ca) = &tls.ca_file {
                let pem = read_small(ca).map_err(HttpSetupError)?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| HttpSetupError(format!("{}: {e}", ca.display())))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                let mut pem = read_small(cert).map_err(HttpSetupError)?;
                pem.extend_from_slice(&read_small(key).map_err(HttpSetupError)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| HttpSetupError(format!("{}: {e}", cert.display())))?;
                builder = builder.identity(identity);
            }
            builder = builder.danger_accept_invalid_certs(tls.insecure_skip_verify);
        }
        let client = builder.build().map_err(|e| HttpSetupError(e.to_string()))?;
        Ok(HttpSource { config, client })
    }

    /// The configuration this source was built from.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Scrapes the exporter once, within the context's deadline.
    pub async fn scrape(&self, ctx: &ScrapeContext) -> Result<Scraped, SourceError> {
        let budget = ctx.budget(self.config.timeout.0);
        if budget.is_zero() {
            return Err(SourceError::Timeout(self.config.timeout.0));
        }
        let work = self.fetch(budget);
        match tokio::time::timeout(budget, work).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Timeout(budget)),
        }
    }

    async fn fetch(&self, budget: Duration) -> Result<Scraped, SourceError> {
        let mut request = self.client.get(&self.config.url).header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{:.3}", budget.as_secs_f64()),
        );
        if let Some(auth) = self.authorization().await? {
            request = request.header(AUTHORIZATION, auth);
        }
        let mut response = request.send().await.map_err(|e| classify(&e, budget))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(SourceError::Status(status.as_u16()));
        }
        let format = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or(Format::Text, Format::from_content_type);
        let limit = self.config.max_page_size;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(SourceError::TooLarge(limit));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, budget))? {
            if body.len() + chunk.len() > limit {
                return Err(SourceError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Scraped::fresh(Bytes::from(body), format))
    }

    /// The `Authorization` header, with files read at each scrape so a
    /// rotated secret is picked up.
    async fn authorization(&self) -> Result<Option<String>, SourceError> {
        let read = |path: std::path::PathBuf| async move {
            tokio::task::spawn_blocking(move || read_small(&path))
                .await
                .map_err(|e| SourceError::Io(e.to_string()))?
                .map_err(SourceError::Io)
                .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        };
        if let Some(token) = &self.config.bearer_token {
            return Ok(Some(format!("Bearer {token}")));
        }
        if let Some(path) = &self.config.bearer_token_file {
            return Ok(Some(format!("Bearer {}", read(path.clone()).await?)));
        }
        if let Some(BasicAuth {
            username,
            password,
            password_file,
        }) = &self.config.basic_auth
        {
            let password = match (password, password_file) {
                (Some(password), _) => password.clone(),
                (None, Some(path)) => read(path.clone()).await?,
                (None, None) => String::new(),
            };
            let credentials = BASE64_STANDARD.encode(format!("{username}:{password}"));
            return Ok(Some(format!("Basic {credentials}")));
        }
        Ok(None)
    }
}

fn classify(error: &reqwest::Error, budget: Duration) -> SourceError {
    if error.is_timeout() {
        SourceError::Timeout(budget)
    } else if error.is_connect() {
        SourceError::Connect(error_chain(error))
    } else {
        SourceError::Io(error_chain(error))
    }
}

/// reqwest's top-level message is vague ("error sending request"); the
/// cause says what happened.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn read_small(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}
