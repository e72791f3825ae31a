//! `--url`: the binary routes the URL through the config as nginx would, prints the chain
//! (server → location → pass directive → upstream → peers), and narrows the diagnosis to it.

use std::net::TcpListener;

use serde_json::Value;

use super::harness::{bin, causes, findings, parse_report, write};

/// A config with two servers; `shop.test` sends `/api/` to `api` and everything else to
/// `web`, through an upstream group in an included file.
fn shop_config(dir: &std::path::Path, api: &str, web: &str) -> std::path::PathBuf {
    let main = dir.join("nginx.conf");
    write(
        &main,
        &format!(
            "events {{}}\n\
             http {{\n\
             \x20   include {dir}/upstreams.conf;\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:18080 default_server;\n\
             \x20       server_name other.test;\n\
             \x20       location / {{ return 404; }}\n\
             \x20   }}\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:18080;\n\
             \x20       server_name shop.test www.shop.test;\n\
             \x20       location / {{ proxy_pass http://{web}; }}\n\
             \x20       location /api/ {{\n\
             \x20           proxy_read_timeout 7s;\n\
             \x20           proxy_pass http://api_backend;\n\
             \x20       }}\n\
             \x20       location = /health {{ return 200; }}\n\
             \x20   }}\n\
             }}\n",
            dir = dir.display()
        ),
    );
    write(
        &dir.join("upstreams.conf"),
        &format!("upstream api_backend {{\n    server {api};\n}}\n"),
    );
    main
}

fn run(config: &std::path::Path, url: &str) -> Value {
    let out = bin()
        .args(["--non-interactive", "--json", "--config"])
        .arg(config)
        .args(["--url", url])
        .output()
        .expect("run fix502");
    parse_report(&out)
}

fn route_message(report: &Value) -> String {
    findings(report, "config")
        .iter()
        .find(|f| f["check"] == "config.route")
        .and_then(|f| f["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A port nothing listens on (bound, then released) and a listener that accepts.
fn ports() -> (String, TcpListener) {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = closed.local_addr().unwrap().to_string();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    (closed, open)
}

#[test]
fn url_prints_the_chain_and_narrows_the_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let (api, web) = ports();
    let web = web.local_addr().unwrap().to_string();
    let config = shop_config(dir.path(), &api, &web);

    let report = run(&config, "http://shop.test:18080/api/orders?id=1");
    let chain = route_message(&report);
    assert!(
        chain.contains("server shop.test (")
            && chain.contains("location /api/ (:")
            && chain.contains("proxy_pass http://api_backend (:")
            && chain.contains("upstream api_backend (")
            && chain.ends_with(&format!("{api} (:2)")),
        "{chain}"
    );
    let found = causes(&report);
    assert!(found.iter().any(|c| c == "upstream-refused"), "{found:?}");
    let refused = report["diagnosis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["cause"] == "upstream-refused")
        .unwrap();
    assert!(
        refused["evidence"][0]
            .as_str()
            .unwrap()
            .starts_with("route: server shop.test"),
        "{refused:#}"
    );

    // The same config, a URL served by the other location: the dead API is out of scope.
    let report = run(&config, "http://www.shop.test:18080/static/app.css");
    assert!(route_message(&report).contains(&format!("proxy_pass http://{web}")));
    assert!(
        !causes(&report).iter().any(|c| c == "upstream-refused"),
        "{report:#}"
    );

    // A URL nginx answers itself; the public port (80) is not nginx's: routed by name.
    let report = run(&config, "http://shop.test/health");
    let msg = route_message(&report);
    assert!(
        msg.contains("location = /health") && msg.contains("answers it itself"),
        "{msg}"
    );
    let route = findings(&report, "config")
        .iter()
        .find(|f| f["check"] == "config.route")
        .unwrap();
    assert!(
        route["evidence"][0]
            .as_str()
            .unwrap()
            .contains("no server listens on port 80"),
        "{route:#}"
    );
    // ...and no upstream is probed or blamed for it, although the API is down.
    assert!(
        report["diagnosis"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["upstream"].is_null()),
        "{report:#}"
    );
    assert!(
        findings(&report, "upstream").iter().any(|f| f["message"]
            == "the --url is served by nginx itself (no pass directive handles it): no upstream to check"),
        "{report:#}"
    );
    assert!(
        !findings(&report, "upstream")
            .iter()
            .any(|f| f["check"] == "upstream.tcp-connect"),
        "{report:#}"
    );

    // Another Host goes to the default server.
    let report = run(&config, "http://unknown.test:18080/api/");
    assert!(
        route_message(&report).contains("server other.test"),
        "{report:#}"
    );
}

#[test]
fn a_malformed_url_is_a_usage_error() {
    let out = bin()
        .args(["--non-interactive", "--url", "http://[::1/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // One line says what is wrong; clap's hint follows it.
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert!(lines[0].contains("unclosed '['"), "{stderr}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.starts_with("For more information")),
        "{stderr}"
    );
}

#[test]
fn human_report_shows_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (api, web) = ports();
    let config = shop_config(dir.path(), &api, &web.local_addr().unwrap().to_string());
    let out = bin()
        .args(["--non-interactive", "--width", "1000", "--config"])
        .arg(&config)
        .args(["--url", "http://shop.test:18080/api/x"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("location /api/") && text.contains("→ upstream api_backend"),
        "{text}"
    );
}
