//! `fanin`: the whole `/metrics/connected` page of a gateway holding many
//! simulated agents, against a plain server of ours sending the very same
//! bytes from memory, fetched alternately by one client; and the gateway's
//! peak RSS over those fetches against the page size.
//!
//! Goal (the product's measured targets): the gateway takes at most 3× the
//! plain server's time, and its peak RSS stays under 3× the page.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING};
use bytes::Bytes;

use crate::gateway::{GatewayProcess, AGENT_TOKEN, SCRAPE_TIMEOUT_HEADER};
use crate::process::{self, mib};
use crate::simulated::{self, page_router, Page};
use crate::static_server::StaticServer;
use crate::stats::{ms, quantile};

/// What the fetches ask for: Prometheus text, as Prometheus does when it
/// is told not to negotiate OpenMetrics.
const ACCEPT_TEXT: &str = "text/plain;version=0.0.4";

/// The scrape timeout sent with each fetch: long enough for the whole page.
const SCRAPE_TIMEOUT_SECONDS: &str = "30";

/// Dials in flight while the agents connect.
const PARALLEL_DIALS: usize = 64;

/// One timed fetch: how long until the response head and until the last
/// byte, and how many bytes.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    head: Duration,
    time: Duration,
    bytes: usize,
}

pub(crate) fn run(
    promrelay: &Path,
    agents: usize,
    series: usize,
    fetches: usize,
) -> Result<(), String> {
    process::raise_open_files_limit(agents)?;
    let gateway = GatewayProcess::start(promrelay);
    crate::runtime().block_on(measure(&gateway, agents, series, fetches.max(1)))
}

async fn measure(
    gateway: &GatewayProcess,
    agents: usize,
    series: usize,
    fetches: usize,
) -> Result<(), String> {
    let pid = gateway.pid();
    let pages: Vec<Page> = (0..agents)
        .map(|agent| Page::with_gzip(crate::pages::agent_page(agent, series)))
        .collect();
    let agents_bytes: usize = pages.iter().map(Page::len).sum();
    let agents_gzip_bytes: usize = pages.iter().filter_map(Page::gzip_len).sum();

    let started = Instant::now();
    let simulated = simulated::connect(
        &gateway.tunnel_url(),
        AGENT_TOKEN,
        pages
            .into_iter()
            .enumerate()
            .map(|(agent, page)| (agent_name(agent), page_router(page))),
        PARALLEL_DIALS,
    )
    .await?;
    let client = reqwest::Client::builder()
        .no_gzip()
        .no_proxy()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    gateway
        .wait_for_agents(&client, agents, Duration::from_secs(120))
        .await?;
    let connect_time = started.elapsed();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = process::rss(pid)?;
    let peak_since_start = process::reset_peak(pid).is_err();

    let fanin_url = gateway.url("/metrics/connected");
    let page = fetch_whole(&client, &fanin_url).await?;
    let up = count_up(&page);
    let baseline = StaticServer::start(page.clone()).await;
    let baseline_url = baseline.metrics_url();
    fetch_whole(&client, &baseline_url).await?;

    let mut plain = Vec::with_capacity(fetches);
    let mut fanin = Vec::with_capacity(fetches);
    for _ in 0..fetches {
        plain.push(fetch_timed(&client, &baseline_url, &[]).await?);
        fanin.push(fetch_timed(&client, &fanin_url, &[]).await?);
    }
    let peak = process::peak_rss(pid)?;
    let rss_after = process::rss(pid)?;
    let gzip = fetch_timed(&client, &fanin_url, &[(ACCEPT_ENCODING.as_str(), "gzip")]).await?;
    let gzip_encoding = fetch_encoding(&client, &baseline_url).await;
    let ok_scrapes = gateway
        .own_series(
            &client,
            "promrelay_gateway_scrapes_total{route=\"fanin\",outcome=\"ok\"}",
        )
        .await;
    let tunnel_bytes = gateway
        .own_series(
            &client,
            "promrelay_gateway_scrape_bytes_total{route=\"fanin\"}",
        )
        .await;
    let still_connected = simulated.len();

    println!(
        "fanin: {agents} simulated agents x {series} series through one `promrelay gateway`, \
         {fetches} alternating fetches per target, one client, keep-alive, uncompressed, \
         Accept: {ACCEPT_TEXT}, X-Prometheus-Scrape-Timeout-Seconds: {SCRAPE_TIMEOUT_SECONDS}"
    );
    println!(
        "agents' pages: {agents} x {:.1} KB = {:.1} MB ({:.1} MB gzipped, served so to the \
         gateway when it asks); all connected and listed in {:.1} s",
        agents_bytes as f64 / agents.max(1) as f64 / 1e3,
        agents_bytes as f64 / 1e6,
        agents_gzip_bytes as f64 / 1e6,
        connect_time.as_secs_f64()
    );
    println!(
        "/metrics/connected page: {} bytes ({:.1} MB), {up} of {agents} agents up",
        page.len(),
        page.len() as f64 / 1e6
    );
    println!();
    println!(
        "{:<36} {:>10} {:>9} {:>9} {:>14} {:>7}",
        "target", "median ms", "best ms", "worst ms", "head (median)", "MB/s"
    );
    let (plain_median, plain_best) = print_row("plain server of ours (same bytes)", &mut plain);
    let (fanin_median, fanin_best) = print_row("gateway /metrics/connected", &mut fanin);
    let ratio = fanin_median.as_secs_f64() / plain_median.as_secs_f64();
    println!();
    println!(
        "time: gateway / plain server = {ratio:.1}x (medians), {:.1}x (best)   goal <= 3x: {}",
        fanin_best.as_secs_f64() / plain_best.as_secs_f64(),
        verdict(ratio <= 3.0)
    );
    let growth = peak.saturating_sub(rss_before);
    let page_bytes = page.len() as f64;
    println!(
        "gateway RSS: {:.1} MiB before the fetches, peak {:.1} MiB{} (+{:.1} MiB), {:.1} MiB after",
        mib(rss_before),
        mib(peak),
        if peak_since_start { " since start" } else { "" },
        mib(growth),
        mib(rss_after)
    );
    println!(
        "peak RSS / page = {:.2}x (growth over the fetches / page = {:.2}x)   goal < 3x: {}",
        peak as f64 / page_bytes,
        growth as f64 / page_bytes,
        verdict((peak as f64) < 3.0 * page_bytes)
    );
    // The page varies by a few bytes between answers (scrape durations).
    let compressed = gzip.bytes.abs_diff(page.len()) > page.len() / 100;
    println!(
        "asked with Accept-Encoding: gzip, the gateway answered {} bytes ({}) in {:.1} ms; \
         the plain server: {gzip_encoding}",
        gzip.bytes,
        if compressed {
            "compressed"
        } else {
            "uncompressed"
        },
        ms(gzip.time),
    );
    let answers = fetches + 2;
    let expected = agents * answers;
    match ok_scrapes {
        Some(ok) => println!(
            "agent pages in the answers: {ok} of {expected}; {still_connected} tunnels still up"
        ),
        None => println!("agent pages in the answers: unknown (no fan-in counter on /metrics)"),
    }
    if let Some(bytes) = tunnel_bytes {
        println!(
            "bytes through the tunnels per answer: {:.1} MB",
            bytes / answers as f64 / 1e6
        );
    }
    Ok(())
}

fn agent_name(agent: usize) -> String {
    format!("agent-{agent:05}")
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Sorts `fetches`, prints their row and returns the median and best times.
fn print_row(target: &str, fetches: &mut [Fetch]) -> (Duration, Duration) {
    fetches.sort_by_key(|fetch| fetch.time);
    let times: Vec<Duration> = fetches.iter().map(|fetch| fetch.time).collect();
    let median = quantile(&times, 0.5);
    let mut heads: Vec<Duration> = fetches.iter().map(|fetch| fetch.head).collect();
    heads.sort_unstable();
    let bytes = fetches.first().map_or(0, |fetch| fetch.bytes);
    println!(
        "{target:<36} {:>10.1} {:>9.1} {:>9.1} {:>11.1} ms {:>7.0}",
        ms(median),
        ms(times[0]),
        ms(times[times.len() - 1]),
        ms(quantile(&heads, 0.5)),
        bytes as f64 / 1e6 / median.as_secs_f64()
    );
    (median, times[0])
}

fn request(client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    client
        .get(url)
        .header(ACCEPT, ACCEPT_TEXT)
        .header(SCRAPE_TIMEOUT_HEADER, SCRAPE_TIMEOUT_SECONDS)
}

/// Fetches a whole page into memory.
async fn fetch_whole(client: &reqwest::Client, url: &str) -> Result<Bytes, String> {
    let response = request(client, url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?;
    response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))
}

/// Fetches a page, counting its bytes as they come: the client keeps none,
/// so the time is the server's and the transport's.
async fn fetch_timed(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Fetch, String> {
    let started = Instant::now();
    let mut builder = request(client, url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = builder
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {e}"))?;
    let head = started.elapsed();
    let mut bytes = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
    {
        bytes += chunk.len();
    }
    Ok(Fetch {
        head,
        time: started.elapsed(),
        bytes,
    })
}

/// The `Content-Encoding` the plain server answers a gzip-accepting client
/// with, for the record.
async fn fetch_encoding(client: &reqwest::Client, url: &str) -> String {
    match request(client, url)
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
    {
        Ok(response) => response
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .map_or_else(|| "uncompressed".to_owned(), str::to_owned),
        Err(error) => format!("failed: {error}"),
    }
}

/// How many agents the page shows up (`promrelay_gateway_agent_up{...} 1`).
fn count_up(page: &[u8]) -> usize {
    page.split(|&byte| byte == b'\n')
        .filter(|line| line.starts_with(b"promrelay_gateway_agent_up{") && line.ends_with(b" 1"))
        .count()
}
