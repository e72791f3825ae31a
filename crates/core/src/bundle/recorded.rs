//! What a bundle records of the live run for `fix502 --from`: the facts fix502 measured on
//! the host and cannot measure again from the bundle's files (which nginx runs and how it
//! was found, the connect probes, the listening sockets, what each app server behind an
//! endpoint is, the protocol exchanges, `nginx -t`), the log paths as the host resolved
//! them, and the host's clock and time zone. Offline, these fill the facts' cells as they
//! were, so nothing is probed again. What belongs here: that record, made from live
//! [`Facts`], and nothing about how it is read back (`read.rs`) or used (`offline.rs`).

use std::path::PathBuf;

use fix502_probe::listeners::Listener;
use serde::{Deserialize, Serialize};

use crate::discovery::Discovery;
use crate::exchange::Exchange;
use crate::facts::{Behind, Facts, ProbeResult, StderrTarget};
use crate::offline::{KeptFinding, replays_id};
use crate::report::{ActionRecord, StepReport};
use crate::throwaway::TestRun;

/// The member of a bundle that holds the record.
pub(crate) const MEMBER: &str = "recorded.json";

/// What the live run measured, as data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Recorded {
    /// When the run looked, in the host's time zone (RFC 9557, e.g.
    /// `2026-12-07T02:47:00+01:00[Europe/Berlin]`): the clock of the offline run.
    pub now: String,
    /// The host's offset from UTC then, in seconds (for a zone this machine does not know).
    pub offset_seconds: i32,
    /// Which nginx ran, and how it was found.
    pub discovery: Discovery,
    /// The error logs read (nginx's paths).
    pub error_logs: Vec<PathBuf>,
    /// Error-log destinations that are not files.
    pub error_log_elsewhere: Vec<String>,
    /// `error_log` paths linked to nginx's stderr in its container.
    pub stderr_links: Vec<String>,
    /// The access logs read (nginx's paths).
    pub access_logs: Vec<PathBuf>,
    /// `access_log` paths that are nginx's stdout.
    pub access_log_stdout: Vec<String>,
    /// Where the master's stderr went.
    pub master_stderr: Option<StderrTarget>,
    /// The connect probe of each endpoint, in the config's order (`None`: not probed).
    pub probes: Vec<Option<ProbeResult>>,
    /// What serves each endpoint (`None`: not looked at; `Some(None)`: nothing found).
    pub behind: Vec<Option<Option<Behind>>>,
    /// The listening sockets of nginx's network namespace, or why they could not be read.
    pub listeners: Option<Result<Vec<Listener>, String>>,
    /// Each endpoint spoken to as nginx speaks to it.
    pub exchanges: Option<Vec<Option<Exchange>>>,
    /// `nginx -t`, as the config step ran it.
    pub nginx_test: Option<Result<TestRun, String>>,
    /// The findings of the checks an offline run does not run again ([`crate::offline::replays`]).
    pub findings: Vec<KeptFinding>,
    /// The actions the live run planned.
    pub actions: Vec<ActionRecord>,
}

impl Recorded {
    /// The record of what `facts` measured so far, with the findings of the checks an
    /// offline run replays, from the live run's `steps`, and its planned `actions`.
    pub(crate) fn of(facts: &Facts, steps: &[StepReport], actions: &[ActionRecord]) -> Self {
        let findings = steps
            .iter()
            .flat_map(|s| &s.findings)
            .filter(|f| replays_id(&f.check))
            .map(KeptFinding::of)
            .collect();
        let parts = facts.measured();
        let now = facts.now();
        Self {
            now: now.to_string(),
            offset_seconds: now.offset().seconds(),
            discovery: facts.discovery.clone(),
            error_logs: facts.error_logs.clone(),
            error_log_elsewhere: facts.error_log_elsewhere.clone(),
            stderr_links: facts.stderr_links.clone(),
            access_logs: facts.access_logs.clone(),
            access_log_stdout: facts.access_log_stdout.clone(),
            master_stderr: facts.master_stderr(),
            probes: parts.probes,
            behind: parts.behind,
            listeners: parts.listeners,
            exchanges: parts.exchanges,
            nginx_test: parts.nginx_test,
            findings,
            actions: actions.to_vec(),
        }
    }

    /// The clock of the offline run: the recorded time in its zone, else at its offset
    /// (a zone this machine's database does not know).
    pub(crate) fn clock(&self) -> Option<jiff::ZonedDateTime> {
        clock_of(&self.now, self.offset_seconds)
    }
}

/// `now` (RFC 9557) in its zone, else at `offset_seconds` when the zone is unknown here.
fn clock_of(now: &str, offset_seconds: i32) -> Option<jiff::ZonedDateTime> {
    now.parse::<jiff::ZonedDateTime>().ok().or_else(|| {
        let (at, _) = now.split_once('[')?;
        let ts: jiff::Timestamp = at.parse().ok()?;
        let offset = jiff::tz::Offset::from_seconds(offset_seconds).ok()?;
        Some(ts.to_zoned_datetime(jiff::tz::TimeZone::fixed(offset)))
    })
}

/// The measured facts of one run, taken out of their cells.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) probes: Vec<Option<ProbeResult>>,
    pub(crate) behind: Vec<Option<Option<Behind>>>,
    pub(crate) listeners: Option<Result<Vec<Listener>, String>>,
    pub(crate) exchanges: Option<Vec<Option<Exchange>>>,
    pub(crate) nginx_test: Option<Result<TestRun, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_clock_keeps_its_zone_or_at_least_its_offset() {
        let z = clock_of("2026-12-07T02:47:00+01:00[Europe/Berlin]", 3600).unwrap();
        assert_eq!(z.time_zone().iana_name(), Some("Europe/Berlin"));
        assert_eq!(z.datetime().to_string(), "2026-12-07T02:47:00");
        let z = clock_of("2026-12-07T02:47:00+05:45[Nowhere/Unknown]", 20700).unwrap();
        assert_eq!(z.offset().seconds(), 20700);
        assert_eq!(z.datetime().to_string(), "2026-12-07T02:47:00");
        assert!(clock_of("not a time", 0).is_none());
    }
}
