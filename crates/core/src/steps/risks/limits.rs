//! Rule 8: `worker_connections` above the workers' open-file limit (docs/nginx-messages.md §15).
//!
//! Each connection is a descriptor and a proxied request holds two, so a worker that may
//! open more connections than its RLIMIT_NOFILE allows fails under load with "Too many open
//! files" (24). What belongs here: this rule and its tests; the limit itself is read by the
//! check into [`super::context::HostContext::worker_nofile`].

use fix502_nginx::config::{Config, Span};

use super::context::HostContext;
use super::written::{loc, warning};
use crate::causes::Cause;
use crate::report::{Finding, Location};

/// File descriptors a worker holds besides its connections (listening sockets, log files,
/// epoll, the channel to the master, cache and temp files).
const FD_RESERVE: u64 = 64;

/// A main-context directive's first argument as a number, with its span.
fn main_number(config: &Config, name: &str) -> Option<(u64, Span)> {
    config
        .directives
        .iter()
        .filter(|d| d.name == name && d.block.is_none())
        .find_map(|d| Some((d.args.first()?.parse().ok()?, d.span.clone())))
}

pub(super) fn fd_rule(config: &Config, host: &HostContext) -> Vec<Finding> {
    let events = config
        .directives
        .iter()
        .find(|d| d.name == "events" && d.block.is_some());
    let written_wc = events.and_then(|e| {
        e.block
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|d| d.name == "worker_connections")
            .find_map(|d| Some((d.args.first()?.parse::<u64>().ok()?, d.span.clone())))
    });
    let rlimit = main_number(config, "worker_rlimit_nofile");
    let (limit, limit_from) = match (host.worker_nofile, &rlimit) {
        (Some(n), _) => (
            n,
            "the running workers' soft RLIMIT_NOFILE (/proc/PID/limits)".to_owned(),
        ),
        (None, Some((n, span))) => (
            *n,
            format!("worker_rlimit_nofile {n} at {}", Location::from(span)),
        ),
        (None, None) => return Vec::new(),
    };
    let connections = written_wc.as_ref().map_or(512, |(n, _)| *n);
    if connections.saturating_add(FD_RESERVE) <= limit {
        return Vec::new();
    }
    let at = written_wc
        .as_ref()
        .map(|(_, s)| s)
        .or(events.map(|e| &e.span));
    let mut f = warning(
        Cause::FD_EXHAUSTION,
        format!(
            "worker_connections {connections} does not fit in the workers' open-file limit of {limit}: under load workers fail with \"Too many open files\""
        ),
    )
    .at(at.and_then(loc))
    .evidence(match &written_wc {
        Some((n, span)) => format!("worker_connections {n} at {}", Location::from(span)),
        None => "worker_connections 512 (the default)".to_owned(),
    })
    .evidence(format!("open-file limit {limit}: {limit_from}"));
    if let (Some(n), Some((r, span))) = (host.worker_nofile, &rlimit)
        && n != *r
    {
        f = f.evidence(format!(
            "worker_rlimit_nofile {r} at {} is not what the workers have: reload nginx to apply it",
            Location::from(span)
        ));
    }
    if let Some((n, _)) = main_number(config, "worker_processes") {
        f = f.evidence(format!(
            "worker_processes {n}: each worker has this limit on its own"
        ));
    }
    f = f
        .evidence(format!(
            "each proxied request holds two connections (client and upstream), and a worker also needs about {FD_RESERVE} descriptors for listening sockets, logs and files"
        ))
        .evidence(
            "at the limit nginx logs \"socket() failed (24: Too many open files) while connecting to upstream\" (500) or \"accept4() failed (24: ...)\"",
        )
        .fix(format!(
            "worker_rlimit_nofile {}; (main context, then reload)",
            connections.saturating_mul(2).max(connections + FD_RESERVE)
        ))
        .fix(format!(
            "or lower it: worker_connections {};",
            limit.saturating_sub(FD_RESERVE).max(1)
        ));
    vec![f]
}

#[cfg(test)]
mod tests {
    use crate::causes::Cause;
    use crate::steps::risks::context::HostContext;
    use crate::steps::risks::test_support::{load, run, with};

    #[test]
    fn fd_limit_fires() {
        let text = "worker_processes 2;\nevents { worker_connections 4096; }\nhttp {}\n";
        let host = HostContext {
            worker_nofile: Some(1024),
            ..HostContext::default()
        };
        let found = run(load(text), &host);
        let hits = with(&found, Cause::FD_EXHAUSTION);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].location.as_ref().unwrap().line, 2);
        assert!(hits[0].message.contains("4096"));
        assert_eq!(
            hits[0].fix[0],
            "worker_rlimit_nofile 8192; (main context, then reload)"
        );
        // No running worker: worker_rlimit_nofile stands in.
        let text = "worker_rlimit_nofile 1024;\nevents { worker_connections 1024; }\nhttp {}\n";
        let found = run(load(text), &HostContext::default());
        assert_eq!(with(&found, Cause::FD_EXHAUSTION).len(), 1);
        // The default 512 against a tiny limit.
        let found = run(
            load("events {}\nhttp {}\n"),
            &HostContext {
                worker_nofile: Some(256),
                ..HostContext::default()
            },
        );
        assert!(found[0].evidence[0].contains("512 (the default)"));
    }

    #[test]
    fn fd_limit_near_misses() {
        let text = "events { worker_connections 768; }\nhttp {}\n";
        let host = HostContext {
            worker_nofile: Some(1024),
            ..HostContext::default()
        };
        assert!(run(load(text), &host).is_empty());
        // Unknown limit: nothing to say.
        let text = "events { worker_connections 100000; }\nhttp {}\n";
        assert!(run(load(text), &HostContext::default()).is_empty());
    }
}
