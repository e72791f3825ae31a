//! `--error-log -`: the error log piped on standard input (`docker logs web 2>&1 | fix502
//! --error-log -`). It is read once into an anonymous in-memory file (a memfd, never on
//! disk), so that every check can open it again by path like any log file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use nix::sys::memfd::{MFdFlags, memfd_create};

/// The most standard input read: more is refused, since the recent end would be lost.
pub const MAX_BYTES: u64 = 1 << 30;

/// The `--error-log` value that means standard input.
pub const STDIN: &str = "-";

/// The piped log, kept open for the whole run (its path dies with it).
pub struct StdinLog {
    file: File,
}

impl StdinLog {
    /// Reads standard input to its end into a memfd. Fails when it holds more than
    /// [`MAX_BYTES`] or cannot be read.
    pub fn capture() -> anyhow::Result<Self> {
        let fd = memfd_create("fix502-stdin-error-log", MFdFlags::MFD_CLOEXEC)
            .context("cannot hold standard input in memory (memfd_create)")?;
        let mut file = File::from(fd);
        let mut input = io::stdin().lock().take(MAX_BYTES + 1);
        let copied = io::copy(&mut input, &mut file).context("cannot read standard input")?;
        if copied > MAX_BYTES {
            bail!(
                "--error-log -: standard input holds more than 1 GiB; pipe less of it (docker logs --since 2h …)"
            );
        }
        file.flush()
            .context("cannot hold standard input in memory")?;
        Ok(Self { file })
    }

    /// A path that opens the captured log (`/proc/self/fd/N`).
    pub fn path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}
