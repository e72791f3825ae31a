//! The config's endpoints: every address nginx connects to, deduplicated, with each place
//! that sends requests to it.

use std::path::PathBuf;

use fix502_nginx::view::{ConfigView, Peer, TargetAddress};

use crate::report::Location;

/// One place in the config that sends requests to an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointUse {
    /// The pass directive as written, e.g. `proxy_pass http://backend`.
    pub directive: String,
    /// Where the pass directive is.
    pub at: Location,
    /// The `server` line of the upstream group, when the endpoint comes from one.
    pub server_at: Option<Location>,
    /// The location it serves (`/api/`), when inside one.
    pub location: Option<String>,
    /// The first server_name of the server block.
    pub server_name: Option<String>,
    /// The index of the pass directive in [`ConfigView::targets`].
    pub target: usize,
}

/// One address nginx connects to, with every place that uses it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The peer.
    pub peer: Peer,
    /// The peer as nginx writes it.
    pub display: String,
    /// The upstream group it belongs to.
    pub group: Option<String>,
    /// Where the config sends requests to it.
    pub uses: Vec<EndpointUse>,
}

impl Endpoint {
    /// A short phrase: `the upstream of location /api/ (nginx.conf:12)`.
    pub fn role(&self) -> String {
        match self.uses.first() {
            Some(u) => {
                let place = u.server_at.as_ref().unwrap_or(&u.at);
                match (&u.location, &self.group) {
                    (Some(loc), Some(g)) => format!(
                        "server of upstream {g} used by location {loc} ({})",
                        short(place)
                    ),
                    (Some(loc), None) => {
                        format!("the upstream of location {loc} ({})", short(place))
                    }
                    (None, Some(g)) => format!("server of upstream {g} ({})", short(place)),
                    (None, None) => format!("the upstream at {}", short(place)),
                }
            }
            None => "an upstream".to_owned(),
        }
    }

    /// The most specific config line for this endpoint.
    pub fn location(&self) -> Option<Location> {
        self.uses
            .first()
            .map(|u| u.server_at.clone().unwrap_or_else(|| u.at.clone()))
    }
}

/// `dir/file:line` with only the last two path parts, for summaries.
pub fn short(loc: &Location) -> String {
    let parts: Vec<_> = loc.file.iter().collect();
    let tail: PathBuf = parts[parts.len().saturating_sub(2)..].iter().collect();
    format!("{}:{}", tail.display(), loc.line)
}

/// Every endpoint of the config, deduplicated, with the places that use it.
pub(super) fn endpoints_of(view: &ConfigView) -> (Vec<Endpoint>, Vec<(String, Location)>) {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut variables = Vec::new();
    for (index, target) in view.targets.iter().enumerate() {
        let directive = format!("{} {}", target.module.directive(), target.raw);
        let at = Location::from(&target.span);
        if let TargetAddress::Variable(_) = target.address {
            variables.push((directive, at));
            continue;
        }
        let server_name = target
            .server
            .and_then(|i| view.servers.get(i))
            .and_then(|s| s.names.first().cloned());
        let group = match &target.address {
            TargetAddress::Group(g) => Some(g.clone()),
            _ => None,
        };
        for (peer, server) in view.peers_of(target) {
            let display = peer.to_string();
            let use_ = EndpointUse {
                directive: directive.clone(),
                at: at.clone(),
                server_at: server.map(|s| Location::from(&s.span)),
                location: target.location.clone(),
                server_name: server_name.clone(),
                target: index,
            };
            match endpoints.iter_mut().find(|e| e.peer == peer) {
                Some(e) => e.uses.push(use_),
                None => endpoints.push(Endpoint {
                    peer,
                    display,
                    group: group.clone(),
                    uses: vec![use_],
                }),
            }
        }
    }
    (endpoints, variables)
}
