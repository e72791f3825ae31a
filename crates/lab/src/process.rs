//! Stopping (or reloading) an nginx master by the pid in its pid file, stopping a child process
//! a test started, and asking /proc whether a pid still runs.
//!
//! Only a process whose command line names the lab dir is signalled, so a recycled
//! pid is never hit. The master gets SIGTERM (fast shutdown, it stops its workers itself); if it
//! is still there after a bounded wait it gets SIGKILL, together with its process group (nginx
//! calls `setsid()` when it daemonizes, so the group is exactly the master and its workers).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::LabError;

/// How long a master gets to exit after SIGTERM.
const TERM_WAIT: Duration = Duration::from_secs(5);
/// How long to wait for the kernel after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// How long a [`ChildGuard`]'s child gets to exit after SIGQUIT.
const GUARD_WAIT: Duration = Duration::from_secs(5);
/// Poll interval while waiting for a process to exit.
const POLL: Duration = Duration::from_millis(20);

/// Stops a child this process started, by its pid: `signal` (SIGTERM or SIGQUIT, so an
/// nginx or php-fpm master stops its workers too), then SIGKILL if it has not exited within
/// `grace`. Always reaps it. For tests that run a real nginx, php-fpm or helper process.
pub fn stop_child(child: &mut std::process::Child, signal: Signal, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process a test started, stopped on drop with [`stop_child`]: SIGQUIT (a graceful
/// stop for nginx and php-fpm masters), up to 5 s, then SIGKILL.
#[derive(Debug)]
pub struct ChildGuard {
    /// The child.
    pub child: std::process::Child,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        stop_child(&mut self.child, Signal::SIGQUIT, GUARD_WAIT);
    }
}

/// Whether `pid` names a live process (Linux `/proc`). Zombies and dead processes count as not
/// running: a daemonized nginx master is reaped by init, which may take a moment.
pub fn process_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

/// The pid written in `pid_file`, if the file exists and holds a positive number.
pub(crate) fn read_pid_file(pid_file: &Path) -> Option<u32> {
    let text = fs::read_to_string(pid_file).ok()?;
    text.trim().parse::<u32>().ok().filter(|pid| *pid > 0)
}

/// The NUL-separated command line of `pid`, with NULs turned into spaces.
fn command_line(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// The process group of `pid` (field 5 of `/proc/PID/stat`).
fn process_group(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Waits until `pid` no longer runs; `true` if it ended before `limit`.
fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !process_running(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Sends SIGHUP (reload, like `nginx -s reload`) to the nginx master named in `pid_file`, if it
/// runs and its command line contains `dir_marker`. Returns the master's pid.
pub(crate) fn reload_master(pid_file: &Path, dir_marker: &str) -> Result<u32, LabError> {
    let pid = read_pid_file(pid_file)
        .filter(|pid| process_running(*pid))
        .ok_or_else(|| {
            LabError::NginxNotRunning(format!("no running master in {}", pid_file.display()))
        })?;
    let ours = command_line(pid).is_some_and(|cmd| cmd.contains(dir_marker));
    let raw = i32::try_from(pid).ok().filter(|_| ours).ok_or_else(|| {
        LabError::NginxNotRunning(format!(
            "{} names pid {pid}, which is not this lab's nginx",
            pid_file.display()
        ))
    })?;
    tracing::debug!(pid, "reloading lab nginx (SIGHUP)");
    kill(Pid::from_raw(raw), Signal::SIGHUP)
        .map_err(|e| LabError::io(format!("send SIGHUP to nginx master {pid}"), e.into()))?;
    Ok(pid)
}

/// Stops the nginx master named in `pid_file`, if it runs and its command line contains
/// `dir_marker` (the lab dir followed by `/`). Nothing to stop is not an error.
pub(crate) fn stop_master(pid_file: &Path, dir_marker: &str) -> Result<(), LabError> {
    let Some(pid) = read_pid_file(pid_file) else {
        tracing::debug!(pid_file = %pid_file.display(), "no nginx pid file: nothing to stop");
        return Ok(());
    };
    if !process_running(pid) {
        return Ok(());
    }
    let ours = command_line(pid).is_some_and(|cmd| cmd.contains(dir_marker));
    if !ours {
        tracing::warn!(
            pid,
            "pid file names a process that is not this lab's nginx; not signalled"
        );
        return Ok(());
    }
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    tracing::debug!(pid, "stopping lab nginx (SIGTERM)");
    if let Err(e) = kill(Pid::from_raw(raw), Signal::SIGTERM) {
        // ESRCH: it ended in between, which is what we want.
        if e != nix::errno::Errno::ESRCH {
            return Err(LabError::io(
                format!("send SIGTERM to nginx master {pid}"),
                e.into(),
            ));
        }
    }
    if wait_gone(pid, TERM_WAIT) {
        return Ok(());
    }
    tracing::warn!(pid, "lab nginx ignored SIGTERM; sending SIGKILL");
    let result = if process_group(pid) == Some(pid) {
        killpg(Pid::from_raw(raw), Signal::SIGKILL)
    } else {
        kill(Pid::from_raw(raw), Signal::SIGKILL)
    };
    if let Err(e) = result
        && e != nix::errno::Errno::ESRCH
    {
        return Err(LabError::io(
            format!("send SIGKILL to nginx master {pid}"),
            e.into(),
        ));
    }
    if wait_gone(pid, KILL_WAIT) {
        Ok(())
    } else {
        Err(LabError::Timeout(format!(
            "nginx master {pid} still runs after SIGTERM and SIGKILL"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_silly_pid_does_not() {
        assert!(process_running(std::process::id()));
        assert!(!process_running(u32::MAX));
    }

    #[test]
    fn pid_file_parsing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nginx.pid");
        assert_eq!(read_pid_file(&file), None);
        fs::write(&file, "1234\n").expect("write");
        assert_eq!(read_pid_file(&file), Some(1234));
        fs::write(&file, "0\n").expect("write");
        assert_eq!(read_pid_file(&file), None);
        fs::write(&file, "junk").expect("write");
        assert_eq!(read_pid_file(&file), None);
    }

    #[test]
    fn stopping_without_pid_file_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(stop_master(&dir.path().join("nginx.pid"), "x").is_ok());
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = format!("{}/", dir.path().display());
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.05; done"])
            .arg(&marker)
            .spawn()
            .expect("spawn sh");
        let file = dir.path().join("nginx.pid");
        fs::write(&file, format!("{}\n", child.id())).expect("write");
        // Let sh install its trap before it is signalled.
        thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        assert!(stop_master(&file, &marker).is_ok());
        assert!(started.elapsed() >= TERM_WAIT);
        assert!(!process_running(child.id()));
        assert!(child.wait().is_ok());
    }

    #[test]
    fn a_foreign_pid_is_not_signalled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nginx.pid");
        fs::write(&file, format!("{}\n", std::process::id())).expect("write");
        assert!(stop_master(&file, "/no/such/lab/conf/nginx.conf").is_ok());
        let err = reload_master(&file, "/no/such/lab/conf/nginx.conf");
        assert!(matches!(err, Err(LabError::NginxNotRunning(_))), "{err:?}");
        assert!(process_running(std::process::id()));
    }

    /// Whether this process ignores SIGHUP (run under `nohup`): its children inherit that,
    /// and a shell cannot trap a signal ignored on entry.
    fn sighup_ignored() -> bool {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (Signal::SIGHUP as u32 - 1)) != 0)
    }

    #[test]
    #[allow(clippy::print_stderr, reason = "the test explains its skip on stderr")]
    fn reload_needs_a_running_master_and_sends_sighup() {
        if sighup_ignored() {
            eprintln!("skipped: SIGHUP is ignored here (nohup?), so the test shell cannot trap it");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = format!("{}/", dir.path().display());
        let file = dir.path().join("nginx.pid");
        let err = reload_master(&file, &marker);
        assert!(matches!(err, Err(LabError::NginxNotRunning(_))), "{err:?}");
        let got = dir.path().join("got-hup");
        let script = format!(
            "trap 'touch {}; exit 0' HUP; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done",
            got.display()
        );
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .arg(&marker)
            .spawn()
            .expect("spawn sh");
        fs::write(&file, format!("{}\n", child.id())).expect("write");
        thread::sleep(Duration::from_millis(200));
        assert_eq!(reload_master(&file, &marker).ok(), Some(child.id()));
        assert!(child.wait().expect("wait").success());
        assert!(got.exists());
    }
}
