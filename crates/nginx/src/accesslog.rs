//! Reading an access log: counting the 5xx (and `009`) responses nginx logged in a window.
//!
//! A 502 that nginx relayed from the upstream, or produced with `return 502;`, leaves no line
//! in the error log; the access log is the only trace of these "silent" 502s. This module
//! knows the stock line shapes only: `combined`
//! (`$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
//! "$http_referer" "$http_user_agent"`), nginx.org's `main` (`combined` followed by
//! ` "$http_x_forwarded_for"`), and any custom format that keeps
//! `[$time_local] "$request" $status` in that order. JSON or `$time_iso8601` formats are not
//! recognised; their lines are counted as unparsed.
//!
//! [`parse_line`] parses one line; [`scan`] reads a log with a bounded line buffer and counts
//! the interesting statuses at or after [`AccessOptions::since`]; [`scan_file`] reads the
//! tail of a file. Bad input is counted, never fatal: garbage, binary bytes, overlong lines,
//! invalid UTF-8, CRLF endings, a missing final newline.
//!
//! `009` is what nginx logs when it relayed an upstream's response that had no HTTP status
//! line (`upstream sent no valid HTTP/1.0 header`): the client got raw bytes, no headers.

use crate::lines::{LineRead, SAMPLE_CAP, add_sample, cap_str, read_line_capped};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jiff::civil::DateTime;

/// Length of `$time_local`: `24/Nov/2026:10:00:01 +0000`.
const TIME_LOCAL_LEN: usize = 26;
/// Month abbreviations as nginx writes them (always English).
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// How [`scan`] and [`scan_file`] read an access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessOptions {
    /// Keep lines at or after this local time (the time as written, its UTC offset
    /// ignored, as [`crate::logscan`] does); `None` keeps all.
    pub since: Option<DateTime>,
    /// Lines longer than this (without the line ending) are skipped without being buffered
    /// whole and counted in [`AccessSummary::lines_unparsed`]. Default 16 KiB.
    pub max_line_bytes: usize,
    /// [`scan_file`] reads at most the last this many bytes of the file (then drops the
    /// partial first line). Default 64 MiB. [`scan`] ignores it.
    pub max_bytes: u64,
    /// Raw lines and distinct requests kept per status. Default 3.
    pub max_samples: usize,
}

impl Default for AccessOptions {
    fn default() -> Self {
        Self {
            since: None,
            max_line_bytes: 16 * 1024,
            max_bytes: 64 * 1024 * 1024,
            max_samples: 3,
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

/// Why an access log could not be scanned. The message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessLogError {
    /// The file could not be opened.
    #[error("cannot open access log {}: {error}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// Reading (or seeking) failed part-way.
    #[error("cannot read access log {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The file is gzip-compressed (a rotated log such as `access.log.2.gz`).
    #[error("access log {} is gzip-compressed; decompress it first", path.display())]
    Compressed {
        /// The file.
        path: PathBuf,
    },
}

impl AccessLogError {
    /// The file the error is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. } | Self::Read { path, .. } | Self::Compressed { path } => path,
        }
    }

    /// The underlying I/O error, if there is one (its text is already in the message).
    #[must_use]
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::Open { error, .. } | Self::Read { error, .. } => Some(error),
            Self::Compressed { .. } => None,
        }
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

/// Parses `$time_local` (`24/Nov/2026:10:00:01 +0000`, exactly 26 bytes) into the local
/// time as written. The offset must be well-formed but is not applied.
fn parse_time_local(b: &[u8]) -> Option<DateTime> {
    if b.len() != TIME_LOCAL_LEN {
        return None;
    }
    let seps = [
        (2, b'/'),
        (6, b'/'),
        (11, b':'),
        (14, b':'),
        (17, b':'),
        (20, b' '),
    ];
    if seps.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i32> {
        let mut n: i32 = 0;
        for &c in b.get(from..to)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i32::from(c - b'0');
        }
        Some(n)
    };
    if !matches!(b.get(21), Some(b'+' | b'-')) {
        return None;
    }
    num(22, 26)?;
    let month_name = b.get(3..6)?;
    let month = MONTHS.iter().position(|m| m.as_slice() == month_name)?;
    let month = i8::try_from(month + 1).ok()?;
    let day = i8::try_from(num(0, 2)?).ok()?;
    let year = i16::try_from(num(7, 11)?).ok()?;
    let hour = i8::try_from(num(12, 14)?).ok()?;
    let minute = i8::try_from(num(15, 17)?).ok()?;
    let second = i8::try_from(num(18, 20)?).ok()?;
    DateTime::new(year, month, day, hour, minute, second, 0).ok()
}

/// Scans the tail of the access log at `path`: at most [`AccessOptions::max_bytes`] from
/// its end (the partial line there is dropped). Only the bytes present when the file was
/// opened are read, so a log that keeps growing cannot keep the scan going. See [`scan`].
///
/// # Errors
///
/// [`AccessLogError`] when the file cannot be opened or read, or is gzip-compressed.
pub fn scan_file(path: &Path, opts: &AccessOptions) -> Result<AccessSummary, AccessLogError> {
    let read_err = |error| AccessLogError::Read {
        path: path.to_owned(),
        error,
    };
    let mut file = File::open(path).map_err(|error| AccessLogError::Open {
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
    scan(reader, opts).map_err(read_err)
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
                if opts.since.is_some_and(|since| line.time < since) {
                    continue;
                }
                summary.lines_in_window += 1;
                if tracked(line.status) {
                    summary.total_in_window += 1;
                    add(&mut statuses, &line, &text, opts.max_samples);
                }
            }
        }
    }
    summary.statuses = statuses.into_values().collect();
    Ok(summary)
}

/// Folds a tracked line into its status's count.
fn add(
    statuses: &mut BTreeMap<u16, StatusCount>,
    line: &AccessLine<'_>,
    raw: &str,
    max_samples: usize,
) {
    let entry = statuses.entry(line.status).or_insert_with(|| StatusCount {
        status: line.status,
        count: 0,
        first_seen: line.time,
        last_seen: line.time,
        samples: Vec::new(),
        requests: Vec::new(),
    });
    entry.count += 1;
    entry.first_seen = entry.first_seen.min(line.time);
    entry.last_seen = entry.last_seen.max(line.time);
    add_sample(&mut entry.samples, raw, max_samples, entry.count);
    let request = cap_str(line.request, SAMPLE_CAP);
    if entry.requests.len() < max_samples && !entry.requests.iter().any(|r| r == request) {
        entry.requests.push(request.to_owned());
    }
}
