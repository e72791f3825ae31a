//! Lines users posted from real setups (fixture `real-world.log`, docs/nginx-messages.md
//! "Real-world variants"): every protocol and header message nginx writes, Lua and module
//! messages, TLS handshakes with and without the upstream context, nginx for Windows, musl
//! errno texts and container log prefixes. Each fixture line has one case here, and every
//! case names its line exactly once.

use std::io::Cursor;

use fix502_nginx::classify::{
    Classified, FastCgiKind, Http2Kind, InvalidHeaderKind, Phase, Signature, TlsKind, TlsReason,
    classify,
};
use fix502_nginx::errorlog::{parse_line, strip_container_prefix};
use fix502_nginx::logscan::{ScanOptions, scan};

mod common;

const LOG: &str = include_str!("fixtures/errorlog/real-world.log");

/// One fixture line: the text that finds it, what it classifies to (`None`: not about an
/// upstream) and the peer named.
struct Case {
    needle: &'static str,
    signature: Option<Signature>,
    peer: Option<&'static str>,
}

const fn case(
    needle: &'static str,
    signature: Option<Signature>,
    peer: Option<&'static str>,
) -> Case {
    Case {
        needle,
        signature,
        peer,
    }
}

use FastCgiKind as F;
use Http2Kind as H;
use InvalidHeaderKind as I;

const fn handshake(reason: TlsReason) -> Option<Signature> {
    Some(Signature::Tls(TlsKind::HandshakeFailed { reason }))
}

/// The protocol and header family (docs/nginx-messages.md §10–§12).
const PROTOCOL: &[Case] = &[
    case(
        "*2001 ",
        Some(Signature::InvalidHeader(I::NoValidHttpHeader)),
        Some("127.0.0.1:6379"),
    ),
    case(
        "*2002 ",
        Some(Signature::InvalidHeader(I::Bytes { byte: Some(0x20) })),
        Some("127.0.0.1:8002"),
    ),
    case(
        "*2003 ",
        Some(Signature::InvalidHeader(I::Bytes { byte: None })),
        Some("127.0.0.1:8003"),
    ),
    case(
        "*2004 ",
        Some(Signature::InvalidHeader(I::InvalidStatus)),
        Some("127.0.0.1:9004"),
    ),
    case(
        "*2005 ",
        Some(Signature::FastCgi(F::UnexpectedRecord(3))),
        Some("unix:/run/php/php8.2-fpm.sock"),
    ),
    case(
        "*2006 ",
        Some(Signature::FastCgi(F::UnsupportedVersion(72))),
        Some("127.0.0.1:8006"),
    ),
    case(
        "*2007 ",
        Some(Signature::FastCgi(F::InvalidRecordType(2))),
        Some("127.0.0.1:9007"),
    ),
    case(
        "*2008 ",
        Some(Signature::FastCgi(F::UnexpectedRequestId)),
        Some("127.0.0.1:9008"),
    ),
    case(
        "*2009 ",
        Some(Signature::FastCgi(F::ClosedStdout)),
        Some("127.0.0.1:9009"),
    ),
    case(
        "*2010 ",
        Some(Signature::FastCgi(F::SplitHeader)),
        Some("127.0.0.1:9010"),
    ),
    case(
        "*2011 ",
        Some(Signature::Http2(H::UnknownStream)),
        Some("127.0.0.1:50011"),
    ),
    case(
        "*2012 ",
        Some(Signature::Http2(H::UnknownStream)),
        Some("127.0.0.1:50012"),
    ),
    case(
        "*2013 ",
        Some(Signature::Http2(H::UnknownStream)),
        Some("127.0.0.1:50013"),
    ),
    case(
        "*2014 ",
        Some(Signature::Http2(H::TooLargeFrame(4_740_180))),
        Some("127.0.0.1:50014"),
    ),
    case(
        "*2015 ",
        Some(Signature::Http2(H::InvalidHeader)),
        Some("127.0.0.1:50015"),
    ),
    case(
        "*2016 ",
        Some(Signature::Http2(H::InvalidHeader)),
        Some("127.0.0.1:50016"),
    ),
    case(
        "*2017 ",
        Some(Signature::Http2(H::Rejected { code: 7 })),
        Some("127.0.0.1:50017"),
    ),
    case(
        "*2018 ",
        Some(Signature::Http2(H::Goaway { code: 0 })),
        Some("127.0.0.1:50018"),
    ),
    // `proxy_http_version 2` (1.29.4+) writes gRPC's texts under an `http://` scheme: an
    // invalid header all the same.
    case(
        "*2019 ",
        Some(Signature::InvalidHeader(I::Bytes { byte: None })),
        Some("127.0.0.1:8019"),
    ),
    // A harmless `[warn]`: the response was complete.
    case("*2020 ", None, None),
    case(
        "*2021 ",
        Some(Signature::Tls(TlsKind::PrematurelySentResponse)),
        Some("127.0.0.1:8021"),
    ),
    case(
        "*2022 ",
        Some(Signature::InvalidHeader(I::InvalidStatus)),
        Some("unix:/run/uwsgi/app.sock"),
    ),
    case(
        "*2023 ",
        Some(Signature::InvalidHeader(I::Memcached)),
        Some("127.0.0.1:11211"),
    ),
];

/// Lua and module messages, and the names nginx's resolver writes (§5).
const NAMES: &[Case] = &[
    // A Lua script's own resolver failure: no name from its text, no upstream.
    case("*2101 ", None, None),
    case(
        "*2102 ",
        Some(Signature::Resolve),
        Some("backend.default.svc.cluster.local"),
    ),
    // A module message on an upstream line: the peer of nginx's `upstream:` field only.
    case("*2103 ", Some(Signature::OtherUpstream), Some("0.0.0.1:80")),
    // A script quoting nginx's text, in the upstream phase: a hint with no name.
    case("*2104 ", Some(Signature::OtherUpstream), None),
    case("*2105 ", None, None),
    case(
        "service _http._tcp of backend.local",
        Some(Signature::Resolve),
        Some("backend.local"),
    ),
    // OCSP stapling's resolver: a certificate status request, not an upstream.
    case("ocsp.example.com could not", None, None),
    case("*2106 ", Some(Signature::Resolve), Some("app.internal")),
    case("*2107 ", None, None),
];

/// TLS handshakes (§8): the upstream's only with nginx's upstream context.
const TLS: &[Case] = &[
    case(
        "*2301 ",
        handshake(TlsReason::WrongVersionNumber),
        Some("127.0.0.1:8301"),
    ),
    case(
        "*2302 ",
        handshake(TlsReason::WrongVersionNumber),
        Some("10.0.0.5:8302"),
    ),
    case(
        "*2303 ",
        handshake(TlsReason::WrongVersionNumber),
        Some("127.0.0.1:8303"),
    ),
    // The client's handshake with nginx.
    case("*2304 ", None, None),
    case("*2305 ", None, None),
    // BoringSSL's spelling.
    case(
        "*2306 ",
        handshake(TlsReason::WrongVersionNumber),
        Some("127.0.0.1:8306"),
    ),
    case(
        "*2307 ",
        handshake(TlsReason::HandshakeFailureAlert),
        Some("127.0.0.1:8307"),
    ),
];

/// nginx for Windows: WSA errno numbers (§19).
const WINDOWS: &[Case] = &[
    case(
        "*2401 ",
        Some(Signature::ConnectRefused),
        Some("127.0.0.1:8401"),
    ),
    case(
        "*2402 ",
        Some(Signature::ConnectTimedOut),
        Some("127.0.0.1:8402"),
    ),
    case(
        "*2403 ",
        Some(Signature::UpstreamTimedOut {
            phase: Phase::Connecting,
        }),
        Some("127.0.0.1:8403"),
    ),
    case("*2404 ", Some(Signature::Reset), Some("127.0.0.1:8404")),
    case(
        "*2405 ",
        Some(Signature::HostUnreachable),
        Some("10.9.8.7:8405"),
    ),
    case(
        "*2406 ",
        Some(Signature::NetUnreachable),
        Some("10.9.8.6:8406"),
    ),
    case("*2407 ", Some(Signature::Reset), Some("127.0.0.1:8407")),
    // WSAEACCES: a local firewall, not SELinux; no signature of its own.
    case(
        "*2408 ",
        Some(Signature::OtherUpstream),
        Some("127.0.0.1:8408"),
    ),
];

/// musl (Alpine) errno texts (§19): the number decides.
const MUSL: &[Case] = &[
    case(
        "*2501 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.3:8501"),
    ),
    case(
        "*2502 ",
        Some(Signature::SocketMissing),
        Some("unix:/run/php/php-fpm.sock"),
    ),
    case(
        "*2503 ",
        Some(Signature::PermissionDenied),
        Some("unix:/run/php/php-fpm-b.sock"),
    ),
    case(
        "*2504 ",
        Some(Signature::ConnectTimedOut),
        Some("172.18.0.4:8504"),
    ),
    case(
        "*2505 ",
        Some(Signature::UpstreamTimedOut {
            phase: Phase::ReadingHeader,
        }),
        Some("172.18.0.5:8505"),
    ),
    case("*2506 ", Some(Signature::Reset), Some("172.18.0.6:8506")),
    case(
        "*2507 ",
        Some(Signature::BacklogFull),
        Some("unix:/run/php/php-fpm-c.sock"),
    ),
    case(
        "*2508 ",
        Some(Signature::HostUnreachable),
        Some("172.18.0.8:8508"),
    ),
    case(
        "*2509 ",
        Some(Signature::NetUnreachable),
        Some("[2001:db8::9]:8509"),
    ),
    case(
        "*2510 ",
        Some(Signature::AddressNotAvailable),
        Some("[::1]:8510"),
    ),
    case(
        "*2511 ",
        Some(Signature::KernelTimedOut),
        Some("172.18.0.11:8511"),
    ),
    case(
        "*2512 ",
        Some(Signature::SendFailed { errno: 107 }),
        Some("172.18.0.12:8512"),
    ),
];

/// Container log prefixes: the nginx line inside classifies as without them.
const CONTAINERS: &[Case] = &[
    case(
        "*2601 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.21:8601"),
    ),
    case(
        "*2602 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.22:8602"),
    ),
    case(
        "*2603 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.23:8603"),
    ),
    case(
        "*2604 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.24:8604"),
    ),
    case(
        "*2605 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.25:8605"),
    ),
    case(
        "*2606 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.26:8606"),
    ),
    case(
        "*2607 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.27:8607"),
    ),
    case(
        "*2608 ",
        Some(Signature::ConnectRefused),
        Some("172.18.0.28:8608"),
    ),
];

const FAMILIES: [&[Case]; 6] = [PROTOCOL, NAMES, TLS, WINDOWS, MUSL, CONTAINERS];

fn line(needle: &str) -> &'static str {
    common::find(LOG, needle)
}

fn classified(needle: &str) -> Option<Classified> {
    let text = line(needle);
    classify(&parse_line(text).unwrap_or_else(|| panic!("unparsed: {text}")))
}

/// Checks every case of a family; all failures at once.
fn check(cases: &[Case]) {
    let mut wrong = Vec::new();
    for c in cases {
        let got = classified(c.needle);
        let signature = got.as_ref().map(|g| g.signature);
        let peer = got.as_ref().and_then(|g| g.peer.as_deref());
        if signature != c.signature || peer != c.peer {
            wrong.push(format!(
                "{}: got {signature:?} {peer:?}, want {:?} {:?}",
                c.needle, c.signature, c.peer
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_fixture_line_has_exactly_one_case() {
    for text in LOG.lines() {
        let n = FAMILIES
            .iter()
            .flat_map(|f| f.iter())
            .filter(|c| text.contains(c.needle))
            .count();
        assert_eq!(n, 1, "{text}");
    }
}

#[test]
fn protocol_and_header_messages_of_every_module() {
    check(PROTOCOL);
    // The non-HTTP answer is relayed as HTTP/0.9 (status 9): not a 502, yet a failed request.
    let no_valid = classified("*2001 ").unwrap();
    assert_eq!(no_valid.http_status(), 9);
    assert!(!no_valid.is_gateway_error());
    assert!(no_valid.fails_request());
    assert!(classified("*2002 ").unwrap().fails_request());
}

#[test]
fn lua_and_module_messages_give_no_name() {
    check(NAMES);
    // The Lua line's `host:` is still nginx's field.
    let lua = parse_line(line("*2101 ")).unwrap();
    assert_eq!(lua.host, Some("example.com"));
    assert_eq!(lua.errno.map(|e| e.number), Some(110));
}

#[test]
fn tls_handshakes_are_the_upstreams_only_in_its_context() {
    check(TLS);
    let mirror = classified("*2302 ").unwrap();
    assert_eq!(mirror.phase, Some(Phase::SslHandshake));
    assert_eq!(mirror.scheme.as_deref(), Some("https"));
    assert_eq!(classified("*2303 ").unwrap().phase, None);
}

#[test]
fn windows_wsa_errnos_map_like_posix() {
    check(WINDOWS);
    let l = parse_line(line("*2402 ")).unwrap();
    assert_eq!((l.pid, l.tid), (1234, 5678));
    assert_eq!(l.errno.map(|e| e.number), Some(10060));
    assert_eq!(l.action, Some("connecting to upstream"));
}

#[test]
fn musl_errno_texts_go_by_number() {
    check(MUSL);
    for (needle, text) in [
        ("*2504 ", "Operation timed out"),
        ("*2507 ", "Resource temporarily unavailable"),
        ("*2508 ", "Host is unreachable"),
        ("*2509 ", "Network unreachable"),
        ("*2510 ", "Address not available"),
        ("*2512 ", "Socket not connected"),
    ] {
        let l = parse_line(line(needle)).unwrap();
        assert_eq!(l.errno.map(|e| e.text), Some(text), "{needle}");
    }
}

#[test]
fn container_prefixes_are_stripped_and_the_nginx_time_kept() {
    check(CONTAINERS);
    for c in CONTAINERS {
        let l = parse_line(line(c.needle)).unwrap();
        assert_eq!(l.time.to_string(), "2024-05-01T10:00:00", "{}", c.needle);
        assert!(l.raw.starts_with("2024/05/01 10:00:00 [error] 7#7: *26"));
        assert_eq!(l.host, Some("example.com"));
    }
}

#[test]
fn container_prefix_stripping_is_anchored() {
    let nginx = "2024/05/01 10:00:00 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4, server: s, request: \"GET /a  | 2024/05/01 10:00:00 [error] HTTP/1.1\", upstream: \"http://127.0.0.1:1/\"";
    // An nginx line is never cut, whatever its message contains.
    assert_eq!(strip_container_prefix(nginx.as_bytes()), nginx.as_bytes());
    let stripped = |prefix: &str| {
        let text = format!("{prefix}{nginx}");
        let got = strip_container_prefix(text.as_bytes()).to_vec();
        String::from_utf8(got).unwrap()
    };
    for prefix in [
        "web-1  | ",
        "web_1 | ",
        "\x1b[36mweb-1  | \x1b[0m",
        "\x1b[36mweb-1  |\x1b[0m ",
        "2024-05-01T10:00:00Z ",
        "2024-05-01T10:00:00.5-07:00 ",
        "2024-05-01T10:00:00.123456789Z stdout F ",
        "web-1  | 2024-05-01T10:00:00.123456789Z ",
    ] {
        assert_eq!(stripped(prefix), nginx, "{prefix:?}");
    }
    // Near misses are left whole (and so stay unparsed): the rest must be an nginx line.
    for text in [
        "web-1  | not nginx at all".to_owned(),
        format!("web-1| {nginx}"),
        format!(" | {nginx}"),
        format!("-web  | {nginx}"),
        format!("web 1  | {nginx}"),
        format!("2024-05-01T10:00:00.1234567890Z {nginx}"),
        format!("2024-05-01 10:00:00Z {nginx}"),
        format!("2024-05-01T10:00:00.1Z stderr X {nginx}"),
        format!("{}  | {nginx}", "n".repeat(129)),
        format!("2024-05-01T10:00:00Z  {nginx}"),
    ] {
        assert_eq!(strip_container_prefix(text.as_bytes()), text.as_bytes());
        assert!(parse_line(&text).is_none(), "{text}");
    }
}

#[test]
fn the_scanner_reads_prefixed_lines_in_its_window() {
    let since = "2024-05-01T10:00:00".parse().unwrap();
    let opts = ScanOptions {
        since: Some(since),
        ..ScanOptions::default()
    };
    let summary = scan(Cursor::new(LOG), &opts).unwrap();
    assert_eq!(summary.lines_unparsed, 0, "{:?}", summary.unparsed_samples);
    let refused: u64 = summary
        .groups
        .iter()
        .filter(|g| g.failure.signature == Signature::ConnectRefused)
        .map(|g| g.count)
        .sum();
    // The eight container lines, Windows' 10061 and musl's 111.
    assert_eq!(refused, 10);
    let later = ScanOptions {
        since: Some("2024-05-01T10:00:01".parse().unwrap()),
        ..ScanOptions::default()
    };
    // The RFC 3339 times of the prefixes are not the lines' times.
    assert_eq!(scan(Cursor::new(LOG), &later).unwrap().lines_in_window, 0);
}

#[test]
fn the_window_bisects_on_the_nginx_time_behind_a_prefix() {
    use fix502_nginx::window::{Stamp, window_start};
    let mut text = String::new();
    let mut starts = Vec::new();
    for minute in 0..600 {
        let (h, m) = (minute / 60, minute % 60);
        starts.push(text.len());
        text.push_str(&format!(
            "2024-05-01T23:59:59.000000001Z stderr F 2024/05/01 {h:02}:{m:02}:00 [error] 1#1: *{minute} connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:1/\", host: \"s\"\n"
        ));
    }
    let since = "2024-05-01T05:00:00".parse().unwrap();
    let len = text.len() as u64;
    let at = window_start(
        &mut Cursor::new(text.as_bytes()),
        len,
        since,
        Stamp::ErrorLog,
    )
    .unwrap();
    assert_eq!(at, starts[300] as u64);
}
