//! The FastCGI probe against a real php-fpm: each test starts its own php-fpm (three pools:
//! TCP, unix socket, and a TCP pool with `request_terminate_timeout = 1`) from a config in a
//! temp dir, and stops it by pid when done.
//!
//! What php-fpm 8.2 really does, as these tests pin down:
//! - `FCGI_GET_VALUES` is answered with `FCGI_MPXS_CONNS=0` only (no `FCGI_MAX_CONNS` or
//!   `FCGI_MAX_REQS`), and the worker then waits for a request on that connection.
//! - `error_log()` (with php.ini's default `error_log` unset) goes to FastCGI STDERR, all
//!   messages of the request joined by `; ` in one record sent before STDOUT.
//! - A missing script: STDERR `Primary script unknown`, then `Status: 404 Not Found`.
//! - A worker killed by `request_terminate_timeout` resets the connection (104) rather than
//!   closing it; nginx logs `recv() failed (104: Connection reset by peer)`.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use fix502_probe::fastcgi::{self, FcgiRequest};
use fix502_probe::gateway::{GatewayLimits, GatewayOutcome};
use fix502_probe::stream::Endpoint;
use nix::unistd::Group;

/// The php-fpm binary: /usr/sbin/php-fpm* (e.g. php-fpm8.2).
fn php_fpm_binary() -> PathBuf {
    let found = fs::read_dir("/usr/sbin").ok().and_then(|dir| {
        let mut names: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("php-fpm"))
            })
            .collect();
        names.sort();
        names.pop()
    });
    found.expect("php-fpm not installed: run scripts/install-deps")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

/// A running php-fpm; dropping it stops it.
struct Fpm {
    child: Child,
    dir: tempfile::TempDir,
    tcp: SocketAddr,
    unix: PathBuf,
    slow: SocketAddr,
}

impl Fpm {
    fn start() -> Self {
        let binary = php_fpm_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        // The workers run as nobody: they must reach the scripts.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let d = dir.path().display();
        let tcp = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let slow = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let unix = dir.path().join("fpm.sock");
        let user = if nix::unistd::geteuid().is_root() {
            let group = match Group::from_name("nogroup") {
                Ok(Some(_)) => "nogroup",
                _ => "nobody",
            };
            format!("user = nobody\ngroup = {group}\n")
        } else {
            String::new()
        };
        let config = format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n\n\
             [tcp]\n{user}listen = {tcp}\npm = static\npm.max_children = 2\n\n\
             [unix]\n{user}listen = {unix}\nlisten.mode = 0666\npm = static\npm.max_children = 2\n\n\
             [slow]\n{user}listen = {slow}\npm = static\npm.max_children = 1\n\
             request_terminate_timeout = 1\n",
            unix = unix.display(),
        );
        let conf = write(dir.path(), "fpm.conf", &config);
        let child = Command::new(&binary)
            .arg("-F")
            .arg("-y")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut fpm = Self {
            child,
            dir,
            tcp,
            unix,
            slow,
        };
        fpm.wait_ready();
        fpm
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("fpm.log")).unwrap_or_default()
    }

    /// Waits (at most 10 s) until all three pools accept connections.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = TcpStream::connect_timeout(&self.tcp, Duration::from_millis(200)).is_ok()
                && TcpStream::connect_timeout(&self.slow, Duration::from_millis(200)).is_ok()
                && UnixStream::connect(&self.unix).is_ok();
            if ready {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "php-fpm exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "php-fpm not ready after 10 s:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn script(&self, name: &str, text: &str) -> String {
        write(self.dir.path(), name, text).display().to_string()
    }
}

impl Drop for Fpm {
    fn drop(&mut self) {
        fix502_lab::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGTERM,
            Duration::from_secs(3),
        );
    }
}

fn limits(cap: usize) -> GatewayLimits {
    GatewayLimits {
        cap,
        timeout: Duration::from_secs(4),
    }
}

#[tokio::test]
async fn php_fpm_answers_management_records_and_scripts() {
    let fpm = Fpm::start();
    let tcp = Endpoint::Tcp(fpm.tcp);
    let unix = Endpoint::Unix(fpm.unix.clone());

    for endpoint in [&tcp, &unix] {
        let probe = fastcgi::get_values(endpoint, Duration::from_secs(4)).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::Values,
            "{endpoint}: {probe:?}"
        );
        let values = probe.values.expect("values");
        assert_eq!(values.mpxs_conns, Some(false));
        assert_eq!(
            values.raw,
            vec![("FCGI_MPXS_CONNS".to_owned(), "0".to_owned())],
            "php-fpm sends only FCGI_MPXS_CONNS"
        );
        assert_eq!(values.max_conns, None);
        assert!(
            probe.gateway.elapsed < Duration::from_secs(1),
            "the probe does not wait for php-fpm to close: {:?}",
            probe.gateway.elapsed
        );
    }

    let hello = fpm.script("hello.php", "<?php echo \"hello from php\\n\";\n");
    for endpoint in [&tcp, &unix] {
        let request = FcgiRequest::get(&hello, "/hello.php?a=1", "example.test");
        let probe = fastcgi::request(endpoint, &request, limits(4096)).await;
        assert_eq!(
            probe.gateway.outcome,
            GatewayOutcome::Response,
            "{endpoint}: {probe:?}"
        );
        assert_eq!(probe.gateway.status, Some(200));
        let head = b"Content-type: text/html; charset=UTF-8\r\n\r\n";
        assert_eq!(probe.gateway.header_bytes, head.len());
        assert!(probe.stdout_head.starts_with(head));
        assert!(probe.stdout_head.ends_with(b"hello from php\n"));
        assert_eq!(probe.end_request, Some((0, 0)));
        assert!(probe.stderr.is_empty());
    }

    let big = fpm.script(
        "big.php",
        "<?php header('X-Big: ' . str_repeat('a', 10000)); echo \"ok\\n\";\n",
    );
    let request = FcgiRequest::get(&big, "/big.php", "example.test");
    let probe = fastcgi::request(&tcp, &request, limits(1 << 20)).await;
    assert_eq!(probe.gateway.outcome, GatewayOutcome::Response, "{probe:?}");
    assert!(probe.gateway.header_bytes > 10_000 && probe.gateway.header_bytes < 10_100);
    let probe = fastcgi::request(&tcp, &request, limits(4096)).await;
    assert_eq!(
        probe.gateway.outcome,
        GatewayOutcome::HeaderTooBig,
        "{probe:?}"
    );
    assert!(probe.gateway.header_bytes > 4096);

    let noisy = fpm.script(
        "noisy.php",
        "<?php error_log('first problem'); error_log('second problem'); echo \"body\\n\";\n",
    );
    let request = FcgiRequest::get(&noisy, "/noisy.php", "example.test");
    let probe = fastcgi::request(&unix, &request, limits(4096)).await;
    assert_eq!(probe.gateway.outcome, GatewayOutcome::Response, "{probe:?}");
    assert_eq!(probe.gateway.status, Some(200));
    assert_eq!(
        probe.stderr,
        vec!["PHP message: first problem; PHP message: second problem".to_owned()]
    );

    let fatal = fpm.script("fatal.php", "<?php no_such_function();\n");
    let request = FcgiRequest::get(&fatal, "/fatal.php", "example.test");
    let probe = fastcgi::request(&tcp, &request, limits(4096)).await;
    assert_eq!(probe.gateway.outcome, GatewayOutcome::Response, "{probe:?}");
    assert_eq!(probe.gateway.status, Some(500));
    assert!(
        probe
            .stderr
            .iter()
            .any(|l| l.contains("PHP Fatal error") && l.contains("no_such_function")),
        "{:?}",
        probe.stderr
    );

    let missing = fpm.dir.path().join("missing.php").display().to_string();
    let request = FcgiRequest::get(&missing, "/missing.php", "example.test");
    let probe = fastcgi::request(&tcp, &request, limits(4096)).await;
    assert_eq!(probe.gateway.outcome, GatewayOutcome::Response, "{probe:?}");
    assert_eq!(probe.gateway.status, Some(404));
    assert_eq!(probe.stderr, vec!["Primary script unknown".to_owned()]);
}

#[tokio::test]
async fn request_terminate_timeout_resets_the_connection() {
    let fpm = Fpm::start();
    let slow = fpm.script("slow.php", "<?php sleep(5); echo \"late\\n\";\n");
    let request = FcgiRequest::get(&slow, "/slow.php", "example.test");
    let probe = fastcgi::request(&Endpoint::Tcp(fpm.slow), &request, limits(4096)).await;
    assert_eq!(probe.gateway.outcome, GatewayOutcome::Reset, "{probe:?}");
    assert!(
        probe.gateway.elapsed > Duration::from_millis(900)
            && probe.gateway.elapsed < Duration::from_secs(3),
        "killed after request_terminate_timeout = 1: {:?}",
        probe.gateway.elapsed
    );
    assert!(
        probe.gateway.head.is_empty(),
        "nothing was sent before the kill"
    );
    // php-fpm says why in its own log (written right after the kill).
    let deadline = Instant::now() + Duration::from_secs(2);
    while !fpm.log().contains("execution timed out") && Instant::now() < deadline {
        sleep(Duration::from_millis(50));
    }
    assert!(fpm.log().contains("execution timed out"), "{}", fpm.log());
}
