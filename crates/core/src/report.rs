//! The report: the data every face of fix502 shows (wizard, human text, JSON), and the
//! typed ids its findings carry (the check that found them, the kind of evidence).
//!
//! What is serialized here is the outside contract (docs/json-report.md,
//! docs/report.schema.json): fields and cause ids are only ever added. Nothing here runs a
//! check.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::causes::cause::Cause;
use crate::timeline::Timeline;
use crate::upstream::Upstream;

/// Version of the JSON report layout. Bumped only on a breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// The five steps, in the order they run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    /// Read the error logs.
    Logs,
    /// Check every upstream target.
    Upstream,
    /// Inspect the nginx configuration and process.
    Config,
    /// Test name resolution and the network path.
    Network,
    /// Plan (and, when allowed, apply) a reload or restart.
    Restart,
}

impl StepId {
    /// All steps in run order.
    pub const ALL: [Self; 5] = [
        Self::Logs,
        Self::Upstream,
        Self::Config,
        Self::Network,
        Self::Restart,
    ];

    /// The id as written on the command line and in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logs => "logs",
            Self::Upstream => "upstream",
            Self::Config => "config",
            Self::Network => "network",
            Self::Restart => "restart",
        }
    }

    /// A human title for the step.
    pub fn title(self) -> &'static str {
        match self {
            Self::Logs => "Error logs",
            Self::Upstream => "Upstream status",
            Self::Config => "nginx configuration",
            Self::Network => "Network connectivity",
            Self::Restart => "Restart / reload",
        }
    }

    /// Parses a step id as written on the command line.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one step.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Nothing wrong found.
    Pass,
    /// Something worth a look, not a failure.
    Warn,
    /// A problem found.
    Fail,
    /// The step was not run.
    Skipped,
    /// The step could not run its checks (a finding says why).
    Error,
}

/// How serious one finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Context: what was checked and found fine.
    Info,
    /// Worth a look; does not break serving by itself.
    Warning,
    /// Breaks serving, or the check could not run.
    Error,
}

/// A place in the nginx configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: u32,
}

impl From<&fix502_nginx::config::Span> for Location {
    /// Where a parsed directive was written.
    fn from(span: &fix502_nginx::config::Span) -> Self {
        Self {
            file: span.file.to_path_buf(),
            line: span.line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What kind of evidence a finding is: the diagnosis weighs them differently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// What nginx logged.
    Log,
    /// A live probe of an upstream, or a reading of the host now.
    #[default]
    Live,
    /// The configuration (and whether nginx runs it).
    Config,
    /// The host's security and limits.
    Host,
    /// The restart step's planned or applied actions.
    Action,
    /// A conclusion the diagnosis drew from other findings.
    Derived,
}

impl Evidence {
    /// True for what nginx logged.
    pub fn is_log(self) -> bool {
        self == Self::Log
    }

    /// True for the configuration.
    pub fn is_config(self) -> bool {
        self == Self::Config
    }
}

/// The typed id of a check: its stable id, the step it belongs to, and the kind of
/// evidence its findings are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckId {
    id: &'static str,
    step: StepId,
    evidence: Evidence,
}

impl CheckId {
    /// A check id, e.g. `CheckId::new("upstream.tcp-connect", StepId::Upstream, Evidence::Live)`.
    pub const fn new(id: &'static str, step: StepId, evidence: Evidence) -> Self {
        Self { id, step, evidence }
    }

    /// The id as in the JSON report.
    pub const fn id(self) -> &'static str {
        self.id
    }

    /// The step the check belongs to.
    pub const fn step(self) -> StepId {
        self.step
    }

    /// The kind of evidence its findings are.
    pub const fn evidence(self) -> Evidence {
        self.evidence
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

impl PartialEq<CheckId> for String {
    fn eq(&self, other: &CheckId) -> bool {
        self == other.id
    }
}

/// The restart step's findings about actions it applied: an error among them means an
/// action was rolled back (exit 4).
pub const APPLIED: CheckId = CheckId::new("restart.apply", StepId::Restart, Evidence::Action);

/// The findings the diagnosis adds to a claim from what it concluded.
pub const DIAGNOSIS: CheckId = CheckId::new("diagnosis", StepId::Restart, Evidence::Derived);

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// The stable id of the check that found it, e.g. `upstream.tcp-connect`.
    pub check: String,
    /// What kind of evidence it is (not in the JSON report; read back, it is
    /// [`Evidence::Live`]).
    #[serde(skip)]
    pub kind: Evidence,
    /// How serious it is.
    pub severity: Severity,
    /// The cause it points to, if any.
    pub cause: Option<Cause>,
    /// The upstream, written as nginx writes it.
    pub upstream: Option<Upstream>,
    /// One line for a person.
    pub message: String,
    /// Proof: log lines, probe results, file:line, command output.
    pub evidence: Vec<String>,
    /// The configuration line this is about.
    pub location: Option<Location>,
    /// Exact commands or directives that fix it.
    #[serde(default)]
    pub fix: Vec<String>,
    /// True when this finding says the check itself could not run.
    #[serde(default)]
    pub could_not_check: bool,
    /// What the check found, in words a diagnosis of its cause quotes in its summary (not in
    /// the JSON report).
    #[serde(skip)]
    pub headline: Option<String>,
    /// The causes this finding is a reason for (not in the JSON report): an app server's own
    /// account of why requests failed, which joins the diagnosis of the first of these causes
    /// at its upstream instead of making a claim of its own (`diagnosis.rs`).
    #[serde(skip)]
    pub explains: Vec<Cause>,
    /// The network namespace a live probe was made from; written only when nginx runs in
    /// another network namespace than fix502 (added field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_from: Option<ProbedFrom>,
}

/// The network namespace a probe was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProbedFrom {
    /// The namespace's inode id (`net:[ID]`); null when it cannot be read.
    pub net: Option<u64>,
    /// Whether it is nginx's own (true), or fix502's because nginx's could not be entered
    /// (false).
    pub nginx: bool,
}

impl ProbedFrom {
    /// In words: `nginx's network namespace net:[ID]`, `fix502's own network namespace`.
    pub fn words(&self) -> String {
        let id = self.net.map(|n| format!(" net:[{n}]")).unwrap_or_default();
        if self.nginx {
            format!("nginx's network namespace{id}")
        } else {
            format!("fix502's own network namespace{id}, not nginx's")
        }
    }
}

impl Finding {
    /// A new finding with no cause, upstream, evidence, location or fix.
    pub fn new(check: CheckId, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            check: check.id().to_owned(),
            kind: check.evidence(),
            severity,
            cause: None,
            upstream: None,
            message: message.into(),
            evidence: Vec::new(),
            location: None,
            fix: Vec::new(),
            could_not_check: false,
            headline: None,
            explains: Vec::new(),
            probed_from: None,
        }
    }

    /// A finding saying the check could not run, and why.
    pub fn could_not_check(check: CheckId, why: impl Into<String>) -> Self {
        let mut f = Self::new(check, Severity::Error, why);
        f.could_not_check = true;
        f
    }

    /// Sets the cause.
    pub fn cause(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// Sets the upstream.
    pub fn upstream(mut self, upstream: impl Into<Upstream>) -> Self {
        self.upstream = Some(upstream.into());
        self
    }

    /// Offers the finding's own message as the summary of its cause's diagnosis.
    pub fn headlined(mut self) -> Self {
        self.headline = Some(self.message.clone());
        self
    }

    /// Sets what the finding offers as the summary of its cause's diagnosis.
    pub fn headline(mut self, words: impl Into<String>) -> Self {
        self.headline = Some(words.into());
        self
    }

    /// Adds one line of evidence.
    pub fn evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    /// Sets the configuration location.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Makes the finding a reason for what nginx saw as one of `causes`, first match first
    /// (see [`Finding::explains`]).
    pub fn explains(mut self, causes: &[Cause]) -> Self {
        self.explains = causes.to_vec();
        self
    }

    /// Adds one fix line.
    pub fn fix(mut self, line: impl Into<String>) -> Self {
        self.fix.push(line.into());
        self
    }
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepReport {
    /// Which step.
    pub step: StepId,
    /// Its outcome.
    pub status: StepStatus,
    /// How long it took.
    pub duration_ms: u64,
    /// What its checks found.
    pub findings: Vec<Finding>,
    /// The suggested next action, for a person.
    #[schemars(with = "Option<String>")]
    pub next: Option<Next>,
}

/// What to do after a step: words for a person, and the step they lead to, if any. In the
/// JSON report it is one string, the step written last as `(step: NAME)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// What to do.
    pub text: String,
    /// The step that does it.
    pub step: Option<StepId>,
}

impl Next {
    /// Words that lead to `step`.
    pub fn to(text: impl Into<String>, step: StepId) -> Self {
        Self {
            text: text.into(),
            step: Some(step),
        }
    }

    /// Words for a person, leading to no step.
    pub fn here(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            step: None,
        }
    }
}

impl fmt::Display for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(step) => write!(f, "{} (step: {step})", self.text),
            None => f.write_str(&self.text),
        }
    }
}

impl Serialize for Next {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Next {
    /// Reads the JSON form back: a trailing `(step: NAME)` naming a step is the step.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let step = text
            .strip_suffix(')')
            .and_then(|t| t.rsplit_once(" (step: "))
            .and_then(|(words, name)| StepId::parse(name).map(|step| (words, step)));
        Ok(match step {
            Some((words, step)) => Self::to(words, step),
            None => Self::here(text),
        })
    }
}

impl StepReport {
    /// A step that was not run.
    pub fn skipped(step: StepId) -> Self {
        Self {
            step,
            status: StepStatus::Skipped,
            duration_ms: 0,
            findings: Vec::new(),
            next: None,
        }
    }

    /// The status that follows from a set of findings.
    pub fn status_of(findings: &[Finding]) -> StepStatus {
        let problem = |f: &&Finding| f.severity == Severity::Error && !f.could_not_check;
        if findings.iter().any(|f| problem(&f)) {
            StepStatus::Fail
        } else if findings
            .iter()
            .any(|f| f.could_not_check && f.severity == Severity::Error)
        {
            StepStatus::Error
        } else if findings.iter().any(|f| f.severity == Severity::Warning) {
            StepStatus::Warn
        } else {
            StepStatus::Pass
        }
    }
}

/// One ranked root cause with its proof and fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Diagnosis {
    /// The cause id.
    pub cause: Cause,
    /// How sure we are, 0.0 to 1.0.
    pub confidence: f64,
    /// The upstream, written as nginx writes it.
    pub upstream: Option<Upstream>,
    /// What the client sees for this cause.
    pub http_status: u16,
    /// One sentence for a person.
    pub summary: String,
    /// The evidence chain, strongest first.
    pub evidence: Vec<String>,
    /// What to do, most direct first.
    pub fix: Vec<String>,
}

/// What fix502 knows about the nginx it diagnosed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NginxInfo {
    /// The nginx binary.
    pub binary: Option<PathBuf>,
    /// Its version, from `nginx -V`.
    pub version: Option<String>,
    /// The main configuration file.
    pub config: Option<PathBuf>,
    /// The prefix (`-p`).
    pub prefix: Option<PathBuf>,
    /// The master process, when running.
    pub master_pid: Option<u32>,
    /// Every nginx master running on the host, the diagnosed one marked `selected`; written
    /// only when more than one runs (added field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masters: Vec<MasterInfo>,
    /// The user the workers run as.
    pub worker_user: Option<String>,
    /// Whether a master process runs this configuration.
    pub running: bool,
    /// Error logs read.
    pub error_logs: Vec<PathBuf>,
    /// Access logs known.
    pub access_logs: Vec<PathBuf>,
    /// How each path was found: key (`config`, `binary`, `prefix`, ...) to a short description.
    pub discovered_via: BTreeMap<String, String>,
    /// The namespaces the master runs in, written only when they differ from fix502's (a
    /// container, for instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Namespaces>,
}

/// The namespaces a process runs in: the inode ids of its `/proc/PID/ns/{net,mnt,pid}`
/// links, and the container its cgroup names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Namespaces {
    /// The network namespace's inode id; null when it cannot be read.
    pub net: Option<u64>,
    /// The mount namespace's inode id; null when it cannot be read.
    pub mnt: Option<u64>,
    /// The pid namespace's inode id; null when it cannot be read.
    pub pid: Option<u64>,
    /// Whether it runs in a container-like sandbox: a network namespace and a mount
    /// namespace of its own, both other than the host's (pid 1's) (added field).
    #[serde(default)]
    pub sandboxed: bool,
    /// The container runtime and id its cgroup path names (docker, containerd, podman,
    /// cri-o, kubepods), when it names one.
    #[serde(default)]
    pub container: Option<ContainerInfo>,
}

/// A container, as the cgroup path of a process names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerInfo {
    /// `docker`, `containerd`, `podman`, `cri-o` or `kubepods` (a Kubernetes pod whose
    /// runtime the path does not name).
    pub runtime: String,
    /// The container id (hex), when the path carries it.
    pub id: Option<String>,
}

/// One running nginx master, as discovery found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MasterInfo {
    /// Its pid.
    pub pid: u32,
    /// The config it runs (its `-c`, else its binary's `--conf-path`), when known.
    pub config: Option<PathBuf>,
    /// Its prefix (`-p`), when given on its command line.
    pub prefix: Option<PathBuf>,
    /// Its executable (`/proc/PID/exe`), when readable.
    pub binary: Option<PathBuf>,
    /// Its namespaces (always written here, also when they are fix502's).
    pub namespaces: Namespaces,
    /// Whether this is the master diagnosed.
    pub selected: bool,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The fix502 version that wrote it.
    pub fix502_version: String,
    /// When it was written (RFC 3339, UTC).
    pub generated_at: String,
    /// The nginx diagnosed.
    pub nginx: NginxInfo,
    /// The steps, in order.
    pub steps: Vec<StepReport>,
    /// Ranked causes, most likely first; empty when nothing is wrong.
    pub diagnosis: Vec<Diagnosis>,
    /// Per-minute counts of 502/504 (access log) and of the upstream errors by cause (error
    /// log) over the window; absent when the logs were not read or show nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// What the fifth step did or would do, in order (empty when it plans nothing).
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
    /// Where the bundle came from, when the report was made from one (`--from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineInfo>,
}

/// Where a bundle diagnosed with `--from` came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OfflineInfo {
    /// The bundle file, as given.
    pub bundle: String,
    /// The host it was collected on.
    pub host: String,
    /// When it was collected (RFC 3339, UTC).
    pub collected_at: String,
    /// The fix502 version that collected it.
    pub fix502_version: String,
}

/// One action of the fifth step, planned or applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActionRecord {
    /// `start`, `reload`, `edit`, `app-reload` or `restart-unit`.
    pub kind: String,
    /// The file or the systemd unit acted on, when there is one.
    #[serde(default)]
    pub target: Option<String>,
    /// The exact command run (or that would run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The change to a file, as a unified diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// What became of it.
    pub status: ActionStatus,
    /// Where the previous version of an edited file was saved.
    #[serde(default)]
    pub backup: Option<String>,
    /// The id of the change in fix502's journal (what `fix502 undo ID` reverts).
    #[serde(default)]
    pub journal_id: Option<String>,
    /// Why it helps, for a person.
    pub why: String,
    /// The cause it fixes.
    #[serde(default)]
    pub cause: Option<Cause>,
}

/// What became of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActionStatus {
    /// Planned, not applied (no `--apply`, no yes).
    Planned,
    /// Applied; not verified.
    Applied,
    /// Applied and verified: the problem it fixes is gone.
    Verified,
    /// Applied, failed verification, and undone.
    RolledBack,
    /// Not applied: not needed any more, or refused.
    Skipped,
}

/// The exit status of docs/command-line.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: no problem found.
    Clean,
    /// 1: at least one problem diagnosed.
    Problem,
    /// 2: usage error.
    Usage,
    /// 3: could not check.
    CouldNotCheck,
    /// 4: an action failed verification and was rolled back.
    RolledBack,
    /// 130: interrupted.
    Interrupted,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Self::Clean => 0,
            Self::Problem => 1,
            Self::Usage => 2,
            Self::CouldNotCheck => 3,
            Self::RolledBack => 4,
            Self::Interrupted => 130,
        }
    }
}

impl Report {
    /// The exit status this report calls for.
    pub fn exit_status(&self) -> ExitStatus {
        let rolled_back = self
            .steps
            .iter()
            .flat_map(|s| &s.findings)
            .any(|f| f.check == APPLIED && f.severity == Severity::Error);
        if rolled_back {
            ExitStatus::RolledBack
        } else if !self.diagnosis.is_empty() {
            ExitStatus::Problem
        } else if self.steps.iter().any(|s| s.status == StepStatus::Error) {
            ExitStatus::CouldNotCheck
        } else {
            ExitStatus::Clean
        }
    }

    /// The JSON Schema of the report.
    pub fn json_schema() -> schemars::Schema {
        schemars::schema_for!(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_one_string_in_the_json_and_reads_back() {
        let next = Next::to(
            "Check whether anything listens on 127.0.0.1:8000",
            StepId::Upstream,
        );
        let json = serde_json::to_string(&next).unwrap();
        assert_eq!(
            json,
            "\"Check whether anything listens on 127.0.0.1:8000 (step: upstream)\""
        );
        assert_eq!(serde_json::from_str::<Next>(&json).unwrap(), next);
        for text in ["Fix the config", "Odd (step: nonsense)"] {
            let back: Next = serde_json::from_str(&format!("{text:?}")).unwrap();
            assert_eq!(back, Next::here(text));
        }
    }
}
