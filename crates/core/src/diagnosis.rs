//! Diagnosis: join the findings of every step into ranked root causes, each with a
//! confidence, an evidence chain and the exact fix. Rules live here; wording of each cause's
//! summary and fix lives in [`crate::advice`].

use std::collections::BTreeMap;

use crate::advice;
use crate::facts::Facts;
use crate::report::{Cause, Diagnosis, Finding, Severity, StepReport};

/// Where a claim's support came from.
#[derive(Debug, Default, Clone)]
struct Support {
    log: bool,
    live: bool,
    config: bool,
    findings: Vec<Finding>,
}

fn is_log(f: &Finding) -> bool {
    f.check.starts_with("logs.")
}

fn is_config(f: &Finding) -> bool {
    f.check.starts_with("config.")
}

type Claims = BTreeMap<(Cause, Option<String>), Support>;

/// Moves the claims of `absorbed` causes into the `root` claim of the same upstream, where
/// there is one: the root cause explains what the others saw.
fn absorb_into(claims: &mut Claims, root: Cause, absorbed: &[Cause]) {
    let upstreams: Vec<Option<String>> = claims
        .keys()
        .filter(|(c, _)| *c == root)
        .map(|(_, u)| u.clone())
        .collect();
    for upstream in upstreams {
        for cause in absorbed {
            if let Some(s) = claims.remove(&(*cause, upstream.clone()))
                && let Some(target) = claims.get_mut(&(root, upstream.clone()))
            {
                target.log |= s.log;
                target.live |= s.live;
                target.findings.extend(s.findings);
            }
        }
    }
}

/// Whether the live exchange with `upstream` got a complete, valid answer.
async fn answers_well_now(facts: &Facts, upstream: &str) -> bool {
    use crate::exchange::Answer;
    use fix502_probe::gateway::GatewayOutcome;
    use fix502_probe::http::HttpOutcome;
    let Some(i) = facts.endpoints.iter().position(|e| e.display == upstream) else {
        return false;
    };
    match facts.exchanges().await.get(i) {
        Some(Some(x)) => match &x.answer {
            Answer::Http(p) => p.outcome == HttpOutcome::Response,
            Answer::FastCgi { values, request } => {
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
pub async fn keepalive_in_use(facts: &Facts, upstream: &str) -> Option<String> {
    let endpoint = facts.endpoints.iter().find(|e| e.display == upstream)?;
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

/// Whether a claim about `upstream` concerns what `--url` routes to (always true without
/// `--url`, for claims about no upstream, and when the route reaches no pass directive).
fn in_scope(facts: &Facts, upstream: Option<&str>) -> bool {
    let (Some(Ok(route)), Some(u)) = (&facts.route, upstream) else {
        return true;
    };
    let Some(target) = route.target else {
        return true;
    };
    let port = |text: &str| text.rsplit_once(':').map(|(_, p)| p.to_owned());
    facts.endpoints.iter().any(|e| {
        e.display == u
            || e.group.as_deref() == Some(u)
            || (matches!(&e.peer, fix502_nginx::view::Peer::Inet { host, .. } if host.parse::<std::net::IpAddr>().is_err())
                && port(&e.display) == port(u))
    }) || facts.view.targets.get(target).is_some_and(|t| {
        matches!(t.address, fix502_nginx::view::TargetAddress::Variable(_))
    })
}

/// Gives a `config-not-reloaded` claim the upstreams it explains: logged failures at
/// addresses the config on disk no longer connects to.
async fn rekey_not_reloaded(claims: &mut Claims, facts: &Facts) {
    let Some(base) = claims.get(&(Cause::ConfigNotReloaded, None)).cloned() else {
        return;
    };
    let mut stale: Vec<(Cause, String)> = Vec::new();
    for ((cause, upstream), support) in claims.iter() {
        if let Some(u) = upstream
            && *cause != Cause::ConfigNotReloaded
            && support.log
            && !support.live
            && facts.endpoint_of(u).await.is_none()
            && !facts.view.upstreams.iter().any(|g| g.name == *u)
        {
            stale.push((*cause, u.clone()));
        }
    }
    for (cause, upstream) in stale {
        let mut s = base.clone();
        if let Some(logged) = claims.get(&(cause, Some(upstream.clone()))) {
            s.log = true;
            s.findings.extend(logged.findings.iter().cloned());
        }
        s.findings.push(
            Finding::new(
                "diagnosis",
                Severity::Warning,
                format!(
                    "nginx still connects to {upstream}, which the config on disk no longer names"
                ),
            )
            .upstream(upstream.clone()),
        );
        claims.remove(&(Cause::ConfigNotReloaded, None));
        claims.insert((Cause::ConfigNotReloaded, Some(upstream)), s);
    }
}

/// Whether nginx's retries hide a connect failure from clients: the upstream is one server
/// of a group whose other servers accept connections now, and the failure is one that
/// `*_next_upstream error` (the default) retries.
async fn retries_hide(facts: &Facts, cause: Cause, upstream: Option<&str>) -> bool {
    let connect_failure = matches!(
        cause,
        Cause::UpstreamRefused
            | Cause::UpstreamUnreachable
            | Cause::UpstreamWrongAddress
            | Cause::UnixSocketMissing
            | Cause::UnixSocketPermission
    );
    let Some(u) = upstream else { return false };
    if !connect_failure {
        return false;
    }
    let Some(group) = facts.endpoint_of(u).await.and_then(|e| e.group.clone()) else {
        return false;
    };
    let probes = facts.probes().await;
    facts
        .endpoints
        .iter()
        .zip(probes)
        .any(|(e, p)| e.group.as_deref() == Some(group.as_str()) && e.display != u && p.ok())
}

/// Ranks the causes the findings point to. Empty when nothing is wrong.
pub async fn diagnose(steps: &[StepReport], facts: &Facts) -> Vec<Diagnosis> {
    // 1. Claims: (cause, upstream) with the findings behind them.
    let mut claims: Claims = BTreeMap::new();
    let mut risks: Vec<&Finding> = Vec::new();
    for f in steps.iter().flat_map(|s| &s.findings) {
        let Some(cause) = f.cause else { continue };
        if f.could_not_check || f.severity == Severity::Info {
            continue;
        }
        if is_risk(f) {
            risks.push(f);
            continue;
        }
        if !in_scope(facts, f.upstream.as_deref()) {
            continue;
        }
        let s = claims.entry((cause, f.upstream.clone())).or_default();
        if is_log(f) {
            s.log = true;
        } else if is_config(f) {
            s.config = true;
        } else {
            s.live = true;
        }
        s.findings.push(f.clone());
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
            if let Some(s) = claims.get_mut(&key) {
                s.config = true;
                s.findings.push(risk.clone());
            }
        }
    }

    // 1c. The config on disk changed and nginx did not load it: failures at addresses the
    //     config no longer has come from the old config nginx still runs.
    rekey_not_reloaded(&mut claims, facts).await;

    // 2. A listener elsewhere explains a refusal (or EADDRNOTAVAIL) at the same address.
    absorb_into(
        &mut claims,
        Cause::UpstreamWrongAddress,
        &[
            Cause::UpstreamRefused,
            Cause::PortExhaustion,
            Cause::UnixSocketMissing,
        ],
    );

    // A name that now resolves elsewhere explains failures at the address nginx kept.
    absorb_into(
        &mut claims,
        Cause::UpstreamStaleDns,
        &[
            Cause::UpstreamRefused,
            Cause::UpstreamUnreachable,
            Cause::UpstreamTimeout,
            Cause::UpstreamWrongAddress,
        ],
    );

    // 3. A port that speaks another protocol explains what nginx saw when speaking its own.
    absorb_into(
        &mut claims,
        Cause::UpstreamProtocolMismatch,
        &[
            Cause::UpstreamClosedEarly,
            Cause::UpstreamReset,
            Cause::UpstreamInvalidResponse,
            Cause::UpstreamTls,
        ],
    );

    // A worker killed mid-request (app-server log, OOM) explains the resets nginx saw too.
    absorb_into(
        &mut claims,
        Cause::UpstreamClosedEarly,
        &[Cause::UpstreamReset],
    );

    // 4. Closes and resets that only the log shows, on an upstream that answers a fresh
    //    connection well and is reached over kept-alive connections: the keep-alive race.
    for cause in [Cause::UpstreamClosedEarly, Cause::UpstreamReset] {
        let keys: Vec<Option<String>> = claims
            .iter()
            .filter(|((c, _), s)| *c == cause && s.log && !s.live)
            .map(|((_, u), _)| u.clone())
            .collect();
        for upstream in keys {
            let Some(u) = upstream.as_deref() else {
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
                    Finding::new("diagnosis", Severity::Warning, keepalive).upstream(u.to_owned()),
                );
                let target = claims
                    .entry((Cause::UpstreamKeepaliveRace, upstream.clone()))
                    .or_default();
                target.log = true;
                target.live |= s.live;
                target.findings.extend(s.findings);
            }
        }
    }

    // 5. Confidence and wording.
    let mut out: Vec<(bool, Diagnosis)> = Vec::new();
    let groups_with_causes: Vec<String> = claims
        .keys()
        .filter(|(c, _)| *c != Cause::NoLiveUpstreams)
        .filter_map(|(_, u)| u.as_ref())
        .filter_map(|u| {
            facts
                .endpoints
                .iter()
                .find(|e| &e.display == u)
                .and_then(|e| e.group.clone())
        })
        .collect();
    let any_other_cause = claims.keys().any(|(c, _)| *c != Cause::NoLiveUpstreams);
    for ((cause, upstream), support) in claims {
        let live_ok_now = match &upstream {
            _ if cause == Cause::UpstreamKeepaliveRace => None,
            Some(u) if support.log && !support.live => facts.probe_of(u).await.map(|p| p.ok()),
            _ => None,
        };
        let consequence = cause == Cause::NoLiveUpstreams
            && (upstream
                .as_ref()
                .is_some_and(|g| groups_with_causes.contains(g))
                || any_other_cause);
        let mut confidence: f64 = match (support.log, support.live, support.config) {
            (_, _, true) if cause == Cause::ConfigInvalid => 0.99,
            (_, _, true) => 0.9,
            (true, true, _) => 0.95,
            (false, true, _) => 0.85,
            (true, false, _) => match live_ok_now {
                Some(true) => 0.4,
                _ => 0.6,
            },
            _ => 0.5,
        };
        if consequence {
            confidence = confidence.min(0.5);
        }
        if cause == Cause::UpstreamKeepaliveRace {
            // Sporadic failures in the log, a healthy fresh connection, connection reuse on.
            confidence = 0.8;
        }
        if cause == Cause::UpstreamTimeout && !support.log {
            confidence = confidence.min(0.5);
        }
        let retried = retries_hide(facts, cause, upstream.as_deref()).await;
        let ctx = advice::Context {
            facts,
            upstream: upstream.as_deref(),
            findings: &support.findings,
            recovered: live_ok_now == Some(true),
            retried,
        };
        let mut evidence: Vec<String> = Vec::new();
        for f in &support.findings {
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
                upstream: upstream.clone(),
                http_status: if retried { 200 } else { cause.http_status() },
                summary: advice::summary(cause, &ctx),
                evidence,
                fix: advice::fix(cause, &ctx),
            },
        ));
    }
    out.sort_by(|(ca, a), (cb, b)| {
        ca.cmp(cb)
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.cause.cmp(&b.cause))
            .then(a.upstream.cmp(&b.upstream))
    });
    out.into_iter().map(|(_, d)| d).collect()
}
