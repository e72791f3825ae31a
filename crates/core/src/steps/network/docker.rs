//! What Docker's own files say about a name that nginx in a Docker container cannot resolve:
//! Docker's embedded DNS (127.0.0.11 inside the container) answers a container's name,
//! service name and aliases only while that container runs, and only on the networks it
//! shares with the one asking. What belongs here: finding the container a name meant (by a
//! Compose service name, only in nginx's own Compose project) and saying why the embedded
//! DNS does not answer it, with the fix.

use fix502_probe::docker::{self, DockerContainer};

use crate::facts::Facts;

/// Why Docker's embedded DNS does not answer `host` for nginx's container: evidence lines
/// and fixes. Empty when nginx does not run in a Docker container, or no container has that
/// name, service name or alias.
pub(super) fn why_unresolved(facts: &Facts, host: &str) -> (Vec<String>, Vec<String>) {
    let Some(nginx) = facts
        .discovery
        .master
        .as_ref()
        .and_then(|m| m.container.as_ref())
        .filter(|c| c.runtime == "docker")
        .and_then(|c| docker::container_by_id(c.id.as_deref()?))
    else {
        return (Vec::new(), Vec::new());
    };
    let all = docker::containers();
    // A Compose service name means the service of nginx's own project: the same name in
    // another project is another app.
    let named: Vec<&DockerContainer> = all
        .iter()
        .filter(|c| c.id != nginx.id && answers_to(c, host))
        .filter(|c| {
            nginx.compose_project.is_none()
                || c.compose_project == nginx.compose_project
                || c.name.eq_ignore_ascii_case(host.trim_end_matches('.'))
        })
        .collect();
    let mut evidence = Vec::new();
    let mut fixes = Vec::new();
    if named.is_empty() {
        return (evidence, fixes);
    }
    let project = |c: &DockerContainer| match (&c.compose_service, &c.compose_project) {
        (Some(s), Some(p)) => format!(" (service {s} of Compose project {p})"),
        _ => String::new(),
    };
    let running: Vec<&&DockerContainer> = named.iter().filter(|c| c.running).collect();
    if running.is_empty() {
        for c in &named {
            evidence.push(format!(
                "container {}{} is stopped (exit code {}): Docker's DNS at 127.0.0.11 answers {host} only while it runs",
                c.name,
                project(c),
                c.exit_code
            ));
        }
        let c = named[0];
        fixes.push(match (&c.compose_service, &c.compose_project) {
            (Some(s), Some(p)) => format!(
                "Start it: docker-compose -p {p} up -d {s} (or docker start {})",
                c.name
            ),
            _ => format!("Start it: docker start {}", c.name),
        });
        return (evidence, fixes);
    }
    let nginx_networks: Vec<&str> = nginx.networks.iter().map(|n| n.name.as_str()).collect();
    for c in running {
        let shared = c
            .networks
            .iter()
            .any(|n| nginx_networks.contains(&n.name.as_str()));
        if shared {
            continue;
        }
        let theirs: Vec<&str> = c.networks.iter().map(|n| n.name.as_str()).collect();
        evidence.push(format!(
            "container {}{} runs, but on network(s) {}, none of which nginx's container {} is on ({}): Docker's DNS answers a name only on a shared network",
            c.name,
            project(c),
            theirs.join(", "),
            nginx.name,
            nginx_networks.join(", ")
        ));
        if let Some(net) = theirs.first() {
            fixes.push(format!(
                "Connect nginx's container to it: docker network connect {net} {} (Compose: list the network under both services' `networks:`)",
                nginx.name
            ));
        }
    }
    (evidence, fixes)
}

/// Whether Docker's DNS would answer `host` for container `c` (on a shared network, while
/// it runs): its name, its Compose service name, or one of its network aliases.
fn answers_to(c: &DockerContainer, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    c.name.eq_ignore_ascii_case(host)
        || c.compose_service
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(host))
        || c.networks
            .iter()
            .any(|n| n.aliases.iter().any(|a| a.eq_ignore_ascii_case(host)))
}
