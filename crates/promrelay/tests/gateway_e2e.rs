//! `promrelay gateway` and `promrelay agent --gateway.url` as processes: a
//! real Prometheus scrapes a real node_exporter through the agent's outbound
//! tunnel, in every mode the gateway offers.

mod common;

use common::gateway;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use testkit::{free_port, http_get, node_exporter, prometheus, Daemon, TempDir};

/// An agent that only connects out, serving `node` and allowing its port;
/// it is ready once the gateway serves its page.
fn egress_agent(
    gateway: &Daemon,
    name: &str,
    token_file: &std::path::Path,
    node: &Daemon,
) -> Daemon {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(format!("--gateway.url=http://{}", gateway.addr()))
        .arg(format!("--agent.name={name}"))
        .arg(format!("--agent.token-file={}", token_file.display()))
        .arg(format!("--source.http=node={}", node.url("/metrics")))
        .arg(format!("--scrape.allow-port={}", node.addr().port()));
    Daemon::start(
        command,
        gateway.addr(),
        &format!("/agents/{name}/metrics"),
        TempDir::new("agent"),
    )
}

#[test]
fn prometheus_scrapes_an_egress_agent_through_the_gateway() {
    let node = node_exporter();
    let gateway = gateway(TempDir::new("gateway"));
    // The gateway made its agent token on first start and said where.
    let token_file = gateway.dir().join("data/agent-token");
    assert!(std::fs::read_to_string(&token_file).unwrap().trim().len() >= 32);
    assert!(
        gateway.stderr().contains("agent-token"),
        "{}",
        gateway.stderr()
    );

    let mut agent = egress_agent(&gateway, "edge-1", &token_file, &node);
    let page = http_get(
        &gateway.url("/agents/edge-1/metrics"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "5")],
    );
    assert_eq!(page.status, 200);
    assert!(page.text().contains("node_load1{exporter=\"node\"}"));
    assert!(testkit::promtool_check_metrics(&page.body).parse_ok());
    let one = http_get(&gateway.url("/agents/edge-1/sources/node/metrics"), &[]);
    assert!(one.text().contains("# TYPE node_load1 gauge\nnode_load1 "));
    // Unknown agent: 404 at once.
    assert_eq!(
        http_get(&gateway.url("/agents/nobody/metrics"), &[]).status,
        404
    );
    // PushProx's shape: one entry per agent, labels null.
    let clients = http_get(&gateway.url("/clients"), &[]).text().to_owned();
    assert!(
        clients.starts_with("[{") && clients.ends_with("}]"),
        "{clients}"
    );
    assert!(
        clients.contains("\"targets\":[\"edge-1\"]") && clients.contains("\"labels\":null"),
        "{clients}"
    );

    // Every way Prometheus can scrape through the gateway: by path, as a
    // proxy_url (how PushProx users configure it), all agents at once, and
    // targets found through http_sd_configs.
    let port = node.addr().port();
    let gw = gateway.addr();
    let forbidden = free_port();
    let prometheus = prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
         - job_name: edge\n  metrics_path: /agents/edge-1/metrics\n  static_configs:\n  - targets: ['{gw}']\n\
         - job_name: proxied\n  proxy_url: http://{gw}\n  static_configs:\n  - targets: ['edge-1:{port}']\n\
         - job_name: forbidden\n  proxy_url: http://{gw}\n  static_configs:\n  - targets: ['edge-1:{forbidden}']\n\
         - job_name: fanin\n  metrics_path: /metrics/connected\n  static_configs:\n  - targets: ['{gw}']\n\
         - job_name: discovered\n  http_sd_configs:\n  - url: http://{gw}/api/v1/sd\n    refresh_interval: 1s\n"
    ));
    for job in ["edge", "proxied", "fanin", "discovered"] {
        prometheus.wait_up(job, "1");
    }
    prometheus.wait_has_result("node_load1{job=\"edge\",exporter=\"node\"}");
    // Through proxy_url the exporter's own page arrives as it is.
    prometheus.wait_has_result(&format!(
        "node_load1{{job=\"proxied\",instance=\"edge-1:{port}\"}}"
    ));
    prometheus.wait_has_result("node_load1{job=\"fanin\",agent=\"edge-1\",exporter=\"node\"}");
    prometheus.wait_has_result("node_load1{job=\"discovered\",agent=\"edge-1\"}");
    // A port outside the agent's allowlist is refused.
    prometheus.wait_up("forbidden", "0");

    // The agent goes away: the gateway answers 503 at once, Prometheus
    // records the target as down.
    agent.kill();
    testkit::wait_for("503 for the dead agent", Duration::from_secs(10), || {
        http_get(&gateway.url("/agents/edge-1/metrics"), &[]).status == 503
    });
    prometheus.wait_up("edge", "0");
    prometheus.wait_has_result("promrelay_gateway_agent_up{job=\"fanin\",agent=\"edge-1\"} == 0");

    // A wrong token never gets the name.
    let dir = TempDir::new("bad-token");
    std::fs::write(dir.join("token"), "not-the-token\n").unwrap();
    let mut impostor = Command::new(env!("CARGO_BIN_EXE_promrelay"))
        .arg("agent")
        .arg(format!("--gateway.url=http://{gw}"))
        .arg("--agent.name=edge-1")
        .arg(format!(
            "--agent.token-file={}",
            dir.join("token").display()
        ))
        .arg("--source.exec=a=/bin/echo impostor 1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        http_get(&gateway.url("/agents/edge-1/metrics"), &[]).status,
        503
    );
    impostor.kill().unwrap();
    impostor.wait().unwrap();

    // The agent comes back and so does the target.
    let _agent = egress_agent(&gateway, "edge-1", &token_file, &node);
    prometheus.wait_up("edge", "1");
}

#[test]
fn agents_reconnect_after_a_gateway_restart() {
    let node = node_exporter();
    let storage = TempDir::new("gateway-storage");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let start_gateway = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
        command
            .arg("gateway")
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!("--storage.path={}", storage.path().display()));
        Daemon::start(command, addr, "/-/ready", TempDir::new("gateway"))
    };
    let mut first = start_gateway();
    let token_file = storage.join("agent-token");
    let _agent = egress_agent(&first, "edge-2", &token_file, &node);

    first.kill();
    drop(first);
    // Same port, same storage (so the same token): the agent dials again
    // on its own and is served as before.
    let second = start_gateway();
    testkit::wait_for(
        "the agent back after the restart",
        Duration::from_secs(30),
        || http_get(&second.url("/agents/edge-2/metrics"), &[]).status == 200,
    );
    let page = http_get(&second.url("/agents/edge-2/metrics"), &[]);
    assert!(page.text().contains("node_load1{exporter=\"node\"}"));
}
