//! Facts: what every check reads, computed once and shared. The parsed config, the worker
//! identity, the log paths and the upstream endpoints are made when the run starts; log
//! summaries, probe results, listeners and the `nginx -t` verdict are computed lazily, the
//! first time a check asks, so a check never re-parses or re-probes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fix502_nginx::config::Config;
use fix502_nginx::logscan::{self, LogSummary, ScanOptions};
use fix502_nginx::route::{self, Request, Route};
use fix502_nginx::view::{ConfigView, Peer, TargetAddress};
use fix502_probe::connect::{self, ConnectReport};
use fix502_probe::listeners::{self, Listener};
use fix502_probe::unixsock::{self, Access, Identity, SocketFileInfo};
use tokio::sync::OnceCell;

use crate::command::{CommandOutput, run_command, shell_line};
use crate::discovery::{Discovery, under_prefix};
use crate::exchange::{self, Exchange, Shape};
use crate::options::Options;
use crate::report::{Location, NginxInfo};
use crate::upstream::Upstream;

/// One place in the config that sends requests to an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointUse {
    /// The pass directive as written, e.g. `proxy_pass http://backend`.
    pub directive: String,
    /// Where the pass directive is.
    pub at: Location,
    /// The `server` line of the upstream group, when the endpoint comes from one.
    pub server_at: Option<Location>,
    /// The location it serves (`/api/`), when inside one.
    pub location: Option<String>,
    /// The first server_name of the server block.
    pub server_name: Option<String>,
    /// The index of the pass directive in [`ConfigView::targets`].
    pub target: usize,
}

/// One address nginx connects to, with every place that uses it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The peer.
    pub peer: Peer,
    /// The peer as nginx writes it.
    pub display: String,
    /// The upstream group it belongs to.
    pub group: Option<String>,
    /// Where the config sends requests to it.
    pub uses: Vec<EndpointUse>,
}

impl Endpoint {
    /// A short phrase: `the upstream of location /api/ (nginx.conf:12)`.
    pub fn role(&self) -> String {
        match self.uses.first() {
            Some(u) => {
                let place = u.server_at.as_ref().unwrap_or(&u.at);
                match (&u.location, &self.group) {
                    (Some(loc), Some(g)) => format!(
                        "server of upstream {g} used by location {loc} ({})",
                        short(place)
                    ),
                    (Some(loc), None) => {
                        format!("the upstream of location {loc} ({})", short(place))
                    }
                    (None, Some(g)) => format!("server of upstream {g} ({})", short(place)),
                    (None, None) => format!("the upstream at {}", short(place)),
                }
            }
            None => "an upstream".to_owned(),
        }
    }

    /// The most specific config line for this endpoint.
    pub fn location(&self) -> Option<Location> {
        self.uses
            .first()
            .map(|u| u.server_at.clone().unwrap_or_else(|| u.at.clone()))
    }
}

/// `dir/file:line` with only the last two path parts, for summaries.
pub fn short(loc: &Location) -> String {
    let parts: Vec<_> = loc.file.iter().collect();
    let tail: PathBuf = parts[parts.len().saturating_sub(2)..].iter().collect();
    format!("{}:{}", tail.display(), loc.line)
}

/// What the live probes found for one endpoint.
#[derive(Debug, Clone)]
pub enum ProbeResult {
    /// A TCP endpoint: each address it resolves to, probed.
    Tcp {
        /// Address and connect result.
        attempts: Vec<ConnectReport>,
        /// Set when the name could not be resolved.
        resolve_error: Option<String>,
    },
    /// A unix socket.
    Unix {
        /// The path and its parents.
        info: Box<SocketFileInfo>,
        /// Connecting as fix502's own user.
        connect: ConnectReport,
        /// Whether the worker user may connect, when known.
        access: Option<Access>,
    },
}

impl ProbeResult {
    /// Whether nginx's worker would get through now.
    pub fn ok(&self) -> bool {
        match self {
            Self::Tcp {
                attempts,
                resolve_error,
            } => {
                resolve_error.is_none()
                    && !attempts.is_empty()
                    && attempts.iter().all(|a| a.outcome.is_connected())
            }
            Self::Unix {
                connect, access, ..
            } => connect.outcome.is_connected() && !matches!(access, Some(Access::Denied { .. })),
        }
    }
}

/// The [`LogRead::path`] of the lines read from the systemd journal.
pub const JOURNAL_SOURCE: &str = "the systemd journal (_COMM=nginx)";

/// The error-log summary of one file, or why it could not be read.
#[derive(Debug, Clone)]
pub struct LogRead {
    /// The file.
    pub path: PathBuf,
    /// The summary, or the one-line reason it could not be read.
    pub summary: Result<LogSummary, String>,
    /// Parts of its rotated history that were skipped or damaged, one line each.
    pub notes: Vec<String>,
}

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
    /// Error-log destinations that are not files (stderr, syslog).
    pub error_log_elsewhere: Vec<String>,
    /// Access logs.
    pub access_logs: Vec<PathBuf>,
    /// Every address the config connects to.
    pub endpoints: Vec<Endpoint>,
    /// Pass directives whose address is a variable (resolved per request).
    pub variable_targets: Vec<(String, Location)>,
    /// Where `--url` goes through the config (server, locations, pass directive), or why
    /// it could not be routed; `None` without `--url`. When it reaches a pass directive,
    /// [`Facts::endpoints`] and [`Facts::variable_targets`] hold only that directive's.
    pub route: Option<Result<Route, String>>,
    logs: OnceCell<Vec<LogRead>>,
    access: OnceCell<Vec<crate::steps::access::AccessRead>>,
    probes: OnceCell<Vec<ProbeResult>>,
    /// One cell per endpoint, so an endpoint's exchange starts as soon as its own connect
    /// is done, not when the slowest endpoint's is.
    probe_cells: Vec<OnceCell<ProbeResult>>,
    listeners: OnceCell<Result<Arc<Vec<Listener>>, String>>,
    exchanges: OnceCell<Vec<Option<Exchange>>>,
    nginx_test: OnceCell<Result<CommandOutput, String>>,
}

impl Facts {
    /// Loads the config and derives the shared facts. Never fails: problems become findings.
    pub fn new(options: Options, discovery: Discovery) -> Self {
        let (config, config_error) = match Config::load(&discovery.config) {
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
                match file_log(&p) {
                    Some(f) if !error_logs.contains(&f) => error_logs.push(f),
                    Some(_) => {}
                    None if !error_log_elsewhere.contains(&p) => error_log_elsewhere.push(p),
                    None => {}
                }
            }
        } else {
            error_logs = options.error_logs.clone();
        }
        let access_logs = if options.access_logs.is_empty() {
            let mut v: Vec<PathBuf> = Vec::new();
            for l in &view.access_logs {
                if let Some(f) = file_log(&l.path)
                    && !v.contains(&f)
                {
                    v.push(f);
                }
            }
            v
        } else {
            options.access_logs.clone()
        };

        let (mut endpoints, mut variable_targets) = endpoints_of(&view);
        let route = options.url.as_deref().map(|url| route_url(&view, url));
        if let Some(Ok(Route {
            target: Some(target),
            ..
        })) = &route
        {
            endpoints.retain(|e| e.uses.iter().any(|u| u.target == *target));
            let at = view.targets.get(*target).map(|t| Location::from(&t.span));
            variable_targets.retain(|(_, loc)| Some(loc) == at.as_ref());
        }
        let probe_cells = endpoints.iter().map(|_| OnceCell::new()).collect();
        Self {
            options,
            discovery,
            config,
            config_error,
            view,
            worker_user,
            error_logs,
            error_log_elsewhere,
            access_logs,
            endpoints,
            variable_targets,
            route,
            logs: OnceCell::new(),
            access: OnceCell::new(),
            probes: OnceCell::new(),
            probe_cells,
            listeners: OnceCell::new(),
            exchanges: OnceCell::new(),
            nginx_test: OnceCell::new(),
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
            error_logs: self.error_logs.clone(),
            access_logs: self.access_logs.clone(),
            discovered_via: d.via.clone(),
        }
    }

    /// The worker identity, for socket permission checks.
    pub fn worker_identity(&self) -> Option<Identity> {
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
        jiff::ZonedDateTime::now()
            .checked_sub(
                jiff::SignedDuration::try_from(self.options.since)
                    .unwrap_or(jiff::SignedDuration::from_hours(1)),
            )
            .ok()
            .map(|z| z.datetime())
    }

    /// Whether nginx's error log goes to stderr or syslog and this host's systemd journal
    /// can be read for it.
    pub fn reads_journal(&self) -> bool {
        self.error_log_elsewhere
            .iter()
            .any(|d| d == "stderr" || d.starts_with("syslog:"))
            && crate::journal::available()
    }

    /// The error-log summaries (read once).
    pub async fn logs(&self) -> &[LogRead] {
        self.logs
            .get_or_init(|| async {
                let since = self.window_start();
                let opts = ScanOptions {
                    since,
                    bucket_minutes: crate::timeline::bucket_for(self.options.since),
                    ..ScanOptions::default()
                };
                let paths = self.error_logs.clone();
                let journal = self.reads_journal();
                let reads = tokio::task::spawn_blocking(move || {
                    let mut reads: Vec<LogRead> = paths
                        .into_iter()
                        .map(|path| match logscan::scan_history(&path, &opts) {
                            Ok((summary, notes)) => LogRead {
                                path,
                                summary: Ok(summary),
                                notes,
                            },
                            Err(e) => LogRead {
                                path,
                                summary: Err(e.to_string()),
                                notes: Vec::new(),
                            },
                        })
                        .collect();
                    if journal {
                        reads.push(LogRead {
                            path: PathBuf::from(JOURNAL_SOURCE),
                            summary: crate::journal::scan(&opts),
                            notes: Vec::new(),
                        });
                    }
                    reads
                })
                .await;
                reads.unwrap_or_default()
            })
            .await
    }

    /// Every access log read in its `log_format`, across its history (read once).
    pub async fn access_reads(&self) -> &[crate::steps::access::AccessRead] {
        self.access
            .get_or_init(|| async {
                let opts = fix502_nginx::accesslog::AccessOptions {
                    since: self.window_start(),
                    ..fix502_nginx::accesslog::AccessOptions::default()
                };
                let paths = self.access_logs.clone();
                let named = crate::steps::access::named_logs(self);
                let formats = match &self.config {
                    Some(c) => fix502_nginx::logformat::LogFormat::all(c),
                    None => vec![fix502_nginx::logformat::LogFormat::combined()],
                };
                tokio::task::spawn_blocking(move || {
                    crate::steps::access::read_all(&paths, &named, &formats, &opts)
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

    /// The index of an endpoint: its own address first, else an address its host name
    /// resolved to (which needs the probes).
    async fn index_of(&self, upstream: &Upstream) -> Option<usize> {
        if let Some(i) = self.index_at(upstream) {
            return Some(i);
        }
        self.probes().await.iter().position(|p| {
            matches!(p, ProbeResult::Tcp { attempts, .. } if attempts.iter().any(|a| Upstream::parse(&a.target) == *upstream))
        })
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

    /// Listening sockets on this host (read once).
    pub async fn listeners(&self) -> Result<Arc<Vec<Listener>>, String> {
        self.listeners
            .get_or_init(|| async {
                tokio::task::spawn_blocking(listeners::listeners)
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
        self.exchanges
            .get_or_init(|| async {
                let logged = self.logged_requests().await;
                let version = self.nginx_version();
                let page_size = procfs::page_size();
                let conf_dir = self.discovery.config.parent().map(Path::to_path_buf);
                let tasks = self.endpoints.iter().enumerate().map(|(i, endpoint)| {
                    let logged = logged
                        .iter()
                        .find(|(peer, _)| *peer == endpoint.display)
                        .map(|(_, req)| req.as_str());
                    let conf_dir = conf_dir.clone();
                    async move {
                        let target = self.view.targets.get(endpoint.uses.first()?.target)?;
                        let probe = self.probe_at(i).await?;
                        let peer = reachable_target(&endpoint.peer, probe)?;
                        let (uri, logged_get) = self.request_uri(logged);
                        let shape = Shape {
                            version,
                            page_size,
                            uri,
                            logged_get,
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

    /// The URI to probe with: `--url`'s path, else the logged GET/HEAD request's, else `/`;
    /// and whether it came from a logged GET/HEAD.
    fn request_uri(&self, logged: Option<&str>) -> (String, bool) {
        if let Some(url) = &self.options.url {
            let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            let path = after_scheme
                .find('/')
                .and_then(|i| after_scheme.get(i..))
                .unwrap_or("/");
            return (path.to_owned(), true);
        }
        let mut words = logged.unwrap_or_default().split_whitespace();
        match (words.next(), words.next()) {
            (Some("GET" | "HEAD"), Some(uri)) if uri.starts_with('/') => (uri.to_owned(), true),
            _ => ("/".to_owned(), false),
        }
    }

    /// `nginx -t` on this config (run once).
    pub async fn nginx_test(&self) -> Result<&CommandOutput, &String> {
        self.nginx_test
            .get_or_init(|| async {
                let Some((program, args)) = self.nginx_command(&["-t"]) else {
                    return Err("no nginx binary found (pass --nginx)".to_owned());
                };
                run_command(&program, &args, Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .as_ref()
    }

    /// The command that runs the nginx binary with this run's `-p`, `-c` and `extra`, as
    /// nginx itself would see the files: when the master runs in another mount namespace
    /// (its own /etc/hosts, a container), through `nsenter --mount=/proc/PID/ns/mnt`.
    /// `None` without a binary.
    pub fn nginx_command(&self, extra: &[&str]) -> Option<(PathBuf, Vec<String>)> {
        let binary = self.discovery.binary.clone()?;
        let args = self.nginx_args(extra);
        match self
            .master_pid()
            .filter(|pid| fix502_probe::process::same_namespace(*pid, "mnt") == Some(false))
        {
            Some(pid) => {
                let mut wrapped = vec![
                    format!("--mount=/proc/{pid}/ns/mnt"),
                    "--".to_owned(),
                    binary.display().to_string(),
                ];
                wrapped.extend(args);
                Some((PathBuf::from("nsenter"), wrapped))
            }
            None => Some((binary, args)),
        }
    }

    /// `nginx -t && nginx -s reload` as the user should type it for this nginx.
    pub fn reload_command(&self) -> String {
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

/// Routes `--url` through the config. A URL on a port no server listens on (a proxy or load
/// balancer in front of nginx) is routed as if it arrived on the first listen port whose
/// servers know its host name, with a note saying so.
fn route_url(view: &ConfigView, url: &str) -> Result<Route, String> {
    let request = Request::from_url(url).map_err(|e| e.to_string())?;
    match route::route(view, &request) {
        Err(route::RouteError::NoServerForPort(port)) => {
            let mut ports: Vec<u16> = Vec::new();
            for p in view
                .servers
                .iter()
                .flat_map(|s| &s.listens)
                .filter_map(|l| l.addr.port())
            {
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
            let named = |r: &Route| {
                !matches!(
                    r.server_match,
                    route::ServerMatch::DefaultServer | route::ServerMatch::FirstServer
                )
            };
            let tries: Vec<(u16, Route)> = ports
                .iter()
                .filter_map(|&p| {
                    let req = Request {
                        local: None,
                        port: p,
                        ..request.clone()
                    };
                    route::route(view, &req).ok().map(|r| (p, r))
                })
                .collect();
            let chosen = tries
                .iter()
                .find(|(_, r)| named(r))
                .or(tries.first())
                .cloned();
            match chosen {
                Some((p, mut r)) => {
                    r.notes.insert(
                        0,
                        format!("no server listens on port {port}; routed as if the request arrived on port {p} (a proxy or load balancer in front of nginx?)"),
                    );
                    Ok(r)
                }
                None => Err(format!("no server block listens on port {port}")),
            }
        }
        other => other.map_err(|e| e.to_string()),
    }
}

/// Runs futures concurrently on the current task and returns their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Probes one peer as nginx would reach it; `identity` adds the worker's access check, and
/// host names resolve as getaddrinfo does inside the mount namespace of `nginx_pid` (its own
/// /etc/hosts and resolv.conf when it runs in another one).
pub async fn probe_endpoint(
    peer: &Peer,
    timeout: Duration,
    identity: Option<&Identity>,
    nginx_pid: Option<u32>,
) -> ProbeResult {
    match peer {
        Peer::Unix(path) => {
            let info = Box::new(unixsock::inspect_socket_path(path));
            let connect = connect::connect_unix(path, timeout).await;
            let access = identity.map(|id| unixsock::may_connect(id, &info));
            ProbeResult::Unix {
                info,
                connect,
                access,
            }
        }
        Peer::Inet { host, port } => {
            let addrs: Result<Vec<std::net::SocketAddr>, String> =
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => Ok(vec![std::net::SocketAddr::new(ip, *port)]),
                    Err(_) => fix502_probe::dns::resolve_as(nginx_pid, host, *port, timeout)
                        .await
                        .map(|a| {
                            a.addrs
                                .into_iter()
                                .map(|ip| std::net::SocketAddr::new(ip, *port))
                                .collect()
                        })
                        .map_err(|e| e.to_string()),
                };
            match addrs {
                Ok(addrs) => {
                    let attempts =
                        join_all(addrs.into_iter().map(|a| connect::connect_tcp(a, timeout))).await;
                    ProbeResult::Tcp {
                        attempts,
                        resolve_error: None,
                    }
                }
                Err(e) => ProbeResult::Tcp {
                    attempts: Vec::new(),
                    resolve_error: Some(e),
                },
            }
        }
    }
}

/// Where to speak to an endpoint whose connect probe succeeded: its first reachable address.
fn reachable_target(peer: &Peer, probe: &ProbeResult) -> Option<fix502_probe::stream::Endpoint> {
    use fix502_probe::stream::Endpoint as Target;
    match (peer, probe) {
        (Peer::Unix(path), ProbeResult::Unix { .. }) if probe.ok() => {
            Some(Target::Unix(path.clone()))
        }
        (_, ProbeResult::Tcp { attempts, .. }) => attempts
            .iter()
            .find(|a| a.outcome.is_connected())
            .and_then(|a| a.target.parse().ok())
            .map(Target::Tcp),
        _ => None,
    }
}

/// Every endpoint of the config, deduplicated, with the places that use it.
fn endpoints_of(view: &ConfigView) -> (Vec<Endpoint>, Vec<(String, Location)>) {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut variables = Vec::new();
    for (index, target) in view.targets.iter().enumerate() {
        let directive = format!("{} {}", target.module.directive(), target.raw);
        let at = Location::from(&target.span);
        if let TargetAddress::Variable(_) = target.address {
            variables.push((directive, at));
            continue;
        }
        let server_name = target
            .server
            .and_then(|i| view.servers.get(i))
            .and_then(|s| s.names.first().cloned());
        let group = match &target.address {
            TargetAddress::Group(g) => Some(g.clone()),
            _ => None,
        };
        for (peer, server) in view.peers_of(target) {
            let display = peer.to_string();
            let use_ = EndpointUse {
                directive: directive.clone(),
                at: at.clone(),
                server_at: server.map(|s| Location::from(&s.span)),
                location: target.location.clone(),
                server_name: server_name.clone(),
                target: index,
            };
            match endpoints.iter_mut().find(|e| e.display == display) {
                Some(e) => e.uses.push(use_),
                None => endpoints.push(Endpoint {
                    peer,
                    display,
                    group: group.clone(),
                    uses: vec![use_],
                }),
            }
        }
    }
    (endpoints, variables)
}
