//! A snapshot that goes stale: nginx reloaded or stopped while fix502 looks at it. The real
//! nginx, an upstream on loopback that accepts and never answers (so the run is still
//! probing it), and the signal sent the moment fix502's probe connects, i.e. mid-run.

use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::harness::{Nginx, bin, findings, parse_report};

/// Starts nginx in front of a silent upstream, runs fix502 on it, and sends `signal` to the
/// master when fix502 first connects to the upstream (on every connect when `every`).
/// Returns fix502's output and the master's pid.
fn run_with_signal_mid_run(port: u16, signal: Signal, every: bool) -> (Output, i32) {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    upstream.set_nonblocking(true).unwrap();
    let app = upstream.local_addr().unwrap();
    let nginx = Nginx::start(
        "error_log logs/error.log;",
        &format!(
            "    server {{\n        listen 127.0.0.1:{port};\n        location / {{ proxy_read_timeout 1s; proxy_pass http://{app}; }}\n    }}"
        ),
        Stdio::null(),
    );
    let pid = nginx.pid;
    let done = Arc::new(AtomicBool::new(false));
    let holder = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut signalled = false;
            let until = Instant::now() + Duration::from_secs(60);
            // Bounded: until the run is over, or a minute.
            while !done.load(Ordering::Relaxed) && Instant::now() < until {
                match upstream.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        if !signalled || every {
                            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
                            signalled = true;
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            signalled
        })
    };
    let out = bin()
        .args([
            "--non-interactive",
            "--json",
            "--timeout",
            "1500ms",
            "--config",
        ])
        .arg(nginx.config())
        .output()
        .unwrap();
    done.store(true, Ordering::Relaxed);
    assert!(
        holder.join().unwrap(),
        "fix502 never connected to the upstream"
    );
    drop(nginx);
    (out, pid)
}

/// The note the report carries after a re-check.
fn change_note(report: &serde_json::Value) -> String {
    findings(report, "config")
        .iter()
        .filter_map(|f| f["message"].as_str())
        .find(|m| m.starts_with("nginx changed while fix502 was looking at it"))
        .unwrap_or_else(|| panic!("no note about nginx changing: {report:#}"))
        .to_owned()
}

/// Every message of the report, for what must not be said.
fn messages(report: &serde_json::Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["message"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_reload_mid_run_is_said_and_every_step_runs_again() {
    let (out, pid) = run_with_signal_mid_run(18095, Signal::SIGHUP, false);
    let (code, report) = (out.status.code(), parse_report(&out));
    let note = change_note(&report);
    assert!(note.contains("nginx's workers changed (pids "), "{note}");
    assert!(note.ends_with("every step was run again on the processes running now"));
    assert_eq!(report["nginx"]["running"], true, "{:#}", report["nginx"]);
    assert_eq!(report["nginx"]["master_pid"], pid, "{:#}", report["nginx"]);
    for m in messages(&report) {
        assert!(!m.contains("needs root"), "{m}");
        assert!(!m.contains("exited while fix502 read them"), "{m}");
    }
    // The upstream never answers within nginx's 1 s: the re-checked run still says so.
    assert_ne!(code, Some(0), "{report:#}");
    assert_ne!(code, Some(3), "{report:#}");
}

#[test]
fn nginx_stopped_mid_run_is_not_reported_running() {
    let (out, pid) = run_with_signal_mid_run(18096, Signal::SIGTERM, false);
    let (code, report) = (out.status.code(), parse_report(&out));
    let note = change_note(&report);
    assert_eq!(
        note,
        format!(
            "nginx changed while fix502 was looking at it (nginx's master (pid {pid}) exited): every step was run again on the processes running now"
        )
    );
    assert_eq!(report["nginx"]["running"], false, "{:#}", report["nginx"]);
    assert_ne!(code, Some(0), "{report:#}");
}

#[test]
fn nginx_that_keeps_changing_is_exit_3_with_the_reason() {
    // Reloaded at every connect, also during the second look: exit 3, one line, and the
    // report of a run that could not settle.
    let (out, _) = run_with_signal_mid_run(18094, Signal::SIGHUP, true);
    assert_eq!(out.status.code(), Some(3));
    super::harness::assert_not_started(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("fix502: nginx changed during the run (nginx's workers changed (pids ")
            && stderr.contains("and again while fix502 checked it a second time (")
            && stderr
                .trim_end()
                .ends_with("run fix502 again once nginx has settled"),
        "{stderr}"
    );
}
