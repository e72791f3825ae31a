//! nginx's error log when it does not go to a file: `error_log stderr` under systemd, or
//! `error_log syslog:...` on a host where journald takes syslog. Both end in the systemd
//! journal with nginx's own line text as the message (nginx puts its timestamp, level and
//! pid in the syslog message too), so `journalctl -o cat _COMM=nginx` gives lines the
//! error-log scanner reads as they are. Streamed, never held whole; bounded in time.
//!
//! Where there is no journal (containers, hosts without systemd) the caller says where the
//! lines go and how to get them instead.

use std::io::BufReader;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fix502_nginx::logscan::{self, LogSummary, ScanOptions};

/// How long `journalctl` may run before it is stopped.
const JOURNAL_WAIT: Duration = Duration::from_secs(30);
/// Poll interval of the watchdog.
const POLL: Duration = Duration::from_millis(50);

/// journald's socket: present while journald runs.
const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";
/// Where the journal keeps its files (per machine id), volatile and persistent.
const JOURNAL_FILES: [&str; 2] = [
    "/run/log/journal/*/*.journal",
    "/var/log/journal/*/*.journal",
];

/// Whether this host has a systemd journal to read (journald runs, or journal files are
/// there) and `journalctl` to read it. An empty `/var/log/journal` is not a journal.
pub fn available() -> bool {
    let has_files = || {
        JOURNAL_FILES
            .iter()
            .any(|pattern| glob::glob(pattern).is_ok_and(|mut paths| paths.any(|p| p.is_ok())))
    };
    (Path::new(JOURNALD_SOCKET).exists() || has_files()) && which::which("journalctl").is_ok()
}

/// The `journalctl` arguments that print nginx's messages since `since` (local time), one
/// per line, as nginx wrote them.
pub fn arguments(since: Option<jiff::civil::DateTime>) -> Vec<String> {
    let mut args = vec![
        "--no-pager".to_owned(),
        "--quiet".to_owned(),
        "--output=cat".to_owned(),
    ];
    if let Some(since) = since {
        args.push(format!("--since={}", since.strftime("%Y-%m-%d %H:%M:%S")));
    }
    args.push("_COMM=nginx".to_owned());
    args
}

/// The command a person can run to see the same lines: `journalctl -o cat _COMM=nginx --since '...'`.
pub fn command_line(since: Option<jiff::civil::DateTime>) -> String {
    match since {
        Some(s) => format!(
            "journalctl -o cat _COMM=nginx --since '{}'",
            s.strftime("%Y-%m-%d %H:%M:%S")
        ),
        None => "journalctl -o cat _COMM=nginx".to_owned(),
    }
}

/// Reads nginx's journal lines in the window and scans them like an error-log file. Blocking:
/// call it from `spawn_blocking`. `journalctl` is stopped after 30 s; what it printed until
/// then is scanned.
pub fn scan(opts: &ScanOptions) -> Result<LogSummary, String> {
    let mut child = Command::new("journalctl")
        .args(arguments(opts.since))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run journalctl: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "journalctl gave no output pipe".to_owned())?;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        let pid = child.id();
        std::thread::spawn(move || {
            let deadline = Instant::now() + JOURNAL_WAIT;
            while !done.load(Ordering::Relaxed) {
                if Instant::now() >= deadline {
                    if let Ok(pid) = i32::try_from(pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    return;
                }
                std::thread::sleep(POLL);
            }
        })
    };
    let summary = logscan::scan(BufReader::new(stdout), opts);
    done.store(true, Ordering::Relaxed);
    let status = child.wait();
    let _ = watchdog.join();
    let summary = summary.map_err(|e| format!("reading journalctl's output: {e}"))?;
    match status {
        Ok(s) if s.success() => Ok(summary),
        Ok(s) => Err(format!("journalctl failed ({s})")),
        Err(e) => Err(format!("journalctl: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journalctl_is_asked_for_nginx_lines_in_the_window() {
        let since = jiff::civil::date(2026, 11, 24).at(2, 5, 0, 0);
        let args = arguments(Some(since));
        assert!(
            args.contains(&"--since=2026-11-24 02:05:00".to_owned()),
            "{args:?}"
        );
        assert!(args.contains(&"--output=cat".to_owned()));
        assert_eq!(args.last().map(String::as_str), Some("_COMM=nginx"));
        assert_eq!(
            command_line(Some(since)),
            "journalctl -o cat _COMM=nginx --since '2026-11-24 02:05:00'"
        );
    }

    #[test]
    fn journal_lines_scan_like_the_error_log() {
        // What `journalctl -o cat` prints for nginx's stderr or syslog lines.
        let text = "2026/11/24 02:11:50 [error] 8127#8127: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.2:45889/\", host: \"s\"\n";
        let summary = logscan::scan(text.as_bytes(), &ScanOptions::default()).unwrap();
        assert_eq!(summary.groups.len(), 1);
        assert_eq!(
            summary.groups[0].failure.peer.as_deref(),
            Some("127.0.0.2:45889")
        );
    }
}
