//! Scenarios of what the app answers: an early close, a reset, a header too big or invalid,
//! silence past nginx's read timeout, its own 502, closes on reused keep-alive connections,
//! a PHP script that PHP-FPM kills, and a gRPC server that says GOAWAY before answering.

use std::net::SocketAddr;

use crate::LabError;
use crate::config;
use crate::phpfpm::SCRIPT;
use crate::scenario::{Expectation, ScenarioInfo};
use crate::setup::{DEFAULT_GETS, RACE_GAP, Setup, Traffic, app, php_fpm, php_fpm_site, spawn_app};
use crate::upstream::{APP_502_BODY, BIG_HEADER_BYTES, BODY, Behavior, big_header, response};

/// nginx's line when the app closes before a complete header.
const PREMATURE: Option<&str> =
    Some("upstream prematurely closed connection while reading response header from upstream");

/// What an HTTP/2 server draining its connections sends before any stream: an empty SETTINGS
/// frame, then GOAWAY with last stream id 0 (nginx's stream 1 was never processed) and
/// error 0 (NO_ERROR).
const GOAWAY: [u8; 26] = [
    0, 0, 0, 4, 0, 0, 0, 0, 0, // SETTINGS: length 0, type 4, no flags, stream 0
    0, 0, 8, 7, 0, 0, 0, 0, 0, // GOAWAY: length 8, type 7, no flags, stream 0
    0, 0, 0, 0, // last stream id 0
    0, 0, 0, 0, // error code 0
];

pub(super) static SCENARIOS: [ScenarioInfo; 9] = [
    ScenarioInfo::new(
        "closed-early",
        "the app reads the request and closes the connection without answering",
        Expectation::problem("upstream-closed-early", &[]),
        PREMATURE,
        Some(502),
        |listen, _| app(listen, Behavior::CloseEarly),
    ),
    ScenarioInfo::new(
        "reset",
        "the app closes with the request unread, so the kernel resets the connection",
        Expectation::problem("upstream-reset", &[]),
        Some("recv() failed (104: "),
        Some(502),
        |listen, _| app(listen, Behavior::Reset),
    ),
    ScenarioInfo::new(
        "header-too-big",
        "the app answers with 16 KiB of Set-Cookie headers; proxy_buffer_size is 4k",
        Expectation::problem("upstream-header-too-big", &[]),
        Some("upstream sent too big header"),
        Some(502),
        |listen, _| app(listen, Behavior::Answer(big_header().into_bytes())),
    )
    .header_bytes(BIG_HEADER_BYTES),
    ScenarioInfo::new(
        "invalid-header",
        "the app's response has a header value with a NUL byte",
        Expectation::problem("upstream-invalid-response", &[]),
        Some("upstream sent invalid header"),
        Some(502),
        |listen, _| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Lab: bad\0value\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                BODY.len()
            );
            app(listen, Behavior::Answer(head.into_bytes()))
        },
    ),
    ScenarioInfo::new(
        "read-timeout",
        "the app never answers; proxy_read_timeout 1s expires (nginx answers 504)",
        Expectation::problem("upstream-timeout", &[]),
        Some("upstream timed out (110: "),
        Some(504),
        |listen, _| read_timeout(listen),
    ),
    ScenarioInfo::new(
        "upstream-502",
        "the app itself answers 502 Bad Gateway; nginx only relays it",
        Expectation::problem("upstream-returned-502", &[]),
        None,
        Some(502),
        // One request: its access-log line is the whole evidence, whatever nginx timed.
        |listen, _| {
            let answer = response("502 Bad Gateway", APP_502_BODY, false);
            let mut setup = Setup {
                upstream_log: true,
                ..app(listen, Behavior::Answer(answer.into_bytes()))?
            };
            setup.traffic.gets = 1;
            Ok(setup)
        },
    ),
    ScenarioInfo::new(
        "keepalive-race",
        "the app closes kept-alive connections just as nginx reuses them",
        Expectation::problem("upstream-keepalive-race", &[]),
        PREMATURE,
        Some(200),
        |listen, _| keepalive_race(listen),
    ),
    ScenarioInfo::new(
        "php-fpm-killed",
        "PHP-FPM kills a script that runs past request_terminate_timeout (1s)",
        Expectation::problem("upstream-closed-early", &[]),
        // php-fpm closes the HTTP request (or the killed worker dies) with unread input.
        Some("recv() failed (104: "),
        Some(502),
        |listen, dir| {
            let (upstream, fpm) = php_fpm(dir, Some(1))?;
            Ok(Setup {
                traffic: Traffic {
                    gets: 1,
                    ..Traffic::default()
                },
                ..php_fpm_site(listen, dir, upstream, fpm, SCRIPT)
            })
        },
    )
    .php_fpm(),
    ScenarioInfo::new(
        "http2-goaway",
        "grpc_pass to a gRPC server that sends GOAWAY before answering (it is draining)",
        Expectation::problem("upstream-http2-goaway", &[]),
        Some("upstream sent goaway with error 0"),
        Some(502),
        |listen, _| {
            let (addr, responder) = spawn_app(Behavior::Answer(GOAWAY.to_vec()))?;
            Ok(Setup {
                location: vec![format!("grpc_pass grpc://{addr}")],
                responders: vec![responder],
                ..Setup::new(listen, addr.to_string())
            })
        },
    ),
];

/// An app that never answers, and a 1 s `proxy_read_timeout`.
fn read_timeout(listen: SocketAddr) -> Result<Setup, LabError> {
    let mut setup = app(listen, Behavior::Silent)?;
    let target = format!(
        "http://{}",
        setup.expected_upstream.as_deref().unwrap_or_default()
    );
    setup.location = config::proxy_with_read_timeout(&target, "1s");
    setup.traffic.gets = 1;
    Ok(setup)
}

/// nginx keeps idle connections to the app (`keepalive 8`); the app closes a connection as
/// soon as nginx reuses it. A POST at the end is not retried, so it gets a real 502.
fn keepalive_race(listen: SocketAddr) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(Behavior::KeepAliveRace)?;
    Ok(Setup {
        location: vec![
            "proxy_pass \"http://backend\"".to_owned(),
            "proxy_http_version 1.1".to_owned(),
            "proxy_set_header Connection \"\"".to_owned(),
            "proxy_read_timeout 30s".to_owned(),
        ],
        group: vec![addr.to_string()],
        group_extra: vec!["keepalive 8".to_owned()],
        responders: vec![responder],
        traffic: Traffic {
            gets: DEFAULT_GETS,
            gap: RACE_GAP,
            post: true,
            ..Traffic::default()
        },
        ..Setup::new(listen, addr.to_string())
    })
}
