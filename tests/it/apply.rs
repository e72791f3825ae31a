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

/// `upstream-header-too-big`, acted on: the plan shows the edit as a diff and changes
/// nothing; `--apply` writes it (journalled, gated by `nginx -t`), reloads, and proves it by
/// a request through nginx (502 → 200, exit 0); `fix502 undo` restores the exact bytes and
/// the 502 comes back.
#[test]
fn header_too_big_is_fixed_by_an_edit_and_undone() {
    let Some(lab) = lab("header-too-big") else {
        return;
    };
    let state = tempfile::tempdir().expect("a state dir");
    let app_conf = lab.dir().join("conf/app.conf");
    let before = std::fs::read(&app_conf).expect("read the site file");
    assert_eq!(
        lab.request("/").unwrap(),
        502,
        "the lab gives its 502 first"
    );
    let run = |args: &[&str]| {
        let out = super::harness::bin()
            .env("FIX502_STATE_DIR", state.path())
            .args(["--non-interactive", "--json", "--config"])
            .arg(lab.config())
            .args(args)
            .output()
            .expect("run fix502");
        let report = super::harness::parse_report(&out);
        (out, report)
    };

    // Planned only: the diff is shown, the file is untouched.
    let (out, report) = run(&[]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let planned = &report["actions"][0];
    assert_eq!(planned["kind"], "edit", "{report:#}");
    assert_eq!(planned["status"], "planned", "{report:#}");
    let diff = planned["diff"].as_str().unwrap_or_default();
    assert!(
        diff.contains("+    proxy_buffer_size 32k;")
            && diff.contains("proxy_busy_buffers_size 64k;"),
        "{diff}"
    );
    assert_eq!(
        std::fs::read(&app_conf).unwrap(),
        before,
        "no --apply, no change"
    );
    assert_eq!(lab.request("/").unwrap(), 502);

    // Applied: journalled, verified through nginx, the verdict follows.
    let (out, report) = run(&["--apply"]);
    let action = &report["actions"][0];
    assert_eq!(action["status"], "verified", "{report:#}");
    let id = action["journal_id"]
        .as_str()
        .expect("a journal id")
        .to_owned();
    assert!(action["backup"].as_str().is_some(), "{report:#}");
    assert_eq!(out.status.code(), Some(0), "fixed and verified: {report:#}");
    assert!(
        report["diagnosis"].as_array().is_some_and(Vec::is_empty),
        "{report:#}"
    );
    assert_eq!(
        lab.request("/").unwrap(),
        200,
        "the edit lets the header through"
    );

    // Undone: the exact bytes back, and the 502 with them.
    let out = super::harness::bin()
        .env("FIX502_STATE_DIR", state.path())
        .args(["undo", &id])
        .output()
        .expect("run fix502 undo");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&app_conf).unwrap(), before, "the exact bytes");
    let mut status = 0;
    for _ in 0..50 {
        status = lab.request("/").unwrap();
        if status == 502 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 502, "after undo nginx runs the old config again");
}
