//! Routing a request through a configuration exactly as nginx does.
//!
//! This module owns the request-to-configuration path: which `server` block a connection
//! and `Host` reach ([`route`]), which `location` chain handles the normalised URI, which
//! pass directive ([`crate::view::PassTarget`]) finally gets the request, and the same walk
//! from what an error-log line records ([`route_logged`]). It also owns the pieces nginx
//! applies on the way: `Host` validation (`ngx_http_validate_host`), URI normalisation
//! (`ngx_http_parse_complex_uri`: percent-decoding, `merge_slashes`, `/./`, `/../`), the
//! per-address server lists (`ngx_http_add_addresses`), server-name lookup (exact, leading
//! and trailing wildcards, regexes; `ngx_http_find_virtual_server`), the location search
//! (`ngx_http_core_find_location`, including the auto-redirect of `location /x/` for
//! `/x`), and the `try_files` fallback.
//!
//! It never touches the network or the machine: names in `listen` are not resolved (only
//! `localhost` is known), and PCRE regexes are evaluated with the `regex` crate, with a note
//! on the route when a pattern uses syntax it cannot evaluate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use regex::bytes::{Regex, RegexBuilder};

use crate::config::Span;
use crate::view::{ConfigView, ListenAddr, Location, Server, TargetAddress};

/// How many internal redirects nginx follows before answering 500
/// (`NGX_HTTP_MAX_URI_CHANGES`).
const MAX_REDIRECTS: usize = 10;
/// Compiled-size limit of one regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Patterns longer than this are not compiled.
const MAX_PATTERN_LEN: usize = 8 * 1024;
/// At most this many notes are kept on a route.
const MAX_NOTES: usize = 64;
/// Deeper location nesting than this is not searched (the loader already refuses deeper).
const MAX_DEPTH: usize = 128;

/// A request as it reaches nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The local address the connection arrives on, when known.
    pub local: Option<IpAddr>,
    /// The local port.
    pub port: u16,
    /// The `Host` header as sent (`None` when the request has none).
    pub host: Option<String>,
    /// The request target as sent: a path with an optional query (`/api/x?y=1`), or an
    /// absolute URL (`http://host/x`), whose host then wins over `Host` as in nginx.
    pub uri: String,
}

impl Request {
    /// From a URL the user gives with `--url`: `http://shop.example.com/api/x?y=1`,
    /// `https://1.2.3.4:8443/`, `shop.example.com/api` (scheme defaults to http),
    /// `http://[::1]:8080/`. Port defaults 80/443. `local` is the host when it is an IP
    /// literal (the request arrives on that address), else `None`.
    pub fn from_url(url: &str) -> Result<Self, RouteError> {
        let url = url.trim();
        let bad = |why: &str| RouteError::BadUrl(format!("{url:?}: {why}"));
        if url.is_empty() {
            return Err(bad("empty"));
        }
        if url.bytes().any(|b| b <= 0x20 || b == 0x7f) {
            return Err(bad("contains spaces or control characters"));
        }
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_string(), url),
        };
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("only http:// and https:// URLs can be routed")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest.get(..end).unwrap_or_default();
        let target = rest.get(end..).unwrap_or_default();
        let hostport = authority
            .rsplit_once('@')
            .map_or(authority, |(_userinfo, hostport)| hostport);
        let (host, port_text) = if let Some(inner) = hostport.strip_prefix('[') {
            let Some((ip, after)) = inner.split_once(']') else {
                return Err(bad("unclosed '[' in the host"));
            };
            if ip.parse::<Ipv6Addr>().is_err() {
                return Err(bad("invalid IPv6 address"));
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| bad("invalid port"))?),
            };
            (hostport.get(..ip.len() + 2).unwrap_or(hostport), port)
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port_text {
            None | Some("") => default_port,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(bad("invalid port")),
            },
        };
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let local = bare.parse::<IpAddr>().ok();
        let target = target.split('#').next().unwrap_or_default();
        let uri = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        Ok(Self {
            local,
            port,
            host: Some(host.to_string()),
            uri,
        })
    }
}

/// Where a request goes: the server block, the location chain and the pass directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Index in [`ConfigView::servers`].
    pub server: usize,
    /// How the server was chosen.
    pub server_match: ServerMatch,
    /// Index into that server's `listens` that accepted the request.
    pub listen: Option<usize>,
    /// Outermost first; the last one handles the request (after following a `try_files`
    /// fallback to a named location, which is appended with how = NamedFallback, or to a
    /// URI, whose own chain is appended as nginx matches it again).
    pub locations: Vec<LocationMatch>,
    /// Index in [`ConfigView::targets`] of the pass directive that handles the request.
    pub target: Option<usize>,
    /// One line each: uncertainties or things an operator should know.
    pub notes: Vec<String>,
}

/// One location of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationMatch {
    /// `=`, `~`, `~*` or `^~`; `None` for prefix and named locations.
    pub modifier: Option<String>,
    /// The path, regex or `@name` as written.
    pub path: String,
    /// Where the block starts.
    pub span: Span,
    /// Why this location was chosen.
    pub how: LocationHow,
}

/// Why a location is on the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LocationHow {
    /// `location = /x` equal to the URI (no regex is tried).
    Exact,
    /// The longest matching prefix, written `^~` (regexes of that level are not tried).
    PrefixNoRegex,
    /// The longest matching prefix, and no regex matched after it.
    LongestPrefix,
    /// The first matching regex of its level, in configuration order.
    Regex,
    /// A named location reached through the `try_files` fallback.
    NamedFallback,
    /// `location /x/` with a pass directive and the URI `/x`: nginx answers
    /// `301 Moved Permanently` to `/x/` and passes nothing.
    AutoRedirect,
}

/// How the server block was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerMatch {
    /// An exact `server_name` (as written); `""` for a request without `Host` reaching a
    /// server without names or with `server_name ""`.
    ExactName(String),
    /// A wildcard name (`*.example.com`, `.example.com`, `www.example.*`).
    WildcardName(String),
    /// A regex name (`~^www\d+\.example\.com$`).
    RegexName(String),
    /// No name matched: the server marked `default_server` for that address and port.
    DefaultServer,
    /// No name matched and no `default_server`: the first server listening there.
    FirstServer,
}

/// One step of the chain, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// e.g. `server shop.example.com`, `location ~ \.php$`, `proxy_pass http://backend`,
    /// `upstream backend`, `127.0.0.1:8000`.
    pub label: String,
    /// Where it is written.
    pub at: Option<Span>,
}

/// Why a request cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The URL given is not usable.
    #[error("invalid URL {0}")]
    BadUrl(String),
    /// No `server` block listens on that port.
    #[error("no server block listens on port {0}")]
    NoServerForPort(u16),
    /// Servers listen on the port, but not on that address (nginx refuses the connection).
    #[error("no server block listens on {0}; nginx would refuse the connection")]
    NoServerForAddress(SocketAddr),
    /// nginx rejects the `Host` header with 400 Bad Request.
    #[error("nginx rejects the Host {0:?} with 400 Bad Request")]
    InvalidHost(String),
    /// nginx rejects the request target with 400 Bad Request.
    #[error("nginx rejects the URI {0:?} with 400 Bad Request")]
    InvalidUri(String),
}

/// Routes `req`: the server block for (address, port, Host) and the location chain for the
/// URI.
pub fn route(view: &ConfigView, req: &Request) -> Result<Route, RouteError> {
    let mut ctx = Ctx::default();
    let header_host = match &req.host {
        Some(h) => Some(validate_host(h).ok_or_else(|| RouteError::InvalidHost(h.clone()))?),
        None => None,
    };
    let (line_host, path) =
        split_target(&req.uri).ok_or_else(|| RouteError::InvalidUri(req.uri.clone()))?;
    let line_host = match line_host {
        Some(h) => Some(validate_host(h).ok_or_else(|| RouteError::InvalidHost(h.to_string()))?),
        None => None,
    };
    let host = line_host.or(header_host);
    if req.host.is_none() && line_host_is_none(&req.uri) {
        ctx.note(
            "the request has no Host header: nginx answers an HTTP/1.1 request 400 \
             (an HTTP/1.0 one is routed as shown)"
                .to_string(),
        );
    }

    let lists = address_lists(view, req.port, &mut ctx);
    if lists.is_empty() {
        return Err(RouteError::NoServerForPort(req.port));
    }
    let list = choose_list(view, &lists, req, host.as_deref(), &mut ctx)?;
    // The request line is parsed before the Host header: nginx uses the default server's
    // `merge_slashes`.
    let merge = merge_slashes(view.servers.get(list.default));
    let uri = normalize_uri(path.as_bytes(), merge)
        .ok_or_else(|| RouteError::InvalidUri(req.uri.clone()))?;
    let (server, server_match) = find_server(view, list, host.as_deref(), &mut ctx);
    let listen = list
        .servers
        .iter()
        .find(|(s, _)| *s == server)
        .map(|(_, l)| *l);
    let (locations, target) = route_in_server(view, server, uri, &mut ctx);
    Ok(Route {
        server,
        server_match,
        listen,
        locations,
        target,
        notes: ctx.notes,
    })
}

/// Routes what an error-log line says: `server: NAME` (nginx logs the *first*
/// `server_name` of the chosen server block, possibly empty), `request: "GET /x HTTP/1.1"`,
/// and `host: "..."` when logged. `None` when `server` is `None`, no server block has that
/// first name or the request line is unusable.
///
/// The route has no `listen` (the log does not say which) unless the server has a single
/// one; `server_match` tells how the logged host matches that server's names, else
/// `DefaultServer` when one of its listens is `default_server`, else `FirstServer`.
pub fn route_logged(
    view: &ConfigView,
    server: Option<&str>,
    request: &str,
    host: Option<&str>,
) -> Option<Route> {
    let name = server?;
    let target = request_target(request)?;
    let (line_host, path) = split_target(target)?;
    let host = line_host.or(host).and_then(validate_host);
    let mut ctx = Ctx::default();

    let candidates: Vec<usize> = view
        .servers
        .iter()
        .enumerate()
        .filter(|(_, s)| logged_name_matches(s, name))
        .map(|(i, _)| i)
        .collect();
    let first = *candidates.first()?;
    let mut server = first;
    if candidates.len() > 1 {
        // Prefer a block whose names take the logged host.
        if let Some(h) = host.as_deref() {
            let mut scratch = Ctx::default();
            if let Some(&better) = candidates.iter().find(|&&i| {
                let list = single_server_list(i);
                !matches!(
                    find_server(view, &list, Some(h), &mut scratch).1,
                    ServerMatch::DefaultServer | ServerMatch::FirstServer
                )
            }) {
                server = better;
            }
        }
        let places: Vec<String> = candidates
            .iter()
            .filter_map(|&i| view.servers.get(i).map(|s| s.span.to_string()))
            .collect();
        ctx.note(format!(
            "{} server blocks have the first server_name {name:?} ({}); routed through the \
             one at {}",
            candidates.len(),
            places.join(", "),
            view.servers
                .get(server)
                .map(|s| s.span.to_string())
                .unwrap_or_default()
        ));
    }
    let srv = view.servers.get(server)?;
    let uri = normalize_uri(path.as_bytes(), merge_slashes(Some(srv)))?;
    let list = single_server_list(server);
    let server_match = match find_server(view, &list, host.as_deref(), &mut ctx).1 {
        ServerMatch::DefaultServer | ServerMatch::FirstServer => {
            if srv.listens.iter().any(|l| l.default_server) {
                ServerMatch::DefaultServer
            } else {
                ServerMatch::FirstServer
            }
        }
        named => named,
    };
    let listen = (srv.listens.len() == 1).then_some(0);
    let (locations, target) = route_in_server(view, server, uri, &mut ctx);
    Some(Route {
        server,
        server_match,
        listen,
        locations,
        target,
        notes: ctx.notes,
    })
}

impl Route {
    /// The chain for display: `server shop.example.com` (server block span) →
    /// `location /api/` (span; `location = /x`, `location ~ \.php$`, `location @app`) … →
    /// `proxy_pass http://backend` (target span) → `upstream backend` (group span, when the
    /// target names a group) → one hop per server of the group (`127.0.0.1:8000`, at = the
    /// `server` line's span). A pass directive naming one address is its own last hop.
    ///
    /// A server without names shows its listen instead, e.g.
    /// `server (default for 127.0.0.1:8080)`.
    pub fn hops(&self, view: &ConfigView) -> Vec<Hop> {
        let mut hops = Vec::new();
        if let Some(server) = view.servers.get(self.server) {
            hops.push(Hop {
                label: self.server_label(view, server),
                at: Some(server.span.clone()),
            });
        }
        for l in &self.locations {
            let label = match &l.modifier {
                Some(m) => format!("location {m} {}", l.path),
                None => format!("location {}", l.path),
            };
            hops.push(Hop {
                label,
                at: Some(l.span.clone()),
            });
        }
        let Some(target) = self.target.and_then(|t| view.targets.get(t)) else {
            return hops;
        };
        hops.push(Hop {
            label: format!("{} {}", target.module.directive(), target.raw),
            at: Some(target.span.clone()),
        });
        match &target.address {
            TargetAddress::Group(name) => {
                if let Some(group) = view.group(name) {
                    hops.push(Hop {
                        label: format!("upstream {}", group.name),
                        at: Some(group.span.clone()),
                    });
                    for s in &group.servers {
                        let mut label = s.peer.to_string();
                        if s.backup {
                            label.push_str(" (backup)");
                        }
                        if s.down {
                            label.push_str(" (down)");
                        }
                        hops.push(Hop {
                            label,
                            at: Some(s.span.clone()),
                        });
                    }
                }
            }
            // The pass directive's hop already names a single peer.
            TargetAddress::Peer(_) | TargetAddress::Variable(_) | TargetAddress::Invalid(_) => {}
        }
        hops
    }

    fn server_label(&self, view: &ConfigView, server: &Server) -> String {
        if let Some(name) = server.names.first().filter(|n| !n.is_empty()) {
            return format!("server {name}");
        }
        let listen = self
            .listen
            .and_then(|i| server.listens.get(i))
            .or_else(|| server.listens.first());
        let Some(listen) = listen else {
            return "server (no name)".to_string();
        };
        let shown = match &listen.addr {
            ListenAddr::Port(port) => format!("*:{port}"),
            ListenAddr::Inet(addr) => addr.to_string(),
            ListenAddr::Host { .. } | ListenAddr::Unix(_) => listen.raw.clone(),
        };
        let is_default = listen.default_server
            || listen_key(&listen.addr).is_some_and(|key| {
                let mut scratch = Ctx::default();
                address_lists(view, key.port(), &mut scratch)
                    .iter()
                    .any(|l| l.addr == key && l.default == self.server)
            });
        if is_default {
            format!("server (default for {shown})")
        } else {
            format!("server (no name, {shown})")
        }
    }
}

/// Per-call state: notes and compiled regexes (nothing is cached across calls).
#[derive(Default)]
struct Ctx {
    notes: Vec<String>,
    regexes: Vec<(String, bool, Option<Regex>)>,
}

impl Ctx {
    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES && !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Whether PCRE `pattern` matches `subject`; a pattern Rust cannot compile does not
    /// match, and `what` describes it in the note.
    fn is_match(
        &mut self,
        pattern: &str,
        caseless: bool,
        subject: &[u8],
        what: impl FnOnce() -> String,
    ) -> bool {
        let found = self
            .regexes
            .iter()
            .position(|(p, c, _)| p == pattern && *c == caseless);
        let index = match found {
            Some(i) => i,
            None => {
                let compiled = match compile_pcre(pattern, caseless) {
                    Ok(re) => Some(re),
                    Err(why) => {
                        self.note(format!(
                            "{}: Rust's regex engine cannot evaluate it ({why}); treated as \
                             not matching, but nginx may match it",
                            what()
                        ));
                        None
                    }
                };
                self.regexes.push((pattern.to_string(), caseless, compiled));
                self.regexes.len() - 1
            }
        };
        self.regexes
            .get(index)
            .and_then(|(_, _, re)| re.as_ref())
            .is_some_and(|re| re.is_match(subject))
    }
}

/// Compiles a PCRE pattern as nginx runs it (bytes, no UTF mode) with the `regex` crate.
fn compile_pcre(pattern: &str, caseless: bool) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!("pattern longer than {MAX_PATTERN_LEN} bytes"));
    }
    if has_possessive_quantifier(pattern) {
        // The `regex` crate reads `a++` as `(a+)+`, which matches where PCRE does not.
        return Err("possessive quantifiers are not supported".to_string());
    }
    // PCRE without UTF mode sees a non-ASCII character as its bytes.
    let mut text = String::with_capacity(pattern.len());
    let mut escaped = false;
    for c in pattern.chars() {
        if c.is_ascii() || escaped {
            text.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                text.push_str(&format!("\\x{b:02X}"));
            }
        }
        escaped = c == '\\' && !escaped;
    }
    RegexBuilder::new(&text)
        .unicode(false)
        .case_insensitive(caseless)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let message = e.to_string();
            message
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or_else(|| message.lines().last().unwrap_or("invalid pattern"))
                .trim()
                .to_string()
        })
}

/// Whether a PCRE pattern has a possessive quantifier (`++`, `*+`, `?+`, `{n}+`) outside
/// escapes and character classes.
fn has_possessive_quantifier(pattern: &str) -> bool {
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut after_quantifier = false;
    let mut previous = '\0';
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
            after_quantifier = false;
            previous = '\\';
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
            previous = c;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                // A `]` right after `[` or `[^` is a literal.
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                }
                after_quantifier = false;
            }
            '+' if after_quantifier => return true,
            '+' | '*' | '}' => after_quantifier = true,
            '?' => after_quantifier = previous != '(',
            _ => after_quantifier = false,
        }
        previous = c;
    }
    false
}

// ---------------------------------------------------------------------------------------
// Request line, Host and URI

/// The request target of a logged request line (`GET /x HTTP/1.1`, or `GET /x`).
fn request_target(line: &str) -> Option<&str> {
    let line = line.trim();
    let (method, rest) = line.split_once(' ')?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
        return None;
    }
    let rest = rest.trim();
    let target = match rest.rsplit_once(' ') {
        Some((target, version)) if version.starts_with("HTTP/") => target.trim(),
        _ => rest,
    };
    (!target.is_empty()).then_some(target)
}

/// Whether `uri` is a path (no host in it).
fn line_host_is_none(uri: &str) -> bool {
    matches!(split_target(uri), Some((None, _)))
}

/// Splits a request target into the host of an absolute URL (`http://host:port/x`) and the
/// path with its query. `None` when it is neither an absolute URL nor a path, or holds
/// bytes nginx refuses in a request line.
fn split_target(target: &str) -> Option<(Option<&str>, &str)> {
    if target.bytes().any(|b| b <= 0x20 || b == 0x7f) {
        return None;
    }
    if target.starts_with('/') {
        return Some((None, target));
    }
    let (scheme, rest) = target.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = rest.get(..end)?;
    if host.is_empty() {
        return None;
    }
    let path = rest.get(end..).unwrap_or_default();
    // An empty path is "/" (nginx's `empty_path_in_uri`); a bare query keeps no path.
    let path = if path.is_empty() || path.starts_with('?') {
        "/"
    } else {
        path
    };
    Some((Some(host), path))
}

/// `ngx_http_validate_host`: the host lowercased, without port and trailing dot; `None`
/// when nginx answers 400.
fn validate_host(raw: &str) -> Option<String> {
    #[derive(PartialEq)]
    enum State {
        Usual,
        Literal,
        Rest,
    }
    let bytes = raw.as_bytes();
    let mut state = State::Usual;
    let mut dot_pos: Option<usize> = None;
    let mut host_len = bytes.len();
    for (i, &ch) in bytes.iter().enumerate() {
        match ch {
            b'.' => {
                if i > 0 && dot_pos == Some(i - 1) {
                    return None;
                }
                dot_pos = Some(i);
            }
            // The port starts at the first `:` outside `[...]`.
            b':' if state == State::Usual => {
                host_len = i;
                state = State::Rest;
            }
            b'[' if i == 0 => state = State::Literal,
            b']' if state == State::Literal => {
                host_len = i + 1;
                state = State::Rest;
            }
            b'/' => return None,
            _ if ch <= 0x20 || ch == 0x7f => return None,
            _ => {}
        }
    }
    if host_len > 0 && dot_pos == Some(host_len - 1) {
        host_len -= 1;
    }
    if host_len == 0 {
        return None;
    }
    Some(raw.get(..host_len)?.to_ascii_lowercase())
}

/// `ngx_http_parse_complex_uri`: the URI path as nginx matches locations against it
/// (percent-decoded, slashes merged when `merge_slashes`, `.` and `..` segments resolved,
/// query and fragment removed). `None` when nginx answers 400.
fn normalize_uri(raw: &[u8], merge_slashes: bool) -> Option<Vec<u8>> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Usual,
        Slash,
        Dot,
        DotDot,
        Quoted,
        QuotedSecond,
    }
    /// Removes the `/..` just written and the segment before it; `false` above the root.
    fn back_up(out: &mut Vec<u8>) -> bool {
        // `out` ends with "/.."; find the slash before the previous segment.
        let Some(end) = out.len().checked_sub(4) else {
            return false;
        };
        match out
            .get(..=end)
            .and_then(|o| o.iter().rposition(|&b| b == b'/'))
        {
            Some(slash) => {
                out.truncate(slash + 1);
                true
            }
            None => false,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut state = S::Usual;
    let mut quoted_state = S::Usual;
    let mut decoded: u8 = 0;
    let mut i = 0;
    // Each step consumes a byte, except the step after a decoded `%XX`, which handles the
    // decoded byte; the loop is bounded by twice the input length.
    let mut pending: Option<u8> = None;
    let mut steps = 0usize;
    loop {
        steps += 1;
        if steps > raw.len().saturating_mul(2) + 2 {
            return None;
        }
        let ch = match pending.take() {
            Some(ch) => ch,
            None => match raw.get(i) {
                Some(&ch) => {
                    i += 1;
                    ch
                }
                None => break,
            },
        };
        match state {
            S::Usual => match ch {
                b'/' => {
                    state = S::Slash;
                    out.push(ch);
                }
                b'%' => {
                    quoted_state = state;
                    state = S::Quoted;
                }
                b'?' | b'#' => return Some(out),
                _ => out.push(ch),
            },
            S::Slash => match ch {
                b'/' => {
                    if !merge_slashes {
                        out.push(ch);
                    }
                }
                b'.' => {
                    state = S::Dot;
                    out.push(ch);
                }
                b'%' => {
                    quoted_state = state;
                    state = S::Quoted;
                }
                b'?' | b'#' => return Some(out),
                _ => {
                    state = S::Usual;
                    out.push(ch);
                }
            },
            S::Dot => match ch {
                b'/' => {
                    state = S::Slash;
                    out.pop();
                }
                b'.' => {
                    state = S::DotDot;
                    out.push(ch);
                }
                b'%' => {
                    quoted_state = state;
                    state = S::Quoted;
                }
                b'?' | b'#' => {
                    out.pop();
                    return Some(out);
                }
                _ => {
                    state = S::Usual;
                    out.push(ch);
                }
            },
            S::DotDot => match ch {
                b'/' | b'?' | b'#' => {
                    if !back_up(&mut out) {
                        return None;
                    }
                    if ch != b'/' {
                        return Some(out);
                    }
                    state = S::Slash;
                }
                b'%' => {
                    quoted_state = state;
                    state = S::Quoted;
                }
                _ => {
                    state = S::Usual;
                    out.push(ch);
                }
            },
            S::Quoted => {
                decoded = hex_value(ch)?;
                state = S::QuotedSecond;
            }
            S::QuotedSecond => {
                let low = hex_value(ch)?;
                let byte = (decoded << 4) | low;
                if ch.is_ascii_digit() {
                    if byte == b'%' || byte == b'#' {
                        state = S::Usual;
                        out.push(byte);
                        continue;
                    }
                    if byte == 0 {
                        return None;
                    }
                } else if byte == b'?' {
                    state = S::Usual;
                    out.push(byte);
                    continue;
                }
                state = quoted_state;
                pending = Some(byte);
            }
        }
    }
    match state {
        S::Quoted | S::QuotedSecond => return None,
        S::Dot => {
            out.pop();
        }
        S::DotDot => {
            if !back_up(&mut out) {
                return None;
            }
        }
        S::Usual | S::Slash => {}
    }
    Some(out)
}

fn hex_value(ch: u8) -> Option<u8> {
    match ch {
        b'0'..=b'9' => Some(ch - b'0'),
        _ => match ch | 0x20 {
            c @ b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        },
    }
}

/// `merge_slashes` in effect in a server (default on).
fn merge_slashes(server: Option<&Server>) -> bool {
    server
        .and_then(|s| s.settings.get("merge_slashes"))
        .and_then(|s| s.args.first())
        .is_none_or(|v| !v.eq_ignore_ascii_case("off"))
}

// ---------------------------------------------------------------------------------------
// Addresses

/// The servers of one listening address:port, as `ngx_http_add_addresses` groups them.
#[derive(Debug)]
struct AddrList {
    /// The address (`0.0.0.0` / `::` for wildcards).
    addr: SocketAddr,
    /// (server index, listen index), in configuration order.
    servers: Vec<(usize, usize)>,
    /// The default server: the `default_server` one, else the first.
    default: usize,
    /// Whether `default` was marked `default_server`.
    explicit_default: bool,
    /// Whether some listen of this address says `ipv6only=off`.
    dual_stack: bool,
}

/// The address a listen binds, as nginx keys its address lists.
fn listen_key(addr: &ListenAddr) -> Option<SocketAddr> {
    match addr {
        ListenAddr::Port(port) => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port)),
        ListenAddr::Inet(sa) => Some(SocketAddr::new(sa.ip(), sa.port())),
        ListenAddr::Host { host, port } if host.eq_ignore_ascii_case("localhost") => {
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), *port))
        }
        ListenAddr::Host { .. } | ListenAddr::Unix(_) => None,
    }
}

/// Every address list on `port`, in configuration order.
fn address_lists(view: &ConfigView, port: u16, ctx: &mut Ctx) -> Vec<AddrList> {
    let mut lists: Vec<AddrList> = Vec::new();
    for (si, server) in view.servers.iter().enumerate() {
        for (li, listen) in server.listens.iter().enumerate() {
            if let ListenAddr::Host { host, port: p } = &listen.addr
                && *p == port
                && !host.eq_ignore_ascii_case("localhost")
            {
                let at = listen
                    .span
                    .as_ref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default();
                ctx.note(format!(
                    "listen {}{at} names a host that nginx resolves at start-up; it is not \
                     considered here",
                    listen.raw
                ));
            }
            let Some(key) = listen_key(&listen.addr) else {
                continue;
            };
            if key.port() != port {
                continue;
            }
            let dual = listen.params.iter().any(|p| p == "ipv6only=off");
            match lists.iter_mut().find(|l| l.addr == key) {
                Some(list) => {
                    if !list.servers.iter().any(|(s, _)| *s == si) {
                        list.servers.push((si, li));
                    }
                    if listen.default_server && !list.explicit_default {
                        list.default = si;
                        list.explicit_default = true;
                    }
                    list.dual_stack |= dual;
                }
                None => lists.push(AddrList {
                    addr: key,
                    servers: vec![(si, li)],
                    default: si,
                    explicit_default: listen.default_server,
                    dual_stack: dual,
                }),
            }
        }
    }
    lists
}

/// A list holding only server `index` (for [`route_logged`]).
fn single_server_list(index: usize) -> AddrList {
    AddrList {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        servers: vec![(index, 0)],
        default: index,
        explicit_default: false,
        dual_stack: false,
    }
}

/// The address list a connection to `req.local:req.port` uses.
fn choose_list<'a>(
    view: &ConfigView,
    lists: &'a [AddrList],
    req: &Request,
    host: Option<&str>,
    ctx: &mut Ctx,
) -> Result<&'a AddrList, RouteError> {
    if let Some(local) = req.local {
        let local = local.to_canonical();
        let found = lists
            .iter()
            .find(|l| l.addr.ip() == local)
            .or_else(|| {
                lists
                    .iter()
                    .find(|l| l.addr.ip().is_unspecified() && l.addr.is_ipv4() == local.is_ipv4())
            })
            .or_else(|| {
                // An IPv4 connection reaches `[::]:port ipv6only=off`.
                lists.iter().find(|l| {
                    local.is_ipv4()
                        && l.addr.is_ipv6()
                        && l.addr.ip().is_unspecified()
                        && l.dual_stack
                })
            });
        return found.ok_or(RouteError::NoServerForAddress(SocketAddr::new(
            local, req.port,
        )));
    }
    let mut ordered: Vec<&AddrList> = lists
        .iter()
        .filter(|l| l.addr.ip().is_unspecified() && l.addr.is_ipv4())
        .collect();
    ordered.extend(
        lists
            .iter()
            .filter(|l| l.addr.ip().is_unspecified() && l.addr.is_ipv6()),
    );
    ordered.extend(lists.iter().filter(|l| !l.addr.ip().is_unspecified()));
    let chosen = if ordered.len() > 1 {
        let mut scratch = Ctx::default();
        ordered
            .iter()
            .copied()
            .find(|l| {
                !matches!(
                    find_server(view, l, host, &mut scratch).1,
                    ServerMatch::DefaultServer | ServerMatch::FirstServer
                )
            })
            .or_else(|| ordered.first().copied())
    } else {
        ordered.first().copied()
    };
    let chosen = chosen.ok_or(RouteError::NoServerForPort(req.port))?;
    if ordered.len() > 1 {
        let all: Vec<String> = ordered.iter().map(|l| show_addr(l.addr)).collect();
        ctx.note(format!(
            "port {} has separate server lists per address ({}); without the local address \
             the request is assumed to arrive on {}",
            req.port,
            all.join(", "),
            show_addr(chosen.addr)
        ));
    }
    Ok(chosen)
}

/// `*:80`, `127.0.0.1:80`, `[::1]:80`.
fn show_addr(addr: SocketAddr) -> String {
    if addr.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
        format!("*:{}", addr.port())
    } else {
        addr.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// Server names

/// The names of one address list, as `ngx_http_server_names` hashes them.
#[derive(Default)]
struct NameTable<'a> {
    /// (lowercased name, name as written, server)
    exact: Vec<(String, &'a str, usize)>,
    /// (suffix, also matches the suffix itself, name as written, server)
    head: Vec<(String, bool, &'a str, usize)>,
    /// (prefix, name as written, server)
    tail: Vec<(String, &'a str, usize)>,
    /// (pattern without `~`, name as written, server)
    regex: Vec<(&'a str, &'a str, usize)>,
}

impl<'a> NameTable<'a> {
    /// Adds names in nginx's order; a name conflicting with an earlier one is ignored, as
    /// nginx does ("conflicting server name ... ignored").
    fn build(view: &'a ConfigView, list: &AddrList, ctx: &mut Ctx) -> Self {
        let mut table = Self::default();
        // Every key the exact hash has seen, including those of `.example.com`.
        let mut exact_keys: Vec<String> = Vec::new();
        for &(si, _) in &list.servers {
            let Some(server) = view.servers.get(si) else {
                continue;
            };
            let names: Vec<&str> = if server.names.is_empty() {
                vec![""]
            } else {
                server.names.iter().map(String::as_str).collect()
            };
            for written in names {
                if let Some(pattern) = written.strip_prefix('~') {
                    table.regex.push((pattern, written, si));
                    continue;
                }
                if written.eq_ignore_ascii_case("$hostname") {
                    ctx.note(format!(
                        "server_name $hostname at {}: the machine's host name is not known \
                         here; not matched",
                        server.span
                    ));
                    continue;
                }
                let name = written.to_ascii_lowercase();
                if name.matches('*').count() > 1 || name.contains("..") || name.contains('\0') {
                    continue;
                }
                if name.len() > 1 && name.starts_with('.') {
                    let key = name.get(1..).unwrap_or_default().to_string();
                    if exact_keys.contains(&key) {
                        continue;
                    }
                    exact_keys.push(key.clone());
                    if table.head.iter().any(|(k, ..)| *k == key) {
                        continue;
                    }
                    table.head.push((key, true, written, si));
                } else if name.len() > 2 && name.starts_with("*.") {
                    let key = name.get(2..).unwrap_or_default().to_string();
                    if table.head.iter().any(|(k, ..)| *k == key) {
                        continue;
                    }
                    table.head.push((key, false, written, si));
                } else if name.len() > 2 && name.ends_with(".*") {
                    let key = name.get(..name.len() - 2).unwrap_or_default().to_string();
                    if table.tail.iter().any(|(k, ..)| *k == key) {
                        continue;
                    }
                    table.tail.push((key, written, si));
                } else if name.contains('*') {
                    continue;
                } else {
                    if exact_keys.contains(&name) {
                        continue;
                    }
                    exact_keys.push(name.clone());
                    table.exact.push((name, written, si));
                }
            }
        }
        table
    }
}

/// `ngx_http_find_virtual_server`: the server of `list` for `host` (lowercased, validated;
/// `None` for no Host header).
fn find_server(
    view: &ConfigView,
    list: &AddrList,
    host: Option<&str>,
    ctx: &mut Ctx,
) -> (usize, ServerMatch) {
    let table = NameTable::build(view, list, ctx);
    let h = host.unwrap_or("");
    if let Some((_, written, si)) = table.exact.iter().find(|(name, ..)| name == h) {
        return (*si, ServerMatch::ExactName((*written).to_string()));
    }
    if !h.is_empty() {
        let head = table
            .head
            .iter()
            .filter(|(key, both, ..)| {
                (*both && h == key)
                    || (h.len() > key.len() + 1
                        && h.ends_with(key.as_str())
                        && h.as_bytes().get(h.len() - key.len() - 1) == Some(&b'.'))
            })
            .max_by_key(|(key, ..)| key.len());
        if let Some((_, _, written, si)) = head {
            return (*si, ServerMatch::WildcardName((*written).to_string()));
        }
        let tail = table
            .tail
            .iter()
            .filter(|(key, ..)| {
                h.len() > key.len() + 1
                    && h.starts_with(key.as_str())
                    && h.as_bytes().get(key.len()) == Some(&b'.')
            })
            .max_by_key(|(key, ..)| key.len());
        if let Some((_, written, si)) = tail {
            return (*si, ServerMatch::WildcardName((*written).to_string()));
        }
        for &(pattern, written, si) in &table.regex {
            // nginx compiles a server-name regex caselessly when it has an uppercase letter.
            let caseless = pattern.bytes().any(|b| b.is_ascii_uppercase());
            let span = view
                .servers
                .get(si)
                .map(|s| s.span.to_string())
                .unwrap_or_default();
            if ctx.is_match(pattern, caseless, h.as_bytes(), || {
                format!("server_name {written} (server at {span})")
            }) {
                return (si, ServerMatch::RegexName(written.to_string()));
            }
        }
    }
    if list.explicit_default {
        (list.default, ServerMatch::DefaultServer)
    } else {
        (list.default, ServerMatch::FirstServer)
    }
}

/// Whether nginx logs `server: name` for this server: its first `server_name`, lowercased,
/// without a leading dot (a regex keeps its `~` and case); empty without names.
fn logged_name_matches(server: &Server, logged: &str) -> bool {
    let first = server.names.first().map_or("", String::as_str);
    if first.starts_with('~') {
        return first == logged;
    }
    let first = if first.len() > 1 {
        first.strip_prefix('.').unwrap_or(first)
    } else {
        first
    };
    first.eq_ignore_ascii_case(logged)
}

// ---------------------------------------------------------------------------------------
// Locations

/// What a location search found (nginx's return codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// `NGX_OK`: an exact or regex match.
    Final,
    /// `NGX_DONE`: the auto-redirect.
    Redirect,
    /// `NGX_AGAIN` / `NGX_DECLINED`: a prefix match or nothing; regexes may follow.
    Open,
}

/// What the static (prefix and exact) search of one level found.
enum Static<'a> {
    Exact(&'a Location),
    Prefix(&'a Location),
    Redirect(&'a Location),
    Nothing,
}

fn is_regex(l: &Location) -> bool {
    matches!(l.modifier.as_deref(), Some("~" | "~*"))
}

fn is_named(l: &Location) -> bool {
    l.modifier.is_none() && l.path.starts_with('@')
}

fn is_exact(l: &Location) -> bool {
    l.modifier.as_deref() == Some("=")
}

/// A prefix location (plain or `^~`).
fn is_inclusive(l: &Location) -> bool {
    match l.modifier.as_deref() {
        None => !is_named(l),
        Some("^~") => true,
        Some(_) => false,
    }
}

/// The pass targets of a location that apply whenever it handles a request.
fn unconditional_targets(l: &Location) -> impl Iterator<Item = usize> + '_ {
    l.targets
        .iter()
        .copied()
        .filter(|t| !l.conditional_targets.contains(t))
}

/// `ngx_http_core_find_static_location`, by its meaning: the exact location equal to the
/// URI; else the prefix location equal to it; else a location `URI/` with a pass
/// directive (auto-redirect); else the longest prefix location.
fn find_static<'a>(level: &'a [Location], uri: &[u8]) -> Static<'a> {
    if let Some(l) = level
        .iter()
        .find(|l| is_exact(l) && l.path.as_bytes() == uri)
    {
        return Static::Exact(l);
    }
    if let Some(l) = level
        .iter()
        .find(|l| is_inclusive(l) && l.path.as_bytes() == uri)
    {
        return Static::Prefix(l);
    }
    if let Some(l) = level.iter().find(|l| {
        (is_exact(l) || is_inclusive(l))
            && l.path.len() == uri.len() + 1
            && l.path.as_bytes().starts_with(uri)
            && l.path.ends_with('/')
            && unconditional_targets(l).next().is_some()
    }) {
        return Static::Redirect(l);
    }
    let mut best: Option<&Location> = None;
    for l in level.iter().filter(|l| is_inclusive(l)) {
        if uri.starts_with(l.path.as_bytes()) && best.is_none_or(|b| l.path.len() > b.path.len()) {
            best = Some(l);
        }
    }
    best.map_or(Static::Nothing, Static::Prefix)
}

/// `ngx_http_core_find_location`: searches `level` (and recursively the nested locations of
/// what matches), appending the chain to `chain`.
///
/// `under_regex` is set below a regex location: nginx builds the prefix/exact search tree
/// only along prefix locations from the server (`ngx_http_init_static_location_trees`
/// skips regex locations), so there only nested regex locations can match.
fn find_location<'a>(
    level: &'a [Location],
    uri: &[u8],
    ctx: &mut Ctx,
    chain: &mut Vec<(&'a Location, LocationHow)>,
    depth: usize,
    under_regex: Option<&'a Location>,
) -> Found {
    if depth > MAX_DEPTH {
        return Found::Open;
    }
    let start = chain.len();
    let mut noregex = false;
    let found = match under_regex {
        None => find_static(level, uri),
        Some(parent) => {
            if let Static::Exact(l) | Static::Prefix(l) | Static::Redirect(l) =
                find_static(level, uri)
            {
                ctx.note(format!(
                    "location {} at {} is nested in the regex location {} and is never used:                      nginx does not search prefix or exact locations inside a regex location",
                    l.path, l.span, parent.path
                ));
            }
            Static::Nothing
        }
    };
    match found {
        Static::Exact(l) => {
            chain.push((l, LocationHow::Exact));
            return Found::Final;
        }
        Static::Redirect(l) => {
            chain.push((l, LocationHow::AutoRedirect));
            return Found::Redirect;
        }
        Static::Prefix(l) => {
            noregex = l.modifier.as_deref() == Some("^~");
            let how = if noregex {
                LocationHow::PrefixNoRegex
            } else {
                LocationHow::LongestPrefix
            };
            chain.push((l, how));
            match find_location(&l.locations, uri, ctx, chain, depth + 1, None) {
                Found::Final => return Found::Final,
                Found::Redirect => return Found::Redirect,
                Found::Open => {}
            }
        }
        Static::Nothing => {}
    }
    if noregex {
        return Found::Open;
    }
    for l in level.iter().filter(|l| is_regex(l)) {
        let caseless = l.modifier.as_deref() == Some("~*");
        let matched = ctx.is_match(&l.path, caseless, uri, || {
            format!(
                "location {} {} at {}",
                l.modifier.as_deref().unwrap_or_default(),
                l.path,
                l.span
            )
        });
        if matched {
            chain.truncate(start);
            chain.push((l, LocationHow::Regex));
            // nginx then searches the regex location's nested regexes, whatever they find.
            find_location(&l.locations, uri, ctx, chain, depth + 1, Some(l));
            return Found::Final;
        }
    }
    Found::Open
}

/// What happens after a location without a pass directive of its own.
enum Next {
    /// Match this URI again from the server level (internal redirect).
    Uri(Vec<u8>),
    /// Go to this named location.
    Named(String),
}

/// Routes `uri` within server `index`: the location chain (with `try_files` fallbacks
/// followed) and the pass target.
fn route_in_server(
    view: &ConfigView,
    index: usize,
    uri: Vec<u8>,
    ctx: &mut Ctx,
) -> (Vec<LocationMatch>, Option<usize>) {
    let mut out = Vec::new();
    let Some(server) = view.servers.get(index) else {
        return (out, None);
    };
    server_notes(server, ctx);
    // The URI `$uri` stands for: a named location keeps the URI it was reached with.
    let mut current_uri = uri.clone();
    let mut next = Next::Uri(uri);
    for _ in 0..=MAX_REDIRECTS {
        let handler = match next {
            Next::Uri(uri) => {
                current_uri.clone_from(&uri);
                let mut chain = Vec::new();
                let found = find_location(&server.locations, &uri, ctx, &mut chain, 0, None);
                out.extend(chain.iter().map(|(l, how)| location_match(l, *how)));
                let Some(&(handler, _)) = chain.last() else {
                    ctx.note(format!(
                        "no location matches {:?}: the server's own configuration handles it \
                         (static files)",
                        String::from_utf8_lossy(&uri)
                    ));
                    return (out, None);
                };
                if found == Found::Redirect {
                    ctx.note(format!(
                        "nginx answers 301 Moved Permanently to {:?} (location {} at {} has a \
                         pass directive and the URI lacks its trailing slash); nothing is \
                         passed upstream",
                        handler.path, handler.path, handler.span
                    ));
                    return (out, None);
                }
                handler
            }
            Next::Named(name) => {
                let Some(named) = server
                    .locations
                    .iter()
                    .find(|l| is_named(l) && l.path == name)
                else {
                    ctx.note(format!(
                        "named location {name} does not exist in this server: nginx answers \
                         500 (could not find named location)"
                    ));
                    return (out, None);
                };
                out.push(location_match(named, LocationHow::NamedFallback));
                named
            }
        };
        location_notes(handler, ctx);
        if let Some(target) = unconditional_targets(handler).last() {
            if let Some(fallback) = try_files_fallback(handler) {
                ctx.note(format!(
                    "try_files at {}: when none of the files exists nginx goes to {} instead \
                     of this location's {}",
                    fallback.1,
                    fallback.0,
                    view.targets
                        .get(target)
                        .map(|t| t.module.directive())
                        .unwrap_or("pass directive")
                ));
            }
            return (out, Some(target));
        }
        if let Some(&target) = handler.conditional_targets.first() {
            ctx.note(format!(
                "the pass directive of location {} is inside `if`/`limit_except`: it handles \
                 the request only when that block applies",
                handler.path
            ));
            return (out, Some(target));
        }
        let Some(try_files) = handler.settings.get("try_files") else {
            return (out, None);
        };
        if try_files.args.len() < 2 {
            return (out, None);
        }
        let Some(last) = try_files.args.last() else {
            return (out, None);
        };
        if last.starts_with('@') {
            let name = last.clone();
            ctx.note(format!(
                "try_files at {} tries the files first; only when none exists does the request \
                 go to {name}",
                try_files.span
            ));
            next = Next::Named(name);
        } else if let Some(code) = last.strip_prefix('=') {
            ctx.note(format!(
                "try_files at {} answers {code} when none of the files exists",
                try_files.span
            ));
            return (out, None);
        } else {
            match fallback_uri(last, &current_uri) {
                Some(uri) => {
                    ctx.note(format!(
                        "try_files at {} tries the files first; when none exists nginx \
                         redirects internally to {:?} and matches the locations again (the \
                         locations after this one come from that)",
                        try_files.span,
                        String::from_utf8_lossy(&uri)
                    ));
                    next = Next::Uri(uri);
                }
                None => {
                    ctx.note(format!(
                        "try_files at {} falls back to {last:?}, which depends on variables; not \
                         followed",
                        try_files.span
                    ));
                    return (out, None);
                }
            }
        }
    }
    ctx.note(format!(
        "more than {MAX_REDIRECTS} internal redirects: nginx answers 500 (rewrite or internal \
         redirection cycle)"
    ));
    (out, None)
}

/// The `try_files` fallback of a location that has a pass directive: (fallback, span).
fn try_files_fallback(l: &Location) -> Option<(String, Span)> {
    let t = l.settings.get("try_files")?;
    if t.args.len() < 2 {
        return None;
    }
    Some((t.args.last()?.clone(), t.span.clone()))
}

/// The URI of a `try_files` fallback such as `/index.php?$args` or
/// `/index.php$is_args$args`: the path before the query part, with `$uri` and
/// `$document_uri` replaced by `uri`. `None` when the path depends on other variables.
fn fallback_uri(arg: &str, uri: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let bytes = arg.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'?' => break,
            b'$' => {
                let rest = bytes.get(i + 1..).unwrap_or_default();
                let (name, used) = if rest.first() == Some(&b'{') {
                    let close = rest.iter().position(|&c| c == b'}')?;
                    (rest.get(1..close)?, close + 1)
                } else {
                    let len = rest
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                        .count();
                    (rest.get(..len)?, len)
                };
                match name {
                    b"is_args" | b"args" | b"query_string" => break,
                    b"uri" | b"document_uri" => out.extend_from_slice(uri),
                    _ => return None,
                }
                i += 1 + used;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn location_match(l: &Location, how: LocationHow) -> LocationMatch {
    LocationMatch {
        modifier: l.modifier.clone(),
        path: l.path.clone(),
        span: l.span.clone(),
        how,
    }
}

/// Notes about server-level directives that act before any location.
fn server_notes(server: &Server, ctx: &mut Ctx) {
    if !server.targets.is_empty() {
        ctx.note(
            "the server has pass directives outside any location (in a server-level `if`): \
             when its condition holds, nginx uses that block instead of any location"
                .to_string(),
        );
    }
    if let Some(r) = server.settings.get("return") {
        ctx.note(format!(
            "the server has `return {}` at {}: nginx answers before choosing a location",
            r.args.join(" "),
            r.span
        ));
    }
    if let Some(r) = server.settings.get("rewrite") {
        ctx.note(format!(
            "the server has rewrite rules (first at {}): the URI may change before the location \
             is chosen",
            r.span
        ));
    }
}

/// Notes about the handling location: `return`, `rewrite`, `internal`, `error_page`.
fn location_notes(l: &Location, ctx: &mut Ctx) {
    let name = match &l.modifier {
        Some(m) => format!("{m} {}", l.path),
        None => l.path.clone(),
    };
    if let Some(r) = l.settings.get("return") {
        ctx.note(format!(
            "location {name} has `return {}` at {}: nginx answers it without passing the \
             request on",
            r.args.join(" "),
            r.span
        ));
    }
    if let Some(r) = l.settings.get("rewrite") {
        ctx.note(format!(
            "location {name} has rewrite rules (first at {}): the URI may change and be matched \
             again",
            r.span
        ));
    }
    if l.settings.get("internal").is_some() && !is_named(l) {
        ctx.note(format!(
            "location {name} is `internal`: a client request reaching it gets 404"
        ));
    }
    for e in l.settings.all("error_page") {
        let Some((page, codes)) = e.args.split_last() else {
            continue;
        };
        let takes_502 = codes.iter().any(|c| c == "502");
        if page.starts_with('@') {
            if takes_502 {
                ctx.note(format!(
                    "error_page at {}: a 502 here is handed to location {page} (the client may \
                     see its answer instead of a 502)",
                    e.span
                ));
            } else {
                ctx.note(format!(
                    "error_page {} at {}: those errors go to location {page}",
                    codes.join(" "),
                    e.span
                ));
            }
        } else if takes_502 {
            ctx.note(format!(
                "error_page at {}: a 502 here is answered with {page}",
                e.span
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn view(text: &str) -> ConfigView {
        let config = Config::from_text(text, Path::new("/t/nginx.conf")).expect("parse");
        ConfigView::new(&config)
    }

    fn http(servers: &str) -> ConfigView {
        view(&format!("http {{\n{servers}\n}}\n"))
    }

    fn req(local: Option<&str>, port: u16, host: Option<&str>, uri: &str) -> Request {
        Request {
            local: local.map(|l| l.parse().expect("ip")),
            port,
            host: host.map(str::to_string),
            uri: uri.to_string(),
        }
    }

    fn get(v: &ConfigView, host: &str, uri: &str) -> Route {
        route(v, &req(None, 80, Some(host), uri)).expect("route")
    }

    /// `modifier path` of each location on the route, e.g. `["/a/", "~ \.php$"]`.
    fn chain(r: &Route) -> Vec<String> {
        r.locations
            .iter()
            .map(|l| match &l.modifier {
                Some(m) => format!("{m} {}", l.path),
                None => l.path.clone(),
            })
            .collect()
    }

    fn hows(r: &Route) -> Vec<LocationHow> {
        r.locations.iter().map(|l| l.how).collect()
    }

    /// The first server_name of the routed server.
    fn name(v: &ConfigView, r: &Route) -> String {
        v.servers[r.server]
            .names
            .first()
            .cloned()
            .unwrap_or_default()
    }

    const NAMES: &str = "
        server { listen 80; server_name first; }
        server { listen 80; server_name www.example.com; }
        server { listen 80; server_name *.example.com; }
        server { listen 80; server_name *.shop.example.com; }
        server { listen 80; server_name www.example.*; }
        server { listen 80; server_name ~^www\\d+\\.example\\.net$; }
        server { listen 80; server_name ~^(api|www)\\d*\\.example\\.net$; }
        server { listen 80 default_server; server_name default; }
        server { listen 80; server_name .example.org; }
    ";

    #[test]
    fn server_name_precedence() {
        let v = http(NAMES);
        let cases = [
            ("www.example.com", "www.example.com"),
            ("WWW.Example.COM.", "www.example.com"),
            ("www.example.com:8080", "www.example.com"),
            ("a.example.com", "*.example.com"),
            ("a.b.example.com", "*.example.com"),
            ("x.shop.example.com", "*.shop.example.com"),
            ("shop.example.com", "*.example.com"),
            ("www.example.net", "www.example.*"),
            ("www.example.co.uk", "www.example.*"),
            ("www12.example.net", "~^www\\d+\\.example\\.net$"),
            ("api.example.net", "~^(api|www)\\d*\\.example\\.net$"),
            ("example.org", ".example.org"),
            ("a.example.org", ".example.org"),
            ("example.com", "default"),
            ("www.example", "default"),
            ("unknown", "default"),
        ];
        for (host, want) in cases {
            let r = get(&v, host, "/");
            assert_eq!(name(&v, &r), want, "host {host}");
        }
        let r = get(&v, "a.example.com", "/");
        assert_eq!(
            r.server_match,
            ServerMatch::WildcardName("*.example.com".into())
        );
        let r = get(&v, "www.example.com", "/");
        assert_eq!(
            r.server_match,
            ServerMatch::ExactName("www.example.com".into())
        );
        let r = get(&v, "www1.example.net", "/");
        assert_eq!(
            r.server_match,
            ServerMatch::RegexName("~^www\\d+\\.example\\.net$".into())
        );
        assert_eq!(get(&v, "zzz", "/").server_match, ServerMatch::DefaultServer);
    }

    #[test]
    fn exact_beats_wildcards_and_head_beats_tail() {
        let v = http(
            "server { listen 80; server_name ~.*; }
             server { listen 80; server_name www.*; }
             server { listen 80; server_name *.com; }
             server { listen 80; server_name www.a.com; }",
        );
        assert_eq!(name(&v, &get(&v, "www.a.com", "/")), "www.a.com");
        assert_eq!(name(&v, &get(&v, "www.b.com", "/")), "*.com");
        assert_eq!(name(&v, &get(&v, "www.b.net", "/")), "www.*");
        assert_eq!(name(&v, &get(&v, "mail.b.net", "/")), "~.*");
    }

    #[test]
    fn regex_names_in_order_and_caseless_with_uppercase() {
        let v = http(
            "server { listen 80; server_name a; }
             server { listen 80; server_name ~^shop; }
             server { listen 80; server_name ~^sh; }
             server { listen 80; server_name ~^X; }",
        );
        assert_eq!(name(&v, &get(&v, "shop.test", "/")), "~^shop");
        assert_eq!(name(&v, &get(&v, "shed.test", "/")), "~^sh");
        // The pattern has an uppercase letter, so nginx compiles it caselessly; the host is
        // lowercased.
        assert_eq!(name(&v, &get(&v, "x.test", "/")), "~^X");
        // No regex runs for a request without Host.
        let r = route(&v, &req(None, 80, None, "/")).expect("route");
        assert_eq!(r.server_match, ServerMatch::FirstServer);
    }

    #[test]
    fn default_server_then_first_server() {
        let v = http(
            "server { listen 80; server_name a; }
             server { listen 80; server_name b; }
             server { listen 81; server_name c; }
             server { listen 81 default_server; server_name d; }",
        );
        let r = get(&v, "zzz", "/");
        assert_eq!((r.server, r.server_match), (0, ServerMatch::FirstServer));
        let r = route(&v, &req(None, 81, Some("zzz"), "/")).expect("route");
        assert_eq!((r.server, r.server_match), (3, ServerMatch::DefaultServer));
        assert_eq!(r.listen, Some(0));
    }

    #[test]
    fn conflicting_names_keep_the_first() {
        let v = http(
            "server { listen 80; server_name other; }
             server { listen 80; server_name example.com; }
             server { listen 80; server_name .example.com; }
             server { listen 80; server_name *.example.com; }",
        );
        // `.example.com` conflicts with the exact name and is ignored entirely.
        assert_eq!(get(&v, "example.com", "/").server, 1);
        assert_eq!(get(&v, "a.example.com", "/").server, 3);
    }

    #[test]
    fn missing_host_uses_the_empty_name() {
        let v = http(
            "server { listen 80; server_name a; }
             server { listen 80; }
             server { listen 80; server_name b \"\"; }",
        );
        let r = route(&v, &req(None, 80, None, "/")).expect("route");
        // The nameless server has the name "" and comes first.
        assert_eq!(
            (r.server, r.server_match.clone()),
            (1, ServerMatch::ExactName(String::new()))
        );
        assert!(
            r.notes.iter().any(|n| n.contains("no Host")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn invalid_hosts_are_400() {
        let v = http("server { listen 80; }");
        for bad in ["a..b", "a/b", "", ":80", "a b", "."] {
            let e = route(&v, &req(None, 80, Some(bad), "/"));
            assert_eq!(e, Err(RouteError::InvalidHost(bad.into())), "host {bad:?}");
        }
        assert_eq!(validate_host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(
            validate_host("Example.COM.:80").as_deref(),
            Some("example.com")
        );
        assert_eq!(validate_host(".lead").as_deref(), Some(".lead"));
    }

    const ADDRS: &str = "
        server { listen 127.0.0.1:80; server_name lo; }
        server { listen 127.0.0.1:80 default_server; server_name lo-default; }
        server { listen 80; server_name wild; }
        server { listen 80; server_name shop.example.com; }
        server { listen 127.0.0.2:8080; server_name two; }
        server { listen 127.0.0.3:8080; server_name three; }
        server { listen [::1]:80; server_name six; }
    ";

    #[test]
    fn per_address_server_lists() {
        let v = http(ADDRS);
        let at = |local: Option<&str>, port, host: &str| {
            route(&v, &req(local, port, Some(host), "/")).map(|r| name(&v, &r))
        };
        // A connection to 127.0.0.1 only sees the servers listening on 127.0.0.1:80.
        assert_eq!(
            at(Some("127.0.0.1"), 80, "wild").as_deref(),
            Ok("lo-default")
        );
        assert_eq!(at(Some("127.0.0.1"), 80, "lo").as_deref(), Ok("lo"));
        // Other addresses use the wildcard list.
        assert_eq!(at(Some("127.0.0.5"), 80, "lo").as_deref(), Ok("wild"));
        assert_eq!(
            at(Some("127.0.0.5"), 80, "shop.example.com").as_deref(),
            Ok("shop.example.com")
        );
        assert_eq!(at(Some("::1"), 80, "x").as_deref(), Ok("six"));
        assert_eq!(
            at(Some("127.0.0.9"), 8080, "two"),
            Err(RouteError::NoServerForAddress(
                "127.0.0.9:8080".parse().expect("addr")
            ))
        );
        assert_eq!(at(None, 9999, "x"), Err(RouteError::NoServerForPort(9999)));
        // Without the local address, the wildcard list is preferred, with a note.
        let r = route(&v, &req(None, 80, Some("x"), "/")).expect("route");
        assert_eq!(name(&v, &r), "wild");
        assert!(
            r.notes.iter().any(|n| n.contains("127.0.0.1:80")),
            "{:?}",
            r.notes
        );
        // ... unless the host is named only on a specific address.
        assert_eq!(at(None, 80, "lo").as_deref(), Ok("lo"));
        assert_eq!(at(None, 8080, "three").as_deref(), Ok("three"));
        assert_eq!(at(None, 8080, "none").as_deref(), Ok("two"));
        let r = route(&v, &req(Some("127.0.0.1"), 80, Some("lo"), "/")).expect("route");
        assert_eq!(r.listen, Some(0));
    }

    #[test]
    fn implicit_listen_and_localhost() {
        let v = http(
            "server { server_name implicit; }
             server { listen localhost:81; server_name local; }",
        );
        assert_eq!(name(&v, &get(&v, "x", "/")), "implicit");
        let r = route(&v, &req(Some("127.0.0.1"), 81, Some("x"), "/")).expect("route");
        assert_eq!(name(&v, &r), "local");
    }

    const LOCS: &str = "
        server {
            listen 80;
            location = / { }
            location / { }
            location /a/ {
                location /a/b/ { }
                location ~ \\.gif$ { }
                location ^~ /a/nr/ { }
            }
            location ^~ /static/ { }
            location /images/ { }
            location ~ \\.(gif|jpg)$ { }
            location ~* \\.PNG$ { }
            location ~ /regex/ {
                location /regex/p/ { }
                location ~ \\.txt$ { }
            }
            location = /exact { }
            location @named { }
            location /docs { }
        }
    ";

    #[test]
    fn location_algorithm() {
        let v = http(LOCS);
        let cases: [(&str, &[&str]); 20] = [
            ("/", &["= /"]),
            ("/x", &["/"]),
            ("/exact", &["= /exact"]),
            ("/exact/more", &["/"]),
            ("/static/a.gif", &["^~ /static/"]),
            ("/images/a.gif", &["~ \\.(gif|jpg)$"]),
            ("/images/a.css", &["/images/"]),
            ("/x/A.png", &["~* \\.PNG$"]),
            ("/a/", &["/a/"]),
            ("/a/b/c", &["/a/", "/a/b/"]),
            // The nested regex is tried before the outer ones.
            ("/a/b/c.gif", &["/a/", "~ \\.gif$"]),
            ("/a/c.jpg", &["~ \\.(gif|jpg)$"]),
            // A nested `^~` stops only the nested regexes: the outer ones still run.
            ("/a/nr/x.jpg", &["~ \\.(gif|jpg)$"]),
            ("/a/nr/x.css", &["/a/", "^~ /a/nr/"]),
            ("/regex/x", &["~ /regex/"]),
            ("/regex/x.txt", &["~ /regex/", "~ \\.txt$"]),
            // nginx never searches prefix locations nested in a regex location.
            ("/regex/p/x", &["~ /regex/"]),
            ("/regex/p/x.txt", &["~ /regex/", "~ \\.txt$"]),
            ("/@named", &["/"]),
            ("/docs/x", &["/docs"]),
        ];
        for (uri, want) in cases {
            let r = get(&v, "h", uri);
            assert_eq!(chain(&r), want.to_vec(), "uri {uri}");
        }
        let r = get(&v, "h", "/a/b/c.gif");
        assert_eq!(hows(&r), [LocationHow::LongestPrefix, LocationHow::Regex]);
        assert_eq!(
            hows(&get(&v, "h", "/static/x")),
            [LocationHow::PrefixNoRegex]
        );
        assert_eq!(hows(&get(&v, "h", "/exact")), [LocationHow::Exact]);
        let r = get(&v, "h", "/regex/p/x");
        assert!(
            r.notes.iter().any(|n| n.contains("never used")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn no_location_matches() {
        let v = http("server { listen 80; location /a { } }");
        let r = get(&v, "h", "/b");
        assert!(r.locations.is_empty());
        assert!(
            r.notes.iter().any(|n| n.contains("no location matches")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn auto_redirect_for_pass_locations() {
        let v = http(
            "server { listen 80;
                location / { }
                location /api/ { proxy_pass http://127.0.0.1:1; }
                location /app/ { }
                location ~ api { }
             }",
        );
        let r = get(&v, "h", "/api");
        assert_eq!(hows(&r), [LocationHow::AutoRedirect]);
        assert_eq!(r.target, None);
        assert!(r.notes.iter().any(|n| n.contains("301")), "{:?}", r.notes);
        // Without a pass directive there is no redirect.
        assert_eq!(chain(&get(&v, "h", "/app")), ["/"]);
        // The auto-redirect even skips the regexes; a longer URI reaches them.
        assert_eq!(chain(&get(&v, "h", "/api/x")), ["~ api"]);
        assert_eq!(get(&v, "h", "/api").locations[0].path, "/api/");
    }

    #[test]
    fn uri_normalisation() {
        let n = |raw: &str| {
            normalize_uri(raw.as_bytes(), true).map(|u| String::from_utf8_lossy(&u).into_owned())
        };
        assert_eq!(n("/a//b///c").as_deref(), Some("/a/b/c"));
        assert_eq!(n("/a/./b/.").as_deref(), Some("/a/b/"));
        assert_eq!(n("/a/b/../c").as_deref(), Some("/a/c"));
        assert_eq!(n("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(n("/a/%2e%2E/c").as_deref(), Some("/c"));
        assert_eq!(n("/a%2Fb").as_deref(), Some("/a/b"));
        assert_eq!(n("/a%2F%2Fb").as_deref(), Some("/a/b"));
        assert_eq!(n("/%41%62?x=/../..").as_deref(), Some("/Ab"));
        assert_eq!(n("/a%3Fb?c").as_deref(), Some("/a?b"));
        assert_eq!(n("/a%25b").as_deref(), Some("/a%b"));
        assert_eq!(n("/a/.?x").as_deref(), Some("/a/"));
        assert_eq!(n("/a#frag").as_deref(), Some("/a"));
        assert_eq!(n("/a..b/.x").as_deref(), Some("/a..b/.x"));
        assert_eq!(n("/.."), None);
        assert_eq!(n("/a/../.."), None);
        assert_eq!(n("/%00"), None);
        assert_eq!(n("/%zz"), None);
        assert_eq!(n("/%4"), None);
        assert_eq!(
            normalize_uri(b"/a//b", false).as_deref(),
            Some(&b"/a//b"[..])
        );
        assert_eq!(
            normalize_uri(b"/%FF", true).as_deref(),
            Some(&[b'/', 0xff][..])
        );
    }

    #[test]
    fn normalised_uri_is_matched_and_bad_ones_are_errors() {
        let v = http(
            "server { listen 80;
                location / { }
                location /api/ { }
                location = \"/a b\" { }
             }",
        );
        assert_eq!(chain(&get(&v, "h", "/x/..//api/%2E/y?q=/x")), ["/api/"]);
        assert_eq!(chain(&get(&v, "h", "/a%20b")), ["= /a b"]);
        let e = route(&v, &req(None, 80, Some("h"), "/../x"));
        assert_eq!(e, Err(RouteError::InvalidUri("/../x".into())));
        let e = route(&v, &req(None, 80, Some("h"), "x"));
        assert_eq!(e, Err(RouteError::InvalidUri("x".into())));
    }

    #[test]
    fn merge_slashes_comes_from_the_default_server() {
        let v = http(
            "server { listen 80; merge_slashes off; server_name a;
                location / { } location /x/ { } }
             server { listen 80; server_name b; location / { } location /x/ { } }",
        );
        // Server b is chosen, but the URI was parsed with the default server's setting.
        let r = get(&v, "b", "//x/y");
        assert_eq!(r.server, 1);
        assert_eq!(chain(&r), ["/"]);
        let v = http("server { listen 80; location / { } location /x/ { } }");
        assert_eq!(chain(&get(&v, "b", "//x/y")), ["/x/"]);
    }

    const FALLBACK: &str = "
        upstream app { server 127.0.0.1:8000; server 127.0.0.1:8001 backup; }
        server {
            listen 80;
            location / { try_files $uri $uri/ @app; }
            location /php/ { try_files $uri $uri/ /index.php?$args; }
            location /self/ { try_files $uri /self/$uri/x$is_args$args; }
            location /vars/ { try_files $uri $cookie_x; }
            location /code/ { try_files $uri =404; }
            location /own/ { try_files $uri @app; proxy_pass http://127.0.0.1:9000; }
            location /loop/ { try_files $uri /loop/x; }
            location /missing/ { try_files $uri @nope; }
            location ~ \\.php$ { fastcgi_pass unix:/run/php.sock; }
            location @app { proxy_pass http://app; error_page 502 504 @down; }
            location @down { return 503; }
        }
    ";

    #[test]
    fn try_files_fallbacks() {
        let v = http(FALLBACK);
        let r = get(&v, "h", "/page");
        assert_eq!(chain(&r), ["/", "@app"]);
        assert_eq!(
            hows(&r),
            [LocationHow::LongestPrefix, LocationHow::NamedFallback]
        );
        assert_eq!(
            r.target.map(|t| v.targets[t].raw.as_str()),
            Some("http://app")
        );
        assert!(
            r.notes.iter().any(|n| n.contains("tries the files first")),
            "{:?}",
            r.notes
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("handed to location @down")),
            "{:?}",
            r.notes
        );

        let r = get(&v, "h", "/php/x");
        assert_eq!(chain(&r), ["/php/", "~ \\.php$"]);
        assert_eq!(
            r.target.map(|t| v.targets[t].raw.as_str()),
            Some("unix:/run/php.sock")
        );

        let r = get(&v, "h", "/self/q");
        assert_eq!(
            chain(&r),
            [
                "/self/", "/self/", "/self/", "/self/", "/self/", "/self/", "/self/", "/self/",
                "/self/", "/self/", "/self/"
            ]
        );
        assert!(
            r.notes.iter().any(|n| n.contains("internal redirects")),
            "{:?}",
            r.notes
        );

        let r = get(&v, "h", "/vars/q");
        assert_eq!(r.target, None);
        assert!(
            r.notes.iter().any(|n| n.contains("$cookie_x")),
            "{:?}",
            r.notes
        );

        let r = get(&v, "h", "/code/q");
        assert_eq!((chain(&r), r.target), (vec!["/code/".to_string()], None));
        assert!(
            r.notes.iter().any(|n| n.contains("answers 404")),
            "{:?}",
            r.notes
        );

        // A location with its own pass directive keeps it.
        let r = get(&v, "h", "/own/q");
        assert_eq!(chain(&r), ["/own/"]);
        assert_eq!(
            r.target.map(|t| v.targets[t].raw.as_str()),
            Some("http://127.0.0.1:9000")
        );
        assert!(
            r.notes.iter().any(|n| n.contains("goes to @app")),
            "{:?}",
            r.notes
        );

        let r = get(&v, "h", "/missing/q");
        assert!(
            r.notes.iter().any(|n| n.contains("@nope does not exist")),
            "{:?}",
            r.notes
        );

        assert_eq!(
            fallback_uri("/i.php$is_args$args", b"/u").as_deref(),
            Some(&b"/i.php"[..])
        );
        assert_eq!(
            fallback_uri("${uri}x?a=1", b"/u").as_deref(),
            Some(&b"/ux"[..])
        );
        assert_eq!(fallback_uri("$uri_x", b"/u"), None);
    }

    #[test]
    fn conditional_and_return_notes() {
        let v = http(
            "server { listen 80; return 301 https://$host$request_uri;
                location / { if ($x) { proxy_pass http://127.0.0.1:1; } }
                location /r/ { return 403; internal; }
                location /e/ { error_page 404 = @x; error_page 500 502 /50x.html; }
                location @x { }
             }",
        );
        let r = get(&v, "h", "/");
        assert_eq!(r.target, Some(0));
        assert!(
            r.notes.iter().any(|n| n.contains("inside `if`")),
            "{:?}",
            r.notes
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("nginx answers before choosing")),
            "{:?}",
            r.notes
        );
        let r = get(&v, "h", "/r/");
        assert!(
            r.notes.iter().any(|n| n.contains("`return 403`")),
            "{:?}",
            r.notes
        );
        assert!(
            r.notes.iter().any(|n| n.contains("internal")),
            "{:?}",
            r.notes
        );
        let r = get(&v, "h", "/e/");
        assert!(
            r.notes.iter().any(|n| n.contains("go to location @x")),
            "{:?}",
            r.notes
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("answered with /50x.html")),
            "{:?}",
            r.notes
        );
        // A `location /x/` whose proxy_pass is only inside `if` does not auto-redirect.
        let v = http(
            "server { listen 80; location / { }
                location /x/ { if ($a) { proxy_pass http://127.0.0.1:1; } } }",
        );
        assert_eq!(chain(&get(&v, "h", "/x")), ["/"]);
    }

    #[test]
    fn unevaluable_regex_is_noted_and_skipped() {
        let v = http(
            "server { listen 80; server_name ~^(?!www)(?<sub>.+)\\.example\\.com$;
                location / { }
                location ~ ^/(?=api)(.*)\\1$ { }
                location ~ \\.php$ { }
             }",
        );
        let r = get(&v, "x.example.com", "/api.php");
        assert_eq!(chain(&r), ["~ \\.php$"]);
        let note = r
            .notes
            .iter()
            .find(|n| n.contains("location ~ ^/(?=api)"))
            .expect("regex note");
        assert!(note.contains("/t/nginx.conf:4"), "{note}");
        assert!(note.contains("cannot evaluate"), "{note}");
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("server_name ~^(?!www)")),
            "{:?}",
            r.notes
        );
        // A pattern over the size limit is a note, not a panic.
        let huge = format!(
            "server {{ listen 80; location ~ \"{}\" {{ }} }}",
            "(a{1000}){1000}"
        );
        let v = http(&huge);
        let r = get(&v, "h", "/aaa");
        assert!(r.locations.is_empty());
        assert!(
            r.notes.iter().any(|n| n.contains("cannot evaluate")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn pcre_bytes_semantics() {
        let re = compile_pcre("^/caf\u{e9}$", false).expect("compile");
        assert!(re.is_match("/caf\u{e9}".as_bytes()));
        let re = compile_pcre("^/.$", false).expect("compile");
        assert!(re.is_match(&[b'/', 0xff]));
        let re = compile_pcre("\\.PHP$", true).expect("compile");
        assert!(re.is_match(b"/x.php"));
        assert!(compile_pcre("(a)\\1", false).is_err());
        for possessive in ["a++", "a*+b", "x?+", "a{2}+", "(a|b)++"] {
            assert!(compile_pcre(possessive, false).is_err(), "{possessive}");
        }
        for fine in ["a+?", "(?:a)+", "[+]+", "\\++", "[]+]+", "(?i)a+", "a{2}"] {
            assert!(!has_possessive_quantifier(fine), "{fine}");
        }
    }

    #[test]
    fn route_logged_by_first_name() {
        let v = http(
            "upstream app { server 127.0.0.1:8000; }
             server { listen 80; server_name .Example.com www.example.com;
                location / { proxy_pass http://app; } location /api/ { proxy_pass http://127.0.0.1:9; } }
             server { listen 80; location / { fastcgi_pass 127.0.0.1:9000; } }
             server { listen 80; server_name ~^re; location / { } }
             server { listen 443 ssl; server_name dup.test; location / { } }
             server { listen 80; server_name dup.test alt.test; location /alt/ { } }",
        );
        let r = route_logged(
            &v,
            Some("example.com"),
            "GET /api/x?y=1 HTTP/1.1",
            Some("www.example.com"),
        )
        .expect("route");
        assert_eq!(r.server, 0);
        assert_eq!(chain(&r), ["/api/"]);
        assert_eq!(
            r.server_match,
            ServerMatch::ExactName("www.example.com".into())
        );
        let r = route_logged(&v, Some(""), "POST /x HTTP/1.0", None).expect("route");
        assert_eq!(r.server, 1);
        assert_eq!(r.target, Some(2));
        // No `host:` logged means the request had no Host: the nameless server's "" name.
        assert_eq!(r.server_match, ServerMatch::ExactName(String::new()));
        let r = route_logged(&v, Some(""), "POST /x HTTP/1.0", Some("other")).expect("route");
        assert_eq!(r.server_match, ServerMatch::FirstServer);
        assert_eq!(
            route_logged(&v, Some("~^re"), "GET / HTTP/1.1", None).map(|r| r.server),
            Some(2)
        );
        // Absolute URI in the request line.
        let r = route_logged(
            &v,
            Some("example.com"),
            "GET http://example.com/api/ HTTP/1.1",
            None,
        )
        .expect("route");
        assert_eq!(chain(&r), ["/api/"]);
        // Two blocks share the first name: the one whose names take the host wins.
        let r = route_logged(&v, Some("dup.test"), "GET /alt/ HTTP/1.1", Some("alt.test"))
            .expect("route");
        assert_eq!(r.server, 4);
        assert!(
            r.notes.iter().any(|n| n.contains("2 server blocks")),
            "{:?}",
            r.notes
        );
        assert_eq!(route_logged(&v, Some("nope"), "GET / HTTP/1.1", None), None);
        assert_eq!(route_logged(&v, None, "GET / HTTP/1.1", None), None);
        assert_eq!(route_logged(&v, Some(""), "garbage", None), None);
        assert_eq!(route_logged(&v, Some(""), "GET /../x HTTP/1.1", None), None);
    }

    #[test]
    fn hops_labels() {
        let v = http(
            "upstream backend { server 127.0.0.1:8000; server [::1]:8001 backup; }
             server { listen 127.0.0.1:8080; location / { } location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }
             server { listen 80; server_name shop.example.com;
                location /api/ { location = /api/x { proxy_pass http://backend; } }
                location /v/ { proxy_pass http://$host; } }",
        );
        let labels =
            |r: &Route| -> Vec<String> { r.hops(&v).into_iter().map(|h| h.label).collect() };
        let r = get(&v, "shop.example.com", "/api/x");
        assert_eq!(
            labels(&r),
            [
                "server shop.example.com",
                "location /api/",
                "location = /api/x",
                "proxy_pass http://backend",
                "upstream backend",
                "127.0.0.1:8000",
                "[::1]:8001 (backup)",
            ]
        );
        let hops = r.hops(&v);
        assert_eq!(hops[0].at.as_ref().map(|s| s.line), Some(4));
        assert_eq!(hops[5].at.as_ref().map(|s| s.line), Some(2));
        let r = route(&v, &req(Some("127.0.0.1"), 8080, Some("x"), "/a.php")).expect("route");
        assert_eq!(
            labels(&r),
            [
                "server (default for 127.0.0.1:8080)",
                "location ~ \\.php$",
                "fastcgi_pass 127.0.0.1:9000",
            ]
        );
        let r = get(&v, "shop.example.com", "/v/");
        assert_eq!(
            labels(&r),
            [
                "server shop.example.com",
                "location /v/",
                "proxy_pass http://$host"
            ]
        );
    }

    #[test]
    fn from_url_forms() {
        let r = Request::from_url("http://shop.example.com/api/x?y=1").expect("url");
        assert_eq!(r, req(None, 80, Some("shop.example.com"), "/api/x?y=1"));
        let r = Request::from_url("https://1.2.3.4:8443").expect("url");
        assert_eq!(r, req(Some("1.2.3.4"), 8443, Some("1.2.3.4"), "/"));
        let r = Request::from_url("shop.example.com/api").expect("url");
        assert_eq!(r, req(None, 80, Some("shop.example.com"), "/api"));
        let r = Request::from_url("http://[::1]:8080/#frag").expect("url");
        assert_eq!(r, req(Some("::1"), 8080, Some("[::1]"), "/"));
        let r = Request::from_url("HTTPS://user:pw@h?q").expect("url");
        assert_eq!(r, req(None, 443, Some("h"), "/?q"));
        for bad in [
            "",
            "ftp://h/",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:8a/",
            "http://[::1/",
            "http://[zz]/",
            "http://h/a b",
        ] {
            assert!(
                matches!(Request::from_url(bad), Err(RouteError::BadUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let v = http(LOCS);
        for uri in [
            "/%",
            "/%%%%",
            "/.%2",
            "/\u{7f}",
            "/é/../x",
            "/./././../",
            "//////",
        ] {
            let _ = route(&v, &req(None, 80, Some("h"), uri));
        }
        let long = format!("/{}", "a/../".repeat(10_000));
        assert!(route(&v, &req(None, 80, Some("h"), &long)).is_ok());
        let _ = route_logged(&v, Some(""), "\u{0}\u{0} \u{0}", Some("\u{0}"));
        let _ = route_logged(&v, Some(""), "GET", None);
    }
}
