//! Rules 1–3, about names and addresses of upstreams:
//!
//! 1. `localhost` upstreams: nginx makes one peer of each address getaddrinfo gives
//!    (`::1` and `127.0.0.1`), so an app listening on one family refuses half the attempts.
//! 2. A pass argument with variables whose host needs DNS while no `resolver` is in effect
//!    (docs/nginx-messages.md §5: "no resolver defined to resolve …", 502).
//! 3. Host names resolved only at start or reload, which go stale when the address changes.
//!
//! What belongs here: these rules and what only they need: the host part of a pass argument
//! with variables, the literal values `set` and `map` give a variable, and how nginx looks
//! such a host up at request time.

use std::net::IpAddr;

use fix502_nginx::config::{Config, Directive, Span};
use fix502_nginx::resolver::resolver_of;
use fix502_nginx::view::{ConfigView, PassModule, PassTarget, Peer, TargetAddress};

use super::context::HostContext;
use super::written::{
    Grouped, Piece, SCHEMES, group_place, grouped_findings, is_localhost, loc, name_of, pieces,
    quoted_args, replace_host, server_line, uri_part, warning, written, written_at,
};
use crate::causes::Cause;
use crate::report::{Finding, Location};
use crate::upstream::Upstream;

// ---------------------------------------------------------------------------------------
// Rule 1: `localhost` upstreams.

pub(super) fn localhost_rule(view: &ConfigView, host: &HostContext) -> Vec<Finding> {
    if host.localhost_addrs.len() < 2 {
        return Vec::new();
    }
    let mut found: Vec<Grouped> = Vec::new();
    for t in &view.targets {
        if let TargetAddress::Peer(peer @ Peer::Inet { host: h, .. }) = &t.address
            && is_localhost(h)
        {
            let fix = |ip: &str, family: &str| {
                format!(
                    "{} {}; (the app listens on {family})",
                    t.module.directive(),
                    replace_host(&t.raw, h, ip)
                )
            };
            group_place(
                &mut found,
                peer.to_string(),
                (written(t), loc(&t.span)),
                || vec![fix("127.0.0.1", "IPv4"), fix("[::1]", "IPv6")],
            );
        }
    }
    for g in &view.upstreams {
        for s in &g.servers {
            if let Peer::Inet { host: h, .. } = &s.peer
                && is_localhost(h)
            {
                let args = &s.args;
                let fix = |ip: &str, family: &str| {
                    let mut a = args.clone();
                    if let Some(first) = a.first_mut() {
                        *first = replace_host(first, h, ip);
                    }
                    format!("{} (the app listens on {family})", server_line(&a))
                };
                let what = format!("upstream {}: {}", g.name, server_line(args));
                group_place(&mut found, s.peer.to_string(), (what, loc(&s.span)), || {
                    vec![fix("127.0.0.1", "IPv4"), fix("[::1]", "IPv6")]
                });
            }
        }
    }
    let addrs = host
        .localhost_addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let count = host.localhost_addrs.len();
    grouped_findings(
        found,
        Cause::UPSTREAM_WRONG_ADDRESS,
        |upstream| {
            format!(
                "{upstream}: localhost resolves to {count} addresses ({addrs}); nginx makes a peer of each, so an app listening on one family refuses the other's connections"
            )
        },
        &[
            format!(
                "getaddrinfo(\"localhost\") as nginx calls it (AF_UNSPEC, AI_ADDRCONFIG) gives {addrs}"
            ),
            "a refused attempt logs connect() failed (111) and is retried on the other address: slow for GET, 502 for POST/PATCH/LOCK, and the failed peer is skipped for fail_timeout".to_owned(),
        ],
    )
}

// ---------------------------------------------------------------------------------------
// Rule 2: variable pass targets without `resolver`.

pub(super) fn resolver_rule(
    config: &Config,
    view: &ConfigView,
    host: &HostContext,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &view.targets {
        if !matches!(t.address, TargetAddress::Variable(_)) || resolver_of(&t.settings).is_some() {
            continue;
        }
        let mut evidence: Vec<String> = Vec::new();
        let (upstream, what) = match host_part(t.module, &t.raw) {
            HostPart::Dynamic(vars) => {
                if !dynamic_needs_dns(config, view, t, &vars, &mut evidence) {
                    continue;
                }
                let shown: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
                (None, format!("host {}", shown.join("")))
            }
            part => match lookup(view, t.module, &part) {
                Lookup::Dns(name) => (Some(name.clone()), format!("host {name}")),
                Lookup::NoDns | Lookup::Other => continue,
            },
        };
        let mut f = warning(
            Cause::UPSTREAM_DNS,
            format!(
                "`{}` resolves its {what} per request, but no resolver is in effect: nginx logs \"no resolver defined to resolve …\" and answers 502",
                written(t)
            ),
        )
        .at(loc(&t.span));
        if let Some(u) = upstream {
            f = f.upstream(Upstream::parse(&u));
        }
        f = f.evidence(written_at(t));
        for line in evidence {
            f = f.evidence(line);
        }
        f = f
            .evidence(
                "a pass argument with variables is resolved at request time by nginx's own resolver; only IP addresses and upstream names need none",
            )
            .evidence(
                "nginx's resolver asks DNS servers directly: names that exist only in /etc/hosts do not resolve",
            )
            .fix(resolver_fix(config, host));
        out.push(f);
    }
    out
}

/// Whether a host part made of variables may need DNS; explains the values found.
fn dynamic_needs_dns(
    config: &Config,
    view: &ConfigView,
    t: &PassTarget,
    vars: &[String],
    evidence: &mut Vec<String>,
) -> bool {
    let [var] = vars else {
        return true;
    };
    let Some(values) = variable_values(config, var) else {
        evidence.push(format!(
            "${var} is not only set to literal values in this config: its value may be a host name"
        ));
        return true;
    };
    for (value, span) in &values {
        let url = substitute(&t.raw, var, value);
        if let Lookup::Dns(name) = lookup(view, t.module, &host_part(t.module, &url)) {
            evidence.push(format!(
                "${var} is set to `{value}` at {}: {name} needs DNS",
                Location::from(span)
            ));
            return true;
        }
    }
    false
}

/// The `resolver` directive a fix suggests: one written elsewhere in the config, else the
/// system's DNS servers.
fn resolver_fix(config: &Config, host: &HostContext) -> String {
    let mut stack: Vec<&Directive> = config.directives.iter().collect();
    while let Some(d) = stack.pop() {
        if d.name == "resolver" && d.block.is_none() && !d.args.is_empty() {
            return format!("resolver {};", quoted_args(&d.args));
        }
        if let Some(block) = &d.block {
            stack.extend(block.iter());
        }
    }
    if host.nameservers.is_empty() {
        return "resolver <your DNS server's IP> valid=10s;".to_owned();
    }
    let servers: Vec<String> = host
        .nameservers
        .iter()
        .map(|ip| match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        })
        .collect();
    format!("resolver {} valid=10s;", servers.join(" "))
}

// ---------------------------------------------------------------------------------------
// The host part of a pass argument that may hold variables.
//
// `fix502_nginx::resolver::literal_host` answers only for a literal host part, and this
// rule needs more than it tells: which variables make up a dynamic host (to substitute
// their `set`/`map` values), whether a port was written (an `upstream {}` block matches
// only without one: `uscf->port == 0 && no_port` in `ngx_http_upstream_init_request`), and
// no default port outside `proxy_pass` (nginx's grpc/uwsgi eval handlers set none, where
// `literal_host` gives `grpcs://` port 443). Hence this rule's own small parser.

/// Variables whose value starts the URI part (`/...`, `?`), so they end the host part.
const URI_VARS: [&str; 4] = ["request_uri", "uri", "document_uri", "is_args"];

/// The host part of a pass argument, as far as the configuration tells.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPart {
    /// A unix socket: no DNS.
    Unix,
    /// A literal host (without brackets) and port, with the scheme when written.
    Literal {
        scheme: Option<String>,
        host: String,
        port: Option<u16>,
    },
    /// The host part holds these variables.
    Dynamic(Vec<String>),
    /// Not a valid address for nginx (it answers 500, not a DNS problem).
    Invalid,
}

/// Parses the host part of a pass argument (`proxy_pass` needs a scheme).
fn host_part(module: PassModule, text: &str) -> HostPart {
    let mut ps = pieces(text);
    let mut scheme = None;
    match ps.first_mut() {
        Some(Piece::Lit(first)) => {
            let lower = first.to_ascii_lowercase();
            if let Some(prefix) = SCHEMES.iter().find(|s| lower.starts_with(**s)) {
                scheme = Some(prefix.trim_end_matches("://").to_owned());
                first.drain(..prefix.len());
            } else if module == PassModule::Proxy {
                return HostPart::Invalid;
            }
        }
        Some(Piece::Var(_)) => {
            // `$scheme://host...`: the scheme is a variable, the host follows.
            if let Some(Piece::Lit(next)) = ps.get_mut(1)
                && next.starts_with("://")
            {
                next.drain(..3);
                ps.remove(0);
            }
        }
        None => return HostPart::Invalid,
    }
    if let Some(Piece::Lit(first)) = ps.first()
        && first
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("unix:"))
    {
        return HostPart::Unix;
    }
    let mut segment = String::new();
    let mut vars = Vec::new();
    'pieces: for p in &ps {
        match p {
            Piece::Lit(lit) => {
                for c in lit.chars() {
                    if c == '/' || c == '?' {
                        break 'pieces;
                    }
                    segment.push(c);
                }
            }
            Piece::Var(v) if URI_VARS.contains(&v.as_str()) => break,
            Piece::Var(v) => vars.push(v.clone()),
        }
    }
    if !vars.is_empty() {
        return HostPart::Dynamic(vars);
    }
    let (host, port_text) = if let Some(rest) = segment.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, after)) => (h.to_owned(), after.strip_prefix(':')),
            None => return HostPart::Invalid,
        }
    } else {
        match segment.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (segment.clone(), None),
        }
    };
    let port = match port_text {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return HostPart::Invalid,
        },
        None => None,
    };
    if host.is_empty() {
        return HostPart::Invalid;
    }
    HostPart::Literal { scheme, host, port }
}

/// Replaces variable `name` by `value` in `text`.
fn substitute(text: &str, name: &str, value: &str) -> String {
    pieces(text)
        .into_iter()
        .map(|p| match p {
            Piece::Lit(l) => l,
            Piece::Var(v) if v == name => value.to_owned(),
            Piece::Var(v) => format!("${{{v}}}"),
        })
        .collect()
}

/// The values a variable is given by `set` and `map` anywhere in the config; `None` when
/// some definition is not a literal, or there is none (a built-in or unknown variable).
fn variable_values(config: &Config, name: &str) -> Option<Vec<(String, Span)>> {
    let token = format!("${name}");
    let braced = format!("${{{name}}}");
    let mut values = Vec::new();
    let mut literal = true;
    let mut stack: Vec<&Directive> = config.directives.iter().collect();
    while let Some(d) = stack.pop() {
        let defines = |arg: Option<&String>| arg.is_some_and(|a| *a == token || *a == braced);
        if d.name == "set" && defines(d.args.first()) {
            match d.args.get(1) {
                Some(v) if !v.contains('$') => values.push((v.clone(), d.span.clone())),
                _ => literal = false,
            }
        } else if d.name == "map" && defines(d.args.get(1)) {
            for entry in d.block.as_deref().unwrap_or_default() {
                if matches!(entry.name.as_str(), "hostnames" | "volatile") {
                    continue;
                }
                match entry.args.first() {
                    Some(v) if !v.contains('$') => values.push((v.clone(), entry.span.clone())),
                    _ => literal = false,
                }
            }
        } else if matches!(
            d.name.as_str(),
            "geo" | "split_clients" | "perl_set" | "js_set"
        ) && d.args.iter().any(|a| *a == token || *a == braced)
        {
            literal = false;
        }
        if let Some(block) = &d.block {
            stack.extend(block.iter());
        }
    }
    (literal && !values.is_empty()).then_some(values)
}

/// What a request-time host needs, as `ngx_http_upstream_init_request` decides.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// An IP literal, a unix socket or an upstream (explicit or implicit): no DNS.
    NoDns,
    /// nginx's resolver must resolve this `host` or `host:port`.
    Dns(String),
    /// Not a DNS case (no port: nginx answers 500).
    Other,
}

/// How nginx handles a literal host of a variable pass target at request time.
fn lookup(view: &ConfigView, module: PassModule, part: &HostPart) -> Lookup {
    let HostPart::Literal { scheme, host, port } = part else {
        return match part {
            HostPart::Unix => Lookup::NoDns,
            _ => Lookup::Other,
        };
    };
    if host.parse::<IpAddr>().is_ok() {
        return Lookup::NoDns;
    }
    // An `upstream {}` block matches only when no port is written.
    if port.is_none() && view.group(host).is_some() {
        return Lookup::NoDns;
    }
    // Only `proxy_pass` has default ports (`ngx_http_proxy_eval`).
    let defaulted = match (module, scheme.as_deref()) {
        (PassModule::Proxy, Some("http")) => port.or(Some(80)),
        (PassModule::Proxy, Some("https")) => port.or(Some(443)),
        _ => *port,
    };
    let Some(port) = defaulted else {
        return Lookup::Other;
    };
    // The implicit upstream of a static pass directive to the same host and port.
    let implicit = view.targets.iter().any(|t| {
        matches!(&t.address, TargetAddress::Peer(Peer::Inet { host: h, port: p })
            if h.eq_ignore_ascii_case(host) && *p == port)
    });
    if implicit {
        return Lookup::NoDns;
    }
    Lookup::Dns(Peer::inet(host, port).to_string())
}

// ---------------------------------------------------------------------------------------
// Rule 3: host names resolved only at start or reload.

pub(super) fn stale_dns_rule(
    config: &Config,
    view: &ConfigView,
    host: &HostContext,
) -> Vec<Finding> {
    let mut found: Vec<Grouped> = Vec::new();
    let resolver = resolver_fix(config, host);
    let modern_resolve = host.version.is_none_or(|v| v >= (1, 27, 3));
    for t in &view.targets {
        let TargetAddress::Peer(peer) = &t.address else {
            continue;
        };
        let Some((name, port)) = name_of(peer) else {
            continue;
        };
        if is_localhost(name) {
            continue;
        }
        group_place(
            &mut found,
            peer.to_string(),
            (written(t), loc(&t.span)),
            || {
                let variable = replace_host(&t.raw, name, "$upstream_host");
                let mut fixes = vec![
                    resolver.clone(),
                    format!("set $upstream_host {name};"),
                    format!("{} {variable};", t.module.directive()),
                ];
                if uri_part(&t.raw).is_some_and(|u| !u.is_empty()) {
                    fixes.push(format!(
                    "(with a variable nginx sends the URI of `{}` as written, without replacing the location prefix)",
                    t.raw
                ));
                }
                fixes.push(format!(
                "or keep `{}` and run nginx -s reload after every address change of {name}:{port}",
                written(t)
            ));
                fixes
            },
        );
    }
    for g in &view.upstreams {
        for s in &g.servers {
            let Some((name, _)) = name_of(&s.peer) else {
                continue;
            };
            if is_localhost(name) || s.resolve {
                continue;
            }
            let args = &s.args;
            let place = (
                format!("upstream {}: {}", g.name, server_line(args)),
                loc(&s.span),
            );
            group_place(&mut found, s.peer.to_string(), place, || {
                let mut fixes = Vec::new();
                if modern_resolve {
                    let mut with = args.clone();
                    with.push("resolve".to_owned());
                    if g.zone.is_none() {
                        fixes.push(format!("zone {} 64k; (in upstream {})", g.name, g.name));
                    }
                    fixes.push(format!("{resolver} (in upstream {})", g.name));
                    fixes.push(format!(
                        "{} (nginx 1.27.3 or later re-resolves it at run time)",
                        server_line(&with)
                    ));
                }
                fixes.push("nginx -s reload (after every address change)".to_owned());
                fixes
            });
        }
    }
    grouped_findings(
        found,
        Cause::UPSTREAM_STALE_DNS,
        |upstream| {
            format!(
                "{upstream} is resolved only when nginx starts or reloads: if the name's address changes (a container restart), nginx keeps connecting to the old one"
            )
        },
        &["a stale address gives connect() failed (111 or 113) or upstream timed out while connecting, until the next reload".to_owned()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::risks::test_support::{dual, http, run, with};

    // Rule 1.

    #[test]
    fn localhost_upstream_fires() {
        let found = run(
            http(
                "upstream app { server localhost:3000 weight=2; }\n\
                 server { listen 80; location / { proxy_pass http://localhost:8000/api; } \
                 location /b/ { proxy_pass http://app; } }",
            ),
            &dual(),
        );
        let hits = with(&found, Cause::UPSTREAM_WRONG_ADDRESS);
        assert_eq!(hits.len(), 2, "{hits:#?}");
        let first = hits[0];
        assert_eq!(
            first.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("localhost:8000")
        );
        assert_eq!(first.location.as_ref().unwrap().line, 4);
        assert!(first.message.contains("::1, 127.0.0.1"));
        assert!(
            first
                .evidence
                .iter()
                .any(|e| e.contains("gives ::1, 127.0.0.1"))
        );
        assert_eq!(
            first.fix[0],
            "proxy_pass http://127.0.0.1:8000/api; (the app listens on IPv4)"
        );
        let second = hits[1];
        assert_eq!(
            second.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("localhost:3000")
        );
        assert_eq!(
            second.fix[1],
            "server [::1]:3000 weight=2; (the app listens on IPv6)"
        );
    }

    #[test]
    fn localhost_near_misses() {
        let config = "server { location / { proxy_pass http://127.0.0.1:8000; } }";
        assert!(with(&run(http(config), &dual()), Cause::UPSTREAM_WRONG_ADDRESS).is_empty());
        let one = HostContext {
            localhost_addrs: vec!["127.0.0.1".parse().unwrap()],
            ..HostContext::default()
        };
        let config = "server { location / { proxy_pass http://localhost:8000; } }";
        assert!(run(http(config), &one).is_empty());
    }

    // Rule 2.

    #[test]
    fn variable_without_resolver_fires() {
        let host = HostContext {
            nameservers: vec!["127.0.0.11".parse().unwrap()],
            ..HostContext::default()
        };
        let found = run(
            http(
                "server { listen 80;\n\
                 location / { proxy_pass http://app.internal:8080$request_uri; }\n\
                 location /v/ { set $backend api.internal; proxy_pass http://$backend; }\n\
                 location /h/ { proxy_pass http://$http_x_backend; }\n}",
            ),
            &host,
        );
        let hits = with(&found, Cause::UPSTREAM_DNS);
        assert_eq!(hits.len(), 3, "{hits:#?}");
        assert_eq!(
            hits[0]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("app.internal:8080")
        );
        assert_eq!(hits[0].location.as_ref().unwrap().line, 4);
        assert_eq!(hits[0].fix, vec!["resolver 127.0.0.11 valid=10s;"]);
        assert!(
            hits[1]
                .evidence
                .iter()
                .any(|e| e.contains("set to `api.internal`"))
        );
        assert_eq!(hits[1].upstream, None);
        assert!(hits[2].message.contains("$http_x_backend"));
    }

    #[test]
    fn variable_near_misses() {
        let body = "upstream backend { server 10.0.0.1:8000; }\n\
             server { listen 80;\n\
             location /a/ { proxy_pass http://backend$request_uri; }\n\
             location /b/ { proxy_pass http://127.0.0.1:8000$request_uri; }\n\
             location /c/ { set $up backend; proxy_pass http://$up; }\n\
             location /d/ { proxy_pass http://unix:/run/app.sock:$request_uri; }\n\
             location /e/ { resolver 127.0.0.53; proxy_pass http://app.internal:8080$request_uri; }\n}";
        let found = run(http(body), &HostContext::default());
        assert!(with(&found, Cause::UPSTREAM_DNS).is_empty(), "{found:#?}");
        // A resolver inherited from http counts.
        let found = run(
            http(
                "resolver 127.0.0.53;\nserver { location / { proxy_pass http://$host$request_uri; } }",
            ),
            &HostContext::default(),
        );
        assert!(with(&found, Cause::UPSTREAM_DNS).is_empty());
        // `backend:8080` is not the group (a group matches only without a port).
        let found = run(
            http(
                "upstream backend { server 10.0.0.1:8000; }\nserver { location / { proxy_pass http://backend:8080$request_uri; } }",
            ),
            &HostContext::default(),
        );
        assert_eq!(with(&found, Cause::UPSTREAM_DNS).len(), 1);
    }

    #[test]
    fn host_parts() {
        let lit = |h: &str, p: Option<u16>| HostPart::Literal {
            scheme: Some("http".into()),
            host: h.into(),
            port: p,
        };
        assert_eq!(
            host_part(PassModule::Proxy, "http://a.b:81$request_uri"),
            lit("a.b", Some(81))
        );
        assert_eq!(
            host_part(PassModule::Proxy, "HTTP://[::1]:80/x"),
            lit("::1", Some(80))
        );
        assert_eq!(
            host_part(PassModule::Proxy, "$scheme://$host$uri"),
            HostPart::Dynamic(vec!["host".into()])
        );
        assert_eq!(
            host_part(PassModule::Proxy, "http://${b}.svc/x"),
            HostPart::Dynamic(vec!["b".into()])
        );
        assert_eq!(host_part(PassModule::Proxy, "backend$x"), HostPart::Invalid);
        assert_eq!(
            host_part(PassModule::FastCgi, "php:9000"),
            HostPart::Literal {
                scheme: None,
                host: "php".into(),
                port: Some(9000)
            }
        );
        assert_eq!(
            substitute("http://$b$request_uri", "b", "x:1"),
            "http://x:1${request_uri}"
        );
    }

    // Rule 3.

    #[test]
    fn stale_dns_fires() {
        let host = HostContext {
            version: Some((1, 27, 3)),
            ..HostContext::default()
        };
        let found = run(
            http(
                "upstream api { server api.internal:9000 max_fails=0; }\n\
                 server { location / { proxy_pass http://app.internal:8080; }\n\
                 location /x/ { proxy_pass http://app.internal:8080; }\n\
                 location /api/ { proxy_pass http://api; } }",
            ),
            &host,
        );
        let hits = with(&found, Cause::UPSTREAM_STALE_DNS);
        assert_eq!(hits.len(), 2, "{hits:#?}");
        assert_eq!(
            hits[0]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("app.internal:8080")
        );
        assert_eq!(hits[0].evidence.len(), 3);
        assert!(
            hits[0]
                .fix
                .contains(&"set $upstream_host app.internal;".to_owned())
        );
        assert!(
            hits[0]
                .fix
                .contains(&"proxy_pass http://$upstream_host:8080;".to_owned())
        );
        assert_eq!(
            hits[1]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("api.internal:9000")
        );
        assert_eq!(hits[1].location.as_ref().unwrap().line, 3);
        assert!(
            hits[1]
                .fix
                .contains(&"zone api 64k; (in upstream api)".to_owned())
        );
        assert!(
            hits[1]
                .fix
                .iter()
                .any(|f| f.starts_with("server api.internal:9000 max_fails=0 resolve;"))
        );
    }

    #[test]
    fn stale_dns_near_misses() {
        let found = run(
            http(
                "upstream api { zone api 64k; resolver 127.0.0.11; server api.internal:9000 resolve; server 10.0.0.2:9000; }\n\
                 upstream local { server unix:/run/app.sock; }\n\
                 server { location / { proxy_pass http://10.0.0.1:8080; }\n\
                 location /l/ { proxy_pass http://localhost:8080; }\n\
                 location /api/ { proxy_pass http://api; }\n\
                 location /u/ { proxy_pass http://local; } }",
            ),
            &HostContext::default(),
        );
        assert!(
            with(&found, Cause::UPSTREAM_STALE_DNS).is_empty(),
            "{found:#?}"
        );
    }
}
