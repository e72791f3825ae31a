//! Times `fix502_nginx::logscan::scan_file` on one error log, as `benches/run` uses it.
//!
//! ```text
//! scan_errorlog FILE [--window-hours H [--no-bisect]]
//! ```
//!
//! Without `--window-hours` the whole file is classified (`since = None`). With it, `since`
//! is the time of the file's last line minus `H` hours, and `scan_file` bisects to the
//! window's start; `--no-bisect` reads the whole file instead and filters by time
//! (`scan_file_from(FILE, 0, ..)`), for comparison.
//!
//! Prints one line: `seconds=<s> bytes=<n> lines=<n> in_window=<n> upstream_groups=<n>
//! grouped=<n> maxrss_kib=<n>` (peak RSS from `/proc/self/status`, `VmHWM`).

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use fix502_nginx::logscan::{ScanOptions, scan_file, scan_file_from};
use fix502_nginx::window::{Stamp, last_time};
use jiff::SignedDuration;

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn usage() -> ExitCode {
    eprintln!("usage: scan_errorlog FILE [--window-hours H [--no-bisect]]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, hours, bisect) = match args.as_slice() {
        [path] => (Path::new(path), None, true),
        [path, flag, hours, rest @ ..] if flag == "--window-hours" => {
            let bisect = match rest {
                [] => true,
                [no] if no == "--no-bisect" => false,
                _ => return usage(),
            };
            match hours.parse::<i64>() {
                Ok(h) => (Path::new(path), Some(h), bisect),
                Err(_) => return usage(),
            }
        }
        _ => return usage(),
    };
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let since = match hours {
        None => None,
        Some(hours) => {
            let last = File::open(path)
                .and_then(|mut f| last_time(&mut f, bytes, Stamp::ErrorLog))
                .ok()
                .flatten();
            let Some(last) = last else {
                eprintln!(
                    "scan_errorlog: no timestamp near the end of {}",
                    path.display()
                );
                return ExitCode::FAILURE;
            };
            last.checked_sub(SignedDuration::from_hours(hours)).ok()
        }
    };
    let opts = ScanOptions {
        since,
        ..ScanOptions::default()
    };
    let started = Instant::now();
    let result = if bisect {
        scan_file(path, &opts)
    } else {
        scan_file_from(path, 0, &opts)
    };
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("scan_errorlog: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let grouped: u64 = summary.groups.iter().map(|g| g.count).sum();
    println!(
        "seconds={seconds:.3} bytes={bytes} lines={} in_window={} upstream_groups={} grouped={grouped} maxrss_kib={}",
        summary.lines_read,
        summary.lines_in_window,
        summary.groups.len(),
        peak_rss_kib().unwrap_or(0),
    );
    ExitCode::SUCCESS
}
