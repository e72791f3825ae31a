//! `fix502 lab list` and `fix502 lab run NAME`: set up a reproducible broken nginx on
//! loopback (crates/lab), diagnose it with the same engine, say whether the diagnosis matched
//! the scenario's expectation, and tear it down.

use std::io::{self, Write};

use fix502_core::Engine;
use fix502_core::Options;
use fix502_core::report::{ExitStatus, Report};
use fix502_lab::{Diagnosed, Lab, LabOptions};

use crate::args::LabAction;
use crate::render;

/// Whether a report names what a scenario expects (the lab's one check,
/// [`fix502_lab::Expectation::check`]).
pub fn matches_expectation(report: &Report, lab: &Lab) -> Result<(), String> {
    let upstreams: Vec<Option<String>> = report
        .diagnosis
        .iter()
        .map(|d| d.upstream.as_ref().map(ToString::to_string))
        .collect();
    let diagnosed: Vec<Diagnosed<'_>> = report
        .diagnosis
        .iter()
        .zip(&upstreams)
        .map(|(d, u)| Diagnosed {
            cause: d.cause.id(),
            upstream: u.as_deref(),
        })
        .collect();
    lab.info().expect.check(
        &diagnosed,
        report.exit_status().code(),
        lab.expected_upstream().as_deref(),
    )
}

/// Runs a `lab` subcommand.
pub async fn run(action: &LabAction) -> ExitStatus {
    match action {
        LabAction::List => {
            let mut out = io::stdout().lock();
            let mut text = String::new();
            for s in fix502_lab::scenarios() {
                let expect = s.expect.top_cause.unwrap_or("no problem");
                let root = if s.needs_root { " (needs root)" } else { "" };
                text.push_str(&format!(
                    "{:<24} {}{root}\n{:<24} expect: {expect}, exit {}\n",
                    s.name, s.summary, "", s.expect.exit_code
                ));
            }
            let _ = out.write_all(text.as_bytes());
            ExitStatus::Clean
        }
        LabAction::Up { name, nginx } => {
            if !known(name) {
                return ExitStatus::Usage;
            }
            let opts = LabOptions {
                nginx: nginx.clone(),
                keep: false,
            };
            let name = name.clone();
            let held = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let lab =
                    Lab::start(&name, &opts).map_err(|e| format!("cannot set up the lab: {e}"))?;
                let mut out = io::stdout().lock();
                // This very binary, whether or not a fix502 is on PATH.
                let me = std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "fix502".to_owned());
                let _ = writeln!(out, "{}", lab.config().display());
                let _ = writeln!(
                    out,
                    "# nginx listens on http://{}/ (curl it to see the 502)",
                    lab.listen_addr()
                );
                let _ = writeln!(
                    out,
                    "# try: {me} --config {}   (press Enter here to tear it down)",
                    lab.config().display()
                );
                let _ = out.flush();
                let mut line = String::new();
                let _ = io::stdin().read_line(&mut line);
                lab.stop().map_err(|e| format!("lab teardown: {e}"))
            })
            .await;
            match held {
                Ok(Ok(())) => ExitStatus::Clean,
                Ok(Err(e)) => {
                    render::error_line(&e);
                    ExitStatus::CouldNotCheck
                }
                Err(e) => {
                    render::error_line(&format!("lab crashed: {e}"));
                    ExitStatus::CouldNotCheck
                }
            }
        }
        LabAction::Run {
            name,
            json,
            keep,
            nginx,
        } => {
            if !known(name) {
                return ExitStatus::Usage;
            }
            let opts = LabOptions {
                nginx: nginx.clone(),
                keep: *keep,
            };
            let name = name.clone();
            let lab = match tokio::task::spawn_blocking(move || Lab::start(&name, &opts)).await {
                Ok(Ok(lab)) => lab,
                Ok(Err(e)) => {
                    render::error_line(&format!("cannot set up the lab: {e}"));
                    return ExitStatus::CouldNotCheck;
                }
                Err(e) => {
                    render::error_line(&format!("lab setup crashed: {e}"));
                    return ExitStatus::CouldNotCheck;
                }
            };
            if !json {
                eprintln_lab(&format!(
                    "lab `{}`: {} (nginx on {}, dir {})",
                    lab.info().name,
                    lab.info().summary,
                    lab.listen_addr(),
                    lab.dir().display()
                ));
            }
            let options = Options {
                config: Some(lab.config().to_path_buf()),
                nginx: Some(lab.nginx_binary().to_path_buf()),
                prefix: Some(lab.prefix().to_path_buf()),
                ..Options::default()
            };
            let status = match Engine::run_all(options).await {
                Ok(report) => {
                    let mut out = io::stdout().lock();
                    let written = if *json {
                        render::json(&mut out, &report)
                    } else {
                        render::human(
                            &mut out,
                            &report,
                            &render::Page::new(None, render::Detail::Normal),
                        )
                    };
                    if !json {
                        match matches_expectation(&report, &lab) {
                            Ok(()) => eprintln_lab("lab: the diagnosis matches the scenario"),
                            Err(e) => eprintln_lab(&format!("lab: MISMATCH: {e}")),
                        }
                    }
                    crate::output_result(written.and_then(|()| out.flush()), report.exit_status())
                }
                Err(e) => {
                    render::error_line(&e.to_string());
                    ExitStatus::CouldNotCheck
                }
            };
            if let Err(e) = tokio::task::spawn_blocking(move || lab.stop())
                .await
                .unwrap_or(Ok(()))
            {
                render::error_line(&format!("lab teardown: {e}"));
            }
            status
        }
    }
}

/// Whether a scenario exists; says which exist when not.
fn known(name: &str) -> bool {
    if fix502_lab::find(name).is_some() {
        return true;
    }
    let names: Vec<_> = fix502_lab::scenarios().map(|s| s.name).collect();
    render::error_line(&format!(
        "no lab scenario `{name}`; one of: {}",
        names.join(", ")
    ));
    false
}

fn eprintln_lab(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}
