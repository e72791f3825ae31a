//! `fix502 fleet`: many hosts' reports (JSON reports, or the report a bundle carries) as one
//! table, a row per host, and the hosts grouped by their top cause and upstream ("12 hosts:
//! upstream-refused 10.0.3.17:3000 since 02:47"). What belongs here: reading each input,
//! naming its host, and the grouping; the binary prints it.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::bundle::{ReadError, read_bundle};
use crate::report::{Report, SCHEMA_VERSION};

/// The most bytes of one JSON report read.
const MAX_REPORT: u64 = 64 * 1024 * 1024;

/// One host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRow {
    /// The host: a bundle's own host name, else the report file's name without `.json`.
    pub host: String,
    /// The file read.
    pub source: String,
    /// nginx's version.
    pub nginx_version: Option<String>,
    /// The most likely cause, if any.
    pub top_cause: Option<String>,
    /// Its upstream.
    pub upstream: Option<String>,
    /// The first minute with trouble in the window (the timeline's), if known.
    pub first_trouble: Option<String>,
    /// The exit code the run gave.
    pub exit_code: i32,
}

/// Hosts that share a top cause and upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The cause (`None`: no problem found).
    pub cause: Option<String>,
    /// The upstream.
    pub upstream: Option<String>,
    /// The earliest first trouble among them.
    pub since: Option<String>,
    /// The hosts, in input order.
    pub hosts: Vec<String>,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fleet {
    /// One row per host, in input order.
    pub hosts: Vec<HostRow>,
    /// The groups, most hosts first.
    pub groups: Vec<Group>,
}

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A bundle that could not be read.
    #[error(transparent)]
    Bundle(#[from] ReadError),
    /// A file that is not a fix502 report.
    #[error("{path} is not a fix502 JSON report or bundle: {why}")]
    NotAReport {
        /// The file.
        path: String,
        /// What was wrong.
        why: String,
    },
}

/// Reads one input: a bundle (gzip) or a JSON report.
pub fn read_input(path: &Path) -> Result<HostRow, FleetError> {
    let shown = path.display().to_string();
    let not = |why: String| FleetError::NotAReport {
        path: shown.clone(),
        why,
    };
    let mut magic = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(2).read_to_end(&mut magic))
        .map_err(|e| not(e.to_string()))?;
    let (host, report) = if magic == [0x1f, 0x8b] {
        let (manifest, report) = read_bundle(path)?;
        (manifest.host, report)
    } else {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_REPORT).read_to_end(&mut bytes))
            .map_err(|e| not(e.to_string()))?;
        let report: Report = serde_json::from_slice(&bytes).map_err(|e| not(e.to_string()))?;
        let host = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".json").to_owned())
            .unwrap_or_else(|| shown.clone());
        (host, report)
    };
    if report.schema_version > SCHEMA_VERSION {
        return Err(not(format!(
            "schema_version {} is newer than this fix502's {SCHEMA_VERSION}",
            report.schema_version
        )));
    }
    let top = report.diagnosis.first();
    Ok(HostRow {
        host,
        source: shown,
        nginx_version: report.nginx.version.clone(),
        top_cause: top.map(|d| d.cause.id().to_owned()),
        upstream: top
            .and_then(|d| d.upstream.as_ref())
            .map(ToString::to_string),
        first_trouble: report.timeline.as_ref().and_then(|t| t.first_bad.clone()),
        exit_code: report.exit_status().code(),
    })
}

/// The rows, grouped by top cause and upstream.
pub fn fleet(hosts: Vec<HostRow>) -> Fleet {
    let mut groups: Vec<Group> = Vec::new();
    for h in &hosts {
        match groups
            .iter_mut()
            .find(|g| g.cause == h.top_cause && g.upstream == h.upstream)
        {
            Some(g) => {
                g.hosts.push(h.host.clone());
                g.since = match (g.since.take(), h.first_trouble.clone()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => groups.push(Group {
                cause: h.top_cause.clone(),
                upstream: h.upstream.clone(),
                since: h.first_trouble.clone(),
                hosts: vec![h.host.clone()],
            }),
        }
    }
    // Most hosts first; the healthy last among equals.
    groups.sort_by_key(|g| (std::cmp::Reverse(g.hosts.len()), g.cause.is_none()));
    Fleet { hosts, groups }
}
