//! One actor at a time: a run that acts (start, reload, restart) first takes an exclusive
//! `flock` on a state file, so that two fix502 runs never act on the same host at once. The
//! lock is let go when the run ends (or its process dies: the kernel drops the lock).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// How long an acting run waits for another one to finish.
pub const WAIT: Duration = Duration::from_secs(60);
/// How often it looks again.
const POLL: Duration = Duration::from_millis(100);

/// The exclusive lock of the acting run; dropping it lets the next run act.
#[derive(Debug)]
pub struct ActingLock {
    _lock: Flock<File>,
}

impl ActingLock {
    /// The state file: `/run/lock/fix502.lock` when it can be written there (root), else in
    /// `$XDG_RUNTIME_DIR`, else `fix502-UID.lock` in the temp dir.
    pub fn path() -> PathBuf {
        let run_lock = Path::new("/run/lock");
        if nix::unistd::geteuid().is_root() && run_lock.is_dir() {
            return run_lock.join("fix502.lock");
        }
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
            && dir.is_dir()
        {
            return dir.join("fix502.lock");
        }
        std::env::temp_dir().join(format!("fix502-{}.lock", nix::unistd::geteuid()))
    }

    /// Takes the lock, waiting at most `wait` for another acting run to finish (blocking).
    /// `Err` says why this run may not act.
    pub fn acquire(wait: Duration) -> Result<Self, String> {
        let path = Self::path();
        let deadline = Instant::now() + wait;
        // Each pass either takes the lock, gives up at the deadline, or sleeps one POLL.
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut lock) => {
                    // Who holds it, for a person looking at the file.
                    let _ = lock.set_len(0);
                    let _ = writeln!(*lock, "{}", std::process::id());
                    return Ok(Self { _lock: lock });
                }
                Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    std::thread::sleep(POLL);
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    return Err(format!(
                        "another fix502 run (pid {}) is acting on this host; waited {} s for it ({})",
                        holder.trim(),
                        wait.as_secs(),
                        path.display()
                    ));
                }
                Err((_, e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_actor_waits_then_gives_up() {
        let first = ActingLock::acquire(Duration::ZERO).expect("first lock");
        let holder = std::fs::read_to_string(ActingLock::path()).unwrap();
        assert_eq!(holder.trim(), std::process::id().to_string());
        // flock locks are per open file: a second open in this process conflicts too.
        let second = ActingLock::acquire(Duration::from_millis(250));
        assert!(second.is_err_and(|e| e.contains("another fix502 run")));
        drop(first);
        assert!(ActingLock::acquire(Duration::ZERO).is_ok());
    }
}
