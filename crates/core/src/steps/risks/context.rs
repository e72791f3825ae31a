//! What the rules need to know about the host, read by the check so that the rules stay
//! pure: nginx's version, what `localhost` resolves to, the workers' file limit, nginx's
//! listening sockets, and the nameservers a `resolver` fix would name.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use fix502_nginx::view::Peer;
use fix502_probe::listeners::ListenerKind;

use super::written::is_localhost;
use crate::facts::Facts;

/// What the rules need to know about the host, gathered by the check (so the rules stay
/// pure and testable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostContext {
    /// nginx's version as numbers, when known.
    pub version: Option<(u32, u32, u32)>,
    /// What getaddrinfo gives for `localhost`, as nginx sees it (AF_UNSPEC with
    /// AI_ADDRCONFIG), in order; empty when unknown.
    pub localhost_addrs: Vec<IpAddr>,
    /// The soft RLIMIT_NOFILE of the running workers (the lowest one, from
    /// `/proc/PID/limits`); `None` when nginx does not run or it cannot be read.
    pub worker_nofile: Option<u64>,
    /// TCP sockets the nginx master and workers listen on now, if known.
    pub nginx_listening: Vec<SocketAddr>,
    /// The DNS servers of `/etc/resolv.conf`, for the `resolver` directive a fix suggests.
    pub nameservers: Vec<IpAddr>,
}

/// Gathers the [`HostContext`] of this run.
pub(super) async fn gather(facts: &Facts) -> HostContext {
    let uses_localhost = facts
        .endpoints
        .iter()
        .any(|e| matches!(&e.peer, Peer::Inet { host, .. } if is_localhost(host)));
    let localhost_addrs = if uses_localhost {
        match fix502_probe::dns::resolve_system("localhost", 80, facts.timeout()).await {
            Ok(answer) => {
                let ipv6 = tokio::task::spawn_blocking(has_non_loopback_ipv6)
                    .await
                    .ok()
                    .flatten();
                addrconfig_filter(answer.addrs, ipv6)
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot resolve localhost");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let workers = facts.worker_pids();
    let pids = facts.nginx_pids();
    let (worker_nofile, nameservers) = tokio::task::spawn_blocking(move || {
        (
            workers_nofile(&workers),
            read_nameservers(Path::new("/etc/resolv.conf")),
        )
    })
    .await
    .unwrap_or_default();
    let nginx_listening = match facts.listeners().await {
        Ok(all) => all
            .iter()
            .filter(|l| l.kind == ListenerKind::Tcp)
            .filter(|l| l.pid.is_some_and(|p| pids.contains(&p)))
            .filter_map(|l| l.socket_addr)
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list listening sockets");
            Vec::new()
        }
    };
    HostContext {
        version: facts.nginx_version(),
        localhost_addrs,
        worker_nofile,
        nginx_listening,
        nameservers,
    }
}

/// The lowest soft open-file limit of these processes (`u64::MAX` for unlimited).
fn workers_nofile(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .filter_map(|pid| fix502_probe::host::open_files_limit(Path::new("/"), *pid))
        .map(|(soft, _)| soft.unwrap_or(u64::MAX))
        .min()
}

/// Reads at most 64 KiB of a small system file.
fn read_small(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The `nameserver` addresses of a resolv.conf (scoped IPv6 addresses, which `resolver`
/// cannot take, are skipped by the parser).
fn read_nameservers(path: &Path) -> Vec<IpAddr> {
    read_small(path)
        .map(|text| {
            fix502_probe::dns::resolv_conf_nameservers(&text)
                .iter()
                .map(SocketAddr::ip)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an IPv6 address other than `::1` is configured (`/proc/net/if_inet6`).
fn has_non_loopback_ipv6() -> Option<bool> {
    let text = read_small(Path::new("/proc/net/if_inet6"))?;
    Some(text.lines().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|a| a != "00000000000000000000000000000001")
    }))
}

/// glibc's AI_ADDRCONFIG, which nginx passes: IPv6 answers are kept only when a
/// non-loopback IPv6 address is configured. `ipv6` is `None` when unknown (kept as is).
fn addrconfig_filter(addrs: Vec<IpAddr>, ipv6: Option<bool>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in addrs {
        if (a.is_ipv4() || ipv6 != Some(false)) && !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Small helpers shared by the rules.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addrconfig() {
        let both: Vec<IpAddr> = vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        assert_eq!(addrconfig_filter(both.clone(), Some(true)).len(), 2);
        assert_eq!(
            addrconfig_filter(both.clone(), Some(false)),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(addrconfig_filter(both, None).len(), 2);
    }

    #[test]
    fn nameservers_of_resolv_conf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch a\nnameserver ::1\n",
        )
        .unwrap();
        assert_eq!(
            read_nameservers(&path),
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(read_nameservers(&dir.path().join("missing")).is_empty());
    }
}
