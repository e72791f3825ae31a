//! What the three gateway probes share: FastCGI ([`crate::fastcgi`]), uwsgi
//! ([`crate::uwsgi`]) and SCGI ([`crate::scgi`]). Each of them sends one request the way
//! nginx's module does and reads one CGI/HTTP response head; they import this module, never
//! each other.
//!
//! This file re-exports what the three use; the work is one job a file:
//!
//! - `probe.rs`: the result of a probe ([`GatewayProbe`]), its bounds ([`GatewayLimits`])
//!   and why a request cannot be encoded ([`EncodeError`]).
//!
//! - `outcome.rs` ([`GatewayOutcome`]): how a probe ended, the one outcome type of all
//!   three, with its wording.
//! - `head.rs`: the CGI/HTTP response-head parser, as nginx reads the head.
//! - `exchange.rs`: connect, send one request, read one head (uwsgi and SCGI; FastCGI
//!   reads records first).
//! - `fake.rs` (tests only): in-process fake servers for the three probes' tests.

mod exchange;
#[cfg(test)]
pub(crate) mod fake;
mod head;
mod outcome;
mod probe;

pub(crate) use exchange::exchange_head;
pub(crate) use head::HeadParser;
pub use outcome::GatewayOutcome;
pub use probe::{EncodeError, GatewayLimits, GatewayProbe};
pub(crate) use probe::{RAW_HEAD, safe_method};

/// The fuzzing entry point (`fuzz/`), not API: reads the response head in `bytes` as a
/// probe does, the buffer growing to each of `ends` in turn (then to all of `bytes`), and
/// judges it against `cap`. `None` while the head is incomplete; else the outcome and the
/// status nginx derives. `status_line_allowed` is uwsgi and SCGI (an HTTP status line may
/// come first), not FastCGI.
#[doc(hidden)]
pub fn judge_head_bytes(
    bytes: &[u8],
    ends: &[usize],
    status_line_allowed: bool,
    cap: usize,
) -> Option<(GatewayOutcome, Option<u16>)> {
    let mut parser = HeadParser::new(status_line_allowed);
    let mut state = head::HeadState::Incomplete;
    for &end in ends.iter().chain([&bytes.len()]) {
        state = parser.advance(bytes.get(..end).unwrap_or(bytes));
        if state != head::HeadState::Incomplete {
            break;
        }
    }
    let mut probe = GatewayProbe::new(&crate::stream::Endpoint::Unix("/fuzz".into()));
    let outcome = probe.judge_head(state, cap)?;
    Some((outcome, probe.status))
}
