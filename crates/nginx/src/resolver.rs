//! nginx's run-time name resolution settings: the `resolver` directive ([`parse_resolver`]),
//! the `resolver` and `resolver_timeout` in effect at a pass target ([`resolver_of`]), and
//! the host of a pass argument with variables that nginx resolves per request
//! ([`literal_host`]).
//!
//! nginx resolves a name in `proxy_pass` (and the other pass directives) at start and
//! reload with getaddrinfo, except when the argument contains variables: then it resolves
//! the evaluated host per request with its own DNS client, which queries only the servers
//! of `resolver` (no `/etc/hosts`, no search domains) and logs
//! `no resolver defined to resolve HOST` when there is none.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Span;
use crate::settings::{Setting, Settings, parse_time};

/// The port of a `resolver` address without one.
pub const DNS_PORT: u16 = 53;
/// nginx's default `resolver_timeout`.
pub const DEFAULT_RESOLVER_TIMEOUT: Duration = Duration::from_secs(30);

/// nginx's `resolver` directive as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSpec {
    /// The name servers written as IP literals, in order (port 53 when none is written).
    pub servers: Vec<SocketAddr>,
    /// The name servers written as host names, as `name:port` (port 53 filled in): nginx
    /// resolves them with getaddrinfo at start and reload.
    pub names: Vec<String>,
    /// `valid=`: how long nginx caches answers instead of their TTL.
    pub valid: Option<Duration>,
    /// Whether nginx asks A records (`ipv4=`, default on).
    pub ipv4: bool,
    /// Whether nginx asks AAAA records (`ipv6=`, default on since nginx 1.5.8).
    pub ipv6: bool,
    /// Where the directive is.
    pub span: Span,
}

/// Parses a `resolver` directive the way nginx's `ngx_resolver_create` does. The error is
/// nginx's own message (e.g. `invalid parameter: ipv6=no`, `no name servers defined`).
pub fn parse_resolver(setting: &Setting) -> Result<ResolverSpec, String> {
    let mut spec = ResolverSpec {
        servers: Vec::new(),
        names: Vec::new(),
        valid: None,
        ipv4: true,
        ipv6: true,
        span: setting.span.clone(),
    };
    for arg in &setting.args {
        let invalid = || format!("invalid parameter: {arg}");
        if let Some(value) = arg.strip_prefix("valid=") {
            // nginx reads it in seconds mode, where `ms` is not a unit.
            if value.contains("ms") {
                return Err(invalid());
            }
            spec.valid = Some(parse_time(value).ok_or_else(invalid)?);
        } else if let Some(value) = arg.strip_prefix("ipv4=") {
            spec.ipv4 = on_off(value).ok_or_else(invalid)?;
        } else if let Some(value) = arg.strip_prefix("ipv6=") {
            spec.ipv6 = on_off(value).ok_or_else(invalid)?;
        } else if arg.starts_with("status_zone=") {
            // Newer nginx: statistics only.
        } else {
            match parse_server(arg).map_err(|reason| format!("{reason} in resolver \"{arg}\""))? {
                Server::Addr(addr) => spec.servers.push(addr),
                Server::Name(name) => spec.names.push(name),
            }
        }
    }
    if !spec.ipv4 && !spec.ipv6 {
        return Err("\"ipv4\" and \"ipv6\" cannot both be \"off\"".to_owned());
    }
    if spec.servers.is_empty() && spec.names.is_empty() {
        return Err("no name servers defined".to_owned());
    }
    Ok(spec)
}

fn on_off(value: &str) -> Option<bool> {
    match value {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// One address argument of `resolver`.
enum Server {
    Addr(SocketAddr),
    Name(String),
}

/// `1.2.3.4`, `1.2.3.4:5353`, `[::1]`, `[::1]:5353`, `dns.lan`, `dns.lan:5353`.
fn parse_server(text: &str) -> Result<Server, &'static str> {
    if text
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("unix:"))
    {
        return Err("invalid host");
    }
    let (host, port_text, bracketed) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("invalid host")?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err("invalid host"),
        };
        (host, port, true)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port), false),
            None => (text, None, false),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if text.contains(['/', '?']) {
        return Err("invalid host");
    }
    let port = match port_text {
        None => DNS_PORT,
        Some(port) => parse_port(port).ok_or("invalid port")?,
    };
    if bracketed {
        let ip: Ipv6Addr = host.parse().map_err(|_| "invalid IPv6 address")?;
        return Ok(Server::Addr(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(Server::Addr(SocketAddr::new(ip, port))),
        Err(_) => Ok(Server::Name(format!("{host}:{port}"))),
    }
}

/// A port as nginx accepts it: 1 to 65535, digits only.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 5 {
        return None;
    }
    text.parse::<u16>().ok().filter(|port| *port != 0)
}

/// The `resolver` (parsed) and `resolver_timeout` (default 30s) in effect in `settings`,
/// e.g. a pass target's; `None` when no level sets `resolver`. An unparsable
/// `resolver_timeout` counts as the default (nginx would not have started with it).
pub fn resolver_of(settings: &Settings) -> Option<(Result<ResolverSpec, String>, Duration)> {
    let resolver = settings.get("resolver")?;
    let timeout = settings
        .get("resolver_timeout")
        .and_then(|setting| setting.args.first())
        .and_then(|text| parse_time(text))
        .unwrap_or(DEFAULT_RESOLVER_TIMEOUT);
    Some((parse_resolver(resolver), timeout))
}

/// Variables whose value always starts with `/`, so that text before them in a pass
/// argument ends the host part.
const PATH_VARIABLES: [&str; 3] = ["request_uri", "uri", "document_uri"];

/// The host and port of a pass argument with variables when its host part is literal:
/// `http://app.internal:8080$request_uri` → `("app.internal", 8080)`,
/// `http://[::1]/x$args` → `("::1", 80)`. `None` when the host part contains a variable
/// (`http://$backend`, `http://app$suffix:8080`), for `unix:` sockets, or when the host
/// part is not valid.
///
/// The port is the written one, else 80 for `http://`, 443 for `https://` and `grpcs://`,
/// else `default_port` (e.g. 9000 for a caller that assumes `fastcgi_pass`'s usual port).
/// An IP literal host is returned too (nginx does not resolve it); callers also check
/// whether the host names an `upstream {}` group, which nginx uses without resolving.
pub fn literal_host(raw: &str, default_port: u16) -> Option<(String, u16)> {
    let lower = raw.get(..raw.find("://").map_or(0, |i| i + 3))?;
    if lower.contains('$') {
        return None;
    }
    let (rest, scheme_port) = match lower.to_ascii_lowercase().as_str() {
        "" => (raw, default_port),
        "http://" => (raw.get(lower.len()..)?, 80),
        "https://" | "grpcs://" => (raw.get(lower.len()..)?, 443),
        _ => (raw.get(lower.len()..)?, default_port),
    };
    if rest
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("unix:"))
    {
        return None;
    }
    // The host part ends at the path, the query, or a variable that is a path.
    let end = rest.find(['/', '?', '$']).unwrap_or(rest.len());
    let hostport = rest.get(..end)?;
    if let Some(after) = rest.get(end..)
        && let Some(variable) = after.strip_prefix('$')
    {
        let name = variable
            .strip_prefix('{')
            .and_then(|v| v.split_once('}'))
            .map_or_else(
                || {
                    let len = variable
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(variable.len());
                    variable.get(..len).unwrap_or_default()
                },
                |(name, _)| name,
            );
        if !PATH_VARIABLES.contains(&name) {
            return None;
        }
    }
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(port) => parse_port(port)?,
            None if after.is_empty() => scheme_port,
            None => return None,
        };
        (host, port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, parse_port(port)?),
            None => (hostport, scheme_port),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(valid) || port == 0 {
        return None;
    }
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;
    use std::sync::Arc;

    fn setting(args: &[&str]) -> Setting {
        Setting {
            name: "resolver".to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            span: Span {
                file: Arc::from(Path::new("/etc/nginx/nginx.conf")),
                line: 7,
            },
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_with_and_without_ports() {
        let spec = parse_resolver(&setting(&[
            "127.0.0.53",
            "10.0.0.2:5353",
            "[::1]:5353",
            "[fd00::1]",
        ]))
        .unwrap();
        assert_eq!(
            spec.servers,
            vec![
                addr("127.0.0.53:53"),
                addr("10.0.0.2:5353"),
                addr("[::1]:5353"),
                addr("[fd00::1]:53")
            ]
        );
        assert!(spec.names.is_empty());
        assert!(spec.ipv4 && spec.ipv6);
        assert_eq!(spec.valid, None);
        assert_eq!(spec.span.line, 7);
    }

    #[test]
    fn names_are_kept_for_start_time_resolution() {
        let spec =
            parse_resolver(&setting(&["dns.lan", "kube-dns.svc:1053", "127.0.0.1"])).unwrap();
        assert_eq!(spec.names, vec!["dns.lan:53", "kube-dns.svc:1053"]);
        assert_eq!(spec.servers, vec![addr("127.0.0.1:53")]);
    }

    #[test]
    fn parameters() {
        let spec = parse_resolver(&setting(&["127.0.0.1", "valid=30s", "ipv6=off"])).unwrap();
        assert_eq!(spec.valid, Some(Duration::from_secs(30)));
        assert!(spec.ipv4 && !spec.ipv6);
        let spec = parse_resolver(&setting(&["valid=5m", "127.0.0.1", "ipv4=off"])).unwrap();
        assert_eq!(spec.valid, Some(Duration::from_secs(300)));
        assert!(!spec.ipv4 && spec.ipv6);
        let spec = parse_resolver(&setting(&["127.0.0.1", "valid=10", "status_zone=dns"])).unwrap();
        assert_eq!(spec.valid, Some(Duration::from_secs(10)));
    }

    #[test]
    fn bad_values_give_nginx_messages() {
        let err = |args: &[&str]| parse_resolver(&setting(args)).unwrap_err();
        assert_eq!(err(&["127.0.0.1", "ipv6=no"]), "invalid parameter: ipv6=no");
        assert_eq!(
            err(&["127.0.0.1", "valid=soon"]),
            "invalid parameter: valid=soon"
        );
        assert_eq!(
            err(&["127.0.0.1", "valid=500ms"]),
            "invalid parameter: valid=500ms"
        );
        assert_eq!(
            err(&["127.0.0.1", "ipv4=off", "ipv6=off"]),
            "\"ipv4\" and \"ipv6\" cannot both be \"off\""
        );
        assert_eq!(err(&["valid=30s"]), "no name servers defined");
        assert_eq!(err(&[]), "no name servers defined");
        assert_eq!(
            err(&["127.0.0.1:99999"]),
            "invalid port in resolver \"127.0.0.1:99999\""
        );
        assert_eq!(
            err(&["127.0.0.1:0"]),
            "invalid port in resolver \"127.0.0.1:0\""
        );
        assert_eq!(err(&["[::1"]), "invalid host in resolver \"[::1\"");
        assert_eq!(
            err(&["[nothex]:53"]),
            "invalid IPv6 address in resolver \"[nothex]:53\""
        );
        assert_eq!(err(&[":53"]), "no host in resolver \":53\"");
        assert_eq!(
            err(&["unix:/run/dns.sock"]),
            "invalid host in resolver \"unix:/run/dns.sock\""
        );
    }

    fn settings_of(text: &str) -> Settings {
        let file = Path::new("/etc/nginx/nginx.conf");
        let config = Config::from_text(text, file).unwrap();
        let view = crate::view::ConfigView::new(&config);
        view.targets.first().unwrap().settings.clone()
    }

    #[test]
    fn resolver_in_effect_is_inherited() {
        let settings = settings_of(
            "http { resolver 127.0.0.53 valid=10s; resolver_timeout 5s;
               server { location / { proxy_pass http://app.internal$request_uri; } } }",
        );
        let (spec, timeout) = resolver_of(&settings).unwrap();
        assert_eq!(spec.unwrap().servers, vec![addr("127.0.0.53:53")]);
        assert_eq!(timeout, Duration::from_secs(5));

        let settings = settings_of(
            "http { resolver 127.0.0.53; server { resolver 10.0.0.1 ipv6=off;
               location / { proxy_pass http://app.internal$request_uri; } } }",
        );
        let (spec, timeout) = resolver_of(&settings).unwrap();
        let spec = spec.unwrap();
        assert_eq!(spec.servers, vec![addr("10.0.0.1:53")]);
        assert!(!spec.ipv6);
        assert_eq!(timeout, DEFAULT_RESOLVER_TIMEOUT);

        let settings =
            settings_of("http { server { location / { proxy_pass http://app$request_uri; } } }");
        assert!(resolver_of(&settings).is_none());

        let settings = settings_of(
            "http { resolver ipv6=maybe; server { location / { proxy_pass http://a$uri; } } }",
        );
        assert!(resolver_of(&settings).unwrap().0.is_err());
    }

    #[test]
    fn literal_hosts() {
        let host = |raw: &str| literal_host(raw, 9000);
        assert_eq!(
            host("http://app.internal:8080$request_uri"),
            Some(("app.internal".to_owned(), 8080))
        );
        assert_eq!(
            host("http://app.internal$request_uri"),
            Some(("app.internal".to_owned(), 80))
        );
        assert_eq!(
            host("https://api.example.test${uri}"),
            Some(("api.example.test".to_owned(), 443))
        );
        assert_eq!(
            host("HTTP://App.Internal/path?x=$arg_x"),
            Some(("App.Internal".to_owned(), 80))
        );
        assert_eq!(
            host("http://[::1]:8080/x$args"),
            Some(("::1".to_owned(), 8080))
        );
        assert_eq!(
            host("http://[::1]$request_uri"),
            Some(("::1".to_owned(), 80))
        );
        assert_eq!(
            host("http://127.0.0.1:81$document_uri"),
            Some(("127.0.0.1".to_owned(), 81))
        );
        assert_eq!(
            host("grpcs://grpc.lan$request_uri"),
            Some(("grpc.lan".to_owned(), 443))
        );
        assert_eq!(host("php.internal:9001$is_args"), None);
        assert_eq!(
            host("php.internal:9001/$x"),
            Some(("php.internal".to_owned(), 9001))
        );

        // The host part holds a variable.
        assert_eq!(host("http://$backend"), None);
        assert_eq!(host("http://$host:8080$request_uri"), None);
        assert_eq!(host("http://app$suffix:8080"), None);
        assert_eq!(host("http://app.internal:8080$args"), None);
        assert_eq!(host("$scheme://app.internal$request_uri"), None);
        assert_eq!(host("unix:$socket"), None);
        assert_eq!(host("unix:/run/app.sock:$uri"), None);
        // Not a valid host part.
        assert_eq!(host("http://app:port$request_uri"), None);
        assert_eq!(host("http://:8080$request_uri"), None);
        assert_eq!(host("http://[::1$request_uri"), None);
        assert_eq!(host("http://app:0$request_uri"), None);
    }
}
