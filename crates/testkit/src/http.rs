//! A minimal blocking HTTP/1.1 client for plain `http` to local servers.
//!
//! Every request is sent with `Connection: close`, so each call opens one
//! connection and reads exactly one response from it. Response bodies framed
//! by `Content-Length`, by `Transfer-Encoding: chunked` (what Go servers use
//! for large pages) or by the server closing the connection are supported.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Timeout for connecting and for each individual read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout (the servers are local; refusing is immediate).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP response, fully read.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. `200`.
    pub status: u16,
    /// Header fields in the order received, names as sent by the server.
    pub headers: Vec<(String, String)>,
    /// The body with any transfer encoding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    ///
    /// # Panics
    ///
    /// If the body is not valid UTF-8.
    pub fn text(&self) -> &str {
        match std::str::from_utf8(&self.body) {
            Ok(text) => text,
            Err(e) => panic!("HTTP {} response body is not UTF-8: {e}", self.status),
        }
    }
}

impl fmt::Debug for Response {
    // Bodies can be megabytes; show a readable prefix only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 2048;
        let shown = &self.body[..self.body.len().min(SHOWN)];
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body", &String::from_utf8_lossy(shown))
            .finish()
    }
}

/// Sends a `GET` to `url` with extra `headers` and returns the response.
///
/// `url` is `http://HOST:PORT/path?query` or, without scheme,
/// `HOST:PORT/path?query`; an empty path means `/`.
///
/// # Panics
///
/// On any I/O or protocol error (use [`try_http_request`] to handle those).
pub fn http_get(url: &str, headers: &[(&str, &str)]) -> Response {
    http_request("GET", url, headers, &[])
}

/// Sends `method` (e.g. `PUT`, `POST`, `DELETE`) to `url` with extra
/// `headers` and `body`, and returns the response. See [`http_get`] for the
/// URL forms.
///
/// # Panics
///
/// On any I/O or protocol error (use [`try_http_request`] to handle those).
pub fn http_request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    match try_http_request(method, url, headers, body) {
        Ok(response) => response,
        Err(e) => panic!("HTTP {method} {url} failed: {e}"),
    }
}

/// Like [`http_request`], but returns I/O and protocol errors (including
/// "connection refused") instead of panicking.
///
/// `Host`, `Connection: close` and, when there is a body or the method is
/// `POST`/`PUT`/`PATCH`, `Content-Length` are added unless given in `headers`.
pub fn try_http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_with_timeout(method, url, headers, body, IO_TIMEOUT)
}

/// [`try_http_request`] with an explicit per-operation I/O timeout.
pub(crate) fn request_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let (authority, path) = split_url(url)?;
    let addr = resolve(authority)?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {authority}\r\n"));
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    let wants_length = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if wants_length && !has("content-length") && !has("transfer-encoding") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");

    let mut writer = &stream;
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()?;

    read_response(&mut BufReader::new(&stream), method == "HEAD")
}

/// Percent-encodes `s` for use as a URL query value or path segment: every
/// byte except the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits `url` into `host:port` and the request target (`/path?query`).
fn split_url(url: &str) -> io::Result<(&str, &str)> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.contains("://") {
        return Err(invalid_input(format!(
            "only plain http:// URLs are supported: {url}"
        )));
    } else {
        url
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(invalid_input(format!("URL has no host: {url}")));
    }
    Ok((authority, path))
}

fn resolve(authority: &str) -> io::Result<SocketAddr> {
    let with_port;
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority
    } else {
        with_port = format!("{authority}:80");
        &with_port
    };
    target
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid_input(format!("{authority} resolves to no address")))
}

fn read_response(reader: &mut impl BufRead, head_request: bool) -> io::Result<Response> {
    loop {
        let status_line = read_line(reader)?
            .ok_or_else(|| invalid_data("connection closed before a status line".into()))?;
        let status = parse_status_line(&status_line)?;
        let headers = read_headers(reader)?;
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(response);
        }
        let chunked = response.header("transfer-encoding").is_some_and(|te| {
            te.split(',')
                .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
        });
        if chunked {
            response.body = read_chunked(reader)?;
        } else if let Some(len) = response.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| invalid_data(format!("bad Content-Length: {len:?}")))?;
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            response.body = body;
        } else {
            reader.read_to_end(&mut response.body)?;
        }
        return Ok(response);
    }
}

fn parse_status_line(line: &str) -> io::Result<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid_data(format!("bad status line: {line:?}")));
    }
    code.parse()
        .ok()
        .filter(|c| (100..1000).contains(c))
        .ok_or_else(|| invalid_data(format!("bad status code in: {line:?}")))
}

fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?
            .ok_or_else(|| invalid_data("connection closed inside the header".into()))?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid_data(format!("bad header line: {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?
            .ok_or_else(|| invalid_data("connection closed before the last chunk".into()))?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid_data(format!("bad chunk size line: {line:?}")))?;
        if size == 0 {
            // Trailer fields, if any, end with an empty line; tolerate EOF.
            while let Some(trailer) = read_line(reader)? {
                if trailer.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        match read_line(reader)? {
            Some(end) if end.is_empty() => {}
            other => {
                return Err(invalid_data(format!(
                    "chunk not followed by CRLF: {other:?}"
                )))
            }
        }
    }
}

/// Reads one line without its `\r\n` or `\n`; `None` at end of stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| invalid_data(format!("non-UTF-8 protocol line: {e}")))
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::thread;

    /// Serves one connection with `reply` and returns the raw request head.
    fn serve_once(reply: &'static [u8]) -> (SocketAddr, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(&stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |n| n.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            head.push_str(&String::from_utf8(body).unwrap());
            (&stream).write_all(reply).unwrap();
            head
        });
        (addr, handle)
    }

    #[test]
    fn reads_chunked_body_with_extensions_and_trailers() {
        let (addr, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        let response = http_get(&format!("http://{addr}/metrics?x=1"), &[("Accept", "*/*")]);
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "hello, world");
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /metrics?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("Host: {addr}\r\n")), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
        assert!(head.contains("Accept: */*\r\n"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
    }

    #[test]
    fn reads_content_length_body_and_sends_request_body() {
        let (addr, server) =
            serve_once(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nX-A:  b \r\n\r\nokIGNORED");
        let response = http_request("PUT", &format!("{addr}/metrics/job/x"), &[], b"a 1\n");
        assert_eq!(response.status, 202);
        assert_eq!(response.body, b"ok");
        assert_eq!(response.header("X-a"), Some("b"));
        let head = server.join().unwrap();
        assert!(
            head.starts_with("PUT /metrics/job/x HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("Content-Length: 4\r\n"), "{head}");
        assert!(
            head.ends_with("\r\na 1\n") || head.ends_with("a 1\n"),
            "{head}"
        );
    }

    #[test]
    fn reads_until_close_and_skips_interim_responses() {
        let (addr, _server) = serve_once(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\ngone\n",
        );
        let response = http_request("DELETE", &format!("http://{addr}"), &[], &[]);
        assert_eq!(response.status, 404);
        assert_eq!(response.text(), "gone\n");
    }

    #[test]
    fn reports_errors_instead_of_panicking() {
        let port = crate::free_port();
        let refused = try_http_request("GET", &format!("127.0.0.1:{port}/"), &[], &[]);
        assert!(refused.is_err());
        let https = try_http_request("GET", "https://127.0.0.1:1/", &[], &[]);
        assert_eq!(https.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let (addr, _server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        let truncated = try_http_request("GET", &format!("{addr}/"), &[], &[]);
        assert_eq!(truncated.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn percent_encodes_everything_but_unreserved() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(
            percent_encode(r#"up{job="node"} == 1"#),
            "up%7Bjob%3D%22node%22%7D%20%3D%3D%201"
        );
        assert_eq!(percent_encode("é/+"), "%C3%A9%2F%2B");
    }
}
