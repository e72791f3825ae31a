//! The Docker lab (issue 13, item 6(b)): nginx and its app in real containers of the Docker
//! Engine and Compose of this host, each scenario first shown to really give its 502 (a curl
//! from inside the nginx container), then diagnosed by fix502. What belongs here: scenarios
//! that need a real container runtime (its embedded DNS, its json-file log, docker-proxy, a
//! container recreated with a new address), and the small harness that builds, runs and
//! removes them. Scenarios made of the kernel's own primitives (`unshare`, a forwarder, a DNS
//! responder) belong to `masters.rs`, `chain.rs` and the lab crate, which run without Docker.
//!
//! Rules every test here keeps:
//! - It skips, with one line on stderr saying why, when not root, when no Docker daemon
//!   answers (`docker info`), when `docker-compose` is missing, or when the lab image cannot
//!   be built (`scripts/lab-image`, built once per test process and reused when present).
//! - Each test is a Compose project of its own, `fix502-t<pid>-<n>`, whose containers use
//!   only the project's own networks, `internal: true` (no way out of the host); the one
//!   exception, a published port, is said where it is made. [`Project`]'s drop removes the
//!   project (`docker-compose down -v --remove-orphans -t 1`, then anything labelled
//!   `fix502.test=<name>`) and checks that no container, network or volume of it is left.
//! - fix502 runs in a network namespace of its own with only loopback up and no route
//!   ([`fix502_json`]): no probe can leave the machine, whatever address it aims at.
//! - Every wait is bounded; a process the test starts on the host is stopped by its pid.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::{causes, top_text, write};
use super::masters::free_port;

/// The lab image, as `scripts/lab-image` names it, or why it cannot be had (built once per
/// test process; the script's lock keeps parallel processes from building it twice).
static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();

/// The projects made by this process, for unique names.
static PROJECTS: AtomicUsize = AtomicUsize::new(0);

/// Runs `cmd`, its output captured, killed when it outlives `limit`.
fn bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    });
    let status = wait_bounded(&mut child, limit)
        .unwrap_or_else(|| panic!("{cmd:?} ran longer than {limit:?}; killed"));
    let [stdout, stderr] = readers.map(|r| r.join().unwrap_or_default());
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Waits for `child` up to `limit`; kills it (by its pid) and returns None when it is still
/// running then.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `program args...` bounded by `limit`; its stdout, trimmed, or a panic with its stderr.
fn ok(program: &str, args: &[&str], limit: Duration) -> String {
    let out = bounded(Command::new(program).args(args), limit);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether `program args...` succeeds within `limit`.
fn succeeds(program: &str, args: &[&str], limit: Duration) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
        .and_then(|mut child| wait_bounded(&mut child, limit))
        .is_some_and(|s| s.success())
}

/// The lab image's name, or None after one line on stderr saying why the test skips.
fn lab_image(test: &str) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: the Docker lab needs root");
        return None;
    }
    if !succeeds("docker", &["info"], Duration::from_secs(20)) {
        eprintln!("skipping {test}: no Docker daemon answers (`docker info` failed)");
        return None;
    }
    if !succeeds("docker-compose", &["version"], Duration::from_secs(20)) {
        eprintln!("skipping {test}: docker-compose is not installed");
        return None;
    }
    let image = IMAGE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab-image");
        let mut cmd = Command::new(&script);
        let out = bounded(&mut cmd, Duration::from_secs(1200));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            eprintln!("{}", stderr.trim_end());
        }
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "scripts/lab-image failed ({}): {}",
                out.status,
                stderr.lines().last().unwrap_or("no message")
            ))
        }
    });
    match image {
        Ok(image) => Some(image.clone()),
        Err(why) => {
            eprintln!("skipping {test}: the lab image cannot be built: {why}");
            None
        }
    }
}

/// One Compose project: its name, its directory (the compose file and the files it mounts),
/// removed with everything it made when dropped.
struct Project {
    name: String,
    dir: tempfile::TempDir,
    image: String,
    /// When it was made: each step says on stderr how long into the test it ended.
    start: Instant,
}

impl Project {
    /// A new project, named `fix502-t<pid>-<n>`, with nothing running yet.
    fn new(image: String) -> Self {
        let n = PROJECTS.fetch_add(1, Ordering::SeqCst);
        Self {
            name: format!("fix502-t{}-{n}", std::process::id()),
            dir: tempfile::tempdir().expect("tempdir"),
            image,
            start: Instant::now(),
        }
    }

    /// Writes `docker-compose.yml`: `services` and `networks` are the YAML of those two
    /// sections (indented two spaces under them); `IMAGE` in them is the lab image, and
    /// `LABELS` the project's labels, one per line under a `labels:` key.
    fn compose_file(&self, services: &str, networks: &str) {
        let fill = |s: &str| {
            s.replace("IMAGE", &self.image)
                .replace("LABELS", &format!("fix502.test: \"{}\"", self.name))
        };
        write(
            &self.dir.path().join("docker-compose.yml"),
            &format!(
                "version: \"2.4\"\nservices:\n{}\nnetworks:\n{}\n",
                fill(services),
                fill(networks)
            ),
        );
    }

    /// Says on stderr that `what` ended, and when (the test's timeline, shown with
    /// `--nocapture`).
    fn say(&self, what: &str) {
        eprintln!(
            "{}: {what} ({:.1} s)",
            self.name,
            self.start.elapsed().as_secs_f64()
        );
    }

    /// Says on stderr what fix502 answered: its exit code and causes, with the top
    /// diagnosis's upstream and summary.
    fn said(&self, (out, report): &(Output, Value)) {
        let top = &report["diagnosis"][0];
        self.say(&format!(
            "fix502 ran: exit {:?}, causes {:?}, top upstream {}: {}",
            out.status.code(),
            causes(report),
            top["upstream"],
            top["summary"].as_str().unwrap_or_default()
        ));
    }

    /// A file of the project's directory (mounted into containers with `./NAME`).
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        write(&path, text);
        path
    }

    /// `docker-compose -p NAME args...`, bounded; panics with its output when it fails.
    fn compose(&self, args: &[&str]) -> String {
        let file = self.dir.path().join("docker-compose.yml");
        let mut all = vec!["-p", &self.name, "-f", file.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        let out = ok("docker-compose", &all, Duration::from_secs(180));
        if args.first() != Some(&"ps") {
            self.say(&format!("docker-compose {}", args.join(" ")));
        }
        out
    }

    /// The id of the container of `service`.
    fn container(&self, service: &str) -> String {
        let id = self.compose(&["ps", "-q", service]);
        assert!(!id.is_empty(), "no container for service {service}");
        id
    }

    /// The host pid of the main process of `service`'s container (nginx's master, where
    /// nginx runs as `nginx -g 'daemon off;'`).
    fn pid(&self, service: &str) -> i32 {
        let id = self.container(service);
        let pid = ok(
            "docker",
            &["inspect", "-f", "{{.State.Pid}}", &id],
            Duration::from_secs(30),
        );
        pid.parse()
            .unwrap_or_else(|_| panic!("pid of {service}: {pid}"))
    }

    /// The host pid of `service`'s main process, once it is nginx's master with a worker
    /// (bounded: 100 x 100 ms).
    fn nginx_master(&self, service: &str) -> i32 {
        let pid = self.pid(service);
        for _ in 0..100 {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).starts_with("nginx: master process")
                && has_child(pid)
            {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{service}'s main process {pid} is no nginx master with a worker:\n{}",
            self.logs(service)
        );
    }

    /// The status code of `curl http://127.0.0.1/` inside `service`'s container, asked until
    /// it is `wanted` (bounded: 100 tries, 60 s); the last one when it never was (`000`: no
    /// answer).
    fn status_inside(&self, service: &str, wanted: &str) -> String {
        let id = self.container(service);
        let mut last = String::new();
        let start = Instant::now();
        for _ in 0..100 {
            if start.elapsed() > Duration::from_secs(60) {
                break;
            }
            let out = bounded(
                Command::new("docker").args([
                    "exec",
                    &id,
                    "curl",
                    "-s",
                    "-m",
                    "15",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "http://127.0.0.1/",
                ]),
                Duration::from_secs(30),
            );
            last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if last == wanted {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last
    }

    /// Asserts that a request to nginx in `service` gets `wanted` (502 or 504), with the
    /// container's logs when it does not.
    fn assert_status(&self, service: &str, wanted: &str) {
        let got = self.status_inside(service, wanted);
        assert_eq!(
            got,
            wanted,
            "the lab does not give its {wanted}; {service}'s logs:\n{}\nits error.log:\n{}",
            self.logs(service),
            self.exec(service, &["cat", "/var/log/nginx/error.log"])
        );
        self.say(&format!("{service} answers {wanted}"));
    }

    /// `docker logs` of `service` (stdout and stderr), for failure messages.
    fn logs(&self, service: &str) -> String {
        let file = self.dir.path().join("docker-compose.yml");
        let out = bounded(
            Command::new("docker-compose").args([
                "-p",
                &self.name,
                "-f",
                file.to_str().unwrap_or_default(),
                "logs",
                "--no-color",
                service,
            ]),
            Duration::from_secs(30),
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Runs `cmd` in `service`'s container; its stdout and stderr, whatever its status.
    fn exec(&self, service: &str, cmd: &[&str]) -> String {
        let Ok(id) = std::panic::catch_unwind(|| self.container(service)) else {
            return String::new();
        };
        let out = bounded(
            Command::new("docker").arg("exec").arg(id).args(cmd),
            Duration::from_secs(30),
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// What of this project is still there: containers, networks and volumes, by the
    /// project's label, its `fix502.test` label and its name.
    fn leftovers(&self) -> Vec<String> {
        let project = format!("label=com.docker.compose.project={}", self.name);
        let ours = format!("label=fix502.test={}", self.name);
        let named = format!("name={}_", self.name);
        let mut left = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-aq", "--filter", &project]),
            ("container", vec!["ps", "-aq", "--filter", &ours]),
            ("network", vec!["network", "ls", "-q", "--filter", &project]),
            ("network", vec!["network", "ls", "-q", "--filter", &ours]),
            ("network", vec!["network", "ls", "-q", "--filter", &named]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &project]),
        ] {
            let out = bounded(Command::new("docker").args(&args), Duration::from_secs(30));
            if !out.status.success() {
                left.push(format!("cannot list {what}s: docker {args:?} failed"));
            }
            left.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(|id| format!("{what} {id}")),
            );
        }
        left.sort();
        left.dedup();
        left
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let file = self.dir.path().join("docker-compose.yml");
        if file.exists() {
            let out = bounded(
                Command::new("docker-compose").args([
                    "-p",
                    &self.name,
                    "-f",
                    file.to_str().unwrap_or_default(),
                    "down",
                    "-v",
                    "--remove-orphans",
                    "-t",
                    "1",
                ]),
                Duration::from_secs(120),
            );
            if !out.status.success() {
                eprintln!(
                    "docker-compose down of {}: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // Anything made with plain `docker run` / `docker network create` carries our label.
        let ours = format!("label=fix502.test={}", self.name);
        for (list, remove) in [
            (vec!["ps", "-aq", "--filter", &ours], vec!["rm", "-f", "-v"]),
            (
                vec!["network", "ls", "-q", "--filter", &ours],
                vec!["network", "rm"],
            ),
        ] {
            let out = bounded(Command::new("docker").args(&list), Duration::from_secs(30));
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                bounded(
                    Command::new("docker").args(&remove).args(&ids),
                    Duration::from_secs(60),
                );
            }
        }
        let left = self.leftovers();
        self.say("removed");
        if !left.is_empty() {
            let message = format!("project {} left behind: {}", self.name, left.join(", "));
            if std::thread::panicking() {
                eprintln!("{message}");
            } else {
                panic!("{message}");
            }
        }
    }
}

/// Whether process `pid` has a child (nginx's master has forked its workers).
fn has_child(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .is_ok_and(|c| !c.trim().is_empty())
}

/// An IPv4 /24 in 10.0.0.0/8 that no Docker network and no route of this host uses, for a
/// network with fixed addresses: its first three octets, e.g. `10.213.7`.
fn free_subnet() -> String {
    let used = {
        let ids = ok("docker", &["network", "ls", "-q"], Duration::from_secs(30));
        let mut args = vec![
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ];
        args.extend(ids.split_whitespace());
        let subnets = ok("docker", &args, Duration::from_secs(30));
        let routes = ok(
            "ip",
            &["-4", "route", "show", "table", "all"],
            Duration::from_secs(10),
        );
        format!("{subnets}\n{routes}")
    };
    let seed = std::process::id() as usize * 7919
        + PROJECTS.load(Ordering::SeqCst) * 104_729
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
    // Bounded: 200 candidates, one of which is free on any sane host.
    (0..200)
        .map(|i| {
            let n = seed.wrapping_add(i * 2_654_435_761) % (56 * 256);
            format!("10.{}.{}", 200 + n / 256, n % 256)
        })
        .find(|net| !used.contains(&format!("{net}.")))
        .expect("no free 10.x.y.0/24 for the lab network")
}

/// An app on the host's loopback, `python3 -m http.server`, stopped by its pid when dropped.
struct HostApp {
    child: Child,
}

impl HostApp {
    /// Starts it on 127.0.0.1:`port` and waits (bounded: 100 x 100 ms) until it listens.
    fn start(port: u16) -> Self {
        let dir = std::env::temp_dir();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server on the host");
        let app = Self { child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return app;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the host's app does not listen on 127.0.0.1:{port}");
    }
}

impl Drop for HostApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs fix502 `args` (plus `--non-interactive --json --timeout 1s`) in a network namespace
/// of its own with only loopback up and no route: nothing it sends can leave the machine.
/// As root it still sees /proc, Docker's files, and may enter nginx's namespaces itself.
fn fix502_json(args: &[&str]) -> (Output, Value) {
    let mut all = vec!["--non-interactive", "--json", "--timeout", "1s"];
    all.extend_from_slice(args);
    let out = fix502_alone(&all);
    // Not JSON (exit 3 prints its one line on stderr): Null, which the verdict reports.
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

/// Runs fix502 `args` in a network namespace of its own with only loopback up and no route.
fn fix502_alone(args: &[&str]) -> Output {
    bounded(
        Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && exec \"$@\"",
                "sh",
                env!("CARGO_BIN_EXE_fix502"),
            ])
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("FIX502_LOG"),
        Duration::from_secs(180),
    )
}

/// The verdict's checks: each failed one is collected, and all are reported at once with
/// fix502's whole JSON report, so that one run says everything that is missing.
struct Verdict<'a> {
    scenario: &'a str,
    report: &'a Value,
    out: &'a Output,
    failed: Vec<String>,
}

impl<'a> Verdict<'a> {
    fn new(scenario: &'a str, (out, report): &'a (Output, Value)) -> Self {
        let mut verdict = Self {
            scenario,
            report,
            out,
            failed: Vec::new(),
        };
        verdict.check(
            report.is_object(),
            "stdout is one JSON document (the report)",
        );
        verdict
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failed.push(what.into());
        }
    }

    /// Panics with every failed check and the report.
    fn finish(self) {
        if !self.failed.is_empty() {
            panic!(
                "scenario {}: {} check(s) failed:\n  - {}\nexit code {:?}; stderr:\n{}\nfix502's report:\n{}",
                self.scenario,
                self.failed.len(),
                self.failed.join("\n  - "),
                self.out.status.code(),
                String::from_utf8_lossy(&self.out.stderr),
                if self.report.is_null() {
                    String::from_utf8_lossy(&self.out.stdout).into_owned()
                } else {
                    format!("{:#}", self.report)
                }
            );
        }
    }
}

/// An nginx.conf for the lab image: `http` is the body of the `http` block; the error log
/// is /var/log/nginx/error.log.
fn nginx_conf(http: &str) -> String {
    format!(
        "user www-data;\nworker_processes 1;\npid /run/nginx.pid;\nerror_log /var/log/nginx/error.log;\nevents {{}}\nhttp {{\n    access_log /var/log/nginx/access.log;\n{http}\n}}\n"
    )
}

/// A Compose service running nginx from `./nginx.conf` as the container's main process.
fn nginx_service(name: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    image: IMAGE\n    command: [\"nginx\", \"-g\", \"daemon off;\"]\n    volumes: [\"./nginx.conf:/etc/nginx/nginx.conf:ro\"]\n    labels:\n      LABELS\n{extra}"
    )
}

/// The project's one network, private and internal (no way out of the host).
const INTERNAL: &str = "  lab:\n    internal: true\n    labels:\n      LABELS\n";

/// Whether `text` contains one of `words` (case-insensitive).
fn mentions(text: &str, words: &[&str]) -> bool {
    let text = text.to_lowercase();
    words.iter().any(|w| text.contains(&w.to_lowercase()))
}

/// The first diagnosis.
fn top(report: &Value) -> &Value {
    &report["diagnosis"][0]
}

/// Scenario a: nginx in a container proxies to `127.0.0.1:PORT`, where the app listens on the
/// host's loopback, not the container's: the container's localhost is its own.
#[test]
fn docker_localhost_in_the_container_is_not_the_hosts() {
    let Some(image) = lab_image("docker_localhost_in_the_container_is_not_the_hosts") else {
        return;
    };
    let port = free_port();
    let _app = HostApp::start(port);
    let project = Project::new(image);
    project.file(
        "nginx.conf",
        &nginx_conf(&format!(
            "    server {{\n        listen 80;\n        location / {{ proxy_pass http://127.0.0.1:{port}; }}\n    }}"
        )),
    );
    project.compose_file(&nginx_service("web", "    networks: [lab]\n"), INTERNAL);
    project.compose(&["up", "-d"]);
    let master = project.nginx_master("web");
    project.assert_status("web", "502");

    let run = fix502_json(&["--pid", &master.to_string()]);
    project.said(&run);
    let report = &run.1;
    let mut v = Verdict::new("a (localhost in the container)", &run);
    let upstream = format!("127.0.0.1:{port}");
    let top = top(report);
    v.check(
        matches!(
            top["cause"].as_str(),
            Some("upstream-refused" | "upstream-wrong-address")
        ),
        format!(
            "top cause upstream-refused or upstream-wrong-address, got {:?}",
            causes(report)
        ),
    );
    v.check(
        matches!(top["upstream"].as_str(), Some(u) if u == upstream || u == format!("localhost:{port}")),
        format!("top upstream {upstream}, got {}", top["upstream"]),
    );
    let text = top_text(report);
    v.check(
        mentions(&text, &["localhost", "127.0.0.1"])
            && mentions(&text, &["container"])
            && mentions(
                &text,
                &[
                    "not the host",
                    "host's",
                    "container itself",
                    "own network namespace",
                ],
            ),
        "the diagnosis says that localhost in the container is not the host's",
    );
    v.check(
        mentions(&text, &["host.docker.internal", "gateway", "network_mode"]),
        "the fix names host.docker.internal, the bridge gateway or network_mode",
    );
    v.check(
        report["nginx"]["namespaces"]["container"]["runtime"] == "docker",
        format!(
            "nginx.namespaces.container.runtime is docker, got {}",
            report["nginx"]["namespaces"]
        ),
    );
    v.check(
        report["nginx"]["master_pid"] == master,
        format!(
            "nginx.master_pid {master}, got {}",
            report["nginx"]["master_pid"]
        ),
    );
    v.check(
        !causes(report).iter().any(|c| c == "nginx-not-running"),
        "no nginx-not-running",
    );
    v.finish();
}

/// Scenario b: a Compose project whose app service is stopped; nginx resolves `app` per
/// request through Docker's embedded DNS (127.0.0.11), which no longer answers the name.
///
/// What the embedded DNS does with the name of a stopped container depends on the
/// container's DNS options (Docker 20.10, an internal network): with `ndots` set explicitly,
/// it answers a one-label name it does not know at once with no address, and nginx logs
/// `app could not be resolved (3: Host not found)`; by default it forwards the name to the
/// host's resolvers from inside the container, where an internal network has no route, so
/// nginx logs `(110: Operation timed out)` after its `resolver_timeout`. Both are tested.
fn stopped_service(test: &str, ndots: bool) {
    let Some(image) = lab_image(test) else {
        return;
    };
    let project = Project::new(image);
    project.file(
        "nginx.conf",
        &nginx_conf(
            "    resolver 127.0.0.11 valid=1s;\n    resolver_timeout 2s;\n    server {\n        listen 80;\n        location / {\n            set $u http://app:8000;\n            proxy_pass $u;\n        }\n    }",
        ),
    );
    let dns_opt = if ndots {
        "    dns_opt: [\"ndots:1\"]\n"
    } else {
        ""
    };
    project.compose_file(
        &format!(
            "{}  app:\n    image: IMAGE\n    command: [\"python3\", \"-m\", \"http.server\", \"8000\"]\n    working_dir: /srv\n    labels:\n      LABELS\n    networks: [lab]\n",
            nginx_service(
                "web",
                &format!("    networks: [lab]\n    depends_on: [app]\n{dns_opt}")
            )
        ),
        INTERNAL,
    );
    project.compose(&["up", "-d"]);
    let master = project.nginx_master("web");
    // Healthy first: the name resolves and the app answers.
    project.assert_status("web", "200");
    project.compose(&["stop", "-t", "1", "app"]);
    project.assert_status("web", "502");
    let log = project.exec("web", &["cat", "/var/log/nginx/error.log"]);
    let logged = if ndots {
        "app could not be resolved (3: Host not found)"
    } else {
        "app could not be resolved (110: Operation timed out)"
    };
    assert!(
        log.contains(logged),
        "nginx did not log `{logged}` (Docker 20.10's embedded DNS; another daemon version may \
         answer otherwise):\n{log}"
    );

    // A decoy: another Compose project whose running service is also named app, on a
    // network of its own. It is another app; the diagnosis must not send nginx to it.
    let decoy = ndots.then(|| {
        let decoy = Project::new(project.image.clone());
        decoy.compose_file(
            "  app:\n    image: IMAGE\n    command: [\"python3\", \"-m\", \"http.server\", \"8000\"]\n    working_dir: /srv\n    labels:\n      LABELS\n    networks: [lab]\n",
            INTERNAL,
        );
        decoy.compose(&["up", "-d"]);
        decoy
    });

    let run = fix502_json(&["--pid", &master.to_string()]);
    project.said(&run);
    let report = &run.1;
    let mut v = Verdict::new(test, &run);
    let top = top(report);
    if let Some(decoy) = &decoy {
        v.check(
            !top_text(report).contains(&decoy.name),
            format!("nothing names the decoy project {}", decoy.name),
        );
    }
    v.check(
        top["cause"] == "upstream-dns",
        format!("top cause upstream-dns, got {:?}", causes(report)),
    );
    v.check(
        matches!(top["upstream"].as_str(), Some("app:8000" | "app")),
        format!("top upstream app:8000, got {}", top["upstream"]),
    );
    let text = top_text(report);
    v.check(
        text.contains("127.0.0.11"),
        "the evidence names Docker's embedded DNS 127.0.0.11",
    );
    v.check(
        mentions(&text, &["stopped", "exited", "not running"]) && text.contains("app"),
        "the evidence says that the container of service app is stopped",
    );
    v.check(
        report["nginx"]["namespaces"]["container"]["runtime"] == "docker",
        format!(
            "nginx.namespaces.container.runtime is docker, got {}",
            report["nginx"]["namespaces"]
        ),
    );
    v.finish();
}

#[test]
fn docker_stopped_service_is_host_not_found() {
    stopped_service("docker_stopped_service_is_host_not_found", true);
}

#[test]
fn docker_stopped_service_times_out_in_the_embedded_dns() {
    stopped_service(
        "docker_stopped_service_times_out_in_the_embedded_dns",
        false,
    );
}

/// Scenario c: the app container is recreated with a new address; nginx resolved
/// `proxy_pass http://app:8000` at start and still connects to the old one.
///
/// Nothing has the old address any more: on the internal bridge its ARP goes unanswered and
/// the connect times out, so the client gets a 504 after `proxy_connect_timeout` (2 s here;
/// nginx logs `upstream timed out (110: Connection timed out) while connecting to upstream`).
/// Only after the kernel gives the neighbour up (tens of seconds) would connects fail at once
/// with `113: No route to host` and a 502; the test does not wait for that.
#[test]
fn docker_recreated_app_has_a_new_address() {
    let Some(image) = lab_image("docker_recreated_app_has_a_new_address") else {
        return;
    };
    let project = Project::new(image);
    let net = free_subnet();
    project.file(
        "nginx.conf",
        &nginx_conf(
            "    server {\n        listen 80;\n        location / {\n            proxy_pass http://app:8000;\n            proxy_connect_timeout 2s;\n        }\n    }",
        ),
    );
    let compose = |last: u8| {
        project.compose_file(
            &format!(
                "{}  app:\n    image: IMAGE\n    command: [\"python3\", \"-m\", \"http.server\", \"8000\"]\n    working_dir: /srv\n    labels:\n      LABELS\n    networks:\n      lab:\n        ipv4_address: {net}.{last}\n",
                nginx_service(
                    "web",
                    &format!("    networks:\n      lab:\n        ipv4_address: {net}.5\n    depends_on: [app]\n")
                )
            ),
            &format!(
                "  lab:\n    internal: true\n    ipam:\n      config:\n        - subnet: {net}.0/24\n    labels:\n      LABELS\n"
            ),
        );
    };
    compose(10);
    project.compose(&["up", "-d"]);
    let master = project.nginx_master("web");
    project.assert_status("web", "200");
    // The app comes back elsewhere: nginx keeps the address it resolved at start.
    compose(20);
    project.compose(&["up", "-d", "-t", "1", "--no-deps", "app"]);
    let resolved = project.exec("web", &["getent", "hosts", "app"]);
    assert!(
        resolved.starts_with(&format!("{net}.20 ")),
        "app does not resolve to its new address: {resolved}"
    );
    project.assert_status("web", "504");
    let log = project.exec("web", &["cat", "/var/log/nginx/error.log"]);
    assert!(
        log.contains(&format!(
            "upstream timed out (110: Connection timed out) while connecting to upstream, client: 127.0.0.1, server: , request: \"GET / HTTP/1.1\", upstream: \"http://{net}.10:8000/\""
        )),
        "nginx did not log the timeout to the old address {net}.10:\n{log}"
    );

    let run = fix502_json(&["--pid", &master.to_string()]);
    project.said(&run);
    let report = &run.1;
    let mut v = Verdict::new("c (recreated app, stale address)", &run);
    let top = top(report);
    v.check(
        top["cause"] == "upstream-stale-dns",
        format!("top cause upstream-stale-dns, got {:?}", causes(report)),
    );
    let text = top_text(report);
    v.check(
        text.contains(&format!("{net}.10")) && text.contains(&format!("{net}.20")),
        format!("the diagnosis names the old address {net}.10 and the new {net}.20"),
    );
    v.check(
        report["nginx"]["namespaces"]["container"]["runtime"] == "docker",
        format!(
            "nginx.namespaces.container.runtime is docker, got {}",
            report["nginx"]["namespaces"]
        ),
    );
    v.finish();
}

/// Scenario d: the official image's layout, nginx as the container's main process with
/// /var/log/nginx/error.log linked to /dev/stderr; its error log is Docker's json-file log.
#[test]
fn docker_error_log_to_stderr_is_read_from_the_json_file_log() {
    let Some(image) = lab_image("docker_error_log_to_stderr_is_read_from_the_json_file_log") else {
        return;
    };
    let project = Project::new(image);
    // The app answers on 8000; nginx asks port 8001 of its container, where nothing listens.
    project.file(
        "nginx.conf",
        &nginx_conf(
            "    server {\n        listen 80;\n        location / { proxy_pass http://app:8001; }\n    }",
        ),
    );
    let official = "    command: [\"sh\", \"-c\", \"ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log && exec nginx -g 'daemon off;'\"]\n";
    let web = nginx_service("web", "    networks: [lab]\n    depends_on: [app]\n").replace(
        "    command: [\"nginx\", \"-g\", \"daemon off;\"]\n",
        official,
    );
    project.compose_file(
        &format!(
            "{web}  app:\n    image: IMAGE\n    command: [\"python3\", \"-m\", \"http.server\", \"8000\"]\n    working_dir: /srv\n    labels:\n      LABELS\n    networks: [lab]\n"
        ),
        INTERNAL,
    );
    project.compose(&["up", "-d"]);
    let master = project.nginx_master("web");
    project.assert_status("web", "502");
    let id = project.container("web");
    let json_log = ok(
        "docker",
        &["inspect", "-f", "{{.LogPath}}", &id],
        Duration::from_secs(30),
    );
    let logged = std::fs::read_to_string(&json_log).unwrap_or_default();
    assert!(
        logged.contains("connect() failed (111: Connection refused)"),
        "the json-file log {json_log} has no refusal:\n{logged}"
    );

    let run = fix502_json(&["--pid", &master.to_string()]);
    project.said(&run);
    let report = &run.1;
    let mut v = Verdict::new("d (error.log linked to /dev/stderr)", &run);
    let refused = report["diagnosis"].as_array().and_then(|d| {
        d.iter()
            .find(|d| d["cause"] == "upstream-refused")
            .and_then(|d| d["upstream"].as_str())
    });
    v.check(
        refused.is_some_and(|u| u.ends_with(":8001")),
        format!(
            "upstream-refused at the app's address, port 8001, is diagnosed; got {:?}",
            causes(report)
        ),
    );
    v.check(
        causes(report).first().map(String::as_str) == Some("upstream-refused"),
        format!("top cause upstream-refused, got {:?}", causes(report)),
    );
    v.check(
        report["nginx"]["error_logs"]
            .as_array()
            .is_some_and(|a| a.iter().any(|l| l == json_log.as_str())),
        format!(
            "nginx.error_logs lists {json_log}, got {}",
            report["nginx"]["error_logs"]
        ),
    );
    let quotes_the_refusal = |report: &Value| {
        report["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["step"] == "logs"))
            .and_then(|s| s["findings"].as_array())
            .is_some_and(|f| {
                f.iter().any(|f| {
                    f["evidence"].as_array().is_some_and(|e| {
                        e.iter().any(|l| {
                            l.as_str().is_some_and(|l| {
                                l.contains("connect() failed (111: Connection refused)")
                            })
                        })
                    })
                })
            })
    };
    let quoted = quotes_the_refusal(report);
    v.check(
        quoted,
        "a finding of the logs step quotes the `connect() failed (111: Connection refused)` line",
    );
    // A bundle holds the json-file log, and diagnoses the same after the project is gone.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("web.tar.gz");
    let bundle_arg = bundle.to_str().unwrap();
    let collected = fix502_alone(&[
        "collect",
        "--pid",
        &master.to_string(),
        "--timeout",
        "1s",
        "--output",
        bundle_arg,
    ]);
    v.check(
        collected.status.success(),
        format!(
            "collect succeeds: {}",
            String::from_utf8_lossy(&collected.stderr)
        ),
    );
    drop(project);
    let offline = fix502_alone(&["--json", "--from", bundle_arg]);
    let offline_report: Value = serde_json::from_slice(&offline.stdout).unwrap_or(Value::Null);
    v.check(
        causes(&offline_report).first() == causes(report).first()
            && top(&offline_report)["upstream"] == top(report)["upstream"]
            && offline.status.code() == run.0.status.code(),
        format!(
            "--from after the project is gone gives the live top cause, upstream and exit; got {:?} {} exit {:?}",
            causes(&offline_report),
            top(&offline_report)["upstream"],
            offline.status.code()
        ),
    );
    v.check(
        quotes_the_refusal(&offline_report),
        "offline, the logs step quotes the refusal from the bundle's json-file log",
    );
    v.finish();
}

/// Scenario e: two nginx containers publish port 80 on two loopback ports of the host
/// (docker-proxy); `--url` with the second's port picks the second's master.
#[test]
fn docker_published_port_picks_the_master() {
    let Some(image) = lab_image("docker_published_port_picks_the_master") else {
        return;
    };
    let project = Project::new(image);
    project.file(
        "nginx.conf",
        &nginx_conf(
            "    server {\n        listen 80;\n        location / { proxy_pass http://127.0.0.1:9; }\n    }",
        ),
    );
    let (first, second) = (free_port(), free_port());
    let published =
        |port: u16| format!("    networks: [front]\n    ports: [\"127.0.0.1:{port}:80\"]\n");
    // Docker publishes no port of a container whose only networks are internal ones: this
    // scenario alone uses a private network that is not internal. Its ports are published on
    // 127.0.0.1 only, and fix502 still runs in a namespace with no route.
    project.compose_file(
        &format!(
            "{}{}",
            nginx_service("web1", &published(first)),
            nginx_service("web2", &published(second))
        ),
        "  front:\n    labels:\n      LABELS\n",
    );
    project.compose(&["up", "-d"]);
    let m1 = project.nginx_master("web1");
    let m2 = project.nginx_master("web2");
    project.assert_status("web1", "502");
    project.assert_status("web2", "502");
    // The published port reaches the second container's nginx (loopback, docker-proxy).
    let via_host = ok(
        "curl",
        &[
            "-s",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{second}/"),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(via_host, "502", "127.0.0.1:{second} does not give the 502");

    let url = format!("http://127.0.0.1:{second}/");
    let run = fix502_json(&["--url", &url, "--step", "config"]);
    project.said(&run);
    let report = &run.1;
    let mut v = Verdict::new("e (published port chosen by --url)", &run);
    v.check(
        report["nginx"]["master_pid"] == m2,
        format!(
            "nginx.master_pid is web2's {m2} (web1's is {m1}), got {}",
            report["nginx"]["master_pid"]
        ),
    );
    v.check(
        run.0.status.code() != Some(3),
        format!("exit code is not 3, got {:?}", run.0.status.code()),
    );
    v.finish();
}

/// The teardown itself: a project whose test also made a container with plain `docker run`
/// and a network with `docker network create` (both labelled `fix502.test=<name>`, the
/// container attached to the project's network too) is removed entirely when dropped.
#[test]
fn docker_teardown_removes_everything_a_test_made() {
    let Some(image) = lab_image("docker_teardown_removes_everything_a_test_made") else {
        return;
    };
    let project = Project::new(image.clone());
    let name = project.name.clone();
    project.compose_file(
        "  idle:\n    image: IMAGE\n    command: [\"sleep\", \"300\"]\n    labels:\n      LABELS\n    networks: [lab]\n",
        INTERNAL,
    );
    project.compose(&["up", "-d"]);
    let label = format!("fix502.test={name}");
    let extra = format!("{name}_extra");
    let limit = Duration::from_secs(60);
    ok(
        "docker",
        &["network", "create", "--internal", "--label", &label, &extra],
        limit,
    );
    let plain = ok(
        "docker",
        &[
            "run",
            "-d",
            "--label",
            &label,
            "--network",
            &extra,
            &image,
            "sleep",
            "300",
        ],
        limit,
    );
    ok(
        "docker",
        &["network", "connect", &format!("{name}_lab"), &plain],
        limit,
    );
    let made = project.leftovers();
    assert_eq!(made.len(), 4, "two containers and two networks: {made:?}");
    assert!(
        made.contains(&format!("container {}", &plain[..12])),
        "{made:?}"
    );
    drop(project);
    for args in [
        vec!["ps", "-aq", "--filter"],
        vec!["network", "ls", "-q", "--filter"],
        vec!["volume", "ls", "-q", "--filter"],
    ] {
        let mut args = args;
        let filter = format!("label={label}");
        args.push(&filter);
        assert_eq!(
            ok("docker", &args, limit),
            "",
            "docker {args:?} after the drop"
        );
    }
}
