//! The Python servers: gunicorn, uvicorn, hypercorn and daphne. Their options, the
//! environment variables they read (`GUNICORN_CMD_ARGS`, `UVICORN_*`), the simple
//! assignments of their Python or TOML config files, their defaults and idle keep-alive
//! timeouts.

use std::path::{Path, PathBuf};

use super::files::{log_path, read_config_file, relative_to};
use super::kind::args_after;
use super::options::{
    Opt, multi, names_of, opt, parse_options, resolve, split_words, unquote, with_default,
};
use super::process::{ProcInfo, cwd_of, env_of};
use super::types::{AppServer, Setting, SettingSource};

const GUNICORN_OPTS: &[Opt] = &[
    opt("timeout", &["-t", "--timeout"]),
    opt("keep-alive", &["--keep-alive"]),
    opt("workers", &["-w", "--workers"]),
    multi("bind", &["-b", "--bind"]),
    opt("worker-class", &["-k", "--worker-class"]),
    opt("threads", &["--threads"]),
    opt("config", &["-c", "--config"]),
    opt("error-logfile", &["--error-logfile", "--log-file"]),
];

/// gunicorn config-file names of [`GUNICORN_OPTS`] that differ from the option name.
const GUNICORN_FILE_NAMES: &[(&str, &str)] = &[
    ("keepalive", "keep-alive"),
    ("worker_class", "worker-class"),
    ("errorlog", "error-logfile"),
];

/// gunicorn's effective settings from its command line (after the program), the
/// `GUNICORN_CMD_ARGS` variable and its config file, in gunicorn's precedence (command
/// line, then environment, then file), plus documented defaults. Pure.
fn gunicorn_settings(
    args: &[String],
    env_args: Option<&str>,
    file: Option<(&str, &Path)>,
) -> Vec<Setting> {
    let mut observed = Vec::new();
    if let Some((text, path)) = file {
        observed.extend(file_settings(
            text,
            path,
            GUNICORN_OPTS,
            GUNICORN_FILE_NAMES,
        ));
    }
    if let Some(env_args) = env_args {
        let source = SettingSource::Environment {
            variable: "GUNICORN_CMD_ARGS".to_owned(),
        };
        observed.extend(parse_options(&split_words(env_args), GUNICORN_OPTS, &source).0);
    }
    observed.extend(parse_options(args, GUNICORN_OPTS, &SettingSource::CommandLine).0);
    let mut settings = resolve(observed, &names_of(GUNICORN_OPTS));
    settings.retain(|s| s.name != "config");
    for (name, value) in [
        ("timeout", "30"),
        ("keep-alive", "2"),
        ("workers", "1"),
        ("bind", "127.0.0.1:8000"),
        ("worker-class", "sync"),
    ] {
        with_default(&mut settings, name, value);
    }
    settings
}

/// Simple top-level `name = literal` assignments of a Python (gunicorn, hypercorn) or TOML
/// (hypercorn) config file: `(name, values, line)`. Strings lose their quotes; a list of
/// literals gives one value per element; anything else is kept as written. Indented lines
/// (inside functions or blocks) are ignored.
fn simple_assignments(text: &str) -> Vec<(String, Vec<String>, usize)> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        if raw.starts_with(char::is_whitespace) {
            continue;
        }
        let line = strip_hash_comment(raw).trim();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.is_empty()
            || value.starts_with('=')
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let values = if let Some(inner) = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .or_else(|| value.strip_prefix('(').and_then(|v| v.strip_suffix(')')))
        {
            inner
                .split(',')
                .map(|v| unquote(v.trim()))
                .filter(|v| !v.is_empty())
                .collect()
        } else {
            vec![unquote(value)]
        };
        out.push((name.to_owned(), values, index + 1));
    }
    out
}

/// `line` up to a `#` that is outside quotes.
fn strip_hash_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return line.get(..at).unwrap_or(line),
            _ => {}
        }
    }
    line
}

/// Settings from a Python/TOML config file, mapped to option names.
fn file_settings(text: &str, path: &Path, opts: &[Opt], renames: &[(&str, &str)]) -> Vec<Setting> {
    let mut out = Vec::new();
    for (name, values, line) in simple_assignments(text) {
        let name = renames
            .iter()
            .find(|(from, _)| *from == name)
            .map_or(name.replace('_', "-"), |(_, to)| (*to).to_owned());
        if !opts.iter().any(|o| o.name == name) {
            continue;
        }
        for value in values {
            let source = SettingSource::File {
                path: path.to_path_buf(),
                line,
            };
            out.push(Setting::new(name.clone(), value, source));
        }
    }
    out
}

/// gunicorn's idle keep-alive timeout: its `keep-alive` setting, except for the default
/// `sync` worker (with one thread), which closes every connection after the response.
fn gunicorn_idle_timeout(settings: &[Setting]) -> Option<Setting> {
    let get = |name: &str| settings.iter().rev().find(|s| s.name == name);
    let class = get("worker-class").map_or("sync", |s| s.value.as_str());
    let threads = get("threads")
        .and_then(|s| s.value.parse::<u32>().ok())
        .unwrap_or(1);
    let sync = matches!(
        class,
        "sync" | "gunicorn.workers.sync.SyncWorker" | "egg:gunicorn#sync"
    );
    if sync && threads <= 1 {
        return None;
    }
    get("keep-alive").cloned()
}

/// The config file named by `-c` (or `file:PATH`), else `default_name` when it exists in
/// the working directory; `python:module` configs are not files.
fn config_file_of(
    settings: &[Setting],
    cwd: Option<&Path>,
    default_name: Option<&str>,
) -> Option<PathBuf> {
    match settings.iter().rev().find(|s| s.name == "config") {
        Some(setting) if setting.value.starts_with("python:") => None,
        Some(setting) => {
            let value = setting
                .value
                .strip_prefix("file:")
                .unwrap_or(&setting.value);
            Some(relative_to(value, cwd))
        }
        None => {
            let candidate = cwd?.join(default_name?);
            candidate.is_file().then_some(candidate)
        }
    }
}

pub(super) fn gunicorn_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["gunicorn"]);
    let env_args = env_of(top.pid, "GUNICORN_CMD_ARGS");
    let cwd = cwd_of(top.pid);
    let mut early = parse_options(args, GUNICORN_OPTS, &SettingSource::CommandLine).0;
    if let Some(env_args) = &env_args {
        let source = SettingSource::CommandLine;
        early.extend(parse_options(&split_words(env_args), GUNICORN_OPTS, &source).0);
    }
    server.config = config_file_of(&early, cwd.as_deref(), Some("gunicorn.conf.py"));
    let text = server.config.as_deref().and_then(|path| {
        read_config_file(path)
            .map_err(|err| tracing::debug!(%err, "cannot read gunicorn config"))
            .ok()
    });
    let file = text.as_deref().zip(server.config.as_deref());
    server.settings = gunicorn_settings(args, env_args.as_deref(), file);
    server.idle_timeout = gunicorn_idle_timeout(&server.settings);
    server.log = log_path(&server.settings, "error-logfile", cwd.as_deref());
}

const UVICORN_OPTS: &[Opt] = &[
    opt("timeout-keep-alive", &["--timeout-keep-alive"]),
    opt("host", &["--host"]),
    opt("port", &["--port"]),
    opt("uds", &["--uds"]),
    opt("fd", &["--fd"]),
    opt("workers", &["--workers"]),
    opt("backlog", &["--backlog"]),
];

/// uvicorn's effective settings from its command line and its `UVICORN_*` variables
/// (`UVICORN_TIMEOUT_KEEP_ALIVE`), plus defaults. Pure: `env` looks up a variable.
fn uvicorn_settings(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Vec<Setting> {
    let mut observed = Vec::new();
    for spec in UVICORN_OPTS {
        let variable = format!(
            "UVICORN_{}",
            spec.name.replace('-', "_").to_ascii_uppercase()
        );
        if let Some(value) = env(&variable) {
            observed.push(Setting::new(
                spec.name,
                value,
                SettingSource::Environment { variable },
            ));
        }
    }
    observed.extend(parse_options(args, UVICORN_OPTS, &SettingSource::CommandLine).0);
    let mut settings = resolve(observed, &[]);
    for (name, value) in [
        ("timeout-keep-alive", "5"),
        ("host", "127.0.0.1"),
        ("port", "8000"),
        ("backlog", "2048"),
    ] {
        with_default(&mut settings, name, value);
    }
    settings
}

pub(super) fn uvicorn_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["uvicorn"]);
    let pid = top.pid;
    server.settings = uvicorn_settings(args, &|name| env_of(pid, name));
    server.idle_timeout = server.setting("timeout-keep-alive").cloned();
}

const HYPERCORN_OPTS: &[Opt] = &[
    opt("keep-alive", &["--keep-alive"]),
    multi("bind", &["-b", "--bind"]),
    opt("workers", &["-w", "--workers"]),
    opt("worker-class", &["-k", "--worker-class"]),
    opt("backlog", &["--backlog"]),
    opt("config", &["-c", "--config"]),
    opt("error-logfile", &["--error-logfile", "--log-file"]),
];

const HYPERCORN_FILE_NAMES: &[(&str, &str)] = &[
    ("keep_alive_timeout", "keep-alive"),
    ("worker_class", "worker-class"),
    ("errorlog", "error-logfile"),
];

pub(super) fn hypercorn_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["hypercorn"]);
    let cwd = cwd_of(top.pid);
    let cmd = parse_options(args, HYPERCORN_OPTS, &SettingSource::CommandLine).0;
    server.config = config_file_of(&cmd, cwd.as_deref(), None);
    let mut observed = Vec::new();
    if let Some(path) = &server.config {
        match read_config_file(path) {
            Ok(text) => observed.extend(file_settings(
                &text,
                path,
                HYPERCORN_OPTS,
                HYPERCORN_FILE_NAMES,
            )),
            Err(err) => tracing::debug!(%err, "cannot read hypercorn config"),
        }
    }
    observed.extend(cmd);
    let mut settings = resolve(observed, &names_of(HYPERCORN_OPTS));
    settings.retain(|s| s.name != "config");
    for (name, value) in [
        ("keep-alive", "5"),
        ("bind", "127.0.0.1:8000"),
        ("workers", "1"),
    ] {
        with_default(&mut settings, name, value);
    }
    server.idle_timeout = settings
        .iter()
        .rev()
        .find(|s| s.name == "keep-alive")
        .cloned();
    server.log = log_path(&settings, "error-logfile", cwd.as_deref());
    server.settings = settings;
}

const DAPHNE_OPTS: &[Opt] = &[
    multi("bind", &["-b", "--bind"]),
    opt("port", &["-p", "--port"]),
    opt("unix-socket", &["-u", "--unix-socket"]),
    opt("http-timeout", &["--http-timeout"]),
];

/// daphne's settings: its command line only (it reads no config file or environment).
pub(super) fn daphne_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["daphne"]);
    server.settings = resolve(
        parse_options(args, DAPHNE_OPTS, &SettingSource::CommandLine).0,
        &["bind"],
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::appserver::test_support::{args, file_source, value_of};

    #[test]
    fn gunicorn_option_spellings() {
        for spelling in ["--timeout=60", "--timeout 60", "-t 60", "-t60"] {
            let settings = gunicorn_settings(&args(&format!("app:app {spelling}")), None, None);
            let timeout = settings.iter().find(|s| s.name == "timeout").unwrap();
            assert_eq!(timeout.value, "60", "{spelling}");
            assert_eq!(timeout.source, SettingSource::CommandLine);
        }
        let settings = gunicorn_settings(
            &args("app:app -b 127.0.0.1:8000 --bind=unix:/run/app.sock --keep-alive 5 -w 3"),
            None,
            None,
        );
        assert_eq!(value_of(&settings, "keep-alive"), Some("5"));
        assert_eq!(value_of(&settings, "workers"), Some("3"));
        let binds: Vec<_> = settings
            .iter()
            .filter(|s| s.name == "bind")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(binds, ["127.0.0.1:8000", "unix:/run/app.sock"]);
        // Defaults, marked as such.
        let timeout = settings.iter().find(|s| s.name == "timeout").unwrap();
        assert_eq!(
            (timeout.value.as_str(), &timeout.source),
            ("30", &SettingSource::Default)
        );
        assert_eq!(timeout.seconds(), Some(30));
    }

    #[test]
    fn gunicorn_precedence_file_env_command_line() {
        let path = Path::new("/srv/app/gunicorn.conf.py");
        let file = "\
import multiprocessing
# timeout = 999
bind = [\"127.0.0.1:9000\", 'unix:/run/g.sock']
timeout = 120  # seconds
keepalive = 10
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = \"gthread\"
errorlog = '/var/log/gunicorn/error.log'
def on_starting(server):
    timeout = 5
";
        let settings = gunicorn_settings(
            &args("app:app --keep-alive 3"),
            Some("--timeout 90 --workers=2"),
            Some((file, path)),
        );
        let get = |name: &str| settings.iter().rev().find(|s| s.name == name).unwrap();
        assert_eq!(get("timeout").value, "90");
        assert_eq!(
            get("timeout").source,
            SettingSource::Environment {
                variable: "GUNICORN_CMD_ARGS".to_owned()
            }
        );
        assert_eq!(get("keep-alive").value, "3");
        assert_eq!(get("keep-alive").source, SettingSource::CommandLine);
        assert_eq!(get("worker-class").value, "gthread");
        assert_eq!(get("worker-class").source, file_source(path, 7));
        assert_eq!(get("error-logfile").value, "/var/log/gunicorn/error.log");
        assert_eq!(get("workers").value, "2");
        let binds: Vec<_> = settings
            .iter()
            .filter(|s| s.name == "bind")
            .map(|s| (s.value.as_str(), s.source.clone()))
            .collect();
        assert_eq!(
            binds,
            [
                ("127.0.0.1:9000", file_source(path, 3)),
                ("unix:/run/g.sock", file_source(path, 3))
            ]
        );
        // gthread keeps connections alive: the idle timeout is keep-alive.
        assert_eq!(
            gunicorn_idle_timeout(&settings).map(|s| s.value),
            Some("3".to_owned())
        );
    }

    #[test]
    fn gunicorn_sync_workers_have_no_idle_timeout() {
        let sync = gunicorn_settings(&args("app:app --keep-alive 5"), None, None);
        assert_eq!(gunicorn_idle_timeout(&sync), None);
        // sync with threads > 1 runs as gthread.
        let threaded = gunicorn_settings(&args("app:app --threads 4"), None, None);
        let idle = gunicorn_idle_timeout(&threaded).unwrap();
        assert_eq!(
            (idle.value.as_str(), &idle.source),
            ("2", &SettingSource::Default)
        );
        let uvicorn_worker = gunicorn_settings(
            &args("-k uvicorn.workers.UvicornWorker main:app"),
            None,
            None,
        );
        assert!(gunicorn_idle_timeout(&uvicorn_worker).is_some());
    }

    #[test]
    fn uvicorn_keep_alive() {
        let no_env = |_: &str| -> Option<String> { None };
        let settings = uvicorn_settings(
            &args("main:app --timeout-keep-alive 3 --port=9000"),
            &no_env,
        );
        assert_eq!(value_of(&settings, "timeout-keep-alive"), Some("3"));
        assert_eq!(value_of(&settings, "port"), Some("9000"));
        let settings = uvicorn_settings(&args("main:app"), &no_env);
        let idle = settings
            .iter()
            .find(|s| s.name == "timeout-keep-alive")
            .unwrap();
        assert_eq!(
            (idle.value.as_str(), &idle.source),
            ("5", &SettingSource::Default)
        );
        let env = |name: &str| (name == "UVICORN_TIMEOUT_KEEP_ALIVE").then(|| "7".to_owned());
        let settings = uvicorn_settings(&args("main:app"), &env);
        let idle = settings
            .iter()
            .find(|s| s.name == "timeout-keep-alive")
            .unwrap();
        assert_eq!(idle.value, "7");
        assert!(matches!(idle.source, SettingSource::Environment { .. }));
        // The command line beats the environment.
        let settings = uvicorn_settings(&args("main:app --timeout-keep-alive=2"), &env);
        assert_eq!(value_of(&settings, "timeout-keep-alive"), Some("2"));
    }
}
