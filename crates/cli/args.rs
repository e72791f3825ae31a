//! The command line of docs/command-line.md, as clap derive types, and its conversion to
//! [`fix502_core::Options`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use fix502_core::report::StepId;
use fix502_core::{Options, check_url, parse_duration};

const EXAMPLES: &str = "\
Examples:
  fix502                                   walk through the five steps interactively
  fix502 --non-interactive                 the same, as a report; asks nothing, changes nothing
  fix502 --json | jq .diagnosis[0]         the report as JSON (implies --non-interactive)
  fix502 --config /etc/nginx/nginx.conf --since 15m
  fix502 --step logs --step upstream       run only some steps
  fix502 --url http://127.0.0.1:8080/      several nginx masters: diagnose the one on port 8080
  fix502 --pid 812                         several nginx masters: diagnose the one with pid 812
  fix502 --non-interactive --apply         let the restart step act (after nginx -t passes)
  fix502 lab list                          the reproducible broken setups
  fix502 lab run refused                   set one up on loopback, diagnose it, tear it down
  fix502 undo                              revert the last change fix502 applied

Exit status: 0 no problem found, 1 problem diagnosed, 2 usage error, 3 could not check,
4 an action failed verification and was rolled back, 130 interrupted.";

/// `--version`: the version, the commit, the build date and the target (`-V`: the version).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("FIX502_COMMIT"),
    "\nbuilt: ",
    env!("FIX502_BUILD_DATE"),
    "\ntarget: ",
    env!("FIX502_TARGET")
);

/// Diagnose nginx 502 Bad Gateway: error logs, upstreams, config, network, restart.
#[derive(Debug, Parser)]
#[command(name = "fix502", version, long_version = LONG_VERSION, about, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Run every step and print a report; ask nothing, change nothing (unless --apply).
    #[arg(long)]
    pub non_interactive: bool,
    /// Print exactly one JSON document (the report) on stdout; implies --non-interactive.
    #[arg(long)]
    pub json: bool,
    /// Which nginx, which logs, which window: shared with `collect`.
    #[command(flatten)]
    pub target: Target,
    /// Let the restart step act (reload/restart) without asking
    #[arg(long)]
    pub apply: bool,
    /// Print the diffs and commands the restart step would run; change nothing (also with --apply)
    #[arg(long)]
    pub dry_run: bool,
    /// Less text in the human report: a line per step, the causes and the verdict
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More text in the human report: every finding and every evidence line in full
    #[arg(short, long)]
    pub verbose: bool,
    /// Colour in the human report (auto: on a terminal, unless NO_COLOR is set)
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Wrap the human report at N columns [default: the terminal's width, 80 when piped]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(40..=1000))]
    pub width: Option<u16>,
    /// Diagnose a bundle written by `fix502 collect` instead of this host (over its window,
    /// as recorded; no network traffic, nothing acts)
    #[arg(long, value_name = "BUNDLE", conflicts_with_all = ["config", "nginx", "prefix", "error_log", "access_log", "since", "url", "pid", "apply", "dry_run"])]
    pub from: Option<PathBuf>,
    /// Subcommands.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// When the human report is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always, even into a pipe.
    Always,
    /// Never.
    Never,
}

/// Which nginx is diagnosed, from which logs and over which window: the flags a diagnosis
/// and a bundle (`collect`) share.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// nginx main config [default: the running master's -c, else nginx -V --conf-path]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// nginx binary [default: the running master's executable, else nginx on PATH]
    #[arg(long, value_name = "PATH")]
    pub nginx: Option<PathBuf>,
    /// nginx prefix (-p) for relative paths [default: the master's -p, else nginx -V --prefix]
    #[arg(long, value_name = "PATH")]
    pub prefix: Option<PathBuf>,
    /// An error log to read (repeatable) [default: every error_log the config names]
    #[arg(long = "error-log", value_name = "PATH")]
    pub error_log: Vec<PathBuf>,
    /// An access log to read (repeatable) [default: every access_log the config names]
    #[arg(long = "access-log", value_name = "PATH")]
    pub access_log: Vec<PathBuf>,
    /// Read log entries newer than this (15m, 2h, 1d)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = since)]
    pub since: Duration,
    /// The URL that answers 502
    #[arg(long, value_name = "URL", value_parser = url)]
    pub url: Option<String>,
    /// Per-probe timeout
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = timeout)]
    pub timeout: Duration,
    /// Run one step only (logs, upstream, config, network, restart); repeatable
    #[arg(long, value_name = "STEP", value_parser = step)]
    pub step: Vec<StepId>,
    /// The nginx master to diagnose when several run [default: the one --url's port reaches]
    #[arg(long, value_name = "PID", value_parser = pid)]
    pub pid: Option<u32>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reproducible broken nginx setups on loopback.
    Lab {
        /// What to do.
        #[command(subcommand)]
        action: LabAction,
    },
    /// Write a redacted bundle (.tar.gz) of what the engine reads, for a diagnosis elsewhere.
    Collect {
        /// Where to write it [default: fix502-HOST-TIME.tar.gz in the current directory]
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also take out what this regular expression matches (repeatable)
        #[arg(long, value_name = "REGEX")]
        redact: Vec<String>,
        /// Take nothing out (for your own use; the manifest says so)
        #[arg(long, conflicts_with = "redact")]
        no_redact: bool,
        /// The most bytes the members may hold together (50MB, 500kB, 2GB)
        #[arg(long, value_name = "SIZE", value_parser = size, default_value = "50MB")]
        max_size: u64,
        /// Which nginx, which logs, which window.
        #[command(flatten)]
        target: Box<Target>,
    },
    /// One table over many hosts' JSON reports or bundles, grouped by cause.
    Fleet {
        /// The reports (`fix502 --json` output) or bundles (`fix502 collect`), one per host.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print the table as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print what a cause id means, how it is found and fixed (its section of docs/causes.md).
    Explain {
        /// The cause id, as the report writes it (upstream-refused, ...).
        cause: String,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
    /// Revert one change fix502 applied (default: the last one not undone yet): restore the
    /// files byte-exact, nginx -t, reload.
    Undo {
        /// The change's id (as `change.json` and the report's `journal_id` name it).
        id: Option<String>,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `fix502 lab ...`.
#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// List the scenarios.
    List,
    /// Set a scenario up and keep it until stdin reaches a newline or its end (to try fix502 on it).
    Up {
        /// The scenario name (see `fix502 lab list`).
        name: String,
        /// nginx binary to run.
        #[arg(long, value_name = "PATH")]
        nginx: Option<PathBuf>,
    },
    /// Set a scenario up with the real nginx, diagnose it, tear it down.
    Run {
        /// The scenario name (see `fix502 lab list`).
        name: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Keep the scenario's directory.
        #[arg(long)]
        keep: bool,
        /// nginx binary to run.
        #[arg(long, value_name = "PATH")]
        nginx: Option<PathBuf>,
    },
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration like 500ms, 15s, 15m, 2h or 1d"))
}

/// The shortest and longest `--timeout`: a probe needs some milliseconds to connect at all,
/// and no probe should hold a run for longer than minutes.
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(600));
/// The longest `--since`: a year of logs.
const SINCE_MAX: Duration = Duration::from_secs(366 * 86400);

fn timeout(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    let (low, high) = TIMEOUT_RANGE;
    if d < low || d > high {
        return Err(format!(
            "`{s}` is out of range: a timeout is from 10ms to 10m"
        ));
    }
    Ok(d)
}

fn since(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_secs(1) || d > SINCE_MAX {
        return Err(format!(
            "`{s}` is out of range: the window is from 1s to a year (366d)"
        ));
    }
    Ok(d)
}

/// A size: a number with an optional `kB`, `MB` or `GB` (powers of 1000) or `KiB`, `MiB`,
/// `GiB` (powers of 1024).
fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let at = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(at);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" | "k" => 1000,
        "MB" | "M" => 1000 * 1000,
        "GB" | "G" => 1000 * 1000 * 1000,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        _ => return Err(format!("`{s}` is not a size like 500kB, 50MB or 2GB")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n >= 1000)
        .ok_or_else(|| format!("`{s}` is not a size of at least 1kB like 500kB, 50MB or 2GB"))
}

fn url(s: &str) -> Result<String, String> {
    check_url(s).map(|()| s.to_owned())
}

fn pid(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|p| *p >= 1 && i32::try_from(*p).is_ok())
        .ok_or_else(|| format!("`{s}` is not a process id (a whole number from 1)"))
}

fn step(s: &str) -> Result<StepId, String> {
    StepId::parse(s).ok_or_else(|| {
        format!("`{s}` is not a step: use logs, upstream, config, network or restart")
    })
}

/// A path named on the command line, as an absolute path (relative ones are relative to the
/// working directory, as the user meant them).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Absolute paths, each file once (two names of the same file are one).
fn each_once(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for p in paths {
        // Standard input stays `-`: the engine reads it from `Options::stdin_log`.
        let abs = if p.as_os_str() == crate::stdin_log::STDIN {
            p.clone()
        } else {
            absolute(p)
        };
        let real = std::fs::canonicalize(&abs).unwrap_or_else(|_| abs.clone());
        if !seen.contains(&real) {
            seen.push(real);
            out.push(abs);
        }
    }
    out
}

/// What a named input is when it is not a regular file, in words.
fn not_a_file(kind: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        Some("something else")
    }
}

impl Cli {
    /// How the human text is laid out: `--width`, `-q`/`-v`.
    pub fn page(&self) -> crate::render::Page {
        use crate::render::Detail;
        let detail = if self.quiet {
            Detail::Quiet
        } else if self.verbose {
            Detail::Verbose
        } else {
            Detail::Normal
        };
        crate::render::Page::new(self.width.map(usize::from), detail)
    }

    /// Applies `--color` to stdout and stderr (`auto` leaves console's own choice: a
    /// terminal, and `NO_COLOR`/`CLICOLOR` honoured).
    pub fn apply_color(&self) {
        let on = match self.color {
            ColorWhen::Auto => return,
            ColorWhen::Always => true,
            ColorWhen::Never => false,
        };
        console::set_colors_enabled(on);
        console::set_colors_enabled_stderr(on);
    }

    /// The engine options these flags ask for.
    pub fn options(&self) -> Options {
        Options {
            apply: self.apply && !self.dry_run,
            dry_run: self.dry_run,
            // As given: the report names the bundle the way its user did.
            from: self.from.clone(),
            ..self.target.options()
        }
    }
}

impl Target {
    /// The engine options for this nginx, read-only: no step acts.
    pub fn options(&self) -> Options {
        Options {
            config: self.config.as_deref().map(absolute),
            nginx: self.nginx.as_deref().map(absolute),
            prefix: self.prefix.as_deref().map(absolute),
            error_logs: each_once(&self.error_log),
            access_logs: each_once(&self.access_log),
            since: self.since,
            url: self.url.clone(),
            timeout: self.timeout,
            steps: self.step.clone(),
            apply: false,
            dry_run: false,
            master_pid: self.pid,
            replay_logged: false,
            stdin_log: None,
            from: None,
        }
    }

    /// Whether an error log comes on standard input (`--error-log -`).
    pub fn reads_stdin(&self) -> bool {
        self.error_log
            .iter()
            .any(|f| f.as_os_str() == crate::stdin_log::STDIN)
    }

    /// Files named on the command line that cannot be read, or are not regular files (a
    /// FIFO, a device, a directory): a usage error (exit 2). The type is looked at before
    /// anything is opened, so a FIFO is never waited on.
    pub fn unreadable_inputs(&self) -> Option<String> {
        let files = self
            .config
            .iter()
            .map(|f| ("--config", f))
            .chain(
                self.error_log
                    .iter()
                    .filter(|f| f.as_os_str() != crate::stdin_log::STDIN)
                    .map(|f| ("--error-log", f)),
            )
            .chain(self.access_log.iter().map(|f| ("--access-log", f)));
        if self.reads_stdin() && std::io::stdin().is_terminal() {
            return Some(
                "--error-log -: standard input is a terminal; pipe the log in (docker logs web 2>&1 | fix502 --error-log - …)"
                    .to_owned(),
            );
        }
        for (flag, f) in files {
            let kind = match std::fs::metadata(f) {
                Ok(m) => m.file_type(),
                Err(e) => return Some(format!("cannot read {}: {e}", f.display())),
            };
            if let Some(what) = not_a_file(kind) {
                return Some(format!(
                    "{flag} {}: is {what}, not a regular file",
                    f.display()
                ));
            }
            if let Err(e) = std::fs::File::open(f) {
                return Some(format!("cannot read {}: {e}", f.display()));
            }
        }
        if let Some(n) = &self.nginx {
            match std::fs::metadata(n) {
                Err(_) => return Some(format!("--nginx {}: no such file", n.display())),
                Ok(m) if !m.is_file() => {
                    return Some(format!(
                        "--nginx {}: is {}, not a program",
                        n.display(),
                        not_a_file(m.file_type()).unwrap_or("something else")
                    ));
                }
                Ok(m) => {
                    use std::os::unix::fs::PermissionsExt;
                    if m.permissions().mode() & 0o111 == 0 {
                        return Some(format!("--nginx {}: not executable", n.display()));
                    }
                }
            }
        }
        if let Some(p) = &self.prefix
            && !p.is_dir()
        {
            return Some(format!("--prefix {}: not a directory", p.display()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_contract_flags() {
        let cli = Cli::try_parse_from([
            "fix502",
            "--json",
            "--since",
            "15m",
            "--step",
            "logs",
            "--step",
            "upstream",
            "--timeout",
            "500ms",
            "--apply",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.target.since, Duration::from_secs(900));
        assert_eq!(cli.target.step, vec![StepId::Logs, StepId::Upstream]);
        assert_eq!(cli.target.timeout, Duration::from_millis(500));
        assert!(cli.options().apply);
        assert!(Cli::try_parse_from(["fix502", "--step", "nope"]).is_err());
        assert!(Cli::try_parse_from(["fix502", "--since", "soon"]).is_err());
        let cli = Cli::try_parse_from(["fix502", "--pid", "812"]).unwrap();
        assert_eq!(cli.options().master_pid, Some(812));
        for bad in ["0", "-1", "abc", "4294967296", "2147483648", ""] {
            assert!(
                Cli::try_parse_from(["fix502", "--pid", bad]).is_err(),
                "{bad}"
            );
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::size;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size("50MB"), Ok(50_000_000));
        assert_eq!(size("500kB"), Ok(500_000));
        assert_eq!(size("2GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(size("4096"), Ok(4096));
        for bad in ["", "MB", "12XB", "-1MB", "999", "99999999999999GB"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }
}
