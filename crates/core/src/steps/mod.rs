//! The five steps and the list of their checks. Each file (or folder) below holds the
//! checks of one part of a step; this module lists them in run order, runs a step, and
//! words the step's "what next" hint. Nothing here is imported by the checks themselves.
//!
//! | step | checks |
//! | --- | --- |
//! | logs | [`logs`] (the error log), [`access`] (the access log) |
//! | upstream | [`upstream`] (targets, connects, sockets, listeners), [`answer`] (what they answer, TLS), [`appserver`] (the app server behind them) |
//! | config | [`config`] (`nginx -t`, the parse, the process), [`reload`] (config not reloaded), [`route`] (routes and effective settings), [`risks`] (static 502-risk rules) |
//! | network | [`network`] (DNS, ICMP, local ports), [`host`] (SELinux, AppArmor, worker files) |
//! | restart | [`restart`]: not a check; it acts on the diagnosis (see [`crate::engine`]) |

pub mod access;
pub mod answer;
pub mod appserver;
pub mod config;
pub mod host;
pub mod logs;
pub mod network;
pub mod reload;
pub mod restart;
pub mod risks;
pub mod route;
pub mod upstream;

use std::time::Instant;

use crate::causes::Side;
use crate::check::{Check, FnCheck};
use crate::facts::{Facts, join_all};
use crate::report::{Evidence, Finding, Next, Severity, StepId, StepReport};

/// The checks of each of the first four steps, in run order.
const CHECKS: [&[FnCheck]; 11] = [
    &logs::CHECKS,
    &access::CHECKS,
    &upstream::CHECKS,
    &answer::CHECKS,
    &appserver::CHECKS,
    &config::CHECKS,
    &reload::CHECKS,
    &route::CHECKS,
    &risks::CHECKS,
    &network::CHECKS,
    &host::CHECKS,
];

/// Every built-in check of the first four steps, in run order. (The restart step acts on the
/// diagnosis, so it is not a `Check`: the engine runs it last, see [`crate::Engine::plan`].)
pub fn all_checks() -> Vec<&'static dyn Check> {
    CHECKS
        .into_iter()
        .flatten()
        .map(|c| c as &dyn Check)
        .collect()
}

/// Finds a check by id.
pub fn check_by_id(id: &str) -> Option<&'static dyn Check> {
    all_checks().into_iter().find(|c| c.id() == id)
}

/// Runs the checks of one step (concurrently) and builds its report.
pub async fn run_step(step: StepId, facts: &Facts) -> StepReport {
    let started = Instant::now();
    let checks: Vec<_> = all_checks()
        .into_iter()
        .filter(|c| c.step() == step)
        .collect();
    // Offline, the checks that measured the host give what they found then.
    let results = join_all(checks.iter().map(|c| async move {
        match facts.offline() {
            Some(offline) if crate::offline::replays(c.check_id()) => {
                offline.findings_of(c.check_id())
            }
            _ => c.run(facts).await,
        }
    }))
    .await;
    let mut findings: Vec<Finding> = results.into_iter().flatten().collect();
    if let Some(from) = facts.standpoint().probed_from()
        && matches!(step, StepId::Upstream | StepId::Network)
    {
        for f in findings.iter_mut().filter(|f| f.kind == Evidence::Live) {
            f.probed_from = Some(from);
        }
    }
    findings.iter_mut().for_each(crate::redact::finding);
    let status = StepReport::status_of(&findings);
    let next = next_hint(step, &findings);
    StepReport {
        step,
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        findings,
        next,
    }
}

/// The suggested next action after a step, from the first problem it found: the cause's
/// own suggestion when it has one, else the usual next step for its side.
pub fn next_hint(step: StepId, findings: &[Finding]) -> Option<Next> {
    let problem = findings
        .iter()
        .find(|f| f.severity == Severity::Error && !f.could_not_check);
    let upstream = problem.and_then(|f| f.upstream.as_ref());
    if let Some(next) = problem
        .and_then(|f| f.cause)
        .and_then(|c| (c.entry().next)(step, upstream))
    {
        return Some(next);
    }
    let answers_badly = problem
        .and_then(|f| f.cause)
        .is_some_and(|c| c.entry().side == Side::Answer);
    // A check that could not run is no pass: the hint must not read as one.
    let unchecked = findings.iter().any(|f| f.could_not_check);
    Some(match (step, problem, upstream) {
        (StepId::Logs, Some(_), Some(u)) if answers_badly => Next::to(
            format!("Check what {u} answers when spoken to as nginx does"),
            StepId::Upstream,
        ),
        (StepId::Logs, Some(_), Some(u)) => Next::to(
            format!("Check whether anything listens on {u}"),
            StepId::Upstream,
        ),
        (StepId::Logs, Some(_), None) => {
            Next::to("Check the upstreams nginx connects to", StepId::Upstream)
        }
        (StepId::Logs, None, _) if unchecked => Next::to(
            "Not every log could be read (see above), so their errors are unknown; check the upstreams live",
            StepId::Upstream,
        ),
        (StepId::Logs, None, _) => Next::to(
            "No upstream errors in the window; check the upstreams live",
            StepId::Upstream,
        ),
        (StepId::Upstream, Some(_), _) if answers_badly => Next::to(
            "Compare with the directives in effect at that location",
            StepId::Config,
        ),
        (StepId::Upstream, Some(_), _) => Next::to(
            "Confirm the config sends requests where you expect",
            StepId::Config,
        ),
        (StepId::Upstream, None, _) if unchecked => Next::to(
            "Not every upstream could be checked (see above); check the config nginx runs",
            StepId::Config,
        ),
        (StepId::Upstream, None, _) => Next::to(
            "Upstreams answer; check the config nginx runs",
            StepId::Config,
        ),
        (StepId::Config, _, _) => Next::to(
            "Check name resolution and routes to the upstreams",
            StepId::Network,
        ),
        (StepId::Network, _, _) => {
            Next::to("See the diagnosis and the safe actions", StepId::Restart)
        }
        (StepId::Restart, _, _) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_that_could_not_run_never_reads_as_a_pass_in_the_hint() {
        let hint = |step, findings: &[Finding]| next_hint(step, findings).map(|n| n.text);
        let unread = Finding::could_not_check(logs::ERROR_LOG, "cannot read error.log");
        let logs_hint = hint(StepId::Logs, &[unread]).unwrap();
        assert!(
            logs_hint.starts_with("Not every log could be read"),
            "{logs_hint}"
        );
        assert!(
            hint(StepId::Logs, &[])
                .unwrap()
                .starts_with("No upstream errors")
        );
        let unseen = Finding::could_not_check(upstream::LISTENERS, "cannot list sockets");
        let up_hint = hint(StepId::Upstream, &[unseen]).unwrap();
        assert!(up_hint.starts_with("Not every upstream"), "{up_hint}");
        assert!(
            hint(StepId::Upstream, &[])
                .unwrap()
                .starts_with("Upstreams answer")
        );
    }
}
