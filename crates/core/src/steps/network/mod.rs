//! Step 4, the network: name resolution as nginx does it, ping non-loopback hosts when
//! permitted (informational only), and what makes local connects fail (IPv6 off on `lo`
//! for `[::1]` upstreams, TIME_WAIT piling up against the port range).
//!
//! This file lists the checks ([`CHECKS`]). Name resolution (`network.dns`) lives in
//! `dns.rs`, except the stale-address part (the error log shows nginx connecting to an
//! address a name no longer has), in `stale.rs`; what both share (the check id, the
//! variable pass targets, how addresses are written) in `names.rs`; what Docker's files say
//! about a name its embedded DNS does not answer, in `docker.rs`. The two small checks
//! `network.icmp` and `network.local-ports` are in `local.rs`; test fixtures in
//! `fixtures.rs`. The host checks of this step (SELinux, AppArmor, worker files) are in
//! [`super::host`].

use crate::check::FnCheck;

mod dns;
mod docker;
#[cfg(test)]
pub(crate) mod fixtures;
mod local;
mod names;
mod stale;

pub use local::{ICMP, LOCAL_PORTS};
pub use names::DNS;

/// The checks of this step.
pub static CHECKS: [FnCheck; 3] = [
    FnCheck::new(DNS, dns::dns_check),
    FnCheck::new(ICMP, local::icmp_check),
    FnCheck::new(LOCAL_PORTS, local::local_ports),
];
