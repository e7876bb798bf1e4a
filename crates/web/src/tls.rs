//! Turning `tls_server_config` into a rustls server configuration.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, NamedGroup, RootCertStore,
    ServerConfig, SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

use crate::config::{ClientAuth, CurveName, Origin, RawTls, TlsVersion, WebConfigError};
use crate::identity::PeerIdentity;

/// HTTP/2 and HTTP/1.1 ALPN protocol ids.
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The validated TLS side of a [`WebConfig`](crate::WebConfig).
pub(crate) struct TlsSettings {
    pub(crate) server_config: Arc<ServerConfig>,
    pub(crate) client_auth: ClientAuth,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("client_auth", &self.client_auth)
            .field("alpn", &self.server_config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// One of two mutually exclusive keys: inline PEM text or a file name.
fn pem_source(
    origin: &Origin<'_>,
    inline: (&str, Option<&String>),
    file: (&str, Option<&String>),
) -> Result<Option<(String, Vec<u8>)>, WebConfigError> {
    let inline_value = inline.1.filter(|s| !s.is_empty());
    let file_value = file.1.filter(|s| !s.is_empty());
    match (inline_value, file_value) {
        (Some(_), Some(_)) => Err(origin.invalid(
            &format!("tls_server_config.{}", inline.0),
            format!("set either {} or {}, not both", inline.0, file.0),
        )),
        (Some(text), None) => Ok(Some((
            format!("tls_server_config.{}", inline.0),
            text.as_bytes().to_vec(),
        ))),
        (None, Some(name)) => {
            let key = format!("tls_server_config.{}", file.0);
            let bytes = origin.read(&key, name)?;
            Ok(Some((key, bytes)))
        }
        (None, None) => Ok(None),
    }
}

fn parse_certificates(
    origin: &Origin<'_>,
    key: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| origin.invalid(key, format!("cannot parse PEM: {e}")))?;
    if certs.is_empty() {
        return Err(origin.invalid(key, "no PEM \"CERTIFICATE\" block found"));
    }
    Ok(certs)
}

/// Builds the rustls configuration; `http2` decides the ALPN protocols offered.
pub(crate) fn build(
    raw: &RawTls,
    http2: bool,
    origin: &Origin<'_>,
) -> Result<TlsSettings, WebConfigError> {
    // Certificate and key.
    let (cert_key, cert_pem) = pem_source(
        origin,
        ("cert", raw.cert.as_ref()),
        ("cert_file", raw.cert_file.as_ref()),
    )?
    .ok_or_else(|| origin.invalid("tls_server_config", "missing one of cert or cert_file"))?;
    let (key_key, key_pem) = pem_source(
        origin,
        ("key", raw.key.as_ref()),
        ("key_file", raw.key_file.as_ref()),
    )?
    .ok_or_else(|| origin.invalid("tls_server_config", "missing one of key or key_file"))?;
    let certs = parse_certificates(origin, &cert_key, &cert_pem)?;
    let private_key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| origin.invalid(&key_key, format!("cannot parse PEM: {e}")))?
        .ok_or_else(|| {
            origin.invalid(
                &key_key,
                "no PEM private key block found (PKCS#8, PKCS#1 RSA or SEC1 EC)",
            )
        })?;

    // Client CA and client authentication policy.
    let client_ca = pem_source(
        origin,
        ("client_ca", raw.client_ca.as_ref()),
        ("client_ca_file", raw.client_ca_file.as_ref()),
    )?;
    let client_auth = raw.client_auth_type.unwrap_or(ClientAuth::NoClientCert);
    let mut roots = RootCertStore::empty();
    if let Some((ca_key, pem)) = &client_ca {
        if client_auth == ClientAuth::NoClientCert {
            return Err(origin.invalid(
                ca_key,
                "client CA's have been configured without a client_auth_type that asks for client certificates",
            ));
        }
        for cert in parse_certificates(origin, ca_key, pem)? {
            roots
                .add(cert)
                .map_err(|e| origin.invalid(ca_key, format!("unusable CA certificate: {e}")))?;
        }
    } else if client_auth.verifies() {
        return Err(origin.invalid(
            "tls_server_config.client_auth_type",
            format!("{client_auth:?} verifies client certificates and needs client_ca_file (or client_ca)"),
        ));
    }
    if let Some(sans) = &raw.client_allowed_sans {
        if !client_auth.requires_certificate() {
            return Err(origin.invalid(
                "tls_server_config.client_allowed_sans",
                "client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or RequireAndVerifyClientCert",
            ));
        }
        if sans.is_empty() {
            return Err(origin.invalid(
                "tls_server_config.client_allowed_sans",
                "an empty list would refuse every client",
            ));
        }
    }

    // Protocol versions.
    let min = raw.min_version.unwrap_or(TlsVersion::Tls12);
    let max = raw.max_version.unwrap_or(TlsVersion::Tls13);
    if min > max {
        return Err(origin.invalid(
            "tls_server_config.min_version",
            format!("min_version {min:?} is above max_version {max:?}"),
        ));
    }
    let versions: Vec<&'static SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();

    let provider = Arc::new(crypto_provider(raw, min, origin)?);

    let verifier = client_verifier(client_auth, roots, &provider, origin)?;
    let verifier = match &raw.client_allowed_sans {
        Some(allowed) => Arc::new(AllowedSans {
            inner: verifier,
            allowed: allowed.clone(),
        }),
        None => verifier,
    };

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| origin.invalid("tls_server_config", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            origin.invalid(
                &key_key,
                format!("unusable certificate/key pair ({cert_key} and {key_key}): {e}"),
            )
        })?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = if http2 {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_HTTP11.to_vec()]
    };
    Ok(TlsSettings {
        server_config: Arc::new(config),
        client_auth,
    })
}

/// The ring provider, narrowed to the configured cipher suites and curves.
fn crypto_provider(
    raw: &RawTls,
    min: TlsVersion,
    origin: &Origin<'_>,
) -> Result<CryptoProvider, WebConfigError> {
    let mut provider = rustls::crypto::ring::default_provider();

    if let Some(names) = &raw.cipher_suites {
        let key = "tls_server_config.cipher_suites";
        let (tls13, tls12): (Vec<SupportedCipherSuite>, Vec<SupportedCipherSuite>) = provider
            .cipher_suites
            .iter()
            .partition(|s| s.tls13().is_some());
        let mut chosen = tls13;
        let mut chosen_tls12 = 0;
        for name in names {
            let name = name.0.as_str();
            if !name.contains("_WITH_") {
                // A TLS 1.3 suite: like Go, TLS 1.3 suites are not configurable.
                continue;
            }
            match tls12.iter().find(|s| s.suite().as_str() == Some(name)) {
                Some(suite) if !chosen.contains(suite) => {
                    chosen.push(*suite);
                    chosen_tls12 += 1;
                }
                Some(_) => {}
                None => tracing::warn!(
                    file = origin.file,
                    cipher_suite = name,
                    "cipher suite is not implemented by rustls; ignored"
                ),
            }
        }
        if chosen_tls12 == 0 && min == TlsVersion::Tls12 {
            let supported: Vec<&str> = tls12.iter().filter_map(|s| s.suite().as_str()).collect();
            return Err(origin.invalid(
                key,
                format!(
                    "none of the listed TLS 1.2 cipher suites is implemented; supported: {} (or set min_version: TLS13)",
                    supported.join(", ")
                ),
            ));
        }
        provider.cipher_suites = chosen;
    }

    if let Some(curves) = &raw.curve_preferences {
        let mut chosen = Vec::new();
        for curve in curves {
            let group = match curve {
                CurveName::P256 => NamedGroup::secp256r1,
                CurveName::P384 => NamedGroup::secp384r1,
                CurveName::P521 => NamedGroup::secp521r1,
                CurveName::X25519 => NamedGroup::X25519,
            };
            match provider.kx_groups.iter().find(|g| g.name() == group) {
                Some(g) => {
                    if !chosen
                        .iter()
                        .any(|c: &&dyn rustls::crypto::SupportedKxGroup| c.name() == group)
                    {
                        chosen.push(*g);
                    }
                }
                None => tracing::warn!(
                    file = origin.file,
                    curve = ?curve,
                    "curve is not implemented by rustls; ignored"
                ),
            }
        }
        if chosen.is_empty() {
            return Err(origin.invalid(
                "tls_server_config.curve_preferences",
                "none of the listed curves is implemented (supported: X25519, CurveP256, CurveP384)",
            ));
        }
        provider.kx_groups = chosen;
    }
    Ok(provider)
}

fn client_verifier(
    client_auth: ClientAuth,
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
    origin: &Origin<'_>,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                hints: roots.subjects(),
                algorithms: provider.signature_verification_algorithms,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|e| {
                origin.invalid(
                    "tls_server_config.client_ca_file",
                    format!("cannot build the client certificate verifier: {e}"),
                )
            })?
        }
    };
    Ok(verifier)
}

/// `RequestClientCert` / `RequireAnyClientCert`: takes whatever certificate
/// the client sends without checking who issued it (the client still has to
/// prove it holds the key). Such certificates never become a
/// [`PeerIdentity`].
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier accepted the certificate,
/// one of its subject alternative names must be on the list.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if PeerIdentity::from_certificate_der(end_entity).has_allowed_san(&self.allowed) {
            Ok(verified)
        } else {
            tracing::debug!("client certificate has none of the client_allowed_sans");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
