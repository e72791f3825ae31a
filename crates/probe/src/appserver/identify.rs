//! Identification: which app server is behind a listener, and what it is set to do.
//!
//! [`identify`] reads the listener's process, walks up to the app server's master, hands
//! the server-specific work to `python.rs`, `uwsgi.rs` and `php_fpm.rs`, and scans the tail
//! of the log it found. The facts about one process that this needs ([`ProcInfo`], its
//! working directory and environment) are read here.

use std::collections::VecDeque;

use super::files::as_seen_by;
use super::kind::kind_of;
use super::logs::scan_log;
use super::php_fpm::{php_fpm_details, pool_of_line};
use super::process::ProcInfo;
use super::python::{daphne_details, gunicorn_details, hypercorn_details, uvicorn_details};
use super::types::{AppServer, AppServerKind, LogEvent, Setting, SettingSource};
use super::uwsgi::uwsgi_details;
use crate::error::ProbeError;

/// How many parents [`identify`] walks up looking for the master process.
const MAX_PARENT_WALK: usize = 8;
/// How much of the end of an app server's log [`identify`] scans.
const LOG_TAIL_BYTES: u64 = 256 * 1024;
/// How many (most recent) log events [`identify`] keeps.
const MAX_EVENTS: usize = 200;

/// Names the app server behind a listener owned by `pid` and gathers what is known to make
/// it close or reset connections: its master, config file, the settings that matter for
/// 502s (with file and line), its idle keep-alive timeout, its log and recent events from
/// that log.
///
/// `endpoint` is the upstream as nginx writes it (`127.0.0.1:9000`,
/// `unix:/run/php/php8.2-fpm.sock`); it picks the PHP-FPM pool whose `listen` matches.
///
/// Fails only when `pid` cannot be read at all (gone, or `/proc` unreadable). A config or
/// log that cannot be read leaves the corresponding fields empty (see `tracing` debug
/// events).
pub fn identify(pid: i32, endpoint: Option<&str>) -> Result<AppServer, ProbeError> {
    let this = ProcInfo::read(pid)?;
    let first_kind = kind_of(&this.comm, &this.cmdline);
    let (kind, top) = find_master(&this, first_kind);
    let master_pid = if top.pid != this.pid {
        Some(top.pid)
    } else if kind.has_master() && this.title().contains("master") {
        Some(pid)
    } else {
        None
    };
    let mut server = AppServer {
        kind,
        pid,
        master_pid,
        process: this.comm.clone(),
        cmdline: this.cmdline.clone(),
        config: None,
        pool: None,
        settings: Vec::new(),
        idle_timeout: None,
        log: None,
        events: Vec::new(),
    };
    match kind {
        AppServerKind::PhpFpm => php_fpm_details(&mut server, &top, &this, endpoint),
        AppServerKind::Gunicorn => gunicorn_details(&mut server, &top),
        AppServerKind::Uwsgi => uwsgi_details(&mut server, &top),
        AppServerKind::Uvicorn => uvicorn_details(&mut server, &top),
        AppServerKind::Hypercorn => hypercorn_details(&mut server, &top),
        AppServerKind::Daphne => daphne_details(&mut server, &top),
        _ => fixed_defaults(&mut server),
    }
    server.log = server.log.map(|log| as_seen_by(&log, top.pid));
    if let Some(log) = server.log.clone() {
        match scan_log(&log, None, LOG_TAIL_BYTES) {
            Ok(events) => {
                let pool = server.pool.clone();
                let mut kept: VecDeque<LogEvent> = VecDeque::new();
                for event in events {
                    // PHP-FPM logs every pool into one file; drop other pools' lines.
                    if let (Some(mine), Some(theirs)) = (&pool, pool_of_line(&event.line))
                        && mine != theirs
                    {
                        continue;
                    }
                    kept.push_back(event);
                    if kept.len() > MAX_EVENTS {
                        kept.pop_front();
                    }
                }
                server.events = kept.into();
            }
            Err(err) => tracing::debug!(%err, log = %log.display(), "cannot scan app server log"),
        }
    }
    tracing::debug!(pid, kind = kind.name(), "app server identified");
    Ok(server)
}

/// Walks up the parents of `this` while they are the same app server (a worker's master),
/// at most [`MAX_PARENT_WALK`] steps. A plain Python child of a Python server (uvicorn's
/// spawned workers) takes the server's kind.
fn find_master(this: &ProcInfo, kind: AppServerKind) -> (AppServerKind, ProcInfo) {
    let mut kind = kind;
    let mut current = this.clone();
    for _ in 0..MAX_PARENT_WALK {
        if current.ppid <= 1 {
            break;
        }
        let Ok(parent) = ProcInfo::read(current.ppid) else {
            break;
        };
        let parent_kind = kind_of(&parent.comm, &parent.cmdline);
        let joins = (parent_kind == kind && kind.has_master())
            || (kind == AppServerKind::Python
                && matches!(
                    parent_kind,
                    AppServerKind::Gunicorn
                        | AppServerKind::Uvicorn
                        | AppServerKind::Hypercorn
                        | AppServerKind::Daphne
                ));
        // A uWSGI vassal's parent is the emperor, which is not its master.
        if !joins || parent.title().contains("emperor") {
            break;
        }
        kind = parent_kind;
        current = parent;
    }
    (kind, current)
}

/// Settings that are the server's built-in defaults only (nothing to read).
fn fixed_defaults(server: &mut AppServer) {
    let (name, value, idle) = match server.kind {
        AppServerKind::Node => ("keepAliveTimeout", "5s", true),
        AppServerKind::Puma => ("persistent_timeout", "20s", true),
        AppServerKind::Apache => ("KeepAliveTimeout", "5s", true),
        AppServerKind::Nginx => ("keepalive_timeout", "75s", true),
        // Unicorn does not keep connections alive; it kills workers after `timeout`.
        AppServerKind::Unicorn => ("timeout", "60s", false),
        _ => return,
    };
    let setting = Setting::new(name, value, SettingSource::Default);
    if idle {
        server.idle_timeout = Some(setting.clone());
    }
    server.settings.push(setting);
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use fix502_lab::ChildGuard;

    use std::path::PathBuf;

    use super::*;
    use crate::appserver::LogEventKind;
    use crate::appserver::php_fpm::expand_glob;
    use crate::appserver::test_support::{file_source, fixture};

    #[test]
    fn identify_missing_and_plain_processes() {
        assert!(identify(i32::MAX, None).is_err());
        let me = identify(i32::try_from(std::process::id()).unwrap(), None).unwrap();
        assert_eq!(me.kind, AppServerKind::Other);
        assert!(me.settings.is_empty() && me.log.is_none() && me.idle_timeout.is_none());
    }

    #[test]
    fn identify_gunicorn_from_environment_and_config_file() {
        use std::os::unix::process::CommandExt;
        // A stand-in: `sleep` whose argv[0] says gunicorn, with gunicorn's environment
        // variable and a gunicorn.conf.py in its working directory.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let log = root.join("error.log");
        fs::copy(fixture("gunicorn-error.log"), &log).unwrap();
        let conf = root.join("gunicorn.conf.py");
        fs::write(
            &conf,
            format!("timeout = 45\nerrorlog = '{}'\n", log.display()),
        )
        .unwrap();
        let child = std::process::Command::new("sleep")
            .arg0("/usr/bin/gunicorn")
            .arg("30")
            .current_dir(root)
            .env("GUNICORN_CMD_ARGS", "--keep-alive 4 -k gthread")
            .spawn()
            .expect("sleep");
        let guard = ChildGuard { child };
        let pid = i32::try_from(guard.child.id()).unwrap();
        let mut server = None;
        for _ in 0..100 {
            let found = identify(pid, None).unwrap();
            if found.kind == AppServerKind::Gunicorn {
                server = Some(found);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let server = server.expect("the child runs as gunicorn within 2 s");
        assert_eq!(server.config.as_deref(), Some(conf.as_path()));
        let timeout = server.setting("timeout").unwrap();
        assert_eq!(
            (timeout.value.as_str(), &timeout.source),
            ("45", &file_source(&conf, 1))
        );
        let idle = server
            .idle_timeout
            .clone()
            .expect("gthread keeps connections alive");
        assert_eq!(idle.value, "4");
        assert!(matches!(idle.source, SettingSource::Environment { .. }));
        assert_eq!(server.log.as_deref(), Some(log.as_path()));
        let kinds: Vec<_> = server.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                LogEventKind::WorkerTimeout,
                LogEventKind::ExitedOnSignal { signal: 9 },
                LogEventKind::Other
            ]
        );
        drop(guard);
    }

    fn php_fpm_binary() -> PathBuf {
        let preferred = PathBuf::from("/usr/sbin/php-fpm8.2");
        if preferred.is_file() {
            return preferred;
        }
        expand_glob(Path::new("/usr/sbin/php-fpm*"))
            .into_iter()
            .next()
            .expect("php-fpm is not installed (no /usr/sbin/php-fpm*)")
    }

    #[test]
    fn identify_real_php_fpm() {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::{Pid, Uid};

        let binary = php_fpm_binary();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = root.join("fpm.log");
        let main = root.join("php-fpm.conf");
        fs::create_dir(root.join("pool.d")).unwrap();
        fs::write(
            &main,
            format!(
                "[global]\n; test instance\ndaemonize = no\nerror_log = {}\npid = {}/fpm.pid\ninclude={}/pool.d/*.conf\n",
                log.display(),
                root.display(),
                root.display()
            ),
        )
        .unwrap();
        let other_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let user = if Uid::effective().is_root() {
            "user = nobody\ngroup = nogroup\n"
        } else {
            ""
        };
        let pool = root.join("pool.d/test.conf");
        let pool_text = format!(
            "[other]\n{user}listen = 127.0.0.1:{other_port}\npm = static\npm.max_children = 1\n\n\
             [test]\n{user}listen = 127.0.0.1:{port}\npm = static\npm.max_children = 2\n\
             request_terminate_timeout = 7s\n"
        );
        fs::write(&pool, &pool_text).unwrap();
        let line_of = |start: &str| {
            let lines: Vec<&str> = pool_text.lines().collect();
            lines.iter().rposition(|l| l.starts_with(start)).unwrap() + 1
        };

        let child = std::process::Command::new(&binary)
            .arg("-n")
            .arg("-y")
            .arg(&main)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut guard = ChildGuard { child };
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut up = false;
        for _ in 0..100 {
            if let Ok(Some(status)) = guard.child.try_wait() {
                panic!(
                    "php-fpm exited early ({status}); log: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(up, "php-fpm did not accept on {addr} within 5 s");

        let all = crate::listeners::listeners().unwrap();
        let listener = crate::listeners::listeners_on_port(&all, port)
            .into_iter()
            .find(|l| l.pid.is_some())
            .expect("listener with a pid");
        let master = i32::try_from(listener.pid.unwrap()).unwrap();
        assert_eq!(
            master,
            i32::try_from(guard.child.id()).unwrap(),
            "the lowest pid is the master"
        );

        let endpoint = format!("127.0.0.1:{port}");
        let server = identify(master, Some(&endpoint)).unwrap();
        assert_eq!(server.kind, AppServerKind::PhpFpm);
        assert_eq!(server.master_pid, Some(master));
        assert_eq!(server.config.as_deref(), Some(main.as_path()));
        assert_eq!(server.pool.as_deref(), Some("test"));
        let listen = server.setting("listen").unwrap();
        assert_eq!(listen.value, endpoint);
        assert_eq!(listen.source, file_source(&pool, line_of("listen")));
        let terminate = server.setting("request_terminate_timeout").unwrap();
        assert_eq!(
            (terminate.seconds(), &terminate.source),
            (
                Some(7),
                &file_source(&pool, line_of("request_terminate_timeout"))
            )
        );
        assert_eq!(
            server.setting("listen.backlog").unwrap().source,
            SettingSource::Default
        );
        assert_eq!(server.log.as_deref(), Some(log.as_path()));
        assert_eq!(server.idle_timeout, None);
        assert!(
            server.events.is_empty(),
            "a fresh log has notices only: {:?}",
            server.events
        );

        // A worker of the pool: its master, and the same config.
        let workers: Vec<i32> = procfs::process::all_processes()
            .unwrap()
            .flatten()
            .filter(|p| p.stat().is_ok_and(|s| s.ppid == master))
            .map(|p| p.pid())
            .collect();
        let worker = identify(*workers.first().expect("a worker"), None).unwrap();
        assert_eq!(worker.kind, AppServerKind::PhpFpm);
        assert_eq!(worker.master_pid, Some(master));
        assert!(worker.cmdline.join(" ").starts_with("php-fpm: pool "));
        assert_eq!(worker.config.as_deref(), Some(main.as_path()));
        let worker_pool = worker.pool.clone().unwrap();
        assert!(worker.cmdline.join(" ").ends_with(&worker_pool));

        // Kill one worker of the [test] pool: the master logs the signal, identify reports it.
        let test_worker = workers
            .iter()
            .copied()
            .find(|&pid| ProcInfo::read(pid).is_ok_and(|p| p.title() == "php-fpm: pool test"))
            .expect("a worker of pool test");
        kill(Pid::from_raw(test_worker), Signal::SIGKILL).unwrap();
        let mut events = Vec::new();
        for _ in 0..50 {
            events = identify(master, Some(&endpoint)).unwrap().events;
            if !events.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let event = events.first().expect("the kill is logged within 5 s");
        assert_eq!(
            event.kind,
            LogEventKind::ExitedOnSignal { signal: 9 },
            "{}",
            event.line
        );
        assert!(event.line.contains("[pool test]"));
        let age = SystemTime::now()
            .duration_since(event.time.unwrap())
            .unwrap_or_default();
        assert!(
            age < Duration::from_secs(120),
            "timestamp read as local time"
        );
        drop(guard);
    }
}
