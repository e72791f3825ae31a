//! Causes in the host: SELinux forbids the connect, the workers run out of file descriptors
//! or of local ports, or nginx proxies to itself until its connections run out.

use fix502_nginx::classify::Signature;
use fix502_probe::connect::ConnectOutcome;

use super::cause::Cause;
use super::entry::{Entry, Side};

impl Cause {
    /// `selinux-denied`.
    pub const SELINUX_DENIED: Self = Self("selinux-denied");
    /// `fd-exhaustion`.
    pub const FD_EXHAUSTION: Self = Self("fd-exhaustion");
    /// `port-exhaustion`.
    pub const PORT_EXHAUSTION: Self = Self("port-exhaustion");
    /// `proxy-loop`.
    pub const PROXY_LOOP: Self = Self("proxy-loop");
}

pub(super) static ENTRIES: [Entry; 4] = [
    Entry::new(
        Cause::SELINUX_DENIED,
        "SELinux forbids the worker to connect (EACCES on TCP)",
        Side::Host,
        |ctx| {
            format!(
                "The nginx worker may not connect to {} over TCP (EACCES): on SELinux hosts httpd_can_network_connect is off",
                ctx.up()
            )
        },
        |_, v| {
            v.push("setsebool -P httpd_can_network_connect 1".to_owned());
            v.push("Confirm with: ausearch -m avc -ts recent | grep name_connect".to_owned());
        },
    )
    .logged(|l| {
        (matches!(l.signature, Signature::PermissionDenied) && !l.unix)
            .then_some("permission-denied errors")
    })
    .connect(|o, via| *o == ConnectOutcome::PermissionDenied && !via.unix),
    Entry::new(
        Cause::FD_EXHAUSTION,
        "the workers ran out of file descriptors (EMFILE/ENFILE)",
        Side::Host,
        |ctx| ctx.measured(Cause::FD_EXHAUSTION),
        |_, _| {},
    )
    .status(500),
    Entry::new(
        Cause::PORT_EXHAUSTION,
        "no free local port for the connection (EADDRNOTAVAIL)",
        Side::Host,
        |ctx| format!("No free local port to connect to {} (EADDRNOTAVAIL)", ctx.up()),
        |_, v| {
            v.push("Reuse upstream connections: keepalive in the upstream block, proxy_http_version 1.1, proxy_set_header Connection \"\"".to_owned());
        },
    )
    .logged(|l| {
        (matches!(l.signature, Signature::AddressNotAvailable)
            && !l.peer.is_some_and(|p| p.starts_with('[')))
        .then_some("cannot-assign-address errors")
    })
    .connect(|o, via| *o == ConnectOutcome::AddressNotAvailable && !via.ipv6),
    Entry::new(
        Cause::PROXY_LOOP,
        "nginx proxies to itself",
        Side::Host,
        |ctx| ctx.measured(Cause::PROXY_LOOP),
        |_, _| {},
    )
    .status(500),
];
