//! The error logs: each file's summary within the window (with its rotated history), the
//! systemd journal when nginx logs to stderr or syslog, and where the running master's
//! stderr goes.

use std::path::{Path, PathBuf};

use fix502_nginx::logscan::{self, LogSummary, ScanOptions};

use super::logfile::admit;

/// The [`LogRead::path`] of the lines read from the systemd journal.
pub const JOURNAL_SOURCE: &str = "the systemd journal (_COMM=nginx)";

/// The error-log summary of one file, or why it could not be read.
#[derive(Debug, Clone)]
pub struct LogRead {
    /// The file.
    pub path: PathBuf,
    /// The summary, or the one-line reason it could not be read.
    pub summary: Result<LogSummary, String>,
    /// Parts of its rotated history that were skipped or damaged, one line each.
    pub notes: Vec<String>,
    /// What the lines are when the file is not nginx's own log (Docker's json-file log
    /// of a container, its stderr lines); `None` for an error-log file.
    pub source: Option<String>,
}

/// Reads each error log's window (blocking: call from `spawn_blocking`), the journal's
/// lines when `journal` is set, and the stderr lines of Docker's json-file log when
/// `docker` is a data root and a container id. Each log is its name and the file to open:
/// they differ for standard input (`-`), which the user piped in and is read without the
/// admission rules.
pub(super) fn read_all(
    paths: Vec<(PathBuf, PathBuf)>,
    opts: &ScanOptions,
    journal: bool,
    docker: Option<(PathBuf, String)>,
    roots: &[PathBuf],
) -> Vec<LogRead> {
    let mut reads: Vec<LogRead> = paths
        .into_iter()
        .map(|(path, file)| {
            let admitted = if path == file {
                admit(&path, roots)
            } else {
                Ok(())
            };
            match admitted
                .and_then(|()| logscan::scan_history(&file, opts).map_err(|e| e.to_string()))
            {
                Ok((summary, notes)) => LogRead {
                    path,
                    summary: Ok(summary),
                    notes,
                    source: None,
                },
                Err(e) => LogRead {
                    path,
                    summary: Err(e),
                    notes: Vec::new(),
                    source: None,
                },
            }
        })
        .collect();
    if journal {
        reads.push(LogRead {
            path: PathBuf::from(JOURNAL_SOURCE),
            summary: crate::journal::scan(opts),
            notes: Vec::new(),
            source: None,
        });
    }
    if let Some((root, id)) = docker {
        reads.push(super::dockerlog::read(&root, &id, opts));
    }
    reads
}

/// Where the running nginx master's standard error goes (what `error_log stderr` writes to),
/// from the target of `/proc/PID/fd/2`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StderrTarget {
    /// A socket: under systemd, the journal's stream socket.
    Socket,
    /// A pipe or FIFO: a service manager, supervisor or container runtime reads it.
    Pipe,
    /// `/dev/null`: the messages are discarded.
    Null,
    /// A terminal: nginx runs in the foreground of a shell.
    Terminal(PathBuf),
    /// A file.
    File(PathBuf),
    /// Something else, as the kernel names it.
    Other(String),
}

impl StderrTarget {
    /// Reads where process `pid`'s fd 2 points; `None` when it cannot be read (not root, or
    /// the process is gone) or the fd is closed.
    pub fn of(pid: u32) -> Option<Self> {
        let link = std::fs::read_link(format!("/proc/{pid}/fd/2")).ok()?;
        Some(Self::from_link(&link))
    }

    /// Classifies a `/proc/PID/fd/N` link target.
    pub fn from_link(link: &Path) -> Self {
        let text = link.to_string_lossy();
        if text.starts_with("socket:[") {
            Self::Socket
        } else if text.starts_with("pipe:[") {
            Self::Pipe
        } else if link == Path::new("/dev/null") {
            Self::Null
        } else if text.starts_with("/dev/pts/") || text.starts_with("/dev/tty") {
            Self::Terminal(link.to_path_buf())
        } else if text.starts_with('/') {
            let fifo = std::fs::metadata(link).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_fifo()
            });
            if fifo {
                Self::Pipe
            } else {
                Self::File(link.to_path_buf())
            }
        } else {
            Self::Other(text.into_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_targets() {
        let of = |s: &str| StderrTarget::from_link(Path::new(s));
        assert_eq!(of("socket:[48213]"), StderrTarget::Socket);
        assert_eq!(of("pipe:[9912]"), StderrTarget::Pipe);
        assert_eq!(of("/dev/null"), StderrTarget::Null);
        assert_eq!(
            of("/dev/pts/3"),
            StderrTarget::Terminal(PathBuf::from("/dev/pts/3"))
        );
        assert_eq!(
            of("/var/log/nginx/stderr.log"),
            StderrTarget::File(PathBuf::from("/var/log/nginx/stderr.log"))
        );
        assert_eq!(
            of("anon_inode:[eventfd]"),
            StderrTarget::Other("anon_inode:[eventfd]".to_owned())
        );
        // Our own stderr is something of these, whatever runs the tests.
        assert!(StderrTarget::of(std::process::id()).is_some());
    }
}
