//! `GET /api/v1/metrics` and `GET /api/v1/status` in Pushgateway's JSON
//! shape (`api/v1/api.go`), so its UI-less clients and scripts read them.
//!
//! `/api/v1/metrics` answers one object per live group: `labels` (the
//! grouping key), `last_push_successful`, and per family its `type`,
//! `help`, `time_stamp` (when it was last pushed) and `metrics`; plus, where
//! Pushgateway has nothing to say, `expires_at` with the group's deadline
//! (RFC 3339, absent for groups that never expire). Like Pushgateway, a
//! pushed family named `labels` or `last_push_successful` (or here
//! `expires_at`) would share its key with those fields.
//!
//! Differences: a histogram's `buckets` include `+Inf` even when the push
//! left it out (the store completes histograms when they are pushed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use exposition::{unescape, Format, MetricType};
use serde_json::{json, Map, Value};

use crate::body::{PUSH_FAILURE_TIME, PUSH_TIME};
use crate::format::{float, from_unix_millis, rfc3339};
use crate::group::FamilyView;
use crate::store::{GroupSnapshot, PushStore};

/// `GET /api/v1/metrics`.
pub(crate) async fn metrics(State(store): State<Arc<PushStore>>) -> Response {
    let groups: Vec<Value> = store.groups().iter().map(group_json).collect();
    respond(&json!({"status": "success", "data": groups}))
}

/// `GET /api/v1/status`.
pub(crate) async fn status(State(store): State<Arc<PushStore>>) -> Response {
    let config = store.config();
    let duration = |d: Option<settings::PromDuration>| d.map_or(String::new(), |d| d.to_string());
    let flags = json!({
        "push.default-ttl": duration(config.default_ttl),
        "push.max-ttl": duration(config.max_ttl),
        "push.rules": config.rules.len().to_string(),
        "push.max-body-bytes": config.max_body_bytes.to_string(),
        "push.max-decompressed-bytes": config.max_decompressed_bytes.to_string(),
        "push.max-series-per-group": config.max_series_per_group.to_string(),
        "push.max-groups": config.max_groups.to_string(),
        "push.max-series-total": config.max_series_total.to_string(),
        "web.enable-admin-api": config.admin_api.to_string(),
        "persistence.directory": store.dir().map_or(String::new(), |d| d.display().to_string()),
    });
    respond(&json!({
        "status": "success",
        "data": {
            "flags": flags,
            "start_time": rfc3339(store.started()),
            "build_information": {
                "version": env!("CARGO_PKG_VERSION"),
                "program": "promrelay",
            },
        },
    }))
}

fn respond(value: &Value) -> Response {
    ([(CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn group_json(group: &GroupSnapshot) -> Value {
    let mut object = Map::new();
    let labels: Map<String, Value> = group
        .key
        .iter()
        .map(|(n, v)| (n.to_owned(), Value::from(v)))
        .collect();
    object.insert("labels".to_owned(), Value::Object(labels));
    object.insert(
        "last_push_successful".to_owned(),
        Value::from(group.last_push_successful),
    );
    if let Some(ms) = group.deadline_ms {
        object.insert(
            "expires_at".to_owned(),
            Value::from(rfc3339(from_unix_millis(ms))),
        );
    }
    for family in group.content.families() {
        object.insert(family.name.to_owned(), family_json(&family));
    }
    let sample_labels = parse_labels(&group.sample_labels);
    for (name, value, help) in [
        (PUSH_TIME, group.push_time, crate::store::PUSH_TIME_HELP),
        (
            PUSH_FAILURE_TIME,
            group.failure_time,
            crate::store::PUSH_FAILURE_TIME_HELP,
        ),
    ] {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(value.max(0.0));
        object.insert(
            name.to_owned(),
            json!({
                "time_stamp": rfc3339(at),
                "type": "GAUGE",
                "help": help,
                "metrics": [{"labels": sample_labels.clone(), "value": float(value)}],
            }),
        );
    }
    Value::Object(object)
}

fn type_word(kind: MetricType) -> &'static str {
    match kind {
        MetricType::Counter => "COUNTER",
        MetricType::Gauge => "GAUGE",
        MetricType::Summary => "SUMMARY",
        MetricType::Histogram => "HISTOGRAM",
        _ => "UNTYPED",
    }
}

/// The labels of a canonical label text (`a="x",b="y"`), unescaped.
fn parse_labels(text: &str) -> Map<String, Value> {
    let line = format!("x{{{text}}} 0\n");
    let Ok(page) = exposition::parse(line.as_bytes(), Format::Text) else {
        return Map::new();
    };
    page.samples
        .first()
        .map(|s| {
            s.labels
                .iter()
                .map(|l| {
                    (
                        l.name.to_owned(),
                        Value::from(l.unescaped_value().into_owned()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn family_json(family: &FamilyView<'_>) -> Value {
    let mut object = Map::new();
    object.insert(
        "time_stamp".to_owned(),
        Value::from(rfc3339(from_unix_millis(family.pushed_ms))),
    );
    object.insert("type".to_owned(), Value::from(type_word(family.kind)));
    if let Some(help) = family.help {
        object.insert("help".to_owned(), Value::from(unescape(help, false)));
    }
    object.insert("metrics".to_owned(), Value::Array(metrics_json(family)));
    Value::Object(object)
}

/// One entry per series (per label set for summaries and histograms), as
/// Pushgateway's `makeEncodableMetrics` writes them.
fn metrics_json(family: &FamilyView<'_>) -> Vec<Value> {
    let text = format!(
        "# TYPE {} {}\n{}",
        family.name,
        family.kind.word(Format::Text),
        family.lines
    );
    let Ok(page) = exposition::parse(text.as_bytes(), Format::Text) else {
        return Vec::new();
    };
    let special = match family.kind {
        MetricType::Histogram => Some(("le", "buckets")),
        MetricType::Summary => Some(("quantile", "quantiles")),
        _ => None,
    };
    let Some((point_label, points_key)) = special else {
        return page
            .samples
            .iter()
            .map(|sample| {
                let labels: Map<String, Value> = sample
                    .labels
                    .iter()
                    .map(|l| {
                        (
                            l.name.to_owned(),
                            Value::from(l.unescaped_value().into_owned()),
                        )
                    })
                    .collect();
                json!({"labels": labels, "value": sample.value})
            })
            .collect();
    };
    let mut sets: Vec<Map<String, Value>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for sample in &page.samples {
        let mut labels = Map::new();
        let mut point = None;
        for label in &sample.labels {
            if label.name == point_label {
                point = Some(label.unescaped_value().into_owned());
            } else {
                labels.insert(
                    label.name.to_owned(),
                    Value::from(label.unescaped_value().into_owned()),
                );
            }
        }
        let key = Value::Object(labels.clone()).to_string();
        let slot = *index.entry(key).or_insert_with(|| {
            let mut set = Map::new();
            set.insert("labels".to_owned(), Value::Object(labels));
            set.insert(points_key.to_owned(), Value::Object(Map::new()));
            sets.push(set);
            sets.len() - 1
        });
        let set = &mut sets[slot];
        let suffix = &sample.name[family.name.len().min(sample.name.len())..];
        match (suffix, point) {
            ("_sum", _) => {
                set.insert("sum".to_owned(), Value::from(sample.value));
            }
            ("_count", _) => {
                set.insert("count".to_owned(), Value::from(count_text(sample.value)));
            }
            (_, Some(point)) => {
                let value = if family.kind == MetricType::Histogram {
                    count_text(sample.value)
                } else {
                    sample.value.to_owned()
                };
                if let Some(Value::Object(points)) = set.get_mut(points_key) {
                    points.insert(point, Value::from(value));
                }
            }
            _ => {}
        }
    }
    sets.into_iter().map(Value::Object).collect()
}

/// A count as Pushgateway prints it: counts are integers in its protobuf
/// model, so `1234567`, not the page's `1.234567e+06`.
fn count_text(value: &str) -> String {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(64) => {
            format!("{}", v as u64)
        }
        _ => value.to_owned(),
    }
}
