//! The config edits the restart step plans: a minimal change at a file:line of nginx's own
//! config, made only where the evidence was measured live, and the request that proves it
//! through nginx afterwards. What belongs here: finding where to write (the block of the
//! pass directive that serves the failing upstream), what to write (the cause's own fix,
//! from the check that found it), and which request shows the 502 is gone.
//!
//! Today: `upstream-header-too-big` raises the module's header buffers in the block of its
//! pass directive, to the measured header rounded up (the answer check's `buffer_fix`);
//! `upstream-protocol-mismatch` switches `proxy_pass` between `http://` and `https://` when
//! the port's own bytes said which it speaks; `upstream-wrong-address` (and a missing unix
//! socket) points the group's `server` line or the pass directive at the one listener that
//! decided where the app went; `upstream-tls` adds `proxy_ssl_server_name on` when the
//! upstream completes the handshake only with SNI.
//! A block that already sets one of those directives is left to a person: fix502 does not
//! edit what it would have to merge.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use fix502_nginx::config::{Directive, each_block};
use fix502_nginx::view::{ListenAddr, PassModule, Peer, TargetAddress};
use fix502_probe::http::{self, HttpLimits, HttpRequest};
use fix502_probe::sniff::Protocol;
use fix502_probe::stream::Endpoint;
use fix502_probe::tls::TlsOutcome;

use crate::causes::Cause;
use crate::edit::{self, FileEdit};
use crate::exchange::Answer;
use crate::facts::Facts;
use crate::report::{Diagnosis, Location};
use crate::steps::answer::buffer_directives;
use crate::upstream::Upstream;

/// The least time the proving request is given (an app's first request after a reload may
/// be slow: php-fpm starting a child, caches cold), whatever `--timeout` says.
const CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// An edit of nginx's config, and the request that shows it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEdit {
    /// The change (one file).
    pub edit: FileEdit,
    /// The request sent through nginx afterwards: it must not answer 502 or 504.
    pub check: CheckRequest,
}

/// A GET sent through nginx to prove a fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckRequest {
    /// nginx's listen address (a wildcard as loopback).
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// The request target.
    pub target: String,
}

impl CheckRequest {
    /// Sends it; `Ok(status)` when nginx answers neither 502 nor 504.
    pub async fn send(&self, facts: &Facts) -> Result<u16, String> {
        match self.status(facts.timeout().max(CHECK_WAIT)).await? {
            s if s != 502 && s != 504 => Ok(s),
            s => Err(format!("{} still answers {s}", self.words())),
        }
    }

    /// Sends it and returns whatever status nginx answers within `timeout`; `Err` says why
    /// there was none.
    pub async fn status(&self, timeout: std::time::Duration) -> Result<u16, String> {
        let limits = HttpLimits {
            cap: 64 * 1024,
            timeout,
        };
        let request = HttpRequest::get(self.target.clone(), self.host.clone());
        let probe = http::probe_http(&Endpoint::Tcp(self.addr), &request, limits).await;
        probe
            .status
            .ok_or_else(|| format!("{}: no answer ({})", self.words(), probe.outcome))
    }

    /// Sends it until nginx answers neither 502 nor 504, for at most `wait` (an app server
    /// that reloads drops connections for a moment); the last failure when it never does.
    pub async fn send_until(
        &self,
        facts: &Facts,
        wait: std::time::Duration,
    ) -> Result<u16, String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match self.send(facts).await {
                Ok(status) => return Ok(status),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
            }
        }
    }

    /// In words: `GET / (Host: shop.test) through nginx at 127.0.0.1:8080`.
    pub fn words(&self) -> String {
        format!(
            "GET {} (Host: {}) through nginx at {}",
            self.target, self.host, self.addr
        )
    }
}

/// The edit for `d` (a cause whose entry in the cause table acts by
/// [`Act::EditConfig`](crate::causes::Act::EditConfig)), when the evidence was measured live.
pub async fn for_diagnosis(facts: &Facts, d: &Diagnosis) -> Option<ConfigEdit> {
    let upstream = d.upstream.as_ref()?;
    match d.cause {
        // Every cause here acts by `Act::EditConfig` in the cause table (tested below).
        Cause::UPSTREAM_HEADER_TOO_BIG => header_buffers(facts, upstream).await,
        Cause::UPSTREAM_PROTOCOL_MISMATCH => scheme(facts, upstream).await,
        Cause::UPSTREAM_TLS => sni(facts, upstream).await,
        Cause::UPSTREAM_WRONG_ADDRESS | Cause::UNIX_SOCKET_MISSING => {
            repoint(facts, upstream).await
        }
        _ => None,
    }
}

/// `upstream-wrong-address` (and a missing unix socket) where one listener decided where
/// the app went (`upstream.listeners`' claim): the group's `server` line, else the pass
/// directive, names that address instead. Only a line that writes the old address once.
async fn repoint(facts: &Facts, upstream: &Upstream) -> Option<ConfigEdit> {
    let (_, endpoint) = endpoint_at(facts, upstream).await?;
    let new = crate::steps::upstream::moved_to(facts, endpoint).await?;
    let used = endpoint.uses.first()?;
    let at = used.server_at.as_ref().unwrap_or(&used.at);
    let old = match &used.server_at {
        Some(server_at) => facts
            .view
            .group(endpoint.group.as_deref()?)?
            .servers
            .iter()
            .find(|s| Location::from(&s.span) == *server_at)?
            .raw()
            .split_whitespace()
            .next()?
            .to_owned(),
        None => endpoint.display.clone(),
    };
    if old == new {
        return None;
    }
    let path = at.file.clone();
    let text = edit::read_text(&path).ok()?;
    let line_no = at.line as usize;
    let line = text.lines().nth(line_no.checked_sub(1)?)?;
    if line.matches(old.as_str()).count() != 1 {
        return None;
    }
    let after = line.replacen(old.as_str(), &new, 1);
    let edit = FileEdit::replace(&path, &text, line_no, 1, &after).ok()?;
    Some(ConfigEdit {
        edit,
        check: check_request(facts, used.target, upstream).await?,
    })
}

/// `upstream-protocol-mismatch` where the fix is the scheme: `proxy_pass http://` to a port
/// that speaks only TLS becomes `https://`, and `https://` to a port that answers plain HTTP
/// becomes `http://`, when the port's protocol was told live from its bytes.
async fn scheme(facts: &Facts, upstream: &Upstream) -> Option<ConfigEdit> {
    let (i, endpoint) = endpoint_at(facts, upstream).await?;
    let exchange = facts.exchanges().await.get(i)?.as_ref()?;
    if exchange.module != PassModule::Proxy {
        return None;
    }
    let speaks = exchange.sniff.as_ref()?.speaks?;
    let (from, to) = match (exchange.scheme.as_str(), speaks) {
        ("http", Protocol::Tls) => ("http://", "https://"),
        ("https", Protocol::Http1) => ("https://", "http://"),
        _ => return None,
    };
    let (pass, _) = block_of(facts, &exchange.at)?;
    let path = PathBuf::from(pass.span.file.as_ref());
    let text = edit::read_text(&path).ok()?;
    let line_no = pass.span.line as usize;
    let line = text.lines().nth(line_no.checked_sub(1)?)?;
    // Only a line that holds this one pass directive, with the scheme written once.
    if line.matches("://").count() != 1 || !line.trim_start().starts_with(pass.name.as_str()) {
        return None;
    }
    let after = line.replacen(from, to, 1);
    if after == line {
        return None;
    }
    let edit = FileEdit::replace(&path, &text, line_no, 1, &after).ok()?;
    Some(ConfigEdit {
        edit,
        check: check_request(facts, endpoint.uses.first()?.target, upstream).await?,
    })
}

/// `upstream-tls` where the upstream completes the handshake only with SNI, which nginx
/// sends only with `*_ssl_server_name on`: that directive, after the pass directive, when
/// the probe's handshake with SNI (the name nginx would send) succeeded and the block does
/// not set it already. Verification is never weakened.
async fn sni(facts: &Facts, upstream: &Upstream) -> Option<ConfigEdit> {
    let (i, endpoint) = endpoint_at(facts, upstream).await?;
    let exchange = facts.exchanges().await.get(i)?.as_ref()?;
    let Answer::Tls {
        probe,
        with_sni: Some(retry),
    } = &exchange.answer
    else {
        return None;
    };
    let established = |o: &TlsOutcome| matches!(o, TlsOutcome::Established);
    if established(&probe.outcome) || !established(&retry.outcome) {
        return None;
    }
    let name = format!(
        "{}_ssl_server_name",
        fix502_nginx::settings::directive_prefix(exchange.module)
    );
    let (pass, siblings) = block_of(facts, &exchange.at)?;
    if siblings.iter().any(|d| d.name == name) {
        return None;
    }
    let path = PathBuf::from(pass.span.file.as_ref());
    let text = edit::read_text(&path).ok()?;
    let line = format!("{name} on;");
    let edit = FileEdit::insert_after(&path, &text, pass.span.line as usize, &[&line]).ok()?;
    Some(ConfigEdit {
        edit,
        check: check_request(facts, endpoint.uses.first()?.target, upstream).await?,
    })
}

/// The request that proves a reload made nginx look up again the name behind `upstream` (an
/// address the name had): the one pass directive to a host name on that port.
pub(super) async fn named_target_proof(facts: &Facts, upstream: &Upstream) -> Option<CheckRequest> {
    let port = upstream.port()?;
    let mut named = facts.view.targets.iter().enumerate().filter(|(_, t)| {
        matches!(&t.address, TargetAddress::Peer(Peer::Inet { host, port: p })
            if *p == port && host.parse::<std::net::IpAddr>().is_err())
    });
    let (i, _) = named.next()?;
    if named.next().is_some() {
        return None;
    }
    check_request(facts, i, upstream).await
}

/// The index in [`Facts::endpoints`] of the endpoint at `upstream`, and the endpoint.
pub(super) async fn endpoint_at<'a>(
    facts: &'a Facts,
    upstream: &Upstream,
) -> Option<(usize, &'a crate::facts::Endpoint)> {
    let endpoint = facts.endpoint_of(upstream).await?;
    let i = facts
        .endpoints
        .iter()
        .position(|e| std::ptr::eq(e, endpoint))?;
    Some((i, endpoint))
}

/// `upstream-header-too-big` at `upstream`: the module's buffer directives, inserted after
/// the pass directive in its block, sized to the header the probe measured.
async fn header_buffers(facts: &Facts, upstream: &Upstream) -> Option<ConfigEdit> {
    let (i, endpoint) = endpoint_at(facts, upstream).await?;
    let exchange = facts.exchanges().await.get(i)?.as_ref()?;
    let bytes = exchange.answer.header_bytes()?;
    if bytes <= exchange.buffer.value {
        return None;
    }
    let lines = buffer_directives(exchange.module, bytes);
    let names: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let (pass, siblings) = block_of(facts, &exchange.at)?;
    // A block that sets one of them already would need a merge: left to a person.
    if siblings.iter().any(|d| names.contains(&d.name.as_str())) {
        return None;
    }
    let path = PathBuf::from(pass.span.file.as_ref());
    let text = edit::read_text(&path).ok()?;
    let new: Vec<&str> = lines.iter().map(String::as_str).collect();
    let edit = FileEdit::insert_after(&path, &text, pass.span.line as usize, &new).ok()?;
    let target = endpoint.uses.first()?.target;
    Some(ConfigEdit {
        edit,
        check: check_request(facts, target, upstream).await?,
    })
}

/// The pass directive written at `at`, and the directives of its block.
fn block_of<'a>(facts: &'a Facts, at: &Location) -> Option<(&'a Directive, &'a [Directive])> {
    let mut found = None;
    each_block(&facts.config.as_ref()?.directives, &mut |block| {
        if found.is_none()
            && let Some(d) = block
                .iter()
                .find(|d| Path::new(d.span.file.as_ref()) == at.file && d.span.line == at.line)
        {
            found = Some((d, block));
        }
    });
    found
}

/// The request that shows the 502 of `upstream` (pass target `target`) is gone: `--url`
/// when it routes there, else the GET or HEAD nginx logged for it, else the location's path,
/// sent to the listen address of the server that holds the pass directive.
pub(super) async fn check_request(
    facts: &Facts,
    target: usize,
    upstream: &Upstream,
) -> Option<CheckRequest> {
    let server = facts
        .view
        .servers
        .iter()
        .find(|s| s.targets.contains(&target) || holds(&s.locations, target))?;
    let addr = server.listens.iter().find_map(|l| match &l.addr {
        ListenAddr::Inet(a) if a.ip().is_unspecified() => {
            Some(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), a.port()))
        }
        ListenAddr::Inet(a) => Some(*a),
        ListenAddr::Port(p) => Some(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), *p)),
        _ => None,
    })?;
    // Only the host's own loopback, never an address off this machine.
    if !addr.ip().is_loopback() {
        return None;
    }
    let host = server
        .names
        .iter()
        .find(|n| !n.is_empty() && !n.starts_with('~') && !n.contains('*') && *n != "_")
        .cloned()
        .unwrap_or_else(|| addr.to_string());
    let url_path = facts
        .options
        .url
        .as_deref()
        .and_then(|u| fix502_nginx::route::Request::from_url(u).ok())
        .filter(|_| matches!(&facts.route, Some(Ok(r)) if r.target == Some(target)))
        .map(|r| r.uri.clone());
    let logged = facts
        .replayable_requests()
        .await
        .into_iter()
        .find(|(peer, _)| Upstream::parse(peer) == *upstream)
        .and_then(|(_, req)| req.split_whitespace().nth(1).map(str::to_owned));
    let location = facts
        .view
        .targets
        .get(target)
        .and_then(|t| t.location.clone())
        .filter(|l| l.starts_with('/'))
        .unwrap_or_else(|| "/".to_owned());
    Some(CheckRequest {
        addr,
        host,
        target: url_path.or(logged).unwrap_or(location),
    })
}

/// Whether one of `locations` (or a location nested in one) holds pass target `target`.
fn holds(locations: &[fix502_nginx::view::Location], target: usize) -> bool {
    locations.iter().any(|l| {
        l.targets.contains(&target)
            || l.conditional_targets.contains(&target)
            || holds(&l.locations, target)
    })
}

/// The causes [`for_diagnosis`] has an edit for.
#[cfg(test)]
const EDITED: [Cause; 5] = [
    Cause::UPSTREAM_HEADER_TOO_BIG,
    Cause::UPSTREAM_TLS,
    Cause::UPSTREAM_PROTOCOL_MISMATCH,
    Cause::UPSTREAM_WRONG_ADDRESS,
    Cause::UNIX_SOCKET_MISSING,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causes::{Act, entries};

    #[test]
    fn the_causes_that_act_by_an_edit_are_the_ones_with_an_edit() {
        for e in entries() {
            assert_eq!(
                e.acts.contains(&Act::EditConfig),
                EDITED.contains(&e.cause),
                "{}: its entry's acts and edits.rs disagree",
                e.cause.id()
            );
        }
    }
}
