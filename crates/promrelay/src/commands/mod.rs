//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod gateway;
pub(crate) mod lint;
pub(crate) mod token;

use std::future::Future;
use std::process::ExitCode;

/// Runs a mode's server on a multi-threaded runtime until it stops; an
/// error is logged and printed once, and the exit code says whether it
/// failed.
fn serve_until_stopped(mode: &str, server: impl Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("promrelay {mode}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(error = %message, "promrelay {mode} stopped");
            eprintln!("promrelay {mode}: {message}");
            ExitCode::FAILURE
        }
    }
}
