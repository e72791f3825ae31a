//! Static 502 risks: rules over the nginx configuration (and a few facts about the host)
//! that predict 502s (and the 500s people take for them) before any log shows one.
//!
//! What belongs here: the `config.risks` check, the [`HostContext`] it gathers (what
//! `localhost` resolves to as nginx sees it, the workers' open-file limit, nginx's own
//! listening sockets, the system's DNS servers), [`rules`], which runs the pure rules, and
//! the helpers several rules share (wording of places and fixes, pass-argument pieces).
//! Every rule yields one [`Severity::Warning`] finding per risk, with the directive that
//! makes the risk, why it leads to a failure, and the directive that removes it. The
//! diagnosis engine uses these only to corroborate causes that logs or probes observed.
//!
//! The rules follow nginx's own behaviour (docs/nginx-messages.md §5–§8, §15, §20 and §22),
//! one file per group:
//!
//! 1. `localhost` upstreams become one peer per address (`::1` and `127.0.0.1`) (`names.rs`).
//! 2. A variable pass target that needs DNS but has no `resolver` (nginx-messages §5) (`names.rs`).
//! 3. Host names resolved only at start or reload (stale addresses) (`names.rs`).
//! 4. `keepalive` in an upstream whose users cannot reuse connections (`keepalive.rs`).
//! 5. HTTPS/gRPCS to a host name without SNI (`tls.rs`).
//! 6. Proxying to nginx's own listening address and server block (a loop) (`proxy_loop.rs`).
//! 7. Multi-server groups where one failure per server takes the group down (§6)
//!    (`groups.rs`).
//! 8. `worker_connections` above the workers' open-file limit (§15) (`limits.rs`).

mod groups;
mod keepalive;
mod limits;
mod names;
mod proxy_loop;
mod tls;

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use fix502_nginx::config::{Config, Directive, Span};
use fix502_nginx::view::{ConfigView, PassTarget, Peer, UpstreamServer};
use fix502_probe::listeners::ListenerKind;

use crate::causes::Cause;
use crate::check::{FindingsFuture, FnCheck};
use crate::facts::Facts;
use crate::report::{CheckId, Evidence, Finding, Location, Severity, StepId};
use crate::upstream::Upstream;

/// Check id.
pub const RISKS: CheckId = CheckId::new("config.risks", StepId::Config, Evidence::Config);

/// The checks of this module.
pub static CHECKS: [FnCheck; 1] = [FnCheck::new(RISKS, risks_check)];

/// How many rules [`rules`] runs.
pub const RULE_COUNT: usize = 8;

/// At most this many places, servers or fix lines are listed in one finding.
const MAX_LISTED: usize = 8;

/// What the rules need to know about the host, gathered by the check (so the rules stay
/// pure and testable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostContext {
    /// nginx's version as numbers, when known.
    pub version: Option<(u32, u32, u32)>,
    /// What getaddrinfo gives for `localhost`, as nginx sees it (AF_UNSPEC with
    /// AI_ADDRCONFIG), in order; empty when unknown.
    pub localhost_addrs: Vec<IpAddr>,
    /// The soft RLIMIT_NOFILE of the running workers (the lowest one, from
    /// `/proc/PID/limits`); `None` when nginx does not run or it cannot be read.
    pub worker_nofile: Option<u64>,
    /// TCP sockets the nginx master and workers listen on now, if known.
    pub nginx_listening: Vec<SocketAddr>,
    /// The DNS servers of `/etc/resolv.conf`, for the `resolver` directive a fix suggests.
    pub nameservers: Vec<IpAddr>,
}

fn risks_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let Some(config) = &facts.config else {
            return vec![Finding::could_not_check(
                RISKS,
                facts
                    .config_error
                    .clone()
                    .unwrap_or_else(|| "config not loaded".to_owned()),
            )];
        };
        let host = gather(facts).await;
        let mut out = rules(config, &facts.view, &host);
        if out.is_empty() {
            out.push(Finding::new(
                RISKS,
                Severity::Info,
                format!(
                    "{RULE_COUNT} static 502-risk rules checked over {} pass directive(s) and {} upstream group(s): none applies",
                    facts.view.targets.len(),
                    facts.view.upstreams.len()
                ),
            ));
        }
        out
    })
}

/// Every rule over the config: one Warning finding per risk, each with check
/// [`RISKS`], a cause, the upstream as nginx writes it (when there is one), the location of
/// the directive that makes the risk, a one-line message, evidence and at least one fix.
pub fn rules(config: &Config, view: &ConfigView, host: &HostContext) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(names::localhost_rule(config, view, host));
    out.extend(names::resolver_rule(config, view, host));
    out.extend(names::stale_dns_rule(config, view, host));
    out.extend(keepalive::keepalive_rule(view, host));
    out.extend(tls::sni_rule(view));
    out.extend(proxy_loop::loop_rule(view, host));
    out.extend(groups::max_fails_rule(config, view));
    out.extend(limits::fd_rule(config, host));
    out
}

// ---------------------------------------------------------------------------------------
// Gathering the host context.

/// Gathers the [`HostContext`] of this run.
async fn gather(facts: &Facts) -> HostContext {
    let uses_localhost = facts
        .endpoints
        .iter()
        .any(|e| matches!(&e.peer, Peer::Inet { host, .. } if is_localhost(host)));
    let localhost_addrs = if uses_localhost {
        match fix502_probe::dns::resolve_system("localhost", 80, facts.timeout()).await {
            Ok(answer) => {
                let ipv6 = tokio::task::spawn_blocking(has_non_loopback_ipv6)
                    .await
                    .ok()
                    .flatten();
                addrconfig_filter(answer.addrs, ipv6)
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot resolve localhost");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let workers = facts.worker_pids();
    let pids = facts.nginx_pids();
    let (worker_nofile, nameservers) = tokio::task::spawn_blocking(move || {
        (
            workers_nofile(&workers),
            read_nameservers(Path::new("/etc/resolv.conf")),
        )
    })
    .await
    .unwrap_or_default();
    let nginx_listening = match facts.listeners().await {
        Ok(all) => all
            .iter()
            .filter(|l| l.kind == ListenerKind::Tcp)
            .filter(|l| l.pid.is_some_and(|p| pids.contains(&p)))
            .filter_map(|l| l.socket_addr)
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list listening sockets");
            Vec::new()
        }
    };
    HostContext {
        version: facts.nginx_version(),
        localhost_addrs,
        worker_nofile,
        nginx_listening,
        nameservers,
    }
}

/// The lowest soft open-file limit of these processes (`u64::MAX` for unlimited).
fn workers_nofile(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .filter_map(|pid| fix502_probe::host::open_files_limit(Path::new("/"), *pid))
        .map(|(soft, _)| soft.unwrap_or(u64::MAX))
        .min()
}

/// Reads at most 64 KiB of a small system file.
fn read_small(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The `nameserver` addresses of a resolv.conf (scoped IPv6 addresses, which `resolver`
/// cannot take, are skipped by the parser).
fn read_nameservers(path: &Path) -> Vec<IpAddr> {
    read_small(path)
        .map(|text| {
            fix502_probe::dns::resolv_conf_nameservers(&text)
                .iter()
                .map(SocketAddr::ip)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an IPv6 address other than `::1` is configured (`/proc/net/if_inet6`).
fn has_non_loopback_ipv6() -> Option<bool> {
    let text = read_small(Path::new("/proc/net/if_inet6"))?;
    Some(text.lines().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|a| a != "00000000000000000000000000000001")
    }))
}

/// glibc's AI_ADDRCONFIG, which nginx passes: IPv6 answers are kept only when a
/// non-loopback IPv6 address is configured. `ipv6` is `None` when unknown (kept as is).
fn addrconfig_filter(addrs: Vec<IpAddr>, ipv6: Option<bool>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if (a.is_ipv4() || ipv6 != Some(false)) && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Small helpers shared by the rules.

fn warning(cause: Cause, message: String) -> Finding {
    Finding::new(RISKS, Severity::Warning, message).cause(cause)
}

fn loc(span: &Span) -> Option<Location> {
    Some(Location::from(span))
}

fn is_localhost(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
}

/// The pass directive as written: `proxy_pass http://backend`.
fn written(t: &PassTarget) -> String {
    format!("{} {}", t.module.directive(), t.raw)
}

/// `` `proxy_pass http://backend` at /etc/nginx/nginx.conf:12 ``
fn written_at(t: &PassTarget) -> String {
    format!("`{}` at {}", written(t), Location::from(&t.span))
}

/// A host name (not an IP literal) of a TCP peer.
fn name_of(peer: &Peer) -> Option<(&str, u16)> {
    match peer {
        Peer::Inet { host, port } if !peer.is_ip_literal() => Some((host.as_str(), *port)),
        _ => None,
    }
}

/// A directive of the tree written at `span` with this name and first argument.
fn directive_at<'a>(
    directives: &'a [Directive],
    span: &Span,
    name: &str,
    first: &str,
) -> Option<&'a Directive> {
    // Each directive is pushed once: bounded by the size of the tree.
    let mut stack: Vec<&Directive> = directives.iter().collect();
    while let Some(d) = stack.pop() {
        if d.name == name && d.span == *span && d.args.first().is_some_and(|a| a == first) {
            return Some(d);
        }
        if let Some(block) = &d.block {
            stack.extend(block.iter());
        }
    }
    None
}

/// The arguments of an upstream `server` line as written.
fn server_args(config: &Config, s: &UpstreamServer) -> Vec<String> {
    directive_at(&config.directives, &s.span, "server", &s.raw)
        .map(|d| d.args.clone())
        .unwrap_or_else(|| vec![s.raw.clone()])
}

/// An argument as it must be written in a config file (quoted when needed).
fn quoted(arg: &str) -> String {
    if arg.is_empty() || arg.contains([' ', ';', '{', '}', '"', '\'', '#']) {
        format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        arg.to_owned()
    }
}

/// Arguments as written in a config file, separated by spaces.
fn quoted_args(args: &[String]) -> String {
    args.iter().map(|a| quoted(a)).collect::<Vec<_>>().join(" ")
}

/// `server a b c;`
fn server_line(args: &[String]) -> String {
    format!("server {};", quoted_args(args))
}

/// `text` with the first occurrence of `host` (ASCII case-insensitive) replaced by `with`.
fn replace_host(text: &str, host: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match lower.find(&host.to_ascii_lowercase()) {
        Some(i) => format!(
            "{}{}{}",
            text.get(..i).unwrap_or_default(),
            with,
            text.get(i + host.len()..).unwrap_or_default()
        ),
        None => text.to_owned(),
    }
}

/// What a place in the config is: the directive as written and where it is.
type Place = (String, Option<Location>);

/// One risk found at several places: the upstream, the places, and the fix lines.
type Grouped = (String, Vec<Place>, Vec<String>);

/// Adds `place` to the risk of `upstream` in `found`, or starts that risk with the fix
/// lines `fixes` makes (called only for a new risk).
fn group_place(
    found: &mut Vec<Grouped>,
    upstream: String,
    place: Place,
    fixes: impl FnOnce() -> Vec<String>,
) {
    match found.iter_mut().find(|(u, _, _)| *u == upstream) {
        Some((_, places, _)) => places.push(place),
        None => found.push((upstream, vec![place], fixes())),
    }
}

/// One finding per grouped risk: the message of its upstream, every place (at most
/// [`MAX_LISTED`]) then `evidence` as evidence, and its fix lines.
fn grouped_findings(
    found: Vec<Grouped>,
    cause: Cause,
    message: impl Fn(&str) -> String,
    evidence: &[String],
) -> Vec<Finding> {
    found
        .into_iter()
        .map(|(upstream, places, fixes)| {
            let mut f = warning(cause, message(&upstream))
                .upstream(Upstream::parse(&upstream))
                .at(places.first().and_then(|(_, at)| at.clone()));
            for line in place_lines(&places) {
                f = f.evidence(line);
            }
            for line in evidence {
                f = f.evidence(line.clone());
            }
            for fix in fixes {
                f = f.fix(fix);
            }
            f
        })
        .collect()
}

/// `places` as evidence lines, at most [`MAX_LISTED`].
fn place_lines(places: &[Place]) -> Vec<String> {
    let mut lines: Vec<String> = places
        .iter()
        .take(MAX_LISTED)
        .map(|(what, at)| match at {
            Some(at) => format!("`{what}` at {at}"),
            None => format!("`{what}`"),
        })
        .collect();
    if places.len() > MAX_LISTED {
        lines.push(format!("and {} more", places.len() - MAX_LISTED));
    }
    lines
}

// ---------------------------------------------------------------------------------------
// Pieces of pass arguments and header values (`fix502_nginx` parses only static
// arguments; these rules also read the ones with variables).

/// A piece of an argument: literal text or a variable name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(String),
}

/// Splits text into literals and `$name` / `${name}` variables.
fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    // Each iteration consumes at least one character.
    while let Some(c) = chars.next() {
        if c != '$' {
            lit.push(c);
            continue;
        }
        let mut name = String::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                name.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                name.push(c);
                chars.next();
            }
        }
        if name.is_empty() {
            lit.push('$');
            continue;
        }
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(Piece::Var(name));
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    out
}

/// The URL prefixes the pass directives accept.
const SCHEMES: [&str; 6] = [
    "http://",
    "https://",
    "grpc://",
    "grpcs://",
    "uwsgi://",
    "suwsgi://",
];

/// The URI part of a pass argument with a scheme (`/x` of `http://h:1/x`, `/u` of
/// `http://unix:/s.sock:/u`); `None` when there is none.
fn uri_part(raw: &str) -> Option<&str> {
    let lower = raw.to_ascii_lowercase();
    let prefix = SCHEMES.iter().find(|s| lower.starts_with(**s))?;
    let rest = raw.get(prefix.len()..)?;
    if rest
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("unix:"))
    {
        rest.get(5..)?.split_once(':').map(|(_, u)| u)
    } else {
        rest.find('/').and_then(|i| rest.get(i..))
    }
}

#[cfg(test)]
mod test_support {
    //! What the tests of every rule file share: loading a config text and running the rules.

    use std::path::{Path, PathBuf};

    use fix502_nginx::config::Config;
    use fix502_nginx::view::ConfigView;

    use super::{HostContext, RISKS, rules};
    use crate::causes::Cause;
    use crate::report::{Finding, Severity};

    const MAIN: &str = "/etc/nginx/nginx.conf";

    pub(super) fn load(text: &str) -> (Config, ConfigView) {
        let directives = Config::parse_str(text, Path::new(MAIN)).unwrap();
        let config = Config {
            main: PathBuf::from(MAIN),
            files: vec![PathBuf::from(MAIN)],
            directives,
            errors: Vec::new(),
        };
        let view = ConfigView::new(&config);
        (config, view)
    }

    /// `body` inside `http {}`, with an empty `events {}`.
    pub(super) fn http(body: &str) -> (Config, ConfigView) {
        load(&format!("events {{}}\nhttp {{\n{body}\n}}\n"))
    }

    /// Every rule, checking what every finding must have.
    pub(super) fn run(text: (Config, ConfigView), host: &HostContext) -> Vec<Finding> {
        let found = rules(&text.0, &text.1, host);
        for f in &found {
            assert_eq!(f.check, RISKS);
            assert_eq!(f.severity, Severity::Warning);
            assert!(f.cause.is_some());
            assert!(!f.message.is_empty());
            assert!(!f.evidence.is_empty(), "{f:?}");
            assert!(!f.fix.is_empty(), "{f:?}");
        }
        found
    }

    pub(super) fn with(found: &[Finding], cause: Cause) -> Vec<&Finding> {
        found.iter().filter(|f| f.cause == Some(cause)).collect()
    }

    /// `localhost` is `::1` and `127.0.0.1`.
    pub(super) fn dual() -> HostContext {
        HostContext {
            localhost_addrs: vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            ..HostContext::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{dual, http, run};
    use super::*;

    #[test]
    fn addrconfig() {
        let both: Vec<IpAddr> = vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        assert_eq!(addrconfig_filter(both.clone(), Some(true)).len(), 2);
        assert_eq!(
            addrconfig_filter(both.clone(), Some(false)),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(addrconfig_filter(both, None).len(), 2);
    }

    #[test]
    fn nameservers_of_resolv_conf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch a\nnameserver ::1\n",
        )
        .unwrap();
        assert_eq!(
            read_nameservers(&path),
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(read_nameservers(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn pieces_and_uri_parts() {
        assert_eq!(
            pieces("http://${b}x$c/$"),
            vec![
                Piece::Lit("http://".into()),
                Piece::Var("b".into()),
                Piece::Lit("x".into()),
                Piece::Var("c".into()),
                Piece::Lit("/$".into()),
            ]
        );
        assert_eq!(uri_part("http://h:1/x"), Some("/x"));
        assert_eq!(uri_part("HTTP://unix:/s.sock:/u"), Some("/u"));
        assert_eq!(uri_part("http://h:1"), None);
        assert_eq!(uri_part("h:1/x"), None);
    }

    #[test]
    fn clean_config_has_no_risk() {
        let found = run(
            http(
                "upstream app { server 127.0.0.1:8000; }\n\
                 server { listen 80; server_name example.com;\n\
                 location / { proxy_pass http://app; }\n\
                 location ~ \\.php$ { fastcgi_pass unix:/run/php/php8.2-fpm.sock; } }",
            ),
            &HostContext {
                worker_nofile: Some(65536),
                localhost_addrs: dual().localhost_addrs,
                ..HostContext::default()
            },
        );
        assert!(found.is_empty(), "{found:#?}");
    }
}
