//! Step 2, continued: what the reachable upstreams answer. Each check turns the exchanges of
//! [`Facts::exchanges`](crate::facts::Facts::exchanges) into findings: the response header
//! judged as nginx judges it (size against `*_buffer_size`, validity, early close, reset,
//! silence against `*_read_timeout`), the TLS handshake and certificate, and which protocol
//! the port really speaks when it is not the one nginx talks.

use std::fmt::Write as _;

use fix502_nginx::view::PassModule;
use fix502_probe::fastcgi::FcgiProbe;
use fix502_probe::gateway::{GatewayOutcome, GatewayProbe};
use fix502_probe::http::{HttpOutcome, HttpProbe, InvalidResponse};
use fix502_probe::sniff::{Protocol, SniffReport};
use fix502_probe::tls::{TlsOutcome, TlsProbe, Verification};

use crate::causes::{self, Answered};
use crate::check::{FindingsFuture, FnCheck};
use crate::exchange::{Answer, Exchange};
use crate::facts::{Endpoint, Facts};
use crate::report::{CheckId, Evidence, Finding, Severity, StepId};

/// Check id: the response (HTTP, FastCGI, uwsgi, SCGI) of every reachable upstream.
pub const RESPONSE: CheckId = CheckId::new("upstream.response", StepId::Upstream, Evidence::Live);
/// Check id: the TLS handshake and certificate of `https://` upstreams.
pub const TLS: CheckId = CheckId::new("upstream.tls", StepId::Upstream, Evidence::Live);

/// The checks of this part of the step.
pub static CHECKS: [FnCheck; 2] = [FnCheck::new(RESPONSE, response), FnCheck::new(TLS, tls)];

/// A finding about a live answer names the cause the table maps that answer to.
trait AnsweredFinding {
    /// Sets the cause of `answered` ([`causes::of_answer`]).
    fn answered(self, answered: Answered) -> Self;
}

impl AnsweredFinding for Finding {
    fn answered(mut self, answered: Answered) -> Self {
        self.cause = causes::of_answer(answered);
        self
    }
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Printable bytes with everything else as `\xHH`, at most `max` bytes.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

/// The size in the unit an operator writes: `16384 bytes (16k)`.
fn size(n: u64) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{n} bytes ({}k)", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// The buffer size to set for a header of `bytes`: the next power of two with room to spare,
/// at least 8k.
pub fn suggested_buffer(bytes: u64) -> u64 {
    (bytes + bytes / 4).next_power_of_two().max(8 * 1024)
}

/// The directives that let a `bytes`-byte header through, valid together under `nginx -t`
/// (`*_busy_buffers_size` must stay below all `*_buffers` minus one).
pub fn buffer_fix(module: PassModule, bytes: u64) -> String {
    buffer_directives(module, bytes).join(" ")
}

/// [`buffer_fix`] one directive each (`proxy_buffer_size 32k;`), as the restart step writes
/// them into the config.
pub fn buffer_directives(module: PassModule, bytes: u64) -> Vec<String> {
    let p = fix502_nginx::settings::directive_prefix(module);
    let k = suggested_buffer(bytes) / 1024;
    if module == PassModule::Grpc {
        return vec![format!("{p}_buffer_size {k}k;")];
    }
    vec![
        format!("{p}_buffer_size {k}k;"),
        format!("{p}_buffers 8 {k}k;"),
        format!("{p}_busy_buffers_size {}k;", 2 * k),
    ]
}

/// The pass directive nginx should use for a port that speaks `protocol`.
fn directive_for(protocol: Protocol, exchange: &Exchange, addr: &str) -> String {
    match protocol {
        Protocol::Http1 => format!("proxy_pass http://{addr};"),
        Protocol::Tls if exchange.module == PassModule::Grpc => {
            format!("grpc_pass grpcs://{addr};")
        }
        Protocol::Tls => {
            format!("proxy_pass https://{addr}; (and proxy_ssl_server_name on; if it needs SNI)")
        }
        Protocol::FastCgi => format!(
            "fastcgi_pass {addr}; with include fastcgi_params; and fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;"
        ),
        Protocol::Http2 => format!("grpc_pass grpc://{addr}; (an h2c/gRPC server)"),
        _ => format!(
            "nothing: {} is not a web application server; point nginx at the right port",
            protocol.name()
        ),
    }
}

/// What nginx speaks for this exchange, in words.
fn speaks(exchange: &Exchange) -> &'static str {
    match (exchange.module, exchange.scheme.as_str()) {
        (PassModule::Proxy, "https") => "TLS",
        (PassModule::Proxy, _) => "HTTP",
        (PassModule::FastCgi, _) => "FastCGI",
        (PassModule::Uwsgi, _) => "uwsgi",
        (PassModule::Scgi, _) => "SCGI",
        (PassModule::Grpc, "grpcs") => "gRPC over TLS",
        (PassModule::Grpc, _) => "gRPC (HTTP/2 cleartext)",
        _ => "its protocol",
    }
}

/// A protocol mismatch finding, when the sniff found a protocol other than the one nginx speaks.
fn mismatch(exchange: &Exchange, endpoint: &Endpoint, check: CheckId) -> Option<Finding> {
    let sniff: &SniffReport = exchange.sniff.as_ref()?;
    let found = sniff.speaks?;
    let expected = match (exchange.module, exchange.scheme.as_str()) {
        (PassModule::Proxy, "https") | (PassModule::Grpc, "grpcs") => Protocol::Tls,
        (PassModule::Proxy, _) | (PassModule::Uwsgi, _) | (PassModule::Scgi, _) => Protocol::Http1,
        (PassModule::FastCgi, _) => Protocol::FastCgi,
        (PassModule::Grpc, _) => Protocol::Http2,
        _ => return None,
    };
    if found == expected {
        return None;
    }
    let up = &endpoint.display;
    let mut f = Finding::new(
        check,
        Severity::Error,
        format!(
            "{up} speaks {}, but nginx speaks {} to it (`{}`)",
            found.name(),
            speaks(exchange),
            exchange.directive
        ),
    )
    .answered(Answered::OtherProtocol)
    .upstream(&endpoint.peer)
    .at(Some(exchange.at.clone()))
    .fix(format!(
        "Use {} at {} instead of `{}`",
        directive_for(found, exchange, up.trim_start_matches("unix:").trim()),
        exchange.at,
        exchange.directive
    ));
    for a in &sniff.tried {
        if !a.reply.is_empty() || a.identified.is_some() {
            f = f.evidence(format!(
                "sent {} → got \"{}\"{}",
                a.sent,
                escape(&a.reply, 48),
                a.identified
                    .map(|p| format!(" ({})", p.name()))
                    .unwrap_or_default()
            ));
        }
    }
    Some(f)
}

fn base(
    check: CheckId,
    severity: Severity,
    endpoint: &Endpoint,
    exchange: &Exchange,
    msg: String,
) -> Finding {
    Finding::new(check, severity, msg)
        .upstream(&endpoint.peer)
        .at(Some(exchange.at.clone()))
        .evidence(format!("sent: {}", exchange.sent))
}

fn response(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        for (endpoint, exchange) in facts.endpoints.iter().zip(facts.exchanges().await) {
            let Some(exchange) = exchange else { continue };
            if let Some(f) = mismatch(exchange, endpoint, RESPONSE) {
                out.push(f);
                continue;
            }
            match &exchange.answer {
                Answer::Http(p) => {
                    out.extend(http_findings(p, endpoint, exchange, facts.nginx_version()))
                }
                Answer::FastCgi {
                    values,
                    request,
                    page,
                } => {
                    out.extend(fastcgi_findings(
                        values,
                        request.as_ref(),
                        page.as_deref(),
                        endpoint,
                        exchange,
                    ));
                }
                Answer::Gateway(p) => out.extend(gateway_finding(p, &[], None, endpoint, exchange)),
                Answer::Grpc => out.push(base(
                    RESPONSE,
                    Severity::Info,
                    endpoint,
                    exchange,
                    format!("{} speaks HTTP/2 as gRPC needs", endpoint.display),
                )),
                Answer::Tls { .. } => {}
            }
        }
        out
    })
}

/// The "header too big" finding, when `bytes` exceed the buffer.
fn header_too_big(
    bytes: u64,
    endpoint: &Endpoint,
    exchange: &Exchange,
    check: CheckId,
) -> Option<Finding> {
    let limit = &exchange.buffer;
    if bytes <= limit.value {
        return None;
    }
    let set_at = match &limit.at {
        Some(at) => format!("{} {} at {at}", limit.directive, limit.written),
        None => format!("{} is not set: {}", limit.directive, limit.written),
    };
    let fix = buffer_fix(exchange.module, bytes);
    Some(
        base(
            check,
            Severity::Error,
            endpoint,
            exchange,
            format!(
                "{} sends a {} response header, more than the {} buffer ({set_at}): nginx logs \"upstream sent too big header\" and answers 502",
                endpoint.display,
                size(bytes),
                size(limit.value)
            ),
        )
        .answered(Answered::HeaderTooBig)
        .evidence(format!("measured header block: {bytes} bytes (status line, headers and the empty line)"))
        .fix(format!(
            "Set `{fix}` in the block of `{}` ({}), then reload; or make the app send smaller headers (cookies, CSP)",
            exchange.directive,
            limit.at.as_ref().unwrap_or(&exchange.at)
        )),
    )
}

/// The upstream sent no complete header within the probe's time. Only a probe that waited
/// as long as nginx does (its `*_read_timeout`) saw what nginx sees, a 504; one that gave up
/// sooner only knows the app is slow so far, and claims no cause (nginx's log may).
fn no_header_in_time(
    endpoint: &Endpoint,
    exchange: &Exchange,
    elapsed: std::time::Duration,
) -> Finding {
    let limit = &exchange.read_timeout;
    let nginx_waits = format!(
        "{} {}{}",
        limit.directive,
        limit.written,
        limit
            .at
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    );
    waited_like_nginx(
        base(
            RESPONSE,
            Severity::Warning,
            endpoint,
            exchange,
            String::new(),
        ),
        &endpoint.display,
        "sent no complete header",
        elapsed,
        limit.value,
        &nginx_waits,
    )
}

/// A probe that heard nothing (`what`) within `elapsed`: a timeout claim when the probe
/// waited as long as nginx (`nginx_limit`), else "no answer within N s (nginx waits M)".
fn waited_like_nginx(
    f: Finding,
    up: &str,
    what: &str,
    elapsed: std::time::Duration,
    nginx_limit: std::time::Duration,
    nginx_waits: &str,
) -> Finding {
    let mut f = f;
    let waited = elapsed.as_secs_f64();
    if elapsed >= nginx_limit {
        f.message = format!(
            "{up} {what} within the probe's {waited:.1} s; nginx waits only {nginx_waits}, so it answers 504"
        );
        f.answered(Answered::TimedOut)
    } else {
        f.message = format!(
            "{up} {what} within the probe's {waited:.1} s; nginx waits {nginx_waits}, so this is slow so far, not yet a timeout of nginx's"
        );
        f
    }
}

fn http_findings(
    p: &HttpProbe,
    endpoint: &Endpoint,
    exchange: &Exchange,
    version: Option<(u32, u32, u32)>,
) -> Vec<Finding> {
    let up = &endpoint.display;
    // Rules newer than the running nginx do not apply to it.
    if let HttpOutcome::Invalid(invalid) = &p.outcome
        && let (Some(since), Some(running)) = (invalid.nginx_since(), version)
        && (u32::from(since.0), u32::from(since.1), u32::from(since.2)) > running
    {
        return vec![base(
            RESPONSE,
            Severity::Warning,
            endpoint,
            exchange,
            format!(
                "{up} answers a response that nginx {}.{}.{} and later reject ({invalid}); this nginx still accepts it, an upgrade would turn it into 502s",
                since.0, since.1, since.2
            ),
        )];
    }
    let head = |f: Finding| {
        if p.head.is_empty() {
            f
        } else {
            f.evidence(format!("received: \"{}\"", escape(&p.head, 160)))
        }
    };
    let f = match &p.outcome {
        HttpOutcome::Response => {
            if let Some(f) = header_too_big(p.header_bytes as u64, endpoint, exchange, RESPONSE) {
                return vec![f];
            }
            let status = p.status.unwrap_or(0);
            if status == 502 {
                let mut f = base(
                    RESPONSE,
                    Severity::Error,
                    endpoint,
                    exchange,
                    format!(
                        "{up} itself answers 502 Bad Gateway{}: nginx only relays it",
                        p.server
                            .as_ref()
                            .map(|s| format!(" (Server: {s})"))
                            .unwrap_or_default()
                    ),
                )
                .answered(Answered::Status502);
                let body = String::from_utf8_lossy(&p.body_sample);
                if body.contains("<center>nginx") {
                    f = f.evidence("the body is an nginx error page: another nginx or proxy behind this one answers 502 (look at its error log)");
                }
                head(f)
            } else {
                base(
                    RESPONSE,
                    Severity::Info,
                    endpoint,
                    exchange,
                    format!(
                        "{up} answers {status} (header {}, first byte after {}; limits: {} {}, {} {})",
                        size(p.header_bytes as u64),
                        p.first_byte.map(ms).unwrap_or_default(),
                        exchange.buffer.directive,
                        size(exchange.buffer.value),
                        exchange.read_timeout.directive,
                        exchange.read_timeout.written
                    ),
                )
            }
        }
        HttpOutcome::ConnectFailed(o) => base(
            RESPONSE,
            Severity::Warning,
            endpoint,
            exchange,
            format!("{up}: the connection for the HTTP probe failed: {o}"),
        ),
        HttpOutcome::ClosedEarly => head(
            base(
                RESPONSE,
                Severity::Error,
                endpoint,
                exchange,
                format!(
                    "{up} closed the connection after {} without a complete response header: nginx logs \"upstream prematurely closed connection\" and answers 502",
                    size(p.header_bytes as u64)
                ),
            )
            .answered(Answered::ClosedEarly),
        ),
        HttpOutcome::Reset => head(
            base(
                RESPONSE,
                Severity::Error,
                endpoint,
                exchange,
                format!("{up} reset the connection (RST) before a complete response header: nginx logs \"recv() failed (104: ...)\" and answers 502"),
            )
            .answered(Answered::Reset),
        ),
        HttpOutcome::TimedOut => head(no_header_in_time(endpoint, exchange, p.elapsed)),
        HttpOutcome::HeaderTooBig => {
            return header_too_big(p.header_bytes as u64, endpoint, exchange, RESPONSE)
                .into_iter()
                .collect();
        }
        HttpOutcome::Invalid(invalid) => {
            let mut f = head(
                base(
                    RESPONSE,
                    Severity::Error,
                    endpoint,
                    exchange,
                    format!("{up} answers an invalid HTTP response: {invalid}"),
                )
                .answered(Answered::Invalid),
            );
            f = f.evidence(match invalid {
                InvalidResponse::NotHttp { .. } => "nginx logs \"upstream sent no valid HTTP/1.0 header\" and relays the raw bytes as an HTTP/0.9 answer (access log status 009)".to_owned(),
                InvalidResponse::InvalidHeader { .. } => "nginx logs \"upstream sent invalid header\" and answers 502".to_owned(),
                _ => "nginx (1.23.0 and later) rejects this header and answers 502".to_owned(),
            });
            f.fix("Fix the application's response headers (see the byte and offset above)".to_owned())
        }
        HttpOutcome::ReadError { message, .. } => base(
            RESPONSE,
            Severity::Warning,
            endpoint,
            exchange,
            format!("{up}: reading the response failed: {message}"),
        ),
        _ => return Vec::new(),
    };
    vec![f]
}

/// The first bytes received, as evidence, when there were any.
fn received(f: Finding, head: &[u8]) -> Finding {
    if head.is_empty() {
        f
    } else {
        f.evidence(format!("received: \"{}\"", escape(head, 64)))
    }
}

/// FastCGI: the management record (`FCGI_GET_VALUES`), then the request, when it was sent.
fn fastcgi_findings(
    values: &FcgiProbe,
    request: Option<&FcgiProbe>,
    page: Option<&str>,
    endpoint: &Endpoint,
    exchange: &Exchange,
) -> Vec<Finding> {
    let up = &endpoint.display;
    let mut out = Vec::new();
    let outcome = &values.gateway.outcome;
    match outcome {
        GatewayOutcome::Values => out.push(base(
            RESPONSE,
            Severity::Info,
            endpoint,
            exchange,
            format!(
                "{up} speaks FastCGI{}",
                values
                    .values
                    .as_ref()
                    .and_then(|v| v.max_conns)
                    .map(|n| format!(" (FCGI_MAX_CONNS {n})"))
                    .unwrap_or_default()
            ),
        )),
        GatewayOutcome::NotFastCgi { version } => out.push(received(
            base(
                RESPONSE,
                Severity::Error,
                endpoint,
                exchange,
                format!("{up} does not speak FastCGI: nginx logs \"upstream sent unsupported FastCGI protocol version: {version}\" and answers 502"),
            )
            .answered(Answered::OtherProtocol),
            &values.gateway.head,
        )),
        GatewayOutcome::ClosedEarly | GatewayOutcome::Reset => out.push(received(
            base(
                RESPONSE,
                Severity::Error,
                endpoint,
                exchange,
                format!("{up} closed the connection on a FastCGI management record ({outcome})"),
            )
            .answered(Answered::ClosedEarly),
            &values.gateway.head,
        )),
        other => out.push(base(
            RESPONSE,
            Severity::Warning,
            endpoint,
            exchange,
            format!("{up}: FastCGI management record: {other}"),
        )),
    }
    if let Some(p) = request {
        out.extend(gateway_finding(
            &p.gateway, &p.stderr, page, endpoint, exchange,
        ));
    }
    out
}

/// The answer to a gateway request (a FastCGI request, uwsgi, SCGI) as a finding with its
/// cause; `None` for a head larger than the probe's cap that still fits nginx's buffer.
/// `stderr` is what FastCGI sent in STDERR (nothing for uwsgi and SCGI); `page` is the
/// php-fpm page asked for instead of a script, if it was.
///
/// FastCGI's wording says it ran the script; for uwsgi and SCGI an invalid head and a head
/// too big for the probe are only the probe's warnings, as they always were.
fn gateway_finding(
    p: &GatewayProbe,
    stderr: &[String],
    page: Option<&str>,
    endpoint: &Endpoint,
    exchange: &Exchange,
) -> Option<Finding> {
    let up = &endpoint.display;
    let proto = speaks(exchange);
    let fastcgi = exchange.module == PassModule::FastCgi;
    let with_stderr = |mut f: Finding| {
        for line in stderr.iter().take(3) {
            f = f.evidence(format!("FastCGI sent in stderr: \"{line}\""));
        }
        f
    };
    let f = match &p.outcome {
        GatewayOutcome::Response => {
            if let Some(f) = header_too_big(p.header_bytes as u64, endpoint, exchange, RESPONSE) {
                return Some(with_stderr(f));
            }
            let status = p.status.unwrap_or(200);
            let text = if let Some(page) = page {
                format!(
                    "{up}: php-fpm's own page {page} answers {status} (header {}): its workers take requests",
                    size(p.header_bytes as u64)
                )
            } else if fastcgi {
                format!(
                    "{up} runs the script and answers {status} (header {})",
                    size(p.header_bytes as u64)
                )
            } else {
                format!("{up} answers {status} over {proto}")
            };
            let severity = if status == 502 {
                Severity::Error
            } else {
                Severity::Info
            };
            let mut f = base(RESPONSE, severity, endpoint, exchange, text);
            if status == 502 {
                f = f.answered(Answered::Status502);
            }
            if status == 404 && stderr.iter().any(|l| l.contains("Primary script unknown")) {
                f = f.fix("\"Primary script unknown\": SCRIPT_FILENAME points at a file PHP cannot see; check root and fastcgi_param SCRIPT_FILENAME (this is a 404, not a 502)".to_owned());
            }
            with_stderr(f)
        }
        GatewayOutcome::ClosedEarly | GatewayOutcome::Reset => {
            let reset = p.outcome == GatewayOutcome::Reset;
            let text = if let Some(page) = page {
                format!(
                    "{up} closed the connection on php-fpm's own page {page}, before a complete header ({}): nginx answers 502",
                    p.outcome
                )
            } else if fastcgi {
                format!(
                    "{up} closed the connection while running the script, before a complete header ({}): nginx answers 502",
                    p.outcome
                )
            } else {
                let did = if reset { "reset" } else { "closed" };
                format!(
                    "{up} {did} the {proto} connection before a complete header: nginx answers 502"
                )
            };
            let answered = if reset {
                Answered::Reset
            } else {
                Answered::ClosedEarly
            };
            with_stderr(
                base(RESPONSE, Severity::Error, endpoint, exchange, text).answered(answered),
            )
        }
        GatewayOutcome::TimedOut => no_header_in_time(endpoint, exchange, p.elapsed),
        GatewayOutcome::HeaderTooBig if fastcgi => {
            header_too_big(p.header_bytes as u64, endpoint, exchange, RESPONSE)?
        }
        other if fastcgi => with_stderr(received(
            base(
                RESPONSE,
                Severity::Error,
                endpoint,
                exchange,
                format!("{up} answers an invalid FastCGI response: {other}"),
            )
            .answered(Answered::Invalid),
            &p.head,
        )),
        other => base(
            RESPONSE,
            Severity::Warning,
            endpoint,
            exchange,
            format!("{up}: {proto} probe: {other}"),
        ),
    };
    Some(f)
}

fn tls(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        for (endpoint, exchange) in facts.endpoints.iter().zip(facts.exchanges().await) {
            let Some(exchange) = exchange else { continue };
            let Answer::Tls { probe, with_sni } = &exchange.answer else {
                continue;
            };
            if let Some(f) = mismatch(exchange, endpoint, TLS) {
                out.push(f);
                continue;
            }
            out.extend(tls_findings(probe, with_sni.as_ref(), endpoint, exchange));
        }
        out
    })
}

fn chain_evidence(mut f: Finding, p: &TlsProbe) -> Finding {
    for (i, c) in p.chain.iter().take(3).enumerate() {
        let not_after = jiff::Timestamp::from_second(c.not_after)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_else(|_| c.not_after.to_string());
        f = f.evidence(format!(
            "certificate {i}: subject {}, issuer {}, names [{}], valid until {not_after}{}",
            c.subject,
            c.issuer,
            c.names.join(", "),
            if c.self_signed { ", self-signed" } else { "" }
        ));
    }
    f
}

fn tls_findings(
    p: &TlsProbe,
    with_sni: Option<&TlsProbe>,
    endpoint: &Endpoint,
    exchange: &Exchange,
) -> Vec<Finding> {
    let up = &endpoint.display;
    let error = |msg: String| {
        base(TLS, Severity::Error, endpoint, exchange, msg).answered(Answered::TlsFailed)
    };
    if let Some(retry) = with_sni
        && matches!(retry.outcome, TlsOutcome::Established)
    {
        let name = retry.sni.clone().unwrap_or_default();
        return vec![
            error(format!(
                "{up} completes the TLS handshake only with SNI ({name}); nginx sends none because proxy_ssl_server_name is off ({})",
                p.outcome
            ))
            .fix(format!(
                "Add `proxy_ssl_server_name on;` (and `proxy_ssl_name {name};` if the name differs) next to `{}` ({})",
                exchange.directive, exchange.at
            )),
        ];
    }
    let f = match &p.outcome {
        TlsOutcome::Established => {
            let version = p.version.map(|v| v.nginx_name()).unwrap_or("TLS");
            match &p.verification {
                None | Some(Verification::Ok) => chain_evidence(
                    base(
                        TLS,
                        Severity::Info,
                        endpoint,
                        exchange,
                        format!(
                            "{up}: TLS handshake ok ({version}{}){}",
                            p.cipher.as_ref().map(|c| format!(", {c}")).unwrap_or_default(),
                            if p.verification.is_some() { ", certificate verified" } else { "" }
                        ),
                    ),
                    p,
                ),
                Some(v) => chain_evidence(
                    error(format!("{up}: the certificate fails nginx's verification (proxy_ssl_verify on): {v}"))
                        .fix(verify_fix(v, exchange)),
                    p,
                ),
            }
        }
        TlsOutcome::TimedOut => {
            let limit = &exchange.connect_timeout;
            waited_like_nginx(
                base(TLS, Severity::Warning, endpoint, exchange, String::new()),
                up,
                "accepted the connection but did not answer the TLS ClientHello",
                p.elapsed,
                limit.value,
                &format!("{} {}", limit.directive, limit.written),
            )
        }
        TlsOutcome::ConnectFailed(o) => base(
            TLS,
            Severity::Warning,
            endpoint,
            exchange,
            format!("{up}: the connection for the TLS probe failed: {o}"),
        ),
        TlsOutcome::NotTls { reply } => base(
            TLS,
            Severity::Error,
            endpoint,
            exchange,
            format!("{up} does not speak TLS, but nginx starts TLS (`{}`)", exchange.directive),
        )
        .answered(Answered::OtherProtocol)
        .evidence(format!("received: \"{}\"", escape(reply, 64)))
        .fix(format!("Use proxy_pass http://… at {}", exchange.at)),
        TlsOutcome::NoCommonVersion => error(format!(
            "{up} and nginx share no TLS protocol version (proxy_ssl_protocols{})",
            p.version
                .map(|v| format!("; the upstream asked for {}", v.nginx_name()))
                .unwrap_or_default()
        ))
        .fix("Enable a TLS version the upstream supports in proxy_ssl_protocols, or upgrade the upstream to TLSv1.2+".to_owned()),
        other => error(format!("{up}: TLS handshake fails: {other}")),
    };
    vec![f]
}

fn verify_fix(v: &Verification, exchange: &Exchange) -> String {
    match v {
        Verification::SelfSigned | Verification::UnknownIssuer => format!(
            "Put the CA that signed the upstream's certificate (or the self-signed certificate itself) into proxy_ssl_trusted_certificate, used by `{}` ({})",
            exchange.directive, exchange.at
        ),
        Verification::Expired { .. } => "Renew the upstream's certificate".to_owned(),
        Verification::NameMismatch { presented, .. } => format!(
            "Set `proxy_ssl_name {};` next to `{}` ({}), or issue a certificate for the name nginx checks",
            presented
                .first()
                .map(String::as_str)
                .unwrap_or("<name in the certificate>"),
            exchange.directive,
            exchange.at
        ),
        _ => "Check proxy_ssl_trusted_certificate and the upstream's certificate chain".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causes::Cause;

    #[test]
    fn buffer_suggestions_fit_with_room_and_pass_nginx_t_rules() {
        assert_eq!(suggested_buffer(16384), 32 * 1024);
        assert_eq!(suggested_buffer(5000), 8 * 1024);
        assert_eq!(suggested_buffer(100), 8 * 1024);
        assert_eq!(
            buffer_fix(PassModule::Proxy, 16384),
            "proxy_buffer_size 32k; proxy_buffers 8 32k; proxy_busy_buffers_size 64k;"
        );
        assert_eq!(
            buffer_fix(PassModule::FastCgi, 5000),
            "fastcgi_buffer_size 8k; fastcgi_buffers 8 8k; fastcgi_busy_buffers_size 16k;"
        );
        assert_eq!(buffer_fix(PassModule::Grpc, 9000), "grpc_buffer_size 16k;");
    }

    #[test]
    fn escape_shows_bytes_as_nginx_does() {
        assert_eq!(escape(b"X-Bad: a\x00b\r\n", 64), "X-Bad: a\\x00b\\r\\n");
        assert_eq!(escape(b"abcdef", 3), "abc…");
        assert_eq!(escape(&[0x16, 0x03, 0x01], 8), "\\x16\\x03\\x01");
    }

    /// One gateway answer through [`gateway_finding`], for `module`: severity, cause,
    /// message and evidence.
    fn gateway_answer(
        module: PassModule,
        outcome: GatewayOutcome,
        stderr: &[String],
    ) -> Option<(Severity, Option<Cause>, String, Vec<String>)> {
        use crate::exchange::Limit;
        use crate::report::Location;
        let at = Location {
            file: "/etc/nginx/nginx.conf".into(),
            line: 7,
        };
        let exchange = Exchange {
            module,
            scheme: String::new(),
            directive: "uwsgi_pass 127.0.0.1:9000".to_owned(),
            at: at.clone(),
            sent: "uwsgi GET /".to_owned(),
            answer: Answer::Grpc,
            sniff: None,
            buffer: Limit {
                directive: "uwsgi_buffer_size",
                value: 4096,
                written: "4k".to_owned(),
                at: None,
            },
            read_timeout: Limit {
                directive: "uwsgi_read_timeout",
                value: std::time::Duration::from_secs(60),
                written: "60s".to_owned(),
                at: Some(at),
            },
            connect_timeout: Limit {
                directive: "uwsgi_connect_timeout",
                value: std::time::Duration::from_secs(60),
                written: "60s (the default)".to_owned(),
                at: None,
            },
        };
        let endpoint = Endpoint {
            peer: fix502_nginx::view::Peer::inet("127.0.0.1", 9000),
            display: "127.0.0.1:9000".to_owned(),
            group: None,
            uses: Vec::new(),
        };
        let probe = GatewayProbe {
            endpoint: endpoint.display.clone(),
            connect_time: None,
            first_byte: None,
            elapsed: std::time::Duration::from_millis(1500),
            status: (outcome == GatewayOutcome::Response).then_some(502),
            outcome,
            header_bytes: 100,
            head: b"Status: OK".to_vec(),
        };
        let f = gateway_finding(&probe, stderr, None, &endpoint, &exchange)?;
        Some((f.severity, f.cause, f.message, f.evidence))
    }

    #[test]
    fn gateway_answers_keep_each_protocol_s_wording() {
        use GatewayOutcome as G;
        use PassModule::{FastCgi, Scgi, Uwsgi};
        use Severity::{Error, Warning};
        let up = "127.0.0.1:9000";
        let cases = [
            (
                Uwsgi,
                G::Response,
                Error,
                Some(Cause::UPSTREAM_RETURNED_502),
                format!("{up} answers 502 over uwsgi"),
            ),
            (
                Uwsgi,
                G::Reset,
                Error,
                Some(Cause::UPSTREAM_RESET),
                format!(
                    "{up} reset the uwsgi connection before a complete header: nginx answers 502"
                ),
            ),
            (
                Scgi,
                G::ClosedEarly,
                Error,
                Some(Cause::UPSTREAM_CLOSED_EARLY),
                format!(
                    "{up} closed the SCGI connection before a complete header: nginx answers 502"
                ),
            ),
            (
                Uwsgi,
                G::InvalidStatus("OK".to_owned()),
                Warning,
                None,
                format!("{up}: uwsgi probe: invalid status \"OK\""),
            ),
            (
                Scgi,
                G::HeaderTooBig,
                Warning,
                None,
                format!("{up}: SCGI probe: header larger than the buffer (too big header)"),
            ),
            (
                FastCgi,
                G::Response,
                Error,
                Some(Cause::UPSTREAM_RETURNED_502),
                format!("{up} runs the script and answers 502 (header 100 bytes)"),
            ),
            (
                FastCgi,
                G::Reset,
                Error,
                Some(Cause::UPSTREAM_RESET),
                format!(
                    "{up} closed the connection while running the script, before a complete header (connection reset by peer (104)): nginx answers 502"
                ),
            ),
            (
                FastCgi,
                G::InvalidStatus("OK".to_owned()),
                Error,
                Some(Cause::UPSTREAM_INVALID_RESPONSE),
                format!("{up} answers an invalid FastCGI response: invalid status \"OK\""),
            ),
        ];
        let stderr = ["PHP message: boom".to_owned()];
        for (module, outcome, severity, cause, message) in cases {
            let stderr: &[String] = if module == FastCgi { &stderr } else { &[] };
            let (s, c, m, _) = gateway_answer(module, outcome, stderr).expect("a finding");
            assert_eq!((s, c, m), (severity, cause, message));
        }
        // FastCGI's evidence: the bytes received for an invalid answer, then STDERR.
        let (.., evidence) =
            gateway_answer(FastCgi, G::InvalidStatus("OK".to_owned()), &stderr).expect("a finding");
        assert_eq!(
            evidence,
            [
                "sent: uwsgi GET /",
                "received: \"Status: OK\"",
                "FastCGI sent in stderr: \"PHP message: boom\""
            ]
        );
        // A head too big for the probe but within nginx's buffer: nothing to say.
        assert_eq!(gateway_answer(FastCgi, G::HeaderTooBig, &stderr), None);
    }
}
