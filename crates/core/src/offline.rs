//! An offline run (`fix502 --from BUNDLE`): the engine on a bundle instead of the live host.
//! The checks that read only the config and the logs run again on the bundle's files; the
//! checks that measured the host (probes, sockets, processes, the host's policies and
//! limits, nginx's own `-t`, the plan of actions) give what they found when the bundle was
//! collected, and nothing on this machine is read, run or probed in their place. What
//! belongs here: that rule ([`replays`]), and what an offline run carries besides its facts
//! (the bundle's origin, its clock, the recorded findings).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::causes::Cause;
use crate::report::{ActionRecord, CheckId, Evidence, Finding, OfflineInfo};
use crate::steps::check_by_id;
use crate::steps::restart::PLAN_CHECK;

/// The checks of the config step that read the host besides the config: `nginx -t` runs
/// nginx, `config.process` reads nginx's processes and fix502's own user, `config.reload`
/// compares the running workers with the files' times, `config.risks` reads the sockets
/// and limits of the running workers.
const CONFIG_CHECKS_ON_THE_HOST: &[&str] = &[
    "config.nginx-t",
    "config.process",
    "config.reload",
    "config.risks",
];

/// Whether an offline run gives `check`'s recorded findings instead of running it: every
/// check whose evidence is the host now (a probe, a socket, a policy, an action), and the
/// config checks that read the host.
pub(crate) fn replays(check: CheckId) -> bool {
    matches!(
        check.evidence(),
        Evidence::Live | Evidence::Host | Evidence::Action
    ) || CONFIG_CHECKS_ON_THE_HOST.contains(&check.id())
}

/// Whether an offline run gives the recorded findings of the check with id `id`: a
/// replayed check ([`replays`]), or the restart step's plan (made on the host).
pub(crate) fn replays_id(id: &str) -> bool {
    id == PLAN_CHECK.id() || check_by_id(id).is_some_and(|c| replays(c.check_id()))
}

/// A finding as recorded, with what the JSON report leaves out of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeptFinding {
    /// The finding.
    pub finding: Finding,
    /// Its headline (see [`Finding::headline`]).
    pub headline: Option<String>,
    /// The causes it explains (see [`Finding::explains`]).
    pub explains: Vec<Cause>,
}

impl KeptFinding {
    /// Keeps `finding` whole.
    pub(crate) fn of(finding: &Finding) -> Self {
        Self {
            finding: finding.clone(),
            headline: finding.headline.clone(),
            explains: finding.explains.clone(),
        }
    }

    /// The finding again, its evidence kind that of `check`.
    fn restored(self, check: CheckId) -> Finding {
        Finding {
            kind: check.evidence(),
            headline: self.headline,
            explains: self.explains,
            ..self.finding
        }
    }
}

/// What an offline run carries besides its facts.
#[derive(Debug)]
pub(crate) struct Offline {
    /// Where the bundle came from, for the report.
    pub origin: OfflineInfo,
    /// The recorded time of the bundle, in its host's zone: the run's clock.
    pub now: jiff::ZonedDateTime,
    /// The recorded findings of each replayed check, by check id.
    findings: BTreeMap<String, Vec<KeptFinding>>,
    /// The actions the live run planned.
    pub actions: Vec<ActionRecord>,
    /// The bundle's files, unpacked (removed with the run).
    _dir: tempfile::TempDir,
    /// The unpacked files' root: nginx's `/` as the bundle holds it.
    pub root: PathBuf,
}

impl Offline {
    /// An offline run's state: `findings` are the recorded findings of every replayed check.
    pub(crate) fn new(
        origin: OfflineInfo,
        now: jiff::ZonedDateTime,
        findings: Vec<KeptFinding>,
        actions: Vec<ActionRecord>,
        dir: tempfile::TempDir,
        root: PathBuf,
    ) -> Self {
        let mut by_check: BTreeMap<String, Vec<KeptFinding>> = BTreeMap::new();
        for f in findings {
            by_check.entry(f.finding.check.clone()).or_default().push(f);
        }
        Self {
            origin,
            now,
            findings: by_check,
            actions,
            _dir: dir,
            root,
        }
    }

    /// The recorded findings of `check`, as the live run found them.
    pub(crate) fn findings_of(&self, check: CheckId) -> Vec<Finding> {
        self.findings
            .get(check.id())
            .into_iter()
            .flatten()
            .cloned()
            .map(|f| f.restored(check))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::all_checks;

    #[test]
    fn the_config_checks_that_read_the_host_are_real_checks_of_the_config_step() {
        for id in CONFIG_CHECKS_ON_THE_HOST {
            let check = check_by_id(id).unwrap_or_else(|| panic!("{id} is no check"));
            assert_eq!(check.check_id().evidence(), Evidence::Config, "{id}");
            assert!(replays(check.check_id()));
        }
    }

    #[test]
    fn what_reads_only_the_config_and_the_logs_runs_again_offline() {
        let again: Vec<&str> = all_checks()
            .into_iter()
            .filter(|c| !replays(c.check_id()))
            .map(|c| c.id())
            .collect();
        assert!(again.contains(&"logs.error-log"), "{again:?}");
        assert!(again.contains(&"config.parse"), "{again:?}");
        for id in &again {
            let c = check_by_id(id).unwrap();
            assert!(
                matches!(c.check_id().evidence(), Evidence::Log | Evidence::Config),
                "{id} runs again offline but measures the host"
            );
        }
        assert!(replays_id("restart.plan"));
        assert!(replays_id("upstream.tcp-connect"));
        assert!(!replays_id("logs.error-log"));
    }
}
