//! Running external commands (`nginx -t`, `nginx -V`, `systemctl`) with a deadline.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The captured result of a finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code, when it exited normally.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Why a command could not be run to its end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// It could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran past its deadline and was killed.
    #[error("{program} did not finish within {seconds} s")]
    Timeout {
        /// The program.
        program: String,
        /// The deadline.
        seconds: u64,
    },
}

/// Runs `program args...` with no stdin, capturing its output, killed after `timeout`.
pub async fn run_command<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let child = spawn(program, args)?;
    finish(child, program, timeout).await
}

/// `program args...` set up as every command here runs: no stdin, its output captured, killed
/// when dropped.
pub fn command<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts `program args...` as [`command`] sets it up.
pub fn spawn<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Result<Child, CommandError> {
    command(program, args)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            program: program.display().to_string(),
            source,
        })
}

/// Waits for a child started by [`spawn`] (or set up by [`command`]) and captures its output;
/// kills it after `timeout`.
pub async fn finish(
    child: Child,
    program: &Path,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let name = program.display().to_string();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(CommandOutput {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(source)) => Err(CommandError::Spawn {
            program: name,
            source,
        }),
        Err(_) => Err(CommandError::Timeout {
            program: name,
            seconds: timeout.as_secs(),
        }),
    }
}

/// The command line as a person would type it (for reports and plans).
pub fn shell_line<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> String {
    let mut words = vec![quote(&program.to_string_lossy())];
    words.extend(args.iter().map(|a| quote(&a.as_ref().to_string_lossy())));
    words.join(" ")
}

fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,@+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_line(
                Path::new("/usr/sbin/nginx"),
                &["-t", "-c", "/etc/nginx/nginx.conf"]
            ),
            "/usr/sbin/nginx -t -c /etc/nginx/nginx.conf"
        );
        assert_eq!(
            shell_line(Path::new("nginx"), &["-g", "daemon off;"]),
            "nginx -g 'daemon off;'"
        );
    }

    #[tokio::test]
    async fn runs_and_times_out() {
        let out = run_command(
            Path::new("/bin/sh"),
            &["-c", "echo hi; echo err >&2; exit 3"],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(!out.success);
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout.trim(), "hi");
        assert_eq!(out.stderr.trim(), "err");
        let slow = run_command(
            Path::new("/bin/sh"),
            &["-c", "sleep 5"],
            Duration::from_millis(200),
        )
        .await;
        assert!(matches!(slow, Err(CommandError::Timeout { .. })));
        let missing = run_command(
            Path::new("/nonexistent/bin"),
            &["x"],
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(missing, Err(CommandError::Spawn { .. })));
    }
}
