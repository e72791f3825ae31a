//! Rule 4: `keepalive` in an upstream group whose pass directives cannot reuse connections.
//!
//! `proxy_pass` keeps upstream connections only with HTTP/1.1 and without
//! `Connection: close` (both defaults before nginx 1.29.7); `fastcgi_pass` only with
//! `fastcgi_keep_conn on`. Otherwise every request opens a new connection, and under load
//! the closed ones exhaust the local ports (TIME_WAIT; errno 99, Cannot assign requested
//! address: docs/nginx-messages.md §19). What belongs here: this rule and its tests.

use fix502_nginx::settings::keepalive_blockers;
use fix502_nginx::view::{ConfigView, PassModule, TargetAddress};

use super::context::HostContext;
use super::written::{loc, quoted_args, warning, written, written_at};
use crate::causes::Cause;
use crate::report::{Finding, Location};
use crate::upstream::Upstream;

pub(super) fn keepalive_rule(view: &ConfigView, host: &HostContext) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &view.targets {
        let TargetAddress::Group(name) = &t.address else {
            continue;
        };
        let Some(group) = view.group(name) else {
            continue;
        };
        let Some(keepalive) = group.settings.get("keepalive") else {
            continue;
        };
        let s = &t.settings;
        let Some(blockers) = keepalive_blockers(t.module, s, host.version) else {
            continue;
        };
        // (the missing directive, why) pairs
        let missing: Vec<(&str, String)> = blockers
            .into_iter()
            .map(|b| {
                let why = match (&b.setting, b.directive) {
                    (Some(set), _) => format!(
                        "{} at {}",
                        if set.name == "proxy_set_header" {
                            format!("proxy_set_header {}", quoted_args(&set.args))
                        } else {
                            set.to_string()
                        },
                        Location::from(&set.span)
                    ),
                    (None, d) if d.starts_with("proxy_http_version") => {
                        "proxy_http_version is 1.0 by default before nginx 1.29.7".into()
                    }
                    (None, d) if d.starts_with("proxy_set_header") => {
                        "nginx sends `Connection: close` by default before nginx 1.29.7".into()
                    }
                    (None, _) => "fastcgi_keep_conn is off: nginx asks the FastCGI server to close after each request".into(),
                };
                (b.directive, why)
            })
            .collect();
        if missing.is_empty() {
            continue;
        }
        let mut f = warning(
            Cause::PORT_EXHAUSTION,
            format!(
                "upstream {}: `keepalive {}` is configured but `{}` cannot reuse connections, so nginx opens a new connection per request",
                group.name,
                keepalive.args.join(" "),
                written(t)
            ),
        )
        .upstream(Upstream::Group(group.name.clone()))
        .at(loc(&t.span))
        .evidence(format!(
            "keepalive {} at {}",
            keepalive.args.join(" "),
            Location::from(&keepalive.span)
        ))
        .evidence(written_at(t));
        for (_, why) in &missing {
            f = f.evidence(why.clone());
        }
        f = f.evidence(
            "each closed connection leaves a local port in TIME_WAIT for 60s: under load the ports run out (connect() failed (99: Cannot assign requested address), 502)",
        );
        if t.module == PassModule::Proxy && missing.iter().any(|(d, _)| d.contains("Connection")) {
            let inherited = s.all("proxy_set_header");
            f = f.evidence(match inherited.first() {
                Some(h) => format!(
                    "add it next to the proxy_set_header lines in effect (from {}): a block's own proxy_set_header lines replace every inherited one",
                    Location::from(&h.span)
                ),
                None => "add it in the block of the pass directive".to_owned(),
            });
        }
        for (directive, _) in missing {
            f = f.fix(directive);
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::causes::Cause;
    use crate::steps::risks::context::HostContext;
    use crate::steps::risks::test_support::{http, run, with};

    #[test]
    fn keepalive_unused_fires() {
        let found = run(
            http(
                "upstream app { server 127.0.0.1:8000; keepalive 16; }\n\
                 upstream php { server 127.0.0.1:9000; keepalive 8; }\n\
                 server { proxy_set_header X-Real-IP $remote_addr;\n\
                 location / { proxy_pass http://app; }\n\
                 location ~ \\.php$ { fastcgi_pass php; } }",
            ),
            &HostContext {
                version: Some((1, 22, 1)),
                ..HostContext::default()
            },
        );
        let hits = with(&found, Cause::PORT_EXHAUSTION);
        assert_eq!(hits.len(), 2, "{hits:#?}");
        assert_eq!(
            hits[0]
                .upstream
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            hits[0].fix,
            vec![
                "proxy_http_version 1.1;",
                "proxy_set_header Connection \"\";"
            ]
        );
        assert!(
            hits[0]
                .evidence
                .iter()
                .any(|e| e.contains("replace every inherited one"))
        );
        assert_eq!(hits[1].fix, vec!["fastcgi_keep_conn on;"]);
    }

    #[test]
    fn keepalive_near_misses() {
        let body = "upstream app { server 127.0.0.1:8000; keepalive 16; }\n\
             upstream php { server 127.0.0.1:9000; keepalive 8; }\n\
             server { location / { proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://app; }\n\
             location ~ \\.php$ { fastcgi_keep_conn on; fastcgi_pass php; } }";
        let old = HostContext {
            version: Some((1, 22, 1)),
            ..HostContext::default()
        };
        assert!(with(&run(http(body), &old), Cause::PORT_EXHAUSTION).is_empty());
        let body = "upstream app { server 127.0.0.1:8000; keepalive 16; }\n\
             server { location / { proxy_pass http://app; } }";
        let new = HostContext {
            version: Some((1, 29, 7)),
            ..HostContext::default()
        };
        assert!(with(&run(http(body), &new), Cause::PORT_EXHAUSTION).is_empty());
        // But an explicit `Connection close` defeats even the new defaults.
        let body = "upstream app { server 127.0.0.1:8000; keepalive 16; }\n\
             server { location / { proxy_set_header Connection close; proxy_pass http://app; } }";
        let hits = run(http(body), &new);
        assert_eq!(with(&hits, Cause::PORT_EXHAUSTION).len(), 1);
    }
}
