//! Effective directive values: inheritance through `http` → `server` → `location`, nginx's
//! size and time syntaxes, and nginx's defaults.
//!
//! This module owns [`Settings`] (what is in effect at one place of the configuration),
//! [`parse_size`] / [`parse_time`] (nginx's own value syntaxes), [`default_of`] /
//! [`upstream_default_of`] (nginx's built-in defaults, by version where they changed) and
//! the per-module directive names ([`buffer_size_directive`], [`timeout_directive`], ...).
//! [`crate::view`] builds the [`Settings`] of each pass target and upstream group.
//!
//! # Inheritance
//!
//! nginx merges each directive from the outer level into the inner one when the inner
//! level does not set it: the **innermost level that writes a directive wins, with all of
//! its entries**. That one rule covers both kinds of directive: a simple one
//! (`proxy_read_timeout 10s;`) and an "array" one written several times
//! (`proxy_set_header`, `fastcgi_param`, `add_header`, `proxy_hide_header`, `error_page`,
//! ...): a location with one `proxy_set_header` sees none of the server's.
//!
//! - Names that share one nginx setting are one unit: `allow`/`deny` (the access rules) and
//!   `root`/`alias`. A location with only `deny all;` does not inherit the server's `allow`.
//! - Directives that nginx never inherits (the `*_pass` handlers, the rewrite module's
//!   `return`, `rewrite`, `set`, `break`, and `try_files`, `internal`) are only taken from
//!   the innermost level.
//! - Directives inside an `if` (or `limit_except`) block apply only when it matches, so they
//!   are ignored, except for a pass directive written inside that very block: its own
//!   block's directives are its innermost level (they apply whenever it is used).
//! - Only the `http` context and below count: main-context directives (`worker_processes`,
//!   `error_log` at top level, ...) are not part of it.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Directive, Span};
use crate::module::PassModule;

/// One directive as written: its name, arguments and place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Setting {
    /// The directive name, e.g. `proxy_read_timeout`.
    pub name: String,
    /// The arguments, quotes removed.
    pub args: Vec<String>,
    /// Where it is written.
    pub span: Span,
}

impl fmt::Display for Setting {
    /// `name arg1 arg2` (no quoting, no `;`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// The simple directives written directly in one block, grouped by [`family`].
#[derive(Debug, Default, PartialEq, Eq)]
struct Level {
    /// Sorted stably by family, so each family is contiguous and in file order.
    entries: Vec<Setting>,
    /// Family → its range in `entries`.
    index: BTreeMap<String, Range<usize>>,
}

impl Level {
    fn new<'a>(directives: impl IntoIterator<Item = &'a Directive>) -> Self {
        let mut entries: Vec<Setting> = directives
            .into_iter()
            .filter(|d| d.block.is_none() && d.name != "include")
            .map(|d| Setting {
                name: d.name.clone(),
                args: d.args.clone(),
                span: d.span.clone(),
            })
            .collect();
        entries.sort_by(|a, b| family(&a.name).cmp(family(&b.name)));
        let mut index: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            index
                .entry(family(&entry.name).to_owned())
                .and_modify(|range| range.end = i + 1)
                .or_insert(i..i + 1);
        }
        Self { entries, index }
    }

    fn family(&self, family: &str) -> Option<&[Setting]> {
        self.entries.get(self.index.get(family)?.clone())
    }
}

/// The directives in effect at one place of the configuration (see the module doc for the
/// inheritance rules).
///
/// Cheap to clone: the levels are shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Outermost level first.
    levels: Vec<Arc<Level>>,
}

impl Settings {
    /// The settings of `directives` one level inside `self` (a new block). Only the simple
    /// directives of `directives` count; nested blocks are not searched.
    #[must_use]
    pub fn with_level(&self, directives: &[Directive]) -> Self {
        self.with_directives(directives)
    }

    /// [`Settings::with_level`] for any selection of one block's directives.
    pub(crate) fn with_directives<'a>(
        &self,
        directives: impl IntoIterator<Item = &'a Directive>,
    ) -> Self {
        let mut levels = self.levels.clone();
        levels.push(Arc::new(Level::new(directives)));
        Self { levels }
    }

    /// The last effective entry of `name`, e.g. the `proxy_read_timeout` in effect.
    ///
    /// For `root`/`alias` and `allow`/`deny` the entry may have the other name of the pair
    /// (an `alias` replaces an inherited `root`): check [`Setting::name`].
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.all(name).last()
    }

    /// Every effective entry of `name`, in file order: all entries of the innermost level
    /// that writes it (for `allow`/`deny` and `root`/`alias`, of either name). Empty when
    /// no level writes it.
    #[must_use]
    pub fn all(&self, name: &str) -> &[Setting] {
        let family = family(name);
        let inherited = is_inherited(family);
        for level in self.levels.iter().rev() {
            if let Some(entries) = level.family(family) {
                return entries;
            }
            if !inherited {
                break;
            }
        }
        &[]
    }

    /// Every effective entry: the outermost level's that are not overridden first, the
    /// innermost level's last; within a level grouped by name, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Setting> {
        let last = self.levels.len().saturating_sub(1);
        self.levels.iter().enumerate().flat_map(move |(i, level)| {
            let inner = self.levels.get(i + 1..).unwrap_or_default();
            level.entries.iter().filter(move |s| {
                let family = family(&s.name);
                if !is_inherited(family) {
                    return i == last;
                }
                !inner.iter().any(|l| l.index.contains_key(family))
            })
        })
    }

    /// True when nothing is in effect.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// The key under which a directive is inherited: names sharing one nginx setting share it.
fn family(name: &str) -> &str {
    match name {
        "deny" => "allow",
        "alias" => "root",
        _ => name,
    }
}

/// Directives nginx does not merge into inner levels.
fn is_inherited(family: &str) -> bool {
    PassModule::from_directive(family).is_none()
        && !matches!(
            family,
            "return" | "rewrite" | "set" | "break" | "try_files" | "internal"
        )
}

/// Parses an nginx size: digits with an optional `k`/`K` (KiB), `m`/`M` (MiB) or `g`/`G`
/// (GiB) suffix, e.g. `4096`, `8k`, `1m`. No sign, no spaces, no fractions. `None` when
/// invalid or larger than nginx accepts (`i64::MAX` bytes).
///
/// nginx's buffer-size directives (`ngx_parse_size`) refuse `g`; offsets such as
/// `client_max_body_size` (`ngx_parse_offset`) accept it.
#[must_use]
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, scale) = match text.as_bytes().last()? {
        b'k' | b'K' => (text.get(..text.len() - 1)?, 1u64 << 10),
        b'm' | b'M' => (text.get(..text.len() - 1)?, 1 << 20),
        b'g' | b'G' => (text.get(..text.len() - 1)?, 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    let bytes = value.checked_mul(scale)?;
    (bytes <= i64::MAX.unsigned_abs()).then_some(bytes)
}

/// The largest time nginx accepts, in milliseconds.
const MAX_MS: u64 = i64::MAX.unsigned_abs();

/// Parses an nginx time as the timeout directives read it (`ngx_parse_time` in
/// milliseconds mode): a number without unit is seconds; units are `w`, `d`, `h`, `m`,
/// `s`, `ms`, each at most once and in that order, optionally separated by spaces
/// (`"1h 30m"`, `"1m30s"`, `"500ms"`). `y` and `M` (years, months) are refused here as in
/// nginx's millisecond directives. `None` when invalid or too large.
#[must_use]
pub fn parse_time(text: &str) -> Option<Duration> {
    /// Where the parser is; each unit must come after the previous one.
    #[derive(Clone, Copy, PartialEq, PartialOrd)]
    enum Step {
        Start,
        Week,
        Day,
        Hour,
        Minute,
        Second,
        Milli,
        Last,
    }
    let bytes = text.as_bytes();
    let mut step = Step::Start;
    let mut valid = false;
    let mut value: u64 = 0;
    let mut total: u64 = 0;
    let mut i = 0;
    // Each iteration consumes at least one byte.
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if b.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            if value > MAX_MS {
                return None;
            }
            valid = true;
            continue;
        }
        let (next, scale_ms) = match b {
            b'w' => (Step::Week, 7 * 24 * 3600 * 1000),
            b'd' => (Step::Day, 24 * 3600 * 1000),
            b'h' => (Step::Hour, 3600 * 1000),
            b'm' if bytes.get(i) == Some(&b's') => {
                i += 1;
                (Step::Milli, 1)
            }
            b'm' => (Step::Minute, 60 * 1000),
            b's' => (Step::Second, 1000),
            // A space after a bare number: that number is seconds.
            b' ' if step < Step::Second => (Step::Last, 1000),
            _ => return None,
        };
        if next != Step::Last && step >= next {
            return None;
        }
        step = next;
        total = total.checked_add(value.checked_mul(scale_ms)?)?;
        if total > MAX_MS {
            return None;
        }
        value = 0;
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if !valid {
        return None;
    }
    total = total.checked_add(value.checked_mul(1000)?)?;
    (total <= MAX_MS).then(|| Duration::from_millis(total))
}

/// An nginx version as `(major, minor, patch)`, e.g. `(1, 22, 1)`.
pub type Version = (u32, u32, u32);

/// nginx's default for a directive of the `http`, `server` and `location` contexts, as
/// written in a configuration; `None` when fix502 does not know it or it has no simple
/// written form.
///
/// `version` selects the default where it changed (`None` means the newest nginx):
/// `proxy_http_version` is `1.0` before 1.29.7 and `1.1` since; `*_ssl_protocols` is
/// `TLSv1 TLSv1.1 TLSv1.2` before 1.23.4, `TLSv1 TLSv1.1 TLSv1.2 TLSv1.3` up to 1.27.2 and
/// `TLSv1.2 TLSv1.3` since 1.27.3; `keepalive_requests` is `100` before 1.19.10.
///
/// The `*_buffer_size` directives default to one memory page (4k on x86-64, 64k on some
/// arm64 kernels): this returns `None` for them and the caller supplies the page size.
/// For the directives of an `upstream {}` block (`keepalive_timeout` means something else
/// there) see [`upstream_default_of`].
#[must_use]
pub fn default_of(name: &str, version: Option<Version>) -> Option<&'static str> {
    let before = |v: Version| version.is_some_and(|have| have < v);
    // The module-prefixed directives share their defaults.
    if let Some((prefix, rest)) = name.split_once('_')
        && MODULE_PREFIXES.contains(&prefix)
    {
        let ssl = matches!(prefix, "proxy" | "uwsgi" | "grpc");
        let known = match rest {
            "connect_timeout" | "send_timeout" | "read_timeout" => "60s",
            "next_upstream" => "error timeout",
            "next_upstream_tries" | "next_upstream_timeout" => "0",
            "intercept_errors" if prefix != "memcached" => "off",
            "buffering" if prefix != "memcached" && prefix != "grpc" => "on",
            "request_buffering" if prefix != "memcached" && prefix != "grpc" => "on",
            "ssl_server_name" | "ssl_verify" if ssl => "off",
            "ssl_verify_depth" if ssl => "1",
            "ssl_protocols" if ssl => {
                if before((1, 23, 4)) {
                    "TLSv1 TLSv1.1 TLSv1.2"
                } else if before((1, 27, 3)) {
                    "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"
                } else {
                    "TLSv1.2 TLSv1.3"
                }
            }
            "ssl_name" if prefix == "proxy" => "$proxy_host",
            "http_version" if prefix == "proxy" => {
                if before((1, 29, 7)) {
                    "1.0"
                } else {
                    "1.1"
                }
            }
            "keep_conn" if prefix == "fastcgi" => "off",
            _ => return None,
        };
        return Some(known);
    }
    Some(match name {
        "keepalive_timeout" => "75s",
        "keepalive_requests" if before((1, 19, 10)) => "100",
        "keepalive_requests" => "1000",
        "client_max_body_size" => "1m",
        "resolver_timeout" => "30s",
        "send_timeout" => "60s",
        _ => return None,
    })
}

/// nginx's default for a directive of an `upstream {}` block, by version (`None` means the
/// newest nginx): `keepalive_timeout` `60s`, `keepalive_requests` `1000` (`100` before
/// 1.19.10), `keepalive_time` `1h`, and `keepalive` `32` since 1.29.7 (before, no
/// `keepalive` means no connection cache: `None`).
#[must_use]
pub fn upstream_default_of(name: &str, version: Option<Version>) -> Option<&'static str> {
    let before = |v: Version| version.is_some_and(|have| have < v);
    Some(match name {
        "keepalive_timeout" => "60s",
        "keepalive_requests" if before((1, 19, 10)) => "100",
        "keepalive_requests" => "1000",
        "keepalive_time" => "1h",
        "keepalive" if !before((1, 29, 7)) => "32",
        _ => return None,
    })
}

/// The prefixes of the upstream modules' directives.
const MODULE_PREFIXES: [&str; 6] = ["proxy", "fastcgi", "uwsgi", "scgi", "grpc", "memcached"];

/// The prefix of a module's directives: `"proxy"`, `"fastcgi"`, `"uwsgi"`, `"scgi"`,
/// `"grpc"` or `"memcached"` (so `format!("{}_ssl_verify", directive_prefix(m))`).
#[must_use]
pub fn directive_prefix(module: PassModule) -> &'static str {
    match module {
        PassModule::Proxy => "proxy",
        PassModule::FastCgi => "fastcgi",
        PassModule::Uwsgi => "uwsgi",
        PassModule::Scgi => "scgi",
        PassModule::Grpc => "grpc",
        PassModule::Memcached => "memcached",
    }
}

/// The directive sizing the response-header buffer of a module, e.g. `fastcgi_buffer_size`
/// (`upstream sent too big header`, docs/nginx-messages.md §10).
#[must_use]
pub fn buffer_size_directive(module: PassModule) -> &'static str {
    match module {
        PassModule::Proxy => "proxy_buffer_size",
        PassModule::FastCgi => "fastcgi_buffer_size",
        PassModule::Uwsgi => "uwsgi_buffer_size",
        PassModule::Scgi => "scgi_buffer_size",
        PassModule::Grpc => "grpc_buffer_size",
        PassModule::Memcached => "memcached_buffer_size",
    }
}

/// The directive of one of a module's timeouts, e.g. `grpc_read_timeout` for
/// `(PassModule::Grpc, "read")`. `which` is `"connect"` (TCP connect and TLS handshake),
/// `"send"` (between two writes of the request) or `"read"` (between two reads of the
/// response); any other `which` gives an empty string, which names no directive.
#[must_use]
pub fn timeout_directive(module: PassModule, which: &str) -> &'static str {
    use PassModule as M;
    match (module, which) {
        (M::Proxy, "connect") => "proxy_connect_timeout",
        (M::Proxy, "send") => "proxy_send_timeout",
        (M::Proxy, "read") => "proxy_read_timeout",
        (M::FastCgi, "connect") => "fastcgi_connect_timeout",
        (M::FastCgi, "send") => "fastcgi_send_timeout",
        (M::FastCgi, "read") => "fastcgi_read_timeout",
        (M::Uwsgi, "connect") => "uwsgi_connect_timeout",
        (M::Uwsgi, "send") => "uwsgi_send_timeout",
        (M::Uwsgi, "read") => "uwsgi_read_timeout",
        (M::Scgi, "connect") => "scgi_connect_timeout",
        (M::Scgi, "send") => "scgi_send_timeout",
        (M::Scgi, "read") => "scgi_read_timeout",
        (M::Grpc, "connect") => "grpc_connect_timeout",
        (M::Grpc, "send") => "grpc_send_timeout",
        (M::Grpc, "read") => "grpc_read_timeout",
        (M::Memcached, "connect") => "memcached_connect_timeout",
        (M::Memcached, "send") => "memcached_send_timeout",
        (M::Memcached, "read") => "memcached_read_timeout",
        _ => "",
    }
}

/// A directive's name from this module's tables (a name serde does not take for a borrowed
/// string).
pub type DirectiveName = &'static str;

/// A buffer-size or timeout directive's own name for `name` (for a value read back from
/// JSON): one of [`buffer_size_directive`] and [`timeout_directive`]; another name is an
/// error.
pub fn limit_directive<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    PassModule::ALL
        .iter()
        .flat_map(|m| {
            [
                buffer_size_directive(*m),
                timeout_directive(*m, "connect"),
                timeout_directive(*m, "send"),
                timeout_directive(*m, "read"),
            ]
        })
        .find(|known| *known == name)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("{name} is no buffer or timeout directive"))
        })
}

/// The `*_next_upstream` directive of a module, e.g. `proxy_next_upstream`.
#[must_use]
pub fn next_upstream_directive(module: PassModule) -> &'static str {
    match module {
        PassModule::Proxy => "proxy_next_upstream",
        PassModule::FastCgi => "fastcgi_next_upstream",
        PassModule::Uwsgi => "uwsgi_next_upstream",
        PassModule::Scgi => "scgi_next_upstream",
        PassModule::Grpc => "grpc_next_upstream",
        PassModule::Memcached => "memcached_next_upstream",
    }
}

/// A directive that keeps nginx from reusing cached upstream connections at a pass target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepaliveBlocker {
    /// What to write instead, e.g. `proxy_http_version 1.1;`.
    pub directive: &'static str,
    /// The setting in effect that blocks reuse; `None` when it is nginx's default.
    pub setting: Option<Setting>,
}

/// Why nginx would not reuse the connections an upstream group's `keepalive` caches, at a
/// pass target with these settings: empty when it reuses them; `None` for modules that never
/// do (`uwsgi_pass`, `scgi_pass`, ...).
///
/// `proxy_pass` needs HTTP/1.1 and no `Connection: close` (a `proxy_set_header Connection`
/// that is empty or a variable); before nginx 1.29.7 the defaults are HTTP/1.0 and
/// `Connection: close`. `fastcgi_pass` needs `fastcgi_keep_conn on`. A `version` of `None`
/// means the newest nginx, as in [`default_of`].
#[must_use]
pub fn keepalive_blockers(
    module: PassModule,
    settings: &Settings,
    version: Option<Version>,
) -> Option<Vec<KeepaliveBlocker>> {
    let modern = version.is_none_or(|v| v >= (1, 29, 7));
    let mut out = Vec::new();
    match module {
        PassModule::Proxy => {
            let http_version = settings.get("proxy_http_version");
            let http11 = match http_version {
                Some(v) => v.args.first().is_some_and(|a| a == "1.1"),
                None => modern,
            };
            if !http11 {
                out.push(KeepaliveBlocker {
                    directive: "proxy_http_version 1.1;",
                    setting: http_version.cloned(),
                });
            }
            let connection: Vec<&Setting> = settings
                .all("proxy_set_header")
                .iter()
                .filter(|h| {
                    h.args
                        .first()
                        .is_some_and(|n| n.eq_ignore_ascii_case("connection"))
                })
                .collect();
            let kept = if connection.is_empty() {
                modern
            } else {
                connection.iter().any(|h| {
                    h.args
                        .get(1)
                        .is_some_and(|v| v.is_empty() || v.starts_with('$'))
                })
            };
            if !kept {
                out.push(KeepaliveBlocker {
                    directive: "proxy_set_header Connection \"\";",
                    setting: connection.last().map(|s| (*s).clone()),
                });
            }
        }
        PassModule::FastCgi => {
            let keep = settings.get("fastcgi_keep_conn");
            let on = keep.is_some_and(|k| k.args.first().is_some_and(|a| a == "on"));
            if !on {
                out.push(KeepaliveBlocker {
                    directive: "fastcgi_keep_conn on;",
                    setting: keep.cloned(),
                });
            }
        }
        _ => return None,
    }
    Some(out)
}
