//! How an egress agent reaches its gateway: through a real HTTP proxy
//! (tinyproxy, `CONNECT`) named by `HTTP_PROXY`/`HTTPS_PROXY`, past it for
//! hosts in `NO_PROXY`, and refused by a proxy that wants credentials it
//! was not given; and listen mode beside egress mode.

mod common;

use common::gateway;

use std::process::Command;
use std::time::Duration;

use testkit::{free_port, http_get, tinyproxy, Daemon, TempDir};

/// An egress-only agent named `name` with one command source, its proxy
/// environment replaced by `proxy_env` (whatever the test runner had).
fn agent_command(gateway: &Daemon, name: &str, proxy_env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(format!("--gateway.url=http://{}", gateway.addr()))
        .arg(format!("--agent.name={name}"))
        .arg(format!(
            "--agent.token-file={}",
            gateway.dir().join("data/agent-token").display()
        ))
        .arg("--source.exec=job=/bin/echo proxied_job_ok 1");
    for variable in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(variable);
    }
    command.envs(proxy_env.iter().copied());
    command
}

fn start_agent(gateway: &Daemon, name: &str, proxy_env: &[(&str, &str)]) -> Daemon {
    Daemon::start(
        agent_command(gateway, name, proxy_env),
        gateway.addr(),
        &format!("/agents/{name}/metrics"),
        TempDir::new("agent"),
    )
}

#[test]
fn the_tunnel_passes_an_http_proxy_with_connect() {
    let gateway = gateway(TempDir::new("gateway"));
    let proxy = tinyproxy(Some(("relay", "s3cret")));
    let proxy_url = format!("http://relay:s3cret@{}", proxy.addr());
    let agent = start_agent(&gateway, "behind-proxy", &[("HTTP_PROXY", &proxy_url)]);

    let page = http_get(&gateway.url("/agents/behind-proxy/metrics"), &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("proxied_job_ok{exporter=\"job\"} 1"),
        "{}",
        page.text()
    );
    // The proxy carried it: it logged the CONNECT to the gateway.
    let connect = format!("CONNECT {} HTTP/1.1", gateway.addr());
    assert!(
        proxy.stdout().contains(&connect),
        "no {connect:?} in the proxy's log:\n{}",
        proxy.stdout()
    );
    // The proxy password never reaches the agent's log.
    assert!(!agent.stderr().contains("s3cret"), "{}", agent.stderr());
}

#[test]
fn no_proxy_hosts_are_dialed_directly() {
    let gateway = gateway(TempDir::new("gateway"));
    // Nothing listens on this "proxy": only a direct dial can succeed.
    let dead_proxy = format!("http://127.0.0.1:{}", free_port());
    let _agent = start_agent(
        &gateway,
        "direct",
        &[
            ("HTTP_PROXY", &dead_proxy),
            ("NO_PROXY", "example.invalid,127.0.0.0/8"),
        ],
    );
    let page = http_get(&gateway.url("/agents/direct/metrics"), &[]);
    assert_eq!(page.status, 200);
}

#[test]
fn a_proxy_refusing_the_agent_is_reported_and_nothing_connects() {
    let gateway = gateway(TempDir::new("gateway"));
    let proxy = tinyproxy(Some(("relay", "s3cret")));
    let wrong = format!("http://relay:wrong@{}", proxy.addr());
    let dir = TempDir::new("refused-agent");
    let mut command = agent_command(&gateway, "refused", &[("HTTP_PROXY", &wrong)]);
    let log = dir.join("stderr.log");
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = command.spawn().unwrap();
    testkit::wait_for(
        "the agent to report the proxy's refusal",
        Duration::from_secs(15),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("refused: HTTP/")
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    // tinyproxy answers a wrong password with 401 (not 407).
    assert!(
        stderr.contains(&format!("proxy {}", proxy.addr())),
        "{stderr}"
    );
    assert!(stderr.contains("401 Unauthorized"), "{stderr}");
    assert!(!stderr.contains("wrong"), "{stderr}");
    assert_eq!(
        http_get(&gateway.url("/agents/refused/metrics"), &[]).status,
        404
    );
}

#[test]
fn listen_and_egress_modes_run_together() {
    let gateway = gateway(TempDir::new("gateway"));
    let local: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = agent_command(&gateway, "both", &[]);
    command.arg(format!("--web.listen-address={local}"));
    let agent = Daemon::start(command, local, "/-/ready", TempDir::new("agent"));
    wait_for_page(&gateway, "both");
    let through_gateway = http_get(&gateway.url("/agents/both/metrics"), &[]);
    let direct = http_get(&agent.url("/metrics"), &[]);
    for page in [&through_gateway, &direct] {
        assert_eq!(page.status, 200);
        assert!(page.text().contains("proxied_job_ok{exporter=\"job\"} 1"));
    }
}

fn wait_for_page(gateway: &Daemon, name: &str) {
    testkit::wait_for(
        "the agent's page through the gateway",
        Duration::from_secs(20),
        || http_get(&gateway.url(&format!("/agents/{name}/metrics")), &[]).status == 200,
    );
}
