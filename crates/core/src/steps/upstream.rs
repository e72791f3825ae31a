//! Step 2, the upstreams: probe every address the config connects to, concurrently and each
//! bounded by `--timeout`. TCP connect; unix socket stat, connect, and whether the worker user
//! may open it; and for a refused address, who listens on the same port elsewhere.

use fix502_nginx::view::Peer;
use fix502_probe::connect::ConnectOutcome;
use fix502_probe::listeners::{Listener, ListenerKind};
use fix502_probe::unixsock::{Access, FileKind, PathEntry, mode_string};

use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Endpoint, Facts, ProbeResult};
use crate::report::{Cause, Finding, Severity, StepId};

/// Check id: the list of upstream targets.
pub const TARGETS: &str = "upstream.targets";
/// Check id: TCP connect to every TCP upstream.
pub const TCP_CONNECT: &str = "upstream.tcp-connect";
/// Check id: unix socket inspection and connect.
pub const UNIX_SOCKET: &str = "upstream.unix-socket";
/// Check id: other listeners on a refused upstream's port.
pub const LISTENERS: &str = "upstream.listeners";

/// The checks of this step.
pub static CHECKS: [FnCheck; 4] = [
    FnCheck::new(TARGETS, StepId::Upstream, targets),
    FnCheck::new(TCP_CONNECT, StepId::Upstream, tcp_connect),
    FnCheck::new(UNIX_SOCKET, StepId::Upstream, unix_socket),
    FnCheck::new(LISTENERS, StepId::Upstream, listeners),
];

fn targets(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        if facts.endpoints.is_empty() && facts.variable_targets.is_empty() {
            out.push(Finding::new(TARGETS, Severity::Info, "the config has no proxy_pass / fastcgi_pass / uwsgi_pass / scgi_pass / grpc_pass targets"));
        } else if !facts.endpoints.is_empty() {
            let list: Vec<_> = facts.endpoints.iter().map(|e| e.display.as_str()).collect();
            out.push(Finding::new(
                TARGETS,
                Severity::Info,
                format!("{} upstream address(es): {}", list.len(), list.join(", ")),
            ));
        }
        for (directive, at) in &facts.variable_targets {
            out.push(
                Finding::new(TARGETS, Severity::Info, format!("`{directive}` uses a variable: nginx resolves it per request, so it is not probed here"))
                    .at(Some(at.clone())),
            );
        }
        out
    })
}

/// The cause a failed connect points to.
pub fn cause_of_outcome(outcome: &ConnectOutcome, unix: bool, target: &str) -> Option<Cause> {
    Some(match outcome {
        ConnectOutcome::Refused => Cause::UpstreamRefused,
        ConnectOutcome::NotFound => Cause::UnixSocketMissing,
        ConnectOutcome::PermissionDenied if unix => Cause::UnixSocketPermission,
        ConnectOutcome::PermissionDenied => Cause::SelinuxDenied,
        ConnectOutcome::WouldBlock => Cause::UpstreamBacklogFull,
        ConnectOutcome::NetUnreachable | ConnectOutcome::HostUnreachable => {
            Cause::UpstreamUnreachable
        }
        ConnectOutcome::TimedOut => Cause::UpstreamTimeout,
        ConnectOutcome::AddressNotAvailable if target.starts_with('[') => {
            Cause::UpstreamWrongAddress
        }
        ConnectOutcome::AddressNotAvailable => Cause::PortExhaustion,
        _ => return None,
    })
}

fn tcp_connect(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        for (endpoint, probe) in facts.endpoints.iter().zip(facts.probes().await) {
            let ProbeResult::Tcp {
                attempts,
                resolve_error,
            } = probe
            else {
                continue;
            };
            if let Some(err) = resolve_error {
                out.push(
                    Finding::new(
                        TCP_CONNECT,
                        Severity::Error,
                        format!("{} cannot be resolved: {err}", endpoint.display),
                    )
                    .cause(Cause::UpstreamDns)
                    .upstream(endpoint.display.clone())
                    .at(endpoint.location()),
                );
                continue;
            }
            for a in attempts {
                let ms = a.elapsed.as_secs_f64() * 1000.0;
                if a.outcome.is_connected() {
                    out.push(
                        Finding::new(
                            TCP_CONNECT,
                            Severity::Info,
                            format!("{} accepts connections ({ms:.1} ms)", a.target),
                        )
                        .upstream(a.target.clone())
                        .at(endpoint.location()),
                    );
                    continue;
                }
                let cause = cause_of_outcome(&a.outcome, false, &a.target);
                let severity = if cause == Some(Cause::UpstreamTimeout) {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                let mut f = Finding::new(
                    TCP_CONNECT,
                    severity,
                    format!("{}: {}, {}", a.target, a.outcome, endpoint.role()),
                )
                .upstream(a.target.clone())
                .at(endpoint.location())
                .evidence(format!(
                    "connect({}) → {} after {ms:.1} ms",
                    a.target, a.outcome
                ));
                f.cause = cause;
                if a.outcome == ConnectOutcome::TimedOut {
                    f = f.evidence(format!("no answer within --timeout {:?}; nginx waits proxy_connect_timeout (60s by default) and then answers 504", facts.timeout()));
                }
                out.push(f);
            }
        }
        out
    })
}

fn entry_line(e: &PathEntry) -> String {
    format!(
        "{} {}:{} {}",
        mode_string(&e.kind, e.mode),
        e.owner.clone().unwrap_or_else(|| e.uid.to_string()),
        e.group.clone().unwrap_or_else(|| e.gid.to_string()),
        e.path.display()
    )
}

fn unix_socket(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        let worker = facts
            .worker_user
            .as_ref()
            .map(|(u, _)| u.clone())
            .unwrap_or_else(|| "the worker user".to_owned());
        for (endpoint, probe) in facts.endpoints.iter().zip(facts.probes().await) {
            let ProbeResult::Unix {
                info,
                connect,
                access,
            } = probe
            else {
                continue;
            };
            let target = endpoint.display.clone();
            let base = |sev, msg: String| {
                Finding::new(UNIX_SOCKET, sev, msg)
                    .upstream(target.clone())
                    .at(endpoint.location())
            };
            match info.socket.kind {
                FileKind::Missing => {
                    let mut f = base(
                        Severity::Error,
                        format!(
                            "{} does not exist ({})",
                            info.socket.path.display(),
                            endpoint.role()
                        ),
                    )
                    .cause(Cause::UnixSocketMissing);
                    if let Some(parent) = info.parents.last()
                        && parent.kind == FileKind::Missing
                    {
                        f = f.evidence(format!(
                            "its directory {} does not exist either",
                            parent.path.display()
                        ));
                    }
                    out.push(f);
                    continue;
                }
                FileKind::Socket => {}
                _ => {
                    out.push(
                        base(Severity::Error, format!("{} exists but is not a socket: nginx gets connection refused (111)", info.socket.path.display()))
                            .cause(Cause::UpstreamRefused)
                            .evidence(entry_line(&info.socket)),
                    );
                    continue;
                }
            }
            match access {
                Some(Access::Denied { path, reason }) => {
                    let mut f = base(
                        Severity::Error,
                        format!(
                            "{worker} may not connect to {}: {reason}",
                            info.socket.path.display()
                        ),
                    )
                    .cause(Cause::UnixSocketPermission)
                    .evidence(entry_line(&info.socket));
                    for p in &info.parents {
                        if &p.path == path {
                            f = f.evidence(entry_line(p));
                        }
                    }
                    out.push(f);
                    continue;
                }
                Some(Access::Unknown { reason }) => out.push(base(
                    Severity::Info,
                    format!("cannot tell whether {worker} may connect: {reason}"),
                )),
                _ => {}
            }
            if connect.outcome.is_connected() {
                out.push(base(
                    Severity::Info,
                    format!(
                        "{} accepts connections ({})",
                        target,
                        entry_line(&info.socket)
                    ),
                ));
            } else {
                let mut f = base(
                    Severity::Error,
                    format!("{}: {}, {}", target, connect.outcome, endpoint.role()),
                )
                .evidence(entry_line(&info.socket));
                f.cause = cause_of_outcome(&connect.outcome, true, &target);
                if connect.outcome == ConnectOutcome::Refused {
                    f = f.evidence("the socket file exists but nothing listens on it: a stale socket left by a crashed or stopped service");
                }
                out.push(f);
            }
        }
        out
    })
}

/// Listeners that may be what a refused endpoint was meant to be.
pub fn alternatives<'a>(endpoint: &Endpoint, all: &'a [Listener]) -> Vec<&'a Listener> {
    match &endpoint.peer {
        Peer::Inet { port, .. } => fix502_probe::listeners::listeners_on_port(all, *port)
            .into_iter()
            .filter(|l| l.addr != endpoint.display)
            .collect(),
        Peer::Unix(path) => {
            let dir = path.parent();
            all.iter()
                .filter(|l| {
                    l.kind == ListenerKind::Unix
                        && l.path.as_deref().and_then(|p| p.parent()) == dir
                        && l.path.as_deref() != Some(path.as_path())
                })
                .collect()
        }
    }
}

/// `python3 (pid 412): python3 -m http.server --bind ::1 8000`.
pub fn owner_of(l: &Listener) -> String {
    match (l.pid, &l.process) {
        (Some(pid), Some(name)) => match &l.cmdline {
            Some(cmd) if !cmd.is_empty() => format!("{name} (pid {pid}: {cmd})"),
            _ => format!("{name} (pid {pid})"),
        },
        (Some(pid), None) => format!("pid {pid}"),
        _ => "an unknown process (run as root to see it)".to_owned(),
    }
}

fn listeners(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let probes = facts.probes().await;
        let failed: Vec<_> = facts
            .endpoints
            .iter()
            .zip(probes)
            .filter(|(_, p)| match p {
                ProbeResult::Tcp { attempts, .. } => attempts.iter().any(|a| {
                    a.outcome == ConnectOutcome::Refused
                        || a.outcome == ConnectOutcome::AddressNotAvailable
                }),
                ProbeResult::Unix { info, .. } => info.socket.kind == FileKind::Missing,
            })
            .map(|(e, _)| e)
            .collect();
        if failed.is_empty() {
            return Vec::new();
        }
        let all = match facts.listeners().await {
            Ok(all) => all,
            Err(e) => {
                return vec![Finding::new(
                    LISTENERS,
                    Severity::Warning,
                    format!("cannot list listening sockets: {e}"),
                )];
            }
        };
        let mut out = Vec::new();
        for endpoint in failed {
            let alts = alternatives(endpoint, &all);
            if alts.is_empty() {
                let what = match &endpoint.peer {
                    Peer::Inet { port, .. } => {
                        format!("nothing listens on port {port} on any address")
                    }
                    Peer::Unix(p) => format!(
                        "no listening socket in {}",
                        p.parent()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default()
                    ),
                };
                out.push(
                    Finding::new(
                        LISTENERS,
                        Severity::Info,
                        format!("{}: {what}", endpoint.display),
                    )
                    .upstream(endpoint.display.clone()),
                );
                continue;
            }
            let mut f = Finding::new(
                LISTENERS,
                Severity::Error,
                format!(
                    "{} is not listening, but {} is: {}",
                    endpoint.display,
                    alts.iter()
                        .map(|l| l.addr.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    owner_of(alts[0])
                ),
            )
            .cause(Cause::UpstreamWrongAddress)
            .upstream(endpoint.display.clone())
            .at(endpoint.location());
            for l in &alts {
                f = f.evidence(format!("{} listens on {}", owner_of(l), l.addr));
            }
            out.push(f);
        }
        out
    })
}
