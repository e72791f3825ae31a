//! The uwsgi request probe. What it shares with FastCGI and SCGI (the result, the outcome,
//! the read of the CGI/HTTP response head) is in [`crate::gateway`].
//!
//! nginx's uwsgi module sends one packet: a 4-byte header (`modifier1`, the size of the vars
//! as u16 little-endian, `modifier2`) and the vars, each as u16 LE key length, key, u16 LE
//! value length, value. The probe sends the vars of `include uwsgi_params;` plus `HTTP_HOST`
//! for a GET or HEAD without a body, and judges the answer as
//! `ngx_http_uwsgi_process_status_line` does: an HTTP status line if the first line is one,
//! else CGI headers with `Status:`.

use crate::gateway::{EncodeError, GatewayLimits, GatewayProbe, exchange_head, safe_method};
use crate::stream::Endpoint;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::connect::ConnectOutcome;
    use crate::gateway::GatewayOutcome;
    use crate::gateway::fake::{After, limits, one_shot};

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

    #[test]
    fn probe_future_is_send() {
        fn send<T: Send>(_: T) {}
        let endpoint = Endpoint::Tcp(([127, 0, 0, 1], 9).into());
        send(request(&endpoint, "GET", "/", "h", limits()));
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
