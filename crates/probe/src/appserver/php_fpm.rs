//! PHP-FPM: its ini dialect with `include=` globs and `$pool`, the parsed config's pools,
//! and what [`identify`](super::identify) reports for a PHP-FPM master or worker (the pool
//! serving the endpoint, its settings with PHP-FPM's defaults, the error log).

use std::fs;
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};
use serde::{Deserialize, Serialize};

use super::files::{read_config_file, relative_to};
use super::listen::{PHP_FPM_DEFAULT_PREFIX, addr_matches, parse_endpoint, parse_listen};
use super::options::{opt, parse_options, unquote};
use super::process::{ProcInfo, cwd_of};
use super::types::{AppServer, Setting, SettingSource};
use crate::error::ProbeError;

/// Most config files one PHP-FPM config may pull in through `include=`.
const MAX_CONFIG_FILES: usize = 64;
/// Deepest `include=` nesting followed.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Most directory entries read per directory while expanding an include glob.
const MAX_DIR_ENTRIES: usize = 4096;

/// A parsed PHP-FPM configuration: the `[global]` section and every pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhpFpmConfig {
    /// Settings of `[global]` (and of lines before any section).
    pub global: Vec<Setting>,
    /// The pools, in order of first appearance; sections with the same name are merged, as
    /// PHP-FPM does.
    pub pools: Vec<PhpFpmPool>,
    /// Every file read, the main one first.
    pub files: Vec<PathBuf>,
}

/// One PHP-FPM pool (`[www]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhpFpmPool {
    /// The section name.
    pub name: String,
    /// Its settings in file order, with `$pool` substituted.
    pub settings: Vec<Setting>,
}

impl PhpFpmPool {
    /// The setting called `name` (the last one when repeated).
    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.name == name)
    }
}

impl PhpFpmConfig {
    /// The `[global]` setting called `name`.
    pub fn global_setting(&self, name: &str) -> Option<&Setting> {
        self.global.iter().rev().find(|s| s.name == name)
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PhpFpmPool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool whose `listen` accepts connections to `endpoint`, written as nginx writes
    /// an upstream (`127.0.0.1:9000`, `unix:/run/php/php8.2-fpm.sock`,
    /// `fastcgi://[::1]:9000`). A `listen` of a bare port (`9000`), `0.0.0.0:9000` or
    /// `[::]:9000` accepts any address on that port; `localhost` stands for `127.0.0.1`
    /// and `::1`; unix paths are compared after resolving symlinks when both exist.
    pub fn pool_for_endpoint(&self, endpoint: &str) -> Option<&PhpFpmPool> {
        self.pool_for_endpoint_in(endpoint, None)
    }

    fn pool_for_endpoint_in(&self, endpoint: &str, prefix: Option<&Path>) -> Option<&PhpFpmPool> {
        let wanted = parse_endpoint(endpoint)?;
        self.pools.iter().find(|pool| {
            let Some(listen) = pool.get("listen") else {
                return false;
            };
            let pool_prefix = pool.get("prefix").map(|s| PathBuf::from(&s.value));
            let base = pool_prefix.as_deref().or(prefix);
            parse_listen(&listen.value, base).is_some_and(|have| addr_matches(&have, &wanted))
        })
    }
}

/// Pool settings [`identify`] reports, with PHP-FPM's defaults (`None`: no default).
const PHP_FPM_POOL_SETTINGS: &[(&str, Option<&str>)] = &[
    ("listen", None),
    ("listen.owner", None),
    ("listen.group", None),
    ("listen.mode", Some("0660")),
    // -1 on Linux: the kernel's net.core.somaxconn.
    ("listen.backlog", Some("-1")),
    ("listen.allowed_clients", Some("any")),
    ("listen.acl_users", None),
    ("listen.acl_groups", None),
    ("pm", None),
    ("pm.max_children", None),
    ("pm.max_requests", Some("0")),
    ("pm.status_path", None),
    ("ping.path", None),
    ("request_terminate_timeout", Some("0")),
    ("request_slowlog_timeout", Some("0")),
];

/// Base of a relative `error_log` when no `-p` prefix is given (`PHP_LOCALSTATEDIR`).
const PHP_FPM_DEFAULT_LOG_PREFIX: &str = "/var";

pub(super) fn php_fpm_details(
    server: &mut AppServer,
    master: &ProcInfo,
    this: &ProcInfo,
    endpoint: Option<&str>,
) {
    let cwd = cwd_of(master.pid);
    // Flags survive only when the master is not retitled.
    let flags = parse_options(
        master.cmdline.get(1..).unwrap_or_default(),
        &[
            opt("prefix", &["-p", "--prefix"]),
            opt("config", &["-y", "--fpm-config"]),
        ],
        &SettingSource::CommandLine,
    )
    .0;
    let flag = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|s| s.name == name)
            .map(|s| s.value.clone())
    };
    let prefix_dir = flag("prefix").map(PathBuf::from);
    let config = config_from_master_title(&master.title())
        .or_else(|| flag("config"))
        .map(|p| relative_to(&p, cwd.as_deref()))
        .or_else(|| default_php_fpm_config(&master.comm));
    server.config.clone_from(&config);
    let Some(config) = config else {
        tracing::debug!(pid = master.pid, "no PHP-FPM config path found");
        return;
    };
    let parsed = match load_php_fpm(&config, prefix_dir.as_deref()) {
        Ok(parsed) => parsed,
        Err(err) => {
            tracing::debug!(%err, "cannot read PHP-FPM config");
            return;
        }
    };
    let worker_pool = this
        .title()
        .strip_prefix("php-fpm: pool ")
        .map(|p| p.trim().to_owned());
    let by_endpoint = endpoint.and_then(|e| parsed.pool_for_endpoint_in(e, prefix_dir.as_deref()));
    if endpoint.is_some() && by_endpoint.is_none() {
        tracing::debug!(?endpoint, "no PHP-FPM pool listens on the endpoint");
    }
    let pool = by_endpoint
        .or_else(|| worker_pool.as_deref().and_then(|name| parsed.pool(name)))
        .or(match parsed.pools.as_slice() {
            [only] => Some(only),
            _ => None,
        });
    if let Some(pool) = pool {
        server.pool = Some(pool.name.clone());
        for (name, default) in PHP_FPM_POOL_SETTINGS {
            match (pool.get(name), default) {
                (Some(setting), _) => server.settings.push(setting.clone()),
                (None, Some(value)) => {
                    server
                        .settings
                        .push(Setting::new(*name, *value, SettingSource::Default));
                }
                (None, None) => {}
            }
        }
    }
    let log_base = prefix_dir.unwrap_or_else(|| PathBuf::from(PHP_FPM_DEFAULT_LOG_PREFIX));
    server.log = match parsed.global_setting("error_log") {
        Some(s) if s.value.starts_with("syslog") || s.value.is_empty() => None,
        Some(s) => Some(relative_to(&s.value, Some(&log_base))),
        None => Some(log_base.join("log/php-fpm.log")),
    };
}

/// The config path in a PHP-FPM master's title, `php-fpm: master process (PATH)`.
fn config_from_master_title(title: &str) -> Option<String> {
    let rest = title.trim().strip_prefix("php-fpm: master process (")?;
    let end = rest.rfind(')')?;
    Some(rest.get(..end)?.to_owned())
}

/// Where a packaged PHP-FPM keeps its config when the title does not say: Debian
/// `/etc/php/8.2/fpm/php-fpm.conf` (version from `php-fpm8.2`), the official Docker image
/// `/usr/local/etc/php-fpm.conf`, RHEL `/etc/php-fpm.conf`. The first that exists.
fn default_php_fpm_config(comm: &str) -> Option<PathBuf> {
    let version = comm.strip_prefix("php-fpm").unwrap_or("");
    let mut candidates = Vec::new();
    if !version.is_empty() {
        candidates.push(PathBuf::from(format!(
            "/etc/php/{version}/fpm/php-fpm.conf"
        )));
    }
    candidates.push(PathBuf::from("/usr/local/etc/php-fpm.conf"));
    candidates.push(PathBuf::from("/etc/php-fpm.conf"));
    candidates.into_iter().find(|p| p.is_file())
}

/// The pool named in a PHP-FPM log line, `[pool www]`.
pub(super) fn pool_of_line(line: &str) -> Option<&str> {
    let rest = line.split_once("[pool ")?.1;
    Some(rest.split_once(']')?.0)
}

/// Parses a PHP-FPM config file and every file its `include=` globs name (relative
/// patterns are based at `/usr`, PHP-FPM's prefix when run without `-p`), at most 64 files
/// of 1 MiB each and 8 levels deep. Unreadable included files are skipped (see `tracing`
/// debug events); only an unreadable main file is an error.
pub fn parse_php_fpm_config(path: &Path) -> Result<PhpFpmConfig, ProbeError> {
    load_php_fpm(path, None)
}

fn load_php_fpm(path: &Path, prefix: Option<&Path>) -> Result<PhpFpmConfig, ProbeError> {
    let text = read_config_file(path)?;
    let mut parser = FpmParser {
        config: PhpFpmConfig::default(),
        current: None,
        follow: Some(
            prefix.map_or_else(|| PathBuf::from(PHP_FPM_DEFAULT_PREFIX), Path::to_path_buf),
        ),
    };
    parser.config.files.push(path.to_path_buf());
    parser.parse(&text, path, 0);
    Ok(parser.config)
}

/// Parses the text of one PHP-FPM config file without following `include=` (those lines
/// are kept as settings named `include`). Pure.
///
/// The dialect is PHP's ini syntax as PHP-FPM reads it, line by line: `;` starts a comment
/// (also after a value), `[name]` starts a section (`[global]` or a pool), values may be
/// in double quotes (with `\"` escapes) or single quotes, and `$pool` in a pool's values is
/// replaced by the pool's name. Values are kept as written otherwise (no `yes`→`1`
/// conversion, no `${ENV}` expansion).
pub fn parse_php_fpm_str(text: &str, path: &Path) -> PhpFpmConfig {
    let mut parser = FpmParser {
        config: PhpFpmConfig::default(),
        current: None,
        follow: None,
    };
    parser.config.files.push(path.to_path_buf());
    parser.parse(text, path, 0);
    parser.config
}

struct FpmParser {
    config: PhpFpmConfig,
    /// The pool being filled; `None` for `[global]`.
    current: Option<usize>,
    /// Follow `include=`, with this prefix for relative patterns.
    follow: Option<PathBuf>,
}

impl FpmParser {
    fn parse(&mut self, text: &str, path: &Path, depth: usize) {
        for (index, raw) in text.lines().enumerate() {
            match parse_ini_line(raw) {
                IniLine::Section(name) => self.enter(name),
                IniLine::Entry(key, value) => {
                    let value = match self.current.and_then(|i| self.config.pools.get(i)) {
                        Some(pool) => value.replace("$pool", &pool.name),
                        None => value,
                    };
                    let source = SettingSource::File {
                        path: path.to_path_buf(),
                        line: index + 1,
                    };
                    let include = (key == "include").then(|| value.clone());
                    self.push(Setting::new(key, value, source));
                    if let Some(pattern) = include {
                        self.include(&pattern, depth);
                    }
                }
                IniLine::Nothing => {}
            }
        }
    }

    fn enter(&mut self, name: String) {
        if name == "global" {
            self.current = None;
        } else if let Some(i) = self.config.pools.iter().position(|p| p.name == name) {
            self.current = Some(i);
        } else {
            self.config.pools.push(PhpFpmPool {
                name,
                settings: Vec::new(),
            });
            self.current = Some(self.config.pools.len() - 1);
        }
    }

    fn push(&mut self, setting: Setting) {
        match self.current.and_then(|i| self.config.pools.get_mut(i)) {
            Some(pool) => pool.settings.push(setting),
            None => self.config.global.push(setting),
        }
    }

    fn include(&mut self, pattern: &str, depth: usize) {
        let Some(prefix) = self.follow.clone() else {
            return;
        };
        if depth >= MAX_INCLUDE_DEPTH {
            tracing::debug!(pattern, "PHP-FPM includes nested too deep; not followed");
            return;
        }
        let pattern = relative_to(pattern, Some(&prefix));
        for file in expand_glob(&pattern) {
            if self.config.files.len() >= MAX_CONFIG_FILES {
                tracing::debug!(pattern = %pattern.display(), "too many PHP-FPM config files");
                return;
            }
            match read_config_file(&file) {
                Ok(text) => {
                    self.config.files.push(file.clone());
                    self.parse(&text, &file, depth + 1);
                }
                Err(err) => tracing::debug!(%err, "cannot read included PHP-FPM config"),
            }
        }
    }
}

/// One line of a PHP ini file.
#[derive(Debug, PartialEq, Eq)]
enum IniLine {
    Section(String),
    Entry(String, String),
    Nothing,
}

fn parse_ini_line(raw: &str) -> IniLine {
    let line = raw.trim();
    if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
        return IniLine::Nothing;
    }
    if let Some(rest) = line.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, _)) => IniLine::Section(unquote(name.trim())),
            None => IniLine::Nothing,
        };
    }
    let Some((key, value)) = line.split_once('=') else {
        return IniLine::Nothing;
    };
    let key = key.trim();
    if key.is_empty() {
        return IniLine::Nothing;
    }
    IniLine::Entry(key.to_owned(), parse_ini_value(value.trim()))
}

/// An ini value: `"double quoted"` (with `\"` and `\\`), `'single quoted'`, or bare up to
/// a `;` comment.
fn parse_ini_value(value: &str) -> String {
    if let Some(rest) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\')) => out.push(next),
                    Some(next) => {
                        out.push('\\');
                        out.push(next);
                    }
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return out;
    }
    if let Some(rest) = value.strip_prefix('\'') {
        return rest
            .split_once('\'')
            .map_or(rest, |(inner, _)| inner)
            .to_owned();
    }
    value
        .split_once(';')
        .map_or(value, |(v, _)| v)
        .trim_end()
        .to_owned()
}

/// Expands a glob(3)-style pattern (`*`, `?`, `[a-z]`, `[!x]` in any component) to the
/// regular files it names, sorted; a pattern without wildcards names itself if it is a
/// file. Hidden names only match a pattern that starts with `.`.
pub(super) fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = match component {
            Component::Normal(part) => part.to_string_lossy().into_owned(),
            other => {
                for path in &mut current {
                    path.push(other.as_os_str());
                }
                continue;
            }
        };
        if !part.contains(['*', '?', '[']) {
            for path in &mut current {
                path.push(&part);
            }
            continue;
        }
        let Some(matcher) = component_pattern(&part) else {
            return Vec::new();
        };
        let mut next = Vec::new();
        for dir in &current {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .take(MAX_DIR_ENTRIES)
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| matcher.matches_with(name, GLOB_OPTIONS))
                .collect();
            names.sort();
            let room = MAX_DIR_ENTRIES.saturating_sub(next.len());
            next.extend(names.into_iter().take(room).map(|name| dir.join(name)));
        }
        current = next;
    }
    let mut files: Vec<PathBuf> = current.into_iter().filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// How a name matches one component of an include pattern, as glob(3) matches it:
/// case-sensitively, and a leading `.` (a hidden name) only by a literal `.`.
const GLOB_OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// One component of an include pattern as glibc's glob(3) reads it, in the `glob` crate's
/// syntax: `[^x]` is `[!x]`, a run of `*` is one `*`, and a `[` that opens no class (`[`
/// without its `]`) is a literal `[`. `None` only for a pattern the crate refuses anyway.
fn component_pattern(part: &str) -> Option<Pattern> {
    let mut text = part.replace("[^", "[!");
    while text.contains("**") {
        text = text.replace("**", "*");
    }
    // Each pass turns one unclosed `[` into the class `[[]`, so this ends.
    loop {
        let err = match Pattern::new(&text) {
            Ok(pattern) => return Some(pattern),
            Err(err) => err,
        };
        let (at, '[') = text.char_indices().nth(err.pos)? else {
            return None;
        };
        text.replace_range(at..at + 1, "[[]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appserver::test_support::file_source;

    #[test]
    fn php_fpm_text_parsing() {
        let path = Path::new("/etc/php/8.2/fpm/pool.d/www.conf");
        let text = "\
; Start a new pool named 'www'.
[global]
error_log = /var/log/php8.2-fpm.log ; trailing comment
include=/etc/php/8.2/fpm/pool.d/*.conf

[www]
user = www-data
listen = /run/php/php8.2-$pool.sock
listen.mode = \"0660\"
listen.allowed_clients = '127.0.0.1'
slowlog = \"/var/log/$pool.slow ; not a comment \\\" quoted\"
pm.max_children = 5   
# hash comment
php_admin_value[error_log] = /var/log/fpm-$pool.log
  request_terminate_timeout = 30s
garbage line without equals
[api]
listen = 127.0.0.1:9001
[www]
pm = dynamic
";
        let config = parse_php_fpm_str(text, path);
        assert_eq!(config.files, [path]);
        assert_eq!(config.global.len(), 2);
        let log = config.global_setting("error_log").unwrap();
        assert_eq!(log.value, "/var/log/php8.2-fpm.log");
        assert_eq!(log.source, file_source(path, 3));
        assert_eq!(
            config.global_setting("include").unwrap().value,
            "/etc/php/8.2/fpm/pool.d/*.conf"
        );
        let names: Vec<_> = config.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["www", "api"], "repeated sections merge");
        let www = config.pool("www").unwrap();
        let listen = www.get("listen").unwrap();
        assert_eq!(listen.value, "/run/php/php8.2-www.sock");
        assert_eq!(listen.source, file_source(path, 8));
        assert_eq!(www.get("listen.mode").unwrap().value, "0660");
        assert_eq!(
            www.get("listen.allowed_clients").unwrap().value,
            "127.0.0.1"
        );
        assert_eq!(
            www.get("slowlog").unwrap().value,
            "/var/log/www.slow ; not a comment \" quoted"
        );
        assert_eq!(www.get("pm.max_children").unwrap().value, "5");
        assert_eq!(
            www.get("php_admin_value[error_log]").unwrap().value,
            "/var/log/fpm-www.log"
        );
        let terminate = www.get("request_terminate_timeout").unwrap();
        assert_eq!(
            (terminate.value.as_str(), terminate.seconds()),
            ("30s", Some(30))
        );
        assert_eq!(terminate.source, file_source(path, 15));
        assert_eq!(www.get("pm").unwrap().source, file_source(path, 20));
        assert_eq!(
            config.pool("api").unwrap().get("listen").unwrap().value,
            "127.0.0.1:9001"
        );
        assert_eq!(www.settings.len(), 9);
    }

    #[test]
    fn php_fpm_includes_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("pool.d")).unwrap();
        fs::create_dir_all(root.join("pool.d/sub.conf")).unwrap(); // a directory: skipped
        let main = root.join("php-fpm.conf");
        fs::write(
            &main,
            format!(
                "[global]\nerror_log = {}/fpm.log\ninclude={}/pool.d/*.conf\n",
                root.display(),
                root.display()
            ),
        )
        .unwrap();
        fs::write(root.join("pool.d/b.conf"), "[b]\nlisten = 127.0.0.1:9002\n").unwrap();
        fs::write(
            root.join("pool.d/a.conf"),
            "; pool a\n[a]\n\nlisten = /run/$pool.sock\ninclude = extra/*.inc\n",
        )
        .unwrap();
        fs::write(root.join("pool.d/.hidden.conf"), "[hidden]\nlisten = 1\n").unwrap();
        fs::write(root.join("pool.d/c.conf.bak"), "[bak]\nlisten = 2\n").unwrap();
        fs::create_dir_all(root.join("extra")).unwrap();
        fs::write(root.join("extra/more.inc"), "pm.max_children = 7\n").unwrap();

        let config = load_php_fpm(&main, Some(root)).unwrap();
        let names: Vec<_> = config.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b"],
            "sorted, hidden and non-matching files skipped"
        );
        let a = config.pool("a").unwrap();
        assert_eq!(a.get("listen").unwrap().value, "/run/a.sock");
        assert_eq!(
            a.get("listen").unwrap().source,
            file_source(&root.join("pool.d/a.conf"), 4)
        );
        // The relative include (based at the prefix) continues pool [a].
        let children = a.get("pm.max_children").unwrap();
        assert_eq!(children.value, "7");
        assert_eq!(
            children.source,
            file_source(&root.join("extra/more.inc"), 1)
        );
        assert_eq!(config.files.len(), 4);
        assert_eq!(config.files.first(), Some(&main));
        assert_eq!(
            config
                .pool_for_endpoint("127.0.0.1:9002")
                .map(|p| p.name.as_str()),
            Some("b")
        );
        assert_eq!(
            config
                .pool_for_endpoint("unix:/run/a.sock")
                .map(|p| p.name.as_str()),
            Some("a")
        );
        assert!(config.pool_for_endpoint("127.0.0.1:9003").is_none());

        // The public entry point bases relative includes at /usr: the relative include is
        // not found, everything else is the same.
        let public = parse_php_fpm_config(&main).unwrap();
        assert_eq!(public.pools.len(), 2);
        assert!(public.pool("a").unwrap().get("pm.max_children").is_none());
        assert!(parse_php_fpm_config(&root.join("missing.conf")).is_err());
    }

    #[test]
    fn php_fpm_include_loops_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("loop.conf");
        fs::write(
            &main,
            format!("[www]\nlisten = 9000\ninclude = {}\n", main.display()),
        )
        .unwrap();
        let config = parse_php_fpm_config(&main).unwrap();
        assert!(config.files.len() <= MAX_CONFIG_FILES);
        assert_eq!(config.files.len(), MAX_INCLUDE_DEPTH + 1);
        assert_eq!(config.pools.len(), 1);
    }

    #[test]
    fn wildcard_patterns() {
        let m = |p: &str, n: &str| {
            component_pattern(p).is_some_and(|p| p.matches_with(n, GLOB_OPTIONS))
        };
        assert!(m("*.conf", "www.conf"));
        assert!(!m("*.conf", "www.conf.bak"));
        assert!(m("*", ""));
        assert!(m("w?w.conf", "www.conf"));
        assert!(m("[a-c]*.conf", "b.conf"));
        assert!(!m("[!a-c]*.conf", "b.conf"));
        assert!(m("[]x]", "]"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("[unclosed", "[unclosed"));
        assert!(m("php-fpm*", "php-fpm8.2"));
    }

    /// What the hand-written matcher that `glob` replaced also did: glibc's `[^...]`, `**`
    /// as `*`, a lone `[` as a literal before other wildcards, case, and hidden names.
    #[test]
    fn wildcard_patterns_as_glibc_reads_them() {
        let m = |p: &str, n: &str| {
            component_pattern(p).is_some_and(|p| p.matches_with(n, GLOB_OPTIONS))
        };
        assert!(!m("[^a-c]*.conf", "b.conf"));
        assert!(m("[^a-c]*.conf", "d.conf"));
        assert!(m("a**b", "aXYb"));
        assert!(m("**", "www.conf"));
        assert!(m("[unclosed*", "[unclosed.conf"));
        assert!(!m("[unclosed*", "unclosed.conf"));
        assert!(m("[!]", "[!]"));
        assert!(m("[a-]", "-"));
        assert!(!m("*.CONF", "www.conf"));
        assert!(!m("*.conf", ".hidden.conf"));
        assert!(!m("?hidden", ".hidden"));
        assert!(m(".*.conf", ".hidden.conf"));
    }

    #[test]
    fn master_title_and_pool_names() {
        assert_eq!(
            config_from_master_title("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)")
                .as_deref(),
            Some("/etc/php/8.2/fpm/php-fpm.conf")
        );
        assert_eq!(config_from_master_title("php-fpm: pool www"), None);
        assert_eq!(
            pool_of_line("[24-Nov-2026 10:00:01] WARNING: [pool www] child 12 exited on signal 9"),
            Some("www")
        );
        assert_eq!(pool_of_line("NOTICE: fpm is running"), None);
    }
}
