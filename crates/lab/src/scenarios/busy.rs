//! Scenarios of a busy host: several sites and app servers on one nginx, where one member
//! fails and the others must not be blamed: an app that is down next to healthy ones with
//! overlapping names and a decoy listener named like it (and the same host with nothing
//! down), a saturated PHP-FPM pool, a pool that drops nginx's address, uWSGI speaking HTTP
//! where nginx speaks uwsgi, and the stale socket of a killed PHP-FPM next to another site's
//! pool.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use super::connecting::REFUSED;
use crate::LabError;
use crate::child::{Endpoint, LabChild};
use crate::config::{self, Group, Site};
use crate::phpfpm::{OK_SCRIPT, PhpFpm, PoolListen, PoolSpec, SCRIPT, log_tail};
use crate::scenario::{Expectation, ScenarioInfo};
use crate::setup::{
    LabDir, Setup, Traffic, free_port, free_ports, php_fpm_site, spawn, unix_upstream_named,
};
use crate::upstream::{Behavior, Listener};

/// The end of nginx's line for every failure while it waits for the response header.
const HEADER_READ: &str = "while reading response header from upstream";
/// What a saturated PHP-FPM pool writes to its own log.
const MAX_CHILDREN: &str = "server reached pm.max_children setting (1)";
/// What PHP-FPM writes when a client's address is not in `listen.allowed_clients`.
const DISALLOWED: &str = "Connection disallowed: IP address '127.0.0.1' has been dropped.";
/// The one address the `php-fpm-allowed-clients` pool accepts.
const ALLOWED_CLIENT: &str = "127.0.0.2";
/// The busy host's healthy shop site and its upstream group.
const SHOP: (&str, &str) = ("shop.lab.fix502.test", "shop");
/// The shop's API site, whose name overlaps the shop's, and its upstream group.
const SHOP_API: (&str, &str) = ("api.shop.lab.fix502.test", "shop_api");
/// The group of the lab's own site (the shop's admin app), which is down in one variant.
const SHOP_ADMIN: &str = "shop_admin";
/// The directory the decoy serves, relative to the lab dir: its command line names the
/// admin app's words.
const DECOY_DIR: &str = "www/shop-admin";
/// Another site with a PHP-FPM pool of its own on the `php-fpm-stale-socket` host.
const BLOG: &str = "blog.lab.fix502.test";
/// Concurrent requests to the saturated pool: one for its only worker, two for its backlog
/// of one (Linux queues one more than the backlog), and three that find the queue full.
const SATURATING_GETS: usize = 6;

pub(super) static SCENARIOS: [ScenarioInfo; 7] = [
    ScenarioInfo::new(
        "busy-host-one-down",
        "three sites' apps on neighbouring ports; the admin app is down, a decoy is named like it",
        Expectation::problem("upstream-refused", &[]),
        REFUSED,
        Some(502),
        |listen, dir| busy_host(listen, dir, true),
    ),
    ScenarioInfo::new(
        "busy-host-healthy",
        "the busy host with every app up, and the decoy named like one of them",
        Expectation::HEALTHY,
        None,
        Some(200),
        |listen, dir| busy_host(listen, dir, false),
    ),
    ScenarioInfo::new(
        "php-fpm-saturated",
        "a PHP-FPM pool with one worker and listen.backlog 1 gets six slow requests at once",
        Expectation::problem("upstream-backlog-full", &[]),
        Some("failed (11: "),
        Some(502),
        saturated,
    )
    .php_fpm(),
    ScenarioInfo::new(
        "php-fpm-allowed-clients",
        "the PHP-FPM pool accepts only 127.0.0.2 (listen.allowed_clients); nginx is 127.0.0.1",
        Expectation::problem("upstream-closed-early", &[]),
        // php-fpm accepts and closes at once: nginx mostly logs a reset (104: its request was
        // unread), sometimes a premature close, depending on which came first.
        Some(HEADER_READ),
        Some(502),
        allowed_clients,
    )
    .php_fpm(),
    ScenarioInfo::new(
        "php-fpm-socket-permission",
        "the PHP-FPM pool's socket is root-owned mode 0600 (listen.owner/listen.mode); workers run as nobody",
        Expectation::problem("unix-socket-permission", &[]),
        Some("failed (13: "),
        Some(502),
        socket_permission,
    )
    .php_fpm()
    .root(),
    ScenarioInfo::new(
        "uwsgi-http-socket",
        "uwsgi_pass to uWSGI started with --http-socket: it waits for an HTTP head (504)",
        Expectation::problem("upstream-protocol-mismatch", &[]),
        Some("upstream timed out (110: "),
        Some(504),
        uwsgi_http_socket,
    ),
    ScenarioInfo::new(
        "php-fpm-stale-socket",
        "PHP-FPM was killed (SIGKILL), its socket file stays; another site's pool and a spare one run",
        Expectation::problem("upstream-refused", &[]),
        REFUSED,
        Some(502),
        stale_socket,
    )
    .php_fpm()
    .alone(),
];

/// Four neighbouring ports: the shop's app (P), the shop API's (P+1), the admin app nginx's
/// own site proxies to (P+2: nothing listens there when `down`), and a decoy that no nginx
/// uses, whose command line names the admin app (P+3, a `python3 -m http.server`). Each app
/// is an upstream group named after it; the shop sites are server blocks of their own.
fn busy_host(listen: SocketAddr, dir: LabDir<'_>, down: bool) -> Result<Setup, LabError> {
    let ports = free_ports(4)?;
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let serving = if down { 2 } else { 3 };
    let mut responders = Vec::new();
    for port in ports.iter().take(serving) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, *port))
            .map_err(|e| LabError::io(format!("bind 127.0.0.1:{port} for an app"), e))?;
        responders.push(spawn(Listener::Tcp(listener), Behavior::Ok)?);
    }
    let decoy = decoy(dir.path, ports[3])?;
    let group = |name: &str, addr: &String| Group {
        name: name.to_owned(),
        servers: vec![addr.clone()],
    };
    let site = |(server_name, group): (&str, &str)| Site {
        server_name: server_name.to_owned(),
        location: config::proxy(&format!("http://{group}")),
    };
    Ok(Setup {
        location: config::proxy(&format!("http://{SHOP_ADMIN}")),
        groups: vec![
            group(SHOP.1, &addrs[0]),
            group(SHOP_API.1, &addrs[1]),
            group(SHOP_ADMIN, &addrs[2]),
        ],
        sites: vec![site(SHOP), site(SHOP_API)],
        healthy: addrs.iter().take(serving).cloned().collect(),
        responders,
        children: vec![decoy],
        ..Setup::new(listen, addrs[2].clone())
    })
}

/// `python3 -m http.server` on 127.0.0.1:`port`, serving `DECOY_DIR`.
fn decoy(dir: &Path, port: u16) -> Result<LabChild, LabError> {
    let python = ["/usr/bin/python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| which::which("python3").ok())
        .ok_or_else(|| {
            LabError::Unsupported(
                "python3 (the busy host's decoy listener) is not installed".into(),
            )
        })?;
    let served = dir.join(DECOY_DIR);
    fs::create_dir_all(&served)
        .map_err(|e| LabError::io(format!("create {}", served.display()), e))?;
    let log = dir.join("logs/decoy.log");
    let mut child = LabChild::spawn(
        Command::new(python)
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&served)
            .arg(port.to_string())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?),
        "python3 -m http.server",
        Signal::SIGTERM,
    )?;
    // Its own words that it bound the port: a connect could reach another test's listener
    // that got the port in between.
    let bound = format!("Serving HTTP on 127.0.0.1 port {port} ");
    let ready = || fs::read_to_string(&log).is_ok_and(|t| t.contains(&bound));
    if child.wait_until(&format!("listen on port {port}"), ready, || log_tail(&log))? {
        Ok(child)
    } else {
        Err(LabError::Unsupported(format!(
            "the decoy listener exited: {}",
            log_tail(&log)
        )))
    }
}

/// A PHP-FPM pool on a unix socket with one worker (`pm = dynamic`, which is the process
/// manager that warns when it reaches `pm.max_children`) and `listen.backlog = 1`; the lab
/// sends six requests at once to the script that sleeps.
fn saturated(listen: SocketAddr, dir: LabDir<'_>) -> Result<Setup, LabError> {
    let upstream = unix_upstream_named(dir.path, "php-fpm-shop")?;
    let spec = PoolSpec {
        listen: PoolListen::Unix(socket_path(&upstream)),
        pm: [
            "pm = dynamic",
            "pm.max_children = 1",
            "pm.start_servers = 1",
            "pm.min_spare_servers = 1",
            "pm.max_spare_servers = 1",
        ]
        .map(str::to_owned)
        .to_vec(),
        extra: vec!["listen.backlog = 1".to_owned()],
        ..PoolSpec::tcp(0, dir.user)
    };
    let fpm = PhpFpm::start(dir.path, dir.text, &spec)?;
    let log = fpm.log().to_path_buf();
    Ok(Setup {
        traffic: Traffic {
            gets: SATURATING_GETS,
            concurrent: true,
            ..Traffic::default()
        },
        app_marker: Some((log, MAX_CHILDREN)),
        ..php_fpm_site(listen, dir, upstream, fpm, SCRIPT)
    })
}

/// A PHP-FPM pool on 127.0.0.1 that accepts connections only from 127.0.0.2 and writes what
/// its workers say (the refusal) to its log.
fn allowed_clients(listen: SocketAddr, dir: LabDir<'_>) -> Result<Setup, LabError> {
    let port = free_port()?;
    let spec = PoolSpec {
        extra: vec![
            format!("listen.allowed_clients = {ALLOWED_CLIENT}"),
            "catch_workers_output = yes".to_owned(),
        ],
        ..PoolSpec::tcp(port, dir.user)
    };
    let fpm = PhpFpm::start(dir.path, dir.text, &spec)?;
    let log = fpm.log().to_path_buf();
    Ok(Setup {
        traffic: Traffic {
            gets: 1,
            ..Traffic::default()
        },
        app_marker: Some((log, DISALLOWED)),
        ..php_fpm_site(listen, dir, format!("127.0.0.1:{port}"), fpm, SCRIPT)
    })
}

/// uWSGI (no language plugin: its internal router answers 200) on `--http-socket
/// 127.0.0.1:P`; nginx passes to it with `uwsgi_pass` and a 1 s `uwsgi_read_timeout`.
fn uwsgi_http_socket(listen: SocketAddr, dir: LabDir<'_>) -> Result<Setup, LabError> {
    let binary = ["uwsgi", "uwsgi-core"]
        .iter()
        .find_map(|name| which::which(name).ok())
        .ok_or_else(|| {
            LabError::Unsupported("uWSGI is not installed (apt-get install uwsgi-core)".to_owned())
        })?;
    let port = free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let log = dir.path.join("logs/uwsgi.log");
    let mut child = LabChild::spawn(
        Command::new(binary)
            .arg("--http-socket")
            .arg(addr.to_string())
            .args(["--route-run", "return:200", "--master", "--processes", "1"])
            .arg("--logto")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "uwsgi",
        // SIGTERM makes uWSGI reload; SIGINT ends it.
        Signal::SIGINT,
    )?;
    if !child.wait_ready(&Endpoint::Tcp(addr), || log_tail(&log))? {
        return Err(LabError::Unsupported(format!(
            "uWSGI exited at start: {}",
            log_tail(&log)
        )));
    }
    Ok(Setup {
        location: vec![
            format!("uwsgi_pass {addr}"),
            "uwsgi_read_timeout 1s".to_owned(),
        ],
        children: vec![child],
        traffic: Traffic {
            gets: 1,
            ..Traffic::default()
        },
        ..Setup::new(listen, addr.to_string())
    })
}

/// A PHP-FPM pool on `run/php-fpm-shop.sock`, killed with SIGKILL (master and workers) before
/// nginx starts: the socket file stays, and connecting to it is refused. The blog site's pool
/// runs on `run/php-fpm-blog.sock` in the same directory, and a spare pool that no site uses
/// listens on a loopback port: the only unused PHP-FPM on the host, still no proof that the
/// dead pool moved there.
fn stale_socket(listen: SocketAddr, dir: LabDir<'_>) -> Result<Setup, LabError> {
    let upstream = unix_upstream_named(dir.path, "php-fpm-shop")?;
    let mut fpm = PhpFpm::start(
        dir.path,
        dir.text,
        &PoolSpec {
            listen: PoolListen::Unix(socket_path(&upstream)),
            ..PoolSpec::tcp(0, dir.user)
        },
    )?;
    fpm.kill()?;
    let blog_upstream = unix_upstream_named(dir.path, "php-fpm-blog")?;
    let blog = PhpFpm::start(
        dir.path,
        dir.text,
        &PoolSpec {
            name: "blog",
            listen: PoolListen::Unix(socket_path(&blog_upstream)),
            ..PoolSpec::tcp(0, dir.user)
        },
    )?;
    let spare = PhpFpm::start(
        dir.path,
        dir.text,
        &PoolSpec {
            name: "spare",
            ..PoolSpec::tcp(free_port()?, dir.user)
        },
    )?;
    Ok(Setup {
        sites: vec![Site {
            server_name: BLOG.to_owned(),
            location: config::fastcgi(&blog_upstream, &format!("{}/{OK_SCRIPT}", dir.text)),
        }],
        healthy: vec![blog_upstream],
        more_php_fpm: vec![blog, spare],
        ..php_fpm_site(listen, dir, upstream, fpm, SCRIPT)
    })
}

/// A PHP-FPM pool on a unix socket whose `listen.owner`, `listen.group` and `listen.mode`
/// (root, root, 0600: the last lines of the pool win) keep nginx's workers out.
fn socket_permission(listen: SocketAddr, dir: LabDir<'_>) -> Result<Setup, LabError> {
    let upstream = unix_upstream_named(dir.path, "php-fpm")?;
    let fpm = PhpFpm::start(
        dir.path,
        dir.text,
        &PoolSpec {
            listen: PoolListen::Unix(socket_path(&upstream)),
            extra: vec![
                "listen.owner = root".to_owned(),
                "listen.group = root".to_owned(),
                "listen.mode = 0600".to_owned(),
            ],
            ..PoolSpec::tcp(0, dir.user)
        },
    )?;
    Ok(php_fpm_site(listen, dir, upstream, fpm, OK_SCRIPT))
}

/// The path of a `unix:PATH` upstream.
fn socket_path(upstream: &str) -> PathBuf {
    PathBuf::from(upstream.strip_prefix("unix:").unwrap_or(upstream))
}

/// `log` opened for appending, as a child's stderr.
fn log_file(log: &Path) -> Result<Stdio, LabError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map(Stdio::from)
        .map_err(|e| LabError::io(format!("open {}", log.display()), e))
}
