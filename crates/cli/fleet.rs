//! `fix502 fleet FILE...`: the face of `fix502_core::fleet`. It reads every input (one bad
//! input is one error line and exit 2, before anything is printed), then prints the table
//! and the groups, or one JSON document. Exit 0 when every host was clean, else 1.

use std::io::{self, Write};
use std::path::PathBuf;

use fix502_core::fleet::{Fleet, fleet, read_input};
use fix502_core::report::ExitStatus;

use crate::render;

/// Runs `fix502 fleet` and returns its exit status.
pub fn run(files: &[PathBuf], json: bool) -> ExitStatus {
    let mut rows = Vec::new();
    for f in files {
        match read_input(f) {
            Ok(row) => rows.push(row),
            Err(e) => {
                render::error_line(&e.to_string());
                return ExitStatus::Usage;
            }
        }
    }
    let table = fleet(rows);
    let status = if table.hosts.iter().all(|h| h.exit_code == 0) {
        ExitStatus::Clean
    } else {
        ExitStatus::Problem
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = if json {
        render::json_value(&mut out, &table)
    } else {
        human(&mut out, &table)
    };
    crate::output_result(written.and_then(|()| out.flush()), status)
}

fn human(out: &mut dyn Write, f: &Fleet) -> io::Result<()> {
    let dash = "-".to_owned();
    let rows: Vec<[String; 6]> = f
        .hosts
        .iter()
        .map(|h| {
            [
                h.host.clone(),
                h.nginx_version.clone().unwrap_or_else(|| dash.clone()),
                h.exit_code.to_string(),
                h.top_cause
                    .clone()
                    .unwrap_or_else(|| "no problem".to_owned()),
                h.upstream.clone().unwrap_or_else(|| dash.clone()),
                h.first_trouble.clone().unwrap_or_else(|| dash.clone()),
            ]
        })
        .collect();
    let head = [
        "HOST",
        "NGINX",
        "EXIT",
        "TOP CAUSE",
        "UPSTREAM",
        "FIRST TROUBLE",
    ];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&head.map(str::to_owned)))?;
    for r in &rows {
        writeln!(out, "{}", line(r))?;
    }
    writeln!(out, "\nBy cause:")?;
    for g in &f.groups {
        let n = g.hosts.len();
        let what = match (&g.cause, &g.upstream) {
            (Some(c), Some(u)) => format!("{c} {u}"),
            (Some(c), None) => c.clone(),
            (None, _) => "no problem found".to_owned(),
        };
        let since = g
            .since
            .as_deref()
            .map(|s| format!(" since {s}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  {n} host{}: {what}{since} ({})",
            if n == 1 { "" } else { "s" },
            g.hosts.join(", ")
        )?;
    }
    Ok(())
}
