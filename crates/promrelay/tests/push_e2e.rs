//! `promrelay gateway` as a Pushgateway: a real Python client pushes, a
//! real Prometheus scrapes the groups with `honor_labels: true`, a group
//! with a TTL disappears at its deadline, and acknowledged pushes survive
//! `kill -9`.

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
