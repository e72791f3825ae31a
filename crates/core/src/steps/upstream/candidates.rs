//! What the user most likely meant: the listeners ranked for an upstream endpoint that
//! refuses, is unreachable or missing ([`candidates()`]), why each was chosen ([`Reason`]),
//! and the address to write in nginx's config to reach one ([`connect_address`],
//! [`with_address`]).
//!
//! What belongs here: the ranking and its word and address helpers, pure functions of an
//! endpoint and the listening sockets, tested without nginx. What does not: probing the
//! endpoint, deciding whether it failed or is local, and building findings, which are the
//! `upstream.listeners` check's job in the parent module.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use fix502_nginx::view::{PassModule, Peer};
use fix502_probe::appserver::{AppServerKind, kind_of};
use fix502_probe::listeners::Listener;

use crate::facts::Endpoint;
use crate::upstream::Upstream;

/// How far from the endpoint's port a listener counts as a nearby port.
const NEARBY_PORTS: u16 = 10;
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

    /// Whether the reason is evidence of identity: the app's own port on another address
    /// of this host, or the kind of server the directive talks to. Names, directories and
    /// nearby ports are hints: a word in a command line is not an identity.
    fn is_identity(&self) -> bool {
        matches!(self, Self::SamePort { local: true } | Self::AppServer(_))
    }

    /// Why, for a person: `same port 8000, IPv6 instead of IPv4`.
    pub(super) fn describe(
        &self,
        endpoint: &Peer,
        listener: &Listener,
        module: PassModule,
    ) -> String {
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

    /// No reason is evidence of identity: a hint, shown as such, never a cause.
    pub fn is_hint(&self) -> bool {
        !self.reasons.iter().any(Reason::is_identity)
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

/// What a listener's owner is, as far as the server kind goes: worked out once per
/// listener ([`Around::new`]).
struct Owner {
    kind: AppServerKind,
    /// The program's file name, lowercase (the command line's first word, else the
    /// process name).
    program: String,
}

impl Owner {
    fn of(listener: &Listener) -> Self {
        let process = listener.process.as_deref().unwrap_or_default();
        let cmdline: Vec<String> = listener
            .cmdline
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let program = cmdline.first().map_or(process, String::as_str);
        let program = program
            .rsplit('/')
            .next()
            .unwrap_or(program)
            .to_ascii_lowercase();
        Self {
            kind: kind_of(process, &cmdline),
            program,
        }
    }
}

/// The name of the server kind `module` talks to, when a listener's `owner` is one.
fn expected_server(module: PassModule, owner: &Owner) -> Option<String> {
    let kind = owner.kind;
    match module {
        PassModule::FastCgi if kind == AppServerKind::PhpFpm => Some(kind.name().to_owned()),
        PassModule::FastCgi => {
            let program = &owner.program;
            ["fcgi", "fastcgi", "php-cgi", "hhvm"]
                .iter()
                .any(|p| program.contains(p))
                .then(|| format!("FastCGI ({program})"))
        }
        PassModule::Uwsgi if kind == AppServerKind::Uwsgi => Some(kind.name().to_owned()),
        _ => None,
    }
}

/// What there is around a failed endpoint to look for where its app went: made once for
/// all the failed endpoints of a run ([`Around::new`]).
pub struct Around<'a> {
    /// Every listening socket of the host.
    listeners: &'a [Listener],
    /// nginx's own processes, whose sockets are never candidates.
    nginx_pids: &'a [u32],
    /// The systemd unit of a pid.
    units: &'a dyn Fn(u32) -> Option<String>,
    /// Each listener's address as an upstream (in the order of `listeners`).
    addresses: Vec<Upstream>,
    /// For each listener, the configured addresses it serves: another upstream's app.
    serving: Vec<Vec<&'a Peer>>,
    /// Each listener's owner.
    owners: Vec<Owner>,
}

impl<'a> Around<'a> {
    /// What there is around: every listening socket of the host, nginx's own processes
    /// (whose sockets are never candidates), the addresses the config sends requests to (a
    /// listener serving one of them is another upstream's app, not where a failed one went)
    /// and the systemd unit of a pid. A host may have hundreds of each: what does not
    /// depend on the endpoint is worked out here, once.
    pub fn new(
        listeners: &'a [Listener],
        nginx_pids: &'a [u32],
        configured: &'a [Peer],
        units: &'a dyn Fn(u32) -> Option<String>,
    ) -> Self {
        Self {
            listeners,
            nginx_pids,
            units,
            addresses: listeners.iter().map(|l| Upstream::parse(&l.addr)).collect(),
            serving: listeners
                .iter()
                .map(|l| configured.iter().filter(|p| serves(l, p)).collect())
                .collect(),
            owners: listeners.iter().map(Owner::of).collect(),
        }
    }
}

/// Whether `listener` serves `peer`: the same socket file, or the same port on the same or
/// a wildcard address.
fn serves(listener: &Listener, peer: &Peer) -> bool {
    match peer {
        Peer::Unix(path) => listener.path.as_deref() == Some(path.as_path()),
        Peer::Inet { port, .. } => listener.socket_addr.is_some_and(|sa| {
            sa.port() == *port
                && (sa.ip().is_unspecified()
                    || peer.ip().is_some_and(|ip| ip == sa.ip())
                    || (!peer.is_ip_literal() && sa.ip().is_loopback()))
        }),
    }
}

/// The candidate to claim the app moved to: the best one, when it has evidence of identity
/// and no other candidate with identity ranks as high (two php-fpm pools nobody uses are
/// not one answer). `None`: hints only.
pub fn decisive(found: &[Candidate]) -> Option<&Candidate> {
    let best = found.first().filter(|c| !c.is_hint())?;
    let tied = found
        .iter()
        .skip(1)
        .any(|c| !c.is_hint() && c.score() == best.score());
    (!tied).then_some(best)
}

/// Ranks the listeners that may be what `endpoint` (which refuses, is unreachable or
/// missing) was meant to be, best first. `module` is what the pass directive speaks;
/// `local`: the endpoint's address is on this host. nginx's own sockets, listeners that
/// serve another address of the config, and abstract unix sockets are never candidates.
///
/// The rules, strongest first: the same port on another address or family (only when the
/// endpoint is local); the server kind the directive talks to anywhere (php-fpm for
/// `fastcgi_pass`, uWSGI for `uwsgi_pass`). Those are evidence of identity. Hints only:
/// the upstream's name in the owner's name, command line or unit; a socket in the same (not
/// shared) directory; and, when nothing else matched and the endpoint is local, a loopback
/// or wildcard listener within ±10 ports ([`Reason::NearbyPort`]).
pub fn candidates(
    endpoint: &Endpoint,
    module: PassModule,
    local: bool,
    around: &Around<'_>,
) -> Vec<Candidate> {
    let (all, nginx_pids, units) = (around.listeners, around.nginx_pids, around.units);
    let wanted = name_words(endpoint);
    let endpoint_port = match &endpoint.peer {
        Peer::Inet { port, .. } => Some(*port),
        Peer::Unix(_) => None,
    };
    let itself = Upstream::from(&endpoint.peer);
    let eligible = |i: usize, l: &Listener| {
        around.addresses.get(i) != Some(&itself)
            && !l.pid.is_some_and(|p| nginx_pids.contains(&p))
            && !around
                .serving
                .get(i)
                .is_some_and(|peers| peers.iter().any(|p| **p != endpoint.peer))
            && !l
                .path
                .as_ref()
                .is_some_and(|p| p.as_os_str().to_string_lossy().starts_with('@'))
    };
    let eligible_ones = || all.iter().enumerate().filter(|(i, l)| eligible(*i, l));
    let mut out: Vec<Candidate> = Vec::new();
    for (i, l) in eligible_ones() {
        let Some(owner) = around.owners.get(i) else {
            continue;
        };
        let unit = l.pid.and_then(units);
        let mut reasons = Vec::new();
        let port = l.socket_addr.map(|a| a.port());
        if endpoint_port.is_some() && port == endpoint_port {
            reasons.push(Reason::SamePort { local });
        }
        // A FastCGI server (php-fpm) only `fastcgi_pass` can use.
        let fastcgi_only = expected_server(PassModule::FastCgi, owner).is_some();
        if module != PassModule::FastCgi && fastcgi_only && reasons.is_empty() {
            continue;
        }
        if let Some(server) = expected_server(module, owner) {
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
        if !reasons.is_empty() && reasons != [Reason::SamePort { local: false }] {
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
        for (_, l) in eligible_ones().filter(|(_, l)| l.pid.is_some()) {
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use fix502_probe::listeners::ListenerKind;
    use fix502_probe::process::systemd_unit_of;

    use super::*;

    /// `candidates` with no other configured address.
    fn find(
        e: &Endpoint,
        module: PassModule,
        local: bool,
        all: &[Listener],
        nginx_pids: &[u32],
        units: &dyn Fn(u32) -> Option<String>,
    ) -> Vec<Candidate> {
        candidates(e, module, local, &Around::new(all, nginx_pids, &[], units))
    }

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
        let found = find(&e, PassModule::Proxy, true, &all, &[NGINX], &no_units);
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
        assert!(find(&remote, PassModule::Proxy, false, &all, &[NGINX], &no_units).is_empty());
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
        let found = find(
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
        let found = find(&e, PassModule::FastCgi, true, &all, &[NGINX], &units);
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
        let found = find(&e, PassModule::Proxy, true, &all, &[NGINX], &units);
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
        let found = find(&e, PassModule::Uwsgi, true, &all, &[], &no_units);
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
        let found = find(&sock, PassModule::Proxy, true, &all, &[], &units);
        assert!(
            found.is_empty(),
            "proxy_pass never points at php-fpm: {found:?}"
        );
        let found = find(&sock, PassModule::FastCgi, true, &all, &[], &units);
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
        let found = find(&e, PassModule::Proxy, true, &all, &[], &billing);
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
        assert!(find(&e, PassModule::Proxy, true, &all, &[], &no_units).is_empty());
        // A near port on loopback or all addresses is a weak candidate, only for a local endpoint.
        let mut all = all;
        all.push(tcp("0.0.0.0:8010", 5, "java", "java -jar shop.jar"));
        let found = find(&e, PassModule::Proxy, true, &all, &[], &no_units);
        assert_eq!(addrs(&found), vec!["0.0.0.0:8010"]);
        assert!(found[0].is_hint());
        assert!(find(&e, PassModule::Proxy, false, &all, &[], &no_units).is_empty());
        // Missing unix socket next to another app's socket.
        let sock = endpoint(Peer::Unix(PathBuf::from("/run/shop/web.sock")), None);
        let all = vec![unix(
            "/run/shop/api.sock",
            7,
            "gunicorn",
            "gunicorn shop.wsgi",
        )];
        let found = find(&sock, PassModule::Proxy, true, &all, &[], &no_units);
        assert_eq!(
            found[0].reasons,
            vec![Reason::Name(vec!["shop".to_owned()]), Reason::SameDirectory]
        );
        // A generic word ("app") is no name match.
        let sock = endpoint(Peer::Unix(PathBuf::from("/srv/x/app.sock")), Some("api"));
        let all = vec![tcp("127.0.0.1:5000", 9, "python3", "python3 app.py api")];
        assert!(find(&sock, PassModule::Proxy, true, &all, &[], &no_units).is_empty());
        // An abstract socket is never one.
        let sock = endpoint(Peer::Unix(PathBuf::from("/run/shop/web.sock")), None);
        let all = vec![unix("@/run/shop/web", 8, "shop", "shop")];
        assert!(find(&sock, PassModule::Proxy, true, &all, &[], &no_units).is_empty());
    }

    /// A busy host: what identifies where an app went, and what only looks like it.
    #[test]
    fn identity_not_words() {
        let fpm = "php-fpm: pool www";
        let around = |all: &'static [Listener], configured: &'static [Peer]| {
            Around::new(all, &[], configured, &no_units)
        };
        let leak = |v: Vec<Listener>| -> &'static [Listener] { Vec::leak(v) };
        let peers = |v: Vec<Peer>| -> &'static [Peer] { Vec::leak(v) };

        // Several apps with overlapping names: the shop's web app serves another location
        // (excluded); the admin app only shares a word (a hint, no claim).
        let api = endpoint(Peer::inet("127.0.0.1", 8000), Some("shop_api"));
        let all = leak(vec![
            tcp(
                "127.0.0.1:8001",
                10,
                "gunicorn",
                "gunicorn shop_web.wsgi -b 127.0.0.1:8001",
            ),
            tcp("127.0.0.1:8002", 11, "python3", "python3 shop_admin.py"),
        ]);
        let configured = peers(vec![api.peer.clone(), Peer::inet("127.0.0.1", 8001)]);
        let found = candidates(&api, PassModule::Proxy, true, &around(all, configured));
        assert_eq!(addrs(&found), vec!["127.0.0.1:8002"]);
        assert!(found[0].is_hint());
        assert!(decisive(&found).is_none());

        // A dead php-fpm pool left its socket; the other site's pool is that site's.
        let site_a = endpoint(Peer::Unix(PathBuf::from("/run/php/site-a.sock")), None);
        let all = leak(vec![unix("/run/php/site-b.sock", 20, "php-fpm8.2", fpm)]);
        let configured = peers(vec![
            site_a.peer.clone(),
            Peer::Unix(PathBuf::from("/run/php/site-b.sock")),
        ]);
        let found = candidates(&site_a, PassModule::FastCgi, true, &around(all, configured));
        assert!(found.is_empty(), "{found:?}");

        // Two pools nobody uses: either could be it, so neither is claimed.
        let all = leak(vec![
            unix("/run/php/one.sock", 21, "php-fpm8.2", fpm),
            unix("/run/php/two.sock", 22, "php-fpm8.2", fpm),
        ]);
        let found = candidates(&site_a, PassModule::FastCgi, true, &around(all, &[]));
        assert_eq!(found.len(), 2);
        assert!(decisive(&found).is_none());

        // One pool of the next PHP version, used by nothing else: that is where it went.
        let fpm81 = endpoint(Peer::Unix(PathBuf::from("/run/php/php8.1-fpm.sock")), None);
        let all = leak(vec![unix(
            "/run/php/php8.2-fpm.sock",
            23,
            "php-fpm8.2",
            fpm,
        )]);
        let found = candidates(&fpm81, PassModule::FastCgi, true, &around(all, &[]));
        assert_eq!(
            decisive(&found).map(|c| c.listener.addr.as_str()),
            Some("unix:/run/php/php8.2-fpm.sock")
        );

        // A decoy on a nearby port: a hint.
        let app = endpoint(Peer::inet("127.0.0.1", 8000), None);
        let all = leak(vec![tcp("127.0.0.1:8003", 30, "node", "node decoy.js")]);
        let found = candidates(&app, PassModule::Proxy, true, &around(all, &[]));
        assert!(found[0].is_hint() && decisive(&found).is_none());

        // The same port on IPv6: identity.
        let all = leak(vec![tcp("[::1]:8000", 31, "node", "node server.js")]);
        let found = candidates(&app, PassModule::Proxy, true, &around(all, &[]));
        assert!(decisive(&found).is_some());

        // A group with one dead server: the live one serves the group, it is no candidate.
        let dead = endpoint(Peer::inet("127.0.0.1", 9001), Some("pool"));
        let all = leak(vec![tcp("127.0.0.1:9002", 40, "python3", "python3 app.py")]);
        let configured = peers(vec![dead.peer.clone(), Peer::inet("127.0.0.1", 9002)]);
        let found = candidates(&dead, PassModule::Proxy, true, &around(all, configured));
        assert!(found.is_empty(), "{found:?}");
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
        let found = find(&e, PassModule::Proxy, true, &all, &[], &no_units);
        let c = found
            .iter()
            .find(|c| c.listener.socket_addr == named.local_addr().ok())
            .unwrap_or_else(|| panic!("{group}: {found:?}"));
        assert!(matches!(c.reasons.first(), Some(Reason::Name(_))), "{c:?}");

        // Same port, other address; never when our pid counts as nginx's.
        let e = endpoint(Peer::inet("127.0.0.1", other_port), None);
        let found = find(&e, PassModule::Proxy, true, &all, &[], &no_units);
        assert_eq!(
            found.first().map(|c| c.listener.addr.clone()),
            Some(format!("127.0.0.2:{other_port}"))
        );
        assert_eq!(found[0].reasons, vec![Reason::SamePort { local: true }]);
        let found = find(&e, PassModule::Proxy, true, &all, &[me], &no_units);
        assert!(
            found.iter().all(|c| c.listener.pid != Some(me)),
            "{found:?}"
        );
        drop((named, other));
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
        // The pool's owner shows once php-fpm has settled (its workers are forked while it
        // starts): list again until the listener has a pid, bounded.
        let pool_addr = format!("127.0.0.1:{pool_port}");
        let mut all = fix502_probe::listeners::listeners();
        for _ in 0..40 {
            let owned = all.as_ref().is_ok_and(|l| {
                l.iter()
                    .any(|x| x.addr == pool_addr && x.pid == Some(child.id()))
            });
            if owned {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            all = fix502_probe::listeners::listeners();
        }
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
        let found = find(&e, PassModule::FastCgi, true, &all, &[], &|pid| {
            systemd_unit_of(pid)
        });
        let c = found
            .iter()
            .find(|c| c.listener.addr == pool_addr)
            .unwrap_or_else(|| panic!("{found:#?}"));
        assert_eq!(c.listener.pid, Some(child.id()));
        assert_eq!(c.reasons, vec![Reason::AppServer("php-fpm".to_owned())]);
        // The same pool is no candidate for proxy_pass.
        let found = find(&e, PassModule::Proxy, true, &all, &[], &no_units);
        assert!(
            found.iter().all(|c| c.listener.pid != Some(child.id())),
            "{found:#?}"
        );
    }
}
