//! Running the real nginx binary: finding it, starting it as a daemon, and `nginx -t`.
//!
//! Every command runs with a deadline: its stderr goes to an anonymous file in the lab dir (so a
//! daemonized master that keeps the descriptor cannot block us), and we poll for its exit.
//!
//! An instance may run in its own mount namespace in which a lab file is bind-mounted on
//! `/etc/hosts` (scenario `stale-dns`). The namespace is made by a short-lived thread that calls
//! `unshare(CLONE_NEWNS)` (which only affects that thread) and spawns nginx, so the child starts
//! inside it; the rest of this process, and the host's `/etc/hosts`, are untouched.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::LabError;
use crate::process::{process_running, read_pid_file};

/// Directories searched for `nginx` after PATH.
const SBIN_DIRS: &[&str] = &[
    "/usr/sbin",
    "/sbin",
    "/usr/local/sbin",
    "/usr/local/nginx/sbin",
];
/// How long `nginx` (the foreground part) or `nginx -t` may take.
const COMMAND_WAIT: Duration = Duration::from_secs(10);
/// How long the daemonized master may take to write its pid file and accept connections.
const READY_WAIT: Duration = Duration::from_secs(5);
/// Poll interval while waiting.
const POLL: Duration = Duration::from_millis(20);
/// The file a namespaced instance sees its own hosts file at.
const ETC_HOSTS: &str = "/etc/hosts";

/// The outcome of `nginx -t` on a lab config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTest {
    /// Whether nginx accepted the config (exit status 0).
    pub ok: bool,
    /// What nginx printed (stderr), e.g. `nginx: [emerg] unexpected "}" in /tmp/…/conf/app.conf:4`.
    pub output: String,
}

/// Paths of one lab nginx instance.
#[derive(Debug, Clone)]
pub(crate) struct Instance<'a> {
    /// The nginx binary.
    pub binary: &'a Path,
    /// The prefix (`-p`), the lab dir.
    pub prefix: &'a Path,
    /// The main config (`-c`).
    pub config: &'a Path,
    /// The error log, passed as `-e` at start so startup messages stay in the lab dir.
    pub error_log: &'a Path,
    /// The pid file the config names.
    pub pid_file: &'a Path,
    /// A hosts file: when set, every nginx command runs in a new mount namespace where this
    /// file is bind-mounted on `/etc/hosts`.
    pub hosts: Option<&'a Path>,
}

impl Instance<'_> {
    /// `nginx -p PREFIX/ -c CONFIG -e LOG`, plus `extra` arguments.
    fn command(&self, log: &Path, extra: &[&str]) -> Command {
        let mut prefix = self.prefix.as_os_str().to_owned();
        prefix.push("/");
        let mut cmd = Command::new(self.binary);
        cmd.arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(self.config)
            .arg("-e")
            .arg(log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Runs `nginx -t` against the config as it is on disk now. Its messages go to stderr only
    /// (`-e stderr`), so testing leaves no `[emerg]` line in the lab's error log.
    pub(crate) fn test_config(&self) -> Result<ConfigTest, LabError> {
        let cmd = self.command(Path::new("stderr"), &["-t"]);
        let (status, output) = run_bounded(cmd, self.prefix, self.hosts, "nginx -t")?;
        Ok(ConfigTest {
            ok: status.success(),
            output,
        })
    }

    /// Starts nginx (it daemonizes) and waits until the master wrote its pid file and `listen`
    /// accepts connections. Returns the master pid.
    pub(crate) fn start(&self, listen: SocketAddr) -> Result<u32, LabError> {
        let cmd = self.command(self.error_log, &[]);
        let (status, output) = run_bounded(cmd, self.prefix, self.hosts, "start nginx")?;
        if !status.success() {
            return Err(LabError::nginx_failed(&output));
        }
        let deadline = Instant::now() + READY_WAIT;
        loop {
            let pid = read_pid_file(self.pid_file).filter(|pid| process_running(*pid));
            if let Some(pid) = pid
                && TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok()
            {
                tracing::debug!(pid, %listen, "lab nginx is up");
                return Ok(pid);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout(format!(
                    "nginx did not write {} and accept on {listen} within {} s",
                    self.pid_file.display(),
                    READY_WAIT.as_secs()
                )));
            }
            thread::sleep(POLL);
        }
    }
}

/// Runs `cmd` with stderr captured in an anonymous file inside `dir`, waiting at most
/// [`COMMAND_WAIT`] (then the child is killed); with `hosts`, in a mount namespace of its own
/// where that file is `/etc/hosts`. Returns its status and stderr text.
fn run_bounded(
    mut cmd: Command,
    dir: &Path,
    hosts: Option<&Path>,
    what: &str,
) -> Result<(ExitStatus, String), LabError> {
    let io = |e| LabError::io(what, e);
    let mut stderr = tempfile::tempfile_in(dir).map_err(io)?;
    cmd.stderr(Stdio::from(stderr.try_clone().map_err(io)?));
    let mut child = match hosts {
        Some(hosts) => spawn_with_hosts(cmd, hosts)?,
        None => cmd.spawn().map_err(io)?,
    };
    let deadline = Instant::now() + COMMAND_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if Instant::now() >= deadline {
            // Best effort: it is our direct child, so kill() targets exactly it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::Timeout(format!(
                "{what} did not finish within {} s",
                COMMAND_WAIT.as_secs()
            )));
        }
        thread::sleep(POLL);
    };
    Ok((status, read_all(&mut stderr).map_err(io)?))
}

/// Spawns `cmd` in a new mount namespace (with private propagation, so nothing leaks back to
/// the host) where `hosts` is bind-mounted on `/etc/hosts`.
///
/// `unshare(CLONE_NEWNS)` affects only the calling thread, so a short-lived thread does it and
/// spawns the child, which inherits the namespace; the thread then ends. A daemonized nginx
/// master keeps the namespace alive until it exits.
fn spawn_with_hosts(mut cmd: Command, hosts: &Path) -> Result<Child, LabError> {
    let hosts = hosts.to_path_buf();
    let unsupported = |step: &str, e: nix::Error| {
        LabError::Unsupported(format!(
            "cannot give nginx its own /etc/hosts ({step}: {e}); this needs root (CAP_SYS_ADMIN) and mount namespaces"
        ))
    };
    let thread = thread::Builder::new()
        .name("fix502-lab-mntns".to_owned())
        .spawn(move || -> Result<Child, LabError> {
            unshare(CloneFlags::CLONE_NEWNS).map_err(|e| unsupported("unshare", e))?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| unsupported("make / private", e))?;
            mount(
                Some(hosts.as_path()),
                ETC_HOSTS,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| unsupported(&format!("bind {} on {ETC_HOSTS}", hosts.display()), e))?;
            cmd.spawn()
                .map_err(|e| LabError::io("spawn nginx in its mount namespace", e))
        })
        .map_err(|e| LabError::io("start the mount namespace thread", e))?;
    thread.join().map_err(|_| {
        LabError::io(
            "spawn nginx in its mount namespace",
            std::io::Error::other("the thread panicked"),
        )
    })?
}

/// Reads a file from its start (lossy UTF-8).
fn read_all(file: &mut File) -> std::io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The nginx binary to use: `explicit` if given (it must exist), else `nginx` on PATH, else the
/// usual sbin directories.
pub(crate) fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, LabError> {
    if let Some(path) = explicit {
        return if is_executable(path) {
            Ok(path.to_path_buf())
        } else {
            Err(LabError::NginxNotFound)
        };
    }
    if let Ok(path) = which::which("nginx") {
        return Ok(path);
    }
    SBIN_DIRS
        .iter()
        .map(|dir| Path::new(dir).join("nginx"))
        .find(|path| is_executable(path))
        .ok_or(LabError::NginxNotFound)
}

/// Whether `path` is a regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_binary_must_exist() {
        let err = find_binary(Some(Path::new("/no/such/nginx")));
        assert!(matches!(err, Err(LabError::NginxNotFound)));
        assert_eq!(
            find_binary(Some(Path::new("/bin/sh"))).ok(),
            Some(PathBuf::from("/bin/sh"))
        );
    }

    #[test]
    fn a_bad_config_is_reported_on_one_line() {
        let binary = match find_binary(None) {
            Ok(binary) => binary,
            Err(_) if std::env::var("FIX502_SKIP_NGINX").as_deref() == Ok("1") => return,
            Err(e) => panic!("{e}; set FIX502_SKIP_NGINX=1 to skip tests that need nginx"),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, "events {}\nbogus_directive on;\n").expect("write");
        let instance = Instance {
            binary: &binary,
            prefix: dir.path(),
            config: &config,
            error_log: &dir.path().join("error.log"),
            pid_file: &dir.path().join("nginx.pid"),
            hosts: None,
        };
        let test = instance.test_config().expect("nginx -t");
        assert!(!test.ok);
        let listen = SocketAddr::from(([127, 0, 0, 1], 9));
        let err = instance
            .start(listen)
            .expect_err("start must fail")
            .to_string();
        assert!(err.starts_with("nginx failed: "), "{err}");
        assert!(
            err.contains("unknown directive \"bogus_directive\""),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn run_bounded_captures_stderr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let (status, out) = run_bounded(cmd, dir.path(), None, "sh").expect("run");
        assert_eq!(status.code(), Some(3));
        assert_eq!(out, "oops\n");
    }

    #[test]
    fn a_namespaced_command_sees_its_own_hosts_file() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let before = std::fs::read(ETC_HOSTS).expect("read /etc/hosts");
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.9 ns.lab.fix502.test\n").expect("write");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "cat /etc/hosts >&2; readlink /proc/self/ns/mnt >&2"]);
        let (status, out) = run_bounded(cmd, dir.path(), Some(&hosts), "sh").expect("run");
        assert!(status.success(), "{out}");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("127.0.0.9 ns.lab.fix502.test"), "{out}");
        let ours = std::fs::read_link("/proc/self/ns/mnt").expect("own namespace");
        assert_ne!(lines.next(), ours.to_str(), "{out}");
        assert_eq!(std::fs::read(ETC_HOSTS).expect("read /etc/hosts"), before);
    }
}
