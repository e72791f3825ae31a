//! May a given user connect to a unix socket path? The facts and the kernel's rule.
//!
//! Connecting to a unix socket needs search (`x`) permission on every directory on the
//! way and write (`w`) permission on the socket file itself. This module reads owner,
//! group and mode of the socket and each parent ([`inspect_socket_path`]), looks up the
//! identity nginx's workers run as ([`identity_of`]), and applies the owner/group/other
//! rule to them ([`may_connect`]). ACLs, SELinux and AppArmor are not modelled here.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};
use serde::{Deserialize, Serialize};

/// What kind of file a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    /// A unix socket.
    Socket,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// Anything else (fifo, device, ...), or a path whose `stat()` failed (see
    /// [`PathEntry::error`]).
    Other,
    /// The path does not exist (`ENOENT`).
    Missing,
}

/// Owner, group and mode of one path, as `stat()` (following symlinks) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    /// The path that was inspected.
    pub path: PathBuf,
    /// Its kind.
    pub kind: FileKind,
    /// Owner uid (0 when missing or unreadable).
    pub uid: u32,
    /// Group gid (0 when missing or unreadable).
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner user name, when the uid is in the user database.
    pub owner: Option<String>,
    /// Group name, when the gid is in the group database.
    pub group: Option<String>,
    /// The `stat()` error, for any error other than `ENOENT`.
    pub error: Option<String>,
}

impl PathEntry {
    /// `owner:group`, by name where known, else by number.
    pub fn owner_group(&self) -> String {
        let owner = self.owner.clone().unwrap_or_else(|| self.uid.to_string());
        let group = self.group.clone().unwrap_or_else(|| self.gid.to_string());
        format!("{owner}:{group}")
    }

    /// The `ls -l` style description: `srw-rw---- www-data:www-data /run/php/fpm.sock`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}",
            mode_string(&self.kind, self.mode),
            self.owner_group(),
            self.path.display()
        )
    }
}

/// A socket path and every directory that leads to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketFileInfo {
    /// The socket path itself.
    pub socket: PathEntry,
    /// The parent directories, from `/` down to the socket's own directory.
    pub parents: Vec<PathEntry>,
}

/// Stats `path` and each of its parent directories. Never fails: problems are recorded
/// in the entries ([`FileKind::Missing`], [`PathEntry::error`]).
pub fn inspect_socket_path(path: &Path) -> SocketFileInfo {
    let mut parents: Vec<PathEntry> = path
        .ancestors()
        .skip(1)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(stat_entry)
        .collect();
    parents.reverse();
    SocketFileInfo {
        socket: stat_entry(path),
        parents,
    }
}

fn stat_entry(path: &Path) -> PathEntry {
    let mut entry = PathEntry {
        path: path.to_path_buf(),
        kind: FileKind::Missing,
        uid: 0,
        gid: 0,
        mode: 0,
        owner: None,
        group: None,
        error: None,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            let file_type = meta.file_type();
            entry.kind = if file_type.is_socket() {
                FileKind::Socket
            } else if file_type.is_dir() {
                FileKind::Directory
            } else if file_type.is_file() {
                FileKind::Regular
            } else {
                FileKind::Other
            };
            entry.uid = meta.uid();
            entry.gid = meta.gid();
            entry.mode = meta.mode() & 0o7777;
            entry.owner = user_name(entry.uid);
            entry.group = group_name(entry.gid);
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            entry.kind = FileKind::Other;
            entry.error = Some(err.to_string());
        }
    }
    entry
}

fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
}

fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|group| group.name)
}

/// A user as the kernel sees it when checking permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary (effective) group id.
    pub gid: u32,
    /// All groups of the user from the group database, the primary one included.
    pub groups: Vec<u32>,
}

/// Looks up `user` (and `group`) in the user and group databases.
///
/// With `group` given, it is the primary group (as nginx's `user www-data www-data;` sets
/// it); without, the user's primary group from the passwd entry is used. Note that nginx
/// itself, when its `user` directive names no group, uses the group with the user's
/// name, so callers that model nginx should pass it explicitly. Supplementary groups
/// come from the group database (`getgrouplist`), as nginx's `initgroups()` sets them.
/// `None` when the user or group does not exist.
pub fn identity_of(user: &str, group: Option<&str>) -> Option<Identity> {
    let entry = User::from_name(user).ok().flatten()?;
    let gid = match group {
        Some(name) => Group::from_name(name).ok().flatten()?.gid,
        None => entry.gid,
    };
    Some(build_identity(entry.name, entry.uid, gid))
}

/// Looks up the user with `uid` (primary group from its passwd entry). `None` when the
/// uid is not in the user database.
pub fn identity_of_uid(uid: u32) -> Option<Identity> {
    let entry = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
    Some(build_identity(entry.name, entry.uid, entry.gid))
}

fn build_identity(name: String, uid: Uid, gid: Gid) -> Identity {
    let mut groups: Vec<u32> = CString::new(name.as_str())
        .ok()
        .and_then(|cname| getgrouplist(&cname, gid).ok())
        .map(|list| list.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default();
    if !groups.contains(&gid.as_raw()) {
        groups.insert(0, gid.as_raw());
    }
    Identity {
        name,
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        groups,
    }
}

/// Whether the permission bits let an identity connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// The mode bits allow it.
    Allowed,
    /// The mode bits forbid it, at `path`.
    Denied {
        /// The directory or socket that blocks the way.
        path: PathBuf,
        /// Why, e.g. `www-data may not write srw------- root:root /run/app.sock`.
        reason: String,
    },
    /// Cannot say (the socket is missing, or a path could not be inspected).
    Unknown {
        /// Why not.
        reason: String,
    },
}

const SEARCH: u32 = 0o1;
const WRITE: u32 = 0o2;

/// Applies the kernel's rule for `connect()` on a unix socket path: search (`x`) on every
/// parent directory and write (`w`) on the socket, using the owner bits when the uid
/// owns the file, else the group bits when the file's group is one of the identity's
/// groups, else the other bits. uid 0 is always allowed. A missing socket gives
/// [`Access::Unknown`].
pub fn may_connect(id: &Identity, info: &SocketFileInfo) -> Access {
    if info.socket.kind == FileKind::Missing {
        return Access::Unknown {
            reason: format!("{} does not exist", info.socket.path.display()),
        };
    }
    if let Some(err) = &info.socket.error {
        return Access::Unknown {
            reason: format!("cannot stat {}: {err}", info.socket.path.display()),
        };
    }
    if id.uid == 0 {
        return Access::Allowed;
    }
    for dir in &info.parents {
        if let Some(err) = &dir.error {
            return Access::Unknown {
                reason: format!("cannot stat {}: {err}", dir.path.display()),
            };
        }
        if dir.kind != FileKind::Directory {
            return Access::Unknown {
                reason: format!("{} is not a directory", dir.path.display()),
            };
        }
        if !permits(id, dir, SEARCH) {
            return Access::Denied {
                path: dir.path.clone(),
                reason: format!(
                    "{} has no search (x) permission on {}",
                    id.name,
                    dir.describe()
                ),
            };
        }
    }
    if !permits(id, &info.socket, WRITE) {
        return Access::Denied {
            path: info.socket.path.clone(),
            reason: format!("{} may not write {}", id.name, info.socket.describe()),
        };
    }
    Access::Allowed
}

/// The owner/group/other rule for one permission bit (`SEARCH` or `WRITE`).
fn permits(id: &Identity, entry: &PathEntry, bit: u32) -> bool {
    let shift = if entry.uid == id.uid {
        6
    } else if entry.gid == id.gid || id.groups.contains(&entry.gid) {
        3
    } else {
        0
    };
    (entry.mode >> shift) & bit != 0
}

/// Renders a mode like `ls -l`: `srw-rw----`, `drwxr-x--x`, `-rwsr-xr-t`.
///
/// The first character is `s` socket, `d` directory, `-` regular file, `?` otherwise.
pub fn mode_string(kind: &FileKind, mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(match kind {
        FileKind::Socket => 's',
        FileKind::Directory => 'd',
        FileKind::Regular => '-',
        FileKind::Other | FileKind::Missing => '?',
    });
    // (shift of the rwx triplet, special bit, letter when x is set, letter when not)
    let triplets = [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ];
    for (shift, special, with_x, without_x) in triplets {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 0o4 != 0 { 'r' } else { '-' });
        out.push(if bits & 0o2 != 0 { 'w' } else { '-' });
        let exec = bits & 0o1 != 0;
        out.push(match (mode & special != 0, exec) {
            (true, true) => with_x,
            (true, false) => without_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: FileKind, uid: u32, gid: u32, mode: u32) -> PathEntry {
        PathEntry {
            path: PathBuf::from(path),
            kind,
            uid,
            gid,
            mode,
            owner: None,
            group: None,
            error: None,
        }
    }

    fn www_data() -> Identity {
        Identity {
            name: "www-data".to_owned(),
            uid: 33,
            gid: 33,
            groups: vec![33, 1001],
        }
    }

    fn info(socket: PathEntry, parents: Vec<PathEntry>) -> SocketFileInfo {
        SocketFileInfo { socket, parents }
    }

    fn run_dir() -> Vec<PathEntry> {
        vec![
            entry("/", FileKind::Directory, 0, 0, 0o755),
            entry("/run", FileKind::Directory, 0, 0, 0o755),
        ]
    }

    #[test]
    fn mode_strings_like_ls() {
        assert_eq!(mode_string(&FileKind::Socket, 0o660), "srw-rw----");
        assert_eq!(mode_string(&FileKind::Directory, 0o751), "drwxr-x--x");
        assert_eq!(mode_string(&FileKind::Regular, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(&FileKind::Directory, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(&FileKind::Regular, 0o2600), "-rw---S---");
        assert_eq!(mode_string(&FileKind::Missing, 0), "?---------");
    }

    #[test]
    fn owner_group_and_other_bits() {
        let id = www_data();
        let owned = info(
            entry("/run/a.sock", FileKind::Socket, 33, 0, 0o200),
            run_dir(),
        );
        assert_eq!(may_connect(&id, &owned), Access::Allowed);

        // Supplementary group 1001 grants write.
        let by_group = info(
            entry("/run/a.sock", FileKind::Socket, 0, 1001, 0o660),
            run_dir(),
        );
        assert_eq!(may_connect(&id, &by_group), Access::Allowed);

        // The owner class is used alone, even when "other" would allow it.
        let owner_only = info(
            entry("/run/a.sock", FileKind::Socket, 33, 0, 0o466),
            run_dir(),
        );
        assert!(matches!(
            may_connect(&id, &owner_only),
            Access::Denied { .. }
        ));

        let other = info(
            entry("/run/a.sock", FileKind::Socket, 0, 0, 0o666),
            run_dir(),
        );
        assert_eq!(may_connect(&id, &other), Access::Allowed);
    }

    #[test]
    fn denied_reasons_name_user_mode_and_path() {
        let id = www_data();
        let mut sock = entry("/run/app.sock", FileKind::Socket, 0, 0, 0o600);
        sock.owner = Some("root".to_owned());
        sock.group = Some("root".to_owned());
        match may_connect(&id, &info(sock, run_dir())) {
            Access::Denied { path, reason } => {
                assert_eq!(path, PathBuf::from("/run/app.sock"));
                assert_eq!(
                    reason,
                    "www-data may not write srw------- root:root /run/app.sock"
                );
            }
            other => panic!("expected Denied, got {other:?}"),
        }

        let mut parents = run_dir();
        parents.push(entry("/run/secret", FileKind::Directory, 0, 0, 0o700));
        let sock = entry("/run/secret/app.sock", FileKind::Socket, 33, 33, 0o660);
        match may_connect(&id, &info(sock, parents)) {
            Access::Denied { path, reason } => {
                assert_eq!(path, PathBuf::from("/run/secret"));
                assert_eq!(
                    reason,
                    "www-data has no search (x) permission on drwx------ 0:0 /run/secret"
                );
            }
            other => panic!("expected Denied, got {other:?}"),
        }
    }

    #[test]
    fn root_missing_and_unreadable() {
        let root = Identity {
            name: "root".to_owned(),
            uid: 0,
            gid: 0,
            groups: vec![0],
        };
        let locked = info(
            entry("/run/a.sock", FileKind::Socket, 5, 5, 0o000),
            run_dir(),
        );
        assert_eq!(may_connect(&root, &locked), Access::Allowed);

        let missing = info(entry("/run/a.sock", FileKind::Missing, 0, 0, 0), run_dir());
        assert!(matches!(
            may_connect(&root, &missing),
            Access::Unknown { .. }
        ));
        assert!(matches!(
            may_connect(&www_data(), &missing),
            Access::Unknown { .. }
        ));

        let mut parents = run_dir();
        let mut hidden = entry("/run/x", FileKind::Other, 0, 0, 0);
        hidden.error = Some("Permission denied (os error 13)".to_owned());
        parents.push(hidden);
        let sock = entry("/run/x/a.sock", FileKind::Socket, 0, 0, 0o666);
        assert!(matches!(
            may_connect(&www_data(), &info(sock, parents)),
            Access::Unknown { .. }
        ));
    }

    #[test]
    fn parents_run_from_root_down() {
        let info = inspect_socket_path(Path::new("/nonexistent-fix502/dir/app.sock"));
        let paths: Vec<_> = info.parents.iter().map(|p| p.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                PathBuf::from("/"),
                PathBuf::from("/nonexistent-fix502"),
                PathBuf::from("/nonexistent-fix502/dir"),
            ]
        );
        assert_eq!(info.parents[0].kind, FileKind::Directory);
        assert_eq!(info.parents[1].kind, FileKind::Missing);
        assert_eq!(info.socket.kind, FileKind::Missing);
        assert_eq!(info.socket.error, None);
    }
}
