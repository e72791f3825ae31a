//! Step 1, the error logs: read each error log within `--since`, classify the upstream
//! failures nginx logged, and group them by cause × upstream with count, first/last seen and
//! sample lines. Which cause a group points to, and how its lines are counted, is the
//! cause table's ([`crate::causes::of_log`]); this check words only the lines that point to
//! none.

use fix502_nginx::classify::Signature;
use fix502_nginx::logscan::Group;

use crate::causes;
use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Facts, StderrTarget};
use crate::report::{CheckId, Evidence, Finding, Location, Severity, StepId};
use crate::steps::route::logged_chain;
use crate::upstream::Upstream;
use crate::words::duration;

/// The checks of this part of the step.
pub static CHECKS: [FnCheck; 1] = [FnCheck::new(ERROR_LOG, error_log)];

/// Check id: the error-log scan.
pub const ERROR_LOG: CheckId = CheckId::new("logs.error-log", StepId::Logs, Evidence::Log);

/// Whether a line that is not in the error-log format still looks like nginx wrote it (its
/// own messages on stderr, `nginx: [emerg] ...`, or a line that starts with its timestamp).
fn looks_like_nginx(line: &str) -> bool {
    let b = line.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    line.starts_with("nginx: ")
        || (digits(0..4)
            && b.get(4) == Some(&b'/')
            && digits(5..7)
            && b.get(7) == Some(&b'/')
            && digits(8..10)
            && b.get(10) == Some(&b' '))
}

/// How the lines of a group are counted: as the cause table words its signature, unless
/// they cut short responses the client already had.
fn describe(group: &Group) -> &'static str {
    let failure = &group.failure;
    match &failure.signature {
        Signature::NotPermitted => "operation-not-permitted errors",
        Signature::UpstreamTimedOut { .. } if failure.truncates_response() => {
            "upstream timeouts after the header was sent (truncated responses, not 502s)"
        }
        _ if failure.truncates_response() => {
            "errors after the header was sent (truncated responses, not 502s)"
        }
        Signature::FastCgiStderr => "messages from the FastCGI app's stderr (not gateway errors)",
        _ => causes::of_group_lines(group).map_or("other upstream errors", |(_, words)| words),
    }
}

fn error_log(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out = Vec::new();
        let journal = facts.reads_journal();
        for dest in &facts.error_log_elsewhere {
            out.push(elsewhere_finding(facts, dest, journal));
        }
        if facts.error_logs.is_empty() && !journal {
            out.push(Finding::could_not_check(
                ERROR_LOG,
                "no error log file to read (pass --error-log)",
            ));
            return out;
        }
        let window = duration(facts.options.since);
        for read in facts.logs().await {
            let path = if read.path.as_os_str() == "-" {
                "standard input (--error-log -)".to_owned()
            } else {
                read.path.display().to_string()
            };
            let summary = match &read.summary {
                Ok(s) => s,
                Err(e) => {
                    out.push(
                        Finding::could_not_check(ERROR_LOG, format!("cannot read {path}: {e}"))
                            .fix(
                                "Pass a readable copy of the log with --error-log (or run as root)",
                            ),
                    );
                    continue;
                }
            };
            let mut info = Finding::new(
                ERROR_LOG,
                Severity::Info,
                format!(
                    "{path}: {} lines in the last {window}, {} about upstreams",
                    summary.lines_in_window,
                    summary.groups.iter().map(|g| g.count).sum::<u64>()
                ),
            );
            if summary.lines_unparsed + summary.lines_oversized > 0 {
                info = info.evidence(format!(
                    "{} lines not in nginx's error-log format, {} oversized lines skipped",
                    summary.lines_unparsed, summary.lines_oversized
                ));
                // Quoted only when nginx wrote them: the file may not be a log at all.
                for sample in summary
                    .unparsed_samples
                    .iter()
                    .filter(|s| looks_like_nginx(s))
                {
                    info = info.evidence(format!("not an error-log line: {sample}"));
                }
            }
            if summary.lines_future > 0 {
                info = info.evidence(format!(
                    "{} lines dated after now were left out of the window (a wrong clock, or lines not written by this nginx)",
                    summary.lines_future
                ));
            }
            out.push(info);
            for note in &read.notes {
                out.push(Finding::new(
                    ERROR_LOG,
                    Severity::Info,
                    format!("skipped part of the history: {note}"),
                ));
            }
            for group in &summary.groups {
                let failure = &group.failure;
                let cause = causes::of_group(group);
                let severity = match (&failure.signature, cause) {
                    (_, Some(_)) => Severity::Error,
                    (Signature::NotPermitted, None) => Severity::Error,
                    (Signature::FastCgiStderr, None) => Severity::Info,
                    _ => Severity::Warning,
                };
                let upstream = match (&failure.signature, &failure.peer) {
                    (Signature::Resolve, Some(host)) => {
                        Some(Upstream::parse(&named_upstream(facts, host)))
                    }
                    (Signature::NoLiveUpstreams, Some(name)) => Some(Upstream::Group(name.clone())),
                    (_, Some(peer)) => Some(Upstream::parse(peer)),
                    (_, None) => None,
                };
                let to = upstream
                    .as_ref()
                    .map(|p| format!(" to {p}"))
                    .unwrap_or_default();
                let mut f = Finding::new(
                    ERROR_LOG,
                    severity,
                    format!(
                        "{} {}{to} in the last {window} (first {}, last {})",
                        group.count,
                        describe(group),
                        group.first_seen.time(),
                        group.last_seen.time()
                    ),
                );
                f.cause = cause;
                f.evidence = group.samples.clone();
                if let Some(u) = &upstream {
                    let endpoint = match u {
                        Upstream::Group(name) => facts
                            .endpoints
                            .iter()
                            .find(|e| e.group.as_deref() == Some(name.as_str())),
                        _ => facts.endpoint_of(u).await,
                    };
                    f.location = endpoint.and_then(|e| e.uses.first().map(|u| u.at.clone()));
                }
                f.upstream = upstream;
                if let Some(request) = &group.request
                    && let Some((route, chain)) =
                        logged_chain(&facts.view, group.server.as_deref(), request, None)
                {
                    let target = route.target.and_then(|t| facts.view.targets.get(t));
                    let elsewhere = match (target, &failure.peer) {
                        (Some(t), Some(peer)) => disk_config_elsewhere(facts, t, peer),
                        _ => false,
                    };
                    let note = if elsewhere {
                        format!(
                            " (the config on disk; nginx connected to {}, which it does not name: was it changed since nginx loaded it?)",
                            failure.peer.as_deref().unwrap_or_default()
                        )
                    } else {
                        String::new()
                    };
                    f.evidence
                        .insert(0, format!("route of \"{request}\": {chain}{note}"));
                    if f.location.is_none() {
                        f.location = route
                            .target
                            .and_then(|t| facts.view.targets.get(t))
                            .map(|t| Location::from(&t.span));
                    }
                }
                if matches!(failure.signature, Signature::NotPermitted) {
                    f = f.fix("A local policy vetoed the connect: check systemd IPAddressDeny=/IPAddressAllow= and cgroup BPF (bpftool cgroup tree)");
                }
                out.push(f);
            }
        }
        out
    })
}

/// Whether the pass directive the config on disk routes a logged request to cannot have
/// connected to the logged `peer`: it names fixed IP addresses, none of them that one.
fn disk_config_elsewhere(
    facts: &Facts,
    target: &fix502_nginx::view::PassTarget,
    peer: &str,
) -> bool {
    let peers = facts.view.peers_of(target);
    !peers.is_empty()
        && peers
            .iter()
            .all(|(p, _)| p.is_ip_literal() || matches!(p, fix502_nginx::view::Peer::Unix(_)))
        && !peers
            .iter()
            .any(|(p, _)| Upstream::from(p) == Upstream::parse(peer))
}

/// Where an `error_log` that is not a file goes, and how its lines are read (the journal)
/// or can be got by hand.
fn elsewhere_finding(facts: &Facts, dest: &str, journal: bool) -> Finding {
    let since = facts.window_start();
    let journal_cmd = crate::journal::command_line(since);
    let stderr = facts.master_stderr();
    let to_journal = dest.starts_with("syslog:")
        || (dest == "stderr" && matches!(stderr, None | Some(StderrTarget::Socket)));
    if to_journal && journal {
        return Finding::new(
            ERROR_LOG,
            Severity::Info,
            format!("error_log {dest}: read from the systemd journal ({journal_cmd})"),
        );
    }
    let in_docker = facts.master_pid().is_some_and(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.contains("docker") || c.contains("containerd"))
    });
    let window = duration(facts.options.since);
    let docker = format!("docker logs --since {window} CONTAINER 2>&1");
    let how = match (dest, stderr) {
        ("stderr", Some(StderrTarget::Null)) => {
            "nginx's stderr is /dev/null, so these messages are discarded".to_owned()
        }
        ("stderr", Some(StderrTarget::File(path))) => format!(
            "nginx's stderr goes to the file {}; pass it with --error-log {}",
            path.display(),
            path.display()
        ),
        ("stderr", Some(StderrTarget::Terminal(tty))) => format!(
            "nginx runs in the foreground and its stderr is the terminal {}",
            tty.display()
        ),
        ("stderr", _) if in_docker => format!("nginx runs in a container: {docker}"),
        ("stderr", Some(StderrTarget::Pipe)) => format!(
            "nginx's stderr is a pipe read by whatever started it (a supervisor: its log; under Docker: {docker})"
        ),
        ("stderr", _) => format!(
            "this host has no systemd journal to read; nginx's stderr goes wherever its service manager sends it (under systemd: {journal_cmd}; under Docker: {docker})"
        ),
        (d, _) if d.starts_with("syslog:") => format!(
            "this host has no systemd journal to read; see the syslog server named in `error_log {d}` (rsyslog: /var/log/syslog or /var/log/messages, grep nginx)"
        ),
        _ => "not a file (memory buffer or off)".to_owned(),
    };
    Finding::new(
        ERROR_LOG,
        Severity::Warning,
        format!("error_log {dest}: fix502 cannot read it here: {how}"),
    )
    .fix("Pass a copy of those lines with --error-log FILE, or log to a file too: error_log /var/log/nginx/error.log error;")
}

/// A host name nginx's resolver failed on, as `host:port` when a pass directive of the
/// config names it with a literal port (`proxy_pass http://app.internal:8080$request_uri`).
fn named_upstream(facts: &Facts, host: &str) -> String {
    use fix502_nginx::resolver::literal_host;
    use fix502_nginx::view::TargetAddress;
    facts
        .view
        .targets
        .iter()
        .find_map(|t| match &t.address {
            TargetAddress::Variable(raw) => {
                let default_port = if t.scheme.ends_with('s') { 443 } else { 80 };
                literal_host(raw, default_port)
                    .filter(|(h, _)| h.eq_ignore_ascii_case(host))
                    .map(|(h, port)| format!("{h}:{port}"))
            }
            _ => None,
        })
        .unwrap_or_else(|| host.to_owned())
}
