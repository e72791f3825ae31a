//! End-to-end tests of every lab scenario with the real nginx binary.
//!
//! They fail when nginx is not installed, unless `FIX502_SKIP_NGINX=1` is set (and the PHP-FPM
//! scenarios fail without php-fpm unless `FIX502_SKIP_PHP_FPM=1`). Scenarios that need root are
//! skipped (with a note on stderr) when the tests do not run as root.
#![allow(clippy::print_stderr, reason = "tests explain skips on stderr")]

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use fix502_lab::{Lab, LabError, LabOptions, find, process_running, scenarios};

/// Starts scenario `name`, or returns `None` (after saying why) when it must be skipped.
fn start(name: &str) -> Option<Lab> {
    match Lab::start(name, &LabOptions::default()) {
        Ok(lab) => {
            assert_eq!(lab.info().name, name);
            Some(lab)
        }
        Err(LabError::NginxNotFound)
            if std::env::var("FIX502_SKIP_NGINX").as_deref() == Ok("1") =>
        {
            eprintln!("skipping lab scenario {name}: nginx not installed (FIX502_SKIP_NGINX=1)");
            None
        }
        Err(LabError::NginxNotFound) => panic!(
            "the lab tests need the real nginx binary, which was not found on PATH or in the sbin dirs; \
             install nginx or set FIX502_SKIP_NGINX=1 to skip them"
        ),
        Err(LabError::NeedsRoot(scenario)) => {
            assert!(
                find(name).is_some_and(|s| s.needs_root),
                "{name} wants root unexpectedly"
            );
            eprintln!(
                "skipping lab scenario {scenario}: it needs root and the tests do not run as root"
            );
            None
        }
        Err(LabError::PhpFpmNotFound)
            if std::env::var("FIX502_SKIP_PHP_FPM").as_deref() == Ok("1") =>
        {
            assert!(find(name).is_some_and(|s| s.needs_php_fpm()), "{name}");
            eprintln!(
                "skipping lab scenario {name}: php-fpm not installed (FIX502_SKIP_PHP_FPM=1)"
            );
            None
        }
        Err(LabError::Unsupported(why)) if matches!(name, "wrong-address" | "stale-dns") => {
            eprintln!("skipping lab scenario {name}: {why}");
            None
        }
        Err(e) => panic!("lab scenario {name} did not start: {e}"),
    }
}

/// The first error-log line that contains `needle` (panics with the whole log otherwise).
fn log_line(lab: &Lab, needle: &str) -> String {
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    log.lines()
        .find(|line| line.contains(needle))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no {needle:?} in {}:\n{log}", lab.error_log().display()))
}

fn expected_upstream(lab: &Lab) -> String {
    lab.expected_upstream().expect("scenario has an upstream")
}

fn assert_config_ok(lab: &Lab) {
    let test = lab.test_config().expect("run nginx -t");
    assert!(
        test.ok,
        "nginx -t failed for {}: {}",
        lab.info().name,
        test.output
    );
}

/// Stops the lab and checks that its nginx master, its PHP-FPM processes and other programs
/// (if any) are gone and the dir removed.
fn stop_and_check(lab: Lab) {
    let pid = lab.master_pid();
    let app_pid = lab.app_pid();
    let others = lab.other_pids();
    let dir = lab.dir().to_path_buf();
    lab.stop().expect("stop the lab");
    for other in app_pid.into_iter().chain(others) {
        assert!(
            !process_running(other),
            "app process {other} survived stop()"
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while !group_members(other).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let left = group_members(other);
        assert!(
            left.is_empty(),
            "processes {left:?} of group {other} survived stop()"
        );
    }
    if let Some(pid) = pid {
        assert!(!process_running(pid), "nginx master {pid} survived stop()");
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z "),
            "/proc/{pid}/stat: {state}"
        );
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn healthy_answers_200() {
    let Some(lab) = start("healthy") else { return };
    assert_config_ok(&lab);
    let pid = lab.master_pid().expect("pid file");
    assert!(process_running(pid));
    assert_eq!(lab.request("/").expect("request"), 200);
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    assert!(!log.contains("upstream"), "unexpected errors:\n{log}");
    let access = fs::read_to_string(lab.access_log()).expect("read access log");
    assert!(access.contains("\"GET / HTTP/1.1\" 200 "), "{access}");
    stop_and_check(lab);
}

#[test]
fn refused_logs_111() {
    let Some(lab) = start("refused") else { return };
    assert_config_ok(&lab);
    let line = log_line(
        &lab,
        "(111: Connection refused) while connecting to upstream",
    );
    let upstream = expected_upstream(&lab);
    assert!(
        line.contains(&format!("upstream: \"http://{upstream}/\"")),
        "{line}"
    );
    assert!(line.contains("server: lab.fix502.test"), "{line}");
    assert_eq!(lab.request("/").expect("request"), 502);
    stop_and_check(lab);
}

#[test]
fn wrong_address_logs_111_while_the_app_listens_on_ipv6() {
    let Some(lab) = start("wrong-address") else {
        return;
    };
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    let line = log_line(
        &lab,
        "(111: Connection refused) while connecting to upstream",
    );
    assert!(
        line.contains(&format!("upstream: \"http://{upstream}/\"")),
        "{line}"
    );
    let port: u16 = upstream
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .expect("127.0.0.1:PORT");
    TcpStream::connect((Ipv6Addr::LOCALHOST, port)).expect("the app listens on [::1]");
    assert_eq!(lab.request("/").expect("request"), 502);
    stop_and_check(lab);
}

#[test]
fn unix_socket_missing_logs_2() {
    let Some(lab) = start("unix-socket-missing") else {
        return;
    };
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    assert_eq!(
        upstream,
        format!("unix:{}/run/app.sock", lab.dir().display())
    );
    let line = log_line(&lab, "(2: No such file or directory)");
    assert!(
        line.contains(&format!("connect() to {upstream} failed")),
        "{line}"
    );
    assert!(
        line.contains(&format!("upstream: \"http://{upstream}:/\"")),
        "{line}"
    );
    assert!(!lab.dir().join("run/app.sock").exists());
    assert_eq!(lab.request("/").expect("request"), 502);
    stop_and_check(lab);
}

/// A root-owned socket of mode 0600 (`socket`, under the lab dir) keeps nginx's workers out:
/// nginx logs EACCES and answers 502.
fn socket_permission_logs_13(scenario: &str, socket: &str) {
    let Some(lab) = start(scenario) else {
        return;
    };
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    let line = log_line(&lab, "(13: Permission denied)");
    assert!(
        line.contains(&format!("connect() to {upstream} failed")),
        "{line}"
    );
    let meta = fs::metadata(lab.dir().join(socket)).expect("socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    assert_eq!(lab.request("/").expect("request"), 502);
    stop_and_check(lab);
}

#[test]
fn unix_socket_permission_logs_13() {
    socket_permission_logs_13("unix-socket-permission", "run/app.sock");
}

#[test]
fn php_fpm_socket_permission_logs_13() {
    // php-fpm made its socket root's, mode 0600, from listen.owner and listen.mode.
    socket_permission_logs_13("php-fpm-socket-permission", "run/php-fpm.sock");
}

#[test]
fn no_live_upstreams_follows_refused() {
    let Some(lab) = start("no-live-upstreams") else {
        return;
    };
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    let refused = log_line(
        &lab,
        "(111: Connection refused) while connecting to upstream",
    );
    assert!(
        refused.contains(&format!("upstream: \"http://{upstream}/\"")),
        "{refused}"
    );
    let dead = log_line(&lab, "no live upstreams while connecting to upstream");
    assert!(dead.contains("upstream: \"http://backend/\""), "{dead}");
    assert_eq!(lab.request("/").expect("request"), 502);
    stop_and_check(lab);
}

#[test]
fn nginx_not_running_and_teardown_stops_a_later_nginx() {
    let Some(lab) = start("nginx-not-running") else {
        return;
    };
    assert_config_ok(&lab);
    assert_eq!(lab.master_pid(), None);
    assert!(
        lab.request("/").is_err(),
        "nothing should listen on {}",
        lab.listen_addr()
    );

    // Something else (a remediation) starts nginx from the lab's config afterwards.
    let mut prefix = lab.prefix().as_os_str().to_owned();
    prefix.push("/");
    let status = Command::new(lab.nginx_binary())
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(lab.config())
        .arg("-e")
        .arg(lab.error_log())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run nginx");
    assert!(status.success());
    let pid = wait_for_pid(&lab);
    assert_eq!(lab.request("/").expect("request"), 200);
    stop_and_check(lab);
    assert!(!process_running(pid));
}

/// Waits (at most 5 s) for the lab's pid file to name a running process.
fn wait_for_pid(lab: &Lab) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(pid) = lab.master_pid().filter(|pid| process_running(*pid))
            && TcpStream::connect(lab.listen_addr()).is_ok()
        {
            return pid;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("nginx did not come up on {}", lab.listen_addr());
}

#[test]
fn config_invalid_fails_nginx_t_with_file_and_line() {
    let Some(lab) = start("config-invalid") else {
        return;
    };
    let test = lab.test_config().expect("run nginx -t");
    assert!(!test.ok, "nginx -t should fail");
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    assert!(
        !log.contains("[emerg]"),
        "nginx -t wrote to the error log:\n{log}"
    );
    let app_conf = lab.dir().join("conf/app.conf");
    assert!(
        test.output
            .contains(&format!("unexpected \"}}\" in {}:5", app_conf.display())),
        "{}",
        test.output
    );
    // The running nginx still serves the old, valid config.
    assert!(lab.master_pid().is_some_and(process_running));
    assert_eq!(lab.request("/").expect("request"), 200);
    stop_and_check(lab);
}

#[test]
fn every_scenario_has_a_test_here() {
    let tested = [
        "healthy",
        "refused",
        "wrong-address",
        "unix-socket-missing",
        "unix-socket-permission",
        "no-live-upstreams",
        "nginx-not-running",
        "config-invalid",
        "closed-early",
        "reset",
        "header-too-big",
        "invalid-header",
        "https-to-plain",
        "http-to-tls",
        "proxy-to-fastcgi",
        "fastcgi-to-http",
        "tls-verify",
        "tls-needs-sni",
        "php-fpm-killed",
        "read-timeout",
        "upstream-502",
        "keepalive-race",
        "wrong-port",
        "wrong-interface",
        "dns-nxdomain",
        "no-resolver",
        "not-reloaded",
        "failed-reload",
        "group-one-dead",
        "stale-dns",
        "http2-goaway",
        "busy-host-one-down",
        "busy-host-healthy",
        "php-fpm-saturated",
        "php-fpm-allowed-clients",
        "php-fpm-socket-permission",
        "uwsgi-http-socket",
        "php-fpm-stale-socket",
    ];
    let mut names: Vec<_> = scenarios().map(|s| s.name).collect();
    let mut tested = tested.to_vec();
    names.sort_unstable();
    tested.sort_unstable();
    assert_eq!(names, tested);
}

#[test]
fn unknown_scenario_and_missing_binary_are_errors() {
    let err = Lab::start("no-such-scenario", &LabOptions::default()).err();
    assert!(matches!(err, Some(LabError::UnknownScenario(ref n)) if n == "no-such-scenario"));
    let opts = LabOptions {
        nginx: Some(Path::new("/no/such/nginx").to_path_buf()),
        keep: false,
    };
    assert!(matches!(
        Lab::start("healthy", &opts),
        Err(LabError::NginxNotFound)
    ));
}

/// Live (non-zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let rest = stat
                .rfind(')')
                .and_then(|i| stat.get(i + 1..))
                .unwrap_or("");
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
            group == Some(pgid) && !matches!(state, Some("Z" | "X"))
        })
        .collect()
}

/// Sends `GET /` to `addr` and returns every byte of the answer (3 s timeout, 1 MiB cap).
fn raw_get(addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: lab.fix502.test\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut answer)
        .expect("read the answer");
    answer
}

/// What every response-side scenario shares: `nginx -t` passes, the error log has the
/// scenario's marker on a line naming `upstream` (as `scheme://HOST:PORT`), a GET through nginx
/// gets `http_status()`. Returns the log line.
fn check_marker_and_status(lab: &Lab, upstream: &str) -> String {
    assert_config_ok(lab);
    let info = lab.info();
    let marker = info.log_marker().expect("scenario has a log marker");
    let line = log_line(lab, marker);
    assert!(
        line.contains(&format!("upstream: \"{upstream}")),
        "{}: {line}",
        info.name
    );
    assert!(line.contains("server: lab.fix502.test"), "{line}");
    let status = info.http_status().expect("scenario has a status");
    assert_eq!(lab.request("/").expect("request"), status, "{}", info.name);
    line
}

fn http_upstream(lab: &Lab) -> String {
    format!("http://{}/", expected_upstream(lab))
}

#[test]
fn http2_goaway_logs_goaway_before_the_header() {
    let Some(lab) = start("http2-goaway") else {
        return;
    };
    let upstream = format!("grpc://{}", expected_upstream(&lab));
    let line = check_marker_and_status(&lab, &upstream);
    assert!(line.contains("[error]"), "{line}");
    assert!(
        line.contains("while reading response header from upstream"),
        "{line}"
    );
    stop_and_check(lab);
}

#[test]
fn closed_early_logs_premature_close() {
    let Some(lab) = start("closed-early") else {
        return;
    };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(line.contains("[error]"), "{line}");
    assert_eq!(lab.info().http_status(), Some(502));
    stop_and_check(lab);
}

#[test]
fn reset_logs_104() {
    let Some(lab) = start("reset") else { return };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(
        line.contains("recv() failed (104: ")
            && line.contains("while reading response header from upstream"),
        "{line}"
    );
    stop_and_check(lab);
}

#[test]
fn header_too_big_logs_and_the_app_header_has_the_promised_size() {
    let Some(lab) = start("header-too-big") else {
        return;
    };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(
        line.contains("while reading response header from upstream"),
        "{line}"
    );
    let addr: SocketAddr = expected_upstream(&lab).parse().expect("ip:port");
    let answer = raw_get(addr);
    let head_len = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .expect("a complete head");
    assert_eq!(Some(head_len), lab.info().upstream_header_bytes());
    assert!(head_len > 4096, "must exceed the default proxy_buffer_size");
    stop_and_check(lab);
}

#[test]
fn invalid_header_logs_the_nul() {
    let Some(lab) = start("invalid-header") else {
        return;
    };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(
        line.contains(r#"upstream sent invalid header: "X-Lab: bad\x00...""#),
        "{line}"
    );
    stop_and_check(lab);
}

#[test]
fn https_to_plain_fails_the_handshake() {
    let Some(lab) = start("https-to-plain") else {
        return;
    };
    let upstream = format!("https://{}/", expected_upstream(&lab));
    let line = check_marker_and_status(&lab, &upstream);
    assert!(
        line.contains("SSL_do_handshake() failed (SSL: ")
            && line.contains("while SSL handshaking to upstream"),
        "{line}"
    );
    stop_and_check(lab);
}

#[test]
fn http_to_tls_relays_the_tls_alert_as_http_0_9() {
    let Some(lab) = start("http-to-tls") else {
        return;
    };
    assert_config_ok(&lab);
    let line = log_line(&lab, lab.info().log_marker().expect("marker"));
    assert!(
        line.contains(&format!("upstream: \"{}", http_upstream(&lab))),
        "{line}"
    );
    // No status line: nginx passes the upstream's TLS alert record through as HTTP/0.9.
    assert_eq!(lab.info().http_status(), None);
    assert!(lab.request("/").is_err());
    let answer = raw_get(lab.listen_addr());
    assert_eq!(answer.get(..2), Some(&[0x15, 0x03][..]), "{answer:?}");
    let access = fs::read_to_string(lab.access_log()).expect("read access log");
    assert!(access.contains("\"GET / HTTP/1.1\" 009 "), "{access}");
    stop_and_check(lab);
}

#[test]
fn proxy_to_fastcgi_is_reset_by_php_fpm() {
    let Some(lab) = start("proxy-to-fastcgi") else {
        return;
    };
    let pid = lab.app_pid().expect("php-fpm pid");
    assert!(process_running(pid));
    let app_log = lab.app_log().expect("php-fpm log");
    assert!(app_log.starts_with(lab.dir()));
    assert!(lab.dir().join("conf/php-fpm.conf").is_file());
    let log = fs::read_to_string(app_log).expect("read php-fpm log");
    assert!(log.contains("ready to handle connections"), "{log}");
    check_marker_and_status(&lab, &http_upstream(&lab));
    stop_and_check(lab);
}

#[test]
fn fastcgi_to_http_reads_an_h_as_protocol_version() {
    let Some(lab) = start("fastcgi-to-http") else {
        return;
    };
    assert_eq!(lab.app_pid(), None);
    assert_eq!(lab.app_log(), None);
    let upstream = format!("fastcgi://{}\"", expected_upstream(&lab));
    check_marker_and_status(&lab, &upstream);
    let app_conf = fs::read_to_string(lab.dir().join("conf/app.conf")).expect("app.conf");
    assert!(
        app_conf.contains("fastcgi_param SCRIPT_FILENAME "),
        "{app_conf}"
    );
    assert!(!app_conf.contains("include"), "{app_conf}");
    stop_and_check(lab);
}

#[test]
fn tls_needs_sni_ends_the_handshake_nginx_makes_without_sni() {
    let Some(lab) = start("tls-needs-sni") else {
        return;
    };
    let upstream = format!("https://{}/", expected_upstream(&lab));
    let line = check_marker_and_status(&lab, &upstream);
    assert!(line.contains("while SSL handshaking to upstream"), "{line}");
    let app_conf = fs::read_to_string(lab.dir().join("conf/app.conf")).expect("app.conf");
    assert!(
        app_conf.contains("proxy_pass \"https://backend\";"),
        "{app_conf}"
    );
    assert!(!app_conf.contains("proxy_ssl_server_name"), "{app_conf}");
    stop_and_check(lab);
}

#[test]
fn tls_verify_rejects_the_self_signed_certificate() {
    let Some(lab) = start("tls-verify") else {
        return;
    };
    let upstream = format!("https://{}/", expected_upstream(&lab));
    let line = check_marker_and_status(&lab, &upstream);
    assert!(line.contains("while SSL handshaking to upstream"), "{line}");
    let app_conf = fs::read_to_string(lab.dir().join("conf/app.conf")).expect("app.conf");
    let ca = lab.dir().join("conf/trusted-ca.pem");
    assert!(
        app_conf.contains(&format!(
            "proxy_ssl_trusted_certificate \"{}\";",
            ca.display()
        )),
        "{app_conf}"
    );
    assert!(lab.dir().join("conf/upstream.crt").is_file());
    stop_and_check(lab);
}

#[test]
fn php_fpm_killed_by_request_terminate_timeout() {
    let Some(lab) = start("php-fpm-killed") else {
        return;
    };
    let upstream = format!("fastcgi://{}\"", expected_upstream(&lab));
    check_marker_and_status(&lab, &upstream);
    let log = fs::read_to_string(lab.app_log().expect("php-fpm log")).expect("read php-fpm log");
    assert!(log.contains("execution timed out"), "{log}");
    let conf = fs::read_to_string(lab.dir().join("conf/php-fpm.conf")).expect("php-fpm.conf");
    assert!(conf.contains("request_terminate_timeout = 1s"), "{conf}");
    stop_and_check(lab);
}

#[test]
fn read_timeout_gives_504() {
    let Some(lab) = start("read-timeout") else {
        return;
    };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(
        line.contains("while reading response header from upstream"),
        "{line}"
    );
    assert_eq!(lab.info().http_status(), Some(504));
    stop_and_check(lab);
}

#[test]
fn upstream_502_is_relayed_without_an_error_line() {
    let Some(lab) = start("upstream-502") else {
        return;
    };
    assert_config_ok(&lab);
    assert_eq!(lab.info().log_marker(), None);
    assert_eq!(lab.request("/").expect("request"), 502);
    let answer = String::from_utf8_lossy(&raw_get(lab.listen_addr())).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("bad gateway from the app\n"), "{answer}");
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    assert!(!log.contains("upstream"), "unexpected errors:\n{log}");
    let access = fs::read_to_string(lab.access_log()).expect("read access log");
    assert!(access.contains("\"GET / HTTP/1.1\" 502 "), "{access}");
    stop_and_check(lab);
}

#[test]
fn keepalive_race_is_retried_for_get_but_not_for_post() {
    let Some(lab) = start("keepalive-race") else {
        return;
    };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(line.contains("request: \"GET / HTTP/1.1\""), "{line}");
    let conf = fs::read_to_string(lab.config()).expect("nginx.conf");
    assert!(conf.contains("        keepalive 8;\n"), "{conf}");
    let access = fs::read_to_string(lab.access_log()).expect("read access log");
    assert!(access.contains("\"GET / HTTP/1.1\" 200 "), "{access}");
    assert!(access.contains("\"POST / HTTP/1.1\" 502 "), "{access}");
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    assert!(
        log.lines()
            .any(|l| l.contains(lab.info().log_marker().unwrap_or("?"))
                && l.contains("request: \"POST / HTTP/1.1\"")),
        "{log}"
    );
    stop_and_check(lab);
}

/// How many error-log lines contain `needle`.
fn count_lines(lab: &Lab, needle: &str) -> usize {
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    log.lines().filter(|line| line.contains(needle)).count()
}

/// The port of an `IP:PORT` upstream.
fn port_of(upstream: &str) -> u16 {
    upstream
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {upstream}"))
}

/// Sends GETs (at most 5 s) until one gets `want`; returns whether one did.
fn eventually_status(lab: &Lab, want: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if lab.request("/").ok() == Some(want) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn wrong_port_refuses_next_to_a_live_php_fpm_pool() {
    let Some(lab) = start("wrong-port") else {
        return;
    };
    let upstream = expected_upstream(&lab);
    let line = check_marker_and_status(&lab, &format!("fastcgi://{upstream}\""));
    assert!(
        line.contains("connect() failed (111: ") && line.contains("while connecting to upstream"),
        "{line}"
    );
    // The pool itself runs, on another port of the same address.
    let conf = fs::read_to_string(lab.dir().join("conf/php-fpm.conf")).expect("php-fpm.conf");
    let pool = conf
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .expect("listen line")
        .to_owned();
    assert!(pool.starts_with("127.0.0.1:"), "{pool}");
    assert_ne!(port_of(&pool), port_of(&upstream));
    TcpStream::connect(&pool).expect("the pool listens");
    assert!(lab.app_pid().is_some_and(process_running));
    stop_and_check(lab);
}

#[test]
fn wrong_interface_refuses_while_the_app_listens_on_127_0_0_2() {
    let Some(lab) = start("wrong-interface") else {
        return;
    };
    let upstream = expected_upstream(&lab);
    assert!(upstream.starts_with("127.0.0.1:"), "{upstream}");
    check_marker_and_status(&lab, &http_upstream(&lab));
    let port = port_of(&upstream);
    TcpStream::connect(("127.0.0.2", port)).expect("the app listens on 127.0.0.2");
    let refused = TcpStream::connect(("127.0.0.1", port)).expect_err("127.0.0.1 is closed");
    assert_eq!(refused.raw_os_error(), Some(111));
    stop_and_check(lab);
}

#[test]
fn no_resolver_fails_before_connecting() {
    let Some(lab) = start("no-resolver") else {
        return;
    };
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    assert!(upstream.starts_with("app.lab.fix502.test:"), "{upstream}");
    let line = log_line(&lab, lab.info().log_marker().expect("marker"));
    assert!(
        line.contains("[error]")
            && line.contains(
                "no resolver defined to resolve app.lab.fix502.test, client: 127.0.0.1, server: lab.fix502.test"
            ),
        "{line}"
    );
    // No connection was tried, so nginx names no upstream.
    assert!(!line.contains("upstream:"), "{line}");
    let app_conf = fs::read_to_string(lab.dir().join("conf/app.conf")).expect("app.conf");
    assert!(
        app_conf.contains(&format!("proxy_pass \"http://{upstream}$request_uri\";")),
        "{app_conf}"
    );
    assert!(!app_conf.contains("resolver"), "{app_conf}");
    assert_eq!(lab.request("/").expect("request"), 502);
    stop_and_check(lab);
}

#[test]
fn dns_nxdomain_asks_the_configured_resolver() {
    let Some(lab) = start("dns-nxdomain") else {
        return;
    };
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    assert!(
        upstream.starts_with("missing.lab.fix502.test:"),
        "{upstream}"
    );
    let line = log_line(&lab, lab.info().log_marker().expect("marker"));
    assert!(
        line.contains("[error]")
            && line.contains(
                "missing.lab.fix502.test could not be resolved (3: Host not found), client: 127.0.0.1, server: lab.fix502.test"
            ),
        "{line}"
    );
    assert!(!line.contains("upstream:"), "{line}");
    let dns = lab.dns().expect("the lab's DNS responder");
    let app_conf = fs::read_to_string(lab.dir().join("conf/app.conf")).expect("app.conf");
    assert!(
        app_conf.contains(&format!(
            "    resolver {} valid=1s ipv6=off;
",
            dns.addr()
        )),
        "{app_conf}"
    );
    assert!(dns.addr().ip().is_loopback());
    let asked = dns.queries();
    assert!(asked > 0);
    assert_eq!(lab.request("/").expect("request"), 502);
    // nginx caches the NXDOMAIN for at most `valid=1s`, then asks again.
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(lab.request("/").expect("request"), 502);
    assert!(dns.queries() > asked);
    stop_and_check(lab);
}

/// What `not-reloaded` and `failed-reload` share: the refusals to the old port in the log,
/// a config on disk that names the app's real port, and a request that still gets 502 (with
/// one more refusal logged). Returns the app's address.
fn check_old_config_still_runs(lab: &Lab) -> String {
    let upstream = expected_upstream(lab);
    let line = log_line(
        lab,
        "(111: Connection refused) while connecting to upstream",
    );
    assert!(
        line.contains(&format!("upstream: \"http://{upstream}/\"")),
        "{line}"
    );
    let app_conf = fs::read_to_string(lab.dir().join("conf/app.conf")).expect("app.conf");
    let app = app_conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("proxy_pass \"http://"))
        .and_then(|rest| rest.strip_suffix("\";"))
        .expect("proxy_pass line")
        .to_owned();
    assert_ne!(app, upstream, "{app_conf}");
    TcpStream::connect(&app).expect("the app listens where the edited config points");
    // The edit is newer than the running nginx.
    let pid = lab.master_pid().expect("pid");
    let edited = fs::metadata(lab.dir().join("conf/app.conf"))
        .and_then(|m| m.modified())
        .expect("mtime");
    let started = fs::metadata(lab.pid_file())
        .and_then(|m| m.modified())
        .expect("pid file mtime");
    assert!(
        edited
            .duration_since(started)
            .is_ok_and(|d| d >= Duration::from_secs(1)),
        "app.conf is not clearly newer than nginx {pid}"
    );
    let before = count_lines(lab, "(111: Connection refused)");
    assert_eq!(lab.request("/").expect("request"), 502);
    let deadline = Instant::now() + Duration::from_secs(3);
    while count_lines(lab, "(111: Connection refused)") == before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(count_lines(lab, "(111: Connection refused)") > before);
    app
}

#[test]
fn not_reloaded_still_refuses_until_reloaded() {
    let Some(lab) = start("not-reloaded") else {
        return;
    };
    assert_config_ok(&lab);
    check_old_config_still_runs(&lab);
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    assert!(!log.contains("[emerg]"), "{log}");
    // The fix works once nginx is told about it.
    let pid = lab.master_pid().expect("pid");
    lab.reload().expect("reload");
    assert!(eventually_status(&lab, 200), "no 200 after the reload");
    assert_eq!(lab.master_pid(), Some(pid));
    stop_and_check(lab);
}

#[test]
fn failed_reload_keeps_the_old_config() {
    let Some(lab) = start("failed-reload") else {
        return;
    };
    let pid = lab.master_pid().expect("pid");
    let test = lab.test_config().expect("run nginx -t");
    assert!(!test.ok, "nginx -t should fail");
    let app_conf = lab.dir().join("conf/app.conf");
    let emerg = format!(
        "\"proxy_read_timeout\" directive invalid value in {}:4",
        app_conf.display()
    );
    assert!(test.output.contains(&emerg), "{}", test.output);
    let conf = fs::read_to_string(lab.config()).expect("nginx.conf");
    assert!(conf.contains("/logs/error.log\" notice;"), "{conf}");
    let hup = log_line(&lab, "signal 1 (SIGHUP) received");
    assert!(
        hup.contains("[notice]") && hup.contains("reconfiguring"),
        "{hup}"
    );
    let failed = log_line(&lab, "[emerg]");
    assert!(failed.contains(&emerg), "{failed}");
    check_old_config_still_runs(&lab);
    assert_eq!(lab.master_pid(), Some(pid));
    assert!(process_running(pid));
    stop_and_check(lab);
}

#[test]
fn group_one_dead_is_hidden_by_retries() {
    let Some(lab) = start("group-one-dead") else {
        return;
    };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(line.contains("while connecting to upstream"), "{line}");
    for _ in 0..4 {
        assert_eq!(lab.request("/").expect("request"), 200);
    }
    let conf = fs::read_to_string(lab.config()).expect("nginx.conf");
    let dead = format!("        server {};\n", expected_upstream(&lab));
    assert!(conf.contains(&dead), "{conf}");
    assert_eq!(
        conf.matches("        server 127.0.0.1:").count(),
        2,
        "{conf}"
    );
    let access = fs::read_to_string(lab.access_log()).expect("read access log");
    assert!(access.contains("\"GET / HTTP/1.1\" 200 "), "{access}");
    assert!(!access.contains("\" 502 "), "{access}");
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    assert!(!log.contains("no live upstreams"), "{log}");
    stop_and_check(lab);
}

#[test]
fn stale_dns_connects_to_the_old_address_in_its_own_namespace() {
    let host_hosts = fs::read("/etc/hosts").expect("read /etc/hosts");
    let Some(lab) = start("stale-dns") else {
        return;
    };
    let upstream = expected_upstream(&lab);
    assert!(upstream.starts_with("127.0.0.2:"), "{upstream}");
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(line.contains("while connecting to upstream"), "{line}");
    let port = port_of(&upstream);
    TcpStream::connect(("127.0.0.3", port)).expect("the app listens at its new address");

    // nginx runs in its own mount namespace, whose /etc/hosts is the lab file, now rewritten.
    let pid = lab.master_pid().expect("pid");
    let ns = |p: &str| fs::read_link(format!("/proc/{p}/ns/mnt")).expect("read ns link");
    assert_ne!(ns(&pid.to_string()), ns("self"));
    let hosts = lab.hosts_file().expect("hosts file");
    assert!(hosts.starts_with(lab.dir()));
    let now = fs::read_to_string(hosts).expect("read the lab hosts file");
    assert!(now.contains("\n127.0.0.3 app.lab.fix502.test\n"), "{now}");
    assert!(!now.contains("127.0.0.2"), "{now}");
    let seen = fs::read_to_string(format!("/proc/{pid}/root/etc/hosts")).expect("nginx's view");
    assert_eq!(seen, now);
    let app_conf = fs::read_to_string(lab.dir().join("conf/app.conf")).expect("app.conf");
    assert!(
        app_conf.contains(&format!(
            "proxy_pass \"http://app.lab.fix502.test:{port}\";"
        )),
        "{app_conf}"
    );
    assert_eq!(fs::read("/etc/hosts").expect("read /etc/hosts"), host_hosts);
    stop_and_check(lab);
    assert_eq!(fs::read("/etc/hosts").expect("read /etc/hosts"), host_hosts);
}

#[test]
fn keep_leaves_the_dir_with_its_logs() {
    let opts = LabOptions {
        keep: true,
        ..LabOptions::default()
    };
    let lab = match Lab::start("refused", &opts) {
        Ok(lab) => lab,
        Err(LabError::NginxNotFound)
            if std::env::var("FIX502_SKIP_NGINX").as_deref() == Ok("1") =>
        {
            return;
        }
        Err(e) => panic!("lab scenario refused did not start: {e}"),
    };
    let dir = lab.dir().to_path_buf();
    let pid = lab.master_pid().expect("pid");
    lab.stop().expect("stop the lab");
    assert!(!process_running(pid));
    let log = fs::read_to_string(dir.join("logs/error.log")).expect("the kept error log");
    assert!(log.contains("(111: Connection refused)"), "{log}");
    fs::remove_dir_all(&dir).expect("remove the kept dir");
}

/// The lab's other sites answer 200 (their requests are in the access log) and the
/// healthy members' ports accept connections.
fn check_healthy_members(lab: &Lab, count: usize) {
    let healthy = lab.healthy_upstreams();
    assert_eq!(healthy.len(), count, "{healthy:?}");
    for upstream in healthy {
        if let Some(path) = upstream.strip_prefix("unix:") {
            UnixStream::connect(path).expect("a healthy pool listens");
        } else {
            TcpStream::connect(upstream.as_str()).expect("a healthy app listens");
        }
    }
    let access = fs::read_to_string(lab.access_log()).expect("read access log");
    let sites = fs::read_dir(lab.dir().join("conf/sites"))
        .expect("conf/sites")
        .count();
    assert!(sites > 0);
    assert!(
        access.matches("\"GET / HTTP/1.1\" 200 ").count() >= sites,
        "{access}"
    );
}

#[test]
fn busy_host_one_down_refuses_only_the_admin_app() {
    let Some(lab) = start("busy-host-one-down") else {
        return;
    };
    let line = check_marker_and_status(&lab, &http_upstream(&lab));
    assert!(line.contains("while connecting to upstream"), "{line}");
    check_healthy_members(&lab, 2);
    // Neighbouring ports: shop, shop API, the admin app (down), the decoy.
    let down = port_of(&expected_upstream(&lab));
    let ports: Vec<u16> = lab.healthy_upstreams().iter().map(|u| port_of(u)).collect();
    assert_eq!(ports, [down - 2, down - 1]);
    TcpStream::connect(("127.0.0.1", down + 1)).expect("the decoy listens");
    let conf = fs::read_to_string(lab.config()).expect("nginx.conf");
    assert!(conf.contains("    upstream shop_admin {\n"), "{conf}");
    assert!(conf.contains("/conf/sites/*.conf\";\n}\n"), "{conf}");
    let site = fs::read_to_string(lab.dir().join("conf/sites/api.shop.lab.fix502.test.conf"))
        .expect("the API site");
    assert!(site.contains("proxy_pass \"http://shop_api\";"), "{site}");
    stop_and_check(lab);
    assert!(TcpStream::connect(("127.0.0.1", down + 1)).is_err());
}

#[test]
fn busy_host_healthy_answers_every_site() {
    let Some(lab) = start("busy-host-healthy") else {
        return;
    };
    assert_config_ok(&lab);
    assert_eq!(lab.request("/").expect("request"), 200);
    check_healthy_members(&lab, 3);
    let log = fs::read_to_string(lab.error_log()).expect("read error log");
    assert!(!log.contains("upstream"), "unexpected errors:\n{log}");
    stop_and_check(lab);
}

#[test]
fn php_fpm_saturated_fills_the_backlog() {
    let Some(lab) = start("php-fpm-saturated") else {
        return;
    };
    // Not check_marker_and_status: whether one more request finds the queue full depends
    // on how far the pool got with the queued ones.
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    let line = log_line(&lab, &format!("connect() to {upstream} failed (11: "));
    assert!(
        line.contains(&format!("upstream: \"fastcgi://{upstream}:\"")),
        "{line}"
    );
    let access = fs::read_to_string(lab.access_log()).expect("read access log");
    assert!(access.contains("\"GET / HTTP/1.1\" 502 "), "{access}");
    let log = fs::read_to_string(lab.app_log().expect("php-fpm log")).expect("read php-fpm log");
    assert!(
        log.contains("WARNING: [pool lab] server reached pm.max_children setting (1)"),
        "{log}"
    );
    let conf = fs::read_to_string(lab.dir().join("conf/php-fpm.conf")).expect("php-fpm.conf");
    assert!(conf.contains("pm.max_children = 1\n"), "{conf}");
    assert!(conf.contains("listen.backlog = 1\n"), "{conf}");
    stop_and_check(lab);
}

#[test]
fn php_fpm_allowed_clients_drops_nginx() {
    let Some(lab) = start("php-fpm-allowed-clients") else {
        return;
    };
    let upstream = format!("fastcgi://{}\"", expected_upstream(&lab));
    let line = check_marker_and_status(&lab, &upstream);
    assert!(
        line.contains("recv() failed (104: ")
            || line.contains("upstream prematurely closed connection"),
        "{line}"
    );
    let log = fs::read_to_string(lab.app_log().expect("php-fpm log")).expect("read php-fpm log");
    assert!(
        log.contains("Connection disallowed: IP address '127.0.0.1' has been dropped."),
        "{log}"
    );
    let conf = fs::read_to_string(lab.dir().join("conf/php-fpm.conf")).expect("php-fpm.conf");
    assert!(
        conf.contains("listen.allowed_clients = 127.0.0.2\n"),
        "{conf}"
    );
    stop_and_check(lab);
}

#[test]
fn uwsgi_http_socket_times_out_on_a_uwsgi_request() {
    let Some(lab) = start("uwsgi-http-socket") else {
        return;
    };
    let upstream = expected_upstream(&lab);
    let line = check_marker_and_status(&lab, &format!("uwsgi://{upstream}\""));
    assert!(
        line.contains("while reading response header from upstream"),
        "{line}"
    );
    // The port speaks HTTP.
    let answer = String::from_utf8_lossy(&raw_get(upstream.parse().expect("addr"))).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(lab.other_pids().len(), 1);
    stop_and_check(lab);
}

#[test]
fn php_fpm_stale_socket_refuses_next_to_another_pool() {
    let Some(lab) = start("php-fpm-stale-socket") else {
        return;
    };
    let upstream = expected_upstream(&lab);
    let line = check_marker_and_status(&lab, &format!("fastcgi://{upstream}:\""));
    assert!(
        line.contains(&format!("connect() to {upstream} failed (111: ")),
        "{line}"
    );
    let path = upstream.strip_prefix("unix:").expect("a unix socket");
    let meta = fs::metadata(path).expect("the socket file stays");
    assert!(meta.file_type().is_socket());
    let refused = UnixStream::connect(path).expect_err("nothing listens");
    assert_eq!(refused.raw_os_error(), Some(111));
    assert!(!lab.app_pid().is_some_and(process_running), "killed");
    check_healthy_members(&lab, 1);
    stop_and_check(lab);
}
