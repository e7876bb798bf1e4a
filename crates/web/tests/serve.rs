//! Real HTTP and HTTPS requests against `web::serve` on 127.0.0.1.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{
    hash_with_prefix, plain_client, self_signed_client, tls_client, tls_client_builder, tls_yaml,
    Ca, Server,
};
use reqwest::{StatusCode, Version};
use testkit::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web::WebConfig;

/// A directory with `server.crt`/`server.key` and `ca.crt` from a fresh CA.
struct Certs {
    dir: TempDir,
    ca: Ca,
}

impl Certs {
    fn new() -> Certs {
        let dir = TempDir::new("web-serve");
        let ca = Ca::new("test CA");
        ca.server().write(dir.path(), "server");
        fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        Certs { dir, ca }
    }

    fn config(&self, yaml: &str) -> WebConfig {
        WebConfig::from_yaml(yaml, self.dir.path()).unwrap_or_else(|e| panic!("{e}"))
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_with_no_config() {
    let server = Server::start(WebConfig::none()).await;
    let client = plain_client();
    let (status, body) = get(&client, &server.http("/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    // The remote address reaches handlers as ConnectInfo; no identity.
    let (_, body) = get(&client, &server.http("/whoami")).await;
    assert_eq!(body, "127.0.0.1 anonymous");
    let response = client.get(server.http("/missing")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http2_with_prior_knowledge_unless_disabled() {
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    let server = Server::start(WebConfig::none()).await;
    let response = h2c.get(server.http("/")).send().await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "ok");

    let config =
        WebConfig::from_yaml("http_server_config:\n  http2: false\n", ".".as_ref()).unwrap();
    let server = Server::start(config).await;
    assert!(
        h2c.get(server.http("/")).send().await.is_err(),
        "h2c must be refused"
    );
    let response = plain_client().get(server.http("/")).send().await.unwrap();
    assert_eq!(response.version(), Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_h2_over_alpn_unless_disabled() {
    let certs = Certs::new();
    let server = Server::start(certs.config(&tls_yaml(""))).await;
    let client = tls_client(&certs.ca, None);
    let response = client.get(server.https("/whoami")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "127.0.0.1 anonymous");

    // Plain HTTP to the TLS port gets nowhere.
    assert!(plain_client().get(server.http("/")).send().await.is_err());

    // HTTP/1.1 only, and TLS 1.3 only.
    let yaml = format!(
        "{}http_server_config:\n  http2: false\n",
        tls_yaml("min_version: TLS13")
    );
    let server = Server::start(certs.config(&yaml)).await;
    let response = client.get(server.https("/")).send().await.unwrap();
    assert_eq!(response.version(), Version::HTTP_11);
    let tls12_only = tls_client_builder(&certs.ca, None)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(
        tls12_only.get(server.https("/")).send().await.is_err(),
        "TLS 1.2 must be refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handshakes_do_not_take_the_listener_down() {
    let certs = Certs::new();
    let server = Server::start(certs.config(&tls_yaml(""))).await;

    // A client that connects and says nothing (its handshake is pending).
    let _idle = TcpStream::connect(server.addr).await.unwrap();
    // Plain HTTP sent to the TLS port: the server answers with an alert or closes.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf))
        .await
        .expect("the server closes a non-TLS connection")
        .ok();
    // A client that does not trust the server's CA.
    let stranger = tls_client(&Ca::new("other CA"), None);
    assert!(stranger.get(server.https("/")).send().await.is_err());
    // Garbage that looks like a TLS record.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    drop(raw);

    // The listener still serves.
    let (status, body) = get(&tls_client(&certs.ca, None), &server.https("/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_and_verify_client_cert() {
    let certs = Certs::new();
    let yaml = tls_yaml("client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: ca.crt");
    let server = Server::start(certs.config(&yaml)).await;

    // No certificate: refused.
    let anonymous = tls_client(&certs.ca, None);
    assert!(anonymous.get(server.https("/")).send().await.is_err());
    // A certificate from another CA: refused.
    let rogue = self_signed_client("agent-1");
    assert!(tls_client(&certs.ca, Some(&rogue))
        .get(server.https("/"))
        .send()
        .await
        .is_err());

    // A certificate from the configured CA: accepted, and the handler sees who.
    let agent = certs.ca.client(
        "agent-1",
        &[
            "agent-1.example",
            "agent-1.internal",
            "10.1.2.3",
            "ops@example.org",
            "spiffe://example/agent-1",
        ],
    );
    let client = tls_client(&certs.ca, Some(&agent));
    let (status, body) = get(&client, &server.https("/whoami")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "127.0.0.1 cn=agent-1 dns=agent-1.example,agent-1.internal ip=[10.1.2.3] \
         email=[\"ops@example.org\"] uri=[\"spiffe://example/agent-1\"] der=true"
    );

    // The refused clients did not harm the listener.
    let (status, _) = get(&client, &server.https("/")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_client_cert_if_given() {
    let certs = Certs::new();
    let yaml = tls_yaml("client_auth_type: VerifyClientCertIfGiven\nclient_ca_file: ca.crt");
    let server = Server::start(certs.config(&yaml)).await;

    let (status, body) = get(&tls_client(&certs.ca, None), &server.https("/whoami")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "127.0.0.1 anonymous")
    );

    let agent = certs.ca.client("agent-2", &["agent-2.example"]);
    let (_, body) = get(
        &tls_client(&certs.ca, Some(&agent)),
        &server.https("/whoami"),
    )
    .await;
    assert!(
        body.starts_with("127.0.0.1 cn=agent-2 dns=agent-2.example "),
        "{body}"
    );

    let rogue = self_signed_client("agent-2");
    assert!(tls_client(&certs.ca, Some(&rogue))
        .get(server.https("/"))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_client_certs_give_no_identity() {
    let certs = Certs::new();
    let server =
        Server::start(certs.config(&tls_yaml("client_auth_type: RequireAnyClientCert"))).await;
    assert!(tls_client(&certs.ca, None)
        .get(server.https("/"))
        .send()
        .await
        .is_err());
    let rogue = self_signed_client("who-knows");
    let (status, body) = get(
        &tls_client(&certs.ca, Some(&rogue)),
        &server.https("/whoami"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "127.0.0.1 anonymous")
    );

    let server =
        Server::start(certs.config(&tls_yaml("client_auth_type: RequestClientCert"))).await;
    let (status, body) = get(&tls_client(&certs.ca, None), &server.https("/whoami")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "127.0.0.1 anonymous")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_allowed_sans() {
    let certs = Certs::new();
    let yaml = tls_yaml(
        "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: ca.crt\n\
         client_allowed_sans: [agent-1.example, 10.9.9.9]",
    );
    let server = Server::start(certs.config(&yaml)).await;
    for (sans, allowed) in [
        (&["other.example", "agent-1.example"][..], true),
        (&["10.9.9.9"][..], true),
        (&["agent-2.example", "10.9.9.8"][..], false),
        (&[][..], false),
    ] {
        let agent = certs.ca.client("agent", sans);
        let result = tls_client(&certs.ca, Some(&agent))
            .get(server.https("/"))
            .send()
            .await;
        assert_eq!(result.is_ok(), allowed, "{sans:?}: {result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let certs = Certs::new();
    let yaml = format!(
        "{}basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n  carol: '{}'\n",
        tls_yaml(""),
        hash_with_prefix("alice-pw", "2a"),
        hash_with_prefix("bob-pw", "2b"),
        hash_with_prefix("carol-pw", "2y"),
    );
    let server = Server::start(certs.config(&yaml)).await;
    let client = tls_client(&certs.ca, None);
    let url = server.https("/");

    for (user, password) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        for _ in 0..2 {
            // twice: the second answer comes from the cache
            let response = client
                .get(&url)
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{user}");
        }
    }

    let refused = [
        client.get(&url).basic_auth("alice", Some("bob-pw")),
        client.get(&url).basic_auth("alice", None::<&str>),
        client.get(&url).basic_auth("mallory", Some("alice-pw")),
        client.get(&url).basic_auth("", Some("")),
        client.get(&url).bearer_auth("alice-pw"),
        client.get(&url).header("authorization", "Basic !!!"),
        client.get(&url),
    ];
    for request in refused {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"promrelay\""
        );
        assert_eq!(response.text().await.unwrap(), "Unauthorized\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_headers_on_every_response() {
    let yaml = format!(
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    \
         Strict-Transport-Security: max-age=60\n    X-XSS-Protection: ''\n\
         basic_auth_users:\n  alice: '{}'\n",
        hash_with_prefix("pw", "2y")
    );
    let server = Server::start(WebConfig::from_yaml(&yaml, ".".as_ref()).unwrap()).await;
    let client = plain_client();

    let ok = client
        .get(server.http("/"))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    let unauthorized = client.get(server.http("/")).send().await.unwrap();
    let not_found = client
        .get(server.http("/nope"))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    for response in [&ok, &unauthorized, &not_found] {
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "deny");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["strict-transport-security"], "max-age=60");
        assert!(
            !headers.contains_key("x-xss-protection"),
            "blank means unset"
        );
    }
    // A handler's own value wins, as in exporter-toolkit.
    let own = client
        .get(server.http("/own-frame-options"))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.headers().get_all("x-frame-options").iter().count(), 1);
    assert_eq!(own.headers()["x-frame-options"], "sameorigin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429() {
    let config =
        WebConfig::from_yaml("rate_limit:\n  interval: 1h\n  burst: 2\n", ".".as_ref()).unwrap();
    let server = Server::start(config).await;
    let client = plain_client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(client.get(server.http("/")).send().await.unwrap().status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_to_the_next_connection() {
    let certs = Certs::new();
    let server = Server::start(WebConfig::none()).await;
    let (status, _) = get(&plain_client(), &server.http("/")).await;
    assert_eq!(status, StatusCode::OK);

    // Add a basic-auth user.
    let yaml = format!(
        "basic_auth_users:\n  alice: '{}'\n",
        hash_with_prefix("pw", "2y")
    );
    let path = certs.dir.join("web.yml");
    fs::write(&path, &yaml).unwrap();
    server.handle.reload(&path).unwrap();
    let (status, _) = get(&plain_client(), &server.http("/")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = plain_client()
        .get(server.http("/"))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A broken file leaves the configuration in force alone.
    fs::write(&path, "basic_auth_users: [\n").unwrap();
    assert!(server.handle.reload(&path).is_err());
    let (status, _) = get(&plain_client(), &server.http("/")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Switch the same listener to TLS with client certificates.
    let yaml = tls_yaml("client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: ca.crt");
    server.handle.store(certs.config(&yaml));
    assert!(plain_client().get(server.http("/")).send().await.is_err());
    let agent = certs.ca.client("agent-9", &["agent-9.example"]);
    let (status, body) = get(
        &tls_client(&certs.ca, Some(&agent)),
        &server.https("/whoami"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("cn=agent-9"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let mut server = Server::start(WebConfig::none()).await;
    let client = plain_client();
    let slow = tokio::spawn({
        let url = server.http("/slow");
        let client = client.clone();
        async move { get(&client, &url).await }
    });
    // An idle keep-alive connection must not hold shutdown up.
    let keep_alive = reqwest::Client::new();
    assert_eq!(get(&keep_alive, &server.http("/")).await.0, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(200)).await; // the slow request is in flight
    let started = Instant::now();
    let serve = server.shutdown();
    let (status, body) = slow.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "slow done"));
    serve.await.unwrap().unwrap();
    assert!(
        started.elapsed() < web::SHUTDOWN_GRACE,
        "{:?}",
        started.elapsed()
    );
    // The listener is closed.
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = web::ServeLimits { max_connections: 1 };
    tokio::spawn(web::serve_with(
        listener,
        web::WebConfigHandle::new(web::WebConfig::none()),
        common::router(),
        limits,
        std::future::pending(),
    ));
    // One idle connection takes the only slot.
    let held = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = reqwest::Client::new();
    let waiting = tokio::spawn(async move { client.get(format!("http://{addr}/")).send().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a second connection was served past the limit"
    );
    // Closing the held connection frees the slot and the waiting request is served.
    drop(held);
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the waiting request was never served")
        .unwrap()
        .unwrap();
    assert_eq!(reply.status(), 200);
}
