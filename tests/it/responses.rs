//! The response-side scenarios: the upstream accepts the connection, then answers badly or
//! in another protocol. Each names the right top cause and upstream (via `check`), and the
//! measured evidence and the directive to change.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scenarios::check;

/// The top diagnosis: (summary, fix lines joined, evidence joined).
fn top(report: &Value) -> (String, String, String) {
    let d = &report["diagnosis"][0];
    let join = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    (
        d["summary"].as_str().unwrap_or_default().to_owned(),
        join(&d["fix"]),
        join(&d["evidence"]),
    )
}

#[test]
fn closed_early() {
    check("closed-early");
}

#[test]
fn reset() {
    check("reset");
}

#[test]
fn header_too_big_names_the_size_and_a_fix_that_works() {
    let Some((lab, report)) = check("header-too-big") else {
        return;
    };
    let bytes = lab
        .info()
        .upstream_header_bytes()
        .expect("scenario knows its size");
    let (summary, fix, _) = top(&report);
    assert!(summary.contains(&format!("{bytes} bytes")), "{summary}");
    assert!(summary.contains("proxy_buffer_size"), "{summary}");
    let app_conf = lab.prefix().join("conf/app.conf");
    assert!(
        fix.contains(&format!("{}:", app_conf.display())),
        "fix must point at the pass directive's file:line: {fix}"
    );
    let directives = fix
        .split('`')
        .find(|part| part.starts_with("proxy_buffer_size "))
        .unwrap_or_else(|| panic!("no directive to set in {fix}"));

    // Applying exactly that fix makes nginx -t pass and the 502 go away.
    let text = std::fs::read_to_string(&app_conf).expect("read app.conf");
    let fixed = text.replacen("proxy_pass ", &format!("{directives}\n    proxy_pass "), 1);
    std::fs::write(&app_conf, fixed).expect("write app.conf");
    let test = lab.test_config().expect("nginx -t runs");
    assert!(test.ok, "nginx -t rejects the suggested fix: {test:?}");
    let reload = Command::new(lab.nginx_binary())
        .arg("-p")
        .arg(format!("{}/", lab.prefix().display()))
        .arg("-c")
        .arg(lab.config())
        .args(["-s", "reload"])
        .output()
        .expect("reload");
    assert!(reload.status.success(), "{reload:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = lab.request("/").expect("request");
    while status != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        status = lab.request("/").expect("request");
    }
    assert_eq!(status, 200, "the suggested buffer size did not fix the 502");
}

#[test]
fn invalid_header_shows_the_byte_and_offset() {
    let Some((_lab, report)) = check("invalid-header") else {
        return;
    };
    let (summary, _, _) = top(&report);
    assert!(
        summary.contains("0x00") && summary.contains("offset"),
        "{summary}"
    );
}

/// The fix of a protocol mismatch names the directive to use instead.
fn mismatch_names(name: &str, directive: &str) {
    let Some((_lab, report)) = check(name) else {
        return;
    };
    let (_, fix, _) = top(&report);
    assert!(fix.contains(directive), "{name}: no `{directive}` in {fix}");
}

#[test]
fn https_to_plain_says_use_http() {
    mismatch_names("https-to-plain", "proxy_pass http://");
}

#[test]
fn http_to_tls_says_use_https() {
    mismatch_names("http-to-tls", "proxy_pass https://");
}

#[test]
fn proxy_to_php_fpm_says_use_fastcgi_pass() {
    mismatch_names("proxy-to-fastcgi", "fastcgi_pass ");
}

#[test]
fn fastcgi_to_http_says_use_proxy_pass() {
    mismatch_names("fastcgi-to-http", "proxy_pass http://");
}

#[test]
fn tls_verify_names_the_trusted_certificate() {
    let Some((_lab, report)) = check("tls-verify") else {
        return;
    };
    let (summary, fix, evidence) = top(&report);
    assert!(summary.contains("self-signed"), "{summary}");
    assert!(fix.contains("proxy_ssl_trusted_certificate"), "{fix}");
    assert!(evidence.contains("certificate 0:"), "{evidence}");
}

#[test]
fn php_fpm_killed_points_at_request_terminate_timeout() {
    let Some((lab, report)) = check("php-fpm-killed") else {
        return;
    };
    let (_, fix, evidence) = top(&report);
    let conf = lab.prefix().join("conf/php-fpm.conf");
    assert!(
        fix.contains("request_terminate_timeout = 1s") && fix.contains(&conf.display().to_string()),
        "{fix}"
    );
    assert!(evidence.contains("execution timed out"), "{evidence}");
}

#[test]
fn read_timeout_is_a_504() {
    let Some((_lab, report)) = check("read-timeout") else {
        return;
    };
    assert_eq!(report["diagnosis"][0]["http_status"], 504);
}

#[test]
fn upstream_502_is_relayed_not_made() {
    check("upstream-502");
}

#[test]
fn keepalive_race() {
    let Some((_lab, report)) = check("keepalive-race") else {
        return;
    };
    let (_, fix, evidence) = top(&report);
    assert!(evidence.contains("keepalive 8"), "{evidence}");
    assert!(fix.contains("keepalive_timeout"), "{fix}");
}
