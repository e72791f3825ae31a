//! Redaction: what fix502 shows never quotes a secret. Query-string values of logged
//! requests and URLs (`?token=…`), the user and password of a URL (`http://…@host`), and the
//! values of credential headers and of directives that set them (`Authorization: …`,
//! `proxy_set_header Cookie …`) are replaced by `…` in every finding and diagnosis, in the
//! human report, the JSON and the wizard alike.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

use crate::report::{Diagnosis, Finding};

/// The words that make a header or parameter name a credential.
pub(crate) const CREDENTIAL: &str = r"(?:(?:proxy-)?authorization|cookie|set-cookie|[\w-]*(?:token|secret|passw(?:or)?d?|api[-_]?key|session|signature|credential)[\w-]*)";

static QUERY_VALUE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"([?&][^=&\s"'#<>?]+=)[^&\s"'#<>]+"#).ok());

static USERINFO: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#]+@").ok());

/// A user and password without a scheme, as nginx quotes a pass target it cannot parse:
/// `invalid port in upstream "user:pass@10.0.0.1:8080"`.
static BARE_USERINFO: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"((?:^|[\s"'(]))[A-Za-z0-9._~%+-]+:[^\s"'/@\\]+@([A-Za-z0-9\[])"#).ok()
});

/// A credential header: `Authorization: …` to the end of its value. The name starts a line
/// or follows a space, quote or bracket, so a path such as `/etc/app/secret:12` (a file and
/// line) is not taken for one.
static HEADER_VALUE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)((?:^|[\s"'(\[{{,;]){CREDENTIAL}\s*:\s*)[^\r\n"]+"#
    ))
    .ok()
});

/// A directive that sets a credential header or parameter: `proxy_set_header Cookie …`.
static DIRECTIVE_VALUE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)(\b(?:proxy_set_header|grpc_set_header|fastcgi_param|uwsgi_param|scgi_param)\s+{CREDENTIAL}\s+)(?:"[^"]*"|'[^']*'|[^\s;]+)"#
    ))
    .ok()
});

/// The patterns above in the order they are applied, each with its replacement and the
/// kind [`redact_counting`] counts.
static RULES: [(&LazyLock<Option<Regex>>, &str, &str); 5] = [
    (&USERINFO, "${1}…@", "url-userinfo"),
    (&BARE_USERINFO, "${1}…@${2}", "url-userinfo"),
    (&QUERY_VALUE, "${1}…", "query-value"),
    (&HEADER_VALUE, "${1}…", "credential-header"),
    (&DIRECTIVE_VALUE, "${1}…", "credential-directive"),
];

/// All of the [`RULES`]' patterns, to rule a text out in one pass (`None` if one does not
/// build: then every pattern is tried). Without their word boundaries (`\b`): a pattern
/// without one matches wherever it matched, and more, and the set stays on the fast
/// automaton, which gives up on a Unicode word boundary in text that is not ASCII (a report
/// has `…` and `→`).
static ANY: LazyLock<Option<RegexSet>> = LazyLock::new(|| {
    let patterns: Option<Vec<String>> = RULES
        .iter()
        .map(|(re, _, _)| re.as_ref().map(|re| re.as_str().replace(r"\b", "")))
        .collect();
    RegexSet::new(patterns?).ok()
});

/// `text` with its secrets replaced by `…`.
pub fn redact(text: &str) -> Cow<'_, str> {
    redact_counting(text, &mut |_, _| {})
}

/// [`redact`], telling `count` how many of each kind it replaced: `url-userinfo`,
/// `query-value`, `credential-header` (`Authorization: …`), `credential-directive`
/// (`proxy_set_header Cookie …`, `fastcgi_param DB_PASSWORD …`).
pub fn redact_counting<'a>(
    text: &'a str,
    count: &mut dyn FnMut(&'static str, usize),
) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    // Most texts hold no secret: one pass of all the patterns at once tells.
    if ANY.as_ref().is_some_and(|any| !any.is_match(text)) {
        return out;
    }
    for (re, with, kind) in RULES {
        if let Some(re) = re.as_ref() {
            let n = re.find_iter(&out).count();
            if n > 0 {
                count(kind, n);
                out = Cow::Owned(re.replace_all(&out, with).into_owned());
            }
        }
    }
    out
}

fn in_place(text: &mut String) {
    if let Cow::Owned(clean) = redact(text) {
        *text = clean;
    }
}

/// Redacts every text of a finding.
pub fn finding(f: &mut Finding) {
    in_place(&mut f.message);
    f.evidence.iter_mut().for_each(in_place);
    f.fix.iter_mut().for_each(in_place);
    if let Some(h) = f.headline.as_mut() {
        in_place(h);
    }
}

/// Redacts every text of a diagnosis.
pub fn diagnosis(d: &mut Diagnosis) {
    in_place(&mut d.summary);
    d.evidence.iter_mut().for_each(in_place);
    d.fix.iter_mut().for_each(in_place);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_and_the_rest_kept() {
        let line = r#"2026/11/24 02:11:50 [error] 1#1: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: s, request: "GET /account/delete?id=1&token=abc123 HTTP/1.1", upstream: "http://127.0.0.1:8000/account/delete?id=1&token=abc123", host: "s""#;
        let clean = redact(line);
        assert!(!clean.contains("abc123"), "{clean}");
        assert!(
            clean.contains("request: \"GET /account/delete?id=…&token=… HTTP/1.1\""),
            "{clean}"
        );
        assert!(
            clean.contains("connect() failed (111: Connection refused)"),
            "{clean}"
        );
        assert_eq!(
            redact("proxy_pass http://user:pa55@10.0.0.1:8080/app;"),
            "proxy_pass http://…@10.0.0.1:8080/app;"
        );
        assert_eq!(
            redact("proxy_set_header Authorization \"Bearer s3cret\";"),
            "proxy_set_header Authorization …;"
        );
        assert_eq!(redact("Cookie: sid=42; theme=dark"), "Cookie: …");
        assert_eq!(
            redact("fastcgi_param DB_PASSWORD hunter2;"),
            "fastcgi_param DB_PASSWORD …;"
        );
        assert_eq!(redact("X-Api-Key: k-123"), "X-Api-Key: …");
        assert_eq!(
            redact("sent: \"X-Session-Id: 77\" left out"),
            "sent: \"X-Session-Id: …\" left out"
        );
        assert_eq!(
            redact(r#"[emerg] invalid port in upstream "user:pa55@127.0.0.1:1" in x.conf:11"#),
            r#"[emerg] invalid port in upstream "…@127.0.0.1:1" in x.conf:11"#
        );
        // Bytes of a binary answer, escaped, are no user and password.
        let escaped = r#"got "\x16\x03\x03\x00z\x02:\xad@3g\x10" (TLS)"#;
        assert!(matches!(redact(escaped), Cow::Borrowed(_)));
        // A file and line whose name has a credential word is no header.
        assert!(matches!(
            redact("unexpected end of file in /etc/nginx/secret:12"),
            Cow::Borrowed(_)
        ));
        // Nothing to hide: borrowed, unchanged.
        let plain = "127.0.0.1:8000: connection refused (111), the upstream of location /";
        assert!(matches!(redact(plain), Cow::Borrowed(_)));
        assert!(matches!(
            redact("GET /api/orders HTTP/1.1"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_set_rules_out_only_texts_no_pattern_matches() {
        let any = ANY.as_ref().expect("the set builds");
        let texts = [
            "proxy_pass http://user:pa55@10.0.0.1:8080/app;",
            "→ éhttp://u:p@host/ …",
            "…proxy_set_header Cookie x;",
            "fastcgi_param DB_PASSWORD hunter2; → …",
            "GET /a?token=1 HTTP/1.1 …",
            "Authorization: Bearer x",
            "invalid port in upstream \"user:pa55@127.0.0.1:1\"",
            "127.0.0.1:8000: connection refused (111) → …",
            "unexpected end of file in /etc/nginx/secret:12",
        ];
        for text in texts {
            let matched = RULES
                .iter()
                .any(|(re, _, _)| re.as_ref().is_some_and(|re| re.is_match(text)));
            assert!(!matched || any.is_match(text), "{text}");
        }
    }
}
