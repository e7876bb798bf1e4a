//! `promrelay agent` with a docker source, against the real Docker engine:
//! containers of an image built `FROM scratch` around a static metrics
//! server of ours ([`testkit::docker::Fixture`], which removes them even
//! when an assertion fails), scraped by the agent, by a real Prometheus
//! through it, and through a real `promrelay gateway`.
//!
//! Each agent sees only its own run's containers (a label filter), so
//! nothing else on the machine is ever scraped. Docker must be available:
//! these tests fail, never skip, without it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::docker::Fixture;
use testkit::{free_port, http_get, wait_for, Daemon, TempDir};

/// How long the agent may take to notice a container change. Generous: the
/// machine is shared; the event usually arrives within milliseconds.
const NOTICE: Duration = Duration::from_secs(30);

const SCRAPE: (&str, &str) = ("X-Prometheus-Scrape-Timeout-Seconds", "10");

/// `promrelay agent` listening on a free loopback port with `args`.
fn agent(args: &[String], dir: TempDir) -> Daemon {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(format!("--web.listen-address={addr}"))
        .args(args);
    Daemon::start(command, addr, "/-/ready", dir)
}

/// An agent configuration: a command source, then a docker source named
/// `containers` that sees only `fixture`'s containers and probes 9200.
fn write_config(dir: &Path, fixture: &Fixture) -> String {
    let path = dir.join("agent.yml");
    std::fs::write(
        &path,
        format!(
            "sources:\n\
             - name: fine\n  exec:\n    command: /usr/bin/printf\n    args: ['# HELP fine_metric Fine.\\n# TYPE fine_metric gauge\\nfine_metric 1\\n']\n\
             - name: containers\n  labels: {{site: test}}\n  docker:\n    host: unix://{}\n    probe_ports: [9200]\n    filters: {{label: ['{}']}}\n",
            testkit::docker::socket().display(),
            fixture.label()
        ),
    )
    .unwrap();
    format!("--config.file={}", path.display())
}

/// `docker run` arguments of one replica of the compose service `web`.
fn replica(project: &str, name: &str) -> Vec<String> {
    [
        "--label",
        "prometheus.io/scrape=true",
        "--label",
        "prometheus.io/port=9100",
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=web",
        "--env",
        &format!("REPLICA={name}"),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run(fixture: &Fixture, short: &str, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fixture.run(short, &args)
}

fn page(agent: &Daemon) -> String {
    let reply = http_get(&agent.url("/metrics"), &[SCRAPE]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text().to_owned()
}

fn up(container: &str) -> String {
    format!("promrelay_source_up{{source=\"containers\",container=\"{container}\"}} 1\n")
}

#[test]
fn the_agent_serves_follows_and_reports_a_hosts_containers() {
    let fixture = Fixture::new("agent");
    let project = fixture.run_id().to_owned();
    let web1 = run(&fixture, "web-1", &replica(&project, "web-1"));
    let web2 = run(&fixture, "web-2", &replica(&project, "web-2"));
    // No label: found by probing port 9200.
    let plain = fixture.run("plain", &["--env", "PORT=9200", "--env", "REPLICA=plain"]);
    fixture.run(
        "notaport",
        &[
            "--label",
            "prometheus.io/scrape=true",
            "--label",
            "prometheus.io/port=notaport",
        ],
    );
    fixture.run(
        "garbage",
        &[
            "--label",
            "prometheus.io/scrape=true",
            "--label",
            "prometheus.io/port=9100",
            "--env",
            "MODE=garbage",
        ],
    );
    let dir = TempDir::new("docker-agent");
    let config = write_config(dir.path(), &fixture);
    let agent = agent(&[config], dir);
    let name = |short: &str| fixture.name(short);

    // A container is a target as soon as it runs, a moment before its
    // server listens (and the probed one once its port answers): wait
    // until every page is in.
    let mut text = String::new();
    wait_for("every container's page", NOTICE, || {
        text = page(&agent);
        ["web-1", "web-2", "plain"]
            .iter()
            .all(|short| text.contains(&up(&name(short))))
    });

    // The three containers, told apart by their labels.
    let image = fixture.image();
    for (short, id, compose) in [
        (
            "web-1",
            &web1,
            format!(",compose_project=\"{project}\",compose_service=\"web\""),
        ),
        (
            "web-2",
            &web2,
            format!(",compose_project=\"{project}\",compose_service=\"web\""),
        ),
        ("plain", &plain, String::new()),
    ] {
        let line = format!(
            "demo_replica_info{{exporter=\"containers\",site=\"test\",container=\"{}\",container_id=\"{}\",image=\"{image}\"{compose},replica=\"{short}\"}} 1\n",
            name(short),
            &id[..12]
        );
        assert!(text.contains(&line), "{line} missing:\n{text}");
    }
    assert_eq!(
        text.matches("# TYPE demo_replica_info gauge").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("demo_replica_info{").count(), 3, "{text}");
    let page_bytes = http_get(&agent.url("/metrics"), &[SCRAPE]).body;
    let promtool = testkit::promtool_check_metrics(&page_bytes);
    assert!(promtool.is_clean(), "{promtool:?}");

    // The bad ones are reported, and cost nothing else.
    for line in [
        "fine_metric{exporter=\"fine\"} 1\n".to_owned(),
        format!(
            "promrelay_source_up{{source=\"containers\",container=\"{}\"}} 0\n",
            name("garbage")
        ),
        format!(
            "promrelay_source_error{{source=\"containers\",container=\"{}\",kind=\"parse\"}} 1\n",
            name("garbage")
        ),
        format!(
            "promrelay_docker_container_problem{{source=\"containers\",container=\"{}\",kind=\"bad_label\"}} 1\n",
            name("notaport")
        ),
        "promrelay_docker_daemon_up{source=\"containers\"} 1\n".to_owned(),
        "promrelay_docker_containers{source=\"containers\"} 4\n".to_owned(),
    ] {
        assert!(text.contains(&line), "{line} missing:\n{text}");
    }
    assert!(!text.contains("promrelay_docker_daemon_error{"), "{text}");
    // The log says what is wrong with it.
    assert!(
        agent
            .stderr()
            .contains("problem=\"label prometheus.io/port=\\\"notaport\\\": not a port number"),
        "the refused label is not named in the log:\n{}",
        agent.stderr()
    );

    // One container alone, as it serves its page.
    let one = http_get(
        &agent.url(&format!("/containers/{}/metrics", name("web-1"))),
        &[SCRAPE],
    );
    assert_eq!(one.status, 200);
    assert!(
        one.text()
            .contains("demo_replica_info{replica=\"web-1\"} 1\n"),
        "{}",
        one.text()
    );
    assert!(!one.text().contains("exporter="), "{}", one.text());
    let bad = http_get(
        &agent.url(&format!("/containers/{}/metrics", name("garbage"))),
        &[SCRAPE],
    );
    assert_eq!(bad.status, 502);
    assert!(bad.text().contains("invalid page: "), "{}", bad.text());
    let unknown = http_get(
        &agent.url(&format!("/containers/{}/metrics", name("notaport"))),
        &[],
    );
    assert_eq!(unknown.status, 404);
    // The docker source's part of the merged page.
    let source = http_get(&agent.url("/sources/containers/metrics"), &[SCRAPE]);
    assert_eq!(source.status, 200);
    assert_eq!(source.text().matches("demo_replica_info{").count(), 3);
    assert!(!source.text().contains("fine_metric"));

    // A real Prometheus scrapes the agent: the replicas are distinct series.
    let prometheus = testkit::prometheus(&format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
         scrape_configs:\n  - job_name: agent\n    static_configs: [{{targets: ['{}']}}]\n",
        agent.addr()
    ));
    prometheus.wait_for_query(
        "count by (compose_service) (demo_replica_info{job=\"agent\",compose_service=\"web\"})",
        NOTICE,
        |body| {
            body.contains("\"compose_service\":\"web\"},\"value\":[") && body.contains(",\"2\"]")
        },
    );
    let body = prometheus.wait_for_query(
        &format!(
            "demo_replica_info{{job=\"agent\",container=\"{}\"}}",
            name("plain")
        ),
        NOTICE,
        |body| body.contains("\"result\":[{"),
    );
    assert!(
        body.contains(&format!("\"container_id\":\"{}\"", &plain[..12])),
        "{body}"
    );
    assert!(body.contains("\"replica\":\"plain\""), "{body}");
    drop(prometheus);

    // A replica stops: gone from the page; another starts: there.
    testkit::docker::docker(&["stop", "--time", "1", &name("web-2")]);
    wait_for("the stopped replica is gone", NOTICE, || {
        !page(&agent).contains(&format!("container=\"{}\"", name("web-2")))
    });
    run(&fixture, "web-3", &replica(&project, "web-3"));
    wait_for("the new replica is served", NOTICE, || {
        page(&agent).contains(&up(&name("web-3")))
    });
    let text = page(&agent);
    assert!(text.contains(&up(&name("web-1"))), "{text}");
    assert!(
        text.contains("promrelay_docker_containers{source=\"containers\"} 4\n"),
        "{text}"
    );
}

#[test]
fn containers_are_reachable_through_the_gateway() {
    let fixture = Fixture::new("gateway");
    let project = fixture.run_id().to_owned();
    run(&fixture, "web-1", &replica(&project, "web-1"));
    let gateway = common::gateway(TempDir::new("docker-gateway"));
    let token_file = gateway.dir().join("data/agent-token");
    let name = format!("docker-edge-{}", std::process::id());
    let dir = TempDir::new("docker-egress-agent");
    let config = write_config(dir.path(), &fixture);
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(config)
        .arg(format!("--gateway.url=http://{}", gateway.addr()))
        .arg(format!("--agent.name={name}"))
        .arg(format!("--agent.token-file={}", token_file.display()));
    // Ready once the gateway serves its page.
    let _agent = Daemon::start(
        command,
        gateway.addr(),
        &format!("/agents/{name}/metrics"),
        dir,
    );
    let container = fixture.name("web-1");
    let url = gateway.url(&format!("/agents/{name}/containers/{container}/metrics"));
    wait_for("the container through the tunnel", NOTICE, || {
        http_get(&url, &[SCRAPE]).status == 200
    });
    let one = http_get(&url, &[SCRAPE]);
    assert!(
        one.text()
            .contains("demo_replica_info{replica=\"web-1\"} 1\n"),
        "{}",
        one.text()
    );
    let merged = http_get(&gateway.url(&format!("/agents/{name}/metrics")), &[SCRAPE]);
    assert!(
        merged
            .text()
            .contains(&format!("container=\"{container}\"")),
        "{}",
        merged.text()
    );
    // Unknown on the agent: its 404 comes back as it is.
    let unknown = http_get(
        &gateway.url(&format!(
            "/agents/{name}/containers/no-such-container/metrics"
        )),
        &[],
    );
    assert_eq!(unknown.status, 404);
}

#[test]
fn an_unreachable_socket_is_reported_and_the_other_sources_served() {
    let dir = TempDir::new("docker-no-daemon");
    let socket = dir.join("docker.sock");
    let agent = agent(
        &[
            "--source.exec=fine=/bin/echo fine_metric 1".to_owned(),
            format!("--source.docker=containers=unix://{}", socket.display()),
        ],
        dir,
    );
    let mut text = String::new();
    wait_for("the daemon reported down", NOTICE, || {
        text = page(&agent);
        text.contains(
            "promrelay_docker_daemon_error{source=\"containers\",kind=\"unreachable\"} 1\n",
        )
    });
    assert!(
        text.contains("fine_metric{exporter=\"fine\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("promrelay_docker_daemon_up{source=\"containers\"} 0\n"),
        "{text}"
    );
    assert!(
        agent.stderr().contains(&format!(
            "cannot connect to the Docker socket {}",
            socket.display()
        )),
        "{}",
        agent.stderr()
    );
    assert_eq!(
        http_get(&agent.url("/containers/web-1/metrics"), &[]).status,
        404
    );

    // A socket that is no unix:// URL stops the agent at start, saying why.
    let stderr = common::agent_start_error(&[
        "--web.listen-address=127.0.0.1:0",
        "--source.docker=containers=/var/run/docker.sock",
    ]);
    assert!(
        stderr.contains("--source.docker=containers=/var/run/docker.sock: host: ")
            && stderr.contains("only unix:// sockets are supported"),
        "{stderr}"
    );
}
