//! How a rule reads directives and words its warning: the warning itself, places and
//! directives as written, quoting, and findings grouped by upstream.

use fix502_nginx::config::Span;
use fix502_nginx::view::{PassTarget, Peer};

use crate::causes::Cause;
use crate::report::{CheckId, Evidence, Finding, Location, Severity, StepId};
use crate::upstream::Upstream;

/// Check id: the static 502-risk rules of the config.
pub const RISKS: CheckId = CheckId::new("config.risks", StepId::Config, Evidence::Config);

/// At most this many places, servers or fix lines are listed in one finding.
pub(super) const MAX_LISTED: usize = 8;

pub(super) fn warning(cause: Cause, message: String) -> Finding {
    Finding::new(RISKS, Severity::Warning, message).cause(cause)
}

pub(super) fn loc(span: &Span) -> Option<Location> {
    Some(Location::from(span))
}

pub(super) fn is_localhost(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
}

/// The pass directive as written: `proxy_pass http://backend`.
pub(super) fn written(t: &PassTarget) -> String {
    format!("{} {}", t.module.directive(), t.raw)
}

/// `` `proxy_pass http://backend` at /etc/nginx/nginx.conf:12 ``
pub(super) fn written_at(t: &PassTarget) -> String {
    format!("`{}` at {}", written(t), Location::from(&t.span))
}

/// A host name (not an IP literal) of a TCP peer.
pub(super) fn name_of(peer: &Peer) -> Option<(&str, u16)> {
    match peer {
        Peer::Inet { host, port } if !peer.is_ip_literal() => Some((host.as_str(), *port)),
        _ => None,
    }
}

/// An argument as it must be written in a config file (quoted when needed).
pub(super) fn quoted(arg: &str) -> String {
    if arg.is_empty() || arg.contains([' ', ';', '{', '}', '"', '\'', '#']) {
        format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        arg.to_owned()
    }
}

/// Arguments as written in a config file, separated by spaces.
pub(super) fn quoted_args(args: &[String]) -> String {
    args.iter().map(|a| quoted(a)).collect::<Vec<_>>().join(" ")
}

/// `server a b c;`
pub(super) fn server_line(args: &[String]) -> String {
    format!("server {};", quoted_args(args))
}

/// `text` with the first occurrence of `host` (ASCII case-insensitive) replaced by `with`.
pub(super) fn replace_host(text: &str, host: &str, with: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match lower.find(&host.to_ascii_lowercase()) {
        Some(i) => format!(
            "{}{}{}",
            text.get(..i).unwrap_or_default(),
            with,
            text.get(i + host.len()..).unwrap_or_default()
        ),
        None => text.to_owned(),
    }
}

/// What a place in the config is: the directive as written and where it is.
pub(super) type Place = (String, Option<Location>);

/// One risk found at several places: the upstream, the places, and the fix lines.
pub(super) type Grouped = (String, Vec<Place>, Vec<String>);

/// Adds `place` to the risk of `upstream` in `found`, or starts that risk with the fix
/// lines `fixes` makes (called only for a new risk).
pub(super) fn group_place(
    found: &mut Vec<Grouped>,
    upstream: String,
    place: Place,
    fixes: impl FnOnce() -> Vec<String>,
) {
    match found.iter_mut().find(|(u, _, _)| *u == upstream) {
        Some((_, places, _)) => places.push(place),
        None => found.push((upstream, vec![place], fixes())),
    }
}

/// One finding per grouped risk: the message of its upstream, every place (at most
/// [`MAX_LISTED`]) then `evidence` as evidence, and its fix lines.
pub(super) fn grouped_findings(
    found: Vec<Grouped>,
    cause: Cause,
    message: impl Fn(&str) -> String,
    evidence: &[String],
) -> Vec<Finding> {
    found
        .into_iter()
        .map(|(upstream, places, fixes)| {
            let mut f = warning(cause, message(&upstream))
                .upstream(Upstream::parse(&upstream))
                .at(places.first().and_then(|(_, at)| at.clone()));
            for line in place_lines(&places) {
                f = f.evidence(line);
            }
            for line in evidence {
                f = f.evidence(line.clone());
            }
            for fix in fixes {
                f = f.fix(fix);
            }
            f
        })
        .collect()
}

/// `places` as evidence lines, at most [`MAX_LISTED`].
pub(super) fn place_lines(places: &[Place]) -> Vec<String> {
    let mut lines: Vec<String> = places
        .iter()
        .take(MAX_LISTED)
        .map(|(what, at)| match at {
            Some(at) => format!("`{what}` at {at}"),
            None => format!("`{what}`"),
        })
        .collect();
    if places.len() > MAX_LISTED {
        lines.push(format!("and {} more", places.len() - MAX_LISTED));
    }
    lines
}

// ---------------------------------------------------------------------------------------
// Pieces of pass arguments and header values (`fix502_nginx` parses only static
// arguments; these rules also read the ones with variables).

/// A piece of an argument: literal text or a variable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Lit(String),
    Var(String),
}

/// Splits text into literals and `$name` / `${name}` variables.
pub(super) fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    // Each iteration consumes at least one character.
    while let Some(c) = chars.next() {
        if c != '$' {
            lit.push(c);
            continue;
        }
        let mut name = String::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                name.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                name.push(c);
                chars.next();
            }
        }
        if name.is_empty() {
            lit.push('$');
            continue;
        }
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(Piece::Var(name));
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    out
}

/// The URL prefixes the pass directives accept.
pub(super) const SCHEMES: [&str; 6] = [
    "http://",
    "https://",
    "grpc://",
    "grpcs://",
    "uwsgi://",
    "suwsgi://",
];

/// The URI part of a pass argument with a scheme (`/x` of `http://h:1/x`, `/u` of
/// `http://unix:/s.sock:/u`); `None` when there is none.
pub(super) fn uri_part(raw: &str) -> Option<&str> {
    let lower = raw.to_ascii_lowercase();
    let prefix = SCHEMES.iter().find(|s| lower.starts_with(**s))?;
    let rest = raw.get(prefix.len()..)?;
    if rest
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("unix:"))
    {
        rest.get(5..)?.split_once(':').map(|(_, u)| u)
    } else {
        rest.find('/').and_then(|i| rest.get(i..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_uri_parts() {
        assert_eq!(
            pieces("http://${b}x$c/$"),
            vec![
                Piece::Lit("http://".into()),
                Piece::Var("b".into()),
                Piece::Lit("x".into()),
                Piece::Var("c".into()),
                Piece::Lit("/$".into()),
            ]
        );
        assert_eq!(uri_part("http://h:1/x"), Some("/x"));
        assert_eq!(uri_part("HTTP://unix:/s.sock:/u"), Some("/u"));
        assert_eq!(uri_part("http://h:1"), None);
        assert_eq!(uri_part("h:1/x"), None);
    }
}
