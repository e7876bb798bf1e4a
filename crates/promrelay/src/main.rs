//! The `promrelay` command: one binary for the agent, the gateway, and the
//! page linter.
//!
//! # Layout
//!
//! - `commands`: one module per subcommand; each parses its flags and
//!   wires the library crates together.
//! - `logging`: `--log.level` and `--log.format`.

mod commands;
mod logging;

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
    // Boxed: the agent has many more flags than the other commands.
    Agent(Box<commands::agent::Args>),
    /// Run where Prometheus can reach, and scrape agents through tunnels.
    Gateway(commands::gateway::Args),
    /// Check an exposition page, like `promtool check metrics`.
    Lint(commands::lint::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lint(args) => commands::lint::run(&args),
        Command::Agent(args) => commands::agent::run(*args),
        Command::Gateway(args) => commands::gateway::run(args),
    }
}
