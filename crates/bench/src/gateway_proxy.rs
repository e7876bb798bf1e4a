//! `gateway-proxy`: Prometheus-style scrapes of one static exporter page
//! (57 KB, served from memory so the exporter is never the bottleneck),
//! directly and in `proxy_url` mode through `promrelay gateway` and a real
//! `promrelay agent` in egress mode, at several concurrencies, in
//! interleaved rounds.
//!
//! Figures: throughput ratio, p50/p99 of both paths and what the gateway
//! path adds, and the CPU time the gateway and the agent processes spend
//! per scrape. Reference measured on this kind of machine: PushProx v0.2.0
//! spends about 2.6 ms of CPU (proxy + client) per scrape of such a page
//! and adds about 5 ms at p50. Goal: under a quarter of that CPU and under
//! 1 ms added at p50.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::{ACCEPT, ACCEPT_ENCODING, USER_AGENT};
use testkit::TempDir;
use tokio::task::JoinSet;

use crate::gateway::{GatewayProcess, AGENT_TOKEN, SCRAPE_TIMEOUT_HEADER};
use crate::process;
use crate::static_server::StaticServer;
use crate::stats::{ms, quantile};

/// The size of the exporter's page.
const PAGE_BYTES: usize = 57_000;

/// The agent's name at the gateway, and so the host of `proxy_url` targets.
const AGENT_NAME: &str = "bench-agent";

/// What Prometheus 2.42 sends on every scrape.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROMETHEUS_USER_AGENT: &str = "Prometheus/2.42.0";

/// The CPU-time reference per scrape (PushProx v0.2.0, proxy + client).
const REFERENCE_CPU: Duration = Duration::from_micros(2_600);
/// The added p50 reference (PushProx v0.2.0).
const REFERENCE_ADDED_P50: Duration = Duration::from_millis(5);

/// A `promrelay agent` in egress mode, killed when dropped.
#[derive(Debug)]
struct AgentProcess {
    child: Child,
    // Declared last so it is removed after the process is gone.
    dir: TempDir,
}

impl AgentProcess {
    /// Starts the agent, dialing `gateway` and allowed to scrape only
    /// `port` on 127.0.0.1. Nothing listens on its side.
    fn start(promrelay: &Path, gateway: &GatewayProcess, port: u16) -> AgentProcess {
        let dir = TempDir::new("bench-agent");
        let token_file = dir.join("agent-token");
        std::fs::write(&token_file, format!("{AGENT_TOKEN}\n")).expect("write the token file");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("agent log");
        let child = Command::new(promrelay)
            .arg("agent")
            .arg(format!("--gateway.url={}", gateway.url("")))
            .arg(format!("--agent.name={AGENT_NAME}"))
            .arg(format!("--agent.token-file={}", token_file.display()))
            .arg(format!("--scrape.allow-port={port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn promrelay agent");
        AgentProcess { child, dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which way a scrape goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Direct,
    ThroughGateway,
}

/// The scrapes of one path at one concurrency, over every round.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    wall: Duration,
    /// CPU time of the gateway and the agent processes during these
    /// scrapes (gateway path only).
    gateway_cpu: Duration,
    agent_cpu: Duration,
}

impl Tally {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

pub(crate) fn run(
    promrelay: &Path,
    rounds: usize,
    per_round: usize,
    concurrency: &[usize],
) -> Result<(), String> {
    let gateway = GatewayProcess::start(promrelay);
    crate::runtime().block_on(measure(
        promrelay,
        &gateway,
        rounds.max(1),
        per_round.max(1),
        concurrency,
    ))
}

async fn measure(
    promrelay: &Path,
    gateway: &GatewayProcess,
    rounds: usize,
    per_round: usize,
    concurrency: &[usize],
) -> Result<(), String> {
    let page = crate::pages::page_of_size(PAGE_BYTES);
    let exporter = StaticServer::start(page.clone()).await;
    let agent = AgentProcess::start(promrelay, gateway, exporter.port());
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    if let Err(error) = gateway
        .wait_for_agents(&plain, 1, Duration::from_secs(30))
        .await
    {
        return Err(format!("{error}\nagent's stderr:\n{}", agent.stderr()));
    }

    let max_concurrency = concurrency.iter().copied().max().unwrap_or(1);
    let direct = client(None, max_concurrency)?;
    let proxied = client(Some(&gateway.url("")), max_concurrency)?;
    let direct_url = exporter.metrics_url();
    let proxied_url = format!("http://{AGENT_NAME}:{}/metrics", exporter.port());
    let expected = page.len();

    // Fill both connection pools and the agent's own pool to the exporter.
    for (client, url) in [(&direct, &direct_url), (&proxied, &proxied_url)] {
        scrapes(client, url, max_concurrency, max_concurrency * 4, expected).await?;
    }

    let mut tallies: Vec<[Tally; 2]> = concurrency.iter().map(|_| Default::default()).collect();
    for _ in 0..rounds {
        for (index, &workers) in concurrency.iter().enumerate() {
            for route in [Route::Direct, Route::ThroughGateway] {
                let (client, url) = match route {
                    Route::Direct => (&direct, &direct_url),
                    Route::ThroughGateway => (&proxied, &proxied_url),
                };
                let gateway_before = process::cpu_time(gateway.pid())?;
                let agent_before = process::cpu_time(agent.pid())?;
                let started = Instant::now();
                let latencies = scrapes(client, url, workers, per_round, expected).await?;
                let wall = started.elapsed();
                let tally = &mut tallies[index][route as usize];
                tally.wall += wall;
                tally.latencies.extend(latencies);
                if route == Route::ThroughGateway {
                    tally.gateway_cpu += process::cpu_time(gateway.pid())? - gateway_before;
                    tally.agent_cpu += process::cpu_time(agent.pid())? - agent_before;
                }
            }
        }
    }

    println!(
        "gateway-proxy: a static {}-byte page, direct vs `proxy_url` through `promrelay gateway` \
         + `promrelay agent` (egress); {rounds} interleaved rounds x {per_round} scrapes per \
         path and concurrency, keep-alive, Prometheus headers",
        page.len()
    );
    println!();
    println!(
        "{:>4} {:<8} {:>10} {:>9} {:>9} {:>9}",
        "conc", "path", "scrapes/s", "p50 ms", "p90 ms", "p99 ms"
    );
    for (tally, &workers) in tallies.iter_mut().zip(concurrency) {
        for (path, tally) in ["direct", "gateway"].iter().zip(tally.iter_mut()) {
            tally.latencies.sort_unstable();
            println!(
                "{workers:>4} {path:<8} {:>10.0} {:>9.3} {:>9.3} {:>9.3}",
                tally.throughput(),
                ms(quantile(&tally.latencies, 0.5)),
                ms(quantile(&tally.latencies, 0.9)),
                ms(quantile(&tally.latencies, 0.99)),
            );
        }
    }
    println!();
    println!(
        "{:>4} {:>11} {:>13} {:>13} {:>16} {:>10} {:>9}",
        "conc", "throughput", "added p50 ms", "added p99 ms", "CPU ms/scrape", "gateway", "agent"
    );
    let mut cpu_met = true;
    let mut latency_met = true;
    for (tally, &workers) in tallies.iter().zip(concurrency) {
        let [direct, through] = tally;
        let scrapes = through.latencies.len() as u32;
        let gateway_cpu = through.gateway_cpu / scrapes;
        let agent_cpu = through.agent_cpu / scrapes;
        let added_p50 =
            ms(quantile(&through.latencies, 0.5)) - ms(quantile(&direct.latencies, 0.5));
        let added_p99 =
            ms(quantile(&through.latencies, 0.99)) - ms(quantile(&direct.latencies, 0.99));
        println!(
            "{workers:>4} {:>10.2}x {added_p50:>+13.3} {added_p99:>+13.3} {:>16.3} {:>10.3} {:>9.3}",
            through.throughput() / direct.throughput(),
            ms(gateway_cpu + agent_cpu),
            ms(gateway_cpu),
            ms(agent_cpu),
        );
        cpu_met &= (gateway_cpu + agent_cpu) * 4 < REFERENCE_CPU;
        if workers == 1 {
            latency_met &= added_p50 < 1.0;
        }
    }
    println!();
    println!(
        "reference (PushProx v0.2.0, measured on this kind of machine): {:.1} ms CPU per scrape \
         (proxy + client), +{:.0} ms at p50",
        ms(REFERENCE_CPU),
        ms(REFERENCE_ADDED_P50)
    );
    println!(
        "goal: CPU per scrape < {:.2} ms at every concurrency: {}; added p50 < 1 ms at \
         concurrency 1: {}",
        ms(REFERENCE_CPU / 4),
        if cpu_met { "met" } else { "NOT met" },
        if latency_met { "met" } else { "NOT met" },
    );
    Ok(())
}

/// A client sending Prometheus's scrape headers, through `proxy` when
/// given (absolute-form requests, as Prometheus's `proxy_url` does).
fn client(proxy: Option<&str>, pool: usize) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ACCEPT, PROMETHEUS_ACCEPT.parse().expect("header value"));
    headers.insert(ACCEPT_ENCODING, "gzip".parse().expect("header value"));
    headers.insert(
        USER_AGENT,
        PROMETHEUS_USER_AGENT.parse().expect("header value"),
    );
    headers.insert(SCRAPE_TIMEOUT_HEADER, "10".parse().expect("header value"));
    let builder = reqwest::Client::builder()
        .default_headers(headers)
        // The page is not compressed (the exporter ignores gzip); nothing
        // to decode.
        .no_gzip()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true);
    let builder = match proxy {
        Some(proxy) => {
            builder.proxy(reqwest::Proxy::http(proxy).map_err(|e| format!("proxy {proxy}: {e}"))?)
        }
        None => builder.no_proxy(),
    };
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// `count` scrapes of `url` by `workers` concurrent scrapers; the latency
/// of each. Every answer must be a 200 with the whole page.
async fn scrapes(
    client: &reqwest::Client,
    url: &str,
    workers: usize,
    count: usize,
    expected: usize,
) -> Result<Vec<Duration>, String> {
    let tickets = Arc::new(AtomicUsize::new(0));
    let mut scrapers = JoinSet::new();
    for _ in 0..workers.max(1) {
        let (client, url, tickets) = (client.clone(), url.to_owned(), Arc::clone(&tickets));
        scrapers.spawn(async move {
            let mut latencies = Vec::with_capacity(count / workers + 1);
            while tickets.fetch_add(1, Ordering::Relaxed) < count {
                let started = Instant::now();
                let length = scrape(&client, &url).await?;
                latencies.push(started.elapsed());
                if length != expected {
                    return Err(format!("{url}: {length} bytes, expected {expected}"));
                }
            }
            Ok::<_, String>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(joined) = scrapers.join_next().await {
        latencies.extend(joined.map_err(|e| format!("scraper: {e}"))??);
    }
    Ok(latencies)
}

/// One scrape, reading the whole body; its length.
async fn scrape(client: &reqwest::Client, url: &str) -> Result<usize, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "GET {url}: {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body.len())
}
