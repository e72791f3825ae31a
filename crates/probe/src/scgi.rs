//! The SCGI request probe.
//!
//! nginx's SCGI module sends the headers as one netstring, `<length>:<headers>,`, where the
//! headers are NUL-terminated names and values with `CONTENT_LENGTH` first and `SCGI` `1`
//! among them (the order below is what nginx 1.22.1 was seen sending); the answer is read
//! like uwsgi's (an HTTP status line or CGI `Status:`), by [`crate::gateway`], so the result
//! is the shared [`GatewayProbe`].

use crate::gateway::{EncodeError, GatewayLimits, GatewayProbe, exchange_head, safe_method};
use crate::stream::Endpoint;

/// The headers nginx 1.22 sends for `<method> <uri>` with no body and
/// `include scgi_params;`, in its order: `CONTENT_LENGTH` first (nginx adds it), then
/// `scgi_params` (which has `SCGI 1` after `DOCUMENT_URI`), then `HTTP_HOST`.
fn headers<'a>(method: &'a str, uri: &'a str, host: &'a str) -> [(&'a str, &'a str); 13] {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    [
        ("CONTENT_LENGTH", "0"),
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", uri),
        ("QUERY_STRING", query),
        ("CONTENT_TYPE", ""),
        ("DOCUMENT_URI", path),
        ("SCGI", "1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", host),
        ("HTTP_HOST", host),
    ]
}

/// The SCGI request for `<method> <uri>` (method GET or HEAD; anything else → GET) with
/// `Host: <host>`: one netstring of NUL-terminated names and values, no body.
pub fn encode_request(method: &str, uri: &str, host: &str) -> Result<Vec<u8>, EncodeError> {
    let method = safe_method(method);
    let mut body = Vec::new();
    for (name, value) in headers(method, uri, host) {
        if value.contains('\0') {
            return Err(EncodeError::Nul(name.to_owned()));
        }
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    let mut out = format!("{}:", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out.push(b',');
    Ok(out)
}

/// Sends an SCGI request for `<method> <uri>` with `Host: <host>` and reads the response
/// head, bounded by `limits`.
pub async fn request(
    endpoint: &Endpoint,
    method: &str,
    uri: &str,
    host: &str,
    limits: GatewayLimits,
) -> GatewayProbe {
    let probe = exchange_head(endpoint, encode_request(method, uri, host), limits).await;
    tracing::debug!(endpoint = %probe.endpoint, outcome = %probe.outcome, "scgi probe");
    probe
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::gateway::GatewayOutcome;
    use crate::gateway::fake::{After, limits, one_shot};

    /// A complete netstring: `<digits>:` plus that many bytes plus `,`.
    fn netstring_complete(bytes: &[u8]) -> bool {
        let Some(colon) = bytes.iter().position(|&b| b == b':') else {
            return false;
        };
        let len: usize = std::str::from_utf8(&bytes[..colon])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX / 2);
        bytes.len() > colon + 1 + len
    }

    /// Parses a netstring of NUL-terminated pairs independently of the encoder.
    fn parse(bytes: &[u8]) -> Vec<(String, String)> {
        let colon = bytes.iter().position(|&b| b == b':').expect("colon");
        let len: usize = std::str::from_utf8(&bytes[..colon])
            .expect("digits")
            .parse()
            .expect("length");
        assert_eq!(bytes.len(), colon + 1 + len + 1, "exactly one netstring");
        assert_eq!(bytes[bytes.len() - 1], b',');
        let body = &bytes[colon + 1..colon + 1 + len];
        assert_eq!(body.last(), Some(&0), "every string is NUL-terminated");
        let parts: Vec<String> = body[..body.len() - 1]
            .split(|&b| b == 0)
            .map(|p| String::from_utf8(p.to_vec()).expect("utf8"))
            .collect();
        assert_eq!(parts.len() % 2, 0);
        parts
            .chunks(2)
            .map(|kv| (kv[0].clone(), kv[1].clone()))
            .collect()
    }

    #[tokio::test]
    async fn request_is_one_netstring_and_cgi_answer_is_read() {
        let reply = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello".to_vec();
        let (endpoint, server) = one_shot(reply, netstring_complete, After::Close).await;
        let probe = request(&endpoint, "DELETE", "/s?q=2", "example.test", limits()).await;
        let received = server.await.expect("server");
        assert!(received.starts_with(b"239:CONTENT_LENGTH\x000\x00REQUEST_METHOD\x00GET\x00"));
        let expected: Vec<(String, String)> = [
            ("CONTENT_LENGTH", "0"),
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/s?q=2"),
            ("QUERY_STRING", "q=2"),
            ("CONTENT_TYPE", ""),
            ("DOCUMENT_URI", "/s"),
            ("SCGI", "1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_PORT", "80"),
            ("SERVER_NAME", "example.test"),
            ("HTTP_HOST", "example.test"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(parse(&received), expected);
        assert_eq!(probe.outcome, GatewayOutcome::Response);
        assert_eq!(probe.status, Some(200));
        assert_eq!(probe.header_bytes, 44);
    }

    #[tokio::test]
    async fn http_answer_closed_early_and_timed_out() {
        let (endpoint, _server) = one_shot(
            b"HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n".to_vec(),
            netstring_complete,
            After::Close,
        )
        .await;
        let probe = request(&endpoint, "HEAD", "/", "h", limits()).await;
        assert_eq!(probe.outcome, GatewayOutcome::Response);
        assert_eq!(probe.status, Some(302));

        let (endpoint, _server) = one_shot(Vec::new(), netstring_complete, After::Close).await;
        let probe = request(&endpoint, "GET", "/", "h", limits()).await;
        assert_eq!(probe.outcome, GatewayOutcome::ClosedEarly);
        assert_eq!(probe.header_bytes, 0);
        assert!(probe.head.is_empty());

        let (endpoint, _server) = one_shot(
            Vec::new(),
            netstring_complete,
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
    }

    #[test]
    fn probe_future_is_send() {
        fn send<T: Send>(_: T) {}
        let endpoint = Endpoint::Tcp(([127, 0, 0, 1], 9).into());
        send(request(&endpoint, "GET", "/", "h", limits()));
    }

    #[test]
    fn nul_cannot_be_encoded() {
        assert!(matches!(
            encode_request("GET", "/a\0b", "h"),
            Err(EncodeError::Nul(name)) if name == "REQUEST_URI"
        ));
    }
}
