//! `promrelay gateway`: where Prometheus scrapes agents through their
//! tunnels. Starts with embedded defaults and nothing but a data directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use gateway::{AgentAuth, Gateway, GatewayConfig};
use web::{WebConfig, WebConfigHandle};

use super::agent::{listen_address, shutdown_signal};
use super::token;
use crate::logging::{self, LogArgs};

/// Arguments of `promrelay gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to listen: `HOST:PORT`, or `:PORT` for every interface. Agents,
    /// Prometheus and people all use this one port.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9438"
    )]
    listen_address: String,
    /// TLS, client certificates and basic auth, in the exporter-toolkit web
    /// configuration format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// The data directory; holds the agent token made on first start.
    #[arg(long = "storage.path", value_name = "DIR", default_value = "data")]
    storage_path: PathBuf,
    /// One token for every agent. Without it the gateway uses (and on first
    /// start creates) `<storage.path>/agent-token`.
    #[arg(long = "agents.token-file", value_name = "FILE")]
    agents_token_file: Option<PathBuf>,
    /// `--log.level` and `--log.format`.
    #[command(flatten)]
    log: LogArgs,
}

pub(crate) fn run(args: Args) -> ExitCode {
    logging::init(&args.log);
    super::serve_until_stopped("gateway", serve(args))
}

async fn serve(args: Args) -> Result<(), String> {
    let token = match &args.agents_token_file {
        Some(path) => token::read(path)?,
        None => {
            let (token, path, created) = token::load_or_create(&args.storage_path)?;
            let verb = if created { "created" } else { "using" };
            tracing::info!(
                file = %path.display(),
                "{verb} the agent token; copy this file to each agent and pass it as --agent.token-file"
            );
            token
        }
    };
    let auth = AgentAuth::new()
        .with_shared_token(&token)
        .map_err(|e| e.to_string())?;
    let gateway = Arc::new(Gateway::new(GatewayConfig::default(), auth));
    let web_config = match &args.web_config_file {
        Some(path) => WebConfig::load(path).map_err(|e| e.to_string())?,
        None => WebConfig::none(),
    };
    let web_config = WebConfigHandle::new(web_config);
    let address = listen_address(&args.listen_address).await?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(address = %bound, "promrelay gateway listening");
    web::serve(
        listener,
        web_config,
        gateway::router(gateway),
        shutdown_signal(),
    )
    .await
    .map_err(|e| e.to_string())
}
