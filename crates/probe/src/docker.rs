//! What Docker itself says about its containers and published ports, read from its files
//! and processes, never from its API socket.
//!
//! What belongs here: facts only Docker records. Each container's `config.v2.json` and
//! `hostconfig.json` under `/var/lib/docker/containers/ID/` ([`containers`],
//! [`container_by_id`]): its name, state, Compose labels, networks with addresses and
//! aliases, and ports. The ports forwarded by the running `docker-proxy` processes
//! ([`published_ports`]), and the DNAT rules Docker writes, parsed from
//! `iptables-save -t nat` text ([`parse_dnat_rules`]). Namespaces, cgroups and the sockets
//! of a container's network namespace are in [`namespace`](crate::namespace).
//!
//! Nothing here fails: a file that is missing, too large (over 4 MiB) or not the JSON
//! expected leaves that container out; unknown and missing fields are ignored. The files
//! are root's (`config.v2.json` is mode 0600), so without root the lists are empty.
//!
//! On a network created with `--internal`, Docker keeps a container's requested ports
//! (`HostConfig.PortBindings`, [`DockerContainer::port_bindings`]) but publishes none: no
//! `docker-proxy`, no DNAT rule, and an empty `NetworkSettings.Ports`
//! ([`DockerContainer::ports`]); `docker run -p` does not complain.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// Where Docker keeps one directory per container (the default `data-root`).
pub const CONTAINERS_DIR: &str = "/var/lib/docker/containers";

/// The largest `config.v2.json` or `hostconfig.json` read (bytes).
const MAX_FILE: u64 = 4 << 20;
/// At most this many container directories are read.
const MAX_CONTAINERS: usize = 4096;
/// At most this many processes are looked at for `docker-proxy`.
const MAX_PROCESSES: usize = 65_536;
/// The longest `docker-proxy` command line read (bytes).
const MAX_CMDLINE: u64 = 64 << 10;
/// At most this many lines of `iptables-save` output are parsed.
const MAX_RULES: usize = 100_000;

/// One container, as its `config.v2.json` and `hostconfig.json` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerContainer {
    /// The full id (64 hex digits), also the name of its directory.
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// Whether it is running (`State.Running`).
    pub running: bool,
    /// Its main process, as the host sees it (`State.Pid`); `None` when it is not running.
    pub pid: Option<u32>,
    /// The exit code of its last run (`State.ExitCode`; 0 while running).
    pub exit_code: i64,
    /// How many times Docker restarted it (`RestartCount`).
    pub restart_count: u32,
    /// The image as it was named at `docker run` (`Config.Image`, e.g. `nginx:1.27`); the
    /// image id when no name was given.
    pub image: String,
    /// The Compose project (label `com.docker.compose.project`).
    pub compose_project: Option<String>,
    /// The Compose service (label `com.docker.compose.service`).
    pub compose_service: Option<String>,
    /// `HostConfig.NetworkMode`: `bridge`, `host`, `none`, a network's name, or
    /// `container:ID` (sharing another container's network namespace); `None` when empty.
    pub network_mode: Option<String>,
    /// The networks it is attached to, by name.
    pub networks: Vec<DockerNetwork>,
    /// The ports it asked to publish (`HostConfig.PortBindings`), published or not.
    pub port_bindings: Vec<PortBinding>,
    /// The ports Docker published for it (`NetworkSettings.Ports`): empty when it is not
    /// running or is only on internal networks.
    pub ports: Vec<PortBinding>,
    /// Its json-file log (`LogPath`), when it has one.
    pub log_path: Option<PathBuf>,
}

/// A container's endpoint on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerNetwork {
    /// The network's name (`bridge`, `myproject_default`, ...).
    pub name: String,
    /// The container's IPv4 address on it (`IPAddress`); `None` when not running.
    pub ip: Option<IpAddr>,
    /// Its global IPv6 address (`GlobalIPv6Address`), when it has one.
    pub ipv6: Option<IpAddr>,
    /// The network's gateway (`Gateway`): the host's address on the bridge.
    pub gateway: Option<IpAddr>,
    /// The names the embedded DNS answers for it on this network (`Aliases`: Compose's
    /// service name, `--network-alias` values, the short id).
    pub aliases: Vec<String>,
    /// Its MAC address (`MacAddress`); `None` when empty.
    pub mac: Option<String>,
}

/// A container port and where it is (or is asked to be) published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortBinding {
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The host address; `None` when empty (every address).
    pub host_ip: Option<IpAddr>,
    /// The host port; `None` when empty (Docker picks one).
    pub host_port: Option<u16>,
}

/// Every container in [`CONTAINERS_DIR`], running or not, sorted by name.
pub fn containers() -> Vec<DockerContainer> {
    containers_in(Path::new(CONTAINERS_DIR))
}

/// Every container in `root`, a directory laid out as [`CONTAINERS_DIR`] (one directory
/// per container id holding `config.v2.json` and `hostconfig.json`), sorted by name. At
/// most 4096 are read.
pub fn containers_in(root: &Path) -> Vec<DockerContainer> {
    let Ok(dir) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<DockerContainer> = dir
        .take(MAX_CONTAINERS)
        .flatten()
        .filter_map(|entry| read_container(&entry.path()))
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    found
}

/// The container with this id in [`CONTAINERS_DIR`]: the full id (as a cgroup path names
/// it), or a unique prefix of at least 12 hex digits (as `docker ps` shows it).
pub fn container_by_id(id: &str) -> Option<DockerContainer> {
    container_by_id_in(Path::new(CONTAINERS_DIR), id)
}

/// [`container_by_id`] in `root`, laid out as [`CONTAINERS_DIR`].
pub fn container_by_id_in(root: &Path, id: &str) -> Option<DockerContainer> {
    let id = id.to_ascii_lowercase();
    if id.len() < 12 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if id.len() == 64 {
        return read_container(&root.join(&id));
    }
    let mut matching = fs::read_dir(root)
        .ok()?
        .take(MAX_CONTAINERS)
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&id)));
    let only = matching.next()?;
    if matching.next().is_some() {
        return None;
    }
    read_container(&only.path())
}

/// The container that has address `ip` on one of its networks; a running one before one
/// that is not (a stopped container may still list its last address).
pub fn container_with_ip(containers: &[DockerContainer], ip: IpAddr) -> Option<&DockerContainer> {
    let has = |c: &&DockerContainer| {
        c.networks
            .iter()
            .any(|n| n.ip == Some(ip) || n.ipv6 == Some(ip))
    };
    containers
        .iter()
        .filter(|c| c.running)
        .find(has)
        .or_else(|| containers.iter().find(has))
}

/// The container in directory `dir`, when both its files can be read and parsed.
fn read_container(dir: &Path) -> Option<DockerContainer> {
    let config = read_small(&dir.join("config.v2.json"))?;
    // A container whose hostconfig.json is missing still has its config.
    let host = read_small(&dir.join("hostconfig.json")).unwrap_or_default();
    parse_container(&config, &host)
}

/// A file of at most [`MAX_FILE`] bytes; `None` when larger or unreadable.
fn read_small(path: &Path) -> Option<String> {
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() as u64 <= MAX_FILE).then_some(text)
}

/// A container from the text of its `config.v2.json` and `hostconfig.json` (empty text:
/// no host config). `None` when `config` is not a JSON object with an id.
pub fn parse_container(config: &str, hostconfig: &str) -> Option<DockerContainer> {
    let config: ConfigV2 = serde_json::from_str(config).ok()?;
    let host: HostConfig = serde_json::from_str(hostconfig).unwrap_or_default();
    if config.id.is_empty() {
        return None;
    }
    let label = |key: &str| config.config.labels.get(key).cloned();
    let networks = config
        .network_settings
        .networks
        .into_iter()
        .map(|(name, ep)| DockerNetwork {
            name,
            ip: ep.ip_address.parse().ok(),
            ipv6: ep.global_ipv6_address.parse().ok(),
            gateway: ep.gateway.parse().ok(),
            aliases: ep.aliases,
            mac: non_empty(ep.mac_address),
        })
        .collect();
    Some(DockerContainer {
        name: config.name.trim_start_matches('/').to_owned(),
        running: config.state.running,
        pid: u32::try_from(config.state.pid).ok().filter(|p| *p > 0),
        exit_code: config.state.exit_code,
        restart_count: config.restart_count,
        image: if config.config.image.is_empty() {
            config.image
        } else {
            config.config.image
        },
        compose_project: label("com.docker.compose.project"),
        compose_service: label("com.docker.compose.service"),
        network_mode: non_empty(host.network_mode),
        networks,
        port_bindings: bindings(host.port_bindings),
        ports: bindings(config.network_settings.ports),
        log_path: non_empty(config.log_path).map(PathBuf::from),
        id: config.id,
    })
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A port map (`{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`) as a list, sorted by
/// container port; ports without bindings (`null`: exposed, not published) are left out.
fn bindings(map: BTreeMap<String, Option<Vec<Binding>>>) -> Vec<PortBinding> {
    let mut out: Vec<PortBinding> = map
        .into_iter()
        .filter_map(|(key, list)| {
            let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
            let port: u16 = port.parse().ok()?;
            let proto = proto.to_owned();
            Some(
                list.unwrap_or_default()
                    .into_iter()
                    .map(move |b| PortBinding {
                        container_port: port,
                        proto: proto.clone(),
                        host_ip: b.host_ip.parse().ok(),
                        host_port: b.host_port.parse().ok(),
                    }),
            )
        })
        .flatten()
        .collect();
    out.sort_by(|a, b| {
        (a.container_port, &a.proto, a.host_ip, a.host_port).cmp(&(
            b.container_port,
            &b.proto,
            b.host_ip,
            b.host_port,
        ))
    });
    out
}

/// A field that may be `null`: its default then.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The part of `config.v2.json` read here.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ConfigV2 {
    #[serde(rename = "ID", deserialize_with = "nullable")]
    id: String,
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    state: State,
    #[serde(deserialize_with = "nullable")]
    restart_count: u32,
    #[serde(deserialize_with = "nullable")]
    config: Config,
    /// The image id (`sha256:...`).
    #[serde(deserialize_with = "nullable")]
    image: String,
    #[serde(deserialize_with = "nullable")]
    network_settings: NetworkSettings,
    #[serde(deserialize_with = "nullable")]
    log_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct State {
    #[serde(deserialize_with = "nullable")]
    running: bool,
    #[serde(deserialize_with = "nullable")]
    pid: i64,
    #[serde(deserialize_with = "nullable")]
    exit_code: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Config {
    #[serde(deserialize_with = "nullable")]
    image: String,
    #[serde(deserialize_with = "nullable")]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct NetworkSettings {
    #[serde(deserialize_with = "nullable")]
    networks: BTreeMap<String, Endpoint>,
    #[serde(deserialize_with = "nullable")]
    ports: BTreeMap<String, Option<Vec<Binding>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Endpoint {
    #[serde(rename = "IPAddress", deserialize_with = "nullable")]
    ip_address: String,
    #[serde(rename = "GlobalIPv6Address", deserialize_with = "nullable")]
    global_ipv6_address: String,
    #[serde(deserialize_with = "nullable")]
    gateway: String,
    #[serde(deserialize_with = "nullable")]
    aliases: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    mac_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Binding {
    #[serde(deserialize_with = "nullable")]
    host_ip: String,
    #[serde(deserialize_with = "nullable")]
    host_port: String,
}

/// The part of `hostconfig.json` read here.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct HostConfig {
    #[serde(deserialize_with = "nullable")]
    network_mode: String,
    #[serde(deserialize_with = "nullable")]
    port_bindings: BTreeMap<String, Option<Vec<Binding>>>,
}

/// A host port that a `docker-proxy` process forwards into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    /// `tcp`, `udp` or `sctp` (`-proto`).
    pub proto: String,
    /// The host address and port it listens on (`-host-ip`, `-host-port`); `0.0.0.0` or
    /// `::` for every address.
    pub host: SocketAddr,
    /// Where it forwards to (`-container-ip`, `-container-port`).
    pub container: SocketAddr,
    /// The `docker-proxy` process; `None` when parsed from given arguments.
    pub pid: Option<u32>,
    /// Whether dockerd opened the listening socket and passed it (`-use-listen-fd`, Docker
    /// 28 and later); the socket is then still held by the `docker-proxy` process.
    pub listen_fd: bool,
    /// The id of the container that has the container address, when known.
    pub container_id: Option<String>,
    /// That container's name.
    pub container_name: Option<String>,
}

/// The ports published by the running `docker-proxy` processes (needs root to read their
/// command lines only when `/proc` is mounted with `hidepid`), each with the container
/// that has the forwarded-to address (from [`containers`], when readable). Sorted by host
/// address.
pub fn published_ports() -> Vec<PublishedPort> {
    let mut found: Vec<PublishedPort> = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.take(MAX_PROCESSES).flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is_proxy = fs::read_to_string(entry.path().join("comm"))
            .is_ok_and(|comm| comm.trim_end() == "docker-proxy");
        if !is_proxy {
            continue;
        }
        let mut raw = Vec::new();
        let read = fs::File::open(entry.path().join("cmdline"))
            .and_then(|f| f.take(MAX_CMDLINE).read_to_end(&mut raw));
        if read.is_err() {
            continue;
        }
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if let Some(port) = parse_docker_proxy_args(&args) {
            found.push(PublishedPort {
                pid: Some(pid),
                ..port
            });
        }
    }
    if !found.is_empty() {
        let all = containers();
        for port in &mut found {
            if let Some(c) = container_with_ip(&all, port.container.ip()) {
                port.container_id = Some(c.id.clone());
                port.container_name = Some(c.name.clone());
            }
        }
    }
    found.sort_by_key(|p| (p.host, p.container, p.pid));
    found
}

/// The port a `docker-proxy` command line publishes: `docker-proxy -proto tcp -host-ip
/// 127.0.0.1 -host-port 8080 -container-ip 172.18.0.2 -container-port 80
/// [-use-listen-fd]` (the first argument is the program). Go's flag syntax is understood:
/// `-flag value`, `--flag value`, `-flag=value`. `None` unless the host port and the
/// container address and port are there; the protocol defaults to `tcp` and the host
/// address to `0.0.0.0`.
pub fn parse_docker_proxy_args<S: AsRef<str>>(args: &[S]) -> Option<PublishedPort> {
    let mut proto = "tcp".to_owned();
    let mut host_ip: IpAddr = Ipv4Addr::UNSPECIFIED.into();
    let (mut host_port, mut container_ip, mut container_port) = (None, None, None);
    let mut listen_fd = false;
    let mut rest = args.iter().skip(1).map(AsRef::as_ref);
    while let Some(arg) = rest.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if name == "use-listen-fd" {
            listen_fd = inline.is_none_or(|v| v == "true" || v == "1");
            continue;
        }
        if !matches!(
            name,
            "proto" | "host-ip" | "host-port" | "container-ip" | "container-port"
        ) {
            continue;
        }
        let Some(value) = inline.or_else(|| rest.next()) else {
            break;
        };
        match name {
            "proto" => value.clone_into(&mut proto),
            "host-ip" => host_ip = value.parse().ok()?,
            "host-port" => host_port = value.parse::<u16>().ok(),
            "container-ip" => container_ip = value.parse::<IpAddr>().ok(),
            _ => container_port = value.parse::<u16>().ok(),
        }
    }
    Some(PublishedPort {
        proto,
        host: SocketAddr::new(host_ip, host_port?),
        container: SocketAddr::new(container_ip?, container_port?),
        pid: None,
        listen_fd,
        container_id: None,
        container_name: None,
    })
}

/// One DNAT rule of `iptables-save -t nat` (or `ip6tables-save`) output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnatRule {
    /// The chain it is appended to (`DOCKER` for Docker's published ports).
    pub chain: String,
    /// The protocol it matches (`-p tcp`), when it names one.
    pub proto: Option<String>,
    /// The destination it matches (`-d 127.0.0.1/32`), when it names one (a negated `! -d`
    /// is left out).
    pub destination: Option<String>,
    /// The destination port it matches (`--dport 8080`).
    pub dport: u16,
    /// Where it sends the connection (`--to-destination 172.18.0.2:80`; without a port
    /// there, the same port).
    pub to: SocketAddr,
}

/// The DNAT rules with a single destination port and a single target address in
/// `iptables-save` output, in the order of the text. Port ranges, address ranges and
/// other rules are left out.
pub fn parse_dnat_rules(text: &str) -> Vec<DnatRule> {
    text.lines()
        .take(MAX_RULES)
        .filter_map(parse_dnat_line)
        .collect()
}

fn parse_dnat_line(line: &str) -> Option<DnatRule> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.first() != Some(&"-A") {
        return None;
    }
    let chain = (*words.get(1)?).to_owned();
    let value = |flag: &str| -> Option<&str> {
        let at = words.iter().position(|w| *w == flag)?;
        if at > 0 && words[at - 1] == "!" {
            return None;
        }
        words.get(at + 1).copied()
    };
    if value("-j") != Some("DNAT") {
        return None;
    }
    let dport: u16 = value("--dport")?.parse().ok()?;
    let to = value("--to-destination")?;
    let to = match to.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let ip = to.trim_start_matches('[').trim_end_matches(']');
            SocketAddr::new(ip.parse().ok()?, dport)
        }
    };
    Some(DnatRule {
        chain,
        proto: value("-p").map(str::to_owned),
        destination: value("-d").map(str::to_owned),
        dport,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/docker");
    /// Running, on the internal network `fix502-fixture-net`, asked for 127.0.0.1:18080.
    const INTERNAL: &str = "6314e058e072d0cad5f7f3e9d426542092d931e1bbdcd242e81f01eeeeca61e7";
    /// Running, on the network `fix502-fixture-pub`, publishing two ports.
    const PUBLISHED: &str = "1d5fbde416f20825c33287077bfb1a82e235ab1aeaf342b35119256e054e3105";
    /// Exited, on the internal network.
    const STOPPED: &str = "a094db677fd200d1412e0e638d6fcbf9443d895dc4e658977795f20f50db0a2c";
    const PROXY_CMDLINES: &str = include_str!("../tests/fixtures/docker-proxy-cmdlines.txt");
    const IPTABLES_NAT: &str = include_str!("../tests/fixtures/iptables-save-nat.txt");

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn sock(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn binding(port: u16, host_ip: Option<&str>, host_port: Option<u16>) -> PortBinding {
        PortBinding {
            container_port: port,
            proto: "tcp".to_owned(),
            host_ip: host_ip.map(ip),
            host_port,
        }
    }

    #[test]
    fn real_container_files() {
        let all = containers_in(Path::new(FIXTURES));
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["fix502-fixture-c", "fix502-fixture-p", "fix502-fixture-s"]
        );
        let internal = &all[0];
        assert_eq!(
            internal,
            &DockerContainer {
                id: INTERNAL.to_owned(),
                name: "fix502-fixture-c".to_owned(),
                running: true,
                pid: Some(4057),
                exit_code: 0,
                restart_count: 0,
                image: "fix502-fixture:tmp".to_owned(),
                compose_project: Some("fix502fixture".to_owned()),
                compose_service: Some("app".to_owned()),
                network_mode: Some("fix502-fixture-net".to_owned()),
                networks: vec![DockerNetwork {
                    name: "fix502-fixture-net".to_owned(),
                    ip: Some(ip("172.18.0.2")),
                    ipv6: None,
                    gateway: Some(ip("172.18.0.1")),
                    aliases: vec!["fixture-app".to_owned(), "6314e058e072".to_owned()],
                    mac: Some("02:42:ac:12:00:02".to_owned()),
                }],
                // Asked for, but an internal network publishes nothing.
                port_bindings: vec![binding(80, Some("127.0.0.1"), Some(18080))],
                ports: vec![],
                log_path: Some(PathBuf::from(format!(
                    "/var/lib/docker/containers/{INTERNAL}/{INTERNAL}-json.log"
                ))),
            }
        );
        let published = &all[1];
        assert_eq!(published.id, PUBLISHED);
        assert_eq!(
            published.ports,
            vec![
                binding(80, Some("127.0.0.1"), Some(18081)),
                binding(443, Some("127.0.0.1"), Some(18082)),
            ]
        );
        assert_eq!(published.ports, published.port_bindings);
        assert_eq!(published.compose_project, None);
        let stopped = &all[2];
        assert_eq!(stopped.id, STOPPED);
        assert!(!stopped.running);
        assert_eq!(stopped.pid, None);
        assert_eq!(stopped.networks.len(), 1);
        assert_eq!(stopped.networks[0].ip, None, "{stopped:?}");
        assert_eq!(stopped.networks[0].aliases, vec!["a094db677fd2".to_owned()]);
    }

    #[test]
    fn by_id_full_or_prefix() {
        let root = Path::new(FIXTURES);
        assert_eq!(
            container_by_id_in(root, PUBLISHED).unwrap().name,
            "fix502-fixture-p"
        );
        assert_eq!(
            container_by_id_in(root, &PUBLISHED[..12].to_ascii_uppercase())
                .unwrap()
                .name,
            "fix502-fixture-p"
        );
        assert_eq!(
            container_by_id_in(root, &PUBLISHED[..11]),
            None,
            "too short"
        );
        assert_eq!(container_by_id_in(root, "../../../../etc/passwd"), None);
        assert_eq!(container_by_id_in(root, &"0".repeat(64)), None);
    }

    #[test]
    fn by_address_running_first() {
        let mut all = containers_in(Path::new(FIXTURES));
        assert_eq!(
            container_with_ip(&all, ip("172.19.0.2")).map(|c| c.id.as_str()),
            Some(PUBLISHED)
        );
        assert_eq!(container_with_ip(&all, ip("172.19.0.3")), None);
        // A stopped container that still lists the address comes after a running one.
        all[2].networks[0].ip = Some(ip("172.18.0.2"));
        all.swap(0, 2);
        assert_eq!(
            container_with_ip(&all, ip("172.18.0.2")).map(|c| c.id.as_str()),
            Some(INTERNAL)
        );
        all[2].running = false;
        assert_eq!(
            container_with_ip(&all, ip("172.18.0.2")).map(|c| c.id.as_str()),
            Some(STOPPED)
        );
    }

    #[test]
    fn unknown_missing_and_null_fields() {
        let config = r#"{"ID":"abc","Name":"/web","State":{"Running":true,"Pid":42,"Future":[1]},
            "Config":{"Labels":null,"Image":null},"Image":"sha256:1","NetworkSettings":{"Networks":null,
            "Ports":{"80/tcp":null,"53/udp":[{"HostIp":"","HostPort":"5353"}],"x/tcp":[{}]}},"New":{}}"#;
        let c = parse_container(config, "").unwrap();
        assert_eq!(c.name, "web");
        assert_eq!(c.pid, Some(42));
        assert_eq!(c.image, "sha256:1");
        assert_eq!(c.network_mode, None);
        assert!(c.networks.is_empty() && c.port_bindings.is_empty());
        assert_eq!(
            c.ports,
            vec![PortBinding {
                container_port: 53,
                proto: "udp".to_owned(),
                host_ip: None,
                host_port: Some(5353),
            }]
        );
        assert_eq!(parse_container("{}", "{}"), None, "no id");
        assert_eq!(parse_container("[]", "{}"), None);
        assert_eq!(parse_container("not json", "{}"), None);
        let host = r#"{"NetworkMode":"host","PortBindings":null}"#;
        let c = parse_container(r#"{"ID":"abc","State":{"Pid":-1}}"#, host).unwrap();
        assert_eq!(c.network_mode.as_deref(), Some("host"));
        assert_eq!(c.pid, None);
    }

    #[test]
    fn oversized_files_are_left_out() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("big");
        fs::create_dir(&dir).unwrap();
        let padding = " ".repeat(usize::try_from(MAX_FILE).unwrap());
        fs::write(
            dir.join("config.v2.json"),
            format!(r#"{{"ID":"big"}}{padding}"#),
        )
        .unwrap();
        assert_eq!(containers_in(root.path()), vec![]);
        fs::write(dir.join("config.v2.json"), r#"{"ID":"big"}"#).unwrap();
        assert_eq!(
            containers_in(root.path()).len(),
            1,
            "no hostconfig.json is fine"
        );
        assert_eq!(containers_in(&root.path().join("absent")), vec![]);
    }

    #[test]
    fn real_docker_proxy_command_lines() {
        let found: Vec<PublishedPort> = PROXY_CMDLINES
            .lines()
            .filter_map(|line| {
                parse_docker_proxy_args(&line.split_whitespace().collect::<Vec<_>>())
            })
            .collect();
        assert_eq!(
            found,
            vec![
                PublishedPort {
                    proto: "tcp".to_owned(),
                    host: sock("127.0.0.1:18082"),
                    container: sock("172.19.0.2:443"),
                    pid: None,
                    listen_fd: false,
                    container_id: None,
                    container_name: None,
                },
                PublishedPort {
                    proto: "tcp".to_owned(),
                    host: sock("127.0.0.1:18081"),
                    container: sock("172.19.0.2:80"),
                    pid: None,
                    listen_fd: false,
                    container_id: None,
                    container_name: None,
                },
            ]
        );
    }

    #[test]
    fn docker_proxy_flag_forms() {
        let parse = |line: &str| parse_docker_proxy_args(&line.split(' ').collect::<Vec<_>>());
        // Docker 28+: the socket comes from dockerd; IPv6 wildcard.
        let p = parse("/usr/bin/docker-proxy -proto tcp -host-ip :: -host-port 3306 -container-ip 172.18.0.2 -container-port 3306 -use-listen-fd").unwrap();
        assert_eq!(
            (p.host, p.container, p.listen_fd),
            (sock("[::]:3306"), sock("172.18.0.2:3306"), true)
        );
        let p = parse(
            "docker-proxy --proto=udp -host-port=53 --container-ip fd00::2 -container-port 53",
        )
        .unwrap();
        assert_eq!(
            (p.proto.as_str(), p.host, p.container),
            ("udp", sock("0.0.0.0:53"), sock("[fd00::2]:53"))
        );
        assert_eq!(
            parse("docker-proxy -host-port 80 -container-ip 172.17.0.2"),
            None
        );
        assert_eq!(
            parse(
                "docker-proxy -host-ip nonsense -host-port 80 -container-ip 172.17.0.2 -container-port 80"
            ),
            None
        );
        assert_eq!(
            parse("docker-proxy -host-port 80 -container-ip 172.17.0.2 -container-port"),
            None
        );
        assert_eq!(parse(""), None);
        let args: [&str; 0] = [];
        assert_eq!(parse_docker_proxy_args(&args), None);
    }

    #[test]
    fn real_dnat_rules() {
        let rules = parse_dnat_rules(IPTABLES_NAT);
        assert_eq!(
            rules,
            vec![
                DnatRule {
                    chain: "DOCKER".to_owned(),
                    proto: Some("tcp".to_owned()),
                    destination: Some("127.0.0.1/32".to_owned()),
                    dport: 18082,
                    to: sock("172.19.0.2:443"),
                },
                DnatRule {
                    chain: "DOCKER".to_owned(),
                    proto: Some("tcp".to_owned()),
                    destination: Some("127.0.0.1/32".to_owned()),
                    dport: 18081,
                    to: sock("172.19.0.2:80"),
                },
            ]
        );
    }

    #[test]
    fn dnat_rule_forms() {
        let text = "\
-A DOCKER ! -d 10.0.0.0/8 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2
-A DOCKER -p tcp -m tcp --dport 8443 -j DNAT --to-destination [fd00::2]:443
-A DOCKER -p tcp -m tcp --dport 9000:9010 -j DNAT --to-destination 172.17.0.3:9000
-A DOCKER -p tcp -m tcp --dport 7000 -j DNAT --to-destination 172.17.0.4-172.17.0.5:7000
-A DOCKER -i docker0 -j RETURN
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
# -A DOCKER -p tcp --dport 1 -j DNAT --to-destination 1.2.3.4:1
";
        let rules = parse_dnat_rules(text);
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(rules[0].destination, None, "negated");
        assert_eq!(rules[0].to, sock("172.17.0.2:8080"), "same port");
        assert_eq!(rules[1].to, sock("[fd00::2]:443"));
    }

    #[test]
    fn a_running_docker_proxy_is_found() {
        use std::os::unix::fs::PermissionsExt;
        use std::process::{Command, Stdio};
        // A stand-in whose comm is `docker-proxy`: a script of that name, waiting on stdin.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-proxy");
        fs::write(&script, "#!/bin/sh\nread line\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = Command::new(&script)
            .args(["-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "1"])
            .args(["-container-ip", "198.51.100.7", "-container-port", "8080"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let found: Vec<PublishedPort> = published_ports()
                .into_iter()
                .filter(|p| p.pid == Some(pid))
                .collect();
            if !found.is_empty() || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].host, sock("127.0.0.1:1"));
        assert_eq!(found[0].container, sock("198.51.100.7:8080"));
        assert_eq!(found[0].container_id, None);
    }
}
