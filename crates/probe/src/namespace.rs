//! Where a process stands: its network, mount and pid namespaces (the inode ids of the
//! `/proc/PID/ns/*` links), the container its cgroup names, and the TCP listeners of its own
//! network namespace that it (or its children) hold. Also the whole host's view: every
//! network namespace its processes run in, with their local addresses and TCP listeners
//! ([`network_namespaces`]), and which of them would accept a connection to a port
//! ([`namespaces_listening_on`]).
//!
//! What belongs here: facts about namespaces read from `/proc` (`/proc/PID/ns/*`,
//! `/proc/PID/cgroup`, `/proc/PID/net/*`). What a container runtime says about its
//! containers belongs in [`docker`](crate::docker).
//!
//! Everything is read from `/proc` without entering any namespace. Whatever cannot be read
//! (another user's process without root, a process that exited) is `None` or empty, never
//! an error.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use procfs::net::{TcpNetEntry, TcpState};
use procfs::process::{FDTarget, Process};

/// The namespace inode ids of one process; `None` where the link cannot be read.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NamespaceIds {
    /// `/proc/PID/ns/net`.
    pub net: Option<u64>,
    /// `/proc/PID/ns/mnt`.
    pub mnt: Option<u64>,
    /// `/proc/PID/ns/pid`.
    pub pid: Option<u64>,
}

impl NamespaceIds {
    /// The namespaces of process `pid` (`"self"` names this process).
    pub fn of(pid: &str) -> Self {
        let read = |kind: &str| {
            fs::read_link(format!("/proc/{pid}/ns/{kind}"))
                .ok()
                .and_then(|target| parse_ns_link(&target.to_string_lossy()))
        };
        Self {
            net: read("net"),
            mnt: read("mnt"),
            pid: read("pid"),
        }
    }

    /// The namespaces of this process.
    pub fn own() -> Self {
        Self::of("self")
    }

    /// The namespaces of the host's init (pid 1, else kthreadd, pid 2); where neither can be
    /// read (not root), this process's own stand in for them.
    pub fn init_or_own() -> Self {
        // pid 1 may be unreadable (a sandbox's supervisor); kthreadd (pid 2), the kernel's
        // own, stands in the host's namespaces on every Linux host.
        let first = Self::of("1");
        let kthreadd =
            if fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim_end() == "kthreadd") {
                Self::of("2")
            } else {
                Self::default()
            };
        let init = Self {
            net: first.net.or(kthreadd.net),
            mnt: first.mnt.or(kthreadd.mnt),
            pid: first.pid.or(kthreadd.pid),
        };
        let own = Self::own();
        Self {
            net: init.net.or(own.net),
            mnt: init.mnt.or(own.mnt),
            pid: init.pid.or(own.pid),
        }
    }

    /// Whether these namespaces are a container-like sandbox compared with `host`: their
    /// own network AND mount namespace. Unknown ids count as shared.
    pub fn sandboxed_from(&self, host: &Self) -> bool {
        differs(self.net, host.net) && differs(self.mnt, host.mnt)
    }

    /// Whether any known id differs from `other`'s.
    pub fn differs_from(&self, other: &Self) -> bool {
        differs(self.net, other.net) || differs(self.mnt, other.mnt) || differs(self.pid, other.pid)
    }

    /// Whether the network namespace is known on both sides and not the same.
    pub fn other_net_than(&self, other: &Self) -> bool {
        differs(self.net, other.net)
    }
}

/// Two namespace ids, both known and not the same.
fn differs(a: Option<u64>, b: Option<u64>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a != b)
}

/// The inode id in a namespace link's target: `net:[4026531840]` → 4026531840.
pub fn parse_ns_link(target: &str) -> Option<u64> {
    let (_, rest) = target.split_once(":[")?;
    rest.strip_suffix(']')?.parse().ok()
}

/// The container a process runs in, as its cgroup path names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Container {
    /// `docker`, `containerd`, `podman`, `kubepods` or `libpod`... as named in the path
    /// (`kubepods` for a Kubernetes pod whose runtime the path does not name).
    pub runtime: String,
    /// The container id (64 hex digits for Docker, containerd and podman), when the path
    /// carries it.
    pub id: Option<String>,
}

/// The container process `pid` runs in, from `/proc/PID/cgroup`; `None` when the cgroup
/// names no container runtime (or cannot be read).
pub fn container_of(pid: u32) -> Option<Container> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    container_from_cgroup(&text)
}

/// The container the text of a `/proc/PID/cgroup` file names: Docker
/// (`/system.slice/docker-ID.scope`, `/docker/ID`), containerd (`cri-containerd-ID.scope`),
/// podman (`libpod-ID.scope`, `/libpod_parent/libpod-ID`), CRI-O (`crio-ID.scope`) and
/// Kubernetes pods (`/kubepods/...`, `kubepods-burstable-pod....slice/...`).
pub fn container_from_cgroup(text: &str) -> Option<Container> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(container_in_path)
}

/// The runtime words a cgroup path component may start with, and the runtime they name.
const RUNTIMES: &[(&str, &str)] = &[
    ("docker", "docker"),
    ("cri-containerd", "containerd"),
    ("containerd", "containerd"),
    ("libpod", "podman"),
    ("podman", "podman"),
    ("crio", "cri-o"),
];

fn container_in_path(path: &str) -> Option<Container> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let kubepods = parts.iter().any(|p| p.starts_with("kubepods"));
    // The innermost component that names a runtime, with the id it carries.
    let mut runtime = None;
    let mut id = None;
    for (i, part) in parts.iter().enumerate().rev() {
        if part.ends_with(".service") {
            // dockerd's own `docker.service`, containerd.service: the daemons, not containers.
            continue;
        }
        let stem = part
            .strip_suffix(".scope")
            .or_else(|| part.strip_suffix(".slice"))
            .unwrap_or(part);
        if let Some((name, rest)) = RUNTIMES
            .iter()
            .find_map(|(word, name)| stem.strip_prefix(word).map(|rest| (*name, rest)))
            .filter(|(_, rest)| rest.is_empty() || rest.starts_with(['-', '_', ':']))
        {
            let rest = rest.trim_start_matches(['-', '_', ':']);
            // `/docker/ID`: the id is the next component.
            let candidate = if rest.is_empty() {
                parts.get(i + 1).copied().unwrap_or_default()
            } else {
                rest
            };
            runtime = Some(name);
            id = container_id(candidate);
            break;
        }
        if kubepods && id.is_none() {
            id = container_id(stem);
        }
    }
    let runtime = match (runtime, kubepods) {
        (Some(r), _) => r,
        (None, true) => "kubepods",
        (None, false) => return None,
    };
    Some(Container {
        runtime: runtime.to_owned(),
        id,
    })
}

/// A container id: 12 to 64 hex digits.
fn container_id(text: &str) -> Option<String> {
    ((12..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// The TCP listening addresses of `pids`, read in the network namespace of the first one
/// (`/proc/PID/net/tcp` and `tcp6` show the sockets of the namespace the process is in).
///
/// When the processes' open files can be read, only the sockets they hold count
/// (`held: true`); otherwise every listener of the namespace is returned with `held:
/// false`, for the caller to decide whether the namespace is the processes' alone.
pub fn listeners_of(pids: &[u32]) -> NamespaceListeners {
    let mut out = NamespaceListeners::default();
    let Some(process) = pids
        .first()
        .and_then(|p| i32::try_from(*p).ok())
        .and_then(|p| Process::new(p).ok())
    else {
        return out;
    };
    let mut entries = process.tcp().unwrap_or_default();
    entries.extend(process.tcp6().unwrap_or_default());
    let listening: Vec<(SocketAddr, u64)> = entries
        .into_iter()
        .filter(|e| e.state == TcpState::Listen)
        .map(|e| (e.local_address, e.inode))
        .collect();
    let mut inodes = HashSet::new();
    let mut fds_read = false;
    for pid in pids {
        let Some(fds) = i32::try_from(*pid)
            .ok()
            .and_then(|p| Process::new(p).ok())
            .and_then(|p| p.fd().ok())
        else {
            continue;
        };
        fds_read = true;
        for fd in fds.flatten() {
            if let FDTarget::Socket(inode) = fd.target {
                inodes.insert(inode);
            }
        }
    }
    out.held = fds_read;
    out.addrs = listening
        .into_iter()
        .filter(|(_, inode)| !fds_read || inodes.contains(inode))
        .map(|(addr, _)| addr)
        .collect();
    out.addrs.sort_unstable();
    out.addrs.dedup();
    out
}

/// What [`listeners_of`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceListeners {
    /// The listening addresses.
    pub addrs: Vec<SocketAddr>,
    /// True when these are the sockets the processes hold; false when their open files
    /// could not be read and these are all the listeners of their network namespace.
    pub held: bool,
}

/// At most this many `/proc` entries are looked at when scanning the processes.
const MAX_PROCESSES: usize = 65_536;
/// At most this many network namespaces are reported.
const MAX_NAMESPACES: usize = 1024;
/// At most this many distinct process names are kept per namespace.
const MAX_NAMES: usize = 8;
/// At most this many processes of a namespace are asked for the container they run in.
const MAX_CONTAINER_LOOKUPS: usize = 16;
/// At most this many TCP listeners are kept per namespace.
const MAX_LISTENERS: usize = 4096;
/// At most this many local addresses are kept per namespace.
const MAX_ADDRS: usize = 1024;
/// The largest `/proc/PID/net/fib_trie` or `if_inet6` read (bytes); the rest is ignored.
const MAX_NET_FILE: u64 = 4 << 20;

/// One network namespace of the running processes, as [`network_namespaces`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNamespace {
    /// The inode id of the namespace (`net:[ID]`).
    pub inode: u64,
    /// The lowest pid in it; its `/proc/PID/net/*` files were read.
    pub pid: u32,
    /// How many processes run in it.
    pub processes: usize,
    /// Whether it is the host's: pid 1's, or this process's own when pid 1's link cannot be
    /// read (see [`NamespaceIds::init_or_own`]).
    pub host: bool,
    /// The container its processes' cgroups name (see [`container_of`]); never set for the
    /// host's namespace, which containers with `network_mode: host` share.
    pub container: Option<Container>,
    /// The first few distinct process names (`comm`) in it, lowest pids first; kernel
    /// threads (in the host's namespace) left out.
    pub names: Vec<String>,
    /// Its local addresses: IPv4 from `/proc/PID/net/fib_trie` (`/32 host LOCAL`), IPv6
    /// from `/proc/PID/net/if_inet6`. Sorted, without duplicates.
    pub addrs: Vec<IpAddr>,
    /// Its TCP listeners (v4 and v6), from `/proc/PID/net/tcp` and `tcp6`, sorted by
    /// address.
    pub listeners: Vec<NetListener>,
}

/// One TCP socket in LISTEN state in a network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetListener {
    /// The local address (`0.0.0.0` or `::` for a wildcard).
    pub addr: SocketAddr,
    /// The socket inode.
    pub inode: u64,
    /// The lowest pid holding the socket, when visible. It may be a process of another
    /// namespace: Docker's embedded DNS (127.0.0.11 in a container) is held by `dockerd`.
    pub pid: Option<u32>,
    /// The owner's command name (`comm`).
    pub process: Option<String>,
}

/// Every distinct network namespace of the running processes, in the order of their
/// lowest pid (so the host's, holding pid 1, usually comes first).
///
/// Needs root to see other users' processes and other namespaces' `/proc/PID/net` files;
/// what cannot be read is left out or empty. Bounded: at most 65536 processes and 1024
/// namespaces are looked at.
pub fn network_namespaces() -> Vec<NetNamespace> {
    network_namespaces_keeping(|_| true)
}

/// [`network_namespaces`] keeping only the TCP listeners `keep` accepts (say, those on one
/// port): the owners of the others are not looked for, which spares a scan of every
/// process's open files when none is kept.
pub fn network_namespaces_keeping(keep: impl Fn(&SocketAddr) -> bool) -> Vec<NetNamespace> {
    let host = NamespaceIds::init_or_own().net;
    let mut pids_by_ns: HashMap<u64, Vec<u32>> = HashMap::new();
    for pid in proc_pids() {
        let Some(inode) = net_of(pid) else {
            continue;
        };
        if pids_by_ns.len() >= MAX_NAMESPACES && !pids_by_ns.contains_key(&inode) {
            continue;
        }
        pids_by_ns.entry(inode).or_default().push(pid);
    }
    let mut found: Vec<NetNamespace> = pids_by_ns
        .into_iter()
        .filter_map(|(inode, mut pids)| {
            pids.sort_unstable();
            let &pid = pids.first()?;
            let is_host = host == Some(inode);
            Some(NetNamespace {
                inode,
                pid,
                processes: pids.len(),
                host: is_host,
                container: if is_host {
                    None
                } else {
                    pids.iter()
                        .take(MAX_CONTAINER_LOOKUPS)
                        .find_map(|p| container_of(*p))
                },
                names: names_of(&pids),
                addrs: local_addrs_of(pid),
                listeners: tcp_listeners_in(pid)
                    .into_iter()
                    .filter(|l| keep(&l.addr))
                    .collect(),
            })
        })
        .collect();
    found.sort_unstable_by_key(|ns| ns.pid);
    let wanted: HashSet<u64> = found
        .iter()
        .flat_map(|ns| ns.listeners.iter().map(|l| l.inode))
        .collect();
    let owners = if wanted.is_empty() {
        HashMap::new()
    } else {
        crate::listeners::socket_owners(&wanted)
    };
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    for listener in found.iter_mut().flat_map(|ns| ns.listeners.iter_mut()) {
        let Some(&pid) = owners.get(&listener.inode) else {
            continue;
        };
        listener.pid = Some(pid);
        listener.process = names.entry(pid).or_insert_with(|| comm_of(pid)).clone();
    }
    tracing::debug!(count = found.len(), "network namespaces read from /proc");
    found
}

/// The network namespace of process `pid` (one `readlink`).
fn net_of(pid: u32) -> Option<u64> {
    fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .and_then(|target| parse_ns_link(&target.to_string_lossy()))
}

/// Whether any running process is in another network namespace than `net` (one `readlink`
/// per process, stopping at the first): the cheap test before [`network_namespaces`] on a
/// host that has only one.
pub fn another_network_namespace(net: Option<u64>) -> bool {
    proc_pids()
        .into_iter()
        .filter_map(net_of)
        .any(|inode| Some(inode) != net)
}

/// The numeric entries of `/proc`, at most [`MAX_PROCESSES`] of them.
fn proc_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.take(MAX_PROCESSES)
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// `/proc/PID/comm` without its newline.
fn comm_of(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|comm| comm.trim_end_matches('\n').to_owned())
}

/// Whether `pid` has a command line: kernel threads (and zombies) have none.
fn has_cmdline(pid: u32) -> bool {
    use std::io::Read;
    let mut first = [0u8; 1];
    fs::File::open(format!("/proc/{pid}/cmdline"))
        .and_then(|mut f| f.read(&mut first))
        .is_ok_and(|n| n > 0)
}

/// The first [`MAX_NAMES`] distinct process names among `pids` (in their order), kernel
/// threads left out.
fn names_of(pids: &[u32]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in pids
        .iter()
        .filter(|p| has_cmdline(**p))
        .filter_map(|p| comm_of(*p))
    {
        if names.len() >= MAX_NAMES {
            break;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A `/proc` text file, at most [`MAX_NET_FILE`] bytes of it; empty when unreadable.
fn read_bounded_text(path: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(file) = fs::File::open(path) {
        // A file cut in the middle of a UTF-8 sequence, or not text: nothing usable.
        let _ = file.take(MAX_NET_FILE).read_to_string(&mut text);
    }
    text
}

/// The local addresses of the network namespace of `pid`, sorted, without duplicates.
fn local_addrs_of(pid: u32) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> =
        parse_fib_trie_local(&read_bounded_text(&format!("/proc/{pid}/net/fib_trie")))
            .into_iter()
            .map(IpAddr::V4)
            .chain(
                parse_if_inet6(&read_bounded_text(&format!("/proc/{pid}/net/if_inet6")))
                    .into_iter()
                    .map(|(ip, _)| IpAddr::V6(ip)),
            )
            .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs.truncate(MAX_ADDRS);
    addrs
}

/// The local IPv4 addresses in the text of `/proc/net/fib_trie`: each `|-- ADDR` leaf
/// followed by a `/32 host LOCAL` line. Prefix routes of type LOCAL (`127.0.0.0` with
/// `/8 host LOCAL`) are not addresses and are left out. Duplicates (the address is listed
/// in both the `Main:` and `Local:` tables) are removed; the order is the file's.
pub fn parse_fib_trie_local(text: &str) -> Vec<Ipv4Addr> {
    let mut found: Vec<Ipv4Addr> = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|--") {
            leaf = addr.trim().parse().ok();
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() == Some("/32")
            && words.any(|w| w == "LOCAL")
            && let Some(addr) = leaf
            && !found.contains(&addr)
            && found.len() < MAX_ADDRS
        {
            found.push(addr);
        }
        if !line.starts_with('/') {
            // A node (`+-- 10.0.0.0/8 ...`) or a table header ends the leaf.
            leaf = None;
        }
    }
    found
}

/// The IPv6 addresses in the text of `/proc/net/if_inet6`, each with its interface name:
/// `00000000000000000000000000000001 01 80 10 80       lo`. Malformed lines are skipped.
pub fn parse_if_inet6(text: &str) -> Vec<(Ipv6Addr, String)> {
    text.lines()
        .take(MAX_ADDRS)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let hex = words.next()?;
            let iface = words.nth(4)?;
            let bits = (hex.len() == 32)
                .then(|| u128::from_str_radix(hex, 16).ok())
                .flatten()?;
            Some((Ipv6Addr::from(bits), iface.to_owned()))
        })
        .collect()
}

/// The TCP listeners of the network namespace of `pid`, without owners.
fn tcp_listeners_in(pid: u32) -> Vec<NetListener> {
    let Some(process) = i32::try_from(pid).ok().and_then(|p| Process::new(p).ok()) else {
        return Vec::new();
    };
    let mut entries = process.tcp().unwrap_or_default();
    entries.extend(process.tcp6().unwrap_or_default());
    listening(&entries)
}

/// The entries in LISTEN state, sorted by address, at most [`MAX_LISTENERS`].
fn listening(entries: &[TcpNetEntry]) -> Vec<NetListener> {
    let mut found: Vec<NetListener> = entries
        .iter()
        .filter(|e| e.state == TcpState::Listen)
        .take(MAX_LISTENERS)
        .map(|e| NetListener {
            addr: e.local_address,
            inode: e.inode,
            pid: None,
            process: None,
        })
        .collect();
    found.sort_unstable_by_key(|l| (l.addr, l.inode));
    found
}

/// Whether a TCP socket listening on `listener`, in a namespace whose local addresses are
/// `local`, accepts a connection made inside that namespace to `port` on `ip` (any address
/// when `None`).
///
/// The same port, and: the same address (IPv4-mapped IPv6 counts as IPv4), or a wildcard
/// of the family (`0.0.0.0` for IPv4, `::` for both) when `ip` is a loopback address or
/// one of `local` (or `local` is unknown, i.e. empty). A `::` listener counts for IPv4 too, as with Linux's default
/// `net.ipv6.bindv6only=0`; a socket with `IPV6_V6ONLY` (nginx's `listen [::]:80` sets it)
/// does not take IPv4, which `/proc` does not show.
pub fn accepts(listener: SocketAddr, local: &[IpAddr], ip: Option<IpAddr>, port: u16) -> bool {
    use crate::listeners::unmapped;
    if listener.port() != port {
        return false;
    }
    let Some(ip) = ip.map(unmapped) else {
        return true;
    };
    let bound = unmapped(listener.ip());
    if bound.is_unspecified() {
        // `0.0.0.0` takes IPv4 only; `::` both.
        if bound.is_ipv4() && ip.is_ipv6() {
            return false;
        }
        return ip.is_loopback() || local.is_empty() || local.iter().any(|a| unmapped(*a) == ip);
    }
    bound == ip
}

/// A listener found by [`namespaces_listening_on`], with its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerMatch<'a> {
    /// The namespace the listener is in.
    pub namespace: &'a NetNamespace,
    /// The listener.
    pub listener: &'a NetListener,
}

/// The TCP listeners, in network namespaces other than `except` (an inode id, e.g. nginx's
/// namespace; `None` keeps them all), that would accept a connection to `port` on `ip`
/// made inside their own namespace (see [`accepts`]; `None` is any address). For example,
/// with `ip` 127.0.0.1: who listens on the loopback or a wildcard on that port, elsewhere
/// than where nginx stands.
pub fn namespaces_listening_on(
    namespaces: &[NetNamespace],
    except: Option<u64>,
    ip: Option<IpAddr>,
    port: u16,
) -> Vec<ListenerMatch<'_>> {
    namespaces
        .iter()
        .filter(|ns| except != Some(ns.inode))
        .flat_map(|ns| {
            ns.listeners
                .iter()
                .filter(move |l| accepts(l.addr, &ns.addrs, ip, port))
                .map(move |listener| ListenerMatch {
                    namespace: ns,
                    listener,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn container(runtime: &str, id: Option<&str>) -> Option<Container> {
        Some(Container {
            runtime: runtime.to_owned(),
            id: id.map(str::to_owned),
        })
    }

    #[test]
    fn namespace_links() {
        assert_eq!(parse_ns_link("net:[4026531840]"), Some(4_026_531_840));
        assert_eq!(parse_ns_link("mnt:[4026532712]"), Some(4_026_532_712));
        assert_eq!(parse_ns_link("net:[]"), None);
        assert_eq!(parse_ns_link("net:4026531840"), None);
        assert_eq!(parse_ns_link("garbage"), None);
    }

    #[test]
    fn own_namespaces_are_readable() {
        let own = NamespaceIds::own();
        assert!(own.net.is_some() && own.mnt.is_some() && own.pid.is_some());
        assert!(!own.differs_from(&own));
        assert!(!own.sandboxed_from(&own));
        assert_eq!(NamespaceIds::of("4294967295"), NamespaceIds::default());
    }

    #[test]
    fn sandbox_needs_own_network_and_mount() {
        let host = NamespaceIds {
            net: Some(1),
            mnt: Some(2),
            pid: Some(3),
        };
        let net_only = NamespaceIds {
            net: Some(10),
            ..host
        };
        assert!(!net_only.sandboxed_from(&host));
        assert!(net_only.differs_from(&host));
        let both = NamespaceIds {
            mnt: Some(20),
            ..net_only
        };
        assert!(both.sandboxed_from(&host));
        let unknown = NamespaceIds::default();
        assert!(!unknown.sandboxed_from(&host));
        assert!(!unknown.differs_from(&host));
    }

    #[test]
    fn docker_cgroups() {
        let v2 = format!("0::/system.slice/docker-{HEX}.scope\n");
        assert_eq!(container_from_cgroup(&v2), container("docker", Some(HEX)));
        let v1 = format!("12:pids:/docker/{HEX}\n1:name=systemd:/docker/{HEX}\n0::/\n");
        assert_eq!(container_from_cgroup(&v1), container("docker", Some(HEX)));
        // Docker-in-Docker and cgroup namespaces may show only the runtime.
        assert_eq!(
            container_from_cgroup("0::/docker\n"),
            container("docker", None)
        );
    }

    #[test]
    fn kubernetes_cgroups() {
        let systemd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-{HEX}.scope\n"
        );
        assert_eq!(
            container_from_cgroup(&systemd),
            container("containerd", Some(HEX))
        );
        let cgroupfs = format!(
            "11:memory:/kubepods/besteffort/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/{HEX}\n"
        );
        assert_eq!(
            container_from_cgroup(&cgroupfs),
            container("kubepods", Some(HEX))
        );
        let crio = format!("0::/kubepods.slice/kubepods-pod1.slice/crio-{HEX}.scope\n");
        assert_eq!(container_from_cgroup(&crio), container("cri-o", Some(HEX)));
    }

    #[test]
    fn podman_cgroups() {
        let scope = format!("0::/machine.slice/libpod-{HEX}.scope/container\n");
        assert_eq!(
            container_from_cgroup(&scope),
            container("podman", Some(HEX))
        );
        let v1 = format!("4:memory:/libpod_parent/libpod-{HEX}\n");
        assert_eq!(container_from_cgroup(&v1), container("podman", Some(HEX)));
        let conmon = format!("0::/machine.slice/libpod-conmon-{HEX}.scope\n");
        assert_eq!(container_from_cgroup(&conmon), container("podman", None));
    }

    #[test]
    fn no_container() {
        for text in [
            "0::/\n",
            "0::/system.slice/nginx.service\n",
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "0::/init.scope\n",
            "0::/system.slice/docker.service\n",
            "0::/system.slice/containerd.service\n",
            "0::/user.slice/dockerish-thing.scope\n",
            "",
            "garbage",
        ] {
            assert_eq!(container_from_cgroup(text), None, "{text:?}");
        }
        assert_eq!(container_of(u32::MAX), None);
    }

    #[test]
    fn own_listener_is_found_in_own_namespace() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let found = listeners_of(&[std::process::id()]);
        assert!(found.held, "{found:?}");
        assert!(found.addrs.contains(&addr), "{addr} not in {found:?}");
        assert_eq!(listeners_of(&[u32::MAX]), NamespaceListeners::default());
    }

    const FIB_TRIE_CONTAINER: &str = include_str!("../tests/fixtures/netns/fib_trie.container");
    const FIB_TRIE_HOST: &str = include_str!("../tests/fixtures/netns/fib_trie.host");
    const IF_INET6_HOST: &str = include_str!("../tests/fixtures/netns/if_inet6.host");
    /// A Docker container's `/proc/PID/net/tcp`: the embedded DNS listens on 127.0.0.11.
    const TCP_CONTAINER: &str = include_str!("../tests/fixtures/netns/tcp.container");

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn sock(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn fib_trie_local_addresses_of_a_container() {
        // `127.0.0.0 /8 host LOCAL` is the loopback prefix route, not an address.
        assert_eq!(
            parse_fib_trie_local(FIB_TRIE_CONTAINER),
            vec![v4("127.0.0.1"), v4("172.19.0.2")]
        );
    }

    #[test]
    fn fib_trie_local_addresses_of_the_host() {
        assert_eq!(
            parse_fib_trie_local(FIB_TRIE_HOST),
            vec![
                v4("127.0.0.1"),
                v4("172.17.0.1"),
                v4("172.18.0.1"),
                v4("172.19.0.1"),
                v4("192.0.2.2")
            ]
        );
        assert_eq!(parse_fib_trie_local(""), Vec::<Ipv4Addr>::new());
        assert_eq!(
            parse_fib_trie_local("|-- 10.0.0.1\n/32 link BROADCAST\n|-- garbage\n/32 host LOCAL\n"),
            Vec::<Ipv4Addr>::new()
        );
    }

    #[test]
    fn if_inet6_addresses() {
        let found = parse_if_inet6(IF_INET6_HOST);
        assert_eq!(found.len(), 7);
        assert!(found.contains(&("::1".parse().unwrap(), "lo".to_owned())));
        assert!(found.contains(&("fd00::2".parse().unwrap(), "eth0".to_owned())));
        assert!(found.contains(&(
            "fe80::42:88ff:fe33:bd89".parse().unwrap(),
            "br-162cb553c718".to_owned()
        )));
        assert_eq!(
            parse_if_inet6(
                "0001 01 80 10 80 lo\nzz000000000000000000000000000001 01 80 10 80 lo\n"
            ),
            vec![]
        );
    }

    #[test]
    fn listeners_of_a_tcp_table() {
        use procfs::FromBufReadSI;
        let established = "   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 40001 1 0000000000000000 20 4 30 10 -1\n";
        let text = format!("{TCP_CONTAINER}{established}");
        let entries = procfs::net::TcpNetEntries::from_buf_read(
            text.as_bytes(),
            procfs::current_system_info(),
        )
        .unwrap()
        .0;
        assert_eq!(entries.len(), 2);
        assert_eq!(
            listening(&entries),
            vec![NetListener {
                addr: sock("127.0.0.11:42085"),
                inode: 39904,
                pid: None,
                process: None,
            }]
        );
    }

    #[test]
    fn what_a_listener_accepts() {
        let local = [ip("127.0.0.1"), ip("172.19.0.2")];
        // Any address: only the port matters.
        assert!(accepts(sock("10.1.2.3:80"), &local, None, 80));
        assert!(!accepts(sock("10.1.2.3:80"), &local, None, 81));
        // Loopback: the same address, or a wildcard of either family.
        assert!(accepts(
            sock("127.0.0.1:80"),
            &local,
            Some(ip("127.0.0.1")),
            80
        ));
        assert!(accepts(
            sock("0.0.0.0:80"),
            &local,
            Some(ip("127.0.0.1")),
            80
        ));
        assert!(accepts(sock("[::]:80"), &local, Some(ip("127.0.0.1")), 80));
        assert!(accepts(sock("[::]:80"), &local, Some(ip("::1")), 80));
        assert!(!accepts(sock("0.0.0.0:80"), &local, Some(ip("::1")), 80));
        assert!(!accepts(
            sock("127.0.0.2:80"),
            &local,
            Some(ip("127.0.0.1")),
            80
        ));
        assert!(!accepts(
            sock("[::1]:80"),
            &local,
            Some(ip("127.0.0.1")),
            80
        ));
        // IPv4-mapped IPv6 on either side counts as IPv4.
        assert!(accepts(
            sock("[::ffff:127.0.0.1]:80"),
            &local,
            Some(ip("127.0.0.1")),
            80
        ));
        assert!(accepts(
            sock("127.0.0.1:80"),
            &local,
            Some(ip("::ffff:127.0.0.1")),
            80
        ));
        // Another address: a wildcard takes it only where it is local.
        assert!(accepts(
            sock("0.0.0.0:80"),
            &local,
            Some(ip("172.19.0.2")),
            80
        ));
        assert!(!accepts(
            sock("0.0.0.0:80"),
            &local,
            Some(ip("172.19.0.3")),
            80
        ));
        assert!(accepts(sock("0.0.0.0:80"), &[], Some(ip("172.19.0.3")), 80));
        assert!(accepts(
            sock("172.19.0.2:80"),
            &local,
            Some(ip("172.19.0.2")),
            80
        ));
        assert!(!accepts(
            sock("127.0.0.1:80"),
            &local,
            Some(ip("172.19.0.2")),
            80
        ));
    }

    fn netns(inode: u64, pid: u32, host: bool, addrs: &[&str], listening: &[&str]) -> NetNamespace {
        NetNamespace {
            inode,
            pid,
            processes: 1,
            host,
            container: None,
            names: Vec::new(),
            addrs: addrs.iter().map(|a| ip(a)).collect(),
            listeners: listening
                .iter()
                .enumerate()
                .map(|(i, a)| NetListener {
                    addr: sock(a),
                    inode: u64::from(pid) * 100 + i as u64,
                    pid: None,
                    process: None,
                })
                .collect(),
        }
    }

    #[test]
    fn who_else_listens_on_a_port() {
        let all = [
            netns(
                1,
                1,
                true,
                &["127.0.0.1", "192.0.2.2"],
                &["127.0.0.1:3000", "0.0.0.0:22"],
            ),
            netns(2, 200, false, &["127.0.0.1", "172.18.0.2"], &["0.0.0.0:80"]),
            netns(
                3,
                300,
                false,
                &["127.0.0.1", "172.18.0.3"],
                &["0.0.0.0:3000", "127.0.0.11:41000"],
            ),
            netns(
                4,
                400,
                false,
                &["127.0.0.1", "172.18.0.4"],
                &["172.18.0.4:3000"],
            ),
        ];
        let found = |except, addr: Option<&str>, port| -> Vec<(u64, SocketAddr)> {
            namespaces_listening_on(&all, except, addr.map(ip), port)
                .iter()
                .map(|m| (m.namespace.inode, m.listener.addr))
                .collect()
        };
        // nginx in namespace 2 proxies to localhost:3000: the host and container 3 listen.
        assert_eq!(
            found(Some(2), Some("127.0.0.1"), 3000),
            vec![(1, sock("127.0.0.1:3000")), (3, sock("0.0.0.0:3000"))]
        );
        // By a container's address: the one that has it (a wildcard there), or binds it.
        assert_eq!(
            found(Some(2), Some("172.18.0.3"), 3000),
            vec![(3, sock("0.0.0.0:3000"))]
        );
        assert_eq!(
            found(Some(2), Some("172.18.0.4"), 3000),
            vec![(4, sock("172.18.0.4:3000"))]
        );
        // Any address; and the excluded namespace is never among them.
        assert_eq!(found(Some(3), None, 3000).len(), 2);
        assert_eq!(found(None, None, 3000).len(), 3);
        assert_eq!(found(Some(2), Some("127.0.0.1"), 80), vec![]);
        assert_eq!(
            found(None, Some("127.0.0.1"), 80),
            vec![(2, sock("0.0.0.0:80"))]
        );
    }

    #[test]
    fn our_own_namespace_and_listener_are_found() {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let own = NamespaceIds::own().net.unwrap();
        let all = network_namespaces();
        let ours = all
            .iter()
            .find(|ns| ns.inode == own)
            .expect("our namespace");
        assert!(ours.pid <= std::process::id());
        assert!(ours.processes >= 1 && !ours.names.is_empty(), "{ours:?}");
        assert!(ours.addrs.contains(&ip("127.0.0.1")), "{ours:?}");
        let listener = ours
            .listeners
            .iter()
            .find(|l| l.addr == addr)
            .expect("our listener");
        assert_eq!(listener.pid, Some(std::process::id()));
        // Distinct namespaces, each reported once.
        let inodes: HashSet<u64> = all.iter().map(|ns| ns.inode).collect();
        assert_eq!(inodes.len(), all.len());
        assert!(all.iter().filter(|ns| ns.host).count() <= 1);
    }

    /// A process in a network namespace of its own (made with `unshare --net`), killed and
    /// reaped when dropped.
    struct Unshared(std::process::Child);

    impl Drop for Unshared {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    #[allow(clippy::print_stderr, reason = "a skipped test says why on stderr")]
    fn a_listener_in_another_namespace_is_found() {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: making a network namespace needs root");
            return;
        }
        if Command::new("python3").arg("--version").output().is_err() {
            eprintln!("skipped: python3 is not installed");
            return;
        }
        // A port nobody uses here; in the new namespace every port is free anyway.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // `unshare` without `--fork` execs sh, which execs python3: the child's pid is
        // the server's, and killing it stops the server.
        let child = Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                &format!(
                    "ip link set lo up && exec python3 -m http.server --bind 127.0.0.1 {port}"
                ),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare runs");
        let server = Unshared(child);
        let pid = server.0.id();
        let own = NamespaceIds::own().net;
        let want = sock(&format!("127.0.0.1:{port}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let (inode, listener) = loop {
            let all = network_namespaces();
            let found = namespaces_listening_on(&all, own, Some(ip("127.0.0.1")), port)
                .first()
                .map(|m| (m.namespace.inode, m.listener.clone()));
            if let Some(found) = found {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "no listener on {want} in another namespace"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_ne!(Some(inode), own);
        assert_eq!(NamespaceIds::of(&pid.to_string()).net, Some(inode));
        assert_eq!(listener.addr, want);
        assert_eq!(listener.pid, Some(pid));
        assert_eq!(listener.process.as_deref(), Some("python3"));
        // Not here: our own namespace has no such listener.
        let all = network_namespaces();
        let ours = all.iter().find(|ns| Some(ns.inode) == own).unwrap();
        assert!(ours.listeners.iter().all(|l| l.addr != want));
        let theirs = all.iter().find(|ns| ns.inode == inode).unwrap();
        assert!(!theirs.host);
        assert_eq!(theirs.pid, pid);
        // Only its loopback is up: 127.0.0.1, and ::1 unless IPv6 is disabled.
        assert!(theirs.addrs.contains(&ip("127.0.0.1")), "{theirs:?}");
        assert!(theirs.addrs.iter().all(IpAddr::is_loopback), "{theirs:?}");
    }
}
