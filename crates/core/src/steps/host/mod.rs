//! Step 4, the host: what makes nginx's connects fail outside its config. SELinux denying
//! the workers' `connect()` (errno 13 on TCP, `httpd_can_network_connect`), AppArmor
//! denying a unix socket connect (errno 13 with file modes that allow it), and the workers
//! running out of file descriptors (errno 24 EMFILE, 23 ENFILE).
//!
//! Each check first reads the host (in a blocking task), then decides with a pure function
//! of what it read (`selinux_findings`, `apparmor_findings`, `worker_files_findings`),
//! so the decisions are tested without the host.
//!
//! One file per check: `selinux.rs` (`network.selinux`), `apparmor.rs`
//! (`network.apparmor`), `files.rs` (`network.worker-files`). This file holds the check
//! ids, [`CHECKS`], and what more than one check uses: where the audit log is and how much
//! of it is read, the error-log groups (`LogHit`), the `--since` window, and telling
//! nginx's processes from others. Test fixtures shared by the checks' tests live here too.

use std::io;
use std::time::{Duration, SystemTime};

use crate::check::FnCheck;
use crate::facts::LogRead;
use crate::report::{CheckId, Evidence, StepId};
use crate::upstream::Upstream;

mod apparmor;
mod files;
mod selinux;

/// Check id: SELinux mode, booleans and AVC denials of nginx's connects.
pub const SELINUX: CheckId = CheckId::new("network.selinux", StepId::Network, Evidence::Host);
/// Check id: AppArmor confinement of the workers and its denials.
pub const APPARMOR: CheckId = CheckId::new("network.apparmor", StepId::Network, Evidence::Host);
/// Check id: the workers' open files against their limit, and EMFILE/ENFILE in the log.
pub const WORKER_FILES: CheckId =
    CheckId::new("network.worker-files", StepId::Network, Evidence::Host);

/// The checks of this part of the step.
pub static CHECKS: [FnCheck; 3] = [
    FnCheck::new(SELINUX, selinux::selinux_check),
    FnCheck::new(APPARMOR, apparmor::apparmor_check),
    FnCheck::new(WORKER_FILES, files::worker_files_check),
];

/// Where auditd writes AVC and AppArmor records.
const AUDIT_LOG: &str = "/var/log/audit/audit.log";
/// How much of the end of the audit log is read.
const AUDIT_TAIL_BYTES: u64 = 8 * 1024 * 1024;
/// Most kernel log records kept per search.
const MAX_KERNEL_LINES: usize = 2000;
/// Most denial findings per check (each groups identical denials).
const MAX_DENIAL_FINDINGS: usize = 20;
/// Log samples kept per finding.
const MAX_SAMPLES: usize = 2;

/// One group of error-log lines this module cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogHit {
    /// The peer nginx logged.
    peer: Option<Upstream>,
    /// The peer is a unix socket.
    unix: bool,
    /// The errno number.
    errno: i32,
    /// Lines in the group.
    count: u64,
    /// Sample lines.
    samples: Vec<String>,
    /// Found by this module's own scan of the log's tail, not in the log summaries.
    from_tail: bool,
}

/// The groups of the error-log summaries whose errno is one of `errnos`.
fn log_hits(reads: &[LogRead], errnos: &[i32]) -> Vec<LogHit> {
    let mut out = Vec::new();
    for read in reads {
        let Ok(summary) = &read.summary else { continue };
        for group in &summary.groups {
            let Some(errno) = group.errno.filter(|e| errnos.contains(e)) else {
                continue;
            };
            out.push(LogHit {
                peer: group.failure.peer.as_deref().map(Upstream::parse),
                unix: group.failure.unix,
                errno,
                count: group.count,
                samples: group.samples.iter().take(MAX_SAMPLES).cloned().collect(),
                from_tail: false,
            });
        }
    }
    out
}

/// The `--since` window as seconds since the epoch.
fn since_epoch(since: Duration) -> Option<f64> {
    SystemTime::now()
        .checked_sub(since)?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// A denial is nginx's when its command is `nginx` or its pid is one of nginx's.
fn is_nginx(comm: Option<&str>, pid: Option<u32>, pids: &[u32]) -> bool {
    comm == Some("nginx") || pid.is_some_and(|p| pids.contains(&p))
}

/// Whether a probe error is a file that does not exist.
fn is_not_found(err: &fix502_probe::ProbeError) -> bool {
    matches!(err, fix502_probe::ProbeError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Fixtures shared by the tests of the three checks.
#[cfg(test)]
mod fixtures {
    use std::path::PathBuf;

    use fix502_nginx::logscan::{self, ScanOptions};
    use fix502_nginx::view::Peer;

    use crate::facts::{Endpoint, EndpointUse, LogRead};
    use crate::report::{Finding, Location, Severity};

    pub(super) fn endpoint(peer: Peer) -> Endpoint {
        Endpoint {
            display: peer.to_string(),
            peer,
            group: None,
            uses: vec![EndpointUse {
                directive: "proxy_pass http://x".to_owned(),
                at: Location {
                    file: PathBuf::from("/etc/nginx/nginx.conf"),
                    line: 12,
                },
                server_at: None,
                location: Some("/".to_owned()),
                server_name: None,
                target: 0,
            }],
        }
    }

    pub(super) fn tcp(port: u16) -> Endpoint {
        endpoint(Peer::inet("127.0.0.1", port))
    }

    pub(super) fn unix(path: &str) -> Endpoint {
        endpoint(Peer::Unix(PathBuf::from(path)))
    }

    pub(super) fn reads(text: &str) -> Vec<LogRead> {
        let summary = logscan::scan(text.as_bytes(), &ScanOptions::default()).unwrap();
        vec![LogRead {
            path: PathBuf::from("/var/log/nginx/error.log"),
            summary: Ok(summary),
            notes: Vec::new(),
        }]
    }

    pub(super) const LOG_13_TCP: &str = "2026/11/24 10:00:00 [crit] 1235#1235: *7 connect() to 127.0.0.1:8000 failed (13: Permission denied) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"localhost\"\n";
    pub(super) const LOG_13_UNIX: &str = "2026/11/24 10:00:01 [crit] 1235#1235: *8 connect() to unix:/run/php/php8.2-fpm.sock failed (13: Permission denied) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET /index.php HTTP/1.1\", upstream: \"fastcgi://unix:/run/php/php8.2-fpm.sock:\", host: \"localhost\"\n";

    pub(super) fn errors(findings: &[Finding]) -> Vec<&Finding> {
        findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect()
    }
}
