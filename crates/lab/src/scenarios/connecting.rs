//! Scenarios of connecting: the healthy baseline, nothing listening, the app at another
//! address, unix sockets missing or forbidden, a group with every server down, nginx not
//! running, and a config that `nginx -t` rejects.

use std::fs;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::LabError;
use crate::config;
use crate::scenario::{Expectation, ScenarioInfo};
use crate::setup::{ConfigEdit, Setup, app, free_port, listening_elsewhere, spawn, unix_upstream};
use crate::upstream::{Behavior, Listener};

/// nginx's line when nothing listens (errno 111, matched by number).
pub(super) const REFUSED: Option<&str> = Some("failed (111: ");

pub(super) static SCENARIOS: [ScenarioInfo; 8] = [
    ScenarioInfo::new(
        "healthy",
        "nginx proxies to a working upstream on 127.0.0.1",
        Expectation::HEALTHY,
        None,
        Some(200),
        |listen, _| app(listen, Behavior::Ok),
    ),
    ScenarioInfo::new(
        "refused",
        "nothing listens at the upstream address 127.0.0.1:PORT",
        Expectation::problem("upstream-refused", &[]),
        REFUSED,
        Some(502),
        |listen, _| Ok(Setup::new(listen, format!("127.0.0.1:{}", free_port()?))),
    ),
    ScenarioInfo::new(
        "wrong-address",
        "the app listens on [::1]:PORT but nginx connects to 127.0.0.1:PORT",
        Expectation::problem("upstream-wrong-address", &[]),
        REFUSED,
        Some(502),
        |listen, _| listening_elsewhere(listen, Ipv6Addr::LOCALHOST.into()),
    ),
    ScenarioInfo::new(
        "unix-socket-missing",
        "proxy_pass names a unix socket file that does not exist",
        Expectation::problem("unix-socket-missing", &[]),
        Some("failed (2: "),
        Some(502),
        |listen, dir| Ok(Setup::new(listen, unix_upstream(dir.path)?)),
    ),
    ScenarioInfo::new(
        "unix-socket-permission",
        "the app's unix socket is root-owned mode 0600; workers run as nobody",
        Expectation::problem("unix-socket-permission", &[]),
        Some("failed (13: "),
        Some(502),
        |listen, dir| unix_socket_permission(listen, dir.path),
    )
    .root(),
    ScenarioInfo::new(
        "no-live-upstreams",
        "both servers of an upstream group refuse, so nginx marks the group dead",
        Expectation::problem("upstream-refused", &["no-live-upstreams"]),
        Some("no live upstreams"),
        Some(502),
        |listen, _| no_live_upstreams(listen),
    ),
    ScenarioInfo::new(
        "nginx-not-running",
        "a valid config with a working upstream, but nginx is not started",
        Expectation::nginx_problem("nginx-not-running", &[]),
        None,
        None,
        |listen, _| {
            Ok(Setup {
                start_nginx: false,
                ..app(listen, Behavior::Ok)?
            })
        },
    ),
    ScenarioInfo::new(
        "config-invalid",
        "nginx runs, but the config on disk was edited and `nginx -t` now fails",
        Expectation::nginx_problem("config-invalid", &[]),
        None,
        Some(200),
        |listen, _| {
            Ok(Setup {
                edit: Some(ConfigEdit::DropSemicolon),
                ..app(listen, Behavior::Ok)?
            })
        },
    ),
];

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
