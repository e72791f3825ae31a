//! Discovery without flags: with one nginx running, fix502 finds its config, prefix and logs
//! from the master process alone. Each test re-runs itself in a PID namespace of its own
//! (`unshare --pid --fork --mount-proc`), where the lab's nginx is the only master; that
//! needs root.

use std::process::Command;

use super::harness::{bin, check_expectation, lab, parse_report};

/// Set in the copy of the test that runs inside the namespace.
const INSIDE: &str = "FIX502_TEST_IN_PID_NAMESPACE";

/// True when the caller should do the work here (we are inside the namespace); otherwise
/// runs `test` inside one, asserts that it passed, and returns false.
fn inside_own_pid_namespace(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: a PID namespace needs root");
        return false;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("run unshare (util-linux)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{test} inside its PID namespace failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Runs fix502 with no flags but `--json` on scenario `name` and checks what it found.
fn diagnose_without_flags(name: &str) {
    let Some(lab) = lab(name) else { return };
    let out = bin()
        .args(["--non-interactive", "--json"])
        .output()
        .expect("run fix502");
    let report = parse_report(&out);
    let nginx = &report["nginx"];
    assert_eq!(
        nginx["config"].as_str(),
        lab.config().to_str(),
        "{name}: {nginx:#}"
    );
    assert_eq!(
        nginx["discovered_via"]["config"], "master command line (-c)",
        "{name}: {nginx:#}"
    );
    let prefix = nginx["prefix"].as_str().unwrap_or_default();
    assert_eq!(
        prefix.trim_end_matches('/'),
        lab.prefix().to_str().unwrap().trim_end_matches('/'),
        "{name}: {nginx:#}"
    );
    let logs: Vec<&str> = nginx["error_logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        logs.contains(&lab.error_log().to_str().unwrap()),
        "{name}: {logs:?}"
    );
    if let Err(e) = check_expectation(&lab, &report, out.status.code()) {
        panic!("{name}: {e}: {report:#}");
    }
}

#[test]
fn finds_the_only_master_of_every_scenario() {
    if !inside_own_pid_namespace("it::discovery::finds_the_only_master_of_every_scenario") {
        return;
    }
    // Every scenario but `nginx-not-running`, which has no master to discover.
    for name in fix502_lab::scenarios()
        .map(|s| s.name)
        .filter(|name| *name != "nginx-not-running")
    {
        diagnose_without_flags(name);
    }
}

/// No nginx binary where fix502 looks and no master: "could not check" (exit 3), never
/// `nginx-not-running`. The binary is hidden in a mount namespace of the run's own (root).
#[test]
fn no_nginx_binary_at_all_is_could_not_check() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: hiding /usr/sbin/nginx in a mount namespace needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nginx.conf");
    super::harness::write(
        &config,
        "events {}\nhttp {\n    server {\n        listen 127.0.0.1:18064;\n        location / { return 200; }\n    }\n}\n",
    );
    let out = Command::new("/usr/bin/unshare")
        .args(["--mount", "/bin/sh", "-c"])
        .arg(r#"/bin/mount --bind /dev/null "$1" && shift && exec "$@""#)
        .args(["sh", super::nginx_t::NGINX, env!("CARGO_BIN_EXE_fix502")])
        .args(["--json", "--timeout", "300ms", "--config"])
        .arg(&config)
        .env("PATH", "/nonexistent")
        .env("NO_COLOR", "1")
        .output()
        .expect("run unshare (util-linux)");
    let report = parse_report(&out);
    assert_eq!(
        report["nginx"]["binary"],
        serde_json::Value::Null,
        "{report:#}"
    );
    assert!(
        !super::harness::causes(&report).contains(&"nginx-not-running".to_owned()),
        "{report:#}"
    );
    let process = super::harness::findings(&report, "config")
        .iter()
        .find(|f| f["check"] == "config.process")
        .unwrap()
        .clone();
    assert_eq!(process["could_not_check"], true, "{process:#}");
    assert!(
        process["message"]
            .as_str()
            .unwrap()
            .contains("no nginx binary was found"),
        "{process:#}"
    );
    assert_eq!(out.status.code(), Some(3), "{report:#}");
}
