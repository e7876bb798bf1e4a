//! Long-running programs under test: spawn, wait for readiness, kill on drop.

use std::env;
use std::fmt;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::request_with_timeout;
use crate::tempdir::TempDir;
use crate::INSTALL_HINT;

/// How long [`Daemon::start`] waits for the readiness URL to answer `200`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Returns a TCP port on `127.0.0.1` that was free a moment ago.
///
/// The port is found by binding port 0 and dropping the listener, so another
/// process could in principle take it before the caller binds it.
///
/// # Panics
///
/// If no port can be bound.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the bound address: {e}"))
        .port()
}

/// Finds the executable `name` on `PATH`.
///
/// # Panics
///
/// If it is not there, with a message saying how to install it.
pub fn find_program(name: &str) -> PathBuf {
    let found = env::var_os("PATH").and_then(|path| {
        env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    });
    found.unwrap_or_else(|| panic!("`{name}` was not found on PATH; {INSTALL_HINT}"))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// A running program that serves HTTP on `127.0.0.1`.
///
/// Its stdout and stderr go to files in its private [`TempDir`], which also
/// holds whatever else the starter put there (configuration, data). Dropping
/// the guard kills the program (`SIGKILL`), reaps it and removes the
/// directory.
pub struct Daemon {
    name: String,
    child: Child,
    addr: SocketAddr,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    // Declared last so it is removed after the process is gone.
    dir: TempDir,
}

impl Daemon {
    /// Spawns `command` and waits until `GET http://{addr}{ready_path}`
    /// answers `200`, for at most [`READY_TIMEOUT`].
    ///
    /// `command` should make the program listen on `addr`; its stdout and
    /// stderr are redirected to `stdout.log` and `stderr.log` in `dir`, and
    /// its stdin is closed. `dir` is owned by the daemon from then on.
    ///
    /// # Panics
    ///
    /// If the program cannot be spawned, exits before it is ready, or is not
    /// ready in time; the message includes the tail of its stderr.
    pub fn start(command: Command, addr: SocketAddr, ready_path: &str, dir: TempDir) -> Daemon {
        Daemon::start_with_headers(command, addr, ready_path, &[], dir)
    }

    /// Like [`Daemon::start`], sending `headers` with the readiness request
    /// (for a program that wants credentials on every endpoint).
    pub fn start_with_headers(
        mut command: Command,
        addr: SocketAddr,
        ready_path: &str,
        headers: &[(&str, &str)],
        dir: TempDir,
    ) -> Daemon {
        let mut daemon = Daemon::spawn(&mut command, addr, dir);
        daemon.wait_ready(Some((ready_path, headers)));
        daemon
    }

    /// Spawns `command` with its output redirected into `dir`.
    fn spawn(command: &mut Command, addr: SocketAddr, dir: TempDir) -> Daemon {
        let name = Path::new(command.get_program()).file_name().map_or_else(
            || "program".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let stdout_path = dir.join("stdout.log");
        let stderr_path = dir.join("stderr.log");
        let create = |path: &Path| {
            File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
        };
        command
            .stdin(Stdio::null())
            .stdout(create(&stdout_path))
            .stderr(create(&stderr_path));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({command:?}): {e}"));
        // From here on, a panic drops the daemon, which kills the child.
        Daemon {
            name,
            child,
            addr,
            stdout_path,
            stderr_path,
            dir,
        }
    }

    /// Like [`Daemon::start`] for a program that is not an HTTP server (a
    /// proxy, say): ready once `addr` accepts a TCP connection.
    pub fn start_tcp(mut command: Command, addr: SocketAddr, dir: TempDir) -> Daemon {
        let mut daemon = Daemon::spawn(&mut command, addr, dir);
        daemon.wait_ready(None);
        daemon
    }

    /// Waits for `GET ready_path` to answer 200, or with `None` for the
    /// port to accept a connection.
    fn wait_ready(&mut self, http: Option<(&str, &[(&str, &str)])>) {
        let url = match http {
            Some((path, _)) => self.url(path),
            None => format!("tcp://{}", self.addr),
        };
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before {url} was ready; stderr tail:\n{}",
                    self.name,
                    self.stderr_tail()
                );
            }
            let last = match http {
                Some((_, headers)) => {
                    match request_with_timeout("GET", &url, headers, &[], Duration::from_secs(2)) {
                        Ok(response) if response.status == 200 => return,
                        Ok(response) => format!("HTTP {}", response.status),
                        Err(e) => e.to_string(),
                    }
                }
                None => match TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) {
                    Ok(_) => return,
                    Err(e) => e.to_string(),
                },
            };
            if started.elapsed() >= READY_TIMEOUT {
                panic!(
                    "{} was not ready within {READY_TIMEOUT:?}: GET {url} last gave: {last}; \
                     stderr tail:\n{}",
                    self.name,
                    self.stderr_tail()
                );
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// The address the program listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}{path}`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The daemon's private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the program wrote to stdout so far (lossily decoded).
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// Everything the program wrote to stderr so far (lossily decoded).
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Kills the program now (`SIGKILL`) and reaps it, e.g. to test how a
    /// client copes with the server going away. Idempotent; dropping the
    /// guard does the same.
    pub fn kill(&mut self) {
        // Errors mean it already exited and was reaped, which is the goal.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stderr_tail(&self) -> String {
        const LINES: usize = 30;
        let stderr = self.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(LINES)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .finish()
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

/// Polls `condition` every 50 ms until it holds.
///
/// # Panics
///
/// When it still does not hold after `timeout`, naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn find_program_panics_with_install_hint() {
        assert!(find_program("sh").is_absolute());
        let err = panic::catch_unwind(|| find_program("promrelay-no-such-program")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("scripts/test"), "{msg}");
    }

    #[test]
    fn early_exit_panics_with_stderr_tail() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let err = panic::catch_unwind(|| {
            let mut command = Command::new(find_program("sh"));
            command.args(["-c", "echo 'bad flag --frobnicate' >&2; exit 7"]);
            Daemon::start(command, addr, "/", TempDir::new("unit"))
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("exited with exit status: 7"), "{msg}");
        assert!(msg.contains("bad flag --frobnicate"), "{msg}");
    }
}
