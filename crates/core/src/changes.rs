//! The journal of the changes fix502 applied to files (not `journal.rs`, which reads
//! systemd's journal). This file holds where the journal lives, the record of one change
//! (`change.json`) and its byte-exact backups, and the operations on them: begin a change
//! (backups first, before any file is touched), write its files, restore them, record its
//! status, list and find changes. Undoing one (checks, `nginx -t`, reload) is `undo.rs`.
//!
//! Layout: `DIR/ID/change.json` and `DIR/ID/N.orig` (the bytes of the change's file N before
//! it, mode 0600), where DIR is `$FIX502_STATE_DIR/changes` when that is set, else
//! `/var/lib/fix502/changes` as root, else `$XDG_STATE_HOME/fix502/changes` (by default
//! `~/.local/state/fix502/changes`), and ID is the UTC time of the change and a counter,
//! `20261206T201503Z-1`. The record holds commands and paths, never file contents or the
//! environment.

use crate::steps::restart::CheckRequest;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::edit::{EditError, read_bytes, real_file, write_atomically};

/// The environment variable that moves the state directory (the journal is its `changes`).
pub const STATE_DIR_ENV: &str = "FIX502_STATE_DIR";
/// The name of a change's record in its directory.
pub const RECORD: &str = "change.json";
/// At most this many changes are listed (the oldest beyond are left out).
const MAX_CHANGES: usize = 10_000;
/// At most this many directory entries are looked at.
const MAX_ENTRIES: usize = 100_000;
/// At most this many ids are tried for one second.
const MAX_COUNTER: u32 = 1000;

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No state directory can be named (not root, no `$XDG_STATE_HOME`, no `$HOME`).
    #[error("no directory for the journal of changes: set {STATE_DIR_ENV} or HOME")]
    NoStateDir,
    /// No change has this id.
    #[error("no change {id} in {dir}")]
    Unknown {
        /// The id asked for.
        id: String,
        /// The journal.
        dir: PathBuf,
    },
    /// A change's record does not parse.
    #[error("{path}: not a change record: {reason}")]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file's bytes are not those the change expects.
    #[error("{path} changed since fix502 {when} it")]
    ChangedSince {
        /// The file (as nginx names it).
        path: PathBuf,
        /// `read` (before the change was written) or `wrote` (after).
        when: &'static str,
    },
    /// Reading or writing a file to edit failed.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// Reading or writing the journal failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ChangeError + 'a {
    move |source| ChangeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Where a change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeStatus {
    /// The backups are written; the files may not be yet.
    Begun,
    /// The files are written.
    Applied,
    /// The files are written and the fix was verified.
    Verified,
    /// The files were restored because the change failed (its test or its verification).
    RolledBack,
    /// The files were restored by `fix502 undo`.
    Undone,
}

impl ChangeStatus {
    /// Its name in `change.json`: `begun`, `applied`, `verified`, `rolled-back`, `undone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begun => "begun",
            Self::Applied => "applied",
            Self::Verified => "verified",
            Self::RolledBack => "rolled-back",
            Self::Undone => "undone",
        }
    }

    /// Whether the files may still hold what the change wrote (so `undo` applies).
    pub fn undoable(self) -> bool {
        matches!(self, Self::Begun | Self::Applied | Self::Verified)
    }
}

/// The nginx a change was applied to, as it was found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NginxTarget {
    /// The binary.
    pub binary: PathBuf,
    /// The prefix (`-p`), if one was used.
    pub prefix: Option<PathBuf>,
    /// The main config (`-c`).
    pub config: PathBuf,
    /// The master's pid when it ran.
    pub master_pid: Option<u32>,
    /// The `nginx -t` the change was gated by, as a program and its arguments (in nginx's
    /// namespaces for a container's nginx); `undo` runs the same. `None` in older records:
    /// then `undo` runs the binary with the prefix and config.
    #[serde(default)]
    pub test: Option<Vec<String>>,
}

/// The app server a change was applied to (an `app-reload`): how to check its config and
/// reload it, each as a program and its arguments (no shell, no environment). `fix502 undo`
/// runs these instead of `nginx -t` and nginx's reload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppTarget {
    /// What it is, in words (`php8.2-fpm`, `gunicorn`).
    pub name: String,
    /// Its config test (`["/usr/sbin/php-fpm8.2", "-t", "--fpm-config", "..."]`), if it has one.
    pub test: Option<Vec<String>>,
    /// Its reload (`["systemctl", "reload", "php8.2-fpm.service"]`), if it has one.
    pub reload: Option<Vec<String>>,
}

/// One file of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    /// The file as nginx names it.
    pub path: PathBuf,
    /// The file written (the target when `path` is a symlink).
    pub written: PathBuf,
    /// The backup's file name in the change's directory.
    pub backup: String,
    /// sha256 of the bytes before the change (the backup's), in hex.
    pub sha256_before: String,
    /// sha256 of the bytes the change writes, in hex.
    pub sha256_after: String,
}

/// A status a change reached, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The status.
    pub status: ChangeStatus,
    /// When (UTC, RFC 3339).
    pub time: String,
}

/// A change's record, `change.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Its id (its directory's name).
    pub id: String,
    /// When it began (UTC, RFC 3339).
    pub time: String,
    /// The fix502 that made it.
    pub fix502_version: String,
    /// What kind of action (the JSON report's action kinds: `edit`, `app-reload`, ...).
    pub kind: String,
    /// The cause id it fixes, if any.
    pub cause: Option<String>,
    /// The nginx it was applied to.
    pub nginx: NginxTarget,
    /// The app server it was applied to, for a change of an app server's config.
    #[serde(default)]
    pub app: Option<AppTarget>,
    /// Its files.
    pub files: Vec<ChangedFile>,
    /// The request through nginx that proved it; `undo` sends it again to show what nginx
    /// answers after the revert.
    #[serde(default)]
    pub proof: Option<CheckRequest>,
    /// The commands run for it, in order (the command lines only).
    pub commands: Vec<String>,
    /// Where it stands now.
    pub status: ChangeStatus,
    /// Every status it reached, in order.
    pub history: Vec<StatusChange>,
}

/// A change to begin: what it is, and each file with the bytes it is to hold.
#[derive(Debug, Clone, Default)]
pub struct NewChange {
    /// What kind of action (`edit`, `app-reload`, ...).
    pub kind: String,
    /// The cause id it fixes, if any.
    pub cause: Option<String>,
    /// The nginx it is applied to.
    pub nginx: NginxTarget,
    /// The app server it is applied to, for a change of an app server's config.
    pub app: Option<AppTarget>,
    /// Each file (as nginx names it) and its new bytes.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The request through nginx that proves it.
    pub proof: Option<CheckRequest>,
}

/// The journal of changes: one directory.
#[derive(Debug, Clone)]
pub struct Changes {
    dir: PathBuf,
}

/// One change in the journal, with its record as last written.
#[derive(Debug, Clone)]
pub struct Change {
    dir: PathBuf,
    record: ChangeRecord,
    /// The new bytes of each file, kept for [`Change::apply`] (empty for a change read back).
    after: Vec<Vec<u8>>,
}

/// sha256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> (jiff::Timestamp, String) {
    let t = jiff::Timestamp::now();
    let text =
        jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", t).unwrap_or_else(|_| t.to_string());
    (t, text)
}

/// A file created new with mode 0600, written and synced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ChangeError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot create", path))?;
    f.write_all(bytes).map_err(io("cannot write", path))?;
    f.sync_all().map_err(io("cannot sync", path))
}

/// The sort key of an id: its time, then its counter as a number.
fn id_key(id: &str) -> (String, u32) {
    match id.rsplit_once('-') {
        Some((time, n)) => (time.to_owned(), n.parse().unwrap_or(0)),
        None => (id.to_owned(), 0),
    }
}

/// Whether `id` can name a change (no path separators, no dot names).
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Changes {
    /// The journal where it lives on this host (see the module doc); created (mode 0700)
    /// when it is first written, not here.
    pub fn open() -> Result<Self, ChangeError> {
        let state = if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|d| !d.is_empty()) {
            PathBuf::from(dir)
        } else if nix::unistd::geteuid().is_root() {
            PathBuf::from("/var/lib/fix502")
        } else if let Some(xdg) = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
        {
            xdg.join("fix502")
        } else {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|d| d.is_absolute())
                .ok_or(ChangeError::NoStateDir)?;
            home.join(".local/state/fix502")
        };
        Ok(Self::at(state.join("changes")))
    }

    /// The journal in `dir` (tests, and `fix502 undo` with a moved state directory).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Begins a change: reads each file's bytes now, writes them as the change's backups
    /// (mode 0600) and its record (status `begun`), all before any file is touched. The files
    /// are written by [`Change::apply`].
    pub fn begin(&self, new: NewChange) -> Result<Change, ChangeError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io("cannot create", &self.dir))?;
        let (t, time) = now();
        let stamp = jiff::fmt::strtime::format("%Y%m%dT%H%M%SZ", t)
            .unwrap_or_else(|_| t.as_second().to_string());
        let mut made = None;
        for n in 1..=MAX_COUNTER {
            let id = format!("{stamp}-{n}");
            let dir = self.dir.join(&id);
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    made = Some((id, dir));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("cannot create", &dir)(e)),
            }
        }
        let Some((id, dir)) = made else {
            return Err(ChangeError::Io {
                what: "no free change id in",
                path: self.dir.clone(),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        };
        let mut files = Vec::new();
        let mut after = Vec::new();
        for (i, (path, bytes)) in new.files.into_iter().enumerate() {
            let written = real_file(&path)?;
            let before = read_bytes(&written)?;
            let backup = format!("{}.orig", i + 1);
            write_new(&dir.join(&backup), &before)?;
            files.push(ChangedFile {
                path,
                written,
                backup,
                sha256_before: sha256_hex(&before),
                sha256_after: sha256_hex(&bytes),
            });
            after.push(bytes);
        }
        let record = ChangeRecord {
            id,
            time: time.clone(),
            fix502_version: env!("CARGO_PKG_VERSION").to_owned(),
            kind: new.kind,
            cause: new.cause,
            nginx: new.nginx,
            app: new.app,
            files,
            proof: new.proof,
            commands: Vec::new(),
            status: ChangeStatus::Begun,
            history: vec![StatusChange {
                status: ChangeStatus::Begun,
                time,
            }],
        };
        let change = Change { dir, record, after };
        change.save()?;
        Ok(change)
    }

    /// Every change, oldest first (at most 10,000: the newest). Directories without a
    /// readable record are left out.
    pub fn list(&self) -> Result<Vec<ChangeRecord>, ChangeError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("cannot read", &self.dir)(e)),
        };
        let mut ids: Vec<String> = entries
            .take(MAX_ENTRIES)
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| plausible_id(id))
            .collect();
        ids.sort_by_key(|id| id_key(id));
        let skip = ids.len().saturating_sub(MAX_CHANGES);
        Ok(ids
            .iter()
            .skip(skip)
            .filter_map(|id| match self.get(id) {
                Ok(c) => Some(c.record),
                Err(e) => {
                    tracing::debug!(id, error = %e, "change left out of the list");
                    None
                }
            })
            .collect())
    }

    /// The change `id`.
    pub fn get(&self, id: &str) -> Result<Change, ChangeError> {
        let unknown = || ChangeError::Unknown {
            id: id.to_owned(),
            dir: self.dir.clone(),
        };
        if !plausible_id(id) {
            return Err(unknown());
        }
        let dir = self.dir.join(id);
        let path = dir.join(RECORD);
        let bytes = match read_bytes(&path) {
            Ok(b) => b,
            Err(EditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(unknown());
            }
            Err(e) => return Err(e.into()),
        };
        let record: ChangeRecord =
            serde_json::from_slice(&bytes).map_err(|e| ChangeError::BadRecord {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if record.id != id {
            return Err(ChangeError::BadRecord {
                path,
                reason: format!("its id is {}", record.id),
            });
        }
        Ok(Change {
            dir,
            record,
            after: Vec::new(),
        })
    }

    /// The newest change, if any.
    pub fn last(&self) -> Result<Option<ChangeRecord>, ChangeError> {
        Ok(self.list()?.pop())
    }

    /// The newest change that can still be undone (not undone or rolled back), if any.
    pub fn last_undoable(&self) -> Result<Option<ChangeRecord>, ChangeError> {
        Ok(self.list()?.into_iter().rev().find(|r| r.status.undoable()))
    }
}

impl Change {
    /// Its record as last written.
    pub fn record(&self) -> &ChangeRecord {
        &self.record
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Its directory (its record and backups).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The backup of its file `i` (in the order of the record's `files`).
    pub fn backup_path(&self, i: usize) -> Option<PathBuf> {
        self.record.files.get(i).map(|f| self.dir.join(&f.backup))
    }

    fn save(&self) -> Result<(), ChangeError> {
        let path = self.dir.join(RECORD);
        let temp = self.dir.join(format!("{RECORD}.tmp"));
        let _ = std::fs::remove_file(&temp);
        let mut json =
            serde_json::to_vec_pretty(&self.record).map_err(|e| ChangeError::BadRecord {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        json.push(b'\n');
        write_new(&temp, &json)?;
        std::fs::rename(&temp, &path).map_err(io("cannot rename over", &path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("cannot sync", &self.dir))
    }

    /// Records that the change reached `status`.
    pub fn record_status(&mut self, status: ChangeStatus) -> Result<(), ChangeError> {
        self.record.status = status;
        self.record.history.push(StatusChange {
            status,
            time: now().1,
        });
        self.save()
    }

    /// Records a command run for the change (its command line only: no environment, no
    /// file contents).
    pub fn record_command(&mut self, command: &str) -> Result<(), ChangeError> {
        self.record.commands.push(command.to_owned());
        self.save()
    }

    /// Checks that every file holds the bytes of one side of the change: `after` (what it
    /// wrote) or the bytes before it. `Err(ChangedSince)` names the first that does not.
    pub fn check_files(&self, after: bool) -> Result<(), ChangeError> {
        for f in &self.record.files {
            let now = read_bytes(&f.written)?;
            let want = if after {
                &f.sha256_after
            } else {
                &f.sha256_before
            };
            if sha256_hex(&now) != *want {
                return Err(ChangeError::ChangedSince {
                    path: f.path.clone(),
                    when: if after { "wrote" } else { "read" },
                });
            }
        }
        Ok(())
    }

    /// Writes the change's files (each atomically, at its target), after checking that each
    /// still holds the bytes backed up; records `applied`. Only for a change just begun. On
    /// `Err` some of its files may be written already: [`Change::roll_back`] restores them all.
    pub fn apply(&mut self) -> Result<(), ChangeError> {
        self.check_files(false)?;
        if self.after.len() != self.record.files.len() {
            return Err(ChangeError::BadRecord {
                path: self.dir.join(RECORD),
                reason: "the new bytes are only known to the run that began the change".to_owned(),
            });
        }
        for (f, bytes) in self.record.files.iter().zip(&self.after) {
            write_atomically(&f.written, bytes)?;
        }
        self.record_status(ChangeStatus::Applied)
    }

    /// Writes every backup back over its file, byte-exact (atomically, keeping the file's
    /// owner, mode and label). It does not check the files first (see
    /// [`Change::check_files`]) nor record a status.
    pub fn restore(&self) -> Result<(), ChangeError> {
        for f in &self.record.files {
            let backup = self.dir.join(&f.backup);
            let bytes = read_bytes(&backup)?;
            if sha256_hex(&bytes) != f.sha256_before {
                return Err(ChangeError::ChangedSince {
                    path: backup,
                    when: "wrote",
                });
            }
            write_atomically(&f.written, &bytes)?;
        }
        Ok(())
    }

    /// Restores the files (a failed test or verification) and records `rolled-back`. This is
    /// the rollback of the run that applied the change, which holds the acting lock; `undo`
    /// (which takes the lock itself) is for a later run.
    pub fn roll_back(&mut self) -> Result<(), ChangeError> {
        self.restore()?;
        self.record_status(ChangeStatus::RolledBack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn target(dir: &Path) -> NginxTarget {
        NginxTarget {
            binary: PathBuf::from("/usr/sbin/nginx"),
            prefix: None,
            config: dir.join("nginx.conf"),
            master_pid: Some(812),
            test: None,
        }
    }

    #[test]
    fn a_change_round_trips_through_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("app");
        std::fs::write(&site, "return 200;\n").unwrap();
        let journal = Changes::at(tmp.path().join("state/changes"));
        assert!(journal.list().unwrap().is_empty());
        assert!(journal.last().unwrap().is_none());

        let mut change = journal
            .begin(NewChange {
                kind: "edit".to_owned(),
                cause: Some("upstream-header-too-big".to_owned()),
                nginx: target(tmp.path()),
                app: None,
                files: vec![(site.clone(), b"return 201;\n".to_vec())],
                proof: None,
            })
            .unwrap();
        // The backup is there, byte-exact and private, before the file is written.
        let backup = change.backup_path(0).unwrap();
        assert_eq!(std::fs::read(&backup).unwrap(), b"return 200;\n");
        assert_eq!(std::fs::metadata(&backup).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&site).unwrap(), b"return 200;\n");
        assert_eq!(change.record().status, ChangeStatus::Begun);
        let id = change.id().to_owned();
        assert!(
            id.ends_with("Z-1") && id.len() == "20261206T201503Z-1".len(),
            "{id}"
        );

        change.apply().unwrap();
        assert_eq!(std::fs::read(&site).unwrap(), b"return 201;\n");
        change.record_command("/usr/sbin/nginx -c /x -t").unwrap();
        change.record_status(ChangeStatus::Verified).unwrap();

        let read = journal.get(&id).unwrap();
        assert_eq!(read.record(), change.record());
        assert_eq!(read.record().status, ChangeStatus::Verified);
        assert_eq!(
            read.record().files[0].sha256_before,
            sha256_hex(b"return 200;\n")
        );
        assert_eq!(
            read.record().files[0].sha256_after,
            sha256_hex(b"return 201;\n")
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let json = std::fs::read_to_string(read.dir().join(RECORD)).unwrap();
        assert!(json.contains("\"status\": \"verified\""), "{json}");
        assert!(
            !json.contains("return 20"),
            "no file contents in the record: {json}"
        );
        read.check_files(true).unwrap();

        // A second change the same second gets the next counter, and is the last.
        let second = journal
            .begin(NewChange {
                kind: "edit".to_owned(),
                files: vec![(site.clone(), b"x\n".to_vec())],
                ..NewChange::default()
            })
            .unwrap();
        assert_ne!(second.id(), id);
        assert_eq!(journal.list().unwrap().len(), 2);
        assert_eq!(journal.last().unwrap().unwrap().id, second.id());

        // Restoring brings the exact bytes back.
        read.restore().unwrap();
        assert_eq!(std::fs::read(&site).unwrap(), b"return 200;\n");
        assert!(matches!(
            read.check_files(true),
            Err(ChangeError::ChangedSince { when: "wrote", .. })
        ));
        assert!(matches!(
            journal.get("nope"),
            Err(ChangeError::Unknown { .. })
        ));
        assert!(matches!(
            journal.get("../x"),
            Err(ChangeError::Unknown { .. })
        ));
    }

    #[test]
    fn apply_refuses_a_file_changed_after_the_backup() {
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("app");
        std::fs::write(&site, "a\n").unwrap();
        let journal = Changes::at(tmp.path().join("changes"));
        let mut change = journal
            .begin(NewChange {
                kind: "edit".to_owned(),
                files: vec![(site.clone(), b"b\n".to_vec())],
                ..NewChange::default()
            })
            .unwrap();
        std::fs::write(&site, "someone else\n").unwrap();
        assert!(matches!(
            change.apply(),
            Err(ChangeError::ChangedSince { when: "read", .. })
        ));
        assert_eq!(std::fs::read(&site).unwrap(), b"someone else\n");
        assert_eq!(
            journal.get(change.id()).unwrap().record().status,
            ChangeStatus::Begun
        );
    }

    #[test]
    fn ids_sort_by_time_then_counter() {
        let mut ids = [
            "20261206T201503Z-10",
            "20261206T201503Z-2",
            "20261206T201502Z-3",
        ];
        ids.sort_by_key(|id| id_key(id));
        assert_eq!(
            ids,
            [
                "20261206T201502Z-3",
                "20261206T201503Z-2",
                "20261206T201503Z-10"
            ]
        );
    }
}
