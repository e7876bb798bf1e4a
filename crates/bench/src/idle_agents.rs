//! `idle-agents`: the gateway's memory per idle connected agent.
//!
//! The gateway's RSS is read before any agent connects, then many simulated
//! agents connect (bounded parallel dials) and stay idle; once `/clients`
//! lists them all and the gateway has settled, the RSS growth divided by
//! the number of agents is the cost of one. Reference: a PushProx proxy
//! holds a waiting client in about 22 KiB (measured on this kind of
//! machine). Goal: under 16 KiB per agent.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::gateway::{GatewayProcess, AGENT_TOKEN};
use crate::process::{self, mib};
use crate::simulated::{self, page_router, Page};

/// Dials in flight while the agents connect.
const PARALLEL_DIALS: usize = 64;

/// The reference per waiting client (PushProx), in KiB.
const REFERENCE_KIB: f64 = 22.0;

/// The goal per agent, in KiB.
const GOAL_KIB: f64 = 16.0;

pub(crate) fn run(promrelay: &Path, agents: usize, settle: u64) -> Result<(), String> {
    process::raise_open_files_limit(agents)?;
    let gateway = GatewayProcess::start(promrelay);
    crate::runtime().block_on(measure(
        &gateway,
        agents.max(1),
        Duration::from_secs(settle),
    ))
}

async fn measure(gateway: &GatewayProcess, agents: usize, settle: Duration) -> Result<(), String> {
    let pid = gateway.pid();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    // One request first, so what the first request allocates is not
    // counted as the agents'.
    gateway.listed_agents(&client).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gateway_before = process::rss(pid)?;
    let bench_before = process::rss(std::process::id())?;

    // A small page: the agents are idle, it is served once at the end.
    let router = page_router(Page::text(crate::pages::agent_page(0, 10)));
    let started = Instant::now();
    let simulated = simulated::connect(
        &gateway.tunnel_url(),
        AGENT_TOKEN,
        (0..agents).map(|agent| (agent_name(agent), router.clone())),
        PARALLEL_DIALS,
    )
    .await?;
    gateway
        .wait_for_agents(&client, agents, Duration::from_secs(300))
        .await?;
    let connect_time = started.elapsed();
    tokio::time::sleep(settle).await;

    let gateway_after = process::rss(pid)?;
    let gateway_peak = process::peak_rss(pid)?;
    let bench_after = process::rss(std::process::id())?;
    let listed = gateway.listed_agents(&client).await?;
    // Idle tunnels must still carry a scrape.
    let probe = gateway.url(&format!("/agents/{}/metrics", agent_name(agents - 1)));
    let probe_status = client
        .get(&probe)
        .send()
        .await
        .map_or_else(|e| e.to_string(), |response| response.status().to_string());

    let per_agent =
        |before: u64, after: u64| after.saturating_sub(before) as f64 / agents as f64 / 1024.0;
    let gateway_kib = per_agent(gateway_before, gateway_after);
    println!(
        "idle-agents: {agents} simulated agents (tunnel::connect + tunnel::serve_over) \
         connected to one `promrelay gateway`, {PARALLEL_DIALS} dials in flight"
    );
    println!(
        "all connected and listed in {:.1} s; settled {} s; {listed} listed at the end, \
         {} tunnels up; a scrape through the last one: {probe_status}",
        connect_time.as_secs_f64(),
        settle.as_secs(),
        simulated.len()
    );
    println!();
    println!(
        "{:<34} {:>11} {:>11} {:>11} {:>12}",
        "process", "before MiB", "after MiB", "peak MiB", "per agent"
    );
    println!(
        "{:<34} {:>11.1} {:>11.1} {:>11.1} {:>8.2} KiB",
        "gateway",
        mib(gateway_before),
        mib(gateway_after),
        mib(gateway_peak),
        gateway_kib
    );
    println!(
        "{:<34} {:>11.1} {:>11.1} {:>11} {:>8.2} KiB",
        "simulated agents (this process)",
        mib(bench_before),
        mib(bench_after),
        "",
        per_agent(bench_before, bench_after)
    );
    println!();
    println!(
        "gateway per agent: {gateway_kib:.2} KiB; reference (PushProx, per waiting client): \
         {REFERENCE_KIB:.0} KiB; goal < {GOAL_KIB:.0} KiB: {}",
        if gateway_kib < GOAL_KIB {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

fn agent_name(agent: usize) -> String {
    format!("idle-{agent:05}")
}
