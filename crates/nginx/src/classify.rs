//! What an error-log line says about an upstream: a [`Signature`] plus the peer it concerns.
//!
//! Lines are matched by their message and their errno **number**, never by the errno text,
//! because musl (Alpine) words errnos differently from glibc. A `110` means two
//! different things: in `upstream timed out (110: ...)` it is nginx's own timer (the client
//! gets 504), in `connect() failed (110: ...)` or `recv() failed (110: ...)` it is the
//! kernel's TCP timer (502).
//!
//! The same failure means different things in different phases: before the
//! response header went to the client it ends in 502 or 504; after it (` while reading
//! upstream`, ` while proxying upgraded connection`) the client keeps the upstream's status
//! and gets a truncated body or a closed WebSocket. [`Signature::http_status`] gives the
//! header-phase answer; [`Classified::http_status`] and [`Classified::truncates_response`]
//! take the line's phase into account.
//!
//! Names (the peer) come only from where nginx itself writes them: the `upstream:` field,
//! `connect() to <peer> failed`, and the whole message of its resolver's `<name> could not
//! be resolved`. A message a Lua script or a third-party module wrote (`[lua] access.lua:202:
//! ...`) is free text: it gives no signature and no name (nginx-messages.md §24).
//!
//! Lines that are not about an upstream at all (static files, client aborts, startup
//! notices) and harmless upstream warnings (`..., ignored` duplicates, a response buffered
//! to a temporary file, extra data after the body) classify as `None`.
//!
//! Every message, errno and status named here is explained in the project's
//! `docs/nginx-messages.md` (exact texts, level, the status the client gets, where nginx
//! writes them); the docs below cite its numbered sections, e.g. "nginx-messages.md §7".

use std::fmt;
use std::str::FromStr;

use crate::errorlog::{ErrorLine, Level, parse_upstream_field};
use crate::find;

/// The kind of upstream failure a line reports.
///
/// The doc of each variant quotes the messages it covers and names the section of
/// `docs/nginx-messages.md` that explains them.
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
    /// `upstream timed out (110: ...) while <phase>`: one of nginx's own timeouts fired
    /// (nginx-messages.md §13).
    UpstreamTimedOut {
        /// What nginx was doing when its timer fired.
        phase: Phase,
    },
    /// Any other line about an upstream (DNS and URL failures, `upstream server temporarily
    /// disabled`, 500-class local failures, unknown messages). The group keeps its message
    /// so the caller can tell them apart.
    OtherUpstream,
    /// nginx's own resolver could not resolve the name of a variable pass target: `no
    /// resolver defined to resolve NAME` or `NAME could not be resolved (3: Host not
    /// found)` (nginx-messages.md §5). The group's peer is the name.
    Resolve,
    /// `upstream prematurely closed connection` (nginx-messages.md §10): the upstream closed
    /// before sending a complete header. In the body phase (nginx-messages.md §14) the
    /// response is truncated instead; see [`Classified::truncates_response`].
    PrematureClose,
    /// The upstream reset the connection: `recv()`, `readv()` or `SSL_read() failed (104:
    /// ...)` (nginx-messages.md §10, §14), or `writev()`, `send()`, `sendfile()` or `SSL_write()
    /// failed (104: ...)` / `(32: ...)` while sending the request (nginx-messages.md §9).
    Reset,
    /// `recv()`, `readv()` or `SSL_read() failed (110: ...)` (nginx-messages.md §10), or a
    /// write that failed with 110: the kernel's TCP timer (retransmissions or keepalive
    /// probes), not `proxy_read_timeout` / `proxy_send_timeout`: a 502, not a 504.
    KernelTimedOut,
    /// `writev()`, `send()`, `sendfile()` or `SSL_write() failed` with another errno
    /// (nginx-messages.md §9), e.g. `107` (not connected).
    SendFailed {
        /// The errno number.
        errno: i32,
    },
    /// `recv()`, `readv()` or `SSL_read() failed` with another errno (nginx-messages.md §10), e.g.
    /// `111` or `113` reported late.
    RecvFailed {
        /// The errno number.
        errno: i32,
    },
    /// `upstream sent too big header` (nginx-messages.md §10): the status line and headers
    /// do not fit in `*_buffer_size`.
    HeaderTooBig,
    /// The upstream's HTTP/1 or CGI-style header was rejected (nginx-messages.md §10, §11).
    InvalidHeader(InvalidHeaderKind),
    /// The FastCGI record stream was not valid (nginx-messages.md §11, §14).
    FastCgi(FastCgiKind),
    /// `FastCGI sent in stderr: "..."` (nginx-messages.md §11): the application wrote to stderr.
    /// **Not a gateway error by itself**: the client gets whatever the application
    /// answered (often 404 for `Primary script unknown`, 500 for a PHP fatal). nginx only
    /// turns it into a 502 when `fastcgi_catch_stderr` matches, which the log does not show.
    /// [`Signature::http_status`] returns 200 for it, meaning "not a gateway error".
    FastCgiStderr,
    /// An HTTP/2 protocol error from a gRPC (or `proxy_http_version 2`) upstream
    /// (nginx-messages.md §12).
    Http2(Http2Kind),
    /// TLS to the upstream failed (nginx-messages.md §8).
    Tls(TlsKind),
    /// The response body was malformed (nginx-messages.md §14). These are only detected after
    /// the header went to the client: the response is truncated, never a 502.
    InvalidBody(InvalidBodyKind),
}

impl Signature {
    /// Stable kebab-case identifier, e.g. `"connect-refused"`.
    ///
    /// Signatures with a payload have one id per family: [`Signature::UpstreamTimedOut`]
    /// for all phases (see [`Phase::id`]), `invalid-header`, `fastcgi-protocol`, `http2`,
    /// `tls` and `invalid-body` for all their kinds (see the kind's own `id()`), and
    /// `send-failed` / `recv-failed` for all errnos.
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
            Self::Resolve => "resolve",
            Self::PrematureClose => "premature-close",
            Self::Reset => "reset",
            Self::KernelTimedOut => "kernel-timed-out",
            Self::SendFailed { .. } => "send-failed",
            Self::RecvFailed { .. } => "recv-failed",
            Self::HeaderTooBig => "header-too-big",
            Self::InvalidHeader(_) => "invalid-header",
            Self::FastCgi(_) => "fastcgi-protocol",
            Self::FastCgiStderr => "fastcgi-stderr",
            Self::Http2(_) => "http2",
            Self::Tls(_) => "tls",
            Self::InvalidBody(_) => "invalid-body",
        }
    }

    /// The status the client gets when the failing attempt is the last one and the
    /// response header was not sent yet (nginx-messages.md §4).
    ///
    /// - 502 for connect, TLS, protocol and header failures and for `no live upstreams`.
    /// - 504 for nginx's own timeouts in the header phases ([`Signature::UpstreamTimedOut`]
    ///   carries its phase: 200 for [`Phase::ReadingBody`], 101 for [`Phase::Upgraded`]).
    /// - 500 for `SSL_set_tlsext_host_name() failed` ([`TlsKind::ServerNameFailed`]).
    /// - 200 for [`Signature::InvalidBody`] (always after the header: a truncated
    ///   response) and [`Signature::FastCgiStderr`] (not a gateway error; the real status
    ///   is the application's).
    /// - **9** for [`InvalidHeaderKind::NoValidHttpHeader`]: nginx relays the raw bytes as
    ///   an HTTP/0.9 response with no status line, and the access log's `$status` shows
    ///   `009`. Not a real HTTP status; compare with the access log.
    ///
    /// [`Signature::OtherUpstream`] says 502, the usual result; look at the message for
    /// the exceptions. For a line in the body phase use [`Signature::status_in`] or
    /// [`Classified::http_status`].
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UpstreamTimedOut { phase } => match phase {
                Phase::ReadingBody => 200,
                Phase::Upgraded => 101,
                _ => 504,
            },
            Self::Tls(TlsKind::ServerNameFailed) => 500,
            Self::InvalidHeader(InvalidHeaderKind::NoValidHttpHeader) => 9,
            Self::FastCgiStderr | Self::InvalidBody(_) => 200,
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
            | Self::OtherUpstream
            | Self::Resolve
            | Self::PrematureClose
            | Self::Reset
            | Self::KernelTimedOut
            | Self::SendFailed { .. }
            | Self::RecvFailed { .. }
            | Self::HeaderTooBig
            | Self::InvalidHeader(_)
            | Self::FastCgi(_)
            | Self::Http2(_)
            | Self::Tls(_) => 502,
        }
    }

    /// [`Signature::http_status`] for a line logged in `phase`: after the response header
    /// went out ([`Phase::ReadingBody`]) the client keeps the upstream's status (200 here)
    /// with a truncated body; on an upgraded connection ([`Phase::Upgraded`]) it already
    /// got `101 Switching Protocols` and the connection is simply closed.
    #[must_use]
    pub fn status_in(&self, phase: Option<Phase>) -> u16 {
        match self.effective_phase(phase) {
            Some(Phase::ReadingBody) => 200,
            Some(Phase::Upgraded) => 101,
            _ => self.http_status(),
        }
    }

    /// True when a line with this signature, logged in `phase`, cut short a response whose
    /// header the client already had (nginx-messages.md §14): the client sees a truncated body or a
    /// closed WebSocket, not a 502 or 504.
    #[must_use]
    pub fn truncates_in(&self, phase: Option<Phase>) -> bool {
        match self {
            Self::FastCgiStderr => false,
            Self::InvalidBody(_) => true,
            _ => matches!(
                self.effective_phase(phase),
                Some(Phase::ReadingBody | Phase::Upgraded)
            ),
        }
    }

    /// What answered instead of the expected protocol, when the signature reveals it
    /// (see [`PeerProtocol`]).
    #[must_use]
    pub fn peer_protocol(&self) -> Option<PeerProtocol> {
        match self {
            Self::FastCgi(kind) => kind.peer_protocol(),
            Self::Http2(kind) => kind.peer_protocol(),
            _ => None,
        }
    }

    /// The phase that counts: a timeout carries its own.
    fn effective_phase(&self, phase: Option<Phase>) -> Option<Phase> {
        match self {
            Self::UpstreamTimedOut { phase } => Some(*phase),
            _ => phase,
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Which header check failed (nginx-messages.md §10 "Header checks", §11 for memcached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidHeaderKind {
    /// `upstream sent invalid header: "<bytes>\x<hh>..."`: the header parser
    /// rejected a byte (a space or control character in a name, a line starting with a
    /// space, a NUL, a bare CR). Before 1.21.1 the message had no detail.
    Bytes {
        /// The rejected byte (the `\x<hh>` of the message), when the message has it.
        byte: Option<u8>,
    },
    /// `upstream sent duplicate header line: "...", previous value: "..."`: a
    /// second `Content-Length` or `Transfer-Encoding` (1.23.0+). The same text ending in
    /// `, ignored` is a harmless `[warn]` and is not classified.
    DuplicateHeader,
    /// `upstream sent "Content-Length" and "Transfer-Encoding" headers at the same time`.
    ContentLengthAndTransferEncoding,
    /// `upstream sent invalid "Content-Length" header: "..."`.
    InvalidContentLength,
    /// `upstream sent unknown "Transfer-Encoding": "..."`.
    UnknownTransferEncoding,
    /// `upstream sent no valid HTTP/1.0 header`: **not a 502**. nginx relays
    /// the raw bytes as HTTP/0.9 and the access log shows status `009`; the peer is not an
    /// HTTP server (a banner, an h2c server, a TLS alert).
    NoValidHttpHeader,
    /// `upstream sent HTTP/1.0 response with early hints`.
    EarlyHints,
    /// `upstream sent invalid status "..."`: a CGI-style `Status:` header that
    /// is not a number (FastCGI, uwsgi, SCGI).
    InvalidStatus,
    /// `memcached sent invalid ... in response ...` / `memcached sent invalid response: ...`
    /// (nginx-messages.md §11): the port is not memcached, or the value is not plain.
    Memcached,
}

impl InvalidHeaderKind {
    /// Stable kebab-case identifier, e.g. `"duplicate-header"`.
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::Bytes { .. } => "invalid-header-bytes",
            Self::DuplicateHeader => "duplicate-header",
            Self::ContentLengthAndTransferEncoding => "content-length-and-transfer-encoding",
            Self::InvalidContentLength => "invalid-content-length",
            Self::UnknownTransferEncoding => "unknown-transfer-encoding",
            Self::NoValidHttpHeader => "no-valid-http-header",
            Self::EarlyHints => "http10-early-hints",
            Self::InvalidStatus => "invalid-status",
            Self::Memcached => "memcached-invalid-response",
        }
    }
}

/// What was wrong with the FastCGI record stream (nginx-messages.md §11; in the body phase §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FastCgiKind {
    /// `upstream sent unsupported FastCGI protocol version: <n>`: the first
    /// byte was not 1, so the peer is not FastCGI. See [`FastCgiKind::peer_protocol`]:
    /// 72 (`H`) is an HTTP server, 21 a TLS alert, 60 (`<`) HTML.
    UnsupportedVersion(u8),
    /// `upstream sent invalid FastCGI record type: <n>`.
    InvalidRecordType(u8),
    /// `upstream sent unexpected FastCGI request id high byte: <n>` or `... low byte: <n>`.
    UnexpectedRequestId,
    /// `upstream prematurely closed FastCGI stdout` (also in the body phase,
    /// nginx-messages.md §14): stdout ended before the header did.
    ClosedStdout,
    /// `upstream prematurely closed FastCGI request` (nginx-messages.md §14): the application ended
    /// the request in the middle of the body.
    ClosedRequest,
    /// `upstream sent unexpected FastCGI record: <type>`, e.g. 3
    /// (END_REQUEST) before any output.
    UnexpectedRecord(u8),
    /// `upstream split a header line in FastCGI records`.
    SplitHeader,
}

impl FastCgiKind {
    /// Stable kebab-case identifier, e.g. `"fastcgi-unsupported-version"`.
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::UnsupportedVersion(_) => "fastcgi-unsupported-version",
            Self::InvalidRecordType(_) => "fastcgi-invalid-record-type",
            Self::UnexpectedRequestId => "fastcgi-unexpected-request-id",
            Self::ClosedStdout => "fastcgi-closed-stdout",
            Self::ClosedRequest => "fastcgi-closed-request",
            Self::UnexpectedRecord(_) => "fastcgi-unexpected-record",
            Self::SplitHeader => "fastcgi-split-header",
        }
    }

    /// For [`FastCgiKind::UnsupportedVersion`], what the version byte says answered.
    #[must_use]
    pub fn peer_protocol(&self) -> Option<PeerProtocol> {
        match self {
            Self::UnsupportedVersion(byte) => PeerProtocol::from_first_bytes(&[*byte]),
            _ => None,
        }
    }
}

/// Which HTTP/2 rule a gRPC (or `proxy_http_version 2`) upstream broke (nginx-messages.md §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Http2Kind {
    /// `upstream sent too large http2 frame: <n>`: usually not HTTP/2 at all, the first
    /// three bytes read as a frame length. See [`Http2Kind::peer_protocol`] and
    /// [`frame_length_bytes`]: 4740180 is `HTT` (an HTTP/1 answer).
    TooLargeFrame(u64),
    /// `upstream sent unexpected http2 frame: <type>`.
    UnexpectedFrame(u8),
    /// `upstream sent frame for unknown stream <id>`, `... for closed stream <id>`,
    /// `upstream sent data frame for unknown stream <id>`.
    UnknownStream,
    /// `upstream rejected request with error <code>` (RST_STREAM); 7 is REFUSED_STREAM
    /// (overloaded).
    Rejected {
        /// The HTTP/2 error code.
        code: u32,
    },
    /// `upstream sent goaway with error <code>`: the server is shutting down or closed the
    /// connection on an error.
    Goaway {
        /// The HTTP/2 error code.
        code: u32,
    },
    /// `upstream sent no :status header`, `... invalid :status "<v>"`, `... duplicate
    /// :status header`, `... unexpected :status "<v>"`.
    Status,
    /// `upstream sent invalid header "<k>: <v>"`, or `upstream sent invalid header` on a
    /// `grpc://` / `grpcs://` line.
    InvalidHeader,
    /// `upstream prematurely closed stream`.
    ClosedStream,
    /// Header compression errors: `upstream sent truncated http2 header`, `... invalid
    /// http2 table index`, `... invalid encoded header`, `... too large http2 header`, ...
    Hpack,
    /// `upstream sent unexpected push promise frame`.
    PushPromise,
    /// Other framing errors: invalid frame lengths or padding, SETTINGS, PING, WINDOW_UPDATE
    /// and flow-control violations.
    Framing,
}

impl Http2Kind {
    /// Stable kebab-case identifier, e.g. `"http2-too-large-frame"`.
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::TooLargeFrame(_) => "http2-too-large-frame",
            Self::UnexpectedFrame(_) => "http2-unexpected-frame",
            Self::UnknownStream => "http2-unknown-stream",
            Self::Rejected { .. } => "http2-rejected",
            Self::Goaway { .. } => "http2-goaway",
            Self::Status => "http2-status",
            Self::InvalidHeader => "http2-invalid-header",
            Self::ClosedStream => "http2-closed-stream",
            Self::Hpack => "http2-hpack",
            Self::PushPromise => "http2-push-promise",
            Self::Framing => "http2-framing",
        }
    }

    /// For [`Http2Kind::TooLargeFrame`], what the three length bytes say answered.
    #[must_use]
    pub fn peer_protocol(&self) -> Option<PeerProtocol> {
        match self {
            Self::TooLargeFrame(length) => {
                frame_length_bytes(*length).and_then(|b| PeerProtocol::from_first_bytes(&b))
            }
            _ => None,
        }
    }
}

/// The three bytes an HTTP/2 frame length was read from (big-endian, 24 bits), or `None`
/// when the number does not fit in 24 bits. `4740180` gives `b"HTT"`.
#[must_use]
pub fn frame_length_bytes(length: u64) -> Option<[u8; 3]> {
    if length >= 1 << 24 {
        return None;
    }
    let [.., a, b, c] = length.to_be_bytes();
    Some([a, b, c])
}

/// What a peer that does not speak the expected protocol answered with, from the first
/// bytes nginx read (a FastCGI version byte, an HTTP/2 frame length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerProtocol {
    /// `HTTP/1.x ...`: an HTTP/1 server (e.g. `fastcgi_pass` or `grpc_pass` at a web
    /// server's port).
    Http1,
    /// A TLS record (`0x15 0x03` alert or `0x16 0x03` handshake): the port expects TLS
    /// (`grpcs://`, `https://`).
    Tls,
    /// `<`: an HTML page.
    Html,
}

impl PeerProtocol {
    /// Recognises the first bytes of an answer. Only the bytes given are checked: a single
    /// `H` counts as HTTP/1, a single `0x15` or `0x16` as TLS.
    #[must_use]
    pub fn from_first_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [b'H', rest @ ..] if b"TTP".starts_with(rest) || rest.starts_with(b"TTP") => {
                Some(Self::Http1)
            }
            [0x15 | 0x16] | [0x15 | 0x16, 0x03, ..] => Some(Self::Tls),
            [b'<', ..] => Some(Self::Html),
            _ => None,
        }
    }

    /// Stable kebab-case identifier, e.g. `"http1"`.
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::Tls => "tls",
            Self::Html => "html",
        }
    }
}

/// What went wrong with TLS to the upstream (nginx-messages.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsKind {
    /// `peer closed connection in SSL handshake`, with or without ` (104: ...)`: the port
    /// is not TLS, or the server wants SNI (`proxy_ssl_server_name` is off by
    /// default), or it silently refused the offered versions or ciphers.
    ClosedInHandshake,
    /// `SSL_do_handshake() failed (SSL: ...)`.
    HandshakeFailed {
        /// The OpenSSL reason, recognised in both the OpenSSL 3 and 1.1.1 texts.
        reason: TlsReason,
    },
    /// `upstream SSL certificate verify error: (<code>:<text>)`, with
    /// `proxy_ssl_verify on`. The text is in [`Classified::detail`].
    VerifyError {
        /// The X.509 verify code, e.g. 18 (self-signed), 20 (unknown issuer), 10 (expired).
        /// 0 when the line does not show a readable code.
        code: u32,
    },
    /// `upstream SSL certificate does not match "<name>"`. The name is in
    /// [`Classified::detail`]; with an `upstream {}` group it is often the group's name.
    NameMismatch,
    /// `upstream prematurely sent response` (1.29.5+): plaintext bytes before
    /// TLS started; an `https://` upstream that is really plain HTTP.
    PrematurelySentResponse,
    /// `SSL_set_tlsext_host_name("<name>") failed`: a 500, before any
    /// handshake.
    ServerNameFailed,
    /// `SSL_read() failed (SSL: ...)` or `SSL_write() failed (SSL: ...)` without an errno:
    /// a TLS-level error on an established connection.
    IoFailed,
}

impl TlsKind {
    /// Stable kebab-case identifier, e.g. `"tls-verify-error"`.
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::ClosedInHandshake => "tls-closed-in-handshake",
            Self::HandshakeFailed { .. } => "tls-handshake-failed",
            Self::VerifyError { .. } => "tls-verify-error",
            Self::NameMismatch => "tls-name-mismatch",
            Self::PrematurelySentResponse => "tls-prematurely-sent-response",
            Self::ServerNameFailed => "tls-server-name-failed",
            Self::IoFailed => "tls-io-failed",
        }
    }
}

/// The OpenSSL reason of a failed handshake (nginx-messages.md §8), matched by the reason text that
/// OpenSSL 3 (`error:0A00010B:SSL routines::wrong version number`) and 1.1.1
/// (`error:1408F10B:SSL routines:ssl3_get_record:wrong version number`) share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsReason {
    /// `wrong version number`: the upstream speaks plain HTTP (`https://` at an HTTP port).
    WrongVersionNumber,
    /// `sslv3 alert handshake failure` (alert 40): the peer rejected the handshake; usually
    /// missing SNI, or no common cipher or signature algorithm.
    HandshakeFailureAlert,
    /// `tlsv1 unrecognized name` (alert 112): the SNI name is wrong.
    UnrecognizedName,
    /// `unsupported protocol`, `tlsv1 alert protocol version` (alert 70) or `no protocols
    /// available`: no TLS version both sides allow (e.g. a TLS 1.0 backend with the
    /// default `proxy_ssl_protocols`).
    ProtocolVersion,
    /// `tlsv13 alert certificate required` (116), `sslv3 alert bad certificate` (42) or
    /// `tlsv1 alert unknown ca` (48): the upstream wants a client certificate
    /// (`proxy_ssl_certificate`) or rejected the one sent.
    ClientCertificate,
    /// Any other reason.
    Other,
}

impl TlsReason {
    /// Stable kebab-case identifier, e.g. `"wrong-version-number"`.
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::WrongVersionNumber => "wrong-version-number",
            Self::HandshakeFailureAlert => "handshake-failure-alert",
            Self::UnrecognizedName => "unrecognized-name",
            Self::ProtocolVersion => "protocol-version",
            Self::ClientCertificate => "client-certificate",
            Self::Other => "other",
        }
    }

    /// The reason named in an OpenSSL error text. BoringSSL's spelling of the same reasons
    /// (`error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER`) counts too:
    /// case and `_` for a space do not matter.
    #[must_use]
    pub fn from_openssl(text: &str) -> Self {
        let has = |reason: &str| contains_reason(text, reason);
        if has("wrong version number") {
            Self::WrongVersionNumber
        } else if has("unrecognized name") {
            Self::UnrecognizedName
        } else if has("unsupported protocol")
            || has("alert protocol version")
            || has("no protocols available")
        {
            Self::ProtocolVersion
        } else if has("certificate required")
            || has("alert bad certificate")
            || has("alert unknown ca")
        {
            Self::ClientCertificate
        } else if has("alert handshake failure") {
            Self::HandshakeFailureAlert
        } else {
            Self::Other
        }
    }
}

/// True when `text` contains `reason` (lowercase words separated by spaces), ignoring ASCII
/// case and taking `_` for a space.
fn contains_reason(text: &str, reason: &str) -> bool {
    let same = |a: &u8, b: &u8| {
        let fold = |c: u8| {
            if c == b'_' {
                b' '
            } else {
                c.to_ascii_lowercase()
            }
        };
        fold(*a) == fold(*b)
    };
    let reason = reason.as_bytes();
    text.as_bytes()
        .windows(reason.len())
        .any(|w| w.iter().zip(reason).all(|(a, b)| same(a, b)))
}

/// What was wrong with the response body (nginx-messages.md §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidBodyKind {
    /// `upstream sent invalid chunked response`.
    Chunked,
    /// `upstream sent too big trailers`.
    TooBigTrailers,
    /// `upstream sent invalid trailer: "...\x<hh>..."`, and the gRPC forms
    /// `upstream sent invalid trailer "<k>: <v>"`, `... invalid trailer`, `upstream sent
    /// trailer without end stream flag`, and `memcached sent invalid trailer`.
    InvalidTrailer,
    /// `upstream sent response body larger than indicated content length`.
    LongerThanContentLength,
}

impl InvalidBodyKind {
    /// Stable kebab-case identifier, e.g. `"invalid-chunked"`.
    #[must_use]
    pub fn id(&self) -> &'static str {
        match self {
            Self::Chunked => "invalid-chunked",
            Self::TooBigTrailers => "too-big-trailers",
            Self::InvalidTrailer => "invalid-trailer",
            Self::LongerThanContentLength => "body-longer-than-content-length",
        }
    }
}

/// What nginx was doing with the upstream, from the line's ` while <action>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// `proxying upgraded connection`: a WebSocket (or other upgraded) connection after the
    /// `101` went to the client.
    Upgraded,
    /// Any other action, or none.
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
            Self::Upgraded => "upgraded",
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
            "proxying upgraded connection" => Self::Upgraded,
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
    /// The value the message quotes, when it has one: the name of
    /// [`TlsKind::NameMismatch`], the text of [`TlsKind::VerifyError`], the OpenSSL errors of
    /// [`TlsKind::HandshakeFailed`] and [`TlsKind::IoFailed`], the text of
    /// [`Signature::FastCgiStderr`], the quoted header of [`Signature::InvalidHeader`] and
    /// [`Http2Kind::InvalidHeader`], the whole message of [`InvalidHeaderKind::Memcached`].
    /// Raw, as nginx wrote it (possibly cut at 2048 bytes).
    pub detail: Option<String>,
}

impl Classified {
    /// What the client got if this was the last attempt, given the line's phase (see
    /// [`Signature::status_in`]).
    #[must_use]
    pub fn http_status(&self) -> u16 {
        self.signature.status_in(self.phase)
    }

    /// True when this line cut short a response whose header the client already had: a
    /// truncated body or a closed WebSocket, **not** a 502/504 (see
    /// [`Signature::truncates_in`]).
    #[must_use]
    pub fn truncates_response(&self) -> bool {
        self.signature.truncates_in(self.phase)
    }

    /// True when this line, as the last attempt, gives the client nginx's 502 or 504.
    #[must_use]
    pub fn is_gateway_error(&self) -> bool {
        matches!(self.http_status(), 502 | 504)
    }

    /// True when this line, as the last attempt, failed the client's request: nginx's 502
    /// or 504 ([`Classified::is_gateway_error`]), or the upstream's raw bytes relayed as an
    /// HTTP/0.9 answer with no status line ([`InvalidHeaderKind::NoValidHttpHeader`], status
    /// 9), which no client takes for the page it asked for.
    #[must_use]
    pub fn fails_request(&self) -> bool {
        self.is_gateway_error() || self.http_status() == 9
    }
}

/// [`Classified`] borrowing from the line: what the scanner uses to avoid allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClassifiedRef<'a> {
    pub(crate) signature: Signature,
    pub(crate) peer: Option<&'a str>,
    pub(crate) scheme: Option<&'a str>,
    pub(crate) phase: Option<Phase>,
    pub(crate) detail: Option<&'a str>,
}

impl ClassifiedRef<'_> {
    pub(crate) fn unix(&self) -> bool {
        self.peer.is_some_and(|p| p.starts_with("unix:"))
    }

    pub(crate) fn to_owned(self) -> Classified {
        Classified {
            signature: self.signature,
            peer: self.peer.map(str::to_owned),
            unix: self.unix(),
            scheme: self.scheme.map(str::to_owned),
            phase: self.phase,
            detail: self.detail.map(str::to_owned),
        }
    }
}

/// Classifies one parsed line. `None` when the line is not about an upstream, or is a
/// harmless upstream warning.
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
    let make =
        |signature: Signature, peer: Option<&'a str>, detail: Option<&'a str>| ClassifiedRef {
            signature,
            peer,
            scheme,
            phase,
            detail,
        };
    if is_module_message(message) {
        // A Lua script's or a third-party module's own text: free text that may quote
        // nginx's messages. Only what nginx itself wrote around it counts: its `upstream:`
        // field or an upstream action; the message gives no name and no signature.
        let upstream_action = action.is_some_and(|a| UPSTREAM_ACTIONS.contains(&a));
        let peer = field.map(|f| f.peer);
        return (peer.is_some() || upstream_action)
            .then(|| make(Signature::OtherUpstream, peer, None));
    }

    if let (Some(connect_peer), Some(errno)) = (connect_failure(message), line.errno) {
        if resolving {
            // The resolver's own socket (e.g. `connect() to 127.0.0.11:53 failed`): DNS
            // trouble, not a failed upstream connect.
            return Some(make(Signature::OtherUpstream, None, None));
        }
        let peer = field.map(|f| f.peer).or(connect_peer);
        let unix = peer.is_some_and(|p| p.starts_with("unix:"));
        let signature = connect_signature(errno.number, unix).unwrap_or(Signature::OtherUpstream);
        return Some(ClassifiedRef {
            phase: phase.or(Some(Phase::Connecting)),
            ..make(signature, peer, None)
        });
    }
    let peer = field.map(|f| f.peer);
    if message == "upstream timed out" {
        let signature = Signature::UpstreamTimedOut {
            phase: phase.unwrap_or(Phase::Other),
        };
        return Some(make(signature, peer, None));
    }
    if message == "no live upstreams" {
        return Some(make(Signature::NoLiveUpstreams, peer, None));
    }
    if is_harmless(message, line.level) {
        return None;
    }
    let upstream_context = peer.is_some() || action.is_some_and(|a| UPSTREAM_ACTIONS.contains(&a));
    if !resolving && (upstream_context || names_upstream(message)) {
        let errno = line.errno.map(|e| e.number);
        if let Some((signature, detail)) = response_signature(message, errno, scheme) {
            return Some(make(signature, peer, detail));
        }
    }
    if peer.is_some() {
        return Some(make(Signature::OtherUpstream, peer, None));
    }
    if let Some(host) = setup_failure(message) {
        let resolve = message.starts_with("no resolver defined to resolve ")
            || message.ends_with(" could not be resolved");
        return Some(make(
            if resolve {
                Signature::Resolve
            } else {
                Signature::OtherUpstream
            },
            host.filter(|h| !h.is_empty()),
            None,
        ));
    }
    if resolving || upstream_context {
        return Some(make(Signature::OtherUpstream, None, None));
    }
    None
}

/// Messages written by a Lua script (OpenResty's `ngx.log`: `[lua] access.lua:202:
/// authenticate(): ...`) or a third-party module that tags its own (`[kong] ...`): a
/// bracketed tag of letters, digits, `_` or `-`, then a space. No message of nginx's own
/// starts with `[`.
fn is_module_message(message: &str) -> bool {
    let Some(rest) = message.strip_prefix('[') else {
        return false;
    };
    let tag = rest
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
        .count();
    tag > 0 && rest.get(tag..).is_some_and(|r| r.starts_with("] "))
}

/// Messages about the client, not the upstream (499s, 494s, client body errors).
fn is_client_side(message: &str) -> bool {
    message.starts_with("client ") || find::REPORTED_CLIENT.find(message).is_some()
}

/// Messages that can only be about an upstream, even on a line cut before its context.
fn names_upstream(message: &str) -> bool {
    message.starts_with("upstream ")
        || message.starts_with("FastCGI sent in stderr")
        || message.starts_with("memcached sent ")
}

/// Upstream warnings that change nothing for the client: nginx ignored or fixed the
/// problem.
fn is_harmless(message: &str, level: Level) -> bool {
    let duplicate = message.starts_with("upstream sent duplicate header line: ");
    (duplicate && (message.ends_with(", ignored") || level >= Level::Warn))
        || message.starts_with("an upstream response is buffered to a temporary file")
        || message.starts_with("upstream sent more data than specified in ")
        || message == "upstream sent data after final chunk"
        || message == "upstream sent data after trailers"
        || message == "upstream sent too big early hints"
        || (message.starts_with("key: ") && message.ends_with(" was not found by memcached"))
}

/// The signature of a response-side message (nginx-messages.md §8–§12, §14) and the value
/// it quotes; `None` when the message is none of them.
fn response_signature<'a>(
    message: &'a str,
    errno: Option<i32>,
    scheme: Option<&str>,
) -> Option<(Signature, Option<&'a str>)> {
    if let Some(found) = io_signature(message, errno) {
        return Some(found);
    }
    if let Some(found) = tls_signature(message) {
        return Some(found);
    }
    if let Some(kind) = body_kind(message) {
        return Some((Signature::InvalidBody(kind), None));
    }
    if let Some(found) = header_signature(message, scheme) {
        return Some(found);
    }
    if let Some(kind) = fastcgi_kind(message) {
        return Some((Signature::FastCgi(kind), None));
    }
    if let Some(text) = message.strip_prefix("FastCGI sent in stderr: ") {
        return Some((Signature::FastCgiStderr, Some(unquote(text))));
    }
    if let Some(kind) = http2_kind(message) {
        return Some((Signature::Http2(kind), None));
    }
    None
}

/// Socket reads and writes (nginx-messages.md §9, §10, §14).
fn io_signature(message: &str, errno: Option<i32>) -> Option<(Signature, Option<&str>)> {
    // `WSARecv()` and `WSASend()`: nginx for Windows.
    const READS: [&str; 4] = [
        "recv() failed",
        "readv() failed",
        "SSL_read() failed",
        "WSARecv() failed",
    ];
    const WRITES: [&str; 5] = [
        "writev() failed",
        "send() failed",
        "sendfile() failed",
        "SSL_write() failed",
        "WSASend() failed",
    ];
    let (write, rest) = match READS.iter().find_map(|op| message.strip_prefix(op)) {
        Some(rest) => (false, rest),
        None => (true, WRITES.iter().find_map(|op| message.strip_prefix(op))?),
    };
    let ssl = if rest.is_empty() {
        None
    } else {
        Some(ssl_errors(rest.strip_prefix(' ')?)?)
    };
    // Linux numbers first, then the BSD ones (kqueue builds) and Windows' WSA ones:
    // ECONNRESET 104/54/10054, EPIPE 32, ETIMEDOUT 110/60/10060.
    let signature = match errno {
        Some(104 | 54 | 10054) => Signature::Reset,
        Some(32) if write => Signature::Reset,
        Some(110 | 60 | 10060) => Signature::KernelTimedOut,
        Some(errno) if write => Signature::SendFailed { errno },
        Some(errno) => Signature::RecvFailed { errno },
        None if ssl.is_some() => Signature::Tls(TlsKind::IoFailed),
        None => return None,
    };
    Some((signature, ssl))
}

/// The OpenSSL errors of a ` (SSL: <errors>)` group.
fn ssl_errors(group: &str) -> Option<&str> {
    group.strip_prefix("(SSL: ")?.strip_suffix(')')
}

/// TLS to the upstream (nginx-messages.md §8).
fn tls_signature(message: &str) -> Option<(Signature, Option<&str>)> {
    let tls = |kind, detail| Some((Signature::Tls(kind), detail));
    if message == "peer closed connection in SSL handshake" {
        return tls(TlsKind::ClosedInHandshake, None);
    }
    if let Some(rest) = message.strip_prefix("SSL_do_handshake() failed") {
        let errors = rest.strip_prefix(' ').and_then(ssl_errors);
        let reason = TlsReason::from_openssl(errors.unwrap_or_default());
        return tls(TlsKind::HandshakeFailed { reason }, errors);
    }
    if let Some(rest) = message.strip_prefix("upstream SSL certificate verify error: ") {
        // `(<code>:<text>)`
        let inner = rest.strip_prefix('(').unwrap_or(rest);
        let inner = inner.strip_suffix(')').unwrap_or(inner);
        let (code, text) = inner.split_once(':').unwrap_or(("", inner));
        let code = code.parse().unwrap_or(0);
        return tls(TlsKind::VerifyError { code }, Some(text));
    }
    if let Some(rest) = message.strip_prefix("upstream SSL certificate does not match ") {
        return tls(TlsKind::NameMismatch, Some(unquote(rest)));
    }
    if message == "upstream prematurely sent response" {
        return tls(TlsKind::PrematurelySentResponse, None);
    }
    if let Some(rest) = message.strip_prefix("SSL_set_tlsext_host_name(") {
        let name = rest.split_once(") failed").map_or(rest, |(name, _)| name);
        return tls(TlsKind::ServerNameFailed, Some(unquote(name)));
    }
    None
}

/// Header-phase HTTP/1 and CGI checks (nginx-messages.md §10, §11).
fn header_signature<'a>(
    message: &'a str,
    scheme: Option<&str>,
) -> Option<(Signature, Option<&'a str>)> {
    use InvalidHeaderKind as K;
    let invalid = |kind, detail| Some((Signature::InvalidHeader(kind), detail));
    match message {
        "upstream prematurely closed connection" => return Some((Signature::PrematureClose, None)),
        "upstream sent too big header" => return Some((Signature::HeaderTooBig, None)),
        "upstream sent no valid HTTP/1.0 header" => return invalid(K::NoValidHttpHeader, None),
        "upstream sent HTTP/1.0 response with early hints" => return invalid(K::EarlyHints, None),
        "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time" => {
            return invalid(K::ContentLengthAndTransferEncoding, None);
        }
        _ => {}
    }
    let grpc = scheme.is_some_and(|s| s.starts_with("grpc"));
    if message == "upstream sent invalid header" {
        // The gRPC module's text, or the invalid-byte text before 1.21.1.
        if grpc {
            return Some((Signature::Http2(Http2Kind::InvalidHeader), None));
        }
        return invalid(K::Bytes { byte: None }, None);
    }
    if let Some(rest) = message.strip_prefix("upstream sent invalid header: ") {
        let byte = invalid_byte(rest);
        if byte.is_none() && grpc {
            // gRPC's HPACK check: `"<name>: <value>"`.
            return Some((
                Signature::Http2(Http2Kind::InvalidHeader),
                Some(unquote(rest)),
            ));
        }
        return invalid(K::Bytes { byte }, Some(unquote(rest)));
    }
    let prefixed: [(&str, InvalidHeaderKind); 5] = [
        ("upstream sent duplicate header line: ", K::DuplicateHeader),
        (
            "upstream sent invalid \"Content-Length\" header: ",
            K::InvalidContentLength,
        ),
        (
            "upstream sent unknown \"Transfer-Encoding\": ",
            K::UnknownTransferEncoding,
        ),
        ("upstream sent invalid status ", K::InvalidStatus),
        ("memcached sent invalid ", K::Memcached),
    ];
    for (prefix, kind) in prefixed {
        if let Some(rest) = message.strip_prefix(prefix) {
            let detail = match kind {
                // `"<name>: <value>", previous value: "<name>: <value>"`, kept whole.
                K::DuplicateHeader => rest,
                K::Memcached => message,
                _ => unquote(rest),
            };
            return invalid(kind, Some(detail));
        }
    }
    None
}

/// The byte of an `upstream sent invalid header: ` value, `"<bytes>\x<hh>..."`.
fn invalid_byte(quoted: &str) -> Option<u8> {
    let body = quoted.strip_suffix("...\"")?;
    let split = body.len().checked_sub(2)?;
    let hex = body.get(split..)?;
    body.get(..split)?.strip_suffix("\\x")?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A quoted value without its quotes (either may be missing on a cut line).
fn unquote(text: &str) -> &str {
    let text = text.strip_prefix('"').unwrap_or(text);
    text.strip_suffix('"').unwrap_or(text)
}

/// The number right after `prefix`, if `message` starts with it.
fn number_after<T: FromStr>(message: &str, prefix: &str) -> Option<T> {
    let rest = message.strip_prefix(prefix)?;
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// FastCGI record errors (nginx-messages.md §11, §14).
fn fastcgi_kind(message: &str) -> Option<FastCgiKind> {
    const VERSION: &str = "upstream sent unsupported FastCGI protocol version: ";
    const RECORD_TYPE: &str = "upstream sent invalid FastCGI record type: ";
    const RECORD: &str = "upstream sent unexpected FastCGI record: ";
    Some(match message {
        "upstream prematurely closed FastCGI stdout" => FastCgiKind::ClosedStdout,
        "upstream prematurely closed FastCGI request" => FastCgiKind::ClosedRequest,
        "upstream split a header line in FastCGI records" => FastCgiKind::SplitHeader,
        _ if message.starts_with("upstream sent unexpected FastCGI request id ") => {
            FastCgiKind::UnexpectedRequestId
        }
        _ if message.starts_with(VERSION) => {
            FastCgiKind::UnsupportedVersion(number_after(message, VERSION)?)
        }
        _ if message.starts_with(RECORD_TYPE) => {
            FastCgiKind::InvalidRecordType(number_after(message, RECORD_TYPE)?)
        }
        _ => FastCgiKind::UnexpectedRecord(number_after(message, RECORD)?),
    })
}

/// Body errors (nginx-messages.md §14).
fn body_kind(message: &str) -> Option<InvalidBodyKind> {
    Some(match message {
        "upstream sent invalid chunked response" => InvalidBodyKind::Chunked,
        "upstream sent too big trailers" => InvalidBodyKind::TooBigTrailers,
        "upstream sent response body larger than indicated content length" => {
            InvalidBodyKind::LongerThanContentLength
        }
        "upstream sent trailer without end stream flag" | "memcached sent invalid trailer" => {
            InvalidBodyKind::InvalidTrailer
        }
        _ if message.starts_with("upstream sent invalid trailer") => {
            InvalidBodyKind::InvalidTrailer
        }
        _ => return None,
    })
}

/// HTTP/2 upstream errors (nginx-messages.md §12), by the texts only the gRPC and proxy HTTP/2
/// modules write.
fn http2_kind(message: &str) -> Option<Http2Kind> {
    if let Some(length) = number_after(message, "upstream sent too large http2 frame: ") {
        return Some(Http2Kind::TooLargeFrame(length));
    }
    if let Some(frame_type) = number_after(message, "upstream sent unexpected http2 frame: ") {
        return Some(Http2Kind::UnexpectedFrame(frame_type));
    }
    if let Some(code) = number_after(message, "upstream rejected request with error ") {
        return Some(Http2Kind::Rejected { code });
    }
    if let Some(code) = number_after(message, "upstream sent goaway with error ") {
        return Some(Http2Kind::Goaway { code });
    }
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| message.starts_with(p));
    Some(if message == "upstream prematurely closed stream" {
        Http2Kind::ClosedStream
    } else if message == "upstream sent unexpected push promise frame" {
        Http2Kind::PushPromise
    } else if starts(&["upstream sent invalid header \""]) {
        Http2Kind::InvalidHeader
    } else if starts(&[
        "upstream sent frame for ",
        "upstream sent data frame for unknown stream",
    ]) {
        Http2Kind::UnknownStream
    } else if starts(&[
        "upstream sent no :status header",
        "upstream sent invalid :status ",
        "upstream sent duplicate :status header",
        "upstream sent unexpected :status ",
    ]) {
        Http2Kind::Status
    } else if starts(&[
        "upstream sent truncated http2 header",
        "upstream sent invalid http2 ",
        "upstream sent http2 table index ",
        "upstream sent zero http2 header",
        "upstream sent too large http2 header",
        "upstream sent invalid encoded header",
    ]) {
        Http2Kind::Hpack
    } else if starts(&[
        "upstream sent headers frame ",
        "upstream sent too short http2 frame",
        "upstream sent http2 frame ",
        "upstream sent rst stream frame ",
        "upstream sent goaway frame ",
        "upstream sent window update frame ",
        "upstream sent zero window update",
        "upstream sent too large window update",
        "upstream sent settings frame ",
        "upstream sent too many settings frames",
        "upstream sent ping frame",
        "upstream sent too many ping frames",
        "upstream violated ",
    ]) {
        Http2Kind::Framing
    } else {
        return None;
    })
}

/// If `message` is a connect failure (`connect() to <peer> failed`, `connect() failed`,
/// `kevent() reported that connect() failed`; nginx-messages.md §7), the peer named in it (only the
/// first form names one).
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
/// numbers (kqueue builds) and Windows' WSA numbers (nginx for Windows) do not occur on
/// Linux connects, so all are accepted. Of the WSA numbers only those whose meaning is the
/// POSIX one are taken: `WSAECONNREFUSED` 10061, `WSAENETDOWN` 10050, `WSAENETUNREACH`
/// 10051, `WSAEHOSTDOWN` 10064, `WSAEHOSTUNREACH` 10065, `WSAETIMEDOUT` 10060 (not
/// `WSAEACCES` 10013, a local firewall rather than SELinux, nor `WSAEADDRNOTAVAIL` 10049,
/// which Windows gives for a connect to an unusable address such as `0.0.0.0`).
fn connect_signature(errno: i32, unix: bool) -> Option<Signature> {
    Some(match errno {
        111 | 61 | 10061 => Signature::ConnectRefused,
        2 if unix => Signature::SocketMissing,
        13 => Signature::PermissionDenied,
        11 | 35 if unix => Signature::BacklogFull,
        101 | 100 | 51 | 50 | 10051 | 10050 => Signature::NetUnreachable,
        113 | 112 | 65 | 64 | 10065 | 10064 => Signature::HostUnreachable,
        99 | 49 => Signature::AddressNotAvailable,
        1 => Signature::NotPermitted,
        110 | 60 | 10060 => Signature::ConnectTimedOut,
        _ => return None,
    })
}

/// True when `text` can be a host name as nginx's resolver writes it: letters, digits,
/// `-`, `_` and `.`, nothing else (no space, no quote, no bracket).
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// If `message` is a DNS or URL failure from before any peer was chosen (nginx-messages.md §5,
/// and the config-time `host not found in upstream`), the host name it names, if any.
fn setup_failure(message: &str) -> Option<Option<&str>> {
    if let Some(host) = message.strip_prefix("no resolver defined to resolve ") {
        return Some(Some(host).filter(|h| is_host_name(h)));
    }
    if let Some((host, after)) = find::NOT_RESOLVED.split_once(message) {
        // `<name> could not be resolved` (ngx_resolver's callers write the bare name; the
        // mail module quotes it), or the zone module's `service <svc> of <name> ...`. Only
        // when the name is all the text before it, as nginx writes it: in other text (a
        // script's message, a cut line) the words before are not a name.
        if !after.is_empty() {
            return None;
        }
        let host = match host.strip_prefix("service ") {
            Some(service) => service.split_once(" of ").map_or(service, |(_, h)| h),
            None => host,
        };
        let host = host
            .strip_prefix('"')
            .and_then(|h| h.strip_suffix('"'))
            .unwrap_or(host);
        return is_host_name(host).then_some(Some(host));
    }
    if message.starts_with("invalid URL prefix in ") || message == "zero length URI to proxy" {
        return Some(None);
    }
    // `no port in upstream "h"`, `invalid port in upstream "h"`, `host not found in
    // upstream "h:p" in /etc/nginx/nginx.conf:12`.
    let (_, after) = find::IN_UPSTREAM.split_once(message)?;
    Some(Some(after.split_once('"').map_or(after, |(host, _)| host)))
}
