//! App-server logs: the bounded tail of a log file, and the lines of PHP-FPM, gunicorn,
//! uWSGI, puma, unicorn or the kernel that explain a closed or reset connection.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use jiff::tz::TimeZone;

use super::files::open_regular;
use super::log_time::line_time;
use super::types::{LogEvent, LogEventKind};
use crate::error::ProbeError;

/// A log line is kept up to this many bytes.
pub(super) const MAX_LINE_BYTES: usize = 512;

/// Reads the last `max_bytes` of a log (dropping the partial first line when it starts
/// mid-file) and returns the lines [`classify_log_line`] recognises, oldest first.
///
/// With `since`, lines whose timestamp can be read and is older are dropped; lines without
/// a readable timestamp are kept. Timestamps understood: PHP-FPM `[24-Nov-2026 10:00:00]`
/// (local time), gunicorn `[2026-11-24 10:00:00 +0000]`, Ruby logger
/// `[2026-11-24T10:00:00.123 #1]` (local), and `Mon Nov 24 10:00:00 2026` (uWSGI, local).
/// Local time uses this process's time zone (`TZ` or `/etc/localtime`, else UTC).
pub fn scan_log(
    path: &Path,
    since: Option<SystemTime>,
    max_bytes: u64,
) -> Result<Vec<LogEvent>, ProbeError> {
    let text = read_tail(path, max_bytes).map_err(|source| ProbeError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    let zone = TimeZone::system();
    let mut events = Vec::new();
    for line in text.lines() {
        let Some(kind) = classify_log_line(line) else {
            continue;
        };
        let time = line_time(line, &zone);
        if let (Some(since), Some(time)) = (since, time)
            && time < since
        {
            continue;
        }
        events.push(LogEvent {
            kind,
            line: truncate(line, MAX_LINE_BYTES).to_owned(),
            time,
        });
    }
    Ok(events)
}

/// The last `max_bytes` of a file as text, starting at a line boundary.
fn read_tail(path: &Path, max_bytes: u64) -> io::Result<String> {
    let mut file = open_regular(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let capacity = len.min(max_bytes).min(1 << 20);
    let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let body: &[u8] = if start > 0 {
        match bytes.iter().position(|&b| b == b'\n') {
            Some(newline) => bytes.get(newline + 1..).unwrap_or_default(),
            None => &[],
        }
    } else {
        &bytes
    };
    Ok(String::from_utf8_lossy(body).into_owned())
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(super) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// What a log line of PHP-FPM, gunicorn, uWSGI, puma, unicorn or the kernel says, or `None`
/// for lines that do not matter for a closed or reset connection. Pure.
///
/// PHP-FPM's `child N said into stderr: "..."` lines carry the application's own output
/// and are never classified, but for the one message of PHP-FPM's own FastCGI code that a
/// child writes there (with `catch_workers_output = yes`): `"ERROR: Connection disallowed`.
pub fn classify_log_line(line: &str) -> Option<LogEventKind> {
    use LogEventKind as K;
    if let Some((_, said)) = line.split_once("said into stderr: ") {
        return said
            .starts_with("\"ERROR: Connection disallowed: IP address '")
            .then_some(K::ConnectionDisallowed);
    }
    if line.contains("WORKER TIMEOUT")
        || line.contains("Terminating timed out worker")
        || (line.contains(" timeout (") && line.contains("), killing"))
    {
        return Some(K::WorkerTimeout);
    }
    if line.contains("HARAKIRI") {
        return Some(K::Harakiri);
    }
    if line.contains("execution timed out (") {
        return Some(K::ExecutionTimedOut);
    }
    if let Some(signal) = signal_of(line) {
        return Some(K::ExitedOnSignal { signal });
    }
    if line.contains("reached pm.max_children setting") || line.contains("reached max_children") {
        return Some(K::MaxChildrenReached);
    }
    if line.contains("executing too slow (") {
        return Some(K::SlowRequest);
    }
    if line.contains("listen queue of socket") && line.contains(" full !!!") {
        return Some(K::ListenQueueFull);
    }
    if line.contains("invalid request block size") {
        return Some(K::InvalidRequestBlockSize);
    }
    if line.contains("Connection disallowed") {
        return Some(K::ConnectionDisallowed);
    }
    if is_oom_message(line) {
        return Some(K::OutOfMemory);
    }
    if let Some(code) = number_after(line, "exited with code ") {
        return (code != 0).then_some(K::Other);
    }
    let other = [
        "] ERROR: ",
        "] ALERT: ",
        "[ERROR]",
        "[CRITICAL]",
        "DAMN ! worker",
    ]
    .iter()
    .any(|marker| line.contains(marker))
        || line.contains("Segmentation Fault")
        || line.contains("Segmentation fault");
    other.then_some(K::Other)
}

/// The signal a worker died of, from PHP-FPM, gunicorn or uWSGI wording.
fn signal_of(line: &str) -> Option<i32> {
    for marker in [
        "exited on signal ",
        "killed by signal ",
        "terminated due to signal ",
    ] {
        if let Some(signal) = number_after(line, marker) {
            return Some(signal);
        }
    }
    // gunicorn: "Worker (pid:456) was sent SIGKILL! Perhaps out of memory?"
    let name = line.split_once("was sent SIG")?.1;
    let name: String = name.chars().take_while(char::is_ascii_uppercase).collect();
    signal_number(&name)
}

/// The Linux number of a signal name without `SIG`.
fn signal_number(name: &str) -> Option<i32> {
    let number = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => return None,
    };
    Some(number)
}

/// The integer right after `marker` in `line`.
fn number_after(line: &str, marker: &str) -> Option<i32> {
    let rest = line.split_once(marker)?.1;
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse().ok()
}

/// Kernel OOM-killer wording (global and cgroup).
pub(super) fn is_oom_message(line: &str) -> bool {
    line.contains("Out of memory")
        || line.contains("out of memory: Killed process")
        || line.contains("oom-kill:")
        || line.contains("Killed process ")
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use super::*;
    use crate::appserver::test_support::fixture;

    #[test]
    fn classify_real_looking_lines() {
        use LogEventKind as K;
        let cases: &[(&str, Option<K>)] = &[
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1234, script '/var/www/slow.php' (request: \"GET /slow.php\") execution timed out (1.012345 sec), terminating",
                Some(K::ExecutionTimedOut),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1234 exited on signal 15 (SIGTERM) after 3.000000 seconds from start",
                Some(K::ExitedOnSignal { signal: 15 }),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1234 exited on signal 11 (SIGSEGV - core dumped) after 0.5 seconds from start",
                Some(K::ExitedOnSignal { signal: 11 }),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it",
                Some(K::MaxChildrenReached),
            ),
            (
                "[24-Nov-2015 10:00:01] WARNING: [pool www] server reached max_children setting (5), consider raising it",
                Some(K::MaxChildrenReached),
            ),
            (
                "[24-Nov-2026 10:00:01] ERROR: Connection disallowed: IP address '10.0.0.9' has been dropped.",
                Some(K::ConnectionDisallowed),
            ),
            (
                "[06-Dec-2026 16:58:30] WARNING: [pool lab] child 3835 said into stderr: \"ERROR: Connection disallowed: IP address '127.0.0.1' has been dropped.\"",
                Some(K::ConnectionDisallowed),
            ),
            (
                "[06-Dec-2026 16:58:30] WARNING: [pool lab] child 3835 said into stderr: \"app says: ERROR: Connection disallowed: IP address '1.2.3.4'\"",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1234, script '/var/www/report.php' (request: \"GET /report.php\") executing too slow (5.012345 sec), logging",
                Some(K::SlowRequest),
            ),
            (
                "Tue Nov 24 10:00:01 2026 - *** uWSGI listen queue of socket \"127.0.0.1:3031\" (fd: 3) full !!! (101/100) ***",
                Some(K::ListenQueueFull),
            ),
            (
                "Tue Nov 24 10:00:01 2026 - your server socket listen backlog is limited to 100 connections",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] NOTICE: [pool www] child 1235 started",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] NOTICE: [pool www] child 1235 exited with code 0 after 600.1 seconds from start",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1235 exited with code 255 after 0.1 seconds from start",
                Some(K::Other),
            ),
            (
                "[24-Nov-2026 10:00:01] WARNING: [pool www] child 1236 said into stderr: \"NOTICE: PHP message: execution timed out (3 sec), terminating\"",
                None,
            ),
            (
                "[24-Nov-2026 10:00:01] ERROR: unable to bind listening socket for address '127.0.0.1:9000': Address already in use (98)",
                Some(K::Other),
            ),
            (
                "[24-Nov-2026 10:00:01] NOTICE: ready to handle connections",
                None,
            ),
            (
                "[2026-11-24 10:00:00 +0000] [123] [CRITICAL] WORKER TIMEOUT (pid:456)",
                Some(K::WorkerTimeout),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [ERROR] Worker (pid:456) was sent SIGKILL! Perhaps out of memory?",
                Some(K::ExitedOnSignal { signal: 9 }),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [WARNING] Worker with pid 456 was terminated due to signal 9",
                Some(K::ExitedOnSignal { signal: 9 }),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [ERROR] Exception in worker process",
                Some(K::Other),
            ),
            (
                "[2026-11-24 10:00:01 +0000] [123] [INFO] Booting worker with pid: 457",
                None,
            ),
            (
                "Mon Nov 24 10:00:00 2026 - *** HARAKIRI ON WORKER 1 (pid: 4321, try: 1) ***",
                Some(K::Harakiri),
            ),
            (
                "invalid request block size: 4420 (max 4096)...skip",
                Some(K::InvalidRequestBlockSize),
            ),
            (
                "DAMN ! worker 1 (pid: 3076) died, killed by signal 9 :( trying respawn ...",
                Some(K::ExitedOnSignal { signal: 9 }),
            ),
            (
                "DAMN ! worker 2 (pid: 3077) died :( trying respawn ...",
                Some(K::Other),
            ),
            (
                "[12] ! Terminating timed out worker (Worker 0 failed to check in within 60 seconds): 345",
                Some(K::WorkerTimeout),
            ),
            (
                "E, [2026-11-24T10:00:00.123456 #123] ERROR -- : worker=0 PID:456 timeout (61s > 60s), killing",
                Some(K::WorkerTimeout),
            ),
            (
                "Out of memory: Killed process 4242 (php-fpm8.2) total-vm:812345kB, anon-rss:501234kB",
                Some(K::OutOfMemory),
            ),
            (
                "Memory cgroup out of memory: Killed process 4243 (gunicorn) total-vm:1kB",
                Some(K::OutOfMemory),
            ),
            (
                "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=node,pid=77,uid=1000",
                Some(K::OutOfMemory),
            ),
            ("", None),
            ("GET /index.php 200", None),
        ];
        for (line, want) in cases {
            assert_eq!(classify_log_line(line), *want, "{line}");
        }
    }

    #[test]
    fn scan_php_fpm_log_fixture() {
        let path = fixture("php8.2-fpm.log");
        let events = scan_log(&path, None, 1 << 20).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::MaxChildrenReached,
                LogEventKind::ExecutionTimedOut,
                LogEventKind::ExitedOnSignal { signal: 15 },
                LogEventKind::ExitedOnSignal { signal: 9 },
                LogEventKind::ConnectionDisallowed,
            ]
        );
        assert!(events.iter().all(|e| e.time.is_some()));
        assert!(events.iter().all(|e| !e.line.ends_with('\n')));
        // Since 10:00:05 local: only the two last events.
        let since = line_time("[24-Nov-2026 10:00:05]", &TimeZone::system()).unwrap();
        let recent = scan_log(&path, Some(since), 1 << 20).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(
            recent.first().map(|e| e.kind),
            Some(LogEventKind::ExitedOnSignal { signal: 9 })
        );
    }

    #[test]
    fn scan_gunicorn_and_uwsgi_fixtures() {
        let gunicorn = scan_log(&fixture("gunicorn-error.log"), None, 1 << 20).unwrap();
        let kinds: Vec<_> = gunicorn.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::WorkerTimeout,
                LogEventKind::ExitedOnSignal { signal: 9 },
                LogEventKind::Other
            ]
        );
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_514_405);
        assert_eq!(
            scan_log(&fixture("gunicorn-error.log"), Some(since), 1 << 20)
                .unwrap()
                .len(),
            1
        );

        let uwsgi = scan_log(&fixture("uwsgi.log"), None, 1 << 20).unwrap();
        let kinds: Vec<_> = uwsgi.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::InvalidRequestBlockSize,
                LogEventKind::Harakiri,
                LogEventKind::Harakiri,
                LogEventKind::ExitedOnSignal { signal: 9 },
            ]
        );
    }

    #[test]
    fn scan_log_reads_only_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fpm.log");
        let old = "[24-Nov-2026 09:00:00] WARNING: [pool www] child 1 exited on signal 9 (SIGKILL) after 1.0 seconds from start\n";
        let filler = "[24-Nov-2026 09:30:00] NOTICE: [pool www] child 2 started\n".repeat(100);
        let new = "[24-Nov-2026 10:00:00] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it\n";
        fs::write(&path, format!("{old}{filler}{new}")).unwrap();
        let all = scan_log(&path, None, 1 << 20).unwrap();
        assert_eq!(all.len(), 2);
        // A tail that starts inside the old line: that partial line is dropped.
        let tail = (new.len() + filler.len() + 10) as u64;
        let events = scan_log(&path, None, tail).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events.first().map(|e| e.kind),
            Some(LogEventKind::MaxChildrenReached)
        );
        // A tail shorter than the last line holds no complete line.
        assert!(scan_log(&path, None, 20).unwrap().is_empty());
        assert!(scan_log(&path, None, 0).unwrap().is_empty());
        assert!(scan_log(&dir.path().join("missing.log"), None, 100).is_err());
    }

    #[test]
    fn long_lines_are_truncated_at_a_char_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.log");
        let line = format!(
            "[2026-11-24 10:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:2) {}\n",
            "é".repeat(600)
        );
        fs::write(&path, line).unwrap();
        let events = scan_log(&path, None, 1 << 20).unwrap();
        let event = events.first().unwrap();
        assert!(event.line.len() <= MAX_LINE_BYTES && event.line.len() >= MAX_LINE_BYTES - 1);
        assert!(event.line.starts_with("[2026-11-24 10:00:00 +0000]"));
    }
}
