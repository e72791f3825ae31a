//! Step 2, continued: the application server behind each local upstream. From the listener's
//! pid it names the server (php-fpm, gunicorn, uWSGI, uvicorn, node, ...), shows the settings
//! that end requests early (php-fpm `request_terminate_timeout`, gunicorn `--timeout`, uWSGI
//! `harakiri`, ...) with where they are set, and reports what its own log and the kernel's
//! OOM killer say happened within `--since`.

use std::time::SystemTime;

use fix502_probe::appserver::{self, AppServer, LogEvent, LogEventKind, Setting, SettingSource};

use crate::causes::Cause;
use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Behind, Facts};
use crate::report::{CheckId, Evidence, Finding, Severity, StepId};
use crate::upstream::Upstream;

/// Check id: the app server behind each upstream.
pub const APP_SERVER: CheckId =
    CheckId::new("upstream.app-server", StepId::Upstream, Evidence::Live);

/// The checks of this part of the step.
pub static CHECKS: [FnCheck; 1] = [FnCheck::new(APP_SERVER, app_server)];

/// The settings worth showing, per app server, in this order.
const SHOWN: &[&str] = &[
    "listen",
    "listen.owner",
    "listen.group",
    "listen.mode",
    "pm",
    "pm.max_children",
    "request_terminate_timeout",
    "timeout",
    "workers",
    "keep-alive",
    "harakiri",
    "buffer-size",
    "timeout-keep-alive",
];

fn source(s: &Setting) -> String {
    match &s.source {
        SettingSource::File { path, line } => format!("{}:{line}", path.display()),
        SettingSource::CommandLine => "command line".to_owned(),
        SettingSource::Environment { variable } => format!("environment {variable}"),
        SettingSource::Default => "default".to_owned(),
        _ => "elsewhere".to_owned(),
    }
}

fn setting_line(s: &Setting) -> String {
    format!("{} = {} ({})", s.name, s.value, source(s))
}

/// What an event means for the requests nginx sends, and the fix; `None` for events that
/// do not end requests.
fn explain(event: &LogEvent, app: &AppServer) -> Option<(Severity, Option<Cause>, String)> {
    let set = |name: &str| {
        app.setting(name)
            .map(setting_line)
            .unwrap_or_else(|| format!("{name} (not found)"))
    };
    Some(match event.kind {
        LogEventKind::ExecutionTimedOut => (
            Severity::Error,
            Some(Cause::UPSTREAM_CLOSED_EARLY),
            format!(
                "php-fpm killed the script at {}: raise it (and fastcgi_read_timeout) only if the script must run that long, else make it faster",
                set("request_terminate_timeout")
            ),
        ),
        LogEventKind::WorkerTimeout => (
            Severity::Error,
            Some(Cause::UPSTREAM_CLOSED_EARLY),
            format!(
                "{} killed a worker that ran past its {}: make the request faster or raise the timeout",
                app.kind.name(),
                set("timeout")
            ),
        ),
        LogEventKind::Harakiri => (
            Severity::Error,
            Some(Cause::UPSTREAM_CLOSED_EARLY),
            format!("uWSGI killed the request at {}", set("harakiri")),
        ),
        LogEventKind::ExitedOnSignal { signal } => (
            Severity::Error,
            Some(Cause::UPSTREAM_CLOSED_EARLY),
            match signal {
                9 => "A worker was SIGKILLed: look for the OOM killer (journalctl -k | grep -i 'killed process') or a timeout kill in the lines around it".to_owned(),
                11 => "A worker crashed (SIGSEGV): find the crashing extension or code (coredumpctl list, the app server's log)".to_owned(),
                15 => "A worker got SIGTERM: from the app server's own timeout (see its timeout setting) or a restart (systemctl status)".to_owned(),
                n => format!("A worker died on signal {n}: see the app server's log around it"),
            },
        ),
        LogEventKind::OutOfMemory => (
            Severity::Error,
            Some(Cause::UPSTREAM_CLOSED_EARLY),
            "the kernel's OOM killer killed the app: give it more memory or fewer workers"
                .to_owned(),
        ),
        LogEventKind::InvalidRequestBlockSize => (
            Severity::Error,
            Some(Cause::UPSTREAM_CLOSED_EARLY),
            format!(
                "uWSGI dropped requests whose headers exceed {}: raise buffer-size (e.g. 32768)",
                set("buffer-size")
            ),
        ),
        LogEventKind::ConnectionDisallowed => (
            Severity::Error,
            Some(Cause::UPSTREAM_CLOSED_EARLY),
            format!(
                "php-fpm refuses nginx's address: add it to {}",
                set("listen.allowed_clients")
            ),
        ),
        LogEventKind::MaxChildrenReached => (
            Severity::Warning,
            None,
            format!(
                "every php-fpm worker was busy ({}): requests wait in the listen queue; raise it or find slow requests",
                set("pm.max_children")
            ),
        ),
        _ => return None,
    })
}

fn within(event: &LogEvent, since: SystemTime) -> bool {
    event.time.is_some_and(|t| t >= since)
}

fn app_server(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let since = SystemTime::now()
            .checked_sub(facts.options.since)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        let mut oom: Option<Vec<LogEvent>> = None;
        for (i, endpoint) in facts.endpoints.iter().enumerate() {
            let up = endpoint.display.clone();
            let app = match facts.behind(i).await {
                Ok(None) => continue,
                Err(e) => {
                    return vec![Finding::could_not_check(
                        APP_SERVER,
                        format!("cannot list listening sockets to find the app servers: {e}"),
                    )];
                }
                Ok(Some(Behind::Unseen)) => {
                    out.push(
                        Finding::new(
                            APP_SERVER,
                            Severity::Info,
                            format!(
                                "{up}: cannot see which process listens (run as root to see it)"
                            ),
                        )
                        .upstream(&endpoint.peer),
                    );
                    continue;
                }
                Ok(Some(Behind::Uninspectable { pid, why })) => {
                    out.push(
                        Finding::new(
                            APP_SERVER,
                            Severity::Info,
                            format!("{up}: cannot inspect pid {pid}: {why}"),
                        )
                        .upstream(&endpoint.peer),
                    );
                    continue;
                }
                Ok(Some(Behind::Server(app))) => app,
            };
            out.push(summary(app, &up));
            let recent: Vec<&LogEvent> = app.events.iter().filter(|e| within(e, since)).collect();
            out.extend(event_findings(&recent, app, &up));
            if oom.is_none() {
                oom = Some(
                    tokio::task::spawn_blocking(move || appserver::oom_kills(Some(since), 200))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or_default(),
                );
            }
            let name = app.process.clone();
            let pids = [Some(app.pid), app.master_pid];
            let killed: Vec<&LogEvent> = oom
                .iter()
                .flatten()
                .filter(|e| {
                    e.line.contains(&format!("({name})"))
                        || pids
                            .iter()
                            .flatten()
                            .any(|p| e.line.contains(&format!("process {p} ")))
                })
                .collect();
            out.extend(event_findings(&killed, app, &up));
        }
        out
    })
}

fn summary(app: &AppServer, up: &str) -> Finding {
    let mut what = format!("{up} is served by {} (pid {}", app.kind.name(), app.pid);
    if let Some(m) = app.master_pid.filter(|m| *m != app.pid) {
        what.push_str(&format!(", master {m}"));
    }
    if let Some(pool) = &app.pool {
        what.push_str(&format!(", pool {pool}"));
    }
    what.push(')');
    if let Some(c) = &app.config {
        what.push_str(&format!(", config {}", c.display()));
    }
    let mut f = Finding::new(APP_SERVER, Severity::Info, what).upstream(Upstream::parse(up));
    for name in SHOWN {
        if let Some(s) = app.setting(name) {
            f = f.evidence(setting_line(s));
        }
    }
    if let Some(idle) = &app.idle_timeout {
        f = f.evidence(format!("idle keep-alive timeout: {}", setting_line(idle)));
    }
    if let Some(log) = &app.log {
        f = f.evidence(format!("log: {}", log.display()));
    }
    f
}

/// One finding per kind of event, with its count and latest line.
fn event_findings(events: &[&LogEvent], app: &AppServer, up: &str) -> Vec<Finding> {
    let mut kinds: Vec<(LogEventKind, usize, &LogEvent)> = Vec::new();
    for e in events {
        match kinds.iter_mut().find(|(k, _, _)| *k == e.kind) {
            Some((_, n, last)) => {
                *n += 1;
                *last = e;
            }
            None => kinds.push((e.kind, 1, e)),
        }
    }
    kinds
        .into_iter()
        .filter_map(|(_, n, last)| event_finding(last, n, app, up))
        .collect()
}

fn event_finding(event: &LogEvent, count: usize, app: &AppServer, up: &str) -> Option<Finding> {
    let (severity, cause, fix) = explain(event, app)?;
    let times = if count > 1 {
        format!(" ({count} times; latest shown)")
    } else {
        String::new()
    };
    let source = if event.kind == LogEventKind::OutOfMemory {
        "kernel log"
    } else {
        "log"
    };
    let mut f = Finding::new(
        APP_SERVER,
        severity,
        format!("{} {source}{times}: {}", app.kind.name(), event.line.trim()),
    )
    .upstream(Upstream::parse(up))
    .fix(fix);
    f.cause = cause;
    if let Some(SettingSource::File { path, line }) =
        app.setting("request_terminate_timeout").map(|s| &s.source)
        && event.kind == LogEventKind::ExecutionTimedOut
    {
        f = f.evidence(format!("set at {}:{line}", path.display()));
    }
    Some(f)
}
