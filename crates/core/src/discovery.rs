//! Discovery: which nginx to diagnose. Running masters (from the process table), what the
//! binary was built with (`nginx -V`), and the command-line overrides, joined into one
//! [`Discovery`] that says how each path was found.
//!
//! Only finding things belongs here; judging them is the checks' job.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fix502_probe::docker;
use fix502_probe::namespace::{self, Container, NamespaceIds, NamespaceListeners};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};

use crate::command::{CommandError, run_command};
use crate::options::Options;

/// Extra directories searched for `nginx` after PATH, since `/usr/sbin` is often missing
/// from it.
pub(crate) const SBIN_DIRS: &str = "/usr/sbin:/sbin:/usr/local/sbin:/usr/local/nginx/sbin";

/// A running nginx worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Worker {
    /// Its pid.
    pub pid: u32,
    /// Its user name, when known.
    pub user: Option<String>,
    /// Its uid, when known.
    pub uid: Option<u32>,
    /// Start time, seconds since the epoch.
    pub start_time: u64,
}

/// A running nginx master process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Master {
    /// Its pid.
    pub pid: u32,
    /// Its executable (`/proc/PID/exe`), when readable.
    pub exe: Option<PathBuf>,
    /// The process title, e.g. `nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf`.
    pub title: String,
    /// The `-c` argument as given, if any.
    pub conf_arg: Option<PathBuf>,
    /// The `-p` argument as given, if any.
    pub prefix_arg: Option<PathBuf>,
    /// Its workers.
    pub workers: Vec<Worker>,
    /// Start time, seconds since the epoch.
    pub start_time: u64,
    /// Its network, mount and pid namespaces.
    pub ns: NamespaceIds,
    /// The container its cgroup names, if any.
    pub container: Option<Container>,
    /// Whether it has a network and a mount namespace of its own (other than pid 1's): a
    /// container-like sandbox.
    pub sandboxed: bool,
    /// Whether its network namespace is not the host's (pid 1's).
    pub other_net: bool,
}

impl Master {
    /// Where it runs, in words, when that is not the host's namespaces: `in a docker
    /// container 0123456789ab`, `in a sandbox of its own (network and mount namespaces)`,
    /// `in network namespace net:[4026532712]`.
    pub fn whereabouts(&self) -> Option<String> {
        if let Some(c) = &self.container {
            return Some(match &c.id {
                Some(id) => format!(
                    "in a {} container {}",
                    c.runtime,
                    id.get(..12).unwrap_or(id)
                ),
                None => format!("in a {} container", c.runtime),
            });
        }
        if self.sandboxed {
            return Some("in a sandbox of its own (network and mount namespaces)".to_owned());
        }
        if self.other_net {
            return Some(match self.ns.net {
                Some(net) => format!("in network namespace net:[{net}]"),
                None => "in another network namespace".to_owned(),
            });
        }
        None
    }

    /// Its namespaces as the report writes them.
    pub fn namespaces(&self) -> crate::report::Namespaces {
        crate::report::Namespaces {
            net: self.ns.net,
            mnt: self.ns.mnt,
            pid: self.ns.pid,
            sandboxed: self.sandboxed,
            container: self
                .container
                .as_ref()
                .map(|c| crate::report::ContainerInfo {
                    runtime: c.runtime.clone(),
                    id: c.id.clone(),
                }),
        }
    }

    /// The pids that hold its sockets: the master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.pid)
            .chain(self.workers.iter().map(|w| w.pid))
            .collect()
    }
}

/// What `nginx -V` says about the binary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildInfo {
    /// `1.22.1`.
    pub version: Option<String>,
    /// `--prefix`.
    pub prefix: Option<PathBuf>,
    /// `--conf-path`.
    pub conf_path: Option<PathBuf>,
    /// `--error-log-path`.
    pub error_log_path: Option<String>,
    /// `--http-log-path`.
    pub http_log_path: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--pid-path`.
    pub pid_path: Option<String>,
    /// The `--http-*-temp-path` options given, as `(option, path)`, e.g.
    /// `("--http-proxy-temp-path", "/var/lib/nginx/proxy")`.
    pub http_temp_paths: Vec<(String, String)>,
}

/// The nginx to diagnose, and how each part was found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Discovery {
    /// The nginx binary, if one was found.
    pub binary: Option<PathBuf>,
    /// What the binary was built with.
    pub build: BuildInfo,
    /// The main configuration file.
    pub config: PathBuf,
    /// The prefix, if known.
    pub prefix: Option<PathBuf>,
    /// The master running this configuration, if any.
    pub master: Option<Master>,
    /// Masters running other configurations.
    pub other_masters: Vec<Master>,
    /// fix502's own namespaces, to say when nginx's differ.
    pub own_ns: NamespaceIds,
    /// Key (`config`, `binary`, `prefix`, `master`) to how it was found.
    pub via: BTreeMap<String, String>,
    /// Problems met on the way (e.g. `nginx -V` failed), for the report.
    pub notes: Vec<String>,
}

/// Why discovery could not settle on one nginx.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Several masters run and nothing says which one to diagnose.
    #[error("{} nginx masters are running ({}); choose one with --config or --pid", .0.len(), describe_masters(.0))]
    AmbiguousMasters(Vec<Master>),
    /// `--pid` names a process that is not a running nginx master.
    #[error("--pid {pid}: {why}")]
    NotAMaster {
        /// The pid given.
        pid: u32,
        /// What it is instead, and which masters run.
        why: String,
    },
    /// The configuration named with `--config` (or discovered) cannot be read.
    #[error("cannot read nginx config {path}: {source}")]
    ConfigUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// nginx's processes changed during the run and again while it was checked a second time.
    #[error(
        "nginx changed during the run ({0}) and again while fix502 checked it a second time ({1}); run fix502 again once nginx has settled"
    )]
    Unsettled(String, String),
    /// No nginx binary, no running master and no config at the default place.
    #[error(
        "no nginx found: no running master, no `nginx` binary on PATH or in /usr/sbin, and no {0}; pass --config (and --nginx)"
    )]
    NothingFound(PathBuf),
    /// The bundle given with `--from` cannot be read.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::ReadError),
}

fn describe_masters(masters: &[Master]) -> String {
    masters
        .iter()
        .map(|m| {
            let conf = match &m.conf_arg {
                Some(c) => format!("pid {} -c {}", m.pid, c.display()),
                None => format!("pid {} (default config)", m.pid),
            };
            match m.whereabouts() {
                Some(w) => format!("{conf} {w}"),
                None => conf,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a master's process title into its `-c` and `-p` arguments.
///
/// nginx rewrites its argv to `nginx: master process <original command line>`, joined by spaces.
pub fn parse_master_title(title: &str) -> Option<(Option<PathBuf>, Option<PathBuf>)> {
    let rest = title.trim().strip_prefix("nginx: master process")?;
    let mut conf = None;
    let mut prefix = None;
    let mut words = rest.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "-c" => conf = words.next().map(PathBuf::from),
            "-p" => prefix = words.next().map(PathBuf::from),
            w if w.starts_with("-c") && w.len() > 2 => conf = Some(PathBuf::from(&w[2..])),
            w if w.starts_with("-p") && w.len() > 2 => prefix = Some(PathBuf::from(&w[2..])),
            _ => {}
        }
    }
    Some((conf, prefix))
}

/// Parses the output of `nginx -V` (nginx writes it to stderr).
pub fn parse_build_info(text: &str) -> BuildInfo {
    let mut info = BuildInfo::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("nginx version: ") {
            let v = v.trim();
            info.version = Some(
                v.split_once('/')
                    .map_or(v, |(_, ver)| ver)
                    .split_whitespace()
                    .next()
                    .unwrap_or(v)
                    .to_owned(),
            );
        }
        if let Some(args) = line.strip_prefix("configure arguments:") {
            for word in args.split_whitespace() {
                let Some((key, value)) = word.split_once('=') else {
                    continue;
                };
                let value = value.trim_matches('\'').to_owned();
                match key {
                    "--prefix" => info.prefix = Some(PathBuf::from(value)),
                    "--conf-path" => info.conf_path = Some(PathBuf::from(value)),
                    "--error-log-path" => info.error_log_path = Some(value),
                    "--http-log-path" => info.http_log_path = Some(value),
                    "--user" => info.user = Some(value),
                    "--pid-path" => info.pid_path = Some(value),
                    k if k.starts_with("--http-") && k.ends_with("-temp-path") => {
                        info.http_temp_paths.push((k.to_owned(), value));
                    }
                    _ => {}
                }
            }
        }
    }
    info
}

/// Why `--pid PID` names no master: a worker's master, or the masters that run.
fn not_a_master(pid: u32, masters: &[Master]) -> DiscoveryError {
    let why = if let Some(m) = masters
        .iter()
        .find(|m| m.workers.iter().any(|w| w.pid == pid))
    {
        format!(
            "is a worker of the nginx master pid {}; pass --pid {}",
            m.pid, m.pid
        )
    } else if masters.is_empty() {
        "is not an nginx master process, and no nginx master runs".to_owned()
    } else {
        format!(
            "is not an nginx master process; running: {}",
            describe_masters(masters)
        )
    };
    DiscoveryError::NotAMaster { pid, why }
}

/// Whether a listening address takes a connection to `port` on `local` (any local address
/// when `None`): the same port, on that address or on a wildcard.
fn serves(addr: &SocketAddr, local: Option<IpAddr>, port: u16) -> bool {
    if addr.port() != port {
        return false;
    }
    use fix502_probe::listeners::unmapped;
    match local {
        None => true,
        Some(local) => addr.ip().is_unspecified() || unmapped(addr.ip()) == unmapped(local),
    }
}

/// The masters that serve `port` (on `local`, when the URL's host is an IP address), each
/// judged by the listeners of its own network namespace (`listeners_of` reads them). A
/// master whose open files cannot be read counts only when it is alone in its network
/// namespace (every listener there is then its). When several serve the port, those in
/// `own_net` (fix502's network namespace, where a connection to this host's port lands)
/// are preferred.
pub fn masters_serving(
    masters: &[Master],
    local: Option<IpAddr>,
    port: u16,
    own_net: Option<u64>,
    listeners_of: impl Fn(&Master) -> NamespaceListeners,
) -> Vec<&Master> {
    let alone_in_net = |m: &Master| {
        m.ns.net.is_some() && masters.iter().filter(|o| o.ns.net == m.ns.net).count() == 1
    };
    let serving: Vec<&Master> = masters
        .iter()
        .filter(|m| {
            let found = listeners_of(m);
            (found.held || alone_in_net(m)) && found.addrs.iter().any(|a| serves(a, local, port))
        })
        .collect();
    if serving.len() > 1 {
        let here: Vec<&Master> = serving
            .iter()
            .copied()
            .filter(|m| own_net.is_some() && m.ns.net == own_net)
            .collect();
        if !here.is_empty() {
            return here;
        }
    }
    serving
}

/// A host port forwarded into a container: by a `docker-proxy` process, or by a DNAT rule.
#[derive(Debug, Clone)]
struct Forward {
    /// The container's address and port.
    container: SocketAddr,
    /// What forwards it, in words (`docker-proxy pid 812`, `DNAT rule in chain DOCKER`).
    by: String,
}

/// The forwards of host `port` (on `local`, when the URL names an address): the running
/// `docker-proxy` processes' command lines, else (Docker without its userland proxy) the
/// DNAT rules of `iptables-save -t nat` when it can be run.
async fn forwards_of(local: Option<IpAddr>, port: u16) -> Vec<Forward> {
    let proxies: Vec<Forward> = docker::published_ports()
        .into_iter()
        .filter(|p| serves(&p.host, local, port))
        .map(|p| Forward {
            container: p.container,
            by: format!(
                "docker-proxy{}",
                p.pid.map(|pid| format!(" pid {pid}")).unwrap_or_default()
            ),
        })
        .collect();
    if !proxies.is_empty() {
        return proxies;
    }
    let Ok(program) = which::which("iptables-save") else {
        return Vec::new();
    };
    let Ok(out) = run_command(&program, &["-t", "nat"], Duration::from_secs(2)).await else {
        return Vec::new();
    };
    docker::parse_dnat_rules(&out.stdout)
        .into_iter()
        .filter(|r| r.dport == port && r.proto.as_deref().is_none_or(|p| p == "tcp"))
        .filter(|r| match (&r.destination, local) {
            (Some(d), Some(ip)) => d
                .split('/')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_none_or(|a| a == ip),
            _ => true,
        })
        .map(|r| Forward {
            container: r.to,
            by: format!("a DNAT rule in chain {}", r.chain),
        })
        .collect()
}

/// The master behind a published port (host `port` on `local` forwarded into a container's
/// address and port, see [`forwards_of`]), with what forwards it: the one master whose
/// network namespace has the container's address and serves the container's port there.
async fn behind_published_port(
    masters: &[Master],
    local: Option<IpAddr>,
    port: u16,
) -> Option<(Forward, &Master)> {
    let forwards = forwards_of(local, port).await;
    if forwards.is_empty() {
        return None;
    }
    // Only their addresses matter here, not who listens.
    let namespaces = namespace::network_namespaces_keeping(|_| false);
    let mut found: Vec<(Forward, &Master)> = Vec::new();
    for f in forwards {
        let inside: Vec<Master> = masters
            .iter()
            .filter(|m| {
                namespaces
                    .iter()
                    .any(|ns| Some(ns.inode) == m.ns.net && ns.addrs.contains(&f.container.ip()))
            })
            .cloned()
            .collect();
        let serving = masters_serving(
            &inside,
            Some(f.container.ip()),
            f.container.port(),
            None,
            |m| namespace::listeners_of(&m.pids()),
        );
        if let [m] = serving.as_slice() {
            let pid = m.pid;
            if let Some(m) = masters.iter().find(|m| m.pid == pid)
                && !found.iter().any(|(_, o)| o.pid == pid)
            {
                found.push((f, m));
            }
        }
    }
    (found.len() == 1).then(|| found.remove(0))
}

/// Lists the running nginx masters with their workers.
pub fn find_masters() -> Vec<Master> {
    let Ok(mut sys) = System::new() else {
        return Vec::new();
    };
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing()
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_exe(UpdateKind::OnlyIfNotSet)
            .with_user(UpdateKind::OnlyIfNotSet),
    );
    let users = Users::new_with_refreshed_list().ok();
    let title_of = |cmd: &[std::ffi::OsString]| {
        cmd.iter()
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut masters = Vec::new();
    let host = NamespaceIds::init_or_own();
    for (pid, process) in sys.processes() {
        let title = title_of(process.cmd());
        let Some((conf_arg, prefix_arg)) = parse_master_title(&title) else {
            continue;
        };
        let mut workers: Vec<Worker> = sys
            .processes()
            .iter()
            .filter(|(_, p)| p.parent() == Some(*pid))
            .filter(|(_, p)| title_of(p.cmd()).starts_with("nginx: worker process"))
            .map(|(wpid, p)| {
                let uid = p.user_id().map(|u| **u);
                let user = p
                    .user_id()
                    .and_then(|u| users.as_ref().and_then(|us| us.get_user_by_id(u)))
                    .map(|u| u.name().to_owned());
                Worker {
                    pid: wpid.as_u32(),
                    user,
                    uid,
                    start_time: p.start_time(),
                }
            })
            .collect();
        workers.sort_by_key(|w| w.pid);
        let ns = NamespaceIds::of(&pid.as_u32().to_string());
        masters.push(Master {
            pid: pid.as_u32(),
            ns,
            container: namespace::container_of(pid.as_u32()),
            sandboxed: ns.sandboxed_from(&host),
            other_net: ns.other_net_than(&host),
            exe: process
                .exe()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty()),
            title,
            conf_arg,
            prefix_arg,
            workers,
            start_time: process.start_time(),
        });
    }
    masters.sort_by_key(|m| m.pid);
    masters
}

/// What changed in nginx's processes since `before` was seen: its master exited (or its pid
/// now belongs to another process), or its workers are not the same ones (a reload, or a
/// worker that died and was replaced). `None` when nothing changed.
pub fn changes_since(before: &Master) -> Option<String> {
    let now = find_masters()
        .into_iter()
        .find(|m| m.pid == before.pid && m.start_time.abs_diff(before.start_time) <= 1);
    let Some(now) = now else {
        return Some(format!("nginx's master (pid {}) exited", before.pid));
    };
    let pids = |m: &Master| m.workers.iter().map(|w| w.pid).collect::<Vec<_>>();
    let (old, new) = (pids(before), pids(&now));
    if old == new {
        return None;
    }
    let list = |p: &[u32]| {
        if p.is_empty() {
            "none".to_owned()
        } else {
            p.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    Some(format!(
        "nginx's workers changed (pids {} → {}): it reloaded, or workers died and were replaced",
        list(&old),
        list(&new)
    ))
}

/// The live worker pids of one master, now.
pub fn worker_pids(master: u32) -> Vec<u32> {
    let Ok(mut sys) = System::new() else {
        return Vec::new();
    };
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cmd(UpdateKind::OnlyIfNotSet),
    );
    let mut pids: Vec<u32> = sys
        .processes()
        .iter()
        .filter(|(_, p)| p.parent() == Some(Pid::from_u32(master)))
        .filter(|(_, p)| {
            p.cmd()
                .first()
                .is_some_and(|c| c.to_string_lossy().starts_with("nginx: worker process"))
        })
        .map(|(pid, _)| pid.as_u32())
        .collect();
    pids.sort_unstable();
    pids
}

/// Runs `nginx -V` and parses it.
pub async fn build_info(binary: &Path) -> Result<BuildInfo, CommandError> {
    let out = run_command(binary, &["-V"], Duration::from_secs(10)).await?;
    Ok(parse_build_info(&format!("{}\n{}", out.stdout, out.stderr)))
}

/// Finds `nginx` on PATH and in the usual sbin directories.
pub fn which_nginx() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let search = if path.is_empty() {
        SBIN_DIRS.to_owned()
    } else {
        format!("{path}:{SBIN_DIRS}")
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in("nginx", Some(search), cwd).ok()
}

/// Resolves a path nginx takes relative to a prefix.
pub fn under_prefix(path: &Path, prefix: Option<&Path>) -> PathBuf {
    match prefix {
        Some(prefix) if path.is_relative() => prefix.join(path),
        _ => path.to_path_buf(),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The master running `config`, given what the binary was built with.
pub fn master_running<'a>(
    masters: &'a [Master],
    config: &Path,
    build: &BuildInfo,
) -> Option<&'a Master> {
    masters
        .iter()
        .find(|m| master_config(m, build).is_some_and(|c| same_file(&c, config)))
}

/// The config a master runs, given what its binary was built with.
pub fn master_config(master: &Master, build: &BuildInfo) -> Option<PathBuf> {
    let prefix = master.prefix_arg.clone().or_else(|| build.prefix.clone());
    let conf = master
        .conf_arg
        .clone()
        .or_else(|| build.conf_path.clone())?;
    Some(under_prefix(&conf, prefix.as_deref()))
}

/// Finds the nginx to diagnose, with the defaults of docs/command-line.md.
pub async fn discover(opts: &Options) -> Result<Discovery, DiscoveryError> {
    let mut via = BTreeMap::new();
    let mut notes = Vec::new();
    let masters = find_masters();
    let own_ns = NamespaceIds::own();

    // A master picked before anything else is known: by `--pid`, or, when several run and
    // neither `--pid` nor `--config` says which, by the port of `--url`.
    let picked: Option<(Master, String)> = if let Some(pid) = opts.master_pid {
        match masters.iter().find(|m| m.pid == pid) {
            Some(m) => Some((m.clone(), format!("master pid {pid} (chosen)"))),
            None => return Err(not_a_master(pid, &masters)),
        }
    } else if opts.config.is_none() && masters.len() > 1 {
        let request = opts
            .url
            .as_deref()
            .and_then(|u| fix502_nginx::route::Request::from_url(u).ok());
        let Some(request) = request else {
            return Err(DiscoveryError::AmbiguousMasters(masters));
        };
        let mut serving = masters_serving(&masters, request.local, request.port, own_ns.net, |m| {
            namespace::listeners_of(&m.pids())
        });
        let mut published = None;
        if serving.is_empty() {
            // A port published into a container (docker-proxy): the master behind it.
            if let Some((forward, m)) =
                behind_published_port(&masters, request.local, request.port).await
            {
                published = Some(forward);
                serving.push(m);
            }
        }
        match serving.as_slice() {
            [m] => Some((
                (*m).clone(),
                match published {
                    Some(f) => format!(
                        "master pid {}, behind --url's port {} (forwarded to {} by {})",
                        m.pid, request.port, f.container, f.by
                    ),
                    None => format!(
                        "master pid {}, the one listening on --url's port {}",
                        m.pid, request.port
                    ),
                },
            )),
            [] => return Err(DiscoveryError::AmbiguousMasters(masters)),
            several => {
                return Err(DiscoveryError::AmbiguousMasters(
                    several.iter().map(|m| (*m).clone()).collect(),
                ));
            }
        }
    } else {
        None
    };

    // The binary: flag, else the picked master's executable, else a master's, else PATH.
    let (mut binary, mut binary_via) = match &opts.nginx {
        Some(b) => (Some(b.clone()), "--nginx".to_owned()),
        None => match picked
            .iter()
            .map(|(m, _)| m)
            .chain(masters.iter())
            .find_map(|m| m.exe.clone().map(|e| (e, m.pid)))
        {
            Some((exe, pid)) => (Some(exe), format!("/proc/{pid}/exe")),
            None => (which_nginx(), "PATH and sbin directories".to_owned()),
        },
    };
    let mut build = BuildInfo::default();
    if let Some(b) = &binary {
        match build_info(b).await {
            Ok(info) => build = info,
            Err(e) => {
                notes.push(format!("`{} -V` failed: {e}", b.display()));
                if opts.nginx.is_none() {
                    binary = which_nginx().filter(|w| w != b);
                    binary_via = "PATH and sbin directories".to_owned();
                    if let Some(b) = &binary
                        && let Ok(info) = build_info(b).await
                    {
                        build = info;
                    }
                }
            }
        }
    }
    if let Some(b) = &binary {
        via.insert("binary".to_owned(), binary_via);
        tracing::debug!(binary = %b.display(), "nginx binary");
    }

    // The master: the one picked (--pid, --url's port), or the one matching --config, or
    // the only one.
    let (master, config, config_via) = if let Some((m, how)) = picked {
        let conf = master_config(&m, &build);
        match &opts.config {
            Some(c) => (Some(m), Some(c.clone()), "--config".to_owned()),
            None => (Some(m), conf, how),
        }
    } else if let Some(config) = &opts.config {
        let m = master_running(&masters, config, &build).cloned();
        (m, Some(config.clone()), "--config".to_owned())
    } else {
        match masters.len() {
            0 => match &build.conf_path {
                Some(c) => (
                    None,
                    Some(under_prefix(c, build.prefix.as_deref())),
                    "nginx -V --conf-path".to_owned(),
                ),
                None => (None, None, String::new()),
            },
            1 => {
                let m = masters[0].clone();
                let conf = master_config(&m, &build);
                let how = if m.conf_arg.is_some() {
                    "master command line (-c)".to_owned()
                } else {
                    "nginx -V --conf-path of the running master".to_owned()
                };
                (Some(m), conf, how)
            }
            _ => return Err(DiscoveryError::AmbiguousMasters(masters)),
        }
    };
    let default_conf = PathBuf::from("/etc/nginx/nginx.conf");
    let (config, config_via) = match config {
        Some(c) => (c, config_via),
        None => (
            default_conf.clone(),
            "default /etc/nginx/nginx.conf".to_owned(),
        ),
    };
    if binary.is_none() && master.is_none() && !config.exists() {
        return Err(DiscoveryError::NothingFound(default_conf));
    }
    if let Err(source) = std::fs::File::open(&config) {
        return Err(DiscoveryError::ConfigUnreadable {
            path: config,
            source,
        });
    }
    via.insert("config".to_owned(), config_via);

    let prefix = if let Some(p) = &opts.prefix {
        via.insert("prefix".to_owned(), "--prefix".to_owned());
        Some(p.clone())
    } else if let Some(p) = master.as_ref().and_then(|m| m.prefix_arg.clone()) {
        via.insert("prefix".to_owned(), "master command line (-p)".to_owned());
        Some(p)
    } else if let Some(p) = build.prefix.clone() {
        via.insert("prefix".to_owned(), "nginx -V --prefix".to_owned());
        Some(p)
    } else {
        None
    };
    if let Some(m) = &master {
        via.insert(
            "master".to_owned(),
            format!("process table: pid {} `{}`", m.pid, m.title),
        );
    }
    let other_masters = masters
        .into_iter()
        .filter(|m| Some(m.pid) != master.as_ref().map(|x| x.pid))
        .collect();
    Ok(Discovery {
        binary,
        build,
        config,
        prefix,
        master,
        other_masters,
        own_ns,
        via,
        notes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn master_titles() {
        let (c, p) = parse_master_title(
            "nginx: master process /usr/sbin/nginx -p /tmp/lab/ -c /tmp/lab/conf/nginx.conf",
        )
        .unwrap();
        assert_eq!(c, Some(PathBuf::from("/tmp/lab/conf/nginx.conf")));
        assert_eq!(p, Some(PathBuf::from("/tmp/lab/")));
        let (c, p) = parse_master_title(
            "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
        )
        .unwrap();
        assert_eq!((c, p), (None, None));
        assert!(parse_master_title("nginx: worker process").is_none());
        assert!(parse_master_title("/usr/bin/python3 app.py").is_none());
    }

    #[test]
    fn build_info_debian() {
        let text = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.11 19 Sep 2023\nTLS SNI support enabled\nconfigure arguments: --with-cc-opt='-g -O2 -ffile-prefix-map=/build/nginx=. -fstack-protector-strong' --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf --http-log-path=/var/log/nginx/access.log --error-log-path=stderr --lock-path=/var/lock/nginx.lock --pid-path=/run/nginx.pid --http-client-body-temp-path=/var/lib/nginx/body --http-proxy-temp-path=/var/lib/nginx/proxy --with-threads\n";
        let info = parse_build_info(text);
        assert_eq!(info.pid_path.as_deref(), Some("/run/nginx.pid"));
        assert_eq!(
            info.http_temp_paths,
            vec![
                (
                    "--http-client-body-temp-path".to_owned(),
                    "/var/lib/nginx/body".to_owned()
                ),
                (
                    "--http-proxy-temp-path".to_owned(),
                    "/var/lib/nginx/proxy".to_owned()
                ),
            ]
        );
        assert_eq!(info.version.as_deref(), Some("1.22.1"));
        assert_eq!(info.prefix, Some(PathBuf::from("/usr/share/nginx")));
        assert_eq!(info.conf_path, Some(PathBuf::from("/etc/nginx/nginx.conf")));
        assert_eq!(info.error_log_path.as_deref(), Some("stderr"));
        assert_eq!(
            info.http_log_path.as_deref(),
            Some("/var/log/nginx/access.log")
        );
        assert_eq!(parse_build_info("garbage"), BuildInfo::default());
    }

    /// A master of `/etc/nPID.conf` in namespaces numbered from `net`, without workers.
    pub(crate) fn master(pid: u32, net: u64) -> Master {
        Master {
            pid,
            exe: None,
            title: format!("nginx: master process nginx -c /etc/n{pid}.conf"),
            conf_arg: Some(PathBuf::from(format!("/etc/n{pid}.conf"))),
            prefix_arg: None,
            workers: Vec::new(),
            start_time: 0,
            ns: NamespaceIds {
                net: Some(net),
                mnt: Some(net + 1),
                pid: Some(net + 2),
            },
            container: None,
            sandboxed: false,
            other_net: false,
        }
    }

    fn listening(addrs: &[&str], held: bool) -> NamespaceListeners {
        NamespaceListeners {
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            held,
        }
    }

    fn pids(found: &[&Master]) -> Vec<u32> {
        found.iter().map(|m| m.pid).collect()
    }

    #[test]
    fn the_port_of_the_url_picks_the_master_listening_on_it() {
        let masters = [master(10, 100), master(20, 100)];
        let listeners = |m: &Master| match m.pid {
            10 => listening(&["127.0.0.1:18080"], true),
            _ => listening(&["127.0.0.1:18081", "[::1]:18081"], true),
        };
        let local = Some(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            pids(&masters_serving(
                &masters,
                local,
                18080,
                Some(100),
                listeners
            )),
            [10]
        );
        assert_eq!(
            pids(&masters_serving(
                &masters,
                None,
                18081,
                Some(100),
                listeners
            )),
            [20]
        );
        assert!(masters_serving(&masters, local, 80, Some(100), listeners).is_empty());
    }

    #[test]
    fn the_address_of_the_url_narrows_and_wildcards_serve_every_address() {
        let masters = [master(10, 100), master(20, 100), master(30, 100)];
        let listeners = |m: &Master| match m.pid {
            10 => listening(&["127.0.0.1:80"], true),
            20 => listening(&["127.0.0.2:80"], true),
            _ => listening(&["[::]:8443"], true),
        };
        let two = Some(IpAddr::from([127, 0, 0, 2]));
        assert_eq!(
            pids(&masters_serving(&masters, two, 80, None, listeners)),
            [20]
        );
        assert_eq!(
            pids(&masters_serving(&masters, None, 80, None, listeners)),
            [10, 20]
        );
        assert_eq!(
            pids(&masters_serving(&masters, two, 8443, None, listeners)),
            [30]
        );
        let mapped: SocketAddr = "[::ffff:127.0.0.2]:80".parse().unwrap();
        assert!(serves(&mapped, two, 80));
        assert!(!serves(&mapped, two, 81));
    }

    #[test]
    fn unread_open_files_count_only_for_a_master_alone_in_its_namespace() {
        // 10 and 20 share a namespace whose listeners cannot be told apart; 30 is alone in
        // its own.
        let masters = [master(10, 100), master(20, 100), master(30, 300)];
        let listeners = |m: &Master| match m.ns.net {
            Some(100) => listening(&["0.0.0.0:80"], false),
            _ => listening(&["0.0.0.0:80", "0.0.0.0:81"], false),
        };
        assert_eq!(
            pids(&masters_serving(&masters, None, 80, Some(100), listeners)),
            [30]
        );
        assert_eq!(
            pids(&masters_serving(&masters, None, 81, Some(100), listeners)),
            [30]
        );
    }

    #[test]
    fn several_on_the_port_prefer_the_one_in_our_network_namespace() {
        let masters = [master(10, 100), master(20, 200), master(30, 300)];
        let listeners = |_: &Master| listening(&["0.0.0.0:80"], true);
        assert_eq!(
            pids(&masters_serving(&masters, None, 80, Some(200), listeners)),
            [20]
        );
        assert_eq!(
            pids(&masters_serving(&masters, None, 80, Some(999), listeners)),
            [10, 20, 30]
        );
    }

    #[test]
    fn where_a_master_runs_and_why_a_pid_is_no_master() {
        let mut m = master(10, 100);
        assert_eq!(m.whereabouts(), None);
        m.other_net = true;
        assert_eq!(
            m.whereabouts().as_deref(),
            Some("in network namespace net:[100]")
        );
        m.sandboxed = true;
        assert_eq!(
            m.whereabouts().as_deref(),
            Some("in a sandbox of its own (network and mount namespaces)")
        );
        m.container = Some(Container {
            runtime: "docker".to_owned(),
            id: Some("0123456789abcdef".to_owned()),
        });
        assert_eq!(
            m.whereabouts().as_deref(),
            Some("in a docker container 0123456789ab")
        );
        let ns = m.namespaces();
        assert_eq!(
            (ns.net, ns.mnt, ns.pid, ns.sandboxed),
            (Some(100), Some(101), Some(102), true)
        );

        let mut with_worker = master(10, 100);
        with_worker.workers.push(Worker {
            pid: 11,
            user: None,
            uid: None,
            start_time: 0,
        });
        let masters = [with_worker, master(20, 100)];
        assert_eq!(
            not_a_master(11, &masters).to_string(),
            "--pid 11: is a worker of the nginx master pid 10; pass --pid 10"
        );
        assert_eq!(
            not_a_master(99, &masters).to_string(),
            "--pid 99: is not an nginx master process; running: pid 10 -c /etc/n10.conf, pid 20 -c /etc/n20.conf"
        );
        assert_eq!(
            not_a_master(99, &[]).to_string(),
            "--pid 99: is not an nginx master process, and no nginx master runs"
        );
        assert!(
            DiscoveryError::AmbiguousMasters(masters.to_vec())
                .to_string()
                .starts_with("2 nginx masters are running (pid 10 -c /etc/n10.conf, pid 20")
        );
    }

    #[test]
    fn prefix_relative_paths() {
        assert_eq!(
            under_prefix(Path::new("conf/nginx.conf"), Some(Path::new("/opt/n/"))),
            PathBuf::from("/opt/n/conf/nginx.conf")
        );
        assert_eq!(
            under_prefix(Path::new("/etc/n.conf"), Some(Path::new("/opt/n"))),
            PathBuf::from("/etc/n.conf")
        );
    }
}
