//! Certificates made on the spot for TLS tests: a certificate authority
//! that signs server and client certificates.

use std::fmt;
use std::fs;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl Pem {
    /// `cert` and `key` concatenated, as an identity for HTTP clients.
    pub fn identity_pem(&self) -> String {
        format!("{}{}", self.cert, self.key)
    }

    /// Writes `<name>.crt` and `<name>.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) {
        fs::write(dir.join(format!("{name}.crt")), &self.cert).unwrap();
        fs::write(dir.join(format!("{name}.key")), &self.key).unwrap();
    }
}

/// A certificate authority that signs server and client certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    /// A new self-signed authority called `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// The authority's certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Pem {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A client certificate with common name `cn` and the given SANs (IP
    /// addresses, `mailto:`-less e-mails containing `@`, URIs containing
    /// `://`, DNS names otherwise).
    pub fn client(&self, cn: &str, sans: &[&str]) -> Pem {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = sans
            .iter()
            .map(|san| {
                if let Ok(ip) = san.parse() {
                    SanType::IpAddress(ip)
                } else if san.contains("://") {
                    SanType::URI(san.to_string().try_into().unwrap())
                } else if san.contains('@') {
                    SanType::Rfc822Name(san.to_string().try_into().unwrap())
                } else {
                    SanType::DnsName(san.to_string().try_into().unwrap())
                }
            })
            .collect();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl fmt::Debug for Pem {
    // A private key, even a test one, is not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pem").finish_non_exhaustive()
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}
