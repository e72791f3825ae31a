//! One line of nginx's error.log, split into its parts.
//!
//! This module only knows the *shape* of a line (docs/nginx-messages.md §1 and §2):
//! timestamp, level, `PID#TID:`, optional `*CID`, the message, the optional errno group, the
//! optional ` while <action>` and the context suffix (`client:`, `server:`, `request:`, ...).
//! What a line *means* is decided in [`crate::classify`]. Everything here borrows from the
//! input line: parsing a line allocates nothing.
//!
//! Lines copied out of a container runtime (`docker compose logs`, `docker logs
//! --timestamps`, the CRI files of Kubernetes nodes) carry a prefix before nginx's line;
//! [`strip_container_prefix`] takes it off, anchored, and [`parse_line`] uses it.
//!
//! The parser is tolerant: nginx writes header values raw (quotes are not escaped) and cuts
//! lines at 2048 bytes, so trailing fields may be missing or cut short. Such lines still
//! parse; the missing fields are `None` and a cut value is returned as far as it goes.

use std::fmt;
use std::str::FromStr;

use crate::find;
use jiff::civil::DateTime;

/// Severity of an error-log line, as written between brackets (`[error]`).
///
/// The order of the variants is nginx's: `Emerg` is the most severe, so `Emerg < Debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `[emerg]`: nginx cannot start or reload (e.g. config errors).
    Emerg,
    /// `[alert]`: a serious problem (e.g. `socket() failed`, `worker_connections are not enough`).
    Alert,
    /// `[crit]`: a critical condition (e.g. `connect() to unix:... failed (2: ...)`).
    Crit,
    /// `[error]`: an error, the default `error_log` level.
    Error,
    /// `[warn]`: a warning (e.g. `upstream server temporarily disabled`).
    Warn,
    /// `[notice]`: a notice (e.g. `signal process started`).
    Notice,
    /// `[info]`: information (e.g. `client prematurely closed connection`).
    Info,
    /// `[debug]`: debug output.
    Debug,
}

impl Level {
    /// The level as nginx writes it, lowercase (`"error"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emerg => "emerg",
            Self::Alert => "alert",
            Self::Crit => "crit",
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Notice => "notice",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of nginx's eight level names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown nginx log level (expected one of emerg, alert, crit, error, warn, notice, info, debug)"
)]
#[non_exhaustive]
pub struct ParseLevelError;

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Parses a lowercase level name exactly as nginx writes it (`"crit"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "emerg" => Self::Emerg,
            "alert" => Self::Alert,
            "crit" => Self::Crit,
            "error" => Self::Error,
            "warn" => Self::Warn,
            "notice" => Self::Notice,
            "info" => Self::Info,
            "debug" => Self::Debug,
            _ => return Err(ParseLevelError),
        })
    }
}

/// The ` (<number>: <text>)` group nginx appends when a system call failed.
///
/// Match on [`Errno::number`]; the text depends on the C library (glibc and musl differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno<'a> {
    /// The errno value, e.g. `111`.
    pub number: i32,
    /// The C library's description, e.g. `Connection refused`. Informational only.
    pub text: &'a str,
}

/// One parsed error-log line. All text fields borrow from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLine<'a> {
    /// Local time of the nginx host, second precision, no time zone.
    pub time: DateTime,
    /// Severity.
    pub level: Level,
    /// Process id of the worker (or master) that wrote the line.
    pub pid: u32,
    /// Thread id (`0` on builds without threads).
    pub tid: u64,
    /// Client connection number (`*CID`), absent for lines not tied to a connection.
    pub connection: Option<u64>,
    /// The message, without the errno group, the action and the context suffix.
    pub message: &'a str,
    /// The trailing ` (<n>: <text>)` group of the message, if any.
    pub errno: Option<Errno<'a>>,
    /// The text after ` while ` (e.g. `connecting to upstream`), if it is a known action.
    pub action: Option<&'a str>,
    /// `client:` value (the client address).
    pub client: Option<&'a str>,
    /// `server:` value (the first `server_name`; may be empty).
    pub server: Option<&'a str>,
    /// `request:` value without the quotes (the raw request line).
    pub request: Option<&'a str>,
    /// `subrequest:` value without the quotes.
    pub subrequest: Option<&'a str>,
    /// `upstream:` value without the quotes; see [`parse_upstream_field`].
    pub upstream: Option<&'a str>,
    /// `host:` value without the quotes.
    pub host: Option<&'a str>,
    /// `referrer:` value without the quotes.
    pub referrer: Option<&'a str>,
    /// `resolver:` value of resolver socket errors (` while resolving, resolver: <addr>`).
    pub resolver: Option<&'a str>,
    /// The whole nginx line, without its line ending and without a container log prefix
    /// (see [`strip_container_prefix`]).
    pub raw: &'a str,
}

/// Actions nginx writes after ` while ` (docs/nginx-messages.md §3, plus the mail and stream
/// modules).
///
/// `resolving` is handled separately because it may be followed by `, resolver: <addr>`.
const ACTIONS: &[&str] = &[
    "connecting to upstream",
    "SSL handshaking to upstream",
    "sending request to upstream",
    "reading response header from upstream",
    "reading upstream",
    "sending to client",
    "proxying upgraded connection",
    "sending early hints to client",
    "waiting for request",
    "reading client request line",
    "reading client request headers",
    "reading client pipelined request line",
    "reading PROXY protocol",
    "SSL handshaking",
    "keepalive",
    "closing request",
    "logging request",
    "processing HTTP/2 connection",
    "reading client request",
    "sending response to client",
    "requesting certificate status",
    "logging to syslog",
    "handling quic input",
    "parsing quic packet",
    "reading response from upstream",
    "proxying connection",
    "proxying and reading from upstream",
    "proxying and reading from client",
    "proxying and sending to upstream",
    "proxying and sending to client",
    "sending PROXY protocol header to upstream",
    "prereading client data",
    "sending mp4 to client",
    "sending flv to client",
];

/// Markers of the context suffix fields after `client:`, in the order nginx writes them.
/// `quoted` fields have their value between double quotes.
struct Field {
    marker: &'static str,
    quoted: bool,
}

const SERVER: usize = 0;
const REQUEST: usize = 1;
const SUBREQUEST: usize = 2;
const UPSTREAM: usize = 3;
const HOST: usize = 4;
const REFERRER: usize = 5;
/// The stream module's byte counters: only used to end the `upstream:` value.
const BYTES: usize = 6;

const FIELDS: [Field; 7] = [
    Field {
        marker: ", server: ",
        quoted: false,
    },
    Field {
        marker: ", request: \"",
        quoted: true,
    },
    Field {
        marker: ", subrequest: \"",
        quoted: true,
    },
    Field {
        marker: ", upstream: \"",
        quoted: true,
    },
    Field {
        marker: ", host: \"",
        quoted: true,
    },
    Field {
        marker: ", referrer: \"",
        quoted: true,
    },
    Field {
        marker: ", bytes from/to client:",
        quoted: false,
    },
];

/// Parses one error-log line. Returns `None` when the line does not start like an nginx
/// error-log line (`YYYY/MM/DD HH:MM:SS [level] PID#TID: `), after a container log prefix
/// if it has one (see [`strip_container_prefix`]; [`ErrorLine::raw`] is then the nginx line
/// without it).
///
/// A trailing `\n` or `\r\n` is ignored.
#[must_use]
pub fn parse_line(line: &str) -> Option<ErrorLine<'_>> {
    let line = line.trim_end_matches(['\n', '\r']);
    let prefix = line.len() - strip_container_prefix(line.as_bytes()).len();
    let raw = line.get(prefix..)?;
    let time = parse_time(raw.as_bytes())?;
    let after_time = raw.get(19..)?.strip_prefix(" [")?;
    let (level, after_level) = find::LEVEL_END.split_once(after_time)?;
    let level = level.parse().ok()?;
    let (pid, after_pid) = find::split_near(after_level, b'#')?;
    let pid = parse_digits(pid)?;
    let (tid, after_tid) = find::split_near(after_pid, b':')?;
    let tid = parse_digits(tid)?;
    // nginx writes "PID#TID: "; a line cut right after the colon has no space.
    let rest = after_tid.strip_prefix(' ').unwrap_or(after_tid);
    let (connection, rest) = split_connection(rest);

    let (head, suffix) = match find::CLIENT.split_once(rest) {
        Some((head, suffix)) => (head, Some(suffix)),
        None => (rest, None),
    };
    let (head, action, resolver) = peel_action(head);
    let (message, errno) = peel_errno(head);

    let mut parsed = ErrorLine {
        time,
        level,
        pid,
        tid,
        connection,
        message,
        errno,
        action,
        client: None,
        server: None,
        request: None,
        subrequest: None,
        upstream: None,
        host: None,
        referrer: None,
        resolver,
        raw,
    };
    if let Some(suffix) = suffix {
        fill_suffix(&mut parsed, suffix);
    }
    Some(parsed)
}

/// Longest container name or service name taken for a `docker compose` prefix.
const MAX_SERVICE_NAME: usize = 128;

/// The nginx line inside a line that a container runtime or log collector prefixed, or the
/// line itself when it has no such prefix (docs/nginx-messages.md, "Real-world variants").
///
/// Recognised, anchored at the start of the line, and only when the rest then starts like
/// an nginx error-log line (`YYYY/MM/DD HH:MM:SS [`), so a line nginx wrote is never cut:
///
/// - `docker compose logs`: `web-1  | ` (Compose v2), `web_1  | ` (v1), `proj-web-1  | `: a
///   name of letters, digits, `_`, `.` and `-`, padding spaces, `|` and a space; colour
///   escapes (`ESC[..m`) around it are skipped;
/// - `docker logs --timestamps` / `kubectl logs --timestamps`: an RFC 3339 time with an
///   optional fraction and `Z` or an offset, then a space (also after a Compose prefix);
/// - the CRI format of containerd and CRI-O (Kubernetes node logs): the RFC 3339 time,
///   `stdout` or `stderr`, the tag `F` (full line) or `P` (partial: the runtime split a
///   long line; the part after it starts with no nginx timestamp and is not read).
///
/// A line that already starts with an nginx timestamp is returned unchanged.
#[must_use]
pub fn strip_container_prefix(line: &[u8]) -> &[u8] {
    if starts_like_nginx(line) {
        return line;
    }
    let mut rest = skip_colour(line);
    if let Some(after) = compose_prefix(rest) {
        rest = after;
    }
    if let Some(after) = rfc3339_prefix(rest) {
        rest = after;
        // CRI: `<stream> <tag> ` after the time.
        for stream in [&b"stdout "[..], b"stderr "] {
            if let Some(after) = rest.strip_prefix(stream)
                && let Some(after) = after
                    .strip_prefix(b"F ")
                    .or_else(|| after.strip_prefix(b"P "))
            {
                rest = after;
            }
        }
    }
    if rest.len() < line.len() && starts_like_nginx(rest) {
        rest
    } else {
        line
    }
}

/// True when `b` starts with the shape of nginx's `YYYY/MM/DD HH:MM:SS` followed by ` [`
/// (digits and separators; the parsers validate the date).
fn starts_like_nginx(b: &[u8]) -> bool {
    // Called for every line of a log (twice for the lines parsed in full): the separators
    // first, a container prefix fails there at once; then the digits.
    let Some(s) = b.first_chunk::<21>() else {
        return false;
    };
    s[4] == b'/'
        && s[7] == b'/'
        && s[10] == b' '
        && s[13] == b':'
        && s[16] == b':'
        && s[19] == b' '
        && s[20] == b'['
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| s.get(i).is_some_and(u8::is_ascii_digit))
}

/// `b` after any ANSI colour escapes (`ESC [ digits-and-semicolons m`) at its start.
fn skip_colour(mut b: &[u8]) -> &[u8] {
    // Each iteration removes one escape; bounded by the length of `b`.
    while let Some(after) = b.strip_prefix(b"\x1b[") {
        let len = after
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b';')
            .count();
        match after.get(len..).and_then(|a| a.strip_prefix(b"m")) {
            Some(a) => b = a,
            None => break,
        }
    }
    b
}

/// The text after a `docker compose logs` prefix (`NAME  | `), if `b` starts with one.
fn compose_prefix(b: &[u8]) -> Option<&[u8]> {
    let name = b
        .iter()
        .take(MAX_SERVICE_NAME + 1)
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        .count();
    if name == 0 || name > MAX_SERVICE_NAME || !b.first()?.is_ascii_alphanumeric() {
        return None;
    }
    let after_name = skip_colour(b.get(name..)?);
    let pad = after_name.iter().take_while(|c| **c == b' ').count();
    if pad == 0 {
        return None;
    }
    let after_bar = skip_colour(after_name.get(pad..)?.strip_prefix(b"|")?);
    let after_space = after_bar.strip_prefix(b" ")?;
    Some(skip_colour(after_space))
}

/// The text after an RFC 3339 time and one space (`2024-05-01T10:00:00.123456789Z `,
/// `2024-05-01T10:00:00+02:00 `), if `b` starts with one.
fn rfc3339_prefix(b: &[u8]) -> Option<&[u8]> {
    let stamp = b.get(..19)?;
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    let digits_ok = stamp
        .iter()
        .enumerate()
        .all(|(i, c)| seps.iter().any(|&(at, _)| at == i) || c.is_ascii_digit());
    if !digits_ok || seps.iter().any(|&(i, c)| stamp.get(i) != Some(&c)) {
        return None;
    }
    let mut rest = b.get(19..)?;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        rest = fraction.get(n..)?;
    }
    rest = match rest.first()? {
        b'Z' => rest.get(1..)?,
        b'+' | b'-' => {
            let offset = rest.get(1..6)?;
            let ok = offset.get(2) == Some(&b':')
                && offset
                    .iter()
                    .enumerate()
                    .all(|(i, c)| i == 2 || c.is_ascii_digit());
            if !ok {
                return None;
            }
            rest.get(6..)?
        }
        _ => return None,
    };
    rest.strip_prefix(b" ")
}

/// Parses the fixed-width `YYYY/MM/DD HH:MM:SS` at the start of `b` and validates it.
fn parse_time(b: &[u8]) -> Option<DateTime> {
    let ts = b.get(..19)?;
    let seps = [(4, b'/'), (7, b'/'), (10, b' '), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| ts.get(i) != Some(&c)) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i32> {
        let mut n: i32 = 0;
        for &c in ts.get(from..to)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i32::from(c - b'0');
        }
        Some(n)
    };
    let year = i16::try_from(num(0, 4)?).ok()?;
    let month = i8::try_from(num(5, 7)?).ok()?;
    let day = i8::try_from(num(8, 10)?).ok()?;
    let hour = i8::try_from(num(11, 13)?).ok()?;
    let minute = i8::try_from(num(14, 16)?).ok()?;
    let second = i8::try_from(num(17, 19)?).ok()?;
    DateTime::new(year, month, day, hour, minute, second, 0).ok()
}

/// Parses a non-empty run of ASCII digits (no sign, no spaces).
fn parse_digits<T: TryFrom<u64>>(s: &str) -> Option<T> {
    match find::leading_digits(s.as_bytes(), u64::MAX)? {
        (value, len) if len > 0 && len == s.len() => T::try_from(value).ok(),
        _ => None,
    }
}

/// Splits off a leading `*CID ` connection number, if there is one.
fn split_connection(rest: &str) -> (Option<u64>, &str) {
    if let Some(after_star) = rest.strip_prefix('*')
        && let Some((digits, tail)) = find::split_near(after_star, b' ')
        && let Some(cid) = parse_digits(digits)
    {
        return (Some(cid), tail);
    }
    (None, rest)
}

/// Peels a trailing ` while <action>` off the message part. Only known actions count, so a
/// ` while ` inside a quoted value is left alone. Returns (rest, action, resolver address).
fn peel_action(head: &str) -> (&str, Option<&str>, Option<&str>) {
    let Some(at) = find::WHILE.rfind(head) else {
        return (head, None, None);
    };
    let (Some(before), Some(tail)) = (head.get(..at), head.get(at + " while ".len()..)) else {
        return (head, None, None);
    };
    if ACTIONS.contains(&tail) {
        return (before, Some(tail), None);
    }
    if let Some(after) = tail.strip_prefix("resolving") {
        if after.is_empty() {
            return (before, Some(tail), None);
        }
        if let Some(addr) = after.strip_prefix(", resolver: ") {
            return (before, tail.get(..("resolving".len())), Some(addr));
        }
        // The upstream zone module writes "... while resolving service <svc> of <host>".
        if after.starts_with(" service ") {
            return (before, Some(tail), None);
        }
    }
    (head, None, None)
}

/// Peels a trailing ` (<number>: <text>)` errno group off the message.
fn peel_errno(head: &str) -> (&str, Option<Errno<'_>>) {
    let Some(inner) = head.strip_suffix(')') else {
        return (head, None);
    };
    let Some(open) = find::PAREN.rfind(inner) else {
        return (head, None);
    };
    let (Some(message), Some(group)) = (inner.get(..open), inner.get(open + 2..)) else {
        return (head, None);
    };
    let Some((number, text)) = find::COLON_SPACE.split_once(group) else {
        return (head, None);
    };
    // nginx prints the errno with %d; allow a sign for robustness.
    let digits = number.strip_prefix('-').unwrap_or(number);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return (head, None);
    }
    match number.parse() {
        Ok(number) => (message, Some(Errno { number, text })),
        Err(_) => (head, None),
    }
}

/// Reads the context suffix (the text after `, client: `) into `line`.
///
/// Each value runs up to the earliest marker of a field that may follow it. After a quoted
/// value the next marker must come right after a closing quote, which keeps most raw quotes
/// and commas inside request lines and headers from ending a value early.
fn fill_suffix<'a>(line: &mut ErrorLine<'a>, suffix: &'a str) {
    // `client:` is followed by any field, or by nothing.
    let (client, mut next) = next_field(suffix, SERVER, false);
    line.client = Some(client);
    // At most one pass per field: each iteration moves to a strictly later field.
    while let Some((field, start)) = next {
        let Some(value_and_rest) = suffix.get(start..) else {
            break;
        };
        let quoted = FIELDS.get(field).is_some_and(|f| f.quoted);
        let (value, following) = next_field(value_and_rest, field + 1, quoted);
        let following = following.map(|(f, at)| (f, at + start));
        let value = if quoted {
            value.strip_suffix('"').unwrap_or(value)
        } else {
            value
        };
        match field {
            SERVER => line.server = Some(value),
            REQUEST => line.request = Some(value),
            SUBREQUEST => line.subrequest = Some(value),
            UPSTREAM => line.upstream = Some(value),
            HOST => line.host = Some(value),
            REFERRER => line.referrer = Some(value),
            _ => {}
        }
        if field == BYTES {
            break;
        }
        next = following;
    }
}

/// Finds the value at the start of `text` and the earliest marker of a field numbered
/// `first` or later. Returns the value and, if found, (field, byte offset of its value).
///
/// With `after_quote`, a marker only counts right after a `"` (the closing quote of the
/// value). A quoted value cut short by the 2048-byte limit lacks that quote; it then runs
/// to the end of the line.
fn next_field(text: &str, first: usize, after_quote: bool) -> (&str, Option<(usize, usize)>) {
    let bytes = text.as_bytes();
    // Every marker starts with ','; one pass over the commas finds the earliest one.
    for at in memchr::memchr_iter(b',', bytes) {
        if after_quote && (at == 0 || bytes.get(at - 1) != Some(&b'"')) {
            continue;
        }
        let Some(rest) = text.get(at..) else {
            continue;
        };
        let found = FIELDS
            .iter()
            .enumerate()
            .skip(first)
            .find(|(_, spec)| find::starts_with(rest.as_bytes(), spec.marker.as_bytes()));
        if let Some((field, spec)) = found {
            let value = text.get(..at).unwrap_or(text);
            return (value, Some((field, at + spec.marker.len())));
        }
    }
    (text, None)
}

/// The parts of an `upstream:` value (`<scheme>://<peer>[:]<uri>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamField<'a> {
    /// The scheme without `://` (`http`, `https`, `fastcgi`, `uwsgi`, `suwsgi`, `scgi`,
    /// `grpc`, `grpcs`, `memcached`); empty for the stream module, which writes no scheme.
    pub scheme: &'a str,
    /// The peer as nginx names it: `127.0.0.1:8080`, `[::1]:3000`, `unix:/run/app.sock`,
    /// or an upstream group name (`backend_pool`) for `no live upstreams`.
    pub peer: &'a str,
    /// The URI sent upstream (proxy only; empty for FastCGI, uwsgi, SCGI, gRPC, memcached).
    pub uri: &'a str,
}

/// Splits an `upstream:` value into scheme, peer and URI.
///
/// For unix sockets the `:` separator after the path is optional: nginx omits it on
/// header-phase timeout lines. Without it, a proxy URI cannot be told apart from the path
/// for certain; the path is then taken to end after `.sock` when a `/` follows, else the
/// whole rest is the peer. Returns `None` for an empty value or an empty peer.
#[must_use]
pub fn parse_upstream_field(value: &str) -> Option<UpstreamField<'_>> {
    let (scheme, rest) = find::SCHEME.split_once(value).unwrap_or(("", value));
    if !scheme
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
    {
        return None;
    }
    let (peer, uri) = if let Some(path) = rest.strip_prefix("unix:") {
        let path_len = match path.find(':') {
            Some(colon) => colon,
            None => unix_path_len_without_separator(path, scheme),
        };
        let peer = rest.get(.."unix:".len() + path_len)?;
        let after = path.get(path_len..)?;
        (peer, after.strip_prefix(':').unwrap_or(after))
    } else if rest.starts_with('[') {
        // [v6]:port then the URI.
        let close = rest.find(']')?;
        let after_bracket = rest.get(close + 1..)?;
        let port_len = after_bracket
            .strip_prefix(':')
            .map_or(0, |p| 1 + p.bytes().take_while(u8::is_ascii_digit).count());
        rest.split_at_checked(close + 1 + port_len)?
    } else {
        rest.split_at_checked(rest.find('/').unwrap_or(rest.len()))?
    };
    if peer.is_empty() || peer == "unix:" {
        return None;
    }
    Some(UpstreamField { scheme, peer, uri })
}

/// Length of a unix socket path written without the `:` separator (see
/// [`parse_upstream_field`]). Only proxy (`http`/`https`) lines carry a URI.
fn unix_path_len_without_separator(path: &str, scheme: &str) -> usize {
    if !matches!(scheme, "http" | "https") {
        return path.len();
    }
    let mut from = 0;
    // Each step moves past one ".sock"; bounded by the path length.
    while let Some(found) = path.get(from..).and_then(|p| p.find(".sock")) {
        let end = from + found + ".sock".len();
        match path.as_bytes().get(end) {
            None | Some(b'/' | b'?') => return end,
            Some(_) => from = end,
        }
    }
    path.len()
}
