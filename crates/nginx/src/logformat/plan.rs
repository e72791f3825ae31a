//! The straight-line match of a format whose every value has one possible end.
//!
//! In most formats each variable is followed by a literal that starts with the byte that
//! bounds the value (`"$request" ` under the default escaping: the value holds no raw
//! quote; `$status `, `$remote_addr - `: the value holds no space), has a fixed width
//! (`$time_local`, `$status`) or ends the line. The backtracking matcher
//! ([`super::Matcher`]) then tries exactly one end for each value, so its one path through
//! the line can be walked in a loop, without recursion, memo or budget: a [`Plan`]. A line
//! the plan rejects goes to the backtracking matcher, which rejects it too (the plan takes
//! the only path it would take), so both give the same [`super::Fields`]; the tests compare
//! them on formats of every shape and lines of every kind.

use super::{Escape, Kind, Piece};

/// One piece of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Bytes written as they are.
    Literal(Vec<u8>),
    /// A value of fixed width.
    Fixed {
        index: usize,
        kind: Kind,
        width: usize,
    },
    /// A value that runs to the first quote (when `quote`) or space (when `space`), or to
    /// the end of the line; when `last`, the line must end there.
    Bounded {
        index: usize,
        kind: Kind,
        quote: bool,
        space: bool,
        last: bool,
    },
    /// A value that may hold the next literal's first byte: it ends at the first
    /// occurrence of the literal, before the first quote (when `quote`) or space (when
    /// `space`). The matcher tries later occurrences when the rest fails; the plan does not.
    Search {
        index: usize,
        kind: Kind,
        quote: bool,
        space: bool,
        lit: Vec<u8>,
    },
}

/// What [`Plan::run`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The line matches, at the spans the matcher finds.
    Match,
    /// The line does not match: the matcher finds no match either.
    NoMatch,
    /// The walk failed after a [`Step::Search`]: only the matcher, which tries other
    /// ends, can tell.
    Unsure,
}

/// A format compiled for [`Plan::run`]; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan(Vec<Step>);

impl Plan {
    /// The plan of `pieces` under `escape`, when each variable has one possible end (the
    /// cases where [`super::Matcher::at`] tries a single end); `None` otherwise.
    pub(super) fn compile(pieces: &[Piece], escape: Escape) -> Option<Self> {
        if escape == Escape::Json {
            // Its values end at the first unescaped quote: not one byte search.
            return None;
        }
        let mut steps = Vec::with_capacity(pieces.len());
        for (k, piece) in pieces.iter().enumerate() {
            let (index, kind) = match piece {
                Piece::Literal(lit) => {
                    steps.push(Step::Literal(lit.clone()));
                    continue;
                }
                Piece::Var(index, kind) => (*index, *kind),
            };
            if let Some(width) = kind.width() {
                steps.push(Step::Fixed { index, kind, width });
                continue;
            }
            let quote = escape == Escape::Default;
            let space = kind.spaceless();
            let last = match pieces.get(k + 1) {
                None => true,
                // The value ends where the literal's first byte first occurs when that byte
                // is one the value cannot hold; else at an occurrence of the literal.
                Some(Piece::Literal(lit)) if super::ends_at_limit(escape, kind, lit) => false,
                Some(Piece::Literal(lit)) => {
                    steps.push(Step::Search {
                        index,
                        kind,
                        quote,
                        space,
                        lit: lit.clone(),
                    });
                    continue;
                }
                // The matcher tries every end: no one path.
                Some(Piece::Var(..)) => return None,
            };
            steps.push(Step::Bounded {
                index,
                kind,
                quote,
                space,
                last,
            });
        }
        Some(Self(steps))
    }

    /// Walks `line`, writing the first span of each variable into `spans` (all `None` on
    /// entry; on anything but a match they hold a partial walk). `time_local` is a
    /// `$time_local` value known to be valid (the line before's, which most lines repeat):
    /// an equal value is not checked again.
    pub(super) fn run(
        &self,
        line: &[u8],
        spans: &mut [Option<(usize, usize)>],
        time_local: Option<&[u8]>,
    ) -> Outcome {
        let mut pos = 0;
        // Whether a value ended at the first of several possible ends.
        let mut guessed = false;
        let fail = |guessed: bool| {
            if guessed {
                Outcome::Unsure
            } else {
                Outcome::NoMatch
            }
        };
        for step in &self.0 {
            let rest = line.get(pos..).unwrap_or_default();
            let (index, end) = match step {
                Step::Literal(lit) => {
                    if !crate::find::starts_with(rest, lit) {
                        return fail(guessed);
                    }
                    pos += lit.len();
                    continue;
                }
                Step::Fixed { index, kind, width } => {
                    let end = pos + width;
                    let known = |v: &[u8]| *kind == Kind::TimeLocal && time_local == Some(v);
                    if !line
                        .get(pos..end)
                        .is_some_and(|v| known(v) || kind.accepts(v))
                    {
                        return fail(guessed);
                    }
                    (*index, end)
                }
                Step::Bounded {
                    index,
                    kind,
                    quote,
                    space,
                    last,
                } => {
                    let end = pos + limit(rest, *quote, *space);
                    if *last && end != line.len() {
                        return fail(guessed);
                    }
                    // A value bounded by spaces holds none: a token is then plausible as is.
                    let value = line.get(pos..end).unwrap_or_default();
                    let plausible = (*space && *kind == Kind::Token) || kind.accepts(value);
                    if !plausible {
                        return fail(guessed);
                    }
                    (*index, end)
                }
                Step::Search {
                    index,
                    kind,
                    quote,
                    space,
                    lit,
                } => {
                    guessed = true;
                    let limit = pos + limit(rest, *quote, *space);
                    let Some(end) = super::find_literal(line, lit, pos, limit) else {
                        return Outcome::Unsure;
                    };
                    if !line.get(pos..end).is_some_and(|v| kind.accepts(v)) {
                        return Outcome::Unsure;
                    }
                    (*index, end)
                }
            };
            if let Some(slot) = spans.get_mut(index)
                && slot.is_none()
            {
                *slot = Some((pos, end));
            }
            pos = end;
        }
        if pos == line.len() {
            Outcome::Match
        } else {
            fail(guessed)
        }
    }
}

/// How far a value starting at `rest` may reach: to the first quote (when `quote`) or
/// space (when `space`), else to the end.
fn limit(rest: &[u8], quote: bool, space: bool) -> usize {
    let found = match (quote, space) {
        (true, true) => memchr::memchr2(b'"', b' ', rest),
        (true, false) => memchr::memchr(b'"', rest),
        (false, true) => memchr::memchr(b' ', rest),
        (false, false) => None,
    };
    found.unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::super::{COMBINED, LogFormat};

    /// Formats of every shape: with and without a plan, every kind, repeated variables,
    /// each escaping.
    fn formats() -> Vec<LogFormat> {
        let texts: &[(&str, &str)] = &[
            ("", COMBINED),
            (
                "",
                "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" ua=\"$upstream_addr\" us=\"$upstream_status\" uht=\"$upstream_header_time\" urt=\"$upstream_response_time\" ucs=\"$upstream_cache_status\"",
            ),
            (
                "",
                "$remote_addr $status $request_time $upstream_response_time $msec",
            ),
            ("", "$time_iso8601|$status|$request|$remote_addr"),
            ("", "$host:$server_port $remote_addr \"$request\" $status"),
            ("", "$status $status \"$request\" $request_id $request"),
            (
                "escape=none",
                "$remote_addr \"$request\" $status $body_bytes_sent",
            ),
            ("escape=none", "$remote_addr $request_method $status"),
            (
                "escape=json",
                "{\"a\":\"$remote_addr\",\"r\":\"$request\",\"s\":$status}",
            ),
            ("", "[$time_local] $upstream_addr $upstream_status"),
            ("", "$request_uri"),
            ("", "$request_method$request_uri $status"),
        ];
        texts
            .iter()
            .map(|(escape, text)| {
                let mut args = Vec::new();
                if !escape.is_empty() {
                    args.push((*escape).to_owned());
                }
                args.push((*text).to_owned());
                LogFormat::parse("t", &args).unwrap()
            })
            .collect()
    }

    /// Lines that match the formats above, and lines that nearly do.
    fn lines() -> Vec<Vec<u8>> {
        let good: &[&str] = &[
            "10.0.0.1 - - [07/Nov/2026:07:23:09 +0000] \"GET /a HTTP/1.1\" 502 510 \"-\" \"curl/8\"",
            "10.0.0.1 - bob [07/Nov/2026:07:23:09 +0000] \"GET /a?b=\\x22c HTTP/1.1\" 200 0 \"https://x/\" \"Mozilla/5.0 (X11)\" ua=\"10.0.0.6:8080, 10.0.0.5:8080 : unix:/run/a.sock\" us=\"502, 502 : 200\" uht=\"-, -\" urt=\"0.002, 0.108\" ucs=\"-\"",
            "10.0.0.1 - - [07/Nov/2026:07:23:09 +0000] \"GET /a HTTP/1.1\" 504 0 \"-\" \"-\" ua=\"10.0.0.6:8080\" us=\"504\" uht=\"-\" urt=\"60.001\" ucs=\"-\"",
            "127.0.0.1 502 0.004 0.003 1700000000.123",
            "127.0.0.1 502 0.004 0.003, 0.001 1700000000.123",
            "2026-11-07T07:23:09+00:00|502|GET / HTTP/1.1|10.0.0.1",
            "2026-11-07T07:23:09+00:00|502|GET /a|b HTTP/1.1|10.0.0.1",
            "example.com:443 10.0.0.1 \"GET / HTTP/1.1\" 502",
            "a:b:443 10.0.0.1 \"GET / HTTP/1.1\" 502",
            "502 502 \"GET / HTTP/1.1\" abc GET / HTTP/1.1",
            "502 503 \"GET / HTTP/1.1\" abc GET / HTTP/1.1",
            "10.0.0.1 \"GET /\"x\" HTTP/1.1\" 502 12",
            "10.0.0.1 \"GET / HTTP/1.1\" 502 12",
            "10.0.0.1 GET 502",
            "{\"a\":\"10.0.0.1\",\"r\":\"GET /\\\"q HTTP/1.1\",\"s\":502}",
            "[07/Nov/2026:07:23:09 +0000] 10.0.0.6:8080, 10.0.0.5:8080 502, 504",
            "[07/Nov/2026:07:23:09 +0000] - -",
            "/index.php?a=1",
            "/index.php \"q\"",
            "GET/index.php 502",
        ];
        let mut lines: Vec<Vec<u8>> = good.iter().map(|l| l.as_bytes().to_vec()).collect();
        // Each line cut short, with a byte changed, and with a space or quote added.
        for line in good {
            let b = line.as_bytes();
            for cut in [1, 5, 17, b.len() / 2, b.len().saturating_sub(1)] {
                lines.push(b.get(..cut).unwrap_or(b).to_vec());
            }
            for at in [0, 3, b.len() / 3, b.len() / 2, b.len().saturating_sub(2)] {
                for byte in [b' ', b'"', b'x', b'-'] {
                    let mut changed = b.to_vec();
                    if let Some(c) = changed.get_mut(at) {
                        *c = byte;
                    }
                    lines.push(changed);
                }
            }
            lines.push([b, b" "].concat());
            lines.push([b, b"\""].concat());
        }
        lines.push(Vec::new());
        lines
    }

    #[test]
    fn the_plan_gives_what_backtracking_gives() {
        const KNOWN_STAMP: &[u8] = b"07/Nov/2026:07:23:09 +0000";
        let mut planned = 0;
        let mut matched = 0;
        for format in formats() {
            planned += usize::from(format.plan.is_some());
            for line in lines() {
                let fast = format.parse_line(&line);
                let slow = format.parse_line_backtracking(&line);
                assert_eq!(
                    fast,
                    slow,
                    "format {:?}, line {:?}",
                    format.text,
                    String::from_utf8_lossy(&line)
                );
                // The same with the lines' usual `$time_local` known valid, as a reader
                // passes the line before's: an equal value is taken unchecked.
                let known = format.parse_line_in(&line, Vec::new(), Some(KNOWN_STAMP));
                assert_eq!(known, slow, "{:?}", String::from_utf8_lossy(&line));
                matched += usize::from(fast.is_some());
            }
        }
        // The corpus exercises both paths and both outcomes.
        assert_eq!((planned, formats().len()), (10, 12));
        assert!(matched >= 20, "{matched}");
    }
}
