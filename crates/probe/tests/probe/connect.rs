//! connect_tcp / connect_unix against real loopback listeners and socket files.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fix502_probe::{ConnectOutcome, FileKind, connect_tcp, connect_unix, inspect_socket_path};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
};

use crate::support::{
    assert_child_passed, chmod, is_child, is_root, open_tempdir, run_as_nobody, skip,
};

const SHORT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn tcp_connected_v4() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let report = connect_tcp(addr, SHORT).await;
    assert_eq!(report.outcome, ConnectOutcome::Connected);
    assert_eq!(report.target, format!("127.0.0.1:{}", addr.port()));
    assert!(report.elapsed < SHORT);
}

#[tokio::test]
async fn tcp_connected_v6() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        skip("cannot bind [::1] (IPv6 disabled on lo?)");
        return;
    };
    let addr = listener.local_addr().unwrap();
    let report = connect_tcp(addr, SHORT).await;
    assert_eq!(report.outcome, ConnectOutcome::Connected);
    assert_eq!(report.target, format!("[::1]:{}", addr.port()));
}

#[tokio::test]
async fn tcp_refused_when_nothing_listens() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let report = connect_tcp(addr, SHORT).await;
    assert_eq!(report.outcome, ConnectOutcome::Refused);
    assert_eq!(report.outcome.errno(), Some(111));
    assert_eq!(report.outcome.to_string(), "connection refused (111)");
    assert!(report.elapsed < SHORT);
}

/// A listener with backlog 0 whose accept queue is full drops further SYNs, so a connect
/// hangs: the probe must give up at its own timeout.
#[tokio::test]
async fn tcp_timeout_is_bounded() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();

    // Fill the accept queue (never accepting): the first connect that hangs shows it full.
    let mut full = false;
    for _ in 0..16 {
        let filler = connect_tcp(addr, Duration::from_millis(200)).await;
        if filler.outcome == ConnectOutcome::TimedOut {
            full = true;
            break;
        }
        assert_eq!(filler.outcome, ConnectOutcome::Connected);
    }
    assert!(full, "the accept queue never filled up");

    let timeout = Duration::from_millis(300);
    let report = connect_tcp(addr, timeout).await;
    assert_eq!(report.outcome, ConnectOutcome::TimedOut);
    assert_eq!(report.outcome.errno(), None);
    assert!(report.elapsed >= timeout, "{:?}", report.elapsed);
    assert!(
        report.elapsed < Duration::from_secs(2),
        "{:?}",
        report.elapsed
    );
    drop(listener);
}

#[tokio::test]
async fn unix_connected() {
    let dir = open_tempdir();
    let path = dir.path().join("app.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    let report = connect_unix(&path, SHORT).await;
    assert_eq!(report.outcome, ConnectOutcome::Connected);
    assert_eq!(report.target, format!("unix:{}", path.display()));
}

#[tokio::test]
async fn unix_missing_path() {
    let dir = open_tempdir();
    let path = dir.path().join("php8.1-fpm.sock");
    let report = connect_unix(&path, SHORT).await;
    assert_eq!(report.outcome, ConnectOutcome::NotFound);
    assert_eq!(report.outcome.errno(), Some(2));
    assert_eq!(inspect_socket_path(&path).socket.kind, FileKind::Missing);
}

#[tokio::test]
async fn unix_path_that_is_not_a_socket_is_refused() {
    let dir = open_tempdir();
    let path = dir.path().join("app.sock");
    fs::write(&path, b"not a socket").unwrap();
    let report = connect_unix(&path, SHORT).await;
    assert_eq!(report.outcome, ConnectOutcome::Refused);
    assert_eq!(report.outcome.errno(), Some(111));
    assert_eq!(inspect_socket_path(&path).socket.kind, FileKind::Regular);
}

#[tokio::test]
async fn unix_stale_socket_file_is_refused() {
    let dir = open_tempdir();
    let path = dir.path().join("app.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays behind
    assert!(path.exists());
    let report = connect_unix(&path, SHORT).await;
    assert_eq!(report.outcome, ConnectOutcome::Refused);
    assert_eq!(inspect_socket_path(&path).socket.kind, FileKind::Socket);
}

/// A unix stream listener with a full backlog makes a nonblocking connect fail with
/// EAGAIN at once; the probe must report that instead of hanging.
#[tokio::test]
async fn unix_backlog_full_is_would_block() {
    let dir = open_tempdir();
    let path = dir.path().join("busy.sock");
    let listener = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind_unix(&listener, &path);
    listen(&listener, Backlog::new(1).unwrap()).unwrap();

    // Queue connections without accepting until the kernel says EAGAIN.
    let mut queued = Vec::new();
    let mut full = false;
    for _ in 0..64 {
        let client = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        match connect(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            &UnixAddr::new(&path).unwrap(),
        ) {
            Ok(()) => queued.push(client),
            Err(nix::errno::Errno::EAGAIN) => {
                full = true;
                break;
            }
            Err(err) => panic!("unexpected connect error while filling: {err}"),
        }
    }
    assert!(full, "backlog never filled after {} connects", queued.len());

    let report = connect_unix(&path, Duration::from_secs(5)).await;
    assert_eq!(report.outcome, ConnectOutcome::WouldBlock);
    assert_eq!(report.outcome.errno(), Some(11));
    assert!(
        report.elapsed < Duration::from_secs(1),
        "{:?}",
        report.elapsed
    );
    drop(queued);
    drop(listener);
}

fn bind_unix(fd: &std::os::fd::OwnedFd, path: &Path) {
    bind(
        std::os::fd::AsRawFd::as_raw_fd(fd),
        &UnixAddr::new(path).unwrap(),
    )
    .unwrap();
}

const SOCKET_ENV: &str = "FIX502_PROBE_SOCKET";

/// As nobody, connecting to a root-owned 0600 socket fails with EACCES (13). Root
/// bypasses permission checks, so the connect runs in a child process as nobody.
#[tokio::test]
async fn unix_permission_denied_as_nobody() {
    if is_child() {
        let path = PathBuf::from(std::env::var_os(SOCKET_ENV).expect("socket path"));
        let report = connect_unix(&path, SHORT).await;
        assert_eq!(report.outcome, ConnectOutcome::PermissionDenied);
        assert_eq!(report.outcome.errno(), Some(13));
        assert_eq!(report.outcome.to_string(), "permission denied (13)");
        return;
    }
    if !is_root() {
        skip("unix_permission_denied_as_nobody needs root (to run a child as nobody)");
        return;
    }
    let dir = open_tempdir();
    let path = dir.path().join("root-only.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    chmod(&path, 0o600);
    // Root itself connects fine.
    assert_eq!(
        connect_unix(&path, SHORT).await.outcome,
        ConnectOutcome::Connected
    );
    let output = run_as_nobody(
        "connect::unix_permission_denied_as_nobody",
        &[(SOCKET_ENV, path.to_str().unwrap())],
    );
    assert_child_passed(&output);
}

#[tokio::test]
async fn unusable_unix_paths_are_reported_not_panicked_on() {
    let long = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
    let report = connect_unix(&long, SHORT).await;
    assert!(
        matches!(report.outcome, ConnectOutcome::Other { errno: None, .. }),
        "{:?}",
        report.outcome
    );
    let report = connect_unix(Path::new("/tmp/nul\0byte"), SHORT).await;
    assert!(matches!(report.outcome, ConnectOutcome::Other { .. }));
}
