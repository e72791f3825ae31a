//! A program the lab runs as a child in its own process group (php-fpm, uWSGI, a decoy
//! listener): started, waited for until it accepts connections, and stopped by its pid:
//! a signal the program takes as "stop" (SIGQUIT for php-fpm and uWSGI, SIGTERM for the
//! others), a bounded wait, then SIGKILL to its process group, which holds its workers.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::LabError;

/// How long a program may take to accept connections.
const READY_WAIT: Duration = Duration::from_secs(5);
/// How long a stop signal may take to end it.
const STOP_WAIT: Duration = Duration::from_secs(3);
/// How long to wait for the kernel after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Poll interval while waiting.
const POLL: Duration = Duration::from_millis(20);
/// How long one readiness connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Where a child accepts connections once it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl Endpoint {
    /// Whether a connection to it succeeds now.
    fn accepts(&self) -> bool {
        match self {
            Self::Tcp(addr) => TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).is_ok(),
            Self::Unix(path) => UnixStream::connect(path).is_ok(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A running child and its process group; stopping (or dropping) it ends both.
#[derive(Debug)]
pub(crate) struct LabChild {
    /// `None` once stopped.
    child: Option<Child>,
    pid: u32,
    /// What it is, for messages (`php-fpm`, `uwsgi`).
    name: &'static str,
    /// The signal that asks it to stop.
    stop_signal: Signal,
}

impl LabChild {
    /// Starts `command` (stdin from /dev/null, stdout and stderr as the command says) in a
    /// process group of its own.
    pub(crate) fn spawn(
        command: &mut Command,
        name: &'static str,
        stop_signal: Signal,
    ) -> Result<Self, LabError> {
        let child = command
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| LabError::io(format!("start {name}"), e))?;
        tracing::debug!(pid = child.id(), name, "lab child started");
        Ok(Self {
            pid: child.id(),
            child: Some(child),
            name,
            stop_signal,
        })
    }

    /// The child's pid (its process group id too).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits (at most 5 s) until `endpoint` accepts connections. `Ok(false)`: the child exited
    /// first. On a timeout the child is stopped and the error says so, with `log_tail()`.
    pub(crate) fn wait_ready(
        &mut self,
        endpoint: &Endpoint,
        log_tail: impl Fn() -> String,
    ) -> Result<bool, LabError> {
        self.wait_until(
            &format!("accept on {endpoint}"),
            || endpoint.accepts(),
            log_tail,
        )
    }

    /// Waits (at most 5 s) until `ready()` says so (`what` it waits for, for the message).
    /// `Ok(false)`: the child exited first. On a timeout the child is stopped and the error
    /// says so, with `log_tail()`.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        ready: impl Fn() -> bool,
        log_tail: impl Fn() -> String,
    ) -> Result<bool, LabError> {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if self.exited()? {
                return Ok(false);
            }
            if ready() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                let log = log_tail();
                self.stop()?;
                return Err(LabError::Timeout(format!(
                    "{} did not {what} within {} s: {log}",
                    self.name,
                    READY_WAIT.as_secs()
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// Whether the child has exited (it is reaped then).
    fn exited(&mut self) -> Result<bool, LabError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(true);
        };
        let done = child
            .try_wait()
            .map_err(|e| LabError::io(format!("wait for {}", self.name), e))?
            .is_some();
        if done {
            self.child = None;
        }
        Ok(done)
    }

    /// Stops the child (its stop signal, then SIGKILL to its process group) and reaps it;
    /// later calls do nothing.
    pub(crate) fn stop(&mut self) -> Result<(), LabError> {
        self.end(Some(self.stop_signal))
    }

    /// Kills the child's whole process group with SIGKILL at once, as a crash or the OOM
    /// killer would (php-fpm leaves its unix socket file behind), and reaps it.
    pub(crate) fn kill(&mut self) -> Result<(), LabError> {
        self.end(None)
    }

    fn end(&mut self, signal: Option<Signal>) -> Result<(), LabError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let Ok(raw) = i32::try_from(self.pid) else {
            return Ok(());
        };
        let pid = Pid::from_raw(raw);
        let stopped = match signal {
            Some(signal) => {
                tracing::debug!(pid = self.pid, name = self.name, %signal, "stopping lab child");
                self.ignore_gone(kill(pid, signal), signal)?;
                reaped(&mut child, STOP_WAIT, self.name)?
            }
            None => false,
        };
        if !stopped {
            self.ignore_gone(killpg(pid, Signal::SIGKILL), Signal::SIGKILL)?;
            if !reaped(&mut child, KILL_WAIT, self.name)? {
                self.child = Some(child);
                return Err(LabError::Timeout(format!(
                    "{} {} still runs after SIGKILL",
                    self.name, self.pid
                )));
            }
        }
        // Workers normally end with their master; any that did not still carry its group id.
        self.ignore_gone(killpg(pid, Signal::SIGKILL), Signal::SIGKILL)
    }

    /// A signal result where "no such process" (it already ended) counts as success.
    fn ignore_gone(&self, result: nix::Result<()>, signal: Signal) -> Result<(), LabError> {
        match result {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(LabError::io(
                format!("send {signal} to {} {}", self.name, self.pid),
                e.into(),
            )),
        }
    }
}

impl Drop for LabChild {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, name = self.name, "lab child teardown failed");
        }
    }
}

/// Waits (at most `limit`) for `child` to exit and reaps it; `true` if it did.
fn reaped(child: &mut Child, limit: Duration, name: &str) -> Result<bool, LabError> {
    let deadline = Instant::now() + limit;
    loop {
        if child
            .try_wait()
            .map_err(|e| LabError::io(format!("wait for {name}"), e))?
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
