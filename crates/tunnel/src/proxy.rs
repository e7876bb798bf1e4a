//! Dialing the gateway through an HTTP proxy with `CONNECT`.
//!
//! Agents often sit where the only way out is a corporate proxy. The agent
//! honours the conventional environment variables, as curl and Go do:
//! `HTTPS_PROXY` for `https://`/`wss://` gateways, `HTTP_PROXY` for
//! `http://`/`ws://` ones (lower-case spellings too, upper case first),
//! and `NO_PROXY` for the hosts reached directly. The tunnel is opened with
//! `CONNECT host:port`, and TLS and the WebSocket upgrade run inside it, so
//! the proxy sees only the gateway's address, never the token.
//!
//! Proxy URLs are `http://[user:password@]host[:port]` (port 80 by
//! default, `http://` assumed when no scheme is given); credentials become
//! `Proxy-Authorization: Basic`. TLS to the proxy itself (`https://` proxy
//! URLs) is not supported and is refused with a clear error rather than
//! silently sent in plain text.
//!
//! `NO_PROXY` is a comma-separated list of:
//! - `*`: no proxy at all;
//! - a host name, matching itself and its subdomains (`example.com` and
//!   `.example.com` both match `gw.example.com`);
//! - an IP address, or a CIDR block such as `10.0.0.0/8`;
//! - any of these with `:port`, matching only that port.

use core::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::TunnelError;

/// The longest proxy response head to a `CONNECT` read before giving up.
const MAX_CONNECT_RESPONSE: usize = 8 * 1024;

/// An HTTP proxy to dial the gateway through, and the hosts that bypass it.
#[derive(Clone, Default)]
pub struct ProxyConfig {
    /// For `http://` and `ws://` gateways.
    http: Option<Proxy>,
    /// For `https://` and `wss://` gateways.
    https: Option<Proxy>,
    no_proxy: NoProxy,
}

/// One proxy server.
#[derive(Clone)]
struct Proxy {
    /// `host:port` to dial.
    address: String,
    /// The `Proxy-Authorization` header value, if the URL had credentials.
    authorization: Option<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The proxy credentials stay out of logs.
        let address = |proxy: &Option<Proxy>| proxy.as_ref().map(|p| p.address.clone());
        f.debug_struct("ProxyConfig")
            .field("http", &address(&self.http))
            .field("https", &address(&self.https))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// No proxy: every gateway is dialed directly.
    pub fn none() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// Reads `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (or their
    /// lower-case spellings) from the environment. Empty variables count
    /// as unset.
    pub fn from_env() -> Result<ProxyConfig, TunnelError> {
        let var = |upper: &str, lower: &str| {
            std::env::var(upper)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(lower).ok().filter(|v| !v.is_empty()))
        };
        ProxyConfig::new(
            var("HTTP_PROXY", "http_proxy").as_deref(),
            var("HTTPS_PROXY", "https_proxy").as_deref(),
            var("NO_PROXY", "no_proxy").as_deref().unwrap_or(""),
        )
    }

    /// A configuration from explicit values, in the environment variables'
    /// syntax.
    pub fn new(
        http_proxy: Option<&str>,
        https_proxy: Option<&str>,
        no_proxy: &str,
    ) -> Result<ProxyConfig, TunnelError> {
        Ok(ProxyConfig {
            http: http_proxy.map(Proxy::parse).transpose()?,
            https: https_proxy.map(Proxy::parse).transpose()?,
            no_proxy: NoProxy::parse(no_proxy),
        })
    }

    /// Whether any proxy is configured.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy to use for a gateway at `host:port`, reached with TLS or
    /// not; `None` to dial directly.
    fn for_target(&self, host: &str, port: u16, tls: bool) -> Option<&Proxy> {
        let proxy = if tls { &self.https } else { &self.http };
        proxy
            .as_ref()
            .filter(|_| !self.no_proxy.bypasses(host, port))
    }

    /// The address that will be dialed for the gateway at `host:port`:
    /// the proxy's, or `None` for a direct connection.
    pub fn proxy_address(&self, host: &str, port: u16, tls: bool) -> Option<&str> {
        self.for_target(host, port, tls)
            .map(|proxy| proxy.address.as_str())
    }

    /// Opens a TCP stream to `host:port`, through the proxy when one
    /// applies; `None` when the gateway is to be dialed directly (the
    /// caller then dials as usual).
    pub(crate) async fn dial(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Option<TcpStream>, TunnelError> {
        let Some(proxy) = self.for_target(host, port, tls) else {
            return Ok(None);
        };
        proxy.connect(host, port).await.map(Some)
    }
}

impl Proxy {
    fn parse(url: &str) -> Result<Proxy, TunnelError> {
        let invalid = |reason| TunnelError::InvalidProxy {
            reason,
            // Only the part after the credentials, which never leak.
            url: url.rsplit('@').next().unwrap_or_default().to_owned(),
        };
        let with_scheme;
        let url_with_scheme = if url.contains("://") {
            url
        } else {
            with_scheme = format!("http://{url}");
            &with_scheme
        };
        let uri: Uri = url_with_scheme.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(invalid("TLS to the proxy (https://) is not supported")),
            _ => return Err(invalid("the scheme must be http://")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let (userinfo, hostport) = match authority.as_str().rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority.as_str()),
        };
        if hostport.is_empty() || authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let authorization = userinfo.map(|userinfo| {
            let decoded = percent_decode(userinfo);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded)
            )
        });
        Ok(Proxy {
            address,
            authorization,
        })
    }

    /// `CONNECT host:port` through this proxy; the stream is the tunnel to
    /// the gateway once the proxy answered 2xx.
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, TunnelError> {
        let failed = |reason: String| TunnelError::ProxyFailed {
            proxy: self.address.clone(),
            reason,
        };
        let mut stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| failed(format!("cannot connect: {e}")))?;
        stream.set_nodelay(true).ok();
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str("Proxy-Authorization: ");
            request.push_str(authorization);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| failed(format!("cannot send CONNECT: {e}")))?;

        // Read byte by byte up to the end of the head: anything after it
        // belongs to the gateway (TLS or the upgrade), so nothing may be
        // read past it. The head is a few dozen bytes, once per dial.
        let mut head = Vec::with_capacity(128);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_CONNECT_RESPONSE {
                return Err(failed(format!(
                    "response head longer than {MAX_CONNECT_RESPONSE} bytes"
                )));
            }
            let byte = stream
                .read_u8()
                .await
                .map_err(|e| failed(format!("connection ended during CONNECT: {e}")))?;
            head.push(byte);
        }
        let status_line = head
            .split(|&b| b == b'\r')
            .next()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| failed(format!("bad response {status_line:?}")))?;
        if !(200..300).contains(&status) {
            return Err(failed(format!("CONNECT {target} refused: {status_line}")));
        }
        Ok(stream)
    }
}

/// `%XX` escapes in URL credentials, as curl and Go decode them.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The `NO_PROXY` list.
#[derive(Debug, Clone, Default)]
struct NoProxy {
    all: bool,
    rules: Vec<NoProxyRule>,
}

#[derive(Debug, Clone)]
struct NoProxyRule {
    pattern: Pattern,
    port: Option<u16>,
}

#[derive(Debug, Clone)]
enum Pattern {
    /// A host name (lower case, without a leading dot).
    Domain(String),
    /// An address and prefix length.
    Network(IpAddr, u8),
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            let (host, port) = split_port(entry);
            let pattern = if let Some((address, prefix)) = host.split_once('/') {
                match (address.parse::<IpAddr>(), prefix.parse::<u8>()) {
                    (Ok(address), Ok(prefix)) if prefix <= max_prefix(address) => {
                        Pattern::Network(address, prefix)
                    }
                    // Not a network: it can match no host name either.
                    _ => continue,
                }
            } else if let Ok(address) = host.parse::<IpAddr>() {
                Pattern::Network(address, max_prefix(address))
            } else {
                Pattern::Domain(host.trim_start_matches('.').to_ascii_lowercase())
            };
            no_proxy.rules.push(NoProxyRule { pattern, port });
        }
        no_proxy
    }

    fn bypasses(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let address = host.parse::<IpAddr>().ok();
        self.rules.iter().any(|rule| {
            rule.port.is_none_or(|p| p == port)
                && match (&rule.pattern, address) {
                    (Pattern::Network(network, prefix), Some(address)) => {
                        in_network(address, *network, *prefix)
                    }
                    (Pattern::Domain(domain), None) => {
                        let host = host.trim_end_matches('.');
                        host.eq_ignore_ascii_case(domain)
                            || (host.len() > domain.len()
                                && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
                                && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain))
                    }
                    _ => false,
                }
        })
    }
}

/// Splits `host:port`, `[v6]:port` or a bare host (an IPv6 address
/// without brackets has no port).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn max_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(no_proxy: &str) -> ProxyConfig {
        ProxyConfig::new(
            Some("proxy:3128"),
            Some("http://u:p%40ss@proxy:8080"),
            no_proxy,
        )
        .unwrap()
    }

    #[test]
    fn picks_the_proxy_by_scheme() {
        let config = config("");
        assert_eq!(config.proxy_address("gw", 443, true), Some("proxy:8080"));
        assert_eq!(config.proxy_address("gw", 80, false), Some("proxy:3128"));
        let https_only = ProxyConfig::new(None, Some("proxy:8080"), "").unwrap();
        assert_eq!(https_only.proxy_address("gw", 80, false), None);
    }

    #[test]
    fn credentials_become_basic_auth_and_stay_out_of_debug() {
        let config = config("");
        let proxy = config.https.as_ref().unwrap();
        // "u:p@ss", the escape decoded.
        assert_eq!(proxy.authorization.as_deref(), Some("Basic dTpwQHNz"));
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("p%40ss") && !debug.contains("dTpw"),
            "{debug}"
        );
    }

    #[test]
    fn no_proxy_matches_domains_addresses_networks_and_ports() {
        let config = config("example.com, .corp.local,10.0.0.0/8,192.168.1.7,[::1]:9438,gw:1234");
        let direct = |host, port| config.proxy_address(host, port, true).is_none();
        assert!(direct("example.com", 443));
        assert!(direct("gw.EXAMPLE.com", 443));
        assert!(!direct("notexample.com", 443));
        assert!(direct("a.corp.local", 443));
        assert!(direct("corp.local", 443));
        assert!(direct("10.20.30.40", 443));
        assert!(!direct("11.0.0.1", 443));
        assert!(direct("192.168.1.7", 443));
        assert!(!direct("192.168.1.8", 443));
        assert!(direct("::1", 9438));
        assert!(!direct("::1", 443));
        assert!(direct("gw", 1234));
        assert!(!direct("gw", 443));
    }

    #[test]
    fn star_bypasses_everything() {
        assert_eq!(config("*").proxy_address("anything", 1, true), None);
    }

    #[test]
    fn refuses_proxies_it_cannot_use() {
        for url in ["https://proxy:443", "socks5://proxy:1080", "http://"] {
            let error = ProxyConfig::new(None, Some(url), "").unwrap_err();
            assert!(
                matches!(error, TunnelError::InvalidProxy { .. }),
                "{url}: {error}"
            );
        }
        let error = ProxyConfig::new(None, Some("https://user:secret@proxy"), "").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
