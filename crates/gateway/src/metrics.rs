//! The gateway's own metrics: counters kept in atomics and written out by
//! hand in the Prometheus text format on `GET /metrics`.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::registry::AgentCounts;

/// How a scrape forwarded to an agent ended, in path mode or (per agent)
/// in fan-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeOutcome {
    /// The agent answered (whatever its status).
    Ok,
    /// No agent of that name is known (404).
    Unknown,
    /// The agent is known but not connected (503).
    Disconnected,
    /// The agent did not answer before the deadline (504).
    Timeout,
    /// The tunnel failed (502/503); in fan-in also a non-200 status, an
    /// unparsable or too large page.
    Error,
}

impl ScrapeOutcome {
    const ALL: [ScrapeOutcome; 5] = [
        ScrapeOutcome::Ok,
        ScrapeOutcome::Unknown,
        ScrapeOutcome::Disconnected,
        ScrapeOutcome::Timeout,
        ScrapeOutcome::Error,
    ];

    /// The value of the `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            ScrapeOutcome::Ok => "ok",
            ScrapeOutcome::Unknown => "unknown",
            ScrapeOutcome::Disconnected => "disconnected",
            ScrapeOutcome::Timeout => "timeout",
            ScrapeOutcome::Error => "error",
        }
    }

    fn index(self) -> usize {
        match self {
            ScrapeOutcome::Ok => 0,
            ScrapeOutcome::Unknown => 1,
            ScrapeOutcome::Disconnected => 2,
            ScrapeOutcome::Timeout => 3,
            ScrapeOutcome::Error => 4,
        }
    }
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    scrapes: [AtomicU64; 5],
    fanin_scrapes: [AtomicU64; 5],
    tunnel_connects: AtomicU64,
    auth_failures: AtomicU64,
    /// 1 until a reload fails, as Prometheus's own
    /// `prometheus_config_last_reload_successful`.
    reload_failed: AtomicU64,
    reloads: [AtomicU64; 2],
}

impl GatewayMetrics {
    /// Counts one path-mode scrape.
    pub fn scrape(&self, outcome: ScrapeOutcome) {
        self.scrapes[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one agent's part of a fan-in scrape (`/metrics/connected`).
    pub fn fanin_scrape(&self, outcome: ScrapeOutcome) {
        self.fanin_scrapes[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The number of agent scrapes of fan-in requests with `outcome` so far.
    pub fn fanin_scrapes(&self, outcome: ScrapeOutcome) -> u64 {
        self.fanin_scrapes[outcome.index()].load(Ordering::Relaxed)
    }

    /// Counts one established and registered tunnel.
    pub fn tunnel_connected(&self) {
        self.tunnel_connects.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one upgrade refused for bad or missing credentials.
    pub fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one configuration reload.
    pub fn config_reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        self.reload_failed.store(u64::from(!ok), Ordering::Relaxed);
    }

    /// The number of path-mode scrapes with `outcome` so far.
    pub fn scrapes(&self, outcome: ScrapeOutcome) -> u64 {
        self.scrapes[outcome.index()].load(Ordering::Relaxed)
    }

    /// Writes all metrics, with the registry's `counts`, in the Prometheus
    /// text exposition format (version 0.0.4).
    pub fn render(&self, counts: AgentCounts) -> String {
        let mut out = String::with_capacity(1024);
        let _ = writeln!(
            out,
            "# HELP promrelay_gateway_agents_connected Agents with a live tunnel.\n\
             # TYPE promrelay_gateway_agents_connected gauge\n\
             promrelay_gateway_agents_connected {}",
            counts.connected
        );
        let _ = writeln!(
            out,
            "# HELP promrelay_gateway_agents_known Agents connected now or within the retention period.\n\
             # TYPE promrelay_gateway_agents_known gauge\n\
             promrelay_gateway_agents_known {}",
            counts.known
        );
        out.push_str(
            "# HELP promrelay_gateway_scrapes_total Scrapes forwarded to agents, by route and outcome.\n\
             # TYPE promrelay_gateway_scrapes_total counter\n",
        );
        for outcome in ScrapeOutcome::ALL {
            let _ = writeln!(
                out,
                "promrelay_gateway_scrapes_total{{route=\"path\",outcome=\"{}\"}} {}",
                outcome.label(),
                self.scrapes(outcome)
            );
        }
        for outcome in ScrapeOutcome::ALL {
            let _ = writeln!(
                out,
                "promrelay_gateway_scrapes_total{{route=\"fanin\",outcome=\"{}\"}} {}",
                outcome.label(),
                self.fanin_scrapes(outcome)
            );
        }
        let _ = writeln!(
            out,
            "# HELP promrelay_gateway_tunnel_connects_total Tunnels established and registered.\n\
             # TYPE promrelay_gateway_tunnel_connects_total counter\n\
             promrelay_gateway_tunnel_connects_total {}",
            self.tunnel_connects.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP promrelay_gateway_auth_failures_total Tunnel upgrades refused for bad or missing credentials.\n\
             # TYPE promrelay_gateway_auth_failures_total counter\n\
             promrelay_gateway_auth_failures_total {}",
            self.auth_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP promrelay_gateway_config_last_reload_successful Whether the last configuration reload succeeded.\n\
             # TYPE promrelay_gateway_config_last_reload_successful gauge\n\
             promrelay_gateway_config_last_reload_successful {}\n\
             # HELP promrelay_gateway_config_reloads_total Configuration reloads, by result.\n\
             # TYPE promrelay_gateway_config_reloads_total counter\n\
             promrelay_gateway_config_reloads_total{{result=\"success\"}} {}\n\
             promrelay_gateway_config_reloads_total{{result=\"failure\"}} {}",
            1 - self.reload_failed.load(Ordering::Relaxed),
            self.reloads[0].load(Ordering::Relaxed),
            self.reloads[1].load(Ordering::Relaxed),
        );
        out
    }
}
