//! Differential test against the real Pushgateway 1.5.1: one scripted
//! sequence of pushes goes to both; after every step the status classes
//! must agree, and so must the pages once each server's own metrics and the
//! values of the push time families (which differ by the clock) are set
//! aside.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use push::proto::{
    self, Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, Quantile, Summary,
    Untyped,
};
use push::PushConfig;
use testkit::{find_program, free_port, http_get, http_request, Daemon, TempDir};

use common::{difference, gzip, sample_set, Server};

/// Pushgateway with the admin API (for the wipe) and without a persistence
/// file, so no earlier run's data can leak in.
fn pushgateway() -> Daemon {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut command = Command::new(find_program("prometheus-pushgateway"));
    command
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-admin-api")
        .arg("--persistence.file=");
    Daemon::start(command, addr, "/-/ready", TempDir::new("pushgateway"))
}

struct Step {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

fn step(what: &'static str, method: &'static str, path: &str, body: impl Into<Vec<u8>>) -> Step {
    Step {
        what,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: body.into(),
    }
}

fn with_header(mut step: Step, name: &'static str, value: &'static str) -> Step {
    step.headers.push((name, value));
    step
}

fn protobuf(
    what: &'static str,
    method: &'static str,
    path: &str,
    families: &[MetricFamily],
) -> Step {
    with_header(
        step(what, method, path, proto::write_delimited(families)),
        "Content-Type",
        proto::CONTENT_TYPE,
    )
}

fn family(
    name: &str,
    kind: proto::MetricType,
    help: Option<&str>,
    metric: Vec<Metric>,
) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_owned()),
        help: help.map(str::to_owned),
        r#type: Some(kind as i32),
        metric,
    }
}

fn counter(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: LabelPair::list(pairs),
        counter: Some(Counter { value: Some(value) }),
        ..Metric::default()
    }
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: LabelPair::list(pairs),
        gauge: Some(Gauge { value: Some(value) }),
        ..Metric::default()
    }
}

fn protobuf_families() -> Vec<MetricFamily> {
    vec![
        family(
            "pb_requests_total",
            proto::MetricType::Counter,
            Some("Requests, from protobuf."),
            vec![
                counter(&[("code", "200")], 1027.0),
                counter(&[("code", "500")], 3.0),
            ],
        ),
        family(
            "pb_temperature",
            proto::MetricType::Gauge,
            None,
            vec![gauge(&[("where", "in \"side\"\n")], -3.25)],
        ),
        family(
            "pb_untyped",
            proto::MetricType::Untyped,
            None,
            vec![Metric {
                untyped: Some(Untyped { value: Some(1e-7) }),
                ..Metric::default()
            }],
        ),
        family(
            "pb_latency_seconds",
            proto::MetricType::Histogram,
            Some("A histogram without its +Inf bucket."),
            vec![Metric {
                label: LabelPair::list(&[("path", "/a")]),
                histogram: Some(Histogram {
                    sample_count: Some(7),
                    sample_sum: Some(2.5),
                    bucket: vec![
                        Bucket {
                            cumulative_count: Some(2),
                            upper_bound: Some(0.1),
                            ..Bucket::default()
                        },
                        Bucket {
                            cumulative_count: Some(5),
                            upper_bound: Some(1.0),
                            ..Bucket::default()
                        },
                    ],
                    ..Histogram::default()
                }),
                ..Metric::default()
            }],
        ),
        family(
            "pb_size_bytes",
            proto::MetricType::Summary,
            None,
            vec![Metric {
                summary: Some(Summary {
                    sample_count: Some(1_234_567),
                    sample_sum: Some(9e9),
                    quantile: vec![
                        Quantile {
                            quantile: Some(0.5),
                            value: Some(100.0),
                        },
                        Quantile {
                            quantile: Some(0.99),
                            value: Some(1e6),
                        },
                    ],
                }),
                ..Metric::default()
            }],
        ),
    ]
}

const TEXT_PAGE: &str = r#"# HELP batch_duration_seconds How long the batch took; a \\ backslash and a \n newline.
# TYPE batch_duration_seconds gauge
batch_duration_seconds{stage="load"} 12.5
batch_duration_seconds{stage="transform",note="a \"quoted\" \\ value"} 1.0e3
# TYPE batch_records_total counter
batch_records_total 1234567
# TYPE batch_size histogram
batch_size_bucket{le="10"} 1
batch_size_bucket{le="100.0"} 3
batch_size_bucket{le="+Inf"} 4
batch_size_sum 250
batch_size_count 4
# TYPE batch_rpc_seconds summary
batch_rpc_seconds{quantile="0.5"} 0.25
batch_rpc_seconds{quantile="0.9"} NaN
batch_rpc_seconds_sum 7
batch_rpc_seconds_count 20
# A free comment.
batch_last_success +Inf
batch_errors{kind="none"} 0
"#;

fn script() -> Vec<Step> {
    let mut duplicate_protobuf = protobuf_families();
    duplicate_protobuf[0]
        .metric
        .push(counter(&[("code", "200")], 5.0));
    let mut timestamped = protobuf_families();
    timestamped[1].metric[0].timestamp_ms = Some(1_700_000_000_000);
    let bad_label = vec![family(
        "pb_good_name",
        proto::MetricType::Gauge,
        None,
        vec![gauge(&[("bad-label", "v")], 1.0)],
    )];
    let mut wrong_kind = protobuf_families();
    wrong_kind[1].metric[0] = counter(&[], 1.0);
    let repeated = vec![
        family(
            "pb_twice",
            proto::MetricType::Gauge,
            None,
            vec![gauge(&[], 1.0)],
        ),
        family(
            "pb_twice",
            proto::MetricType::Gauge,
            None,
            vec![gauge(&[], 2.0)],
        ),
    ];
    vec![
        step("a text page of every type", "PUT", "/metrics/job/batch", TEXT_PAGE),
        step(
            "POST replaces only the pushed families",
            "POST",
            "/metrics/job/batch",
            "# TYPE batch_duration_seconds gauge\nbatch_duration_seconds{stage=\"all\"} 14\nbatch_new 1\n",
        ),
        step(
            "PUT replaces the whole group",
            "PUT",
            "/metrics/job/other/instance/i-1",
            "# TYPE batch_records_total counter\nbatch_records_total 7\nonly_other 1\n",
        ),
        step("PUT again", "PUT", "/metrics/job/other/instance/i-1", "only_other 2\n"),
        protobuf("a protobuf body", "PUT", "/metrics/job/proto/instance/p1", &protobuf_families()),
        protobuf("protobuf, same name twice: the later wins", "PUT", "/metrics/job/twice", &repeated),
        with_header(
            step("a gzip text body", "PUT", "/metrics/job/zipped", gzip(b"zipped_value{a=\"b\"} 42\n")),
            "Content-Encoding",
            "gzip",
        ),
        with_header(
            with_header(
                step(
                    "a gzip protobuf body",
                    "POST",
                    "/metrics/job/zipped",
                    gzip(&proto::write_delimited(&[family(
                        "zipped_pb",
                        proto::MetricType::Gauge,
                        None,
                        vec![gauge(&[], 2.0)],
                    )])),
                ),
                "Content-Encoding",
                "gzip",
            ),
            "Content-Type",
            proto::CONTENT_TYPE,
        ),
        step(
            "base64 job and labels, padding optional, = for empty",
            "PUT",
            "/metrics/job@base64/L2pvYnMvbmlnaHRseQ/path@base64/YS9i/empty@base64/=/padded@base64/YQ==",
            "b64_value 1\n",
        ),
        step("a plain label and an empty one", "PUT", "/metrics/job/plain/zone/eu/blank/", "plain_value 1\n"),
        step(
            "path labels override body labels; a body instance stays",
            "PUT",
            "/metrics/job/override/zone/eu",
            "override_value{job=\"other\",zone=\"us\",instance=\"from-body\",extra=\"x\"} 3\n",
        ),
        step("an empty PUT keeps the group", "PUT", "/metrics/job/plain/zone/eu/blank/", ""),
        step(
            "a type conflict with another group",
            "PUT",
            "/metrics/job/conflict",
            "# TYPE batch_records_total gauge\nbatch_records_total 1\n",
        ),
        step(
            "a type conflict on POST to an existing group",
            "POST",
            "/metrics/job/zipped",
            "# TYPE pb_temperature counter\npb_temperature 1\n",
        ),
        step(
            "a name a histogram's samples use",
            "PUT",
            "/metrics/job/collide",
            "batch_size_count 1\n",
        ),
        step(
            "a duplicate series",
            "PUT",
            "/metrics/job/dup",
            "dup_value{a=\"1\"} 1\ndup_value{a=\"1\"} 2\n",
        ),
        step(
            "a series duplicated by the grouping labels",
            "PUT",
            "/metrics/job/dup",
            "dup_value{job=\"x\"} 1\ndup_value{job=\"y\"} 2\n",
        ),
        protobuf("a duplicate series in protobuf", "PUT", "/metrics/job/proto", &duplicate_protobuf),
        step("a timestamp", "PUT", "/metrics/job/batch", "batch_new 1 1700000000000\n"),
        protobuf("a timestamp in protobuf", "PUT", "/metrics/job/batch", &timestamped),
        step("an invalid metric name", "PUT", "/metrics/job/bad", "1bad 1\n"),
        protobuf("an invalid label name in protobuf", "PUT", "/metrics/job/bad", &bad_label),
        protobuf("a counter in a gauge family", "PUT", "/metrics/job/bad", &wrong_kind),
        step("an unparsable body", "PUT", "/metrics/job/bad", "x{ 1\n"),
        step("a bad value", "PUT", "/metrics/job/bad", "x 0x10\n"),
        step("a reserved label", "PUT", "/metrics/job/bad", "x{__name__=\"y\"} 1\n"),
        step("a second TYPE line", "PUT", "/metrics/job/bad", "# TYPE x gauge\nx 1\n# TYPE x gauge\n"),
        step("TYPE after samples", "PUT", "/metrics/job/bad", "x 1\n# TYPE x gauge\n"),
        step(
            "interleaved samples join their family",
            "PUT",
            "/metrics/job/interleaved",
            "# TYPE il counter\nil{a=\"1\"} 1\nother_il 2\nil{a=\"2\"} 3\n",
        ),
        step(
            "a histogram without +Inf, sum and count",
            "PUT",
            "/metrics/job/partial",
            "# TYPE partial_h histogram\npartial_h_bucket{le=\"1\"} 1\n# TYPE partial_s summary\npartial_s{quantile=\"0.5\"} 2\n",
        ),
        step(
            "a summary under a grouping label quantile",
            "PUT",
            "/metrics/job/q/quantile/5",
            "# TYPE q_s summary\nq_s{quantile=\"0.5\"} 1\n",
        ),
        step("an odd number of path segments", "PUT", "/metrics/job/odd/zone", "x 1\n"),
        step("a reserved path label", "PUT", "/metrics/job/odd/__zone/a", "x 1\n"),
        step("an invalid base64 value", "PUT", "/metrics/job/odd/zone@base64/!!", "x 1\n"),
        step("an empty base64 job", "PUT", "/metrics/job@base64/=", "x 1\n"),
        step("DELETE a group", "DELETE", "/metrics/job/other/instance/i-1", ""),
        step("DELETE a group that is not there", "DELETE", "/metrics/job/nothing", ""),
        step("DELETE with a bad path", "DELETE", "/metrics/job/odd/zone", ""),
        step("POST to a new group", "POST", "/metrics/job/fresh", "fresh_value 1\n"),
        step(
            "a type may change within its only group",
            "PUT",
            "/metrics/job/fresh",
            "# TYPE fresh_value counter\nfresh_value 2\n",
        ),
        step("the admin wipe", "PUT", "/api/v1/admin/wipe", ""),
        step("a push after the wipe", "PUT", "/metrics/job/after", "after_wipe 1\n"),
    ]
}

#[test]
fn pushes_agree_with_pushgateway() {
    let pushgateway = pushgateway();
    let ours = Server::start(PushConfig {
        admin_api: true,
        ..PushConfig::default()
    });
    let mut log = String::new();
    for step in script() {
        let headers: Vec<(&str, &str)> = step.headers.clone();
        let theirs = http_request(
            step.method,
            &pushgateway.url(&step.path),
            &headers,
            &step.body,
        );
        let mine = http_request(step.method, &ours.url(&step.path), &headers, &step.body);
        log.push_str(&format!(
            "{} {} ({}): Pushgateway {} {:?} / promrelay {} {:?}\n",
            step.method,
            step.path,
            step.what,
            theirs.status,
            String::from_utf8_lossy(&theirs.body).trim(),
            mine.status,
            String::from_utf8_lossy(&mine.body).trim(),
        ));
        assert_eq!(
            theirs.status / 100,
            mine.status / 100,
            "{}: status classes differ\n{log}",
            step.what
        );
        let our_page = sample_set(&http_get(&ours.url("/metrics"), &[]).body);
        let mut their_page = sample_set(&http_get(&pushgateway.url("/metrics"), &[]).body);
        // Pushgateway answers a DELETE or a wipe with 202 and applies it
        // just after; ours is applied before the answer.
        let applied_by = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while theirs.status == 202
            && their_page != our_page
            && std::time::Instant::now() < applied_by
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            their_page = sample_set(&http_get(&pushgateway.url("/metrics"), &[]).body);
        }
        assert!(
            their_page == our_page,
            "{}: pages differ\n{}\n{log}",
            step.what,
            difference("Pushgateway", &their_page, "promrelay", &our_page)
        );
    }
    eprintln!("{log}");
}

/// The shape of `/api/v1/metrics` per group: labels, whether the last push
/// succeeded, and per family its type and its metrics' labels.
fn api_shape(body: &[u8]) -> BTreeMap<String, String> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["status"], "success");
    let mut shape = BTreeMap::new();
    for group in json["data"].as_array().unwrap() {
        let labels = group["labels"].to_string();
        let mut parts = vec![format!(
            "last_push_successful={}",
            group["last_push_successful"]
        )];
        for (name, family) in group.as_object().unwrap() {
            if ["labels", "last_push_successful", "expires_at"].contains(&name.as_str()) {
                continue;
            }
            let metrics: Vec<String> = family["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let value = if name.starts_with("push_") {
                        String::new()
                    } else {
                        format!(
                            " value={} sum={} count={} quantiles={} buckets={}",
                            m["value"], m["sum"], m["count"], m["quantiles"], m["buckets"]
                        )
                    };
                    format!("{}{value}", m["labels"])
                })
                .collect();
            parts.push(format!(
                "{name}: type={} help={} metrics={metrics:?}",
                family["type"], family["help"]
            ));
        }
        shape.insert(labels, parts.join("\n"));
    }
    shape
}

#[test]
fn the_json_api_agrees_with_pushgateway() {
    let pushgateway = pushgateway();
    let ours = Server::start(PushConfig::default());
    let mut steps = vec![
        step("text", "PUT", "/metrics/job/batch/instance/b", TEXT_PAGE),
        protobuf(
            "protobuf",
            "PUT",
            "/metrics/job/proto",
            &protobuf_families(),
        ),
        step(
            "failed push",
            "PUT",
            "/metrics/job/failed",
            "batch_records_total{x=\"1\"} 1\n",
        ),
        step(
            "failure after success",
            "PUT",
            "/metrics/job/batch/instance/b",
            "t 1 1\n",
        ),
    ];
    // Both remove a histogram's +Inf when it was pushed without one only in
    // Pushgateway, so the histogram of the protobuf push is left out here.
    steps[1].body = proto::write_delimited(
        &protobuf_families()
            .into_iter()
            .filter(|f| f.name.as_deref() != Some("pb_latency_seconds"))
            .collect::<Vec<_>>(),
    );
    for step in steps {
        let theirs = http_request(
            step.method,
            &pushgateway.url(&step.path),
            &step.headers,
            &step.body,
        );
        let mine = http_request(
            step.method,
            &ours.url(&step.path),
            &step.headers,
            &step.body,
        );
        assert_eq!(theirs.status / 100, mine.status / 100, "{}", step.what);
    }
    let theirs = api_shape(&http_get(&pushgateway.url("/api/v1/metrics"), &[]).body);
    let mine = api_shape(&http_get(&ours.url("/api/v1/metrics"), &[]).body);
    assert_eq!(theirs.len(), 3, "{theirs:#?}");
    for (labels, shape) in &theirs {
        assert_eq!(Some(shape), mine.get(labels), "group {labels}");
    }
    assert_eq!(theirs.len(), mine.len());
}

/// Where promrelay refuses what Pushgateway 1.5.1 takes, on purpose: the
/// page would be invalid. Checked against the real program so the list
/// stays true.
#[test]
fn known_differences_are_refusals_of_invalid_pages() {
    let pushgateway = pushgateway();
    let ours = Server::start(PushConfig::default());
    let bad_name = [family(
        "pb-bad-name",
        proto::MetricType::Gauge,
        None,
        vec![gauge(&[], 1.0)],
    )];
    let steps = [
        // Pushgateway serves `pb-bad-name{...} 1`, which no parser reads.
        protobuf(
            "an invalid metric name in protobuf",
            "PUT",
            "/metrics/job/bad",
            &bad_name,
        ),
    ];
    for step in steps {
        let theirs = http_request(
            step.method,
            &pushgateway.url(&step.path),
            &step.headers,
            &step.body,
        );
        let mine = http_request(
            step.method,
            &ours.url(&step.path),
            &step.headers,
            &step.body,
        );
        assert_eq!(
            (theirs.status, mine.status),
            (200, 400),
            "{}: {mine:?}",
            step.what
        );
        assert!(
            mine.text().contains("is not a valid metric name"),
            "{mine:?}"
        );
        let page = http_get(&pushgateway.url("/metrics"), &[]);
        assert!(exposition::parse(&page.body, exposition::Format::Text).is_err());
    }
}
