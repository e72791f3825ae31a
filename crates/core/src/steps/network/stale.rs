//! The stale-address part of the `network.dns` check: nginx resolves the host names of
//! static pass targets and `upstream` servers only at start and reload, so when its error
//! log shows it connecting to an address a name no longer has, the name moved.
//!
//! What belongs here: the addresses nginx logged (`logged_peers`), when they tell of a
//! stale name (`is_stale`, `workers_started`, `dynamic_ports`), the finding's wording
//! (`stale_finding`), and their tests. `dns.rs` resolves the names and calls these.

use std::net::{IpAddr, SocketAddr};

use fix502_nginx::resolver::literal_host;
use fix502_probe::dns::DnsAnswer;
use jiff::civil::DateTime;

use super::names::{DEFAULT_PORT, DNS, join, variable_pass_targets};
use crate::causes::Cause;
use crate::facts::{Facts, LogRead};
use crate::report::{Finding, Location, Severity};

/// An address nginx connected to, from the error log's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LoggedPeer {
    /// The address (the group's peer).
    pub(super) addr: SocketAddr,
    /// Error-log lines in the window that name it.
    pub(super) lines: u64,
    /// The latest time such a line was written.
    pub(super) last_seen: DateTime,
    /// One such line.
    pub(super) sample: Option<String>,
}

/// Every IP:port that error-log groups name as their peer, with their line counts
/// (groups of the same address added up). Host names and unix sockets are left out.
pub(super) fn logged_peers(logs: &[LogRead]) -> Vec<LoggedPeer> {
    let mut out: Vec<LoggedPeer> = Vec::new();
    for read in logs {
        let Ok(summary) = &read.summary else {
            continue;
        };
        for group in &summary.groups {
            let Some(addr) = group
                .failure
                .peer
                .as_deref()
                .filter(|_| !group.failure.unix)
                .and_then(|p| p.parse::<SocketAddr>().ok())
            else {
                continue;
            };
            match out.iter_mut().find(|p| p.addr == addr) {
                Some(known) => {
                    known.lines = known.lines.saturating_add(group.count);
                    known.last_seen = known.last_seen.max(group.last_seen);
                }
                None => out.push(LoggedPeer {
                    addr,
                    lines: group.count,
                    last_seen: group.last_seen,
                    sample: group.samples.last().cloned(),
                }),
            }
        }
    }
    out
}

/// Whether nginx connecting to `logged` for a name with port `port` that now resolves to
/// `now` means the name moved: same port, an address the name no longer has.
pub(super) fn is_stale(logged: SocketAddr, port: u16, now: &[IpAddr]) -> bool {
    let ip = logged.ip().to_canonical();
    logged.port() == port && !now.is_empty() && !now.iter().any(|a| a.to_canonical() == ip)
}

/// When the newest worker started (local time, as the error log writes it): lines from
/// before were written by workers that may have resolved the names differently.
pub(super) fn workers_started(facts: &Facts) -> Option<DateTime> {
    let master = facts.discovery.master.as_ref()?;
    let newest = master
        .workers
        .iter()
        .map(|w| w.start_time)
        .max()
        .unwrap_or(master.start_time);
    let seconds = i64::try_from(newest).ok()?;
    let zoned = jiff::Timestamp::from_second(seconds)
        .ok()?
        .to_zoned_datetime(jiff::tz::TimeZone::system());
    Some(zoned.datetime())
}

/// The ports variable pass targets may connect to, where their address is resolved per
/// request; `None` when one of them has a variable host and a resolver (it may connect
/// anywhere, so no logged address can be attributed to a static name).
pub(super) fn dynamic_ports(facts: &Facts) -> Option<Vec<u16>> {
    let mut ports = Vec::new();
    for target in variable_pass_targets(facts) {
        match literal_host(&target.raw, DEFAULT_PORT) {
            Some((_, port)) => ports.push(port),
            None if target.settings.get("resolver").is_some() => return None,
            None => {}
        }
    }
    Some(ports)
}

/// The finding for an address nginx connects to for `host` that the name no longer has.
pub(super) fn stale_finding(
    host: &str,
    port: u16,
    now: &DnsAnswer,
    peer: &LoggedPeer,
    at: Option<Location>,
    reload: &str,
) -> Finding {
    let now_text = join(&now.addrs);
    let mut f = Finding::new(
        DNS,
        Severity::Error,
        format!(
            "nginx connects to {} for {host}:{port}, which now resolves to {now_text}: it resolved the name at start/reload",
            peer.addr
        ),
    )
    .cause(Cause::UPSTREAM_STALE_DNS)
    .headlined()
    .upstream(peer.addr)
    .at(at)
    .evidence(format!(
        "{host} resolves to {now_text} now, as nginx's master would resolve it"
    ))
    .evidence(format!(
        "{} error-log lines in the window name {} (the latest at {})",
        peer.lines, peer.addr, peer.last_seen
    ));
    if let Some(sample) = &peer.sample {
        f = f.evidence(sample.clone());
    }
    f.fix(format!("Reload nginx to re-resolve: {reload}"))
        .fix("For addresses that change, use `resolver` with a variable in proxy_pass, or `server ... resolve` (nginx ≥ 1.27.3)")
}

#[cfg(test)]
mod tests {
    use super::super::dns::dns_check;
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn logged_peers_add_up_per_address() {
        let text = [
            connect_failed("2025/03/14 09:33:40", "127.0.0.2:8080"),
            connect_failed("2025/03/14 09:33:41", "127.0.0.2:8080"),
            connect_failed("2025/03/14 09:33:42", "[::2]:8080"),
            "2025/03/14 09:33:43 [error] 7#7: *13 no resolver defined to resolve app.internal, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", host: \"x\"\n".to_owned(),
        ]
        .concat();
        let peers = logged_peers(&log_reads(&text));
        assert_eq!(peers.len(), 2, "{peers:?}");
        assert_eq!(peers[0].addr, addr("127.0.0.2:8080"));
        assert_eq!(peers[0].lines, 2);
        assert_eq!(peers[0].last_seen.to_string(), "2025-03-14T09:33:41");
        assert!(
            peers[0]
                .sample
                .as_deref()
                .unwrap()
                .contains("127.0.0.2:8080")
        );
        assert_eq!(peers[1].addr, addr("[::2]:8080"));
    }

    #[test]
    fn stale_means_same_port_and_an_address_the_name_lost() {
        let now = [ip("127.0.0.3")];
        assert!(is_stale(addr("127.0.0.2:8080"), 8080, &now));
        assert!(!is_stale(addr("127.0.0.3:8080"), 8080, &now));
        assert!(!is_stale(addr("127.0.0.2:9000"), 8080, &now));
        assert!(!is_stale(addr("127.0.0.2:8080"), 8080, &[]));
        // IPv4-mapped forms are the same address.
        assert!(!is_stale(addr("[::ffff:127.0.0.3]:8080"), 8080, &now));
    }

    #[tokio::test]
    async fn stale_address_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        // localhost resolves to loopback 127.0.0.1 (and maybe ::1), never 127.0.0.2.
        let facts = facts_for(
            dir.path(),
            "events {}\nhttp { server { listen 127.0.0.1:1; location / { proxy_pass http://localhost:18080; } } }\n",
            &[
                connect_failed(&now_text(), "127.0.0.2:18080"),
                connect_failed(&now_text(), "127.0.0.2:18080"),
                // Another port: not this name's.
                connect_failed(&now_text(), "127.0.0.5:9000"),
            ]
            .concat(),
        );
        let findings = dns_check(&facts).await;
        let stale: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.cause == Some(Cause::UPSTREAM_STALE_DNS))
            .collect();
        assert_eq!(stale.len(), 1, "{findings:#?}");
        let f = stale[0];
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("127.0.0.2:18080")
        );
        assert!(
            f.message.starts_with("nginx connects to 127.0.0.2:18080 for localhost:18080, which now resolves to 127.0.0.1"),
            "{}",
            f.message
        );
        assert!(
            f.message
                .ends_with(": it resolved the name at start/reload")
        );
        assert!(
            f.evidence
                .iter()
                .any(|e| e.starts_with("2 error-log lines in the window name 127.0.0.2:18080"))
        );
        assert!(
            f.fix[0].starts_with("Reload nginx to re-resolve: ") && f.fix[0].ends_with("-s reload"),
            "{:?}",
            f.fix
        );
        assert_eq!(f.location.as_ref().unwrap().line, 2);
    }

    #[tokio::test]
    async fn an_ip_endpoint_or_a_shared_port_is_never_stale() {
        let dir = tempfile::tempdir().unwrap();
        let facts = facts_for(
            dir.path(),
            "events {}\nhttp { server { listen 127.0.0.1:1;\n location / { proxy_pass http://localhost:18080; }\n location /b/ { proxy_pass http://127.0.0.2:18080; } } }\n",
            &connect_failed(&now_text(), "127.0.0.2:18080"),
        );
        let findings = dns_check(&facts).await;
        assert!(
            findings
                .iter()
                .all(|f| f.cause != Some(Cause::UPSTREAM_STALE_DNS)),
            "{findings:#?}"
        );
    }
}
