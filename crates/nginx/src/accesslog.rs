//! Reading an access log: what nginx logged about the requests in a window.
//!
//! A 502 that nginx relayed from the upstream, or produced with `return 502;`, leaves no line
//! in the error log; the access log is the only trace of these "silent" 502s. Two readers:
//!
//! - With the `log_format` the config defines for the log ([`LogFormat`], see
//!   [`crate::logformat`]): [`scan_with`] / [`scan_file_with`] / [`AccessScanner`] give an
//!   [`AccessReport`]: 502/504 by upstream address, by path and per minute, the share of
//!   requests that failed (with a volume guard), the silent 502s (sent by the upstream
//!   itself, served from the cache, made by nginx, without upstream), the retries and
//!   internal redirects that turned upstream errors into successes, the lines that do not
//!   match the format, and what the format lacks ([`missing_variables`],
//!   [`suggest_format`]). [`attempts`] splits the `$upstream_*` lists of one line.
//! - Without a format, the stock line shapes only: [`parse_line`], [`scan`] and
//!   [`scan_file`] count the 5xx and `009` statuses of lines holding
//!   `[$time_local] "$request" $status` (`combined`, nginx.org's `main`, and custom formats
//!   that keep these three in this order).
//!
//! Both read with a bounded line buffer and count bad input instead of failing: garbage,
//! binary bytes, overlong lines, invalid UTF-8, CRLF endings, a missing final newline.
//! [`scan_file`] and [`scan_file_with`] read the tail of one file and refuse gzip; for
//! rotated and compressed history, feed [`crate::history::HistoryReader`] to
//! [`AccessScanner::feed`].
//!
//! `009` is what nginx logs when it relayed an upstream's response that had no HTTP status
//! line (`upstream sent no valid HTTP/1.0 header`): the client got raw bytes, no headers.

use crate::hash::KeyHasherBuilder;
use crate::lines::{
    Block, BlockReader, LineRead, LogFileError, LogKind, SAMPLE_CAP, add_sample, cap_str, lossy,
    read_line_capped, replay_samples,
};
use crate::logformat::{Escape, Fields, LogFormat, Spans, TIME_LOCAL_LEN, Var, parse_time_local};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
#[cfg(test)]
use std::io::Cursor;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use jiff::civil::DateTime;
use smallvec::SmallVec;

/// Why an access log could not be scanned (the kind is always [`LogKind::Access`]).
pub type AccessLogError = LogFileError;

/// How [`scan`] and [`scan_file`] read an access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessOptions {
    /// Keep lines at or after this local time (the time as written, its UTC offset
    /// ignored, as [`crate::logscan`] does); `None` keeps all.
    pub since: Option<DateTime>,
    /// Lines dated after this local time are left out ([`AccessReport::future`] counts them
    /// for [`AccessScanner`]); `None` keeps them.
    pub until: Option<DateTime>,
    /// Lines longer than this (without the line ending) are skipped without being buffered
    /// whole and counted in [`AccessSummary::lines_unparsed`]. Default 16 KiB.
    pub max_line_bytes: usize,
    /// [`scan_file`] reads at most the last this many bytes of the file (then drops the
    /// partial first line). Default 64 MiB. [`scan`] ignores it.
    pub max_bytes: u64,
    /// Raw lines and distinct requests kept per status. Default 3.
    pub max_samples: usize,
    /// [`scan_with`]: fewer requests than this in the window is too few to call an error
    /// rate. Default 20.
    pub min_requests: u64,
    /// [`scan_with`]: fewer 502/504 responses than this is too few to call an error rate.
    /// Default 3.
    pub min_errors: u64,
    /// [`scan_with`]: how many paths [`AccessReport::by_url`] keeps. Default 10.
    pub top_urls: usize,
}

impl Default for AccessOptions {
    fn default() -> Self {
        Self {
            since: None,
            until: None,
            max_line_bytes: 16 * 1024,
            max_bytes: 64 * 1024 * 1024,
            max_samples: 3,
            min_requests: 20,
            min_errors: 3,
            top_urls: 10,
        }
    }
}

/// The fields of one access-log line that [`scan`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLine<'a> {
    /// `$time_local` as written (local time of the nginx host), its UTC offset ignored.
    pub time: DateTime,
    /// `$request` as written, still escaped (nginx writes `"` as `\x22`); may be empty.
    pub request: &'a str,
    /// `$status`: three digits, `000` when nginx sent nothing, `009` for an HTTP/0.9 reply.
    pub status: u16,
    /// `$body_bytes_sent`, when the status is followed by a number.
    pub body_bytes: Option<u64>,
}

/// Lines of one status in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// The status (5xx, or 9 for `009`).
    pub status: u16,
    /// Number of lines with this status.
    pub count: u64,
    /// Earliest time of such a line.
    pub first_seen: DateTime,
    /// Latest time of such a line.
    pub last_seen: DateTime,
    /// Raw lines: the first `max_samples - 1` and the latest, each cut at 4096 bytes.
    pub samples: Vec<String>,
    /// Up to `max_samples` distinct `$request` values (the first seen), each cut at 4096
    /// bytes.
    pub requests: Vec<String>,
}

impl StatusCount {
    /// Adds a later run of lines of the same status (see [`AccessScanner::absorb`]).
    fn absorb(&mut self, later: Self, max_samples: usize) {
        let counted = (&mut self.samples, &mut self.count);
        replay_samples(counted, &later.samples, later.count, max_samples);
        self.first_seen = self.first_seen.min(later.first_seen);
        self.last_seen = self.last_seen.max(later.last_seen);
        for request in later.requests {
            if self.requests.len() < max_samples && !self.requests.contains(&request) {
                self.requests.push(request);
            }
        }
    }
}

/// The result of [`scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessSummary {
    /// Every line read, including unparsed and oversized ones.
    pub lines_read: u64,
    /// Parsed lines at or after [`AccessOptions::since`], whatever their status.
    pub lines_in_window: u64,
    /// Lines that are not access-log lines of a known shape, and oversized lines.
    pub lines_unparsed: u64,
    /// Lines in the window with a status listed in [`AccessSummary::statuses`] (5xx or
    /// `009`): the sum of their counts.
    pub total_in_window: u64,
    /// Counts of the 5xx statuses and of `009` in the window, sorted by status.
    pub statuses: Vec<StatusCount>,
}

impl AccessSummary {
    /// Number of lines in the window with `status` (0 when it is not tracked or not seen).
    #[must_use]
    pub fn count(&self, status: u16) -> u64 {
        self.statuses
            .iter()
            .find(|s| s.status == status)
            .map_or(0, |s| s.count)
    }
}

/// Whether [`scan`] counts lines with `status`: the 5xx and `009`.
fn tracked(status: u16) -> bool {
    status == 9 || (500..=599).contains(&status)
}

/// Parses one access-log line (without its line ending).
///
/// The line must hold `[$time_local] "$request" $status` with a valid time and a
/// three-digit status followed by a space or the end of the line. What comes before the
/// `[` is not checked. The request ends at the first unescaped `"` followed by
/// ` DDD` and a space or the end of the line, so `\x22` (nginx's escaping) and `\"`
/// (JSON-style escaping) inside it are both handled.
#[must_use]
pub fn parse_line(line: &str) -> Option<AccessLine<'_>> {
    let bytes = line.as_bytes();
    // The first `[` that opens a valid time followed by `] "`. nginx escapes `"` in
    // `$remote_user`, so nothing before the real time can look like this.
    let (time, request_start) = memchr::memchr_iter(b'[', bytes).find_map(|open| {
        let time = parse_time_local(bytes.get(open + 1..open + 1 + TIME_LOCAL_LEN)?)?;
        let after = open + 1 + TIME_LOCAL_LEN;
        (bytes.get(after..after + 3)? == b"] \"").then_some((time, after + 3))
    })?;
    let rest = bytes.get(request_start..)?;
    let (request_len, status, after_status) = find_request_end(rest)?;
    let request = line.get(request_start..request_start + request_len)?;
    let body_bytes = rest
        .get(after_status..)
        .and_then(|tail| tail.strip_prefix(b" "))
        .and_then(leading_number);
    Some(AccessLine {
        time,
        request,
        status,
        body_bytes,
    })
}

/// In `rest` (what follows the request's opening quote), finds the closing quote: the first
/// one not escaped by a backslash and followed by ` DDD` and a space or the end. Returns the
/// request length, the status, and the offset in `rest` just after the status.
fn find_request_end(rest: &[u8]) -> Option<(usize, u16, usize)> {
    memchr::memchr_iter(b'"', rest).find_map(|quote| {
        // A quote after an odd number of backslashes is escaped. The backslash runs before
        // different quotes do not overlap, so all the counting is linear in the line.
        let backslashes = rest
            .get(..quote)?
            .iter()
            .rev()
            .take_while(|&&c| c == b'\\')
            .count();
        if backslashes % 2 == 1 {
            return None;
        }
        let digits = rest.get(quote + 2..quote + 5)?;
        if rest.get(quote + 1) != Some(&b' ') || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let end = quote + 5;
        if !matches!(rest.get(end), None | Some(b' ')) {
            return None;
        }
        let status = digits
            .iter()
            .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        Some((quote, status, end))
    })
}

/// The number made of the digits at the start of `b`, if they end at a space or the end.
fn leading_number(b: &[u8]) -> Option<u64> {
    let len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if len == 0 || !matches!(b.get(len), None | Some(b' ')) {
        return None;
    }
    std::str::from_utf8(b.get(..len)?).ok()?.parse().ok()
}

/// Scans the tail of the access log at `path`: at most [`AccessOptions::max_bytes`] from
/// its end (the partial line there is dropped). Only the bytes present when the file was
/// opened are read, so a log that keeps growing cannot keep the scan going. See [`scan`].
///
/// # Errors
///
/// [`AccessLogError`] when the file cannot be opened or read, or is gzip-compressed.
pub fn scan_file(path: &Path, opts: &AccessOptions) -> Result<AccessSummary, AccessLogError> {
    let reader = open_tail(path, opts)?;
    scan(reader, opts).map_err(|error| AccessLogError::Read {
        log: LogKind::Access,
        path: path.to_owned(),
        error,
    })
}

/// Opens the tail of `path` for reading: at most [`AccessOptions::max_bytes`] from its end,
/// starting after the first line ending in it (unless the tail is the whole file). Only
/// the bytes present now are read.
fn open_tail(path: &Path, opts: &AccessOptions) -> Result<impl BufRead + use<>, AccessLogError> {
    let read_err = |error| AccessLogError::Read {
        log: LogKind::Access,
        path: path.to_owned(),
        error,
    };
    let mut file = File::open(path).map_err(|error| AccessLogError::Open {
        log: LogKind::Access,
        path: path.to_owned(),
        error,
    })?;
    let mut magic = Vec::with_capacity(2);
    (&mut file)
        .take(2)
        .read_to_end(&mut magic)
        .map_err(read_err)?;
    if magic == [0x1f, 0x8b] {
        return Err(AccessLogError::Compressed {
            log: LogKind::Access,
            path: path.to_owned(),
        });
    }
    let len = file.metadata().map_err(read_err)?.len();
    // Start one byte before the tail: the partial line dropped below then ends at or after
    // the tail's start, so a tail that starts on a line boundary loses nothing.
    let start = len
        .checked_sub(opts.max_bytes)
        .and_then(|s| s.checked_sub(1));
    file.seek(SeekFrom::Start(start.unwrap_or(0)))
        .map_err(read_err)?;
    let limit = len - start.unwrap_or(0);
    let mut reader = BufReader::with_capacity(64 * 1024, file.take(limit));
    if start.is_some() {
        let mut discard = Vec::new();
        read_line_capped(&mut reader, &mut discard, 0).map_err(read_err)?;
        tracing::debug!(path = %path.display(), len, "access log: reading only its tail");
    }
    Ok(reader)
}

/// Scans an access log: counts its lines and the 5xx and `009` statuses in the window.
///
/// # Errors
///
/// Only I/O errors of `reader`; malformed input is counted in the summary instead.
pub fn scan<R: BufRead>(mut reader: R, opts: &AccessOptions) -> io::Result<AccessSummary> {
    let mut summary = AccessSummary::default();
    // At most 101 keys: 500..=599 and 9.
    let mut statuses: BTreeMap<u16, StatusCount> = BTreeMap::new();
    let mut buf = Vec::with_capacity(4096);
    // One iteration per line; ends at end of input.
    loop {
        match read_line_capped(&mut reader, &mut buf, opts.max_line_bytes)? {
            LineRead::Eof => break,
            LineRead::Oversized => {
                summary.lines_read += 1;
                summary.lines_unparsed += 1;
            }
            LineRead::Line => {
                summary.lines_read += 1;
                // Borrowed when the line is valid UTF-8; invalid bytes become U+FFFD.
                let text = String::from_utf8_lossy(&buf);
                let Some(line) = parse_line(&text) else {
                    summary.lines_unparsed += 1;
                    continue;
                };
                if opts.since.is_some_and(|since| line.time < since)
                    || opts.until.is_some_and(|until| line.time > until)
                {
                    continue;
                }
                summary.lines_in_window += 1;
                if tracked(line.status) {
                    summary.total_in_window += 1;
                    add(
                        &mut statuses,
                        (line.status, line.time),
                        line.request,
                        &text,
                        opts.max_samples,
                    );
                }
            }
        }
    }
    summary.statuses = statuses.into_values().collect();
    Ok(summary)
}

/// Folds a tracked line (its status and time) into its status's count.
fn add(
    statuses: &mut BTreeMap<u16, StatusCount>,
    (status, time): (u16, DateTime),
    request: &str,
    raw: &str,
    max_samples: usize,
) {
    let entry = statuses.entry(status).or_insert_with(|| StatusCount {
        status,
        count: 0,
        first_seen: time,
        last_seen: time,
        samples: Vec::new(),
        requests: Vec::new(),
    });
    entry.count += 1;
    entry.first_seen = entry.first_seen.min(time);
    entry.last_seen = entry.last_seen.max(time);
    add_sample(&mut entry.samples, raw, max_samples, entry.count);
    let request = cap_str(request, SAMPLE_CAP);
    if entry.requests.len() < max_samples && !entry.requests.iter().any(|r| r == request) {
        entry.requests.push(request.to_owned());
    }
}

// ---------------------------------------------------------------------------------------
// Reading a log with the `log_format` it was written with.

/// The most upstream addresses [`AccessReport::by_upstream`] tracks; more are merged.
const MAX_UPSTREAMS: usize = 1000;
/// The most distinct paths tracked before the rest are merged.
const MAX_URLS: usize = 10_000;
/// The most minutes [`AccessReport::per_minute`] keeps (a week); older ones are dropped.
const MAX_MINUTES: usize = 7 * 24 * 60;
/// The most attempts read from one line's `$upstream_*` lists.
const MAX_ATTEMPTS: usize = 64;
/// The longest path kept per URL.
const MAX_PATH: usize = 512;
/// The key under which addresses beyond the tracking limit (1000) are counted.
pub const OTHER_UPSTREAMS: &str = "(other upstreams)";
/// The key under which paths beyond the tracking limit are counted.
pub const OTHER_PATHS: &str = "(other paths)";
/// The key for 502/504 responses with no upstream attempt (`return 502;`, a failed
/// resolve, a cached response).
pub const NO_UPSTREAM: &str = "-";

/// Lines of one kind: a count, their time range and a few samples.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineGroup {
    /// Number of lines.
    pub count: u64,
    /// Earliest time of such a line (`None` when the format has no time).
    pub first_seen: Option<DateTime>,
    /// Latest time of such a line.
    pub last_seen: Option<DateTime>,
    /// Raw lines: the first `max_samples - 1` and the latest, each cut at 4096 bytes.
    pub samples: Vec<String>,
}

impl LineGroup {
    /// Adds a later run of lines of the same kind (see [`AccessScanner::absorb`]).
    fn absorb(&mut self, later: Self, max_samples: usize) {
        let counted = (&mut self.samples, &mut self.count);
        replay_samples(counted, &later.samples, later.count, max_samples);
        self.first_seen = match (self.first_seen, later.first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_seen = self.last_seen.max(later.last_seen);
    }

    fn add(&mut self, time: Option<DateTime>, raw: &str, max_samples: usize) {
        self.count += 1;
        if let Some(t) = time {
            self.first_seen = Some(self.first_seen.map_or(t, |f| f.min(t)));
            self.last_seen = Some(self.last_seen.map_or(t, |l| l.max(t)));
        }
        add_sample(&mut self.samples, raw, max_samples, self.count);
    }
}

/// Failures by upstream address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamErrors {
    /// The address as nginx logs it in `$upstream_addr` (`127.0.0.1:8000`,
    /// `unix:/run/app.sock`, an upstream group's name for "no live upstreams"),
    /// [`NO_UPSTREAM`] or [`OTHER_UPSTREAMS`].
    pub upstream: String,
    /// Client-visible 502s whose last attempt went to this address.
    pub status_502: u64,
    /// Client-visible 504s whose last attempt went to this address.
    pub status_504: u64,
    /// Attempts (entries of `$upstream_addr`) to this address in the window.
    pub attempts: u64,
    /// Of those, attempts whose `$upstream_status` is 502, 504 or `-`, including attempts
    /// that a retry or an `error_page` hid from the client.
    pub failed_attempts: u64,
}

/// 502/504 responses by path (the URI of `$request` without its query).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlErrors {
    /// The path (escaping undone, invalid UTF-8 replaced, cut at 512 bytes), or
    /// [`OTHER_PATHS`].
    pub path: String,
    /// Responses with status 502.
    pub status_502: u64,
    /// Responses with status 504.
    pub status_504: u64,
}

/// Requests and errors in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    /// The minute (seconds zero), local time as written.
    pub minute: DateTime,
    /// Lines in that minute.
    pub requests: u64,
    /// Of those, status 502.
    pub status_502: u64,
    /// Of those, status 504.
    pub status_504: u64,
}

impl MinuteCount {
    /// A minute with nothing counted yet.
    fn empty(minute: DateTime) -> Self {
        Self {
            minute,
            requests: 0,
            status_502: 0,
            status_504: 0,
        }
    }
}

/// How to make the access log say what the diagnosis needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatSuggestion {
    /// The variables the current format lacks, as `$name`.
    pub missing: Vec<&'static str>,
    /// The format to switch to.
    pub name: String,
    /// The `log_format` directive to add to `http {}`; `None` when a format of the config
    /// already has everything and is only to be switched to.
    pub log_format: Option<String>,
    /// The `access_log` directive to use instead of the current one.
    pub access_log: String,
}

/// What [`scan_with`] found in an access log read with its `log_format`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessReport {
    /// The name of the format the log was read with.
    pub format: String,
    /// The same counts [`scan`] gives (5xx and `009` by status, with samples), for lines
    /// that match the format; `lines_unparsed` counts unmatched and oversized lines. Here
    /// the `requests` of each status hold `$request` with escaping undone, and when the
    /// format has no time `first_seen`/`last_seen` are `0000-01-01T00:00:00`.
    pub summary: AccessSummary,
    /// Whether the format has `$time_local`, `$time_iso8601` or `$msec`. Without one, every
    /// matching line counts as inside the window and there is no timeline.
    pub has_time: bool,
    /// Lines that do not match the format.
    pub unmatched: u64,
    /// Lines longer than [`AccessOptions::max_line_bytes`].
    pub oversized: u64,
    /// Lines dated after [`AccessOptions::until`], left out of the window.
    pub future: u64,
    /// A few unmatched lines (the first ones and the latest), cut at 4096 bytes.
    pub unmatched_samples: Vec<String>,
    /// Matching lines in the window (requests).
    pub requests: u64,
    /// Of those, status 502.
    pub status_502: u64,
    /// Of those, status 504.
    pub status_504: u64,
    /// Whether there are enough requests and errors to call a rate
    /// ([`AccessOptions::min_requests`], [`AccessOptions::min_errors`]).
    pub enough_volume: bool,
    /// By upstream address (needs `$upstream_addr`; empty without it), most 502/504 first,
    /// then most failed attempts.
    pub by_upstream: Vec<UpstreamErrors>,
    /// The paths with most 502/504 responses, at most [`AccessOptions::top_urls`].
    pub by_url: Vec<UrlErrors>,
    /// Requests and errors per minute, oldest first (only minutes with requests; at most a
    /// week, the latest kept).
    pub per_minute: Vec<MinuteCount>,
    /// 502s the upstream sent itself: the last `$upstream_status` is 502 and
    /// `$upstream_header_time` is a number. nginx relayed them; no error-log line.
    pub upstream_502: LineGroup,
    /// 502s served from the cache: `$upstream_cache_status` HIT, STALE or UPDATING.
    pub cached_502: LineGroup,
    /// 502s nginx made after its last attempt failed (no response header from the
    /// upstream): these have error-log lines.
    pub nginx_502: LineGroup,
    /// 502s with no upstream attempt logged (`$upstream_status` is `-`): `return 502;`,
    /// a failed resolve, an `error_page` chain without upstream.
    pub no_upstream_502: LineGroup,
    /// 502s the format cannot classify (it lacks `$upstream_status` or
    /// `$upstream_header_time`).
    pub unknown_502: LineGroup,
    /// Final 2xx/3xx responses after an attempt that failed with 502, 504 or `-` and a
    /// retry to the next server (`502, 200`): error-log lines without a client-visible 502.
    pub retried_ok: LineGroup,
    /// Final 2xx/3xx responses after a failed attempt and an internal redirect
    /// (`502 : 200`, `error_page 502 = @fallback`).
    pub redirected_ok: LineGroup,
    /// Failed attempts inside [`AccessReport::retried_ok`] and
    /// [`AccessReport::redirected_ok`] lines.
    pub hidden_failures: u64,
    /// What the format lacks for this analysis, as `$name` (see [`missing_variables`]).
    pub missing: Vec<&'static str>,
}

impl AccessReport {
    /// 502 and 504 responses in the window.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.status_502 + self.status_504
    }

    /// The share of requests (0.0 to 1.0) that got 502 or 504, or `None` when there are too
    /// few requests or errors to call a rate.
    #[must_use]
    pub fn share(&self) -> Option<f64> {
        let share = self.errors() as f64 / self.requests.max(1) as f64;
        self.enough_volume.then_some(share)
    }

    /// One line about the error rate, e.g. `12 of 340 requests (3.5%) got 502 or 504`, or
    /// `too few requests to call a rate (5 requests, 1 with 502 or 504)`.
    #[must_use]
    pub fn rate_text(&self) -> String {
        match self.share() {
            Some(share) => format!(
                "{} of {} requests ({:.1}%) got 502 or 504",
                self.errors(),
                self.requests,
                share * 100.0
            ),
            None => format!(
                "too few requests to call a rate ({} requests, {} with 502 or 504)",
                self.requests,
                self.errors()
            ),
        }
    }
}

/// One upstream attempt of a request, from the `$upstream_*` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt<'a> {
    /// Its entry of `$upstream_addr` (`None` when not logged or empty).
    pub addr: Option<&'a str>,
    /// Its entry of `$upstream_status` (`None` for `-`, or when not logged).
    pub status: Option<u16>,
    /// Its entry of `$upstream_connect_time` (`None` for `-` or not logged).
    pub connect_time: Option<&'a str>,
    /// Its entry of `$upstream_header_time` (`None` for `-` or not logged): a number means
    /// the upstream sent a response header.
    pub header_time: Option<&'a str>,
    /// Its entry of `$upstream_response_time` (`None` for `-` or not logged).
    pub response_time: Option<&'a str>,
    /// Whether an internal redirect (` : `) came before it, rather than a retry (`, `).
    pub after_redirect: bool,
}

/// Splits an `$upstream_*` list into entries, each with whether ` : ` preceded it.
fn split_list(v: &str) -> SmallVec<[(bool, &str); INLINE_ATTEMPTS]> {
    let mut out = SmallVec::new();
    // Most lines made one attempt: a value without a space is a list of one.
    if memchr::memchr(b' ', v.as_bytes()).is_none() {
        out.push((false, v));
        return out;
    }
    let mut rest = v;
    let mut redirect = false;
    // Each iteration takes one entry; at most MAX_ATTEMPTS.
    while out.len() < MAX_ATTEMPTS {
        let comma = crate::find::NEXT_ATTEMPT.find(rest);
        let colon = crate::find::AFTER_REDIRECT.find(rest);
        let (end, next_redirect, sep) = match (comma, colon) {
            (Some(c), Some(k)) if k < c => (k, true, 3),
            (Some(c), _) => (c, false, 2),
            (None, Some(k)) => (k, true, 3),
            (None, None) => {
                out.push((redirect, rest));
                break;
            }
        };
        out.push((redirect, rest.get(..end).unwrap_or_default()));
        rest = rest.get(end + sep..).unwrap_or_default();
        redirect = next_redirect;
    }
    out
}

/// The upstream attempts of one line, aligned by position across `$upstream_status`,
/// `$upstream_addr` and the times (nginx writes them from the same list). Empty when the
/// format has none of them or nginx made no attempt.
#[must_use]
pub fn attempts<'a>(fields: &'a Fields<'_>) -> Vec<Attempt<'a>> {
    attempts_inline(fields).into_vec()
}

/// Attempts a line holds in place (more go to the heap): most lines made one or two.
const INLINE_ATTEMPTS: usize = 4;

/// [`attempts`] without a heap allocation for the usual few attempts (the reader's hot
/// path).
fn attempts_inline<'a>(fields: &'a Fields<'_>) -> SmallVec<[Attempt<'a>; INLINE_ATTEMPTS]> {
    let text = |var: Var| -> Option<&'a str> { fields.known_str(var) };
    let values = [
        text(Var::UpstreamStatus),
        text(Var::UpstreamAddr),
        text(Var::UpstreamConnectTime),
        text(Var::UpstreamHeaderTime),
        text(Var::UpstreamResponseTime),
    ];
    // Most lines made one attempt (or none): no list to split, one vector.
    if values
        .iter()
        .flatten()
        .all(|v| !v.as_bytes().contains(&b' '))
    {
        // `known_str` leaves out empty and `-` values already.
        let [status, addr, connect, header, response] = values;
        if values.iter().all(Option::is_none) {
            return SmallVec::new();
        }
        return smallvec::smallvec![Attempt {
            addr,
            status: status.and_then(|s| s.parse().ok()),
            connect_time: connect,
            header_time: header,
            response_time: response,
            after_redirect: false,
        }];
    }
    let list = |v: Option<&'a str>| v.map(split_list).unwrap_or_default();
    let [status, addr, connect, header, response] = values;
    let (status, addr, connect, header, response) = (
        list(status),
        list(addr),
        list(connect),
        list(header),
        list(response),
    );
    let master: &[(bool, &str)] = [&status, &addr, &header, &response, &connect]
        .into_iter()
        .find(|l| !l.is_empty())
        .map_or(&[], |l| l.as_slice());
    let entry = |l: &[(bool, &'a str)], i: usize| {
        l.get(i)
            .map(|&(_, v)| v)
            .filter(|v| !v.is_empty() && *v != "-")
    };
    master
        .iter()
        .enumerate()
        .map(|(i, &(after_redirect, _))| Attempt {
            addr: entry(&addr, i),
            status: entry(&status, i).and_then(|s| s.parse().ok()),
            connect_time: entry(&connect, i),
            header_time: entry(&header, i),
            response_time: entry(&response, i),
            after_redirect,
        })
        .collect()
}

/// What the analysis reads, as `$name`, each with the variables that can stand for it.
const NEEDED: [(&str, &[&str]); 9] = [
    ("$status", &["status"]),
    ("$time_local", &["time_local", "time_iso8601", "msec"]),
    ("$request", &["request", "request_uri", "uri"]),
    ("$upstream_addr", &["upstream_addr"]),
    ("$upstream_status", &["upstream_status"]),
    ("$upstream_connect_time", &["upstream_connect_time"]),
    ("$upstream_header_time", &["upstream_header_time"]),
    ("$upstream_response_time", &["upstream_response_time"]),
    ("$upstream_cache_status", &["upstream_cache_status"]),
];

/// The variables the analysis needs that `format` does not write, as `$name` (a time is
/// any of `$time_local`, `$time_iso8601`, `$msec`; a URL any of `$request`,
/// `$request_uri`, `$uri`).
#[must_use]
pub fn missing_variables(format: &LogFormat) -> Vec<&'static str> {
    NEEDED
        .iter()
        .filter(|(_, any)| !any.iter().any(|v| format.has(v)))
        .map(|(name, _)| *name)
        .collect()
}

/// The suggested format with the default escaping: `combined` plus the upstream variables.
const SUGGESTED_TEXT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" ua=\"$upstream_addr\" us=\"$upstream_status\" uct=\"$upstream_connect_time\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\" ucs=\"$upstream_cache_status\"";
/// The suggested format for logs read as JSON.
const SUGGESTED_JSON: &str = "{\"time\":\"$time_iso8601\",\"remote_addr\":\"$remote_addr\",\"request\":\"$request\",\"status\":\"$status\",\"body_bytes_sent\":\"$body_bytes_sent\",\"http_referer\":\"$http_referer\",\"http_user_agent\":\"$http_user_agent\",\"upstream_addr\":\"$upstream_addr\",\"upstream_status\":\"$upstream_status\",\"upstream_connect_time\":\"$upstream_connect_time\",\"upstream_header_time\":\"$upstream_header_time\",\"upstream_response_time\":\"$upstream_response_time\",\"upstream_cache_status\":\"$upstream_cache_status\"}";

/// `s` as one nginx config argument: bare when safe, else single-quoted.
fn config_arg(s: &str) -> String {
    let safe = !s.is_empty()
        && !s.bytes().any(|c| {
            c.is_ascii_whitespace() || matches!(c, b';' | b'{' | b'}' | b'\'' | b'"' | b'\\' | b'#')
        });
    if safe {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// What to change so that the access log at `log_path`, written with `format`, says what
/// the diagnosis needs; `None` when `format` lacks nothing. `existing` are the config's
/// formats ([`LogFormat::all`]): one that already has everything is suggested as it is,
/// otherwise a new `upstreamlog` (JSON when `format` is `escape=json`) under a free name.
#[must_use]
pub fn suggest_format(
    format: &LogFormat,
    log_path: &str,
    existing: &[LogFormat],
) -> Option<FormatSuggestion> {
    let missing = missing_variables(format);
    if missing.is_empty() {
        return None;
    }
    let access_log = |name: &str| format!("access_log {} {name};", config_arg(log_path));
    if let Some(good) = existing.iter().find(|f| missing_variables(f).is_empty()) {
        return Some(FormatSuggestion {
            missing,
            name: good.name.clone(),
            log_format: None,
            access_log: access_log(&good.name),
        });
    }
    let name = (1..=100)
        .map(|n| {
            if n == 1 {
                "upstreamlog".to_owned()
            } else {
                format!("upstreamlog{n}")
            }
        })
        .find(|n| !existing.iter().any(|f| f.name == *n))
        .unwrap_or_else(|| "fix502_upstreamlog".to_owned());
    let log_format = if format.escape == Escape::Json {
        format!("log_format {name} escape=json '{SUGGESTED_JSON}';")
    } else {
        format!("log_format {name} '{SUGGESTED_TEXT}';")
    };
    Some(FormatSuggestion {
        missing,
        access_log: access_log(&name),
        name,
        log_format: Some(log_format),
    })
}

/// The path of a request: the URI of `$request` (`GET /a?b HTTP/1.1`), else `$request_uri`,
/// else `$uri`, without its query, cut at [`MAX_PATH`] bytes.
fn request_path<'a>(fields: &'a Fields<'_>) -> Option<Cow<'a, str>> {
    let uri: &[u8] = if let Some(request) = fields.known(Var::Request) {
        let after_method = memchr::memchr(b' ', request)
            .and_then(|i| request.get(i + 1..))
            .unwrap_or(request);
        match memchr::memrchr(b' ', after_method) {
            Some(i) => after_method.get(..i).unwrap_or(after_method),
            None => after_method,
        }
    } else {
        fields
            .known(Var::RequestUri)
            .or_else(|| fields.known(Var::Uri))?
    };
    let path = memchr::memchr(b'?', uri).map_or(uri, |i| uri.get(..i).unwrap_or(uri));
    Some(match lossy(path) {
        Cow::Borrowed(text) => Cow::Borrowed(cap_str(text, MAX_PATH)),
        Cow::Owned(text) => Cow::Owned(cap_str(&text, MAX_PATH).to_owned()),
    })
}

/// Whether an attempt failed (502, 504, or no status).
fn failed(a: &Attempt<'_>) -> bool {
    matches!(a.status, None | Some(502 | 504))
}

/// Reads access-log lines with one format and accumulates an [`AccessReport`]. Feed it
/// several readers (rotated files, oldest first) and take the report with
/// [`AccessScanner::finish`]; [`scan_with`] does this for one reader.
#[derive(Debug)]
pub struct AccessScanner<'f> {
    format: &'f LogFormat,
    opts: AccessOptions,
    tz: jiff::tz::TimeZone,
    /// The last `$time_local` read and its time: most lines repeat the line before's.
    last_time: Option<([u8; TIME_LOCAL_LEN], Option<DateTime>)>,
    report: AccessReport,
    statuses: BTreeMap<u16, StatusCount>,
    upstreams: Keyed<UpstreamErrors>,
    urls: Keyed<UrlErrors>,
    minutes: BTreeMap<DateTime, MinuteCount>,
    /// A part of a file read on several threads ([`scan_history_with`]): its addresses and
    /// paths are not capped, so that folding it after the parts before it
    /// ([`AccessScanner::absorb`]) gives what one pass gives.
    part: bool,
    /// The span buffer of the last line, reused by the next ([`LogFormat::parse_line_in`]).
    spans: Spans,
}

impl<'f> AccessScanner<'f> {
    /// A scanner for lines written with `format`. `$msec` times are converted with the
    /// system time zone.
    #[must_use]
    pub fn new(format: &'f LogFormat, opts: &AccessOptions) -> Self {
        let report = AccessReport {
            format: format.name.clone(),
            has_time: ["time_local", "time_iso8601", "msec"]
                .iter()
                .any(|v| format.has(v)),
            missing: missing_variables(format),
            ..AccessReport::default()
        };
        Self {
            format,
            opts: opts.clone(),
            tz: jiff::tz::TimeZone::system(),
            last_time: None,
            report,
            statuses: BTreeMap::new(),
            upstreams: Keyed::default(),
            urls: Keyed::default(),
            minutes: BTreeMap::new(),
            part: false,
            spans: Spans::new(),
        }
    }

    /// A scanner for one part of a file read in parts, in `tz`: see [`AccessScanner::absorb`].
    fn for_part(format: &'f LogFormat, opts: &AccessOptions, tz: jiff::tz::TimeZone) -> Self {
        Self {
            tz,
            part: true,
            ..Self::new(format, opts)
        }
    }

    /// Adds what `later`, a part scanner ([`AccessScanner::for_part`]) fed the lines right
    /// after this one's, counted: the result is that of one scanner fed both.
    fn absorb(&mut self, later: Self) {
        let max = self.opts.max_samples;
        let (r, l) = (&mut self.report, later.report);
        r.summary.lines_read += l.summary.lines_read;
        r.summary.lines_in_window += l.summary.lines_in_window;
        r.summary.total_in_window += l.summary.total_in_window;
        let counted = (&mut r.unmatched_samples, &mut r.unmatched);
        replay_samples(counted, &l.unmatched_samples, l.unmatched, max);
        r.oversized += l.oversized;
        r.future += l.future;
        r.requests += l.requests;
        r.status_502 += l.status_502;
        r.status_504 += l.status_504;
        r.hidden_failures += l.hidden_failures;
        for (group, later) in [
            (&mut r.upstream_502, l.upstream_502),
            (&mut r.cached_502, l.cached_502),
            (&mut r.nginx_502, l.nginx_502),
            (&mut r.no_upstream_502, l.no_upstream_502),
            (&mut r.unknown_502, l.unknown_502),
            (&mut r.retried_ok, l.retried_ok),
            (&mut r.redirected_ok, l.redirected_ok),
        ] {
            group.absorb(later, max);
        }
        for (status, later) in later.statuses {
            match self.statuses.get_mut(&status) {
                Some(count) => count.absorb(later, max),
                None => {
                    let mut later = later;
                    later.requests.truncate(max);
                    self.statuses.insert(status, later);
                }
            }
        }
        for item in later.upstreams.items {
            if let Some(e) =
                self.upstreams
                    .entry(&item.upstream, MAX_UPSTREAMS, OTHER_UPSTREAMS, new_upstream)
            {
                e.attempts += item.attempts;
                e.failed_attempts += item.failed_attempts;
                e.status_502 += item.status_502;
                e.status_504 += item.status_504;
            }
        }
        for item in later.urls.items {
            if let Some(e) = self.urls.entry(&item.path, MAX_URLS, OTHER_PATHS, new_url) {
                e.status_502 += item.status_502;
                e.status_504 += item.status_504;
            }
        }
        for (minute, later) in later.minutes {
            let m = self
                .minutes
                .entry(minute)
                .or_insert_with(|| MinuteCount::empty(minute));
            m.requests += later.requests;
            m.status_502 += later.status_502;
            m.status_504 += later.status_504;
        }
        // One iteration per minute beyond the cap: the oldest go, as in one pass (a minute
        // dropped there never comes back among the latest ones).
        while self.minutes.len() > MAX_MINUTES {
            self.minutes.pop_first();
        }
    }

    /// Reads every line of `reader` (lines longer than [`AccessOptions::max_line_bytes`]
    /// are skipped and counted).
    ///
    /// # Errors
    ///
    /// Only I/O errors of `reader`.
    pub fn feed<R: BufRead>(&mut self, reader: R) -> io::Result<()> {
        self.read(reader)
    }

    /// [`AccessScanner::feed`] for any reader: it is read in blocks of whole lines
    /// ([`BlockReader`]), so no line is copied.
    fn read<R: Read>(&mut self, reader: R) -> io::Result<()> {
        let max = self.opts.max_line_bytes;
        let mut blocks = BlockReader::new(reader, max);
        // One iteration per block; ends at the end of the input.
        while let Some(block) = blocks.next_block()? {
            let Block::Lines(block) = block else {
                self.report.summary.lines_read += 1;
                self.report.oversized += 1;
                continue;
            };
            let mut pos = 0;
            // One iteration per line; `pos` grows each time.
            while let Some(rest) = block.get(pos..).filter(|r| !r.is_empty()) {
                let len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                let line = rest.get(..len).unwrap_or(rest);
                pos += len + 1;
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > max {
                    self.report.summary.lines_read += 1;
                    self.report.oversized += 1;
                } else {
                    self.line(line);
                }
            }
        }
        Ok(())
    }

    /// Reads one line (without its line ending).
    pub fn line(&mut self, line: &[u8]) {
        let format = self.format;
        self.report.summary.lines_read += 1;
        let spans = std::mem::take(&mut self.spans);
        // The last `$time_local` that parsed (see `time`) is a valid one.
        let valid = self.last_time.and_then(|(stamp, time)| time.map(|_| stamp));
        let Some(fields) = format.parse_line_in(line, spans, valid.as_ref().map(|s| s.as_slice()))
        else {
            self.report.unmatched += 1;
            let raw = String::from_utf8_lossy(line);
            add_sample(
                &mut self.report.unmatched_samples,
                &raw,
                self.opts.max_samples,
                self.report.unmatched,
            );
            return;
        };
        let time = self.time(&fields);
        let before = matches!((self.opts.since, time), (Some(since), Some(t)) if t < since);
        let after = matches!((self.opts.until, time), (Some(until), Some(t)) if t > until);
        if !before {
            if after {
                self.report.future += 1;
            } else {
                self.in_window(&fields, time, line);
            }
        }
        self.spans = fields.into_spans();
    }

    /// The time of a line ([`Fields::time`]), `$time_local` parsed only when it differs
    /// from the line before's.
    fn time(&mut self, fields: &Fields<'_>) -> Option<DateTime> {
        let Some(stamp) = fields
            .get_known(Var::TimeLocal)
            .and_then(|v| <[u8; TIME_LOCAL_LEN]>::try_from(v).ok())
        else {
            return fields.time(&self.tz);
        };
        match self.last_time {
            Some((last, time)) if last == stamp => time,
            _ => {
                let time = fields.time(&self.tz);
                self.last_time = Some((stamp, time));
                time
            }
        }
    }

    /// Counts a matching line inside the window.
    fn in_window(&mut self, fields: &Fields<'_>, time: Option<DateTime>, line: &[u8]) {
        let max = self.opts.max_samples;
        let r = &mut self.report;
        r.summary.lines_in_window += 1;
        r.requests += 1;
        let status = fields.status().unwrap_or(0);
        let (is502, is504) = (status == 502, status == 504);
        r.status_502 += u64::from(is502);
        r.status_504 += u64::from(is504);
        if let Some(t) = time {
            let minute = t.date().at(t.hour(), t.minute(), 0, 0);
            // Lines come in time order: most are in the latest minute.
            let m = match self.minutes.last_entry() {
                Some(last) if *last.key() == minute => last.into_mut(),
                _ => self
                    .minutes
                    .entry(minute)
                    .or_insert_with(|| MinuteCount::empty(minute)),
            };
            m.requests += 1;
            m.status_502 += u64::from(is502);
            m.status_504 += u64::from(is504);
            if self.minutes.len() > MAX_MINUTES {
                self.minutes.pop_first();
            }
        }
        // The line as text, made only for the lines kept as samples.
        let raw = std::cell::OnceCell::new();
        let raw = || {
            raw.get_or_init(|| {
                fields
                    .line_text()
                    .map_or_else(|| lossy(line), Cow::Borrowed)
            })
            .as_ref()
        };
        if tracked(status) {
            r.summary.total_in_window += 1;
            let request = fields
                .known_str(Var::Request)
                .map(Cow::Borrowed)
                .or_else(|| fields.known(Var::Request).map(lossy))
                .unwrap_or_default();
            add(
                &mut self.statuses,
                (status, time.unwrap_or_default()),
                &request,
                raw(),
                max,
            );
        }
        let attempts = attempts_inline(fields);
        let logs_addr = self.format.writes(Var::UpstreamAddr);
        let logs_status = self.format.writes(Var::UpstreamStatus);
        let (max_upstreams, max_urls) = if self.part {
            (usize::MAX, usize::MAX)
        } else {
            (MAX_UPSTREAMS, MAX_URLS)
        };
        if logs_addr {
            for a in &attempts {
                let addr = a.addr.unwrap_or(NO_UPSTREAM);
                if let Some(e) =
                    self.upstreams
                        .entry(addr, max_upstreams, OTHER_UPSTREAMS, new_upstream)
                {
                    e.attempts += 1;
                    e.failed_attempts += u64::from(logs_status && failed(a));
                }
            }
        }
        if is502 || is504 {
            if logs_addr {
                let last = attempts.last().and_then(|a| a.addr).unwrap_or(NO_UPSTREAM);
                if let Some(e) =
                    self.upstreams
                        .entry(last, max_upstreams, OTHER_UPSTREAMS, new_upstream)
                {
                    e.status_502 += u64::from(is502);
                    e.status_504 += u64::from(is504);
                }
            }
            if let Some(path) = request_path(fields)
                && let Some(e) = self.urls.entry(&path, max_urls, OTHER_PATHS, new_url)
            {
                e.status_502 += u64::from(is502);
                e.status_504 += u64::from(is504);
            }
        }
        let r = &mut self.report;
        if is502 {
            let cached = fields
                .known(Var::UpstreamCacheStatus)
                .is_some_and(|c| matches!(c, b"HIT" | b"STALE" | b"UPDATING"));
            let group = if cached {
                &mut r.cached_502
            } else if !logs_status {
                &mut r.unknown_502
            } else {
                match attempts.last() {
                    None => &mut r.no_upstream_502,
                    Some(last) if last.status == Some(502) => {
                        if !self.format.writes(Var::UpstreamHeaderTime) {
                            &mut r.unknown_502
                        } else if last.header_time.is_some() {
                            &mut r.upstream_502
                        } else {
                            &mut r.nginx_502
                        }
                    }
                    Some(_) => &mut r.nginx_502,
                }
            };
            group.add(time, raw(), max);
        } else if (200..400).contains(&status) && logs_status && attempts.len() > 1 {
            let before_last = attempts.len() - 1;
            let mut hidden = (0..before_last).filter(|&i| attempts.get(i).is_some_and(failed));
            let count = hidden.clone().count();
            if count > 0 {
                r.hidden_failures += count as u64;
                let redirected =
                    hidden.any(|i| attempts.get(i + 1).is_some_and(|a| a.after_redirect));
                let group = if redirected {
                    &mut r.redirected_ok
                } else {
                    &mut r.retried_ok
                };
                group.add(time, raw(), max);
            }
        }
    }

    /// The report of everything fed so far.
    #[must_use]
    pub fn finish(self) -> AccessReport {
        let mut r = self.report;
        r.summary.lines_unparsed = r.unmatched + r.oversized;
        r.summary.statuses = self.statuses.into_values().collect();
        r.enough_volume =
            r.requests >= self.opts.min_requests && r.errors() >= self.opts.min_errors;
        let mut upstreams = self.upstreams.items;
        upstreams.sort_by(|a, b| {
            (b.status_502 + b.status_504)
                .cmp(&(a.status_502 + a.status_504))
                .then(b.failed_attempts.cmp(&a.failed_attempts))
                .then_with(|| a.upstream.cmp(&b.upstream))
        });
        r.by_upstream = upstreams;
        let mut urls = self.urls.items;
        urls.sort_by(|a, b| {
            (b.status_502 + b.status_504)
                .cmp(&(a.status_502 + a.status_504))
                .then_with(|| a.path.cmp(&b.path))
        });
        urls.truncate(self.opts.top_urls);
        r.by_url = urls;
        r.per_minute = self.minutes.into_values().collect();
        r
    }
}

/// The counters of an address not seen before.
fn new_upstream(upstream: &str) -> UpstreamErrors {
    UpstreamErrors {
        upstream: upstream.to_owned(),
        ..UpstreamErrors::default()
    }
}

/// The counters of a path not seen before.
fn new_url(path: &str) -> UrlErrors {
    UrlErrors {
        path: path.to_owned(),
        ..UrlErrors::default()
    }
}

/// Counters by key (an upstream address, a path), at most `cap` keys: later keys share
/// the `overflow` entry.
#[derive(Debug, Default)]
struct Keyed<T> {
    index: HashMap<String, usize, KeyHasherBuilder>,
    items: Vec<T>,
}

impl<T> Keyed<T> {
    /// The entry of `key`, made with `make` when new.
    fn entry(
        &mut self,
        key: &str,
        cap: usize,
        overflow: &str,
        make: impl Fn(&str) -> T,
    ) -> Option<&mut T> {
        let key = if self.index.len() < cap || self.index.contains_key(key) {
            key
        } else {
            overflow
        };
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.items.push(make(key));
                self.index.insert(key.to_owned(), self.items.len() - 1);
                self.items.len() - 1
            }
        };
        self.items.get_mut(i)
    }
}

/// Reads an access log written with `format` and reports 502/504 by upstream, URL and
/// minute, the silent 502s, retries that hid upstream errors, unmatched lines and what the
/// format lacks. Lines before [`AccessOptions::since`] are skipped (when the format has a
/// time).
///
/// # Errors
///
/// Only I/O errors of `reader`; malformed input is counted in the report instead.
pub fn scan_with<R: BufRead>(
    reader: R,
    format: &LogFormat,
    opts: &AccessOptions,
) -> io::Result<AccessReport> {
    let mut scanner = AccessScanner::new(format, opts);
    scanner.feed(reader)?;
    Ok(scanner.finish())
}

/// [`scan_with`] on the tail of the file at `path` (as [`scan_file`] reads it).
///
/// # Errors
///
/// [`AccessLogError`] when the file cannot be opened or read, or is gzip-compressed.
pub fn scan_file_with(
    path: &Path,
    format: &LogFormat,
    opts: &AccessOptions,
) -> Result<AccessReport, AccessLogError> {
    let reader = open_tail(path, opts)?;
    scan_with(reader, format, opts).map_err(|error| AccessLogError::Read {
        log: LogKind::Access,
        path: path.to_owned(),
        error,
    })
}

/// Reads the `--since` window of an access log written with `format` (which must have a
/// time: see [`LogFormat::stamp`]) across the rotated files it reaches into, oldest first,
/// as [`crate::history::HistoryReader`] does, and gives its report with one note per part
/// that was skipped or damaged (the other parts are still read).
///
/// When the window lies in the live file alone (the usual case), the file is read from the
/// window start in parts on several threads (the crate's `parts` module), with the same
/// report.
///
/// # Errors
///
/// [`AccessLogError`] when the history cannot be listed, or the live file read in parts
/// cannot be opened or read.
pub fn scan_history_with(
    path: &Path,
    format: &LogFormat,
    opts: &AccessOptions,
) -> Result<(AccessReport, Vec<String>), AccessLogError> {
    let open_error = |error| AccessLogError::Open {
        log: LogKind::Access,
        path: path.to_owned(),
        error,
    };
    let read_error = |error| AccessLogError::Read {
        log: LogKind::Access,
        path: path.to_owned(),
        error,
    };
    let stamp = format.stamp().ok_or_else(|| {
        open_error(io::Error::other(
            "the log_format writes no time to bisect on",
        ))
    })?;
    let parts = crate::history::history(path, opts.since, stamp).map_err(open_error)?;
    if let [only] = parts.as_slice()
        && !only.gzip
        && only.path == path
    {
        let file = File::open(path).map_err(open_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        let start = match opts.since {
            Some(since) => {
                crate::window::window_start(&mut &file, len, since, stamp).map_err(read_error)?
            }
            None => 0,
        };
        let threads = crate::parts::threads();
        let report = scan_range(
            &file,
            (start, len),
            format,
            opts,
            threads,
            crate::parts::PART,
        )
        .map_err(read_error)?;
        return Ok((report, Vec::new()));
    }
    let mut reader = crate::history::HistoryReader::new(parts, opts.since, stamp);
    let mut scanner = AccessScanner::new(format, opts);
    scanner.feed(&mut reader).map_err(read_error)?;
    let notes = reader.issues().iter().map(ToString::to_string).collect();
    Ok((scanner.finish(), notes))
}

/// Reads bytes `from..to` of an access log (`from` at a line start) in parts of about
/// `part` bytes on `threads` threads, folded in file order: the report is that of one
/// [`AccessScanner`] fed the range.
fn scan_range(
    file: &File,
    (from, to): (u64, u64),
    format: &LogFormat,
    opts: &AccessOptions,
    threads: usize,
    part: u64,
) -> io::Result<AccessReport> {
    let parts = crate::parts::split_points(file, from, to, part)?;
    let mut total = AccessScanner::new(format, opts);
    let read = |&(from, to): &(u64, u64)| crate::parts::FileRange::new(file, from, to);
    if threads <= 1 || parts.len() <= 1 {
        for part in &parts {
            total.read(read(part))?;
        }
        return Ok(total.finish());
    }
    let tz = total.tz.clone();
    crate::parts::fold_in_order(
        &parts,
        threads,
        |part, _: Option<std::sync::Arc<()>>| {
            let mut scanner = AccessScanner::for_part(format, opts, tz.clone());
            scanner.read(read(&part)).map(|()| scanner)
        },
        |later, _| {
            total.absorb(later);
            Ok(None)
        },
    )?;
    Ok(total.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab's upstream-timing format (crates/lab/src/config.rs).
    const FORMAT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" ua=\"$upstream_addr\" us=\"$upstream_status\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\" ucs=\"$upstream_cache_status\"";

    /// An access log of `lines` lines over a few hours with `peers` upstream addresses and
    /// `paths` paths: every status class, retries (`a, b`) and redirects (`a : b`), cache
    /// hits, lines without upstream, unmatched garbage, a few lines out of order.
    fn generated(seed: u64, lines: usize, peers: u64, paths: u64) -> Vec<u8> {
        let mut state = seed;
        let mut below = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n.max(1)
        };
        let mut out = String::new();
        for i in 0..lines {
            let secs = i as u64 * 3 + below(2);
            let secs = if below(50) == 0 {
                secs.saturating_sub(600)
            } else {
                secs
            };
            let (h, m, s) = (10 + secs / 3600, secs / 60 % 60, secs % 60);
            let peer = |n: u64| format!("10.0.{}.{}:8080", n / 250, n % 250);
            let (a, b) = (peer(below(peers)), peer(below(peers)));
            let path = format!("/p/{}", below(paths));
            let (status, ua, us, uht, ucs) = match below(12) {
                0 => ("502", a.clone(), "502".to_owned(), "-".to_owned(), "-"),
                1 => ("502", a.clone(), "502".to_owned(), "0.010".to_owned(), "-"),
                2 => ("504", a.clone(), "504".to_owned(), "-".to_owned(), "-"),
                3 => (
                    "200",
                    format!("{a}, {b}"),
                    "502, 200".to_owned(),
                    "-, 0.004".to_owned(),
                    "-",
                ),
                4 => (
                    "200",
                    format!("{a} : {b}"),
                    "504 : 200".to_owned(),
                    "- : 0.004".to_owned(),
                    "-",
                ),
                5 => ("502", "-".to_owned(), "-".to_owned(), "-".to_owned(), "-"),
                6 => (
                    "502",
                    a.clone(),
                    "200".to_owned(),
                    "0.002".to_owned(),
                    "HIT",
                ),
                7 => ("503", a.clone(), "503".to_owned(), "0.003".to_owned(), "-"),
                8 if below(4) == 0 => {
                    out.push_str("garbage line without a format\n");
                    continue;
                }
                _ => ("200", a.clone(), "200".to_owned(), "0.001".to_owned(), "-"),
            };
            out.push_str(&format!(
                "192.0.2.{} - - [07/Dec/2026:{h:02}:{m:02}:{s:02} +0000] \"GET {path}?x={} HTTP/1.1\" {status} 12 \"-\" \"ua\" ua=\"{ua}\" us=\"{us}\" uht=\"{uht}\" urt=\"0.01\" ucs=\"{ucs}\"\n",
                below(200),
                below(5),
            ));
        }
        out.into_bytes()
    }

    #[test]
    fn a_read_in_parts_equals_one_pass() {
        let format = LogFormat::parse("upstream", &[FORMAT.to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Few keys; more addresses and paths than the caps, so that which ones get an
        // entry depends on the order they come in.
        for (seed, peers, paths) in [(3, 20, 30), (7, 3000, 30), (11, 40, 20_000)] {
            let input = generated(seed, 30_000, peers, paths);
            let path = dir.path().join(format!("access-{seed}.log"));
            std::fs::write(&path, &input).unwrap();
            let file = File::open(&path).unwrap();
            for since in [None, Some(jiff::civil::date(2026, 12, 7).at(12, 0, 0, 0))] {
                let opts = AccessOptions {
                    since,
                    ..AccessOptions::default()
                };
                let one = scan_with(Cursor::new(&input), &format, &opts).unwrap();
                assert!(one.status_502 > 0 && one.unmatched > 0 && one.hidden_failures > 0);
                for (threads, part) in [(2, 4096), (3, 777), (4, 64 * 1024)] {
                    let len = input.len() as u64;
                    let parts = scan_range(&file, (0, len), &format, &opts, threads, part);
                    assert_eq!(
                        parts.unwrap(),
                        one,
                        "seed {seed} threads {threads} part {part}"
                    );
                }
            }
            if peers > MAX_UPSTREAMS as u64 {
                let one = scan_with(Cursor::new(&input), &format, &AccessOptions::default());
                assert!(
                    one.unwrap()
                        .by_upstream
                        .iter()
                        .any(|u| u.upstream == OTHER_UPSTREAMS)
                );
            }
        }
    }
}
