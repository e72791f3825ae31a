//! FastCGI as nginx speaks it: a record codec, the CGI response-head parser shared with
//! [`crate::uwsgi`] and [`crate::scgi`], and two probes.
//!
//! - [`get_values`] sends the management record `FCGI_GET_VALUES` (request id 0). It runs no
//!   script, and any FastCGI server answers it, so it tells whether a port speaks FastCGI.
//! - [`request`] sends what nginx sends for a GET with `include fastcgi_params;` plus
//!   `SCRIPT_FILENAME`, and judges the answer the way `ngx_http_fastcgi_process_header`
//!   does: the same records are accepted, the same ones are fatal, and the outcome names the
//!   nginx error line it corresponds to.
//!
//! The codec is pure and bounded: it never trusts a length beyond the bytes actually
//! received, so a peer that claims 65535 bytes and sends 10 costs 10 bytes of memory.
//!
//! Observed with php-fpm 8.2 (see `tests/php_fpm.rs`): `FCGI_GET_VALUES_RESULT` carries only
//! `FCGI_MPXS_CONNS=0` (no `FCGI_MAX_CONNS` / `FCGI_MAX_REQS`), and the worker that answered
//! it then waits for a real request on the same connection (the probe closes it at once); a
//! missing script gives STDERR `Primary script unknown` and `Status: 404 Not Found`; a worker
//! killed by `request_terminate_timeout` resets the connection (104).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::connect::ConnectOutcome;
use crate::stream::{Endpoint, ReadEnd, Stream, open, read_bounded};

/// The only FastCGI protocol version, `FCGI_VERSION_1`.
pub const VERSION: u8 = 1;
/// Length of a record header.
pub const HEADER_LEN: usize = 8;
/// The most content one record can carry.
pub const MAX_CONTENT: usize = 65535;
/// The request id nginx uses for every request (one request per connection).
pub const REQUEST_ID: u16 = 1;
/// The role nginx asks for, `FCGI_RESPONDER`.
pub const ROLE_RESPONDER: u16 = 1;

/// `FCGI_BEGIN_REQUEST`.
pub const BEGIN_REQUEST: u8 = 1;
/// `FCGI_ABORT_REQUEST`.
pub const ABORT_REQUEST: u8 = 2;
/// `FCGI_END_REQUEST`.
pub const END_REQUEST: u8 = 3;
/// `FCGI_PARAMS`.
pub const PARAMS: u8 = 4;
/// `FCGI_STDIN`.
pub const STDIN: u8 = 5;
/// `FCGI_STDOUT`.
pub const STDOUT: u8 = 6;
/// `FCGI_STDERR`.
pub const STDERR: u8 = 7;
/// `FCGI_DATA`.
pub const DATA: u8 = 8;
/// `FCGI_GET_VALUES`.
pub const GET_VALUES: u8 = 9;
/// `FCGI_GET_VALUES_RESULT`.
pub const GET_VALUES_RESULT: u8 = 10;
/// `FCGI_UNKNOWN_TYPE`.
pub const UNKNOWN_TYPE: u8 = 11;

/// The record types nginx accepts in an answer to a request (anything else is
/// "invalid FastCGI record type").
pub const RESPONSE_TYPES: &[u8] = &[STDOUT, STDERR, END_REQUEST];
/// The record types that may answer a management record.
pub const MANAGEMENT_TYPES: &[u8] = &[GET_VALUES_RESULT, UNKNOWN_TYPE];

/// How many stdout bytes [`FcgiProbe::stdout_head`] keeps.
const STDOUT_HEAD: usize = 1024;
/// How many raw bytes [`FcgiProbe::head`] keeps.
const RAW_HEAD: usize = 64;
/// How many stderr lines, and how long each, [`FcgiProbe::stderr`] keeps.
const STDERR_LINES: usize = 20;
const STDERR_LINE_LEN: usize = 512;
/// Bytes asked from one bounded read.
const WINDOW: usize = 16 * 1024;
/// After a complete head: how long, and how many more bytes, the probe reads for the
/// trailing STDERR / END_REQUEST records before it stops.
const SETTLE_TIME: Duration = Duration::from_millis(500);
const SETTLE_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Codec
// ---------------------------------------------------------------------------------------

/// The 8-byte header of a FastCGI record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Protocol version (1).
    pub version: u8,
    /// Record type, e.g. [`STDOUT`].
    pub record_type: u8,
    /// Request id; 0 for management records.
    pub request_id: u16,
    /// Content bytes that follow the header.
    pub content_length: u16,
    /// Padding bytes that follow the content.
    pub padding_length: u8,
}

impl RecordHeader {
    /// The header as it goes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type,
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_length,
            0,
        ]
    }

    /// Total bytes of the record: header, content and padding.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + usize::from(self.content_length) + usize::from(self.padding_length)
    }
}

/// One decoded record, borrowing its content from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The header.
    pub header: RecordHeader,
    /// The content (padding excluded).
    pub content: &'a [u8],
}

/// Why a byte stream is not the FastCGI nginx expects. The texts are nginx's, without
/// its "upstream sent " prefix.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DecodeError {
    /// The version byte is not 1.
    #[error("unsupported FastCGI protocol version: {0}")]
    UnsupportedVersion(u8),
    /// A record type that is not allowed here.
    #[error("invalid FastCGI record type: {0}")]
    InvalidType(u8),
    /// The request id is not the one sent (nginx checks the high byte, then the low byte).
    #[error("unexpected FastCGI request id {} byte: {value}", if *.high { "high" } else { "low" })]
    UnexpectedRequestId {
        /// True when the high byte differs, false for the low byte.
        high: bool,
        /// The byte received.
        value: u8,
    },
    /// The input ended inside a record (or inside a name-value pair).
    #[error("truncated FastCGI record")]
    Truncated,
}

/// What a decoder accepts: the request id and the record types of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The request id every record must carry.
    pub request_id: u16,
    /// The record types allowed.
    pub types: &'static [u8],
}

impl Expect {
    /// The records of an answer to request [`REQUEST_ID`], as nginx accepts them.
    pub const RESPONSE: Self = Self {
        request_id: REQUEST_ID,
        types: RESPONSE_TYPES,
    };
    /// The records of an answer to a management record (request id 0).
    pub const MANAGEMENT: Self = Self {
        request_id: 0,
        types: MANAGEMENT_TYPES,
    };
}

/// Decodes one record from the start of `bytes`.
///
/// Returns `Ok(None)` when more bytes are needed, or the record and the number of bytes it
/// took (padding included). The header is checked byte by byte in nginx's order (version,
/// type, request id high, request id low) as soon as each byte is there, so a non-FastCGI
/// peer is recognised from its first byte.
pub fn decode_record<'a>(
    bytes: &'a [u8],
    expect: &Expect,
) -> Result<Option<(Record<'a>, usize)>, DecodeError> {
    let [id_hi, id_lo] = expect.request_id.to_be_bytes();
    if let Some(&version) = bytes.first()
        && version != VERSION
    {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if let Some(&record_type) = bytes.get(1)
        && !expect.types.contains(&record_type)
    {
        return Err(DecodeError::InvalidType(record_type));
    }
    if let Some(&value) = bytes.get(2)
        && value != id_hi
    {
        return Err(DecodeError::UnexpectedRequestId { high: true, value });
    }
    if let Some(&value) = bytes.get(3)
        && value != id_lo
    {
        return Err(DecodeError::UnexpectedRequestId { high: false, value });
    }
    let Some(
        &[
            version,
            record_type,
            hi,
            lo,
            len_hi,
            len_lo,
            padding_length,
            _,
        ],
    ) = bytes.first_chunk::<HEADER_LEN>()
    else {
        return Ok(None);
    };
    let header = RecordHeader {
        version,
        record_type,
        request_id: u16::from_be_bytes([hi, lo]),
        content_length: u16::from_be_bytes([len_hi, len_lo]),
        padding_length,
    };
    let content_end = HEADER_LEN + usize::from(header.content_length);
    let (Some(content), true) = (
        bytes.get(HEADER_LEN..content_end),
        bytes.len() >= header.record_len(),
    ) else {
        return Ok(None);
    };
    Ok(Some((Record { header, content }, header.record_len())))
}

/// An incremental decoder: push bytes as they arrive, take records as they complete.
///
/// It holds only the bytes pushed and not yet taken: at most one incomplete record plus the
/// last push, whatever lengths the peer claims.
#[derive(Debug, Clone)]
pub struct Decoder {
    expect: Expect,
    buf: Vec<u8>,
    start: usize,
}

impl Decoder {
    /// A decoder for one exchange.
    pub fn new(expect: Expect) -> Self {
        Self {
            expect,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start.min(self.buf.len()));
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// True when [`Self::next_record`] would return a record or an error.
    pub fn ready(&self) -> bool {
        !matches!(decode_record(self.pending(), &self.expect), Ok(None))
    }

    /// Takes the next complete record, or `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, DecodeError> {
        let start = self.start;
        let rest = self.buf.get(start..).unwrap_or_default();
        match decode_record(rest, &self.expect)? {
            None => Ok(None),
            Some((record, used)) => {
                self.start = start + used;
                Ok(Some(record))
            }
        }
    }

    /// Call at end of input: an error if bytes of an incomplete record are left.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pending().is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Truncated)
        }
    }
}

/// Appends one record; `content` must be at most [`MAX_CONTENT`] bytes (callers split).
/// Pads to a multiple of 8 bytes, as nginx does.
fn push_record(out: &mut Vec<u8>, record_type: u8, request_id: u16, content: &[u8]) {
    let content = content.get(..MAX_CONTENT).unwrap_or(content);
    let content_length = u16::try_from(content.len()).unwrap_or(u16::MAX);
    let padding_length = ((8 - content.len() % 8) % 8) as u8;
    let header = RecordHeader {
        version: VERSION,
        record_type,
        request_id,
        content_length,
        padding_length,
    };
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(padding_length), 0);
}

/// Appends a stream (STDIN, PARAMS, ...) as records of at most [`MAX_CONTENT`] bytes, then
/// the empty record that ends the stream.
fn push_stream(out: &mut Vec<u8>, record_type: u8, request_id: u16, content: &[u8]) {
    for chunk in content.chunks(MAX_CONTENT) {
        push_record(out, record_type, request_id, chunk);
    }
    push_record(out, record_type, request_id, &[]);
}

/// `FCGI_BEGIN_REQUEST` with role RESPONDER and flags 0 (the connection is not kept).
pub fn encode_begin_request(request_id: u16) -> Vec<u8> {
    let [role_hi, role_lo] = ROLE_RESPONDER.to_be_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN * 2);
    push_record(
        &mut out,
        BEGIN_REQUEST,
        request_id,
        &[role_hi, role_lo, 0, 0, 0, 0, 0, 0],
    );
    out
}

/// Appends one name-value pair: each length in 1 byte when below 128, else in 4 bytes
/// with the high bit set. Returns false (and appends nothing) for a length of 2^31 or more.
pub fn encode_name_value(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> bool {
    fn length(out: &mut Vec<u8>, len: usize) {
        match u8::try_from(len) {
            Ok(short) if short < 0x80 => out.push(short),
            _ => {
                let long = u32::try_from(len).unwrap_or(u32::MAX) | 0x8000_0000;
                out.extend_from_slice(&long.to_be_bytes());
            }
        }
    }
    const LIMIT: usize = 0x7fff_ffff;
    if name.len() > LIMIT || value.len() > LIMIT {
        return false;
    }
    length(out, name.len());
    length(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    true
}

/// One name-value pair of a PARAMS or GET_VALUES(_RESULT) record: name, value.
pub type NameValue = (Vec<u8>, Vec<u8>);

/// Decodes the name-value pairs of a PARAMS or GET_VALUES(_RESULT) content.
///
/// Every length is checked against the bytes present before anything is taken.
pub fn decode_name_values(mut content: &[u8]) -> Result<Vec<NameValue>, DecodeError> {
    fn length(content: &mut &[u8]) -> Result<usize, DecodeError> {
        let &first = content.first().ok_or(DecodeError::Truncated)?;
        if first < 0x80 {
            *content = content.get(1..).unwrap_or_default();
            return Ok(usize::from(first));
        }
        let &four = content.first_chunk::<4>().ok_or(DecodeError::Truncated)?;
        *content = content.get(4..).unwrap_or_default();
        let len = u32::from_be_bytes(four) & 0x7fff_ffff;
        usize::try_from(len).map_err(|_| DecodeError::Truncated)
    }
    fn take<'a>(content: &mut &'a [u8], len: usize) -> Result<&'a [u8], DecodeError> {
        let taken = content.get(..len).ok_or(DecodeError::Truncated)?;
        *content = content.get(len..).unwrap_or_default();
        Ok(taken)
    }
    let mut pairs = Vec::new();
    // Every pass consumes at least two bytes, so this ends.
    while !content.is_empty() {
        let name_len = length(&mut content)?;
        let value_len = length(&mut content)?;
        let name = take(&mut content, name_len)?;
        let value = take(&mut content, value_len)?;
        pairs.push((name.to_vec(), value.to_vec()));
    }
    Ok(pairs)
}

/// The PARAMS stream for `params`, ended by the empty PARAMS record.
///
/// Pairs are packed whole into records of at most [`MAX_CONTENT`] bytes, because php-fpm
/// parses each PARAMS record on its own; only a single pair larger than a record is split
/// (which the FastCGI spec allows).
pub fn encode_params(request_id: u16, params: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    for (name, value) in params {
        let mut pair = Vec::new();
        if !encode_name_value(&mut pair, name.as_bytes(), value.as_bytes()) {
            tracing::debug!(name = %name, "fastcgi param too long, not sent");
            continue;
        }
        if !record.is_empty() && record.len() + pair.len() > MAX_CONTENT {
            push_record(&mut out, PARAMS, request_id, &record);
            record.clear();
        }
        if pair.len() > MAX_CONTENT {
            for chunk in pair.chunks(MAX_CONTENT) {
                push_record(&mut out, PARAMS, request_id, chunk);
            }
        } else {
            record.extend_from_slice(&pair);
        }
    }
    if !record.is_empty() {
        push_record(&mut out, PARAMS, request_id, &record);
    }
    push_record(&mut out, PARAMS, request_id, &[]);
    out
}

/// An empty STDIN stream: just the empty STDIN record (a GET has no body).
pub fn encode_stdin_end(request_id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    push_stream(&mut out, STDIN, request_id, &[]);
    out
}

/// `FCGI_GET_VALUES` (request id 0) asking for `names`.
pub fn encode_get_values(names: &[&str]) -> Vec<u8> {
    let mut content = Vec::new();
    for name in names {
        encode_name_value(&mut content, name.as_bytes(), b"");
    }
    let mut out = Vec::new();
    push_record(&mut out, GET_VALUES, 0, &content);
    out
}

// ---------------------------------------------------------------------------------------
// CGI response head (shared with uwsgi and SCGI)
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

/// What `FCGI_GET_VALUES_RESULT` reported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FcgiValues {
    /// `FCGI_MAX_CONNS`.
    pub max_conns: Option<u64>,
    /// `FCGI_MAX_REQS`.
    pub max_reqs: Option<u64>,
    /// `FCGI_MPXS_CONNS` (whether the server multiplexes requests on one connection).
    pub mpxs_conns: Option<bool>,
    /// Every pair as sent (lossy UTF-8).
    pub raw: Vec<(String, String)>,
}

impl FcgiValues {
    fn from_pairs(pairs: &[NameValue]) -> Self {
        let mut values = Self::default();
        for (name, value) in pairs {
            let name = String::from_utf8_lossy(name).into_owned();
            let value = String::from_utf8_lossy(value).into_owned();
            match name.as_str() {
                "FCGI_MAX_CONNS" => values.max_conns = value.trim().parse().ok(),
                "FCGI_MAX_REQS" => values.max_reqs = value.trim().parse().ok(),
                "FCGI_MPXS_CONNS" => {
                    values.mpxs_conns = match value.trim() {
                        "0" => Some(false),
                        "1" => Some(true),
                        _ => None,
                    }
                }
                _ => {}
            }
            values.raw.push((name, value));
        }
        values
    }
}

/// The params of one request, sent in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcgiRequest {
    /// Name-value pairs.
    pub params: Vec<(String, String)>,
}

impl FcgiRequest {
    /// The params nginx sends for `GET <uri>` with `include fastcgi_params;` and
    /// `fastcgi_param SCRIPT_FILENAME <script_filename>;`, in nginx's order (the query
    /// string is split off `uri`). Left out: `DOCUMENT_ROOT`, `REMOTE_PORT`, `SERVER_ADDR`
    /// and the client's other `HTTP_*` headers, which only the real request knows.
    pub fn get(script_filename: &str, uri: &str, host: &str) -> Self {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let params = [
            ("QUERY_STRING", query),
            ("REQUEST_METHOD", "GET"),
            ("CONTENT_TYPE", ""),
            ("CONTENT_LENGTH", ""),
            ("SCRIPT_NAME", path),
            ("REQUEST_URI", uri),
            ("DOCUMENT_URI", path),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", "fix502"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("SERVER_PORT", "80"),
            ("SERVER_NAME", host),
            ("REDIRECT_STATUS", "200"),
            ("SCRIPT_FILENAME", script_filename),
            ("HTTP_HOST", host),
        ];
        Self {
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The bytes nginx would send: BEGIN_REQUEST, PARAMS, empty PARAMS, empty STDIN, all
    /// with request id [`REQUEST_ID`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_begin_request(REQUEST_ID);
        out.extend(encode_params(REQUEST_ID, &self.params));
        out.extend(encode_stdin_end(REQUEST_ID));
        out
    }
}

/// Bounds of one request probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcgiLimits {
    /// The most header bytes accepted (nginx: `fastcgi_buffer_size`); a larger head is
    /// [`FcgiOutcome::HeaderTooBig`]. Counts the CGI head in STDOUT, not record framing.
    pub cap: usize,
    /// The whole probe (connect, send, read) ends by then.
    pub timeout: Duration,
}

impl Default for FcgiLimits {
    /// nginx's default buffer (one 4 KiB page) and 5 seconds.
    fn default() -> Self {
        Self {
            cap: 4096,
            timeout: Duration::from_secs(5),
        }
    }
}

/// How a FastCGI probe ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FcgiOutcome {
    /// `FCGI_GET_VALUES_RESULT` received: the peer speaks FastCGI.
    Values,
    /// A complete CGI head arrived in STDOUT.
    Response,
    /// The connect failed.
    ConnectFailed(ConnectOutcome),
    /// The peer closed before a complete head (nginx: "upstream prematurely closed
    /// connection"), possibly inside a record whose length it had announced.
    ClosedEarly,
    /// The peer reset the connection (104).
    Reset,
    /// No complete head within the probe timeout.
    TimedOut,
    /// The head is larger than the cap (nginx: "upstream sent too big header").
    HeaderTooBig,
    /// The first byte is not 1 (nginx: "upstream sent unsupported FastCGI protocol version:
    /// N"); 72 (`H`) is an HTTP server, 21 a TLS alert, 60 (`<`) HTML.
    NotFastCgi {
        /// The first byte received.
        version: u8,
    },
    /// An invalid record type or request id; the text is nginx's, e.g. "invalid FastCGI
    /// record type: 9".
    InvalidRecord(String),
    /// STDOUT ended before the head did (nginx: "upstream prematurely closed FastCGI
    /// stdout").
    NoHeaders,
    /// A record other than STDOUT/STDERR before the head, typically END_REQUEST (3) of a
    /// script that printed nothing (nginx: "upstream sent unexpected FastCGI record: 3").
    UnexpectedRecord(u8),
    /// END_REQUEST before the head with a protocol status other than REQUEST_COMPLETE:
    /// 1 `FCGI_CANT_MPX_CONN`, 2 `FCGI_OVERLOADED`, 3 `FCGI_UNKNOWN_ROLE`. nginx logs it as
    /// "upstream sent unexpected FastCGI record: 3".
    EndRequest {
        /// The protocol status.
        protocol_status: u8,
    },
    /// The `Status:` header is not numeric (nginx: "upstream sent invalid status").
    InvalidStatus(String),
    /// A header line nginx rejects (nginx: "upstream sent invalid header: ..."); the text
    /// is nginx's: the bytes before the bad byte, then the bad byte in hex.
    InvalidHeader(String),
    /// Sending the request failed.
    WriteError {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description.
        message: String,
    },
    /// Another read error.
    ReadError {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description.
        message: String,
    },
}

impl fmt::Display for FcgiOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Values => f.write_str("answers FastCGI management records"),
            Self::Response => f.write_str("complete response header"),
            Self::ConnectFailed(c) => write!(f, "connect failed: {c}"),
            Self::ClosedEarly => f.write_str("closed the connection before a complete header"),
            Self::Reset => f.write_str("connection reset by peer (104)"),
            Self::TimedOut => f.write_str("no complete header within the probe timeout"),
            Self::HeaderTooBig => f.write_str("header larger than the buffer (too big header)"),
            Self::NotFastCgi { version } => write!(
                f,
                "not FastCGI: unsupported FastCGI protocol version: {version}"
            ),
            Self::InvalidRecord(text) => write!(f, "{text}"),
            Self::NoHeaders => f.write_str("prematurely closed FastCGI stdout"),
            Self::UnexpectedRecord(t) => write!(f, "unexpected FastCGI record: {t}"),
            Self::EndRequest { protocol_status } => {
                let name = match protocol_status {
                    1 => "FCGI_CANT_MPX_CONN",
                    2 => "FCGI_OVERLOADED",
                    3 => "FCGI_UNKNOWN_ROLE",
                    _ => "unknown protocol status",
                };
                write!(
                    f,
                    "request refused: {name} ({protocol_status}); nginx logs unexpected FastCGI record: 3"
                )
            }
            Self::InvalidStatus(value) => write!(f, "invalid status \"{value}\""),
            Self::InvalidHeader(text) => write!(f, "invalid header: \"{text}\""),
            Self::WriteError { errno, message } => io_failure(f, "send", *errno, message),
            Self::ReadError { errno, message } => io_failure(f, "read", *errno, message),
        }
    }
}

/// `send failed: <message> (<errno>)`, the wording both gateway outcomes use for I/O errors.
pub(crate) fn io_failure(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    errno: Option<i32>,
    message: &str,
) -> fmt::Result {
    match errno {
        Some(n) => write!(f, "{what} failed: {message} ({n})"),
        None => write!(f, "{what} failed: {message}"),
    }
}

/// The result of one FastCGI probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcgiProbe {
    /// The endpoint as nginx writes it.
    pub endpoint: String,
    /// How long the connect took, when it succeeded.
    pub connect_time: Option<Duration>,
    /// Time from the end of sending to the first byte received.
    pub first_byte: Option<Duration>,
    /// Time of the whole probe.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: FcgiOutcome,
    /// What `FCGI_GET_VALUES_RESULT` said ([`get_values`] only).
    pub values: Option<FcgiValues>,
    /// The status nginx derives from a complete head: `Status:`, 302 for `Location:`,
    /// else 200.
    pub status: Option<u16>,
    /// Bytes of the CGI head in STDOUT through the empty line; without a complete head,
    /// the STDOUT bytes received.
    pub header_bytes: usize,
    /// The first (at most 1024) STDOUT bytes.
    pub stdout_head: Vec<u8>,
    /// STDERR text in lines (at most 20 lines of at most 512 bytes); nginx logs each STDERR
    /// record as `FastCGI sent in stderr: "..."`.
    pub stderr: Vec<String>,
    /// END_REQUEST: application status and protocol status.
    pub end_request: Option<(u32, u8)>,
    /// The first (at most 64) raw bytes received, as evidence.
    pub head: Vec<u8>,
}

impl FcgiProbe {
    fn new(endpoint: &Endpoint) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            connect_time: None,
            first_byte: None,
            elapsed: Duration::ZERO,
            outcome: FcgiOutcome::TimedOut,
            values: None,
            status: None,
            header_bytes: 0,
            stdout_head: Vec::new(),
            stderr: Vec::new(),
            end_request: None,
            head: Vec::new(),
        }
    }

    fn add_stderr(&mut self, content: &[u8]) {
        let text = String::from_utf8_lossy(content);
        for line in text.split('\n') {
            let line = line.trim_end_matches(['\r', ' ']);
            if line.is_empty() {
                continue;
            }
            if self.stderr.len() >= STDERR_LINES {
                return;
            }
            let mut end = line.len().min(STDERR_LINE_LEN);
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            self.stderr
                .push(line.get(..end).unwrap_or_default().to_owned());
        }
    }
}

/// What the record handler tells the read loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Keep reading.
    More,
    /// The verdict is in; read briefly for trailing records.
    Settle,
    /// Stop reading.
    Stop,
}

/// How the read loop ended, when no record handler stopped it.
#[derive(Debug)]
enum End {
    Stopped,
    Connect(ConnectOutcome),
    Write(std::io::Error),
    WriteTimedOut,
    Read(ReadEnd),
    Decode(DecodeError),
}

/// Connects, sends `payload`, and feeds every record received to `on_record` until it says
/// stop, the peer closes, or the deadline passes.
async fn exchange<F>(
    endpoint: &Endpoint,
    payload: &[u8],
    expect: Expect,
    timeout: Duration,
    probe: &mut FcgiProbe,
    mut on_record: F,
) -> End
where
    F: FnMut(&mut FcgiProbe, &Record<'_>) -> Flow,
{
    let start = Instant::now();
    let mut deadline = start + timeout;
    let mut stream: Stream = match open(endpoint, deadline).await {
        Ok((stream, took)) => {
            probe.connect_time = Some(took);
            stream
        }
        Err(outcome) => return End::Connect(outcome),
    };
    match tokio::time::timeout_at(deadline, stream.write_all(payload)).await {
        Err(_) => return End::WriteTimedOut,
        Ok(Err(err)) => return End::Write(err),
        Ok(Ok(())) => {}
    }
    let sent_at = Instant::now();
    let mut decoder = Decoder::new(expect);
    let mut settled_bytes: Option<usize> = None;
    // Bounded by the deadline: every pass reads at least one byte or ends the loop.
    loop {
        let mut fed = 0;
        let head = &mut probe.head;
        let first_byte = &mut probe.first_byte;
        let read = read_bounded(&mut stream, deadline, WINDOW, |bytes| {
            let new = bytes.get(fed..).unwrap_or_default();
            fed = bytes.len();
            first_byte.get_or_insert_with(|| sent_at.elapsed());
            let room = RAW_HEAD.saturating_sub(head.len());
            head.extend_from_slice(new.get(..room).unwrap_or(new));
            decoder.push(new);
            decoder.ready()
        })
        .await;
        if let Some(total) = &mut settled_bytes {
            *total += read.bytes.len();
        }
        // Handle every complete record, then the way the read ended.
        loop {
            let record = match decoder.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(err) => return End::Decode(err),
            };
            match on_record(probe, &record) {
                Flow::More => {}
                Flow::Stop => return End::Stopped,
                Flow::Settle => {
                    settled_bytes.get_or_insert(0);
                    deadline = deadline.min(Instant::now() + SETTLE_TIME);
                }
            }
        }
        match read.end {
            ReadEnd::Done | ReadEnd::Capped => {
                if settled_bytes.is_some_and(|n| n > SETTLE_BYTES) {
                    return End::Stopped;
                }
            }
            ReadEnd::Eof => {
                return match decoder.finish() {
                    Ok(()) => End::Read(ReadEnd::Eof),
                    Err(err) => End::Decode(err),
                };
            }
            other => return End::Read(other),
        }
    }
}

/// The outcome for a loop end when no record decided it.
fn outcome_of(end: End) -> FcgiOutcome {
    match end {
        // Not reached: a handler only stops after setting its verdict.
        End::Stopped => FcgiOutcome::TimedOut,
        End::Connect(c) => FcgiOutcome::ConnectFailed(c),
        End::WriteTimedOut => FcgiOutcome::TimedOut,
        End::Write(err) => match ReadEnd::from_io_error(&err) {
            ReadEnd::Reset => FcgiOutcome::Reset,
            _ => FcgiOutcome::WriteError {
                errno: err.raw_os_error(),
                message: err.to_string(),
            },
        },
        End::Read(ReadEnd::Eof) | End::Decode(DecodeError::Truncated) => FcgiOutcome::ClosedEarly,
        End::Read(ReadEnd::Reset) => FcgiOutcome::Reset,
        End::Read(ReadEnd::TimedOut) => FcgiOutcome::TimedOut,
        End::Read(ReadEnd::Error { errno, message }) => FcgiOutcome::ReadError { errno, message },
        End::Read(other) => FcgiOutcome::ReadError {
            errno: None,
            message: format!("{other:?}"),
        },
        End::Decode(DecodeError::UnsupportedVersion(version)) => {
            FcgiOutcome::NotFastCgi { version }
        }
        End::Decode(err) => FcgiOutcome::InvalidRecord(err.to_string()),
    }
}

/// Sends `FCGI_GET_VALUES` for `FCGI_MAX_CONNS`, `FCGI_MAX_REQS` and `FCGI_MPXS_CONNS` and
/// reads the answer. Runs no script. Stops at the first answer record (php-fpm keeps the
/// connection open after it).
pub async fn get_values(endpoint: &Endpoint, timeout: Duration) -> FcgiProbe {
    let start = Instant::now();
    let mut probe = FcgiProbe::new(endpoint);
    let payload = encode_get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]);
    let mut verdict = None;
    let on_record = |probe: &mut FcgiProbe, record: &Record<'_>| {
        verdict = Some(if record.header.record_type == GET_VALUES_RESULT {
            match decode_name_values(record.content) {
                Ok(pairs) => {
                    probe.values = Some(FcgiValues::from_pairs(&pairs));
                    FcgiOutcome::Values
                }
                Err(err) => FcgiOutcome::InvalidRecord(format!("GET_VALUES_RESULT: {err}")),
            }
        } else {
            FcgiOutcome::UnexpectedRecord(record.header.record_type)
        });
        Flow::Stop
    };
    let end = exchange(
        endpoint,
        &payload,
        Expect::MANAGEMENT,
        timeout,
        &mut probe,
        on_record,
    )
    .await;
    probe.outcome = verdict.unwrap_or_else(|| outcome_of(end));
    probe.elapsed = start.elapsed();
    tracing::debug!(endpoint = %probe.endpoint, outcome = %probe.outcome, "fastcgi get_values probe");
    probe
}

/// The request judge: STDOUT/STDERR/END_REQUEST records as `ngx_http_fastcgi_process_header`
/// meets them.
struct Judge {
    cap: usize,
    parser: HeadParser,
    /// STDOUT bytes while the head is incomplete, at most `cap + 1`.
    head_buf: Vec<u8>,
    stdout_total: usize,
    verdict: Option<FcgiOutcome>,
}

impl Judge {
    fn record(&mut self, probe: &mut FcgiProbe, record: &Record<'_>) -> Flow {
        let content = record.content;
        let head_done = self.verdict.is_some();
        match record.header.record_type {
            STDERR => {
                probe.add_stderr(content);
                Flow::More
            }
            STDOUT => {
                let room = STDOUT_HEAD.saturating_sub(probe.stdout_head.len());
                probe
                    .stdout_head
                    .extend_from_slice(content.get(..room).unwrap_or(content));
                if head_done {
                    return Flow::More;
                }
                if content.is_empty() {
                    return self.decide(probe, FcgiOutcome::NoHeaders);
                }
                self.stdout_total += content.len();
                probe.header_bytes = self.stdout_total;
                let room = self
                    .cap
                    .saturating_add(1)
                    .saturating_sub(self.head_buf.len());
                self.head_buf
                    .extend_from_slice(content.get(..room).unwrap_or(content));
                match self.parser.advance(&self.head_buf) {
                    HeadState::Incomplete if self.head_buf.len() > self.cap => {
                        self.decide(probe, FcgiOutcome::HeaderTooBig)
                    }
                    HeadState::Incomplete => Flow::More,
                    HeadState::Done { len, .. } if len > self.cap => {
                        probe.header_bytes = len;
                        self.decide(probe, FcgiOutcome::HeaderTooBig)
                    }
                    HeadState::Done { len, status } => {
                        probe.header_bytes = len;
                        probe.status = Some(status);
                        self.decide(probe, FcgiOutcome::Response)
                    }
                    HeadState::InvalidHeader(text) => {
                        self.decide(probe, FcgiOutcome::InvalidHeader(text))
                    }
                    HeadState::InvalidStatus(value) => {
                        self.decide(probe, FcgiOutcome::InvalidStatus(value))
                    }
                }
            }
            other => {
                if other == END_REQUEST
                    && let Some(&[a, b, c, d, protocol_status]) = content.first_chunk::<5>()
                {
                    probe.end_request = Some((u32::from_be_bytes([a, b, c, d]), protocol_status));
                }
                if !head_done {
                    let verdict = match probe.end_request {
                        Some((_, protocol_status))
                            if other == END_REQUEST && protocol_status != 0 =>
                        {
                            FcgiOutcome::EndRequest { protocol_status }
                        }
                        _ => FcgiOutcome::UnexpectedRecord(other),
                    };
                    self.verdict = Some(verdict);
                }
                Flow::Stop
            }
        }
    }

    fn decide(&mut self, probe: &mut FcgiProbe, verdict: FcgiOutcome) -> Flow {
        let flow = if verdict == FcgiOutcome::Response {
            Flow::Settle
        } else {
            Flow::Stop
        };
        if verdict != FcgiOutcome::Response {
            probe.status = None;
        }
        self.verdict = Some(verdict);
        flow
    }
}

/// Sends `request` as nginx would (request id 1, role RESPONDER, connection not kept) and
/// judges the answer as nginx would while reading the response header.
///
/// After a complete head it reads on briefly (at most 500 ms and 64 KiB) to collect
/// trailing STDERR and END_REQUEST; that never changes the outcome.
pub async fn request(endpoint: &Endpoint, request: &FcgiRequest, limits: FcgiLimits) -> FcgiProbe {
    let start = Instant::now();
    let mut probe = FcgiProbe::new(endpoint);
    let mut judge = Judge {
        cap: limits.cap,
        parser: HeadParser::new(false),
        head_buf: Vec::new(),
        stdout_total: 0,
        verdict: None,
    };
    let payload = request.encode();
    let end = exchange(
        endpoint,
        &payload,
        Expect::RESPONSE,
        limits.timeout,
        &mut probe,
        |probe: &mut FcgiProbe, record: &Record<'_>| judge.record(probe, record),
    )
    .await;
    probe.outcome = judge.verdict.unwrap_or_else(|| outcome_of(end));
    probe.elapsed = start.elapsed();
    tracing::debug!(
        endpoint = %probe.endpoint,
        outcome = %probe.outcome,
        status = ?probe.status,
        "fastcgi request probe"
    );
    probe
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uwsgi::fake::{After, limits, one_shot, read_request};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const ALL_TYPES: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

    fn rec(record_type: u8, request_id: u16, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_record(&mut out, record_type, request_id, content);
        out
    }

    fn stdout(content: &[u8]) -> Vec<u8> {
        rec(STDOUT, REQUEST_ID, content)
    }

    fn end_request(app_status: u32, protocol_status: u8) -> Vec<u8> {
        let mut content = app_status.to_be_bytes().to_vec();
        content.extend_from_slice(&[protocol_status, 0, 0, 0]);
        rec(END_REQUEST, REQUEST_ID, &content)
    }

    /// Every record of `bytes` (all types, any request id) with its content.
    fn records(bytes: &[u8], request_id: u16) -> Vec<(u8, Vec<u8>)> {
        let expect = Expect {
            request_id,
            types: ALL_TYPES,
        };
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (record, used) = decode_record(rest, &expect)
                .expect("valid record")
                .expect("complete record");
            assert_eq!(record.header.record_len() % 8, 0, "padded to 8");
            out.push((record.header.record_type, record.content.to_vec()));
            rest = &rest[used..];
        }
        out
    }

    fn pairs(params: &[(String, String)]) -> Vec<NameValue> {
        params
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    /// A request is complete once the empty STDIN record arrived.
    fn request_complete(bytes: &[u8]) -> bool {
        bytes.ends_with(&[1, STDIN, 0, 1, 0, 0, 0, 0])
    }

    fn management_complete(bytes: &[u8]) -> bool {
        decode_record(
            bytes,
            &Expect {
                request_id: 0,
                types: ALL_TYPES,
            },
        )
        .is_ok_and(|r| r.is_some())
    }

    fn hello() -> FcgiRequest {
        FcgiRequest::get("/srv/www/index.php", "/index.php?x=1", "example.test")
    }

    async fn answer(reply: Vec<u8>, after: After) -> FcgiProbe {
        let (endpoint, server) = one_shot(reply, request_complete, after).await;
        let probe = request(&endpoint, &hello(), limits()).await;
        let received = server.await.expect("server");
        assert_eq!(
            received,
            hello().encode(),
            "the server got the whole request"
        );
        probe
    }

    #[test]
    fn request_round_trip() {
        let req = hello();
        let bytes = req.encode();
        let got = records(&bytes, REQUEST_ID);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], (BEGIN_REQUEST, vec![0, 1, 0, 0, 0, 0, 0, 0]));
        assert_eq!(got[1].0, PARAMS);
        assert_eq!(
            decode_name_values(&got[1].1).expect("pairs"),
            pairs(&req.params)
        );
        assert_eq!(got[2], (PARAMS, Vec::new()));
        assert_eq!(got[3], (STDIN, Vec::new()));
        // The same, through the incremental decoder one byte at a time.
        let mut decoder = Decoder::new(Expect {
            request_id: REQUEST_ID,
            types: ALL_TYPES,
        });
        let mut types = Vec::new();
        for byte in &bytes {
            decoder.push(&[*byte]);
            while let Some(record) = decoder.next_record().expect("valid") {
                types.push(record.header.record_type);
            }
        }
        assert_eq!(types, [BEGIN_REQUEST, PARAMS, PARAMS, STDIN]);
        assert_eq!(decoder.finish(), Ok(()));
        let names: Vec<&str> = req.params.iter().map(|(n, _)| n.as_str()).collect();
        // nginx 1.22.1 with Debian's fastcgi_params sends these in this order (plus
        // DOCUMENT_ROOT, REMOTE_PORT, REMOTE_USER, SERVER_ADDR and the client's headers).
        assert_eq!(
            names,
            [
                "QUERY_STRING",
                "REQUEST_METHOD",
                "CONTENT_TYPE",
                "CONTENT_LENGTH",
                "SCRIPT_NAME",
                "REQUEST_URI",
                "DOCUMENT_URI",
                "SERVER_PROTOCOL",
                "REQUEST_SCHEME",
                "GATEWAY_INTERFACE",
                "SERVER_SOFTWARE",
                "REMOTE_ADDR",
                "SERVER_PORT",
                "SERVER_NAME",
                "REDIRECT_STATUS",
                "SCRIPT_FILENAME",
                "HTTP_HOST",
            ]
        );
        let get = |name: &str| {
            req.params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("SCRIPT_FILENAME"), Some("/srv/www/index.php"));
        assert_eq!(get("HTTP_HOST"), Some("example.test"));
        assert_eq!(get("QUERY_STRING"), Some("x=1"));
        assert_eq!(get("SCRIPT_NAME"), Some("/index.php"));
        assert_eq!(get("REQUEST_URI"), Some("/index.php?x=1"));
        assert_eq!(get("REQUEST_METHOD"), Some("GET"));
        assert_eq!(get("CONTENT_LENGTH"), Some(""));
    }

    #[test]
    fn probe_futures_are_send() {
        fn send<T: Send>(_: T) {}
        let endpoint = Endpoint::Tcp(([127, 0, 0, 1], 9).into());
        let req = hello();
        send(get_values(&endpoint, Duration::from_secs(1)));
        send(request(&endpoint, &req, limits()));
        send(crate::uwsgi::request(&endpoint, "GET", "/", "h", limits()));
        send(crate::scgi::request(&endpoint, "GET", "/", "h", limits()));
    }

    #[test]
    fn long_names_and_values_use_four_byte_lengths() {
        let mut out = Vec::new();
        assert!(encode_name_value(&mut out, &[b'n'; 127], &[b'v'; 128]));
        assert_eq!(out[0], 127, "127 still fits one byte");
        assert_eq!(&out[1..5], &[0x80, 0, 0, 128]);
        assert_eq!(out.len(), 1 + 4 + 127 + 128);
        let decoded = decode_name_values(&out).expect("decode");
        assert_eq!(decoded, vec![(vec![b'n'; 127], vec![b'v'; 128])]);
        let mut out = Vec::new();
        encode_name_value(&mut out, &[b'n'; 300], b"");
        assert_eq!(&out[..5], &[0x80, 0, 1, 44, 0]);
    }

    #[test]
    fn big_params_are_split_at_pair_boundaries() {
        let params: Vec<(String, String)> = (0..3)
            .map(|i| (format!("HTTP_X_{i}"), "v".repeat(30_000)))
            .collect();
        let bytes = encode_params(REQUEST_ID, &params);
        let got = records(&bytes, REQUEST_ID);
        let sizes: Vec<usize> = got.iter().map(|(_, c)| c.len()).collect();
        assert_eq!(
            sizes,
            [60_026, 30_013, 0],
            "two pairs, one pair, the terminator"
        );
        let mut all = Vec::new();
        for (t, content) in &got {
            assert_eq!(*t, PARAMS);
            assert!(content.len() <= MAX_CONTENT);
            // Each record holds whole pairs (php-fpm parses records one by one).
            all.extend(decode_name_values(content).expect("whole pairs"));
        }
        assert_eq!(all, pairs(&params));

        // One pair larger than a record is split; the stream still decodes.
        let huge = vec![("HTTP_COOKIE".to_owned(), "c".repeat(70_000))];
        let got = records(&encode_params(REQUEST_ID, &huge), REQUEST_ID);
        let sizes: Vec<usize> = got.iter().map(|(_, c)| c.len()).collect();
        assert_eq!(
            sizes,
            [65_535, 70_016 - 65_535, 0],
            "no empty record before the end"
        );
        let stream: Vec<u8> = got.iter().flat_map(|(_, c)| c.clone()).collect();
        assert_eq!(decode_name_values(&stream).expect("decode"), pairs(&huge));
    }

    #[test]
    fn header_bytes_are_checked_in_nginx_order() {
        let expect = Expect::RESPONSE;
        assert_eq!(
            decode_record(b"H", &expect),
            Err(DecodeError::UnsupportedVersion(72))
        );
        assert_eq!(
            decode_record(&[1, 9], &expect),
            Err(DecodeError::InvalidType(9))
        );
        assert_eq!(
            decode_record(&[1, 6, 1], &expect),
            Err(DecodeError::UnexpectedRequestId {
                high: true,
                value: 1
            })
        );
        let err = decode_record(&[1, 6, 0, 2], &expect).expect_err("low byte");
        assert_eq!(err.to_string(), "unexpected FastCGI request id low byte: 2");
        assert_eq!(decode_record(&[1, 6, 0, 1, 0], &expect), Ok(None));
        assert_eq!(
            decode_record(&[1, GET_VALUES_RESULT, 0, 0], &Expect::MANAGEMENT),
            Ok(None)
        );
    }

    #[test]
    fn a_lying_length_costs_only_the_bytes_received() {
        let mut decoder = Decoder::new(Expect::RESPONSE);
        decoder.push(&[1, STDOUT, 0, 1, 0xff, 0xff, 0, 0]);
        decoder.push(b"0123456789");
        assert_eq!(decoder.next_record(), Ok(None));
        assert!(!decoder.ready());
        assert_eq!(decoder.finish(), Err(DecodeError::Truncated));
        assert!(decoder.buf.capacity() < 1024, "{}", decoder.buf.capacity());
        // Name-value lengths that overrun are errors, not allocations.
        assert_eq!(
            decode_name_values(&[0xff, 0xff, 0xff, 0xff, 0, b'x']),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_name_values(&[5, 0, b'a']),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode_name_values(&[0x80, 0]), Err(DecodeError::Truncated));
    }

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

    #[tokio::test]
    async fn a_complete_answer_with_stderr() {
        let mut reply = rec(
            STDERR,
            REQUEST_ID,
            b"PHP message: PHP Warning:  x\nsecond line\n",
        );
        // The head split across records of odd sizes.
        reply.extend(stdout(b"Status: 404 Not Found\r\nContent-"));
        reply.extend(stdout(b"type: text/html\r"));
        reply.extend(stdout(b"\n\r\nFile not found.\n"));
        reply.extend(stdout(b""));
        reply.extend(end_request(0, 0));
        let probe = answer(reply, After::Close).await;
        assert_eq!(probe.outcome, FcgiOutcome::Response);
        assert_eq!(probe.status, Some(404));
        assert_eq!(probe.header_bytes, 50);
        assert_eq!(
            probe.stderr,
            vec![
                "PHP message: PHP Warning:  x".to_owned(),
                "second line".to_owned()
            ]
        );
        assert_eq!(probe.end_request, Some((0, 0)));
        assert!(probe.stdout_head.ends_with(b"File not found.\n"));
        assert_eq!(probe.head, reply_head());
        assert!(probe.first_byte.is_some() && probe.connect_time.is_some());

        fn reply_head() -> Vec<u8> {
            let r = rec(
                STDERR,
                REQUEST_ID,
                b"PHP message: PHP Warning:  x\nsecond line\n",
            );
            let mut all = r;
            all.extend(stdout(b"Status: 404 Not Found\r\nContent-"));
            all.truncate(64);
            all
        }
    }

    #[tokio::test]
    async fn an_http_server_is_not_fastcgi() {
        let probe = answer(
            b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n".to_vec(),
            After::Close,
        )
        .await;
        assert_eq!(probe.outcome, FcgiOutcome::NotFastCgi { version: 72 });
        assert!(probe.head.starts_with(b"HTTP/1.1 400"));
        assert!(probe.outcome.to_string().contains("protocol version: 72"));
    }

    #[tokio::test]
    async fn invalid_type_and_request_id() {
        let probe = answer(rec(9, REQUEST_ID, b""), After::Close).await;
        assert_eq!(
            probe.outcome,
            FcgiOutcome::InvalidRecord("invalid FastCGI record type: 9".to_owned())
        );
        let probe = answer(rec(STDOUT, 2, b"X: 1\r\n\r\n"), After::Close).await;
        assert_eq!(
            probe.outcome,
            FcgiOutcome::InvalidRecord("unexpected FastCGI request id low byte: 2".to_owned())
        );
    }

    #[tokio::test]
    async fn stdout_ending_before_the_head_is_no_headers() {
        let mut reply = stdout(b"X-Partial: 1\r\n");
        reply.extend(stdout(b""));
        reply.extend(end_request(0, 0));
        let probe = answer(reply, After::Close).await;
        assert_eq!(probe.outcome, FcgiOutcome::NoHeaders);
        assert_eq!(probe.header_bytes, 14);
        assert_eq!(probe.status, None);
    }

    #[tokio::test]
    async fn end_request_first_is_an_unexpected_record() {
        let probe = answer(end_request(0, 0), After::Close).await;
        assert_eq!(probe.outcome, FcgiOutcome::UnexpectedRecord(3));
        assert_eq!(probe.end_request, Some((0, 0)));
        let probe = answer(end_request(0, 2), After::Close).await;
        assert_eq!(
            probe.outcome,
            FcgiOutcome::EndRequest { protocol_status: 2 }
        );
        assert!(probe.outcome.to_string().contains("FCGI_OVERLOADED"));
    }

    #[tokio::test]
    async fn status_ok_is_invalid() {
        let mut reply = stdout(b"Status: OK\r\n\r\n");
        reply.extend(end_request(0, 0));
        let probe = answer(reply, After::Close).await;
        assert_eq!(probe.outcome, FcgiOutcome::InvalidStatus("OK".to_owned()));
        assert_eq!(probe.status, None);
    }

    #[tokio::test]
    async fn lying_length_then_close_is_closed_early() {
        let mut reply = vec![1, STDOUT, 0, 1, 0xff, 0xff, 0, 0];
        reply.extend_from_slice(b"X-A: 12345");
        let probe = answer(reply, After::Close).await;
        assert_eq!(probe.outcome, FcgiOutcome::ClosedEarly);
        assert_eq!(probe.head.len(), 18);
        // Nothing at all, then close.
        let probe = answer(Vec::new(), After::Close).await;
        assert_eq!(probe.outcome, FcgiOutcome::ClosedEarly);
        assert!(probe.head.is_empty() && probe.first_byte.is_none());
    }

    #[tokio::test]
    async fn reset_and_silence() {
        let probe = answer(Vec::new(), After::Reset).await;
        assert_eq!(probe.outcome, FcgiOutcome::Reset);

        let (endpoint, _server) = one_shot(
            Vec::new(),
            request_complete,
            After::Hold(Duration::from_secs(3)),
        )
        .await;
        let quick = FcgiLimits {
            cap: 4096,
            timeout: Duration::from_millis(300),
        };
        let probe = request(&endpoint, &hello(), quick).await;
        assert_eq!(probe.outcome, FcgiOutcome::TimedOut);
        assert!(
            probe.elapsed >= Duration::from_millis(300) && probe.elapsed < Duration::from_secs(1),
            "{:?}",
            probe.elapsed
        );
    }

    #[tokio::test]
    async fn an_endless_head_is_too_big_at_the_cap() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            read_request(&mut conn, request_complete).await;
            let chunk = stdout(&[b'a'; 1000]);
            let mut first = stdout(b"X-Endless: ");
            first.extend(chunk.clone());
            let mut sent = 0usize;
            let mut next = first;
            // Until the probe hangs up (bounded at 64 MiB).
            while sent < 64 << 20 && conn.write_all(&next).await.is_ok() {
                sent += next.len();
                next = chunk.clone();
            }
            sent
        });
        let probe = request(&endpoint, &hello(), limits()).await;
        assert_eq!(probe.outcome, FcgiOutcome::HeaderTooBig);
        assert!(probe.header_bytes > 4096 && probe.header_bytes < 4096 + 2000);
        drop(probe);
        let sent = server.await.expect("server");
        assert!(sent < 64 << 20, "the probe stopped reading");
    }

    #[tokio::test]
    async fn endless_stderr_is_kept_bounded_until_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            read_request(&mut conn, request_complete).await;
            let noise = rec(STDERR, REQUEST_ID, &[b'w'; 60_000]);
            for _ in 0..100_000 {
                if conn.write_all(&noise).await.is_err() {
                    break;
                }
            }
        });
        let quick = FcgiLimits {
            cap: 4096,
            timeout: Duration::from_millis(400),
        };
        let probe = request(&endpoint, &hello(), quick).await;
        assert_eq!(probe.outcome, FcgiOutcome::TimedOut);
        assert!(
            probe.elapsed < Duration::from_secs(1),
            "{:?}",
            probe.elapsed
        );
        assert_eq!(probe.stderr.len(), STDERR_LINES);
        assert!(probe.stderr.iter().all(|l| l.len() == STDERR_LINE_LEN));
        assert_eq!(probe.header_bytes, 0);
    }

    #[tokio::test]
    async fn a_held_connection_after_the_head_does_not_hold_the_probe() {
        let reply = stdout(b"Content-type: text/html\r\n\r\nstreaming");
        let probe = answer(reply, After::Hold(Duration::from_secs(2))).await;
        assert_eq!(probe.outcome, FcgiOutcome::Response);
        assert_eq!(probe.status, Some(200));
        assert_eq!(probe.end_request, None);
        assert!(
            probe.elapsed < Duration::from_millis(1500),
            "{:?}",
            probe.elapsed
        );
    }

    #[tokio::test]
    async fn get_values_reads_the_result_and_does_not_wait_for_close() {
        let mut content = Vec::new();
        encode_name_value(&mut content, b"FCGI_MAX_CONNS", b"10");
        encode_name_value(&mut content, b"FCGI_MAX_REQS", b"20");
        encode_name_value(&mut content, b"FCGI_MPXS_CONNS", b"0");
        let reply = rec(GET_VALUES_RESULT, 0, &content);
        let (endpoint, server) = one_shot(
            reply,
            management_complete,
            After::Hold(Duration::from_millis(1500)),
        )
        .await;
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        let received = server.await.expect("server");
        assert_eq!(
            received,
            encode_get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        );
        let got = records(&received, 0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, GET_VALUES);
        assert_eq!(probe.outcome, FcgiOutcome::Values);
        let values = probe.values.expect("values");
        assert_eq!(values.max_conns, Some(10));
        assert_eq!(values.max_reqs, Some(20));
        assert_eq!(values.mpxs_conns, Some(false));
        assert_eq!(values.raw.len(), 3);
        assert!(
            probe.elapsed < Duration::from_secs(1),
            "{:?}",
            probe.elapsed
        );
    }

    #[tokio::test]
    async fn get_values_against_other_peers() {
        let (endpoint, _server) = one_shot(
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            management_complete,
            After::Close,
        )
        .await;
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        assert_eq!(probe.outcome, FcgiOutcome::NotFastCgi { version: 72 });

        let reply = rec(UNKNOWN_TYPE, 0, &[GET_VALUES, 0, 0, 0, 0, 0, 0, 0]);
        let (endpoint, _server) = one_shot(reply, management_complete, After::Close).await;
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        assert_eq!(probe.outcome, FcgiOutcome::UnexpectedRecord(UNKNOWN_TYPE));

        let (endpoint, _server) = one_shot(Vec::new(), management_complete, After::Close).await;
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        assert_eq!(probe.outcome, FcgiOutcome::ClosedEarly);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr"));
        drop(listener);
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        assert_eq!(
            probe.outcome,
            FcgiOutcome::ConnectFailed(ConnectOutcome::Refused)
        );
    }

    #[tokio::test]
    async fn over_a_unix_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fpm.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let received = read_request(&mut conn, request_complete).await;
            let mut reply = stdout(b"Status: 200 OK\r\n\r\nhi");
            reply.extend(stdout(b""));
            reply.extend(end_request(0, 0));
            conn.write_all(&reply).await.expect("write");
            received
        });
        let endpoint = Endpoint::Unix(path);
        let probe = request(&endpoint, &hello(), limits()).await;
        assert_eq!(server.await.expect("server"), hello().encode());
        assert_eq!(probe.outcome, FcgiOutcome::Response);
        assert_eq!(probe.status, Some(200));
        assert_eq!(probe.stdout_head, b"Status: 200 OK\r\n\r\nhi");
        assert!(probe.endpoint.starts_with("unix:"));
    }
}
