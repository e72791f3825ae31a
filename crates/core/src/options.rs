//! What the caller asks for: the command-line flags of docs/command-line.md as plain data.

use std::path::PathBuf;
use std::time::Duration;

use crate::report::StepId;

/// Options of one run. `Default` is what `fix502` does with no flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--config`: the nginx main config.
    pub config: Option<PathBuf>,
    /// `--nginx`: the nginx binary.
    pub nginx: Option<PathBuf>,
    /// `--prefix`: the nginx prefix.
    pub prefix: Option<PathBuf>,
    /// `--error-log`: error logs to read instead of the configured ones.
    pub error_logs: Vec<PathBuf>,
    /// `--access-log`: access logs instead of the configured ones.
    pub access_logs: Vec<PathBuf>,
    /// `--since`: read log entries newer than this.
    pub since: Duration,
    /// `--url`: the URL that answers 502.
    pub url: Option<String>,
    /// `--timeout`: per-probe timeout.
    pub timeout: Duration,
    /// `--step`: run only these steps (empty = all).
    pub steps: Vec<StepId>,
    /// `--apply`: let the restart step act without asking.
    pub apply: bool,
    /// `--dry-run`: show what the restart step would do and change nothing, whatever
    /// `apply` says, and ask nothing in the wizard.
    pub dry_run: bool,
    /// Which master to diagnose when several run (the wizard asks; scripts use `--config`).
    pub master_pid: Option<u32>,
    /// The user agreed (in the wizard) to re-send each upstream's logged GET or HEAD request
    /// as nginx sent it, which runs the app's code for it. Off: probes request the
    /// location's path only (docs/probes.md).
    pub replay_logged: bool,
    /// Where the caller put the error log it read from standard input (`--error-log -`): a
    /// path every check can open again (the binary's is an in-memory file). A `-` in
    /// `error_logs` stands for it; without it, `-` is a file that cannot be read.
    pub stdin_log: Option<PathBuf>,
    /// `--from`: diagnose this bundle (written by `fix502 collect`) instead of the live
    /// host; the other flags that choose an nginx, its logs and its window do not apply.
    pub from: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: None,
            nginx: None,
            prefix: None,
            error_logs: Vec::new(),
            access_logs: Vec::new(),
            since: Duration::from_secs(3600),
            url: None,
            timeout: Duration::from_secs(2),
            steps: Vec::new(),
            apply: false,
            dry_run: false,
            master_pid: None,
            replay_logged: false,
            stdin_log: None,
            from: None,
        }
    }
}

impl Options {
    /// Whether a step is selected.
    pub fn wants(&self, step: StepId) -> bool {
        self.steps.is_empty() || self.steps.contains(&step)
    }
}

/// Checks a `--url` the way routing will read it (`http://host[:port]/path`, the scheme
/// optional); the error is one line for the user.
pub fn check_url(url: &str) -> Result<(), String> {
    let t = url.trim();
    // A bare word is more likely a slip than a host: `--url notaurl`. A host of one label
    // is written with its scheme (`http://web1/`); `localhost` is one anyway.
    if !t.contains("://") && !t.contains(['/', ':', '.']) && t != "localhost" && !t.is_empty() {
        return Err(format!(
            "`{t}` is not a URL: write it as http://HOST[:PORT]/PATH (a host of one label with its scheme: http://{t}/)"
        ));
    }
    fix502_nginx::route::Request::from_url(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Parses a duration as `--since` and `--timeout` take it: `500ms`, `15s`, `15m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return None,
    };
    // Ten years is more than any log or probe needs; larger values are typos.
    (seconds <= 315_360_000.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in ["", "15", "m", "15x", "-1s", "1e9d", "abc"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
