//! The engine: one run of fix502, step by step (the wizard drives it) or all at once
//! ([`Engine::run_all`], for scripts and library users). It owns the facts, the step reports,
//! the diagnosis and the timeline of the window, and builds the [`Report`].

use fix502_probe::netns::within;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::chain;

use crate::bundle::{Opened, ReadError, open_bundle};
use crate::diagnosis::diagnose;
use crate::discovery::{DiscoveryError, discover};
use crate::facts::Facts;
use crate::lock::ActingLock;
use crate::offline::Offline;
use crate::options::Options;
use crate::report::{
    ActionRecord, ActionStatus, Diagnosis, Finding, OfflineInfo, Report, SCHEMA_VERSION, StepId,
    StepReport,
};
use crate::steps::restart::{self, Action};
use crate::steps::run_step;
use crate::timeline::{self, Events, Timeline};

/// One diagnosis run.
#[derive(Debug)]
pub struct Engine {
    facts: Facts,
    steps: Vec<StepReport>,
    diagnosis: Vec<Diagnosis>,
    timeline: Option<Timeline>,
    /// Held from the first action this run applies to its end: one actor at a time.
    lock: Option<ActingLock>,
    /// The actions applied so far, with what became of each.
    applied: Vec<(Action, restart::Outcome)>,
    /// The fifth step's actions as the report lists them.
    actions: Vec<ActionRecord>,
    /// When the last action was done: the checks run again afterwards look at nothing older
    /// (what an app server logs while it reloads is the reload's own).
    last_applied: Option<Instant>,
}

impl Engine {
    /// Discovers nginx and loads the config.
    pub async fn new(options: Options) -> Result<Self, DiscoveryError> {
        if let Some(bundle) = options.from.clone() {
            return Ok(Self::from_bundle(&bundle, options)?);
        }
        let discovery = discover(&options).await?;
        Ok(Self::with_facts(Facts::new(options, discovery)))
    }

    /// An engine on the bundle at `path` (written by `fix502 collect`) instead of the live
    /// host: its recorded nginx, config and log windows, and what the live run measured
    /// (docs/bundle.md). It reads nothing of this host, runs nothing and probes nothing; it
    /// never acts. The window and `--url` are the bundle's: `options.since` and
    /// `options.url` are replaced by them.
    pub fn from_bundle(path: &std::path::Path, options: Options) -> Result<Self, ReadError> {
        let Opened {
            manifest,
            mut recorded,
            dir,
            root,
            docker_root,
        } = open_bundle(path)?;
        let damaged = |why: String| ReadError::NotABundle {
            path: path.display().to_string(),
            why,
        };
        let now = recorded
            .clock()
            .ok_or_else(|| damaged(format!("its recorded time {} is not a time", recorded.now)))?;
        let origin = OfflineInfo {
            bundle: path.display().to_string(),
            host: manifest.host.clone(),
            collected_at: manifest.collected_at.clone(),
            fix502_version: manifest.fix502_version.clone(),
        };
        let options = Options {
            since: Duration::from_secs(manifest.since_seconds),
            url: manifest.url.clone(),
            config: Some(recorded.discovery.config.clone()),
            apply: false,
            dry_run: true,
            replay_logged: false,
            master_pid: None,
            ..options
        };
        let offline = Offline::new(
            origin,
            now,
            std::mem::take(&mut recorded.findings),
            std::mem::take(&mut recorded.actions),
            dir,
            root,
        );
        let facts = Facts::from_record(options, recorded, offline)
            .map_err(damaged)?
            .with_docker_root(&docker_root);
        Ok(Self::with_facts(facts))
    }

    fn with_facts(facts: Facts) -> Self {
        Self {
            facts,
            steps: Vec::new(),
            diagnosis: Vec::new(),
            timeline: None,
            lock: None,
            applied: Vec::new(),
            actions: Vec::new(),
            last_applied: None,
        }
    }

    /// The shared facts.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Lets the upstream step re-send each upstream's logged GET or HEAD request as nginx
    /// sent it ([`Facts::replayable_requests`]), after the user agreed. It takes effect when
    /// the upstream step has not spoken to the upstreams yet.
    pub fn allow_replay(&mut self) {
        self.facts.options.replay_logged = true;
    }

    /// Runs one of the first four steps (again, if it ran before) and returns its report.
    pub async fn run_step(&mut self, step: StepId) -> &StepReport {
        self.run_step_alone(step).await;
        self.rediagnose().await;
        self.steps
            .iter()
            .find(|s| s.step == step)
            .unwrap_or_else(|| unreachable!("just pushed"))
    }

    /// [`Self::run_step`] without the diagnosis that follows it: a run of several steps
    /// without asking diagnoses once, after the last ([`Self::rediagnose`]).
    async fn run_step_alone(&mut self, step: StepId) {
        let ns = self.facts.standpoint().ns();
        let report = within(ns, run_step(step, &self.facts)).await;
        self.steps.retain(|s| s.step != step);
        self.steps.push(report);
        self.steps.sort_by_key(|s| s.step);
        if step == StepId::Logs {
            self.timeline = timeline_of(&self.facts).await;
        }
    }

    /// Ranks the causes of the step reports so far.
    async fn rediagnose(&mut self) {
        let ns = self.facts.standpoint().ns();
        self.diagnosis = within(ns, diagnose(&self.steps, &self.facts)).await;
    }

    /// The step reports so far.
    pub fn steps(&self) -> &[StepReport] {
        &self.steps
    }

    /// The per-minute shape of the problem over the window (after the logs step).
    pub fn timeline(&self) -> Option<&Timeline> {
        self.timeline.as_ref()
    }

    /// The ranked causes from the steps run so far.
    pub fn diagnosis(&self) -> &[Diagnosis] {
        &self.diagnosis
    }

    /// The restart step's plan for the current diagnosis.
    pub async fn plan(&self) -> Vec<Action> {
        if self.facts.offline().is_some() {
            // A bundle is not a host to act on: the live run's plan is in the report.
            return Vec::new();
        }
        let ns = self.facts.standpoint().ns();
        within(ns, restart::plan(&self.facts, &self.diagnosis)).await
    }

    /// Applies one planned action (gated, verified, rolled back on failure). The first
    /// action takes the host's acting lock, waiting for another acting fix502 run to finish,
    /// and the run keeps it to its end; the action is checked again under the lock.
    pub async fn apply(&mut self, action: &Action) -> Finding {
        if self.lock.is_none() {
            match tokio::task::spawn_blocking(|| ActingLock::acquire(crate::lock::WAIT)).await {
                Ok(Ok(lock)) => self.lock = Some(lock),
                Ok(Err(why)) => return restart::not_applied(action, &why),
                Err(e) => return restart::not_applied(action, &e.to_string()),
            }
        }
        let ns = self.facts.standpoint().ns();
        let outcome = within(ns, restart::apply(&self.facts, action)).await;
        self.last_applied = Some(Instant::now());
        let finding = outcome.finding.clone();
        self.applied.push((action.clone(), outcome));
        finding
    }

    /// The live checks (config, upstream, network) run again on what runs now, looking at
    /// nothing older than the last action: what they still diagnose, or why they could not
    /// run.
    async fn diagnosed_again(&self) -> Result<Vec<Diagnosis>, String> {
        let live = [StepId::Config, StepId::Upstream, StepId::Network];
        let mut options = self.facts.options.clone();
        options.steps = live.to_vec();
        options.apply = false;
        options.since = self
            .last_applied
            .map_or(Duration::ZERO, |t| t.elapsed())
            .max(Duration::from_millis(100));
        let mut fresh = Self::new(options).await.map_err(|e| e.to_string())?;
        for step in live {
            fresh.run_step(step).await;
        }
        Ok(fresh.diagnosis)
    }

    /// Records the restart step: the plan and what was applied. An action verified through
    /// nginx fixes its cause only when the checks that found it, run again, find it no more.
    pub async fn record_restart(
        &mut self,
        plan: &[Action],
        applied: Vec<Finding>,
        duration_ms: u64,
    ) {
        if let Some(offline) = self.facts.offline() {
            self.actions = offline.actions.clone();
            let findings = offline.findings_of(restart::PLAN_CHECK);
            self.set_restart_step(findings, duration_ms);
            return;
        }
        let mut findings = restart::plan_findings(plan, &self.diagnosis, !applied.is_empty());
        findings.extend(applied);
        // Each planned action once: what became of it when it was applied, else planned.
        self.actions = plan
            .iter()
            .map(
                |a| match self.applied.iter().rev().find(|(done, _)| done == a) {
                    Some((_, o)) => ActionRecord {
                        journal_id: o.journal_id.clone(),
                        backup: o.backup.clone(),
                        ..a.record(o.status)
                    },
                    None => a.record(ActionStatus::Planned),
                },
            )
            .collect();
        // The verdict follows the state after the fix: a cause an action fixed and verified
        // is no longer diagnosed; the restart step says it was fixed.
        let mut fixed: Vec<Action> = self
            .applied
            .iter()
            .filter(|(_, o)| o.status == ActionStatus::Verified)
            .map(|(a, _)| a.clone())
            .collect();
        let addresses = |a: &Action, d: &Diagnosis| {
            a.cause == d.cause && (a.upstream.is_none() || a.upstream == d.upstream)
        };
        if !fixed.is_empty() {
            match self.diagnosed_again().await {
                Ok(again) => fixed.retain(|a| {
                    let still = again.iter().find(|d| addresses(a, d));
                    if let Some(d) = still {
                        findings.push(
                            Finding::new(
                                restart::APPLY_CHECK,
                                crate::report::Severity::Warning,
                                format!(
                                    "{}: nginx no longer answers 502 to the proving request, but the checks run again still find {}",
                                    a.title(),
                                    d.cause.id()
                                ),
                            )
                            .cause(a.cause)
                            .evidence(d.summary.clone()),
                        );
                    }
                    still.is_none()
                }),
                Err(why) => findings.push(Finding::new(
                    restart::APPLY_CHECK,
                    crate::report::Severity::Warning,
                    format!("the checks could not run again after the fix: {why}"),
                )),
            }
        }
        let before = self.diagnosis.len();
        self.diagnosis
            .retain(|d| !fixed.iter().any(|a| addresses(a, d)));
        if self.diagnosis.len() < before {
            findings.push(Finding::new(
                restart::APPLY_CHECK,
                crate::report::Severity::Info,
                format!(
                    "fixed and verified: {}; {}",
                    fixed
                        .iter()
                        .map(|a| a.cause.id())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if self.diagnosis.is_empty() {
                        "no diagnosed problem remains".to_owned()
                    } else {
                        format!("{} diagnosed problem(s) remain", self.diagnosis.len())
                    }
                ),
            ));
        }
        findings.iter_mut().for_each(crate::redact::finding);
        self.set_restart_step(findings, duration_ms);
    }

    /// Puts the restart step's report in place.
    fn set_restart_step(&mut self, findings: Vec<Finding>, duration_ms: u64) {
        self.steps.retain(|s| s.step != StepId::Restart);
        self.steps.push(StepReport {
            step: StepId::Restart,
            status: StepReport::status_of(&findings),
            duration_ms,
            findings,
            next: None,
        });
        self.steps.sort_by_key(|s| s.step);
    }

    /// The report of everything run so far; steps not run are `skipped`.
    pub fn report(&self) -> Report {
        let steps = StepId::ALL
            .into_iter()
            .map(|id| {
                self.steps
                    .iter()
                    .find(|s| s.step == id)
                    .cloned()
                    .unwrap_or_else(|| StepReport::skipped(id))
            })
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            fix502_version: env!("CARGO_PKG_VERSION").to_owned(),
            generated_at: now_rfc3339(),
            nginx: self.facts.nginx_info(),
            steps,
            diagnosis: self.diagnosis.clone(),
            timeline: self.timeline.clone(),
            actions: self.actions.clone(),
            offline: self.facts.offline().map(|o| o.origin.clone()),
        }
    }

    /// What changed in nginx's processes since this run found them: its master exited (or
    /// its pid is another process now), or its workers are not the same ones (a reload, or
    /// workers that died and were replaced). `None` when nothing did, or nginx did not run.
    pub fn nginx_changed(&self) -> Option<String> {
        if self.facts.offline().is_some() {
            return None;
        }
        self.facts
            .discovery
            .master
            .as_ref()
            .and_then(crate::discovery::changes_since)
    }

    /// Starts over after nginx changed mid-run (`change` says how): finds nginx again, runs
    /// the steps that ran once more on the processes there are now, and says so in the
    /// report. Fails with [`DiscoveryError::Unsettled`] when nginx changes again meanwhile.
    pub async fn recheck(&mut self, change: &str) -> Result<(), DiscoveryError> {
        let fresh = self.fresh_run().await?;
        if let Some(again) = fresh.nginx_changed() {
            return Err(DiscoveryError::Unsettled(change.to_owned(), again));
        }
        *self = fresh;
        let note = Finding::new(
            crate::steps::config::PROCESS,
            crate::report::Severity::Info,
            format!(
                "nginx changed while fix502 was looking at it ({change}): every step was run again on the processes running now"
            ),
        );
        let at = self
            .steps
            .iter()
            .position(|s| s.step == StepId::Config)
            .unwrap_or(0);
        if let Some(report) = self.steps.get_mut(at) {
            report.findings.insert(0, note);
        }
        Ok(())
    }

    /// Looks again from the start (the person changed something: the config on disk, a
    /// service): finds nginx and reads its config anew, and runs the steps that ran once
    /// more. The acting lock, if held, is kept.
    pub async fn run_again(&mut self) -> Result<(), DiscoveryError> {
        *self = self.fresh_run().await?;
        Ok(())
    }

    /// A new engine on what runs now that has run the steps this one ran, holding its lock.
    async fn fresh_run(&mut self) -> Result<Self, DiscoveryError> {
        let ran: Vec<StepId> = self
            .steps
            .iter()
            .map(|s| s.step)
            .filter(|s| *s != StepId::Restart)
            .collect();
        let mut options = self.facts.options.clone();
        // A master chosen by pid that is gone cannot be chosen again.
        if options
            .master_pid
            .is_some_and(|pid| !std::path::Path::new("/proc").join(pid.to_string()).exists())
        {
            options.master_pid = None;
        }
        let mut fresh = Self::new(options).await?;
        fresh.lock = self.lock.take();
        for step in ran {
            fresh.run_step_alone(step).await;
        }
        fresh.rediagnose().await;
        Ok(fresh)
    }

    /// Runs every selected step without asking; acts only when `options.apply` is set. When
    /// nginx's processes change while the steps run, they run once more ([`Self::recheck`]).
    pub async fn run_all(options: Options) -> Result<Report, DiscoveryError> {
        Self::new(options).await?.run_to_the_end().await
    }

    /// Runs every selected step of this engine without asking, as [`Self::run_all`] does
    /// (on a bundle's engine too, [`Self::from_bundle`]).
    pub async fn run_to_the_end(self) -> Result<Report, DiscoveryError> {
        let mut engine = self;
        for step in StepId::ALL {
            if step != StepId::Restart && engine.facts.options.wants(step) {
                engine.run_step_alone(step).await;
            }
        }
        engine.rediagnose().await;
        if let Some(change) = engine.nginx_changed() {
            engine.recheck(&change).await?;
        }
        engine.follow_the_chain().await;
        if engine.facts.options.wants(StepId::Restart) {
            let started = Instant::now();
            let plan = engine.plan().await;
            let mut applied = Vec::new();
            if engine.facts.options.apply && !engine.facts.options.dry_run {
                // Another service's side waits for a yes in the wizard: planned only.
                for action in plan.iter().filter(|a| !a.kind.needs_yes()) {
                    applied.push(engine.apply(action).await);
                }
            }
            engine
                .record_restart(&plan, applied, started.elapsed().as_millis() as u64)
                .await;
        }
        Ok(engine.report())
    }
}

impl Engine {
    /// Follows the chain behind an `upstream-returned-502` whose address another nginx
    /// master on this host listens on, and names the real failing hop in this run's
    /// diagnosis, at most three nginx deep and never the same master twice. Costs nothing when no diagnosis is
    /// `upstream-returned-502`. [`Self::run_all`] does it after the steps; the wizard, before
    /// it shows the diagnosis.
    pub async fn follow_the_chain(&mut self) {
        if self.facts.offline().is_some() {
            // The other nginx masters of the host are not in the bundle.
            return;
        }
        let seen: Vec<u32> = self.facts.discovery.master.iter().map(|m| m.pid).collect();
        self.follow_chain(seen, 0).await;
    }

    /// Follows the chain behind an `upstream-returned-502` diagnosis whose address is a
    /// listener of another nginx master: runs the engine for that nginx (read-only, no
    /// restart step) and words what it finds into this run's diagnosis ([`chain`]). At most
    /// [`chain::MAX_HOPS`] deep; `seen` holds the masters already diagnosed, never run twice.
    fn follow_chain(
        &mut self,
        mut seen: Vec<u32>,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = Vec<u32>> + Send + '_>> {
        Box::pin(async move {
            if depth >= chain::MAX_HOPS {
                return seen;
            }
            for hop in chain::next_hops(&self.facts, &self.diagnosis, &seen).await {
                if seen.contains(&hop.pid) {
                    continue;
                }
                seen.push(hop.pid);
                let mut other = match Self::new(hop.options).await {
                    Ok(other) => other,
                    Err(e) => {
                        if let Some(d) = self.diagnosis.get_mut(hop.index) {
                            chain::not_followed(d, hop.pid, &e.to_string());
                        }
                        continue;
                    }
                };
                for step in StepId::ALL {
                    if step != StepId::Restart && other.facts.options.wants(step) {
                        other.run_step(step).await;
                    }
                }
                seen = other.follow_chain(seen, depth + 1).await;
                let info = other.facts.nginx_info();
                if let Some(d) = self.diagnosis.get_mut(hop.index) {
                    chain::annotate(d, &info, &other.diagnosis);
                }
            }
            seen
        })
    }
}

/// The report of a run that could not start: nginx could not be found or chosen (`why`).
/// Every selected step is `error` with a finding of the check `discovery` saying so, and
/// the others `skipped`, so that `--json` still prints one document, and it exits 3.
pub fn not_started(options: &Options, why: &str) -> Report {
    let steps = StepId::ALL
        .into_iter()
        .map(|step| {
            if !options.wants(step) {
                return StepReport::skipped(step);
            }
            let check =
                crate::report::CheckId::new("discovery", step, crate::report::Evidence::Config);
            let findings = vec![Finding::could_not_check(
                check,
                format!("not checked: {why}"),
            )];
            StepReport {
                step,
                status: StepReport::status_of(&findings),
                duration_ms: 0,
                findings,
                next: None,
            }
        })
        .collect();
    Report {
        schema_version: SCHEMA_VERSION,
        fix502_version: env!("CARGO_PKG_VERSION").to_owned(),
        generated_at: now_rfc3339(),
        nginx: crate::report::NginxInfo::default(),
        steps,
        diagnosis: Vec::new(),
        timeline: None,
        actions: Vec::new(),
        offline: None,
    }
}

/// The timeline of this run's window: 502 and 504 per minute from the access logs, and each
/// cause of the error-log groups per minute.
async fn timeline_of(facts: &Facts) -> Option<Timeline> {
    let start = facts.window_start()?;
    let end = facts.now().datetime();
    let mut events: Vec<Events> = Vec::new();
    let mut add = |name: &str, source: &str, minute, n: u64| match events
        .iter_mut()
        .find(|e| e.name == name && e.source == source)
    {
        Some(e) => *e.per_minute.entry(minute).or_default() += n,
        None => events.push(Events {
            name: name.to_owned(),
            source: source.to_owned(),
            per_minute: BTreeMap::from([(minute, n)]),
        }),
    };
    for read in facts.access_reads().await {
        let Ok(report) = &read.report else { continue };
        for m in &report.per_minute {
            add("502", "access-log", m.minute, m.status_502);
            add("504", "access-log", m.minute, m.status_504);
        }
    }
    for read in facts.logs().await {
        let Ok(summary) = &read.summary else { continue };
        for g in &summary.groups {
            let Some(cause) = crate::causes::of_group(g) else {
                continue;
            };
            for (minute, n) in &g.per_minute {
                add(cause.id(), "error-log", *minute, *n);
            }
        }
    }
    timeline::build(start, end, &events)
}

/// Now, as RFC 3339 UTC to the second.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", now).unwrap_or_else(|_| now.to_string())
}
