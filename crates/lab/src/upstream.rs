//! Small upstream "apps" that run in background threads of the calling process: one listener,
//! one [`Behavior`] (answer 200, close early, reset, send a broken header, stay silent, …).
//!
//! The listener is polled without blocking, and every connection is served in its own thread
//! (at most [`MAX_CONNECTIONS`] at a time) whose reads time out every [`READ_POLL`], so
//! [`Responder::stop`] ends everything within a few tens of milliseconds. Every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How long the accept loop sleeps when no connection is waiting.
const POLL: Duration = Duration::from_millis(10);
/// Read timeout of a served socket: how often a blocked read looks at the stop flag.
const READ_POLL: Duration = Duration::from_millis(50);
/// Write timeout of a served socket.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request head may take to arrive.
const HEAD_WAIT: Duration = Duration::from_secs(2);
/// The longest a [`Behavior::Silent`] connection is held (it ends earlier on stop or EOF).
const HOLD_LIMIT: Duration = Duration::from_secs(60);
/// How long a [`Behavior::KeepAliveRace`] connection may sit idle before the app closes it.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_millis(300);
/// Requests served on one keep-alive connection before the app gives up on it.
const MAX_REQUESTS_PER_CONNECTION: usize = 8;
/// The most connections served at once; more are closed right after accept.
const MAX_CONNECTIONS: usize = 32;
/// The most request bytes read before answering.
const MAX_REQUEST: usize = 16 * 1024;
/// The body of a 200 answer.
pub(crate) const BODY: &str = "fix502 lab upstream: ok\n";
/// The body of the `upstream-502` app's own 502 answer.
pub(crate) const APP_502_BODY: &str = "bad gateway from the app\n";
/// Exact size of the response head [`Behavior::BigHeader`] sends: status line, header lines
/// and the blank line, CRLFs included.
pub(crate) const BIG_HEADER_BYTES: usize = 16 * 1024;
/// Number of `Set-Cookie` lines in the big header.
const BIG_HEADER_COOKIES: usize = 16;
/// Everything of the big header before its cookies.
const BIG_HEADER_PREFIX: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n";

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

    /// One waiting connection, made blocking with the served-socket timeouts.
    fn accept(&self) -> io::Result<Stream> {
        let stream = match self {
            Self::Tcp(l) => Stream::Tcp(l.accept()?.0),
            Self::Unix(l) => Stream::Unix(l.accept()?.0),
        };
        stream.configure()?;
        Ok(stream)
    }
}

/// One accepted connection.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn configure(&self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(READ_POLL))?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))
            }
            Self::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(READ_POLL))?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.flush(),
            Self::Unix(s) => s.flush(),
        }
    }
}

/// What the app does with each connection.
#[derive(Debug, Clone)]
pub(crate) enum Behavior {
    /// Reads the request and answers `200 OK` (`Connection: close`). Input that does not start
    /// like an HTTP request (a TLS ClientHello, a FastCGI record) gets `400 Bad Request` at once,
    /// as real HTTP servers do.
    Ok,
    /// Reads the request and closes without answering (FIN).
    CloseEarly,
    /// Reads one byte of the request and closes with the rest unread, so Linux sends RST.
    Reset,
    /// Reads the request head and answers these bytes, then closes: whatever a scenario's
    /// app gets wrong in its answer (a huge header, a NUL byte, its own 502, HTTP/2 frames).
    Answer(Vec<u8>),
    /// Reads the request and never answers; holds the connection until stop, EOF or
    /// [`HOLD_LIMIT`].
    Silent,
    /// Answers the first request of a connection with keep-alive; closes the connection without
    /// answering when a second request arrives on it, or after [`KEEPALIVE_IDLE`] of idleness.
    KeepAliveRace,
    /// Speaks TLS with this config, then behaves like [`Behavior::Ok`].
    Tls(Arc<ServerConfig>),
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A complete request head (or the first [`MAX_REQUEST`] bytes of one).
    Request,
    /// The first bytes are not the start of an HTTP request line.
    NotHttp,
    /// The peer closed the connection before a complete head.
    Closed,
}

/// Whether `e` is a read timeout (the socket's [`READ_POLL`]) rather than a failure.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads one request head, bounded by [`MAX_REQUEST`], `limit` and the stop flag (those two
/// give a `TimedOut` error).
fn read_head<S: Read>(
    stream: &mut S,
    stop: &AtomicBool,
    limit: Duration,
    seen: &Seen,
) -> io::Result<Head> {
    let deadline = Instant::now() + limit;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request head in time",
            ));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Ok(Head::Closed),
            Ok(n) => {
                head.extend_from_slice(buf.get(..n).unwrap_or_default());
                if !head.first().is_some_and(u8::is_ascii_uppercase) {
                    return Ok(Head::NotHttp);
                }
                if head.len() >= MAX_REQUEST || head.windows(4).any(|w| w == b"\r\n\r\n") {
                    seen.record(&head);
                    return Ok(Head::Request);
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// A complete response with a text body.
pub(crate) fn response(status: &str, body: &str, keep_alive: bool) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    )
}

/// The response head of [`Behavior::BigHeader`]: exactly [`BIG_HEADER_BYTES`] long.
pub(crate) fn big_header() -> String {
    // Each cookie line is `Set-Cookie: labNN=<value>\r\n`: 18 + value + 2 bytes.
    let fixed = BIG_HEADER_PREFIX.len() + BIG_HEADER_COOKIES * 20 + 2;
    let values = BIG_HEADER_BYTES.saturating_sub(fixed);
    let each = values / BIG_HEADER_COOKIES;
    let mut head = String::with_capacity(BIG_HEADER_BYTES);
    head.push_str(BIG_HEADER_PREFIX);
    for i in 0..BIG_HEADER_COOKIES {
        let len = if i + 1 == BIG_HEADER_COOKIES {
            values - each * (BIG_HEADER_COOKIES - 1)
        } else {
            each
        };
        head.push_str(&format!("Set-Cookie: lab{i:02}={}\r\n", "c".repeat(len)));
    }
    head.push_str("\r\n");
    head
}

/// Writes `bytes` and flushes; a peer that already gave up is only traced.
fn send<S: Write>(stream: &mut S, bytes: &[u8]) {
    if let Err(e) = stream.write_all(bytes).and_then(|()| stream.flush()) {
        tracing::debug!(error = %e, "lab upstream: write failed");
    }
}

/// Serves one connection according to `behavior`.
fn serve(
    mut stream: Stream,
    behavior: &Behavior,
    stop: &AtomicBool,
    seen: &Seen,
) -> io::Result<()> {
    match behavior {
        Behavior::Ok => serve_ok(&mut stream, stop, seen),
        Behavior::CloseEarly => read_head(&mut stream, stop, HEAD_WAIT, seen).map(drop),
        Behavior::Reset => reset(&mut stream, stop),
        Behavior::Answer(bytes) => {
            if read_head(&mut stream, stop, HEAD_WAIT, seen)? == Head::Request {
                send(&mut stream, bytes);
            }
            Ok(())
        }
        Behavior::Silent => {
            if read_head(&mut stream, stop, HEAD_WAIT, seen)? == Head::Request {
                hold(&mut stream, stop);
            }
            Ok(())
        }
        Behavior::KeepAliveRace => keep_alive_race(&mut stream, stop, seen),
        Behavior::Tls(config) => {
            let conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
            let mut tls = StreamOwned::new(conn, stream);
            serve_ok(&mut tls, stop, seen)?;
            tls.conn.send_close_notify();
            send(&mut tls, b"");
            Ok(())
        }
    }
}

/// [`Behavior::Ok`]: 200 for an HTTP request, 400 for anything else.
fn serve_ok<S: Read + Write>(stream: &mut S, stop: &AtomicBool, seen: &Seen) -> io::Result<()> {
    match read_head(stream, stop, HEAD_WAIT, seen)? {
        Head::Request => send(stream, response("200 OK", BODY, false).as_bytes()),
        Head::NotHttp => send(
            stream,
            response("400 Bad Request", "not an HTTP request\n", false).as_bytes(),
        ),
        Head::Closed => {}
    }
    Ok(())
}

/// [`Behavior::Reset`]: waits for the first request byte and closes with the rest unread.
fn reset(stream: &mut Stream, stop: &AtomicBool) -> io::Result<()> {
    let deadline = Instant::now() + HEAD_WAIT;
    let mut byte = [0u8; 1];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match stream.read(&mut byte) {
            // Dropping the stream now closes it with unread data: the kernel answers with RST.
            Ok(_) => return Ok(()),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`Behavior::Silent`]: keeps the connection open until stop, EOF or [`HOLD_LIMIT`].
fn hold(stream: &mut Stream, stop: &AtomicBool) {
    let deadline = Instant::now() + HOLD_LIMIT;
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// [`Behavior::KeepAliveRace`]: the first request is answered with keep-alive; a request that
/// arrives on the reused connection is read and the connection closed without an answer.
fn keep_alive_race(stream: &mut Stream, stop: &AtomicBool, seen: &Seen) -> io::Result<()> {
    for served in 0..MAX_REQUESTS_PER_CONNECTION {
        let limit = if served == 0 {
            HEAD_WAIT
        } else {
            KEEPALIVE_IDLE
        };
        match read_head(stream, stop, limit, seen) {
            Ok(Head::Request) if served == 0 => {
                send(stream, response("200 OK", BODY, true).as_bytes());
            }
            // The reused connection: close it, as an idle timeout firing right now would.
            Ok(Head::Request) => {
                tracing::debug!("lab upstream: closing a reused keep-alive connection");
                return Ok(());
            }
            Ok(Head::NotHttp | Head::Closed) => return Ok(()),
            // Idle for KEEPALIVE_IDLE (or stopping): close like a keep-alive timeout.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The first lines of the request heads an app was sent, in order (at most
/// [`MAX_SEEN`]), so that tests can tell what reached it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<String>>>);

/// Most request lines a [`Seen`] keeps.
const MAX_SEEN: usize = 256;

impl Seen {
    fn record(&self, head: &[u8]) {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line).trim_end().to_owned();
        if let Ok(mut lines) = self.0.lock()
            && lines.len() < MAX_SEEN
        {
            lines.push(line);
        }
    }

    /// The request lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A running responder; stopping (or dropping) it ends its threads.
#[derive(Debug)]
pub(crate) struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    seen: Seen,
}

impl Responder {
    /// Serves `listener` with `behavior` in new threads until stopped.
    pub(crate) fn spawn(listener: Listener, behavior: Behavior) -> io::Result<Self> {
        listener.set_nonblocking()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let seen = Seen::default();
        let log = seen.clone();
        let thread = thread::Builder::new()
            .name("fix502-lab-upstream".to_owned())
            .spawn(move || accept_loop(&listener, &Arc::new(behavior), &flag, &log))?;
        Ok(Self {
            stop,
            thread: Some(thread),
            seen,
        })
    }

    /// The first lines of the request heads the app was sent so far.
    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lines()
    }

    /// Asks the threads to stop and waits for them (at most one [`READ_POLL`] or write timeout).
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

/// Accepts connections until `stop` is set, serving each in its own thread; then joins them.
fn accept_loop(listener: &Listener, behavior: &Arc<Behavior>, stop: &Arc<AtomicBool>, seen: &Seen) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let (done, running): (Vec<_>, Vec<_>) = workers.into_iter().partition(|w| w.is_finished());
        workers = running;
        done.into_iter().for_each(join);
        match listener.accept() {
            Ok(_) if workers.len() >= MAX_CONNECTIONS => {
                tracing::debug!("lab upstream: too many connections; closed one");
            }
            Ok(stream) => {
                let behavior = Arc::clone(behavior);
                let flag = Arc::clone(stop);
                let seen = seen.clone();
                let spawned = thread::Builder::new()
                    .name("fix502-lab-conn".to_owned())
                    .spawn(move || {
                        if let Err(e) = serve(stream, &behavior, &flag, &seen) {
                            tracing::debug!(error = %e, "lab upstream: connection failed");
                        }
                    });
                match spawned {
                    Ok(worker) => workers.push(worker),
                    Err(e) => {
                        tracing::warn!(error = %e, "lab upstream: no thread for a connection")
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => {
                tracing::debug!(error = %e, "lab upstream: accept failed");
                thread::sleep(POLL);
            }
        }
    }
    workers.into_iter().for_each(join);
}

fn join(worker: JoinHandle<()>) {
    if worker.join().is_err() {
        tracing::warn!("lab upstream connection thread panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Shutdown;

    /// Starts a responder on 127.0.0.1 and connects to it.
    fn connect(behavior: Behavior) -> (Responder, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let responder = Responder::spawn(Listener::Tcp(listener), behavior).expect("spawn");
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        (responder, stream)
    }

    /// Sends a GET and reads until EOF (or the 3 s timeout, which fails the test).
    fn exchange(behavior: Behavior) -> io::Result<Vec<u8>> {
        let (mut responder, mut stream) = connect(behavior);
        stream.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut answer = Vec::new();
        let result = stream.read_to_end(&mut answer).map(|_| answer);
        responder.stop();
        assert!(responder.thread.is_none());
        result
    }

    #[test]
    fn answers_200_and_stops() {
        let answer = String::from_utf8(exchange(Behavior::Ok).expect("read")).expect("utf8");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with(BODY));
    }

    #[test]
    fn answers_400_to_a_tls_client_hello() {
        let (mut responder, mut stream) = connect(Behavior::Ok);
        stream
            .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05])
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        responder.stop();
    }

    #[test]
    fn close_early_sends_nothing_and_reset_resets() {
        assert_eq!(exchange(Behavior::CloseEarly).expect("clean EOF"), b"");
        let err = exchange(Behavior::Reset).expect_err("reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn big_header_has_the_promised_size() {
        let head = big_header();
        assert_eq!(head.len(), BIG_HEADER_BYTES);
        assert!(head.ends_with("\r\n\r\n"));
        assert_eq!(head.matches("\r\n\r\n").count(), 1);
        assert_eq!(head.matches("Set-Cookie: ").count(), BIG_HEADER_COOKIES);
        assert_eq!(
            exchange(Behavior::Answer(head.clone().into_bytes())).expect("read"),
            head.as_bytes()
        );
    }

    #[test]
    fn an_answer_is_sent_as_given_after_the_request_head() {
        let bytes = b"HTTP/1.1 200 OK\r\nX-Lab: bad\0value\r\n\r\n".to_vec();
        assert_eq!(
            exchange(Behavior::Answer(bytes.clone())).expect("read"),
            bytes
        );
    }

    #[test]
    fn silent_holds_until_the_client_leaves_or_stop() {
        let (mut responder, mut stream) = connect(Behavior::Silent);
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
        let mut buf = [0u8; 16];
        let err = stream.read(&mut buf).expect_err("no answer");
        assert!(is_timeout(&err), "{err}");
        let started = Instant::now();
        responder.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
        stream.shutdown(Shutdown::Both).ok();
    }

    #[test]
    fn keep_alive_race_answers_once_then_closes() {
        let (mut responder, mut stream) = connect(Behavior::KeepAliveRace);
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        stream.write_all(request).expect("write");
        let want = response("200 OK", BODY, true);
        let mut first = vec![0u8; want.len()];
        stream.read_exact(&mut first).expect("first answer");
        assert_eq!(first, want.as_bytes());
        stream.write_all(request).expect("write again");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).expect("clean close");
        assert!(rest.is_empty());
        responder.stop();
    }

    #[test]
    fn keep_alive_race_closes_idle_connections() {
        let (mut responder, mut stream) = connect(Behavior::KeepAliveRace);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let started = Instant::now();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).expect("closed after idling");
        assert!(started.elapsed() >= KEEPALIVE_IDLE);
        assert!(all.starts_with(b"HTTP/1.1 200 OK\r\n"));
        responder.stop();
    }
}
