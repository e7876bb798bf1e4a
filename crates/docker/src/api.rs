//! What the Docker Engine API says, read into our own types.
//!
//! Two answers matter: the container list (`GET /containers/json`, API
//! 1.41 as Docker 20.10 writes it) and the event stream (`GET /events`,
//! one JSON object per line). Only the fields discovery uses are read;
//! everything else is ignored, so newer daemons that add fields still work.
//! Reference: <https://docs.docker.com/engine/api/v1.41/>.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// The API version every request names (Docker 20.10; later daemons still
/// serve it).
pub const API_VERSION: &str = "v1.41";

/// A container as the list endpoint describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    /// The full 64-character ID.
    pub id: String,
    /// The name, without Docker's leading `/`.
    pub name: String,
    /// The image as the container was created from it (`name:tag`, or an
    /// ID when the tag has moved on).
    pub image: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// `running`, `paused`, `exited`, ...
    pub state: String,
    /// `default`, `bridge`, `host`, `none`, `container:<id>` or a network
    /// name.
    pub network_mode: String,
    /// The networks the container is attached to, by name.
    pub networks: BTreeMap<String, Endpoint>,
    /// TCP ports the container exposes (its image's `EXPOSE`, `--expose`
    /// or published ports), inside the container, ascending.
    pub exposed_tcp_ports: Vec<u16>,
}

/// A container's addresses on one network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The IPv4 address, if it has one.
    pub ipv4: Option<Ipv4Addr>,
    /// The global IPv6 address, if it has one.
    pub ipv6: Option<Ipv6Addr>,
}

impl Container {
    /// The first 12 characters of the ID, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// Whether the container shares the host's network stack.
    pub fn uses_host_network(&self) -> bool {
        self.network_mode == "host"
    }

    /// The container whose network stack this one joined
    /// (`--network container:<name or id>`).
    pub fn network_peer(&self) -> Option<&str> {
        self.network_mode.strip_prefix("container:")
    }
}

/// Reads the answer of `GET /containers/json`.
pub fn parse_container_list(body: &[u8]) -> Result<Vec<Container>, serde_json::Error> {
    let wire: Vec<WireContainer> = serde_json::from_slice(body)?;
    Ok(wire.into_iter().map(Container::from).collect())
}

/// Reads the answer of `GET /containers/{id}/json` (inspect). Unlike the
/// list, which the daemon serves from a snapshot that it updates a moment
/// after some events (network `connect`), inspect reads the container
/// itself, so it is what an event is followed up with.
pub fn parse_container_inspect(body: &[u8]) -> Result<Container, serde_json::Error> {
    let wire: WireInspect = serde_json::from_slice(body)?;
    let config = wire.config.unwrap_or_default();
    let network_settings = wire.network_settings;
    // Keys such as "9100/tcp", from the image's EXPOSE and --expose, and
    // from the published ports.
    let mut keys: Vec<String> = config
        .exposed_ports
        .unwrap_or_default()
        .into_keys()
        .collect();
    if let Some(serde_json::Value::Object(published)) =
        network_settings.as_ref().and_then(|s| s.ports.as_ref())
    {
        keys.extend(published.keys().cloned());
    }
    let mut exposed_tcp_ports: Vec<u16> = keys
        .iter()
        .filter_map(|key| {
            let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
            (protocol == "tcp").then(|| port.parse().ok()).flatten()
        })
        .filter(|&port| port != 0)
        .collect();
    exposed_tcp_ports.sort_unstable();
    exposed_tcp_ports.dedup();
    Ok(Container {
        id: wire.id,
        name: wire
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config.image.unwrap_or_default(),
        labels: config.labels.unwrap_or_default(),
        state: wire.state.and_then(|s| s.status).unwrap_or_default(),
        network_mode: wire
            .host_config
            .and_then(|h| h.network_mode)
            .unwrap_or_default(),
        networks: endpoints(network_settings.and_then(|s| s.networks)),
        exposed_tcp_ports,
    })
}

#[derive(Deserialize)]
struct WireInspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "State", default)]
    state: Option<WireState>,
    #[serde(rename = "Config", default)]
    config: Option<WireConfig>,
    #[serde(rename = "HostConfig", default)]
    host_config: Option<WireHostConfig>,
    #[serde(rename = "NetworkSettings", default)]
    network_settings: Option<WireNetworkSettings>,
}

#[derive(Deserialize)]
struct WireState {
    #[serde(rename = "Status", default)]
    status: Option<String>,
}

#[derive(Default, Deserialize)]
struct WireConfig {
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "ExposedPorts", default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

fn endpoints(wire: Option<BTreeMap<String, WireEndpoint>>) -> BTreeMap<String, Endpoint> {
    wire.unwrap_or_default()
        .into_iter()
        .map(|(name, endpoint)| {
            let ipv4 = endpoint.ip_address.and_then(|a| a.parse().ok());
            let ipv6 = endpoint.global_ipv6_address.and_then(|a| a.parse().ok());
            (name, Endpoint { ipv4, ipv6 })
        })
        .collect()
}

#[derive(Deserialize)]
struct WireContainer {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "State", default)]
    state: Option<String>,
    #[serde(rename = "HostConfig", default)]
    host_config: Option<WireHostConfig>,
    #[serde(rename = "NetworkSettings", default)]
    network_settings: Option<WireNetworkSettings>,
    #[serde(rename = "Ports", default)]
    ports: Option<Vec<WirePort>>,
}

#[derive(Deserialize)]
struct WireHostConfig {
    #[serde(rename = "NetworkMode", default)]
    network_mode: Option<String>,
}

#[derive(Deserialize)]
struct WireNetworkSettings {
    #[serde(rename = "Networks", default)]
    networks: Option<BTreeMap<String, WireEndpoint>>,
    /// Inspect only: published ports by `"9100/tcp"` (read loosely: the
    /// list endpoint has no such field).
    #[serde(rename = "Ports", default)]
    ports: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireEndpoint {
    #[serde(rename = "IPAddress", default)]
    ip_address: Option<String>,
    #[serde(rename = "GlobalIPv6Address", default)]
    global_ipv6_address: Option<String>,
}

#[derive(Deserialize)]
struct WirePort {
    #[serde(rename = "PrivatePort", default)]
    private_port: Option<u16>,
    #[serde(rename = "Type", default)]
    kind: Option<String>,
}

impl From<WireContainer> for Container {
    fn from(wire: WireContainer) -> Container {
        let names = wire.names.unwrap_or_default();
        // A linked container also shows up as `/other/alias`; its own name
        // is the one without a second slash.
        let name = names
            .iter()
            .map(|n| n.strip_prefix('/').unwrap_or(n))
            .find(|n| !n.contains('/'))
            .or_else(|| names.first().map(|n| n.trim_start_matches('/')))
            .unwrap_or_default()
            .to_owned();
        let networks = endpoints(wire.network_settings.and_then(|s| s.networks));
        let mut exposed_tcp_ports: Vec<u16> = wire
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.kind.as_deref().is_none_or(|k| k == "tcp"))
            .filter_map(|p| p.private_port)
            .filter(|&p| p != 0)
            .collect();
        // A published port is listed once per host address (IPv4, IPv6).
        exposed_tcp_ports.sort_unstable();
        exposed_tcp_ports.dedup();
        Container {
            id: wire.id,
            name,
            image: wire.image.unwrap_or_default(),
            labels: wire.labels.unwrap_or_default(),
            state: wire.state.unwrap_or_default(),
            network_mode: wire
                .host_config
                .and_then(|h| h.network_mode)
                .unwrap_or_default(),
            networks,
            exposed_tcp_ports,
        }
    }
}

/// One line of the event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `container`, `network`, ...
    pub kind: String,
    /// `start`, `die`, `connect`, ... (some carry a suffix, such as
    /// `health_status: healthy`).
    pub action: String,
    /// The ID of what the event is about (a network's for network events).
    pub actor_id: String,
    /// The actor's attributes (a network event names the container).
    pub attributes: BTreeMap<String, String>,
}

/// What an event means for the container list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Something about this container may have changed (it started, was
    /// renamed, joined or left a network, was paused): read it again.
    Refresh(String),
    /// This container stopped or is gone.
    Remove(String),
}

impl Event {
    /// What this event asks of the container list, if anything.
    pub fn effect(&self) -> Option<Effect> {
        match (self.kind.as_str(), self.action.as_str()) {
            ("container", "start" | "unpause" | "pause" | "rename" | "update" | "restart") => {
                Some(Effect::Refresh(self.actor_id.clone()))
            }
            ("container", "die" | "stop" | "destroy") => {
                Some(Effect::Remove(self.actor_id.clone()))
            }
            ("network", "connect" | "disconnect") => self
                .attributes
                .get("container")
                .map(|id| Effect::Refresh(id.clone())),
            _ => None,
        }
    }
}

/// Reads one line of `GET /events`.
pub fn parse_event(line: &[u8]) -> Result<Event, serde_json::Error> {
    let wire: WireEvent = serde_json::from_slice(line)?;
    let actor = wire.actor.unwrap_or_default();
    Ok(Event {
        kind: wire.kind.unwrap_or_default(),
        action: wire.action.unwrap_or_default(),
        actor_id: actor.id.unwrap_or_default(),
        attributes: actor.attributes.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<String>,
    #[serde(rename = "Actor", default)]
    actor: Option<WireActor>,
}

#[derive(Default, Deserialize)]
struct WireActor {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Answers as Docker 20.10 wrote them (trimmed to the fields it always
    //! sends for these containers).

    /// Two compose replicas, a swarm task, a host-network container, a
    /// container sharing another's network stack, and one on two networks.
    pub(crate) const LIST: &str = r#"[
  {
    "Id": "3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d",
    "Names": ["/shop-web-1"],
    "Image": "shop/web:1.4",
    "ImageID": "sha256:ef2c7bc2e015f6e3b4291aeca394ee4940df25b98bd2a902a99c2340bce05c63",
    "Command": "/server",
    "Created": 1795475880,
    "Ports": [{"PrivatePort": 9100, "Type": "tcp"}],
    "Labels": {
      "com.docker.compose.project": "shop",
      "com.docker.compose.service": "web",
      "com.docker.compose.container-number": "1",
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9100"
    },
    "State": "running",
    "Status": "Up 3 minutes",
    "HostConfig": {"NetworkMode": "shop_default"},
    "NetworkSettings": {"Networks": {"shop_default": {
      "IPAMConfig": null, "Links": null, "Aliases": null,
      "NetworkID": "6a0d5125a169c0ad0b3a6d2c80c1bbcbbfd2e7f0d0a1cf8d25e4d1b0e5d0a1b2",
      "EndpointID": "e06fdf3b3382d0fecd798deb0d5e7527a4e7384afc35d611867bd0461462fc1d",
      "Gateway": "172.18.0.1", "IPAddress": "172.18.0.2", "IPPrefixLen": 16,
      "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
      "MacAddress": "02:42:ac:12:00:02", "DriverOpts": null}}},
    "Mounts": []
  },
  {
    "Id": "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
    "Names": ["/shop-web-2"],
    "Image": "shop/web:1.4",
    "Command": "/server",
    "Created": 1795475881,
    "Ports": [{"PrivatePort": 9100, "Type": "tcp"}],
    "Labels": {
      "com.docker.compose.project": "shop",
      "com.docker.compose.service": "web",
      "com.docker.compose.container-number": "2",
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9100"
    },
    "State": "running",
    "HostConfig": {"NetworkMode": "shop_default"},
    "NetworkSettings": {"Networks": {"shop_default": {
      "Gateway": "172.18.0.1", "IPAddress": "172.18.0.3", "IPPrefixLen": 16,
      "GlobalIPv6Address": ""}}},
    "Mounts": []
  },
  {
    "Id": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
    "Names": ["/api.2.kq1m0yb3x0a7mkn6h0p1mdlsz"],
    "Image": "images.example:5000/api:2@sha256:0d7c1f3e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
    "Ports": [],
    "Labels": {
      "com.docker.stack.namespace": "prod",
      "com.docker.swarm.node.id": "u3wfx8xz0zq6zdf0w5y0h3v2b",
      "com.docker.swarm.service.id": "l1h3q8d0b0u8jvcz5c2hq5w3p",
      "com.docker.swarm.service.name": "prod_api",
      "com.docker.swarm.task": "",
      "com.docker.swarm.task.id": "kq1m0yb3x0a7mkn6h0p1mdlsz",
      "com.docker.swarm.task.name": "prod_api.2.kq1m0yb3x0a7mkn6h0p1mdlsz",
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "8080",
      "prometheus.io/path": "/internal/metrics",
      "prometheus.io/scheme": "https"
    },
    "State": "running",
    "HostConfig": {"NetworkMode": "default"},
    "NetworkSettings": {"Networks": {
      "ingress": {"IPAddress": "10.0.0.7", "GlobalIPv6Address": ""},
      "prod_backend": {"IPAddress": "10.0.1.9", "GlobalIPv6Address": ""}}},
    "Mounts": []
  },
  {
    "Id": "6ecd651a051a0904b8e36da45024d0f775f3c48a9fd08b16dd34f7ee0dc0b65a",
    "Names": ["/node"],
    "Image": "prom/node-exporter:v1.5.0",
    "Ports": [],
    "Labels": {"prometheus.io/scrape": "true", "prometheus.io/port": "9100"},
    "State": "running",
    "HostConfig": {"NetworkMode": "host"},
    "NetworkSettings": {"Networks": {"host": {"IPAddress": "", "GlobalIPv6Address": ""}}},
    "Mounts": []
  },
  {
    "Id": "7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b",
    "Names": ["/web-sidecar"],
    "Image": "exporter:1",
    "Ports": [],
    "Labels": {"prometheus.io/scrape": "true", "prometheus.io/port": "9113"},
    "State": "running",
    "HostConfig": {"NetworkMode": "container:3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d"},
    "NetworkSettings": {"Networks": {}},
    "Mounts": []
  },
  {
    "Id": "8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c",
    "Names": ["/cache", "/shop-web-1/cache"],
    "Image": "redis:7",
    "Ports": [{"IP": "0.0.0.0", "PrivatePort": 6379, "PublicPort": 6379, "Type": "tcp"},
              {"IP": "::", "PrivatePort": 6379, "PublicPort": 6379, "Type": "tcp"},
              {"PrivatePort": 9121, "Type": "tcp"}],
    "Labels": null,
    "State": "running",
    "HostConfig": {"NetworkMode": "default"},
    "NetworkSettings": {"Networks": {
      "bridge": {"IPAddress": "172.17.0.4", "GlobalIPv6Address": ""},
      "monitoring": {"IPAddress": "172.20.0.5", "GlobalIPv6Address": "fd00::5"}}},
    "Mounts": []
  }
]"#;

    /// `GET /containers/{id}/json` of a container on two networks with an
    /// exposed, published port (trimmed).
    pub(crate) const INSPECT: &str = r#"{
  "Id": "c9ed3e65c8c0efc23b4bad2b8f268e7f9a9fd1d1a8326f77ed47e88d421c4d12",
  "Created": "2026-11-23T23:29:09.512040371Z",
  "Path": "/server",
  "Args": [],
  "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false,
            "OOMKilled": false, "Dead": false, "Pid": 7668, "ExitCode": 0, "Error": "",
            "StartedAt": "2026-11-23T23:29:09.804131882Z", "FinishedAt": "0001-01-01T00:00:00Z"},
  "Image": "sha256:ef2c7bc2e015f6e3b4291aeca394ee4940df25b98bd2a902a99c2340bce05c63",
  "Name": "/probe-fx",
  "RestartCount": 0,
  "HostConfig": {"NetworkMode": "default",
                 "PortBindings": {"9100/tcp": [{"HostIp": "127.0.0.1", "HostPort": "19555"}]}},
  "Config": {"Hostname": "c9ed3e65c8c0", "Image": "promrelay-probe:t",
             "Labels": {"com.docker.compose.project": "shop", "prometheus.io/scrape": "true"},
             "ExposedPorts": {"9100/tcp": {}, "9125/udp": {}},
             "Env": ["PORT=9100"]},
  "NetworkSettings": {
    "Bridge": "", "HairpinMode": false,
    "Ports": {"9100/tcp": [{"HostIp": "127.0.0.1", "HostPort": "19555"}]},
    "Gateway": "172.17.0.1", "GlobalIPv6Address": "", "IPAddress": "172.17.0.2",
    "Networks": {
      "bridge": {"IPAMConfig": null, "Links": null, "Aliases": null,
                 "NetworkID": "27e57195bc0d85cb1f0aa74641ce4e5ce512ca87219640830cdb1ae5a7f824ad",
                 "Gateway": "172.17.0.1", "IPAddress": "172.17.0.2", "IPPrefixLen": 16,
                 "GlobalIPv6Address": "", "MacAddress": "02:42:ac:11:00:02", "DriverOpts": null},
      "fx-net": {"IPAMConfig": {}, "Links": null, "Aliases": ["c9ed3e65c8c0"],
                 "NetworkID": "c3f13c0ce988d01da3246f5f4159536cbc58f3f9421a83693c627e3088d24f4c",
                 "Gateway": "172.20.0.1", "IPAddress": "172.20.0.2", "IPPrefixLen": 16,
                 "GlobalIPv6Address": "", "MacAddress": "02:42:ac:14:00:02", "DriverOpts": {}}}}
}"#;

    /// Lines of `GET /events` for a start, a rename, a network connect, a
    /// health check and a removal.
    pub(crate) const EVENTS: [&str; 6] = [
        r#"{"status":"start","id":"6ecd651a051a0904b8e36da45024d0f775f3c48a9fd08b16dd34f7ee0dc0b65a","from":"promrelay-probe:t","Type":"container","Action":"start","Actor":{"ID":"6ecd651a051a0904b8e36da45024d0f775f3c48a9fd08b16dd34f7ee0dc0b65a","Attributes":{"image":"promrelay-probe:t","name":"probe-h"}},"scope":"local","time":1795475883,"timeNano":1795475883123456789}"#,
        r#"{"status":"rename","id":"3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d","Type":"container","Action":"rename","Actor":{"ID":"3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d","Attributes":{"name":"probe-fx2","oldName":"/probe-fx"}},"scope":"local","time":1795475883,"timeNano":1795475883223456789}"#,
        r#"{"Type":"network","Action":"connect","Actor":{"ID":"6a0d5125a169c0ad0b3a6d2c80c1bbcbbfd2e7f0d0a1cf8d25e4d1b0e5d0a1b2","Attributes":{"container":"3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d","name":"probe-net","type":"bridge"}},"scope":"local","time":1795475883,"timeNano":1795475883323456789}"#,
        r#"{"status":"health_status: healthy","id":"3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d","Type":"container","Action":"health_status: healthy","Actor":{"ID":"3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d","Attributes":{"name":"probe-fx2"}},"scope":"local","time":1795475884,"timeNano":1795475884000000000}"#,
        r#"{"status":"die","id":"6ecd651a051a0904b8e36da45024d0f775f3c48a9fd08b16dd34f7ee0dc0b65a","Type":"container","Action":"die","Actor":{"ID":"6ecd651a051a0904b8e36da45024d0f775f3c48a9fd08b16dd34f7ee0dc0b65a","Attributes":{"exitCode":"137","image":"promrelay-probe:t","name":"probe-h"}},"scope":"local","time":1795475885,"timeNano":1795475885000000000}"#,
        r#"{"Type":"network","Action":"destroy","Actor":{"ID":"6a0d5125a169c0ad0b3a6d2c80c1bbcbbfd2e7f0d0a1cf8d25e4d1b0e5d0a1b2","Attributes":{"name":"probe-net","type":"bridge"}},"scope":"local","time":1795475886,"timeNano":1795475886000000000}"#,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_container_list() {
        let list = parse_container_list(fixtures::LIST.as_bytes()).unwrap();
        assert_eq!(list.len(), 6);
        let web = &list[0];
        assert_eq!(web.name, "shop-web-1");
        assert_eq!(web.short_id(), "3ebf7cf923e7");
        assert_eq!(web.image, "shop/web:1.4");
        assert_eq!(web.state, "running");
        assert_eq!(web.labels["com.docker.compose.service"], "web");
        assert_eq!(
            web.networks["shop_default"].ipv4,
            Some(Ipv4Addr::new(172, 18, 0, 2))
        );
        assert_eq!(web.networks["shop_default"].ipv6, None);
        assert_eq!(web.exposed_tcp_ports, [9100]);
        assert!(list[3].uses_host_network());
        assert_eq!(list[3].networks["host"], Endpoint::default());
        assert_eq!(
            list[4].network_peer(),
            Some("3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d")
        );
        let cache = &list[5];
        assert_eq!(cache.name, "cache", "the link alias is not the name");
        assert!(cache.labels.is_empty(), "null labels read as none");
        assert_eq!(cache.exposed_tcp_ports, [6379, 9121]);
        assert_eq!(
            cache.networks["monitoring"].ipv6,
            Some("fd00::5".parse().unwrap())
        );
    }

    #[test]
    fn reads_an_inspected_container_like_a_listed_one() {
        let container = parse_container_inspect(fixtures::INSPECT.as_bytes()).unwrap();
        assert_eq!(container.name, "probe-fx");
        assert_eq!(container.short_id(), "c9ed3e65c8c0");
        assert_eq!(
            container.image, "promrelay-probe:t",
            "the name, not the image ID"
        );
        assert_eq!(container.state, "running");
        assert_eq!(container.network_mode, "default");
        assert_eq!(container.labels["prometheus.io/scrape"], "true");
        assert_eq!(container.exposed_tcp_ports, [9100], "udp left out");
        let networks: Vec<_> = container
            .networks
            .iter()
            .map(|(name, endpoint)| (name.as_str(), endpoint.ipv4))
            .collect();
        assert_eq!(
            networks,
            [
                ("bridge", Some(Ipv4Addr::new(172, 17, 0, 2))),
                ("fx-net", Some(Ipv4Addr::new(172, 20, 0, 2))),
            ]
        );
        assert!(parse_container_inspect(br#"{"message":"No such container: x"}"#).is_err());
    }

    #[test]
    fn an_empty_list_and_junk() {
        assert!(parse_container_list(b"[]").unwrap().is_empty());
        assert!(parse_container_list(b"{\"message\":\"x\"}").is_err());
        assert!(parse_container_list(b"[{\"Names\":[]}]").is_err(), "no Id");
    }

    #[test]
    fn events_map_to_effects() {
        let effects: Vec<_> = fixtures::EVENTS
            .iter()
            .map(|line| parse_event(line.as_bytes()).unwrap().effect())
            .collect();
        let h = "6ecd651a051a0904b8e36da45024d0f775f3c48a9fd08b16dd34f7ee0dc0b65a".to_owned();
        let fx = "3ebf7cf923e7eed8720a31567a4564fd6a290b6c4d2b0f542277420cbb18412d".to_owned();
        assert_eq!(
            effects,
            [
                Some(Effect::Refresh(h.clone())),
                Some(Effect::Refresh(fx.clone())),
                Some(Effect::Refresh(fx)),
                None,
                Some(Effect::Remove(h)),
                None,
            ]
        );
        assert!(parse_event(b"not json").is_err());
    }
}
