//! The byte pipe every protocol probe talks through: one connection to a TCP or unix-socket
//! upstream, and a bounded read that never hangs past a deadline nor grows past a cap.
//!
//! The protocol probes ([`crate::http`], [`crate::sniff`], [`crate::fastcgi`],
//! [`crate::uwsgi`], [`crate::scgi`], [`crate::tls`]) differ only in what they write and how
//! they judge the answer; opening the connection and reading the answer live here.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use crate::connect::ConnectOutcome;

/// Where an upstream listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix stream socket path.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    /// As nginx writes it: `127.0.0.1:8000`, `[::1]:8000`, `unix:/run/app.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// An open connection to an [`Endpoint`].
#[derive(Debug)]
pub enum Stream {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a unix socket.
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Opens a connection to `endpoint`, giving up at `deadline`.
///
/// Returns the stream and how long the connect took, or how the connect failed (classified
/// by errno number, as [`crate::connect_tcp`] does).
pub async fn open(
    endpoint: &Endpoint,
    deadline: Instant,
) -> Result<(Stream, Duration), ConnectOutcome> {
    let start = Instant::now();
    let connected = match endpoint {
        Endpoint::Tcp(addr) => {
            let connect = async { crate::netns::tcp_socket(addr).await?.connect(*addr).await };
            tokio::time::timeout_at(deadline, connect)
                .await
                .map(|r| r.map(Stream::Tcp))
        }
        Endpoint::Unix(path) => tokio::time::timeout_at(deadline, UnixStream::connect(path))
            .await
            .map(|r| r.map(Stream::Unix)),
    };
    match connected {
        Ok(Ok(stream)) => Ok((stream, start.elapsed())),
        Ok(Err(err)) => Err(ConnectOutcome::from_io_error(&err)),
        Err(_) => Err(ConnectOutcome::TimedOut),
    }
}

/// Why a bounded read stopped.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadEnd {
    /// The caller's `done` test said the bytes read so far are complete.
    Done,
    /// The peer closed the connection (FIN).
    Eof,
    /// The peer reset the connection (`ECONNRESET`, 104).
    Reset,
    /// The byte cap was reached before `done` said complete.
    Capped,
    /// The deadline passed first.
    TimedOut,
    /// Another read error.
    Error {
        /// The OS error number, when there was one.
        errno: Option<i32>,
        /// A short description.
        message: String,
    },
}

impl ReadEnd {
    /// Classifies a read error by errno number.
    pub fn from_io_error(err: &io::Error) -> Self {
        match err.raw_os_error() {
            Some(n) if Errno::from_raw(n) == Errno::ECONNRESET => Self::Reset,
            errno => Self::Error {
                errno,
                message: err.to_string(),
            },
        }
    }
}

/// What a bounded read got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Every byte read, at most the cap.
    pub bytes: Vec<u8>,
    /// Why reading stopped.
    pub end: ReadEnd,
    /// Time from the start of the read to the first byte, if any byte came.
    pub first_byte: Option<Duration>,
}

/// Reads from `stream` until `done(bytes)` is true, the peer closes or resets, `cap` bytes
/// were read, or `deadline` passes, whichever comes first.
///
/// Memory is bounded by `cap` (plus one read buffer); time by `deadline`. `done` is called
/// after every read with all bytes so far.
pub async fn read_bounded<R, F>(
    stream: &mut R,
    deadline: Instant,
    cap: usize,
    mut done: F,
) -> ReadResult
where
    R: AsyncRead + Unpin,
    F: FnMut(&[u8]) -> bool,
{
    const CHUNK: usize = 16 * 1024;
    let start = Instant::now();
    let mut bytes = Vec::new();
    let mut first_byte = None;
    let mut chunk = vec![0u8; CHUNK];
    let end = loop {
        if bytes.len() >= cap {
            break ReadEnd::Capped;
        }
        // The timeout below fires only while the read waits: a peer that always has bytes
        // ready would be read past the deadline (and an endless one until it stops).
        if Instant::now() >= deadline {
            break ReadEnd::TimedOut;
        }
        let want = CHUNK.min(cap - bytes.len());
        let Some(buf) = chunk.get_mut(..want) else {
            break ReadEnd::Capped;
        };
        match tokio::time::timeout_at(deadline, stream.read(buf)).await {
            Err(_) => break ReadEnd::TimedOut,
            Ok(Ok(0)) => break ReadEnd::Eof,
            Ok(Ok(n)) => {
                first_byte.get_or_insert_with(|| start.elapsed());
                bytes.extend_from_slice(buf.get(..n).unwrap_or_default());
                if done(&bytes) {
                    break ReadEnd::Done;
                }
            }
            Ok(Err(err)) => break ReadEnd::from_io_error(&err),
        }
    };
    ReadResult {
        bytes,
        end,
        first_byte,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(2);
        let endpoint = Endpoint::Tcp(addr);
        let (client, server) = tokio::join!(open(&endpoint, deadline), listener.accept());
        (client.expect("connect").0, server.expect("accept").0)
    }

    #[tokio::test]
    async fn stops_when_done_says_so() {
        let (mut client, mut server) = pair().await;
        server.write_all(b"hello\r\n\r\nrest").await.expect("write");
        let deadline = Instant::now() + Duration::from_secs(2);
        let got = read_bounded(&mut client, deadline, 1024, |b| {
            b.windows(4).any(|w| w == b"\r\n\r\n")
        })
        .await;
        assert_eq!(got.end, ReadEnd::Done);
        assert!(got.first_byte.is_some());
    }

    #[tokio::test]
    async fn endless_bytes_stop_at_the_cap() {
        let (mut client, mut server) = pair().await;
        let writer = tokio::spawn(async move {
            let junk = vec![b'x'; 64 * 1024];
            for _ in 0..64 {
                if server.write_all(&junk).await.is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(2);
        let got = read_bounded(&mut client, deadline, 100_000, |_| false).await;
        assert_eq!(got.end, ReadEnd::Capped);
        assert_eq!(got.bytes.len(), 100_000);
        drop(client);
        writer.await.expect("writer");
    }

    #[tokio::test]
    async fn bytes_always_ready_still_stop_at_the_deadline() {
        // A slice never makes a read wait: only the deadline, passed already, can end it.
        let data = vec![b'x'; 1 << 20];
        let mut always_ready: &[u8] = &data;
        let got = read_bounded(&mut always_ready, Instant::now(), usize::MAX, |_| false).await;
        assert_eq!(got.end, ReadEnd::TimedOut);
        assert!(got.bytes.is_empty());
    }

    #[tokio::test]
    async fn silence_stops_at_the_deadline_and_close_is_eof() {
        let (mut client, server) = pair().await;
        let deadline = Instant::now() + Duration::from_millis(100);
        let got = read_bounded(&mut client, deadline, 1024, |_| false).await;
        assert_eq!(got.end, ReadEnd::TimedOut);
        assert_eq!(got.first_byte, None);
        drop(server);
        let deadline = Instant::now() + Duration::from_secs(2);
        let got = read_bounded(&mut client, deadline, 1024, |_| false).await;
        assert_eq!(got.end, ReadEnd::Eof);
    }

    #[tokio::test]
    async fn refused_connect_is_classified() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let deadline = Instant::now() + Duration::from_secs(2);
        let err = open(&Endpoint::Tcp(addr), deadline)
            .await
            .expect_err("refused");
        assert_eq!(err, ConnectOutcome::Refused);
        assert_eq!(Endpoint::Tcp(addr).to_string(), addr.to_string());
    }
}
