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

/// Ranks the causes the findings point to. Empty when nothing is wrong.
pub async fn diagnose(steps: &[StepReport], facts: &Facts) -> Vec<Diagnosis> {
    // 1. Claims: (cause, upstream) with the findings behind them.
    let mut claims: BTreeMap<(Cause, Option<String>), Support> = BTreeMap::new();
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
    let wrong: Vec<Option<String>> = claims
        .keys()
        .filter(|(c, _)| *c == Cause::UpstreamWrongAddress)
        .map(|(_, u)| u.clone())
        .collect();
    for upstream in wrong {
        for absorbed in [
            Cause::UpstreamRefused,
            Cause::PortExhaustion,
            Cause::UnixSocketMissing,
        ] {
            if let Some(s) = claims.remove(&(absorbed, upstream.clone()))
                && let Some(target) =
                    claims.get_mut(&(Cause::UpstreamWrongAddress, upstream.clone()))
            {
                target.log |= s.log;
                target.live |= s.live;
                target.findings.extend(s.findings);
            }
        }
    }

    // 3. Confidence and wording.
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
