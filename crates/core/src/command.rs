//! Running external commands (`nginx -t`, `nginx -V`, `systemctl`) with a deadline and a
//! cap on what they print: a command that runs too long or prints without end is killed,
//! and said so.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

/// The most a command may print on each of stdout and stderr.
pub const OUTPUT_CAP: usize = 1024 * 1024;

/// The captured result of a finished command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code, when it exited normally.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// The signal that ended it, when one did (a crash: 11 is SIGSEGV).
    pub signal: Option<i32>,
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
    /// It printed more than [`OUTPUT_CAP`] and was killed.
    #[error("{program} printed more than {} MiB and was stopped", OUTPUT_CAP / (1024 * 1024))]
    TooMuchOutput {
        /// The program.
        program: String,
    },
}

/// Reads a stream to its end, or to `cap` bytes; `None` past the cap.
async fn read_capped<R: AsyncRead + Unpin>(stream: Option<R>, cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let Some(mut stream) = stream else {
        return Some(out);
    };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return Some(out),
            Ok(n) => {
                if out.len() + n > cap {
                    return None;
                }
                out.extend_from_slice(buf.get(..n).unwrap_or_default());
            }
        }
    }
}

/// Runs `program args...` with no stdin, capturing its output, killed after `timeout` or
/// once it prints more than [`OUTPUT_CAP`].
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

/// Waits for a child started by [`spawn`] (or set up by [`command`]) and captures its output,
/// at most [`OUTPUT_CAP`] of each stream; kills it after `timeout` or past the cap.
pub async fn finish(
    mut child: Child,
    program: &Path,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let name = program.display().to_string();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        let (out, err) = tokio::join!(
            read_capped(stdout, OUTPUT_CAP),
            read_capped(stderr, OUTPUT_CAP)
        );
        match (out, err) {
            (Some(out), Some(err)) => Ok((out, err, child.wait().await)),
            _ => Err(()),
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok((out, err, Ok(status)))) => {
            use std::os::unix::process::ExitStatusExt;
            Ok(CommandOutput {
                success: status.success(),
                code: status.code(),
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
                signal: status.signal(),
            })
        }
        Ok(Ok((_, _, Err(source)))) => Err(CommandError::Spawn {
            program: name,
            source,
        }),
        // Dropping the child (kill_on_drop) stops it.
        Ok(Err(())) => Err(CommandError::TooMuchOutput { program: name }),
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
