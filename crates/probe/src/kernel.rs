//! The few kernel settings a 502 diagnosis reads from `/proc/sys`.
//!
//! Each function returns `None` when the file is absent or unreadable; the diagnosis then
//! simply has no evidence from it.

use std::fs;

const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const LO_DISABLE_IPV6: &str = "/proc/sys/net/ipv6/conf/lo/disable_ipv6";
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// The ephemeral port range, `net.ipv4.ip_local_port_range` (e.g. `(32768, 60999)`).
pub fn local_port_range() -> Option<(u16, u16)> {
    parse_port_range(&fs::read_to_string(PORT_RANGE).ok()?)
}

/// Whether IPv6 is disabled on `lo` (`net.ipv6.conf.lo.disable_ipv6`): when it is, a
/// connect to `[::1]` fails with `EADDRNOTAVAIL` (99). `None` when the file is absent
/// (IPv6 compiled out or disabled at boot) or unreadable.
pub fn ipv6_disabled_on_lo() -> Option<bool> {
    parse_flag(&fs::read_to_string(LO_DISABLE_IPV6).ok()?)
}

/// The cap on any listen backlog, `net.core.somaxconn` (compare with PHP-FPM's
/// `listen.backlog`).
pub fn somaxconn() -> Option<u32> {
    fs::read_to_string(SOMAXCONN).ok()?.trim().parse().ok()
}

/// Parses `"32768\t60999\n"`.
fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_whitespace();
    let low = parts.next()?.parse().ok()?;
    let high = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((low, high))
}

/// Parses a `0`/`1` sysctl.
fn parse_flag(text: &str) -> Option<bool> {
    match text.trim() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_text() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 65535"), Some((1024, 65535)));
        assert_eq!(parse_port_range("1024"), None);
        assert_eq!(parse_port_range("1024 70000"), None);
        assert_eq!(parse_port_range("1 2 3"), None);
    }

    #[test]
    fn flag_text() {
        assert_eq!(parse_flag("1\n"), Some(true));
        assert_eq!(parse_flag("0\n"), Some(false));
        assert_eq!(parse_flag("yes"), None);
    }

    #[test]
    fn live_values_are_sane() {
        let (low, high) = local_port_range().expect("/proc/sys/net/ipv4/ip_local_port_range");
        assert!(low <= high);
        let lo_file_exists = std::path::Path::new(LO_DISABLE_IPV6).exists();
        assert_eq!(ipv6_disabled_on_lo().is_some(), lo_file_exists);
        assert!(somaxconn().expect("/proc/sys/net/core/somaxconn") > 0);
    }
}
