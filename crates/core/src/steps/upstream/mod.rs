//! Step 2, the upstreams: probe every address the config connects to, concurrently and each
//! bounded by `--timeout`. TCP connect; unix socket stat, connect, and whether the worker user
//! may open it; and for an address that refuses, is unreachable or missing, the listeners the
//! user most likely meant ([`candidates()`]), and for a loopback one, a listener in another
//! network namespace on its port (`elsewhere.rs`: nginx in a container, the app on the host).
//!
//! This module holds the step's checks and what only they need (how an endpoint failed,
//! whether it is local, the config change that points it elsewhere). The ranking of the
//! listeners a failed endpoint may have meant lives in `candidates.rs` and is re-exported
//! here.

mod candidates;
mod elsewhere;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use fix502_nginx::view::{PassModule, Peer};
use fix502_probe::connect::ConnectOutcome;
use fix502_probe::listeners::Listener;
use fix502_probe::process::systemd_unit_of;
use fix502_probe::unixsock::{Access, FileKind, PathEntry, mode_string};

use crate::causes::Cause;
use crate::causes::{self, Connected};
use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Endpoint, Facts, ProbeResult, short};
use crate::report::{CheckId, Evidence, Finding, Location, Severity, StepId};
use crate::upstream::Upstream;

pub use candidates::{Around, candidates, connect_address, decisive, with_address};

/// Check id: the list of upstream targets.
pub const TARGETS: CheckId = CheckId::new("upstream.targets", StepId::Upstream, Evidence::Live);
/// Check id: TCP connect to every TCP upstream.
pub const TCP_CONNECT: CheckId =
    CheckId::new("upstream.tcp-connect", StepId::Upstream, Evidence::Live);
/// Check id: unix socket inspection and connect.
pub const UNIX_SOCKET: CheckId =
    CheckId::new("upstream.unix-socket", StepId::Upstream, Evidence::Live);
/// Check id: the listeners a refused, unreachable or missing upstream was most likely meant to be.
pub const LISTENERS: CheckId = CheckId::new("upstream.listeners", StepId::Upstream, Evidence::Live);

/// Check id: a listener in another network namespace (the host's, a container's) on the
/// port of a loopback upstream that fails where nginx stands.
pub const ELSEWHERE: CheckId = CheckId::new(
    "upstream.other-namespaces",
    StepId::Upstream,
    Evidence::Live,
);

/// The checks of this step.
pub static CHECKS: [FnCheck; 5] = [
    FnCheck::new(TARGETS, targets),
    FnCheck::new(TCP_CONNECT, tcp_connect),
    FnCheck::new(UNIX_SOCKET, unix_socket),
    FnCheck::new(LISTENERS, listeners),
    FnCheck::new(ELSEWHERE, other_namespaces),
];

fn other_namespaces(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(elsewhere::findings(facts))
}

fn targets(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        match (facts.standpoint().problem(), facts.standpoint().probed_from()) {
            (Some(problem), _) => out.push(Finding::new(TARGETS, Severity::Warning, problem)),
            (None, Some(from)) => out.push(Finding::new(
                TARGETS,
                Severity::Info,
                format!("nginx runs in another network namespace than fix502: the probes are made from {}, as nginx's workers connect", from.words()),
            )),
            (None, None) => {}
        }
        let served_by_nginx = matches!(&facts.route, Some(Ok(route)) if route.target.is_none());
        if served_by_nginx {
            out.push(Finding::new(
                TARGETS,
                Severity::Info,
                "the --url is served by nginx itself (no pass directive handles it): no upstream to check",
            ));
        } else if facts.endpoints.is_empty() && facts.variable_targets.is_empty() {
            out.push(Finding::new(TARGETS, Severity::Info, "the config has no proxy_pass / fastcgi_pass / uwsgi_pass / scgi_pass / grpc_pass targets"));
        } else if !facts.endpoints.is_empty() {
            let list: Vec<_> = facts.endpoints.iter().map(|e| e.display.as_str()).collect();
            out.push(Finding::new(
                TARGETS,
                Severity::Info,
                format!("{} upstream address(es): {}", list.len(), list.join(", ")),
            ));
        }
        // A target resolved per request is not probed: never a pass. When no target is
        // probed at all, the step checked nothing.
        let nothing_probed = facts.endpoints.is_empty() && !served_by_nginx;
        for (directive, at) in &facts.variable_targets {
            let text = format!(
                "`{directive}` uses a variable: nginx resolves it per request, so it is not probed here"
            );
            let f = if nothing_probed {
                Finding::could_not_check(TARGETS, format!("not checked: {text}"))
            } else {
                Finding::new(TARGETS, Severity::Warning, text)
            };
            out.push(f.at(Some(at.clone())));
        }
        out
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
                    .cause(Cause::UPSTREAM_DNS)
                    .upstream(&endpoint.peer)
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
                        .upstream(Upstream::parse(&a.target))
                        .at(endpoint.location()),
                    );
                    continue;
                }
                let via = Connected {
                    unix: false,
                    ipv6: a.target.starts_with('['),
                };
                let mut cause = causes::of_connect(&a.outcome, via);
                let severity = if cause == Some(Cause::UPSTREAM_TIMEOUT) {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                // nginx's clock, not ours: a connect the probe gave up on before nginx would
                // is no timeout of nginx's yet.
                let limit = endpoint
                    .uses
                    .first()
                    .and_then(|u| facts.view.targets.get(u.target))
                    .map(|t| crate::exchange::connect_timeout_limit(t, facts.nginx_version()));
                if a.outcome == ConnectOutcome::TimedOut
                    && limit.as_ref().is_some_and(|l| a.elapsed < l.value)
                {
                    cause = None;
                }
                let mut f = Finding::new(
                    TCP_CONNECT,
                    severity,
                    format!("{}: {}, {}", a.target, a.outcome, endpoint.role()),
                )
                .upstream(Upstream::parse(&a.target))
                .at(endpoint.location())
                .evidence(format!(
                    "connect({}) → {} after {ms:.1} ms",
                    a.target, a.outcome
                ));
                f.cause = cause;
                if a.outcome == ConnectOutcome::TimedOut
                    && let Some(l) = &limit
                {
                    let at = l.at.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
                    let claimed = f.cause.is_some();
                    f = f.evidence(if claimed {
                        format!("no answer within {ms:.0} ms, as long as nginx waits ({} {}{at}): nginx answers 504", l.directive, l.written)
                    } else {
                        format!("no answer within the probe's {ms:.0} ms (nginx waits {} {}{at}): not yet a timeout of nginx's", l.directive, l.written)
                    });
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
            let base = |sev, msg: String| {
                Finding::new(UNIX_SOCKET, sev, msg)
                    .upstream(&endpoint.peer)
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
                    .cause(Cause::UNIX_SOCKET_MISSING);
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
                            .cause(Cause::UPSTREAM_REFUSED)
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
                    .cause(Cause::UNIX_SOCKET_PERMISSION)
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
                        endpoint.display,
                        entry_line(&info.socket)
                    ),
                ));
            } else {
                let mut f = base(
                    Severity::Error,
                    format!(
                        "{}: {}, {}",
                        endpoint.display,
                        connect.outcome,
                        endpoint.role()
                    ),
                )
                .evidence(entry_line(&info.socket));
                f.cause = causes::of_connect(
                    &connect.outcome,
                    Connected {
                        unix: true,
                        ipv6: false,
                    },
                );
                if connect.outcome == ConnectOutcome::Refused {
                    f = f.evidence("the socket file exists but nothing listens on it: a stale socket left by a crashed or stopped service");
                }
                out.push(f);
            }
        }
        out
    })
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

/// Candidates shown as evidence per endpoint.
const MAX_CANDIDATES_SHOWN: usize = 5;

/// Whether `ip` is an address of this host: loopback, or one a socket can bind to.
fn is_local_ip(ip: IpAddr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.to_canonical().is_loopback()
        || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// How an endpoint failed: the address that failed and a verb phrase (`refuses`).
/// How an endpoint failed, when it may mean the app is elsewhere: the failing target, a
/// verb for it, and the cause the connect check claims for it.
fn failure_of(
    endpoint: &Endpoint,
    probe: &ProbeResult,
) -> Option<(String, &'static str, Option<Cause>)> {
    match probe {
        ProbeResult::Tcp { attempts, .. } => attempts.iter().find_map(|a| {
            let verb = match a.outcome {
                ConnectOutcome::Refused => "refuses",
                ConnectOutcome::AddressNotAvailable => "cannot be connected to from here (99)",
                ConnectOutcome::NetUnreachable | ConnectOutcome::HostUnreachable => {
                    "is unreachable"
                }
                _ => return None,
            };
            let via = Connected {
                unix: false,
                ipv6: a.target.starts_with('['),
            };
            Some((a.target.clone(), verb, causes::of_connect(&a.outcome, via)))
        }),
        ProbeResult::Unix { info, connect, .. } => {
            let (verb, cause) = if info.socket.kind == FileKind::Missing {
                ("does not exist", Some(Cause::UNIX_SOCKET_MISSING))
            } else if connect.outcome == ConnectOutcome::Refused {
                (
                    "refuses (a stale socket file)",
                    Some(Cause::UPSTREAM_REFUSED),
                )
            } else {
                return None;
            };
            Some((endpoint.display.clone(), verb, cause))
        }
    }
}

/// Whether an endpoint's address is on this host (its failed targets for a host name).
fn endpoint_is_local(endpoint: &Endpoint, probe: &ProbeResult) -> bool {
    match (&endpoint.peer, probe) {
        (Peer::Unix(_), _) => true,
        (peer, _) if peer.is_loopback() => true,
        (peer, _) if peer.ip().is_some() => peer.ip().is_some_and(is_local_ip),
        (_, ProbeResult::Tcp { attempts, .. }) => attempts
            .iter()
            .filter_map(|a| a.target.parse::<SocketAddr>().ok())
            .any(|a| is_local_ip(a.ip())),
        _ => false,
    }
}

/// The exact config change that points `endpoint` at `address`, with where to make it.
fn point_at(facts: &Facts, endpoint: &Endpoint, address: &str) -> Option<String> {
    let first = endpoint.uses.first()?;
    if let (Some(server_at), Some(group)) = (&first.server_at, &endpoint.group) {
        let server = facts.view.group(group).and_then(|g| {
            g.servers
                .iter()
                .find(|s| Location::from(&s.span) == *server_at)
        });
        let written = server.map_or_else(|| endpoint.display.clone(), |s| s.raw().to_owned());
        let parameters = server.is_some_and(|s| {
            s.weight != 1
                || s.max_fails != 1
                || s.fail_timeout != "10s"
                || s.backup
                || s.down
                || s.resolve
        });
        let keep = if parameters {
            ", keeping its other parameters"
        } else {
            ""
        };
        return Some(format!(
            "Point nginx at it: `server {address};` instead of `server {written};` in upstream {group}{keep} ({})",
            short(server_at)
        ));
    }
    let target = facts.view.targets.get(first.target)?;
    Some(format!(
        "Point nginx at it: `{} {};` ({})",
        target.module.directive(),
        with_address(&target.raw, address),
        short(&first.at)
    ))
}

/// What the ranking of the listeners a failed endpoint may have meant needs to know about
/// the host, gathered once per run of the check.
struct Surroundings<'a> {
    all: &'a [Listener],
    nginx_pids: Vec<u32>,
    units: HashMap<u32, Option<String>>,
    configured: Vec<Peer>,
}

impl<'a> Surroundings<'a> {
    fn of(facts: &Facts, all: &'a [Listener]) -> Self {
        let mut units: HashMap<u32, Option<String>> = HashMap::new();
        for pid in all.iter().filter_map(|l| l.pid) {
            units.entry(pid).or_insert_with(|| systemd_unit_of(pid));
        }
        let mut configured: Vec<Peer> = facts.endpoints.iter().map(|e| e.peer.clone()).collect();
        configured.extend(facts.peers_of_other_instances());
        Self {
            all,
            nginx_pids: facts.nginx_pids(),
            units,
            configured,
        }
    }

    /// The listeners, pids and addresses of the host, worked out for the ranking, which
    /// looks units up with `units` ([`Self::unit`]).
    fn around<'s>(&'s self, units: &'s dyn Fn(u32) -> Option<String>) -> Around<'s> {
        Around::new(self.all, &self.nginx_pids, &self.configured, units)
    }

    /// The systemd unit of a pid, as found.
    fn unit(&self, pid: u32) -> Option<String> {
        self.units.get(&pid).cloned().flatten()
    }
}

/// The listeners `endpoint` (which failed as `probe` says) most likely meant, best first.
fn candidates_of(
    around: &Around<'_>,
    endpoint: &Endpoint,
    probe: &ProbeResult,
    module: PassModule,
) -> Vec<candidates::Candidate> {
    candidates(endpoint, module, endpoint_is_local(endpoint, probe), around)
}

/// The pass module of an endpoint's first use.
fn module_of(facts: &Facts, endpoint: &Endpoint) -> PassModule {
    endpoint
        .uses
        .first()
        .and_then(|u| facts.view.targets.get(u.target))
        .map_or(PassModule::Proxy, |t| t.module)
}

/// Where the app of a failed endpoint went, when one listener decides it (what
/// `upstream.listeners` claims as `upstream-wrong-address`): the address as the pass
/// directive or `server` line should name it. `None` for a stale unix socket (its app died)
/// and for hints.
pub(crate) async fn moved_to(facts: &Facts, endpoint: &Endpoint) -> Option<String> {
    let i = facts
        .endpoints
        .iter()
        .position(|e| std::ptr::eq(e, endpoint))?;
    let probe = facts.probes().await.get(i)?;
    let (_, _, failed_as) = failure_of(endpoint, probe)?;
    if matches!(probe, ProbeResult::Unix { .. }) && failed_as == Some(Cause::UPSTREAM_REFUSED) {
        return None;
    }
    let all = facts.listeners().await.ok()?;
    let surroundings = Surroundings::of(facts, &all);
    let units = |pid: u32| surroundings.unit(pid);
    let around = surroundings.around(&units);
    let found = candidates_of(&around, endpoint, probe, module_of(facts, endpoint));
    let best = decisive(&found)?;
    Some(connect_address(&best.listener, &endpoint.peer))
}

fn listeners(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let probes = facts.probes().await;
        let failed: Vec<_> = facts
            .endpoints
            .iter()
            .zip(probes)
            .filter_map(|(e, p)| failure_of(e, p).map(|f| (e, p, f)))
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
        let surroundings = Surroundings::of(facts, &all);
        let units = |pid: u32| surroundings.unit(pid);
        let around = surroundings.around(&units);
        let mut out = Vec::new();
        for (endpoint, probe, (target, verb, failed_as)) in failed {
            let module = module_of(facts, endpoint);
            let found = candidates_of(&around, endpoint, probe, module);
            let failing = if Upstream::parse(&target) == Upstream::from(&endpoint.peer) {
                target.clone()
            } else {
                format!("{} ({target})", endpoint.display)
            };
            let Some(best) = found.first() else {
                let what = match &endpoint.peer {
                    Peer::Inet { port, .. } => format!(
                        "nothing else listens on port {port}, and no listener looks like the app {} expects",
                        module.directive()
                    ),
                    Peer::Unix(p) => format!(
                        "no listening socket in {}, and no listener looks like the app {} expects",
                        p.parent()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default(),
                        module.directive()
                    ),
                };
                out.push(
                    Finding::new(
                        LISTENERS,
                        Severity::Info,
                        format!("{failing} {verb}: {what}"),
                    )
                    .upstream(Upstream::parse(&target)),
                );
                continue;
            };
            let address = connect_address(&best.listener, &endpoint.peer);
            // A socket file nobody listens on was left by an app that died (a clean stop or
            // a move removes it): the listeners around are hints, not where it went.
            let died = matches!(probe, ProbeResult::Unix { .. })
                && failed_as == Some(Cause::UPSTREAM_REFUSED);
            // Hints (a name, a directory, a nearby port) and ties are not evidence: a warning
            // without a cause, so they never turn a refusal into a wrong address.
            let mut f = if died || decisive(&found).is_none() {
                let why = if died {
                    "a hint: the socket file left behind says the app that served it died"
                } else if best.is_hint() {
                    "a hint, not proof that the app moved"
                } else {
                    "one of several that could be it"
                };
                Finding::new(
                    LISTENERS,
                    Severity::Warning,
                    format!(
                        "{failing} {verb}; {} listens on {address} ({why})",
                        best.owner()
                    ),
                )
            } else {
                Finding::new(
                    LISTENERS,
                    Severity::Error,
                    format!(
                        "{failing} {verb}, but {} listens on {address}",
                        best.owner()
                    ),
                )
                .cause(Cause::UPSTREAM_WRONG_ADDRESS)
                .headline(format!("{} listens on {address}", best.owner()))
            }
            .upstream(Upstream::parse(&target))
            .at(endpoint.location());
            for c in found.iter().take(MAX_CANDIDATES_SHOWN) {
                let why: Vec<String> = c
                    .reasons
                    .iter()
                    .map(|r| r.describe(&endpoint.peer, &c.listener, module))
                    .collect();
                let unit = c
                    .unit
                    .as_ref()
                    .map(|u| format!(", unit {u}"))
                    .unwrap_or_default();
                f = f.evidence(format!(
                    "{}: {}{unit}: {}",
                    c.listener.addr,
                    owner_of(&c.listener),
                    why.join("; ")
                ));
            }
            if found.len() > MAX_CANDIDATES_SHOWN {
                f = f.evidence(format!(
                    "... and {} more candidate(s)",
                    found.len() - MAX_CANDIDATES_SHOWN
                ));
            }
            if f.cause.is_none() {
                // Hints join the claim of the failure itself (what to start), and no fix
                // points nginx at a guess.
                f.cause = failed_as;
                out.push(f);
                continue;
            }
            if let Some(fix) = point_at(facts, endpoint, &address) {
                f = f.fix(fix);
            }
            out.push(f.fix(format!(
                "or make the app listen on {} again",
                endpoint.display
            )));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses() {
        assert!(is_local_ip("127.0.0.1".parse().unwrap()));
        assert!(is_local_ip("::1".parse().unwrap()));
        assert!(is_local_ip("127.0.0.2".parse().unwrap()));
        // TEST-NET-1 is never assigned to a host.
        assert!(!is_local_ip("192.0.2.1".parse().unwrap()));
    }

    /// The whole check on a parsed config: the finding, its evidence and the exact fixes
    /// for an upstream `server` line and a direct `proxy_pass`.
    #[tokio::test]
    async fn check_names_the_change() {
        let a = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        for p in [pa, pb] {
            if std::net::TcpStream::connect(("127.0.0.1", p)).is_ok() {
                return; // someone else listens there: nothing to learn
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "events {{}}\nhttp {{\n  upstream app_pool {{ server 127.0.0.1:{pa} max_fails=2; }}\n  server {{\n    listen 127.0.0.1:1;\n    location / {{ proxy_pass http://app_pool; }}\n    location /x/ {{ proxy_pass http://127.0.0.1:{pb}/x/; }}\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let discovery = crate::discovery::Discovery {
            binary: None,
            build: Default::default(),
            config: conf.clone(),
            prefix: Some(dir.path().to_path_buf()),
            master: None,
            other_masters: Vec::new(),
            own_ns: Default::default(),
            via: Default::default(),
            notes: Vec::new(),
        };
        let facts = Facts::new(crate::options::Options::default(), discovery);
        let findings = listeners(&facts).await;
        assert_eq!(findings.len(), 2, "{findings:#?}");
        let group = &findings[0];
        assert_eq!(group.severity, Severity::Error);
        assert_eq!(group.cause, Some(Cause::UPSTREAM_WRONG_ADDRESS));
        assert_eq!(
            group.upstream,
            Some(Upstream::parse(&format!("127.0.0.1:{pa}")))
        );
        assert!(
            group
                .message
                .starts_with(&format!("127.0.0.1:{pa} refuses, but ")),
            "{}",
            group.message
        );
        assert!(
            group
                .message
                .ends_with(&format!(" listens on 127.0.0.2:{pa}"))
        );
        assert!(
            group.evidence[0].starts_with(&format!("127.0.0.2:{pa}: "))
                && group.evidence[0].ends_with(&format!("same port {pa}, other address")),
            "{:?}",
            group.evidence
        );
        let file = short(&Location {
            file: conf.clone(),
            line: 3,
        });
        assert_eq!(
            group.fix,
            vec![
                format!(
                    "Point nginx at it: `server 127.0.0.2:{pa};` instead of `server 127.0.0.1:{pa};` in upstream app_pool, keeping its other parameters ({file})"
                ),
                format!("or make the app listen on 127.0.0.1:{pa} again"),
            ]
        );
        let direct = &findings[1];
        let file = short(&Location {
            file: conf.clone(),
            line: 7,
        });
        assert_eq!(
            direct.fix.first(),
            Some(&format!(
                "Point nginx at it: `proxy_pass http://127.0.0.2:{pb}/x/;` ({file})"
            ))
        );
        drop((a, b));
    }
}
