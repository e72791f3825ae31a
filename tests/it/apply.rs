//! The restart step acting for real: `--apply` starts nginx for the not-running scenario and
//! verifies it; when the action fails it is rolled back and the run exits 4. Without
//! `--apply` nothing changes.

use super::harness::{lab, run_json};

fn restart_findings(report: &serde_json::Value) -> Vec<serde_json::Value> {
    super::harness::findings(report, "restart").clone()
}

#[test]
fn without_apply_nothing_is_started() {
    let Some(lab) = lab("nginx-not-running") else {
        return;
    };
    let (out, report) = run_json(&lab, &[]);
    assert_eq!(out.status.code(), Some(1));
    let plan = restart_findings(&report);
    assert!(
        plan.iter().any(|f| f["check"] == "restart.plan"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("Start nginx: would run")),
        "{plan:?}"
    );
    assert!(
        lab.master_pid()
            .is_none_or(|pid| !fix502_lab::process_running(pid)),
        "nginx was started without --apply"
    );
    assert_eq!(report["actions"][0]["status"], "planned", "{report:#}");
}

#[test]
fn apply_reloads_a_config_that_was_not_reloaded_and_the_502_is_gone() {
    let Some(lab) = lab("not-reloaded") else {
        return;
    };
    assert_eq!(
        lab.request("/").unwrap(),
        502,
        "the lab gives its 502 first"
    );
    let (out, report) = run_json(&lab, &["--apply"]);
    let action = &report["actions"][0];
    assert_eq!(action["kind"], "reload", "{report:#}");
    assert_eq!(action["status"], "verified", "{report:#}");
    assert_eq!(
        lab.request("/").unwrap(),
        200,
        "after the reload, nginx runs the fixed config"
    );
    assert!(
        !super::harness::causes(&report).contains(&"config-not-reloaded".to_owned()),
        "the reloaded config is no longer diagnosed as not reloaded: {report:#}"
    );
    assert_ne!(out.status.code(), Some(4), "{report:#}");
}

#[test]
fn apply_starts_nginx_and_verifies_it() {
    let Some(lab) = lab("nginx-not-running") else {
        return;
    };
    let (out, report) = run_json(&lab, &["--apply"]);
    let findings = restart_findings(&report);
    let applied = findings
        .iter()
        .find(|f| f["check"] == "restart.apply")
        .expect("an apply finding");
    assert_eq!(applied["severity"], "info", "{applied}");
    assert!(
        applied["message"]
            .as_str()
            .unwrap()
            .contains("applied and verified"),
        "{applied}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the one problem was fixed and verified: {report:#}"
    );
    assert!(
        report["diagnosis"].as_array().is_some_and(Vec::is_empty),
        "a fixed cause is no longer diagnosed: {report:#}"
    );
    let action = &report["actions"][0];
    assert_eq!(action["kind"], "start", "{report:#}");
    assert_eq!(action["status"], "verified", "{report:#}");
    assert_eq!(action["cause"], "nginx-not-running", "{report:#}");
    let pid = lab.master_pid().expect("pid file after start");
    assert!(fix502_lab::process_running(pid));
    assert_eq!(lab.request("/").unwrap(), 200);
    lab.stop().unwrap();
    assert!(!fix502_lab::process_running(pid));
}

#[test]
fn failed_action_is_rolled_back_and_exits_4() {
    let Some(lab) = lab("nginx-not-running") else {
        return;
    };
    // Someone else holds nginx's port: nginx -t passes, the start fails.
    // (If the bind fails, another socket already holds the port, which serves as well.)
    let squatter = std::net::TcpListener::bind(lab.listen_addr()).ok();
    let (out, report) = run_json(&lab, &["--apply"]);
    assert_eq!(out.status.code(), Some(4), "{report:#}");
    assert_eq!(report["actions"][0]["status"], "rolled-back", "{report:#}");
    let findings = restart_findings(&report);
    let applied = findings
        .iter()
        .find(|f| f["check"] == "restart.apply")
        .expect("an apply finding");
    assert_eq!(applied["severity"], "error");
    let evidence = applied["evidence"].to_string();
    assert!(evidence.contains("rollback"), "{evidence}");
    assert!(
        lab.master_pid()
            .is_none_or(|pid| !fix502_lab::process_running(pid)),
        "no nginx may be left running"
    );
    drop(squatter);
}

#[test]
fn five_acting_runs_at_once_leave_nginx_running() {
    // One actor at a time: the first starts nginx under the acting lock; the others wait,
    // find it running and do nothing; no run stops a master it did not start.
    let Some(lab) = lab("nginx-not-running") else {
        return;
    };
    let runs: Vec<std::process::Child> = (0..5)
        .map(|_| {
            super::harness::bin()
                .args(["--non-interactive", "--json", "--apply", "--config"])
                .arg(lab.config())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run fix502")
        })
        .collect();
    let mut applied = 0;
    let mut rolled_back = 0;
    for run in runs {
        let out = run.wait_with_output().expect("wait for fix502");
        let report = super::harness::parse_report(&out);
        for f in restart_findings(&report) {
            let message = f["message"].as_str().unwrap_or_default();
            if message.contains("applied and verified") {
                applied += 1;
            }
            if f["severity"] == "error" {
                rolled_back += 1;
            }
        }
    }
    assert_eq!(applied, 1, "exactly one run started nginx");
    assert_eq!(rolled_back, 0, "no run rolled anything back");
    let pid = lab.master_pid().expect("pid file after start");
    assert!(fix502_lab::process_running(pid));
    assert_eq!(lab.request("/").unwrap(), 200, "nginx serves at the end");
}

/// One config edit, acted on: the plan shows it as a diff and changes nothing; `--apply`
/// writes it (journalled, gated by `nginx -t`), reloads, and proves it by a request through
/// nginx (502 → 200, exit 0); `fix502 undo` restores the exact bytes and the 502 comes back.
fn edit_round_trip(scenario: &str, in_diff: &[&str]) {
    let Some(lab) = lab(scenario) else {
        return;
    };
    let state = tempfile::tempdir().expect("a state dir");
    let app_conf = lab.dir().join("conf/app.conf");
    let before = std::fs::read(&app_conf).expect("read the site file");
    // What a client gets: nginx's status, or 0 when the answer is not HTTP at all (http://
    // to a TLS port relays the TLS alert as HTTP/0.9).
    let status = || lab.request("/").unwrap_or(0);
    let broken = |s: u16| s == 502 || s == 0;
    assert!(broken(status()), "{scenario}: the lab is broken first");
    let run = |args: &[&str]| super::harness::run_json_journalled(&lab, state.path(), args);

    // Planned only: the diff is shown, the file is untouched.
    let (out, report) = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{scenario}: {report:#}");
    super::harness::planned(&report, "edit", scenario, in_diff);
    assert_eq!(
        std::fs::read(&app_conf).unwrap(),
        before,
        "{scenario}: no --apply, no change"
    );
    assert!(broken(status()));
    // --dry-run wins over --apply: the same plan, nothing changed.
    let (_, report) = run(&["--apply", "--dry-run"]);
    assert_eq!(
        report["actions"][0]["status"], "planned",
        "{scenario}: {report:#}"
    );
    assert_eq!(
        std::fs::read(&app_conf).unwrap(),
        before,
        "{scenario}: --dry-run changed the file"
    );

    // Applied: journalled, verified through nginx, the verdict follows.
    let (out, report) = run(&["--apply"]);
    let action = &report["actions"][0];
    assert_eq!(action["status"], "verified", "{scenario}: {report:#}");
    let id = action["journal_id"]
        .as_str()
        .expect("a journal id")
        .to_owned();
    assert!(action["backup"].as_str().is_some(), "{report:#}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{scenario}: fixed and verified: {report:#}"
    );
    assert!(
        report["diagnosis"].as_array().is_some_and(Vec::is_empty),
        "{scenario}: {report:#}"
    );
    assert_eq!(status(), 200, "{scenario}: the edit fixes the 502");

    // Undone: the exact bytes back, and the 502 with them.
    let undone = super::harness::undo(state.path(), Some(&id), scenario);
    // The proving request, sent again: what nginx answers now.
    assert!(undone.contains("  now: GET "), "{scenario}: {undone}");
    assert_eq!(
        std::fs::read(&app_conf).unwrap(),
        before,
        "{scenario}: the exact bytes"
    );
    let mut last = 200;
    for _ in 0..50 {
        last = status();
        if broken(last) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        broken(last),
        "{scenario}: after undo nginx runs the old config again (got {last})"
    );
}

#[test]
fn header_too_big_is_fixed_by_raising_the_buffers_and_undone() {
    edit_round_trip(
        "header-too-big",
        &[
            "+    proxy_buffer_size 32k;",
            "proxy_busy_buffers_size 64k;",
        ],
    );
}

#[test]
fn http_to_a_tls_port_is_fixed_by_the_scheme_and_undone() {
    edit_round_trip(
        "http-to-tls",
        &["-    proxy_pass \"http://", "+    proxy_pass \"https://"],
    );
}

#[test]
fn https_to_a_plain_port_is_fixed_by_the_scheme_and_undone() {
    edit_round_trip(
        "https-to-plain",
        &["-    proxy_pass \"https://", "+    proxy_pass \"http://"],
    );
}

/// The causes whose fix is never automatic (a slow app, TLS verification, keep-alive idle
/// times): `--apply` edits no file; at most nginx-side commands are planned.
#[test]
fn never_automatic_causes_change_no_file_with_apply() {
    for scenario in [
        "read-timeout",
        "tls-verify",
        "keepalive-race",
        "upstream-502",
    ] {
        let Some(lab) = lab(scenario) else {
            return;
        };
        let state = tempfile::tempdir().expect("a state dir");
        let files = |dir: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
            let mut all: Vec<_> = std::fs::read_dir(dir.join("conf"))
                .unwrap()
                .flatten()
                .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
                .collect();
            all.sort();
            all
        };
        let before = files(lab.dir());
        let (_, report) = super::harness::run_json_journalled(&lab, state.path(), &["--apply"]);
        assert!(
            report["actions"]
                .as_array()
                .is_none_or(|a| a.iter().all(|x| x["kind"] != "edit")),
            "{scenario}: no edit may be planned: {report:#}"
        );
        assert_eq!(
            files(lab.dir()),
            before,
            "{scenario}: --apply changed a config file"
        );
        assert!(
            std::fs::read_dir(state.path()).map_or(true, |mut d| d.next().is_none()),
            "{scenario}: nothing journalled"
        );
    }
}

#[test]
fn an_app_on_ipv6_loopback_is_fixed_by_pointing_nginx_there_and_undone() {
    edit_round_trip("wrong-address", &["+    proxy_pass \"http://[::1]:"]);
}

#[test]
fn a_php_fpm_pool_on_another_port_is_fixed_by_pointing_fastcgi_pass_there_and_undone() {
    edit_round_trip(
        "wrong-port",
        &[
            "-    fastcgi_pass 127.0.0.1:",
            "+    fastcgi_pass 127.0.0.1:",
        ],
    );
}

#[test]
fn an_app_on_another_interface_is_fixed_by_pointing_nginx_there_and_undone() {
    edit_round_trip("wrong-interface", &["+    proxy_pass \"http://127.0.0.2:"]);
}

/// A failing edit: the http block sets `proxy_temp_file_write_size 8k`, which nginx requires
/// to be at least the buffers the edit raises, so `nginx -t` rejects the edit. It is rolled
/// back to the exact bytes, nginx is not reloaded, nothing is left fixed, and the run exits
/// 4.
#[test]
fn an_edit_nginx_rejects_is_rolled_back_to_the_exact_bytes() {
    let Some(lab) = lab("header-too-big") else {
        return;
    };
    let state = tempfile::tempdir().expect("a state dir");
    // The http block gets the directive, and the running nginx is reloaded to run it.
    let main = lab.config().to_path_buf();
    let text = std::fs::read_to_string(&main).expect("read nginx.conf");
    let with = text.replacen("http {", "http {\n    proxy_temp_file_write_size 8k;", 1);
    assert_ne!(text, with, "the lab's nginx.conf has an http block");
    std::fs::write(&main, with).expect("write nginx.conf");
    let master = lab.master_pid().expect("the lab's nginx runs");
    let children = || {
        std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default()
    };
    let workers = children();
    let reload = std::process::Command::new(super::nginx_t::NGINX)
        .arg("-p")
        .arg(lab.dir())
        .arg("-c")
        .arg(&main)
        .args(["-s", "reload"])
        .output()
        .expect("reload the lab's nginx");
    assert!(reload.status.success(), "{reload:?}");
    for _ in 0..100 {
        if children() != workers && !children().trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_ne!(children(), workers, "the lab's nginx did not reload");
    let app_conf = lab.dir().join("conf/app.conf");
    let before = std::fs::read(&app_conf).expect("read the site file");
    assert_eq!(lab.request("/").unwrap(), 502);

    let (out, report) = super::harness::run_json_journalled(&lab, state.path(), &["--apply"]);
    assert_eq!(out.status.code(), Some(4), "{report:#}");
    let action = &report["actions"][0];
    assert_eq!(action["kind"], "edit", "{report:#}");
    assert_eq!(action["status"], "rolled-back", "{report:#}");
    assert!(
        report.to_string().contains("proxy_temp_file_write_size"),
        "the report quotes nginx -t's reason: {report:#}"
    );
    assert_eq!(
        std::fs::read(&app_conf).unwrap(),
        before,
        "rolled back to the exact bytes"
    );
    assert!(
        super::harness::causes(&report).contains(&"upstream-header-too-big".to_owned()),
        "the cause is still diagnosed: {report:#}"
    );
    assert_eq!(
        lab.request("/").unwrap(),
        502,
        "nothing changed for clients"
    );
}

#[test]
fn tls_without_the_sni_the_app_requires_is_fixed_by_proxy_ssl_server_name_and_undone() {
    edit_round_trip("tls-needs-sni", &["+    proxy_ssl_server_name on;"]);
}

#[test]
fn a_name_nginx_resolved_before_the_app_moved_is_looked_up_again_by_a_reload() {
    // Needs root (the lab's nginx has an /etc/hosts of its own); the lab skips without it.
    let Some(lab) = lab("stale-dns") else {
        return;
    };
    assert_eq!(
        lab.request("/").unwrap(),
        502,
        "the lab gives its 502 first"
    );
    let (out, report) = run_json(&lab, &[]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let planned = &report["actions"][0];
    assert_eq!(planned["kind"], "reload", "{report:#}");
    assert_eq!(planned["cause"], "upstream-stale-dns", "{report:#}");
    assert_eq!(lab.request("/").unwrap(), 502, "no --apply, no reload");
    let (out, report) = run_json(&lab, &["--apply"]);
    assert_eq!(report["actions"][0]["status"], "verified", "{report:#}");
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(
        lab.request("/").unwrap(),
        200,
        "nginx looked the name up again"
    );
}
