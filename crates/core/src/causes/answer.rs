//! Causes in what the upstream answers once nginx is connected: no answer in time, a reset
//! or an early close, closes on reused keep-alive connections, its own 502, a header too big
//! for the buffer, an invalid answer, another protocol than nginx speaks, TLS that fails, or
//! an HTTP/2 (gRPC) server that says GOAWAY before it answers.

use fix502_nginx::classify::{
    FastCgiKind, Http2Kind, InvalidHeaderKind, Signature, TlsKind, TlsReason,
};
use fix502_probe::connect::ConnectOutcome;

use super::cause::Cause;
use super::context::Context;
use super::entry::{Act, Answered, Entry, Side};

impl Cause {
    /// `upstream-timeout`.
    pub const UPSTREAM_TIMEOUT: Self = Self("upstream-timeout");
    /// `upstream-reset`.
    pub const UPSTREAM_RESET: Self = Self("upstream-reset");
    /// `upstream-closed-early`.
    pub const UPSTREAM_CLOSED_EARLY: Self = Self("upstream-closed-early");
    /// `upstream-keepalive-race`.
    pub const UPSTREAM_KEEPALIVE_RACE: Self = Self("upstream-keepalive-race");
    /// `upstream-returned-502`.
    pub const UPSTREAM_RETURNED_502: Self = Self("upstream-returned-502");
    /// `upstream-header-too-big`.
    pub const UPSTREAM_HEADER_TOO_BIG: Self = Self("upstream-header-too-big");
    /// `upstream-invalid-response`.
    pub const UPSTREAM_INVALID_RESPONSE: Self = Self("upstream-invalid-response");
    /// `upstream-protocol-mismatch`.
    pub const UPSTREAM_PROTOCOL_MISMATCH: Self = Self("upstream-protocol-mismatch");
    /// `upstream-tls`.
    pub const UPSTREAM_TLS: Self = Self("upstream-tls");
    /// `upstream-http2-goaway`.
    pub const UPSTREAM_HTTP2_GOAWAY: Self = Self("upstream-http2-goaway");
}

pub(super) static ENTRIES: [Entry; 10] = [
    Entry::new(
        Cause::UPSTREAM_TIMEOUT,
        "connect or read timed out (nginx answers 504, not 502)",
        Side::Answer,
        |ctx| {
            format!(
                "{} did not answer in time: nginx answers 504 Gateway Timeout, not 502",
                ctx.up()
            )
        },
        |ctx, v| {
            let m = ctx.module();
            v.push(format!("Find what makes the upstream slow; raise {m}_connect_timeout / {m}_read_timeout only if the wait is expected"));
        },
    )
    .status(504)
    .logged(|l| {
        matches!(l.signature, Signature::UpstreamTimedOut { .. })
            .then_some("upstream timeouts (nginx answers 504)")
    })
    .connect(|o, _| *o == ConnectOutcome::TimedOut)
    .answered(&[Answered::TimedOut])
    .acts(&[Act::EditApp])
    // Only nginx's log knows nginx waited its own timeout; a probe's timeout is a hint.
    .confidence(|c, support| if support.log { c } else { c.min(0.5) }),
    Entry::new(
        Cause::UPSTREAM_RESET,
        "the upstream reset the connection (ECONNRESET)",
        Side::Answer,
        |ctx| {
            format!(
                "{}{} resets the connection (ECONNRESET) before answering: the app process was killed or aborted, or a firewall or NAT idle timer sent RST",
                ctx.up(),
                ctx.role()
            )
        },
        app_server_log,
    )
    .logged(|l| match l.signature {
        Signature::Reset => Some("connection resets (104 / broken pipe)"),
        Signature::SendFailed { .. } => Some("failures sending the request"),
        Signature::RecvFailed { .. } => Some("failures reading the response"),
        _ => None,
    })
    .answered(&[Answered::Reset]),
    Entry::new(
        Cause::UPSTREAM_CLOSED_EARLY,
        "the upstream closed the connection before a full response header",
        Side::Answer,
        |ctx| {
            format!(
                "{}{} closes the connection before sending a complete response header: the app crashed, was killed, or its own timeout ended the request",
                ctx.up(),
                ctx.role()
            )
        },
        app_server_log,
    )
    .logged(|l| {
        matches!(l.signature, Signature::PrematureClose)
            .then_some("premature closes before a complete header")
    })
    .answered(&[Answered::ClosedEarly])
    .acts(&[Act::EditApp])
    // A worker killed mid-request (app-server log, OOM) explains the resets nginx saw too.
    .absorbs(&[Cause::UPSTREAM_RESET]),
    Entry::new(
        Cause::UPSTREAM_KEEPALIVE_RACE,
        "sporadic close/reset on reused keep-alive connections",
        Side::Answer,
        |ctx| {
            format!(
                "Sporadic closes or resets from {} on reused keep-alive connections: it closes idle connections sooner than nginx stops reusing them (retried GETs hide it; POSTs get 502)",
                ctx.up()
            )
        },
        |ctx, v| {
            v.push("Set keepalive_timeout in the upstream block below the app's idle keep-alive timeout (gunicorn --keep-alive 2 s, Node keepAliveTimeout 5 s, uvicorn 5 s), or raise the app's timeout above nginx's".to_owned());
            v.push(format!("Then: {}", ctx.reload()));
        },
    )
    // Sporadic failures in the log, a healthy fresh connection, connection reuse on.
    .confidence(|_, _| 0.8),
    Entry::new(
        Cause::UPSTREAM_RETURNED_502,
        "the upstream itself answered 502; nginx only relayed it",
        Side::Answer,
        |ctx| {
            format!(
                "{}{} itself answers 502 Bad Gateway; nginx only relays it, so the fault is behind the upstream",
                ctx.up(),
                ctx.role()
            )
        },
        |ctx, v| {
            v.push(format!("Look behind {}: its own log, and the service it proxies to (another nginx, a load balancer, the app's upstream)", ctx.up()));
            v.push("If nginx caches errors (proxy_cache_valid any / 502), a cached 502 keeps being served: check $upstream_cache_status".to_owned());
        },
    )
    .answered(&[Answered::Status502]),
    Entry::new(
        Cause::UPSTREAM_HEADER_TOO_BIG,
        "the response header does not fit the *_buffer_size",
        Side::Answer,
        |ctx| ctx.measured_at(Cause::UPSTREAM_HEADER_TOO_BIG),
        |_, _| {},
    )
    .acts(&[Act::EditConfig])
    .logged(|l| {
        matches!(l.signature, Signature::HeaderTooBig)
            .then_some("\"upstream sent too big header\" errors")
    })
    .answered(&[Answered::HeaderTooBig]),
    Entry::new(
        Cause::UPSTREAM_INVALID_RESPONSE,
        "the upstream's answer is not valid for the protocol",
        Side::Answer,
        |ctx| ctx.measured_at(Cause::UPSTREAM_INVALID_RESPONSE),
        |ctx, v| {
            v.push(format!("Fetch the raw header and look at the bytes: curl -sv -o /dev/null http://{}/ (or printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc ...)", ctx.up()));
        },
    )
    .logged(|l| match l.signature {
        Signature::InvalidHeader(InvalidHeaderKind::NoValidHttpHeader) => None,
        Signature::InvalidHeader(_) => Some("invalid response headers"),
        Signature::InvalidBody(_) => {
            Some("invalid response bodies (truncated responses, not 502s)")
        }
        Signature::FastCgi(FastCgiKind::UnsupportedVersion(_)) => None,
        Signature::FastCgi(_) => Some("FastCGI protocol errors"),
        Signature::Http2(Http2Kind::TooLargeFrame(_) | Http2Kind::Goaway { .. }) => None,
        Signature::Http2(_) => Some("HTTP/2 (gRPC) protocol errors"),
        _ => None,
    })
    .answered(&[Answered::Invalid]),
    Entry::new(
        Cause::UPSTREAM_PROTOCOL_MISMATCH,
        "nginx speaks the wrong protocol to the upstream",
        Side::Answer,
        |ctx| ctx.measured_at(Cause::UPSTREAM_PROTOCOL_MISMATCH),
        |_, _| {},
    )
    .acts(&[Act::EditConfig])
    .logged(|l| match l.signature {
        Signature::InvalidHeader(InvalidHeaderKind::NoValidHttpHeader) => {
            Some("non-HTTP answers (relayed as HTTP/0.9, access-log status 009)")
        }
        Signature::FastCgi(FastCgiKind::UnsupportedVersion(_)) => Some("FastCGI protocol errors"),
        Signature::Http2(Http2Kind::TooLargeFrame(_)) => Some("HTTP/2 (gRPC) protocol errors"),
        Signature::Tls(
            TlsKind::HandshakeFailed {
                reason: TlsReason::WrongVersionNumber,
            }
            | TlsKind::PrematurelySentResponse,
        ) => Some("TLS errors"),
        _ => None,
    })
    .answered(&[Answered::OtherProtocol])
    // A port that speaks another protocol explains what nginx saw when speaking its own.
    // nginx also times out waiting for an answer in its protocol that never comes.
    .absorbs(&[
        Cause::UPSTREAM_CLOSED_EARLY,
        Cause::UPSTREAM_RESET,
        Cause::UPSTREAM_INVALID_RESPONSE,
        Cause::UPSTREAM_TLS,
        Cause::UPSTREAM_TIMEOUT,
    ]),
    Entry::new(
        Cause::UPSTREAM_TLS,
        "TLS handshake or certificate verification with the upstream fails",
        Side::Answer,
        |ctx| ctx.measured_at(Cause::UPSTREAM_TLS),
        |_, _| {},
    )
    // Only SNI (`proxy_ssl_server_name on`); verification is never weakened.
    .acts(&[Act::EditConfig])
    .logged(|l| match l.signature {
        Signature::Tls(
            TlsKind::HandshakeFailed {
                reason: TlsReason::WrongVersionNumber,
            }
            | TlsKind::PrematurelySentResponse,
        ) => None,
        Signature::Tls(_) => Some("TLS errors"),
        _ => None,
    })
    .answered(&[Answered::TlsFailed]),
    Entry::new(
        Cause::UPSTREAM_HTTP2_GOAWAY,
        "a gRPC/HTTP2 upstream ended the connection with GOAWAY before a full response header",
        Side::Answer,
        |ctx| {
            format!(
                "{}{} ended the HTTP/2 connection with GOAWAY before answering: the gRPC server was shutting down, restarting or draining connections, and nginx answers 502 (it does not retry on GOAWAY by default)",
                ctx.up(),
                ctx.role()
            )
        },
        |ctx, v| {
            v.push(format!("Read the gRPC server's log at the times of the errors: a restart or deploy, a maximum connection age (grpc.max_connection_age), or too many concurrent streams on {}", ctx.up()));
            v.push("With more than one server in the upstream group, let nginx retry elsewhere: grpc_next_upstream error timeout invalid_header; (and non_idempotent only if the calls are safe to repeat)".to_owned());
        },
    )
    .logged(|l| {
        matches!(l.signature, Signature::Http2(Http2Kind::Goaway { .. }))
            .then_some("GOAWAY frames before a response header")
    }),
];

/// Where to look when the app ends requests before answering.
fn app_server_log(_: &Context<'_>, v: &mut Vec<String>) {
    v.push("Read the app server's log at the times of the errors: gunicorn \"WORKER TIMEOUT\", uWSGI \"HARAKIRI\", php-fpm \"execution timed out\" or \"exited on signal\"".to_owned());
    v.push("Check for OOM kills: journalctl -k | grep -i 'killed process'".to_owned());
}
