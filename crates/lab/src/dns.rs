//! A small DNS server for tests and lab scenarios: [`DnsResponder`] answers A and AAAA
//! queries from a table on a loopback UDP port (and the same TCP port), or fails every query
//! the way a broken server does ([`DnsBehavior`]).
//!
//! Everything runs in background threads of the calling process. Sockets are polled with
//! short read timeouts so [`DnsResponder::stop`] (or `Drop`) ends every thread within
//! the poll interval plus the time to join; TCP connections are capped in number, size and lifetime.
//! Malformed packets are answered with FORMERR when their id can be read, else dropped.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

/// Read timeout of every socket and sleep of the accept loop: how often threads look at the
/// stop flag.
const POLL: Duration = Duration::from_millis(50);
/// The longest one TCP connection is served.
const TCP_LIFETIME: Duration = Duration::from_secs(5);
/// Write timeout of a TCP connection.
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Queries answered on one TCP connection before it is closed.
const TCP_MAX_MESSAGES: usize = 16;
/// The most TCP connections served at once; more are closed right after accept.
const TCP_MAX_CONNECTIONS: usize = 8;
/// The largest UDP datagram read (bigger ones are cut and then fail to parse).
const UDP_BUFFER: usize = 4096;
/// The largest UDP answer without EDNS (RFC 1035); bigger answers are sent truncated (TC).
const UDP_MAX_ANSWER: usize = 512;
/// How many ports are tried to find one free for both UDP and TCP.
const BIND_ATTEMPTS: usize = 32;
/// TTL of every answer: short, so resolvers re-ask soon after [`DnsResponder::set`].
const TTL: u32 = 1;

/// How the responder answers.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsBehavior {
    /// Answers from the table: the records of a known name, NXDOMAIN for an unknown name,
    /// NOERROR with no answers for a known name without records of the asked type.
    Answer,
    /// Answers every query with SERVFAIL.
    ServFail,
    /// Answers every query with REFUSED.
    Refused,
    /// Never answers (queries are still counted): for timeouts.
    Silent,
}

/// What the serving threads share with the handle.
#[derive(Debug)]
struct Shared {
    /// Lower-case names without trailing dot → their addresses (A and AAAA).
    table: Mutex<HashMap<String, Vec<IpAddr>>>,
    behavior: Mutex<DnsBehavior>,
    queries: AtomicUsize,
    stop: AtomicBool,
    tcp_connections: AtomicUsize,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, HashMap<String, Vec<IpAddr>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn behavior(&self) -> DnsBehavior {
        *self.behavior.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A DNS server on a loopback UDP port (and the same TCP port), answering from a table.
/// Runs in threads; stopped on drop.
#[derive(Debug)]
pub struct DnsResponder {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsResponder {
    /// Starts a responder on `ip`, a free port chosen by the system (the same for UDP and
    /// TCP). Fails with `InvalidInput` when `ip` is not a loopback address.
    pub fn start(ip: IpAddr) -> io::Result<Self> {
        if !ip.is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the DNS responder only listens on loopback, not {ip}"),
            ));
        }
        let (udp, tcp) = bind_pair(ip)?;
        let addr = udp.local_addr()?;
        udp.set_read_timeout(Some(POLL))?;
        tcp.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            table: Mutex::new(HashMap::new()),
            behavior: Mutex::new(DnsBehavior::Answer),
            queries: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            tcp_connections: AtomicUsize::new(0),
        });
        let udp_shared = Arc::clone(&shared);
        let udp_thread = thread::Builder::new()
            .name("lab-dns-udp".to_owned())
            .spawn(move || serve_udp(&udp, &udp_shared))?;
        let tcp_shared = Arc::clone(&shared);
        let tcp_thread = match thread::Builder::new()
            .name("lab-dns-tcp".to_owned())
            .spawn(move || serve_tcp(&tcp, &tcp_shared))
        {
            Ok(handle) => handle,
            Err(err) => {
                shared.stop.store(true, Ordering::Relaxed);
                let _ = udp_thread.join();
                return Err(err);
            }
        };
        tracing::debug!(%addr, "lab DNS responder started");
        Ok(Self {
            addr,
            shared,
            threads: vec![udp_thread, tcp_thread],
        })
    }

    /// The address it listens on (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the A and AAAA records of `name` (case-insensitive, trailing dot optional)
    /// with `addrs`. An empty list keeps the name known without records (NOERROR, empty).
    pub fn set(&self, name: &str, addrs: &[IpAddr]) {
        self.shared.table().insert(normalize(name), addrs.to_vec());
    }

    /// Forgets `name`: queries for it get NXDOMAIN.
    pub fn remove(&self, name: &str) {
        self.shared.table().remove(&normalize(name));
    }

    /// Changes how every following query is answered.
    pub fn set_behavior(&self, behavior: DnsBehavior) {
        *self
            .shared
            .behavior
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behavior;
    }

    /// How many queries it received (UDP datagrams and TCP messages, malformed ones included).
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::Relaxed)
    }

    /// Stops the threads and closes the sockets.
    pub fn stop(self) {
        drop(self);
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                tracing::warn!("a lab DNS responder thread panicked");
            }
        }
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds UDP on `ip:0`, then TCP on the same port; retries with a new port when TCP's is
/// taken.
fn bind_pair(ip: IpAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

/// Lower case, without the trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn serve_udp(socket: &UdpSocket, shared: &Shared) {
    let mut buffer = vec![0u8; UDP_BUFFER];
    while !shared.stopping() {
        let (len, peer) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(err) if is_timeout(&err) || err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                // E.g. ICMP port unreachable reported for an earlier send: keep serving.
                tracing::debug!(%err, "lab DNS responder: UDP receive failed");
                continue;
            }
        };
        let Some(packet) = buffer.get(..len) else {
            continue;
        };
        shared.queries.fetch_add(1, Ordering::Relaxed);
        if let Some(reply) = reply_to(packet, shared, Some(UDP_MAX_ANSWER))
            && let Err(err) = socket.send_to(&reply, peer)
        {
            tracing::debug!(%err, %peer, "lab DNS responder: UDP send failed");
        }
    }
}

fn serve_tcp(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopping() {
        connections.retain(|handle| !handle.is_finished());
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(err) => {
                tracing::debug!(%err, "lab DNS responder: accept failed");
                thread::sleep(POLL);
                continue;
            }
        };
        if shared.tcp_connections.load(Ordering::Relaxed) >= TCP_MAX_CONNECTIONS {
            continue; // dropping the stream closes it
        }
        shared.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let conn_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("lab-dns-tcp-conn".to_owned())
            .spawn(move || {
                if let Err(err) = serve_connection(stream, &conn_shared) {
                    tracing::debug!(%err, "lab DNS responder: TCP connection ended");
                }
                conn_shared.tcp_connections.fetch_sub(1, Ordering::Relaxed);
            });
        match spawned {
            Ok(handle) => connections.push(handle),
            Err(err) => {
                shared.tcp_connections.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(%err, "lab DNS responder: cannot spawn a TCP thread");
            }
        }
    }
    for handle in connections {
        let _ = handle.join();
    }
}

/// Serves length-prefixed messages on one connection until EOF, stop, [`TCP_LIFETIME`] or
/// [`TCP_MAX_MESSAGES`].
fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(TCP_WRITE_TIMEOUT))?;
    let deadline = Instant::now() + TCP_LIFETIME;
    for _ in 0..TCP_MAX_MESSAGES {
        let mut prefix = [0u8; 2];
        if !read_full(&mut stream, &mut prefix, shared, deadline)? {
            return Ok(());
        }
        // At most 64 KiB, by construction of the length prefix.
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        if !read_full(&mut stream, &mut packet, shared, deadline)? {
            return Ok(());
        }
        shared.queries.fetch_add(1, Ordering::Relaxed);
        let Some(reply) = reply_to(&packet, shared, None) else {
            continue;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            continue;
        };
        stream.write_all(&len.to_be_bytes())?;
        stream.write_all(&reply)?;
    }
    Ok(())
}

/// Fills `buf`; `Ok(false)` on EOF, stop or deadline.
fn read_full(
    stream: &mut TcpStream,
    buf: &mut [u8],
    shared: &Shared,
    deadline: Instant,
) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        if shared.stopping() || Instant::now() >= deadline {
            return Ok(false);
        }
        let Some(rest) = buf.get_mut(filled..) else {
            return Ok(false);
        };
        match stream.read(rest) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(err) if is_timeout(&err) || err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(true)
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The encoded answer to `packet`, or `None` when nothing is to be sent (silent, a response
/// instead of a query, or too broken to carry an id). `max_len` truncates UDP answers.
fn reply_to(packet: &[u8], shared: &Shared, max_len: Option<usize>) -> Option<Vec<u8>> {
    let behavior = shared.behavior();
    if behavior == DnsBehavior::Silent {
        return None;
    }
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(err) => {
            tracing::debug!(%err, "lab DNS responder: malformed query");
            return format_error(packet);
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::new(0, MessageType::Response, request.metadata.op_code);
    reply.metadata = Metadata::response_from_request(&request.metadata);
    reply.metadata.recursion_available = true;
    reply.add_queries(request.queries.iter().cloned());
    reply.metadata.response_code = match behavior {
        DnsBehavior::ServFail => ResponseCode::ServFail,
        DnsBehavior::Refused => ResponseCode::Refused,
        _ => answer(&request, &shared.table(), &mut reply),
    };
    let bytes = reply.to_vec().ok()?;
    match max_len {
        Some(max) if bytes.len() > max => reply.truncate().to_vec().ok(),
        _ => Some(bytes),
    }
}

/// Adds the answers to `reply` and returns its response code.
fn answer(
    request: &Message,
    table: &HashMap<String, Vec<IpAddr>>,
    reply: &mut Message,
) -> ResponseCode {
    if request.metadata.op_code != OpCode::Query {
        return ResponseCode::NotImp;
    }
    // Real servers answer exactly one question.
    let [question] = request.queries.as_slice() else {
        return ResponseCode::FormErr;
    };
    let Some(addrs) = table.get(&normalize(&question.name().to_string())) else {
        return ResponseCode::NXDomain;
    };
    reply.metadata.authoritative = true;
    for addr in addrs {
        if let Some(data) = record_data(question, *addr) {
            reply.add_answer(Record::from_rdata(question.name().clone(), TTL, data));
        }
    }
    ResponseCode::NoError
}

/// The record for `addr` when it answers `question`'s type.
fn record_data(question: &Query, addr: IpAddr) -> Option<RData> {
    let any = question.query_type() == RecordType::ANY;
    match addr {
        IpAddr::V4(v4) if any || question.query_type() == RecordType::A => Some(RData::A(A(v4))),
        IpAddr::V6(v6) if any || question.query_type() == RecordType::AAAA => {
            Some(RData::AAAA(AAAA(v6)))
        }
        _ => None,
    }
}

/// FORMERR for a packet that does not parse, when it has a full header to take the id from.
fn format_error(packet: &[u8]) -> Option<Vec<u8>> {
    let header = packet.get(..12)?;
    let id = u16::from_be_bytes([*header.first()?, *header.get(1)?]);
    // QR set means it was a response, never answered.
    if header.get(2)? & 0x80 != 0 {
        return None;
    }
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const WAIT: Duration = Duration::from_secs(2);

    fn query_bytes(id: u16, name: &str, kind: RecordType) -> Vec<u8> {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        message.to_vec().unwrap()
    }

    /// Sends one query over UDP; `None` when nothing came back within `wait`.
    fn ask_raw(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Message> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(wait)).unwrap();
        socket.send_to(packet, server).unwrap();
        let mut buf = [0u8; 4096];
        let (len, _) = socket.recv_from(&mut buf).ok()?;
        Some(Message::from_vec(&buf[..len]).unwrap())
    }

    fn ask(server: SocketAddr, name: &str, kind: RecordType) -> Message {
        let reply = ask_raw(server, &query_bytes(0x1234, name, kind), WAIT).expect("an answer");
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert_eq!(reply.queries.len(), 1);
        reply
    }

    fn addrs_of(reply: &Message) -> Vec<IpAddr> {
        reply
            .answers
            .iter()
            .filter_map(|record| match record.data {
                RData::A(A(v4)) => Some(IpAddr::V4(v4)),
                RData::AAAA(AAAA(v6)) => Some(IpAddr::V6(v6)),
                _ => None,
            })
            .collect()
    }

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7));

    #[test]
    fn refuses_non_loopback_addresses() {
        let err = DnsResponder::start(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn answers_a_and_aaaa_from_the_table() {
        let dns = DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(dns.addr().ip().is_loopback() && dns.addr().port() != 0);
        dns.set("App.Internal.", &[V4, V6]);

        let reply = ask(dns.addr(), "app.internal.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs_of(&reply), vec![V4]);
        let reply = ask(dns.addr(), "APP.internal.", RecordType::AAAA);
        assert_eq!(addrs_of(&reply), vec![V6]);
        assert_eq!(dns.queries(), 2);
    }

    #[test]
    fn unknown_names_are_nxdomain_and_missing_types_empty() {
        let dns = DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        dns.set("v4only.test", &[V4]);
        let reply = ask(dns.addr(), "nothere.test.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert!(reply.answers.is_empty());

        let reply = ask(dns.addr(), "v4only.test.", RecordType::AAAA);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());

        let reply = ask(dns.addr(), "v4only.test.", RecordType::MX);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
    }

    #[test]
    fn set_replaces_and_remove_forgets() {
        let dns = DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        dns.set("moving.test", &[V4]);
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        dns.set("MOVING.test.", &[other]);
        assert_eq!(
            addrs_of(&ask(dns.addr(), "moving.test.", RecordType::A)),
            vec![other]
        );
        dns.remove("moving.test.");
        let reply = ask(dns.addr(), "moving.test.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn behaviors_servfail_refused_silent() {
        let dns = DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        dns.set("app.test", &[V4]);
        dns.set_behavior(DnsBehavior::ServFail);
        let reply = ask(dns.addr(), "app.test.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert!(reply.answers.is_empty());

        dns.set_behavior(DnsBehavior::Refused);
        let reply = ask(dns.addr(), "app.test.", RecordType::A);
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);

        dns.set_behavior(DnsBehavior::Silent);
        let packet = query_bytes(7, "app.test.", RecordType::A);
        assert!(ask_raw(dns.addr(), &packet, Duration::from_millis(300)).is_none());
        assert_eq!(dns.queries(), 3);

        dns.set_behavior(DnsBehavior::Answer);
        assert_eq!(
            addrs_of(&ask(dns.addr(), "app.test.", RecordType::A)),
            vec![V4]
        );
    }

    #[test]
    fn malformed_packets_get_formerr_or_nothing() {
        let dns = DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        // A header claiming one question that is not there.
        let mut packet = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        let reply = ask_raw(dns.addr(), &packet, WAIT).expect("FORMERR");
        assert_eq!(reply.metadata.id, 0xabcd);
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        // Garbage label lengths.
        packet.extend_from_slice(&[0xff; 40]);
        let reply = ask_raw(dns.addr(), &packet, WAIT).expect("FORMERR");
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        // Too short to have an id: dropped, and the server keeps serving.
        assert!(ask_raw(dns.addr(), &[1, 2, 3], Duration::from_millis(200)).is_none());
        dns.set("still.test", &[V4]);
        assert_eq!(
            addrs_of(&ask(dns.addr(), "still.test.", RecordType::A)),
            vec![V4]
        );
        assert_eq!(dns.queries(), 4);
    }

    #[test]
    fn big_udp_answers_are_truncated() {
        let dns = DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        let many: Vec<IpAddr> = (1..=60)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 1, n)))
            .collect();
        dns.set("many.test", &many);
        let reply = ask(dns.addr(), "many.test.", RecordType::A);
        assert!(reply.metadata.truncation);
        assert!(reply.answers.is_empty());

        // Over TCP the whole answer comes back.
        let mut stream = TcpStream::connect(dns.addr()).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let packet = query_bytes(9, "many.test.", RecordType::A);
        let len = u16::try_from(packet.len()).unwrap();
        stream.write_all(&len.to_be_bytes()).unwrap();
        stream.write_all(&packet).unwrap();
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut body).unwrap();
        let reply = Message::from_vec(&body).unwrap();
        assert_eq!(reply.metadata.id, 9);
        assert_eq!(addrs_of(&reply), many);
    }

    #[test]
    fn works_on_ipv6_loopback() {
        let Ok(dns) = DnsResponder::start(IpAddr::V6(Ipv6Addr::LOCALHOST)) else {
            // No IPv6 on this machine: nothing to test.
            return;
        };
        dns.set("six.test", &[V6]);
        let socket = UdpSocket::bind("[::1]:0").unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket
            .send_to(&query_bytes(3, "six.test.", RecordType::AAAA), dns.addr())
            .unwrap();
        let mut buf = [0u8; 1024];
        let (len, _) = socket.recv_from(&mut buf).unwrap();
        let reply = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(addrs_of(&reply), vec![V6]);
    }

    #[test]
    fn stop_is_prompt_even_with_an_idle_tcp_connection() {
        let dns = DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        let addr = dns.addr();
        // A client that connects and sends half a length prefix, then nothing.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(&[0]).unwrap();
        thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        dns.stop();
        let took = start.elapsed();
        assert!(took < Duration::from_millis(400), "stop took {took:?}");
        // The port is closed now.
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    }
}
