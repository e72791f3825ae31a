//! fix502-core: the diagnosis engine behind `fix502`.
//!
//! Discovery finds the nginx to diagnose; [`Facts`] holds what the checks share, computed
//! once; the checks of the five steps produce [`report::Finding`]s; the diagnosis joins them
//! into ranked [`report::Diagnosis`]es, with everything about each cause in its entry of the
//! cause table ([`causes`]); the restart step plans and applies safe actions. [`Engine`] runs
//! it all at once (scripts) or step by step (the wizard), and [`report::Report`] is the
//! result that every face shows (docs/json-report.md).
//!
//! What an embedding tool needs is here at the root: [`Engine`] and its [`Options`], the
//! report's types in [`report`], the cause table in [`causes`], and the checks ([`Check`],
//! [`all_checks`], [`check_by_id`], their ids in [`checks`]); changing files safely is
//! [`edit`] (an edit, its diff, the atomic write), [`changes`] (the journal of applied changes
//! and their backups) and [`undo`] (`fix502 undo`). The rest of the crate is private.
//!
//! The whole run, as `fix502 --json` does it (here on a lab nginx whose upstream refuses):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let lab = fix502_lab::Lab::start("refused", &Default::default())?;
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! use fix502_core::{Engine, Options};
//!
//! let options = Options {
//!     config: Some(lab.config().to_path_buf()),
//!     ..Options::default()
//! };
//! let report = runtime.block_on(Engine::run_all(options))?;
//! let top = &report.diagnosis[0];
//! assert_eq!(top.cause.id(), "upstream-refused");
//! assert_eq!(report.exit_status().code(), 1);
//! # Ok(()) }
//! ```
//!
//! One step (the upstream step: connects, listeners, answers, the app server):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let lab = fix502_lab::Lab::start("refused", &Default::default())?;
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! use fix502_core::report::{StepId, StepStatus};
//! use fix502_core::{Engine, Options};
//!
//! let options = Options {
//!     config: Some(lab.config().to_path_buf()),
//!     ..Options::default()
//! };
//! runtime.block_on(async {
//!     let mut engine = Engine::new(options).await?;
//!     let step = engine.run_step(StepId::Upstream).await;
//!     assert_eq!(step.status, StepStatus::Fail);
//!     assert_eq!(step.next.as_ref().and_then(|n| n.step), Some(StepId::Config));
//!     Ok(())
//! })
//! # }
//! ```
//!
//! One check (the TCP connect of every upstream), with its typed findings:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let lab = fix502_lab::Lab::start("refused", &Default::default())?;
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! use fix502_core::causes::Cause;
//! use fix502_core::{Engine, Options, check_by_id, checks};
//!
//! let options = Options {
//!     config: Some(lab.config().to_path_buf()),
//!     ..Options::default()
//! };
//! runtime.block_on(async {
//!     let engine = Engine::new(options).await?;
//!     let check = check_by_id(checks::TCP_CONNECT.id()).ok_or("no such check")?;
//!     let findings = check.run(engine.facts()).await;
//!     let refused = findings
//!         .iter()
//!         .find(|f| f.cause == Some(Cause::UPSTREAM_REFUSED))
//!         .ok_or("no refusal")?;
//!     assert_eq!(refused.upstream.as_ref().map(|u| u.to_string()), lab.expected_upstream());
//!     Ok(())
//! })
//! # }
//! ```
#![deny(missing_docs)]

pub mod bundle;
pub mod causes;
pub mod changes;
pub mod edit;
pub mod fleet;
pub mod report;
pub mod undo;

mod chain;
mod check;
mod command;
mod diagnosis;
mod discovery;
mod engine;
mod exchange;
mod facts;
mod journal;
mod lock;
mod offline;
mod options;
mod redact;
mod rootfs;
mod steps;
mod throwaway;
mod timeline;
mod upstream;
mod words;

pub use check::{Check, FindingsFuture};
pub use discovery::DiscoveryError;
pub use engine::{Engine, not_started};
pub use facts::{
    AccessRead, DOCKER_ROOT, DockerLog, Endpoint, EndpointUse, Facts, JOURNAL_SOURCE, LogRead,
    ProbeResult,
};
pub use journal::available as journal_available;
pub use options::{Options, check_url, parse_duration};
pub use redact::redact;
pub use steps::restart::{Action, ActionKind, CheckRequest, ConfigEdit, Outcome};
pub use steps::{all_checks, check_by_id};
pub use timeline::{Series, Timeline, sparkline};
pub use upstream::Upstream;

/// The id of every check, as a finding's `check` field carries it (docs/json-report.md).
pub mod checks {
    pub use crate::report::{APPLIED, DIAGNOSIS};
    pub use crate::steps::access::ACCESS_LOG;
    pub use crate::steps::answer::{RESPONSE, TLS};
    pub use crate::steps::appserver::APP_SERVER;
    pub use crate::steps::config::{NGINX_T, PARSE, PROCESS};
    pub use crate::steps::host::{APPARMOR, SELINUX, WORKER_FILES};
    pub use crate::steps::logs::ERROR_LOG;
    pub use crate::steps::network::{DNS, ICMP, LOCAL_PORTS};
    pub use crate::steps::reload::RELOAD;
    pub use crate::steps::restart::PLAN_CHECK as PLAN;
    pub use crate::steps::risks::RISKS;
    pub use crate::steps::route::{EFFECTIVE, ROUTE};
    pub use crate::steps::upstream::{LISTENERS, TARGETS, TCP_CONNECT, UNIX_SOCKET};
}
