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
        if facts.error_logs.is_empty()
            && !journal
            && facts.docker_log().is_none_or(|d| d.unreadable.is_some())
        {
            out.push(Finding::could_not_check(
                ERROR_LOG,
                "no error log file to read (pass --error-log)",
            ));
            return out;
        }
        let window = duration(facts.options.since);
        for read in facts.logs().await {
            let path = match &read.source {
                _ if read.path.as_os_str() == "-" => "standard input (--error-log -)".to_owned(),
                Some(source) => format!("{source} ({})", read.path.display()),
                None => read.path.display().to_string(),
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
            if summary.lines_ungrouped > 0 {
                // On an incident with thousands of upstreams the groups are bounded (memory
                // stays flat): the counts below are not all of it, and the step says so.
                out.push(Finding::new(
                    ERROR_LOG,
                    Severity::Warning,
                    format!(
                        "{path}: {} more upstream lines in the window are not in the groups below: the log has more than {max} distinct kinds of failure and upstream, and only the first {max} are kept",
                        summary.lines_ungrouped,
                        max = fix502_nginx::logscan::MAX_GROUPS,
                    ),
                ));
            }
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

/// Where an `error_log` that is not a file goes, and how its lines are read (the journal,
/// Docker's json-file log) or can be got by hand.
fn elsewhere_finding(facts: &Facts, dest: &str, journal: bool) -> Finding {
    let since = facts.window_start();
    let journal_cmd = crate::journal::command_line(since);
    let stderr = facts.master_stderr();
    let to_stderr = facts.goes_to_stderr(dest);
    let named = if facts.stderr_links.iter().any(|l| l == dest) {
        format!("error_log {dest} (a link to /dev/stderr in nginx's container)")
    } else {
        format!("error_log {dest}")
    };
    let window = duration(facts.options.since);
    if to_stderr && let Some(docker) = facts.docker_log() {
        let short = docker.short_id();
        return match &docker.unreadable {
            None => Finding::new(
                ERROR_LOG,
                Severity::Info,
                format!(
                    "{named}: nginx runs in the Docker container {short}; its stderr lines are read from Docker's json-file log {}",
                    docker.path.display()
                ),
            ),
            Some(why) => Finding::new(
                ERROR_LOG,
                Severity::Warning,
                format!(
                    "{named}: fix502 cannot read it here: nginx runs in the Docker container {short}, and {why}"
                ),
            )
            .fix(format!(
                "Pipe the container's log in: docker logs --since {window} {short} 2>&1 | fix502 --error-log -"
            )),
        };
    }
    let to_journal = dest.starts_with("syslog:")
        || (to_stderr && matches!(stderr, None | Some(StderrTarget::Socket)));
    if to_journal && journal {
        return Finding::new(
            ERROR_LOG,
            Severity::Info,
            format!("{named}: read from the systemd journal ({journal_cmd})"),
        );
    }
    let container = facts
        .discovery
        .master
        .as_ref()
        .and_then(|m| m.container.as_ref());
    let docker = match container.and_then(|c| c.id.as_deref()) {
        Some(id) => format!(
            "docker logs --since {window} {} 2>&1 | fix502 --error-log -",
            id.get(..12).unwrap_or(id)
        ),
        None => format!("docker logs --since {window} CONTAINER 2>&1 | fix502 --error-log -"),
    };
    let how = match (to_stderr, stderr) {
        (true, Some(StderrTarget::Null)) => {
            "nginx's stderr is /dev/null, so these messages are discarded".to_owned()
        }
        (true, Some(StderrTarget::File(path))) => format!(
            "nginx's stderr goes to the file {}; pass it with --error-log {}",
            path.display(),
            path.display()
        ),
        (true, Some(StderrTarget::Terminal(tty))) => format!(
            "nginx runs in the foreground and its stderr is the terminal {}",
            tty.display()
        ),
        (true, _) if container.is_some() => format!(
            "nginx runs in a {} container: {docker}",
            container.map_or("", |c| c.runtime.as_str())
        ),
        (true, Some(StderrTarget::Pipe)) => format!(
            "nginx's stderr is a pipe read by whatever started it (a supervisor: its log; under Docker: {docker})"
        ),
        (true, _) => format!(
            "this host has no systemd journal to read; nginx's stderr goes wherever its service manager sends it (under systemd: {journal_cmd}; under Docker: {docker})"
        ),
        (false, _) if dest.starts_with("syslog:") => format!(
            "this host has no systemd journal to read; see the syslog server named in `error_log {dest}` (rsyslog: /var/log/syslog or /var/log/messages, grep nginx)"
        ),
        _ => "not a file (memory buffer or off)".to_owned(),
    };
    Finding::new(
        ERROR_LOG,
        Severity::Warning,
        format!("{named}: fix502 cannot read it here: {how}"),
    )
    .fix("Pass a copy of those lines with --error-log FILE (- for standard input), or log to a file too: error_log /var/log/nginx/error.log error;")
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

#[cfg(test)]
mod tests {
    use super::*;
    use fix502_probe::namespace::Container;

    const ID: &str = "4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b";

    /// Facts for a config whose main `error_log` is `log`, run by a master (this test's own
    /// process) in the Docker container `ID` when `docker` is set, with Docker's data root
    /// in `dir`.
    fn facts(dir: &std::path::Path, log: &str, docker: bool) -> Facts {
        let config = dir.join("nginx.conf");
        std::fs::write(
            &config,
            format!("error_log {log};\nevents {{}}\nhttp {{ server {{ listen 8080; location / {{ proxy_pass http://127.0.0.1:3000; }} }} }}\n"),
        )
        .unwrap();
        let master = crate::discovery::Master {
            pid: std::process::id(),
            exe: None,
            title: "nginx: master process nginx".to_owned(),
            conf_arg: None,
            prefix_arg: None,
            workers: Vec::new(),
            start_time: 0,
            ns: Default::default(),
            container: docker.then(|| Container {
                runtime: "docker".to_owned(),
                id: Some(ID.to_owned()),
            }),
            sandboxed: docker,
            other_net: false,
        };
        let discovery = crate::discovery::Discovery {
            binary: None,
            build: Default::default(),
            config,
            prefix: Some(dir.to_path_buf()),
            master: Some(master),
            other_masters: Vec::new(),
            own_ns: Default::default(),
            via: Default::default(),
            notes: Vec::new(),
        };
        Facts::new(crate::options::Options::default(), discovery)
            .with_docker_root(&dir.join("docker"))
    }

    fn json_log(dir: &std::path::Path) -> std::path::PathBuf {
        let now = jiff::ZonedDateTime::now()
            .datetime()
            .strftime("%Y/%m/%d %H:%M:%S")
            .to_string();
        let path = dir
            .join("docker/containers")
            .join(ID)
            .join(format!("{ID}-json.log"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let refused = format!(
            r#"{now} [error] 29#29: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:3000/\", host: \"localhost\""#
        );
        let lines = [
            format!(r#"{{"log":"{refused}\n","stream":"stderr","time":"2026-11-24T02:11:50.1Z"}}"#),
            r#"{"log":"172.18.0.1 - - [24/Nov/2026:02:11:50 +0000] \"GET / HTTP/1.1\" 502 157\n","stream":"stdout","time":"2026-11-24T02:11:50.2Z"}"#.to_owned(),
            "garbage that must never be quoted".to_owned(),
            format!(r#"{{"log":"{refused}\n","stream":"stderr","time":"2026-11-24T02:11:51.1Z"}}"#),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    #[tokio::test]
    async fn error_log_stderr_in_a_docker_container_is_read_from_its_json_file_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = json_log(dir.path());
        let facts = facts(dir.path(), "stderr", true);
        let docker = facts.docker_log().unwrap();
        assert_eq!(docker.path, path);
        assert_eq!(facts.nginx_info().error_logs, vec![path.clone()]);
        let findings = error_log(&facts).await;
        let text = format!("{findings:#?}");
        assert!(!text.contains("garbage"), "{text}");
        let source = findings
            .iter()
            .find(|f| {
                f.message
                    .starts_with("Docker's json-file log of container 4f3c2a1b0e9d, stderr lines (")
            })
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            source.message.contains(&path.display().to_string()),
            "{text}"
        );
        assert!(source.message.contains(": 2 lines in the last"), "{text}");
        let refused = findings
            .iter()
            .find(|f| f.cause == Some(causes::Cause::UPSTREAM_REFUSED))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(refused.message.starts_with("2 "), "{text}");
        assert!(
            findings.iter().any(|f| f.message.starts_with(
                "error_log stderr: nginx runs in the Docker container 4f3c2a1b0e9d; its stderr lines are read from"
            )),
            "{text}"
        );
        assert!(text.contains("1 stdout lines left out"), "{text}");
        assert!(
            text.contains("1 lines are not Docker json-file objects"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_error_log_linked_to_stderr_in_the_container_is_read_too() {
        let dir = tempfile::tempdir().unwrap();
        json_log(dir.path());
        let linked = dir.path().join("error.log");
        std::os::unix::fs::symlink("/dev/stderr", &linked).unwrap();
        let facts = facts(dir.path(), &linked.display().to_string(), true);
        assert!(facts.error_logs.is_empty(), "{:?}", facts.error_logs);
        assert_eq!(facts.stderr_links, vec![linked.display().to_string()]);
        let findings = error_log(&facts).await;
        let text = format!("{findings:#?}");
        assert!(
            findings
                .iter()
                .any(|f| f.cause == Some(causes::Cause::UPSTREAM_REFUSED)),
            "{text}"
        );
        assert!(
            text.contains(
                "(a link to /dev/stderr in nginx's container): nginx runs in the Docker container"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn without_a_json_file_log_the_finding_gives_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let facts = facts(dir.path(), "/dev/stderr", true);
        let findings = error_log(&facts).await;
        let text = format!("{findings:#?}");
        let f = findings
            .iter()
            .find(|f| f.message.starts_with("error_log /dev/stderr: fix502 cannot read it here: nginx runs in the Docker container 4f3c2a1b0e9d, and "))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            f.message
                .contains("does not exist (the container's log driver is not json-file"),
            "{text}"
        );
        assert!(
            f.fix
                .iter()
                .any(|fix| fix.contains("2>&1 | fix502 --error-log -")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn outside_a_container_nothing_is_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        json_log(dir.path());
        let facts = facts(dir.path(), "stderr", false);
        assert!(facts.docker_log().is_none());
        assert!(facts.nginx_info().error_logs.is_empty());
        let findings = error_log(&facts).await;
        assert!(
            !findings.iter().any(|f| f.message.contains("json-file")),
            "{findings:#?}"
        );
    }

    #[tokio::test]
    async fn more_kinds_of_failure_than_the_groups_hold_are_said_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("error.log");
        let now = jiff::ZonedDateTime::now()
            .datetime()
            .strftime("%Y/%m/%d %H:%M:%S")
            .to_string();
        // One more upstream than there are groups, each refused twice.
        let over = fix502_nginx::logscan::MAX_GROUPS + 1;
        let mut text = String::new();
        for _ in 0..2 {
            for i in 0..over {
                let peer = format!("10.0.{}.{}:8080", i / 250, i % 250 + 1);
                text.push_str(&format!(
                    "{now} [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 10.1.1.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://{peer}/\", host: \"h\"\n"
                ));
            }
        }
        std::fs::write(&log, text).unwrap();
        let facts = facts(dir.path(), &log.display().to_string(), false);
        let findings = error_log(&facts).await;
        let said = findings
            .iter()
            .find(|f| {
                f.message
                    .contains("more upstream lines in the window are not in the groups")
            })
            .unwrap_or_else(|| panic!("{findings:#?}"));
        assert_eq!(said.severity, Severity::Warning);
        assert!(
            said.message.contains(": 2 more upstream lines"),
            "{}",
            said.message
        );
    }
}
