//! Times a whole non-interactive run of fix502 on a big host, as `benches/run --only bighost`
//! uses it (issue 17): a config of 500 `server` blocks, 300 `upstream` groups and 2,000
//! locations, whose upstreams (two servers each, on 127.0.0.1) answer `200 OK`, with the
//! error log and the access log given (the bench's generated incident logs, ending now).
//!
//! ```text
//! big_host FIX502 ERROR_LOG ACCESS_LOG [--since 1h] [--runs R] [--timeout-ms MS] [--wizard]
//! ```
//!
//! Runs `FIX502 --non-interactive --json --timeout MSms --since SINCE --config CONF` R times
//! (default 3) and prints one line: `since=.. servers=500 groups=300 locations=2000
//! runs_s=a,b,c seconds=<median> maxrss_kib=.. exit=..`. Wall time is from spawn to exit; peak
//! RSS is `ru_maxrss` of the waited-for children; `step_ms` is each step's own duration in the
//! last run's report. The temp dir (config, pid file) is removed.
//!
//! With `--wizard`, each run is the interactive walkthrough instead (`FIX502 --timeout MSms
//! --since SINCE --config CONF`) in a pseudo-terminal of 120 × 50, timed from spawn to the
//! first step's result line (`Error logs (`, which its spinner line never holds); then the
//! child is killed by its pid. Prints `wizard_first_step_ms=a,b,c median_ms=..`.

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
    wizard: bool,
}

const USAGE: &str = "usage: big_host FIX502 ERROR_LOG ACCESS_LOG [--since 1h] [--runs R] [--timeout-ms MS] [--wizard]";

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut since = "1h".to_owned();
    let mut runs = 3;
    let mut timeout_ms = 1000;
    let mut wizard = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--since" => since = value()?,
            "--runs" => runs = value()?.parse().map_err(|_| "bad --runs")?,
            "--timeout-ms" => timeout_ms = value()?.parse().map_err(|_| "bad --timeout-ms")?,
            "--wizard" => wizard = true,
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
        wizard,
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

/// What `--wizard` waits for: the first step's result line (`[✗] Error logs (12 ms)`); its
/// spinner line says `Error logs… (` or `Error logs... (`.
const FIRST_RESULT: &[u8] = b"Error logs (";

/// The longest a `--wizard` run may take to show its first result.
const WIZARD_DEADLINE: Duration = Duration::from_secs(30);

/// One `--wizard` run: the time from spawn to the first step's result in a pseudo-terminal.
fn wizard_once(args: &Args, conf: &Path) -> Result<Duration, String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::Read;
    use std::os::fd::AsFd;
    let size = nix::pty::Winsize {
        ws_row: 50,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(|e| format!("openpty: {e}"))?;
    let slave = |what: &str| {
        pty.slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| format!("pty {what}: {e}"))
    };
    let start = Instant::now();
    let mut child = Command::new(&args.fix502)
        .args(["--since", &args.since])
        .arg("--timeout")
        .arg(format!("{}ms", args.timeout_ms))
        .arg("--config")
        .arg(conf)
        .env("TERM", "xterm-256color")
        .stdin(slave("stdin")?)
        .stdout(slave("stdout")?)
        .stderr(slave("stderr")?)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", args.fix502.display()))?;
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    // Each iteration waits at most 100 ms for output; bounded by WIZARD_DEADLINE.
    let result = loop {
        if start.elapsed() > WIZARD_DEADLINE {
            break Err(format!("no first result within {WIZARD_DEADLINE:?}"));
        }
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u8)).map_err(|e| e.to_string())? == 0 {
            continue;
        }
        match master.read(&mut chunk) {
            Ok(0) | Err(_) => break Err("the wizard ended before its first result".to_owned()),
            Ok(n) => seen.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
        if seen.windows(FIRST_RESULT.len()).any(|w| w == FIRST_RESULT) {
            break Ok(start.elapsed());
        }
    };
    // The child is this run's own: stopped by its pid.
    let _ = child.kill();
    let _ = child.wait();
    result
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
    if args.wizard {
        let mut times = (0..args.runs)
            .map(|_| wizard_once(args, &conf))
            .collect::<Result<Vec<_>, _>>()?;
        upstreams.stop();
        let runs: Vec<String> = times.iter().map(|t| t.as_millis().to_string()).collect();
        times.sort();
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        return Ok(format!(
            "since={} wizard_first_step_ms={} median_ms={}",
            args.since,
            runs.join(","),
            median.as_millis()
        ));
    }
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
