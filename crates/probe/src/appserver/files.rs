//! The files an app server names: config files read whole but bounded, regular files
//! opened without blocking on a FIFO or terminal, paths relative to the server's working
//! directory or prefix, and paths as the process means them (`/proc/self`, `/dev/stderr`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use super::types::Setting;
use crate::error::ProbeError;

/// Largest config file read (PHP-FPM, uWSGI ini, gunicorn/hypercorn config).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a whole config file, refusing files over [`MAX_CONFIG_BYTES`].
pub(super) fn read_config_file(path: &Path) -> Result<String, ProbeError> {
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
pub(super) fn open_regular(path: &Path) -> io::Result<File> {
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
pub(super) fn as_seen_by(path: &Path, pid: i32) -> PathBuf {
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

/// `path` relative to `base` unless absolute.
pub(super) fn relative_to(path: &str, base: Option<&Path>) -> PathBuf {
    let path = Path::new(path);
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    }
}

/// The log file named by setting `name`, unless it is stderr (`-`).
pub(super) fn log_path(settings: &[Setting], name: &str, cwd: Option<&Path>) -> Option<PathBuf> {
    let value = &settings.iter().rev().find(|s| s.name == name)?.value;
    (value != "-" && !value.is_empty()).then(|| relative_to(value, cwd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appserver::scan_log;

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
}
