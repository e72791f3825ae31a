//! The exchange: what each reachable upstream answers when spoken to the way nginx speaks
//! to it. From the pass directive and the effective settings at its location this module
//! shapes the request nginx would send (HTTP with its Host, headers and version; a TLS
//! handshake with its SNI and verification; FastCGI, uwsgi, SCGI), runs the matching probe
//! from `fix502-probe`, and, when the answer is not in that protocol, sniffs what the port
//! really speaks. It also holds the limits the answer is judged against (`*_buffer_size`,
//! `*_read_timeout`) with the config line that sets them.
//!
//! What is sent is read-only by default (docs/probes.md): a GET of the location's path with
//! no query string and none of the credentials nginx would add; for FastCGI only the
//! management record, or php-fpm's own ping or status page when the pool has one. A logged
//! request is re-sent, and a FastCGI script run, only for a URL the user named (`--url`) or
//! with the user's yes (the wizard). Only GET is ever sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fix502_nginx::settings::{self, Settings};
use fix502_nginx::view::{PassModule, PassTarget, Peer, TargetAddress};
use fix502_probe::fastcgi::{self, FcgiProbe, FcgiRequest};
use fix502_probe::gateway::{GatewayLimits, GatewayOutcome, GatewayProbe};
use fix502_probe::http::{self, HttpLimits, HttpProbe, HttpRequest, Method};
use fix502_probe::sniff::{self, SniffReport};
use fix502_probe::stream::Endpoint as Target;
use fix502_probe::tls::{self, TlsOptions, TlsProbe, TlsVersion};
use fix502_probe::{scgi, uwsgi};

use crate::report::Location;

/// The most header bytes a probe reads: enough to measure any header nginx could buffer.
pub const HEADER_CAP: usize = 1024 * 1024;

/// A limit from the config: its directive, value, and where it is set (`None`: nginx's default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limit<T> {
    /// The directive, e.g. `proxy_buffer_size`.
    #[serde(deserialize_with = "fix502_nginx::settings::limit_directive")]
    pub directive: settings::DirectiveName,
    /// The effective value.
    pub value: T,
    /// The value as written (or the default's wording).
    pub written: String,
    /// Where it is set; `None` when it is nginx's default.
    pub at: Option<Location>,
}

/// What the upstream answered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Answer {
    /// An HTTP/1.x exchange (`proxy_pass http://`).
    Http(HttpProbe),
    /// A TLS handshake (`proxy_pass https://`, `grpcs://`).
    Tls {
        /// The handshake as nginx makes it.
        probe: TlsProbe,
        /// The same handshake with SNI, when nginx sends none and its handshake failed.
        with_sni: Option<TlsProbe>,
    },
    /// FastCGI: the management record, then php-fpm's own page or (for a URL the user named
    /// or a request they agreed to re-send) the script.
    FastCgi {
        /// `FCGI_GET_VALUES` (runs no script).
        values: FcgiProbe,
        /// The GET request, when one was sent.
        request: Option<FcgiProbe>,
        /// The path of php-fpm's own page the request asked for (no script ran), if it did.
        page: Option<String>,
    },
    /// uwsgi or SCGI.
    Gateway(GatewayProbe),
    /// gRPC over cleartext: only sniffed (it must speak HTTP/2).
    Grpc,
}

impl Answer {
    /// The size of the response header block the upstream sent (status line or CGI head,
    /// headers and the empty line), when one was read.
    pub fn header_bytes(&self) -> Option<u64> {
        let n = match self {
            Self::Http(p) => p.header_bytes,
            Self::FastCgi {
                request: Some(p), ..
            } => p.gateway.header_bytes,
            Self::Gateway(p) => p.header_bytes,
            _ => return None,
        };
        u64::try_from(n).ok().filter(|n| *n > 0)
    }
}

/// One upstream spoken to as nginx speaks to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Exchange {
    /// The pass module.
    pub module: PassModule,
    /// The scheme of the pass directive (`http`, `https`, `fastcgi`, `grpc`, ...).
    pub scheme: String,
    /// The pass directive as written.
    pub directive: String,
    /// Where the pass directive is.
    pub at: Location,
    /// What was sent, in words (`GET / HTTP/1.0, Host: backend`).
    pub sent: String,
    /// The answer.
    pub answer: Answer,
    /// What the port speaks, when the answer was not in the expected protocol.
    pub sniff: Option<SniffReport>,
    /// The header buffer the answer must fit (`proxy_buffer_size`, ...).
    pub buffer: Limit<u64>,
    /// How long nginx waits for the header (`proxy_read_timeout`, ...).
    pub read_timeout: Limit<Duration>,
    /// How long nginx waits to connect and for a TLS handshake (`proxy_connect_timeout`, ...).
    pub connect_timeout: Limit<Duration>,
}

/// Everything about the run an exchange needs besides the target.
#[derive(Debug, Clone)]
pub struct Shape<'a> {
    /// nginx's version, for version-dependent defaults.
    pub version: Option<(u32, u32, u32)>,
    /// The memory page size (the default header buffer).
    pub page_size: u64,
    /// The URI to request: the location's path, or the `--url` or the logged request the
    /// user agreed to re-send.
    pub uri: String,
    /// The user named the URL or agreed to re-send the logged request: the app's code for it
    /// may run (a FastCGI script is requested only then).
    pub runs_app: bool,
    /// The path of php-fpm's own ping or status page in the pool behind the endpoint, when
    /// it has one: answered by php-fpm itself, no script runs.
    pub fpm_path: Option<String>,
    /// The directory relative paths in the config are resolved against (nginx's prefix).
    pub prefix: Option<&'a Path>,
    /// The directory of the main config (for `*_trusted_certificate` relative paths).
    pub conf_dir: Option<&'a Path>,
    /// The per-probe timeout.
    pub timeout: Duration,
}

/// The effective value of a directive, or nginx's default for it.
fn value(s: &Settings, name: &str, version: Option<(u32, u32, u32)>) -> (String, Option<Location>) {
    match s.get(name) {
        Some(set) => (set.args.join(" "), Some(Location::from(&set.span))),
        None => (
            settings::default_of(name, version)
                .unwrap_or_default()
                .to_owned(),
            None,
        ),
    }
}

fn flag(s: &Settings, name: &str, version: Option<(u32, u32, u32)>) -> bool {
    value(s, name, version).0 == "on"
}

/// The header buffer for this target.
pub fn buffer_limit(target: &PassTarget, shape: &Shape<'_>) -> Limit<u64> {
    let directive = settings::buffer_size_directive(target.module);
    match target.settings.get(directive) {
        Some(set) => {
            let written = set.args.join(" ");
            Limit {
                directive,
                value: settings::parse_size(&written).unwrap_or(shape.page_size),
                written,
                at: Some(Location::from(&set.span)),
            }
        }
        None => Limit {
            directive,
            value: shape.page_size,
            written: format!("{}k (one memory page, the default)", shape.page_size / 1024),
            at: None,
        },
    }
}

/// How long nginx waits for the response header for this target.
pub fn read_timeout_limit(
    target: &PassTarget,
    version: Option<(u32, u32, u32)>,
) -> Limit<Duration> {
    timeout_limit(target, "read", version)
}

/// How long nginx waits for a connection (and a TLS handshake) to this target's upstream.
pub fn connect_timeout_limit(
    target: &PassTarget,
    version: Option<(u32, u32, u32)>,
) -> Limit<Duration> {
    timeout_limit(target, "connect", version)
}

/// The effective `*_{which}_timeout` of the target's module (`read`, `connect`).
fn timeout_limit(
    target: &PassTarget,
    which: &str,
    version: Option<(u32, u32, u32)>,
) -> Limit<Duration> {
    let directive = settings::timeout_directive(target.module, which);
    let (written, at) = value(&target.settings, directive, version);
    Limit {
        directive,
        value: settings::parse_time(&written).unwrap_or(Duration::from_secs(60)),
        written: if at.is_none() && !written.is_empty() {
            format!("{written} (the default)")
        } else {
            written
        },
        at,
    }
}

/// The host part nginx puts in `$proxy_host`: the group name, or host[:port] as written.
fn proxy_host(target: &PassTarget) -> String {
    let rest = target
        .raw
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(&target.raw);
    let host = rest.split('/').next().unwrap_or(rest);
    let default_port = match target.scheme.as_str() {
        "https" | "grpcs" => ":443",
        _ => ":80",
    };
    host.strip_suffix(default_port).unwrap_or(host).to_owned()
}

/// The host name alone (no port, no brackets), for SNI and `proxy_ssl_name`.
fn host_name(target: &PassTarget) -> String {
    match &target.address {
        TargetAddress::Group(name) => name.clone(),
        TargetAddress::Peer(Peer::Inet { host, .. }) => host.trim_matches(['[', ']']).to_owned(),
        _ => proxy_host(target),
    }
}

/// The URI part of `proxy_pass http://host:port/uri`, if any.
fn pass_uri(target: &PassTarget) -> Option<&str> {
    let rest = target.raw.split_once("://")?.1;
    let slash = rest.find('/')?;
    rest.get(slash..)
}

/// The URI nginx sends upstream for request `uri`: with a URI in `proxy_pass`, the part
/// matching a prefix location is replaced by it.
fn upstream_uri(target: &PassTarget, uri: &str) -> String {
    let Some(replacement) = pass_uri(target) else {
        return uri.to_owned();
    };
    let prefix_location = target
        .location
        .as_deref()
        .filter(|l| !l.starts_with('~') && !l.starts_with('@'))
        .map(|l| l.trim_start_matches("^~ ").trim_start_matches("= ").trim());
    match prefix_location.and_then(|l| uri.strip_prefix(l)) {
        Some(rest) => format!("{replacement}{rest}"),
        None => replacement.to_owned(),
    }
}

/// Whether a request header carries a credential (it is never sent by a probe).
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || [
        "token",
        "secret",
        "passw",
        "api-key",
        "apikey",
        "api_key",
        "auth",
        "session",
        "signature",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The HTTP request nginx sends for this target, without the credentials it would add;
/// and the names of the headers left out for that reason.
pub fn http_request(target: &PassTarget, shape: &Shape<'_>) -> (HttpRequest, Vec<String>) {
    let s = &target.settings;
    let mut headers = Vec::new();
    let mut withheld = Vec::new();
    let mut host = proxy_host(target);
    for set in s.all("proxy_set_header") {
        let (Some(name), Some(val)) = (set.args.first(), set.args.get(1)) else {
            continue;
        };
        // Values with variables depend on the client's request (`$host`, `$remote_addr`):
        // the probe has none, so they are left out and Host stays `$proxy_host`.
        if val.contains('$') {
            continue;
        }
        if name.eq_ignore_ascii_case("host") {
            host = val.clone();
        } else if is_credential_header(name) {
            withheld.push(name.clone());
        } else {
            headers.push((name.clone(), val.clone()));
        }
    }
    let version = value(s, "proxy_http_version", shape.version).0;
    let request = HttpRequest {
        method: Method::Get,
        target: upstream_uri(target, &shape.uri),
        host,
        headers,
        http11: version == "1.1",
    };
    (request, withheld)
}

/// The TLS handshake nginx makes for this target.
pub fn tls_options(target: &PassTarget, shape: &Shape<'_>) -> TlsOptions {
    let s = &target.settings;
    let p = settings::directive_prefix(target.module);
    let v = shape.version;
    let name = match s.get(&format!("{p}_ssl_name")) {
        Some(set) => set.args.join(" "),
        None => host_name(target),
    };
    let sni = flag(s, &format!("{p}_ssl_server_name"), v).then(|| name.clone());
    let verify = flag(s, &format!("{p}_ssl_verify"), v);
    let trusted = s
        .get(&format!("{p}_ssl_trusted_certificate"))
        .and_then(|set| set.args.first())
        .map(|f| resolve_conf_path(f, shape));
    let protocols = value(s, &format!("{p}_ssl_protocols"), v).0;
    let versions = protocols
        .split_whitespace()
        .filter_map(TlsVersion::from_nginx)
        .collect();
    TlsOptions {
        sni,
        verify,
        trusted,
        verify_name: Some(name),
        versions,
        timeout: shape.timeout,
    }
}

/// nginx resolves certificate paths against the config prefix (the main config's directory).
fn resolve_conf_path(file: &str, shape: &Shape<'_>) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match shape.conf_dir.or(shape.prefix) {
        Some(dir) => dir.join(path),
        None => path.to_path_buf(),
    }
}

/// The FastCGI GET nginx would send, when `SCRIPT_FILENAME` can be worked out.
pub fn fastcgi_request(target: &PassTarget, shape: &Shape<'_>) -> Option<FcgiRequest> {
    let s = &target.settings;
    let script = s
        .all("fastcgi_param")
        .iter()
        .rev()
        .find(|set| set.args.first().is_some_and(|n| n == "SCRIPT_FILENAME"))
        .and_then(|set| set.args.get(1))?;
    let path = shape.uri.split('?').next().unwrap_or("/");
    let mut script_name = path.to_owned();
    if script_name.ends_with('/') {
        let index = s
            .get("fastcgi_index")
            .and_then(|set| set.args.first())
            .cloned()
            .unwrap_or_default();
        script_name.push_str(&index);
    }
    let root = match s.get("root").and_then(|set| set.args.first()) {
        Some(r) => r.clone(),
        None => "html".to_owned(),
    };
    let root = if Path::new(&root).is_absolute() {
        root
    } else {
        match shape.prefix {
            Some(p) => p.join(&root).display().to_string(),
            None => root,
        }
    };
    let filename = script
        .replace("$document_root", &root)
        .replace("$realpath_root", &root)
        .replace("$fastcgi_script_name", &script_name)
        .replace("$request_filename", &format!("{root}{path}"));
    if filename.contains('$') {
        return None;
    }
    Some(FcgiRequest::get(&filename, &shape.uri, &host_name(target)))
}

/// Speaks to one reachable upstream as nginx would, bounded by the shape's timeout (twice,
/// when the port has to be sniffed too).
pub async fn exchange(target: &PassTarget, peer: &Target, shape: &Shape<'_>) -> Exchange {
    let timeout = shape.timeout;
    let limits = HttpLimits {
        cap: HEADER_CAP,
        timeout,
    };
    let gateway_limits = GatewayLimits {
        cap: HEADER_CAP,
        timeout,
    };
    let (sent, answer) = match (target.module, target.scheme.as_str()) {
        (PassModule::Proxy, "https")
        | (PassModule::Grpc, "grpcs")
        | (PassModule::Uwsgi, "suwsgi") => {
            let options = tls_options(target, shape);
            let sent = match &options.sni {
                Some(name) => format!("TLS ClientHello with SNI {name}"),
                None => "TLS ClientHello without SNI (proxy_ssl_server_name off)".to_owned(),
            };
            let probe = tls::probe_tls(peer, &options).await;
            // A silent peer is not waiting for a name: retrying with SNI would only wait again.
            let with_sni = if options.sni.is_none()
                && !matches!(
                    probe.outcome,
                    tls::TlsOutcome::Established | tls::TlsOutcome::TimedOut
                ) {
                let retry = TlsOptions {
                    sni: Some(host_name(target)),
                    ..options.clone()
                };
                Some(tls::probe_tls(peer, &retry).await)
            } else {
                None
            };
            (sent, Answer::Tls { probe, with_sni })
        }
        (PassModule::Proxy, _) => {
            let (request, withheld) = http_request(target, shape);
            let mut sent = format!(
                "GET {} HTTP/1.{}, Host: {}",
                request.target,
                u8::from(request.http11),
                request.host
            );
            if !withheld.is_empty() {
                sent.push_str(&format!(
                    " (credentials nginx adds left out: {})",
                    withheld.join(", ")
                ));
            }
            (
                sent,
                Answer::Http(http::probe_http(peer, &request, limits).await),
            )
        }
        (PassModule::FastCgi, _) => {
            let values = fastcgi::get_values(peer, timeout).await;
            // A script runs only for a URL the user named or a request they agreed to
            // re-send; else php-fpm's own page, which runs none.
            let planned = match (&values.gateway.outcome, shape.runs_app, &shape.fpm_path) {
                (GatewayOutcome::Values, true, _) => fastcgi_request(target, shape)
                    .map(|req| (req, format!("FCGI_GET_VALUES, then GET {}", shape.uri))),
                (GatewayOutcome::Values, false, Some(path)) => Some((
                    FcgiRequest::get(path, path, &host_name(target)),
                    format!("FCGI_GET_VALUES, then php-fpm's own page {path} (runs no script)"),
                )),
                _ => None,
            };
            let page = planned
                .as_ref()
                .filter(|_| !shape.runs_app)
                .and(shape.fpm_path.clone());
            let (sent, request) = match planned {
                Some((req, sent)) => (
                    sent,
                    Some(fastcgi::request(peer, &req, gateway_limits).await),
                ),
                None => ("FCGI_GET_VALUES (runs no script)".to_owned(), None),
            };
            (
                sent,
                Answer::FastCgi {
                    values,
                    request,
                    page,
                },
            )
        }
        (PassModule::Uwsgi, _) => (
            format!("uwsgi GET {}", shape.uri),
            Answer::Gateway(
                uwsgi::request(peer, "GET", &shape.uri, &host_name(target), gateway_limits).await,
            ),
        ),
        (PassModule::Scgi, _) => (
            format!("SCGI GET {}", shape.uri),
            Answer::Gateway(
                scgi::request(peer, "GET", &shape.uri, &host_name(target), gateway_limits).await,
            ),
        ),
        _ => ("nothing yet (gRPC is sniffed)".to_owned(), Answer::Grpc),
    };
    let sniff = if needs_sniff(&answer) {
        Some(sniff::sniff(peer, timeout).await)
    } else {
        None
    };
    Exchange {
        module: target.module,
        scheme: target.scheme.clone(),
        directive: format!("{} {}", target.module.directive(), target.raw),
        at: Location::from(&target.span),
        sent,
        answer,
        sniff,
        buffer: buffer_limit(target, shape),
        read_timeout: read_timeout_limit(target, shape.version),
        connect_timeout: connect_timeout_limit(target, shape.version),
    }
}

/// Whether the answer leaves open which protocol the port speaks.
fn needs_sniff(answer: &Answer) -> bool {
    use fix502_probe::gateway::GatewayOutcome as F;
    use fix502_probe::http::{HttpOutcome as H, InvalidResponse as I};
    use fix502_probe::tls::TlsOutcome as T;
    match answer {
        // Not HTTP at all, or a close or reset before a single byte (php-fpm and TLS
        // servers hang up on an HTTP request).
        // ... or silence: a server of another protocol may wait for more of what it speaks.
        Answer::Http(p) => match p.outcome {
            H::Invalid(I::NotHttp { .. }) => true,
            H::ClosedEarly | H::Reset | H::TimedOut => p.header_bytes == 0,
            _ => false,
        },
        Answer::Tls { probe: p, with_sni } => {
            with_sni
                .as_ref()
                .is_none_or(|w| !matches!(w.outcome, T::Established))
                && matches!(
                    p.outcome,
                    T::NotTls { .. } | T::ClosedInHandshake | T::Failed { .. }
                )
        }
        Answer::FastCgi { values, .. } => matches!(
            values.gateway.outcome,
            F::NotFastCgi { .. } | F::ClosedEarly | F::Reset | F::InvalidRecord(_) | F::TimedOut
        ),
        Answer::Gateway(p) => matches!(p.outcome, F::TimedOut) && p.header_bytes == 0,
        Answer::Grpc => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fix502_nginx::config::Config;
    use fix502_nginx::view::ConfigView;

    fn view(text: &str) -> ConfigView {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("nginx.conf");
        std::fs::write(&main, text).expect("write");
        ConfigView::new(&Config::load(&main).expect("load"))
    }

    fn shape(uri: &str) -> Shape<'static> {
        Shape {
            version: Some((1, 22, 1)),
            page_size: 4096,
            uri: uri.to_owned(),
            runs_app: true,
            fpm_path: None,
            prefix: None,
            conf_dir: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn http_request_is_shaped_like_nginx_s() {
        let v = view(
            "http { upstream backend { server 127.0.0.1:8000; }
             server { proxy_set_header X-Static yes; proxy_set_header X-Real-IP $remote_addr;
               proxy_set_header Authorization \"Bearer s3cret\"; proxy_set_header X-Api-Key k;
               location /api/ { proxy_pass http://backend/v1/; proxy_http_version 1.1; }
               location /raw { proxy_pass http://127.0.0.1:80; proxy_set_header Host app.example; } } }",
        );
        let (api, withheld) = http_request(&v.targets[0], &shape("/api/users?x=1"));
        assert_eq!(api.target, "/v1/users?x=1");
        assert_eq!(api.host, "backend");
        assert!(api.http11);
        assert_eq!(api.headers, [("X-Static".to_owned(), "yes".to_owned())]);
        assert_eq!(
            withheld,
            ["Authorization", "X-Api-Key"],
            "credentials are never sent"
        );
        let (raw, _) = http_request(&v.targets[1], &shape("/raw/a"));
        assert_eq!(raw.target, "/raw/a");
        assert_eq!(raw.host, "app.example");
        assert!(
            !raw.http11,
            "nginx 1.22 speaks HTTP/1.0 upstream by default"
        );
        // Location-level proxy_set_header replaces the server's list entirely.
        assert!(raw.headers.is_empty());
    }

    #[test]
    fn limits_come_from_the_effective_settings_or_the_defaults() {
        let v = view(
            "http { proxy_buffer_size 16k; server {
               location /a { proxy_pass http://127.0.0.1:1; proxy_read_timeout 5s; }
               location /b { fastcgi_pass 127.0.0.1:9000; } } }",
        );
        let s = shape("/");
        let a = buffer_limit(&v.targets[0], &s);
        assert_eq!((a.directive, a.value), ("proxy_buffer_size", 16384));
        assert!(a.at.is_some());
        let b = buffer_limit(&v.targets[1], &s);
        assert_eq!(
            (b.directive, b.value, b.at),
            ("fastcgi_buffer_size", 4096, None)
        );
        let t = read_timeout_limit(&v.targets[0], s.version);
        assert_eq!(t.value, Duration::from_secs(5));
        let d = read_timeout_limit(&v.targets[1], s.version);
        assert_eq!(
            (d.directive, d.value),
            ("fastcgi_read_timeout", Duration::from_secs(60))
        );
    }

    #[test]
    fn tls_options_follow_proxy_ssl_directives() {
        let v = view(
            "http { upstream backend { server 127.0.0.1:8443; } server {
               location /a { proxy_pass https://backend; }
               location /b { proxy_pass https://backend; proxy_ssl_server_name on;
                 proxy_ssl_name app.internal; proxy_ssl_verify on;
                 proxy_ssl_trusted_certificate ca.pem; proxy_ssl_protocols TLSv1.3; } } }",
        );
        let s = Shape {
            conf_dir: Some(Path::new("/etc/nginx")),
            ..shape("/")
        };
        let a = tls_options(&v.targets[0], &s);
        assert_eq!(a.sni, None, "proxy_ssl_server_name is off by default");
        assert!(!a.verify);
        assert_eq!(a.verify_name.as_deref(), Some("backend"));
        // nginx 1.22's default: no TLSv1.3 upstream before 1.23.4.
        assert_eq!(
            a.versions,
            [TlsVersion::Tls10, TlsVersion::Tls11, TlsVersion::Tls12]
        );
        let b = tls_options(&v.targets[1], &s);
        assert_eq!(b.sni.as_deref(), Some("app.internal"));
        assert!(b.verify);
        assert_eq!(b.trusted.as_deref(), Some(Path::new("/etc/nginx/ca.pem")));
        assert_eq!(b.versions, [TlsVersion::Tls13]);
    }

    #[test]
    fn fastcgi_script_filename_is_worked_out_or_left_alone() {
        let v = view(
            "http { server { root /srv/www;
               location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000;
                 fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; }
               location /x { fastcgi_pass 127.0.0.1:9000; fastcgi_param SCRIPT_FILENAME $http_x; } } }",
        );
        let req = fastcgi_request(&v.targets[0], &shape("/index.php?a=1")).expect("derivable");
        assert!(
            req.params
                .iter()
                .any(|(k, v)| k == "SCRIPT_FILENAME" && v == "/srv/www/index.php"),
            "{:?}",
            req.params
        );
        assert!(fastcgi_request(&v.targets[1], &shape("/x")).is_none());
    }
}
