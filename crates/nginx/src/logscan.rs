//! Reading a whole error log: the `--since` window and grouping of upstream failures.
//!
//! [`scan`] reads lines with a bounded buffer, parses them with
//! [`crate::errorlog::parse_line`], keeps those at or after [`ScanOptions::since`],
//! classifies them with [`crate::classify`] and folds them into [`Group`]s keyed by
//! signature × peer × phase (for [`Signature::OtherUpstream`] also by message kind and errno,
//! so that different failures of one peer stay apart; the phase keeps header-phase 502s
//! apart from body-phase truncations of the same kind). Bad input is counted, never fatal:
//! binary garbage, overlong lines, invalid UTF-8, CRLF endings, a missing final newline.
//!
//! Speed (see `docs/performance.md`): the input is read in fixed-size blocks
//! (`lines::BlockReader`); each block is searched once for the few texts every upstream
//! failure contains (`PREFILTER`, a SIMD multi-substring search), and only the
//! lines with a hit are parsed and classified. The others, mostly noise, only have their
//! `timestamp [level] PID#TID:` start checked, which is all their counts need. Nothing is
//! allocated per line. [`scan_file`] bisects to the window start and cuts the rest of the
//! file into parts at line boundaries, which every core scans in turn; their groups are
//! merged in file order (`crate::parts`), so the result is exactly that of one sequential
//! pass (the tests compare the two).

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use jiff::civil::DateTime;

use crate::hash::KeyHasherBuilder;
use crate::lines::{Block, BlockReader, LogFileError, LogKind, add_sample, lossy, replay_samples};
use crate::parts::{self, FileRange, read_fully_at};
use crate::window::{self, Stamp};

use crate::classify::{Classified, ClassifiedRef, Phase, Signature, classify_ref};
use crate::errorlog::{ErrorLine, parse_line, strip_container_prefix};

/// Why an error log could not be scanned (the kind is always [`LogKind::Error`]).
pub type LogError = LogFileError;

/// Most groups kept; lines that would open more are counted in
/// [`LogSummary::lines_ungrouped`]. Real logs have a handful.
pub const MAX_GROUPS: usize = 1000;

/// How [`scan`] reads a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Keep lines at or after this local time (nginx logs local time); `None` keeps all.
    /// [`scan_file`] does not even read the lines before the window (it bisects to it).
    pub since: Option<DateTime>,
    /// Lines dated after this local time are left out and counted in
    /// [`LogSummary::lines_future`] (a clock that was wrong, or a forged line); `None`
    /// keeps them.
    pub until: Option<DateTime>,
    /// Raw lines kept per group: the first `max_samples - 1` and the latest. Default 2.
    pub max_samples: usize,
    /// Lines longer than this (without the line ending) are counted in
    /// [`LogSummary::lines_oversized`] and skipped without being buffered whole.
    /// Default 4 KiB: nginx itself never writes more than 2048 bytes per line (`NGX_MAX_ERROR_STR`), and the cap bounds what a hostile file can make the groups hold.
    pub max_line_bytes: usize,
    /// The width of the buckets of [`Group::per_minute`], in minutes (at least 1): a caller
    /// drawing a long window asks for coarser buckets, which keeps the groups small.
    /// Default 1.
    pub bucket_minutes: u32,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            since: None,
            until: None,
            max_samples: 2,
            max_line_bytes: 4 * 1024,
            bucket_minutes: 1,
        }
    }
}

/// Lines with the same failure against the same peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// What failed, against which peer, in which phase: what every line of the group shares
    /// (its peer, scheme and detail as the first line wrote them).
    pub failure: Classified,
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
    /// Lines per bucket of [`ScanOptions::bucket_minutes`] minutes (keyed by the bucket's
    /// start, local time as written; buckets start at midnight), oldest first; at most
    /// [`MAX_BUCKETS`] buckets, the latest kept.
    pub per_minute: Vec<(DateTime, u64)>,
}

/// Most buckets a [`Group::per_minute`] keeps.
pub const MAX_BUCKETS: usize = 512;

/// Adds `n` lines at `time`'s bucket of `bucket` minutes to a sorted list (kept to
/// [`MAX_BUCKETS`]).
fn bump_minute(list: &mut Vec<(DateTime, u64)>, time: DateTime, n: u64, bucket: u32) {
    let bucket = i32::try_from(bucket.max(1)).unwrap_or(i32::MAX);
    let of_day = i32::from(time.hour()) * 60 + i32::from(time.minute());
    let start = of_day - of_day % bucket;
    let minute = time.date().at(
        i8::try_from(start / 60).unwrap_or(0),
        i8::try_from(start % 60).unwrap_or(0),
        0,
        0,
    );
    match list.last_mut() {
        Some((last, count)) if *last == minute => *count += n,
        Some((last, _)) if *last > minute => match list.binary_search_by(|(m, _)| m.cmp(&minute)) {
            Ok(i) => {
                if let Some((_, count)) = list.get_mut(i) {
                    *count += n;
                }
            }
            Err(i) => list.insert(i, (minute, n)),
        },
        _ => list.push((minute, n)),
    }
    if list.len() > MAX_BUCKETS {
        list.remove(0);
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
    /// A few of those lines, as evidence: the first ones and the latest (see
    /// [`ScanOptions::max_samples`]), each cut at 4096 bytes, invalid UTF-8 replaced.
    pub unparsed_samples: Vec<String>,
    /// Lines dated after [`ScanOptions::until`], left out of the window.
    pub lines_future: u64,
    /// Lines longer than [`ScanOptions::max_line_bytes`], skipped.
    pub lines_oversized: u64,
    /// Upstream lines in the window that were not grouped because too many groups existed.
    pub lines_ungrouped: u64,
    /// Earliest time of a parsed line in the window.
    pub first_time: Option<DateTime>,
    /// Latest time of a parsed line in the window.
    pub last_time: Option<DateTime>,
}

/// Scans the error log at `path`. See [`scan`] for what is counted and [`scan_file_from`]
/// for how the file is read.
///
/// With [`ScanOptions::since`], the scan starts where the window starts, found by bisecting
/// the file on its timestamps ([`crate::window::window_start`]): the lines before it are
/// not read, so they are not counted in [`LogSummary::lines_read`],
/// [`LogSummary::lines_unparsed`] or [`LogSummary::lines_oversized`]; everything about the
/// window is the same as with a full read.
///
/// # Errors
///
/// [`LogError`] when the file cannot be opened or read, or is gzip-compressed.
pub fn scan_file(path: &Path, opts: &ScanOptions) -> Result<LogSummary, LogError> {
    let log = OpenLog::open(path)?;
    let offset = match opts.since {
        Some(since) => log.window_start(since)?,
        None => 0,
    };
    log.scan(offset, opts, parts::threads(), parts::PART)
}

/// Scans an error log together with the rotated files (`error.log.1`, `error.log.2.gz`,
/// `error.log-20261123`, ...) the [`ScanOptions::since`] window reaches into, oldest first,
/// as one log ([`crate::history`]). Without `since`, or when the window starts in the live
/// file, this is [`scan_file`]. Also returns one note per part of the history that was
/// skipped or damaged (a gzip file cut short): the other parts are still read.
///
/// # Errors
///
/// [`LogError`] when neither the file nor a rotation of it can be read.
pub fn scan_history(
    path: &Path,
    opts: &ScanOptions,
) -> Result<(LogSummary, Vec<String>), LogError> {
    let Some(since) = opts.since else {
        return scan_file(path, opts).map(|s| (s, Vec::new()));
    };
    let parts = crate::history::history(path, Some(since), Stamp::ErrorLog).map_err(|error| {
        LogError::Open {
            log: LogKind::Error,
            path: path.to_owned(),
            error,
        }
    })?;
    if parts.len() <= 1 && parts.first().is_none_or(|p| !p.gzip) {
        return scan_file(path, opts).map(|s| (s, Vec::new()));
    }
    let mut reader = crate::history::HistoryReader::new(parts, Some(since), Stamp::ErrorLog);
    let summary = scan(&mut reader, opts).map_err(|error| LogError::Read {
        log: LogKind::Error,
        path: path.to_owned(),
        error,
    })?;
    let notes = reader.issues().iter().map(ToString::to_string).collect();
    Ok((summary, notes))
}

/// Scans the error log at `path` from byte `offset` to the file's length at the time it
/// was opened (lines appended during the scan are left out).
///
/// `offset` is for a caller that already knows where its window starts: it should be the
/// start of a line, otherwise the partial line there counts as one line (usually
/// unparsed). Lines before `offset` are not read and not counted. `scan_file_from(path, 0,
/// opts)` reads the whole file whatever [`ScanOptions::since`] says.
///
/// Large ranges are cut at line boundaries into parts of about 2 MiB, scanned by up to four
/// threads (as many as the machine has cores), each with a fixed-size buffer; the result is
/// the same as one sequential [`scan`]. The file is read with `pread`, never mapped into
/// memory: a live log truncated by `copytruncate` only ends the scan early. A path that is
/// not a regular file (a pipe, `/dev/stderr`) is read as a stream to its end, on one thread.
///
/// # Errors
///
/// [`LogError`] when the file cannot be opened or read, or is gzip-compressed.
pub fn scan_file_from(
    path: &Path,
    offset: u64,
    opts: &ScanOptions,
) -> Result<LogSummary, LogError> {
    OpenLog::open(path)?.scan(offset, opts, parts::threads(), parts::PART)
}

/// An error log opened for scanning.
struct OpenLog<'p> {
    path: &'p Path,
    file: File,
    /// The length of a regular file when it was opened; `None` for anything else (a pipe,
    /// a device such as `/dev/stderr`), which is read as a stream to its end.
    len: Option<u64>,
}

impl<'p> OpenLog<'p> {
    /// Opens `path`; refuses a gzip-compressed regular file.
    fn open(path: &'p Path) -> Result<Self, LogError> {
        let file = File::open(path).map_err(|error| LogError::Open {
            log: LogKind::Error,
            path: path.to_owned(),
            error,
        })?;
        let read_error = |error| LogError::Read {
            log: LogKind::Error,
            path: path.to_owned(),
            error,
        };
        let meta = file.metadata().map_err(read_error)?;
        if !meta.is_file() {
            return Ok(Self {
                path,
                file,
                len: None,
            });
        }
        let mut magic = [0u8; 2];
        let got = read_fully_at(&file, &mut magic, 0).map_err(read_error)?;
        if is_gzip(magic.get(..got).unwrap_or_default()) {
            return Err(LogError::Compressed {
                log: LogKind::Error,
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path,
            file,
            len: Some(meta.len()),
        })
    }

    /// Where the window of `since` starts (0 for a stream, which cannot be bisected).
    fn window_start(&self, since: DateTime) -> Result<u64, LogError> {
        match self.len {
            Some(len) => window::window_start(&mut &self.file, len, since, Stamp::ErrorLog)
                .map_err(|error| self.read_error(error)),
            None => Ok(0),
        }
    }

    /// Reads a stream (not a regular file) from `offset` to its end, on this thread.
    fn scan_stream(&self, offset: u64, opts: &ScanOptions) -> Result<LogSummary, LogError> {
        let mut reader = io::BufReader::with_capacity(64 * 1024, &self.file);
        let start = reader.fill_buf().map_err(|error| self.read_error(error))?;
        if is_gzip(start) {
            return Err(LogError::Compressed {
                log: LogKind::Error,
                path: self.path.to_owned(),
            });
        }
        io::copy(&mut (&mut reader).take(offset), &mut io::sink())
            .map_err(|error| self.read_error(error))?;
        scan(reader, opts).map_err(|error| self.read_error(error))
    }

    fn read_error(&self, error: io::Error) -> LogError {
        LogError::Read {
            log: LogKind::Error,
            path: self.path.to_owned(),
            error,
        }
    }

    /// Scans from `offset` to the end: the range is cut into parts of about `part` bytes
    /// at line starts, `threads` threads scan them, and this thread folds their results
    /// in file order ([`parts::fold_in_order`]). Once the fold holds [`MAX_GROUPS`]
    /// groups, the parts scanned after that get their keys: a line with any other key can
    /// only be counted in [`LogSummary::lines_ungrouped`], so such a part is exact alone.
    fn scan(
        &self,
        offset: u64,
        opts: &ScanOptions,
        threads: usize,
        part: u64,
    ) -> Result<LogSummary, LogError> {
        let Some(len) = self.len else {
            return self.scan_stream(offset, opts);
        };
        let file = &self.file;
        let parts =
            parts::split_points(file, offset, len, part).map_err(|error| self.read_error(error))?;
        let hasher = KeyHasherBuilder::default();
        let range = |&(from, to): &(u64, u64)| FileRange::new(file, from, to);
        let mut total = Scanner::new(opts, hasher, None);
        if threads <= 1 || parts.len() <= 1 {
            for part in &parts {
                total
                    .run(range(part))
                    .map_err(|error| self.read_error(error))?;
            }
            return Ok(total.finish());
        }
        let mut published = false;
        let folded = parts::fold_in_order(
            &parts,
            threads,
            |part, frozen| {
                let mut scanner = Scanner::new(opts, hasher, frozen);
                scanner.run(range(&part)).map(|()| scanner)
            },
            |later, part| {
                if later.summary.lines_ungrouped > 0 && later.groups.frozen.is_none() {
                    // This part ran out of groups on its own before the fold had them all,
                    // so which of its lines fit depends on the groups before it: scan it
                    // again after them, as one sequential scan does.
                    total.run(range(&part))?;
                } else {
                    total.absorb(later);
                }
                // Once every group is taken, a part needs to keep only their keys.
                let keys = (!published).then(|| total.groups.frozen_keys()).flatten();
                published |= keys.is_some();
                Ok(keys)
            },
        );
        folded.map_err(|error| self.read_error(error))?;
        Ok(total.finish())
    }
}

/// True when `start` begins with the gzip magic bytes.
fn is_gzip(start: &[u8]) -> bool {
    start.starts_with(&[0x1f, 0x8b])
}

/// Scans an error log: counts its lines and groups the upstream failures in the window.
///
/// The input is read in fixed-size blocks, so memory stays bounded whatever the input
/// (see [`ScanOptions::max_line_bytes`]). Only lines that contain one of the few texts
/// every upstream failure has are parsed in full; the others only have their timestamp and
/// `[level] PID#TID:` checked, which is all the counts need (see the module documentation).
///
/// # Errors
///
/// Only I/O errors of `reader`; malformed input is counted in the summary instead.
pub fn scan<R: BufRead>(reader: R, opts: &ScanOptions) -> io::Result<LogSummary> {
    let mut scanner = Scanner::new(opts, KeyHasherBuilder::default(), None);
    scanner.run(reader)?;
    Ok(scanner.finish())
}

/// Texts of which every line [`crate::classify::classify`] can return `Some` for contains
/// at least one (follow the branches of `classify_ref`):
///
/// - `upstream`: the `upstream:` field, the upstream actions (`while connecting to
///   upstream`, ...), the `upstream ...` messages, `no live upstreams`, `... in upstream "..."`;
/// - `ct() `: the connect failures (`connect() failed`, `connect() to X failed`);
/// - `esolv`: the resolver's lines (` while resolving`), `no resolver defined to resolve`,
///   `could not be resolved`;
/// - the rest: messages that may come without any of those.
///
/// A line without any of them is only counted, never parsed in full. The texts are chosen
/// so that noise lines rarely have their first bytes, and there are at most eight of them,
/// so that each gets a bucket of its own in the SIMD search (Teddy): with nine, two share
/// one and the search gets twice as slow. When `classify` learns a message that has none
/// of them, add it here: the test `prefilter_keeps_every_classified_line` fails until then.
pub(crate) const PREFILTER: [&str; 7] = [
    "upstream",
    "ct() ",
    "esolv",
    "FastCGI sent in stderr",
    "memcached sent ",
    "URL prefix in ",
    "zero length URI to proxy",
];

/// The searcher for [`PREFILTER`]: the SIMD searcher (Teddy) where the CPU has it, else an
/// Aho-Corasick automaton; `None` only if neither could be built, and then every line is
/// parsed in full.
static PREFILTER_SEARCHER: LazyLock<Option<Prefilter>> = LazyLock::new(|| {
    let packed = aho_corasick::packed::Config::new()
        .builder()
        .extend(PREFILTER)
        .build();
    match packed {
        Some(searcher) => Some(Prefilter::Packed(searcher)),
        None => AhoCorasick::new(PREFILTER).ok().map(Prefilter::Automaton),
    }
});

/// See [`PREFILTER_SEARCHER`].
enum Prefilter {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Prefilter {
    /// Where the first [`PREFILTER`] text in `haystack` starts.
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        match self {
            Self::Packed(searcher) => searcher.find(haystack).map(|m| m.start()),
            Self::Automaton(searcher) => searcher.find(haystack).map(|m| m.start()),
        }
    }
}

/// The state of a scan: what has been counted and grouped so far.
struct Scanner<'o> {
    opts: &'o ScanOptions,
    summary: LogSummary,
    groups: Groups,
    stamps: StampCache,
}

impl<'o> Scanner<'o> {
    /// A scanner whose groups hash with `hasher` (the same for every part of one scan) and
    /// keep only the keys of `frozen` when given (see [`OpenLog::scan`]).
    fn new(
        opts: &'o ScanOptions,
        hasher: KeyHasherBuilder,
        frozen: Option<std::sync::Arc<Groups>>,
    ) -> Self {
        Self {
            opts,
            summary: LogSummary::default(),
            groups: Groups::new(hasher, frozen),
            stamps: StampCache::default(),
        }
    }

    /// Reads `reader` to its end.
    fn run<R: Read>(&mut self, reader: R) -> io::Result<()> {
        let mut blocks = BlockReader::new(reader, self.opts.max_line_bytes);
        // One iteration per block; ends at the end of the input.
        while let Some(block) = blocks.next_block()? {
            match block {
                Block::Lines(lines) => self.block(lines),
                Block::Oversized => {
                    self.summary.lines_read += 1;
                    self.summary.lines_oversized += 1;
                }
            }
        }
        Ok(())
    }

    /// Accounts the lines of a block: the block is searched for [`PREFILTER`] texts once,
    /// and only the lines with a hit go through the full parser.
    fn block(&mut self, block: &[u8]) {
        let searcher = PREFILTER_SEARCHER.as_ref();
        let find = |from: usize| -> Option<usize> {
            let Some(searcher) = searcher else {
                return Some(from);
            };
            let rest = block.get(from..)?;
            searcher.find(rest).map(|at| from + at)
        };
        let mut hit = find(0);
        let mut pos = 0;
        // One iteration per line; `pos` grows each time.
        while let Some(rest) = block.get(pos..).filter(|r| !r.is_empty()) {
            let len = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let line = rest.get(..len).unwrap_or(rest);
            let end = pos + len;
            let candidate = hit.is_some_and(|at| at < end);
            self.line(line, candidate);
            pos = end + 1;
            if candidate {
                hit = find(pos);
            }
        }
    }

    /// Accounts one line (without its `\n`). Only a `candidate` can be an upstream failure.
    fn line(&mut self, line: &[u8], candidate: bool) {
        self.summary.lines_read += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.opts.max_line_bytes {
            self.summary.lines_oversized += 1;
            return;
        }
        let Some(time) = self.stamps.line_time(line) else {
            self.summary.lines_unparsed += 1;
            add_sample(
                &mut self.summary.unparsed_samples,
                &String::from_utf8_lossy(line),
                self.opts.max_samples,
                self.summary.lines_unparsed,
            );
            return;
        };
        if self.opts.since.is_some_and(|since| time < since) {
            return;
        }
        if self.opts.until.is_some_and(|until| time > until) {
            self.summary.lines_future += 1;
            return;
        }
        if self.stamps.folded {
            // This second is already in `first_time` and `last_time`.
            self.summary.lines_in_window += 1;
        } else {
            count_in_window(&mut self.summary, time);
            self.stamps.folded = true;
        }
        if !candidate {
            return;
        }
        // Invalid bytes become U+FFFD, which leaves the line's header as it was.
        let text = lossy(line);
        // `line_time` accepted the line, so `parse_line` does too.
        if let Some(parsed) = parse_line(&text)
            && let Some(classified) = classify_ref(&parsed)
            && !self.groups.add(
                &parsed,
                classified,
                self.opts.max_samples,
                self.opts.bucket_minutes,
            )
        {
            self.summary.lines_ungrouped += 1;
        }
    }

    /// Adds the counts and groups of `later`, a scan of the input right after this one's.
    fn absorb(&mut self, later: Self) {
        let s = &mut self.summary;
        let l = later.summary;
        s.lines_read += l.lines_read;
        s.lines_in_window += l.lines_in_window;
        let counted = (&mut s.unparsed_samples, &mut s.lines_unparsed);
        replay_samples(
            counted,
            &l.unparsed_samples,
            l.lines_unparsed,
            self.opts.max_samples,
        );
        s.lines_oversized += l.lines_oversized;
        s.lines_future += l.lines_future;
        s.lines_ungrouped += l.lines_ungrouped;
        s.first_time = match (s.first_time, l.first_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        s.last_time = s.last_time.max(l.last_time);
        for group in later.groups.list {
            let count = group.count;
            if !self.groups.merge(group, self.opts.max_samples) {
                self.summary.lines_ungrouped += count;
            }
        }
    }

    fn finish(self) -> LogSummary {
        let mut summary = self.summary;
        summary.groups = self.groups.into_sorted();
        summary
    }
}

/// Counts a parsed line at `time` in the window.
fn count_in_window(summary: &mut LogSummary, time: DateTime) {
    summary.lines_in_window += 1;
    summary.first_time = Some(summary.first_time.map_or(time, |t| t.min(time)));
    summary.last_time = Some(summary.last_time.map_or(time, |t| t.max(time)));
}

/// The time of a line that [`parse_line`] accepts, found without parsing the rest of the
/// line; the time of the last distinct timestamp is remembered, as most lines repeat it.
#[derive(Default)]
struct StampCache {
    last: Option<([u8; 19], Option<DateTime>)>,
    /// The scanner has counted the last timestamp's time in the window (reset when the
    /// timestamp changes).
    folded: bool,
}

impl StampCache {
    /// The line's time, or `None` when [`parse_line`] would reject the line: it must start
    /// with `YYYY/MM/DD HH:MM:SS [level] PID#TID:`, after a container log prefix if it has
    /// one ([`strip_container_prefix`]).
    fn line_time(&mut self, line: &[u8]) -> Option<DateTime> {
        let line = strip_container_prefix(line);
        let (stamp, rest) = line.split_first_chunk::<19>()?;
        if !header_ok(rest) {
            return None;
        }
        match &self.last {
            Some((bytes, time)) if same_stamp(bytes, stamp) => *time,
            _ => {
                let time = parse_stamp(stamp);
                self.last = Some((*stamp, time));
                self.folded = false;
                time
            }
        }
    }
}

/// `a == b`, in two integer comparisons.
fn same_stamp(a: &[u8; 19], b: &[u8; 19]) -> bool {
    let wide = |s: &[u8; 19]| {
        let (head, tail) = s.split_first_chunk::<16>().unwrap_or((&[0; 16], &[]));
        (u128::from_ne_bytes(*head), tail.first_chunk::<3>().copied())
    };
    wide(a) == wide(b)
}

/// Parses and validates `YYYY/MM/DD HH:MM:SS` (as [`parse_line`] does).
fn parse_stamp(stamp: &[u8; 19]) -> Option<DateTime> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'/',
        mo0,
        mo1,
        b'/',
        d0,
        d1,
        b' ',
        h0,
        h1,
        b':',
        mi0,
        mi1,
        b':',
        s0,
        s1,
    ] = *stamp
    else {
        return None;
    };
    let digit = |c: u8| c.is_ascii_digit().then(|| c - b'0');
    let two = |a: u8, b: u8| Some(digit(a)? * 10 + digit(b)?);
    let year = i16::from(two(y0, y1)?) * 100 + i16::from(two(y2, y3)?);
    let small = |a: u8, b: u8| two(a, b).and_then(|n| i8::try_from(n).ok());
    DateTime::new(
        year,
        small(mo0, mo1)?,
        small(d0, d1)?,
        small(h0, h1)?,
        small(mi0, mi1)?,
        small(s0, s1)?,
        0,
    )
    .ok()
}

/// True when `rest`, what follows the timestamp, starts with ` [level] PID#TID:` as
/// [`parse_line`] requires: a known level, a PID that fits in `u32`, a TID that fits in
/// `u64`.
fn header_ok(rest: &[u8]) -> bool {
    /// The level names with their brackets, the most frequent first.
    const LEVELS: [&[u8]; 8] = [
        b" [error] ",
        b" [info] ",
        b" [warn] ",
        b" [crit] ",
        b" [notice] ",
        b" [alert] ",
        b" [emerg] ",
        b" [debug] ",
    ];
    // No name contains `] `, so this finds the same level as looking for the first `] `.
    LEVELS
        .iter()
        .find_map(|level| rest.strip_prefix(*level))
        .and_then(|after| digits_then(after, b'#', u64::from(u32::MAX)))
        .and_then(|after| digits_then(after, b':', u64::MAX))
        .is_some()
}

/// If `s` starts with a non-empty run of digits worth at most `max` followed by `end`, the
/// text after `end`.
fn digits_then(s: &[u8], end: u8, max: u64) -> Option<&[u8]> {
    let (_, len) = crate::find::leading_digits(s, max)?;
    if len == 0 || s.get(len) != Some(&end) {
        return None;
    }
    s.get(len + 1..)
}

/// The groups under construction, with a hash index that needs no allocation to look up.
struct Groups {
    list: Vec<Group>,
    /// Hash of a group key → indexes into `list` (more than one only on a hash collision).
    index: HashMap<u64, Vec<usize>, KeyHasherBuilder>,
    hasher: KeyHasherBuilder,
    /// When set, a line whose key is not one of these groups' opens no group (it is counted
    /// as ungrouped): they are all the groups of the whole scan (see [`OpenLog::scan`]).
    frozen: Option<std::sync::Arc<Self>>,
}

impl Groups {
    fn new(hasher: KeyHasherBuilder, frozen: Option<std::sync::Arc<Self>>) -> Self {
        Self {
            list: Vec::new(),
            index: HashMap::with_hasher(hasher),
            hasher,
            frozen,
        }
    }

    /// The index of the group with this key, if there is one.
    fn find(
        &self,
        hash: u64,
        signature: Signature,
        peer: Option<&str>,
        phase: Option<Phase>,
        kind: Option<(&str, Option<i32>)>,
    ) -> Option<usize> {
        self.index.get(&hash).and_then(|slots| {
            slots.iter().copied().find(|&i| {
                self.list.get(i).is_some_and(|g| {
                    g.failure.signature == signature
                        && g.failure.peer.as_deref() == peer
                        && g.failure.phase == phase
                        && kind.is_none_or(|k| (message_kind(&g.message), g.errno) == k)
                })
            })
        })
    }

    /// Appends a new group; `false` when there are [`MAX_GROUPS`] already.
    fn push(&mut self, hash: u64, group: Group) -> bool {
        if self.list.len() >= MAX_GROUPS {
            return false;
        }
        self.index.entry(hash).or_default().push(self.list.len());
        self.list.push(group);
        true
    }

    /// Adds a classified line; `false` when it would open a group beyond [`MAX_GROUPS`].
    fn add(
        &mut self,
        line: &ErrorLine<'_>,
        c: ClassifiedRef<'_>,
        max_samples: usize,
        bucket: u32,
    ) -> bool {
        let errno = line.errno.map(|e| e.number);
        let kind =
            (c.signature == Signature::OtherUpstream).then(|| (message_kind(line.message), errno));
        let hash = self.hasher.hash_one((c.signature, c.peer, c.phase, kind));
        let found = self.find(hash, c.signature, c.peer, c.phase, kind);
        if let Some(group) = found.and_then(|i| self.list.get_mut(i)) {
            group.count += 1;
            group.first_seen = group.first_seen.min(line.time);
            group.last_seen = group.last_seen.max(line.time);
            bump_minute(&mut group.per_minute, line.time, 1, bucket);
            add_sample(&mut group.samples, line.raw, max_samples, group.count);
            return true;
        }
        if self.list.len() >= MAX_GROUPS
            || self.frozen.as_ref().is_some_and(|keys| {
                keys.find(hash, c.signature, c.peer, c.phase, kind)
                    .is_none()
            })
        {
            return false;
        }
        let mut samples = Vec::new();
        add_sample(&mut samples, line.raw, max_samples, 1);
        // Once every group is taken (`frozen`), this group only adds to one the fold has,
        // which keeps its own first line's fields: copies of this line's would be dropped.
        // It keeps what finds the fold's group: the key, the message's kind.
        let (failure, message, server, request) = if self.frozen.is_some() {
            let key = ClassifiedRef {
                scheme: None,
                detail: None,
                ..c
            };
            (key.to_owned(), message_kind(line.message), None, None)
        } else {
            (c.to_owned(), line.message, line.server, line.request)
        };
        self.push(
            hash,
            Group {
                failure,
                count: 1,
                first_seen: line.time,
                last_seen: line.time,
                samples,
                message: message.to_owned(),
                errno,
                server: server.map(str::to_owned),
                request: request.map(str::to_owned),
                per_minute: {
                    let mut m = Vec::new();
                    bump_minute(&mut m, line.time, 1, bucket);
                    m
                },
            },
        )
    }

    /// Adds a group built from lines that come after all lines added so far; `false` when
    /// it would open a group beyond [`MAX_GROUPS`].
    fn merge(&mut self, later: Group, max_samples: usize) -> bool {
        let kind = (later.failure.signature == Signature::OtherUpstream)
            .then(|| (message_kind(&later.message), later.errno));
        let hash = self.hasher.hash_one((
            later.failure.signature,
            later.failure.peer.as_deref(),
            later.failure.phase,
            kind,
        ));
        let found = self.find(
            hash,
            later.failure.signature,
            later.failure.peer.as_deref(),
            later.failure.phase,
            kind,
        );
        let Some(group) = found.and_then(|i| self.list.get_mut(i)) else {
            return self.push(hash, later);
        };
        let counted = (&mut group.samples, &mut group.count);
        replay_samples(counted, &later.samples, later.count, max_samples);
        group.first_seen = group.first_seen.min(later.first_seen);
        group.last_seen = group.last_seen.max(later.last_seen);
        for (minute, n) in &later.per_minute {
            bump_minute(&mut group.per_minute, *minute, *n, 1);
        }
        true
    }

    /// The keys of these groups (each group without its samples, minutes and fields), once
    /// there are [`MAX_GROUPS`] of them: no other key can open a group any more.
    fn frozen_keys(&self) -> Option<Self> {
        if self.list.len() < MAX_GROUPS {
            return None;
        }
        let list = self
            .list
            .iter()
            .map(|g| Group {
                failure: g.failure.clone(),
                count: 0,
                first_seen: g.first_seen,
                last_seen: g.last_seen,
                samples: Vec::new(),
                message: message_kind(&g.message).to_owned(),
                errno: g.errno,
                server: None,
                request: None,
                per_minute: Vec::new(),
            })
            .collect();
        Some(Self {
            list,
            index: self.index.clone(),
            hasher: self.hasher,
            frozen: None,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use crate::lines::{BLOCK, LineRead, read_line_capped};
    use std::io::{BufReader, Cursor};

    const CATALOG: &str = include_str!("../tests/fixtures/errorlog/catalog.log");
    const REAL: &str = include_str!("../tests/fixtures/errorlog/real-nginx.log");
    const RESPONSE: &str = include_str!("../tests/fixtures/errorlog/real-response.log");
    const REAL_WORLD: &str = include_str!("../tests/fixtures/errorlog/real-world.log");

    /// Accounts one line of text with the full parser (for `reference`).
    fn scan_line(text: &str, opts: &ScanOptions, summary: &mut LogSummary, groups: &mut Groups) {
        let Some(line) = parse_line(text) else {
            summary.lines_unparsed += 1;
            add_sample(
                &mut summary.unparsed_samples,
                text,
                opts.max_samples,
                summary.lines_unparsed,
            );
            return;
        };
        if opts.since.is_some_and(|since| line.time < since) {
            return;
        }
        if opts.until.is_some_and(|until| line.time > until) {
            summary.lines_future += 1;
            return;
        }
        count_in_window(summary, line.time);
        if let Some(classified) = classify_ref(&line)
            && !groups.add(&line, classified, opts.max_samples, opts.bucket_minutes)
        {
            summary.lines_ungrouped += 1;
        }
    }

    /// The scan without any shortcut: every line read one at a time, parsed in full and
    /// classified, on one thread. The fast paths must give exactly this.
    fn reference(input: &[u8], opts: &ScanOptions) -> LogSummary {
        let mut reader = Cursor::new(input);
        let mut summary = LogSummary::default();
        let mut groups = Groups::new(KeyHasherBuilder::default(), None);
        let mut buf = Vec::new();
        loop {
            match read_line_capped(&mut reader, &mut buf, opts.max_line_bytes).unwrap() {
                LineRead::Eof => break,
                LineRead::Oversized => {
                    summary.lines_read += 1;
                    summary.lines_oversized += 1;
                }
                LineRead::Line => {
                    summary.lines_read += 1;
                    let text = String::from_utf8_lossy(&buf);
                    scan_line(&text, opts, &mut summary, &mut groups);
                }
            }
        }
        summary.groups = groups.into_sorted();
        summary
    }

    fn fixture_lines() -> Vec<&'static str> {
        CATALOG
            .lines()
            .chain(REAL.lines())
            .chain(RESPONSE.lines())
            .chain(REAL_WORLD.lines())
            .collect()
    }

    /// A fixture line and variants that lost their context or their action (as lines cut
    /// at 2048 bytes do), so that messages that classify without `upstream` show up.
    fn variants(line: &str) -> Vec<String> {
        let cut = line.split_once(", client: ").map_or(line, |(head, _)| head);
        let mut out = vec![line.to_owned(), cut.to_owned()];
        for base in [line, cut] {
            if let Some(at) = base.rfind(" while ") {
                let tail = base.get(at..).unwrap_or_default();
                let rest = tail
                    .find(", ")
                    .map_or("", |i| tail.get(i..).unwrap_or_default());
                out.push(format!("{}{rest}", base.get(..at).unwrap_or_default()));
            }
        }
        out
    }

    /// xorshift64: deterministic test data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const NOISE: [&str; 6] = [
        "[error] 2417#2417: *{cid} open() \"/var/www/html/favicon.ico\" failed (2: No such file or directory), client: 192.0.2.7, server: example.com, request: \"GET /favicon.ico HTTP/1.1\", host: \"example.com\"",
        "[info] 2418#2418: *{cid} client prematurely closed connection while reading client request line, client: 192.0.2.8, server: 0.0.0.0:443",
        "[error] 2419#2419: *{cid} limiting requests, excess: 20.340 by zone \"perip\", client: 192.0.2.9, server: api.example.com, request: \"GET /api HTTP/1.1\", host: \"api.example.com\"",
        "[info] 2420#2420: *{cid} SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking, client: 192.0.2.10, server: 0.0.0.0:443",
        "[info] 2417#2417: *{cid} epoll_wait() reported that client prematurely closed connection, so upstream connection is closed too while sending request to upstream, client: 192.0.2.11, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://10.0.0.5:8080/\", host: \"s\"",
        "[warn] 2418#2418: *{cid} an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: 192.0.2.12, server: s, request: \"GET /x HTTP/1.1\", upstream: \"http://10.0.0.6:8080/x\", host: \"s\"",
    ];

    /// A log of `lines` lines: noise, the fixtures' lines and their variants with new
    /// timestamps (going back a second now and then), garbage, empty lines, CRLF endings,
    /// invalid UTF-8 and long lines. `peers` distinct refused peers open that many groups.
    fn generated(seed: u64, lines: usize, peers: usize) -> Vec<u8> {
        let mut rng = Rng(seed);
        let upstream: Vec<String> = fixture_lines().into_iter().flat_map(variants).collect();
        let mut out = Vec::new();
        let mut t: i64 = 0;
        for cid in 0..lines {
            t += i64::from(rng.below(3) == 0);
            let back = i64::from(rng.below(20) == 0);
            let time = date_time(t - back);
            let roll = rng.below(100);
            let line = match roll {
                0..=54 => format!("{time} {}", NOISE[rng.below(NOISE.len())]),
                55..=79 => {
                    let l = &upstream[rng.below(upstream.len())];
                    format!("{time}{}", l.get(19..).unwrap_or_default())
                }
                80..=84 => format!(
                    "{time} [error] 7#7: *{cid} connect() failed (111: Connection refused) while connecting to upstream, client: 192.0.2.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://10.{}.{}.1:80/\", host: \"s\"",
                    rng.below(peers.max(1)) / 256,
                    rng.below(peers.max(1)) % 256
                ),
                85..=87 => {
                    "#3 /var/www/vendor/Pipeline.php(167): Illuminate\\Pipeline\\Pipeline->handle()"
                        .to_owned()
                }
                88 => String::new(),
                89 => format!(
                    "{time} [error] 1#1: *{cid} upstream timed out (110: x) while reading response header from upstream, client: c, server: s, request: \"GET /{} HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"h\"",
                    "y".repeat(rng.below(3000))
                ),
                90 => format!("{time} [nope] 1#1: bad level"),
                91 => format!("{} [error] 99999999999#1: pid too big upstream", time),
                92 => format!(
                    "{} [error] 0001#0000000000000000000001: *1 no live upstreams while connecting to upstream, client: c, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://pool/\", host: \"h\"",
                    time
                ),
                93 => format!(
                    "2025/02/30 10:00:00 [error] 1#1: *{cid} upstream timed out (110: x) while connecting to upstream, client: c"
                ),
                _ => format!("{time} {}", NOISE[4]),
            };
            let mut bytes = line.into_bytes();
            if rng.below(25) == 0 && !bytes.is_empty() {
                // An invalid UTF-8 byte somewhere (sometimes in the header).
                let at = rng.below(bytes.len());
                bytes[at] = 0xff;
            }
            out.extend_from_slice(&bytes);
            if rng.below(10) == 0 {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
        if rng.below(2) == 0 {
            out.pop(); // no final newline
        }
        out
    }

    /// `2025/03/14 10:00:00` plus `secs` seconds.
    fn date_time(secs: i64) -> String {
        let secs = secs.max(0) + 10 * 3600;
        format!(
            "2025/03/{:02} {:02}:{:02}:{:02}",
            14 + secs / 86_400,
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60
        )
    }

    fn option_sets() -> Vec<ScanOptions> {
        let since = |s: &str| Some(DateTime::strptime("%Y/%m/%d %H:%M:%S", s).unwrap());
        vec![
            ScanOptions::default(),
            ScanOptions {
                since: since("2025/03/14 10:05:00"),
                ..ScanOptions::default()
            },
            ScanOptions {
                since: since("2025/03/14 09:30:00"),
                until: since("2025/03/14 12:00:00"),
                max_samples: 3,
                max_line_bytes: 2048,
                bucket_minutes: 7,
            },
            ScanOptions {
                max_samples: 0,
                max_line_bytes: 300,
                ..ScanOptions::default()
            },
            ScanOptions {
                max_samples: 1,
                max_line_bytes: usize::MAX,
                ..ScanOptions::default()
            },
        ]
    }

    /// Writes `input` to a file and scans it split into many parts.
    fn scan_split(input: &[u8], offset: u64, opts: &ScanOptions, threads: usize) -> LogSummary {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        std::fs::write(&path, input).unwrap();
        OpenLog::open(&path)
            .unwrap()
            .scan(offset, opts, threads, 1)
            .unwrap()
    }

    #[test]
    fn prefilter_keeps_every_classified_line() {
        let mut classified = 0;
        for line in fixture_lines() {
            for variant in variants(line) {
                let Some(parsed) = parse_line(&variant) else {
                    continue;
                };
                if classify(&parsed).is_none() {
                    continue;
                }
                classified += 1;
                assert!(
                    PREFILTER.iter().any(|p| variant.contains(p)),
                    "classified but not a candidate: {variant}"
                );
            }
        }
        assert!(classified > 300, "{classified}");
        // The texts that are not about `upstream` are needed: each has a line only it finds.
        for only in [
            "2025/03/14 09:00:00 [error] 7#7: *1 connect() failed (111: Connection refused)",
            "2025/03/14 09:00:00 [error] 7#7: send() failed (111: Connection refused) while resolving, resolver: 127.0.0.1:53",
            "2025/03/14 09:00:00 [error] 7#7: *1 FastCGI sent in stderr: \"PHP message: x\"",
            "2025/03/14 09:00:00 [error] 7#7: *1 memcached sent invalid response: \"x\"",
            "2025/03/14 09:00:00 [error] 7#7: *1 no resolver defined to resolve backend, client: c",
            "2025/03/14 09:00:00 [error] 7#7: *1 backend could not be resolved (3: Host not found), client: c",
            "2025/03/14 09:00:00 [error] 7#7: *1 invalid URL prefix in \"backend\", client: c",
            "2025/03/14 09:00:00 [error] 7#7: *1 zero length URI to proxy, client: c",
        ] {
            let parsed = parse_line(only).unwrap();
            assert!(classify(&parsed).is_some(), "{only}");
            assert!(!only.contains("upstream"), "{only}");
            assert!(PREFILTER.iter().any(|p| only.contains(p)), "{only}");
        }
    }

    #[test]
    fn fast_scan_equals_reference_on_fixtures() {
        let mut all = String::new();
        for text in [CATALOG, REAL, RESPONSE] {
            all.push_str(text);
        }
        for opts in option_sets() {
            let expected = reference(all.as_bytes(), &opts);
            assert!(!expected.groups.is_empty());
            assert_eq!(scan(all.as_bytes(), &opts).unwrap(), expected, "{opts:?}");
            for threads in [2, 3, 4] {
                assert_eq!(scan_split(all.as_bytes(), 0, &opts, threads), expected);
            }
        }
    }

    #[test]
    fn fast_scan_equals_reference_on_a_generated_mix() {
        for seed in 1..=4 {
            let input = generated(seed * 7919, 6000, 40);
            for opts in option_sets() {
                let expected = reference(&input, &opts);
                assert!(expected.lines_unparsed > 0 && expected.lines_in_window > 0);
                let fast = scan(Cursor::new(&input), &opts).unwrap();
                assert_eq!(fast, expected, "seed {seed} {opts:?}");
                for threads in [2, 4] {
                    let split = scan_split(&input, 0, &opts, threads);
                    assert_eq!(split, expected, "seed {seed} threads {threads} {opts:?}");
                }
            }
        }
    }

    #[test]
    fn split_scan_equals_reference_beyond_the_group_limit() {
        // 3000 refused peers over four parts: the later parts run out of groups on their
        // own and are scanned again after the earlier ones.
        let input = generated(99, 40_000, 3000);
        let opts = ScanOptions::default();
        let expected = reference(&input, &opts);
        assert_eq!(expected.groups.len(), MAX_GROUPS);
        assert!(expected.lines_ungrouped > 0);
        assert_eq!(scan_split(&input, 0, &opts, 4), expected);
        assert_eq!(scan(Cursor::new(&input), &opts).unwrap(), expected);
    }

    #[test]
    fn scan_from_an_offset_reads_only_the_rest() {
        let input = generated(5, 3000, 10);
        let opts = ScanOptions::default();
        let at = memchr::memchr(b'\n', &input[input.len() / 2..]).unwrap() + input.len() / 2 + 1;
        let expected = reference(&input[at..], &opts);
        assert_eq!(scan_split(&input, at as u64, &opts, 2), expected);
        let whole = reference(&input, &opts);
        assert!(expected.lines_read < whole.lines_read);
        // Past the end: nothing.
        let past = scan_split(&input, input.len() as u64 + 10, &opts, 2);
        assert_eq!(past, LogSummary::default());
    }

    #[test]
    fn header_check_agrees_with_parse_line() {
        let mut rng = Rng(0x5eed);
        let mut cache = StampCache::default();
        let seeds = fixture_lines();
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut line = seeds[rng.below(seeds.len())].as_bytes().to_vec();
            // Change a byte or two of the header (timestamp, level, pid, tid).
            for _ in 0..1 + round % 2 {
                let at = rng.below(line.len().min(40));
                line[at] = match rng.below(6) {
                    0 => b'0' + (rng.below(10) as u8),
                    1 => b' ',
                    2 => b']',
                    3 => b'#',
                    4 => b':',
                    _ => rng.next() as u8,
                };
            }
            if round % 7 == 0 {
                line.truncate(rng.below(45));
            }
            let text = String::from_utf8_lossy(&line);
            let expected = parse_line(&text).map(|l| l.time);
            assert_eq!(cache.line_time(&line), expected, "{text}");
            accepted += usize::from(expected.is_some());
        }
        assert!(accepted > 1000 && accepted < 19_000, "{accepted}");
        for (line, ok) in [
            (
                "2025/03/14 09:21:07 [error] 4294967295#18446744073709551615: x",
                true,
            ),
            ("2025/03/14 09:21:07 [error] 4294967296#1: x", false),
            (
                "2025/03/14 09:21:07 [error] 1#18446744073709551616: x",
                false,
            ),
            ("2025/03/14 09:21:07 [error] 0000000000001#01:", true),
            ("2025/03/14 09:21:07 [error] #1: x", false),
            ("2025/03/14 09:21:07 [error] 1#: x", false),
            ("2025/03/14 09:21:07 [errors] 1#1: x", false),
            ("2025/03/14 09:21:07 [error]  1#1: x", false),
            ("2025/02/29 09:21:07 [error] 1#1: x", false),
            ("2024/02/29 24:00:00 [error] 1#1: x", false),
            ("2024/02/29 23:59:59 [debug] 1#1:", true),
        ] {
            let expected = parse_line(line).map(|l| l.time);
            assert_eq!(expected.is_some(), ok, "{line}");
            assert_eq!(cache.line_time(line.as_bytes()), expected, "{line}");
        }
    }

    #[test]
    fn bounded_memory_on_a_10_mb_line_and_50_mb_without_newline() {
        let good = "2025/03/14 10:00:00 [error] 1#1: *1 no live upstreams while connecting to upstream, client: c, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://pool/\", host: \"h\"\n";
        // A 10 MB line that looks like an upstream failure, between two good lines.
        let mut long = good.trim_end().to_owned();
        long.push_str(", referrer: \"");
        let input = Cursor::new(good.as_bytes())
            .chain(Cursor::new(long.into_bytes()))
            .chain(io::repeat(b'x').take(10_000_000))
            .chain(Cursor::new(b"\"\n".to_vec()))
            .chain(Cursor::new(good.as_bytes()));
        let s = scan(BufReader::new(input), &ScanOptions::default()).unwrap();
        assert_eq!(
            (s.lines_read, s.lines_oversized, s.lines_in_window),
            (3, 1, 2)
        );
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.groups[0].count, 2);

        // 50 MB and no newline at all: one oversized line.
        let endless = io::repeat(b'y').take(50_000_000);
        let s = scan(BufReader::new(endless), &ScanOptions::default()).unwrap();
        assert_eq!((s.lines_read, s.lines_oversized), (1, 1));

        // The buffer never grows past a block (the cap is far below it).
        let mut blocks = BlockReader::new(io::repeat(b'z').take(50_000_000), 16 * 1024);
        let mut seen = 0;
        while let Some(block) = blocks.next_block().unwrap() {
            assert_eq!(block, Block::Oversized);
            seen += 1;
        }
        assert_eq!(seen, 1);
        assert_eq!(blocks.buffer_len(), BLOCK);
    }

    #[test]
    fn scan_file_counts_a_huge_line_without_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        let mut input = CATALOG.as_bytes().to_vec();
        input.extend(std::iter::repeat_n(b'q', 10_000_000));
        input.push(b'\n');
        input.extend_from_slice(CATALOG.as_bytes());
        std::fs::write(&path, &input).unwrap();
        let opts = ScanOptions::default();
        let expected = reference(&input, &opts);
        assert_eq!(expected.lines_oversized, 1);
        // Split points that land inside the long line move past it.
        let split = OpenLog::open(&path).unwrap().scan(0, &opts, 4, 1).unwrap();
        assert_eq!(split, expected);
        assert_eq!(scan_file(&path, &opts).unwrap(), expected);
    }

    #[test]
    fn scan_file_with_since_bisects_and_keeps_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        // About 4 hours of lines, 1 MB.
        let input = generated(11, 40_000, 20);
        std::fs::write(&path, &input).unwrap();
        let since = DateTime::strptime("%Y/%m/%d %H:%M:%S", "2025/03/14 13:00:00").unwrap();
        let opts = ScanOptions {
            since: Some(since),
            ..ScanOptions::default()
        };
        let expected = reference(&input, &opts);
        assert!(expected.lines_in_window > 1000);
        let got = scan_file(&path, &opts).unwrap();
        assert_eq!(got.groups, expected.groups);
        assert_eq!(got.lines_in_window, expected.lines_in_window);
        assert_eq!(
            (got.first_time, got.last_time, got.lines_ungrouped),
            (
                expected.first_time,
                expected.last_time,
                expected.lines_ungrouped
            )
        );
        // The lines before the window were not read.
        assert!(
            got.lines_read < expected.lines_read / 2,
            "{}",
            got.lines_read
        );
        assert!(got.lines_read >= got.lines_in_window);
    }

    #[test]
    fn a_fifo_is_read_as_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("error.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, CATALOG))
        };
        let opts = ScanOptions {
            since: Some(DateTime::constant(2025, 3, 14, 9, 30, 0, 0)),
            ..ScanOptions::default()
        };
        let s = scan_file(&fifo, &opts).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(s, reference(CATALOG.as_bytes(), &opts));
        assert_eq!(s.lines_read, 83);
    }

    #[test]
    fn non_utf8_bytes_anywhere() {
        let mut input = Vec::new();
        for (i, line) in fixture_lines().iter().enumerate() {
            let mut bytes = line.as_bytes().to_vec();
            // Invalid bytes in the header, the message, the peer or the end.
            let at = [3, 25, 60, bytes.len() / 2, bytes.len() - 1][i % 5];
            bytes[at] = [0xff, 0xc3, 0x80, 0xfe, 0xe2][i % 5];
            input.extend_from_slice(&bytes);
            input.push(b'\n');
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
        }
        for opts in option_sets() {
            let expected = reference(&input, &opts);
            assert!(expected.lines_unparsed > 0);
            assert_eq!(scan(Cursor::new(&input), &opts).unwrap(), expected);
            assert_eq!(scan_split(&input, 0, &opts, 3), expected);
        }
    }

    #[test]
    fn merged_samples_keep_the_first_and_the_latest() {
        // One group, 9 lines over 3 parts: the samples must be lines 1, 2 and 9.
        let lines: String = (1..=9)
            .map(|i| format!("2025/03/14 10:00:0{i} [error] 1#1: *{i} no live upstreams while connecting to upstream, client: c, server: s, request: \"GET /{i} HTTP/1.1\", upstream: \"http://pool/\", host: \"h\"\n"))
            .collect();
        let opts = ScanOptions {
            max_samples: 3,
            ..ScanOptions::default()
        };
        let s = scan_split(lines.as_bytes(), 0, &opts, 3);
        assert_eq!(s, reference(lines.as_bytes(), &opts));
        let g = &s.groups[0];
        assert_eq!(g.count, 9);
        let ids: Vec<bool> = ["GET /1 ", "GET /2 ", "GET /9 "]
            .iter()
            .zip(&g.samples)
            .map(|(id, sample)| sample.contains(id))
            .collect();
        assert_eq!(ids, [true, true, true], "{:?}", g.samples);
        assert_eq!(g.first_seen, DateTime::constant(2025, 3, 14, 10, 0, 1, 0));
        assert_eq!(g.last_seen, DateTime::constant(2025, 3, 14, 10, 0, 9, 0));
    }
}
