//! The NAT proof: an agent on a host that can connect out but cannot be
//! connected to (a network namespace whose firewall drops every inbound
//! connection). A direct scrape of its node_exporter fails; a real
//! Prometheus scrapes the same node_exporter through the gateway.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::{free_port, http_get, prometheus, Daemon, TempDir};

/// A network namespace joined to this host by a veth pair, removed (with
/// its veth) when dropped.
struct Namespace {
    name: String,
}

/// The two ends of the veth pair: this host, and the namespace.
const HOST_ADDR: &str = "10.213.37.1";
const NS_ADDR: &str = "10.213.37.2";

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?} failed");
}

impl Namespace {
    fn new() -> Namespace {
        let id = std::process::id();
        let name = format!("prn{id}");
        let (host, inside) = (format!("prh{id}"), format!("prn{id}v"));
        ip(&["netns", "add", &name]);
        let ns = Namespace { name };
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &inside,
        ]);
        ip(&["link", "set", &inside, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{HOST_ADDR}/30"), "dev", &host]);
        ip(&["link", "set", &host, "up"]);
        ns.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{NS_ADDR}/30"),
            "dev",
            &inside,
        ]);
        ns.exec_ok(&["ip", "link", "set", &inside, "up"]);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        // Outbound connections and their replies pass; nothing may connect in.
        ns.exec_ok(&["iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"]);
        ns.exec_ok(&[
            "iptables",
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ]);
        ns.exec_ok(&["iptables", "-A", "INPUT", "-j", "DROP"]);
        ns
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    fn exec_ok(&self, args: &[&str]) {
        let status = self
            .command(args[0])
            .args(&args[1..])
            .status()
            .expect("ip netns exec runs");
        assert!(status.success(), "{args:?} failed in the namespace");
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A process in the namespace, killed when dropped.
struct Inside(Child);

impl Drop for Inside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_agent_that_cannot_be_reached_is_scraped_through_the_gateway() {
    let ns = Namespace::new();
    let node_port = free_port();
    let _node = Inside(
        ns.command(
            testkit::find_program("prometheus-node-exporter")
                .to_str()
                .unwrap(),
        )
        .arg(format!("--web.listen-address=0.0.0.0:{node_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );

    // The gateway listens on every interface: Prometheus comes over
    // loopback, the agent over the veth.
    let gateway_port = free_port();
    let gateway_addr: SocketAddr = format!("127.0.0.1:{gateway_port}").parse().unwrap();
    let dir = TempDir::new("nat-gateway");
    let data = dir.join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("gateway")
        .arg(format!("--web.listen-address=0.0.0.0:{gateway_port}"))
        .arg(format!("--storage.path={}", data.display()));
    let gateway = Daemon::start(command, gateway_addr, "/-/ready", dir);
    let token_file = data.join("agent-token");

    let _agent = Inside(
        ns.command(env!("CARGO_BIN_EXE_promrelay"))
            .arg("agent")
            .arg(format!("--gateway.url=http://{HOST_ADDR}:{gateway_port}"))
            .arg("--agent.name=behind-nat")
            .arg(format!("--agent.token-file={}", token_file.display()))
            .arg(format!(
                "--source.http=node=http://127.0.0.1:{node_port}/metrics"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The agent's page arrives through the gateway once it has dialled out.
    testkit::wait_for("a page through the tunnel", Duration::from_secs(30), || {
        let page = http_get(&gateway.url("/agents/behind-nat/metrics"), &[]);
        page.status == 200 && page.text().contains("node_load1{exporter=\"node\"}")
    });

    // A direct connection to the same node_exporter does not get through.
    let direct: SocketAddr = format!("{NS_ADDR}:{node_port}").parse().unwrap();
    assert!(
        TcpStream::connect_timeout(&direct, Duration::from_secs(1)).is_err(),
        "the namespace accepted an inbound connection"
    );

    let prometheus = prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
         - job_name: direct\n  static_configs:\n  - targets: ['{direct}']\n\
         - job_name: nat\n  metrics_path: /agents/behind-nat/metrics\n  static_configs:\n  - targets: ['{gateway_addr}']\n"
    ));
    prometheus.wait_for_query("up{job=\"nat\"}", Duration::from_secs(30), |body| {
        body.contains("\"1\"]")
    });
    prometheus.wait_for_query(
        "node_load1{job=\"nat\",exporter=\"node\"}",
        Duration::from_secs(15),
        |body| body.contains("\"result\":[{"),
    );
    prometheus.wait_for_query("up{job=\"direct\"}", Duration::from_secs(30), |body| {
        body.contains("\"0\"]")
    });
}
