//! One integration-test binary; each file tests one face of the binary.

mod ansible;
mod app_side;
mod apply;
mod bundle;
mod chain;
mod cli;
mod discovery;
mod docker;
mod harness;
mod hostile;
mod logs;
mod masters;
mod names;
mod netns;
mod nginx_t;
mod offline;
mod readonly;
mod responses;
mod routing;
mod scenarios;
mod snapshots;
mod stale;
mod undo;
mod wizard;
