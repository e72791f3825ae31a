//! Where a process stands: its network, mount and pid namespaces (the inode ids of the
//! `/proc/PID/ns/*` links), the container its cgroup names, and the TCP listeners of its own
//! network namespace that it (or its children) hold.
//!
//! Everything is read from `/proc` without entering any namespace. Whatever cannot be read
//! (another user's process without root, a process that exited) is `None` or empty, never
//! an error.

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;

use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};

/// The namespace inode ids of one process; `None` where the link cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
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

    /// The namespaces of the host's init (pid 1); where pid 1's links cannot be read (not
    /// root), this process's own stand in for them.
    pub fn init_or_own() -> Self {
        let init = Self::of("1");
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}
