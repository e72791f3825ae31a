//! Step 1, the error logs: read each error log within `--since`, classify the upstream
//! failures nginx logged, and group them by cause × upstream with count, first/last seen and
//! sample lines.

use fix502_nginx::classify::{
    FastCgiKind, Http2Kind, InvalidHeaderKind, Signature, TlsKind, TlsReason,
};
use fix502_nginx::logscan::Group;

use crate::check::{FindingsFuture, FnCheck};
use crate::facts::Facts;
use crate::report::{Cause, Finding, Location, Severity, StepId};
use crate::steps::human_duration;
use crate::steps::route::logged_chain;

/// The checks of this step.
pub static CHECKS: [FnCheck; 2] = [
    FnCheck::new(ERROR_LOG, StepId::Logs, error_log),
    FnCheck::new(ACCESS_LOG, StepId::Logs, crate::steps::access::access_log),
];

/// Check id: the error-log scan.
pub const ERROR_LOG: &str = "logs.error-log";
/// Check id: the access-log status scan (502s that left no error-log line).
pub const ACCESS_LOG: &str = "logs.access-log";

/// The cause a group of logged failures points to (before other evidence refines it);
/// `None` for lines that are not gateway errors (truncated bodies, PHP's stderr).
pub fn cause_of_group(group: &Group) -> Option<Cause> {
    if !group.is_gateway_error() {
        return None;
    }
    cause_of(&group.signature, group.unix, group.peer.as_deref())
}

/// The cause a logged failure points to (before other evidence refines it).
pub fn cause_of(signature: &Signature, unix: bool, peer: Option<&str>) -> Option<Cause> {
    Some(match signature {
        Signature::ConnectRefused => Cause::UpstreamRefused,
        Signature::SocketMissing => Cause::UnixSocketMissing,
        Signature::PermissionDenied if unix => Cause::UnixSocketPermission,
        Signature::PermissionDenied => Cause::SelinuxDenied,
        Signature::BacklogFull => Cause::UpstreamBacklogFull,
        Signature::NetUnreachable | Signature::HostUnreachable | Signature::ConnectTimedOut => {
            Cause::UpstreamUnreachable
        }
        Signature::AddressNotAvailable if peer.is_some_and(|p| p.starts_with('[')) => {
            Cause::UpstreamWrongAddress
        }
        Signature::AddressNotAvailable => Cause::PortExhaustion,
        Signature::NoLiveUpstreams => Cause::NoLiveUpstreams,
        Signature::Resolve => Cause::UpstreamDns,
        Signature::UpstreamTimedOut { .. } => Cause::UpstreamTimeout,
        Signature::PrematureClose => Cause::UpstreamClosedEarly,
        Signature::Reset | Signature::SendFailed { .. } | Signature::RecvFailed { .. } => {
            Cause::UpstreamReset
        }
        Signature::KernelTimedOut => Cause::UpstreamUnreachable,
        Signature::HeaderTooBig => Cause::UpstreamHeaderTooBig,
        Signature::InvalidHeader(InvalidHeaderKind::NoValidHttpHeader) => {
            Cause::UpstreamProtocolMismatch
        }
        Signature::InvalidHeader(_) | Signature::InvalidBody(_) => Cause::UpstreamInvalidResponse,
        Signature::FastCgi(FastCgiKind::UnsupportedVersion(_)) => Cause::UpstreamProtocolMismatch,
        Signature::FastCgi(_) => Cause::UpstreamInvalidResponse,
        Signature::Http2(Http2Kind::TooLargeFrame(_)) => Cause::UpstreamProtocolMismatch,
        Signature::Http2(_) => Cause::UpstreamInvalidResponse,
        Signature::Tls(
            TlsKind::HandshakeFailed {
                reason: TlsReason::WrongVersionNumber,
            }
            | TlsKind::PrematurelySentResponse,
        ) => Cause::UpstreamProtocolMismatch,
        Signature::Tls(_) => Cause::UpstreamTls,
        _ => return None,
    })
}

fn describe(group: &Group) -> &'static str {
    match &group.signature {
        Signature::ConnectRefused => "connection-refused errors",
        Signature::SocketMissing => "missing-socket errors",
        Signature::PermissionDenied => "permission-denied errors",
        Signature::BacklogFull => "backlog-full (EAGAIN) errors",
        Signature::NetUnreachable => "network-unreachable errors",
        Signature::HostUnreachable => "no-route-to-host errors",
        Signature::AddressNotAvailable => "cannot-assign-address errors",
        Signature::NotPermitted => "operation-not-permitted errors",
        Signature::ConnectTimedOut => "kernel connect timeouts (a 502, not a 504)",
        Signature::NoLiveUpstreams => "\"no live upstreams\" errors",
        Signature::Resolve => "name-resolution failures of nginx's resolver",
        Signature::UpstreamTimedOut { .. } if group.truncates_response() => {
            "upstream timeouts after the header was sent (truncated responses, not 502s)"
        }
        Signature::UpstreamTimedOut { .. } => "upstream timeouts (nginx answers 504)",
        _ if group.truncates_response() => {
            "errors after the header was sent (truncated responses, not 502s)"
        }
        Signature::PrematureClose => "premature closes before a complete header",
        Signature::Reset => "connection resets (104 / broken pipe)",
        Signature::SendFailed { .. } => "failures sending the request",
        Signature::RecvFailed { .. } => "failures reading the response",
        Signature::KernelTimedOut => "kernel TCP timeouts on an open connection (a 502, not a 504)",
        Signature::HeaderTooBig => "\"upstream sent too big header\" errors",
        Signature::InvalidHeader(InvalidHeaderKind::NoValidHttpHeader) => {
            "non-HTTP answers (relayed as HTTP/0.9, access-log status 009)"
        }
        Signature::InvalidHeader(_) => "invalid response headers",
        Signature::FastCgi(_) => "FastCGI protocol errors",
        Signature::FastCgiStderr => "messages from the FastCGI app's stderr (not gateway errors)",
        Signature::Http2(_) => "HTTP/2 (gRPC) protocol errors",
        Signature::Tls(_) => "TLS errors",
        Signature::InvalidBody(_) => "invalid response bodies (truncated responses, not 502s)",
        _ => "other upstream errors",
    }
}

fn error_log(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        let journal = facts.reads_journal();
        for dest in &facts.error_log_elsewhere {
            out.push(elsewhere_finding(facts, dest, journal));
        }
        if facts.error_logs.is_empty() && !journal {
            out.push(Finding::could_not_check(
                ERROR_LOG,
                "no error log file to read (pass --error-log)",
            ));
            return out;
        }
        let window = human_duration(facts.options.since);
        for read in facts.logs().await {
            let path = read.path.display();
            let summary = match &read.summary {
                Ok(s) => s,
                Err(e) => {
                    out.push(
                        Finding::could_not_check(ERROR_LOG, format!("cannot read {path}: {e}"))
                            .fix(
                                "Run as root or pass a readable copy with --error-log".to_string(),
                            ),
                    );
                    continue;
                }
            };
            let mut info = Finding::new(
                ERROR_LOG,
                Severity::Info,
                format!(
                    "{path}: {} lines in the last {window}, {} about upstreams",
                    summary.lines_in_window,
                    summary.groups.iter().map(|g| g.count).sum::<u64>()
                ),
            );
            if summary.lines_unparsed + summary.lines_oversized > 0 {
                info = info.evidence(format!(
                    "{} lines not in nginx's error-log format, {} oversized lines skipped",
                    summary.lines_unparsed, summary.lines_oversized
                ));
                for sample in &summary.unparsed_samples {
                    info = info.evidence(format!("not an error-log line: {sample}"));
                }
            }
            out.push(info);
            for note in &read.notes {
                out.push(Finding::new(
                    ERROR_LOG,
                    Severity::Info,
                    format!("skipped part of the history: {note}"),
                ));
            }
            for group in &summary.groups {
                let cause = cause_of_group(group);
                let severity = match (&group.signature, cause) {
                    (_, Some(_)) => Severity::Error,
                    (Signature::NotPermitted, None) => Severity::Error,
                    (Signature::FastCgiStderr, None) => Severity::Info,
                    _ => Severity::Warning,
                };
                let peer = match (&group.signature, &group.peer) {
                    (Signature::Resolve, Some(host)) => Some(named_upstream(facts, host)),
                    _ => group.peer.clone(),
                };
                let to = peer
                    .as_deref()
                    .map(|p| format!(" to {p}"))
                    .unwrap_or_default();
                let mut f = Finding::new(
                    ERROR_LOG,
                    severity,
                    format!(
                        "{} {}{to} in the last {window} (first {}, last {})",
                        group.count,
                        describe(group),
                        group.first_seen.time(),
                        group.last_seen.time()
                    ),
                );
                f.cause = cause;
                f.upstream = peer.clone();
                f.evidence = group.samples.clone();
                if let Some(p) = &peer {
                    let endpoint = match group.signature {
                        Signature::NoLiveUpstreams => facts
                            .endpoints
                            .iter()
                            .find(|e| e.group.as_deref() == Some(p.as_str())),
                        _ => facts.endpoint_of(p).await,
                    };
                    f.location = endpoint.and_then(|e| e.uses.first().map(|u| u.at.clone()));
                }
                if let Some(request) = &group.request
                    && let Some((route, chain)) =
                        logged_chain(&facts.view, group.server.as_deref(), request, None)
                {
                    let target = route.target.and_then(|t| facts.view.targets.get(t));
                    let elsewhere = match (target, &group.peer) {
                        (Some(t), Some(peer)) => disk_config_elsewhere(facts, t, peer),
                        _ => false,
                    };
                    let note = if elsewhere {
                        format!(
                            " (the config on disk; nginx connected to {}, which it does not name: was it changed since nginx loaded it?)",
                            group.peer.as_deref().unwrap_or_default()
                        )
                    } else {
                        String::new()
                    };
                    f.evidence
                        .insert(0, format!("route of \"{request}\": {chain}{note}"));
                    if f.location.is_none() {
                        f.location = route
                            .target
                            .and_then(|t| facts.view.targets.get(t))
                            .map(|t| Location::from(&t.span));
                    }
                }
                if matches!(group.signature, Signature::NotPermitted) {
                    f = f.fix("A local policy vetoed the connect: check systemd IPAddressDeny=/IPAddressAllow= and cgroup BPF (bpftool cgroup tree)");
                }
                out.push(f);
            }
        }
        out
    })
}

/// Whether the pass directive the config on disk routes a logged request to cannot have
/// connected to the logged `peer`: it names fixed IP addresses, none of them that one.
fn disk_config_elsewhere(
    facts: &Facts,
    target: &fix502_nginx::view::PassTarget,
    peer: &str,
) -> bool {
    let peers = facts.view.peers_of(target);
    !peers.is_empty()
        && peers
            .iter()
            .all(|(p, _)| p.is_ip_literal() || matches!(p, fix502_nginx::view::Peer::Unix(_)))
        && !peers.iter().any(|(p, _)| p.to_string() == peer)
}

/// Where an `error_log` that is not a file goes, and how its lines are read (the journal)
/// or can be got by hand.
fn elsewhere_finding(facts: &Facts, dest: &str, journal: bool) -> Finding {
    let since = facts.window_start();
    let journal_cmd = crate::journal::command_line(since);
    let to_journal = dest == "stderr" || dest.starts_with("syslog:");
    if to_journal && journal {
        return Finding::new(
            ERROR_LOG,
            Severity::Info,
            format!("error_log {dest}: read from the systemd journal ({journal_cmd})"),
        );
    }
    let in_docker = facts.master_pid().is_some_and(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.contains("docker") || c.contains("containerd"))
    });
    let window = human_duration(facts.options.since);
    let how = match dest {
        "stderr" if in_docker => {
            format!("nginx runs in a container: docker logs --since {window} CONTAINER 2>&1")
        }
        "stderr" => format!(
            "this host has no systemd journal to read; nginx's stderr goes wherever its service manager sends it (under systemd: {journal_cmd}; under Docker: docker logs --since {window} CONTAINER 2>&1)"
        ),
        d if d.starts_with("syslog:") => format!(
            "this host has no systemd journal to read; see the syslog server named in `error_log {d}` (rsyslog: /var/log/syslog or /var/log/messages, grep nginx)"
        ),
        _ => "not a file (memory buffer or off)".to_owned(),
    };
    Finding::new(
        ERROR_LOG,
        Severity::Warning,
        format!("error_log {dest}: fix502 cannot read it here: {how}"),
    )
    .fix("Pass a copy of those lines with --error-log FILE, or log to a file too: error_log /var/log/nginx/error.log error;")
}

/// A host name nginx's resolver failed on, as `host:port` when a pass directive of the
/// config names it with a literal port (`proxy_pass http://app.internal:8080$request_uri`).
fn named_upstream(facts: &Facts, host: &str) -> String {
    use fix502_nginx::resolver::literal_host;
    use fix502_nginx::view::TargetAddress;
    facts
        .view
        .targets
        .iter()
        .find_map(|t| match &t.address {
            TargetAddress::Variable(raw) => {
                let default_port = if t.scheme.ends_with('s') { 443 } else { 80 };
                literal_host(raw, default_port)
                    .filter(|(h, _)| h.eq_ignore_ascii_case(host))
                    .map(|(h, port)| format!("{h}:{port}"))
            }
            _ => None,
        })
        .unwrap_or_else(|| host.to_owned())
}

/// How many logged failures in the window gave the client a 502 (error-log lines).
pub(crate) async fn logged_502s(facts: &Facts) -> u64 {
    facts
        .logs()
        .await
        .iter()
        .filter_map(|r| r.summary.as_ref().ok())
        .flat_map(|s| &s.groups)
        .filter(|g| g.http_status() == 502)
        .map(|g| g.count)
        .sum()
}
