//! `promrelay agent`: serve the merged page of the configured sources.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agent::config::{Config, ConfigError, FlagSources};
use agent::egress::{Egress, EgressConfig, GatewayProtocol};
use agent::service::Agent;
use tokio::signal::unix::{signal, SignalKind};
use web::{WebConfig, WebConfigHandle};

use crate::logging::{self, LogArgs};

/// Arguments of `promrelay agent`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The YAML configuration file.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Where to listen: `HOST:PORT`, or `:PORT` for every interface.
    /// Default `:9437`; with `--gateway.url` nothing listens unless this is
    /// given, except `127.0.0.1:9437` for local jobs when there is a push
    /// source.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    listen_address: Option<String>,
    /// The gateway to connect out to (egress mode), e.g.
    /// `https://gateway.example:9438`.
    /// Proxies: `HTTPS_PROXY` (or `HTTP_PROXY` for `http://`) and
    /// `NO_PROXY` from the environment are honoured.
    #[arg(long = "gateway.url", value_name = "URL", requires = "agent_name")]
    gateway_url: Option<String>,
    /// PEM certificates to trust for the gateway's TLS certificate, instead
    /// of the public web roots.
    #[arg(long = "gateway.ca-file", value_name = "FILE")]
    gateway_ca_file: Option<PathBuf>,
    /// A PEM client certificate to present to the gateway; its common name
    /// is the agent's name there (then no token is needed).
    #[arg(
        long = "gateway.cert-file",
        value_name = "FILE",
        requires = "gateway_key_file"
    )]
    gateway_cert_file: Option<PathBuf>,
    /// The PEM private key of `--gateway.cert-file`.
    #[arg(
        long = "gateway.key-file",
        value_name = "FILE",
        requires = "gateway_cert_file"
    )]
    gateway_key_file: Option<PathBuf>,
    /// How the agent talks to `--gateway.url`.
    #[arg(
        long = "gateway.protocol",
        value_name = "PROTOCOL",
        value_enum,
        default_value_t = Protocol::Tunnel
    )]
    gateway_protocol: Protocol,
    /// The name this agent has at the gateway.
    #[arg(long = "agent.name", value_name = "NAME")]
    agent_name: Option<String>,
    /// The file holding the token that proves the agent's name (needed
    /// unless a client certificate proves it).
    #[arg(long = "agent.token-file", value_name = "FILE")]
    agent_token_file: Option<PathBuf>,
    /// A local port the gateway may have this agent scrape on 127.0.0.1
    /// (`proxy_url` mode; repeatable). No other port is ever reached.
    #[arg(long = "scrape.allow-port", value_name = "PORT")]
    allow_port: Vec<u16>,
    /// TLS and basic auth, in the exporter-toolkit web configuration format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// An HTTP source, `NAME=URL` (repeatable).
    #[arg(long = "source.http", value_name = "NAME=URL")]
    http: Vec<String>,
    /// A command source, `NAME=COMMAND [ARGS...]`, split on spaces, no shell
    /// (repeatable).
    #[arg(long = "source.exec", value_name = "NAME=COMMAND")]
    exec: Vec<String>,
    /// A file source, `NAME=GLOB` (repeatable).
    #[arg(long = "source.file", value_name = "NAME=GLOB")]
    file: Vec<String>,
    /// A docker source, `NAME=HOST`: the containers of the Docker Engine
    /// whose socket HOST names, e.g.
    /// `containers=unix:///var/run/docker.sock` (repeatable). Every other
    /// setting has its default; the configuration file sets them.
    #[arg(long = "source.docker", value_name = "NAME=HOST")]
    docker: Vec<String>,
    /// A push source, `NAME`: jobs push their groups to this agent with
    /// the Pushgateway API, and they are served on its page until they
    /// expire (settings: a `push:` source in the configuration file).
    /// Needs `--storage.path`.
    #[arg(long = "source.push", value_name = "NAME")]
    push: Vec<String>,
    /// Where the agent keeps what it must not lose: a push source's groups
    /// (in `DIR/push`).
    #[arg(long = "storage.path", value_name = "DIR")]
    storage_path: Option<PathBuf>,
    /// `--log.level` and `--log.format`.
    #[command(flatten)]
    log: LogArgs,
}

pub(crate) fn run(args: Args) -> ExitCode {
    logging::init(&args.log);
    super::serve_until_stopped("agent", serve(args))
}

fn loader(args: &Args) -> impl Fn() -> Result<Config, ConfigError> + Send + Sync + 'static {
    let file = args.config_file.clone();
    let flags = FlagSources {
        http: args.http.clone(),
        exec: args.exec.clone(),
        file: args.file.clone(),
        docker: args.docker.clone(),
        push: args.push.clone(),
    };
    let ports = args.allow_port.clone();
    move || {
        let mut config = match &file {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        config.add_flag_sources(&flags)?;
        config.add_allowed_ports(&ports)?;
        Ok(config)
    }
}

fn load_web_config(path: Option<&PathBuf>) -> Result<WebConfig, String> {
    match path {
        Some(path) => WebConfig::load(path).map_err(|e| e.to_string()),
        None => Ok(WebConfig::none()),
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let agent = Agent::start_with_storage(Box::new(loader(&args)), args.storage_path.as_deref())
        .map_err(|e| e.to_string())?;
    // The first scrape then sees the containers already running.
    agent
        .runtime()
        .settled(agent::service::DOCKER_SETTLE_TIMEOUT)
        .await;
    let web_config = WebConfigHandle::new(load_web_config(args.web_config_file.as_ref())?);
    let egress = match &args.gateway_url {
        Some(url) => Some(egress(url, &args)?),
        None => None,
    };
    // In egress mode nothing listens unless asked: the point is a host
    // that accepts no connection. Local jobs must still reach a push
    // source, so then the agent listens on loopback only.
    let listen = match (&args.listen_address, &egress) {
        (Some(address), _) => Some(address.clone()),
        (None, None) => Some(DEFAULT_LISTEN.to_owned()),
        (None, Some(_)) if agent.push_store().is_some() => Some(LOCAL_PUSH_LISTEN.to_owned()),
        (None, Some(_)) => None,
    };
    let listener = match &listen {
        Some(text) => {
            let address = listen_address(text).await?;
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| format!("cannot listen on {address}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(address = %bound, sources = agent.runtime().sources.len(), "promrelay agent listening");
            Some(listener)
        }
        None => None,
    };
    tokio::spawn(reload_on_sighup(
        Arc::clone(&agent),
        web_config.clone(),
        args.web_config_file.clone(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let egress_task =
        egress.map(|egress| tokio::spawn(egress.run(Arc::clone(&agent), until_stopped())));
    if let Some(listener) = listener {
        web::serve(listener, web_config, agent.router(), until_stopped())
            .await
            .map_err(|e| e.to_string())?;
    }
    if let Some(task) = egress_task {
        task.await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

const DEFAULT_LISTEN: &str = ":9437";
/// Where an agent in egress mode takes pushes when no address is given.
const LOCAL_PUSH_LISTEN: &str = "127.0.0.1:9437";

/// `--gateway.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Protocol {
    /// promrelay's tunnel: one outbound WebSocket, scraped through a
    /// promrelay gateway.
    Tunnel,
    /// The PushProx client protocol (`/poll`, `/push`): for an unmodified
    /// PushProx proxy or a promrelay gateway. `--agent.name` is the FQDN
    /// Prometheus scrapes (`http://NAME:PORT/...` through the proxy); the
    /// token file is optional (a PushProx proxy checks none). A scrape of
    /// the agent's own port (that of `--web.listen-address`, 9437 by
    /// default) gets the agent's own pages; other ports must be allowed
    /// with `--scrape.allow-port`.
    Pushprox,
}

/// The port of `--web.listen-address` (`HOST:PORT` or `:PORT`): where
/// PushProx scrapes reach the agent's own pages, listening or not.
fn web_port(listen_address: Option<&str>) -> Result<u16, String> {
    let Some(address) = listen_address else {
        return Ok(agent::pushprox::DEFAULT_WEB_PORT);
    };
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| format!("--web.listen-address={address}: no port"))
}

fn egress(url: &str, args: &Args) -> Result<Egress, String> {
    let name = args.agent_name.clone().unwrap_or_default();
    let identity = args
        .gateway_cert_file
        .as_deref()
        .zip(args.gateway_key_file.as_deref());
    let token = match (&args.agent_token_file, identity) {
        (Some(file), _) => super::token::read(file)?,
        (None, Some(_)) => String::new(),
        // An unmodified PushProx proxy checks no credentials.
        (None, None) if args.gateway_protocol == Protocol::Pushprox => String::new(),
        (None, None) => {
            return Err(
                "--gateway.url needs --agent.token-file or --gateway.cert-file to prove the agent's name"
                    .to_owned(),
            )
        }
    };
    let mut connect = tunnel::ConnectOptions::default()
        .with_proxy(tunnel::ProxyConfig::from_env().map_err(|e| e.to_string())?);
    if args.gateway_ca_file.is_some() || identity.is_some() {
        let tls = tunnel::client_tls_config(args.gateway_ca_file.as_deref(), identity)
            .map_err(|e| e.to_string())?;
        connect = connect.with_tls_config(tls);
    }
    let mut config = EgressConfig::new(url, name, token);
    config.connect = connect;
    config.protocol = match args.gateway_protocol {
        Protocol::Tunnel => GatewayProtocol::Tunnel,
        Protocol::Pushprox => GatewayProtocol::Pushprox,
    };
    config.web_port = web_port(args.listen_address.as_deref())?;
    Egress::new(config).map_err(|e| format!("--gateway.url: {e}"))
}

/// `:PORT` listens on every interface, as Go programs do.
pub(crate) async fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    let mut addresses = tokio::net::lookup_host(&text)
        .await
        .map_err(|e| format!("--web.listen-address={text}: {e}"))?;
    addresses
        .next()
        .ok_or_else(|| format!("--web.listen-address={text}: no address"))
}

async fn reload_on_sighup(
    agent: Arc<Agent>,
    web_config: WebConfigHandle,
    web_file: Option<PathBuf>,
) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
        return;
    };
    while hangups.recv().await.is_some() {
        // Both files are validated before either takes effect.
        match load_web_config(web_file.as_ref()) {
            Ok(config) => {
                if agent.reload().await.is_ok() {
                    web_config.store(config);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "web configuration reload failed; the previous one stays");
            }
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
