//! Step 4, the network: resolve host-name upstreams the way nginx did (getaddrinfo at start
//! or reload) and with an in-process resolver (hickory, no /etc/hosts), ping non-loopback
//! hosts when permitted (informational only), and look for what makes local connects fail
//! (IPv6 off on `lo` for `[::1]` upstreams, TIME_WAIT piling up against the port range).

use std::net::{IpAddr, SocketAddr};

use fix502_nginx::view::Peer;
use fix502_probe::icmp::PingOutcome;
use fix502_probe::{dns, icmp, listeners};

use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Facts, join_all};
use crate::report::{Cause, Finding, Severity, StepId};

/// Check id: name resolution of host-name upstreams.
pub const DNS: &str = "network.dns";
/// Check id: ICMP echo to non-loopback upstream hosts.
pub const ICMP: &str = "network.icmp";
/// Check id: local address and port availability.
pub const LOCAL_PORTS: &str = "network.local-ports";

/// The checks of this step.
pub static CHECKS: [FnCheck; 3] = [
    FnCheck::new(DNS, StepId::Network, dns_check),
    FnCheck::new(ICMP, StepId::Network, icmp_check),
    FnCheck::new(LOCAL_PORTS, StepId::Network, local_ports),
];

fn host_names(facts: &Facts) -> Vec<(String, u16, String)> {
    let mut v: Vec<(String, u16, String)> = Vec::new();
    for e in &facts.endpoints {
        if let Peer::Inet { host, port } = &e.peer
            && host.parse::<IpAddr>().is_err()
            && !v.iter().any(|(h, p, _)| h == host && p == port)
        {
            v.push((host.clone(), *port, e.display.clone()));
        }
    }
    v
}

fn dns_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let names = host_names(facts);
        if names.is_empty() {
            return vec![Finding::new(
                DNS,
                Severity::Info,
                "no host-name upstreams: nothing to resolve",
            )];
        }
        let timeout = facts.timeout();
        let results = join_all(names.iter().map(|(host, port, _)| async move {
            let system = dns::resolve_system(host, *port, timeout).await;
            // localhost and names in /etc/hosts are nginx's business only through getaddrinfo.
            let direct = if host == "localhost" {
                None
            } else {
                Some(dns::resolve_with(host, &[], timeout).await)
            };
            (system, direct)
        }))
        .await;
        let mut out = Vec::new();
        for ((host, _, display), (system, direct)) in names.iter().zip(results) {
            let endpoint = facts.endpoints.iter().find(|e| &e.display == display);
            let at = endpoint.and_then(|e| e.location());
            match system {
                Ok(answer) => {
                    let addrs: Vec<String> = answer.addrs.iter().map(|a| a.to_string()).collect();
                    let mut f = Finding::new(
                        DNS,
                        Severity::Info,
                        format!(
                            "{host} resolves to {} (getaddrinfo, as nginx at start/reload)",
                            addrs.join(", ")
                        ),
                    )
                    .upstream(display.clone())
                    .at(at.clone());
                    if host == "localhost" && answer.addrs.len() > 1 {
                        f = Finding::new(DNS, Severity::Warning, format!("{host} resolves to {}: nginx makes one peer of each and tries them in turn", addrs.join(", ")))
                            .upstream(display.clone())
                            .at(at.clone())
                            .fix("Use an explicit address (127.0.0.1 or [::1]) where the app listens");
                    }
                    if let Some(Ok(direct)) = &direct {
                        let mut a = answer.addrs.clone();
                        let mut b = direct.addrs.clone();
                        a.sort();
                        b.sort();
                        if a != b {
                            f = f.evidence(format!("the DNS servers of /etc/resolv.conf answer {}: /etc/hosts or nsswitch differ", b.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")));
                        }
                    }
                    out.push(f);
                }
                Err(e) => {
                    let mut f = Finding::new(
                        DNS,
                        Severity::Error,
                        format!("{host} cannot be resolved: {e}"),
                    )
                    .cause(Cause::UpstreamDns)
                    .upstream(display.clone())
                    .at(at);
                    if let Some(d) = &direct {
                        f = f.evidence(match d {
                            Ok(a) => format!("resolv.conf's DNS servers answer {:?}", a.addrs),
                            Err(e) => format!("resolv.conf's DNS servers: {e}"),
                        });
                    }
                    out.push(f.fix(format!("Fix the name or its DNS record; nginx resolves {host} only at start and reload")));
                }
            }
        }
        out
    })
}

fn icmp_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut hosts: Vec<IpAddr> = Vec::new();
        for e in &facts.endpoints {
            if let Peer::Inet { host, .. } = &e.peer
                && let Ok(ip) = host.parse::<IpAddr>()
                && !ip.is_loopback()
                && !hosts.contains(&ip)
            {
                hosts.push(ip);
            }
        }
        if hosts.is_empty() {
            return vec![Finding::new(
                ICMP,
                Severity::Info,
                "every upstream is on this host: ping has nothing to add",
            )];
        }
        let timeout = facts.timeout();
        let results = join_all(hosts.iter().map(|ip| icmp::ping(*ip, timeout))).await;
        hosts
            .iter()
            .zip(results)
            .map(|(ip, r)| match r {
                PingOutcome::Reply { rtt } => Finding::new(ICMP, Severity::Info, format!("{ip} answers ping in {:.1} ms", rtt.as_secs_f64() * 1000.0)),
                PingOutcome::Timeout => Finding::new(ICMP, Severity::Info, format!("{ip} does not answer ping within {timeout:?} (many networks drop ICMP; TCP connect is what counts)")),
                PingOutcome::NotPermitted { hint } => Finding::new(ICMP, Severity::Info, format!("ping to {ip} skipped: {hint}")),
                PingOutcome::Error(e) => Finding::new(ICMP, Severity::Info, format!("ping to {ip} skipped: {e}")),
            })
            .collect()
    })
}

fn local_ports(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        let v6_loopback = facts
            .endpoints
            .iter()
            .filter(|e| matches!(&e.peer, Peer::Inet { host, .. } if host == "::1"))
            .collect::<Vec<_>>();
        if !v6_loopback.is_empty() && listeners::ipv6_disabled_on_lo() == Some(true) {
            for e in v6_loopback {
                out.push(
                    Finding::new(LOCAL_PORTS, Severity::Error, format!("nginx connects to {} but IPv6 is disabled on lo (EADDRNOTAVAIL)", e.display))
                        .cause(Cause::UpstreamWrongAddress)
                        .upstream(e.display.clone())
                        .at(e.location())
                        .evidence("/proc/sys/net/ipv6/conf/lo/disable_ipv6 = 1")
                        .fix("Use 127.0.0.1 in the upstream, or enable IPv6 on lo: sysctl -w net.ipv6.conf.lo.disable_ipv6=0"),
                );
            }
        }
        let Some((low, high)) = listeners::local_port_range() else {
            return out;
        };
        let range = usize::from(high.saturating_sub(low)) + 1;
        for e in &facts.endpoints {
            let Peer::Inet { host, port } = &e.peer else {
                continue;
            };
            let Ok(ip) = host.parse::<IpAddr>() else {
                continue;
            };
            let dst = SocketAddr::new(ip, *port);
            match listeners::time_wait_count(dst) {
                Ok(n) if n * 2 >= range => out.push(
                    Finding::new(LOCAL_PORTS, Severity::Error, format!("{n} connections to {dst} wait in TIME_WAIT; only {range} local ports ({low}-{high})"))
                        .cause(Cause::PortExhaustion)
                        .upstream(e.display.clone())
                        .at(e.location())
                        .fix("Keep upstream connections alive: `keepalive 32;` in the upstream block with `proxy_http_version 1.1;` and `proxy_set_header Connection \"\";`")
                        .fix("Widen the range: sysctl -w net.ipv4.ip_local_port_range=\"1024 65000\""),
                ),
                Ok(_) => {}
                Err(err) => {
                    out.push(Finding::new(LOCAL_PORTS, Severity::Info, format!("cannot count TIME_WAIT sockets to {dst}: {err}")));
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(Finding::new(
                LOCAL_PORTS,
                Severity::Info,
                format!(
                    "local ports: no TIME_WAIT pile-up against the {range} ports of {low}-{high}"
                ),
            ));
        }
        out
    })
}
