//! [`Lab`]: one scenario set up in a temp dir with its own nginx, upstreams and ports.
//!
//! Lifecycle: create the dir, build the scenario's upstreams (threads, or a PHP-FPM child), write
//! the config, start nginx (for `stale-dns` in a mount namespace with its own `/etc/hosts`,
//! which is then rewritten in place), send the scenario's requests, wait (bounded) until the
//! error log (or, when nginx logs nothing, the access log) shows the failure, then make the
//! scenario's config edit (and failed reload); [`Lab::stop`] or `Drop` stops nginx by its pid
//! file, stops PHP-FPM and the upstream threads, and removes the dir.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::unistd::{Group, User, geteuid};
use tempfile::TempDir;

use crate::child::LabChild;
use crate::config::{self, ConfigSpec};
use crate::dns::DnsResponder;
use crate::nginx::{self, ConfigTest, Instance};
use crate::phpfpm::PhpFpm;
use crate::process::{read_pid_file, reload_master, stop_master};
use crate::scenario::ScenarioInfo;
use crate::scenarios::find;
use crate::setup::{self, ConfigEdit, LabDir, NamespaceHosts, Setup, Traffic};
use crate::upstream::Responder;
use crate::{LabError, client};

/// How long to wait for the expected line in the error (or access) log.
const LOG_WAIT: Duration = Duration::from_secs(3);
/// How many times [`Lab::start`] tries when a port it picked was taken meanwhile.
const START_ATTEMPTS: u32 = 3;
/// Poll interval while waiting for the error log.
const POLL: Duration = Duration::from_millis(25);
/// How long after nginx started a config edit is made at the earliest, so that the file's
/// mtime is clearly later than the workers' start time even at whole-second resolution.
const EDIT_AFTER: Duration = Duration::from_secs(2);
/// The error-log fragment of a failed reload (`[emerg] ... invalid value in ...`).
const RELOAD_FAILED: &str = "[emerg]";
/// The unprivileged user the workers run as when the lab runs as root.
const WORKER_USER: &str = "nobody";
/// Groups tried for the workers, in order (Debian has `nogroup`, others `nobody`).
const WORKER_GROUPS: &[&str] = &["nogroup", "nobody"];

/// How to run a lab.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// The nginx binary; default: `nginx` on PATH, else /usr/sbin, /sbin, /usr/local/sbin,
    /// /usr/local/nginx/sbin.
    pub nginx: Option<PathBuf>,
    /// Keep the temp dir after the lab stops (for inspection).
    pub keep: bool,
}

/// A running scenario. Dropping it tears it down like [`Lab::stop`], ignoring errors.
#[derive(Debug)]
pub struct Lab {
    info: &'static ScenarioInfo,
    /// `None` once the dir is kept (or removed).
    temp: Option<TempDir>,
    dir: PathBuf,
    config: PathBuf,
    error_log: PathBuf,
    access_log: PathBuf,
    pid_file: PathBuf,
    nginx: PathBuf,
    listen: SocketAddr,
    expected_upstream: Option<String>,
    responders: Vec<Responder>,
    php_fpm: Option<PhpFpm>,
    /// Other sites' PHP-FPM masters.
    more_php_fpm: Vec<PhpFpm>,
    /// Other programs serving for the scenario (uWSGI, a decoy listener).
    children: Vec<LabChild>,
    /// The other sites: their server names, for their requests.
    sites: Vec<String>,
    /// The upstreams of the host's other members that work.
    healthy: Vec<String>,
    /// The hosts file nginx sees as `/etc/hosts`, when it runs in its own mount namespace.
    hosts: Option<PathBuf>,
    /// The DNS server the config's `resolver` names (`dns-nxdomain`).
    dns: Option<DnsResponder>,
    /// Held for the lab's life by a scenario that runs alone ([`ScenarioInfo::runs_alone`]).
    _alone: Option<nix::fcntl::Flock<File>>,
    stopped: bool,
}

impl Lab {
    /// Sets up scenario `name` and returns once it shows its failure (blocking, bounded).
    ///
    /// Creates the temp prefix, starts the upstream apps (responder threads, or PHP-FPM) and
    /// nginx (unless the scenario is `nginx-not-running`), sends the scenario's requests, and
    /// waits until the error log has the scenario's line ([`ScenarioInfo::log_marker`]), or,
    /// when nginx logs nothing, the access log has its status. On error everything started so
    /// far is stopped again.
    ///
    /// Scenarios that edit the config afterwards (`config-invalid`, `not-reloaded`,
    /// `failed-reload`) make the edit at least 2 s after nginx started, so the file is clearly
    /// newer than the workers; `failed-reload` then sends SIGHUP and also waits for the
    /// `[emerg]` line of the failed reload.
    ///
    /// The lab's listen port is picked free just before nginx binds it, so a test running
    /// beside it may take it first: a start that fails with `Address already in use` is
    /// tried again with new ports, at most three times in all.
    pub fn start(name: &str, opts: &LabOptions) -> Result<Self, LabError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(name, opts) {
                Err(LabError::NginxFailed { stderr })
                    if stderr.contains("Address already in use") && attempt < START_ATTEMPTS =>
                {
                    tracing::debug!(attempt, "a port the lab picked was taken; trying again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`Self::start`].
    fn start_once(name: &str, opts: &LabOptions) -> Result<Self, LabError> {
        let info = find(name).ok_or_else(|| LabError::UnknownScenario(name.to_owned()))?;
        let root = geteuid().is_root();
        if info.needs_root && !root {
            return Err(LabError::NeedsRoot(info.name));
        }
        let nginx = nginx::find_binary(opts.nginx.as_deref())?;
        let alone = if info.alone {
            Some(wait_alone()?)
        } else {
            None
        };
        let user = if root { Some(worker_user()?) } else { None };
        let temp = create_dir(root)?;
        let dir = temp.path().to_path_buf();
        let dir_text = config::check_path(&dir)?.to_owned();
        let setup = (info.build)(
            setup::listen_addr()?,
            LabDir {
                path: &dir,
                text: &dir_text,
                user: user.as_deref(),
            },
        )?;

        let mut lab = Self {
            info,
            temp: Some(temp),
            config: dir.join("conf/nginx.conf"),
            error_log: dir.join("logs/error.log"),
            access_log: dir.join("logs/access.log"),
            pid_file: dir.join("nginx.pid"),
            dir,
            nginx,
            listen: setup.listen,
            expected_upstream: setup.expected_upstream.clone(),
            responders: Vec::new(),
            php_fpm: None,
            more_php_fpm: Vec::new(),
            children: Vec::new(),
            sites: setup.sites.iter().map(|s| s.server_name.clone()).collect(),
            healthy: setup.healthy.clone(),
            hosts: setup.hosts.as_ref().map(|h| h.path.clone()),
            dns: None,
            _alone: alone,
            stopped: false,
        };
        if opts.keep
            && let Some(temp) = lab.temp.take()
        {
            // Not inside the macro: its arguments are not evaluated when the level is off.
            let kept = temp.keep();
            tracing::info!(dir = %kept.display(), "lab dir will be kept");
        }
        let Setup {
            listen,
            location,
            group,
            group_extra,
            responders,
            php_fpm,
            traffic,
            start_nginx,
            edit,
            error_log_level,
            upstream_log,
            hosts,
            dns,
            groups,
            sites,
            more_php_fpm,
            children,
            app_marker,
            ..
        } = setup;
        lab.responders = responders;
        lab.php_fpm = php_fpm;
        lab.more_php_fpm = more_php_fpm;
        lab.children = children;
        lab.dns = dns;

        let spec = ConfigSpec {
            listen,
            user,
            group,
            group_extra,
            error_log_level,
            upstream_log,
            groups,
            sites: !sites.is_empty(),
        };
        lab.write("conf/nginx.conf", &config::main_conf(&dir_text, &spec))?;
        lab.write("conf/app.conf", &config::app_conf(&location))?;
        if !sites.is_empty() {
            let path = lab.dir.join(config::SITES_DIR);
            fs::create_dir(&path)
                .map_err(|e| LabError::io(format!("create {}", path.display()), e))?;
        }
        for site in &sites {
            lab.write(
                &format!("{}/{}.conf", config::SITES_DIR, site.server_name),
                &config::site_conf(listen, site),
            )?;
        }
        tracing::info!(scenario = info.name, dir = %lab.dir.display(), "lab set up");

        let mut started = None;
        if start_nginx {
            let pid = lab.instance().start(listen)?;
            started = Some(Instant::now());
            tracing::info!(scenario = info.name, pid, %listen, "lab nginx started");
            if let Some(hosts) = &hosts {
                rewrite_in_place(hosts)?;
            }
            lab.send_traffic(traffic);
            if let Some(marker) = info.log_marker() {
                lab.wait_for(&lab.error_log, marker)?;
            } else if let Some(status) = info.http_status() {
                // nginx logs nothing: wait until it has logged the answer it gave.
                lab.wait_for(&lab.access_log, &format!("\" {status} "))?;
            }
            if let Some((log, marker)) = &app_marker {
                lab.wait_for(log, marker)?;
            }
        }
        if let Some(edit) = edit {
            lab.edit_config(edit, &location, started)?;
        }
        Ok(lab)
    }

    /// The scenario this lab reproduces.
    pub fn info(&self) -> &'static ScenarioInfo {
        self.info
    }

    /// The lab's temp dir (also the nginx prefix).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The main config, `<dir>/conf/nginx.conf`.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The nginx prefix (`-p`), the same as [`Lab::dir`].
    pub fn prefix(&self) -> &Path {
        &self.dir
    }

    /// The nginx binary the lab runs.
    pub fn nginx_binary(&self) -> &Path {
        &self.nginx
    }

    /// The error log, `<dir>/logs/error.log`.
    pub fn error_log(&self) -> &Path {
        &self.error_log
    }

    /// The access log, `<dir>/logs/access.log`.
    pub fn access_log(&self) -> &Path {
        &self.access_log
    }

    /// The pid file, `<dir>/nginx.pid`.
    pub fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    /// Where the lab's nginx server listens (127.0.0.1 and a free port).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The upstream as nginx writes it, e.g. `127.0.0.1:40123` or
    /// `unix:/tmp/fix502-lab-x/run/app.sock`; for `no-live-upstreams` the group's first server,
    /// for `group-one-dead` the dead one, for `no-resolver` and `dns-nxdomain` the name and port
    /// (`app.lab.fix502.test:40123`), for `stale-dns` the old address nginx still connects to,
    /// and for `not-reloaded` and `failed-reload` the address the running config still uses.
    pub fn expected_upstream(&self) -> Option<String> {
        self.expected_upstream.clone()
    }

    /// The nginx master pid, read from the pid file now (`None` if there is none).
    pub fn master_pid(&self) -> Option<u32> {
        read_pid_file(&self.pid_file)
    }

    /// The PHP-FPM master's pid, for scenarios with a real PHP-FPM pool (`None` otherwise or
    /// once it was stopped).
    pub fn app_pid(&self) -> Option<u32> {
        self.php_fpm.as_ref().map(PhpFpm::pid)
    }

    /// The app's own error log, `<dir>/logs/php-fpm.log`, for scenarios with a real PHP-FPM
    /// pool.
    pub fn app_log(&self) -> Option<&Path> {
        self.php_fpm.as_ref().map(PhpFpm::log)
    }

    /// The pids of the scenario's other programs: other sites' PHP-FPM masters, uWSGI, the
    /// decoy listener (each leads a process group of its own, stopped with the lab).
    pub fn other_pids(&self) -> Vec<u32> {
        self.more_php_fpm
            .iter()
            .map(PhpFpm::pid)
            .chain(self.children.iter().map(LabChild::pid))
            .collect()
    }

    /// The upstreams of the host's other members that work (other sites' apps and pools), as
    /// nginx writes them: a correct diagnosis names none of them. Empty for scenarios with one
    /// site.
    pub fn healthy_upstreams(&self) -> &[String] {
        &self.healthy
    }

    /// The first lines of the request heads the scenario's apps were sent so far (by nginx,
    /// and by anything else that spoke to them), in order per app.
    pub fn requests_seen(&self) -> Vec<String> {
        self.responders.iter().flat_map(Responder::seen).collect()
    }

    /// Sends one `GET path` through the lab's nginx (2 s timeouts) and returns the status code.
    pub fn request(&self, path: &str) -> Result<u16, LabError> {
        client::get_status(self.listen, path)
    }

    /// The DNS server that the config's `resolver` directive names (`dns-nxdomain`); `None`
    /// for scenarios without one. Its table and behaviour may be changed while the lab runs
    /// (nginx caches answers for 1 s: `valid=1s`).
    pub fn dns(&self) -> Option<&DnsResponder> {
        self.dns.as_ref()
    }

    /// The hosts file the lab's nginx sees as `/etc/hosts` (bind-mounted in its own mount
    /// namespace), for `stale-dns`; `None` when nginx uses the host's `/etc/hosts`.
    pub fn hosts_file(&self) -> Option<&Path> {
        self.hosts.as_deref()
    }

    /// Runs `nginx -t` on the config as it is on disk now (for `stale-dns` in a mount namespace
    /// with the lab's hosts file, as the lab's nginx sees it).
    pub fn test_config(&self) -> Result<ConfigTest, LabError> {
        self.instance().test_config()
    }

    /// Tells the lab's nginx to reload its config, like `nginx -s reload`: SIGHUP to the master
    /// named in the pid file. Returns as soon as the signal is sent; whether the reload worked
    /// shows in the error log. Fails with [`LabError::NginxNotRunning`] when no master of this
    /// lab runs.
    pub fn reload(&self) -> Result<(), LabError> {
        let pid = reload_master(&self.pid_file, &self.dir_marker())?;
        tracing::info!(pid, "lab nginx told to reload");
        Ok(())
    }

    /// Stops nginx (by the pid file, read now), the upstreams, and removes the dir unless kept.
    pub fn stop(mut self) -> Result<(), LabError> {
        self.shutdown()
    }

    fn instance(&self) -> Instance<'_> {
        Instance {
            binary: &self.nginx,
            prefix: &self.dir,
            config: &self.config,
            error_log: &self.error_log,
            pid_file: &self.pid_file,
            hosts: self.hosts.as_deref(),
        }
    }

    /// `<dir>/`: every command line that starts nginx from this lab names it (in -p or -c).
    fn dir_marker(&self) -> String {
        format!("{}/", self.dir.display())
    }

    /// Makes the scenario's change to `conf/app.conf` (at least [`EDIT_AFTER`] after `started`)
    /// and, for a reload, waits until nginx logged that the reload failed.
    fn edit_config(
        &self,
        edit: ConfigEdit,
        location: &[String],
        started: Option<Instant>,
    ) -> Result<(), LabError> {
        if let Some(wait) =
            started.and_then(|s| (s + EDIT_AFTER).checked_duration_since(Instant::now()))
        {
            thread::sleep(wait);
        }
        match edit {
            ConfigEdit::DropSemicolon => {
                self.write("conf/app.conf", &config::broken_app_conf(location))
            }
            ConfigEdit::Rewrite(directives) => {
                self.write("conf/app.conf", &config::app_conf(&directives))
            }
            ConfigEdit::RewriteAndReload(directives) => {
                self.write("conf/app.conf", &config::app_conf(&directives))?;
                self.reload()?;
                self.wait_for(&self.error_log, RELOAD_FAILED)
            }
        }
    }

    /// Writes `text` to `<dir>/<relative>`.
    fn write(&self, relative: &str, text: &str) -> Result<(), LabError> {
        let path = self.dir.join(relative);
        fs::write(&path, text).map_err(|e| LabError::io(format!("write {}", path.display()), e))
    }

    /// Sends the scenario's requests so that nginx logs its failure, and one `GET /` to each
    /// other site; outcomes are only traced.
    fn send_traffic(&self, traffic: Traffic) {
        for site in &self.sites {
            match client::get_status_at(self.listen, site, "/") {
                Ok(status) => tracing::debug!(status, site, "lab request"),
                Err(e) => tracing::debug!(error = %e, site, "lab request failed"),
            }
        }
        if traffic.concurrent {
            // Bounded: one thread per request, each under the client's timeouts.
            thread::scope(|scope| {
                for _ in 0..traffic.gets {
                    scope.spawn(|| match self.request("/") {
                        Ok(status) => tracing::debug!(status, "lab request"),
                        Err(e) => tracing::debug!(error = %e, "lab request failed"),
                    });
                }
            });
            return;
        }
        for i in 0..traffic.gets {
            if i > 0 {
                thread::sleep(traffic.gap);
            }
            match self.request("/") {
                Ok(status) => tracing::debug!(status, "lab request"),
                Err(e) => tracing::debug!(error = %e, "lab request failed"),
            }
        }
        if traffic.post {
            thread::sleep(traffic.gap);
            match client::status(self.listen, "POST", "/", b"lab=1") {
                Ok(status) => tracing::debug!(status, "lab POST"),
                Err(e) => tracing::debug!(error = %e, "lab POST failed"),
            }
        }
    }

    /// Waits until `log` contains `marker`.
    fn wait_for(&self, log: &Path, marker: &str) -> Result<(), LabError> {
        let deadline = Instant::now() + LOG_WAIT;
        loop {
            let text = fs::read_to_string(log).unwrap_or_default();
            if text.contains(marker) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "{} shows no line with {marker:?} after {} s",
                    log.display(),
                    LOG_WAIT.as_secs()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// Tears everything down once; later calls do nothing.
    fn shutdown(&mut self) -> Result<(), LabError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let nginx = stop_master(&self.pid_file, &self.dir_marker());
        let mut php_fpm = self.php_fpm.as_mut().map_or(Ok(()), PhpFpm::stop);
        if php_fpm.is_ok() {
            self.php_fpm = None;
        }
        for other in &mut self.more_php_fpm {
            php_fpm = php_fpm.and(other.stop());
        }
        for child in &mut self.children {
            php_fpm = php_fpm.and(child.stop());
        }
        for responder in &mut self.responders {
            responder.stop();
        }
        if let Some(dns) = self.dns.take() {
            dns.stop();
        }
        let result = nginx.and(php_fpm);
        let Some(temp) = self.temp.take() else {
            return result;
        };
        if result.is_err() {
            // Leave the files of a process we could not stop where it can still find them.
            let kept = temp.keep();
            tracing::warn!(dir = %kept.display(), "lab nginx or php-fpm still runs; dir kept");
            return result;
        }
        temp.close()
            .map_err(|e| LabError::io(format!("remove {}", self.dir.display()), e))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "lab teardown failed");
        }
    }
}

/// Rewrites nginx's hosts file with its after-start text in place: truncate and write the same
/// inode, never rename, because nginx's namespace has this inode bind-mounted on `/etc/hosts`.
fn rewrite_in_place(hosts: &NamespaceHosts) -> Result<(), LabError> {
    let io = |e| LabError::io(format!("rewrite {}", hosts.path.display()), e);
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&hosts.path)
        .map_err(io)?;
    file.write_all(hosts.after_start.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    tracing::info!(file = %hosts.path.display(), "lab hosts file rewritten: the app moved");
    Ok(())
}

/// `nobody nogroup` (or `nobody nobody`): the worker user when running as root.
fn worker_user() -> Result<String, LabError> {
    let user_exists = User::from_name(WORKER_USER).ok().flatten().is_some();
    if !user_exists {
        return Err(LabError::Unsupported(format!(
            "user {WORKER_USER} does not exist, so the lab cannot run unprivileged workers"
        )));
    }
    WORKER_GROUPS
        .iter()
        .find(|group| Group::from_name(group).ok().flatten().is_some())
        .map(|group| format!("{WORKER_USER} {group}"))
        .ok_or_else(|| {
            LabError::Unsupported(format!(
                "neither group {} exists, so the lab cannot run unprivileged workers",
                WORKER_GROUPS.join(" nor ")
            ))
        })
}

/// Creates the lab dir (mode 0755) with conf/, logs/ (empty logs), run/ and tmp/.
///
/// As root the workers run as `nobody`, so every parent dir must be searchable by others.
fn create_dir(root: bool) -> Result<TempDir, LabError> {
    let temp = tempfile::Builder::new()
        .prefix("fix502-lab-")
        .tempdir()
        .map_err(|e| LabError::io("create the lab temp dir", e))?;
    let dir = temp.path();
    if root
        && let Some(closed) = dir.ancestors().skip(1).find(|p| {
            p.metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o001 == 0)
        })
    {
        return Err(LabError::Unsupported(format!(
            "{} is not searchable by other users, so nginx workers (nobody) cannot reach the lab; set TMPDIR=/tmp",
            closed.display()
        )));
    }
    let chmod = |path: &Path| {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io(format!("chmod 0755 {}", path.display()), e))
    };
    chmod(dir)?;
    for sub in ["conf", "logs", "run", "tmp"] {
        let path = dir.join(sub);
        fs::create_dir(&path).map_err(|e| LabError::io(format!("create {}", path.display()), e))?;
        chmod(&path)?;
    }
    for log in ["logs/error.log", "logs/access.log"] {
        let path = dir.join(log);
        fs::write(&path, "").map_err(|e| LabError::io(format!("create {}", path.display()), e))?;
    }
    Ok(temp)
}

/// The lock file of the scenarios that run alone.
const ALONE_LOCK: &str = "fix502-lab-alone.lock";
/// How long a scenario that runs alone waits for another one to end.
const ALONE_WAIT: Duration = Duration::from_secs(300);

/// Takes the host-wide lock of the scenarios that run alone, waiting (bounded) for the
/// scenario that holds it to end.
fn wait_alone() -> Result<nix::fcntl::Flock<File>, LabError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = std::env::temp_dir().join(ALONE_LOCK);
    let start = Instant::now();
    // Bounded: polled until ALONE_WAIT.
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LabError::io(format!("open {}", path.display()), e))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((_, errno)) if start.elapsed() < ALONE_WAIT => {
                tracing::debug!(%errno, "another scenario that runs alone holds the lock");
                thread::sleep(Duration::from_millis(50));
            }
            Err((_, errno)) => {
                return Err(LabError::io(
                    format!("wait for {}", path.display()),
                    std::io::Error::from(errno),
                ));
            }
        }
    }
}
