//! Tests of `logscan`: the window, grouping, samples, and hostile input.

use std::io::{self, BufRead, BufReader, Cursor, Read};

use fix502_nginx::classify::{InvalidHeaderKind, Phase, Signature};
use fix502_nginx::logscan::{LogError, LogSummary, ScanOptions, scan, scan_file};
use jiff::civil::{DateTime, date};

const CATALOG: &str = include_str!("fixtures/errorlog/catalog.log");
const REAL: &str = include_str!("fixtures/errorlog/real-nginx.log");

fn scan_str(input: &str, opts: &ScanOptions) -> LogSummary {
    scan(Cursor::new(input.as_bytes()), opts).unwrap()
}

fn scan_bytes(input: &[u8], opts: &ScanOptions) -> LogSummary {
    scan(Cursor::new(input), opts).unwrap()
}

fn at(h: i8, m: i8, s: i8) -> DateTime {
    date(2025, 3, 14).at(h, m, s, 0)
}

/// A refused line in the asynchronous `connect() failed` form at `time` (HH:MM:SS) against
/// `peer`.
fn refused(time: &str, cid: u32, peer: &str) -> String {
    format!(
        "2025/03/14 {time} [error] 2417#2417: *{cid} connect() failed (111: Connection refused) while connecting to upstream, client: 192.0.2.1, server: app.example.com, request: \"GET /r{cid} HTTP/1.1\", upstream: \"http://{peer}/r{cid}\", host: \"app.example.com\"\n"
    )
}

/// A header-phase failure (no errno) at `time` against 127.0.0.1:8000.
fn header_failure(time: &str, message: &str, action: &str) -> String {
    format!(
        "2025/03/14 {time} [error] 1#1: *9 {message} while {action}, client: 192.0.2.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"h\"\n"
    )
}

#[test]
fn default_options() {
    let o = ScanOptions::default();
    assert_eq!(
        (o.since, o.max_samples, o.max_line_bytes),
        (None, 2, 4 * 1024)
    );
}

#[test]
fn catalog_counts_without_window() {
    let s = scan_str(CATALOG, &ScanOptions::default());
    assert_eq!(s.lines_read, 83);
    assert_eq!(s.lines_in_window, 83);
    assert_eq!(
        (s.lines_unparsed, s.lines_oversized, s.lines_ungrouped),
        (0, 0, 0)
    );
    assert_eq!(s.first_time, Some(at(9, 21, 7)));
    assert_eq!(s.last_time, Some(at(9, 42, 42)));
    // 83 lines, 6 of them not about an upstream.
    let grouped: u64 = s.groups.iter().map(|g| g.count).sum();
    assert_eq!(grouped, 77);
    let php_missing = s
        .groups
        .iter()
        .find(|g| g.failure.signature == Signature::SocketMissing)
        .unwrap();
    assert_eq!(
        php_missing.failure.peer.as_deref(),
        Some("unix:/run/php/php8.2-fpm.sock")
    );
    assert!(php_missing.failure.unix);
    assert_eq!(php_missing.failure.scheme.as_deref(), Some("fastcgi"));
    assert_eq!(php_missing.errno, Some(2));
    assert_eq!(php_missing.server.as_deref(), Some("example.com"));
    assert_eq!(
        php_missing.request.as_deref(),
        Some("GET /index.php HTTP/2.0")
    );
    assert_eq!(php_missing.failure.phase, Some(Phase::Connecting));
    assert_eq!(
        php_missing.message,
        "connect() to unix:/run/php/php8.2-fpm.sock failed"
    );
}

#[test]
fn window_keeps_lines_at_or_after_since() {
    let opts = ScanOptions {
        since: Some(at(9, 37, 0)),
        ..ScanOptions::default()
    };
    let s = scan_str(CATALOG, &opts);
    assert_eq!(s.lines_read, 83);
    let expected = CATALOG
        .lines()
        .filter(|l| &l[..19] >= "2025/03/14 09:37:00")
        .count();
    assert_eq!(s.lines_in_window, u64::try_from(expected).unwrap());
    assert_eq!(s.lines_in_window, 69);
    assert_eq!(s.first_time, Some(at(9, 37, 0))); // a line exactly at `since` is kept
    assert!(s.groups.iter().all(|g| g.first_seen >= at(9, 37, 0)));
    // Earlier lines are not grouped: the 09:21:07 refusal to 127.0.0.1:8080 is gone.
    assert!(
        !s.groups
            .iter()
            .any(|g| g.failure.signature == Signature::ConnectRefused
                && g.failure.peer.as_deref() == Some("127.0.0.1:8080"))
    );
    assert!(
        !s.groups
            .iter()
            .any(|g| g.failure.signature == Signature::SocketMissing)
    );

    let future = ScanOptions {
        since: Some(date(2030, 1, 1).at(0, 0, 0, 0)),
        ..ScanOptions::default()
    };
    let s = scan_str(CATALOG, &future);
    assert_eq!(
        (s.lines_read, s.lines_in_window, s.groups.len()),
        (83, 0, 0)
    );
    assert_eq!((s.first_time, s.last_time), (None, None));
}

#[test]
fn grouping_counts_first_last_and_samples() {
    let mut log = String::new();
    log += &refused("10:00:01", 1, "127.0.0.1:8000");
    log += &refused("10:00:02", 2, "10.0.0.9:80");
    log += &refused("10:00:03", 3, "127.0.0.1:8000");
    // The `connect() to <peer> failed` form against the same peer joins the same group.
    log += "2025/03/14 10:00:04 [error] 1#1: *4 connect() to 127.0.0.1:8000 failed (111: Connection refused) while connecting to upstream, client: 192.0.2.1, server: other, request: \"GET /b3 HTTP/1.1\", upstream: \"http://127.0.0.1:8000/b3\"\n";
    log += &refused("10:00:05", 5, "127.0.0.1:8000");
    log += &refused("10:00:06", 6, "10.0.0.9:80");
    let s = scan_str(&log, &ScanOptions::default());
    assert_eq!(s.groups.len(), 2);
    let g = &s.groups[0];
    assert_eq!(g.failure.signature, Signature::ConnectRefused);
    assert_eq!(g.failure.peer.as_deref(), Some("127.0.0.1:8000"));
    assert_eq!(g.count, 4);
    assert_eq!((g.first_seen, g.last_seen), (at(10, 0, 1), at(10, 0, 5)));
    assert_eq!(g.samples.len(), 2);
    assert!(g.samples[0].contains("*1 connect()"));
    assert!(g.samples[1].contains("*5 connect()"));
    assert!(!g.samples[1].ends_with('\n'));
    assert_eq!(g.message, "connect() failed");
    assert_eq!(g.errno, Some(111));
    assert_eq!(g.request.as_deref(), Some("GET /r1 HTTP/1.1"));
    let h = &s.groups[1];
    assert_eq!(
        (h.failure.peer.as_deref(), h.count),
        (Some("10.0.0.9:80"), 2)
    );
    assert_eq!((h.first_seen, h.last_seen), (at(10, 0, 2), at(10, 0, 6)));
}

#[test]
fn groups_sorted_by_count_then_first_seen() {
    let mut log = String::new();
    log += &refused("10:00:05", 1, "10.0.0.3:80"); // count 1, later
    log += &refused("10:00:01", 2, "10.0.0.2:80"); // count 1, earlier
    log += &refused("10:00:02", 3, "10.0.0.1:80");
    log += &refused("10:00:03", 4, "10.0.0.1:80"); // count 2
    let s = scan_str(&log, &ScanOptions::default());
    let peers: Vec<_> = s
        .groups
        .iter()
        .map(|g| g.failure.peer.as_deref().unwrap())
        .collect();
    assert_eq!(peers, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
}

#[test]
fn out_of_order_lines_widen_first_and_last() {
    let mut log = String::new();
    log += &refused("10:00:05", 1, "10.0.0.1:80");
    log += &refused("10:00:01", 2, "10.0.0.1:80");
    log += &refused("10:00:03", 3, "10.0.0.1:80");
    let s = scan_str(&log, &ScanOptions::default());
    let g = &s.groups[0];
    assert_eq!((g.first_seen, g.last_seen), (at(10, 0, 1), at(10, 0, 5)));
    assert_eq!(
        (s.first_time, s.last_time),
        (Some(at(10, 0, 1)), Some(at(10, 0, 5)))
    );
    // Samples follow file order: the first line read and the last line read.
    assert!(g.samples[0].contains("*1 ") && g.samples[1].contains("*3 "));
}

#[test]
fn response_groups_split_by_signature_and_phase() {
    let mut log = String::new();
    log += &header_failure(
        "10:00:01",
        "upstream sent too big header",
        "reading response header from upstream",
    );
    log += &header_failure(
        "10:00:02",
        "upstream prematurely closed connection",
        "reading response header from upstream",
    );
    log += &header_failure(
        "10:00:03",
        "upstream prematurely closed connection",
        "reading response header from upstream",
    );
    log += &header_failure(
        "10:00:04",
        "upstream prematurely closed connection",
        "reading upstream",
    );
    log += &header_failure(
        "10:00:05",
        "upstream sent invalid header: \"a\\x00...\"",
        "reading response header from upstream",
    );
    log += &header_failure(
        "10:00:06",
        "upstream sent invalid header: \"bb\\x01...\"",
        "reading response header from upstream",
    );
    log += &header_failure(
        "10:00:07",
        "recv() failed (104: Connection reset by peer)",
        "reading response header from upstream",
    );
    log += &header_failure(
        "10:00:08",
        "recv() failed (110: Connection timed out)",
        "reading response header from upstream",
    );
    let s = scan_str(&log, &ScanOptions::default());
    let summary: Vec<(String, u64, Option<i32>, Option<Phase>)> = s
        .groups
        .iter()
        .map(|g| (g.message.clone(), g.count, g.errno, g.failure.phase))
        .collect();
    let header = Some(Phase::ReadingHeader);
    assert_eq!(
        summary,
        [
            (
                "upstream prematurely closed connection".to_owned(),
                2,
                None,
                header
            ),
            ("upstream sent too big header".to_owned(), 1, None, header),
            (
                "upstream prematurely closed connection".to_owned(),
                1,
                None,
                Some(Phase::ReadingBody)
            ),
            (
                "upstream sent invalid header: \"a\\x00...\"".to_owned(),
                1,
                None,
                header
            ),
            (
                "upstream sent invalid header: \"bb\\x01...\"".to_owned(),
                1,
                None,
                header
            ),
            ("recv() failed".to_owned(), 1, Some(104), header),
            ("recv() failed".to_owned(), 1, Some(110), header),
        ]
    );
    let signatures: Vec<Signature> = s.groups.iter().map(|g| g.failure.signature).collect();
    assert_eq!(
        signatures,
        [
            Signature::PrematureClose,
            Signature::HeaderTooBig,
            Signature::PrematureClose,
            Signature::InvalidHeader(InvalidHeaderKind::Bytes { byte: Some(0) }),
            Signature::InvalidHeader(InvalidHeaderKind::Bytes { byte: Some(1) }),
            Signature::Reset,
            Signature::KernelTimedOut,
        ]
    );
    // The header-phase close is a 502; the body-phase one a truncated 200.
    assert_eq!(
        (
            s.groups[0].failure.http_status(),
            s.groups[0].failure.truncates_response()
        ),
        (502, false)
    );
    assert_eq!(
        (
            s.groups[2].failure.http_status(),
            s.groups[2].failure.truncates_response()
        ),
        (200, true)
    );
    assert!(s.groups[0].failure.is_gateway_error() && !s.groups[2].failure.is_gateway_error());
    assert_eq!(s.groups[3].failure.detail.as_deref(), Some("a\\x00..."));
}

#[test]
fn other_upstream_groups_still_split_by_message_kind_and_errno() {
    let mut log = String::new();
    for (time, message) in [
        ("10:00:01", "upstream server temporarily disabled"),
        ("10:00:02", "upstream server temporarily disabled"),
        ("10:00:03", "socket() failed (24: Too many open files)"),
        (
            "10:00:04",
            "socket() failed (23: Too many open files in system)",
        ),
    ] {
        log += &header_failure(time, message, "connecting to upstream");
    }
    let s = scan_str(&log, &ScanOptions::default());
    let summary: Vec<(String, u64, Option<i32>)> = s
        .groups
        .iter()
        .map(|g| (g.message.clone(), g.count, g.errno))
        .collect();
    assert_eq!(
        summary,
        [
            ("upstream server temporarily disabled".to_owned(), 2, None),
            ("socket() failed".to_owned(), 1, Some(24)),
            ("socket() failed".to_owned(), 1, Some(23)),
        ]
    );
}

#[test]
fn sample_count_options() {
    let log: String = (1..=5)
        .map(|i| refused(&format!("10:00:0{i}"), i, "10.0.0.1:80"))
        .collect();
    let samples = |max_samples| {
        let opts = ScanOptions {
            max_samples,
            ..ScanOptions::default()
        };
        let s = scan_str(&log, &opts);
        s.groups[0]
            .samples
            .iter()
            .map(|l| l.split(' ').nth(4).unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(samples(0), Vec::<String>::new());
    assert_eq!(samples(1), ["*5"]);
    assert_eq!(samples(2), ["*1", "*5"]);
    assert_eq!(samples(3), ["*1", "*2", "*5"]);
    assert_eq!(samples(10), ["*1", "*2", "*3", "*4", "*5"]);
}

#[test]
fn samples_are_capped_at_4096_bytes() {
    let long_uri = "é".repeat(3000); // 6000 bytes, 2-byte chars
    let line = format!(
        "2025/03/14 10:00:00 [error] 1#1: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4, server: s, request: \"GET /{long_uri} HTTP/1.1\", upstream: \"http://10.0.0.1:80/\"\n"
    );
    let opts = ScanOptions {
        max_line_bytes: 16 * 1024,
        ..ScanOptions::default()
    };
    let s = scan_str(&line, &opts);
    assert_eq!(s.lines_oversized, 0);
    let sample = &s.groups[0].samples[0];
    assert!(
        sample.len() <= 4096 && sample.len() >= 4093,
        "{}",
        sample.len()
    );
    assert!(line.starts_with(sample.as_str()));
    assert_eq!(s.groups[0].failure.peer.as_deref(), Some("10.0.0.1:80"));
}

#[test]
fn oversized_lines_are_counted_and_skipped() {
    let mut input = Vec::new();
    input.extend_from_slice(refused("10:00:01", 1, "10.0.0.1:80").as_bytes());
    input.extend(std::iter::repeat_n(b'A', 1024 * 1024));
    input.push(b'\n');
    input.extend_from_slice(refused("10:00:02", 2, "10.0.0.1:80").as_bytes());
    // An oversized line that looks like a real one is skipped too.
    let mut big = refused("10:00:03", 3, "10.0.0.1:80");
    big.insert_str(20, &"x".repeat(20_000));
    input.extend_from_slice(big.as_bytes());
    for capacity in [7, 64, 8192] {
        let s = scan(
            BufReader::with_capacity(capacity, Cursor::new(&input)),
            &ScanOptions::default(),
        )
        .unwrap();
        assert_eq!(s.lines_read, 4, "capacity {capacity}");
        assert_eq!(s.lines_oversized, 2);
        assert_eq!(s.lines_unparsed, 0);
        assert_eq!(s.groups[0].count, 2);
    }
}

#[test]
fn max_line_bytes_boundary_excludes_line_ending() {
    let opts = ScanOptions {
        max_line_bytes: 10,
        ..ScanOptions::default()
    };
    let s = scan_str("0123456789\n0123456789\r\n0123456789A\n0123456789\r", &opts);
    assert_eq!(s.lines_read, 4);
    assert_eq!(s.lines_oversized, 1);
    assert_eq!(s.lines_unparsed, 3);
}

#[test]
fn binary_garbage_and_invalid_utf8() {
    let mut input: Vec<u8> = vec![0, 1, 2, 0xff, 0xfe, b'\n', 0x1b, b'[', b'0', b'm', b'\n'];
    // A valid line with invalid UTF-8 in the host: decoded lossily, still grouped.
    let line = refused("10:00:01", 1, "10.0.0.1:80")
        .replace("host: \"app.example.com\"", "host: \"app\u{1}XX\"");
    let mut bytes = line.into_bytes();
    let x = bytes.iter().position(|&b| b == b'X').unwrap();
    bytes[x] = 0xff;
    bytes[x + 1] = 0xc3;
    input.extend_from_slice(&bytes);
    input.extend_from_slice(b"\n");
    let s = scan_bytes(&input, &ScanOptions::default());
    assert_eq!(s.lines_read, 4);
    assert_eq!(s.lines_unparsed, 3); // two garbage lines, one empty line
    assert_eq!(s.lines_in_window, 1);
    let sample = &s.groups[0].samples[0];
    assert!(
        sample.contains("host: \"app\u{1}\u{FFFD}\u{FFFD}\""),
        "{sample}"
    );
}

#[test]
fn crlf_and_missing_final_newline() {
    let crlf = CATALOG.replace('\n', "\r\n");
    let s = scan_str(&crlf, &ScanOptions::default());
    assert_eq!((s.lines_read, s.lines_unparsed), (83, 0));
    assert!(
        s.groups
            .iter()
            .all(|g| g.samples.iter().all(|l| !l.ends_with('\r')))
    );
    let host = s
        .groups
        .iter()
        .find(|g| g.failure.signature == Signature::ConnectTimedOut)
        .unwrap();
    assert_eq!(host.failure.peer.as_deref(), Some("10.9.8.7:8080"));

    let no_newline = CATALOG.trim_end_matches('\n');
    let s = scan_str(no_newline, &ScanOptions::default());
    assert_eq!((s.lines_read, s.lines_in_window), (83, 83));
    assert_eq!(s.last_time, Some(at(9, 42, 42)));
}

#[test]
fn empty_input() {
    let s = scan_str("", &ScanOptions::default());
    assert_eq!(s, LogSummary::default());
    let s = scan_str("\n", &ScanOptions::default());
    assert_eq!((s.lines_read, s.lines_unparsed), (1, 1));
}

#[test]
fn too_many_groups_are_counted_not_kept() {
    let log: String = (0..1500u32)
        .map(|i| refused("10:00:00", i, &format!("10.{}.{}.1:80", i / 256, i % 256)))
        .collect();
    let s = scan_str(&log, &ScanOptions::default());
    assert_eq!(s.groups.len(), 1000);
    assert_eq!(s.lines_ungrouped, 500);
    assert_eq!(s.lines_in_window, 1500);
    // Existing groups still count after the limit.
    let again = format!("{log}{}", refused("10:00:09", 9, "10.0.0.1:80"));
    let s = scan_str(&again, &ScanOptions::default());
    assert_eq!(s.groups[0].failure.peer.as_deref(), Some("10.0.0.1:80"));
    assert_eq!(s.groups[0].count, 2);
}

#[test]
fn random_bytes_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds: Vec<&str> = CATALOG.lines().chain(REAL.lines()).collect();
    for round in 0..200 {
        let mut input = Vec::new();
        for _ in 0..20 {
            let r = next();
            match r % 3 {
                0 => input.extend((0..(r >> 8) % 300).map(|_| (next() & 0xff) as u8)),
                1 => {
                    // A real line with a few bytes flipped or cut.
                    let line = seeds[(r >> 8) as usize % seeds.len()].as_bytes();
                    let mut line = line[..(r >> 20) as usize % (line.len() + 1)].to_vec();
                    for _ in 0..(r >> 40) % 4 {
                        if !line.is_empty() {
                            let i = next() as usize % line.len();
                            line[i] = (next() & 0xff) as u8;
                        }
                    }
                    input.extend_from_slice(&line);
                }
                _ => input.extend_from_slice(b"\n"),
            }
        }
        let opts = ScanOptions {
            max_line_bytes: 64 + round * 8,
            ..ScanOptions::default()
        };
        let s = scan_bytes(&input, &opts);
        assert!(s.lines_unparsed + s.lines_oversized + s.lines_in_window <= s.lines_read);
    }
}

/// A reader that fails after some bytes, with an `Interrupted` on the way.
struct Flaky {
    data: Cursor<Vec<u8>>,
    calls: u32,
}

impl Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        match self.calls {
            2 => Err(io::Error::from(io::ErrorKind::Interrupted)),
            4 => Err(io::Error::other("disk on fire")),
            _ => {
                let n = buf.len().min(100);
                self.data.read(&mut buf[..n])
            }
        }
    }
}

#[test]
fn read_errors_are_returned_and_interrupts_retried() {
    let reader = BufReader::with_capacity(
        100,
        Flaky {
            data: Cursor::new(CATALOG.as_bytes().to_vec()),
            calls: 0,
        },
    );
    let err = scan(reader, &ScanOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "disk on fire");
}

#[test]
fn scan_file_reads_the_real_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/errorlog/real-nginx.log");
    let s = scan_file(&path, &ScanOptions::default()).unwrap();
    assert_eq!((s.lines_read, s.lines_unparsed), (19, 0));
    let refused = &s.groups[0];
    assert_eq!(refused.failure.signature, Signature::ConnectRefused);
    assert_eq!(refused.failure.peer.as_deref(), Some("127.0.0.1:38482"));
    assert_eq!(refused.count, 3);
    let count = |sig: Signature| {
        s.groups
            .iter()
            .filter(|g| g.failure.signature == sig)
            .map(|g| g.count)
            .sum::<u64>()
    };
    assert_eq!(count(Signature::ConnectRefused), 6); // 127.0.0.1 x3, 127.0.0.2, [::1], stale.sock
    assert_eq!(count(Signature::SocketMissing), 2);
    assert_eq!(count(Signature::PermissionDenied), 1);
    assert_eq!(count(Signature::BacklogFull), 2);
    assert_eq!(count(Signature::NoLiveUpstreams), 1);
    assert_eq!(
        count(Signature::UpstreamTimedOut {
            phase: Phase::ReadingHeader
        }),
        2
    );
    assert_eq!(count(Signature::OtherUpstream), 2); // 2 resolver sends
    assert_eq!(count(Signature::Resolve), 2); // no resolver, could not be resolved
    let backlog = s
        .groups
        .iter()
        .find(|g| g.failure.signature == Signature::BacklogFull)
        .unwrap();
    assert!(backlog.failure.unix);
    assert_eq!(backlog.samples.len(), 2);
    // The two resolver send() errors form one group.
    let resolver = s
        .groups
        .iter()
        .find(|g| g.message == "send() failed")
        .unwrap();
    assert_eq!(
        (
            resolver.count,
            resolver.errno,
            resolver.failure.peer.as_deref()
        ),
        (2, Some(111), None)
    );
}

#[test]
fn scan_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.log");
    let err = scan_file(&missing, &ScanOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Open { .. }));
    assert_eq!(err.path(), missing);
    assert_eq!(
        err.io_error().map(io::Error::kind),
        Some(io::ErrorKind::NotFound)
    );
    let text = err.to_string();
    assert!(
        text.starts_with("cannot open error log ") && text.contains("nope.log"),
        "{text}"
    );
    assert!(!text.contains('\n'));

    let gz = dir.path().join("error.log.2.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    let err = scan_file(&gz, &ScanOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Compressed { .. }));
    assert!(err.to_string().contains("gzip"));
    assert!(err.io_error().is_none());

    // A directory cannot be read as a log.
    let err = scan_file(dir.path(), &ScanOptions::default()).unwrap_err();
    assert!(matches!(err, LogError::Open { .. } | LogError::Read { .. }));

    let ok = dir.path().join("error.log");
    std::fs::write(&ok, CATALOG).unwrap();
    let s = scan_file(&ok, &ScanOptions::default()).unwrap();
    assert_eq!(s.lines_read, 83);
}

#[test]
fn scan_accepts_any_bufread() {
    let reader: Box<dyn BufRead> = Box::new(Cursor::new(REAL.as_bytes()));
    let s = scan(reader, &ScanOptions::default()).unwrap();
    assert_eq!(s.lines_in_window, 19);
}

#[test]
fn extreme_option_values() {
    let opts = ScanOptions {
        since: None,
        until: None,
        max_samples: usize::MAX,
        max_line_bytes: usize::MAX,
        bucket_minutes: u32::MAX,
    };
    let s = scan_str(CATALOG, &opts);
    assert_eq!((s.lines_read, s.lines_oversized), (83, 0));
    let opts = ScanOptions {
        max_line_bytes: 0,
        ..ScanOptions::default()
    };
    let s = scan_str("x\n\nabc", &opts);
    assert_eq!(
        (s.lines_read, s.lines_oversized, s.lines_unparsed),
        (3, 2, 1)
    );
}
