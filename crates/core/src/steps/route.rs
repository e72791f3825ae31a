//! Step 3's routing checks: which `server`, `location` and pass directive serve a request
//! (the `--url`, else each request the error log names), as nginx chooses them, and the
//! directives in effect there, each with the file:line that set it or nginx's default.

use fix502_nginx::route::{self, Hop, Route};
use fix502_nginx::settings::{self, directive_prefix};
use fix502_nginx::view::{ConfigView, PassModule, PassTarget, TargetAddress};

use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Facts, short};
use crate::report::{CheckId, Evidence, Finding, Location, Severity, StepId};
use crate::upstream::Upstream;

/// Check id: the route of the request through the config.
pub const ROUTE: CheckId = CheckId::new("config.route", StepId::Config, Evidence::Config);
/// Check id: the directives in effect where the request is passed upstream.
pub const EFFECTIVE: CheckId = CheckId::new("config.effective", StepId::Config, Evidence::Config);

/// The checks of this file.
pub static CHECKS: [FnCheck; 2] = [
    FnCheck::new(ROUTE, route_check),
    FnCheck::new(EFFECTIVE, effective_check),
];

/// Logged requests routed at most (the rest are summarised by count).
const MAX_LOGGED_ROUTES: usize = 5;
/// Pass targets whose settings are listed at most, without `--url`.
const MAX_EFFECTIVE: usize = 3;

/// The chain as one line: `server shop (sites/shop:3) → location /api/ (:12) → ...`; a hop
/// in the same file as the one before shows only `:line`.
pub fn chain_text(hops: &[Hop]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut last_file: Option<&std::path::Path> = None;
    for hop in hops {
        match &hop.at {
            Some(span) => {
                let place = if last_file == Some(span.file.as_ref()) {
                    format!(":{}", span.line)
                } else {
                    short(&Location::from(span))
                };
                out.push(format!("{} ({place})", hop.label));
                last_file = Some(span.file.as_ref());
            }
            None => out.push(hop.label.clone()),
        }
    }
    out.join(" → ")
}

/// The route of a logged request (`server:`, `request:`, `host:` of an error-log line), as
/// a chain line, when the config has it.
pub fn logged_chain(
    view: &ConfigView,
    server: Option<&str>,
    request: &str,
    host: Option<&str>,
) -> Option<(Route, String)> {
    let route = route::route_logged(view, server, request, host)?;
    let text = chain_text(&route.hops(view));
    Some((route, text))
}

fn route_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        if facts.config.is_none() {
            return vec![Finding::could_not_check(ROUTE, "the config did not load")];
        }
        match (&facts.options.url, &facts.route) {
            (Some(url), Some(Ok(route))) => vec![url_finding(facts, url, route)],
            (Some(url), Some(Err(why))) => vec![Finding::new(
                ROUTE,
                Severity::Warning,
                format!("cannot route {url} through the config: {why}"),
            )],
            _ => logged_routes(facts).await,
        }
    })
}

/// The finding for `--url`: its chain, and what nginx does there when it does not proxy.
fn url_finding(facts: &Facts, url: &str, route: &Route) -> Finding {
    let chain = chain_text(&route.hops(&facts.view));
    let handler = route.locations.last().map(|l| Location::from(&l.span));
    let mut f = match route.target {
        Some(_) => Finding::new(ROUTE, Severity::Info, format!("{url}: {chain}")),
        None => Finding::new(
            ROUTE,
            Severity::Warning,
            format!(
                "{url}: {chain}: no proxy_pass / fastcgi_pass / uwsgi_pass / scgi_pass / grpc_pass handles it, so nginx answers it itself and a 502 for it cannot come from an upstream"
            ),
        ),
    }
    .at(handler);
    for note in &route.notes {
        f = f.evidence(note.clone());
    }
    f
}

/// Without `--url`: the chain of each distinct request the error log names.
async fn logged_routes(facts: &Facts) -> Vec<Finding> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut more = 0usize;
    for read in facts.logs().await {
        let Ok(summary) = &read.summary else { continue };
        for g in &summary.groups {
            let Some(request) = &g.request else { continue };
            let Some((_, chain)) = logged_chain(&facts.view, g.server.as_deref(), request, None)
            else {
                continue;
            };
            let line = format!(
                "\"{request}\" (server: {}): {chain}",
                g.server.as_deref().unwrap_or("")
            );
            if seen.contains(&line) {
                continue;
            }
            seen.push(line.clone());
            if out.len() < MAX_LOGGED_ROUTES {
                let mut f = Finding::new(ROUTE, Severity::Info, format!("logged request {line}"));
                f.upstream = g.failure.peer.as_deref().map(Upstream::parse);
                out.push(f);
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        out.push(Finding::new(
            ROUTE,
            Severity::Info,
            format!("{more} more logged request(s) routed the same way as above or elsewhere"),
        ));
    }
    if out.is_empty() {
        out.push(Finding::new(
            ROUTE,
            Severity::Info,
            "no --url given and no logged request to route (pass --url to see which server and location serve it)",
        ));
    }
    out
}

fn effective_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        if facts.config.is_none() {
            return vec![Finding::could_not_check(
                EFFECTIVE,
                "the config did not load",
            )];
        }
        let targets: Vec<usize> = match &facts.route {
            Some(Ok(route)) => route.target.into_iter().collect(),
            _ => {
                let mut v: Vec<usize> = Vec::new();
                for e in &facts.endpoints {
                    for u in &e.uses {
                        if !v.contains(&u.target) {
                            v.push(u.target);
                        }
                    }
                }
                v
            }
        };
        let shown = targets.len().min(MAX_EFFECTIVE);
        let mut out: Vec<Finding> = targets
            .iter()
            .take(MAX_EFFECTIVE)
            .filter_map(|&i| facts.view.targets.get(i))
            .map(|t| effective_finding(facts, t))
            .collect();
        if targets.len() > shown {
            out.push(Finding::new(
                EFFECTIVE,
                Severity::Info,
                format!(
                    "{} more pass directive(s) not listed: pass --url to see the one that serves a request",
                    targets.len() - shown
                ),
            ));
        }
        out
    })
}

/// The settings in effect at one pass directive, one evidence line each.
fn effective_finding(facts: &Facts, target: &PassTarget) -> Finding {
    let place = match &target.location {
        Some(loc) => format!("location {loc}"),
        None => "the server block".to_owned(),
    };
    let lines = effective_lines(&facts.view, target, facts.nginx_version(), page_size());
    let set: Vec<&str> = lines
        .iter()
        .filter(|l| !l.ends_with("(default)") && !l.starts_with("no keepalive"))
        .map(String::as_str)
        .collect();
    let written = if set.is_empty() {
        "all nginx's defaults".to_owned()
    } else {
        format!("set in the config: {}; the rest default", set.join(", "))
    };
    let mut f = Finding::new(
        EFFECTIVE,
        Severity::Info,
        format!(
            "{} directives in effect at {place} ({} {}), {written}",
            lines.len(),
            target.module.directive(),
            target.raw
        ),
    )
    .at(Some(Location::from(&target.span)));
    f.evidence = lines;
    f
}

fn page_size() -> u64 {
    procfs::page_size()
}

/// `proxy_read_timeout 10s (conf.d/app.conf:4)` or `proxy_connect_timeout 60s (default)`,
/// for every directive of the target's module that decides how a 502 or 504 comes about,
/// then the upstream group's keep-alive settings.
pub fn effective_lines(
    view: &ConfigView,
    target: &PassTarget,
    version: Option<settings::Version>,
    page_size: u64,
) -> Vec<String> {
    let p = directive_prefix(target.module);
    let mut names: Vec<String> = [
        "connect_timeout",
        "send_timeout",
        "read_timeout",
        "buffer_size",
        "buffers",
        "busy_buffers_size",
        "buffering",
        "next_upstream",
        "next_upstream_tries",
        "next_upstream_timeout",
        "intercept_errors",
        "http_version",
        "keep_conn",
        "ssl_server_name",
        "ssl_name",
        "ssl_verify",
        "ssl_protocols",
        "ssl_trusted_certificate",
    ]
    .iter()
    .map(|rest| format!("{p}_{rest}"))
    .collect();
    names.extend(["resolver".to_owned(), "resolver_timeout".to_owned()]);
    let page = format!("{}k", page_size / 1024);
    let mut out = Vec::new();
    for name in &names {
        if let Some(set) = target.settings.get(name) {
            out.push(format!("{set} ({})", short(&Location::from(&set.span))));
            continue;
        }
        let default = if name.ends_with("_busy_buffers_size") {
            has_buffers(target.module).then(|| format!("{}k", 2 * page_size / 1024))
        } else if name.ends_with("_buffer_size") {
            Some(page.clone())
        } else if name.ends_with("_buffers") {
            has_buffers(target.module).then(|| format!("8 {page}"))
        } else {
            settings::default_of(name, version).map(str::to_owned)
        };
        if let Some(value) = default {
            out.push(format!("{name} {value} (default)"));
        }
    }
    if let TargetAddress::Group(name) = &target.address
        && let Some(group) = view.group(name)
    {
        for name in ["keepalive", "keepalive_timeout", "keepalive_requests"] {
            match group.settings.get(name) {
                Some(set) => out.push(format!(
                    "{set} in upstream {} ({})",
                    group.name,
                    short(&Location::from(&set.span))
                )),
                None => {
                    if let Some(v) = settings::upstream_default_of(name, version) {
                        out.push(format!("{name} {v} in upstream {} (default)", group.name));
                    } else if name == "keepalive" {
                        out.push(format!(
                            "no keepalive in upstream {}: a new connection per request",
                            group.name
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Whether a module has the `*_buffer_size` / `*_buffers` family.
fn has_buffers(module: PassModule) -> bool {
    matches!(
        module,
        PassModule::Proxy | PassModule::FastCgi | PassModule::Uwsgi | PassModule::Scgi
    )
}
