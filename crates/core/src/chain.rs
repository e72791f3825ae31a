//! Following the chain (issue 13, item 5): when the upstream that answered 502 itself is a
//! listener of another nginx master on this host, that nginx is the real failing hop. This
//! file finds the next hop of a run and words what its own diagnosis says into the first
//! run's; the engine runs the other nginx (it owns the runs, this file knows nothing of it).
//!
//! Bounded: at most [`MAX_HOPS`] further nginx are followed, and never the same master
//! twice. Nothing here runs unless a diagnosis is `upstream-returned-502`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use fix502_nginx::view::Peer;
use fix502_probe::listeners::Listener;
use fix502_probe::namespace;

use crate::causes::Cause;
use crate::discovery::{Master, master_config};
use crate::facts::Facts;
use crate::options::Options;
use crate::report::{Diagnosis, NginxInfo, StepId};

/// How many further nginx a run follows behind the one diagnosed.
pub(crate) const MAX_HOPS: usize = 3;

/// The next nginx in the chain: the diagnosis it explains and how to diagnose it.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    /// The index of the `upstream-returned-502` diagnosis it explains.
    pub index: usize,
    /// The other nginx's master pid.
    pub pid: u32,
    /// The options of its run: that master and its config, the same window and timeout,
    /// no `--url`, read-only (no restart step).
    pub options: Options,
}

/// The hops behind this run's `upstream-returned-502` diagnoses at an address another nginx
/// master (not one in `seen`) listens on. Reads the listeners only when there is such a
/// diagnosis.
pub(crate) async fn next_hops(facts: &Facts, diagnosis: &[Diagnosis], seen: &[u32]) -> Vec<Hop> {
    let wanted: Vec<(usize, SocketAddr)> = diagnosis
        .iter()
        .enumerate()
        .filter(|(_, d)| d.cause == Cause::UPSTREAM_RETURNED_502)
        .filter_map(|(i, d)| Some((i, inet_of(d.upstream.as_ref()?.peer()?)?)))
        .collect();
    if wanted.is_empty() || facts.discovery.other_masters.is_empty() {
        return Vec::new();
    }
    let Ok(listeners) = facts.listeners().await else {
        return Vec::new();
    };
    let mut hops: Vec<Hop> = Vec::new();
    for (index, addr) in wanted {
        let masters = &facts.discovery.other_masters;
        let Some(master) = master_listening(&listeners, masters, addr)
            .or_else(|| master_in_other_namespace(masters, addr))
        else {
            continue;
        };
        if seen.contains(&master.pid) || hops.iter().any(|h| h.pid == master.pid) {
            continue;
        }
        let options = Options {
            config: master_config(master, &facts.discovery.build),
            master_pid: Some(master.pid),
            since: facts.options.since,
            timeout: facts.options.timeout,
            steps: StepId::ALL
                .into_iter()
                .filter(|s| *s != StepId::Restart)
                .collect(),
            ..Options::default()
        };
        hops.push(Hop {
            index,
            pid: master.pid,
            options,
        });
    }
    hops
}

/// A TCP peer with an IP literal as a socket address.
fn inet_of(peer: &Peer) -> Option<SocketAddr> {
    match peer {
        Peer::Inet { host, port } => Some(SocketAddr::new(host.parse::<IpAddr>().ok()?, *port)),
        Peer::Unix(_) => None,
    }
}

/// The master among `masters` whose process (itself or a worker) holds a TCP listener that
/// accepts connections to `addr`.
fn master_listening<'a>(
    listeners: &[Listener],
    masters: &'a [Master],
    addr: SocketAddr,
) -> Option<&'a Master> {
    listeners
        .iter()
        .filter(|l| {
            l.socket_addr.is_some_and(|s| {
                s.port() == addr.port() && (s.ip() == addr.ip() || s.ip().is_unspecified())
            })
        })
        .filter_map(|l| l.pid)
        .find_map(|pid| masters.iter().find(|m| m.pids().contains(&pid)))
}

/// The master among `masters` that listens on `addr` in another network namespace than
/// where the probes stand: one whose namespace has `addr`'s (non-loopback) address as its
/// own, reached over a veth or a bridge (a front in one container, a back in another).
fn master_in_other_namespace(masters: &[Master], addr: SocketAddr) -> Option<&Master> {
    if addr.ip().is_loopback() || addr.ip().to_canonical().is_loopback() {
        return None;
    }
    let all = namespace::network_namespaces_keeping(|a| a.port() == addr.port());
    namespace::namespaces_listening_on(&all, None, Some(addr.ip()), addr.port())
        .into_iter()
        .filter(|m| m.namespace.addrs.contains(&addr.ip()))
        .filter_map(|m| m.listener.pid)
        .find_map(|pid| masters.iter().find(|m| m.pids().contains(&pid)))
}

/// Words the other nginx's diagnosis into `d`: an evidence line naming the real failing hop
/// first (and the deeper hops that run found), the summary, and its fix before `d`'s own.
pub(crate) fn annotate(d: &mut Diagnosis, info: &NginxInfo, found: &[Diagnosis]) {
    let at = upstream_words(d);
    let Some(top) = found.first() else {
        let pid = info
            .master_pid
            .map_or_else(String::new, |p| format!(" (pid {p})"));
        d.evidence.push(format!(
            "the nginx at {at}{pid} that answered it was diagnosed too and shows no cause of its own now"
        ));
        return;
    };
    let pid = info
        .master_pid
        .map_or_else(String::new, |p| format!("pid {p}, "));
    let config = info
        .config
        .as_ref()
        .map_or_else(|| "config unknown".to_owned(), |c| config_words(c));
    let confidence = (top.confidence * 100.0).round();
    let what = match &top.upstream {
        Some(u) => format!("whose upstream {u} {}", verb(top.cause)),
        None => "which fails".to_owned(),
    };
    let line = format!(
        "{HOP}{at} ({pid}{config}), {what} ({}, {confidence}%)",
        top.cause.id()
    );
    let deeper: Vec<String> = top
        .evidence
        .iter()
        .filter(|e| e.starts_with(HOP))
        .cloned()
        .collect();
    // The summary names the last hop: the nginx whose own upstream really fails.
    d.summary = format!("{}: {}", d.summary, deeper.last().unwrap_or(&line));
    let mut evidence = vec![line];
    evidence.extend(deeper);
    evidence.append(&mut d.evidence);
    d.evidence = evidence;
    let mut fix: Vec<String> = top
        .fix
        .iter()
        .map(|f| {
            if f.starts_with(FIX_AT) {
                f.clone()
            } else {
                format!("{FIX_AT}{at}: {f}")
            }
        })
        .collect();
    fix.append(&mut d.fix);
    d.fix = fix;
}

/// Says in `d` that the nginx master `pid` behind its upstream could not be diagnosed, and
/// why: a hop not followed is never silent.
pub(crate) fn not_followed(d: &mut Diagnosis, pid: u32, why: &str) {
    let at = upstream_words(d);
    d.evidence.push(format!(
        "the nginx master pid {pid} listens on {at}; fix502 could not diagnose it: {why}"
    ));
}

/// The diagnosis's upstream as nginx writes it, or "its upstream".
fn upstream_words(d: &Diagnosis) -> String {
    d.upstream
        .as_ref()
        .map_or_else(|| "its upstream".to_owned(), ToString::to_string)
}

/// How the evidence line naming a hop starts.
const HOP: &str = "the 502 comes from the nginx at ";

/// How a fix of another nginx in the chain starts; a deeper hop's fix already says where.
const FIX_AT: &str = "On the nginx at ";

/// `config /etc/nginx/nginx.conf`.
fn config_words(config: &Path) -> String {
    format!("config {}", config.display())
}

/// What the upstream of a cause does, in a few words.
fn verb(cause: Cause) -> &'static str {
    match cause {
        Cause::UPSTREAM_REFUSED => "refuses",
        Cause::UPSTREAM_RETURNED_502 => "answers 502 itself",
        Cause::UPSTREAM_TIMEOUT => "does not answer in time",
        Cause::UPSTREAM_RESET => "resets the connection",
        _ => "fails",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Upstream;

    fn diagnosis(cause: Cause, upstream: &str) -> Diagnosis {
        Diagnosis {
            cause,
            confidence: 0.95,
            upstream: Some(Upstream::parse(upstream)),
            http_status: 502,
            summary: format!("{upstream} fails"),
            evidence: vec![format!("seen at {upstream}")],
            fix: vec![format!("fix {upstream}")],
        }
    }

    #[test]
    fn the_hop_is_named_first_with_its_fix() {
        let mut d = diagnosis(Cause::UPSTREAM_RETURNED_502, "127.0.0.1:8081");
        let info = NginxInfo {
            master_pid: Some(42),
            config: Some(PathBuf::from("/etc/back.conf")),
            ..NginxInfo::default()
        };
        annotate(
            &mut d,
            &info,
            &[diagnosis(Cause::UPSTREAM_REFUSED, "127.0.0.1:9000")],
        );
        let line = "the 502 comes from the nginx at 127.0.0.1:8081 (pid 42, config /etc/back.conf), whose upstream 127.0.0.1:9000 refuses (upstream-refused, 95%)";
        assert_eq!(d.evidence, [line, "seen at 127.0.0.1:8081"]);
        assert!(d.summary.ends_with(line), "{}", d.summary);
        assert_eq!(
            d.fix,
            [
                "On the nginx at 127.0.0.1:8081: fix 127.0.0.1:9000",
                "fix 127.0.0.1:8081"
            ]
        );
    }

    fn master(pid: u32, workers: &[u32]) -> Master {
        let mut m = crate::discovery::tests::master(pid, 1);
        m.workers = workers
            .iter()
            .map(|&pid| crate::discovery::Worker {
                pid,
                user: None,
                uid: None,
                start_time: 0,
            })
            .collect();
        m
    }

    fn listener(addr: &str, pid: u32) -> Listener {
        Listener {
            kind: fix502_probe::ListenerKind::Tcp,
            addr: addr.to_owned(),
            socket_addr: addr.parse().ok(),
            path: None,
            inode: 0,
            pid: Some(pid),
            process: Some("nginx".to_owned()),
            cmdline: None,
            queued: None,
        }
    }

    #[test]
    fn the_master_is_found_by_its_own_or_a_worker_s_listener() {
        let masters = [master(10, &[11]), master(20, &[])];
        let listeners = [listener("0.0.0.0:8081", 11), listener("127.0.0.1:9000", 20)];
        let at =
            |a: &str| master_listening(&listeners, &masters, a.parse().unwrap()).map(|m| m.pid);
        assert_eq!(at("127.0.0.1:8081"), Some(10));
        assert_eq!(at("127.0.0.1:9000"), Some(20));
        assert_eq!(at("127.0.0.2:9000"), None);
        assert_eq!(at("127.0.0.1:9001"), None);
        // A listener of a process that is no other master's is no hop.
        assert_eq!(
            master_listening(
                &[listener("127.0.0.1:7000", 99)],
                &masters,
                "127.0.0.1:7000".parse().unwrap()
            ),
            None
        );
    }

    #[test]
    fn a_hop_with_nothing_found_or_not_followed_is_said() {
        let mut d = diagnosis(Cause::UPSTREAM_RETURNED_502, "127.0.0.1:8081");
        let before = d.clone();
        let info = NginxInfo {
            master_pid: Some(42),
            ..NginxInfo::default()
        };
        annotate(&mut d, &info, &[]);
        assert_eq!(d.summary, before.summary);
        assert_eq!(d.fix, before.fix);
        assert_eq!(
            d.evidence.last().map(String::as_str),
            Some(
                "the nginx at 127.0.0.1:8081 (pid 42) that answered it was diagnosed too and shows no cause of its own now"
            )
        );
        let mut d = before.clone();
        not_followed(&mut d, 42, "cannot read nginx config /x: denied");
        assert_eq!(
            d.evidence.last().map(String::as_str),
            Some(
                "the nginx master pid 42 listens on 127.0.0.1:8081; fix502 could not diagnose it: cannot read nginx config /x: denied"
            )
        );
        assert_eq!(d.fix, before.fix);
    }
}
