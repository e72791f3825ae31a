//! How a gateway probe ended: the one outcome type of the FastCGI, uwsgi and SCGI probes,
//! with its wording, and the outcomes of a failed send or of a read that ended before the
//! head did.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use crate::connect::ConnectOutcome;
use crate::stream::ReadEnd;

/// How a gateway probe ended: a FastCGI probe ([`crate::fastcgi`]), uwsgi
/// ([`crate::uwsgi`]) or SCGI ([`crate::scgi`]).
///
/// The variants up to `ReadError` can end any of them; `InvalidRequest` is uwsgi's and
/// SCGI's; the variants from `Values` on are FastCGI's alone (its management record and
/// its record layer).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayOutcome {
    /// A complete response head arrived (for FastCGI: a complete CGI head in STDOUT).
    Response,
    /// The connect failed.
    ConnectFailed(ConnectOutcome),
    /// The peer closed before a complete head (nginx: "upstream prematurely closed
    /// connection"); for FastCGI possibly inside a record whose length it had announced.
    ClosedEarly,
    /// The peer reset the connection (104).
    Reset,
    /// No complete head within the probe timeout.
    TimedOut,
    /// The head is larger than the cap (nginx: "upstream sent too big header").
    HeaderTooBig,
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
    /// uwsgi and SCGI: the request could not be encoded (nothing was sent).
    InvalidRequest(String),
    /// FastCGI: `FCGI_GET_VALUES_RESULT` received, the peer speaks FastCGI.
    Values,
    /// FastCGI: the first byte is not 1 (nginx: "upstream sent unsupported FastCGI protocol
    /// version: N"); 72 (`H`) is an HTTP server, 21 a TLS alert, 60 (`<`) HTML.
    NotFastCgi {
        /// The first byte received.
        version: u8,
    },
    /// FastCGI: an invalid record type or request id; the text is nginx's, e.g. "invalid
    /// FastCGI record type: 9".
    InvalidRecord(String),
    /// FastCGI: STDOUT ended before the head did (nginx: "upstream prematurely closed
    /// FastCGI stdout").
    NoHeaders,
    /// FastCGI: a record other than STDOUT/STDERR before the head, typically END_REQUEST (3)
    /// of a script that printed nothing (nginx: "upstream sent unexpected FastCGI record:
    /// 3").
    UnexpectedRecord(u8),
    /// FastCGI: END_REQUEST before the head with a protocol status other than
    /// REQUEST_COMPLETE: 1 `FCGI_CANT_MPX_CONN`, 2 `FCGI_OVERLOADED`, 3
    /// `FCGI_UNKNOWN_ROLE`. nginx logs it as "upstream sent unexpected FastCGI record: 3".
    EndRequest {
        /// The protocol status.
        protocol_status: u8,
    },
}

impl GatewayOutcome {
    /// The outcome of a send that failed with `err`: a reset, or another write error.
    pub(crate) fn send_failed(err: &io::Error) -> Self {
        match ReadEnd::from_io_error(err) {
            ReadEnd::Reset => Self::Reset,
            _ => Self::WriteError {
                errno: err.raw_os_error(),
                message: err.to_string(),
            },
        }
    }

    /// The outcome of a read that ended with `end` before a complete head: more than the
    /// cap is a too-big header, the end of input a premature close.
    pub(crate) fn read_ended(end: ReadEnd) -> Self {
        match end {
            ReadEnd::Capped => Self::HeaderTooBig,
            ReadEnd::Eof | ReadEnd::Done => Self::ClosedEarly,
            ReadEnd::Reset => Self::Reset,
            ReadEnd::TimedOut => Self::TimedOut,
            ReadEnd::Error { errno, message } => Self::ReadError { errno, message },
        }
    }
}

impl fmt::Display for GatewayOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Response => f.write_str("complete response header"),
            Self::ConnectFailed(c) => write!(f, "connect failed: {c}"),
            Self::ClosedEarly => f.write_str("closed the connection before a complete header"),
            Self::Reset => f.write_str("connection reset by peer (104)"),
            Self::TimedOut => f.write_str("no complete header within the probe timeout"),
            Self::HeaderTooBig => f.write_str("header larger than the buffer (too big header)"),
            Self::InvalidStatus(value) => write!(f, "invalid status \"{value}\""),
            Self::InvalidHeader(text) => write!(f, "invalid header: \"{text}\""),
            Self::WriteError { errno, message } => io_failure(f, "send", *errno, message),
            Self::ReadError { errno, message } => io_failure(f, "read", *errno, message),
            Self::InvalidRequest(why) => write!(f, "request not sent: {why}"),
            Self::Values => f.write_str("answers FastCGI management records"),
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
        }
    }
}

/// `send failed: <message> (<errno>)`, the wording of both I/O errors.
fn io_failure(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The wording of every outcome, which the reports quote: the same as before FastCGI's
    /// and uwsgi/SCGI's outcomes became one type.
    #[test]
    fn every_outcome_keeps_its_wording() {
        let io = |errno| (errno, "Broken pipe".to_owned());
        let (errno, message) = io(Some(32));
        let cases = [
            (GatewayOutcome::Response, "complete response header"),
            (
                GatewayOutcome::ConnectFailed(ConnectOutcome::Refused),
                "connect failed: connection refused (111)",
            ),
            (
                GatewayOutcome::ClosedEarly,
                "closed the connection before a complete header",
            ),
            (GatewayOutcome::Reset, "connection reset by peer (104)"),
            (
                GatewayOutcome::TimedOut,
                "no complete header within the probe timeout",
            ),
            (
                GatewayOutcome::HeaderTooBig,
                "header larger than the buffer (too big header)",
            ),
            (
                GatewayOutcome::InvalidStatus("OK".to_owned()),
                "invalid status \"OK\"",
            ),
            (
                GatewayOutcome::InvalidHeader("X\\x00...".to_owned()),
                "invalid header: \"X\\x00...\"",
            ),
            (
                GatewayOutcome::WriteError {
                    errno,
                    message: message.clone(),
                },
                "send failed: Broken pipe (32)",
            ),
            (
                GatewayOutcome::ReadError {
                    errno: None,
                    message,
                },
                "read failed: Broken pipe",
            ),
            (
                GatewayOutcome::InvalidRequest("uwsgi request is too big: 70000".to_owned()),
                "request not sent: uwsgi request is too big: 70000",
            ),
            (GatewayOutcome::Values, "answers FastCGI management records"),
            (
                GatewayOutcome::NotFastCgi { version: 72 },
                "not FastCGI: unsupported FastCGI protocol version: 72",
            ),
            (
                GatewayOutcome::InvalidRecord("invalid FastCGI record type: 9".to_owned()),
                "invalid FastCGI record type: 9",
            ),
            (
                GatewayOutcome::NoHeaders,
                "prematurely closed FastCGI stdout",
            ),
            (
                GatewayOutcome::UnexpectedRecord(3),
                "unexpected FastCGI record: 3",
            ),
            (
                GatewayOutcome::EndRequest { protocol_status: 2 },
                "request refused: FCGI_OVERLOADED (2); nginx logs unexpected FastCGI record: 3",
            ),
        ];
        for (outcome, text) in cases {
            assert_eq!(outcome.to_string(), text, "{outcome:?}");
        }
    }
}
