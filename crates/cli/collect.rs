//! `fix502 collect`: the face of `fix502_core::bundle`. It builds the bundle's options from
//! the flags, shows a spinner on a terminal while the engine gathers, and prints what went
//! in, how big it is and what was taken out or cut; the exit codes are docs/command-line.md's.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use fix502_core::bundle::{CollectOptions, Manifest, Scrubber, collect, default_output};
use fix502_core::report::ExitStatus;

use crate::args::Target;
use crate::render;
use crate::wizard::spinner;

/// The flags of `fix502 collect`.
pub struct Flags<'a> {
    /// `--output`.
    pub output: Option<&'a PathBuf>,
    /// `--redact`.
    pub redact: &'a [String],
    /// `--no-redact`.
    pub no_redact: bool,
    /// `--max-size`.
    pub max_size: u64,
    /// Which nginx.
    pub target: &'a Target,
}

/// Runs `fix502 collect` and returns its exit status.
pub async fn run(flags: &Flags<'_>) -> ExitStatus {
    if let Some(problem) = flags.target.unreadable_inputs() {
        render::error_line(&problem);
        return ExitStatus::Usage;
    }
    let scrubber = if flags.no_redact {
        Scrubber::off()
    } else {
        match Scrubber::new(flags.redact) {
            Ok(s) => s,
            Err(e) => {
                render::error_line(&e.to_string());
                return ExitStatus::Usage;
            }
        }
    };
    let output = flags.output.cloned().unwrap_or_else(default_output);
    let how = CollectOptions {
        output: output.clone(),
        cap: flags.max_size,
        scrubber,
    };
    let pb = spinner("collecting…".to_owned(), io::stderr().is_terminal());
    let result = collect(flags.target.options(), &how, &mut |what| {
        pb.set_message(format!("collecting: {what}…"));
    })
    .await;
    pb.finish_and_clear();
    match result {
        Ok(manifest) => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let written = summary(&mut out, &output, &manifest).and_then(|()| out.flush());
            crate::output_result(written, ExitStatus::Clean)
        }
        // nginx not found or not chosen, or the bundle not written: one line each.
        Err(e) => {
            render::error_line(&e.to_string());
            ExitStatus::CouldNotCheck
        }
    }
}

/// What went in, its size, what was taken out and what was cut.
fn summary(out: &mut dyn Write, path: &std::path::Path, m: &Manifest) -> io::Result<()> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    writeln!(
        out,
        "Wrote {} ({} compressed; {} members, {} of {} allowed)",
        path.display(),
        bytes(size),
        m.members.len(),
        bytes(m.total_bytes),
        bytes(m.cap_bytes)
    )?;
    for member in &m.members {
        writeln!(
            out,
            "  {:>9}  {}{}",
            bytes(member.bytes),
            member.path,
            if member.truncated {
                " (newest part only)"
            } else {
                ""
            }
        )?;
    }
    if m.redaction.enabled {
        let kinds: Vec<String> = m
            .redaction
            .kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(
            out,
            "Redacted: {}",
            if kinds.is_empty() {
                "nothing found to redact".to_owned()
            } else {
                kinds.join(", ")
            }
        )?;
    } else {
        writeln!(
            out,
            "Not redacted (--no-redact): the bundle holds secrets as they were"
        )?;
    }
    for cut in &m.cut {
        writeln!(out, "Cut: {cut}")?;
    }
    Ok(())
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}
