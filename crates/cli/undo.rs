//! `fix502 undo [ID]`: the face of `fix502_core::undo`. It opens the journal, undoes one
//! change, prints what was done (render.rs) and maps the outcome to the exit codes of
//! docs/command-line.md.

use std::io::{self, Write};

use fix502_core::changes::Changes;
use fix502_core::report::ExitStatus;
use fix502_core::undo::{UndoError, undo};

use crate::render;

/// Runs `fix502 undo [ID]` and returns its exit status.
pub async fn run(id: Option<&str>, json: bool) -> ExitStatus {
    let changes = match Changes::open() {
        Ok(c) => c,
        Err(e) => {
            render::error_line(&e.to_string());
            return ExitStatus::CouldNotCheck;
        }
    };
    match undo(&changes, id).await {
        Ok(done) => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let written = if json {
                render::json_value(&mut out, &done)
            } else {
                render::undone(&mut out, &done)
            };
            crate::output_result(written.and_then(|()| out.flush()), ExitStatus::Clean)
        }
        Err(e) => {
            render::error_line(&e.to_string());
            status_of(&e)
        }
    }
}

/// The exit status of a change that was not undone.
fn status_of(e: &UndoError) -> ExitStatus {
    match e {
        UndoError::NothingToUndo { .. } | UndoError::NotUndoable { .. } => ExitStatus::Clean,
        UndoError::Unknown { .. } | UndoError::ChangedSince { .. } => ExitStatus::Usage,
        UndoError::TestFailed { .. }
        | UndoError::ReloadFailed { .. }
        | UndoError::AppReloadFailed { .. } => ExitStatus::RolledBack,
        UndoError::Busy(_) | UndoError::Journal(_) => ExitStatus::CouldNotCheck,
    }
}
