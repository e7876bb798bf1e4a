//! Exposition pages with the shape of real services' pages: ten families
//! (counters, gauges, one histogram) of HTTP, database, cache, queue, node
//! and gRPC series, 2 to 4 labels each, about 100 bytes a line.
//!
//! Every series carries the agent's own `pod` label and its own values, so
//! no two agents' pages hold the same series, as with real hosts.

use core::fmt::Write as _;

use bytes::Bytes;

/// The kind of a family, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// Eight cumulative buckets, `_sum` and `_count` per label set.
    Histogram,
}

/// One metric family: its labels are the cartesian product of the value
/// lists (100 label sets, 10 for the histogram), taken in order until the
/// family has its share of series.
#[derive(Debug)]
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [(&'static str, &'static [&'static str])],
}

const NUMBERS: [&str; 25] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24",
];

const BUCKETS: [&str; 8] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "+Inf"];

/// Lines per label set of a histogram.
const HISTOGRAM_LINES: usize = BUCKETS.len() + 2;

const FAMILIES: [Family; 10] = [
    Family {
        name: "http_requests_total",
        kind: Kind::Counter,
        help: "Requests served, by method, route and status code.",
        labels: &[
            ("method", &["GET", "POST", "PUT", "DELETE"]),
            (
                "route",
                &[
                    "/api/orders",
                    "/api/carts",
                    "/api/users",
                    "/api/items",
                    "/healthz",
                ],
            ),
            ("code", &["200", "201", "304", "404", "500"]),
        ],
    },
    Family {
        name: "http_request_duration_seconds",
        kind: Kind::Histogram,
        help: "Time to answer a request, by route.",
        labels: &[(
            "route",
            &[
                "/api/orders",
                "/api/orders/{id}",
                "/api/carts",
                "/api/carts/{id}",
                "/api/users",
                "/api/users/{id}",
                "/api/items",
                "/api/items/{id}",
                "/api/search",
                "/healthz",
            ],
        )],
    },
    Family {
        name: "db_queries_total",
        kind: Kind::Counter,
        help: "Database queries, by table, operation and status.",
        labels: &[
            (
                "table",
                &[
                    "orders",
                    "order_items",
                    "carts",
                    "users",
                    "sessions",
                    "inventory",
                    "prices",
                    "shipments",
                    "payments",
                    "refunds",
                ],
            ),
            (
                "operation",
                &["select", "insert", "update", "delete", "upsert"],
            ),
            ("status", &["ok", "error"]),
        ],
    },
    Family {
        name: "cache_operations_total",
        kind: Kind::Counter,
        help: "Cache operations, by cache, operation and result.",
        labels: &[
            (
                "cache",
                &["sessions", "carts", "prices", "users", "catalog"],
            ),
            ("operation", &["get", "set", "delete", "expire", "evict"]),
            ("result", &["hit", "miss", "error", "skip"]),
        ],
    },
    Family {
        name: "queue_messages_in_flight",
        kind: Kind::Gauge,
        help: "Messages taken from a queue partition and not acknowledged yet.",
        labels: &[
            (
                "queue",
                &["orders", "payments", "emails", "shipments", "refunds"],
            ),
            ("partition", &NUMBERS),
        ],
    },
    Family {
        name: "node_cpu_seconds_total",
        kind: Kind::Counter,
        help: "Seconds the CPUs spent in each mode.",
        labels: &[
            ("cpu", &NUMBERS),
            ("mode", &["user", "system", "iowait", "idle"]),
        ],
    },
    Family {
        name: "node_network_transmit_bytes_total",
        kind: Kind::Counter,
        help: "Bytes sent, by network device and transmit queue.",
        labels: &[
            ("device", &["eth0", "eth1", "ens3", "ens4", "lo"]),
            ("queue", &NUMBERS),
        ],
    },
    Family {
        name: "node_filesystem_avail_bytes",
        kind: Kind::Gauge,
        help: "Filesystem space available to non-root users in bytes.",
        labels: &[
            (
                "mountpoint",
                &[
                    "/", "/boot", "/var", "/var/log", "/home", "/srv", "/scratch", "/opt", "/data",
                    "/backup",
                ],
            ),
            ("fstype", &["ext4", "xfs", "btrfs", "tmpfs", "overlay"]),
            ("device", &["sda1", "nvme0n1p1"]),
        ],
    },
    Family {
        name: "grpc_server_handled_total",
        kind: Kind::Counter,
        help: "RPCs completed on the server, by service, method and code.",
        labels: &[
            (
                "grpc_service",
                &[
                    "orders.v1.Orders",
                    "payments.v1.Payments",
                    "users.v1.Users",
                    "catalog.v1.Catalog",
                ],
            ),
            (
                "grpc_method",
                &["Get", "List", "Create", "Update", "Delete"],
            ),
            (
                "grpc_code",
                &["OK", "NotFound", "Internal", "Unavailable", "Aborted"],
            ),
        ],
    },
    Family {
        name: "kafka_consumer_lag",
        kind: Kind::Gauge,
        help: "Messages a consumer group is behind, by topic and partition.",
        labels: &[
            (
                "topic",
                &["orders", "payments", "emails", "shipments", "refunds"],
            ),
            ("partition", &NUMBERS),
        ],
    },
];

/// A page of about `series` series for agent number `agent` (the share of
/// the histogram is rounded down to whole label sets).
pub(crate) fn agent_page(agent: usize, series: usize) -> Bytes {
    let per_family = series.div_ceil(FAMILIES.len());
    let mut page = String::with_capacity(series * 110 + 2_000);
    let mut random = Random::new(agent as u64);
    for family in &FAMILIES {
        let _ = writeln!(page, "# HELP {} {}", family.name, family.help);
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(page, "# TYPE {} {kind}", family.name);
        let label_sets = match family.kind {
            Kind::Histogram => per_family / HISTOGRAM_LINES,
            Kind::Counter | Kind::Gauge => per_family,
        };
        for index in 0..label_sets {
            let labels = label_text(agent, family, index);
            match family.kind {
                Kind::Counter => {
                    let value = random.next() % 100_000_000;
                    let _ = writeln!(page, "{}{{{labels}}} {value}", family.name);
                }
                Kind::Gauge => {
                    let value = (random.next() % 10_000_000) as f64 / 1_000.0;
                    let _ = writeln!(page, "{}{{{labels}}} {value}", family.name);
                }
                Kind::Histogram => {
                    let count = random.next() % 1_000_000;
                    for (bucket, le) in BUCKETS.iter().enumerate() {
                        let cumulative = count * (bucket as u64 + 1) / BUCKETS.len() as u64;
                        let _ = writeln!(
                            page,
                            "{}_bucket{{{labels},le=\"{le}\"}} {cumulative}",
                            family.name
                        );
                    }
                    let sum = count as f64 * 0.042;
                    let _ = writeln!(page, "{}_sum{{{labels}}} {sum:.3}", family.name);
                    let _ = writeln!(page, "{}_count{{{labels}}} {count}", family.name);
                }
            }
        }
    }
    Bytes::from(page)
}

/// The smallest page of this shape reaching `bytes`, as served by agent 0.
pub(crate) fn page_of_size(bytes: usize) -> Bytes {
    let mut series = 10;
    loop {
        let page = agent_page(0, series);
        if page.len() >= bytes {
            return page;
        }
        series += 10;
    }
}

/// The label pairs of series `index` of `family` (mixed-radix over the
/// value lists, so every index is a distinct label set).
fn label_text(agent: usize, family: &Family, index: usize) -> String {
    let mut text = format!("pod=\"shop-{agent:05}\"");
    let mut rest = index;
    for (name, values) in family.labels {
        let value = values[rest % values.len()];
        rest /= values.len();
        let _ = write!(text, ",{name}=\"{value}\"");
    }
    // Past the product of the value lists, a shard label keeps series apart.
    if rest > 0 {
        let _ = write!(text, ",shard=\"{rest}\"");
    }
    text
}

/// A small deterministic generator (xorshift64*): the same agent always
/// serves the same values, different agents different ones.
#[derive(Debug)]
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_the_series_asked_for_and_distinct_label_sets() {
        let page = agent_page(42, 1_000);
        let text = core::str::from_utf8(&page).unwrap();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples.len(), 1_000);
        let mut series: Vec<&str> = samples
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        series.sort_unstable();
        series.dedup();
        assert_eq!(series.len(), 1_000);
        assert!(text.contains("pod=\"shop-00042\""));
        assert_ne!(agent_page(1, 100), agent_page(2, 100));
    }

    #[test]
    fn sized_pages_reach_their_size() {
        let page = page_of_size(57_000);
        assert!(
            page.len() >= 57_000 && page.len() < 60_000,
            "{}",
            page.len()
        );
    }
}
