//! The app in another network namespace: when a loopback upstream (`127.0.0.1`, `[::1]`,
//! `localhost`) refuses or times out where nginx stands, but a process in another network
//! namespace of the host (the host's own, or a container's) listens on that port. The classic
//! case is `proxy_pass http://localhost:3000` inside an nginx container while the app listens
//! on the host: inside the container, `localhost` is the container itself.
//!
//! What belongs here: finding that listener, naming where it is, and the fix that fits where
//! nginx and the app stand (the host as a container reaches it, a shared Docker network, or
//! `network_mode: host`). Only one such listener is a claim; several are a hint.

use std::net::{IpAddr, SocketAddr};

use fix502_probe::docker::{self, DockerContainer};
use fix502_probe::namespace::{self, ListenerMatch, NetNamespace};

use super::{ELSEWHERE, point_at};
use crate::causes::Cause;
use crate::facts::{Endpoint, Facts, ProbeResult};
use crate::report::{Finding, Severity};
use crate::upstream::Upstream;

/// The listeners in other network namespaces for each loopback upstream that failed where
/// nginx stands.
pub(super) async fn findings(facts: &Facts) -> Vec<Finding> {
    let failed: Vec<(&Endpoint, SocketAddr)> = facts
        .endpoints
        .iter()
        .zip(facts.probes().await)
        .filter_map(|(e, p)| Some((e, failed_loopback(p)?)))
        .collect();
    if failed.is_empty() {
        return Vec::new();
    }
    let nginx_net = facts.discovery.master.as_ref().and_then(|m| m.ns.net);
    let here = nginx_net.or_else(|| namespace::NamespaceIds::own().net);
    if !namespace::another_network_namespace(here) {
        return Vec::new();
    }
    // Only the listeners on the failed ports matter: the others' owners are not looked for.
    let ports: Vec<u16> = failed.iter().map(|(_, t)| t.port()).collect();
    let read = move || namespace::network_namespaces_keeping(|a| ports.contains(&a.port()));
    let all = match tokio::task::spawn_blocking(read).await {
        Ok(all) if all.len() > 1 => all,
        _ => return Vec::new(),
    };
    let nginx_container = facts
        .discovery
        .master
        .as_ref()
        .and_then(|m| m.container.as_ref())
        .filter(|c| c.runtime == "docker")
        .and_then(|c| docker::container_by_id(c.id.as_deref()?));
    let mut out = Vec::new();
    for (endpoint, target) in failed {
        let found =
            namespace::namespaces_listening_on(&all, nginx_net, Some(target.ip()), target.port());
        if found.is_empty() {
            continue;
        }
        let mut places: Vec<u64> = found.iter().map(|m| m.namespace.inode).collect();
        places.dedup();
        let nginx_where = nginx_place(facts, nginx_container.as_ref());
        // nginx on the host: a container's listener is where the app may be, not proof
        // (the port may be another app's, unpublished on purpose).
        let nginx_on_host = !facts.discovery.master.as_ref().is_some_and(|m| m.other_net);
        if places.len() > 1 || nginx_on_host {
            let mut f = Finding::new(
                ELSEWHERE,
                Severity::Warning,
                format!(
                    "{target} fails in {nginx_where}, and {} other network namespace(s) listen on port {}: the app may be there (a hint, not proof); a container's port is reached from the host only when published (`-p 127.0.0.1:{}:{}`)",
                    places.len(),
                    target.port(),
                    target.port(),
                    target.port()
                ),
            )
            .upstream(Upstream::parse(&target.to_string()))
            .at(endpoint.location());
            for m in &found {
                f = f.evidence(format!(
                    "{} listens on {} in {}",
                    owner(m),
                    m.listener.addr,
                    place(m.namespace)
                ));
            }
            out.push(f);
            continue;
        }
        let m = &found[0];
        let there = place(m.namespace);
        let headline = format!(
            "{} listens on {} in {there}, not in {nginx_where}, where {} is nginx's own loopback",
            owner(m),
            m.listener.addr,
            target.ip()
        );
        let mut f = Finding::new(
            ELSEWHERE,
            Severity::Error,
            format!(
                "{target} fails in {nginx_where}, but {} listens on {} in {there}",
                owner(m),
                m.listener.addr
            ),
        )
        .cause(Cause::UPSTREAM_WRONG_ADDRESS)
        .headline(headline)
        .upstream(Upstream::parse(&target.to_string()))
        .at(endpoint.location())
        .evidence(format!(
            "{} of {nginx_where} is not the loopback of {there}: a connection to {target} made where nginx stands reaches nothing",
            target.ip()
        ));
        for fix in fixes(facts, endpoint, m, nginx_container.as_ref()) {
            f = f.fix(fix);
        }
        out.push(f);
    }
    out
}

/// The loopback address of a TCP endpoint whose connect failed (refused or timed out) where
/// nginx stands.
fn failed_loopback(probe: &ProbeResult) -> Option<SocketAddr> {
    let ProbeResult::Tcp { attempts, .. } = probe else {
        return None;
    };
    attempts
        .iter()
        .filter(|a| !a.outcome.is_connected())
        .filter_map(|a| a.target.parse::<SocketAddr>().ok())
        .find(|a| a.ip().is_loopback() || a.ip().to_canonical().is_loopback())
}

/// Where nginx stands, in words.
fn nginx_place(facts: &Facts, container: Option<&DockerContainer>) -> String {
    if let Some(c) = container {
        return format!("nginx's docker container {}", c.name);
    }
    match facts.discovery.master.as_ref() {
        Some(m) if m.other_net => match m.ns.net {
            Some(net) => format!("nginx's network namespace net:[{net}]"),
            None => "nginx's network namespace".to_owned(),
        },
        _ => "the host's network namespace, where nginx runs".to_owned(),
    }
}

/// A network namespace, in words: the host's, a container's (by name when Docker knows it),
/// or its id and the processes in it.
fn place(ns: &NetNamespace) -> String {
    if ns.host {
        return "the host's network namespace".to_owned();
    }
    if let Some(c) = &ns.container {
        let known = (c.runtime == "docker")
            .then(|| docker::container_by_id(c.id.as_deref()?))
            .flatten();
        return match (known, &c.id) {
            (Some(d), _) => format!("docker container {}", d.name),
            (None, Some(id)) => format!("{} container {}", c.runtime, id.get(..12).unwrap_or(id)),
            (None, None) => format!("a {} container", c.runtime),
        };
    }
    let names = if ns.names.is_empty() {
        String::new()
    } else {
        format!(" ({})", ns.names.join(", "))
    };
    format!("network namespace net:[{}]{names}", ns.inode)
}

/// The process holding a listener, in words.
fn owner(m: &ListenerMatch<'_>) -> String {
    match (&m.listener.process, m.listener.pid) {
        (Some(name), Some(pid)) => format!("{name} (pid {pid})"),
        (None, Some(pid)) => format!("pid {pid}"),
        _ => "a process".to_owned(),
    }
}

/// The fixes for nginx at `endpoint` reaching the listener `m` in another namespace.
fn fixes(
    facts: &Facts,
    endpoint: &Endpoint,
    m: &ListenerMatch<'_>,
    nginx_container: Option<&DockerContainer>,
) -> Vec<String> {
    let port = m.listener.addr.port();
    let loopback_only = m.listener.addr.ip().is_loopback();
    let mut out = Vec::new();
    let app_container = m
        .namespace
        .container
        .as_ref()
        .filter(|c| c.runtime == "docker")
        .and_then(|c| docker::container_by_id(c.id.as_deref()?));
    match (nginx_container, m.namespace.host, app_container) {
        // nginx in a container, the app on the host.
        (Some(nginx), true, _) => {
            let gateway = nginx.networks.iter().find_map(|n| n.gateway);
            let mut to = format!("host.docker.internal:{port}");
            if let Some(fix) = point_at(facts, endpoint, &to) {
                out.push(format!(
                    "{fix}: the host as the container reaches it (Compose: `extra_hosts: [\"host.docker.internal:host-gateway\"]`; docker run: `--add-host host.docker.internal:host-gateway`)"
                ));
            }
            if let Some(gw) = gateway {
                to = socket(gw, port);
                out.push(format!(
                    "Or use the bridge gateway {to}, the host's address on the container's network"
                ));
            }
            if loopback_only {
                out.push(format!(
                    "The app listens on {} only, which no container reaches: make it listen on {} (or 0.0.0.0 behind a firewall)",
                    m.listener.addr,
                    gateway.map_or_else(|| "the bridge gateway".to_owned(), |g| g.to_string())
                ));
            }
            out.push(format!(
                "Or run nginx in the host's network namespace: `network_mode: host` (Compose) or `docker run --network host` for container {}",
                nginx.name
            ));
        }
        // The app in a Docker container: its address on a network nginx's container shares,
        // or its service name there.
        (_, _, Some(app)) => {
            let shared = nginx_container.and_then(|n| {
                app.networks
                    .iter()
                    .find(|a| n.networks.iter().any(|b| b.name == a.name))
            });
            match shared {
                Some(net) => {
                    let name = app.compose_service.clone().unwrap_or_else(|| app.name.clone());
                    if let Some(fix) = point_at(facts, endpoint, &format!("{name}:{port}")) {
                        out.push(format!(
                            "{fix}: container {} on network {}, which nginx's container shares",
                            app.name, net.name
                        ));
                    }
                }
                None => out.push(format!(
                    "Put nginx and container {} on one Docker network (`docker network connect NETWORK {}`, or one `networks:` entry in Compose) and point nginx at its service name, port {port}",
                    app.name, app.name
                )),
            }
            if loopback_only {
                out.push(format!(
                    "The app listens on {} only, inside its container: make it listen on 0.0.0.0 there",
                    m.listener.addr
                ));
            }
        }
        // Namespaces without Docker: nginx (or the app) in a namespace of its own.
        _ => {
            out.push(format!(
                "Run nginx in the same network namespace as the app ({}), or give them a route to each other (a veth pair) and point nginx at the app's address there",
                place(m.namespace)
            ));
            if loopback_only {
                out.push(format!(
                    "The app listens on {} only, which no other namespace reaches",
                    m.listener.addr
                ));
            }
        }
    }
    out
}

/// `ip:port` as nginx writes it (`[::1]:80` for IPv6).
fn socket(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}
