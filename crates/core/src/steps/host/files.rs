//! The `network.worker-files` check: each worker's open files against its limit, the
//! system's file table, and errno 24 (EMFILE) / 23 (ENFILE) in the error log, including
//! lines that are not about an upstream (`accept4() failed (24: ...)`).
//!
//! What belongs here: reading the workers' descriptors and the error logs' tails
//! (`worker_files_check`, `scan_fd_errors`), the pure decisions (`fd_error_hits`,
//! `worker_files_findings`), and their tests, including one against a real nginx.

use std::path::{Path, PathBuf};

use fix502_nginx::errorlog;
use fix502_probe::host::{self, FdUsage};

use super::hits::{LogHit, MAX_SAMPLES, WORKER_FILES, log_hits};
use crate::causes::Cause;
use crate::check::FindingsFuture;
use crate::facts::Facts;
use crate::report::{Finding, Severity};

/// How much of the end of each error log is read for EMFILE/ENFILE lines that are not
/// about an upstream (`accept4() failed (24: ...)`, `open() ... failed (24: ...)`).
const ERROR_LOG_TAIL_BYTES: u64 = 4 * 1024 * 1024;
/// Most `/proc/PID/fd` entries counted per worker.
const MAX_FD_COUNT: usize = 1 << 20;

/// What the worker-files check read from the host.
#[derive(Debug, Clone)]
struct WorkerFilesFacts {
    /// Whether nginx runs.
    running: bool,
    /// Each worker's open files, or why they could not be read.
    workers: Vec<(u32, Result<FdUsage, Unread>)>,
    /// The system file table: (allocated, max).
    file_nr: Option<(u64, u64)>,
}

/// Why a worker's open files could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unread {
    /// The worker is gone: it exited since the run found it (a reload, a stop, a crash).
    Exited,
    /// Anything else, e.g. permission denied.
    Failed(String),
}

/// Reads worker `pid`'s open files; a worker that is no longer there is [`Unread::Exited`].
fn read_worker(root: &Path, pid: u32) -> Result<FdUsage, Unread> {
    host::fd_usage(root, pid, MAX_FD_COUNT).map_err(|e| {
        if root.join(format!("proc/{pid}")).exists() {
            Unread::Failed(e.to_string())
        } else {
            Unread::Exited
        }
    })
}

pub(super) fn worker_files_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let workers = facts.worker_pids();
        let running = facts.discovery.master.is_some();
        let paths = facts.error_log_files();
        let window_start = facts.window_start();
        let read = tokio::task::spawn_blocking(move || {
            let root = Path::new("/");
            let facts = WorkerFilesFacts {
                running,
                workers: workers
                    .iter()
                    .map(|&pid| (pid, read_worker(root, pid)))
                    .collect(),
                file_nr: host::file_nr(root),
            };
            (facts, scan_fd_errors(&paths, window_start))
        })
        .await;
        let Ok((read, tail_hits)) = read else {
            return vec![Finding::could_not_check(
                WORKER_FILES,
                "the file descriptor probe did not finish",
            )];
        };
        let mut hits = log_hits(facts.logs().await, &[23, 24]);
        hits.extend(tail_hits);
        let window = crate::words::duration(facts.options.since);
        worker_files_findings(&read, &hits, &window)
    })
}

/// Lines with errno 23 or 24 in the tail of each error log within the window, including
/// those that are not about an upstream (`accept4() failed (24: ...)`).
fn scan_fd_errors(paths: &[PathBuf], since: Option<jiff::civil::DateTime>) -> Vec<LogHit> {
    let mut out = Vec::new();
    for path in paths {
        let Ok(lines) = host::tail_lines(path, ERROR_LOG_TAIL_BYTES) else {
            continue;
        };
        out.extend(fd_error_hits(lines.iter().map(String::as_str), since));
    }
    out
}

/// Groups error-log lines with errno 23 or 24 at or after `since` by errno. Pure.
fn fd_error_hits<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    since: Option<jiff::civil::DateTime>,
) -> Vec<LogHit> {
    let mut out: Vec<LogHit> = Vec::new();
    for text in lines {
        let Some(line) = errorlog::parse_line(text) else {
            continue;
        };
        if since.is_some_and(|s| line.time < s) {
            continue;
        }
        let Some(errno) = line
            .errno
            .map(|e| e.number)
            .filter(|n| matches!(n, 23 | 24))
        else {
            continue;
        };
        match out.iter_mut().find(|h| h.errno == errno) {
            Some(hit) => {
                hit.count += 1;
                // Keep the first and the latest line.
                if hit.samples.len() >= MAX_SAMPLES {
                    hit.samples.pop();
                }
                hit.samples.push(text.to_owned());
            }
            None => out.push(LogHit {
                peer: None,
                unix: false,
                errno,
                count: 1,
                samples: vec![text.to_owned()],
                from_tail: true,
            }),
        }
    }
    out
}

/// The fixes for a worker that runs out of descriptors.
fn emfile_fixes() -> [&'static str; 2] {
    [
        "Raise the workers' limit: `worker_rlimit_nofile 65535;` in the main context of nginx.conf (keep worker_connections below half of it: a proxied request uses two), then reload",
        "Under systemd raise the service's limit too: systemctl edit nginx, add `[Service]` and `LimitNOFILE=65535`, then systemctl restart nginx",
    ]
}

/// The worker-files findings, from what was read. Pure.
fn worker_files_findings(facts: &WorkerFilesFacts, log: &[LogHit], window: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    if !facts.running {
        out.push(Finding::new(
            WORKER_FILES,
            Severity::Info,
            "nginx is not running: no worker file limits to read",
        ));
    }

    // The workers now.
    let mut busiest: Option<(u32, FdUsage)> = None;
    let mut unreadable = Vec::new();
    let mut exited = Vec::new();
    for (pid, usage) in &facts.workers {
        let usage = match usage {
            Ok(u) => *u,
            Err(Unread::Exited) => {
                exited.push(pid.to_string());
                continue;
            }
            Err(Unread::Failed(e)) => {
                unreadable.push(format!("worker {pid}: {e}"));
                continue;
            }
        };
        let open = u64::try_from(usage.open).unwrap_or(u64::MAX);
        let near = usage
            .soft_limit
            .is_some_and(|soft| soft > 0 && open.saturating_mul(10) >= soft.saturating_mul(9));
        if near {
            let soft = usage.soft_limit.unwrap_or_default();
            let at_least = if usage.truncated { "at least " } else { "" };
            let hard = usage
                .hard_limit
                .map_or_else(|| "unlimited".to_owned(), |h| h.to_string());
            let mut f = Finding::new(
                WORKER_FILES,
                Severity::Error,
                format!("worker {pid} has {at_least}{open} of {soft} files open"),
            )
            .cause(Cause::FD_EXHAUSTION)
            .evidence(format!(
                "/proc/{pid}/fd: {at_least}{open} entries; /proc/{pid}/limits: Max open files {soft} (soft), {hard} (hard)"
            ));
            for fix in emfile_fixes() {
                f = f.fix(fix);
            }
            out.push(f);
        } else if busiest.is_none_or(|(_, b)| usage.open > b.open) {
            busiest = Some((*pid, usage));
        }
    }
    let file_table = facts.file_nr.map(|(allocated, max)| {
        (
            allocated,
            max,
            max > 0 && allocated.saturating_mul(10) >= max.saturating_mul(9),
        )
    });
    if let Some((pid, usage)) = busiest {
        let limit = usage
            .soft_limit
            .map_or_else(|| "an unlimited number of".to_owned(), |s| s.to_string());
        let mut f = Finding::new(
            WORKER_FILES,
            Severity::Info,
            format!(
                "{} worker(s): the busiest (worker {pid}) has {} of {limit} files open",
                facts.workers.len(),
                usage.open
            ),
        );
        if let Some((allocated, max, false)) = file_table {
            f = f.evidence(format!(
                "system file table: {allocated} of {max} (/proc/sys/fs/file-nr)"
            ));
        }
        out.push(f);
    }
    if !exited.is_empty() {
        out.push(Finding::could_not_check(
            WORKER_FILES,
            format!(
                "worker(s) {} exited while fix502 read them: nginx reloaded, stopped or lost workers during the run",
                exited.join(", ")
            ),
        ));
    }
    if facts.running
        && !unreadable.is_empty()
        && unreadable.len() + exited.len() == facts.workers.len()
    {
        out.push(
            Finding::could_not_check(
                WORKER_FILES,
                "cannot read the workers' open files (/proc/PID/fd needs root or the workers' user)",
            )
            .evidence(unreadable.join("; ")),
        );
    } else if facts.running && facts.workers.is_empty() {
        out.push(Finding::new(
            WORKER_FILES,
            Severity::Info,
            "nginx runs without worker processes (master_process off?): no worker limits to read",
        ));
    }

    // The system-wide file table now.
    if let Some((allocated, max, true)) = file_table {
        out.push(
            Finding::new(
                WORKER_FILES,
                Severity::Error,
                format!("the system file table is almost full: {allocated} of {max} files (ENFILE)"),
            )
            .cause(Cause::FD_EXHAUSTION)
            .evidence(format!("/proc/sys/fs/file-nr: {allocated} allocated, max {max}"))
            .fix("Find the processes holding the most files (lsof -n | awk '{print $2}' | sort | uniq -c | sort -n | tail), then raise the table: sysctl -w fs.file-max=2097152"),
        );
    }

    // The error log: the limit was hit in the window, even if the load has passed.
    for errno in [24, 23] {
        let hits: Vec<&LogHit> = log.iter().filter(|h| h.errno == errno).collect();
        // Upstream groups and the tail scan see the same lines: the larger count is a floor.
        let grouped: u64 = hits.iter().filter(|h| !h.from_tail).map(|h| h.count).sum();
        let scanned: u64 = hits.iter().filter(|h| h.from_tail).map(|h| h.count).sum();
        let count = grouped.max(scanned);
        if count == 0 {
            continue;
        }
        let mut samples: Vec<&str> = Vec::new();
        for s in hits.iter().flat_map(|h| h.samples.iter()) {
            if samples.len() < MAX_SAMPLES && !samples.contains(&s.as_str()) {
                samples.push(s);
            }
        }
        let (name, what) = if errno == 24 {
            ("EMFILE", "a worker reached its open files limit")
        } else {
            ("ENFILE", "the system's file table was full")
        };
        let mut f = Finding::new(
            WORKER_FILES,
            Severity::Error,
            format!(
                "nginx logged {count} \"Too many open files\" error(s) (errno {errno}, {name}) in the last {window}: {what}"
            ),
        )
        .cause(Cause::FD_EXHAUSTION);
        for s in samples {
            f = f.evidence(s);
        }
        if errno == 24 {
            for fix in emfile_fixes() {
                f = f.fix(fix);
            }
        } else {
            f = f.fix("Raise the system's file table: sysctl -w fs.file-max=2097152 (and persist it in /etc/sysctl.d/)");
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixtures::*;
    use super::*;

    const LOG_24: &str = "2026/11/24 10:00:02 [alert] 1235#1235: *9 socket() failed (24: Too many open files) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"localhost\"\n";
    const LOG_ACCEPT_24: &str =
        "2026/11/24 10:00:03 [crit] 1235#1235: accept4() failed (24: Too many open files)";
    const LOG_23: &str = "2026/11/24 10:00:04 [alert] 1235#1235: *10 socket() failed (23: Too many open files in system) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"localhost\"\n";

    fn usage(open: usize, soft: u64) -> Result<FdUsage, Unread> {
        Ok(FdUsage {
            open,
            truncated: false,
            soft_limit: Some(soft),
            hard_limit: Some(soft * 4),
        })
    }

    #[test]
    fn worker_near_its_limit_is_an_error() {
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(1019, 1024)), (1235, usage(40, 1024))],
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1);
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::FD_EXHAUSTION));
        assert_eq!(f.message, "worker 1234 has 1019 of 1024 files open");
        assert!(
            f.fix
                .iter()
                .any(|x| x.contains("worker_rlimit_nofile 65535;"))
        );
        assert!(f.fix.iter().any(|x| x.contains("LimitNOFILE=")));
        let info = out.iter().find(|f| f.severity == Severity::Info).unwrap();
        assert!(info.message.contains("worker 1235) has 40 of 1024"));
    }

    #[test]
    fn worker_below_ninety_percent_is_info() {
        // 921 of 1024 is 89.9%: a near miss.
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(921, 1024))],
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert_eq!(out.len(), 1);
        let f = out.first().unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("921 of 1024"));
        assert!(f.evidence.iter().any(|e| e.contains("5000 of 1000000")));
        // 922 of 1024 crosses 90%.
        let facts = WorkerFilesFacts {
            workers: vec![(1234, usage(922, 1024))],
            ..facts
        };
        assert_eq!(errors(&worker_files_findings(&facts, &[], "1h")).len(), 1);
    }

    #[test]
    fn emfile_in_the_log_is_an_error_even_when_load_passed() {
        let text = format!("{LOG_24}{LOG_24}");
        let grouped = log_hits(&reads(&text), &[23, 24]);
        assert_eq!(grouped.len(), 1, "{grouped:?}");
        assert_eq!(
            (
                grouped.first().unwrap().errno,
                grouped.first().unwrap().count
            ),
            (24, 2)
        );
        let mut hits = grouped;
        hits.extend(fd_error_hits(
            [LOG_24.trim_end(), LOG_24.trim_end(), LOG_ACCEPT_24],
            None,
        ));
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(12, 1024))],
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &hits, "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1, "{out:#?}");
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::FD_EXHAUSTION));
        assert!(
            f.message.contains("3 \"Too many open files\""),
            "{}",
            f.message
        );
        assert!(f.message.contains("EMFILE"));
        assert_eq!(f.evidence.len(), 2);
        assert!(f.evidence.iter().any(|e| e.contains("accept4()")));
    }

    #[test]
    fn enfile_and_a_full_file_table_are_errors() {
        let hits = fd_error_hits([LOG_23.trim_end()], None);
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(12, 1024))],
            file_nr: Some((950_000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &hits, "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 2, "{out:#?}");
        assert!(errs.iter().all(|f| f.cause == Some(Cause::FD_EXHAUSTION)));
        assert!(errs.iter().any(|f| f.message.contains("system file table")));
        assert!(
            errs.iter()
                .any(|f| f.message.contains("ENFILE") && f.message.contains("errno 23"))
        );
        // 89% of the table is fine.
        let facts = WorkerFilesFacts {
            file_nr: Some((890_000, 1_000_000)),
            ..facts
        };
        assert!(errors(&worker_files_findings(&facts, &[], "1h")).is_empty());
    }

    #[test]
    fn fd_error_lines_respect_the_window_and_other_errnos() {
        let since = jiff::civil::date(2026, 11, 24).at(10, 0, 3, 0);
        let hits = fd_error_hits(
            [
                LOG_24.trim_end(),
                LOG_ACCEPT_24,
                LOG_13_TCP.trim_end(),
                "garbage",
            ],
            Some(since),
        );
        assert_eq!(hits.len(), 1);
        let hit = hits.first().unwrap();
        assert_eq!((hit.errno, hit.count), (24, 1));
        assert_eq!(hit.samples, [LOG_ACCEPT_24]);
    }

    #[test]
    fn not_running_and_unreadable_workers() {
        let facts = WorkerFilesFacts {
            running: false,
            workers: Vec::new(),
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert_eq!(out.len(), 1);
        assert_eq!(
            out.first().unwrap().message,
            "nginx is not running: no worker file limits to read"
        );
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(
                1234,
                Err(Unread::Failed("listing /proc/1234/fd: denied".to_owned())),
            )],
            file_nr: None,
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert_eq!(out.len(), 1);
        assert!(out.first().unwrap().could_not_check);
        assert!(out.first().unwrap().message.contains("needs root"));

        // A worker that exited is said as such, never as a permission problem.
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, Err(Unread::Exited)), (1235, usage(12, 1024))],
            file_nr: None,
        };
        let out = worker_files_findings(&facts, &[], "1h");
        let gone = out.iter().find(|f| f.could_not_check).unwrap();
        assert_eq!(
            gone.message,
            "worker(s) 1234 exited while fix502 read them: nginx reloaded, stopped or lost workers during the run"
        );
        assert!(!out.iter().any(|f| f.message.contains("needs root")));
        // A pid that does not exist reads as exited.
        assert_eq!(read_worker(Path::new("/"), u32::MAX), Err(Unread::Exited));
    }

    #[test]
    fn live_worker_files_of_this_process() {
        // This test process stands in for a worker: its real numbers are read and judged.
        let pid = std::process::id();
        let usage = host::fd_usage(Path::new("/"), pid, MAX_FD_COUNT).unwrap();
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(pid, Ok(usage))],
            file_nr: host::file_nr(Path::new("/")),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert!(
            out.iter()
                .any(|f| f.message.contains(&format!("worker {pid}")))
        );
    }

    use fix502_lab::ChildGuard as NginxGuard;

    #[test]
    fn real_nginx_worker_out_of_files() {
        use std::net::{TcpListener, TcpStream};
        // nginx with a worker limited to 16 files, flooded with idle connections: its
        // worker sits at its limit and logs accept4() failed (24: ...).
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = prefix.join("error.log");
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\nworker_rlimit_nofile 16;\n\
                 pid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log off; server {{ listen 127.0.0.1:{port}; return 200; }} }}\n",
                p = prefix.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start /usr/sbin/nginx");
        let guard = NginxGuard { child };
        let master = i32::try_from(guard.child.id()).unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut worker = None;
        for _ in 0..100 {
            worker = procfs::process::all_processes()
                .unwrap()
                .flatten()
                .find(|p| p.stat().is_ok_and(|s| s.ppid == master))
                .map(|p| u32::try_from(p.pid()).unwrap());
            if worker.is_some() && TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let worker = worker.expect("an nginx worker within 5 s");
        let clients: Vec<TcpStream> = (0..40)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
            .collect();
        let mut hits = Vec::new();
        for _ in 0..50 {
            let lines = host::tail_lines(&log, ERROR_LOG_TAIL_BYTES).unwrap_or_default();
            hits = fd_error_hits(lines.iter().map(String::as_str), None);
            if !hits.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let usage = host::fd_usage(Path::new("/"), worker, MAX_FD_COUNT).unwrap();
        drop(clients);
        assert_eq!(usage.soft_limit, Some(16), "{usage:?}");
        let hit = hits.first().expect("nginx logged errno 24");
        assert_eq!(hit.errno, 24);
        assert!(hit.samples.first().unwrap().contains("(24: "));
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(worker, Ok(usage))],
            file_nr: host::file_nr(Path::new("/")),
        };
        let out = worker_files_findings(&facts, &hits, "1h");
        let errs = errors(&out);
        assert_eq!(
            errs.len(),
            2,
            "the worker at its limit and the log: {out:#?}"
        );
        assert!(errs.iter().all(|f| f.cause == Some(Cause::FD_EXHAUSTION)));
        assert!(
            errs.iter().any(
                |f| f.message == format!("worker {worker} has {} of 16 files open", usage.open)
            )
        );
        drop(guard);
    }
}
