//! `promrelay agent` as a process, scraped by a real Prometheus.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use testkit::{free_port, http_get, node_exporter, prometheus, pushgateway, Daemon, TempDir};

fn agent(args: &[String], dir: TempDir) -> Daemon {
    agent_with_credentials(args, &[], dir)
}

fn agent_with_credentials(args: &[String], headers: &[(&str, &str)], dir: TempDir) -> Daemon {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("agent")
        .arg(format!("--web.listen-address={addr}"))
        .args(args);
    Daemon::start_with_headers(command, addr, "/-/ready", headers, dir)
}

#[test]
fn prometheus_scrapes_every_source_through_one_agent() {
    let node = node_exporter();
    let gateway = pushgateway();
    let dir = TempDir::new("agent");
    std::fs::create_dir(dir.join("textfile")).unwrap();
    std::fs::write(
        dir.join("textfile/cron.prom"),
        "# TYPE cron_last_run_seconds gauge\ncron_last_run_seconds 1.7e9\n",
    )
    .unwrap();
    let config = dir.join("agent.yml");
    std::fs::write(
        &config,
        format!(
            "sources:\n\
             - name: node\n  http: {{url: '{}'}}\n\
             - name: pushgateway\n  http: {{url: '{}'}}\n\
             - name: script\n  exec: {{command: /bin/echo, args: ['script_value 42']}}\n\
             - name: textfile\n  file: {{glob: '{}/textfile/*.prom'}}\n",
            node.url("/metrics"),
            gateway.url("/metrics"),
            dir.path().display()
        ),
    )
    .unwrap();
    let agent = agent(&[format!("--config.file={}", config.display())], dir);

    // The page itself passes promtool without parse errors.
    let page = http_get(
        &agent.url("/metrics"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "10")],
    );
    assert_eq!(page.status, 200);
    let outcome = testkit::promtool_check_metrics(&page.body);
    assert!(outcome.parse_ok(), "{outcome:?}");

    let prometheus = prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: agent\n    static_configs:\n      - targets: ['{}']\n",
        agent.addr()
    ));
    prometheus.wait_for_query("up{job=\"agent\"}", Duration::from_secs(30), |body| {
        body.contains("\"value\":[") && body.contains("\"1\"]")
    });
    for source in ["node", "pushgateway"] {
        let query = format!("go_goroutines{{exporter=\"{source}\"}}");
        prometheus.wait_for_query(&query, Duration::from_secs(10), |body| {
            body.contains("\"result\":[{")
        });
    }
    prometheus.wait_for_query(
        "script_value{exporter=\"script\"}",
        Duration::from_secs(10),
        |body| body.contains("\"42\"]"),
    );
    prometheus.wait_for_query(
        "cron_last_run_seconds{exporter=\"textfile\"}",
        Duration::from_secs(10),
        |body| body.contains("\"result\":[{"),
    );
    prometheus.wait_for_query(
        "promrelay_source_up == 1",
        Duration::from_secs(10),
        |body| body.matches("\"source\"").count() == 4,
    );
    // No scrape was refused for a malformed page.
    let failed = prometheus.query("scrape_samples_post_metric_relabeling{job=\"agent\"} > 500");
    assert!(failed.contains("\"result\":[{"), "{failed}");
}

#[test]
fn basic_auth_from_the_web_config_guards_every_endpoint() {
    let dir = TempDir::new("agent-auth");
    // In the $2y$ spelling htpasswd writes; the algorithm is the same.
    let hash = bcrypt::hash("secret", 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    std::fs::write(
        dir.join("web.yml"),
        format!("basic_auth_users:\n  alice: {hash}\n"),
    )
    .unwrap();
    let web = dir.join("web.yml");
    let alice = format!("Basic {}", base64("alice:secret"));
    let agent = agent_with_credentials(
        &[
            format!("--web.config.file={}", web.display()),
            "--source.exec=a=/bin/echo a_value 1".to_owned(),
        ],
        &[("Authorization", &alice)],
        dir,
    );
    let auth = |user: &str, password: &str| {
        let token = base64(&format!("{user}:{password}"));
        http_get(
            &agent.url("/metrics"),
            &[("Authorization", &format!("Basic {token}"))],
        )
        .status
    };
    assert_eq!(auth("alice", "secret"), 200);
    assert_eq!(auth("alice", "wrong"), 401);
    assert_eq!(auth("bob", "secret"), 401);
    assert_eq!(http_get(&agent.url("/metrics"), &[]).status, 401);
    assert_eq!(http_get(&agent.url("/sources/a/metrics"), &[]).status, 401);
    assert_eq!(http_get(&agent.url("/-/ready"), &[]).status, 401);
    // The password never reaches the log.
    assert!(!agent.stderr().contains("wrong"));
}

#[test]
fn sighup_reloads_and_a_bad_file_changes_nothing() {
    let dir = TempDir::new("agent-hup");
    let config = dir.join("agent.yml");
    std::fs::write(
        &config,
        "sources:\n- name: a\n  exec: {command: /bin/echo, args: ['first 1']}\n",
    )
    .unwrap();
    let agent = agent(&[format!("--config.file={}", config.display())], dir);
    let page = || http_get(&agent.url("/metrics"), &[]).text().to_owned();
    assert!(page().contains("first{exporter=\"a\"} 1"));
    let hup = || {
        let status = Command::new("kill")
            .args(["-HUP", &agent.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };

    std::fs::write(
        &config,
        "sources:\n- name: a\n  exec: {command: /bin/echo, args: ['second 2']}\n  bogus: 1\n",
    )
    .unwrap();
    hup();
    testkit::wait_for("the reload", Duration::from_secs(10), || {
        page().contains("promrelay_agent_config_last_reload_successful 0")
    });
    assert!(page().contains("first{exporter=\"a\"} 1"));
    assert!(
        agent.stderr().contains("unknown field `bogus`"),
        "{}",
        agent.stderr()
    );

    std::fs::write(
        &config,
        "sources:\n- name: a\n  exec: {command: /bin/echo, args: ['second 2']}\n",
    )
    .unwrap();
    hup();
    testkit::wait_for("the reload", Duration::from_secs(10), || {
        page().contains("second{exporter=\"a\"} 2")
    });
}

#[test]
fn a_bad_configuration_stops_the_agent_at_start_with_its_line() {
    let dir = TempDir::new("agent-bad");
    let config = dir.join("agent.yml");
    std::fs::write(
        &config,
        "scrape_timeout: 10s\nsources:\n- name: a\n  exec: {command: /bin/echo}\n  colour: blue\n",
    )
    .unwrap();
    let stderr = common::agent_start_error(&[
        &format!("--config.file={}", config.display()),
        "--web.listen-address=127.0.0.1:0",
    ]);
    assert!(
        stderr.contains("unknown field `colour`") && stderr.contains("line 5"),
        "{stderr}"
    );
}

fn base64(text: &str) -> String {
    use base64::prelude::{Engine as _, BASE64_STANDARD};
    BASE64_STANDARD.encode(text)
}
