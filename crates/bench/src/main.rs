//! `promrelay-bench`: whole-process benchmarks that print figures with a
//! baseline measured in the same run.
//!
//! - `agent-proxy` ([`agent_proxy`]): one exporter's page fetched directly
//!   from node_exporter, through exporter_exporter (the baseline proxy), and
//!   through `promrelay agent`.
//! - `fanin` ([`fanin`]): `/metrics/connected` of a gateway holding many
//!   simulated agents, against a plain server of ours sending the same
//!   bytes from memory; the gateway's peak RSS against the page size.
//! - `gateway-proxy` ([`gateway_proxy`]): `proxy_url` scrapes through the
//!   gateway and a real `promrelay agent` against direct scrapes of the same
//!   static exporter: throughput, added latency, CPU per scrape.
//! - `idle-agents` ([`idle_agents`]): the gateway's memory per idle
//!   connected agent.
//! - `push` ([`push`]): the gateway's durable push store against
//!   Pushgateway 1.5.1: pushes per second from concurrent clients, the cost
//!   of one push into an empty and a full store, `GET /metrics` of a
//!   million stored series, memory per stored series.
//!
//! The gateway and the agent run as the real `promrelay` binary, each in its
//! own process (as Pushgateway does in `push`), so their RSS and CPU time can
//! be read from `/proc` ([`process`]). Simulated agents ([`simulated`]) live
//! in this process: each dials the gateway with `tunnel::connect` and serves
//! a page from memory with `tunnel::serve_over`, exactly as `promrelay agent`
//! does in egress mode, without a process per agent.

mod agent_proxy;
mod fanin;
mod gateway;
mod gateway_proxy;
mod idle_agents;
mod pages;
mod process;
mod push;
mod simulated;
mod static_server;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about)]
struct Cli {
    #[command(subcommand)]
    job: Job,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Latency of one page: direct, through exporter_exporter, through the agent.
    AgentProxy {
        /// The promrelay binary to measure (build it with --release).
        #[arg(long, default_value = DEFAULT_PROMRELAY)]
        promrelay: PathBuf,
        /// Interleaved rounds.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Requests per target per round.
        #[arg(long, default_value_t = 25)]
        per_round: usize,
    },
    /// Fan-in: the whole `/metrics/connected` page of many simulated agents,
    /// against a plain server sending the same bytes; the gateway's peak RSS.
    Fanin {
        /// The promrelay binary to measure (build it with --release).
        #[arg(long, default_value = DEFAULT_PROMRELAY)]
        promrelay: PathBuf,
        /// Simulated agents connected to the gateway.
        #[arg(long, default_value_t = 1_000)]
        agents: usize,
        /// Series on each agent's page.
        #[arg(long, default_value_t = 1_000)]
        series: usize,
        /// Timed fetches of each target, alternating.
        #[arg(long, default_value_t = 5)]
        fetches: usize,
    },
    /// Per-target `proxy_url` scrapes through the gateway and a real agent,
    /// against direct scrapes of the same static 57 KB page.
    GatewayProxy {
        /// The promrelay binary to measure (build it with --release).
        #[arg(long, default_value = DEFAULT_PROMRELAY)]
        promrelay: PathBuf,
        /// Interleaved rounds (each: every concurrency, direct then gateway).
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Scrapes per path, concurrency and round.
        #[arg(long, default_value_t = 1_000)]
        per_round: usize,
        /// Concurrent scrapers (repeatable).
        #[arg(long = "concurrency", default_values_t = [1, 8, 32])]
        concurrency: Vec<usize>,
    },
    /// The gateway's memory per idle connected agent.
    IdleAgents {
        /// The promrelay binary to measure (build it with --release).
        #[arg(long, default_value = DEFAULT_PROMRELAY)]
        promrelay: PathBuf,
        /// Simulated agents connected to the gateway.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Seconds to let the gateway settle once every agent is listed.
        #[arg(long, default_value_t = 5)]
        settle: u64,
    },
    /// The push store against Pushgateway 1.5.1: pushes/s, the cost of one
    /// push into an empty and a full store, GET /metrics and memory of the
    /// full store.
    Push {
        /// The promrelay binary to measure (build it with --release).
        #[arg(long, default_value = DEFAULT_PROMRELAY)]
        promrelay: PathBuf,
        /// Concurrent pushing clients.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Series in each pushed group.
        #[arg(long, default_value_t = 1_000)]
        series: usize,
        /// Groups in the full store.
        #[arg(long, default_value_t = 1_000)]
        groups: usize,
        /// Seconds of warm-up before each throughput run.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Seconds each throughput run is measured.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Timed pushes into each of our stores and into the empty Pushgateway.
        #[arg(long, default_value_t = 25)]
        pushes: usize,
        /// Timed pushes into the full Pushgateway (seconds each).
        #[arg(long, default_value_t = 5)]
        baseline_pushes: usize,
        /// Timed GET /metrics of each full store.
        #[arg(long, default_value_t = 5)]
        fetches: usize,
    },
}

/// Where `cargo build --release -p promrelay` puts the binary, relative to
/// the repository root.
const DEFAULT_PROMRELAY: &str = "target/release/promrelay";

fn main() -> ExitCode {
    let job = Cli::parse().job;
    let promrelay = match &job {
        Job::AgentProxy { promrelay, .. }
        | Job::Fanin { promrelay, .. }
        | Job::GatewayProxy { promrelay, .. }
        | Job::IdleAgents { promrelay, .. }
        | Job::Push { promrelay, .. } => promrelay.clone(),
    };
    if let Err(code) = check_binary(&promrelay) {
        return code;
    }
    let result = match job {
        Job::AgentProxy {
            rounds, per_round, ..
        } => {
            agent_proxy::run(&promrelay, rounds, per_round);
            Ok(())
        }
        Job::Fanin {
            agents,
            series,
            fetches,
            ..
        } => fanin::run(&promrelay, agents, series, fetches),
        Job::GatewayProxy {
            rounds,
            per_round,
            concurrency,
            ..
        } => gateway_proxy::run(&promrelay, rounds, per_round, &concurrency),
        Job::IdleAgents { agents, settle, .. } => idle_agents::run(&promrelay, agents, settle),
        Job::Push {
            clients,
            series,
            groups,
            warmup,
            duration,
            pushes,
            baseline_pushes,
            fetches,
            ..
        } => push::run(
            &promrelay,
            &push::Settings {
                clients,
                series,
                groups,
                warmup: Duration::from_secs(warmup),
                duration: Duration::from_secs(duration),
                pushes,
                baseline_pushes,
                fetches,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check_binary(promrelay: &Path) -> Result<(), ExitCode> {
    if promrelay.exists() {
        return Ok(());
    }
    eprintln!(
        "{} not found: run `cargo build --release -p promrelay` first",
        promrelay.display()
    );
    Err(ExitCode::from(2))
}

/// The runtime of the benchmarks that drive many connections: one worker
/// per core, as the gateway has.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
