//! What the three host checks share: their check ids, where the audit log is and how much of
//! it is read, the error-log groups with the errnos they look for (`LogHit`), the `--since`
//! window in seconds, and telling nginx's processes from others.

use std::io;
use std::time::{Duration, SystemTime};

use crate::facts::LogRead;
use crate::report::{CheckId, Evidence, StepId};
use crate::upstream::Upstream;

/// Check id: SELinux mode, booleans and AVC denials of nginx's connects.
pub const SELINUX: CheckId = CheckId::new("network.selinux", StepId::Network, Evidence::Host);
/// Check id: AppArmor confinement of the workers and its denials.
pub const APPARMOR: CheckId = CheckId::new("network.apparmor", StepId::Network, Evidence::Host);
/// Check id: the workers' open files against their limit, and EMFILE/ENFILE in the log.
pub const WORKER_FILES: CheckId =
    CheckId::new("network.worker-files", StepId::Network, Evidence::Host);

/// Where auditd writes AVC and AppArmor records.
pub(super) const AUDIT_LOG: &str = "/var/log/audit/audit.log";
/// How much of the end of the audit log is read.
pub(super) const AUDIT_TAIL_BYTES: u64 = 8 * 1024 * 1024;
/// Most kernel log records kept per search.
pub(super) const MAX_KERNEL_LINES: usize = 2000;
/// Most denial findings per check (each groups identical denials).
pub(super) const MAX_DENIAL_FINDINGS: usize = 20;
/// Log samples kept per finding.
pub(super) const MAX_SAMPLES: usize = 2;

/// One group of error-log lines this module cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogHit {
    /// The peer nginx logged.
    pub(super) peer: Option<Upstream>,
    /// The peer is a unix socket.
    pub(super) unix: bool,
    /// The errno number.
    pub(super) errno: i32,
    /// Lines in the group.
    pub(super) count: u64,
    /// Sample lines.
    pub(super) samples: Vec<String>,
    /// Found by this module's own scan of the log's tail, not in the log summaries.
    pub(super) from_tail: bool,
}

/// The groups of the error-log summaries whose errno is one of `errnos`.
pub(super) fn log_hits(reads: &[LogRead], errnos: &[i32]) -> Vec<LogHit> {
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
pub(super) fn since_epoch(since: Duration) -> Option<f64> {
    SystemTime::now()
        .checked_sub(since)?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// A denial is nginx's when its command is `nginx` or its pid is one of nginx's.
pub(super) fn is_nginx(comm: Option<&str>, pid: Option<u32>, pids: &[u32]) -> bool {
    comm == Some("nginx") || pid.is_some_and(|p| pids.contains(&p))
}

/// Whether a probe error is a file that does not exist.
pub(super) fn is_not_found(err: &fix502_probe::ProbeError) -> bool {
    matches!(err, fix502_probe::ProbeError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}
