//! Step 2, continued: the application server behind each local upstream. From the listener's
//! pid it names the server (php-fpm, gunicorn, uWSGI, uvicorn, node, ...), shows the settings
//! that end requests early (php-fpm `request_terminate_timeout`, gunicorn `--timeout`, uWSGI
//! `harakiri`, ...) with where they are set, and reports what its own log and the kernel's
//! OOM killer say happened within `--since`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use fix502_nginx::view::{PassModule, Peer};
use fix502_probe::appserver::{
    self, AppServer, AppServerKind, LogEvent, LogEventKind, Setting, SettingSource,
};

use crate::causes::Cause;
use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Behind, Endpoint, Facts};
use crate::report::{CheckId, Evidence, Finding, Severity, StepId};
use crate::timeline;
use crate::upstream::Upstream;
use jiff::civil::DateTime;

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

/// What an app server's log line means for the requests nginx sends.
struct Reason {
    severity: Severity,
    /// The cause it claims: a kill or a dropped connection is the app server ending the
    /// request (`upstream-closed-early`, which absorbs the resets nginx logs for it).
    cause: Option<Cause>,
    /// For a reason without a cause of its own, what nginx sees when it happens, most
    /// direct first: the line joins the diagnosis of the first of these claimed at its
    /// upstream.
    explains: &'static [Cause],
    /// The settings behind it, shown with where they are set.
    settings: &'static [&'static str],
    fix: String,
}

/// Every worker was busy: connections queue (EAGAIN on a full unix socket's backlog, a
/// connect or read timeout on TCP).
pub(crate) const SATURATED: &[Cause] = &[
    Cause::UPSTREAM_BACKLOG_FULL,
    Cause::UPSTREAM_TIMEOUT,
    Cause::UPSTREAM_CLOSED_EARLY,
];

/// What an event means and its fix; `None` for events that do not end requests.
fn explain(event: &LogEvent, app: &AppServer) -> Option<Reason> {
    let set = |name: &str| {
        app.setting(name)
            .map(setting_line)
            .unwrap_or_else(|| format!("{name} (not found)"))
    };
    let reason = |severity, cause, explains, settings, fix| Reason {
        severity,
        cause,
        explains,
        settings,
        fix,
    };
    let closed = Some(Cause::UPSTREAM_CLOSED_EARLY);
    Some(match event.kind {
        LogEventKind::ExecutionTimedOut => reason(
            Severity::Error,
            closed,
            &[],
            &["request_terminate_timeout"],
            format!(
                "php-fpm killed the script at {}: raise it (and fastcgi_read_timeout) only if the script must run that long, else make it faster",
                set("request_terminate_timeout")
            ),
        ),
        LogEventKind::WorkerTimeout => reason(
            Severity::Error,
            closed,
            &[],
            &["timeout"],
            format!(
                "{} killed a worker that ran past its {}: make the request faster or raise the timeout",
                app.kind.name(),
                set("timeout")
            ),
        ),
        LogEventKind::Harakiri => reason(
            Severity::Error,
            closed,
            &[],
            &["harakiri"],
            format!("uWSGI killed the request at {}", set("harakiri")),
        ),
        LogEventKind::ExitedOnSignal { signal } => reason(
            Severity::Error,
            closed,
            &[],
            &[],
            match signal {
                9 => "A worker was SIGKILLed: look for the OOM killer (journalctl -k | grep -i 'killed process') or a timeout kill in the lines around it".to_owned(),
                11 => "A worker crashed (SIGSEGV): find the crashing extension or code (coredumpctl list, the app server's log)".to_owned(),
                15 => "A worker got SIGTERM: from the app server's own timeout (see its timeout setting) or a restart (systemctl status)".to_owned(),
                n => format!("A worker died on signal {n}: see the app server's log around it"),
            },
        ),
        LogEventKind::OutOfMemory => reason(
            Severity::Error,
            closed,
            &[],
            &[],
            "the kernel's OOM killer killed the app: give it more memory or fewer workers"
                .to_owned(),
        ),
        LogEventKind::InvalidRequestBlockSize => reason(
            Severity::Error,
            closed,
            &[],
            &["buffer-size"],
            format!(
                "uWSGI dropped requests whose headers exceed {}: raise buffer-size (e.g. 32768)",
                set("buffer-size")
            ),
        ),
        LogEventKind::ConnectionDisallowed => reason(
            Severity::Error,
            closed,
            &[],
            &["listen.allowed_clients"],
            format!(
                "php-fpm drops connections from nginx's address: add it to {}",
                set("listen.allowed_clients")
            ),
        ),
        LogEventKind::MaxChildrenReached => reason(
            Severity::Warning,
            None,
            SATURATED,
            &["pm.max_children", "listen.backlog"],
            format!(
                "every php-fpm worker was busy ({}): requests wait in the listen queue; raise it if memory allows, or find the slow requests (request_slowlog_timeout)",
                set("pm.max_children")
            ),
        ),
        LogEventKind::SlowRequest => reason(
            Severity::Warning,
            None,
            SATURATED,
            &["request_slowlog_timeout", "slowlog"],
            "php-fpm logged slow requests: their stacks are in the pool's slowlog; make them faster, they hold workers".to_owned(),
        ),
        LogEventKind::ListenQueueFull => reason(
            Severity::Warning,
            None,
            SATURATED,
            &["listen", "processes"],
            format!(
                "uWSGI's listen queue overflowed ({}): add processes or raise listen (and net.core.somaxconn)",
                set("listen")
            ),
        ),
        _ => return None,
    })
}

fn within(event: &LogEvent, since: SystemTime) -> bool {
    event.time.is_some_and(|t| t >= since)
}

/// Whether `app`'s own log says `kind` happened within `--since`.
pub(crate) fn happened(facts: &Facts, app: &AppServer, kind: LogEventKind) -> bool {
    let since = SystemTime::now()
        .checked_sub(facts.options.since)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    app.events
        .iter()
        .any(|e| e.kind == kind && within(e, since))
}

fn app_server(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let since = SystemTime::now()
            .checked_sub(facts.options.since)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        let mut oom: Option<Vec<LogEvent>> = None;
        // The access logs' errors per minute, counted once for every app server.
        let mut traffic: Option<Vec<(DateTime, u64)>> = None;
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
            out.extend(protocol_mismatch(facts, endpoint, app));
            out.extend(clients_not_allowed(facts, endpoint, app));
            let recent: Vec<&LogEvent> = app.events.iter().filter(|e| within(e, since)).collect();
            if traffic.is_none() {
                traffic = Some(errors_per_minute(facts).await);
            }
            out.extend(event_findings(
                &recent,
                app,
                &up,
                traffic.as_deref().unwrap_or_default(),
            ));
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
            out.extend(event_findings(&killed, app, &up, &[]));
        }
        out
    })
}

/// The protocol a uWSGI listen option speaks: `socket` the uwsgi protocol, `http-socket`
/// and `http` (its HTTP router) HTTP.
fn uwsgi_speaks(option: &str) -> Option<&'static str> {
    match option {
        "socket" => Some("uwsgi"),
        "http-socket" | "http" => Some("HTTP"),
        _ => None,
    }
}

/// uWSGI serves the upstream's address in another protocol than the pass directive speaks
/// (`--http-socket` behind `uwsgi_pass`, `--socket` behind `proxy_pass`), as its own
/// options say.
fn protocol_mismatch(facts: &Facts, endpoint: &Endpoint, app: &AppServer) -> Option<Finding> {
    if app.kind != AppServerKind::Uwsgi {
        return None;
    }
    let used = endpoint.uses.first()?;
    let nginx_speaks = match facts.view.targets.get(used.target)?.module {
        PassModule::Uwsgi => "uwsgi",
        PassModule::Proxy => "HTTP",
        _ => return None,
    };
    let setting = app.settings.iter().find(|s| {
        uwsgi_speaks(&s.name).is_some() && appserver::listen_serves(&s.value, &endpoint.display)
    })?;
    let speaks = uwsgi_speaks(&setting.name)?;
    if speaks == nginx_speaks {
        return None;
    }
    let fix = match speaks {
        "HTTP" => format!(
            "Serve {} with the uwsgi protocol (socket = {} instead of {}), or proxy to it over HTTP (proxy_pass http://{})",
            endpoint.display, setting.value, setting.name, endpoint.display
        ),
        _ => format!(
            "Talk uwsgi to {} (uwsgi_pass {} with include uwsgi_params), or serve it with http-socket = {}",
            endpoint.display, endpoint.display, setting.value
        ),
    };
    Some(
        Finding::new(
            APP_SERVER,
            Severity::Error,
            format!(
                "uWSGI serves {} with {} ({speaks}), but nginx speaks {nginx_speaks} to it ({})",
                endpoint.display, setting.name, used.directive
            ),
        )
        .cause(Cause::UPSTREAM_PROTOCOL_MISMATCH)
        .upstream(&endpoint.peer)
        .at(Some(used.at.clone()))
        .evidence(setting_line(setting))
        .headlined()
        .fix(fix),
    )
}

/// The address nginx connects from to a loopback `peer` when no `*_bind` says otherwise:
/// the kernel picks 127.0.0.1 (or ::1) for every loopback destination.
fn loopback_source(peer: &Peer) -> Option<IpAddr> {
    match peer.ip()? {
        IpAddr::V4(ip) if ip.is_loopback() => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_loopback() => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => None,
    }
}

/// Whether php-fpm's `listen.allowed_clients` list lets `source` in (`any` does; an
/// IPv4-mapped IPv6 address counts as its IPv4 address).
fn allows(list: &str, source: IpAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    list.split(',').map(str::trim).any(|entry| {
        entry.eq_ignore_ascii_case("any")
            || entry
                .parse::<IpAddr>()
                .is_ok_and(|ip| plain(ip) == plain(source))
    })
}

/// php-fpm's `listen.allowed_clients` leaves out the address nginx connects from, so the
/// pool drops nginx's connections right after accepting them (only judged for a loopback
/// upstream without a `*_bind`, where that address is known): the setting, and nginx's
/// address.
pub(crate) fn not_allowed<'a>(
    facts: &Facts,
    endpoint: &Endpoint,
    app: &'a AppServer,
) -> Option<(&'a Setting, IpAddr)> {
    if app.kind != AppServerKind::PhpFpm {
        return None;
    }
    let setting = app
        .setting("listen.allowed_clients")
        .filter(|s| s.source != SettingSource::Default)?;
    let used = endpoint.uses.first()?;
    let target = facts.view.targets.get(used.target)?;
    if ["proxy_bind", "fastcgi_bind", "uwsgi_bind", "scgi_bind"]
        .iter()
        .any(|d| target.settings.get(d).is_some())
    {
        return None;
    }
    let source = loopback_source(&endpoint.peer)?;
    (!allows(&setting.value, source)).then_some((setting, source))
}

/// The finding of [`not_allowed`].
fn clients_not_allowed(facts: &Facts, endpoint: &Endpoint, app: &AppServer) -> Option<Finding> {
    let (setting, source) = not_allowed(facts, endpoint, app)?;
    Some(
        Finding::new(
            APP_SERVER,
            Severity::Error,
            format!(
                "php-fpm accepts connections to {} only from {}; nginx connects from {source}, so the pool drops them",
                endpoint.display, setting.value
            ),
        )
        .cause(Cause::UPSTREAM_CLOSED_EARLY)
        .upstream(&endpoint.peer)
        .evidence(setting_line(setting))
        .headlined()
        .fix(format!(
            "Add {source} to {} and reload php-fpm",
            setting_line(setting)
        )),
    )
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

/// The access logs' 502s and 504s per minute, summed over the logs that could be read.
async fn errors_per_minute(facts: &Facts) -> Vec<(DateTime, u64)> {
    facts
        .access_reads()
        .await
        .iter()
        .filter_map(|r| r.report.as_ref().ok())
        .flat_map(|r| &r.per_minute)
        .map(|m| (m.minute, m.status_502 + m.status_504))
        .collect()
}

/// One finding per kind of event, with its count and latest line; `traffic` (502s and 504s
/// per minute) dates the saturation events against what clients got.
fn event_findings(
    events: &[&LogEvent],
    app: &AppServer,
    up: &str,
    traffic: &[(DateTime, u64)],
) -> Vec<Finding> {
    let mut kinds: Vec<(LogEventKind, Vec<&LogEvent>)> = Vec::new();
    for e in events {
        match kinds.iter_mut().find(|(k, _)| *k == e.kind) {
            Some((_, all)) => all.push(e),
            None => kinds.push((e.kind, vec![e])),
        }
    }
    kinds
        .into_iter()
        .filter_map(|(kind, all)| {
            let last = all.last()?;
            let mut f = event_finding(last, all.len(), app, up)?;
            if matches!(
                kind,
                LogEventKind::MaxChildrenReached | LogEventKind::ListenQueueFull
            ) && let Some(line) = bursts(&all, traffic)
            {
                f = f.evidence(line);
            }
            Some(f)
        })
        .collect()
}

/// When the access logs' 502/504s came against the minutes the app server said it was
/// full: mostly then means a pool too small for its peaks.
fn bursts(full: &[&LogEvent], traffic: &[(DateTime, u64)]) -> Option<String> {
    let zone = jiff::tz::TimeZone::system();
    let minutes: Vec<DateTime> = full
        .iter()
        .filter_map(|e| jiff::Timestamp::try_from(e.time?).ok())
        .map(|t| zone.to_datetime(t))
        .collect();
    let o = timeline::overlap(traffic, &minutes)?;
    let peaks: Vec<String> = o
        .peaks
        .iter()
        .map(|(m, n)| format!("{} {n}", m.strftime("%H:%M")))
        .collect();
    let peaks = peaks.join(", ");
    Some(if o.errors_when_full * 2 >= o.errors {
        format!(
            "{} of the access log's {} 502/504s came in minutes when the pool was full (busiest: {peaks}): it is too small for its peaks, not down",
            o.errors_when_full, o.errors
        )
    } else {
        format!(
            "only {} of the access log's {} 502/504s came in minutes when the pool was full (busiest: {peaks}): look for another cause too",
            o.errors_when_full, o.errors
        )
    })
}

fn event_finding(event: &LogEvent, count: usize, app: &AppServer, up: &str) -> Option<Finding> {
    let reason = explain(event, app)?;
    let times = if count > 1 {
        format!(" ({count} times; latest shown)")
    } else {
        String::new()
    };
    let source = match (&app.log, event.kind) {
        (_, LogEventKind::OutOfMemory) => "kernel log".to_owned(),
        (Some(path), _) => format!("log {}", path.display()),
        (None, _) => "log".to_owned(),
    };
    let mut f = Finding::new(
        APP_SERVER,
        reason.severity,
        format!("{} {source}{times}: {}", app.kind.name(), event.line.trim()),
    )
    .upstream(Upstream::parse(up))
    .explains(reason.explains)
    .fix(reason.fix);
    f.cause = reason.cause;
    let settings: Vec<String> = reason
        .settings
        .iter()
        .filter_map(|name| app.setting(name))
        .map(setting_line)
        .collect();
    if !settings.is_empty() {
        f = f.evidence(settings.join("; "));
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_clients_lists_are_read_like_php_fpm() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(allows("any", lo));
        assert!(allows("127.0.0.1", lo));
        assert!(allows("10.0.0.1, 127.0.0.1", lo));
        assert!(allows("::ffff:127.0.0.1", lo));
        assert!(!allows("127.0.0.2", lo));
        assert!(!allows("127.0.0.10,10.0.0.1", lo));
        assert!(!allows("", lo));
        assert_eq!(loopback_source(&Peer::inet("127.0.0.5", 9000)), Some(lo));
        assert_eq!(
            loopback_source(&Peer::inet("::1", 9000)),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(loopback_source(&Peer::inet("10.0.0.5", 9000)), None);
        assert_eq!(loopback_source(&Peer::Unix("/run/php.sock".into())), None);
    }

    #[test]
    fn listen_values_name_their_peer() {
        let names_peer = |value: &str, peer: &Peer| {
            appserver::listen_serves(value, &Upstream::from(peer).to_string())
        };
        let tcp = Peer::inet("127.0.0.1", 3031);
        assert!(names_peer("127.0.0.1:3031", &tcp));
        assert!(names_peer(":3031", &tcp));
        assert!(names_peer("0.0.0.0:3031", &tcp));
        assert!(!names_peer("127.0.0.1:30310", &tcp));
        assert!(!names_peer("127.0.0.2:3031", &tcp));
        assert!(!names_peer("/run/app.sock", &tcp));
        let unix = Peer::Unix("/run/app.sock".into());
        assert!(names_peer("/run/app.sock", &unix));
        assert!(!names_peer("/run/app.sock2", &unix));
        assert_eq!(uwsgi_speaks("http-socket"), Some("HTTP"));
        assert_eq!(uwsgi_speaks("socket"), Some("uwsgi"));
        assert_eq!(uwsgi_speaks("listen"), None);
    }

    fn full_at(h: i8, m: i8) -> LogEvent {
        let t = jiff::civil::date(2026, 12, 6).at(h, m, 30, 0);
        let ts = jiff::tz::TimeZone::system().to_timestamp(t).unwrap();
        LogEvent {
            kind: LogEventKind::MaxChildrenReached,
            line: "server reached pm.max_children setting (1)".to_owned(),
            time: Some(
                SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_secs(ts.as_second().unsigned_abs()),
            ),
        }
    }

    #[test]
    fn bursts_say_whether_the_errors_came_when_the_pool_was_full() {
        let minute = |h: i8, m: i8| jiff::civil::date(2026, 12, 6).at(h, m, 0, 0);
        let traffic = [(minute(10, 1), 41), (minute(10, 2), 17), (minute(10, 7), 2)];
        let full = [full_at(10, 1), full_at(10, 2)];
        let refs: Vec<&LogEvent> = full.iter().collect();
        let line = bursts(&refs, &traffic).unwrap();
        assert!(
            line.starts_with("58 of the access log's 60 502/504s"),
            "{line}"
        );
        assert!(
            line.contains("busiest: 10:01 41, 10:02 17, 10:07 2"),
            "{line}"
        );
        assert!(line.contains("too small for its peaks"), "{line}");
        let late = [full_at(10, 7)];
        let refs: Vec<&LogEvent> = late.iter().collect();
        let line = bursts(&refs, &traffic).unwrap();
        assert!(line.starts_with("only 2 of"), "{line}");
        assert_eq!(bursts(&refs, &[]), None);
    }
}
