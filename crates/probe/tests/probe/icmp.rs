//! ping() to loopback: Reply with the right privileges, NotPermitted without.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use fix502_probe::{PingOutcome, ping};

use crate::support::{assert_child_passed, is_child, is_root, run_as_nobody, skip};

/// Whether this process may open an ICMP socket: root, or one of its groups inside
/// `net.ipv4.ping_group_range`.
fn may_ping() -> bool {
    if is_root() {
        return true;
    }
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap_or_default();
    let mut parts = range.split_whitespace().map(|p| p.parse::<u32>());
    let (Some(Ok(low)), Some(Ok(high))) = (parts.next(), parts.next()) else {
        return false;
    };
    let mut groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    groups.push(nix::unistd::getegid().as_raw());
    groups.iter().any(|g| (low..=high).contains(g))
}

fn assert_expected(outcome: &PingOutcome) {
    if may_ping() {
        assert!(matches!(outcome, PingOutcome::Reply { .. }), "{outcome:?}");
    } else {
        match outcome {
            PingOutcome::NotPermitted { hint } => {
                assert!(hint.contains("net.ipv4.ping_group_range"), "{hint}");
                assert!(hint.contains("CAP_NET_RAW"), "{hint}");
                assert!(!hint.contains("net.ipv6"), "{hint}");
            }
            other => panic!("expected NotPermitted, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn ping_loopback_v4() {
    let outcome = ping(IpAddr::V4(Ipv4Addr::LOCALHOST), Duration::from_secs(2)).await;
    assert_expected(&outcome);
}

#[tokio::test]
async fn ping_loopback_v6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        skip("no ::1 on lo");
        return;
    }
    let outcome = ping(IpAddr::V6(Ipv6Addr::LOCALHOST), Duration::from_secs(2)).await;
    assert_expected(&outcome);
}

/// The unprivileged side, run as nobody in a child when we are root.
#[tokio::test]
async fn ping_as_nobody_follows_ping_group_range() {
    if is_child() {
        let outcome = ping(IpAddr::V4(Ipv4Addr::LOCALHOST), Duration::from_secs(2)).await;
        assert_expected(&outcome);
        return;
    }
    if !is_root() {
        skip("ping_as_nobody_follows_ping_group_range needs root (to run a child as nobody)");
        return;
    }
    let output = run_as_nobody("icmp::ping_as_nobody_follows_ping_group_range", &[]);
    assert_child_passed(&output);
}
