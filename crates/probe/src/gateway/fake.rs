//! In-process fake servers for the tests of the gateway probes ([`crate::fastcgi`],
//! [`crate::uwsgi`], [`crate::scgi`]): one connection each, a scripted reply, then a close,
//! a hold or a reset.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::probe::GatewayLimits;
use crate::stream::Endpoint;

/// The limits the gateway-probe tests use: a 4 KiB header cap, 2 s.
pub(crate) fn limits() -> GatewayLimits {
    GatewayLimits {
        cap: 4096,
        timeout: Duration::from_secs(2),
    }
}

/// What the fake does after its reply.
#[derive(Debug, Clone, Copy)]
pub(crate) enum After {
    /// Close (FIN).
    Close,
    /// Keep the connection open this long, then close.
    Hold(Duration),
    /// Close with RST (SO_LINGER 0).
    Reset,
}

/// A server for one connection: reads until `complete(request)` (at most 1 MiB and 2
/// s), writes `reply`, then does `after`. The task yields the bytes it received.
pub(crate) async fn one_shot(
    reply: Vec<u8>,
    complete: fn(&[u8]) -> bool,
    after: After,
) -> (Endpoint, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = Endpoint::Tcp(listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("accept");
        let received = read_request(&mut conn, complete).await;
        conn.write_all(&reply).await.expect("write reply");
        match after {
            After::Close => {}
            After::Hold(time) => tokio::time::sleep(time).await,
            After::Reset => conn.set_zero_linger().expect("linger"),
        }
        drop(conn);
        received
    });
    (endpoint, task)
}

/// Reads a request until `complete` says so, the peer closes, 1 MiB or 2 s.
pub(crate) async fn read_request<R: AsyncReadExt + Unpin>(
    conn: &mut R,
    complete: fn(&[u8]) -> bool,
) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !complete(&received) && received.len() < 1 << 20 {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(buf.get(..n).unwrap_or(&[])),
            _ => break,
        }
    }
    received
}
