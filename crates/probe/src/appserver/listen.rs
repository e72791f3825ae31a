//! Listen matching: whether a server listening on an address (a PHP-FPM `listen` value)
//! accepts connections to an upstream as nginx writes it. No DNS: IP literals and
//! `localhost` only; unix paths compare through symlinks.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// PHP-FPM's compile-time prefix on Debian and most builds: base of relative `include=`
/// and unix `listen` paths when no `-p` prefix is given.
pub(super) const PHP_FPM_DEFAULT_PREFIX: &str = "/usr";

/// A listening address, from nginx's upstream or an app server's `listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Addr {
    Unix(PathBuf),
    /// `host: None` means every address.
    Tcp {
        host: Option<String>,
        port: u16,
    },
}

/// Parses an upstream as nginx writes it: `127.0.0.1:9000`, `[::1]:9000`, `localhost:9000`,
/// `unix:/run/x.sock` (a trailing `:` from error logs is dropped), with or without a
/// `scheme://` in front.
pub(super) fn parse_endpoint(text: &str) -> Option<Addr> {
    let text = text.trim();
    let text = text.split_once("://").map_or(text, |(_, rest)| rest);
    if let Some(path) = text.strip_prefix("unix:") {
        let path = path.trim_end_matches(':');
        return (!path.is_empty()).then(|| Addr::Unix(PathBuf::from(path)));
    }
    let text = text.trim_end_matches('/');
    if text.starts_with('/') {
        return Some(Addr::Unix(PathBuf::from(text)));
    }
    parse_host_port(text)
}

/// Parses a PHP-FPM `listen` value: `ip:port`, `[ipv6]:port`, a bare port (every
/// address), or a socket path (relative ones based at `prefix`).
pub(super) fn parse_listen(value: &str, prefix: Option<&Path>) -> Option<Addr> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.starts_with('/') {
        return Some(Addr::Unix(PathBuf::from(value)));
    }
    if let Ok(port) = value.parse::<u16>() {
        return Some(Addr::Tcp { host: None, port });
    }
    // PHP-FPM treats a value with ':' as TCP, anything else as a unix path.
    if value.contains(':') {
        return parse_host_port(value);
    }
    let base = prefix.unwrap_or(Path::new(PHP_FPM_DEFAULT_PREFIX));
    Some(Addr::Unix(base.join(value)))
}

fn parse_host_port(text: &str) -> Option<Addr> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else if let Some((host, port)) = text.rsplit_once(':') {
        (host, port)
    } else {
        ("", text)
    };
    let port = port.parse::<u16>().ok()?;
    let host = match host {
        "" | "*" => None,
        host => Some(host.to_ascii_lowercase()),
    };
    Some(Addr::Tcp { host, port })
}

/// Whether an app server listening on `listen` (a `listen`/`socket` value: `ip:port`,
/// `:port`, a bare port, a socket path) accepts connections to `upstream` as nginx writes
/// it. Relative socket paths are based at PHP-FPM's default prefix.
pub fn listen_serves(listen: &str, upstream: &str) -> bool {
    match (parse_listen(listen, None), parse_endpoint(upstream)) {
        (Some(have), Some(wanted)) => addr_matches(&have, &wanted),
        _ => false,
    }
}

/// Whether a server listening on `listen` accepts connections to `wanted`.
pub(super) fn addr_matches(listen: &Addr, wanted: &Addr) -> bool {
    match (listen, wanted) {
        (Addr::Unix(a), Addr::Unix(b)) => {
            a == b
                || matches!(
                    (fs::canonicalize(a), fs::canonicalize(b)),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        (
            Addr::Tcp {
                host: listen_host,
                port: listen_port,
            },
            Addr::Tcp { host, port },
        ) => listen_port == port && host_accepts(listen_host.as_deref(), host.as_deref()),
        _ => false,
    }
}

/// Whether a socket bound to `listen` (None: every address) accepts a connection to
/// `wanted`.
fn host_accepts(listen: Option<&str>, wanted: Option<&str>) -> bool {
    let Some(listen) = listen else {
        return true;
    };
    if matches!(listen, "0.0.0.0" | "::") {
        return true;
    }
    let Some(wanted) = wanted else {
        return false;
    };
    let listen_ips = host_ips(listen);
    let wanted_ips = host_ips(wanted);
    if listen_ips.is_empty() || wanted_ips.is_empty() {
        return listen.eq_ignore_ascii_case(wanted);
    }
    listen_ips.iter().any(|ip| wanted_ips.contains(ip))
}

/// The addresses a host string stands for without DNS: an IP literal (IPv4-mapped IPv6
/// unmapped), or `localhost`.
fn host_ips(host: &str) -> Vec<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        ];
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => vec![v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)],
        Ok(ip) => vec![ip],
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.1:9000", "127.0.0.1:9000", true),
            ("127.0.0.1:9000", "fastcgi://127.0.0.1:9000", true),
            ("127.0.0.1:9000", "127.0.0.1:9001", false),
            ("127.0.0.1:9000", "10.0.0.5:9000", false),
            ("9000", "127.0.0.1:9000", true),
            ("9000", "[::1]:9000", true),
            ("0.0.0.0:9000", "10.0.0.5:9000", true),
            ("[::]:9000", "127.0.0.1:9000", true),
            ("[::1]:9000", "[::1]:9000", true),
            ("[::1]:9000", "127.0.0.1:9000", false),
            ("localhost:9000", "127.0.0.1:9000", true),
            ("127.0.0.1:9000", "localhost:9000", true),
            ("[::ffff:127.0.0.1]:9000", "127.0.0.1:9000", true),
            (
                "/run/php/php8.2-fpm.sock",
                "unix:/run/php/php8.2-fpm.sock",
                true,
            ),
            (
                "/run/php/php8.2-fpm.sock",
                "fastcgi://unix:/run/php/php8.2-fpm.sock:",
                true,
            ),
            ("/run/php/php8.2-fpm.sock", "/run/php/php8.2-fpm.sock", true),
            (
                "/run/php/php8.2-fpm.sock",
                "unix:/run/php/php8.1-fpm.sock",
                false,
            ),
            ("/run/php/php8.2-fpm.sock", "127.0.0.1:9000", false),
            ("127.0.0.1:9000", "unix:/run/php/php8.2-fpm.sock", false),
            ("php.sock", "unix:/usr/php.sock", true),
        ];
        for (listen, endpoint, want) in cases {
            let have = parse_listen(listen, None).unwrap();
            let wanted = parse_endpoint(endpoint).unwrap();
            assert_eq!(
                addr_matches(&have, &wanted),
                *want,
                "listen {listen} vs {endpoint}"
            );
        }
        assert_eq!(parse_endpoint("unix:"), None);
        assert_eq!(parse_endpoint("127.0.0.1:http"), None);
        assert_eq!(parse_listen("", None), None);
    }

    #[test]
    fn unix_endpoints_match_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("fpm.sock"), "").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let listen = parse_listen(&real.join("fpm.sock").to_string_lossy(), None).unwrap();
        let endpoint = format!("unix:{}", dir.path().join("link/fpm.sock").display());
        assert!(addr_matches(&listen, &parse_endpoint(&endpoint).unwrap()));
    }
}
