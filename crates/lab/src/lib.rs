//! fix502-lab: reproducible broken nginx setups on loopback, run with the real nginx binary.
//!
//! Each [scenario](scenarios) builds one failure that ends in a 502 (or a healthy baseline) in
//! its own temp dir: a generated config, its own loopback ports, upstream "apps" served by
//! threads of this process (plain HTTP or TLS) or by real child programs (PHP-FPM pools,
//! uWSGI, a decoy `python3 -m http.server`, each in its own process group and stopped by its
//! pid), other sites' server blocks in `conf/sites/`, and a daemonized nginx started with
//! `-p <dir>/ -c <dir>/conf/nginx.conf`.
//! [`Lab::start`] returns once nginx has logged the failure; [`Lab::stop`] (or `Drop`) stops
//! nginx by its pid file and removes everything. Nothing outside the temp dir is changed:
//! `stale-dns` runs nginx in its own mount namespace with the lab's hosts file bind-mounted on
//! `/etc/hosts` (the host's is never touched), and `dns-nxdomain` answers nginx's `resolver`
//! from a [`dns::DnsResponder`] on loopback ([`Lab::dns`]). Scenarios that edit the config do
//! so at least 2 s after nginx started; `failed-reload` then sends SIGHUP ([`Lab::reload`]).
//!
//! - The catalogue: [`ScenarioInfo`], [`Expectation`] (with the one check of a report against
//!   it, [`Expectation::check`]), [`scenarios`], [`find`].
//! - [`Lab`] and [`LabOptions`]: setting up, querying and tearing down one scenario.
//! - [`LabError`]: why that could not be done.
//!
//! ```no_run
//! let lab = fix502_lab::Lab::start("refused", &fix502_lab::LabOptions::default())?;
//! assert_eq!(lab.request("/")?, 502);
//! lab.stop()?;
//! # Ok::<(), fix502_lab::LabError>(())
//! ```
#![deny(missing_docs)]

mod child;
mod client;
mod config;
pub mod dns;
mod error;
mod lab;
mod nginx;
mod phpfpm;
mod process;
mod scenario;
mod scenarios;
mod setup;
mod tls;
mod upstream;

pub use error::LabError;
pub use lab::{Lab, LabOptions};
pub use nginx::ConfigTest;
pub use process::{ChildGuard, process_running, stop_child};
pub use scenario::{Diagnosed, Expectation, ScenarioInfo};
pub use scenarios::{find, scenarios};
