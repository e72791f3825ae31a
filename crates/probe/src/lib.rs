//! fix502-probe: live probes of the machine nginx runs on, each bounded by a timeout.
//!
//! Every probe answers one question the way nginx would meet it, and returns data, not
//! errors, for everything that is a property of the target (refused, timed out, NXDOMAIN):
//!
//! - [`connect`]: one TCP or unix-socket `connect()`, classified by errno number
//!   ([`connect_tcp`], [`connect_unix`]).
//! - [`stream`]: the byte pipe every protocol probe talks through: one connection and a
//!   bounded read that never hangs past a deadline nor grows past a cap.
//! - [`http`]: a raw HTTP/1.x request, the response header judged as nginx's proxy module
//!   judges it.
//! - [`tls`]: the TLS handshake as `proxy_pass https://` makes it, and the certificate.
//! - [`gateway`]: what the FastCGI, uwsgi and SCGI probes share: their result, their one
//!   outcome type, the CGI response-head parser.
//! - [`fastcgi`]: the FastCGI record codec, `FCGI_GET_VALUES`, and a request as nginx sends
//!   it.
//! - [`uwsgi`]: a request as nginx's uwsgi module sends it.
//! - [`scgi`]: a request as nginx's SCGI module sends it.
//! - [`sniff`]: which protocol a port speaks, told from the bytes it sends.
//! - [`unixsock`]: owner, group and mode of a socket path and every parent directory, and
//!   whether a given user (the nginx worker) may connect to it ([`inspect_socket_path`],
//!   [`may_connect`]).
//! - [`listeners`](mod@listeners): who listens where: TCP (v4 and v6) and unix stream listeners from
//!   `/proc/net/*` with their owning process, plus TIME_WAIT counts.
//! - [`process`]: facts about one process (systemd unit, start time, whether it shares our
//!   namespaces).
//! - [`netns`]: probes made from another process's network namespace (nginx in a container):
//!   a thread that joined it makes the sockets, [`netns::within`] says which probes use it.
//! - [`namespace`]: where a process stands: its network, mount and pid namespaces, the
//!   container its cgroup names, and the TCP listeners of its own network namespace; every
//!   network namespace on the host with its addresses and listeners, and which of them
//!   would accept a connection to a port.
//! - [`docker`]: what Docker's own files and processes say: each container's name, state,
//!   Compose labels, networks, addresses and ports (`/var/lib/docker/containers`), the
//!   ports `docker-proxy` publishes, and Docker's DNAT rules in `iptables-save` text.
//! - [`appserver`]: the app server behind an upstream (PHP-FPM, gunicorn, uWSGI, ...), its
//!   settings that matter for 502s, its log events, and kernel OOM kills.
//! - [`host`]: what the host's security and limits do to the worker: SELinux and AppArmor
//!   state, AVC and AppArmor denials, open files against RLIMIT_NOFILE.
//! - [`kmsg`]: the kernel log, read without blocking and within a bound.
//! - [`kernel`]: the few sysctls a 502 diagnosis needs (local port range, IPv6 on `lo`).
//! - [`dns`]: getaddrinfo (what nginx did at start, also as seen inside another process's
//!   mount namespace), direct queries to chosen nameservers, and queries exactly as nginx's
//!   `resolver` sends them.
//! - [`icmp`]: one ICMP echo, informational only.
//! - [`error`]: [`ProbeError`], a probe that could not run at all.
//!
//! Errors ([`ProbeError`]) mean the probe itself could not run (for example `/proc` is
//! unreadable). The crate never prints; it emits `tracing` events.
//!
//! All async probes need a tokio runtime with IO and time enabled.
#![deny(missing_docs)]

pub mod appserver;
pub mod connect;
pub mod dns;
pub mod docker;
pub mod error;
pub mod fastcgi;
pub mod gateway;
pub mod host;
pub mod http;
pub mod icmp;
pub mod kernel;
pub mod kmsg;
pub mod listeners;
pub mod namespace;
pub mod netns;
pub mod process;
pub mod scgi;
pub mod sniff;
pub mod stream;
pub mod tls;
pub mod unixsock;
pub mod uwsgi;

pub use connect::{ConnectOutcome, ConnectReport, connect_tcp, connect_unix};
pub use dns::{DnsAnswer, DnsFailure, resolve_system, resolve_with};
pub use error::ProbeError;
pub use icmp::{PingOutcome, ping};
pub use kernel::{ipv6_disabled_on_lo, local_port_range, somaxconn};
pub use listeners::{Listener, ListenerKind, listeners, listeners_on_port, time_wait_count};
pub use process::{process_start_time, systemd_unit_of};
pub use stream::{Endpoint, ReadEnd, ReadResult, Stream, open, read_bounded};
pub use unixsock::{
    Access, FileKind, Identity, PathEntry, SocketFileInfo, identity_of, identity_of_uid,
    inspect_socket_path, may_connect, mode_string,
};
