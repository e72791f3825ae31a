//! The cause table: one entry per cause id of docs/causes.md, holding everything about the
//! cause itself: what it means, what the client sees, which error-log signatures, connect
//! outcomes and live answers map to it, what it absorbs in the diagnosis, the step to take
//! next, and the wording of its summary and fix. Checks only name a cause on their findings;
//! the diagnosis, the steps' hints, the timeline and the report read the rest from here.
//!
//! The entries live in one file per family, in the order of docs/causes.md:
//!
//! | file | causes |
//! | --- | --- |
//! | `nginx.rs` | nginx itself: not running, an invalid config, a config not reloaded |
//! | `address.rs` | where nginx connects: refused, a stale resolved address, the wrong address, unreachable |
//! | `answer.rs` | what the upstream answers: timeouts, resets, early closes, keep-alive races, its own 502, big or invalid headers, the wrong protocol, TLS, HTTP/2 GOAWAY |
//! | `socket.rs` | unix sockets and listen queues: missing, forbidden, full backlog |
//! | `group.rs` | upstream groups: no live upstreams |
//! | `names.rs` | names nginx cannot resolve |
//! | `host.rs` | the host: SELinux, file descriptors, local ports, proxy loops |
//!
//! Adding a cause: see docs/architecture.md ("Adding a cause").

mod address;
mod answer;
pub(crate) mod cause;
mod context;
mod entry;
mod group;
mod host;
mod names;
mod nginx;
mod socket;

use std::borrow::Cow;
use std::cmp::Ordering;

use fix502_nginx::logscan::Group;
use fix502_probe::connect::ConnectOutcome;
use serde::{Deserialize, Deserializer};

pub use cause::Cause;
pub use context::Context;
pub use entry::{Act, Answered, Connected, Entry, Logged, Side, Support};

/// The families, in the order of docs/causes.md.
const FAMILIES: [&[Entry]; 7] = [
    &nginx::ENTRIES,
    &address::ENTRIES,
    &answer::ENTRIES,
    &socket::ENTRIES,
    &group::ENTRIES,
    &names::ENTRIES,
    &host::ENTRIES,
];

/// Every entry, in the order of docs/causes.md.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    FAMILIES.into_iter().flatten()
}

/// What a cause made up outside the table reads as (no such cause can be made; this keeps
/// [`Cause::entry`] total).
static UNKNOWN: Entry = Entry::new(
    Cause("unknown"),
    "a cause this fix502 does not know",
    Side::Host,
    |ctx| ctx.up(),
    |_, _| {},
);

impl Cause {
    /// Every cause id, in the order of docs/causes.md.
    pub fn all() -> impl Iterator<Item = Self> {
        entries().map(|e| e.cause)
    }

    /// Parses a cause id.
    pub fn parse(id: &str) -> Option<Self> {
        Self::all().find(|c| c.id() == id)
    }

    /// Its entry in the table.
    pub fn entry(self) -> &'static Entry {
        entries().find(|e| e.cause == self).unwrap_or(&UNKNOWN)
    }

    /// One line: what the cause means.
    pub fn meaning(self) -> &'static str {
        self.entry().meaning
    }

    /// What the client sees for this cause.
    pub fn http_status(self) -> u16 {
        self.entry().http_status
    }

    fn rank(self) -> usize {
        entries()
            .position(|e| e.cause == self)
            .unwrap_or(usize::MAX)
    }
}

impl PartialOrd for Cause {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cause {
    /// The order of the table (and of docs/causes.md).
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl<'de> Deserialize<'de> for Cause {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown cause `{id}`")))
    }
}

impl schemars::JsonSchema for Cause {
    fn schema_name() -> Cow<'static, str> {
        "Cause".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let ids: Vec<&str> = Self::all().map(Self::id).collect();
        schemars::json_schema!({
            "description": "The cause ids of docs/causes.md (v1).",
            "type": "string",
            "enum": ids,
        })
    }
}

/// The cause a group of logged failures points to, and how the error-log step counts
/// its lines.
pub fn of_log(logged: &Logged<'_>) -> Option<(Cause, &'static str)> {
    entries().find_map(|e| (e.logged)(logged).map(|words| (e.cause, words)))
}

/// What the table makes of a group of error-log lines: its cause, and how its lines are
/// counted ("connection-refused errors").
pub fn of_group_lines(group: &Group) -> Option<(Cause, &'static str)> {
    let failure = &group.failure;
    of_log(&Logged {
        signature: &failure.signature,
        unix: failure.unix,
        peer: failure.peer.as_deref(),
    })
}

/// The cause a group of logged failures points to (before other evidence refines it);
/// `None` for lines that did not fail the client's request (truncated bodies, PHP's
/// stderr). A non-HTTP answer relayed as HTTP/0.9 (`upstream sent no valid HTTP/1.0
/// header`) did fail it.
pub fn of_group(group: &Group) -> Option<Cause> {
    if !group.failure.fails_request() {
        return None;
    }
    of_group_lines(group).map(|(cause, _)| cause)
}

/// The cause a failed live `connect()` points to.
pub fn of_connect(outcome: &ConnectOutcome, via: Connected) -> Option<Cause> {
    entries()
        .find(|e| (e.connect)(outcome, via))
        .map(|e| e.cause)
}

/// The cause a live answer points to.
pub fn of_answer(answered: Answered) -> Option<Cause> {
    entries()
        .find(|e| e.answered.contains(&answered))
        .map(|e| e.cause)
}

/// The summary sentence of a diagnosis of `cause`, with what retries and recovery change.
pub fn summary(cause: Cause, ctx: &Context<'_>) -> String {
    let mut s = (cause.entry().summary)(ctx);
    if ctx.retried {
        s.push_str(
            " (nginx retries the group's other servers, which answer: most clients get 200, requests that cannot be retried get 502, and every retry adds delay)",
        );
    }
    if ctx.recovered {
        s.push_str(&format!(
            " (logged in the last {}, but it answers now: intermittent or already fixed)",
            crate::words::duration(ctx.facts.options.since)
        ));
    }
    s
}

/// The fix lines of a diagnosis of `cause`, most direct first: the findings' own, then the
/// cause's.
pub fn fix(cause: Cause, ctx: &Context<'_>) -> Vec<String> {
    let mut v: Vec<String> = ctx
        .findings
        .iter()
        .flat_map(|f| f.fix.iter().cloned())
        .collect();
    (cause.entry().fix)(ctx, &mut v);
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use fix502_nginx::classify::Signature;

    #[test]
    fn ids_are_unique_and_parse_back() {
        let all: Vec<Cause> = Cause::all().collect();
        for (i, c) in all.iter().enumerate() {
            assert!(!all[..i].contains(c), "{c} twice");
            assert_eq!(Cause::parse(c.id()), Some(*c));
            assert!(!c.meaning().is_empty());
            assert!(matches!(c.http_status(), 500 | 502 | 504), "{c}");
        }
        assert_eq!(Cause::parse("nope"), None);
        assert!(Cause::UPSTREAM_REFUSED < Cause::NO_LIVE_UPSTREAMS);
    }

    #[test]
    fn every_signature_and_outcome_maps_to_one_cause_at_most() {
        let signatures = [
            Signature::ConnectRefused,
            Signature::SocketMissing,
            Signature::PermissionDenied,
            Signature::BacklogFull,
            Signature::NetUnreachable,
            Signature::HostUnreachable,
            Signature::AddressNotAvailable,
            Signature::ConnectTimedOut,
            Signature::NoLiveUpstreams,
            Signature::Resolve,
            Signature::PrematureClose,
            Signature::Reset,
            Signature::KernelTimedOut,
            Signature::HeaderTooBig,
        ];
        for signature in &signatures {
            for (unix, peer) in [(false, Some("[::1]:80")), (true, None), (false, None)] {
                let logged = Logged {
                    signature,
                    unix,
                    peer,
                };
                let n = entries().filter(|e| (e.logged)(&logged).is_some()).count();
                assert_eq!(n, 1, "{signature:?} unix {unix} peer {peer:?}");
            }
        }
        for answered in [
            Answered::ClosedEarly,
            Answered::Reset,
            Answered::TimedOut,
            Answered::HeaderTooBig,
            Answered::Invalid,
            Answered::OtherProtocol,
            Answered::TlsFailed,
            Answered::Status502,
        ] {
            let n = entries().filter(|e| e.answered.contains(&answered)).count();
            assert_eq!(n, 1, "{answered:?}");
        }
        for outcome in [
            ConnectOutcome::Refused,
            ConnectOutcome::NotFound,
            ConnectOutcome::PermissionDenied,
            ConnectOutcome::WouldBlock,
            ConnectOutcome::AddressNotAvailable,
        ] {
            for via in [
                Connected {
                    unix: true,
                    ipv6: false,
                },
                Connected {
                    unix: false,
                    ipv6: true,
                },
            ] {
                let n = entries().filter(|e| (e.connect)(&outcome, via)).count();
                assert_eq!(n, 1, "{outcome:?} {via:?}");
            }
        }
    }

    #[test]
    fn absorbing_never_goes_round_in_a_circle() {
        // The diagnosis applies absorption in an order where a cause is absorbed before
        // what absorbs it absorbs further; that needs the relation to have no circle.
        fn reaches(from: Cause, to: Cause, depth: usize) -> bool {
            depth > 0
                && from
                    .entry()
                    .absorbs
                    .iter()
                    .any(|c| *c == to || reaches(*c, to, depth - 1))
        }
        for c in Cause::all() {
            assert!(!reaches(c, c, 30), "{c} absorbs itself");
        }
    }
}
