//! A read-only run runs no application logic it was not asked to and quotes no secret: the
//! probes send the location's path (no logged request, no query string, no credential), the
//! FastCGI probe runs no PHP script, and query values in the logged lines are redacted in
//! the human report and the JSON alike.

use super::harness::{bin, lab, run_json};

#[test]
fn a_logged_request_is_neither_replayed_nor_quoted() {
    let Some(lab) = lab("closed-early") else {
        return;
    };
    let secret = "tok-5f3a9c";
    let logged = format!("/account/delete?id=1&token={secret}");
    // nginx sends it to the app (which closes early) and logs the failure with it.
    let _ = lab.request(&logged);
    let before = lab.requests_seen().len();
    let (out, report) = run_json(&lab, &[]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let probed: Vec<String> = lab.requests_seen().split_off(before);
    assert!(!probed.is_empty(), "the probe spoke to the app");
    // The HTTP probe asks for the location's path; the protocol sniff sends `GET /` and
    // the HTTP/2 preface (`PRI *`).
    assert!(
        probed
            .iter()
            .all(|line| line.starts_with("GET / HTTP/1.") || line == "PRI * HTTP/2.0"),
        "the probe asked only for the location's path: {probed:?}"
    );
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(!json.contains(secret), "the JSON quotes the token: {json}");
    assert!(
        json.contains("/account/delete?id=…&token=…"),
        "the request is still shown, its values redacted"
    );
    let human = bin()
        .args(["--non-interactive", "--config"])
        .arg(lab.config())
        .output()
        .expect("run fix502");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        !text.contains(secret),
        "the report quotes the token: {text}"
    );
}

#[test]
fn the_fastcgi_probe_runs_no_php_script() {
    let Some(lab) = lab("php-fpm-killed") else {
        return;
    };
    let log = lab.app_log().expect("php-fpm log").to_path_buf();
    let kills = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("execution timed out")
            .count()
    };
    // php-fpm logs the kill of the lab's own request around when nginx logs the reset the
    // lab waits for; on a loaded machine it may come a moment later (bounded wait).
    let waited = std::time::Instant::now();
    while kills() == 0 && waited.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let before = kills();
    assert!(before >= 1, "the lab's own request was killed");
    let (_, report) = run_json(&lab, &[]);
    // The script sleeps past request_terminate_timeout: had the probe run it, php-fpm would
    // have killed it again by now.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(kills(), before, "the probe ran the PHP script");
    let sent: Vec<&str> = report["steps"][1]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "upstream.response")
        .flat_map(|f| f["evidence"].as_array().unwrap())
        .filter_map(|e| e.as_str())
        .filter(|e| e.starts_with("sent: "))
        .collect();
    assert!(
        sent.iter()
            .all(|s| s.contains("php-fpm's own page /fpm-ping (runs no script)")),
        "{sent:?}"
    );
    // The killed script in php-fpm's log still names the cause.
    assert_eq!(report["diagnosis"][0]["cause"], "upstream-closed-early");
}

#[test]
fn a_log_that_links_to_a_secret_file_is_skipped_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("shadow");
    std::fs::write(&secret, "root:$6$s3cr3thash:19000:0:99999:7:::\n").unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("logs/error.log")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("logs/access.log")).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        "error_log logs/error.log;\nevents {}\nhttp { access_log logs/access.log; server { listen 127.0.0.1:1; location / { proxy_pass http://127.0.0.1:9; } } }\n",
    )
    .unwrap();
    for extra in [&[][..], &["--error-log", secret.to_str().unwrap()][..]] {
        let out = bin()
            .args(["--json", "--step", "logs", "--prefix"])
            .arg(dir.path())
            .arg("--config")
            .arg(dir.path().join("nginx.conf"))
            .args(extra)
            .output()
            .expect("run fix502");
        let json = String::from_utf8_lossy(&out.stdout);
        assert!(!json.contains("s3cr3thash"), "the secret is shown: {json}");
        if extra.is_empty() {
            assert!(
                json.contains("outside the places logs are"),
                "the skipped log is named: {json}"
            );
        }
    }
}
