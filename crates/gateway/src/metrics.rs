//! The gateway's own metrics: counters kept in atomics and written out by
//! hand in the Prometheus text format on `GET /metrics`.
//!
//! | series | what |
//! | --- | --- |
//! | `promrelay_gateway_agents_connected`, `_agents_known` | the registry |
//! | `promrelay_gateway_pushprox_clients` | PushProx clients seen within their retention |
//! | `promrelay_gateway_scrapes_total{route,outcome}` | scrapes forwarded to agents |
//! | `promrelay_gateway_scrape_duration_seconds{route}` | how long they took, to the last byte |
//! | `promrelay_gateway_scrape_bytes_total{route}` | page bytes received from agents, as they crossed the tunnel (compressed when they were) |
//! | `promrelay_gateway_tunnel_connects_total` | tunnels established and registered |
//! | `promrelay_gateway_tunnel_replacements_total` | tunnels that replaced the same agent's older one (reconnects seen before the old tunnel died) |
//! | `promrelay_gateway_tunnel_disconnects_total` | tunnels ended |
//! | `promrelay_gateway_auth_failures_total` | credentials refused |
//! | `promrelay_gateway_config_*` | reloads |
//!
//! `route` is `path`, `proxy_url`, `fanin` or `pushprox` ([`ScrapeRoute`]).

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

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
        self as usize
    }
}

/// The way a scrape reached an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeRoute {
    /// `/agents/<agent>/metrics`, `/agents/<agent>/sources/<source>/metrics`
    /// and `/agents/<agent>/containers/<container>/metrics`.
    Path,
    /// Absolute-form `GET http://<agent>:<port>/…` through a tunnel.
    ProxyUrl,
    /// One agent's part of `/metrics/connected`.
    Fanin,
    /// Absolute-form `GET` through a PushProx client's poll.
    Pushprox,
}

impl ScrapeRoute {
    const ALL: [ScrapeRoute; 4] = [
        ScrapeRoute::Path,
        ScrapeRoute::ProxyUrl,
        ScrapeRoute::Fanin,
        ScrapeRoute::Pushprox,
    ];

    /// The value of the `route` label.
    pub fn label(self) -> &'static str {
        match self {
            ScrapeRoute::Path => "path",
            ScrapeRoute::ProxyUrl => "proxy_url",
            ScrapeRoute::Fanin => "fanin",
            ScrapeRoute::Pushprox => "pushprox",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the scrape duration buckets, in seconds: from a fast
/// local page to Prometheus's longest usual timeout.
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram of durations, lock-free.
#[derive(Debug, Default)]
struct DurationHistogram {
    /// Per bucket (not cumulative), plus one for `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl DurationHistogram {
    fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[DURATION_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// What the registries hold, for [`GatewayMetrics::render`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Occupancy {
    /// Tunnel agents.
    pub agents: AgentCounts,
    /// PushProx clients seen within their retention.
    pub pushprox_clients: usize,
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    scrapes: [[AtomicU64; 5]; 4],
    durations: [DurationHistogram; 4],
    bytes: [AtomicU64; 4],
    tunnel_connects: AtomicU64,
    tunnel_replacements: AtomicU64,
    tunnel_disconnects: AtomicU64,
    auth_failures: AtomicU64,
    /// 1 after a failed reload, as in Prometheus's own
    /// `prometheus_config_last_reload_successful` (inverted so the default
    /// is "successful").
    reload_failed: AtomicU64,
    reloads: [AtomicU64; 2],
}

impl GatewayMetrics {
    /// Counts one scrape by its route and outcome.
    pub fn scrape(&self, route: ScrapeRoute, outcome: ScrapeOutcome) {
        self.scrapes[route.index()][outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The number of scrapes by `route` with `outcome` so far.
    pub fn scrapes(&self, route: ScrapeRoute, outcome: ScrapeOutcome) -> u64 {
        self.scrapes[route.index()][outcome.index()].load(Ordering::Relaxed)
    }

    /// Records a scrape that was answered: how long it took until its last
    /// byte, and how many page bytes came from the agent.
    pub fn answered(&self, route: ScrapeRoute, duration: Duration, bytes: u64) {
        self.durations[route.index()].observe(duration);
        self.bytes[route.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Page bytes received by `route` so far.
    pub fn bytes(&self, route: ScrapeRoute) -> u64 {
        self.bytes[route.index()].load(Ordering::Relaxed)
    }

    /// Counts one established and registered tunnel; `replaced` when it
    /// took the place of the same agent's older tunnel.
    pub fn tunnel_connected(&self, replaced: bool) {
        self.tunnel_connects.fetch_add(1, Ordering::Relaxed);
        if replaced {
            self.tunnel_replacements.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one tunnel that ended.
    pub fn tunnel_disconnected(&self) {
        self.tunnel_disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request refused for bad or missing credentials.
    pub fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one configuration reload.
    pub fn config_reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        self.reload_failed.store(u64::from(!ok), Ordering::Relaxed);
    }

    /// Writes all metrics, with what the registries hold, in the
    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, occupancy: Occupancy) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        };
        gauge(
            &mut out,
            "promrelay_gateway_agents_connected",
            "Agents with a live tunnel.",
            occupancy.agents.connected as u64,
        );
        gauge(
            &mut out,
            "promrelay_gateway_agents_known",
            "Agents connected now or within the retention period.",
            occupancy.agents.known as u64,
        );
        gauge(
            &mut out,
            "promrelay_gateway_pushprox_clients",
            "PushProx clients that polled within the retention period.",
            occupancy.pushprox_clients as u64,
        );

        out.push_str(
            "# HELP promrelay_gateway_scrapes_total Scrapes forwarded to agents, by route and outcome.\n\
             # TYPE promrelay_gateway_scrapes_total counter\n",
        );
        for route in ScrapeRoute::ALL {
            for outcome in ScrapeOutcome::ALL {
                let _ = writeln!(
                    out,
                    "promrelay_gateway_scrapes_total{{route=\"{}\",outcome=\"{}\"}} {}",
                    route.label(),
                    outcome.label(),
                    self.scrapes(route, outcome)
                );
            }
        }
        out.push_str(
            "# HELP promrelay_gateway_scrape_duration_seconds Answered scrapes, from the request to the page's last byte.\n\
             # TYPE promrelay_gateway_scrape_duration_seconds histogram\n",
        );
        for route in ScrapeRoute::ALL {
            self.durations[route.index()].write(
                &mut out,
                "promrelay_gateway_scrape_duration_seconds",
                &format!("route=\"{}\"", route.label()),
            );
        }
        out.push_str(
            "# HELP promrelay_gateway_scrape_bytes_total Page bytes received from agents, as they crossed the tunnel.\n\
             # TYPE promrelay_gateway_scrape_bytes_total counter\n",
        );
        for route in ScrapeRoute::ALL {
            let _ = writeln!(
                out,
                "promrelay_gateway_scrape_bytes_total{{route=\"{}\"}} {}",
                route.label(),
                self.bytes(route)
            );
        }

        counter(
            &mut out,
            "promrelay_gateway_tunnel_connects_total",
            "Tunnels established and registered.",
            &self.tunnel_connects,
        );
        counter(
            &mut out,
            "promrelay_gateway_tunnel_replacements_total",
            "Tunnels that replaced the same agent's older tunnel.",
            &self.tunnel_replacements,
        );
        counter(
            &mut out,
            "promrelay_gateway_tunnel_disconnects_total",
            "Tunnels that ended.",
            &self.tunnel_disconnects,
        );
        counter(
            &mut out,
            "promrelay_gateway_auth_failures_total",
            "Tunnel upgrades and PushProx requests refused for bad or missing credentials.",
            &self.auth_failures,
        );
        gauge(
            &mut out,
            "promrelay_gateway_config_last_reload_successful",
            "Whether the last configuration reload succeeded.",
            1 - self.reload_failed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP promrelay_gateway_config_reloads_total Configuration reloads, by result.\n\
             # TYPE promrelay_gateway_config_reloads_total counter\n\
             promrelay_gateway_config_reloads_total{{result=\"success\"}} {}\n\
             promrelay_gateway_config_reloads_total{{result=\"failure\"}} {}",
            self.reloads[0].load(Ordering::Relaxed),
            self.reloads[1].load(Ordering::Relaxed),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_into_cumulative_buckets() {
        let metrics = GatewayMetrics::default();
        metrics.answered(ScrapeRoute::Path, Duration::from_millis(3), 100);
        metrics.answered(ScrapeRoute::Path, Duration::from_millis(300), 50);
        metrics.answered(ScrapeRoute::Path, Duration::from_secs(90), 0);
        let page = metrics.render(Occupancy::default());
        for line in [
            "promrelay_gateway_scrape_duration_seconds_bucket{route=\"path\",le=\"0.005\"} 1",
            "promrelay_gateway_scrape_duration_seconds_bucket{route=\"path\",le=\"0.25\"} 1",
            "promrelay_gateway_scrape_duration_seconds_bucket{route=\"path\",le=\"0.5\"} 2",
            "promrelay_gateway_scrape_duration_seconds_bucket{route=\"path\",le=\"60\"} 2",
            "promrelay_gateway_scrape_duration_seconds_bucket{route=\"path\",le=\"+Inf\"} 3",
            "promrelay_gateway_scrape_duration_seconds_sum{route=\"path\"} 90.303",
            "promrelay_gateway_scrape_duration_seconds_count{route=\"path\"} 3",
            "promrelay_gateway_scrape_bytes_total{route=\"path\"} 150",
            "promrelay_gateway_scrape_duration_seconds_count{route=\"fanin\"} 0",
        ] {
            assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
        }
    }

    #[test]
    fn the_page_is_valid_and_strict() {
        let metrics = GatewayMetrics::default();
        metrics.scrape(ScrapeRoute::ProxyUrl, ScrapeOutcome::Ok);
        metrics.tunnel_connected(true);
        metrics.config_reloaded(false);
        let page = metrics.render(Occupancy::default());
        let parsed = exposition::parse(page.as_bytes(), exposition::Format::Text).unwrap();
        let violations = exposition::validate_strict(&parsed, exposition::Format::Text);
        assert!(violations.is_empty(), "{violations:?}\n{page}");
        for line in [
            "promrelay_gateway_scrapes_total{route=\"proxy_url\",outcome=\"ok\"} 1",
            "promrelay_gateway_tunnel_replacements_total 1",
            "promrelay_gateway_config_last_reload_successful 0",
        ] {
            assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
        }
    }
}
