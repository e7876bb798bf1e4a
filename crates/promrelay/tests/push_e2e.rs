//! `promrelay gateway` as a Pushgateway: a real Python client pushes, a
//! real Prometheus scrapes the groups with `honor_labels: true`, a group
//! with a TTL disappears at its deadline, and acknowledged pushes survive
//! `kill -9`. The same for a job on the private side that pushes to its
//! local agent, whose groups reach Prometheus through the tunnel.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use testkit::{free_port, http_get, http_request, prometheus, python_push, Daemon, TempDir};

fn gateway_on(storage: &std::path::Path, addr: SocketAddr, extra: &[&str]) -> Daemon {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("gateway")
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--storage.path={}", storage.display()))
        .args(extra);
    Daemon::start(command, addr, "/-/ready", TempDir::new("gateway"))
}

fn page(gateway: &Daemon) -> String {
    http_get(&gateway.url("/metrics"), &[]).text().to_owned()
}

#[test]
fn python_clients_push_and_prometheus_scrapes_the_groups() {
    let gateway = common::gateway(TempDir::new("gateway"));
    let addr = gateway.addr().to_string();
    python_push(
        &addr,
        "g = Gauge('batch_last_success_seconds', 'When the batch last succeeded.', registry=registry)\n\
         g.set(1700000000)\n\
         push_to_gateway(gateway, job='nightly', registry=registry, grouping_key={'instance': 'db-1'})",
    );
    let text = page(&gateway);
    assert!(
        text.contains("batch_last_success_seconds{instance=\"db-1\",job=\"nightly\"} 1.7e+09"),
        "{text}"
    );
    assert!(text.contains("push_time_seconds{instance=\"db-1\",job=\"nightly\"}"));
    // The gateway's own metrics share the page, each family once.
    assert!(text.contains("# TYPE promrelay_gateway_agents_connected gauge"));
    assert!(testkit::promtool_check_metrics(text.as_bytes()).parse_ok());

    let prometheus = prometheus(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n\
         - job_name: pushed\n  honor_labels: true\n  static_configs:\n  - targets: ['{addr}']\n"
    ));
    // honor_labels keeps the pushed job, not the scrape job's.
    prometheus.wait_has_result("batch_last_success_seconds{job=\"nightly\",instance=\"db-1\"}");

    python_push(
        &addr,
        "delete_from_gateway(gateway, job='nightly', grouping_key={'instance': 'db-1'})",
    );
    assert!(!page(&gateway).contains("batch_last_success_seconds"));
}

#[test]
fn a_group_with_a_ttl_disappears_and_acknowledged_pushes_survive_kill_9() {
    let storage = TempDir::new("push-storage");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut gateway = gateway_on(storage.path(), addr, &["--push.max-ttl=1h"]);

    let push = |path: &str, body: &str| {
        http_request(
            "PUT",
            &format!("http://{addr}{path}"),
            &[("Content-Type", "text/plain; version=0.0.4")],
            body.as_bytes(),
        )
        .status
    };
    assert_eq!(push("/metrics/job/short?ttl=2s", "short_lived 1\n"), 200);
    for i in 0..20 {
        let status = push(
            &format!("/metrics/job/kept/instance/i{i}"),
            &format!("kept_value {i}\n"),
        );
        assert_eq!(status, 200);
    }
    assert!(page(&gateway).contains("short_lived{instance=\"\",job=\"short\"} 1"));
    let api = http_get(&gateway.url("/api/v1/metrics"), &[]);
    assert!(api.text().contains("expires_at"), "{}", api.text());
    testkit::wait_for(
        "the group with a 2s TTL to expire",
        Duration::from_secs(15),
        || !page(&gateway).contains("short_lived"),
    );
    let own = page(&gateway);
    assert!(
        own.lines()
            .any(|l| l.starts_with("promrelay_push_expired_groups_total") && l.ends_with(" 1")),
        "{own}"
    );

    // Every acknowledged push is on disk: kill -9 and start again.
    gateway.kill();
    drop(gateway);
    let gateway = gateway_on(storage.path(), addr, &["--push.max-ttl=1h"]);
    let after = page(&gateway);
    for i in 0..20 {
        assert!(
            after.contains(&format!("kept_value{{instance=\"i{i}\",job=\"kept\"}} {i}")),
            "group {i} lost:\n{after}"
        );
    }
    assert!(!after.contains("short_lived"));
}

/// An egress agent named `edge` with a push source `jobs`, taking pushes on
/// `push_addr` and keeping them in `storage`.
fn push_agent(gateway: &Daemon, push_addr: SocketAddr, storage: &std::path::Path) -> Daemon {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(format!("--gateway.url=http://{}", gateway.addr()))
        .arg("--agent.name=edge")
        .arg(format!(
            "--agent.token-file={}",
            gateway.dir().join("data/agent-token").display()
        ))
        .arg(format!("--web.listen-address={push_addr}"))
        .arg(format!("--storage.path={}", storage.display()))
        .arg("--source.push=jobs");
    let agent = Daemon::start(command, push_addr, "/-/ready", TempDir::new("agent"));
    testkit::wait_for("the agent's tunnel", Duration::from_secs(15), || {
        http_get(&gateway.url("/agents/edge/metrics"), &[]).status == 200
    });
    agent
}

#[test]
fn jobs_push_to_their_agent_and_prometheus_reads_them_through_the_gateway() {
    let gateway = common::gateway(TempDir::new("gateway"));
    let storage = TempDir::new("agent-storage");
    let push_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut agent = push_agent(&gateway, push_addr, storage.path());

    // An unmodified client, pointed at the agent.
    python_push(
        &push_addr.to_string(),
        "g = Gauge('backup_last_success_seconds', 'When the backup last succeeded.', registry=registry)\n\
         g.set(1700000000)\n\
         push_to_gateway(gateway, job='backup', registry=registry, grouping_key={'instance': 'db-1'})",
    );
    let short = http_request(
        "PUT",
        &format!("http://{push_addr}/metrics/job/short"),
        &[("X-Push-TTL", "2s")],
        b"short_lived 1\n",
    );
    assert_eq!(short.status, 200, "{}", short.text());
    let through = || {
        http_get(&gateway.url("/agents/edge/metrics"), &[])
            .text()
            .to_owned()
    };
    let page = through();
    assert!(
        page.contains(
            "backup_last_success_seconds{exporter=\"jobs\",instance=\"db-1\",job=\"backup\"} 1.7e+09"
        ),
        "{page}"
    );
    assert!(page.contains("short_lived{exporter=\"jobs\",instance=\"\",job=\"short\"} 1"));
    assert!(testkit::promtool_check_metrics(page.as_bytes()).parse_ok());

    let prometheus = prometheus(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n\
         - job_name: edge\n  honor_labels: true\n  metrics_path: /agents/edge/metrics\n\
         \x20 static_configs:\n  - targets: ['{}']\n",
        gateway.addr()
    ));
    prometheus.wait_has_result(
        "backup_last_success_seconds{job=\"backup\",instance=\"db-1\",exporter=\"jobs\"}",
    );

    testkit::wait_for(
        "the group with a 2s TTL to expire behind the tunnel",
        Duration::from_secs(15),
        || !through().contains("short_lived"),
    );

    // Acknowledged by the agent means on the agent's disk.
    agent.kill();
    drop(agent);
    let _agent = push_agent(&gateway, push_addr, storage.path());
    let page = through();
    assert!(
        page.contains("backup_last_success_seconds{exporter=\"jobs\""),
        "{page}"
    );
    assert!(!page.contains("short_lived"));
}

#[test]
fn an_agent_with_a_push_source_needs_a_storage_path() {
    let error =
        common::agent_start_error(&["--source.push=jobs", "--web.listen-address=127.0.0.1:0"]);
    assert!(error.contains("--storage.path"), "{error}");
}
