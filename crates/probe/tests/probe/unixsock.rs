//! inspect_socket_path / may_connect / identity_of on real files and the real user database.

use std::fs;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use fix502_probe::{
    Access, FileKind, Identity, identity_of, identity_of_uid, inspect_socket_path, may_connect,
};

use crate::support::{NOBODY, chmod, is_root, open_tempdir, skip};

/// A user who owns nothing in the test's temp dir: `nobody`, unless the tests themselves
/// run as nobody, then a uid no file here belongs to.
fn stranger() -> Identity {
    if nix::unistd::geteuid().as_raw() != NOBODY {
        return identity_of("nobody", None).expect("nobody exists");
    }
    Identity {
        name: "stranger".to_owned(),
        uid: 4_242_424,
        gid: 4_242_424,
        groups: vec![4_242_424],
    }
}

#[test]
fn identities_from_the_user_database() {
    let root = identity_of_uid(0).expect("root exists");
    assert_eq!((root.name.as_str(), root.uid, root.gid), ("root", 0, 0));
    assert!(root.groups.contains(&0));

    let by_name = identity_of("root", None).expect("root by name");
    assert_eq!(by_name, root);

    let nobody = identity_of("nobody", None).expect("nobody exists");
    assert_eq!(nobody.uid, NOBODY);
    assert!(nobody.groups.contains(&nobody.gid));

    let with_group = identity_of("nobody", Some("root")).expect("explicit group");
    assert_eq!(with_group.gid, 0);
    assert!(with_group.groups.contains(&0));

    assert_eq!(identity_of("no-such-user-fix502", None), None);
    assert_eq!(identity_of("root", Some("no-such-group-fix502")), None);
    assert_eq!(identity_of("bad\0name", None), None);
}

#[test]
fn socket_0600_denies_nobody_allows_root() {
    let dir = open_tempdir();
    let path = dir.path().join("app.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    chmod(&path, 0o600);

    let info = inspect_socket_path(&path);
    assert_eq!(info.socket.kind, FileKind::Socket);
    assert_eq!(info.socket.mode, 0o600);
    assert_eq!(info.socket.error, None);
    assert_eq!(
        info.parents.first().map(|p| p.path.clone()),
        Some(PathBuf::from("/"))
    );
    assert_eq!(
        info.parents.last().map(|p| p.path.as_path()),
        Some(dir.path())
    );
    assert!(info.parents.iter().all(|p| p.kind == FileKind::Directory));
    assert_eq!(info.parents.last().unwrap().mode, 0o755);

    let nobody = stranger();
    match may_connect(&nobody, &info) {
        Access::Denied { path: at, reason } => {
            assert_eq!(at, path);
            let expected = format!("{} may not write srw------- ", nobody.name);
            assert!(reason.starts_with(&expected), "{reason}");
            assert!(reason.ends_with(&path.display().to_string()), "{reason}");
        }
        other => panic!("expected Denied, got {other:?}"),
    }
    let root = identity_of_uid(0).unwrap();
    assert_eq!(may_connect(&root, &info), Access::Allowed);

    // Opening it to everyone lets nobody in.
    chmod(&path, 0o666);
    assert_eq!(
        may_connect(&nobody, &inspect_socket_path(&path)),
        Access::Allowed
    );
}

#[test]
fn parent_dir_0700_denies_search() {
    let dir = open_tempdir();
    let secret = dir.path().join("secret");
    fs::create_dir(&secret).unwrap();
    let path = secret.join("app.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    chmod(&path, 0o666);
    chmod(&secret, 0o700);

    let nobody = stranger();
    match may_connect(&nobody, &inspect_socket_path(&path)) {
        Access::Denied { path: at, reason } => {
            assert_eq!(at, secret);
            let expected = format!(
                "{} has no search (x) permission on drwx------ ",
                nobody.name
            );
            assert!(reason.starts_with(&expected), "{reason}");
        }
        other => panic!("expected Denied, got {other:?}"),
    }
    chmod(&secret, 0o711);
    assert_eq!(
        may_connect(&nobody, &inspect_socket_path(&path)),
        Access::Allowed
    );
}

#[test]
fn group_membership_grants_write() {
    if !is_root() {
        skip("group_membership_grants_write needs root (chown)");
        return;
    }
    let dir = open_tempdir();
    let path = dir.path().join("fpm.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(0), Some(NOBODY)).unwrap();
    chmod(&path, 0o660);

    let info = inspect_socket_path(&path);
    assert_eq!((info.socket.uid, info.socket.gid), (0, NOBODY));
    let nobody = identity_of("nobody", None).unwrap();
    assert!(nobody.groups.contains(&NOBODY));
    assert_eq!(may_connect(&nobody, &info), Access::Allowed);

    // The same user with another primary group and not in the socket's group: denied.
    let mut outsider = nobody.clone();
    outsider.gid = 12345;
    outsider.groups = vec![12345];
    assert!(matches!(
        may_connect(&outsider, &info),
        Access::Denied { .. }
    ));
}

#[test]
fn missing_socket_is_unknown() {
    let dir = open_tempdir();
    let info = inspect_socket_path(&dir.path().join("gone.sock"));
    assert_eq!(info.socket.kind, FileKind::Missing);
    let root = identity_of_uid(0).unwrap();
    assert!(matches!(may_connect(&root, &info), Access::Unknown { .. }));
}
