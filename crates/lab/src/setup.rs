//! What each scenario builds before nginx starts: ports, upstream apps (responder threads, a
//! TLS app, a real PHP-FPM pool), the `location /` directives and the traffic to send.
//!
//! Ports are allocated by binding port 0 on loopback and reading the port back; a port that
//! must stay closed is released again right away.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::LabError;
use crate::config::{self, ERROR_LEVEL, NOTICE_LEVEL};
use crate::dns::DnsResponder;
use crate::phpfpm::{self, PhpFpm, PoolSpec};
use crate::tls;
use crate::upstream::{Behavior, Listener, Responder};

/// Longest unix socket path Linux accepts (`sun_path` is 108 bytes with the NUL).
const MAX_UNIX_PATH: usize = 107;
/// Attempts to find a port that is free on both loopback families.
const PORT_ATTEMPTS: usize = 8;
/// GET requests the lab sends through nginx unless a scenario says otherwise.
const DEFAULT_GETS: usize = 3;
/// Pause between the `keepalive-race` requests: well below the app's keep-alive idle timeout,
/// so nginx reuses its cached connection.
const RACE_GAP: Duration = Duration::from_millis(50);

/// The requests the lab sends through nginx once it runs, so that nginx logs the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// How many `GET /` requests, one after the other.
    pub gets: usize,
    /// Pause between two requests.
    pub gap: Duration,
    /// Whether a `POST /` with a small body follows the GETs.
    pub post: bool,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            gets: DEFAULT_GETS,
            gap: Duration::ZERO,
            post: false,
        }
    }
}

/// The upstream host name of the DNS scenarios (`no-resolver`, `stale-dns`).
pub(crate) const APP_NAME: &str = "app.lab.fix502.test";
/// The name `dns-nxdomain` proxies to, which its DNS responder does not know.
pub(crate) const MISSING_NAME: &str = "missing.lab.fix502.test";
/// The only address the `wrong-interface` app listens on.
const OTHER_LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The address `app.lab.fix502.test` has when `stale-dns` starts nginx.
const OLD_APP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The address the `stale-dns` app moved to.
const NEW_APP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
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
}

impl Setup {
    /// nginx proxies `scheme://upstream` (`scheme` is `http` or `https`).
    fn proxy(listen: SocketAddr, scheme: &str, upstream: String) -> Self {
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
        }
    }

    fn new(listen: SocketAddr, upstream: String) -> Self {
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

/// Builds the setup of scenario `name` in `dir` (the caller checked the name exists).
pub(crate) fn build(name: &str, dir: LabDir<'_>) -> Result<Setup, LabError> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let setup = match name {
        "healthy" => app(listen, Behavior::Ok)?,
        "refused" => Setup::new(listen, format!("127.0.0.1:{}", free_port()?)),
        "wrong-address" => listening_elsewhere(listen, Ipv6Addr::LOCALHOST.into())?,
        "unix-socket-missing" => Setup::new(listen, unix_upstream(dir.path)?),
        "unix-socket-permission" => unix_socket_permission(listen, dir.path)?,
        "no-live-upstreams" => no_live_upstreams(listen)?,
        "nginx-not-running" => Setup {
            start_nginx: false,
            ..app(listen, Behavior::Ok)?
        },
        "config-invalid" => Setup {
            edit: Some(ConfigEdit::DropSemicolon),
            ..app(listen, Behavior::Ok)?
        },
        "closed-early" => app(listen, Behavior::CloseEarly)?,
        "reset" => app(listen, Behavior::Reset)?,
        "header-too-big" => app(listen, Behavior::BigHeader)?,
        "invalid-header" => app(listen, Behavior::InvalidHeader)?,
        "https-to-plain" => https_to(listen, Behavior::Ok)?,
        "http-to-tls" => app(listen, Behavior::Tls(tls::upstream_server(dir.path)?))?,
        "proxy-to-fastcgi" => {
            let (upstream, fpm) = php_fpm(dir, None)?;
            Setup {
                php_fpm: Some(fpm),
                ..Setup::new(listen, upstream)
            }
        }
        "fastcgi-to-http" => {
            let (addr, responder) = spawn_app(Behavior::Ok)?;
            fastcgi(listen, dir, addr.to_string(), vec![responder], None)
        }
        "tls-verify" => tls_verify(listen, dir.path)?,
        "php-fpm-killed" => {
            let (upstream, fpm) = php_fpm(dir, Some(1))?;
            Setup {
                traffic: Traffic {
                    gets: 1,
                    ..Traffic::default()
                },
                ..fastcgi(listen, dir, upstream, Vec::new(), Some(fpm))
            }
        }
        "read-timeout" => read_timeout(listen)?,
        // One request: its access-log line is the whole evidence, whatever nginx timed.
        "upstream-502" => {
            let mut setup = Setup {
                upstream_log: true,
                ..app(listen, Behavior::Status502)?
            };
            setup.traffic.gets = 1;
            setup
        }
        "keepalive-race" => keepalive_race(listen)?,
        "wrong-port" => {
            let (_, fpm) = php_fpm(dir, None)?;
            let upstream = format!("127.0.0.1:{}", free_port()?);
            fastcgi(listen, dir, upstream, Vec::new(), Some(fpm))
        }
        "wrong-interface" => listening_elsewhere(listen, OTHER_LOOPBACK.into())?,
        "dns-nxdomain" => dns_nxdomain(listen)?,
        "no-resolver" => {
            let upstream = format!("{APP_NAME}:{}", free_port()?);
            Setup {
                location: config::proxy(&format!("http://{upstream}$request_uri")),
                ..Setup::new(listen, upstream)
            }
        }
        "not-reloaded" => not_reloaded(listen, false)?,
        "failed-reload" => not_reloaded(listen, true)?,
        "group-one-dead" => group_one_dead(listen)?,
        "stale-dns" => stale_dns(listen, dir.path)?,
        other => return Err(LabError::UnknownScenario(other.to_owned())),
    };
    Ok(setup)
}

/// An app with `behavior` on 127.0.0.1 and its address.
fn spawn_app(behavior: Behavior) -> Result<(SocketAddr, Responder), LabError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| LabError::io("bind 127.0.0.1:0 for the upstream", e))?;
    let addr = local_addr(&listener)?;
    Ok((addr, spawn(Listener::Tcp(listener), behavior)?))
}

/// An app with `behavior` on 127.0.0.1 and nginx proxying to it over plain HTTP.
fn app(listen: SocketAddr, behavior: Behavior) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(behavior)?;
    let mut setup = Setup::new(listen, addr.to_string());
    setup.responders.push(responder);
    Ok(setup)
}

/// An app with `behavior` on 127.0.0.1 and nginx proxying to it with `https://`.
fn https_to(listen: SocketAddr, behavior: Behavior) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(behavior)?;
    let mut setup = Setup::proxy(listen, "https", addr.to_string());
    setup.responders.push(responder);
    Ok(setup)
}

/// A TLS app with a self-signed certificate; nginx verifies it against an unrelated CA.
fn tls_verify(listen: SocketAddr, dir: &Path) -> Result<Setup, LabError> {
    let ca = tls::unrelated_ca(dir)?;
    let mut setup = https_to(listen, Behavior::Tls(tls::upstream_server(dir)?))?;
    setup.location.extend([
        "proxy_ssl_verify on".to_owned(),
        format!("proxy_ssl_trusted_certificate \"{}\"", ca.display()),
    ]);
    Ok(setup)
}

/// A real PHP-FPM pool on 127.0.0.1 (killing requests after `terminate_after_secs`, if set).
fn php_fpm(
    dir: LabDir<'_>,
    terminate_after_secs: Option<u32>,
) -> Result<(String, PhpFpm), LabError> {
    let spec = PoolSpec {
        port: free_port()?,
        user: dir.user.map(str::to_owned),
        terminate_after_secs,
    };
    let fpm = PhpFpm::start(dir.path, dir.text, &spec)?;
    Ok((format!("127.0.0.1:{}", spec.port), fpm))
}

/// nginx passes requests with FastCGI to `upstream`, served by `responders` or `php_fpm`.
fn fastcgi(
    listen: SocketAddr,
    dir: LabDir<'_>,
    upstream: String,
    responders: Vec<Responder>,
    php_fpm: Option<PhpFpm>,
) -> Setup {
    let script = format!("{}/{}", dir.text, phpfpm::SCRIPT);
    Setup {
        location: config::fastcgi(&upstream, &script),
        responders,
        php_fpm,
        ..Setup::new(listen, upstream)
    }
}

/// An app that never answers, and a 1 s `proxy_read_timeout`.
fn read_timeout(listen: SocketAddr) -> Result<Setup, LabError> {
    let mut setup = app(listen, Behavior::Silent)?;
    let target = format!(
        "http://{}",
        setup.expected_upstream.as_deref().unwrap_or_default()
    );
    setup.location = config::proxy_with_read_timeout(&target, "1s");
    setup.traffic.gets = 1;
    Ok(setup)
}

/// nginx keeps idle connections to the app (`keepalive 8`); the app closes a connection as
/// soon as nginx reuses it. A POST at the end is not retried, so it gets a real 502.
fn keepalive_race(listen: SocketAddr) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(Behavior::KeepAliveRace)?;
    Ok(Setup {
        location: vec![
            "proxy_pass \"http://backend\"".to_owned(),
            "proxy_http_version 1.1".to_owned(),
            "proxy_set_header Connection \"\"".to_owned(),
            "proxy_read_timeout 30s".to_owned(),
        ],
        group: vec![addr.to_string()],
        group_extra: vec!["keepalive 8".to_owned()],
        responders: vec![responder],
        traffic: Traffic {
            gets: DEFAULT_GETS,
            gap: RACE_GAP,
            post: true,
        },
        ..Setup::new(listen, addr.to_string())
    })
}

/// The app listens on `app_ip:P` (`[::1]`, or `127.0.0.2`); nginx connects to `127.0.0.1:P`,
/// where nothing listens.
fn listening_elsewhere(listen: SocketAddr, app_ip: IpAddr) -> Result<Setup, LabError> {
    let (app, port) = listener_with_closed_twin(app_ip, Ipv4Addr::LOCALHOST.into())?;
    let mut setup = Setup::new(listen, format!("127.0.0.1:{port}"));
    setup
        .responders
        .push(spawn(Listener::Tcp(app), Behavior::Ok)?);
    Ok(setup)
}

/// A listener on `ip` and a free port P such that nothing listens on `closed:P` either.
fn listener_with_closed_twin(ip: IpAddr, closed: IpAddr) -> Result<(TcpListener, u16), LabError> {
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

/// A DNS responder on 127.0.0.1 that knows `app.lab.fix502.test` but not the name nginx
/// proxies to (per request, through `resolver`), so every lookup ends in NXDOMAIN.
fn dns_nxdomain(listen: SocketAddr) -> Result<Setup, LabError> {
    let dns = DnsResponder::start(Ipv4Addr::LOCALHOST.into())
        .map_err(|e| LabError::io("start the lab DNS responder on 127.0.0.1", e))?;
    dns.set(APP_NAME, &[Ipv4Addr::LOCALHOST.into()]);
    let upstream = format!("{MISSING_NAME}:{}", free_port()?);
    let mut location = config::proxy(&format!("http://{upstream}$request_uri"));
    location.splice(
        1..1,
        [
            format!("resolver {} valid=1s ipv6=off", dns.addr()),
            "resolver_timeout 2s".to_owned(),
        ],
    );
    Ok(Setup {
        location,
        dns: Some(dns),
        ..Setup::new(listen, upstream)
    })
}

/// The app runs on 127.0.0.1:Q but nginx proxies to 127.0.0.1:P, where nothing listens; once
/// nginx logged the refusals, `conf/app.conf` is fixed to proxy to Q without a reload, or
/// (`with_typo`) fixed with a typo (`proxy_read_timeout 30x`) and reloaded, which fails.
fn not_reloaded(listen: SocketAddr, with_typo: bool) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(Behavior::Ok)?;
    let mut setup = Setup::new(listen, format!("127.0.0.1:{}", free_port()?));
    setup.responders.push(responder);
    let target = format!("http://{addr}");
    setup.edit = Some(if with_typo {
        ConfigEdit::RewriteAndReload(config::proxy_with_read_timeout(&target, "30x"))
    } else {
        ConfigEdit::Rewrite(config::proxy(&target))
    });
    if with_typo {
        setup.error_log_level = NOTICE_LEVEL;
    }
    Ok(setup)
}

/// `upstream backend` with a working app and a server where nothing listens: nginx retries
/// the refused request on the working one, so clients get 200.
fn group_one_dead(listen: SocketAddr) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(Behavior::Ok)?;
    let dead = format!("127.0.0.1:{}", free_port()?);
    Ok(Setup {
        location: config::proxy("http://backend"),
        group: vec![addr.to_string(), dead.clone()],
        responders: vec![responder],
        ..Setup::new(listen, dead)
    })
}

/// nginx (in its own mount namespace) resolves `app.lab.fix502.test` to 127.0.0.2 from its
/// own hosts file at start; the app listens on 127.0.0.3:P, where the name points once the lab
/// rewrites the file.
fn stale_dns(listen: SocketAddr, dir: &Path) -> Result<Setup, LabError> {
    let (app, port) = listener_with_closed_twin(NEW_APP_IP.into(), OLD_APP_IP.into())?;
    let path = dir.join(HOSTS_FILE);
    fs::write(&path, config::hosts_file(APP_NAME, OLD_APP_IP.into()))
        .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o644)))
        .map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
    let mut setup = Setup::new(listen, format!("{OLD_APP_IP}:{port}"));
    setup.location = config::proxy(&format!("http://{APP_NAME}:{port}"));
    setup.hosts = Some(NamespaceHosts {
        path,
        after_start: config::hosts_file(APP_NAME, NEW_APP_IP.into()),
    });
    setup
        .responders
        .push(spawn(Listener::Tcp(app), Behavior::Ok)?);
    Ok(setup)
}

/// A responder on `run/app.sock`, owned by the current user (root) with mode 0600.
fn unix_socket_permission(listen: SocketAddr, dir: &Path) -> Result<Setup, LabError> {
    let upstream = unix_upstream(dir)?;
    let path = dir.join("run/app.sock");
    let listener = UnixListener::bind(&path)
        .map_err(|e| LabError::io(format!("bind unix socket {}", path.display()), e))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .map_err(|e| LabError::io(format!("chmod 0600 {}", path.display()), e))?;
    let mut setup = Setup::new(listen, upstream);
    setup
        .responders
        .push(spawn(Listener::Unix(listener), Behavior::Ok)?);
    Ok(setup)
}

/// `upstream backend` with two servers where nothing listens, the lower port first (so that
/// reports list them in the order of the config).
fn no_live_upstreams(listen: SocketAddr) -> Result<Setup, LabError> {
    let mut ports = [free_port()?, free_port()?];
    ports.sort_unstable();
    let group = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let first = format!("127.0.0.1:{}", ports[0]);
    Ok(Setup {
        location: config::proxy("http://backend"),
        group,
        ..Setup::new(listen, first)
    })
}

/// `unix:<dir>/run/app.sock`, as nginx writes it; fails if the path is too long for a socket.
fn unix_upstream(dir: &Path) -> Result<String, LabError> {
    let path = dir.join("run/app.sock");
    let text = path.to_string_lossy();
    if text.len() > MAX_UNIX_PATH {
        return Err(LabError::Unsupported(format!(
            "unix socket path {text} is longer than {MAX_UNIX_PATH} bytes; set TMPDIR to a short path"
        )));
    }
    Ok(format!("unix:{text}"))
}

/// A loopback port that was free a moment ago (bound to port 0, then released).
fn free_port() -> Result<u16, LabError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| LabError::io("bind 127.0.0.1:0 to pick a port", e))?;
    Ok(local_addr(&listener)?.port())
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, LabError> {
    listener
        .local_addr()
        .map_err(|e| LabError::io("read a listener's address", e))
}

fn spawn(listener: Listener, behavior: Behavior) -> Result<Responder, LabError> {
    Responder::spawn(listener, behavior)
        .map_err(|e| LabError::io("start the lab upstream thread", e))
}
