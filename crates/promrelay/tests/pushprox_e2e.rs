//! `promrelay gateway` and `promrelay agent --gateway.protocol=pushprox` as
//! processes: the agent speaks the PushProx client protocol to the
//! gateway's `/poll` and `/push`, and a real Prometheus scrapes a real
//! node_exporter through the gateway as its `proxy_url`, as PushProx users
//! configure it.

mod common;

use common::gateway;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::{free_port, http_get, node_exporter, prometheus, Daemon, TempDir};

/// An agent polling the gateway as a PushProx client under `name`,
/// serving `node` as a source and allowing its port. It also listens on
/// its own port (ready once that answers), which PushProx scrapes of that
/// port reach.
fn pushprox_agent(gateway: &Daemon, name: &str, token_file: &Path, node: &Daemon) -> Daemon {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(format!("--gateway.url=http://{}", gateway.addr()))
        .arg("--gateway.protocol=pushprox")
        .arg(format!("--agent.name={name}"))
        .arg(format!("--agent.token-file={}", token_file.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--source.http=node={}", node.url("/metrics")))
        .arg(format!("--scrape.allow-port={}", node.addr().port()));
    Daemon::start(command, addr, "/-/ready", TempDir::new("agent"))
}

/// Whether the gateway's `/clients` lists `name`.
fn listed(gateway: &Daemon, name: &str) -> bool {
    http_get(&gateway.url("/clients"), &[])
        .text()
        .contains(&format!("\"targets\":[\"{name}\"]"))
}

/// Sends `GET <url>` to the gateway in absolute form, as Prometheus does
/// with a `proxy_url`, and gives the status and body.
fn proxy_get(gateway: &Daemon, url: &str) -> (u16, String) {
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let mut stream = TcpStream::connect(gateway.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Prometheus/2.42.0\r\n\
         X-Prometheus-Scrape-Timeout-Seconds: 5\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

#[test]
fn prometheus_scrapes_a_pushprox_agent_through_the_gateway() {
    let node = node_exporter();
    let gateway = gateway(TempDir::new("gateway"));
    let token_file = gateway.dir().join("data/agent-token");
    let mut agent = pushprox_agent(&gateway, "edge-1", &token_file, &node);
    testkit::wait_for(
        "the agent's poll registered",
        Duration::from_secs(15),
        || listed(&gateway, "edge-1"),
    );

    // The exporter's own page, through the gateway, the poll and the push.
    let port = node.addr().port();
    let (status, page) = proxy_get(&gateway, &format!("http://edge-1:{port}/metrics"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("\nnode_load1 "), "{page}");
    // The agent's own merged page, by its own port.
    let own = agent.addr().port();
    let (status, page) = proxy_get(&gateway, &format!("http://edge-1:{own}/metrics"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("node_load1{exporter=\"node\"}"), "{page}");
    // A port outside the allowlist is refused by the agent.
    let forbidden = free_port();
    let (status, body) = proxy_get(&gateway, &format!("http://edge-1:{forbidden}/metrics"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not in this agent's allowed ports"), "{body}");
    // A name nobody polls for: 404 at once.
    let (status, _) = proxy_get(&gateway, &format!("http://nobody:{port}/metrics"));
    assert_eq!(status, 404);

    let gw = gateway.addr();
    let prometheus = prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
         - job_name: node\n  proxy_url: http://{gw}\n  static_configs:\n  - targets: ['edge-1:{port}']\n\
         - job_name: agent\n  proxy_url: http://{gw}\n  static_configs:\n  - targets: ['edge-1:{own}']\n\
         - job_name: forbidden\n  proxy_url: http://{gw}\n  static_configs:\n  - targets: ['edge-1:{forbidden}']\n"
    ));
    prometheus.wait_up("node", "1");
    prometheus.wait_has_result(&format!(
        "node_load1{{job=\"node\",instance=\"edge-1:{port}\"}}"
    ));
    prometheus.wait_up("agent", "1");
    prometheus.wait_has_result("node_load1{job=\"agent\",exporter=\"node\"}");
    prometheus.wait_up("forbidden", "0");

    // People and the gateway's own metrics see the PushProx client.
    let status_page = http_get(&gateway.url("/"), &[]);
    assert!(
        status_page.text().contains("<h2>PushProx clients</h2>")
            && status_page.text().contains("<td>edge-1</td>"),
        "{}",
        status_page.text()
    );
    let own = http_get(&gateway.url("/metrics"), &[]);
    let own = own.text();
    assert!(
        own.lines()
            .any(|l| l == "promrelay_gateway_pushprox_clients 1"),
        "{own}"
    );
    let answered = own
        .lines()
        .find_map(|l| {
            l.strip_prefix("promrelay_gateway_scrapes_total{route=\"pushprox\",outcome=\"ok\"} ")
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(answered >= 3.0, "{own}");

    // The agent goes away: still known to the gateway, it gets no poll, so
    // scrapes fail at their deadline and the target goes down.
    agent.kill();
    prometheus.wait_up("node", "0");
    let (status, body) = proxy_get(&gateway, &format!("http://edge-1:{port}/metrics"));
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("PushProx client edge-1"), "{body}");

    // It comes back and so does the target.
    let _agent = pushprox_agent(&gateway, "edge-1", &token_file, &node);
    prometheus.wait_up("node", "1");
}

#[test]
fn a_pushprox_agent_with_a_wrong_token_is_never_listed() {
    let node = node_exporter();
    let gateway = gateway(TempDir::new("gateway"));
    let dir = TempDir::new("bad-token");
    std::fs::write(dir.join("token"), "not-the-token\n").unwrap();
    let agent = pushprox_agent(&gateway, "impostor", &dir.join("token"), &node);
    testkit::wait_for(
        "the agent reporting the refusal",
        Duration::from_secs(15),
        || agent.stderr().contains("refused the agent's credentials"),
    );
    assert!(!listed(&gateway, "impostor"));
    let port = node.addr().port();
    let (status, _) = proxy_get(&gateway, &format!("http://impostor:{port}/metrics"));
    assert_eq!(status, 404);
    let metrics = http_get(&gateway.url("/metrics"), &[]);
    let failures: f64 = metrics
        .text()
        .lines()
        .find_map(|line| line.strip_prefix("promrelay_gateway_auth_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 1.0, "{failures}");
}
