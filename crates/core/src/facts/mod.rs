//! Facts: what every check reads, computed once and shared. The parsed config, the worker
//! identity, the log paths and the upstream endpoints are made when the run starts; log
//! summaries, probe results, listeners and the `nginx -t` verdict are computed lazily, the
//! first time a check asks, so a check never re-parses or re-probes. nginx itself (`-t`,
//! `-T`) runs as `throwaway.rs` runs it: over throw-away layers, so it leaves nothing.
//!
//! [`Facts`] and its accessors live here; how each fact is read is in its own file, which
//! knows nothing of [`Facts`]: the config's endpoints (`endpoint.rs`), the live connect
//! probes (`probe.rs`) and the network namespace they are made from (`standpoint.rs`), the error logs (`logs.rs`; a Docker container's json-file log in
//! `dockerlog.rs`), the access logs in their `log_format`
//! (`access.rs`), and `--url` routed through the config (`url.rs`).

mod access;
mod appserver;
mod dockerlog;
mod endpoint;
mod logfile;
mod logs;
mod probe;
mod standpoint;
mod url;

pub use access::AccessRead;
pub use appserver::{Behind, is_local};
pub use dockerlog::{DOCKER_ROOT, DockerLog};
pub use endpoint::{Endpoint, EndpointUse, short};
pub use logs::{JOURNAL_SOURCE, LogRead, StderrTarget};
pub use probe::{ProbeResult, join_all, probe_endpoint};
pub use standpoint::Standpoint;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fix502_nginx::config::Config;
use fix502_nginx::logscan::ScanOptions;
use fix502_nginx::route::Route;
use fix502_nginx::view::{ConfigView, PassTarget, Peer};
use fix502_probe::listeners::{self, Listener};
use fix502_probe::unixsock::{self, Identity};
use tokio::sync::OnceCell;

use crate::bundle::{Measured, Recorded};
use crate::command::{CommandOutput, shell_line};
use crate::discovery::{Discovery, Master, under_prefix};
use crate::exchange::{self, Exchange, Shape};
use crate::offline::Offline;
use crate::options::Options;
use crate::report::{Location, MasterInfo, NginxInfo};
use crate::rootfs::RootedSource;
use crate::throwaway::{self, Invocation, TestRun, Touched};
use crate::upstream::Upstream;

/// The most other nginx masters whose configs are read (for the addresses they use).
pub const MAX_OTHER_INSTANCES: usize = 16;

/// Everything the checks share.
#[derive(Debug)]
pub struct Facts {
    /// The options of this run.
    pub options: Options,
    /// Which nginx, and how it was found.
    pub discovery: Discovery,
    /// The parsed configuration (includes expanded).
    pub config: Option<Config>,
    /// Why the configuration could not be loaded at all.
    pub config_error: Option<String>,
    /// The semantic view of the configuration.
    pub view: ConfigView,
    /// The user nginx workers run as, and how that was found.
    pub worker_user: Option<(String, Option<String>)>,
    /// Error logs to read.
    pub error_logs: Vec<PathBuf>,
    /// Error-log destinations that are not files (stderr, syslog), as the config writes
    /// them.
    pub error_log_elsewhere: Vec<String>,
    /// The `error_log` paths that are links to nginx's stderr inside its container (the
    /// official image links `/var/log/nginx/error.log` to `/dev/stderr`), read through
    /// `/proc/PID/root`; they are in [`Facts::error_log_elsewhere`], not in
    /// [`Facts::error_logs`].
    pub stderr_links: Vec<String>,
    /// Docker's data root, where a container's json-file log is looked for.
    docker_root: PathBuf,
    /// Access logs.
    pub access_logs: Vec<PathBuf>,
    /// The `access_log` paths that are nginx's stdout (`/dev/stdout`, or a link to it inside
    /// its container): a container runtime's log, not read.
    pub access_log_stdout: Vec<String>,
    /// Every address the config connects to.
    pub endpoints: Vec<Endpoint>,
    /// Pass directives whose address is a variable (resolved per request).
    pub variable_targets: Vec<(String, Location)>,
    /// Where `--url` goes through the config (server, locations, pass directive), or why
    /// it could not be routed; `None` without `--url`. When it reaches a pass directive,
    /// [`Facts::endpoints`] and [`Facts::variable_targets`] hold only that directive's.
    pub route: Option<Result<Route, String>>,
    logs: OnceCell<Vec<LogRead>>,
    access: OnceCell<Vec<AccessRead>>,
    probes: OnceCell<Vec<ProbeResult>>,
    /// Each address a probe connected to (a host name's resolved ones too) → the first
    /// probe's index: [`Facts::index_of`] asks it for every group of the logs.
    probed_at: OnceCell<std::collections::HashMap<Upstream, usize>>,
    /// One cell per endpoint, so an endpoint's exchange starts as soon as its own connect
    /// is done, not when the slowest endpoint's is.
    probe_cells: Vec<OnceCell<ProbeResult>>,
    /// One cell per endpoint: what serves it (local endpoints that accept connections).
    behind_cells: Vec<OnceCell<Option<Behind>>>,
    listeners: OnceCell<Result<Arc<Vec<Listener>>, String>>,
    exchanges: OnceCell<Vec<Option<Exchange>>>,
    nginx_test: OnceCell<Result<TestRun, String>>,
    nginx_dump: OnceCell<Result<TestRun, String>>,
    /// Where the running master's stderr goes, read once.
    master_stderr: Option<StderrTarget>,
    /// Where the live probes stand (nginx's network namespace when it is not fix502's).
    standpoint: Standpoint,
    /// The master's root (`/proc/PID/root`) when it runs in another mount namespace than
    /// fix502: its config and logs are read through it. Offline, the bundle's unpacked files.
    nginx_root: Option<PathBuf>,
    /// Set when the facts are a bundle's (`--from`), not the live host's.
    offline: Option<Box<Offline>>,
}

impl Facts {
    /// Loads the config and derives the shared facts. Never fails: problems become findings.
    pub fn new(options: Options, discovery: Discovery) -> Self {
        let container_root = discovery
            .master
            .as_ref()
            .filter(|m| m.container.is_some())
            .map(|m| PathBuf::from(format!("/proc/{}/root", m.pid)));
        let standpoint = Standpoint::of(&discovery);
        let master_stderr = discovery
            .master
            .as_ref()
            .and_then(|m| StderrTarget::of(m.pid));
        // A master in another mount namespace (a container) reads its own files: the config
        // it runs and the logs it writes are reached through its root.
        let nginx_root = discovery
            .master
            .as_ref()
            .filter(|m| {
                let own = fix502_probe::namespace::NamespaceIds::own();
                m.ns.mnt.is_some() && own.mnt.is_some() && m.ns.mnt != own.mnt
            })
            .map(|m| PathBuf::from(format!("/proc/{}/root", m.pid)));
        Self::build(
            options,
            discovery,
            nginx_root,
            container_root,
            standpoint,
            master_stderr,
        )
    }

    /// The facts of a bundle (`--from`): its recorded discovery, its files under
    /// `offline.root`, and every measured fact as recorded, so that nothing is measured
    /// again. Fails when the record does not fit the bundle's config.
    pub(crate) fn from_record(
        options: Options,
        recorded: Recorded,
        offline: Offline,
    ) -> Result<Self, String> {
        let root = offline.root.clone();
        let mut facts = Self::build(
            options,
            recorded.discovery,
            Some(root),
            None,
            Standpoint::default(),
            recorded.master_stderr,
        );
        facts.error_logs = recorded.error_logs;
        facts.error_log_elsewhere = recorded.error_log_elsewhere;
        facts.stderr_links = recorded.stderr_links;
        facts.access_logs = recorded.access_logs;
        facts.access_log_stdout = recorded.access_log_stdout;
        let n = facts.endpoints.len();
        if recorded.probes.len() != n || recorded.behind.len() != n {
            return Err(format!(
                "its record holds {} endpoints where its config has {n}",
                recorded.probes.len()
            ));
        }
        facts.probe_cells = recorded
            .probes
            .into_iter()
            .map(OnceCell::new_with)
            .collect();
        facts.behind_cells = recorded
            .behind
            .into_iter()
            .map(OnceCell::new_with)
            .collect();
        facts.listeners = OnceCell::new_with(recorded.listeners.map(|r| r.map(Arc::new)));
        facts.exchanges = OnceCell::new_with(recorded.exchanges);
        facts.nginx_test = OnceCell::new_with(recorded.nginx_test);
        facts.offline = Some(Box::new(offline));
        Ok(facts)
    }

    /// The shared facts of `discovery`, its files read through `nginx_root` when set. What
    /// reads the host (the namespaces to probe from, the master's stderr) the caller gives:
    /// an offline run reads none of it.
    fn build(
        options: Options,
        discovery: Discovery,
        nginx_root: Option<PathBuf>,
        container_root: Option<PathBuf>,
        standpoint: Standpoint,
        master_stderr: Option<StderrTarget>,
    ) -> Self {
        let loaded = match &nginx_root {
            Some(root) => Config::load_from(&discovery.config, &RootedSource::new(root.clone())),
            None => Config::load(&discovery.config),
        };
        let (config, config_error) = match loaded {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let view = match &config {
            Some(c) => ConfigView::new(c),
            None => ConfigView::new(&Config {
                main: discovery.config.clone(),
                files: Vec::new(),
                directives: Vec::new(),
                errors: Vec::new(),
            }),
        };
        let prefix = discovery.prefix.clone();

        // The worker user: running workers, else the `user` directive, else the build default.
        let worker_user = discovery
            .master
            .as_ref()
            .and_then(|m| m.workers.iter().find_map(|w| w.user.clone()))
            .map(|u| (u, None))
            .or_else(|| {
                view.user
                    .as_ref()
                    .map(|u| (u.user.clone(), u.group.clone()))
            })
            .or_else(|| discovery.build.user.clone().map(|u| (u, None)))
            .or_else(|| Some(("nobody".to_owned(), None)));

        let file_log = |path: &str| -> Option<PathBuf> {
            if path == "stderr"
                || path.starts_with("syslog:")
                || path.starts_with("memory:")
                || path == "off"
            {
                None
            } else {
                Some(under_prefix(Path::new(path), prefix.as_deref()))
            }
        };
        let mut error_logs = Vec::new();
        let mut error_log_elsewhere = Vec::new();
        let mut stderr_links = Vec::new();
        if options.error_logs.is_empty() {
            let mut paths: Vec<String> = view.error_logs.iter().map(|l| l.path.clone()).collect();
            let main_has_one = view
                .error_logs
                .iter()
                .any(|l| matches!(l.context, fix502_nginx::view::LogContext::Main));
            if !main_has_one {
                if let Some(p) = &discovery.build.error_log_path {
                    paths.insert(0, p.clone());
                } else {
                    paths.insert(0, "logs/error.log".to_owned());
                }
            }
            for p in paths {
                let file = file_log(&p).filter(|_| !STDERR_PATHS.contains(&p.as_str()));
                let linked = match (&file, &container_root) {
                    (Some(f), Some(root)) => links_to(root, f, 2),
                    _ => false,
                };
                match file {
                    Some(f) if linked => {
                        let shown = f.display().to_string();
                        if !error_log_elsewhere.contains(&shown) {
                            stderr_links.push(shown.clone());
                            error_log_elsewhere.push(shown);
                        }
                    }
                    Some(f) if !error_logs.contains(&f) => error_logs.push(f),
                    Some(_) => {}
                    None if !error_log_elsewhere.contains(&p) => error_log_elsewhere.push(p),
                    None => {}
                }
            }
        } else {
            error_logs = options.error_logs.clone();
        }
        let mut access_log_stdout = Vec::new();
        let access_logs = if options.access_logs.is_empty() {
            let mut v: Vec<PathBuf> = Vec::new();
            for l in &view.access_logs {
                let Some(f) = file_log(&l.path) else { continue };
                // nginx's stdout (the official image links access.log to /dev/stdout): a
                // container runtime's log, not a file to read.
                let stdout = STDOUT_PATHS.contains(&l.path.as_str())
                    || nginx_root
                        .as_ref()
                        .is_some_and(|root| links_to(root, &f, 1));
                if stdout {
                    let shown = f.display().to_string();
                    if !access_log_stdout.contains(&shown) {
                        access_log_stdout.push(shown);
                    }
                } else if !v.contains(&f) {
                    v.push(f);
                }
            }
            v
        } else {
            options.access_logs.clone()
        };

        let (mut endpoints, mut variable_targets) = endpoint::endpoints_of(&view);
        let route = options.url.as_deref().map(|url| url::route_url(&view, url));
        match &route {
            Some(Ok(Route {
                target: Some(target),
                ..
            })) => {
                endpoints.retain(|e| e.uses.iter().any(|u| u.target == *target));
                let at = view.targets.get(*target).map(|t| Location::from(&t.span));
                variable_targets.retain(|(_, loc)| Some(loc) == at.as_ref());
            }
            // The URL is served by nginx itself (files, return): it reaches no upstream.
            Some(Ok(Route { target: None, .. })) => {
                endpoints.clear();
                variable_targets.clear();
            }
            _ => {}
        }
        let probe_cells = endpoints.iter().map(|_| OnceCell::new()).collect();
        let behind_cells = endpoints.iter().map(|_| OnceCell::new()).collect();
        Self {
            options,
            discovery,
            config,
            config_error,
            view,
            worker_user,
            error_logs,
            error_log_elsewhere,
            stderr_links,
            docker_root: PathBuf::from(DOCKER_ROOT),
            access_logs,
            access_log_stdout,
            endpoints,
            variable_targets,
            route,
            logs: OnceCell::new(),
            access: OnceCell::new(),
            probes: OnceCell::new(),
            probed_at: OnceCell::new(),
            probe_cells,
            behind_cells,
            listeners: OnceCell::new(),
            exchanges: OnceCell::new(),
            nginx_test: OnceCell::new(),
            nginx_dump: OnceCell::new(),
            standpoint,
            nginx_root,
            master_stderr,
            offline: None,
        }
    }

    /// The offline run's state, when the facts are a bundle's (`--from`).
    pub(crate) fn offline(&self) -> Option<&Offline> {
        self.offline.as_deref()
    }

    /// Now: the clock of the host, or offline the time the bundle was collected, in the
    /// time zone of the host it was collected on.
    pub fn now(&self) -> jiff::ZonedDateTime {
        match &self.offline {
            Some(o) => o.now.clone(),
            None => jiff::ZonedDateTime::now(),
        }
    }

    /// What was measured so far, taken out of the cells (for a bundle's record).
    pub(crate) fn measured(&self) -> Measured {
        Measured {
            probes: self.probe_cells.iter().map(|c| c.get().cloned()).collect(),
            behind: self.behind_cells.iter().map(|c| c.get().cloned()).collect(),
            listeners: self.listeners.get().map(|r| r.clone().map(|l| l.to_vec())),
            exchanges: self.exchanges.get().cloned(),
            nginx_test: self.nginx_test.get().cloned(),
        }
    }

    /// The report's view of the nginx diagnosed.
    pub fn nginx_info(&self) -> NginxInfo {
        let d = &self.discovery;
        NginxInfo {
            binary: d.binary.clone(),
            version: d.build.version.clone(),
            config: Some(d.config.clone()),
            prefix: d.prefix.clone(),
            master_pid: d.master.as_ref().map(|m| m.pid),
            worker_user: self.worker_user.as_ref().map(|(u, _)| u.clone()),
            running: d.master.is_some(),
            error_logs: self
                .error_logs
                .iter()
                .cloned()
                .chain(
                    self.docker_log()
                        .filter(|d| d.unreadable.is_none())
                        .map(|d| d.path),
                )
                .collect(),
            access_logs: self.access_logs.clone(),
            discovered_via: d.via.clone(),
            masters: self.masters_info(),
            namespaces: d
                .master
                .as_ref()
                .filter(|m| m.ns.differs_from(&d.own_ns))
                .map(Master::namespaces),
        }
    }

    /// Every running master, the diagnosed one first, when more than one runs.
    fn masters_info(&self) -> Vec<MasterInfo> {
        let d = &self.discovery;
        if d.master.iter().len() + d.other_masters.len() < 2 {
            return Vec::new();
        }
        d.master
            .iter()
            .map(|m| (m, true))
            .chain(d.other_masters.iter().map(|m| (m, false)))
            .map(|(m, selected)| MasterInfo {
                pid: m.pid,
                config: crate::discovery::master_config(m, &d.build),
                prefix: m.prefix_arg.clone(),
                binary: m.exe.clone(),
                namespaces: m.namespaces(),
                selected,
            })
            .collect()
    }

    /// The worker identity, for socket permission checks.
    pub fn worker_identity(&self) -> Option<Identity> {
        if self.offline.is_some() {
            return None;
        }
        let (user, group) = self.worker_user.as_ref()?;
        if let Some(uid) = self
            .discovery
            .master
            .as_ref()
            .and_then(|m| m.workers.iter().find_map(|w| w.uid))
        {
            return unixsock::identity_of_uid(uid);
        }
        unixsock::identity_of(user, group.as_deref())
    }

    /// The addresses the other running nginx instances send requests to (each master's
    /// config, read from disk; at most `MAX_OTHER_INSTANCES` (16) masters). An app one of them
    /// uses is that instance's, not where an app of this config went.
    pub fn peers_of_other_instances(&self) -> Vec<Peer> {
        let default_config = self
            .discovery
            .build
            .conf_path
            .as_deref()
            .map(|c| under_prefix(c, self.discovery.build.prefix.as_deref()));
        let mut out: Vec<Peer> = Vec::new();
        if self.offline.is_some() {
            return out;
        }
        for m in self
            .discovery
            .other_masters
            .iter()
            .take(MAX_OTHER_INSTANCES)
        {
            let config = match &m.conf_arg {
                Some(c) => under_prefix(
                    c,
                    m.prefix_arg
                        .as_deref()
                        .or(self.discovery.build.prefix.as_deref()),
                ),
                None => match &default_config {
                    Some(c) => c.clone(),
                    None => continue,
                },
            };
            if config == self.discovery.config {
                continue;
            }
            let Ok(loaded) = Config::load(&config) else {
                continue;
            };
            let (endpoints, _) = endpoint::endpoints_of(&ConfigView::new(&loaded));
            for e in endpoints {
                if !out.contains(&e.peer) {
                    out.push(e.peer);
                }
            }
        }
        out
    }

    /// The pid of the running nginx master, if one runs this config.
    pub fn master_pid(&self) -> Option<u32> {
        self.discovery.master.as_ref().map(|m| m.pid)
    }

    /// The pids of the running nginx workers (empty when nginx does not run).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.discovery
            .master
            .as_ref()
            .map(|m| m.workers.iter().map(|w| w.pid).collect())
            .unwrap_or_default()
    }

    /// The pids of the running nginx: the workers, then the master.
    pub fn nginx_pids(&self) -> Vec<u32> {
        let mut pids = self.worker_pids();
        pids.extend(self.master_pid());
        pids
    }

    /// Per-probe timeout.
    pub fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// The start of the `--since` window, in local time as nginx writes its logs.
    pub fn window_start(&self) -> Option<jiff::civil::DateTime> {
        self.now()
            .checked_sub(
                jiff::SignedDuration::try_from(self.options.since)
                    .unwrap_or(jiff::SignedDuration::from_hours(1)),
            )
            .ok()
            .map(|z| z.datetime())
    }

    /// The end of the window: now, and a minute more for clocks that differ a little. Lines
    /// dated later are left out and noted.
    pub fn window_end(&self) -> Option<jiff::civil::DateTime> {
        self.now()
            .checked_add(jiff::SignedDuration::from_mins(1))
            .ok()
            .map(|z| z.datetime())
    }

    /// Whether nginx's error log goes to stderr or syslog and this host's systemd journal
    /// can be read for it: journald runs (or left files), and the running master's stderr,
    /// when `error_log stderr` is what counts, is a socket (the journal's stream) or cannot
    /// be seen.
    pub fn reads_journal(&self) -> bool {
        let syslog = self
            .error_log_elsewhere
            .iter()
            .any(|d| d.starts_with("syslog:"));
        let stderr = self
            .error_log_elsewhere
            .iter()
            .any(|d| self.goes_to_stderr(d))
            && matches!(self.master_stderr(), None | Some(StderrTarget::Socket));
        (syslog || stderr) && self.offline.is_none() && crate::journal::available()
    }

    /// Whether an `error_log` destination of [`Facts::error_log_elsewhere`] is nginx's
    /// stderr: `stderr`, `/dev/stderr` (and its `/proc/self/fd/2` forms), or a path linked to
    /// it in nginx's container.
    pub fn goes_to_stderr(&self, dest: &str) -> bool {
        dest == "stderr"
            || STDERR_PATHS.contains(&dest)
            || self.stderr_links.iter().any(|l| l == dest)
    }

    /// Docker's json-file log of the container the diagnosed master runs in, when that is
    /// a Docker container whose id its cgroup names and nginx's error log goes to stderr
    /// (`None` otherwise, and on a host without containers, at no cost).
    pub fn docker_log(&self) -> Option<DockerLog> {
        let container = self.discovery.master.as_ref()?.container.as_ref()?;
        if container.runtime != "docker"
            || !self
                .error_log_elsewhere
                .iter()
                .any(|d| self.goes_to_stderr(d))
        {
            return None;
        }
        Some(DockerLog::of(&self.docker_root, container.id.as_deref()?))
    }

    /// Where the live probes stand: nginx's network namespace when it is not fix502's.
    pub fn standpoint(&self) -> &Standpoint {
        &self.standpoint
    }

    /// Looks for Docker's json-file logs under `root` instead of `/var/lib/docker`.
    pub fn with_docker_root(mut self, root: &Path) -> Self {
        root.clone_into(&mut self.docker_root);
        self
    }

    /// Where the running master's stderr goes (`None` when nginx does not run, or its fds
    /// cannot be read).
    pub fn master_stderr(&self) -> Option<StderrTarget> {
        self.master_stderr.clone()
    }

    /// The error-log summaries (read once).
    pub async fn logs(&self) -> &[LogRead] {
        self.logs
            .get_or_init(|| async {
                let since = self.window_start();
                let opts = ScanOptions {
                    since,
                    until: self.window_end(),
                    bucket_minutes: crate::timeline::bucket_for(self.options.since),
                    ..ScanOptions::default()
                };
                let paths = self
                    .error_logs
                    .iter()
                    .map(|p| (p.clone(), self.error_log_file(p)))
                    .collect();
                let journal = self.reads_journal();
                let docker = self
                    .docker_log()
                    .filter(|d| d.unreadable.is_none())
                    .map(|d| (self.docker_root.clone(), d.id));
                let roots = logfile::log_roots(self.discovery.prefix.as_deref());
                let reads = tokio::task::spawn_blocking(move || {
                    logs::read_all(paths, &opts, journal, docker, &roots)
                })
                .await;
                reads.unwrap_or_default()
            })
            .await
    }

    /// Every access log read in its `log_format`, across its history (read once).
    pub async fn access_reads(&self) -> &[AccessRead] {
        self.access
            .get_or_init(|| async {
                let opts = fix502_nginx::accesslog::AccessOptions {
                    since: self.window_start(),
                    until: self.window_end(),
                    ..fix502_nginx::accesslog::AccessOptions::default()
                };
                let paths: Vec<(PathBuf, PathBuf)> = self
                    .access_logs
                    .iter()
                    .map(|p| (p.clone(), self.nginx_file(p)))
                    .collect();
                let named = access::named_logs(&self.view, self.discovery.prefix.as_deref());
                let roots = logfile::log_roots(self.discovery.prefix.as_deref());
                let formats = match &self.config {
                    Some(c) => fix502_nginx::logformat::LogFormat::all(c),
                    None => vec![fix502_nginx::logformat::LogFormat::combined()],
                };
                tokio::task::spawn_blocking(move || {
                    access::read_all(&paths, &named, &formats, &opts, &roots)
                })
                .await
                .unwrap_or_default()
            })
            .await
    }

    /// The live probe of every endpoint, in the order of [`Facts::endpoints`] (probed once, concurrently).
    pub async fn probes(&self) -> &[ProbeResult] {
        self.probes
            .get_or_init(|| async {
                join_all((0..self.endpoints.len()).map(|i| self.probe_at(i)))
                    .await
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect()
            })
            .await
    }

    /// The live probe of endpoint `i` (probed once).
    async fn probe_at(&self, i: usize) -> Option<&ProbeResult> {
        let endpoint = self.endpoints.get(i)?;
        let cell = self.probe_cells.get(i)?;
        if self.offline.is_some() {
            // As recorded: an endpoint the live run did not probe is not probed now.
            return cell.get();
        }
        Some(
            cell.get_or_init(|| async {
                let identity = self.worker_identity();
                probe_endpoint(
                    &endpoint.peer,
                    self.timeout(),
                    identity.as_ref(),
                    self.master_pid(),
                )
                .await
            })
            .await,
        )
    }

    /// The probe result of the endpoint at `upstream` (or resolving to it), if it is one of
    /// ours.
    pub async fn probe_of(&self, upstream: &Upstream) -> Option<&ProbeResult> {
        let i = self.index_of(upstream).await?;
        self.probes().await.get(i)
    }

    /// The endpoint at `upstream` (or resolving to it), if the config has one.
    pub async fn endpoint_of(&self, upstream: &Upstream) -> Option<&Endpoint> {
        let i = self.index_of(upstream).await?;
        self.endpoints.get(i)
    }

    /// The endpoint whose own address is `upstream`, if the config has one.
    pub fn endpoint_at(&self, upstream: &Upstream) -> Option<&Endpoint> {
        self.endpoints.get(self.index_at(upstream)?)
    }

    /// The index in [`Facts::endpoints`] of the endpoint whose own address is `upstream`.
    pub fn index_at(&self, upstream: &Upstream) -> Option<usize> {
        let peer = upstream.peer()?;
        self.endpoints.iter().position(|e| e.peer == *peer)
    }

    /// The file to open for error log `path`: `-` is the log the caller read from standard
    /// input ([`Options::stdin_log`](crate::Options::stdin_log)).
    pub fn error_log_file(&self, path: &Path) -> PathBuf {
        match &self.options.stdin_log {
            Some(stdin) if path.as_os_str() == "-" => stdin.clone(),
            _ => self.nginx_file(path),
        }
    }

    /// The file to open for `path` as nginx names it: through the master's root when it
    /// runs in another mount namespace (a container), else `path` itself. Paths the user
    /// gave on the command line are the host's and are never mapped.
    pub fn nginx_file(&self, path: &Path) -> PathBuf {
        let given = self
            .options
            .error_logs
            .iter()
            .chain(&self.options.access_logs);
        match &self.nginx_root {
            Some(root) if path.is_absolute() && !given.into_iter().any(|g| g == path) => {
                crate::rootfs::open_path(root, path)
            }
            _ => path.to_path_buf(),
        }
    }

    /// The error logs' files to open ([`Facts::error_log_file`] of each).
    pub fn error_log_files(&self) -> Vec<PathBuf> {
        self.error_logs
            .iter()
            .map(|p| self.error_log_file(p))
            .collect()
    }

    /// Whether two upstreams are one endpoint of the config (by address, or by an address
    /// its host name resolved to).
    pub async fn same_endpoint(&self, a: &Upstream, b: &Upstream) -> bool {
        match (self.index_of(a).await, self.index_of(b).await) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    /// The index of an endpoint: its own address first, else an address its host name
    /// resolved to (which needs the probes).
    async fn index_of(&self, upstream: &Upstream) -> Option<usize> {
        if let Some(i) = self.index_at(upstream) {
            return Some(i);
        }
        let probes = self.probes().await;
        let probed_at = self.probed_at.get_or_init(|| async {
            let mut at = std::collections::HashMap::new();
            for (i, probe) in probes.iter().enumerate() {
                if let ProbeResult::Tcp { attempts, .. } = probe {
                    for attempt in attempts {
                        at.entry(Upstream::parse(&attempt.target)).or_insert(i);
                    }
                }
            }
            at
        });
        probed_at.await.get(upstream).copied()
    }

    /// How many logged failures in the window gave the client a 502 (error-log lines).
    pub async fn logged_502s(&self) -> u64 {
        self.logs()
            .await
            .iter()
            .filter_map(|r| r.summary.as_ref().ok())
            .flat_map(|s| &s.groups)
            .filter(|g| g.failure.http_status() == 502)
            .map(|g| g.count)
            .sum()
    }

    /// What serves endpoint `i` (in the order of [`Facts::endpoints`]), looked at once:
    /// `None` when the endpoint is not on this host, or neither accepts connections nor
    /// has a listening socket, and
    /// `Err` when the listening sockets cannot be read.
    pub async fn behind(&self, i: usize) -> Result<Option<&Behind>, String> {
        let (Some(endpoint), Some(cell)) = (self.endpoints.get(i), self.behind_cells.get(i)) else {
            return Ok(None);
        };
        if !is_local(endpoint) {
            return Ok(None);
        }
        if self.offline.is_some() {
            return Ok(cell.get().and_then(Option::as_ref));
        }
        let all = self.listeners().await?;
        // A listener whose queue is full refuses no connection but accepts none either
        // (EAGAIN, a connect timeout): its app server is still the one to ask.
        if !self.probe_at(i).await.is_some_and(ProbeResult::ok)
            && appserver::listener_of(endpoint, &all).is_none()
        {
            return Ok(None);
        }
        let behind = cell
            .get_or_init(|| async {
                let endpoint = endpoint.clone();
                tokio::task::spawn_blocking(move || appserver::look(&endpoint, &all))
                    .await
                    .ok()
            })
            .await;
        Ok(behind.as_ref())
    }

    /// Listening sockets in nginx's network namespace (read once): on a plain host, the
    /// host's.
    pub async fn listeners(&self) -> Result<Arc<Vec<Listener>>, String> {
        if self.offline.is_some() {
            return self.listeners.get().cloned().unwrap_or_else(|| {
                Err("the bundle holds no listening sockets (they were not read)".to_owned())
            });
        }
        self.listeners
            .get_or_init(|| async {
                let pid = self.standpoint.net_pid();
                tokio::task::spawn_blocking(move || listeners::listeners_in(pid))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map(Arc::new).map_err(|e| e.to_string()))
            })
            .await
            .clone()
    }

    /// What every endpoint that accepts connections answers when spoken to as nginx speaks
    /// to it (in the order of [`Facts::endpoints`]; `None` where the connect failed or the
    /// endpoint's protocol is not probed). Run once, concurrently.
    pub async fn exchanges(&self) -> &[Option<Exchange>] {
        if self.offline.is_some() {
            return self.exchanges.get().map_or(&[], Vec::as_slice);
        }
        self.exchanges
            .get_or_init(|| async {
                let logged = self.logged_requests().await;
                // Each logged peer parsed once (the first request of a peer wins): a big
                // host has hundreds of endpoints and up to a thousand logged peers.
                let mut logged_by_peer = std::collections::HashMap::new();
                for (peer, req) in &logged {
                    logged_by_peer
                        .entry(Upstream::parse(peer))
                        .or_insert(req.as_str());
                }
                let version = self.nginx_version();
                let page_size = procfs::page_size();
                let conf_dir = self.discovery.config.parent().map(Path::to_path_buf);
                let tasks = self.endpoints.iter().enumerate().map(|(i, endpoint)| {
                    let logged = logged_by_peer.get(&Upstream::from(&endpoint.peer)).copied();
                    let conf_dir = conf_dir.clone();
                    async move {
                        let target = self.view.targets.get(endpoint.uses.first()?.target)?;
                        let probe = self.probe_at(i).await?;
                        let peer = probe::reachable_target(&endpoint.peer, probe)?;
                        let (uri, runs_app) = self.request_uri(target, logged);
                        let fpm_path = match self.behind(i).await {
                            Ok(Some(behind)) => behind.server().and_then(fpm_page),
                            _ => None,
                        };
                        let shape = Shape {
                            version,
                            page_size,
                            uri,
                            runs_app,
                            fpm_path,
                            prefix: self.discovery.prefix.as_deref(),
                            conf_dir: conf_dir.as_deref(),
                            timeout: self.timeout(),
                        };
                        Some(exchange::exchange(target, &peer, &shape).await)
                    }
                });
                join_all(tasks).await
            })
            .await
    }

    /// nginx's version as numbers, when known.
    pub fn nginx_version(&self) -> Option<(u32, u32, u32)> {
        let text = self.discovery.build.version.as_deref()?;
        let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
        Some((
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    }

    /// The request line nginx logged for each upstream peer (the first logged), as
    /// `(peer, "GET /path HTTP/1.1")`.
    async fn logged_requests(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for read in self.logs().await {
            let Ok(summary) = &read.summary else { continue };
            for g in &summary.groups {
                if let (Some(peer), Some(req)) = (&g.failure.peer, &g.request)
                    && !out.iter().any(|(p, _)| p == peer)
                {
                    out.push((peer.clone(), req.clone()));
                }
            }
        }
        out
    }

    /// What to request from a pass target's upstream, and whether that may run the app's
    /// code for a request someone asked for: the `--url` (the user named it), else the
    /// logged GET or HEAD request when the user agreed to re-send it, else the path of the
    /// location the pass directive is in (`/` for a regex or named one) with no query.
    fn request_uri(&self, target: &PassTarget, logged: Option<&str>) -> (String, bool) {
        if let Some(url) = &self.options.url {
            let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            let path = after_scheme
                .find('/')
                .and_then(|i| after_scheme.get(i..))
                .unwrap_or("/");
            return (path.to_owned(), true);
        }
        if self.options.replay_logged {
            let mut words = logged.unwrap_or_default().split_whitespace();
            if let (Some("GET" | "HEAD"), Some(uri)) = (words.next(), words.next())
                && uri.starts_with('/')
            {
                return (uri.to_owned(), true);
            }
        }
        (location_path(target.location.as_deref()), false)
    }

    /// The GET or HEAD request nginx logged for each upstream, as `(upstream, request
    /// line)`, where it asks for more than the probe sends anyway (the location's path): what
    /// the user may agree to re-send ([`crate::Options::replay_logged`]). A POST is never
    /// offered: only GET and HEAD are ever sent.
    pub async fn replayable_requests(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (peer, req) in self.logged_requests().await {
            let mut words = req.split_whitespace();
            let (Some("GET" | "HEAD"), Some(uri)) = (words.next(), words.next()) else {
                continue;
            };
            let path = self
                .endpoint_of(&Upstream::parse(&peer))
                .await
                .and_then(|e| e.uses.first())
                .and_then(|u| self.view.targets.get(u.target))
                .map(|t| location_path(t.location.as_deref()));
            if uri.starts_with('/') && path.as_deref() != Some(uri) {
                out.push((peer, req));
            }
        }
        out
    }

    /// `nginx -t` on this config (run once, over throw-away layers where it can be: see
    /// docs/architecture.md, "How `nginx -t` runs").
    pub async fn nginx_test(&self) -> Result<&CommandOutput, &String> {
        self.nginx_test_run().await.map(|run| &run.output)
    }

    /// `nginx -t` on this config, run once, and what it left on the host (nothing, unless it
    /// could not be isolated).
    pub(crate) async fn nginx_test_run(&self) -> Result<&TestRun, &String> {
        self.nginx_test
            .get_or_init(|| self.run_nginx(&["-t"], true))
            .await
            .as_ref()
    }

    /// `nginx -T` on this config (run once, as [`Facts::nginx_test`] is, and after it, so that
    /// what a run that cannot be isolated leaves is the test's).
    pub(crate) async fn nginx_dump(&self) -> Result<&CommandOutput, &String> {
        let _ = self.nginx_test().await;
        self.nginx_dump
            .get_or_init(|| self.run_nginx(&["-T"], false))
            .await
            .as_ref()
            .map(|run| &run.output)
    }

    async fn run_nginx(&self, extra: &[&str], watch: bool) -> Result<TestRun, String> {
        if self.offline.is_some() {
            return Err("nginx is not run on a bundle: this is what it recorded".to_owned());
        }
        let (Some(binary), Some(plain)) =
            (self.discovery.binary.clone(), self.nginx_command(extra))
        else {
            return Err("no nginx binary found (pass --nginx)".to_owned());
        };
        let touched = Touched::of(
            self.config.as_ref(),
            &self.view,
            &self.discovery.build,
            self.discovery.prefix.as_deref(),
        );
        throwaway::run(&Invocation {
            binary,
            args: self.nginx_args(extra),
            namespace_of: self.foreign_mount_namespace(),
            net_of: self.standpoint.net_pid(),
            pid_of: self.foreign_pid_namespace(),
            plain,
            touched,
            timeout: Duration::from_secs(30),
            watch,
        })
        .await
    }

    /// The command that runs the nginx binary with this run's `-p`, `-c` and `extra`, as
    /// nginx itself would see the files and addresses: when the master runs in another mount
    /// or network namespace (its own /etc/hosts, a container), through `nsenter
    /// --mount=/proc/PID/ns/mnt --net=/proc/PID/ns/net` (each only when it differs).
    /// `None` without a binary.
    pub fn nginx_command(&self, extra: &[&str]) -> Option<(PathBuf, Vec<String>)> {
        let binary = self.discovery.binary.clone()?;
        let args = self.nginx_args(extra);
        let mnt = self.foreign_mount_namespace();
        let net = self.standpoint.net_pid();
        // In another pid namespace, the pid file names the master by its pid there: `-s`
        // must signal from inside it (pid 1 here would be the host's init).
        let pid_ns = self.foreign_pid_namespace();
        if mnt.is_none() && net.is_none() && pid_ns.is_none() {
            return Some((binary, args));
        }
        let mut wrapped: Vec<String> = mnt
            .map(|pid| format!("--mount=/proc/{pid}/ns/mnt"))
            .into_iter()
            .chain(net.map(|pid| format!("--net=/proc/{pid}/ns/net")))
            .chain(pid_ns.map(|pid| format!("--pid=/proc/{pid}/ns/pid")))
            .collect();
        wrapped.push("--".to_owned());
        wrapped.push(binary.display().to_string());
        wrapped.extend(args);
        Some((PathBuf::from("nsenter"), wrapped))
    }

    /// The master's pid when it runs in another pid namespace than fix502.
    fn foreign_pid_namespace(&self) -> Option<u32> {
        self.master_pid()
            .filter(|pid| fix502_probe::process::same_namespace(*pid, "pid") == Some(false))
    }

    /// The master's pid when it runs in another mount namespace than fix502.
    fn foreign_mount_namespace(&self) -> Option<u32> {
        self.master_pid()
            .filter(|pid| fix502_probe::process::same_namespace(*pid, "mnt") == Some(false))
    }

    /// `nginx -t && nginx -s reload` as the user should type it for this nginx.
    pub fn reload_command(&self) -> String {
        // In a Docker container, the way its operator would type it.
        if let Some(name) = self.docker_container_name() {
            let t = shell_line(Path::new("nginx"), &self.nginx_args(&["-t"]));
            let r = shell_line(Path::new("nginx"), &self.nginx_args(&["-s", "reload"]));
            return format!("docker exec {name} {t} && docker exec {name} {r}");
        }
        match (
            self.nginx_command(&["-t"]),
            self.nginx_command(&["-s", "reload"]),
        ) {
            (Some((p, t)), Some((_, r))) => {
                format!("{} && {}", shell_line(&p, &t), shell_line(&p, &r))
            }
            _ => "nginx -t && nginx -s reload".to_owned(),
        }
    }

    /// The name of the Docker container the master runs in, when Docker's files know it.
    pub fn docker_container_name(&self) -> Option<String> {
        let container = self.discovery.master.as_ref()?.container.as_ref()?;
        if container.runtime != "docker" {
            return None;
        }
        fix502_probe::docker::container_by_id(container.id.as_deref()?).map(|c| c.name)
    }

    /// nginx arguments with this run's `-p` and `-c` added.
    pub fn nginx_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(p) = &self.discovery.prefix {
            args.push("-p".to_owned());
            let mut p = p.display().to_string();
            if !p.ends_with('/') {
                p.push('/');
            }
            args.push(p);
        }
        args.push("-c".to_owned());
        args.push(self.discovery.config.display().to_string());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }
}

/// The paths that are nginx's own stderr wherever they are opened.
const STDERR_PATHS: [&str; 3] = ["/dev/stderr", "/proc/self/fd/2", "/dev/fd/2"];

/// The paths that are nginx's own stdout wherever they are opened.
const STDOUT_PATHS: [&str; 3] = ["/dev/stdout", "/proc/self/fd/1", "/dev/fd/1"];

/// Whether log path `file` is a symlink to nginx's file descriptor `fd` (2: stderr, 1:
/// stdout) when seen from the container whose root is `root` (`/proc/PID/root`).
fn links_to(root: &Path, file: &Path, fd: u8) -> bool {
    let names = if fd == 1 { STDOUT_PATHS } else { STDERR_PATHS };
    let inside = root.join(file.strip_prefix("/").unwrap_or(file));
    std::fs::read_link(inside).is_ok_and(|target| {
        target
            .to_str()
            .is_some_and(|t| names.contains(&t) || t == format!("/proc/1/fd/{fd}"))
    })
}

/// The path of a location as written (`/api/`, `= /exact`, `^~ /static/`), or `/` for a
/// regex or named location, whose requests have no one path.
fn location_path(location: Option<&str>) -> String {
    let written = location
        .unwrap_or("/")
        .trim_start_matches("= ")
        .trim_start_matches("^~ ")
        .trim();
    if written.starts_with('/') {
        written.to_owned()
    } else {
        "/".to_owned()
    }
}

/// php-fpm's own page in a pool (`ping.path`, else `pm.status_path`), which php-fpm answers
/// itself without running a script.
fn fpm_page(app: &fix502_probe::appserver::AppServer) -> Option<String> {
    ["ping.path", "pm.status_path"]
        .iter()
        .filter_map(|name| app.setting(name))
        .map(|s| s.value.clone())
        .find(|path| path.starts_with('/'))
}
