//! Reading log files line by line without trusting them: lines are read with a cap (a longer
//! line is consumed but not kept), and a group keeps a bounded set of sample lines. Shared by
//! the error-log ([`crate::logscan`]) and access-log ([`crate::accesslog`]) scanners.

use std::io::{self, BufRead};

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
