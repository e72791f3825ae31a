//! What both halves of `network.dns` share: the check id they report under, the pass
//! targets with variables (resolved per request), their default port, and how a list of
//! addresses is written.

use std::net::IpAddr;

use fix502_nginx::view::{PassTarget, TargetAddress};

use crate::facts::Facts;
use crate::report::{CheckId, Evidence, StepId};

/// Check id: name resolution of host-name upstreams.
pub const DNS: CheckId = CheckId::new("network.dns", StepId::Network, Evidence::Live);

/// The port assumed for a variable pass argument without one and without an `http(s)://`
/// scheme (nginx's other modules have no default port; it then logs `no port in upstream`).
pub(super) const DEFAULT_PORT: u16 = 80;

/// The pass targets whose address has variables: nginx resolves them per request.
pub(super) fn variable_pass_targets(facts: &Facts) -> impl Iterator<Item = &PassTarget> {
    facts
        .view
        .targets
        .iter()
        .filter(|t| matches!(t.address, TargetAddress::Variable(_)))
}

/// Addresses, comma-separated.
pub(super) fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
