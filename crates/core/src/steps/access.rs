//! Step 1's access-log check, over each access log as the facts read it (with the
//! `log_format` the config gives it, across its rotated history: `facts/access.rs`). It
//! reports what clients really got (502/504 per upstream and URL, the share of all
//! requests, with a volume guard), the 502s that left no error-log line (the upstream
//! answered 502 itself, a cached 502), the upstream errors retries hid, and what the format
//! lacks for a sharper answer.

use fix502_nginx::accesslog::{self, AccessOptions, LineGroup};

use crate::causes::Cause;
use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{AccessRead, Facts};
use crate::report::{CheckId, Evidence, Finding, Severity, StepId};
use crate::upstream::Upstream;
use crate::words::duration;

/// The checks of this part of the step.
pub static CHECKS: [FnCheck; 1] = [FnCheck::new(ACCESS_LOG, access_log)];

/// Check id: the access-log status scan (502s that left no error-log line).
pub const ACCESS_LOG: CheckId = CheckId::new("logs.access-log", StepId::Logs, Evidence::Log);

/// Upstreams and URLs listed at most in a finding's evidence.
const TOP: usize = 3;

/// The check.
fn access_log(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out: Vec<Finding> = facts
            .access_log_stdout
            .iter()
            .map(|path| {
                let docker = facts
                    .docker_container_name()
                    .map(|name| format!(" (`docker logs {name}`)"))
                    .unwrap_or_default();
                Finding::new(
                    ACCESS_LOG,
                    Severity::Info,
                    format!("access log {path} is nginx's standard output: its lines go to the container's or service's log{docker}, not to a file; not read"),
                )
            })
            .collect();
        if facts.access_logs.is_empty() {
            return out;
        }
        let window = duration(facts.options.since);
        let logged = facts.logged_502s().await;
        for read in facts.access_reads().await {
            out.extend(findings_of(facts, read, &window, logged));
        }
        out
    })
}

fn findings_of(facts: &Facts, read: &AccessRead, window: &str, logged: u64) -> Vec<Finding> {
    let path = read.path.display();
    let report = match &read.report {
        Ok(r) => r,
        Err(e) => return vec![Finding::could_not_check(ACCESS_LOG, e.clone())],
    };
    let mut out = Vec::new();
    let mut info = Finding::new(
        ACCESS_LOG,
        Severity::Info,
        format!(
            "{path} (log_format {}): {} in the last {window}",
            read.format,
            report.rate_text()
        ),
    );
    for u in report
        .by_upstream
        .iter()
        .filter(|u| u.status_502 + u.status_504 + u.failed_attempts > 0)
        .take(TOP)
    {
        info = info.evidence(format!(
            "upstream {}: {} × 502, {} × 504, {} of {} attempts failed",
            u.upstream, u.status_502, u.status_504, u.failed_attempts, u.attempts
        ));
    }
    for u in report.by_url.iter().take(TOP) {
        info = info.evidence(format!(
            "{}: {} × 502, {} × 504",
            u.path, u.status_502, u.status_504
        ));
    }
    out.push(info);

    let only_upstream = match facts.endpoints.as_slice() {
        [one] => Some(Upstream::from(&one.peer)),
        _ => None,
    };
    let upstream_of = |group: &LineGroup| {
        // The address of the last attempt, from the samples' `$upstream_addr` when the
        // report has a single upstream with 502s; else the config's only upstream.
        let with_502: Vec<_> = report
            .by_upstream
            .iter()
            .filter(|u| u.status_502 > 0 && u.upstream != accesslog::NO_UPSTREAM)
            .collect();
        match with_502.as_slice() {
            [one] if group.count > 0 => Some(Upstream::parse(&one.upstream)),
            _ => only_upstream.clone(),
        }
    };
    for (group, what) in [
        (
            &report.upstream_502,
            "came from the upstream itself (its own status was 502, with a response header): nginx only relayed them",
        ),
        (
            &report.cached_502,
            "were served from nginx's cache: a cached 502 is replayed until it expires",
        ),
    ] {
        if group.count == 0 {
            continue;
        }
        let mut f = Finding::new(
            ACCESS_LOG,
            Severity::Warning,
            format!(
                "{} of the 502s in {path} in the last {window} {what}",
                group.count
            ),
        )
        .cause(Cause::UPSTREAM_RETURNED_502);
        f.upstream = upstream_of(group);
        f.evidence = group.samples.clone();
        out.push(f);
    }
    // A format that cannot tell: compare with the error log, as before.
    if report.unknown_502.count > logged && report.upstream_502.count == 0 {
        let silent = report.unknown_502.count - logged;
        let mut f = Finding::new(
            ACCESS_LOG,
            Severity::Warning,
            format!(
                "{silent} of {} responses with status 502 in {path} in the last {window} left no error-log line: the upstream answered 502 itself and nginx only relayed it (or a cached 502 was served)",
                report.unknown_502.count
            ),
        )
        .cause(Cause::UPSTREAM_RETURNED_502);
        f.upstream = only_upstream.clone();
        f.evidence = report.unknown_502.samples.clone();
        out.push(f);
    }
    let hidden = report.retried_ok.count + report.redirected_ok.count;
    if hidden > 0 {
        let mut f = Finding::new(
            ACCESS_LOG,
            Severity::Info,
            format!(
                "{hidden} request(s) in {path} got a good answer after {} failed upstream attempt(s): retries ({}) and error_page redirects ({}) hid those errors from clients",
                report.hidden_failures, report.retried_ok.count, report.redirected_ok.count
            ),
        );
        f.evidence = report.retried_ok.samples.clone();
        out.push(f);
    }
    // Lines that are not of the log's format are counted, never quoted: the file may not be
    // a log at all.
    if report.unmatched > 0 {
        out.push(Finding::new(
            ACCESS_LOG,
            Severity::Warning,
            format!(
                "{} line(s) of {path} do not match log_format {}: they were skipped",
                report.unmatched, read.format
            ),
        ));
    }
    if report.future > 0 {
        out.push(Finding::new(
            ACCESS_LOG,
            Severity::Warning,
            format!(
                "{} line(s) of {path} are dated after now: left out of the window (a wrong clock, or lines not written by this nginx)",
                report.future
            ),
        ));
    }
    if report.oversized > 0 {
        out.push(Finding::new(
            ACCESS_LOG,
            Severity::Warning,
            format!(
                "{} line(s) of {path} are longer than {} KiB, more than an access-log line holds: they were skipped",
                report.oversized,
                AccessOptions::default().max_line_bytes / 1024
            ),
        ));
    }
    for note in &read.notes {
        out.push(Finding::new(
            ACCESS_LOG,
            Severity::Info,
            format!("skipped part of the history: {note}"),
        ));
    }
    if let Some(s) = &read.suggestion {
        let mut f = Finding::new(
            ACCESS_LOG,
            Severity::Info,
            format!(
                "log_format {} lacks {}: with them fix502 can tell who made each 502",
                read.format,
                s.missing.join(", ")
            ),
        );
        if let Some(line) = &s.log_format {
            f = f.fix(format!("In http {{}}: {line}"));
        }
        f = f.fix(format!("Then log with it: {}", s.access_log));
        out.push(f);
    }
    out
}
