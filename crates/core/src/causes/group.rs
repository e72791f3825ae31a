//! Causes in the state nginx keeps about an upstream group: every server marked failed.

use fix502_nginx::classify::Signature;

use super::cause::Cause;
use super::entry::{Act, Entry, Side};
use crate::report::{Next, StepId};

impl Cause {
    /// `no-live-upstreams`.
    pub const NO_LIVE_UPSTREAMS: Self = Self("no-live-upstreams");
}

pub(super) static ENTRIES: [Entry; 1] = [Entry::new(
    Cause::NO_LIVE_UPSTREAMS,
    "every server of the upstream group is marked failed",
    Side::Group,
    |ctx| {
        format!(
            "Every server of upstream {} is marked failed, so nginx answers 502 at once for fail_timeout (10s by default)",
            ctx.up()
        )
    },
    |ctx, v| {
        v.push(format!(
            "Fix the failures of the servers of {} (the causes above); nginx tries a failed server again after fail_timeout",
            ctx.up()
        ));
    },
)
    .acts(&[Act::ReloadNginx])
.logged(|l| matches!(l.signature, Signature::NoLiveUpstreams).then_some("\"no live upstreams\" errors"))
.consequence()
.next(|step, upstream| match (step, upstream) {
    (StepId::Logs, Some(u)) => Some(Next::to(
        format!("Check every server of upstream {u}"),
        StepId::Upstream,
    )),
    _ => None,
})];
