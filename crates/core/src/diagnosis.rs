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
    use fix502_probe::fastcgi::FcgiOutcome;
    use fix502_probe::http::HttpOutcome;
    let Some(i) = facts.endpoints.iter().position(|e| e.display == upstream) else {
        return false;
    };
    match facts.exchanges().await.get(i) {
        Some(Some(x)) => match &x.answer {
            Answer::Http(p) => p.outcome == HttpOutcome::Response,
            Answer::FastCgi { values, request } => {
                values.outcome == FcgiOutcome::Values
                    && request
                        .as_ref()
                        .is_none_or(|r| r.outcome == FcgiOutcome::Response)
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
    use fix502_nginx::view::PassModule;
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
    let s = &target.settings;
    let reused = match target.module {
        PassModule::FastCgi => s
            .get("fastcgi_keep_conn")
            .is_some_and(|k| k.args.first().is_some_and(|a| a == "on")),
        PassModule::Proxy => {
            let http11 = match s.get("proxy_http_version") {
                Some(v) => v.args.first().is_some_and(|a| a == "1.1"),
                None => modern,
            };
            // `Connection: close` is sent unless a `Connection` header replaces it (empty
            // or from a variable); from 1.29.7 none is sent by default.
            let connection: Vec<_> = s
                .all("proxy_set_header")
                .iter()
                .filter(|h| {
                    h.args
                        .first()
                        .is_some_and(|n| n.eq_ignore_ascii_case("connection"))
                })
                .collect();
            let connection_kept = if connection.is_empty() {
                modern
            } else {
                connection.iter().any(|h| {
                    h.args
                        .get(1)
                        .is_some_and(|v| v.is_empty() || v.starts_with('$'))
                })
            };
            http11 && connection_kept
        }
        _ => false,
    };
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

/// Ranks the causes the findings point to. Empty when nothing is wrong.
pub async fn diagnose(steps: &[StepReport], facts: &Facts) -> Vec<Diagnosis> {
    // 1. Claims: (cause, upstream) with the findings behind them.
    let mut claims: Claims = BTreeMap::new();
    for f in steps.iter().flat_map(|s| &s.findings) {
        let Some(cause) = f.cause else { continue };
        if f.could_not_check || f.severity == Severity::Info {
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
        let ctx = advice::Context {
            facts,
            upstream: upstream.as_deref(),
            findings: &support.findings,
            recovered: live_ok_now == Some(true),
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
        out.push((
            consequence,
            Diagnosis {
                cause,
                confidence,
                upstream: upstream.clone(),
                http_status: cause.http_status(),
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
