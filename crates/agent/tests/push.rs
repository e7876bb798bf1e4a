//! A push source: Pushgateway pushes to the agent, served on its merged
//! page until they expire, kept on disk across restarts, and settings that
//! take effect only at restart.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::config::Config;
use agent::service::Agent;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn call(agent: &Arc<Agent>, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "text/plain; version=0.0.4")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = agent.router().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn page(agent: &Arc<Agent>) -> String {
    let (status, page) = call(agent, "GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    page
}

/// An agent whose configuration is whatever `yaml` holds at each (re)load.
fn start(yaml: &Arc<Mutex<String>>, storage: Option<&Path>) -> Result<Arc<Agent>, String> {
    let yaml = Arc::clone(yaml);
    Agent::start_with_storage(
        Box::new(move || Config::from_yaml(&yaml.lock().unwrap(), Path::new("agent.yml"))),
        storage,
    )
    .map_err(|e| e.to_string())
}

const CONFIG: &str = "sources:\n\
- name: script\n  exec: {command: /bin/echo, args: [script_ok, '1']}\n\
- name: jobs\n  labels: {site: lab}\n  push:\n    max_ttl: 1h\n    rules:\n    - match: {job: 'short-.*'}\n      ttl: 1s\n";

#[tokio::test(flavor = "multi_thread")]
async fn pushed_groups_join_the_merged_page_and_expire() {
    let storage = testkit::TempDir::new("agent-storage");
    let yaml = Arc::new(Mutex::new(CONFIG.to_owned()));
    let agent = start(&yaml, Some(storage.path())).unwrap();

    let body =
        "# HELP backup_ok Whether the backup succeeded.\n# TYPE backup_ok gauge\nbackup_ok 1\n";
    let (status, text) = call(&agent, "PUT", "/metrics/job/backup/instance/db-1", body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, _) = call(&agent, "PUT", "/metrics/job/short-lived", "tick 1\n").await;
    assert_eq!(status, StatusCode::OK);

    let merged = page(&agent).await;
    assert!(
        merged.contains(
            "backup_ok{exporter=\"jobs\",site=\"lab\",instance=\"db-1\",job=\"backup\"} 1"
        ),
        "{merged}"
    );
    assert!(
        merged.contains("tick{exporter=\"jobs\",site=\"lab\",instance=\"\",job=\"short-lived\"} 1")
    );
    assert!(merged.contains(
        "push_time_seconds{exporter=\"jobs\",site=\"lab\",instance=\"db-1\",job=\"backup\"}"
    ));
    assert!(merged.contains("script_ok{exporter=\"script\"} 1"));
    assert!(merged.contains("promrelay_source_up{source=\"jobs\"} 1"));
    // The store's own series are the agent's.
    assert!(merged.contains("promrelay_push_groups 2"), "{merged}");
    let format = exposition::Format::Text;
    let report = exposition::validate_strict(
        &exposition::parse(merged.as_bytes(), format).unwrap(),
        format,
    );
    assert!(report.is_empty(), "{report:?}");

    // The source's own page is the groups as Pushgateway serves them.
    let (status, own) = call(&agent, "GET", "/sources/jobs/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        own.contains("backup_ok{instance=\"db-1\",job=\"backup\"} 1"),
        "{own}"
    );
    let (status, api) = call(&agent, "GET", "/api/v1/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(api.contains("expires_at"), "{api}");

    // The rule gave `short-lived` one second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let merged = page(&agent).await;
    assert!(!merged.contains("tick{"), "{merged}");
    assert!(merged.contains("backup_ok{"));

    // A refused push changes nothing and says why.
    let (status, text) = call(
        &agent,
        "PUT",
        "/metrics/job/backup/instance/db-1",
        "backup_ok{",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!text.is_empty());
    assert!(page(&agent).await.contains("backup_ok{"));

    let (status, _) = call(&agent, "DELETE", "/metrics/job/backup/instance/db-1", "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(!page(&agent).await.contains("backup_ok{"));
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_pushes_are_there_after_a_restart() {
    let storage = testkit::TempDir::new("agent-storage");
    let yaml = Arc::new(Mutex::new(CONFIG.to_owned()));
    let agent = start(&yaml, Some(storage.path())).unwrap();
    for i in 0..5 {
        let path = format!("/metrics/job/kept/instance/i{i}");
        assert_eq!(
            call(&agent, "PUT", &path, &format!("kept {i}\n")).await.0,
            StatusCode::OK
        );
    }
    drop(agent);

    let agent = start(&yaml, Some(storage.path())).unwrap();
    let merged = page(&agent).await;
    for i in 0..5 {
        assert!(
            merged.contains(&format!(
                "kept{{exporter=\"jobs\",site=\"lab\",instance=\"i{i}\",job=\"kept\"}} {i}"
            )),
            "group {i} lost:\n{merged}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_source_needs_a_storage_directory() {
    let yaml = Arc::new(Mutex::new(CONFIG.to_owned()));
    let error = start(&yaml, None).unwrap_err();
    assert!(error.contains("sources[1] \"jobs\""), "{error}");
    assert!(error.contains("--storage.path"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_push_source_per_agent() {
    let yaml = "sources:\n- name: a\n  push:\n- name: b\n  push: {}\n";
    let error = Config::from_yaml(yaml, Path::new("agent.yml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("sources[1] \"b\": push"), "{error}");
    assert!(error.contains("\"a\" already takes the pushes"), "{error}");
    let yaml = "sources:\n- name: a\n  push: {max_ttl: 1m, default_ttl: 1h}\n";
    let error = Config::from_yaml(yaml, Path::new("agent.yml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("sources[0] \"a\": push.default_ttl"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_settings_change_only_at_restart() {
    let storage = testkit::TempDir::new("agent-storage");
    let yaml = Arc::new(Mutex::new(CONFIG.to_owned()));
    let agent = start(&yaml, Some(storage.path())).unwrap();
    assert_eq!(
        call(&agent, "PUT", "/metrics/job/backup", "backup_ok 1\n")
            .await
            .0,
        StatusCode::OK
    );

    // Another TTL: refused, and the running store keeps serving.
    *yaml.lock().unwrap() = CONFIG.replace("ttl: 1s", "ttl: 5m");
    let (status, text) = call(&agent, "POST", "/-/reload", "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("sources[1] \"jobs\": push"), "{text}");
    assert!(text.contains("restart"), "{text}");
    // Removing the source: refused too.
    *yaml.lock().unwrap() = "sources: []\n".to_owned();
    let (status, text) = call(&agent, "POST", "/-/reload", "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("push source is removed"), "{text}");
    assert!(page(&agent)
        .await
        .contains("backup_ok{exporter=\"jobs\",site=\"lab\""));

    // New labels and a new name are a reload like any other.
    *yaml.lock().unwrap() = CONFIG
        .replace("name: jobs", "name: pushed")
        .replace("site: lab", "site: lab2");
    let (status, text) = call(&agent, "POST", "/-/reload", "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let merged = page(&agent).await;
    assert!(
        merged.contains(
            "backup_ok{exporter=\"pushed\",site=\"lab2\",instance=\"\",job=\"backup\"} 1"
        ),
        "{merged}"
    );
}
