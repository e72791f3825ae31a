//! Tests of `classify` for the response side (docs/nginx-messages.md §8–§14): resets,
//! premature closes, invalid headers, FastCGI, HTTP/2, TLS and body-phase truncations, with
//! their near misses.
//! Lines come from the `catalog.log` fixture and from nginx 1.22.1 itself
//! (tests/fixtures/errorlog/make-real-response-log.sh).

use fix502_nginx::classify::{
    Classified, FastCgiKind, Http2Kind, InvalidBodyKind, InvalidHeaderKind, PeerProtocol, Phase,
    Signature, TlsKind, TlsReason, classify, frame_length_bytes,
};
use fix502_nginx::errorlog::parse_line;

mod common;
use common::find;

const CATALOG: &str = include_str!("fixtures/errorlog/catalog.log");
const REAL: &str = include_str!("fixtures/errorlog/real-response.log");

fn classify_str(line: &str) -> Option<Classified> {
    classify(&parse_line(line).unwrap_or_else(|| panic!("unparsed: {line}")))
}

fn cat(needle: &str) -> Classified {
    classify_str(find(CATALOG, needle)).unwrap_or_else(|| panic!("not classified: {needle}"))
}

fn real(needle: &str) -> Classified {
    classify_str(find(REAL, needle)).unwrap_or_else(|| panic!("not classified: {needle}"))
}

/// A line with `message` (errno group included) logged while `action`, against `upstream`.
fn line(level: &str, message: &str, action: &str, upstream: &str) -> String {
    format!(
        "2025/03/14 10:00:00 [{level}] 1#1: *7 {message} while {action}, client: 192.0.2.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"{upstream}\", host: \"h\""
    )
}

const HEADER: &str = "reading response header from upstream";
const BODY: &str = "reading upstream";
const SENDING: &str = "sending request to upstream";
const HANDSHAKE: &str = "SSL handshaking to upstream";

fn sig(level: &str, message: &str, action: &str, upstream: &str) -> Option<Signature> {
    classify_str(&line(level, message, action, upstream)).map(|c| c.signature)
}

#[track_caller]
fn assert_line(c: &Classified, signature: Signature, phase: Phase, status: u16) {
    assert_eq!(c.signature, signature);
    assert_eq!(c.phase, Some(phase));
    assert_eq!(c.http_status(), status);
    assert_eq!(c.is_gateway_error(), matches!(status, 502 | 504));
}

#[test]
fn resets_and_kernel_timeouts_while_sending_and_reading() {
    use Phase::{ReadingBody, ReadingHeader, SendingRequest};
    let c = cat("*1440 "); // writev() failed (32)
    assert_line(&c, Signature::Reset, SendingRequest, 502);
    assert_eq!(c.peer.as_deref(), Some("127.0.0.1:8000"));
    assert_line(&cat("*1441 "), Signature::Reset, SendingRequest, 502); // send() 104
    assert_line(
        &cat("*1442 "),
        Signature::SendFailed { errno: 107 },
        SendingRequest,
        502,
    );
    let c = cat("*1443 "); // SSL_read() 104
    assert_line(&c, Signature::Reset, ReadingHeader, 502);
    assert_eq!(c.scheme.as_deref(), Some("https"));
    let c = cat("*1445 "); // readv() 104 in the body: truncated, not 502
    assert_line(&c, Signature::Reset, ReadingBody, 200);
    assert!(c.truncates_response());
    assert_eq!(c.signature.http_status(), 502); // the header-phase meaning
    assert_line(
        &cat("*1446 "),
        Signature::KernelTimedOut,
        ReadingHeader,
        502,
    );
    assert!(!cat("*1446 ").truncates_response());
}

#[test]
fn io_errnos_by_number_not_text() {
    let up = "http://127.0.0.1:8000/";
    for (message, action, expected) in [
        ("recv() failed (104: x)", HEADER, Signature::Reset),
        (
            "recv() failed (54: Connection reset by peer)",
            HEADER,
            Signature::Reset,
        ), // BSD
        (
            "recv() failed (60: Operation timed out)",
            HEADER,
            Signature::KernelTimedOut,
        ), // BSD
        (
            "recv() failed (110: Zeitüberschreitung)",
            HEADER,
            Signature::KernelTimedOut,
        ),
        (
            "recv() failed (113: Host is unreachable)",
            HEADER,
            Signature::RecvFailed { errno: 113 },
        ),
        (
            "writev() failed (32: Broken pipe)",
            SENDING,
            Signature::Reset,
        ),
        (
            "writev() failed (110: Operation timed out)",
            SENDING,
            Signature::KernelTimedOut,
        ),
        (
            "SSL_write() failed (SSL: error:0A00007F:SSL routines::bad write retry)",
            SENDING,
            Signature::Tls(TlsKind::IoFailed),
        ),
        // EPIPE only means "reset" on a write.
        (
            "recv() failed (32: Broken pipe)",
            HEADER,
            Signature::RecvFailed { errno: 32 },
        ),
    ] {
        assert_eq!(
            sig("error", message, action, up),
            Some(expected),
            "{message}"
        );
    }
    // SSL errors and an errno: the errno decides, the OpenSSL text is the detail.
    let c = classify_str(&line(
        "error",
        "SSL_read() failed (SSL: error:0A000126:SSL routines::unexpected eof while reading) (104: Connection reset by peer)",
        HEADER,
        "https://10.0.0.1:443/",
    ))
    .unwrap();
    assert_eq!(c.signature, Signature::Reset);
    assert_eq!(
        c.detail.as_deref(),
        Some("error:0A000126:SSL routines::unexpected eof while reading")
    );
    let c = cat("*1444 ");
    assert_line(
        &c,
        Signature::Tls(TlsKind::IoFailed),
        Phase::ReadingHeader,
        502,
    );
    assert!(c.detail.is_some_and(|d| d.ends_with("bad record mac")));
    // A message that only starts like an I/O failure is not one.
    assert_eq!(
        sig("error", "recv() failed badly", HEADER, up),
        Some(Signature::OtherUpstream)
    );
}

#[test]
fn io_failures_on_the_client_side_or_the_resolver_are_not_upstream_resets() {
    for (message, action) in [
        (
            "writev() failed (104: Connection reset by peer)",
            "sending to client",
        ),
        (
            "SSL_read() failed (104: Connection reset by peer)",
            "reading client request headers",
        ),
        ("recv() failed (104: Connection reset by peer)", "keepalive"),
    ] {
        assert_eq!(
            sig("info", message, action, "http://127.0.0.1:8000/"),
            None,
            "{message}"
        );
    }
    let resolver = "2025/03/14 10:00:00 [error] 7#7: recv() failed (104: Connection reset by peer) while resolving, resolver: 127.0.0.11:53";
    let c = classify_str(resolver).unwrap();
    assert_eq!((c.signature, c.peer), (Signature::OtherUpstream, None));
}

#[test]
fn premature_close_header_vs_body() {
    let header = cat("*1423 ");
    assert_line(
        &header,
        Signature::PrematureClose,
        Phase::ReadingHeader,
        502,
    );
    assert!(!header.truncates_response());
    let body = cat("*1424 ");
    assert_line(&body, Signature::PrematureClose, Phase::ReadingBody, 200);
    assert!(body.truncates_response());
    assert_eq!(body.signature.id(), "premature-close");
}

#[test]
fn header_validation_rows() {
    use InvalidHeaderKind as K;
    let h = Phase::ReadingHeader;
    let c = cat("*1447 ");
    assert_line(&c, Signature::InvalidHeader(K::DuplicateHeader), h, 502);
    assert_eq!(
        c.detail.as_deref(),
        Some("\"Content-Length: 5\", previous value: \"Content-Length: 5\"")
    );
    assert_line(
        &cat("*1449 "),
        Signature::InvalidHeader(K::ContentLengthAndTransferEncoding),
        h,
        502,
    );
    let c = cat("*1450 ");
    assert_line(
        &c,
        Signature::InvalidHeader(K::InvalidContentLength),
        h,
        502,
    );
    assert_eq!(c.detail.as_deref(), Some("Content-Length: 12, 12"));
    let c = cat("*1451 ");
    assert_line(
        &c,
        Signature::InvalidHeader(K::UnknownTransferEncoding),
        h,
        502,
    );
    assert_eq!(c.detail.as_deref(), Some("gzip, chunked"));
    let c = cat("*1452 ");
    assert_line(
        &c,
        Signature::InvalidHeader(K::Bytes { byte: Some(0) }),
        h,
        502,
    );
    assert_eq!(c.detail.as_deref(), Some("X-Debug\\x00..."));
    assert_line(
        &cat("*1455 "),
        Signature::InvalidHeader(K::EarlyHints),
        h,
        502,
    );
    let c = cat("*1461 ");
    assert_line(&c, Signature::InvalidHeader(K::InvalidStatus), h, 502);
    assert_eq!((c.detail.as_deref(), c.unix), (Some("OK"), true));
    assert_line(&cat("*1290 "), Signature::HeaderTooBig, h, 502);
}

#[test]
fn no_valid_http_header_is_not_a_502() {
    let c = cat("*1454 ");
    assert_eq!(
        c.signature,
        Signature::InvalidHeader(InvalidHeaderKind::NoValidHttpHeader)
    );
    // The access log shows `009`: relayed as HTTP/0.9.
    assert_eq!(c.http_status(), 9);
    assert!(!c.is_gateway_error());
    assert!(!c.truncates_response());
}

#[test]
fn invalid_header_near_misses() {
    let up = "http://127.0.0.1:8000/";
    // Before 1.21.1: no detail. In 1.21.1–1.21.3 it was logged at [info].
    let bare = Signature::InvalidHeader(InvalidHeaderKind::Bytes { byte: None });
    assert_eq!(cat("*1453 ").signature, bare);
    assert_eq!(cat("*1453 ").detail, None);
    assert_eq!(
        sig(
            "info",
            "upstream sent invalid header: \"a\\x0d...\"",
            HEADER,
            up
        ),
        Some(Signature::InvalidHeader(InvalidHeaderKind::Bytes {
            byte: Some(0x0d)
        }))
    );
    // The same bare text on a gRPC line is the HTTP/2 module's.
    assert_eq!(
        sig(
            "error",
            "upstream sent invalid header",
            HEADER,
            "grpc://10.0.0.1:50051"
        ),
        Some(Signature::Http2(Http2Kind::InvalidHeader))
    );
    let c = classify_str(&line(
        "error",
        "upstream sent invalid header: \"x-a b: 1\"",
        HEADER,
        "grpcs://10.0.0.1:50051",
    ))
    .unwrap();
    assert_eq!(
        (c.signature, c.detail.as_deref()),
        (Signature::Http2(Http2Kind::InvalidHeader), Some("x-a b: 1"))
    );
    // A value cut by the 2048-byte limit keeps its kind, without the byte.
    assert_eq!(
        sig(
            "error",
            "upstream sent invalid header: \"X-Very-Long",
            HEADER,
            up
        ),
        Some(bare)
    );
    // Not hex after \x.
    assert_eq!(
        sig(
            "error",
            "upstream sent invalid header: \"a\\xzz...\"",
            HEADER,
            up
        ),
        Some(bare)
    );
}

#[test]
fn ignored_duplicates_and_other_harmless_warnings_are_not_failures() {
    assert_eq!(classify_str(find(CATALOG, "*1448 ")), None); // `, ignored` [warn]
    assert_eq!(classify_str(find(CATALOG, "*1482 ")), None); // more data than Content-Length
    let up = "http://127.0.0.1:8000/";
    // A [warn] duplicate cut before its `, ignored` is still the harmless one.
    assert_eq!(
        sig(
            "warn",
            "upstream sent duplicate header line: \"Expires: 0\", previous value: \"Expi",
            HEADER,
            up
        ),
        None
    );
    for (level, message) in [
        ("warn", "upstream sent data after final chunk"),
        ("info", "upstream sent too big early hints"),
        ("info", "key: \"user:1\" was not found by memcached"),
    ] {
        assert_eq!(sig(level, message, HEADER, up), None, "{message}");
    }
    // Client body buffering (no upstream field) from the real log.
    assert_eq!(
        classify_str(find(REAL, "a client request body is buffered")),
        None
    );
}

#[test]
fn fastcgi_rows() {
    let h = Phase::ReadingHeader;
    let c = cat("*1456 ");
    assert_line(&c, Signature::FastCgi(FastCgiKind::ClosedStdout), h, 502);
    assert!(c.unix);
    assert_line(
        &cat("*1457 "),
        Signature::FastCgi(FastCgiKind::UnexpectedRecord(3)),
        h,
        502,
    );
    let c = cat("*1458 ");
    assert_line(
        &c,
        Signature::FastCgi(FastCgiKind::UnsupportedVersion(21)),
        h,
        502,
    );
    assert_eq!(c.signature.peer_protocol(), Some(PeerProtocol::Tls));
    assert_line(
        &cat("*1459 "),
        Signature::FastCgi(FastCgiKind::InvalidRecordType(2)),
        h,
        502,
    );
    assert_line(
        &cat("*1460 "),
        Signature::FastCgi(FastCgiKind::UnexpectedRequestId),
        h,
        502,
    );
    let body = cat("*1480 ");
    assert_line(
        &body,
        Signature::FastCgi(FastCgiKind::ClosedRequest),
        Phase::ReadingBody,
        200,
    );
    assert!(body.truncates_response());
    // A version byte that is not a number (garbage) is no FastCGI kind.
    assert_eq!(
        sig(
            "error",
            "upstream sent unsupported FastCGI protocol version: x",
            HEADER,
            "fastcgi://127.0.0.1:9000"
        ),
        Some(Signature::OtherUpstream)
    );
}

#[test]
fn fastcgi_version_byte_names_the_protocol_that_answered() {
    let proto = |n| FastCgiKind::UnsupportedVersion(n).peer_protocol();
    assert_eq!(proto(72), Some(PeerProtocol::Http1));
    assert_eq!(proto(21), Some(PeerProtocol::Tls));
    assert_eq!(proto(22), Some(PeerProtocol::Tls));
    assert_eq!(proto(60), Some(PeerProtocol::Html));
    assert_eq!(proto(0), None);
    assert_eq!(FastCgiKind::ClosedStdout.peer_protocol(), None);
}

#[test]
fn fastcgi_stderr_is_not_a_gateway_error() {
    let c = cat("*1462 ");
    assert_eq!(c.signature, Signature::FastCgiStderr);
    assert_eq!(c.detail.as_deref(), Some("Primary script unknown"));
    assert_eq!(c.http_status(), 200);
    assert!(!c.is_gateway_error());
    assert!(!c.truncates_response());
    // In the body phase it is still no truncation.
    let c = cat("*1463 ");
    assert_eq!(
        (c.signature, c.phase),
        (Signature::FastCgiStderr, Some(Phase::ReadingBody))
    );
    assert!(!c.truncates_response());
    assert!(
        c.detail
            .is_some_and(|d| d.starts_with("PHP message: PHP Warning:  Undefined"))
    );
    // Cut at 2048 bytes: no closing quote, no action, no upstream field.
    let cut = format!(
        "2025/03/14 10:00:00 [error] 1#1: *7 FastCGI sent in stderr: \"PHP message: {}",
        "x".repeat(1990)
    );
    let c = classify_str(&cut).unwrap();
    assert_eq!(
        (c.signature, c.peer, c.phase),
        (Signature::FastCgiStderr, None, None)
    );
}

#[test]
fn http2_rows() {
    let c = cat("*88 ");
    assert_eq!(
        c.signature,
        Signature::Http2(Http2Kind::TooLargeFrame(4_740_180))
    );
    assert_eq!(c.signature.peer_protocol(), Some(PeerProtocol::Http1));
    let c = cat("*1465 "); // a TLS alert record read as a frame header: grpc:// at a TLS port
    assert_eq!(
        c.signature,
        Signature::Http2(Http2Kind::TooLargeFrame(1_377_025))
    );
    assert_eq!(c.signature.peer_protocol(), Some(PeerProtocol::Tls));
    assert_line(
        &cat("*1464 "),
        Signature::Http2(Http2Kind::Rejected { code: 7 }),
        Phase::ReadingHeader,
        502,
    );
    assert_eq!(
        cat("*1466 ").signature,
        Signature::Http2(Http2Kind::ClosedStream)
    );
    let up = "grpc://10.0.0.12:50051";
    for (message, kind) in [
        (
            "upstream sent goaway with error 0",
            Http2Kind::Goaway { code: 0 },
        ),
        (
            "upstream sent unexpected http2 frame: 5",
            Http2Kind::UnexpectedFrame(5),
        ),
        (
            "upstream sent frame for unknown stream 3",
            Http2Kind::UnknownStream,
        ),
        (
            "upstream sent data frame for unknown stream 3",
            Http2Kind::UnknownStream,
        ),
        ("upstream sent no :status header", Http2Kind::Status),
        ("upstream sent invalid :status \"abc\"", Http2Kind::Status),
        (
            "upstream sent invalid header \"a b: c\"",
            Http2Kind::InvalidHeader,
        ),
        ("upstream sent truncated http2 header", Http2Kind::Hpack),
        (
            "upstream sent invalid http2 table index: 99",
            Http2Kind::Hpack,
        ),
        ("upstream sent too large http2 header", Http2Kind::Hpack),
        ("upstream sent invalid encoded header", Http2Kind::Hpack),
        (
            "upstream sent unexpected push promise frame",
            Http2Kind::PushPromise,
        ),
        (
            "upstream sent settings frame with invalid length: 5",
            Http2Kind::Framing,
        ),
        (
            "upstream sent http2 frame with too long padding: 9 in frame 4",
            Http2Kind::Framing,
        ),
        (
            "upstream violated stream flow control, received 9 data frame with window 1",
            Http2Kind::Framing,
        ),
    ] {
        assert_eq!(
            sig("error", message, HEADER, up),
            Some(Signature::Http2(kind)),
            "{message}"
        );
    }
}

#[test]
fn frame_length_bytes_decode_what_answered() {
    assert_eq!(frame_length_bytes(4_740_180), Some(*b"HTT"));
    assert_eq!(frame_length_bytes(0x15_03_01), Some([0x15, 0x03, 0x01]));
    assert_eq!(frame_length_bytes(1 << 24), None);
    assert_eq!(frame_length_bytes(u64::MAX), None);
    assert_eq!(
        PeerProtocol::from_first_bytes(b"HTT"),
        Some(PeerProtocol::Http1)
    );
    assert_eq!(PeerProtocol::from_first_bytes(b"HXX"), None);
    assert_eq!(
        PeerProtocol::from_first_bytes(&[0x16, 0x03, 0x03]),
        Some(PeerProtocol::Tls)
    );
    assert_eq!(PeerProtocol::from_first_bytes(&[0x15, 0x01]), None);
    assert_eq!(
        PeerProtocol::from_first_bytes(b"<!D"),
        Some(PeerProtocol::Html)
    );
    assert_eq!(PeerProtocol::from_first_bytes(b""), None);
    assert_eq!(Http2Kind::TooLargeFrame(20_000).peer_protocol(), None); // 0x004e20
    assert_eq!(Http2Kind::Status.peer_protocol(), None);
}

#[test]
fn tls_rows() {
    use TlsReason::*;
    let hs = Phase::SslHandshake;
    assert_line(
        &cat("*1467 "),
        Signature::Tls(TlsKind::ClosedInHandshake),
        hs,
        502,
    );
    // With the errno group it is still TLS, not a reset.
    assert_line(
        &cat("*1428 "),
        Signature::Tls(TlsKind::ClosedInHandshake),
        hs,
        502,
    );
    for (needle, reason) in [
        ("*1427 ", WrongVersionNumber),    // OpenSSL 3
        ("*1469 ", WrongVersionNumber),    // OpenSSL 1.1.1
        ("*1468 ", HandshakeFailureAlert), // OpenSSL 3
        ("*1470 ", HandshakeFailureAlert), // OpenSSL 1.1.1
        ("*1471 ", UnrecognizedName),      // [crit]
        ("*1472 ", ProtocolVersion),       // unsupported protocol
        ("*1473 ", ProtocolVersion),       // alert protocol version
    ] {
        let c = cat(needle);
        assert_line(
            &c,
            Signature::Tls(TlsKind::HandshakeFailed { reason }),
            hs,
            502,
        );
        assert!(
            c.detail.is_some_and(|d| d.starts_with("error:")),
            "{needle}"
        );
    }
    let c = cat("*1474 ");
    assert_line(
        &c,
        Signature::Tls(TlsKind::VerifyError { code: 20 }),
        hs,
        502,
    );
    assert_eq!(
        c.detail.as_deref(),
        Some("unable to get local issuer certificate")
    );
    let c = cat("*1475 ");
    assert_line(&c, Signature::Tls(TlsKind::NameMismatch), hs, 502);
    assert_eq!(c.detail.as_deref(), Some("backend"));
    assert_line(
        &cat("*1476 "),
        Signature::Tls(TlsKind::PrematurelySentResponse),
        Phase::ReadingHeader,
        502,
    );
    let c = classify_str(&line(
        "error",
        "SSL_set_tlsext_host_name(\"bad name\") failed (SSL: error:0A00005B:SSL routines::ssl3 ext invalid servername)",
        HANDSHAKE,
        "https://10.0.0.1:443/",
    ))
    .unwrap();
    assert_eq!(
        (c.signature, c.detail.as_deref(), c.http_status()),
        (
            Signature::Tls(TlsKind::ServerNameFailed),
            Some("bad name"),
            500
        )
    );
}

#[test]
fn tls_reasons_from_openssl_texts() {
    use TlsReason::*;
    for (text, reason) in [
        (
            "error:0A00010B:SSL routines::wrong version number",
            WrongVersionNumber,
        ),
        (
            "error:1408F10B:SSL routines:ssl3_get_record:wrong version number",
            WrongVersionNumber,
        ),
        (
            "error:14094458:SSL routines:ssl3_read_bytes:tlsv1 unrecognized name:SSL alert number 112",
            UnrecognizedName,
        ),
        (
            "error:1425F102:SSL routines:ssl_choose_client_version:unsupported protocol",
            ProtocolVersion,
        ),
        (
            "error:1409442E:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:SSL alert number 70",
            ProtocolVersion,
        ),
        (
            "error:0A0000BF:SSL routines::no protocols available",
            ProtocolVersion,
        ),
        (
            "error:0A00045C:SSL routines::tlsv13 alert certificate required:SSL alert number 116",
            ClientCertificate,
        ),
        (
            "error:0A000412:SSL routines::sslv3 alert bad certificate:SSL alert number 42",
            ClientCertificate,
        ),
        (
            "error:0A000418:SSL routines::tlsv1 alert unknown ca:SSL alert number 48",
            ClientCertificate,
        ),
        (
            "error:0A000410:SSL routines::sslv3 alert handshake failure:SSL alert number 40",
            HandshakeFailureAlert,
        ),
        (
            "error:0A000086:SSL routines::certificate verify failed",
            Other,
        ),
        ("", Other),
    ] {
        assert_eq!(TlsReason::from_openssl(text), reason, "{text}");
    }
    let ids = [
        WrongVersionNumber,
        HandshakeFailureAlert,
        UnrecognizedName,
        ProtocolVersion,
        ClientCertificate,
        Other,
    ]
    .map(|r| r.id());
    assert_distinct_kebab(&ids);
}

#[test]
fn body_phase_rows_truncate_and_are_never_502() {
    let body = Phase::ReadingBody;
    for (needle, signature) in [
        ("*1477 ", Signature::InvalidBody(InvalidBodyKind::Chunked)),
        (
            "*1478 ",
            Signature::InvalidBody(InvalidBodyKind::TooBigTrailers),
        ),
        (
            "*1479 ",
            Signature::InvalidBody(InvalidBodyKind::LongerThanContentLength),
        ),
        ("*1422 ", Signature::UpstreamTimedOut { phase: body }),
    ] {
        let c = cat(needle);
        assert_line(&c, signature, body, 200);
        assert!(c.truncates_response(), "{needle}");
    }
    let up = "http://127.0.0.1:8000/";
    for message in [
        "upstream sent invalid trailer: \"a\\x00...\"",
        "upstream sent invalid trailer \"x: y\"",
        "upstream sent invalid trailer",
        "upstream sent trailer without end stream flag",
        "memcached sent invalid trailer",
    ] {
        assert_eq!(
            sig("error", message, BODY, up),
            Some(Signature::InvalidBody(InvalidBodyKind::InvalidTrailer)),
            "{message}"
        );
    }
    // A body error is a truncation whatever the action says.
    assert!(
        Signature::InvalidBody(InvalidBodyKind::Chunked).truncates_in(Some(Phase::ReadingHeader))
    );
    assert_eq!(Signature::Reset.status_in(Some(Phase::Upgraded)), 101);
    assert_eq!(Signature::Reset.status_in(None), 502);
}

#[test]
fn memcached_rows() {
    let up = "memcached://127.0.0.1:11211";
    let c = classify_str(&line(
        "error",
        "memcached sent invalid response: \"ERROR\"",
        HEADER,
        up,
    ))
    .unwrap();
    assert_eq!(
        c.signature,
        Signature::InvalidHeader(InvalidHeaderKind::Memcached)
    );
    assert_eq!(
        c.detail.as_deref(),
        Some("memcached sent invalid response: \"ERROR\"")
    );
    assert_eq!(
        sig(
            "error",
            "memcached sent invalid length in response \"VALUE k 0 x\" for key \"k\"",
            HEADER,
            up
        ),
        Some(Signature::InvalidHeader(InvalidHeaderKind::Memcached))
    );
}

#[test]
fn cut_lines_without_context_are_still_classified_by_message() {
    // Only the message survived; "upstream ..." texts can only be about an upstream.
    for (message, signature) in [
        ("upstream sent too big header", Signature::HeaderTooBig),
        (
            "upstream prematurely closed connection",
            Signature::PrematureClose,
        ),
    ] {
        let line = format!("2025/03/14 10:00:00 [error] 1#1: *7 {message}");
        let c = classify_str(&line).unwrap();
        assert_eq!((c.signature, c.phase, c.peer), (signature, None, None));
    }
    // A bare recv() failure with no context at all is not known to be about an upstream.
    assert_eq!(
        classify_str(
            "2025/03/14 10:00:00 [error] 1#1: *7 recv() failed (104: Connection reset by peer)"
        ),
        None
    );
}

fn assert_distinct_kebab(ids: &[&str]) {
    assert!(
        ids.iter().all(|id| !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')),
        "{ids:?}"
    );
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "{ids:?}");
}

#[test]
fn kind_ids_are_distinct_kebab_case() {
    use InvalidHeaderKind as H;
    let header = [
        H::Bytes { byte: None },
        H::DuplicateHeader,
        H::ContentLengthAndTransferEncoding,
        H::InvalidContentLength,
        H::UnknownTransferEncoding,
        H::NoValidHttpHeader,
        H::EarlyHints,
        H::InvalidStatus,
        H::Memcached,
    ]
    .map(|k| k.id());
    let fastcgi = [
        FastCgiKind::UnsupportedVersion(0),
        FastCgiKind::InvalidRecordType(0),
        FastCgiKind::UnexpectedRequestId,
        FastCgiKind::ClosedStdout,
        FastCgiKind::ClosedRequest,
        FastCgiKind::UnexpectedRecord(0),
        FastCgiKind::SplitHeader,
    ]
    .map(|k| k.id());
    let http2 = [
        Http2Kind::TooLargeFrame(0),
        Http2Kind::UnexpectedFrame(0),
        Http2Kind::UnknownStream,
        Http2Kind::Rejected { code: 0 },
        Http2Kind::Goaway { code: 0 },
        Http2Kind::Status,
        Http2Kind::InvalidHeader,
        Http2Kind::ClosedStream,
        Http2Kind::Hpack,
        Http2Kind::PushPromise,
        Http2Kind::Framing,
    ]
    .map(|k| k.id());
    let tls = [
        TlsKind::ClosedInHandshake,
        TlsKind::HandshakeFailed {
            reason: TlsReason::Other,
        },
        TlsKind::VerifyError { code: 0 },
        TlsKind::NameMismatch,
        TlsKind::PrematurelySentResponse,
        TlsKind::ServerNameFailed,
        TlsKind::IoFailed,
    ]
    .map(|k| k.id());
    let body = [
        InvalidBodyKind::Chunked,
        InvalidBodyKind::TooBigTrailers,
        InvalidBodyKind::InvalidTrailer,
        InvalidBodyKind::LongerThanContentLength,
    ]
    .map(|k| k.id());
    let all: Vec<&str> = [&header[..], &fastcgi, &http2, &tls, &body].concat();
    assert_distinct_kebab(&all);
    assert_distinct_kebab(&[
        PeerProtocol::Http1.id(),
        PeerProtocol::Tls.id(),
        PeerProtocol::Html.id(),
    ]);
    assert_eq!(Phase::Upgraded.to_string(), "upgraded");
}

/// The lines nginx 1.22.1 wrote in tests/fixtures/errorlog/make-real-response-log.sh.
#[test]
fn real_nginx_response_lines_classify() {
    use Phase::{ReadingBody, ReadingHeader, SslHandshake};
    let cases = [
        (
            "GET /premature ",
            Signature::PrematureClose,
            ReadingHeader,
            502,
        ),
        ("GET /reset ", Signature::Reset, ReadingHeader, 502),
        ("GET /bighdr ", Signature::HeaderTooBig, ReadingHeader, 502),
        (
            "GET /badhdr ",
            Signature::InvalidHeader(InvalidHeaderKind::Bytes { byte: Some(0x20) }),
            ReadingHeader,
            502,
        ),
        (
            "GET /nohttp ",
            Signature::InvalidHeader(InvalidHeaderKind::NoValidHttpHeader),
            ReadingHeader,
            9,
        ),
        (
            "GET /truncated ",
            Signature::PrematureClose,
            ReadingBody,
            200,
        ),
        (
            "GET /badchunk ",
            Signature::InvalidBody(InvalidBodyKind::Chunked),
            ReadingBody,
            200,
        ),
        (
            "GET /fcgi-http ",
            Signature::FastCgi(FastCgiKind::UnsupportedVersion(72)),
            ReadingHeader,
            502,
        ),
        (
            "GET /grpc-http ",
            Signature::Http2(Http2Kind::TooLargeFrame(4_740_180)),
            ReadingHeader,
            502,
        ),
        (
            "GET /tls-plain ",
            Signature::Tls(TlsKind::HandshakeFailed {
                reason: TlsReason::WrongVersionNumber,
            }),
            SslHandshake,
            502,
        ),
        (
            "GET /tls-close ",
            Signature::Tls(TlsKind::ClosedInHandshake),
            SslHandshake,
            502,
        ),
        (
            "GET /verify ",
            Signature::Tls(TlsKind::NameMismatch),
            SslHandshake,
            502,
        ),
        (
            "GET /name ",
            Signature::Tls(TlsKind::NameMismatch),
            SslHandshake,
            502,
        ),
        (
            "GET /missing.php ",
            Signature::FastCgiStderr,
            ReadingHeader,
            200,
        ),
        (
            "GET /warn.php ",
            Signature::FastCgiStderr,
            ReadingHeader,
            200,
        ),
        ("GET /bodyreset ", Signature::Reset, ReadingBody, 200),
        (
            "GET /slowbody ",
            Signature::UpstreamTimedOut { phase: ReadingBody },
            ReadingBody,
            200,
        ),
        (
            "GET /cgistatus ",
            Signature::InvalidHeader(InvalidHeaderKind::InvalidStatus),
            ReadingHeader,
            502,
        ),
        (
            "GET /fcgi-end ",
            Signature::FastCgi(FastCgiKind::UnexpectedRecord(3)),
            ReadingHeader,
            502,
        ),
        (
            "GET /fcgi-empty ",
            Signature::FastCgi(FastCgiKind::ClosedStdout),
            ReadingHeader,
            502,
        ),
        (
            "GET /untrusted ",
            Signature::Tls(TlsKind::VerifyError { code: 18 }),
            SslHandshake,
            502,
        ),
        (
            "GET /sni ",
            Signature::Tls(TlsKind::HandshakeFailed {
                reason: TlsReason::UnrecognizedName,
            }),
            SslHandshake,
            502,
        ),
        (
            "GET /tls12 ",
            Signature::Tls(TlsKind::HandshakeFailed {
                reason: TlsReason::ProtocolVersion,
            }),
            SslHandshake,
            502,
        ),
        (
            "GET /cipher ",
            Signature::Tls(TlsKind::HandshakeFailed {
                reason: TlsReason::HandshakeFailureAlert,
            }),
            SslHandshake,
            502,
        ),
        (
            "GET /ws ",
            Signature::UpstreamTimedOut {
                phase: Phase::Upgraded,
            },
            Phase::Upgraded,
            101,
        ),
        // The body was sent; the reset arrived while nginx waited for the header.
        ("POST /upload ", Signature::Reset, ReadingHeader, 502),
    ];
    for (request, signature, phase, status) in cases {
        let c = REAL
            .lines()
            .filter(|l| l.contains(request) && l.contains("upstream: "))
            .map(|l| classify_str(l).unwrap_or_else(|| panic!("not classified: {l}")))
            .next()
            .unwrap_or_else(|| panic!("no upstream line for {request}"));
        assert_eq!(c.signature, signature, "{request}");
        assert_eq!(c.phase, Some(phase), "{request}");
        assert_eq!(c.http_status(), status, "{request}");
    }
    assert_eq!(real("GET /verify ").detail.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        real("GET /untrusted ").detail.as_deref(),
        Some("self-signed certificate")
    );
    assert_eq!(
        real("GET /badhdr ").detail.as_deref(),
        Some("Content\\x20...")
    );
    assert_eq!(
        real("GET /warn.php ").detail.as_deref(),
        Some("PHP message: fixture warning")
    );
    // Every other line is the client's (keepalive closes, the buffered body warning).
    for l in REAL.lines().filter(|l| !l.contains("upstream: ")) {
        assert_eq!(classify_str(l), None, "{l}");
    }
}
