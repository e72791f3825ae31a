//! What `/proc` says about one process that the app-server readers need: its ids, name and
//! command line, its working directory and its environment.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::error::ProbeError;

/// The facts about one process that identification needs.
#[derive(Debug, Clone)]
pub(super) struct ProcInfo {
    pub(super) pid: i32,
    pub(super) ppid: i32,
    pub(super) comm: String,
    pub(super) cmdline: Vec<String>,
}

impl ProcInfo {
    pub(super) fn read(pid: i32) -> Result<Self, ProbeError> {
        let process = procfs::process::Process::new(pid)
            .map_err(|e| ProbeError::proc(&format!("process {pid}"), &e))?;
        let stat = process
            .stat()
            .map_err(|e| ProbeError::proc(&format!("/proc/{pid}/stat"), &e))?;
        // Non-UTF-8 or unreadable command lines are treated as empty.
        let cmdline = process.cmdline().unwrap_or_default();
        Ok(Self {
            pid,
            ppid: stat.ppid,
            comm: stat.comm,
            cmdline,
        })
    }

    pub(super) fn title(&self) -> String {
        self.cmdline.join(" ")
    }
}

/// The working directory of `pid`, for resolving relative paths on its command line.
pub(super) fn cwd_of(pid: i32) -> Option<PathBuf> {
    procfs::process::Process::new(pid).ok()?.cwd().ok()
}

/// One environment variable of `pid` (readable by root or the same user).
pub(super) fn env_of(pid: i32, name: &str) -> Option<String> {
    let environ = procfs::process::Process::new(pid).ok()?.environ().ok()?;
    environ
        .get(OsStr::new(name))
        .map(|v| v.to_string_lossy().into_owned())
}
