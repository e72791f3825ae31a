//! The app server's side of a fix: one setting in the app server's own config file, named by
//! the evidence that found the cause, its own config test and its reload. What belongs here:
//! which setting a diagnosis points at, the value it gets, and how that app server is tested
//! and reloaded. Such an action is never applied by `--apply` alone: only after a yes in the
//! wizard to that exact diff and command (`Action::needs_yes`).
//!
//! Today, where the app server was identified behind the failing upstream, runs in fix502's
//! own mount namespace, and the setting is written in a file (a line `name = value`):
//! - php-fpm drops nginx's connections (`listen.allowed_clients` leaves out nginx's
//!   address): that address is added to the list;
//! - php-fpm killed scripts (`execution timed out`, `request_terminate_timeout`):
//!   raised to the time nginx itself waits for them (its `fastcgi_read_timeout`), never past;
//! - gunicorn killed workers (`WORKER TIMEOUT`, `timeout` in its Python config) and uWSGI
//!   killed requests (`HARAKIRI`, `harakiri` in its ini): the same, to nginx's read timeout;
//! - php-fpm's pool was full (`reached pm.max_children`): twice the children, fewer when
//!   the memory available does not hold that many more workers of the size they run at;
//! - nginx's workers may not connect to php-fpm's socket (`unix-socket-permission`): the
//!   pool's `listen.group` becomes the worker user's group when `listen.mode` lets the group
//!   write, else its `listen.owner` becomes the worker user.
//!
//! php-fpm is tested with `php-fpm -t -y CONFIG` and reloaded through its systemd unit when
//! it has one, else by its master's documented graceful-reload signal (php-fpm SIGUSR2,
//! gunicorn and uWSGI SIGHUP). A reloaded php-fpm keeps the listening sockets it inherits,
//! so their `listen.owner`/`group`/`mode` take effect only on a restart: that edit is
//! offered only with a systemd unit to restart (`systemctl restart`), never by a signal.

use std::path::Path;
use std::time::Duration;

use fix502_probe::appserver::{AppServer, AppServerKind, LogEventKind, Setting, SettingSource};
use fix502_probe::namespace::NamespaceIds;

use super::edits::{CheckRequest, check_request, endpoint_at};
use crate::causes::Cause;
use crate::changes::AppTarget;
use crate::edit::{self, FileEdit};
use crate::facts::{Behind, Facts};
use crate::report::Diagnosis;
use crate::steps::appserver::{SATURATED, happened, not_allowed};

/// An edit of an app server's config, how it is tested and reloaded, and the request that
/// shows it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEdit {
    /// The change (one file of the app server's config).
    pub edit: FileEdit,
    /// The app server: its name, its config test, its reload.
    pub app: AppTarget,
    /// The app server's master process.
    pub master: u32,
    /// The request sent through nginx afterwards: it must not answer 502 or 504.
    pub check: CheckRequest,
}

/// The most workers `pm.max_children` is raised to at once: twice what it was.
const GROWTH: u64 = 2;

/// The app-side edit for `d`, when the evidence names one setting of a file fix502 can
/// write back.
pub async fn for_diagnosis(facts: &Facts, d: &Diagnosis) -> Option<AppEdit> {
    let upstream = d.upstream.as_ref()?;
    let (i, endpoint) = endpoint_at(facts, upstream).await?;
    let Ok(Some(Behind::Server(app))) = facts.behind(i).await else {
        return None;
    };
    let master = u32::try_from(app.master_pid.unwrap_or(app.pid)).ok()?;
    if !same_mount_namespace(master) {
        return None;
    }
    let target = endpoint.uses.first()?.target;
    let waits = facts.view.targets.get(target).map(|t| {
        crate::exchange::read_timeout_limit(t, facts.nginx_version())
            .value
            .as_secs()
    });
    let timeout_to = |name: &str| {
        let setting = app.setting(name)?;
        let now = setting.seconds()?;
        let want = waits?;
        // 0 means "never" in php-fpm; only a shorter limit than nginx's is raised.
        (now != 0 && now < want).then(|| (setting.clone(), want))
    };
    let (setting, value) = match (d.cause, app.kind) {
        (Cause::UNIX_SOCKET_PERMISSION, AppServerKind::PhpFpm) => socket_access(facts, app)?,
        (Cause::UPSTREAM_CLOSED_EARLY, AppServerKind::PhpFpm) => {
            match not_allowed(facts, endpoint, app) {
                Some((setting, source)) => (setting.clone(), format!("{},{source}", setting.value)),
                None if happened(facts, app, LogEventKind::ExecutionTimedOut) => {
                    // php-fpm's own unit, as it writes them.
                    let (s, secs) = timeout_to("request_terminate_timeout")?;
                    (s, format!("{secs}s"))
                }
                None => max_children(facts, app, master)?,
            }
        }
        (Cause::UPSTREAM_CLOSED_EARLY, AppServerKind::Gunicorn)
            if happened(facts, app, LogEventKind::WorkerTimeout) =>
        {
            let (s, secs) = timeout_to("timeout")?;
            (s, secs.to_string())
        }
        (Cause::UPSTREAM_CLOSED_EARLY, AppServerKind::Uwsgi)
            if happened(facts, app, LogEventKind::Harakiri) =>
        {
            let (s, secs) = timeout_to("harakiri")?;
            (s, secs.to_string())
        }
        (c, AppServerKind::PhpFpm) if SATURATED.contains(&c) => max_children(facts, app, master)?,
        _ => return None,
    };
    let edit = setting_edit(app, &setting, &value)?;
    let restart = setting.name.starts_with("listen.") && setting.name != "listen.allowed_clients";
    Some(AppEdit {
        edit,
        app: target_of(app, master, restart)?,
        master,
        check: check_request(facts, target, upstream).await?,
    })
}

/// `pm.max_children` after the pool said it was full: twice as many, bounded by the memory
/// available for more workers of the size they run at now.
fn max_children(facts: &Facts, app: &AppServer, master: u32) -> Option<(Setting, String)> {
    if !happened(facts, app, LogEventKind::MaxChildrenReached) {
        return None;
    }
    let setting = app.setting("pm.max_children")?;
    let now: u64 = setting.value.trim().parse().ok()?;
    let sizes: Vec<u64> = children_of(master).into_iter().filter_map(rss_of).collect();
    let size = sizes.iter().sum::<u64>().checked_div(sizes.len() as u64)?;
    // Half of what is available, so that the host keeps room for everything else.
    let room = mem_available()? / 2 / size.max(1);
    let want = (now * GROWTH).min(now + room);
    (want > now).then(|| (setting.clone(), want.to_string()))
}

/// `unix-socket-permission` at a php-fpm socket: the worker user's group where the mode
/// lets the group write, else the worker user as the socket's owner.
fn socket_access(facts: &Facts, app: &AppServer) -> Option<(Setting, String)> {
    let (user_name, _) = facts.worker_user.as_ref()?;
    let user = nix::unistd::User::from_name(user_name).ok()??;
    let mode = app
        .setting("listen.mode")
        .and_then(|m| u32::from_str_radix(m.value.trim(), 8).ok())?;
    let (name, value) = if mode & 0o060 == 0o060 {
        let group = nix::unistd::Group::from_gid(user.gid).ok()??;
        ("listen.group", group.name)
    } else if mode & 0o600 == 0o600 {
        ("listen.owner", user.name)
    } else {
        return None;
    };
    let setting = match app.setting(name) {
        Some(s) if s.value == value => return None,
        Some(s) => s.clone(),
        None => Setting::new(name, "", SettingSource::Default),
    };
    Some((setting, value))
}

/// The edit that gives `setting` the value `value`: its own line rewritten, or, for a
/// php-fpm setting left at its default, a new line after the pool's `listen` line.
fn setting_edit(app: &AppServer, setting: &Setting, value: &str) -> Option<FileEdit> {
    if let SettingSource::File { path, line } = &setting.source {
        let text = edit::read_text(path).ok()?;
        let written = text.lines().nth(line.checked_sub(1)?)?;
        let after = rewritten(written, &setting.name, value)?;
        return FileEdit::replace(path, &text, *line, 1, &after).ok();
    }
    if app.kind != AppServerKind::PhpFpm || setting.source != SettingSource::Default {
        return None;
    }
    let SettingSource::File { path, line } = &app.setting("listen")?.source else {
        return None;
    };
    let text = edit::read_text(path).ok()?;
    let new = format!("{} = {value}", setting.name);
    FileEdit::insert_after(path, &text, *line, &[&new]).ok()
}

/// `line` (`name = value`, with any blanks, an optional comment after a `;` or `#`) with
/// the new value, when it is exactly one plain assignment of `name` (a Python config's
/// `timeout = 30` too, never an expression).
fn rewritten(line: &str, name: &str, value: &str) -> Option<String> {
    let (key, old) = line.split_once('=')?;
    let indent = &key[..key.len() - key.trim_start().len()];
    let key = key.trim();
    let spelled = |k: &str| k == name || k.replace('_', "-") == name.replace('_', "-");
    if !spelled(key) {
        return None;
    }
    let old = old.split([';', '#']).next()?.trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || ",.:/-_'\"".contains(c);
    if !old.chars().all(plain) {
        return None;
    }
    let comment = line
        .find([';', '#'])
        .filter(|at| *at > line.find('=').unwrap_or(0))
        .map(|at| format!(" {}", &line[at..]))
        .unwrap_or_default();
    Some(format!("{indent}{key} = {value}{comment}"))
}

/// How this app server is tested and reloaded; with `restart`, restarted through its
/// systemd unit (`None` without one).
fn target_of(app: &AppServer, master: u32, restart: bool) -> Option<AppTarget> {
    let exe = std::fs::read_link(format!("/proc/{master}/exe")).ok();
    let test = match (app.kind, &exe, &app.config) {
        (AppServerKind::PhpFpm, Some(exe), Some(config)) => Some(vec![
            exe.display().to_string(),
            "-t".to_owned(),
            "-y".to_owned(),
            config.display().to_string(),
        ]),
        _ => None,
    };
    let signal = match app.kind {
        AppServerKind::PhpFpm => "-USR2",
        AppServerKind::Gunicorn | AppServerKind::Uwsgi => "-HUP",
        _ => return None,
    };
    let unit = fix502_probe::listeners::systemd_unit_of(master)
        .filter(|_| Path::new("/run/systemd/system").is_dir());
    let reload = match unit {
        Some(u) if restart => vec!["systemctl".to_owned(), "restart".to_owned(), u],
        Some(u) => vec!["systemctl".to_owned(), "reload".to_owned(), u],
        None if restart => return None,
        None => vec!["kill".to_owned(), signal.to_owned(), master.to_string()],
    };
    let name = exe
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| app.kind.name().to_owned());
    Some(AppTarget {
        name,
        test,
        reload: Some(reload),
    })
}

/// Whether `pid` sees the same files as fix502 (its mount namespace is fix502's own).
fn same_mount_namespace(pid: u32) -> bool {
    let theirs = NamespaceIds::of(&pid.to_string()).mnt;
    theirs.is_some() && theirs == NamespaceIds::own().mnt
}

/// The children of `pid` (php-fpm's workers).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The resident memory of `pid`, in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// The memory available to new processes, in bytes (`MemAvailable`).
fn mem_available() -> Option<u64> {
    kib_field("/proc/meminfo", "MemAvailable:")
}

/// A `Name:   N kB` field of a /proc file, in bytes.
fn kib_field(file: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// How long an app server may take to come back after its reload before the proving
/// request counts as failed.
pub const COME_BACK: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_assignment_gets_the_new_value_and_keeps_its_comment() {
        assert_eq!(
            rewritten(
                "listen.allowed_clients = 127.0.0.2",
                "listen.allowed_clients",
                "127.0.0.2,127.0.0.1"
            ),
            Some("listen.allowed_clients = 127.0.0.2,127.0.0.1".to_owned())
        );
        assert_eq!(
            rewritten(
                "  request_terminate_timeout=1 ; lab",
                "request_terminate_timeout",
                "60s"
            ),
            Some("  request_terminate_timeout = 60s ; lab".to_owned())
        );
        assert_eq!(
            rewritten("timeout = 30  # seconds", "timeout", "60"),
            Some("timeout = 60 # seconds".to_owned())
        );
        assert_eq!(
            rewritten("harakiri = 5", "harakiri", "60"),
            Some("harakiri = 60".to_owned())
        );
    }

    #[test]
    fn anything_but_a_plain_assignment_of_that_name_is_left_alone() {
        assert_eq!(
            rewritten("timeout = int(os.environ['T'])", "timeout", "60"),
            None
        );
        assert_eq!(rewritten("timeout = 30 * 2", "timeout", "60"), None);
        assert_eq!(rewritten("graceful_timeout = 30", "timeout", "60"), None);
        assert_eq!(rewritten("pm.max_children", "pm.max_children", "4"), None);
    }

    fn server(kind: AppServerKind, settings: Vec<Setting>) -> AppServer {
        AppServer {
            kind,
            pid: 1,
            master_pid: None,
            process: String::new(),
            cmdline: Vec::new(),
            config: None,
            pool: None,
            settings,
            idle_timeout: None,
            log: None,
            events: Vec::new(),
        }
    }

    fn at(path: &Path, line: usize) -> SettingSource {
        SettingSource::File {
            path: path.to_path_buf(),
            line,
        }
    }

    #[test]
    fn gunicorn_and_uwsgi_timeouts_are_edited_in_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let py = dir.path().join("gunicorn.conf.py");
        std::fs::write(
            &py,
            "bind = '127.0.0.1:8000'\ntimeout = 5  # seconds\nworkers = 2\n",
        )
        .unwrap();
        let timeout = Setting::new("timeout", "5", at(&py, 2));
        let app = server(AppServerKind::Gunicorn, vec![timeout.clone()]);
        let edit = setting_edit(&app, &timeout, "60").unwrap();
        assert!(
            edit.diff()
                .contains("-timeout = 5  # seconds\n+timeout = 60 # seconds\n"),
            "{}",
            edit.diff()
        );
        let ini = dir.path().join("app.ini");
        std::fs::write(&ini, "[uwsgi]\nsocket = 127.0.0.1:3031\nharakiri=5\n").unwrap();
        let harakiri = Setting::new("harakiri", "5", at(&ini, 3));
        let app = server(AppServerKind::Uwsgi, vec![harakiri.clone()]);
        let edit = setting_edit(&app, &harakiri, "60").unwrap();
        assert!(
            edit.diff().contains("-harakiri=5\n+harakiri = 60\n"),
            "{}",
            edit.diff()
        );
        // A value from the command line is not in a file fix502 can write back.
        let flag = Setting::new("timeout", "5", SettingSource::CommandLine);
        assert!(setting_edit(&server(AppServerKind::Gunicorn, vec![]), &flag, "60").is_none());
    }

    #[test]
    fn a_php_fpm_setting_left_at_its_default_goes_after_the_pool_s_listen() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("www.conf");
        std::fs::write(&conf, "[www]\nlisten = /run/php/fpm.sock\npm = static\n").unwrap();
        let listen = Setting::new("listen", "/run/php/fpm.sock", at(&conf, 2));
        let app = server(AppServerKind::PhpFpm, vec![listen]);
        let owner = Setting::new("listen.owner", "", SettingSource::Default);
        let edit = setting_edit(&app, &owner, "www-data").unwrap();
        assert!(
            edit.diff()
                .contains("@@ -2,0 +3 @@\n+listen.owner = www-data\n"),
            "{}",
            edit.diff()
        );
    }

    #[test]
    fn the_causes_that_act_on_the_app_are_the_ones_with_an_app_edit() {
        use crate::causes::{Act, entries};
        let edited: Vec<Cause> = SATURATED
            .iter()
            .copied()
            .chain([Cause::UPSTREAM_CLOSED_EARLY, Cause::UNIX_SOCKET_PERMISSION])
            .collect();
        for e in entries() {
            assert_eq!(
                e.acts.contains(&Act::EditApp),
                edited.contains(&e.cause),
                "{}: its entry's acts and app.rs disagree",
                e.cause.id()
            );
        }
    }

    #[test]
    fn a_kib_field_is_read_in_bytes() {
        assert!(mem_available().is_some_and(|b| b > 0));
        assert!(rss_of(std::process::id()).is_some_and(|b| b > 0));
    }
}
