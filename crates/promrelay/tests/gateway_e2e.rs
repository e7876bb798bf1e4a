//! `promrelay gateway` and `promrelay agent --gateway.url` as processes: a
//! real Prometheus scrapes a real node_exporter through the agent's outbound
//! tunnel, by path.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use testkit::{free_port, http_get, node_exporter, prometheus, Daemon, TempDir};

fn gateway(dir: TempDir) -> Daemon {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("gateway")
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--storage.path={}", dir.join("data").display()));
    Daemon::start(command, addr, "/-/ready", dir)
}

/// An agent that only connects out; it is ready once the gateway serves its
/// page.
fn egress_agent(
    gateway: &Daemon,
    name: &str,
    token_file: &std::path::Path,
    source: &str,
) -> Daemon {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(format!("--gateway.url=http://{}", gateway.addr()))
        .arg(format!("--agent.name={name}"))
        .arg(format!("--agent.token-file={}", token_file.display()))
        .arg(format!("--source.http={source}"));
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
    // The gateway made its agent token on first start, readable by its owner only.
    let token_file = gateway.dir().join("data/agent-token");
    assert!(std::fs::read_to_string(&token_file).unwrap().trim().len() >= 32);
    assert!(
        gateway.stderr().contains("agent-token"),
        "{}",
        gateway.stderr()
    );

    let mut agent = egress_agent(
        &gateway,
        "edge-1",
        &token_file,
        &format!("node={}", node.url("/metrics")),
    );
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
    let clients = http_get(&gateway.url("/clients"), &[]);
    // PushProx's shape: one entry per agent, labels null.
    let clients = clients.text();
    assert!(
        clients.starts_with("[{") && clients.ends_with("}]"),
        "{clients}"
    );
    assert!(
        clients.contains("\"targets\":[\"edge-1\"]") && clients.contains("\"labels\":null"),
        "{clients}"
    );

    let prometheus = prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: edge\n    metrics_path: /agents/edge-1/metrics\n    static_configs:\n      - targets: ['{}']\n",
        gateway.addr()
    ));
    prometheus.wait_for_query("up{job=\"edge\"}", Duration::from_secs(30), |body| {
        body.contains("\"1\"]")
    });
    prometheus.wait_for_query(
        "node_load1{job=\"edge\",exporter=\"node\"}",
        Duration::from_secs(10),
        |body| body.contains("\"result\":[{"),
    );

    // The agent goes away: the gateway answers 503 at once, Prometheus
    // records the target as down.
    agent.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = http_get(&gateway.url("/agents/edge-1/metrics"), &[]).status;
        if status == 503 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} after the agent died"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    prometheus.wait_for_query("up{job=\"edge\"}", Duration::from_secs(30), |body| {
        body.contains("\"0\"]")
    });

    // A wrong token never gets the name.
    let dir = TempDir::new("bad-token");
    std::fs::write(dir.join("token"), "not-the-token\n").unwrap();
    let mut impostor = Command::new(env!("CARGO_BIN_EXE_promrelay"))
        .arg("agent")
        .arg(format!("--gateway.url=http://{}", gateway.addr()))
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
    let _agent = egress_agent(
        &gateway,
        "edge-1",
        &token_file,
        &format!("node={}", node.url("/metrics")),
    );
    prometheus.wait_for_query("up{job=\"edge\"}", Duration::from_secs(30), |body| {
        body.contains("\"1\"]")
    });
}
