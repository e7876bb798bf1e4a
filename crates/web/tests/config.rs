//! Parsing and validating web configuration files.

mod common;

use std::fs;
use std::path::Path;

use common::{hash_with_prefix, tls_yaml, Ca};
use testkit::TempDir;
use web::{WebConfig, WebConfigError};

/// A directory holding `server.crt`/`server.key` and `ca.crt`.
fn cert_dir() -> (TempDir, Ca) {
    let dir = TempDir::new("web-config");
    let ca = Ca::new("test CA");
    ca.server().write(dir.path(), "server");
    fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    (dir, ca)
}

fn err(yaml: &str, dir: &Path) -> WebConfigError {
    match WebConfig::from_yaml(yaml, dir) {
        Ok(config) => panic!("expected an error for\n{yaml}\ngot {config:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_documented_key_parses() {
    let (dir, _ca) = cert_dir();
    let hash = hash_with_prefix("secret", "2y");
    let yaml = format!(
        r#"# every key of the exporter-toolkit format
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans:
    - agent-1.example
    - 10.0.0.1
  min_version: TLS12
  max_version: TLS13
  cipher_suites:
    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
    - TLS_AES_128_GCM_SHA256
  curve_preferences: [X25519, CurveP256, CurveP384, CurveP521]
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
  headers:
    Content-Security-Policy: "default-src 'self'"
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    X-XSS-Protection: "1; mode=block"
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: "{hash}"
rate_limit:
  interval: 1s
  burst: 10
"#
    );
    let config = WebConfig::from_yaml(&yaml, dir.path()).unwrap();
    assert!(config.is_tls());
    assert_eq!(config.scheme(), "https");
    assert!(!config.http2());
    assert!(config.requires_basic_auth());
    assert!(config.requires_client_certificate());
    let debug = format!("{config:?}");
    assert!(debug.contains("alice"), "{debug}");
    assert!(
        !debug.contains(&hash),
        "the Debug output must not show hashes: {debug}"
    );
}

#[test]
fn inline_certificates_and_the_old_require_client_cert_spelling() {
    let ca = Ca::new("inline CA");
    let server = ca.server();
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_ca: |\n{}  client_auth_type: RequireClientCert\n",
        indent(&server.cert),
        indent(&server.key),
        indent(&ca.pem()),
    );
    let config = WebConfig::from_yaml(&yaml, Path::new("does-not-exist")).unwrap();
    assert!(config.is_tls());
    assert!(config.requires_client_certificate());
}

#[test]
fn empty_files_mean_plain_http_without_auth() {
    for yaml in [
        "",
        "\n",
        "# just a comment\n",
        "---\n",
        "tls_server_config:\n",
        "tls_server_config: {}\nhttp_server_config:\nbasic_auth_users: {}\n",
        "tls_server_config:\n  cert_file: ''\n",
    ] {
        let config =
            WebConfig::from_yaml(yaml, Path::new(".")).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
        assert!(!config.is_tls(), "{yaml:?}");
        assert!(!config.requires_basic_auth(), "{yaml:?}");
        assert!(config.http2(), "{yaml:?}");
        assert_eq!(config.scheme(), "http");
    }
    let none = WebConfig::none();
    assert!(!none.is_tls() && !none.requires_basic_auth() && none.http2());
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let cases = [
        ("tls_server_config: {}\nbogus_key: 1\n", 2, "bogus_key"),
        (
            "tls_server_config:\n  cert_file: a\n  certfile: b\n",
            3,
            "certfile",
        ),
        (
            "http_server_config:\n  http2: true\n\n  header: {}\n",
            4,
            "header",
        ),
        (
            "rate_limit:\n  burst: 1\n  interval: 1s\n  rate: 2\n",
            4,
            "rate",
        ),
    ];
    for (yaml, line, key) in cases {
        let e = err(yaml, Path::new("."));
        let message = e.to_string();
        assert_eq!(e.line(), Some(line), "{message}");
        assert!(message.contains(&format!("line {line}")), "{message}");
        assert!(message.contains(key), "{message}");
        assert!(message.contains(web::INLINE_SOURCE), "{message}");
    }
}

#[test]
fn load_names_the_file_and_resolves_paths_against_its_directory() {
    let (dir, _ca) = cert_dir();
    let path = dir.join("web.yml");
    fs::write(&path, tls_yaml("")).unwrap();
    // Relative paths are resolved against the file's directory, not the cwd.
    assert!(WebConfig::load(&path).unwrap().is_tls());

    fs::write(
        &path,
        "basic_auth_users:\n  alice: x\n  : y\n  unknown: [\n",
    )
    .unwrap();
    let e = WebConfig::load(&path).unwrap_err();
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(e.line().is_some(), "{e}");

    let missing = dir.join("missing.yml");
    let e = WebConfig::load(&missing).unwrap_err();
    assert!(matches!(e, WebConfigError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.yml"), "{e}");
}

#[test]
fn missing_certificate_file_names_the_file_and_key() {
    let (dir, _ca) = cert_dir();
    let yaml = "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n";
    let e = err(yaml, dir.path());
    let message = e.to_string();
    assert!(message.contains("tls_server_config.cert_file"), "{message}");
    assert!(
        message.contains(&dir.join("nope.crt").display().to_string()),
        "{message}"
    );
    match e {
        WebConfigError::ReferencedFile { path, key, .. } => {
            assert_eq!(path, dir.join("nope.crt"));
            assert_eq!(key, "tls_server_config.cert_file");
        }
        other => panic!("{other:?}"),
    }
    let e = err(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: nope.key\n",
        dir.path(),
    );
    assert!(e.to_string().contains("nope.key"), "{e}");
}

#[test]
fn old_tls_versions_are_refused_with_a_clear_error() {
    let (dir, _ca) = cert_dir();
    for (version, key) in [
        ("TLS10", "min_version"),
        ("TLS11", "min_version"),
        ("TLS11", "max_version"),
    ] {
        let e = err(&tls_yaml(&format!("{key}: {version}")), dir.path());
        let message = e.to_string();
        assert!(message.contains(version), "{message}");
        assert!(message.contains("not supported"), "{message}");
        assert!(message.contains(key), "{message}");
        assert_eq!(e.line(), Some(4), "{message}");
    }
    let e = err(&tls_yaml("min_version: TLS14"), dir.path());
    assert!(e.to_string().contains("unknown TLS version"), "{e}");
    let e = err(
        &tls_yaml("min_version: TLS13\nmax_version: TLS12"),
        dir.path(),
    );
    assert!(e.to_string().contains("min_version"), "{e}");
    // TLS 1.3 only is fine.
    WebConfig::from_yaml(&tls_yaml("min_version: TLS13"), dir.path()).unwrap();
}

#[test]
fn tls_validation_errors() {
    let (dir, _ca) = cert_dir();
    let other = Ca::new("other").server();
    other.write(dir.path(), "other");
    fs::write(dir.join("garbage.pem"), "not a certificate\n").unwrap();

    let cases: &[(&str, &str)] = &[
        // key of another certificate
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
            "tls_server_config.key_file",
        ),
        ("tls_server_config:\n  cert_file: server.crt\n", "missing one of key or key_file"),
        ("tls_server_config:\n  key_file: server.key\n", "missing one of cert or cert_file"),
        (
            "tls_server_config:\n  cert_file: garbage.pem\n  key_file: server.key\n",
            "no PEM \"CERTIFICATE\" block",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n",
            "no PEM private key",
        ),
        (
            "tls_server_config:\n  cert: x\n  cert_file: server.crt\n  key_file: server.key\n",
            "not both",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
            "tls_server_config.client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: garbage.pem\n",
            "tls_server_config.client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  client_allowed_sans: [a]\n",
            "client_allowed_sans requires",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: []\n",
            "empty list",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
            "none of the listed TLS 1.2 cipher suites",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  curve_preferences: [CurveP521]\n",
            "none of the listed curves",
        ),
    ];
    for (yaml, needle) in cases {
        let message = err(yaml, dir.path()).to_string();
        assert!(message.contains(needle), "{yaml}\n=> {message}");
        assert!(message.contains(web::INLINE_SOURCE), "{message}");
    }

    // Errors the parser raises carry the line.
    let parse_cases: &[(&str, &str, usize)] = &[
        ("client_auth_type: Sometimes", "Sometimes", 4),
        (
            "cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_MADE_UP",
            "unknown cipher: TLS_MADE_UP",
            6,
        ),
        ("curve_preferences: [P-256]", "unknown curve", 4),
        (
            "prefer_server_cipher_suites: maybe",
            "prefer_server_cipher_suites",
            4,
        ),
    ];
    for (extra, needle, line) in parse_cases {
        let e = err(&tls_yaml(extra), dir.path());
        let message = e.to_string();
        assert!(message.contains(needle), "{extra}\n=> {message}");
        assert_eq!(e.line(), Some(*line), "{extra}\n=> {message}");
    }

    // TLS 1.3-only cipher lists are fine when TLS 1.2 is off.
    WebConfig::from_yaml(
        &tls_yaml("min_version: TLS13\ncipher_suites: [TLS_AES_128_GCM_SHA256]"),
        dir.path(),
    )
    .unwrap();
}

#[test]
fn basic_auth_users_are_validated() {
    for prefix in ["2a", "2b", "2y"] {
        let yaml = format!(
            "basic_auth_users:\n  alice: '{}'\n",
            hash_with_prefix("pw", prefix)
        );
        assert!(WebConfig::from_yaml(&yaml, Path::new("."))
            .unwrap()
            .requires_basic_auth());
    }
    let good = hash_with_prefix("pw", "2y");
    let no_hash = "not a bcrypt hash";
    let cases = [
        (
            "basic_auth_users:\n  alice: plaintext\n".to_string(),
            "basic_auth_users.alice",
        ),
        (
            "basic_auth_users:\n  alice: $2y$10$sneaky\n".to_string(),
            no_hash,
        ),
        (
            format!(
                "basic_auth_users:\n  alice: '{}'\n",
                good.replacen("$04$", "$03$", 1)
            ),
            no_hash,
        ),
        (
            format!(
                "basic_auth_users:\n  alice: '{}'\n",
                good.replacen("$2y$", "$3y$", 1)
            ),
            no_hash,
        ),
        (
            format!(
                "basic_auth_users:\n  alice: '{}!'\n",
                &good[..good.len() - 1]
            ),
            no_hash,
        ),
        (
            format!("basic_auth_users:\n  '': '{good}'\n"),
            "must not be empty",
        ),
        (
            format!("basic_auth_users:\n  'a:b': '{good}'\n"),
            "can not contain ':'",
        ),
    ];
    for (yaml, needle) in cases {
        let message = err(&yaml, Path::new(".")).to_string();
        assert!(message.contains(needle), "{yaml}\n=> {message}");
        assert!(
            !message.contains(&good[7..]),
            "hashes stay out of errors: {message}"
        );
        // A password pasted by mistake in place of the hash stays out of logs.
        assert!(
            !message.contains("plaintext") && !message.contains("sneaky"),
            "{message}"
        );
    }
    let e = err("basic_auth_users:\n  alice: [1]\n", Path::new("."));
    assert_eq!(e.line(), Some(2), "{e}");
}

#[test]
fn headers_are_validated_like_exporter_toolkit() {
    let ok = "http_server_config:\n  headers:\n    x-frame-options: sameorigin\n    X-XSS-Protection: ''\n";
    WebConfig::from_yaml(ok, Path::new(".")).unwrap();
    let cases = [
        (
            "http_server_config:\n  headers:\n    X-Powered-By: rust\n",
            "can not be configured",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "invalid value",
        ),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            "invalid value",
        ),
        (
            "http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\nb\"\n",
            "not a valid HTTP header value",
        ),
    ];
    for (yaml, needle) in cases {
        let message = err(yaml, Path::new(".")).to_string();
        assert!(message.contains(needle), "{yaml}\n=> {message}");
        assert!(message.contains("http_server_config.headers."), "{message}");
    }
}

#[test]
fn rate_limit_is_validated() {
    WebConfig::from_yaml("rate_limit:\n  interval: 0\n  burst: 0\n", Path::new(".")).unwrap();
    WebConfig::from_yaml(
        "rate_limit:\n  interval: 1m30s\n  burst: 5\n",
        Path::new("."),
    )
    .unwrap();
    let e = err("rate_limit:\n  interval: 1s\n", Path::new("."));
    assert!(e.to_string().contains("rate_limit.burst"), "{e}");
    let e = err("rate_limit:\n  interval: 1d\n  burst: 1\n", Path::new("."));
    assert!(e.to_string().contains("unknown unit"), "{e}");
    assert_eq!(e.line(), Some(2), "{e}");
}
