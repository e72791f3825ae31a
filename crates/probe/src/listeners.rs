//! Who listens where: TCP (v4 and v6) and unix stream listeners with their owning process.
//!
//! Sockets come from `/proc/net/tcp`, `/proc/net/tcp6` and `/proc/net/unix` (the network
//! namespace of this process); owners from the socket inodes in `/proc/*/fd`, as `ss -p`
//! does. A socket whose owner is not visible (not root, or another pid namespace) is kept
//! with `pid: None`, never dropped. Also here: TIME_WAIT counts per destination (evidence
//! of ephemeral port exhaustion).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use procfs::net::{TcpNetEntry, TcpState};
use procfs::process::FDTarget;
use serde::{Deserialize, Serialize};

use crate::error::ProbeError;

pub use crate::kernel::{ipv6_disabled_on_lo, local_port_range};
pub use crate::process::{process_start_time, systemd_unit_of};

/// The transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerKind {
    /// A TCP socket in LISTEN state (IPv4 or IPv6).
    Tcp,
    /// A listening unix stream socket.
    Unix,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// TCP or unix.
    pub kind: ListenerKind,
    /// The address as nginx writes it: `127.0.0.1:8000`, `[::]:80`, `unix:/run/app.sock`.
    pub addr: String,
    /// The local address, for TCP.
    pub socket_addr: Option<SocketAddr>,
    /// The socket path, for unix (abstract names start with `@`).
    pub path: Option<PathBuf>,
    /// The socket inode.
    pub inode: u64,
    /// The owning process (the lowest pid holding the socket, usually the master), when
    /// visible.
    pub pid: Option<u32>,
    /// The owner's command name (`comm`).
    pub process: Option<String>,
    /// The owner's command line, arguments joined by spaces.
    pub cmdline: Option<String>,
    /// For TCP: connections waiting in the accept queue right now (`ss -lt` Recv-Q). A
    /// queue that stays non-empty means the backend does not accept fast enough. The
    /// queue's limit is not in `/proc/net/tcp`.
    pub queued: Option<u32>,
}

/// Lists TCP sockets in LISTEN state (v4 and v6) and listening unix stream sockets with a
/// path, with their owning process where visible, in fix502's network namespace.
pub fn listeners() -> Result<Vec<Listener>, ProbeError> {
    listeners_in(None)
}

/// [`listeners`] in the network namespace of process `pid` (read from `/proc/PID/net/*`,
/// without entering it); fix502's own when `None`.
pub fn listeners_in(pid: Option<u32>) -> Result<Vec<Listener>, ProbeError> {
    let mut found = Vec::new();
    for entry in tcp_entries(pid)? {
        if entry.state != TcpState::Listen {
            continue;
        }
        found.push(Listener {
            kind: ListenerKind::Tcp,
            addr: entry.local_address.to_string(),
            socket_addr: Some(entry.local_address),
            path: None,
            inode: entry.inode,
            pid: None,
            process: None,
            cmdline: None,
            queued: Some(entry.rx_queue),
        });
    }
    let unix_path = net_file(pid, "unix");
    let unix_text = fs::read_to_string(&unix_path).map_err(|source| ProbeError::Io {
        what: format!("reading {}", unix_path.display()),
        source,
    })?;
    for row in parse_unix_table(&unix_text) {
        if !row.is_listening_stream() {
            continue;
        }
        let Some(path) = row.path else { continue };
        found.push(Listener {
            kind: ListenerKind::Unix,
            addr: format!("unix:{}", path.display()),
            socket_addr: None,
            path: Some(path),
            inode: row.inode,
            pid: None,
            process: None,
            cmdline: None,
            queued: None,
        });
    }

    let wanted: HashSet<u64> = found.iter().map(|l| l.inode).collect();
    let owners = socket_owners(&wanted);
    let mut details: HashMap<u32, (Option<String>, Option<String>)> = HashMap::new();
    for listener in &mut found {
        let Some(&pid) = owners.get(&listener.inode) else {
            continue;
        };
        let (process, cmdline) = details
            .entry(pid)
            .or_insert_with(|| process_details(pid))
            .clone();
        listener.pid = Some(pid);
        listener.process = process;
        listener.cmdline = cmdline;
    }
    tracing::debug!(count = found.len(), "listeners read from /proc");
    Ok(found)
}

/// The TCP listeners on `port`, on any address and family.
pub fn listeners_on_port(all: &[Listener], port: u16) -> Vec<&Listener> {
    all.iter()
        .filter(|l| l.kind == ListenerKind::Tcp && l.socket_addr.is_some_and(|a| a.port() == port))
        .collect()
}

/// Counts TCP sockets in TIME_WAIT whose remote end is `dst` (IPv4-mapped IPv6 addresses
/// count as IPv4). Thousands of them, near the size of the local port range, mean the
/// ephemeral ports towards that upstream are exhausted (`EADDRNOTAVAIL`, 99).
pub fn time_wait_count(dst: SocketAddr) -> Result<usize, ProbeError> {
    time_wait_count_in(None, dst)
}

/// [`time_wait_count`] in the network namespace of process `pid`; fix502's own when `None`.
pub fn time_wait_count_in(pid: Option<u32>, dst: SocketAddr) -> Result<usize, ProbeError> {
    Ok(TimeWait::read_in(pid)?.towards(dst))
}

/// The TCP sockets in TIME_WAIT of one network namespace, counted by remote end: the socket
/// table read once, however many upstreams are asked about (a host with hundreds of them
/// would otherwise read a table of thousands of sockets as many times).
#[derive(Debug, Clone, Default)]
pub struct TimeWait {
    by_remote: HashMap<(IpAddr, u16), usize>,
}

impl TimeWait {
    /// Reads the table of the network namespace of process `pid` (fix502's own when `None`).
    pub fn read_in(pid: Option<u32>) -> Result<Self, ProbeError> {
        let mut by_remote = HashMap::new();
        for e in tcp_entries(pid)?
            .iter()
            .filter(|e| e.state == TcpState::TimeWait)
        {
            *by_remote
                .entry((unmapped(e.remote_address.ip()), e.remote_address.port()))
                .or_insert(0) += 1;
        }
        Ok(Self { by_remote })
    }

    /// How many wait towards `dst` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn towards(&self, dst: SocketAddr) -> usize {
        self.by_remote
            .get(&(unmapped(dst.ip()), dst.port()))
            .copied()
            .unwrap_or(0)
    }
}

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) written as IPv4.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `/proc/net/NAME`, or `/proc/PID/net/NAME`: the same table in the network namespace of
/// process `pid`.
fn net_file(pid: Option<u32>, name: &str) -> PathBuf {
    match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/net/{name}")),
        None => PathBuf::from(format!("/proc/net/{name}")),
    }
}

/// `tcp` plus `tcp6` (absent when IPv6 is compiled out or disabled) of [`net_file`].
fn tcp_entries(pid: Option<u32>) -> Result<Vec<TcpNetEntry>, ProbeError> {
    let process = match pid {
        Some(pid) => Some(
            procfs::process::Process::new(i32::try_from(pid).unwrap_or(i32::MAX))
                .map_err(|e| ProbeError::proc(&format!("/proc/{pid}"), &e))?,
        ),
        None => None,
    };
    let read = |name: &str| {
        let table = match (&process, name) {
            (Some(p), "tcp") => p.tcp(),
            (Some(p), _) => p.tcp6(),
            (None, "tcp") => procfs::net::tcp(),
            (None, _) => procfs::net::tcp6(),
        };
        table.map_err(|e| ProbeError::proc(&net_file(pid, name).display().to_string(), &e))
    };
    let mut entries = read("tcp")?;
    if net_file(pid, "tcp6").exists() {
        entries.extend(read("tcp6")?);
    }
    Ok(entries)
}

/// At most this many processes are scanned for socket owners.
const MAX_OWNER_SCAN: usize = 65_536;

/// Maps each wanted socket inode to the lowest pid holding it, scanning `/proc/*/fd` (at
/// most 65536 processes). Processes whose fds cannot be read (permissions, exited) are
/// skipped.
pub(crate) fn socket_owners(wanted: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut owners: HashMap<u64, u32> = HashMap::new();
    if wanted.is_empty() {
        return owners;
    }
    let processes = match procfs::process::all_processes() {
        Ok(iter) => iter,
        Err(err) => {
            tracing::debug!(%err, "cannot list processes");
            return owners;
        }
    };
    for process in processes.take(MAX_OWNER_SCAN).flatten() {
        let Ok(pid) = u32::try_from(process.pid()) else {
            continue;
        };
        let Ok(fds) = process.fd() else { continue };
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target
                && wanted.contains(&inode)
            {
                owners
                    .entry(inode)
                    .and_modify(|owner| *owner = (*owner).min(pid))
                    .or_insert(pid);
            }
        }
    }
    owners
}

/// `comm` and the command line of a process, each when readable.
fn process_details(pid: u32) -> (Option<String>, Option<String>) {
    let Ok(process) = i32::try_from(pid).map(procfs::process::Process::new) else {
        return (None, None);
    };
    let Ok(process) = process else {
        return (None, None);
    };
    let comm = process.stat().ok().map(|stat| stat.comm);
    let cmdline = process
        .cmdline()
        .ok()
        .filter(|args| !args.is_empty())
        .map(|args| args.join(" "));
    (comm, cmdline)
}

/// `__SO_ACCEPTCON`: the socket is listening.
const SO_ACCEPTCON: u32 = 0x0001_0000;
/// `SOCK_STREAM` in the `Type` column.
const SOCK_STREAM: u16 = 1;

/// One row of `/proc/net/unix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnixRow {
    pub(crate) flags: u32,
    pub(crate) sock_type: u16,
    pub(crate) inode: u64,
    pub(crate) path: Option<PathBuf>,
}

impl UnixRow {
    fn is_listening_stream(&self) -> bool {
        self.flags & SO_ACCEPTCON != 0 && self.sock_type == SOCK_STREAM
    }
}

/// Parses `/proc/net/unix`. procfs does not expose the `Flags` column, which is the only
/// place that says whether a unix socket listens, hence this parser. Malformed lines are
/// skipped.
///
/// Columns: `Num RefCount Protocol Flags Type St Inode [Path]`; the path is the rest of
/// the line (it may contain spaces).
pub(crate) fn parse_unix_table(text: &str) -> Vec<UnixRow> {
    text.lines().skip(1).filter_map(parse_unix_line).collect()
}

fn parse_unix_line(line: &str) -> Option<UnixRow> {
    let mut rest = line.trim_start();
    let mut fields = [""; 7];
    for field in &mut fields {
        let end = rest.find(' ').unwrap_or(rest.len());
        *field = &rest[..end];
        rest = rest[end..].trim_start_matches(' ');
    }
    let flags = u32::from_str_radix(fields[3], 16).ok()?;
    let sock_type = u16::from_str_radix(fields[4], 16).ok()?;
    let inode = fields[6].parse().ok()?;
    let path = (!rest.is_empty()).then(|| PathBuf::from(rest));
    Some(UnixRow {
        flags,
        sock_type,
        inode,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIX_TABLE: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/php/php8.2-fpm.sock
0000000000000000: 00000003 00000000 00000000 0001 03 23457 /run/php/php8.2-fpm.sock
0000000000000000: 00000002 00000000 00000000 0002 01 23458 /run/systemd/notify
0000000000000000: 00000002 00000000 00010000 0001 01 23459 @/tmp/.X11-unix/X0
0000000000000000: 00000002 00000000 00010000 0001 01 23460 /tmp/dir with space/app.sock
0000000000000000: 00000003 00000000 00000000 0001 03 23461
0000000000000000: 00000002 00000000 00010000 0005 01 23462 /run/seq.sock
garbage line
";

    #[test]
    fn unix_table_listening_streams() {
        let rows = parse_unix_table(UNIX_TABLE);
        assert_eq!(rows.len(), 7, "the garbage line is skipped");
        let listening: Vec<_> = rows
            .iter()
            .filter(|r| r.is_listening_stream())
            .map(|r| (r.inode, r.path.clone()))
            .collect();
        assert_eq!(
            listening,
            vec![
                (23456, Some(PathBuf::from("/run/php/php8.2-fpm.sock"))),
                (23459, Some(PathBuf::from("@/tmp/.X11-unix/X0"))),
                (23460, Some(PathBuf::from("/tmp/dir with space/app.sock"))),
            ]
        );
        assert_eq!(rows[5].path, None);
    }

    #[test]
    fn unmapped_v4_in_v6() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(unmapped(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(unmapped(v6), v6);
    }

    #[test]
    fn port_filter_ignores_unix() {
        let tcp = Listener {
            kind: ListenerKind::Tcp,
            addr: "127.0.0.1:8000".to_owned(),
            socket_addr: Some("127.0.0.1:8000".parse().unwrap()),
            path: None,
            inode: 1,
            pid: None,
            process: None,
            cmdline: None,
            queued: None,
        };
        let unix = Listener {
            kind: ListenerKind::Unix,
            addr: "unix:/run/8000".to_owned(),
            socket_addr: None,
            path: Some(PathBuf::from("/run/8000")),
            inode: 2,
            ..tcp.clone()
        };
        let other_port = Listener {
            socket_addr: Some("[::]:8001".parse().unwrap()),
            inode: 3,
            ..tcp.clone()
        };
        let all = vec![tcp, unix, other_port];
        let on_port = listeners_on_port(&all, 8000);
        assert_eq!(on_port.len(), 1);
        assert_eq!(on_port[0].inode, 1);
    }
}
