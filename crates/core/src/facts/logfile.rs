//! Which files may be read as logs. A log path from the command line or the config is read
//! only when it is a regular file whose real path (after symlinks) lies where logs are: under
//! `/var/log`, nginx's prefix, or the directory the path itself names. A log symlinked to a
//! file elsewhere (`error.log -> /etc/shadow`), a FIFO or a device is named and skipped,
//! never read, so no line of it can be shown as evidence.

use std::path::{Path, PathBuf};

/// Where log files may really be, besides the directory each log path names.
pub(super) fn log_roots(prefix: Option<&Path>) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/var/log")];
    roots.extend(prefix.map(Path::to_path_buf));
    roots
        .into_iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect()
}

/// `Ok` when `path` may be read as a log; else why it is skipped (`it is a FIFO, ...`). A
/// missing file is `Ok`: the scanner says it is missing.
pub(super) fn admit(path: &Path, roots: &[PathBuf]) -> Result<(), String> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(format!("it is {what}, not a log file: skipped, not read"));
    }
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    let own_dir = path.parent().and_then(|d| std::fs::canonicalize(d).ok());
    if roots
        .iter()
        .chain(own_dir.as_ref())
        .any(|r| real.starts_with(r))
    {
        return Ok(());
    }
    Err(format!(
        "it resolves to {}, outside the places logs are (/var/log, nginx's prefix, its own directory): skipped, not read",
        real.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_linked_elsewhere_or_not_a_file_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("shadow"), "root:$6$x:1::::::\n").unwrap();
        std::fs::write(logs.join("error.log"), "").unwrap();
        std::os::unix::fs::symlink(secrets.join("shadow"), logs.join("linked.log")).unwrap();
        std::os::unix::fs::symlink(logs.join("error.log"), logs.join("current.log")).unwrap();
        let roots = log_roots(None);
        assert_eq!(admit(&logs.join("error.log"), &roots), Ok(()));
        assert_eq!(admit(&logs.join("current.log"), &roots), Ok(()));
        assert_eq!(admit(&logs.join("missing.log"), &roots), Ok(()));
        let linked = admit(&logs.join("linked.log"), &roots).unwrap_err();
        assert!(linked.contains("outside the places logs are"), "{linked}");
        // The same file under the prefix is a log.
        let roots = log_roots(Some(dir.path()));
        assert_eq!(admit(&logs.join("linked.log"), &roots), Ok(()));
        let fifo = logs.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(admit(&fifo, &roots).unwrap_err().contains("a FIFO"));
        assert!(
            admit(Path::new("/dev/zero"), &roots)
                .unwrap_err()
                .contains("a device")
        );
    }
}
