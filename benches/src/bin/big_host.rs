//! Times a whole non-interactive run of fix502 on a big host, as `benches/run --only bighost`
//! uses it (issue 17): a config of 500 `server` blocks, 300 `upstream` groups and 2,000
//! locations, whose upstreams (two servers each, on 127.0.0.1) answer `200 OK`, with the
//! error log and the access log given (the bench's generated incident logs, ending now).
//!
//! ```text
//! big_host FIX502 ERROR_LOG ACCESS_LOG [--since 1h] [--runs R] [--timeout-ms MS]
//! ```
//!
//! Runs `FIX502 --non-interactive --json --timeout MSms --since SINCE --config CONF` R times
//! (default 3) and prints one line: `since=.. servers=500 groups=300 locations=2000
//! runs_s=a,b,c seconds=<median> maxrss_kib=.. exit=..`. Wall time is from spawn to exit; peak
//! RSS is `ru_maxrss` of the waited-for children; `step_ms` is each step's own duration in the
//! last run's report. The temp dir (config, pid file) is removed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

use fix502_benches::serve::{Accepting, Mode};

const SERVERS: usize = 500;
const GROUPS: usize = 300;
const LOCATIONS_PER_SERVER: usize = 4;
/// The access-log format of `benches/gen_accesslog` (the lab's upstream-timing format).
const LOG_FORMAT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" ua=\"$upstream_addr\" us=\"$upstream_status\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\" ucs=\"$upstream_cache_status\"";

struct Args {
    fix502: PathBuf,
    error_log: PathBuf,
    access_log: PathBuf,
    since: String,
    runs: usize,
    timeout_ms: u64,
}

const USAGE: &str =
    "usage: big_host FIX502 ERROR_LOG ACCESS_LOG [--since 1h] [--runs R] [--timeout-ms MS]";

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut since = "1h".to_owned();
    let mut runs = 3;
    let mut timeout_ms = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--since" => since = value()?,
            "--runs" => runs = value()?.parse().map_err(|_| "bad --runs")?,
            "--timeout-ms" => timeout_ms = value()?.parse().map_err(|_| "bad --timeout-ms")?,
            _ if !arg.starts_with('-') => positional.push(PathBuf::from(arg)),
            _ => return Err(USAGE.to_owned()),
        }
    }
    let [fix502, error_log, access_log] =
        <[PathBuf; 3]>::try_from(positional).map_err(|_| USAGE.to_owned())?;
    Ok(Args {
        fix502,
        error_log,
        access_log,
        since,
        runs: runs.max(1),
        timeout_ms,
    })
}

/// The big config: `GROUPS` groups of two of `upstreams` each, `SERVERS` servers with
/// `LOCATIONS_PER_SERVER` locations each, every location passing to a group.
fn config(dir: &Path, upstreams: &[std::net::SocketAddr], args: &Args) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "error_log {};", args.error_log.display());
    let _ = writeln!(c, "pid {}/nginx.pid;", dir.display());
    c.push_str("events {}\nhttp {\n");
    let _ = writeln!(c, "    log_format up '{LOG_FORMAT}';");
    let _ = writeln!(c, "    access_log {} up;", args.access_log.display());
    for g in 0..GROUPS {
        let _ = write!(c, "    upstream app{g} {{");
        for s in upstreams.iter().skip(2 * g).take(2) {
            let _ = write!(c, " server {s};");
        }
        c.push_str(" }\n");
    }
    for s in 0..SERVERS {
        let _ = writeln!(
            c,
            "    server {{\n        listen 127.0.0.1:{};\n        server_name site{s}.example.com;",
            20000 + s
        );
        for l in 0..LOCATIONS_PER_SERVER {
            let g = (s * LOCATIONS_PER_SERVER + l) % GROUPS;
            let _ = writeln!(
                c,
                "        location /api{l}/ {{ proxy_read_timeout 30s; proxy_pass http://app{g}; }}"
            );
        }
        c.push_str("    }\n");
    }
    c.push_str("}\n");
    c
}

/// One run: wall time, exit code, and the JSON report.
fn run_once(args: &Args, conf: &Path) -> Result<(Duration, Option<i32>, Vec<u8>), String> {
    let start = Instant::now();
    let out = Command::new(&args.fix502)
        .args(["--non-interactive", "--json", "--since", &args.since])
        .arg("--timeout")
        .arg(format!("{}ms", args.timeout_ms))
        .arg("--config")
        .arg(conf)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args.fix502.display()))?;
    Ok((start.elapsed(), out.status.code(), out.stdout))
}

/// Each step's `duration_ms` in a JSON report: `logs:123,upstream:45,...`.
fn step_times(report: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(report) else {
        return "unreadable".to_owned();
    };
    value["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}:{}", s["step"].as_str().unwrap_or("?"), s["duration_ms"]))
        .collect::<Vec<_>>()
        .join(",")
}

/// A temp directory of this process, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench(args: &Args) -> Result<String, String> {
    let dir = TempDir(std::env::temp_dir().join(format!("fix502-big-host-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    let mut upstreams =
        Accepting::start(2 * GROUPS, Mode::Answer, 4096).map_err(|e| e.to_string())?;
    let conf = dir.0.join("nginx.conf");
    std::fs::write(&conf, config(&dir.0, &upstreams.addrs, args)).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut exit = None;
    let mut steps = String::new();
    for _ in 0..args.runs {
        let (t, code, report) = run_once(args, &conf)?;
        times.push(t);
        exit = code;
        steps = step_times(&report);
    }
    upstreams.stop();
    let maxrss = getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0);
    let runs: Vec<String> = times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect();
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    Ok(format!(
        "since={} servers={SERVERS} groups={GROUPS} locations={} runs_s={} seconds={:.3} maxrss_kib={maxrss} exit={} step_ms={steps}",
        args.since,
        SERVERS * LOCATIONS_PER_SERVER,
        runs.join(","),
        median.as_secs_f64(),
        exit.map_or_else(|| "signal".to_owned(), |c| c.to_string())
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("big_host: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("big_host: {e}");
            ExitCode::FAILURE
        }
    }
}
