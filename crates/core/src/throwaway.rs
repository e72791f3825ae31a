//! nginx's own config test (`nginx -t`, and `nginx -T` for the file list) run so that it
//! leaves the host as it was. This file is the one place that runs it, and the one place that
//! knows what it writes.
//!
//! Run as root, `nginx -t` writes (nginx 1.22, `ngx_init_cycle`): it opens the pid file with
//! `O_CREAT` (an empty file when it was missing), opens every log file for appending (the
//! startup error log of the build, `error_log`, `access_log` without variables: created when
//! missing), creates every temp and cache directory (`mkdir`; then, when root, `chown` to the
//! worker user and `chmod u+rwx`, on directories that already existed too), binds every
//! listen address (a unix socket file is created, then deleted), and appends its `[emerg]`
//! lines to the error logs it has opened. docs/architecture.md has the details.
//!
//! How it runs here: in a private mount namespace made by a short-lived thread (as the lab
//! does: `unshare` there affects that thread only, never the rest of the process), entered
//! from nginx's own namespace when the master runs in another one. In it, every writable
//! mount nginx sees becomes an overlay whose lower layer is the mount itself and whose upper
//! layer is on a tmpfs of that namespace; kernel file systems (proc, sysfs, devtmpfs, ...),
//! read-only mounts and single-file mounts are bound as they are; the live unix sockets are
//! bound over their layered paths (an overlay does not pass a connect through); existing log
//! files are covered by an empty stand-in, so that opening them does not copy a large log up.
//! The namespace's root is then pivoted onto the layers and nginx started there: it sees the
//! same paths, contents, owners and modes as on the host, so its verdict (exit status and
//! messages) is plain `nginx -t`'s. When nginx exits the namespace ends, and with it every
//! layer and all that nginx wrote. The one thing made on the host is an empty directory in the
//! temp dir, which the tmpfs is mounted on in the namespace only; it is removed afterwards.
//!
//! Where that cannot be done (fix502 is not root, no mount namespace can be made, the root
//! file system cannot be layered), nginx runs as it is, and the paths it writes are compared
//! before and after: [`TestRun::left`] lists what it created or changed.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{DirBuilder, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fix502_nginx::config::{Config, each_block};
use fix502_nginx::view::ConfigView;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use tokio::process::Child;

use crate::command::{CommandOutput, command, finish, spawn};
use crate::discovery::{BuildInfo, under_prefix};
use crate::rootfs::{resolve, seen};

/// The source name of every mount made here (shown in the namespace's mountinfo).
const SOURCE: &str = "fix502-nginx-t";
/// Kernel file systems bound as they are, never layered.
const PASSED_THROUGH: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "pstore",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "binfmt_misc",
    "autofs",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "rpc_pipefs",
    "nfsd",
];
/// At most this many live unix sockets are bound into the layers.
const MAX_SOCKETS: usize = 256;
/// At most this much of a log's new tail is read to count nginx's own lines.
const MAX_TAIL: u64 = 1 << 20;
/// The http temp paths nginx creates when `http {}` exists: the `nginx -V` option that moves
/// each, and nginx's default under the prefix.
const HTTP_TEMP_PATHS: [(&str, &str); 5] = [
    ("--http-client-body-temp-path", "client_body_temp"),
    ("--http-proxy-temp-path", "proxy_temp"),
    ("--http-fastcgi-temp-path", "fastcgi_temp"),
    ("--http-uwsgi-temp-path", "uwsgi_temp"),
    ("--http-scgi-temp-path", "scgi_temp"),
];

/// The paths `nginx -t` writes for one config, resolved under the prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// The pid file (created empty when missing).
    pub pid: Option<PathBuf>,
    /// The files opened for appending, created when missing: the build's startup error log,
    /// every `error_log` and every `access_log` without variables (and the build's default
    /// access log when `http {}` has none).
    pub logs: Vec<PathBuf>,
    /// The temp and cache directories: created when missing; owner and mode set when root.
    pub dirs: Vec<PathBuf>,
}

impl Touched {
    /// What nginx writes for this config, from the directives that name the paths and, where
    /// the config names none, the build's defaults.
    pub fn of(
        config: Option<&Config>,
        view: &ConfigView,
        build: &BuildInfo,
        prefix: Option<&Path>,
    ) -> Self {
        let at = |p: &str| under_prefix(Path::new(p), prefix);
        let mut touched = Self {
            pid: Some(at(view
                .pid
                .as_ref()
                .map(|(p, _)| p.as_str())
                .or(build.pid_path.as_deref())
                .unwrap_or("logs/nginx.pid"))),
            ..Self::default()
        };
        let file = |p: &str| {
            !(p.is_empty()
                || p == "stderr"
                || p == "off"
                || p.starts_with("syslog:")
                || p.starts_with("memory:")
                || p.contains('$'))
        };
        let mut logs: Vec<&str> = Vec::new();
        logs.push(build.error_log_path.as_deref().unwrap_or("logs/error.log"));
        logs.extend(view.error_logs.iter().map(|l| l.path.as_str()));
        logs.extend(view.access_logs.iter().map(|l| l.path.as_str()));
        let directives = config.map(|c| c.directives.as_slice()).unwrap_or_default();
        let has_http = directives.iter().any(|d| d.name == "http");
        let http_access_log = view
            .access_logs
            .iter()
            .any(|l| matches!(l.context, fix502_nginx::view::LogContext::Http));
        if has_http && !http_access_log {
            logs.push(build.http_log_path.as_deref().unwrap_or("logs/access.log"));
        }
        for log in logs.into_iter().filter(|p| file(p)) {
            push_new(&mut touched.logs, at(log));
        }
        let mut dirs: Vec<String> = Vec::new();
        each_block(directives, &mut |block| {
            for d in block {
                if (d.name.ends_with("_temp_path") || d.name.ends_with("_cache_path"))
                    && let Some(path) = d.args.first()
                {
                    dirs.push(path.clone());
                }
            }
        });
        if has_http {
            for (option, default) in HTTP_TEMP_PATHS {
                let built = build
                    .http_temp_paths
                    .iter()
                    .find(|(o, _)| o == option)
                    .map_or(default, |(_, p)| p.as_str());
                dirs.push(built.to_owned());
            }
        }
        for dir in dirs.iter().filter(|d| !d.contains('$')) {
            push_new(&mut touched.dirs, at(dir));
        }
        touched
    }

    /// Every path, the pid file first.
    pub fn all(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self.pid.iter().cloned().collect();
        all.extend(self.logs.iter().cloned());
        all.extend(self.dirs.iter().cloned());
        all
    }
}

fn push_new(list: &mut Vec<PathBuf>, path: PathBuf) {
    if !list.contains(&path) {
        list.push(path);
    }
}

/// One nginx run to make: `binary args...` as nginx sees the files.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The nginx binary, as a path in nginx's mount namespace.
    pub binary: PathBuf,
    /// Its arguments (`-p`, `-c`, `-t`).
    pub args: Vec<String>,
    /// The pid of the master when it runs in another mount namespace than fix502: nginx is
    /// run in (a private copy of) that one.
    pub namespace_of: Option<u32>,
    /// The pid of the master when it runs in another network namespace than fix502: nginx
    /// is run in that one, where its `listen` addresses can be bound.
    pub net_of: Option<u32>,
    /// The pid of the master when it runs in another pid namespace than fix502: nginx is
    /// started in that one, where its `/proc/self` (and `/dev/stderr`) exist.
    pub pid_of: Option<u32>,
    /// The command that runs it on the host as it is (through `nsenter` for another
    /// namespace), for the run that cannot be isolated.
    pub plain: (PathBuf, Vec<String>),
    /// The paths it writes.
    pub touched: Touched,
    /// The time the whole run may take.
    pub timeout: Duration,
    /// Whether to compare the written paths before and after when they cannot be isolated.
    pub watch: bool,
}

/// A finished nginx run and what it left on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TestRun {
    /// How nginx exited and what it said.
    pub output: CommandOutput,
    /// `None` when nginx ran over throw-away layers; else why it ran on the host as it is.
    pub unisolated: Option<String>,
    /// Mounts that could not be layered and were bound as they are (nginx's writes under
    /// them reach the host).
    pub through: Vec<PathBuf>,
    /// What the run created or changed on the host, among the paths nginx writes that were
    /// not layered (empty when everything was).
    pub left: Vec<Change>,
    /// The temp directory the layers were mounted on (removed when the run is over).
    pub workspace: Option<PathBuf>,
}

/// One thing an nginx run left on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// A file or directory that was not there.
    Created {
        /// Where.
        path: PathBuf,
        /// Whether it is a directory.
        dir: bool,
        /// Its owner (a user name, else the uid).
        owner: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory's owner, changed.
    Owner {
        /// Where.
        path: PathBuf,
        /// The owner before.
        from: String,
        /// The owner after.
        to: String,
    },
    /// A directory's permission bits, changed.
    Mode {
        /// Where.
        path: PathBuf,
        /// Before.
        from: u32,
        /// After.
        to: u32,
    },
    /// Lines the run appended to a log that was there.
    Appended {
        /// Where.
        path: PathBuf,
        /// How many lines (those with the run's pid).
        lines: usize,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created {
                path,
                dir,
                owner,
                mode,
            } => write!(
                f,
                "created {} {} (owner {owner}, mode {mode:04o})",
                if *dir { "the directory" } else { "the file" },
                path.display()
            ),
            Self::Owner { path, from, to } => write!(
                f,
                "changed the owner of {} from {from} to {to}",
                path.display()
            ),
            Self::Mode { path, from, to } => write!(
                f,
                "changed the mode of {} from {from:04o} to {to:04o}",
                path.display()
            ),
            Self::Appended { path, lines } => write!(
                f,
                "appended {lines} line{} to {}",
                if *lines == 1 { "" } else { "s" },
                path.display()
            ),
        }
    }
}

/// Runs nginx as `inv` says over throw-away layers, or, where that cannot be done, as it is,
/// saying what it left. `Err` when nginx could not be run at all or did not finish in time.
pub async fn run(inv: &Invocation) -> Result<TestRun, String> {
    let started = Instant::now();
    let root = ns_root(inv.namespace_of);
    let watched = if inv.watch {
        inv.touched.all()
    } else {
        Vec::new()
    };
    let before = snapshot(&watched, &root);
    let why = if nix::unistd::geteuid().is_root() {
        match isolated(inv, &root, started).await {
            Isolated::Ran {
                mut run,
                pid,
                mounts,
            } => {
                let uncovered: Vec<PathBuf> = watched
                    .iter()
                    .filter(|p| !mounts.covers(p, &root, &run.through))
                    .cloned()
                    .collect();
                run.left = compare(&before, &snapshot(&uncovered, &root), pid, &root);
                return Ok(*run);
            }
            Isolated::Failed(e) => return Err(e),
            Isolated::Unavailable(why) => why,
        }
    } else {
        "fix502 is not root".to_owned()
    };
    plain(inv, &root, &watched, &before, why, started).await
}

/// Runs nginx on the host as it is (why: `why`) and compares the `watched` paths with
/// `before`.
async fn plain(
    inv: &Invocation,
    root: &Path,
    watched: &[PathBuf],
    before: &[(PathBuf, Option<State>)],
    why: String,
    started: Instant,
) -> Result<TestRun, String> {
    tracing::debug!(why = %why, "nginx runs without isolation");
    let remaining = inv.timeout.saturating_sub(started.elapsed());
    let child = spawn(&inv.plain.0, &inv.plain.1).map_err(|e| e.to_string())?;
    let pid = child.id();
    let output = finish(child, &inv.plain.0, remaining)
        .await
        .map_err(|e| e.to_string())?;
    let left = compare(before, &snapshot(watched, root), pid, root);
    Ok(TestRun {
        output,
        unisolated: Some(why),
        through: Vec::new(),
        left,
        workspace: None,
    })
}

/// `/` for fix502's own mount namespace, else `/proc/PID/root` (nginx's files seen from here).
fn ns_root(namespace_of: Option<u32>) -> PathBuf {
    match namespace_of {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/root")),
        None => PathBuf::from("/"),
    }
}

enum Isolated {
    /// nginx ran over the layers (`pid`: its process).
    Ran {
        run: Box<TestRun>,
        pid: Option<u32>,
        mounts: MountPlan,
    },
    /// nginx was started but did not finish (or could not be waited for).
    Failed(String),
    /// The layers could not be made: why.
    Unavailable(String),
}

static WORKSPACES: AtomicU32 = AtomicU32::new(0);

async fn isolated(inv: &Invocation, root: &Path, started: Instant) -> Isolated {
    let mountinfo = match std::fs::read_to_string(match inv.namespace_of {
        Some(pid) => format!("/proc/{pid}/mountinfo"),
        None => "/proc/self/mountinfo".to_owned(),
    }) {
        Ok(text) => text,
        Err(e) => return Isolated::Unavailable(format!("cannot read the mount table: {e}")),
    };
    let mounts = match MountPlan::new(&parse_mountinfo(&mountinfo), root) {
        Ok(m) => m,
        Err(e) => return Isolated::Unavailable(e),
    };
    let namespace = match inv.namespace_of {
        Some(pid) => match File::open(format!("/proc/{pid}/ns/mnt")) {
            Ok(f) => Some(f),
            Err(e) => {
                return Isolated::Unavailable(format!(
                    "cannot open the mount namespace of pid {pid}: {e}"
                ));
            }
        },
        None => None,
    };
    let open_ns = |pid: Option<u32>, kind: &str| match pid {
        Some(pid) => File::open(format!("/proc/{pid}/ns/{kind}"))
            .map(Some)
            .map_err(|e| format!("cannot open the {kind} namespace of pid {pid}: {e}")),
        None => Ok(None),
    };
    let (net, pid_ns) = match (open_ns(inv.net_of, "net"), open_ns(inv.pid_of, "pid")) {
        (Ok(net), Ok(pid)) => (net, pid),
        (Err(e), _) | (_, Err(e)) => return Isolated::Unavailable(e),
    };
    // The temp dir the tmpfs goes on, as nginx's namespace names it and as fix502 reaches it.
    let temp = match inv.namespace_of {
        Some(_) => PathBuf::from("/tmp"),
        None => Some(std::env::temp_dir())
            .filter(|t| t.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/tmp")),
    };
    sweep(&seen(root, &temp));
    let name = format!(
        "{SOURCE}.{}.{}",
        std::process::id(),
        WORKSPACES.fetch_add(1, Ordering::Relaxed)
    );
    let workspace = temp.join(&name);
    let host_workspace = seen(root, &workspace);
    if let Err(e) = DirBuilder::new().mode(0o700).create(&host_workspace) {
        return Isolated::Unavailable(format!(
            "cannot make the directory {}: {e}",
            host_workspace.display()
        ));
    }
    let standins: Vec<PathBuf> = inv
        .touched
        .logs
        .iter()
        .filter_map(|p| resolve(p, root))
        .filter(|p| {
            std::fs::symlink_metadata(seen(root, p)).is_ok_and(|m| m.file_type().is_file())
                && mounts.layered(p)
        })
        .collect();
    let sockets = live_sockets(inv.namespace_of, root, &mounts);
    let cwd = match inv.namespace_of {
        Some(_) => PathBuf::from("/"),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
    };
    let setup = Setup {
        namespace,
        net,
        pid_ns,
        workspace,
        steps: mounts.steps.clone(),
        standins,
        sockets,
        cwd,
        binary: inv.binary.clone(),
        args: inv.args.clone(),
        handle: tokio::runtime::Handle::current(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("fix502-nginx-t".to_owned())
        .spawn(move || {
            let result = setup.run();
            let _guard = setup.handle.enter();
            // When nobody waits any more, the child is dropped here, which kills it.
            drop(tx.send(result));
        });
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            remove_workspace(&host_workspace).await;
            return Isolated::Unavailable(format!("cannot start a thread: {e}"));
        }
    };
    let remaining = inv.timeout.saturating_sub(started.elapsed());
    let spawned = match tokio::time::timeout(remaining, rx).await {
        Ok(Ok(Ok(spawned))) => spawned,
        Ok(Ok(Err(why))) => {
            remove_workspace(&host_workspace).await;
            return Isolated::Unavailable(why);
        }
        Ok(Err(_)) => {
            remove_workspace(&host_workspace).await;
            return Isolated::Unavailable("the namespace thread ended without an answer".into());
        }
        Err(_) => {
            // The thread is stuck in a mount; remove the directory once it is done.
            std::thread::spawn(move || {
                drop(thread.join());
                for _ in 0..100 {
                    match std::fs::remove_dir(&host_workspace) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        _ => return,
                    }
                }
            });
            return Isolated::Failed(format!(
                "{} did not finish within {} s (making its mount namespace took too long)",
                inv.binary.display(),
                inv.timeout.as_secs()
            ));
        }
    };
    let pid = spawned.child.id();
    let remaining = inv.timeout.saturating_sub(started.elapsed());
    let output = finish(spawned.child, &inv.binary, remaining).await;
    drop(tokio::task::spawn_blocking(move || thread.join()).await);
    remove_workspace(&host_workspace).await;
    match output {
        Ok(output) => Isolated::Ran {
            run: Box::new(TestRun {
                output,
                unisolated: None,
                through: spawned.through,
                left: Vec::new(),
                workspace: Some(host_workspace),
            }),
            pid,
            mounts,
        },
        Err(e) => Isolated::Failed(e.to_string()),
    }
}

/// Removes the (empty) workspace directory; retried for a moment, since the namespace that
/// mounts on it ends only when its last process has.
async fn remove_workspace(dir: &Path) {
    for _ in 0..40 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    tracing::warn!(dir = %dir.display(), "cannot remove the directory of nginx -t's layers");
}

/// Removes the workspaces that fix502 runs that were killed left behind (empty directories
/// named for a pid that no longer runs).
fn sweep(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SOURCE))
            .and_then(|n| n.strip_prefix('.'))
        else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // remove_dir removes only an empty directory.
            drop(std::fs::remove_dir(entry.path()));
        }
    }
}

/// What the namespace thread hands back: nginx, started, and the mounts bound as they are
/// because layering them failed.
struct Spawned {
    child: Child,
    through: Vec<PathBuf>,
}

/// Everything the namespace thread needs; it touches nothing outside its own namespace.
struct Setup {
    namespace: Option<File>,
    net: Option<File>,
    pid_ns: Option<File>,
    workspace: PathBuf,
    steps: Vec<Step>,
    standins: Vec<PathBuf>,
    sockets: Vec<PathBuf>,
    cwd: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
    handle: tokio::runtime::Handle,
}

impl Setup {
    /// Runs on its own thread: makes the namespace and the layers, pivots the root onto them
    /// and starts nginx there. Everything it mounts is in a namespace of its own (made
    /// private before the first mount), which ends with the last process in it.
    fn run(&self) -> Result<Spawned, String> {
        if let Some(net) = &self.net {
            setns(net, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot enter nginx's network namespace: {e}"))?;
        }
        if let Some(pid_ns) = &self.pid_ns {
            // Only the children this thread starts (nginx) are in it.
            setns(pid_ns, CloneFlags::CLONE_NEWPID)
                .map_err(|e| format!("cannot enter nginx's pid namespace: {e}"))?;
        }
        if let Some(ns) = &self.namespace {
            unshare(CloneFlags::CLONE_FS).map_err(|e| format!("unshare(CLONE_FS) failed: {e}"))?;
            setns(ns, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("cannot enter nginx's mount namespace: {e}"))?;
        }
        unshare(CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("cannot make a mount namespace: {e}"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("cannot make the mounts private: {e}"))?;
        let w = &self.workspace;
        mount(
            Some(SOURCE),
            w,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0700"),
        )
        .map_err(|e| format!("cannot mount a tmpfs on {}: {e}", w.display()))?;
        let new_root = w.join("root");
        let layers = w.join("layers");
        let standin = w.join("standin");
        for dir in [&new_root, &layers] {
            std::fs::create_dir(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        }
        File::create(&standin).map_err(|e| format!("create {}: {e}", standin.display()))?;
        let mut through = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let target = seen(&new_root, &step.mountpoint);
            let is_root = step.mountpoint == Path::new("/");
            if step.layer {
                let upper = layers.join(format!("{i}u"));
                let work = layers.join(format!("{i}w"));
                for dir in [&upper, &work] {
                    std::fs::create_dir(dir)
                        .map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
                }
                let mut data = OsString::from("lowerdir=");
                data.push(overlay_escape(&step.mountpoint));
                data.push(",upperdir=");
                data.push(overlay_escape(&upper));
                data.push(",workdir=");
                data.push(overlay_escape(&work));
                match mount(
                    Some(SOURCE),
                    &target,
                    Some("overlay"),
                    step.flags,
                    Some(data.as_os_str()),
                ) {
                    Ok(()) => continue,
                    Err(e) if is_root => return Err(format!("cannot layer /: {e}")),
                    Err(e) => {
                        tracing::debug!(mount = %step.mountpoint.display(), error = %e, "cannot layer; bound as it is");
                        through.push(step.mountpoint.clone());
                    }
                }
            }
            if let Err(e) = mount(
                Some(&step.mountpoint),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ) {
                if is_root {
                    return Err(format!("cannot bind /: {e}"));
                }
                tracing::debug!(mount = %step.mountpoint.display(), error = %e, "cannot bind; left out");
                through.retain(|p| p != &step.mountpoint);
            }
        }
        for log in &self.standins {
            if let Err(e) = mount(
                Some(&standin),
                &seen(&new_root, log),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ) {
                tracing::debug!(log = %log.display(), error = %e, "no stand-in; the log is copied up");
            }
        }
        for socket in &self.sockets {
            if let Err(e) = mount(
                Some(socket),
                &seen(&new_root, socket),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ) {
                tracing::debug!(socket = %socket.display(), error = %e, "cannot bind the socket");
            }
        }
        std::env::set_current_dir(&new_root)
            .map_err(|e| format!("cd {}: {e}", new_root.display()))?;
        nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root failed: {e}"))?;
        umount2(".", MntFlags::MNT_DETACH)
            .map_err(|e| format!("cannot detach the old root: {e}"))?;
        if std::env::set_current_dir(&self.cwd).is_err() {
            std::env::set_current_dir("/").map_err(|e| format!("cd /: {e}"))?;
        }
        let _guard = self.handle.enter();
        let child = command(&self.binary, &self.args)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        Ok(Spawned { child, through })
    }
}

/// One mount of nginx's namespace and how it is rebuilt under the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    mountpoint: PathBuf,
    /// Layered (an overlay over it), else bound as it is.
    layer: bool,
    /// `nosuid`, `nodev`, `noexec` of the mount, kept on its overlay.
    flags: MsFlags,
}

/// The visible mounts of nginx's namespace, parents first, and how each is rebuilt.
#[derive(Debug, Clone)]
struct MountPlan {
    steps: Vec<Step>,
    /// Read-only mounts (bound as they are, nothing is written there).
    read_only: HashSet<PathBuf>,
}

impl MountPlan {
    fn new(entries: &[MountEntry], root: &Path) -> Result<Self, String> {
        let visible = visible(entries);
        if !visible.iter().any(|m| m.mountpoint == Path::new("/")) {
            return Err("the mount table has no root".to_owned());
        }
        let steps = visible
            .iter()
            .map(|m| {
                let is_dir =
                    std::fs::metadata(seen(root, &m.mountpoint)).is_ok_and(|md| md.is_dir());
                Step {
                    mountpoint: m.mountpoint.clone(),
                    layer: is_dir && !m.read_only && !PASSED_THROUGH.contains(&m.fstype.as_str()),
                    flags: m.flags,
                }
            })
            .collect();
        let read_only = visible
            .iter()
            .filter(|m| m.read_only)
            .map(|m| m.mountpoint.clone())
            .collect();
        Ok(Self { steps, read_only })
    }

    /// The mount `path` (absolute, symlinks resolved) is on.
    fn mount_of(&self, path: &Path) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| path.starts_with(&s.mountpoint))
            .max_by_key(|s| s.mountpoint.components().count())
    }

    /// Whether writes to `path` land in a layer.
    fn layered(&self, path: &Path) -> bool {
        self.mount_of(path).is_some_and(|s| s.layer)
    }

    /// Whether nothing nginx does to `path` reaches the host: it is layered (and the layer
    /// was made), or on a read-only mount.
    fn covers(&self, path: &Path, root: &Path, through: &[PathBuf]) -> bool {
        let Some(resolved) = resolve(path, root) else {
            return false;
        };
        match self.mount_of(&resolved) {
            Some(s) if s.layer => !through.contains(&s.mountpoint),
            Some(s) => self.read_only.contains(&s.mountpoint),
            None => false,
        }
    }
}

/// One line of `/proc/PID/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountEntry {
    id: u32,
    parent: u32,
    mountpoint: PathBuf,
    fstype: String,
    read_only: bool,
    flags: MsFlags,
}

fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let mut fields = head.split(' ');
            let id = fields.next()?.parse().ok()?;
            let parent = fields.next()?.parse().ok()?;
            let _device = fields.next()?;
            let _root = fields.next()?;
            let mountpoint = unescape(fields.next()?);
            let options: Vec<&str> = fields.next()?.split(',').collect();
            let mut tail = tail.split(' ');
            let fstype = tail.next()?.to_owned();
            let _source = tail.next()?;
            let super_options: Vec<&str> = tail.next().unwrap_or_default().split(',').collect();
            let mut flags = MsFlags::empty();
            for (word, flag) in [
                ("nosuid", MsFlags::MS_NOSUID),
                ("nodev", MsFlags::MS_NODEV),
                ("noexec", MsFlags::MS_NOEXEC),
            ] {
                if options.contains(&word) {
                    flags |= flag;
                }
            }
            Some(MountEntry {
                id,
                parent,
                mountpoint,
                fstype,
                read_only: options.contains(&"ro") || super_options.contains(&"ro"),
                flags,
            })
        })
        .collect()
}

/// A mountinfo field: octal escapes (`\040` for a space) back to bytes.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// The mounts that can be seen (not covered by a later mount at or above their mount
/// point), parents before children.
fn visible(entries: &[MountEntry]) -> Vec<&MountEntry> {
    let parent: HashMap<u32, u32> = entries.iter().map(|m| (m.id, m.parent)).collect();
    let ancestors = |m: &MountEntry| -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = m.id;
        while let Some(&p) = parent.get(&at) {
            if p == at || out.contains(&p) {
                break;
            }
            out.push(p);
            at = p;
        }
        out
    };
    let mut shown: Vec<(usize, &MountEntry)> = entries
        .iter()
        .filter_map(|m| {
            let up = ancestors(m);
            let hidden = entries.iter().any(|n| {
                n.id != m.id && m.mountpoint.starts_with(&n.mountpoint) && !up.contains(&n.id)
            });
            (!hidden).then_some((up.len(), m))
        })
        .collect();
    shown.sort_by_key(|(depth, _)| *depth);
    shown.into_iter().map(|(_, m)| m).collect()
}

/// A path for overlay's mount options: `\`, `,` and `:` escaped with `\`.
fn overlay_escape(path: &Path) -> OsString {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        if matches!(b, b'\\' | b',' | b':') {
            out.push(b'\\');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

/// The live unix sockets of nginx's network namespace that are on layered mounts (symlinks
/// resolved), to bind into the layers.
fn live_sockets(namespace_of: Option<u32>, root: &Path, mounts: &MountPlan) -> Vec<PathBuf> {
    let table = match namespace_of {
        Some(pid) => format!("/proc/{pid}/net/unix"),
        None => "/proc/self/net/unix".to_owned(),
    };
    let Ok(text) = std::fs::read(&table) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n').skip(1) {
        let Some(path) = socket_path(line) else {
            continue;
        };
        let Some(resolved) = resolve(Path::new(OsStr::from_bytes(path)), root) else {
            continue;
        };
        if !out.contains(&resolved)
            && mounts.layered(&resolved)
            && std::fs::symlink_metadata(seen(root, &resolved))
                .is_ok_and(|m| m.file_type().is_socket())
        {
            out.push(resolved);
            if out.len() == MAX_SOCKETS {
                break;
            }
        }
    }
    out
}

/// The path of a line of `/proc/net/unix` (`Num RefCount Protocol Flags Type St Inode Path`),
/// when it is a file system path.
fn socket_path(line: &[u8]) -> Option<&[u8]> {
    let mut rest = line;
    for _ in 0..7 {
        let start = rest.iter().position(|&b| b != b' ')?;
        rest = rest.get(start..)?;
        let end = rest.iter().position(|&b| b == b' ')?;
        rest = rest.get(end..)?;
    }
    let path = rest.get(1..)?;
    (path.first() == Some(&b'/')).then_some(path)
}

/// What a written path looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    dir: bool,
    uid: u32,
    mode: u32,
    len: u64,
}

fn snapshot(paths: &[PathBuf], root: &Path) -> Vec<(PathBuf, Option<State>)> {
    paths
        .iter()
        .map(|p| {
            let state = std::fs::symlink_metadata(seen(root, p))
                .ok()
                .map(|m| State {
                    dir: m.is_dir(),
                    uid: m.uid(),
                    mode: m.mode() & 0o7777,
                    len: m.len(),
                });
            (p.clone(), state)
        })
        .collect()
}

/// What changed between two snapshots, as nginx (process `pid`) would have changed it.
fn compare(
    before: &[(PathBuf, Option<State>)],
    after: &[(PathBuf, Option<State>)],
    pid: Option<u32>,
    root: &Path,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (path, now) in after {
        let Some(now) = now else { continue };
        let was = before
            .iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, s)| s.as_ref());
        let path = path.clone();
        match was {
            None => out.push(Change::Created {
                path,
                dir: now.dir,
                owner: user_name(now.uid),
                mode: now.mode,
            }),
            Some(was) if was.dir && now.dir => {
                if was.uid != now.uid {
                    out.push(Change::Owner {
                        path: path.clone(),
                        from: user_name(was.uid),
                        to: user_name(now.uid),
                    });
                }
                if was.mode != now.mode {
                    out.push(Change::Mode {
                        path,
                        from: was.mode,
                        to: now.mode,
                    });
                }
            }
            Some(was) if !was.dir && !now.dir && now.len > was.len => {
                let lines = pid.map_or(0, |pid| lines_of(&seen(root, &path), was.len, pid));
                if lines > 0 {
                    out.push(Change::Appended { path, lines });
                }
            }
            Some(_) => {}
        }
    }
    out
}

/// How many lines from byte `from` on were written by process `pid` (`[level] PID#TID:`).
fn lines_of(path: &Path, from: u64, pid: u32) -> usize {
    let mut tail = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        f.take(MAX_TAIL).read_to_end(&mut tail)
    });
    if read.is_err() {
        return 0;
    }
    let mark = format!("] {pid}#");
    String::from_utf8_lossy(&tail)
        .lines()
        .filter(|l| l.contains(&mark))
        .count()
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n\
                    22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n\
                    28 27 0:25 / /mnt/with\\040space ro,nosuid - tmpfs tmp rw\n\
                    29 27 0:26 / /srv rw - ext4 /dev/vdb ro\n\
                    garbage\n";
        let entries = parse_mountinfo(text);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].mountpoint, PathBuf::from("/"));
        assert!(!entries[0].read_only);
        assert_eq!(
            entries[1].flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
        );
        assert_eq!(entries[1].fstype, "proc");
        assert_eq!(entries[2].mountpoint, PathBuf::from("/mnt/with space"));
        assert!(entries[2].read_only, "ro per mount");
        assert!(entries[3].read_only, "ro super block");
        assert_eq!(unescape(r"/a\134b\011c\0"), PathBuf::from("/a\\b\tc\\0"));
    }

    fn entry(id: u32, parent: u32, mountpoint: &str) -> MountEntry {
        MountEntry {
            id,
            parent,
            mountpoint: PathBuf::from(mountpoint),
            fstype: "ext4".to_owned(),
            read_only: false,
            flags: MsFlags::empty(),
        }
    }

    #[test]
    fn hidden_mounts_are_left_out_and_parents_come_first() {
        let entries = vec![
            entry(27, 1, "/"),
            entry(24, 27, "/dev"),
            entry(25, 24, "/dev/shm"),
            entry(30, 25, "/dev/shm"), // stacked on 25: 25 is hidden
            entry(40, 27, "/a/b"),
            entry(41, 27, "/a"), // mounted over /a/b's parent directory: 40 is hidden
            entry(42, 41, "/a/c"),
            entry(50, 52, "/x/y"), // listed before its parent
            entry(52, 27, "/x"),
        ];
        let shown: Vec<u32> = visible(&entries).iter().map(|m| m.id).collect();
        assert_eq!(shown, vec![27, 24, 41, 52, 42, 50, 30]);
    }

    #[test]
    fn overlay_options_are_escaped() {
        assert_eq!(
            overlay_escape(Path::new(r"/a,b:c\d")),
            OsString::from(r"/a\,b\:c\\d")
        );
    }

    #[test]
    fn unix_socket_table() {
        let line = b"0000000071: 00000002 00000000 00010000 0001 01  4418 /var/run/docker.sock";
        assert_eq!(socket_path(line), Some(&b"/var/run/docker.sock"[..]));
        let spaced = b"0000000071: 00000002 00000000 00010000 0001 01 773622 /tmp/a b.sock";
        assert_eq!(socket_path(spaced), Some(&b"/tmp/a b.sock"[..]));
        assert_eq!(
            socket_path(b"0000000071: 00000003 00000000 00000000 0001 03   337"),
            None
        );
        assert_eq!(
            socket_path(b"0000000071: 00000002 00000000 00000000 0002 01  4415 @3d7e7"),
            None
        );
        assert_eq!(socket_path(b""), None);
    }

    #[test]
    fn touched_paths_of_a_config() {
        let text = "pid run/n.pid;\nerror_log logs/e.log;\nevents {}\n\
                    http {\n  access_log /var/log/a.log;\n  proxy_temp_path tmp/proxy 1 2;\n\
                    proxy_cache_path /cache/one keys_zone=one:1m;\n\
                    server { access_log logs/$host.log; error_log stderr;\n\
                    location / { client_body_temp_path /body; } }\n}\n";
        let config = Config::from_text(text, Path::new("/p/conf/nginx.conf")).unwrap();
        let view = ConfigView::new(&config);
        let build = BuildInfo {
            error_log_path: Some("/var/log/nginx/error.log".to_owned()),
            http_temp_paths: vec![(
                "--http-fastcgi-temp-path".to_owned(),
                "/var/lib/nginx/fastcgi".to_owned(),
            )],
            ..BuildInfo::default()
        };
        let touched = Touched::of(Some(&config), &view, &build, Some(Path::new("/p")));
        assert_eq!(touched.pid, Some(PathBuf::from("/p/run/n.pid")));
        assert_eq!(
            touched.logs,
            vec![
                PathBuf::from("/var/log/nginx/error.log"),
                PathBuf::from("/p/logs/e.log"),
                PathBuf::from("/var/log/a.log"),
            ]
        );
        assert_eq!(
            touched.dirs,
            [
                "/p/tmp/proxy",
                "/cache/one",
                "/body",
                "/p/client_body_temp",
                "/p/proxy_temp",
                "/var/lib/nginx/fastcgi",
                "/p/uwsgi_temp",
                "/p/scgi_temp"
            ]
            .map(PathBuf::from)
        );
        // No http block: no http defaults; the build's pid path; a stderr startup log.
        let config = Config::from_text("events {}\n", Path::new("/p/nginx.conf")).unwrap();
        let build = BuildInfo {
            error_log_path: Some("stderr".to_owned()),
            pid_path: Some("/run/nginx.pid".to_owned()),
            ..BuildInfo::default()
        };
        let touched = Touched::of(
            Some(&config),
            &ConfigView::new(&config),
            &build,
            Some(Path::new("/p")),
        );
        assert_eq!(touched.all(), vec![PathBuf::from("/run/nginx.pid")]);
    }

    #[test]
    fn changes_are_compared_and_worded() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("error.log");
        std::fs::write(
            &log,
            "old\n2026/01/01 00:00:00 [emerg] 4242#4242: bind() failed\nother 77#77\n",
        )
        .unwrap();
        let st = |dir: bool, uid: u32, mode: u32, len: u64| State {
            dir,
            uid,
            mode,
            len,
        };
        let before = vec![
            (PathBuf::from("/run/nginx.pid"), None),
            (
                PathBuf::from("/var/lib/nginx/body"),
                Some(st(true, 0, 0o600, 0)),
            ),
            (log.clone(), Some(st(false, 0, 0o644, 4))),
        ];
        let after = vec![
            (
                PathBuf::from("/run/nginx.pid"),
                Some(st(false, 0, 0o644, 0)),
            ),
            (
                PathBuf::from("/var/lib/nginx/body"),
                Some(st(true, 65534, 0o700, 0)),
            ),
            (log.clone(), Some(st(false, 0, 0o644, 70))),
        ];
        let words: Vec<String> = compare(&before, &after, Some(4242), Path::new("/"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            words,
            vec![
                "created the file /run/nginx.pid (owner root, mode 0644)".to_owned(),
                "changed the owner of /var/lib/nginx/body from root to nobody".to_owned(),
                "changed the mode of /var/lib/nginx/body from 0600 to 0700".to_owned(),
                format!("appended 1 line to {}", log.display()),
            ]
        );
        // Lines of another process are not ours.
        assert!(compare(&before[2..], &after[2..], Some(5), Path::new("/")).is_empty());
    }

    // Real nginx from here on. These tests need root (a mount namespace, and nginx -t as
    // root is what writes); they return early when not root or without /usr/sbin/nginx.

    const NGINX: &str = "/usr/sbin/nginx";

    fn as_root() -> bool {
        nix::unistd::geteuid().is_root() && Path::new(NGINX).exists()
    }

    /// A prefix with `conf/nginx.conf` (`{port}` and `{dir}` filled in), empty `logs/` and
    /// `tmp/`.
    fn prefix(conf: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for sub in ["conf", "logs", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let conf = conf
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        std::fs::write(dir.path().join("conf/nginx.conf"), conf).unwrap();
        dir
    }

    const CONF: &str = "worker_processes 1;\npid logs/nginx.pid;\nerror_log logs/error.log;\n\
        events { worker_connections 64; }\nhttp {\n    access_log logs/access.log;\n\
        client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n\
        fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n\
        scgi_temp_path tmp/scgi;\n    server {\n        listen 127.0.0.1:{port};\n\
        listen unix:{dir}/app.sock;\n        location / { return 200; }\n    }\n}\n";

    /// The paths CONF makes nginx write, relative to the prefix.
    const WRITTEN: [&str; 9] = [
        "logs/nginx.pid",
        "logs/error.log",
        "logs/access.log",
        "tmp/body",
        "tmp/proxy",
        "tmp/fastcgi",
        "tmp/uwsgi",
        "tmp/scgi",
        "app.sock",
    ];

    fn args(dir: &Path) -> Vec<String> {
        vec![
            "-p".to_owned(),
            format!("{}/", dir.display()),
            "-c".to_owned(),
            "conf/nginx.conf".to_owned(),
            "-t".to_owned(),
        ]
    }

    async fn invocation(dir: &Path) -> Invocation {
        let config = Config::load(&dir.join("conf/nginx.conf")).ok();
        let view = config.as_ref().map(ConfigView::new).unwrap_or_default();
        let build = crate::discovery::build_info(Path::new(NGINX))
            .await
            .unwrap_or_default();
        Invocation {
            binary: PathBuf::from(NGINX),
            args: args(dir),
            namespace_of: None,
            net_of: None,
            pid_of: None,
            plain: (PathBuf::from(NGINX), args(dir)),
            touched: Touched::of(config.as_ref(), &view, &build, Some(dir)),
            timeout: Duration::from_secs(30),
            watch: true,
        }
    }

    /// Plain `nginx -t`, as a person runs it.
    fn plain_nginx_t(dir: &Path) -> std::process::Output {
        std::process::Command::new(NGINX)
            .args(args(dir))
            .output()
            .unwrap()
    }

    /// nginx's messages without what differs from run to run: the time and `PID#TID: ` of
    /// lines in the error-log format.
    fn messages(stderr: &str) -> Vec<String> {
        stderr
            .lines()
            .map(|line| match line.find(" [") {
                Some(i) if line.as_bytes().first().is_some_and(u8::is_ascii_digit) => {
                    let rest = &line[i + 1..];
                    match rest.split_once("] ") {
                        Some((level, msg)) => {
                            let msg = msg
                                .split_once(": ")
                                .filter(|(id, _)| id.contains('#'))
                                .map_or(msg, |(_, m)| m);
                            format!("{level}] {msg}")
                        }
                        None => rest.to_owned(),
                    }
                }
                _ => line.to_owned(),
            })
            .collect()
    }

    /// Every path under `dir` with its size, owner and mode.
    fn tree(dir: &Path) -> Vec<(PathBuf, u64, u32, u32)> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                let len = if m.is_dir() { 0 } else { m.len() };
                out.push((e.path(), len, m.uid(), m.mode()));
                if m.is_dir() {
                    todo.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    fn mounted_here() -> Vec<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(SOURCE))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn isolated_nginx_t_creates_nothing_and_says_what_plain_nginx_t_says() {
        if !as_root() {
            return;
        }
        let dir = prefix(CONF);
        let before = tree(dir.path());
        let run = run(&invocation(dir.path()).await).await.unwrap();
        assert_eq!(run.unisolated, None, "{run:?}");
        assert!(run.through.is_empty(), "{run:?}");
        assert!(run.left.is_empty(), "{run:?}");
        assert!(run.output.success, "{run:?}");
        assert!(run.output.stderr.contains("syntax is ok"), "{run:?}");
        assert!(run.output.stderr.contains("test is successful"), "{run:?}");
        assert_eq!(tree(dir.path()), before, "nothing under the prefix changed");
        for path in WRITTEN {
            assert!(!dir.path().join(path).exists(), "{path} was created");
        }
        // Plain nginx -t: the same verdict, and it writes every one of those paths (the
        // socket it binds is removed again).
        let plain = plain_nginx_t(dir.path());
        assert_eq!(plain.status.code(), run.output.code);
        assert_eq!(
            messages(&String::from_utf8_lossy(&plain.stderr)),
            messages(&run.output.stderr)
        );
        for path in &WRITTEN[..8] {
            assert!(
                dir.path().join(path).exists(),
                "plain nginx -t creates {path}"
            );
        }
        assert!(!dir.path().join("app.sock").exists());
        let body = std::fs::metadata(dir.path().join("tmp/body")).unwrap();
        assert_eq!((body.uid(), body.mode() & 0o777), (65534, 0o700));
    }

    #[tokio::test]
    async fn isolated_verdict_of_broken_configs_is_plain_nginx_ts() {
        if !as_root() {
            return;
        }
        let broken = [
            // Found while parsing.
            CONF.replace("location / {", "location / { no_such_directive on;"),
            // Found after the logs are open: nginx appends the [emerg] to logs/error.log.
            CONF.replace("listen 127.0.0.1:{port}", "listen 192.0.2.1:{port}"),
            // A temp path whose parent is missing.
            CONF.replace("tmp/proxy", "tmp/missing/proxy"),
        ];
        for conf in broken {
            let dir = prefix(&conf);
            let before = tree(dir.path());
            let run = run(&invocation(dir.path()).await).await.unwrap();
            assert_eq!(run.unisolated, None, "{run:?}");
            assert!(!run.output.success, "{run:?}");
            assert_eq!(tree(dir.path()), before, "{conf}");
            let plain = plain_nginx_t(dir.path());
            assert_eq!(plain.status.code(), run.output.code, "{conf}");
            assert_eq!(
                messages(&String::from_utf8_lossy(&plain.stderr)),
                messages(&run.output.stderr),
                "{conf}"
            );
            assert!(
                run.output.stderr.contains("[emerg]"),
                "{}",
                run.output.stderr
            );
        }
    }

    #[tokio::test]
    async fn existing_logs_and_temp_dirs_keep_content_owner_and_mode() {
        if !as_root() {
            return;
        }
        let dir = prefix(&CONF.replace("listen 127.0.0.1:{port}", "listen 192.0.2.1:{port}"));
        let p = dir.path();
        std::fs::write(p.join("logs/error.log"), "old line\n").unwrap();
        // A large access log: covered by a stand-in, not copied up.
        let big = File::create(p.join("logs/access.log")).unwrap();
        big.set_len(64 << 20).unwrap();
        std::fs::write(p.join("logs/nginx.pid"), "123\n").unwrap();
        DirBuilder::new()
            .mode(0o600)
            .create(p.join("tmp/body"))
            .unwrap();
        let before = tree(p);
        let run = run(&invocation(p).await).await.unwrap();
        assert_eq!(run.unisolated, None, "{run:?}");
        assert!(!run.output.success, "the bind fails");
        assert_eq!(tree(p), before);
        assert_eq!(
            std::fs::read_to_string(p.join("logs/error.log")).unwrap(),
            "old line\n"
        );
        // Plain nginx -t, as nginx 1.22 does it: [emerg] appended, owner and mode of the
        // existing temp dir changed.
        drop(plain_nginx_t(p));
        let log = std::fs::read_to_string(p.join("logs/error.log")).unwrap();
        assert!(
            log.starts_with("old line\n") && log.contains("[emerg]"),
            "{log}"
        );
        let body = std::fs::metadata(p.join("tmp/body")).unwrap();
        assert_eq!((body.uid(), body.mode() & 0o777), (65534, 0o700));
    }

    #[tokio::test]
    async fn nothing_is_left_mounted_or_in_the_temp_dir() {
        if !as_root() {
            return;
        }
        assert_eq!(mounted_here(), Vec::<String>::new());
        let dir = prefix(CONF);
        let run = run(&invocation(dir.path()).await).await.unwrap();
        let workspace = run.workspace.expect("the layers had a workspace");
        assert!(workspace.starts_with(std::env::temp_dir()), "{workspace:?}");
        assert!(!workspace.exists(), "{workspace:?} is removed");
        assert_eq!(mounted_here(), Vec::<String>::new());
        // A timeout ends nginx, its namespace and the workspace too. Other tests of this
        // process make workspaces of their own meanwhile: look for this run's only.
        let mut slow = invocation(dir.path()).await;
        slow.timeout = Duration::from_millis(1);
        let first = WORKSPACES.load(Ordering::Relaxed);
        assert!(super::run(&slow).await.is_err());
        let last = WORKSPACES.load(Ordering::Relaxed);
        let ours: Vec<PathBuf> = (first..last)
            .map(|n| std::env::temp_dir().join(format!("{SOURCE}.{}.{n}", std::process::id())))
            .collect();
        assert!(!ours.is_empty());
        for _ in 0..100 {
            if !ours.iter().any(|w| w.exists()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left: Vec<&PathBuf> = ours.iter().filter(|w| w.exists()).collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(mounted_here(), Vec::<String>::new());
    }

    /// A live unix socket on a layered mount still takes connects: here nginx's syslog
    /// (nginx -t sends its [emerg] there once the error logs are open).
    #[tokio::test]
    async fn live_unix_sockets_still_connect() {
        if !as_root() {
            return;
        }
        let conf = "pid logs/nginx.pid;\nerror_log syslog:server=unix:{dir}/log.sock;\n\
                    events {}\nhttp { access_log off; server { listen 192.0.2.1:{port}; } }\n";
        let dir = prefix(conf);
        let syslog = std::os::unix::net::UnixDatagram::bind(dir.path().join("log.sock")).unwrap();
        syslog
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let run = run(&invocation(dir.path()).await).await.unwrap();
        assert_eq!(run.unisolated, None, "{run:?}");
        let mut buf = [0u8; 2048];
        let n = syslog
            .recv(&mut buf)
            .expect("nginx -t's message reaches the socket");
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.contains("bind() to 192.0.2.1:"), "{got}");
        let plain = plain_nginx_t(dir.path());
        assert_eq!(
            messages(&String::from_utf8_lossy(&plain.stderr)),
            messages(&run.output.stderr)
        );
    }

    /// nginx in a mount namespace of its own (the lab's stale-dns scenario: its own
    /// /etc/hosts names the upstream): the test runs in a copy of that namespace, so nginx
    /// resolves the name as the running nginx did.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nginx_in_another_mount_namespace_is_tested_in_a_copy_of_it() {
        if !as_root() {
            return;
        }
        let lab = fix502_lab::Lab::start("stale-dns", &fix502_lab::LabOptions::default())
            .expect("the stale-dns lab starts");
        let pid = lab.master_pid().expect("the lab's nginx runs");
        assert_eq!(
            fix502_probe::process::same_namespace(pid, "mnt"),
            Some(false)
        );
        let prefix = lab.prefix().to_path_buf();
        let mut args = vec!["-p".to_owned(), format!("{}/", prefix.display())];
        args.extend([
            "-c".to_owned(),
            lab.config().display().to_string(),
            "-t".to_owned(),
        ]);
        let mut inv = invocation(&prefix).await;
        inv.args = args.clone();
        inv.namespace_of = Some(pid);
        let mut wrapped = vec![
            format!("--mount=/proc/{pid}/ns/mnt"),
            "--".to_owned(),
            NGINX.to_owned(),
        ];
        wrapped.extend(args.clone());
        inv.plain = (PathBuf::from("nsenter"), wrapped);
        let run = run(&inv).await.unwrap();
        assert_eq!(run.unisolated, None, "{run:?}");
        assert!(run.output.success, "{run:?}");
        let workspace = run.workspace.expect("a workspace");
        assert!(
            workspace.starts_with(format!("/proc/{pid}/root/tmp")),
            "{workspace:?}"
        );
        assert!(!workspace.exists());
        // In fix502's own namespace the name does not resolve: plain nginx -t there fails.
        let here = std::process::Command::new(NGINX)
            .args(&args)
            .output()
            .unwrap();
        assert!(!here.status.success());
        assert!(
            String::from_utf8_lossy(&here.stderr).contains("host not found"),
            "{}",
            String::from_utf8_lossy(&here.stderr)
        );
    }

    #[tokio::test]
    async fn a_plain_run_says_what_it_left() {
        if !as_root() {
            return;
        }
        let dir = prefix(CONF);
        let p = dir.path();
        let inv = invocation(p).await;
        let watched = inv.touched.all();
        let before = snapshot(&watched, Path::new("/"));
        let run = plain(
            &inv,
            Path::new("/"),
            &watched,
            &before,
            "a test".to_owned(),
            Instant::now(),
        )
        .await
        .unwrap();
        assert!(run.output.success, "{run:?}");
        let words: Vec<String> = run.left.iter().map(ToString::to_string).collect();
        let d = p.display();
        let mut expected = vec![
            format!("created the file {d}/logs/nginx.pid (owner root, mode 0644)"),
            format!("created the file {d}/logs/error.log (owner root, mode 0644)"),
            format!("created the file {d}/logs/access.log (owner root, mode 0644)"),
        ];
        for t in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            expected.push(format!(
                "created the directory {d}/tmp/{t} (owner nobody, mode 0700)"
            ));
        }
        assert_eq!(words, expected);
    }
}
