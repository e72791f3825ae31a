//! The error type of this crate: a probe that could not run at all.
//!
//! A property of the target (refused, timed out, NXDOMAIN, permission denied on a socket)
//! is never a [`ProbeError`]; it is part of the probe's answer.

/// A probe could not be carried out (the machine's state could not be read).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Reading a file or calling the OS failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "reading /proc/net/unix".
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `/proc` file could not be read or parsed.
    #[error("/proc: {0}")]
    Proc(String),
}

impl ProbeError {
    /// Builds a [`ProbeError::Proc`] from a procfs error, with context.
    pub(crate) fn proc(what: &str, err: &procfs::ProcError) -> Self {
        Self::Proc(format!("{what}: {err}"))
    }
}
