//! One exchange of a head-only gateway probe (uwsgi, SCGI): connect, send the encoded
//! request, and read one CGI/HTTP response head (an HTTP status line allowed first), as
//! nginx's uwsgi and SCGI modules read it. FastCGI reads records first, in
//! [`crate::fastcgi`].

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::head::{HeadParser, HeadState};
use super::outcome::GatewayOutcome;
use super::probe::{EncodeError, GatewayLimits, GatewayProbe, RAW_HEAD};
use crate::stream::{Endpoint, Stream, open, read_bounded};

/// Connects, sends `payload`, and reads one CGI/HTTP response head (an HTTP status line is
/// allowed first), as nginx's uwsgi and SCGI modules read it.
pub(crate) async fn exchange_head(
    endpoint: &Endpoint,
    payload: Result<Vec<u8>, EncodeError>,
    limits: GatewayLimits,
) -> GatewayProbe {
    let start = Instant::now();
    let deadline = start + limits.timeout;
    let mut probe = GatewayProbe::new(endpoint);
    probe.outcome = match payload {
        Err(err) => GatewayOutcome::InvalidRequest(err.to_string()),
        Ok(payload) => match open(endpoint, deadline).await {
            Err(outcome) => GatewayOutcome::ConnectFailed(outcome),
            Ok((mut stream, took)) => {
                probe.connect_time = Some(took);
                match tokio::time::timeout_at(deadline, stream.write_all(&payload)).await {
                    Err(_) => GatewayOutcome::TimedOut,
                    Ok(Err(err)) => GatewayOutcome::send_failed(&err),
                    Ok(Ok(())) => read_head(&mut stream, deadline, limits.cap, &mut probe).await,
                }
            }
        },
    };
    probe.elapsed = start.elapsed();
    probe
}

/// Reads the head (at most `cap + 1` bytes) and judges it.
async fn read_head(
    stream: &mut Stream,
    deadline: Instant,
    cap: usize,
    probe: &mut GatewayProbe,
) -> GatewayOutcome {
    let mut parser = HeadParser::new(true);
    let mut state = HeadState::Incomplete;
    let read = read_bounded(stream, deadline, cap.saturating_add(1), |bytes| {
        state = parser.advance(bytes);
        state != HeadState::Incomplete
    })
    .await;
    // read_bounded starts its clock right after the send.
    probe.first_byte = read.first_byte;
    probe.head = read.bytes.get(..RAW_HEAD).unwrap_or(&read.bytes).to_vec();
    probe.header_bytes = read.bytes.len();
    match probe.judge_head(state, cap) {
        Some(outcome) => outcome,
        None => GatewayOutcome::read_ended(read.end),
    }
}
