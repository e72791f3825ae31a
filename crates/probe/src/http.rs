//! A raw HTTP/1.x probe of an upstream, judged the way nginx's proxy module judges the
//! response header.
//!
//! What belongs here: building the request nginx would send ([`HttpRequest`]), reading the
//! answer within a byte cap and a deadline ([`probe_http`]), and the pure verdict on a
//! response header block ([`judge_header`]) that follows nginx's own parser
//! (`ngx_http_parse_status_line`, `ngx_http_parse_header_line` with underscores allowed,
//! as for upstream responses) and the proxy and upstream header checks
//! (`ngx_http_proxy_process_status_line` / `_process_header`,
//! `ngx_http_upstream_process_content_length` / `_process_transfer_encoding`).
//!
//! The rules are those of current nginx. Two groups are newer than some installed
//! versions, see [`InvalidResponse::nginx_since`]: the `Content-Length` /
//! `Transfer-Encoding` checks (1.23.0) and early hints (1.29.0; older versions take a `103`
//! as the final response). Only `GET` and `HEAD` can be sent.

use std::fmt;
use std::io;
use std::time::Duration;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::connect::ConnectOutcome;
use crate::sniff::{self, Protocol};
use crate::stream::{Endpoint, ReadEnd, open, read_bounded};

/// How many response bytes [`HttpProbe::head`] keeps as evidence.
pub const HEAD_EVIDENCE: usize = 1024;

/// How many body bytes [`HttpProbe::body_sample`] keeps at most.
pub const BODY_SAMPLE: usize = 512;

/// How many header lines [`ParsedHead::headers`] keeps; later lines are still checked.
pub const MAX_KEPT_HEADERS: usize = 256;

/// How many bytes of the offending line [`InvalidResponse::InvalidHeader`] keeps (nginx
/// cuts its error lines at 2048 bytes as well).
pub const MAX_LINE_EVIDENCE: usize = 2048;

const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// The request method. Only safe, body-less methods exist: a probe never replays anything
/// else.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
}

impl Method {
    /// The method token as sent on the request line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
        }
    }
}

/// The request to send, built the way nginx's proxy module builds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The origin-form target, `/path?query`. A target not starting with `/` is sent as
    /// `/`; spaces and control characters are percent-encoded.
    pub target: String,
    /// The `Host` header value (nginx's `$proxy_host` by default).
    pub host: String,
    /// Extra static headers (from `proxy_set_header`), in order. A `Host` entry replaces
    /// [`Self::host`], a `Connection` entry replaces the default `Connection: close`, and an
    /// entry with an empty value is not sent, as in nginx. Entries whose name or value
    /// could break the request framing (CR, LF, NUL, a name with spaces) are not sent.
    pub headers: Vec<(String, String)>,
    /// Send `HTTP/1.1` on the request line, else `HTTP/1.0` (nginx's default before 1.29.7).
    pub http11: bool,
}

impl HttpRequest {
    /// A plain `GET target HTTP/1.0` with the given `Host` and no extra headers.
    pub fn get(target: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            target: target.into(),
            host: host.into(),
            headers: Vec::new(),
            http11: false,
        }
    }

    /// The request line without its CRLF, e.g. `GET /health HTTP/1.0`.
    pub fn request_line(&self) -> String {
        let version = if self.http11 { "HTTP/1.1" } else { "HTTP/1.0" };
        format!(
            "{} {} {version}",
            self.method.as_str(),
            origin_form(&self.target)
        )
    }

    /// The exact bytes sent: request line, the extra headers in order, then the defaults
    /// nginx (1.22 through 1.29.6) appends unless overridden: `Host`, `Connection: close`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.request_line();
        out.push_str("\r\n");
        let mut host_overridden = false;
        let mut connection_overridden = false;
        for (name, value) in &self.headers {
            host_overridden |= name.eq_ignore_ascii_case("host");
            connection_overridden |= name.eq_ignore_ascii_case("connection");
            if value.is_empty() || !sendable_name(name) || !sendable_value(value) {
                continue;
            }
            push_header(&mut out, name, value);
        }
        if !host_overridden && !self.host.is_empty() && sendable_value(&self.host) {
            push_header(&mut out, "Host", &self.host);
        }
        if !connection_overridden {
            push_header(&mut out, "Connection", "close");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

fn sendable_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn sendable_value(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, CR | LF | 0))
}

fn origin_form(target: &str) -> String {
    if !target.starts_with('/') {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(target.len());
    for ch in target.chars() {
        if ch.is_ascii_control() || ch == ' ' {
            out.push_str(&format!("%{:02X}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}

/// Bounds of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpLimits {
    /// Most header bytes read (status line through the final empty line): nginx's
    /// `proxy_buffer_size`. A header that does not fit is [`HttpOutcome::HeaderTooBig`].
    pub cap: usize,
    /// Bounds the whole probe, connect included (nginx's `proxy_connect_timeout` plus
    /// `proxy_read_timeout`, roughly).
    pub timeout: Duration,
}

/// What one HTTP probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpProbe {
    /// The upstream as nginx writes it: `127.0.0.1:8000`, `unix:/run/app.sock`.
    pub endpoint: String,
    /// The request line sent, e.g. `GET / HTTP/1.0`.
    pub request_line: String,
    /// How long the connect took, when it succeeded.
    pub connect_time: Option<Duration>,
    /// Time from the request being written to the first response byte, if any came.
    pub first_byte: Option<Duration>,
    /// Time the whole probe took.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: HttpOutcome,
    /// Size of the complete header block (status line through the final empty line, any
    /// skipped `103` blocks included), or the header bytes received while incomplete
    /// (never more than the cap).
    pub header_bytes: usize,
    /// The first bytes received (at most [`HEAD_EVIDENCE`]), as received.
    pub head: Vec<u8>,
    /// The status code, once a status line was parsed.
    pub status: Option<u16>,
    /// The `Server` header, once one was parsed.
    pub server: Option<String>,
    /// Body bytes that arrived together with the header (at most [`BODY_SAMPLE`]; the
    /// probe never waits for more), e.g. to recognise nginx's own `<center>nginx` pages.
    pub body_sample: Vec<u8>,
}

/// How an HTTP probe ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpOutcome {
    /// A complete header that nginx would accept.
    Response,
    /// The connect failed.
    ConnectFailed(ConnectOutcome),
    /// The upstream closed the connection before the header was complete (nginx:
    /// `upstream prematurely closed connection`).
    ClosedEarly,
    /// The upstream reset the connection before the header was complete (nginx:
    /// `recv() failed (104: ...)`).
    Reset,
    /// The deadline passed before the header was complete (nginx: `upstream timed out`).
    TimedOut,
    /// More than `cap` header bytes came without the header ending (nginx: `upstream sent
    /// too big header`); [`HttpProbe::header_bytes`] is the cap.
    HeaderTooBig,
    /// nginx would reject (or, for [`InvalidResponse::NotHttp`], downgrade) the response.
    Invalid(InvalidResponse),
    /// Writing the request failed and nothing came back (nginx: `send() failed` / `writev()
    /// failed ... while sending request to upstream`).
    SendError {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description.
        message: String,
    },
    /// Another read error before the header was complete.
    ReadError {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description.
        message: String,
    },
}

impl HttpOutcome {
    /// True for [`Self::Response`].
    pub fn is_response(&self) -> bool {
        matches!(self, Self::Response)
    }

    /// The text nginx writes to its error log for this outcome, when that text does not
    /// depend on the libc's errno wording.
    pub fn nginx_message(&self) -> Option<String> {
        match self {
            Self::ClosedEarly => Some("upstream prematurely closed connection".to_owned()),
            Self::HeaderTooBig => Some("upstream sent too big header".to_owned()),
            Self::Invalid(invalid) => invalid.nginx_message(),
            _ => None,
        }
    }
}

fn with_errno(f: &mut fmt::Formatter<'_>, message: &str, errno: Option<i32>) -> fmt::Result {
    match errno {
        Some(n) => write!(f, "{message} ({n})"),
        None => f.write_str(message),
    }
}

impl fmt::Display for HttpOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Response => f.write_str("sent a complete response header"),
            Self::ConnectFailed(outcome) => write!(f, "connect failed: {outcome}"),
            Self::ClosedEarly => {
                f.write_str("closed the connection before sending a complete header")
            }
            Self::Reset => {
                f.write_str("reset the connection (104) before sending a complete header")
            }
            Self::TimedOut => f.write_str("sent no complete header before the timeout"),
            Self::HeaderTooBig => f.write_str("sent a header bigger than the header buffer"),
            Self::Invalid(invalid) => write!(f, "invalid response: {invalid}"),
            Self::SendError { errno, message } => {
                f.write_str("sending the request failed: ")?;
                with_errno(f, message, *errno)
            }
            Self::ReadError { errno, message } => {
                f.write_str("reading the response failed: ")?;
                with_errno(f, message, *errno)
            }
        }
    }
}

/// Why nginx would not accept a response header.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvalidResponse {
    /// The first line is not an HTTP status line (nginx: `upstream sent no valid HTTP/1.0
    /// header`). nginx then falls back to HTTP/0.9 and relays the raw bytes with status
    /// 200 (logged as `009`), so this is not a 502 by itself.
    NotHttp {
        /// What the bytes look like instead ([`sniff::identify`]).
        protocol: Option<Protocol>,
    },
    /// nginx's header parser rejected a byte (nginx: `upstream sent invalid header:
    /// "<line>\x<hh>..."`). As in nginx's message, `offset` and `byte` point at nginx's
    /// `header_end`: the rejected byte itself, except after a CR not followed by LF, where
    /// they point at that CR (or at the trailing space before it).
    InvalidHeader {
        /// Offset of that byte in the header block (the status line included).
        offset: usize,
        /// Its value.
        byte: u8,
        /// The line up to it (at most [`MAX_LINE_EVIDENCE`] bytes).
        line: Vec<u8>,
    },
    /// A second `Content-Length` or `Transfer-Encoding` header (nginx >= 1.23.0: `upstream
    /// sent duplicate header line`).
    DuplicateHeader {
        /// The header name as the second line spells it.
        name: String,
        /// The header name as the first line spells it.
        first_name: String,
        /// The first value.
        first: String,
        /// The second value.
        second: String,
    },
    /// Both `Content-Length` and `Transfer-Encoding` (nginx >= 1.23.0).
    ContentLengthAndTransferEncoding,
    /// A `Content-Length` that is not a non-negative decimal integer (nginx >= 1.23.0).
    InvalidContentLength(String),
    /// A `Transfer-Encoding` other than exactly `chunked` (nginx >= 1.23.0).
    UnknownTransferEncoding(String),
    /// Status 103 on an HTTP/1.0 response (nginx >= 1.29.0).
    EarlyHintsOnHttp10,
    /// Only from [`judge_header`]: the bytes end before the header block does.
    Incomplete,
}

impl InvalidResponse {
    /// The first nginx version (major, minor, patch) that rejects this; `None` when every
    /// version does.
    pub fn nginx_since(&self) -> Option<(u16, u16, u16)> {
        match self {
            Self::DuplicateHeader { .. }
            | Self::ContentLengthAndTransferEncoding
            | Self::InvalidContentLength(_)
            | Self::UnknownTransferEncoding(_) => Some((1, 23, 0)),
            Self::EarlyHintsOnHttp10 => Some((1, 29, 0)),
            Self::NotHttp { .. } | Self::InvalidHeader { .. } | Self::Incomplete => None,
        }
    }

    /// The text nginx writes to its error log (after the `*N ` connection number), e.g.
    /// `upstream sent invalid header: "X-Bad: a\x00..."`. Checked against nginx 1.22.1
    /// and 1.29.8; for an invalid `Content-Length` the name is spelled canonically here.
    pub fn nginx_message(&self) -> Option<String> {
        let text = match self {
            Self::NotHttp { .. } => "upstream sent no valid HTTP/1.0 header".to_owned(),
            Self::InvalidHeader { byte, line, .. } => format!(
                "upstream sent invalid header: \"{}\\x{byte:02x}...\"",
                String::from_utf8_lossy(line)
            ),
            Self::DuplicateHeader {
                name,
                first_name,
                first,
                second,
            } => format!(
                "upstream sent duplicate header line: \"{name}: {second}\", previous value: \"{first_name}: {first}\""
            ),
            Self::ContentLengthAndTransferEncoding => "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time".to_owned(),
            Self::InvalidContentLength(value) => {
                format!("upstream sent invalid \"Content-Length\" header: \"Content-Length: {value}\"")
            }
            Self::UnknownTransferEncoding(value) => {
                format!("upstream sent unknown \"Transfer-Encoding\": \"{value}\"")
            }
            Self::EarlyHintsOnHttp10 => "upstream sent HTTP/1.0 response with early hints".to_owned(),
            Self::Incomplete => return None,
        };
        Some(text)
    }
}

/// Shows bytes with non-printable ones escaped, cut to `max` bytes.
fn shown(bytes: &[u8], max: usize) -> String {
    let cut = bytes.get(..max).unwrap_or(bytes);
    let mut text = cut.escape_ascii().to_string();
    if cut.len() < bytes.len() {
        text.push_str("...");
    }
    text
}

impl fmt::Display for InvalidResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotHttp { protocol } => {
                f.write_str("the response does not start with an HTTP/1.x status line")?;
                match protocol {
                    Some(p) => write!(f, " (it looks like {})", p.name()),
                    None => Ok(()),
                }
            }
            Self::InvalidHeader { offset, byte, line } => write!(
                f,
                "invalid byte 0x{byte:02x} at offset {offset} in header line \"{}\"",
                shown(line, 120)
            ),
            Self::DuplicateHeader {
                name,
                first,
                second,
                ..
            } => write!(
                f,
                "duplicate \"{name}\" header: \"{}\", then \"{}\"",
                shown(first.as_bytes(), 120),
                shown(second.as_bytes(), 120)
            ),
            Self::ContentLengthAndTransferEncoding => {
                f.write_str("both \"Content-Length\" and \"Transfer-Encoding\" headers")
            }
            Self::InvalidContentLength(value) => write!(
                f,
                "invalid \"Content-Length\" value \"{}\"",
                shown(value.as_bytes(), 120)
            ),
            Self::UnknownTransferEncoding(value) => write!(
                f,
                "unknown \"Transfer-Encoding\" value \"{}\" (nginx accepts only \"chunked\")",
                shown(value.as_bytes(), 120)
            ),
            Self::EarlyHintsOnHttp10 => {
                f.write_str("status 103 (early hints) on an HTTP/1.0 response")
            }
            Self::Incomplete => f.write_str("the header block has no final empty line"),
        }
    }
}

/// A response header nginx accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedHead {
    /// The status code.
    pub status: u16,
    /// The HTTP version from the status line, (major, minor).
    pub version: (u16, u16),
    /// The reason phrase (lossy UTF-8).
    pub reason: String,
    /// Header lines in order, (name as sent, value with surrounding spaces removed), at most
    /// [`MAX_KEPT_HEADERS`].
    pub headers: Vec<(String, Vec<u8>)>,
    /// How many header lines the block had (lines nginx ignores not counted).
    pub header_count: usize,
    /// Size of the header block, status line through the final empty line; `103` blocks
    /// before it included.
    pub header_bytes: usize,
    /// How many `103 Early Hints` blocks came first (nginx >= 1.29.0 skips them).
    pub early_hints: usize,
    /// The `Content-Length` value.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` was sent.
    pub chunked: bool,
}

impl ParsedHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Judges a response header block the way nginx's proxy module does.
///
/// `block` starts with the status line; bytes after the header's final empty line are
/// ignored. A block without that empty line is [`InvalidResponse::Incomplete`].
pub fn judge_header(block: &[u8]) -> Result<ParsedHead, InvalidResponse> {
    let mut scanner = HeadScanner::new(usize::MAX);
    scanner.feed(block);
    match scanner.verdict {
        Some(Verdict::Complete(head)) => Ok(head),
        Some(Verdict::Invalid(invalid)) => Err(invalid),
        Some(Verdict::TooBig) | None => Err(InvalidResponse::Incomplete),
    }
}

/// Status-line states, as in `ngx_http_parse_status_line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusState {
    Start,
    H,
    Ht,
    Htt,
    Http,
    FirstMajor,
    Major,
    FirstMinor,
    Minor,
    Code,
    SpaceAfterCode,
    Text,
    AlmostDone,
}

/// Header-line states, as in `ngx_http_parse_header_line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    Start,
    Name,
    SpaceBeforeValue,
    Value,
    SpaceAfterValue,
    IgnoreLine,
    AlmostDone,
    HeaderAlmostDone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    StatusLine(StatusState),
    Headers(LineState),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Complete(ParsedHead),
    Invalid(InvalidResponse),
    TooBig,
}

/// What one byte did to the scanner.
enum Step {
    Next(Phase),
    Stop(Verdict),
}

/// nginx's response-header parser, fed incrementally: each call looks only at the bytes
/// not seen before, so a peer dribbling bytes costs linear time.
struct HeadScanner {
    cap: usize,
    pos: usize,
    phase: Phase,
    verdict: Option<Verdict>,
    // status line
    major: u16,
    minor: u16,
    code: u16,
    digits: u8,
    reason_start: Option<usize>,
    status: Option<u16>,
    version: (u16, u16),
    reason: String,
    // current header line
    name_start: usize,
    name_end: usize,
    value_start: usize,
    header_end: usize,
    // the block so far
    headers: Vec<(String, Vec<u8>)>,
    header_count: usize,
    server: Option<String>,
    /// Value, then (name, value) as sent, of the `Content-Length` line.
    content_length: Option<(u64, String, String)>,
    /// (name, value) as sent of the `Transfer-Encoding` line.
    transfer_encoding: Option<(String, String)>,
    chunked: bool,
    early_hints: usize,
}

impl HeadScanner {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            pos: 0,
            phase: Phase::StatusLine(StatusState::Start),
            verdict: None,
            major: 0,
            minor: 0,
            code: 0,
            digits: 0,
            reason_start: None,
            status: None,
            version: (0, 0),
            reason: String::new(),
            name_start: 0,
            name_end: 0,
            value_start: 0,
            header_end: 0,
            headers: Vec::new(),
            header_count: 0,
            server: None,
            content_length: None,
            transfer_encoding: None,
            chunked: false,
            early_hints: 0,
        }
    }

    /// Looks at the bytes of `all` not seen yet (only the first `cap`); true once decided.
    fn feed(&mut self, all: &[u8]) -> bool {
        if self.verdict.is_some() {
            return true;
        }
        let window = all.get(..self.cap).unwrap_or(all);
        while let Some(&ch) = window.get(self.pos) {
            let step = match self.phase {
                Phase::StatusLine(state) => self.status_byte(state, ch, window),
                Phase::Headers(state) => self.header_byte(state, ch, window),
            };
            match step {
                Step::Next(phase) => self.phase = phase,
                Step::Stop(verdict) => {
                    self.verdict = Some(verdict);
                    return true;
                }
            }
            self.pos += 1;
        }
        if all.len() >= self.cap {
            self.verdict = Some(Verdict::TooBig);
            return true;
        }
        false
    }

    fn not_http(window: &[u8]) -> Step {
        Step::Stop(Verdict::Invalid(InvalidResponse::NotHttp {
            protocol: sniff::identify(window),
        }))
    }

    fn status_byte(&mut self, state: StatusState, ch: u8, window: &[u8]) -> Step {
        use StatusState as S;
        let p = self.pos;
        let next = match (state, ch) {
            (S::Start, b'H') => S::H,
            (S::H, b'T') => S::Ht,
            (S::Ht, b'T') => S::Htt,
            (S::Htt, b'P') => S::Http,
            (S::Http, b'/') => S::FirstMajor,
            (S::FirstMajor, b'1'..=b'9') => {
                self.major = u16::from(ch - b'0');
                S::Major
            }
            (S::Major, b'.') => S::FirstMinor,
            (S::Major, b'0'..=b'9') if self.major <= 99 => {
                self.major = self.major * 10 + u16::from(ch - b'0');
                S::Major
            }
            (S::FirstMinor, b'0'..=b'9') => {
                self.minor = u16::from(ch - b'0');
                S::Minor
            }
            (S::Minor, b' ') => S::Code,
            (S::Minor, b'0'..=b'9') if self.minor <= 99 => {
                self.minor = self.minor * 10 + u16::from(ch - b'0');
                S::Minor
            }
            (S::Code, b' ') => S::Code,
            (S::Code, b'0'..=b'9') => {
                self.code = self.code * 10 + u16::from(ch - b'0');
                self.digits += 1;
                if self.digits == 3 {
                    S::SpaceAfterCode
                } else {
                    S::Code
                }
            }
            // "." for IIS's "403.1"
            (S::SpaceAfterCode, b' ' | b'.') => {
                self.reason_start = Some(p + 1);
                S::Text
            }
            (S::SpaceAfterCode | S::Text, CR) => S::AlmostDone,
            (S::SpaceAfterCode | S::Text | S::AlmostDone, LF) => {
                return self.status_line_done(window);
            }
            (S::Text, _) => S::Text,
            _ => return Self::not_http(window),
        };
        Step::Next(Phase::StatusLine(next))
    }

    fn status_line_done(&mut self, window: &[u8]) -> Step {
        let p = self.pos;
        let end = if p > 0 && window.get(p - 1) == Some(&CR) {
            p - 1
        } else {
            p
        };
        self.reason = match self.reason_start {
            Some(start) => {
                String::from_utf8_lossy(window.get(start..end).unwrap_or_default()).into_owned()
            }
            None => String::new(),
        };
        self.status = Some(self.code);
        self.version = (self.major, self.minor);
        let http_version = u32::from(self.major) * 1000 + u32::from(self.minor);
        if http_version < 1001 && self.code == 103 {
            return Step::Stop(Verdict::Invalid(InvalidResponse::EarlyHintsOnHttp10));
        }
        self.headers.clear();
        self.header_count = 0;
        self.server = None;
        Step::Next(Phase::Headers(LineState::Start))
    }

    fn invalid_header(&self, window: &[u8]) -> Step {
        let line = window
            .get(self.name_start..self.header_end)
            .unwrap_or_default();
        Step::Stop(Verdict::Invalid(InvalidResponse::InvalidHeader {
            offset: self.header_end,
            byte: window.get(self.header_end).copied().unwrap_or(0),
            line: line.get(..MAX_LINE_EVIDENCE).unwrap_or(line).to_vec(),
        }))
    }

    fn header_byte(&mut self, state: LineState, ch: u8, window: &[u8]) -> Step {
        use LineState as L;
        let p = self.pos;
        let next = match state {
            L::Start => {
                self.name_start = p;
                match ch {
                    CR => {
                        self.header_end = p;
                        L::HeaderAlmostDone
                    }
                    LF => {
                        self.header_end = p;
                        return self.block_done();
                    }
                    _ if name_byte(ch) => L::Name,
                    _ if ch <= 0x20 || ch == 0x7f || ch == b':' => {
                        self.header_end = p;
                        return self.invalid_header(window);
                    }
                    // nginx flags such a name as invalid, but the proxy keeps the line
                    _ => L::Name,
                }
            }
            L::Name => match ch {
                _ if name_byte(ch) => L::Name,
                b':' => {
                    self.name_end = p;
                    L::SpaceBeforeValue
                }
                CR | LF => {
                    self.name_end = p;
                    self.value_start = p;
                    self.header_end = p;
                    if ch == LF {
                        return self.line_done(window);
                    }
                    L::AlmostDone
                }
                // IIS may repeat its "HTTP/1.1 ..." status line
                b'/' if window.get(self.name_start..p) == Some(b"HTTP".as_slice()) => L::IgnoreLine,
                _ if ch <= 0x20 || ch == 0x7f => {
                    self.header_end = p;
                    return self.invalid_header(window);
                }
                _ => L::Name,
            },
            L::SpaceBeforeValue => match ch {
                b' ' => L::SpaceBeforeValue,
                CR | LF => {
                    self.value_start = p;
                    self.header_end = p;
                    if ch == LF {
                        return self.line_done(window);
                    }
                    L::AlmostDone
                }
                0 => {
                    self.header_end = p;
                    return self.invalid_header(window);
                }
                _ => {
                    self.value_start = p;
                    L::Value
                }
            },
            L::Value => match ch {
                b' ' => {
                    self.header_end = p;
                    L::SpaceAfterValue
                }
                CR => {
                    self.header_end = p;
                    L::AlmostDone
                }
                LF => {
                    self.header_end = p;
                    return self.line_done(window);
                }
                0 => {
                    self.header_end = p;
                    return self.invalid_header(window);
                }
                _ => L::Value,
            },
            L::SpaceAfterValue => match ch {
                b' ' => L::SpaceAfterValue,
                CR => L::AlmostDone,
                LF => return self.line_done(window),
                0 => {
                    self.header_end = p;
                    return self.invalid_header(window);
                }
                _ => L::Value,
            },
            L::IgnoreLine => {
                if ch == LF {
                    L::Start
                } else {
                    L::IgnoreLine
                }
            }
            L::AlmostDone => match ch {
                LF => return self.line_done(window),
                CR => L::AlmostDone,
                _ => return self.invalid_header(window),
            },
            L::HeaderAlmostDone => match ch {
                LF => return self.block_done(),
                _ => return self.invalid_header(window),
            },
        };
        Step::Next(Phase::Headers(next))
    }

    /// One header line is complete: run the checks nginx's header handlers run.
    fn line_done(&mut self, window: &[u8]) -> Step {
        let name = window
            .get(self.name_start..self.name_end)
            .unwrap_or_default();
        let value = window
            .get(self.value_start..self.header_end)
            .unwrap_or_default();
        let name_text = String::from_utf8_lossy(name).into_owned();
        let value_text = || String::from_utf8_lossy(value).into_owned();
        self.header_count += 1;
        // nginx >= 1.29 runs no header handlers on an early-hints block
        if self.status != Some(103) {
            if let Err(invalid) = self.check_framing(&name_text, value, value_text()) {
                return Step::Stop(Verdict::Invalid(invalid));
            }
            if self.server.is_none() && name.eq_ignore_ascii_case(b"server") {
                self.server = Some(value_text());
            }
        }
        if self.headers.len() < MAX_KEPT_HEADERS {
            self.headers.push((name_text, value.to_vec()));
        }
        Step::Next(Phase::Headers(LineState::Start))
    }

    /// nginx's `Content-Length` and `Transfer-Encoding` handlers (1.23.0 and later).
    fn check_framing(
        &mut self,
        name: &str,
        value: &[u8],
        value_text: String,
    ) -> Result<(), InvalidResponse> {
        if name.eq_ignore_ascii_case("content-length") {
            if let Some((_, first_name, first)) = &self.content_length {
                return Err(InvalidResponse::DuplicateHeader {
                    name: name.to_owned(),
                    first_name: first_name.clone(),
                    first: first.clone(),
                    second: value_text,
                });
            }
            if self.transfer_encoding.is_some() {
                return Err(InvalidResponse::ContentLengthAndTransferEncoding);
            }
            let Some(length) = parse_content_length(value) else {
                return Err(InvalidResponse::InvalidContentLength(value_text));
            };
            self.content_length = Some((length, name.to_owned(), value_text));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if let Some((first_name, first)) = &self.transfer_encoding {
                return Err(InvalidResponse::DuplicateHeader {
                    name: name.to_owned(),
                    first_name: first_name.clone(),
                    first: first.clone(),
                    second: value_text,
                });
            }
            if self.content_length.is_some() {
                return Err(InvalidResponse::ContentLengthAndTransferEncoding);
            }
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(InvalidResponse::UnknownTransferEncoding(value_text));
            }
            self.transfer_encoding = Some((name.to_owned(), value_text));
            self.chunked = true;
        }
        Ok(())
    }

    /// The empty line ending a header block.
    fn block_done(&mut self) -> Step {
        if self.status == Some(103) {
            // nginx >= 1.29 skips early hints and parses the next status line
            self.early_hints += 1;
            self.code = 0;
            self.digits = 0;
            self.major = 0;
            self.minor = 0;
            self.reason_start = None;
            return Step::Next(Phase::StatusLine(StatusState::Start));
        }
        Step::Stop(Verdict::Complete(ParsedHead {
            status: self.status.unwrap_or_default(),
            version: self.version,
            reason: self.reason.clone(),
            headers: std::mem::take(&mut self.headers),
            header_count: self.header_count,
            header_bytes: self.pos + 1,
            early_hints: self.early_hints,
            content_length: self.content_length.as_ref().map(|(n, _, _)| *n),
            chunked: self.chunked,
        }))
    }
}

/// A byte nginx's lower-case table maps (letters, digits, `-`), or `_` (allowed for
/// upstream responses).
fn name_byte(ch: u8) -> bool {
    ch.is_ascii_alphanumeric() || ch == b'-' || ch == b'_'
}

/// `ngx_atoof`: decimal digits only, at least one, no overflow of a signed 64-bit value.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    u64::try_from(n).ok()
}

fn classify_io(err: &io::Error) -> (Option<i32>, String) {
    let errno = err.raw_os_error();
    let message = match errno {
        Some(n) => Errno::from_raw(n).desc().to_lowercase(),
        None => err.to_string(),
    };
    (errno, message)
}

/// Sends `request` to `endpoint` and judges the response header as nginx would.
///
/// Reads at most `limits.cap` header bytes (plus up to [`BODY_SAMPLE`] body bytes that
/// arrive in the same reads) and gives up at `limits.timeout` after the start, connect
/// included. Never panics and never waits past the deadline, whatever the peer sends.
pub async fn probe_http(
    endpoint: &Endpoint,
    request: &HttpRequest,
    limits: HttpLimits,
) -> HttpProbe {
    let start = Instant::now();
    let deadline = start + limits.timeout;
    let mut probe = HttpProbe {
        endpoint: endpoint.to_string(),
        request_line: request.request_line(),
        connect_time: None,
        first_byte: None,
        elapsed: Duration::ZERO,
        outcome: HttpOutcome::TimedOut,
        header_bytes: 0,
        head: Vec::new(),
        status: None,
        server: None,
        body_sample: Vec::new(),
    };
    run(endpoint, request, limits, deadline, &mut probe).await;
    probe.elapsed = start.elapsed();
    tracing::debug!(
        endpoint = %probe.endpoint,
        outcome = %probe.outcome,
        status = ?probe.status,
        header_bytes = probe.header_bytes,
        "http probe"
    );
    probe
}

async fn run(
    endpoint: &Endpoint,
    request: &HttpRequest,
    limits: HttpLimits,
    deadline: Instant,
    probe: &mut HttpProbe,
) {
    let mut stream = match open(endpoint, deadline).await {
        Ok((stream, took)) => {
            probe.connect_time = Some(took);
            stream
        }
        Err(outcome) => {
            probe.outcome = HttpOutcome::ConnectFailed(outcome);
            return;
        }
    };
    let send_error =
        match tokio::time::timeout_at(deadline, stream.write_all(&request.to_bytes())).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(classify_io(&err)),
            Err(_) => {
                probe.outcome = HttpOutcome::TimedOut;
                return;
            }
        };

    let mut scanner = HeadScanner::new(limits.cap);
    let read = read_bounded(
        &mut stream,
        deadline,
        limits.cap.saturating_add(BODY_SAMPLE),
        |bytes| scanner.feed(bytes),
    )
    .await;
    let bytes = read.bytes;

    probe.first_byte = read.first_byte;
    probe.head = bytes.get(..HEAD_EVIDENCE).unwrap_or(&bytes).to_vec();
    probe.status = scanner.status;
    probe.server = scanner.server.clone();
    probe.header_bytes = bytes.len().min(limits.cap);
    probe.outcome = match scanner.verdict {
        Some(Verdict::Complete(head)) => {
            probe.header_bytes = head.header_bytes;
            let body = bytes.get(head.header_bytes..).unwrap_or_default();
            probe.body_sample = body.get(..BODY_SAMPLE).unwrap_or(body).to_vec();
            HttpOutcome::Response
        }
        Some(Verdict::Invalid(invalid)) => HttpOutcome::Invalid(invalid),
        Some(Verdict::TooBig) => {
            probe.header_bytes = limits.cap;
            HttpOutcome::HeaderTooBig
        }
        None => match (send_error, bytes.is_empty()) {
            (Some((errno, message)), true) => HttpOutcome::SendError { errno, message },
            _ => match read.end {
                ReadEnd::Eof | ReadEnd::Done => HttpOutcome::ClosedEarly,
                ReadEnd::Reset => HttpOutcome::Reset,
                ReadEnd::TimedOut => HttpOutcome::TimedOut,
                ReadEnd::Capped => HttpOutcome::HeaderTooBig,
                ReadEnd::Error { errno, message } => HttpOutcome::ReadError { errno, message },
            },
        },
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    const SECOND: Duration = Duration::from_secs(1);

    fn limits(cap: usize, timeout: Duration) -> HttpLimits {
        HttpLimits { cap, timeout }
    }

    /// Reads one request head (up to the empty line), bounded in time and size.
    async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + 2 * SECOND;
        while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 64 * 1024 {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
                _ => break,
            }
        }
        got
    }

    /// A one-connection server: reads the request, then hands the socket to `act`.
    /// Returns the address and a handle yielding the captured request.
    async fn server<F, Fut>(act: F) -> (SocketAddr, JoinHandle<Vec<u8>>)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let request = read_request(&mut stream).await;
            act(stream).await;
            request
        });
        (addr, handle)
    }

    /// A server that answers with `response` and closes.
    async fn answering(response: Vec<u8>) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        server(move |mut stream| async move {
            // the client may stop reading early; write errors are expected then
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        })
        .await
    }

    async fn probe_response(response: &[u8]) -> HttpProbe {
        let (addr, handle) = answering(response.to_vec()).await;
        let request = HttpRequest::get("/", "backend");
        let probe = probe_http(
            &Endpoint::Tcp(addr),
            &request,
            limits(64 * 1024, 2 * SECOND),
        )
        .await;
        handle.await.expect("server");
        probe
    }

    fn judged(block: &[u8]) -> InvalidResponse {
        judge_header(block).expect_err("should be rejected")
    }

    #[tokio::test]
    async fn valid_response_with_body_sample() {
        let response = b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx/1.22.1\r\nContent-Length: 157\r\n\r\n<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n";
        let probe = probe_response(response).await;
        assert_eq!(probe.outcome, HttpOutcome::Response);
        assert_eq!(probe.status, Some(502));
        assert_eq!(probe.server.as_deref(), Some("nginx/1.22.1"));
        let header_len = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end")
            + 4;
        assert_eq!(probe.header_bytes, header_len);
        assert!(probe.body_sample.windows(13).any(|w| w == b"<center>nginx"));
        assert_eq!(probe.head, response.to_vec());
        assert_eq!(probe.request_line, "GET / HTTP/1.0");
        assert!(probe.connect_time.is_some());
        assert!(probe.first_byte.is_some());
        assert_eq!(probe.outcome.to_string(), "sent a complete response header");
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let head = judge_header(b"HTTP/1.0 200 OK\nContent-Type: text/plain\nX_Under: 1\n\nbody")
            .expect("accepted");
        assert_eq!(head.status, 200);
        assert_eq!(head.version, (1, 0));
        assert_eq!(head.reason, "OK");
        assert_eq!(head.header_bytes, 53);
        assert_eq!(head.header("content-type"), Some(b"text/plain".as_slice()));
        assert_eq!(head.header("X_Under"), Some(b"1".as_slice()));
    }

    #[tokio::test]
    async fn bare_lf_response_over_the_wire() {
        let probe = probe_response(b"HTTP/1.1 200 OK\nServer: x\n\nhi").await;
        assert_eq!(probe.outcome, HttpOutcome::Response);
        assert_eq!(probe.header_bytes, 27);
        assert_eq!(probe.body_sample, b"hi");
    }

    #[test]
    fn status_line_and_value_details_follow_nginx() {
        // no reason phrase, trailing spaces trimmed, leading spaces skipped, tab kept
        let head = judge_header(b"HTTP/1.1 204\r\nA:   x y  \r\nB:\t1\r\nNoColon\r\n\r\n")
            .expect("accepted");
        assert_eq!(head.status, 204);
        assert_eq!(head.reason, "");
        assert_eq!(head.header("a"), Some(b"x y".as_slice()));
        assert_eq!(head.header("b"), Some(b"\t1".as_slice()));
        assert_eq!(head.header("nocolon"), Some(b"".as_slice()));
        assert_eq!(head.header_count, 3);
        // IIS "403.1" status and a repeated status line, which nginx ignores
        let head = judge_header(b"HTTP/1.1 403.1 Forbidden\r\nHTTP/1.1 403 x\r\nA: b\r\n\r\n")
            .expect("accepted");
        assert_eq!(head.status, 403);
        assert_eq!(head.header_count, 1);
        // bytes nginx merely flags (not rejects) in a name are kept
        let head = judge_header(b"HTTP/1.1 200 OK\r\nX.Odd@: 1\r\n\r\n").expect("accepted");
        assert_eq!(head.header("x.odd@"), Some(b"1".as_slice()));
        // two-digit versions, a chunked response (case-insensitive)
        let head = judge_header(b"HTTP/11.12 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .expect("accepted");
        assert_eq!(head.version, (11, 12));
        assert!(head.chunked);
        // nginx checks the bound before adding a digit: a three-digit minor passes
        // (checked against nginx 1.22.1)
        let head = judge_header(b"HTTP/1.100 200 OK\r\n\r\n").expect("accepted");
        assert_eq!(head.version, (1, 100));
        let head =
            judge_header(b"HTTP/1.1 200 OK\r\nContent-Length: 0012\r\n\r\n").expect("accepted");
        assert_eq!(head.content_length, Some(12));
    }

    #[test]
    fn early_hints_are_skipped_on_http11_and_rejected_on_http10() {
        let head = judge_header(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nContent-Length: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )
        .expect("accepted");
        assert_eq!(head.status, 200);
        assert_eq!(head.early_hints, 1);
        assert_eq!(head.content_length, Some(2));
        assert_eq!(head.header_bytes, 101);
        let invalid = judged(b"HTTP/1.0 103 Early Hints\r\n\r\n");
        assert_eq!(invalid, InvalidResponse::EarlyHintsOnHttp10);
        assert_eq!(invalid.nginx_since(), Some((1, 29, 0)));
        assert_eq!(
            invalid.nginx_message().as_deref(),
            Some("upstream sent HTTP/1.0 response with early hints")
        );
    }

    #[test]
    fn not_http_status_lines() {
        // the status line must be exactly what nginx's parser takes
        for bad in [
            b"HTTP/2 200 OK\r\n\r\n".as_slice(),
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/0.9 200 OK\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
            b" HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\rX\n\r\n",
            b"HTTP/1.1 20A OK\r\n\r\n",
            b"HTTP/1.1000 200 OK\r\n\r\n",
            b"<html>hello</html>",
        ] {
            let looks_like = bad.starts_with(b"HTTP/1.").then_some(Protocol::Http1);
            assert_eq!(
                judged(bad),
                InvalidResponse::NotHttp {
                    protocol: looks_like
                },
                "{}",
                bad.escape_ascii()
            );
        }
        let invalid = judged(b"SSH-2.0-OpenSSH_9.2\r\n");
        assert_eq!(
            invalid,
            InvalidResponse::NotHttp {
                protocol: Some(Protocol::Ssh)
            }
        );
        assert_eq!(
            invalid.nginx_message().as_deref(),
            Some("upstream sent no valid HTTP/1.0 header")
        );
        assert_eq!(
            judged(b"HTTP/1.1 200 OK\r\nA: b\r\n"),
            InvalidResponse::Incomplete
        );
    }

    #[test]
    fn nul_in_value_reports_offset_byte_and_line() {
        let block = b"HTTP/1.1 200 OK\r\nServer: x\r\nX-Bad: a\0b\r\n\r\n";
        let invalid = judged(block);
        assert_eq!(
            invalid,
            InvalidResponse::InvalidHeader {
                offset: 36,
                byte: 0,
                line: b"X-Bad: a".to_vec()
            }
        );
        assert_eq!(block.get(36), Some(&0));
        assert_eq!(
            invalid.to_string(),
            "invalid byte 0x00 at offset 36 in header line \"X-Bad: a\""
        );
        assert_eq!(
            invalid.nginx_message().as_deref(),
            Some("upstream sent invalid header: \"X-Bad: a\\x00...\"")
        );
        assert_eq!(invalid.nginx_since(), None);
    }

    #[test]
    fn invalid_header_bytes_follow_nginx() {
        let cases: [(&[u8], usize, u8, &[u8]); 8] = [
            // control character in a name
            (b"HTTP/1.1 200 OK\r\nX-A\x01b: c\r\n\r\n", 20, 0x01, b"X-A"),
            // space in a name
            (
                b"HTTP/1.1 200 OK\r\nContent Type: c\r\n\r\n",
                24,
                b' ',
                b"Content",
            ),
            // obsolete line folding: a line starting with a space
            (b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", 23, b' ', b""),
            // a line starting with a tab, and with ':'
            (b"HTTP/1.1 200 OK\r\n\tA: b\r\n\r\n", 17, b'\t', b""),
            (b"HTTP/1.1 200 OK\r\n: b\r\n\r\n", 17, b':', b""),
            // CR not followed by LF: nginx points at the CR
            (b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", 21, CR, b"A: b"),
            // CR without LF at the end of the block
            (b"HTTP/1.1 200 OK\r\n\rX", 17, CR, b""),
            // NUL right after the colon
            (b"HTTP/1.1 200 OK\r\nA:\0\r\n\r\n", 19, 0, b"A:"),
        ];
        for (block, offset, byte, line) in cases {
            assert_eq!(
                judged(block),
                InvalidResponse::InvalidHeader {
                    offset,
                    byte,
                    line: line.to_vec()
                },
                "{}",
                block.escape_ascii()
            );
        }
    }

    #[test]
    fn framing_header_checks() {
        let invalid = judged(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n");
        assert_eq!(
            invalid,
            InvalidResponse::DuplicateHeader {
                name: "content-length".to_owned(),
                first_name: "Content-Length".to_owned(),
                first: "5".to_owned(),
                second: "6".to_owned()
            }
        );
        assert_eq!(
            invalid.nginx_message().as_deref(),
            Some(
                "upstream sent duplicate header line: \"content-length: 6\", previous value: \"Content-Length: 5\""
            )
        );
        assert_eq!(invalid.nginx_since(), Some((1, 23, 0)));
        assert_eq!(
            judged(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            InvalidResponse::DuplicateHeader {
                name: "Transfer-Encoding".to_owned(),
                first_name: "Transfer-Encoding".to_owned(),
                first: "chunked".to_owned(),
                second: "chunked".to_owned()
            }
        );
        assert_eq!(
            judged(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            InvalidResponse::ContentLengthAndTransferEncoding
        );
        assert_eq!(
            judged(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
            InvalidResponse::ContentLengthAndTransferEncoding
        );
        let invalid = judged(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(
            invalid,
            InvalidResponse::UnknownTransferEncoding("gzip, chunked".to_owned())
        );
        assert_eq!(
            invalid.nginx_message().as_deref(),
            Some("upstream sent unknown \"Transfer-Encoding\": \"gzip, chunked\"")
        );
        for value in ["12, 12", "-1", "", "99999999999999999999", "1e3"] {
            let block = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                judged(block.as_bytes()),
                InvalidResponse::InvalidContentLength(value.to_owned())
            );
        }
        assert_eq!(
            InvalidResponse::InvalidContentLength("12, 12".to_owned())
                .nginx_message()
                .as_deref(),
            Some("upstream sent invalid \"Content-Length\" header: \"Content-Length: 12, 12\"")
        );
        // names that only look alike are not checked
        assert!(
            judge_header(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length2: x\r\n\r\n")
                .is_ok()
        );
    }

    #[tokio::test]
    async fn invalid_responses_over_the_wire() {
        let probe =
            probe_response(b"HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\nhello world!").await;
        assert_eq!(
            probe.outcome,
            HttpOutcome::Invalid(InvalidResponse::InvalidContentLength("12, 12".to_owned()))
        );
        assert_eq!(probe.status, Some(200));
        let probe = probe_response(b"HTTP/1.1 200 OK\r\nX-Bad: a\0b\r\n\r\n").await;
        assert!(matches!(
            probe.outcome,
            HttpOutcome::Invalid(InvalidResponse::InvalidHeader {
                offset: 25,
                byte: 0,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn huge_header_stops_at_the_cap() {
        let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
        let cookie = format!("Set-Cookie: {}\r\n", "a".repeat(1000));
        while response.len() < 600 * 1024 {
            response.extend_from_slice(cookie.as_bytes());
        }
        response.extend_from_slice(b"\r\n");
        let (addr, handle) = answering(response).await;
        let request = HttpRequest::get("/", "backend");
        let probe = probe_http(
            &Endpoint::Tcp(addr),
            &request,
            limits(64 * 1024, 2 * SECOND),
        )
        .await;
        assert_eq!(probe.outcome, HttpOutcome::HeaderTooBig);
        assert_eq!(probe.header_bytes, 64 * 1024);
        assert_eq!(probe.head.len(), HEAD_EVIDENCE);
        assert_eq!(probe.status, Some(200));
        assert_eq!(
            probe.outcome.nginx_message().as_deref(),
            Some("upstream sent too big header")
        );
        handle.await.expect("server");
    }

    #[tokio::test]
    async fn big_header_within_the_cap_is_accepted() {
        let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
        while response.len() < 16 * 1024 - 200 {
            response.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        response.extend_from_slice(b"\r\n");
        let header_len = response.len();
        response.extend_from_slice(b"body");
        let (addr, handle) = answering(response).await;
        let request = HttpRequest::get("/", "backend");
        let probe = probe_http(
            &Endpoint::Tcp(addr),
            &request,
            limits(1024 * 1024, 2 * SECOND),
        )
        .await;
        assert_eq!(probe.outcome, HttpOutcome::Response);
        assert_eq!(probe.header_bytes, header_len);
        assert_eq!(probe.body_sample, b"body");
        handle.await.expect("server");
        // exactly at the cap is still fine, one byte less is too big
        let (addr, handle) = answering(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()).await;
        let probe = probe_http(&Endpoint::Tcp(addr), &request, limits(19, 2 * SECOND)).await;
        assert_eq!(probe.outcome, HttpOutcome::Response);
        handle.await.expect("server");
        let (addr, handle) = answering(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()).await;
        let probe = probe_http(&Endpoint::Tcp(addr), &request, limits(18, 2 * SECOND)).await;
        assert_eq!(probe.outcome, HttpOutcome::HeaderTooBig);
        assert_eq!(probe.header_bytes, 18);
        handle.await.expect("server");
    }

    #[tokio::test]
    async fn close_before_any_byte_and_mid_header() {
        let probe = probe_response(b"").await;
        assert_eq!(probe.outcome, HttpOutcome::ClosedEarly);
        assert_eq!(probe.header_bytes, 0);
        assert_eq!(probe.status, None);
        assert_eq!(
            probe.outcome.to_string(),
            "closed the connection before sending a complete header"
        );
        assert_eq!(
            probe.outcome.nginx_message().as_deref(),
            Some("upstream prematurely closed connection")
        );
        let probe = probe_response(b"HTTP/1.1 200 OK\r\nServer: half\r\nContent-Ty").await;
        assert_eq!(probe.outcome, HttpOutcome::ClosedEarly);
        assert_eq!(probe.header_bytes, 41);
        assert_eq!(probe.status, Some(200));
        assert_eq!(probe.server.as_deref(), Some("half"));
        let probe = probe_response(b"HT").await;
        assert_eq!(probe.outcome, HttpOutcome::ClosedEarly);
    }

    #[tokio::test]
    async fn reset_before_the_header() {
        let (addr, handle) = server(|stream| async move {
            stream.set_zero_linger().expect("linger");
            drop(stream);
        })
        .await;
        let request = HttpRequest::get("/", "backend");
        let probe = probe_http(&Endpoint::Tcp(addr), &request, limits(4096, 2 * SECOND)).await;
        assert_eq!(probe.outcome, HttpOutcome::Reset);
        handle.await.expect("server");
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let (addr, handle) = server(|mut stream| async move {
            // wait until the client gives up
            let mut buf = [0u8; 16];
            let _ = tokio::time::timeout(5 * SECOND, stream.read(&mut buf)).await;
        })
        .await;
        let request = HttpRequest::get("/", "backend");
        let timeout = Duration::from_millis(300);
        let probe = probe_http(&Endpoint::Tcp(addr), &request, limits(4096, timeout)).await;
        assert_eq!(probe.outcome, HttpOutcome::TimedOut);
        assert!(probe.elapsed >= timeout);
        assert!(
            probe.elapsed < timeout + Duration::from_millis(200),
            "{:?}",
            probe.elapsed
        );
        assert_eq!(probe.first_byte, None);
        handle.await.expect("server");
    }

    #[tokio::test]
    async fn slowloris_stops_at_the_deadline() {
        let (addr, handle) = server(|mut stream| async move {
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                .await
                .is_err()
            {
                return;
            }
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if stream.write_all(b"a").await.is_err() {
                    return;
                }
            }
        })
        .await;
        let request = HttpRequest::get("/", "backend");
        let timeout = Duration::from_millis(500);
        let probe = probe_http(&Endpoint::Tcp(addr), &request, limits(4096, timeout)).await;
        assert_eq!(probe.outcome, HttpOutcome::TimedOut);
        assert!(
            probe.elapsed < timeout + Duration::from_millis(200),
            "{:?}",
            probe.elapsed
        );
        assert!(probe.header_bytes > 30, "{}", probe.header_bytes);
        assert_eq!(probe.status, Some(200));
        drop(probe);
        handle.await.expect("server");
    }

    #[tokio::test]
    async fn binary_noise_and_tls_replies_are_not_http() {
        let noise: Vec<u8> = (0..200u32)
            .map(|i| u8::try_from((i * 7919 + 13) % 251).unwrap_or(0))
            .collect();
        let probe = probe_response(&noise).await;
        assert_eq!(
            probe.outcome,
            HttpOutcome::Invalid(InvalidResponse::NotHttp { protocol: None })
        );
        // a TLS alert (what an HTTPS-only port answers to plain text)
        let probe = probe_response(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46]).await;
        assert_eq!(
            probe.outcome,
            HttpOutcome::Invalid(InvalidResponse::NotHttp {
                protocol: Some(Protocol::Tls)
            })
        );
        // the start of a ServerHello
        let probe = probe_response(&[
            0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00, 0x00, 0x56, 0x03, 0x03,
        ])
        .await;
        assert_eq!(
            probe.outcome,
            HttpOutcome::Invalid(InvalidResponse::NotHttp {
                protocol: Some(Protocol::Tls)
            })
        );
        assert_eq!(
            probe.outcome.to_string(),
            "invalid response: the response does not start with an HTTP/1.x status line (it looks like TLS)"
        );
    }

    #[tokio::test]
    async fn unix_socket_endpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let handle = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let request = read_request(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nServer: gunicorn\r\n\r\n")
                .await;
            request
        });
        let request = HttpRequest::get("/x", "localhost");
        let endpoint = Endpoint::Unix(path.clone());
        let probe = probe_http(&endpoint, &request, limits(4096, 2 * SECOND)).await;
        assert_eq!(probe.outcome, HttpOutcome::Response);
        assert_eq!(probe.status, Some(404));
        assert_eq!(probe.server.as_deref(), Some("gunicorn"));
        assert_eq!(probe.endpoint, format!("unix:{}", path.display()));
        let sent = handle.await.expect("server");
        assert_eq!(
            sent,
            b"GET /x HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn connect_failure_is_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let request = HttpRequest::get("/", "backend");
        let probe = probe_http(&Endpoint::Tcp(addr), &request, limits(4096, 2 * SECOND)).await;
        assert_eq!(
            probe.outcome,
            HttpOutcome::ConnectFailed(ConnectOutcome::Refused)
        );
        assert_eq!(
            probe.outcome.to_string(),
            "connect failed: connection refused (111)"
        );
    }

    #[test]
    fn request_bytes_match_nginx() {
        // as captured from nginx 1.22.1 (curl's own headers aside)
        let mut request = HttpRequest::get("/a?x=1", "127.0.0.1:18090");
        assert_eq!(
            request.to_bytes(),
            b"GET /a?x=1 HTTP/1.0\r\nHost: 127.0.0.1:18090\r\nConnection: close\r\n\r\n"
        );
        request.target = "/b".to_owned();
        request.headers = vec![
            ("X-One".to_owned(), "1".to_owned()),
            ("Host".to_owned(), "example.org".to_owned()),
            ("X-Empty".to_owned(), String::new()),
            ("X-Two".to_owned(), "2".to_owned()),
        ];
        assert_eq!(
            request.to_bytes(),
            b"GET /b HTTP/1.0\r\nX-One: 1\r\nHost: example.org\r\nX-Two: 2\r\nConnection: close\r\n\r\n"
        );
        request.target = "/c".to_owned();
        request.http11 = true;
        request.headers = vec![
            ("Connection".to_owned(), String::new()),
            ("X-Two".to_owned(), "2".to_owned()),
        ];
        assert_eq!(
            request.to_bytes(),
            b"GET /c HTTP/1.1\r\nX-Two: 2\r\nHost: 127.0.0.1:18090\r\n\r\n"
        );
        // relative target, HEAD, unsendable headers and an emptied Host
        let request = HttpRequest {
            method: Method::Head,
            target: "index.html".to_owned(),
            host: "ignored".to_owned(),
            headers: vec![
                ("Host".to_owned(), String::new()),
                ("X-Evil".to_owned(), "a\r\nInjected: 1".to_owned()),
                ("Bad Name".to_owned(), "1".to_owned()),
            ],
            http11: false,
        };
        assert_eq!(
            request.to_bytes(),
            b"HEAD / HTTP/1.0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            HttpRequest::get("/a b\r\n", "h").request_line(),
            "GET /a%20b%0D%0A HTTP/1.0"
        );
    }

    #[tokio::test]
    async fn request_bytes_on_the_wire() {
        let (addr, handle) = answering(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()).await;
        let request = HttpRequest {
            method: Method::Get,
            target: "/health".to_owned(),
            host: "backend".to_owned(),
            headers: vec![
                ("X-Real-IP".to_owned(), "127.0.0.1".to_owned()),
                ("Host".to_owned(), "app.example".to_owned()),
                ("X-Empty".to_owned(), String::new()),
                ("X-Forwarded-Proto".to_owned(), "https".to_owned()),
            ],
            http11: true,
        };
        let probe = probe_http(&Endpoint::Tcp(addr), &request, limits(4096, 2 * SECOND)).await;
        assert_eq!(probe.outcome, HttpOutcome::Response);
        assert_eq!(probe.request_line, "GET /health HTTP/1.1");
        let sent = handle.await.expect("server");
        assert_eq!(
            sent,
            b"GET /health HTTP/1.1\r\nX-Real-IP: 127.0.0.1\r\nHost: app.example\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn scanner_is_incremental_and_split_anywhere() {
        let block = b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 3\r\n\r\nabc";
        let whole = judge_header(block).expect("accepted");
        for split in 1..block.len() {
            let mut scanner = HeadScanner::new(4096);
            let first = block.get(..split).expect("split");
            let done_early = scanner.feed(first);
            if !done_early {
                assert!(scanner.feed(block));
            }
            assert_eq!(
                scanner.verdict,
                Some(Verdict::Complete(whole.clone())),
                "split {split}"
            );
        }
    }

    #[test]
    fn display_texts() {
        assert_eq!(
            HttpOutcome::Reset.to_string(),
            "reset the connection (104) before sending a complete header"
        );
        assert_eq!(
            HttpOutcome::ReadError {
                errno: Some(110),
                message: "connection timed out".to_owned()
            }
            .to_string(),
            "reading the response failed: connection timed out (110)"
        );
        assert_eq!(
            InvalidResponse::UnknownTransferEncoding("gzip, chunked".to_owned()).to_string(),
            "unknown \"Transfer-Encoding\" value \"gzip, chunked\" (nginx accepts only \"chunked\")"
        );
        assert_eq!(
            InvalidResponse::DuplicateHeader {
                name: "Content-Length".to_owned(),
                first_name: "Content-Length".to_owned(),
                first: "1".to_owned(),
                second: "2".to_owned()
            }
            .to_string(),
            "duplicate \"Content-Length\" header: \"1\", then \"2\""
        );
    }
}
