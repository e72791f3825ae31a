//! Step 3, whether nginx runs the config on disk: the files nginx would load now (from
//! `nginx -T`) against the time the running config was loaded (the start of the oldest
//! worker: a successful reload replaces every worker), and reloads that failed (`[emerg]`
//! lines the master logged after that time).
//!
//! Only that comparison belongs here; `nginx -t` itself is [`crate::steps::config`].

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fix502_nginx::dump::split_dump;
use fix502_nginx::errorlog::{self, Level};
use jiff::civil::DateTime;
use procfs::Current;

use crate::causes::Cause;
use crate::check::{FindingsFuture, FnCheck};
use crate::discovery::{Master, under_prefix};
use crate::facts::Facts;
use crate::report::{CheckId, Evidence, Finding, Location, Severity, StepId};
use crate::steps::config::nginx_t_problem;

/// Check id: the running config against the files on disk, and failed reloads.
pub const RELOAD: CheckId = CheckId::new("config.reload", StepId::Config, Evidence::Config);

/// The checks of this file.
pub static CHECKS: [FnCheck; 1] = [FnCheck::new(RELOAD, reload)];

/// How much of the end of each error log is read for failed reloads.
const LOG_TAIL_BYTES: u64 = 4 * 1024 * 1024;
/// Longer log lines are skipped (nginx cuts its lines at about 2 KiB).
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Log lines kept as evidence per reload attempt.
const MAX_LINES_PER_ATTEMPT: usize = 8;
/// Reload attempts kept while scanning one log (the most recent ones).
const MAX_ATTEMPTS: usize = 100;
/// Failed reloads reported (the most recent ones).
const MAX_REPORTED: usize = 3;
/// `[emerg]` lines of other processes remembered (to tell a log reopen from a reload).
const MAX_OTHER_LINES: usize = 10_000;
/// Changed files listed as evidence.
const MAX_FILES_SHOWN: usize = 20;
/// Master lines further apart than this belong to different attempts.
const ATTEMPT_GAP: jiff::SignedDuration = jiff::SignedDuration::from_secs(2);

/// When the running config was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadTime {
    /// The start of the oldest worker that is not shutting down, else of the master.
    pub at: SystemTime,
    /// The process whose start time it is.
    pub pid: u32,
    /// Whether that process is a worker (false: the master, which has no live workers).
    pub worker: bool,
}

/// When `master`'s running config was loaded: the start of its oldest current worker (a
/// successful reload replaces every worker; workers still `shutting down` after one are
/// skipped), else the master's own start. `None` when no start time can be read.
pub fn load_time(master: &Master) -> Option<LoadTime> {
    let oldest_worker = master
        .workers
        .iter()
        .filter(|w| !shutting_down(w.pid))
        .filter_map(|w| Some((start_time(w.pid)?, w.pid)))
        .min();
    match oldest_worker {
        Some((at, pid)) => Some(LoadTime {
            at,
            pid,
            worker: true,
        }),
        None => Some(LoadTime {
            at: start_time(master.pid)?,
            pid: master.pid,
            worker: false,
        }),
    }
}

/// Whether an nginx worker's title says it is leaving (`worker process is shutting down`).
fn shutting_down(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|title| String::from_utf8_lossy(&title).contains("shutting down"))
}

/// When `pid` started, as precisely as `/proc` tells: its start in clock ticks since boot,
/// placed on the wall clock through the current uptime (10 ms resolution). (The boot time
/// in `/proc/stat` is whole seconds, too coarse for "edited, then reloaded".)
fn start_time(pid: u32) -> Option<SystemTime> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    let uptime = procfs::Uptime::current().ok()?.uptime_duration();
    start_from_uptime(
        SystemTime::now(),
        uptime,
        stat.starttime,
        procfs::ticks_per_second(),
    )
}

/// The wall-clock start of a process that started `ticks` clock ticks (at
/// `ticks_per_second`) after boot, given the time `now` and the `uptime` read at that time.
pub fn start_from_uptime(
    now: SystemTime,
    uptime: Duration,
    ticks: u64,
    ticks_per_second: u64,
) -> Option<SystemTime> {
    if ticks_per_second == 0 {
        return None;
    }
    let since_boot =
        Duration::from_secs(ticks / ticks_per_second).checked_add(Duration::from_nanos(
            (ticks % ticks_per_second).checked_mul(1_000_000_000)? / ticks_per_second,
        ))?;
    // A process started within the uptime's resolution may look younger than zero.
    now.checked_sub(uptime.saturating_sub(since_boot))
}

/// One clock tick: the resolution of a process start time, and the only slack allowed when
/// comparing it with a file's modification time.
fn tick() -> Duration {
    match procfs::ticks_per_second() {
        0 => Duration::from_millis(10),
        hz => Duration::from_nanos(1_000_000_000 / hz),
    }
}

/// A config file and when it was last modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTime {
    /// The file.
    pub path: PathBuf,
    /// Its modification time.
    pub modified: SystemTime,
}

/// The files modified after `loaded`, newest first. A start time is only known to one clock
/// `tick` (the real start lies before `loaded + tick`), so only a file modified after
/// `loaded + tick` counts: it was certainly written after the process started.
pub fn changed_after(files: &[FileTime], loaded: SystemTime, tick: Duration) -> Vec<&FileTime> {
    let limit = loaded.checked_add(tick).unwrap_or(loaded);
    let mut changed: Vec<&FileTime> = files.iter().filter(|f| f.modified > limit).collect();
    changed.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.path.cmp(&b.path)));
    changed
}

/// A reload the master tried after the running config was loaded, and that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedReload {
    /// When nginx logged the attempt's first line (nginx's local time).
    pub at: DateTime,
    /// The first `[emerg]` of the attempt: `[emerg] invalid value "30x" in /x/app.conf:4`.
    pub problem: String,
    /// The file and line the `[emerg]` names, if any.
    pub location: Option<Location>,
    /// The attempt's log lines as written (at most a few).
    pub lines: Vec<String>,
}

/// What started a group of master lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// `signal 1 (SIGHUP) received` / `reconfiguring`.
    Reload,
    /// `signal 10 (SIGUSR1) received` / `reopening logs`: not a reload.
    Reopen,
    /// No notice was logged (the usual `error_log` level hides them).
    Unlogged,
}

/// A group of the master's lines: one reload attempt, or a log reopen.
#[derive(Debug)]
struct Attempt {
    trigger: Trigger,
    first: DateTime,
    last: DateTime,
    lines: Vec<String>,
    /// The `[emerg]` messages (after `PID#TID: `).
    emergs: Vec<String>,
    /// `start worker processes` followed: the reload worked.
    succeeded: bool,
}

impl Attempt {
    fn new(trigger: Trigger, at: DateTime) -> Self {
        Self {
            trigger,
            first: at,
            last: at,
            lines: Vec::new(),
            emergs: Vec::new(),
            succeeded: false,
        }
    }

    fn add(&mut self, at: DateTime, raw: &str) {
        self.last = at;
        if self.lines.len() < MAX_LINES_PER_ATTEMPT {
            self.lines.push(raw.to_owned());
        }
    }
}

/// The text after `PID#TID: ` of an error-log line.
fn message_part(raw: &str) -> &str {
    raw.split_once("] ")
        .and_then(|(_, rest)| rest.split_once(": "))
        .map_or(raw, |(_, message)| message)
}

/// The failed reloads in the text of an error log: attempts by the master `master_pid`
/// logged at or after `loaded` (nginx's local time; log times have whole seconds) that have
/// an `[emerg]` line and were not followed by `start worker processes`.
///
/// Lines group into attempts by the `SIGHUP` / `reconfiguring` notices when the log level
/// records them, else by time (lines less than 2 s apart). Attempts that are log reopens
/// (`SIGUSR1`, or an unannounced `[emerg]` the workers logged too in the same second) and
/// lines of other processes (`nginx -t`, `nginx -s reload`, workers) are not reloads.
pub fn failed_reloads(text: &str, master_pid: u32, loaded: DateTime) -> Vec<FailedReload> {
    let loaded = loaded.with().subsec_nanosecond(0).build().unwrap_or(loaded);
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut others: Vec<(String, DateTime)> = Vec::new();
    for raw in text.lines() {
        if raw.len() > MAX_LINE_BYTES {
            continue;
        }
        let Some(line) = errorlog::parse_line(raw) else {
            continue;
        };
        if line.time < loaded {
            continue;
        }
        if line.pid != master_pid {
            if line.level == Level::Emerg && others.len() < MAX_OTHER_LINES {
                others.push((message_part(line.raw).to_owned(), line.time));
            }
            continue;
        }
        let message = line.message;
        let current = attempts.last_mut();
        match line.level {
            Level::Notice => {
                let trigger = if message.starts_with("signal 1 (SIGHUP) received")
                    || message == "reconfiguring"
                {
                    Trigger::Reload
                } else if message.starts_with("signal 10 (SIGUSR1) received")
                    || message == "reopening logs"
                {
                    Trigger::Reopen
                } else {
                    if message == "start worker processes"
                        && let Some(current) = current
                    {
                        current.succeeded = true;
                    }
                    continue;
                };
                // The signal handler's notice and the master loop's notice are one event.
                let same_event = current.as_ref().is_some_and(|c| {
                    c.trigger == trigger
                        && c.emergs.is_empty()
                        && !c.succeeded
                        && line.time.duration_since(c.last) <= ATTEMPT_GAP
                });
                match current {
                    Some(current) if same_event => current.add(line.time, raw),
                    _ => {
                        let mut attempt = Attempt::new(trigger, line.time);
                        attempt.add(line.time, raw);
                        attempts.push(attempt);
                    }
                }
            }
            Level::Emerg | Level::Alert => {
                let joins = current.as_ref().is_some_and(|c| {
                    !c.succeeded && line.time.duration_since(c.last) <= ATTEMPT_GAP
                });
                if !joins {
                    attempts.push(Attempt::new(Trigger::Unlogged, line.time));
                }
                if let Some(attempt) = attempts.last_mut() {
                    attempt.add(line.time, raw);
                    if line.level == Level::Emerg {
                        attempt.emergs.push(message_part(raw).to_owned());
                    }
                }
            }
            _ => {}
        }
        if attempts.len() > MAX_ATTEMPTS {
            attempts.remove(0);
        }
    }
    let logged_by_others = |message: &str, at: DateTime| {
        others.iter().any(|(m, t)| {
            m == message && t.duration_since(at).abs() <= jiff::SignedDuration::from_secs(1)
        })
    };
    attempts
        .into_iter()
        .filter(|a| a.trigger != Trigger::Reopen && !a.succeeded && !a.emergs.is_empty())
        .filter(|a| {
            a.trigger == Trigger::Reload || !a.emergs.iter().all(|m| logged_by_others(m, a.first))
        })
        .filter_map(|a| {
            let first = a.emergs.first()?;
            let (problem, location) = nginx_t_problem(&format!("[emerg] {first}"))?;
            Some(FailedReload {
                at: a.first,
                problem,
                location,
                lines: a.lines,
            })
        })
        .collect()
}

/// The last [`LOG_TAIL_BYTES`] of a file as text, starting at a line start.
fn read_tail(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if start == 0 {
        return Ok(text);
    }
    // The first line is cut: drop it.
    Ok(text
        .split_once('\n')
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_default())
}

/// `14:02:11`, with the date in front when it is not today.
fn clock(t: SystemTime) -> String {
    match jiff::ZonedDateTime::try_from(t) {
        Ok(z) => clock_civil(z.datetime()),
        Err(_) => format!("{t:?}"),
    }
}

/// A local date-time as [`clock`] writes it.
fn clock_civil(dt: DateTime) -> String {
    let today = jiff::ZonedDateTime::now().date();
    if dt.date() == today {
        dt.strftime("%H:%M:%S").to_string()
    } else {
        dt.strftime("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// Two times as [`clock`] writes them, with milliseconds when that alone tells them apart.
fn clock_pair(a: SystemTime, b: SystemTime) -> (String, String) {
    let (ca, cb) = (clock(a), clock(b));
    if ca != cb {
        return (ca, cb);
    }
    let ms = |t: SystemTime| match jiff::ZonedDateTime::try_from(t) {
        Ok(z) => z.strftime("%H:%M:%S%.3f").to_string(),
        Err(_) => format!("{t:?}"),
    };
    (ms(a), ms(b))
}

/// The first problem of `nginx -t` / `nginx -T` stderr, without the `PID#TID: ` that
/// builds logging to stderr in the error-log format put in: `[emerg] unknown directive ...`.
fn test_problem(stderr: &str) -> String {
    match nginx_t_problem(stderr) {
        Some((text, _)) => match text.split_once("] ") {
            Some((level, rest)) => {
                let rest = match rest.split_once(": ") {
                    Some((pid, message))
                        if pid.contains('#')
                            && pid.chars().all(|c| c.is_ascii_digit() || c == '#') =>
                    {
                        message
                    }
                    _ => rest,
                };
                format!("{level}] {rest}")
            }
            None => text,
        },
        None => stderr.trim().to_owned(),
    }
}

/// `2024-05-01 14:02:11.123` for evidence lines.
fn precise(t: SystemTime) -> String {
    match jiff::ZonedDateTime::try_from(t) {
        Ok(z) => z.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        Err(_) => format!("{t:?}"),
    }
}

/// `conf.d/app.conf`: the last two parts of a path.
fn short_path(path: &Path) -> String {
    let parts: Vec<_> = path.iter().collect();
    let tail: PathBuf = parts
        .get(parts.len().saturating_sub(2)..)
        .unwrap_or_default()
        .iter()
        .collect();
    tail.display().to_string()
}

/// The files nginx would load now: `nginx -T`'s, else fix502's own parse (with a note why).
async fn config_files(facts: &Facts) -> Result<(Vec<PathBuf>, Option<String>), String> {
    let prefix = facts.discovery.prefix.as_deref();
    let why = if facts.discovery.binary.is_none() {
        "no nginx binary to run nginx -T".to_owned()
    } else {
        match facts.nginx_dump().await {
            Ok(out) if out.success => {
                let files: Vec<PathBuf> = split_dump(&out.stdout)
                    .into_iter()
                    .map(|f| under_prefix(&f.path, prefix))
                    .collect();
                if !files.is_empty() {
                    return Ok((files, None));
                }
                "nginx -T listed no files".to_owned()
            }
            Ok(out) => format!("nginx -T fails ({})", test_problem(&out.stderr)),
            Err(e) => format!("cannot run nginx -T: {e}"),
        }
    };
    match &facts.config {
        Some(config) => Ok((
            config.files.clone(),
            Some(format!(
                "{why}: the file list is fix502's own reading of the config"
            )),
        )),
        None => Err(format!(
            "{why}, and fix502 could not read the config either: {}",
            facts.config_error.as_deref().unwrap_or("unknown error")
        )),
    }
}

fn reload(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let Some(master) = &facts.discovery.master else {
            return vec![Finding::new(
                RELOAD,
                Severity::Info,
                "nginx is not running: nothing loaded to compare",
            )];
        };
        let master_pid = master.pid;
        let master = master.clone();
        let Ok(Some(loaded)) = tokio::task::spawn_blocking(move || load_time(&master)).await else {
            return vec![Finding::could_not_check(
                RELOAD,
                format!("cannot read when nginx (master pid {master_pid}) or its workers started"),
            )];
        };
        let started_by = if loaded.worker {
            "the running workers started"
        } else {
            "the master started"
        };
        let loaded_line = format!(
            "{} pid {} started at {}{}",
            if loaded.worker {
                "the oldest worker,"
            } else {
                "the master,"
            },
            loaded.pid,
            precise(loaded.at),
            if loaded.worker {
                " (a successful reload replaces every worker)"
            } else {
                " (it has no workers)"
            }
        );
        let reload_cmd = facts.reload_command();
        let mut out = Vec::new();

        // 1. Files changed after the load.
        let mut all_current = false;
        let mut file_count = 0;
        let mut note = None;
        match config_files(facts).await {
            Err(why) => out.push(Finding::could_not_check(RELOAD, why)),
            Ok((paths, why)) => {
                note = why;
                file_count = paths.len();
                let (times, unreadable) = tokio::task::spawn_blocking(move || {
                    let mut times = Vec::new();
                    let mut unreadable = Vec::new();
                    for path in paths {
                        match std::fs::metadata(&path).and_then(|m| m.modified()) {
                            Ok(modified) => times.push(FileTime { path, modified }),
                            Err(e) => {
                                unreadable.push(format!("cannot stat {}: {e}", path.display()))
                            }
                        }
                    }
                    (times, unreadable)
                })
                .await
                .unwrap_or_default();
                let changed = changed_after(&times, loaded.at, tick());
                if let Some(newest) = changed.first() {
                    let others = match changed.len() - 1 {
                        0 => String::new(),
                        n => format!(" and {n} other file(s)"),
                    };
                    let mut f = Finding::new(
                        RELOAD,
                        Severity::Error,
                        format!(
                            "{}{others} changed at {}, after {started_by} ({}): nginx still runs the old config",
                            short_path(&newest.path),
                            clock_pair(newest.modified, loaded.at).0,
                            clock_pair(newest.modified, loaded.at).1
                        ),
                    )
                    .cause(Cause::CONFIG_NOT_RELOADED)
                    .at(Some(Location {
                        file: newest.path.clone(),
                        line: 1,
                    }))
                    .evidence(format!("config loaded: {loaded_line}"));
                    for c in changed.iter().take(MAX_FILES_SHOWN) {
                        let after = c
                            .modified
                            .duration_since(loaded.at)
                            .unwrap_or_default()
                            .as_secs_f64();
                        f = f.evidence(format!(
                            "{} modified {} ({after:.3} s after {})",
                            c.path.display(),
                            precise(c.modified),
                            precise(loaded.at)
                        ));
                    }
                    if changed.len() > MAX_FILES_SHOWN {
                        f = f.evidence(format!(
                            "... and {} more changed file(s)",
                            changed.len() - MAX_FILES_SHOWN
                        ));
                    }
                    if let Some(note) = &note {
                        f = f.evidence(note.clone());
                    }
                    out.push(f.fix(format!("Check and reload: {reload_cmd}")));
                } else {
                    all_current = unreadable.is_empty();
                }
                for line in unreadable {
                    out.push(Finding::new(RELOAD, Severity::Warning, line));
                }
            }
        }

        // 2. Reloads that failed after the load.
        let loaded_civil = jiff::ZonedDateTime::try_from(loaded.at)
            .ok()
            .map(|z| z.datetime());
        let mut failed: Vec<FailedReload> = Vec::new();
        if let Some(loaded_civil) = loaded_civil {
            let logs = facts.error_log_files();
            failed = tokio::task::spawn_blocking(move || {
                let mut found: Vec<FailedReload> = Vec::new();
                for log in &logs {
                    match read_tail(log) {
                        Ok(text) => {
                            for attempt in failed_reloads(&text, master_pid, loaded_civil) {
                                if !found
                                    .iter()
                                    .any(|f| f.at == attempt.at && f.problem == attempt.problem)
                                {
                                    found.push(attempt);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(log = %log.display(), error = %e, "cannot read error log tail");
                        }
                    }
                }
                found.sort_by_key(|f| f.at);
                found
            })
            .await
            .unwrap_or_default();
        }
        let earlier = failed.len().saturating_sub(MAX_REPORTED);
        if !failed.is_empty() {
            let test_now = match facts.nginx_test().await {
                Ok(t) if t.success => Some(Ok(())),
                Ok(t) => Some(Err(test_problem(&t.stderr))),
                Err(_) => None,
            };
            for attempt in failed.iter().skip(earlier) {
                let mut f = Finding::new(
                    RELOAD,
                    Severity::Error,
                    format!(
                        "the reload at {} failed: {}; nginx keeps running the config loaded at {}",
                        clock_civil(attempt.at),
                        attempt.problem,
                        clock(loaded.at)
                    ),
                )
                .cause(Cause::CONFIG_NOT_RELOADED)
                .headlined()
                .at(attempt.location.clone());
                for line in &attempt.lines {
                    f = f.evidence(line.clone());
                }
                f = f.evidence(format!("config loaded: {loaded_line}"));
                if earlier > 0 {
                    f = f.evidence(format!("{earlier} earlier failed reload(s) since then"));
                }
                match &test_now {
                    Some(Ok(())) => {
                        f = f
                            .evidence("nginx -t passes now: the config was fixed after this reload failed")
                            .fix(format!("Reload to apply the fixed config: {reload_cmd}"));
                    }
                    Some(Err(problem)) => {
                        f = f.evidence(format!("nginx -t fails now too: {problem}"));
                        f = f.fix(match &attempt.location {
                            Some(loc) => format!("Fix {loc}, then {reload_cmd}"),
                            None => format!("Fix the error, then {reload_cmd}"),
                        });
                    }
                    None => {
                        f = f.fix(match &attempt.location {
                            Some(loc) => format!("Fix {loc}, then {reload_cmd}"),
                            None => format!("Fix the error, then {reload_cmd}"),
                        });
                    }
                }
                out.push(f);
            }
        }

        if all_current && failed.is_empty() {
            let mut f = Finding::new(
                RELOAD,
                Severity::Info,
                format!(
                    "the running {} (started {}) {} every file of the config as it is now ({file_count} files)",
                    if loaded.worker { "workers" } else { "master" },
                    clock(loaded.at),
                    if loaded.worker { "have" } else { "has" },
                ),
            )
            .evidence(format!("config loaded: {loaded_line}"));
            if let Some(note) = note {
                f = f.evidence(note);
            }
            out.push(f);
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn file(name: &str, modified: SystemTime) -> FileTime {
        FileTime {
            path: PathBuf::from(name),
            modified,
        }
    }

    const TICK: Duration = Duration::from_millis(10);

    #[test]
    fn files_changed_after_the_load() {
        let loaded = at(1_000, 500_000_000);
        let files = vec![
            file("/etc/nginx/nginx.conf", at(900, 0)),
            file("/etc/nginx/conf.d/app.conf", at(1_020, 0)),
            file("/etc/nginx/conf.d/b.conf", at(1_010, 0)),
            // Same second as the load, before it: loaded.
            file("/etc/nginx/conf.d/same-second.conf", at(1_000, 400_000_000)),
            // Within one tick after the computed start: cannot be told apart, not changed.
            file("/etc/nginx/conf.d/in-tick.conf", at(1_000, 509_000_000)),
            // Just past the tick: changed.
            file("/etc/nginx/conf.d/past-tick.conf", at(1_000, 510_000_001)),
        ];
        let changed: Vec<_> = changed_after(&files, loaded, TICK)
            .into_iter()
            .map(|f| f.path.display().to_string())
            .collect();
        assert_eq!(
            changed,
            vec![
                "/etc/nginx/conf.d/app.conf",
                "/etc/nginx/conf.d/b.conf",
                "/etc/nginx/conf.d/past-tick.conf"
            ]
        );
        assert!(changed_after(&files[..1], loaded, TICK).is_empty());
    }

    #[test]
    fn start_time_from_uptime() {
        // Booted at 1000 s, process started 250 ticks (2.5 s) after boot, now is 1100 s.
        let now = at(1_100, 0);
        let t = start_from_uptime(now, Duration::from_secs(100), 250, 100).unwrap();
        assert_eq!(t, at(1_002, 500_000_000));
        // A process younger than the uptime's resolution starts "now".
        assert_eq!(
            start_from_uptime(now, Duration::from_millis(2_500), 251, 100),
            Some(now)
        );
        assert_eq!(start_from_uptime(now, Duration::from_secs(1), 1, 0), None);
    }

    fn dt(text: &str) -> DateTime {
        text.parse().unwrap()
    }

    const MASTER: u32 = 4100;

    #[test]
    fn emerg_by_master_after_load_is_a_failed_reload() {
        let log = "\
2024/05/01 14:01:50 [notice] 4100#4100: start worker processes
2024/05/01 14:02:30 [emerg] 4100#4100: invalid value \"30x\" in /etc/nginx/conf.d/app.conf:4
2024/05/01 14:02:40 [error] 4101#4101: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"x\"
";
        let failed = failed_reloads(log, MASTER, dt("2024-05-01T14:01:50.3"));
        assert_eq!(failed.len(), 1);
        let f = &failed[0];
        assert_eq!(f.at, dt("2024-05-01T14:02:30"));
        assert_eq!(
            f.problem,
            "[emerg] invalid value \"30x\" in /etc/nginx/conf.d/app.conf:4"
        );
        assert_eq!(
            f.location,
            Some(Location {
                file: PathBuf::from("/etc/nginx/conf.d/app.conf"),
                line: 4
            })
        );
        assert_eq!(f.lines.len(), 1);
    }

    #[test]
    fn notices_group_one_attempt() {
        let log = "\
2024/05/01 14:02:30 [notice] 4100#4100: signal 1 (SIGHUP) received from 77, reconfiguring
2024/05/01 14:02:30 [notice] 4100#4100: reconfiguring
2024/05/01 14:02:30 [emerg] 4100#4100: unknown directive \"proxy_pas\" in /x/app.conf:7
2024/05/01 14:05:00 [notice] 4100#4100: signal 1 (SIGHUP) received from 78, reconfiguring
2024/05/01 14:05:00 [notice] 4100#4100: reconfiguring
2024/05/01 14:05:00 [emerg] 4100#4100: bind() to 0.0.0.0:80 failed (98: Address already in use)
2024/05/01 14:05:00 [emerg] 4100#4100: bind() to 0.0.0.0:80 failed (98: Address already in use)
";
        let failed = failed_reloads(log, MASTER, dt("2024-05-01T14:01:50"));
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0].lines.len(), 3, "{:?}", failed[0].lines);
        assert_eq!(failed[0].location.as_ref().map(|l| l.line), Some(7));
        assert_eq!(failed[1].at, dt("2024-05-01T14:05:00"));
        assert_eq!(failed[1].lines.len(), 4);
        assert_eq!(failed[1].location, None);
        assert!(
            failed[1]
                .problem
                .starts_with("[emerg] bind() to 0.0.0.0:80 failed (98: ")
        );
    }

    #[test]
    fn not_failed_reloads() {
        let loaded = dt("2024-05-01T14:01:50.7");
        let log = "\
2024/05/01 14:01:49 [emerg] 4100#4100: before the load in /x/a.conf:1
2024/05/01 14:02:00 [emerg] 5000#5000: unexpected \"}\" in /x/a.conf:2
2024/05/01 14:02:10 [alert] 4100#4100: worker process 4101 exited on signal 9
2024/05/01 14:03:00 [notice] 4100#4100: signal 1 (SIGHUP) received from 9, reconfiguring
2024/05/01 14:03:00 [notice] 4100#4100: reconfiguring
2024/05/01 14:03:00 [notice] 4100#4100: start worker processes
2024/05/01 14:04:00 [notice] 4100#4100: signal 10 (SIGUSR1) received from 9, reopening logs
2024/05/01 14:04:00 [notice] 4100#4100: reopening logs
2024/05/01 14:04:00 [emerg] 4100#4100: open() \"/var/log/x.log\" failed (13: Permission denied)
2024/05/01 14:06:00 [emerg] 4100#4100: open() \"/var/log/y.log\" failed (13: Permission denied)
2024/05/01 14:06:00 [emerg] 4101#4101: open() \"/var/log/y.log\" failed (13: Permission denied)
garbage line
";
        // Before the load; another pid (nginx -t / nginx -s reload); an alert alone; a
        // successful reload; a logged reopen; an unlogged reopen the workers logged too.
        assert_eq!(failed_reloads(log, MASTER, loaded), Vec::new());
        // The same line by the master alone, unannounced, is a failed reload.
        let alone = "2024/05/01 14:06:00 [emerg] 4100#4100: open() \"/var/log/y.log\" failed (13: Permission denied)\n";
        assert_eq!(failed_reloads(alone, MASTER, loaded).len(), 1);
        // Same second as the load counts (log times have whole seconds).
        let same = "2024/05/01 14:01:50 [emerg] 4100#4100: x in /x/a.conf:3\n";
        assert_eq!(failed_reloads(same, MASTER, loaded).len(), 1);
        assert_eq!(failed_reloads(same, MASTER + 1, loaded), Vec::new());
    }

    #[test]
    fn tail_starts_at_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        let line = "2024/05/01 14:02:30 [emerg] 1#1: x in /x/a.conf:1\n";
        let mut text = String::new();
        while (text.len() as u64) < LOG_TAIL_BYTES + 100 {
            text.push_str(line);
        }
        std::fs::write(&path, &text).unwrap();
        let tail = read_tail(&path).unwrap();
        assert!(tail.len() as u64 <= LOG_TAIL_BYTES);
        assert!(tail.starts_with("2024/05/01"), "{:?}", &tail[..40]);
        assert!(read_tail(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn test_problems() {
        assert_eq!(
            test_problem(
                "2026/11/24 01:53:18 [emerg] 20013#20013: unknown directive \"x\" in /a.conf:3\nnginx: configuration file /a.conf test failed\n"
            ),
            "[emerg] unknown directive \"x\" in /a.conf:3"
        );
        assert_eq!(
            test_problem("nginx: [emerg] unexpected \"}\" in /a.conf:4\n"),
            "[emerg] unexpected \"}\" in /a.conf:4"
        );
        assert_eq!(test_problem(" odd \n"), "odd");
    }

    #[test]
    fn short_paths() {
        assert_eq!(
            short_path(Path::new("/etc/nginx/conf.d/app.conf")),
            "conf.d/app.conf"
        );
        assert_eq!(short_path(Path::new("app.conf")), "app.conf");
    }

    /// An nginx started from a temp prefix; stopped (by its pid file's pid) when dropped.
    struct RealNginx {
        dir: tempfile::TempDir,
        pid: Option<i32>,
    }

    impl Drop for RealNginx {
        fn drop(&mut self) {
            use nix::sys::signal::{Signal, kill};
            if let Some(pid) = self.pid {
                let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
                for _ in 0..50 {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    const NGINX: &str = "/usr/sbin/nginx";

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..100 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    fn start_nginx() -> Option<RealNginx> {
        if !nix::unistd::geteuid().is_root() || !Path::new(NGINX).exists() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(
            dir.path().join("conf/nginx.conf"),
            format!(
                "worker_processes 1;\npid logs/nginx.pid;\nerror_log logs/error.log notice;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log off; server {{ listen 127.0.0.1:{port}; include app.conf; }} }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("conf/app.conf"),
            "location / { return 200; }\n",
        )
        .unwrap();
        let prefix = format!("{}/", dir.path().display());
        let status = std::process::Command::new(NGINX)
            .args(["-p", &prefix, "-c", "conf/nginx.conf"])
            .status()
            .unwrap();
        assert!(status.success());
        let mut nginx = RealNginx { dir, pid: None };
        let pid_file = nginx.dir.path().join("logs/nginx.pid");
        wait_until("the pid file", || pid_file.exists());
        nginx.pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .ok();
        Some(nginx)
    }

    async fn run_check(nginx: &RealNginx) -> Vec<Finding> {
        let options = crate::options::Options {
            config: Some(nginx.dir.path().join("conf/nginx.conf")),
            nginx: Some(PathBuf::from(NGINX)),
            prefix: Some(nginx.dir.path().to_path_buf()),
            ..crate::options::Options::default()
        };
        let discovery = crate::discovery::discover(&options).await.unwrap();
        let master = discovery.master.as_ref().expect("the master is found");
        assert_eq!(Some(master.pid as i32), nginx.pid);
        let facts = Facts::new(options, discovery);
        reload(&facts).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_nginx_edit_and_failed_reload() {
        let Some(nginx) = start_nginx() else {
            return;
        };
        let master_pid = nginx.pid.unwrap();
        wait_until("a worker", || {
            !crate::discovery::worker_pids(master_pid as u32).is_empty()
        });

        let findings = run_check(&nginx).await;
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(
            findings[0].message.contains("(2 files)"),
            "{}",
            findings[0].message
        );

        // Edit after the workers started: not reloaded.
        std::thread::sleep(Duration::from_millis(50));
        let app = nginx.dir.path().join("conf/app.conf");
        std::fs::write(&app, "location / { return 204; }\n").unwrap();
        let findings = run_check(&nginx).await;
        let f = findings
            .iter()
            .find(|f| f.severity == Severity::Error)
            .unwrap_or_else(|| panic!("{findings:#?}"));
        assert_eq!(f.cause, Some(Cause::CONFIG_NOT_RELOADED));
        assert!(
            f.message.starts_with("conf/app.conf changed at "),
            "{}",
            f.message
        );
        assert_eq!(
            f.location.as_ref().map(|l| l.file.clone()),
            Some(app.clone())
        );
        assert!(f.fix[0].contains("-s reload"), "{:?}", f.fix);

        // A broken edit and SIGHUP: the reload fails, the old workers keep running.
        std::fs::write(
            &app,
            "location / {\n  return 200;\n  proxy_read_timeout 30x;\n}\n",
        )
        .unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(master_pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
        let log = nginx.dir.path().join("logs/error.log");
        wait_until("the [emerg] line", || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("[emerg]"))
        });
        let findings = run_check(&nginx).await;
        let failed = findings
            .iter()
            .find(|f| f.message.starts_with("the reload at "))
            .unwrap_or_else(|| panic!("{findings:#?}"));
        assert_eq!(failed.cause, Some(Cause::CONFIG_NOT_RELOADED));
        assert!(
            failed.message.contains("proxy_read_timeout"),
            "{}",
            failed.message
        );
        assert_eq!(
            failed.location,
            Some(Location {
                file: app.clone(),
                line: 3
            })
        );
        assert!(
            failed.evidence.iter().any(|e| e.contains("SIGHUP")),
            "{:?}",
            failed.evidence
        );
        assert!(
            failed
                .evidence
                .iter()
                .any(|e| e.starts_with("nginx -t fails now too")),
            "{:?}",
            failed.evidence
        );
        // The edited file is reported too (nginx -T fails, so from fix502's own parse).
        assert!(
            findings
                .iter()
                .any(|f| f.message.starts_with("conf/app.conf changed")
                    && f.evidence.iter().any(|e| e.contains("nginx -T fails"))),
            "{findings:#?}"
        );
    }
}
