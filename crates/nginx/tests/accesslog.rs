//! Tests of `accesslog`: line shapes, counting, the window, hostile input, file tails, and a
//! log written by the real nginx.

use std::io::{Cursor, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use fix502_nginx::accesslog::{
    AccessLogError, AccessOptions, AccessSummary, parse_line, scan, scan_file,
};
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

/// Whether `pid` is a live process (zombies count as gone).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

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
    let conf = format!(
        "daemon on;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log error;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         \x20 log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n\
         \x20                 '$status $body_bytes_sent \"$http_referer\" '\n\
         \x20                 '\"$http_user_agent\" \"$http_x_forwarded_for\"';\n\
         \x20 access_log {d}/access.log combined;\n\
         \x20 access_log {d}/main.log main;\n\
         \x20 client_body_temp_path {d}/tmp/body;\n\
         \x20 proxy_temp_path {d}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/tmp/scgi;\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   location = /ok {{ return 200 \"ok\\n\"; }}\n\
         \x20   location = /bad {{ return 502; }}\n\
         \x20   location = /gw {{ return 504; }}\n\
         \x20   location = /closed {{ proxy_pass http://127.0.0.1:{closed}; proxy_connect_timeout 1s; }}\n\
         \x20   location = /relay {{ proxy_pass http://127.0.0.1:{relay}; proxy_read_timeout 2s; }}\n\
         \x20 }}\n\
         }}\n"
    );
    std::fs::create_dir(dir.join("tmp")).unwrap();
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
