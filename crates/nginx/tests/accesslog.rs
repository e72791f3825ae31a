//! Tests of `accesslog`: line shapes, counting, the window, hostile input, file tails, and a
//! log written by the real nginx.

use std::io::{Cursor, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use fix502_nginx::accesslog::{
    AccessLogError, AccessOptions, AccessReport, AccessSummary, Attempt, NO_UPSTREAM, attempts,
    missing_variables, parse_line, scan, scan_file, scan_file_with, scan_with, suggest_format,
};
use fix502_nginx::config::Config;
use fix502_nginx::logformat::{Escape, LogFormat};
use jiff::civil::{DateTime, date};

fn scan_str(input: &str, opts: &AccessOptions) -> AccessSummary {
    scan(Cursor::new(input.as_bytes()), opts).unwrap()
}

fn at(h: i8, m: i8, s: i8) -> DateTime {
    date(2026, 11, 24).at(h, m, s, 0)
}

/// A `combined` line at `time` (HH:MM:SS on 24/Nov/2026).
fn combined(time: &str, request: &str, status: &str, bytes: &str) -> String {
    format!(
        "192.0.2.10 - - [24/Nov/2026:{time} +0000] \"{request}\" {status} {bytes} \"-\" \"curl/8.5.0\"\n"
    )
}

/// A nginx.org `main` line (combined + `"$http_x_forwarded_for"`).
fn main_fmt(time: &str, request: &str, status: &str, bytes: &str) -> String {
    format!(
        "10.0.0.5 - alice [24/Nov/2026:{time} +0100] \"{request}\" {status} {bytes} \"https://shop.example/cart\" \"Mozilla/5.0 (X11; Linux x86_64)\" \"203.0.113.7, 10.0.0.1\"\n"
    )
}

#[test]
fn default_options() {
    let o = AccessOptions::default();
    assert_eq!(o.since, None);
    assert_eq!(o.max_line_bytes, 16 * 1024);
    assert_eq!(o.max_bytes, 64 * 1024 * 1024);
    assert_eq!(o.max_samples, 3);
}

#[test]
fn parses_combined() {
    let line = "192.0.2.10 - - [24/Nov/2026:10:00:01 +0000] \"GET /api/v1/items?page=2 HTTP/1.1\" 502 157 \"-\" \"curl/8.5.0\"";
    let l = parse_line(line).expect("combined line");
    assert_eq!(l.time, at(10, 0, 1));
    assert_eq!(l.request, "GET /api/v1/items?page=2 HTTP/1.1");
    assert_eq!(l.status, 502);
    assert_eq!(l.body_bytes, Some(157));
}

#[test]
fn parses_main_and_ignores_the_offset() {
    let line = main_fmt("23:59:59", "POST /checkout HTTP/2.0", "504", "167");
    let l = parse_line(line.trim_end()).expect("main line");
    // The time as written: +0100 is not applied (as logscan does with error-log times).
    assert_eq!(l.time, at(23, 59, 59));
    assert_eq!(l.request, "POST /checkout HTTP/2.0");
    assert_eq!((l.status, l.body_bytes), (504, Some(167)));
    let west = "::1 - - [01/Jan/2027:00:00:00 -0800] \"GET / HTTP/1.1\" 200 612 \"-\" \"-\"";
    assert_eq!(
        parse_line(west).map(|l| l.time),
        Some(date(2027, 1, 1).at(0, 0, 0, 0))
    );
}

#[test]
fn parses_other_formats_with_the_same_core() {
    // Extra fields before and after; status at the end; body bytes not a number.
    let custom = "app.example.com 192.0.2.1 [24/Nov/2026:10:00:02 +0000] \"GET /x HTTP/1.1\" 502 rt=0.001 uct=\"-\" urt=\"0.000\"";
    let l = parse_line(custom).expect("custom");
    assert_eq!(
        (l.status, l.body_bytes, l.request),
        (502, None, "GET /x HTTP/1.1")
    );
    let at_end = "[24/Nov/2026:10:00:03 +0000] \"GET / HTTP/1.1\" 503";
    let l = parse_line(at_end).expect("status at end of line");
    assert_eq!((l.status, l.body_bytes), (503, None));
    let dash = "1.2.3.4 - - [24/Nov/2026:10:00:03 +0000] \"GET / HTTP/1.1\" 502 - \"-\" \"-\"";
    assert_eq!(parse_line(dash).map(|l| l.body_bytes), Some(None));
    // nginx's empty request (client closed before sending one) and HTTP/0.9 status.
    let empty = "1.2.3.4 - - [24/Nov/2026:10:00:04 +0000] \"\" 400 0 \"-\" \"-\"";
    assert_eq!(
        parse_line(empty).map(|l| (l.request, l.status)),
        Some(("", 400))
    );
    let nine = "1.2.3.4 - - [24/Nov/2026:10:00:05 +0000] \"GET /old HTTP/1.1\" 009 12 \"-\" \"-\"";
    assert_eq!(parse_line(nine).map(|l| l.status), Some(9));
    // A `[` in $remote_user before the real time does not confuse the parser.
    let user =
        "1.2.3.4 - [bob] [24/Nov/2026:10:00:06 +0000] \"GET / HTTP/1.1\" 502 157 \"-\" \"-\"";
    assert_eq!(parse_line(user).map(|l| l.status), Some(502));
}

#[test]
fn escaped_quotes_inside_the_request() {
    // nginx's own escaping: `"` becomes `\x22`.
    let nginx = r#"192.0.2.1 - - [24/Nov/2026:10:00:01 +0000] "GET /search?q=\x22a\x22%20502 HTTP/1.1" 502 157 "-" "x\x22y""#;
    let l = parse_line(nginx).expect("\\x22");
    assert_eq!(l.request, r"GET /search?q=\x22a\x22%20502 HTTP/1.1");
    assert_eq!((l.status, l.body_bytes), (502, Some(157)));
    // JSON-style escaping (`escape=json`): `\"`, even when it looks like the end.
    let json = r#"192.0.2.1 - - [24/Nov/2026:10:00:01 +0000] "GET /a\" 200 1 \"b HTTP/1.1" 504 167 "-" "-""#;
    let l = parse_line(json).expect("\\\"");
    assert_eq!(l.request, r#"GET /a\" 200 1 \"b HTTP/1.1"#);
    assert_eq!(l.status, 504);
    // An escaped backslash right before the real closing quote.
    let backslash = r#"192.0.2.1 - - [24/Nov/2026:10:00:01 +0000] "GET /dir\\" 503 0 "-" "-""#;
    let l = parse_line(backslash).expect("\\\\");
    assert_eq!((l.request, l.status), (r"GET /dir\\", 503));
    // `escape=none`: a raw quote not followed by a status is part of the request.
    let raw =
        r#"192.0.2.1 - - [24/Nov/2026:10:00:01 +0000] "GET /say"hi" HTTP/1.1" 502 157 "-" "-""#;
    assert_eq!(
        parse_line(raw).map(|l| l.request),
        Some(r#"GET /say"hi" HTTP/1.1"#)
    );
}

#[test]
fn rejects_lines_of_other_shapes() {
    let bad = [
        "",
        "garbage",
        "2026/11/24 10:00:01 [error] 1#1: *1 connect() failed (111: Connection refused)",
        // Bad month, day, time field, offset, separators.
        "1 - - [24/Foo/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 502 0",
        "1 - - [31/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 502 0",
        "1 - - [24/Nov/2026:25:00:01 +0000] \"GET / HTTP/1.1\" 502 0",
        "1 - - [24/Nov/2026:10:00:01 0000] \"GET / HTTP/1.1\" 502 0",
        "1 - - [24/Nov/2026 10:00:01 +0000] \"GET / HTTP/1.1\" 502 0",
        "1 - - [2026-11-24T10:00:01+00:00] \"GET / HTTP/1.1\" 502 0",
        // No quote, no closing quote, status not three digits or glued to text.
        "1 - - [24/Nov/2026:10:00:01 +0000] GET / HTTP/1.1 502 0",
        "1 - - [24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1 502 0",
        "1 - - [24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 50 0",
        "1 - - [24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 5020 0",
        "1 - - [24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 502x 0",
        "1 - - [24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\"",
        // The time cut short at the end of the line.
        "1 - - [24/Nov/2026:10:00",
    ];
    for line in bad {
        assert!(parse_line(line).is_none(), "parsed: {line:?}");
    }
}

#[test]
fn no_prefix_or_byte_change_panics() {
    let line = main_fmt("10:00:01", r"GET /a\x22b HTTP/1.1", "502", "157");
    let line = line.trim_end();
    for end in 0..=line.len() {
        let _ = parse_line(line.get(..end).unwrap());
    }
    let specials = ['[', ']', '"', '\\', ' ', '0', '/', ':', 'é'];
    for (i, _) in line.char_indices() {
        for c in specials {
            let mut mutated = line.to_owned();
            mutated.replace_range(i..=i, &c.to_string());
            let _ = parse_line(&mutated);
        }
    }
}

/// A log with 200s, 404s, three 502s, one 504, one 009, and garbage.
fn mixed_log() -> String {
    [
        combined("10:00:00", "GET / HTTP/1.1", "200", "612"),
        combined("10:00:01", "GET /api HTTP/1.1", "502", "157"),
        "not an access log line\n".to_owned(),
        main_fmt("10:00:02", "GET /api HTTP/1.1", "502", "157"),
        combined("10:00:03", "GET /missing HTTP/1.1", "404", "153"),
        combined("10:00:04", "POST /pay HTTP/1.1", "504", "167"),
        combined("10:00:05", "GET /old HTTP/1.1", "009", "12"),
        combined("10:00:06", "GET /other HTTP/1.1", "502", "157"),
        combined("10:00:07", "GET / HTTP/1.1", "000", "0"),
    ]
    .concat()
}

#[test]
fn counts_5xx_and_009() {
    let s = scan_str(&mixed_log(), &AccessOptions::default());
    assert_eq!(s.lines_read, 9);
    assert_eq!(s.lines_unparsed, 1);
    assert_eq!(s.lines_in_window, 8);
    assert_eq!(s.total_in_window, 5);
    let order: Vec<(u16, u64)> = s.statuses.iter().map(|c| (c.status, c.count)).collect();
    assert_eq!(order, [(9, 1), (502, 3), (504, 1)]);
    assert_eq!((s.count(502), s.count(404), s.count(200)), (3, 0, 0));
    let c502 = s.statuses.iter().find(|c| c.status == 502).unwrap();
    assert_eq!(
        (c502.first_seen, c502.last_seen),
        (at(10, 0, 1), at(10, 0, 6))
    );
    assert_eq!(c502.requests, ["GET /api HTTP/1.1", "GET /other HTTP/1.1"]);
    assert_eq!(c502.samples.len(), 3);
    assert!(
        c502.samples
            .first()
            .unwrap()
            .starts_with("192.0.2.10 - - [24/Nov/2026:10:00:01")
    );
    assert!(c502.samples.get(1).unwrap().starts_with("10.0.0.5 - alice"));
    assert!(!c502.samples.iter().any(|s| s.ends_with('\n')));
}

#[test]
fn samples_keep_the_first_ones_and_the_latest() {
    let log: String = (0..10)
        .map(|i| {
            combined(
                &format!("10:00:{i:02}"),
                &format!("GET /r{i} HTTP/1.1"),
                "502",
                "157",
            )
        })
        .collect();
    let opts = AccessOptions {
        max_samples: 2,
        ..AccessOptions::default()
    };
    let s = scan_str(&log, &opts);
    let c = s.statuses.first().unwrap();
    assert_eq!(c.count, 10);
    assert_eq!(c.samples.len(), 2);
    assert!(c.samples.first().unwrap().contains("/r0 "));
    assert!(c.samples.get(1).unwrap().contains("/r9 "));
    assert_eq!(c.requests, ["GET /r0 HTTP/1.1", "GET /r1 HTTP/1.1"]);
    let none = scan_str(
        &log,
        &AccessOptions {
            max_samples: 0,
            ..opts
        },
    );
    let c = none.statuses.first().unwrap();
    assert!(c.samples.is_empty() && c.requests.is_empty());
    assert_eq!(c.count, 10);
}

#[test]
fn since_window() {
    let opts = AccessOptions {
        since: Some(at(10, 0, 2)),
        ..AccessOptions::default()
    };
    let s = scan_str(&mixed_log(), &opts);
    assert_eq!(s.lines_read, 9);
    assert_eq!(s.lines_unparsed, 1);
    // 10:00:02 is inside (at or after), 10:00:00 and 10:00:01 are not.
    assert_eq!(s.lines_in_window, 6);
    assert_eq!(s.total_in_window, 4);
    let c502 = s.statuses.iter().find(|c| c.status == 502).unwrap();
    assert_eq!((c502.count, c502.first_seen), (2, at(10, 0, 2)));
    let late = AccessOptions {
        since: Some(date(2026, 11, 25).at(0, 0, 0, 0)),
        ..AccessOptions::default()
    };
    let s = scan_str(&mixed_log(), &late);
    assert_eq!((s.lines_in_window, s.total_in_window), (0, 0));
    assert!(s.statuses.is_empty());
}

#[test]
fn garbage_binary_and_odd_line_endings() {
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"\x00\x01\x02\xff\xfe binary junk\n\n\r\n");
    // Invalid UTF-8 in the user agent (escape=none): the line still counts.
    input.extend_from_slice(
        b"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] \"GET /a HTTP/1.1\" 502 157 \"-\" \"\xff\xfe\"\n",
    );
    input.extend_from_slice(
        combined("10:00:02", "GET /b HTTP/1.1", "502", "157")
            .trim_end()
            .as_bytes(),
    );
    input.extend_from_slice(b"\r\n");
    // Last line without a newline.
    input.extend_from_slice(
        combined("10:00:03", "GET /c HTTP/1.1", "503", "0")
            .trim_end()
            .as_bytes(),
    );
    let s = scan(Cursor::new(input), &AccessOptions::default()).unwrap();
    assert_eq!(s.lines_read, 6);
    assert_eq!(s.lines_unparsed, 3);
    assert_eq!((s.count(502), s.count(503)), (2, 1));
    let c502 = s.statuses.iter().find(|c| c.status == 502).unwrap();
    assert!(!c502.samples.iter().any(|l| l.ends_with('\r')));
}

#[test]
fn oversized_lines_are_skipped() {
    let mut input = combined("10:00:01", "GET /a HTTP/1.1", "502", "157");
    // A 1 MB line that would parse as a 502 if it were kept.
    input.push_str(&combined(
        "10:00:02",
        &format!("GET /{} HTTP/1.1", "a".repeat(1 << 20)),
        "502",
        "157",
    ));
    input.push_str(&combined("10:00:03", "GET /b HTTP/1.1", "502", "157"));
    let s = scan_str(&input, &AccessOptions::default());
    assert_eq!(s.lines_read, 3);
    assert_eq!(s.lines_unparsed, 1);
    assert_eq!(s.count(502), 2);
    // A line exactly at the limit is kept; one byte more is not.
    let line = combined("10:00:04", "GET /c HTTP/1.1", "502", "157");
    let len = line.trim_end().len();
    for (max, kept) in [(len, 1), (len - 1, 0)] {
        let opts = AccessOptions {
            max_line_bytes: max,
            ..AccessOptions::default()
        };
        let s = scan_str(&line, &opts);
        assert_eq!(
            (s.count(502), s.lines_unparsed),
            (kept, 1 - kept),
            "max {max}"
        );
    }
}

/// A reader that never ends: every read returns the same garbage without a newline.
struct Endless;

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(b'x');
        Ok(buf.len())
    }
}

#[test]
fn endless_line_is_not_buffered() {
    // 32 MiB with no newline: one oversized line, memory bounded by the BufReader.
    let reader = std::io::BufReader::new(Endless.take(32 << 20));
    let s = scan(reader, &AccessOptions::default()).unwrap();
    assert_eq!((s.lines_read, s.lines_unparsed), (1, 1));
}

fn write_log(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn file_tail_with_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (1..=5)
        .map(|i| {
            combined(
                &format!("10:00:0{i}"),
                &format!("GET /l{i} HTTP/1.1"),
                "502",
                "157",
            )
        })
        .collect();
    let path = write_log(dir.path(), "access.log", lines.concat().as_bytes());
    let tail_of = |max_bytes: u64| {
        let opts = AccessOptions {
            max_bytes,
            ..AccessOptions::default()
        };
        scan_file(&path, &opts).unwrap()
    };
    let len = |i: usize| lines.get(i).unwrap().len() as u64;
    let whole = tail_of(u64::MAX);
    assert_eq!((whole.lines_read, whole.count(502)), (5, 5));
    // Exactly the last two lines: the tail starts on a line boundary, nothing is lost.
    let two = tail_of(len(3) + len(4));
    assert_eq!(
        (two.lines_read, two.lines_unparsed, two.count(502)),
        (2, 0, 2)
    );
    let c = two.statuses.first().unwrap();
    assert_eq!(c.first_seen, at(10, 0, 4));
    // Ten bytes into line 4: its remainder is dropped, not counted as unparsed.
    let partial = tail_of(len(4) + 10);
    assert_eq!(
        (
            partial.lines_read,
            partial.lines_unparsed,
            partial.count(502)
        ),
        (1, 0, 1)
    );
    assert_eq!(partial.statuses.first().unwrap().first_seen, at(10, 0, 5));
    let nothing = tail_of(0);
    assert_eq!(nothing.lines_read, 0);
    // The whole file plus or minus one byte.
    let total = lines.concat().len() as u64;
    assert_eq!(tail_of(total).lines_read, 5);
    assert_eq!(tail_of(total - 1).lines_read, 4);
}

#[test]
fn gzip_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gz = write_log(
        dir.path(),
        "access.log.2.gz",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
    );
    let err = scan_file(&gz, &AccessOptions::default()).unwrap_err();
    assert!(matches!(err, AccessLogError::Compressed { .. }), "{err:?}");
    assert_eq!(err.path(), gz);
    assert!(err.io_error().is_none());
    let text = err.to_string();
    assert!(
        text.contains("access.log.2.gz") && text.contains("gzip"),
        "{text}"
    );
    // Even with a tail that would skip the magic bytes.
    let opts = AccessOptions {
        max_bytes: 2,
        ..AccessOptions::default()
    };
    assert!(matches!(
        scan_file(&gz, &opts),
        Err(AccessLogError::Compressed { .. })
    ));

    let missing = dir.path().join("nope.log");
    let err = scan_file(&missing, &AccessOptions::default()).unwrap_err();
    assert!(matches!(err, AccessLogError::Open { .. }), "{err:?}");
    assert_eq!(
        err.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
    assert!(
        err.to_string().starts_with("cannot open access log "),
        "{err}"
    );

    let empty = write_log(dir.path(), "empty.log", b"");
    assert_eq!(
        scan_file(&empty, &AccessOptions::default()).unwrap(),
        AccessSummary::default()
    );
    let one = write_log(dir.path(), "one.log", b"\x1f");
    assert_eq!(
        scan_file(&one, &AccessOptions::default())
            .unwrap()
            .lines_unparsed,
        1
    );
}

// ---------------------------------------------------------------------------------------
// The real nginx.

/// Poll interval while waiting for nginx.
const POLL: Duration = Duration::from_millis(10);

/// The nginx binary, or `None` when it is missing and FIX502_SKIP_NGINX=1.
fn nginx_binary() -> Option<PathBuf> {
    let found = [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file());
    if found.is_none() && std::env::var("FIX502_SKIP_NGINX").as_deref() == Ok("1") {
        return None;
    }
    Some(found.expect("nginx not found; set FIX502_SKIP_NGINX=1 to skip tests that need nginx"))
}

/// A port on 127.0.0.1 that was free a moment ago (nothing listens on it now).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// Whether `pid` is a live process (zombies count as gone).
use fix502_lab::process_running as running;

/// One nginx instance in a temp dir; stopped on drop.
struct Nginx {
    binary: PathBuf,
    dir: PathBuf,
    pid: Option<u32>,
}

impl Nginx {
    /// `nginx -p DIR/ -c DIR/nginx.conf -e DIR/error.log` plus `extra`, waited for at most
    /// 3 s; returns whether it succeeded and its stderr.
    fn run(&self, extra: &[&str]) -> (bool, String) {
        let stderr_path = self.dir.join(format!("cmd-{}.err", extra.len()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(&self.binary)
            .arg("-p")
            .arg(format!("{}/", self.dir.display()))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        let ok = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.success();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            thread::sleep(POLL);
        };
        (
            ok,
            std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        )
    }

    /// Starts nginx and waits (at most 3 s) until its pid file names a live master and
    /// `port` accepts connections.
    fn start(&mut self, port: u16) {
        let (ok, stderr) = self.run(&[]);
        assert!(ok, "nginx did not start: {stderr}");
        let deadline = Instant::now() + Duration::from_secs(3);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            let pid = std::fs::read_to_string(self.dir.join("nginx.pid"))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .filter(|&pid| running(pid));
            if let Some(pid) = pid {
                self.pid = Some(pid);
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nginx is not up after 3 s");
            thread::sleep(POLL);
        }
    }

    /// Stops the master: `-s quit` (nginx sends SIGQUIT to the pid in our pid file), then
    /// `-s stop` (SIGTERM) if it still runs after 2 s. Returns whether it is gone.
    fn stop(&mut self) -> bool {
        let Some(pid) = self.pid.take() else {
            return true;
        };
        for signal in ["quit", "stop"] {
            if !running(pid) {
                return true;
            }
            self.run(&["-s", signal]);
            let deadline = Instant::now() + Duration::from_secs(2);
            while running(pid) && Instant::now() < deadline {
                thread::sleep(POLL);
            }
        }
        !running(pid)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends one HTTP/1.0 request (with bounded waits) and returns the raw response.
fn request(port: u16, target: &str, headers: &str) -> Vec<u8> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    write!(stream, "GET {target} HTTP/1.0\r\nHost: t\r\n{headers}\r\n").unwrap();
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response).unwrap();
    response
}

/// An upstream that answers one connection with bytes that are not an HTTP response, so
/// nginx relays them as HTTP/0.9 and logs `009`. Gives up after 3 s.
fn http09_upstream() -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(1)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let _ = stream.write_all(b"hello from 1991\n");
                    return;
                }
                Err(_) => thread::sleep(POLL),
            }
        }
    });
    (port, handle)
}

/// A main config for a test nginx in `dir` (which gets a `tmp/` for the temp paths): one
/// worker, pid and error log in `dir`, and `http` holding `http_body`.
fn lab_conf(dir: &str, http_body: &str) -> String {
    std::fs::create_dir_all(format!("{dir}/tmp")).unwrap();
    format!(
        "daemon on;\n\
         worker_processes 1;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log error;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         \x20 client_body_temp_path {dir}/tmp/body;\n\
         \x20 proxy_temp_path {dir}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {dir}/tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {dir}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {dir}/tmp/scgi;\n\
         {http_body}\
         }}\n"
    )
}

#[test]
fn real_nginx_access_log() {
    let Some(binary) = nginx_binary() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let closed = free_port();
    let (relay, relay_thread) = http09_upstream();
    let d = dir.display();
    let conf = lab_conf(
        &d.to_string(),
        &format!(
            "\x20 log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n\
         \x20                 '$status $body_bytes_sent \"$http_referer\" '\n\
         \x20                 '\"$http_user_agent\" \"$http_x_forwarded_for\"';\n\
         \x20 access_log {d}/access.log combined;\n\
         \x20 access_log {d}/main.log main;\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   location = /ok {{ return 200 \"ok\\n\"; }}\n\
         \x20   location = /bad {{ return 502; }}\n\
         \x20   location = /gw {{ return 504; }}\n\
         \x20   location = /closed {{ proxy_pass http://127.0.0.1:{closed}; proxy_connect_timeout 1s; }}\n\
         \x20   location = /relay {{ proxy_pass http://127.0.0.1:{relay}; proxy_read_timeout 2s; }}\n\
         \x20 }}\n"
        ),
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut nginx = Nginx {
        binary,
        dir: dir.to_owned(),
        pid: None,
    };
    nginx.start(port);
    let before = jiff::ZonedDateTime::now().datetime();

    assert!(request(port, "/ok", "").starts_with(b"HTTP/1.1 200"));
    assert!(request(port, "/bad", "").starts_with(b"HTTP/1.1 502"));
    // A raw `"` in the URI: nginx writes it as `\x22`.
    assert!(
        request(port, "/bad?q=\"x", "X-Forwarded-For: 203.0.113.7\r\n")
            .starts_with(b"HTTP/1.1 502")
    );
    assert!(request(port, "/gw", "").starts_with(b"HTTP/1.1 504"));
    assert!(request(port, "/closed", "").starts_with(b"HTTP/1.1 502"));
    // No status line, no headers: the upstream's bytes as they were.
    assert_eq!(request(port, "/relay", ""), b"hello from 1991\n");
    relay_thread.join().unwrap();

    assert!(nginx.stop(), "nginx did not stop");
    let after = jiff::ZonedDateTime::now().datetime();

    for name in ["access.log", "main.log"] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let s = scan_file(&path, &AccessOptions::default()).unwrap();
        assert_eq!(
            (s.lines_read, s.lines_unparsed, s.lines_in_window),
            (6, 0, 6),
            "{name}:\n{text}"
        );
        assert_eq!(s.total_in_window, 5, "{name}:\n{text}");
        let counts: Vec<(u16, u64)> = s.statuses.iter().map(|c| (c.status, c.count)).collect();
        assert_eq!(counts, [(9, 1), (502, 3), (504, 1)], "{name}:\n{text}");
        let c502 = s.statuses.iter().find(|c| c.status == 502).unwrap();
        assert_eq!(
            c502.requests,
            [
                "GET /bad HTTP/1.0",
                r"GET /bad?q=\x22x HTTP/1.0",
                "GET /closed HTTP/1.0"
            ],
            "{name}:\n{text}"
        );
        // nginx's own 502 page is 157 bytes in 1.22 ("<center>nginx/1.22.1</center>").
        let first = parse_line(c502.samples.first().unwrap()).unwrap();
        assert!(first.body_bytes.is_some_and(|b| b > 100), "{name}:\n{text}");
        // Local time as written, truncated to seconds: within the test's run.
        let first_seen = s.statuses.iter().map(|c| c.first_seen).min().unwrap();
        let last_seen = s.statuses.iter().map(|c| c.last_seen).max().unwrap();
        assert!(
            first_seen >= before - jiff::SignedDuration::from_secs(1) && last_seen <= after,
            "{name}: {first_seen} .. {last_seen} not within {before} .. {after}"
        );
        // A window starting after the run keeps nothing.
        let later = AccessOptions {
            since: Some(last_seen + jiff::SignedDuration::from_secs(1)),
            ..AccessOptions::default()
        };
        let s = scan_file(&path, &later).unwrap();
        assert_eq!(
            (s.lines_read, s.lines_in_window, s.total_in_window),
            (6, 0, 0)
        );
    }
    let main_log = std::fs::read_to_string(dir.join("main.log")).unwrap();
    assert!(main_log.contains("\" \"203.0.113.7\"\n"), "{main_log}");
    let errors = std::fs::read_to_string(dir.join("error.log")).unwrap();
    // The 009 and the refused connect are in the error log; `return 502/504` are not.
    assert!(
        errors.contains("upstream sent no valid HTTP/1.0 header"),
        "{errors}"
    );
    assert!(errors.contains("(111: "), "{errors}");
    assert_eq!(
        errors.lines().filter(|l| l.contains("[error]")).count(),
        2,
        "{errors}"
    );
}

// ---------------------------------------------------------------------------------------
// log_format: compiling formats and splitting lines.

/// A format from its directive arguments after the name.
fn fmt(args: &[&str]) -> LogFormat {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    LogFormat::parse("test", &args).unwrap()
}

/// The value of `var` in `line` read with `format`, as text.
fn val(format: &LogFormat, line: &str, var: &str) -> Option<String> {
    let fields = format
        .parse_line(line.as_bytes())
        .unwrap_or_else(|| panic!("no match: {line}"));
    fields
        .get(var)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The usual upstream-timing format.
const TIMING: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" rt=$request_time uct=\"$upstream_connect_time\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\"";

#[test]
fn compiles_formats_like_nginx() {
    let c = LogFormat::combined();
    assert_eq!((c.name.as_str(), c.escape), ("combined", Escape::Default));
    assert_eq!(
        c.variables(),
        [
            "remote_addr",
            "remote_user",
            "time_local",
            "request",
            "status",
            "body_bytes_sent",
            "http_referer",
            "http_user_agent"
        ]
    );
    assert!(c.has("status") && c.has("$STATUS") && !c.has("upstream_addr"));
    // Arguments are concatenated without a separator, but each is compiled on its own: a
    // variable name ends with its argument. `${var}` ends at the brace.
    let f = fmt(&["escape=json", "${status}x", "$msec", "y"]);
    assert_eq!(
        (f.escape, f.text.as_str()),
        (Escape::Json, "${status}x$msecy")
    );
    assert_eq!(f.variables(), ["status", "msec"]);
    assert!(f.parse_line(b"502x1795514401.250y").is_some());
    assert_eq!(fmt(&["escape=none", "$status"]).escape, Escape::None);
    assert_eq!(fmt(&["escape=default", "$status"]).escape, Escape::Default);
    let err = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        LogFormat::parse("bad", &args).unwrap_err()
    };
    assert_eq!(
        err(&["escape=xml", "$status"]),
        "unknown log format escaping \"xml\""
    );
    assert_eq!(err(&["a $"]), "invalid parameter \"$\"");
    assert_eq!(err(&["$-x"]), "invalid parameter \"$-x\"");
    assert_eq!(
        err(&["${status"]),
        "the closing bracket in \"status\" variable is missing"
    );
    assert!(
        err(&["escape=json"]).contains("no format string"),
        "{}",
        err(&["escape=json"])
    );
    assert!(err(&[]).contains("no format string"));
}

#[test]
fn all_formats_of_a_config() {
    let text = r#"
        http {
            log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                            '$status $body_bytes_sent "$http_referer" '
                            '"$http_user_agent" "$http_x_forwarded_for"';
            log_format json escape=json '{"s":"$status"}';
            log_format combined '$status';
            log_format main '$status';
            log_format broken escape=yaml '$status';
            server { listen 80; }
        }
    "#;
    let config = Config::from_text(text, Path::new("/etc/nginx/nginx.conf")).unwrap();
    let all = LogFormat::all(&config);
    let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["combined", "main", "json"]);
    let main = LogFormat::find(&all, Some("main")).unwrap();
    assert!(
        main.text
            .ends_with("\"$http_user_agent\" \"$http_x_forwarded_for\"")
    );
    assert_eq!(LogFormat::find(&all, None).unwrap(), &LogFormat::combined());
    assert_eq!(
        LogFormat::find(&all, Some("json")).unwrap().escape,
        Escape::Json
    );
    assert!(LogFormat::find(&all, Some("nope")).is_none());
}

#[test]
fn splits_combined_and_unescapes() {
    let c = LogFormat::combined();
    let line = r#"192.0.2.10 - bob [24/Nov/2026:10:00:01 +0000] "GET /q?x=\x22a\x22\x5C HTTP/1.1" 502 157 "-" "Mozilla/5.0 (X11; Linux x86_64) \xC3\xA9""#;
    let f = c.parse_line(line.as_bytes()).expect("combined");
    assert_eq!(f.get("remote_user"), Some(&b"bob"[..]));
    assert_eq!(f.get("request"), Some(&br#"GET /q?x="a"\ HTTP/1.1"#[..]));
    assert_eq!(f.status(), Some(502));
    assert_eq!(f.get("http_referer"), Some(&b"-"[..]));
    assert_eq!(f.value("http_referer"), None);
    assert_eq!(
        f.text("http_user_agent").as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64) é")
    );
    assert_eq!(f.get("upstream_addr"), None);
    let tz = jiff::tz::TimeZone::UTC;
    assert_eq!(f.time(&tz), Some(at(10, 0, 1)));
    // A `[` and ` [` inside $remote_user: the first split that lets the rest match wins.
    let odd = r#"::1 - a [b [24/Nov/2026:10:00:02 +0100] "GET / HTTP/1.1" 200 0 "-" "-""#;
    assert_eq!(val(&c, odd, "remote_user").as_deref(), Some("a [b"));
    assert_eq!(
        val(&c, odd, "time_local").as_deref(),
        Some("24/Nov/2026:10:00:02 +0100")
    );
}

#[test]
fn splits_main_and_timing_formats() {
    let main = fmt(&[
        "$remote_addr - $remote_user [$time_local] \"$request\" ",
        "$status $body_bytes_sent \"$http_referer\" ",
        "\"$http_user_agent\" \"$http_x_forwarded_for\"",
    ]);
    let line = main_fmt("10:00:01", "POST /checkout HTTP/2.0", "504", "167");
    let line = line.trim_end();
    assert_eq!(
        val(&main, line, "http_x_forwarded_for").as_deref(),
        Some("203.0.113.7, 10.0.0.1")
    );
    assert_eq!(
        val(&main, line, "http_user_agent").as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64)")
    );
    // The same line does not match combined (one quoted field too many).
    assert!(LogFormat::combined().parse_line(line.as_bytes()).is_none());

    let timing = fmt(&[TIMING]);
    let line = r#"10.0.0.5 - - [24/Nov/2026:10:00:03 +0000] "GET /api HTTP/1.1" 200 12 "-" "curl/8" rt=1.503 uct="0.000, 0.001" uht="-, 0.500" urt="1.000, 0.502""#;
    let f = timing.parse_line(line.as_bytes()).expect("timing");
    assert_eq!(f.get("request_time"), Some(&b"1.503"[..]));
    assert_eq!(f.get("upstream_header_time"), Some(&b"-, 0.500"[..]));
    assert_eq!(f.get("upstream_response_time"), Some(&b"1.000, 0.502"[..]));
    // rt must be a decimal.
    let bad = line.replace("rt=1.503", "rt=fast");
    assert!(timing.parse_line(bad.as_bytes()).is_none());
}

#[test]
fn splits_unquoted_values_with_spaces() {
    // Free text without quotes, then upstream lists with `, ` and ` : ` separators.
    let f = fmt(&[
        "$remote_addr $http_user_agent [$time_local] $status ",
        "$upstream_addr $upstream_status $upstream_response_time $request_time",
    ]);
    let line = "192.0.2.1 Mozilla/5.0 (X11; Linux) [x] y [24/Nov/2026:10:00:01 +0000] 200 127.0.0.1:8001, [::1]:8002 : unix:/run/app.sock 502, 504 : 200 0.001, 0.002 : 0.003 0.010";
    let fields = f.parse_line(line.as_bytes()).expect("unquoted");
    let get = |v: &str| String::from_utf8_lossy(fields.get(v).unwrap()).into_owned();
    assert_eq!(get("http_user_agent"), "Mozilla/5.0 (X11; Linux) [x] y");
    assert_eq!(
        get("upstream_addr"),
        "127.0.0.1:8001, [::1]:8002 : unix:/run/app.sock"
    );
    assert_eq!(get("upstream_status"), "502, 504 : 200");
    assert_eq!(get("upstream_response_time"), "0.001, 0.002 : 0.003");
    assert_eq!(get("request_time"), "0.010");
    let a = attempts(&fields);
    assert_eq!(a.len(), 3);
    assert_eq!(
        a.iter()
            .map(|a| (a.addr, a.status, a.after_redirect))
            .collect::<Vec<_>>(),
        [
            (Some("127.0.0.1:8001"), Some(502), false),
            (Some("[::1]:8002"), Some(504), false),
            (Some("unix:/run/app.sock"), Some(200), true)
        ]
    );
}

#[test]
fn splits_json_with_escapes() {
    let f = fmt(&[
        "escape=json",
        "{\"time\":\"$time_iso8601\",\"req\":\"$request\",\"status\":$status,",
        "\"ua\":\"$http_user_agent\",\"up\":\"$upstream_addr\",\"us\":\"$upstream_status\",",
        "\"ucs\":\"$upstream_cache_status\"}",
    ]);
    let line = r#"{"time":"2026-11-24T10:00:01+01:00","req":"GET /a\",\"status\":200 HTTP/1.1","status":502,"ua":"x\\\"y\u0001\n\té","up":"","us":"","ucs":""}"#;
    let fields = f.parse_line(line.as_bytes()).expect("json");
    assert_eq!(
        fields.get("request"),
        Some(&br#"GET /a","status":200 HTTP/1.1"#[..])
    );
    assert_eq!(fields.status(), Some(502));
    assert_eq!(
        fields.get("http_user_agent"),
        Some("x\\\"y\u{1}\n\té".as_bytes())
    );
    // escape=json writes nothing for a missing variable.
    assert_eq!(fields.get("upstream_addr"), Some(&b""[..]));
    assert_eq!(fields.value("upstream_addr"), None);
    assert!(attempts(&fields).is_empty());
    assert_eq!(fields.time(&jiff::tz::TimeZone::UTC), Some(at(10, 0, 1)));
    // An unescaped quote inside a value is not JSON escaping: no match.
    let raw = line.replace(r#"GET /a\","#, r#"GET /a","#);
    assert!(f.parse_line(raw.as_bytes()).is_none());
}

#[test]
fn escape_none_and_msec() {
    let f = fmt(&[
        "escape=none",
        "$msec \"$request\" $status \"$http_user_agent\"",
    ]);
    let line = r#"1795514401.250 "GET /say"hi" 200 1" 502 "a "quoted" agent""#;
    let fields = f.parse_line(line.as_bytes()).expect("none");
    assert_eq!(fields.get("request"), Some(&br#"GET /say"hi" 200 1"#[..]));
    assert_eq!(fields.status(), Some(502));
    assert_eq!(
        fields.get("http_user_agent"),
        Some(&br#"a "quoted" agent"#[..])
    );
    // $msec in UTC: 1795514401 is 2026-11-24T10:00:01Z; the milliseconds are kept.
    assert_eq!(
        fields.time(&jiff::tz::TimeZone::UTC),
        Some(date(2026, 11, 24).at(10, 0, 1, 250_000_000))
    );
}

#[test]
fn lines_that_do_not_match() {
    let c = LogFormat::combined();
    let good = r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 502 157 "-" "-""#;
    assert!(c.parse_line(good.as_bytes()).is_some());
    for bad in [
        "",
        "garbage",
        // Status not three digits; a bad time; a missing field; trailing text.
        r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 5020 157 "-" "-""#,
        r#"1.2.3.4 - - [24/Nox/2026:10:00:01 +0000] "GET / HTTP/1.1" 502 157 "-" "-""#,
        r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 502 157 "-""#,
        r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 502 157 "-" "-" extra"#,
        // A raw quote inside a value is impossible with the default escaping.
        r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET /"x HTTP/1.1" 502 157 "-" "-""#,
    ] {
        assert!(c.parse_line(bad.as_bytes()).is_none(), "{bad}");
    }
    // Every prefix and every single-byte change: no panic.
    for cut in 0..good.len() {
        let _ = c.parse_line(&good.as_bytes()[..cut]);
        let mut b = good.as_bytes().to_vec();
        b[cut] = 0xff;
        let _ = c.parse_line(&b);
    }
}

#[test]
fn hostile_lines_stay_cheap() {
    // Many adjacent free-text variables and a line full of separators: the step budget
    // and the memo keep this bounded.
    let f = fmt(&["escape=none", "$a $b $c $d $e $f $g $h \"$i\" $status"]);
    let line = "x \" ".repeat(4000);
    let start = Instant::now();
    assert!(f.parse_line(line.as_bytes()).is_none());
    let adjacent = fmt(&["$a$b$c$d$e$f$g$h$i$status."]);
    assert!(adjacent.parse_line("y".repeat(16_000).as_bytes()).is_none());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    // Adjacent variables still split when the shapes allow it.
    let f = fmt(&["$status$request_time"]);
    let fields = f.parse_line(b"5020.001").expect("adjacent");
    assert_eq!(fields.status(), Some(502));
    assert_eq!(fields.get("request_time"), Some(&b"0.001"[..]));
}

// ---------------------------------------------------------------------------------------
// Reports: scan_with on the suggested upstream format.

/// A line in the suggested `upstreamlog` format at 24/Nov/2026 `time`.
fn up_line(time: &str, request: &str, status: u16, upstream: [&str; 6]) -> String {
    let [ua, us, uct, uht, urt, ucs] = upstream;
    format!(
        "192.0.2.1 - - [24/Nov/2026:{time} +0000] \"{request}\" {status} 157 \"-\" \"curl/8.5.0\" ua=\"{ua}\" us=\"{us}\" uct=\"{uct}\" uht=\"{uht}\" urt=\"{urt}\" ucs=\"{ucs}\"\n"
    )
}

/// The format `suggest_format` proposes for a text log, compiled through a config.
fn upstreamlog() -> LogFormat {
    let s = suggest_format(&LogFormat::combined(), "/var/log/nginx/access.log", &[]).unwrap();
    let text = format!("http {{ {} }}", s.log_format.unwrap());
    let config = Config::from_text(&text, Path::new("/etc/nginx/nginx.conf")).unwrap();
    let all = LogFormat::all(&config);
    LogFormat::find(&all, Some("upstreamlog")).unwrap().clone()
}

fn report(format: &LogFormat, input: &str, opts: &AccessOptions) -> AccessReport {
    scan_with(Cursor::new(input.as_bytes()), format, opts).unwrap()
}

const A: &str = "127.0.0.1:8001";
const B: &str = "127.0.0.1:8002";

/// A log of every kind of line the report distinguishes.
fn upstream_mix() -> String {
    let mut log = String::new();
    // Before the window.
    log += &up_line(
        "09:59:00",
        "GET /old HTTP/1.1",
        502,
        [A, "502", "0.000", "0.001", "0.001", "-"],
    );
    // The upstream's own 502s (a header time), twice.
    for t in ["10:00:05", "10:00:40"] {
        log += &up_line(
            t,
            "GET /api/items?page=1 HTTP/1.1",
            502,
            [A, "502", "0.000", "0.010", "0.010", "-"],
        );
    }
    // nginx's 502 after a refused connect (no header time).
    log += &up_line(
        "10:01:10",
        "GET /api/items?page=2 HTTP/1.1",
        502,
        [B, "502", "-", "-", "0.000", "-"],
    );
    // A cached 502 and a `return 502`.
    log += &up_line(
        "10:01:20",
        "GET /cached HTTP/1.1",
        502,
        ["-", "-", "-", "-", "-", "HIT"],
    );
    log += &up_line(
        "10:01:30",
        "GET /bad HTTP/1.1",
        502,
        ["-", "-", "-", "-", "-", "-"],
    );
    // A read timeout.
    log += &up_line(
        "10:02:00",
        "GET /slow HTTP/1.1",
        504,
        [A, "504", "0.000", "-", "60.001", "-"],
    );
    // A retry and an internal redirect that hid failures.
    log += &up_line(
        "10:02:10",
        "GET /api/items HTTP/1.1",
        200,
        [
            "127.0.0.1:8002, 127.0.0.1:8001",
            "502, 200",
            "-, 0.000",
            "-, 0.005",
            "0.000, 0.005",
            "-",
        ],
    );
    log += &up_line(
        "10:02:20",
        "GET /r HTTP/1.1",
        200,
        [
            "127.0.0.1:8002 : 127.0.0.1:8001",
            "502 : 200",
            "- : 0.000",
            "- : 0.004",
            "0.000 : 0.004",
            "-",
        ],
    );
    // Plain successes.
    for s in 0..15 {
        log += &up_line(
            &format!("10:03:{s:02}"),
            "GET / HTTP/1.1",
            200,
            [A, "200", "0.000", "0.002", "0.002", "-"],
        );
    }
    // Lines of another format, and garbage.
    log += &combined("10:04:00", "GET / HTTP/1.1", "502", "157");
    log += "garbage line\n";
    log
}

#[test]
fn report_classifies_every_kind_of_line() {
    let format = upstreamlog();
    let opts = AccessOptions {
        since: Some(at(10, 0, 0)),
        top_urls: 2,
        ..AccessOptions::default()
    };
    let r = report(&format, &upstream_mix(), &opts);
    assert_eq!(r.format, "upstreamlog");
    assert!(r.has_time && r.missing.is_empty());
    assert_eq!((r.summary.lines_read, r.summary.lines_unparsed), (26, 2));
    assert_eq!(
        (r.unmatched, r.oversized, r.unmatched_samples.len()),
        (2, 0, 2)
    );
    assert_eq!(r.unmatched_samples[1], "garbage line");
    assert_eq!((r.requests, r.status_502, r.status_504), (23, 5, 1));
    assert_eq!(r.summary.lines_in_window, 23);
    let counts: Vec<(u16, u64)> = r
        .summary
        .statuses
        .iter()
        .map(|c| (c.status, c.count))
        .collect();
    assert_eq!(counts, [(502, 5), (504, 1)]);
    assert_eq!(
        r.summary.statuses[0].requests,
        [
            "GET /api/items?page=1 HTTP/1.1",
            "GET /api/items?page=2 HTTP/1.1",
            "GET /cached HTTP/1.1"
        ]
    );
    assert!(r.enough_volume);
    assert!((r.share().unwrap() - 6.0 / 23.0).abs() < 1e-9);
    assert_eq!(r.rate_text(), "6 of 23 requests (26.1%) got 502 or 504");

    // Silent and hidden failures.
    assert_eq!(r.upstream_502.count, 2);
    assert_eq!(r.upstream_502.first_seen, Some(at(10, 0, 5)));
    assert_eq!(r.upstream_502.last_seen, Some(at(10, 0, 40)));
    assert!(r.upstream_502.samples[0].contains("GET /api/items?page=1"));
    assert_eq!(r.nginx_502.count, 1);
    assert_eq!(r.cached_502.count, 1);
    assert!(r.cached_502.samples[0].contains("GET /cached"));
    assert_eq!(r.no_upstream_502.count, 1);
    assert_eq!(r.unknown_502.count, 0);
    assert_eq!((r.retried_ok.count, r.redirected_ok.count), (1, 1));
    assert!(r.retried_ok.samples[0].contains("us=\"502, 200\""));
    assert!(r.redirected_ok.samples[0].contains("us=\"502 : 200\""));
    assert_eq!(r.hidden_failures, 2);

    // By upstream: the last attempt carries the client-visible error.
    let up: Vec<(&str, u64, u64, u64, u64)> = r
        .by_upstream
        .iter()
        .map(|u| {
            (
                u.upstream.as_str(),
                u.status_502,
                u.status_504,
                u.attempts,
                u.failed_attempts,
            )
        })
        .collect();
    assert_eq!(
        up,
        [(A, 2, 1, 20, 3), (NO_UPSTREAM, 2, 0, 0, 0), (B, 1, 0, 3, 3)]
    );
    // By path, top 2: ties by path.
    let urls: Vec<(&str, u64, u64)> = r
        .by_url
        .iter()
        .map(|u| (u.path.as_str(), u.status_502, u.status_504))
        .collect();
    assert_eq!(urls, [("/api/items", 3, 0), ("/bad", 1, 0)]);
    // The timeline.
    let minutes: Vec<(DateTime, u64, u64, u64)> = r
        .per_minute
        .iter()
        .map(|m| (m.minute, m.requests, m.status_502, m.status_504))
        .collect();
    assert_eq!(
        minutes,
        [
            (at(10, 0, 0), 2, 2, 0),
            (at(10, 1, 0), 3, 3, 0),
            (at(10, 2, 0), 3, 0, 1),
            (at(10, 3, 0), 15, 0, 0)
        ]
    );

    // Without a window the old line counts too.
    let all = report(&format, &upstream_mix(), &AccessOptions::default());
    assert_eq!(
        (all.requests, all.status_502, all.upstream_502.count),
        (24, 6, 3)
    );
    assert_eq!(all.per_minute.first().map(|m| m.minute), Some(at(9, 59, 0)));
}

#[test]
fn volume_guard() {
    let format = upstreamlog();
    let log = |ok: usize, bad: usize| {
        let mut log = String::new();
        for _ in 0..ok {
            log += &up_line(
                "10:00:00",
                "GET / HTTP/1.1",
                200,
                [A, "200", "0.000", "0.001", "0.001", "-"],
            );
        }
        for _ in 0..bad {
            log += &up_line(
                "10:00:01",
                "GET / HTTP/1.1",
                502,
                [A, "502", "-", "-", "0.000", "-"],
            );
        }
        report(&format, &log, &AccessOptions::default())
    };
    // 19 requests: too few, however many failed.
    let r = log(14, 5);
    assert_eq!(
        (r.requests, r.errors(), r.enough_volume, r.share()),
        (19, 5, false, None)
    );
    assert_eq!(
        r.rate_text(),
        "too few requests to call a rate (19 requests, 5 with 502 or 504)"
    );
    // Enough requests but only 2 errors.
    let r = log(98, 2);
    assert_eq!((r.enough_volume, r.share()), (false, None));
    // 20 requests, 3 errors: a rate.
    let r = log(17, 3);
    assert_eq!(r.share(), Some(0.15));
    assert_eq!(r.rate_text(), "3 of 20 requests (15.0%) got 502 or 504");
    // The thresholds are options.
    let mut small = String::new();
    small += &up_line(
        "10:00:01",
        "GET / HTTP/1.1",
        502,
        [A, "502", "-", "-", "0.000", "-"],
    );
    let opts = AccessOptions {
        min_requests: 1,
        min_errors: 1,
        ..AccessOptions::default()
    };
    assert_eq!(report(&format, &small, &opts).share(), Some(1.0));
}

#[test]
fn formats_without_upstream_variables() {
    let log = [
        combined("10:00:01", "GET /a HTTP/1.1", "502", "157"),
        combined("10:00:02", "GET /a?x HTTP/1.1", "504", "167"),
        combined("10:00:03", "GET /b HTTP/1.1", "200", "1"),
    ]
    .concat();
    let r = report(&LogFormat::combined(), &log, &AccessOptions::default());
    assert_eq!(
        (r.requests, r.status_502, r.status_504, r.unmatched),
        (3, 1, 1, 0)
    );
    assert_eq!(r.unknown_502.count, 1);
    assert_eq!(
        r.upstream_502.count + r.nginx_502.count + r.cached_502.count,
        0
    );
    assert!(r.by_upstream.is_empty());
    assert_eq!(r.by_url.len(), 1);
    assert_eq!(
        (
            r.by_url[0].path.as_str(),
            r.by_url[0].status_502,
            r.by_url[0].status_504
        ),
        ("/a", 1, 1)
    );
    assert_eq!(
        r.missing,
        [
            "$upstream_addr",
            "$upstream_status",
            "$upstream_connect_time",
            "$upstream_header_time",
            "$upstream_response_time",
            "$upstream_cache_status"
        ]
    );
    // A format without any time: everything is in the window, no timeline.
    let f = fmt(&["$status \"$request\""]);
    let opts = AccessOptions {
        since: Some(at(23, 0, 0)),
        ..AccessOptions::default()
    };
    let r = report(
        &f,
        "502 \"GET /x HTTP/1.1\"\n200 \"GET / HTTP/1.1\"\n",
        &opts,
    );
    assert!(!r.has_time);
    assert_eq!((r.requests, r.status_502), (2, 1));
    assert!(r.per_minute.is_empty());
    assert!(r.missing.contains(&"$time_local"));
    // A format that lacks only the header time cannot tell who made a 502.
    let f = fmt(&["[$time_local] \"$request\" $status us=$upstream_status"]);
    let r = report(
        &f,
        "[24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 502 us=502\n",
        &AccessOptions::default(),
    );
    assert_eq!((r.unknown_502.count, r.upstream_502.count), (1, 0));
}

#[test]
fn suggestions() {
    let combined = LogFormat::combined();
    let s = suggest_format(
        &combined,
        "/var/log/nginx/access.log",
        std::slice::from_ref(&combined),
    )
    .unwrap();
    assert_eq!(s.name, "upstreamlog");
    assert_eq!(
        s.access_log,
        "access_log /var/log/nginx/access.log upstreamlog;"
    );
    assert_eq!(
        s.log_format.as_deref(),
        Some(
            "log_format upstreamlog '$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" ua=\"$upstream_addr\" us=\"$upstream_status\" uct=\"$upstream_connect_time\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\" ucs=\"$upstream_cache_status\"';"
        )
    );
    assert_eq!(s.missing, missing_variables(&combined));
    assert!(missing_variables(&upstreamlog()).is_empty());
    assert!(suggest_format(&upstreamlog(), "/x.log", &[]).is_none());

    // The usual timing format lacks the address, status and cache status.
    let timing = fmt(&[TIMING]);
    assert_eq!(
        missing_variables(&timing),
        [
            "$upstream_addr",
            "$upstream_status",
            "$upstream_cache_status"
        ]
    );
    // A taken name; a path that needs quotes.
    let taken = LogFormat::parse("upstreamlog", &["$status".to_owned()]).unwrap();
    let s = suggest_format(&timing, "/var/log/my logs/a.log", &[taken]).unwrap();
    assert_eq!(s.name, "upstreamlog2");
    assert_eq!(
        s.access_log,
        "access_log '/var/log/my logs/a.log' upstreamlog2;"
    );
    assert!(
        s.log_format
            .unwrap()
            .starts_with("log_format upstreamlog2 '")
    );
    // A format of the config already has everything: switch to it.
    let s = suggest_format(&timing, "/a.log", &[combined.clone(), upstreamlog()]).unwrap();
    assert_eq!((s.name.as_str(), s.log_format), ("upstreamlog", None));
    assert_eq!(s.access_log, "access_log /a.log upstreamlog;");

    // A JSON format gets a JSON suggestion that nginx's parser and ours both accept.
    let json = fmt(&["escape=json", "{\"status\":$status}"]);
    let s = suggest_format(&json, "/a.json", &[]).unwrap();
    let line = s.log_format.unwrap();
    assert!(line.starts_with("log_format upstreamlog escape=json '{\"time\":\"$time_iso8601\""));
    let config = Config::from_text(&format!("http {{ {line} }}"), Path::new("/n.conf")).unwrap();
    let all = LogFormat::all(&config);
    let j = LogFormat::find(&all, Some("upstreamlog")).unwrap();
    assert_eq!(j.escape, Escape::Json);
    assert!(missing_variables(j).is_empty());
}

#[test]
fn attempts_align_lists() {
    let f = fmt(&["$status $upstream_addr|$upstream_status|$upstream_header_time"]);
    let fields = f
        .parse_line(b"200 10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80|502, - : 200|-, - : 0.004")
        .unwrap();
    let a = attempts(&fields);
    assert_eq!(
        a,
        [
            Attempt {
                addr: Some("10.0.0.1:80"),
                status: Some(502),
                connect_time: None,
                header_time: None,
                response_time: None,
                after_redirect: false,
            },
            Attempt {
                addr: Some("10.0.0.2:80"),
                status: None,
                connect_time: None,
                header_time: None,
                response_time: None,
                after_redirect: false,
            },
            Attempt {
                addr: Some("10.0.0.3:80"),
                status: Some(200),
                connect_time: None,
                header_time: Some("0.004"),
                response_time: None,
                after_redirect: true,
            },
        ]
    );
    // `-` for the whole list: no attempt.
    let fields = f.parse_line(b"502 -|-|-").unwrap();
    assert!(attempts(&fields).is_empty());
    // Lists of different lengths: the status list leads.
    let fields = f.parse_line(b"200 10.0.0.1:80|502, 200|0.001").unwrap();
    let a = attempts(&fields);
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[1].addr, a[1].status, a[1].header_time),
        (None, Some(200), None)
    );
}

#[test]
fn report_reads_files_and_hostile_input() {
    let dir = tempfile::tempdir().unwrap();
    let format = upstreamlog();
    let path = write_log(dir.path(), "up.log", upstream_mix().as_bytes());
    let r = scan_file_with(&path, &format, &AccessOptions::default()).unwrap();
    assert_eq!((r.requests, r.status_502), (24, 6));
    let gz = write_log(dir.path(), "up.log.1.gz", b"\x1f\x8b\x08\x00");
    assert!(matches!(
        scan_file_with(&gz, &format, &AccessOptions::default()),
        Err(AccessLogError::Compressed { .. })
    ));
    // Oversized, binary, CRLF and unterminated lines.
    let mut input = Vec::new();
    input.extend_from_slice(&vec![b'x'; 40_000]);
    input.push(b'\n');
    input.extend_from_slice(b"\x00\x01\x02\xff\xfe\n");
    input.extend_from_slice(
        up_line(
            "10:00:01",
            "GET / HTTP/1.1",
            502,
            [A, "502", "-", "-", "0.000", "-"],
        )
        .trim_end()
        .as_bytes(),
    );
    input.extend_from_slice(b"\r\n");
    input.extend_from_slice(
        up_line(
            "10:00:02",
            "GET / HTTP/1.1",
            502,
            [A, "502", "0.0", "0.001", "0.001", "-"],
        )
        .trim_end()
        .as_bytes(),
    );
    let r = scan_with(Cursor::new(input), &format, &AccessOptions::default()).unwrap();
    assert_eq!((r.summary.lines_read, r.oversized, r.unmatched), (4, 1, 1));
    assert_eq!((r.nginx_502.count, r.upstream_502.count), (1, 1));
    assert_eq!(r.summary.lines_unparsed, 2);
}

// ---------------------------------------------------------------------------------------
// The real nginx with custom formats.

/// An upstream on loopback that answers every request on its own: `502 Bad Gateway` for
/// paths containing `own` or `cached`, `200` otherwise. Serves until `stop` is set or 10 s
/// pass; returns the number of requests it answered.
fn app_upstream(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u16, thread::JoinHandle<usize>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut served = 0;
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            let Ok((mut stream, _)) = listener.accept() else {
                thread::sleep(POLL);
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            // Read the request head (bounded).
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let first = String::from_utf8_lossy(first);
            let bad = first.contains("own") || first.contains("cached");
            let (status, body) = if bad {
                ("502 Bad Gateway", "app says 502\n")
            } else {
                ("200 OK", "app ok\n")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            served += 1;
        }
        served
    });
    (port, handle)
}

#[test]
fn real_nginx_custom_formats() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(binary) = nginx_binary() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let closed = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let (app, app_thread) = app_upstream(Arc::clone(&stop));
    let d = dir.display();
    // The text format is exactly what suggest_format proposes.
    let text_format = suggest_format(&LogFormat::combined(), "x", &[])
        .unwrap()
        .log_format
        .unwrap();
    let json_format = concat!(
        "log_format j escape=json '{\"time\":\"$time_iso8601\",\"request\":\"$request\",",
        "\"status\":$status,\"ua\":\"$http_user_agent\",\"addr\":\"$upstream_addr\",",
        "\"us\":\"$upstream_status\",\"uct\":\"$upstream_connect_time\",",
        "\"uht\":\"$upstream_header_time\",\"urt\":\"$upstream_response_time\",",
        "\"cache\":\"$upstream_cache_status\"}';"
    );
    let conf = lab_conf(
        &d.to_string(),
        &format!(
            "\x20 {text_format}\n\
         \x20 {json_format}\n\
         \x20 access_log {d}/text.log upstreamlog;\n\
         \x20 access_log {d}/json.log j;\n\
         \x20 proxy_cache_path {d}/cache keys_zone=c:1m;\n\
         \x20 proxy_connect_timeout 1s;\n\
         \x20 proxy_read_timeout 2s;\n\
         \x20 upstream retry {{ server 127.0.0.1:{closed}; server 127.0.0.1:{app} backup; }}\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   location = /ok {{ return 200 \"ok\\n\"; }}\n\
         \x20   location = /bad {{ return 502; }}\n\
         \x20   location /app/ {{ proxy_pass http://127.0.0.1:{app}; }}\n\
         \x20   location = /refused {{ proxy_pass http://127.0.0.1:{closed}; }}\n\
         \x20   location = /retry {{ proxy_pass http://retry; }}\n\
         \x20   location = /redirect {{ proxy_pass http://127.0.0.1:{closed}; error_page 502 = @fallback; }}\n\
         \x20   location @fallback {{ proxy_pass http://127.0.0.1:{app}; }}\n\
         \x20   location /cached/ {{ proxy_pass http://127.0.0.1:{app}; proxy_cache c; proxy_cache_valid any 1m; }}\n\
         \x20 }}\n"
        ),
    );
    std::fs::write(dir.join("nginx.conf"), &conf).unwrap();
    let mut nginx = Nginx {
        binary,
        dir: dir.to_owned(),
        pid: None,
    };
    nginx.start(port);
    let before = jiff::ZonedDateTime::now().datetime();

    let expect = |target: &str, headers: &str, status: &[u8]| {
        let response = request(port, target, headers);
        assert!(
            response.starts_with(status),
            "{target}: {}",
            String::from_utf8_lossy(&response)
        );
        response
    };
    expect("/ok", "", b"HTTP/1.1 200");
    expect("/bad", "", b"HTTP/1.1 502");
    // The upstream's own 502, relayed: its body, not nginx's page. A quote in the URI and
    // a quote and a backslash in the User-Agent exercise both escapings.
    let own = expect(
        "/app/own?q=\"x",
        "User-Agent: a \"b\" \\c\r\n",
        b"HTTP/1.1 502",
    );
    assert!(own.ends_with(b"app says 502\n"));
    expect("/refused", "", b"HTTP/1.1 502");
    expect("/retry", "", b"HTTP/1.1 200");
    expect("/redirect", "", b"HTTP/1.1 200");
    expect("/cached/x", "", b"HTTP/1.1 502");
    expect("/cached/x", "", b"HTTP/1.1 502");

    assert!(nginx.stop(), "nginx did not stop");
    stop.store(true, Ordering::SeqCst);
    // own, retry (backup), redirect (fallback), cached (once: the second is a HIT).
    assert_eq!(app_thread.join().unwrap(), 4);

    // Read the config back the way fix502 does, and both logs with their formats.
    let config = Config::from_text(&conf, &dir.join("nginx.conf")).unwrap();
    let formats = LogFormat::all(&config);
    let opts = AccessOptions {
        since: Some(before - jiff::SignedDuration::from_secs(1)),
        ..AccessOptions::default()
    };
    for (file, name) in [("text.log", "upstreamlog"), ("json.log", "j")] {
        let format = LogFormat::find(&formats, Some(name)).unwrap();
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let r = scan_file_with(&path, format, &opts).unwrap();
        let ctx = format!("{file}:\n{text}\n{r:#?}");
        assert_eq!(r.format, name);
        assert!(r.missing.is_empty(), "{ctx}");
        assert_eq!(
            (r.summary.lines_read, r.unmatched, r.requests),
            (8, 0, 8),
            "{ctx}"
        );
        assert_eq!((r.status_502, r.status_504), (5, 0), "{ctx}");
        assert_eq!(r.upstream_502.count, 2, "own and the cache MISS: {ctx}");
        assert_eq!(r.nginx_502.count, 1, "refused: {ctx}");
        assert_eq!(r.cached_502.count, 1, "the cache HIT: {ctx}");
        assert_eq!(r.no_upstream_502.count, 1, "return 502: {ctx}");
        assert_eq!(r.unknown_502.count, 0, "{ctx}");
        assert_eq!(
            (r.retried_ok.count, r.redirected_ok.count, r.hidden_failures),
            (1, 1, 2),
            "{ctx}"
        );
        let app_addr = format!("127.0.0.1:{app}");
        let closed_addr = format!("127.0.0.1:{closed}");
        let of = |addr: &str| {
            r.by_upstream
                .iter()
                .find(|u| u.upstream == addr)
                .map(|u| (u.status_502, u.attempts, u.failed_attempts))
        };
        assert_eq!(of(&app_addr), Some((2, 4, 2)), "{ctx}");
        assert_eq!(of(&closed_addr), Some((1, 3, 3)), "{ctx}");
        let urls: Vec<(&str, u64)> = r
            .by_url
            .iter()
            .map(|u| (u.path.as_str(), u.status_502))
            .collect();
        assert_eq!(
            urls,
            [
                ("/cached/x", 2),
                ("/app/own", 1),
                ("/bad", 1),
                ("/refused", 1)
            ],
            "{ctx}"
        );
        assert_eq!(r.per_minute.iter().map(|m| m.requests).sum::<u64>(), 8);
        // Escaping undone: the request and the User-Agent as the client sent them.
        let c502 = r.summary.statuses.iter().find(|c| c.status == 502).unwrap();
        assert!(
            c502.requests
                .iter()
                .any(|q| q == "GET /app/own?q=\"x HTTP/1.0"),
            "{ctx}"
        );
        let own_line = text.lines().find(|l| l.contains("/app/own")).unwrap();
        let fields = format.parse_line(own_line.as_bytes()).unwrap();
        assert_eq!(
            fields.get("http_user_agent"),
            Some(&b"a \"b\" \\c"[..]),
            "{ctx}"
        );
        // A window after the run keeps nothing.
        let later = AccessOptions {
            since: Some(jiff::ZonedDateTime::now().datetime() + jiff::SignedDuration::from_secs(2)),
            ..AccessOptions::default()
        };
        let r = scan_file_with(&path, format, &later).unwrap();
        assert_eq!((r.summary.lines_read, r.requests), (8, 0));
    }
    // The JSON log really is JSON-escaped and the text log \x-escaped.
    let json = std::fs::read_to_string(dir.join("json.log")).unwrap();
    assert!(json.contains(r#""ua":"a \"b\" \\c""#), "{json}");
    let text = std::fs::read_to_string(dir.join("text.log")).unwrap();
    assert!(text.contains(r#""a \x22b\x22 \x5Cc""#), "{text}");
    assert!(text.contains("us=\"502, 200\""), "{text}");
    assert!(text.contains("us=\"502 : 200\""), "{text}");
}

#[test]
fn stamps_for_bisecting() {
    use fix502_nginx::window::Stamp;
    assert_eq!(LogFormat::combined().stamp(), Some(Stamp::AccessLog));
    assert_eq!(upstreamlog().stamp(), Some(Stamp::AccessLog));
    assert_eq!(
        fmt(&["escape=json", "{\"t\":\"$time_iso8601\"}"]).stamp(),
        Some(Stamp::Iso8601)
    );
    assert_eq!(fmt(&["t=$time_local $status"]).stamp(), None);
    assert_eq!(fmt(&["$msec $status"]).stamp(), None);
    assert_eq!(fmt(&["$status"]).stamp(), None);
}

#[test]
fn scanner_reads_rotated_history() {
    use fix502_nginx::accesslog::AccessScanner;
    use fix502_nginx::history::{HistoryReader, history};
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let format = upstreamlog();
    let stamp = format.stamp().unwrap();
    let own = [A, "502", "0.000", "0.010", "0.010", "-"];
    let refused = [B, "502", "-", "-", "0.000", "-"];
    // Oldest in access.log.1.gz, then the live file.
    let old = [
        up_line("09:00:00", "GET /old HTTP/1.1", 502, own),
        up_line("10:00:01", "GET /a HTTP/1.1", 502, own),
    ]
    .concat();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(old.as_bytes()).unwrap();
    write_log(dir.path(), "access.log.1.gz", &gz.finish().unwrap());
    let live = [
        up_line("10:00:02", "GET /b HTTP/1.1", 502, refused),
        up_line(
            "10:00:03",
            "GET /c HTTP/1.1",
            200,
            [A, "200", "0.000", "0.001", "0.001", "-"],
        ),
    ]
    .concat();
    let path = write_log(dir.path(), "access.log", live.as_bytes());
    let since = Some(at(10, 0, 0));
    let parts = history(&path, since, stamp).unwrap();
    let mut reader = HistoryReader::new(parts, since, stamp);
    let opts = AccessOptions {
        since,
        ..AccessOptions::default()
    };
    let mut scanner = AccessScanner::new(&format, &opts);
    scanner.feed(&mut reader).unwrap();
    assert!(reader.issues().is_empty());
    let r = scanner.finish();
    assert_eq!((r.requests, r.status_502, r.unmatched), (3, 2, 0));
    assert_eq!((r.upstream_502.count, r.nginx_502.count), (1, 1));
}
