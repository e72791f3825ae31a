//! Diagnosis: join the findings of every step into ranked root causes, each with a
//! confidence, an evidence chain and the exact fix. The rules that weigh and join claims
//! live here; everything about one cause (what it absorbs, how sure its support makes us,
//! its wording) is its entry in [`crate::causes`].

use std::collections::BTreeMap;

use fix502_nginx::view::{Peer, TargetAddress};

use crate::causes::{self, Cause, Context, Support};
use crate::facts::Facts;
use crate::report::{DIAGNOSIS, Diagnosis, Evidence, Finding, Severity, StepReport};
use crate::upstream::Upstream;

/// A claim: where its support came from, and the findings behind it.
#[derive(Debug, Default, Clone)]
struct Claim {
    support: Support,
    findings: Vec<Finding>,
}

impl Claim {
    /// Counts `f` as support of its kind.
    fn add(&mut self, f: &Finding) {
        match f.kind {
            Evidence::Log => self.support.log = true,
            Evidence::Config => self.support.config = true,
            _ => self.support.live = true,
        }
        self.findings.push(f.clone());
    }
}

type Claims = BTreeMap<(Cause, Option<Upstream>), Claim>;

/// Moves the claims of `absorbed` causes into the `root` claim of the same upstream, where
/// there is one: the root cause explains what the others saw.
fn absorb_into(claims: &mut Claims, root: Cause, absorbed: &[Cause]) {
    let upstreams: Vec<Option<Upstream>> = claims
        .keys()
        .filter(|(c, _)| *c == root)
        .map(|(_, u)| u.clone())
        .collect();
    for upstream in upstreams {
        for cause in absorbed {
            if let Some(s) = claims.remove(&(*cause, upstream.clone()))
                && let Some(target) = claims.get_mut(&(root, upstream.clone()))
            {
                target.support.log |= s.support.log;
                target.support.live |= s.support.live;
                target.findings.extend(s.findings);
            }
        }
    }
}

/// Merges claim `from` into claim `into` (support and findings).
fn merge_claim(into: &mut Claim, from: Claim) {
    into.support.log |= from.support.log;
    into.support.live |= from.support.live;
    into.support.config |= from.support.config;
    into.findings.extend(from.findings);
}

/// Joins claims that are one cause at one upstream said two ways: `Name(host)` into the one
/// claim of the same cause at `host:port` (when there is exactly one such port), then a
/// claim without an upstream into every claim of its cause that has one.
fn merge_same_claims(claims: &mut Claims) {
    let named: Vec<(Cause, Upstream)> = claims
        .keys()
        .filter_map(|(c, u)| match u {
            Some(u @ Upstream::Name(_)) => Some((*c, u.clone())),
            _ => None,
        })
        .collect();
    for (cause, name) in named {
        let with_port: Vec<Upstream> = claims
            .keys()
            .filter(|(c, u)| {
                *c == cause
                    && u.as_ref().is_some_and(|u| {
                        u.port().is_some() && u.host().is_some_and(|h| Some(h) == name.host())
                    })
            })
            .filter_map(|(_, u)| u.clone())
            .collect();
        if let [target] = with_port.as_slice()
            && let Some(from) = claims.remove(&(cause, Some(name)))
            && let Some(into) = claims.get_mut(&(cause, Some(target.clone())))
        {
            merge_claim(into, from);
        }
    }
    let general: Vec<Cause> = claims
        .keys()
        .filter(|(_, u)| u.is_none())
        .map(|(c, _)| *c)
        .collect();
    for cause in general {
        let specific: Vec<Option<Upstream>> = claims
            .keys()
            .filter(|(c, u)| *c == cause && u.is_some())
            .map(|(_, u)| u.clone())
            .collect();
        if specific.is_empty() {
            continue;
        }
        let Some(from) = claims.remove(&(cause, None)) else {
            continue;
        };
        for upstream in specific {
            if let Some(into) = claims.get_mut(&(cause, upstream)) {
                merge_claim(into, from.clone());
            }
        }
    }
}

/// The causes that absorb others, in an order where a cause has absorbed what it explains
/// before a cause that explains it takes its claim over.
fn absorbing_order() -> Vec<Cause> {
    let mut left: Vec<Cause> = Cause::all()
        .filter(|c| !c.entry().absorbs.is_empty())
        .collect();
    let mut order = Vec::new();
    // Each pass moves at least one cause (the relation has no circle: a test in `causes`).
    for _ in 0..left.len() {
        let ready: Vec<Cause> = left
            .iter()
            .copied()
            .filter(|c| c.entry().absorbs.iter().all(|a| !left.contains(a)))
            .collect();
        left.retain(|c| !ready.contains(c));
        order.extend(ready);
    }
    order.extend(left);
    order
}

/// Whether the live exchange with `upstream` got a complete, valid answer.
async fn answers_well_now(facts: &Facts, upstream: &Upstream) -> bool {
    use crate::exchange::Answer;
    use fix502_probe::gateway::GatewayOutcome;
    use fix502_probe::http::HttpOutcome;
    let Some(i) = facts.index_at(upstream) else {
        return false;
    };
    match facts.exchanges().await.get(i) {
        Some(Some(x)) => match &x.answer {
            Answer::Http(p) => p.outcome == HttpOutcome::Response,
            Answer::FastCgi {
                values, request, ..
            } => {
                values.gateway.outcome == GatewayOutcome::Values
                    && request
                        .as_ref()
                        .is_none_or(|r| r.gateway.outcome == GatewayOutcome::Response)
            }
            _ => false,
        },
        _ => false,
    }
}

/// How nginx keeps connections to `upstream` alive, when it does: `keepalive` in its
/// upstream block plus HTTP/1.1 without `Connection: close` (the defaults from 1.29.7), or
/// `fastcgi_keep_conn on`.
pub async fn keepalive_in_use(facts: &Facts, upstream: &Upstream) -> Option<String> {
    let endpoint = facts.endpoint_at(upstream)?;
    let group = facts.view.group(endpoint.group.as_deref()?)?;
    let modern = facts.nginx_version().is_some_and(|v| v >= (1, 29, 7));
    let keepalive = match group.settings.get("keepalive") {
        Some(set) => format!(
            "keepalive {} in upstream {} ({})",
            set.args.join(" "),
            group.name,
            crate::report::Location::from(&set.span)
        ),
        None if modern => format!(
            "upstream {} keeps connections alive by default (nginx 1.29.7+)",
            group.name
        ),
        None => return None,
    };
    let target = facts.view.targets.get(endpoint.uses.first()?.target)?;
    let reused = fix502_nginx::settings::keepalive_blockers(
        target.module,
        &target.settings,
        facts.nginx_version(),
    )
    .is_some_and(|b| b.is_empty());
    if !reused {
        return None;
    }
    let timeout = group
        .settings
        .get("keepalive_timeout")
        .map(|t| t.args.join(" "))
        .unwrap_or_else(|| "60s (the default)".to_owned());
    Some(format!(
        "nginx reuses idle connections to {upstream}: {keepalive}, keepalive_timeout {timeout}; an upstream that closes idle connections sooner races with nginx reusing them"
    ))
}

/// A static risk rule's warning (it never makes a claim on its own).
fn is_risk(f: &Finding) -> bool {
    f.check == crate::steps::risks::RISKS
}

/// The name of a group (or of a host without a port) an upstream stands for.
fn name_of(upstream: &Upstream) -> Option<&str> {
    match upstream {
        Upstream::Group(name) | Upstream::Name(name) => Some(name),
        Upstream::Peer(_) => None,
    }
}

/// Whether a claim about `upstream` concerns what `--url` routes to (always true without
/// `--url`, and for claims about no upstream). A URL that nginx serves itself (the route
/// reaches no pass directive) concerns no upstream.
fn in_scope(facts: &Facts, upstream: Option<&Upstream>) -> bool {
    let (Some(Ok(route)), Some(u)) = (&facts.route, upstream) else {
        return true;
    };
    let Some(target) = route.target else {
        return false;
    };
    facts.endpoints.iter().any(|e| {
        u.peer() == Some(&e.peer)
            || (e.group.is_some() && e.group.as_deref() == name_of(u))
            || (matches!(&e.peer, Peer::Inet { .. } if !e.peer.is_ip_literal())
                && u.port().is_some()
                && Upstream::from(&e.peer).port() == u.port())
    }) || facts
        .view
        .targets
        .get(target)
        .is_some_and(|t| matches!(t.address, TargetAddress::Variable(_)))
}

/// The claim an app server's `reason` explains: the first of its causes claimed at the same
/// upstream (or at an address of the same endpoint).
async fn explained_claim(
    claims: &Claims,
    facts: &Facts,
    reason: &Finding,
) -> Option<(Cause, Option<Upstream>)> {
    let at = reason.upstream.as_ref()?;
    for cause in &reason.explains {
        for (c, u) in claims.keys() {
            let Some(u) = u.as_ref().filter(|_| c == cause) else {
                continue;
            };
            if u == at || facts.same_endpoint(u, at).await {
                return Some((*c, Some(u.clone())));
            }
        }
    }
    None
}

/// Gives a `config-not-reloaded` claim the upstreams it explains: logged failures at
/// addresses the config on disk no longer connects to.
async fn rekey_not_reloaded(claims: &mut Claims, facts: &Facts) {
    let Some(base) = claims.get(&(Cause::CONFIG_NOT_RELOADED, None)).cloned() else {
        return;
    };
    let mut stale: Vec<(Cause, Upstream)> = Vec::new();
    for ((cause, upstream), claim) in claims.iter() {
        if let Some(u) = upstream
            && *cause != Cause::CONFIG_NOT_RELOADED
            && claim.support.log
            && !claim.support.live
            && facts.endpoint_of(u).await.is_none()
            && !name_of(u).is_some_and(|n| facts.view.upstreams.iter().any(|g| g.name == n))
        {
            stale.push((*cause, u.clone()));
        }
    }
    for (cause, upstream) in stale {
        let mut s = base.clone();
        if let Some(logged) = claims.get(&(cause, Some(upstream.clone()))) {
            s.support.log = true;
            s.findings.extend(logged.findings.iter().cloned());
        }
        s.findings.push(
            Finding::new(
                DIAGNOSIS,
                Severity::Warning,
                format!(
                    "nginx still connects to {upstream}, which the config on disk no longer names"
                ),
            )
            .upstream(upstream.clone()),
        );
        claims.remove(&(Cause::CONFIG_NOT_RELOADED, None));
        claims.insert((Cause::CONFIG_NOT_RELOADED, Some(upstream)), s);
    }
}

/// Whether nginx's retries hide a connect failure from clients: the upstream is one server
/// of a group whose other servers accept connections now, and the failure is one that
/// `*_next_upstream error` (the default) retries.
async fn retries_hide(facts: &Facts, cause: Cause, upstream: Option<&Upstream>) -> bool {
    let Some(u) = upstream else { return false };
    if !cause.entry().retried {
        return false;
    }
    let Some(group) = facts.endpoint_of(u).await.and_then(|e| e.group.clone()) else {
        return false;
    };
    let probes = facts.probes().await;
    facts.endpoints.iter().zip(probes).any(|(e, p)| {
        e.group.as_deref() == Some(group.as_str()) && u.peer() != Some(&e.peer) && p.ok()
    })
}

/// Ranks the causes the findings point to. Empty when nothing is wrong.
pub async fn diagnose(steps: &[StepReport], facts: &Facts) -> Vec<Diagnosis> {
    // 1. Claims: (cause, upstream) with the findings behind them.
    let mut claims: Claims = BTreeMap::new();
    let mut risks: Vec<&Finding> = Vec::new();
    let mut reasons: Vec<&Finding> = Vec::new();
    for f in steps.iter().flat_map(|s| &s.findings) {
        if f.could_not_check || f.severity == Severity::Info {
            continue;
        }
        if !f.explains.is_empty() && in_scope(facts, f.upstream.as_ref()) {
            reasons.push(f);
            continue;
        }
        let Some(cause) = f.cause else { continue };
        if is_risk(f) {
            risks.push(f);
            continue;
        }
        if !in_scope(facts, f.upstream.as_ref()) {
            continue;
        }
        claims
            .entry((cause, f.upstream.clone()))
            .or_default()
            .add(f);
    }

    // 1b. A static risk of the config only corroborates a cause something observed.
    for risk in risks {
        let Some(cause) = risk.cause else { continue };
        let matching: Vec<_> = claims
            .keys()
            .filter(|(c, u)| {
                *c == cause && (u.is_none() || risk.upstream.is_none() || *u == risk.upstream)
            })
            .cloned()
            .collect();
        for key in matching {
            if let Some(claim) = claims.get_mut(&key) {
                claim.support.config = true;
                claim.findings.push(risk.clone());
            }
        }
    }

    // 1b'. An app server's own reason joins the claim of what nginx saw at its upstream
    //      (the first of the causes it explains that has a claim there); only a reason
    //      that explains nothing claimed makes a claim of its own, when it has a cause.
    for reason in reasons {
        match explained_claim(&claims, facts, reason).await {
            Some(key) => {
                if let Some(claim) = claims.get_mut(&key) {
                    claim.findings.push(reason.clone());
                }
            }
            None => {
                if let Some(cause) = reason.cause {
                    claims
                        .entry((cause, reason.upstream.clone()))
                        .or_default()
                        .add(reason);
                }
            }
        }
    }

    // 1c. The config on disk changed and nginx did not load it: failures at addresses the
    //     config no longer has come from the old config nginx still runs.
    rekey_not_reloaded(&mut claims, facts).await;

    // 1d. One claim per cause and upstream: a bare name joins the claim of the same name
    //     with its port, and a claim without an upstream joins the claims of its cause that
    //     have one. The most specific upstream keeps all the evidence.
    merge_same_claims(&mut claims);

    // 2. Root causes absorb what they explain at the same upstream (the table says which).
    for root in absorbing_order() {
        absorb_into(&mut claims, root, root.entry().absorbs);
    }

    // 3. Closes and resets that only the log shows, on an upstream that answers a fresh
    //    connection well and is reached over kept-alive connections: the keep-alive race.
    for cause in [Cause::UPSTREAM_CLOSED_EARLY, Cause::UPSTREAM_RESET] {
        let keys: Vec<Option<Upstream>> = claims
            .iter()
            .filter(|((c, _), claim)| *c == cause && claim.support.log && !claim.support.live)
            .map(|((_, u), _)| u.clone())
            .collect();
        for upstream in keys {
            let Some(u) = upstream.as_ref() else {
                continue;
            };
            let Some(keepalive) = keepalive_in_use(facts, u).await else {
                continue;
            };
            if !answers_well_now(facts, u).await {
                continue;
            }
            if let Some(mut s) = claims.remove(&(cause, upstream.clone())) {
                s.findings.push(
                    Finding::new(DIAGNOSIS, Severity::Warning, keepalive).upstream(u.clone()),
                );
                let target = claims
                    .entry((Cause::UPSTREAM_KEEPALIVE_RACE, upstream.clone()))
                    .or_default();
                target.support.log = true;
                target.support.live |= s.support.live;
                target.findings.extend(s.findings);
            }
        }
    }

    // 4. Confidence and wording.
    let mut out: Vec<(bool, Diagnosis)> = Vec::new();
    let groups_with_causes: Vec<String> = claims
        .keys()
        .filter(|(c, _)| !c.entry().consequence)
        .filter_map(|(_, u)| u.as_ref())
        .filter_map(|u| facts.endpoint_at(u).and_then(|e| e.group.clone()))
        .collect();
    let any_other_cause = claims.keys().any(|(c, _)| !c.entry().consequence);
    for ((cause, upstream), claim) in claims {
        let support = claim.support;
        let live_ok_now = match &upstream {
            _ if cause == Cause::UPSTREAM_KEEPALIVE_RACE => None,
            Some(u) if support.log && !support.live => facts.probe_of(u).await.map(|p| p.ok()),
            _ => None,
        };
        let consequence = cause.entry().consequence
            && (upstream
                .as_ref()
                .and_then(name_of)
                .is_some_and(|g| groups_with_causes.iter().any(|n| n == g))
                || any_other_cause);
        let base = support.level(live_ok_now == Some(true));
        let mut confidence = (cause.entry().confidence)(base, support);
        if consequence {
            confidence = confidence.min(0.5);
        }
        let retried = retries_hide(facts, cause, upstream.as_ref()).await;
        let ctx = Context {
            facts,
            upstream: upstream.as_ref(),
            findings: &claim.findings,
            recovered: live_ok_now == Some(true),
            retried,
        };
        let mut evidence: Vec<String> = Vec::new();
        for f in &claim.findings {
            let line = match &f.location {
                Some(loc) => format!("{} ({})", f.message, loc),
                None => f.message.clone(),
            };
            if !evidence.contains(&line) {
                evidence.push(line);
            }
            for e in f.evidence.iter().take(2) {
                if !evidence.contains(e) {
                    evidence.push(e.clone());
                }
            }
        }
        if let Some(Ok(route)) = &facts.route
            && route.target.is_some()
            && upstream.is_some()
        {
            evidence.insert(
                0,
                format!(
                    "route: {}",
                    crate::steps::route::chain_text(&route.hops(&facts.view))
                ),
            );
        }
        out.push((
            consequence,
            Diagnosis {
                cause,
                confidence,
                http_status: if retried { 200 } else { cause.http_status() },
                summary: causes::summary(cause, &ctx),
                evidence,
                fix: causes::fix(cause, &ctx),
                upstream,
            },
        ));
    }
    for (_, d) in &mut out {
        crate::redact::diagnosis(d);
    }
    out.sort_by(|(ca, a), (cb, b)| {
        ca.cmp(cb)
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.cause.cmp(&b.cause))
            .then(a.upstream.cmp(&b.upstream))
    });
    out.into_iter().map(|(_, d)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{StepId, StepStatus};
    use crate::steps::appserver::APP_SERVER;
    use crate::steps::logs::ERROR_LOG;
    use crate::steps::network::fixtures::facts_for;

    const CONF: &str = "events {}\nhttp { server { listen 127.0.0.1:8080; location / { fastcgi_pass 127.0.0.1:9; } location /b { fastcgi_pass 127.0.0.1:10; } } }\n";

    fn step(findings: Vec<Finding>) -> StepReport {
        StepReport {
            step: StepId::Logs,
            status: StepStatus::Fail,
            duration_ms: 0,
            findings,
            next: None,
        }
    }

    fn logged(cause: Cause, at: &str) -> Finding {
        Finding::new(ERROR_LOG, Severity::Error, format!("nginx logged {cause}"))
            .cause(cause)
            .upstream(Upstream::parse(at))
    }

    fn pool_full(at: &str) -> Finding {
        Finding::new(
            APP_SERVER,
            Severity::Warning,
            "php-fpm log: server reached pm.max_children setting (1)",
        )
        .upstream(Upstream::parse(at))
        .explains(&[Cause::UPSTREAM_BACKLOG_FULL, Cause::UPSTREAM_TIMEOUT])
        .evidence("pm.max_children = 1 (/etc/php/fpm/pool.d/www.conf:12)")
        .fix("raise pm.max_children")
    }

    async fn run(findings: Vec<Finding>) -> Vec<Diagnosis> {
        let dir = tempfile::tempdir().unwrap();
        let facts = facts_for(dir.path(), CONF, "");
        diagnose(&[step(findings)], &facts).await
    }

    #[tokio::test]
    async fn an_app_servers_reason_joins_what_nginx_logged_there() {
        let d = run(vec![
            logged(Cause::UPSTREAM_TIMEOUT, "127.0.0.1:9"),
            pool_full("127.0.0.1:9"),
        ])
        .await;
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].cause, Cause::UPSTREAM_TIMEOUT);
        assert!(d[0].evidence.iter().any(|e| e.contains("pm.max_children")));
        assert!(d[0].evidence.iter().any(|e| e.contains("www.conf:12")));
        assert_eq!(
            d[0].fix.first().map(String::as_str),
            Some("raise pm.max_children")
        );
    }

    #[tokio::test]
    async fn a_reason_joins_only_its_own_upstream_and_claims_only_with_a_cause() {
        let d = run(vec![
            logged(Cause::UPSTREAM_TIMEOUT, "127.0.0.1:10"),
            pool_full("127.0.0.1:9"),
        ])
        .await;
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(!d[0].evidence.iter().any(|e| e.contains("pm.max_children")));
        let disallowed = Finding::new(APP_SERVER, Severity::Error, "Connection disallowed")
            .cause(Cause::UPSTREAM_CLOSED_EARLY)
            .upstream(Upstream::parse("127.0.0.1:9"))
            .explains(&[Cause::UPSTREAM_CLOSED_EARLY, Cause::UPSTREAM_RESET]);
        let d = run(vec![
            logged(Cause::UPSTREAM_RESET, "127.0.0.1:9"),
            disallowed.clone(),
        ])
        .await;
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].cause, Cause::UPSTREAM_RESET);
        let d = run(vec![disallowed]).await;
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].cause, Cause::UPSTREAM_CLOSED_EARLY);
    }
}
