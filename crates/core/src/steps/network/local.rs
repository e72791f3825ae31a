//! Two small checks of the network step: ICMP echo to upstream hosts that are not on
//! this host (informational only), and what makes local connects fail (IPv6 off on `lo`
//! for `[::1]` upstreams, TIME_WAIT piling up against the local port range).

use std::net::{IpAddr, SocketAddr};

use fix502_nginx::view::Peer;
use fix502_probe::icmp::PingOutcome;
use fix502_probe::{icmp, listeners};

use crate::causes::Cause;
use crate::check::FindingsFuture;
use crate::facts::{Facts, join_all};
use crate::report::{CheckId, Evidence, Finding, Severity, StepId};

/// Check id: ICMP echo to non-loopback upstream hosts.
pub const ICMP: CheckId = CheckId::new("network.icmp", StepId::Network, Evidence::Live);
/// Check id: local address and port availability.
pub const LOCAL_PORTS: CheckId =
    CheckId::new("network.local-ports", StepId::Network, Evidence::Live);

pub(super) fn icmp_check(facts: &Facts) -> FindingsFuture<'_> {
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

pub(super) fn local_ports(facts: &Facts) -> FindingsFuture<'_> {
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
                        .cause(Cause::UPSTREAM_WRONG_ADDRESS)
                        .upstream(&e.peer)
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
        // The socket table once for every upstream.
        let waiting = listeners::TimeWait::read_in(facts.standpoint().net_pid());
        for e in &facts.endpoints {
            let Peer::Inet { host, port } = &e.peer else {
                continue;
            };
            let Ok(ip) = host.parse::<IpAddr>() else {
                continue;
            };
            let dst = SocketAddr::new(ip, *port);
            match waiting.as_ref().map(|w| w.towards(dst)) {
                Ok(n) if n * 2 >= range => out.push(
                    Finding::new(LOCAL_PORTS, Severity::Error, format!("{n} connections to {dst} wait in TIME_WAIT; only {range} local ports ({low}-{high})"))
                        .cause(Cause::PORT_EXHAUSTION)
                        .upstream(&e.peer)
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
