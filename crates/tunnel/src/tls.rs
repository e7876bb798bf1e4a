//! The agent's TLS client configuration from PEM files: the CAs it trusts
//! for the gateway's certificate, and the client certificate that proves
//! its name (the gateway takes the name from the certificate's common name).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::TunnelError;

/// Builds a TLS client configuration for dialing the gateway.
///
/// - `ca_file`: PEM certificates to trust instead of the bundled web PKI
///   roots (for a gateway with a private CA).
/// - `client_identity`: a PEM certificate chain and its PEM private key,
///   presented to the gateway.
pub fn client_tls_config(
    ca_file: Option<&Path>,
    client_identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TunnelError> {
    let roots = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|e| file_error(path, format!("unusable CA certificate: {e}")))?;
            }
            roots
        }
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TunnelError::Tls)?
        .with_root_certificates(roots);
    let config = match client_identity {
        Some((cert_file, key_file)) => {
            let chain = certificates(cert_file)?;
            let key = private_key(key_file)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file_error(key_file, format!("does not match the certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn file_error(path: &Path, reason: String) -> TunnelError {
    TunnelError::TlsFile {
        path: path.display().to_string(),
        reason,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TunnelError> {
    std::fs::read(path).map_err(|e| file_error(path, e.to_string()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TunnelError> {
    let pem = read(path)?;
    let certificates = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("cannot parse PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(file_error(
            path,
            "no PEM \"CERTIFICATE\" block found".to_owned(),
        ));
    }
    Ok(certificates)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TunnelError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| file_error(path, format!("cannot parse PEM: {e}")))?
        .ok_or_else(|| file_error(path, "no PEM private key block found".to_owned()))
}
