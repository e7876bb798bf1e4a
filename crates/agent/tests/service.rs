//! The agent's endpoints, driven through the router (no socket) against real
//! sources: node_exporter, Pushgateway, commands and files.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::config::Config;
use agent::service::Agent;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    content_type: String,
    encoding: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn get(agent: &Arc<Agent>, uri: &str, headers: &[(&str, &str)]) -> Reply {
    request(agent, "GET", uri, headers).await
}

async fn request(agent: &Arc<Agent>, method: &str, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = agent
        .router()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let encoding = header("content-encoding");
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        content_type,
        encoding,
        body,
    }
}

fn start(yaml: &str) -> Arc<Agent> {
    let yaml = yaml.to_owned();
    Agent::start(Box::new(move || {
        Config::from_yaml(&yaml, Path::new("agent.yml"))
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn script(name: &str) -> String {
    format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

const SCRAPE: (&str, &str) = ("X-Prometheus-Scrape-Timeout-Seconds", "10");

#[tokio::test(flavor = "multi_thread")]
async fn merges_real_exporters_commands_and_files_into_one_valid_page() {
    let node = testkit::node_exporter();
    let gateway = testkit::pushgateway();
    let files = testkit::TempDir::new("textfile");
    std::fs::write(files.join("backup.prom"), "# TYPE backup_last_success_timestamp_seconds gauge\nbackup_last_success_timestamp_seconds 1.7e9\n").unwrap();
    std::fs::write(
        files.join("raid.prom"),
        "# TYPE raid_degraded gauge\nraid_degraded{md=\"md0\"} 0\n",
    )
    .unwrap();
    let agent = start(&format!(
        "sources:\n\
         - name: node\n  http: {{url: '{}'}}\n  labels: {{team: infra}}\n\
         - name: pushgateway\n  http: {{url: '{}'}}\n\
         - name: script\n  exec: {{command: /bin/sh, args: ['-c', 'echo \"# TYPE job_ok gauge\"; echo job_ok 1; echo go_goroutines 3']}}\n\
         - name: textfile\n  file: {{glob: '{}/*.prom'}}\n",
        node.url("/metrics"),
        gateway.url("/metrics"),
        files.path().display(),
    ));
    let reply = get(&agent, "/metrics", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let page = reply.text();
    let outcome = testkit::promtool_check_metrics(&reply.body);
    assert!(outcome.parse_ok(), "promtool refused the page: {outcome:?}");
    // One family, four sources: the untyped script sample joins the gauge.
    assert_eq!(page.matches("# TYPE go_goroutines ").count(), 1);
    for source in ["node", "pushgateway", "script"] {
        assert!(
            page.contains(&format!("go_goroutines{{exporter=\"{source}\"")),
            "{source} missing:\n{page}"
        );
    }
    assert!(page.contains("node_load1{exporter=\"node\",team=\"infra\"}"));
    assert!(page.contains("raid_degraded{exporter=\"textfile\",md=\"md0\"} 0"));
    assert!(page.contains("job_ok{exporter=\"script\"} 1"));
    for source in ["node", "pushgateway", "script", "textfile"] {
        assert!(
            page.contains(&format!("promrelay_source_up{{source=\"{source}\"}} 1")),
            "{source}"
        );
    }
    assert!(!page.contains("promrelay_source_error{"), "{page}");
    assert!(page.contains("promrelay_file_mtime_seconds{source=\"textfile\",file=\""));
    let python = testkit::python_parse(&reply.body, testkit::PythonParser::Text).unwrap();
    assert!(python.samples > 500);

    // One source, unmodified: exactly what node_exporter serves.
    let reply = get(&agent, "/sources/textfile/metrics", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("raid_degraded{md=\"md0\"} 0"));
    let reply = get(&agent, "/sources/node/metrics", &[SCRAPE]).await;
    assert!(reply
        .text()
        .contains("# TYPE node_load1 gauge\nnode_load1 "));
    assert!(!reply.text().contains("exporter="));
}

#[tokio::test(flavor = "multi_thread")]
async fn negotiates_openmetrics_and_gzip() {
    let agent = start("sources:\n- name: a\n  exec: {command: /bin/echo, args: ['c_total 5']}\n");
    let reply = get(
        &agent,
        "/metrics",
        &[
            (
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            ),
            ("Accept-Encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(
        reply.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(reply.encoding.as_deref(), Some("gzip"));
    let mut page = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&reply.body[..]),
        &mut page,
    )
    .unwrap();
    assert!(page.ends_with("# EOF\n"), "{page}");
    assert!(page.contains("c_total{exporter=\"a\"} 5"));
    testkit::python_parse(page.as_bytes(), testkit::PythonParser::OpenMetrics).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_source_is_reported_and_the_others_are_served() {
    let gateway = testkit::pushgateway();
    let files = testkit::TempDir::new("textfile");
    std::fs::write(files.join("good.prom"), "good_metric 1\n").unwrap();
    std::fs::write(files.join("bad.prom"), "bad_metric{ 1\n").unwrap();
    let agent = start(&format!(
        "sources:\n\
         - name: garbage\n  http: {{url: '{}'}}\n\
         - name: down\n  http: {{url: 'http://127.0.0.1:{}/metrics'}}\n\
         - name: textfile\n  file: {{glob: '{}/*.prom'}}\n\
         - name: fine\n  exec: {{command: /bin/echo, args: ['fine_metric 1']}}\n",
        // Pushgateway's health endpoint answers 200 with text that is not a page.
        gateway.url("/-/healthy"),
        testkit::free_port(),
        files.path().display(),
    ));
    let reply = get(&agent, "/metrics", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.text();
    assert!(testkit::promtool_check_metrics(&reply.body).parse_ok());
    assert!(page.contains("fine_metric{exporter=\"fine\"} 1"));
    assert!(page.contains("good_metric{exporter=\"textfile\"} 1"));
    assert!(!page.contains("bad_metric"));
    assert!(page.contains("promrelay_source_up{source=\"garbage\"} 0"));
    assert!(page.contains("promrelay_source_error{source=\"garbage\",kind=\"parse\"} 1"));
    assert!(page.contains("promrelay_source_up{source=\"down\"} 0"));
    assert!(page.contains("promrelay_source_error{source=\"down\",kind=\"connect\"} 1"));
    // The file source is served without its malformed file, and says so.
    assert!(page.contains("promrelay_source_up{source=\"textfile\"} 1"));
    assert!(page.contains("promrelay_source_error{source=\"textfile\",kind=\"parse\"} 1"));
    assert!(page.contains("promrelay_source_up{source=\"fine\"} 1"));

    let reply = get(&agent, "/sources/down/metrics", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply
            .text()
            .contains("source \"down\" failed: cannot connect"),
        "{}",
        reply.text()
    );
    assert_eq!(
        get(&agent, "/sources/nope/metrics", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scrape_timeout_header_bounds_the_whole_scrape() {
    let agent = start(
        "sources:\n\
         - name: slow\n  exec: {command: /bin/sleep, args: ['30'], timeout: 1m}\n\
         - name: fast\n  exec: {command: /bin/echo, args: ['fast_metric 1']}\n",
    );
    let started = std::time::Instant::now();
    let reply = get(
        &agent,
        "/metrics",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.text();
    assert!(page.contains("fast_metric{exporter=\"fast\"} 1"));
    assert!(
        page.contains("promrelay_source_error{source=\"slow\",kind=\"timeout\"} 1"),
        "{page}"
    );
    // Answered before Prometheus would give up: a behaviour bound, not a
    // speed figure.
    assert!(
        elapsed < std::time::Duration::from_millis(1500),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_parameters_reach_commands_only_through_the_allowlist() {
    let agent = start(
        "sources:\n\
         - name: probe\n  exec:\n    command: /bin/sh\n    args: ['-c', 'echo \"probe_target{target=\\\"$1\\\",mode=\\\"$MODE\\\"} 1\"', 'sh']\n    params:\n      - {name: target, pattern: '[a-z0-9.-]+', arg: true}\n      - {name: mode, pattern: 'fast|slow', env: MODE}\n",
    );
    let reply = get(
        &agent,
        "/sources/probe/metrics?target=db1.example&mode=fast",
        &[SCRAPE],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.text(),
        "probe_target{target=\"db1.example\",mode=\"fast\"} 1\n"
    );
    for (query, message) in [
        (
            "target=db1;rm",
            "does not match the pattern of source \"probe\"",
        ),
        ("target=a%0Ab", "does not match the pattern"),
        ("other=1", "query parameter \"other\" is not allowed"),
        ("target=a&target=b", "given twice"),
    ] {
        for path in ["/sources/probe/metrics", "/metrics"] {
            let reply = get(&agent, &format!("{path}?{query}"), &[SCRAPE]).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}?{query}");
            assert!(
                reply.text().contains(message),
                "{path}?{query}: {}",
                reply.text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_scrapes_of_a_command_share_one_run() {
    let dir = testkit::TempDir::new("coalesce");
    let counter = dir.join("runs");
    // The command counts its own runs and takes a second.
    let agent = start(&format!(
        "sources:\n- name: slow\n  exec: {{command: /bin/sh, args: ['{}'], env: {{COUNT_FILE: '{}', SLEEP: '1'}}}}\n",
        script("counted_page.sh"),
        counter.display()
    ));
    let scrapes = (0..200).map(|_| {
        let agent = Arc::clone(&agent);
        tokio::spawn(async move { get(&agent, "/sources/slow/metrics", &[SCRAPE]).await })
    });
    let ok = Arc::new(AtomicUsize::new(0));
    for reply in futures::future::join_all(scrapes).await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        ok.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(ok.load(Ordering::Relaxed), 200);
    let runs = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(
        runs.lines().count(),
        1,
        "the command ran more than once: {runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_reload_is_refused_and_the_old_configuration_keeps_serving() {
    let dir = testkit::TempDir::new("reload");
    let path = dir.join("agent.yml");
    std::fs::write(
        &path,
        "sources:\n- name: a\n  exec: {command: /bin/echo, args: ['one 1']}\n",
    )
    .unwrap();
    let file = path.clone();
    let agent = Agent::start(Box::new(move || Config::load(&file))).unwrap();
    assert!(get(&agent, "/metrics", &[SCRAPE])
        .await
        .text()
        .contains("one{exporter=\"a\"} 1"));

    std::fs::write(
        &path,
        "sources:\n- name: a\n  exec: {command: /bin/echo, args: ['two 2']}\n  colour: blue\n",
    )
    .unwrap();
    let reply = request(&agent, "POST", "/-/reload", &[]).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        reply.text().contains("unknown field `colour`"),
        "{}",
        reply.text()
    );
    assert!(reply.text().contains("line 4"), "{}", reply.text());
    let page = get(&agent, "/metrics", &[SCRAPE]).await.text();
    assert!(page.contains("one{exporter=\"a\"} 1"));
    assert!(page.contains("promrelay_agent_config_last_reload_successful 0"));

    std::fs::write(
        &path,
        "sources:\n- name: b\n  exec: {command: /bin/echo, args: ['two 2']}\n",
    )
    .unwrap();
    assert_eq!(
        request(&agent, "POST", "/-/reload", &[]).await.status,
        StatusCode::OK
    );
    let page = get(&agent, "/metrics", &[SCRAPE]).await.text();
    assert!(page.contains("two{exporter=\"b\"} 2"));
    assert!(!page.contains("one{"));
    assert!(page.contains("promrelay_agent_config_last_reload_successful 1"));
}

#[test]
fn a_configuration_with_an_unknown_key_does_not_start() {
    let error = Agent::start(Box::new(|| {
        Config::from_yaml(
            "sources:\n- name: a\n  htp: {url: 'http://x/'}\n",
            Path::new("agent.yml"),
        )
    }))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("agent.yml")
            && error.contains("unknown field `htp`")
            && error.contains("line 3"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_sources_reach_backends_over_tls_with_credentials_and_headers() {
    // The backend: another agent behind TLS and basic auth.
    let dir = testkit::TempDir::new("tls-backend");
    let ca = testkit::tls::Ca::new("test-ca");
    ca.server().write(dir.path(), "server");
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("password"), "s3cret\n").unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  scraper: {hash}\n"),
    )
    .unwrap();
    let web_config = web::WebConfig::load(&dir.join("web.yml")).unwrap();
    // The backend echoes the header it was sent, so the test sees it arrive.
    let backend = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            let team = headers
                .get("x-team")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            format!("backend_value{{team=\"{team}\"}} 7\n")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(web::serve(
        listener,
        web::WebConfigHandle::new(web_config),
        backend,
        std::future::pending(),
    ));

    let source = |auth: &str| {
        format!(
            "sources:\n- name: remote\n  http:\n    url: 'https://localhost:{port}/metrics'\n    tls_config: {{ca_file: '{}'}}\n    headers: {{X-Team: infra}}\n{auth}",
            dir.join("ca.crt").display()
        )
    };
    let front = start(&source(&format!(
        "    basic_auth: {{username: scraper, password_file: '{}'}}\n",
        dir.join("password").display()
    )));
    let page = get(&front, "/metrics", &[SCRAPE]).await.text();
    assert!(
        page.contains("backend_value{exporter=\"remote\",team=\"infra\"} 7"),
        "{page}"
    );
    assert!(page.contains("promrelay_source_up{source=\"remote\"} 1"));

    let wrong = start(&source(
        "    basic_auth: {username: scraper, password: nope}\n",
    ));
    let page = get(&wrong, "/metrics", &[SCRAPE]).await.text();
    assert!(
        page.contains("promrelay_source_error{source=\"remote\",kind=\"http_status\"} 1"),
        "{page}"
    );
    let reply = get(&wrong, "/sources/remote/metrics", &[SCRAPE]).await;
    assert!(
        reply.text().contains("answered HTTP 401"),
        "{}",
        reply.text()
    );

    // Without the CA the backend's certificate is not trusted.
    let untrusted = start(&format!(
        "sources:\n- name: remote\n  http: {{url: 'https://localhost:{port}/metrics'}}\n"
    ));
    let page = get(&untrusted, "/metrics", &[SCRAPE]).await.text();
    assert!(
        page.contains("promrelay_source_error{source=\"remote\",kind=\"connect\"} 1"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_source_label_and_static_labels_are_configurable() {
    let agent = start(
        "source_label: component\nsources:\n- name: a\n  labels: {env: prod}\n  exec: {command: /bin/echo, args: ['m{env=\"inner\"} 1']}\n",
    );
    let page = get(&agent, "/metrics", &[SCRAPE]).await.text();
    assert!(
        page.contains("m{component=\"a\",env=\"prod\",exported_env=\"inner\"} 1"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tunnel_reaches_only_allowlisted_local_ports() {
    let node = testkit::node_exporter();
    let port = node.addr().port();
    let agent = start(&format!("allowed_ports: [{port}]\nsources: []\n"));
    let tunnel = |uri: String| {
        let agent = Arc::clone(&agent);
        async move {
            let request = Request::builder()
                .uri(uri)
                .header(SCRAPE.0, SCRAPE.1)
                .body(Body::empty())
                .unwrap();
            let response = agent.tunnel_router().oneshot(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, page) = tunnel(format!("/ports/{port}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("# TYPE node_load1 gauge"), "{page}");
    // The exporter's gzip passes through as it is: the page crosses the
    // tunnel compressed.
    let request = Request::builder()
        .uri(format!("/ports/{port}/metrics"))
        .header(SCRAPE.0, SCRAPE.1)
        .header("accept-encoding", "gzip")
        .body(Body::empty())
        .unwrap();
    let response = agent.tunnel_router().oneshot(request).await.unwrap();
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let zipped = response.into_body().collect().await.unwrap().to_bytes();
    let mut unzipped = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .unwrap();
    assert!(unzipped.contains("# TYPE node_load1 gauge"));
    assert!(
        zipped.len() * 3 < unzipped.len(),
        "{} vs {}",
        zipped.len(),
        unzipped.len()
    );
    // PushProx's _scheme=https is taken out and switches to https, which
    // node_exporter does not speak here.
    let (status, _) = tunnel(format!("/ports/{port}/metrics?_scheme=https")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let other = testkit::free_port();
    let (status, body) = tunnel(format!("/ports/{other}/metrics")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains(&format!(
            "port {other} is not in this agent's allowed ports"
        )),
        "{body}"
    );
    // Listen mode does not relay at all.
    assert_eq!(
        get(&agent, &format!("/ports/{port}/metrics"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_docker_source_without_its_daemon_is_reported_and_the_rest_served() {
    let dir = testkit::TempDir::new("no-docker");
    let socket = dir.join("docker.sock");
    let agent = start(&format!(
        "sources:\n\
         - name: fine\n  exec: {{command: /usr/bin/printf, args: ['# HELP fine_metric Fine.\\n# TYPE fine_metric gauge\\nfine_metric 1\\n']}}\n\
         - name: containers\n  labels: {{site: a}}\n  docker:\n    host: unix://{}\n    reconnect_backoff: {{min: 50ms, max: 1s}}\n",
        socket.display()
    ));
    agent.runtime().settled(Duration::from_secs(10)).await;
    let reply = get(&agent, "/metrics", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.text();
    let outcome = testkit::promtool_check_metrics(&reply.body);
    assert!(outcome.is_clean(), "{outcome:?}\n{page}");
    for line in [
        "fine_metric{exporter=\"fine\"} 1",
        "promrelay_source_up{source=\"fine\"} 1",
        "promrelay_docker_daemon_up{source=\"containers\"} 0",
        "promrelay_docker_daemon_error{source=\"containers\",kind=\"unreachable\"} 1",
        "promrelay_docker_containers{source=\"containers\"} 0",
    ] {
        assert!(
            page.contains(&format!("{line}\n")),
            "{line} missing:\n{page}"
        );
    }

    // The docker source's own page says why it has none.
    let reply = get(&agent, "/sources/containers/metrics", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.text().starts_with(&format!(
            "docker source \"containers\" cannot follow its daemon: cannot connect to the Docker socket {}: ",
            socket.display()
        )),
        "{}",
        reply.text()
    );
    let reply = get(&agent, "/sources/containers/metrics?x=1", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // No container of that name, in listen mode and through the tunnel.
    let reply = get(&agent, "/containers/web-1/metrics", &[SCRAPE]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.text(), "no container named \"web-1\" is scraped\n");
    let request = Request::get("/containers/web-1/metrics")
        .body(Body::empty())
        .unwrap();
    let response = agent.tunnel_router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let index = get(&agent, "/", &[]).await.text();
    assert!(
        index
            .contains("<a href=\"/sources/containers/metrics\">containers</a></td><td>docker</td>"),
        "{index}"
    );
}
