//! Times fix502's access-log reader on one access log written with the lab's upstream-timing
//! `log_format` (as `gen_accesslog` writes it), as `benches/run` uses it.
//!
//! ```text
//! scan_accesslog FILE [--phase full|parse|lines | --window-hours H]
//! ```
//!
//! - `full` (default): `accesslog::scan_history_with` over the whole file (`since = None`;
//!   every other option at its default), i.e. the file read in parts on every core, each
//!   part by an `AccessScanner` fed every line, folded in order: the format match, the status counts and samples, the
//!   per-minute series, the attempts split by upstream, the 502 classes, the retries.
//! - `parse`: only `LogFormat::parse_line` on every line (read with a 256 KiB `BufReader`),
//!   to see how much of `full` is the format match.
//! - `lines`: only the line splitting (same reader), the floor under both.
//! - `--window-hours H`: what fix502's access step does with `--since Hh`: `since` is the
//!   time of the file's last line minus `H` hours; `accesslog::scan_history_with` finds the
//!   window's start (bisecting the live file) and reads from there, as above.
//!
//! Prints one line: `seconds=<s> bytes=<n> lines=<n> ...counts... maxrss_kib=<n>` (peak RSS
//! from `/proc/self/status`, `VmHWM`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use fix502_nginx::accesslog::{AccessOptions, AccessReport, scan_history_with};
use fix502_nginx::history::history;
use fix502_nginx::logformat::LogFormat;
use fix502_nginx::window::last_time;
use jiff::SignedDuration;

/// fix502's lab `UPSTREAM_LOG_FORMAT` (crates/lab/src/config.rs), which `gen_accesslog`
/// writes.
const FORMAT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" ua=\"$upstream_addr\" us=\"$upstream_status\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\" ucs=\"$upstream_cache_status\"";

/// The longest line the `parse` and `lines` phases keep (as `AccessOptions` by default).
const MAX_LINE: usize = 16 * 1024;

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Full,
    Parse,
    Lines,
    Window(i64),
}

fn usage() -> ExitCode {
    eprintln!("usage: scan_accesslog FILE [--phase full|parse|lines | --window-hours H]");
    ExitCode::from(2)
}

/// The `full` phase: the whole file through `scan_file_with`. Returns the counts to print.
fn full(path: &Path, format: &LogFormat) -> Result<String, String> {
    let opts = AccessOptions {
        max_bytes: u64::MAX,
        ..AccessOptions::default()
    };
    let (r, _) = scan_history_with(path, format, &opts).map_err(|e| e.to_string())?;
    Ok(counts(&r))
}

/// The last `hours` of the log, read as fix502's access step reads a window.
fn window(path: &Path, format: &LogFormat, hours: i64) -> Result<String, String> {
    let stamp = format.stamp().ok_or("the format writes no [$time_local]")?;
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let last = last_time(&mut file, len, stamp)
        .map_err(|e| e.to_string())?
        .ok_or("no timestamp near the end")?;
    let since = last
        .checked_sub(SignedDuration::from_hours(hours))
        .map_err(|e| e.to_string())?;
    let opts = AccessOptions {
        since: Some(since),
        ..AccessOptions::default()
    };
    let files = history(path, Some(since), stamp)
        .map_err(|e| e.to_string())?
        .len();
    let (r, _) = scan_history_with(path, format, &opts).map_err(|e| e.to_string())?;
    Ok(format!(
        "files={files} in_window={} {}",
        r.summary.lines_in_window,
        counts(&r)
    ))
}

/// The counts of a report, as printed.
fn counts(r: &AccessReport) -> String {
    format!(
        "lines={} requests={} unmatched={} status_502={} status_504={} nginx_502={} upstream_502={} no_upstream_502={} cached_502={} retried_ok={} redirected_ok={} hidden_failures={} upstreams={} urls={} minutes={}",
        r.summary.lines_read,
        r.requests,
        r.unmatched,
        r.status_502,
        r.status_504,
        r.nginx_502.count,
        r.upstream_502.count,
        r.no_upstream_502.count,
        r.cached_502.count,
        r.retried_ok.count,
        r.redirected_ok.count,
        r.hidden_failures,
        r.by_upstream.len(),
        r.by_url.len(),
        r.per_minute.len(),
    )
}

/// The `parse` and `lines` phases: one pass with a plain reader.
fn split(path: &Path, format: &LogFormat, parse: bool) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut buf = Vec::with_capacity(4096);
    let (mut lines, mut matched, mut oversized) = (0u64, 0u64, 0u64);
    // One line per iteration; ends at end of file.
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        lines += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.len() > MAX_LINE {
            oversized += 1;
            continue;
        }
        if parse && format.parse_line(&buf).is_some() {
            matched += 1;
        }
    }
    Ok(format!(
        "lines={lines} matched={matched} oversized={oversized}"
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, phase) = match args.as_slice() {
        [path] => (Path::new(path), Phase::Full),
        [path, flag, phase] if flag == "--phase" => match phase.as_str() {
            "full" => (Path::new(path), Phase::Full),
            "parse" => (Path::new(path), Phase::Parse),
            "lines" => (Path::new(path), Phase::Lines),
            _ => return usage(),
        },
        [path, flag, hours] if flag == "--window-hours" => match hours.parse() {
            Ok(h) => (Path::new(path), Phase::Window(h)),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    let format = match LogFormat::parse("upstreamlog", &[FORMAT.to_owned()]) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("scan_accesslog: the format does not compile: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let started = Instant::now();
    let result = match phase {
        Phase::Full => full(path, &format),
        Phase::Parse => split(path, &format, true),
        Phase::Lines => split(path, &format, false),
        Phase::Window(hours) => window(path, &format, hours),
    };
    let counts = match result {
        Ok(counts) => counts,
        Err(e) => {
            eprintln!("scan_accesslog: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "seconds={seconds:.3} bytes={bytes} {counts} maxrss_kib={}",
        peak_rss_kib().unwrap_or(0),
    );
    ExitCode::SUCCESS
}
