//! Which containers are scraped, at which URL and with which labels.
//!
//! The decision follows the `prometheus.io/*` label convention that
//! Prometheus users know from Kubernetes annotations:
//!
//! - `prometheus.io/scrape`: `true` to scrape, `false` to never scrape
//!   (not even by probing); anything else is a [`Problem`].
//! - `prometheus.io/port`: the port. Without it, a container that exposes
//!   exactly one TCP port is scraped there; otherwise the probe ports are
//!   tried, and without those it is a problem.
//! - `prometheus.io/path`: the path, `/metrics` by default.
//! - `prometheus.io/scheme`: `http` (default) or `https`.
//!
//! A container without `prometheus.io/scrape` is probed on the configured
//! `probe_ports` (as app-metrics-proxy does): the first port that answers
//! is scraped. Probing needs an address of the container's own, so
//! containers on the host's network stack or on another container's are
//! not probed: a port there cannot be told apart from the host's or the
//! other container's.
//!
//! # Addresses
//!
//! A container on the host network is reached at `127.0.0.1`; one that
//! joined another container's network stack at that container's address.
//! Otherwise the network is, in order: the configured `network` (or
//! `filters.network`); a network the agent's own container is attached to
//! (when the agent runs in a container, it can reach only those); any other
//! network, by name, with swarm's `ingress` last (it is for the routing
//! mesh). On the chosen network the IPv4 address is used, else the IPv6
//! one.
//!
//! Everything here is pure: the same containers give the same targets.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use regex::Regex;

use crate::api::Container;
use crate::config::{ConfigProblem, DockerConfig, Filters};
use crate::target::{label, Origin, Problem, ProblemKind, Target};

/// The container labels discovery reads.
pub mod container_label {
    /// `true` or `false`.
    pub const SCRAPE: &str = "prometheus.io/scrape";
    /// The port to scrape.
    pub const PORT: &str = "prometheus.io/port";
    /// The path to scrape.
    pub const PATH: &str = "prometheus.io/path";
    /// `http` or `https`.
    pub const SCHEME: &str = "prometheus.io/scheme";
    /// Set by `docker compose`.
    pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
    /// Set by `docker compose`.
    pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
    /// Set by swarm on a service's task containers.
    pub const SWARM_SERVICE: &str = "com.docker.swarm.service.name";
    /// Set by swarm on a service's task containers.
    pub const SWARM_TASK: &str = "com.docker.swarm.task.name";
    /// Set by swarm on a service's task containers.
    pub const SWARM_NODE: &str = "com.docker.swarm.node.id";
}

const DEFAULT_PATH: &str = "/metrics";

/// The compiled form of the configuration's decisions.
#[derive(Clone, Debug)]
pub struct Rules {
    filter: Filter,
    network: Option<String>,
    probe_ports: Vec<u16>,
    probe_path: String,
    max_containers: usize,
    /// The agent's own container, when it runs in one: never scraped (the
    /// agent would scrape itself in a loop), and its networks are the ones
    /// it can reach.
    own_id: Option<String>,
}

/// The configured filters, compiled.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    labels: Vec<(String, Option<String>)>,
    name: Option<Regex>,
    network: Option<String>,
}

impl Filter {
    pub(crate) fn compile(filters: &Filters) -> Result<Filter, ConfigProblem> {
        let mut labels = Vec::with_capacity(filters.label.len());
        for selector in &filters.label {
            let (key, value) = match selector.split_once('=') {
                Some((key, value)) => (key, Some(value.to_owned())),
                None => (selector.as_str(), None),
            };
            if key.is_empty() {
                return Err(ConfigProblem::new(
                    "filters.label",
                    format!("{selector:?}: the label name is empty (write key or key=value)"),
                ));
            }
            labels.push((key.to_owned(), value));
        }
        let name = filters
            .name
            .as_deref()
            .map(Regex::new)
            .transpose()
            .map_err(|e| ConfigProblem::new("filters.name", e.to_string()))?;
        Ok(Filter {
            labels,
            name,
            network: filters.network.clone(),
        })
    }

    fn matches(&self, container: &Container) -> bool {
        self.labels.iter().all(|(key, value)| {
            container
                .labels
                .get(key)
                .is_some_and(|found| value.as_ref().is_none_or(|v| v == found))
        }) && self
            .name
            .as_ref()
            .is_none_or(|regex| regex.is_match(&container.name))
            && self
                .network
                .as_ref()
                .is_none_or(|network| container.networks.contains_key(network))
    }
}

/// What to do with one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: not running, filtered out, opted out, or not asked for.
    Skip,
    /// Scrape it.
    Scrape(Target),
    /// Try these ports; scrape the first that answers.
    Probe(ProbeSpec),
    /// It asked to be scraped but cannot be.
    Problem(Problem),
}

/// Where to probe a container.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeSpec {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The container's address.
    pub host: IpAddr,
    /// The ports, in the order tried.
    pub ports: Vec<u16>,
    /// The path requested.
    pub path: String,
}

impl ProbeSpec {
    /// The URL for one of the ports.
    pub fn url(&self, port: u16) -> String {
        url(self.scheme, self.host, port, &self.path)
    }
}

/// The decisions for all containers at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// The containers to scrape, by name, at most `max_containers`.
    pub targets: Vec<Arc<Target>>,
    /// The containers that cannot be scraped, by name.
    pub problems: Vec<Problem>,
    /// The containers to probe (by ID), found or not yet.
    pub probes: Vec<(String, ProbeSpec)>,
}

impl Rules {
    /// Compiles the configuration's filters and choices.
    pub fn new(config: &DockerConfig) -> Result<Rules, ConfigProblem> {
        config.validate()?;
        Ok(Rules {
            filter: Filter::compile(&config.filters)?,
            network: config
                .network
                .clone()
                .or_else(|| config.filters.network.clone()),
            probe_ports: config.probe_ports.clone(),
            probe_path: config.probe_path.clone(),
            max_containers: config.max_containers,
            own_id: None,
        })
    }

    /// Tells the rules which container the agent runs in, if any.
    pub fn with_own_container(mut self, id: Option<String>) -> Rules {
        self.own_id = id;
        self
    }

    /// Decides about every container in `all` (keyed by ID). `probed`
    /// says which port answered a container's probe, if one did.
    pub fn evaluate(
        &self,
        all: &BTreeMap<String, Container>,
        probed: impl Fn(&str, &ProbeSpec) -> Option<u16>,
    ) -> Evaluation {
        let mut evaluation = Evaluation::default();
        for container in all.values() {
            match self.decide(container, all) {
                Decision::Skip => {}
                Decision::Scrape(target) => evaluation.targets.push(Arc::new(target)),
                Decision::Problem(problem) => evaluation.problems.push(problem),
                Decision::Probe(spec) => {
                    if let Some(port) = probed(&container.id, &spec) {
                        evaluation.targets.push(Arc::new(Target {
                            name: container.name.clone(),
                            id: container.id.clone(),
                            image: container.image.clone(),
                            url: spec.url(port),
                            labels: target_labels(container),
                            origin: Origin::Probe { port },
                        }));
                    }
                    evaluation.probes.push((container.id.clone(), spec));
                }
            }
        }
        evaluation.targets.sort_by(|a, b| a.name.cmp(&b.name));
        if evaluation.targets.len() > self.max_containers {
            for target in evaluation.targets.drain(self.max_containers..) {
                evaluation.problems.push(Problem {
                    container: target.name.clone(),
                    id: target.id.clone(),
                    kind: ProblemKind::TooMany,
                    message: format!(
                        "more than max_containers ({}) containers to scrape; this one is left out",
                        self.max_containers
                    ),
                });
            }
        }
        evaluation
            .problems
            .sort_by(|a, b| (&a.container, a.kind).cmp(&(&b.container, b.kind)));
        evaluation
    }

    /// Decides about one container; `all` (keyed by ID) is for the
    /// containers whose network stack it shares and the agent's own.
    pub fn decide(&self, container: &Container, all: &BTreeMap<String, Container>) -> Decision {
        if container.state != "running"
            || self.own_id.as_deref() == Some(container.id.as_str())
            || !self.filter.matches(container)
        {
            return Decision::Skip;
        }
        let problem = |kind, message: String| {
            Decision::Problem(Problem {
                container: container.name.clone(),
                id: container.id.clone(),
                kind,
                message,
            })
        };
        let bad_label = |message: String| problem(ProblemKind::BadLabel, message);
        let label = |name: &str| container.labels.get(name).map(|v| v.trim());
        let opted_in = match label(container_label::SCRAPE) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => return Decision::Skip,
            Some(v) => {
                return bad_label(format!(
                    "label {}={v:?}: expected true or false",
                    container_label::SCRAPE
                ))
            }
        };
        if !opted_in {
            let own_stack = !container.uses_host_network() && container.network_peer().is_none();
            if self.probe_ports.is_empty() || !own_stack {
                return Decision::Skip;
            }
            // Not asked for: no address is no problem, just nothing to do.
            return match self.address(container, all) {
                Ok(host) => Decision::Probe(ProbeSpec {
                    scheme: "http",
                    host,
                    ports: self.probe_ports.clone(),
                    path: self.probe_path.clone(),
                }),
                Err(_) => Decision::Skip,
            };
        }
        let path = label(container_label::PATH).unwrap_or(DEFAULT_PATH);
        if let Err(why) = check_metrics_path(path) {
            return bad_label(format!("label {}={path:?}: {why}", container_label::PATH));
        }
        let scheme = match label(container_label::SCHEME) {
            None => "http",
            Some(v) if v.eq_ignore_ascii_case("http") => "http",
            Some(v) if v.eq_ignore_ascii_case("https") => "https",
            Some(v) => {
                return bad_label(format!(
                    "label {}={v:?}: expected http or https",
                    container_label::SCHEME
                ))
            }
        };
        let port = match label(container_label::PORT) {
            None => None,
            Some(v) => match v.parse::<u16>() {
                Ok(port) if port != 0 => Some(port),
                _ => {
                    return bad_label(format!(
                        "label {}={v:?}: not a port number (1-65535)",
                        container_label::PORT
                    ))
                }
            },
        };
        let host = match self.address(container, all) {
            Ok(host) => host,
            Err(why) => return problem(ProblemKind::NoAddress, why),
        };
        let port = match port {
            Some(port) => port,
            None => match container.exposed_tcp_ports.as_slice() {
                [port] => *port,
                _ if !self.probe_ports.is_empty() => {
                    return Decision::Probe(ProbeSpec {
                        scheme,
                        host,
                        ports: self.probe_ports.clone(),
                        path: path.to_owned(),
                    })
                }
                [] => {
                    return bad_label(format!(
                        "label {} is missing and the container exposes no port",
                        container_label::PORT
                    ))
                }
                ports => {
                    return bad_label(format!(
                    "label {} is missing and the container exposes several ports ({}): say which",
                    container_label::PORT,
                    ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                }
            },
        };
        Decision::Scrape(Target {
            name: container.name.clone(),
            id: container.id.clone(),
            image: container.image.clone(),
            url: url(scheme, host, port, path),
            labels: target_labels(container),
            origin: Origin::Labels,
        })
    }

    /// The address the agent reaches `container` at, or why there is none.
    fn address(
        &self,
        container: &Container,
        all: &BTreeMap<String, Container>,
    ) -> Result<IpAddr, String> {
        if container.uses_host_network() {
            return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        if let Some(peer) = container.network_peer() {
            let found = all.get(peer).or_else(|| {
                all.values()
                    .find(|c| c.name == peer || (peer.len() >= 12 && c.id.starts_with(peer)))
            });
            return match found {
                Some(peer) if peer.uses_host_network() => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                Some(peer) => self.network_address(peer, all).ok_or_else(|| {
                    format!(
                        "it shares the network stack of container {}, which has no address",
                        peer.name
                    )
                }),
                None => Err(format!(
                    "it shares the network stack of container {peer}, which is not running"
                )),
            };
        }
        self.network_address(container, all).ok_or_else(|| {
            if container.networks.is_empty() {
                "it is attached to no network".to_owned()
            } else {
                format!(
                    "no address on its networks ({})",
                    container
                        .networks
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        })
    }

    fn network_address(
        &self,
        container: &Container,
        all: &BTreeMap<String, Container>,
    ) -> Option<IpAddr> {
        let own_networks = self
            .own_id
            .as_ref()
            .and_then(|id| all.get(id))
            .filter(|own| !own.uses_host_network())
            .map(|own| &own.networks);
        let shared = |name: &str| own_networks.is_some_and(|n| n.contains_key(name));
        // The networks in order of preference; BTreeMap order is by name.
        let mut order: Vec<&str> = Vec::with_capacity(container.networks.len() + 1);
        order.extend(self.network.as_deref());
        order.extend(
            container
                .networks
                .keys()
                .map(String::as_str)
                .filter(|n| shared(n)),
        );
        order.extend(
            container
                .networks
                .keys()
                .map(String::as_str)
                .filter(|n| *n != "ingress"),
        );
        order.push("ingress");
        order.into_iter().find_map(|name| {
            let endpoint = container.networks.get(name)?;
            endpoint
                .ipv4
                .map(IpAddr::V4)
                .or(endpoint.ipv6.map(IpAddr::V6))
        })
    }
}

/// The labels for a container's samples, in [`label::ALL`] order; compose
/// and swarm ones only when the container has them.
fn target_labels(container: &Container) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        (label::CONTAINER, container.name.clone()),
        (label::CONTAINER_ID, container.short_id().to_owned()),
    ];
    if !container.image.is_empty() {
        labels.push((label::IMAGE, container.image.clone()));
    }
    let from_container = [
        (label::COMPOSE_PROJECT, container_label::COMPOSE_PROJECT),
        (label::COMPOSE_SERVICE, container_label::COMPOSE_SERVICE),
        (label::SWARM_SERVICE, container_label::SWARM_SERVICE),
        (label::SWARM_TASK, container_label::SWARM_TASK),
        (label::SWARM_NODE, container_label::SWARM_NODE),
    ];
    for (name, key) in from_container {
        if let Some(value) = container.labels.get(key).filter(|v| !v.is_empty()) {
            labels.push((name, value.clone()));
        }
    }
    labels
}

fn url(scheme: &str, host: IpAddr, port: u16, path: &str) -> String {
    match host {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}{path}"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}{path}"),
    }
}

/// Whether `path` can be a scrape path: absolute, no spaces, no fragment.
pub(crate) fn check_metrics_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("the path must start with '/'".into());
    }
    if path.len() > 1024 {
        return Err("the path is longer than 1024 bytes".into());
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err("the path must not contain spaces, control characters or '#'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{fixtures, parse_container_list};

    fn containers() -> BTreeMap<String, Container> {
        parse_container_list(fixtures::LIST.as_bytes())
            .unwrap()
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect()
    }

    fn rules(yaml: &str) -> Rules {
        let config: DockerConfig = serde_yaml::from_str(yaml).unwrap();
        Rules::new(&config).unwrap()
    }

    fn by_name<'a>(all: &'a BTreeMap<String, Container>, name: &str) -> &'a Container {
        all.values().find(|c| c.name == name).unwrap()
    }

    fn with_labels(mut container: Container, labels: &[(&str, &str)]) -> Container {
        for (key, value) in labels {
            container
                .labels
                .insert((*key).to_owned(), (*value).to_owned());
        }
        container
    }

    fn labels_of(target: &Target) -> Vec<(&str, &str)> {
        target
            .labels
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect()
    }

    #[test]
    fn compose_replicas_get_distinct_labels() {
        let all = containers();
        let evaluation = rules("{}").evaluate(&all, |_, _| None);
        let names: Vec<_> = evaluation.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "api.2.kq1m0yb3x0a7mkn6h0p1mdlsz",
                "node",
                "shop-web-1",
                "shop-web-2",
                "web-sidecar"
            ]
        );
        let web1 = &evaluation.targets[2];
        assert_eq!(web1.url, "http://172.18.0.2:9100/metrics");
        assert_eq!(web1.origin, Origin::Labels);
        assert_eq!(
            labels_of(web1),
            [
                ("container", "shop-web-1"),
                ("container_id", "3ebf7cf923e7"),
                ("image", "shop/web:1.4"),
                ("compose_project", "shop"),
                ("compose_service", "web"),
            ]
        );
        let web2 = &evaluation.targets[3];
        assert_eq!(web2.url, "http://172.18.0.3:9100/metrics");
        assert_ne!(web1.label_set(&[]).unwrap(), web2.label_set(&[]).unwrap());
        assert!(evaluation.problems.is_empty(), "{:?}", evaluation.problems);
        assert!(evaluation.probes.is_empty());
    }

    #[test]
    fn swarm_tasks_carry_service_task_and_node() {
        let all = containers();
        let task = by_name(&all, "api.2.kq1m0yb3x0a7mkn6h0p1mdlsz");
        let Decision::Scrape(target) = rules("{}").decide(task, &all) else {
            panic!("not scraped");
        };
        assert_eq!(target.url, "https://10.0.1.9:8080/internal/metrics");
        let labels = labels_of(&target);
        assert!(labels.contains(&("swarm_service", "prod_api")));
        assert!(labels.contains(&("swarm_task", "prod_api.2.kq1m0yb3x0a7mkn6h0p1mdlsz")));
        assert!(labels.contains(&("swarm_node", "u3wfx8xz0zq6zdf0w5y0h3v2b")));
        assert!(!labels.iter().any(|(k, _)| k.starts_with("compose")));
        let set = target.label_set(&[("exporter", "docker")]).unwrap();
        assert!(set
            .rendered()
            .starts_with("exporter=\"docker\",container=\"api.2."));
    }

    #[test]
    fn host_network_and_shared_stacks() {
        let all = containers();
        let rules = rules("{}");
        let Decision::Scrape(node) = rules.decide(by_name(&all, "node"), &all) else {
            panic!("host-network container not scraped");
        };
        assert_eq!(node.url, "http://127.0.0.1:9100/metrics");
        let Decision::Scrape(sidecar) = rules.decide(by_name(&all, "web-sidecar"), &all) else {
            panic!("sidecar not scraped");
        };
        assert_eq!(
            sidecar.url, "http://172.18.0.2:9113/metrics",
            "its peer's address"
        );
        let mut alone = all;
        alone.retain(|_, c| c.name != "shop-web-1");
        let Decision::Problem(problem) = rules.decide(by_name(&alone, "web-sidecar"), &alone)
        else {
            panic!("expected a problem");
        };
        assert_eq!(problem.kind, ProblemKind::NoAddress);
        assert!(
            problem.message.contains("not running"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn network_choice() {
        let all = containers();
        let task = by_name(&all, "api.2.kq1m0yb3x0a7mkn6h0p1mdlsz");
        let cache = with_labels(
            by_name(&all, "cache").clone(),
            &[
                ("prometheus.io/scrape", "true"),
                ("prometheus.io/port", "9121"),
            ],
        );
        let url_of = |rules: &Rules, container: &Container| match rules.decide(container, &all) {
            Decision::Scrape(target) => target.url,
            other => panic!("{other:?}"),
        };
        // ingress comes last even though it sorts first.
        assert_eq!(
            url_of(&rules("{}"), task),
            "https://10.0.1.9:8080/internal/metrics"
        );
        // First network by name: bridge.
        assert_eq!(
            url_of(&rules("{}"), &cache),
            "http://172.17.0.4:9121/metrics"
        );
        // The configured network wins, and so does filters.network.
        assert_eq!(
            url_of(&rules("network: monitoring"), &cache),
            "http://172.20.0.5:9121/metrics"
        );
        assert_eq!(
            url_of(&rules("filters: {network: monitoring}"), &cache),
            "http://172.20.0.5:9121/metrics"
        );
        // A configured network the container is not on falls back.
        assert_eq!(
            url_of(&rules("network: elsewhere"), &cache),
            "http://172.17.0.4:9121/metrics"
        );
        // IPv6 only: bracketed.
        let mut v6 = cache;
        v6.networks.remove("bridge");
        v6.networks.get_mut("monitoring").unwrap().ipv4 = None;
        assert_eq!(url_of(&rules("{}"), &v6), "http://[fd00::5]:9121/metrics");
    }

    #[test]
    fn the_agents_own_networks_are_preferred_and_it_is_never_scraped() {
        let mut all = containers();
        let agent = with_labels(
            Container {
                id: "a".repeat(64),
                name: "promrelay".into(),
                image: "promrelay:1".into(),
                labels: BTreeMap::new(),
                state: "running".into(),
                network_mode: "monitoring".into(),
                networks: [("monitoring".to_owned(), crate::api::Endpoint::default())].into(),
                exposed_tcp_ports: vec![9090],
            },
            &[("prometheus.io/scrape", "true")],
        );
        all.insert(agent.id.clone(), agent.clone());
        let cache = with_labels(
            by_name(&all, "cache").clone(),
            &[
                ("prometheus.io/scrape", "true"),
                ("prometheus.io/port", "9121"),
            ],
        );
        let rules = rules("{}").with_own_container(Some(agent.id.clone()));
        let Decision::Scrape(target) = rules.decide(&cache, &all) else {
            panic!("cache not scraped");
        };
        assert_eq!(target.url, "http://172.20.0.5:9121/metrics");
        assert_eq!(rules.decide(&agent, &all), Decision::Skip);
    }

    #[test]
    fn bad_labels_are_problems_of_their_container_only() {
        let mut all = containers();
        let web1 = by_name(&all, "shop-web-1").id.clone();
        let cases = [
            (
                ("prometheus.io/port", "notaport"),
                "prometheus.io/port=\"notaport\": not a port number",
            ),
            (("prometheus.io/port", "0"), "not a port number"),
            (("prometheus.io/port", "70000"), "not a port number"),
            (
                ("prometheus.io/scrape", "yes please"),
                "expected true or false",
            ),
            (("prometheus.io/scheme", "ftp"), "expected http or https"),
            (("prometheus.io/path", "metrics"), "must start with '/'"),
            (("prometheus.io/path", "/a b"), "spaces"),
        ];
        for ((key, value), expected) in cases {
            let container = all.get_mut(&web1).unwrap();
            let original = container.labels.insert(key.to_owned(), value.to_owned());
            let evaluation = rules("{}").evaluate(&all, |_, _| None);
            assert_eq!(evaluation.problems.len(), 1, "{key}={value}");
            let problem = &evaluation.problems[0];
            assert_eq!(problem.container, "shop-web-1");
            assert_eq!(problem.kind, ProblemKind::BadLabel);
            assert!(problem.message.contains(expected), "{}", problem.message);
            assert!(evaluation.targets.iter().all(|t| t.name != "shop-web-1"));
            assert_eq!(evaluation.targets.len(), 4, "the others are still scraped");
            let container = all.get_mut(&web1).unwrap();
            match original {
                Some(v) => container.labels.insert(key.to_owned(), v),
                None => container.labels.remove(key),
            };
        }
    }

    #[test]
    fn a_missing_port_uses_the_one_exposed_port_or_asks() {
        let all = containers();
        let mut web = by_name(&all, "shop-web-1").clone();
        web.labels.remove("prometheus.io/port");
        let Decision::Scrape(target) = rules("{}").decide(&web, &all) else {
            panic!("not scraped on its one exposed port");
        };
        assert_eq!(target.url, "http://172.18.0.2:9100/metrics");
        let cache = with_labels(
            by_name(&all, "cache").clone(),
            &[("prometheus.io/scrape", "true")],
        );
        let Decision::Problem(problem) = rules("{}").decide(&cache, &all) else {
            panic!("expected a problem");
        };
        assert!(
            problem.message.contains("several ports (6379, 9121)"),
            "{}",
            problem.message
        );
        // With probe ports, they are tried instead.
        let Decision::Probe(spec) = rules("probe_ports: [9121]").decide(&cache, &all) else {
            panic!("expected a probe");
        };
        assert_eq!(spec.url(9121), "http://172.17.0.4:9121/metrics");
    }

    #[test]
    fn unlabelled_containers_are_probed_when_ports_are_configured() {
        let all = containers();
        let cache = by_name(&all, "cache");
        assert_eq!(rules("{}").decide(cache, &all), Decision::Skip);
        let rules = rules("probe_ports: [9100, 9121]\nprobe_path: /stats");
        let evaluation = rules.evaluate(&all, |_, _| None);
        assert_eq!(
            evaluation.probes.len(),
            1,
            "only cache: the others are labelled"
        );
        let (id, spec) = &evaluation.probes[0];
        assert_eq!(id, &cache.id);
        assert_eq!(spec.ports, [9100, 9121]);
        assert_eq!(spec.url(9100), "http://172.17.0.4:9100/stats");
        assert!(
            evaluation.targets.iter().all(|t| t.name != "cache"),
            "not found yet"
        );
        let found = rules.evaluate(&all, |id, _| (id == cache.id).then_some(9121));
        let target = found.targets.iter().find(|t| t.name == "cache").unwrap();
        assert_eq!(target.origin, Origin::Probe { port: 9121 });
        assert_eq!(target.url, "http://172.17.0.4:9121/stats");
        assert_eq!(labels_of(target)[0], ("container", "cache"));
        // Opted out, host network and shared stacks are never probed.
        let opted_out = with_labels(cache.clone(), &[("prometheus.io/scrape", "false")]);
        assert_eq!(rules.decide(&opted_out, &all), Decision::Skip);
        let mut host = cache.clone();
        host.network_mode = "host".into();
        assert_eq!(rules.decide(&host, &all), Decision::Skip);
    }

    #[test]
    fn filters() {
        let all = containers();
        let names = |yaml: &str| {
            rules(yaml)
                .evaluate(&all, |_, _| None)
                .targets
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("filters: {name: '^shop-'}"),
            ["shop-web-1", "shop-web-2"]
        );
        assert_eq!(
            names("filters: {label: ['com.docker.compose.service=web']}"),
            ["shop-web-1", "shop-web-2"]
        );
        assert_eq!(
            names("filters: {label: ['com.docker.swarm.task.name']}"),
            ["api.2.kq1m0yb3x0a7mkn6h0p1mdlsz"]
        );
        assert_eq!(
            names("filters: {label: ['com.docker.compose.service=web', 'com.docker.compose.container-number=2']}"),
            ["shop-web-2"]
        );
        assert_eq!(
            names("filters: {network: prod_backend}"),
            ["api.2.kq1m0yb3x0a7mkn6h0p1mdlsz"]
        );
        assert!(names("filters: {name: '^nothing$'}").is_empty());
    }

    #[test]
    fn stopped_containers_are_skipped() {
        let all = containers();
        let mut web = by_name(&all, "shop-web-1").clone();
        web.state = "paused".into();
        assert_eq!(rules("{}").decide(&web, &all), Decision::Skip);
    }

    #[test]
    fn too_many_containers_are_reported() {
        let all = containers();
        let evaluation = rules("max_containers: 2").evaluate(&all, |_, _| None);
        assert_eq!(evaluation.targets.len(), 2);
        let left_out: Vec<_> = evaluation
            .problems
            .iter()
            .map(|p| (p.container.as_str(), p.kind))
            .collect();
        assert_eq!(
            left_out,
            [
                ("shop-web-1", ProblemKind::TooMany),
                ("shop-web-2", ProblemKind::TooMany),
                ("web-sidecar", ProblemKind::TooMany),
            ]
        );
    }
}
