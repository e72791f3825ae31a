//! The `network.dns` check: name resolution as nginx does it. It covers three things:
//!
//! - Host names in static pass targets and `upstream` servers, resolved with getaddrinfo
//!   as nginx's master did at start or reload, inside its mount namespace
//!   ([`dns::resolve_as`]).
//! - Stale DNS: nginx keeps the addresses of those names until a reload, so when the error
//!   log shows it connecting to an address the name no longer has, the name moved (the
//!   evidence and its finding are in `stale.rs`; this file asks for them).
//! - Pass targets with variables, which nginx resolves per request with its own `resolver`
//!   (no `/etc/hosts`, no search domains): no resolver in effect, or a resolver that does
//!   not answer the name ([`dns::query_resolver`], asked exactly as nginx asks).
//!
//! What belongs here: the check's entry point, the static names, the variable pass
//! targets and their resolver queries, the wording of their findings, and their tests.

use std::fmt::Write as _;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use fix502_nginx::config::each_block;
use fix502_nginx::resolver::{ResolverSpec, literal_host, resolver_of};
use fix502_nginx::view::{PassTarget, Peer, TargetAddress};
use fix502_probe::dns::{self, DnsFailure, ResolverQuery};

use super::names::{DEFAULT_PORT, DNS, join, variable_pass_targets};
use super::stale::{
    LoggedPeer, dynamic_ports, is_stale, logged_peers, stale_finding, workers_started,
};
use crate::causes::Cause;
use crate::check::FindingsFuture;
use crate::facts::{Facts, LogRead, join_all};
use crate::report::{Finding, Location, Severity};

/// At most this many other places are listed in one finding.
const MAX_LISTED: usize = 8;

fn host_names(facts: &Facts) -> Vec<(String, u16, Peer)> {
    let mut v: Vec<(String, u16, Peer)> = Vec::new();
    for e in &facts.endpoints {
        if let Peer::Inet { host, port } = &e.peer
            && host.parse::<IpAddr>().is_err()
            && !v.iter().any(|(h, p, _)| h == host && p == port)
        {
            v.push((host.clone(), *port, e.peer.clone()));
        }
    }
    v
}

pub(super) fn dns_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = static_names(facts).await;
        out.extend(variable_targets(facts).await);
        if out.is_empty() {
            out.push(Finding::new(
                DNS,
                Severity::Info,
                "no host-name upstreams: nothing to resolve",
            ));
        }
        out
    })
}

/// The pid of nginx's master, whose mount namespace (its `/etc/hosts`, `/etc/resolv.conf`)
/// decides what getaddrinfo gave nginx.
fn master_pid(facts: &Facts) -> Option<u32> {
    facts.discovery.master.as_ref().map(|m| m.pid)
}

// ---------------------------------------------------------------------------------------
// Static host names: getaddrinfo as nginx at start or reload, and stale addresses.

async fn static_names(facts: &Facts) -> Vec<Finding> {
    let names = host_names(facts);
    if names.is_empty() {
        return Vec::new();
    }
    let master = master_pid(facts);
    let timeout = facts.timeout();
    let results = join_all(names.iter().map(|(host, port, _)| async move {
        let system = dns::resolve_as(master, host, *port, timeout).await;
        // localhost and names in /etc/hosts are nginx's business only through getaddrinfo.
        let direct = if host == "localhost" {
            None
        } else {
            Some(dns::resolve_with(host, &[], timeout).await)
        };
        (system, direct)
    }))
    .await;
    let logged = logged_peers(facts.logs().await);
    let reloaded = workers_started(facts);
    let literal_peers: Vec<SocketAddr> = facts
        .endpoints
        .iter()
        .filter_map(|e| match &e.peer {
            Peer::Inet { host, port } => Some(SocketAddr::new(host.parse().ok()?, *port)),
            Peer::Unix(_) => None,
        })
        .collect();
    let dynamic_ports = dynamic_ports(facts);
    let mut out = Vec::new();
    for ((host, port, peer), (system, direct)) in names.iter().zip(results) {
        let endpoint = facts.endpoints.iter().find(|e| e.peer == *peer);
        let at = endpoint.and_then(|e| e.location());
        // A logged address can be told to belong to this name only when no other name,
        // and no variable target, sends requests to the same port.
        let attributable = names.iter().filter(|(_, p, _)| p == port).count() == 1
            && dynamic_ports
                .as_ref()
                .is_some_and(|ports| !ports.contains(port));
        let unexplained: Vec<&LoggedPeer> = if attributable {
            logged
                .iter()
                .filter(|p| p.addr.port() == *port && !literal_peers.contains(&p.addr))
                .filter(|p| reloaded.is_none_or(|started| p.last_seen >= started))
                .collect()
        } else {
            Vec::new()
        };
        match system {
            Ok(answer) => {
                let addrs = join(&answer.addrs);
                let mut f = Finding::new(
                    DNS,
                    Severity::Info,
                    format!("{host} resolves to {addrs} (getaddrinfo, as nginx at start/reload)"),
                )
                .upstream(peer)
                .at(at.clone());
                if host == "localhost" && answer.addrs.len() > 1 {
                    f = Finding::new(DNS, Severity::Warning, format!("{host} resolves to {addrs}: nginx makes one peer of each and tries them in turn"))
                        .upstream(peer)
                        .at(at.clone())
                        .fix("Use an explicit address (127.0.0.1 or [::1]) where the app listens");
                }
                if let Some(Ok(direct)) = &direct {
                    let mut a = answer.addrs.clone();
                    let mut b = direct.addrs.clone();
                    a.sort();
                    b.sort();
                    if a != b {
                        f = f.evidence(format!("the DNS servers of /etc/resolv.conf answer {}: /etc/hosts or nsswitch differ", join(&b)));
                    }
                }
                out.push(f);
                let stale: Vec<&LoggedPeer> = unexplained
                    .into_iter()
                    .filter(|p| is_stale(p.addr, *port, &answer.addrs))
                    .collect();
                for peer in stale {
                    out.push(stale_finding(
                        host,
                        *port,
                        &answer,
                        peer,
                        at.clone(),
                        &facts.reload_command(),
                    ));
                }
            }
            Err(e) => {
                let mut f = Finding::new(
                    DNS,
                    Severity::Error,
                    format!("{host} cannot be resolved: {e}"),
                )
                .cause(Cause::UPSTREAM_DNS)
                .headlined()
                .upstream(peer)
                .at(at);
                if let Some(d) = &direct {
                    f = f.evidence(match d {
                        Ok(a) => format!("resolv.conf's DNS servers answer {}", join(&a.addrs)),
                        Err(e) => format!("resolv.conf's DNS servers: {e}"),
                    });
                }
                for peer in unexplained {
                    f = f.evidence(format!(
                        "nginx still connects to {} ({} error-log lines in the window): it resolved {host} at start; a reload now would fail with \"host not found in upstream\"",
                        peer.addr, peer.lines
                    ));
                }
                out.push(f.fix(format!(
                    "Fix the name or its DNS record; nginx resolves {host} only at start and reload"
                )));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Pass targets with variables: nginx's own resolver, per request.

/// What nginx does with the host of a variable pass target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Needs {
    /// Asks its resolver for this literal host (and connects to this port).
    Resolve(String, u16),
    /// The host is only known per request.
    Unknown,
    /// No DNS: an IP literal, or an `upstream {}` (explicit, or implicit from a static
    /// pass target with the same host and port).
    Nothing,
}

fn needs_of(facts: &Facts, target: &PassTarget) -> Needs {
    let Some((host, port)) = literal_host(&target.raw, DEFAULT_PORT) else {
        return Needs::Unknown;
    };
    if host.parse::<IpAddr>().is_ok() {
        return Needs::Nothing;
    }
    // An `upstream {}` block matches only when no port is written.
    let lower = target.raw.to_ascii_lowercase();
    let port_written = lower.contains(&format!("{}:", host.to_ascii_lowercase()));
    if !port_written && facts.view.group(&host).is_some() {
        return Needs::Nothing;
    }
    let implicit = facts.view.targets.iter().any(|t| {
        matches!(&t.address, TargetAddress::Peer(Peer::Inet { host: h, port: p })
            if h.eq_ignore_ascii_case(&host) && *p == port)
    });
    if implicit {
        return Needs::Nothing;
    }
    Needs::Resolve(host, port)
}

/// How a variable pass directive is written in findings.
fn written(target: &PassTarget) -> String {
    format!("{} {}", target.module.directive(), target.raw)
}

async fn variable_targets(facts: &Facts) -> Vec<Finding> {
    let logs = facts.logs().await;
    let mut out = Vec::new();
    // One resolver query per (host, port, resolver), reported once with every place.
    let mut queries: Vec<ResolverCase> = Vec::new();
    for target in variable_pass_targets(facts) {
        let needs = needs_of(facts, target);
        if needs == Needs::Nothing {
            continue;
        }
        let at = Some(Location::from(&target.span));
        match resolver_of(&target.settings) {
            None => out.push(no_resolver_finding(target, &needs, logs, facts).at(at)),
            Some((Err(reason), _)) => out.push(
                Finding::new(
                    DNS,
                    Severity::Warning,
                    format!("`resolver` for `{}` is invalid: {reason}", written(target)),
                )
                .at(at),
            ),
            Some((Ok(spec), resolver_timeout)) => {
                // A host known only per request is asked by the names nginx logged it
                // could not resolve.
                let wanted = match needs {
                    Needs::Resolve(host, port) => vec![(host, port)],
                    _ => {
                        let logged = unresolved_in_logs(logs);
                        if logged.is_empty() {
                            out.push(unknown_host_finding(target).at(at));
                            continue;
                        }
                        logged
                            .into_iter()
                            .map(|h| {
                                let port = port_in_config(facts, &h).unwrap_or(DEFAULT_PORT);
                                (h, port)
                            })
                            .collect()
                    }
                };
                for (host, port) in wanted {
                    let place =
                        format!("`{}` at {}", written(target), Location::from(&target.span));
                    let same = queries.iter_mut().find(|q| q.asks(&host, port, &spec));
                    match same {
                        Some(case) => case.also.push(place.clone()),
                        None => queries.push(ResolverCase {
                            host,
                            port,
                            directive: written(target),
                            at: Location::from(&target.span),
                            spec: spec.clone(),
                            resolver_timeout,
                            also: Vec::new(),
                        }),
                    }
                }
            }
        }
    }
    let master = master_pid(facts);
    let timeout = facts.timeout();
    let asked = join_all(
        queries
            .iter()
            .map(|case| ask_like_nginx(case, master, timeout)),
    )
    .await;
    let suggestion = suggested_resolver(&nginx_nameservers(master));
    for (case, (query, servers, in_hosts)) in queries.iter().zip(asked) {
        let logged = resolve_log_lines(logs, &case.host);
        let mut f = resolver_finding(
            case,
            &query,
            &servers,
            &in_hosts,
            &logged,
            &suggestion,
            timeout,
        );
        if query.result.is_err() {
            let (evidence, fixes) = super::docker::why_unresolved(facts, &case.host);
            if !evidence.is_empty() {
                // Docker knows the name: its container is the fix, not the resolver.
                let at = f.evidence.len().min(1);
                f.evidence.splice(at..at, evidence);
                f.fix = fixes;
            }
        }
        out.push(f);
    }
    out
}

/// The finding for a variable pass target whose host is only known per request.
fn unknown_host_finding(target: &PassTarget) -> Finding {
    let message = format!(
        "`{}`: the host is only known per request, so nginx's resolver cannot be tried with it",
        written(target)
    );
    Finding::new(DNS, Severity::Info, message)
}

/// One host nginx's resolver must answer, and the places that need it.
#[derive(Debug, Clone)]
struct ResolverCase {
    host: String,
    port: u16,
    /// The first pass directive, as written.
    directive: String,
    /// Where it is.
    at: Location,
    /// The `resolver` in effect there.
    spec: ResolverSpec,
    /// The `resolver_timeout` in effect there.
    resolver_timeout: Duration,
    /// Other places with the same host and resolver.
    also: Vec<String>,
}

impl ResolverCase {
    /// Whether this case asks the same question of the same resolver.
    fn asks(&self, host: &str, port: u16, spec: &ResolverSpec) -> bool {
        self.host == host
            && self.port == port
            && self.spec.servers == spec.servers
            && self.spec.names == spec.names
            && (self.spec.ipv4, self.spec.ipv6) == (spec.ipv4, spec.ipv6)
    }
}

/// Queries the case's resolver as nginx would. Returns the query, the servers asked, and,
/// when the query failed, the addresses the name has in the `/etc/hosts` nginx's master
/// sees (read from the file: no other resolver is asked, as nginx would ask none).
async fn ask_like_nginx(
    case: &ResolverCase,
    master: Option<u32>,
    timeout: Duration,
) -> (ResolverQuery, Vec<SocketAddr>, Vec<IpAddr>) {
    let mut servers = case.spec.servers.clone();
    // Names in `resolver` were resolved by nginx at start, with getaddrinfo.
    for name in &case.spec.names {
        let Some((host, port)) = name.rsplit_once(':') else {
            continue;
        };
        let port = port.parse().unwrap_or(53);
        if let Ok(answer) = dns::resolve_as(master, host, port, timeout).await {
            servers.extend(answer.addrs.iter().map(|ip| SocketAddr::new(*ip, port)));
        }
    }
    let wait = case.resolver_timeout.min(timeout);
    let query =
        dns::query_resolver(&case.host, &servers, case.spec.ipv4, case.spec.ipv6, wait).await;
    let in_hosts = if query.result.is_err() {
        dns::hosts_entry(master, &case.host)
    } else {
        Vec::new()
    };
    (query, servers, in_hosts)
}

/// Error-log lines about resolving `host` per request: `(count, one line)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ResolveLines {
    /// `no resolver defined to resolve HOST` lines.
    no_resolver: u64,
    /// `HOST could not be resolved (...)` lines.
    not_resolved: u64,
    /// The latest of either.
    sample: Option<String>,
}

/// The port written with `host` in a URL anywhere in the config (`set $u
/// http://app:8000;`), when one is: a per-request target's host and port are in a value
/// like that.
fn port_in_config(facts: &Facts, host: &str) -> Option<u16> {
    let needle = format!("//{}:", host.to_ascii_lowercase());
    let mut found = None;
    each_block(&facts.config.as_ref()?.directives, &mut |block| {
        for arg in block.iter().flat_map(|d| &d.args) {
            let lower = arg.to_ascii_lowercase();
            if let Some(i) = lower.find(&needle) {
                let digits: String = lower[i + needle.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                found = found.or_else(|| digits.parse().ok());
            }
        }
    });
    found
}

/// The hosts nginx logged it could not resolve (`NAME could not be resolved`), at most a
/// few, in the order first seen.
fn unresolved_in_logs(logs: &[LogRead]) -> Vec<String> {
    const MAX_HOSTS: usize = 4;
    let mut hosts: Vec<String> = Vec::new();
    let groups = logs
        .iter()
        .filter_map(|read| read.summary.as_ref().ok())
        .flat_map(|summary| &summary.groups);
    for group in groups {
        if let Some(peer) = group.failure.peer.as_deref()
            && group.message.contains(" could not be resolved")
            && !hosts.iter().any(|h| h.eq_ignore_ascii_case(peer))
            && hosts.len() < MAX_HOSTS
        {
            hosts.push(peer.to_owned());
        }
    }
    hosts
}

fn resolve_log_lines(logs: &[LogRead], host: &str) -> ResolveLines {
    let mut found = ResolveLines::default();
    for read in logs {
        let Ok(summary) = &read.summary else {
            continue;
        };
        for group in &summary.groups {
            if !group
                .failure
                .peer
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(host))
            {
                continue;
            }
            if group.message.starts_with("no resolver defined to resolve ") {
                found.no_resolver = found.no_resolver.saturating_add(group.count);
            } else if group.message.contains(" could not be resolved") {
                found.not_resolved = found.not_resolved.saturating_add(group.count);
            } else {
                continue;
            }
            if let Some(line) = group.samples.last() {
                found.sample = Some(line.clone());
            }
        }
    }
    found
}

/// The variable hosts nginx logged `no resolver defined to resolve` for (any host).
fn logged_no_resolver(logs: &[LogRead]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for read in logs {
        let Ok(summary) = &read.summary else {
            continue;
        };
        for group in &summary.groups {
            if let Some(host) = group
                .message
                .strip_prefix("no resolver defined to resolve ")
            {
                match out.iter_mut().find(|(h, _)| h == host) {
                    Some((_, n)) => *n = n.saturating_add(group.count),
                    None => out.push((host.to_owned(), group.count)),
                }
            }
        }
    }
    out
}

fn no_resolver_finding(
    target: &PassTarget,
    needs: &Needs,
    logs: &[LogRead],
    facts: &Facts,
) -> Finding {
    let suggestion = suggested_resolver(&nginx_nameservers(master_pid(facts)));
    let directive = written(target);
    match needs {
        Needs::Resolve(host, port) => {
            let lines = resolve_log_lines(logs, host);
            let mut f = Finding::new(
                DNS,
                Severity::Error,
                no_resolver_message(&directive, Some(host)),
            )
            .cause(Cause::UPSTREAM_DNS)
            .headlined()
            .upstream(Peer::inet(host, *port));
            if lines.no_resolver > 0 {
                f = f.evidence(format!(
                    "{} error-log lines in the window: no resolver defined to resolve {host}",
                    lines.no_resolver
                ));
            }
            f.evidence("nginx resolves a pass argument with variables per request, with its own resolver; only IP addresses and upstream names need none")
                .fix(format!("Add `{suggestion}` to the server (or http) block"))
                .fix(format!("Or resolve once at start: `{}` without variables", directive_without_variables(target, host, *port)))
        }
        _ => {
            let logged = logged_no_resolver(logs);
            let severity = if logged.is_empty() {
                Severity::Warning
            } else {
                Severity::Error
            };
            let mut f = Finding::new(DNS, severity, no_resolver_message(&directive, None))
                .cause(Cause::UPSTREAM_DNS)
                .headlined();
            for (host, count) in logged.iter().take(MAX_LISTED) {
                f = f.evidence(format!(
                    "{count} error-log lines in the window: no resolver defined to resolve {host}"
                ));
            }
            if logged.is_empty() {
                f = f.evidence("no `no resolver defined` line in the window: the variable may hold only IP addresses or upstream names, which need no resolver");
            }
            f.fix(format!("Add `{suggestion}` to the server (or http) block"))
        }
    }
}

/// The message of a variable pass target without a resolver; `host` is `None` when the
/// host part is a variable.
fn no_resolver_message(directive: &str, host: Option<&str>) -> String {
    match host {
        Some(host) => format!(
            "`{directive}` needs a resolver: nginx resolves it per request and none is defined (nginx logs: no resolver defined to resolve {host})"
        ),
        None => format!(
            "`{directive}` needs a resolver unless its host is always an IP address or an upstream name: the host is only known per request and no resolver is defined (nginx logs: no resolver defined to resolve <host>)"
        ),
    }
}

/// `proxy_pass http://app.internal:8080;` for the fix that drops the variables (the URI
/// part is dropped too: the request URI is then passed as is).
fn directive_without_variables(target: &PassTarget, host: &str, port: u16) -> String {
    let scheme = match target.raw.find("://") {
        Some(i) => target.raw.get(..i + 3).unwrap_or_default(),
        None => "",
    };
    format!("{} {scheme}{host}:{port};", target.module.directive())
}

/// The nameservers of nginx's `/etc/resolv.conf` (its mount namespace's).
fn nginx_nameservers(master: Option<u32>) -> Vec<SocketAddr> {
    let path = match master {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/root/etc/resolv.conf")),
        None => PathBuf::from("/etc/resolv.conf"),
    };
    let mut text = String::new();
    let read = std::fs::File::open(&path).and_then(|f| f.take(64 * 1024).read_to_string(&mut text));
    if read.is_err() && master.is_some() {
        return nginx_nameservers(None);
    }
    dns::resolv_conf_nameservers(&text)
}

/// The `resolver` directive to suggest for the nameservers of nginx's resolv.conf:
/// systemd-resolved's stub (127.0.0.53, which also answers /etc/hosts names) as is, else
/// the servers listed there.
fn suggested_resolver(nameservers: &[SocketAddr]) -> String {
    if nameservers.is_empty() {
        return "resolver <your DNS server's IP> valid=30s;".to_owned();
    }
    let servers: Vec<String> = nameservers
        .iter()
        .map(|s| match s.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        })
        .collect();
    format!("resolver {} valid=30s;", servers.join(" "))
}

/// What nginx logs when its resolver fails this way (`ngx_resolver_strerror`).
fn nginx_resolve_error(host: &str, query: &ResolverQuery) -> String {
    let code = match (&query.result, query.rcode.as_deref()) {
        (Err(DnsFailure::Timeout), _) => "110: Operation timed out",
        (Err(DnsFailure::NxDomain | DnsFailure::NoRecords), _) => "3: Host not found",
        (Err(DnsFailure::ServFail), _) => "2: Server failure",
        (Err(DnsFailure::Refused), _) => "5: Operation refused",
        (_, Some("FORMERR")) => "1: Format error",
        (_, Some("NOTIMP")) => "4: Unimplemented",
        _ => "…",
    };
    format!("{host} could not be resolved ({code})")
}

fn resolver_finding(
    case: &ResolverCase,
    query: &ResolverQuery,
    servers: &[SocketAddr],
    in_hosts: &[IpAddr],
    logged: &ResolveLines,
    suggestion: &str,
    timeout: Duration,
) -> Finding {
    let host = &case.host;
    let asked = if servers.is_empty() {
        "no server".to_owned()
    } else {
        servers
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let families = match (case.spec.ipv4, case.spec.ipv6) {
        (true, true) => "A and AAAA",
        (true, false) => "A (ipv6=off)",
        _ => "AAAA (ipv4=off)",
    };
    let took = ms(query.elapsed);
    let mut f = match &query.result {
        Ok(answer) => Finding::new(
            DNS,
            Severity::Info,
            format!(
                "nginx's resolver ({asked}) resolves {host} to {} ({}, {took}) for `{}`",
                join(&answer.addrs),
                query.rcode.as_deref().unwrap_or("no query"),
                case.directive
            ),
        )
        .upstream(Peer::inet(host, case.port)),
        Err(failure) => {
            let mut f = Finding::new(
                DNS,
                Severity::Error,
                format!(
                    "nginx's resolver cannot resolve {host} for `{}`: {failure} (nginx logs: {})",
                    case.directive,
                    nginx_resolve_error(host, query)
                ),
            )
            .cause(Cause::UPSTREAM_DNS)
            .headlined()
            .upstream(Peer::inet(host, case.port));
            f = f.evidence(match (query.server, query.rcode.as_deref()) {
                (Some(server), _) if matches!(failure, DnsFailure::Malformed(_)) => format!(
                    "resolver {server} answered the {families} queries with bytes that are not DNS messages (nginx ignores such answers and keeps waiting)"
                ),
                (Some(server), Some(rcode)) => {
                    format!(
                        "resolver {server} answered {rcode} to the {families} queries in {took}"
                    )
                }
                _ => {
                    let mut line =
                        format!("no answer from {asked} to the {families} queries within {took}");
                    if let Some(error) = &query.transport_error {
                        let _ = write!(line, " ({error})");
                    }
                    if case.resolver_timeout > timeout {
                        let _ = write!(
                            line,
                            "; nginx waits up to resolver_timeout {}",
                            ms(case.resolver_timeout)
                        );
                    }
                    line
                }
            });
            if !in_hosts.is_empty() {
                f = f.evidence(format!(
                    "{host} is in /etc/hosts ({}), but nginx's resolver ignores /etc/hosts",
                    join(in_hosts)
                ));
            }
            // A suggestion of the very servers asked is no fix.
            let suggestion = if suggested_resolver(servers) == suggestion {
                "resolver <a DNS server that answers>;"
            } else {
                suggestion
            };
            for fix in resolver_fixes(host, failure, in_hosts, suggestion) {
                f = f.fix(fix);
            }
            f
        }
    };
    f = f.at(Some(case.at.clone()));
    if logged.no_resolver + logged.not_resolved > 0 {
        f = f.evidence(format!(
            "{} error-log lines in the window about resolving {host}",
            logged.no_resolver + logged.not_resolved
        ));
        if let Some(sample) = &logged.sample {
            f = f.evidence(sample.clone());
        }
    }
    for place in case.also.iter().take(MAX_LISTED) {
        f = f.evidence(format!("also {place}"));
    }
    f
}

fn resolver_fixes(
    host: &str,
    failure: &DnsFailure,
    in_hosts: &[IpAddr],
    suggestion: &str,
) -> Vec<String> {
    let mut fixes = Vec::new();
    match failure {
        DnsFailure::NxDomain | DnsFailure::NoRecords => {
            if !in_hosts.is_empty() {
                fixes.push(format!(
                    "Give nginx's resolver a DNS server that knows {host} (systemd-resolved's 127.0.0.53 also answers /etc/hosts names), or use the address {} instead of the name",
                    join(in_hosts)
                ));
            } else {
                fixes.push(format!("Create the DNS record of {host}, or fix the name in the pass directive"));
            }
            if !host.contains('.') {
                fixes.push(format!(
                    "nginx's resolver applies no search domains: write the full name of {host} (e.g. {host}.<namespace>.svc.cluster.local)"
                ));
            }
        }
        DnsFailure::Timeout => fixes.push(format!(
            "Nothing answers DNS at the `resolver` address: point it at a DNS server nginx can reach, e.g. `{suggestion}`"
        )),
        DnsFailure::Refused => fixes.push(format!(
            "The DNS server refuses nginx's queries (no recursion for this client): use one that answers, e.g. `{suggestion}`"
        )),
        DnsFailure::ServFail => fixes.push(format!(
            "The DNS server fails on {host} (SERVFAIL): fix its zone or forwarders, or use another one, e.g. `{suggestion}`"
        )),
        _ => fixes.push(format!("Check the `resolver` directive, e.g. `{suggestion}`")),
    }
    fixes
}

/// A duration in whole milliseconds, e.g. `3 ms`.
fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use fix502_probe::dns::DnsAnswer;
    use std::net::UdpSocket;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn resolver_suggestions() {
        assert_eq!(
            suggested_resolver(&[addr("127.0.0.53:53")]),
            "resolver 127.0.0.53 valid=30s;"
        );
        assert_eq!(
            suggested_resolver(&[addr("10.0.0.2:53"), addr("[fd00::53]:53")]),
            "resolver 10.0.0.2 [fd00::53] valid=30s;"
        );
        assert_eq!(
            suggested_resolver(&[]),
            "resolver <your DNS server's IP> valid=30s;"
        );
    }

    fn query(result: Result<DnsAnswer, DnsFailure>, rcode: Option<&str>) -> ResolverQuery {
        ResolverQuery {
            server: rcode.map(|_| addr("127.0.0.1:5353")),
            result,
            rcode: rcode.map(str::to_owned),
            transport_error: None,
            elapsed: Duration::from_millis(3),
        }
    }

    fn case() -> ResolverCase {
        let span = fix502_nginx::config::Span {
            file: Arc::from(Path::new("/etc/nginx/conf.d/app.conf")),
            line: 9,
        };
        ResolverCase {
            host: "app.internal".to_owned(),
            port: 8080,
            directive: "proxy_pass http://app.internal:8080$request_uri".to_owned(),
            at: Location::from(&span),
            spec: ResolverSpec {
                servers: vec![addr("127.0.0.1:5353")],
                names: Vec::new(),
                valid: None,
                ipv4: true,
                ipv6: false,
                span,
            },
            resolver_timeout: Duration::from_secs(30),
            also: vec!["`proxy_pass http://app.internal:8080$uri` at x.conf:3".to_owned()],
        }
    }

    #[test]
    fn nginx_log_lines_for_resolver_failures() {
        let text = |failure, rcode| nginx_resolve_error("app", &query(Err(failure), rcode));
        assert_eq!(
            text(DnsFailure::NxDomain, Some("NXDOMAIN")),
            "app could not be resolved (3: Host not found)"
        );
        assert_eq!(
            text(DnsFailure::NoRecords, Some("NOERROR")),
            "app could not be resolved (3: Host not found)"
        );
        assert_eq!(
            text(DnsFailure::ServFail, Some("SERVFAIL")),
            "app could not be resolved (2: Server failure)"
        );
        assert_eq!(
            text(DnsFailure::Refused, Some("REFUSED")),
            "app could not be resolved (5: Operation refused)"
        );
        assert_eq!(
            text(DnsFailure::Timeout, None),
            "app could not be resolved (110: Operation timed out)"
        );
    }

    #[test]
    fn resolver_failure_wording() {
        let servers = [addr("127.0.0.1:5353")];
        let hosts = [ip("10.0.0.5")];
        let logged = ResolveLines {
            no_resolver: 0,
            not_resolved: 4,
            sample: Some("… app.internal could not be resolved (3: Host not found) …".to_owned()),
        };
        let f = resolver_finding(
            &case(),
            &query(Err(DnsFailure::NxDomain), Some("NXDOMAIN")),
            &servers,
            &hosts,
            &logged,
            "resolver 127.0.0.53 valid=30s;",
            Duration::from_secs(2),
        );
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.cause, Some(Cause::UPSTREAM_DNS));
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("app.internal:8080")
        );
        assert_eq!(
            f.message,
            "nginx's resolver cannot resolve app.internal for `proxy_pass http://app.internal:8080$request_uri`: host not found (NXDOMAIN) (nginx logs: app.internal could not be resolved (3: Host not found))"
        );
        assert_eq!(
            f.evidence,
            vec![
                "resolver 127.0.0.1:5353 answered NXDOMAIN to the A (ipv6=off) queries in 3 ms",
                "app.internal is in /etc/hosts (10.0.0.5), but nginx's resolver ignores /etc/hosts",
                "4 error-log lines in the window about resolving app.internal",
                "… app.internal could not be resolved (3: Host not found) …",
                "also `proxy_pass http://app.internal:8080$uri` at x.conf:3",
            ]
        );
        assert!(
            f.fix[0].contains("127.0.0.53") && f.fix[0].contains("10.0.0.5"),
            "{:?}",
            f.fix
        );
        assert_eq!(f.location.as_ref().unwrap().line, 9);

        // A silent resolver: no server, the socket error, and nginx's longer wait.
        let mut silent = query(Err(DnsFailure::Timeout), None);
        silent.transport_error = Some("Connection refused (os error 111)".to_owned());
        silent.elapsed = Duration::from_secs(2);
        let f = resolver_finding(
            &case(),
            &silent,
            &servers,
            &[],
            &ResolveLines::default(),
            "resolver 127.0.0.53 valid=30s;",
            Duration::from_secs(2),
        );
        assert_eq!(
            f.evidence[0],
            "no answer from 127.0.0.1:5353 to the A (ipv6=off) queries within 2000 ms (Connection refused (os error 111)); nginx waits up to resolver_timeout 30000 ms"
        );
        assert!(f.message.ends_with(
            "(nginx logs: app.internal could not be resolved (110: Operation timed out))"
        ));
        assert!(f.fix[0].contains("`resolver 127.0.0.53 valid=30s;`"));

        // Success is an Info finding with the answer.
        let ok = query(
            Ok(DnsAnswer {
                addrs: vec![ip("10.0.0.5")],
                elapsed: Duration::ZERO,
            }),
            Some("NOERROR"),
        );
        let f = resolver_finding(
            &case(),
            &ok,
            &servers,
            &[],
            &ResolveLines::default(),
            "",
            Duration::from_secs(2),
        );
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.cause, None);
        assert_eq!(
            f.message,
            "nginx's resolver (127.0.0.1:5353) resolves app.internal to 10.0.0.5 (NOERROR, 3 ms) for `proxy_pass http://app.internal:8080$request_uri`"
        );
    }

    #[test]
    fn no_resolver_wording() {
        assert_eq!(
            no_resolver_message(
                "proxy_pass http://app.internal:8080$request_uri",
                Some("app.internal")
            ),
            "`proxy_pass http://app.internal:8080$request_uri` needs a resolver: nginx resolves it per request and none is defined (nginx logs: no resolver defined to resolve app.internal)"
        );
        assert!(
            no_resolver_message("proxy_pass http://$backend", None)
                .contains("the host is only known per request")
        );
    }

    // ---- The whole check on a real configuration, log file and DNS servers on loopback.

    /// A DNS server for the check tests: answers A queries for `known` with `answer`, AAAA
    /// with NOERROR and nothing, and everything else with NXDOMAIN. Answers at most `max`
    /// queries, each within 2 s, then stops.
    fn tiny_dns(known: &'static str, answer: [u8; 4], max: usize) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let local = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..max {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    return;
                };
                let query = &buf[..len];
                // Header (12) + name + type (2) + class (2).
                let mut at = 12;
                let mut labels = Vec::new();
                while let Some(&n) = query.get(at) {
                    at += 1;
                    if n == 0 {
                        break;
                    }
                    labels.push(
                        String::from_utf8_lossy(&query[at..at + usize::from(n)]).to_lowercase(),
                    );
                    at += usize::from(n);
                }
                let qtype = u16::from_be_bytes([query[at], query[at + 1]]);
                let question_end = at + 4;
                let name = labels.join(".");
                let mut reply = query[..question_end].to_vec();
                reply[2] = 0x81; // QR, RD
                reply[3] = 0x80; // RA, NOERROR
                if name != known {
                    reply[3] |= 3; // NXDOMAIN
                } else if qtype == 1 {
                    reply[7] = 1; // one answer
                    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
                    reply.extend_from_slice(&answer);
                }
                let _ = socket.send_to(&reply, peer);
            }
        });
        local
    }

    #[tokio::test]
    async fn variable_target_without_resolver() {
        let dir = tempfile::tempdir().unwrap();
        let facts = facts_for(
            dir.path(),
            "events {}\nhttp { server { listen 127.0.0.1:1;\n location / { proxy_pass http://app.lab.fix502.test:8080$request_uri; }\n location /ip/ { proxy_pass http://127.0.0.1:8080$request_uri; } } }\n",
            &format!(
                "{} [error] 7#7: *13 no resolver defined to resolve app.lab.fix502.test, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", host: \"x\"\n",
                now_text()
            ),
        );
        let findings = dns_check(&facts).await;
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let f = &findings[0];
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.cause, Some(Cause::UPSTREAM_DNS));
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("app.lab.fix502.test:8080")
        );
        assert_eq!(
            f.message,
            "`proxy_pass http://app.lab.fix502.test:8080$request_uri` needs a resolver: nginx resolves it per request and none is defined (nginx logs: no resolver defined to resolve app.lab.fix502.test)"
        );
        assert_eq!(f.location.as_ref().unwrap().line, 3);
        assert_eq!(
            f.evidence[0],
            "1 error-log lines in the window: no resolver defined to resolve app.lab.fix502.test"
        );
        assert!(f.fix[0].starts_with("Add `resolver "), "{:?}", f.fix);
        assert_eq!(
            f.fix[1],
            "Or resolve once at start: `proxy_pass http://app.lab.fix502.test:8080;` without variables"
        );
    }

    /// Only names the test server answers are ever resolved; `localhost` is looked up in
    /// /etc/hosts (the file) when the resolver fails, and no other resolver is asked.
    #[tokio::test]
    async fn variable_targets_asked_at_their_resolver() {
        let dns = tiny_dns("app.lab.fix502.test", [127, 0, 0, 7], 8);
        let closed = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let facts = facts_for(
            dir.path(),
            &format!(
                "events {{}}\nhttp {{ server {{ listen 127.0.0.1:1; resolver {dns} ipv6=off;\n location / {{ proxy_pass http://app.lab.fix502.test:8080$request_uri; }}\n location /l/ {{ proxy_pass http://localhost:8081$request_uri; }}\n location /c/ {{ resolver {closed}; proxy_pass http://localhost:8082$request_uri; }} }} }}\n"
            ),
            "",
        );
        let findings = dns_check(&facts).await;
        assert_eq!(findings.len(), 3, "{findings:#?}");

        let ok = &findings[0];
        assert_eq!(ok.severity, Severity::Info, "{ok:#?}");
        assert!(
            ok.message.starts_with(&format!(
                "nginx's resolver ({dns}) resolves app.lab.fix502.test to 127.0.0.7 (NOERROR, "
            )),
            "{}",
            ok.message
        );

        // localhost is in /etc/hosts, which nginx's resolver does not read.
        let hosts = &findings[1];
        assert_eq!(hosts.severity, Severity::Error);
        assert_eq!(hosts.cause, Some(Cause::UPSTREAM_DNS));
        assert_eq!(
            hosts.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("localhost:8081")
        );
        assert_eq!(
            hosts.evidence[0],
            format!(
                "resolver {dns} answered NXDOMAIN to the A (ipv6=off) queries in {}",
                hosts.evidence[0].rsplit(" in ").next().unwrap()
            )
        );
        assert!(
            hosts.evidence[1].starts_with("localhost is in /etc/hosts (127.0.0.1")
                && hosts.evidence[1].ends_with("), but nginx's resolver ignores /etc/hosts"),
            "{:?}",
            hosts.evidence
        );

        let refused = &findings[2];
        assert_eq!(refused.severity, Severity::Error);
        assert_eq!(
            refused
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("localhost:8082")
        );
        assert!(
            refused.message.ends_with("(110: Operation timed out))"),
            "{}",
            refused.message
        );
        assert!(
            refused.evidence[0].starts_with(&format!(
                "no answer from {closed} to the A and AAAA queries"
            )),
            "{:?}",
            refused.evidence
        );
        assert!(refused.evidence[1].starts_with("localhost is in /etc/hosts"));
    }
}
