//! Step 2, the upstreams: probe every address the config connects to, concurrently and each
//! bounded by `--timeout`. TCP connect; unix socket stat, connect, and whether the worker user
//! may open it; and for an address that refuses, is unreachable or missing, the listeners the
//! user most likely meant ([`candidates`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use fix502_nginx::view::{PassModule, Peer};
use fix502_probe::appserver::{AppServerKind, kind_of};
use fix502_probe::connect::ConnectOutcome;
use fix502_probe::listeners::Listener;
use fix502_probe::process::systemd_unit_of;
use fix502_probe::unixsock::{Access, FileKind, PathEntry, mode_string};

use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Endpoint, Facts, ProbeResult, short};
use crate::report::{Cause, Finding, Location, Severity, StepId};

/// Check id: the list of upstream targets.
pub const TARGETS: &str = "upstream.targets";
/// Check id: TCP connect to every TCP upstream.
pub const TCP_CONNECT: &str = "upstream.tcp-connect";
/// Check id: unix socket inspection and connect.
pub const UNIX_SOCKET: &str = "upstream.unix-socket";
/// Check id: the listeners a refused, unreachable or missing upstream was most likely meant to be.
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

// ---------------------------------------------------------------------------------------
// What the user most likely meant: listeners ranked for a failed endpoint
// ---------------------------------------------------------------------------------------

/// How far from the endpoint's port a listener counts as a nearby port.
const NEARBY_PORTS: u16 = 10;
/// Candidates shown as evidence per endpoint.
const MAX_CANDIDATES_SHOWN: usize = 5;
/// Words of an upstream's name too common to identify a program (`app.sock`, `api`).
const STOP_WORDS: &[&str] = &[
    "sock",
    "socket",
    "run",
    "var",
    "tmp",
    "localhost",
    "upstream",
    "upstreams",
    "backend",
    "backends",
    "server",
    "servers",
    "pool",
    "default",
    "http",
    "https",
    "www",
    "local",
    "internal",
    "unix",
    "tcp",
    "service",
    "the",
    "and",
    "com",
    "org",
    "net",
    "app",
    "apps",
    "api",
    "web",
    "site",
    "main",
    "prod",
    "dev",
    "test",
    "stage",
    "staging",
];
/// Directories whose sockets have nothing in common but the directory.
const SHARED_DIRS: &[&str] = &["/run", "/var/run", "/tmp", "/var/tmp", "/dev/shm"];

/// Why a listener may be what a failed endpoint was meant to be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The endpoint's port on another address or address family. `local`: the endpoint's
    /// address is on this host, so the app most likely listens on the wrong address of it
    /// (strongest); otherwise it only supports another reason.
    SamePort {
        /// The endpoint's address is on this host.
        local: bool,
    },
    /// The kind of server the pass directive talks to (`fastcgi_pass` → php-fpm,
    /// `uwsgi_pass` → uWSGI); holds its name.
    AppServer(String),
    /// Words of the upstream's name (group, host, socket file) found in the listener's
    /// process name, command line or systemd unit.
    Name(Vec<String>),
    /// A unix socket in the same directory as the endpoint's socket.
    SameDirectory,
    /// A port within ±10 of the endpoint's on loopback or all addresses (weak; only looked
    /// for when nothing else matched).
    NearbyPort,
}

impl Reason {
    /// How much the reason counts in the ranking.
    fn weight(&self) -> u32 {
        match self {
            Self::SamePort { local: true } => 100,
            Self::SamePort { local: false } => 20,
            Self::AppServer(_) => 40,
            Self::Name(words) => 30 + 5 * u32::try_from(words.len().min(5)).unwrap_or(5),
            Self::SameDirectory => 15,
            Self::NearbyPort => 5,
        }
    }

    /// Whether the reason alone makes a listener a candidate.
    fn is_enough(&self) -> bool {
        !matches!(self, Self::SamePort { local: false } | Self::NearbyPort)
    }

    /// Why, for a person: `same port 8000, IPv6 instead of IPv4`.
    fn describe(&self, endpoint: &Peer, listener: &Listener, module: PassModule) -> String {
        match self {
            Self::SamePort { local } => {
                let port = listener.socket_addr.map(|a| a.port()).unwrap_or_default();
                let family = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
                let text = match (endpoint.ip(), listener.socket_addr) {
                    (Some(ip), Some(sa)) if ip.is_ipv6() != sa.is_ipv6() => format!(
                        "same port {port}, {} instead of {}",
                        family(sa.is_ipv6()),
                        family(ip.is_ipv6())
                    ),
                    _ => format!("same port {port}, other address"),
                };
                if *local {
                    text
                } else {
                    format!("{text} (on this host; the endpoint is not)")
                }
            }
            Self::AppServer(name) => {
                format!("a {name} server, what {} talks to", module.directive())
            }
            Self::Name(words) => format!("its name matches the upstream's: {}", words.join(", ")),
            Self::SameDirectory => "a socket in the same directory".to_owned(),
            Self::NearbyPort => "a nearby port (weak: nothing else matched)".to_owned(),
        }
    }
}

/// A listener that may be what a failed endpoint was meant to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The listening socket and its owner.
    pub listener: Listener,
    /// The owner's systemd unit, when it runs in one.
    pub unit: Option<String>,
    /// Why it was chosen, strongest first.
    pub reasons: Vec<Reason>,
}

impl Candidate {
    /// The ranking score: the sum of the reasons' weights.
    pub fn score(&self) -> u32 {
        self.reasons.iter().map(Reason::weight).sum()
    }

    /// Only a nearby port: a hint, not evidence.
    pub fn is_weak(&self) -> bool {
        self.reasons.iter().all(|r| *r == Reason::NearbyPort)
    }

    /// `php-fpm8.2 (pid 4242, unit php8.2-fpm.service)`.
    pub fn owner(&self) -> String {
        let name = self.listener.process.as_deref().unwrap_or("a process");
        match (self.listener.pid, &self.unit) {
            (Some(pid), Some(unit)) => format!("{name} (pid {pid}, unit {unit})"),
            (Some(pid), None) => format!("{name} (pid {pid})"),
            (None, _) => "a process fix502 cannot see (run as root to see it)".to_owned(),
        }
    }
}

/// Lower-case runs of at least three ASCII letters: `php8.1-fpm.sock` → `php`, `fpm`, `sock`.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
        .map(str::to_ascii_lowercase)
}

/// The words that name an endpoint: its upstream group, its host name, and its socket
/// file and directory, without the generic words (`STOP_WORDS`).
pub fn name_words(endpoint: &Endpoint) -> Vec<String> {
    let mut texts: Vec<String> = endpoint.group.iter().cloned().collect();
    match &endpoint.peer {
        Peer::Inet { host, .. } if !endpoint.peer.is_ip_literal() => texts.push(host.clone()),
        Peer::Unix(path) => {
            texts.extend(path.file_name().map(|n| n.to_string_lossy().into_owned()));
            texts.extend(
                path.parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned()),
            );
        }
        Peer::Inet { .. } => {}
    }
    let mut out: Vec<String> = Vec::new();
    for word in texts.iter().flat_map(|t| words(t)) {
        if !STOP_WORDS.contains(&word.as_str()) && !out.contains(&word) {
            out.push(word);
        }
    }
    out
}

/// The name of the server kind `module` talks to, when `listener`'s owner is one.
fn expected_server(module: PassModule, listener: &Listener) -> Option<String> {
    let process = listener.process.as_deref().unwrap_or_default();
    let cmdline: Vec<String> = listener
        .cmdline
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let kind = kind_of(process, &cmdline);
    match module {
        PassModule::FastCgi if kind == AppServerKind::PhpFpm => Some(kind.name().to_owned()),
        PassModule::FastCgi => {
            let program = cmdline.first().map_or(process, String::as_str);
            let program = program
                .rsplit('/')
                .next()
                .unwrap_or(program)
                .to_ascii_lowercase();
            ["fcgi", "fastcgi", "php-cgi", "hhvm"]
                .iter()
                .any(|p| program.contains(p))
                .then(|| format!("FastCGI ({program})"))
        }
        PassModule::Uwsgi if kind == AppServerKind::Uwsgi => Some(kind.name().to_owned()),
        _ => None,
    }
}

/// Whether `listener` is a FastCGI server (php-fpm), which only `fastcgi_pass` can use.
fn is_fastcgi_only(listener: &Listener) -> bool {
    expected_server(PassModule::FastCgi, listener).is_some()
}

/// Ranks the listeners that may be what `endpoint` (which refuses, is unreachable or
/// missing) was meant to be, best first. `module` is what the pass directive speaks;
/// `local`: the endpoint's address is on this host. nginx's own sockets (`nginx_pids`) and
/// abstract unix sockets are never candidates. `units` names a pid's systemd unit.
///
/// The rules, strongest first: the same port on another address or family (only when the
/// endpoint is local); the server kind the directive talks to anywhere (php-fpm for
/// `fastcgi_pass`, uWSGI for `uwsgi_pass`); the upstream's name in the owner's name,
/// command line or unit; a socket in the same (not shared) directory. Only when none of
/// these matches, and the endpoint is local: a loopback or wildcard listener within ±10
/// ports of another process ([`Reason::NearbyPort`]).
pub fn candidates(
    endpoint: &Endpoint,
    module: PassModule,
    local: bool,
    all: &[Listener],
    nginx_pids: &[u32],
    units: &dyn Fn(u32) -> Option<String>,
) -> Vec<Candidate> {
    let wanted = name_words(endpoint);
    let endpoint_port = match &endpoint.peer {
        Peer::Inet { port, .. } => Some(*port),
        Peer::Unix(_) => None,
    };
    let eligible = |l: &Listener| {
        l.addr != endpoint.display
            && !l.pid.is_some_and(|p| nginx_pids.contains(&p))
            && !l
                .path
                .as_ref()
                .is_some_and(|p| p.as_os_str().to_string_lossy().starts_with('@'))
    };
    let mut out: Vec<Candidate> = Vec::new();
    for l in all.iter().filter(|l| eligible(l)) {
        let unit = l.pid.and_then(units);
        let mut reasons = Vec::new();
        let port = l.socket_addr.map(|a| a.port());
        if endpoint_port.is_some() && port == endpoint_port {
            reasons.push(Reason::SamePort { local });
        }
        if module != PassModule::FastCgi && is_fastcgi_only(l) && reasons.is_empty() {
            continue;
        }
        if let Some(server) = expected_server(module, l) {
            reasons.push(Reason::AppServer(server));
        }
        if l.pid.is_some() && !wanted.is_empty() {
            let mut seen: Vec<String> = Vec::new();
            let texts = [l.process.as_deref(), l.cmdline.as_deref(), unit.as_deref()];
            for word in texts.into_iter().flatten().flat_map(words) {
                if !seen.contains(&word) {
                    seen.push(word);
                }
            }
            let matched: Vec<String> = wanted
                .iter()
                .filter(|w| seen.contains(w))
                .cloned()
                .collect();
            if !matched.is_empty() {
                reasons.push(Reason::Name(matched));
            }
        }
        if let (Peer::Unix(path), Some(theirs)) = (&endpoint.peer, &l.path)
            && let Some(dir) = path.parent()
            && theirs.parent() == Some(dir)
            && !SHARED_DIRS.iter().any(|d| dir == Path::new(d))
        {
            reasons.push(Reason::SameDirectory);
        }
        if reasons.iter().any(Reason::is_enough) {
            out.push(Candidate {
                listener: l.clone(),
                unit,
                reasons,
            });
        }
    }
    if out.is_empty()
        && local
        && let Some(wanted_port) = endpoint_port
    {
        for l in all.iter().filter(|l| eligible(l) && l.pid.is_some()) {
            let Some(sa) = l.socket_addr else { continue };
            let near = sa.port() != wanted_port && sa.port().abs_diff(wanted_port) <= NEARBY_PORTS;
            if near && (sa.ip().is_loopback() || sa.ip().is_unspecified()) {
                out.push(Candidate {
                    listener: l.clone(),
                    unit: l.pid.and_then(units),
                    reasons: vec![Reason::NearbyPort],
                });
            }
        }
    }
    let same_transport =
        |c: &Candidate| c.listener.socket_addr.is_some() == endpoint_port.is_some();
    let distance = |c: &Candidate| match (c.listener.socket_addr, endpoint_port) {
        (Some(sa), Some(p)) => sa.port().abs_diff(p),
        _ => u16::MAX,
    };
    out.sort_by(|a, b| {
        b.score()
            .cmp(&a.score())
            .then(same_transport(b).cmp(&same_transport(a)))
            .then(distance(a).cmp(&distance(b)))
            .then(a.listener.addr.cmp(&b.listener.addr))
    });
    for c in &mut out {
        c.reasons.sort_by_key(|r| std::cmp::Reverse(r.weight()));
    }
    out
}

/// The address to write in nginx's config to reach `listener`: a wildcard listener is
/// reached on the endpoint's own address when that is of the same family, else on loopback.
pub fn connect_address(listener: &Listener, endpoint: &Peer) -> String {
    let Some(sa) = listener.socket_addr else {
        return listener.addr.clone();
    };
    if !sa.ip().is_unspecified() {
        return Peer::inet(&sa.ip().to_string(), sa.port()).to_string();
    }
    let ip = match endpoint.ip() {
        Some(ip) if ip.is_ipv6() == sa.is_ipv6() && !ip.is_unspecified() => ip,
        _ if sa.is_ipv6() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    Peer::inet(&ip.to_string(), sa.port()).to_string()
}

/// A pass directive's argument with its address replaced by `address` (as nginx writes
/// addresses: `127.0.0.1:9001`, `[::1]:8000`, `unix:/run/app.sock`), keeping the scheme and
/// URI: `http://127.0.0.1:8000/api/` → `http://unix:/run/app.sock:/api/`.
pub fn with_address(raw: &str, address: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), raw),
    };
    let uri = match rest.strip_prefix("unix:") {
        Some(path) => path.find(':').and_then(|i| path.get(i + 1..)).unwrap_or(""),
        None => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or(""),
    };
    let separator = if address.starts_with("unix:") && !uri.is_empty() {
        ":"
    } else {
        ""
    };
    format!("{scheme}{address}{separator}{uri}")
}

/// Whether `ip` is an address of this host: loopback, or one a socket can bind to.
fn is_local_ip(ip: IpAddr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.to_canonical().is_loopback()
        || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// How an endpoint failed: the address that failed and a verb phrase (`refuses`).
fn failure_of(endpoint: &Endpoint, probe: &ProbeResult) -> Option<(String, &'static str)> {
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
            Some((a.target.clone(), verb))
        }),
        ProbeResult::Unix { info, connect, .. } => {
            let verb = if info.socket.kind == FileKind::Missing {
                "does not exist"
            } else if connect.outcome == ConnectOutcome::Refused {
                "refuses (a stale socket file)"
            } else {
                return None;
            };
            Some((endpoint.display.clone(), verb))
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
        let written = server.map_or_else(|| endpoint.display.clone(), |s| s.raw.clone());
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
        let nginx_pids = facts.nginx_pids();
        let mut unit_by_pid: HashMap<u32, Option<String>> = HashMap::new();
        for pid in all.iter().filter_map(|l| l.pid) {
            unit_by_pid
                .entry(pid)
                .or_insert_with(|| systemd_unit_of(pid));
        }
        let units = |pid: u32| unit_by_pid.get(&pid).cloned().flatten();
        let mut out = Vec::new();
        for (endpoint, probe, (target, verb)) in failed {
            let module = endpoint
                .uses
                .first()
                .and_then(|u| facts.view.targets.get(u.target))
                .map_or(PassModule::Proxy, |t| t.module);
            let local = endpoint_is_local(endpoint, probe);
            let found = candidates(endpoint, module, local, &all, &nginx_pids, &units);
            let failing = if target == endpoint.display {
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
                    .upstream(target),
                );
                continue;
            };
            let address = connect_address(&best.listener, &endpoint.peer);
            // A nearby port alone is a hint, not evidence: a warning without a cause, so it
            // never turns a refusal into a wrong address.
            let mut f = if best.is_weak() {
                Finding::new(
                    LISTENERS,
                    Severity::Warning,
                    format!(
                        "{failing} {verb}; on a nearby port, {} listens on {address}",
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
                .cause(Cause::UpstreamWrongAddress)
            }
            .upstream(target)
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
    use std::path::PathBuf;

    use fix502_probe::listeners::ListenerKind;

    use super::*;

    fn tcp(addr: &str, pid: u32, process: &str, cmdline: &str) -> Listener {
        let sa: SocketAddr = addr.parse().unwrap();
        Listener {
            kind: ListenerKind::Tcp,
            addr: Peer::inet(&sa.ip().to_string(), sa.port()).to_string(),
            socket_addr: Some(sa),
            path: None,
            inode: u64::from(pid) * 1000 + u64::from(sa.port()),
            pid: Some(pid),
            process: Some(process.to_owned()),
            cmdline: Some(cmdline.to_owned()),
            queued: None,
        }
    }

    fn unix(path: &str, pid: u32, process: &str, cmdline: &str) -> Listener {
        Listener {
            kind: ListenerKind::Unix,
            addr: format!("unix:{path}"),
            socket_addr: None,
            path: Some(PathBuf::from(path)),
            inode: u64::from(pid),
            pid: Some(pid),
            process: Some(process.to_owned()),
            cmdline: Some(cmdline.to_owned()),
            queued: None,
        }
    }

    fn endpoint(peer: Peer, group: Option<&str>) -> Endpoint {
        Endpoint {
            display: peer.to_string(),
            peer,
            group: group.map(str::to_owned),
            uses: Vec::new(),
        }
    }

    fn no_units(_: u32) -> Option<String> {
        None
    }

    fn units(pid: u32) -> Option<String> {
        (pid == 4242).then(|| "php8.2-fpm.service".to_owned())
    }

    const NGINX: u32 = 100;

    fn nginx_listener() -> Listener {
        tcp(
            "0.0.0.0:80",
            NGINX,
            "nginx",
            "nginx: master process /usr/sbin/nginx",
        )
    }

    fn addrs(found: &[Candidate]) -> Vec<&str> {
        found.iter().map(|c| c.listener.addr.as_str()).collect()
    }

    #[test]
    fn same_port_other_address_or_family() {
        let e = endpoint(Peer::inet("127.0.0.1", 8000), Some("shop"));
        let all = vec![
            nginx_listener(),
            tcp(
                "[::1]:8000",
                500,
                "python3",
                "python3 -m http.server --bind ::1 8000",
            ),
            tcp("127.0.0.2:8000", 501, "ruby", "ruby server.rb"),
            tcp("127.0.0.1:8001", 502, "node", "node /srv/shop/index.js"),
        ];
        let found = candidates(&e, PassModule::Proxy, true, &all, &[NGINX], &no_units);
        // Same port outranks a name match ("shop" in node's command line).
        assert_eq!(
            addrs(&found),
            vec!["127.0.0.2:8000", "[::1]:8000", "127.0.0.1:8001"]
        );
        assert_eq!(found[0].reasons, vec![Reason::SamePort { local: true }]);
        assert_eq!(
            found[2].reasons,
            vec![Reason::Name(vec!["shop".to_owned()])]
        );
        assert_eq!(
            found[1].reasons[0].describe(&e.peer, &found[1].listener, PassModule::Proxy),
            "same port 8000, IPv6 instead of IPv4"
        );
        // A remote endpoint: the same port on this host alone is not enough.
        let remote = endpoint(Peer::inet("10.9.9.9", 8000), None);
        assert!(
            candidates(&remote, PassModule::Proxy, false, &all, &[NGINX], &no_units).is_empty()
        );
    }

    #[test]
    fn nginx_own_sockets_never() {
        let e = endpoint(Peer::inet("127.0.0.1", 80), Some("nginx"));
        let all = vec![
            tcp(
                "[::]:80",
                NGINX,
                "nginx",
                "nginx: master process /usr/sbin/nginx",
            ),
            tcp("127.0.0.1:81", NGINX + 1, "nginx", "nginx: worker process"),
        ];
        let found = candidates(
            &e,
            PassModule::Proxy,
            true,
            &all,
            &[NGINX, NGINX + 1],
            &no_units,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn fastcgi_finds_php_fpm_anywhere() {
        let e = endpoint(Peer::inet("127.0.0.1", 9000), None);
        let fpm = "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)";
        let all = vec![
            nginx_listener(),
            unix("/run/php/php8.2-fpm.sock", 4242, "php-fpm8.2", fpm),
            tcp("127.0.0.1:3000", 600, "node", "node server.js"),
            tcp("127.0.0.1:9005", 601, "python3", "python3 app.py"),
        ];
        let found = candidates(&e, PassModule::FastCgi, true, &all, &[NGINX], &units);
        assert_eq!(addrs(&found), vec!["unix:/run/php/php8.2-fpm.sock"]);
        assert_eq!(
            found[0].reasons,
            vec![Reason::AppServer("php-fpm".to_owned())]
        );
        assert_eq!(found[0].unit.as_deref(), Some("php8.2-fpm.service"));
        assert_eq!(
            found[0].owner(),
            "php-fpm8.2 (pid 4242, unit php8.2-fpm.service)"
        );
        // proxy_pass never gets a FastCGI server, even by name.
        let e = endpoint(Peer::inet("127.0.0.1", 9000), Some("php"));
        let found = candidates(&e, PassModule::Proxy, true, &all, &[NGINX], &units);
        assert_eq!(addrs(&found), vec!["127.0.0.1:9005"], "{found:?}");
        assert_eq!(found[0].reasons, vec![Reason::NearbyPort]);
        // uwsgi_pass wants uWSGI.
        let all = vec![tcp(
            "127.0.0.1:3031",
            700,
            "uwsgi",
            "uwsgi --ini /etc/uwsgi/app.ini",
        )];
        let e = endpoint(Peer::inet("127.0.0.1", 8000), None);
        let found = candidates(&e, PassModule::Uwsgi, true, &all, &[], &no_units);
        assert_eq!(
            found[0].reasons,
            vec![Reason::AppServer("uWSGI".to_owned())]
        );
    }

    #[test]
    fn names_from_group_host_and_socket() {
        let sock = endpoint(Peer::Unix(PathBuf::from("/run/php/php8.1-fpm.sock")), None);
        assert_eq!(name_words(&sock), vec!["php", "fpm"]);
        let group = endpoint(Peer::inet("app.example.com", 80), Some("gunicorn_backend"));
        assert_eq!(name_words(&group), vec!["gunicorn", "example"]);
        assert!(name_words(&endpoint(Peer::inet("127.0.0.1", 80), Some("backend"))).is_empty());

        // The socket file's words match a php-fpm of another version (and its unit).
        let all = vec![
            unix(
                "/run/php/php8.2-fpm.sock",
                4242,
                "php-fpm8.2",
                "php-fpm: pool www",
            ),
            unix("/run/other/x.sock", 800, "sshd", "sshd: /usr/sbin/sshd"),
        ];
        let found = candidates(&sock, PassModule::Proxy, true, &all, &[], &units);
        assert!(
            found.is_empty(),
            "proxy_pass never points at php-fpm: {found:?}"
        );
        let found = candidates(&sock, PassModule::FastCgi, true, &all, &[], &units);
        assert_eq!(addrs(&found), vec!["unix:/run/php/php8.2-fpm.sock"]);
        assert_eq!(
            found[0].reasons,
            vec![
                Reason::AppServer("php-fpm".to_owned()),
                Reason::Name(vec!["php".to_owned(), "fpm".to_owned()]),
                Reason::SameDirectory,
            ]
        );

        // A name in the unit only.
        let e = endpoint(Peer::inet("127.0.0.1", 5000), Some("billing"));
        let all = vec![tcp("127.0.0.1:6000", 900, "python3", "python3 main.py")];
        let billing = |pid: u32| (pid == 900).then(|| "billing.service".to_owned());
        let found = candidates(&e, PassModule::Proxy, true, &all, &[], &billing);
        assert_eq!(
            found[0].reasons,
            vec![Reason::Name(vec!["billing".to_owned()])]
        );
    }

    #[test]
    fn near_misses() {
        let e = endpoint(Peer::inet("127.0.0.1", 8000), Some("app"));
        let all = vec![
            // Far port, unrelated name.
            tcp(
                "127.0.0.1:5432",
                1,
                "postgres",
                "postgres -D /var/lib/postgresql",
            ),
            // Near port but on a public address only.
            tcp("192.0.2.10:8003", 2, "java", "java -jar shop.jar"),
            // Near port, owner unknown.
            Listener {
                pid: None,
                process: None,
                cmdline: None,
                ..tcp("127.0.0.1:8004", 3, "", "")
            },
            // A shared directory is no reason.
            unix("/run/foo.sock", 4, "foo", "foo"),
        ];
        assert!(candidates(&e, PassModule::Proxy, true, &all, &[], &no_units).is_empty());
        // A near port on loopback or all addresses is a weak candidate, only for a local endpoint.
        let mut all = all;
        all.push(tcp("0.0.0.0:8010", 5, "java", "java -jar shop.jar"));
        let found = candidates(&e, PassModule::Proxy, true, &all, &[], &no_units);
        assert_eq!(addrs(&found), vec!["0.0.0.0:8010"]);
        assert!(found[0].is_weak());
        assert!(candidates(&e, PassModule::Proxy, false, &all, &[], &no_units).is_empty());
        // Missing unix socket next to another app's socket.
        let sock = endpoint(Peer::Unix(PathBuf::from("/run/shop/web.sock")), None);
        let all = vec![unix(
            "/run/shop/api.sock",
            7,
            "gunicorn",
            "gunicorn shop.wsgi",
        )];
        let found = candidates(&sock, PassModule::Proxy, true, &all, &[], &no_units);
        assert_eq!(
            found[0].reasons,
            vec![Reason::Name(vec!["shop".to_owned()]), Reason::SameDirectory]
        );
        // A generic word ("app") is no name match.
        let sock = endpoint(Peer::Unix(PathBuf::from("/srv/x/app.sock")), Some("api"));
        let all = vec![tcp("127.0.0.1:5000", 9, "python3", "python3 app.py api")];
        assert!(candidates(&sock, PassModule::Proxy, true, &all, &[], &no_units).is_empty());
        // An abstract socket is never one.
        let sock = endpoint(Peer::Unix(PathBuf::from("/run/shop/web.sock")), None);
        let all = vec![unix("@/run/shop/web", 8, "shop", "shop")];
        assert!(candidates(&sock, PassModule::Proxy, true, &all, &[], &no_units).is_empty());
    }

    #[test]
    fn fix_addresses() {
        let wildcard = tcp("0.0.0.0:9001", 1, "x", "x");
        assert_eq!(
            connect_address(&wildcard, &Peer::inet("127.0.0.1", 9000)),
            "127.0.0.1:9001"
        );
        assert_eq!(
            connect_address(&wildcard, &Peer::inet("::1", 9000)),
            "127.0.0.1:9001"
        );
        let v6 = tcp("[::]:9001", 1, "x", "x");
        assert_eq!(
            connect_address(&v6, &Peer::inet("127.0.0.1", 9000)),
            "[::1]:9001"
        );
        let exact = tcp("[::1]:8000", 1, "x", "x");
        assert_eq!(
            connect_address(&exact, &Peer::inet("127.0.0.1", 8000)),
            "[::1]:8000"
        );
        let sock = unix("/run/php/php8.2-fpm.sock", 1, "x", "x");
        assert_eq!(
            connect_address(&sock, &Peer::inet("127.0.0.1", 9000)),
            "unix:/run/php/php8.2-fpm.sock"
        );

        assert_eq!(
            with_address("127.0.0.1:9000", "127.0.0.1:9001"),
            "127.0.0.1:9001"
        );
        assert_eq!(
            with_address("http://127.0.0.1:8000/api/", "[::1]:8000"),
            "http://[::1]:8000/api/"
        );
        assert_eq!(
            with_address("http://127.0.0.1:8000/api/", "unix:/run/app.sock"),
            "http://unix:/run/app.sock:/api/"
        );
        assert_eq!(
            with_address("http://unix:/run/old.sock:/x", "127.0.0.1:8000"),
            "http://127.0.0.1:8000/x"
        );
        assert_eq!(
            with_address(
                "unix:/run/php/php8.1-fpm.sock",
                "unix:/run/php/php8.2-fpm.sock"
            ),
            "unix:/run/php/php8.2-fpm.sock"
        );
        assert_eq!(
            with_address("http://localhost", "127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn local_addresses() {
        assert!(is_local_ip("127.0.0.1".parse().unwrap()));
        assert!(is_local_ip("::1".parse().unwrap()));
        assert!(is_local_ip("127.0.0.2".parse().unwrap()));
        // TEST-NET-1 is never assigned to a host.
        assert!(!is_local_ip("192.0.2.1".parse().unwrap()));
    }

    /// Real sockets: a listener of this test process on a neighbouring port is found by its
    /// name, and one on the same port at another address by the port.
    #[test]
    fn real_listeners() {
        let named = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = named.local_addr().unwrap().port();
        let other = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let other_port = other.local_addr().unwrap().port();
        let all = fix502_probe::listeners::listeners().unwrap();
        let me = std::process::id();
        let mine = all
            .iter()
            .find(|l| l.socket_addr == named.local_addr().ok())
            .expect("our listener is listed");
        assert_eq!(mine.pid, Some(me));
        let group = mine.process.clone().expect("our process name is visible");

        let wanted = if port == u16::MAX { port - 1 } else { port + 1 };
        let e = endpoint(Peer::inet("127.0.0.1", wanted), Some(&group));
        let found = candidates(&e, PassModule::Proxy, true, &all, &[], &no_units);
        let c = found
            .iter()
            .find(|c| c.listener.socket_addr == named.local_addr().ok())
            .unwrap_or_else(|| panic!("{group}: {found:?}"));
        assert!(matches!(c.reasons.first(), Some(Reason::Name(_))), "{c:?}");

        // Same port, other address; never when our pid counts as nginx's.
        let e = endpoint(Peer::inet("127.0.0.1", other_port), None);
        let found = candidates(&e, PassModule::Proxy, true, &all, &[], &no_units);
        assert_eq!(
            found.first().map(|c| c.listener.addr.clone()),
            Some(format!("127.0.0.2:{other_port}"))
        );
        assert_eq!(found[0].reasons, vec![Reason::SamePort { local: true }]);
        let found = candidates(&e, PassModule::Proxy, true, &all, &[me], &no_units);
        assert!(
            found.iter().all(|c| c.listener.pid != Some(me)),
            "{found:?}"
        );
        drop((named, other));
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
            via: Default::default(),
            notes: Vec::new(),
        };
        let facts = Facts::new(crate::options::Options::default(), discovery);
        let findings = listeners(&facts).await;
        assert_eq!(findings.len(), 2, "{findings:#?}");
        let group = &findings[0];
        assert_eq!(group.severity, Severity::Error);
        assert_eq!(group.cause, Some(Cause::UpstreamWrongAddress));
        assert_eq!(group.upstream, Some(format!("127.0.0.1:{pa}")));
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

    /// A real PHP-FPM pool on 127.0.0.1:Q is what `fastcgi_pass 127.0.0.1:P` most likely
    /// meant (root only: the pool runs as root with `-R`).
    #[test]
    fn real_php_fpm_on_another_port() {
        const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";
        if !nix::unistd::geteuid().is_root() || !Path::new(PHP_FPM).exists() {
            return;
        }
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (pool_port, wanted) = (free(), free());
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("php-fpm.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n[t]\nlisten = 127.0.0.1:{pool_port}\npm = static\npm.max_children = 1\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(PHP_FPM)
            .args(["-R", "-F", "-y"])
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut up = false;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", pool_port)).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let all = fix502_probe::listeners::listeners();
        // SIGTERM: the php-fpm master stops its workers too (SIGKILL would orphan them,
        // still listening).
        fix502_lab::stop_child(
            &mut child,
            nix::sys::signal::Signal::SIGTERM,
            std::time::Duration::from_secs(5),
        );
        assert!(up, "php-fpm did not listen on 127.0.0.1:{pool_port}");
        let all = all.unwrap();
        let e = endpoint(Peer::inet("127.0.0.1", wanted), None);
        let found = candidates(&e, PassModule::FastCgi, true, &all, &[], &|pid| {
            systemd_unit_of(pid)
        });
        let c = found
            .iter()
            .find(|c| c.listener.addr == format!("127.0.0.1:{pool_port}"))
            .unwrap_or_else(|| panic!("{found:#?}"));
        assert_eq!(c.listener.pid, Some(child.id()));
        assert_eq!(c.reasons, vec![Reason::AppServer("php-fpm".to_owned())]);
        // The same pool is no candidate for proxy_pass.
        let found = candidates(&e, PassModule::Proxy, true, &all, &[], &no_units);
        assert!(
            found.iter().all(|c| c.listener.pid != Some(child.id())),
            "{found:#?}"
        );
    }
}
