//! The `Check` seam: a typed id (its stable id, its step, the kind of evidence it gives) and
//! an async run over shared [`Facts`]. Checks compose: a library user can run one, one
//! step, or all of them; the list of them is [`crate::steps::all_checks`].

use std::future::Future;
use std::pin::Pin;

use crate::facts::Facts;
use crate::report::{CheckId, Finding, StepId};

/// A boxed future returning findings.
pub type FindingsFuture<'a> = Pin<Box<dyn Future<Output = Vec<Finding>> + Send + 'a>>;

/// One check.
pub trait Check: Send + Sync {
    /// Its typed id, e.g. `upstream.tcp-connect`.
    fn check_id(&self) -> CheckId;
    /// Its stable id, e.g. `upstream.tcp-connect`.
    fn id(&self) -> &'static str {
        self.check_id().id()
    }
    /// The step it belongs to.
    fn step(&self) -> StepId {
        self.check_id().step()
    }
    /// Runs it. A check that cannot run returns a [`Finding::could_not_check`].
    fn run<'a>(&'a self, facts: &'a Facts) -> FindingsFuture<'a>;
}

/// A check made of an id and an async function.
pub struct FnCheck {
    id: CheckId,
    run: for<'a> fn(&'a Facts) -> FindingsFuture<'a>,
}

impl FnCheck {
    /// Makes a check.
    pub const fn new(id: CheckId, run: for<'a> fn(&'a Facts) -> FindingsFuture<'a>) -> Self {
        Self { id, run }
    }
}

impl Check for FnCheck {
    fn check_id(&self) -> CheckId {
        self.id
    }
    fn run<'a>(&'a self, facts: &'a Facts) -> FindingsFuture<'a> {
        (self.run)(facts)
    }
}
