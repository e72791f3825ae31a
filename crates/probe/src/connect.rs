//! One `connect()` to an upstream (TCP or unix socket), bounded by a timeout.
//!
//! This is the probe that reproduces nginx's `connect() failed (111: ...)` lines: the
//! outcome is classified by errno number (never by errno text, which differs between libc
//! implementations), and our own timeout is kept apart from the kernel's `ETIMEDOUT`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use tokio::net::UnixStream;

/// How one connect attempt ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectOutcome {
    /// The connection was established (and closed again by the probe).
    Connected,
    /// `ECONNREFUSED` (111): nothing listens there; for a unix path, a stale socket file or
    /// a path that is not a socket.
    Refused,
    /// Our own timeout elapsed before the connect finished (SYNs dropped, filtered port,
    /// full TCP accept queue). Not the kernel's `ETIMEDOUT`, which is [`Self::Other`].
    TimedOut,
    /// `ENOENT` (2): the unix socket path does not exist.
    NotFound,
    /// `EACCES` (13): no write permission on the unix socket or no search permission on a
    /// parent directory; for TCP usually SELinux.
    PermissionDenied,
    /// `EAGAIN` (11): the unix socket's listen backlog is full (all backend workers busy).
    WouldBlock,
    /// `ENETUNREACH` (101) or `ENETDOWN` (100): no route to that network.
    NetUnreachable,
    /// `EHOSTUNREACH` (113) or `EHOSTDOWN` (112): the host does not answer or a firewall
    /// rejects with host-prohibited.
    HostUnreachable,
    /// `EADDRNOTAVAIL` (99): e.g. `[::1]` with IPv6 disabled on `lo`, or no free local port.
    AddressNotAvailable,
    /// Any other failure.
    Other {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description of the error.
        message: String,
    },
}

impl ConnectOutcome {
    /// Classifies an I/O error from `connect()` by its OS error number.
    pub fn from_io_error(err: &io::Error) -> Self {
        let Some(errno) = err.raw_os_error() else {
            return Self::Other {
                errno: None,
                message: err.to_string(),
            };
        };
        match Errno::from_raw(errno) {
            Errno::ECONNREFUSED => Self::Refused,
            Errno::ENOENT => Self::NotFound,
            Errno::EACCES => Self::PermissionDenied,
            Errno::EAGAIN => Self::WouldBlock,
            Errno::ENETUNREACH | Errno::ENETDOWN => Self::NetUnreachable,
            Errno::EHOSTUNREACH | Errno::EHOSTDOWN => Self::HostUnreachable,
            Errno::EADDRNOTAVAIL => Self::AddressNotAvailable,
            other => Self::Other {
                errno: Some(errno),
                message: other.desc().to_lowercase(),
            },
        }
    }

    /// The Linux errno number of this outcome, if it is an errno.
    ///
    /// Classes that cover two numbers report the common one: 101 for
    /// [`Self::NetUnreachable`], 113 for [`Self::HostUnreachable`]. [`Self::Connected`] and
    /// [`Self::TimedOut`] (our own timer) have none.
    pub fn errno(&self) -> Option<i32> {
        let errno = match self {
            Self::Connected | Self::TimedOut => return None,
            Self::Refused => Errno::ECONNREFUSED,
            Self::NotFound => Errno::ENOENT,
            Self::PermissionDenied => Errno::EACCES,
            Self::WouldBlock => Errno::EAGAIN,
            Self::NetUnreachable => Errno::ENETUNREACH,
            Self::HostUnreachable => Errno::EHOSTUNREACH,
            Self::AddressNotAvailable => Errno::EADDRNOTAVAIL,
            Self::Other { errno, .. } => return *errno,
        };
        Some(errno as i32)
    }

    /// True when the connection was established.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected)
    }
}

impl fmt::Display for ConnectOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Connected => return f.write_str("connected"),
            Self::TimedOut => return f.write_str("timed out (no answer within the probe timeout)"),
            Self::Refused => "connection refused",
            Self::NotFound => "no such file or directory",
            Self::PermissionDenied => "permission denied",
            Self::WouldBlock => "resource temporarily unavailable, listen backlog full",
            Self::NetUnreachable => "network unreachable",
            Self::HostUnreachable => "host unreachable",
            Self::AddressNotAvailable => "cannot assign requested address",
            Self::Other { errno, message } => {
                return match errno {
                    Some(n) => write!(f, "{message} ({n})"),
                    None => f.write_str(message),
                };
            }
        };
        match self.errno() {
            Some(n) => write!(f, "{text} ({n})"),
            None => f.write_str(text),
        }
    }
}

/// The result of one connect probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectReport {
    /// The target as nginx writes it: `127.0.0.1:8000`, `[::1]:8000`, `unix:/path`.
    pub target: String,
    /// How the attempt ended.
    pub outcome: ConnectOutcome,
    /// How long the attempt took (about the timeout when it timed out).
    pub elapsed: Duration,
}

/// Connects to `addr` over TCP once, giving up after `timeout`.
///
/// The connection is closed again right away; nothing is sent.
pub async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> ConnectReport {
    let start = Instant::now();
    let connect = async { crate::netns::tcp_socket(&addr).await?.connect(addr).await };
    let outcome = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(_stream)) => ConnectOutcome::Connected,
        Ok(Err(err)) => ConnectOutcome::from_io_error(&err),
        Err(_) => ConnectOutcome::TimedOut,
    };
    let report = ConnectReport {
        target: addr.to_string(),
        outcome,
        elapsed: start.elapsed(),
    };
    tracing::debug!(target = %report.target, outcome = %report.outcome, "tcp connect probe");
    report
}

/// Connects to the unix stream socket at `path` once, giving up after `timeout`.
///
/// The connect is non-blocking, as nginx's is, so a full listen backlog shows as
/// [`ConnectOutcome::WouldBlock`] (`EAGAIN`) instead of a hang. A path that exists but is
/// not a socket, and a stale socket file nobody listens on, are both
/// [`ConnectOutcome::Refused`] on Linux; use [`crate::inspect_socket_path`] to tell them
/// apart.
pub async fn connect_unix(path: &Path, timeout: Duration) -> ConnectReport {
    let start = Instant::now();
    let outcome = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(Ok(_stream)) => ConnectOutcome::Connected,
        Ok(Err(err)) => ConnectOutcome::from_io_error(&err),
        Err(_) => ConnectOutcome::TimedOut,
    };
    let report = ConnectReport {
        target: format!("unix:{}", path.display()),
        outcome,
        elapsed: start.elapsed(),
    };
    tracing::debug!(target = %report.target, outcome = %report.outcome, "unix connect probe");
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_of(errno: i32) -> ConnectOutcome {
        ConnectOutcome::from_io_error(&io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn errno_numbers_map_to_classes() {
        assert_eq!(outcome_of(111), ConnectOutcome::Refused);
        assert_eq!(outcome_of(2), ConnectOutcome::NotFound);
        assert_eq!(outcome_of(13), ConnectOutcome::PermissionDenied);
        assert_eq!(outcome_of(11), ConnectOutcome::WouldBlock);
        assert_eq!(outcome_of(101), ConnectOutcome::NetUnreachable);
        assert_eq!(outcome_of(100), ConnectOutcome::NetUnreachable);
        assert_eq!(outcome_of(113), ConnectOutcome::HostUnreachable);
        assert_eq!(outcome_of(112), ConnectOutcome::HostUnreachable);
        assert_eq!(outcome_of(99), ConnectOutcome::AddressNotAvailable);
        let other = outcome_of(104);
        assert_eq!(other.errno(), Some(104));
        assert_eq!(other.to_string(), "connection reset by peer (104)");
        // The kernel's own connect timeout is not our timeout.
        assert_eq!(outcome_of(110).errno(), Some(110));
        assert_ne!(outcome_of(110), ConnectOutcome::TimedOut);
    }

    #[test]
    fn display_carries_the_errno_number() {
        assert_eq!(
            ConnectOutcome::Refused.to_string(),
            "connection refused (111)"
        );
        assert_eq!(
            ConnectOutcome::WouldBlock.to_string(),
            "resource temporarily unavailable, listen backlog full (11)"
        );
        assert_eq!(ConnectOutcome::Connected.to_string(), "connected");
        assert_eq!(ConnectOutcome::TimedOut.errno(), None);
        assert!(ConnectOutcome::Connected.is_connected());
        assert!(!ConnectOutcome::Refused.is_connected());
    }

    #[test]
    fn errors_without_errno_are_other() {
        let err = io::Error::new(io::ErrorKind::InvalidInput, "path too long");
        assert_eq!(
            ConnectOutcome::from_io_error(&err),
            ConnectOutcome::Other {
                errno: None,
                message: "path too long".to_owned()
            }
        );
    }
}
