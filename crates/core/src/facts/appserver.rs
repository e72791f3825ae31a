//! Which app server listens behind an endpoint: the listener that serves the endpoint's
//! address (the exact one, else a wildcard on its port; the socket file for unix
//! endpoints), its owner process, and what `fix502_probe::appserver::identify` reads about
//! it. Only endpoints on this host can be looked at.

use fix502_nginx::view::Peer;
use fix502_probe::appserver::{self, AppServer};
use fix502_probe::listeners::{Listener, ListenerKind, listeners_on_port};

use super::endpoint::Endpoint;
use crate::upstream::Upstream;

/// What is known about the process behind an endpoint's listener.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Behind {
    /// No listener with a visible owner: nothing listens, or its owner is hidden (not root).
    Unseen,
    /// The owner could not be inspected.
    Uninspectable {
        /// The owner's pid.
        pid: u32,
        /// Why.
        why: String,
    },
    /// The app server.
    Server(Box<AppServer>),
}

impl Behind {
    /// The app server, when it is known.
    pub fn server(&self) -> Option<&AppServer> {
        match self {
            Self::Server(app) => Some(app),
            _ => None,
        }
    }
}

/// The listener serving an endpoint: the exact address, else a wildcard on its port.
pub(super) fn listener_of<'a>(endpoint: &Endpoint, all: &'a [Listener]) -> Option<&'a Listener> {
    match &endpoint.peer {
        Peer::Unix(path) => all
            .iter()
            .find(|l| l.kind == ListenerKind::Unix && l.path.as_deref() == Some(path.as_path())),
        Peer::Inet { port, .. } => {
            let on_port = listeners_on_port(all, *port);
            on_port
                .iter()
                .find(|l| Upstream::parse(&l.addr) == Upstream::from(&endpoint.peer))
                .or_else(|| {
                    on_port
                        .iter()
                        .find(|l| l.socket_addr.is_some_and(|a| a.ip().is_unspecified()))
                })
                .copied()
        }
    }
}

/// Whether the endpoint is on this host (a unix socket or a loopback address), where its
/// listener can be seen.
pub fn is_local(endpoint: &Endpoint) -> bool {
    match &endpoint.peer {
        Peer::Unix(_) => true,
        peer => peer.is_loopback(),
    }
}

/// Looks behind an endpoint's listener (blocking: call from `spawn_blocking`).
pub(super) fn look(endpoint: &Endpoint, all: &[Listener]) -> Behind {
    let Some(pid) = listener_of(endpoint, all).and_then(|l| l.pid) else {
        return Behind::Unseen;
    };
    let Ok(id) = i32::try_from(pid) else {
        return Behind::Unseen;
    };
    match appserver::identify(id, Some(&endpoint.display)) {
        Ok(app) => Behind::Server(Box::new(app)),
        Err(e) => Behind::Uninspectable {
            pid,
            why: e.to_string(),
        },
    }
}
