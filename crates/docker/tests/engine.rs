//! Discovery against the real Docker engine.
//!
//! No image can be pulled, so each test builds one `FROM scratch` around a
//! static metrics server of ours and runs containers of it under names and
//! a label unique to the test run ([`testkit::docker::Fixture`], which
//! removes them even when an assertion fails). Docker must be available:
//! these tests fail, never skip, without it.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use docker::{
    ContainerScrape, DaemonStatus, Discovery, DockerConfig, DockerError, Origin, ProblemKind,
    Scraper, Targets,
};
use exposition::{Format, LabelSet, SourcePage};
use testkit::docker::{docker, require_docker, Fixture};
use testkit::{wait_for, TempDir};
use tokio::runtime::Runtime;

/// How long discovery may take to notice a change. Generous: the machine
/// is shared; discovery usually takes milliseconds.
const NOTICE: Duration = Duration::from_secs(20);

/// The discovery configuration that sees only `fixture`'s containers.
fn config(fixture: &Fixture) -> DockerConfig {
    let mut config =
        DockerConfig::with_host(&format!("unix://{}", testkit::docker::socket().display()))
            .unwrap();
    config.filters.label = vec![fixture.label()];
    config.reconnect_backoff.min = settings::PromDuration(Duration::from_millis(50));
    config.reconnect_backoff.max = settings::PromDuration(Duration::from_millis(500));
    config
}

fn names(targets: &Targets) -> BTreeSet<String> {
    targets.targets.iter().map(|t| t.name.clone()).collect()
}

fn label<'a>(targets: &'a Targets, name: &str, label: &str) -> Option<&'a str> {
    targets
        .get(name)?
        .labels
        .iter()
        .find(|(n, _)| *n == label)
        .map(|(_, v)| v.as_str())
}

/// Scrapes every target once all of them listen: a container is a target
/// as soon as it runs, which can be a moment before its server listens
/// (Prometheus would see one failed scrape; a test wants pages).
fn scrape_when_listening(
    runtime: &Runtime,
    scraper: &Scraper,
    targets: &Targets,
) -> Vec<ContainerScrape> {
    let mut results = Vec::new();
    wait_for("every container listens", NOTICE, || {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        results = runtime.block_on(scraper.scrape_all(&targets.targets, deadline));
        results
            .iter()
            .all(|r| !matches!(&r.result, Err(e) if e.kind() == "connect"))
    });
    results
}

/// The containers' pages merged as the agent merges sources: one family
/// once, each sample with its container's labels.
fn merged(results: &[ContainerScrape]) -> Vec<u8> {
    let ok: Vec<_> = results
        .iter()
        .filter_map(|r| Some((r, r.result.as_ref().ok()?)))
        .collect();
    let labels: Vec<LabelSet> = ok
        .iter()
        .map(|(r, _)| r.target.label_set(&[("exporter", "docker")]).unwrap())
        .collect();
    let pages: Vec<_> = ok
        .iter()
        .map(|(_, page)| exposition::parse(&page.body, page.format).unwrap())
        .collect();
    let sources: Vec<_> = ok
        .iter()
        .zip(&pages)
        .zip(&labels)
        .map(|(((r, page), parsed), labels)| SourcePage {
            name: &r.target.name,
            format: page.format,
            page: parsed,
            labels,
        })
        .collect();
    let mut out = Vec::new();
    exposition::merge(&sources, Format::Text, &mut out);
    out
}

/// Serves the merged page of the current targets on a local port, as the
/// agent will, until dropped.
struct PageServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PageServer {
    fn start(runtime: &Runtime, discovery: &Discovery, scraper: Scraper) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = runtime.handle().clone();
        let targets = discovery.subscribe();
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut head = [0; 4096];
                let _ = stream.read(&mut head);
                let current = Arc::clone(&targets.borrow());
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                let results = handle.block_on(scraper.scrape_all(&current.targets, deadline));
                let body = merged(&results);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    Format::Text.content_type(),
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        PageServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn replicas_and_a_probed_container_are_followed_through_events() {
    let fixture = Fixture::new("follow");
    let runtime = Runtime::new().unwrap();
    let _in_runtime = runtime.enter();
    let network = fixture.network("net");
    let host_port = testkit::free_port().to_string();
    let project = fixture.run_id();
    let labelled = |replica: &str| {
        vec![
            "--label".to_owned(),
            "prometheus.io/scrape=true".to_owned(),
            "--label".to_owned(),
            "prometheus.io/port=9100".to_owned(),
            "--label".to_owned(),
            format!("com.docker.compose.project={project}"),
            "--label".to_owned(),
            "com.docker.compose.service=web".to_owned(),
            "--env".to_owned(),
            format!("REPLICA={replica}"),
        ]
    };
    let run = |short: &str, args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fixture.run(short, &args)
    };
    // One replica runs before discovery starts: found by the first list.
    let web1_id = run("web-1", &labelled("web-1"));

    let mut config = config(&fixture);
    config.probe_ports = vec![9200];
    config.network = Some(network.clone());
    let discovery = Discovery::start(&config).unwrap();
    let scraper = Scraper::new(&config).unwrap();
    let settled = runtime.block_on(discovery.settled(NOTICE));
    assert_eq!(settled.daemon, DaemonStatus::Connected, "{settled:?}");
    wait_for("the first replica is listed", NOTICE, || {
        discovery.targets().get(&fixture.name("web-1")).is_some()
    });

    // The rest start while discovery follows the event stream.
    let web2_id = run("web-2", &labelled("web-2"));
    let plain_id = run(
        "plain",
        &[
            "--env".into(),
            "PORT=9200".into(),
            "--env".into(),
            "REPLICA=plain".into(),
        ],
    );
    run(
        "hostnet",
        &[
            "--network".into(),
            "host".into(),
            "--label".into(),
            "prometheus.io/scrape=true".into(),
            "--label".into(),
            format!("prometheus.io/port={host_port}"),
            "--env".into(),
            format!("PORT={host_port}"),
            "--env".into(),
            "REPLICA=hostnet".into(),
        ],
    );
    let expected: BTreeSet<String> = ["hostnet", "plain", "web-1", "web-2"]
        .iter()
        .map(|s| fixture.name(s))
        .collect();
    wait_for("all four containers are targets", NOTICE, || {
        names(&discovery.targets()) == expected
    });

    let targets = discovery.targets();
    assert!(targets.problems.is_empty(), "{:?}", targets.problems);
    for (short, id) in [
        ("web-1", &web1_id),
        ("web-2", &web2_id),
        ("plain", &plain_id),
    ] {
        let name = fixture.name(short);
        assert_eq!(label(&targets, &name, "container"), Some(name.as_str()));
        assert_eq!(label(&targets, &name, "container_id"), Some(&id[..12]));
        assert_eq!(label(&targets, &name, "image"), Some(fixture.image()));
    }
    for short in ["web-1", "web-2"] {
        let name = fixture.name(short);
        assert_eq!(label(&targets, &name, "compose_project"), Some(project));
        assert_eq!(label(&targets, &name, "compose_service"), Some("web"));
        assert_eq!(targets.get(&name).unwrap().origin, Origin::Labels);
    }
    let plain = targets.get(&fixture.name("plain")).unwrap();
    assert_eq!(plain.origin, Origin::Probe { port: 9200 });
    assert!(plain.url.ends_with(":9200/metrics"), "{}", plain.url);
    assert_eq!(
        label(&targets, &fixture.name("plain"), "compose_service"),
        None
    );
    let hostnet = targets.get(&fixture.name("hostnet")).unwrap();
    assert_eq!(hostnet.url, format!("http://127.0.0.1:{host_port}/metrics"));

    // Each container's own page, and a merged page that tells them apart.
    let results = scrape_when_listening(&runtime, &scraper, &targets);
    for result in &results {
        let page = result
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", result.target.name));
        let replica = result
            .target
            .name
            .strip_prefix(&format!("{}-", fixture.run_id()))
            .unwrap();
        let text = String::from_utf8_lossy(&page.body);
        assert!(text.contains(&format!("replica=\"{replica}\"")), "{text}");
    }
    let page = merged(&results);
    let text = String::from_utf8_lossy(&page);
    assert_eq!(
        text.matches("# TYPE demo_replica_info gauge").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("demo_replica_info{").count(), 4, "{text}");
    for short in ["web-1", "web-2", "plain", "hostnet"] {
        let name = fixture.name(short);
        assert!(
            text.contains(&format!("exporter=\"docker\",container=\"{name}\"")),
            "{name} missing: {text}"
        );
    }
    let promtool = testkit::promtool_check_metrics(&page);
    assert!(promtool.is_clean(), "{promtool:?}\n{text}");

    // A real Prometheus scrapes the page: the replicas are four series of
    // one metric, none overwriting another.
    let server = PageServer::start(&runtime, &discovery, scraper.clone());
    let prometheus = testkit::prometheus(&format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
         scrape_configs:\n  - job_name: docker\n    static_configs: [{{targets: ['{}']}}]\n",
        server.addr
    ));
    let body = prometheus.wait_for_query(
        "count by (compose_service) (demo_replica_info{exporter=\"docker\"})",
        Duration::from_secs(30),
        |body| {
            body.contains("\"compose_service\":\"web\"},\"value\":[") && body.contains(",\"2\"]")
        },
    );
    assert!(body.contains("\"status\":\"success\""), "{body}");
    prometheus.wait_for_query(
        "count(demo_replica_info{exporter=\"docker\"})",
        Duration::from_secs(30),
        |body| body.contains(",\"4\"]"),
    );
    drop(prometheus);
    drop(server);

    // Joining the configured network moves the address there.
    let before = targets.get(&fixture.name("web-1")).unwrap().url.clone();
    docker(&["network", "connect", &network, &fixture.name("web-1")]);
    let ip = docker(&[
        "inspect",
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        &fixture.name("web-1"),
    ]);
    let after = format!("http://{ip}:9100/metrics");
    assert_ne!(before, after);
    wait_for("the network connect is noticed", NOTICE, || {
        discovery
            .targets()
            .get(&fixture.name("web-1"))
            .is_some_and(|t| t.url == after)
    });

    // A rename is followed.
    docker(&["rename", &fixture.name("web-1"), &fixture.name("web-1b")]);
    wait_for("the rename is noticed", NOTICE, || {
        let targets = discovery.targets();
        targets.get(&fixture.name("web-1")).is_none()
            && label(&targets, &fixture.name("web-1b"), "container_id") == Some(&web1_id[..12])
    });

    // A stopped replica disappears, another one appears.
    docker(&["stop", "--time", "1", &fixture.name("web-2")]);
    wait_for("the stopped replica is gone", NOTICE, || {
        discovery.targets().get(&fixture.name("web-2")).is_none()
    });
    run("web-3", &labelled("web-3"));
    wait_for("the new replica appears", NOTICE, || {
        discovery.targets().get(&fixture.name("web-3")).is_some()
    });
    let targets = discovery.targets();
    let expected: BTreeSet<String> = ["hostnet", "plain", "web-1b", "web-3"]
        .iter()
        .map(|s| fixture.name(s))
        .collect();
    assert_eq!(names(&targets), expected);
    let results = scrape_when_listening(&runtime, &scraper, &targets);
    let web3 = results
        .iter()
        .find(|r| r.target.name == fixture.name("web-3"))
        .unwrap();
    let page = web3.result.as_ref().unwrap();
    assert!(String::from_utf8_lossy(&page.body).contains("replica=\"web-3\""));
}

#[test]
fn bad_labels_and_garbage_pages_are_reported_and_the_rest_served() {
    let fixture = Fixture::new("bad");
    let runtime = Runtime::new().unwrap();
    let _in_runtime = runtime.enter();
    let scrape = ["--label", "prometheus.io/scrape=true"];
    fixture.run(
        "good",
        &[&scrape[..], &["--label", "prometheus.io/port=9100"]].concat(),
    );
    fixture.run(
        "notaport",
        &[&scrape[..], &["--label", "prometheus.io/port=notaport"]].concat(),
    );
    fixture.run(
        "garbage",
        &[
            &scrape[..],
            &[
                "--label",
                "prometheus.io/port=9100",
                "--env",
                "MODE=garbage",
            ],
        ]
        .concat(),
    );
    let config = config(&fixture);
    let discovery = Discovery::start(&config).unwrap();
    let scraper = Scraper::new(&config).unwrap();
    wait_for("the containers are listed", NOTICE, || {
        let targets = discovery.targets();
        targets.targets.len() == 2 && targets.problems.len() == 1
    });
    let targets = discovery.targets();
    let problem = &targets.problems[0];
    assert_eq!(problem.container, fixture.name("notaport"));
    assert_eq!(problem.kind, ProblemKind::BadLabel);
    assert_eq!(
        problem.message,
        "label prometheus.io/port=\"notaport\": not a port number (1-65535)"
    );

    let results = scrape_when_listening(&runtime, &scraper, &targets);
    let outcome: Vec<_> = results
        .iter()
        .map(|r| {
            (
                r.target.name.clone(),
                r.result.as_ref().map(drop).map_err(|e| e.kind()),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        [
            (fixture.name("garbage"), Err("parse")),
            (fixture.name("good"), Ok(())),
        ]
    );
    let error = results[0].result.as_ref().unwrap_err().to_string();
    assert!(error.starts_with("invalid page: "), "{error}");
}

#[test]
fn an_unreachable_socket_is_reported_then_recovered_from() {
    require_docker();
    let runtime = Runtime::new().unwrap();
    let _in_runtime = runtime.enter();
    let dir = TempDir::new("docker-socket");
    let socket = dir.join("docker.sock");
    let mut config = DockerConfig::with_host(&format!("unix://{}", socket.display())).unwrap();
    config.reconnect_backoff.min = settings::PromDuration(Duration::from_millis(50));
    config.reconnect_backoff.max = settings::PromDuration(Duration::from_millis(200));
    // Nothing of this machine is expected: only the fact that it answers.
    config.filters.name = Some("^promrelay-no-such-container$".into());
    let discovery = Discovery::start(&config).unwrap();
    let targets = runtime.block_on(discovery.settled(NOTICE));
    let DaemonStatus::Disconnected(error) = &targets.daemon else {
        panic!("expected a disconnected daemon: {targets:?}");
    };
    assert!(
        matches!(error, DockerError::Unreachable { socket: s, .. } if *s == socket),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot connect to the Docker socket {}: ",
            socket.display()
        )),
        "{text}"
    );
    assert!(targets.targets.is_empty());

    // The daemon appears at that path: discovery finds it by itself.
    std::os::unix::fs::symlink(testkit::docker::socket(), &socket).unwrap();
    wait_for("discovery reconnects", NOTICE, || {
        discovery.targets().daemon == DaemonStatus::Connected
    });
}
