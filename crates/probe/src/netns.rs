//! Probes made from another process's network namespace: what nginx in a container or a
//! namespace of its own would meet, not what fix502's namespace would.
//!
//! A socket belongs for its whole life to the network namespace of the thread that made it.
//! [`NetNs::enter`] starts one thread that joins the network namespace of a process (`setns`
//! on that thread only: the rest of fix502 stays where it is) and runs a small tokio runtime
//! there. Inside [`within`], this crate's probes make their sockets in that namespace: TCP and
//! UDP sockets are made on that thread and then used from the caller's runtime
//! ([`tcp_socket`], [`udp_socket`]); probes whose library makes its own sockets (the DNS
//! resolver, getaddrinfo, ICMP) run whole on that thread ([`run`]). Outside [`within`] (or
//! inside it with `None`) everything happens here, as before.
//!
//! Unix sockets are reached by path, so the network namespace does not matter to them.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use nix::sched::{CloneFlags, setns};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::error::ProbeError;
use crate::namespace::NamespaceIds;

/// A job for the namespace thread: a future it spawns on its runtime.
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A thread standing in the network namespace of a process, ready to make sockets and run
/// probes there. Dropping the last handle ends the thread.
#[derive(Debug)]
pub struct NetNs {
    /// The process whose namespace this is.
    pid: u32,
    /// The namespace's inode id, when it could be read.
    id: Option<u64>,
    /// Jobs for the thread.
    jobs: mpsc::UnboundedSender<Job>,
}

impl NetNs {
    /// Starts a thread in the network namespace of process `pid`. Fails when the namespace
    /// cannot be opened or joined (joining needs `CAP_SYS_ADMIN`: run as root).
    pub fn enter(pid: u32) -> Result<Self, ProbeError> {
        let path = format!("/proc/{pid}/ns/net");
        let io_error = |what: String| move |source| ProbeError::Io { what, source };
        let file = std::fs::File::open(&path).map_err(io_error(format!("opening {path}")))?;
        let id = NamespaceIds::of(&pid.to_string()).net;
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (ready, joined) = std::sync::mpsc::channel::<io::Result<()>>();
        let started = std::thread::Builder::new()
            .name(format!("fix502-netns-{pid}"))
            .spawn(move || {
                let runtime = setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)
                    .and_then(|()| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                    });
                let runtime = match runtime {
                    Ok(runtime) => {
                        drop(ready.send(Ok(())));
                        runtime
                    }
                    Err(e) => {
                        drop(ready.send(Err(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .map_err(io_error("starting a thread".to_owned()))?;
        drop(started);
        match joined.recv() {
            Ok(Ok(())) => Ok(Self { pid, id, jobs }),
            Ok(Err(source)) => Err(ProbeError::Io {
                what: format!("entering the network namespace of process {pid} (setns)"),
                source,
            }),
            Err(_) => Err(ProbeError::Io {
                what: format!("entering the network namespace of process {pid}"),
                source: io::Error::other("the namespace thread ended"),
            }),
        }
    }

    /// The process whose network namespace this is.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The namespace's inode id (`net:[ID]`), when it could be read.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// Runs `future` to its end on the namespace thread and returns its output.
    pub async fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::pin(async move {
            drop(tx.send(future.await));
        });
        let gone = || io::Error::other("the network namespace thread has ended");
        self.jobs.send(job).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

tokio::task_local! {
    /// The namespace this task's probes are made from; `None` is fix502's own.
    static CURRENT: Option<Arc<NetNs>>;
}

/// Runs `future` with its probes made from `ns` (fix502's own namespace when `None`).
pub async fn within<F: Future>(ns: Option<Arc<NetNs>>, future: F) -> F::Output {
    CURRENT.scope(ns, future).await
}

/// The namespace the current task's probes are made from, set by [`within`]; `None` is
/// fix502's own.
pub fn current() -> Option<Arc<NetNs>> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Runs `future` where the current task's probes are made: on the namespace thread inside
/// [`within`], else here.
pub async fn run<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> io::Result<T> {
    match current() {
        Some(ns) => ns.run(future).await,
        None => Ok(future.await),
    }
}

/// A TCP socket of `addr`'s family, made in the current task's namespace (see [`within`]);
/// connect it from anywhere.
pub async fn tcp_socket(addr: &SocketAddr) -> io::Result<TcpSocket> {
    let v4 = addr.is_ipv4();
    let make = move || {
        if v4 {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
    };
    match current() {
        Some(ns) => ns.run(async move { make() }).await?,
        None => make(),
    }
}

/// A UDP socket bound to the wildcard address of `server`'s family on an ephemeral port,
/// made in the current task's namespace (see [`within`]). Needs a tokio runtime.
pub async fn udp_socket(server: &SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let make = move || {
        let socket = std::net::UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok::<_, io::Error>(socket)
    };
    let socket = match current() {
        Some(ns) => ns.run(async move { make() }).await??,
        None => make()?,
    };
    tokio::net::UdpSocket::from_std(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether we run as root (entering a namespace needs it).
    fn root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    #[tokio::test]
    async fn outside_within_sockets_are_made_here() {
        assert!(current().is_none());
        let here = run(async { std::thread::current().id() }).await.unwrap();
        assert_eq!(here, std::thread::current().id());
        let socket = tcp_socket(&"127.0.0.1:1".parse().unwrap()).await;
        assert!(socket.is_ok());
    }

    #[tokio::test]
    async fn a_namespace_that_cannot_be_opened_is_an_error() {
        // pid 0 has no /proc entry.
        let err = NetNs::enter(0).unwrap_err();
        assert!(err.to_string().contains("/proc/0/ns/net"), "{err}");
    }

    #[tokio::test]
    #[allow(clippy::print_stderr)] // a test that needs root says so when it is not
    async fn probes_within_a_namespace_are_made_there() {
        if !root() {
            eprintln!("skipping: entering a network namespace needs root");
            return;
        }
        // A process in a network namespace of its own, with only a loopback that is down.
        let mut child = match std::process::Command::new("unshare")
            .args(["--net", "sleep", "30"])
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipping: cannot run unshare: {e}");
                return;
            }
        };
        let pid = child.id();
        // Wait (bounded) until the child has its own namespace.
        let own = NamespaceIds::own().net;
        let mut theirs = None;
        for _ in 0..100 {
            theirs = NamespaceIds::of(&pid.to_string()).net;
            if theirs.is_some() && theirs != own {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let ns = Arc::new(NetNs::enter(pid).expect("enter"));
        assert_eq!(ns.id(), theirs);
        // A listener here on loopback; from the namespace (whose loopback is down) it
        // cannot be reached.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let here = tcp_socket(&addr).await.unwrap().connect(addr).await;
        assert!(here.is_ok(), "{here:?}");
        let there = within(Some(ns.clone()), async {
            tcp_socket(&addr).await.unwrap().connect(addr).await
        })
        .await;
        assert!(
            there.is_err(),
            "connected from the other namespace: {there:?}"
        );
        // run() goes to the namespace thread, whose namespace is the child's.
        let seen = within(Some(ns), run(async { NamespaceIds::of("thread-self").net }))
            .await
            .unwrap();
        assert_eq!(seen, theirs);
        drop(child.kill());
        drop(child.wait());
    }
}
