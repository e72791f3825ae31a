//! The semantic view: every pass form, listen form, upstream servers, logs, user, and the
//! Debian configuration shape.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fix502_nginx::config::Config;
use fix502_nginx::dump::{DumpSource, DumpedFile};
use fix502_nginx::view::{
    ConfigView, ListenAddr, LogContext, PassModule, PassTarget, Peer, TargetAddress,
};

/// The view of a one-file configuration at /etc/nginx/nginx.conf.
fn view(text: &str) -> ConfigView {
    let source = DumpSource::from_files(vec![DumpedFile {
        path: "/etc/nginx/nginx.conf".into(),
        content: text.to_string(),
    }]);
    let config = Config::load_from(Path::new("/etc/nginx/nginx.conf"), &source).expect("load");
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    ConfigView::new(&config)
}

/// The single pass target of `directive` placed in a location, next to `extra` http
/// directives (e.g. upstream blocks).
fn target_with(extra: &str, directive: &str) -> PassTarget {
    let v = view(&format!(
        "http {{\n{extra}\nserver {{\nlocation / {{\n{directive};\n}}\n}}\n}}\n"
    ));
    assert_eq!(v.targets.len(), 1);
    v.targets.into_iter().next().expect("one target")
}

fn target(directive: &str) -> PassTarget {
    target_with("", directive)
}

fn inet(host: &str, port: u16) -> TargetAddress {
    TargetAddress::Peer(Peer::inet(host, port))
}

fn unix(path: &str) -> TargetAddress {
    TargetAddress::Peer(Peer::Unix(PathBuf::from(path)))
}

#[track_caller]
fn assert_target(directive: &str, module: PassModule, scheme: &str, address: TargetAddress) {
    let t = target(directive);
    assert_eq!(t.module, module, "{directive}");
    assert_eq!(t.scheme, scheme, "{directive}");
    assert_eq!(t.address, address, "{directive}");
}

#[test]
fn proxy_pass_forms() {
    use PassModule::Proxy;
    assert_target(
        "proxy_pass http://127.0.0.1:8000/api/",
        Proxy,
        "http",
        inet("127.0.0.1", 8000),
    );
    assert_target(
        "proxy_pass http://example.com",
        Proxy,
        "http",
        inet("example.com", 80),
    );
    assert_target(
        "proxy_pass https://example.com/x",
        Proxy,
        "https",
        inet("example.com", 443),
    );
    assert_target(
        "proxy_pass HTTPS://h:8443?a=b",
        Proxy,
        "https",
        inet("h", 8443),
    );
    assert_target(
        "proxy_pass http://[::1]:3000",
        Proxy,
        "http",
        inet("::1", 3000),
    );
    assert_target(
        "proxy_pass http://[0:0::1]/x",
        Proxy,
        "http",
        inet("::1", 80),
    );
    assert_target(
        "proxy_pass http://unix:/tmp/app.sock:/uri",
        Proxy,
        "http",
        unix("/tmp/app.sock"),
    );
    assert_target(
        "proxy_pass http://unix:/tmp/app.sock",
        Proxy,
        "http",
        unix("/tmp/app.sock"),
    );
    assert_target(
        "proxy_pass https://$host$request_uri",
        Proxy,
        "https",
        TargetAddress::Variable("https://$host$request_uri".into()),
    );
    assert_target(
        "proxy_pass $backend",
        Proxy,
        "http",
        TargetAddress::Variable("$backend".into()),
    );
}

#[test]
fn proxy_pass_raw_span_and_place() {
    let t = target("proxy_pass http://127.0.0.1:8000/api/");
    assert_eq!(t.raw, "http://127.0.0.1:8000/api/");
    assert_eq!(t.span.to_string(), "/etc/nginx/nginx.conf:5");
    assert_eq!(t.server, Some(0));
    assert_eq!(t.location.as_deref(), Some("/"));
}

#[test]
fn proxy_pass_to_an_upstream_group() {
    let up = "upstream Backend { server 10.0.0.1:8080; server unix:/run/b.sock down; }";
    let t = target_with(up, "proxy_pass http://backend/x");
    assert_eq!(t.address, TargetAddress::Group("backend".into()));
    let t = target_with(up, "proxy_pass https://BACKEND");
    assert_eq!(t.address, TargetAddress::Group("BACKEND".into()));
    assert_eq!(t.scheme, "https");
    // nginx refuses a port on an upstream name.
    let t = target_with(up, "proxy_pass http://backend:8080");
    assert_eq!(
        t.address,
        TargetAddress::Invalid("upstream \"backend\" may not have port 8080".into())
    );
}

#[test]
fn upstream_defined_after_its_use_and_in_another_file_still_matches() {
    let v = view(
        "http {\n server { location / { proxy_pass http://late; } }\n upstream late { server 127.0.0.1:1; }\n}\n",
    );
    assert_eq!(v.targets[0].address, TargetAddress::Group("late".into()));
    let peers = v.peers_of(&v.targets[0]);
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].0, Peer::inet("127.0.0.1", 1));
    assert_eq!(peers[0].1.map(|s| s.raw()), Some("127.0.0.1:1"));
}

#[test]
fn invalid_pass_arguments() {
    let invalid = |d: &str| match target(d).address {
        TargetAddress::Invalid(reason) => reason,
        other => panic!("{d}: expected Invalid, got {other:?}"),
    };
    assert_eq!(
        invalid("proxy_pass 127.0.0.1:8000"),
        "invalid URL prefix in \"127.0.0.1:8000\""
    );
    assert_eq!(invalid("proxy_pass http://h:0"), "invalid port");
    assert_eq!(invalid("proxy_pass http://h:99999"), "invalid port");
    assert_eq!(invalid("proxy_pass http://h:x"), "invalid port");
    assert_eq!(invalid("proxy_pass http://"), "no host");
    assert_eq!(
        invalid("proxy_pass http://unix:"),
        "no path in the unix domain socket"
    );
    assert_eq!(invalid("proxy_pass http://[::1"), "invalid host");
    assert_eq!(invalid("proxy_pass http://[zz]:80"), "invalid IPv6 address");
    assert_eq!(
        invalid("fastcgi_pass 127.0.0.1"),
        "no port in upstream \"127.0.0.1\""
    );
    assert_eq!(invalid("fastcgi_pass 127.0.0.1:9000/x"), "invalid host");
}

#[test]
fn fastcgi_pass_forms() {
    use PassModule::FastCgi;
    assert_target(
        "fastcgi_pass unix:/run/php/php8.2-fpm.sock",
        FastCgi,
        "fastcgi",
        unix("/run/php/php8.2-fpm.sock"),
    );
    assert_target(
        "fastcgi_pass 127.0.0.1:9000",
        FastCgi,
        "fastcgi",
        inet("127.0.0.1", 9000),
    );
    assert_target(
        "fastcgi_pass [::1]:9000",
        FastCgi,
        "fastcgi",
        inet("::1", 9000),
    );
    // Without a URI part the whole rest is the socket path, colons included.
    assert_target(
        "fastcgi_pass unix:/tmp/a:b",
        FastCgi,
        "fastcgi",
        unix("/tmp/a:b"),
    );
    let t = target_with(
        "upstream php { server unix:/run/php.sock; }",
        "fastcgi_pass php",
    );
    assert_eq!(t.address, TargetAddress::Group("php".into()));
}

#[test]
fn uwsgi_grpc_scgi_memcached_forms() {
    use PassModule::{Grpc, Memcached, Scgi, Uwsgi};
    assert_target(
        "uwsgi_pass uwsgi://127.0.0.1:3031",
        Uwsgi,
        "uwsgi",
        inet("127.0.0.1", 3031),
    );
    assert_target(
        "uwsgi_pass suwsgi://app:3031",
        Uwsgi,
        "suwsgi",
        inet("app", 3031),
    );
    assert_target(
        "uwsgi_pass 127.0.0.1:3031",
        Uwsgi,
        "uwsgi",
        inet("127.0.0.1", 3031),
    );
    assert_target(
        "uwsgi_pass unix:/run/uwsgi.sock",
        Uwsgi,
        "uwsgi",
        unix("/run/uwsgi.sock"),
    );
    assert_target(
        "grpc_pass grpc://127.0.0.1:50051",
        Grpc,
        "grpc",
        inet("127.0.0.1", 50051),
    );
    assert_target("grpc_pass grpcs://api:443", Grpc, "grpcs", inet("api", 443));
    assert_target(
        "grpc_pass localhost:50051",
        Grpc,
        "grpc",
        inet("localhost", 50051),
    );
    assert_target(
        "scgi_pass 127.0.0.1:4000",
        Scgi,
        "scgi",
        inet("127.0.0.1", 4000),
    );
    assert_target(
        "scgi_pass unix:/run/scgi.sock",
        Scgi,
        "scgi",
        unix("/run/scgi.sock"),
    );
    assert_target(
        "memcached_pass 127.0.0.1:11211",
        Memcached,
        "memcached",
        inet("127.0.0.1", 11211),
    );
    assert_target(
        "grpc_pass grpc://$upstream",
        Grpc,
        "grpc",
        TargetAddress::Variable("grpc://$upstream".into()),
    );
}

#[test]
fn pass_module_names() {
    let names: Vec<&str> = PassModule::ALL.iter().map(PassModule::directive).collect();
    assert_eq!(
        names,
        [
            "proxy_pass",
            "fastcgi_pass",
            "uwsgi_pass",
            "scgi_pass",
            "grpc_pass",
            "memcached_pass"
        ]
    );
    for m in PassModule::ALL {
        assert_eq!(PassModule::from_directive(m.directive()), Some(m));
    }
    assert_eq!(PassModule::from_directive("proxy_redirect"), None);
}

#[test]
fn peer_display_matches_the_error_log() {
    assert_eq!(Peer::inet("127.0.0.1", 8000).to_string(), "127.0.0.1:8000");
    assert_eq!(Peer::inet("::1", 8000).to_string(), "[::1]:8000");
    assert_eq!(
        Peer::inet("[0:0:0:0:0:0:0:1]", 8000).to_string(),
        "[::1]:8000"
    );
    assert_eq!(
        Peer::inet("2001:DB8:0:0::1", 443).to_string(),
        "[2001:db8::1]:443"
    );
    assert_eq!(
        Peer::Unix("/run/php/php8.2-fpm.sock".into()).to_string(),
        "unix:/run/php/php8.2-fpm.sock"
    );
    assert_eq!(
        Peer::inet("app.internal", 8080).to_string(),
        "app.internal:8080"
    );
}

#[test]
fn peer_predicates() {
    assert!(Peer::inet("127.0.0.1", 1).is_loopback());
    assert!(Peer::inet("127.1.2.3", 1).is_loopback());
    assert!(Peer::inet("::1", 1).is_loopback());
    assert!(Peer::inet("::ffff:127.0.0.1", 1).is_loopback());
    assert!(Peer::inet("LocalHost", 1).is_loopback());
    assert!(!Peer::inet("10.0.0.1", 1).is_loopback());
    assert!(!Peer::inet("app", 1).is_loopback());
    assert!(!Peer::Unix("/a".into()).is_loopback());
    assert!(Peer::inet("10.0.0.1", 1).is_ip_literal());
    assert!(Peer::inet("::1", 1).is_ip_literal());
    assert!(!Peer::inet("localhost", 1).is_ip_literal());
    assert!(!Peer::Unix("/a".into()).is_ip_literal());
}

fn listens(directives: &str) -> Vec<fix502_nginx::view::Listen> {
    let v = view(&format!("http {{ server {{ {directives} }} }}"));
    v.servers.into_iter().next().expect("server").listens
}

fn listen_addr(arg: &str) -> ListenAddr {
    let l = listens(&format!("listen {arg};"));
    assert_eq!(l.len(), 1, "{arg}");
    l.into_iter().next().expect("listen").addr
}

fn sock(s: &str) -> ListenAddr {
    ListenAddr::Inet(s.parse::<SocketAddr>().expect("socket address"))
}

#[test]
fn listen_forms() {
    assert_eq!(listen_addr("80"), ListenAddr::Port(80));
    assert_eq!(listen_addr("*:80"), ListenAddr::Port(80));
    assert_eq!(listen_addr("*"), ListenAddr::Port(80));
    assert_eq!(listen_addr("127.0.0.1:8080"), sock("127.0.0.1:8080"));
    assert_eq!(listen_addr("127.0.0.1"), sock("127.0.0.1:80"));
    assert_eq!(listen_addr("[::]:80"), sock("[::]:80"));
    assert_eq!(listen_addr("[::1]"), sock("[::1]:80"));
    assert_eq!(
        listen_addr("localhost:8080"),
        ListenAddr::Host {
            host: "localhost".into(),
            port: 8080
        }
    );
    assert_eq!(
        listen_addr("unix:/run/nginx.sock"),
        ListenAddr::Unix("/run/nginx.sock".into())
    );
    assert!(listen_addr("[::]:80").is_wildcard());
    assert!(listen_addr("0.0.0.0:80").is_wildcard());
    assert!(!listen_addr("127.0.0.1").is_wildcard());
    assert_eq!(listen_addr("unix:/x").port(), None);
    assert_eq!(listen_addr("[::1]:8080").port(), Some(8080));
}

#[test]
fn listen_flags() {
    let l = listens(
        "listen [::1]:8080 ipv6only=on default_server; listen 443 ssl http2; listen 81 default;",
    );
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].raw, "[::1]:8080");
    assert!(l[0].default_server);
    assert!(!l[0].ssl);
    assert_eq!(l[0].params, ["ipv6only=on"]);
    assert_eq!(l[0].span.as_ref().map(|s| s.line), Some(1));
    assert!(l[1].ssl);
    assert!(!l[1].default_server);
    assert_eq!(l[1].params, ["http2"]);
    assert!(l[2].default_server);
}

#[test]
fn invalid_listen_is_left_out() {
    assert_eq!(listens("listen 0; listen 80;").len(), 1);
}

#[test]
fn server_without_listen_gets_the_implicit_default() {
    let l = listens("server_name a;");
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].addr, ListenAddr::Port(80));
    assert_eq!(l[0].span, None);
    assert!(!l[0].default_server);
}

#[test]
fn upstream_servers() {
    let v = view(
        "http { upstream u {
            zone u_zone 64k;
            server 10.0.0.1:8080 weight=5 max_fails=3 fail_timeout=30s;
            server app.internal;
            server unix:/run/app.sock backup;
            server [::1]:9000 down resolve;
            server bad:port;
            keepalive 32;
            least_conn;
        } }",
    );
    let g = v.group("U").expect("group, case-insensitive");
    assert_eq!(g.name, "u");
    assert_eq!(g.keepalive, Some(32));
    assert_eq!(g.zone.as_deref(), Some("u_zone"));
    assert_eq!(g.servers.len(), 4, "the invalid server is left out");
    let s = &g.servers;
    assert_eq!(s[0].peer, Peer::inet("10.0.0.1", 8080));
    assert_eq!(
        (s[0].weight, s[0].max_fails, s[0].fail_timeout.as_str()),
        (5, 3, "30s")
    );
    assert_eq!(s[1].peer, Peer::inet("app.internal", 80));
    assert_eq!(
        (s[1].weight, s[1].max_fails, s[1].fail_timeout.as_str()),
        (1, 1, "10s")
    );
    assert!(!s[1].backup && !s[1].down && !s[1].resolve);
    assert_eq!(s[2].peer, Peer::Unix("/run/app.sock".into()));
    assert!(s[2].backup);
    assert_eq!(s[3].peer.to_string(), "[::1]:9000");
    assert!(s[3].down && s[3].resolve);
    assert_eq!(s[3].span.line, 6);
    assert!(v.group("other").is_none());
}

#[test]
fn peers_of_each_kind() {
    let v = view(
        "http {
            upstream g { server 127.0.0.1:1; server 127.0.0.1:2 backup; }
            server {
                location /a { proxy_pass http://g; }
                location /b { proxy_pass http://127.0.0.1:3; }
                location /c { proxy_pass http://$x; }
                location /d { fastcgi_pass 127.0.0.1; }
            }
        }",
    );
    let peers: Vec<Vec<String>> = v
        .targets
        .iter()
        .map(|t| v.peers_of(t).iter().map(|(p, _)| p.to_string()).collect())
        .collect();
    assert_eq!(
        peers,
        [
            vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()],
            vec!["127.0.0.1:3".to_string()],
            vec![],
            vec![],
        ]
    );
    let with_server = v.peers_of(&v.targets[0]);
    assert!(with_server[1].1.is_some_and(|s| s.backup));
    assert!(v.peers_of(&v.targets[1])[0].1.is_none());
}

#[test]
fn targets_are_attributed_to_servers_and_locations() {
    let v = view(
        "http {
            server {
                server_name one;
                location / {
                    proxy_pass http://127.0.0.1:1;
                    location ~* \\.png$ { proxy_pass http://127.0.0.1:2; }
                    if ($x) { proxy_pass http://127.0.0.1:3; }
                    limit_except GET { proxy_pass http://127.0.0.1:4; }
                }
                location = /exact { }
                location @named { proxy_pass http://127.0.0.1:5; }
            }
            server {
                server_name two 2.example;
                server_name three;
                proxy_pass http://127.0.0.1:6;
            }
        }",
    );
    assert_eq!(v.servers.len(), 2);
    let places: Vec<(Option<usize>, Option<&str>)> = v
        .targets
        .iter()
        .map(|t| (t.server, t.location.as_deref()))
        .collect();
    assert_eq!(
        places,
        [
            (Some(0), Some("/")),
            (Some(0), Some("~* \\.png$")),
            (Some(0), Some("/")),
            (Some(0), Some("/")),
            (Some(0), Some("@named")),
            (Some(1), None),
        ]
    );
    let s0 = &v.servers[0];
    assert_eq!(s0.names, ["one"]);
    assert_eq!(s0.locations.len(), 3);
    assert_eq!(s0.locations[0].targets, [0, 2, 3]);
    assert_eq!(s0.locations[0].locations[0].targets, [1]);
    assert_eq!(s0.locations[0].locations[0].modifier.as_deref(), Some("~*"));
    assert_eq!(s0.locations[0].locations[0].path, "\\.png$");
    assert_eq!(s0.locations[1].modifier.as_deref(), Some("="));
    assert_eq!(s0.locations[1].path, "/exact");
    assert_eq!(s0.locations[2].modifier, None);
    assert_eq!(s0.locations[2].path, "@named");
    assert_eq!(s0.locations[2].targets, [4]);
    assert!(s0.targets.is_empty());
    let s1 = &v.servers[1];
    assert_eq!(s1.names, ["two", "2.example", "three"]);
    assert_eq!(s1.targets, [5]);
    assert_eq!(s1.span.line, 13);
}

#[test]
fn location_modifiers_joined_to_the_path() {
    let v = view(
        "http { server { location =/a {} location ^~/static/ {} location ~\\.php$ {} location ~*\\.JPG$ {} location /plain {} } }",
    );
    let got: Vec<(Option<&str>, &str)> = v.servers[0]
        .locations
        .iter()
        .map(|l| (l.modifier.as_deref(), l.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("="), "/a"),
            (Some("^~"), "/static/"),
            (Some("~"), "\\.php$"),
            (Some("~*"), "\\.JPG$"),
            (None, "/plain"),
        ]
    );
}

#[test]
fn logs_in_every_context() {
    let v = view(
        "error_log /var/log/nginx/error.log;
        events { worker_connections 10; }
        http {
            error_log logs/http.log warn;
            access_log off;
            server {
                error_log stderr notice;
                access_log syslog:server=unix:/dev/log,tag=nginx combined;
                location / {
                    error_log /var/log/loc.log debug;
                    if ($bad) { access_log /var/log/bad.log; }
                }
            }
        }
        stream { error_log /var/log/stream.log; server { access_log /var/log/s.log basic; } }
        mail { error_log /var/log/mail.log; }",
    );
    let errors: Vec<(&str, Option<&str>, LogContext)> = v
        .error_logs
        .iter()
        .map(|l| (l.path.as_str(), l.level_or_format.as_deref(), l.context))
        .collect();
    assert_eq!(
        errors,
        [
            ("/var/log/nginx/error.log", None, LogContext::Main),
            ("logs/http.log", Some("warn"), LogContext::Http),
            ("stderr", Some("notice"), LogContext::Server),
            ("/var/log/loc.log", Some("debug"), LogContext::Location),
            ("/var/log/stream.log", None, LogContext::Stream),
            ("/var/log/mail.log", None, LogContext::Mail),
        ]
    );
    let access: Vec<(&str, Option<&str>, LogContext)> = v
        .access_logs
        .iter()
        .map(|l| (l.path.as_str(), l.level_or_format.as_deref(), l.context))
        .collect();
    assert_eq!(
        access,
        [
            ("off", None, LogContext::Http),
            (
                "syslog:server=unix:/dev/log,tag=nginx",
                Some("combined"),
                LogContext::Server
            ),
            ("/var/log/bad.log", None, LogContext::Location),
            ("/var/log/s.log", Some("basic"), LogContext::Stream),
        ]
    );
    assert_eq!(v.error_logs[0].span.line, 1);
}

#[test]
fn user_and_pid() {
    let v = view("user www-data adm;\npid /run/nginx.pid;\nhttp { }\n");
    let user = v.user.expect("user");
    assert_eq!(user.user, "www-data");
    assert_eq!(user.group.as_deref(), Some("adm"));
    assert_eq!(user.span.line, 1);
    let (pid, span) = v.pid.expect("pid");
    assert_eq!(pid, "/run/nginx.pid");
    assert_eq!(span.line, 2);
    let v = view("user nobody;");
    assert_eq!(v.user.expect("user").group, None);
    let v = view("http { user x; }");
    assert!(v.user.is_none(), "user only counts in the main context");
}

#[test]
fn stream_and_mail_servers_are_ignored() {
    let v = view(
        "stream {
            upstream db { server 127.0.0.1:5432; }
            server { listen 15432; proxy_pass db; }
        }
        mail { server { listen 110; protocol pop3; proxy on; } }
        http { server { listen 80; } }",
    );
    assert_eq!(v.servers.len(), 1);
    assert_eq!(v.servers[0].listens[0].addr, ListenAddr::Port(80));
    assert!(v.targets.is_empty());
    assert!(v.upstreams.is_empty());
}

#[test]
fn empty_and_odd_configs_give_empty_views() {
    assert_eq!(view(""), ConfigView::default());
    let v =
        view("http; server { listen 80; } location / { proxy_pass http://x:1; } upstream; listen;");
    assert!(v.servers.is_empty());
    assert!(v.targets.is_empty());
    let v = view("http { server { listen; location { proxy_pass; } upstream {} } upstream {} }");
    assert_eq!(v.servers.len(), 1);
    assert!(v.targets.is_empty());
    assert!(v.upstreams.is_empty());
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

#[test]
fn debian_configuration_shape() {
    let text = std::fs::read_to_string(fixtures().join("debian-nginx-T.txt")).expect("fixture");
    let source = DumpSource::from_dump(&text);
    let config =
        Config::load_from(source.main_file().expect("main"), &source).expect("load from dump");
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    let v = ConfigView::new(&config);

    let user = v.user.as_ref().expect("user");
    assert_eq!(
        (user.user.as_str(), user.group.as_deref()),
        ("www-data", None)
    );
    assert_eq!(v.pid.as_ref().map(|p| p.0.as_str()), Some("/run/nginx.pid"));

    let errors: Vec<(&str, LogContext)> = v
        .error_logs
        .iter()
        .map(|l| (l.path.as_str(), l.context))
        .collect();
    assert_eq!(
        errors,
        [
            ("/var/log/nginx/error.log", LogContext::Main),
            ("/var/log/nginx/app.error.log", LogContext::Server),
        ]
    );
    assert_eq!(v.error_logs[0].span.to_string(), "/etc/nginx/nginx.conf:4");
    let access: Vec<&str> = v.access_logs.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(
        access,
        ["/var/log/nginx/access.log", "/var/log/nginx/app.access.log"]
    );

    // conf.d/*.conf is included before sites-enabled/*.
    assert_eq!(v.servers.len(), 2);
    let app = &v.servers[0];
    assert_eq!(app.names, ["app.example.com", "www.app.example.com"]);
    assert_eq!(app.listens[0].addr, ListenAddr::Port(8080));
    let default = &v.servers[1];
    assert_eq!(default.names, ["_"]);
    assert_eq!(
        default.span.to_string(),
        "/etc/nginx/sites-enabled/default:9"
    );
    let listen_addrs: Vec<&ListenAddr> = default.listens.iter().map(|l| &l.addr).collect();
    assert_eq!(listen_addrs, [&ListenAddr::Port(80), &sock("[::]:80")]);
    assert!(default.listens.iter().all(|l| l.default_server));
    let locations: Vec<(Option<&str>, &str)> = default
        .locations
        .iter()
        .map(|l| (l.modifier.as_deref(), l.path.as_str()))
        .collect();
    assert_eq!(
        locations,
        [(None, "/"), (Some("~"), "\\.php$"), (Some("~"), "/\\.ht")]
    );

    assert_eq!(v.targets.len(), 2);
    let proxy = &v.targets[0];
    assert_eq!(proxy.address, TargetAddress::Group("app_backend".into()));
    assert_eq!(proxy.location.as_deref(), Some("/api/"));
    let peers: Vec<String> = v
        .peers_of(proxy)
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(peers, ["127.0.0.1:8000", "[::1]:8000"]);
    let group = v.group("app_backend").expect("group");
    assert_eq!(group.keepalive, Some(16));
    assert_eq!(group.servers[0].max_fails, 3);
    assert!(group.servers[1].backup);

    let php = &v.targets[1];
    assert_eq!(php.module, PassModule::FastCgi);
    assert_eq!(php.address, unix("/run/php/php8.2-fpm.sock"));
    assert_eq!(php.scheme, "fastcgi");
    assert_eq!(php.server, Some(1));
    assert_eq!(php.location.as_deref(), Some("~ \\.php$"));
    assert_eq!(php.span.to_string(), "/etc/nginx/sites-enabled/default:37");
    assert_eq!(default.locations[1].targets, [1]);

    // The snippet's directives landed inside the PHP location.
    let fastcgi_params = config
        .directives
        .iter()
        .filter(|d| d.name == "http")
        .flat_map(|d| d.block.iter().flatten())
        .filter(|d| d.name == "server")
        .flat_map(|d| d.block.iter().flatten())
        .filter(|d| d.name == "location" && d.args == ["~", "\\.php$"])
        .flat_map(|d| d.block.iter().flatten())
        .filter(|d| d.name == "fastcgi_param")
        .count();
    assert!(
        fastcgi_params > 10,
        "fastcgi.conf was expanded into the location"
    );
}
