//! The restart step on the app server's side, with a real php-fpm: the plan shows the edit
//! of the pool's own config as a diff; `--apply` alone never applies it (another service
//! than nginx); a yes in the wizard (in a PTY) writes it, tests it with `php-fpm -t`,
//! reloads php-fpm and proves it by a request through nginx (502 → 200); `fix502 undo`
//! restores the exact bytes, reloads php-fpm, and the 502 comes back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::harness::lab;

/// The status of `GET /` through nginx, waiting up to `wait` for the answer (the lab's
/// script may sleep), or 0 when there is none.
fn status(addr: SocketAddr, wait: Duration) -> u16 {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return 0;
    };
    if s.set_read_timeout(Some(wait)).is_err()
        || s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_err()
    {
        return 0;
    }
    let mut head = Vec::new();
    drop((&mut s).take(4096).read_to_end(&mut head));
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until nginx answers `want`; the last status seen otherwise.
fn becomes(addr: SocketAddr, want: u16) -> Result<(), u16> {
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < Duration::from_secs(20) {
        last = status(addr, Duration::from_secs(10));
        if last == want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

/// The wizard in a PTY, as a person runs it, with its journal in `state`.
fn wizard(config: &Path, state: &Path) -> rexpect::session::PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fix502"));
    command
        // Wide enough that each sentence the test waits for stays on one line.
        .args(["--width", "1000", "--config"])
        .arg(config)
        .env("FIX502_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("LANG", "C.UTF-8");
    rexpect::session::spawn_command(command, Some(60_000)).expect("spawn in a pty")
}

/// One php-fpm setting fixed on the app's side and undone: `in_diff` must be in the plan's
/// diff of the pool's config.
fn app_round_trip(scenario: &str, in_diff: &[&str]) {
    let Some(lab) = lab(scenario) else { return };
    let addr = lab.listen_addr();
    let state = tempfile::tempdir().expect("a state dir");
    let pool = lab.dir().join("conf/php-fpm.conf");
    let before = std::fs::read(&pool).expect("read the pool's config");
    assert_eq!(
        status(addr, Duration::from_secs(10)),
        502,
        "{scenario}: the lab gives its 502 first"
    );
    let run = |args: &[&str]| super::harness::run_json_journalled(&lab, state.path(), args);

    // Planned, also with --apply: another service's side needs a yes.
    let (out, report) = run(&["--apply"]);
    assert_eq!(out.status.code(), Some(1), "{scenario}: {report:#}");
    let planned = super::harness::planned(&report, "app-reload", scenario, in_diff);
    assert!(
        planned["command"]
            .as_str()
            .is_some_and(|c| c.starts_with("kill -USR2 ")),
        "{scenario}: php-fpm's reload signal: {planned}"
    );
    assert_eq!(
        std::fs::read(&pool).unwrap(),
        before,
        "{scenario}: --apply alone changed php-fpm's config"
    );
    assert!(std::fs::read_dir(state.path()).map_or(true, |mut d| d.next().is_none()));

    // A yes in the wizard: written, tested, php-fpm reloaded, proven through nginx.
    let mut p = wizard(lab.config(), state.path());
    for _ in 0..3 {
        p.exp_string("What next?").expect("a step's prompt");
        p.send("\r").unwrap();
        p.flush().unwrap();
    }
    p.exp_string("tested by: ").expect("php-fpm -t is shown");
    p.exp_string("Make this change now").expect("the question");
    p.send("y").unwrap();
    p.flush().unwrap();
    p.exp_string("applied and verified")
        .unwrap_or_else(|e| panic!("{scenario}: the change is not verified: {e}"));
    p.exp_string("Fixed and verified").expect("the verdict");
    let rest = p.exp_eof().unwrap_or_default();
    let exit = p.process().wait().expect("exit");
    assert!(
        matches!(exit, rexpect::process::WaitStatus::Exited(_, 0)),
        "{scenario}: {exit:?}: the verdict ends {rest}"
    );
    assert_ne!(std::fs::read(&pool).unwrap(), before);
    becomes(addr, 200).unwrap_or_else(|s| panic!("{scenario}: after the fix nginx answers {s}"));

    // Undone: the exact bytes, php-fpm reloaded, the 502 back.
    let undone = super::harness::undo(state.path(), None, scenario);
    assert!(undone.contains("ran kill -USR2 "), "{scenario}: {undone}");
    assert!(undone.contains(" answers 502"), "{scenario}: {undone}");
    assert_eq!(std::fs::read(&pool).unwrap(), before, "{scenario}");
    becomes(addr, 502).unwrap_or_else(|s| panic!("{scenario}: after undo nginx answers {s}"));
}

#[test]
fn php_fpm_that_drops_nginx_is_fixed_in_allowed_clients_after_a_yes_and_undone() {
    app_round_trip(
        "php-fpm-allowed-clients",
        &[
            "-listen.allowed_clients = 127.0.0.2\n",
            "+listen.allowed_clients = 127.0.0.2,127.0.0.1\n",
        ],
    );
}

#[test]
fn php_fpm_killing_scripts_gets_nginx_s_read_timeout_after_a_yes_and_undone() {
    app_round_trip(
        "php-fpm-killed",
        &[
            "-request_terminate_timeout = 1s\n",
            "+request_terminate_timeout = 60s\n",
        ],
    );
}

#[test]
fn php_fpm_socket_settings_are_not_offered_as_a_reload() {
    // Needs root (the lab's workers run as nobody); the lab skips without it. A reloaded
    // php-fpm keeps its inherited socket: listen.owner takes effect only on a restart, which
    // needs the pool's systemd unit (these labs have none), never a signal.
    let Some(lab) = lab("php-fpm-socket-permission") else {
        return;
    };
    let (out, report) = super::harness::run_json(&lab, &[]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let has_unit = Path::new("/run/systemd/system").is_dir();
    for action in report["actions"].as_array().into_iter().flatten() {
        assert!(
            has_unit
                && action["command"]
                    .as_str()
                    .is_some_and(|c| c.contains("restart")),
            "a socket setting offered without a restart: {action}"
        );
    }
    let fix = report["diagnosis"][0]["fix"].to_string();
    assert!(fix.contains("listen.owner"), "{report:#}");
}
