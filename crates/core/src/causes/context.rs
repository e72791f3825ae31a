//! What the wording of a cause's summary and fix may draw on: the facts of the run, the
//! upstream the diagnosis is about, the findings behind it, and how nginx's retries and the
//! upstream's recovery change the picture. Only ways of reading those live here.

use super::cause::Cause;
use crate::facts::{Endpoint, Facts};
use crate::report::Finding;
use crate::upstream::Upstream;

/// The input of a cause's summary and fix.
pub struct Context<'a> {
    /// The shared facts.
    pub facts: &'a Facts,
    /// The upstream concerned.
    pub upstream: Option<&'a Upstream>,
    /// The findings behind the cause.
    pub findings: &'a [Finding],
    /// The failure is in the logs but the live probe passes now.
    pub recovered: bool,
    /// nginx retries the group's other servers, which answer: clients mostly get 200.
    pub retried: bool,
}

impl Context<'_> {
    /// The config's endpoint for the upstream, if it has one.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.facts.endpoint_at(self.upstream?)
    }

    /// The prefix of the upstream's module's directives (`proxy`, `fastcgi`, `uwsgi`, ...),
    /// from its first pass directive; `proxy` when the config has none.
    pub fn module(&self) -> &'static str {
        self.endpoint()
            .and_then(|e| e.uses.first())
            .and_then(|u| self.facts.view.targets.get(u.target))
            .map_or("proxy", |t| {
                let d = t.module.directive();
                d.strip_suffix("_pass").unwrap_or(d)
            })
    }

    /// `, the upstream of location / (conf/app.conf:3)`, or nothing.
    pub fn role(&self) -> String {
        self.endpoint()
            .map(|e| format!(", {}", e.role()))
            .unwrap_or_default()
    }

    /// The upstream as nginx writes it, or "the upstream".
    pub fn up(&self) -> String {
        self.upstream
            .map(ToString::to_string)
            .unwrap_or_else(|| "the upstream".to_owned())
    }

    /// The socket path of a unix upstream, else the upstream as written.
    pub fn path(&self) -> String {
        match self.upstream.and_then(Upstream::unix_path) {
            Some(p) => p.display().to_string(),
            None => self.up(),
        }
    }

    /// The upstream's TCP port, when it has one.
    pub fn port(&self) -> Option<u16> {
        self.upstream.and_then(Upstream::port)
    }

    /// The host of a TCP upstream (an IPv6 address without brackets), else the upstream as
    /// written.
    pub fn host(&self) -> String {
        match self.upstream.and_then(Upstream::host) {
            Some(h) => h.to_owned(),
            None => self.up(),
        }
    }

    /// The user nginx's workers run as.
    pub fn worker(&self) -> String {
        self.facts
            .worker_user
            .as_ref()
            .map(|(u, _)| u.clone())
            .unwrap_or_else(|| "the nginx worker user".to_owned())
    }

    /// `nginx -t && nginx -s reload` for this nginx.
    pub fn reload(&self) -> String {
        self.facts.reload_command()
    }

    /// The config line that names the upstream.
    pub fn config_line(&self) -> String {
        self.endpoint()
            .and_then(|e| e.location())
            .map(|l| l.to_string())
            .unwrap_or_else(|| "the upstream's line in the config".to_owned())
    }

    /// The message of the first finding that is not from a log and names a cause (it
    /// carries the measurement), else of the first finding.
    pub fn live_message(&self) -> Option<&str> {
        self.findings
            .iter()
            .find(|f| !f.kind.is_log() && f.cause.is_some())
            .or_else(|| self.findings.first())
            .map(|f| f.message.as_str())
    }

    /// The measurement behind `cause` ([`Context::live_message`]), else `upstream: meaning`.
    pub fn measured(&self, cause: Cause) -> String {
        match self.live_message() {
            Some(m) => m.to_owned(),
            None => format!("{}: {}", self.up(), cause.meaning()),
        }
    }

    /// As [`Context::measured`], with the upstream's role in the config.
    pub fn measured_at(&self, cause: Cause) -> String {
        match self.live_message() {
            Some(m) => m.to_owned(),
            None => format!("{}{}: {}", self.up(), self.role(), cause.meaning()),
        }
    }

    /// Adds `Reload nginx: <command>` to fix lines that do not reload nginx yet.
    pub fn add_reload(&self, fix: &mut Vec<String>) {
        let reload = self.reload();
        if !fix.iter().any(|line| line.contains(&reload)) {
            fix.push(format!("Reload nginx: {reload}"));
        }
    }

    /// What a check found, in the words it offers a cause's summary (see
    /// [`Finding::headline`]).
    pub fn headline(&self) -> Option<&str> {
        self.findings.iter().find_map(|f| f.headline.as_deref())
    }
}
