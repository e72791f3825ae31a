//! End-to-end tests of every lab scenario with the real nginx binary.
//!
//! They fail when nginx is not installed, unless `FIX502_SKIP_NGINX=1` is set. Scenarios that
//! need root are skipped (with a note on stderr) when the tests do not run as root.
#![allow(clippy::print_stderr, reason = "tests explain skips on stderr")]

use std::fs;
use std::net::{Ipv6Addr, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
        Err(LabError::Unsupported(why)) if name == "wrong-address" => {
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

/// Stops the lab and checks that its nginx master is gone and the dir removed.
fn stop_and_check(lab: Lab) {
    let pid = lab.master_pid();
    let dir = lab.dir().to_path_buf();
    lab.stop().expect("stop the lab");
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

#[test]
fn unix_socket_permission_logs_13() {
    let Some(lab) = start("unix-socket-permission") else {
        return;
    };
    assert_config_ok(&lab);
    let upstream = expected_upstream(&lab);
    let line = log_line(&lab, "(13: Permission denied)");
    assert!(
        line.contains(&format!("connect() to {upstream} failed")),
        "{line}"
    );
    let meta = fs::metadata(lab.dir().join("run/app.sock")).expect("socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    assert_eq!(lab.request("/").expect("request"), 502);
    stop_and_check(lab);
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
    ];
    let names: Vec<_> = scenarios().iter().map(|s| s.name).collect();
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
