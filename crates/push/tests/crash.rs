//! Crash test: a store serving in a child process is killed with SIGKILL
//! while clients push and delete concurrently; after a restart on the same
//! directory every acknowledged push is there with its exact content, every
//! acknowledged delete has stuck, and nothing else appears. Repeated with
//! kills at pseudo-random moments (a fixed seed, so a failure repeats).
//!
//! The child is this test binary run again for [`crash_child_server`], so
//! it is always built from the code under test.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use exposition::Format;
use testkit::{free_port, http_get, try_http_request, Daemon, TempDir};

const SEED: u64 = 0x5eed_2024_0bad_cafe;
const ROUNDS: usize = 5;
const CLIENTS: usize = 6;

const CHILD_DIR: &str = "PROMRELAY_PUSH_CRASH_DIR";
const CHILD_ADDR: &str = "PROMRELAY_PUSH_CRASH_ADDR";

/// Starts the child server on `dir`; it is ready once `/-/ready` answers.
fn start(dir: &Path) -> Daemon {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["crash_child_server", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_DIR, dir)
        .env(CHILD_ADDR, addr.to_string());
    Daemon::start(command, addr, "/-/ready", TempDir::new("push-crash-child"))
}

/// The child process of the crash test: serves the store in the directory
/// the test names until it is killed.
#[test]
#[ignore = "the child process that acknowledged_pushes_survive_kill_9 starts and kills"]
fn crash_child_server() {
    let (Some(dir), Some(addr)) = (std::env::var_os(CHILD_DIR), std::env::var_os(CHILD_ADDR))
    else {
        eprintln!("not started by the crash test: nothing to serve");
        return;
    };
    let addr: SocketAddr = addr.to_str().unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = push::PushStore::open(PathBuf::from(dir), push::PushConfig::default()).unwrap();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, common::app(store)).await.unwrap();
    });
}

/// xorshift64*: enough to place kills, and repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What must be true of a group after the restart.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// Acknowledged: there, with these lines.
    Present(Vec<String>),
    /// Its delete was acknowledged.
    Absent,
    /// Unacknowledged: either gone, or there with these lines (or, for an
    /// unacknowledged delete, with the lines it had).
    Either(Vec<String>),
}

fn lines(job: &str, thread: usize, seq: usize) -> Vec<String> {
    vec![
        format!("crash_info{{instance=\"\",job=\"{job}\",thread=\"{thread}\"}} 1"),
        format!(
            "crash_value{{instance=\"\",job=\"{job}\",seq=\"{seq}\"}} {}",
            seq * 7 + 1
        ),
    ]
}

fn body(thread: usize, seq: usize) -> String {
    format!(
        "# TYPE crash_value gauge\ncrash_value{{seq=\"{seq}\"}} {}\n# TYPE crash_info gauge\ncrash_info{{thread=\"{thread}\"}} 1\n",
        seq * 7 + 1
    )
}

/// One client: pushes new groups one after the other, and deletes every
/// third one it pushed, until the server stops answering.
fn client(base: &str, round: usize, thread: usize) -> BTreeMap<String, Expect> {
    let mut outcome = BTreeMap::new();
    for seq in 0.. {
        let job = format!("r{round}-c{thread}-{seq}");
        let url = format!("{base}/metrics/job/{job}");
        let expected = lines(&job, thread, seq);
        match try_http_request("PUT", &url, &[], body(thread, seq).as_bytes()) {
            Ok(response) if response.status == 200 => {
                outcome.insert(job, Expect::Present(expected.clone()));
            }
            Ok(response) => panic!("unexpected answer to {url}: {response:?}"),
            Err(_) => {
                outcome.insert(job, Expect::Either(expected));
                return outcome;
            }
        }
        if seq % 3 == 2 {
            let victim = format!("r{round}-c{thread}-{}", seq - 1);
            let url = format!("{base}/metrics/job/{victim}");
            let before = outcome[&victim].clone();
            match try_http_request("DELETE", &url, &[], &[]) {
                Ok(response) if response.status == 202 => {
                    outcome.insert(victim, Expect::Absent);
                }
                Ok(response) => panic!("unexpected answer to DELETE {url}: {response:?}"),
                Err(_) => {
                    let Expect::Present(lines) = before else {
                        unreachable!()
                    };
                    outcome.insert(victim, Expect::Either(lines));
                    return outcome;
                }
            }
        }
    }
    outcome
}

/// The crash groups on a page: job → its sample lines, sorted.
fn groups_on(page: &[u8]) -> BTreeMap<String, Vec<String>> {
    let parsed = exposition::parse(page, Format::Text).expect("the page parses");
    assert_eq!(exposition::validate_strict(&parsed, Format::Text), []);
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for sample in &parsed.samples {
        if !sample.name.starts_with("crash_") {
            continue;
        }
        let job = sample.labels.get("job").expect("a job label").to_owned();
        groups.entry(job).or_default().push(format!(
            "{}{{{}}} {}",
            sample.name,
            sample.labels.raw(),
            sample.value
        ));
    }
    for lines in groups.values_mut() {
        lines.sort();
    }
    groups
}

#[test]
fn acknowledged_pushes_survive_kill_9() {
    let data = TempDir::new("push-crash");
    let mut rng = Rng(SEED);
    let mut expected: BTreeMap<String, Expect> = BTreeMap::new();
    let mut acknowledged = 0;
    for round in 0..ROUNDS {
        let mut server = start(data.path());
        let base = Arc::new(server.url(""));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|thread| {
                let base = Arc::clone(&base);
                thread::spawn(move || client(&base, round, thread))
            })
            .collect();
        let delay = Duration::from_millis(30 + rng.below(300));
        thread::sleep(delay);
        server.kill();
        for handle in clients {
            let outcome = handle.join().unwrap();
            acknowledged += outcome
                .values()
                .filter(|e| matches!(e, Expect::Present(_)))
                .count();
            expected.extend(outcome);
        }
        let server = start(data.path());
        let page = http_get(&server.url("/metrics"), &[]);
        assert_eq!(page.status, 200);
        let found = groups_on(&page.body);
        for (job, expect) in &expected {
            let there = found.get(job);
            let ok = match (expect, there) {
                (Expect::Present(lines), Some(found)) => lines == found,
                (Expect::Present(_), None) | (Expect::Absent, Some(_)) => false,
                (Expect::Absent | Expect::Either(_), None) => true,
                (Expect::Either(lines), Some(found)) => lines == found,
            };
            assert!(
                ok,
                "round {round} (killed after {delay:?}): {job} should be {expect:?}, found {there:?}"
            );
        }
        for job in found.keys() {
            assert!(
                expected.contains_key(job),
                "round {round}: {job} was never pushed"
            );
        }
        // From here on, what was found is what must stay.
        for (job, expect) in expected.iter_mut() {
            *expect = match found.get(job) {
                Some(lines) => Expect::Present(lines.clone()),
                None => Expect::Absent,
            };
        }
        drop(server);
    }
    assert!(
        acknowledged >= ROUNDS,
        "only {acknowledged} pushes were acknowledged"
    );
    eprintln!("{acknowledged} acknowledged pushes over {ROUNDS} kills");
}
