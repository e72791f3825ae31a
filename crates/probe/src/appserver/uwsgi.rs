//! uWSGI: its options, `--ini` files (with `path:section`) expanded where they stand on the
//! command line, its defaults and its log (`logto`, `daemonize`).

use std::path::{Path, PathBuf};

use super::files::{log_path, read_config_file, relative_to};
use super::kind::args_after;
use super::options::{Opt, multi, names_of, opt, parse_options, resolve, with_default};
use super::process::{ProcInfo, cwd_of};
use super::types::{AppServer, Setting, SettingSource};

const UWSGI_OPTS: &[Opt] = &[
    opt("ini", &["--ini"]),
    opt("harakiri", &["-t", "--harakiri"]),
    opt("buffer-size", &["-b", "--buffer-size"]),
    multi("socket", &["-s", "--socket", "--uwsgi-socket"]),
    multi("http-socket", &["--http-socket"]),
    multi("http", &["--http"]),
    Opt {
        name: "http-keepalive",
        flags: &["--http-keepalive"],
        multi: false,
        optional_value: true,
    },
    opt("processes", &["-p", "--processes", "--workers"]),
    opt("listen", &["-l", "--listen"]),
    opt("logto", &["--logto"]),
    opt("daemonize", &["-d", "--daemonize"]),
];

/// Settings of one section (default `uwsgi`) of a uWSGI ini file, mapped to option names.
/// Comments are whole lines starting with `;` or `#`. Pure.
fn uwsgi_ini_settings(text: &str, path: &Path, section: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            name.trim().clone_into(&mut current);
            continue;
        }
        if current != section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let Some(spec) = UWSGI_OPTS.iter().find(|o| o.has_key(key.trim())) else {
            continue;
        };
        let source = SettingSource::File {
            path: path.to_path_buf(),
            line: index + 1,
        };
        out.push(Setting::new(spec.name, value.trim(), source));
    }
    out
}

/// Splits `--ini path[:section]` (the section after the last `:` of the last path part).
fn ini_path_and_section(value: &str) -> (&str, &str) {
    let name_start = value.rfind('/').map_or(0, |i| i + 1);
    match value.rfind(':') {
        Some(colon) if colon > name_start => (
            value.get(..colon).unwrap_or(value),
            value.get(colon + 1..).unwrap_or("uwsgi"),
        ),
        _ => (value, "uwsgi"),
    }
}

/// uWSGI's effective settings from its command line, expanding each `--ini` (or a
/// positional `*.ini`) at its place, later values overriding earlier ones as uWSGI does.
/// `read` reads a config file. Returns the settings and the first ini file.
fn uwsgi_settings(
    args: &[String],
    cwd: Option<&Path>,
    read: &dyn Fn(&Path) -> Option<String>,
) -> (Vec<Setting>, Option<PathBuf>) {
    let (cmd, positional) = parse_options(args, UWSGI_OPTS, &SettingSource::CommandLine);
    let mut observed = Vec::new();
    let mut first_ini = None;
    let positional_ini = positional
        .iter()
        .filter(|p| p.ends_with(".ini"))
        .map(|p| Setting::new("ini", p.clone(), SettingSource::CommandLine));
    for setting in positional_ini.chain(cmd) {
        if setting.name != "ini" {
            observed.push(setting);
            continue;
        }
        let (path, section) = ini_path_and_section(&setting.value);
        let path = relative_to(path, cwd);
        if let Some(text) = read(&path) {
            observed.extend(uwsgi_ini_settings(&text, &path, section));
        }
        first_ini.get_or_insert(path);
    }
    let mut settings = resolve(observed, &names_of(UWSGI_OPTS));
    for (name, value) in [
        ("buffer-size", "4096"),
        ("harakiri", "0"),
        ("listen", "100"),
    ] {
        with_default(&mut settings, name, value);
    }
    (settings, first_ini)
}

pub(super) fn uwsgi_details(server: &mut AppServer, top: &ProcInfo) {
    let args = args_after(&top.cmdline, &["uwsgi"]);
    let cwd = cwd_of(top.pid);
    let read = |path: &Path| {
        read_config_file(path)
            .map_err(|err| tracing::debug!(%err, "cannot read uWSGI ini"))
            .ok()
    };
    let (settings, ini) = uwsgi_settings(args, cwd.as_deref(), &read);
    server.config = ini;
    server.log = log_path(&settings, "logto", cwd.as_deref()).or_else(|| {
        // `daemonize = PATH` logs to PATH.
        let daemonize = settings.iter().rev().find(|s| s.name == "daemonize")?;
        daemonize
            .value
            .contains('/')
            .then(|| relative_to(&daemonize.value, cwd.as_deref()))
    });
    server.settings = settings;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appserver::test_support::{args, file_source, value_of};

    #[test]
    fn uwsgi_ini_and_command_line() {
        let ini = "\
[uwsgi]
; comment
module = app:application
master = true
processes = 4
socket = /run/uwsgi/app.sock
buffer_size = 32768
harakiri = 30
logto = /var/log/uwsgi/app.log

[other]
harakiri = 99
";
        let read = |path: &Path| (path == Path::new("/etc/uwsgi/app.ini")).then(|| ini.to_owned());
        let (settings, config) = uwsgi_settings(
            &args("--ini /etc/uwsgi/app.ini --harakiri 60 -M"),
            None,
            &read,
        );
        assert_eq!(config.as_deref(), Some(Path::new("/etc/uwsgi/app.ini")));
        let get = |name: &str| settings.iter().rev().find(|s| s.name == name).unwrap();
        assert_eq!(
            get("harakiri").value,
            "60",
            "the later command-line value wins"
        );
        assert_eq!(get("harakiri").source, SettingSource::CommandLine);
        assert_eq!(get("buffer-size").value, "32768");
        assert_eq!(
            get("buffer-size").source,
            file_source(Path::new("/etc/uwsgi/app.ini"), 7)
        );
        assert_eq!(get("processes").value, "4");
        assert_eq!(get("socket").value, "/run/uwsgi/app.sock");
        assert_eq!(get("logto").value, "/var/log/uwsgi/app.log");
        assert_eq!(get("listen").source, SettingSource::Default);

        // A positional ini with a section, relative to the working directory, and defaults.
        let other = |path: &Path| (path == Path::new("/srv/app/app.ini")).then(|| ini.to_owned());
        let (settings, config) = uwsgi_settings(
            &args("--ini app.ini:other"),
            Some(Path::new("/srv/app")),
            &other,
        );
        assert_eq!(config.as_deref(), Some(Path::new("/srv/app/app.ini")));
        assert_eq!(value_of(&settings, "harakiri"), Some("99"));
        let buffer = settings.iter().find(|s| s.name == "buffer-size").unwrap();
        assert_eq!(
            (buffer.value.as_str(), &buffer.source),
            ("4096", &SettingSource::Default)
        );
        let (settings, _) = uwsgi_settings(&args("/srv/app/app.ini"), None, &other);
        assert_eq!(value_of(&settings, "harakiri"), Some("30"));
        // http-keepalive takes an optional value.
        let (settings, _) =
            uwsgi_settings(&args("--http-keepalive --http :8080"), None, &|_: &Path| {
                None
            });
        assert_eq!(value_of(&settings, "http-keepalive"), Some("true"));
        assert_eq!(value_of(&settings, "http"), Some(":8080"));
    }

    #[test]
    fn ini_path_sections() {
        assert_eq!(
            ini_path_and_section("/etc/uwsgi/app.ini"),
            ("/etc/uwsgi/app.ini", "uwsgi")
        );
        assert_eq!(ini_path_and_section("app.ini:prod"), ("app.ini", "prod"));
        assert_eq!(
            ini_path_and_section("/a:b/app.ini"),
            ("/a:b/app.ini", "uwsgi")
        );
    }
}
