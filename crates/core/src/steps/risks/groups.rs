//! Rule 7: an upstream group where one failure per server takes the whole group down
//! (docs/nginx-messages.md §6).
//!
//! With every server at `max_fails=1` (the default) and no backup, one failed attempt per
//! server, which a retried request makes easily, marks the whole group failed for
//! `fail_timeout`: every request then gets "no live upstreams" (502). What belongs here:
//! this rule, which failures count against `max_fails`, and its tests.

use fix502_nginx::settings::next_upstream_directive;
use fix502_nginx::view::{ConfigView, PassTarget, TargetAddress, UpstreamServer};

use super::written::{MAX_LISTED, loc, server_line, warning, written};
use crate::causes::Cause;
use crate::report::{Finding, Location};
use crate::upstream::Upstream;

/// The failures that count against `max_fails` for one `*_next_upstream` value.
fn counted_failures(values: &[String]) -> Vec<String> {
    let mut counted: Vec<String> = ["error", "timeout", "invalid_header"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for v in values {
        if matches!(
            v.as_str(),
            "http_500" | "http_502" | "http_503" | "http_504" | "http_429"
        ) && !counted.contains(v)
        {
            counted.push(v.clone());
        }
    }
    counted
}

pub(super) fn max_fails_rule(view: &ConfigView) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in &view.upstreams {
        let primary: Vec<&UpstreamServer> = g.servers.iter().filter(|s| !s.backup).collect();
        if primary.len() < 2 || primary.len() != g.servers.len() {
            continue;
        }
        let live: Vec<&UpstreamServer> = primary.iter().copied().filter(|s| !s.down).collect();
        if live.is_empty() || live.iter().any(|s| s.max_fails != 1) {
            continue;
        }
        let mut timeouts: Vec<&str> = Vec::new();
        for s in &live {
            if !timeouts.contains(&s.fail_timeout.as_str()) {
                timeouts.push(&s.fail_timeout);
            }
        }
        let fail_timeout = timeouts.join(",");
        let users: Vec<&PassTarget> = view
            .targets
            .iter()
            .filter(|t| matches!(&t.address, TargetAddress::Group(n) if n.eq_ignore_ascii_case(&g.name)))
            .collect();
        let mut f = warning(
            Cause::NO_LIVE_UPSTREAMS,
            format!(
                "upstream {}: {} servers with max_fails=1 fail_timeout={fail_timeout}: one failed attempt each takes the whole group down for {fail_timeout}",
                g.name,
                live.len()
            ),
        )
        .upstream(Upstream::Group(g.name.clone()))
        .at(loc(&g.span));
        for s in live.iter().take(MAX_LISTED) {
            f = f.evidence(format!(
                "{} at {}",
                server_line(&s.args),
                Location::from(&s.span)
            ));
        }
        let down = primary.len() - live.len();
        if down > 0 {
            f = f.evidence(format!("{down} more server(s) marked down"));
        }
        let mut retried = users.is_empty();
        let mut extra = false;
        for t in users.iter().take(MAX_LISTED) {
            let name = next_upstream_directive(t.module);
            let (values, origin) = match t.settings.get(name) {
                Some(s) => (s.args.clone(), format!("at {}", Location::from(&s.span))),
                None => (
                    vec!["error".to_owned(), "timeout".to_owned()],
                    "(the default)".to_owned(),
                ),
            };
            let counted = counted_failures(&values);
            extra |= counted.len() > 3;
            retried |= values.iter().any(|v| v == "error" || v == "timeout");
            f = f.evidence(format!(
                "`{}`: {name} {} {origin}; failures that count: {}",
                written(t),
                values.join(" "),
                counted.join(" ")
            ));
        }
        if retried {
            f = f.evidence(
                "a request that fails on one server is retried on the next, so a single bad moment can mark every server failed",
            );
        }
        if extra {
            f = f.evidence(
                "http_5xx conditions make the application's own error answers count as failures: an outage of the whole group is much likelier",
            );
        }
        f = f.evidence(format!(
            "then every request gets \"no live upstreams while connecting to upstream\" (502) for {fail_timeout}, even after the application recovers"
        ));
        for s in live.iter().take(MAX_LISTED) {
            let mut args: Vec<String> = s
                .args
                .iter()
                .filter(|a| !a.starts_with("max_fails="))
                .cloned()
                .collect();
            args.push("max_fails=3".to_owned());
            f = f.fix(server_line(&args));
        }
        f = f.fix("or add a backup server: server <address> backup;");
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::counted_failures;
    use crate::causes::Cause;
    use crate::steps::risks::context::HostContext;
    use crate::steps::risks::test_support::{http, run, with};

    #[test]
    fn max_fails_fires() {
        let found = run(
            http(
                "upstream backend { server 10.0.0.1:8000; server 10.0.0.2:8000 weight=2; }\n\
                 server { location / { proxy_next_upstream error timeout http_502; proxy_pass http://backend; } }",
            ),
            &HostContext::default(),
        );
        let hits = with(&found, Cause::NO_LIVE_UPSTREAMS);
        assert_eq!(hits.len(), 1, "{found:#?}");
        let f = hits[0];
        assert_eq!(
            f.message,
            "upstream backend: 2 servers with max_fails=1 fail_timeout=10s: one failed attempt each takes the whole group down for 10s"
        );
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("backend")
        );
        assert!(
            f.evidence
                .iter()
                .any(|e| e.contains("failures that count: error timeout invalid_header http_502"))
        );
        assert!(f.evidence.iter().any(|e| e.contains("much likelier")));
        assert_eq!(f.fix[1], "server 10.0.0.2:8000 weight=2 max_fails=3;");
    }

    #[test]
    fn max_fails_near_misses() {
        for group in [
            "server 10.0.0.1:8000;",
            "server 10.0.0.1:8000; server 10.0.0.2:8000 max_fails=0;",
            "server 10.0.0.1:8000; server 10.0.0.2:8000; server 10.0.0.3:8000 backup;",
            "server 10.0.0.1:8000 max_fails=3; server 10.0.0.2:8000 max_fails=3;",
        ] {
            let found = run(
                http(&format!(
                    "upstream b {{ {group} }}\nserver {{ location / {{ proxy_pass http://b; }} }}"
                )),
                &HostContext::default(),
            );
            assert!(with(&found, Cause::NO_LIVE_UPSTREAMS).is_empty(), "{group}");
        }
    }

    #[test]
    fn counted() {
        let values: Vec<String> = [
            "error",
            "http_404",
            "http_503",
            "http_503",
            "non_idempotent",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            counted_failures(&values),
            vec!["error", "timeout", "invalid_header", "http_503"]
        );
    }
}
