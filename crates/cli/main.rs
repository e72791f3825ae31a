//! The `fix502` binary: parse the command line, pick the face (wizard, human report, JSON,
//! lab), run the engine, print, and map the outcome to the exit codes of docs/command-line.md. Thin: no
//! diagnosis logic lives here.

mod args;
mod collect;
mod docs;
mod fleet;
mod lab;
mod layout;
mod render;
mod stdin_log;
mod undo;
mod wizard;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use fix502_core::DiscoveryError;
use fix502_core::Engine;
use fix502_core::report::ExitStatus;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut line = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            // "the following required arguments were not provided:" names them below.
            if line.ends_with(':') {
                let named: Vec<&str> = lines.take_while(|l| !l.starts_with("Usage:")).collect();
                line = format!("{line} {}", named.join(", "));
            }
            render::error_line(&line);
            // Then clap's tips (a similar flag), the usage line and the hint.
            for more in text.lines().map(str::trim).filter(|l| {
                l.starts_with("tip:")
                    || l.starts_with("Usage:")
                    || l.starts_with("For more information")
            }) {
                render::more_line(more);
            }
            return code(ExitStatus::Usage);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIX502_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .init();
    // Probing a thousand upstreams at once needs as many sockets.
    if let Some((old, new)) = fix502_probe::host::raise_open_files_limit() {
        tracing::debug!(old, new, "raised the open-file limit");
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            render::error_line(&format!("cannot start the async runtime: {e}"));
            return code(ExitStatus::CouldNotCheck);
        }
    };
    // A panic, too, leaves the terminal as it was found.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        default_hook(info);
    }));
    let status = runtime.block_on(async {
        tokio::select! {
            status = run(cli) => status,
            _ = tokio::signal::ctrl_c() => ExitStatus::Interrupted,
        }
    });
    if status == ExitStatus::Interrupted {
        // Ctrl-C mid-step (the signal) or at a prompt (a key in raw mode): either way the
        // spinner's line is cleared, the cursor shown, and one line says so.
        restore_terminal();
        render::error_line("interrupted");
    }
    code(status)
}

/// Puts the terminal back as fix502 found it: a spinner's unfinished line cleared, the
/// cursor a prompt hid shown again. Nothing is written when stderr is not a terminal.
fn restore_terminal() {
    let err = console::Term::stderr();
    if err.is_term() {
        let _ = err.clear_line();
        let _ = err.show_cursor();
    }
}

fn code(status: ExitStatus) -> ExitCode {
    ExitCode::from(u8::try_from(status.code()).unwrap_or(1))
}

/// Reports a failed write to stdout: a closed pipe is not an error.
fn output_result(r: io::Result<()>, status: ExitStatus) -> ExitStatus {
    match r {
        Ok(()) => status,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => status,
        Err(e) => {
            render::error_line(&format!("cannot write the report: {e}"));
            ExitStatus::CouldNotCheck
        }
    }
}

async fn run(cli: Cli) -> ExitStatus {
    cli.apply_color();
    if let Some(Command::Lab { action }) = &cli.command {
        return lab::run(action).await;
    }
    if let Some(Command::Undo { id, json }) = &cli.command {
        return undo::run(id.as_deref(), *json).await;
    }
    match &cli.command {
        Some(Command::Explain { cause }) => return docs::explain(cause),
        Some(Command::Completions { shell }) => return docs::completions(*shell),
        Some(Command::Man) => return docs::man(),
        _ => {}
    }
    if let Some(Command::Fleet { files, json }) = &cli.command {
        return fleet::run(files, *json);
    }
    if let Some(Command::Collect {
        output,
        redact,
        no_redact,
        max_size,
        target,
    }) = &cli.command
    {
        return collect::run(&collect::Flags {
            output: output.as_ref(),
            redact,
            no_redact: *no_redact,
            max_size: *max_size,
            target,
        })
        .await;
    }
    if let Some(problem) = cli.target.unreadable_inputs() {
        render::error_line(&problem);
        return ExitStatus::Usage;
    }
    // Kept until the run ends: its path is the piped log's.
    let stdin_log = if cli.target.reads_stdin() {
        match stdin_log::StdinLog::capture() {
            Ok(log) => Some(log),
            Err(e) => {
                render::error_line(&format!("{e:#}"));
                return ExitStatus::Usage;
            }
        }
    } else {
        None
    };
    let options = || {
        let mut o = cli.options();
        o.stdin_log = stdin_log.as_ref().map(stdin_log::StdinLog::path);
        o
    };
    let interactive = !cli.non_interactive
        && !cli.json
        && io::stdin().is_terminal()
        && io::stdout().is_terminal()
        && std::env::var_os("FIX502_NO_PROMPT").is_none();
    let stdout = io::stdout();
    let page = cli.page();
    if interactive {
        let mut out = stdout.lock();
        return match wizard::run(
            options(),
            &mut wizard::DialoguerPrompter { page },
            &mut out,
            &page,
            io::stderr().is_terminal(),
        )
        .await
        {
            Ok(report) => report.exit_status(),
            Err(e) => match e.downcast_ref::<DiscoveryError>() {
                Some(d) => discovery_failed(d),
                None if is_interrupt(&e) => ExitStatus::Interrupted,
                None => {
                    render::error_line(&format!("{e:#}"));
                    ExitStatus::CouldNotCheck
                }
            },
        };
    }
    let outcome = match Engine::run_all(options()).await {
        // A script asked for JSON gets one document even when nginx could not be found
        // or chosen: its steps say what could not be checked (exit 3). A bundle that cannot
        // be read is a usage error, with no document.
        Err(e) if cli.json && !matches!(e, DiscoveryError::Bundle(_)) => {
            render::error_line(&e.to_string());
            Ok(fix502_core::not_started(&options(), &e.to_string()))
        }
        other => other,
    };
    match outcome {
        Ok(report) => {
            let mut out = stdout.lock();
            let written = if cli.json {
                render::json(&mut out, &report)
            } else {
                render::human(&mut out, &report, &page)
            };
            let written = written.and_then(|()| out.flush());
            output_result(written, report.exit_status())
        }
        Err(e) => discovery_failed(&e),
    }
}

fn is_interrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::Interrupted)
            || c.downcast_ref::<dialoguer::Error>().is_some_and(|d| matches!(d, dialoguer::Error::IO(io) if io.kind() == io::ErrorKind::Interrupted))
    })
}

fn discovery_failed(e: &DiscoveryError) -> ExitStatus {
    render::error_line(&e.to_string());
    match e {
        // A bundle that is not one, is cut short or is too new: the input is wrong.
        DiscoveryError::Bundle(_) => ExitStatus::Usage,
        _ => ExitStatus::CouldNotCheck,
    }
}
