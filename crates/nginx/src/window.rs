//! Finding where a `--since` window starts in a log file without reading the whole file.
//!
//! Logs are written in time order, so [`window_start`] bisects on the timestamps of lines
//! read at a few seek positions: O(log n) small reads instead of a full scan. It tolerates
//! lines without a timestamp (continuation lines, garbage), small disorder between lines
//! written by different workers ([`DISORDER`]), very long lines, invalid UTF-8 and a file
//! that shrinks while it is read (`copytruncate`). When a read budget runs out it answers
//! with an earlier offset, never a later one: the caller then scans a little more, but no
//! line of the window is skipped.
//!
//! [`line_time`] is the byte-level timestamp parser for the three formats ([`Stamp`]);
//! [`last_time`] reads the newest timestamp at the end of a file. This module only reads;
//! the scanners ([`crate::logscan`], [`crate::accesslog`]) seek to the offset it returns.
//! Files are read with plain `read`/`seek`, never memory-mapped: a live log truncated by
//! `copytruncate` under a mapping raises `SIGBUS`.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::ControlFlow;

use jiff::SignedDuration;
use jiff::civil::DateTime;

/// Which timestamp format the lines of a log carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stamp {
    /// The error log: `YYYY/MM/DD HH:MM:SS` at the start of the line, or right after a
    /// container log prefix (`docker compose`, `docker logs --timestamps`, CRI).
    ErrorLog,
    /// An access log with `$time_local`: the first `[dd/Mon/yyyy:HH:MM:SS +zzzz]` in the
    /// line. The offset must be well-formed but is not applied (the time as written, like
    /// [`crate::accesslog`]).
    AccessLog,
    /// An access log with `$time_iso8601` (`YYYY-MM-DDTHH:MM:SS+zz:zz`): the first such
    /// time in the line, at its start or after a non-digit (a field, a quote, `time=`). The
    /// offset is not applied.
    Iso8601,
}

/// How far two lines may be out of time order and still count as in order. Lines of
/// different workers are written with each worker's cached time, so a line can carry a
/// time a few seconds older than the line before it.
pub const DISORDER: SignedDuration = SignedDuration::from_secs(30);

/// Where in a line a timestamp is looked for: the first this many bytes.
pub const STAMP_SCAN: usize = 4096;

/// The first read of a walk; later reads double up to [`BLOCK`].
const FIRST_READ: usize = 4096;
/// The largest single read.
const BLOCK: usize = 64 * 1024;
/// Most bytes one bisection probe reads looking for a line with a timestamp.
const PROBE_BUDGET: u64 = 64 * 1024;
/// Bisection stops when the window start is known to lie in a range this small.
const GAP: u64 = 16 * 1024;
/// Most bytes the final forward scan reads (the last gap plus [`DISORDER`]'s worth of
/// lines); past it the answer is the last out-of-window line found (an earlier offset).
const LINEAR_BUDGET: u64 = 4 * 1024 * 1024;
/// Most bisection steps: two per halving of a 64-bit range, with room to spare.
const MAX_PROBES: u32 = 160;
/// Most bytes [`last_time`] reads from the end of a file.
const TAIL_BUDGET: u64 = 256 * 1024;

/// The byte offset of the first line whose time is at or after `since`, found by bisecting
/// on timestamps read at seek positions (the log is in time order).
///
/// - Reads O(log n) small blocks, never the whole file; see the module documentation.
/// - Returns `0` when the first line with a timestamp is already in the window (lines
///   without one before it are kept), and when no line has a timestamp at all (the caller
///   then scans everything). Returns the file length when every line is older.
/// - Otherwise returns the start of the first line with a timestamp at or after `since`;
///   lines without a timestamp right before it (continuations of the older line before
///   them) are skipped with that line.
/// - `len` is the length the caller saw (e.g. from `stat`); a file that is now shorter
///   (truncated by `copytruncate`) is clamped to its current length, and a file that grew
///   is read only up to `len`.
/// - Lines out of order by at most [`DISORDER`] do not change the answer. When a bounded
///   read runs out (a line of many megabytes, a long run of lines without a timestamp),
///   the answer is an earlier line start: never one after a line of the window.
///
/// The position of `file` afterwards is unspecified: seek to the returned offset.
///
/// # Errors
///
/// I/O errors of `file` (a read that returns fewer bytes than expected is not an error:
/// the file is then treated as ending there).
pub fn window_start(
    file: &mut (impl Read + Seek),
    len: u64,
    since: DateTime,
    stamp: Stamp,
) -> io::Result<u64> {
    let len = len.min(file.seek(SeekFrom::End(0))?);
    if len == 0 {
        return Ok(0);
    }
    // Lines older than `target` are out of the window, and so is every line before them,
    // however the lines around them are out of order.
    let target = since.saturating_sub(DISORDER);

    // The common case of a window reaching back past the start of the file: one read.
    let first = first_stamped(file, 0, len, len, stamp)?;
    if first.is_some_and(|(_, time)| time >= since) {
        return Ok(0);
    }
    // Invariant: no line that starts before `lo` is in the window.
    let mut lo = first.map_or(0, |(start, _)| start);
    // Where the bisection still looks: the window starts before `hi` if the probes were right.
    let mut hi = len;
    for _ in 0..MAX_PROBES {
        if hi.saturating_sub(lo) <= GAP {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match first_stamped(file, mid, hi, len, stamp)? {
            Some((start, time)) if time < target => lo = start,
            Some((start, _)) => hi = start,
            // Nothing readable there: look earlier (the forward scan covers the rest).
            None => hi = mid,
        }
    }

    // Forward from `lo` to the first line of the window.
    let mut seen_old = false;
    let mut last_old = lo;
    let mut found = None;
    let end = walk(
        file,
        lo,
        true,
        len,
        len,
        LINEAR_BUDGET,
        stamp,
        |start, time| {
            if time >= since {
                found = Some(start);
                return ControlFlow::Break(());
            }
            seen_old = true;
            last_old = start;
            ControlFlow::Continue(())
        },
    )?;
    let offset = match (found, end) {
        (Some(start), _) if seen_old => start,
        // Nothing older before the first line of the window.
        (Some(_), _) => 0,
        (None, WalkEnd::End) if seen_old => len,
        // No timestamp anywhere: let the caller see everything.
        (None, WalkEnd::End) => 0,
        // Out of budget: the last line known to be out of the window.
        (None, _) => last_old,
    };
    tracing::trace!(len, offset, "log window start");
    Ok(offset)
}

/// The newest time among the last lines of a file (the largest timestamp in its last
/// block that has any), or `None` when its last 256 KiB hold no timestamp. Reads only the
/// end of the file.
///
/// # Errors
///
/// I/O errors of `file`.
pub fn last_time(
    file: &mut (impl Read + Seek),
    len: u64,
    stamp: Stamp,
) -> io::Result<Option<DateTime>> {
    let len = len.min(file.seek(SeekFrom::End(0))?);
    let mut end = len;
    let mut newest = None;
    // Blocks backwards from the end until one has a timestamp; at most TAIL_BUDGET bytes.
    for _ in 0..TAIL_BUDGET / BLOCK as u64 {
        if end == 0 {
            break;
        }
        let from = end.saturating_sub(BLOCK as u64);
        // Lines that start in [from, end); the first one may have started earlier (then
        // `walk` skips it, unless `from` is 0).
        walk(
            file,
            from,
            from == 0,
            end,
            len,
            BLOCK as u64 * 2,
            stamp,
            |_, time| {
                newest = Some(newest.map_or(time, |n: DateTime| n.max(time)));
                ControlFlow::Continue(())
            },
        )?;
        if newest.is_some() {
            break;
        }
        end = from;
    }
    Ok(newest)
}

/// The time written in `line` in the format `stamp` (see [`Stamp`]), looking at its first
/// [`STAMP_SCAN`] bytes. `None` when there is no valid time (continuation lines, garbage,
/// another format).
///
/// A fixed-width byte parser validated by jiff; usable on any bytes (no UTF-8 needed).
#[must_use]
pub fn line_time(line: &[u8], stamp: Stamp) -> Option<DateTime> {
    let line = line.get(..STAMP_SCAN).unwrap_or(line);
    match stamp {
        Stamp::ErrorLog => error_log_time(line),
        Stamp::AccessLog => memchr::memchr_iter(b'[', line).find_map(|open| {
            let time = time_local(line.get(open + 1..open + 1 + TIME_LOCAL_LEN)?)?;
            (line.get(open + 1 + TIME_LOCAL_LEN) == Some(&b']')).then_some(time)
        }),
        Stamp::Iso8601 => memchr::memchr_iter(b'T', line).find_map(|t| {
            let start = t.checked_sub(10)?;
            let before = start.checked_sub(1).and_then(|i| line.get(i));
            if before.is_some_and(u8::is_ascii_digit) {
                return None;
            }
            iso_time(line.get(start..start + 19)?)
        }),
    }
}

/// Length of `$time_local`: `24/Nov/2026:10:00:01 +0000`.
const TIME_LOCAL_LEN: usize = 26;
/// Month abbreviations as nginx writes them (always English).
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `YYYY/MM/DD HH:MM:SS` at the start of `b`, after a container log prefix if it has one
/// ([`crate::errorlog::strip_container_prefix`]).
fn error_log_time(b: &[u8]) -> Option<DateTime> {
    let b = crate::errorlog::strip_container_prefix(b);
    fixed_time(b.get(..19)?, [b'/', b'/', b' ', b':', b':'])
}

/// `YYYY-MM-DDTHH:MM:SS`, exactly 19 bytes.
fn iso_time(b: &[u8]) -> Option<DateTime> {
    fixed_time(b, [b'-', b'-', b'T', b':', b':'])
}

/// `YYYY?MM?DD?HH?MM?SS` with the given five separators, exactly 19 bytes.
fn fixed_time(b: &[u8], separators: [u8; 5]) -> Option<DateTime> {
    let at = [4, 7, 10, 13, 16];
    if b.len() != 19
        || at
            .iter()
            .zip(separators)
            .any(|(&i, c)| b.get(i) != Some(&c))
    {
        return None;
    }
    civil(
        number(b, 0, 4)?,
        number(b, 5, 7)?,
        number(b, 8, 10)?,
        number(b, 11, 13)?,
        number(b, 14, 16)?,
        number(b, 17, 19)?,
    )
}

/// `dd/Mon/yyyy:HH:MM:SS +zzzz`, exactly 26 bytes; the offset is checked, not applied.
fn time_local(b: &[u8]) -> Option<DateTime> {
    let seps = [(2, b'/'), (6, b'/'), (11, b':'), (14, b':'), (17, b':')];
    if b.len() != TIME_LOCAL_LEN
        || seps.iter().any(|&(i, c)| b.get(i) != Some(&c))
        || !matches!(b.get(20..22), Some(b" +" | b" -"))
    {
        return None;
    }
    number(b, 22, 26)?;
    let name = b.get(3..6)?;
    let month = MONTHS.iter().position(|m| m.as_slice() == name)?;
    civil(
        number(b, 7, 11)?,
        i32::try_from(month + 1).ok()?,
        number(b, 0, 2)?,
        number(b, 12, 14)?,
        number(b, 15, 17)?,
        number(b, 18, 20)?,
    )
}

/// The decimal number written in `b[from..to]` (digits only).
fn number(b: &[u8], from: usize, to: usize) -> Option<i32> {
    b.get(from..to)?.iter().try_fold(0i32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
    })
}

/// A validated civil date and time.
fn civil(year: i32, month: i32, day: i32, hour: i32, min: i32, sec: i32) -> Option<DateTime> {
    DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(hour).ok()?,
        i8::try_from(min).ok()?,
        i8::try_from(sec).ok()?,
        0,
    )
    .ok()
}

/// The first line with a timestamp that starts at or after `from` and before `stop`:
/// its start offset and time. `None` when there is none within [`PROBE_BUDGET`] bytes.
fn first_stamped(
    file: &mut (impl Read + Seek),
    from: u64,
    stop: u64,
    len: u64,
    stamp: Stamp,
) -> io::Result<Option<(u64, DateTime)>> {
    let mut found = None;
    walk(
        file,
        from,
        from == 0,
        stop,
        len,
        PROBE_BUDGET,
        stamp,
        |start, time| {
            found = Some((start, time));
            ControlFlow::Break(())
        },
    )?;
    Ok(found)
}

/// Why [`walk`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkEnd {
    /// The visitor asked to stop.
    Stopped,
    /// It reached `stop` or the end of the file.
    End,
    /// It read its whole budget.
    Budget,
}

/// Where [`walk`] is in its buffer.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// A line starts at this index of the buffer.
    LineAt(usize),
    /// Inside a line (from an unaligned start, or past a long line's timestamp): the next
    /// line starts after the next `\n`.
    Skipping,
}

/// Reads forward from `from` and calls `visit(start, time)` for each line with a timestamp
/// that starts before `stop`, in file order. If `aligned`, `from` is a line start;
/// otherwise the first line considered is the first one starting at or after `from`.
/// Reads at most `budget` bytes and never past `len`; memory stays under
/// [`STAMP_SCAN`] + [`BLOCK`] whatever the line lengths.
#[expect(
    clippy::too_many_arguments,
    reason = "a private helper with two callers"
)]
fn walk(
    file: &mut (impl Read + Seek),
    from: u64,
    aligned: bool,
    stop: u64,
    len: u64,
    budget: u64,
    stamp: Stamp,
    mut visit: impl FnMut(u64, DateTime) -> ControlFlow<()>,
) -> io::Result<WalkEnd> {
    // From one byte early when unaligned: if that byte is `\n`, `from` is a line start.
    let read_from = if aligned {
        from
    } else {
        from.saturating_sub(1)
    };
    let mut cursor = if aligned || from == 0 {
        Cursor::LineAt(0)
    } else {
        Cursor::Skipping
    };
    file.seek(SeekFrom::Start(read_from))?;
    let mut left = len.saturating_sub(read_from);
    let mut spent = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(FIRST_READ);
    let mut base = read_from; // file offset of buf[0]
    let mut eof = false;
    let mut next_read = FIRST_READ;
    // Each iteration handles one line, or reads bytes, or returns; reads are limited by
    // `budget` and each one either adds a byte or marks the end, so the loop ends.
    loop {
        match cursor {
            Cursor::Skipping => {
                if let Some(nl) = memchr::memchr(b'\n', &buf) {
                    cursor = Cursor::LineAt(nl + 1);
                    continue;
                }
                base += buf.len() as u64;
                buf.clear();
                if eof {
                    return Ok(WalkEnd::End);
                }
            }
            Cursor::LineAt(at) => {
                let start = base + at as u64;
                let rest = buf.get(at..).unwrap_or_default();
                if start >= stop || (eof && rest.is_empty()) {
                    return Ok(WalkEnd::End);
                }
                let newline = memchr::memchr(b'\n', rest);
                // A whole line, the last line, or the start of a long line: enough to
                // read its time.
                if newline.is_some() || eof || rest.len() >= STAMP_SCAN {
                    let line = newline.and_then(|nl| rest.get(..nl)).unwrap_or(rest);
                    if let Some(time) = line_time(line, stamp)
                        && visit(start, time).is_break()
                    {
                        return Ok(WalkEnd::Stopped);
                    }
                    match newline {
                        Some(nl) => {
                            cursor = Cursor::LineAt(at + nl + 1);
                            continue;
                        }
                        None if eof => return Ok(WalkEnd::End),
                        None => {
                            // The rest of a long line is skipped, never buffered.
                            cursor = Cursor::Skipping;
                            base += buf.len() as u64;
                            buf.clear();
                        }
                    }
                } else {
                    // Keep the partial line at the front of the buffer and read more.
                    buf.drain(..at);
                    base = start;
                    cursor = Cursor::LineAt(0);
                }
            }
        }
        if spent >= budget {
            return Ok(WalkEnd::Budget);
        }
        let want = next_read.min(usize::try_from(left.min(budget - spent)).unwrap_or(BLOCK));
        let got = read_some(file, &mut buf, want)?;
        eof = got == 0;
        spent += got as u64;
        left = left.saturating_sub(got as u64);
        next_read = (next_read * 2).min(BLOCK);
    }
}

/// Appends at most `want` bytes read from `file` to `buf` with one successful `read`;
/// returns how many (0 at the end of the file or when `want` is 0).
fn read_some(file: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    let old = buf.len();
    buf.resize(old + want, 0);
    // Retries only after EINTR, a bounded number of times.
    let mut result = Ok(0);
    for _ in 0..64 {
        result = file.read(buf.get_mut(old..).unwrap_or_default());
        if !matches!(&result, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
            break;
        }
    }
    let got = match result {
        Ok(n) => n.min(want),
        Err(e) => {
            buf.truncate(old);
            return Err(e);
        }
    };
    buf.truncate(old + got);
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn parses_the_three_formats() {
        let t = date(2026, 11, 24).at(2, 11, 50, 0);
        let error = b"2026/11/24 02:11:50 [error] 1#0: *1 connect() failed";
        assert_eq!(line_time(error, Stamp::ErrorLog), Some(t));
        let access = b"10.0.0.1 - [x] [24/Nov/2026:02:11:50 +0100] \"GET / HTTP/1.1\" 502 0";
        assert_eq!(line_time(access, Stamp::AccessLog), Some(t));
        let iso = b"{\"time\":\"2026-11-24T02:11:50+00:00\",\"status\":502}";
        assert_eq!(line_time(iso, Stamp::Iso8601), Some(t));
        assert_eq!(
            line_time(b"2026-11-24T02:11:50Z x", Stamp::Iso8601),
            Some(t)
        );
        assert_eq!(line_time(b"id=12026-11-24T02:11:50", Stamp::Iso8601), None);
    }

    #[test]
    fn rejects_invalid_times() {
        assert_eq!(
            line_time(b"2026/02/30 02:11:50 [error]", Stamp::ErrorLog),
            None
        );
        assert_eq!(
            line_time(b"2026/11/24 24:00:00 [error]", Stamp::ErrorLog),
            None
        );
        assert_eq!(line_time(b"2026/11/24 02:11", Stamp::ErrorLog), None);
        assert_eq!(line_time(b"\xff\xfe/11/24 02:11:50", Stamp::ErrorLog), None);
        assert_eq!(
            line_time(b"[24/Foo/2026:02:11:50 +0000]", Stamp::AccessLog),
            None
        );
        assert_eq!(
            line_time(b"[24/Nov/2026:02:11:50 +0000", Stamp::AccessLog),
            None
        );
        assert_eq!(
            line_time(b"[24/Nov/2026:02:11:50 0000]", Stamp::AccessLog),
            None
        );
        assert_eq!(line_time(b"", Stamp::Iso8601), None);
        assert_eq!(line_time(b"T", Stamp::Iso8601), None);
    }

    #[test]
    fn time_beyond_the_scanned_prefix_is_not_found() {
        let mut line = vec![b'x'; STAMP_SCAN];
        line.extend_from_slice(b" [24/Nov/2026:02:11:50 +0000]");
        assert_eq!(line_time(&line, Stamp::AccessLog), None);
    }
}
