//! Throughput of the exposition engine against the floor of just finding the
//! lines.
//!
//! Two inputs, both built here without the network:
//!
//! - `node_50MB`: a real node_exporter page (`data/node_exporter.prom`)
//!   repeated to about 50 MB. The lenient parser accepts the repeated
//!   families, and merge groups them.
//! - `synthetic_1M`: one page of exactly 1,000,000 sample lines, generated
//!   deterministically: 40 services with 5 families each (counters, gauges,
//!   histograms), 2 to 4 labels per series, integer and decimal values.
//!
//! Groups, each reporting bytes of input per second:
//!
//! - `split_lines`: `memchr` over the newlines, summing line lengths. The
//!   floor any line-based parser stands on.
//! - `parse_lenient`: `parse(input, Format::Text)`.
//! - `merge_10_sources`: the input cut into 10 pages at family boundaries,
//!   each with its own `exporter="source-N"` label set.
//!   `parse_and_merge` parses the 10 pages and merges them into one text
//!   page (what an agent does per scrape); `merge_only` merges pages parsed
//!   before the timed loop. The output buffer is reused across iterations,
//!   as a long-running agent would.
//!
//! Run with `cargo bench -p promrelay-exposition --bench engine`; a name
//! filter after `--` selects groups, e.g. `-- parse_lenient`.

use std::hint::black_box;
use std::io::Write as _;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use exposition::{merge, parse, Format, LabelSet, Page, SourcePage};

/// A node_exporter 1.5 page, captured from a Debian host.
const NODE_PAGE: &[u8] = include_bytes!("data/node_exporter.prom");

/// Size the node_exporter page is repeated to.
const NODE_TARGET_BYTES: usize = 50 * 1024 * 1024;

/// Sample lines in the synthetic page.
const SYNTHETIC_SAMPLES: usize = 1_000_000;

/// Sources in the merge benchmarks.
const SOURCES: usize = 10;

/// One benchmark input and its name in the report.
struct Input {
    name: &'static str,
    bytes: Vec<u8>,
    /// The sample count the input must parse to, when known.
    samples: Option<usize>,
}

fn inputs() -> Vec<Input> {
    vec![
        Input {
            name: "node_50MB",
            bytes: node_input(),
            samples: None,
        },
        Input {
            name: "synthetic_1M",
            bytes: synthetic_input(),
            samples: Some(SYNTHETIC_SAMPLES),
        },
    ]
}

/// The node_exporter page repeated whole until it reaches the target size.
fn node_input() -> Vec<u8> {
    let copies = NODE_TARGET_BYTES.div_ceil(NODE_PAGE.len());
    NODE_PAGE.repeat(copies)
}

/// A small deterministic generator (64-bit LCG, high bits), so the page is
/// the same on every run and every machine.
#[derive(Debug)]
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SERVICES: [&str; 8] = [
    "checkout",
    "payments",
    "catalog",
    "search",
    "accounts",
    "shipping",
    "inventory",
    "frontend",
];
const REGIONS: [&str; 5] = ["eu_west", "eu_central", "us_east", "us_west", "ap_south"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const CODES: [&str; 5] = ["200", "201", "404", "429", "503"];
const HANDLERS: [&str; 25] = [
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/orders/{id}/items",
    "/api/v1/carts",
    "/api/v1/carts/{id}",
    "/api/v1/users",
    "/api/v1/users/{id}",
    "/api/v1/users/{id}/sessions",
    "/api/v1/products",
    "/api/v1/products/{id}",
    "/api/v1/products/{id}/reviews",
    "/api/v1/search",
    "/api/v1/search/suggest",
    "/api/v1/invoices",
    "/api/v1/invoices/{id}",
    "/api/v1/payments",
    "/api/v1/payments/{id}/refund",
    "/api/v1/shipments",
    "/api/v1/shipments/{id}/track",
    "/api/v1/stock",
    "/api/v1/stock/{sku}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/",
];
const QUEUES: [&str; 5] = ["ingest", "email", "webhooks", "billing", "reindex"];
const BUCKETS: [&str; 8] = ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"];

/// Services in the synthetic page, each with 5 families of `FAMILY_SAMPLES`
/// lines.
const SYNTHETIC_SERVICES: usize = 40;
const FAMILY_SAMPLES: usize = SYNTHETIC_SAMPLES / SYNTHETIC_SERVICES / 5;

/// `instance="10.x.y.z:port"` for series `n`.
fn instance(n: usize) -> String {
    format!(
        "10.{}.{}.{}:9{:03}",
        16 + n / 65_536 % 16,
        n / 256 % 256,
        n % 256,
        n % 1000
    )
}

/// One page of exactly `SYNTHETIC_SAMPLES` sample lines, each family once.
fn synthetic_input() -> Vec<u8> {
    let mut out = Vec::with_capacity(100 * 1024 * 1024);
    let mut rng = Lcg(0x5eed_f00d);
    for s in 0..SYNTHETIC_SERVICES {
        let prefix = format!(
            "{}_{}",
            SERVICES[s % SERVICES.len()],
            REGIONS[s / SERVICES.len() % REGIONS.len()]
        );
        synthetic_service(&prefix, &mut rng, &mut out);
    }
    out
}

fn synthetic_service(prefix: &str, rng: &mut Lcg, out: &mut Vec<u8>) {
    // A counter with four labels: method x code x handler x instance.
    let name = format!("{prefix}_http_requests_total");
    header(
        out,
        &name,
        "Total HTTP requests handled, by method, status code and route.",
        "counter",
    );
    for n in 0..FAMILY_SAMPLES {
        let (m, c, h, i) = (n % 4, n / 4 % 5, n / 20 % 25, n / 500);
        writeln!(
            out,
            "{name}{{method=\"{}\",code=\"{}\",handler=\"{}\",instance=\"{}\"}} {}",
            METHODS[m],
            CODES[c],
            HANDLERS[h],
            instance(i),
            rng.below(50_000_000)
        )
        .unwrap();
    }

    // A histogram with three labels (plus `le`): 8 buckets, sum, count.
    let name = format!("{prefix}_http_request_duration_seconds");
    header(
        out,
        &name,
        "Latency of HTTP requests in seconds.",
        "histogram",
    );
    for n in 0..FAMILY_SAMPLES / (BUCKETS.len() + 2) {
        let labels = format!(
            "method=\"{}\",handler=\"{}\",instance=\"{}\"",
            METHODS[n % 4],
            HANDLERS[n / 4 % 25],
            instance(n / 100)
        );
        let mut cumulative = 0;
        for le in BUCKETS {
            cumulative += rng.below(20_000);
            writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}").unwrap();
        }
        let sum = rng.below(1_000_000_000);
        writeln!(
            out,
            "{name}_sum{{{labels}}} {}.{:03}",
            sum / 1000,
            sum % 1000
        )
        .unwrap();
        writeln!(out, "{name}_count{{{labels}}} {cumulative}").unwrap();
    }

    // A gauge with two labels and small integer values.
    let name = format!("{prefix}_inflight_requests");
    header(out, &name, "Requests being served right now.", "gauge");
    for n in 0..FAMILY_SAMPLES {
        writeln!(
            out,
            "{name}{{handler=\"{}\",instance=\"{}\"}} {}",
            HANDLERS[n % 25],
            instance(n / 25),
            rng.below(64)
        )
        .unwrap();
    }

    // A gauge with three labels and decimal values.
    let name = format!("{prefix}_queue_depth_ratio");
    header(
        out,
        &name,
        "Fill ratio of the work queues, 0 to 1.",
        "gauge",
    );
    for n in 0..FAMILY_SAMPLES {
        let v = rng.below(1_000_000);
        writeln!(
            out,
            "{name}{{queue=\"{}\",shard=\"{}\",instance=\"{}\"}} 0.{v:06}",
            QUEUES[n % 5],
            n / 5 % 16,
            instance(n / 80)
        )
        .unwrap();
    }

    // A counter with three labels and large float values.
    let name = format!("{prefix}_response_bytes_total");
    header(out, &name, "Bytes sent in HTTP response bodies.", "counter");
    for n in 0..FAMILY_SAMPLES {
        let mantissa = rng.below(10_000_000);
        writeln!(
            out,
            "{name}{{handler=\"{}\",code=\"{}\",instance=\"{}\"}} {}.{:06}e+{:02}",
            HANDLERS[n % 25],
            CODES[n / 25 % 5],
            instance(n / 125),
            mantissa / 1_000_000,
            mantissa % 1_000_000,
            6 + rng.below(6)
        )
        .unwrap();
    }
}

fn header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}").unwrap();
}

/// Cuts `input` into `n` pages of about equal size, each cut just before a
/// `# HELP` line, so that every family stays whole in one page.
fn split_at_families(input: &[u8], n: usize) -> Vec<&[u8]> {
    let finder = memchr::memmem::Finder::new(b"\n# HELP ");
    let mut cuts = vec![0];
    for i in 1..n {
        let target = (input.len() * i / n).max(*cuts.last().unwrap());
        let cut = finder
            .find(&input[target..])
            .map_or(input.len(), |at| target + at + 1);
        cuts.push(cut);
    }
    cuts.push(input.len());
    cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

fn label_sets(n: usize) -> Vec<LabelSet> {
    (0..n)
        .map(|i| LabelSet::new([("exporter", format!("source-{i}"))]).unwrap())
        .collect()
}

fn sources<'p, 'a>(pages: &'p [Page<'a>], labels: &'p [LabelSet]) -> Vec<SourcePage<'p, 'a>> {
    pages
        .iter()
        .zip(labels)
        .map(|(page, labels)| SourcePage {
            name: "source",
            format: Format::Text,
            page,
            labels,
        })
        .collect()
}

/// Settings for inputs that take tens to hundreds of milliseconds per pass:
/// few samples of one iteration each, so the whole run stays short.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
}

fn benches(c: &mut Criterion) {
    let inputs = inputs();
    for input in &inputs {
        // Both inputs must be pages the engine reads, or the figures mean
        // nothing.
        let page = parse(&input.bytes, Format::Text).expect("benchmark input parses");
        let samples: usize = page.families.iter().map(|f| f.samples.len()).sum();
        eprintln!(
            "input {}: {} bytes, {} families, {} samples",
            input.name,
            input.bytes.len(),
            page.families.len(),
            samples
        );
        if let Some(expected) = input.samples {
            assert_eq!(samples, expected, "{} sample count", input.name);
        }
    }

    let mut group = c.benchmark_group("split_lines");
    configure(&mut group);
    for input in &inputs {
        group.throughput(Throughput::Bytes(input.bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(input.name),
            &input.bytes,
            |b, bytes| {
                b.iter(|| {
                    let bytes = black_box(bytes.as_slice());
                    let mut start = 0;
                    let mut total = 0usize;
                    for end in memchr::memchr_iter(b'\n', bytes) {
                        total += black_box(end - start);
                        start = end + 1;
                    }
                    total
                });
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("parse_lenient");
    configure(&mut group);
    for input in &inputs {
        group.throughput(Throughput::Bytes(input.bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(input.name),
            &input.bytes,
            |b, bytes| b.iter(|| black_box(parse(black_box(bytes), Format::Text))),
        );
    }
    group.finish();

    let labels = label_sets(SOURCES);
    let mut group = c.benchmark_group("merge_10_sources");
    configure(&mut group);
    for input in &inputs {
        let chunks = split_at_families(&input.bytes, SOURCES);
        group.throughput(Throughput::Bytes(input.bytes.len() as u64));
        let mut out = Vec::new();
        group.bench_with_input(
            BenchmarkId::new("parse_and_merge", input.name),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    let pages: Vec<Page<'_>> = chunks
                        .iter()
                        .map(|chunk| parse(black_box(chunk), Format::Text).unwrap())
                        .collect();
                    out.clear();
                    let report = merge(&sources(&pages, &labels), Format::Text, &mut out);
                    black_box(out.len());
                    report
                });
            },
        );
        let pages: Vec<Page<'_>> = chunks
            .iter()
            .map(|chunk| parse(chunk, Format::Text).unwrap())
            .collect();
        let sources = sources(&pages, &labels);
        group.bench_with_input(
            BenchmarkId::new("merge_only", input.name),
            &sources,
            |b, sources| {
                b.iter(|| {
                    out.clear();
                    let report = merge(black_box(sources), Format::Text, &mut out);
                    black_box(out.len());
                    report
                });
            },
        );
    }
    group.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
