//! Tests of `errorlog`: the line parser and the `upstream:` field splitter.

use fix502_nginx::errorlog::{Errno, Level, UpstreamField, parse_line, parse_upstream_field};
use jiff::civil::date;

const CATALOG: &str = include_str!("fixtures/errorlog/catalog.log");
const REAL: &str = include_str!("fixtures/errorlog/real-nginx.log");

/// The one line of the `catalog.log` fixture containing `needle`.
fn catalog(needle: &str) -> &'static str {
    let mut found = CATALOG.lines().filter(|l| l.contains(needle));
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no catalog line contains {needle:?}"));
    assert!(
        found.next().is_none(),
        "several catalog lines contain {needle:?}"
    );
    line
}

#[test]
fn every_fixture_line_parses_and_keeps_its_raw_text() {
    for line in CATALOG.lines().chain(REAL.lines()) {
        let parsed = parse_line(line).unwrap_or_else(|| panic!("unparsed: {line}"));
        assert_eq!(parsed.raw, line);
        assert!(!parsed.message.is_empty(), "{line}");
    }
    assert_eq!(CATALOG.lines().count(), 83);
    assert_eq!(REAL.lines().count(), 19);
}

#[test]
fn catalog_example_connect_refused_all_fields() {
    let l = parse_line(catalog("*1183 ")).unwrap();
    assert_eq!(l.time, date(2025, 3, 14).at(9, 21, 7, 0));
    assert_eq!(l.level, Level::Error);
    assert_eq!((l.pid, l.tid, l.connection), (2417, 2417, Some(1183)));
    assert_eq!(l.message, "connect() failed");
    assert_eq!(
        l.errno,
        Some(Errno {
            number: 111,
            text: "Connection refused"
        })
    );
    assert_eq!(l.action, Some("connecting to upstream"));
    assert_eq!(l.client, Some("203.0.113.45"));
    assert_eq!(l.server, Some("app.example.com"));
    assert_eq!(l.request, Some("GET /api/health HTTP/1.1"));
    assert_eq!(l.subrequest, None);
    assert_eq!(l.upstream, Some("http://127.0.0.1:8080/api/health"));
    assert_eq!(l.host, Some("app.example.com"));
    assert_eq!(l.referrer, None);
    assert_eq!(l.resolver, None);
}

#[test]
fn catalog_example_unix_socket_missing() {
    let l = parse_line(catalog("*1201 ")).unwrap();
    assert_eq!(l.level, Level::Crit);
    assert_eq!(
        l.message,
        "connect() to unix:/run/php/php8.2-fpm.sock failed"
    );
    assert_eq!(l.errno.map(|e| e.number), Some(2));
    assert_eq!(l.errno.map(|e| e.text), Some("No such file or directory"));
    assert_eq!(l.action, Some("connecting to upstream"));
    assert_eq!(l.request, Some("GET /index.php HTTP/2.0"));
    assert_eq!(l.upstream, Some("fastcgi://unix:/run/php/php8.2-fpm.sock:"));
    assert_eq!(l.host, Some("example.com"));
}

#[test]
fn catalog_example_too_big_header_with_referrer() {
    let l = parse_line(catalog("*1290 ")).unwrap();
    assert_eq!((l.pid, l.tid), (2418, 2418));
    assert_eq!(l.message, "upstream sent too big header");
    assert_eq!(l.errno, None);
    assert_eq!(l.action, Some("reading response header from upstream"));
    assert_eq!(l.client, Some("192.0.2.10"));
    assert_eq!(l.server, Some("shop.example.com"));
    assert_eq!(l.request, Some("POST /login HTTP/1.1"));
    assert_eq!(l.upstream, Some("http://10.0.3.17:3000/login"));
    assert_eq!(l.host, Some("shop.example.com"));
    assert_eq!(l.referrer, Some("https://shop.example.com/login"));
}

#[test]
fn catalog_extra_shapes() {
    let timeout = parse_line(catalog("*1311 ")).unwrap();
    assert_eq!(timeout.message, "upstream timed out");
    assert_eq!(timeout.errno.map(|e| e.number), Some(110));
    assert_eq!(
        timeout.upstream,
        Some("fastcgi://unix:/run/php/php8.2-fpm.sock")
    );

    let nolive = parse_line(catalog("*1330 ")).unwrap();
    assert_eq!(nolive.message, "no live upstreams");
    assert_eq!(nolive.errno, None);
    assert_eq!(nolive.action, Some("connecting to upstream"));
    assert_eq!(nolive.upstream, Some("http://api_backend/v1/items"));

    let dns = parse_line(catalog("*1402 ")).unwrap();
    assert_eq!((dns.pid, dns.tid), (7, 7));
    assert_eq!(
        dns.message,
        "backend.default.svc.cluster.local could not be resolved"
    );
    assert_eq!(
        dns.errno,
        Some(Errno {
            number: 3,
            text: "Host not found"
        })
    );
    assert_eq!(dns.action, None);
    assert_eq!(dns.server, Some("_"));
    assert_eq!(dns.upstream, None);
    assert_eq!(dns.host, Some("example.com"));

    let grpc = parse_line(catalog("*88 ")).unwrap();
    assert_eq!(grpc.message, "upstream sent too large http2 frame: 4740180");
    assert_eq!(grpc.upstream, Some("grpc://10.0.0.12:50051"));
    assert_eq!(grpc.host, Some("grpc.example.com:443"));
    assert_eq!(
        grpc.request,
        Some("POST /helloworld.Greeter/SayHello HTTP/2.0")
    );
}

#[test]
fn musl_wording_keeps_the_number() {
    let l = parse_line(catalog("*5 ")).unwrap();
    assert_eq!(
        l.errno,
        Some(Errno {
            number: 110,
            text: "Operation timed out"
        })
    );
    assert_eq!(l.action, Some("connecting to upstream"));
    assert_eq!(l.upstream, Some("http://172.18.0.3:8000/"));
    let unreach = parse_line(catalog("*1417 ")).unwrap();
    assert_eq!(
        unreach.errno,
        Some(Errno {
            number: 113,
            text: "Host is unreachable"
        })
    );
}

#[test]
fn b_rows_parse() {
    let v6 = parse_line(catalog("*1410 ")).unwrap();
    assert_eq!(v6.message, "connect() to [::1]:3000 failed");
    assert_eq!(v6.errno.map(|e| e.number), Some(99));
    let kevent = parse_line(catalog("*1419 ")).unwrap();
    assert_eq!(kevent.message, "kevent() reported that connect() failed");
    assert_eq!((kevent.pid, kevent.tid), (812, 100_123));
    let ssl = parse_line(catalog("*1427 ")).unwrap();
    // The OpenSSL group is part of the message, not an errno.
    assert_eq!(
        ssl.message,
        "SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number)"
    );
    assert_eq!(ssl.errno, None);
    assert_eq!(ssl.action, Some("SSL handshaking to upstream"));
    let closed = parse_line(catalog("*1428 ")).unwrap();
    assert_eq!(closed.message, "peer closed connection in SSL handshake");
    assert_eq!(closed.errno.map(|e| e.number), Some(104));
    let workers = parse_line(catalog("*1430 ")).unwrap();
    assert_eq!(workers.level, Level::Alert);
    assert_eq!(workers.message, "1024 worker_connections are not enough");
}

#[test]
fn resolver_line_has_resolver_and_no_client() {
    let l = parse_line(catalog("resolver: 127.0.0.11:53")).unwrap();
    assert_eq!(l.connection, None);
    assert_eq!(l.message, "recv() failed");
    assert_eq!(
        l.errno,
        Some(Errno {
            number: 111,
            text: "Connection refused"
        })
    );
    assert_eq!(l.action, Some("resolving"));
    assert_eq!(l.resolver, Some("127.0.0.11:53"));
    assert_eq!(l.client, None);
    assert_eq!(l.upstream, None);
}

#[test]
fn zone_resolve_service_line_peels_errno_and_action() {
    let line = "2025/03/14 10:00:00 [error] 5#5: _http._tcp.backend could not be resolved (3: Host not found) while resolving service http of backend.local";
    let l = parse_line(line).unwrap();
    assert_eq!(l.message, "_http._tcp.backend could not be resolved");
    assert_eq!(l.errno.map(|e| e.number), Some(3));
    assert_eq!(l.action, Some("resolving service http of backend.local"));
}

#[test]
fn lines_without_client_context() {
    let emerg = parse_line(catalog("[emerg]")).unwrap();
    assert_eq!(emerg.level, Level::Emerg);
    assert_eq!((emerg.pid, emerg.tid, emerg.connection), (1, 1, None));
    assert_eq!(
        emerg.message,
        "host not found in upstream \"backend:8000\" in /etc/nginx/conf.d/default.conf:12"
    );
    assert_eq!(emerg.client, None);

    let notice = parse_line(catalog("signal process started")).unwrap();
    assert_eq!(notice.level, Level::Notice);
    assert_eq!(notice.message, "signal process started");
    assert_eq!(
        (notice.errno, notice.action, notice.server),
        (None, None, None)
    );

    let unthreaded =
        parse_line("2024/01/02 03:04:05 [notice] 2417#0: using the \"epoll\" event method")
            .unwrap();
    assert_eq!((unthreaded.pid, unthreaded.tid), (2417, 0));
    assert_eq!(unthreaded.message, "using the \"epoll\" event method");
}

#[test]
fn levels_round_trip() {
    let all = [
        Level::Emerg,
        Level::Alert,
        Level::Crit,
        Level::Error,
        Level::Warn,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];
    for level in all {
        assert_eq!(level.to_string().parse::<Level>(), Ok(level));
        assert_eq!(level.to_string(), level.as_str());
    }
    assert_eq!(Level::Crit.to_string(), "crit");
    assert!("ERROR".parse::<Level>().is_err());
    assert!("warning".parse::<Level>().is_err());
    assert!(Level::Emerg < Level::Debug);
}

#[test]
fn invalid_starts_are_rejected() {
    let tail = " [error] 1#1: *1 connect() failed (111: Connection refused)";
    for bad in [
        "",
        "hello world",
        "2025/02/30 10:00:00 [error] 1#1: x", // no such day
        "2025/13/01 10:00:00 [error] 1#1: x",
        "2025/03/14 24:00:00 [error] 1#1: x",
        "2025-03-14 10:00:00 [error] 1#1: x",
        "2025/03/14 10:00:0x [error] 1#1: x",
        "2025/03/14 10:00:00 [fatal] 1#1: x",
        "2025/03/14 10:00:00 [error] x#1: x",
        "2025/03/14 10:00:00 [error] 1#: x",
        "2025/03/14 10:00:00 [error] 1 x",
        "2025/03/14 10:00:00",
        "2025/03/14 10:00:00 [error]",
        "nginx: [emerg] unknown directive \"foo\" in /etc/nginx/nginx.conf:3",
        "<11>Mar 14 09:21:07 web nginx: 2025/03/14 09:21:07 [error] 1#1: x",
        "２０２５/03/14 10:00:00 [error] 1#1: x",
    ] {
        assert_eq!(parse_line(bad), None, "{bad:?}");
    }
    assert!(parse_line(&format!("2025/03/14 10:00:00{tail}")).is_some());
    assert!(parse_line(&format!("2024/02/29 23:59:59{tail}")).is_some());
}

#[test]
fn crlf_and_lf_endings_are_ignored() {
    let line = format!("{}\r\n", catalog("*1183 "));
    let l = parse_line(&line).unwrap();
    assert_eq!(l.host, Some("app.example.com"));
    assert!(!l.raw.ends_with(['\r', '\n']));
}

#[test]
fn truncated_lines_keep_what_is_there() {
    let full = catalog("*1290 ");
    // Cut inside the referrer: no closing quote.
    let cut = &full[..full.len() - ".com/login\"".len()];
    let l = parse_line(cut).unwrap();
    assert_eq!(l.host, Some("shop.example.com"));
    assert_eq!(l.referrer, Some("https://shop.example"));

    // Cut inside the upstream value: later fields are missing.
    let at = full.find("10.0.3.17").unwrap();
    let l = parse_line(&full[..at + 4]).unwrap();
    assert_eq!(l.upstream, Some("http://10.0"));
    assert_eq!((l.host, l.referrer), (None, None));
    assert_eq!(l.request, Some("POST /login HTTP/1.1"));

    // Cut in the middle of a marker: the partial marker stays in the previous value.
    let at = full.find(", upstream: ").unwrap();
    let l = parse_line(&full[..at + 5]).unwrap();
    assert_eq!(l.request, Some("POST /login HTTP/1.1\", ups"));
    assert_eq!(l.upstream, None);

    // Cut right after "client: ".
    let at = full.find("client: ").unwrap();
    let l = parse_line(&full[..at + "client: ".len()]).unwrap();
    assert_eq!(l.client, Some(""));
    assert_eq!(l.message, "upstream sent too big header");

    // Cut inside the message and right after the pid.
    let l = parse_line("2025/03/14 09:25:02 [error] 2418#2418: *1290 upstream sent too").unwrap();
    assert_eq!(l.message, "upstream sent too");
    let l = parse_line("2025/03/14 09:25:02 [error] 2418#2418:").unwrap();
    assert_eq!((l.message, l.connection), ("", None));

    // Cut inside the errno group: nothing is peeled.
    let l =
        parse_line("2025/03/14 09:25:02 [error] 1#1: *2 connect() failed (111: Connec").unwrap();
    assert_eq!(l.errno, None);
    assert_eq!(l.message, "connect() failed (111: Connec");
}

#[test]
fn ellipsis_before_errno_of_overlong_message() {
    let long = "x".repeat(1900);
    let line = format!(
        "2025/03/14 09:25:02 [error] 1#1: *2 upstream sent invalid header: \"{long}...\" (104: Connection reset by peer) while reading response header from upstream, client: 1.2.3.4, serv"
    );
    let l = parse_line(&line).unwrap();
    assert!(l.message.ends_with("...\""));
    assert_eq!(l.errno.map(|e| e.number), Some(104));
    assert_eq!(l.action, Some("reading response header from upstream"));
    assert_eq!(l.client, Some("1.2.3.4, serv"));
    assert_eq!(l.server, None);
}

#[test]
fn raw_quotes_and_markers_inside_values() {
    let line = r#"2025/03/14 09:25:02 [error] 1#1: *2 upstream prematurely closed connection while reading response header from upstream, client: 1.2.3.4, server: , request: "GET /a"b, c HTTP/1.1", upstream: "http://127.0.0.1:8000/a"b,", host: "h, host: "x"", referrer: "r""#;
    let l = parse_line(line).unwrap();
    assert_eq!(l.server, Some(""));
    assert_eq!(l.request, Some(r#"GET /a"b, c HTTP/1.1"#));
    assert_eq!(l.upstream, Some(r#"http://127.0.0.1:8000/a"b,"#));
    assert_eq!(l.host, Some(r#"h, host: "x""#));
    assert_eq!(l.referrer, Some("r"));
    // A " while " inside a value before the action does not confuse the action.
    let line = "2025/03/14 09:25:02 [error] 1#1: *2 upstream sent invalid header: \"a while reading upstream b\" while reading response header from upstream, client: 1.2.3.4";
    let l = parse_line(line).unwrap();
    assert_eq!(l.action, Some("reading response header from upstream"));
    assert_eq!(
        l.message,
        "upstream sent invalid header: \"a while reading upstream b\""
    );
    // An unknown action is left in the message.
    let l =
        parse_line("2025/03/14 09:25:02 [error] 1#1: *2 oops while doing something odd").unwrap();
    assert_eq!(l.action, None);
    assert_eq!(l.message, "oops while doing something odd");
}

#[test]
fn subrequest_field() {
    let line = r#"2025/03/14 09:25:02 [error] 1#1: *9 connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4, server: a.example, request: "GET /private HTTP/1.1", subrequest: "/auth", upstream: "http://127.0.0.1:9191/auth", host: "a.example""#;
    let l = parse_line(line).unwrap();
    assert_eq!(l.request, Some("GET /private HTTP/1.1"));
    assert_eq!(l.subrequest, Some("/auth"));
    assert_eq!(l.upstream, Some("http://127.0.0.1:9191/auth"));
    assert_eq!(l.host, Some("a.example"));
}

#[test]
fn stream_module_line() {
    let line = r#"2025/03/14 09:25:02 [error] 1#1: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4, server: 0.0.0.0:5432, upstream: "10.0.0.2:5432", bytes from/to client:0/0, bytes from/to upstream:0/0"#;
    let l = parse_line(line).unwrap();
    assert_eq!(l.server, Some("0.0.0.0:5432"));
    assert_eq!(l.upstream, Some("10.0.0.2:5432"));
    let f = parse_upstream_field(l.upstream.unwrap()).unwrap();
    assert_eq!((f.scheme, f.peer, f.uri), ("", "10.0.0.2:5432", ""));
}

#[test]
fn non_ascii_and_replacement_characters_do_not_break_parsing() {
    let line = "2025/03/14 09:25:02 [error] 1#1: *2 upstream sent invalid header: \"\u{FFFD}\u{FFFD}é\" while reading response header from upstream, client: 1.2.3.4, server: ü, request: \"GET /ö HTTP/1.1\"";
    let l = parse_line(line).unwrap();
    assert_eq!(l.server, Some("ü"));
    assert_eq!(l.request, Some("GET /ö HTTP/1.1"));
}

#[test]
fn never_panics_on_prefixes_of_real_lines() {
    for line in CATALOG.lines().chain(REAL.lines()) {
        for (i, _) in line.char_indices() {
            let _ = parse_line(&line[..i]);
            let _ = parse_line(&line[i..]);
        }
    }
}

fn field(value: &str) -> (&str, &str, &str) {
    let UpstreamField { scheme, peer, uri } =
        parse_upstream_field(value).unwrap_or_else(|| panic!("unparsed {value:?}"));
    (scheme, peer, uri)
}

#[test]
fn upstream_field_forms() {
    assert_eq!(
        field("http://127.0.0.1:8080/api"),
        ("http", "127.0.0.1:8080", "/api")
    );
    assert_eq!(
        field("http://127.0.0.1:8080/api/users?id=7"),
        ("http", "127.0.0.1:8080", "/api/users?id=7")
    );
    assert_eq!(field("http://[::1]:3000/"), ("http", "[::1]:3000", "/"));
    assert_eq!(
        field("https://[2001:db8::10]:443/x"),
        ("https", "[2001:db8::10]:443", "/x")
    );
    assert_eq!(
        field("https://10.0.0.5:443/login"),
        ("https", "10.0.0.5:443", "/login")
    );
    assert_eq!(
        field("http://unix:/run/app.sock:/api"),
        ("http", "unix:/run/app.sock", "/api")
    );
    assert_eq!(
        field("http://unix:/run/gunicorn.sock:/api/users"),
        ("http", "unix:/run/gunicorn.sock", "/api/users")
    );
    assert_eq!(
        field("fastcgi://unix:/run/php/php8.2-fpm.sock:"),
        ("fastcgi", "unix:/run/php/php8.2-fpm.sock", "")
    );
    assert_eq!(
        field("fastcgi://unix:/run/php/php8.2-fpm.sock"),
        ("fastcgi", "unix:/run/php/php8.2-fpm.sock", "")
    );
    assert_eq!(
        field("fastcgi://127.0.0.1:9000"),
        ("fastcgi", "127.0.0.1:9000", "")
    );
    assert_eq!(
        field("http://backend_pool/v1/items"),
        ("http", "backend_pool", "/v1/items")
    );
    assert_eq!(field("http://localhost/"), ("http", "localhost", "/"));
    assert_eq!(
        field("grpc://10.0.0.12:50051"),
        ("grpc", "10.0.0.12:50051", "")
    );
    assert_eq!(
        field("grpcs://10.0.0.12:50051"),
        ("grpcs", "10.0.0.12:50051", "")
    );
    assert_eq!(
        field("uwsgi://unix:/run/uwsgi/app.sock:"),
        ("uwsgi", "unix:/run/uwsgi/app.sock", "")
    );
    assert_eq!(
        field("suwsgi://10.0.0.3:3031"),
        ("suwsgi", "10.0.0.3:3031", "")
    );
    assert_eq!(
        field("scgi://127.0.0.1:4000"),
        ("scgi", "127.0.0.1:4000", "")
    );
    assert_eq!(
        field("memcached://127.0.0.1:11211"),
        ("memcached", "127.0.0.1:11211", "")
    );
    assert_eq!(field("[::1]:5432"), ("", "[::1]:5432", ""));
}

#[test]
fn upstream_field_unix_without_separator() {
    // Header-phase timeouts drop the ':' separator (docs/nginx-messages.md §2, real-nginx.log).
    assert_eq!(
        field("http://unix:/tmp/app.sock/path"),
        ("http", "unix:/tmp/app.sock", "/path")
    );
    assert_eq!(
        field("http://unix:/tmp/app.sock"),
        ("http", "unix:/tmp/app.sock", "")
    );
    assert_eq!(
        field("http://unix:/tmp/my.socks/app.sock/x?y"),
        ("http", "unix:/tmp/my.socks/app.sock", "/x?y")
    );
    // No ".sock" to go by: the whole rest is the peer.
    assert_eq!(
        field("http://unix:/run/app/x"),
        ("http", "unix:/run/app/x", "")
    );
}

#[test]
fn upstream_field_rejects_empty_peers() {
    for bad in [
        "",
        "http://",
        "uwsgi://",
        "http:///x",
        "http://unix:",
        "http://unix::/x",
        "ht tp://x",
    ] {
        assert_eq!(parse_upstream_field(bad), None, "{bad:?}");
    }
    // A bracket that never closes.
    assert_eq!(parse_upstream_field("http://[::1"), None);
}
