//! The `promrelay` command: one binary for the agent, the gateway, and the
//! page linter.
//!
//! # Layout
//!
//! - `lint`: `promrelay lint`, a strict checker for exposition pages built on
//!   the exposition engine.
//! - `agent` and `gateway` arrive with their own modules.

mod lint;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Scrape what Prometheus cannot reach.
#[derive(Debug, Parser)]
#[command(name = "promrelay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run next to the measured things and merge their metrics into one page.
    Agent,
    /// Run where Prometheus can reach, and scrape agents through tunnels.
    Gateway,
    /// Check an exposition page, like `promtool check metrics`.
    Lint(lint::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint(args) => lint::run(&args),
        Command::Agent | Command::Gateway => {
            eprintln!("promrelay: this mode is not yet available in this version");
            ExitCode::from(2)
        }
    }
}
