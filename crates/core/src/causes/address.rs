//! Causes in where nginx connects: nothing listens there, the name now points elsewhere,
//! the app listens at another address, or the address cannot be reached.

use fix502_nginx::classify::Signature;
use fix502_probe::connect::ConnectOutcome;

use super::cause::Cause;
use super::entry::{Act, Entry, Side};
use crate::report::{Next, StepId};

impl Cause {
    /// `upstream-refused`.
    pub const UPSTREAM_REFUSED: Self = Self("upstream-refused");
    /// `upstream-stale-dns`.
    pub const UPSTREAM_STALE_DNS: Self = Self("upstream-stale-dns");
    /// `upstream-wrong-address`.
    pub const UPSTREAM_WRONG_ADDRESS: Self = Self("upstream-wrong-address");
    /// `upstream-unreachable`.
    pub const UPSTREAM_UNREACHABLE: Self = Self("upstream-unreachable");
}

pub(super) static ENTRIES: [Entry; 4] = [
    Entry::new(
        Cause::UPSTREAM_REFUSED,
        "nothing listens at the upstream address (ECONNREFUSED)",
        Side::Connect,
        |ctx| format!("Nothing listens on {}{}", ctx.up(), ctx.role()),
        |ctx, v| {
            let up = ctx.up();
            v.push(format!(
                "Start the application that should listen on {up} (or restart it if it crashed)"
            ));
            if let Some(port) = ctx.port() {
                v.push(format!("See what listens: ss -ltnp 'sport = :{port}'"));
            }
            v.push(format!(
                "If the app moved, point nginx at its new address ({}), then: {}",
                ctx.config_line(),
                ctx.reload()
            ));
        },
    )
    .logged(|l| matches!(l.signature, Signature::ConnectRefused).then_some("connection-refused errors"))
    .connect(|o, _| *o == ConnectOutcome::Refused)
    .retried()
    // A unix socket left behind by a dead app: its service, restarted after a yes.
    .acts(&[Act::RestartUnit]),
    Entry::new(
        Cause::UPSTREAM_STALE_DNS,
        "nginx still connects to an address the upstream name no longer has",
        Side::Connect,
        |ctx| match ctx.headline() {
            Some(h) => h.to_owned(),
            None => format!(
                "nginx connects to {}, an address it resolved at start or reload that the name no longer has",
                ctx.up()
            ),
        },
        |ctx, v| ctx.add_reload(v),
    )
    .acts(&[Act::ResolveAgain])
    .absorbs(&[
        Cause::UPSTREAM_REFUSED,
        Cause::UPSTREAM_UNREACHABLE,
        Cause::UPSTREAM_TIMEOUT,
        Cause::UPSTREAM_WRONG_ADDRESS,
    ]),
    Entry::new(
        Cause::UPSTREAM_WRONG_ADDRESS,
        "the app listens, but not where nginx connects",
        Side::Connect,
        |ctx| match ctx.headline() {
            Some(found) => format!(
                "nginx connects to {}{}, but the app listens elsewhere: {found}",
                ctx.up(),
                ctx.role()
            ),
            None => format!(
                "nginx connects to {}{}, an address that cannot work here",
                ctx.up(),
                ctx.role()
            ),
        },
        |ctx, v| {
            // A check that found the app elsewhere already says where to point nginx.
            if v.is_empty() {
                v.push(format!(
                    "Change the upstream at {} to the address the app listens on, then: {}",
                    ctx.config_line(),
                    ctx.reload()
                ));
                v.push(format!("Or make the app listen on {} as well", ctx.up()));
            }
        },
    )
    .acts(&[Act::EditConfig])
    .logged(|l| {
        (matches!(l.signature, Signature::AddressNotAvailable)
            && l.peer.is_some_and(|p| p.starts_with('[')))
        .then_some("cannot-assign-address errors")
    })
    .connect(|o, via| *o == ConnectOutcome::AddressNotAvailable && via.ipv6)
    .absorbs(&[
        Cause::UPSTREAM_REFUSED,
        Cause::PORT_EXHAUSTION,
        Cause::UNIX_SOCKET_MISSING,
    ])
    .retried()
    .next(|step, _| {
        (step == StepId::Upstream).then(|| {
            Next::here(
                "Point nginx at the address the app listens on, or move the app (see diagnosis)",
            )
        })
    }),
    Entry::new(
        Cause::UPSTREAM_UNREACHABLE,
        "no route / network unreachable / host down",
        Side::Connect,
        |ctx| {
            format!(
                "{} cannot be reached: no route, host down, or a firewall drops or rejects the connection",
                ctx.up()
            )
        },
        |ctx, v| {
            v.push(format!("Check the route: ip route get {}", ctx.host()));
            v.push(
                "Check firewalls on both hosts (nft list ruleset) and that the host is up"
                    .to_owned(),
            );
        },
    )
    .logged(|l| match l.signature {
        Signature::NetUnreachable => Some("network-unreachable errors"),
        Signature::HostUnreachable => Some("no-route-to-host errors"),
        Signature::ConnectTimedOut => Some("kernel connect timeouts (a 502, not a 504)"),
        Signature::KernelTimedOut => {
            Some("kernel TCP timeouts on an open connection (a 502, not a 504)")
        }
        _ => None,
    })
    .connect(|o, _| {
        matches!(
            o,
            ConnectOutcome::NetUnreachable | ConnectOutcome::HostUnreachable
        )
    })
    .retried(),
];
