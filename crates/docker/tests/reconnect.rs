//! Discovery when the event stream ends: it reconnects, lists again, and
//! so picks up what changed while it was away. The daemon here is a small
//! fake on a unix socket, because a real one cannot be made to drop its
//! stream on cue; it speaks the same HTTP/1.1 (chunked event stream
//! included) that Docker does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use docker::{DaemonStatus, Discovery, DockerConfig};
use testkit::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch};

/// What the fake daemon serves; the test changes it.
#[derive(Clone)]
struct FakeDaemon {
    /// The running containers.
    containers: Arc<Mutex<Vec<Fake>>>,
    /// Event lines to send to every open stream.
    events: broadcast::Sender<String>,
    /// Bumped to end every open event stream.
    generation: watch::Sender<u64>,
    /// Requests served, by path.
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeDaemon {
    fn start(dir: &TempDir) -> (FakeDaemon, String) {
        let path = dir.join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let daemon = FakeDaemon {
            containers: Arc::default(),
            events: broadcast::channel(64).0,
            generation: watch::channel(0).0,
            requests: Arc::default(),
        };
        let serving = daemon.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(stream));
            }
        });
        (daemon, format!("unix://{}", path.display()))
    }

    async fn serve(self, mut stream: UnixStream) {
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        let path = target.split('?').next().unwrap_or("").to_owned();
        self.requests.lock().unwrap().push(path.clone());
        match path.as_str() {
            "/v1.41/containers/json" => {
                let list: Vec<_> = self
                    .containers
                    .lock()
                    .unwrap()
                    .iter()
                    .map(Fake::listed)
                    .collect();
                answer(
                    &mut stream,
                    "200 OK",
                    &serde_json::Value::from(list).to_string(),
                )
                .await;
            }
            inspect if inspect.starts_with("/v1.41/containers/") && inspect.ends_with("/json") => {
                let id = &inspect["/v1.41/containers/".len()..inspect.len() - "/json".len()];
                let found = self
                    .containers
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|c| c.id() == id)
                    .map(Fake::inspected);
                match found {
                    Some(body) => answer(&mut stream, "200 OK", &body.to_string()).await,
                    None => {
                        let body = format!(r#"{{"message":"No such container: {id}"}}"#);
                        answer(&mut stream, "404 Not Found", &body).await;
                    }
                }
            }
            "/v1.41/events" => {
                let mut events = self.events.subscribe();
                let mut generation = self.generation.subscribe();
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::select! {
                        line = events.recv() => {
                            let Ok(line) = line else { return };
                            let chunk = format!("{:x}\r\n{line}\n\r\n", line.len() + 1);
                            if stream.write_all(chunk.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        _ = generation.changed() => {
                            let _ = stream.write_all(b"0\r\n\r\n").await;
                            return;
                        }
                    }
                }
            }
            _ => {
                answer(
                    &mut stream,
                    "404 Not Found",
                    r#"{"message":"page not found"}"#,
                )
                .await;
            }
        }
    }

    fn set_containers(&self, containers: Vec<Fake>) {
        *self.containers.lock().unwrap() = containers;
    }

    fn requests(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

async fn answer(stream: &mut UnixStream, status: &str, body: &str) {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
}

/// A labelled container of the fake daemon.
#[derive(Clone)]
struct Fake {
    /// The character its ID repeats.
    fill: char,
    name: &'static str,
    ip: &'static str,
}

fn container(fill: char, name: &'static str, ip: &'static str) -> Fake {
    Fake { fill, name, ip }
}

impl Fake {
    fn id(&self) -> String {
        self.fill.to_string().repeat(64)
    }

    fn labels() -> serde_json::Value {
        serde_json::json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9100"})
    }

    fn networks(&self) -> serde_json::Value {
        serde_json::json!({"bridge": {"IPAddress": self.ip, "GlobalIPv6Address": ""}})
    }

    /// As in `GET /containers/json`.
    fn listed(&self) -> serde_json::Value {
        serde_json::json!({
            "Id": self.id(),
            "Names": [format!("/{}", self.name)],
            "Image": "app:1",
            "Labels": Fake::labels(),
            "State": "running",
            "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": self.networks()},
            "Ports": []
        })
    }

    /// As in `GET /containers/{id}/json`.
    fn inspected(&self) -> serde_json::Value {
        serde_json::json!({
            "Id": self.id(),
            "Name": format!("/{}", self.name),
            "Image": "sha256:0123",
            "State": {"Status": "running", "Running": true},
            "Config": {"Image": "app:1", "Labels": Fake::labels(), "ExposedPorts": null},
            "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Ports": {}, "Networks": self.networks()}
        })
    }
}

fn start_event(fill: char, name: &str) -> String {
    serde_json::json!({
        "Type": "container",
        "Action": "start",
        "Actor": {"ID": fill.to_string().repeat(64), "Attributes": {"name": name}},
        "time": 1_795_475_883,
    })
    .to_string()
}

async fn wait_for_names(discovery: &Discovery, expected: &[&str]) {
    let mut receiver = discovery.subscribe();
    let reached = receiver.wait_for(|t| {
        t.daemon == DaemonStatus::Connected
            && t.targets
                .iter()
                .map(|t| t.name.as_str())
                .eq(expected.iter().copied())
    });
    let reached = matches!(
        tokio::time::timeout(Duration::from_secs(10), reached).await,
        Ok(Ok(_))
    );
    assert!(
        reached,
        "targets are not {expected:?}: {:?}",
        discovery.targets()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_event_stream_is_reopened_and_the_list_read_again() {
    let dir = TempDir::new("docker-fake");
    let (daemon, host) = FakeDaemon::start(&dir);
    daemon.set_containers(vec![container('a', "alpha", "172.17.0.2")]);
    let mut config = DockerConfig::with_host(&host).unwrap();
    config.reconnect_backoff.min = settings::PromDuration(Duration::from_millis(20));
    config.reconnect_backoff.max = settings::PromDuration(Duration::from_millis(100));
    let discovery = Discovery::start(&config).unwrap();
    wait_for_names(&discovery, &["alpha"]).await;
    assert_eq!(daemon.requests("/v1.41/events"), 1);

    // An event: the container is read again by ID and added.
    daemon.set_containers(vec![
        container('a', "alpha", "172.17.0.2"),
        container('b', "bravo", "172.17.0.3"),
    ]);
    daemon.events.send(start_event('b', "bravo")).unwrap();
    wait_for_names(&discovery, &["alpha", "bravo"]).await;
    assert_eq!(
        discovery.targets().get("bravo").unwrap().url,
        "http://172.17.0.3:9100/metrics"
    );

    // The stream ends; meanwhile alpha stops and charlie starts, with no
    // event for either. The new session's list has both changes.
    daemon.set_containers(vec![
        container('b', "bravo", "172.17.0.3"),
        container('c', "charlie", "172.17.0.4"),
    ]);
    daemon.generation.send_modify(|g| *g += 1);
    wait_for_names(&discovery, &["bravo", "charlie"]).await;
    assert_eq!(daemon.requests("/v1.41/events"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_refuses_the_list_is_reported_with_its_message() {
    let dir = TempDir::new("docker-fake");
    let (daemon, host) = FakeDaemon::start(&dir);
    daemon.set_containers(vec![container('a', "alpha", "172.17.0.2")]);
    let client = docker::DockerClient::new(
        host.strip_prefix("unix://").unwrap(),
        Duration::from_secs(5),
    );
    let error = client.ping().await.unwrap_err();
    assert_eq!(error.kind(), "http_status");
    assert!(
        error
            .to_string()
            .ends_with("answered GET /_ping with HTTP 404: page not found"),
        "{error}"
    );
    let list = client.containers().await.unwrap();
    assert_eq!(list[0].name, "alpha");
    assert_eq!(
        client
            .container(&"a".repeat(64))
            .await
            .unwrap()
            .unwrap()
            .name,
        "alpha"
    );
    assert_eq!(client.container(&"f".repeat(64)).await.unwrap(), None);
}
