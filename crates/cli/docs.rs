//! The documentation the binary carries: `fix502 explain CAUSE` (a cause's section of
//! docs/causes.md, built in, for a cause id the cause table knows), `fix502 completions
//! SHELL` (clap_complete) and `fix502 man` (clap_mangen), both generated from the same
//! command-line definitions as `--help`.

use std::io::{self, Write};

use clap::CommandFactory;
use fix502_core::causes::Cause;
use fix502_core::report::ExitStatus;

use crate::args::Cli;
use crate::render;

/// docs/causes.md, as built in.
const CAUSES: &str = include_str!("../../docs/causes.md");

/// The section of docs/causes.md about `id` (from its `## \`id\`` heading to the next
/// heading of that level), without its trailing blank lines.
pub fn section(id: &str) -> Option<&'static str> {
    let heading = format!("## `{id}`\n");
    let start = CAUSES.find(&heading)?;
    let rest = &CAUSES[start..];
    let end = rest[heading.len()..]
        .find("\n## ")
        .map_or(rest.len(), |e| e + heading.len() + 1);
    Some(rest[..end].trim_end())
}

/// `fix502 explain CAUSE`.
pub fn explain(id: &str) -> ExitStatus {
    let Some(text) = Cause::parse(id).and_then(|c| section(c.id())) else {
        let known: Vec<&str> = Cause::all().map(Cause::id).collect();
        render::error_line(&format!(
            "no cause `{id}`; the cause ids are: {}",
            known.join(", ")
        ));
        return ExitStatus::Usage;
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = writeln!(out, "{text}").and_then(|()| out.flush());
    crate::output_result(written, ExitStatus::Clean)
}

/// `fix502 completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> ExitStatus {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, "fix502", &mut text);
    let mut out = io::stdout().lock();
    crate::output_result(
        out.write_all(&text).and_then(|()| out.flush()),
        ExitStatus::Clean,
    )
}

/// `fix502 man`.
pub fn man() -> ExitStatus {
    let mut out = io::stdout().lock();
    let written = clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .and_then(|()| out.flush());
    crate::output_result(written, ExitStatus::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_section_built_in() {
        for cause in Cause::all() {
            let text = section(cause.id()).unwrap_or_else(|| panic!("{}", cause.id()));
            assert!(text.starts_with(&format!("## `{}`", cause.id())));
            assert!(text.contains("**Fix:**"), "{}", cause.id());
            assert!(!text.contains("\n## "), "one section only: {}", cause.id());
        }
        assert!(section("nope").is_none());
    }
}
