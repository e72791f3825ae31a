//! Helpers shared by the tests: privilege checks, temp dirs, and re-running one test of
//! this binary as `nobody` (for outcomes that only an unprivileged user sees).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Set in the environment of a test re-run as `nobody`.
pub const CHILD_ENV: &str = "FIX502_PROBE_CHILD";

/// uid and gid of `nobody` / `nogroup`.
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True in the re-run child process.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// A temp dir that other users may search (tempfile makes them 0700).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create temp dir");
    chmod(dir.path(), 0o755);
    dir
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Runs the test named `test` (full path, e.g. `connect::x`) of this binary again as
/// uid/gid 65534 with `CHILD_ENV` and `env` set, and returns its output. The binary is
/// copied to a directory nobody can read first. Needs root.
pub fn run_as_nobody(test: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current exe");
    let dir = open_tempdir();
    let copy = dir.path().join("probe-tests");
    fs::copy(&exe, &copy).expect("copy test binary");
    chmod(&copy, 0o755);
    // Another test forking at the moment of the copy can hold the written file open
    // for an instant (ETXTBSY); retry a few times.
    for attempt in 0..10 {
        let result = Command::new(&copy)
            .args([test, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .uid(NOBODY)
            .gid(NOBODY)
            .output();
        match result {
            Ok(output) => return output,
            Err(err) if err.raw_os_error() == Some(26) && attempt < 9 => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(err) => panic!("cannot run {test} as nobody: {err}"),
        }
    }
    panic!("cannot run {test} as nobody: text file busy");
}

/// Asserts that a child run passed and really ran the test.
pub fn assert_child_passed(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// Says on stderr why a test returns early (shown with `--nocapture`).
#[allow(clippy::print_stderr)] // the one place tests talk: skip notices
pub fn skip(why: &str) {
    eprintln!("skipped: {why}");
}
