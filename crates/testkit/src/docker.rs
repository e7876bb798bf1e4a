//! Real containers for the Docker discovery tests.
//!
//! No image can be pulled on this project's machines, so a [`Fixture`]
//! compiles the std-only metrics server in `examples/metrics_server.rs`
//! into a static binary, builds an image `FROM scratch` around it, and runs
//! containers of it under names and a label unique to the test run. When
//! the fixture is dropped (an assertion that fails included) it removes
//! those containers (`docker rm --force`), networks and the image.
//!
//! The server listens on `$PORT` (default 9100) and serves a small page
//! naming `$REPLICA`: `demo_replica_info{replica="<REPLICA>"} 1` and a
//! `demo_requests_total` counter. With `MODE=garbage` it answers 200 with a
//! body that is no exposition page.
//!
//! Docker must be available: the tests fail, never skip, without it.
//!
//! ```no_run
//! let fixture = testkit::docker::Fixture::new("replicas");
//! let id = fixture.run("web-1", &["--label", "prometheus.io/scrape=true", "--env", "REPLICA=web-1"]);
//! assert_eq!(id.len(), 64);
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::tempdir::TempDir;

/// The metrics server's source, compiled into each test image.
const METRICS_SERVER: &str = include_str!("../examples/metrics_server.rs");

/// The label every object a fixture makes carries, with the run as value.
pub const RUN_LABEL: &str = "promrelay.test";

/// Runs `docker` with `args` and returns its stdout, trimmed.
///
/// # Panics
///
/// When the CLI cannot run or the command fails, with its stderr.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the docker CLI ({e}); these tests need Docker Engine and its CLI")
        });
    assert!(
        output.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Fails (never skips) when the daemon cannot be used.
///
/// # Panics
///
/// When `docker info` cannot run or fails.
pub fn require_docker() {
    let output = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "Docker Engine is required by these tests and does not answer: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => {
            panic!("Docker Engine is required by these tests; the docker CLI cannot run: {e}")
        }
    }
}

/// The daemon's socket as the CLI is configured: `DOCKER_HOST`, else the
/// default `/var/run/docker.sock`.
///
/// # Panics
///
/// When `DOCKER_HOST` is not a `unix://` socket.
pub fn socket() -> PathBuf {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    PathBuf::from(
        host.strip_prefix("unix://")
            .unwrap_or_else(|| panic!("DOCKER_HOST={host}: these tests need a unix socket")),
    )
}

/// The containers, networks and image of one test run, removed on drop.
#[derive(Debug)]
pub struct Fixture {
    /// Unique per test run: prefixes every name, and is the value of
    /// [`RUN_LABEL`] on everything made.
    run: String,
    image: String,
    /// Where the binary and the Dockerfile are built.
    dir: TempDir,
}

impl Fixture {
    /// Checks that Docker answers and builds this run's image; `test`
    /// goes into every name (letters, digits and `-`).
    ///
    /// # Panics
    ///
    /// When Docker does not answer or the image cannot be built.
    pub fn new(test: &str) -> Fixture {
        require_docker();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let run = format!("prt-{test}-{}-{nanos}", std::process::id());
        let fixture = Fixture {
            image: format!("promrelay-test-metrics:{run}"),
            run,
            dir: TempDir::new("docker-image"),
        };
        fixture.build_image();
        fixture
    }

    /// A static metrics server in an image made `FROM scratch`.
    fn build_image(&self) {
        let source = self.dir.join("metrics_server.rs");
        std::fs::write(&source, METRICS_SERVER).unwrap();
        let binary = self.dir.join("metrics_server");
        let output = Command::new(rustc())
            .args([
                "--edition",
                "2021",
                "-O",
                "-C",
                "target-feature=+crt-static",
            ])
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| panic!("cannot run rustc: {e}"));
        assert!(
            output.status.success(),
            "rustc could not build a static metrics server: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(
            self.dir.join("Dockerfile"),
            "FROM scratch\nCOPY metrics_server /metrics_server\nENTRYPOINT [\"/metrics_server\"]\n",
        )
        .unwrap();
        let context = self.dir.path().to_str().unwrap();
        docker(&[
            "build",
            "--quiet",
            "--label",
            &self.label(),
            "--tag",
            &self.image,
            context,
        ]);
    }

    /// The run's unique name.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// `promrelay.test=<run>`: a label filter that matches this run's
    /// objects only.
    pub fn label(&self) -> String {
        format!("{RUN_LABEL}={}", self.run)
    }

    /// The image's tag.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The full name of one of this run's containers or networks.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.run)
    }

    /// Starts a container of the image named [`Fixture::name`]`(short)`
    /// with the run's label and `args` (before the image); returns its ID.
    ///
    /// # Panics
    ///
    /// When `docker run` fails.
    pub fn run(&self, short: &str, args: &[&str]) -> String {
        let name = self.name(short);
        let label = self.label();
        let mut all = vec!["run", "--detach", "--name", &name, "--label", &label];
        all.extend_from_slice(args);
        all.push(&self.image);
        docker(&all)
    }

    /// Creates a network named [`Fixture::name`]`(short)` with the run's
    /// label; returns its name.
    ///
    /// # Panics
    ///
    /// When `docker network create` fails.
    pub fn network(&self, short: &str) -> String {
        let name = self.name(short);
        docker(&["network", "create", "--label", &self.label(), &name]);
        name
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Best effort, and quiet: a failed cleanup must not hide the
        // assertion that failed.
        let filter = format!("label={}", self.label());
        let list = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let containers = list(&["ps", "--all", "--quiet", "--filter", &filter]);
        if !containers.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "--force", "--volumes"])
                .args(&containers)
                .output();
        }
        let networks = list(&["network", "ls", "--quiet", "--filter", &filter]);
        if !networks.is_empty() {
            let _ = Command::new("docker")
                .args(["network", "rm"])
                .args(&networks)
                .output();
        }
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.image])
            .output();
    }
}

/// rustc next to the cargo that builds the tests, else the one on PATH.
fn rustc() -> PathBuf {
    let beside = Path::new(env!("CARGO")).with_file_name("rustc");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("rustc")
    }
}
