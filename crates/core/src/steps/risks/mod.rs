//! Static 502 risks: rules over the nginx configuration (and a few facts about the host)
//! that predict 502s (and the 500s people take for them) before any log shows one.
//!
//! What belongs here: the `config.risks` check, the [`HostContext`] it gathers (what
//! `localhost` resolves to as nginx sees it, the workers' open-file limit, nginx's own
//! listening sockets, the system's DNS servers), [`rules`], which runs the pure rules, and
//! the helpers several rules share (wording of places and fixes, pass-argument pieces).
//! Every rule yields one [`Severity::Warning`] finding per risk, with the directive that
//! makes the risk, why it leads to a failure, and the directive that removes it. The
//! diagnosis engine uses these only to corroborate causes that logs or probes observed.
//!
//! The rules follow nginx's own behaviour (docs/nginx-messages.md §5–§8, §15, §20 and §22),
//! one file per group:
//!
//! 1. `localhost` upstreams become one peer per address (`::1` and `127.0.0.1`) (`names.rs`).
//! 2. A variable pass target that needs DNS but has no `resolver` (nginx-messages §5) (`names.rs`).
//! 3. Host names resolved only at start or reload (stale addresses) (`names.rs`).
//! 4. `keepalive` in an upstream whose users cannot reuse connections (`keepalive.rs`).
//! 5. HTTPS/gRPCS to a host name without SNI (`tls.rs`).
//! 6. Proxying to nginx's own listening address and server block (a loop) (`proxy_loop.rs`).
//! 7. Multi-server groups where one failure per server takes the group down (§6)
//!    (`groups.rs`).
//! 8. `worker_connections` above the workers' open-file limit (§15) (`limits.rs`).

mod context;
mod groups;
mod keepalive;
mod limits;
mod names;
mod proxy_loop;
#[cfg(test)]
mod test_support;
mod tls;
mod written;

pub use context::HostContext;
pub use written::RISKS;

use fix502_nginx::config::Config;
use fix502_nginx::view::ConfigView;

use crate::check::{FindingsFuture, FnCheck};
use crate::facts::Facts;
use crate::report::{Finding, Severity};

/// The checks of this module.
pub static CHECKS: [FnCheck; 1] = [FnCheck::new(RISKS, risks_check)];

/// How many rules [`rules`] runs.
pub const RULE_COUNT: usize = 8;

fn risks_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let Some(config) = &facts.config else {
            return vec![Finding::could_not_check(
                RISKS,
                facts
                    .config_error
                    .clone()
                    .unwrap_or_else(|| "config not loaded".to_owned()),
            )];
        };
        let host = context::gather(facts).await;
        let mut out = rules(config, &facts.view, &host);
        if out.is_empty() {
            out.push(Finding::new(
                RISKS,
                Severity::Info,
                format!(
                    "{RULE_COUNT} static 502-risk rules checked over {} pass directive(s) and {} upstream group(s): none applies",
                    facts.view.targets.len(),
                    facts.view.upstreams.len()
                ),
            ));
        }
        out
    })
}

/// Every rule over the config: one Warning finding per risk, each with check
/// [`RISKS`], a cause, the upstream as nginx writes it (when there is one), the location of
/// the directive that makes the risk, a one-line message, evidence and at least one fix.
pub fn rules(config: &Config, view: &ConfigView, host: &HostContext) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(names::localhost_rule(view, host));
    out.extend(names::resolver_rule(config, view, host));
    out.extend(names::stale_dns_rule(config, view, host));
    out.extend(keepalive::keepalive_rule(view, host));
    out.extend(tls::sni_rule(view));
    out.extend(proxy_loop::loop_rule(view, host));
    out.extend(groups::max_fails_rule(view));
    out.extend(limits::fd_rule(config, host));
    out
}

#[cfg(test)]
mod tests {
    use super::test_support::{dual, http, run};
    use super::*;

    #[test]
    fn clean_config_has_no_risk() {
        let found = run(
            http(
                "upstream app { server 127.0.0.1:8000; }\n\
                 server { listen 80; server_name example.com;\n\
                 location / { proxy_pass http://app; }\n\
                 location ~ \\.php$ { fastcgi_pass unix:/run/php/php8.2-fpm.sock; } }",
            ),
            &HostContext {
                worker_nofile: Some(65536),
                localhost_addrs: dual().localhost_addrs,
                ..HostContext::default()
            },
        );
        assert!(found.is_empty(), "{found:#?}");
    }
}
