//! Rule 5: TLS to an upstream host name without SNI.
//!
//! `proxy_ssl_server_name` (and its grpc/uwsgi twins) is off by default, so nginx sends no
//! server name; with it on, a group's users send the group's name unless `*_ssl_name` says
//! otherwise. A TLS server that picks its certificate or backend by name then fails the
//! handshake (docs/nginx-messages.md §8). What belongs here: this rule and its tests.

use std::net::IpAddr;

use fix502_nginx::resolver::literal_host;
use fix502_nginx::settings::directive_prefix;
use fix502_nginx::view::{ConfigView, Peer, TargetAddress};

use super::written::{loc, name_of, warning, written, written_at};
use crate::causes::Cause;
use crate::report::Finding;
use crate::upstream::Upstream;

/// The port of a TLS pass argument with variables that writes none (`https://`, `grpcs://`
/// and `suwsgi://` all mean 443 here; only the name shown depends on it).
const TLS_PORT: u16 = 443;

pub(super) fn sni_rule(view: &ConfigView) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &view.targets {
        if !matches!(t.scheme.as_str(), "https" | "grpcs" | "suwsgi") {
            continue;
        }
        let prefix = directive_prefix(t.module);
        let server_name = format!("{prefix}_ssl_server_name");
        let ssl_name = format!("{prefix}_ssl_name");
        let on = t
            .settings
            .get(&server_name)
            .is_some_and(|s| s.args.first().is_some_and(|a| a == "on"));
        let (upstream, names, group) = match &t.address {
            TargetAddress::Peer(peer) => match name_of(peer) {
                Some((name, _)) => (peer.to_string(), vec![name.to_owned()], None),
                None => continue,
            },
            TargetAddress::Group(g) => {
                let Some(group) = view.group(g) else {
                    continue;
                };
                let names: Vec<String> = group
                    .servers
                    .iter()
                    .filter_map(|s| name_of(&s.peer).map(|(n, _)| n.to_owned()))
                    .collect();
                if names.is_empty() {
                    continue;
                }
                (group.name.clone(), names, Some(group.name.clone()))
            }
            TargetAddress::Variable(_) => match literal_host(&t.raw, TLS_PORT) {
                Some((host, port)) if host.parse::<IpAddr>().is_err() => {
                    (Peer::inet(&host, port).to_string(), vec![host], None)
                }
                _ => continue,
            },
            _ => continue,
        };
        let first = names.first().cloned().unwrap_or_default();
        let name_set = t.settings.get(&ssl_name);
        let f = if !on {
            let mut f = warning(
                Cause::UPSTREAM_TLS,
                format!(
                    "`{}` connects over TLS to {} without SNI ({server_name} is off): a TLS server that picks its certificate or backend by name fails the handshake",
                    written(t),
                    names.join(", ")
                ),
            )
            .fix(format!("{server_name} on;"));
            if group.is_some() && name_set.is_none() {
                f = f.fix(format!("{ssl_name} {first};"));
            }
            f
        } else if let (Some(g), None) = (&group, name_set) {
            warning(
                Cause::UPSTREAM_TLS,
                format!(
                    "`{}` sends the upstream group's name `{g}` as SNI ({ssl_name} defaults to $proxy_host): a TLS server that routes by name does not know it",
                    written(t)
                ),
            )
            .fix(format!("{ssl_name} {first};"))
        } else {
            continue;
        };
        out.push(
            f.upstream(Upstream::parse(&upstream))
                .at(loc(&t.span))
                .evidence(written_at(t))
                .evidence(
                    "without the right SNI nginx logs \"peer closed connection in SSL handshake\" or \"SSL_do_handshake() failed (... alert handshake failure / unrecognized name ...)\" and answers 502",
                ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::causes::Cause;
    use crate::steps::risks::context::HostContext;
    use crate::steps::risks::test_support::{http, run, with};

    #[test]
    fn sni_fires() {
        let found = run(
            http(
                "upstream apis { server api.example.com:443; }\n\
                 server { location / { proxy_pass https://api.example.com; }\n\
                 location /g/ { proxy_pass https://apis; }\n\
                 location /s/ { proxy_ssl_server_name on; proxy_pass https://apis; }\n\
                 location /r/ { grpc_pass grpcs://grpc.example.com:443; } }",
            ),
            &HostContext::default(),
        );
        let hits = with(&found, Cause::UPSTREAM_TLS);
        assert_eq!(hits.len(), 4, "{hits:#?}");
        assert_eq!(
            hits[0]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("api.example.com:443")
        );
        assert_eq!(hits[0].fix, vec!["proxy_ssl_server_name on;"]);
        assert_eq!(
            hits[1].fix,
            vec![
                "proxy_ssl_server_name on;",
                "proxy_ssl_name api.example.com;"
            ]
        );
        assert!(hits[2].message.contains("`apis` as SNI"));
        assert_eq!(hits[2].fix, vec!["proxy_ssl_name api.example.com;"]);
        assert_eq!(hits[3].fix, vec!["grpc_ssl_server_name on;"]);
    }

    #[test]
    fn sni_with_variables() {
        let found = run(
            http(
                "server { location / { proxy_pass https://api.example.com$request_uri; }\n\
                 location /p/ { proxy_pass https://api.example.com:8443/p$is_args$args; }\n\
                 location /ip/ { proxy_pass https://10.0.0.5$request_uri; }\n\
                 location /v/ { proxy_pass https://$http_x_api$request_uri; } }",
            ),
            &HostContext::default(),
        );
        let hits = with(&found, Cause::UPSTREAM_TLS);
        assert_eq!(hits.len(), 2, "{hits:#?}");
        assert_eq!(
            hits[0]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("api.example.com:443")
        );
        assert_eq!(
            hits[1]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("api.example.com:8443")
        );
    }

    #[test]
    fn sni_near_misses() {
        let found = run(
            http(
                "server { location / { proxy_ssl_server_name on; proxy_pass https://api.example.com; }\n\
                 location /ip/ { proxy_pass https://10.0.0.5:443; }\n\
                 location /plain/ { proxy_pass http://10.0.0.5:80; } }",
            ),
            &HostContext::default(),
        );
        assert!(with(&found, Cause::UPSTREAM_TLS).is_empty(), "{found:#?}");
    }
}
