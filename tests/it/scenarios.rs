//! Every lab scenario, diagnosed by the binary: top cause, upstream, the other expected
//! causes, and the exit code (the lab's one check, `Expectation::check`), as
//! docs/command-line.md and docs/json-report.md promise them to scripts.

use super::harness::{causes, check_expectation, lab, run_json, top_text};

/// Runs the binary on scenario `name` and checks the contract's promises; returns the
/// running lab and the report for more checks.
pub(super) fn check(name: &str) -> Option<(fix502_lab::Lab, serde_json::Value)> {
    let lab = lab(name)?;
    let (out, report) = run_json(&lab, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Err(e) = check_expectation(&lab, &report, out.status.code()) {
        panic!("{name}: {e}; stderr {stderr}; report {report:#}");
    }
    // The contract's shape.
    assert_eq!(report["schema_version"], 1);
    let steps: Vec<_> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["logs", "upstream", "config", "network", "restart"]);
    assert_eq!(
        report["nginx"]["config"].as_str(),
        Some(lab.config().to_str().unwrap())
    );
    assert!(
        stderr.trim().is_empty(),
        "{name}: --json run wrote to stderr: {stderr}"
    );
    if let Err(e) = calibrated(&report) {
        panic!("{name}: {e}; report {report:#}");
    }
    Some((lab, report))
}

/// The confidence follows the evidence (docs/causes.md, "How sure"): no diagnosis is surer
/// than the kinds of its findings allow (nginx's log, a live check now, the config or nginx's
/// own verdict), and the causes that are not consequences come surest first.
fn calibrated(report: &serde_json::Value) -> Result<(), String> {
    use fix502_core::causes::{Cause, Support};
    let diagnosis = report["diagnosis"].as_array().cloned().unwrap_or_default();
    let findings: Vec<serde_json::Value> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["severity"] != "info" && f["could_not_check"] != true)
        .collect();
    let host = |u: &serde_json::Value| {
        u.as_str()
            .map(|u| u.rsplit_once(':').map_or(u, |(h, _)| h).to_owned())
    };
    let mut last: Option<f64> = None;
    for d in &diagnosis {
        let id = d["cause"].as_str().unwrap_or_default();
        let cause = Cause::parse(id).ok_or_else(|| format!("{id} is no cause"))?;
        let mut related: Vec<Cause> = vec![cause];
        related.extend(cause.entry().absorbs);
        if cause == Cause::UPSTREAM_KEEPALIVE_RACE {
            related.extend([Cause::UPSTREAM_CLOSED_EARLY, Cause::UPSTREAM_RESET]);
        }
        let mut support = Support::default();
        for f in &findings {
            let Some(fc) = f["cause"].as_str().and_then(Cause::parse) else {
                continue;
            };
            let same_upstream = f["upstream"].is_null()
                || d["upstream"].is_null()
                || f["upstream"] == d["upstream"]
                || host(&f["upstream"]) == host(&d["upstream"])
                || cause == Cause::CONFIG_NOT_RELOADED;
            // A config nginx did not reload takes over the failures at the addresses only
            // the old config has, whatever their cause.
            let taken_over = cause == Cause::CONFIG_NOT_RELOADED;
            if !(related.contains(&fc) || taken_over) || !same_upstream {
                continue;
            }
            let check = f["check"].as_str().unwrap_or_default();
            if check.starts_with("logs.") {
                support.log = true;
            } else if check.starts_with("config.") {
                support.config = true;
            } else {
                support.live = true;
            }
        }
        let level = (cause.entry().confidence)(support.level(false), support);
        let confidence = d["confidence"].as_f64().unwrap_or(1.0);
        if confidence > level + 1e-9 {
            return Err(format!(
                "{id} at {confidence} is surer than its evidence allows ({level}, {support:?})"
            ));
        }
        if !cause.entry().consequence {
            if last.is_some_and(|l| confidence > l + 1e-9) {
                return Err(format!(
                    "{id} at {confidence} ranks below a less sure cause"
                ));
            }
            last = Some(confidence);
        }
    }
    Ok(())
}

#[test]
fn healthy_has_empty_diagnosis_and_exit_0() {
    check("healthy");
}

#[test]
fn refused() {
    check("refused");
}

#[test]
fn wrong_address() {
    check("wrong-address");
}

#[test]
fn unix_socket_missing() {
    check("unix-socket-missing");
}

#[test]
fn unix_socket_permission_needs_root() {
    check("unix-socket-permission");
}

#[test]
fn no_live_upstreams_ranks_below_its_cause() {
    check("no-live-upstreams");
    let Some(lab) = lab("no-live-upstreams") else {
        return;
    };
    let (_, report) = run_json(&lab, &[]);
    let found = causes(&report);
    let nolive = found
        .iter()
        .position(|c| c == "no-live-upstreams")
        .expect("no-live-upstreams");
    let refused = found
        .iter()
        .position(|c| c == "upstream-refused")
        .expect("upstream-refused");
    assert!(refused < nolive, "{found:?}");
    let d = &report["diagnosis"][nolive];
    assert_eq!(d["upstream"], "backend");
    assert_eq!(d["http_status"], 502);
}

#[test]
fn nginx_not_running() {
    check("nginx-not-running");
}

#[test]
fn config_invalid_names_file_and_line() {
    check("config-invalid");
    let Some(lab) = lab("config-invalid") else {
        return;
    };
    let (_, report) = run_json(&lab, &[]);
    let config_findings = super::harness::findings(&report, "config");
    let f = config_findings
        .iter()
        .find(|f| f["cause"] == "config-invalid")
        .expect("config-invalid finding");
    assert!(
        f["location"]["file"]
            .as_str()
            .unwrap()
            .ends_with("conf/app.conf"),
        "{f}"
    );
    assert!(f["location"]["line"].as_u64().unwrap() > 0);
}

#[test]
fn one_step_only_skips_the_others() {
    let Some(lab) = lab("refused") else { return };
    let (out, report) = run_json(&lab, &["--step", "logs"]);
    assert_eq!(out.status.code(), Some(1));
    let statuses: Vec<_> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["fail", "skipped", "skipped", "skipped", "skipped"]
    );
    // Only the log saw it: less sure than with the live probe.
    let c = report["diagnosis"][0]["confidence"].as_f64().unwrap();
    assert!(c < 0.9, "{c}");
}

#[test]
fn old_errors_outside_the_window_are_not_today_s_diagnosis() {
    let Some(lab) = lab("healthy") else { return };
    let month_ago = jiff::ZonedDateTime::now()
        .checked_sub(jiff::Span::new().days(30))
        .unwrap()
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string();
    let old = format!(
        "{month_ago} [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: x, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:1/\", host: \"x\"\n"
    );
    std::fs::write(lab.error_log(), old).unwrap();
    let (out, report) = run_json(&lab, &["--since", "15m"]);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let (out, report) = run_json(&lab, &["--since", "60d"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(
        causes(&report).first().map(String::as_str),
        Some("upstream-refused")
    );
}

#[test]
fn human_report_ends_in_the_verdict_and_fits_80_columns_when_piped() {
    let Some(lab) = lab("refused") else { return };
    let out = super::harness::bin()
        .args(["--non-interactive", "--config"])
        .arg(lab.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    // The verdict is the last paragraph (wrapped like every line).
    let last = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
    assert!(last.starts_with("Likely cause: upstream-refused"), "{text}");
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 when piped: {line:?}"
        );
    }
    assert!(
        text.contains("Error logs")
            && text.contains("Upstream status")
            && text.contains("Diagnosis"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "NO_COLOR must give plain text");
}

#[test]
fn lab_subcommand_runs_a_scenario_and_tears_it_down() {
    let out = super::harness::bin()
        .args(["lab", "run", "refused", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = super::harness::parse_report(&out);
    assert_eq!(
        causes(&report).first().map(String::as_str),
        Some("upstream-refused")
    );
    let pid = report["nginx"]["master_pid"].as_u64().expect("master pid");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || !fix502_lab::process_running(pid as u32),
        "lab nginx {pid} left running"
    );
    let list = super::harness::bin()
        .args(["lab", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    for s in fix502_lab::scenarios() {
        assert!(text.contains(s.name), "{text}");
    }
}

#[test]
fn several_masters_without_config_exit_3_listing_them() {
    let (Some(a), Some(b)) = (lab("healthy"), lab("refused")) else {
        return;
    };
    let out = super::harness::bin().arg("--json").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    super::harness::assert_not_started(&out);
    for lab in [&a, &b] {
        let pid = lab.master_pid().expect("running");
        assert!(err.contains(&format!("pid {pid}")), "{err}");
    }
    assert!(err.contains("--config"), "{err}");
    // Naming the config picks its master.
    let (out, report) = run_json(&b, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        report["nginx"]["master_pid"].as_u64(),
        b.master_pid().map(u64::from)
    );
    assert_eq!(report["nginx"]["discovered_via"]["config"], "--config");
}

#[test]
fn the_lab_expects_only_causes_of_the_cause_table() {
    for s in fix502_lab::scenarios() {
        for cause in s.expect.causes() {
            assert!(
                fix502_core::causes::Cause::parse(cause).is_some(),
                "{}: {cause} is not a cause id",
                s.name
            );
        }
    }
}

/// No diagnosis of a busy host names one of its healthy members (the lab's other sites' apps
/// and pools), and none says the app moved: the decoy, the neighbouring ports and the other
/// pools are hints at most.
fn blames_no_healthy_member(lab: &fix502_lab::Lab, report: &serde_json::Value) {
    let healthy = lab.healthy_upstreams();
    assert!(
        !healthy.is_empty(),
        "{}: no healthy members",
        lab.info().name
    );
    for d in report["diagnosis"].as_array().into_iter().flatten() {
        let upstream = d["upstream"].as_str().unwrap_or_default();
        assert!(
            !healthy.iter().any(|h| h == upstream),
            "{}: {} names the healthy {upstream}; report {report:#}",
            lab.info().name,
            d["cause"]
        );
        assert_ne!(
            d["cause"],
            "upstream-wrong-address",
            "{}: {report:#}",
            lab.info().name
        );
    }
}

#[test]
fn busy_host_one_down() {
    let Some((lab, report)) = check("busy-host-one-down") else {
        return;
    };
    blames_no_healthy_member(&lab, &report);
}

#[test]
fn busy_host_healthy() {
    let Some((lab, report)) = check("busy-host-healthy") else {
        return;
    };
    blames_no_healthy_member(&lab, &report);
}

/// The top diagnosis carries the app server's own reason: each of `wanted` is in its
/// summary, evidence or fix.
fn explained(report: &serde_json::Value, wanted: &[&str]) {
    let text = top_text(report);
    for w in wanted {
        assert!(
            text.contains(w),
            "{w:?} is not in the top diagnosis: {text}"
        );
    }
}

#[test]
fn php_fpm_saturated() {
    let Some((lab, report)) = check("php-fpm-saturated") else {
        return;
    };
    let conf = lab.prefix().join("conf/php-fpm.conf");
    explained(
        &report,
        &[
            "server reached pm.max_children setting (1)",
            &format!("pm.max_children = 1 ({}:", conf.display()),
            &format!("listen.backlog = 1 ({}:", conf.display()),
            "came in minutes when the pool was full",
        ],
    );
}

#[test]
fn php_fpm_allowed_clients() {
    let Some((lab, report)) = check("php-fpm-allowed-clients") else {
        return;
    };
    let conf = lab.prefix().join("conf/php-fpm.conf");
    explained(
        &report,
        &[
            "nginx connects from 127.0.0.1, so the pool drops them",
            &format!(
                "Add 127.0.0.1 to listen.allowed_clients = 127.0.0.2 ({}:",
                conf.display()
            ),
            "Connection disallowed: IP address '127.0.0.1' has been dropped",
        ],
    );
}

#[test]
fn uwsgi_http_socket() {
    let Some((_lab, report)) = check("uwsgi-http-socket") else {
        return;
    };
    explained(
        &report,
        &[
            "with http-socket (HTTP), but nginx speaks uwsgi to it",
            "http-socket = 127.0.0.1:",
            "upstream timed out",
        ],
    );
}

#[test]
fn php_fpm_stale_socket() {
    let Some((lab, report)) = check("php-fpm-stale-socket") else {
        return;
    };
    blames_no_healthy_member(&lab, &report);
    // The spare pool, the only unused PHP-FPM on the host, is shown as a hint only.
    let hinted = super::harness::findings(&report, "upstream")
        .iter()
        .any(|f| {
            f["check"] == "upstream.listeners"
                && f["severity"] == "warning"
                && f["message"].as_str().is_some_and(|m| {
                    m.contains("the socket file left behind says the app that served it died")
                })
        });
    assert!(hinted, "{report:#}");
}
