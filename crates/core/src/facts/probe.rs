//! The live connect probe of one endpoint, as nginx's worker would connect, and the small
//! concurrency helper the facts and checks share.

use std::time::Duration;

use fix502_nginx::view::Peer;
use fix502_probe::connect::{self, ConnectReport};
use fix502_probe::unixsock::{self, Access, Identity, SocketFileInfo};

/// What the live probes found for one endpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ProbeResult {
    /// A TCP endpoint: each address it resolves to, probed.
    Tcp {
        /// Address and connect result.
        attempts: Vec<ConnectReport>,
        /// Set when the name could not be resolved.
        resolve_error: Option<String>,
    },
    /// A unix socket.
    Unix {
        /// The path and its parents.
        info: Box<SocketFileInfo>,
        /// Connecting as fix502's own user.
        connect: ConnectReport,
        /// Whether the worker user may connect, when known.
        access: Option<Access>,
    },
}

impl ProbeResult {
    /// Whether nginx's worker would get through now.
    pub fn ok(&self) -> bool {
        match self {
            Self::Tcp {
                attempts,
                resolve_error,
            } => {
                resolve_error.is_none()
                    && !attempts.is_empty()
                    && attempts.iter().all(|a| a.outcome.is_connected())
            }
            Self::Unix {
                connect, access, ..
            } => connect.outcome.is_connected() && !matches!(access, Some(Access::Denied { .. })),
        }
    }
}

/// Runs futures concurrently on the current task and returns their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Probes one peer as nginx would reach it; `identity` adds the worker's access check, and
/// host names resolve as getaddrinfo does inside the mount namespace of `nginx_pid` (its own
/// /etc/hosts and resolv.conf when it runs in another one).
pub async fn probe_endpoint(
    peer: &Peer,
    timeout: Duration,
    identity: Option<&Identity>,
    nginx_pid: Option<u32>,
) -> ProbeResult {
    match peer {
        Peer::Unix(path) => {
            let info = Box::new(unixsock::inspect_socket_path(path));
            let connect = connect::connect_unix(path, timeout).await;
            let access = identity.map(|id| unixsock::may_connect(id, &info));
            ProbeResult::Unix {
                info,
                connect,
                access,
            }
        }
        Peer::Inet { host, port } => {
            let addrs: Result<Vec<std::net::SocketAddr>, String> =
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => Ok(vec![std::net::SocketAddr::new(ip, *port)]),
                    Err(_) => fix502_probe::dns::resolve_as(nginx_pid, host, *port, timeout)
                        .await
                        .map(|a| {
                            a.addrs
                                .into_iter()
                                .map(|ip| std::net::SocketAddr::new(ip, *port))
                                .collect()
                        })
                        .map_err(|e| e.to_string()),
                };
            match addrs {
                Ok(addrs) => {
                    let attempts =
                        join_all(addrs.into_iter().map(|a| connect::connect_tcp(a, timeout))).await;
                    ProbeResult::Tcp {
                        attempts,
                        resolve_error: None,
                    }
                }
                Err(e) => ProbeResult::Tcp {
                    attempts: Vec::new(),
                    resolve_error: Some(e),
                },
            }
        }
    }
}

/// Where to speak to an endpoint whose connect probe succeeded: its first reachable address.
pub(super) fn reachable_target(
    peer: &Peer,
    probe: &ProbeResult,
) -> Option<fix502_probe::stream::Endpoint> {
    use fix502_probe::stream::Endpoint as Target;
    match (peer, probe) {
        (Peer::Unix(path), ProbeResult::Unix { .. }) if probe.ok() => {
            Some(Target::Unix(path.clone()))
        }
        (_, ProbeResult::Tcp { attempts, .. }) => attempts
            .iter()
            .find(|a| a.outcome.is_connected())
            .and_then(|a| a.target.parse().ok())
            .map(Target::Tcp),
        _ => None,
    }
}
