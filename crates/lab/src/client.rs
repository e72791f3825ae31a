//! One plain HTTP/1.1 request through the lab's nginx, returning only the status code.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::LabError;
use crate::config::SERVER_NAME;

/// Connect, read and write timeout, and the limit for reading the status line.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The most bytes read while looking for the end of the status line.
const MAX_STATUS_LINE: usize = 1024;

/// Sends `GET path` to `addr` (Host: the lab's server name) and returns the response status.
pub(crate) fn get_status(addr: SocketAddr, path: &str) -> Result<u16, LabError> {
    status(addr, "GET", path, b"")
}

/// Sends `GET path` to `addr` with `Host: host` and returns the response status.
pub(crate) fn get_status_at(addr: SocketAddr, host: &str, path: &str) -> Result<u16, LabError> {
    request(addr, host, "GET", path, b"")
}

/// Sends `method path` with `body` (a `Content-Length` header when it is not empty) to `addr`
/// and returns the response status.
pub(crate) fn status(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<u16, LabError> {
    request(addr, SERVER_NAME, method, path, body)
}

/// Sends `method path` with `Host: host` and `body` to `addr` and returns the response status.
fn request(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<u16, LabError> {
    let what = format!("{method} {path} via {addr}");
    let io = |e| LabError::io(what.clone(), e);
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let length = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{length}Connection: close\r\n\r\n")
            .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).map_err(io)?;

    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + TIMEOUT;
    while head.len() < MAX_STATUS_LINE && Instant::now() < deadline && !head.contains(&b'\n') {
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    parse_status(&head).ok_or_else(|| {
        io(io::Error::new(
            io::ErrorKind::InvalidData,
            "the answer does not start with an HTTP status line",
        ))
    })
}

/// The status code of an `HTTP/1.x NNN ...` status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(
            parse_status(b"HTTP/1.1 502 Bad Gateway\r\nServer: x"),
            Some(502)
        );
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"SSH-2.0-x\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn refused_connection_is_an_io_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let err = get_status(SocketAddr::from(([127, 0, 0, 1], port)), "/");
        assert!(matches!(err, Err(LabError::Io { .. })));
    }
}
