//! `promrelay gateway`: where Prometheus scrapes agents through their
//! tunnels. Starts with embedded defaults and nothing but a data directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use gateway::{ConfigSources, Gateway, GatewayFile};
use tokio::signal::unix::{signal, SignalKind};
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
    /// The YAML configuration: per-agent tokens, client certificates,
    /// timeouts and limits. Without it, the embedded defaults.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// The data directory; holds the agent token made on first start.
    #[arg(long = "storage.path", value_name = "DIR", default_value = "data")]
    storage_path: PathBuf,
    /// One token for every agent. Without it the gateway uses (and on first
    /// start creates) `<storage.path>/agent-token`.
    #[arg(long = "agents.token-file", value_name = "FILE")]
    agents_token_file: Option<PathBuf>,
    /// How long a pushed group lives when no rule matches and the push asks
    /// for nothing (Prometheus duration, e.g. `1h`). Default: forever, as
    /// Pushgateway. Replaces `push.default_ttl` of the config file.
    #[arg(long = "push.default-ttl", value_name = "DURATION", value_parser = parse_duration)]
    push_default_ttl: Option<Duration>,
    /// The longest TTL a push may ask for (`?ttl=` or `X-Push-TTL`).
    /// Replaces `push.max_ttl` of the config file.
    #[arg(long = "push.max-ttl", value_name = "DURATION", value_parser = parse_duration)]
    push_max_ttl: Option<Duration>,
    /// `--log.level` and `--log.format`.
    #[command(flatten)]
    log: LogArgs,
}

pub(crate) fn run(args: Args) -> ExitCode {
    logging::init(&args.log);
    super::serve_until_stopped("gateway", serve(args))
}

async fn serve(args: Args) -> Result<(), String> {
    let file = match &args.config_file {
        Some(path) => GatewayFile::load(path).map_err(|e| e.to_string())?,
        None => GatewayFile::default(),
    };
    let shared_token_file = match (&args.agents_token_file, file.agents.shared_token) {
        (_, false) => None,
        (Some(path), true) => {
            // Read once here so a bad file fails the start with its name.
            token::read(path)?;
            Some(path.clone())
        }
        (None, true) => {
            let (_, path, created) = token::load_or_create(&args.storage_path)?;
            let verb = if created { "created" } else { "using" };
            tracing::info!(
                file = %path.display(),
                "{verb} the agent token; copy this file to each agent and pass it as --agent.token-file"
            );
            Some(path)
        }
    };
    let web_config = WebConfigHandle::new(load_web_config(args.web_config_file.as_ref())?);
    let web_file = args.web_config_file.clone();
    let web_handle = web_config.clone();
    let sources = ConfigSources {
        config_file: args.config_file.clone(),
        shared_token_file,
        push_default_ttl: args.push_default_ttl,
        push_max_ttl: args.push_max_ttl,
    };
    let (file, _) = sources.read().map_err(|e| e.to_string())?;
    // Pushed groups live in <storage.path>/push; a push is answered only
    // once it is on disk.
    let push_dir = args.storage_path.join("push");
    let store = push::PushStore::open(&push_dir, file.push)
        .map_err(|e| format!("push store in {}: {e}", push_dir.display()))?;
    let gateway = Gateway::from_sources(sources)
        .map_err(|e| e.to_string())?
        .with_push(store)
        .with_reload_companion(Box::new(move || {
            let config = load_web_config(web_file.as_ref())?;
            let handle = web_handle.clone();
            Ok(Box::new(move || handle.store(config)))
        }));
    let gateway = Arc::new(gateway);
    tokio::spawn(reload_on_sighup(Arc::clone(&gateway)));

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

fn parse_duration(text: &str) -> Result<Duration, String> {
    settings::PromDuration::parse(text)
        .map(|duration| duration.0)
        .map_err(|e| e.to_string())
}

fn load_web_config(path: Option<&PathBuf>) -> Result<WebConfig, String> {
    match path {
        Some(path) => WebConfig::load(path).map_err(|e| e.to_string()),
        None => Ok(WebConfig::none()),
    }
}

/// SIGHUP does what `POST /-/reload` does.
async fn reload_on_sighup(gateway: Arc<Gateway>) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
        return;
    };
    while hangups.recv().await.is_some() {
        match gateway.reload() {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(error) => {
                tracing::error!(%error, "configuration reload failed; the previous one stays");
            }
        }
    }
}
