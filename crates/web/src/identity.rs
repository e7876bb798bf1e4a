//! The identity of a TLS client, read from its certificate.
//!
//! Only the few fields promrelay needs are read (subject common name and the
//! subject alternative names), with a small DER reader: pulling in a full
//! X.509 parser for that would cost more than it brings. The certificate has
//! already been verified by rustls/webpki when an identity is built from it,
//! so a certificate this reader cannot make sense of is simply reported as
//! having no name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

/// The verified identity of the client at the other end of a TLS connection.
///
/// [`serve`](crate::serve) inserts one into the extensions of every request
/// that arrives on a connection whose client presented a certificate that was
/// verified against `client_ca_file` (`client_auth_type`
/// `VerifyClientCertIfGiven` or `RequireAndVerifyClientCert`). Certificates
/// accepted without verification (`RequestClientCert`,
/// `RequireAnyClientCert`) never produce one, so a handler can trust what it
/// finds here. In axum, extract it with
/// `Option<axum::Extension<PeerIdentity>>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// The last `CN` attribute of the certificate's subject, if any.
    pub common_name: Option<String>,
    /// The `dNSName` subject alternative names, in certificate order.
    pub dns_sans: Vec<String>,
    /// The `iPAddress` subject alternative names, in certificate order.
    pub ip_sans: Vec<IpAddr>,
    /// The `rfc822Name` (e-mail) subject alternative names, in certificate order.
    pub email_sans: Vec<String>,
    /// The `uniformResourceIdentifier` subject alternative names, in certificate order.
    pub uri_sans: Vec<String>,
    /// The client's end-entity certificate, DER encoded (for fingerprints).
    pub certificate_der: Bytes,
}

impl PeerIdentity {
    /// Reads the names out of a DER-encoded X.509 certificate.
    ///
    /// Never fails: fields that cannot be read are left empty, and
    /// [`certificate_der`](Self::certificate_der) always holds `der`.
    pub fn from_certificate_der(der: &[u8]) -> PeerIdentity {
        let mut identity = parse_certificate(der).unwrap_or_default();
        identity.certificate_der = Bytes::copy_from_slice(der);
        identity
    }

    /// Whether any subject alternative name equals one of `allowed` (the
    /// exporter-toolkit `client_allowed_sans` rule: DNS names, e-mail
    /// addresses and URIs compare as exact strings, IP addresses by value).
    pub(crate) fn has_allowed_san(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|entry| {
            self.dns_sans.iter().any(|san| san == entry)
                || self.email_sans.iter().any(|san| san == entry)
                || self.uri_sans.iter().any(|san| san == entry)
                || entry.parse::<IpAddr>().is_ok_and(|ip| {
                    self.ip_sans
                        .iter()
                        .any(|san| san.to_canonical() == ip.to_canonical())
                })
        })
    }
}

// DER tags used below.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UNIVERSAL_STRING: u8 = 0x1c;
const BMP_STRING: u8 = 0x1e;
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
const CONTEXT_3_CONSTRUCTED: u8 = 0xa3;
// GeneralName choices (implicitly tagged, primitive).
const GN_RFC822: u8 = 0x81;
const GN_DNS: u8 = 0x82;
const GN_URI: u8 = 0x86;
const GN_IP: u8 = 0x87;

/// 2.5.4.3, id-at-commonName.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17, id-ce-subjectAltName.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// A cursor over DER-encoded TLVs.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV's tag and value.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers never occur in what we read
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (bytes, after) = rest.split_at(count);
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let (value, after) = rest.split_at(len);
        self.rest = after;
        Some((tag, value))
    }

    /// The next TLV's value, which must carry `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, value) if t == tag => Some(value),
            _ => None,
        }
    }

    /// Skips the next TLV if it carries `tag`.
    fn skip_if(&mut self, tag: u8) -> Option<()> {
        if self.peek_tag() == Some(tag) {
            self.next()?;
        }
        Some(())
    }
}

fn parse_certificate(der: &[u8]) -> Option<PeerIdentity> {
    let certificate = Reader::new(der).expect(SEQUENCE)?;
    let mut tbs = Reader::new(Reader::new(certificate).expect(SEQUENCE)?);
    tbs.skip_if(CONTEXT_0_CONSTRUCTED)?; // version
    tbs.expect(INTEGER)?; // serialNumber
    tbs.expect(SEQUENCE)?; // signature
    tbs.expect(SEQUENCE)?; // issuer
    tbs.expect(SEQUENCE)?; // validity
    let subject = tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?; // subjectPublicKeyInfo

    let mut identity = PeerIdentity {
        common_name: common_name(subject),
        ..PeerIdentity::default()
    };
    // issuerUniqueID [1], subjectUniqueID [2], extensions [3].
    while let Some((tag, value)) = tbs.next() {
        if tag == CONTEXT_3_CONSTRUCTED {
            read_extensions(value, &mut identity)?;
        }
    }
    Some(identity)
}

/// The last common name in an X.501 `Name`.
fn common_name(name: &[u8]) -> Option<String> {
    let mut found = None;
    let mut rdns = Reader::new(name);
    while !rdns.is_empty() {
        let mut attributes = Reader::new(rdns.expect(SET)?);
        while !attributes.is_empty() {
            let mut attribute = Reader::new(attributes.expect(SEQUENCE)?);
            let oid = attribute.expect(OID)?;
            let (tag, value) = attribute.next()?;
            if oid == OID_COMMON_NAME {
                found = Some(directory_string(tag, value)?);
            }
        }
    }
    found
}

fn directory_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING => String::from_utf8(value.to_vec()).ok(),
        // T.61 in theory; in practice Latin-1.
        TELETEX_STRING => Some(value.iter().map(|&b| char::from(b)).collect()),
        BMP_STRING => {
            let pairs = value.chunks_exact(2);
            if !pairs.remainder().is_empty() {
                return None;
            }
            let units = pairs.map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        UNIVERSAL_STRING => {
            let quads = value.chunks_exact(4);
            if !quads.remainder().is_empty() {
                return None;
            }
            quads
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                })
                .collect()
        }
        _ => None,
    }
}

fn read_extensions(explicit: &[u8], identity: &mut PeerIdentity) -> Option<()> {
    let mut extensions = Reader::new(Reader::new(explicit).expect(SEQUENCE)?);
    while !extensions.is_empty() {
        let mut extension = Reader::new(extensions.expect(SEQUENCE)?);
        let oid = extension.expect(OID)?;
        extension.skip_if(BOOLEAN)?; // critical
        let value = extension.expect(OCTET_STRING)?;
        if oid == OID_SUBJECT_ALT_NAME {
            read_general_names(value, identity)?;
        }
    }
    Some(())
}

fn read_general_names(value: &[u8], identity: &mut PeerIdentity) -> Option<()> {
    let mut names = Reader::new(Reader::new(value).expect(SEQUENCE)?);
    while let Some((tag, name)) = names.next() {
        match tag {
            GN_DNS => identity.dns_sans.push(ia5(name)?),
            GN_RFC822 => identity.email_sans.push(ia5(name)?),
            GN_URI => identity.uri_sans.push(ia5(name)?),
            GN_IP => identity.ip_sans.push(match name.len() {
                4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(name).ok()?)),
                16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(name).ok()?)),
                _ => return None,
            }),
            _ => {} // otherName, directoryName, ...: not names we match on
        }
    }
    Some(())
}

fn ia5(value: &[u8]) -> Option<String> {
    value
        .is_ascii()
        .then(|| String::from_utf8(value.to_vec()).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()[0]
                })
                .collect();
            let identity = PeerIdentity::from_certificate_der(&bytes);
            assert_eq!(identity.certificate_der.len(), len);
        }
        // Valid-looking framing with nonsense inside.
        let nested = [0x30, 0x06, 0x30, 0x04, 0x02, 0x01, 0x01, 0xff];
        assert_eq!(
            PeerIdentity::from_certificate_der(&nested).common_name,
            None
        );
    }

    #[test]
    fn long_form_lengths() {
        let mut value = vec![0u8; 300];
        value[0] = 7;
        let mut der = vec![OCTET_STRING, 0x82, 0x01, 0x2c];
        der.extend_from_slice(&value);
        let mut reader = Reader::new(&der);
        assert_eq!(reader.expect(OCTET_STRING).map(<[u8]>::len), Some(300));
        assert!(reader.is_empty());
        // Truncated.
        assert!(Reader::new(&der[..100]).next().is_none());
    }

    #[test]
    fn directory_strings() {
        assert_eq!(
            directory_string(UTF8_STRING, "agent-é".as_bytes()).as_deref(),
            Some("agent-é")
        );
        assert_eq!(
            directory_string(BMP_STRING, &[0, b'h', 0, b'i']).as_deref(),
            Some("hi")
        );
        assert_eq!(
            directory_string(TELETEX_STRING, &[0xe9]).as_deref(),
            Some("é")
        );
        assert_eq!(directory_string(BMP_STRING, &[0]), None);
    }

    #[test]
    fn allowed_sans() {
        let identity = PeerIdentity {
            dns_sans: vec!["agent.example".into()],
            ip_sans: vec!["::ffff:10.0.0.1".parse().unwrap()],
            email_sans: vec!["ops@example.org".into()],
            uri_sans: vec!["spiffe://example/agent".into()],
            ..PeerIdentity::default()
        };
        for ok in [
            "agent.example",
            "10.0.0.1",
            "ops@example.org",
            "spiffe://example/agent",
        ] {
            assert!(identity.has_allowed_san(&[ok.to_string()]), "{ok}");
        }
        for bad in ["other.example", "10.0.0.2", "AGENT.example", ""] {
            assert!(!identity.has_allowed_san(&[bad.to_string()]), "{bad}");
        }
        assert!(!identity.has_allowed_san(&[]));
    }
}
