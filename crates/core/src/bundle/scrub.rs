//! Taking secrets out of a bundle's members, and counting what was taken, by kind: what the
//! report's own redaction removes (`redact.rs`: a URL's user and password, query-string
//! values, credential headers, directives that set credentials such as `proxy_set_header
//! Authorization` and `fastcgi_param DB_PASSWORD`), private keys (a PEM block anywhere),
//! `env NAME=value` directives and other assignments (`env[DB_PASSWORD] = …`, `--api-key=…`)
//! whose name says secret, and what the user's `--redact REGEX`
//! patterns match. Files that hold only secrets (`*_certificate_key`, `ssl_password_file`,
//! `auth_basic_user_file`) are never read: the collector names them, it does not open them.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::redact::{CREDENTIAL, redact_counting};

/// Every kind of secret taken out, as the manifest counts them.
pub const KINDS: [&str; 8] = [
    "credential-directive",
    "credential-header",
    "url-userinfo",
    "query-value",
    "private-key",
    "secret-env",
    "secret-assignment",
    "user-pattern",
];

/// What a private key becomes.
const KEY_GONE: &str = "-----BEGIN PRIVATE KEY----- … -----END PRIVATE KEY-----";

static PRIVATE_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
    )
    .ok()
});

static SECRET_ENV: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)(\benv\s+{CREDENTIAL}=)[^;\s]+")).ok());

/// Any other assignment to a name that says secret: php-fpm's `env[DB_PASSWORD] = …`, an
/// ini or Python config's `password = …`, a command line's `--api-key=…`.
static SECRET_ASSIGNMENT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)(\b{CREDENTIAL}\]?\s*=\s*)(?:"[^"\n]*"|'[^'\n]*'|[^\s;,&"']+)"#
    ))
    .ok()
});

/// A `--redact` pattern that is not a regular expression.
#[derive(Debug, thiserror::Error)]
#[error("--redact {pattern}: {why}")]
pub struct UserPatternError {
    /// The pattern.
    pub pattern: String,
    /// The regex crate's words, on one line.
    pub why: String,
}

/// What is taken out of every member.
#[derive(Debug, Clone)]
pub struct Scrubber {
    enabled: bool,
    user: Vec<Regex>,
}

impl Scrubber {
    /// Redaction on, with the user's extra patterns.
    pub fn new(patterns: &[String]) -> Result<Self, UserPatternError> {
        let user = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| UserPatternError {
                    pattern: p.clone(),
                    why: e.to_string().lines().last().unwrap_or("").trim().to_owned(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            enabled: true,
            user,
        })
    }

    /// No redaction at all (`--no-redact`, for a user's own use; the manifest says so).
    pub fn off() -> Self {
        Self {
            enabled: false,
            user: Vec::new(),
        }
    }

    /// Whether it redacts.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How many user patterns it has.
    pub fn user_patterns(&self) -> usize {
        self.user.len()
    }

    /// `bytes` without their secrets (as UTF-8, invalid sequences replaced), adding to
    /// `counts` per kind.
    pub fn scrub(&self, bytes: &[u8], counts: &mut BTreeMap<String, usize>) -> Vec<u8> {
        if !self.enabled {
            return bytes.to_vec();
        }
        let mut add = |kind: &str, n: usize| *counts.entry(kind.to_owned()).or_default() += n;
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        for (re, with, kind) in [
            (&PRIVATE_KEY, KEY_GONE, "private-key"),
            (&SECRET_ENV, "${1}…", "secret-env"),
        ] {
            if let Some(re) = re.as_ref() {
                let n = re.find_iter(&text).count();
                if n > 0 {
                    add(kind, n);
                    text = re.replace_all(&text, with).into_owned();
                }
            }
        }
        let mut counted = |kind: &'static str, n: usize| add(kind, n);
        text = redact_counting(&text, &mut counted).into_owned();
        // After the rules above: what they left is what is still assigned in the clear.
        if let Some(re) = SECRET_ASSIGNMENT.as_ref() {
            let n = re
                .find_iter(&text)
                .filter(|m| !m.as_str().ends_with('…'))
                .count();
            if n > 0 {
                add("secret-assignment", n);
                text = re.replace_all(&text, "${1}…").into_owned();
            }
        }
        for re in &self.user {
            let n = re.find_iter(&text).count();
            if n > 0 {
                add("user-pattern", n);
                text = re.replace_all(&text, "…").into_owned();
            }
        }
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_taken_out_and_counted() {
        let planted = "\
proxy_set_header Authorization \"Bearer S1-bearer\";
# mirror: https://admin:S2-pass@backup.example/
GET /login?user=bob&token=S3-query HTTP/1.1
-----BEGIN RSA PRIVATE KEY-----
S4-key-body
-----END RSA PRIVATE KEY-----
fastcgi_param DB_PASSWORD S5-param;
env API_TOKEN=S6-env;
env[DB_PASSWORD] = S7-pool
gunicorn --api-key=S8-flag --workers 2
internal-4242
";
        let s = Scrubber::new(&["internal-[0-9]+".to_owned()]).unwrap();
        let mut counts = BTreeMap::new();
        let out = String::from_utf8(s.scrub(planted.as_bytes(), &mut counts)).unwrap();
        for secret in [
            "S1-",
            "S2-",
            "S3-",
            "S4-",
            "S5-",
            "S6-",
            "S7-",
            "S8-",
            "internal-4242",
        ] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
        // Every kind but `Name: value` headers, which are not planted here.
        for kind in KINDS.iter().filter(|k| **k != "credential-header") {
            assert!(
                counts.get(*kind).is_some_and(|n| *n > 0),
                "{kind}: {counts:?}"
            );
        }
        assert!(
            counts.keys().all(|k| KINDS.contains(&k.as_str())),
            "{counts:?}"
        );
        assert!(out.contains("proxy_set_header Authorization …;"), "{out}");
        let off = Scrubber::off().scrub(planted.as_bytes(), &mut BTreeMap::new());
        assert_eq!(off, planted.as_bytes());
    }

    #[test]
    fn a_bad_pattern_is_one_line() {
        let e = Scrubber::new(&["(".to_owned()]).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
