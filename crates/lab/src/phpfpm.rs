//! A real PHP-FPM master with one pool on loopback (a TCP port or a unix socket), run as a
//! child process of the lab.
//!
//! Its config (`conf/php-fpm.conf`), error log (`logs/php-fpm.log`), pid file and PHP scripts
//! (`www/index.php`, which sleeps, and `www/ok.php`) all live in the lab dir; a pool with
//! another name than `lab` has its own config, log and pid file, named after it. It runs
//! without php.ini (`-n`) and in the foreground (`-F`), in its own process group.
//! [`PhpFpm::stop`] sends SIGQUIT (graceful), waits a bounded time, then SIGKILLs the group;
//! [`PhpFpm::kill`] SIGKILLs the group at once.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::LabError;
use crate::child::{Endpoint, LabChild};
use crate::error::one_line;

/// The name of the lab's usual pool; its files have the names below.
pub(crate) const POOL: &str = "lab";
/// The PHP script the pool runs, relative to the lab dir.
pub(crate) const SCRIPT: &str = "www/index.php";
/// A script that answers at once, relative to the lab dir.
pub(crate) const OK_SCRIPT: &str = "www/ok.php";
/// The script: it sleeps long enough for `request_terminate_timeout` to kill it.
const SCRIPT_TEXT: &str = "<?php\n// fix502 lab: runs past the pool's request_terminate_timeout\nsleep(5);\necho \"slept\\n\";\n";
/// The script that answers at once.
const OK_SCRIPT_TEXT: &str = "<?php\n// fix502 lab: a page that works\necho \"ok\\n\";\n";
/// Directories searched for `php-fpm*` after PATH.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin"];
/// The most log bytes quoted in an error.
const LOG_TAIL: usize = 2048;

/// Where a pool listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PoolListen {
    /// A port on 127.0.0.1.
    Port(u16),
    /// A unix socket (owned by the worker user when the lab runs as root).
    Unix(PathBuf),
}

/// What the pool looks like.
#[derive(Debug, Clone)]
pub(crate) struct PoolSpec {
    /// The pool's name; a pool other than [`POOL`] has its files named after it
    /// (`conf/php-fpm-NAME.conf`, `logs/php-fpm-NAME.log`, `run/php-fpm-NAME.pid`).
    pub name: &'static str,
    /// Where the pool listens.
    pub listen: PoolListen,
    /// `user group` for the pool's workers, when the lab runs as root.
    pub user: Option<String>,
    /// `request_terminate_timeout` in seconds, if the pool kills long requests.
    pub terminate_after_secs: Option<u32>,
    /// The process manager's lines; `pm = static` with two children unless a scenario says.
    pub pm: Vec<String>,
    /// More pool lines (`listen.backlog = 1`, `listen.allowed_clients = ...`), in order.
    pub extra: Vec<String>,
}

impl PoolSpec {
    /// The lab's usual pool on 127.0.0.1:`port`: static, two children.
    pub(crate) fn tcp(port: u16, user: Option<&str>) -> Self {
        Self {
            name: POOL,
            listen: PoolListen::Port(port),
            user: user.map(str::to_owned),
            terminate_after_secs: None,
            pm: vec!["pm = static".to_owned(), "pm.max_children = 2".to_owned()],
            extra: Vec::new(),
        }
    }

    /// A file of this pool, relative to the lab dir: `base` (`conf/php-fpm`) with `.ext`,
    /// and the pool's name between them unless it is the usual pool.
    fn file(&self, base: &str, ext: &str) -> String {
        if self.name == POOL {
            format!("{base}.{ext}")
        } else {
            format!("{base}-{}.{ext}", self.name)
        }
    }

    /// Where it accepts connections once it is ready.
    fn endpoint(&self) -> Endpoint {
        match &self.listen {
            PoolListen::Port(port) => Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, *port))),
            PoolListen::Unix(path) => Endpoint::Unix(path.clone()),
        }
    }
}

/// The pool config file's text. `dir` must have passed `config::check_path`.
pub(crate) fn config_text(dir: &str, spec: &PoolSpec) -> String {
    let listen = match &spec.listen {
        PoolListen::Port(port) => format!("127.0.0.1:{port}"),
        PoolListen::Unix(path) => path.display().to_string(),
    };
    let mut out = format!(
        "; fix502 lab: generated, removed with the lab directory\n\
         [global]\n\
         pid = \"{dir}/{pid}\"\n\
         error_log = \"{dir}/{log}\"\n\
         log_level = notice\n\
         daemonize = no\n\
         process_control_timeout = 2s\n\
         \n\
         [{name}]\n\
         listen = {listen}\n",
        pid = spec.file("run/php-fpm", "pid"),
        log = spec.file("logs/php-fpm", "log"),
        name = spec.name,
    );
    let user = spec.user.as_deref().and_then(|u| u.split_once(' '));
    if let Some((user, group)) = user {
        out.push_str(&format!("user = {user}\ngroup = {group}\n"));
        if matches!(spec.listen, PoolListen::Unix(_)) {
            // nginx's workers run as the same user: they may connect.
            out.push_str(&format!(
                "listen.owner = {user}\nlisten.group = {group}\nlisten.mode = 0660\n"
            ));
        }
    }
    for line in &spec.pm {
        out.push_str(line);
        out.push('\n');
    }
    // php-fpm answers its ping page itself (no script runs), as many production pools
    // configure it.
    out.push_str("ping.path = /fpm-ping\n");
    if let Some(secs) = spec.terminate_after_secs {
        out.push_str(&format!("request_terminate_timeout = {secs}s\n"));
    }
    for line in &spec.extra {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The php-fpm binary: `php-fpm` on PATH, else the newest `php-fpm*` in the sbin dirs.
pub(crate) fn find_binary() -> Result<PathBuf, LabError> {
    if let Ok(path) = which::which("php-fpm") {
        return Ok(path);
    }
    for dir in SBIN_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("php-fpm"))
            .map(|e| e.path())
            .filter(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .collect();
        found.sort();
        if let Some(path) = found.pop() {
            return Ok(path);
        }
    }
    Err(LabError::PhpFpmNotFound)
}

/// A running php-fpm master; stopping (or dropping) it ends it and its workers.
#[derive(Debug)]
pub(crate) struct PhpFpm {
    child: LabChild,
    log: PathBuf,
}

impl PhpFpm {
    /// Writes the scripts and config into `dir` (`dir_text` is its checked text form), starts
    /// php-fpm and waits until the pool accepts connections.
    pub(crate) fn start(dir: &Path, dir_text: &str, spec: &PoolSpec) -> Result<Self, LabError> {
        let binary = find_binary()?;
        let www = dir.join("www");
        fs::create_dir_all(&www)
            .and_then(|()| fs::set_permissions(&www, fs::Permissions::from_mode(0o755)))
            .map_err(|e| LabError::io(format!("create {}", www.display()), e))?;
        for (script, text) in [(SCRIPT, SCRIPT_TEXT), (OK_SCRIPT, OK_SCRIPT_TEXT)] {
            let script = dir.join(script);
            fs::write(&script, text)
                .map_err(|e| LabError::io(format!("write {}", script.display()), e))?;
        }
        let config = dir.join(spec.file("conf/php-fpm", "conf"));
        fs::write(&config, config_text(dir_text, spec))
            .map_err(|e| LabError::io(format!("write {}", config.display()), e))?;
        let log = dir.join(spec.file("logs/php-fpm", "log"));
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| LabError::io(format!("open {}", log.display()), e))?;

        let child = LabChild::spawn(
            Command::new(&binary)
                .arg("-n")
                .arg("-y")
                .arg(&config)
                .arg("-F")
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr)),
            "php-fpm",
            Signal::SIGQUIT,
        )?;
        let mut fpm = Self { child, log };
        tracing::debug!(pid = fpm.pid(), pool = spec.name, "lab php-fpm started");
        let log = fpm.log.clone();
        if !fpm.child.wait_ready(&spec.endpoint(), || log_tail(&log))? {
            return Err(LabError::PhpFpmFailed {
                log: log_tail(&log),
            });
        }
        Ok(fpm)
    }

    /// The master's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// php-fpm's error log.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Stops the master (SIGQUIT, then SIGKILL to its process group) and reaps it; later calls
    /// do nothing.
    pub(crate) fn stop(&mut self) -> Result<(), LabError> {
        self.child.stop()
    }

    /// Kills the master and its workers with SIGKILL at once (a crash): a unix socket file
    /// stays behind with nothing listening on it.
    pub(crate) fn kill(&mut self) -> Result<(), LabError> {
        self.child.kill()
    }
}

/// The last [`LOG_TAIL`] bytes of `log`, on one line.
pub(crate) fn log_tail(log: &Path) -> String {
    let bytes = fs::read(log).unwrap_or_default();
    let start = bytes.len().saturating_sub(LOG_TAIL);
    one_line(&String::from_utf8_lossy(
        bytes.get(start..).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_paths_user_and_timeout() {
        let spec = PoolSpec {
            terminate_after_secs: Some(1),
            ..PoolSpec::tcp(9001, Some("nobody nogroup"))
        };
        let text = config_text("/tmp/lab", &spec);
        assert!(text.contains("error_log = \"/tmp/lab/logs/php-fpm.log\"\n"));
        assert!(text.contains("listen = 127.0.0.1:9001\n"));
        assert!(text.contains("user = nobody\ngroup = nogroup\n"));
        assert!(text.contains("request_terminate_timeout = 1s\n"));
        assert!(text.contains("daemonize = no\n"));
        let plain = config_text(
            "/tmp/lab",
            &PoolSpec {
                user: None,
                terminate_after_secs: None,
                ..spec
            },
        );
        assert!(!plain.contains("user ="));
        assert!(!plain.contains("request_terminate_timeout"));
    }

    #[test]
    fn a_named_unix_pool_has_its_own_files_and_socket_owner() {
        let spec = PoolSpec {
            name: "busy",
            listen: PoolListen::Unix(PathBuf::from("/tmp/lab/run/busy.sock")),
            pm: vec!["pm = dynamic".to_owned()],
            extra: vec!["listen.backlog = 1".to_owned()],
            ..PoolSpec::tcp(0, Some("nobody nogroup"))
        };
        let text = config_text("/tmp/lab", &spec);
        assert!(
            text.contains("pid = \"/tmp/lab/run/php-fpm-busy.pid\"\n"),
            "{text}"
        );
        assert!(text.contains("error_log = \"/tmp/lab/logs/php-fpm-busy.log\"\n"));
        assert!(
            text.contains("[busy]\nlisten = /tmp/lab/run/busy.sock\n"),
            "{text}"
        );
        assert!(
            text.contains("listen.owner = nobody\nlisten.group = nogroup\nlisten.mode = 0660\n")
        );
        assert!(
            text.contains("pm = dynamic\nping.path = /fpm-ping\n"),
            "{text}"
        );
        assert!(text.ends_with("listen.backlog = 1\n"), "{text}");
        assert_eq!(spec.file("conf/php-fpm", "conf"), "conf/php-fpm-busy.conf");
    }
}
