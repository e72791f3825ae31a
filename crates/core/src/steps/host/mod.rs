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

use crate::check::FnCheck;

mod apparmor;
mod files;
#[cfg(test)]
mod fixtures;
mod hits;
mod selinux;

pub use hits::{APPARMOR, SELINUX, WORKER_FILES};

/// The checks of this part of the step.
pub static CHECKS: [FnCheck; 3] = [
    FnCheck::new(SELINUX, selinux::selinux_check),
    FnCheck::new(APPARMOR, apparmor::apparmor_check),
    FnCheck::new(WORKER_FILES, files::worker_files_check),
];
