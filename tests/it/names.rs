//! The config-and-world scenarios (wrong port or interface, DNS, reloads, a half-dead group,
//! a stale address), diagnosed by the binary with `--config`, and what each diagnosis must
//! say beyond its top cause.

use serde_json::Value;

use super::harness::{findings, lab, run_json, top_text};
use super::scenarios::check;

/// The first diagnosis, as JSON.
fn top(report: &Value) -> &Value {
    &report["diagnosis"][0]
}

#[test]
fn wrong_port_finds_php_fpm_on_its_new_port() {
    let Some((lab, report)) = check("wrong-port") else {
        return;
    };
    let text = top_text(&report);
    assert!(text.contains("php-fpm"), "{text}");
    assert!(text.contains("fastcgi_pass 127.0.0.1:"), "{text}");
    // Other tests may run php-fpm pools too: the lab's is among the candidates listed.
    let pid = format!("pid {}", lab.app_pid().expect("php-fpm pid"));
    let listed = findings(&report, "upstream")
        .iter()
        .filter(|f| f["check"] == "upstream.listeners")
        .flat_map(|f| f["evidence"].as_array().unwrap().iter())
        .any(|e| e.as_str().is_some_and(|e| e.contains(&pid)));
    assert!(listed, "{pid} not among the candidates: {report:#}");
}

#[test]
fn wrong_interface_names_the_listener() {
    let Some((_lab, report)) = check("wrong-interface") else {
        return;
    };
    assert!(top_text(&report).contains("127.0.0.2:"), "{report:#}");
}

#[test]
fn nxdomain_from_the_configured_resolver() {
    let Some((_lab, report)) = check("dns-nxdomain") else {
        return;
    };
    let text = top_text(&report);
    assert!(text.contains("NXDOMAIN"), "{text}");
    assert!(text.contains("missing.lab.fix502.test"), "{text}");
}

#[test]
fn no_resolver_defined() {
    let Some((_lab, report)) = check("no-resolver") else {
        return;
    };
    let text = top_text(&report);
    assert!(text.contains("resolver"), "{text}");
}

/// One cause at one upstream is one diagnosis: the config rule (no upstream), the DNS check
/// and the log's line about the name join into one claim that names the host.
#[test]
fn a_variable_host_without_resolver_is_one_diagnosis() {
    use std::io::{Read, Write};
    let nginx = super::harness::Nginx::start(
        "error_log logs/error.log;",
        "    server {\n        listen 127.0.0.1:18067;\n        location / {\n            set $backend app.lab.fix502.test;\n            proxy_pass http://$backend;\n        }\n    }",
        std::process::Stdio::null(),
    );
    // One request through the real nginx, so that it logs its own line.
    let mut client = std::net::TcpStream::connect("127.0.0.1:18067").unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    client
        .write_all(b"GET / HTTP/1.0\r\nHost: shop.test\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let out = super::harness::bin()
        .args(["--json", "--timeout", "500ms", "--config"])
        .arg(nginx.config())
        .output()
        .unwrap();
    drop(nginx);
    let report = super::harness::parse_report(&out);
    let dns: Vec<&Value> = report["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["cause"] == "upstream-dns")
        .collect();
    assert_eq!(dns.len(), 1, "{report:#}");
    assert_eq!(dns[0]["upstream"], "app.lab.fix502.test", "{report:#}");
    let evidence = dns[0]["evidence"].to_string();
    assert!(
        evidence.contains("no resolver defined to resolve app.lab.fix502.test")
            && evidence.contains("resolves its host $backend per request"),
        "{evidence}"
    );
}

#[test]
fn config_changed_but_not_reloaded() {
    let Some((lab, report)) = check("not-reloaded") else {
        return;
    };
    assert_eq!(
        lab.request("/").expect("request"),
        502,
        "still the old config"
    );
    let text = top_text(&report);
    assert!(text.contains("app.conf"), "{text}");
    assert!(text.contains("reload"), "{text}");
}

#[test]
fn a_failed_reload_is_named_as_such() {
    let Some((_lab, report)) = check("failed-reload") else {
        return;
    };
    let reload = report["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["cause"] == "config-not-reloaded")
        .expect("config-not-reloaded");
    let summary = reload["summary"].as_str().unwrap();
    assert!(
        summary.contains("reload") && summary.contains("failed"),
        "{summary}"
    );
}

#[test]
fn one_dead_server_of_a_group_is_hidden_by_retries() {
    let Some((_lab, report)) = check("group-one-dead") else {
        return;
    };
    assert_eq!(top(&report)["http_status"], 200, "{report:#}");
}

#[test]
fn stale_dns_needs_root() {
    let Some((lab, report)) = check("stale-dns") else {
        return;
    };
    let text = top_text(&report);
    assert!(
        text.contains("127.0.0.3"),
        "the address the name has now: {text}"
    );
    assert!(text.contains("reload"), "{text}");
    drop(lab);
}

#[test]
fn effective_values_name_their_line_or_default() {
    let Some(lab) = lab("read-timeout") else {
        return;
    };
    let (_, report) = run_json(&lab, &[]);
    let effective = findings(&report, "config")
        .iter()
        .find(|f| f["check"] == "config.effective")
        .expect("config.effective finding")
        .clone();
    let lines: Vec<&str> = effective["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("proxy_read_timeout 1s (conf/app.conf:")),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"proxy_connect_timeout 60s (default)"),
        "{lines:#?}"
    );
}
