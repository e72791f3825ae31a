//! Causes in unix sockets and listen queues: the socket file is missing, the worker may not
//! connect to it, or the app's listen backlog is full.

use fix502_nginx::classify::Signature;
use fix502_probe::connect::ConnectOutcome;

use super::cause::Cause;
use super::entry::{Act, Entry, Side};
use crate::report::{Next, StepId};

impl Cause {
    /// `unix-socket-missing`.
    pub const UNIX_SOCKET_MISSING: Self = Self("unix-socket-missing");
    /// `unix-socket-permission`.
    pub const UNIX_SOCKET_PERMISSION: Self = Self("unix-socket-permission");
    /// `upstream-backlog-full`.
    pub const UPSTREAM_BACKLOG_FULL: Self = Self("upstream-backlog-full");
}

pub(super) static ENTRIES: [Entry; 3] = [
    Entry::new(
        Cause::UNIX_SOCKET_MISSING,
        "the unix socket path does not exist (ENOENT)",
        Side::Connect,
        |ctx| format!("The socket {} does not exist{}", ctx.path(), ctx.role()),
        |ctx, v| {
            v.push(format!(
                "Start the service that creates {} (e.g. systemctl start php8.2-fpm), and compare its listen path with {}",
                ctx.path(),
                ctx.config_line()
            ));
            v.push("See the sockets that exist: ss -xlp".to_owned());
        },
    )
    .acts(&[Act::EditConfig, Act::RestartUnit])
    .logged(|l| matches!(l.signature, Signature::SocketMissing).then_some("missing-socket errors"))
    .connect(|o, _| *o == ConnectOutcome::NotFound)
    .retried(),
    Entry::new(
        Cause::UNIX_SOCKET_PERMISSION,
        "the worker user may not connect to the socket (EACCES)",
        Side::Connect,
        |ctx| format!("{} may not connect to {}{}", ctx.worker(), ctx.path(), ctx.role()),
        |ctx, v| {
            v.push(format!(
                "Let {} write the socket: for php-fpm set listen.owner / listen.group = {} and listen.mode = 0660 in the pool, then restart it",
                ctx.worker(),
                ctx.worker()
            ));
            v.push(format!("Check every directory on the way: namei -l {}", ctx.path()));
        },
    )
    .logged(|l| {
        (matches!(l.signature, Signature::PermissionDenied) && l.unix)
            .then_some("permission-denied errors")
    })
    .connect(|o, via| *o == ConnectOutcome::PermissionDenied && via.unix)
    .retried()
    .acts(&[Act::EditApp])
    .next(|step, _| {
        (step == StepId::Upstream).then(|| {
            Next::here("Fix the socket's owner or mode for the worker user (see diagnosis)")
        })
    }),
    Entry::new(
        Cause::UPSTREAM_BACKLOG_FULL,
        "the listen backlog of the upstream is full (EAGAIN)",
        Side::Connect,
        |ctx| {
            format!(
                "The listen queue of {} is full: the app accepts connections slower than they arrive",
                ctx.up()
            )
        },
        |_, v| {
            v.push("Raise the app's worker count (php-fpm pm.max_children) and listen backlog (listen.backlog, net.core.somaxconn)".to_owned());
            v.push("Look for slow requests holding the workers (php-fpm slowlog)".to_owned());
        },
    )
    .logged(|l| matches!(l.signature, Signature::BacklogFull).then_some("backlog-full (EAGAIN) errors"))
    .connect(|o, _| *o == ConnectOutcome::WouldBlock)
    .acts(&[Act::EditApp]),
];
