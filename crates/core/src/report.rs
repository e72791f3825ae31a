//! The report: the data every face of fix502 shows (wizard, human text, JSON).
//!
//! Everything here is part of the outside contract (CONTRACT.md, docs/json-report.md):
//! fields and cause ids are only ever added. Nothing here runs a check.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// The cause ids of CONTRACT.md (v1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is documented in docs/causes.md and by `Cause::meaning`
pub enum Cause {
    NginxNotRunning,
    ConfigInvalid,
    ConfigNotReloaded,
    UpstreamRefused,
    UpstreamStaleDns,
    UpstreamWrongAddress,
    UpstreamUnreachable,
    UpstreamTimeout,
    UpstreamReset,
    UpstreamClosedEarly,
    UpstreamKeepaliveRace,
    #[serde(rename = "upstream-returned-502")]
    #[schemars(rename = "upstream-returned-502")]
    UpstreamReturned502,
    UpstreamHeaderTooBig,
    UpstreamInvalidResponse,
    UpstreamProtocolMismatch,
    UpstreamTls,
    UnixSocketMissing,
    UnixSocketPermission,
    UpstreamBacklogFull,
    NoLiveUpstreams,
    UpstreamDns,
    SelinuxDenied,
    FdExhaustion,
    PortExhaustion,
    ProxyLoop,
}

impl Cause {
    /// Every cause id, in contract order.
    pub const ALL: [Self; 25] = [
        Self::NginxNotRunning,
        Self::ConfigInvalid,
        Self::ConfigNotReloaded,
        Self::UpstreamRefused,
        Self::UpstreamStaleDns,
        Self::UpstreamWrongAddress,
        Self::UpstreamUnreachable,
        Self::UpstreamTimeout,
        Self::UpstreamReset,
        Self::UpstreamClosedEarly,
        Self::UpstreamKeepaliveRace,
        Self::UpstreamReturned502,
        Self::UpstreamHeaderTooBig,
        Self::UpstreamInvalidResponse,
        Self::UpstreamProtocolMismatch,
        Self::UpstreamTls,
        Self::UnixSocketMissing,
        Self::UnixSocketPermission,
        Self::UpstreamBacklogFull,
        Self::NoLiveUpstreams,
        Self::UpstreamDns,
        Self::SelinuxDenied,
        Self::FdExhaustion,
        Self::PortExhaustion,
        Self::ProxyLoop,
    ];

    /// The stable id, as in the JSON report.
    pub fn id(self) -> &'static str {
        match self {
            Self::NginxNotRunning => "nginx-not-running",
            Self::ConfigInvalid => "config-invalid",
            Self::ConfigNotReloaded => "config-not-reloaded",
            Self::UpstreamRefused => "upstream-refused",
            Self::UpstreamStaleDns => "upstream-stale-dns",
            Self::UpstreamWrongAddress => "upstream-wrong-address",
            Self::UpstreamUnreachable => "upstream-unreachable",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::UpstreamReset => "upstream-reset",
            Self::UpstreamClosedEarly => "upstream-closed-early",
            Self::UpstreamKeepaliveRace => "upstream-keepalive-race",
            Self::UpstreamReturned502 => "upstream-returned-502",
            Self::UpstreamHeaderTooBig => "upstream-header-too-big",
            Self::UpstreamInvalidResponse => "upstream-invalid-response",
            Self::UpstreamProtocolMismatch => "upstream-protocol-mismatch",
            Self::UpstreamTls => "upstream-tls",
            Self::UnixSocketMissing => "unix-socket-missing",
            Self::UnixSocketPermission => "unix-socket-permission",
            Self::UpstreamBacklogFull => "upstream-backlog-full",
            Self::NoLiveUpstreams => "no-live-upstreams",
            Self::UpstreamDns => "upstream-dns",
            Self::SelinuxDenied => "selinux-denied",
            Self::FdExhaustion => "fd-exhaustion",
            Self::PortExhaustion => "port-exhaustion",
            Self::ProxyLoop => "proxy-loop",
        }
    }

    /// Parses a cause id.
    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// One line: what the cause means (CONTRACT.md wording).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::NginxNotRunning => {
                "no nginx master process, or nothing listens on the server's port"
            }
            Self::ConfigInvalid => "`nginx -t` fails: a reload would fail too",
            Self::ConfigNotReloaded => {
                "the config on disk changed after the running workers started"
            }
            Self::UpstreamRefused => "nothing listens at the upstream address (ECONNREFUSED)",
            Self::UpstreamStaleDns => {
                "nginx still connects to an address the upstream name no longer has"
            }
            Self::UpstreamWrongAddress => "the app listens, but not where nginx connects",
            Self::UpstreamUnreachable => "no route / network unreachable / host down",
            Self::UpstreamTimeout => "connect or read timed out (nginx answers 504, not 502)",
            Self::UpstreamReset => "the upstream reset the connection (ECONNRESET)",
            Self::UpstreamClosedEarly => {
                "the upstream closed the connection before a full response header"
            }
            Self::UpstreamKeepaliveRace => "sporadic close/reset on reused keep-alive connections",
            Self::UpstreamReturned502 => "the upstream itself answered 502; nginx only relayed it",
            Self::UpstreamHeaderTooBig => "the response header does not fit the *_buffer_size",
            Self::UpstreamInvalidResponse => "the upstream's answer is not valid for the protocol",
            Self::UpstreamProtocolMismatch => "nginx speaks the wrong protocol to the upstream",
            Self::UpstreamTls => {
                "TLS handshake or certificate verification with the upstream fails"
            }
            Self::UnixSocketMissing => "the unix socket path does not exist (ENOENT)",
            Self::UnixSocketPermission => "the worker user may not connect to the socket (EACCES)",
            Self::UpstreamBacklogFull => "the listen backlog of the upstream is full (EAGAIN)",
            Self::NoLiveUpstreams => "every server of the upstream group is marked failed",
            Self::UpstreamDns => "an upstream name cannot be resolved",
            Self::SelinuxDenied => "SELinux forbids the worker to connect (EACCES on TCP)",
            Self::FdExhaustion => "the workers ran out of file descriptors (EMFILE/ENFILE)",
            Self::PortExhaustion => "no free local port for the connection (EADDRNOTAVAIL)",
            Self::ProxyLoop => "nginx proxies to itself",
        }
    }

    /// What the client sees for this cause.
    pub fn http_status(self) -> u16 {
        match self {
            Self::UpstreamTimeout => 504,
            Self::FdExhaustion | Self::ProxyLoop => 500,
            _ => 502,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
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

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// The stable id of the check that found it, e.g. `upstream.tcp-connect`.
    pub check: String,
    /// How serious it is.
    pub severity: Severity,
    /// The cause it points to, if any.
    pub cause: Option<Cause>,
    /// The upstream, written as nginx writes it.
    pub upstream: Option<String>,
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
}

impl Finding {
    /// A new finding with no cause, upstream, evidence, location or fix.
    pub fn new(check: &str, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            check: check.to_owned(),
            severity,
            cause: None,
            upstream: None,
            message: message.into(),
            evidence: Vec::new(),
            location: None,
            fix: Vec::new(),
            could_not_check: false,
        }
    }

    /// A finding saying the check could not run, and why.
    pub fn could_not_check(check: &str, why: impl Into<String>) -> Self {
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
    pub fn upstream(mut self, upstream: impl Into<String>) -> Self {
        self.upstream = Some(upstream.into());
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
    pub next: Option<String>,
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
    pub upstream: Option<String>,
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
    pub timeline: Option<crate::timeline::Timeline>,
}

/// The exit status of CONTRACT.md.
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
        let rolled_back = self.steps.iter().flat_map(|s| &s.findings).any(|f| {
            f.check == crate::steps::restart::APPLY_CHECK && f.severity == Severity::Error
        });
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
