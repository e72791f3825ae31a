//! What each scenario builds before nginx starts: ports, upstream apps (responder threads, a
//! TLS app, a real PHP-FPM pool), the `location /` directives and the traffic to send.
//!
//! Ports are allocated by binding port 0 on loopback and reading the port back; a port that
//! must stay closed is released again right away.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use crate::LabError;
use crate::config;
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
    /// Whether `conf/app.conf` is broken after nginx started (`config-invalid`).
    pub break_config: bool,
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
            break_config: false,
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
        "wrong-address" => wrong_address(listen)?,
        "unix-socket-missing" => Setup::new(listen, unix_upstream(dir.path)?),
        "unix-socket-permission" => unix_socket_permission(listen, dir.path)?,
        "no-live-upstreams" => no_live_upstreams(listen)?,
        "nginx-not-running" => Setup {
            start_nginx: false,
            ..app(listen, Behavior::Ok)?
        },
        "config-invalid" => Setup {
            break_config: true,
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
        "upstream-502" => app(listen, Behavior::Status502)?,
        "keepalive-race" => keepalive_race(listen)?,
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

/// The app listens on `[::1]:P`; nginx connects to `127.0.0.1:P`, where nothing listens.
fn wrong_address(listen: SocketAddr) -> Result<Setup, LabError> {
    for _ in 0..PORT_ATTEMPTS {
        let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).map_err(|e| {
            LabError::Unsupported(format!("IPv6 loopback [::1] is not usable: {e}"))
        })?;
        let port = local_addr(&v6)?.port();
        // The same port must be closed on 127.0.0.1; binding it proves that, dropping frees it.
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        let mut setup = Setup::new(listen, format!("127.0.0.1:{port}"));
        setup
            .responders
            .push(spawn(Listener::Tcp(v6), Behavior::Ok)?);
        return Ok(setup);
    }
    Err(LabError::Unsupported(
        "found no port that is free on both 127.0.0.1 and [::1]".to_owned(),
    ))
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

/// `upstream backend` with two servers where nothing listens.
fn no_live_upstreams(listen: SocketAddr) -> Result<Setup, LabError> {
    let group = vec![
        format!("127.0.0.1:{}", free_port()?),
        format!("127.0.0.1:{}", free_port()?),
    ];
    let first = group.first().cloned().unwrap_or_default();
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
