//! Name resolution the ways nginx does it, each bounded by a timeout.
//!
//! - [`resolve_system`]: getaddrinfo (`/etc/hosts`, nsswitch, search domains), which is
//!   what nginx uses for names in `proxy_pass`/`server` at start and reload.
//! - [`resolve_as`]: the same question asked as a given process (nginx's master) would ask
//!   it: when that process runs in another mount namespace (a container), its own
//!   `/etc/hosts` and `/etc/resolv.conf` are read through `/proc/PID/root`
//!   ([`hosts_lookup`], [`resolv_conf_nameservers`]).
//! - [`resolve_with`]: direct A and AAAA queries to chosen nameservers, without
//!   `/etc/hosts` or search domains. It tells NXDOMAIN, empty answers, SERVFAIL, REFUSED
//!   and timeouts apart.
//! - [`query_resolver`]: what nginx's own `resolver` directive does at run time: servers
//!   asked one at a time, A and (unless `ipv6=off`) AAAA, any error answer failing the
//!   whole lookup, with the response code and the server that answered ([`ResolverQuery`]).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::op::{Message, MessageType, Query};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use serde::{Deserialize, Serialize};

/// Why a name did not resolve.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DnsFailure {
    /// The name does not exist (NXDOMAIN; getaddrinfo: "Name or service not known").
    #[error("host not found (NXDOMAIN)")]
    NxDomain,
    /// The name exists but has no A or AAAA records.
    #[error("no A or AAAA records for the name")]
    NoRecords,
    /// No answer within the timeout.
    #[error("timed out waiting for the DNS server")]
    Timeout,
    /// The server answered SERVFAIL.
    #[error("server failure (SERVFAIL)")]
    ServFail,
    /// The server refused the query (REFUSED), e.g. recursion not allowed for us.
    #[error("query refused (REFUSED)")]
    Refused,
    /// The server answered with datagrams that do not parse as DNS messages.
    #[error("the server's answers are not valid DNS messages ({0} received)")]
    Malformed(usize),
    /// Anything else, described in one line.
    #[error("{0}")]
    Other(String),
}

/// The addresses a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// The addresses in the order they were returned, without duplicates.
    pub addrs: Vec<IpAddr>,
    /// How long the lookup took.
    pub elapsed: Duration,
}

/// Resolves `host` through getaddrinfo (`tokio::net::lookup_host`), as nginx does at start
/// and reload. `port` only shapes the query (use the upstream's port).
///
/// A timeout abandons the wait; the blocking lookup thread finishes on its own.
pub async fn resolve_system(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<DnsAnswer, DnsFailure> {
    if crate::netns::current().is_none() {
        return resolve_system_here(host, port, timeout).await;
    }
    // getaddrinfo's blocking thread is started by the namespace thread, and so stands in
    // its namespace too.
    let host = host.to_owned();
    crate::netns::run(async move { resolve_system_here(&host, port, timeout).await })
        .await
        .unwrap_or_else(|e| Err(other(&e.to_string())))
}

/// [`resolve_system`] from this thread's network namespace.
async fn resolve_system_here(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<DnsAnswer, DnsFailure> {
    let start = Instant::now();
    let result = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(DnsFailure::Timeout),
        Ok(Err(err)) => Err(classify_getaddrinfo(&err.to_string())),
        Ok(Ok(addrs)) => answer(addrs.map(|a| a.ip()), start),
    };
    tracing::debug!(host, ?result, "getaddrinfo probe");
    result
}

/// Classifies getaddrinfo's error text. The Rust standard library keeps only the text of
/// the `EAI_*` code, so this matches the glibc and musl wordings.
fn classify_getaddrinfo(message: &str) -> DnsFailure {
    const NXDOMAIN: [&str; 2] = ["Name or service not known", "Name does not resolve"];
    const NODATA: [&str; 1] = ["No address associated with hostname"];
    if NXDOMAIN.iter().any(|text| message.contains(text)) {
        DnsFailure::NxDomain
    } else if NODATA.iter().any(|text| message.contains(text)) {
        DnsFailure::NoRecords
    } else {
        other(message)
    }
}

/// [`DnsFailure::Other`] with the text folded onto one line.
fn other(text: &str) -> DnsFailure {
    DnsFailure::Other(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Queries A and AAAA for `host` directly at `nameservers` (UDP, TCP on truncation), like
/// nginx's `resolver` directive: no `/etc/hosts`, no search domains. An empty
/// `nameservers` uses the ones in `/etc/resolv.conf`.
///
/// Succeeds when either family has addresses (A first). `timeout` bounds the whole call.
pub async fn resolve_with(
    host: &str,
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<DnsAnswer, DnsFailure> {
    if crate::netns::current().is_none() {
        return resolve_with_here(host, nameservers, timeout).await;
    }
    // The resolver makes its own sockets: it runs whole in the namespace.
    let (host, nameservers) = (host.to_owned(), nameservers.to_vec());
    crate::netns::run(async move { resolve_with_here(&host, &nameservers, timeout).await })
        .await
        .unwrap_or_else(|e| Err(other(&e.to_string())))
}

/// [`resolve_with`] from this thread's network namespace.
async fn resolve_with_here(
    host: &str,
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<DnsAnswer, DnsFailure> {
    let start = Instant::now();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(DnsAnswer {
            addrs: vec![ip],
            elapsed: start.elapsed(),
        });
    }
    let servers = if nameservers.is_empty() {
        match hickory_resolver::system_conf::read_system_conf() {
            Ok((config, _opts)) => config.name_servers,
            Err(err) => {
                return Err(other(&format!("cannot read /etc/resolv.conf: {err}")));
            }
        }
    } else {
        nameservers.iter().map(|addr| name_server(*addr)).collect()
    };
    if servers.is_empty() {
        return Err(other("no nameservers configured"));
    }
    let resolver = direct_resolver(servers, timeout, LookupIpStrategy::Ipv4AndIpv6)?;
    let name = absolute(host);
    let result = match tokio::time::timeout(timeout, resolver.lookup_ip(name.as_str())).await {
        Err(_) => Err(DnsFailure::Timeout),
        Ok(Err(err)) => Err(classify_net_error(&err)),
        Ok(Ok(lookup)) => answer(lookup.iter(), start),
    };
    tracing::debug!(host, ?nameservers, ?result, "dns probe");
    result
}

/// A resolver that asks `servers` once (UDP, TCP on truncation), never `/etc/hosts`, and
/// caches nothing beyond its own life.
fn direct_resolver(
    servers: Vec<NameServerConfig>,
    timeout: Duration,
    strategy: LookupIpStrategy,
) -> Result<Resolver<TokioRuntimeProvider>, DnsFailure> {
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    );
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.ip_strategy = strategy;
    opts.use_hosts_file = ResolveHosts::Never;
    builder
        .build()
        .map_err(|err| other(&format!("cannot build the resolver: {err}")))
}

/// `host` fully qualified (trailing dot), so no search domain is ever appended.
fn absolute(host: &str) -> String {
    if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    }
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

fn classify_net_error(err: &NetError) -> DnsFailure {
    if err.is_nx_domain() {
        return DnsFailure::NxDomain;
    }
    if err.is_no_records_found() {
        return DnsFailure::NoRecords;
    }
    match err {
        NetError::Timeout => DnsFailure::Timeout,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => DnsFailure::ServFail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => DnsFailure::Refused,
        err => other(&err.to_string()),
    }
}

/// Dedups (keeping the first occurrence) and turns an empty list into `NoRecords`.
fn answer(addrs: impl Iterator<Item = IpAddr>, start: Instant) -> Result<DnsAnswer, DnsFailure> {
    let mut unique: Vec<IpAddr> = Vec::new();
    for addr in addrs {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    if unique.is_empty() {
        return Err(DnsFailure::NoRecords);
    }
    Ok(DnsAnswer {
        addrs: unique,
        elapsed: start.elapsed(),
    })
}

/// How long nginx's resolver waits for one server before asking the next one
/// (`resend_timeout` in `ngx_resolver.c`).
pub const RESOLVER_RESEND: Duration = Duration::from_secs(5);
/// The most rounds over the servers one [`query_resolver`] call makes.
const MAX_ROUNDS: usize = 16;

/// What nginx's `resolver` would get for one name (see [`query_resolver`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverQuery {
    /// The server that answered; `None` when none did (timeout) or none was asked.
    pub server: Option<SocketAddr>,
    /// The addresses (A first), or why there are none. An empty NOERROR answer is
    /// [`DnsFailure::NoRecords`] (nginx logs it as `3: Host not found`).
    pub result: Result<DnsAnswer, DnsFailure>,
    /// The response code of the deciding answer: `"NOERROR"`, `"NXDOMAIN"`, `"SERVFAIL"`,
    /// `"REFUSED"`, `"FORMERR"`, `"NOTIMP"` or `"RCODE<n>"`; `None` without an answer.
    pub rcode: Option<String>,
    /// The last socket error while asking (e.g. `Connection refused` when nothing
    /// listens on a server's port), when no server answered.
    pub transport_error: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Resolves `name` the way nginx's `resolver` directive does at run time: no
/// `/etc/hosts`, no search domains (the name is absolute), an A query when `ipv4` and an
/// AAAA query when `ipv6`, both to the same server. nginx fails the whole lookup when
/// either query gets an error answer (NXDOMAIN, SERVFAIL, REFUSED, ...), even when the
/// other one has addresses; this does the same.
///
/// Servers are asked one at a time in order, each for at most [`RESOLVER_RESEND`] (nginx
/// resends to the next server after that), round after round until `timeout` (use the
/// `resolver_timeout` in effect). An IP literal is returned as is, as nginx never
/// resolves one.
pub async fn query_resolver(
    name: &str,
    servers: &[SocketAddr],
    ipv4: bool,
    ipv6: bool,
    timeout: Duration,
) -> ResolverQuery {
    let start = Instant::now();
    let done = |server, result, rcode: Option<ResponseCode>, transport_error| ResolverQuery {
        server,
        result,
        rcode: rcode.map(rcode_name),
        transport_error,
        elapsed: start.elapsed(),
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        let answer = DnsAnswer {
            addrs: vec![ip],
            elapsed: start.elapsed(),
        };
        return done(None, Ok(answer), None, None);
    }
    if servers.is_empty() {
        return done(None, Err(other("no resolver servers")), None, None);
    }
    if !ipv4 && !ipv6 {
        let failure = other("\"ipv4\" and \"ipv6\" cannot both be \"off\"");
        return done(None, Err(failure), None, None);
    }
    let deadline = start + timeout;
    let mut transport_error = None;
    'rounds: for _ in 0..MAX_ROUNDS {
        let mut any_waited = false;
        for server in servers {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break 'rounds;
            }
            let wait = remaining.min(RESOLVER_RESEND);
            match ask_server(name, *server, ipv4, ipv6, wait).await {
                Asked::Answered(result, rcode) => {
                    let result = result.map(|addrs| DnsAnswer {
                        addrs,
                        elapsed: start.elapsed(),
                    });
                    let query = done(Some(*server), result, rcode, None);
                    tracing::debug!(name, ?query, "nginx-style resolver query");
                    return query;
                }
                Asked::Silent => any_waited = true,
                Asked::Transport(text) => transport_error = Some(text),
            }
        }
        // Every server failed at once (e.g. refused): asking again gives the same.
        if !any_waited {
            break;
        }
    }
    let query = done(None, Err(DnsFailure::Timeout), None, transport_error);
    tracing::debug!(name, ?query, "nginx-style resolver query");
    query
}

/// One server's reply to the A and AAAA queries of [`query_resolver`].
enum Asked {
    /// It answered both (or failed one with an error answer).
    Answered(Result<Vec<IpAddr>, DnsFailure>, Option<ResponseCode>),
    /// It did not answer in time.
    Silent,
    /// Asking failed at the socket level (e.g. connection refused).
    Transport(String),
}

/// The largest UDP answer read (nginx reads at most 4096 bytes too).
const UDP_BUFFER: usize = 4096;
/// The most datagrams read while waiting for the answers to one server (others are
/// stray or forged answers with the wrong id).
const MAX_DATAGRAMS: usize = 64;

/// One query sent to a server, and its reply once it came.
struct Pending {
    id: u16,
    kind: RecordType,
    bytes: Vec<u8>,
    reply: Option<Result<Vec<IpAddr>, ResponseCode>>,
}

/// Asks `server` like nginx does: the A and AAAA queries at once over one connected UDP
/// socket (so ICMP port-unreachable shows up as `Connection refused`), the one whose answer
/// is truncated again over TCP. Everything within `wait`.
async fn ask_server(
    name: &str,
    server: SocketAddr,
    ipv4: bool,
    ipv6: bool,
    wait: Duration,
) -> Asked {
    let deadline = tokio::time::Instant::now() + wait;
    let fqdn = match Name::from_ascii(absolute(name)) {
        Ok(fqdn) => fqdn,
        Err(err) => return Asked::Answered(Err(other(&format!("invalid name: {err}"))), None),
    };
    let kinds = [(ipv4, RecordType::A), (ipv6, RecordType::AAAA)];
    let mut pending = Vec::new();
    for kind in kinds
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
    {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(fqdn.clone(), kind));
        match query.to_vec() {
            Ok(bytes) => pending.push(Pending {
                id: query.metadata.id,
                kind,
                bytes,
                reply: None,
            }),
            Err(err) => {
                return Asked::Answered(
                    Err(other(&format!("cannot encode the query: {err}"))),
                    None,
                );
            }
        }
    }
    let mut malformed = 0;
    match tokio::time::timeout_at(
        deadline,
        exchange_udp(server, &fqdn, &mut pending, deadline, &mut malformed),
    )
    .await
    {
        // Garbage is an answer, not silence: say so rather than "timed out".
        Err(_) if malformed > 0 => {
            return Asked::Answered(Err(DnsFailure::Malformed(malformed)), None);
        }
        Err(_) => return Asked::Silent,
        Ok(Err(err)) => return Asked::Transport(err),
        Ok(Ok(())) => {}
    }
    // nginx fails the whole lookup on any error answer, A first.
    let mut addrs = Vec::new();
    for query in &pending {
        match &query.reply {
            Some(Ok(found)) => addrs.extend(found.iter().copied()),
            Some(Err(code)) => return Asked::Answered(Err(rcode_failure(*code)), Some(*code)),
            None => return Asked::Silent,
        }
    }
    let rcode = Some(ResponseCode::NoError);
    match answer(addrs.into_iter(), Instant::now()) {
        Ok(answer) => Asked::Answered(Ok(answer.addrs), rcode),
        Err(failure) => Asked::Answered(Err(failure), rcode),
    }
}

/// Sends every pending query over UDP and fills in the replies, redoing truncated ones
/// over TCP. `Err` is a socket error text.
async fn exchange_udp(
    server: SocketAddr,
    fqdn: &Name,
    pending: &mut [Pending],
    deadline: tokio::time::Instant,
    malformed: &mut usize,
) -> Result<(), String> {
    let socket = crate::netns::udp_socket(&server)
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    for query in pending.iter() {
        socket.send(&query.bytes).await.map_err(|e| e.to_string())?;
    }
    let mut buf = vec![0u8; UDP_BUFFER];
    for _ in 0..MAX_DATAGRAMS {
        if pending.iter().all(|q| q.reply.is_some()) {
            return Ok(());
        }
        let len = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        let Some(response) = buf.get(..len).and_then(|b| Message::from_vec(b).ok()) else {
            *malformed += 1;
            continue;
        };
        let Some(query) = pending
            .iter_mut()
            .find(|q| matches_query(&response, q, fqdn))
        else {
            continue;
        };
        query.reply = Some(if response.metadata.truncation {
            let response = exchange_tcp(server, &query.bytes, deadline).await?;
            if !matches_query(&response, query, fqdn) {
                return Err("the TCP answer does not match the query".to_owned());
            }
            reply_of(&response)
        } else {
            reply_of(&response)
        });
    }
    Err(format!("more than {MAX_DATAGRAMS} stray datagrams"))
}

/// One query over TCP (two-byte length prefix), for a truncated UDP answer.
async fn exchange_tcp(
    server: SocketAddr,
    query: &[u8],
    deadline: tokio::time::Instant,
) -> Result<Message, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = crate::netns::tcp_socket(&server)
            .await?
            .connect(server)
            .await?;
        let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await?;
        // At most 64 KiB, by construction of the prefix.
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout_at(deadline, exchange)
        .await
        .map_err(|_| "timed out over TCP".to_owned())?
        .map_err(|e| format!("over TCP: {e}"))?;
    Message::from_vec(&body).map_err(|e| format!("invalid TCP answer: {e}"))
}

/// A response to `query`: same id, a response, the same question (names compare
/// case-insensitively).
fn matches_query(response: &Message, query: &Pending, fqdn: &Name) -> bool {
    answers(response, query.id, query.kind, fqdn)
}

/// A response to query `id` for the `kind` records of `fqdn`.
fn answers(response: &Message, id: u16, kind: RecordType, fqdn: &Name) -> bool {
    response.metadata.id == id
        && response.metadata.message_type == MessageType::Response
        && response
            .queries
            .first()
            .is_some_and(|q| q.query_type() == kind && q.name() == fqdn)
}

/// The fuzzing entry point (`fuzz/`), not API: what [`query_resolver`] takes from one
/// received datagram. `None` when it is no DNS message answering query `id` for the A
/// (or, with `ipv6`, AAAA) records of `name`; else whether it is truncated, and its
/// addresses or the name of its response code.
#[doc(hidden)]
pub fn parse_answer(
    datagram: &[u8],
    id: u16,
    ipv6: bool,
    name: &str,
) -> Option<(bool, Result<Vec<IpAddr>, String>)> {
    let fqdn = Name::from_ascii(absolute(name)).ok()?;
    let response = Message::from_vec(datagram).ok()?;
    let kind = if ipv6 {
        RecordType::AAAA
    } else {
        RecordType::A
    };
    if !answers(&response, id, kind, &fqdn) {
        return None;
    }
    Some((
        response.metadata.truncation,
        reply_of(&response).map_err(rcode_name),
    ))
}

/// The addresses of a NOERROR answer, or its error response code.
fn reply_of(response: &Message) -> Result<Vec<IpAddr>, ResponseCode> {
    match response.metadata.response_code {
        ResponseCode::NoError => Ok(response
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect()),
        code => Err(code),
    }
}

fn rcode_failure(code: ResponseCode) -> DnsFailure {
    match code {
        ResponseCode::NXDomain => DnsFailure::NxDomain,
        ResponseCode::ServFail => DnsFailure::ServFail,
        ResponseCode::Refused => DnsFailure::Refused,
        code => other(&format!("the server answered {}", rcode_name(code))),
    }
}

/// The usual mnemonic of a response code.
fn rcode_name(code: ResponseCode) -> String {
    match u16::from(code) {
        0 => "NOERROR".to_owned(),
        1 => "FORMERR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        4 => "NOTIMP".to_owned(),
        5 => "REFUSED".to_owned(),
        n => format!("RCODE{n}"),
    }
}

/// The most bytes read of a hosts file or resolv.conf.
const MAX_FILE: u64 = 1024 * 1024;
/// glibc's resolv.conf default per-server timeout (`options timeout:`).
const RESOLV_TIMEOUT: Duration = Duration::from_secs(5);
/// glibc uses at most this many `nameserver` lines.
const MAX_NAMESERVERS: usize = 3;

/// What getaddrinfo gives for `host` inside process `pid`'s mount namespace, i.e. what
/// nginx (its master `pid`) got when it resolved `host` at start or reload.
///
/// When `pid` is `None`, or its mount namespace is ours (or cannot be read), this is
/// [`resolve_system`]. Otherwise (nginx in a container or its own mount namespace) its
/// `/etc/hosts` (all matching lines, as glibc's getaddrinfo) and then the nameservers and
/// `options timeout:` of its `/etc/resolv.conf` are read through `/proc/PID/root`, and
/// the servers asked with [`resolve_with`]. Not modelled there: nsswitch.conf and search
/// domains. A loopback nameserver of another network namespace (Docker's 127.0.0.11) is
/// asked when the probes stand in that namespace ([`crate::netns::within`]); otherwise it
/// gives [`DnsFailure::Other`], as it cannot be reached from here.
pub async fn resolve_as(
    pid: Option<u32>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<DnsAnswer, DnsFailure> {
    let Some(pid) = pid else {
        return resolve_system(host, port, timeout).await;
    };
    if crate::process::same_namespace(pid, "mnt") != Some(false) {
        return resolve_system(host, port, timeout).await;
    }
    let start = Instant::now();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return answer(std::iter::once(ip), start);
    }
    let root = Path::new("/proc").join(pid.to_string()).join("root");
    match read_bounded(&root.join("etc/hosts")) {
        Ok(text) => {
            let found = hosts_lookup(&text, host);
            if !found.is_empty() {
                tracing::debug!(pid, host, ?found, "found in the process's /etc/hosts");
                return answer(found.into_iter(), start);
            }
        }
        Err(err) => tracing::debug!(pid, %err, "cannot read the process's /etc/hosts"),
    }
    let resolv = match read_bounded(&root.join("etc/resolv.conf")) {
        Ok(text) => text,
        Err(err) => {
            tracing::debug!(pid, %err, "cannot read the process's /etc/resolv.conf");
            String::new()
        }
    };
    let mut servers = resolv_conf_nameservers(&resolv);
    if servers.is_empty() {
        // glibc's default without nameserver lines.
        servers.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    let standing_there = crate::netns::current()
        .and_then(|ns| ns.id())
        .is_some_and(|id| crate::namespace::NamespaceIds::of(&pid.to_string()).net == Some(id));
    if crate::process::same_namespace(pid, "net") == Some(false)
        && !standing_there
        && let Some(local) = servers.iter().find(|s| s.ip().is_loopback())
    {
        return Err(other(&format!(
            "nameserver {local} is in the network namespace of process {pid}, not reachable from here"
        )));
    }
    let per_server = resolv_conf_timeout(&resolv).unwrap_or(RESOLV_TIMEOUT);
    let servers_count = u32::try_from(servers.len()).unwrap_or(u32::MAX);
    let budget = timeout.min(per_server.saturating_mul(servers_count));
    resolve_with(host, &servers, budget).await
}

/// The addresses `host` has in the `/etc/hosts` that process `pid` sees (through
/// `/proc/PID/root`; ours when `pid` is `None`), read from the file only: no query is sent
/// to any DNS server. Empty when the name is not there or the file cannot be read.
pub fn hosts_entry(pid: Option<u32>, host: &str) -> Vec<IpAddr> {
    let path = match pid {
        Some(pid) => Path::new("/proc")
            .join(pid.to_string())
            .join("root/etc/hosts"),
        None => Path::new("/etc/hosts").to_path_buf(),
    };
    match read_bounded(&path) {
        Ok(text) => hosts_lookup(&text, host),
        Err(err) => {
            tracing::debug!(?pid, %err, "cannot read /etc/hosts");
            Vec::new()
        }
    }
}

/// The start of a file, at most [`MAX_FILE`] bytes, lossily decoded.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE)
        .read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The addresses `name` has in a hosts(5) file, in file order without duplicates: every
/// line whose canonical name or an alias equals `name` (case-insensitive, a trailing dot
/// ignored), as glibc's getaddrinfo collects them. `#` starts a comment; lines whose
/// address is not an IP literal are skipped.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let wanted = name.trim_end_matches('.');
    let mut found: Vec<IpAddr> = Vec::new();
    if wanted.is_empty() {
        return found;
    }
    for line in text.lines() {
        let content = line.split('#').next().unwrap_or_default();
        let mut fields = content.split_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        let matches = fields.any(|field| field.trim_end_matches('.').eq_ignore_ascii_case(wanted));
        if matches && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

/// The `nameserver` addresses of a resolv.conf(5) text, port 53, at most three (as glibc).
/// Comments (`#`, `;`) and invalid or scoped (`fe80::1%eth0`) addresses are skipped.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some("nameserver")).then(|| fields.next())?
        })
        .filter_map(|addr| addr.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .take(MAX_NAMESERVERS)
        .collect()
}

/// `options timeout:N` of a resolv.conf text (glibc caps it at 30 s); the last one wins.
fn resolv_conf_timeout(text: &str) -> Option<Duration> {
    let mut timeout = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() != Some("options") {
            continue;
        }
        for option in fields {
            if let Some(Ok(secs)) = option.strip_prefix("timeout:").map(str::parse::<u64>) {
                timeout = Some(Duration::from_secs(secs.clamp(1, 30)));
            }
        }
    }
    timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getaddrinfo_texts() {
        assert_eq!(
            classify_getaddrinfo("failed to lookup address information: Name or service not known"),
            DnsFailure::NxDomain
        );
        assert_eq!(
            classify_getaddrinfo("failed to lookup address information: Name does not resolve"),
            DnsFailure::NxDomain
        );
        assert_eq!(
            classify_getaddrinfo(
                "failed to lookup address information: No address associated with hostname"
            ),
            DnsFailure::NoRecords
        );
        assert!(matches!(
            classify_getaddrinfo("failed to lookup address information: Temporary failure"),
            DnsFailure::Other(_)
        ));
    }

    #[test]
    fn answers_keep_order_and_drop_duplicates() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let got = answer([a, b, a].into_iter(), Instant::now()).unwrap();
        assert_eq!(got.addrs, vec![a, b]);
        assert_eq!(
            answer(std::iter::empty(), Instant::now()),
            Err(DnsFailure::NoRecords)
        );
    }

    #[test]
    fn failures_display_on_one_line() {
        for failure in [
            DnsFailure::NxDomain,
            DnsFailure::NoRecords,
            DnsFailure::Timeout,
            DnsFailure::ServFail,
            DnsFailure::Refused,
            DnsFailure::Other("x".to_owned()),
        ] {
            let text = failure.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
    }
    const HOSTS: &str = "\
# The following lines are desirable for IPv4 capable hosts
127.0.0.1\tlocalhost localhost.localdomain
::1     localhost ip6-localhost # IPv6
10.0.0.5 app.internal app   # the app
   10.0.0.6\tApp.Internal.
not-an-ip  broken.internal
10.0.0.5 again.internal app.internal
#10.0.0.9 commented.internal
fe80::1%eth0 scoped.internal
";

    #[test]
    fn hosts_file_lookups() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            hosts_lookup(HOSTS, "localhost"),
            vec![ip("127.0.0.1"), ip("::1")]
        );
        assert_eq!(hosts_lookup(HOSTS, "ip6-localhost"), vec![ip("::1")]);
        // Aliases, case, trailing dots; all lines, duplicates dropped.
        assert_eq!(hosts_lookup(HOSTS, "APP"), vec![ip("10.0.0.5")]);
        assert_eq!(
            hosts_lookup(HOSTS, "app.internal."),
            vec![ip("10.0.0.5"), ip("10.0.0.6")]
        );
        assert!(hosts_lookup(HOSTS, "broken.internal").is_empty());
        assert!(hosts_lookup(HOSTS, "commented.internal").is_empty());
        assert!(hosts_lookup(HOSTS, "scoped.internal").is_empty());
        assert!(hosts_lookup(HOSTS, "missing.internal").is_empty());
        assert!(hosts_lookup(HOSTS, "").is_empty());
        assert!(hosts_lookup("", "localhost").is_empty());
        // A comment word is not a name.
        assert!(hosts_lookup(HOSTS, "IPv6").is_empty());
    }

    #[test]
    fn resolv_conf_parsing() {
        let text = "# generated\n; comment\nsearch corp.example\nnameserver 127.0.0.53\n\
                    nameserver  fd00::53 \nnameserver fe80::1%eth0\nnameserver bogus\n\
                    nameserver 10.0.0.1\nnameserver 10.0.0.2\noptions edns0 timeout:2 attempts:3\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[fd00::53]:53".parse().unwrap(),
                "10.0.0.1:53".parse().unwrap(),
            ]
        );
        assert_eq!(resolv_conf_timeout(text), Some(Duration::from_secs(2)));
        assert_eq!(
            resolv_conf_timeout("options timeout:99"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(resolv_conf_timeout("options ndots:2"), None);
        assert!(resolv_conf_nameservers("").is_empty());
    }

    #[test]
    fn response_code_names() {
        assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
        assert_eq!(rcode_name(ResponseCode::NotImp), "NOTIMP");
        assert_eq!(rcode_name(ResponseCode::from(0, 9)), "RCODE9");
        assert_eq!(rcode_failure(ResponseCode::Refused), DnsFailure::Refused);
        assert_eq!(
            rcode_failure(ResponseCode::FormErr),
            DnsFailure::Other("the server answered FORMERR".to_owned())
        );
    }

    #[test]
    fn namespaces_of_self_are_the_same() {
        assert_eq!(
            crate::process::same_namespace(std::process::id(), "mnt"),
            Some(true)
        );
        assert_eq!(crate::process::same_namespace(u32::MAX, "mnt"), None);
    }
}
