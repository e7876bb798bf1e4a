//! `push`: the push store of `promrelay gateway` against Pushgateway 1.5.1,
//! both measured in the same run, both as real processes on loopback.
//!
//! Every push is a `PUT` of one group of text 0.0.4: a page of the shape
//! [`crate::pages`] makes (1,000 series by default, ten families with a
//! histogram among them, about 93 KB), to `/metrics/job/bench/instance/<n>`.
//! Ours is `promrelay gateway --storage.path`, which answers a push only
//! once its log record is fdatasynced. Pushgateway runs with
//! `--persistence.file`, its only durability: the file is written at most
//! every `--persistence.interval` (5m) and at shutdown, nothing is synced
//! per push.
//!
//! 1. Throughput: a few clients (16) each `PUT` their own group over and
//!    over, back to back, for a warm-up and then a measured time; pushes
//!    completed in the measured time, per second. Goal: ours at least 20×
//!    Pushgateway's.
//! 2. The cost of one push, the client's wall time for a `PUT` of a group
//!    not yet present (`instance=probe-<i>`, deleted again untimed after
//!    each, so every timed push meets the same store): into an empty store
//!    and into one holding 1,000 groups × 1,000 series, filled beforehand
//!    by concurrent pushes. Ours alternates between two gateways, one
//!    empty and one full, so both see the same machine. Goal: full within
//!    2× of empty. Pushgateway (consistency check on, as it runs by
//!    default) gets a few pushes into each, for reference: each of its
//!    pushes gathers and checks the whole store.
//! 3. `GET /metrics` of the full store, whole body read: median of a few
//!    fetches, goal under a tenth of Pushgateway's. Measured plain and with
//!    `Accept-Encoding: gzip`, which Prometheus sends and Pushgateway
//!    honours (ours answers uncompressed either way). And resident memory
//!    per stored series, (RSS after the fill − RSS of the same fresh
//!    process) / series, goal under a quarter of Pushgateway's.
//!
//! Pushgateway checks every push against the whole store, so filling it
//! through its API would take hours. It is filled with
//! `--push.disable-consistency-check` (its memory is measured then), stopped
//! with SIGTERM, which writes its persistence file, and started again
//! without the flag from that file; the series its page then holds are
//! counted, and its pushes and `GET /metrics` are measured on that process.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use testkit::{find_program, free_port, Daemon, TempDir};

use crate::gateway::GatewayProcess;
use crate::process::{self, mib};
use crate::stats::{ms, quantile};

/// What a Prometheus client library sends with a text push.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The job of every group pushed; series are counted by it on the pages.
const JOB: &str = "bench";

/// The reference figures for Pushgateway 1.5.1 on this kind of machine.
const REFERENCE: &str = "Pushgateway 1.5.1 on this kind of machine: 16-18 pushes/s of \
                         1,000-series groups from 16 clients; 6-9 s per push with 1,000,000 \
                         series stored; GET /metrics of those 10-13 s; about 700 bytes per \
                         stored series";

/// Goals: throughput ratio at least, push cost ratio at most, `GET`
/// time ratio at most, memory ratio at most.
const GOAL_THROUGHPUT: f64 = 20.0;
const GOAL_PUSH_COST: f64 = 2.0;
const GOAL_GET: f64 = 0.1;
const GOAL_MEMORY: f64 = 0.25;

/// How long Pushgateway may take to write its persistence file and exit
/// after SIGTERM.
const PERSISTENCE_TIMEOUT: Duration = Duration::from_secs(300);

/// The sizes and durations of one run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Concurrent pushing clients (throughput and fills).
    pub(crate) clients: usize,
    /// Series per pushed group.
    pub(crate) series: usize,
    /// Groups in the full store.
    pub(crate) groups: usize,
    /// Warm-up of the throughput runs.
    pub(crate) warmup: Duration,
    /// Measured time of the throughput runs.
    pub(crate) duration: Duration,
    /// Timed pushes into each of our stores, and into the empty Pushgateway.
    pub(crate) pushes: usize,
    /// Timed pushes into the full Pushgateway (seconds each).
    pub(crate) baseline_pushes: usize,
    /// Timed `GET /metrics` of each full store.
    pub(crate) fetches: usize,
}

/// The push API of a server under test.
#[derive(Debug, Clone)]
struct Target {
    /// `http://<addr>`.
    base: String,
    pid: u32,
}

impl Target {
    fn of_gateway(gateway: &GatewayProcess) -> Target {
        Target {
            base: gateway.url(""),
            pid: gateway.pid(),
        }
    }

    fn of_pushgateway(daemon: &Daemon) -> Target {
        Target {
            base: daemon.url(""),
            pid: daemon.pid(),
        }
    }

    fn group_url(&self, instance: &str) -> String {
        format!("{}/metrics/job/{JOB}/instance/{instance}", self.base)
    }
}

/// The throughput run of one target.
#[derive(Debug)]
struct Throughput {
    warmup: Duration,
    duration: Duration,
    pushes: usize,
    per_second: f64,
    latencies: Vec<Duration>,
    cpu_per_push: Duration,
}

/// The full store of one target.
#[derive(Debug)]
struct Filled {
    fill_time: Duration,
    rss_before: u64,
    rss_after: u64,
    series: usize,
}

impl Filled {
    fn per_series(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.series.max(1) as f64
    }
}

/// Timed `GET /metrics` fetches: sorted times, bytes on the wire, series
/// of the pushed groups, and whether the answer was gzipped.
#[derive(Debug)]
struct Fetches {
    times: Vec<Duration>,
    bytes: usize,
    series: usize,
    gzipped: bool,
}

/// What our store's own metrics say about its log.
#[derive(Debug)]
struct LogCounters {
    pushes: f64,
    syncs: f64,
    sync_seconds: f64,
    compactions: f64,
}

/// Everything one run measures, printed by [`report`].
#[derive(Debug)]
struct Figures {
    clients: usize,
    groups: usize,
    series: usize,
    body_bytes: usize,
    ours_throughput: Throughput,
    /// Our log's counters after the throughput run.
    ours_log: LogCounters,
    pushgateway_throughput: Throughput,
    ours_filled: Filled,
    /// What our gateway reports holding once filled.
    ours_series: usize,
    /// Sorted push times into our empty and our full store.
    ours_empty: Vec<Duration>,
    ours_full: Vec<Duration>,
    ours_fetches: Fetches,
    ours_gzip_fetches: Fetches,
    pushgateway_empty: Vec<Duration>,
    pushgateway_filled: Filled,
    /// SIGTERM until Pushgateway exited, having written its file.
    written: Duration,
    file_bytes: u64,
    restart_time: Duration,
    restarted_rss: u64,
    pushgateway_full: Vec<Duration>,
    pushgateway_fetches: Fetches,
    pushgateway_gzip_fetches: Fetches,
}

pub(crate) fn run(promrelay: &Path, settings: &Settings) -> Result<(), String> {
    let pushgateway = find_program("prometheus-pushgateway");
    let clients = settings.clients.max(1);
    let groups = settings.groups.max(clients);
    let bodies: Vec<Bytes> = (0..groups)
        .map(|group| crate::pages::agent_page(group, settings.series))
        .collect();
    // A pod no stored group has, so the probe's series are new too.
    let probe = crate::pages::agent_page(groups, settings.series);
    let runtime = crate::runtime();
    let client = reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let series_total = groups * settings.series;

    // (1) Throughput, then pushes into the emptied stores.
    let small = GatewayProcess::start(promrelay);
    let small_target = Target::of_gateway(&small);
    let ours_throughput = runtime.block_on(throughput(
        &client,
        &small_target,
        &bodies[..clients],
        settings,
    ))?;
    let ours_log = runtime.block_on(log_counters(&client, &small))?;
    runtime.block_on(delete_groups(&client, &small_target, clients))?;

    let state = TempDir::new("bench-pushgateway-state");
    let pushgateway_small = start_pushgateway(&pushgateway, &state.join("small.data"), false);
    let pushgateway_small_target = Target::of_pushgateway(&pushgateway_small);
    let pushgateway_throughput = runtime.block_on(throughput(
        &client,
        &pushgateway_small_target,
        &bodies[..clients],
        settings,
    ))?;
    let mut pushgateway_empty = runtime.block_on(async {
        delete_groups(&client, &pushgateway_small_target, clients).await?;
        probe_pushes(
            &client,
            &[&pushgateway_small_target],
            &probe,
            settings.pushes,
        )
        .await
    })?;
    drop(pushgateway_small);

    // (2) and (3), ours: a second gateway filled, pushes alternating
    // between the empty one and the full one.
    let full = GatewayProcess::start(promrelay);
    let full_target = Target::of_gateway(&full);
    let ours_filled =
        runtime.block_on(fill(&client, &full_target, &bodies, clients, series_total))?;
    let ours_series = runtime
        .block_on(full.own_series(&client, "promrelay_push_series"))
        .map_or(0, |series| series as usize);
    let mut ours_pushes = runtime.block_on(probe_pushes(
        &client,
        &[&small_target, &full_target],
        &probe,
        settings.pushes,
    ))?;
    let ours_fetches = runtime.block_on(fetches(&client, &full_target, settings.fetches, false))?;
    let ours_gzip_fetches =
        runtime.block_on(fetches(&client, &full_target, settings.fetches, true))?;
    drop(full);
    drop(small);

    // (2) and (3), Pushgateway: filled without its check, restarted with it.
    let data = state.join("full.data");
    let filling = start_pushgateway(&pushgateway, &data, true);
    let pushgateway_filled = runtime.block_on(fill(
        &client,
        &Target::of_pushgateway(&filling),
        &bodies,
        clients,
        series_total,
    ))?;
    let written = stop_gracefully(filling)?;
    let file_bytes = std::fs::metadata(&data).map_or(0, |m| m.len());
    let started = Instant::now();
    let restarted = start_pushgateway(&pushgateway, &data, false);
    let restart_time = started.elapsed();
    let restarted_target = Target::of_pushgateway(&restarted);
    let restarted_rss = process::rss(restarted.pid())?;
    let pushgateway_fetches =
        runtime.block_on(fetches(&client, &restarted_target, settings.fetches, false))?;
    let pushgateway_gzip_fetches =
        runtime.block_on(fetches(&client, &restarted_target, settings.fetches, true))?;
    let mut pushgateway_full = runtime.block_on(probe_pushes(
        &client,
        &[&restarted_target],
        &probe,
        settings.baseline_pushes,
    ))?;
    drop(restarted);

    report(&Figures {
        clients,
        groups,
        series: settings.series,
        body_bytes: probe.len(),
        ours_throughput,
        ours_log,
        pushgateway_throughput,
        ours_filled,
        ours_series,
        ours_full: ours_pushes.pop().unwrap_or_default(),
        ours_empty: ours_pushes.pop().unwrap_or_default(),
        ours_fetches,
        ours_gzip_fetches,
        pushgateway_empty: pushgateway_empty.pop().unwrap_or_default(),
        pushgateway_filled,
        written,
        file_bytes,
        restart_time,
        restarted_rss,
        pushgateway_full: pushgateway_full.pop().unwrap_or_default(),
        pushgateway_fetches,
        pushgateway_gzip_fetches,
    });
    Ok(())
}

fn report(figures: &Figures) {
    let Figures {
        clients, series, ..
    } = *figures;
    let series_total = figures.groups * series;
    println!(
        "push: `promrelay gateway --storage.path` (a push is answered once fdatasynced) against \
         Pushgateway 1.5.1 (`--persistence.file`: written every 5m and at shutdown, nothing \
         synced per push), both on loopback"
    );
    println!(
        "each push: PUT of {series} series, {:.1} KB of text 0.0.4, to \
         /metrics/job/{JOB}/instance/<n>",
        figures.body_bytes as f64 / 1e3
    );
    println!("reference: {REFERENCE}");

    println!();
    println!(
        "(1) throughput: {clients} clients, each PUTs its own group back to back; {:.0} s \
         warm-up, {:.0} s measured",
        figures.ours_throughput.warmup.as_secs_f64(),
        figures.ours_throughput.duration.as_secs_f64()
    );
    println!(
        "{:<20} {:>8} {:>10} {:>9} {:>9} {:>9} {:>16}",
        "target", "pushes", "pushes/s", "p50 ms", "p90 ms", "p99 ms", "server CPU/push"
    );
    print_throughput("promrelay gateway", &figures.ours_throughput);
    print_throughput("Pushgateway 1.5.1", &figures.pushgateway_throughput);
    let throughput_ratio =
        figures.ours_throughput.per_second / figures.pushgateway_throughput.per_second;
    let log = &figures.ours_log;
    println!(
        "promrelay gateway over the throughput run, warm-up included: {:.0} pushes answered, {:.0} \
         fdatasyncs ({:.1} pushes each, {:.2} ms mean), {:.0} log compactions",
        log.pushes,
        log.syncs,
        log.pushes / log.syncs.max(1.0),
        log.sync_seconds * 1e3 / log.syncs.max(1.0),
        log.compactions
    );

    println!();
    println!(
        "full stores: {} groups x {series} series = {series_total} series, pushed by {clients} \
         clients",
        figures.groups
    );
    println!(
        "  promrelay gateway: filled in {:.1} s; it reports {} series",
        figures.ours_filled.fill_time.as_secs_f64(),
        figures.ours_series
    );
    println!(
        "  Pushgateway: filled with --push.disable-consistency-check in {:.1} s; SIGTERM wrote \
         its persistence file ({:.1} MB) and it exited in {:.1} s; restarted without the flag \
         from that file, ready in {:.1} s, RSS {:.1} MiB; its page holds {} series",
        figures.pushgateway_filled.fill_time.as_secs_f64(),
        figures.file_bytes as f64 / 1e6,
        figures.written.as_secs_f64(),
        figures.restart_time.as_secs_f64(),
        mib(figures.restarted_rss),
        figures.pushgateway_fetches.series
    );

    println!();
    println!(
        "(2) one push of a new {series}-series group (deleted again untimed); ours alternate \
         between an empty and a full gateway"
    );
    println!(
        "{:<44} {:>7} {:>10} {:>9} {:>9}",
        "target", "pushes", "median ms", "p90 ms", "best ms"
    );
    let ours_empty = print_pushes("promrelay gateway, empty store", &figures.ours_empty);
    let ours_full = print_pushes(
        &format!("promrelay gateway, {series_total} series stored"),
        &figures.ours_full,
    );
    let pushgateway_empty = print_pushes("Pushgateway, empty store", &figures.pushgateway_empty);
    let pushgateway_full = print_pushes(
        &format!(
            "Pushgateway, {} series stored",
            figures.pushgateway_fetches.series
        ),
        &figures.pushgateway_full,
    );
    let push_ratio = ours_full.as_secs_f64() / ours_empty.as_secs_f64();

    println!();
    println!(
        "(3) GET /metrics of the full store, whole body, {} fetches each, without and with \
         Accept-Encoding: gzip (as Prometheus asks)",
        figures.ours_fetches.times.len()
    );
    println!(
        "{:<32} {:>10} {:>9} {:>9} {:>12} {:>10}",
        "target", "median ms", "best ms", "worst ms", "MB on wire", "series"
    );
    let ours_get = print_fetches("promrelay gateway", &figures.ours_fetches);
    let pushgateway_get = print_fetches("Pushgateway 1.5.1", &figures.pushgateway_fetches);
    let ours_gzip = print_fetches("promrelay gateway, gzip asked", &figures.ours_gzip_fetches);
    let pushgateway_gzip = print_fetches(
        "Pushgateway 1.5.1, gzip asked",
        &figures.pushgateway_gzip_fetches,
    );
    let get_ratio = ours_get.as_secs_f64() / pushgateway_get.as_secs_f64();
    let gzip_ratio = ours_gzip.as_secs_f64() / pushgateway_gzip.as_secs_f64();
    println!();
    println!(
        "{:<20} {:>12} {:>12} {:>10} {:>14}",
        "memory", "RSS empty", "RSS full", "series", "bytes/series"
    );
    print_memory("promrelay gateway", &figures.ours_filled);
    print_memory("Pushgateway 1.5.1", &figures.pushgateway_filled);
    let memory_ratio = figures.ours_filled.per_series() / figures.pushgateway_filled.per_series();

    println!();
    summary_row(
        "figure",
        "promrelay",
        "Pushgateway",
        "ratio",
        "goal",
        "verdict",
    );
    summary_row(
        &format!("pushes/s, {clients} clients"),
        &format!("{:.1}", figures.ours_throughput.per_second),
        &format!("{:.1}", figures.pushgateway_throughput.per_second),
        &format!("{throughput_ratio:.1}x"),
        &format!(">= {GOAL_THROUGHPUT:.0}x"),
        verdict(throughput_ratio >= GOAL_THROUGHPUT),
    );
    for (figure, ours, theirs) in [
        (
            "push ms, empty store (median)",
            ours_empty,
            pushgateway_empty,
        ),
        ("push ms, full store (median)", ours_full, pushgateway_full),
    ] {
        summary_row(
            figure,
            &format!("{:.2}", ms(ours)),
            &format!("{:.2}", ms(theirs)),
            &format!("{:.4}x", ours.as_secs_f64() / theirs.as_secs_f64()),
            "",
            "",
        );
    }
    summary_row(
        "push, full store / empty store",
        &format!("{push_ratio:.2}x"),
        &format!(
            "{:.1}x",
            pushgateway_full.as_secs_f64() / pushgateway_empty.as_secs_f64()
        ),
        "",
        &format!("<= {GOAL_PUSH_COST:.0}x"),
        verdict(push_ratio <= GOAL_PUSH_COST),
    );
    summary_row(
        "GET /metrics ms, full store",
        &format!("{:.1}", ms(ours_get)),
        &format!("{:.1}", ms(pushgateway_get)),
        &format!("{get_ratio:.4}x"),
        &format!("<= {GOAL_GET}x"),
        verdict(get_ratio <= GOAL_GET),
    );
    summary_row(
        "GET /metrics ms, gzip asked",
        &format!("{:.1}", ms(ours_gzip)),
        &format!("{:.1}", ms(pushgateway_gzip)),
        &format!("{gzip_ratio:.4}x"),
        &format!("<= {GOAL_GET}x"),
        verdict(gzip_ratio <= GOAL_GET),
    );
    summary_row(
        "RSS bytes per stored series",
        &format!("{:.1}", figures.ours_filled.per_series()),
        &format!("{:.1}", figures.pushgateway_filled.per_series()),
        &format!("{memory_ratio:.3}x"),
        &format!("<= {GOAL_MEMORY}x"),
        verdict(memory_ratio <= GOAL_MEMORY),
    );
}

fn summary_row(figure: &str, ours: &str, theirs: &str, ratio: &str, goal: &str, verdict: &str) {
    println!("{figure:<34} {ours:>12} {theirs:>12} {ratio:>10} {goal:>8}  {verdict}");
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Starts Pushgateway on a free port with `data` as its persistence file
/// (read at start when it exists).
fn start_pushgateway(program: &Path, data: &Path, no_check: bool) -> Daemon {
    let addr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let mut command = Command::new(program);
    command
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--persistence.file={}", data.display()))
        .arg("--log.level=warn");
    if no_check {
        command.arg("--push.disable-consistency-check");
    }
    Daemon::start(command, addr, "/-/ready", TempDir::new("bench-pushgateway"))
}

/// Sends SIGTERM, on which Pushgateway writes its persistence file and
/// exits; returns how long that took.
fn stop_gracefully(daemon: Daemon) -> Result<Duration, String> {
    let pid = daemon.pid();
    let started = Instant::now();
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    kill(Pid::from_raw(raw), Signal::SIGTERM).map_err(|e| format!("SIGTERM to {pid}: {e}"))?;
    // It stays a zombie until the guard reaps it: wait for that state.
    while !has_exited(pid) {
        if started.elapsed() > PERSISTENCE_TIMEOUT {
            return Err(format!(
                "Pushgateway did not exit within {PERSISTENCE_TIMEOUT:?} of SIGTERM"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    drop(daemon);
    Ok(elapsed)
}

/// Whether the process `pid` (a child of ours, not yet reaped) has exited.
fn has_exited(pid: u32) -> bool {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    match std::fs::read_to_string(path) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// `PUT`s `body` to `url`; the time until the whole answer is read.
async fn put(client: &reqwest::Client, url: &str, body: Bytes) -> Result<Duration, String> {
    let started = Instant::now();
    let response = client
        .put(url)
        .header(CONTENT_TYPE, TEXT_CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("PUT {url}: {e}"))?;
    let status = response.status();
    let answer = response
        .text()
        .await
        .map_err(|e| format!("PUT {url}: {e}"))?;
    let time = started.elapsed();
    if !status.is_success() {
        return Err(format!("PUT {url}: {status}: {}", answer.trim()));
    }
    Ok(time)
}

async fn delete(client: &reqwest::Client, url: &str) -> Result<(), String> {
    client
        .delete(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("DELETE {url}: {e}"))?;
    Ok(())
}

fn client_instance(client: usize) -> String {
    format!("client-{client:02}")
}

fn group_instance(group: usize) -> String {
    format!("group-{group:05}")
}

/// Each client `PUT`s its own group back to back for the warm-up and the
/// measured time; pushes that end inside the measured time count.
async fn throughput(
    client: &reqwest::Client,
    target: &Target,
    bodies: &[Bytes],
    settings: &Settings,
) -> Result<Throughput, String> {
    let started = Instant::now();
    let measure_from = started + settings.warmup;
    let end = measure_from + settings.duration;
    let mut tasks = Vec::with_capacity(bodies.len());
    for (index, body) in bodies.iter().enumerate() {
        let (client, body) = (client.clone(), body.clone());
        let url = target.group_url(&client_instance(index));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < end {
                let time = put(&client, &url, body.clone()).await?;
                let now = Instant::now();
                if now >= measure_from && now <= end {
                    latencies.push(time);
                }
            }
            Ok::<_, String>(latencies)
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_start = process::cpu_time(target.pid)?;
    tokio::time::sleep_until(end.into()).await;
    let cpu = process::cpu_time(target.pid)?.saturating_sub(cpu_start);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| format!("client task: {e}"))??);
    }
    latencies.sort_unstable();
    let pushes = latencies.len();
    Ok(Throughput {
        warmup: settings.warmup,
        duration: settings.duration,
        pushes,
        per_second: pushes as f64 / settings.duration.as_secs_f64(),
        latencies,
        cpu_per_push: cpu / u32::try_from(pushes.max(1)).unwrap_or(u32::MAX),
    })
}

async fn log_counters(
    client: &reqwest::Client,
    gateway: &GatewayProcess,
) -> Result<LogCounters, String> {
    let mut values = Vec::new();
    for series in [
        "promrelay_push_requests_total{method=\"put\",result=\"ok\"}",
        "promrelay_push_group_commits_total",
        "promrelay_push_fsync_duration_seconds_sum",
        "promrelay_push_compactions_total",
    ] {
        let value = gateway
            .own_series(client, series)
            .await
            .ok_or_else(|| format!("the gateway's /metrics has no {series}"))?;
        values.push(value);
    }
    Ok(LogCounters {
        pushes: values[0],
        syncs: values[1],
        sync_seconds: values[2],
        compactions: values[3],
    })
}

async fn delete_groups(
    client: &reqwest::Client,
    target: &Target,
    clients: usize,
) -> Result<(), String> {
    for index in 0..clients {
        delete(client, &target.group_url(&client_instance(index))).await?;
    }
    Ok(())
}

/// Pushes every body once, to its own group, from `clients` concurrent
/// clients; reads the RSS before (fresh process) and after. `series` is
/// what the bodies hold in all.
async fn fill(
    client: &reqwest::Client,
    target: &Target,
    bodies: &[Bytes],
    clients: usize,
    series: usize,
) -> Result<Filled, String> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = process::rss(target.pid)?;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let bodies: Arc<[Bytes]> = bodies.into();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, next, bodies, target) = (
            client.clone(),
            Arc::clone(&next),
            Arc::clone(&bodies),
            target.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let group = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(group) else {
                    return Ok::<_, String>(());
                };
                put(
                    &client,
                    &target.group_url(&group_instance(group)),
                    body.clone(),
                )
                .await?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| format!("client task: {e}"))??;
    }
    let fill_time = started.elapsed();
    // Let the server settle (Go's collector, freed buffers) before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(Filled {
        fill_time,
        rss_before,
        rss_after: process::rss(target.pid)?,
        series,
    })
}

/// `rounds` timed pushes of `probe` to a new group of each target in turn,
/// each group deleted again untimed; the sorted times per target.
async fn probe_pushes(
    client: &reqwest::Client,
    targets: &[&Target],
    probe: &Bytes,
    rounds: usize,
) -> Result<Vec<Vec<Duration>>, String> {
    let mut times = vec![Vec::with_capacity(rounds); targets.len()];
    for round in 0..rounds.max(1) {
        for (target, times) in targets.iter().zip(&mut times) {
            let url = target.group_url(&format!("probe-{round:03}"));
            times.push(put(client, &url, probe.clone()).await?);
            delete(client, &url).await?;
        }
    }
    for times in &mut times {
        times.sort_unstable();
    }
    Ok(times)
}

/// Timed `GET /metrics`, whole body, with `Accept-Encoding: gzip` when
/// `gzip` (as Prometheus scrapes); the series of the pushed groups are
/// counted after the clock stops.
async fn fetches(
    client: &reqwest::Client,
    target: &Target,
    count: usize,
    gzip: bool,
) -> Result<Fetches, String> {
    let url = format!("{}/metrics", target.base);
    let mut times = Vec::with_capacity(count);
    let (mut bytes, mut series, mut gzipped) = (0, 0, false);
    for _ in 0..count.max(1) {
        let started = Instant::now();
        let mut request = client.get(&url);
        if gzip {
            request = request.header(ACCEPT_ENCODING, "gzip");
        }
        let mut response = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {url}: {e}"))?;
        gzipped = response
            .headers()
            .get(CONTENT_ENCODING)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"gzip"));
        // Chunks are kept by reference, so the clock runs on the server's
        // and the transport's time only.
        let mut chunks = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            chunks.push(chunk);
        }
        times.push(started.elapsed());
        let body: Vec<u8> = chunks.concat();
        bytes = body.len();
        series = if gzipped {
            let mut page = Vec::new();
            flate2::read::MultiGzDecoder::new(body.as_slice())
                .read_to_end(&mut page)
                .map_err(|e| format!("GET {url}: invalid gzip: {e}"))?;
            count_pushed_series(&page)
        } else {
            count_pushed_series(&body)
        };
    }
    times.sort_unstable();
    Ok(Fetches {
        times,
        bytes,
        series,
        gzipped,
    })
}

/// Sample lines of the pushed groups, without `push_time_seconds` and
/// `push_failure_time_seconds`.
fn count_pushed_series(page: &[u8]) -> usize {
    let job = format!("job=\"{JOB}\"");
    page.split(|&byte| byte == b'\n')
        .filter(|line| !line.starts_with(b"#") && !line.starts_with(b"push_"))
        .filter(|line| {
            line.windows(job.len())
                .any(|window| window == job.as_bytes())
        })
        .count()
}

fn print_throughput(name: &str, run: &Throughput) {
    println!(
        "{name:<20} {:>8} {:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>13.2} ms",
        run.pushes,
        run.per_second,
        ms(quantile(&run.latencies, 0.5)),
        ms(quantile(&run.latencies, 0.9)),
        ms(quantile(&run.latencies, 0.99)),
        ms(run.cpu_per_push)
    );
}

/// Prints one row of sorted push times; returns the median.
fn print_pushes(name: &str, times: &[Duration]) -> Duration {
    let median = quantile(times, 0.5);
    println!(
        "{name:<44} {:>7} {:>10.2} {:>9.2} {:>9.2}",
        times.len(),
        ms(median),
        ms(quantile(times, 0.9)),
        ms(quantile(times, 0.0))
    );
    median
}

/// Prints one row of fetches; returns the median time.
fn print_fetches(name: &str, fetches: &Fetches) -> Duration {
    let median = quantile(&fetches.times, 0.5);
    println!(
        "{name:<32} {:>10.1} {:>9.1} {:>9.1} {:>7.1}{} {:>10}",
        ms(median),
        ms(quantile(&fetches.times, 0.0)),
        ms(quantile(&fetches.times, 1.0)),
        fetches.bytes as f64 / 1e6,
        if fetches.gzipped { " gzip" } else { "     " },
        fetches.series
    );
    median
}

fn print_memory(name: &str, filled: &Filled) {
    println!(
        "{name:<20} {:>8.1} MiB {:>8.1} MiB {:>10} {:>14.1}",
        mib(filled.rss_before),
        mib(filled.rss_after),
        filled.series,
        filled.per_series()
    );
}
