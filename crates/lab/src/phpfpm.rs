//! A real PHP-FPM master with one TCP pool on loopback, run as a child process of the lab.
//!
//! Its config (`conf/php-fpm.conf`), error log (`logs/php-fpm.log`), pid file and PHP script
//! (`www/index.php`) all live in the lab dir; it runs without php.ini (`-n`) and in the
//! foreground (`-F`), in its own process group. [`PhpFpm::stop`] sends SIGQUIT (graceful), waits
//! a bounded time, then SIGKILLs the group.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::LabError;
use crate::error::one_line;

/// The pool config, relative to the lab dir.
pub(crate) const CONFIG: &str = "conf/php-fpm.conf";
/// php-fpm's error log (also its stderr), relative to the lab dir.
pub(crate) const LOG: &str = "logs/php-fpm.log";
/// The PHP script the pool runs, relative to the lab dir.
pub(crate) const SCRIPT: &str = "www/index.php";
/// The script: it sleeps long enough for `request_terminate_timeout` to kill it.
const SCRIPT_TEXT: &str = "<?php\n// fix502 lab: runs past the pool's request_terminate_timeout\nsleep(5);\necho \"slept\\n\";\n";
/// Directories searched for `php-fpm*` after PATH.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin"];
/// How long php-fpm may take to accept connections.
const READY_WAIT: Duration = Duration::from_secs(5);
/// How long a graceful stop (SIGQUIT) may take.
const QUIT_WAIT: Duration = Duration::from_secs(3);
/// How long to wait for the kernel after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Poll interval while waiting.
const POLL: Duration = Duration::from_millis(20);
/// The most log bytes quoted in an error.
const LOG_TAIL: usize = 2048;

/// What the pool looks like.
#[derive(Debug, Clone)]
pub(crate) struct PoolSpec {
    /// The loopback port the pool listens on.
    pub port: u16,
    /// `user group` for the pool's workers, when the lab runs as root.
    pub user: Option<String>,
    /// `request_terminate_timeout` in seconds, if the pool kills long requests.
    pub terminate_after_secs: Option<u32>,
}

/// The pool config file's text. `dir` must have passed `config::check_path`.
pub(crate) fn config_text(dir: &str, spec: &PoolSpec) -> String {
    let mut out = format!(
        "; fix502 lab: generated, removed with the lab directory\n\
         [global]\n\
         pid = \"{dir}/run/php-fpm.pid\"\n\
         error_log = \"{dir}/{LOG}\"\n\
         log_level = notice\n\
         daemonize = no\n\
         process_control_timeout = 2s\n\
         \n\
         [lab]\n\
         listen = 127.0.0.1:{port}\n",
        port = spec.port
    );
    if let Some((user, group)) = spec.user.as_deref().and_then(|u| u.split_once(' ')) {
        out.push_str(&format!("user = {user}\ngroup = {group}\n"));
    }
    // php-fpm answers its ping page itself (no script runs), as many production pools
    // configure it.
    out.push_str("pm = static\npm.max_children = 2\nping.path = /fpm-ping\n");
    if let Some(secs) = spec.terminate_after_secs {
        out.push_str(&format!("request_terminate_timeout = {secs}s\n"));
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
    /// `None` once stopped.
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
}

impl PhpFpm {
    /// Writes the script and config into `dir` (`dir_text` is its checked text form), starts
    /// php-fpm and waits until the pool accepts connections.
    pub(crate) fn start(dir: &Path, dir_text: &str, spec: &PoolSpec) -> Result<Self, LabError> {
        let binary = find_binary()?;
        let www = dir.join("www");
        fs::create_dir_all(&www)
            .and_then(|()| fs::set_permissions(&www, fs::Permissions::from_mode(0o755)))
            .map_err(|e| LabError::io(format!("create {}", www.display()), e))?;
        let script = dir.join(SCRIPT);
        fs::write(&script, SCRIPT_TEXT)
            .map_err(|e| LabError::io(format!("write {}", script.display()), e))?;
        let config = dir.join(CONFIG);
        fs::write(&config, config_text(dir_text, spec))
            .map_err(|e| LabError::io(format!("write {}", config.display()), e))?;
        let log = dir.join(LOG);
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| LabError::io(format!("open {}", log.display()), e))?;

        let child = Command::new(&binary)
            .arg("-n")
            .arg("-y")
            .arg(&config)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .map_err(|e| LabError::io(format!("start {}", binary.display()), e))?;
        let mut fpm = Self {
            pid: child.id(),
            child: Some(child),
            log,
        };
        tracing::debug!(pid = fpm.pid, port = spec.port, "lab php-fpm started");
        fpm.wait_ready(spec.port)?;
        Ok(fpm)
    }

    /// The master's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// php-fpm's error log.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// Waits until the pool accepts connections; stops php-fpm and fails if it exits first or
    /// takes longer than [`READY_WAIT`].
    fn wait_ready(&mut self, port: u16) -> Result<(), LabError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + READY_WAIT;
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child
                    .try_wait()
                    .map_err(|e| LabError::io("wait for php-fpm", e))?
                    .is_some(),
                None => true,
            };
            if exited {
                self.child = None;
                return Err(LabError::PhpFpmFailed {
                    log: log_tail(&self.log),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = log_tail(&self.log);
                self.stop()?;
                return Err(LabError::Timeout(format!(
                    "php-fpm did not accept on {addr} within {} s: {log}",
                    READY_WAIT.as_secs()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// Stops the master (SIGQUIT, then SIGKILL to its process group) and reaps it; later calls
    /// do nothing.
    pub(crate) fn stop(&mut self) -> Result<(), LabError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let Ok(raw) = i32::try_from(self.pid) else {
            return Ok(());
        };
        let pid = Pid::from_raw(raw);
        tracing::debug!(pid = self.pid, "stopping lab php-fpm (SIGQUIT)");
        ignore_gone(kill(pid, Signal::SIGQUIT), "SIGQUIT", self.pid)?;
        if !reaped(&mut child, QUIT_WAIT)? {
            tracing::warn!(
                pid = self.pid,
                "lab php-fpm ignored SIGQUIT; sending SIGKILL"
            );
            ignore_gone(killpg(pid, Signal::SIGKILL), "SIGKILL", self.pid)?;
            if !reaped(&mut child, KILL_WAIT)? {
                self.child = Some(child);
                return Err(LabError::Timeout(format!(
                    "php-fpm master {} still runs after SIGQUIT and SIGKILL",
                    self.pid
                )));
            }
        }
        // Workers normally end with their master; any that did not still carry its group id.
        ignore_gone(killpg(pid, Signal::SIGKILL), "SIGKILL", self.pid)
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "lab php-fpm teardown failed");
        }
    }
}

/// A signal result where "no such process" (it already ended) counts as success.
fn ignore_gone(result: nix::Result<()>, signal: &str, pid: u32) -> Result<(), LabError> {
    match result {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(LabError::io(
            format!("send {signal} to php-fpm {pid}"),
            e.into(),
        )),
    }
}

/// Waits (at most `limit`) for `child` to exit and reaps it; `true` if it did.
fn reaped(child: &mut Child, limit: Duration) -> Result<bool, LabError> {
    let deadline = Instant::now() + limit;
    loop {
        if child
            .try_wait()
            .map_err(|e| LabError::io("wait for php-fpm", e))?
            .is_some()
        {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(POLL);
    }
}

/// The last [`LOG_TAIL`] bytes of `log`, on one line.
fn log_tail(log: &Path) -> String {
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
            port: 9001,
            user: Some("nobody nogroup".to_owned()),
            terminate_after_secs: Some(1),
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
}
