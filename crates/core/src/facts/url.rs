//! `--url` routed through the config, with what a proxy in front of nginx changes.

use fix502_nginx::route::{self, Request, Route};
use fix502_nginx::view::ConfigView;

/// Routes `--url` through the config. A URL on a port no server listens on (a proxy or load
/// balancer in front of nginx) is routed as if it arrived on the first listen port whose
/// servers know its host name, with a note saying so.
pub(super) fn route_url(view: &ConfigView, url: &str) -> Result<Route, String> {
    let request = Request::from_url(url).map_err(|e| e.to_string())?;
    match route::route(view, &request) {
        Err(route::RouteError::NoServerForPort(port)) => {
            let mut ports: Vec<u16> = Vec::new();
            for p in view
                .servers
                .iter()
                .flat_map(|s| &s.listens)
                .filter_map(|l| l.addr.port())
            {
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
            let named = |r: &Route| {
                !matches!(
                    r.server_match,
                    route::ServerMatch::DefaultServer | route::ServerMatch::FirstServer
                )
            };
            let tries: Vec<(u16, Route)> = ports
                .iter()
                .filter_map(|&p| {
                    let req = Request {
                        local: None,
                        port: p,
                        ..request.clone()
                    };
                    route::route(view, &req).ok().map(|r| (p, r))
                })
                .collect();
            let chosen = tries
                .iter()
                .find(|(_, r)| named(r))
                .or(tries.first())
                .cloned();
            match chosen {
                Some((p, mut r)) => {
                    r.notes.insert(
                        0,
                        format!("no server listens on port {port}; routed as if the request arrived on port {p} (a proxy or load balancer in front of nginx?)"),
                    );
                    Ok(r)
                }
                None => Err(format!("no server block listens on port {port}")),
            }
        }
        other => other.map_err(|e| e.to_string()),
    }
}
