//! The CGI/HTTP response head as nginx reads it from a gateway (FastCGI's STDOUT, uwsgi,
//! SCGI): a resumable parser after `ngx_http_parse_header_line` (and, for uwsgi and SCGI,
//! `ngx_http_parse_status_line` on the first line), with the status nginx derives and the
//! texts of its "invalid header" and "invalid status" errors.

/// Where parsing a CGI/HTTP response head stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadState {
    /// No empty line yet.
    Incomplete,
    /// The head is complete: its length through the empty line, and the status nginx
    /// derives (status line, `Status:`, 302 for `Location:`, else 200).
    Done { len: usize, status: u16 },
    /// nginx: `upstream sent invalid header: "<text>"`.
    InvalidHeader(String),
    /// nginx: `upstream sent invalid status "<value>"`.
    InvalidStatus(String),
}

/// A resumable parser of a response head, after `ngx_http_parse_header_line` (and, for
/// uwsgi and SCGI, `ngx_http_parse_status_line` on the first line).
///
/// Feed it the whole head buffer each time it grows; it only looks at new complete lines.
#[derive(Debug, Clone)]
pub(crate) struct HeadParser {
    status_line_allowed: bool,
    pos: usize,
    first_line: bool,
    line_status: Option<u16>,
    status_value: Option<Vec<u8>>,
    location: bool,
    done: Option<HeadState>,
}

impl HeadParser {
    /// A parser; `status_line_allowed` lets the first line be `HTTP/x.y NNN ...` (uwsgi, SCGI).
    pub(crate) fn new(status_line_allowed: bool) -> Self {
        Self {
            status_line_allowed,
            pos: 0,
            first_line: true,
            line_status: None,
            status_value: None,
            location: false,
            done: None,
        }
    }

    /// Parses the complete lines of `bytes` not seen yet.
    pub(crate) fn advance(&mut self, bytes: &[u8]) -> HeadState {
        if let Some(done) = &self.done {
            return done.clone();
        }
        // Every pass consumes one line of `bytes`, so this ends.
        while let Some(rest) = bytes.get(self.pos..) {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            let raw = rest.get(..nl).unwrap_or_default();
            self.pos += nl + 1;
            let mut line = raw;
            while let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if std::mem::take(&mut self.first_line)
                && self.status_line_allowed
                && let Some(code) = http_status_line(line)
            {
                self.line_status = Some(code);
                continue;
            }
            if line.is_empty() {
                let state = self.finish();
                self.done = Some(state.clone());
                return state;
            }
            match header_line(line) {
                Err(text) => {
                    let state = HeadState::InvalidHeader(text);
                    self.done = Some(state.clone());
                    return state;
                }
                Ok(None) => {}
                Ok(Some((name, value))) => {
                    if name.eq_ignore_ascii_case(b"status") && self.status_value.is_none() {
                        self.status_value = Some(value.get(..256).unwrap_or(value).to_vec());
                    } else if name.eq_ignore_ascii_case(b"location") {
                        self.location = true;
                    }
                }
            }
        }
        HeadState::Incomplete
    }

    fn finish(&self) -> HeadState {
        let len = self.pos;
        if let Some(status) = self.line_status {
            return HeadState::Done { len, status };
        }
        if let Some(value) = &self.status_value {
            // nginx: ngx_atoi() on exactly the first three bytes.
            return match value.first_chunk::<3>() {
                Some(digits) if digits.iter().all(u8::is_ascii_digit) => HeadState::Done {
                    len,
                    status: digits
                        .iter()
                        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
                },
                _ => HeadState::InvalidStatus(String::from_utf8_lossy(value).into_owned()),
            };
        }
        let status = if self.location { 302 } else { 200 };
        HeadState::Done { len, status }
    }
}

/// `HTTP/<major>.<minor> <3 digits>` followed by a space, `.`, or the end of the line.
fn http_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/")?;
    let major_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if major_len == 0 || rest.first() == Some(&b'0') || major_len > 3 {
        return None;
    }
    let rest = rest.get(major_len..)?.strip_prefix(b".")?;
    let minor_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if minor_len == 0 || minor_len > 3 {
        return None;
    }
    let rest = rest.get(minor_len..)?.strip_prefix(b" ")?;
    let rest = rest.trim_ascii_start();
    let digits = rest.first_chunk::<3>()?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match rest.get(3) {
        None | Some(b' ' | b'.') => {}
        Some(_) => return None,
    }
    Some(
        digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
    )
}

/// A header line's name and value.
type Header<'a> = (&'a [u8], &'a [u8]);

/// Checks one header line (without its line end) as nginx does. Returns the name and the
/// trimmed value, `None` for a line nginx ignores (`HTTP/...` inside the head), or nginx's
/// invalid-header text: the bytes before the bad one and the bad one in hex.
fn header_line(line: &[u8]) -> Result<Option<Header<'_>>, String> {
    let invalid = |at: usize| {
        let before = line.get(..at).unwrap_or_default();
        let before = before.get(..200).unwrap_or(before);
        let bad = line.get(at).copied().unwrap_or(0);
        format!("{}\\x{bad:02x}...", String::from_utf8_lossy(before))
    };
    let colon = line.iter().position(|&b| b == b':');
    let name = line.get(..colon.unwrap_or(line.len())).unwrap_or_default();
    for (i, &b) in name.iter().enumerate() {
        if i == 4 && b == b'/' && name.starts_with(b"HTTP") {
            return Ok(None);
        }
        if b <= 0x20 || b == 0x7f {
            return Err(invalid(i));
        }
    }
    if colon == Some(0) {
        return Err(invalid(0));
    }
    let Some(colon) = colon else {
        // A line without a colon is a header with an empty value to nginx.
        return Ok(Some((name, b"")));
    };
    let value = line.get(colon + 1..).unwrap_or_default();
    if let Some(bad) = value.iter().position(|&b| b == 0 || b == b'\r') {
        return Err(invalid(colon + 1 + bad));
    }
    Ok(Some((name, value.trim_ascii())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_heads_are_judged_like_nginx() {
        let parse = |bytes: &[u8], status_line| HeadParser::new(status_line).advance(bytes);
        assert_eq!(
            parse(
                b"Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nx",
                false
            ),
            HeadState::Done {
                len: 50,
                status: 404
            }
        );
        assert_eq!(
            parse(b"Location: /x\n\n", false),
            HeadState::Done {
                len: 14,
                status: 302
            }
        );
        assert_eq!(
            parse(b"X-A: 1\n\n", false),
            HeadState::Done {
                len: 8,
                status: 200
            }
        );
        assert_eq!(
            parse(b"Status: OK\r\n\r\n", false),
            HeadState::InvalidStatus("OK".to_owned())
        );
        assert_eq!(
            parse(b"Status: 20\r\n\r\n", false),
            HeadState::InvalidStatus("20".to_owned())
        );
        assert_eq!(
            parse(b"Content Type: text/html\r\n\r\n", false),
            HeadState::InvalidHeader("Content\\x20...".to_owned())
        );
        assert_eq!(
            parse(b" folded\r\n\r\n", false),
            HeadState::InvalidHeader("\\x20...".to_owned())
        );
        assert_eq!(
            parse(b"X-A: a\0b\r\n\r\n", false),
            HeadState::InvalidHeader("X-A: a\\x00...".to_owned())
        );
        assert_eq!(parse(b"X-A: 1\r\n", false), HeadState::Incomplete);
        // A status line counts for uwsgi and SCGI; in FastCGI nginx skips "HTTP/" lines.
        assert_eq!(
            parse(b"HTTP/1.1 503 Busy\r\nStatus: 200\r\n\r\n", true),
            HeadState::Done {
                len: 34,
                status: 503
            }
        );
        assert_eq!(
            parse(b"HTTP/1.1 503 Busy\r\n\r\n", false),
            HeadState::Done {
                len: 21,
                status: 200
            }
        );
        // Fed one byte at a time, the parser reaches the same verdict.
        let head = b"Status: 201 Created\r\nX-B: 2\r\n\r\nbody";
        let mut parser = HeadParser::new(false);
        let mut state = HeadState::Incomplete;
        for end in 1..=head.len() {
            state = parser.advance(&head[..end]);
            if state != HeadState::Incomplete {
                break;
            }
        }
        assert_eq!(
            state,
            HeadState::Done {
                len: 31,
                status: 201
            }
        );
    }
}
