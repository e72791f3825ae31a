//! Scenarios of the config and the world around nginx: the app on another port or
//! interface, names nginx's resolver cannot resolve, a config changed but not (or not
//! successfully) reloaded, a group with one dead server, and a name that moved after nginx
//! resolved it.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::connecting::REFUSED;
use crate::LabError;
use crate::config::{self, NOTICE_LEVEL};
use crate::dns::DnsResponder;
use crate::phpfpm;
use crate::scenario::{Expectation, ScenarioInfo};
use crate::setup::{
    APP_NAME, ConfigEdit, HOSTS_FILE, MISSING_NAME, NEW_APP_IP, NamespaceHosts, OLD_APP_IP,
    OTHER_LOOPBACK, Setup, free_port, listener_with_closed_twin, listening_elsewhere, php_fpm,
    php_fpm_site, spawn, spawn_app,
};
use crate::upstream::{Behavior, Listener};

pub(super) static SCENARIOS: [ScenarioInfo; 8] = [
    ScenarioInfo::new(
        "wrong-port",
        "the PHP-FPM pool listens on 127.0.0.1:Q, but fastcgi_pass names port P",
        Expectation::problem("upstream-wrong-address", &[]),
        REFUSED,
        Some(502),
        |listen, dir| {
            let (_, fpm) = php_fpm(dir, None)?;
            let upstream = format!("127.0.0.1:{}", free_port()?);
            Ok(php_fpm_site(listen, dir, upstream, fpm, phpfpm::OK_SCRIPT))
        },
    )
    .php_fpm()
    .alone(),
    ScenarioInfo::new(
        "wrong-interface",
        "the app listens on 127.0.0.2:PORT only; nginx connects to 127.0.0.1:PORT",
        Expectation::problem("upstream-wrong-address", &[]),
        REFUSED,
        Some(502),
        |listen, _| listening_elsewhere(listen, OTHER_LOOPBACK.into()),
    ),
    ScenarioInfo::new(
        "dns-nxdomain",
        "proxy_pass names a host that the configured resolver does not know",
        Expectation::problem("upstream-dns", &[]),
        Some("missing.lab.fix502.test could not be resolved (3: "),
        Some(502),
        |listen, _| dns_nxdomain(listen),
    ),
    ScenarioInfo::new(
        "no-resolver",
        "proxy_pass with a variable names a host, but no resolver is configured",
        Expectation::problem("upstream-dns", &[]),
        Some("no resolver defined to resolve app.lab.fix502.test"),
        Some(502),
        |listen, _| {
            let upstream = format!("{APP_NAME}:{}", free_port()?);
            Ok(Setup {
                location: config::proxy(&format!("http://{upstream}$request_uri")),
                ..Setup::new(listen, upstream)
            })
        },
    ),
    ScenarioInfo::new(
        "not-reloaded",
        "the config was fixed to the app's new port, but nginx was not reloaded",
        Expectation::problem("config-not-reloaded", &["upstream-refused"]),
        REFUSED,
        Some(502),
        |listen, _| not_reloaded(listen, false),
    ),
    ScenarioInfo::new(
        "failed-reload",
        "the fix has a typo, so the reload failed and nginx runs the old config",
        Expectation::nginx_problem(
            "config-invalid",
            &["config-not-reloaded", "upstream-refused"],
        ),
        REFUSED,
        Some(502),
        |listen, _| not_reloaded(listen, true),
    ),
    ScenarioInfo::new(
        "group-one-dead",
        "one of two servers in an upstream group refuses; retries hide it (200)",
        Expectation::problem("upstream-refused", &[]),
        REFUSED,
        Some(200),
        |listen, _| group_one_dead(listen),
    ),
    ScenarioInfo::new(
        "stale-dns",
        "nginx resolved the app's name at start; the app moved to a new address",
        Expectation::problem("upstream-stale-dns", &[]),
        REFUSED,
        Some(502),
        |listen, dir| stale_dns(listen, dir.path),
    )
    .root(),
];

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
