//! `log_format`: compiling an access-log format the way nginx does, and splitting the lines
//! nginx wrote with it back into variable values.
//!
//! What belongs here: the format string itself (literal pieces and `$variables`, with
//! `escape=default|json|none`), nginx's built-in `combined`, the `log_format`s of a
//! [`Config`], and the matcher that reads one line into [`Fields`] (undoing nginx's escaping).
//! What the values mean for a diagnosis lives in [`crate::accesslog`].
//!
//! How nginx writes a line (`ngx_http_log_module.c`): the arguments after the name are
//! concatenated without separator; `$name` or `${name}` is a variable. With the default
//! escaping, `"`, `\`, bytes below 0x20 and from 0x7f up are written as `\xHH` and a variable
//! that is not found is written as `-`. With `escape=json`, `"` and `\` get a backslash,
//! control bytes become `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`, and a variable that is not
//! found is written as nothing; `escape=none` writes values raw (and nothing when not
//! found). `$time_local`, `$time_iso8601`, `$msec`, `$request_time`, `$status`,
//! `$bytes_sent`, `$body_bytes_sent` and `$request_length` are written by the log module
//! itself, never escaped.
//!
//! Matching: the literals between variables anchor the split. A variable's value runs to an
//! occurrence of the next literal; the leftmost occurrence that lets the rest of the line
//! match wins (backtracking with a memo of failed positions and a step budget, so hostile
//! lines stay cheap). What a value may hold narrows the choice: with the default escaping no
//! value holds a raw `"`, with JSON escaping none holds an unescaped `"`; `$status` is three
//! digits, the times have their fixed shapes, addresses and numbers hold no space, and the
//! `$upstream_*` lists hold spaces only in their `, ` and ` : ` separators. Most formats
//! leave each value one possible end, or try the first end first: their lines are walked in
//! a straight line (`plan`), and go to the backtracking matcher only when that walk is
//! unsure.

use std::borrow::Cow;
use std::collections::HashSet;

use jiff::civil::DateTime;

use crate::config::Config;
use crate::window::Stamp;

mod plan;

/// nginx's built-in `combined` format (`ngx_http_log_module.c`).
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// The most pieces (literals plus variables) a format may have.
const MAX_PIECES: usize = 512;
/// The longest format string accepted.
const MAX_FORMAT_BYTES: usize = 64 * 1024;
/// How many candidate splits [`LogFormat::parse_line`] tries on one line before giving up.
const STEP_BUDGET: u32 = 20_000;

/// Length of `$time_local`: `24/Nov/2026:10:00:01 +0000`.
pub(crate) const TIME_LOCAL_LEN: usize = 26;
/// Length of `$time_iso8601`: `2026-11-24T10:00:01+00:00`.
const TIME_ISO_LEN: usize = 25;
/// Month abbreviations as nginx writes them (always English).
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// How a format escapes variable values (`escape=` of `log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Escape {
    /// `\xHH` for `"`, `\`, control bytes and bytes from 0x7f; `-` for a missing variable.
    Default,
    /// JSON string escaping; nothing for a missing variable.
    Json,
    /// Raw values; nothing for a missing variable.
    None,
}

impl Escape {
    /// The word nginx uses after `escape=`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Json => "json",
            Self::None => "none",
        }
    }
}

/// What shape a variable's value has; narrows where it can end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `$time_local`: exactly 26 bytes.
    TimeLocal,
    /// `$time_iso8601`: exactly 25 bytes.
    TimeIso,
    /// `$status`: exactly three digits.
    Status,
    /// `$msec`, `$request_time`: `DIGITS.DDD`.
    Decimal,
    /// Digits, or missing.
    Number,
    /// One word without spaces.
    Token,
    /// An `$upstream_*` list: spaces only in `, ` and ` : `.
    UpstreamList,
    /// Anything (headers, the request line, URIs...).
    Text,
}

impl Kind {
    fn of(name: &str) -> Self {
        match name {
            "time_local" => Self::TimeLocal,
            "time_iso8601" => Self::TimeIso,
            "status" => Self::Status,
            "msec" | "request_time" => Self::Decimal,
            "body_bytes_sent"
            | "bytes_sent"
            | "request_length"
            | "connection"
            | "connection_requests"
            | "pid"
            | "remote_port"
            | "server_port" => Self::Number,
            "remote_addr"
            | "realip_remote_addr"
            | "server_addr"
            | "scheme"
            | "request_method"
            | "server_protocol"
            | "upstream_cache_status"
            | "request_id"
            | "pipe"
            | "ssl_protocol"
            | "ssl_cipher"
            | "request_completion" => Self::Token,
            "upstream_addr"
            | "upstream_status"
            | "upstream_response_time"
            | "upstream_header_time"
            | "upstream_connect_time"
            | "upstream_response_length"
            | "upstream_bytes_received"
            | "upstream_bytes_sent" => Self::UpstreamList,
            _ => Self::Text,
        }
    }

    /// The exact length of values of this kind, when it is fixed.
    fn width(self) -> Option<usize> {
        match self {
            Self::TimeLocal => Some(TIME_LOCAL_LEN),
            Self::TimeIso => Some(TIME_ISO_LEN),
            Self::Status => Some(3),
            _ => None,
        }
    }

    /// Whether a value of this kind never holds a space.
    fn spaceless(self) -> bool {
        matches!(
            self,
            Self::Status | Self::Decimal | Self::Number | Self::Token
        )
    }

    /// Whether `v` (as written) is a plausible value of this kind.
    fn accepts(self, v: &[u8]) -> bool {
        match self {
            Self::TimeLocal => parse_time_local(v).is_some(),
            Self::TimeIso => parse_time_iso8601(v).is_some(),
            Self::Status => v.len() == 3 && v.iter().all(u8::is_ascii_digit),
            Self::Decimal => is_decimal(v),
            Self::Number => v.is_empty() || v == b"-" || v.iter().all(u8::is_ascii_digit),
            Self::Token => !v.contains(&b' '),
            Self::UpstreamList => upstream_list_ok(v),
            Self::Text => true,
        }
    }
}

/// `DIGITS.DIGITS`.
fn is_decimal(v: &[u8]) -> bool {
    let Some(dot) = memchr::memchr(b'.', v) else {
        return false;
    };
    let (int, frac) = (v.get(..dot), v.get(dot + 1..));
    matches!((int, frac), (Some(i), Some(f))
        if !i.is_empty() && !f.is_empty()
            && i.iter().all(u8::is_ascii_digit) && f.iter().all(u8::is_ascii_digit))
}

/// Every space in `v` belongs to a `, ` or ` : ` separator, and `v` neither starts nor ends
/// inside one.
fn upstream_list_ok(v: &[u8]) -> bool {
    if v.first() == Some(&b' ') || v.last() == Some(&b' ') || v.last() == Some(&b',') {
        return false;
    }
    // Most values are a list of one: a few bytes, looked at in place.
    if !v.contains(&b' ') {
        return true;
    }
    memchr::memchr_iter(b' ', v).all(|i| {
        let before = i.checked_sub(1).and_then(|j| v.get(j));
        let after = v.get(i + 1);
        before == Some(&b',')
            || (after == Some(&b':') && v.get(i + 2) == Some(&b' '))
            || (before == Some(&b':') && i.checked_sub(2).and_then(|j| v.get(j)) == Some(&b' '))
    })
}

/// One piece of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Bytes written as they are.
    Literal(Vec<u8>),
    /// A variable: its index in [`LogFormat::vars`] and its kind.
    Var(usize, Kind),
}

/// A compiled `log_format`: literal pieces and variables, with its escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    /// The format's name (`combined`, `main`, ...).
    pub name: String,
    /// How variable values are escaped.
    pub escape: Escape,
    /// The format string: the arguments after the name (and `escape=`), concatenated.
    pub text: String,
    /// The pieces in order.
    pieces: Vec<Piece>,
    /// Distinct variable names (lowercase, without `$`), in order of first appearance.
    vars: Vec<String>,
    /// The index in `vars` of each [`Var`] the format writes, found once: the readers ask
    /// for them on every line.
    known: [Option<usize>; Var::ALL.len()],
    /// The straight-line match, when every value has one possible end (most formats).
    plan: Option<plan::Plan>,
}

/// The variables the readers look up on every line, by index instead of by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    TimeLocal,
    TimeIso8601,
    Msec,
    Status,
    Request,
    RequestUri,
    Uri,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamConnectTime,
    UpstreamHeaderTime,
    UpstreamResponseTime,
    UpstreamCacheStatus,
}

impl Var {
    const ALL: [Self; 13] = [
        Self::TimeLocal,
        Self::TimeIso8601,
        Self::Msec,
        Self::Status,
        Self::Request,
        Self::RequestUri,
        Self::Uri,
        Self::UpstreamAddr,
        Self::UpstreamStatus,
        Self::UpstreamConnectTime,
        Self::UpstreamHeaderTime,
        Self::UpstreamResponseTime,
        Self::UpstreamCacheStatus,
    ];

    /// The variable's name (lowercase, without `$`).
    const fn name(self) -> &'static str {
        match self {
            Self::TimeLocal => "time_local",
            Self::TimeIso8601 => "time_iso8601",
            Self::Msec => "msec",
            Self::Status => "status",
            Self::Request => "request",
            Self::RequestUri => "request_uri",
            Self::Uri => "uri",
            Self::UpstreamAddr => "upstream_addr",
            Self::UpstreamStatus => "upstream_status",
            Self::UpstreamConnectTime => "upstream_connect_time",
            Self::UpstreamHeaderTime => "upstream_header_time",
            Self::UpstreamResponseTime => "upstream_response_time",
            Self::UpstreamCacheStatus => "upstream_cache_status",
        }
    }
}

impl LogFormat {
    /// nginx's built-in `combined` format.
    #[must_use]
    pub fn combined() -> Self {
        // The constant is a valid format; the fallback only keeps this panic-free.
        Self::parse("combined", &[COMBINED.to_owned()]).unwrap_or_else(|_| Self {
            name: "combined".to_owned(),
            escape: Escape::Default,
            text: String::new(),
            pieces: Vec::new(),
            vars: Vec::new(),
            known: [None; Var::ALL.len()],
            plan: None,
        })
    }

    /// Compiles a `log_format` from its arguments after the name: an optional
    /// `escape=default|json|none`, then strings that nginx concatenates without separator.
    ///
    /// # Errors
    ///
    /// A message like nginx's when the escaping is unknown, a `$` has no name, a `${` is not
    /// closed, there is no format string, or the format is unreasonably large.
    pub fn parse(name: &str, args: &[String]) -> Result<Self, String> {
        let mut escape = Escape::Default;
        let mut rest = args;
        if let Some((first, tail)) = args.split_first()
            && let Some(word) = first.strip_prefix("escape=")
        {
            escape = match word {
                "default" => Escape::Default,
                "json" => Escape::Json,
                "none" => Escape::None,
                _ => return Err(format!("unknown log format escaping \"{word}\"")),
            };
            rest = tail;
        }
        if rest.is_empty() {
            return Err(format!("log_format \"{name}\" has no format string"));
        }
        let text: String = rest.concat();
        if text.len() > MAX_FORMAT_BYTES {
            return Err(format!(
                "log_format \"{name}\" is longer than {MAX_FORMAT_BYTES} bytes"
            ));
        }
        let mut format = Self {
            name: name.to_owned(),
            escape,
            text: String::new(),
            pieces: Vec::new(),
            vars: Vec::new(),
            known: [None; Var::ALL.len()],
            plan: None,
        };
        for arg in rest {
            format.compile_arg(arg.as_bytes())?;
        }
        format.known = Var::ALL.map(|var| format.vars.iter().position(|v| v == var.name()));
        format.plan = plan::Plan::compile(&format.pieces, escape);
        if format.pieces.len() > MAX_PIECES {
            return Err(format!(
                "log_format \"{name}\" has more than {MAX_PIECES} pieces"
            ));
        }
        format.text = text;
        Ok(format)
    }

    /// Appends the pieces of one argument (nginx compiles each argument on its own).
    fn compile_arg(&mut self, arg: &[u8]) -> Result<(), String> {
        let mut i = 0;
        // Each iteration consumes at least one byte.
        while i < arg.len() {
            if arg.get(i) != Some(&b'$') {
                let len =
                    memchr::memchr(b'$', arg.get(i..).unwrap_or_default()).unwrap_or(arg.len() - i);
                self.push_literal(arg.get(i..i + len).unwrap_or_default());
                i += len;
                continue;
            }
            let invalid = || {
                format!(
                    "invalid parameter \"{}\"",
                    String::from_utf8_lossy(arg.get(i..).unwrap_or_default())
                )
            };
            let mut j = i + 1;
            let bracket = arg.get(j) == Some(&b'{');
            if bracket {
                j += 1;
            }
            let start = j;
            while arg
                .get(j)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                j += 1;
            }
            let var = arg.get(start..j).unwrap_or_default();
            if bracket {
                if arg.get(j) != Some(&b'}') {
                    return Err(format!(
                        "the closing bracket in \"{}\" variable is missing",
                        String::from_utf8_lossy(var)
                    ));
                }
                j += 1;
            }
            if var.is_empty() {
                return Err(invalid());
            }
            let name = String::from_utf8_lossy(var).to_ascii_lowercase();
            let kind = Kind::of(&name);
            let index = match self.vars.iter().position(|v| *v == name) {
                Some(index) => index,
                None => {
                    self.vars.push(name);
                    self.vars.len() - 1
                }
            };
            self.pieces.push(Piece::Var(index, kind));
            i = j;
        }
        Ok(())
    }

    /// Appends literal bytes, merging them with a literal just before.
    fn push_literal(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(Piece::Literal(last)) = self.pieces.last_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.pieces.push(Piece::Literal(bytes.to_vec()));
        }
    }

    /// All `log_format`s of a config (directly in `http`), by name, plus `combined` first.
    /// A format that does not compile, a second format of the same name and a redefinition
    /// of `combined` (all of which nginx refuses) are left out.
    #[must_use]
    pub fn all(config: &Config) -> Vec<Self> {
        let mut formats = vec![Self::combined()];
        let http = config
            .directives
            .iter()
            .filter(|d| d.name == "http")
            .filter_map(|d| d.block.as_deref());
        for d in http.flatten().filter(|d| d.name == "log_format") {
            let Some((name, args)) = d.args.split_first() else {
                continue;
            };
            if formats.iter().any(|f| f.name == *name) {
                tracing::debug!(%name, span = %d.span, "log_format: duplicate name ignored");
                continue;
            }
            match Self::parse(name, args) {
                Ok(f) => formats.push(f),
                Err(e) => tracing::debug!(%name, span = %d.span, error = %e, "log_format ignored"),
            }
        }
        formats
    }

    /// The format an `access_log` names among `formats` (as [`LogFormat::all`] returns
    /// them); `None` as the name means `combined`, as in nginx.
    #[must_use]
    pub fn find<'f>(formats: &'f [Self], name: Option<&str>) -> Option<&'f Self> {
        let name = name.unwrap_or("combined");
        formats.iter().find(|f| f.name == name)
    }

    /// Whether the format writes `$var` (name without `$`, any case).
    #[must_use]
    pub fn has(&self, var: &str) -> bool {
        self.index_of(var).is_some()
    }

    /// How [`crate::window`] and [`crate::history`] find the time of a line written with
    /// this format: [`Stamp::AccessLog`] when it writes `[$time_local]`,
    /// [`Stamp::Iso8601`] when it writes `$time_iso8601` (and no `$time_local`); `None`
    /// otherwise (no time, only `$msec`, or `$time_local` without brackets): read such a
    /// log without bisecting.
    #[must_use]
    pub fn stamp(&self) -> Option<Stamp> {
        let time_local = self.index_of("time_local");
        let bracketed = self.pieces.windows(3).any(|w| match w {
            [
                Piece::Literal(before),
                Piece::Var(i, _),
                Piece::Literal(after),
            ] => Some(*i) == time_local && before.ends_with(b"[") && after.starts_with(b"]"),
            _ => false,
        });
        if bracketed {
            Some(Stamp::AccessLog)
        } else if time_local.is_none() && self.has("time_iso8601") {
            Some(Stamp::Iso8601)
        } else {
            None
        }
    }

    /// The distinct variables the format writes (lowercase, without `$`), in order.
    #[must_use]
    pub fn variables(&self) -> &[String] {
        &self.vars
    }

    /// Whether the format writes `var` (see [`LogFormat::has`]).
    pub(crate) fn writes(&self, var: Var) -> bool {
        self.known_index(var).is_some()
    }

    /// The index of `var` in [`LogFormat::variables`], when the format writes it.
    fn known_index(&self, var: Var) -> Option<usize> {
        self.known.get(var as usize).copied().flatten()
    }

    fn index_of(&self, var: &str) -> Option<usize> {
        let var = var.strip_prefix('$').unwrap_or(var);
        // Asked for every line: the name as written first (a length compare rules most
        // out), then any case.
        self.vars
            .iter()
            .position(|v| v == var)
            .or_else(|| self.vars.iter().position(|v| v.eq_ignore_ascii_case(var)))
    }

    /// Splits one line (without its line ending) into variable values, unescaping them,
    /// or `None` when the line does not match the format (or is too ambiguous to split
    /// within the step budget). Values borrow from the line unless they had escapes.
    #[must_use]
    pub fn parse_line<'a>(&'a self, line: &'a [u8]) -> Option<Fields<'a>> {
        self.parse_line_in(line, Spans::new(), None)
    }

    /// [`LogFormat::parse_line`] into `spans`, the buffer of an earlier line
    /// ([`Fields::into_spans`]): a reader of many lines allocates it once. `time_local`
    /// is a `$time_local` value already found valid (the line before's), which the match
    /// need not check again.
    pub(crate) fn parse_line_in<'a>(
        &'a self,
        line: &'a [u8],
        mut spans: Spans,
        time_local: Option<&[u8]>,
    ) -> Option<Fields<'a>> {
        spans.clear();
        spans.resize(self.vars.len(), None);
        if let Some(plan) = &self.plan {
            // The plan takes the first path the matcher would (see `plan`).
            match plan.run(line, &mut spans, time_local) {
                plan::Outcome::Match => return Some(self.fields(line, spans)),
                plan::Outcome::NoMatch => return None,
                plan::Outcome::Unsure => {}
            }
        }
        self.parse_line_backtracking(line)
    }

    /// [`LogFormat::parse_line`] by the backtracking matcher alone.
    fn parse_line_backtracking<'a>(&'a self, line: &'a [u8]) -> Option<Fields<'a>> {
        let mut m = Matcher {
            pieces: &self.pieces,
            line,
            escape: self.escape,
            failed: HashSet::new(),
            budget: STEP_BUDGET,
            spans: vec![None; self.vars.len()],
            next_quote: (usize::MAX, 0),
        };
        if !m.at(0, 0) {
            return None;
        }
        Some(self.fields(line, m.spans))
    }

    /// The [`Fields`] of a line split at `spans`.
    fn fields<'a>(&'a self, line: &'a [u8], spans: Spans) -> Fields<'a> {
        // Most lines have no escape at all: their values are spans of the line, unescaped
        // only when a line has a backslash.
        let unescaped = if self.escape != Escape::None && memchr::memchr(b'\\', line).is_some() {
            spans
                .iter()
                .map(|span| {
                    let (from, to) = span.unwrap_or((0, 0));
                    unescape(line.get(from..to).unwrap_or_default(), self.escape)
                })
                .collect()
        } else {
            Vec::new()
        };
        // The line as text once, when its values are its spans: each value is then a slice
        // of it, with no check of its own.
        let text = if unescaped.is_empty() {
            simdutf8::basic::from_utf8(line).ok()
        } else {
            None
        };
        Fields {
            format: self,
            line,
            text,
            spans,
            unescaped,
        }
    }
}

/// The backtracking matcher of one line.
struct Matcher<'f, 'l> {
    pieces: &'f [Piece],
    line: &'l [u8],
    escape: Escape,
    /// (piece index, position) pairs known not to lead to a match.
    failed: HashSet<(usize, usize)>,
    /// Candidate splits left to try.
    budget: u32,
    /// The value span of each variable (first occurrence), as matched so far.
    spans: Vec<Option<(usize, usize)>>,
    /// `(from, at)`: no quote in `line[from..at]`, and `at` is one (or the line's end), so
    /// every value starting in there reaches at most to `at`. Values follow each other,
    /// so most ask for the quote the one before them found.
    next_quote: (usize, usize),
}

impl Matcher<'_, '_> {
    /// Whether pieces `k..` match `line[pos..]` exactly. Recursion depth is at most the
    /// number of pieces ([`MAX_PIECES`]).
    fn at(&mut self, k: usize, pos: usize) -> bool {
        let Some(piece) = self.pieces.get(k) else {
            return pos == self.line.len();
        };
        let rest = self.line.get(pos..).unwrap_or_default();
        let (index, kind) = match piece {
            Piece::Literal(lit) => {
                return crate::find::starts_with(rest, lit) && self.at(k + 1, pos + lit.len());
            }
            Piece::Var(index, kind) => (*index, *kind),
        };
        if self.failed.contains(&(k, pos)) {
            return false;
        }
        let next = self.pieces.get(k + 1);
        // The furthest the value can reach: it holds no unescaped quote (default, json)
        // and, for some kinds, no space.
        let mut limit = pos + self.value_limit(pos, rest);
        let fixed = kind.width().map(|w| pos + w);
        // A value of fixed width ends there whatever its limit says.
        if kind.spaceless() && fixed.is_none() {
            limit = limit.min(pos + memchr::memchr(b' ', rest).unwrap_or(rest.len()));
        }
        let mut e = fixed.unwrap_or(pos);
        // Each iteration tries one end position and moves past it, within the budget.
        loop {
            if self.budget == 0 {
                return false;
            }
            // The next candidate end at or after `e`.
            let candidate = match (fixed, next) {
                (Some(f), _) => (e == f && f <= self.line.len()).then_some(f),
                (None, None) => (limit == self.line.len()).then_some(limit),
                (None, Some(Piece::Literal(lit))) if ends_at_limit(self.escape, kind, lit) => (e
                    <= limit
                    && self
                        .line
                        .get(limit..)
                        .is_some_and(|r| crate::find::starts_with(r, lit)))
                .then_some(limit),
                (None, Some(Piece::Literal(lit))) => find_literal(self.line, lit, e, limit),
                (None, Some(Piece::Var(..))) => (e <= limit).then_some(e),
            };
            let Some(end) = candidate else {
                break;
            };
            self.budget -= 1;
            let value = self.line.get(pos..end).unwrap_or_default();
            if (fixed.is_some() || end <= limit) && kind.accepts(value) {
                let saved = self.spans.get(index).copied().flatten();
                if saved.is_none()
                    && let Some(slot) = self.spans.get_mut(index)
                {
                    *slot = Some((pos, end));
                }
                if self.at(k + 1, end) {
                    return true;
                }
                if let Some(slot) = self.spans.get_mut(index) {
                    *slot = saved;
                }
            }
            if fixed.is_some() || (next.is_none()) {
                break;
            }
            e = end + 1;
        }
        self.failed.insert((k, pos));
        false
    }

    /// How far (from the start of `rest`, which is `line[pos..]`) a value may reach under
    /// the escaping.
    fn value_limit(&mut self, pos: usize, rest: &[u8]) -> usize {
        match self.escape {
            Escape::Default => {
                let (from, at) = self.next_quote;
                if (from..=at).contains(&pos) {
                    return at - pos;
                }
                let found = memchr::memchr(b'"', rest).unwrap_or(rest.len());
                self.next_quote = (pos, pos + found);
                found
            }
            Escape::None => rest.len(),
            Escape::Json => {
                let mut i = 0;
                // Each iteration advances by one or two bytes.
                while let Some(&c) = rest.get(i) {
                    match c {
                        b'"' => return i,
                        b'\\' if rest.get(i + 1).is_some() => i += 2,
                        // A lone backslash at the end would have escaped what follows.
                        b'\\' => return i,
                        _ => i += 1,
                    }
                }
                rest.len()
            }
        }
    }
}

/// Whether a value of `kind` followed by `lit` can only end at its limit: `lit` starts with
/// the byte that bounds the value (a quote under the default escaping, a space for a kind
/// without spaces), and the first such byte is the limit. Most values of most formats are
/// so: then their end needs no search (the matcher), and the plan walks past them.
fn ends_at_limit(escape: Escape, kind: Kind, lit: &[u8]) -> bool {
    match lit.first() {
        Some(b'"') => escape == Escape::Default,
        Some(b' ') => kind.spaceless(),
        _ => false,
    }
}

/// The first position in `from..=limit` where `lit` (not empty) occurs in `line`. Literals
/// are short, so finding their first byte with `memchr` and comparing is fastest.
fn find_literal(line: &[u8], lit: &[u8], from: usize, limit: usize) -> Option<usize> {
    let (&first, _) = lit.split_first()?;
    let region = line.get(from..=limit.min(line.len().saturating_sub(1)))?;
    memchr::memchr_iter(first, region)
        .map(|at| from + at)
        .find(|&at| {
            line.get(at..)
                .is_some_and(|rest| crate::find::starts_with(rest, lit))
        })
}

/// Undoes nginx's escaping of one value.
fn unescape(v: &[u8], escape: Escape) -> Cow<'_, [u8]> {
    if escape == Escape::None || !v.contains(&b'\\') {
        return Cow::Borrowed(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    // Each iteration consumes at least one byte.
    while let Some(&c) = v.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        match escape {
            Escape::Default => {
                if v.get(i + 1) == Some(&b'x')
                    && let Some(b) = hex_byte(v.get(i + 2..i + 4))
                {
                    out.push(b);
                    i += 4;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            _ => {
                let simple = match v.get(i + 1) {
                    Some(b'"') => Some(b'"'),
                    Some(b'\\') => Some(b'\\'),
                    Some(b'/') => Some(b'/'),
                    Some(b'n') => Some(b'\n'),
                    Some(b'r') => Some(b'\r'),
                    Some(b't') => Some(b'\t'),
                    Some(b'b') => Some(0x08),
                    Some(b'f') => Some(0x0c),
                    _ => None,
                };
                if let Some(b) = simple {
                    out.push(b);
                    i += 2;
                } else if v.get(i + 1) == Some(&b'u')
                    && let Some(code) = hex_u16(v.get(i + 2..i + 6))
                {
                    let ch = char::from_u32(u32::from(code)).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
        }
    }
    Cow::Owned(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_byte(b: Option<&[u8]>) -> Option<u8> {
    match b? {
        [h, l] => Some(hex_digit(*h)? << 4 | hex_digit(*l)?),
        _ => None,
    }
}

fn hex_u16(b: Option<&[u8]>) -> Option<u16> {
    match b? {
        [a, b2, c, d] => Some(
            u16::from(hex_byte(Some(&[*a, *b2]))?) << 8 | u16::from(hex_byte(Some(&[*c, *d]))?),
        ),
        _ => None,
    }
}

/// Where each variable's value is in a line (`None`: an empty value), in the order of
/// [`LogFormat::variables`].
pub(crate) type Spans = Vec<Option<(usize, usize)>>;

/// The variable values of one line, in the order of [`LogFormat::variables`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields<'a> {
    format: &'a LogFormat,
    line: &'a [u8],
    /// `line` as text, when it is valid UTF-8 and its values are its spans.
    text: Option<&'a str>,
    /// Where each variable's value is in `line`.
    spans: Spans,
    /// The values with escaping undone (borrowed when a value had no backslash), when the
    /// line had a backslash; else empty, and the values are the spans as written.
    unescaped: Vec<Cow<'a, [u8]>>,
}

impl<'a> Fields<'a> {
    /// The span buffer, for [`LogFormat::parse_line_in`] to reuse.
    pub(crate) fn into_spans(self) -> Spans {
        self.spans
    }

    /// The value of `$var` (name with or without `$`) as nginx had it, escaping undone;
    /// `None` when the format does not write it. A variable nginx did not find is `-`
    /// with the default escaping and empty otherwise; see [`Fields::value`].
    #[must_use]
    pub fn get(&self, var: &str) -> Option<&[u8]> {
        self.at(self.format.index_of(var)?)
    }

    /// The value of the variable at `index` of [`LogFormat::variables`].
    fn at(&self, index: usize) -> Option<&[u8]> {
        if self.unescaped.is_empty() {
            let (from, to) = (*self.spans.get(index)?).unwrap_or((0, 0));
            self.line.get(from..to)
        } else {
            self.unescaped.get(index).map(AsRef::as_ref)
        }
    }

    /// Like [`Fields::get`], but `None` also when the value is `-` or empty (not found).
    #[must_use]
    pub fn value(&self, var: &str) -> Option<&[u8]> {
        self.get(var).filter(|v| found(v))
    }

    /// [`Fields::get`] of a [`Var`], without a lookup by name.
    pub(crate) fn get_known(&self, var: Var) -> Option<&[u8]> {
        self.at(self.format.known_index(var)?)
    }

    /// [`Fields::value`] of a [`Var`] as text (`None` also when it is not valid UTF-8).
    pub(crate) fn known_str(&self, var: Var) -> Option<&str> {
        let index = self.format.known_index(var)?;
        let value = match self.text {
            Some(text) => {
                let (from, to) = (*self.spans.get(index)?).unwrap_or((0, 0));
                text.get(from..to)?
            }
            None => std::str::from_utf8(self.at(index)?).ok()?,
        };
        Some(value).filter(|v| found(v.as_bytes()))
    }

    /// The whole line as text, when it is valid UTF-8 and has no escapes.
    pub(crate) fn line_text(&self) -> Option<&'a str> {
        self.text
    }

    /// [`Fields::value`] of a [`Var`], without a lookup by name.
    pub(crate) fn known(&self, var: Var) -> Option<&[u8]> {
        self.get_known(var).filter(|v| found(v))
    }

    /// [`Fields::value`] as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn text(&self, var: &str) -> Option<Cow<'_, str>> {
        self.value(var).map(String::from_utf8_lossy)
    }

    /// `$status`, when the format writes it.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match *self.known(Var::Status)? {
            [a, b, c] if [a, b, c].iter().all(u8::is_ascii_digit) => {
                Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
            }
            ref v => std::str::from_utf8(v).ok()?.parse().ok(),
        }
    }

    /// The time of the line as written on the nginx host: `$time_local` (offset not
    /// applied), else `$time_iso8601` (likewise), else `$msec` converted with `tz`.
    #[must_use]
    pub fn time(&self, tz: &jiff::tz::TimeZone) -> Option<DateTime> {
        if let Some(v) = self.get_known(Var::TimeLocal) {
            return parse_time_local(v);
        }
        if let Some(v) = self.get_known(Var::TimeIso8601) {
            return parse_time_iso8601(v);
        }
        let msec = self.known(Var::Msec)?;
        let (secs, frac) = std::str::from_utf8(msec).ok()?.split_once('.')?;
        let ms = secs
            .parse::<i64>()
            .ok()?
            .checked_mul(1000)?
            .checked_add(frac.get(..3)?.parse::<i64>().ok()?)?;
        let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
        Some(tz.to_datetime(ts))
    }

    /// The format these fields were read with.
    #[must_use]
    pub fn format(&self) -> &'a LogFormat {
        self.format
    }
}

/// Whether a value is one nginx found: neither empty nor `-`.
fn found(v: &[u8]) -> bool {
    !v.is_empty() && v != b"-"
}

/// `n` decimal digits of `b[from..to]`.
fn digits(b: &[u8], from: usize, to: usize) -> Option<i32> {
    let mut n: i32 = 0;
    for &c in b.get(from..to)? {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i32::from(c - b'0');
    }
    Some(n)
}

/// Checks separators at fixed offsets.
fn seps_ok(b: &[u8], seps: &[(usize, u8)]) -> bool {
    seps.iter().all(|&(i, c)| b.get(i) == Some(&c))
}

/// A civil date-time from its parts, if valid.
fn civil(y: i32, mo: i32, d: i32, h: i32, mi: i32, s: i32) -> Option<DateTime> {
    DateTime::new(
        i16::try_from(y).ok()?,
        i8::try_from(mo).ok()?,
        i8::try_from(d).ok()?,
        i8::try_from(h).ok()?,
        i8::try_from(mi).ok()?,
        i8::try_from(s).ok()?,
        0,
    )
    .ok()
}

/// Parses `$time_local` (`24/Nov/2026:10:00:01 +0000`, exactly 26 bytes) into the local
/// time as written. The offset must be well-formed but is not applied.
pub(crate) fn parse_time_local(b: &[u8]) -> Option<DateTime> {
    if b.len() != TIME_LOCAL_LEN
        || !seps_ok(
            b,
            &[
                (2, b'/'),
                (6, b'/'),
                (11, b':'),
                (14, b':'),
                (17, b':'),
                (20, b' '),
            ],
        )
        || !matches!(b.get(21), Some(b'+' | b'-'))
    {
        return None;
    }
    digits(b, 22, 26)?;
    let month_name = b.get(3..6)?;
    let month = MONTHS.iter().position(|m| m.as_slice() == month_name)?;
    let month = i32::try_from(month + 1).ok()?;
    civil(
        digits(b, 7, 11)?,
        month,
        digits(b, 0, 2)?,
        digits(b, 12, 14)?,
        digits(b, 15, 17)?,
        digits(b, 18, 20)?,
    )
}

/// Parses `$time_iso8601` (`2026-11-24T10:00:01+00:00`, exactly 25 bytes) into the local
/// time as written. The offset must be well-formed but is not applied.
pub(crate) fn parse_time_iso8601(b: &[u8]) -> Option<DateTime> {
    if b.len() != TIME_ISO_LEN
        || !seps_ok(
            b,
            &[
                (4, b'-'),
                (7, b'-'),
                (10, b'T'),
                (13, b':'),
                (16, b':'),
                (22, b':'),
            ],
        )
        || !matches!(b.get(19), Some(b'+' | b'-'))
    {
        return None;
    }
    digits(b, 20, 22)?;
    digits(b, 23, 25)?;
    civil(
        digits(b, 0, 4)?,
        digits(b, 5, 7)?,
        digits(b, 8, 10)?,
        digits(b, 11, 13)?,
        digits(b, 14, 16)?,
        digits(b, 17, 19)?,
    )
}
