//! Tests of `window` (finding the `--since` window start by bisection) and `history` (the
//! rotated files a window reaches into, read as one stream): correctness against a linear
//! scan on generated logs, hostile input, and the bytes read.

use std::fs::{self, File};
use std::io::{self, BufRead, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use fix502_nginx::history::{HistoryReader, LogPart, history, open_part};
use fix502_nginx::window::{Stamp, line_time, window_start};
use flate2::Compression;
use flate2::write::GzEncoder;
use jiff::SignedDuration;
use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;

// ---------------------------------------------------------------------------------------
// Helpers: a deterministic generator, a counting reader, the expected answer.
// ---------------------------------------------------------------------------------------

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `-d..=d`.
    fn jitter(&mut self, d: i64) -> i64 {
        if d == 0 {
            return 0;
        }
        i64::try_from(self.below(u64::try_from(2 * d + 1).unwrap())).unwrap() - d
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const START: DateTime = date(2026, 10, 25).at(0, 0, 0, 0);
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

/// `t` as `stamp` writes it, with some text around it like a real line.
fn stamped_line(stamp: Stamp, t: DateTime, i: u64, path_len: usize) -> String {
    let path = "p".repeat(path_len);
    let (y, mo, d) = (t.year(), t.month(), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    match stamp {
        Stamp::ErrorLog => format!(
            "{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{s:02} [error] 12#12: *{i} connect() failed \
             (111: Connection refused) while connecting to upstream, client: 10.0.0.1, \
             server: example.com, request: \"GET /{path} HTTP/1.1\", upstream: \
             \"http://127.0.0.1:8080/{path}\", host: \"example.com\""
        ),
        Stamp::AccessLog => {
            let month = MONTHS[usize::try_from(mo - 1).unwrap()];
            format!(
                "10.0.0.1 - - [{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{s:02} +0000] \
                 \"GET /{path} HTTP/1.1\" 502 157 \"-\" \"curl/8.5\" id={i}"
            )
        }
        _ => format!(
            "{{\"time\":\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00\",\"status\":502,\
             \"uri\":\"/{path}\",\"id\":{i}}}"
        ),
    }
}

/// One line of a generated log.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: u64,
    time: Option<DateTime>,
}

/// A generated log and where its lines start.
#[derive(Default)]
struct Log {
    data: Vec<u8>,
    lines: Vec<Line>,
}

impl Log {
    fn push(&mut self, time: Option<DateTime>, text: &[u8]) {
        self.lines.push(Line {
            start: self.data.len() as u64,
            time,
        });
        self.data.extend_from_slice(text);
        self.data.push(b'\n');
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn first_time(&self) -> DateTime {
        self.lines.iter().find_map(|l| l.time).unwrap()
    }

    fn last_time(&self) -> DateTime {
        self.lines.iter().filter_map(|l| l.time).max().unwrap()
    }

    /// What `window_start` must return, by a linear scan: the start of the first line with
    /// a time at or after `since`, 0 when no line with a time comes before it or no line
    /// has a time, the length when all are older.
    fn expected(&self, since: DateTime) -> u64 {
        let first_new = self
            .lines
            .iter()
            .position(|l| l.time.is_some_and(|t| t >= since));
        match first_new {
            None if self.lines.iter().any(|l| l.time.is_some()) => self.len(),
            None => 0,
            Some(k) if self.lines[..k].iter().any(|l| l.time.is_some()) => self.lines[k].start,
            Some(_) => 0,
        }
    }
}

/// How to generate a log.
#[derive(Clone, Copy)]
struct Spec {
    stamp: Stamp,
    lines: u64,
    span_secs: i64,
    /// Each line's time is moved by up to this many seconds either way.
    disorder: i64,
    /// Chance (per mille) that a line is followed by 1-3 lines without a timestamp.
    continuation: u64,
    /// Chance (per mille) that a line is followed by a line of random bytes.
    garbage: u64,
    seed: u64,
}

impl Spec {
    fn new(stamp: Stamp, lines: u64, span_secs: i64) -> Self {
        Self {
            stamp,
            lines,
            span_secs,
            disorder: 0,
            continuation: 0,
            garbage: 0,
            seed: 0x5eed,
        }
    }
}

fn generate(spec: Spec) -> Log {
    let mut rng = Rng(spec.seed | 1);
    let mut log = Log::default();
    for i in 0..spec.lines {
        let base = i128::from(i) * i128::from(spec.span_secs) / i128::from(spec.lines);
        let offset = (i64::try_from(base).unwrap() + rng.jitter(spec.disorder)).max(0);
        let t = START.checked_add(secs(offset)).unwrap();
        let path_len = usize::try_from(1 + rng.below(120)).unwrap();
        let text = stamped_line(spec.stamp, t, i, path_len);
        log.push(Some(t), text.as_bytes());
        if rng.chance(spec.continuation) {
            for n in 0..=rng.below(3) {
                let text = format!("#{n} /var/www/app/src/Controller.php({i}): handle()");
                log.push(None, text.as_bytes());
            }
        }
        if rng.chance(spec.garbage) {
            let len = 1 + rng.below(200);
            let bytes: Vec<u8> = (0..len)
                .map(|_| u8::try_from(rng.below(256)).unwrap())
                .map(|b| if b == b'\n' { 0xff } else { b })
                .collect();
            // Garbage could by chance parse as a time; it never does with these bytes,
            // but keep the expectation honest.
            let time = line_time(&bytes, spec.stamp);
            log.push(time, &bytes);
        }
    }
    log
}

/// A reader that counts the bytes it returns, optionally returning at most `max_read`
/// bytes per call.
struct Counting<R> {
    inner: R,
    read: u64,
    max_read: usize,
}

impl<R> Counting<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            max_read: usize::MAX,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.max_read);
        let got = self.inner.read(&mut buf[..n])?;
        self.read += got as u64;
        Ok(got)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Runs `window_start` on `data`; returns the offset and the bytes read.
fn run(data: &[u8], since: DateTime, stamp: Stamp) -> (u64, u64) {
    let mut file = Counting::new(Cursor::new(data));
    let offset = window_start(&mut file, data.len() as u64, since, stamp).unwrap();
    (offset, file.read)
}

/// `since` values worth trying on `log`: random times around its span and the exact
/// times of random lines, one second either side.
fn sinces(log: &Log, count: usize, seed: u64) -> Vec<DateTime> {
    let mut rng = Rng(seed | 1);
    let first = log.first_time().saturating_sub(secs(7200));
    let span = log.last_time().duration_since(first).as_secs() + 2 * 7200;
    let mut out = vec![
        first,
        log.first_time(),
        log.last_time(),
        log.last_time().saturating_add(secs(1)),
    ];
    for _ in 0..count {
        out.push(first.saturating_add(secs(rng.jitter(span).abs())));
        let line = log.lines[usize::try_from(rng.below(log.lines.len() as u64)).unwrap()];
        if let Some(t) = line.time {
            out.push(t.saturating_add(secs(rng.jitter(1))));
        }
    }
    out
}

fn check_all(log: &Log, stamp: Stamp, sinces: &[DateTime]) {
    for &since in sinces {
        let (got, _) = run(&log.data, since, stamp);
        assert_eq!(got, log.expected(since), "since {since}");
    }
}

// ---------------------------------------------------------------------------------------
// window_start: correctness
// ---------------------------------------------------------------------------------------

#[test]
fn bisect_finds_the_first_line_of_the_window_in_30_days() {
    let mut spec = Spec::new(Stamp::ErrorLog, 200_000, 30 * 86_400);
    spec.disorder = 10;
    spec.continuation = 20;
    spec.garbage = 5;
    let log = generate(spec);
    let sinces = sinces(&log, 150, 7);
    let mut max_read = 0;
    for &since in &sinces {
        let (got, read) = run(&log.data, since, Stamp::ErrorLog);
        assert_eq!(got, log.expected(since), "since {since}");
        max_read = max_read.max(read);
    }
    // O(log n) small reads, never the file.
    assert!(
        max_read < log.len() / 50,
        "read {max_read} of {}",
        log.len()
    );
}

#[test]
fn bisect_on_access_log_and_iso8601_times() {
    for stamp in [Stamp::AccessLog, Stamp::Iso8601] {
        let mut spec = Spec::new(stamp, 30_000, 3 * 86_400);
        spec.disorder = 2;
        spec.continuation = 5;
        spec.garbage = 5;
        spec.seed = 99;
        let log = generate(spec);
        check_all(&log, stamp, &sinces(&log, 80, 3));
    }
}

#[test]
fn bisect_on_dense_and_sparse_logs() {
    // Many lines per second (the disorder window holds many lines), and a line an hour.
    for (lines, span) in [(50_000, 600), (500, 500 * 3600)] {
        let mut spec = Spec::new(Stamp::ErrorLog, lines, span);
        spec.disorder = 2;
        spec.seed = u64::try_from(span).unwrap();
        let log = generate(spec);
        check_all(&log, Stamp::ErrorLog, &sinces(&log, 60, 11));
    }
}

#[test]
fn first_line_in_window_gives_zero_and_all_old_gives_the_length() {
    let log = generate(Spec::new(Stamp::ErrorLog, 5_000, 86_400));
    let before = log.first_time().saturating_sub(secs(1));
    assert_eq!(run(&log.data, before, Stamp::ErrorLog).0, 0);
    assert_eq!(run(&log.data, log.first_time(), Stamp::ErrorLog).0, 0);
    let after = log.last_time().saturating_add(secs(1));
    assert_eq!(run(&log.data, after, Stamp::ErrorLog).0, log.len());
    // One read for the common case of a window older than the file.
    let (_, read) = run(&log.data, before, Stamp::ErrorLog);
    assert!(read <= 8192, "read {read}");
}

#[test]
fn leading_lines_without_time_are_kept_when_the_first_time_is_in_the_window() {
    let mut log = Log::default();
    log.push(None, b"nginx: [warn] something without a time");
    log.push(None, b"\xff\xfe garbage");
    for i in 0..100 {
        let t = START.saturating_add(secs(i));
        log.push(Some(t), stamped_line(Stamp::ErrorLog, t, 0, 3).as_bytes());
    }
    assert_eq!(run(&log.data, START, Stamp::ErrorLog).0, 0);
    let since = START.saturating_add(secs(50));
    assert_eq!(
        run(&log.data, since, Stamp::ErrorLog).0,
        log.expected(since)
    );
    assert_ne!(log.expected(since), 0);

    // More lines without a time than one probe reads, then lines of the window only.
    let mut log = Log::default();
    for i in 0..3000 {
        log.push(
            None,
            format!("#{i} /var/www/app/src/Controller.php(1): handle()").as_bytes(),
        );
    }
    for i in 0..100 {
        let t = START.saturating_add(secs(i));
        log.push(Some(t), stamped_line(Stamp::ErrorLog, t, 0, 3).as_bytes());
    }
    assert!(log.len() > 128 * 1024);
    assert_eq!(run(&log.data, START, Stamp::ErrorLog).0, 0);
}

#[test]
fn empty_file_and_file_without_times() {
    assert_eq!(run(b"", START, Stamp::ErrorLog).0, 0);
    assert_eq!(run(b"\n\n\n", START, Stamp::ErrorLog).0, 0);
    let mut rng = Rng(5);
    let mut junk = Vec::new();
    for _ in 0..200_000 {
        let b = u8::try_from(rng.below(256)).unwrap();
        junk.push(if rng.chance(20) { b'\n' } else { b });
    }
    // No time anywhere: scan everything.
    let (got, read) = run(&junk, START, Stamp::ErrorLog);
    assert_eq!(got, 0);
    assert!(read < 5 * 1024 * 1024);
    // Lines of another format are lines without a time.
    let log = generate(Spec::new(Stamp::AccessLog, 10_000, 86_400));
    assert_eq!(run(&log.data, START, Stamp::ErrorLog).0, 0);
    assert_eq!(run(&log.data, log.last_time(), Stamp::ErrorLog).0, 0);
}

#[test]
fn last_line_without_newline() {
    let mut log = generate(Spec::new(Stamp::ErrorLog, 1_000, 3_600));
    log.data.pop();
    let last = *log.lines.last().unwrap();
    assert_eq!(
        run(&log.data, last.time.unwrap(), Stamp::ErrorLog).0,
        log.expected(last.time.unwrap())
    );
    let after = last.time.unwrap().saturating_add(secs(1));
    assert_eq!(run(&log.data, after, Stamp::ErrorLog).0, log.len());
}

#[test]
fn single_line_files() {
    let t = START;
    let line = stamped_line(Stamp::ErrorLog, t, 1, 5);
    for data in [line.clone(), format!("{line}\n")] {
        assert_eq!(run(data.as_bytes(), t, Stamp::ErrorLog).0, 0);
        let after = t.saturating_add(secs(1));
        assert_eq!(
            run(data.as_bytes(), after, Stamp::ErrorLog).0,
            data.len() as u64
        );
    }
}

#[test]
fn short_reads_give_the_same_answers() {
    let mut spec = Spec::new(Stamp::ErrorLog, 3_000, 86_400);
    spec.disorder = 2;
    spec.continuation = 30;
    let log = generate(spec);
    for since in sinces(&log, 40, 17) {
        let mut file = Counting::new(Cursor::new(&log.data));
        file.max_read = 7;
        let got = window_start(&mut file, log.len(), since, Stamp::ErrorLog).unwrap();
        assert_eq!(got, log.expected(since), "since {since}");
    }
}

/// Adds a line of `size` bytes with a time after line `at` (its time is the one of line
/// `at`).
fn with_long_line(log: &Log, at: usize, size: usize) -> Log {
    let mut out = Log::default();
    for (i, line) in log.lines.iter().enumerate() {
        let end = log
            .lines
            .get(i + 1)
            .map_or(log.data.len(), |n| usize::try_from(n.start).unwrap());
        let text = &log.data[usize::try_from(line.start).unwrap()..end - 1];
        out.push(line.time, text);
        if i == at {
            let mut long = stamped_line(Stamp::ErrorLog, line.time.unwrap(), 0, 10).into_bytes();
            long.resize(size, b'x');
            out.push(line.time, &long);
        }
    }
    out
}

#[test]
fn a_ten_megabyte_line_never_hides_lines_of_the_window() {
    let log = generate(Spec::new(Stamp::ErrorLog, 40_000, 86_400));
    let long_at = 20_000;
    let log = with_long_line(&log, long_at, 10 * 1024 * 1024);
    let long_time = log.lines[long_at].time.unwrap();
    let starts: Vec<u64> = log.lines.iter().map(|l| l.start).collect();
    for since in sinces(&log, 60, 23) {
        let (got, read) = run(&log.data, since, Stamp::ErrorLog);
        let expected = log.expected(since);
        // Safe: never after the first line of the window, and on a line start.
        assert!(got <= expected, "since {since}: {got} > {expected}");
        assert!(
            got == 0 || got == log.len() || starts.binary_search(&got).is_ok(),
            "since {since}: {got} is not a line start"
        );
        // Bounded: never the whole long line plus the rest.
        assert!(read < 8 * 1024 * 1024, "since {since}: read {read}");
        // Exact when the window starts before the long line.
        if since < long_time.saturating_sub(secs(60)) {
            assert_eq!(got, expected, "since {since}");
        }
    }
}

#[test]
fn a_ten_megabyte_last_line_without_newline() {
    let mut log = generate(Spec::new(Stamp::ErrorLog, 2_000, 3_600));
    let t = log.last_time().saturating_add(secs(10));
    let mut long = stamped_line(Stamp::ErrorLog, t, 0, 10).into_bytes();
    long.resize(10 * 1024 * 1024, b'y');
    log.lines.push(Line {
        start: log.len(),
        time: Some(t),
    });
    log.data.extend_from_slice(&long);
    for since in [t, t.saturating_sub(secs(5))] {
        let (got, read) = run(&log.data, since, Stamp::ErrorLog);
        assert_eq!(got, log.expected(since), "since {since}");
        assert!(read < 8 * 1024 * 1024, "read {read}");
    }
    // Every line is older: proving it would mean reading the whole long line, so the
    // answer is the long line's start (safe: the scanner skips it by its time).
    let (got, read) = run(&log.data, t.saturating_add(secs(1)), Stamp::ErrorLog);
    assert_eq!(got, log.lines.last().unwrap().start);
    assert!(read < 8 * 1024 * 1024, "read {read}");
}

#[test]
fn binary_garbage_everywhere() {
    let mut spec = Spec::new(Stamp::ErrorLog, 20_000, 86_400);
    spec.garbage = 300;
    spec.continuation = 100;
    spec.disorder = 1;
    let log = generate(spec);
    check_all(&log, Stamp::ErrorLog, &sinces(&log, 60, 29));
}

#[test]
fn copytruncate_between_stat_and_read_is_clamped() {
    // stat said 1 MiB; the file was truncated and a few new lines were written since.
    let log = generate(Spec::new(Stamp::ErrorLog, 50, 60));
    for since in sinces(&log, 20, 31) {
        let mut file = Cursor::new(&log.data);
        let got = window_start(&mut file, 1024 * 1024, since, Stamp::ErrorLog).unwrap();
        assert_eq!(got, log.expected(since), "since {since}");
    }
    let mut empty = Cursor::new(Vec::new());
    assert_eq!(
        window_start(&mut empty, 1024 * 1024, START, Stamp::ErrorLog).unwrap(),
        0
    );
}

/// A file whose end moves back after its length was taken: reads past `cut` find nothing.
struct Shrunk {
    inner: Cursor<Vec<u8>>,
    cut: u64,
}

impl Read for Shrunk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.cut.saturating_sub(self.inner.position());
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.inner.read(&mut buf[..n])
    }
}

impl Seek for Shrunk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn file_shrinking_while_read_gives_a_bounded_answer() {
    let log = generate(Spec::new(Stamp::ErrorLog, 20_000, 86_400));
    let len = log.len();
    for cut in [0, 100, len / 3, len / 2, len - 1] {
        let mut file = Shrunk {
            inner: Cursor::new(log.data.clone()),
            cut,
        };
        for since in sinces(&log, 10, cut) {
            let got = window_start(&mut file, len, since, Stamp::ErrorLog).unwrap();
            assert!(got <= len);
            // What is still there is judged correctly.
            if log.expected(since) < cut.saturating_sub(20_000) {
                assert_eq!(got, log.expected(since), "cut {cut} since {since}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// window_start: cost
// ---------------------------------------------------------------------------------------

/// Prints a measured figure (run with `--nocapture` to see it).
#[expect(
    clippy::print_stderr,
    reason = "the measured figures of the cost tests"
)]
fn report(what: &str) {
    eprintln!("{what}");
}

#[test]
fn one_hour_of_a_30_day_100_mb_log_reads_under_one_percent() {
    let mut spec = Spec::new(Stamp::ErrorLog, 280_000, 30 * 86_400);
    spec.disorder = 2;
    spec.continuation = 10;
    let log = generate(spec);
    assert!(log.len() > 95_000_000, "{}", log.len());
    let end = log.last_time();
    for (name, since) in [
        ("last hour", end.saturating_sub(secs(3600))),
        ("an hour mid-file", START.saturating_add(secs(15 * 86_400))),
        ("last minute", end.saturating_sub(secs(60))),
        ("all (before start)", START.saturating_sub(secs(60))),
    ] {
        let (got, read) = run(&log.data, since, Stamp::ErrorLog);
        assert_eq!(got, log.expected(since), "{name}");
        let pct = read as f64 * 100.0 / log.len() as f64;
        report(&format!(
            "window_start on {} bytes, {name}: read {read} bytes ({pct:.4}%)",
            log.len()
        ));
        assert!(read * 100 < log.len(), "{name}: read {read}");
    }
}

/// A 1 GiB error log over 30 days that exists only as a function of the offset: fixed
/// 128-byte lines, line `k` written at `START + k * SPAN / N`.
struct Virtual {
    pos: u64,
}

const V_WIDTH: u64 = 128;
const V_LEN: u64 = 1 << 30;
const V_LINES: u64 = V_LEN / V_WIDTH;
const V_SPAN: i64 = 30 * 86_400;

fn v_time(k: u64) -> DateTime {
    let off = i128::from(k) * i128::from(V_SPAN) / i128::from(V_LINES);
    START.saturating_add(secs(i64::try_from(off).unwrap()))
}

fn v_line(k: u64) -> Vec<u8> {
    let mut line = stamped_line(Stamp::ErrorLog, v_time(k), k, 1).into_bytes();
    line.resize(usize::try_from(V_WIDTH - 1).unwrap(), b' ');
    line.push(b'\n');
    line
}

impl Read for Virtual {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.pos < V_LEN {
            let line = v_line(self.pos / V_WIDTH);
            let from = usize::try_from(self.pos % V_WIDTH).unwrap();
            let take = (line.len() - from).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&line[from..from + take]);
            n += take;
            self.pos += take as u64;
        }
        Ok(n)
    }
}

impl Seek for Virtual {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => V_LEN.saturating_add_signed(d),
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

#[test]
fn one_hour_of_a_30_day_1_gib_log_costs_well_under_five_percent_of_a_full_scan() {
    let since = v_time(V_LINES - 1).saturating_sub(secs(3600));
    // The first line at or after `since`, by bisection on the line function.
    let (mut lo, mut hi) = (0, V_LINES);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if v_time(mid) < since {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut file = Counting::new(Virtual { pos: 0 });
    let got = window_start(&mut file, V_LEN, since, Stamp::ErrorLog).unwrap();
    assert_eq!(got, lo * V_WIDTH);
    let window = V_LEN - got;
    let total = file.read + window;
    let (pct_bisect, pct_total) = (
        file.read as f64 * 100.0 / V_LEN as f64,
        total as f64 * 100.0 / V_LEN as f64,
    );
    report(&format!(
        "1 GiB / 30 days, last hour: bisection read {} bytes ({pct_bisect:.4}%), window {window} \
         bytes, total {total} ({pct_total:.3}% of a full scan)",
        file.read
    ));
    assert!(file.read * 100 < V_LEN);
    assert!(total * 20 <= V_LEN);
}

// ---------------------------------------------------------------------------------------
// history: rotations, gzip, chaining
// ---------------------------------------------------------------------------------------

const DAY1: DateTime = date(2026, 11, 20).at(0, 0, 0, 0);

/// The lines of day `d` (0-based from DAY1): one a minute.
fn day_lines(d: i64) -> Vec<(DateTime, String)> {
    (0..1440)
        .map(|m| {
            let t = DAY1.saturating_add(secs(d * 86_400 + m * 60));
            (t, stamped_line(Stamp::ErrorLog, t, 0, 2))
        })
        .collect()
}

fn text_of(lines: &[(DateTime, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, line) in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Sets the mtime of `path` to the civil time `t` in the system time zone.
fn set_mtime(path: &Path, t: DateTime) {
    let ts = TimeZone::system().to_zoned_datetime(t).unwrap().timestamp();
    let st = SystemTime::try_from(ts).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(st)
        .unwrap();
}

/// Writes a file with `data` and an mtime at `t`.
fn put(path: &Path, data: &[u8], t: DateTime) {
    fs::write(path, data).unwrap();
    set_mtime(path, t);
}

/// A directory with `error.log` (day 3), `error.log.1` (day 2), `error.log.2.gz` (day 1)
/// and `error.log.3.gz` (day 0), each with the mtime of its last line.
fn rotated_dir() -> (tempfile::TempDir, PathBuf, Vec<Vec<(DateTime, String)>>) {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("error.log");
    let days: Vec<_> = (0..4).map(day_lines).collect();
    let last = |d: usize| days[d].last().unwrap().0;
    put(
        &dir.path().join("error.log.3.gz"),
        &gzip(&text_of(&days[0])),
        last(0),
    );
    put(
        &dir.path().join("error.log.2.gz"),
        &gzip(&text_of(&days[1])),
        last(1),
    );
    put(&dir.path().join("error.log.1"), &text_of(&days[2]), last(2));
    put(&live, &text_of(&days[3]), last(3));
    (dir, live, days)
}

fn names(parts: &[LogPart]) -> Vec<String> {
    parts
        .iter()
        .map(|p| p.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// All lines of the chained parts, and the reader's notes.
fn read_all(parts: Vec<LogPart>, since: Option<DateTime>) -> (Vec<String>, HistoryReader) {
    let mut reader = HistoryReader::new(parts, since, Stamp::ErrorLog);
    let lines = (&mut reader).lines().map(Result::unwrap).collect();
    (lines, reader)
}

#[test]
fn history_reaches_back_as_far_as_the_window() {
    let (_dir, live, days) = rotated_dir();
    let all: Vec<(DateTime, String)> = days.concat();
    let cases: [(Option<DateTime>, &[&str]); 6] = [
        (
            Some(DAY1.saturating_add(secs(3 * 86_400 + 43_200))),
            &["error.log"],
        ),
        (
            Some(DAY1.saturating_add(secs(2 * 86_400 + 43_200))),
            &["error.log.1", "error.log"],
        ),
        (
            Some(DAY1.saturating_add(secs(86_400 + 43_200))),
            &["error.log.2.gz", "error.log.1", "error.log"],
        ),
        (
            Some(DAY1.saturating_add(secs(43_200))),
            &[
                "error.log.3.gz",
                "error.log.2.gz",
                "error.log.1",
                "error.log",
            ],
        ),
        (
            Some(DAY1.saturating_sub(secs(86_400))),
            &[
                "error.log.3.gz",
                "error.log.2.gz",
                "error.log.1",
                "error.log",
            ],
        ),
        (
            None,
            &[
                "error.log.3.gz",
                "error.log.2.gz",
                "error.log.1",
                "error.log",
            ],
        ),
    ];
    for (since, expected) in cases {
        let parts = history(&live, since, Stamp::ErrorLog).unwrap();
        assert_eq!(names(&parts), expected, "since {since:?}");
        let gz: Vec<bool> = parts.iter().map(|p| p.gzip).collect();
        let expected_gz: Vec<bool> = expected.iter().map(|n| n.ends_with(".gz")).collect();
        assert_eq!(gz, expected_gz);
        // Chained, the parts give exactly the lines of the window, in order.
        let (lines, reader) = read_all(parts, since);
        let want: Vec<&str> = all
            .iter()
            .filter(|(t, _)| since.is_none_or(|s| *t >= s))
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(lines, want, "since {since:?}");
        assert!(reader.issues().is_empty(), "{:?}", reader.issues());
    }
}

#[test]
fn history_knows_the_newest_line_of_plain_and_small_gzip_parts() {
    let (_dir, live, days) = rotated_dir();
    let parts = history(&live, Some(DAY1), Stamp::ErrorLog).unwrap();
    let newest: Vec<Option<DateTime>> = parts.iter().map(|p| p.newest).collect();
    let want: Vec<Option<DateTime>> = days.iter().map(|d| Some(d.last().unwrap().0)).collect();
    assert_eq!(newest, want);
}

#[test]
fn history_with_dateext_names() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("access.log");
    let days: Vec<_> = (0..4).map(day_lines).collect();
    let last = |d: usize| days[d].last().unwrap().0;
    put(
        &dir.path().join("access.log-20261120.gz"),
        &gzip(&text_of(&days[0])),
        last(0),
    );
    put(
        &dir.path().join("access.log-20261121.gz"),
        &gzip(&text_of(&days[1])),
        last(1),
    );
    put(
        &dir.path().join("access.log-20261122"),
        &text_of(&days[2]),
        last(2),
    );
    put(&live, &text_of(&days[3]), last(3));
    // Not rotations of this log.
    put(&dir.path().join("access.log-20261119.bz2"), b"BZh", last(0));
    put(&dir.path().join("error.log.1"), b"", last(0));
    put(&dir.path().join("access.log.old"), b"", last(0));
    let parts = history(&live, None, Stamp::ErrorLog).unwrap();
    assert_eq!(
        names(&parts),
        [
            "access.log-20261120.gz",
            "access.log-20261121.gz",
            "access.log-20261122",
            "access.log"
        ]
    );
    let since = DAY1.saturating_add(secs(86_400 + 60));
    let parts = history(&live, Some(since), Stamp::ErrorLog).unwrap();
    assert_eq!(
        names(&parts),
        [
            "access.log-20261121.gz",
            "access.log-20261122",
            "access.log"
        ]
    );
    let (lines, reader) = read_all(parts, Some(since));
    assert_eq!(lines.len(), 3 * 1440 - 1);
    assert!(reader.issues().is_empty());
}

#[test]
fn truncated_gzip_is_noted_and_earlier_lines_are_still_read() {
    let (dir, live, days) = rotated_dir();
    let gz = dir.path().join("error.log.2.gz");
    let full = fs::read(&gz).unwrap();
    put(&gz, &full[..full.len() / 2], days[1].last().unwrap().0);
    let since = DAY1.saturating_add(secs(86_400));
    let parts = history(&live, Some(since), Stamp::ErrorLog).unwrap();
    assert_eq!(
        names(&parts),
        ["error.log.2.gz", "error.log.1", "error.log"]
    );
    // The damaged part's newest line is unknown (its mtime kept it in).
    assert_eq!(parts[0].newest, None);
    let (lines, reader) = read_all(parts, Some(since));
    let issues = reader.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(issues[0].is_damaged_gzip());
    assert!(issues[0].path().ends_with("error.log.2.gz"));
    assert!(issues[0].to_string().contains("error.log.2.gz"));
    // Day 1's lines up to the cut (the last one may be cut short), then days 2 and 3 whole.
    let tail = 2 * 1440;
    assert!(lines.len() > tail + 100, "{}", lines.len());
    let (day1, rest) = lines.split_at(lines.len() - tail);
    assert!(day1.len() < 1440);
    for (got, (_, want)) in day1.iter().zip(&days[1]) {
        assert!(want.starts_with(got.as_str()), "{got}");
    }
    let want_rest: Vec<&str> = days[2..]
        .iter()
        .flatten()
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(rest, want_rest);
}

#[test]
fn a_rotation_with_an_old_mtime_is_not_opened() {
    let (dir, live, _days) = rotated_dir();
    // Not gzip at all: opening it would give a note.
    let bogus = dir.path().join("error.log.4.gz");
    put(
        &bogus,
        b"this is not gzip\n",
        DAY1.saturating_sub(secs(86_400)),
    );
    let since = DAY1.saturating_add(secs(60));
    let parts = history(&live, Some(since), Stamp::ErrorLog).unwrap();
    assert_eq!(parts.len(), 4);
    assert!(read_all(parts, Some(since)).1.issues().is_empty());
    // With a recent mtime it is listed (it may hold lines of the window), and reading it
    // is a note, not an error.
    put(
        &bogus,
        &gzip(b"x")[..5],
        DAY1.saturating_add(secs(5 * 86_400)),
    );
    let parts = history(&live, Some(since), Stamp::ErrorLog).unwrap();
    assert_eq!(names(&parts)[0], "error.log.4.gz");
    let (lines, reader) = read_all(parts, Some(since));
    assert_eq!(lines.len(), 4 * 1440 - 1);
    assert_eq!(reader.issues().len(), 1);
    assert!(reader.issues()[0].is_damaged_gzip());
}

#[test]
fn open_part_on_gzip_skips_the_lines_before_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let lines = day_lines(0);
    // Two gzip members, as `cat a.gz b.gz` makes; MultiGzDecoder reads both.
    let (a, b) = lines.split_at(700);
    let mut data = gzip(&text_of(a));
    data.extend(gzip(&text_of(b)));
    let path = dir.path().join("error.log.2.gz");
    fs::write(&path, &data).unwrap();
    let part = LogPart {
        path,
        gzip: true,
        newest: None,
    };
    for skip in [0usize, 1, 699, 700, 1439] {
        let since = lines[skip].0;
        let mut reader = open_part(&part, Some(since), Stamp::ErrorLog).unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text.as_bytes(), text_of(&lines[skip..]), "skip {skip}");
        let skipped = text_of(&lines[..skip]).len() as u64;
        assert_eq!(reader.skipped(), skipped);
        assert!(!reader.is_truncated());
    }
    let after = lines.last().unwrap().0.saturating_add(secs(1));
    let mut reader = open_part(&part, Some(after), Stamp::ErrorLog).unwrap();
    assert_eq!(reader.fill_buf().unwrap(), b"");
}

#[test]
fn gzip_without_times_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error.log.1.gz");
    let text = b"no time here\nnor here\n";
    fs::write(&path, gzip(text)).unwrap();
    let part = LogPart {
        path,
        gzip: true,
        newest: None,
    };
    let mut reader = open_part(&part, Some(DAY1), Stamp::ErrorLog).unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out, text);
}

#[test]
fn parts_without_final_newline_do_not_merge_lines() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("error.log");
    let days: Vec<_> = (0..2).map(day_lines).collect();
    let mut old = text_of(&days[0]);
    old.pop();
    put(
        &dir.path().join("error.log.1.gz"),
        &gzip(&old),
        days[0].last().unwrap().0,
    );
    let mut new = text_of(&days[1]);
    new.pop();
    put(&live, &new, days[1].last().unwrap().0);
    let parts = history(&live, None, Stamp::ErrorLog).unwrap();
    let (lines, _) = read_all(parts, None);
    let want: Vec<&str> = days.iter().flatten().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, want);
}

#[test]
fn live_file_that_is_not_a_regular_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("error.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let started = Instant::now();
    let err = history(&fifo, None, Stamp::ErrorLog).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let part = LogPart {
        path: fifo,
        gzip: false,
        newest: None,
    };
    assert!(open_part(&part, None, Stamp::ErrorLog).is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    // A directory is refused too; nothing at all is NotFound.
    assert!(history(dir.path(), None, Stamp::ErrorLog).is_err());
    let missing = dir.path().join("missing.log");
    let err = history(&missing, None, Stamp::ErrorLog).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn rotations_without_a_live_file_are_still_listed() {
    let (dir, live, _days) = rotated_dir();
    fs::remove_file(&live).unwrap();
    let parts = history(&live, None, Stamp::ErrorLog).unwrap();
    assert_eq!(
        names(&parts),
        ["error.log.3.gz", "error.log.2.gz", "error.log.1"]
    );
    drop(dir);
}

#[test]
fn unreadable_part_is_a_note_and_the_others_are_read() {
    let (dir, live, days) = rotated_dir();
    let parts = history(&live, None, Stamp::ErrorLog).unwrap();
    // Removed after listing (as a rotation running meanwhile would).
    fs::remove_file(dir.path().join("error.log.1")).unwrap();
    let (lines, reader) = read_all(parts, None);
    assert_eq!(lines.len(), 3 * 1440);
    assert_eq!(reader.issues().len(), 1);
    assert!(!reader.issues()[0].is_damaged_gzip());
    assert!(reader.issues()[0].path().ends_with("error.log.1"));
    assert_eq!(
        lines.last().map(String::as_str),
        Some(days[3].last().unwrap().1.as_str())
    );
}

#[test]
fn plain_part_reads_only_its_window() {
    let (_dir, live, days) = rotated_dir();
    let since = days[3][1000].0;
    let part = LogPart {
        path: live,
        gzip: false,
        newest: None,
    };
    let mut reader = open_part(&part, Some(since), Stamp::ErrorLog).unwrap();
    assert_eq!(reader.skipped(), text_of(&days[3][..1000]).len() as u64);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out, text_of(&days[3][1000..]));
}
