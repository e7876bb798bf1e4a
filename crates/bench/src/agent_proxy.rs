//! `agent-proxy`: one exporter's page fetched directly from node_exporter,
//! through exporter_exporter (the baseline proxy), and through
//! `promrelay agent` (`/sources/node/metrics`). Rounds interleave the three
//! so drift on a shared machine hits them alike.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{free_port, node_exporter, Daemon, TempDir};

pub(crate) fn run(promrelay: &Path, rounds: usize, per_round: usize) {
    let node = node_exporter();
    let node_port = node.addr().port();

    let ee_dir = TempDir::new("exporter-exporter");
    let ee_config = ee_dir.join("exporter-exporter.yml");
    std::fs::write(
        &ee_config,
        format!("modules:\n  node:\n    method: http\n    http:\n      port: {node_port}\n"),
    )
    .expect("write config");
    let ee_addr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let mut ee = Command::new(testkit::find_program("prometheus-exporter-exporter"));
    ee.arg(format!("-config.file={}", ee_config.display()))
        .arg(format!("-web.listen-address={ee_addr}"));
    let exporter_exporter = Daemon::start(ee, ee_addr, "/metrics", ee_dir);

    let agent_addr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let mut agent = Command::new(promrelay);
    agent
        .arg("agent")
        .arg(format!("--web.listen-address={agent_addr}"))
        .arg(format!("--source.http=node={}", node.url("/metrics")))
        .arg("--log.level=warn");
    let agent = Daemon::start(agent, agent_addr, "/-/ready", TempDir::new("agent"));

    let targets = [
        ("node_exporter (direct)", node.url("/metrics")),
        (
            "exporter_exporter",
            exporter_exporter.url("/proxy?module=node"),
        ),
        ("promrelay agent", agent.url("/sources/node/metrics")),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder().build().expect("client");
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    let mut bytes = vec![0usize; targets.len()];
    runtime.block_on(async {
        // Warm connections and caches.
        for (_, url) in &targets {
            for _ in 0..5 {
                fetch(&client, url).await;
            }
        }
        for _ in 0..rounds {
            for (index, (_, url)) in targets.iter().enumerate() {
                for _ in 0..per_round {
                    let start = Instant::now();
                    bytes[index] = fetch(&client, url).await;
                    samples[index].push(start.elapsed());
                }
            }
        }
    });

    println!("agent-proxy: one node_exporter page, {rounds} interleaved rounds x {per_round} requests, concurrency 1, keep-alive");
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "target", "bytes", "p50 ms", "p90 ms", "p99 ms", "mean ms"
    );
    let mut p50 = Vec::new();
    for ((name, _), (samples, bytes)) in targets.iter().zip(samples.iter_mut().zip(&bytes)) {
        samples.sort();
        let pick =
            |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        let mean =
            samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e3;
        println!(
            "{name:<24} {bytes:>9} {:>9.3} {:>9.3} {:>9.3} {mean:>9.3}",
            pick(0.5),
            pick(0.9),
            pick(0.99)
        );
        p50.push(pick(0.5));
    }
    println!(
        "added p50 over direct: exporter_exporter {:+.3} ms, promrelay agent {:+.3} ms; agent/exporter_exporter p50 ratio {:.2}",
        p50[1] - p50[0],
        p50[2] - p50[0],
        p50[2] / p50[1]
    );
}

async fn fetch(client: &reqwest::Client, url: &str) -> usize {
    let response = client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
        .header("Accept", "text/plain;version=0.0.4")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .len()
}
