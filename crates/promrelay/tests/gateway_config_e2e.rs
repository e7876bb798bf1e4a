//! `promrelay gateway --config.file`: per-agent tokens, client
//! certificates over TLS, reload by `POST /-/reload` and `SIGHUP` (a bad
//! file changes nothing), and the status page.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use testkit::tls::Ca;
use testkit::{free_port, http_get, http_request, wait_for, Daemon, TempDir};

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn tokens_yaml(tokens: &[(&str, &str)]) -> String {
    let mut yaml = String::from("agents:\n  tokens:\n");
    for (name, token) in tokens {
        yaml.push_str(&format!(
            "  - name: {name}\n    sha256: {}\n",
            sha256_hex(token)
        ));
    }
    yaml
}

fn gateway_command(dir: &TempDir, addr: SocketAddr, extra: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("gateway")
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!(
            "--config.file={}",
            dir.join("gateway.yml").display()
        ))
        .args(extra);
    command
}

/// An egress agent process named `name`; `auth` are its credential flags.
fn spawn_agent(gateway_url: &str, name: &str, auth: &[String], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_promrelay"))
        .arg("agent")
        .arg(format!("--gateway.url={gateway_url}"))
        .arg(format!("--agent.name={name}"))
        .arg("--source.exec=job=/bin/echo agent_says_hello 1")
        .args(auth)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .unwrap()
}

/// Kills the agents when the test ends, however it ends.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn token_flag(dir: &Path, name: &str, token: &str) -> Vec<String> {
    let path = dir.join(format!("{name}.token"));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    vec![format!("--agent.token-file={}", path.display())]
}

fn status_of(gateway: &Daemon, agent: &str) -> u16 {
    http_get(&gateway.url(&format!("/agents/{agent}/metrics")), &[]).status
}

fn metric(gateway: &Daemon, series: &str) -> Option<f64> {
    let page = http_get(&gateway.url("/metrics"), &[]);
    page.text()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn reload(gateway: &Daemon) -> (u16, String) {
    let response = http_request("POST", &gateway.url("/-/reload"), &[], b"");
    (response.status, response.text().to_owned())
}

#[test]
fn per_agent_tokens_reload_and_the_status_page() {
    let dir = TempDir::new("gateway");
    let config = dir.join("gateway.yml");
    std::fs::write(&config, tokens_yaml(&[("edge-a", "a-secret")])).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gateway = Daemon::start(gateway_command(&dir, addr, &[]), addr, "/-/ready", dir);
    let url = format!("http://{addr}");
    let work = TempDir::new("agents");
    let shared_token = std::fs::read_to_string(gateway.dir().join("data/agent-token")).unwrap();
    let mut agents = Agents(Vec::new());

    // An agent with its own token connects under its name.
    agents.0.push(spawn_agent(
        &url,
        "edge-a",
        &token_flag(work.path(), "edge-a", "a-secret"),
        work.path(),
    ));
    wait_for("edge-a to connect", Duration::from_secs(20), || {
        status_of(&gateway, "edge-a") == 200
    });
    // Others with the shared token still can.
    agents.0.push(spawn_agent(
        &url,
        "edge-shared",
        &token_flag(work.path(), "shared", &shared_token),
        work.path(),
    ));
    wait_for("edge-shared to connect", Duration::from_secs(20), || {
        status_of(&gateway, "edge-shared") == 200
    });
    // The shared token does not open a name that has its own token, and an
    // unlisted token opens nothing.
    let failures_before = metric(&gateway, "promrelay_gateway_auth_failures_total").unwrap();
    agents.0.push(spawn_agent(
        &url,
        "edge-a",
        &token_flag(work.path(), "impostor", &shared_token),
        work.path(),
    ));
    agents.0.push(spawn_agent(
        &url,
        "edge-b",
        &token_flag(work.path(), "edge-b", "b-secret"),
        work.path(),
    ));
    wait_for("both refusals", Duration::from_secs(20), || {
        metric(&gateway, "promrelay_gateway_auth_failures_total").unwrap() >= failures_before + 2.0
    });
    assert_eq!(status_of(&gateway, "edge-b"), 404);
    let page = http_get(&gateway.url("/agents/edge-a/metrics"), &[]);
    assert!(page.text().contains("agent_says_hello{exporter=\"job\"} 1"));

    // Reload: edge-b's token is added; the agent, still dialing with its
    // backoff, gets in.
    std::fs::write(
        &config,
        tokens_yaml(&[("edge-a", "a-secret"), ("edge-b", "b-secret")]),
    )
    .unwrap();
    assert_eq!(reload(&gateway), (200, "Reloaded\n".to_owned()));
    wait_for(
        "edge-b to connect after the reload",
        Duration::from_secs(40),
        || status_of(&gateway, "edge-b") == 200,
    );
    assert_eq!(
        metric(&gateway, "promrelay_gateway_config_last_reload_successful"),
        Some(1.0)
    );

    // A broken file is refused with its line and changes nothing.
    std::fs::write(&config, "agents:\n  tokens: []\n  bogus_key: 1\n").unwrap();
    let (status, body) = reload(&gateway);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("line 3") && body.contains("bogus_key"),
        "{body}"
    );
    assert_eq!(
        metric(&gateway, "promrelay_gateway_config_last_reload_successful"),
        Some(0.0)
    );
    // A setting that sizes the running gateway needs a restart.
    std::fs::write(
        &config,
        tokens_yaml(&[("edge-a", "a-secret"), ("edge-b", "b-secret")])
            + "fanin:\n  concurrency: 3\n",
    )
    .unwrap();
    let (status, body) = reload(&gateway);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("fanin.concurrency changed"), "{body}");
    // The credentials in use are still the last good ones, which do not
    // list edge-b2: it is refused until a reload does.
    let failures = metric(&gateway, "promrelay_gateway_auth_failures_total").unwrap();
    agents.0.push(spawn_agent(
        &url,
        "edge-b2",
        &token_flag(work.path(), "edge-b2", "b-secret"),
        work.path(),
    ));

    // SIGHUP does what /-/reload does: edge-b2 gets its own token.
    std::fs::write(
        &config,
        tokens_yaml(&[
            ("edge-a", "a-secret"),
            ("edge-b", "b-secret"),
            ("edge-b2", "b-secret"),
        ]),
    )
    .unwrap();
    wait_for("edge-b2 refused first", Duration::from_secs(20), || {
        metric(&gateway, "promrelay_gateway_auth_failures_total").unwrap() > failures
    });
    let hup = Command::new("kill")
        .arg("-HUP")
        .arg(gateway.pid().to_string())
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(
        "edge-b2 to connect after SIGHUP",
        Duration::from_secs(40),
        || status_of(&gateway, "edge-b2") == 200,
    );

    // The status page shows the agents and how they proved their names.
    let status = http_get(&gateway.url("/"), &[]);
    assert_eq!(status.status, 200);
    assert_eq!(
        status.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = status.text();
    for expected in [
        "<td>edge-a</td><td class=\"up\">connected</td>",
        "<td>edge-shared</td><td class=\"up\">connected</td>",
        "<td>own token</td>",
        "<td>shared token</td>",
        "Agents with their own token: 3",
        "<strong id=\"connected\">4</strong> agents connected",
    ] {
        assert!(html.contains(expected), "no {expected:?} in\n{html}");
    }
}

/// `GET` over https trusting `ca`; status and body.
fn https_get(url: &str, ca: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        match client.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(error) => (0, error.to_string()),
        }
    })
}

fn pem_files(dir: &Path, name: &str, pem: &testkit::tls::Pem) -> (PathBuf, PathBuf) {
    pem.write(dir, name);
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

#[test]
fn agents_prove_their_names_with_client_certificates() {
    let ca = Ca::new("promrelay test CA");
    let dir = TempDir::new("tls-gateway");
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    let (server_cert, server_key) = pem_files(dir.path(), "server", &ca.server());
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  \
             client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {}\n",
            server_cert.display(),
            server_key.display(),
            dir.join("ca.crt").display()
        ),
    )
    .unwrap();
    // Certificates only: no shared token at all.
    std::fs::write(
        dir.join("gateway.yml"),
        "agents:\n  shared_token: false\n  client_certificates: true\n",
    )
    .unwrap();
    let web = format!("--web.config.file={}", dir.join("web.yml").display());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let command = gateway_command(&dir, addr, &[web]);
    let ca_file = dir.join("ca.crt");
    let gateway = Daemon::start_tcp(command, addr, dir);
    assert!(
        !gateway.dir().join("data/agent-token").exists(),
        "no shared token is made when none is used"
    );
    let url = format!("https://127.0.0.1:{}", addr.port());
    let ca_pem = ca.pem();

    let work = TempDir::new("cert-agents");
    let cert_flags = |cn: &str| {
        let (cert, key) = pem_files(work.path(), cn, &ca.client(cn, &[]));
        vec![
            format!("--gateway.ca-file={}", ca_file.display()),
            format!("--gateway.cert-file={}", cert.display()),
            format!("--gateway.key-file={}", key.display()),
        ]
    };
    let mut agents = Agents(vec![spawn_agent(
        &url,
        "cert-agent",
        &cert_flags("cert-agent"),
        work.path(),
    )]);
    let agent_url = format!("{url}/agents/cert-agent/metrics");
    wait_for(
        "the certified agent to connect",
        Duration::from_secs(20),
        || https_get(&agent_url, &ca_pem).0 == 200,
    );
    let (_, page) = https_get(&agent_url, &ca_pem);
    assert!(
        page.contains("agent_says_hello{exporter=\"job\"} 1"),
        "{page}"
    );
    assert!(
        gateway.stderr().contains("credential=cert:cert-agent"),
        "{}",
        gateway.stderr()
    );

    // The PushProx protocol proves its name with the same certificate.
    let mut pushprox_flags = cert_flags("cert-pushprox");
    pushprox_flags.push("--gateway.protocol=pushprox".to_owned());
    agents.0.push(spawn_agent(
        &url,
        "cert-pushprox",
        &pushprox_flags,
        work.path(),
    ));
    wait_for(
        "the PushProx agent to be listed",
        Duration::from_secs(20),
        || {
            https_get(&format!("{url}/clients"), &ca_pem)
                .1
                .contains("\"targets\":[\"cert-pushprox\"]")
        },
    );

    // A certificate for another name does not open this one.
    agents.0.push(spawn_agent(
        &url,
        "wanted",
        &cert_flags("other"),
        work.path(),
    ));
    let log = work.join("wanted.log");
    wait_for(
        "the mismatched agent to be refused",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("refused the agent's credentials")
        },
    );
    assert_eq!(
        https_get(&format!("{url}/agents/wanted/metrics"), &ca_pem).0,
        404
    );
}
