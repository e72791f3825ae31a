//! Scenarios of protocols: nginx speaks TLS to a plain port or plain HTTP to a TLS one, HTTP
//! to a FastCGI pool or FastCGI to an HTTP app, TLS to an upstream whose certificate it
//! does not trust, and TLS without SNI to one that requires it.

use std::net::SocketAddr;
use std::path::Path;

use crate::LabError;
use crate::scenario::{Expectation, ScenarioInfo};
use crate::setup::{Setup, app, fastcgi, https_to, php_fpm, spawn_app};
use crate::tls;
use crate::upstream::Behavior;

pub(super) static SCENARIOS: [ScenarioInfo; 6] = [
    ScenarioInfo::new(
        "https-to-plain",
        "proxy_pass https:// points at an app that speaks plain HTTP",
        Expectation::problem("upstream-protocol-mismatch", &[]),
        Some("wrong version number"),
        Some(502),
        |listen, _| https_to(listen, Behavior::Ok),
    ),
    ScenarioInfo::new(
        "http-to-tls",
        "proxy_pass http:// points at an app that speaks only TLS",
        Expectation::problem("upstream-protocol-mismatch", &[]),
        Some("upstream sent no valid HTTP/1.0 header"),
        None,
        |listen, dir| app(listen, Behavior::Tls(tls::upstream_server(dir.path)?)),
    ),
    ScenarioInfo::new(
        "proxy-to-fastcgi",
        "proxy_pass http:// points at a PHP-FPM (FastCGI) pool",
        Expectation::problem("upstream-protocol-mismatch", &[]),
        // php-fpm closes the HTTP request with unread input.
        Some("recv() failed (104: "),
        Some(502),
        |listen, dir| {
            let (upstream, fpm) = php_fpm(dir, None)?;
            Ok(Setup {
                php_fpm: Some(fpm),
                ..Setup::new(listen, upstream)
            })
        },
    )
    .php_fpm(),
    ScenarioInfo::new(
        "fastcgi-to-http",
        "fastcgi_pass points at an app that speaks HTTP",
        Expectation::problem("upstream-protocol-mismatch", &[]),
        Some("upstream sent unsupported FastCGI protocol version: 72"),
        Some(502),
        |listen, dir| {
            let (addr, responder) = spawn_app(Behavior::Ok)?;
            Ok(fastcgi(
                listen,
                dir,
                addr.to_string(),
                vec![responder],
                None,
                crate::phpfpm::SCRIPT,
            ))
        },
    ),
    ScenarioInfo::new(
        "tls-verify",
        "proxy_ssl_verify on, but the app's self-signed certificate is not trusted",
        Expectation::problem("upstream-tls", &[]),
        Some("upstream SSL certificate verify error: (18:"),
        Some(502),
        |listen, dir| tls_verify(listen, dir.path),
    ),
    ScenarioInfo::new(
        "tls-needs-sni",
        "proxy_pass https:// to an app that requires SNI, without proxy_ssl_server_name on",
        Expectation::problem("upstream-tls", &[]),
        Some("SSL_do_handshake() failed"),
        Some(502),
        |listen, dir| tls_needs_sni(listen, dir.path),
    ),
];

/// `proxy_pass https://backend` (an upstream group) to a TLS app that ends every handshake
/// without SNI; nginx sends none unless `proxy_ssl_server_name on`.
fn tls_needs_sni(listen: SocketAddr, dir: &Path) -> Result<Setup, LabError> {
    let (addr, responder) = spawn_app(Behavior::Tls(tls::upstream_server_requiring_sni(dir)?))?;
    let upstream = addr.to_string();
    Ok(Setup {
        location: crate::config::proxy("https://backend"),
        group: vec![upstream.clone()],
        responders: vec![responder],
        ..Setup::new(listen, upstream)
    })
}

/// A TLS app with a self-signed certificate; nginx verifies it against an unrelated CA.
fn tls_verify(listen: SocketAddr, dir: &Path) -> Result<Setup, LabError> {
    let ca = tls::unrelated_ca(dir)?;
    let mut setup = https_to(listen, Behavior::Tls(tls::upstream_server(dir)?))?;
    setup.location.extend([
        "proxy_ssl_verify on".to_owned(),
        format!("proxy_ssl_trusted_certificate \"{}\"", ca.display()),
    ]);
    Ok(setup)
}
