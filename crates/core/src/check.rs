//! The `Check` seam: a stable id, the step it belongs to, and an async run over shared
//! [`Facts`]. Checks compose: a library user can run one, one step, or all of them.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use crate::facts::Facts;
use crate::report::{Finding, StepId, StepReport};

/// A boxed future returning findings.
pub type FindingsFuture<'a> = Pin<Box<dyn Future<Output = Vec<Finding>> + Send + 'a>>;

/// One check.
pub trait Check: Send + Sync {
    /// Its stable id, e.g. `upstream.tcp-connect`.
    fn id(&self) -> &'static str;
    /// The step it belongs to.
    fn step(&self) -> StepId;
    /// Runs it. A check that cannot run returns a [`Finding::could_not_check`].
    fn run<'a>(&'a self, facts: &'a Facts) -> FindingsFuture<'a>;
}

/// A check made of an id, a step and an async function.
pub struct FnCheck {
    id: &'static str,
    step: StepId,
    run: for<'a> fn(&'a Facts) -> FindingsFuture<'a>,
}

impl FnCheck {
    /// Makes a check.
    pub const fn new(
        id: &'static str,
        step: StepId,
        run: for<'a> fn(&'a Facts) -> FindingsFuture<'a>,
    ) -> Self {
        Self { id, step, run }
    }
}

impl Check for FnCheck {
    fn id(&self) -> &'static str {
        self.id
    }
    fn step(&self) -> StepId {
        self.step
    }
    fn run<'a>(&'a self, facts: &'a Facts) -> FindingsFuture<'a> {
        (self.run)(facts)
    }
}

/// Every built-in check of the first four steps, in run order. (The restart step acts on the
/// diagnosis, so it is not a `Check`: see [`crate::steps::restart`].)
pub fn all_checks() -> Vec<&'static dyn Check> {
    let mut v: Vec<&'static dyn Check> = Vec::new();
    v.extend(crate::steps::logs::CHECKS.iter().map(|c| c as &dyn Check));
    v.extend(
        crate::steps::upstream::CHECKS
            .iter()
            .chain(&crate::steps::answer::CHECKS)
            .chain(&crate::steps::appserver::CHECKS)
            .map(|c| c as &dyn Check),
    );
    v.extend(
        crate::steps::config::CHECKS
            .iter()
            .chain(&crate::steps::reload::CHECKS)
            .chain(&crate::steps::route::CHECKS)
            .chain(&crate::steps::risks::CHECKS)
            .map(|c| c as &dyn Check),
    );
    v.extend(
        crate::steps::network::CHECKS
            .iter()
            .chain(&crate::steps::host::CHECKS)
            .map(|c| c as &dyn Check),
    );
    v
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
    let results = crate::facts::join_all(checks.iter().map(|c| c.run(facts))).await;
    let findings: Vec<Finding> = results.into_iter().flatten().collect();
    let status = StepReport::status_of(&findings);
    let next = crate::steps::next_hint(step, &findings);
    StepReport {
        step,
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        findings,
        next,
    }
}
