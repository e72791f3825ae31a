//! listeners() / time_wait_count() against sockets this test opens.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use fix502_probe::{Listener, ListenerKind, listeners, listeners_on_port, time_wait_count};

use crate::support::{open_tempdir, skip};

fn find(all: &[Listener], inode_of: impl Fn(&Listener) -> bool) -> Option<&Listener> {
    all.iter().find(|l| inode_of(l))
}

#[test]
fn finds_own_tcp_v4_listener_with_pid() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let all = listeners().unwrap();
    let found = find(&all, |l| l.socket_addr == Some(addr)).expect("own listener listed");
    assert_eq!(found.kind, ListenerKind::Tcp);
    assert_eq!(found.addr, format!("127.0.0.1:{}", addr.port()));
    assert_eq!(found.pid, Some(std::process::id()));
    assert!(found.process.as_deref().is_some_and(|p| !p.is_empty()));
    assert!(found.cmdline.is_some());
    assert_eq!(found.queued, Some(0));
    assert!(found.inode > 0);

    let on_port = listeners_on_port(&all, addr.port());
    assert_eq!(on_port.len(), 1);
    assert_eq!(on_port[0].socket_addr, Some(addr));
}

#[test]
fn finds_own_tcp_v6_listener() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        skip("cannot bind [::1] (IPv6 disabled on lo?)");
        return;
    };
    let addr = listener.local_addr().unwrap();
    let all = listeners().unwrap();
    let found = find(&all, |l| l.socket_addr == Some(addr)).expect("own v6 listener listed");
    assert_eq!(found.addr, format!("[::1]:{}", addr.port()));
    assert_eq!(found.pid, Some(std::process::id()));
}

#[test]
fn finds_own_unix_listener_but_not_stale_files_or_clients() {
    let dir = open_tempdir();
    let path = dir.path().join("app.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();

    let all = listeners().unwrap();
    let found = find(&all, |l| l.path.as_deref() == Some(path.as_path()))
        .expect("own unix listener listed");
    assert_eq!(found.kind, ListenerKind::Unix);
    assert_eq!(found.addr, format!("unix:{}", path.display()));
    assert_eq!(found.socket_addr, None);
    assert_eq!(found.pid, Some(std::process::id()));
    assert_eq!(
        all.iter()
            .filter(|l| l.path.as_deref() == Some(path.as_path()))
            .count(),
        1,
        "the accepted-side and client sockets are not listeners"
    );
    assert!(
        !all.iter()
            .any(|l| l.path.as_deref() == Some(stale.as_path()))
    );
    drop(listener);
}

#[test]
fn bound_but_not_listening_tcp_is_not_a_listener() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let all = listeners().unwrap();
    assert!(listeners_on_port(&all, port).is_empty());
}

#[test]
fn counts_time_wait_towards_a_destination() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let before = time_wait_count(addr).unwrap();

    // The side that closes first ends in TIME_WAIT: close the client first.
    let client = TcpStream::connect(addr).unwrap();
    let (mut server_side, _) = listener.accept().unwrap();
    drop(client);
    let mut buf = [0u8; 8];
    server_side
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        server_side.read(&mut buf).unwrap(),
        0,
        "EOF from the client"
    );
    drop(server_side);

    let mut count = before;
    for _ in 0..40 {
        count = time_wait_count(addr).unwrap();
        if count > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count, before + 1);
    // Nothing ever listens on port 1 here, so nothing waits towards it.
    let elsewhere = std::net::SocketAddr::new(addr.ip(), 1);
    assert_eq!(time_wait_count(elsewhere).unwrap(), 0);
}

#[test]
fn tcp_accept_queue_length_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _clients: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let all = listeners().unwrap();
    let found = find(&all, |l| l.socket_addr == Some(addr)).expect("own listener listed");
    assert_eq!(found.queued, Some(2), "two connections never accepted");
}
