//! FastCGI as nginx speaks it: a record codec and two probes. What the probes share with
//! uwsgi and SCGI (the result, the outcome, the CGI response-head parser) is in
//! [`crate::gateway`].
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

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::connect::ConnectOutcome;
use crate::gateway::{GatewayLimits, GatewayOutcome, GatewayProbe, HeadParser, RAW_HEAD};
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

/// The result of one FastCGI probe: what every gateway probe reports, and what FastCGI
/// tells besides the head (GET_VALUES_RESULT, STDOUT, STDERR, END_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcgiProbe {
    /// The endpoint, times, outcome, status, header size and first raw bytes, as uwsgi and
    /// SCGI report them; the head and its size are the CGI head's in STDOUT.
    pub gateway: GatewayProbe,
    /// What `FCGI_GET_VALUES_RESULT` said ([`get_values`] only).
    pub values: Option<FcgiValues>,
    /// The first (at most 1024) STDOUT bytes.
    pub stdout_head: Vec<u8>,
    /// STDERR text in lines (at most 20 lines of at most 512 bytes); nginx logs each STDERR
    /// record as `FastCGI sent in stderr: "..."`.
    pub stderr: Vec<String>,
    /// END_REQUEST: application status and protocol status.
    pub end_request: Option<(u32, u8)>,
}

impl FcgiProbe {
    fn new(endpoint: &Endpoint) -> Self {
        Self {
            gateway: GatewayProbe::new(endpoint),
            values: None,
            stdout_head: Vec::new(),
            stderr: Vec::new(),
            end_request: None,
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
    /// EOF, reset, timeout or another error (the loop reads on after `Done` and `Capped`).
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
            probe.gateway.connect_time = Some(took);
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
        let head = &mut probe.gateway.head;
        let first_byte = &mut probe.gateway.first_byte;
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
fn outcome_of(end: End) -> GatewayOutcome {
    match end {
        // Not reached: a handler only stops after setting its verdict.
        End::Stopped => GatewayOutcome::TimedOut,
        End::Connect(c) => GatewayOutcome::ConnectFailed(c),
        End::WriteTimedOut => GatewayOutcome::TimedOut,
        End::Write(err) => GatewayOutcome::send_failed(&err),
        End::Read(end) => GatewayOutcome::read_ended(end),
        End::Decode(DecodeError::Truncated) => GatewayOutcome::ClosedEarly,
        End::Decode(DecodeError::UnsupportedVersion(version)) => {
            GatewayOutcome::NotFastCgi { version }
        }
        End::Decode(err) => GatewayOutcome::InvalidRecord(err.to_string()),
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
                    GatewayOutcome::Values
                }
                Err(err) => GatewayOutcome::InvalidRecord(format!("GET_VALUES_RESULT: {err}")),
            }
        } else {
            GatewayOutcome::UnexpectedRecord(record.header.record_type)
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
    probe.gateway.outcome = verdict.unwrap_or_else(|| outcome_of(end));
    probe.gateway.elapsed = start.elapsed();
    tracing::debug!(endpoint = %probe.gateway.endpoint, outcome = %probe.gateway.outcome, "fastcgi get_values probe");
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
    verdict: Option<GatewayOutcome>,
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
                    return self.decide(probe, GatewayOutcome::NoHeaders);
                }
                self.stdout_total += content.len();
                probe.gateway.header_bytes = self.stdout_total;
                let room = self
                    .cap
                    .saturating_add(1)
                    .saturating_sub(self.head_buf.len());
                self.head_buf
                    .extend_from_slice(content.get(..room).unwrap_or(content));
                let state = self.parser.advance(&self.head_buf);
                match probe.gateway.judge_head(state, self.cap) {
                    Some(verdict) => self.decide(probe, verdict),
                    None if self.head_buf.len() > self.cap => {
                        self.decide(probe, GatewayOutcome::HeaderTooBig)
                    }
                    None => Flow::More,
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
                            GatewayOutcome::EndRequest { protocol_status }
                        }
                        _ => GatewayOutcome::UnexpectedRecord(other),
                    };
                    self.verdict = Some(verdict);
                }
                Flow::Stop
            }
        }
    }

    fn decide(&mut self, probe: &mut FcgiProbe, verdict: GatewayOutcome) -> Flow {
        let flow = if verdict == GatewayOutcome::Response {
            Flow::Settle
        } else {
            Flow::Stop
        };
        if verdict != GatewayOutcome::Response {
            probe.gateway.status = None;
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
pub async fn request(
    endpoint: &Endpoint,
    request: &FcgiRequest,
    limits: GatewayLimits,
) -> FcgiProbe {
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
    probe.gateway.outcome = judge.verdict.unwrap_or_else(|| outcome_of(end));
    probe.gateway.elapsed = start.elapsed();
    tracing::debug!(
        endpoint = %probe.gateway.endpoint,
        outcome = %probe.gateway.outcome,
        status = ?probe.gateway.status,
        "fastcgi request probe"
    );
    probe
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::fake::{After, limits, one_shot, read_request};
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
        assert_eq!(probe.gateway.outcome, GatewayOutcome::Response);
        assert_eq!(probe.gateway.status, Some(404));
        assert_eq!(probe.gateway.header_bytes, 50);
        assert_eq!(
            probe.stderr,
            vec![
                "PHP message: PHP Warning:  x".to_owned(),
                "second line".to_owned()
            ]
        );
        assert_eq!(probe.end_request, Some((0, 0)));
        assert!(probe.stdout_head.ends_with(b"File not found.\n"));
        assert_eq!(probe.gateway.head, reply_head());
        assert!(probe.gateway.first_byte.is_some() && probe.gateway.connect_time.is_some());

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
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::NotFastCgi { version: 72 }
        );
        assert!(probe.gateway.head.starts_with(b"HTTP/1.1 400"));
        assert!(
            probe
                .gateway
                .outcome
                .to_string()
                .contains("protocol version: 72")
        );
    }

    #[tokio::test]
    async fn invalid_type_and_request_id() {
        let probe = answer(rec(9, REQUEST_ID, b""), After::Close).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::InvalidRecord("invalid FastCGI record type: 9".to_owned())
        );
        let probe = answer(rec(STDOUT, 2, b"X: 1\r\n\r\n"), After::Close).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::InvalidRecord("unexpected FastCGI request id low byte: 2".to_owned())
        );
    }

    #[tokio::test]
    async fn stdout_ending_before_the_head_is_no_headers() {
        let mut reply = stdout(b"X-Partial: 1\r\n");
        reply.extend(stdout(b""));
        reply.extend(end_request(0, 0));
        let probe = answer(reply, After::Close).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::NoHeaders);
        assert_eq!(probe.gateway.header_bytes, 14);
        assert_eq!(probe.gateway.status, None);
    }

    #[tokio::test]
    async fn end_request_first_is_an_unexpected_record() {
        let probe = answer(end_request(0, 0), After::Close).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::UnexpectedRecord(3));
        assert_eq!(probe.end_request, Some((0, 0)));
        let probe = answer(end_request(0, 2), After::Close).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::EndRequest { protocol_status: 2 }
        );
        assert!(
            probe
                .gateway
                .outcome
                .to_string()
                .contains("FCGI_OVERLOADED")
        );
    }

    #[tokio::test]
    async fn status_ok_is_invalid() {
        let mut reply = stdout(b"Status: OK\r\n\r\n");
        reply.extend(end_request(0, 0));
        let probe = answer(reply, After::Close).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::InvalidStatus("OK".to_owned())
        );
        assert_eq!(probe.gateway.status, None);
    }

    #[tokio::test]
    async fn lying_length_then_close_is_closed_early() {
        let mut reply = vec![1, STDOUT, 0, 1, 0xff, 0xff, 0, 0];
        reply.extend_from_slice(b"X-A: 12345");
        let probe = answer(reply, After::Close).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::ClosedEarly);
        assert_eq!(probe.gateway.head.len(), 18);
        // Nothing at all, then close.
        let probe = answer(Vec::new(), After::Close).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::ClosedEarly);
        assert!(probe.gateway.head.is_empty() && probe.gateway.first_byte.is_none());
    }

    #[tokio::test]
    async fn reset_and_silence() {
        let probe = answer(Vec::new(), After::Reset).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::Reset);

        let (endpoint, _server) = one_shot(
            Vec::new(),
            request_complete,
            After::Hold(Duration::from_secs(3)),
        )
        .await;
        let quick = GatewayLimits {
            cap: 4096,
            timeout: Duration::from_millis(300),
        };
        let probe = request(&endpoint, &hello(), quick).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::TimedOut);
        assert!(
            probe.gateway.elapsed >= Duration::from_millis(300)
                && probe.gateway.elapsed < Duration::from_secs(1),
            "{:?}",
            probe.gateway.elapsed
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
        assert_eq!(probe.gateway.outcome, GatewayOutcome::HeaderTooBig);
        assert!(probe.gateway.header_bytes > 4096 && probe.gateway.header_bytes < 4096 + 2000);
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
        let quick = GatewayLimits {
            cap: 4096,
            timeout: Duration::from_millis(400),
        };
        let probe = request(&endpoint, &hello(), quick).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::TimedOut);
        assert!(
            probe.gateway.elapsed < Duration::from_secs(1),
            "{:?}",
            probe.gateway.elapsed
        );
        assert_eq!(probe.stderr.len(), STDERR_LINES);
        assert!(probe.stderr.iter().all(|l| l.len() == STDERR_LINE_LEN));
        assert_eq!(probe.gateway.header_bytes, 0);
    }

    #[tokio::test]
    async fn a_held_connection_after_the_head_does_not_hold_the_probe() {
        let reply = stdout(b"Content-type: text/html\r\n\r\nstreaming");
        let probe = answer(reply, After::Hold(Duration::from_secs(2))).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::Response);
        assert_eq!(probe.gateway.status, Some(200));
        assert_eq!(probe.end_request, None);
        assert!(
            probe.gateway.elapsed < Duration::from_millis(1500),
            "{:?}",
            probe.gateway.elapsed
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
        assert_eq!(probe.gateway.outcome, GatewayOutcome::Values);
        let values = probe.values.expect("values");
        assert_eq!(values.max_conns, Some(10));
        assert_eq!(values.max_reqs, Some(20));
        assert_eq!(values.mpxs_conns, Some(false));
        assert_eq!(values.raw.len(), 3);
        assert!(
            probe.gateway.elapsed < Duration::from_secs(1),
            "{:?}",
            probe.gateway.elapsed
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
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::NotFastCgi { version: 72 }
        );

        let reply = rec(UNKNOWN_TYPE, 0, &[GET_VALUES, 0, 0, 0, 0, 0, 0, 0]);
        let (endpoint, _server) = one_shot(reply, management_complete, After::Close).await;
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::UnexpectedRecord(UNKNOWN_TYPE)
        );

        let (endpoint, _server) = one_shot(Vec::new(), management_complete, After::Close).await;
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        assert_eq!(probe.gateway.outcome, GatewayOutcome::ClosedEarly);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr"));
        drop(listener);
        let probe = get_values(&endpoint, Duration::from_secs(2)).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::ConnectFailed(ConnectOutcome::Refused)
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
        assert_eq!(probe.gateway.outcome, GatewayOutcome::Response);
        assert_eq!(probe.gateway.status, Some(200));
        assert_eq!(probe.stdout_head, b"Status: 200 OK\r\n\r\nhi");
        assert!(probe.gateway.endpoint.starts_with("unix:"));
    }
}
