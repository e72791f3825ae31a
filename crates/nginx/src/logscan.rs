//! Reading a whole error log: the `--since` window and grouping of upstream failures.
//!
//! [`scan`] reads lines one at a time with a bounded buffer, parses them with
//! [`crate::errorlog::parse_line`], keeps those at or after [`ScanOptions::since`],
//! classifies them with [`crate::classify`] and folds them into [`Group`]s keyed by
//! signature × peer × phase (for [`Signature::OtherUpstream`] also by message kind and errno,
//! so that different failures of one peer stay apart; the phase keeps header-phase 502s
//! apart from body-phase truncations of the same kind). Bad input is counted, never fatal:
//! binary garbage, overlong lines, invalid UTF-8, CRLF endings, a missing final newline.

use crate::lines::{LineRead, add_sample, read_line_capped};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use jiff::civil::DateTime;

use crate::classify::{ClassifiedRef, Phase, Signature, classify_ref};
use crate::errorlog::{ErrorLine, parse_line};

/// Most groups kept; lines that would open more are counted in
/// [`LogSummary::lines_ungrouped`]. Real logs have a handful.
const MAX_GROUPS: usize = 1000;

/// How [`scan`] reads a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Keep lines at or after this local time (nginx logs local time); `None` keeps all.
    pub since: Option<DateTime>,
    /// Raw lines kept per group: the first `max_samples - 1` and the latest. Default 2.
    pub max_samples: usize,
    /// Lines longer than this (without the line ending) are counted in
    /// [`LogSummary::lines_oversized`] and skipped without being buffered whole.
    /// Default 16 KiB; nginx itself never writes more than 2048 bytes per line.
    pub max_line_bytes: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            since: None,
            max_samples: 2,
            max_line_bytes: 16 * 1024,
        }
    }
}

/// Lines with the same failure against the same peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// What failed.
    pub signature: Signature,
    /// The peer as nginx writes it (see [`crate::classify::Classified::peer`]).
    pub peer: Option<String>,
    /// The peer is a unix socket.
    pub unix: bool,
    /// Scheme of the first line's `upstream:` field (`http`, `fastcgi`, ...).
    pub scheme: Option<String>,
    /// Number of lines in the group.
    pub count: u64,
    /// Earliest time of a line in the group.
    pub first_seen: DateTime,
    /// Latest time of a line in the group.
    pub last_seen: DateTime,
    /// Raw lines: the first ones and the latest (see [`ScanOptions::max_samples`]), each
    /// cut at 4096 bytes.
    pub samples: Vec<String>,
    /// Message of the first line (without errno, action and context).
    pub message: String,
    /// Errno number of the first line.
    pub errno: Option<i32>,
    /// `server:` of the first line.
    pub server: Option<String>,
    /// `request:` of the first line.
    pub request: Option<String>,
    /// Phase of the lines (from their ` while <action>`; part of the group key).
    pub phase: Option<Phase>,
    /// The value the first line's message quotes (see
    /// [`crate::classify::Classified::detail`]).
    pub detail: Option<String>,
}

impl Group {
    /// What the client got when one of these lines was the last attempt (see
    /// [`Signature::status_in`]).
    #[must_use]
    pub fn http_status(&self) -> u16 {
        self.signature.status_in(self.phase)
    }

    /// True when these lines cut short responses whose header the client already had
    /// (truncated bodies, closed WebSockets), not 502/504s (see [`Signature::truncates_in`]).
    #[must_use]
    pub fn truncates_response(&self) -> bool {
        self.signature.truncates_in(self.phase)
    }

    /// True when these lines, as last attempts, give the client nginx's 502 or 504.
    #[must_use]
    pub fn is_gateway_error(&self) -> bool {
        matches!(self.http_status(), 502 | 504)
    }
}

/// The result of [`scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogSummary {
    /// Groups sorted by count (descending), then by `first_seen`.
    pub groups: Vec<Group>,
    /// Every line read, including unparsed and oversized ones.
    pub lines_read: u64,
    /// Parsed lines at or after [`ScanOptions::since`].
    pub lines_in_window: u64,
    /// Lines that are not nginx error-log lines (no timestamp, garbage, empty).
    pub lines_unparsed: u64,
    /// Lines longer than [`ScanOptions::max_line_bytes`], skipped.
    pub lines_oversized: u64,
    /// Upstream lines in the window that were not grouped because too many groups existed.
    pub lines_ungrouped: u64,
    /// Earliest time of a parsed line in the window.
    pub first_time: Option<DateTime>,
    /// Latest time of a parsed line in the window.
    pub last_time: Option<DateTime>,
}

/// Why an error log could not be scanned. The message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The file could not be opened.
    #[error("cannot open error log {}: {error}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// Reading failed part-way.
    #[error("cannot read error log {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The file is gzip-compressed (a rotated log such as `error.log.2.gz`).
    #[error("error log {} is gzip-compressed; decompress it first", path.display())]
    Compressed {
        /// The file.
        path: PathBuf,
    },
}

impl LogError {
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

/// Scans the error log at `path`. See [`scan`].
///
/// # Errors
///
/// [`LogError`] when the file cannot be opened or read, or is gzip-compressed.
pub fn scan_file(path: &Path, opts: &ScanOptions) -> Result<LogSummary, LogError> {
    let file = File::open(path).map_err(|error| LogError::Open {
        path: path.to_owned(),
        error,
    })?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let start = reader.fill_buf().map_err(|error| LogError::Read {
        path: path.to_owned(),
        error,
    })?;
    if start.starts_with(&[0x1f, 0x8b]) {
        return Err(LogError::Compressed {
            path: path.to_owned(),
        });
    }
    scan(reader, opts).map_err(|error| LogError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Scans an error log: counts its lines and groups the upstream failures in the window.
///
/// # Errors
///
/// Only I/O errors of `reader`; malformed input is counted in the summary instead.
pub fn scan<R: BufRead>(mut reader: R, opts: &ScanOptions) -> io::Result<LogSummary> {
    let mut summary = LogSummary::default();
    let mut groups = Groups::default();
    let mut buf = Vec::with_capacity(4096);
    // One iteration per line; ends at end of input.
    loop {
        let read = read_line_capped(&mut reader, &mut buf, opts.max_line_bytes)?;
        match read {
            LineRead::Eof => break,
            LineRead::Oversized => {
                summary.lines_read += 1;
                summary.lines_oversized += 1;
            }
            LineRead::Line => {
                summary.lines_read += 1;
                // Borrowed when the line is valid UTF-8; invalid bytes become U+FFFD.
                let text = String::from_utf8_lossy(&buf);
                scan_line(&text, opts, &mut summary, &mut groups);
            }
        }
    }
    summary.groups = groups.into_sorted();
    Ok(summary)
}

/// Accounts one line of text.
fn scan_line(text: &str, opts: &ScanOptions, summary: &mut LogSummary, groups: &mut Groups) {
    let Some(line) = parse_line(text) else {
        summary.lines_unparsed += 1;
        return;
    };
    if opts.since.is_some_and(|since| line.time < since) {
        return;
    }
    summary.lines_in_window += 1;
    summary.first_time = Some(summary.first_time.map_or(line.time, |t| t.min(line.time)));
    summary.last_time = Some(summary.last_time.map_or(line.time, |t| t.max(line.time)));
    if let Some(classified) = classify_ref(&line)
        && !groups.add(&line, classified, opts.max_samples)
    {
        summary.lines_ungrouped += 1;
    }
}

/// The groups under construction, with a hash index that needs no allocation to look up.
#[derive(Default)]
struct Groups {
    list: Vec<Group>,
    /// Hash of a group key → indexes into `list` (more than one only on a hash collision).
    index: HashMap<u64, Vec<usize>>,
    hasher: RandomState,
}

impl Groups {
    /// Adds a classified line; `false` when it would open a group beyond [`MAX_GROUPS`].
    fn add(&mut self, line: &ErrorLine<'_>, c: ClassifiedRef<'_>, max_samples: usize) -> bool {
        let errno = line.errno.map(|e| e.number);
        let kind =
            (c.signature == Signature::OtherUpstream).then(|| (message_kind(line.message), errno));
        let hash = self.hasher.hash_one((c.signature, c.peer, c.phase, kind));
        let found = self.index.get(&hash).and_then(|slots| {
            slots.iter().copied().find(|&i| {
                self.list.get(i).is_some_and(|g| {
                    g.signature == c.signature
                        && g.peer.as_deref() == c.peer
                        && g.phase == c.phase
                        && kind.is_none_or(|k| (message_kind(&g.message), g.errno) == k)
                })
            })
        });
        if let Some(group) = found.and_then(|i| self.list.get_mut(i)) {
            group.count += 1;
            group.first_seen = group.first_seen.min(line.time);
            group.last_seen = group.last_seen.max(line.time);
            add_sample(&mut group.samples, line.raw, max_samples, group.count);
            return true;
        }
        if self.list.len() >= MAX_GROUPS {
            return false;
        }
        let mut samples = Vec::new();
        add_sample(&mut samples, line.raw, max_samples, 1);
        self.index.entry(hash).or_default().push(self.list.len());
        self.list.push(Group {
            signature: c.signature,
            peer: c.peer.map(str::to_owned),
            unix: c.unix(),
            scheme: c.scheme.map(str::to_owned),
            count: 1,
            first_seen: line.time,
            last_seen: line.time,
            samples,
            message: line.message.to_owned(),
            errno,
            server: line.server.map(str::to_owned),
            request: line.request.map(str::to_owned),
            phase: c.phase,
            detail: c.detail.map(str::to_owned),
        });
        true
    }

    fn into_sorted(self) -> Vec<Group> {
        let mut list = self.list;
        list.sort_by(|a, b| b.count.cmp(&a.count).then(a.first_seen.cmp(&b.first_seen)));
        list
    }
}

/// The fixed part of a message: up to the first value (`: `, ` (` or a quote), so that
/// `upstream sent invalid header: "..."` lines with different bytes land in one group.
fn message_kind(message: &str) -> &str {
    let end = [": ", " (", "\""]
        .iter()
        .filter_map(|p| message.find(p))
        .min()
        .unwrap_or(message.len());
    message.get(..end).unwrap_or(message).trim_end()
}
