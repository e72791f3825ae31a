//! Step 4, the network: name resolution as nginx does it, ping non-loopback hosts when
//! permitted (informational only), and what makes local connects fail (IPv6 off on `lo`
//! for `[::1]` upstreams, TIME_WAIT piling up against the port range).
//!
//! This file holds the check ids, [`CHECKS`], the two small checks `network.icmp` and
//! `network.local-ports`, and the helpers the parts of `network.dns` share. Name
//! resolution (`network.dns`) lives in `dns.rs`, except the stale-address part (the error
//! log shows nginx connecting to an address a name no longer has), in `stale.rs`. Test
//! fixtures shared by their tests live here too. The host checks of this step (SELinux,
//! AppArmor, worker files) are in [`super::host`].

use std::net::{IpAddr, SocketAddr};

use fix502_nginx::view::{PassTarget, Peer, TargetAddress};
use fix502_probe::icmp::PingOutcome;
use fix502_probe::{icmp, listeners};

use crate::causes::Cause;
use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Facts, join_all};
use crate::report::{CheckId, Evidence, Finding, Severity, StepId};

mod dns;
mod stale;

/// Check id: name resolution of host-name upstreams.
pub const DNS: CheckId = CheckId::new("network.dns", StepId::Network, Evidence::Live);
/// Check id: ICMP echo to non-loopback upstream hosts.
pub const ICMP: CheckId = CheckId::new("network.icmp", StepId::Network, Evidence::Live);
/// Check id: local address and port availability.
pub const LOCAL_PORTS: CheckId =
    CheckId::new("network.local-ports", StepId::Network, Evidence::Live);

/// The checks of this step.
pub static CHECKS: [FnCheck; 3] = [
    FnCheck::new(DNS, dns::dns_check),
    FnCheck::new(ICMP, icmp_check),
    FnCheck::new(LOCAL_PORTS, local_ports),
];

/// The port assumed for a variable pass argument without one and without an `http(s)://`
/// scheme (nginx's other modules have no default port; it then logs `no port in upstream`).
const DEFAULT_PORT: u16 = 80;

/// The pass targets whose address has variables: nginx resolves them per request.
fn variable_pass_targets(facts: &Facts) -> impl Iterator<Item = &PassTarget> {
    facts
        .view
        .targets
        .iter()
        .filter(|t| matches!(t.address, TargetAddress::Variable(_)))
}

/// Addresses, comma-separated.
fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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

/// Fixtures shared by the tests of `network.dns`.
#[cfg(test)]
mod fixtures {
    use std::net::{IpAddr, SocketAddr};
    use std::path::{Path, PathBuf};

    use fix502_nginx::logscan::{self, ScanOptions};

    use crate::facts::{Facts, LogRead};

    pub(super) fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    pub(super) fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// An error-log line at `time` (nginx's local-time format).
    pub(super) fn connect_failed(time: &str, peer: &str) -> String {
        format!(
            "{time} [error] 7#7: *12 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://{peer}/\", host: \"localhost\"\n"
        )
    }

    pub(super) fn now_text() -> String {
        jiff::ZonedDateTime::now()
            .datetime()
            .strftime("%Y/%m/%d %H:%M:%S")
            .to_string()
    }

    pub(super) fn log_reads(text: &str) -> Vec<LogRead> {
        let summary = logscan::scan(std::io::Cursor::new(text), &ScanOptions::default()).unwrap();
        vec![LogRead {
            path: PathBuf::from("/var/log/nginx/error.log"),
            summary: Ok(summary),
            notes: Vec::new(),
        }]
    }

    pub(super) fn facts_for(dir: &Path, conf: &str, log: &str) -> Facts {
        let config = dir.join("nginx.conf");
        std::fs::write(&config, conf).unwrap();
        let error_log = dir.join("error.log");
        std::fs::write(&error_log, log).unwrap();
        let discovery = crate::discovery::Discovery {
            binary: None,
            build: Default::default(),
            config,
            prefix: Some(dir.to_path_buf()),
            master: None,
            other_masters: Vec::new(),
            via: Default::default(),
            notes: Vec::new(),
        };
        let options = crate::options::Options {
            error_logs: vec![error_log],
            ..crate::options::Options::default()
        };
        Facts::new(options, discovery)
    }
}
