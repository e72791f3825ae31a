//! One ICMP echo (ping) to an address, informational only.
//!
//! Many networks drop ICMP, so a missing reply never decides a diagnosis; the TCP connect
//! probe does. Sending ICMP needs root, `CAP_NET_RAW`, or a group inside
//! `net.ipv4.ping_group_range` (which also governs ICMPv6 ping sockets).

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

/// How one echo request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PingOutcome {
    /// An echo reply came back.
    Reply {
        /// Round-trip time.
        rtt: Duration,
    },
    /// No reply within the timeout.
    Timeout,
    /// This process may not open an ICMP socket.
    NotPermitted {
        /// How to allow it.
        hint: String,
    },
    /// Sending failed (no route, network down, ...), described in one line.
    Error(String),
}

/// Distinguishes concurrent pings to the same address (surge-ping refuses identical
/// identifier and sequence pairs).
static NEXT_IDENT: AtomicU16 = AtomicU16::new(0);

const PAYLOAD: [u8; 16] = *b"fix502 ping ....";

/// Sends one ICMP (or ICMPv6) echo request to `addr` and waits up to `timeout` for the
/// reply.
pub async fn ping(addr: IpAddr, timeout: Duration) -> PingOutcome {
    if crate::netns::current().is_none() {
        return ping_here(addr, timeout).await;
    }
    // surge-ping makes its own socket: the ping runs whole in the namespace.
    crate::netns::run(ping_here(addr, timeout))
        .await
        .unwrap_or_else(|e| PingOutcome::Error(e.to_string()))
}

/// [`ping`] from this thread's network namespace.
async fn ping_here(addr: IpAddr, timeout: Duration) -> PingOutcome {
    let config = match addr {
        IpAddr::V4(_) => Config::default(),
        IpAddr::V6(_) => Config::builder().kind(ICMP::V6).build(),
    };
    let client = match Client::new(&config) {
        Ok(client) => client,
        Err(err) if is_permission_error(&err) => {
            return PingOutcome::NotPermitted {
                hint: permission_hint(),
            };
        }
        Err(err) => return PingOutcome::Error(one_line(&err.to_string())),
    };
    // The low bits of the pid keep us apart from other pingers on a raw socket.
    let ident =
        (std::process::id() as u16).wrapping_add(NEXT_IDENT.fetch_add(1, Ordering::Relaxed));
    let mut pinger = client.pinger(addr, PingIdentifier(ident)).await;
    pinger.timeout(timeout);
    let outcome = match tokio::time::timeout(timeout, pinger.ping(PingSequence(0), &PAYLOAD)).await
    {
        Err(_) | Ok(Err(SurgeError::Timeout { .. })) => PingOutcome::Timeout,
        Ok(Ok((_packet, rtt))) => PingOutcome::Reply { rtt },
        Ok(Err(SurgeError::IOError(err))) if is_permission_error(&err) => {
            PingOutcome::NotPermitted {
                hint: permission_hint(),
            }
        }
        Ok(Err(err)) => PingOutcome::Error(one_line(&err.to_string())),
    };
    tracing::debug!(%addr, ?outcome, "icmp probe");
    outcome
}

fn is_permission_error(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::PermissionDenied
        || err.raw_os_error() == Some(nix::errno::Errno::EPERM as i32)
}

/// Our own remediation text: surge-ping's suggests `net.ipv6.ping_group_range` for
/// IPv6, which does not exist.
fn permission_hint() -> String {
    "ICMP needs root or CAP_NET_RAW (setcap cap_net_raw+ep on the binary), or a group \
     inside net.ipv4.ping_group_range (e.g. sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"; \
     this IPv4 setting also allows ICMPv6 ping sockets)"
        .to_owned()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_names_the_real_knobs_only() {
        let hint = permission_hint();
        assert!(hint.contains("net.ipv4.ping_group_range"));
        assert!(hint.contains("CAP_NET_RAW"));
        assert!(!hint.contains("net.ipv6.ping_group_range"));
        assert!(!hint.contains('\n'));
    }

    #[test]
    fn permission_errors() {
        assert!(is_permission_error(&io::Error::from_raw_os_error(13)));
        assert!(is_permission_error(&io::Error::from_raw_os_error(1)));
        assert!(!is_permission_error(&io::Error::from_raw_os_error(101)));
    }

    #[test]
    fn one_line_collapses_whitespace() {
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
