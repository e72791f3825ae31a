//! The logs step at scale and away from files: where an error log that is not a file goes,
//! the window, the rotated history, the access log's own format.

use std::process::Stdio;

use super::harness::{Nginx, bin, findings, parse_report, write};

#[test]
fn an_error_log_on_stderr_is_read_from_the_journal_or_said_where_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nginx.conf");
    write(
        &config,
        "error_log stderr;\nevents {}\nhttp {\n    server {\n        listen 127.0.0.1:18099;\n        location / { proxy_pass http://127.0.0.1:1; }\n    }\n}\n",
    );
    let out = bin()
        .args(["--non-interactive", "--json", "--step", "logs", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = parse_report(&out);
    let f = findings(&report, "logs")
        .iter()
        .find(|f| {
            f["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("error_log stderr: "))
        })
        .unwrap_or_else(|| panic!("no finding about error_log stderr: {report:#}"))
        .clone();
    let message = f["message"].as_str().unwrap();
    if fix502_core::journal_available() {
        assert!(
            message.contains("read from the systemd journal"),
            "{message}"
        );
    } else {
        assert_eq!(f["severity"], "warning", "{f:#}");
        assert!(
            message.contains("journalctl -o cat _COMM=nginx --since '"),
            "{message}"
        );
        assert!(message.contains("docker logs"), "{message}");
    }
}

/// A running nginx whose `error_log stderr` goes to `/dev/null` or to a file: the logs step
/// says where its messages go, and never reads as a pass (the real nginx, started here and
/// stopped by its pid).
#[test]
fn where_a_running_nginx_sends_its_stderr_is_said_and_is_no_pass() {
    for to_file in [false, true] {
        // A port free now (another run of the suite may hold a fixed one).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let stderr_file = dir.path().join("stderr.log");
        let stderr = if to_file {
            Stdio::from(std::fs::File::create(&stderr_file).unwrap())
        } else {
            Stdio::null()
        };
        let nginx = Nginx::start(
            "error_log stderr;",
            &format!(
                "    server {{\n        listen 127.0.0.1:{port};\n        location / {{ proxy_pass http://127.0.0.1:1; }}\n    }}"
            ),
            stderr,
        );
        let out = bin()
            .args(["--non-interactive", "--json", "--step", "logs", "--config"])
            .arg(nginx.config())
            .output()
            .unwrap();
        drop(nginx);
        let report = parse_report(&out);
        let said = findings(&report, "logs")
            .iter()
            .filter_map(|f| f["message"].as_str())
            .find(|m| m.starts_with("error_log stderr: "))
            .unwrap_or_else(|| panic!("no finding about error_log stderr: {report:#}"))
            .to_owned();
        let wanted = if to_file {
            format!(
                "nginx's stderr goes to the file {}; pass it with --error-log",
                stderr_file.display()
            )
        } else {
            "nginx's stderr is /dev/null, so these messages are discarded".to_owned()
        };
        assert!(said.contains(&wanted), "{said}");
        let step = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "logs")
            .unwrap();
        assert_ne!(step["status"], "pass", "{step:#}");
        assert_eq!(out.status.code(), Some(3), "{report:#}");
    }
}

#[test]
fn a_custom_log_format_tells_who_made_the_502s_and_draws_the_timeline() {
    // The lab's upstream-502 scenario logs with an upstream-timing log_format.
    let Some(lab) = super::harness::lab("upstream-502") else {
        return;
    };
    let (_, report) = super::harness::run_json(&lab, &[]);
    let upstream = lab.expected_upstream().unwrap();
    let access = findings(&report, "logs")
        .iter()
        .find(|f| f["check"] == "logs.access-log" && f["cause"] == "upstream-returned-502")
        .unwrap_or_else(|| panic!("no upstream-returned-502 from the access log: {report:#}"))
        .clone();
    assert_eq!(access["upstream"], upstream.as_str(), "{access:#}");
    assert!(
        access["message"]
            .as_str()
            .unwrap()
            .contains("came from the upstream itself"),
        "{access:#}"
    );
    let info = findings(&report, "logs")
        .iter()
        .find(|f| f["check"] == "logs.access-log" && f["severity"] == "info")
        .unwrap()
        .clone();
    assert!(
        info["message"]
            .as_str()
            .unwrap()
            .contains("(log_format upstreamlog)"),
        "{info:#}"
    );
    // The timeline: a 502 series from the access log, with its first bad minute.
    let t = &report["timeline"];
    let series = t["series"].as_array().expect("timeline series");
    let s502 = series
        .iter()
        .find(|s| s["name"] == "502")
        .expect("502 series");
    assert_eq!(s502["source"], "access-log");
    let total: u64 = s502["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert!(total >= 1, "{t:#}");
    assert!(t["first_bad"].as_str().is_some(), "{t:#}");
}

#[test]
fn a_rotated_and_gzipped_access_log_history_is_read_in_the_window() {
    use std::io::Write as _;
    let Some(lab) = super::harness::lab("healthy") else {
        return;
    };
    // 502s in the rotated files, inside the window; none in the live log.
    let now = jiff::ZonedDateTime::now();
    let stamp = |ago_secs: u64| {
        let ago = jiff::SignedDuration::from_secs(i64::try_from(ago_secs).unwrap());
        now.checked_sub(ago)
            .unwrap()
            .strftime("%d/%b/%Y:%H:%M:%S %z")
            .to_string()
    };
    let line = |ago: u64, status: u16| {
        format!(
            "127.0.0.1 - - [{}] \"GET /old HTTP/1.1\" {status} 0 \"-\" \"-\"\n",
            stamp(ago)
        )
    };
    let log = lab.access_log().to_path_buf();
    let one = format!("{}{}", line(600, 502), line(590, 200));
    std::fs::write(format!("{}.1", log.display()), one).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("{}{}", line(7200 * 12, 502), line(1200, 502)).as_bytes())
        .unwrap();
    std::fs::write(format!("{}.2.gz", log.display()), gz.finish().unwrap()).unwrap();
    let (_, report) = super::harness::run_json(&lab, &[]);
    let info = findings(&report, "logs")
        .iter()
        .find(|f| f["check"] == "logs.access-log" && f["severity"] == "info")
        .unwrap()
        .clone();
    // Two 502s in the hour (one in .1, one in .2.gz); the 12-hour-old one is outside.
    let message = info["message"].as_str().unwrap();
    assert!(message.contains("2 with 502 or 504"), "{message}");
}

#[test]
fn a_rotated_and_gzipped_error_log_history_is_read_in_the_window() {
    use std::io::Write as _;
    let Some(lab) = super::harness::lab("healthy") else {
        return;
    };
    let now = jiff::ZonedDateTime::now();
    let line = |ago_secs: i64| {
        let t = now
            .checked_sub(jiff::SignedDuration::from_secs(ago_secs))
            .unwrap()
            .strftime("%Y/%m/%d %H:%M:%S")
            .to_string();
        format!(
            "{t} [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: lab.fix502.test, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:9/\", host: \"lab\"\n"
        )
    };
    let log = lab.error_log().display().to_string();
    std::fs::write(format!("{log}.1"), line(600)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("{}{}", line(12 * 3600), line(1200)).as_bytes())
        .unwrap();
    std::fs::write(format!("{log}.2.gz"), gz.finish().unwrap()).unwrap();
    // An older rotation, cut short: noted, the rest still read.
    std::fs::write(format!("{log}.3.gz"), [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();

    let (out, report) = super::harness::run_json(&lab, &[]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let refused = findings(&report, "logs")
        .iter()
        .find(|f| f["cause"] == "upstream-refused")
        .unwrap_or_else(|| panic!("no refused errors from the history: {report:#}"))
        .clone();
    // One in .1 and one in .2.gz are in the hour; the 12-hour-old one is not.
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("2 connection-refused errors to 127.0.0.1:9"),
        "{refused:#}"
    );
    assert!(
        findings(&report, "logs").iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("skipped part of the history:") && m.contains(".3.gz"))),
        "the cut-short .3.gz is noted: {report:#}"
    );
    let series = report["timeline"]["series"].as_array().expect("timeline");
    assert!(
        series
            .iter()
            .any(|s| s["name"] == "upstream-refused" && s["source"] == "error-log"),
        "{series:#?}"
    );
}

#[test]
fn bad_lines_are_counted_never_quoted_never_a_crash() {
    let Some(lab) = super::harness::lab("healthy") else {
        return;
    };
    let now = jiff::ZonedDateTime::now()
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string();
    let mut bytes = b"root:$6$garbage without a timestamp\n".to_vec();
    bytes.extend(b"\xff\xfe not UTF-8 \xc3\x28\n");
    bytes.extend(b"nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)\n");
    bytes.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    bytes.push(b'\n');
    bytes.extend(format!("{now} [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:9/\", host: \"s\"\n").as_bytes());
    std::fs::write(lab.error_log(), bytes).unwrap();
    let (out, report) = super::harness::run_json(&lab, &["--step", "logs"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let logs = findings(&report, "logs");
    assert!(
        logs.iter().any(|f| f["cause"] == "upstream-refused"),
        "{logs:#?}"
    );
    let info = logs
        .iter()
        .find(|f| {
            f["evidence"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|l| l.as_str().is_some_and(|l| l.contains("oversized")))
            })
        })
        .unwrap_or_else(|| panic!("no count of bad lines: {logs:#?}"));
    let evidence: Vec<&str> = info["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        evidence
            .iter()
            .any(|l| l.starts_with("3 lines not in nginx's error-log format, 1 oversized")),
        "{evidence:#?}"
    );
    // A line nginx did not write is counted, never quoted (the file may not be a log at
    // all); nginx's own stderr message is shown.
    assert!(
        !evidence.iter().any(|l| l.contains("garbage")),
        "{evidence:#?}"
    );
    assert!(
        evidence
            .iter()
            .any(|l| l.starts_with("not an error-log line: nginx: [emerg] bind()")),
        "{evidence:#?}"
    );
}

#[test]
fn lines_dated_in_the_future_are_not_in_the_last_hour() {
    let Some(lab) = super::harness::lab("healthy") else {
        return;
    };
    let line = |date: &str| {
        format!(
            "{date} [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:9/\", host: \"s\"\n"
        )
    };
    let text = line("2031/01/01 10:00:00") + &line("9999/12/31 23:59:59");
    std::fs::write(lab.error_log(), text).unwrap();
    let (out, report) = super::harness::run_json(&lab, &["--step", "logs"]);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let noted = findings(&report, "logs").iter().any(|f| {
        f["evidence"].as_array().is_some_and(|e| {
            e.iter().any(|l| {
                l.as_str()
                    .is_some_and(|l| l.starts_with("2 lines dated after now"))
            })
        })
    });
    assert!(noted, "{report:#}");
}

/// `line` with its nginx timestamp (the first `YYYY/MM/DD HH:MM:SS`, after any container
/// prefix) replaced by `now`.
fn restamped(line: &str, now: &str) -> String {
    let shape = |w: &[u8]| {
        w.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'/',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
    };
    let at = line
        .as_bytes()
        .windows(19)
        .position(shape)
        .unwrap_or_else(|| panic!("no nginx time in {line}"));
    format!("{}{now}{}", &line[..at], &line[at + 19..])
}

/// The lines users posted (crates/nginx/tests/fixtures/errorlog/real-world.log, re-dated
/// to now) through the binary: each claims the cause docs/causes.md gives it, or none.
#[test]
fn real_world_lines_claim_their_causes() {
    const LOG: &str = include_str!("../../crates/nginx/tests/fixtures/errorlog/real-world.log");
    // (text that finds the line's evidence, the cause: `Some("")` for a finding without
    // a cause, `None` for a line that is no finding at all).
    const EXPECTED: &[(&str, Option<&str>)] = &[
        ("*2001 ", Some("upstream-protocol-mismatch")),
        ("*2002 ", Some("upstream-invalid-response")),
        ("*2003 ", Some("upstream-invalid-response")),
        ("*2004 ", Some("upstream-invalid-response")),
        ("*2005 ", Some("upstream-invalid-response")),
        ("*2006 ", Some("upstream-protocol-mismatch")),
        ("*2007 ", Some("upstream-invalid-response")),
        ("*2008 ", Some("upstream-invalid-response")),
        ("*2009 ", Some("upstream-invalid-response")),
        ("*2010 ", Some("upstream-invalid-response")),
        ("*2011 ", Some("upstream-invalid-response")),
        ("*2012 ", Some("upstream-invalid-response")),
        ("*2013 ", Some("upstream-invalid-response")),
        ("*2014 ", Some("upstream-protocol-mismatch")),
        ("*2015 ", Some("upstream-invalid-response")),
        ("*2016 ", Some("upstream-invalid-response")),
        ("*2017 ", Some("upstream-invalid-response")),
        ("*2018 ", Some("upstream-http2-goaway")),
        ("*2019 ", Some("upstream-invalid-response")),
        ("*2020 ", None),
        ("*2021 ", Some("upstream-protocol-mismatch")),
        ("*2022 ", Some("upstream-invalid-response")),
        ("*2023 ", Some("upstream-invalid-response")),
        ("*2101 ", None),
        ("*2102 ", Some("upstream-dns")),
        ("*2103 ", Some("")),
        ("*2104 ", Some("")),
        ("*2105 ", None),
        ("service _http._tcp of backend.local", Some("upstream-dns")),
        ("ocsp.example.com could not", None),
        ("*2106 ", Some("upstream-dns")),
        ("*2107 ", None),
        ("*2301 ", Some("upstream-protocol-mismatch")),
        ("*2302 ", Some("upstream-protocol-mismatch")),
        ("*2303 ", Some("upstream-protocol-mismatch")),
        ("*2304 ", None),
        ("*2305 ", None),
        ("*2306 ", Some("upstream-protocol-mismatch")),
        ("*2307 ", Some("upstream-tls")),
        ("*2401 ", Some("upstream-refused")),
        ("*2402 ", Some("upstream-unreachable")),
        ("*2403 ", Some("upstream-timeout")),
        ("*2404 ", Some("upstream-reset")),
        ("*2405 ", Some("upstream-unreachable")),
        ("*2406 ", Some("upstream-unreachable")),
        ("*2407 ", Some("upstream-reset")),
        ("*2408 ", Some("")),
        ("*2501 ", Some("upstream-refused")),
        ("*2502 ", Some("unix-socket-missing")),
        ("*2503 ", Some("unix-socket-permission")),
        ("*2504 ", Some("upstream-unreachable")),
        ("*2505 ", Some("upstream-timeout")),
        ("*2506 ", Some("upstream-reset")),
        ("*2507 ", Some("upstream-backlog-full")),
        ("*2508 ", Some("upstream-unreachable")),
        ("*2509 ", Some("upstream-unreachable")),
        ("*2510 ", Some("upstream-wrong-address")),
        ("*2511 ", Some("upstream-unreachable")),
        ("*2512 ", Some("upstream-reset")),
        ("*2601 ", Some("upstream-refused")),
        ("*2602 ", Some("upstream-refused")),
        ("*2603 ", Some("upstream-refused")),
        ("*2604 ", Some("upstream-refused")),
        ("*2605 ", Some("upstream-refused")),
        ("*2606 ", Some("upstream-refused")),
        ("*2607 ", Some("upstream-refused")),
        ("*2608 ", Some("upstream-refused")),
    ];
    assert_eq!(EXPECTED.len(), LOG.lines().count());
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("nginx.conf"),
        "events {}\nhttp { server { listen 127.0.0.1:1; location / { proxy_pass http://127.0.0.1:9; } } }\n",
    );
    let now = jiff::ZonedDateTime::now()
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string();
    let text: String = LOG.lines().map(|l| restamped(l, &now) + "\n").collect();
    let log = dir.path().join("error.log");
    write(&log, &text);
    let out = bin()
        .args(["--json", "--step", "logs", "--prefix"])
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("nginx.conf"))
        .arg("--error-log")
        .arg(&log)
        .output()
        .unwrap();
    let report = parse_report(&out);
    let logs = findings(&report, "logs");
    let mut wrong = Vec::new();
    for (needle, cause) in EXPECTED {
        let found: Vec<&serde_json::Value> = logs
            .iter()
            .filter(|f| {
                f["evidence"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|l| l.as_str().is_some_and(|l| l.contains(needle)))
                })
            })
            .collect();
        let got = match found.as_slice() {
            [] => None,
            [f] => Some(f["cause"].as_str().unwrap_or_default()),
            _ => {
                wrong.push(format!("{needle}: in {} findings", found.len()));
                continue;
            }
        };
        if got != *cause {
            wrong.push(format!("{needle}: cause {got:?}, want {cause:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n{report:#}", wrong.join("\n"));
    // Every upstream named is one nginx wrote: no Lua text, no container prefix.
    for f in logs {
        if let Some(up) = f["upstream"].as_str() {
            assert!(!up.contains(' ') && !up.contains("lua"), "{up}");
        }
    }
    // The evidence is the nginx line, without the container prefix.
    assert!(logs.iter().any(
        |f| f["evidence"].as_array().is_some_and(|e| e.iter().any(|l| {
            l.as_str()
                .is_some_and(|l| l.starts_with(&format!("{now} [error] 7#7: *2604 ")))
        }))
    ));
}

/// `--error-log -`: a container's log piped in (`docker logs web 2>&1 | fix502 --error-log -`)
/// is read like a file by every check, named as standard input, and a terminal on standard
/// input is a usage error rather than a wait.
#[test]
fn an_error_log_piped_on_standard_input_is_read() {
    use std::io::Write as _;
    let Some(lab) = super::harness::lab("refused") else {
        return;
    };
    let now = jiff::ZonedDateTime::now()
        .datetime()
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string();
    // The lab's own log, as `docker compose logs` prints it, goes in on stdin; the file the
    // config names is emptied, so only stdin can hold the evidence.
    let logged = std::fs::read_to_string(lab.error_log()).unwrap();
    assert!(logged.contains("(111: "), "{logged}");
    let piped: String = logged
        .lines()
        .map(|l| format!("web-1  | {}\n", restamped(l, &now)))
        .collect();
    std::fs::write(lab.error_log(), "").unwrap();
    let mut child = bin()
        .args(["--non-interactive", "--json", "--config"])
        .arg(lab.config())
        .args(["--error-log", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(piped.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = parse_report(&out);
    assert_eq!(report["nginx"]["error_logs"], serde_json::json!(["-"]));
    assert_eq!(
        report["diagnosis"][0]["cause"], "upstream-refused",
        "{report:#}"
    );
    let evidence = report["diagnosis"][0]["evidence"].to_string();
    assert!(evidence.contains("connect() failed (111: "), "{evidence}");
    assert!(
        findings(&report, "logs").iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("standard input (--error-log -): "))),
        "{report:#}"
    );

    // A terminal on standard input: one line, exit 2, no wait.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fix502"));
    command
        .args(["--non-interactive", "--config"])
        .arg(lab.config())
        .args(["--error-log", "-"]);
    let mut pty = rexpect::session::spawn_command(command, Some(10_000)).unwrap();
    pty.exp_string("--error-log -: standard input is a terminal")
        .unwrap();
    let status = pty.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 2)),
        "{status:?}"
    );
}
