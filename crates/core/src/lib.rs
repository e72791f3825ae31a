//! fix502-core: the diagnosis engine behind `fix502`.
//!
//! Discovery finds the nginx to diagnose; [`facts::Facts`] holds what the checks share; the
//! checks of the five steps ([`steps`]) produce [`report::Finding`]s; [`diagnosis`] ranks the
//! causes; the restart step plans and applies safe actions. [`engine::Engine`] runs it all
//! step by step (the wizard) or at once (scripts), and [`report::Report`] is the result that
//! every face shows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fix502_core::discovery::DiscoveryError> {
//! let report = fix502_core::engine::Engine::run_all(fix502_core::options::Options::default()).await?;
//! println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod causes;
pub mod check;
pub mod command;
pub mod diagnosis;
pub mod discovery;
pub mod engine;
pub mod exchange;
pub mod facts;
pub mod journal;
pub mod options;
pub mod report;
pub mod steps;
pub mod timeline;
pub mod upstream;
pub mod words;
