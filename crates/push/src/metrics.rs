//! The push store's own metrics, kept in atomics and written by hand in the
//! text format.
//!
//! | series | what |
//! | --- | --- |
//! | `promrelay_push_groups`, `promrelay_push_series` | what the store holds |
//! | `promrelay_push_requests_total{method,result}` | pushes, deletes and wipes by outcome |
//! | `promrelay_push_expired_groups_total` | groups removed at their deadline (or found past it on start) |
//! | `promrelay_push_fsync_duration_seconds` | one group commit's `fdatasync` |
//! | `promrelay_push_group_commits_total`, `promrelay_push_group_commit_bytes_total` | log writes, each one fsync for all pushes waiting |
//! | `promrelay_push_journal_bytes` | the size of the current log |
//! | `promrelay_push_compactions_total` | snapshots written |
//! | `promrelay_push_journal_errors_total` | failed log writes or compactions |
//!
//! `method` is `put`, `post`, `delete` or `wipe`; `result` is `ok`,
//! `invalid` (the request does not parse), `inconsistent` (a consistency
//! check failed), `too_large` (a limit) or `error` (the store's fault).

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

/// A request kind, the `method` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `PUT`: replace the group.
    Put,
    /// `POST`: replace the pushed families.
    Post,
    /// `DELETE`: remove the group.
    Delete,
    /// The admin wipe.
    Wipe,
}

impl Method {
    const ALL: [Method; 4] = [Method::Put, Method::Post, Method::Delete, Method::Wipe];

    fn label(self) -> &'static str {
        match self {
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Wipe => "wipe",
        }
    }
}

const RESULTS: [&str; 5] = ["ok", "invalid", "inconsistent", "too_large", "error"];

/// Upper bounds of the fsync histogram, in seconds.
const FSYNC_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The counters.
#[derive(Debug, Default)]
pub(crate) struct StoreMetrics {
    requests: [[AtomicU64; RESULTS.len()]; Method::ALL.len()],
    expired: AtomicU64,
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS.len()],
    fsync_count: AtomicU64,
    fsync_sum_nanos: AtomicU64,
    commits: AtomicU64,
    commit_bytes: AtomicU64,
    journal_bytes: AtomicU64,
    compactions: AtomicU64,
    journal_errors: AtomicU64,
}

impl StoreMetrics {
    pub(crate) fn request(&self, method: Method, result: &str) {
        let index = RESULTS
            .iter()
            .position(|r| *r == result)
            .unwrap_or(RESULTS.len() - 1);
        self.requests[method as usize][index].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn expired(&self, groups: usize) {
        self.expired.fetch_add(groups as u64, Ordering::Relaxed);
    }

    pub(crate) fn observe_fsync(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bucket, bound) in self.fsync_buckets.iter().zip(FSYNC_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.fsync_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn group_commit(&self, bytes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_journal_bytes(&self, bytes: u64) {
        self.journal_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn compacted(&self) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn journal_error(&self) {
        self.journal_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the metrics in text 0.0.4.
    pub(crate) fn write(&self, groups: usize, series: usize, out: &mut String) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        };
        header(out, "promrelay_push_groups", "gauge", "Push groups held.");
        let _ = writeln!(out, "promrelay_push_groups {groups}");
        header(
            out,
            "promrelay_push_series",
            "gauge",
            "Series held in push groups.",
        );
        let _ = writeln!(out, "promrelay_push_series {series}");
        header(
            out,
            "promrelay_push_requests_total",
            "counter",
            "Pushes, deletes and wipes by outcome.",
        );
        for method in Method::ALL {
            for (index, result) in RESULTS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "promrelay_push_requests_total{{method=\"{}\",result=\"{result}\"}} {}",
                    method.label(),
                    load(&self.requests[method as usize][index])
                );
            }
        }
        header(
            out,
            "promrelay_push_expired_groups_total",
            "counter",
            "Groups removed at their deadline, or found past it when the store opened.",
        );
        let _ = writeln!(
            out,
            "promrelay_push_expired_groups_total {}",
            load(&self.expired)
        );
        header(
            out,
            "promrelay_push_fsync_duration_seconds",
            "histogram",
            "How long the fdatasync of one group commit took.",
        );
        for (bucket, bound) in self.fsync_buckets.iter().zip(FSYNC_BUCKETS) {
            let _ = writeln!(
                out,
                "promrelay_push_fsync_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(bucket)
            );
        }
        let count = load(&self.fsync_count);
        let _ = writeln!(
            out,
            "promrelay_push_fsync_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = Duration::from_nanos(load(&self.fsync_sum_nanos)).as_secs_f64();
        let _ = writeln!(out, "promrelay_push_fsync_duration_seconds_sum {sum}");
        let _ = writeln!(out, "promrelay_push_fsync_duration_seconds_count {count}");
        header(
            out,
            "promrelay_push_group_commits_total",
            "counter",
            "Writes to the push log, each made durable with one fsync for every push waiting.",
        );
        let _ = writeln!(
            out,
            "promrelay_push_group_commits_total {}",
            load(&self.commits)
        );
        header(
            out,
            "promrelay_push_group_commit_bytes_total",
            "counter",
            "Bytes written to the push log.",
        );
        let _ = writeln!(
            out,
            "promrelay_push_group_commit_bytes_total {}",
            load(&self.commit_bytes)
        );
        header(
            out,
            "promrelay_push_journal_bytes",
            "gauge",
            "The size of the current push log.",
        );
        let _ = writeln!(
            out,
            "promrelay_push_journal_bytes {}",
            load(&self.journal_bytes)
        );
        header(
            out,
            "promrelay_push_compactions_total",
            "counter",
            "Snapshots written to compact the push log.",
        );
        let _ = writeln!(
            out,
            "promrelay_push_compactions_total {}",
            load(&self.compactions)
        );
        header(
            out,
            "promrelay_push_journal_errors_total",
            "counter",
            "Failed writes or compactions of the push log.",
        );
        let _ = writeln!(
            out,
            "promrelay_push_journal_errors_total {}",
            load(&self.journal_errors)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exposition::Format;

    #[test]
    fn the_page_is_valid() {
        let metrics = StoreMetrics::default();
        metrics.request(Method::Post, "too_large");
        metrics.observe_fsync(Duration::from_micros(700));
        metrics.expired(2);
        let mut out = String::new();
        metrics.write(3, 40, &mut out);
        let page = exposition::parse(out.as_bytes(), Format::Text).unwrap();
        assert_eq!(exposition::validate_strict(&page, Format::Text), []);
        assert!(
            out.contains("promrelay_push_requests_total{method=\"post\",result=\"too_large\"} 1\n")
        );
        assert!(out.contains("promrelay_push_fsync_duration_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(out.contains("promrelay_push_fsync_duration_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(out.contains("promrelay_push_expired_groups_total 2\n"));
        assert!(out.contains("promrelay_push_series 40\n"));
    }
}
