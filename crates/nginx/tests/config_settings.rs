//! Effective settings per pass target and upstream group (inheritance, array directives,
//! `if` blocks, spans across included files), nginx's size and time syntaxes, and the
//! version-aware defaults.

use std::path::Path;
use std::time::Duration;

use fix502_nginx::config::Config;
use fix502_nginx::dump::{DumpSource, DumpedFile};
use fix502_nginx::settings::{
    Settings, buffer_size_directive, default_of, directive_prefix, keepalive_blockers,
    next_upstream_directive, parse_size, parse_time, timeout_directive, upstream_default_of,
};
use fix502_nginx::view::{ConfigView, PassModule, PassTarget};

/// The view of `files` (path, content); the first is the main file.
fn view_of(files: &[(&str, &str)]) -> ConfigView {
    let source = DumpSource::from_files(
        files
            .iter()
            .map(|(path, content)| DumpedFile {
                path: (*path).into(),
                content: (*content).to_string(),
            })
            .collect(),
    );
    let main = Path::new(files[0].0);
    let config = Config::load_from(main, &source).expect("load");
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    ConfigView::new(&config)
}

fn view(text: &str) -> ConfigView {
    view_of(&[("/etc/nginx/nginx.conf", text)])
}

/// The target whose argument is `raw`.
fn target<'a>(v: &'a ConfigView, raw: &str) -> &'a PassTarget {
    v.targets
        .iter()
        .find(|t| t.raw == raw)
        .unwrap_or_else(|| panic!("no target {raw}"))
}

/// The first argument of the effective `name`.
fn value<'a>(settings: &'a Settings, name: &str) -> Option<&'a str> {
    settings
        .get(name)
        .and_then(|s| s.args.first())
        .map(String::as_str)
}

/// Every effective `name` as "arg1 arg2".
fn values(settings: &Settings, name: &str) -> Vec<String> {
    settings
        .all(name)
        .iter()
        .map(|s| s.args.join(" "))
        .collect()
}

const NESTED: &str = r"
http {
    proxy_read_timeout 30s;
    proxy_connect_timeout 5s;
    server {
        listen 80;
        proxy_read_timeout 10s;
        location / {
            proxy_pass http://127.0.0.1:8001;
        }
        location /api/ {
            proxy_buffer_size 16k;
            proxy_pass http://127.0.0.1:8002;
            location /api/slow/ {
                proxy_read_timeout 300s;
                proxy_pass http://127.0.0.1:8003;
            }
        }
    }
    server {
        listen 81;
        location / {
            proxy_pass http://127.0.0.1:8004;
        }
    }
}
";

#[test]
fn innermost_level_wins() {
    let v = view(NESTED);
    let root = &target(&v, "http://127.0.0.1:8001").settings;
    assert_eq!(value(root, "proxy_read_timeout"), Some("10s")); // from the server
    assert_eq!(value(root, "proxy_connect_timeout"), Some("5s")); // from http
    assert_eq!(value(root, "proxy_buffer_size"), None); // only in a sibling location
    let api = &target(&v, "http://127.0.0.1:8002").settings;
    assert_eq!(value(api, "proxy_read_timeout"), Some("10s"));
    assert_eq!(value(api, "proxy_buffer_size"), Some("16k"));
    let slow = &target(&v, "http://127.0.0.1:8003").settings;
    assert_eq!(value(slow, "proxy_read_timeout"), Some("300s")); // nested override
    assert_eq!(value(slow, "proxy_buffer_size"), Some("16k")); // from the outer location
    assert_eq!(value(slow, "proxy_connect_timeout"), Some("5s"));
    let other = &target(&v, "http://127.0.0.1:8004").settings;
    assert_eq!(value(other, "proxy_read_timeout"), Some("30s")); // the other server: http's
    // Where the effective value is written.
    let span = &slow.get("proxy_read_timeout").unwrap().span;
    assert_eq!(span.line, 15);
    assert_eq!(
        other.get("proxy_read_timeout").unwrap().span.line,
        3,
        "from http"
    );
}

#[test]
fn array_directives_come_whole_from_the_innermost_level_that_has_any() {
    let v = view(
        r#"
http {
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    add_header X-Frame-Options DENY;
    server {
        location / {
            proxy_set_header X-Request-Id $request_id;
            proxy_pass http://127.0.0.1:8001;
        }
        location /plain/ {
            proxy_pass http://127.0.0.1:8002;
        }
    }
}
"#,
    );
    let own = &target(&v, "http://127.0.0.1:8001").settings;
    assert_eq!(
        values(own, "proxy_set_header"),
        ["X-Request-Id $request_id"]
    );
    assert_eq!(values(own, "add_header"), ["X-Frame-Options DENY"]);
    let inherited = &target(&v, "http://127.0.0.1:8002").settings;
    assert_eq!(
        values(inherited, "proxy_set_header"),
        ["Host $host", "X-Real-IP $remote_addr"]
    );
    // `get` on an array directive is its last effective entry.
    assert_eq!(
        inherited.get("proxy_set_header").map(|s| s.args.join(" ")),
        Some("X-Real-IP $remote_addr".into())
    );
    assert!(inherited.all("fastcgi_param").is_empty());
}

#[test]
fn fastcgi_params_from_an_include_keep_their_files_and_lines() {
    let v = view_of(&[
        (
            "/etc/nginx/nginx.conf",
            "http {\n    include /etc/nginx/sites-enabled/*;\n}\n",
        ),
        (
            "/etc/nginx/sites-enabled/php",
            "server {\n    listen 80;\n    location ~ \\.php$ {\n        include fastcgi_params;\n        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n        fastcgi_read_timeout 120;\n        fastcgi_pass unix:/run/php/php8.2-fpm.sock;\n    }\n}\n",
        ),
        (
            "/etc/nginx/fastcgi_params",
            "fastcgi_param QUERY_STRING $query_string;\nfastcgi_param REQUEST_METHOD $request_method;\n",
        ),
    ]);
    let t = target(&v, "unix:/run/php/php8.2-fpm.sock");
    let params = t.settings.all("fastcgi_param");
    let placed: Vec<(String, String)> = params
        .iter()
        .map(|s| {
            (
                s.args.first().cloned().unwrap_or_default(),
                s.span.to_string(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            ("QUERY_STRING".into(), "/etc/nginx/fastcgi_params:1".into()),
            (
                "REQUEST_METHOD".into(),
                "/etc/nginx/fastcgi_params:2".into()
            ),
            (
                "SCRIPT_FILENAME".into(),
                "/etc/nginx/sites-enabled/php:5".into()
            ),
        ]
    );
    let timeout = t.settings.get("fastcgi_read_timeout").unwrap();
    assert_eq!(timeout.span.to_string(), "/etc/nginx/sites-enabled/php:6");
    assert_eq!(
        timeout.to_string(),
        "fastcgi_read_timeout 120",
        "Display is `name args`"
    );
    assert_eq!(parse_time(&timeout.args[0]), Some(Duration::from_secs(120)));
}

#[test]
fn if_blocks_are_ignored_except_for_a_pass_inside_them() {
    let v = view(
        r"
http {
    server {
        location / {
            proxy_read_timeout 20s;
            if ($arg_slow) {
                proxy_read_timeout 600s;
                proxy_pass http://127.0.0.1:8002;
            }
            proxy_pass http://127.0.0.1:8001;
        }
        location /x/ {
            if ($http_x) {
                proxy_connect_timeout 1s;
            }
            proxy_pass http://127.0.0.1:8003;
        }
    }
}
",
    );
    let plain = &target(&v, "http://127.0.0.1:8001").settings;
    assert_eq!(value(plain, "proxy_read_timeout"), Some("20s"));
    let inside = &target(&v, "http://127.0.0.1:8002").settings;
    assert_eq!(value(inside, "proxy_read_timeout"), Some("600s"));
    let x = &target(&v, "http://127.0.0.1:8003").settings;
    assert_eq!(value(x, "proxy_connect_timeout"), None);
    // limit_except works like if.
    let v = view(
        "http { server { location / { proxy_send_timeout 9s; limit_except GET { proxy_send_timeout 99s; proxy_pass http://127.0.0.1:1; } proxy_pass http://127.0.0.1:2; } } }",
    );
    assert_eq!(
        value(
            &target(&v, "http://127.0.0.1:1").settings,
            "proxy_send_timeout"
        ),
        Some("99s")
    );
    assert_eq!(
        value(
            &target(&v, "http://127.0.0.1:2").settings,
            "proxy_send_timeout"
        ),
        Some("9s")
    );
}

#[test]
fn shared_settings_and_non_inherited_directives() {
    let v = view(
        r"
http {
    allow 10.0.0.0/8;
    deny all;
    root /srv/www;
    server {
        return 301 https://example.com;
        location / {
            deny 192.0.2.1;
            alias /srv/other/;
            proxy_pass http://127.0.0.1:8001;
        }
        location /b/ {
            proxy_pass http://127.0.0.1:8002;
        }
    }
}
",
    );
    let a = &target(&v, "http://127.0.0.1:8001").settings;
    // allow/deny are one list: the location's `deny` replaces all of http's rules.
    let rules: Vec<String> = a.all("allow").iter().map(ToString::to_string).collect();
    assert_eq!(rules, ["deny 192.0.2.1"]);
    assert_eq!(a.all("deny").len(), 1);
    // alias replaces the inherited root.
    assert_eq!(a.get("root").map(|s| s.name.as_str()), Some("alias"));
    // The server's `return` and the pass directives are not inherited.
    assert!(a.get("return").is_none());
    assert_eq!(
        a.get("proxy_pass").map(|s| s.args[0].as_str()),
        Some("http://127.0.0.1:8001")
    );
    let b = &target(&v, "http://127.0.0.1:8002").settings;
    let rules: Vec<String> = b.all("deny").iter().map(ToString::to_string).collect();
    assert_eq!(rules, ["allow 10.0.0.0/8", "deny all"]);
    assert_eq!(value(b, "root"), Some("/srv/www"));
    // iter(): each effective entry once, outer levels first, overridden ones left out.
    let names: Vec<String> = b.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "allow 10.0.0.0/8",
            "deny all",
            "root /srv/www",
            "proxy_pass http://127.0.0.1:8002"
        ]
    );
    assert!(!b.is_empty());
    assert!(Settings::default().is_empty());
    assert!(Settings::default().get("root").is_none());
}

#[test]
fn upstream_groups_carry_their_own_directives() {
    let v = view(
        r"
http {
    keepalive_timeout 65;
    upstream app {
        zone app 64k;
        server 127.0.0.1:8001 max_fails=3;
        keepalive 16;
        keepalive_timeout 4s;
        server 127.0.0.1:8002;
    }
    server { location / { proxy_pass http://app; } }
}
",
    );
    let g = v.group("app").unwrap();
    assert_eq!(g.keepalive, Some(16));
    assert_eq!(value(&g.settings, "keepalive_timeout"), Some("4s"));
    assert_eq!(value(&g.settings, "zone"), Some("app"));
    assert!(g.settings.get("server").is_none());
    assert_eq!(g.settings.iter().count(), 3);
    // The http-level keepalive_timeout (client side) is not the group's.
    let t = target(&v, "http://app");
    assert_eq!(value(&t.settings, "keepalive_timeout"), Some("65"));
}

#[test]
fn sizes() {
    for (text, bytes) in [
        ("4096", 4096),
        ("4k", 4096),
        ("8K", 8192),
        ("1m", 1 << 20),
        ("1M", 1 << 20),
        ("1g", 1 << 30),
        ("0", 0),
        ("007k", 7 * 1024),
    ] {
        assert_eq!(parse_size(text), Some(bytes), "{text}");
    }
    for text in [
        "",
        "k",
        "-1",
        "+4k",
        "4 k",
        "4kb",
        "1.5m",
        "4t",
        " 4k",
        "99999999999999999999",
        "9223372036854775807k",
    ] {
        assert_eq!(parse_size(text), None, "{text:?}");
    }
    assert_eq!(
        parse_size("9223372036854775807"),
        Some(9_223_372_036_854_775_807)
    );
}

#[test]
fn times() {
    let s = Duration::from_secs;
    for (text, duration) in [
        ("60", s(60)),
        ("60s", s(60)),
        ("1m", s(60)),
        ("500ms", Duration::from_millis(500)),
        ("1h 30m", s(5400)),
        ("1h30m", s(5400)),
        ("1m30s", s(90)),
        ("1d", s(86_400)),
        ("2w", s(14 * 86_400)),
        ("1s 500ms", Duration::from_millis(1500)),
        ("1h  5", s(3605)), // a bare number after units is seconds
        ("0", s(0)),
    ] {
        assert_eq!(parse_time(text), Some(duration), "{text}");
    }
    for text in [
        "",
        "s",
        "ms",
        "1x",
        "1y",
        "1M",
        "1s1m",
        "1m1m",
        "1ms1s",
        "-1s",
        "1.5s",
        "5 s",
        "99999999999999999999",
        "106751991167301d", // overflows i64 milliseconds
    ] {
        assert_eq!(parse_time(text), None, "{text:?}");
    }
}

#[test]
fn defaults_by_version() {
    let v = |major, minor, patch| Some((major, minor, patch));
    assert_eq!(default_of("proxy_http_version", v(1, 22, 1)), Some("1.0"));
    assert_eq!(default_of("proxy_http_version", v(1, 29, 6)), Some("1.0"));
    assert_eq!(default_of("proxy_http_version", v(1, 29, 7)), Some("1.1"));
    assert_eq!(default_of("proxy_http_version", None), Some("1.1"));
    let tls = |version| default_of("proxy_ssl_protocols", version);
    assert_eq!(tls(v(1, 22, 1)), Some("TLSv1 TLSv1.1 TLSv1.2"));
    assert_eq!(tls(v(1, 23, 3)), Some("TLSv1 TLSv1.1 TLSv1.2"));
    assert_eq!(tls(v(1, 23, 4)), Some("TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"));
    assert_eq!(tls(v(1, 27, 2)), Some("TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"));
    assert_eq!(tls(v(1, 27, 3)), Some("TLSv1.2 TLSv1.3"));
    assert_eq!(tls(None), Some("TLSv1.2 TLSv1.3"));
    assert_eq!(
        default_of("grpc_ssl_protocols", v(1, 24, 0)),
        Some("TLSv1 TLSv1.1 TLSv1.2 TLSv1.3")
    );
    for module in PassModule::ALL {
        for which in ["connect", "send", "read"] {
            let name = timeout_directive(module, which);
            assert_eq!(default_of(name, None), Some("60s"), "{name}");
        }
        let next = next_upstream_directive(module);
        assert_eq!(default_of(next, None), Some("error timeout"), "{next}");
        let tries = format!("{}_next_upstream_tries", directive_prefix(module));
        assert_eq!(default_of(&tries, None), Some("0"));
        // One memory page: the caller knows it.
        assert_eq!(default_of(buffer_size_directive(module), None), None);
    }
    for (name, default) in [
        ("proxy_ssl_server_name", "off"),
        ("proxy_ssl_verify", "off"),
        ("proxy_ssl_verify_depth", "1"),
        ("proxy_ssl_name", "$proxy_host"),
        ("proxy_intercept_errors", "off"),
        ("fastcgi_intercept_errors", "off"),
        ("fastcgi_keep_conn", "off"),
        ("proxy_buffering", "on"),
        ("keepalive_timeout", "75s"),
    ] {
        assert_eq!(default_of(name, v(1, 22, 1)), Some(default), "{name}");
    }
    for name in [
        "fastcgi_ssl_verify",
        "proxy_keep_conn",
        "memcached_intercept_errors",
        "proxy_nonsense",
        "nonsense",
        "proxy_buffer_size",
    ] {
        assert_eq!(default_of(name, None), None, "{name}");
    }
    assert_eq!(default_of("keepalive_requests", v(1, 19, 9)), Some("100"));
    assert_eq!(default_of("keepalive_requests", v(1, 19, 10)), Some("1000"));
}

#[test]
fn upstream_block_defaults() {
    let v = |major, minor, patch| Some((major, minor, patch));
    assert_eq!(upstream_default_of("keepalive_timeout", None), Some("60s"));
    assert_eq!(
        upstream_default_of("keepalive_requests", v(1, 18, 0)),
        Some("100")
    );
    assert_eq!(
        upstream_default_of("keepalive_requests", v(1, 22, 1)),
        Some("1000")
    );
    assert_eq!(upstream_default_of("keepalive_time", None), Some("1h"));
    assert_eq!(upstream_default_of("keepalive", v(1, 22, 1)), None);
    assert_eq!(upstream_default_of("keepalive", v(1, 29, 7)), Some("32"));
    assert_eq!(upstream_default_of("zone", None), None);
}

#[test]
fn module_directive_names() {
    assert_eq!(
        buffer_size_directive(PassModule::FastCgi),
        "fastcgi_buffer_size"
    );
    assert_eq!(
        buffer_size_directive(PassModule::Proxy),
        "proxy_buffer_size"
    );
    assert_eq!(
        timeout_directive(PassModule::Grpc, "read"),
        "grpc_read_timeout"
    );
    assert_eq!(
        timeout_directive(PassModule::Uwsgi, "connect"),
        "uwsgi_connect_timeout"
    );
    assert_eq!(
        next_upstream_directive(PassModule::Scgi),
        "scgi_next_upstream"
    );
    for module in PassModule::ALL {
        let prefix = directive_prefix(module);
        assert_eq!(
            module.directive(),
            format!("{prefix}_pass"),
            "the prefix matches the pass directive"
        );
        assert!(buffer_size_directive(module).starts_with(prefix));
    }
}

#[test]
fn deep_nesting_stays_cheap() {
    // 90 nested locations, each with a setting: every target sees the innermost one.
    let depth = 90;
    let mut text = String::from("http { server {\n");
    for i in 0..depth {
        text += &format!(
            "location /{i}/ {{ proxy_read_timeout {i}s; proxy_pass http://127.0.0.1:{};\n",
            1000 + i
        );
    }
    text += &"}\n".repeat(depth);
    text += "} }\n";
    let v = view(&text);
    assert_eq!(v.targets.len(), depth);
    for (i, t) in v.targets.iter().enumerate() {
        assert_eq!(
            value(&t.settings, "proxy_read_timeout"),
            Some(format!("{i}s").as_str())
        );
        assert_eq!(t.settings.iter().count(), 2); // the timeout and its own proxy_pass
    }
}

#[test]
fn keepalive_reuse_needs_http11_and_no_connection_close_before_1_29_7() {
    let view = view_of(&[(
        "/etc/nginx/nginx.conf",
        "http { upstream b { server 127.0.0.1:1; keepalive 8; }
           server {
             location /old { proxy_pass http://b; }
             location /ok { proxy_pass http://b; proxy_http_version 1.1;
                            proxy_set_header Connection \"\"; }
             location /close { proxy_pass http://b; proxy_http_version 1.1;
                               proxy_set_header Connection close; }
             location /php { fastcgi_pass b; }
             location /u { uwsgi_pass b; } } }",
    )]);
    let blockers = |i: usize, version| {
        let t = &view.targets[i];
        keepalive_blockers(t.module, &t.settings, version)
            .map(|b| b.iter().map(|b| b.directive).collect::<Vec<_>>())
    };
    let old = Some((1, 22, 1));
    assert_eq!(
        blockers(0, old),
        Some(vec![
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";"
        ])
    );
    assert_eq!(blockers(0, Some((1, 29, 7))), Some(vec![]));
    assert_eq!(blockers(1, old), Some(vec![]));
    assert_eq!(
        blockers(2, Some((1, 29, 7))),
        Some(vec!["proxy_set_header Connection \"\";"])
    );
    assert_eq!(blockers(3, old), Some(vec!["fastcgi_keep_conn on;"]));
    assert_eq!(blockers(4, old), None);
    let close = &view.targets[2];
    let b = keepalive_blockers(close.module, &close.settings, old).unwrap();
    assert_eq!(b[0].setting.as_ref().map(|s| s.span.line), Some(7));
}
