//! The five steps. Each file holds the checks of one step; this module holds what they
//! share: the step's "what next" hint and small helpers for wording.

pub mod access;
pub mod answer;
pub mod appserver;
pub mod config;
pub mod host;
pub mod logs;
pub mod network;
pub mod reload;
pub mod restart;
pub mod risks;
pub mod route;
pub mod upstream;

use std::time::Duration;

use crate::report::{Cause, Finding, Severity, StepId};

/// The suggested next action after a step, from what it found.
pub fn next_hint(step: StepId, findings: &[Finding]) -> Option<String> {
    let problem = findings
        .iter()
        .find(|f| f.severity == Severity::Error && !f.could_not_check);
    let target = problem.and_then(|f| f.upstream.clone());
    match (step, problem) {
        (StepId::Logs, Some(f)) => Some(match (f.cause, target) {
            (Some(Cause::NoLiveUpstreams), Some(u)) => {
                format!("Check every server of upstream {u} (step: upstream)")
            }
            (Some(c), Some(u)) if answers_badly(c) => {
                format!("Check what {u} answers when spoken to as nginx does (step: upstream)")
            }
            (_, Some(u)) => format!("Check whether anything listens on {u} (step: upstream)"),
            _ => "Check the upstreams nginx connects to (step: upstream)".to_owned(),
        }),
        (StepId::Logs, None) => Some(
            "No upstream errors in the window; check the upstreams live (step: upstream)"
                .to_owned(),
        ),
        (StepId::Upstream, Some(f)) => Some(match f.cause {
            Some(Cause::UpstreamWrongAddress) => {
                "Point nginx at the address the app listens on, or move the app (see diagnosis)"
                    .to_owned()
            }
            Some(Cause::UnixSocketPermission) => {
                "Fix the socket's owner or mode for the worker user (see diagnosis)".to_owned()
            }
            Some(c) if answers_badly(c) => {
                "Compare with the directives in effect at that location (step: config)".to_owned()
            }
            _ => "Confirm the config sends requests where you expect (step: config)".to_owned(),
        }),
        (StepId::Upstream, None) => {
            Some("Upstreams answer; check the config nginx runs (step: config)".to_owned())
        }
        (StepId::Config, Some(f)) if f.cause == Some(Cause::ConfigInvalid) => {
            Some("Fix the config at the line nginx -t names, then run nginx -t again".to_owned())
        }
        (StepId::Config, Some(f)) if f.cause == Some(Cause::NginxNotRunning) => {
            Some("Start nginx once nginx -t passes (step: restart)".to_owned())
        }
        (StepId::Config, _) => {
            Some("Check name resolution and routes to the upstreams (step: network)".to_owned())
        }
        (StepId::Network, _) => {
            Some("See the diagnosis and the safe actions (step: restart)".to_owned())
        }
        (StepId::Restart, _) => None,
    }
}

/// Causes where the upstream accepted the connection and then answered badly.
fn answers_badly(cause: Cause) -> bool {
    matches!(
        cause,
        Cause::UpstreamClosedEarly
            | Cause::UpstreamReset
            | Cause::UpstreamKeepaliveRace
            | Cause::UpstreamReturned502
            | Cause::UpstreamHeaderTooBig
            | Cause::UpstreamInvalidResponse
            | Cause::UpstreamProtocolMismatch
            | Cause::UpstreamTls
            | Cause::UpstreamTimeout
    )
}

/// `1h`, `15m`, `90s`: how a window was given.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 && s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
