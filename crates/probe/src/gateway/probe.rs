//! The result and bounds of a gateway probe (FastCGI, uwsgi or SCGI), why a request could
//! not be encoded, and the one method a probe ever sends.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::head::HeadState;
use super::outcome::GatewayOutcome;
use crate::stream::Endpoint;

/// How many raw bytes [`GatewayProbe::head`] keeps.
pub(crate) const RAW_HEAD: usize = 64;

/// Bounds of one request probe (FastCGI request, uwsgi, SCGI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayLimits {
    /// The most header bytes accepted (nginx: `fastcgi_buffer_size`, `uwsgi_buffer_size`,
    /// `scgi_buffer_size`); a larger head is [`GatewayOutcome::HeaderTooBig`]. For FastCGI
    /// it counts the CGI head in STDOUT, not record framing.
    pub cap: usize,
    /// The whole probe (connect, send, read) ends by then.
    pub timeout: Duration,
}

impl Default for GatewayLimits {
    /// nginx's default buffer (one 4 KiB page) and 5 seconds.
    fn default() -> Self {
        Self {
            cap: 4096,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The result of one gateway probe: what every one of them reports (FastCGI's adds its
/// own, see [`crate::fastcgi::FcgiProbe`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayProbe {
    /// The endpoint as nginx writes it.
    pub endpoint: String,
    /// How long the connect took, when it succeeded.
    pub connect_time: Option<Duration>,
    /// Time from the end of sending to the first byte received.
    pub first_byte: Option<Duration>,
    /// Time of the whole probe.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: GatewayOutcome,
    /// The status nginx derives from a complete head: the status line's (uwsgi, SCGI),
    /// `Status:`, 302 for `Location:`, else 200.
    pub status: Option<u16>,
    /// Bytes of the head through the empty line (for FastCGI: of the CGI head in STDOUT);
    /// without a complete head, the (STDOUT) bytes received.
    pub header_bytes: usize,
    /// The first (at most 64) raw bytes received, as evidence.
    pub head: Vec<u8>,
}

impl GatewayProbe {
    /// A probe of `endpoint` that has not ended yet (its outcome says timed out until it
    /// does).
    pub(crate) fn new(endpoint: &Endpoint) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            connect_time: None,
            first_byte: None,
            elapsed: Duration::ZERO,
            outcome: GatewayOutcome::TimedOut,
            status: None,
            header_bytes: 0,
            head: Vec::new(),
        }
    }

    /// The verdict on a head that the parser has judged, against the `cap`, with the head's
    /// size and status recorded; `None` while the head is incomplete.
    pub(crate) fn judge_head(&mut self, state: HeadState, cap: usize) -> Option<GatewayOutcome> {
        let outcome = match state {
            HeadState::Incomplete => return None,
            HeadState::Done { len, .. } if len > cap => {
                self.header_bytes = len;
                GatewayOutcome::HeaderTooBig
            }
            HeadState::Done { len, status } => {
                self.header_bytes = len;
                self.status = Some(status);
                GatewayOutcome::Response
            }
            HeadState::InvalidHeader(text) => GatewayOutcome::InvalidHeader(text),
            HeadState::InvalidStatus(value) => GatewayOutcome::InvalidStatus(value),
        };
        Some(outcome)
    }
}

/// Why a uwsgi or SCGI request cannot be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The uwsgi vars exceed 65535 bytes (nginx: "uwsgi request is too big: N").
    #[error("uwsgi request is too big: {0}")]
    TooBig(usize),
    /// An SCGI header name or value contains a NUL byte, which SCGI cannot carry.
    #[error("NUL byte in SCGI header {0}")]
    Nul(String),
}

/// GET or HEAD; anything else is sent as GET (the probes never send a body).
pub(crate) fn safe_method(method: &str) -> &'static str {
    if method.eq_ignore_ascii_case("HEAD") {
        "HEAD"
    } else {
        "GET"
    }
}
