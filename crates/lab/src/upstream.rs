//! A tiny HTTP/1.1 upstream ("the app") that runs in a background thread of the calling process.
//!
//! It answers every request with `200 OK` and closes the connection. The listener is polled
//! without blocking so that [`Responder::stop`] ends the thread within a few milliseconds.

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the accept loop sleeps when no connection is waiting.
const POLL: Duration = Duration::from_millis(10);
/// Read and write timeout for one served connection.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// The most request bytes read before answering.
const MAX_REQUEST: usize = 16 * 1024;
/// The response body.
const BODY: &str = "fix502 lab upstream: ok\n";

/// A listening socket the responder serves.
#[derive(Debug)]
pub(crate) enum Listener {
    /// A TCP listener (IPv4 or IPv6).
    Tcp(TcpListener),
    /// A unix stream socket listener.
    Unix(UnixListener),
}

impl Listener {
    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.set_nonblocking(true),
            Self::Unix(l) => l.set_nonblocking(true),
        }
    }

    /// Accepts and serves one waiting connection; `Ok(false)` when none was waiting.
    fn serve_one(&self) -> io::Result<bool> {
        let accepted = match self {
            Self::Tcp(l) => l.accept().and_then(|(s, _)| {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                serve(s)
            }),
            Self::Unix(l) => l.accept().and_then(|(s, _)| {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                serve(s)
            }),
        };
        match accepted {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Reads one request head (bounded by size, per-read timeout and an overall deadline) and
/// writes the fixed response.
fn serve<S: Read + Write>(mut stream: S) -> io::Result<()> {
    let deadline = Instant::now() + 2 * IO_TIMEOUT;
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while request.len() < MAX_REQUEST
        && Instant::now() < deadline
        && !request.windows(4).any(|w| w == b"\r\n\r\n")
    {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// A running responder; stopping (or dropping) it ends its thread.
#[derive(Debug)]
pub(crate) struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Serves `listener` in a new thread until stopped.
    pub(crate) fn spawn(listener: Listener) -> io::Result<Self> {
        listener.set_nonblocking()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("fix502-lab-upstream".to_owned())
            .spawn(move || accept_loop(&listener, &flag))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to stop and waits for it (at most one connection's timeouts).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("lab upstream thread panicked");
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves connections until `stop` is set; each pass is bounded by the poll interval or by one
/// connection's I/O timeouts.
fn accept_loop(listener: &Listener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.serve_one() {
            Ok(true) => {}
            Ok(false) => thread::sleep(POLL),
            Err(e) => {
                tracing::debug!(error = %e, "lab upstream: connection failed");
                thread::sleep(POLL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn answers_200_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut responder = Responder::spawn(Listener::Tcp(listener)).expect("spawn");
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with(BODY));
        responder.stop();
        assert!(responder.thread.is_none());
    }
}
