//! Tests of `classify`: every signature with a positive case and its near misses, the lines
//! of the `catalog.log` fixture (the messages of docs/nginx-messages.md) and the lines
//! captured from a real nginx (tests/fixtures/errorlog).

use fix502_nginx::classify::{
    Classified, FastCgiKind, Http2Kind, InvalidBodyKind, InvalidHeaderKind, Phase, Signature,
    TlsKind, TlsReason, classify,
};
use fix502_nginx::errorlog::parse_line;

mod common;
use common::find;

const CATALOG: &str = include_str!("fixtures/errorlog/catalog.log");
const REAL: &str = include_str!("fixtures/errorlog/real-nginx.log");

fn classify_str(line: &str) -> Option<Classified> {
    classify(&parse_line(line).unwrap_or_else(|| panic!("unparsed: {line}")))
}

/// Classifies the `catalog.log` line containing `needle`, which must be about an upstream.
fn cat(needle: &str) -> Classified {
    classify_str(find(CATALOG, needle)).unwrap_or_else(|| panic!("not classified: {needle}"))
}

fn real(needle: &str) -> Classified {
    classify_str(find(REAL, needle)).unwrap_or_else(|| panic!("not classified: {needle}"))
}

/// A line in the asynchronous connect form, `connect() failed (<errno>)`, for errno-table
/// tests (docs/nginx-messages.md §7).
fn connect_failed(errno: &str, upstream: &str) -> String {
    format!(
        "2025/03/14 09:21:07 [error] 1#1: *1 connect() failed ({errno}) while connecting to upstream, client: 192.0.2.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"{upstream}\", host: \"h\""
    )
}

/// A line in the synchronous connect form, `connect() to <peer> failed (<errno>)`.
fn connect_to_failed(peer: &str, errno: &str, upstream: &str) -> String {
    format!(
        "2025/03/14 09:21:07 [crit] 1#1: *1 connect() to {peer} failed ({errno}) while connecting to upstream, client: 192.0.2.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"{upstream}\", host: \"h\""
    )
}

fn sig(line: &str) -> Option<Signature> {
    classify_str(line).map(|c| c.signature)
}

#[test]
fn connect_refused_tcp() {
    let c = cat("*1183 ");
    assert_eq!(c.signature, Signature::ConnectRefused);
    assert_eq!(c.peer.as_deref(), Some("127.0.0.1:8080"));
    assert!(!c.unix);
    assert_eq!(c.scheme.as_deref(), Some("http"));
    assert_eq!(c.phase, Some(Phase::Connecting));
    assert_eq!(c.signature.http_status(), 502);
    assert_eq!(c.signature.id(), "connect-refused");
}

#[test]
fn connect_refused_unix_and_bsd() {
    let c = cat("*1436 ");
    assert_eq!(c.signature, Signature::ConnectRefused);
    assert_eq!(c.peer.as_deref(), Some("unix:/run/uwsgi/app.sock"));
    assert!(c.unix);
    assert_eq!(c.scheme.as_deref(), Some("uwsgi"));
    // kqueue builds: "kevent() reported that connect() failed" with the BSD number 61.
    let c = cat("*1419 ");
    assert_eq!(c.signature, Signature::ConnectRefused);
    assert_eq!(c.peer.as_deref(), Some("127.0.0.1:8000"));
}

#[test]
fn socket_missing() {
    let c = cat("*1201 ");
    assert_eq!(c.signature, Signature::SocketMissing);
    assert_eq!(c.peer.as_deref(), Some("unix:/run/php/php8.2-fpm.sock"));
    assert!(c.unix);
    assert_eq!(c.scheme.as_deref(), Some("fastcgi"));
    assert_eq!(c.signature.http_status(), 502);
    // errno 2 on a TCP peer is not a missing socket.
    assert_eq!(
        sig(&connect_to_failed(
            "10.0.0.1:80",
            "2: No such file or directory",
            "http://10.0.0.1:80/"
        )),
        Some(Signature::OtherUpstream)
    );
}

#[test]
fn permission_denied_unix_vs_tcp() {
    let unix = cat("*1411 ");
    assert_eq!(unix.signature, Signature::PermissionDenied);
    assert!(unix.unix);
    assert_eq!(unix.peer.as_deref(), Some("unix:/run/gunicorn.sock"));
    let tcp = cat("*1413 ");
    assert_eq!(tcp.signature, Signature::PermissionDenied);
    assert!(!tcp.unix);
    assert_eq!(tcp.peer.as_deref(), Some("10.0.0.5:8080"));
}

#[test]
fn backlog_full_only_on_unix() {
    let c = cat("*1412 ");
    assert_eq!(c.signature, Signature::BacklogFull);
    assert!(c.unix);
    assert_eq!(
        sig(&connect_failed(
            "11: Resource temporarily unavailable",
            "http://10.0.0.1:80/"
        )),
        Some(Signature::OtherUpstream)
    );
}

#[test]
fn net_and_host_unreachable() {
    let c = cat("*1414 ");
    assert_eq!(c.signature, Signature::NetUnreachable);
    assert_eq!(c.peer.as_deref(), Some("[2001:db8::10]:443"));
    assert_eq!(c.scheme.as_deref(), Some("https"));
    assert_eq!(cat("*1437 ").signature, Signature::NetUnreachable); // musl wording
    assert_eq!(
        sig(&connect_failed(
            "100: Network is down",
            "http://10.0.0.1:80/"
        )),
        Some(Signature::NetUnreachable)
    );
    assert_eq!(cat("*1416 ").signature, Signature::HostUnreachable);
    assert_eq!(cat("*1417 ").signature, Signature::HostUnreachable); // musl wording
    assert_eq!(
        sig(&connect_failed("112: Host is down", "http://10.0.0.1:80/")),
        Some(Signature::HostUnreachable)
    );
    assert_eq!(cat("*1416 ").peer.as_deref(), Some("172.17.0.5:8080"));
}

#[test]
fn address_not_available_peer_from_field_or_message() {
    let c = cat("*1410 ");
    assert_eq!(c.signature, Signature::AddressNotAvailable);
    assert_eq!(c.peer.as_deref(), Some("[::1]:3000"));
    // Without an upstream field (cut line), the peer comes from the message.
    let line = "2025/03/14 09:36:10 [crit] 2417#2417: *1410 connect() to [::1]:3000 failed (99: Address not available) while connecting to upstream, client: 127.0.0.1, server: localhost, request: \"GET / HTTP/1.1\", upstr";
    let c = classify_str(line).unwrap();
    assert_eq!(c.signature, Signature::AddressNotAvailable);
    assert_eq!(c.peer.as_deref(), Some("[::1]:3000"));
    assert_eq!(c.scheme, None);
    let line = "2025/03/14 09:36:10 [crit] 1#1: *3 connect() to unix:/run/a.sock failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, server: x";
    let c = classify_str(line).unwrap();
    assert_eq!(
        (c.signature, c.peer.as_deref(), c.unix),
        (Signature::SocketMissing, Some("unix:/run/a.sock"), true)
    );
}

#[test]
fn not_permitted() {
    let c = cat("*1415 ");
    assert_eq!(c.signature, Signature::NotPermitted);
    assert_eq!(c.peer.as_deref(), Some("10.1.2.3:9000"));
    assert_eq!(c.scheme.as_deref(), Some("fastcgi"));
}

#[test]
fn kernel_connect_timeout_is_502_not_504() {
    let c = cat("*1418 ");
    assert_eq!(c.signature, Signature::ConnectTimedOut);
    assert_eq!(c.signature.http_status(), 502);
    assert_eq!(c.peer.as_deref(), Some("10.9.8.7:8080"));
}

#[test]
fn no_live_upstreams_names_the_group() {
    let c = cat("*1330 ");
    assert_eq!(c.signature, Signature::NoLiveUpstreams);
    assert_eq!(c.peer.as_deref(), Some("api_backend"));
    assert!(!c.unix);
    assert_eq!(c.signature.http_status(), 502);
    assert_eq!(c.signature.id(), "no-live-upstreams");
}

#[test]
fn nginx_timeouts_by_phase() {
    let cases = [
        ("*5 ", Phase::Connecting, 504, "172.18.0.3:8000"),
        ("*1420 ", Phase::SslHandshake, 504, "10.0.0.8:443"),
        ("*1421 ", Phase::SendingRequest, 504, "127.0.0.1:9000"),
        (
            "*1311 ",
            Phase::ReadingHeader,
            504,
            "unix:/run/php/php8.2-fpm.sock",
        ),
        ("*1422 ", Phase::ReadingBody, 200, "127.0.0.1:9001"),
    ];
    for (needle, phase, status, peer) in cases {
        let c = cat(needle);
        assert_eq!(
            c.signature,
            Signature::UpstreamTimedOut { phase },
            "{needle}"
        );
        assert_eq!(c.signature.http_status(), status, "{needle}");
        assert_eq!(c.signature.id(), "upstream-timed-out");
        assert_eq!(c.peer.as_deref(), Some(peer), "{needle}");
    }
    assert!(cat("*1311 ").unix);
    // A WebSocket idle past proxy_read_timeout: the client already had its 101.
    let upgraded = cat("*1481 ");
    assert_eq!(
        upgraded.signature,
        Signature::UpstreamTimedOut {
            phase: Phase::Upgraded
        }
    );
    assert_eq!(upgraded.http_status(), 101);
    assert!(upgraded.truncates_response());
    assert!(!upgraded.is_gateway_error());
}

#[test]
fn errno_110_depends_on_the_message() {
    // nginx's timer vs the kernel's timer vs the resolver.
    assert_eq!(cat("*1418 ").signature, Signature::ConnectTimedOut);
    assert!(matches!(
        cat("*5 ").signature,
        Signature::UpstreamTimedOut { .. }
    ));
    assert_eq!(cat("*1426 ").signature, Signature::KernelTimedOut); // recv() failed (110)
    assert_eq!(cat("*1426 ").signature.http_status(), 502);
    assert_eq!(cat("*1446 ").signature, Signature::KernelTimedOut); // musl wording
    let dns = real("could not be resolved");
    assert_eq!(dns.signature, Signature::Resolve);
}

#[test]
fn response_lines_keep_peer_and_phase() {
    let cases = [
        (
            "*1290 ",
            Signature::HeaderTooBig,
            "10.0.3.17:3000",
            Phase::ReadingHeader,
        ),
        (
            "*88 ",
            Signature::Http2(Http2Kind::TooLargeFrame(4_740_180)),
            "10.0.0.12:50051",
            Phase::ReadingHeader,
        ),
        (
            "*1329 ",
            Signature::OtherUpstream,
            "10.0.0.7:8000",
            Phase::Connecting,
        ),
        (
            "*1423 ",
            Signature::PrematureClose,
            "127.0.0.1:8000",
            Phase::ReadingHeader,
        ),
        (
            "*1424 ",
            Signature::PrematureClose,
            "127.0.0.1:8000",
            Phase::ReadingBody,
        ),
        (
            "*1425 ",
            Signature::Reset,
            "127.0.0.1:8000",
            Phase::ReadingHeader,
        ),
        (
            "*1427 ",
            Signature::Tls(TlsKind::HandshakeFailed {
                reason: TlsReason::WrongVersionNumber,
            }),
            "127.0.0.1:8080",
            Phase::SslHandshake,
        ),
        (
            "*1428 ",
            Signature::Tls(TlsKind::ClosedInHandshake),
            "10.0.0.9:443",
            Phase::SslHandshake,
        ),
        (
            "*1429 ",
            Signature::OtherUpstream,
            "127.0.0.1:8000",
            Phase::Connecting,
        ),
        (
            "*1430 ",
            Signature::OtherUpstream,
            "127.0.0.1:80",
            Phase::Connecting,
        ),
    ];
    for (needle, signature, peer, phase) in cases {
        let c = cat(needle);
        assert_eq!(c.signature, signature, "{needle}");
        assert_eq!(c.peer.as_deref(), Some(peer), "{needle}");
        assert_eq!(c.phase, Some(phase), "{needle}");
    }
    assert_eq!(cat("*88 ").scheme.as_deref(), Some("grpc"));
}

#[test]
fn dns_and_url_failures_name_the_host() {
    let cases = [
        (
            "*1402 ",
            Signature::Resolve,
            Some("backend.default.svc.cluster.local"),
        ),
        ("*1431 ", Signature::Resolve, Some("backend")),
        ("*1432 ", Signature::OtherUpstream, Some("php_backend")),
        ("[emerg]", Signature::OtherUpstream, Some("backend:8000")),
    ];
    for (needle, signature, peer) in cases {
        let c = cat(needle);
        assert_eq!(c.signature, signature, "{needle}");
        assert_eq!(c.peer.as_deref(), peer, "{needle}");
        assert_eq!(c.scheme, None);
        assert_eq!(c.phase, None);
    }
    let prefix = "2025/03/14 09:21:07 [error] 1#1: *1 invalid URL prefix in \"\", client: 1.2.3.4, server: s";
    let c = classify_str(prefix).unwrap();
    assert_eq!((c.signature, c.peer), (Signature::OtherUpstream, None));
}

#[test]
fn resolver_socket_error_is_not_connect_refused() {
    // A 111 while resolving is the resolver's socket, not an upstream refusing.
    let c = cat("resolver: 127.0.0.11:53");
    assert_eq!(c.signature, Signature::OtherUpstream);
    assert_eq!(c.peer, None);
    let tcp_resolver = "2025/03/14 09:39:50 [error] 7#7: connect() to 127.0.0.11:53 failed (111: Connection refused) while resolving, resolver: 127.0.0.11:53";
    let c = classify_str(tcp_resolver).unwrap();
    assert_eq!(c.signature, Signature::OtherUpstream);
    assert_eq!(c.peer, None);
}

#[test]
fn not_about_an_upstream() {
    for needle in [
        "favicon.ico",             // static file: open() failed (2: ...)
        "client prematurely",      // client abort, [info], even with an upstream field
        "while sending to client", // client's broken pipe
        "signal process started",  // master process
    ] {
        assert_eq!(classify_str(find(CATALOG, needle)), None, "{needle}");
    }
    assert_eq!(classify_str(find(REAL, "missing.html")), None);
    for line in [
        "2025/03/14 09:21:07 [error] 1#1: *1 directory index of \"/srv/www/\" is forbidden, client: 1.2.3.4, server: s, request: \"GET / HTTP/1.1\", host: \"h\"",
        "2025/03/14 09:21:07 [info] 1#1: *1 client 1.2.3.4 closed keepalive connection",
        "2025/03/14 09:21:07 [info] 1#1: *1 epoll_wait() reported that client prematurely closed connection, so upstream connection is closed too while reading upstream, client: 1.2.3.4, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"h\"",
        "2025/03/14 09:21:07 [warn] 1#1: *1 an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: 1.2.3.4, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"h\"",
        "2025/03/14 09:21:07 [crit] 1#1: *1 SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking, client: 1.2.3.4, server: 0.0.0.0:443",
        "2025/03/14 09:21:07 [error] 1#1: *1 connect() failed (111: Connection refused) while sending to client, client: 1.2.3.4, server: s",
    ] {
        assert_eq!(classify_str(line), None, "{line}");
    }
}

#[test]
fn unknown_connect_errnos_are_other_upstream() {
    for errno in [
        "104: Connection reset by peer",
        "22: Invalid argument",
        "91: Protocol wrong type for socket",
    ] {
        let c = classify_str(&connect_failed(errno, "http://10.0.0.1:80/")).unwrap();
        assert_eq!(c.signature, Signature::OtherUpstream, "{errno}");
        assert_eq!(c.peer.as_deref(), Some("10.0.0.1:80"));
    }
}

#[test]
fn errno_text_is_ignored() {
    // Only the number counts: any wording (musl, localized, garbled) gives the same answer.
    let variants = [
        "111: Connection refused",
        "111: Verbindung verweigert",
        "111: x",
    ];
    for errno in variants {
        assert_eq!(
            sig(&connect_failed(errno, "http://10.0.0.1:80/")),
            Some(Signature::ConnectRefused)
        );
    }
    assert_eq!(
        sig(&connect_to_failed(
            "unix:/run/a.sock",
            "13: Zugriff verweigert",
            "http://unix:/run/a.sock:/"
        )),
        Some(Signature::PermissionDenied)
    );
}

#[test]
fn signature_ids_are_distinct_kebab_case() {
    let all = [
        Signature::ConnectRefused,
        Signature::SocketMissing,
        Signature::PermissionDenied,
        Signature::BacklogFull,
        Signature::NetUnreachable,
        Signature::HostUnreachable,
        Signature::AddressNotAvailable,
        Signature::NotPermitted,
        Signature::ConnectTimedOut,
        Signature::NoLiveUpstreams,
        Signature::UpstreamTimedOut {
            phase: Phase::ReadingHeader,
        },
        Signature::OtherUpstream,
        Signature::PrematureClose,
        Signature::Reset,
        Signature::KernelTimedOut,
        Signature::SendFailed { errno: 107 },
        Signature::RecvFailed { errno: 113 },
        Signature::HeaderTooBig,
        Signature::InvalidHeader(InvalidHeaderKind::DuplicateHeader),
        Signature::FastCgi(FastCgiKind::ClosedStdout),
        Signature::FastCgiStderr,
        Signature::Http2(Http2Kind::Status),
        Signature::Tls(TlsKind::NameMismatch),
        Signature::InvalidBody(InvalidBodyKind::Chunked),
    ];
    let mut ids: Vec<&str> = all.iter().map(Signature::id).collect();
    assert!(ids.iter().all(|id| {
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    assert_eq!(Signature::BacklogFull.to_string(), "backlog-full");
    assert_eq!(Phase::ReadingHeader.to_string(), "reading-header");
    assert_eq!(
        Phase::from_action("SSL handshaking to upstream"),
        Phase::SslHandshake
    );
    assert_eq!(Phase::from_action("keepalive"), Phase::Other);
    assert_eq!(
        Phase::from_action("proxying upgraded connection"),
        Phase::Upgraded
    );
}

/// The lines nginx 1.22.1 wrote in tests/fixtures/errorlog/make-real-log.sh.
#[test]
fn real_nginx_lines_classify() {
    let refused = real("/refused/a?x=1 ");
    assert_eq!(refused.signature, Signature::ConnectRefused);
    assert_eq!(refused.peer.as_deref(), Some("127.0.0.1:38482"));
    assert_eq!(real("/v6/ ").peer.as_deref(), Some("[::1]:38482"));
    assert_eq!(real("/v6/ ").signature, Signature::ConnectRefused);

    let nolive = real("no live upstreams");
    assert_eq!(
        (nolive.signature, nolive.peer.as_deref()),
        (Signature::NoLiveUpstreams, Some("app_pool"))
    );

    let missing = real("missing.sock failed");
    assert_eq!(missing.signature, Signature::SocketMissing);
    assert!(missing.unix);
    assert!(
        missing
            .peer
            .as_deref()
            .is_some_and(|p| p.starts_with("unix:/tmp/") && p.ends_with("/missing.sock"))
    );
    let php = real("php-fpm.sock failed");
    assert_eq!(
        (php.signature, php.scheme.as_deref()),
        (Signature::SocketMissing, Some("fastcgi"))
    );
    assert!(
        php.peer
            .as_deref()
            .is_some_and(|p| p.ends_with("/php-fpm.sock"))
    );

    // A regular file where the socket should be: refused, on a unix peer.
    let stale = real("stale.sock failed");
    assert_eq!(
        (stale.signature, stale.unix),
        (Signature::ConnectRefused, true)
    );

    let private = real("private/app.sock failed");
    assert_eq!(
        (private.signature, private.unix),
        (Signature::PermissionDenied, true)
    );

    let busy = real("/busy/1 ");
    assert_eq!((busy.signature, busy.unix), (Signature::BacklogFull, true));
    assert!(
        busy.peer
            .as_deref()
            .is_some_and(|p| p.ends_with("/busy.sock"))
    );

    // The timeout on the unix socket: no ':' separator before the URI, same peer.
    let busy_timeout = real("/busy/2 ");
    assert_eq!(
        busy_timeout.signature,
        Signature::UpstreamTimedOut {
            phase: Phase::ReadingHeader
        }
    );
    assert_eq!(busy_timeout.peer, busy.peer);

    let hang = real("/hang ");
    assert_eq!(
        hang.signature,
        Signature::UpstreamTimedOut {
            phase: Phase::ReadingHeader
        }
    );
    assert_eq!(hang.peer.as_deref(), Some("127.0.0.1:38483"));
    assert_eq!(hang.signature.http_status(), 504);

    assert_eq!(
        real("no resolver defined").peer.as_deref(),
        Some("backend.invalid")
    );
    assert_eq!(
        real("could not be resolved").peer.as_deref(),
        Some("backend.invalid")
    );
    for line in REAL.lines().filter(|l| l.contains("while resolving")) {
        let c = classify_str(line).unwrap();
        assert_eq!(
            (c.signature, c.peer),
            (Signature::OtherUpstream, None),
            "{line}"
        );
    }
}
