//! The interactive walkthrough: a small state machine over a [`Prompter`]. It runs each step
//! with a spinner, shows what the step found, and asks whether to go on, jump to the step the
//! findings point at, see the diagnosis, or stop; then it offers the restart step's actions one
//! by one. The engine does the work; this module only asks and shows.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use fix502_core::ActionKind;
use fix502_core::DiscoveryError;
use fix502_core::Engine;
use fix502_core::Options;
use fix502_core::report::{Report, StepId, StepStatus};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::render::{self, Page};

/// Asks the user things. The real one uses dialoguer; tests script the answers.
pub trait Prompter {
    /// Picks one of `items`.
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize>;
    /// Yes or no.
    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool>;
}

/// The terminal prompter. Each prompt and item is one line of the page (cut in the middle
/// when wider, ASCII when needed): a prompt that wraps would be drawn twice.
pub struct DialoguerPrompter {
    /// The page the prompts are fitted to.
    pub page: Page,
}

/// dialoguer's plain theme without the colon it puts after every prompt: the prompts are
/// questions (`What next?`, not `What next?:`).
struct Questions;

impl dialoguer::theme::Theme for Questions {
    fn format_prompt(&self, f: &mut dyn std::fmt::Write, prompt: &str) -> std::fmt::Result {
        write!(f, "{prompt}")
    }

    fn format_input_prompt_selection(
        &self,
        f: &mut dyn std::fmt::Write,
        prompt: &str,
        sel: &str,
    ) -> std::fmt::Result {
        write!(f, "{prompt} {sel}")
    }
}

impl Prompter for DialoguerPrompter {
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize> {
        // Once picked, dialoguer shows `prompt: item` on one line.
        let prompt = self.page.line(prompt, 4);
        let room = prompt.chars().count() + 4;
        let items: Vec<String> = items.iter().map(|i| self.page.line(i, room)).collect();
        dialoguer::Select::with_theme(&Questions)
            .with_prompt(prompt)
            .items(&items)
            .default(default)
            .interact_opt()?
            .ok_or_else(|| Quit.into())
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool> {
        dialoguer::Confirm::with_theme(&Questions)
            .with_prompt(self.page.line(prompt, 12))
            .default(default)
            .interact_opt()?
            .ok_or_else(|| Quit.into())
    }
}

/// The person pressed `q` or Esc at a prompt: the walkthrough stops where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quit;

impl std::fmt::Display for Quit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped at a prompt (q or Esc)")
    }
}

impl std::error::Error for Quit {}

/// Answers given in advance, for tests of the state machine.
#[cfg(test)]
pub struct ScriptedPrompter {
    /// For `select`, in order: the first item that starts with it (else the default).
    pub selects: std::collections::VecDeque<&'static str>,
    /// Answers for `confirm`, in order.
    pub confirms: std::collections::VecDeque<bool>,
}

#[cfg(test)]
impl Prompter for ScriptedPrompter {
    fn select(&mut self, _prompt: &str, items: &[String], default: usize) -> Result<usize> {
        Ok(self
            .selects
            .pop_front()
            .and_then(|label| items.iter().position(|i| i.starts_with(label)))
            .unwrap_or(default))
    }

    fn confirm(&mut self, _prompt: &str, default: bool) -> Result<bool> {
        Ok(self.confirms.pop_front().unwrap_or(default))
    }
}

/// What the user chose after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Step(StepId),
    Diagnose,
    Stop,
}

/// The columns a spinner's line needs besides its message: the spinner and the time.
const SPINNER_ROOM: usize = 12;

/// The most steps one walkthrough runs (a person may run steps again).
const MAX_TURNS: usize = 40;

/// A step's number in the five (1 to 5).
fn number(step: StepId) -> usize {
    StepId::ALL
        .iter()
        .position(|s| *s == step)
        .map_or(0, |i| i + 1)
}

/// The step list after a step: go on with the next one, jump to another one not run yet, run
/// one that ran again (after fixing something by hand), see the diagnosis, or stop. The step
/// the findings point at says "suggested".
fn step_list(pending: &[StepId], engine: &Engine, hint: Option<StepId>) -> Vec<(String, Choice)> {
    let suggested = |s: StepId| if hint == Some(s) { " (suggested)" } else { "" };
    let mut choices = Vec::new();
    for (i, s) in pending.iter().enumerate() {
        let verb = if i == 0 { "Continue with" } else { "Jump to" };
        choices.push((
            format!(
                "{verb} step {}/5: {}{}",
                number(*s),
                s.title(),
                suggested(*s)
            ),
            Choice::Step(*s),
        ));
    }
    for done in engine.steps().iter().filter(|r| r.step != StepId::Restart) {
        choices.push((
            format!(
                "Run step {}/5 again: {} ({})",
                number(done.step),
                done.step.title(),
                match done.status {
                    StepStatus::Pass => "passed",
                    StepStatus::Warn => "warnings",
                    StepStatus::Fail => "failed",
                    StepStatus::Error => "could not check",
                    StepStatus::Skipped => "skipped",
                }
            ),
            Choice::Step(done.step),
        ));
    }
    choices.push(("Show the diagnosis now".to_owned(), Choice::Diagnose));
    choices.push(("Stop here".to_owned(), Choice::Stop));
    choices
}

/// What a step's spinner waits on, in a few words.
fn waiting_on(step: StepId, engine: &Engine) -> String {
    let facts = engine.facts();
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    match step {
        StepId::Logs => format!(
            "reading {} and {}",
            plural(facts.error_logs.len(), "error log"),
            plural(facts.access_logs.len(), "access log")
        ),
        StepId::Upstream => format!(
            "connecting to {}, {} ms each at most",
            plural(facts.endpoints.len(), "upstream address"),
            facts.timeout().as_millis()
        ),
        StepId::Config => "running nginx -t, reading the config".to_owned(),
        StepId::Network => "resolving names, reading sockets and the host's policies".to_owned(),
        StepId::Restart => "planning".to_owned(),
    }
}

/// Shows the logged requests that ask for more than the probes send (the location's path)
/// and asks whether to re-send them as nginx did: that runs the app's code for them.
async fn ask_replay(
    engine: &mut Engine,
    prompter: &mut dyn Prompter,
    out: &mut dyn Write,
) -> Result<()> {
    let requests = engine.facts().replayable_requests().await;
    if requests.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nnginx logged these failing requests; the next step sends only the location's path:"
    )?;
    for (upstream, request) in &requests {
        writeln!(out, "    {upstream}: {}", fix502_core::redact(request))?;
    }
    out.flush()?;
    if prompter.confirm(
        "Re-send them to the upstreams as nginx did? This runs the app's code for them",
        false,
    )? {
        engine.allow_replay();
    }
    Ok(())
}

pub(crate) fn spinner(message: String, show: bool) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        None,
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let unicode = render::Glyphs::detect().unicode();
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    pb.set_style(if unicode {
        style
    } else {
        style.tick_chars("-\\|/ ")
    });
    pb.set_message(if unicode {
        message
    } else {
        render::ascii(&message)
    });
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Runs the walkthrough and returns the report (for the exit code).
pub async fn run(
    mut options: Options,
    prompter: &mut dyn Prompter,
    out: &mut dyn Write,
    page: &Page,
    spinners: bool,
) -> Result<Report> {
    let mut fitted = page.writer(out);
    let out: &mut dyn Write = &mut fitted;
    let pb = spinner("Finding nginx…".to_owned(), spinners);
    let mut engine = match Engine::new(options.clone()).await {
        Ok(e) => e,
        Err(DiscoveryError::AmbiguousMasters(masters)) => {
            pb.finish_and_clear();
            let items: Vec<String> = masters
                .iter()
                .map(|m| match m.whereabouts() {
                    Some(w) => format!("pid {}: {} ({w})", m.pid, m.title),
                    None => format!("pid {}: {}", m.pid, m.title),
                })
                .collect();
            let i = prompter.select(
                "Several nginx masters run. Which one answers 502?",
                &items,
                0,
            )?;
            options.master_pid = masters.get(i).map(|m| m.pid);
            Engine::new(options.clone()).await?
        }
        Err(e) => {
            pb.finish_and_clear();
            return Err(e.into());
        }
    };
    pb.finish_and_clear();
    render::header(out, &engine.report())?;
    match walk(&mut engine, &options, prompter, out, page, spinners).await {
        // q or Esc: what ran so far, and its verdict.
        Err(e) if e.downcast_ref::<Quit>().is_some() => {
            writeln!(out, "\nStopped (q).")?;
            let report = engine.report();
            writeln!(out, "{}", console::style(render::verdict(&report)).bold())?;
            Ok(report)
        }
        done => done,
    }
}

/// The steps, the diagnosis and the restart step, asking as it goes.
async fn walk(
    engine: &mut Engine,
    options: &Options,
    prompter: &mut dyn Prompter,
    out: &mut dyn Write,
    page: &Page,
    spinners: bool,
) -> Result<Report> {
    let mut pending: Vec<StepId> = StepId::ALL
        .into_iter()
        .filter(|s| *s != StepId::Restart && options.wants(*s))
        .collect();
    let mut asked_replay = false;
    let mut turns = 0;
    // Each turn runs a step; the person may run steps again, so the turns are counted.
    while let Some(step) = pending.first().copied() {
        turns += 1;
        if turns > MAX_TURNS {
            break;
        }
        pending.retain(|s| *s != step);
        let pb = spinner(
            page.line(
                &format!(
                    "Step {}/5: {}… ({})",
                    number(step),
                    step.title(),
                    waiting_on(step, engine)
                ),
                SPINNER_ROOM,
            ),
            spinners,
        );
        let report = engine.run_step(step).await.clone();
        pb.finish_and_clear();
        render::step_block(out, page, &report)?;
        if step == StepId::Logs
            && let Some(t) = engine.timeline()
        {
            render::timeline_block(out, page, t)?;
        }
        out.flush()?;
        if step == StepId::Logs && pending.contains(&StepId::Upstream) && !asked_replay {
            asked_replay = true;
            ask_replay(engine, prompter, out).await?;
        }
        if pending.is_empty() {
            break;
        }
        let hint = report.next.as_ref().and_then(|n| n.step);
        let choices = step_list(&pending, engine, hint);
        let labels: Vec<String> = choices.iter().map(|(l, _)| l.clone()).collect();
        let picked = prompter.select("What next?", &labels, 0)?;
        match choices.get(picked).map(|(_, c)| *c).unwrap_or(Choice::Stop) {
            Choice::Step(s) => {
                pending.retain(|p| *p != s);
                pending.insert(0, s);
            }
            Choice::Diagnose => break,
            Choice::Stop => {
                let report = engine.report();
                writeln!(out, "\n{}", render::verdict(&report))?;
                return Ok(report);
            }
        }
    }

    if let Some(change) = engine.nginx_changed() {
        writeln!(
            out,
            "\n{} nginx changed while the steps ran: {change}.",
            console::style("Note:").bold()
        )?;
        if prompter.confirm("Run the steps again on the nginx running now?", true)? {
            let pb = spinner("Checking again…".to_owned(), spinners);
            engine.recheck(&change).await?;
            pb.finish_and_clear();
            for report in engine.steps() {
                render::step_block(out, page, report)?;
            }
        }
    }
    engine.follow_the_chain().await;
    render::diagnosis_block(out, page, engine.diagnosis())?;
    if options.wants(StepId::Restart) && !options.dry_run {
        until_the_config_passes(engine, prompter, out, page, spinners).await?;
    }
    if options.wants(StepId::Restart) {
        let started = Instant::now();
        let plan = engine.plan().await;
        let mut applied = Vec::new();
        if plan.is_empty() {
            writeln!(
                out,
                "\n{} no safe automatic action; the fixes above need a person.",
                console::style("Restart:").bold()
            )?;
        }
        for action in &plan {
            writeln!(
                out,
                "\n{} {} — {}",
                console::style("Restart:").bold(),
                action.title(),
                action.why
            )?;
            let question = match action.kind.file_edit() {
                Some((edit, check)) => {
                    writeln!(out, "  the change:")?;
                    for line in edit.diff().lines() {
                        writeln!(out, "    {line}")?;
                    }
                    let tester = match &action.kind {
                        ActionKind::EditApp(app) => {
                            if let Some(test) = &app.app.test {
                                writeln!(out, "  tested by: {}", test.join(" "))?;
                            }
                            format!("{}'s own test", app.app.name)
                        }
                        _ => "nginx -t".to_owned(),
                    };
                    writeln!(out, "  then: {}", action.command())?;
                    writeln!(out, "  proven by: {}", check.words())?;
                    format!(
                        "Make this change now (journalled, {tester} first, reloaded, proven through nginx, undone on failure)?"
                    )
                }
                _ => {
                    writeln!(out, "  command: {}", action.command())?;
                    format!(
                        "Run `{}` now (nginx -t first, verified after)?",
                        action.command()
                    )
                }
            };
            // `--apply` answers for nginx's side only: another service's needs this yes.
            let go = !options.dry_run
                && ((options.apply && !action.kind.needs_yes())
                    || prompter.confirm(&question, false)?);
            if go {
                let pb = spinner(
                    page.line(&format!("{}…", action.title()), SPINNER_ROOM),
                    spinners,
                );
                let f = engine.apply(action).await;
                pb.finish_and_clear();
                writeln!(out, "  {}", f.message)?;
                for e in &f.evidence {
                    writeln!(out, "    {e}")?;
                }
                applied.push(f);
            }
        }
        engine
            .record_restart(&plan, applied, started.elapsed().as_millis() as u64)
            .await;
    }
    let report = engine.report();
    writeln!(out, "\n{}", console::style(render::verdict(&report)).bold())?;
    Ok(report)
}

/// How many times the wizard tests a config the person fixed before it goes on.
const CONFIG_ROUNDS: usize = 3;

/// `config-invalid`: nothing is reloaded while `nginx -t` fails, and fix502 does not edit a
/// config it cannot parse back. The person fixes the file; on their word the steps that ran
/// run again on the config as it is now (at most [`CONFIG_ROUNDS`] times), and once `nginx
/// -t` passes the restart step plans the reload as for any config that differs from the one
/// the workers run.
async fn until_the_config_passes(
    engine: &mut Engine,
    prompter: &mut dyn Prompter,
    out: &mut dyn Write,
    page: &Page,
    spinners: bool,
) -> Result<()> {
    let invalid = |e: &Engine| {
        e.diagnosis()
            .iter()
            .any(|d| d.cause == fix502_core::causes::Cause::CONFIG_INVALID)
    };
    for _ in 0..CONFIG_ROUNDS {
        if !invalid(engine) {
            break;
        }
        writeln!(
            out,
            "\n{} nginx -t fails on the config on disk, so nothing is reloaded or restarted: fix the file:line above in your editor, then test it here.",
            console::style("Restart:").bold()
        )?;
        if !prompter.confirm(
            "I have fixed the config: run nginx -t and check again?",
            false,
        )? {
            break;
        }
        let pb = spinner("Checking again…".to_owned(), spinners);
        engine.run_again().await?;
        pb.finish_and_clear();
        if let Some(report) = engine.steps().iter().find(|s| s.step == StepId::Config) {
            render::step_block(out, page, report)?;
        }
        if invalid(engine) {
            writeln!(out, "  nginx -t still fails.")?;
        } else {
            writeln!(out, "  nginx -t passes now.")?;
            render::diagnosis_block(out, page, engine.diagnosis())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_page() -> Page {
        Page::new(Some(100), render::Detail::Normal)
    }

    fn scripted(selects: &[&'static str], confirms: &[bool]) -> ScriptedPrompter {
        ScriptedPrompter {
            selects: selects.iter().copied().collect(),
            confirms: confirms.iter().copied().collect(),
        }
    }

    fn lab_options(lab: &fix502_lab::Lab) -> Options {
        Options {
            config: Some(lab.config().to_path_buf()),
            nginx: Some(lab.nginx_binary().to_path_buf()),
            ..Options::default()
        }
    }

    #[tokio::test]
    async fn state_machine_continue_jump_and_stop() {
        let lab = fix502_lab::Lab::start("refused", &fix502_lab::LabOptions::default())
            .expect("lab (needs nginx)");
        // Continue through every step: all four check steps run, then the restart step.
        let mut out = Vec::new();
        let report = run(
            lab_options(&lab),
            &mut scripted(&["Continue", "Continue", "Continue"], &[]),
            &mut out,
            &test_page(),
            false,
        )
        .await
        .unwrap();
        assert!(report.steps.iter().all(|s| s.status != StepStatus::Skipped));
        assert_eq!(report.diagnosis[0].cause.id(), "upstream-refused");
        // "Show the diagnosis now" right after the logs: later steps are skipped.
        let mut out = Vec::new();
        let report = run(
            lab_options(&lab),
            &mut scripted(&["Show the diagnosis"], &[]),
            &mut out,
            &test_page(),
            false,
        )
        .await
        .unwrap();
        let statuses: Vec<_> = report.steps.iter().map(|s| s.status).collect();
        assert_eq!(statuses[1], StepStatus::Skipped);
        assert_eq!(report.diagnosis[0].cause.id(), "upstream-refused");
        // "Stop here": no restart step, verdict printed.
        let mut out = Vec::new();
        let report = run(
            lab_options(&lab),
            &mut scripted(&["Stop here"], &[]),
            &mut out,
            &test_page(),
            false,
        )
        .await
        .unwrap();
        assert_eq!(report.steps[4].status, StepStatus::Skipped);
        assert!(String::from_utf8_lossy(&out).contains("Likely cause: upstream-refused"));
        lab.stop().unwrap();
    }

    #[tokio::test]
    async fn a_logged_request_is_re_sent_only_after_a_yes() {
        let lab = fix502_lab::Lab::start("healthy", &fix502_lab::LabOptions::default())
            .expect("lab (needs nginx)");
        let upstream = lab.expected_upstream().expect("the app's address");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("error.log");
        let now = jiff::ZonedDateTime::now().strftime("%Y/%m/%d %H:%M:%S");
        std::fs::write(
            &log,
            format!("{now} [error] 7#7: *3 upstream prematurely closed connection while reading response header from upstream, client: 127.0.0.1, server: lab.fix502.test, request: \"GET /orders?id=7 HTTP/1.1\", upstream: \"http://{upstream}/orders?id=7\", host: \"lab.fix502.test\"\n"),
        )
        .unwrap();
        for agree in [false, true] {
            let before = lab.requests_seen().len();
            let mut out = Vec::new();
            let options = Options {
                error_logs: vec![log.clone()],
                ..lab_options(&lab)
            };
            run(
                options,
                &mut scripted(&["Continue", "Continue", "Continue"], &[agree, false]),
                &mut out,
                &test_page(),
                false,
            )
            .await
            .unwrap();
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains("GET /orders?id=… HTTP/1.1"), "{text}");
            let resent = lab.requests_seen()[before..]
                .iter()
                .any(|line| line.starts_with("GET /orders?id=7 "));
            assert_eq!(resent, agree, "agreed: {agree}");
        }
        lab.stop().unwrap();
    }

    /// Reloads the lab's nginx when the user is first asked what next (between steps), and
    /// records the yes/no questions.
    struct ReloadingPrompter {
        inner: ScriptedPrompter,
        master: u32,
        reloaded: bool,
        asked: Vec<String>,
    }

    impl Prompter for ReloadingPrompter {
        fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize> {
            if !self.reloaded {
                self.reloaded = true;
                let pid = nix::unistd::Pid::from_raw(self.master as i32);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)?;
                // The new workers are there within moments.
                std::thread::sleep(Duration::from_millis(300));
            }
            self.inner.select(prompt, items, default)
        }

        fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool> {
            self.asked.push(prompt.to_owned());
            self.inner.confirm(prompt, default)
        }
    }

    #[tokio::test]
    async fn a_reload_between_steps_is_said_and_checked_again() {
        let lab = fix502_lab::Lab::start("refused", &fix502_lab::LabOptions::default())
            .expect("lab (needs nginx)");
        let mut prompter = ReloadingPrompter {
            inner: scripted(&["Continue", "Continue", "Continue"], &[true]),
            master: lab.master_pid().expect("the lab's nginx runs"),
            reloaded: false,
            asked: Vec::new(),
        };
        let mut out = Vec::new();
        let report = run(
            lab_options(&lab),
            &mut prompter,
            &mut out,
            &test_page(),
            false,
        )
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains(
                "Note: nginx changed while the steps ran: nginx's workers changed (pids "
            ),
            "{text}"
        );
        assert_eq!(
            prompter.asked.first().map(String::as_str),
            Some("Run the steps again on the nginx running now?")
        );
        let config = report
            .steps
            .iter()
            .find(|s| s.step == StepId::Config)
            .unwrap();
        assert!(
            config.findings[0]
                .message
                .starts_with("nginx changed while fix502 was looking at it"),
            "{:?}",
            config.findings[0]
        );
        assert_eq!(report.diagnosis[0].cause.id(), "upstream-refused");
        lab.stop().unwrap();
    }

    #[tokio::test]
    async fn declining_an_action_changes_nothing() {
        let lab = fix502_lab::Lab::start("nginx-not-running", &fix502_lab::LabOptions::default())
            .expect("lab (needs nginx)");
        let mut out = Vec::new();
        let report = run(
            lab_options(&lab),
            &mut scripted(&["Continue", "Continue", "Continue"], &[false]),
            &mut out,
            &test_page(),
            false,
        )
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Restart: Start nginx"), "{text}");
        assert!(
            lab.master_pid()
                .is_none_or(|pid| !fix502_lab::process_running(pid))
        );
        assert_eq!(report.exit_status().code(), 1);
        lab.stop().unwrap();
    }
}
