//! `fix502 undo [ID]`: reverting one change of the journal (`changes.rs`). This file holds
//! the order of it and nothing else: under the host's acting lock (`lock.rs`), every file must still hold the bytes the change wrote
//! (else nothing is touched); the backups are written back byte-exact; `nginx -t` runs as the
//! change's binary, prefix and config; the master running that config, if any, is reloaded
//! and its workers must be replaced (for an app server's change: its own test and reload, as
//! the change recorded them); the change is marked `undone`. When the test or the
//! reload fails, the files get the change's bytes back, so the files and the running nginx
//! agree again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fix502_probe::namespace::NamespaceIds;
use serde::Serialize;

use crate::changes::{AppTarget, Change, ChangeError, ChangeStatus, Changes};
use crate::command::{run_command, shell_line};
use crate::discovery::{build_info, find_masters, master_running, worker_pids};
use crate::edit::{read_bytes, write_atomically};
use crate::lock::ActingLock;

/// The time `nginx -t` and the reload command may take.
const COMMAND_TIME: Duration = Duration::from_secs(30);
/// The time the workers have to be replaced after a reload.
const RELOAD_TIME: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// Why a change was not undone.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// The journal holds no change that can be undone.
    #[error("nothing to undo: no applied change in {dir}")]
    NothingToUndo {
        /// The journal.
        dir: PathBuf,
    },
    /// No change has this id.
    #[error("no change {id} in {dir}")]
    Unknown {
        /// The id.
        id: String,
        /// The journal.
        dir: PathBuf,
    },
    /// The change was undone or rolled back already.
    #[error("change {id} is {status} already: nothing to undo")]
    NotUndoable {
        /// The id.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// A file does not hold what the change wrote: it changed since, and is left alone.
    #[error("not undone: {path} changed since change {id} wrote it; nothing was touched")]
    ChangedSince {
        /// The change.
        id: String,
        /// The file.
        path: PathBuf,
    },
    /// The restored config fails `nginx -t`: the change's bytes were put back.
    #[error(
        "not undone: with the files of before change {id}, nginx -t fails ({why}); the change's files were put back"
    )]
    TestFailed {
        /// The change.
        id: String,
        /// nginx's words.
        why: String,
    },
    /// The reload did not take: the change's bytes were put back.
    #[error(
        "not undone: the reload of nginx master {pid} failed ({why}); the change's files were put back"
    )]
    ReloadFailed {
        /// The change.
        id: String,
        /// The master.
        pid: u32,
        /// What went wrong.
        why: String,
    },
    /// The app server's reload failed: the change's bytes were put back.
    #[error("not undone: `{command}` failed ({why}); the change's files were put back")]
    AppReloadFailed {
        /// The change.
        id: String,
        /// The reload command.
        command: String,
        /// What went wrong.
        why: String,
    },
    /// The acting lock could not be taken (another acting run kept it for a minute).
    #[error("not undone: {0}")]
    Busy(String),
    /// The journal or a file could not be read or written.
    #[error(transparent)]
    Journal(#[from] ChangeError),
}

/// A change that was undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undone {
    /// The change.
    pub id: String,
    /// Its status now (`undone`).
    pub status: &'static str,
    /// The files restored, as nginx names them.
    pub files: Vec<PathBuf>,
    /// The commands run, in order.
    pub commands: Vec<String>,
    /// The nginx master reloaded, when one runs the config (`None` for an app server's change).
    pub reloaded: Option<u32>,
    /// The app server whose own test and reload ran, for an app server's change.
    pub app: Option<String>,
    /// What nginx answers now to the request that proved the change, sent again (`GET /
    /// (Host: shop.test) through nginx at 127.0.0.1:80 answers 502`); `None` when the change
    /// recorded none, or nginx stands in another network namespace than fix502.
    pub proof: Option<String>,
}

/// Undoes change `id`, or the newest change that can still be undone. It takes the host's
/// acting lock first (as `--apply` does), waiting up to a minute for another acting run.
pub async fn undo(changes: &Changes, id: Option<&str>) -> Result<Undone, UndoError> {
    let _lock = match tokio::task::spawn_blocking(|| ActingLock::acquire(crate::lock::WAIT)).await {
        Ok(Ok(lock)) => lock,
        Ok(Err(why)) => return Err(UndoError::Busy(why)),
        Err(e) => return Err(UndoError::Busy(e.to_string())),
    };
    let mut change = match id {
        Some(id) => match changes.get(id) {
            Ok(c) => c,
            Err(ChangeError::Unknown { id, dir }) => return Err(UndoError::Unknown { id, dir }),
            Err(e) => return Err(e.into()),
        },
        None => match changes.last_undoable()? {
            Some(r) => changes.get(&r.id)?,
            None => {
                return Err(UndoError::NothingToUndo {
                    dir: changes.dir().to_path_buf(),
                });
            }
        },
    };
    let id = change.id().to_owned();
    let status = change.record().status;
    if !status.undoable() {
        return Err(UndoError::NotUndoable {
            id,
            status: status.as_str(),
        });
    }
    match change.check_files(true) {
        Ok(()) => {}
        Err(ChangeError::ChangedSince { path, .. }) => {
            return Err(UndoError::ChangedSince { id, path });
        }
        Err(e) => return Err(e.into()),
    }
    // What the change wrote, to put back when the undo cannot be finished.
    let mut wrote = Vec::new();
    for f in &change.record().files {
        wrote.push((
            f.written.clone(),
            read_bytes(&f.written).map_err(ChangeError::from)?,
        ));
    }
    if let Err(e) = change.restore() {
        put_back(&wrote);
        return Err(e.into());
    }
    let (commands, reloaded) = match change.record().app.clone() {
        Some(app) => undo_app(&mut change, &app, &wrote).await?,
        None => undo_nginx(&mut change, &wrote).await?,
    };
    change.record_status(ChangeStatus::Undone)?;
    let proof = proof_now(change.record()).await;
    Ok(Undone {
        id,
        status: ChangeStatus::Undone.as_str(),
        files: change
            .record()
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect(),
        commands,
        reloaded,
        app: change.record().app.as_ref().map(|a| a.name.clone()),
        proof,
    })
}

/// The change's proving request sent again after the undo, in words with nginx's answer;
/// only where fix502 stands in the network namespace of the master it was applied to.
async fn proof_now(record: &crate::changes::ChangeRecord) -> Option<String> {
    let proof = record.proof.as_ref()?;
    let net = NamespaceIds::of(&record.nginx.master_pid?.to_string()).net;
    if net.is_none() || net != NamespaceIds::own().net {
        return None;
    }
    Some(match proof.status(COMMAND_TIME).await {
        Ok(status) => format!("{} answers {status}", proof.words()),
        Err(why) => why,
    })
}

/// `nginx -t` as the change's nginx, then the reload of the master running its config.
async fn undo_nginx(
    change: &mut Change,
    wrote: &[(PathBuf, Vec<u8>)],
) -> Result<(Vec<String>, Option<u32>), UndoError> {
    let id = change.id().to_owned();
    let nginx = change.record().nginx.clone();
    let mut args: Vec<String> = Vec::new();
    if let Some(p) = &nginx.prefix {
        let mut p = p.display().to_string();
        if !p.ends_with('/') {
            p.push('/');
        }
        args.extend(["-p".to_owned(), p]);
    }
    args.extend(["-c".to_owned(), nginx.config.display().to_string()]);
    let mut test_args = args.clone();
    test_args.push("-t".to_owned());
    // The test the change was gated by (in nginx's namespaces), else the binary's own.
    let test_program = match nginx.test.as_ref().and_then(|t| t.split_first()) {
        Some((program, args)) => {
            test_args = args.to_vec();
            PathBuf::from(program)
        }
        None => nginx.binary.clone(),
    };
    let test_line = shell_line(&test_program, &test_args);
    let mut commands = vec![test_line.clone()];
    change.record_command(&test_line)?;
    let why = match run_command(&test_program, &test_args, COMMAND_TIME).await {
        Ok(o) if o.success => None,
        Ok(o) => Some(o.stderr.trim().lines().last().unwrap_or("").to_owned()),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = why {
        put_back(wrote);
        return Err(UndoError::TestFailed { id, why });
    }
    // The master the change was applied to while it runs, else the one running its config.
    let recorded = nginx
        .master_pid
        .filter(|pid| find_masters().iter().any(|m| m.pid == *pid));
    let master = match recorded {
        Some(pid) => Some(pid),
        None => running_master(&nginx.binary, &nginx.config).await,
    };
    let reloaded = match master {
        None => None,
        Some(pid) => {
            let (line, result) = reload(pid).await;
            commands.push(line.clone());
            change.record_command(&line)?;
            if let Err(why) = result {
                put_back(wrote);
                return Err(UndoError::ReloadFailed { id, pid, why });
            }
            Some(pid)
        }
    };
    Ok((commands, reloaded))
}

/// The app server's own test and reload, as the change recorded them.
async fn undo_app(
    change: &mut Change,
    app: &AppTarget,
    wrote: &[(PathBuf, Vec<u8>)],
) -> Result<(Vec<String>, Option<u32>), UndoError> {
    let id = change.id().to_owned();
    let mut commands = Vec::new();
    for (argv, is_test) in [(&app.test, true), (&app.reload, false)] {
        let Some((program, args)) = argv.as_ref().and_then(|a| a.split_first()) else {
            continue;
        };
        let line = shell_line(Path::new(program), args);
        commands.push(line.clone());
        change.record_command(&line)?;
        let failed = match run_command(Path::new(program), args, COMMAND_TIME).await {
            Ok(o) if o.success => None,
            Ok(o) => Some(o.stderr.trim().lines().last().unwrap_or("").to_owned()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            put_back(wrote);
            return Err(if is_test {
                UndoError::TestFailed {
                    id,
                    why: format!("{line}: {why}"),
                }
            } else {
                UndoError::AppReloadFailed {
                    id,
                    command: line,
                    why,
                }
            });
        }
    }
    Ok((commands, None))
}

/// Writes the change's bytes back (best effort: the undo is failing already).
fn put_back(wrote: &[(PathBuf, Vec<u8>)]) {
    for (path, bytes) in wrote {
        if let Err(e) = write_atomically(path, bytes) {
            tracing::warn!(path = %path.display(), error = %e, "could not put the change's bytes back");
        }
    }
}

/// The pid of the master running `config` with `binary`'s build defaults, if one runs.
async fn running_master(binary: &Path, config: &Path) -> Option<u32> {
    let build = build_info(binary).await.unwrap_or_default();
    master_running(&find_masters(), config, &build).map(|m| m.pid)
}

/// Reloads master `pid` as the restart step does: through its systemd unit when it has one,
/// else by the signal `nginx -s reload` sends (SIGHUP, to the master itself, so that a pid
/// file naming another process cannot misdirect it); then waits for new workers.
async fn reload(pid: u32) -> (String, Result<(), String>) {
    let before = worker_pids(pid);
    let unit = fix502_probe::listeners::systemd_unit_of(pid)
        .filter(|_| Path::new("/run/systemd/system").is_dir());
    let (line, sent) = match unit {
        Some(unit) => {
            let args = ["reload".to_owned(), unit];
            let line = shell_line(Path::new("systemctl"), &args);
            let sent = match run_command(Path::new("systemctl"), &args, COMMAND_TIME).await {
                Ok(o) if o.success => Ok(()),
                Ok(o) => Err(o.stderr.trim().to_owned()),
                Err(e) => Err(e.to_string()),
            };
            (line, sent)
        }
        None => {
            let line = format!("kill -HUP {pid}");
            let sent = i32::try_from(pid)
                .map_err(|_| format!("pid {pid} out of range"))
                .and_then(|raw| {
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(raw),
                        nix::sys::signal::Signal::SIGHUP,
                    )
                    .map_err(|e| e.to_string())
                });
            (line, sent)
        }
    };
    if let Err(e) = sent {
        return (line, Err(e));
    }
    let deadline = Instant::now() + RELOAD_TIME;
    loop {
        let now = worker_pids(pid);
        if !now.is_empty() && now.iter().all(|p| !before.contains(p)) {
            return (line, Ok(()));
        }
        if Instant::now() >= deadline {
            return (
                line,
                Err(format!(
                    "its workers were not replaced (before {before:?}, now {now:?})"
                )),
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{NewChange, NginxTarget};

    /// A journal with one applied change of `file` ("before\n" → "after\n"), tested with
    /// `binary` on a config no master runs.
    fn applied(tmp: &Path, binary: &str) -> (Changes, PathBuf, String) {
        applied_to(tmp, binary, None)
    }

    fn applied_to(tmp: &Path, binary: &str, app: Option<AppTarget>) -> (Changes, PathBuf, String) {
        let file = tmp.join("site");
        std::fs::write(&file, "before\n").unwrap();
        let journal = Changes::at(tmp.join("changes"));
        let mut change = journal
            .begin(NewChange {
                kind: "edit".to_owned(),
                cause: None,
                nginx: NginxTarget {
                    binary: PathBuf::from(binary),
                    prefix: Some(tmp.to_path_buf()),
                    config: tmp.join("nginx.conf"),
                    master_pid: None,
                    test: None,
                },
                app,
                files: vec![(file.clone(), b"after\n".to_vec())],
                proof: None,
            })
            .unwrap();
        change.apply().unwrap();
        let id = change.id().to_owned();
        (journal, file, id)
    }

    #[tokio::test]
    async fn undo_restores_runs_the_test_and_marks_the_change() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, file, id) = applied(tmp.path(), "/bin/true");
        let done = undo(&journal, None).await.unwrap();
        assert_eq!(done.id, id);
        assert_eq!(done.reloaded, None);
        assert_eq!(
            done.commands,
            vec![format!(
                "/bin/true -p {}/ -c {}/nginx.conf -t",
                tmp.path().display(),
                tmp.path().display()
            )]
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"before\n");
        let record = journal.get(&id).unwrap().record().clone();
        assert_eq!(record.status, ChangeStatus::Undone);
        assert_eq!(record.commands, done.commands);
        // Undone already: nothing is left, by default or by id.
        assert!(matches!(
            undo(&journal, None).await,
            Err(UndoError::NothingToUndo { .. })
        ));
        assert!(matches!(
            undo(&journal, Some(&id)).await,
            Err(UndoError::NotUndoable {
                status: "undone",
                ..
            })
        ));
        assert!(matches!(
            undo(&journal, Some("20260101T000000Z-1")).await,
            Err(UndoError::Unknown { .. })
        ));
    }

    #[tokio::test]
    async fn a_file_changed_since_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, file, id) = applied(tmp.path(), "/bin/true");
        std::fs::write(&file, "after\nby hand\n").unwrap();
        let e = undo(&journal, Some(&id)).await.unwrap_err();
        assert!(
            matches!(&e, UndoError::ChangedSince { path, .. } if *path == file),
            "{e}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"after\nby hand\n");
        assert_eq!(
            journal.get(&id).unwrap().record().status,
            ChangeStatus::Applied
        );
    }

    #[tokio::test]
    async fn a_failing_nginx_t_puts_the_change_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, file, id) = applied(tmp.path(), "/bin/false");
        let e = undo(&journal, None).await.unwrap_err();
        assert!(matches!(&e, UndoError::TestFailed { .. }), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"after\n");
        let record = journal.get(&id).unwrap().record().clone();
        assert_eq!(record.status, ChangeStatus::Applied);
        assert_eq!(record.commands.len(), 1);
    }

    #[tokio::test]
    async fn an_app_change_runs_the_app_s_own_test_and_reload() {
        let argv = |a: &[&str]| Some(a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let tmp = tempfile::tempdir().unwrap();
        let app = AppTarget {
            name: "php-fpm".to_owned(),
            test: argv(&["/bin/true", "-t"]),
            reload: argv(&["/bin/false", "reload"]),
        };
        // nginx's binary would fail: it is not what is run for an app's change.
        let (journal, file, _) = applied_to(tmp.path(), "/bin/false", Some(app.clone()));
        let e = undo(&journal, None).await.unwrap_err();
        assert!(
            matches!(&e, UndoError::AppReloadFailed { command, .. } if command == "/bin/false reload"),
            "{e}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"after\n");

        let tmp = tempfile::tempdir().unwrap();
        let app = AppTarget {
            reload: argv(&["/bin/true", "reload"]),
            ..app
        };
        let (journal, file, _) = applied_to(tmp.path(), "/bin/false", Some(app));
        let done = undo(&journal, None).await.unwrap();
        assert_eq!(done.commands, vec!["/bin/true -t", "/bin/true reload"]);
        assert_eq!(std::fs::read(&file).unwrap(), b"before\n");
    }
}
