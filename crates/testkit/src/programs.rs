//! Starters for the stock Prometheus programs the tests run against.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::daemon::{find_program, free_port, Daemon};
use crate::http::{http_get, percent_encode};
use crate::tempdir::TempDir;

fn local_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// Starts `prometheus-node-exporter` (the Debian name of `node_exporter`) on
/// a free local port with its default collectors, ready once `/` answers.
///
/// Its `/metrics` page is a realistic ~1000-series page with `go_*`,
/// `process_*` and `node_*` families, served with chunked encoding.
///
/// # Panics
///
/// If the program is missing or does not become ready.
pub fn node_exporter() -> Daemon {
    let addr = local_addr();
    let mut command = Command::new(find_program("prometheus-node-exporter"));
    command.arg(format!("--web.listen-address={addr}"));
    Daemon::start(command, addr, "/", TempDir::new("node-exporter"))
}

/// Starts `prometheus-pushgateway` on a free local port without
/// persistence, ready once `/-/ready` answers.
///
/// # Panics
///
/// If the program is missing or does not become ready.
pub fn pushgateway() -> Daemon {
    let addr = local_addr();
    let mut command = Command::new(find_program("prometheus-pushgateway"));
    command.arg(format!("--web.listen-address={addr}"));
    Daemon::start(command, addr, "/-/ready", TempDir::new("pushgateway"))
}

/// Starts `tinyproxy`, a real HTTP proxy that tunnels `CONNECT`, on a free
/// local port, accepting clients from loopback only; ready once its port
/// accepts connections. With `basic_auth` it requires those credentials
/// (`Proxy-Authorization`). It logs every connection and request line to
/// its stdout ([`Daemon::stdout`]), e.g. `CONNECT 127.0.0.1:9438 HTTP/1.1`.
///
/// # Panics
///
/// If the program is missing or does not become ready.
pub fn tinyproxy(basic_auth: Option<(&str, &str)>) -> Daemon {
    let addr = local_addr();
    let dir = TempDir::new("tinyproxy");
    let mut config = format!(
        "Port {}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nMaxClients 64\nLogLevel Connect\n",
        addr.port()
    );
    if let Some((user, password)) = basic_auth {
        config.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    let config_path = dir.join("tinyproxy.conf");
    fs::write(&config_path, config)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
    let mut command = Command::new(find_program("tinyproxy"));
    // -d: stay in the foreground and log to stdout.
    command.arg("-d").arg("-c").arg(&config_path);
    Daemon::start_tcp(command, addr, dir)
}

/// Starts `prometheus` with `config_yaml` as its configuration file, a fresh
/// TSDB directory and a free local port, ready once `/-/ready` answers.
///
/// Keep `scrape_interval` short in tests (e.g. `1s`) so queries see data
/// quickly.
///
/// # Panics
///
/// If the program is missing, rejects the configuration or does not become
/// ready.
pub fn prometheus(config_yaml: &str) -> Prometheus {
    let addr = local_addr();
    let dir = TempDir::new("prometheus");
    let config = dir.join("prometheus.yml");
    fs::write(&config, config_yaml)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
    let mut command = Command::new(find_program("prometheus"));
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"));
    Prometheus {
        daemon: Daemon::start(command, addr, "/-/ready", dir),
        config,
    }
}

/// A running Prometheus server, started by [`prometheus`].
#[derive(Debug)]
pub struct Prometheus {
    daemon: Daemon,
    config: PathBuf,
}

impl Prometheus {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    /// `http://{addr}{path}`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        self.daemon.url(path)
    }

    /// The path of the configuration file it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The underlying process guard (directory, logs, pid).
    pub fn daemon(&self) -> &Daemon {
        &self.daemon
    }

    /// The underlying process guard, mutably (e.g. to [`Daemon::kill`] it).
    pub fn daemon_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    /// Runs an instant query and returns the raw JSON body of
    /// `/api/v1/query`, whatever the HTTP status (errors such as a bad query
    /// come back as `"status":"error"` JSON).
    ///
    /// # Panics
    ///
    /// If the HTTP exchange fails or the body is not UTF-8.
    pub fn query(&self, promql: &str) -> String {
        let url = self.url(&format!("/api/v1/query?query={}", percent_encode(promql)));
        http_get(&url, &[]).text().to_owned()
    }

    /// Waits (up to 15 s) until `promql` has at least one result.
    ///
    /// # Panics
    ///
    /// If it has none by then.
    pub fn wait_has_result(&self, promql: &str) {
        self.wait_for_query(promql, Duration::from_secs(15), |body| {
            body.contains("\"result\":[{")
        });
    }

    /// Waits (up to 30 s) until `up{job="<job>"}` is `value` (`"0"` or `"1"`).
    ///
    /// # Panics
    ///
    /// If it is not by then.
    pub fn wait_up(&self, job: &str, value: &str) {
        let expected = format!("\"{value}\"]");
        self.wait_for_query(
            &format!("up{{job=\"{job}\"}}"),
            Duration::from_secs(30),
            |body| body.contains(&expected),
        );
    }

    /// Repeats [`query`](Self::query) until `done` accepts the body, and
    /// returns that body.
    ///
    /// # Panics
    ///
    /// If `done` has not accepted a body after `timeout`; the message
    /// includes the last body.
    pub fn wait_for_query(
        &self,
        promql: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.query(promql);
            if done(&body) {
                return body;
            }
            if Instant::now() >= deadline {
                panic!("query `{promql}` did not reach the expected state within {timeout:?}; last body: {body}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::http_request;

    #[test]
    fn node_exporter_serves_a_realistic_page() {
        let exporter = node_exporter();
        let response = http_get(&exporter.url("/metrics"), &[]);
        assert_eq!(response.status, 200);
        let page = response.text();
        assert!(page.contains("\nnode_"), "no node_ series");
        assert!(page.contains("\ngo_goroutines "), "no go_goroutines");
        assert!(page.contains("\nprocess_"), "no process_ series");
        let samples = page.lines().filter(|l| !l.starts_with('#')).count();
        assert!(samples > 200, "only {samples} samples");

        // The stock page parses everywhere, but is not lint-clean: promtool
        // flags names like `node_memory_MemFree_bytes` (camelCase).
        let promtool = crate::promtool_check_metrics(&response.body);
        assert!(promtool.parse_ok(), "{promtool:?}");
        let python = crate::python_parse(&response.body, crate::PythonParser::Text).unwrap();
        assert_eq!(python.type_of("go_goroutines"), Some("gauge"));
        assert_eq!(python.samples, samples);
    }

    #[test]
    fn pushgateway_round_trips_a_pushed_group() {
        let gateway = pushgateway();
        let body = b"# TYPE testkit_pushed gauge\ntestkit_pushed{a=\"b\"} 42\n";
        let put = http_request("PUT", &gateway.url("/metrics/job/x"), &[], body);
        assert_eq!(put.status, 200, "{put:?}");
        let page = http_get(&gateway.url("/metrics"), &[]);
        assert_eq!(page.status, 200);
        assert!(
            page.text()
                .contains("testkit_pushed{a=\"b\",instance=\"\",job=\"x\"} 42\n"),
            "{page:?}"
        );
        let delete = http_request("DELETE", &gateway.url("/metrics/job/x"), &[], &[]);
        assert_eq!(delete.status, 202, "{delete:?}");
        // 202: Pushgateway applies a delete after answering it.
        crate::wait_for(
            "Pushgateway to apply the delete",
            std::time::Duration::from_secs(10),
            || {
                !http_get(&gateway.url("/metrics"), &[])
                    .text()
                    .contains("testkit_pushed")
            },
        );
    }

    #[test]
    fn prometheus_scrapes_node_exporter() {
        let exporter = node_exporter();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{}']\n",
            exporter.addr()
        );
        let prom = prometheus(&config);
        assert!(prom.config_path().is_file());
        let body = prom.wait_for_query(r#"up{job="node"}"#, Duration::from_secs(20), |body| {
            body.contains(r#""value":["#) && body.contains(r#","1"]"#)
        });
        assert!(body.contains(r#""status":"success""#), "{body}");
        let bad = prom.query("up{");
        assert!(bad.contains(r#""status":"error""#), "{bad}");
    }
}
