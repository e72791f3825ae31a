//! The uwsgi request probe, and what it shares with the SCGI probe ([`crate::scgi`]): the
//! [`GatewayProbe`] result and the read of a CGI/HTTP response head.
//!
//! nginx's uwsgi module sends one packet: a 4-byte header (`modifier1`, the size of the vars
//! as u16 little-endian, `modifier2`) and the vars, each as u16 LE key length, key, u16 LE
//! value length, value. The probe sends the vars of `include uwsgi_params;` plus `HTTP_HOST`
//! for a GET or HEAD without a body, and judges the answer as
//! `ngx_http_uwsgi_process_status_line` does: an HTTP status line if the first line is one,
//! else CGI headers with `Status:`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::connect::ConnectOutcome;
use crate::fastcgi::{HeadParser, HeadState};
use crate::stream::{Endpoint, ReadEnd, open, read_bounded};

/// Bounds of a uwsgi or SCGI probe: the same as FastCGI's (`cap` is `uwsgi_buffer_size`
/// or `scgi_buffer_size`).
pub type GatewayLimits = crate::fastcgi::FcgiLimits;

/// How many raw bytes [`GatewayProbe::head`] keeps.
const RAW_HEAD: usize = 64;

/// Why a request cannot be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The uwsgi vars exceed 65535 bytes (nginx: "uwsgi request is too big: N").
    #[error("uwsgi request is too big: {0}")]
    TooBig(usize),
    /// An SCGI header name or value contains a NUL byte, which SCGI cannot carry.
    #[error("NUL byte in SCGI header {0}")]
    Nul(String),
}

/// How a uwsgi or SCGI probe ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayOutcome {
    /// A complete response head arrived.
    Response,
    /// The connect failed.
    ConnectFailed(ConnectOutcome),
    /// The peer closed before a complete head (nginx: "upstream prematurely closed
    /// connection").
    ClosedEarly,
    /// The peer reset the connection (104).
    Reset,
    /// No complete head within the probe timeout.
    TimedOut,
    /// The head is larger than the cap (nginx: "upstream sent too big header").
    HeaderTooBig,
    /// The `Status:` header is not numeric (nginx: "upstream sent invalid status").
    InvalidStatus(String),
    /// A header line nginx rejects (nginx: "upstream sent invalid header: ...").
    InvalidHeader(String),
    /// The request could not be encoded (nothing was sent).
    InvalidRequest(String),
    /// Sending the request failed.
    WriteError {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description.
        message: String,
    },
    /// Another read error.
    ReadError {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description.
        message: String,
    },
}

impl fmt::Display for GatewayOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Response => f.write_str("complete response header"),
            Self::ConnectFailed(c) => write!(f, "connect failed: {c}"),
            Self::ClosedEarly => f.write_str("closed the connection before a complete header"),
            Self::Reset => f.write_str("connection reset by peer (104)"),
            Self::TimedOut => f.write_str("no complete header within the probe timeout"),
            Self::HeaderTooBig => f.write_str("header larger than the buffer (too big header)"),
            Self::InvalidStatus(value) => write!(f, "invalid status \"{value}\""),
            Self::InvalidHeader(text) => write!(f, "invalid header: \"{text}\""),
            Self::InvalidRequest(why) => write!(f, "request not sent: {why}"),
            Self::WriteError { errno, message } => {
                crate::fastcgi::io_failure(f, "send", *errno, message)
            }
            Self::ReadError { errno, message } => {
                crate::fastcgi::io_failure(f, "read", *errno, message)
            }
        }
    }
}

/// The result of one uwsgi or SCGI probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayProbe {
    /// The endpoint as nginx writes it.
    pub endpoint: String,
    /// How long the connect took, when it succeeded.
    pub connect_time: Option<Duration>,
    /// Time from the end of sending to the first byte received.
    pub first_byte: Option<Duration>,
    /// Time of the whole probe.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: GatewayOutcome,
    /// The status of a complete head: the status line's, `Status:`, 302 for `Location:`,
    /// else 200.
    pub status: Option<u16>,
    /// Bytes of the head through the empty line; without a complete head, the bytes
    /// received.
    pub header_bytes: usize,
    /// The first (at most 64) bytes received, as evidence.
    pub head: Vec<u8>,
}

/// GET or HEAD; anything else is sent as GET (the probes never send a body).
pub(crate) fn safe_method(method: &str) -> &'static str {
    if method.eq_ignore_ascii_case("HEAD") {
        "HEAD"
    } else {
        "GET"
    }
}

/// The vars nginx's `uwsgi_params` give for `<method> <uri>` with no body, plus `HTTP_HOST`.
fn vars<'a>(method: &'a str, uri: &'a str, host: &'a str) -> [(&'a str, &'a str); 12] {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("REQUEST_URI", uri),
        ("PATH_INFO", path),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", host),
        ("HTTP_HOST", host),
    ]
}

/// The uwsgi packet for `<method> <uri>` (method GET or HEAD; anything else → GET) with
/// `Host: <host>`: header with modifier1 = 0 and modifier2 = 0, then the vars.
pub fn encode_request(method: &str, uri: &str, host: &str) -> Result<Vec<u8>, EncodeError> {
    let method = safe_method(method);
    let mut body = Vec::new();
    for (key, value) in vars(method, uri, host) {
        for part in [key.as_bytes(), value.as_bytes()] {
            let len = u16::try_from(part.len()).map_err(|_| EncodeError::TooBig(part.len()))?;
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(part);
        }
    }
    let size = u16::try_from(body.len()).map_err(|_| EncodeError::TooBig(body.len()))?;
    let [lo, hi] = size.to_le_bytes();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&[0, lo, hi, 0]);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Sends a uwsgi request for `<method> <uri>` with `Host: <host>` and reads the response
/// head, bounded by `limits`.
pub async fn request(
    endpoint: &Endpoint,
    method: &str,
    uri: &str,
    host: &str,
    limits: GatewayLimits,
) -> GatewayProbe {
    let probe = exchange_head(endpoint, encode_request(method, uri, host), limits).await;
    tracing::debug!(endpoint = %probe.endpoint, outcome = %probe.outcome, "uwsgi probe");
    probe
}

/// Connects, sends `payload`, and reads one CGI/HTTP response head (an HTTP status line is
/// allowed first), as nginx's uwsgi and SCGI modules read it.
pub(crate) async fn exchange_head(
    endpoint: &Endpoint,
    payload: Result<Vec<u8>, EncodeError>,
    limits: GatewayLimits,
) -> GatewayProbe {
    let start = Instant::now();
    let deadline = start + limits.timeout;
    let mut probe = GatewayProbe {
        endpoint: endpoint.to_string(),
        connect_time: None,
        first_byte: None,
        elapsed: Duration::ZERO,
        outcome: GatewayOutcome::TimedOut,
        status: None,
        header_bytes: 0,
        head: Vec::new(),
    };
    probe.outcome = match payload {
        Err(err) => GatewayOutcome::InvalidRequest(err.to_string()),
        Ok(payload) => match open(endpoint, deadline).await {
            Err(outcome) => GatewayOutcome::ConnectFailed(outcome),
            Ok((mut stream, took)) => {
                probe.connect_time = Some(took);
                match tokio::time::timeout_at(deadline, stream.write_all(&payload)).await {
                    Err(_) => GatewayOutcome::TimedOut,
                    Ok(Err(err)) => match ReadEnd::from_io_error(&err) {
                        ReadEnd::Reset => GatewayOutcome::Reset,
                        _ => GatewayOutcome::WriteError {
                            errno: err.raw_os_error(),
                            message: err.to_string(),
                        },
                    },
                    Ok(Ok(())) => read_head(&mut stream, deadline, limits.cap, &mut probe).await,
                }
            }
        },
    };
    probe.elapsed = start.elapsed();
    probe
}

/// Reads the head (at most `cap + 1` bytes) and judges it.
async fn read_head(
    stream: &mut crate::stream::Stream,
    deadline: Instant,
    cap: usize,
    probe: &mut GatewayProbe,
) -> GatewayOutcome {
    let mut parser = HeadParser::new(true);
    let mut state = HeadState::Incomplete;
    let read = read_bounded(stream, deadline, cap.saturating_add(1), |bytes| {
        state = parser.advance(bytes);
        state != HeadState::Incomplete
    })
    .await;
    // read_bounded starts its clock right after the send.
    probe.first_byte = read.first_byte;
    probe.head = read.bytes.get(..RAW_HEAD).unwrap_or(&read.bytes).to_vec();
    probe.header_bytes = read.bytes.len();
    match state {
        HeadState::Done { len, .. } if len > cap => {
            probe.header_bytes = len;
            GatewayOutcome::HeaderTooBig
        }
        HeadState::Done { len, status } => {
            probe.header_bytes = len;
            probe.status = Some(status);
            GatewayOutcome::Response
        }
        HeadState::InvalidHeader(text) => GatewayOutcome::InvalidHeader(text),
        HeadState::InvalidStatus(value) => GatewayOutcome::InvalidStatus(value),
        HeadState::Incomplete => match read.end {
            ReadEnd::Capped => GatewayOutcome::HeaderTooBig,
            ReadEnd::Eof | ReadEnd::Done => GatewayOutcome::ClosedEarly,
            ReadEnd::Reset => GatewayOutcome::Reset,
            ReadEnd::TimedOut => GatewayOutcome::TimedOut,
            ReadEnd::Error { errno, message } => GatewayOutcome::ReadError { errno, message },
        },
    }
}

/// In-process fake servers for the tests of this module, [`crate::fastcgi`] and
/// [`crate::scgi`].
#[cfg(test)]
pub(crate) mod fake {
    use std::time::Duration;

    /// The limits the gateway-probe tests use: a 4 KiB header cap, 2 s.
    pub(crate) fn limits() -> crate::fastcgi::FcgiLimits {
        crate::fastcgi::FcgiLimits {
            cap: 4096,
            timeout: Duration::from_secs(2),
        }
    }

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use crate::stream::Endpoint;

    /// What the fake does after its reply.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum After {
        /// Close (FIN).
        Close,
        /// Keep the connection open this long, then close.
        Hold(Duration),
        /// Close with RST (SO_LINGER 0).
        Reset,
    }

    /// A server for one connection: reads until `complete(request)` (at most 1 MiB and 2
    /// s), writes `reply`, then does `after`. The task yields the bytes it received.
    pub(crate) async fn one_shot(
        reply: Vec<u8>,
        complete: fn(&[u8]) -> bool,
        after: After,
    ) -> (Endpoint, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let received = read_request(&mut conn, complete).await;
            conn.write_all(&reply).await.expect("write reply");
            match after {
                After::Close => {}
                After::Hold(time) => tokio::time::sleep(time).await,
                After::Reset => conn.set_zero_linger().expect("linger"),
            }
            drop(conn);
            received
        });
        (endpoint, task)
    }

    /// Reads a request until `complete` says so, the peer closes, 1 MiB or 2 s.
    pub(crate) async fn read_request<R: AsyncReadExt + Unpin>(
        conn: &mut R,
        complete: fn(&[u8]) -> bool,
    ) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !complete(&received) && received.len() < 1 << 20 {
            match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => received.extend_from_slice(buf.get(..n).unwrap_or(&[])),
                _ => break,
            }
        }
        received
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{After, limits, one_shot};
    use super::*;

    /// A complete uwsgi packet: 4-byte header plus its declared size.
    fn packet_complete(bytes: &[u8]) -> bool {
        match bytes.first_chunk::<4>() {
            Some(&[_, lo, hi, _]) => bytes.len() >= 4 + usize::from(u16::from_le_bytes([lo, hi])),
            None => false,
        }
    }

    /// Parses a uwsgi packet independently of the encoder.
    fn parse_packet(bytes: &[u8]) -> (u8, u8, Vec<(String, String)>) {
        let &[m1, lo, hi, m2] = bytes.first_chunk::<4>().expect("header");
        let size = usize::from(u16::from_le_bytes([lo, hi]));
        assert_eq!(bytes.len(), 4 + size, "datasize covers exactly the vars");
        let mut rest = &bytes[4..];
        let mut take = || {
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let s = String::from_utf8(rest[2..2 + len].to_vec()).expect("utf8");
            rest = &rest[2 + len..];
            s
        };
        let mut vars = Vec::new();
        for _ in 0..12 {
            let k = take();
            let v = take();
            vars.push((k, v));
        }
        assert!(rest.is_empty(), "nothing after the vars");
        (m1, m2, vars)
    }

    fn expected_vars(method: &str) -> Vec<(String, String)> {
        [
            ("QUERY_STRING", "a=1"),
            ("REQUEST_METHOD", method),
            ("CONTENT_TYPE", ""),
            ("CONTENT_LENGTH", ""),
            ("REQUEST_URI", "/app/x?a=1"),
            ("PATH_INFO", "/app/x"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_PORT", "80"),
            ("SERVER_NAME", "example.test"),
            ("HTTP_HOST", "example.test"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn packet_layout_is_nginx_s() {
        let bytes = encode_request("GET", "/", "h").expect("encode");
        // modifier1 0, little-endian size, modifier2 0; first var QUERY_STRING (12 bytes).
        assert_eq!(bytes[0], 0);
        assert_eq!(bytes[3], 0);
        assert_eq!(
            usize::from(u16::from_le_bytes([bytes[1], bytes[2]])),
            bytes.len() - 4
        );
        assert_eq!(&bytes[4..6], &[12, 0]);
        assert_eq!(&bytes[6..18], b"QUERY_STRING");
        assert_eq!(&bytes[18..20], &[0, 0]);
        let huge = "/".repeat(70_000);
        assert!(matches!(
            encode_request("GET", &huge, "h"),
            Err(EncodeError::TooBig(_))
        ));
    }

    #[tokio::test]
    async fn http_answer_is_read_and_request_bytes_are_exact() {
        let reply =
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nbusy".to_vec();
        let (endpoint, server) = one_shot(reply, packet_complete, After::Close).await;
        let probe = request(&endpoint, "POST", "/app/x?a=1", "example.test", limits()).await;
        let received = server.await.expect("server");
        let (m1, m2, vars) = parse_packet(&received);
        assert_eq!((m1, m2), (0, 0));
        assert_eq!(vars, expected_vars("GET"), "POST is sent as GET");
        assert_eq!(probe.outcome, GatewayOutcome::Response);
        assert_eq!(probe.status, Some(503));
        assert_eq!(probe.header_bytes, 62);
        assert!(probe.head.starts_with(b"HTTP/1.1 503"));
        assert!(probe.connect_time.is_some() && probe.first_byte.is_some());
    }

    #[tokio::test]
    async fn cgi_status_answer_and_head_method() {
        let reply = b"Status: 404 Not Found\nContent-Type: text/html\n\n".to_vec();
        let (endpoint, server) = one_shot(reply, packet_complete, After::Close).await;
        let probe = request(&endpoint, "head", "/app/x?a=1", "example.test", limits()).await;
        let (_, _, vars) = parse_packet(&server.await.expect("server"));
        assert_eq!(vars, expected_vars("HEAD"));
        assert_eq!(probe.outcome, GatewayOutcome::Response);
        assert_eq!(probe.status, Some(404));
    }

    #[tokio::test]
    async fn closed_early_reset_and_invalid_status() {
        let (endpoint, _server) =
            one_shot(b"HTTP/1.1 20".to_vec(), packet_complete, After::Close).await;
        let probe = request(&endpoint, "GET", "/", "h", limits()).await;
        assert_eq!(probe.outcome, GatewayOutcome::ClosedEarly);
        assert_eq!(probe.header_bytes, 11);
        assert_eq!(probe.head, b"HTTP/1.1 20");

        let (endpoint, _server) = one_shot(Vec::new(), packet_complete, After::Reset).await;
        let probe = request(&endpoint, "GET", "/", "h", limits()).await;
        assert_eq!(probe.outcome, GatewayOutcome::Reset);

        let (endpoint, _server) = one_shot(
            b"Status: OK\r\n\r\n".to_vec(),
            packet_complete,
            After::Close,
        )
        .await;
        let probe = request(&endpoint, "GET", "/", "h", limits()).await;
        assert_eq!(
            probe.outcome,
            GatewayOutcome::InvalidStatus("OK".to_owned())
        );
        assert_eq!(probe.status, None);
    }

    #[tokio::test]
    async fn silent_server_times_out_and_big_head_is_too_big() {
        let (endpoint, _server) = one_shot(
            Vec::new(),
            packet_complete,
            After::Hold(Duration::from_secs(3)),
        )
        .await;
        let quick = GatewayLimits {
            cap: 4096,
            timeout: Duration::from_millis(300),
        };
        let probe = request(&endpoint, "GET", "/", "h", quick).await;
        assert_eq!(probe.outcome, GatewayOutcome::TimedOut);
        assert!(
            probe.elapsed < Duration::from_secs(1),
            "{:?}",
            probe.elapsed
        );

        let mut reply = b"HTTP/1.1 200 OK\r\nSet-Cookie: ".to_vec();
        reply.extend(vec![b'a'; 5000]);
        reply.extend_from_slice(b"\r\n\r\n");
        let (endpoint, _server) = one_shot(reply, packet_complete, After::Close).await;
        let probe = request(&endpoint, "GET", "/", "h", limits()).await;
        assert_eq!(probe.outcome, GatewayOutcome::HeaderTooBig);
        assert_eq!(probe.header_bytes, 4097);
    }

    #[tokio::test]
    async fn refused_and_unencodable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr"));
        drop(listener);
        let probe = request(&endpoint, "GET", "/", "h", limits()).await;
        assert_eq!(
            probe.outcome,
            GatewayOutcome::ConnectFailed(ConnectOutcome::Refused)
        );
        let probe = request(&endpoint, "GET", &"/".repeat(70_000), "h", limits()).await;
        assert!(matches!(probe.outcome, GatewayOutcome::InvalidRequest(_)));
        assert_eq!(probe.connect_time, None);
    }
}
