//! Times fix502's upstream step on a config with many upstream servers, half of them never
//! answering, as `benches/run` uses it. Target (issue 5): every server is probed within
//! `--timeout` + 0.5 s.
//!
//! ```text
//! probe_upstreams FIX502 [--variant group|locations] [--accepting answer|hold]
//!                        [--scheme http|https] [--count N] [--timeout-ms MS] [--runs R]
//!                        [--child-nofile LIMIT]
//! ```
//!
//! Defaults: `group`, `answer`, `http`, 1000 servers, 1000 ms, 3 runs. On 127.0.0.1 it sets up:
//!
//! - N/2 listeners that accept, served by one thread that polls them: with `answer` it reads
//!   each request head and answers `200 OK` as a healthy HTTP upstream does; with `hold` it
//!   holds every connection until the end and never sends a byte (a hung app server);
//! - N/2 listeners that never answer: `listen(fd, 0)` plus one connection that is never
//!   accepted fill the accept queue, so the kernel drops every further SYN and a connect
//!   hangs until the client gives up. Three of them are checked first: a plain connect must
//!   still be pending after 1.2 s, else the bench stops.
//!
//! The two kinds alternate in the config. `group` writes one `upstream big { server ...; }`
//! with all N servers and `location / { proxy_pass http://big; }`; `locations` writes N
//! `location = /uI { proxy_pass http://127.0.0.1:P; }` (`https://` with `--scheme https`: the
//! accepting upstreams then get a TLS handshake they never complete). Then it runs
//! `FIX502 --non-interactive --json --step upstream --timeout MSms --config CONF` R times,
//! each bounded (killed after 10 × timeout + 60 s), and checks each JSON report: N/2
//! `upstream.tcp-connect` findings "accepts connections", N/2 with cause `upstream-timeout`.
//! `--child-nofile` runs fix502 under `ulimit -Sn LIMIT` (e.g. 1024, a common default).
//!
//! Prints one line: `variant=.. accepting=.. scheme=.. endpoints=.. timeout_s=.. limit_s=..
//! runs_s=a,b,c seconds=<median> max_s=.. step_ms=.. connected=.. timed_out=.. other=.. accepted=..
//! maxrss_kib=.. nofile=.. counts_ok=yes|no within_target=yes|no` and, when a count is off,
//! a few of the other findings on stderr. Wall time is from spawn to exit of fix502; peak RSS
//! is `ru_maxrss` of the waited-for children (fix502 and whatever it ran).
//!
//! The open-files soft limit of this process (inherited by fix502) is raised to fit about
//! 4 × N descriptors (more with `hold`, which keeps every connection); when the hard limit
//! is lower the bench says so and goes on. Every listener and held connection is closed at
//! the end, and the temp dir (config, report) removed.

use std::fs::{self, File};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use fix502_benches::serve::{Accepting, Mode};

/// Extra time allowed over `--timeout` (issue 5).
const MARGIN: Duration = Duration::from_millis(500);
/// How long a connect to a silent endpoint must stay pending in the self-check.
const SILENT_CHECK: Duration = Duration::from_millis(1200);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// One `upstream` block with every server.
    Group,
    /// One `location` with its own `proxy_pass` per server.
    Locations,
}

struct Args {
    fix502: PathBuf,
    variant: Variant,
    count: usize,
    timeout: Duration,
    runs: usize,
    mode: Mode,
    https: bool,
    child_nofile: Option<u64>,
}

const USAGE: &str = "usage: probe_upstreams FIX502 [--variant group|locations] [--accepting answer|hold] [--scheme http|https] [--count N] [--timeout-ms MS] [--runs R] [--child-nofile LIMIT]";

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        fix502: PathBuf::new(),
        variant: Variant::Group,
        count: 1000,
        timeout: Duration::from_millis(1000),
        runs: 3,
        mode: Mode::Answer,
        https: false,
        child_nofile: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--variant" => {
                parsed.variant = match value()?.as_str() {
                    "group" => Variant::Group,
                    "locations" => Variant::Locations,
                    _ => return Err("bad --variant".into()),
                }
            }
            "--count" => parsed.count = value()?.parse().map_err(|_| "bad --count")?,
            "--timeout-ms" => {
                let ms = value()?.parse().map_err(|_| "bad --timeout-ms")?;
                parsed.timeout = Duration::from_millis(ms);
            }
            "--accepting" => {
                parsed.mode = match value()?.as_str() {
                    "answer" => Mode::Answer,
                    "hold" => Mode::Hold,
                    _ => return Err("bad --accepting".into()),
                }
            }
            "--scheme" => {
                parsed.https = match value()?.as_str() {
                    "http" => false,
                    "https" => true,
                    _ => return Err("bad --scheme".into()),
                }
            }
            "--runs" => parsed.runs = value()?.parse().map_err(|_| "bad --runs")?,
            "--child-nofile" => {
                parsed.child_nofile = Some(value()?.parse().map_err(|_| "bad --child-nofile")?);
            }
            _ if parsed.fix502.as_os_str().is_empty() && !arg.starts_with('-') => {
                parsed.fix502 = PathBuf::from(arg);
            }
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    if parsed.fix502.as_os_str().is_empty() {
        return Err(USAGE.into());
    }
    if !(2..=20_000).contains(&parsed.count) || !(1..=20).contains(&parsed.runs) {
        return Err("--count must be 2..=20000 and --runs 1..=20".into());
    }
    Ok(parsed)
}

/// Raises the soft open-files limit towards `want`; returns the soft limit in force.
fn raise_nofile(want: u64) -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        eprintln!("probe_upstreams: cannot read RLIMIT_NOFILE; going on");
        return 0;
    };
    if soft >= want {
        return soft;
    }
    let new = want.min(hard);
    if new < want {
        eprintln!(
            "probe_upstreams: the hard open-files limit is {hard}, below the {want} this needs; going on with {new}"
        );
    }
    match setrlimit(Resource::RLIMIT_NOFILE, new, hard) {
        Ok(()) => new,
        Err(e) => {
            eprintln!("probe_upstreams: cannot raise the open-files limit to {new}: {e}");
            soft
        }
    }
}

/// A listener whose accept queue is full: backlog 0 and one connection never accepted.
struct Silent {
    addr: SocketAddr,
    _listener: Socket,
    _filler: TcpStream,
}

fn silent_endpoint() -> io::Result<Silent> {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))?;
    listener.listen(0)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("no IPv4 address"))?;
    let filler = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    Ok(Silent {
        addr,
        _listener: listener,
        _filler: filler,
    })
}

/// Checks that a plain connect to `addr` is still pending after [`SILENT_CHECK`].
fn check_silent(addr: SocketAddr) -> Result<(), String> {
    let start = Instant::now();
    match TcpStream::connect_timeout(&addr, SILENT_CHECK) {
        Ok(_) => Err(format!(
            "{addr} accepted a connection: SYNs are not dropped"
        )),
        Err(e) if e.kind() == io::ErrorKind::TimedOut && start.elapsed() >= SILENT_CHECK => Ok(()),
        Err(e) => Err(format!(
            "{addr}: connect ended after {:?} with {e}, not a hang",
            start.elapsed()
        )),
    }
}

fn write_config(
    dir: &Path,
    variant: Variant,
    scheme: &str,
    addrs: &[SocketAddr],
) -> io::Result<PathBuf> {
    let d = dir.display();
    let mut conf = format!(
        "# Written by benches/probe_upstreams.\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n    access_log {d}/access.log;\n"
    );
    if variant == Variant::Group {
        conf.push_str("    upstream big {\n");
        for a in addrs {
            conf.push_str(&format!("        server {a};\n"));
        }
        conf.push_str("    }\n");
    }
    conf.push_str("    server {\n        listen 127.0.0.1:18502;\n");
    match variant {
        Variant::Group => {
            conf.push_str(&format!(
                "        location / {{ proxy_pass {scheme}://big; }}\n"
            ));
        }
        Variant::Locations => {
            for (i, a) in addrs.iter().enumerate() {
                conf.push_str(&format!(
                    "        location = /u{i} {{ proxy_pass {scheme}://{a}; }}\n"
                ));
            }
        }
    }
    conf.push_str("    }\n}\n");
    let path = dir.join("nginx.conf");
    fs::write(&path, conf)?;
    Ok(path)
}

/// What one fix502 run reported about the TCP connects.
#[derive(Default)]
struct Counts {
    connected: usize,
    timed_out: usize,
    other: Vec<String>,
    step_ms: u64,
}

fn count_findings(json: &[u8]) -> Result<Counts, String> {
    let report: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("the report is not JSON: {e}"))?;
    let mut counts = Counts::default();
    let steps = report
        .get("steps")
        .and_then(|s| s.as_array())
        .ok_or("the report has no steps")?;
    let upstream = steps
        .iter()
        .find(|s| s.get("step").and_then(|v| v.as_str()) == Some("upstream"))
        .ok_or("the report has no upstream step")?;
    counts.step_ms = upstream
        .get("duration_ms")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_default();
    let findings = upstream
        .get("findings")
        .and_then(|f| f.as_array())
        .map_or(&[][..], Vec::as_slice);
    for f in findings {
        if f.get("check").and_then(|c| c.as_str()) != Some("upstream.tcp-connect") {
            continue;
        }
        let message = f.get("message").and_then(|m| m.as_str()).unwrap_or("");
        if message.contains(" accepts connections ") {
            counts.connected += 1;
        } else if f.get("cause").and_then(|c| c.as_str()) == Some("upstream-timeout") {
            counts.timed_out += 1;
        } else {
            counts.other.push(message.to_owned());
        }
    }
    Ok(counts)
}

/// Runs fix502 once; returns its wall time and what it reported.
fn run_once(args: &Args, conf: &Path, dir: &Path) -> Result<(Duration, Counts), String> {
    let out_path = dir.join("report.json");
    let err_path = dir.join("stderr.txt");
    let out = File::create(&out_path).map_err(|e| e.to_string())?;
    let err = File::create(&err_path).map_err(|e| e.to_string())?;
    let mut cmd = match args.child_nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -Sn {n} && exec \"$0\" \"$@\""))
                .arg(&args.fix502);
            c
        }
        None => Command::new(&args.fix502),
    };
    cmd.args([
        "--non-interactive",
        "--json",
        "--step",
        "upstream",
        "--timeout",
    ])
    .arg(format!("{}ms", args.timeout.as_millis()))
    .arg("--config")
    .arg(conf)
    .stdin(Stdio::null())
    .stdout(out)
    .stderr(err);
    let deadline = args.timeout * 10 + Duration::from_secs(60);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", args.fix502.display()))?;
    // Polls every millisecond until the child exits or the deadline passes.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("fix502 still running after {deadline:?}: killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("waiting for fix502: {e}")),
        }
    };
    let elapsed = start.elapsed();
    let json = fs::read(&out_path).map_err(|e| e.to_string())?;
    count_findings(&json).map(|c| (elapsed, c)).map_err(|e| {
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        let tail: String = stderr.chars().take(2000).collect();
        format!("fix502 exited with {status}: {e}; stderr: {tail}")
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

fn bench(args: &Args, dir: &Path) -> Result<(), String> {
    let half = args.count / 2;
    // fix502 opens up to 8 connections to an accepting upstream per run (connect probe,
    // HTTP probe, 6 for the protocol sniff); `hold` keeps all of them.
    let cap = (args.count - half)
        * 8
        * if args.mode == Mode::Hold {
            args.runs
        } else {
            1
        };
    let nofile = raise_nofile((args.count * 4 + cap + 1024) as u64);
    let mut accepting = Accepting::start(args.count - half, args.mode, cap)
        .map_err(|e| format!("accepting listeners: {e}"))?;
    let silent: Vec<Silent> = (0..half)
        .map(|_| silent_endpoint())
        .collect::<io::Result<_>>()
        .map_err(|e| format!("silent listeners: {e}"))?;
    let samples: Vec<SocketAddr> = [0, half / 2, half.saturating_sub(1)]
        .iter()
        .filter_map(|&i| silent.get(i).map(|s| s.addr))
        .collect();
    let checks: Vec<JoinHandle<Result<(), String>>> = samples
        .into_iter()
        .map(|a| std::thread::spawn(move || check_silent(a)))
        .collect();
    for check in checks {
        check
            .join()
            .map_err(|_| "the silent check panicked".to_owned())??;
    }
    // Alternate the two kinds so that the order in the config favours neither.
    let mut addrs = Vec::with_capacity(args.count);
    let mut silent_addrs = silent.iter().map(|s| s.addr);
    for a in &accepting.addrs {
        addrs.push(*a);
        addrs.extend(silent_addrs.next());
    }
    let scheme = if args.https { "https" } else { "http" };
    let conf =
        write_config(dir, args.variant, scheme, &addrs).map_err(|e| format!("config: {e}"))?;

    let mut times = Vec::with_capacity(args.runs);
    let mut last = Counts::default();
    let mut counts_ok = true;
    for _ in 0..args.runs {
        let (elapsed, counts) = run_once(args, &conf, dir)?;
        let ok = counts.connected == args.count - half
            && counts.timed_out == half
            && counts.other.is_empty();
        if !ok {
            counts_ok = false;
            for m in counts.other.iter().take(3) {
                eprintln!("probe_upstreams: unexpected finding: {m}");
            }
        }
        times.push(elapsed);
        last = counts;
    }
    let accepted = accepting.stop();
    drop(silent);
    let maxrss = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u.max_rss());
    let limit = args.timeout + MARGIN;
    let max = times.iter().max().copied().unwrap_or_default();
    let runs: Vec<String> = times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect();
    println!(
        "variant={} accepting={} scheme={scheme} endpoints={} timeout_s={:.3} limit_s={:.3} runs_s={} seconds={:.3} max_s={:.3} step_ms={} connected={} timed_out={} other={} accepted={accepted} maxrss_kib={maxrss} nofile={nofile} counts_ok={} within_target={}",
        match args.variant {
            Variant::Group => "group",
            Variant::Locations => "locations",
        },
        match args.mode {
            Mode::Answer => "answer",
            Mode::Hold => "hold",
        },
        args.count,
        args.timeout.as_secs_f64(),
        limit.as_secs_f64(),
        runs.join(","),
        median(times).as_secs_f64(),
        max.as_secs_f64(),
        last.step_ms,
        last.connected,
        last.timed_out,
        last.other.len(),
        if counts_ok { "yes" } else { "no" },
        if max <= limit { "yes" } else { "no" },
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("probe_upstreams: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("fix502-probe-bench-{}", std::process::id()));
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("probe_upstreams: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let result = bench(&args, &dir);
    let _ = fs::remove_dir_all(&dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe_upstreams: {e}");
            ExitCode::FAILURE
        }
    }
}
