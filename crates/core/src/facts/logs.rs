//! The error logs: each file's summary within the window (with its rotated history), and
//! the systemd journal when nginx logs to stderr or syslog.

use std::path::PathBuf;

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
}

/// Reads each error log's window (blocking: call from `spawn_blocking`), and the journal's
/// lines when `journal` is set.
pub(super) fn read_all(
    paths: Vec<PathBuf>,
    opts: &ScanOptions,
    journal: bool,
    roots: &[PathBuf],
) -> Vec<LogRead> {
    let mut reads: Vec<LogRead> = paths
        .into_iter()
        .map(|path| {
            match admit(&path, roots)
                .and_then(|()| logscan::scan_history(&path, opts).map_err(|e| e.to_string()))
            {
                Ok((summary, notes)) => LogRead {
                    path,
                    summary: Ok(summary),
                    notes,
                },
                Err(e) => LogRead {
                    path,
                    summary: Err(e),
                    notes: Vec::new(),
                },
            }
        })
        .collect();
    if journal {
        reads.push(LogRead {
            path: PathBuf::from(JOURNAL_SOURCE),
            summary: crate::journal::scan(opts),
            notes: Vec::new(),
        });
    }
    reads
}
