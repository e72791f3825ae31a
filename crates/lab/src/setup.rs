//! The building blocks of a scenario: what it builds before nginx starts (ports, upstream
//! apps as responder threads, a TLS app, a real PHP-FPM pool), the `location /` directives,
//! the traffic to send and the edit to make afterwards. Which scenario uses which is in
//! `scenarios/`; nothing here names a scenario.
//!
//! Ports are allocated by binding port 0 on loopback and reading the port back; a port that
//! must stay closed is released again right away.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::LabError;
use crate::child::LabChild;
use crate::config::{self, ERROR_LEVEL, Group, Site};
use crate::dns::DnsResponder;
use crate::phpfpm::{PhpFpm, PoolSpec};
use crate::upstream::{Behavior, Listener, Responder};

/// Longest unix socket path Linux accepts (`sun_path` is 108 bytes with the NUL).
const MAX_UNIX_PATH: usize = 107;
/// Attempts to find a port that is free on both loopback families.
const PORT_ATTEMPTS: usize = 8;
/// GET requests the lab sends through nginx unless a scenario says otherwise.
pub(crate) const DEFAULT_GETS: usize = 3;
/// Pause between the `keepalive-race` requests: well below the app's keep-alive idle timeout,
/// so nginx reuses its cached connection.
pub(crate) const RACE_GAP: Duration = Duration::from_millis(50);

/// The requests the lab sends through nginx once it runs, so that nginx logs the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// How many `GET /` requests, one after the other.
    pub gets: usize,
    /// Pause between two requests.
    pub gap: Duration,
    /// Whether a `POST /` with a small body follows the GETs.
    pub post: bool,
    /// Whether the GETs are sent all at once, each from a thread of its own (so that a
    /// busy app server has more connections than it takes), instead of one after the other.
    pub concurrent: bool,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            gets: DEFAULT_GETS,
            gap: Duration::ZERO,
            post: false,
            concurrent: false,
        }
    }
}

/// The upstream host name of the DNS scenarios (`no-resolver`, `stale-dns`).
pub(crate) const APP_NAME: &str = "app.lab.fix502.test";
/// The name `dns-nxdomain` proxies to, which its DNS responder does not know.
pub(crate) const MISSING_NAME: &str = "missing.lab.fix502.test";
/// The only address the `wrong-interface` app listens on.
pub(crate) const OTHER_LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The address `app.lab.fix502.test` has when `stale-dns` starts nginx.
pub(crate) const OLD_APP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The address the `stale-dns` app moved to.
pub(crate) const NEW_APP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The hosts file `stale-dns` bind-mounts on nginx's `/etc/hosts`, relative to the lab dir.
pub(crate) const HOSTS_FILE: &str = "conf/hosts";

/// A change to `conf/app.conf` made after nginx started and showed the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigEdit {
    /// The last directive loses its `;`: `nginx -t` fails; nobody reloads (`config-invalid`).
    DropSemicolon,
    /// `location /` gets these directives; nginx is not told (`not-reloaded`).
    Rewrite(Vec<String>),
    /// `location /` gets these directives, which `nginx -t` rejects, and nginx is sent SIGHUP:
    /// the reload fails with an `[emerg]` line and the old workers keep running
    /// (`failed-reload`).
    RewriteAndReload(Vec<String>),
}

/// nginx's own `/etc/hosts` for `stale-dns`: a lab file bind-mounted in nginx's mount
/// namespace, rewritten in place once nginx has resolved the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamespaceHosts {
    /// The file (already written with the start-time address).
    pub path: PathBuf,
    /// Its text after the app "moved".
    pub after_start: String,
}

/// The scenario-specific part of a lab.
#[derive(Debug)]
pub(crate) struct Setup {
    /// Where the lab's nginx server listens.
    pub listen: SocketAddr,
    /// The directives of `location /` in `conf/app.conf`, without `;`, the pass directive first.
    pub location: Vec<String>,
    /// Servers of the `upstream backend` group, if the scenario uses one.
    pub group: Vec<String>,
    /// More directives of the `upstream backend` block.
    pub group_extra: Vec<String>,
    /// The upstream as nginx writes it in the error log.
    pub expected_upstream: Option<String>,
    /// Upstream responders serving for the scenario.
    pub responders: Vec<Responder>,
    /// The PHP-FPM master serving for the scenario, if it has one.
    pub php_fpm: Option<PhpFpm>,
    /// What the lab sends through nginx after starting it.
    pub traffic: Traffic,
    /// Whether nginx is started (false only for `nginx-not-running`).
    pub start_nginx: bool,
    /// How `conf/app.conf` is changed once nginx showed the failure, if at all.
    pub edit: Option<ConfigEdit>,
    /// The level of the main `error_log`.
    pub error_log_level: &'static str,
    /// Whether the access log uses the upstream-timing format (`config::UPSTREAM_LOG_FORMAT`).
    pub upstream_log: bool,
    /// nginx's own `/etc/hosts`, when it runs in a mount namespace of its own.
    pub hosts: Option<NamespaceHosts>,
    /// The DNS server the config's `resolver` names, if the scenario has one.
    pub dns: Option<DnsResponder>,
    /// More named upstream groups in `conf/nginx.conf`.
    pub groups: Vec<Group>,
    /// Other sites on the same nginx (`conf/sites/*.conf`); the lab sends each one `GET /`.
    pub sites: Vec<Site>,
    /// The upstreams of the other members of the host that work, as nginx writes them: no
    /// diagnosis may name one.
    pub healthy: Vec<String>,
    /// More PHP-FPM masters (other sites' pools).
    pub more_php_fpm: Vec<PhpFpm>,
    /// Other programs serving for the scenario (uWSGI, a decoy listener).
    pub children: Vec<LabChild>,
    /// A line the scenario's app server writes to its own log (the file and a fragment of
    /// the line): the lab waits for it after nginx logged its line.
    pub app_marker: Option<(PathBuf, &'static str)>,
}

impl Setup {
    /// nginx proxies `scheme://upstream` (`scheme` is `http` or `https`).
    pub(crate) fn proxy(listen: SocketAddr, scheme: &str, upstream: String) -> Self {
        Self {
            listen,
            location: config::proxy(&format!("{scheme}://{upstream}")),
            group: Vec::new(),
            group_extra: Vec::new(),
            expected_upstream: Some(upstream),
            responders: Vec::new(),
            php_fpm: None,
            traffic: Traffic::default(),
            start_nginx: true,
            edit: None,
            error_log_level: ERROR_LEVEL,
            upstream_log: false,
            hosts: None,
            dns: None,
            groups: Vec::new(),
            sites: Vec::new(),
            healthy: Vec::new(),
            more_php_fpm: Vec::new(),
            children: Vec::new(),
            app_marker: None,
        }
    }

    pub(crate) fn new(listen: SocketAddr, upstream: String) -> Self {
        Self::proxy(listen, "http", upstream)
    }
}

/// What [`build`] needs to know about the lab.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LabDir<'a> {
    /// The lab dir.
    pub path: &'a Path,
    /// The lab dir as checked text (`config::check_path`), for config files.
    pub text: &'a str,
    /// `user group` for unprivileged workers, when the lab runs as root.
    pub user: Option<&'a str>,
}

/// The address the lab's nginx listens on: a loopback port that is free now.
pub(crate) fn listen_addr() -> Result<SocketAddr, LabError> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

/// An app with `behavior` on 127.0.0.1 and its address.
pub(crate) fn spawn_app(behavior: Behavior) -> Result<(SocketAddr, Responder), LabError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| LabError::io("bind 127.0.0.1:0 for the upstream", e))?;
    let addr = local_addr(&listener)?;
    Ok((addr, spawn(Listener::Tcp(listener), behavior)?))
}

/// An app with `behavior` on 127.0.0.1 and nginx proxying to it over plain HTTP.
pub(crate) fn app(listen: SocketAddr, behavior: Behavior) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(behavior)?;
    let mut setup = Setup::new(listen, addr.to_string());
    setup.responders.push(responder);
    Ok(setup)
}

/// An app with `behavior` on 127.0.0.1 and nginx proxying to it with `https://`.
pub(crate) fn https_to(listen: SocketAddr, behavior: Behavior) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(behavior)?;
    let mut setup = Setup::proxy(listen, "https", addr.to_string());
    setup.responders.push(responder);
    Ok(setup)
}

/// A real PHP-FPM pool on 127.0.0.1 (killing requests after `terminate_after_secs`, if set).
pub(crate) fn php_fpm(
    dir: LabDir<'_>,
    terminate_after_secs: Option<u32>,
) -> Result<(String, PhpFpm), LabError> {
    let port = free_port()?;
    let spec = PoolSpec {
        terminate_after_secs,
        ..PoolSpec::tcp(port, dir.user)
    };
    let fpm = PhpFpm::start(dir.path, dir.text, &spec)?;
    Ok((format!("127.0.0.1:{port}"), fpm))
}

/// nginx passes requests with FastCGI to `upstream`, served by `responders` or `php_fpm`,
/// running `script` (a path under the lab dir: `phpfpm::SCRIPT` runs past a pool's
/// `request_terminate_timeout`, `phpfpm::OK_SCRIPT` answers at once).
pub(crate) fn fastcgi(
    listen: SocketAddr,
    dir: LabDir<'_>,
    upstream: String,
    responders: Vec<Responder>,
    php_fpm: Option<PhpFpm>,
    script: &str,
) -> Setup {
    let script = format!("{}/{}", dir.text, script);
    Setup {
        location: config::fastcgi(&upstream, &script),
        responders,
        php_fpm,
        ..Setup::new(listen, upstream)
    }
}

/// [`fastcgi`] to a real php-fpm pool running `script` (`phpfpm::SCRIPT`, the slow one, or
/// `phpfpm::OK_SCRIPT`).
pub(crate) fn php_fpm_site(
    listen: SocketAddr,
    dir: LabDir<'_>,
    upstream: String,
    fpm: PhpFpm,
    script: &str,
) -> Setup {
    fastcgi(listen, dir, upstream, Vec::new(), Some(fpm), script)
}

/// The app listens on `app_ip:P` (`[::1]`, or `127.0.0.2`); nginx connects to `127.0.0.1:P`,
/// where nothing listens.
pub(crate) fn listening_elsewhere(listen: SocketAddr, app_ip: IpAddr) -> Result<Setup, LabError> {
    let (app, port) = listener_with_closed_twin(app_ip, Ipv4Addr::LOCALHOST.into())?;
    let mut setup = Setup::new(listen, format!("127.0.0.1:{port}"));
    setup
        .responders
        .push(spawn(Listener::Tcp(app), Behavior::Ok)?);
    Ok(setup)
}

/// A listener on `ip` and a free port P such that nothing listens on `closed:P` either.
pub(crate) fn listener_with_closed_twin(
    ip: IpAddr,
    closed: IpAddr,
) -> Result<(TcpListener, u16), LabError> {
    for _ in 0..PORT_ATTEMPTS {
        let listener = TcpListener::bind((ip, 0)).map_err(|e| {
            LabError::Unsupported(format!("loopback address {ip} is not usable: {e}"))
        })?;
        let port = local_addr(&listener)?.port();
        // The same port must be closed on `closed`; binding it proves that, dropping frees it.
        if TcpListener::bind((closed, port)).is_ok() {
            return Ok((listener, port));
        }
    }
    Err(LabError::Unsupported(format!(
        "found no port that is free on both {ip} and {closed}"
    )))
}

/// `unix:<dir>/run/app.sock`, as nginx writes it; fails if the path is too long for a socket.
pub(crate) fn unix_upstream(dir: &Path) -> Result<String, LabError> {
    unix_upstream_named(dir, "app")
}

/// `unix:<dir>/run/NAME.sock`, as nginx writes it; fails if the path is too long for a socket.
pub(crate) fn unix_upstream_named(dir: &Path, name: &str) -> Result<String, LabError> {
    let path = dir.join(format!("run/{name}.sock"));
    let text = path.to_string_lossy();
    if text.len() > MAX_UNIX_PATH {
        return Err(LabError::Unsupported(format!(
            "unix socket path {text} is longer than {MAX_UNIX_PATH} bytes; set TMPDIR to a short path"
        )));
    }
    Ok(format!("unix:{text}"))
}

/// `n` consecutive loopback ports that were free a moment ago, the lowest first (a busy host
/// gives its apps neighbouring ports).
pub(crate) fn free_ports(n: u16) -> Result<Vec<u16>, LabError> {
    for _ in 0..PORT_ATTEMPTS {
        let first = free_port()?;
        let Some(last) = first.checked_add(n.saturating_sub(1)) else {
            continue;
        };
        // Binding each proves it is free; dropping the listeners frees them again.
        let bound: Vec<_> = (first..=last)
            .map_while(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok())
            .collect();
        if bound.len() == usize::from(n) {
            return Ok((first..=last).collect());
        }
    }
    Err(LabError::Unsupported(format!(
        "found no {n} consecutive free ports on 127.0.0.1"
    )))
}

/// A loopback port that was free a moment ago (bound to port 0, then released).
pub(crate) fn free_port() -> Result<u16, LabError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| LabError::io("bind 127.0.0.1:0 to pick a port", e))?;
    Ok(local_addr(&listener)?.port())
}

pub(crate) fn local_addr(listener: &TcpListener) -> Result<SocketAddr, LabError> {
    listener
        .local_addr()
        .map_err(|e| LabError::io("read a listener's address", e))
}

pub(crate) fn spawn(listener: Listener, behavior: Behavior) -> Result<Responder, LabError> {
    Responder::spawn(listener, behavior)
        .map_err(|e| LabError::io("start the lab upstream thread", e))
}
