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
fn http2_goaway_names_the_draining_grpc_server() {
    let Some((_lab, report)) = check("http2-goaway") else {
        return;
    };
    let (summary, fix, evidence) = top(&report);
    assert!(summary.contains("GOAWAY"), "{summary}");
    assert!(fix.contains("grpc_next_upstream"), "{fix}");
    assert!(
        evidence.contains("upstream sent goaway with error 0"),
        "{evidence}"
    );
}

#[test]
fn other_http2_errors_are_not_goaway() {
    // Near miss: an HTTP/2 upstream that refuses the stream (RST_STREAM, REFUSED_STREAM) is
    // an invalid answer, not a GOAWAY; a frame too large is another protocol.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp { server { listen 127.0.0.1:1; location / { grpc_pass grpc://127.0.0.1:9; } } }\n",
    )
    .unwrap();
    let log = dir.path().join("error.log");
    let now = jiff::ZonedDateTime::now()
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string();
    let line = |message: &str, port: u16| {
        format!(
            "{now} [error] 7#7: *1 {message} while reading response header from upstream, client: 127.0.0.1, server: _, request: \"POST /svc/Call HTTP/2.0\", upstream: \"grpc://127.0.0.1:{port}\", host: \"x\"\n"
        )
    };
    // Two upstreams, or the mismatch would explain (absorb) the invalid answer.
    let text = line("upstream rejected request with error 7", 9)
        + &line("upstream sent too large http2 frame: 4740180", 10);
    std::fs::write(&log, text).unwrap();
    let out = super::harness::bin()
        .args(["--json", "--step", "logs", "--config"])
        .arg(&conf)
        .arg("--error-log")
        .arg(&log)
        .output()
        .unwrap();
    let report = super::harness::parse_report(&out);
    let found = super::harness::causes(&report);
    assert!(
        !found.iter().any(|c| c == "upstream-http2-goaway"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|c| c == "upstream-invalid-response"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|c| c == "upstream-protocol-mismatch"),
        "{found:?}"
    );
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

/// Access-log findings that claim the upstream answered 502 itself.
fn silent_502s(report: &Value) -> usize {
    super::harness::findings(report, "logs")
        .iter()
        .filter(|f| f["check"] == "logs.access-log" && f["cause"] == "upstream-returned-502")
        .count()
}

#[test]
fn upstream_502_is_relayed_not_made() {
    let Some((_lab, report)) = check("upstream-502") else {
        return;
    };
    // Seen live (the probe got the app's own 502) and in the access log (502s with no
    // error-log line).
    assert_eq!(silent_502s(&report), 1, "{report:#}");
    assert_eq!(report["diagnosis"][0]["confidence"], 0.95);
}

#[test]
fn logged_502s_are_not_silent_ones() {
    // Near miss: the access log has 502s, but each has its error-log line.
    let Some((_lab, report)) = check("refused") else {
        return;
    };
    assert_eq!(silent_502s(&report), 0, "{report:#}");
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

/// A hostile upstream: what it does with each connection it accepts.
#[derive(Clone, Copy)]
enum Hostile {
    /// A status line, then header lines forever (a 100 MB header block and more).
    EndlessHeader,
    /// One byte every 50 ms, forever.
    Slowloris,
    /// 64 KiB of binary noise, then silence.
    Noise,
    /// A FastCGI record that claims 65535 content bytes and sends 10.
    LyingFastCgi,
}

/// Serves `behavior` on a loopback port until `stop` is set (each connection in its own
/// thread, every write bounded by `stop` and a 30 s ceiling).
fn hostile(
    behavior: Hostile,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::net::SocketAddr {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let stop = std::sync::Arc::clone(stop);
    std::thread::spawn(move || {
        let ceiling = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::Relaxed) && Instant::now() < ceiling {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_write_timeout(Some(Duration::from_millis(200)));
                let alive = || !stop.load(Ordering::Relaxed) && Instant::now() < ceiling;
                match behavior {
                    Hostile::EndlessHeader => {
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n");
                        let line = format!("X-Junk: {}\r\n", "a".repeat(1000));
                        while alive() {
                            if let Err(e) = conn.write_all(line.as_bytes())
                                && e.kind() != std::io::ErrorKind::WouldBlock
                                && e.kind() != std::io::ErrorKind::TimedOut
                            {
                                break;
                            }
                        }
                    }
                    Hostile::Slowloris => {
                        let bytes = b"HTTP/1.1 200 OK\r\nX-Slow: ";
                        let mut i = 0;
                        while alive() && conn.write_all(&[bytes[i % bytes.len()]]).is_ok() {
                            i += 1;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Hostile::Noise => {
                        let noise: Vec<u8> = (0..65536u32)
                            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                            .collect();
                        let _ = conn.write_all(&noise);
                        while alive() {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Hostile::LyingFastCgi => {
                        // version 1, STDOUT (6), id 1, length 0xffff, padding 0, then 10 bytes.
                        let _ = conn.write_all(&[1, 6, 0, 1, 0xff, 0xff, 0, 0]);
                        let _ = conn.write_all(b"Status: 20");
                        while alive() {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn hostile_upstreams_become_evidence_within_the_timeout() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let endless = hostile(Hostile::EndlessHeader, &stop);
    let slow = hostile(Hostile::Slowloris, &stop);
    let noise = hostile(Hostile::Noise, &stop);
    let fcgi = hostile(Hostile::LyingFastCgi, &stop);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nginx.conf");
    super::harness::write(
        &conf,
        &format!(
            "pid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\nhttp {{\n  server {{\n    listen 127.0.0.1:1;\n    location /a {{ proxy_pass http://{endless}; }}\n    location /b {{ proxy_pass http://{slow}; }}\n    location /c {{ proxy_pass http://{noise}; }}\n    location /d {{ fastcgi_pass {fcgi}; }}\n  }}\n}}\n",
            dir = dir.path().display()
        ),
    );
    let started = Instant::now();
    let mut child = super::harness::bin()
        .args([
            "--json",
            "--timeout",
            "1s",
            "--step",
            "upstream",
            "--config",
        ])
        .arg(&conf)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fix502");
    // A hang would show here: give it a generous bound, then stop it by its pid.
    let deadline = started + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let finished = child.try_wait().expect("wait").is_some();
    if !finished {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(finished, "fix502 hung on hostile upstreams");
    let report = super::harness::parse_report(&out);
    let findings = super::harness::findings(&report, "upstream");
    let about = |addr: std::net::SocketAddr, cause: &str| {
        findings.iter().any(|f| {
            f["upstream"].as_str() == Some(addr.to_string().as_str()) && f["cause"] == cause
        })
    };
    assert!(about(endless, "upstream-header-too-big"), "{report:#}");
    // 1 byte a second: slow, but nginx (proxy_read_timeout 60s by default) has not given up
    // yet when the probe does, so no timeout is claimed.
    assert!(
        findings.iter().any(|f| {
            f["upstream"].as_str() == Some(slow.to_string().as_str())
                && f["cause"].is_null()
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("not yet a timeout of nginx's"))
        }),
        "{report:#}"
    );
    assert!(about(noise, "upstream-invalid-response"), "{report:#}");
    assert!(
        findings
            .iter()
            .any(|f| f["upstream"].as_str() == Some(fcgi.to_string().as_str())),
        "{report:#}"
    );
}
