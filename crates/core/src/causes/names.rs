//! Causes in names: an upstream name nginx cannot resolve.

use fix502_nginx::classify::Signature;

use super::cause::Cause;
use super::entry::{Entry, Side};

impl Cause {
    /// `upstream-dns`.
    pub const UPSTREAM_DNS: Self = Self("upstream-dns");
}

pub(super) static ENTRIES: [Entry; 1] = [Entry::new(
    Cause::UPSTREAM_DNS,
    "an upstream name cannot be resolved",
    Side::Connect,
    |ctx| match ctx.headline() {
        Some(h) => h.to_owned(),
        None => format!("The upstream name {} cannot be resolved", ctx.up()),
    },
    |_, v| {
        v.push("Fix the name or its DNS record. nginx resolves a name written literally once, at start and reload (then reload nginx); a name in a variable it resolves per request with its `resolver`, which ignores /etc/hosts and search domains".to_owned());
    },
)
.logged(|l| {
    matches!(l.signature, Signature::Resolve)
        .then_some("name-resolution failures of nginx's resolver")
})];
