//! The public types of what is known about an app server: its kind, its settings with
//! where each was set, and the log events that explain a closed or reset connection.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

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
    pub(super) fn has_master(self) -> bool {
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
    /// PHP-FPM `executing too slow (N sec), logging`: a request ran past
    /// `request_slowlog_timeout` (its stack is in the pool's `slowlog`).
    SlowRequest,
    /// uWSGI `listen queue of socket "..." full`: connections wait beyond the `listen`
    /// backlog.
    ListenQueueFull,
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

/// What [`identify`](super::identify()) found out about the process behind an upstream.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
