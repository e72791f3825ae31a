//! Name resolution the two ways nginx does it, each bounded by a timeout.
//!
//! - [`resolve_system`]: getaddrinfo (`/etc/hosts`, nsswitch, search domains), which is
//!   what nginx uses for names in `proxy_pass`/`server` at start and reload.
//! - [`resolve_with`]: direct A and AAAA queries to chosen nameservers, without
//!   `/etc/hosts` or search domains, which is what nginx's own `resolver` directive does
//!   at run time. It tells NXDOMAIN, empty answers, SERVFAIL, REFUSED and timeouts apart.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use serde::{Deserialize, Serialize};

/// Why a name did not resolve.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DnsFailure {
    /// The name does not exist (NXDOMAIN; getaddrinfo: "Name or service not known").
    #[error("host not found (NXDOMAIN)")]
    NxDomain,
    /// The name exists but has no A or AAAA records.
    #[error("no A or AAAA records for the name")]
    NoRecords,
    /// No answer within the timeout.
    #[error("timed out waiting for the DNS server")]
    Timeout,
    /// The server answered SERVFAIL.
    #[error("server failure (SERVFAIL)")]
    ServFail,
    /// The server refused the query (REFUSED), e.g. recursion not allowed for us.
    #[error("query refused (REFUSED)")]
    Refused,
    /// Anything else, described in one line.
    #[error("{0}")]
    Other(String),
}

/// The addresses a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// The addresses in the order they were returned, without duplicates.
    pub addrs: Vec<IpAddr>,
    /// How long the lookup took.
    pub elapsed: Duration,
}

/// Resolves `host` through getaddrinfo (`tokio::net::lookup_host`), as nginx does at start
/// and reload. `port` only shapes the query (use the upstream's port).
///
/// A timeout abandons the wait; the blocking lookup thread finishes on its own.
pub async fn resolve_system(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<DnsAnswer, DnsFailure> {
    let start = Instant::now();
    let result = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(DnsFailure::Timeout),
        Ok(Err(err)) => Err(classify_getaddrinfo(&err.to_string())),
        Ok(Ok(addrs)) => answer(addrs.map(|a| a.ip()), start),
    };
    tracing::debug!(host, ?result, "getaddrinfo probe");
    result
}

/// Classifies getaddrinfo's error text. The Rust standard library keeps only the text of
/// the `EAI_*` code, so this matches the glibc and musl wordings.
fn classify_getaddrinfo(message: &str) -> DnsFailure {
    const NXDOMAIN: [&str; 2] = ["Name or service not known", "Name does not resolve"];
    const NODATA: [&str; 1] = ["No address associated with hostname"];
    if NXDOMAIN.iter().any(|text| message.contains(text)) {
        DnsFailure::NxDomain
    } else if NODATA.iter().any(|text| message.contains(text)) {
        DnsFailure::NoRecords
    } else {
        other(message)
    }
}

/// [`DnsFailure::Other`] with the text folded onto one line.
fn other(text: &str) -> DnsFailure {
    DnsFailure::Other(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Queries A and AAAA for `host` directly at `nameservers` (UDP, TCP on truncation), like
/// nginx's `resolver` directive: no `/etc/hosts`, no search domains. An empty
/// `nameservers` uses the ones in `/etc/resolv.conf`.
///
/// Succeeds when either family has addresses (A first). `timeout` bounds the whole call.
pub async fn resolve_with(
    host: &str,
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<DnsAnswer, DnsFailure> {
    let start = Instant::now();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(DnsAnswer {
            addrs: vec![ip],
            elapsed: start.elapsed(),
        });
    }
    let servers = if nameservers.is_empty() {
        match hickory_resolver::system_conf::read_system_conf() {
            Ok((config, _opts)) => config.name_servers,
            Err(err) => {
                return Err(other(&format!("cannot read /etc/resolv.conf: {err}")));
            }
        }
    } else {
        nameservers.iter().map(|addr| name_server(*addr)).collect()
    };
    if servers.is_empty() {
        return Err(other("no nameservers configured"));
    }

    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    );
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.use_hosts_file = ResolveHosts::Never;
    let resolver = builder
        .build()
        .map_err(|err| other(&format!("cannot build the resolver: {err}")))?;

    // Fully qualified, so no search domain is ever appended.
    let name = if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    };
    let result = match tokio::time::timeout(timeout, resolver.lookup_ip(name.as_str())).await {
        Err(_) => Err(DnsFailure::Timeout),
        Ok(Err(err)) => Err(classify_net_error(&err)),
        Ok(Ok(lookup)) => answer(lookup.iter(), start),
    };
    tracing::debug!(host, ?nameservers, ?result, "dns probe");
    result
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

fn classify_net_error(err: &NetError) -> DnsFailure {
    if err.is_nx_domain() {
        return DnsFailure::NxDomain;
    }
    if err.is_no_records_found() {
        return DnsFailure::NoRecords;
    }
    match err {
        NetError::Timeout => DnsFailure::Timeout,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => DnsFailure::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => DnsFailure::Refused,
        err => other(&err.to_string()),
    }
}

/// Dedups (keeping the first occurrence) and turns an empty list into `NoRecords`.
fn answer(addrs: impl Iterator<Item = IpAddr>, start: Instant) -> Result<DnsAnswer, DnsFailure> {
    let mut unique: Vec<IpAddr> = Vec::new();
    for addr in addrs {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    if unique.is_empty() {
        return Err(DnsFailure::NoRecords);
    }
    Ok(DnsAnswer {
        addrs: unique,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getaddrinfo_texts() {
        assert_eq!(
            classify_getaddrinfo("failed to lookup address information: Name or service not known"),
            DnsFailure::NxDomain
        );
        assert_eq!(
            classify_getaddrinfo("failed to lookup address information: Name does not resolve"),
            DnsFailure::NxDomain
        );
        assert_eq!(
            classify_getaddrinfo(
                "failed to lookup address information: No address associated with hostname"
            ),
            DnsFailure::NoRecords
        );
        assert!(matches!(
            classify_getaddrinfo("failed to lookup address information: Temporary failure"),
            DnsFailure::Other(_)
        ));
    }

    #[test]
    fn answers_keep_order_and_drop_duplicates() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let got = answer([a, b, a].into_iter(), Instant::now()).unwrap();
        assert_eq!(got.addrs, vec![a, b]);
        assert_eq!(
            answer(std::iter::empty(), Instant::now()),
            Err(DnsFailure::NoRecords)
        );
    }

    #[test]
    fn failures_display_on_one_line() {
        for failure in [
            DnsFailure::NxDomain,
            DnsFailure::NoRecords,
            DnsFailure::Timeout,
            DnsFailure::ServFail,
            DnsFailure::Refused,
            DnsFailure::Other("x".to_owned()),
        ] {
            let text = failure.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
    }
}
