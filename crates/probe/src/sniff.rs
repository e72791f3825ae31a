//! Which protocol a port speaks, told from the bytes it sends.
//!
//! What belongs here: recognising a protocol from the first bytes a server sent
//! ([`identify`], pure), the small probe messages that make servers answer (a TLS
//! ClientHello, a FastCGI `GET_VALUES` record, the HTTP/2 preface, a Postgres
//! `SSLRequest`), and [`sniff`], which waits for a banner and then sends those probes on
//! separate connections. It answers "is `proxy_pass` pointing at the right kind of
//! server?": e.g. an HTTPS-only port, PHP-FPM, or an h2c-only gRPC server behind
//! `proxy_pass http://`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::connect::ConnectOutcome;
use crate::stream::{Endpoint, ReadEnd, open, read_bounded};

/// What [`Attempt::sent`] says for the banner wait (nothing sent).
pub const SENT_NOTHING: &str = "nothing (banner wait)";
/// What [`Attempt::sent`] says for the HTTP/1.0 request.
pub const SENT_HTTP: &str = "HTTP/1.0 GET /";
/// What [`Attempt::sent`] says for the TLS ClientHello.
pub const SENT_TLS: &str = "TLS ClientHello";
/// What [`Attempt::sent`] says for the FastCGI `GET_VALUES` record.
pub const SENT_FASTCGI: &str = "FastCGI GET_VALUES";
/// What [`Attempt::sent`] says for the HTTP/2 client preface.
pub const SENT_HTTP2: &str = "HTTP/2 preface";
/// What [`Attempt::sent`] says for the Postgres `SSLRequest`.
pub const SENT_POSTGRES: &str = "Postgres SSLRequest";

/// Longest banner wait, whatever the timeout.
pub const BANNER_WAIT_MAX: Duration = Duration::from_millis(300);
/// How long the other sniff attempts may still answer once one reply decided the protocol.
const EVIDENCE_GRACE: Duration = Duration::from_millis(150);

/// How many reply bytes an [`Attempt`] keeps.
pub const REPLY_EVIDENCE: usize = 64;

/// How many banner bytes a [`SniffReport`] keeps.
pub const BANNER_EVIDENCE: usize = 256;

/// Most bytes read per attempt.
const READ_CAP: usize = 4096;

/// How long to wait for an HTTP error page's body after its header arrived.
const HTTP_BODY_GRACE: Duration = Duration::from_millis(150);

/// A protocol a server can speak.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// HTTP/1.x.
    Http1,
    /// Cleartext HTTP/2 with prior knowledge (h2c), e.g. a gRPC server.
    Http2,
    /// TLS (an HTTPS or other TLS-only port).
    Tls,
    /// FastCGI, e.g. PHP-FPM.
    FastCgi,
    /// SSH.
    Ssh,
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
    /// Redis (or Valkey).
    Redis,
    /// memcached (text protocol).
    Memcached,
    /// SMTP.
    Smtp,
    /// FTP.
    Ftp,
}

impl Protocol {
    /// A short human name: `HTTP/1`, `HTTP/2 (h2c)`, `TLS`, `FastCGI`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1",
            Self::Http2 => "HTTP/2 (h2c)",
            Self::Tls => "TLS",
            Self::FastCgi => "FastCGI",
            Self::Ssh => "SSH",
            Self::Mysql => "MySQL",
            Self::Postgres => "PostgreSQL",
            Self::Redis => "Redis",
            Self::Memcached => "memcached",
            Self::Smtp => "SMTP",
            Self::Ftp => "FTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Texts HTTPS servers send back when they get plain HTTP (nginx, Apache, Go).
const HTTPS_PORT_TEXTS: [&[u8]; 3] = [
    b"The plain HTTP request was sent to HTTPS port",
    b"speaking plain HTTP to an SSL-enabled server port",
    b"Client sent an HTTP request to an HTTPS server",
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// True when an HTTP reply is an HTTPS server's "you sent plain HTTP" page.
pub fn mentions_https_port(bytes: &[u8]) -> bool {
    HTTPS_PORT_TEXTS.iter().any(|text| contains(bytes, text))
}

/// Tells the protocol from the first bytes a server sent: a banner, or its reply to one
/// of the probes of this module. `None` when nothing is recognised.
///
/// An HTTP reply that is an HTTPS server's "plain HTTP request was sent to HTTPS port"
/// page counts as [`Protocol::Tls`]. A `220` greeting is FTP when it mentions FTP, else
/// SMTP.
pub fn identify(bytes: &[u8]) -> Option<Protocol> {
    let starts = |prefix: &[u8]| bytes.starts_with(prefix);
    if is_tls_record(bytes) {
        return Some(Protocol::Tls);
    }
    if starts(b"HTTP/1.") {
        if mentions_https_port(bytes) {
            return Some(Protocol::Tls);
        }
        return Some(Protocol::Http1);
    }
    if starts(b"SSH-") {
        return Some(Protocol::Ssh);
    }
    if starts(b"220") && matches!(bytes.get(3), Some(b' ' | b'-')) {
        if contains_ignore_case(bytes, b"ftp") {
            return Some(Protocol::Ftp);
        }
        return Some(Protocol::Smtp);
    }
    const REDIS: [&[u8]; 7] = [
        b"-ERR",
        b"-NOAUTH",
        b"-DENIED",
        b"-WRONGPASS",
        b"-NOPERM",
        b"-LOADING",
        b"+PONG",
    ];
    if REDIS.iter().any(|prefix| starts(prefix)) {
        return Some(Protocol::Redis);
    }
    if starts(b"ERROR\r\n") || starts(b"CLIENT_ERROR ") || starts(b"SERVER_ERROR ") {
        return Some(Protocol::Memcached);
    }
    if bytes == b"N" || bytes == b"S" || is_postgres_error(bytes) {
        return Some(Protocol::Postgres);
    }
    if is_mysql_greeting(bytes) {
        return Some(Protocol::Mysql);
    }
    if is_fastcgi_record(bytes) {
        return Some(Protocol::FastCgi);
    }
    if is_http2_frame(bytes) {
        return Some(Protocol::Http2);
    }
    None
}

/// A TLS handshake (0x16) or alert (0x15) record header, versions 3.0 through 1.3.
fn is_tls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, 0..=4, ..])
}

/// A Postgres `ErrorResponse`: `E`, a 32-bit length, then the severity field `S`.
fn is_postgres_error(bytes: &[u8]) -> bool {
    match bytes {
        [b'E', a, b, c, d, b'S', ..] => {
            let len = u32::from_be_bytes([*a, *b, *c, *d]);
            (8..=65_536).contains(&len)
        }
        _ => false,
    }
}

/// A MySQL/MariaDB first packet: the v10 handshake, or an error packet (e.g. 1130 "host
/// is not allowed to connect", 1040 "too many connections").
fn is_mysql_greeting(bytes: &[u8]) -> bool {
    match bytes {
        [a, b, c, 0, 10, version, ..] => {
            let len = u32::from_le_bytes([*a, *b, *c, 0]);
            (20..=1024).contains(&len) && version.is_ascii_digit()
        }
        [a, b, c, 0, 0xff, lo, hi, ..] => {
            let len = u32::from_le_bytes([*a, *b, *c, 0]);
            let code = u16::from_le_bytes([*lo, *hi]);
            (3..=1024).contains(&len) && (1000..3000).contains(&code)
        }
        _ => false,
    }
}

/// A FastCGI record header (version 1) of a type a server sends.
fn is_fastcgi_record(bytes: &[u8]) -> bool {
    // END_REQUEST, STDOUT, STDERR, GET_VALUES_RESULT, UNKNOWN_TYPE
    matches!(bytes, [1, 3 | 6 | 7 | 10 | 11, _, _, _, _, _, 0, ..])
}

/// An HTTP/2 SETTINGS or GOAWAY frame header on stream 0.
fn is_http2_frame(bytes: &[u8]) -> bool {
    let [a, b, c, kind, flags, s0, s1, s2, s3, ..] = *bytes else {
        return false;
    };
    let len = u32::from_be_bytes([0, a, b, c]);
    let stream = u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff;
    if stream != 0 || len > 16_384 {
        return false;
    }
    match kind {
        4 => flags & !1 == 0 && len.is_multiple_of(6),
        7 => flags == 0 && len >= 8,
        _ => false,
    }
}

fn push_u16(out: &mut Vec<u8>, n: usize) {
    let n = u16::try_from(n).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
}

fn u16_list(items: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 * items.len());
    push_u16(&mut out, 2 * items.len());
    for item in items {
        out.extend_from_slice(&item.to_be_bytes());
    }
    out
}

fn push_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    push_u16(out, data.len());
    out.extend_from_slice(data);
}

/// A TLS ClientHello any TLS 1.2 or 1.3 server answers with a ServerHello: common cipher
/// suites, groups x25519/P-256/P-384, `supported_versions` with 1.3 and 1.2, an x25519
/// key share, no SNI. It is only meant to make the server answer; nothing follows it.
pub fn tls_client_hello() -> Vec<u8> {
    const SUITES: [u16; 13] = [
        0x1301, 0x1302, 0x1303, // TLS 1.3 AES-128-GCM, AES-256-GCM, CHACHA20
        0xc02b, 0xc02f, 0xc02c, 0xc030, // ECDHE-{ECDSA,RSA}-AES{128,256}-GCM
        0xcca9, 0xcca8, // ECDHE-{ECDSA,RSA}-CHACHA20-POLY1305
        0x009c, 0x009d, 0x002f, 0x0035, // RSA AES-GCM and AES-CBC
    ];
    let mut body = vec![0x03, 0x03];
    body.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    body.push(32);
    body.extend((0u8..32).map(|i| i.wrapping_mul(91).wrapping_add(7)));
    body.extend(u16_list(&SUITES));
    body.extend_from_slice(&[1, 0]); // compression: null only

    let mut extensions = Vec::new();
    push_extension(
        &mut extensions,
        0x000a, // supported_groups
        &u16_list(&[0x001d, 0x0017, 0x0018]),
    );
    push_extension(&mut extensions, 0x000b, &[1, 0]); // ec_point_formats: uncompressed
    push_extension(
        &mut extensions,
        0x000d, // signature_algorithms
        &u16_list(&[
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0807,
        ]),
    );
    push_extension(&mut extensions, 0x002b, &[4, 0x03, 0x04, 0x03, 0x03]); // supported_versions
    // key_share: one x25519 share, the curve's base point (a valid public key; some
    // servers, rustls among them, refuse a ClientHello without this extension)
    let mut key_share = vec![0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 9];
    key_share.resize(key_share.len() + 31, 0);
    push_extension(&mut extensions, 0x0033, &key_share);
    push_extension(&mut extensions, 0xff01, &[0]); // renegotiation_info
    push_u16(&mut body, extensions.len());
    body.extend(extensions);

    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    let mut handshake = vec![0x01]; // client_hello
    handshake.extend_from_slice(len.get(1..).unwrap_or_default());
    handshake.extend(body);

    let mut record = vec![0x16, 0x03, 0x01];
    push_u16(&mut record, handshake.len());
    record.extend(handshake);
    record
}

/// A FastCGI `FCGI_GET_VALUES` record (version 1, type 9, request id 0) asking for
/// `FCGI_MAX_CONNS`, `FCGI_MAX_REQS` and `FCGI_MPXS_CONNS`; a FastCGI server answers with
/// `FCGI_GET_VALUES_RESULT` (type 10).
pub fn fastcgi_get_values() -> Vec<u8> {
    let mut content = Vec::new();
    for name in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"] {
        content.push(u8::try_from(name.len()).unwrap_or(0));
        content.push(0);
        content.extend_from_slice(name.as_bytes());
    }
    let padding = (8 - content.len() % 8) % 8;
    let mut record = vec![1, 9, 0, 0];
    push_u16(&mut record, content.len());
    record.push(u8::try_from(padding).unwrap_or(0));
    record.push(0);
    record.extend(content);
    record.resize(record.len() + padding, 0);
    record
}

/// The HTTP/2 client connection preface followed by an empty SETTINGS frame.
pub fn http2_preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    out
}

/// The Postgres `SSLRequest` message; a Postgres server answers with one byte, `S` or `N`.
pub fn postgres_ssl_request() -> Vec<u8> {
    vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
}

fn http_get(endpoint: &Endpoint) -> Vec<u8> {
    let host = match endpoint {
        Endpoint::Tcp(addr) => addr.to_string(),
        Endpoint::Unix(_) => "localhost".to_owned(),
    };
    format!("GET / HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// One thing sent on its own connection, and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// What was sent: one of [`SENT_NOTHING`], [`SENT_HTTP`], [`SENT_TLS`],
    /// [`SENT_FASTCGI`], [`SENT_HTTP2`], [`SENT_POSTGRES`].
    #[serde(deserialize_with = "sent_of")]
    pub sent: Sent,
    /// The first bytes of the reply (at most [`REPLY_EVIDENCE`]).
    pub reply: Vec<u8>,
    /// Why reading stopped ([`ReadEnd::Done`]: the reply was recognised). A failed connect
    /// shows as [`ReadEnd::Error`] (or [`ReadEnd::TimedOut`]).
    pub end: ReadEnd,
    /// What the whole reply looked like.
    pub identified: Option<Protocol>,
}

/// One of the `SENT_*` texts (a name serde does not take for a borrowed string).
pub type Sent = &'static str;

/// One of the `SENT_*` texts for `name` (for an attempt read back from JSON).
fn sent_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    [
        SENT_NOTHING,
        SENT_HTTP,
        SENT_TLS,
        SENT_FASTCGI,
        SENT_HTTP2,
        SENT_POSTGRES,
    ]
    .into_iter()
    .find(|known| *known == name)
    .ok_or_else(|| serde::de::Error::custom(format!("{name}: sent nothing a sniff sends")))
}

/// What [`sniff`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SniffReport {
    /// The endpoint as nginx writes it.
    pub endpoint: String,
    /// The protocol the port speaks, when recognised.
    pub speaks: Option<Protocol>,
    /// What the server sent before we sent anything (at most [`BANNER_EVIDENCE`] bytes).
    pub banner: Option<Vec<u8>>,
    /// Every attempt that finished, the banner wait first. Attempts still running when the
    /// answer was certain are dropped and not listed.
    pub tried: Vec<Attempt>,
    /// How long the sniff took.
    pub elapsed: Duration,
    /// Set when even the first connection failed (nothing else is tried then).
    pub connect_error: Option<ConnectOutcome>,
}

/// The probes sent after the banner wait, each on its own connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Tls,
    FastCgi,
    Http2,
    Postgres,
}

impl Kind {
    const ALL: [Self; 5] = [
        Self::Http,
        Self::Tls,
        Self::FastCgi,
        Self::Http2,
        Self::Postgres,
    ];

    fn sent(self) -> &'static str {
        match self {
            Self::Http => SENT_HTTP,
            Self::Tls => SENT_TLS,
            Self::FastCgi => SENT_FASTCGI,
            Self::Http2 => SENT_HTTP2,
            Self::Postgres => SENT_POSTGRES,
        }
    }

    fn payload(self, endpoint: &Endpoint) -> Vec<u8> {
        match self {
            Self::Http => http_get(endpoint),
            Self::Tls => tls_client_hello(),
            Self::FastCgi => fastcgi_get_values(),
            Self::Http2 => http2_preface(),
            Self::Postgres => postgres_ssl_request(),
        }
    }

    /// The protocol this probe confirms when the reply is of that protocol.
    fn confirms(self) -> Protocol {
        match self {
            Self::Http => Protocol::Http1,
            Self::Tls => Protocol::Tls,
            Self::FastCgi => Protocol::FastCgi,
            Self::Http2 => Protocol::Http2,
            Self::Postgres => Protocol::Postgres,
        }
    }
}

fn evidence(bytes: &[u8], max: usize) -> Vec<u8> {
    bytes.get(..max).unwrap_or(bytes).to_vec()
}

fn connect_failed(outcome: &ConnectOutcome) -> ReadEnd {
    match outcome {
        ConnectOutcome::TimedOut => ReadEnd::TimedOut,
        other => ReadEnd::Error {
            errno: other.errno(),
            message: format!("connect failed: {other}"),
        },
    }
}

fn header_ended(bytes: &[u8]) -> bool {
    contains(bytes, b"\r\n\r\n") || contains(bytes, b"\n\n")
}

/// Enough of a reply to stop reading: recognised, and for HTTP the whole header.
fn reply_complete(bytes: &[u8]) -> bool {
    match identify(bytes) {
        None => false,
        Some(Protocol::Http1) => header_ended(bytes),
        Some(_) => true,
    }
}

/// Sends `payload` on a new connection and reads the reply until it is recognised, the
/// peer closes, or `deadline`.
async fn attempt(endpoint: &Endpoint, kind: Kind, deadline: Instant) -> Attempt {
    let sent = kind.sent();
    let mut stream = match open(endpoint, deadline).await {
        Ok((stream, _)) => stream,
        Err(outcome) => {
            return Attempt {
                sent,
                reply: Vec::new(),
                end: connect_failed(&outcome),
                identified: None,
            };
        }
    };
    // A failed write is not final: the server may have answered or closed already.
    let payload = kind.payload(endpoint);
    let _ = tokio::time::timeout_at(deadline, stream.write_all(&payload)).await;
    let first = read_bounded(&mut stream, deadline, READ_CAP, reply_complete).await;
    let mut bytes = first.bytes;
    if first.end == ReadEnd::Done && identify(&bytes) == Some(Protocol::Http1) {
        // an HTTPS server's "plain HTTP" page may follow its header
        let grace = (Instant::now() + HTTP_BODY_GRACE).min(deadline);
        let room = READ_CAP.saturating_sub(bytes.len());
        let more = read_bounded(&mut stream, grace, room, mentions_https_port).await;
        bytes.extend_from_slice(&more.bytes);
    }
    Attempt {
        sent,
        reply: evidence(&bytes, REPLY_EVIDENCE),
        end: first.end,
        identified: identify(&bytes),
    }
}

/// The attempts finished so far, by kind.
#[derive(Debug, Default)]
struct Replies {
    done: Vec<(Kind, Attempt)>,
}

impl Replies {
    fn get(&self, kind: Kind) -> Option<&Attempt> {
        self.done.iter().find(|(k, _)| *k == kind).map(|(_, a)| a)
    }

    fn said(&self, kind: Kind) -> Option<Protocol> {
        self.get(kind).and_then(|a| a.identified)
    }

    /// A probe whose reply is of the protocol it probes for, in [`Kind::ALL`] order.
    fn confirmed(&self) -> Option<Protocol> {
        Kind::ALL
            .iter()
            .filter(|kind| **kind != Kind::Http)
            .find(|kind| self.said(**kind) == Some(kind.confirms()))
            .map(|kind| kind.confirms())
    }

    /// The answer once it can no longer change; `None` while it still can.
    ///
    /// The HTTP/1 request decides first: a status line means HTTP/1 (unless it is a
    /// 400/505 and the preface got SETTINGS: an h2c-only server), an HTTPS server's plain
    /// HTTP page means TLS, and any other recognised reply names the server directly.
    /// Otherwise a probe answered in its own protocol decides; failing that, the first
    /// recognised reply (in [`Kind::ALL`] order) once every probe has finished.
    fn verdict(&self) -> Option<Option<Protocol>> {
        let all_done = self.done.len() == Kind::ALL.len();
        let http = self.get(Kind::Http)?;
        match http.identified {
            Some(Protocol::Http1) if matches!(http_status(&http.reply), Some(400 | 505)) => {
                self.get(Kind::Http2)?;
                if self.said(Kind::Http2) == Some(Protocol::Http2) {
                    return Some(Some(Protocol::Http2));
                }
                Some(Some(Protocol::Http1))
            }
            Some(protocol) => Some(Some(protocol)),
            None => match self.confirmed() {
                Some(protocol) => Some(Some(protocol)),
                None if all_done => Some(Kind::ALL.iter().find_map(|kind| self.said(*kind))),
                None => None,
            },
        }
    }
}

/// The status code of an `HTTP/1.x NNN` reply.
fn http_status(reply: &[u8]) -> Option<u16> {
    let digits = reply.get(9..12)?;
    if !reply.starts_with(b"HTTP/1.") || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Finds out what protocol `endpoint` speaks, within `timeout`.
///
/// First connects and waits up to `min(timeout / 4, 300 ms)` for a banner (SSH, SMTP,
/// FTP, MySQL speak first). If none identifies the server, sends on separate, concurrent
/// connections an HTTP/1.0 `GET /`, a TLS ClientHello, a FastCGI `GET_VALUES` record, the
/// HTTP/2 preface and a Postgres `SSLRequest`, and decides from the replies as soon as
/// the answer is certain. Only the first connection's failure is reported as
/// [`SniffReport::connect_error`].
pub async fn sniff(endpoint: &Endpoint, timeout: Duration) -> SniffReport {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut report = SniffReport {
        endpoint: endpoint.to_string(),
        speaks: None,
        banner: None,
        tried: Vec::new(),
        elapsed: Duration::ZERO,
        connect_error: None,
    };
    run(endpoint, deadline, timeout, &mut report).await;
    report.elapsed = start.elapsed();
    tracing::debug!(
        endpoint = %report.endpoint,
        speaks = ?report.speaks,
        attempts = report.tried.len(),
        "protocol sniff"
    );
    report
}

async fn run(endpoint: &Endpoint, deadline: Instant, timeout: Duration, report: &mut SniffReport) {
    let mut stream = match open(endpoint, deadline).await {
        Ok((stream, _)) => stream,
        Err(outcome) => {
            report.connect_error = Some(outcome);
            return;
        }
    };
    let wait_until = (Instant::now() + (timeout / 4).min(BANNER_WAIT_MAX)).min(deadline);
    let banner = read_bounded(&mut stream, wait_until, BANNER_EVIDENCE, |b| {
        identify(b).is_some()
    })
    .await;
    drop(stream);
    let identified = identify(&banner.bytes);
    if !banner.bytes.is_empty() {
        report.banner = Some(banner.bytes.clone());
    }
    report.tried.push(Attempt {
        sent: SENT_NOTHING,
        reply: evidence(&banner.bytes, REPLY_EVIDENCE),
        end: banner.end,
        identified,
    });
    if identified.is_some() {
        report.speaks = identified;
        return;
    }

    let mut tasks = JoinSet::new();
    for kind in Kind::ALL {
        let endpoint = endpoint.clone();
        tasks.spawn(async move { (kind, attempt(&endpoint, kind, deadline).await) });
    }
    let mut replies = Replies::default();
    // Every attempt ends by `deadline` on its own; the outer bound is a safety net.
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(done) => replies.done.push(done),
                Err(err) => tracing::warn!(%err, "sniff attempt failed"),
            }
            if let Some(answer) = replies.verdict() {
                return answer;
            }
        }
        // only when an attempt task itself failed
        replies
            .confirmed()
            .or_else(|| Kind::ALL.iter().find_map(|kind| replies.said(*kind)))
    };
    let speaks = tokio::time::timeout_at(deadline + Duration::from_millis(50), collect)
        .await
        .unwrap_or_default();
    // The other answers are evidence too: give those on their way a moment, so what is shown
    // does not depend on which reply came first.
    if speaks.is_some() {
        let grace = (Instant::now() + EVIDENCE_GRACE).min(deadline);
        let drain = async {
            while let Some(joined) = tasks.join_next().await {
                if let Ok(done) = joined {
                    replies.done.push(done);
                }
            }
        };
        let _ = tokio::time::timeout_at(grace, drain).await;
    }
    tasks.abort_all();
    report.speaks = speaks;
    for kind in Kind::ALL {
        if let Some(found) = replies.get(kind) {
            report.tried.push(found.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    const SECOND: Duration = Duration::from_secs(1);

    /// Serves every connection with `handle` until the test's runtime ends.
    async fn serve<F, Fut>(handle: F) -> Endpoint
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            for _ in 0..64 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(handle(stream));
            }
        });
        Endpoint::Tcp(addr)
    }

    /// One read, bounded in time; empty on close, error or timeout.
    async fn read_some(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(n)) => buf.get(..n).unwrap_or_default().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Waits until the client closes (or a few seconds pass).
    async fn hold(mut stream: TcpStream) {
        let _ = read_some(&mut stream, 5 * SECOND).await;
        let _ = read_some(&mut stream, 5 * SECOND).await;
    }

    async fn sniffed(endpoint: &Endpoint) -> SniffReport {
        let report = sniff(endpoint, 3 * SECOND).await;
        assert!(report.elapsed < 3 * SECOND + Duration::from_millis(200));
        report
    }

    #[test]
    fn identifies_first_bytes() {
        let cases: [(&[u8], Option<Protocol>); 22] = [
            (b"HTTP/1.1 200 OK\r\n", Some(Protocol::Http1)),
            (b"HTTP/1.0 404", Some(Protocol::Http1)),
            (
                b"HTTP/1.1 400 Bad Request\r\n\r\n<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>",
                Some(Protocol::Tls),
            ),
            (b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n", Some(Protocol::Tls)),
            (&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32], Some(Protocol::Tls)),
            (&[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02], Some(Protocol::Tls)),
            (b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", Some(Protocol::Ssh)),
            (b"220 mail.example.org ESMTP Postfix\r\n", Some(Protocol::Smtp)),
            (b"220 (vsFTPd 3.0.3)\r\n", Some(Protocol::Ftp)),
            (b"220-Welcome to Pure-FTPd\r\n", Some(Protocol::Ftp)),
            (b"-ERR wrong number of arguments for 'get' command\r\n", Some(Protocol::Redis)),
            (b"-NOAUTH Authentication required.\r\n", Some(Protocol::Redis)),
            (b"+PONG\r\n", Some(Protocol::Redis)),
            (b"ERROR\r\n", Some(Protocol::Memcached)),
            (b"N", Some(Protocol::Postgres)),
            (b"E\x00\x00\x00\x60SFATAL\x00VFATAL\x00C0A000\x00", Some(Protocol::Postgres)),
            (b"\x4a\x00\x00\x00\x0a8.0.36\x00\x01\x00\x00\x00", Some(Protocol::Mysql)),
            (b"\x45\x00\x00\x00\xff\x6a\x04Host '10.0.0.1' is not allowed", Some(Protocol::Mysql)),
            (b"\x01\x0a\x00\x00\x00\x30\x00\x00", Some(Protocol::FastCgi)),
            // what nginx 1.22 on an h2c port answers to an HTTP/1.0 request
            (b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x80", Some(Protocol::Http2)),
            (b"<html>hello</html>", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(identify(bytes), want, "{}", bytes.escape_ascii());
        }
        assert_eq!(
            identify(b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"),
            Some(Protocol::Http2)
        );
        assert_eq!(identify(b"\x00\x00\x05\x04\x00\x00\x00\x00\x00"), None);
        assert_eq!(identify(b"\x00\x00\x06\x04\x00\x00\x00\x00\x01"), None);
        assert_eq!(Protocol::Http2.to_string(), "HTTP/2 (h2c)");
        assert_eq!(Protocol::FastCgi.name(), "FastCGI");
    }

    #[test]
    fn probe_messages_are_well_formed() {
        let hello = tls_client_hello();
        assert_eq!(hello.get(..3), Some([0x16, 0x03, 0x01].as_slice()));
        let record_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
        assert_eq!(record_len, hello.len() - 5);
        assert_eq!(hello[5], 0x01);
        let hs_len = (usize::from(hello[7]) << 8) | usize::from(hello[8]);
        assert_eq!(hs_len, hello.len() - 9);
        assert!(contains(
            &hello,
            &[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]
        ));

        let fcgi = fastcgi_get_values();
        assert_eq!(fcgi.get(..8), Some([1, 9, 0, 0, 0, 48, 0, 0].as_slice()));
        assert_eq!(fcgi.len(), 56);
        assert_eq!(fcgi.get(8..24), Some(b"\x0e\x00FCGI_MAX_CONNS".as_slice()));

        let preface = http2_preface();
        assert_eq!(preface.len(), 24 + 9);
        assert_eq!(postgres_ssl_request(), [0, 0, 0, 8, 4, 210, 22, 47]);
    }

    #[tokio::test]
    async fn http_server() {
        let endpoint = serve(|mut stream| async move {
            let request = read_some(&mut stream, 2 * SECOND).await;
            if request.starts_with(b"GET ") {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            } else if contains(&request, b"\r\n") {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            } else {
                hold(stream).await;
            }
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Http1));
        assert_eq!(report.banner, None);
        let first = report.tried.first().expect("banner wait");
        assert_eq!(first.sent, SENT_NOTHING);
        assert_eq!(first.end, ReadEnd::TimedOut);
        let http = report
            .tried
            .iter()
            .find(|a| a.sent == SENT_HTTP)
            .expect("http attempt");
        assert_eq!(http.identified, Some(Protocol::Http1));
        assert!(http.reply.starts_with(b"HTTP/1.1 200 OK"));
        // decided without waiting for the probes that got no answer
        assert!(report.elapsed < 2 * SECOND, "{:?}", report.elapsed);
    }

    fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test]
    async fn real_tls_server() {
        let acceptor = tls_acceptor();
        let endpoint = serve(move |stream| {
            let acceptor = acceptor.clone();
            async move {
                let _ = tokio::time::timeout(5 * SECOND, acceptor.accept(stream)).await;
            }
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Tls));
        // rustls accepts our ClientHello: a handshake record (ServerHello or
        // HelloRetryRequest) comes back, not an alert
        let tls = attempt(&endpoint, Kind::Tls, Instant::now() + 2 * SECOND).await;
        assert_eq!(tls.identified, Some(Protocol::Tls));
        assert_eq!(tls.end, ReadEnd::Done);
        assert_eq!(tls.reply.first(), Some(&0x16), "{:?}", tls.reply);
        assert_eq!(
            tls.reply.get(5),
            Some(&0x02),
            "{}",
            tls.reply.escape_ascii()
        );
    }

    #[tokio::test]
    async fn nginx_like_https_port() {
        let endpoint = serve(|mut stream| async move {
            let request = read_some(&mut stream, 2 * SECOND).await;
            let answer: &[u8] = match request.first() {
                Some(0x16) => &[0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00, 0x00, 0x56, 0x03, 0x03],
                Some(_) => b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\n\r\n<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n",
                None => return,
            };
            let _ = stream.write_all(answer).await;
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Tls));
        let http = report
            .tried
            .iter()
            .find(|a| a.sent == SENT_HTTP)
            .expect("http attempt");
        assert_eq!(http.identified, Some(Protocol::Tls));
    }

    #[tokio::test]
    async fn ssh_banner() {
        let endpoint = serve(|mut stream| async move {
            let _ = stream
                .write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
                .await;
            hold(stream).await;
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Ssh));
        assert_eq!(report.tried.len(), 1);
        assert_eq!(
            report.banner.as_deref(),
            Some(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".as_slice())
        );
        assert!(report.elapsed < Duration::from_millis(250));
    }

    #[tokio::test]
    async fn mysql_handshake() {
        let endpoint = serve(|mut stream| async move {
            let mut payload = vec![10];
            payload.extend_from_slice(b"8.0.36\0");
            payload.extend_from_slice(&[9, 0, 0, 0]); // connection id
            payload.extend_from_slice(b"abcdefgh\0"); // auth data part 1, filler
            payload.extend_from_slice(&[0xff, 0xf7, 0xff, 0x02, 0x00, 0xff, 0xdf, 21]);
            payload.extend_from_slice(&[0; 10]);
            payload.extend_from_slice(b"ijklmnopqrst\0caching_sha2_password\0");
            let mut packet = u32::try_from(payload.len())
                .expect("len")
                .to_le_bytes()
                .to_vec();
            packet.truncate(3);
            packet.push(0);
            packet.extend(payload);
            let _ = stream.write_all(&packet).await;
            hold(stream).await;
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Mysql));
        assert_eq!(report.tried.len(), 1);
    }

    #[tokio::test]
    async fn fastcgi_responder() {
        let endpoint = serve(|mut stream| async move {
            let request = read_some(&mut stream, 2 * SECOND).await;
            // like PHP-FPM: anything that is not a version-1 record is dropped
            if request.get(..2) != Some([1, 9].as_slice()) {
                return;
            }
            let mut content = Vec::new();
            for (name, value) in [
                ("FCGI_MAX_CONNS", "5"),
                ("FCGI_MAX_REQS", "5"),
                ("FCGI_MPXS_CONNS", "0"),
            ] {
                content.push(u8::try_from(name.len()).expect("len"));
                content.push(1);
                content.extend_from_slice(name.as_bytes());
                content.extend_from_slice(value.as_bytes());
            }
            let mut record = vec![
                1,
                10,
                0,
                0,
                0,
                u8::try_from(content.len()).expect("len"),
                0,
                0,
            ];
            record.extend(content);
            let _ = stream.write_all(&record).await;
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::FastCgi));
        let fcgi = report
            .tried
            .iter()
            .find(|a| a.sent == SENT_FASTCGI)
            .expect("fastcgi attempt");
        assert_eq!(fcgi.reply.get(..2), Some([1, 10].as_slice()));
        let http = report
            .tried
            .iter()
            .find(|a| a.sent == SENT_HTTP)
            .expect("http attempt");
        assert_eq!(http.end, ReadEnd::Eof);
    }

    #[tokio::test]
    async fn h2c_server() {
        let settings: &[u8] = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";
        let endpoint = serve(move |mut stream| async move {
            let request = read_some(&mut stream, 2 * SECOND).await;
            if request.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") {
                let _ = stream.write_all(settings).await;
                let _ = stream
                    .write_all(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
                    .await;
                hold(stream).await;
            } else if !request.is_empty() {
                // like nginx: SETTINGS, then GOAWAY(PROTOCOL_ERROR)
                let _ = stream.write_all(settings).await;
                let _ = stream
                    .write_all(
                        b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
                    )
                    .await;
            }
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Http2));
    }

    #[tokio::test]
    async fn h2c_server_answering_http1_with_400() {
        let endpoint = serve(|mut stream| async move {
            let request = read_some(&mut stream, 2 * SECOND).await;
            if request.starts_with(b"PRI * HTTP/2.0") {
                let _ = stream
                    .write_all(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                    .await;
                hold(stream).await;
            } else if request.starts_with(b"GET ") {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            } else {
                hold(stream).await;
            }
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Http2));
    }

    #[tokio::test]
    async fn redis_like_server() {
        let endpoint = serve(|mut stream| async move {
            let request = read_some(&mut stream, 2 * SECOND).await;
            if request.starts_with(b"GET ") {
                let _ = stream
                    .write_all(b"-ERR wrong number of arguments for 'get' command\r\n")
                    .await;
            } else if contains(&request, b"\r\n") {
                let _ = stream.write_all(b"-ERR unknown command\r\n").await;
            } else {
                hold(stream).await;
            }
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Redis));
    }

    #[tokio::test]
    async fn postgres_like_server() {
        let endpoint = serve(|mut stream| async move {
            let request = read_some(&mut stream, 2 * SECOND).await;
            if request == postgres_ssl_request() {
                let _ = stream.write_all(b"N").await;
                hold(stream).await;
            }
            // anything else: "invalid length of startup packet", close
        })
        .await;
        let report = sniffed(&endpoint).await;
        assert_eq!(report.speaks, Some(Protocol::Postgres));
    }

    #[tokio::test]
    async fn silent_server_is_unknown_within_the_timeout() {
        let endpoint = serve(hold).await;
        let timeout = Duration::from_millis(600);
        let report = sniff(&endpoint, timeout).await;
        assert_eq!(report.speaks, None);
        assert_eq!(report.banner, None);
        assert!(report.elapsed >= timeout);
        assert!(
            report.elapsed < timeout + Duration::from_millis(200),
            "{:?}",
            report.elapsed
        );
        assert_eq!(report.tried.len(), 6);
        assert!(report.tried.iter().all(|a| a.end == ReadEnd::TimedOut));
        // the banner wait is a quarter of the timeout
        assert_eq!(report.tried.first().map(|a| a.sent), Some(SENT_NOTHING));
    }

    #[tokio::test]
    async fn refused_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let report = sniff(&Endpoint::Tcp(addr), SECOND).await;
        assert_eq!(report.connect_error, Some(ConnectOutcome::Refused));
        assert_eq!(report.speaks, None);
        assert!(report.tried.is_empty());
    }

    #[tokio::test]
    async fn unix_socket_http_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        tokio::spawn(async move {
            for _ in 0..16 {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    let Ok(Ok(n)) = tokio::time::timeout(2 * SECOND, stream.read(&mut buf)).await
                    else {
                        return;
                    };
                    if buf
                        .get(..n)
                        .is_some_and(|b| b.starts_with(b"GET / HTTP/1.0\r\nHost: localhost\r\n"))
                    {
                        let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
                    }
                });
            }
        });
        let report = sniffed(&Endpoint::Unix(path)).await;
        assert_eq!(report.speaks, Some(Protocol::Http1));
    }
}
