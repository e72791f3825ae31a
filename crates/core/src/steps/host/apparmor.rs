//! The `network.apparmor` check: whether AppArmor confines nginx's workers, and the
//! denials of their unix socket connects (`UnixSocketPermission`) or TCP sockets; when the
//! denials cannot be read, errno 13 on unix socket connects in the error log.
//!
//! What belongs here: reading AppArmor's state, the workers' profiles and their denials
//! from the host (`read_apparmor`), the pure decision (`apparmor_findings`) with its
//! helpers, and their tests.

use std::collections::BTreeMap;
use std::path::Path;

use fix502_nginx::view::Peer;
use fix502_probe::host::{self, AppArmorDenial, AppArmorState};

use super::hits::{
    APPARMOR, AUDIT_LOG, AUDIT_TAIL_BYTES, LogHit, MAX_DENIAL_FINDINGS, MAX_KERNEL_LINES, is_nginx,
    is_not_found, log_hits, since_epoch,
};
use crate::causes::Cause;
use crate::check::FindingsFuture;
use crate::facts::{Endpoint, Facts, LogRead};
use crate::report::{Finding, Severity};

/// Unix socket connects that failed with errno 13.
fn unix_permission_denied(reads: &[LogRead]) -> Vec<LogHit> {
    log_hits(reads, &[13])
        .into_iter()
        .filter(|h| h.unix)
        .collect()
}

/// What the AppArmor check read from the host.
#[derive(Debug, Clone)]
struct AppArmorFacts {
    /// Whether AppArmor is on.
    state: AppArmorState,
    /// Whether nginx runs.
    running: bool,
    /// The profile and mode of each nginx process whose label was readable.
    profiles: Vec<(u32, String, String)>,
    /// nginx's AppArmor denials in the window, or why none could be read.
    denials: Result<Vec<AppArmorDenial>, String>,
}

pub(super) fn apparmor_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let pids = facts.nginx_pids();
        let running = facts.discovery.master.is_some();
        let since = since_epoch(facts.options.since);
        let read = tokio::task::spawn_blocking(move || {
            read_apparmor(Path::new("/"), &pids, running, since)
        })
        .await;
        let Ok(read) = read else {
            return vec![Finding::could_not_check(
                APPARMOR,
                "the AppArmor probe did not finish",
            )];
        };
        let log = unix_permission_denied(facts.logs().await);
        let window = crate::words::duration(facts.options.since);
        apparmor_findings(&read, &facts.endpoints, &log, &window)
    })
}

/// Reads AppArmor's state, the profiles of nginx's processes and their denials.
fn read_apparmor(root: &Path, pids: &[u32], running: bool, since: Option<f64>) -> AppArmorFacts {
    let state = host::apparmor(root);
    let mut facts = AppArmorFacts {
        state,
        running,
        profiles: Vec::new(),
        denials: Ok(Vec::new()),
    };
    if !matches!(state, AppArmorState::Enabled { .. }) {
        return facts;
    }
    facts.profiles = pids
        .iter()
        .filter_map(|&pid| host::apparmor_profile(root, pid).map(|(p, m)| (pid, p, m)))
        .collect();
    let names: Vec<&str> = facts
        .profiles
        .iter()
        .filter(|(_, _, mode)| mode != "unconfined")
        .map(|(_, p, _)| p.as_str())
        .collect();
    let mut lines: Vec<String> = Vec::new();
    let mut read_any = false;
    let mut errors = Vec::new();
    let audit = root.join(AUDIT_LOG.trim_start_matches('/'));
    match host::tail_lines(&audit, AUDIT_TAIL_BYTES) {
        Ok(found) => {
            read_any = true;
            lines.extend(found);
        }
        Err(err) if is_not_found(&err) => {}
        Err(err) => errors.push(err.to_string()),
    }
    match host::kernel_messages("apparmor=\"DENIED\"", MAX_KERNEL_LINES) {
        Ok(found) => {
            read_any = true;
            lines.extend(found);
        }
        Err(err) => errors.push(err.to_string()),
    }
    let mut denials: Vec<AppArmorDenial> = Vec::new();
    for d in host::apparmor_denials(lines.iter().map(String::as_str)) {
        let ours = names.contains(&d.profile.as_str()) || is_nginx(d.comm.as_deref(), d.pid, pids);
        let recent = match (since, d.time) {
            (Some(s), Some(t)) => t >= s,
            _ => true,
        };
        let duplicate = denials.iter().any(|x| {
            x.time == d.time && x.pid == d.pid && x.operation == d.operation && x.name == d.name
        });
        if ours && recent && !duplicate {
            denials.push(d);
        }
    }
    facts.denials = if read_any {
        Ok(denials)
    } else {
        Err(errors.join("; "))
    };
    facts
}

/// The file that usually holds a profile: `/usr/sbin/nginx` is `usr.sbin.nginx`.
fn profile_file(profile: &str) -> String {
    if profile.starts_with('/') {
        format!(
            "/etc/apparmor.d/{}",
            profile.trim_start_matches('/').replace('/', ".")
        )
    } else {
        format!("the file under /etc/apparmor.d/ that defines profile {profile}")
    }
}

/// The AppArmor findings, from what was read. Pure.
fn apparmor_findings(
    facts: &AppArmorFacts,
    endpoints: &[Endpoint],
    log_unix_denied: &[LogHit],
    window: &str,
) -> Vec<Finding> {
    let loaded = match facts.state {
        AppArmorState::NotPresent => {
            return vec![Finding::new(
                APPARMOR,
                Severity::Info,
                "AppArmor is not enabled on this host (not in this kernel)",
            )];
        }
        AppArmorState::Enabled { profiles_loaded } => profiles_loaded,
        _ => {
            return vec![Finding::new(
                APPARMOR,
                Severity::Info,
                "AppArmor is not enabled on this host (disabled)",
            )];
        }
    };
    let loaded_text = loaded.map_or_else(String::new, |n| format!(" ({n} profiles loaded)"));
    if !facts.running {
        return vec![Finding::new(
            APPARMOR,
            Severity::Info,
            format!(
                "AppArmor is enabled{loaded_text}; nginx is not running, so its profile cannot be read"
            ),
        )];
    }
    let confined = facts
        .profiles
        .iter()
        .find(|(_, _, mode)| mode != "unconfined");
    let Some((pid, profile, mode)) = confined else {
        let message = if facts.profiles.is_empty() {
            format!(
                "AppArmor is enabled{loaded_text}; the AppArmor labels of nginx's processes are not readable"
            )
        } else {
            format!("AppArmor is enabled{loaded_text}; nginx's workers are unconfined")
        };
        return vec![Finding::new(APPARMOR, Severity::Info, message)];
    };
    let label = format!("{profile} ({mode})");
    let mut out = vec![
        Finding::new(
            APPARMOR,
            Severity::Info,
            format!("nginx runs under AppArmor profile {label}{loaded_text}"),
        )
        .evidence(format!("/proc/{pid}/attr/current: {label}")),
    ];
    if mode == "complain" {
        if let Some(first) = out.first_mut() {
            first
                .evidence
                .push("complain mode only logs: it never denies".to_owned());
        }
        return out;
    }

    match &facts.denials {
        Ok(denials) => {
            let mut groups: BTreeMap<(String, Option<String>), Vec<&AppArmorDenial>> =
                BTreeMap::new();
            for d in denials {
                groups
                    .entry((d.operation.clone(), d.name.clone()))
                    .or_default()
                    .push(d);
            }
            let mut ignored = 0usize;
            for ((operation, name), list) in groups.iter().take(MAX_DENIAL_FINDINGS) {
                let Some(first) = list.first() else { continue };
                let inet = first
                    .family
                    .as_deref()
                    .is_some_and(|f| f.starts_with("inet"));
                let matched: Vec<&Endpoint> = name
                    .as_deref()
                    .map(|n| {
                        endpoints
                            .iter()
                            .filter(|e| matches!(&e.peer, Peer::Unix(p) if p == Path::new(n)))
                            .collect()
                    })
                    .unwrap_or_default();
                if inet && matches!(operation.as_str(), "connect" | "create") {
                    // A network rule denial: nginx may not open TCP sockets at all.
                    let family = first.family.as_deref().unwrap_or("inet");
                    out.push(
                        Finding::new(
                            APPARMOR,
                            Severity::Error,
                            format!(
                                "AppArmor profile {label} denied nginx a {family} socket ({operation}, {} time(s) in the last {window})",
                                list.len()
                            ),
                        )
                        .evidence(first.line.clone())
                        .fix(format!(
                            "Allow TCP in the profile: add `network {family} stream,` to {}, then apparmor_parser -r {}",
                            profile_file(profile),
                            profile_file(profile)
                        )),
                    );
                    continue;
                }
                let Some(path) = name else {
                    ignored += list.len();
                    continue;
                };
                if operation != "connect" && matched.is_empty() {
                    // Other file operations (reading the docroot) do not make 502s.
                    ignored += list.len();
                    continue;
                }
                let base = Finding::new(
                    APPARMOR,
                    Severity::Error,
                    format!(
                        "AppArmor profile {label} denied nginx {operation} to {path} ({} time(s) in the last {window})",
                        list.len()
                    ),
                )
                .cause(Cause::UNIX_SOCKET_PERMISSION)
                .evidence(format!("AppArmor profile {label} denied {operation} to {path}"))
                .evidence(first.line.clone())
                .fix(format!(
                    "Allow the socket in the profile: add `{path} rw,` to {} (or its local/ override), then apparmor_parser -r {}",
                    profile_file(profile),
                    profile_file(profile)
                ));
                if matched.is_empty() {
                    out.push(base);
                } else {
                    for e in matched {
                        out.push(base.clone().upstream(&e.peer).at(e.location()));
                    }
                }
            }
            if ignored > 0
                && let Some(first) = out.first_mut()
            {
                first.evidence.push(format!(
                    "{ignored} other AppArmor denial(s) of nginx in the last {window} (not about connecting)"
                ));
            }
        }
        Err(why) => {
            if let Some(first) = out.first_mut() {
                first
                    .evidence
                    .push(format!("AppArmor denials could not be read: {why}"));
            }
            for hit in log_unix_denied {
                let Some(peer) = &hit.peer else { continue };
                let endpoint = endpoints.iter().find(|e| peer.peer() == Some(&e.peer));
                out.push(
                    Finding::new(
                        APPARMOR,
                        Severity::Warning,
                        format!(
                            "nginx's connects to {peer} failed with errno 13 ({} line(s) in the last {window}) and AppArmor enforces profile {label} on the workers: the profile may deny the socket",
                            hit.count
                        ),
                    )
                    .cause(Cause::UNIX_SOCKET_PERMISSION)
                    .upstream(peer.clone())
                    .at(endpoint.and_then(Endpoint::location))
                    .evidence(hit.samples.first().cloned().unwrap_or_default())
                    .fix("Look for the denial: dmesg | grep 'apparmor=\"DENIED\"' (or journalctl -k)"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn confined(denials: Result<Vec<AppArmorDenial>, String>) -> AppArmorFacts {
        AppArmorFacts {
            state: AppArmorState::Enabled {
                profiles_loaded: Some(12),
            },
            running: true,
            profiles: vec![(1235, "/usr/sbin/nginx".to_owned(), "enforce".to_owned())],
            denials,
        }
    }

    const AA_SOCK: &str = r#"audit: type=1400 audit(1700000300.512:88): apparmor="DENIED" operation="connect" class="file" profile="/usr/sbin/nginx" name="/run/php/php8.2-fpm.sock" pid=1235 comm="nginx" requested_mask="wr" denied_mask="wr" fsuid=33 ouid=33"#;
    const AA_FILE: &str = r#"audit: type=1400 audit(1700000301.0:89): apparmor="DENIED" operation="open" class="file" profile="/usr/sbin/nginx" name="/srv/www/index.html" pid=1235 comm="nginx" requested_mask="r" denied_mask="r" fsuid=33 ouid=0"#;
    const AA_NET: &str = r#"audit: type=1400 audit(1700000302.0:90): apparmor="DENIED" operation="create" class="net" profile="/usr/sbin/nginx" pid=1235 comm="nginx" family="inet" sock_type="stream" protocol=6 requested_mask="create" denied_mask="create""#;

    #[test]
    fn apparmor_absent_disabled_unconfined_not_running_are_info() {
        let mut facts = confined(Ok(host::apparmor_denials([AA_SOCK])));
        for state in [AppArmorState::NotPresent, AppArmorState::Disabled] {
            facts.state = state;
            let out = apparmor_findings(&facts, &[], &[], "1h");
            assert_eq!(out.len(), 1);
            assert!(
                out.first()
                    .unwrap()
                    .message
                    .contains("AppArmor is not enabled")
            );
        }
        facts.state = AppArmorState::Enabled {
            profiles_loaded: None,
        };
        facts.profiles = vec![(1235, "unconfined".to_owned(), "unconfined".to_owned())];
        let out = apparmor_findings(&facts, &[], &[], "1h");
        assert_eq!(out.len(), 1);
        assert!(out.first().unwrap().message.contains("unconfined"));
        facts.running = false;
        let out = apparmor_findings(&facts, &[], &[], "1h");
        assert!(out.first().unwrap().message.contains("not running"));
        assert!(out.iter().all(|f| f.severity == Severity::Info));
        // The live machine: whatever its state, no problem claimed without nginx.
        let live = read_apparmor(Path::new("/"), &[], false, None);
        assert!(
            apparmor_findings(&live, &[], &[], "1h")
                .iter()
                .all(|f| f.severity == Severity::Info)
        );
    }

    #[test]
    fn apparmor_socket_denial_is_unix_socket_permission() {
        let facts = confined(Ok(host::apparmor_denials([AA_SOCK, AA_FILE])));
        let endpoints = [unix("/run/php/php8.2-fpm.sock"), tcp(8000)];
        let out = apparmor_findings(&facts, &endpoints, &[], "1h");
        let first = out.first().unwrap();
        assert_eq!(first.severity, Severity::Info);
        assert!(first.message.contains("/usr/sbin/nginx (enforce)"));
        assert!(
            first
                .evidence
                .iter()
                .any(|e| e.contains("1 other AppArmor denial"))
        );
        let errs = errors(&out);
        assert_eq!(errs.len(), 1, "{out:#?}");
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::UNIX_SOCKET_PERMISSION));
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("unix:/run/php/php8.2-fpm.sock")
        );
        assert_eq!(
            f.evidence.first().map(String::as_str),
            Some(
                "AppArmor profile /usr/sbin/nginx (enforce) denied connect to /run/php/php8.2-fpm.sock"
            )
        );
        assert!(
            f.fix
                .first()
                .unwrap()
                .contains("/etc/apparmor.d/usr.sbin.nginx")
        );
    }

    #[test]
    fn apparmor_network_denial_and_near_misses() {
        let facts = confined(Ok(host::apparmor_denials([AA_NET])));
        let out = apparmor_findings(&facts, &[tcp(8000)], &[], "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1);
        assert!(
            errs.first()
                .unwrap()
                .fix
                .first()
                .unwrap()
                .contains("network inet stream")
        );

        // Only a file read denied: no error.
        let facts = confined(Ok(host::apparmor_denials([AA_FILE])));
        assert!(errors(&apparmor_findings(&facts, &[], &[], "1h")).is_empty());

        // Complain mode never denies.
        let mut complain = confined(Ok(host::apparmor_denials([AA_SOCK])));
        complain.profiles = vec![(1235, "/usr/sbin/nginx".to_owned(), "complain".to_owned())];
        let out = apparmor_findings(&complain, &[unix("/run/php/php8.2-fpm.sock")], &[], "1h");
        assert_eq!(out.len(), 1);
        assert_eq!(out.first().unwrap().severity, Severity::Info);
    }

    #[test]
    fn apparmor_unreadable_denials_with_errno_13_warns() {
        let log = unix_permission_denied(&reads(&format!("{LOG_13_TCP}{LOG_13_UNIX}")));
        assert_eq!(log.len(), 1);
        let facts = confined(Err("opening /dev/kmsg: denied".to_owned()));
        let endpoints = [unix("/run/php/php8.2-fpm.sock")];
        let out = apparmor_findings(&facts, &endpoints, &log, "1h");
        let warns: Vec<_> = out
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .collect();
        assert_eq!(warns.len(), 1);
        assert_eq!(
            warns.first().unwrap().cause,
            Some(Cause::UNIX_SOCKET_PERMISSION)
        );
        assert!(errors(&out).is_empty());
        // Readable denials and none about the socket: the log line is not blamed on AppArmor.
        let facts = confined(Ok(Vec::new()));
        let out = apparmor_findings(&facts, &endpoints, &log, "1h");
        assert!(out.iter().all(|f| f.severity == Severity::Info));
    }
}
