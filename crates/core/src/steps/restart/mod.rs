//! Step 5, restart: turn the diagnosis into a plan of safe actions, each shown as the exact
//! command or, for an edit, as a unified diff: start or reload nginx (`nginx-not-running`,
//! `config-not-reloaded`, `no-live-upstreams` once every server answers), the config edits of
//! `edits.rs`, and on another service's side (only after a yes in the wizard, never by
//! `--apply` alone) restarting the upstream's unit and the app server's own config edits of
//! `app.rs`. Acting happens only after an interactive yes or `--apply`, only after `nginx -t`
//! (the app server's own test) passes, and is verified afterwards (new workers, the probes
//! pass, and for an edit the failing request sent again through nginx); an edit is
//! journalled first (`changes.rs`, undone by `fix502 undo`), and a failed verification is
//! rolled back and reported so the run exits 4.
mod app;
mod edits;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fix502_nginx::view::ListenAddr;
use fix502_probe::{connect, listeners};

pub use app::AppEdit;
pub use edits::{CheckRequest, ConfigEdit};

use crate::causes::{Act, Cause};
use crate::changes::{ChangeStatus, Changes, NewChange, NginxTarget};
use crate::command::{run_command, shell_line};
use crate::discovery::{find_masters, master_running, under_prefix, worker_pids};
use crate::facts::{Facts, probe_endpoint};
use crate::report::{
    ActionRecord, ActionStatus, CheckId, Diagnosis, Evidence, Finding, Severity, StepId,
};
use crate::upstream::Upstream;

/// Check id of the plan findings.
pub const PLAN_CHECK: CheckId = CheckId::new("restart.plan", StepId::Restart, Evidence::Action);
/// Check id of the findings about applied actions. An `error` here means exit 4.
pub const APPLY_CHECK: CheckId = crate::report::APPLIED;

const VERIFY_FOR: Duration = Duration::from_secs(5);
/// The confidence a diagnosis needs before the config is edited for it.
const STRONG: f64 = 0.9;
const POLL: Duration = Duration::from_millis(100);

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// Edit nginx's config (shown as a diff), then reload it.
    EditConfig(Box<ConfigEdit>),
    /// Start nginx with this config.
    StartNginx,
    /// Reload the running nginx (new workers, same master).
    ReloadNginx,
    /// Restart a systemd unit of the upstream.
    RestartUnit(String),
    /// Edit the app server's config (shown as a diff), test it, then reload the app server.
    EditApp(Box<AppEdit>),
}

impl ActionKind {
    /// Whether it acts on another service than nginx: then only a yes in the wizard to this
    /// exact diff or command applies it, never `--apply` alone.
    pub fn needs_yes(&self) -> bool {
        matches!(self, Self::RestartUnit(_) | Self::EditApp(_))
    }

    /// The file edit, for an edit of nginx's config or of an app server's.
    pub fn file_edit(&self) -> Option<(&crate::edit::FileEdit, &CheckRequest)> {
        match self {
            Self::EditConfig(e) => Some((&e.edit, &e.check)),
            Self::EditApp(e) => Some((&e.edit, &e.check)),
            _ => None,
        }
    }
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// What it does.
    pub kind: ActionKind,
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Why it helps.
    pub why: String,
    /// The cause it addresses.
    pub cause: Cause,
    /// The upstream whose probe must pass afterwards, if any.
    pub upstream: Option<Upstream>,
    /// The request through nginx that proves a command worked, instead of the upstream's
    /// probe (an edit carries its own).
    pub proof: Option<CheckRequest>,
}

impl Action {
    /// The exact command line.
    pub fn command(&self) -> String {
        shell_line(&self.program, &self.args)
    }

    /// The action as the report's `actions` list writes it, with `status`.
    pub fn record(&self, status: ActionStatus) -> ActionRecord {
        let (kind, target) = match &self.kind {
            ActionKind::EditConfig(e) => ("edit", Some(e.edit.path.display().to_string())),
            ActionKind::StartNginx => ("start", None),
            ActionKind::ReloadNginx => ("reload", None),
            ActionKind::RestartUnit(u) => ("restart-unit", Some(u.clone())),
            ActionKind::EditApp(e) => ("app-reload", Some(e.edit.path.display().to_string())),
        };
        ActionRecord {
            kind: kind.to_owned(),
            target,
            command: Some(self.command()),
            diff: self.kind.file_edit().map(|(e, _)| e.diff()),
            status,
            backup: None,
            journal_id: None,
            why: self.why.clone(),
            cause: Some(self.cause),
        }
    }

    /// A short title: `Start nginx`, `Reload nginx`, `Restart php8.2-fpm.service`.
    pub fn title(&self) -> String {
        match &self.kind {
            ActionKind::EditConfig(e) => format!("Edit {}", e.edit.path.display()),
            ActionKind::StartNginx => "Start nginx".to_owned(),
            ActionKind::ReloadNginx => "Reload nginx".to_owned(),
            ActionKind::RestartUnit(u) => format!("Restart {u}"),
            ActionKind::EditApp(e) => format!("Edit {} ({})", e.edit.path.display(), e.app.name),
        }
    }
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

async fn unit_exists(unit: &str) -> bool {
    systemd_running()
        && run_command(
            Path::new("systemctl"),
            &["cat", unit],
            Duration::from_secs(5),
        )
        .await
        .is_ok_and(|o| o.success)
}

/// The plan for a diagnosis. Only actions that can help and can be verified are planned.
pub async fn plan(facts: &Facts, diagnosis: &[Diagnosis]) -> Vec<Action> {
    let mut actions: Vec<Action> = Vec::new();
    let Some(binary) = facts.discovery.binary.clone() else {
        return actions;
    };
    let config_ok = facts.nginx_test().await.is_ok_and(|o| o.success);
    for d in diagnosis {
        // The cause's own acts (its entry in the cause table), the first that applies.
        for act in d.cause.entry().acts {
            if let Some(action) = plan_act(facts, &binary, config_ok, d, *act).await {
                actions.push(action);
                break;
            }
        }
    }
    actions.dedup_by(|a, b| a.kind == b.kind);
    actions
}

/// The action `act` comes to for diagnosis `d`, when its evidence and its gate allow it:
/// nginx must pass `nginx -t` for every act on nginx, a start needs nginx stopped and a
/// reload or an edit needs it running; a reload for an upstream group waits until every
/// server of it answers; an edit needs a strong diagnosis and the edit `edits.rs` finds.
async fn plan_act(
    facts: &Facts,
    binary: &Path,
    config_ok: bool,
    d: &Diagnosis,
    act: Act,
) -> Option<Action> {
    let running = facts.discovery.master.is_some();
    match act {
        Act::StartNginx if !running && config_ok => {
            let default_config = facts
                .discovery
                .build
                .conf_path
                .as_deref()
                .map(|c| under_prefix(c, facts.discovery.build.prefix.as_deref()));
            let (program, args) = if default_config.as_deref()
                == Some(facts.discovery.config.as_path())
                && unit_exists("nginx.service").await
            {
                (
                    PathBuf::from("systemctl"),
                    vec!["start".to_owned(), "nginx.service".to_owned()],
                )
            } else {
                (binary.to_path_buf(), facts.nginx_args(&[]))
            };
            Some(Action {
                kind: ActionKind::StartNginx,
                program,
                args,
                why: "nginx is not running; its config passes nginx -t".to_owned(),
                cause: d.cause,
                upstream: None,
                proof: None,
            })
        }
        Act::ReloadNginx if running && config_ok => {
            let Some(group) = d.upstream.as_ref().and_then(Upstream::group) else {
                return Some(reload_action(
                    facts,
                    binary,
                    d,
                    "the config on disk passes nginx -t and differs from the one the workers run; a reload makes nginx run it",
                ));
            };
            let members: Vec<_> = facts
                .endpoints
                .iter()
                .filter(|e| e.group.as_deref() == Some(group))
                .collect();
            let mut all_up = !members.is_empty();
            for m in &members {
                all_up &= facts
                    .probe_of(&Upstream::from(&m.peer))
                    .await
                    .is_some_and(|p| p.ok());
            }
            all_up.then(|| reload_action(facts, binary, d, "every server of the group answers now; a reload clears the failure marks at once"))
        }
        Act::RestartUnit => {
            let path = d.upstream.as_ref().and_then(Upstream::unix_path)?;
            let stem = path.file_stem().and_then(|s| s.to_str())?;
            let unit = format!("{stem}.service");
            if !unit_exists(&unit).await {
                return None;
            }
            Some(Action {
                kind: ActionKind::RestartUnit(unit.clone()),
                program: PathBuf::from("systemctl"),
                args: vec!["restart".to_owned(), unit],
                why: format!("{} is created by this service", path.display()),
                cause: d.cause,
                upstream: d.upstream.clone(),
                proof: None,
            })
        }
        Act::EditApp if running && d.confidence >= STRONG => {
            let edit = app::for_diagnosis(facts, d).await?;
            let mut reload = edit.app.reload.clone()?.into_iter();
            let program = PathBuf::from(reload.next()?);
            Some(Action {
                program,
                args: reload.collect(),
                why: format!(
                    "the fix in {}'s own config, then its reload; proven by a request through nginx",
                    edit.app.name
                ),
                kind: ActionKind::EditApp(Box::new(edit)),
                cause: d.cause,
                upstream: d.upstream.clone(),
                proof: None,
            })
        }
        Act::ResolveAgain if running && config_ok && d.confidence >= STRONG => {
            let proof = edits::named_target_proof(facts, d.upstream.as_ref()?).await?;
            Some(Action {
                proof: Some(proof),
                ..reload_action(
                    facts,
                    binary,
                    d,
                    "nginx looked the name up when it read its config; a reload makes it look again",
                )
            })
        }
        Act::EditConfig if running && config_ok && d.confidence >= STRONG => {
            let edit = edits::for_diagnosis(facts, d).await?;
            let reload = reload_action(facts, binary, d, "");
            Some(Action {
                kind: ActionKind::EditConfig(Box::new(edit)),
                why: "the fix in the config, then a reload; proven by a request through nginx"
                    .to_owned(),
                ..reload
            })
        }
        _ => None,
    }
}

fn reload_action(facts: &Facts, binary: &Path, d: &Diagnosis, why: &str) -> Action {
    let unit = facts
        .discovery
        .master
        .as_ref()
        .and_then(|m| listeners::systemd_unit_of(m.pid));
    let (program, args) = match unit {
        Some(u) if systemd_running() => (PathBuf::from("systemctl"), vec!["reload".to_owned(), u]),
        _ => facts
            .nginx_command(&["-s", "reload"])
            .unwrap_or_else(|| (binary.to_path_buf(), facts.nginx_args(&["-s", "reload"]))),
    };
    Action {
        kind: ActionKind::ReloadNginx,
        program,
        args,
        why: why.to_owned(),
        cause: d.cause,
        upstream: d.upstream.clone(),
        proof: None,
    }
}

/// The plan as findings, for a run that does not act.
pub fn plan_findings(plan: &[Action], diagnosis: &[Diagnosis], acting: bool) -> Vec<Finding> {
    if plan.is_empty() {
        let message = if diagnosis.is_empty() {
            "nothing to restart: no problem found".to_owned()
        } else {
            "no safe automatic action: the fixes above need a person (see the diagnosis)".to_owned()
        };
        return vec![Finding::new(PLAN_CHECK, Severity::Info, message)];
    }
    plan.iter()
        .map(|a| {
            let verb = if a.kind.needs_yes() {
                "needs a yes in the wizard (another service than nginx; --apply alone never runs it)"
            } else if acting {
                "will run"
            } else {
                "would run (re-run with --apply, or answer yes in the wizard)"
            };
            let mut f = Finding::new(
                PLAN_CHECK,
                Severity::Info,
                format!("{}: {verb}: {}", a.title(), a.command()),
            )
            .cause(a.cause)
            .evidence(a.why.clone());
            if let Some((edit, _)) = a.kind.file_edit() {
                f = f.evidence(edit.diff());
            }
            if let Some(check) = a.kind.file_edit().map(|(_, c)| c).or(a.proof.as_ref()) {
                f = f.evidence(format!(
                    "then proven by {}: it must not answer 502 or 504",
                    check.words()
                ));
            }
            f.upstream = a.upstream.clone();
            f
        })
        .collect()
}

/// What applying an action came to: its finding, its status, and for an edit, the change in
/// fix502's journal (`fix502 undo ID` reverts it) and the backup of the file.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The finding for the restart step.
    pub finding: Finding,
    /// What became of the action.
    pub status: ActionStatus,
    /// The change's id in the journal, for an edit.
    pub journal_id: Option<String>,
    /// Where the edited file's previous bytes are, for an edit.
    pub backup: Option<String>,
}

impl Outcome {
    /// An action without a journal entry (a command).
    fn of(finding: Finding, status: ActionStatus) -> Self {
        Self {
            status,
            finding,
            journal_id: None,
            backup: None,
        }
    }
}

/// Applies one action (gated, verified, rolled back on failure; see [`apply_command`] and
/// [`apply_edit`]). The caller holds the acting lock.
pub async fn apply(facts: &Facts, action: &Action) -> Outcome {
    match &action.kind {
        ActionKind::EditConfig(edit) => {
            apply_edit(facts, action, &edit.edit, &edit.check, None).await
        }
        ActionKind::EditApp(edit) => {
            apply_edit(facts, action, &edit.edit, &edit.check, Some(edit)).await
        }
        _ => apply_command(facts, action).await,
    }
}

/// An edit of nginx's config (or, with `app`, of an app server's): the journal keeps the
/// file's bytes first, then the edit is written (atomically, at a symlink's target), `nginx
/// -t` (the app server's own test) gates it, nginx (the app server) reloads, and the failing
/// request is sent again through nginx. Any failure puts the old bytes back and reloads
/// again (exit 4).
async fn apply_edit(
    facts: &Facts,
    action: &Action,
    edit: &crate::edit::FileEdit,
    check: &CheckRequest,
    app: Option<&AppEdit>,
) -> Outcome {
    let title = action.title();
    let failed = |why: String| Outcome::of(not_applied(action, &why), ActionStatus::Skipped);
    let Some(binary) = facts.discovery.binary.clone() else {
        return failed("no nginx binary".to_owned());
    };
    let path = &edit.path;
    let new_bytes = match crate::edit::read_text(path).and_then(|t| edit.apply_to(&t)) {
        Ok(text) => text.into_bytes(),
        Err(e) => return failed(e.to_string()),
    };
    let changes = match Changes::open() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot open fix502's journal: {e}")),
    };
    let nginx_gate = facts.nginx_command(&["-t"]);
    let nginx_test = nginx_gate.clone().map(|(program, args)| {
        std::iter::once(program.display().to_string())
            .chain(args)
            .collect()
    });
    let gate = match app {
        None => nginx_gate,
        Some(a) => a.app.test.as_ref().and_then(|t| {
            let (program, args) = t.split_first()?;
            Some((PathBuf::from(program), args.to_vec()))
        }),
    };
    let mut change = match changes.begin(NewChange {
        kind: if app.is_some() { "app-reload" } else { "edit" }.to_owned(),
        cause: Some(action.cause.id().to_owned()),
        nginx: NginxTarget {
            binary,
            prefix: facts.discovery.prefix.clone(),
            config: facts.discovery.config.clone(),
            master_pid: facts.master_pid(),
            test: nginx_test,
        },
        app: app.map(|a| a.app.clone()),
        files: vec![(path.clone(), new_bytes)],
        proof: Some(check.clone()),
    }) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot journal the change: {e}")),
    };
    let journal_id = Some(change.id().to_owned());
    let backup = change.backup_path(0).map(|p| p.display().to_string());
    if let Err(e) = change.apply() {
        return failed(format!("cannot write {}: {e}", path.display()));
    }
    let before_workers = workers_of_the_master(facts);
    let command = action.command();
    let tester = app.map_or("nginx".to_owned(), |a| a.app.name.clone());
    let failure = match gate {
        None if app.is_some() => None,
        None => Some("no nginx binary to test the edit with".to_owned()),
        Some((program, args)) => {
            match run_command(&program, &args, Duration::from_secs(30)).await {
                Ok(o) if o.success => None,
                Ok(o) => Some(format!("{tester} -t rejects the edit: {}", o.stderr.trim())),
                Err(e) => Some(format!("cannot run {tester} -t: {e}")),
            }
        }
    };
    let tested = failure.is_none();
    let failure = match failure {
        Some(f) => Some(f),
        None => {
            drop(change.record_command(&command));
            match run_action(action).await {
                Ok(()) if app.is_some() => check.send_until(facts, app::COME_BACK).await.err(),
                Ok(()) => match verify(facts, action, &before_workers).await {
                    Ok(()) => check.send(facts).await.err(),
                    Err(e) => Some(e),
                },
                Err(e) => Some(e),
            }
        }
    };
    match failure {
        None => {
            drop(change.record_status(ChangeStatus::Verified));
            let id = change.id().to_owned();
            Outcome {
                finding: Finding::new(
                    APPLY_CHECK,
                    Severity::Info,
                    format!("{title}{VERIFIED} (`{command}`; {})", check.words()),
                )
                .cause(action.cause)
                .evidence(edit.diff())
                .evidence(format!(
                    "journal: change {id}; undo it with: fix502 undo {id}"
                )),
                status: ActionStatus::Verified,
                journal_id,
                backup,
            }
        }
        Some(why) => {
            let restored = match change.roll_back() {
                Ok(()) => format!("restored {} from the journal", path.display()),
                Err(e) => format!("could not restore {}: {e}", path.display()),
            };
            // The old config back in the running nginx, once the edit was reloaded.
            let reloaded = if tested {
                match run_action(action).await {
                    Ok(()) => format!("; {tester} reloaded with the old config"),
                    Err(e) => format!("; reloading the old config failed: {e}"),
                }
            } else {
                String::new()
            };
            Outcome {
                finding: Finding::new(
                    APPLY_CHECK,
                    Severity::Error,
                    format!("{title}: failed verification: {why}"),
                )
                .cause(action.cause)
                .evidence(edit.diff())
                .evidence(format!("rollback: {restored}{reloaded}")),
                status: ActionStatus::RolledBack,
                journal_id,
                backup,
            }
        }
    }
}

/// The words of an applied and verified action's finding.
const VERIFIED: &str = ": applied and verified";

/// The finding of an action that was not applied, and why.
pub fn not_applied(action: &Action, why: &str) -> Finding {
    Finding::new(
        APPLY_CHECK,
        Severity::Warning,
        format!("{}: not applied: {why}", action.title()),
    )
    .cause(action.cause)
}

/// A process this run started: its pid and start time, so that undoing it can never stop
/// another process that took the pid over, or one that another actor started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Started {
    pid: u32,
    start_time: u64,
}

impl Started {
    /// Whether the process is still the one this run started.
    fn still_ours(self) -> bool {
        find_masters()
            .iter()
            .any(|m| m.pid == self.pid && m.start_time == self.start_time)
    }
}

/// Applies one command action: check it is still needed, gate on `nginx -t`, run, verify,
/// and roll back what this run did on failure.
async fn apply_command(facts: &Facts, action: &Action) -> Outcome {
    let skipped = |f: Finding| Outcome::of(f, ActionStatus::Skipped);
    let command = action.command();
    // Another actor may have fixed it meanwhile (the plan was made before the lock).
    if action.kind == ActionKind::StartNginx
        && let Some(pid) = master_for(facts)
    {
        return skipped(
            Finding::new(
                APPLY_CHECK,
                Severity::Info,
                format!(
                    "{}: not needed any more: nginx master {pid} runs this config now",
                    action.title()
                ),
            )
            .cause(action.cause),
        );
    }
    if matches!(
        action.kind,
        ActionKind::StartNginx | ActionKind::ReloadNginx
    ) && let Some((program, args)) = facts.nginx_command(&["-t"])
    {
        match run_command(&program, &args, Duration::from_secs(30)).await {
            Ok(o) if o.success => {}
            Ok(o) => {
                return skipped(
                    Finding::new(
                        APPLY_CHECK,
                        Severity::Warning,
                        format!("not applied: nginx -t fails, so `{command}` would fail too"),
                    )
                    .evidence(o.stderr.trim().to_owned()),
                );
            }
            Err(e) => {
                return skipped(Finding::new(
                    APPLY_CHECK,
                    Severity::Warning,
                    format!("not applied: cannot run nginx -t: {e}"),
                ));
            }
        }
    }
    let before_workers = workers_of_the_master(facts);
    let masters_before: Vec<u32> = find_masters().iter().map(|m| m.pid).collect();
    let failure = match run_action(action).await {
        Ok(()) => verify(facts, action, &before_workers).await.err(),
        Err(e) => Some(e),
    };
    // The master this run started, if it started one: new since, and running this config.
    let started = (action.kind == ActionKind::StartNginx)
        .then(|| {
            let d = &facts.discovery;
            let now = find_masters();
            master_running(&now, &d.config, &d.build)
                .filter(|m| !masters_before.contains(&m.pid))
                .map(|m| Started {
                    pid: m.pid,
                    start_time: m.start_time,
                })
        })
        .flatten();
    match failure {
        None => Outcome::of(
            Finding::new(
                APPLY_CHECK,
                Severity::Info,
                format!("{}{VERIFIED} (`{command}`)", action.title()),
            )
            .cause(action.cause),
            ActionStatus::Verified,
        ),
        Some(why) => {
            let rollback = rollback(action, started).await;
            Outcome::of(
                Finding::new(
                    APPLY_CHECK,
                    Severity::Error,
                    format!("{}: failed verification: {why}", action.title()),
                )
                .cause(action.cause)
                .evidence(format!("ran: {command}"))
                .evidence(format!("rollback: {rollback}")),
                ActionStatus::RolledBack,
            )
        }
    }
}

/// The workers of the master found at the start of the run (empty when none runs): a
/// reload is verified by their replacement.
fn workers_of_the_master(facts: &Facts) -> Vec<u32> {
    facts
        .discovery
        .master
        .as_ref()
        .map(|m| worker_pids(m.pid))
        .unwrap_or_default()
}

/// Runs the action's command (bounded); `Err` says how it failed, in one line.
async fn run_action(action: &Action) -> Result<(), String> {
    match run_command(&action.program, &action.args, Duration::from_secs(30)).await {
        Ok(o) if o.success => Ok(()),
        Ok(o) => Err(format!(
            "`{}` failed: {}",
            action.command(),
            o.stderr.trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

async fn verify(facts: &Facts, action: &Action, before_workers: &[u32]) -> Result<(), String> {
    let deadline = Instant::now() + VERIFY_FOR;
    // 1. The processes.
    match &action.kind {
        ActionKind::StartNginx => loop {
            let running = master_for(facts).is_some_and(|pid| !worker_pids(pid).is_empty());
            if running {
                break;
            }
            if Instant::now() >= deadline {
                return Err("no nginx master with workers appeared".to_owned());
            }
            tokio::time::sleep(POLL).await;
        },
        ActionKind::EditApp(_) => {}
        ActionKind::ReloadNginx | ActionKind::EditConfig(_) => {
            let Some(master) = facts.discovery.master.as_ref().map(|m| m.pid) else {
                return Err("no master to reload".to_owned());
            };
            loop {
                let now = worker_pids(master);
                if !now.is_empty() && now.iter().all(|p| !before_workers.contains(p)) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the workers of master {master} were not replaced (before {before_workers:?}, now {now:?})"
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        ActionKind::RestartUnit(unit) => {
            let active = run_command(
                Path::new("systemctl"),
                &["is-active", unit.as_str()],
                Duration::from_secs(5),
            )
            .await;
            if !active.is_ok_and(|o| o.stdout.trim() == "active") {
                return Err(format!("{unit} is not active"));
            }
        }
    }
    // 2. nginx listens where the config says.
    if matches!(
        action.kind,
        ActionKind::StartNginx | ActionKind::ReloadNginx | ActionKind::EditConfig(_)
    ) {
        for server in &facts.view.servers {
            for listen in &server.listens {
                let addr = match &listen.addr {
                    ListenAddr::Inet(a) if a.ip().is_unspecified() => {
                        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port())
                    }
                    ListenAddr::Inet(a) => *a,
                    ListenAddr::Port(p) => {
                        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), *p)
                    }
                    _ => continue,
                };
                let r = connect::connect_tcp(addr, facts.timeout()).await;
                if !r.outcome.is_connected() {
                    return Err(format!(
                        "nginx does not accept connections on {addr}: {}",
                        r.outcome
                    ));
                }
            }
        }
    }
    // 3. The upstreams answer. (An edit may point nginx elsewhere: the request it is proven
    // by, sent through nginx, speaks for it.)
    if action.kind.file_edit().is_some() {
        return Ok(());
    }
    if let Some(proof) = &action.proof {
        return proof.send(facts).await.map(|_| ());
    }
    for e in &facts.endpoints {
        if action.upstream.as_ref().is_some_and(|u| {
            (e.group.is_none() || e.group.as_deref() != u.group()) && u.peer() != Some(&e.peer)
        }) {
            continue;
        }
        let ok = probe_endpoint(&e.peer, facts.timeout(), None, facts.master_pid())
            .await
            .ok();
        if !ok {
            return Err(format!("the upstream {} still fails its probe", e.display));
        }
    }
    Ok(())
}

fn master_for(facts: &Facts) -> Option<u32> {
    let d = &facts.discovery;
    master_running(&find_masters(), &d.config, &d.build).map(|m| m.pid)
}

/// Undoes what this run did, and only that: a master it started (the same pid with the same
/// start time) is stopped; anything else is left alone.
async fn rollback(action: &Action, started: Option<Started>) -> String {
    match &action.kind {
        ActionKind::StartNginx => match started {
            Some(ours) if ours.still_ours() => {
                let pid = ours.pid;
                let nix_pid = nix::unistd::Pid::from_raw(pid as i32);
                if nix::sys::signal::kill(nix_pid, nix::sys::signal::Signal::SIGTERM).is_err() {
                    return format!("could not stop the nginx master {pid} that was started");
                }
                let deadline = Instant::now() + VERIFY_FOR;
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                    tokio::time::sleep(POLL).await;
                }
                format!(
                    "stopped the nginx master {pid} that this run started; back to the state before"
                )
            }
            Some(ours) => format!(
                "the nginx master {} this run started is gone or no longer the same process; nothing to undo",
                ours.pid
            ),
            None => "this run started no nginx master; nothing to undo".to_owned(),
        },
        ActionKind::ReloadNginx => {
            "the config was not changed, so nginx keeps serving the same config; nothing to restore"
                .to_owned()
        }
        ActionKind::EditConfig(_) | ActionKind::EditApp(_) => {
            "an edit is rolled back from the journal where it is applied".to_owned()
        }
        ActionKind::RestartUnit(u) => {
            format!("a restart of {u} cannot be undone; check it with: systemctl status {u}")
        }
    }
}
