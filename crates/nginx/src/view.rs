//! The semantic view of a [`Config`]: the few directives fix502 reasons about.
//!
//! This module reads the generic directive tree and extracts `http` servers (with `listen`,
//! `server_name` and nested locations), `upstream` groups and their servers, every
//! `*_pass` directive parsed into a [`PassTarget`] the way nginx parses its argument,
//! `error_log` / `access_log` with their context, `user` and `pid`. Each pass target and
//! upstream group also carries the [`Settings`] in effect there (built by
//! [`crate::settings`]).
//!
//! Address parsing follows nginx's `ngx_parse_url`: `unix:PATH`, `[IPv6]:port`,
//! `host:port`, a bare port for `listen`, and an upstream name for pass directives. It never
//! resolves names and never touches the network. `stream {}` and `mail {}` are only
//! searched for log directives.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::{Config, Directive, Span};
pub use crate::module::PassModule;
use crate::settings::Settings;

/// An upstream address as nginx connects to it.
///
/// Deliberately exhaustive (unlike the other enums here): nginx has exactly these two
/// kinds of peer, and callers match on them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A TCP peer. `host` is an IP literal (no brackets, normalized) or a name.
    Inet {
        /// IP literal or host name.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A unix-domain socket.
    Unix(PathBuf),
}

impl Peer {
    /// A TCP peer; an IP literal host (with or without brackets) is normalized to the form
    /// nginx logs (`[0:0::1]` becomes `::1`).
    pub fn inet(host: &str, port: u16) -> Self {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => host.to_string(),
        };
        Self::Inet { host, port }
    }

    /// The IP address when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Inet { host, .. } => host.parse().ok(),
            Self::Unix(_) => None,
        }
    }

    /// True when the host is an IP literal (false for names and unix sockets).
    pub fn is_ip_literal(&self) -> bool {
        self.ip().is_some()
    }

    /// True for 127.0.0.0/8, `::1` (also IPv4-mapped) and the name `localhost`; false for
    /// unix sockets.
    pub fn is_loopback(&self) -> bool {
        match self {
            Self::Inet { host, .. } => match self.ip() {
                Some(ip) => ip.to_canonical().is_loopback(),
                None => host.eq_ignore_ascii_case("localhost"),
            },
            Self::Unix(_) => false,
        }
    }
}

impl fmt::Display for Peer {
    /// As nginx writes peers in its error log: `127.0.0.1:8000`, `[::1]:8000`,
    /// `unix:/run/php/php8.2-fpm.sock`, `app.internal:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet { host, port } => match host.parse::<Ipv6Addr>() {
                Ok(ip) => write!(f, "[{ip}]:{port}"),
                Err(_) => write!(f, "{host}:{port}"),
            },
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Where a pass directive sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetAddress {
    /// One fixed peer.
    Peer(Peer),
    /// The name of an `upstream {}` group (see [`ConfigView::group`]).
    Group(String),
    /// The argument contains variables and is only known at request time; holds the
    /// argument as written.
    Variable(String),
    /// nginx would reject the argument; holds nginx's reason (e.g. `invalid port`).
    Invalid(String),
}

/// One pass directive (`proxy_pass`, `fastcgi_pass`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassTarget {
    /// Which module.
    pub module: PassModule,
    /// `http`, `https`, `grpc`, `grpcs`, `uwsgi`, `suwsgi`, `fastcgi`, `scgi` or `memcached`.
    pub scheme: String,
    /// The argument as written.
    pub raw: String,
    /// The parsed address.
    pub address: TargetAddress,
    /// Where the directive is.
    pub span: Span,
    /// The index in [`ConfigView::servers`] of the enclosing server.
    pub server: Option<usize>,
    /// The innermost enclosing location as written, e.g. `~ \.php$` or `/api/`.
    pub location: Option<String>,
    /// The directives in effect where the pass directive is (`http`, `server`, every
    /// enclosing `location`, and the `if` / `limit_except` block holding it, if any), with
    /// nginx's inheritance rules (see [`crate::settings`]).
    pub settings: Settings,
}

/// One `server` line of an `upstream {}` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServer {
    /// The address (port 80 when none is written).
    pub peer: Peer,
    /// The line's arguments as written: the address ([`UpstreamServer::raw`]), then its
    /// parameters. Never empty.
    pub args: Vec<String>,
    /// `weight=` (default 1).
    pub weight: u32,
    /// `max_fails=` (default 1).
    pub max_fails: u32,
    /// `fail_timeout=` as written (default `10s`).
    pub fail_timeout: String,
    /// `backup`
    pub backup: bool,
    /// `down`
    pub down: bool,
    /// `resolve`
    pub resolve: bool,
    /// Where the line is.
    pub span: Span,
}

impl UpstreamServer {
    /// The address as written: the line's first argument.
    #[must_use]
    pub fn raw(&self) -> &str {
        self.args.first().map_or("", String::as_str)
    }
}

/// An `upstream NAME {}` block of the `http` context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamGroup {
    /// The group name.
    pub name: String,
    /// Its servers, in order (lines nginx would reject are left out).
    pub servers: Vec<UpstreamServer>,
    /// `keepalive N`
    pub keepalive: Option<u32>,
    /// `zone NAME [size]`: the name.
    pub zone: Option<String>,
    /// Where the block starts.
    pub span: Span,
    /// The block's directives other than `server` (`keepalive`, `keepalive_timeout`,
    /// `zone`, `resolver`, `least_conn`, ...); see [`crate::settings::upstream_default_of`]
    /// for their defaults.
    pub settings: Settings,
}

/// One `listen` of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The address argument as written (`*:80` for the implicit default).
    pub raw: String,
    /// The parsed address.
    pub addr: ListenAddr,
    /// `default_server` (or the old `default`).
    pub default_server: bool,
    /// `ssl`
    pub ssl: bool,
    /// The other parameters as written (`http2`, `ipv6only=on`, `reuseport`, ...).
    pub params: Vec<String>,
    /// Where the directive is; `None` for the implicit `listen *:80` of a server that has
    /// no `listen`.
    pub span: Option<Span>,
}

/// The address part of `listen`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListenAddr {
    /// All addresses: `listen 80`, `listen *:80`.
    Port(u16),
    /// An IP literal (including `0.0.0.0` and `[::]` when written so).
    Inet(SocketAddr),
    /// A host name, resolved by nginx at start-up.
    Host {
        /// The name.
        host: String,
        /// The port.
        port: u16,
    },
    /// A unix-domain socket.
    Unix(PathBuf),
}

impl ListenAddr {
    /// The TCP port, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Port(port) | Self::Host { port, .. } => Some(*port),
            Self::Inet(addr) => Some(addr.port()),
            Self::Unix(_) => None,
        }
    }

    /// True for all-address forms: a bare port, `*`, `0.0.0.0` and `[::]`.
    pub fn is_wildcard(&self) -> bool {
        match self {
            Self::Port(_) => true,
            Self::Inet(addr) => addr.ip().is_unspecified(),
            Self::Host { .. } | Self::Unix(_) => false,
        }
    }
}

/// A `location` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `=`, `~`, `~*` or `^~`; `None` for prefix and named (`@name`) locations.
    pub modifier: Option<String>,
    /// The path, regex or `@name`.
    pub path: String,
    /// Where the block starts.
    pub span: Span,
    /// Nested locations.
    pub locations: Vec<Self>,
    /// Indexes in [`ConfigView::targets`] of the pass directives in this location
    /// (including inside its `if` and `limit_except` blocks, not nested locations).
    pub targets: Vec<usize>,
    /// The subset of [`Location::targets`] written inside an `if` or `limit_except` block:
    /// they handle the request only when that block applies.
    pub conditional_targets: Vec<usize>,
    /// The directives in effect in this location (its own simple directives over those
    /// inherited from `http`, `server` and enclosing locations; see [`crate::settings`]).
    /// Directives nginx never inherits (`try_files`, `return`, `rewrite`, `internal`, ...)
    /// are only this location's own.
    pub settings: Settings,
}

/// A `server` block of the `http` context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its `listen` directives, or the implicit `*:80` when it has none.
    pub listens: Vec<Listen>,
    /// Every `server_name` argument, in order.
    pub names: Vec<String>,
    /// Where the block starts.
    pub span: Span,
    /// Its top-level locations.
    pub locations: Vec<Location>,
    /// Indexes in [`ConfigView::targets`] of pass directives outside any location.
    pub targets: Vec<usize>,
    /// The directives in effect at the server level (its own simple directives over those
    /// of `http`), e.g. `merge_slashes`, or a server-level `return` / `rewrite`.
    pub settings: Settings,
}

/// The context a log directive appears in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogContext {
    /// Top level of the main file.
    Main,
    /// `http {}`
    Http,
    /// An `http` `server {}`
    Server,
    /// A `location {}` (or an `if` inside one)
    Location,
    /// Anywhere in `stream {}`
    Stream,
    /// Anywhere in `mail {}`
    Mail,
    /// Any other block.
    Other,
}

/// An `error_log` or `access_log` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirective {
    /// The first argument verbatim: a path (relative ones untouched), `stderr`,
    /// `syslog:...`, `memory:...` or `off`.
    pub path: String,
    /// The second argument: the level for `error_log`, the format for `access_log`.
    pub level_or_format: Option<String>,
    /// Where it appears.
    pub context: LogContext,
    /// Where the directive is.
    pub span: Span,
}

/// The `user` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDirective {
    /// The user.
    pub user: String,
    /// The group, if written.
    pub group: Option<String>,
    /// Where the directive is.
    pub span: Span,
}

/// What fix502 needs to know from a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigView {
    /// `user` of the main context (the first one).
    pub user: Option<UserDirective>,
    /// `pid` of the main context (the first one), verbatim.
    pub pid: Option<(String, Span)>,
    /// Every `error_log`, in file order.
    pub error_logs: Vec<LogDirective>,
    /// Every `access_log`, in file order.
    pub access_logs: Vec<LogDirective>,
    /// The `server` blocks of `http`, in file order.
    pub servers: Vec<Server>,
    /// The `upstream` blocks of `http`, in file order.
    pub upstreams: Vec<UpstreamGroup>,
    /// Every pass directive in `http`, in file order.
    pub targets: Vec<PassTarget>,
}

impl ConfigView {
    /// Extracts the view from a loaded configuration.
    pub fn new(config: &Config) -> Self {
        let mut builder = Builder {
            view: Self::default(),
            group_names: collect_group_names(&config.directives),
        };
        builder.main(&config.directives);
        builder.view
    }

    /// The upstream group of that name (nginx compares names case-insensitively).
    pub fn group(&self, name: &str) -> Option<&UpstreamGroup> {
        self.upstreams
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(name))
    }

    /// The peers a target may connect to: the peer itself, or every server of its group
    /// with that server's settings. Empty for variables, invalid arguments and unknown
    /// groups.
    pub fn peers_of(&self, target: &PassTarget) -> Vec<(Peer, Option<&UpstreamServer>)> {
        match &target.address {
            TargetAddress::Peer(peer) => vec![(peer.clone(), None)],
            TargetAddress::Group(name) => self
                .group(name)
                .map(|g| {
                    g.servers
                        .iter()
                        .map(|s| (s.peer.clone(), Some(s)))
                        .collect()
                })
                .unwrap_or_default(),
            TargetAddress::Variable(_) | TargetAddress::Invalid(_) => Vec::new(),
        }
    }
}

/// The names of every `upstream` block in `http`.
fn collect_group_names(directives: &[Directive]) -> Vec<String> {
    let mut names = Vec::new();
    for http in directives.iter().filter(|d| d.name == "http") {
        for d in children(http) {
            if d.name == "upstream"
                && d.block.is_some()
                && let Some(name) = d.args.first()
            {
                names.push(name.clone());
            }
        }
    }
    names
}

fn children(d: &Directive) -> &[Directive] {
    d.block.as_deref().unwrap_or_default()
}

/// Where the walk currently is inside `http`.
#[derive(Clone, Copy)]
struct Place<'a> {
    server: Option<usize>,
    /// The innermost location's arguments.
    location: Option<&'a [String]>,
    context: LogContext,
}

/// Walks the tree once, filling the view.
struct Builder {
    view: ConfigView,
    group_names: Vec<String>,
}

impl Builder {
    fn main(&mut self, directives: &[Directive]) {
        for d in directives {
            match d.name.as_str() {
                "user" => {
                    if self.view.user.is_none()
                        && let Some(user) = d.args.first()
                    {
                        self.view.user = Some(UserDirective {
                            user: user.clone(),
                            group: d.args.get(1).cloned(),
                            span: d.span.clone(),
                        });
                    }
                }
                "pid" => {
                    if self.view.pid.is_none()
                        && let Some(pid) = d.args.first()
                    {
                        self.view.pid = Some((pid.clone(), d.span.clone()));
                    }
                }
                "http" if d.block.is_some() => self.http(children(d)),
                "stream" => self.logs_only(children(d), LogContext::Stream),
                "mail" => self.logs_only(children(d), LogContext::Mail),
                _ if d.block.is_some() => self.logs_only(children(d), LogContext::Other),
                _ => self.log(d, LogContext::Main),
            }
        }
    }

    /// Records `d` if it is a log directive.
    fn log(&mut self, d: &Directive, context: LogContext) {
        let list = match d.name.as_str() {
            "error_log" => &mut self.view.error_logs,
            "access_log" => &mut self.view.access_logs,
            _ => return,
        };
        if let Some(path) = d.args.first() {
            list.push(LogDirective {
                path: path.clone(),
                level_or_format: d.args.get(1).cloned(),
                context,
                span: d.span.clone(),
            });
        }
    }

    /// Collects only log directives from a subtree.
    fn logs_only(&mut self, directives: &[Directive], context: LogContext) {
        for d in directives {
            if d.block.is_some() {
                self.logs_only(children(d), context);
            } else {
                self.log(d, context);
            }
        }
    }

    fn http(&mut self, directives: &[Directive]) {
        let settings = Settings::default().with_level(directives);
        for d in directives {
            match d.name.as_str() {
                "server" if d.block.is_some() => self.server(d, &settings),
                "upstream" if d.block.is_some() => self.upstream(d),
                _ if d.block.is_some() => self.logs_only(children(d), LogContext::Other),
                _ => self.log(d, LogContext::Http),
            }
        }
    }

    fn upstream(&mut self, d: &Directive) {
        let Some(name) = d.args.first() else {
            return;
        };
        let mut group = UpstreamGroup {
            name: name.clone(),
            servers: Vec::new(),
            keepalive: None,
            zone: None,
            span: d.span.clone(),
            settings: Settings::default()
                .with_directives(children(d).iter().filter(|c| c.name != "server")),
        };
        for c in children(d) {
            match c.name.as_str() {
                "server" => group.servers.extend(upstream_server(c)),
                "keepalive" => group.keepalive = c.args.first().and_then(|a| a.parse().ok()),
                "zone" => group.zone = c.args.first().cloned(),
                _ => {}
            }
        }
        self.view.upstreams.push(group);
    }

    fn server(&mut self, d: &Directive, http: &Settings) {
        let settings = http.with_level(children(d));
        let index = self.view.servers.len();
        self.view.servers.push(Server {
            listens: Vec::new(),
            names: Vec::new(),
            span: d.span.clone(),
            locations: Vec::new(),
            targets: Vec::new(),
            settings: settings.clone(),
        });
        let place = Place {
            server: Some(index),
            location: None,
            context: LogContext::Server,
        };
        let mut listens = Vec::new();
        let mut names = Vec::new();
        let mut locations = Vec::new();
        let mut targets = Vec::new();
        for c in children(d) {
            match c.name.as_str() {
                "listen" => listens.extend(listen(c)),
                "server_name" => names.extend(c.args.iter().cloned()),
                "location" if c.block.is_some() => {
                    locations.push(self.location(c, place, &settings));
                }
                _ => self.inner(c, place, &settings, &mut targets),
            }
        }
        if !d
            .block
            .as_ref()
            .is_some_and(|b| b.iter().any(|c| c.name == "listen"))
        {
            listens.push(Listen {
                raw: "*:80".into(),
                addr: ListenAddr::Port(80),
                default_server: false,
                ssl: false,
                params: Vec::new(),
                span: None,
            });
        }
        if let Some(server) = self.view.servers.get_mut(index) {
            server.listens = listens;
            server.names = names;
            server.locations = locations;
            server.targets = targets;
        }
    }

    fn location<'a>(
        &mut self,
        d: &'a Directive,
        outer: Place<'a>,
        outer_settings: &Settings,
    ) -> Location {
        let settings = outer_settings.with_level(children(d));
        let (modifier, path) = location_name(&d.args);
        let place = Place {
            server: outer.server,
            location: Some(&d.args),
            context: LogContext::Location,
        };
        let mut location = Location {
            modifier,
            path,
            span: d.span.clone(),
            locations: Vec::new(),
            targets: Vec::new(),
            conditional_targets: Vec::new(),
            settings: settings.clone(),
        };
        for c in children(d) {
            if c.name == "location" && c.block.is_some() {
                location.locations.push(self.location(c, place, &settings));
            } else {
                let before = location.targets.len();
                self.inner(c, place, &settings, &mut location.targets);
                if c.block.is_some() {
                    let added = location.targets.get(before..).unwrap_or_default();
                    location.conditional_targets.extend_from_slice(added);
                }
            }
        }
        location
    }

    /// A directive inside a server or location that is not a location: a pass directive,
    /// a log directive, or a block such as `if` / `limit_except` whose contents belong to
    /// the same place. `settings` are those in effect at `d`.
    fn inner(
        &mut self,
        d: &Directive,
        place: Place<'_>,
        settings: &Settings,
        targets: &mut Vec<usize>,
    ) {
        if d.block.is_some() {
            // The block's own directives apply to the pass directives inside it only.
            let block_settings = settings.with_level(children(d));
            // A location nested here would not be valid nginx; it is walked like any block.
            for c in children(d) {
                self.inner(c, place, &block_settings, targets);
            }
            return;
        }
        if let Some(module) = PassModule::from_directive(&d.name) {
            if let Some(arg) = d.args.first() {
                let (scheme, address) = parse_pass(module, arg, &self.group_names);
                targets.push(self.view.targets.len());
                self.view.targets.push(PassTarget {
                    module,
                    scheme,
                    raw: arg.clone(),
                    address,
                    span: d.span.clone(),
                    server: place.server,
                    location: place.location.map(|a| a.join(" ")),
                    settings: settings.clone(),
                });
            }
            return;
        }
        self.log(d, place.context);
    }
}

/// Splits `location` arguments into modifier and path, accepting nginx's joined forms
/// (`=/x`, `~*\.php$`, `^~/static/`).
fn location_name(args: &[String]) -> (Option<String>, String) {
    match args {
        [modifier, path, ..] => (Some(modifier.clone()), path.clone()),
        [one] => {
            for modifier in ["^~", "~*", "=", "~"] {
                if let Some(rest) = one.strip_prefix(modifier) {
                    return (Some(modifier.to_string()), rest.to_string());
                }
            }
            (None, one.clone())
        }
        [] => (None, String::new()),
    }
}

/// An address as `ngx_parse_url` splits it.
#[derive(Debug, PartialEq, Eq)]
enum Addr {
    Unix(PathBuf),
    Inet {
        /// Without brackets.
        host: String,
        /// Whether the host was in brackets (IPv6).
        bracketed: bool,
        port: Option<u16>,
    },
}

/// Parses `unix:PATH`, `[v6]:port`, `host:port` or `host`. With `uri_part`, a URI may
/// follow (after `/`, or after `:` for unix sockets); otherwise it is an error, as in nginx.
fn parse_addr(text: &str, uri_part: bool) -> Result<Addr, String> {
    if text.len() >= 5
        && text
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("unix:"))
    {
        let mut path = text.get(5..).unwrap_or_default();
        if uri_part && let Some((p, _uri)) = path.split_once(':') {
            path = p;
        }
        if path.is_empty() {
            return Err("no path in the unix domain socket".into());
        }
        return Ok(Addr::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("invalid host".into());
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address".into());
        }
        let (port_text, uri) = match after.find(['/', '?']) {
            Some(i) => (after.get(..i).unwrap_or_default(), true),
            None => (after, false),
        };
        if uri && !uri_part {
            return Err("invalid host".into());
        }
        let port = match port_text.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if port_text.is_empty() => None,
            None => return Err("invalid host".into()),
        };
        return Ok(Addr::Inet {
            host: host.to_string(),
            bracketed: true,
            port,
        });
    }
    let (hostport, uri) = match text.find(['/', '?']) {
        Some(i) => (text.get(..i).unwrap_or_default(), true),
        None => (text, false),
    };
    if uri && !uri_part {
        return Err("invalid host".into());
    }
    let (host, port) = match hostport.split_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (hostport, None),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(Addr::Inet {
        host: host.to_string(),
        bracketed: false,
        port,
    })
}

/// A port as nginx accepts it: digits only, 1 to 65535.
fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid port".into());
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err("invalid port".into()),
    }
}

/// Parses a pass directive's argument into its scheme and address.
fn parse_pass(module: PassModule, raw: &str, groups: &[String]) -> (String, TargetAddress) {
    let mut scheme = module.default_scheme();
    let mut default_port = None;
    let mut rest = raw;
    let mut has_prefix = false;
    for &(prefix, s, port) in module.prefixes() {
        if raw.len() >= prefix.len()
            && raw
                .get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        {
            scheme = s;
            default_port = port;
            rest = raw.get(prefix.len()..).unwrap_or_default();
            has_prefix = true;
            break;
        }
    }
    let scheme = scheme.to_string();
    if raw.contains('$') {
        return (scheme, TargetAddress::Variable(raw.to_string()));
    }
    if module == PassModule::Proxy && !has_prefix {
        return (
            scheme,
            TargetAddress::Invalid(format!("invalid URL prefix in \"{raw}\"")),
        );
    }
    let uri_part = module == PassModule::Proxy;
    let address = match parse_addr(rest, uri_part) {
        Err(reason) => TargetAddress::Invalid(reason),
        Ok(Addr::Unix(path)) => TargetAddress::Peer(Peer::Unix(path)),
        Ok(Addr::Inet {
            host,
            bracketed,
            port,
        }) => {
            let is_group = !bracketed && groups.iter().any(|g| g.eq_ignore_ascii_case(&host));
            match (port.or(default_port), is_group) {
                (_, true) if port.is_some() => TargetAddress::Invalid(format!(
                    "upstream \"{host}\" may not have port {}",
                    port.unwrap_or_default()
                )),
                (_, true) => TargetAddress::Group(host),
                (Some(port), false) => TargetAddress::Peer(Peer::inet(&host, port)),
                (None, false) => TargetAddress::Invalid(format!("no port in upstream \"{host}\"")),
            }
        }
    };
    (scheme, address)
}

/// Parses an upstream `server` line; `None` when nginx would reject the address.
fn upstream_server(d: &Directive) -> Option<UpstreamServer> {
    let raw = d.args.first()?;
    let peer = match parse_addr(raw, false).ok()? {
        Addr::Unix(path) => Peer::Unix(path),
        Addr::Inet { host, port, .. } => Peer::inet(&host, port.unwrap_or(80)),
    };
    let mut server = UpstreamServer {
        peer,
        args: d.args.clone(),
        weight: 1,
        max_fails: 1,
        fail_timeout: "10s".into(),
        backup: false,
        down: false,
        resolve: false,
        span: d.span.clone(),
    };
    for param in d.args.iter().skip(1) {
        match param.split_once('=') {
            Some(("weight", v)) => server.weight = v.parse().unwrap_or(server.weight),
            Some(("max_fails", v)) => server.max_fails = v.parse().unwrap_or(server.max_fails),
            Some(("fail_timeout", v)) => server.fail_timeout = v.to_string(),
            _ => match param.as_str() {
                "backup" => server.backup = true,
                "down" => server.down = true,
                "resolve" => server.resolve = true,
                _ => {}
            },
        }
    }
    Some(server)
}

/// Parses a `listen` directive; `None` when nginx would reject the address.
fn listen(d: &Directive) -> Option<Listen> {
    let raw = d.args.first()?;
    let addr = listen_addr(raw)?;
    let mut listen = Listen {
        raw: raw.clone(),
        addr,
        default_server: false,
        ssl: false,
        params: Vec::new(),
        span: Some(d.span.clone()),
    };
    for param in d.args.iter().skip(1) {
        match param.as_str() {
            "default_server" | "default" => listen.default_server = true,
            "ssl" => listen.ssl = true,
            _ => listen.params.push(param.clone()),
        }
    }
    Some(listen)
}

/// The address of `listen` (default port 80, a bare number is a port, `*` is all).
fn listen_addr(raw: &str) -> Option<ListenAddr> {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return parse_port(raw).ok().map(ListenAddr::Port);
    }
    match parse_addr(raw, false).ok()? {
        Addr::Unix(path) => Some(ListenAddr::Unix(path)),
        Addr::Inet { host, port, .. } => {
            let port = port.unwrap_or(80);
            if host == "*" {
                return Some(ListenAddr::Port(port));
            }
            Some(match host.parse::<IpAddr>() {
                Ok(ip) => ListenAddr::Inet(SocketAddr::new(ip, port)),
                Err(_) => ListenAddr::Host { host, port },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_settings_and_conditional_targets() {
        let file = std::path::Path::new("/t/nginx.conf");
        let text = "http { merge_slashes off; server { error_page 502 /x;
            location / { try_files $uri @app; if ($a) { proxy_pass http://127.0.0.1:1; }
                proxy_pass http://127.0.0.1:2; }
            location @app { } } }";
        let config = Config::from_text(text, file).expect("parse");
        let view = ConfigView::new(&config);
        let server = &view.servers[0];
        assert_eq!(
            server.settings.get("merge_slashes").map(|s| s.args.clone()),
            Some(vec!["off".to_string()])
        );
        let root = &server.locations[0];
        assert_eq!(root.targets, [0, 1]);
        assert_eq!(root.conditional_targets, [0]);
        assert!(root.settings.get("try_files").is_some());
        assert!(root.settings.get("error_page").is_some());
        // try_files is not inherited.
        assert!(server.locations[1].settings.get("try_files").is_none());
        assert!(server.locations[1].conditional_targets.is_empty());
    }

    #[test]
    fn addr_forms() {
        assert_eq!(
            parse_addr("unix:/a.sock:/uri", true),
            Ok(Addr::Unix("/a.sock".into()))
        );
        assert_eq!(
            parse_addr("unix:/a:b", false),
            Ok(Addr::Unix("/a:b".into()))
        );
        assert_eq!(parse_addr("h:0", false), Err("invalid port".into()));
        assert_eq!(parse_addr("h/x", false), Err("invalid host".into()));
        assert_eq!(parse_addr(":80", false), Err("no host".into()));
    }
}
