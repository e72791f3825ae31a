//! What each scenario builds before nginx starts: ports, upstream responders, the proxy target.
//!
//! Ports are allocated by binding port 0 on loopback and reading the port back; a port that
//! must stay closed is released again right away.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::LabError;
use crate::upstream::{Listener, Responder};

/// Longest unix socket path Linux accepts (`sun_path` is 108 bytes with the NUL).
const MAX_UNIX_PATH: usize = 107;
/// Attempts to find a port that is free on both loopback families.
const PORT_ATTEMPTS: usize = 8;

/// The scenario-specific part of a lab.
#[derive(Debug)]
pub(crate) struct Setup {
    /// Where the lab's nginx server listens.
    pub listen: SocketAddr,
    /// The `proxy_pass` target.
    pub proxy_pass: String,
    /// Servers of the `upstream backend` group, if the scenario uses one.
    pub group: Vec<String>,
    /// The upstream as nginx writes it in the error log.
    pub expected_upstream: Option<String>,
    /// Upstream responders serving for the scenario.
    pub responders: Vec<Responder>,
    /// Whether nginx is started (false only for `nginx-not-running`).
    pub start_nginx: bool,
    /// Whether `conf/app.conf` is broken after nginx started (`config-invalid`).
    pub break_config: bool,
}

impl Setup {
    fn new(listen: SocketAddr, upstream: String) -> Self {
        Self {
            listen,
            proxy_pass: format!("http://{upstream}"),
            group: Vec::new(),
            expected_upstream: Some(upstream),
            responders: Vec::new(),
            start_nginx: true,
            break_config: false,
        }
    }
}

/// Builds the setup of scenario `name` in lab dir `dir` (the caller checked the name exists).
pub(crate) fn build(name: &str, dir: &Path) -> Result<Setup, LabError> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let setup = match name {
        "healthy" => healthy(listen)?,
        "refused" => Setup::new(listen, format!("127.0.0.1:{}", free_port()?)),
        "wrong-address" => wrong_address(listen)?,
        "unix-socket-missing" => Setup::new(listen, unix_upstream(dir)?),
        "unix-socket-permission" => unix_socket_permission(listen, dir)?,
        "no-live-upstreams" => no_live_upstreams(listen)?,
        "nginx-not-running" => Setup {
            start_nginx: false,
            ..healthy(listen)?
        },
        "config-invalid" => Setup {
            break_config: true,
            ..healthy(listen)?
        },
        other => return Err(LabError::UnknownScenario(other.to_owned())),
    };
    Ok(setup)
}

/// A responder on 127.0.0.1 and nginx proxying to it.
fn healthy(listen: SocketAddr) -> Result<Setup, LabError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| LabError::io("bind 127.0.0.1:0 for the upstream", e))?;
    let addr = local_addr(&listener)?;
    let mut setup = Setup::new(listen, addr.to_string());
    setup.responders.push(spawn(Listener::Tcp(listener))?);
    Ok(setup)
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
        setup.responders.push(spawn(Listener::Tcp(v6))?);
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
    setup.responders.push(spawn(Listener::Unix(listener))?);
    Ok(setup)
}

/// `upstream backend` with two servers where nothing listens.
fn no_live_upstreams(listen: SocketAddr) -> Result<Setup, LabError> {
    let group = vec![
        format!("127.0.0.1:{}", free_port()?),
        format!("127.0.0.1:{}", free_port()?),
    ];
    Ok(Setup {
        listen,
        proxy_pass: "http://backend".to_owned(),
        expected_upstream: group.first().cloned(),
        group,
        responders: Vec::new(),
        start_nginx: true,
        break_config: false,
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

fn spawn(listener: Listener) -> Result<Responder, LabError> {
    Responder::spawn(listener).map_err(|e| LabError::io("start the lab upstream thread", e))
}
