//! Rendering: the one place that prints. The human report (doctor style: `[✓] [!] [✗]` per
//! step, what / why / exact command under each problem, one verdict line), the JSON report,
//! and the pieces the wizard shows between prompts.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Write};

use console::{Style, style};

use crate::layout;
use fix502_core::report::{
    ActionStatus, Diagnosis, Finding, MasterInfo, Namespaces, Report, Severity, StepReport,
    StepStatus,
};

/// How much the human text says (`-q`, the default, `-v`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Detail {
    /// A line per step, the causes and the verdict.
    Quiet,
    /// The problems with their first evidence, each on one line.
    #[default]
    Normal,
    /// Every finding, every evidence line in full.
    Verbose,
}

/// How the human text is drawn: its glyphs, its width and how much it says.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    glyphs: Glyphs,
    /// The width lines are wrapped at.
    pub width: usize,
    /// How much is said.
    pub detail: Detail,
}

impl Page {
    /// A page for this terminal: `width` (`--width`) or the terminal's, glyphs from the locale.
    pub fn new(width: Option<usize>, detail: Detail) -> Self {
        Self {
            glyphs: Glyphs::detect(),
            width: layout::width(width),
            detail,
        }
    }

    /// Draws with `draw` through [`Page::writer`].
    pub fn show(
        &self,
        out: &mut dyn Write,
        draw: impl FnOnce(&mut dyn Write, &Self) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut fitted = self.writer(out);
        draw(&mut fitted, self)?;
        fitted.flush()
    }

    /// A writer that fits each line written through it to the page: every glyph in its
    /// ASCII stand-in when the terminal cannot show it, wrapped at the width.
    pub fn writer<'a>(&self, out: &'a mut dyn Write) -> Fitted<'a> {
        Fitted {
            out,
            page: *self,
            line: Vec::new(),
        }
    }

    /// `text` for one line of its own (a prompt): ASCII when needed, cut in the middle to
    /// the width less `room`.
    pub fn line(&self, text: &str, room: usize) -> String {
        let text = layout::elide_middle(text, self.width.saturating_sub(room).max(20));
        if self.glyphs.unicode {
            text
        } else {
            ascii(&text)
        }
    }

    fn verbose(&self) -> bool {
        self.detail == Detail::Verbose
    }

    /// `text` whole under `-v`, else cut in the middle to fit two lines indented by `indent`.
    fn fit(&self, text: &str, indent: usize) -> String {
        if self.verbose() {
            text.to_owned()
        } else {
            let line = self.width.saturating_sub(indent).max(20);
            // Wrapping at spaces leaves some of each line empty: a few columns to spare.
            layout::elide_middle(text, 2 * line - 8)
        }
    }
}

/// A writer that fits each whole line to its page ([`Page::writer`]); a line not ended yet
/// is written as it is on `flush`.
pub struct Fitted<'a> {
    out: &'a mut dyn Write,
    page: Page,
    line: Vec<u8>,
}

impl Fitted<'_> {
    fn write_fitted(&mut self, bytes: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(bytes);
        let text = if self.page.glyphs.unicode {
            text.into_owned()
        } else {
            ascii(&text)
        };
        self.out
            .write_all(layout::wrap(&text, self.page.width).as_bytes())
    }
}

impl Write for Fitted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|b| *b == b'\n') {
            let whole: Vec<u8> = self.line.drain(..=end).collect();
            self.write_fitted(&whole)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let rest = std::mem::take(&mut self.line);
            self.write_fitted(&rest)?;
        }
        self.out.flush()
    }
}

impl Drop for Fitted<'_> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

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

    /// Whether the terminal shows Unicode glyphs.
    pub fn unicode(&self) -> bool {
        self.unicode
    }

    fn arrow(&self) -> &'static str {
        if self.unicode { "→" } else { "->" }
    }
}

/// Writes one step's block.
pub fn step_block(out: &mut dyn Write, page: &Page, step: &StepReport) -> io::Result<()> {
    let g = &page.glyphs;
    let verbose = page.verbose();
    let title = step.step.title();
    writeln!(
        out,
        "{} {} {}",
        g.status(step.status),
        style(title).bold(),
        style(format!("({} ms)", step.duration_ms)).dim()
    )?;
    if page.detail == Detail::Quiet {
        return Ok(());
    }
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
                writeln!(out, "      {} {}", g.arrow(), page.fit(&loc.to_string(), 8))?;
            }
            let shown = if verbose { usize::MAX } else { 2 };
            for e in f.evidence.iter().filter(|e| !is_diff(e)).take(shown) {
                writeln!(out, "      {}", style(page.fit(e, 6)).dim())?;
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
/// The sparklines are as wide as the page allows: neighbouring buckets are merged when the
/// window has more of them than the line has room for.
pub fn timeline_block(
    out: &mut dyn Write,
    page: &Page,
    t: &fix502_core::Timeline,
) -> io::Result<()> {
    let width = t.series.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let tail = t
        .series
        .iter()
        .map(|s| format!(" {} ({})", s.counts.iter().sum::<u64>(), s.source).len())
        .max()
        .unwrap_or(0);
    let room = page.width.saturating_sub(2 + width + 3 + tail);
    let longest = t.series.iter().map(|s| s.counts.len()).max().unwrap_or(0);
    let (_, factor) = layout::fit_counts(&vec![0; longest], room);
    let minutes = t.bucket_minutes * u32::try_from(factor).unwrap_or(u32::MAX);
    let unit = if minutes == 1 {
        "per minute".to_owned()
    } else {
        format!("per {minutes} minutes")
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
    for s in &t.series {
        let total: u64 = s.counts.iter().sum();
        let (counts, _) = layout::fit_counts(&s.counts, room);
        writeln!(
            out,
            "  {:<width$} |{}| {total} ({})",
            s.name,
            fix502_core::sparkline(&counts),
            s.source
        )?;
    }
    Ok(())
}

/// Writes the ranked causes.
pub fn diagnosis_block(
    out: &mut dyn Write,
    page: &Page,
    diagnosis: &[Diagnosis],
) -> io::Result<()> {
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
        if page.detail == Detail::Quiet {
            continue;
        }
        let shown = if page.verbose() { usize::MAX } else { 4 };
        for e in d.evidence.iter().take(shown) {
            writeln!(out, "     {} {}", style("evidence:").dim(), page.fit(e, 15))?;
        }
        for f in &d.fix {
            writeln!(out, "     {} {}", style("fix:").green(), f)?;
        }
    }
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

/// Writes the whole human report, fitted to `page`.
pub fn human(out: &mut dyn Write, report: &Report, page: &Page) -> io::Result<()> {
    page.show(out, |out, page| human_with(out, page, report))
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

fn human_with(out: &mut dyn Write, page: &Page, report: &Report) -> io::Result<()> {
    if page.detail != Detail::Quiet {
        header(out, report)?;
    }
    for step in &report.steps {
        step_block(out, page, step)?;
    }
    if let Some(t) = &report.timeline
        && page.detail != Detail::Quiet
    {
        timeline_block(out, page, t)?;
    }
    diagnosis_block(out, page, &report.diagnosis)?;
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

/// Prints a line that follows an error line (a usage line, a hint) on stderr.
pub fn more_line(text: &str) {
    eprintln!("{text}");
}
