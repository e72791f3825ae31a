//! Rule 6: `proxy_pass` to nginx itself, landing on the same pass directive again (a loop).
//!
//! Each hop holds two connections until `worker_connections` run out: nginx logs "worker
//! connections are not enough while connecting to upstream" and answers 500 (or 502/504
//! along the chain). For every address a `proxy_pass` peer stands for where nginx listens,
//! the proxied request (the Host header and URI nginx sends) is routed through the
//! configuration with [`fix502_nginx::route`], nginx's own server and location selection
//! (regex server names included); the rule fires when it reaches the same pass directive.
//!
//! What belongs here: this rule, what nginx sends upstream (Host, URI) as far as the rule
//! needs, and its tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use fix502_nginx::route::{Request, Route, ServerMatch, route, route_logged};
use fix502_nginx::view::{
    ConfigView, Listen, ListenAddr, Location as Block, PassModule, PassTarget, Peer, Server,
    TargetAddress,
};

use super::context::HostContext;
use super::written::{
    MAX_LISTED, Piece, is_localhost, loc, pieces, uri_part, warning, written, written_at,
};
use crate::causes::Cause;
use crate::report::{Finding, Location};

/// An address a pass target connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The Host header nginx sends upstream.
enum HostHeader {
    /// This value as sent; `None` when nginx sends no Host (`proxy_set_header Host ""`).
    Value(Option<String>),
    /// The client's own Host (`$host`, `$http_host`): it selected the current server.
    Client,
}

pub(super) fn loop_rule(view: &ConfigView, host: &HostContext) -> Vec<Finding> {
    let mut out = Vec::new();
    for (index, t) in view.targets.iter().enumerate() {
        if t.module != PassModule::Proxy {
            continue;
        }
        let Some(current) = t.server else {
            continue;
        };
        let Some(block) = view.servers.get(current) else {
            continue;
        };
        let Some(header) = host_header(block, t) else {
            continue;
        };
        let hosts = match &header {
            HostHeader::Value(value) => vec![value.clone()],
            HostHeader::Client => client_hosts(block),
        };
        let hop = Hop {
            view,
            index,
            target: t,
            server: current,
            block,
            header,
            uri: sent_uri(block, index, t),
            tls: t.scheme == "https",
        };
        let hit = view.peers_of(t).into_iter().find_map(|(peer, _)| {
            dests(&peer, host).into_iter().find_map(|dest| {
                let landing = hosts.iter().find_map(|h| match &dest {
                    Dest::Tcp(addr) if nginx_may_listen(view, host, addr.ip()) => {
                        hop.over_tcp(*addr, h.as_deref())
                    }
                    Dest::Tcp(_) => None,
                    Dest::Unix(path) => hop.over_unix(path, h.as_deref()),
                })?;
                Some((peer.clone(), dest, landing))
            })
        });
        let Some((peer, dest, landing)) = hit else {
            continue;
        };
        out.push(finding(&hop, &peer, &dest, &landing, host));
    }
    out
}

/// The finding for a loop of `hop` through `dest`.
fn finding(
    hop: &Hop<'_>,
    peer: &Peer,
    dest: &Dest,
    landing: &Landing,
    host: &HostContext,
) -> Finding {
    let t = hop.target;
    let server = hop.block;
    let listen = &landing.listen;
    let shown = match dest {
        Dest::Tcp(sa) => sa.to_string(),
        Dest::Unix(p) => format!("unix:{}", p.display()),
    };
    let listen_at = listen
        .span
        .as_ref()
        .map(|s| format!(" at {}", Location::from(s)))
        .unwrap_or_else(|| " (implicit)".to_owned());
    let header_text = match &hop.header {
        HostHeader::Client => "the client's own Host".to_owned(),
        HostHeader::Value(Some(value)) => format!("Host `{value}`"),
        HostHeader::Value(None) => "a request without Host".to_owned(),
    };
    let mut f = warning(
        Cause::PROXY_LOOP,
        format!(
            "`{}` sends requests to {shown}, where nginx itself listens (`listen {}`), and {header_text} selects the same server block: nginx proxies to itself until worker_connections run out",
            written(t),
            listen.raw
        ),
    )
    .upstream(peer)
    .at(loc(&t.span))
    .evidence(written_at(t))
    .evidence(format!(
        "server block at {} (server_name {}) has `listen {}`{listen_at}",
        Location::from(&server.span),
        if server.names.is_empty() {
            "\"\"".to_owned()
        } else {
            server.names.join(" ")
        },
        listen.raw
    ));
    if let Some(how) = &landing.how {
        f = f.evidence(format!("{header_text} selects it {}", selected_by(how)));
    }
    if let Some(uri) = &hop.uri {
        f = f.evidence(format!(
            "the proxied request for `{uri}` is handled by the same `{}` again",
            written(t)
        ));
    }
    if let Dest::Tcp(sa) = dest
        && host
            .nginx_listening
            .iter()
            .any(|l| l.port() == sa.port() && (l.ip() == sa.ip() || l.ip().is_unspecified()))
    {
        f = f.evidence(format!(
            "the running nginx listens on port {} now",
            sa.port()
        ));
    }
    f.evidence(
        "each hop holds two connections: nginx logs \"worker_connections are not enough while connecting to upstream\" and answers 500 (or 502/504 along the chain)",
    )
    .fix(format!(
        "{} http://<address the application listens on>; (instead of `{}`)",
        t.module.directive(),
        t.raw
    ))
}

/// How nginx chose the server block, for evidence.
fn selected_by(how: &ServerMatch) -> String {
    match how {
        ServerMatch::ExactName(n) if n.is_empty() => "by server_name \"\"".to_owned(),
        ServerMatch::ExactName(n) | ServerMatch::WildcardName(n) => format!("by server_name {n}"),
        ServerMatch::RegexName(n) => format!("by the regex server_name {n}"),
        ServerMatch::DefaultServer => {
            "as the default_server of that address (no server_name matches)".to_owned()
        }
        _ => "as the first server of that address (no server_name matches)".to_owned(),
    }
}

/// One proxied request of a pass target, as nginx sends it.
struct Hop<'a> {
    view: &'a ConfigView,
    /// The pass target's index in [`ConfigView::targets`].
    index: usize,
    target: &'a PassTarget,
    /// The index of the target's server block, and the block.
    server: usize,
    block: &'a Server,
    /// The Host header sent.
    header: HostHeader,
    /// The URI sent (see [`sent_uri`]).
    uri: Option<String>,
    /// Whether nginx speaks TLS to the peer.
    tls: bool,
}

/// Where a looping request lands: the `listen` that takes it, and how the server block was
/// chosen (unknown on a unix socket).
struct Landing {
    listen: Listen,
    how: Option<ServerMatch>,
}

impl Hop<'_> {
    /// The landing when the request to `addr` with this Host reaches the same pass target.
    fn over_tcp(&self, addr: SocketAddr, host: Option<&str>) -> Option<Landing> {
        let request = Request {
            local: Some(addr.ip()),
            port: addr.port(),
            host: host.map(str::to_owned),
            // Unchanged: any URI stands for it (only the server block decides).
            uri: self.uri.clone().unwrap_or_else(|| "/".to_owned()),
        };
        let routed = route(self.view, &request).ok()?;
        let listen = self
            .view
            .servers
            .get(routed.server)?
            .listens
            .get(routed.listen?)?;
        (self.tls_matches(listen) && self.lands_here(&routed)).then(|| Landing {
            listen: listen.clone(),
            how: Some(routed.server_match),
        })
    }

    /// The same over a `listen unix:` socket. `route` keys servers by IP address and port
    /// and does not know unix sockets, so the server block is decided only when it is
    /// certain: the current server listens on the socket, and either it is the only one
    /// there or the Host is the client's own. The location is then routed within it.
    fn over_unix(&self, path: &Path, host: Option<&str>) -> Option<Landing> {
        let on_socket = |s: &Server| {
            s.listens
                .iter()
                .find(|l| matches!(&l.addr, ListenAddr::Unix(p) if p == path))
                .cloned()
        };
        let listen = on_socket(self.block)?;
        let shared = self.view.servers.iter().filter_map(on_socket).count() > 1;
        let client_host = matches!(self.header, HostHeader::Client);
        if (shared && !client_host) || !self.tls_matches(&listen) {
            return None;
        }
        if let Some(uri) = &self.uri {
            let first = self.block.names.first().map_or("", String::as_str);
            let logged = first
                .strip_prefix('.')
                .filter(|n| !n.is_empty())
                .unwrap_or(first);
            let request = format!("GET {uri} HTTP/1.0");
            let routed = route_logged(self.view, Some(logged), &request, host)?;
            if !self.lands_here(&routed) {
                return None;
            }
        }
        Some(Landing { listen, how: None })
    }

    /// Whether the route reaches this pass target again: the same server block, and (when
    /// the URI is known) a location whose pass directive is this one.
    fn lands_here(&self, routed: &Route) -> bool {
        if routed.server != self.server {
            return false;
        }
        if self.uri.is_none() {
            return true;
        }
        let t = self.target;
        routed
            .target
            .and_then(|j| Some((j, self.view.targets.get(j)?)))
            .is_some_and(|(j, o)| {
                j == self.index
                    || (o.server == t.server
                        && o.location == t.location
                        && o.module == t.module
                        && o.raw == t.raw)
            })
    }

    /// Whether the socket of `listen` speaks what nginx sends: TLS when any `listen` of the
    /// same address says `ssl` (nginx sets it per socket). A plain request to a TLS port,
    /// or TLS to a plain one, fails instead of looping.
    fn tls_matches(&self, listen: &Listen) -> bool {
        let ssl = self
            .view
            .servers
            .iter()
            .flat_map(|s| &s.listens)
            .any(|l| l.ssl && same_socket(&l.addr, &listen.addr));
        ssl == self.tls
    }
}

/// Whether two `listen` addresses are the same socket (`listen 80` is `0.0.0.0:80`).
fn same_socket(a: &ListenAddr, b: &ListenAddr) -> bool {
    let ipv4_wildcard = |x: &ListenAddr| match x {
        ListenAddr::Port(_) => Some(true),
        ListenAddr::Inet(sa) if sa.ip().is_unspecified() => Some(sa.is_ipv4()),
        _ => None,
    };
    a == b
        || (a.port() == b.port()
            && ipv4_wildcard(a).is_some()
            && ipv4_wildcard(a) == ipv4_wildcard(b))
}

/// The Host header the proxied request carries; `None` when it is unknown.
fn host_header(server: &Server, t: &PassTarget) -> Option<HostHeader> {
    let set = t.settings.all("proxy_set_header").iter().rev().find(|h| {
        h.args
            .first()
            .is_some_and(|n| n.eq_ignore_ascii_case("host"))
    });
    let Some(set) = set else {
        return proxy_host(t).map(|h| HostHeader::Value(Some(h)));
    };
    let value = set.args.get(1).map(String::as_str).unwrap_or_default();
    match pieces(value).as_slice() {
        [] => Some(HostHeader::Value(None)),
        [Piece::Lit(l)] => Some(HostHeader::Value(Some(l.clone()))),
        [Piece::Var(v)] if v == "host" || v == "http_host" => Some(HostHeader::Client),
        [Piece::Var(v)] if v == "proxy_host" => proxy_host(t).map(|h| HostHeader::Value(Some(h))),
        [Piece::Var(v)] if v == "server_name" => {
            Some(HostHeader::Value(Some(server.names.first()?.clone())))
        }
        _ => None,
    }
}

/// `$proxy_host`, nginx's default Host: the host of the argument, with the port unless it
/// is the scheme's default (the group name for a group, `localhost` for a unix socket).
fn proxy_host(t: &PassTarget) -> Option<String> {
    match &t.address {
        TargetAddress::Peer(peer @ Peer::Inet { port, .. }) => {
            let shown = peer.to_string();
            let default = if t.scheme == "https" { 443 } else { 80 };
            Some(if *port == default {
                shown
                    .strip_suffix(&format!(":{port}"))
                    .unwrap_or(&shown)
                    .to_owned()
            } else {
                shown
            })
        }
        TargetAddress::Peer(Peer::Unix(_)) => Some("localhost".to_owned()),
        TargetAddress::Group(g) => Some(g.clone()),
        _ => None,
    }
}

/// Host values standing for the client's own Host, which selected `server`: each of its
/// names as a request carries it (`.example.com` → `example.com`, `*.example.com` →
/// `www.example.com`, `www.example.*` → `www.example.com`). Regex names give none; a
/// server without other names stands for requests without Host (it is a default server).
fn client_hosts(server: &Server) -> Vec<Option<String>> {
    let mut hosts: Vec<Option<String>> = server
        .names
        .iter()
        .filter(|n| !n.starts_with(['~', '$']))
        .map(|n| {
            if n.is_empty() {
                None
            } else if let Some(rest) = n.strip_prefix("*.") {
                Some(format!("www.{rest}"))
            } else if let Some(rest) = n.strip_suffix(".*") {
                Some(format!("{rest}.com"))
            } else {
                Some(n.strip_prefix('.').unwrap_or(n).to_owned())
            }
        })
        .take(MAX_LISTED)
        .collect();
    if hosts.is_empty() {
        hosts.push(None);
    }
    hosts
}

/// The URI the proxied request carries, for a client request to the location of pass
/// target `index` (in `server`): the URI part of the argument (it replaces the location's
/// prefix), else the request URI unchanged, which the location's own path stands for.
/// `None` for an unchanged URI in a regex or named location: the same URI then matches the
/// same location again, and only the server block decides.
fn sent_uri(server: &Server, index: usize, t: &PassTarget) -> Option<String> {
    if let Some(uri) = uri_part(&t.raw).filter(|u| !u.is_empty()) {
        return Some(uri.to_owned());
    }
    let location = location_of(server, index)?;
    match location.modifier.as_deref() {
        None if !location.path.starts_with('@') => Some(location.path.clone()),
        Some("=" | "^~") => Some(location.path.clone()),
        _ => None,
    }
}

/// The innermost location of `server` holding pass target `index`.
fn location_of(server: &Server, index: usize) -> Option<&Block> {
    // Each location is pushed once: bounded by the size of the tree.
    let mut stack: Vec<&Block> = server.locations.iter().collect();
    while let Some(l) = stack.pop() {
        if l.targets.contains(&index) {
            return Some(l);
        }
        stack.extend(l.locations.iter());
    }
    None
}

/// Whether nginx may take connections to `ip`: a loopback address, one it listens on now,
/// or one a `listen` names (whether a `listen` takes it, `route` tells).
fn nginx_may_listen(view: &ConfigView, host: &HostContext, ip: IpAddr) -> bool {
    ip.is_loopback()
        || host.nginx_listening.iter().any(|l| l.ip() == ip)
        || view
            .servers
            .iter()
            .flat_map(|s| &s.listens)
            .any(|l| matches!(&l.addr, ListenAddr::Inet(a) if a.ip() == ip))
}

/// The addresses a pass target's peer connects to (names other than localhost are not
/// resolved here).
fn dests(peer: &Peer, host: &HostContext) -> Vec<Dest> {
    match peer {
        Peer::Unix(path) => vec![Dest::Unix(path.clone())],
        Peer::Inet { host: h, port } => match peer.ip() {
            Some(ip) => vec![Dest::Tcp(SocketAddr::new(ip, *port))],
            None if is_localhost(h) => {
                let addrs = if host.localhost_addrs.is_empty() {
                    vec![
                        IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ]
                } else {
                    host.localhost_addrs.clone()
                };
                addrs
                    .into_iter()
                    .map(|ip| Dest::Tcp(SocketAddr::new(ip, *port)))
                    .collect()
            }
            None => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::causes::Cause;
    use crate::report::Finding;
    use crate::steps::risks::context::HostContext;
    use crate::steps::risks::test_support::{dual, http, run, with};

    fn loops(body: &str, host: &HostContext) -> Vec<Finding> {
        run(http(body), host)
            .into_iter()
            .filter(|f| f.cause == Some(Cause::PROXY_LOOP))
            .collect()
    }

    #[test]
    fn proxy_loop_fires() {
        let found = run(
            http(
                "server { listen 80; server_name app.example.com;\n\
                 location / { proxy_pass http://127.0.0.1:80; } }",
            ),
            &HostContext::default(),
        );
        let hits = with(&found, Cause::PROXY_LOOP);
        assert_eq!(hits.len(), 1, "{found:#?}");
        assert_eq!(
            hits[0]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("127.0.0.1:80")
        );
        assert_eq!(hits[0].location.as_ref().unwrap().line, 4);
        assert!(hits[0].message.contains("Host `127.0.0.1` selects"));
        // `$host` keeps the name that selected this server; localhost covers [::1] too.
        let found = run(
            http(
                "server { listen 8080; listen [::1]:8080; server_name a.example;\n\
                 location / { proxy_set_header Host $host; proxy_pass http://localhost:8080; } }",
            ),
            &dual(),
        );
        assert_eq!(with(&found, Cause::PROXY_LOOP).len(), 1);
    }

    #[test]
    fn proxy_loop_near_misses() {
        // Host selects another server block, which serves files.
        let found = run(
            http(
                "server { listen 80; server_name front.example.com;\n\
                 location / { proxy_set_header Host other.example.com; proxy_pass http://127.0.0.1:80; } }\n\
                 server { listen 80; server_name other.example.com; root /srv; }",
            ),
            &HostContext::default(),
        );
        assert!(with(&found, Cause::PROXY_LOOP).is_empty(), "{found:#?}");
        // `listen 80` is IPv4 only: [::1]:80 is not nginx.
        let found = run(
            http("server { listen 80; location / { proxy_pass http://[::1]:80; } }"),
            &HostContext::default(),
        );
        assert!(with(&found, Cause::PROXY_LOOP).is_empty());
        // Another port: the application.
        let found = run(
            http("server { listen 80; location / { proxy_pass http://127.0.0.1:8000; } }"),
            &HostContext::default(),
        );
        assert!(with(&found, Cause::PROXY_LOOP).is_empty());
        // A URI that leaves the location.
        let found = run(
            http(
                "server { listen 80; location /a/ { proxy_pass http://127.0.0.1:80/files/; } location /files/ { root /srv; } }",
            ),
            &HostContext::default(),
        );
        assert!(with(&found, Cause::PROXY_LOOP).is_empty());
    }

    /// Whether the pass directive in server block `at` (0 to 3) loops with this Host.
    fn selects(at: usize, host_header: &str) -> bool {
        let pass = format!(
            "location / {{ proxy_set_header Host {host_header}; proxy_pass http://10.0.0.9:80; }}"
        );
        let own = |i: usize| if i == at { pass.as_str() } else { "root /srv;" };
        let body = format!(
            "server {{ listen 80; server_name a.example; {} }}\n\
             server {{ listen 80 default_server; server_name *.example .b.example; {} }}\n\
             server {{ listen 80; server_name www.*; {} }}\n\
             server {{ listen 127.0.0.1:80; server_name only.local; {} }}",
            own(0),
            own(1),
            own(2),
            own(3)
        );
        let host = HostContext {
            nginx_listening: vec!["10.0.0.9:80".parse().unwrap()],
            ..HostContext::default()
        };
        !loops(&body, &host).is_empty()
    }

    #[test]
    fn server_selection() {
        assert!(selects(0, "a.example"));
        assert!(selects(0, "A.Example.:8080"));
        assert!(!selects(1, "a.example"));
        assert!(selects(1, "x.a.example"));
        assert!(selects(1, "b.example"));
        assert!(selects(2, "www.other"));
        assert!(!selects(1, "www.other"));
        assert!(selects(1, "nothing"));
        assert!(!selects(0, "nothing"));
        // 10.0.0.9 is not an address of the server listening on 127.0.0.1:80 only.
        assert!(!selects(3, "only.local"));
    }

    #[test]
    fn regex_server_names_are_evaluated() {
        let body = |host: &str| {
            format!(
                "server {{ listen 80; server_name ~^app\\d+\\.example\\.com$;\n\
                 location / {{ proxy_set_header Host {host}; proxy_pass http://127.0.0.1:80; }} }}\n\
                 server {{ listen 80 default_server; server_name other.example.com; root /srv; }}"
            )
        };
        let hits = loops(&body("app7.example.com"), &HostContext::default());
        assert_eq!(hits.len(), 1);
        assert!(
            hits[0]
                .evidence
                .iter()
                .any(|e| e.contains("by the regex server_name ~^app\\d+"))
        );
        assert!(loops(&body("app.example.com"), &HostContext::default()).is_empty());
    }

    #[test]
    fn uri_routing() {
        // The URI part stays inside the location: every hop comes back.
        let hits = loops(
            "server { listen 80; location /a/ { proxy_pass http://127.0.0.1:80/a/x/; } }",
            &HostContext::default(),
        );
        assert_eq!(hits.len(), 1);
        // An exact location catches the URI nginx sends.
        let body = "server { listen 80; location /api/ { proxy_pass http://127.0.0.1:80/v2/; }\n\
             location = /v2/ { return 200; } location /v2/ { proxy_pass http://127.0.0.1:80/api/; } }";
        assert!(loops(body, &HostContext::default()).is_empty());
        // A regex location with the URI unchanged: only the server block decides.
        let hits = loops(
            "server { listen 80; location ~ \\.php$ { proxy_pass http://127.0.0.1:80; } }",
            &HostContext::default(),
        );
        assert_eq!(hits.len(), 1);
        // A pass inside `if` still handles the request.
        let hits = loops(
            "server { listen 80; location / { if ($http_x) { proxy_pass http://127.0.0.1:80; } } }",
            &HostContext::default(),
        );
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn tls_and_sockets() {
        // Plain HTTP to a TLS port fails instead of looping; TLS to it loops.
        let body = |scheme: &str| {
            format!(
                "server {{ listen 443 ssl; listen 8443; location / {{ proxy_pass {scheme}://127.0.0.1:443; }} }}"
            )
        };
        assert!(loops(&body("http"), &HostContext::default()).is_empty());
        assert_eq!(loops(&body("https"), &HostContext::default()).len(), 1);
        // A unix socket nginx listens on.
        let body = "server { listen unix:/run/nginx.sock; location / { proxy_pass http://unix:/run/nginx.sock; } }";
        let hits = loops(body, &HostContext::default());
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("unix:/run/nginx.sock")
        );
        let body = "server { listen unix:/run/nginx.sock; location / { proxy_pass http://unix:/run/nginx.sock:/static/; } }\n\
             server { listen 80; location /static/ { root /srv; } }";
        assert_eq!(loops(body, &HostContext::default()).len(), 1);
        let body = "server { listen unix:/run/nginx.sock; location /a/ { proxy_pass http://unix:/run/nginx.sock:/b/; }\n\
             location /b/ { root /srv; } }";
        assert!(loops(body, &HostContext::default()).is_empty());
    }
}
