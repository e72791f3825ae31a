//! The harness of the kernel-primitive lab: named network namespaces deleted when dropped,
//! an outer namespace with a bridge (no default route) that the lab's namespaces join by veth,
//! processes stopped by their pid when dropped, nginx started inside namespaces, bounded waits,
//! and fix502 run inside a namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::super::harness::Nginx;

/// The DNS responder (see its header).
const DNS_PY: &str = include_str!("dns.py");
/// The docker-proxy stand-in (see its header).
const DOCKER_PROXY_PY: &str = include_str!("docker-proxy.py");

/// Whether this test can run: the lab needs root (network, mount and pid namespaces); says
/// why in one line when it cannot. A missing tool or nginx fails the test (with what to
/// install), unless the suite is told to skip nginx (`FIX502_SKIP_NGINX=1`).
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipping {test}: the netns lab needs root (ip netns, unshare --net --mount, veth)"
        );
        return false;
    }
    for (tool, args, package) in [
        ("ip", "-V", "iproute2"),
        ("unshare", "--version", "util-linux"),
        ("nsenter", "--version", "util-linux"),
        (python(), "--version", "python3"),
    ] {
        let found = Command::new(tool)
            .arg(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{test}: {tool} is missing (apt-get install {package})"
        );
    }
    if super::super::masters::no_nginx() {
        return false; // FIX502_SKIP_NGINX=1, said by no_nginx
    }
    if !Path::new(super::super::nginx_t::NGINX).exists() {
        panic!(
            "{test}: {} is missing (apt-get install nginx)",
            super::super::nginx_t::NGINX
        );
    }
    true
}

/// Runs `program args`, panicking with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Polls `ready` every 50 ms, at most 100 times; panics with `what` when it never holds.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..100 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gave up waiting (5 s): {what}");
}

/// A named network namespace `fix502-t<pid>-<n>`, loopback up, deleted when dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "fix502-t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args`.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// The prefix that runs a command inside: `ip netns exec NAME` (which execs it, so the
    /// child's pid is the command's).
    pub fn enter(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .map(str::to_owned)
            .to_vec()
    }

    /// Its routes: only the lab's networks, never a default route.
    pub fn assert_no_way_out(&self) {
        let out = self.ip(&["route", "show", "default"]);
        assert!(
            out.stdout.is_empty(),
            "netns {} has a default route: {}",
            self.name,
            String::from_utf8_lossy(&out.stdout)
        );
        let out = self.ip(&["-6", "route", "show", "default"]);
        assert!(
            out.stdout.is_empty(),
            "netns {} has an IPv6 default route",
            self.name
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// The prefix that runs a command in the network namespace of process `pid`.
pub fn enter_pid(pid: i32) -> Vec<String> {
    vec!["nsenter".to_owned(), format!("--net=/proc/{pid}/ns/net")]
}

/// The network namespace inode of process `pid` (`net:[N]`).
pub fn net_inode(pid: i32) -> u64 {
    ns_inode(pid, "net")
}

/// The inode of process `pid`'s namespace of `kind` (`net`, `mnt`, `pid`...).
pub fn ns_inode(pid: i32, kind: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).expect("ns link");
    fix502_probe::namespace::parse_ns_link(&link.to_string_lossy()).expect("kind:[N]")
}

/// A lab network `SUBNET.0/24`: an outer namespace holding a bridge at `SUBNET.254`, with no
/// default route and no link to the test's namespace, that member namespaces join by a veth
/// pair (their end is `eth0`). A packet to a vanished lab address has nowhere to go.
pub struct Lan {
    subnet: &'static str,
    /// The members, dropped before the outer namespace.
    pub members: Vec<Netns>,
    pub outer: Netns,
}

impl Lan {
    pub fn new(subnet: &'static str) -> Self {
        let outer = Netns::new();
        outer.ip(&["link", "add", "br0", "type", "bridge"]);
        outer.ip(&["addr", "add", &format!("{subnet}.254/24"), "dev", "br0"]);
        outer.ip(&["link", "set", "br0", "up"]);
        outer.assert_no_way_out();
        Self {
            subnet,
            members: Vec::new(),
            outer,
        }
    }

    /// A new namespace joined to the bridge at `SUBNET.host`; returns its index in `members`.
    pub fn join(&mut self, host: u8) -> usize {
        let ns = Netns::new();
        let veth = format!("v{host}");
        self.outer.ip(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        self.outer
            .ip(&["link", "set", &veth, "master", "br0", "up"]);
        ns.ip(&["addr", "add", &self.addr(host, true), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.assert_no_way_out();
        self.members.push(ns);
        self.members.len() - 1
    }

    /// `SUBNET.host`, with `/24` when `prefix`.
    pub fn addr(&self, host: u8, prefix: bool) -> String {
        format!("{}.{host}{}", self.subnet, if prefix { "/24" } else { "" })
    }
}

/// A process started by the test, killed by its pid and reaped when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `prefix + program args` with no stdin/stdout and its stderr discarded.
    pub fn start(prefix: &[String], program: &str, args: &[&str]) -> Self {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Self { child }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// Waits (bounded) until it listens on TCP `port` (UDP when `udp`) in its namespace.
    pub fn wait_listening(&mut self, port: u16, udp: bool) -> &mut Self {
        let pid = self.pid();
        wait_until(&format!("pid {pid} listening on port {port}"), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pid {pid} exited before listening on {port}: {status}");
            }
            listens(pid, port, udp)
        });
        self
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the network namespace of `pid` has a TCP listener (a bound UDP socket when `udp`)
/// on `port`, from `/proc/PID/net/{tcp,tcp6,udp,udp6}`.
pub fn listens(pid: i32, port: u16, udp: bool) -> bool {
    let (proto, state) = if udp { ("udp", "07") } else { ("tcp", "0A") };
    let want = format!(":{port:04X}");
    [proto.to_owned(), format!("{proto}6")].iter().any(|file| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(1).is_some_and(|local| local.ends_with(&want))
                    && fields.get(3) == Some(&state)
            })
        })
    })
}

/// The python3 the helper scripts run with: Debian's, so that a script's shebang execs the
/// interpreter directly (a shim in between would change the process's name).
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A temporary directory with the lab's files (hosts, resolv.conf, scripts, tables).
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes `name` (in place: a file bind-mounted somewhere sees the new text) and returns
    /// its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a lab file");
        path
    }

    /// The DNS responder script.
    pub fn dns_script(&self) -> PathBuf {
        self.write("dns.py", DNS_PY)
    }

    /// The docker-proxy stand-in, as an executable named `docker-proxy`.
    pub fn docker_proxy(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let interpreter = match python() {
            "python3" => "/usr/bin/env python3",
            path => path,
        };
        let path = self.write(
            "docker-proxy",
            &format!("#!{interpreter}\n{DOCKER_PROXY_PY}"),
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

/// The wrapper that runs nginx in `ns` (a prefix from [`Netns::enter`] or [`enter_pid`], or
/// `unshare --net`), in a mount namespace of its own where each `(file, target)` of `binds`
/// is bind-mounted over `target` (the host's files are never changed: the mounts are private
/// to the new namespace). Loopback is brought up.
pub fn wrapper(ns: &[String], binds: &[(&Path, &str)]) -> Vec<String> {
    let mut script = String::from("ip link set lo up");
    for (file, target) in binds {
        script.push_str(&format!(" && mount --bind '{}' '{target}'", file.display()));
    }
    script.push_str(" && exec \"$@\"");
    let mut out = ns.to_vec();
    out.extend(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ]
        .map(str::to_owned),
    );
    out
}

/// A real nginx started under a wrapper (see [`wrapper`]) with `error_log logs/error.log` and
/// `http` as its `http` block; stopped by its pid when dropped, and waited for (bounded) so
/// that its namespaces are gone with it.
pub struct LabNginx {
    nginx: Option<Nginx>,
    pub pid: i32,
}

impl LabNginx {
    pub fn start(wrapper: &[String], http: &str) -> Self {
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let nginx = Nginx::start_under(&wrapper, "error_log logs/error.log;", http, Stdio::null());
        let pid = nginx.pid;
        Self {
            nginx: Some(nginx),
            pid,
        }
    }

    /// An `http` block with one server on `listen` whose location `/` holds `location`.
    pub fn server(listen: &str, location: &str) -> String {
        format!(
            "    server {{\n        listen {listen};\n        location / {{\n            {location}\n        }}\n    }}"
        )
    }

    pub fn config(&self) -> PathBuf {
        self.nginx.as_ref().expect("nginx").config()
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        let dir = self.nginx.as_ref().expect("nginx").dir.path();
        std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for LabNginx {
    fn drop(&mut self) {
        drop(self.nginx.take()); // SIGTERM to the master
        for _ in 0..100 {
            let gone = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .map(|stat| {
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('Z'))
                })
                .unwrap_or(true);
            if gone {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A real nginx as a container runs it: in new network, mount and pid namespaces (`unshare
/// --pid --fork --kill-child --mount-proc --net`), in the foreground (`daemon off;`, as the
/// official image), so that it is pid 1 of its namespace and its pid file says `1`. `pid` is
/// the master's pid as this host sees it. Stopped by a signal to that pid, then its `unshare`
/// parent is reaped (killed, with the namespace, if it does not end in time).
pub struct SandboxNginx {
    unshare: Child,
    pub pid: i32,
    pub dir: tempfile::TempDir,
}

impl SandboxNginx {
    /// Starts it with `http` as its `http` block; waits (bounded) until it listens on `port`.
    pub fn start(http: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir logs");
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "daemon off;\nerror_log logs/error.log;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{http}\n}}\n"
            ),
        )
        .expect("write nginx.conf");
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "--mount-proc", "--net"])
            .args(["sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
            .arg(super::super::nginx_t::NGINX)
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unshare");
        let mut nginx = Self {
            pid: 0,
            unshare,
            dir,
        };
        let parent = i32::try_from(nginx.unshare.id()).expect("pid");
        wait_until("nginx, pid 1 of its pid namespace, listening", || {
            if let Ok(Some(status)) = nginx.unshare.try_wait() {
                panic!("the sandboxed nginx ended: {status}");
            }
            match child_of(parent) {
                Some(pid)
                    if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == "nginx")
                        && listens(pid, port, false) =>
                {
                    nginx.pid = pid;
                    true
                }
                _ => false,
            }
        });
        nginx
    }

    /// Its pid file's text.
    pub fn pid_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nginx.pid")).unwrap_or_default()
    }

    /// Its error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }
}

impl Drop for SandboxNginx {
    fn drop(&mut self) {
        if self.pid > 1 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for _ in 0..100 {
            if !matches!(self.unshare.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // `--kill-child`: the namespace's pid 1 goes with it, and everything in it.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The first child of process `pid` (`/proc/PID/task/PID/children`).
fn child_of(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Sends one GET and prints the status (a number, or `error ...`): python3 with no proxy
/// (an `http_proxy` in the environment must not send the request anywhere else), 10 s at most.
const GET_STATUS_PY: &str = "import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    print(opener.open(sys.argv[1], timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print('error', e)
";

/// The HTTP status of a GET of `url` made from inside `ns` (a prefix from [`Netns::enter`]
/// or [`enter_pid`], or none for the test's namespace), e.g. `502`.
pub fn status_from(ns: &[String], url: &str) -> String {
    let mut all: Vec<&str> = ns.iter().map(String::as_str).collect();
    all.extend([python(), "-c", GET_STATUS_PY, url]);
    let out = Command::new(all[0])
        .args(&all[1..])
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A run of fix502: its output and its JSON report.
pub struct Run {
    pub out: Output,
    pub report: Value,
}

impl Run {
    /// fix502's full JSON and stderr, for an assertion's message.
    pub fn ctx(&self) -> String {
        format!(
            "exit {:?}\nfix502 JSON:\n{:#}\nfix502 stdout (when not JSON):\n{}\nfix502 stderr:\n{}",
            self.out.status.code(),
            self.report,
            if self.report.is_null() {
                String::from_utf8_lossy(&self.out.stdout)
            } else {
                "".into()
            },
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    /// The causes of the diagnosis, in order.
    pub fn causes(&self) -> Vec<String> {
        super::super::harness::causes(&self.report)
    }

    /// The top diagnosis's summary, evidence and fix lines.
    pub fn top_text(&self) -> String {
        super::super::harness::top_text(&self.report)
    }
}

/// `fix502 --non-interactive --json args`, run inside `ns` (a prefix, or none for the
/// test's own namespace).
pub fn fix502(ns: &[String], args: &[&str]) -> Run {
    let bin = env!("CARGO_BIN_EXE_fix502");
    let mut cmd = match ns.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    let out = cmd
        .args(["--non-interactive", "--json"])
        .args(args)
        .env("NO_COLOR", "1")
        .env("FIX502_NO_PROMPT", "1")
        .env_remove("FIX502_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run fix502");
    // Not `harness::parse_report`: a run that prints no report fails the test's own
    // assertions, with its stderr, instead of a parse error.
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Run { out, report }
}

/// The verdict checks on one run of fix502: every check is made, each failed one is kept,
/// and [`Verdict::assert`] reports them all at once with fix502's JSON and stderr (so that a
/// failure shows everything the run still lacks, not only the first thing).
#[must_use = "a verdict is checked by `assert` or `result`"]
pub struct Verdict<'a> {
    run: &'a Run,
    checks: usize,
    failed: Vec<String>,
}

impl<'a> Verdict<'a> {
    pub fn new(run: &'a Run) -> Self {
        Self {
            run,
            checks: 0,
            failed: Vec::new(),
        }
    }

    /// Records a check: `ok`, or `what` it should have said.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        self.checks += 1;
        if !ok {
            self.failed.push(what.into());
        }
    }

    /// The failed checks with the run's output, or `Ok` when none failed.
    pub fn result(self) -> Result<(), String> {
        if self.failed.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} of {} verdict checks failed:\n- {}\n{}",
            self.failed.len(),
            self.checks,
            self.failed.join("\n- "),
            self.run.ctx()
        ))
    }

    /// Panics with [`Verdict::result`]'s message when a check failed.
    pub fn assert(self) {
        if let Err(message) = self.result() {
            panic!("{message}");
        }
    }
}
