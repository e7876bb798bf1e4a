//! A tiny metrics server for the Docker tests: std only, so it links
//! statically and runs in an image built `FROM scratch` (see
//! `testkit::docker`, which compiles this file into every test image).
//!
//! It listens on `0.0.0.0:$PORT` (default 9100) and answers every request
//! with a small exposition page naming `$REPLICA`. With `MODE=garbage` it
//! answers `200` with a body that is not an exposition page.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "9100".to_owned());
    let replica = std::env::var("REPLICA").unwrap_or_else(|_| "unnamed".to_owned());
    let garbage = std::env::var("MODE").is_ok_and(|m| m == "garbage");
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))
        .unwrap_or_else(|e| panic!("cannot listen on port {port}: {e}"));
    let mut served: u64 = 0;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        served += 1;
        let body = if garbage {
            "<html>this is {{ not a metrics page\n".to_owned()
        } else {
            page(&replica, served)
        };
        // A client that hangs up early costs only its own answer.
        let _ = answer(stream, &body);
    }
}

fn page(replica: &str, served: u64) -> String {
    format!(
        "# HELP demo_requests_total Scrapes this server answered.\n\
         # TYPE demo_requests_total counter\n\
         demo_requests_total {served}\n\
         # HELP demo_replica_info The replica that answered.\n\
         # TYPE demo_replica_info gauge\n\
         demo_replica_info{{replica=\"{replica}\"}} 1\n"
    )
}

fn answer(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    // Read the request head; its content does not matter.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
