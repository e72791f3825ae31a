//! Reading log files line by line without trusting them: lines are read with a cap (a longer
//! line is consumed but not kept), and a group keeps a bounded set of sample lines. Shared by
//! the error-log ([`crate::logscan`]) and access-log ([`crate::accesslog`]) scanners.
//!
//! Two readers: [`read_line_capped`] hands out one line at a time; [`BlockReader`] hands out
//! big runs of whole lines at once, for scanners that search a block before they split it
//! into lines. Both hold at most the cap of one line plus a fixed buffer, whatever the input.
//! [`LogFileError`] is why either scanner could not read its file.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

/// Which log a [`LogFileError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogKind {
    /// An nginx error log.
    Error,
    /// An nginx access log.
    Access,
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error log",
            Self::Access => "access log",
        })
    }
}

/// Why a log file could not be scanned. The message names the kind of log and the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogFileError {
    /// The file could not be opened.
    #[error("cannot open {log} {}: {error}", path.display())]
    Open {
        /// Which log.
        log: LogKind,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// Reading (or seeking) failed part-way.
    #[error("cannot read {log} {}: {error}", path.display())]
    Read {
        /// Which log.
        log: LogKind,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The file is gzip-compressed (a rotated log such as `error.log.2.gz`).
    #[error("{log} {} is gzip-compressed; decompress it first", path.display())]
    Compressed {
        /// Which log.
        log: LogKind,
        /// The file.
        path: PathBuf,
    },
}

impl LogFileError {
    /// The file the error is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. } | Self::Read { path, .. } | Self::Compressed { path, .. } => {
                path
            }
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

/// The most bytes of one sample line kept as evidence.
pub(crate) const SAMPLE_CAP: usize = 4096;

/// Keeps the first `max - 1` lines and the latest one. `count` is the line's number in its
/// group (1-based). The latest sample's buffer is reused, so this rarely allocates.
pub(crate) fn add_sample(samples: &mut Vec<String>, raw: &str, max: usize, count: u64) {
    if max == 0 {
        return;
    }
    let raw = cap_str(raw, SAMPLE_CAP);
    let fixed = max - 1; // samples that never change
    if count <= u64::try_from(fixed).unwrap_or(u64::MAX) || samples.len() <= fixed {
        samples.push(raw.to_owned());
    } else if let Some(last) = samples.last_mut() {
        last.clear();
        last.push_str(raw);
    }
}

/// Adds a later run of `later_count` lines, with its samples (kept by [`add_sample`]), to
/// `samples` of `count` lines before them, and the count to `count`: sample i of the later
/// run is its line i + 1, its last sample its latest line. That keeps the first lines and
/// the latest one exactly as one run over both does.
pub(crate) fn replay_samples(
    (samples, count): (&mut Vec<String>, &mut u64),
    later: &[String],
    later_count: u64,
    max: usize,
) {
    for (i, sample) in later.iter().enumerate() {
        let number = if i + 1 == later.len() {
            later_count
        } else {
            i as u64 + 1
        };
        add_sample(samples, sample, max, *count + number);
    }
    *count += later_count;
}

/// `bytes` as text, borrowed when it is valid UTF-8 (checked the fast way first, as it
/// almost always is), else with U+FFFD for the invalid bytes.
pub(crate) fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub(crate) fn cap_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    // A UTF-8 character is at most 4 bytes: at most 3 steps back.
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// What [`read_line_capped`] found.
pub(crate) enum LineRead {
    /// A line is in the buffer (without its `\n` or `\r\n`).
    Line,
    /// A line longer than the cap was skipped; the buffer is empty.
    Oversized,
    /// End of input.
    Eof,
}

/// Reads one line into `buf` (without the line ending), holding at most `max` bytes of it:
/// a longer line is consumed to its end but not kept.
pub(crate) fn read_line_capped<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    let mut seen_any = false;
    let mut oversized = false;
    // Each iteration consumes at least one byte or returns, so the loop ends with the input.
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        seen_any = true;
        let newline = memchr::memchr(b'\n', available);
        let content = match newline {
            Some(at) => available.get(..at).unwrap_or(available),
            None => available,
        };
        if !oversized {
            if buf.len().saturating_add(content.len()) > max.saturating_add(1) {
                // +1: a `\r` before the `\n` may still be stripped.
                oversized = true;
                buf.clear();
            } else {
                buf.extend_from_slice(content);
            }
        }
        let used = newline.map_or(available.len(), |at| at + 1);
        reader.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if !seen_any {
        return Ok(LineRead::Eof);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    if oversized || buf.len() > max {
        buf.clear();
        return Ok(LineRead::Oversized);
    }
    Ok(LineRead::Line)
}

/// Bytes asked of the input per read by [`BlockReader`]: big enough to make system calls
/// rare, small enough for the block to stay in the CPU's cache while it is searched.
pub(crate) const BLOCK: usize = 256 * 1024;

/// What [`BlockReader::next_block`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Block<'a> {
    /// One or more whole lines. Each ends in `\n`, except the input's last line when the
    /// input does not end in one. Lines may still be longer than the cap when they fit in
    /// the buffer: the caller checks each line's length.
    Lines(&'a [u8]),
    /// One line longer than the cap was consumed without being kept.
    Oversized,
}

/// Reads an input in blocks of whole lines with a bounded buffer: [`BLOCK`] bytes plus, at
/// most, one line of `max_line` bytes. A line that outgrows the cap before its `\n` is
/// consumed and reported as [`Block::Oversized`] without being kept.
pub(crate) struct BlockReader<R> {
    reader: R,
    /// The buffer; `buf[..filled]` holds input not handed out yet (after
    /// [`BlockReader::next_block`] returns, `buf[..handed]` is the block it returned).
    buf: Vec<u8>,
    filled: usize,
    handed: usize,
    /// `buf[..searched]` is known to hold no `\n`.
    searched: usize,
    max_line: usize,
    eof: bool,
}

impl<R: Read> BlockReader<R> {
    /// A reader of `reader` whose lines longer than `max_line` bytes (without the line
    /// ending) are reported as [`Block::Oversized`] once they outgrow the buffer.
    pub(crate) fn new(reader: R, max_line: usize) -> Self {
        Self {
            reader,
            buf: vec![0; BLOCK],
            filled: 0,
            handed: 0,
            searched: 0,
            max_line,
            eof: false,
        }
    }

    /// The buffer's size: [`BLOCK`], or more only while a line up to the cap is collected.
    #[cfg(test)]
    pub(crate) fn buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// The next block; `None` at the end of the input.
    ///
    /// # Errors
    ///
    /// The input's errors, except `Interrupted`, which is retried.
    pub(crate) fn next_block(&mut self) -> io::Result<Option<Block<'_>>> {
        // Drop the block handed out last time: the partial line after it moves to the front.
        self.buf.copy_within(self.handed..self.filled, 0);
        self.filled -= self.handed;
        self.handed = 0;
        let mut skipping = false;
        // Each iteration reads once; it returns, or consumes input, or sets `eof`. Reads of
        // an endless input without a newline are discarded, so the buffer stays bounded.
        loop {
            if self.eof {
                if self.filled == 0 {
                    return Ok(None);
                }
                self.handed = self.filled;
                self.searched = 0;
                return Ok(self.buf.get(..self.filled).map(Block::Lines));
            }
            if self.filled == self.buf.len() {
                // A line up to the cap is still being collected: make room for it.
                self.buf.resize(self.buf.len().saturating_add(BLOCK), 0);
            }
            let Some(room) = self.buf.get_mut(self.filled..) else {
                return Ok(None);
            };
            let n = match self.reader.read(room) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
                if skipping {
                    return Ok(Some(Block::Oversized));
                }
                continue;
            }
            let old = self.filled;
            self.filled += n;
            if skipping {
                // Nothing of the oversized line is kept: only what follows its newline.
                let fresh = self.buf.get(old..self.filled).unwrap_or_default();
                match memchr::memchr(b'\n', fresh) {
                    Some(at) => {
                        self.buf.copy_within(old + at + 1..self.filled, 0);
                        self.filled -= old + at + 1;
                        self.searched = 0;
                        return Ok(Some(Block::Oversized));
                    }
                    None => {
                        self.filled = 0;
                        continue;
                    }
                }
            }
            let unsearched = self.buf.get(self.searched..self.filled).unwrap_or_default();
            if let Some(at) = memchr::memrchr(b'\n', unsearched) {
                self.handed = self.searched + at + 1;
                self.searched = 0;
                return Ok(self.buf.get(..self.handed).map(Block::Lines));
            }
            self.searched = self.filled;
            // +1: a `\r` before the `\n` does not count against the cap.
            if self.filled > self.max_line.saturating_add(1) {
                skipping = true;
                self.filled = 0;
                self.searched = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A reader that hands out at most `step` bytes per call, with an `Interrupted` first.
    struct Trickle {
        data: Cursor<Vec<u8>>,
        step: usize,
        interrupted: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let n = buf.len().min(self.step);
            self.data.read(&mut buf[..n])
        }
    }

    /// What a [`BlockReader`] hands out: the lines (without `\n`), `None` for oversized.
    fn collect(input: &[u8], step: usize, max: usize) -> Vec<Option<Vec<u8>>> {
        let reader = Trickle {
            data: Cursor::new(input.to_vec()),
            step,
            interrupted: false,
        };
        let mut blocks = BlockReader::new(reader, max);
        let mut out = Vec::new();
        while let Some(block) = blocks.next_block().unwrap() {
            match block {
                Block::Oversized => out.push(None),
                Block::Lines(lines) => {
                    let lines = lines.strip_suffix(b"\n").unwrap_or(lines);
                    out.extend(lines.split(|&b| b == b'\n').map(|l| Some(l.to_vec())));
                }
            }
        }
        out
    }

    /// The same with [`read_line_capped`], the line-at-a-time reader.
    fn collect_capped(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut reader = Cursor::new(input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line_capped(&mut reader, &mut buf, max).unwrap() {
                LineRead::Eof => return out,
                LineRead::Oversized => out.push(None),
                LineRead::Line => out.push(Some(buf.clone())),
            }
        }
    }

    /// Block lines, judged like [`read_line_capped`]: `\r` stripped, longer than `max` is
    /// oversized.
    fn judged(lines: Vec<Option<Vec<u8>>>, max: usize) -> Vec<Option<Vec<u8>>> {
        lines
            .into_iter()
            .map(|line| {
                let mut line = line?;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                (line.len() <= max).then_some(line)
            })
            .collect()
    }

    #[test]
    fn blocks_hold_the_same_lines_as_the_line_reader() {
        let long = "L".repeat(5000);
        let inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            b"a\nb\r\n\nc".to_vec(),
            b"a\nb\n".to_vec(),
            format!("x\n{long}\ny\n{long}").into_bytes(),
            format!("{long}\r\n{long}\n").into_bytes(),
            format!("{long}{long}\nshort\nlines\nafter\n").into_bytes(),
        ];
        for input in &inputs {
            for max in [0, 1, 10, 4999, 5000, 5001, 100_000, usize::MAX] {
                let expected = collect_capped(input, max);
                for step in [1, 3, 700, BLOCK * 2] {
                    let got = judged(collect(input, step, max), max);
                    assert_eq!(got, expected, "max {max} step {step}");
                }
            }
        }
    }

    #[test]
    fn an_oversized_line_is_dropped_as_it_streams() {
        // 3 MB without a newline, then lines in the same reads as its end.
        let mut input = vec![b'x'; 3 * 1024 * 1024];
        input.extend_from_slice(b"\nnext\nlast");
        let mut blocks = BlockReader::new(Cursor::new(input), 1000);
        assert_eq!(blocks.next_block().unwrap(), Some(Block::Oversized));
        assert_eq!(blocks.buffer_len(), BLOCK);
        assert_eq!(
            blocks.next_block().unwrap(),
            Some(Block::Lines(&b"next\nlast"[..]))
        );
        assert_eq!(blocks.next_block().unwrap(), None);
        assert_eq!(blocks.next_block().unwrap(), None);
    }

    #[test]
    fn the_buffer_grows_only_for_a_long_line_within_the_cap() {
        let mut input = vec![b'y'; 3 * BLOCK];
        input.push(b'\n');
        let mut blocks = BlockReader::new(Cursor::new(input), 4 * BLOCK);
        match blocks.next_block().unwrap() {
            Some(Block::Lines(line)) => assert_eq!(line.len(), 3 * BLOCK + 1),
            other => panic!("{other:?}"),
        }
        assert!(blocks.buffer_len() <= 4 * BLOCK, "{}", blocks.buffer_len());
    }

    #[test]
    fn read_errors_are_returned() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut blocks = BlockReader::new(Broken, 10);
        let err = blocks.next_block().unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }
}
