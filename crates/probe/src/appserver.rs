//! The app server behind an upstream that answers badly, and what is known to kill it.
//!
//! When nginx logs `upstream prematurely closed connection` (E1) or `recv() failed (104:
//! ...)` (E2), the cause usually sits in the process behind the upstream's listener: a
//! worker killed by the server's own timeout (gunicorn `WORKER TIMEOUT`, uWSGI harakiri,
//! PHP-FPM `request_terminate_timeout`), a crash or an OOM kill, a full worker pool, or an
//! idle keep-alive timeout shorter than nginx's (the keep-alive race).
//!
//! This module holds everything about that process:
//!
//! - [`identify`]: from a listener's pid, name the app server ([`kind_of`]), walk to its
//!   master, read the settings that matter for 502s from its command line, environment and
//!   config (PHP-FPM pools, gunicorn, uWSGI, uvicorn, hypercorn) with where each was set,
//!   and scan the tail of its log.
//! - [`parse_php_fpm_config`] / [`parse_php_fpm_str`]: PHP-FPM's ini dialect, with
//!   `include=` globs and `$pool`.
//! - [`scan_log`] / [`classify_log_line`]: the log lines that explain a closed or reset
//!   connection.
//! - [`oom_kills`]: kernel OOM kills from `/dev/kmsg`.
//!
//! Every file read is bounded in size and count. Paths are read in this process's mount
//! namespace (an app server in a container sees other files).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use crate::error::ProbeError;

/// How many parents [`identify`] walks up looking for the master process.
const MAX_PARENT_WALK: usize = 8;
/// How much of the end of an app server's log [`identify`] scans.
const LOG_TAIL_BYTES: u64 = 256 * 1024;
/// How many (most recent) log events [`identify`] keeps.
const MAX_EVENTS: usize = 200;
/// A log line is kept up to this many bytes.
const MAX_LINE_BYTES: usize = 512;
/// Largest config file read (PHP-FPM, uWSGI ini, gunicorn/hypercorn config).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Most config files one PHP-FPM config may pull in through `include=`.
const MAX_CONFIG_FILES: usize = 64;
/// Deepest `include=` nesting followed.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Most directory entries read per directory while expanding an include glob.
const MAX_DIR_ENTRIES: usize = 4096;
/// Largest time zone file read.
const MAX_TZIF_BYTES: u64 = 256 * 1024;

// ---------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------

/// Which app server a process is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AppServerKind {
    /// PHP-FPM (`php-fpm: master process (...)`, `php-fpm: pool www`).
    PhpFpm,
    /// gunicorn (Python WSGI).
    Gunicorn,
    /// uWSGI.
    Uwsgi,
    /// uvicorn (Python ASGI).
    Uvicorn,
    /// Hypercorn (Python ASGI).
    Hypercorn,
    /// Daphne (Django Channels ASGI).
    Daphne,
    /// Node.js (including `next-server`).
    Node,
    /// Puma (Ruby).
    Puma,
    /// Unicorn (Ruby).
    Unicorn,
    /// Phusion Passenger.
    Passenger,
    /// A Java VM (Tomcat, Spring Boot, ...).
    Java,
    /// Another Python program.
    Python,
    /// Another Ruby program.
    Ruby,
    /// The PHP CLI, typically its built-in server (`php -S`, `php artisan serve`).
    Php,
    /// nginx itself (a second nginx as upstream).
    Nginx,
    /// Apache httpd.
    Apache,
    /// Anything else.
    Other,
}

impl AppServerKind {
    /// The usual name of the app server, e.g. `php-fpm`, `gunicorn`, `uWSGI`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PhpFpm => "php-fpm",
            Self::Gunicorn => "gunicorn",
            Self::Uwsgi => "uWSGI",
            Self::Uvicorn => "uvicorn",
            Self::Hypercorn => "hypercorn",
            Self::Daphne => "daphne",
            Self::Node => "node",
            Self::Puma => "puma",
            Self::Unicorn => "unicorn",
            Self::Passenger => "passenger",
            Self::Java => "java",
            Self::Python => "python",
            Self::Ruby => "ruby",
            Self::Php => "php",
            Self::Nginx => "nginx",
            Self::Apache => "apache",
            Self::Other => "other",
        }
    }

    /// Servers with a master process that forks workers sharing the listening socket.
    fn has_master(self) -> bool {
        matches!(
            self,
            Self::PhpFpm
                | Self::Gunicorn
                | Self::Uwsgi
                | Self::Uvicorn
                | Self::Hypercorn
                | Self::Puma
                | Self::Unicorn
                | Self::Passenger
                | Self::Nginx
                | Self::Apache
        )
    }
}

/// One setting of an app server and where its value comes from.
///
/// Names are the app server's own: PHP-FPM keys as written (`pm.max_children`), and for
/// command-line servers the long option without dashes (`timeout`, `keep-alive`,
/// `buffer-size`), also when the value came from a config file that spells it differently
/// (gunicorn's `keepalive` becomes `keep-alive`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// The setting's name.
    pub name: String,
    /// Its value as written (quotes removed, `$pool` substituted).
    pub value: String,
    /// Where the value comes from.
    pub source: SettingSource,
}

impl Setting {
    /// A setting.
    pub fn new(name: impl Into<String>, value: impl Into<String>, source: SettingSource) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            source,
        }
    }

    /// The value as a number of seconds: a plain integer, or one with PHP-FPM's suffixes
    /// `s`, `m`, `h`, `d` (`30`, `30s`, `5m`). `None` for anything else.
    pub fn seconds(&self) -> Option<u64> {
        let value = self.value.trim();
        let (digits, unit) = match value.char_indices().last() {
            Some((at, 's')) => (value.get(..at)?, 1),
            Some((at, 'm')) => (value.get(..at)?, 60),
            Some((at, 'h')) => (value.get(..at)?, 3600),
            Some((at, 'd')) => (value.get(..at)?, 86_400),
            _ => (value, 1),
        };
        digits.parse::<u64>().ok()?.checked_mul(unit)
    }
}

/// Where a [`Setting`]'s value comes from.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingSource {
    /// A config file, at a 1-based line.
    File {
        /// The file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
    },
    /// The process's command line.
    CommandLine,
    /// An environment variable of the process (`GUNICORN_CMD_ARGS`, `UVICORN_*`).
    Environment {
        /// The variable's name.
        variable: String,
    },
    /// Not set anywhere: the app server's documented default.
    Default,
}

/// One interesting line of an app server's (or the kernel's) log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    /// What the line says.
    pub kind: LogEventKind,
    /// The line as written, truncated to 512 bytes.
    pub line: String,
    /// When it was written, when the line carries a timestamp this module can read.
    pub time: Option<SystemTime>,
}

/// What a log line says about a worker or a request.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogEventKind {
    /// The master killed a worker that did not answer in time: gunicorn
    /// `[CRITICAL] WORKER TIMEOUT (pid:N)`, puma `Terminating timed out worker`, unicorn
    /// `timeout (61s > 60s), killing`.
    WorkerTimeout,
    /// uWSGI `HARAKIRI`: a request ran past `harakiri` and its worker was killed.
    Harakiri,
    /// PHP-FPM `execution timed out (N sec), terminating` (`request_terminate_timeout`).
    ExecutionTimedOut,
    /// A worker died on a signal: PHP-FPM `child N exited on signal 9 (SIGKILL)`, gunicorn
    /// `Worker (pid:N) was sent SIGKILL!`, uWSGI `died, killed by signal 9`.
    ExitedOnSignal {
        /// The signal number.
        signal: i32,
    },
    /// PHP-FPM `server reached pm.max_children setting` / `reached max_children`: all
    /// workers busy, requests queue in the listen backlog.
    MaxChildrenReached,
    /// uWSGI `invalid request block size`: request headers larger than `buffer-size`; the
    /// connection is closed without an answer.
    InvalidRequestBlockSize,
    /// PHP-FPM `Connection disallowed`: the client is not in `listen.allowed_clients`.
    ConnectionDisallowed,
    /// The kernel's OOM killer: `Out of memory: Killed process N (name)`, `oom-kill:`.
    OutOfMemory,
    /// Another error-level line (a non-zero exit code, `[ERROR]`, `ERROR:`, a segfault).
    Other,
}

/// What [`identify`] found out about the process behind an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppServer {
    /// Which app server it is.
    pub kind: AppServerKind,
    /// The pid asked about (the listener's owner).
    pub pid: i32,
    /// The master process: the topmost ancestor of the same server (when `pid` is a
    /// worker), or `pid` itself when its process title says it is the master.
    pub master_pid: Option<i32>,
    /// The command name (`comm`) of `pid`.
    pub process: String,
    /// The command line of `pid` (for retitled processes, the title).
    pub cmdline: Vec<String>,
    /// The main config file: PHP-FPM from `php-fpm: master process (PATH)`, uWSGI from
    /// `--ini`, gunicorn/hypercorn from `-c`/`--config` (or `gunicorn.conf.py` in its
    /// working directory).
    pub config: Option<PathBuf>,
    /// For PHP-FPM: the pool whose settings are reported (the one whose `listen` matches
    /// the endpoint, else the worker's pool, else the only pool).
    pub pool: Option<String>,
    /// The settings that matter for 502s, explicit or the server's default.
    pub settings: Vec<Setting>,
    /// The app server's idle keep-alive timeout, explicit or its default, when it keeps
    /// connections alive at all (for the keep-alive race: it must exceed nginx's upstream
    /// `keepalive_timeout`).
    pub idle_timeout: Option<Setting>,
    /// The app server's error log: PHP-FPM `error_log` of `[global]`, gunicorn
    /// `--error-logfile`, uWSGI `logto`/`daemonize`.
    pub log: Option<PathBuf>,
    /// Recent events from that log, oldest first (at most 200, from its last 256 KiB).
    pub events: Vec<LogEvent>,
}

impl AppServer {
    /// The effective setting called `name` (the last one, for settings given several times
    /// such as `bind`).
    pub fn setting(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.name == name)
    }
}

/// A parsed PHP-FPM configuration: the `[global]` section and every pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhpFpmConfig {
    /// Settings of `[global]` (and of lines before any section).
    pub global: Vec<Setting>,
    /// The pools, in order of first appearance; sections with the same name are merged, as
    /// PHP-FPM does.
    pub pools: Vec<PhpFpmPool>,
    /// Every file read, the main one first.
    pub files: Vec<PathBuf>,
}

/// One PHP-FPM pool (`[www]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhpFpmPool {
    /// The section name.
    pub name: String,
    /// Its settings in file order, with `$pool` substituted.
    pub settings: Vec<Setting>,
}

impl PhpFpmPool {
    /// The setting called `name` (the last one when repeated).
    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.name == name)
    }
}

impl PhpFpmConfig {
    /// The `[global]` setting called `name`.
    pub fn global_setting(&self, name: &str) -> Option<&Setting> {
        self.global.iter().rev().find(|s| s.name == name)
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PhpFpmPool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool whose `listen` accepts connections to `endpoint`, written as nginx writes
    /// an upstream (`127.0.0.1:9000`, `unix:/run/php/php8.2-fpm.sock`,
    /// `fastcgi://[::1]:9000`). A `listen` of a bare port (`9000`), `0.0.0.0:9000` or
    /// `[::]:9000` accepts any address on that port; `localhost` stands for `127.0.0.1`
    /// and `::1`; unix paths are compared after resolving symlinks when both exist.
    pub fn pool_for_endpoint(&self, endpoint: &str) -> Option<&PhpFpmPool> {
        self.pool_for_endpoint_in(endpoint, None)
    }

    fn pool_for_endpoint_in(&self, endpoint: &str, prefix: Option<&Path>) -> Option<&PhpFpmPool> {
        let wanted = parse_endpoint(endpoint)?;
        self.pools.iter().find(|pool| {
            let Some(listen) = pool.get("listen") else {
                return false;
            };
            let pool_prefix = pool.get("prefix").map(|s| PathBuf::from(&s.value));
            let base = pool_prefix.as_deref().or(prefix);
            parse_listen(&listen.value, base).is_some_and(|have| addr_matches(&have, &wanted))
        })
    }
}

// ---------------------------------------------------------------------------------------
// identify
// ---------------------------------------------------------------------------------------

/// The facts about one process that identification needs.
#[derive(Debug, Clone)]
struct ProcInfo {
    pid: i32,
    ppid: i32,
    comm: String,
    cmdline: Vec<String>,
}

impl ProcInfo {
    fn read(pid: i32) -> Result<Self, ProbeError> {
        let process = procfs::process::Process::new(pid)
            .map_err(|e| ProbeError::proc(&format!("process {pid}"), &e))?;
        let stat = process
            .stat()
            .map_err(|e| ProbeError::proc(&format!("/proc/{pid}/stat"), &e))?;
        // Non-UTF-8 or unreadable command lines are treated as empty.
        let cmdline = process.cmdline().unwrap_or_default();
        Ok(Self {
            pid,
            ppid: stat.ppid,
            comm: stat.comm,
            cmdline,
        })
    }

    fn title(&self) -> String {
        self.cmdline.join(" ")
    }
}

/// The working directory of `pid`, for resolving relative paths on its command line.
fn cwd_of(pid: i32) -> Option<PathBuf> {
    procfs::process::Process::new(pid).ok()?.cwd().ok()
}

/// One environment variable of `pid` (readable by root or the same user).
fn env_of(pid: i32, name: &str) -> Option<String> {
    let environ = procfs::process::Process::new(pid).ok()?.environ().ok()?;
    environ
        .get(OsStr::new(name))
        .map(|v| v.to_string_lossy().into_owned())
}

/// Names the app server behind a listener owned by `pid` and gathers what is known to make
/// it close or reset connections: its master, config file, the settings that matter for
/// 502s (with file and line), its idle keep-alive timeout, its log and recent events from
/// that log.
///
/// `endpoint` is the upstream as nginx writes it (`127.0.0.1:9000`,
/// `unix:/run/php/php8.2-fpm.sock`); it picks the PHP-FPM pool whose `listen` matches.
///
/// Fails only when `pid` cannot be read at all (gone, or `/proc` unreadable). A config or
/// log that cannot be read leaves the corresponding fields empty (see `tracing` debug
/// events).
pub fn identify(pid: i32, endpoint: Option<&str>) -> Result<AppServer, ProbeError> {
    let this = ProcInfo::read(pid)?;
    let first_kind = kind_of(&this.comm, &this.cmdline);
    let (kind, top) = find_master(&this, first_kind);
    let master_pid = if top.pid != this.pid {
        Some(top.pid)
    } else if kind.has_master() && this.title().contains("master") {
        Some(pid)
    } else {
        None
    };
    let mut server = AppServer {
        kind,
        pid,
        master_pid,
        process: this.comm.clone(),
        cmdline: this.cmdline.clone(),
        config: None,
        pool: None,
        settings: Vec::new(),
        idle_timeout: None,
        log: None,
        events: Vec::new(),
    };
    match kind {
        AppServerKind::PhpFpm => php_fpm_details(&mut server, &top, &this, endpoint),
        AppServerKind::Gunicorn => gunicorn_details(&mut server, &top),
        AppServerKind::Uwsgi => uwsgi_details(&mut server, &top),
        AppServerKind::Uvicorn => uvicorn_details(&mut server, &top),
        AppServerKind::Hypercorn => hypercorn_details(&mut server, &top),
        AppServerKind::Daphne => {
            let args = args_after(&top.cmdline, &["daphne"]);
            server.settings = resolve(
                parse_options(args, DAPHNE_OPTS, &SettingSource::CommandLine).0,
                &["bind"],
            );
        }
        _ => fixed_defaults(&mut server),
    }
    server.log = server.log.map(|log| as_seen_by(&log, top.pid));
    if let Some(log) = server.log.clone() {
        match scan_log(&log, None, LOG_TAIL_BYTES) {
            Ok(events) => {
                let pool = server.pool.clone();
                let mut kept: VecDeque<LogEvent> = VecDeque::new();
                for event in events {
                    // PHP-FPM logs every pool into one file; drop other pools' lines.
                    if let (Some(mine), Some(theirs)) = (&pool, pool_of_line(&event.line))
                        && mine != theirs
                    {
                        continue;
                    }
                    kept.push_back(event);
                    if kept.len() > MAX_EVENTS {
                        kept.pop_front();
                    }
                }
                server.events = kept.into();
            }
            Err(err) => tracing::debug!(%err, log = %log.display(), "cannot scan app server log"),
        }
    }
    tracing::debug!(pid, kind = kind.name(), "app server identified");
    Ok(server)
}

/// Walks up the parents of `this` while they are the same app server (a worker's master),
/// at most [`MAX_PARENT_WALK`] steps. A plain Python child of a Python server (uvicorn's
/// spawned workers) takes the server's kind.
fn find_master(this: &ProcInfo, kind: AppServerKind) -> (AppServerKind, ProcInfo) {
    let mut kind = kind;
    let mut current = this.clone();
    for _ in 0..MAX_PARENT_WALK {
        if current.ppid <= 1 {
            break;
        }
        let Ok(parent) = ProcInfo::read(current.ppid) else {
            break;
        };
        let parent_kind = kind_of(&parent.comm, &parent.cmdline);
        let joins = (parent_kind == kind && kind.has_master())
            || (kind == AppServerKind::Python
                && matches!(
                    parent_kind,
                    AppServerKind::Gunicorn
                        | AppServerKind::Uvicorn
                        | AppServerKind::Hypercorn
                        | AppServerKind::Daphne
                ));
        // A uWSGI vassal's parent is the emperor, which is not its master.
        if !joins || parent.title().contains("emperor") {
            break;
        }
        kind = parent_kind;
        current = parent;
    }
    (kind, current)
}

/// Settings that are the server's built-in defaults only (nothing to read).
fn fixed_defaults(server: &mut AppServer) {
    let (name, value, idle) = match server.kind {
        AppServerKind::Node => ("keepAliveTimeout", "5s", true),
        AppServerKind::Puma => ("persistent_timeout", "20s", true),
        AppServerKind::Apache => ("KeepAliveTimeout", "5s", true),
        AppServerKind::Nginx => ("keepalive_timeout", "75s", true),
        // Unicorn does not keep connections alive; it kills workers after `timeout`.
        AppServerKind::Unicorn => ("timeout", "60s", false),
        _ => return,
    };
    let setting = Setting::new(name, value, SettingSource::Default);
    if idle {
        server.idle_timeout = Some(setting.clone());
    }
    server.settings.push(setting);
}

/// `path` relative to `base` unless absolute.
fn relative_to(path: &str, base: Option<&Path>) -> PathBuf {
    let path = Path::new(path);
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    }
}

// ---------------------------------------------------------------------------------------
// kind_of
// ---------------------------------------------------------------------------------------

/// Names the app server from its command name (`comm`) and command line. Pure.
///
/// Recognises process titles (`php-fpm: pool www`, `gunicorn: master [app]`,
/// `puma 6.4.0 (tcp://...)`, `nginx: worker process`), programs by base name
/// (`/usr/bin/uwsgi`, `php-fpm8.2`, `java`), and servers run by an interpreter
/// (`python3 -m gunicorn`, `/usr/bin/python3 /venv/bin/uvicorn`, `ruby bin/puma`,
/// `bundle exec unicorn`).
pub fn kind_of(process: &str, cmdline: &[String]) -> AppServerKind {
    let argv0 = cmdline.first().map_or("", String::as_str);
    let program = program_name(argv0);
    let comm = program_name(process);
    if let Some(kind) = kind_by_name(&program).or_else(|| kind_by_name(&comm)) {
        return kind;
    }
    let rest = cmdline.get(1..).unwrap_or_default();
    if is_python(&program) || (argv0.is_empty() && is_python(&comm)) {
        return python_target(rest)
            .and_then(|name| kind_by_name(&name))
            .unwrap_or(AppServerKind::Python);
    }
    if is_ruby(&program) || (argv0.is_empty() && is_ruby(&comm)) {
        return ruby_target(rest)
            .and_then(|name| kind_by_name(&name))
            .unwrap_or(AppServerKind::Ruby);
    }
    AppServerKind::Other
}

/// The lower-cased base name of the first word of `text`, without a trailing `:`
/// (`/usr/bin/python3` → `python3`, `php-fpm: pool www` → `php-fpm`).
fn program_name(text: &str) -> String {
    let word = text.split_whitespace().next().unwrap_or("");
    let base = word.rsplit('/').next().unwrap_or(word);
    base.trim_end_matches(':').to_ascii_lowercase()
}

fn kind_by_name(name: &str) -> Option<AppServerKind> {
    use AppServerKind as K;
    let kind = match name {
        "gunicorn" => K::Gunicorn,
        "uvicorn" => K::Uvicorn,
        "hypercorn" => K::Hypercorn,
        "daphne" => K::Daphne,
        "puma" => K::Puma,
        "unicorn" | "unicorn_rails" => K::Unicorn,
        "node" | "nodejs" | "next-server" => K::Node,
        "java" => K::Java,
        "nginx" => K::Nginx,
        "apache2" | "httpd" | "apache" => K::Apache,
        _ if name.starts_with("php-fpm") => K::PhpFpm,
        _ if name.starts_with("uwsgi") => K::Uwsgi,
        _ if name.starts_with("passenger") => K::Passenger,
        _ if name
            .strip_prefix("php")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.')) =>
        {
            K::Php
        }
        _ => return None,
    };
    Some(kind)
}

fn is_python(name: &str) -> bool {
    name.starts_with("python") || name.starts_with("pypy")
}

fn is_ruby(name: &str) -> bool {
    name.starts_with("ruby")
}

/// What a Python interpreter runs: the module of `-m` (first dotted part) or the script's
/// base name.
fn python_target(args: &[String]) -> Option<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-m" => {
                let module = args.next()?;
                return Some(
                    module
                        .split('.')
                        .next()
                        .unwrap_or(module)
                        .to_ascii_lowercase(),
                );
            }
            "-c" => return None,
            "-W" | "-X" | "-Q" => {
                args.next();
            }
            _ if arg.starts_with('-') => {}
            _ => return Some(program_name(arg)),
        }
    }
    None
}

/// What a Ruby interpreter runs: the script's base name, looking through `bundle exec`.
fn ruby_target(args: &[String]) -> Option<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-I" | "-r" | "-C" | "-E" => {
                args.next();
            }
            _ if arg.starts_with('-') => {}
            _ => {
                let name = program_name(arg);
                if name == "bundle" || name == "bundler" {
                    // bundle exec NAME
                    let next = args.next()?;
                    if next == "exec" {
                        return args.next().map(|s| program_name(s));
                    }
                    return None;
                }
                return Some(name);
            }
        }
    }
    None
}

/// The arguments after the server's own program (`/usr/bin/gunicorn` or `-m gunicorn`) in
/// a command line; all but the first when the program is not found.
fn args_after<'a>(cmdline: &'a [String], names: &[&str]) -> &'a [String] {
    let mut previous: Option<&str> = None;
    for (i, arg) in cmdline.iter().enumerate() {
        let base = program_name(arg);
        let module = arg.split('.').next().unwrap_or(arg);
        if names.contains(&base.as_str()) || (previous == Some("-m") && names.contains(&module)) {
            return cmdline.get(i + 1..).unwrap_or_default();
        }
        previous = Some(arg);
    }
    cmdline.get(1..).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Command-line options
// ---------------------------------------------------------------------------------------

/// One option of an app server's command line.
#[derive(Debug, Clone, Copy)]
struct Opt {
    /// The canonical setting name.
    name: &'static str,
    /// Spellings on the command line (`-t`, `--timeout`); ini/config keys match the long
    /// ones without dashes.
    flags: &'static [&'static str],
    /// Given several times, every occurrence counts (`--bind`).
    multi: bool,
    /// The value may be left out (uWSGI's `--http-keepalive`).
    optional_value: bool,
}

const fn opt(name: &'static str, flags: &'static [&'static str]) -> Opt {
    Opt {
        name,
        flags,
        multi: false,
        optional_value: false,
    }
}

const fn multi(name: &'static str, flags: &'static [&'static str]) -> Opt {
    Opt {
        name,
        flags,
        multi: true,
        optional_value: false,
    }
}

impl Opt {
    /// Whether a config-file key names this option (`buffer_size` or `buffer-size`).
    fn has_key(&self, key: &str) -> bool {
        let key = key.replace('_', "-");
        self.name == key
            || self
                .flags
                .iter()
                .any(|f| f.strip_prefix("--") == Some(key.as_str()))
    }
}

/// Parses `args` against `opts`: `--name value`, `--name=value`, `-n value`, `-nvalue`.
/// Unknown options are skipped one word at a time. Returns the recognised settings in
/// order, and the positional words.
fn parse_options(
    args: &[String],
    opts: &[Opt],
    source: &SettingSource,
) -> (Vec<Setting>, Vec<String>) {
    let mut settings = Vec::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            positional.extend(args.get(i..).unwrap_or_default().iter().cloned());
            break;
        }
        let (flag, inline) = if arg.starts_with("--") {
            match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (arg.as_str(), None),
            }
        } else if arg.starts_with('-') && arg.len() > 2 && arg.is_char_boundary(2) {
            let (flag, rest) = arg.split_at(2);
            (flag, Some(rest.to_owned()))
        } else if arg.starts_with('-') && arg.len() > 1 {
            (arg.as_str(), None)
        } else {
            positional.push(arg.clone());
            continue;
        };
        let Some(spec) = opts.iter().find(|o| o.flags.contains(&flag)) else {
            continue;
        };
        let value = match inline {
            Some(value) => value,
            None => match args.get(i) {
                Some(next) if !(spec.optional_value && next.starts_with('-')) => {
                    i += 1;
                    next.clone()
                }
                _ if spec.optional_value => "true".to_owned(),
                _ => continue,
            },
        };
        settings.push(Setting::new(spec.name, value, source.clone()));
    }
    (settings, positional)
}

/// Keeps the effective settings from observations in increasing precedence: the last one
/// of each name, or all of them for names in `multi`.
fn resolve(observed: Vec<Setting>, multi: &[&str]) -> Vec<Setting> {
    let mut out: Vec<Setting> = Vec::new();
    for setting in observed {
        if !multi.contains(&setting.name.as_str())
            && let Some(slot) = out.iter_mut().find(|s| s.name == setting.name)
        {
            *slot = setting;
        } else {
            out.push(setting);
        }
    }
    out
}

/// Adds `name = value` as a [`SettingSource::Default`] when no setting has that name.
fn with_default(settings: &mut Vec<Setting>, name: &str, value: &str) {
    if !settings.iter().any(|s| s.name == name) {
        settings.push(Setting::new(name, value, SettingSource::Default));
    }
}

fn names_of(opts: &[Opt]) -> Vec<&'static str> {
    opts.iter().filter(|o| o.multi).map(|o| o.name).collect()
}

/// Splits a `GUNICORN_CMD_ARGS`-style string into words (whitespace, with single and
/// double quotes grouping).
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Simple top-level `name = literal` assignments of a Python (gunicorn, hypercorn) or TOML
/// (hypercorn) config file: `(name, values, line)`. Strings lose their quotes; a list of
/// literals gives one value per element; anything else is kept as written. Indented lines
/// (inside functions or blocks) are ignored.
fn simple_assignments(text: &str) -> Vec<(String, Vec<String>, usize)> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        if raw.starts_with(char::is_whitespace) {
            continue;
        }
        let line = strip_hash_comment(raw).trim();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.is_empty()
            || value.starts_with('=')
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let values = if let Some(inner) = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .or_else(|| value.strip_prefix('(').and_then(|v| v.strip_suffix(')')))
        {
            inner
                .split(',')
                .map(|v| unquote(v.trim()))
                .filter(|v| !v.is_empty())
                .collect()
        } else {
            vec![unquote(value)]
        };
        out.push((name.to_owned(), values, index + 1));
    }
    out
}

/// `line` up to a `#` that is outside quotes.
fn strip_hash_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return line.get(..at).unwrap_or(line),
            _ => {}
        }
    }
    line
}

/// Removes one pair of matching surrounding quotes.
fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

/// Reads a whole config file, refusing files over [`MAX_CONFIG_BYTES`].
fn read_config_file(path: &Path) -> Result<String, ProbeError> {
    let io_err = |source| ProbeError::Io {
        what: format!("reading {}", path.display()),
        source,
    };
    let file = open_regular(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes"),
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Opens a regular file for reading; anything else (a FIFO, a terminal, a socket behind
/// `/proc/PID/fd/2`) is refused without blocking.
fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// A path as process `pid` means it: `/proc/self/...`, `/dev/stdout` and `/dev/stderr`
/// name that process's own files (container images log to `/proc/self/fd/2`).
fn as_seen_by(path: &Path, pid: i32) -> PathBuf {
    let own = PathBuf::from(format!("/proc/{pid}"));
    if let Ok(rest) = path.strip_prefix("/proc/self") {
        return own.join(rest);
    }
    match path.to_str() {
        Some("/dev/stdout") => own.join("fd/1"),
        Some("/dev/stderr") => own.join("fd/2"),
        _ => path.to_path_buf(),
    }
}

// ---------------------------------------------------------------------------------------
// gunicorn, uvicorn, hypercorn, daphne
// ---------------------------------------------------------------------------------------

const GUNICORN_OPTS: &[Opt] = &[
    opt("timeout", &["-t", "--timeout"]),
    opt("keep-alive", &["--keep-alive"]),
    opt("workers", &["-w", "--workers"]),
    multi("bind", &["-b", "--bind"]),
    opt("worker-class", &["-k", "--worker-class"]),
    opt("threads", &["--threads"]),
    opt("config", &["-c", "--config"]),
    opt("error-logfile", &["--error-logfile", "--log-file"]),
];

/// gunicorn config-file names of [`GUNICORN_OPTS`] that differ from the option name.
const GUNICORN_FILE_NAMES: &[(&str, &str)] = &[
    ("keepalive", "keep-alive"),
    ("worker_class", "worker-class"),
    ("errorlog", "error-logfile"),
];

/// gunicorn's effective settings from its command line (after the program), the
/// `GUNICORN_CMD_ARGS` variable and its config file, in gunicorn's precedence (command
/// line, then environment, then file), plus documented defaults. Pure.
fn gunicorn_settings(
    args: &[String],
    env_args: Option<&str>,
    file: Option<(&str, &Path)>,
) -> Vec<Setting> {
    let mut observed = Vec::new();
    if let Some((text, path)) = file {
        observed.extend(file_settings(
            text,
            path,
            GUNICORN_OPTS,
            GUNICORN_FILE_NAMES,
        ));
    }
    if let Some(env_args) = env_args {
        let source = SettingSource::Environment {
            variable: "GUNICORN_CMD_ARGS".to_owned(),
        };
        observed.extend(parse_options(&split_words(env_args), GUNICORN_OPTS, &source).0);
    }
    observed.extend(parse_options(args, GUNICORN_OPTS, &SettingSource::CommandLine).0);
    let mut settings = resolve(observed, &names_of(GUNICORN_OPTS));
    settings.retain(|s| s.name != "config");
    for (name, value) in [
        ("timeout", "30"),
        ("keep-alive", "2"),
        ("workers", "1"),
        ("bind", "127.0.0.1:8000"),
        ("worker-class", "sync"),
    ] {
        with_default(&mut settings, name, value);
    }
    settings
}

/// Settings from a Python/TOML config file, mapped to option names.
fn file_settings(text: &str, path: &Path, opts: &[Opt], renames: &[(&str, &str)]) -> Vec<Setting> {
    let mut out = Vec::new();
    for (name, values, line) in simple_assignments(text) {
        let name = renames
            .iter()
            .find(|(from, _)| *from == name)
            .map_or(name.replace('_', "-"), |(_, to)| (*to).to_owned());
        if !opts.iter().any(|o| o.name == name) {
            continue;
        }
        for value in values {
            let source = SettingSource::File {
                path: path.to_path_buf(),
                line,
            };
            out.push(Setting::new(name.clone(), value, source));
        }
    }
    out
}

/// gunicorn's idle keep-alive timeout: its `keep-alive` setting, except for the default
/// `sync` worker (with one thread), which closes every connection after the response.
fn gunicorn_idle_timeout(settings: &[Setting]) -> Option<Setting> {
    let get = |name: &str| settings.iter().rev().find(|s| s.name == name);
    let class = get("worker-class").map_or("sync", |s| s.value.as_str());
    let threads = get("threads")
        .and_then(|s| s.value.parse::<u32>().ok())
        .unwrap_or(1);
    let sync = matches!(
        class,
        "sync" | "gunicorn.workers.sync.SyncWorker" | "egg:gunicorn#sync"
    );
    if sync && threads <= 1 {
        return None;
    }
    get("keep-alive").cloned()
}

/// The config file named by `-c` (or `file:PATH`), else `default_name` when it exists in
/// the working directory; `python:module` configs are not files.
fn config_file_of(
    settings: &[Setting],
    cwd: Option<&Path>,
    default_name: Option<&str>,
) -> Option<PathBuf> {
    match settings.iter().rev().find(|s| s.name == "config") {
        Some(setting) if setting.value.starts_with("python:") => None,
        Some(setting) => {
            let value = setting
                .value
                .strip_prefix("file:")
                .unwrap_or(&setting.value);
            Some(relative_to(value, cwd))
        }
        None => {
            let candidate = cwd?.join(default_name?);
            candidate.is_file().then_some(candidate)
        }
    }
}

fn gunicorn_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["gunicorn"]);
    let env_args = env_of(top.pid, "GUNICORN_CMD_ARGS");
    let cwd = cwd_of(top.pid);
    let mut early = parse_options(args, GUNICORN_OPTS, &SettingSource::CommandLine).0;
    if let Some(env_args) = &env_args {
        let source = SettingSource::CommandLine;
        early.extend(parse_options(&split_words(env_args), GUNICORN_OPTS, &source).0);
    }
    server.config = config_file_of(&early, cwd.as_deref(), Some("gunicorn.conf.py"));
    let text = server.config.as_deref().and_then(|path| {
        read_config_file(path)
            .map_err(|err| tracing::debug!(%err, "cannot read gunicorn config"))
            .ok()
    });
    let file = text.as_deref().zip(server.config.as_deref());
    server.settings = gunicorn_settings(args, env_args.as_deref(), file);
    server.idle_timeout = gunicorn_idle_timeout(&server.settings);
    server.log = log_path(&server.settings, "error-logfile", cwd.as_deref());
}

/// The log file named by setting `name`, unless it is stderr (`-`).
fn log_path(settings: &[Setting], name: &str, cwd: Option<&Path>) -> Option<PathBuf> {
    let value = &settings.iter().rev().find(|s| s.name == name)?.value;
    (value != "-" && !value.is_empty()).then(|| relative_to(value, cwd))
}

const UVICORN_OPTS: &[Opt] = &[
    opt("timeout-keep-alive", &["--timeout-keep-alive"]),
    opt("host", &["--host"]),
    opt("port", &["--port"]),
    opt("uds", &["--uds"]),
    opt("fd", &["--fd"]),
    opt("workers", &["--workers"]),
    opt("backlog", &["--backlog"]),
];

/// uvicorn's effective settings from its command line and its `UVICORN_*` variables
/// (`UVICORN_TIMEOUT_KEEP_ALIVE`), plus defaults. Pure: `env` looks up a variable.
fn uvicorn_settings(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Vec<Setting> {
    let mut observed = Vec::new();
    for spec in UVICORN_OPTS {
        let variable = format!(
            "UVICORN_{}",
            spec.name.replace('-', "_").to_ascii_uppercase()
        );
        if let Some(value) = env(&variable) {
            observed.push(Setting::new(
                spec.name,
                value,
                SettingSource::Environment { variable },
            ));
        }
    }
    observed.extend(parse_options(args, UVICORN_OPTS, &SettingSource::CommandLine).0);
    let mut settings = resolve(observed, &[]);
    for (name, value) in [
        ("timeout-keep-alive", "5"),
        ("host", "127.0.0.1"),
        ("port", "8000"),
        ("backlog", "2048"),
    ] {
        with_default(&mut settings, name, value);
    }
    settings
}

fn uvicorn_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["uvicorn"]);
    let pid = top.pid;
    server.settings = uvicorn_settings(args, &|name| env_of(pid, name));
    server.idle_timeout = server.setting("timeout-keep-alive").cloned();
}

const HYPERCORN_OPTS: &[Opt] = &[
    opt("keep-alive", &["--keep-alive"]),
    multi("bind", &["-b", "--bind"]),
    opt("workers", &["-w", "--workers"]),
    opt("worker-class", &["-k", "--worker-class"]),
    opt("backlog", &["--backlog"]),
    opt("config", &["-c", "--config"]),
    opt("error-logfile", &["--error-logfile", "--log-file"]),
];

const HYPERCORN_FILE_NAMES: &[(&str, &str)] = &[
    ("keep_alive_timeout", "keep-alive"),
    ("worker_class", "worker-class"),
    ("errorlog", "error-logfile"),
];

fn hypercorn_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["hypercorn"]);
    let cwd = cwd_of(top.pid);
    let cmd = parse_options(args, HYPERCORN_OPTS, &SettingSource::CommandLine).0;
    server.config = config_file_of(&cmd, cwd.as_deref(), None);
    let mut observed = Vec::new();
    if let Some(path) = &server.config {
        match read_config_file(path) {
            Ok(text) => observed.extend(file_settings(
                &text,
                path,
                HYPERCORN_OPTS,
                HYPERCORN_FILE_NAMES,
            )),
            Err(err) => tracing::debug!(%err, "cannot read hypercorn config"),
        }
    }
    observed.extend(cmd);
    let mut settings = resolve(observed, &names_of(HYPERCORN_OPTS));
    settings.retain(|s| s.name != "config");
    for (name, value) in [
        ("keep-alive", "5"),
        ("bind", "127.0.0.1:8000"),
        ("workers", "1"),
    ] {
        with_default(&mut settings, name, value);
    }
    server.idle_timeout = settings
        .iter()
        .rev()
        .find(|s| s.name == "keep-alive")
        .cloned();
    server.log = log_path(&settings, "error-logfile", cwd.as_deref());
    server.settings = settings;
}

const DAPHNE_OPTS: &[Opt] = &[
    multi("bind", &["-b", "--bind"]),
    opt("port", &["-p", "--port"]),
    opt("unix-socket", &["-u", "--unix-socket"]),
    opt("http-timeout", &["--http-timeout"]),
];

// ---------------------------------------------------------------------------------------
// uWSGI
// ---------------------------------------------------------------------------------------

const UWSGI_OPTS: &[Opt] = &[
    opt("ini", &["--ini"]),
    opt("harakiri", &["-t", "--harakiri"]),
    opt("buffer-size", &["-b", "--buffer-size"]),
    multi("socket", &["-s", "--socket", "--uwsgi-socket"]),
    multi("http-socket", &["--http-socket"]),
    multi("http", &["--http"]),
    Opt {
        name: "http-keepalive",
        flags: &["--http-keepalive"],
        multi: false,
        optional_value: true,
    },
    opt("processes", &["-p", "--processes", "--workers"]),
    opt("listen", &["-l", "--listen"]),
    opt("logto", &["--logto"]),
    opt("daemonize", &["-d", "--daemonize"]),
];

/// Settings of one section (default `uwsgi`) of a uWSGI ini file, mapped to option names.
/// Comments are whole lines starting with `;` or `#`. Pure.
fn uwsgi_ini_settings(text: &str, path: &Path, section: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            name.trim().clone_into(&mut current);
            continue;
        }
        if current != section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let Some(spec) = UWSGI_OPTS.iter().find(|o| o.has_key(key.trim())) else {
            continue;
        };
        let source = SettingSource::File {
            path: path.to_path_buf(),
            line: index + 1,
        };
        out.push(Setting::new(spec.name, value.trim(), source));
    }
    out
}

/// Splits `--ini path[:section]` (the section after the last `:` of the last path part).
fn ini_path_and_section(value: &str) -> (&str, &str) {
    let name_start = value.rfind('/').map_or(0, |i| i + 1);
    match value.rfind(':') {
        Some(colon) if colon > name_start => (
            value.get(..colon).unwrap_or(value),
            value.get(colon + 1..).unwrap_or("uwsgi"),
        ),
        _ => (value, "uwsgi"),
    }
}

/// uWSGI's effective settings from its command line, expanding each `--ini` (or a
/// positional `*.ini`) at its place, later values overriding earlier ones as uWSGI does.
/// `read` reads a config file. Returns the settings and the first ini file.
fn uwsgi_settings(
    args: &[String],
    cwd: Option<&Path>,
    read: &dyn Fn(&Path) -> Option<String>,
) -> (Vec<Setting>, Option<PathBuf>) {
    let (cmd, positional) = parse_options(args, UWSGI_OPTS, &SettingSource::CommandLine);
    let mut observed = Vec::new();
    let mut first_ini = None;
    let positional_ini = positional
        .iter()
        .filter(|p| p.ends_with(".ini"))
        .map(|p| Setting::new("ini", p.clone(), SettingSource::CommandLine));
    for setting in positional_ini.chain(cmd) {
        if setting.name != "ini" {
            observed.push(setting);
            continue;
        }
        let (path, section) = ini_path_and_section(&setting.value);
        let path = relative_to(path, cwd);
        if let Some(text) = read(&path) {
            observed.extend(uwsgi_ini_settings(&text, &path, section));
        }
        first_ini.get_or_insert(path);
    }
    let mut settings = resolve(observed, &names_of(UWSGI_OPTS));
    for (name, value) in [
        ("buffer-size", "4096"),
        ("harakiri", "0"),
        ("listen", "100"),
    ] {
        with_default(&mut settings, name, value);
    }
    (settings, first_ini)
}

fn uwsgi_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["uwsgi"]);
    let cwd = cwd_of(top.pid);
    let read = |path: &Path| {
        read_config_file(path)
            .map_err(|err| tracing::debug!(%err, "cannot read uWSGI ini"))
            .ok()
    };
    let (settings, ini) = uwsgi_settings(args, cwd.as_deref(), &read);
    server.config = ini;
    server.log = log_path(&settings, "logto", cwd.as_deref()).or_else(|| {
        // `daemonize = PATH` logs to PATH.
        let daemonize = settings.iter().rev().find(|s| s.name == "daemonize")?;
        daemonize
            .value
            .contains('/')
            .then(|| relative_to(&daemonize.value, cwd.as_deref()))
    });
    server.settings = settings;
}

// ---------------------------------------------------------------------------------------
// PHP-FPM
// ---------------------------------------------------------------------------------------

/// Pool settings [`identify`] reports, with PHP-FPM's defaults (`None`: no default).
const PHP_FPM_POOL_SETTINGS: &[(&str, Option<&str>)] = &[
    ("listen", None),
    ("listen.owner", None),
    ("listen.group", None),
    ("listen.mode", Some("0660")),
    // -1 on Linux: the kernel's net.core.somaxconn.
    ("listen.backlog", Some("-1")),
    ("listen.allowed_clients", Some("any")),
    ("listen.acl_users", None),
    ("listen.acl_groups", None),
    ("pm", None),
    ("pm.max_children", None),
    ("pm.max_requests", Some("0")),
    ("pm.status_path", None),
    ("request_terminate_timeout", Some("0")),
    ("request_slowlog_timeout", Some("0")),
];

/// PHP-FPM's compile-time prefix on Debian and most builds: base of relative `include=`
/// and unix `listen` paths when no `-p` prefix is given.
const PHP_FPM_DEFAULT_PREFIX: &str = "/usr";
/// Base of a relative `error_log` when no `-p` prefix is given (`PHP_LOCALSTATEDIR`).
const PHP_FPM_DEFAULT_LOG_PREFIX: &str = "/var";

fn php_fpm_details(
    server: &mut AppServer,
    master: &ProcInfo,
    this: &ProcInfo,
    endpoint: Option<&str>,
) {
    let cwd = cwd_of(master.pid);
    // Flags survive only when the master is not retitled.
    let flags = parse_options(
        master.cmdline.get(1..).unwrap_or_default(),
        &[
            opt("prefix", &["-p", "--prefix"]),
            opt("config", &["-y", "--fpm-config"]),
        ],
        &SettingSource::CommandLine,
    )
    .0;
    let flag = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|s| s.name == name)
            .map(|s| s.value.clone())
    };
    let prefix_dir = flag("prefix").map(PathBuf::from);
    let config = config_from_master_title(&master.title())
        .or_else(|| flag("config"))
        .map(|p| relative_to(&p, cwd.as_deref()))
        .or_else(|| default_php_fpm_config(&master.comm));
    server.config.clone_from(&config);
    let Some(config) = config else {
        tracing::debug!(pid = master.pid, "no PHP-FPM config path found");
        return;
    };
    let parsed = match load_php_fpm(&config, prefix_dir.as_deref()) {
        Ok(parsed) => parsed,
        Err(err) => {
            tracing::debug!(%err, "cannot read PHP-FPM config");
            return;
        }
    };
    let worker_pool = this
        .title()
        .strip_prefix("php-fpm: pool ")
        .map(|p| p.trim().to_owned());
    let by_endpoint = endpoint.and_then(|e| parsed.pool_for_endpoint_in(e, prefix_dir.as_deref()));
    if endpoint.is_some() && by_endpoint.is_none() {
        tracing::debug!(?endpoint, "no PHP-FPM pool listens on the endpoint");
    }
    let pool = by_endpoint
        .or_else(|| worker_pool.as_deref().and_then(|name| parsed.pool(name)))
        .or(match parsed.pools.as_slice() {
            [only] => Some(only),
            _ => None,
        });
    if let Some(pool) = pool {
        server.pool = Some(pool.name.clone());
        for (name, default) in PHP_FPM_POOL_SETTINGS {
            match (pool.get(name), default) {
                (Some(setting), _) => server.settings.push(setting.clone()),
                (None, Some(value)) => {
                    server
                        .settings
                        .push(Setting::new(*name, *value, SettingSource::Default));
                }
                (None, None) => {}
            }
        }
    }
    let log_base = prefix_dir.unwrap_or_else(|| PathBuf::from(PHP_FPM_DEFAULT_LOG_PREFIX));
    server.log = match parsed.global_setting("error_log") {
        Some(s) if s.value.starts_with("syslog") || s.value.is_empty() => None,
        Some(s) => Some(relative_to(&s.value, Some(&log_base))),
        None => Some(log_base.join("log/php-fpm.log")),
    };
}

/// The config path in a PHP-FPM master's title, `php-fpm: master process (PATH)`.
fn config_from_master_title(title: &str) -> Option<String> {
    let rest = title.trim().strip_prefix("php-fpm: master process (")?;
    let end = rest.rfind(')')?;
    Some(rest.get(..end)?.to_owned())
}

/// Where a packaged PHP-FPM keeps its config when the title does not say: Debian
/// `/etc/php/8.2/fpm/php-fpm.conf` (version from `php-fpm8.2`), the official Docker image
/// `/usr/local/etc/php-fpm.conf`, RHEL `/etc/php-fpm.conf`. The first that exists.
fn default_php_fpm_config(comm: &str) -> Option<PathBuf> {
    let version = comm.strip_prefix("php-fpm").unwrap_or("");
    let mut candidates = Vec::new();
    if !version.is_empty() {
        candidates.push(PathBuf::from(format!(
            "/etc/php/{version}/fpm/php-fpm.conf"
        )));
    }
    candidates.push(PathBuf::from("/usr/local/etc/php-fpm.conf"));
    candidates.push(PathBuf::from("/etc/php-fpm.conf"));
    candidates.into_iter().find(|p| p.is_file())
}

/// The pool named in a PHP-FPM log line, `[pool www]`.
fn pool_of_line(line: &str) -> Option<&str> {
    let rest = line.split_once("[pool ")?.1;
    Some(rest.split_once(']')?.0)
}

/// Parses a PHP-FPM config file and every file its `include=` globs name (relative
/// patterns are based at `/usr`, PHP-FPM's prefix when run without `-p`), at most 64 files
/// of 1 MiB each and 8 levels deep. Unreadable included files are skipped (see `tracing`
/// debug events); only an unreadable main file is an error.
pub fn parse_php_fpm_config(path: &Path) -> Result<PhpFpmConfig, ProbeError> {
    load_php_fpm(path, None)
}

fn load_php_fpm(path: &Path, prefix: Option<&Path>) -> Result<PhpFpmConfig, ProbeError> {
    let text = read_config_file(path)?;
    let mut parser = FpmParser {
        config: PhpFpmConfig::default(),
        current: None,
        follow: Some(
            prefix.map_or_else(|| PathBuf::from(PHP_FPM_DEFAULT_PREFIX), Path::to_path_buf),
        ),
    };
    parser.config.files.push(path.to_path_buf());
    parser.parse(&text, path, 0);
    Ok(parser.config)
}

/// Parses the text of one PHP-FPM config file without following `include=` (those lines
/// are kept as settings named `include`). Pure.
///
/// The dialect is PHP's ini syntax as PHP-FPM reads it, line by line: `;` starts a comment
/// (also after a value), `[name]` starts a section (`[global]` or a pool), values may be
/// in double quotes (with `\"` escapes) or single quotes, and `$pool` in a pool's values is
/// replaced by the pool's name. Values are kept as written otherwise (no `yes`→`1`
/// conversion, no `${ENV}` expansion).
pub fn parse_php_fpm_str(text: &str, path: &Path) -> PhpFpmConfig {
    let mut parser = FpmParser {
        config: PhpFpmConfig::default(),
        current: None,
        follow: None,
    };
    parser.config.files.push(path.to_path_buf());
    parser.parse(text, path, 0);
    parser.config
}

struct FpmParser {
    config: PhpFpmConfig,
    /// The pool being filled; `None` for `[global]`.
    current: Option<usize>,
    /// Follow `include=`, with this prefix for relative patterns.
    follow: Option<PathBuf>,
}

impl FpmParser {
    fn parse(&mut self, text: &str, path: &Path, depth: usize) {
        for (index, raw) in text.lines().enumerate() {
            match parse_ini_line(raw) {
                IniLine::Section(name) => self.enter(name),
                IniLine::Entry(key, value) => {
                    let value = match self.current.and_then(|i| self.config.pools.get(i)) {
                        Some(pool) => value.replace("$pool", &pool.name),
                        None => value,
                    };
                    let source = SettingSource::File {
                        path: path.to_path_buf(),
                        line: index + 1,
                    };
                    let include = (key == "include").then(|| value.clone());
                    self.push(Setting::new(key, value, source));
                    if let Some(pattern) = include {
                        self.include(&pattern, depth);
                    }
                }
                IniLine::Nothing => {}
            }
        }
    }

    fn enter(&mut self, name: String) {
        if name == "global" {
            self.current = None;
        } else if let Some(i) = self.config.pools.iter().position(|p| p.name == name) {
            self.current = Some(i);
        } else {
            self.config.pools.push(PhpFpmPool {
                name,
                settings: Vec::new(),
            });
            self.current = Some(self.config.pools.len() - 1);
        }
    }

    fn push(&mut self, setting: Setting) {
        match self.current.and_then(|i| self.config.pools.get_mut(i)) {
            Some(pool) => pool.settings.push(setting),
            None => self.config.global.push(setting),
        }
    }

    fn include(&mut self, pattern: &str, depth: usize) {
        let Some(prefix) = self.follow.clone() else {
            return;
        };
        if depth >= MAX_INCLUDE_DEPTH {
            tracing::debug!(pattern, "PHP-FPM includes nested too deep; not followed");
            return;
        }
        let pattern = relative_to(pattern, Some(&prefix));
        for file in expand_glob(&pattern) {
            if self.config.files.len() >= MAX_CONFIG_FILES {
                tracing::debug!(pattern = %pattern.display(), "too many PHP-FPM config files");
                return;
            }
            match read_config_file(&file) {
                Ok(text) => {
                    self.config.files.push(file.clone());
                    self.parse(&text, &file, depth + 1);
                }
                Err(err) => tracing::debug!(%err, "cannot read included PHP-FPM config"),
            }
        }
    }
}

/// One line of a PHP ini file.
#[derive(Debug, PartialEq, Eq)]
enum IniLine {
    Section(String),
    Entry(String, String),
    Nothing,
}

fn parse_ini_line(raw: &str) -> IniLine {
    let line = raw.trim();
    if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
        return IniLine::Nothing;
    }
    if let Some(rest) = line.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, _)) => IniLine::Section(unquote(name.trim())),
            None => IniLine::Nothing,
        };
    }
    let Some((key, value)) = line.split_once('=') else {
        return IniLine::Nothing;
    };
    let key = key.trim();
    if key.is_empty() {
        return IniLine::Nothing;
    }
    IniLine::Entry(key.to_owned(), parse_ini_value(value.trim()))
}

/// An ini value: `"double quoted"` (with `\"` and `\\`), `'single quoted'`, or bare up to
/// a `;` comment.
fn parse_ini_value(value: &str) -> String {
    if let Some(rest) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\')) => out.push(next),
                    Some(next) => {
                        out.push('\\');
                        out.push(next);
                    }
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return out;
    }
    if let Some(rest) = value.strip_prefix('\'') {
        return rest
            .split_once('\'')
            .map_or(rest, |(inner, _)| inner)
            .to_owned();
    }
    value
        .split_once(';')
        .map_or(value, |(v, _)| v)
        .trim_end()
        .to_owned()
}

/// Expands a glob(3)-style pattern (`*`, `?`, `[a-z]`, `[!x]` in any component) to the
/// regular files it names, sorted; a pattern without wildcards names itself if it is a
/// file. Hidden names only match a pattern that starts with `.`.
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = match component {
            Component::Normal(part) => part.to_string_lossy().into_owned(),
            other => {
                for path in &mut current {
                    path.push(other.as_os_str());
                }
                continue;
            }
        };
        if !part.contains(['*', '?', '[']) {
            for path in &mut current {
                path.push(&part);
            }
            continue;
        }
        let pattern_chars: Vec<char> = part.chars().collect();
        let mut next = Vec::new();
        for dir in &current {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .take(MAX_DIR_ENTRIES)
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.') || part.starts_with('.'))
                .filter(|name| {
                    let name: Vec<char> = name.chars().collect();
                    wildcard_match(&pattern_chars, &name)
                })
                .collect();
            names.sort();
            let room = MAX_DIR_ENTRIES.saturating_sub(next.len());
            next.extend(names.into_iter().take(room).map(|name| dir.join(name)));
        }
        current = next;
    }
    let mut files: Vec<PathBuf> = current.into_iter().filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Whether `name` matches a glob component `pattern` (`*`, `?`, `[...]`).
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and how much of the name it has eaten.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match match_class(pattern.get(p..).unwrap_or_default(), c) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (c == '[').then_some(1),
            },
            Some(&literal) => (literal == c).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((star_p, star_n))) => {
                p = star_p + 1;
                n = star_n + 1;
                star = Some((star_p, star_n + 1));
            }
            (None, None) => return false,
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `pattern` (`[abc]`, `[a-z]`, `[!x]`).
/// Returns whether it matched and the class's length, or `None` if the `[` is not closed.
fn match_class(pattern: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &item = pattern.get(i)?;
        if item == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-')
            && let Some(&end) = pattern.get(i + 2)
            && end != ']'
        {
            matched |= item <= c && c <= end;
            i += 3;
        } else {
            matched |= item == c;
            i += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

/// A listening address, from nginx's upstream or an app server's `listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    Unix(PathBuf),
    /// `host: None` means every address.
    Tcp {
        host: Option<String>,
        port: u16,
    },
}

/// Parses an upstream as nginx writes it: `127.0.0.1:9000`, `[::1]:9000`, `localhost:9000`,
/// `unix:/run/x.sock` (a trailing `:` from error logs is dropped), with or without a
/// `scheme://` in front.
fn parse_endpoint(text: &str) -> Option<Addr> {
    let text = text.trim();
    let text = text.split_once("://").map_or(text, |(_, rest)| rest);
    if let Some(path) = text.strip_prefix("unix:") {
        let path = path.trim_end_matches(':');
        return (!path.is_empty()).then(|| Addr::Unix(PathBuf::from(path)));
    }
    let text = text.trim_end_matches('/');
    if text.starts_with('/') {
        return Some(Addr::Unix(PathBuf::from(text)));
    }
    parse_host_port(text)
}

/// Parses a PHP-FPM `listen` value: `ip:port`, `[ipv6]:port`, a bare port (every
/// address), or a socket path (relative ones based at `prefix`).
fn parse_listen(value: &str, prefix: Option<&Path>) -> Option<Addr> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.starts_with('/') {
        return Some(Addr::Unix(PathBuf::from(value)));
    }
    if let Ok(port) = value.parse::<u16>() {
        return Some(Addr::Tcp { host: None, port });
    }
    // PHP-FPM treats a value with ':' as TCP, anything else as a unix path.
    if value.contains(':') {
        return parse_host_port(value);
    }
    let base = prefix.unwrap_or(Path::new(PHP_FPM_DEFAULT_PREFIX));
    Some(Addr::Unix(base.join(value)))
}

fn parse_host_port(text: &str) -> Option<Addr> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else if let Some((host, port)) = text.rsplit_once(':') {
        (host, port)
    } else {
        ("", text)
    };
    let port = port.parse::<u16>().ok()?;
    let host = match host {
        "" | "*" => None,
        host => Some(host.to_ascii_lowercase()),
    };
    Some(Addr::Tcp { host, port })
}

/// Whether a server listening on `listen` accepts connections to `wanted`.
fn addr_matches(listen: &Addr, wanted: &Addr) -> bool {
    match (listen, wanted) {
        (Addr::Unix(a), Addr::Unix(b)) => {
            a == b
                || matches!(
                    (fs::canonicalize(a), fs::canonicalize(b)),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        (
            Addr::Tcp {
                host: listen_host,
                port: listen_port,
            },
            Addr::Tcp { host, port },
        ) => listen_port == port && host_accepts(listen_host.as_deref(), host.as_deref()),
        _ => false,
    }
}

/// Whether a socket bound to `listen` (None: every address) accepts a connection to
/// `wanted`.
fn host_accepts(listen: Option<&str>, wanted: Option<&str>) -> bool {
    let Some(listen) = listen else {
        return true;
    };
    if matches!(listen, "0.0.0.0" | "::") {
        return true;
    }
    let Some(wanted) = wanted else {
        return false;
    };
    let listen_ips = host_ips(listen);
    let wanted_ips = host_ips(wanted);
    if listen_ips.is_empty() || wanted_ips.is_empty() {
        return listen.eq_ignore_ascii_case(wanted);
    }
    listen_ips.iter().any(|ip| wanted_ips.contains(ip))
}

/// The addresses a host string stands for without DNS: an IP literal (IPv4-mapped IPv6
/// unmapped), or `localhost`.
fn host_ips(host: &str) -> Vec<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        ];
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => vec![v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)],
        Ok(ip) => vec![ip],
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

/// Reads the last `max_bytes` of a log (dropping the partial first line when it starts
/// mid-file) and returns the lines [`classify_log_line`] recognises, oldest first.
///
/// With `since`, lines whose timestamp can be read and is older are dropped; lines without
/// a readable timestamp are kept. Timestamps understood: PHP-FPM `[24-Nov-2026 10:00:00]`
/// (local time), gunicorn `[2026-11-24 10:00:00 +0000]`, Ruby logger
/// `[2026-11-24T10:00:00.123 #1]` (local), and `Mon Nov 24 10:00:00 2026` (uWSGI, local).
/// Local time uses this process's time zone (`TZ` or `/etc/localtime`).
pub fn scan_log(
    path: &Path,
    since: Option<SystemTime>,
    max_bytes: u64,
) -> Result<Vec<LogEvent>, ProbeError> {
    let text = read_tail(path, max_bytes).map_err(|source| ProbeError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    let mut events = Vec::new();
    for line in text.lines() {
        let Some(kind) = classify_log_line(line) else {
            continue;
        };
        let time = line_time(line);
        if let (Some(since), Some(time)) = (since, time)
            && time < since
        {
            continue;
        }
        events.push(LogEvent {
            kind,
            line: truncate(line, MAX_LINE_BYTES).to_owned(),
            time,
        });
    }
    Ok(events)
}

/// The last `max_bytes` of a file as text, starting at a line boundary.
fn read_tail(path: &Path, max_bytes: u64) -> io::Result<String> {
    let mut file = open_regular(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let capacity = len.min(max_bytes).min(1 << 20);
    let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let body: &[u8] = if start > 0 {
        match bytes.iter().position(|&b| b == b'\n') {
            Some(newline) => bytes.get(newline + 1..).unwrap_or_default(),
            None => &[],
        }
    } else {
        &bytes
    };
    Ok(String::from_utf8_lossy(body).into_owned())
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// What a log line of PHP-FPM, gunicorn, uWSGI, puma, unicorn or the kernel says, or `None`
/// for lines that do not matter for a closed or reset connection. Pure.
///
/// PHP-FPM's `child N said into stderr: "..."` lines carry the application's own output
/// and are never classified.
pub fn classify_log_line(line: &str) -> Option<LogEventKind> {
    use LogEventKind as K;
    if line.contains("said into stderr") {
        return None;
    }
    if line.contains("WORKER TIMEOUT")
        || line.contains("Terminating timed out worker")
        || (line.contains(" timeout (") && line.contains("), killing"))
    {
        return Some(K::WorkerTimeout);
    }
    if line.contains("HARAKIRI") {
        return Some(K::Harakiri);
    }
    if line.contains("execution timed out (") {
        return Some(K::ExecutionTimedOut);
    }
    if let Some(signal) = signal_of(line) {
        return Some(K::ExitedOnSignal { signal });
    }
    if line.contains("reached pm.max_children setting") || line.contains("reached max_children") {
        return Some(K::MaxChildrenReached);
    }
    if line.contains("invalid request block size") {
        return Some(K::InvalidRequestBlockSize);
    }
    if line.contains("Connection disallowed") {
        return Some(K::ConnectionDisallowed);
    }
    if is_oom_message(line) {
        return Some(K::OutOfMemory);
    }
    if let Some(code) = number_after(line, "exited with code ") {
        return (code != 0).then_some(K::Other);
    }
    let other = [
        "] ERROR: ",
        "] ALERT: ",
        "[ERROR]",
        "[CRITICAL]",
        "DAMN ! worker",
    ]
    .iter()
    .any(|marker| line.contains(marker))
        || line.contains("Segmentation Fault")
        || line.contains("Segmentation fault");
    other.then_some(K::Other)
}

/// The signal a worker died of, from PHP-FPM, gunicorn or uWSGI wording.
fn signal_of(line: &str) -> Option<i32> {
    for marker in [
        "exited on signal ",
        "killed by signal ",
        "terminated due to signal ",
    ] {
        if let Some(signal) = number_after(line, marker) {
            return Some(signal);
        }
    }
    // gunicorn: "Worker (pid:456) was sent SIGKILL! Perhaps out of memory?"
    let name = line.split_once("was sent SIG")?.1;
    let name: String = name.chars().take_while(char::is_ascii_uppercase).collect();
    signal_number(&name)
}

/// The Linux number of a signal name without `SIG`.
fn signal_number(name: &str) -> Option<i32> {
    let number = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => return None,
    };
    Some(number)
}

/// The integer right after `marker` in `line`.
fn number_after(line: &str, marker: &str) -> Option<i32> {
    let rest = line.split_once(marker)?.1;
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse().ok()
}

/// Kernel OOM-killer wording (global and cgroup).
fn is_oom_message(line: &str) -> bool {
    line.contains("Out of memory")
        || line.contains("out of memory: Killed process")
        || line.contains("oom-kill:")
        || line.contains("Killed process ")
}

// ---------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The time a log line was written, from a timestamp at its start.
fn line_time(line: &str) -> Option<SystemTime> {
    let line = line.trim_start();
    // "[...", or Ruby's "E, [..."
    let text = match line.find('[') {
        Some(at) if at <= 3 => line.get(at + 1..)?,
        _ => line,
    };
    let (naive, offset) = parse_fpm_time(text)
        .map(|naive| (naive, None))
        .or_else(|| parse_iso_time(text))
        .or_else(|| parse_ctime(text).map(|naive| (naive, None)))?;
    let utc = match offset {
        Some(offset) => naive - i64::from(offset),
        None => local_to_utc(naive),
    };
    let secs = u64::try_from(utc).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// A cursor over the bytes of a timestamp.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Exactly `n` digits (the cursor does not move when they are not there).
    fn digits(&mut self, n: usize) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at += n;
        Some(digits.iter().fold(0, |v, &b| v * 10 + u32::from(b - b'0')))
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.at += 1)
    }

    fn month(&mut self) -> Option<u32> {
        let word = self.bytes.get(self.at..self.at + 3)?;
        let index = MONTHS.iter().position(|m| m.as_bytes() == word)?;
        self.at += 3;
        u32::try_from(index + 1).ok()
    }

    /// `HH:MM:SS` as seconds of the day.
    fn clock(&mut self) -> Option<i64> {
        let h = self.digits(2)?;
        self.byte(b':')?;
        let m = self.digits(2)?;
        self.byte(b':')?;
        let s = self.digits(2)?;
        (h < 24 && m < 60 && s <= 60).then(|| i64::from(h * 3600 + m * 60 + s))
    }

    /// Skips `.123456`.
    fn fraction(&mut self) {
        if self.peek() == Some(b'.') {
            self.at += 1;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.at += 1;
            }
        }
    }
}

/// PHP-FPM: `24-Nov-2026 10:00:00` (optionally `.123456`), as naive seconds.
fn parse_fpm_time(text: &str) -> Option<i64> {
    let mut c = Cursor::new(text);
    let day = c.digits(2)?;
    c.byte(b'-')?;
    let month = c.month()?;
    c.byte(b'-')?;
    let year = c.digits(4)?;
    c.byte(b' ')?;
    let clock = c.clock()?;
    Some(days_from_civil(i64::from(year), month, day)? * 86_400 + clock)
}

/// `2026-11-24 10:00:00` or `2026-11-24T10:00:00.123`, then optionally ` +0000`,
/// `+02:00` or `Z`: naive seconds and the UTC offset when given.
fn parse_iso_time(text: &str) -> Option<(i64, Option<i32>)> {
    let mut c = Cursor::new(text);
    let year = c.digits(4)?;
    c.byte(b'-')?;
    let month = c.digits(2)?;
    c.byte(b'-')?;
    let day = c.digits(2)?;
    if c.byte(b' ').is_none() {
        c.byte(b'T')?;
    }
    let clock = c.clock()?;
    c.fraction();
    let naive = days_from_civil(i64::from(year), month, day)? * 86_400 + clock;
    if c.peek() == Some(b' ') {
        c.at += 1;
    }
    let offset = match c.peek() {
        Some(b'Z') => Some(0),
        Some(sign @ (b'+' | b'-')) => {
            c.at += 1;
            let hours = c.digits(2)?;
            if c.peek() == Some(b':') {
                c.at += 1;
            }
            let minutes = c.digits(2)?;
            let secs = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            Some(if sign == b'-' { -secs } else { secs })
        }
        _ => None,
    };
    Some((naive, offset))
}

/// `Mon Nov 24 10:00:00 2026` (day possibly space-padded), as naive seconds.
fn parse_ctime(text: &str) -> Option<i64> {
    let mut c = Cursor::new(text);
    let weekday = c.bytes.get(..3)?;
    if !weekday.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    c.at = 3;
    c.byte(b' ')?;
    let month = c.month()?;
    c.byte(b' ')?;
    if c.peek() == Some(b' ') {
        c.at += 1;
    }
    let day = match c.digits(2) {
        Some(day) => day,
        None => c.digits(1)?,
    };
    c.byte(b' ')?;
    let clock = c.clock()?;
    c.byte(b' ')?;
    let year = c.digits(4)?;
    Some(days_from_civil(i64::from(year), month, day)? * 86_400 + clock)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_index + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// UTC offsets of a time zone, from a TZif file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Zone {
    /// `(transition time, offset from then on)`, sorted.
    transitions: Vec<(i64, i32)>,
    /// The offset before the first transition.
    initial: i32,
}

impl Zone {
    const UTC: Self = Self {
        transitions: Vec::new(),
        initial: 0,
    };

    /// The UTC offset in effect at `utc` (after the last transition: the last offset; the
    /// TZif footer rule is not evaluated).
    fn offset_at(&self, utc: i64) -> i32 {
        let after = self.transitions.partition_point(|&(t, _)| t <= utc);
        match after.checked_sub(1).and_then(|i| self.transitions.get(i)) {
            Some(&(_, offset)) => offset,
            None => self.initial,
        }
    }
}

/// This process's time zone: `TZ` (a zone name or `:path`) or `/etc/localtime`; UTC when
/// neither can be read.
fn local_zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let path = match std::env::var("TZ") {
            Ok(tz) if !tz.is_empty() => {
                let tz = tz.trim_start_matches(':');
                if tz.starts_with('/') {
                    PathBuf::from(tz)
                } else {
                    Path::new("/usr/share/zoneinfo").join(tz)
                }
            }
            _ => PathBuf::from("/etc/localtime"),
        };
        let bytes = File::open(&path).and_then(|f| {
            let mut bytes = Vec::new();
            f.take(MAX_TZIF_BYTES)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        });
        match bytes.ok().and_then(|b| parse_tzif(&b)) {
            Some(zone) => zone,
            None => {
                tracing::debug!(path = %path.display(), "no readable time zone; using UTC");
                Zone::UTC
            }
        }
    })
}

/// Naive local seconds to UTC seconds in this process's time zone.
fn local_to_utc(naive: i64) -> i64 {
    let zone = local_zone();
    let guess = naive - i64::from(zone.offset_at(naive));
    naive - i64::from(zone.offset_at(guess))
}

/// Parses a TZif file (RFC 8536): the 64-bit block of version 2+ files, else the 32-bit
/// one.
fn parse_tzif(bytes: &[u8]) -> Option<Zone> {
    if bytes.get(..4)? != b"TZif" {
        return None;
    }
    let version = *bytes.get(4)?;
    let v1 = TzifCounts::read(bytes, 0)?;
    if version >= b'2' {
        let second = 44usize.checked_add(v1.block_len(4)?)?;
        let v2 = TzifCounts::read(bytes, second)?;
        v2.zone(bytes, second.checked_add(44)?, 8)
    } else {
        v1.zone(bytes, 44, 4)
    }
}

/// The counts of a TZif header.
struct TzifCounts {
    isut: usize,
    isstd: usize,
    leap: usize,
    time: usize,
    types: usize,
    chars: usize,
}

impl TzifCounts {
    fn read(bytes: &[u8], header: usize) -> Option<Self> {
        let count = |i: usize| -> Option<usize> {
            let at = header.checked_add(20 + 4 * i)?;
            let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(raw)).ok()
        };
        Some(Self {
            isut: count(0)?,
            isstd: count(1)?,
            leap: count(2)?,
            time: count(3)?,
            types: count(4)?,
            chars: count(5)?,
        })
    }

    /// Length of the data block with `time_size`-byte times.
    fn block_len(&self, time_size: usize) -> Option<usize> {
        let sizes = [
            self.time.checked_mul(time_size + 1)?,
            self.types.checked_mul(6)?,
            self.chars,
            self.leap.checked_mul(time_size + 4)?,
            self.isstd,
            self.isut,
        ];
        sizes.iter().try_fold(0usize, |sum, &n| sum.checked_add(n))
    }

    fn zone(&self, bytes: &[u8], start: usize, time_size: usize) -> Option<Zone> {
        if start.checked_add(self.block_len(time_size)?)? > bytes.len() || self.types == 0 {
            return None;
        }
        let indices = start + self.time * time_size;
        let types = indices + self.time;
        let offset_of = |index: usize| -> Option<i32> {
            let at = types.checked_add(index.checked_mul(6)?)?;
            Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        let mut transitions = Vec::with_capacity(self.time);
        for i in 0..self.time {
            let at = start + i * time_size;
            let raw = bytes.get(at..at + time_size)?;
            let time = if time_size == 8 {
                i64::from_be_bytes(raw.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(raw.try_into().ok()?))
            };
            let index = usize::from(*bytes.get(indices + i)?);
            transitions.push((time, offset_of(index)?));
        }
        Some(Zone {
            transitions,
            initial: offset_of(0)?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Kernel OOM kills
// ---------------------------------------------------------------------------------------

/// The kernel's OOM-killer lines (`Out of memory: Killed process N (name)`, `Memory cgroup
/// out of memory: Killed process ...`, `oom-kill:...`) still in the kernel ring buffer,
/// oldest first, at most `max` (the most recent ones).
///
/// Reads `/dev/kmsg` without blocking (stops at `EAGAIN`, at most 200 000 records). Record
/// times are microseconds since boot, turned into wall-clock time with `/proc/uptime`;
/// `since` drops older records (it is ignored when the boot time is unknown). Fails when
/// `/dev/kmsg` cannot be opened (it needs root or `CAP_SYSLOG` when
/// `kernel.dmesg_restrict = 1`, and may be absent in containers).
pub fn oom_kills(since: Option<SystemTime>, max: usize) -> Result<Vec<LogEvent>, ProbeError> {
    let boot = boot_time();
    crate::kmsg::read(
        |record| {
            let event = parse_kmsg_record(record, boot)?;
            match (since, event.time, boot) {
                (Some(since), Some(time), Some(_)) if time < since => None,
                _ => Some(event),
            }
        },
        max,
    )
}

/// When the machine booted: now minus `/proc/uptime`.
fn boot_time() -> Option<SystemTime> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let uptime: f64 = text.split_whitespace().next()?.parse().ok()?;
    let uptime = Duration::try_from_secs_f64(uptime).ok()?;
    SystemTime::now().checked_sub(uptime)
}

/// An OOM event from one `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS;MESSAGE` plus
/// continuation lines), or `None` for other messages.
fn parse_kmsg_record(record: &str, boot: Option<SystemTime>) -> Option<LogEvent> {
    let (micros, message) = crate::kmsg::split(record)?;
    if !is_oom_message(message) {
        return None;
    }
    let time = boot
        .zip(micros)
        .and_then(|(boot, us)| boot.checked_add(Duration::from_micros(us)));
    Some(LogEvent {
        kind: LogEventKind::OutOfMemory,
        line: truncate(message, MAX_LINE_BYTES).to_owned(),
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn file_source(path: &Path, line: usize) -> SettingSource {
        SettingSource::File {
            path: path.to_path_buf(),
            line,
        }
    }

    fn value_of<'a>(settings: &'a [Setting], name: &str) -> Option<&'a str> {
        settings
            .iter()
            .rev()
            .find(|s| s.name == name)
            .map(|s| s.value.as_str())
    }

    // ---- kind_of ----

    #[test]
    fn kinds_of_realistic_command_lines() {
        use AppServerKind as K;
        let cases: &[(&str, &str, K)] = &[
            (
                "python3",
                "/usr/bin/python3 -m gunicorn app:app -b 127.0.0.1:8000",
                K::Gunicorn,
            ),
            (
                "gunicorn",
                "/usr/bin/python3 /usr/bin/gunicorn app:app -b 0.0.0.0:8000 --timeout 60 --keep-alive 5",
                K::Gunicorn,
            ),
            (
                "gunicorn",
                "/usr/bin/gunicorn app:app -b unix:/run/app.sock",
                K::Gunicorn,
            ),
            ("gunicorn: maste", "gunicorn: master [app:app]", K::Gunicorn),
            (
                "uwsgi",
                "/usr/bin/uwsgi --ini /etc/uwsgi/apps-enabled/app.ini",
                K::Uwsgi,
            ),
            ("uwsgi", "uWSGI worker 1", K::Uwsgi),
            (
                "uvicorn",
                "/venv/bin/python /venv/bin/uvicorn main:app --timeout-keep-alive 3",
                K::Uvicorn,
            ),
            (
                "python3.11",
                "python3.11 -m uvicorn.main main:app",
                K::Uvicorn,
            ),
            (
                "hypercorn",
                "/usr/bin/python3 /usr/local/bin/hypercorn main:app -b :8000",
                K::Hypercorn,
            ),
            (
                "daphne",
                "/usr/bin/python3 /usr/bin/daphne -b 0.0.0.0 -p 8001 proj.asgi:application",
                K::Daphne,
            ),
            ("node", "node server.js", K::Node),
            ("node", "/usr/bin/node /srv/app/dist/main.js", K::Node),
            ("next-server (v1", "next-server (v14.2.3)", K::Node),
            (
                "php-fpm8.2",
                "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)",
                K::PhpFpm,
            ),
            ("php-fpm8.2", "php-fpm: pool www", K::PhpFpm),
            ("php-fpm", "php-fpm: pool www", K::PhpFpm),
            ("ruby", "puma 6.4.2 (tcp://0.0.0.0:3000) [app]", K::Puma),
            ("ruby", "puma: cluster worker 0: 1234 [app]", K::Puma),
            (
                "ruby",
                "/usr/local/bin/ruby /usr/local/bin/bundle exec puma -C config/puma.rb",
                K::Puma,
            ),
            (
                "ruby",
                "unicorn master -c config/unicorn.rb -E production",
                K::Unicorn,
            ),
            ("ruby", "ruby bin/rails server", K::Ruby),
            (
                "java",
                "java -jar /opt/app/app.jar --server.port=8080",
                K::Java,
            ),
            (
                "java",
                "/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xmx512m -jar app.jar",
                K::Java,
            ),
            ("python3", "python3 app.py", K::Python),
            (
                "python3",
                "python3 manage.py runserver 0.0.0.0:8000",
                K::Python,
            ),
            ("php8.2", "php -S 127.0.0.1:8080 -t public", K::Php),
            ("php", "php artisan serve", K::Php),
            ("nginx", "nginx: worker process", K::Nginx),
            ("apache2", "/usr/sbin/apache2 -k start", K::Apache),
            ("httpd", "/usr/sbin/httpd -DFOREGROUND", K::Apache),
            ("PassengerAgent", "Passenger core", K::Passenger),
            (
                "redis-server",
                "/usr/bin/redis-server 127.0.0.1:6379",
                K::Other,
            ),
            ("sshd", "", K::Other),
        ];
        for (process, cmdline, want) in cases {
            assert_eq!(
                kind_of(process, &args(cmdline)),
                *want,
                "{process} / {cmdline}"
            );
        }
        // Only comm is known (unreadable command line).
        assert_eq!(kind_of("php-fpm8.2", &[]), K::PhpFpm);
        assert_eq!(kind_of("gunicorn", &[]), K::Gunicorn);
        assert_eq!(kind_of("bash", &[]), K::Other);
        assert_eq!(K::Uwsgi.name(), "uWSGI");
        assert_eq!(K::PhpFpm.name(), "php-fpm");
    }

    #[test]
    fn args_after_the_server_program() {
        let cmd = args("/usr/bin/python3 -m gunicorn app:app -t 60");
        assert_eq!(args_after(&cmd, &["gunicorn"]), &args("app:app -t 60")[..]);
        let cmd = args("/usr/bin/python3 /venv/bin/gunicorn -w 4 app:app");
        assert_eq!(args_after(&cmd, &["gunicorn"]), &args("-w 4 app:app")[..]);
        let cmd = args("gunicorn: master [app:app]");
        assert_eq!(
            args_after(&cmd, &["gunicorn"]),
            &args("master [app:app]")[..]
        );
        assert!(args_after(&[], &["gunicorn"]).is_empty());
    }

    // ---- command-line servers ----

    #[test]
    fn gunicorn_option_spellings() {
        for spelling in ["--timeout=60", "--timeout 60", "-t 60", "-t60"] {
            let settings = gunicorn_settings(&args(&format!("app:app {spelling}")), None, None);
            let timeout = settings.iter().find(|s| s.name == "timeout").unwrap();
            assert_eq!(timeout.value, "60", "{spelling}");
            assert_eq!(timeout.source, SettingSource::CommandLine);
        }
        let settings = gunicorn_settings(
            &args("app:app -b 127.0.0.1:8000 --bind=unix:/run/app.sock --keep-alive 5 -w 3"),
            None,
            None,
        );
        assert_eq!(value_of(&settings, "keep-alive"), Some("5"));
        assert_eq!(value_of(&settings, "workers"), Some("3"));
        let binds: Vec<_> = settings
            .iter()
            .filter(|s| s.name == "bind")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(binds, ["127.0.0.1:8000", "unix:/run/app.sock"]);
        // Defaults, marked as such.
        let timeout = settings.iter().find(|s| s.name == "timeout").unwrap();
        assert_eq!(
            (timeout.value.as_str(), &timeout.source),
            ("30", &SettingSource::Default)
        );
        assert_eq!(timeout.seconds(), Some(30));
    }

    #[test]
    fn gunicorn_precedence_file_env_command_line() {
        let path = Path::new("/srv/app/gunicorn.conf.py");
        let file = "\
import multiprocessing
# timeout = 999
bind = [\"127.0.0.1:9000\", 'unix:/run/g.sock']
timeout = 120  # seconds
keepalive = 10
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = \"gthread\"
errorlog = '/var/log/gunicorn/error.log'
def on_starting(server):
    timeout = 5
";
        let settings = gunicorn_settings(
            &args("app:app --keep-alive 3"),
            Some("--timeout 90 --workers=2"),
            Some((file, path)),
        );
        let get = |name: &str| settings.iter().rev().find(|s| s.name == name).unwrap();
        assert_eq!(get("timeout").value, "90");
        assert_eq!(
            get("timeout").source,
            SettingSource::Environment {
                variable: "GUNICORN_CMD_ARGS".to_owned()
            }
        );
        assert_eq!(get("keep-alive").value, "3");
        assert_eq!(get("keep-alive").source, SettingSource::CommandLine);
        assert_eq!(get("worker-class").value, "gthread");
        assert_eq!(get("worker-class").source, file_source(path, 7));
        assert_eq!(get("error-logfile").value, "/var/log/gunicorn/error.log");
        assert_eq!(get("workers").value, "2");
        let binds: Vec<_> = settings
            .iter()
            .filter(|s| s.name == "bind")
            .map(|s| (s.value.as_str(), s.source.clone()))
            .collect();
        assert_eq!(
            binds,
            [
                ("127.0.0.1:9000", file_source(path, 3)),
                ("unix:/run/g.sock", file_source(path, 3))
            ]
        );
        // gthread keeps connections alive: the idle timeout is keep-alive.
        assert_eq!(
            gunicorn_idle_timeout(&settings).map(|s| s.value),
            Some("3".to_owned())
        );
    }

    #[test]
    fn gunicorn_sync_workers_have_no_idle_timeout() {
        let sync = gunicorn_settings(&args("app:app --keep-alive 5"), None, None);
        assert_eq!(gunicorn_idle_timeout(&sync), None);
        // sync with threads > 1 runs as gthread.
        let threaded = gunicorn_settings(&args("app:app --threads 4"), None, None);
        let idle = gunicorn_idle_timeout(&threaded).unwrap();
        assert_eq!(
            (idle.value.as_str(), &idle.source),
            ("2", &SettingSource::Default)
        );
        let uvicorn_worker = gunicorn_settings(
            &args("-k uvicorn.workers.UvicornWorker main:app"),
            None,
            None,
        );
        assert!(gunicorn_idle_timeout(&uvicorn_worker).is_some());
    }

    #[test]
    fn uvicorn_keep_alive() {
        let no_env = |_: &str| -> Option<String> { None };
        let settings = uvicorn_settings(
            &args("main:app --timeout-keep-alive 3 --port=9000"),
            &no_env,
        );
        assert_eq!(value_of(&settings, "timeout-keep-alive"), Some("3"));
        assert_eq!(value_of(&settings, "port"), Some("9000"));
        let settings = uvicorn_settings(&args("main:app"), &no_env);
        let idle = settings
            .iter()
            .find(|s| s.name == "timeout-keep-alive")
            .unwrap();
        assert_eq!(
            (idle.value.as_str(), &idle.source),
            ("5", &SettingSource::Default)
        );
        let env = |name: &str| (name == "UVICORN_TIMEOUT_KEEP_ALIVE").then(|| "7".to_owned());
        let settings = uvicorn_settings(&args("main:app"), &env);
        let idle = settings
            .iter()
            .find(|s| s.name == "timeout-keep-alive")
            .unwrap();
        assert_eq!(idle.value, "7");
        assert!(matches!(idle.source, SettingSource::Environment { .. }));
        // The command line beats the environment.
        let settings = uvicorn_settings(&args("main:app --timeout-keep-alive=2"), &env);
        assert_eq!(value_of(&settings, "timeout-keep-alive"), Some("2"));
    }

    #[test]
    fn uwsgi_ini_and_command_line() {
        let ini = "\
[uwsgi]
; comment
module = app:application
master = true
processes = 4
socket = /run/uwsgi/app.sock
buffer_size = 32768
harakiri = 30
logto = /var/log/uwsgi/app.log

[other]
harakiri = 99
";
        let read = |path: &Path| (path == Path::new("/etc/uwsgi/app.ini")).then(|| ini.to_owned());
        let (settings, config) = uwsgi_settings(
            &args("--ini /etc/uwsgi/app.ini --harakiri 60 -M"),
            None,
            &read,
        );
        assert_eq!(config.as_deref(), Some(Path::new("/etc/uwsgi/app.ini")));
        let get = |name: &str| settings.iter().rev().find(|s| s.name == name).unwrap();
        assert_eq!(
            get("harakiri").value,
            "60",
            "the later command-line value wins"
        );
        assert_eq!(get("harakiri").source, SettingSource::CommandLine);
        assert_eq!(get("buffer-size").value, "32768");
        assert_eq!(
            get("buffer-size").source,
            file_source(Path::new("/etc/uwsgi/app.ini"), 7)
        );
        assert_eq!(get("processes").value, "4");
        assert_eq!(get("socket").value, "/run/uwsgi/app.sock");
        assert_eq!(get("logto").value, "/var/log/uwsgi/app.log");
        assert_eq!(get("listen").source, SettingSource::Default);

        // A positional ini with a section, relative to the working directory, and defaults.
        let other = |path: &Path| (path == Path::new("/srv/app/app.ini")).then(|| ini.to_owned());
        let (settings, config) = uwsgi_settings(
            &args("--ini app.ini:other"),
            Some(Path::new("/srv/app")),
            &other,
        );
        assert_eq!(config.as_deref(), Some(Path::new("/srv/app/app.ini")));
        assert_eq!(value_of(&settings, "harakiri"), Some("99"));
        let buffer = settings.iter().find(|s| s.name == "buffer-size").unwrap();
        assert_eq!(
            (buffer.value.as_str(), &buffer.source),
            ("4096", &SettingSource::Default)
        );
        let (settings, _) = uwsgi_settings(&args("/srv/app/app.ini"), None, &other);
        assert_eq!(value_of(&settings, "harakiri"), Some("30"));
        // http-keepalive takes an optional value.
        let (settings, _) =
            uwsgi_settings(&args("--http-keepalive --http :8080"), None, &|_: &Path| {
                None
            });
        assert_eq!(value_of(&settings, "http-keepalive"), Some("true"));
        assert_eq!(value_of(&settings, "http"), Some(":8080"));
    }

    #[test]
    fn ini_path_sections() {
        assert_eq!(
            ini_path_and_section("/etc/uwsgi/app.ini"),
            ("/etc/uwsgi/app.ini", "uwsgi")
        );
        assert_eq!(ini_path_and_section("app.ini:prod"), ("app.ini", "prod"));
        assert_eq!(
            ini_path_and_section("/a:b/app.ini"),
            ("/a:b/app.ini", "uwsgi")
        );
    }

    #[test]
    fn split_words_with_quotes() {
        assert_eq!(
            split_words(" --timeout 90  --bind='unix:/run/a b.sock' \"x y\""),
            ["--timeout", "90", "--bind=unix:/run/a b.sock", "x y"]
        );
        assert!(split_words("   ").is_empty());
    }

    #[test]
    fn setting_seconds() {
        let s = |v: &str| Setting::new("x", v, SettingSource::Default).seconds();
        assert_eq!(s("30"), Some(30));
        assert_eq!(s("30s"), Some(30));
        assert_eq!(s("5m"), Some(300));
        assert_eq!(s("1h"), Some(3600));
        assert_eq!(s("2d"), Some(172_800));
        assert_eq!(s(""), None);
        assert_eq!(s("s"), None);
        assert_eq!(s("1.5"), None);
        assert_eq!(s("abc"), None);
    }

    // ---- PHP-FPM config ----

    #[test]
    fn php_fpm_text_parsing() {
        let path = Path::new("/etc/php/8.2/fpm/pool.d/www.conf");
        let text = "\
; Start a new pool named 'www'.
[global]
error_log = /var/log/php8.2-fpm.log ; trailing comment
include=/etc/php/8.2/fpm/pool.d/*.conf

[www]
user = www-data
listen = /run/php/php8.2-$pool.sock
listen.mode = \"0660\"
listen.allowed_clients = '127.0.0.1'
slowlog = \"/var/log/$pool.slow ; not a comment \\\" quoted\"
pm.max_children = 5   
# hash comment
php_admin_value[error_log] = /var/log/fpm-$pool.log
  request_terminate_timeout = 30s
garbage line without equals
[api]
listen = 127.0.0.1:9001
[www]
pm = dynamic
";
        let config = parse_php_fpm_str(text, path);
        assert_eq!(config.files, [path]);
        assert_eq!(config.global.len(), 2);
        let log = config.global_setting("error_log").unwrap();
        assert_eq!(log.value, "/var/log/php8.2-fpm.log");
        assert_eq!(log.source, file_source(path, 3));
        assert_eq!(
            config.global_setting("include").unwrap().value,
            "/etc/php/8.2/fpm/pool.d/*.conf"
        );
        let names: Vec<_> = config.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["www", "api"], "repeated sections merge");
        let www = config.pool("www").unwrap();
        let listen = www.get("listen").unwrap();
        assert_eq!(listen.value, "/run/php/php8.2-www.sock");
        assert_eq!(listen.source, file_source(path, 8));
        assert_eq!(www.get("listen.mode").unwrap().value, "0660");
        assert_eq!(
            www.get("listen.allowed_clients").unwrap().value,
            "127.0.0.1"
        );
        assert_eq!(
            www.get("slowlog").unwrap().value,
            "/var/log/www.slow ; not a comment \" quoted"
        );
        assert_eq!(www.get("pm.max_children").unwrap().value, "5");
        assert_eq!(
            www.get("php_admin_value[error_log]").unwrap().value,
            "/var/log/fpm-www.log"
        );
        let terminate = www.get("request_terminate_timeout").unwrap();
        assert_eq!(
            (terminate.value.as_str(), terminate.seconds()),
            ("30s", Some(30))
        );
        assert_eq!(terminate.source, file_source(path, 15));
        assert_eq!(www.get("pm").unwrap().source, file_source(path, 20));
        assert_eq!(
            config.pool("api").unwrap().get("listen").unwrap().value,
            "127.0.0.1:9001"
        );
        assert_eq!(www.settings.len(), 9);
    }

    #[test]
    fn php_fpm_includes_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("pool.d")).unwrap();
        fs::create_dir_all(root.join("pool.d/sub.conf")).unwrap(); // a directory: skipped
        let main = root.join("php-fpm.conf");
        fs::write(
            &main,
            format!(
                "[global]\nerror_log = {}/fpm.log\ninclude={}/pool.d/*.conf\n",
                root.display(),
                root.display()
            ),
        )
        .unwrap();
        fs::write(root.join("pool.d/b.conf"), "[b]\nlisten = 127.0.0.1:9002\n").unwrap();
        fs::write(
            root.join("pool.d/a.conf"),
            "; pool a\n[a]\n\nlisten = /run/$pool.sock\ninclude = extra/*.inc\n",
        )
        .unwrap();
        fs::write(root.join("pool.d/.hidden.conf"), "[hidden]\nlisten = 1\n").unwrap();
        fs::write(root.join("pool.d/c.conf.bak"), "[bak]\nlisten = 2\n").unwrap();
        fs::create_dir_all(root.join("extra")).unwrap();
        fs::write(root.join("extra/more.inc"), "pm.max_children = 7\n").unwrap();

        let config = load_php_fpm(&main, Some(root)).unwrap();
        let names: Vec<_> = config.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b"],
            "sorted, hidden and non-matching files skipped"
        );
        let a = config.pool("a").unwrap();
        assert_eq!(a.get("listen").unwrap().value, "/run/a.sock");
        assert_eq!(
            a.get("listen").unwrap().source,
            file_source(&root.join("pool.d/a.conf"), 4)
        );
        // The relative include (based at the prefix) continues pool [a].
        let children = a.get("pm.max_children").unwrap();
        assert_eq!(children.value, "7");
        assert_eq!(
            children.source,
            file_source(&root.join("extra/more.inc"), 1)
        );
        assert_eq!(config.files.len(), 4);
        assert_eq!(config.files.first(), Some(&main));
        assert_eq!(
            config
                .pool_for_endpoint("127.0.0.1:9002")
                .map(|p| p.name.as_str()),
            Some("b")
        );
        assert_eq!(
            config
                .pool_for_endpoint("unix:/run/a.sock")
                .map(|p| p.name.as_str()),
            Some("a")
        );
        assert!(config.pool_for_endpoint("127.0.0.1:9003").is_none());

        // The public entry point bases relative includes at /usr: the relative include is
        // not found, everything else is the same.
        let public = parse_php_fpm_config(&main).unwrap();
        assert_eq!(public.pools.len(), 2);
        assert!(public.pool("a").unwrap().get("pm.max_children").is_none());
        assert!(parse_php_fpm_config(&root.join("missing.conf")).is_err());
    }

    #[test]
    fn php_fpm_include_loops_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("loop.conf");
        fs::write(
            &main,
            format!("[www]\nlisten = 9000\ninclude = {}\n", main.display()),
        )
        .unwrap();
        let config = parse_php_fpm_config(&main).unwrap();
        assert!(config.files.len() <= MAX_CONFIG_FILES);
        assert_eq!(config.files.len(), MAX_INCLUDE_DEPTH + 1);
        assert_eq!(config.pools.len(), 1);
    }

    #[test]
    fn wildcard_patterns() {
        let m = |p: &str, n: &str| {
            let p: Vec<char> = p.chars().collect();
            let n: Vec<char> = n.chars().collect();
            wildcard_match(&p, &n)
        };
        assert!(m("*.conf", "www.conf"));
        assert!(!m("*.conf", "www.conf.bak"));
        assert!(m("*", ""));
        assert!(m("w?w.conf", "www.conf"));
        assert!(m("[a-c]*.conf", "b.conf"));
        assert!(!m("[!a-c]*.conf", "b.conf"));
        assert!(m("[]x]", "]"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("[unclosed", "[unclosed"));
        assert!(m("php-fpm*", "php-fpm8.2"));
    }

    #[test]
    fn endpoint_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.1:9000", "127.0.0.1:9000", true),
            ("127.0.0.1:9000", "fastcgi://127.0.0.1:9000", true),
            ("127.0.0.1:9000", "127.0.0.1:9001", false),
            ("127.0.0.1:9000", "10.0.0.5:9000", false),
            ("9000", "127.0.0.1:9000", true),
            ("9000", "[::1]:9000", true),
            ("0.0.0.0:9000", "10.0.0.5:9000", true),
            ("[::]:9000", "127.0.0.1:9000", true),
            ("[::1]:9000", "[::1]:9000", true),
            ("[::1]:9000", "127.0.0.1:9000", false),
            ("localhost:9000", "127.0.0.1:9000", true),
            ("127.0.0.1:9000", "localhost:9000", true),
            ("[::ffff:127.0.0.1]:9000", "127.0.0.1:9000", true),
            (
                "/run/php/php8.2-fpm.sock",
                "unix:/run/php/php8.2-fpm.sock",
                true,
            ),
            (
                "/run/php/php8.2-fpm.sock",
                "fastcgi://unix:/run/php/php8.2-fpm.sock:",
                true,
            ),
            ("/run/php/php8.2-fpm.sock", "/run/php/php8.2-fpm.sock", true),
            (
                "/run/php/php8.2-fpm.sock",
                "unix:/run/php/php8.1-fpm.sock",
                false,
            ),
            ("/run/php/php8.2-fpm.sock", "127.0.0.1:9000", false),
            ("127.0.0.1:9000", "unix:/run/php/php8.2-fpm.sock", false),
            ("php.sock", "unix:/usr/php.sock", true),
        ];
        for (listen, endpoint, want) in cases {
            let have = parse_listen(listen, None).unwrap();
            let wanted = parse_endpoint(endpoint).unwrap();
            assert_eq!(
                addr_matches(&have, &wanted),
                *want,
                "listen {listen} vs {endpoint}"
            );
        }
        assert_eq!(parse_endpoint("unix:"), None);
        assert_eq!(parse_endpoint("127.0.0.1:http"), None);
        assert_eq!(parse_listen("", None), None);
    }

    #[test]
    fn unix_endpoints_match_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("fpm.sock"), "").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let listen = parse_listen(&real.join("fpm.sock").to_string_lossy(), None).unwrap();
        let endpoint = format!("unix:{}", dir.path().join("link/fpm.sock").display());
        assert!(addr_matches(&listen, &parse_endpoint(&endpoint).unwrap()));
    }

    #[test]
    fn paths_as_the_process_sees_them() {
        assert_eq!(
            as_seen_by(Path::new("/proc/self/fd/2"), 42),
            Path::new("/proc/42/fd/2")
        );
        assert_eq!(
            as_seen_by(Path::new("/dev/stderr"), 42),
            Path::new("/proc/42/fd/2")
        );
        assert_eq!(
            as_seen_by(Path::new("/var/log/a.log"), 42),
            Path::new("/var/log/a.log")
        );
        // A FIFO is refused at once instead of blocking the open.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(scan_log(&fifo, None, 1024).is_err());
        assert!(scan_log(dir.path(), None, 1024).is_err());
    }

    #[test]
    fn master_title_and_pool_names() {
        assert_eq!(
            config_from_master_title("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)")
                .as_deref(),
            Some("/etc/php/8.2/fpm/php-fpm.conf")
        );
        assert_eq!(config_from_master_title("php-fpm: pool www"), None);
        assert_eq!(
            pool_of_line("[24-Nov-2026 10:00:01] WARNING: [pool www] child 12 exited on signal 9"),
            Some("www")
        );
        assert_eq!(pool_of_line("NOTICE: fpm is running"), None);
    }

    // ---- logs ----

    #[test]
    fn classify_real_looking_lines() {
        use LogEventKind as K;
        let cases: &[(&str, Option<K>)] = &[
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1234, script '/var/www/slow.php' (request: \"GET /slow.php\") execution timed out (1.012345 sec), terminating",
                Some(K::ExecutionTimedOut),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1234 exited on signal 15 (SIGTERM) after 3.000000 seconds from start",
                Some(K::ExitedOnSignal { signal: 15 }),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1234 exited on signal 11 (SIGSEGV - core dumped) after 0.5 seconds from start",
                Some(K::ExitedOnSignal { signal: 11 }),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it",
                Some(K::MaxChildrenReached),
            ),
            (
                "[24-Nov-2015 10:00:01] WARNING: [pool www] server reached max_children setting (5), consider raising it",
                Some(K::MaxChildrenReached),
            ),
            (
                "[24-Nov-2026 10:00:01] ERROR: Connection disallowed: IP address '10.0.0.9' has been dropped.",
                Some(K::ConnectionDisallowed),
            ),
            (
                "[24-Nov-2026 10:00:01] NOTICE: [pool www] child 1235 started",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] NOTICE: [pool www] child 1235 exited with code 0 after 600.1 seconds from start",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1235 exited with code 255 after 0.1 seconds from start",
                Some(K::Other),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1236 said into stderr: \"NOTICE: PHP message: execution timed out (3 sec), terminating\"",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] ERROR: unable to bind listening socket for address '127.0.0.1:9000': Address already in use (98)",
                Some(K::Other),
            ),
            (
                "[24-Nov-2026 10:00:01] NOTICE: ready to handle connections",
                None,
            ),
            (
                "[2026-11-24 10:00:00 +0000] [123] [CRITICAL] WORKER TIMEOUT (pid:456)",
                Some(K::WorkerTimeout),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [ERROR] Worker (pid:456) was sent SIGKILL! Perhaps out of memory?",
                Some(K::ExitedOnSignal { signal: 9 }),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [WARNING] Worker with pid 456 was terminated due to signal 9",
                Some(K::ExitedOnSignal { signal: 9 }),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [ERROR] Exception in worker process",
                Some(K::Other),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [INFO] Booting worker with pid: 457",
                None,
            ),
            (
                "Mon Nov 24 10:00:00 2026 - *** HARAKIRI ON WORKER 1 (pid: 4321, try: 1) ***",
                Some(K::Harakiri),
            ),
            (
                "invalid request block size: 4420 (max 4096)...skip",
                Some(K::InvalidRequestBlockSize),
            ),
            (
                "DAMN ! worker 1 (pid: 3076) died, killed by signal 9 :( trying respawn ...",
                Some(K::ExitedOnSignal { signal: 9 }),
            ),
            (
                "DAMN ! worker 2 (pid: 3077) died :( trying respawn ...",
                Some(K::Other),
            ),
            (
                "[12] ! Terminating timed out worker (Worker 0 failed to check in within 60 seconds): 345",
                Some(K::WorkerTimeout),
            ),
            (
                "E, [2026-11-24T10:00:00.123456 #123] ERROR -- : worker=0 PID:456 timeout (61s > 60s), killing",
                Some(K::WorkerTimeout),
            ),
            (
                "Out of memory: Killed process 4242 (php-fpm8.2) total-vm:812345kB, anon-rss:501234kB",
                Some(K::OutOfMemory),
            ),
            (
                "Memory cgroup out of memory: Killed process 4243 (gunicorn) total-vm:1kB",
                Some(K::OutOfMemory),
            ),
            (
                "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=node,pid=77,uid=1000",
                Some(K::OutOfMemory),
            ),
            ("", None),
            ("GET /index.php 200", None),
        ];
        for (line, want) in cases {
            assert_eq!(classify_log_line(line), *want, "{line}");
        }
    }

    #[test]
    fn timestamps() {
        let epoch =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        // 2026-11-24 10:00:00 UTC
        let utc = 1_795_514_400;
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2026, 11, 24), Some(utc / 86_400));
        assert_eq!(days_from_civil(2026, 13, 1), None);
        let gunicorn =
            line_time("[2026-11-24 10:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:2)").unwrap();
        assert_eq!(epoch(gunicorn), utc);
        let plus_two = line_time("[2026-11-24 12:00:00 +0200] [1] [INFO] x").unwrap();
        assert_eq!(epoch(plus_two), utc);
        let minus = line_time("[2026-11-24 05:30:00 -04:30] [1] [INFO] x").unwrap();
        assert_eq!(epoch(minus), utc);
        // Local-time formats: compare through the same local conversion.
        let local = local_to_utc(utc);
        assert_eq!(
            epoch(line_time("[24-Nov-2026 10:00:00] WARNING: x").unwrap()),
            local
        );
        assert_eq!(
            epoch(line_time("[24-Nov-2026 10:00:00.123456] WARNING: x").unwrap()),
            local
        );
        assert_eq!(
            epoch(line_time("Mon Nov 24 10:00:00 2026 - *** HARAKIRI").unwrap()),
            local
        );
        assert_eq!(
            epoch(line_time("[Mon Nov  4 10:00:00 2026] x").unwrap()),
            local_to_utc(utc - 20 * 86_400)
        );
        assert_eq!(
            epoch(line_time("E, [2026-11-24T10:00:00.5 #1] ERROR -- : x").unwrap()),
            local
        );
        assert_eq!(line_time("invalid request block size: 4420"), None);
        assert_eq!(line_time("[99-Foo-2026 10:00:00]"), None);
        assert_eq!(line_time("[24-Nov-2026 25:00:00]"), None);
    }

    /// A TZif v1 file with two transitions (+1 h from t=1000, +2 h from t=5000).
    fn tzif_v1() -> Vec<u8> {
        let mut b = b"TZif".to_vec();
        b.push(0); // version 1
        b.extend([0u8; 15]);
        // isut, isstd, leap, time, type, char
        for count in [0u32, 0, 0, 2, 3, 4] {
            b.extend(count.to_be_bytes());
        }
        b.extend(1000i32.to_be_bytes());
        b.extend(5000i32.to_be_bytes());
        b.extend([1u8, 2]);
        for (offset, dst) in [(0i32, 0u8), (3600, 0), (7200, 1)] {
            b.extend(offset.to_be_bytes());
            b.push(dst);
            b.push(0);
        }
        b.extend(b"UTC\0");
        b
    }

    #[test]
    fn tzif_offsets() {
        let zone = parse_tzif(&tzif_v1()).unwrap();
        assert_eq!(zone.offset_at(0), 0);
        assert_eq!(zone.offset_at(1000), 3600);
        assert_eq!(zone.offset_at(4999), 3600);
        assert_eq!(zone.offset_at(5000), 7200);
        assert_eq!(zone.offset_at(i64::MAX), 7200);
        // Truncated or foreign data is refused, never a panic.
        let full = tzif_v1();
        for len in 0..full.len() {
            assert_eq!(
                parse_tzif(full.get(..len).unwrap()),
                None,
                "truncated to {len}"
            );
        }
        let mut lying = full.clone();
        lying.splice(32..36, u32::MAX.to_be_bytes()); // time count
        assert_eq!(parse_tzif(&lying), None);
        // The machine's zone file, if any, parses.
        if let Ok(bytes) = fs::read("/etc/localtime") {
            assert!(parse_tzif(&bytes).is_some());
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/appserver")
            .join(name)
    }

    #[test]
    fn scan_php_fpm_log_fixture() {
        let path = fixture("php8.2-fpm.log");
        let events = scan_log(&path, None, 1 << 20).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::MaxChildrenReached,
                LogEventKind::ExecutionTimedOut,
                LogEventKind::ExitedOnSignal { signal: 15 },
                LogEventKind::ExitedOnSignal { signal: 9 },
                LogEventKind::ConnectionDisallowed,
            ]
        );
        assert!(events.iter().all(|e| e.time.is_some()));
        assert!(events.iter().all(|e| !e.line.ends_with('\n')));
        // Since 10:00:05 local: only the two last events.
        let since = line_time("[24-Nov-2026 10:00:05]").unwrap();
        let recent = scan_log(&path, Some(since), 1 << 20).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(
            recent.first().map(|e| e.kind),
            Some(LogEventKind::ExitedOnSignal { signal: 9 })
        );
    }

    #[test]
    fn scan_gunicorn_and_uwsgi_fixtures() {
        let gunicorn = scan_log(&fixture("gunicorn-error.log"), None, 1 << 20).unwrap();
        let kinds: Vec<_> = gunicorn.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::WorkerTimeout,
                LogEventKind::ExitedOnSignal { signal: 9 },
                LogEventKind::Other
            ]
        );
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_514_405);
        assert_eq!(
            scan_log(&fixture("gunicorn-error.log"), Some(since), 1 << 20)
                .unwrap()
                .len(),
            1
        );

        let uwsgi = scan_log(&fixture("uwsgi.log"), None, 1 << 20).unwrap();
        let kinds: Vec<_> = uwsgi.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::InvalidRequestBlockSize,
                LogEventKind::Harakiri,
                LogEventKind::Harakiri,
                LogEventKind::ExitedOnSignal { signal: 9 },
            ]
        );
    }

    #[test]
    fn scan_log_reads_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fpm.log");
        let old = "[24-Nov-2026 09:00:00] WARNING: [pool www] child 1 exited on signal 9 (SIGKILL) after 1.0 seconds from start\n";
        let filler = "[24-Nov-2026 09:30:00] NOTICE: [pool www] child 2 started\n".repeat(100);
        let new = "[24-Nov-2026 10:00:00] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it\n";
        fs::write(&path, format!("{old}{filler}{new}")).unwrap();
        let all = scan_log(&path, None, 1 << 20).unwrap();
        assert_eq!(all.len(), 2);
        // A tail that starts inside the old line: that partial line is dropped.
        let tail = (new.len() + filler.len() + 10) as u64;
        let events = scan_log(&path, None, tail).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events.first().map(|e| e.kind),
            Some(LogEventKind::MaxChildrenReached)
        );
        // A tail shorter than the last line holds no complete line.
        assert!(scan_log(&path, None, 20).unwrap().is_empty());
        assert!(scan_log(&path, None, 0).unwrap().is_empty());
        assert!(scan_log(&dir.path().join("missing.log"), None, 100).is_err());
    }

    #[test]
    fn long_lines_are_truncated_at_a_char_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.log");
        let line = format!(
            "[2026-11-24 10:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:2) {}\n",
            "é".repeat(600)
        );
        fs::write(&path, line).unwrap();
        let events = scan_log(&path, None, 1 << 20).unwrap();
        let event = events.first().unwrap();
        assert!(event.line.len() <= MAX_LINE_BYTES && event.line.len() >= MAX_LINE_BYTES - 1);
        assert!(event.line.starts_with("[2026-11-24 10:00:00 +0000]"));
    }

    #[test]
    fn kmsg_records() {
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let record = "3,1234,5000000,-;Out of memory: Killed process 4242 (php-fpm8.2) total-vm:812345kB, anon-rss:501234kB\n SUBSYSTEM=x\n";
        let event = parse_kmsg_record(record, Some(boot)).unwrap();
        assert_eq!(event.kind, LogEventKind::OutOfMemory);
        assert!(event.line.starts_with("Out of memory: Killed process 4242"));
        assert_eq!(event.time, Some(boot + Duration::from_secs(5)));
        let oom_kill =
            "6,1233,4999000,-;oom-kill:constraint=CONSTRAINT_NONE,task=php-fpm8.2,pid=4242,uid=33";
        assert!(parse_kmsg_record(oom_kill, None).is_some_and(|e| e.time.is_none()));
        assert_eq!(
            parse_kmsg_record("6,1,0,-;Linux version 6.1", Some(boot)),
            None
        );
        assert_eq!(parse_kmsg_record("garbage", Some(boot)), None);
    }

    #[test]
    fn oom_kills_from_this_kernel() {
        // /dev/kmsg is readable here (root); the buffer may hold no OOM kill.
        let events = oom_kills(None, 10).expect("/dev/kmsg readable");
        assert!(events.len() <= 10);
        assert!(events.iter().all(|e| e.kind == LogEventKind::OutOfMemory));
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert!(oom_kills(Some(future), 10).unwrap().is_empty());
    }

    // ---- identify against real processes ----

    #[test]
    fn identify_missing_and_plain_processes() {
        assert!(identify(i32::MAX, None).is_err());
        let me = identify(i32::try_from(std::process::id()).unwrap(), None).unwrap();
        assert_eq!(me.kind, AppServerKind::Other);
        assert!(me.settings.is_empty() && me.log.is_none() && me.idle_timeout.is_none());
    }

    use fix502_lab::ChildGuard;

    #[test]
    fn identify_gunicorn_from_environment_and_config_file() {
        use std::os::unix::process::CommandExt;
        // A stand-in: `sleep` whose argv[0] says gunicorn, with gunicorn's environment
        // variable and a gunicorn.conf.py in its working directory.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let log = root.join("error.log");
        fs::copy(fixture("gunicorn-error.log"), &log).unwrap();
        let conf = root.join("gunicorn.conf.py");
        fs::write(
            &conf,
            format!("timeout = 45\nerrorlog = '{}'\n", log.display()),
        )
        .unwrap();
        let child = std::process::Command::new("sleep")
            .arg0("/usr/bin/gunicorn")
            .arg("30")
            .current_dir(root)
            .env("GUNICORN_CMD_ARGS", "--keep-alive 4 -k gthread")
            .spawn()
            .expect("sleep");
        let guard = ChildGuard { child };
        let pid = i32::try_from(guard.child.id()).unwrap();
        let mut server = None;
        for _ in 0..100 {
            let found = identify(pid, None).unwrap();
            if found.kind == AppServerKind::Gunicorn {
                server = Some(found);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let server = server.expect("the child runs as gunicorn within 2 s");
        assert_eq!(server.config.as_deref(), Some(conf.as_path()));
        let timeout = server.setting("timeout").unwrap();
        assert_eq!(
            (timeout.value.as_str(), &timeout.source),
            ("45", &file_source(&conf, 1))
        );
        let idle = server
            .idle_timeout
            .clone()
            .expect("gthread keeps connections alive");
        assert_eq!(idle.value, "4");
        assert!(matches!(idle.source, SettingSource::Environment { .. }));
        assert_eq!(server.log.as_deref(), Some(log.as_path()));
        let kinds: Vec<_> = server.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::WorkerTimeout,
                LogEventKind::ExitedOnSignal { signal: 9 },
                LogEventKind::Other
            ]
        );
        drop(guard);
    }

    fn php_fpm_binary() -> PathBuf {
        let preferred = PathBuf::from("/usr/sbin/php-fpm8.2");
        if preferred.is_file() {
            return preferred;
        }
        expand_glob(Path::new("/usr/sbin/php-fpm*"))
            .into_iter()
            .next()
            .expect("php-fpm is not installed (no /usr/sbin/php-fpm*)")
    }

    #[test]
    fn identify_real_php_fpm() {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::{Pid, Uid};

        let binary = php_fpm_binary();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = root.join("fpm.log");
        let main = root.join("php-fpm.conf");
        fs::create_dir(root.join("pool.d")).unwrap();
        fs::write(
            &main,
            format!(
                "[global]\n; test instance\ndaemonize = no\nerror_log = {}\npid = {}/fpm.pid\ninclude={}/pool.d/*.conf\n",
                log.display(),
                root.display(),
                root.display()
            ),
        )
        .unwrap();
        let other_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let user = if Uid::effective().is_root() {
            "user = nobody\ngroup = nogroup\n"
        } else {
            ""
        };
        let pool = root.join("pool.d/test.conf");
        let pool_text = format!(
            "[other]\n{user}listen = 127.0.0.1:{other_port}\npm = static\npm.max_children = 1\n\n\
             [test]\n{user}listen = 127.0.0.1:{port}\npm = static\npm.max_children = 2\n\
             request_terminate_timeout = 7s\n"
        );
        fs::write(&pool, &pool_text).unwrap();
        let line_of = |start: &str| {
            let lines: Vec<&str> = pool_text.lines().collect();
            lines.iter().rposition(|l| l.starts_with(start)).unwrap() + 1
        };

        let child = std::process::Command::new(&binary)
            .arg("-n")
            .arg("-y")
            .arg(&main)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut guard = ChildGuard { child };
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut up = false;
        for _ in 0..100 {
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!(
                    "php-fpm exited early ({status}); log: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(up, "php-fpm did not accept on {addr} within 5 s");

        let all = crate::listeners::listeners().unwrap();
        let listener = crate::listeners::listeners_on_port(&all, port)
            .into_iter()
            .find(|l| l.pid.is_some())
            .expect("listener with a pid");
        let master = i32::try_from(listener.pid.unwrap()).unwrap();
        assert_eq!(
            master,
            i32::try_from(guard.child.id()).unwrap(),
            "the lowest pid is the master"
        );

        let endpoint = format!("127.0.0.1:{port}");
        let server = identify(master, Some(&endpoint)).unwrap();
        assert_eq!(server.kind, AppServerKind::PhpFpm);
        assert_eq!(server.master_pid, Some(master));
        assert_eq!(server.config.as_deref(), Some(main.as_path()));
        assert_eq!(server.pool.as_deref(), Some("test"));
        let listen = server.setting("listen").unwrap();
        assert_eq!(listen.value, endpoint);
        assert_eq!(listen.source, file_source(&pool, line_of("listen")));
        let terminate = server.setting("request_terminate_timeout").unwrap();
        assert_eq!(
            (terminate.seconds(), &terminate.source),
            (
                Some(7),
                &file_source(&pool, line_of("request_terminate_timeout"))
            )
        );
        assert_eq!(
            server.setting("listen.backlog").unwrap().source,
            SettingSource::Default
        );
        assert_eq!(server.log.as_deref(), Some(log.as_path()));
        assert_eq!(server.idle_timeout, None);
        assert!(
            server.events.is_empty(),
            "a fresh log has notices only: {:?}",
            server.events
        );

        // A worker of the pool: its master, and the same config.
        let workers: Vec<i32> = procfs::process::all_processes()
            .unwrap()
            .flatten()
            .filter(|p| p.stat().is_ok_and(|s| s.ppid == master))
            .map(|p| p.pid())
            .collect();
        let worker = identify(*workers.first().expect("a worker"), None).unwrap();
        assert_eq!(worker.kind, AppServerKind::PhpFpm);
        assert_eq!(worker.master_pid, Some(master));
        assert!(worker.cmdline.join(" ").starts_with("php-fpm: pool "));
        assert_eq!(worker.config.as_deref(), Some(main.as_path()));
        let worker_pool = worker.pool.clone().unwrap();
        assert!(worker.cmdline.join(" ").ends_with(&worker_pool));

        // Kill one worker of the [test] pool: the master logs the signal, identify reports it.
        let test_worker = workers
            .iter()
            .copied()
            .find(|&pid| ProcInfo::read(pid).is_ok_and(|p| p.title() == "php-fpm: pool test"))
            .expect("a worker of pool test");
        kill(Pid::from_raw(test_worker), Signal::SIGKILL).unwrap();
        let mut events = Vec::new();
        for _ in 0..50 {
            events = identify(master, Some(&endpoint)).unwrap().events;
            if !events.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let event = events.first().expect("the kill is logged within 5 s");
        assert_eq!(
            event.kind,
            LogEventKind::ExitedOnSignal { signal: 9 },
            "{}",
            event.line
        );
        assert!(event.line.contains("[pool test]"));
        let age = SystemTime::now()
            .duration_since(event.time.unwrap())
            .unwrap_or_default();
        assert!(
            age < Duration::from_secs(120),
            "timestamp read as local time"
        );
        drop(guard);
    }
}
