//! `fix502 collect`: one bundle (a `.tar.gz` with a versioned manifest) of what the engine
//! reads about one nginx, gathered once, redacted and bounded in size, for a person who is
//! not on the machine. What belongs here: which members a bundle holds and in which order
//! (this file), how secrets are taken out of them (`scrub.rs`), and how they are written
//! under the size cap with the manifest (`write.rs`), and read back (`read.rs`). docs/bundle.md lists the members.
//!
//! Collecting is a read-only run of the engine (no `--apply`, nothing replayed): the
//! report it makes is `report.json`, and the members are what that run read, taken again
//! from the same sources: `nginx -V` and `nginx -T` (or the config files when `-T` cannot
//! run), the `--since` window of every error and access log with its rotated parts (the
//! window found by the same bisection as the logs step, never the whole file), nginx's
//! processes and their listening sockets (`/proc/PID/net/*`), the app servers behind the
//! upstreams (what the upstream step found, their config files and the tail of their logs),
//! and the kernel settings the checks read.

mod read;
mod recorded;
mod scrub;
mod write;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fix502_nginx::history;
use fix502_nginx::window::Stamp;
use fix502_probe::host::read_tail;
use fix502_probe::namespace::NamespaceIds;

pub(crate) use read::{Opened, open_bundle};
pub use read::{ReadError, read_bundle};
pub(crate) use recorded::{Measured, Recorded};
pub use scrub::{KINDS, Scrubber, UserPatternError};
pub use write::{BUNDLE_VERSION, DEFAULT_CAP, Manifest, Member};

use crate::command::run_command;
use crate::engine::Engine;
use crate::facts::{Behind, Facts};
use crate::options::Options;
use crate::report::StepId;

/// How a bundle is made.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Where the bundle is written.
    pub output: PathBuf,
    /// The most bytes the members may hold together (before compression).
    pub cap: u64,
    /// What is taken out of the members.
    pub scrubber: Scrubber,
}

/// Why no bundle was written.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// nginx could not be found or chosen.
    #[error(transparent)]
    Discovery(#[from] crate::DiscoveryError),
    /// The bundle could not be written.
    #[error("cannot write the bundle {path}: {source}")]
    Write {
        /// The bundle.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The most bytes of an app server's log kept (its newest).
const APP_LOG_TAIL: u64 = 256 * 1024;
/// The kernel settings the checks read, as paths under `/proc/sys`.
const KERNEL: &[&str] = &[
    "net/core/somaxconn",
    "net/ipv4/ip_local_port_range",
    "net/ipv4/tcp_fin_timeout",
    "net/ipv4/tcp_tw_reuse",
    "net/ipv4/ip_forward",
    "fs/file-max",
    "fs/file-nr",
    "kernel/hostname",
    "kernel/osrelease",
];
/// The socket tables read from nginx's network namespace.
const SOCKET_TABLES: &[&str] = &["tcp", "tcp6", "udp", "udp6", "unix"];

/// Collects the bundle: runs the engine read-only, gathers the members, and writes them.
/// `progress` is told what is being gathered, one short phrase at a time.
pub async fn collect(
    options: Options,
    how: &CollectOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Manifest, CollectError> {
    let options = Options {
        apply: false,
        dry_run: true,
        replay_logged: false,
        ..options
    };
    progress("diagnosing (read-only)");
    let mut engine = Engine::new(options.clone()).await?;
    for step in StepId::ALL {
        if step != StepId::Restart && options.wants(step) {
            progress(step.title());
            engine.run_step(step).await;
        }
    }
    let plan = engine.plan().await;
    engine.record_restart(&plan, Vec::new(), 0).await;
    let report = engine.report();
    let facts = engine.facts();
    let mut members: Vec<Member> = Vec::new();
    let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
    members.push(Member::text(
        "report.json",
        "the diagnosis of the live host",
        json,
    ));
    let record = Recorded::of(facts, engine.steps(), &report.actions);
    members.push(Member::text(
        recorded::MEMBER,
        "what the live run measured (probes, sockets, processes, app servers), for --from",
        serde_json::to_vec_pretty(&record).unwrap_or_default(),
    ));
    progress("nginx -V and -T");
    members.extend(nginx_members(facts).await);
    progress("processes and sockets");
    members.extend(process_members(facts));
    members.extend(kernel_members());
    progress("app servers");
    members.extend(app_members(facts).await);
    progress("log windows");
    members.extend(docker_log_member(facts, how.cap));
    members.extend(log_members(facts, how.cap).await);
    let host = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_default();
    write::write(&how.output, members, &host, &options, how, progress).map_err(|source| {
        CollectError::Write {
            path: how.output.clone(),
            source,
        }
    })
}

/// `nginx -V`, and `nginx -T` or, when it cannot run, each config file read.
async fn nginx_members(facts: &Facts) -> Vec<Member> {
    let mut out = Vec::new();
    if let Some((program, args)) = facts.nginx_command(&["-V"])
        && let Ok(o) = run_command(&program, &args, Duration::from_secs(10)).await
    {
        // nginx prints -V on stderr.
        let text = format!("{}{}", o.stdout, o.stderr);
        out.push(Member::text("nginx/V.txt", "nginx -V", text.into_bytes()));
    }
    match facts.nginx_dump().await {
        Ok(o) if o.success => {
            out.push(Member::text(
                "nginx/T.txt",
                "nginx -T: the whole config as nginx reads it",
                o.stdout.clone().into_bytes(),
            ));
        }
        failed => {
            let why = match failed {
                Ok(o) => o.stderr.trim().to_owned(),
                Err(e) => e.clone(),
            };
            out.push(Member::text(
                "nginx/T-failed.txt",
                "why nginx -T could not run (the config files follow)",
                why.into_bytes(),
            ));
            for file in facts.config.iter().flat_map(|c| c.files.iter()) {
                if let Ok(bytes) = std::fs::read(facts.nginx_file(file)) {
                    out.push(Member::text(
                        &format!("files{}", file.display()),
                        "a config file",
                        bytes,
                    ));
                }
            }
        }
    }
    if let Ok(o) = facts.nginx_test().await {
        let text = format!("{}{}", o.stdout, o.stderr);
        out.push(Member::text("nginx/t.txt", "nginx -t", text.into_bytes()));
    }
    out
}

/// nginx's master and workers (command line, status, cgroup, namespaces), and the socket
/// tables of its network namespace.
fn process_members(facts: &Facts) -> Vec<Member> {
    let mut out = Vec::new();
    let mut pids = facts.worker_pids();
    pids.extend(facts.master_pid());
    pids.sort_unstable();
    for pid in &pids {
        out.extend(proc_files(*pid, "nginx's process"));
    }
    if let Some(master) = facts.master_pid() {
        for table in SOCKET_TABLES {
            if let Ok(bytes) = std::fs::read(format!("/proc/{master}/net/{table}")) {
                out.push(Member::text(
                    &format!("sockets/{table}"),
                    "a socket table of nginx's network namespace",
                    bytes,
                ));
            }
        }
    }
    out
}

/// `/proc/PID/{cmdline,status,cgroup}` and the namespace ids of one process.
fn proc_files(pid: u32, what: &str) -> Vec<Member> {
    let mut out = Vec::new();
    for name in ["cmdline", "status", "cgroup"] {
        if let Ok(mut bytes) = std::fs::read(format!("/proc/{pid}/{name}")) {
            if name == "cmdline" {
                bytes
                    .iter_mut()
                    .filter(|b| **b == 0)
                    .for_each(|b| *b = b' ');
            }
            out.push(Member::text(&format!("proc/{pid}/{name}"), what, bytes));
        }
    }
    let ns = NamespaceIds::of(&pid.to_string());
    let ns: String = [("net", ns.net), ("mnt", ns.mnt), ("pid", ns.pid)]
        .iter()
        .filter_map(|(kind, id)| id.map(|id| format!("{kind}:[{id}]\n")))
        .collect();
    out.push(Member::text(
        &format!("proc/{pid}/ns"),
        what,
        ns.into_bytes(),
    ));
    out
}

/// The kernel settings the checks read.
fn kernel_members() -> Vec<Member> {
    let text: String = KERNEL
        .iter()
        .filter_map(|k| {
            read_trimmed(&format!("/proc/sys/{k}"))
                .map(|v| format!("{} = {v}\n", k.replace('/', ".")))
        })
        .collect();
    vec![Member::text(
        "kernel/sysctl.txt",
        "the kernel settings the checks read",
        text.into_bytes(),
    )]
}

/// Each app server behind an upstream: what the upstream step found (JSON), its process,
/// its config file and the newest part of its log.
async fn app_members(facts: &Facts) -> Vec<Member> {
    let mut out = Vec::new();
    let mut seen: Vec<i32> = Vec::new();
    for i in 0..facts.endpoints.len() {
        let Ok(Some(Behind::Server(app))) = facts.behind(i).await else {
            continue;
        };
        let pid = app.master_pid.unwrap_or(app.pid);
        if seen.contains(&pid) {
            continue;
        }
        seen.push(pid);
        let dir = format!("apps/{pid}");
        let json = serde_json::to_vec_pretty(app.as_ref()).unwrap_or_default();
        out.push(Member::text(
            &format!("{dir}/app-server.json"),
            "the app server, its settings and log events, as the upstream step found them",
            json,
        ));
        if let Ok(p) = u32::try_from(pid) {
            out.extend(proc_files(p, "the app server's process"));
        }
        if let Some(config) = &app.config
            && let Ok(bytes) = std::fs::read(config)
        {
            out.push(Member::text(
                &format!("{dir}/files{}", config.display()),
                "the app server's config",
                bytes,
            ));
        }
        if let Some(log) = &app.log
            && let Ok(bytes) = read_tail(log, APP_LOG_TAIL)
        {
            out.push(Member::text(
                &format!("{dir}/log{}", log.display()),
                "the newest part of the app server's log",
                bytes,
            ));
        }
    }
    out
}

/// The `--since` window of every error and access log, rotated parts included (oldest
/// first, decompressed), each part its own member.
async fn log_members(facts: &Facts, cap: u64) -> Vec<Member> {
    let since = facts.window_start();
    let mut logs: Vec<(PathBuf, PathBuf, Stamp, &str)> = facts
        .error_logs
        .iter()
        .map(|p| (p.clone(), facts.nginx_file(p), Stamp::ErrorLog, "error"))
        .collect();
    logs.extend(facts.access_logs.iter().map(|p| {
        let file = facts.nginx_file(p);
        let stamp = access_stamp(&file);
        (p.clone(), file, stamp, "access")
    }));
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (named, path, stamp, kind) in logs {
            let Ok(parts) = history::history(&path, since, stamp) else {
                continue;
            };
            for part in parts {
                let read = if part.gzip {
                    history::open_part(&part, since, stamp)
                        .and_then(|mut reader| newest(&mut reader, cap))
                } else {
                    plain_window(&part.path, since, stamp, cap)
                };
                let Ok(bytes) = read else {
                    continue;
                };
                // Named as nginx names it (not through a container's root).
                let name = match (named.parent(), part.path.file_name()) {
                    (Some(dir), Some(file)) => dir.join(file),
                    _ => part.path.clone(),
                };
                out.push(Member::log(
                    &format!("logs/{kind}{}", name.display()),
                    if kind == "error" {
                        "the error log's lines in the window"
                    } else {
                        "the access log's lines in the window"
                    },
                    bytes,
                ));
            }
        }
        out
    })
    .await
    .unwrap_or_default()
}

/// The newest part of the Docker json-file log nginx's error log goes to (its stderr in a
/// container), at its path under Docker's data root: `logs/docker/containers/ID/ID-json.log`.
fn docker_log_member(facts: &Facts, cap: u64) -> Option<Member> {
    let log = facts.docker_log().filter(|d| d.unreadable.is_none())?;
    let mut bytes = read_tail(&log.path, cap.min(write::MAX_MEMBER)).ok()?;
    if std::fs::metadata(&log.path).is_ok_and(|m| m.len() > bytes.len() as u64) {
        from_a_line_start(&mut bytes);
    }
    Some(Member::log(
        &format!("{DOCKER_MEMBERS}containers/{id}/{id}-json.log", id = log.id),
        "the newest part of the container's json-file log (nginx's stderr: its error log)",
        bytes,
    ))
}

/// Where a bundle keeps Docker's files, as under its data root.
pub(crate) const DOCKER_MEMBERS: &str = "logs/docker/";

/// The newest `max` bytes (from a line start) of a plain log's window: the window's start
/// is found by the logs step's bisection, and only the last `max` bytes after it are read,
/// so a window of gigabytes costs the bisection and `max` bytes.
fn plain_window(
    path: &Path,
    since: Option<jiff::civil::DateTime>,
    stamp: Stamp,
    max: u64,
) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = match since {
        Some(since) => fix502_nginx::window::window_start(&mut file, len, since, stamp)?,
        None => 0,
    };
    let from = start.max(len.saturating_sub(max));
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.take(len - from).read_to_end(&mut bytes)?;
    if from > start {
        from_a_line_start(&mut bytes);
    }
    Ok(bytes)
}

/// The newest `max` bytes (from a line start) of what `reader` yields, read through once in
/// bounded memory: a window larger than the cap costs the time of reading it, not its size.
fn newest(reader: &mut impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let max = usize::try_from(max.min(write::MAX_MEMBER)).unwrap_or(usize::MAX);
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut dropped = false;
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > max.saturating_mul(2).max(1 << 21) {
            kept.drain(..kept.len() - max);
            dropped = true;
        }
    }
    if kept.len() > max {
        kept.drain(..kept.len() - max);
        dropped = true;
    }
    if dropped {
        from_a_line_start(&mut kept);
    }
    Ok(kept)
}

/// Drops the bytes before the first line start: the part of a line that was cut.
fn from_a_line_start(bytes: &mut Vec<u8>) {
    let first = bytes
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| p + 1);
    bytes.drain(..first);
}

/// How an access log dates its lines: `$time_iso8601` when its last line carries such a
/// time, else `$time_local` (nginx's `combined`).
fn access_stamp(path: &Path) -> Stamp {
    let last = read_tail(path, 4096).ok().and_then(|b| {
        b.split(|c| *c == b'\n')
            .rev()
            .find(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
    });
    match last {
        Some(line)
            if fix502_nginx::window::line_time(&line, Stamp::AccessLog).is_none()
                && fix502_nginx::window::line_time(&line, Stamp::Iso8601).is_some() =>
        {
            Stamp::Iso8601
        }
        _ => Stamp::AccessLog,
    }
}

/// `fix502-HOST-YYYYMMDDTHHMMSSZ.tar.gz` in the current directory.
pub fn default_output() -> PathBuf {
    let host: String = read_trimmed("/proc/sys/kernel/hostname")
        .unwrap_or_else(|| "host".to_owned())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stamp =
        jiff::fmt::strtime::format("%Y%m%dT%H%M%SZ", jiff::Timestamp::now()).unwrap_or_default();
    PathBuf::from(format!("fix502-{host}-{stamp}.tar.gz"))
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}
