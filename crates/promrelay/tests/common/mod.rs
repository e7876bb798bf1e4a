//! What the binary's end-to-end tests share.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Command;

use testkit::{free_port, Daemon, TempDir};

/// Runs `promrelay agent` with `args`, which must make it fail at start;
/// returns what it wrote to stderr.
pub(crate) fn agent_start_error(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_promrelay"))
        .arg("agent")
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the agent started with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `promrelay gateway` on a free loopback port with its storage in
/// `<dir>/data` (so its agent token is `<dir>/data/agent-token`), ready
/// once `/-/ready` answers.
pub(crate) fn gateway(dir: TempDir) -> Daemon {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    command
        .arg("gateway")
        .arg(format!("--web.listen-address={addr}"))
        .arg(format!("--storage.path={}", dir.join("data").display()));
    Daemon::start(command, addr, "/-/ready", dir)
}
