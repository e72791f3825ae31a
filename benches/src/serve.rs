//! Loopback upstreams for the benchmarks: listeners on 127.0.0.1 served by one thread that
//! polls them, answering `200 OK` as a healthy HTTP upstream does, or holding every
//! connection without a byte (a hung app server). What belongs here: those upstreams only.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Most connections per listener accepted in one poll round.
const ACCEPT_BURST: usize = 64;

/// What the accepting upstreams do with a connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read the request head and answer `200 OK` (`Connection: close`), as a healthy HTTP
    /// upstream does.
    Answer,
    /// Accept and hold the connection, never sending a byte (a hung app server).
    Hold,
}

/// A minimal healthy answer.
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
/// The most request bytes buffered per connection before it is dropped.
const MAX_REQUEST: usize = 16 * 1024;

/// One connection of an answering upstream, until its request head is complete.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads what arrived; answers once the head is complete. False when it is done with
    /// (answered, closed by the peer, failed or too long).
    fn ready(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                if self.buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    // Fits in the socket buffer: one write, no wait.
                    let _ = self.stream.write_all(RESPONSE);
                    return false;
                }
                self.buf.len() < MAX_REQUEST
            }
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }
}

/// Serves every listener in `mode` until `stop`, holding at most `cap` connections;
/// returns how many it accepted.
fn serve(listeners: &[TcpListener], mode: Mode, stop: &AtomicBool, cap: usize) -> usize {
    let mut held: Vec<TcpStream> = Vec::new();
    let mut conns: Vec<Conn> = Vec::new();
    let mut accepted = 0;
    // Each round waits at most 50 ms; the loop ends when main sets `stop`.
    while !stop.load(Ordering::Relaxed) {
        let mut fds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .chain(
                conns
                    .iter()
                    .map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)),
            )
            .collect();
        match poll(&mut fds, PollTimeout::from(50u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                eprintln!("probe_upstreams: poll: {e}");
                break;
            }
        }
        let ready: Vec<usize> = fds
            .iter()
            .enumerate()
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| i)
            .collect();
        drop(fds);
        // Connections first, from the end, so that removing one keeps the others' indices.
        for &i in ready.iter().rev() {
            let Some(c) = i.checked_sub(listeners.len()) else {
                break;
            };
            if conns.get_mut(c).is_some_and(|conn| !conn.ready()) {
                conns.swap_remove(c);
            }
        }
        for listener in ready.iter().filter_map(|&i| listeners.get(i)) {
            for _ in 0..ACCEPT_BURST {
                let Ok((stream, _)) = listener.accept() else {
                    break;
                };
                accepted += 1;
                match mode {
                    Mode::Hold if held.len() < cap => held.push(stream),
                    Mode::Answer if conns.len() < cap && stream.set_nonblocking(true).is_ok() => {
                        conns.push(Conn {
                            stream,
                            buf: Vec::new(),
                        });
                    }
                    _ => {}
                }
            }
        }
    }
    accepted
}

/// The accepting listeners, served by one thread until dropped.
pub struct Accepting {
    /// Where the listeners listen.
    pub addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Accepting {
    /// Starts `n` listeners served in `mode`, holding at most `cap` connections.
    pub fn start(n: usize, mode: Mode, cap: usize) -> io::Result<Self> {
        let mut listeners = Vec::with_capacity(n);
        for _ in 0..n {
            let l = TcpListener::bind("127.0.0.1:0")?;
            l.set_nonblocking(true)?;
            listeners.push(l);
        }
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<io::Result<_>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || serve(&listeners, mode, &flag, cap));
        Ok(Self {
            addrs,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread (closing every listener and held connection); returns how many
    /// connections it accepted.
    pub fn stop(&mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.stop();
    }
}
