//! The gateway under test: the real `promrelay gateway` binary in its own
//! process, on a free loopback port, with a token file of the bench's.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{free_port, Daemon, TempDir};

/// The token every simulated or real agent of a benchmark presents.
pub(crate) const AGENT_TOKEN: &str = "promrelay-bench-agent-token";

/// The header Prometheus sets to the scrape timeout, in seconds.
pub(crate) const SCRAPE_TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";

/// A running `promrelay gateway`, killed when dropped.
#[derive(Debug)]
pub(crate) struct GatewayProcess {
    daemon: Daemon,
}

impl GatewayProcess {
    /// Starts the gateway and waits until it is ready. It inherits this
    /// process's limits, the open-file limit included.
    pub(crate) fn start(promrelay: &Path) -> GatewayProcess {
        let dir = TempDir::new("bench-gateway");
        let token_file = dir.join("agent-token");
        std::fs::write(&token_file, format!("{AGENT_TOKEN}\n")).expect("write the token file");
        let addr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let mut command = Command::new(promrelay);
        command
            .arg("gateway")
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--agents.token-file={}", token_file.display()))
            .arg("--log.level=warn");
        GatewayProcess {
            daemon: Daemon::start(command, addr, "/-/ready", dir),
        }
    }

    /// `http://<addr><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        self.daemon.url(path)
    }

    /// The URL agents dial.
    pub(crate) fn tunnel_url(&self) -> String {
        self.url("/tunnel")
    }

    /// The gateway's process id, for [`crate::process`].
    pub(crate) fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// How many agents `/clients` lists as connected.
    pub(crate) async fn listed_agents(&self, client: &reqwest::Client) -> Result<usize, String> {
        let url = self.url("/clients");
        let body = client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {url}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        // One `{"targets":[...],"labels":null}` group per agent.
        Ok(count_occurrences(&body, b"\"targets\""))
    }

    /// The value of one series of the gateway's own `/metrics`, given as
    /// its name and labels exactly as the gateway writes them; `None` when
    /// the gateway does not have it.
    pub(crate) async fn own_series(&self, client: &reqwest::Client, series: &str) -> Option<f64> {
        let url = self.url("/metrics");
        let page = client.get(&url).send().await.ok()?.text().await.ok()?;
        page.lines().find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
    }

    /// Waits until `/clients` lists at least `agents` agents.
    pub(crate) async fn wait_for_agents(
        &self,
        client: &reqwest::Client,
        agents: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let listed = self.listed_agents(client).await?;
            if listed >= agents {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the gateway lists {listed} of {agents} agents after {timeout:?}; \
                     its stderr:\n{}",
                    self.daemon.stderr()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How often `needle` occurs in `haystack`, without overlaps.
fn count_occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    let mut count = 0;
    let mut rest = haystack;
    while let Some(at) = rest
        .windows(needle.len())
        .position(|window| window == needle)
    {
        count += 1;
        rest = &rest[at + needle.len()..];
    }
    count
}
