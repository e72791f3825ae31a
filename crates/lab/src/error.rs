//! The lab's error type: why a scenario could not be set up, queried or torn down.

use std::io;

/// Why the lab could not do what was asked.
///
/// Every variant displays as one line that says what went wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// No nginx binary was found (neither the one passed in nor one on PATH or in the sbin dirs).
    #[error(
        "nginx binary not found (searched PATH, /usr/sbin, /sbin, /usr/local/sbin, /usr/local/nginx/sbin): install nginx or pass its path"
    )]
    NginxNotFound,
    /// The scenario (named here) only works when run as root.
    #[error("lab scenario {0} needs root: run it as root")]
    NeedsRoot(&'static str),
    /// The scenario cannot be reproduced on this machine (e.g. no IPv6 loopback).
    #[error("lab scenario not supported here: {0}")]
    Unsupported(String),
    /// No scenario has this name.
    #[error("unknown lab scenario {0:?} (see the list of scenarios)")]
    UnknownScenario(String),
    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the lab was doing, e.g. `write /tmp/fix502-lab-x/conf/nginx.conf`.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// nginx refused to start or exited with an error; `stderr` is what it printed, on one line.
    #[error("nginx failed: {stderr}")]
    NginxFailed {
        /// nginx's own messages, lines joined with `; `.
        stderr: String,
    },
    /// No php-fpm binary was found (scenarios with a real PHP-FPM pool need one).
    #[error(
        "php-fpm binary not found (searched PATH for php-fpm and /usr/sbin, /usr/local/sbin for php-fpm*): install php-fpm"
    )]
    PhpFpmNotFound,
    /// php-fpm exited at start; `log` is the end of its error log, on one line.
    #[error("php-fpm failed: {log}")]
    PhpFpmFailed {
        /// php-fpm's own messages, lines joined with `; `.
        log: String,
    },
    /// Generating or loading the lab's TLS certificates failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The lab's nginx is not running (or its pid file names another process), so it cannot be
    /// signalled.
    #[error("the lab's nginx is not running: {0}")]
    NginxNotRunning(String),
    /// Something did not happen within its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl LabError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// Builds [`LabError::NginxFailed`] from nginx's multi-line output.
    pub(crate) fn nginx_failed(output: &str) -> Self {
        Self::NginxFailed {
            stderr: one_line(output),
        }
    }
}

/// Joins the non-empty lines of `text` with `; ` so that it fits in a one-line message.
pub(crate) fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        "(no output)".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_failed_is_one_line() {
        let err = LabError::nginx_failed("nginx: [emerg] a\n\nnginx: test failed\n");
        assert_eq!(
            err.to_string(),
            "nginx failed: nginx: [emerg] a; nginx: test failed"
        );
        assert_eq!(
            LabError::nginx_failed("").to_string(),
            "nginx failed: (no output)"
        );
    }

    #[test]
    fn io_error_names_what_failed() {
        let err = LabError::io("read /x", io::Error::from(io::ErrorKind::NotFound));
        assert!(err.to_string().starts_with("read /x: "));
    }
}
