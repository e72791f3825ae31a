//! What an error-log line says about an upstream: a [`Signature`] plus the peer it concerns.
//!
//! Lines are matched by their message and their errno **number**, never by the errno text,
//! because musl (Alpine) words errnos differently from glibc (catalog §3). A `110` means two
//! different things: in `upstream timed out (110: ...)` it is nginx's own timer (the client
//! gets 504), in `connect() failed (110: ...)` it is the kernel's SYN timer (502).
//!
//! Lines that are not about an upstream at all (static files, client aborts, startup
//! notices) classify as `None`.

use std::fmt;

use crate::errorlog::{ErrorLine, parse_upstream_field};

/// The kind of upstream failure a line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signature {
    /// `connect() failed (111: ...)` or `connect() to X failed (111: ...)`: nothing listens
    /// there (TCP), or a stale socket file nobody listens on (unix).
    ConnectRefused,
    /// `connect() to unix:... failed (2: ...)`: the socket file does not exist.
    SocketMissing,
    /// `connect() ... failed (13: ...)`: on a unix socket, file or directory permissions
    /// (or MAC); on TCP almost always SELinux. See [`Classified::unix`].
    PermissionDenied,
    /// `connect() to unix:... failed (11: ...)`: the listen backlog of the socket is full.
    BacklogFull,
    /// `connect() ... failed (101: ...)` or `(100: ...)`: no route to that network / network down.
    NetUnreachable,
    /// `connect() ... failed (113: ...)` or `(112: ...)`: host unreachable / host down.
    HostUnreachable,
    /// `connect() ... failed (99: ...)`: address not available (IPv6 off on `lo`, or no free
    /// local port).
    AddressNotAvailable,
    /// `connect() ... failed (1: ...)`: a local policy vetoed the connect (EPERM).
    NotPermitted,
    /// `connect() failed (110: ...)`: the kernel gave up on the TCP handshake (502, not 504).
    ConnectTimedOut,
    /// `no live upstreams`: every server of the group is marked failed or down.
    NoLiveUpstreams,
    /// `upstream timed out (110: ...) while <phase>`: one of nginx's own timeouts fired.
    UpstreamTimedOut {
        /// What nginx was doing when its timer fired.
        phase: Phase,
    },
    /// Any other line about an upstream (premature close, reset, invalid header, TLS, DNS,
    /// ...). The group keeps its message so the caller can tell them apart.
    OtherUpstream,
}

impl Signature {
    /// Stable kebab-case identifier, e.g. `"connect-refused"`.
    ///
    /// [`Signature::UpstreamTimedOut`] has one id for all phases; see [`Phase::id`].
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect-refused",
            Self::SocketMissing => "socket-missing",
            Self::PermissionDenied => "permission-denied",
            Self::BacklogFull => "backlog-full",
            Self::NetUnreachable => "net-unreachable",
            Self::HostUnreachable => "host-unreachable",
            Self::AddressNotAvailable => "address-not-available",
            Self::NotPermitted => "not-permitted",
            Self::ConnectTimedOut => "connect-timed-out",
            Self::NoLiveUpstreams => "no-live-upstreams",
            Self::UpstreamTimedOut { .. } => "upstream-timed-out",
            Self::OtherUpstream => "other-upstream",
        }
    }

    /// The status the client gets when the failing attempt is the last one (catalog §0, §2).
    ///
    /// Connect failures and `no live upstreams` give 502. nginx's own timeouts give 504 in
    /// the header phases; in the body phase ([`Phase::ReadingBody`]) the header was already
    /// sent, so the client keeps the upstream's status (200 here) with a truncated body.
    /// [`Signature::OtherUpstream`] says 502, the usual result; look at the message for
    /// the exceptions.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UpstreamTimedOut {
                phase: Phase::ReadingBody,
            } => 200,
            Self::UpstreamTimedOut { .. } => 504,
            Self::ConnectRefused
            | Self::SocketMissing
            | Self::PermissionDenied
            | Self::BacklogFull
            | Self::NetUnreachable
            | Self::HostUnreachable
            | Self::AddressNotAvailable
            | Self::NotPermitted
            | Self::ConnectTimedOut
            | Self::NoLiveUpstreams
            | Self::OtherUpstream => 502,
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What nginx was doing with the upstream, from the line's ` while <action>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `connecting to upstream`.
    Connecting,
    /// `SSL handshaking to upstream`.
    SslHandshake,
    /// `sending request to upstream`.
    SendingRequest,
    /// `reading response header from upstream`.
    ReadingHeader,
    /// `reading upstream`: the body phase, after the response header went to the client.
    ReadingBody,
    /// Any other action (e.g. `proxying upgraded connection`), or none.
    Other,
}

impl Phase {
    /// Stable kebab-case identifier, e.g. `"reading-header"`.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::SslHandshake => "ssl-handshake",
            Self::SendingRequest => "sending-request",
            Self::ReadingHeader => "reading-header",
            Self::ReadingBody => "reading-body",
            Self::Other => "other",
        }
    }

    /// The phase an action string names; [`Phase::Other`] for anything else.
    #[must_use]
    pub fn from_action(action: &str) -> Self {
        match action {
            "connecting to upstream" => Self::Connecting,
            "SSL handshaking to upstream" => Self::SslHandshake,
            "sending request to upstream" => Self::SendingRequest,
            "reading response header from upstream" => Self::ReadingHeader,
            "reading upstream" => Self::ReadingBody,
            _ => Self::Other,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The result of [`classify`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Classified {
    /// What failed.
    pub signature: Signature,
    /// The peer, written as nginx writes it: `127.0.0.1:8000`, `[::1]:8000`, `unix:/path`;
    /// the group name for [`Signature::NoLiveUpstreams`]; the host name for DNS failures.
    pub peer: Option<String>,
    /// The peer is a unix socket.
    pub unix: bool,
    /// Scheme of the `upstream:` field without `://` (`http`, `fastcgi`, ...), if present.
    pub scheme: Option<String>,
    /// The line's phase, if it had an action (also for [`Signature::OtherUpstream`], where it
    /// tells header-phase failures from body-phase ones the client never sees as 502).
    pub phase: Option<Phase>,
}

/// [`Classified`] borrowing from the line: what the scanner uses to avoid allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClassifiedRef<'a> {
    pub(crate) signature: Signature,
    pub(crate) peer: Option<&'a str>,
    pub(crate) scheme: Option<&'a str>,
    pub(crate) phase: Option<Phase>,
}

impl ClassifiedRef<'_> {
    pub(crate) fn unix(&self) -> bool {
        self.peer.is_some_and(|p| p.starts_with("unix:"))
    }

    fn to_owned(self) -> Classified {
        Classified {
            signature: self.signature,
            peer: self.peer.map(str::to_owned),
            unix: self.unix(),
            scheme: self.scheme.map(str::to_owned),
            phase: self.phase,
        }
    }
}

/// Classifies one parsed line. `None` when the line is not about an upstream.
#[must_use]
pub fn classify(line: &ErrorLine<'_>) -> Option<Classified> {
    classify_ref(line).map(ClassifiedRef::to_owned)
}

/// Actions that concern a connection to an upstream.
const UPSTREAM_ACTIONS: &[&str] = &[
    "connecting to upstream",
    "SSL handshaking to upstream",
    "sending request to upstream",
    "reading response header from upstream",
    "reading upstream",
    "proxying upgraded connection",
    "reading response from upstream",
    "sending PROXY protocol header to upstream",
    "proxying and reading from upstream",
    "proxying and sending to upstream",
];

/// Actions on the client side: errors logged there are the client's, even when the
/// line carries an `upstream:` field.
const CLIENT_ACTIONS: &[&str] = &[
    "sending to client",
    "sending response to client",
    "sending early hints to client",
    "waiting for request",
    "reading client request line",
    "reading client request headers",
    "reading client pipelined request line",
    "reading client request",
    "reading PROXY protocol",
    "SSL handshaking",
    "keepalive",
    "closing request",
    "logging request",
    "proxying and reading from client",
    "proxying and sending to client",
];

/// [`classify`] without allocating: the peer and scheme borrow from the line.
pub(crate) fn classify_ref<'a>(line: &ErrorLine<'a>) -> Option<ClassifiedRef<'a>> {
    let message = line.message;
    let action = line.action;
    if action.is_some_and(|a| CLIENT_ACTIONS.contains(&a)) || is_client_side(message) {
        return None;
    }
    let field = line.upstream.and_then(parse_upstream_field);
    let scheme = field.map(|f| f.scheme).filter(|s| !s.is_empty());
    let phase = action.map(Phase::from_action);
    let resolving = action.is_some_and(|a| a.starts_with("resolving"));
    let other = |peer: Option<&'a str>| ClassifiedRef {
        signature: Signature::OtherUpstream,
        peer,
        scheme,
        phase,
    };

    if let (Some(connect_peer), Some(errno)) = (connect_failure(message), line.errno) {
        if resolving {
            // The resolver's own socket (e.g. `connect() to 127.0.0.11:53 failed`): DNS
            // trouble, not a failed upstream connect.
            return Some(other(None));
        }
        let peer = field.map(|f| f.peer).or(connect_peer);
        let unix = peer.is_some_and(|p| p.starts_with("unix:"));
        let signature = connect_signature(errno.number, unix).unwrap_or(Signature::OtherUpstream);
        return Some(ClassifiedRef {
            signature,
            peer,
            scheme,
            phase: phase.or(Some(Phase::Connecting)),
        });
    }
    if message == "upstream timed out" {
        return Some(ClassifiedRef {
            signature: Signature::UpstreamTimedOut {
                phase: phase.unwrap_or(Phase::Other),
            },
            peer: field.map(|f| f.peer),
            scheme,
            phase,
        });
    }
    if message == "no live upstreams" {
        return Some(ClassifiedRef {
            signature: Signature::NoLiveUpstreams,
            peer: field.map(|f| f.peer),
            scheme,
            phase,
        });
    }
    if message.starts_with("an upstream response is buffered to a temporary file") {
        // A [warn] about buffering, not a failure.
        return None;
    }
    if let Some(peer) = field.map(|f| f.peer) {
        return Some(other(Some(peer)));
    }
    if let Some(host) = setup_failure(message) {
        return Some(other(host.filter(|h| !h.is_empty())));
    }
    if resolving || action.is_some_and(|a| UPSTREAM_ACTIONS.contains(&a)) {
        return Some(other(None));
    }
    None
}

/// Messages about the client, not the upstream (499s, 494s, client body errors).
fn is_client_side(message: &str) -> bool {
    message.starts_with("client ") || message.contains("reported that client ")
}

/// If `message` is a connect failure (B3, B4, B5), the peer named in it (B3 only).
fn connect_failure(message: &str) -> Option<Option<&str>> {
    if message == "connect() failed" || message == "kevent() reported that connect() failed" {
        return Some(None);
    }
    let peer = message
        .strip_prefix("connect() to ")?
        .strip_suffix(" failed")?;
    Some(Some(peer).filter(|p| !p.is_empty()))
}

/// The signature of a connect failure by errno number. Linux numbers first; the BSD
/// numbers (kqueue builds) do not occur on Linux connects, so both are accepted.
fn connect_signature(errno: i32, unix: bool) -> Option<Signature> {
    Some(match errno {
        111 | 61 => Signature::ConnectRefused,
        2 if unix => Signature::SocketMissing,
        13 => Signature::PermissionDenied,
        11 | 35 if unix => Signature::BacklogFull,
        101 | 100 | 51 | 50 => Signature::NetUnreachable,
        113 | 112 | 65 | 64 => Signature::HostUnreachable,
        99 | 49 => Signature::AddressNotAvailable,
        1 => Signature::NotPermitted,
        110 | 60 => Signature::ConnectTimedOut,
        _ => return None,
    })
}

/// If `message` is a DNS or URL failure from before any peer was chosen (catalog A1–A5,
/// and the config-time `host not found in upstream`), the host name it names, if any.
fn setup_failure(message: &str) -> Option<Option<&str>> {
    if let Some(host) = message.strip_prefix("no resolver defined to resolve ") {
        return Some(Some(host));
    }
    if let Some((host, _)) = message.split_once(" could not be resolved") {
        return Some(Some(host.trim_matches('"')));
    }
    if message.starts_with("invalid URL prefix in ") || message == "zero length URI to proxy" {
        return Some(None);
    }
    // `no port in upstream "h"`, `invalid port in upstream "h"`, `host not found in
    // upstream "h:p" in /etc/nginx/nginx.conf:12`.
    let (_, after) = message.split_once(" in upstream \"")?;
    Some(Some(after.split_once('"').map_or(after, |(host, _)| host)))
}
