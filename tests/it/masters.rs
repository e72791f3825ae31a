//! Several nginx masters on one host (issue 13, item 1): `--url`'s port picks the master whose
//! listeners (in its own network namespace) serve it, `--pid` picks one by its pid, a pid that
//! is no master is one line and "could not check", and a master in a network namespace of
//! its own is reported with its namespaces.
//!
//! Every nginx here is real, listens on loopback only, and is stopped by its pid when the
//! test ends ([`Nginx`]'s drop). The namespace lab needs root; its network namespaces are
//! made with `unshare` and end with the last process in them (the nginx stopped by pid), so
//! nothing named is left behind. Not a `crates/lab` scenario: a lab scenario is one nginx
//! that `lab run` diagnoses through `--config`, which is exactly what these tests leave out.

use std::process::{Output, Stdio};

use serde_json::Value;

use super::harness::{Nginx, bin, parse_report};

/// A loopback port free now.
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Whether the tests that need the nginx binary should be skipped.
pub(super) fn no_nginx() -> bool {
    let missing = !std::path::Path::new(super::nginx_t::NGINX).exists();
    if missing && std::env::var("FIX502_SKIP_NGINX").as_deref() == Ok("1") {
        eprintln!("skipping: nginx not installed (FIX502_SKIP_NGINX=1)");
        return true;
    }
    false
}

/// The `http` block of an nginx answering on 127.0.0.1:`port` by itself.
fn serving(port: u16) -> String {
    format!(
        "    server {{\n        listen 127.0.0.1:{port};\n        location / {{ return 200 \"ok\\n\"; }}\n    }}"
    )
}

/// A real nginx listening on 127.0.0.1:`port`, started under `wrapper` (see
/// [`Nginx::start_under`]).
fn nginx_on(port: u16, wrapper: &[&str]) -> Nginx {
    Nginx::start_under(wrapper, "", &serving(port), Stdio::null())
}

/// `fix502 --json --step config` with `args`: the config step alone is what discovery
/// needs, and it sends no traffic off loopback.
fn run(args: &[&str]) -> (Output, Value) {
    let out = bin()
        .args([
            "--non-interactive",
            "--json",
            "--step",
            "config",
            "--timeout",
            "500ms",
        ])
        .args(args)
        .output()
        .expect("run fix502");
    let report = parse_report(&out);
    (out, report)
}

/// The report chose `nginx`: its pid, its config, and it is the `selected` entry of
/// `nginx.masters`.
fn assert_chose(report: &Value, nginx: &Nginx) {
    let n = &report["nginx"];
    assert_eq!(n["master_pid"], nginx.pid, "{n:#}");
    assert_eq!(n["config"].as_str(), nginx.config().to_str(), "{n:#}");
    let masters = n["masters"].as_array().expect("nginx.masters");
    let selected: Vec<&Value> = masters.iter().filter(|m| m["selected"] == true).collect();
    assert_eq!(selected.len(), 1, "{n:#}");
    assert_eq!(selected[0]["pid"], nginx.pid, "{n:#}");
    assert!(selected[0]["namespaces"]["net"].is_u64(), "{n:#}");
}

/// The pid of one of `master`'s workers.
fn a_worker_of(master: i32) -> i32 {
    let start = std::time::Instant::now();
    // Bounded: nginx forks its workers within moments of writing its pid file.
    loop {
        let worker = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<i32>().ok())
                        == Some(master)
                })
            });
        if let Some(worker) = worker {
            return worker;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "no worker of {master}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_port_of_the_url_picks_the_master_that_serves_it() {
    if no_nginx() {
        return;
    }
    let (port_a, port_b) = (free_port(), free_port());
    let a = nginx_on(port_a, &[]);
    let b = nginx_on(port_b, &[]);
    for (port, nginx) in [(port_a, &a), (port_b, &b)] {
        let url = format!("http://127.0.0.1:{port}/");
        let (out, report) = run(&["--url", &url]);
        assert_chose(&report, nginx);
        assert_eq!(
            report["nginx"]["discovered_via"]["config"],
            format!(
                "master pid {}, the one listening on --url's port {port}",
                nginx.pid
            ),
            "{:#}",
            report["nginx"]
        );
        assert_ne!(out.status.code(), Some(3), "{report:#}");
    }
    // The human header lists the masters and marks the one diagnosed.
    let out = bin()
        .args(["--non-interactive", "--step", "config", "--url"])
        .arg(format!("http://127.0.0.1:{port_b}/"))
        .output()
        .expect("run fix502");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nginx masters run:"), "{text}");
    assert!(text.contains(&format!("→ pid {}  net:[", b.pid)), "{text}");
}

#[test]
fn pid_picks_the_master_and_a_pid_that_is_none_is_one_line() {
    if no_nginx() {
        return;
    }
    let a = nginx_on(free_port(), &[]);
    let b = nginx_on(free_port(), &[]);
    for nginx in [&a, &b] {
        let (out, report) = run(&["--pid", &nginx.pid.to_string()]);
        assert_chose(&report, nginx);
        assert_eq!(
            report["nginx"]["discovered_via"]["config"],
            format!("master pid {} (chosen)", nginx.pid)
        );
        assert_ne!(out.status.code(), Some(3), "{report:#}");
    }

    // Not a master: "could not check", one line on stderr, nothing on stdout.
    let worker = a_worker_of(a.pid);
    let own = std::process::id().to_string();
    for (pid, says) in [
        (
            worker.to_string(),
            format!(
                "is a worker of the nginx master pid {}; pass --pid {}",
                a.pid, a.pid
            ),
        ),
        (own.clone(), "is not an nginx master process".to_owned()),
    ] {
        let out = bin().args(["--json", "--pid", &pid]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        super::harness::assert_not_started(&out);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("--pid {pid}: {says}")), "{stderr}");
    }

    // Malformed: a usage error.
    for bad in ["abc", "0", "-5", "99999999999"] {
        let out = bin()
            .args(["--json", &format!("--pid={bad}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(lines[0].contains("is not a process id"), "{stderr}");
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.starts_with("Usage: fix502") || l.starts_with("For more information")),
            "{stderr}"
        );
    }
}

/// Runs `nginx` (appended by [`Nginx::start_under`]) in new namespaces, loopback up.
const IN_NEW_NET: &[&str] = &[
    "unshare",
    "--net",
    "sh",
    "-c",
    "ip link set lo up && exec \"$@\"",
    "sh",
];
const IN_NEW_NET_AND_MOUNT: &[&str] = &[
    "unshare",
    "--net",
    "--mount",
    "sh",
    "-c",
    "ip link set lo up && exec \"$@\"",
    "sh",
];

/// The namespace lab: one master on the host and two in network namespaces of their own,
/// one of them with its own mount namespace too. A URL's port picks the master in fix502's
/// namespace when a namespaced master listens on the same port number, and the namespaced
/// master when only it listens there; the report says where each runs.
#[test]
fn masters_in_network_namespaces_of_their_own() {
    if no_nginx() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping the namespace lab: unshare --net needs root");
        return;
    }
    let (shared, own) = (free_port(), free_port());
    let host = nginx_on(shared, &[]);
    // The same port number in another network namespace is another socket.
    let netns = nginx_on(shared, IN_NEW_NET);
    let sandbox = nginx_on(own, IN_NEW_NET_AND_MOUNT);

    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/net", netns.pid)).unwrap(),
        host_net,
        "unshare --net did not give nginx a namespace of its own"
    );

    // Port `shared` is served in both namespaces: the host's master is the one a
    // connection to this host's port reaches.
    let (_, report) = run(&["--url", &format!("http://127.0.0.1:{shared}/")]);
    assert_chose(&report, &host);
    assert!(
        report["nginx"]["namespaces"].is_null(),
        "{:#}",
        report["nginx"]
    );

    // Port `own` is served only inside the sandbox.
    let (out, report) = run(&["--url", &format!("http://127.0.0.1:{own}/")]);
    assert_chose(&report, &sandbox);
    let ns = &report["nginx"]["namespaces"];
    assert_eq!(ns["sandboxed"], true, "{ns:#}");
    for kind in ["net", "mnt"] {
        assert_ne!(
            ns[kind].as_u64(),
            own_namespace(kind),
            "{kind} of the sandbox: {ns:#}"
        );
    }
    assert_eq!(ns["pid"].as_u64(), own_namespace("pid"), "{ns:#}");
    assert_ne!(out.status.code(), Some(3), "{report:#}");

    // Only its own network namespace: another namespace, but no sandbox.
    let (_, report) = run(&["--pid", &netns.pid.to_string()]);
    let ns = &report["nginx"]["namespaces"];
    assert_ne!(ns["net"].as_u64(), own_namespace("net"), "{ns:#}");
    assert_eq!(ns["mnt"].as_u64(), own_namespace("mnt"), "{ns:#}");
    assert_eq!(ns["sandboxed"], false, "{ns:#}");
    let masters = report["nginx"]["masters"].as_array().unwrap();
    let entry = |pid: i32| {
        masters
            .iter()
            .find(|m| m["pid"] == pid)
            .unwrap_or_else(|| panic!("no master {pid} in {masters:#?}"))
    };
    assert_eq!(entry(sandbox.pid)["namespaces"]["sandboxed"], true);
    assert_eq!(entry(host.pid)["namespaces"]["sandboxed"], false);
    assert_eq!(
        entry(host.pid)["namespaces"]["net"].as_u64(),
        own_namespace("net")
    );

    // The human header says it.
    let out = bin()
        .args(["--non-interactive", "--step", "config", "--pid"])
        .arg(sandbox.pid.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("runs in other namespaces than fix502: net:[")
            && text.contains("(a sandbox: its own network and mount namespaces)"),
        "{text}"
    );
}

/// This process's namespace id of `kind`.
fn own_namespace(kind: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/ns/{kind}")).ok()?;
    fix502_probe::namespace::parse_ns_link(&link.to_string_lossy())
}
