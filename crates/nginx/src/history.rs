//! A log's rotated history: the files a `--since` window reaches into, and reading them
//! as one stream.
//!
//! logrotate and newsyslog rename `error.log` to `error.log.1`, `error.log.2.gz`, ... (or
//! `error.log-20261123[.gz]` with `dateext`). [`history`] lists the rotations that may hold
//! lines of the window, oldest first, with the live file last; it stops at the first
//! rotation that is older than the window, judged by its modification time first (a rotated
//! file's mtime is the time of its last write; logrotate keeps it when compressing) and then
//! by its last line. [`open_part`] opens one of them at the window start: plain files seek
//! there with [`crate::window::window_start`], gzip files stream through
//! [`flate2::read::MultiGzDecoder`] and skip the older lines. [`HistoryReader`] chains the
//! parts into one [`BufRead`] and keeps what went wrong with each part ([`PartError`]) as
//! notes, so that a damaged rotation never stops the scan of the others.
//!
//! Only regular files are read (never a FIFO or a device such as `/dev/stderr`, which could
//! block), nothing is memory-mapped, and every buffer is bounded.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;
use jiff::SignedDuration;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::window::{DISORDER, STAMP_SCAN, Stamp, last_time, line_time, window_start};

/// Most directory entries looked at when listing rotations.
const MAX_DIR_ENTRIES: usize = 100_000;
/// Most rotations kept (the newest).
const MAX_ROTATIONS: usize = 1000;
/// Gzip rotations up to this compressed size are decompressed to learn their newest line
/// (while deciding whether the window reaches them); larger ones are judged by mtime only.
const GZ_PEEK_MAX: u64 = 1024 * 1024;
/// Buffer of a [`PartReader`]; larger than [`STAMP_SCAN`], so a line's time is always seen
/// whole.
const READ_BUF: usize = 64 * 1024;
/// Retries of a read interrupted by a signal.
const EINTR_RETRIES: u32 = 64;

/// One file of a log's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPart {
    /// The file.
    pub path: PathBuf,
    /// The file is gzip-compressed (by its content, not its name).
    pub gzip: bool,
    /// The newest time among its last lines, when that was cheap to learn (the end of a
    /// plain file; a small gzip file read whole). `None` otherwise.
    pub newest: Option<DateTime>,
}

/// What went wrong with one part of a history. Kept as a note by [`HistoryReader`]; the
/// other parts are still read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    /// The file could not be opened (or is not a regular file).
    #[error("cannot open log {}: {error}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// Reading the file failed part-way; the lines before were read.
    #[error("cannot read log {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The gzip stream is cut short or corrupt; the lines before the damage were read.
    #[error("compressed log {} is truncated or corrupt ({error}); its later lines were skipped", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        error: io::Error,
    },
}

impl PartError {
    /// The file the note is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. } | Self::Read { path, .. } | Self::Gzip { path, .. } => path,
        }
    }

    /// True for a gzip file that is cut short or corrupt (input partly skipped).
    #[must_use]
    pub fn is_damaged_gzip(&self) -> bool {
        matches!(self, Self::Gzip { .. })
    }
}

/// `path` plus its rotations that may hold lines at or after `since`, oldest first, the
/// live file last (when it exists).
///
/// Rotations are the regular files next to `path` named `<name>.N` or `<name>.N.gz`
/// (logrotate, newsyslog; `N` from 0, higher is older) and `<name>-DIGITS[-DIGITS][.gz]`
/// (logrotate's `dateext`, e.g. `error.log-20261123`, newer dates are newer); when both
/// schemes occur, the scheme with the newer files comes first. Walking from the newest
/// rotation back, the first one whose mtime, or else whose newest line, is older than the
/// window (by more than [`DISORDER`]) ends the list: it and everything older are left out.
/// With `since` `None` every rotation is listed. Other compressions (`.bz2`, `.xz`, `.zst`)
/// are not listed.
///
/// mtimes are read in the system time zone, as nginx writes its local time; when the live
/// file's last line is later than its mtime (nginx runs in another time zone), every mtime
/// is moved later by the difference, so the comparison stays on the safe side.
///
/// # Errors
///
/// When `path` exists but is not a regular file, when neither it nor any rotation exists
/// (`NotFound`), or when its metadata cannot be read. Problems with single rotations are not
/// errors: such a rotation is listed, and [`open_part`] reports them.
pub fn history(path: &Path, since: Option<DateTime>, stamp: Stamp) -> io::Result<Vec<LogPart>> {
    history_with(path, since, stamp, GZ_PEEK_MAX)
}

/// [`history`] with the gzip peek limit as a parameter (for tests).
fn history_with(
    path: &Path,
    since: Option<DateTime>,
    stamp: Stamp,
    gz_peek_max: u64,
) -> io::Result<Vec<LogPart>> {
    let live = match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Some(meta),
        Ok(_) => return Err(not_regular(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let rotations = list_rotations(path);
    if live.is_none() && rotations.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no log at {} and no rotation of it", path.display()),
        ));
    }
    let tz = TimeZone::system();
    let live = live.map(|meta| (describe(path, &meta, stamp, 0), meta));
    // How far the log's clock runs ahead of mtimes read in our time zone (never negative).
    let ahead = live
        .as_ref()
        .and_then(|(part, meta)| {
            let mtime = civil_mtime(meta.modified().ok()?, &tz)?;
            Some(part.newest?.duration_since(mtime))
        })
        .filter(|d| d.is_positive())
        .unwrap_or(SignedDuration::ZERO);
    let cutoff = since.map(|s| s.saturating_sub(DISORDER));
    let peek = if since.is_some() { gz_peek_max } else { 0 };

    let mut parts = Vec::new();
    for rotation in rotations {
        if let Some(cutoff) = cutoff {
            let bound = rotation
                .mtime
                .and_then(|m| civil_mtime(m, &tz))
                .map(|m| m.saturating_add(ahead));
            if bound.is_some_and(|b| b < cutoff) {
                tracing::debug!(path = %rotation.path.display(), "log rotation older than the window (mtime)");
                break;
            }
        }
        let part = describe(&rotation.path, &rotation.meta, stamp, peek);
        if let Some(cutoff) = cutoff
            && part.newest.is_some_and(|n| n < cutoff)
        {
            tracing::debug!(path = %part.path.display(), "log rotation older than the window (last line)");
            break;
        }
        parts.push(part);
    }
    parts.reverse();
    parts.extend(live.map(|(part, _)| part));
    Ok(parts)
}

/// The error for a path that is not a regular file.
fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not a regular file", path.display()),
    )
}

/// A file's mtime as a civil time in `tz`.
fn civil_mtime(mtime: SystemTime, tz: &TimeZone) -> Option<DateTime> {
    let ts = jiff::Timestamp::try_from(mtime).ok()?;
    Some(tz.to_datetime(ts))
}

/// The part for `path`: whether it is gzip, and its newest time when cheap (plain files:
/// their end; gzip files up to `gz_peek_max` compressed bytes: read whole).
fn describe(path: &Path, meta: &Metadata, stamp: Stamp, gz_peek_max: u64) -> LogPart {
    let mut part = LogPart {
        path: path.to_owned(),
        gzip: false,
        newest: None,
    };
    let described = (|| -> io::Result<()> {
        let mut file = File::open(path)?;
        part.gzip = is_gzip(&mut file)?;
        part.newest = if !part.gzip {
            last_time(&mut file, meta.len(), stamp)?
        } else if meta.len() <= gz_peek_max {
            file.seek(SeekFrom::Start(0))?;
            newest_in_gzip(file, stamp)?
        } else {
            None
        };
        Ok(())
    })();
    if let Err(error) = described {
        tracing::debug!(path = %path.display(), %error, "cannot look into log part");
    }
    part
}

/// True when the file starts with the gzip magic bytes. Leaves the position unspecified.
fn is_gzip(file: &mut File) -> io::Result<bool> {
    let mut magic = Vec::with_capacity(2);
    file.take(2).read_to_end(&mut magic)?;
    Ok(magic == [0x1f, 0x8b])
}

/// The newest time in a whole gzip stream; `None` when it has none or is damaged (then its
/// real newest line is unknown).
fn newest_in_gzip(file: File, stamp: Stamp) -> io::Result<Option<DateTime>> {
    let mut reader = PartReader::new(
        PathBuf::new(),
        Source::Gzip(Box::new(MultiGzDecoder::new(BufReader::new(file)))),
    );
    let mut newest: Option<DateTime> = None;
    // One iteration per line; ends with the stream.
    while let Some(prefix) = reader.line_prefix()? {
        if let Some(time) = line_time(prefix, stamp) {
            newest = Some(newest.map_or(time, |n| n.max(time)));
        }
        reader.skip_line()?;
    }
    Ok(if reader.damage().is_some() {
        None
    } else {
        newest
    })
}

/// A rotation found next to the live file.
struct Rotation {
    path: PathBuf,
    meta: Metadata,
    mtime: Option<SystemTime>,
}

/// How a rotation is named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RotationName {
    /// `<name>.N[.gz]`: smaller is newer.
    Numbered(u32),
    /// `<name>-DIGITS[-DIGITS...][.gz]`: larger is newer.
    Dated(Vec<u64>),
}

/// What a directory entry named `entry` is, for a live file named `base`.
fn rotation_name(base: &OsStr, entry: &OsStr) -> Option<RotationName> {
    let rest = entry
        .as_encoded_bytes()
        .strip_prefix(base.as_encoded_bytes())?;
    let rest = rest.strip_suffix(b".gz").unwrap_or(rest);
    let digits = |s: &[u8]| !s.is_empty() && s.len() <= 18 && s.iter().all(u8::is_ascii_digit);
    let value = |s: &[u8]| s.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    if let Some(n) = rest.strip_prefix(b".") {
        if !digits(n) || n.len() > 6 {
            return None;
        }
        return u32::try_from(value(n)).ok().map(RotationName::Numbered);
    }
    let dated = rest.strip_prefix(b"-")?;
    let groups: Vec<&[u8]> = dated.split(|&c| c == b'-').collect();
    if groups.len() > 4 || !groups.iter().all(|g| digits(g)) {
        return None;
    }
    Some(RotationName::Dated(groups.into_iter().map(value).collect()))
}

/// The rotations of `path`, newest first. An unreadable directory gives none (noted in a
/// trace event).
fn list_rotations(path: &Path) -> Vec<Rotation> {
    let Some(base) = path.file_name() else {
        return Vec::new();
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::debug!(dir = %dir.display(), %error, "cannot list log rotations");
            return Vec::new();
        }
    };
    let mut numbered: Vec<(RotationName, bool, Rotation)> = Vec::new();
    let mut dated: Vec<(RotationName, bool, Rotation)> = Vec::new();
    for entry in entries.take(MAX_DIR_ENTRIES).flatten() {
        let name = entry.file_name();
        let Some(kind) = rotation_name(base, &name) else {
            continue;
        };
        let path = entry.path();
        // Follows symlinks; only regular files are logs.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let gz_name = name.as_encoded_bytes().ends_with(b".gz");
        let rotation = Rotation {
            mtime: meta.modified().ok(),
            path,
            meta,
        };
        match kind {
            RotationName::Numbered(_) => numbered.push((kind, gz_name, rotation)),
            RotationName::Dated(_) => dated.push((kind, gz_name, rotation)),
        }
    }
    // Newest first; for one name with and without `.gz` (caught while compressing), the
    // plain file (complete) only.
    numbered.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    dated.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    numbered.dedup_by(|later, earlier| later.0 == earlier.0);
    dated.dedup_by(|later, earlier| later.0 == earlier.0);
    let newest_mtime =
        |list: &[(RotationName, bool, Rotation)]| list.iter().filter_map(|(_, _, r)| r.mtime).max();
    let (first, second) = if newest_mtime(&dated) > newest_mtime(&numbered) {
        (dated, numbered)
    } else {
        (numbered, dated)
    };
    first
        .into_iter()
        .chain(second)
        .map(|(_, _, rotation)| rotation)
        .take(MAX_ROTATIONS)
        .collect()
}

/// Opens one part for reading from the window start.
///
/// - Plain files: seeks to [`window_start`] and reads up to the length the file had when
///   opened (a log that keeps growing cannot keep the scan going).
/// - Gzip files: streams through [`MultiGzDecoder`] (no seeking) and skips, before
///   returning, the lines before the first one at or after `since`, with the same rule as
///   [`window_start`] (nothing is skipped when no line before it has a time). A stream cut
///   short or corrupt ends the data and is recorded: see [`PartReader::damage`].
///
/// The stream always ends with a line end (a missing final newline is supplied), so parts
/// can be read one after the other as one log (see [`HistoryReader`]).
///
/// # Errors
///
/// The file cannot be opened, is not a regular file, or cannot be read or sought.
pub fn open_part(part: &LogPart, since: Option<DateTime>, stamp: Stamp) -> io::Result<PartReader> {
    let meta = fs::metadata(&part.path)?;
    if !meta.is_file() {
        return Err(not_regular(&part.path));
    }
    let mut file = File::open(&part.path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular(&part.path));
    }
    if !part.gzip {
        let len = file.metadata()?.len();
        let start = match since {
            Some(since) => window_start(&mut file, len, since, stamp)?,
            None => 0,
        };
        file.seek(SeekFrom::Start(start))?;
        let mut reader = PartReader::new(
            part.path.clone(),
            Source::Plain(file.take(len.saturating_sub(start))),
        );
        reader.skipped = start;
        return Ok(reader);
    }
    let gzip = |file: File| Source::Gzip(Box::new(MultiGzDecoder::new(BufReader::new(file))));
    let mut reader = PartReader::new(part.path.clone(), gzip(file));
    let Some(since) = since else {
        return Ok(reader);
    };
    if !reader.skip_before(since, stamp)? {
        // Nothing older came first: read the part whole after all.
        file = File::open(&part.path)?;
        reader = PartReader::new(part.path.clone(), gzip(file));
    }
    Ok(reader)
}

/// Where a [`PartReader`] reads from.
enum Source {
    /// A plain file, limited to its length at opening.
    Plain(io::Take<File>),
    /// A gzip file, decompressed.
    Gzip(Box<MultiGzDecoder<BufReader<File>>>),
}

/// One part of a log opened by [`open_part`]: a [`BufRead`] over its lines from the window
/// start. After reading, [`PartReader::damage`] tells whether a gzip stream was cut short.
pub struct PartReader {
    path: PathBuf,
    source: Source,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    /// The source has no more data.
    done: bool,
    /// The last byte handed out, to supply a missing final newline.
    last: Option<u8>,
    damage: Option<io::Error>,
    skipped: u64,
}

impl std::fmt::Debug for PartReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartReader")
            .field("path", &self.path)
            .field("gzip", &matches!(self.source, Source::Gzip(_)))
            .field("skipped", &self.skipped)
            .field("damage", &self.damage)
            .finish_non_exhaustive()
    }
}

impl PartReader {
    fn new(path: PathBuf, source: Source) -> Self {
        Self {
            path,
            source,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            pos: 0,
            filled: 0,
            done: false,
            last: None,
            damage: None,
            skipped: 0,
        }
    }

    /// The file being read.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes skipped before the window: the file offset of the window start for a plain
    /// file, the decompressed bytes skipped for a gzip file.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The decoder's error when the gzip stream was cut short or is corrupt: the data
    /// ended there (with the lines before it). `None` for an intact stream or a plain
    /// file. Final once the reader returned end of input.
    #[must_use]
    pub fn damage(&self) -> Option<&io::Error> {
        self.damage.as_ref()
    }

    /// True when [`PartReader::damage`] is set.
    #[must_use]
    pub fn is_truncated(&self) -> bool {
        self.damage.is_some()
    }

    /// Reads more data after the buffered bytes (moving them to the front first). Returns
    /// false at the end of the source.
    fn read_more(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.pos = 0;
        }
        let space = self.buf.get_mut(self.filled..).unwrap_or_default();
        if space.is_empty() {
            return Ok(true);
        }
        let mut result = Ok(0);
        for _ in 0..EINTR_RETRIES {
            result = match &mut self.source {
                Source::Plain(file) => file.read(space),
                Source::Gzip(decoder) => decoder.read(space),
            };
            if !matches!(&result, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
                break;
            }
        }
        match result {
            Ok(0) => self.done = true,
            Ok(n) => self.filled += n.min(space.len()),
            Err(e) if matches!(self.source, Source::Gzip(_)) && is_data_error(&e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "damaged gzip log");
                self.damage = Some(e);
                self.done = true;
            }
            Err(e) => return Err(e),
        }
        Ok(!self.done)
    }

    /// The start of the current line (up to [`STAMP_SCAN`] bytes, or to its end), or
    /// `None` at the end of input. Reads only as much as needed.
    fn line_prefix(&mut self) -> io::Result<Option<&[u8]>> {
        // Each pass adds bytes or ends the source; the buffer is larger than STAMP_SCAN.
        loop {
            let view = self.buf.get(self.pos..self.filled).unwrap_or_default();
            if view.len() >= STAMP_SCAN || memchr::memchr(b'\n', view).is_some() {
                break;
            }
            if !self.read_more()? {
                break;
            }
        }
        let view = self.buf.get(self.pos..self.filled).unwrap_or_default();
        if view.is_empty() {
            return Ok(None);
        }
        let end = memchr::memchr(b'\n', view).unwrap_or(view.len());
        Ok(view.get(..end.min(STAMP_SCAN)))
    }

    /// Consumes the current line, however long, with its line end. Returns the bytes
    /// consumed.
    fn skip_line(&mut self) -> io::Result<u64> {
        let mut consumed = 0u64;
        // Each pass consumes buffered bytes or reads more; ends at a newline or the end.
        loop {
            let view = self.buf.get(self.pos..self.filled).unwrap_or_default();
            if let Some(nl) = memchr::memchr(b'\n', view) {
                self.pos += nl + 1;
                return Ok(consumed + nl as u64 + 1);
            }
            consumed += view.len() as u64;
            self.pos = self.filled;
            if !self.read_more()? {
                return Ok(consumed);
            }
        }
    }

    /// Skips the lines before the first one with a time at or after `since`, leaving that
    /// line next. Returns false when no line with an older time came first (then the
    /// caller starts over and keeps everything).
    fn skip_before(&mut self, since: DateTime, stamp: Stamp) -> io::Result<bool> {
        let mut seen_old = false;
        // One iteration per line; ends with the stream.
        while let Some(prefix) = self.line_prefix()? {
            match line_time(prefix, stamp) {
                Some(time) if time >= since => break,
                Some(_) => seen_old = true,
                None => {}
            }
            self.skipped += self.skip_line()?;
        }
        Ok(seen_old || self.skipped == 0)
    }
}

/// Decoder errors that mean damaged input (as opposed to a failing disk).
fn is_data_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
    )
}

/// `Read::read` of a reader whose buffer is its `BufRead` side.
fn read_buffered(reader: &mut impl BufRead, out: &mut [u8]) -> io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = available.len().min(out.len());
    if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
        dst.copy_from_slice(src);
    }
    reader.consume(n);
    Ok(n)
}

impl Read for PartReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

impl BufRead for PartReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.filled {
            self.pos = 0;
            self.filled = 0;
            if !self.read_more()? && self.last.is_some_and(|b| b != b'\n') {
                // The missing final newline, so the next part starts on a new line.
                if let Some(first) = self.buf.first_mut() {
                    *first = b'\n';
                    self.filled = 1;
                }
            }
        }
        Ok(self.buf.get(self.pos..self.filled).unwrap_or_default())
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.filled.saturating_sub(self.pos));
        if amount > 0 {
            self.last = self.buf.get(self.pos + amount - 1).copied();
            self.pos += amount;
        }
    }
}

/// The parts of a history read one after the other as one log (oldest first), each from
/// the window start. A part that cannot be opened or read, or a damaged gzip part, becomes
/// a note in [`HistoryReader::issues`] and reading goes on with the next part.
///
/// ```no_run
/// use std::io::BufRead;
/// use fix502_nginx::history::{HistoryReader, history};
/// use fix502_nginx::window::Stamp;
///
/// let since = jiff::civil::date(2026, 11, 24).at(1, 0, 0, 0);
/// let parts = history("/var/log/nginx/error.log".as_ref(), Some(since), Stamp::ErrorLog)?;
/// let mut reader = HistoryReader::new(parts, Some(since), Stamp::ErrorLog);
/// let lines = (&mut reader).lines().count();
/// let skipped = reader.issues().len();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct HistoryReader {
    parts: std::vec::IntoIter<LogPart>,
    current: Option<PartReader>,
    since: Option<DateTime>,
    stamp: Stamp,
    issues: Vec<PartError>,
    skipped: u64,
}

impl HistoryReader {
    /// Reads `parts` (as listed by [`history`]) in order, each opened with [`open_part`].
    #[must_use]
    pub fn new(parts: Vec<LogPart>, since: Option<DateTime>, stamp: Stamp) -> Self {
        Self {
            parts: parts.into_iter(),
            current: None,
            since,
            stamp,
            issues: Vec::new(),
            skipped: 0,
        }
    }

    /// What went wrong so far, one note per affected part, in reading order.
    #[must_use]
    pub fn issues(&self) -> &[PartError] {
        &self.issues
    }

    /// The notes, taking them out of the reader.
    #[must_use]
    pub fn into_issues(self) -> Vec<PartError> {
        self.issues
    }

    /// Bytes skipped before the window, summed over the parts opened so far (see
    /// [`PartReader::skipped`]).
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped + self.current.as_ref().map_or(0, PartReader::skipped)
    }

    /// Ends the current part, keeping a note if its gzip stream was damaged.
    fn finish_current(&mut self) {
        if let Some(mut part) = self.current.take() {
            self.skipped += part.skipped;
            if let Some(error) = part.damage.take() {
                self.issues.push(PartError::Gzip {
                    path: part.path,
                    error,
                });
            }
        }
    }
}

impl Read for HistoryReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, out)
    }
}

impl BufRead for HistoryReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // At most two iterations per part (open it, then find it has data or is finished).
        loop {
            if let Some(part) = &mut self.current {
                match part.fill_buf() {
                    Ok(data) if !data.is_empty() => break,
                    Ok(_) => self.finish_current(),
                    Err(error) => {
                        let path = part.path.clone();
                        self.finish_current();
                        self.issues.push(PartError::Read { path, error });
                    }
                }
                continue;
            }
            let Some(next) = self.parts.next() else {
                return Ok(&[]);
            };
            match open_part(&next, self.since, self.stamp) {
                Ok(reader) => self.current = Some(reader),
                Err(error) => self.issues.push(PartError::Open {
                    path: next.path,
                    error,
                }),
            }
        }
        match &mut self.current {
            Some(part) => part.fill_buf(),
            None => Ok(&[]),
        }
    }

    fn consume(&mut self, amount: usize) {
        if let Some(part) = &mut self.current {
            part.consume(amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use jiff::civil::date;

    /// One error-log line a minute for a day from `day`.
    fn day(day: DateTime) -> (Vec<u8>, DateTime) {
        let mut text = Vec::new();
        let mut t = day;
        for _ in 0..1440 {
            let stamp = t.strftime("%Y/%m/%d %H:%M:%S");
            writeln!(text, "{stamp} [error] 7#7: *1 no live upstreams").unwrap();
            t = t.saturating_add(SignedDuration::from_secs(60));
        }
        (text, t.saturating_sub(SignedDuration::from_secs(60)))
    }

    fn put(path: &Path, data: &[u8], mtime: DateTime) {
        fs::write(path, data).unwrap();
        let ts = TimeZone::system()
            .to_zoned_datetime(mtime)
            .unwrap()
            .timestamp();
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::try_from(ts).unwrap())
            .unwrap();
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn names(parts: &[LogPart]) -> Vec<String> {
        let name = |p: &LogPart| p.path.file_name().unwrap().to_string_lossy().into_owned();
        parts.iter().map(name).collect()
    }

    #[test]
    fn large_gzip_rotations_are_judged_by_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("error.log");
        let (old, old_last) = day(date(2026, 11, 22).at(0, 0, 0, 0));
        let (new, new_last) = day(date(2026, 11, 23).at(0, 0, 0, 0));
        put(&dir.path().join("error.log.1.gz"), &gzip(&old), old_last);
        put(&live, &new, new_last);
        let hour = SignedDuration::from_secs(3600);
        // No peeking: the gzip part's newest line stays unknown and its mtime decides.
        let parts = history_with(
            &live,
            Some(old_last.saturating_sub(hour)),
            Stamp::ErrorLog,
            0,
        )
        .unwrap();
        assert_eq!(names(&parts), ["error.log.1.gz", "error.log"]);
        assert_eq!(parts[0].newest, None);
        let parts = history_with(
            &live,
            Some(old_last.saturating_add(hour)),
            Stamp::ErrorLog,
            0,
        )
        .unwrap();
        assert_eq!(names(&parts), ["error.log"]);
    }

    #[test]
    fn mtimes_move_later_when_the_log_clock_runs_ahead() {
        // nginx writes times 3 hours ahead of this machine's zone: every mtime, read in
        // our zone, is 3 hours before the file's last line.
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("error.log");
        let skew = SignedDuration::from_secs(3 * 3600);
        let (old, old_last) = day(date(2026, 11, 22).at(0, 0, 0, 0));
        let (new, new_last) = day(date(2026, 11, 23).at(0, 0, 0, 0));
        put(
            &dir.path().join("error.log.1.gz"),
            &gzip(&old),
            old_last.saturating_sub(skew),
        );
        put(&live, &new, new_last.saturating_sub(skew));
        // The gzip part has lines in the last hour of its day: it must be read.
        let since = old_last.saturating_sub(SignedDuration::from_secs(3600));
        let parts = history_with(&live, Some(since), Stamp::ErrorLog, 0).unwrap();
        assert_eq!(names(&parts), ["error.log.1.gz", "error.log"]);
        // Without the live file there is nothing to measure the skew by.
        fs::remove_file(&live).unwrap();
        let parts = history_with(&live, Some(since), Stamp::ErrorLog, 0).unwrap();
        assert!(parts.is_empty(), "{parts:?}");
    }

    fn name(base: &str, entry: &str) -> Option<RotationName> {
        rotation_name(OsStr::new(base), OsStr::new(entry))
    }

    #[test]
    fn rotation_names() {
        use RotationName::{Dated, Numbered};
        assert_eq!(name("error.log", "error.log.1"), Some(Numbered(1)));
        assert_eq!(name("error.log", "error.log.0.gz"), Some(Numbered(0)));
        assert_eq!(name("error.log", "error.log.12.gz"), Some(Numbered(12)));
        assert_eq!(
            name("error.log", "error.log-20261123"),
            Some(Dated(vec![20_261_123]))
        );
        assert_eq!(
            name("error.log", "error.log-20261123-1700000000.gz"),
            Some(Dated(vec![20_261_123, 1_700_000_000]))
        );
        for other in [
            "error.log",
            "error.log.gz",
            "error.log.1.bz2",
            "error.log.1.xz",
            "error.log.old",
            "error.log.-1",
            "error.log-",
            "error.log-2026x",
            "error.log.1234567",
            "access.log.1",
            "error.log.1.gz.tmp",
        ] {
            assert_eq!(name("error.log", other), None, "{other}");
        }
    }
}
