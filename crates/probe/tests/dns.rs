//! nginx-style resolver queries against the lab DNS responder, and getaddrinfo as another
//! process (in its own mount namespace) would see it. Only `localhost` and names answered
//! by the lab responder or by test hosts files are ever resolved.

#![allow(clippy::print_stderr, reason = "tests explain skips on stderr")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fix502_lab::dns::{DnsBehavior, DnsResponder};
use fix502_probe::dns::{
    DnsFailure, ResolverQuery, hosts_lookup, query_resolver, resolve_as, resolve_system,
};

const TIMEOUT: Duration = Duration::from_secs(3);
const APP: &str = "app.lab.fix502.test";
const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));

fn responder() -> DnsResponder {
    DnsResponder::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("lab DNS responder")
}

async fn ask(dns: &DnsResponder, name: &str, ipv4: bool, ipv6: bool) -> ResolverQuery {
    query_resolver(name, &[dns.addr()], ipv4, ipv6, TIMEOUT).await
}

#[tokio::test]
async fn a_and_aaaa_answers_like_nginx() {
    let dns = responder();
    dns.set(APP, &[V4, V6]);

    let got = ask(&dns, APP, true, true).await;
    assert_eq!(got.server, Some(dns.addr()));
    assert_eq!(got.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(got.result.unwrap().addrs, vec![V4, V6]);
    assert_eq!(dns.queries(), 2, "one A and one AAAA query");
    assert!(got.elapsed < TIMEOUT);

    // ipv6=off: only the A query.
    let got = ask(&dns, APP, true, false).await;
    assert_eq!(got.result.unwrap().addrs, vec![V4]);
    assert_eq!(dns.queries(), 3);

    // ipv4=off: only the AAAA query.
    let got = ask(&dns, APP, false, true).await;
    assert_eq!(got.result.unwrap().addrs, vec![V6]);
    assert_eq!(dns.queries(), 4);

    // Both off is refused without asking, as nginx refuses that configuration.
    let got = ask(&dns, APP, false, false).await;
    assert!(matches!(got.result, Err(DnsFailure::Other(_))), "{got:?}");
    assert_eq!(dns.queries(), 4);
}

#[tokio::test]
async fn known_name_without_aaaa_is_fine_and_without_any_record_is_not() {
    let dns = responder();
    dns.set("v4only.lab.fix502.test", &[V4]);
    let got = ask(&dns, "v4only.lab.fix502.test", true, true).await;
    assert_eq!(got.result.unwrap().addrs, vec![V4]);
    assert_eq!(got.rcode.as_deref(), Some("NOERROR"));

    // Only AAAA asked: NOERROR but nothing (nginx: "3: Host not found").
    let got = ask(&dns, "v4only.lab.fix502.test", false, true).await;
    assert_eq!(got.result, Err(DnsFailure::NoRecords));
    assert_eq!(got.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(got.server, Some(dns.addr()));

    dns.set("empty.lab.fix502.test", &[]);
    let got = ask(&dns, "empty.lab.fix502.test", true, true).await;
    assert_eq!(got.result, Err(DnsFailure::NoRecords));
}

#[tokio::test]
async fn nxdomain_and_no_hosts_file() {
    let dns = responder();
    let got = ask(&dns, "missing.lab.fix502.test", true, true).await;
    assert_eq!(got.result, Err(DnsFailure::NxDomain));
    assert_eq!(got.rcode.as_deref(), Some("NXDOMAIN"));
    assert_eq!(got.server, Some(dns.addr()));

    // `localhost` is in /etc/hosts, which nginx's resolver never reads: the server is asked
    // and does not know it.
    let got = ask(&dns, "localhost", true, true).await;
    assert_eq!(got.result, Err(DnsFailure::NxDomain));
    assert!(dns.queries() >= 2);

    // The name is absolute: a trailing dot changes nothing, no search domain is added.
    dns.set(APP, &[V4]);
    let got = ask(&dns, &format!("{APP}."), true, false).await;
    assert_eq!(got.result.unwrap().addrs, vec![V4]);
}

#[tokio::test]
async fn servfail_and_refused() {
    let dns = responder();
    dns.set(APP, &[V4]);
    dns.set_behavior(DnsBehavior::ServFail);
    let got = ask(&dns, APP, true, true).await;
    assert_eq!(got.result, Err(DnsFailure::ServFail));
    assert_eq!(got.rcode.as_deref(), Some("SERVFAIL"));
    assert_eq!(got.server, Some(dns.addr()));

    dns.set_behavior(DnsBehavior::Refused);
    let got = ask(&dns, APP, true, false).await;
    assert_eq!(got.result, Err(DnsFailure::Refused));
    assert_eq!(got.rcode.as_deref(), Some("REFUSED"));
}

#[tokio::test]
async fn silent_server_times_out_in_time() {
    let dns = responder();
    dns.set(APP, &[V4]);
    dns.set_behavior(DnsBehavior::Silent);
    let timeout = Duration::from_millis(600);
    let start = Instant::now();
    let got = query_resolver(APP, &[dns.addr()], true, true, timeout).await;
    let took = start.elapsed();
    assert_eq!(got.result, Err(DnsFailure::Timeout));
    assert_eq!(got.server, None);
    assert_eq!(got.rcode, None);
    assert!(dns.queries() >= 1);
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn next_server_is_asked_when_the_first_cannot_be() {
    // Nothing listens on the first server's port.
    let closed = {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let dns = responder();
    dns.set(APP, &[V4]);
    let got = query_resolver(APP, &[closed, dns.addr()], true, false, TIMEOUT).await;
    assert_eq!(got.server, Some(dns.addr()), "{got:?}");
    assert_eq!(got.result.unwrap().addrs, vec![V4]);

    // Alone, it fails at once with the socket error (nginx would wait for its timeout).
    let start = Instant::now();
    let got = query_resolver(APP, &[closed], true, false, TIMEOUT).await;
    assert_eq!(got.result, Err(DnsFailure::Timeout));
    assert_eq!(got.server, None);
    assert!(got.transport_error.is_some(), "{got:?}");
    assert!(start.elapsed() < TIMEOUT);
}

#[tokio::test]
async fn truncated_answers_are_asked_again_over_tcp() {
    let dns = responder();
    let many: Vec<IpAddr> = (1..=60)
        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 1, n)))
        .collect();
    dns.set("many.lab.fix502.test", &many);
    let got = ask(&dns, "many.lab.fix502.test", true, true).await;
    assert_eq!(got.result.unwrap().addrs, many);
    // A over UDP (truncated) and TCP, AAAA over UDP.
    assert_eq!(dns.queries(), 3);
}

#[tokio::test]
async fn ip_literals_and_no_servers() {
    let got = query_resolver("127.0.0.5", &[], true, true, TIMEOUT).await;
    assert_eq!(
        got.result.unwrap().addrs,
        vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))]
    );
    assert_eq!(got.server, None);
    let got = query_resolver(APP, &[], true, true, TIMEOUT).await;
    assert!(matches!(got.result, Err(DnsFailure::Other(_))), "{got:?}");
}

#[tokio::test]
async fn resolve_as_ourselves_is_getaddrinfo() {
    let ours = resolve_as(Some(std::process::id()), "localhost", 80, TIMEOUT)
        .await
        .unwrap();
    let system = resolve_system("localhost", 80, TIMEOUT).await.unwrap();
    assert_eq!(ours.addrs, system.addrs);
    let none = resolve_as(None, "localhost", 80, TIMEOUT).await.unwrap();
    assert_eq!(none.addrs, system.addrs);
}

/// A child in its own mount namespace with `files` bind-mounted over `/etc/...`; killed
/// and reaped on drop.
struct Namespaced(Child);

impl Namespaced {
    fn spawn(mounts: &[(&std::path::Path, &str)]) -> Self {
        let mut script = String::new();
        for (file, target) in mounts {
            script.push_str(&format!("mount --bind '{}' {target} && ", file.display()));
        }
        script.push_str("exec sleep 20");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let namespaced = Self(child);
        let pid = namespaced.pid();
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Until the mounts are done: the script ends in `exec sleep`.
        loop {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if theirs.is_some_and(|t| t != ours) && comm.trim() == "sleep" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the namespaced child never got ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        namespaced
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Namespaced {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[tokio::test]
async fn resolve_as_reads_the_hosts_file_of_another_mount_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root to create a mount namespace");
        return;
    }
    let name = "stale.lab.fix502.test";
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n127.0.0.9 {name} stale\n::9 {name}\n"),
    )
    .unwrap();
    let child = Namespaced::spawn(&[(&hosts, "/etc/hosts")]);

    let got = resolve_as(Some(child.pid()), name, 8080, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        got.addrs,
        vec![
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
            "::9".parse::<IpAddr>().unwrap()
        ]
    );
    // Our own /etc/hosts does not have it (checked without asking any DNS server).
    let ours = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(hosts_lookup(&ours, name).is_empty());
}

#[tokio::test]
async fn resolve_as_asks_the_nameservers_of_another_mount_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root to create a mount namespace and bind port 53");
        return;
    }
    // A "nameserver" on port 53 of a loopback address that only records what it gets.
    let server = UdpSocket::bind("127.0.0.77:53").expect("bind 127.0.0.77:53");
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.77\noptions timeout:1\n").unwrap();
    let child = Namespaced::spawn(&[(&hosts, "/etc/hosts"), (&resolv, "/etc/resolv.conf")]);

    let start = Instant::now();
    let got = resolve_as(
        Some(child.pid()),
        "dnsonly.lab.fix502.test",
        80,
        Duration::from_secs(10),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(got, Err(DnsFailure::Timeout));
    // `options timeout:1` with one server bounds the wait, not the 10 s given.
    assert!(took < Duration::from_secs(3), "{took:?}");

    let mut buf = [0u8; 512];
    let (len, _) = server
        .recv_from(&mut buf)
        .expect("a query at 127.0.0.77:53");
    let query = hickory_proto::op::Message::from_vec(&buf[..len]).unwrap();
    let asked = query.queries.first().unwrap().name().to_string();
    assert_eq!(asked, "dnsonly.lab.fix502.test.");

    // In its hosts file: no DNS at all.
    let got = resolve_as(Some(child.pid()), "localhost", 80, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(got.addrs, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
}

/// A server that answers every datagram with bytes that are not a DNS message is said to
/// answer garbage, not to be silent.
#[tokio::test]
async fn garbage_answers_are_not_a_timeout() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let replier = std::thread::spawn(move || {
        let mut buf = [0_u8; 512];
        let until = Instant::now() + Duration::from_secs(1);
        let mut answered = 0;
        // Bounded: one second or ten datagrams, whichever comes first.
        while Instant::now() < until && answered < 10 {
            if let Ok((_, from)) = server.recv_from(&mut buf) {
                server.send_to(b"\xff\x00garbage", from).unwrap();
                answered += 1;
            }
        }
    });
    let got = query_resolver(APP, &[addr], true, false, Duration::from_millis(800)).await;
    assert!(
        matches!(got.result, Err(DnsFailure::Malformed(n)) if n >= 1),
        "{got:?}"
    );
    assert_eq!(got.server, Some(addr));
    assert_eq!(
        got.result.unwrap_err().to_string(),
        "the server's answers are not valid DNS messages (1 received)"
    );
    replier.join().unwrap();
}
