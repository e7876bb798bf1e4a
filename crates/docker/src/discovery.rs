//! Discovery: the daemon's containers, kept current from its event stream,
//! turned into scrape targets the agent reads at scrape time.
//!
//! # How it follows the daemon
//!
//! One background task owns the container list. A session with the
//! daemon is:
//!
//! 1. subscribe to the event stream (container and network events), then
//! 2. read the list of running containers, replacing what was known,
//! 3. apply events as they come: `die`, `stop` and `destroy` remove a
//!    container; `start`, `rename`, `pause`, `unpause`, `update` and network
//!    `connect`/`disconnect` read that one container again (by ID).
//!
//! Subscribing before listing means nothing that happens in between is
//! missed. When the socket or the stream fails, the last known targets stay
//! up (marked [`DaemonStatus::Disconnected`]) and the session starts over
//! after an exponential pause (`reconnect_backoff`); the fresh list then
//! replaces everything, so events lost while disconnected do not matter.
//! While connected, the list is also read again every `resync_interval`: the
//! daemon drops events for subscribers that fall behind, and this bounds
//! how long such a loss can last. There is no polling otherwise.
//!
//! # Probing
//!
//! A container to probe (see [`crate::rules`]) gets a task that tries its
//! ports in order: the first answering 200 with a metrics content type
//! (text, OpenMetrics, or none given) is scraped from then on. While none
//! answers, it tries again with growing pauses until `probe_window` has
//! passed since the container appeared, so a slow starter is still found.
//! A container that changes (new address) is probed again; one that stops
//! takes its probe with it.
//!
//! The agent reads [`Discovery::targets`] (a cheap `Arc` clone of the
//! latest [`Targets`]) at each scrape; nothing is scraped here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::api::{Container, Effect};
use crate::client::{DockerClient, DockerError};
use crate::config::{ConfigProblem, DockerConfig};
use crate::rules::{ProbeSpec, Rules};
use crate::target::{DaemonStatus, Targets};

/// Follows one daemon; stops when dropped.
#[derive(Debug)]
pub struct Discovery {
    targets: watch::Receiver<Arc<Targets>>,
    task: AbortHandle,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        // Dropping the worker drops its probes, its stream and its socket.
        self.task.abort();
    }
}

impl Discovery {
    /// Starts following the daemon `config.host` names. Never fails for
    /// the daemon's sake: an unreachable socket shows in
    /// [`Targets::daemon`] and is retried. When the agent itself runs in a
    /// container, that container is found (from `/proc/self/mountinfo`),
    /// never scraped, and its networks are preferred for addresses.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(config: &DockerConfig) -> Result<Discovery, ConfigProblem> {
        let own = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|text| container_id_from_mountinfo(&text));
        if let Some(id) = &own {
            tracing::info!(container_id = %id, "docker discovery: the agent runs in this container");
        }
        Discovery::start_with(config, Rules::new(config)?.with_own_container(own))
    }

    /// [`Discovery::start`] with rules of the caller's (tests set the
    /// agent's own container).
    pub fn start_with(config: &DockerConfig, rules: Rules) -> Result<Discovery, ConfigProblem> {
        config.validate()?;
        let prober = reqwest::Client::builder()
            .user_agent(concat!("promrelay/", env!("CARGO_PKG_VERSION")))
            .timeout(config.probe_timeout.0)
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(config.insecure_skip_verify)
            .build()
            .map_err(|e| ConfigProblem::new("probe_ports", e.to_string()))?;
        let (published, targets) = watch::channel(Arc::new(Targets::default()));
        let (probe_results, probe_outcomes) = mpsc::channel(64);
        let worker = Worker {
            client: DockerClient::new(config.socket_path()?, config.api_timeout.0),
            rules,
            resync: Some(config.resync_interval.0).filter(|d| !d.is_zero()),
            backoff: Backoff::new(
                config.reconnect_backoff.min.0,
                config.reconnect_backoff.max.0,
            ),
            probe_window: config.probe_window.0,
            prober,
            containers: BTreeMap::new(),
            probes: HashMap::new(),
            probe_results,
            probe_outcomes,
            status: DaemonStatus::Connecting,
            published,
        };
        let task = tokio::spawn(worker.run()).abort_handle();
        Ok(Discovery { targets, task })
    }

    /// The current targets.
    pub fn targets(&self) -> Arc<Targets> {
        Arc::clone(&self.targets.borrow())
    }

    /// A receiver that is told about every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Targets>> {
        self.targets.clone()
    }

    /// Waits (up to `timeout`) until the first attempt to reach the daemon
    /// has succeeded or failed, and returns the targets then.
    pub async fn settled(&self, timeout: Duration) -> Arc<Targets> {
        let mut receiver = self.targets.clone();
        let settled = receiver.wait_for(|t| t.daemon != DaemonStatus::Connecting);
        let settled = match tokio::time::timeout(timeout, settled).await {
            Ok(Ok(targets)) => Some(Arc::clone(&targets)),
            _ => None,
        };
        settled.unwrap_or_else(|| self.targets())
    }
}

/// The background task's state; it lives only inside that task.
struct Worker {
    client: DockerClient,
    rules: Rules,
    resync: Option<Duration>,
    backoff: Backoff,
    probe_window: Duration,
    /// Probes; its timeout is `probe_timeout`.
    prober: reqwest::Client,
    /// The running containers, by full ID.
    containers: BTreeMap<String, Container>,
    /// Probes started, by container ID.
    probes: HashMap<String, Probe>,
    probe_results: mpsc::Sender<ProbeOutcome>,
    probe_outcomes: mpsc::Receiver<ProbeOutcome>,
    status: DaemonStatus,
    published: watch::Sender<Arc<Targets>>,
}

/// One container's probe: what is tried, what was found, and the task
/// (stopped when this is dropped).
struct Probe {
    spec: ProbeSpec,
    found: Option<u16>,
    _task: AbortOnDrop,
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ProbeOutcome {
    id: String,
    spec: ProbeSpec,
    port: Option<u16>,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let error = self.session().await;
            tracing::warn!(socket = %self.client.socket().display(), kind = error.kind(), error = %error, "docker discovery lost the daemon; retrying");
            self.status = DaemonStatus::Disconnected(error);
            self.publish();
            tokio::time::sleep(self.backoff.next_delay()).await;
        }
    }

    /// One session with the daemon; returns why it ended.
    async fn session(&mut self) -> DockerError {
        let mut events = match self.client.events().await {
            Ok(events) => events,
            Err(error) => return error,
        };
        if let Err(error) = self.resync().await {
            return error;
        }
        if self.status != DaemonStatus::Connected {
            tracing::info!(socket = %self.client.socket().display(), containers = self.containers.len(), "docker discovery connected");
        }
        self.status = DaemonStatus::Connected;
        self.publish();
        self.backoff.reset();
        let mut next_resync = self.resync.map(|every| Instant::now() + every);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Ok(Some(event)) => {
                        let Some(effect) = event.effect() else { continue };
                        tracing::debug!(kind = %event.kind, action = %event.action, "docker event");
                        if let Err(error) = self.apply(effect).await {
                            return error;
                        }
                    }
                    Ok(None) => return DockerError::StreamEnded,
                    Err(error) => return error,
                },
                Some(outcome) = self.probe_outcomes.recv() => self.probed(&outcome),
                () = sleep_until(next_resync) => {
                    if let Err(error) = self.resync().await {
                        return error;
                    }
                    self.publish();
                    next_resync = self.resync.map(|every| Instant::now() + every);
                }
            }
        }
    }

    /// Replaces the container list with the daemon's.
    async fn resync(&mut self) -> Result<(), DockerError> {
        let list = self.client.containers().await?;
        self.containers = list.into_iter().map(|c| (c.id.clone(), c)).collect();
        Ok(())
    }

    async fn apply(&mut self, effect: Effect) -> Result<(), DockerError> {
        match effect {
            Effect::Remove(id) => {
                self.containers.remove(&id);
            }
            Effect::Refresh(id) => match self.client.container(&id).await? {
                Some(container) => {
                    self.containers.insert(id, container);
                }
                None => {
                    self.containers.remove(&id);
                }
            },
        }
        self.publish();
        Ok(())
    }

    fn probed(&mut self, outcome: &ProbeOutcome) {
        let Some(probe) = self.probes.get_mut(&outcome.id) else {
            return;
        };
        if probe.spec != outcome.spec {
            return;
        }
        if let Some(port) = outcome.port {
            tracing::info!(container_id = %outcome.id, port, "docker discovery: probe port answered");
        } else {
            tracing::debug!(container_id = %outcome.id, "docker discovery: no probe port answered");
        }
        probe.found = outcome.port;
        self.publish();
    }

    /// Decides again about every container, starts and stops probes, and
    /// tells the agent when anything changed.
    fn publish(&mut self) {
        let probes = &self.probes;
        let evaluation = self.rules.evaluate(&self.containers, |id, spec| {
            probes
                .get(id)
                .filter(|probe| probe.spec == *spec)
                .and_then(|probe| probe.found)
        });
        let wanted: HashMap<&str, &ProbeSpec> = evaluation
            .probes
            .iter()
            .map(|(id, spec)| (id.as_str(), spec))
            .collect();
        self.probes
            .retain(|id, probe| wanted.get(id.as_str()) == Some(&&probe.spec));
        for (id, spec) in &evaluation.probes {
            if self.probes.contains_key(id) {
                continue;
            }
            let task = tokio::spawn(probe(
                self.prober.clone(),
                id.clone(),
                spec.clone(),
                self.probe_window,
                self.probe_results.clone(),
            ));
            self.probes.insert(
                id.clone(),
                Probe {
                    spec: spec.clone(),
                    found: None,
                    _task: AbortOnDrop(task.abort_handle()),
                },
            );
        }
        let targets = Targets {
            targets: evaluation.targets,
            problems: evaluation.problems,
            daemon: self.status.clone(),
        };
        {
            // The health series say only the kind: the log says what is
            // wrong, once, when a problem appears.
            let previous = self.published.borrow();
            let known: HashSet<(&str, &str)> = previous
                .problems
                .iter()
                .map(|p| (p.container.as_str(), p.message.as_str()))
                .collect();
            for problem in &targets.problems {
                if !known.contains(&(problem.container.as_str(), problem.message.as_str())) {
                    tracing::warn!(container = %problem.container, kind = problem.kind.as_str(), problem = %problem.message, "docker discovery: container cannot be scraped");
                }
            }
        }
        self.published.send_if_modified(|current| {
            if **current == targets {
                return false;
            }
            *current = Arc::new(targets);
            true
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Tries `spec`'s ports until one answers or `window` has passed.
async fn probe(
    client: reqwest::Client,
    id: String,
    spec: ProbeSpec,
    window: Duration,
    results: mpsc::Sender<ProbeOutcome>,
) {
    let give_up = Instant::now() + window;
    let mut pause = Duration::from_millis(250);
    let port = loop {
        if let Some(port) = first_answering(&client, &spec).await {
            break Some(port);
        }
        if Instant::now() + pause > give_up {
            break None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(15));
    };
    // The worker may be gone (discovery stopped): nothing to tell then.
    let _ = results.send(ProbeOutcome { id, spec, port }).await;
}

async fn first_answering(client: &reqwest::Client, spec: &ProbeSpec) -> Option<u16> {
    for &port in &spec.ports {
        let answer = client
            .get(spec.url(port))
            .header(reqwest::header::ACCEPT, crate::scrape::PROMETHEUS_ACCEPT)
            .send()
            .await;
        let Ok(response) = answer else { continue };
        // A web server that answers every path (a single-page app) sends
        // HTML; an exporter sends text or OpenMetrics.
        let metrics_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                let media = v.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case("text/plain")
                    || media.eq_ignore_ascii_case("application/openmetrics-text")
            });
        if response.status() == reqwest::StatusCode::OK && metrics_type {
            return Some(port);
        }
    }
    None
}

/// Pauses that double from `min` up to `max`. No jitter: one agent talks
/// to one local daemon, there is no crowd to spread.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The ID of the container this process runs in, from its mount table:
/// Docker bind-mounts `/etc/hostname` from the container's directory,
/// `.../containers/<id>/hostname`, with cgroup v1 and v2 alike.
pub fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if mount_point != "/etc/hostname" {
            return None;
        }
        let dir = Path::new(root).parent()?;
        let id = dir.file_name()?.to_str()?;
        let parent = dir.parent()?.file_name()?.to_str()?;
        let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        (parent == "containers" && is_id).then(|| id.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(700));
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(700), ms(700)]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
    }

    #[test]
    fn finds_the_own_container_in_the_mount_table() {
        let id = "3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d";
        let inside = format!(
            "1040 1019 0:52 / / rw,relatime master:1 - overlay overlay rw\n\
             1047 1040 254:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw\n\
             1048 1040 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&inside).as_deref(), Some(id));
        // On the host, a container's shm mount is in the table too; it is
        // not ours.
        let host = format!(
            "25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
             301 25 0:60 / /var/lib/docker/containers/{id}/mounts/shm rw - tmpfs shm rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&host), None);
        assert_eq!(container_id_from_mountinfo(""), None);
    }
}
