//! Rendering: the one place that prints. The human report (doctor style: `[✓] [!] [✗]` per
//! step, what / why / exact command under each problem, one verdict line), the JSON report,
//! and the pieces the wizard shows between prompts.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Write};

use console::{Style, style};
use fix502_core::report::{
    ActionStatus, Diagnosis, Finding, MasterInfo, Namespaces, Report, Severity, StepReport,
    StepStatus,
};

/// Glyphs for statuses: Unicode when the terminal can, ASCII otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Glyphs {
    unicode: bool,
}

impl Glyphs {
    /// Picks glyphs from the locale and TERM.
    pub fn detect() -> Self {
        let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_default();
        let term_dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let utf8 = locale.to_ascii_uppercase().contains("UTF-8")
            || locale.to_ascii_uppercase().contains("UTF8");
        Self {
            unicode: utf8 && !term_dumb,
        }
    }

    fn status(&self, s: StepStatus) -> String {
        let (u, a, st) = match s {
            StepStatus::Pass => ("[✓]", "[OK]  ", Style::new().green()),
            StepStatus::Warn => ("[!]", "[WARN]", Style::new().yellow()),
            StepStatus::Fail => ("[✗]", "[FAIL]", Style::new().red().bold()),
            StepStatus::Skipped => ("[-]", "[SKIP]", Style::new().dim()),
            StepStatus::Error => ("[?]", "[ERR] ", Style::new().magenta()),
        };
        st.apply_to(if self.unicode { u } else { a }).to_string()
    }

    fn finding(&self, f: &Finding) -> String {
        let (u, a, st) = match (f.severity, f.could_not_check) {
            (_, true) => ("?", "?", Style::new().magenta()),
            (Severity::Error, _) => ("✗", "x", Style::new().red()),
            (Severity::Warning, _) => ("!", "!", Style::new().yellow()),
            (Severity::Info, _) => ("•", "-", Style::new().dim()),
        };
        st.apply_to(if self.unicode { u } else { a }).to_string()
    }

    fn arrow(&self) -> &'static str {
        if self.unicode { "→" } else { "->" }
    }
}

/// Writes one step's block.
pub fn step_block(
    out: &mut dyn Write,
    g: &Glyphs,
    step: &StepReport,
    verbose: bool,
) -> io::Result<()> {
    let title = step.step.title();
    writeln!(
        out,
        "{} {} {}",
        g.status(step.status),
        style(title).bold(),
        style(format!("({} ms)", step.duration_ms)).dim()
    )?;
    for f in &step.findings {
        // In a failing step, infos are noise, except who serves the upstream and where the
        // request goes.
        if f.severity == Severity::Info
            && !verbose
            && step.status != StepStatus::Pass
            && !f.could_not_check
            && f.check != fix502_core::checks::APP_SERVER
            && f.check != fix502_core::checks::ROUTE
        {
            continue;
        }
        writeln!(out, "    {} {}", g.finding(f), f.message)?;
        // A change fix502 would make or made is shown whole, before anything happens.
        for diff in f.evidence.iter().filter(|e| is_diff(e)) {
            for line in diff.lines() {
                writeln!(out, "      {line}")?;
            }
        }
        if f.severity != Severity::Info || f.could_not_check {
            if let Some(loc) = &f.location {
                writeln!(out, "      {} {}", g.arrow(), loc)?;
            }
            for e in f.evidence.iter().filter(|e| !is_diff(e)).take(2) {
                writeln!(out, "      {}", style(truncate(e, 240)).dim())?;
            }
        }
    }
    if let Some(next) = &step.next
        && step.status != StepStatus::Skipped
    {
        writeln!(out, "    {} {}", style("next:").cyan(), next)?;
    }
    Ok(())
}

/// Whether an evidence line is a unified diff (a change to a file).
fn is_diff(evidence: &str) -> bool {
    evidence.starts_with("--- ") && evidence.contains("\n+++ ")
}

/// Writes the per-minute sparklines of the window, one row per series, and the first minute
/// things went wrong.
pub fn timeline_block(out: &mut dyn Write, t: &fix502_core::Timeline) -> io::Result<()> {
    let unit = if t.bucket_minutes == 1 {
        "per minute".to_owned()
    } else {
        format!("per {} minutes", t.bucket_minutes)
    };
    writeln!(
        out,
        "\n{} {}",
        style(format!(
            "Timeline ({unit}, from {})",
            t.start.replace('T', " ")
        ))
        .bold(),
        t.first_bad
            .as_ref()
            .map(|f| format!("first trouble at {}", f.replace('T', " ")))
            .unwrap_or_default()
    )?;
    let width = t.series.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &t.series {
        let total: u64 = s.counts.iter().sum();
        writeln!(
            out,
            "  {:<width$} |{}| {total} ({})",
            s.name,
            fix502_core::sparkline(&s.counts),
            s.source
        )?;
    }
    Ok(())
}

/// Writes the ranked causes.
pub fn diagnosis_block(out: &mut dyn Write, g: &Glyphs, diagnosis: &[Diagnosis]) -> io::Result<()> {
    if diagnosis.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{}", style("Diagnosis (most likely first)").bold())?;
    for (i, d) in diagnosis.iter().enumerate() {
        let status = match d.http_status {
            502 => String::new(),
            s => format!(", clients get {s}"),
        };
        writeln!(
            out,
            "  {}. {} {}{}",
            i + 1,
            style(d.cause.id()).red().bold(),
            style(format!("({:.0}% sure{status})", d.confidence * 100.0)).dim(),
            d.upstream
                .as_ref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default()
        )?;
        writeln!(out, "     {}", d.summary)?;
        for e in d.evidence.iter().take(4) {
            writeln!(
                out,
                "     {} {}",
                style("evidence:").dim(),
                truncate(e, 240)
            )?;
        }
        for f in &d.fix {
            writeln!(out, "     {} {}", style("fix:").green(), f)?;
        }
    }
    let _ = g;
    Ok(())
}

/// The one verdict line: what the fifth step fixed and verified, then what remains.
pub fn verdict(report: &Report) -> String {
    let fixed: Vec<String> = report
        .actions
        .iter()
        .filter(|a| a.status == ActionStatus::Verified)
        .filter_map(|a| a.cause.map(|c| c.id().to_owned()))
        .collect();
    let remains = remaining(report);
    if fixed.is_empty() {
        return remains;
    }
    let fixed = format!("Fixed and verified: {}.", fixed.join(", "));
    if report.diagnosis.is_empty() {
        format!("{fixed} No diagnosed problem remains.")
    } else {
        format!("{fixed} Still: {remains}")
    }
}

/// The verdict on the problems diagnosed (and not fixed).
fn remaining(report: &Report) -> String {
    match report.diagnosis.first() {
        Some(d) => {
            let next = d
                .fix
                .first()
                .map(|f| format!(" Next: {f}"))
                .unwrap_or_default();
            format!(
                "Likely cause: {} — {}.{next}",
                d.cause.id(),
                d.summary.trim_end_matches('.')
            )
        }
        None if report.steps.iter().any(|s| s.status == StepStatus::Error) => {
            "Could not check everything: see the [?] lines above.".to_owned()
        }
        None if report.steps.iter().any(|s| s.status == StepStatus::Warn) => {
            "No problem found, with warnings above.".to_owned()
        }
        None => "No problem found.".to_owned(),
    }
}

/// Writes the whole human report.
pub fn human(out: &mut dyn Write, report: &Report, verbose: bool) -> io::Result<()> {
    let g = Glyphs::detect();
    if !g.unicode {
        // Drawn in full, then every glyph fix502 draws in its ASCII stand-in.
        let mut text = Vec::new();
        human_with(&mut text, &g, report, verbose)?;
        return out.write_all(ascii(&String::from_utf8_lossy(&text)).as_bytes());
    }
    human_with(out, &g, report, verbose)
}

/// The glyphs fix502 draws and their ASCII stand-ins, for a locale that is not UTF-8 or
/// `TERM=dumb` (other text, such as a log line's own bytes, is left as it is).
const ASCII: &[(char, &str)] = &[
    ('…', "..."),
    ('→', "->"),
    ('—', "-"),
    ('–', "-"),
    ('•', "*"),
    ('✓', "v"),
    ('✗', "x"),
    ('×', "x"),
    ('±', "+/-"),
    ('≥', ">="),
    ('§', "S"),
    ('▁', "."),
    ('▂', ":"),
    ('▃', "-"),
    ('▄', "="),
    ('▅', "+"),
    ('▆', "*"),
    ('▇', "#"),
    ('█', "@"),
];

/// `text` with every glyph of [`ASCII`] replaced by its stand-in.
pub fn ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match ASCII.iter().find(|(g, _)| *g == c) {
            Some((_, s)) => out.push_str(s),
            None => out.push(c),
        }
    }
    out
}

fn human_with(out: &mut dyn Write, g: &Glyphs, report: &Report, verbose: bool) -> io::Result<()> {
    let g = *g;
    header(out, report)?;
    for step in &report.steps {
        step_block(out, &g, step, verbose)?;
    }
    if let Some(t) = &report.timeline {
        timeline_block(out, t)?;
    }
    diagnosis_block(out, &g, &report.diagnosis)?;
    writeln!(out, "\n{}", style(verdict(report)).bold())
}

/// The first lines: which nginx, and how it was found.
pub fn header(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let n = &report.nginx;
    let version = n
        .version
        .as_deref()
        .map(|v| format!("nginx {v}"))
        .unwrap_or_else(|| "nginx".to_owned());
    let binary = n
        .binary
        .as_ref()
        .map(|b| format!(" ({})", b.display()))
        .unwrap_or_default();
    writeln!(
        out,
        "{} {} — {version}{binary}",
        style("fix502").bold(),
        report.fix502_version
    )?;
    if let Some(o) = &report.offline {
        writeln!(
            out,
            "{} bundle {} of host {}, collected {} by fix502 {}: what it measured there is as recorded",
            style("offline:").bold(),
            o.bundle,
            o.host,
            o.collected_at,
            o.fix502_version
        )?;
    }
    if let Some(c) = &n.config {
        let how = n
            .discovered_via
            .get("config")
            .map(|v| format!(" [{v}]"))
            .unwrap_or_default();
        writeln!(out, "config {}{}", c.display(), style(how).dim())?;
    }
    match n.master_pid {
        Some(pid) => writeln!(
            out,
            "master pid {pid}, workers as {}",
            n.worker_user.as_deref().unwrap_or("?")
        )?,
        None => writeln!(out, "no master process runs this config")?,
    }
    if let Some(ns) = &n.namespaces {
        let what = sandbox_words(ns)
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        writeln!(
            out,
            "runs in other namespaces than fix502: {}{what}",
            namespace_ids(ns)
        )?;
    }
    masters_block(out, &n.masters)?;
    writeln!(out)
}

/// Most masters the header lists one by one.
const MASTERS_SHOWN: usize = 10;

/// Every running master, when several run: the diagnosed one marked with an arrow.
fn masters_block(out: &mut dyn Write, masters: &[MasterInfo]) -> io::Result<()> {
    if masters.is_empty() {
        return Ok(());
    }
    writeln!(out, "{} nginx masters run:", masters.len())?;
    for m in masters.iter().take(MASTERS_SHOWN) {
        let mark = if m.selected { "→" } else { " " };
        let net = m
            .namespaces
            .net
            .map(|n| format!("net:[{n}]"))
            .unwrap_or_else(|| "net:[?]".to_owned());
        let config = m
            .config
            .as_ref()
            .map(|c| c.display().to_string())
            .unwrap_or_else(|| "(config unknown)".to_owned());
        let what = sandbox_words(&m.namespaces)
            .map(|w| format!("  ({w})"))
            .unwrap_or_default();
        writeln!(out, "  {mark} pid {}  {net}  {config}{what}", m.pid)?;
    }
    if masters.len() > MASTERS_SHOWN {
        writeln!(
            out,
            "    … and {} more (fix502 --json: nginx.masters)",
            masters.len() - MASTERS_SHOWN
        )?;
    }
    Ok(())
}

/// `net:[A] mnt:[B] pid:[C]`.
fn namespace_ids(ns: &Namespaces) -> String {
    let id = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    format!(
        "net:[{}] mnt:[{}] pid:[{}]",
        id(ns.net),
        id(ns.mnt),
        id(ns.pid)
    )
}

/// `docker container 0123456789ab, a sandbox of its own network and mount namespaces`.
fn sandbox_words(ns: &Namespaces) -> Option<String> {
    let container = ns.container.as_ref().map(|c| match &c.id {
        Some(id) => format!("{} container {}", c.runtime, id.get(..12).unwrap_or(id)),
        None => format!("{} container", c.runtime),
    });
    let sandbox = ns
        .sandboxed
        .then(|| "a sandbox: its own network and mount namespaces".to_owned());
    match (container, sandbox) {
        (Some(c), Some(s)) => Some(format!("{c}, {s}")),
        (c, s) => c.or(s),
    }
}

/// Writes the JSON report: exactly one document.
pub fn json(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report).map_err(|e| match e.io_error_kind() {
        // A write error keeps its kind (a closed pipe stays BrokenPipe).
        Some(kind) => io::Error::new(kind, e),
        None => io::Error::other(e),
    })?;
    writeln!(out)
}

/// Writes what `fix502 undo` did: one line per file restored and per command run.
pub fn undone(out: &mut dyn Write, undone: &fix502_core::undo::Undone) -> io::Result<()> {
    writeln!(out, "Undid change {}:", undone.id)?;
    for f in &undone.files {
        writeln!(out, "  restored {}", f.display())?;
    }
    for c in &undone.commands {
        writeln!(out, "  ran {c}")?;
    }
    if undone.reloaded.is_none() && undone.app.is_none() {
        writeln!(out, "  nginx does not run this config: nothing to reload")?;
    }
    if let Some(proof) = &undone.proof {
        writeln!(out, "  now: {proof}")?;
    }
    Ok(())
}

/// Writes any serializable value as one pretty JSON document.
pub fn json_value<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| match e.io_error_kind() {
        Some(kind) => io::Error::new(kind, e),
        None => io::Error::other(e),
    })?;
    writeln!(out)
}

/// Prints one error line on stderr.
pub fn error_line(message: &str) {
    eprintln!("fix502: {message}");
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}
