//! The access logs, each read with the `log_format` the config gives it, across its rotated
//! history when the format has a time.

use std::path::{Path, PathBuf};

use fix502_nginx::accesslog::{self, AccessOptions, AccessReport, FormatSuggestion};
use fix502_nginx::logformat::LogFormat;
use fix502_nginx::view::ConfigView;

use super::logfile::admit;
use crate::discovery::under_prefix;

/// One access log as read.
#[derive(Debug, Clone)]
pub struct AccessRead {
    /// The file (the live one; rotations are read with it).
    pub path: PathBuf,
    /// The name of the `log_format` it was read with.
    pub format: String,
    /// What it says, or why it could not be read.
    pub report: Result<AccessReport, String>,
    /// Parts of its history that were skipped or damaged (a cut-short `.gz`), one line each.
    pub notes: Vec<String>,
    /// What to change so the log says more, when its format lacks variables.
    pub suggestion: Option<FormatSuggestion>,
}

/// Reads every access log of the run in its format (blocking: call from `spawn_blocking`).
pub(super) fn read_all(
    paths: &[(PathBuf, PathBuf)],
    named: &[(PathBuf, Option<String>)],
    formats: &[LogFormat],
    opts: &AccessOptions,
    roots: &[PathBuf],
) -> Vec<AccessRead> {
    paths
        .iter()
        .map(|(path, file)| {
            let name = named
                .iter()
                .find(|(p, _)| p == path)
                .and_then(|(_, n)| n.as_deref());
            let format = LogFormat::find(formats, name)
                .cloned()
                .unwrap_or_else(LogFormat::combined);
            // A file seen through nginx's root is nginx's own; the rules are for the host's.
            let admitted = if path == file {
                admit(path, roots)
            } else {
                Ok(())
            };
            let read = admitted.and_then(|()| read_one(file, &format, opts));
            let (report, notes) = match read {
                Ok((r, n)) => (Ok(r), n),
                Err(e) => (Err(e), Vec::new()),
            };
            let suggestion =
                accesslog::suggest_format(&format, &path.display().to_string(), formats);
            AccessRead {
                path: path.clone(),
                format: format.name.clone(),
                report,
                notes,
                suggestion,
            }
        })
        .collect()
}

/// One log: across its history from the window start when the format has a time, else the
/// tail of the live file.
fn read_one(
    path: &Path,
    format: &LogFormat,
    opts: &AccessOptions,
) -> Result<(AccessReport, Vec<String>), String> {
    if format.stamp().is_none() {
        return accesslog::scan_file_with(path, format, opts)
            .map(|r| (r, Vec::new()))
            .map_err(|e| e.to_string());
    }
    accesslog::scan_history_with(path, format, opts).map_err(|e| e.to_string())
}

/// The `(path, format name)` of every `access_log` of the config, paths as nginx opens them.
pub(super) fn named_logs(
    view: &ConfigView,
    prefix: Option<&Path>,
) -> Vec<(PathBuf, Option<String>)> {
    view.access_logs
        .iter()
        .map(|l| {
            (
                under_prefix(Path::new(&l.path), prefix),
                l.level_or_format.clone(),
            )
        })
        .collect()
}
