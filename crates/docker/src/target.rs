//! What discovery hands to the agent: the containers to scrape, the
//! containers it refused and why, and whether the daemon is reachable.

use std::sync::Arc;

use exposition::{LabelSet, LabelSetError};

use crate::client::DockerError;

/// The labels a container's samples carry on the merged page, so that
/// replicas of one service never overwrite each other. A label is present
/// only when the container has the value (compose and swarm labels).
pub mod label {
    /// The container name (unique on a host): `shop-web-1`.
    pub const CONTAINER: &str = "container";
    /// The short container ID (12 hex digits): `3ebf7cf923e7`.
    pub const CONTAINER_ID: &str = "container_id";
    /// The image the container was created from: `shop/web:1.4`.
    pub const IMAGE: &str = "image";
    /// `com.docker.compose.project`.
    pub const COMPOSE_PROJECT: &str = "compose_project";
    /// `com.docker.compose.service`.
    pub const COMPOSE_SERVICE: &str = "compose_service";
    /// `com.docker.swarm.service.name`.
    pub const SWARM_SERVICE: &str = "swarm_service";
    /// `com.docker.swarm.task.name`: `prod_api.2.kq1m0yb3x0a7mkn6h0p1mdlsz`.
    pub const SWARM_TASK: &str = "swarm_task";
    /// `com.docker.swarm.node.id`.
    pub const SWARM_NODE: &str = "swarm_node";

    /// Every label discovery may set, in the order it sets them.
    pub const ALL: [&str; 8] = [
        CONTAINER,
        CONTAINER_ID,
        IMAGE,
        COMPOSE_PROJECT,
        COMPOSE_SERVICE,
        SWARM_SERVICE,
        SWARM_TASK,
        SWARM_NODE,
    ];
}

/// One container to scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The container name; the agent serves it at
    /// `/containers/<name>/metrics`. Docker names use `[a-zA-Z0-9_.-]`.
    pub name: String,
    /// The full container ID.
    pub id: String,
    /// The image the container was created from.
    pub image: String,
    /// The URL scraped.
    pub url: String,
    /// The labels for its samples (see [`label`]), in a fixed order.
    pub labels: Vec<(&'static str, String)>,
    /// Why it is scraped.
    pub origin: Origin,
}

/// Why a container is scraped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// It carries `prometheus.io/scrape=true`.
    Labels,
    /// It answered on this one of the configured probe ports.
    Probe {
        /// The port that answered.
        port: u16,
    },
}

impl Target {
    /// The first 12 characters of the ID.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// The labels as the exposition engine adds them, after `first` (the
    /// agent's source label and any static labels of the source).
    ///
    /// Fails only when `first` repeats one of [`label::ALL`] or is not a
    /// label name; the agent's configuration check should refuse that.
    pub fn label_set(&self, first: &[(&str, &str)]) -> Result<LabelSet, LabelSetError> {
        LabelSet::new(
            first.iter().copied().chain(
                self.labels
                    .iter()
                    .map(|(name, value)| (*name, value.as_str())),
            ),
        )
    }
}

/// A container that asked to be scraped (or was probed) but cannot be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The container name.
    pub container: String,
    /// The full container ID.
    pub id: String,
    /// What kind of problem, for a metric label.
    pub kind: ProblemKind,
    /// What is wrong, for people: names the label and value.
    pub message: String,
}

/// Kinds of [`Problem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// A `prometheus.io/*` label has a value that cannot be used.
    BadLabel,
    /// The container has no address the agent could use.
    NoAddress,
    /// More containers than `max_containers`.
    TooMany,
}

impl ProblemKind {
    /// The value for a `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::BadLabel => "bad_label",
            ProblemKind::NoAddress => "no_address",
            ProblemKind::TooMany => "too_many",
        }
    }
}

/// Whether discovery is in touch with the daemon.
#[derive(Clone, Debug, PartialEq)]
pub enum DaemonStatus {
    /// Not yet: the first list has not been read.
    Connecting,
    /// The list was read and the event stream is followed.
    Connected,
    /// The socket or the stream failed; retrying with backoff. The targets
    /// are the last ones known.
    Disconnected(DockerError),
}

/// Everything discovery currently knows, replaced whole on each change.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    /// The containers to scrape, by name.
    pub targets: Vec<Arc<Target>>,
    /// Containers that cannot be scraped, by name.
    pub problems: Vec<Problem>,
    /// The daemon connection.
    pub daemon: DaemonStatus,
}

impl Default for Targets {
    fn default() -> Targets {
        Targets {
            targets: Vec::new(),
            problems: Vec::new(),
            daemon: DaemonStatus::Connecting,
        }
    }
}

impl Targets {
    /// The target for the container named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.targets[index])
    }
}
