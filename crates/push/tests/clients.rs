//! Real clients against the push API: Python's `prometheus_client` pushes
//! and deletes, a real Prometheus scrapes the pushed groups with
//! `honor_labels: true`, and a group expires for real.

mod common;

use std::process::Command;
use std::time::Duration;

use push::PushConfig;
use testkit::{http_get, http_request, wait_for};

use common::Server;

const PYTHON: &str = "/usr/bin/python3";

fn python(gateway: &str, snippet: &str) {
    testkit::python_push(gateway, snippet);
}

fn page(server: &Server) -> String {
    http_get(&server.url("/metrics"), &[]).text().to_owned()
}

#[test]
fn python_prometheus_client_pushes_adds_and_deletes() {
    let server = Server::start(PushConfig::default());
    let gateway = server.addr.to_string();
    // A value with a slash goes base64, an empty one as `@base64/=`.
    let key = "grouping_key={'instance': 'host-1', 'path': 'a/b c', 'empty': ''}";
    python(
        &gateway,
        &format!(
            "g = Gauge('py_last_success', 'Last success.', registry=registry)\n\
             g.set(1700000000)\n\
             c = Counter('py_records', 'Records.', ['kind'], registry=registry)\n\
             c.labels('x').inc(42)\n\
             h = Histogram('py_duration_seconds', 'Duration.', buckets=[0.5, 5], registry=registry)\n\
             h.observe(1.5)\n\
             push_to_gateway(gateway, job='py-batch', registry=registry, {key})"
        ),
    );
    let text = page(&server);
    let labels = "empty=\"\",instance=\"host-1\",job=\"py-batch\",path=\"a/b c\"";
    for line in [
        format!("py_last_success{{{labels}}} 1.7e+09\n"),
        "py_records_total{empty=\"\",instance=\"host-1\",job=\"py-batch\",kind=\"x\",path=\"a/b c\"} 42\n".to_owned(),
        format!("py_duration_seconds_bucket{{{labels},le=\"5\"}} 1\n"),
        format!("py_duration_seconds_count{{{labels}}} 1\n"),
    ] {
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
    let parsed = testkit::python_parse(text.as_bytes(), testkit::PythonParser::Text).unwrap();
    assert_eq!(parsed.type_of("py_duration_seconds"), Some("histogram"));

    // pushadd (POST) keeps the other families.
    python(
        &gateway,
        &format!(
            "g = Gauge('py_extra', 'Extra.', registry=registry)\n\
             g.set(7)\n\
             pushadd_to_gateway(gateway, job='py-batch', registry=registry, {key})"
        ),
    );
    let text = page(&server);
    assert!(
        text.contains(&format!("py_extra{{{labels}}} 7\n")),
        "{text}"
    );
    assert!(text.contains("py_last_success{"), "{text}");

    // push (PUT) replaces the group.
    python(
        &gateway,
        &format!(
            "g = Gauge('py_extra', 'Extra.', registry=registry)\n\
             g.set(8)\n\
             push_to_gateway(gateway, job='py-batch', registry=registry, {key})"
        ),
    );
    let text = page(&server);
    assert!(
        text.contains(&format!("py_extra{{{labels}}} 8\n")),
        "{text}"
    );
    assert!(!text.contains("py_last_success{"), "{text}");

    // A push the store refuses makes the client raise.
    let refused = Command::new(PYTHON)
        .args([
            "-c",
            "import sys\n\
             from prometheus_client import CollectorRegistry, Histogram, push_to_gateway\n\
             r = CollectorRegistry()\n\
             Histogram('py_extra', 'Now a histogram.', registry=r).observe(1)\n\
             push_to_gateway(sys.argv[1], job='other', registry=r)\n",
            &gateway,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("400"), "{stderr}");

    python(
        &gateway,
        &format!("delete_from_gateway(gateway, job='py-batch', {key})"),
    );
    let text = page(&server);
    assert!(!text.contains("py-batch"), "{text}");
}

#[test]
fn prometheus_scrapes_pushed_groups_with_honor_labels() {
    let server = Server::start(PushConfig::default());
    let put = http_request(
        "PUT",
        &server.url("/metrics/job/nightly-backup/instance/db-1"),
        &[],
        b"# TYPE backup_size_bytes gauge\nbackup_size_bytes{volume=\"data\"} 123456\n",
    );
    assert_eq!(put.status, 200, "{put:?}");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: promrelay-push\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['{}']\n",
        server.addr
    );
    let prometheus = testkit::prometheus(&config);
    let body = prometheus.wait_for_query(
        r#"backup_size_bytes{job="nightly-backup",instance="db-1",volume="data"}"#,
        Duration::from_secs(30),
        |body| body.contains(r#""123456"]"#),
    );
    assert!(body.contains(r#""status":"success""#), "{body}");
    // push_time_seconds comes with the group's labels too.
    prometheus.wait_has_result(r#"push_time_seconds{job="nightly-backup",instance="db-1"} > 0"#);
    prometheus.wait_up("promrelay-push", "1");
}

#[test]
fn a_group_pushed_with_a_ttl_expires() {
    let server = Server::start(PushConfig::default());
    let put = http_request(
        "PUT",
        &server.url("/metrics/job/short?ttl=2s"),
        &[],
        b"short_lived 1\n",
    );
    assert_eq!(put.status, 200, "{put:?}");
    let put = http_request(
        "PUT",
        &server.url("/metrics/job/header"),
        &[("X-Push-TTL", "2s")],
        b"header_lived 1\n",
    );
    assert_eq!(put.status, 200, "{put:?}");
    http_request(
        "PUT",
        &server.url("/metrics/job/forever"),
        &[],
        b"forever 1\n",
    );
    let api = || {
        http_get(&server.url("/api/v1/metrics"), &[])
            .text()
            .to_owned()
    };
    let json: serde_json::Value = serde_json::from_str(&api()).unwrap();
    let groups = json["data"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for group in groups {
        let expires = &group["expires_at"];
        if group["labels"]["job"] == "forever" {
            assert!(expires.is_null(), "{group}");
        } else {
            assert!(
                expires.as_str().is_some_and(|t| t.ends_with('Z')),
                "{group}"
            );
        }
    }
    assert!(page(&server).contains("short_lived{"));
    wait_for(
        "the groups pushed with a TTL expire",
        Duration::from_secs(10),
        || !page(&server).contains("short_lived{") && !page(&server).contains("header_lived{"),
    );
    let text = api();
    assert!(
        !text.contains("\"short\"") && !text.contains("\"header\""),
        "{text}"
    );
    assert!(text.contains("\"forever\""), "{text}");
    wait_for("the expiries are counted", Duration::from_secs(5), || {
        page(&server).contains("promrelay_push_expired_groups_total 2\n")
    });
}
