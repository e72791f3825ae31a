//! Cross-checks `route::route` against the real nginx (/usr/sbin/nginx): one configuration
//! with servers on three loopback ports (address-specific and wildcard listens,
//! `default_server`, exact / wildcard / regex names, a name conflict, `merge_slashes`) and
//! many locations (`=`, `^~`, prefix, nested, regex order, `~*`, regex inside regex,
//! auto-redirect, `try_files` fallbacks), each answering `return 200 "<server> <location>"`.
//! Every request is sent to nginx over loopback and the answer must be what `route()`
//! predicts from the same configuration.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fix502_nginx::config::{Config, Span};
use fix502_nginx::route::{LocationHow, Request, Route, RouteError, route};
use fix502_nginx::view::{ConfigView, Location};

const NGINX: &str = "/usr/sbin/nginx";
const IO_TIMEOUT: Duration = Duration::from_secs(3);
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The configuration; `{A}`, `{B}`, `{C}` are ports and `{DIR}` the prefix.
const CONF: &str = r#"
user nobody nogroup;
worker_processes 1;
daemon off;
master_process on;
pid {DIR}/nginx.pid;
error_log {DIR}/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path {DIR}/tmp/body;
    proxy_temp_path {DIR}/tmp/proxy;
    fastcgi_temp_path {DIR}/tmp/fastcgi;
    uwsgi_temp_path {DIR}/tmp/uwsgi;
    scgi_temp_path {DIR}/tmp/scgi;
    root {DIR}/html;

    # Port A: a list for 127.0.0.1 and a wildcard list.
    server {
        listen 127.0.0.1:{A};
        server_name s1.test;
        location / { return 200 "s1 /"; }
    }
    server {
        listen 127.0.0.1:{A} default_server;
        server_name s2.test *.wild.test;
        location = / { return 200 "s2 =/"; }
        location / { return 200 "s2 /"; }
        location /a/ {
            return 200 "s2 /a/";
            location /a/b/ { return 200 "s2 /a/b/"; }
            location ~ \.gif$ { return 200 "s2 /a/~gif"; }
            location ^~ /a/nr/ { return 200 "s2 /a/^~nr/"; }
            location = /a/e { return 200 "s2 /a/=e"; }
        }
        location ^~ /static/ { return 200 "s2 ^~/static/"; }
        location /images/ { return 200 "s2 /images/"; }
        location ~ \.(gif|jpg)$ { return 200 "s2 ~gifjpg"; }
        location ~* \.PNG$ { return 200 "s2 ~*png"; }
        location ~ /ord/ { return 200 "s2 ~ord"; }
        location ~ /regex/ {
            return 200 "s2 ~regex";
            location /regex/p/ { return 200 "s2 ~regex/p/"; }
            location ~ \.txt$ { return 200 "s2 ~regex~txt"; }
        }
        location = /exact { return 200 "s2 =/exact"; }
        location /docs { return 200 "s2 /docs"; }
        location /api/ { proxy_pass http://127.0.0.1:9; }
        location = "/a b" { return 200 "s2 =/a b"; }
        location /tf/ { try_files /nope @named; }
        location /tf2/ { try_files /nope /index.php?$args; }
        location ~ \.php$ { return 200 "s2 ~php"; }
        location @named { return 200 "s2 @named"; }
    }
    server {
        listen {A};
        server_name s3.test .dot.test;
        location / { return 200 "s3 /"; }
    }
    server {
        listen {A};
        server_name ~^re(\d+)\.test$ www.tail.* *.dot.test s4.test ~^UP\d+\.test$;
        location / { return 200 "s4 /"; }
        location ~ \.php$ { return 200 "s4 ~php"; }
    }

    # Port B: wildcard only, no default_server; the first server sets merge_slashes.
    server {
        listen {B};
        server_name b1.test;
        merge_slashes off;
        location / { return 200 "b1 /"; }
    }
    server {
        listen {B};
        server_name b2.test *.b.test;
        location / { return 200 "b2 /"; }
        location /m/ { return 200 "b2 /m/"; }
    }
    server {
        listen {B};
        listen 127.0.0.1:{C} default_server;
        server_name b3.test www.b.*;
        location / { return 200 "b3 /"; }
    }

    # Port C: 127.0.0.1 only.
    server {
        listen 127.0.0.1:{C};
        server_name c1.test;
        location / { return 200 "c1 /"; }
    }
    server {
        listen 127.0.0.1:{C};
        location / { return 200 "c2 /"; }
    }
}
"#;

/// Which port a case uses.
#[derive(Clone, Copy, Debug)]
enum Port {
    A,
    B,
    C,
}

/// One request: (local address, port, Host, URI). `None` Host sends HTTP/1.0 without it.
type Case = (&'static str, Port, Option<&'static str>, &'static str);

const CASES: &[Case] = &[
    // Server selection on 127.0.0.1:A (specific list: s1, s2 default).
    ("127.0.0.1", Port::A, Some("s1.test"), "/"),
    ("127.0.0.1", Port::A, Some("S1.TEST."), "/x"),
    ("127.0.0.1", Port::A, Some("s1.test:1234"), "/x"),
    ("127.0.0.1", Port::A, Some("s3.test"), "/x"),
    ("127.0.0.1", Port::A, Some("x.wild.test"), "/x"),
    ("127.0.0.1", Port::A, Some("unknown.test"), "/x"),
    ("127.0.0.1", Port::A, Some("a..b"), "/x"),
    ("127.0.0.1", Port::A, Some(""), "/x"),
    ("127.0.0.1", Port::A, Some("s1.test.:80"), "/x"),
    // The host of an absolute request target wins over Host.
    ("127.0.0.1", Port::A, Some("s2.test"), "http://s1.test/x"),
    (
        "127.0.0.1",
        Port::A,
        Some("s1.test"),
        "http://s2.test:1/exact?x",
    ),
    // The wildcard list on another loopback address (s3 first, no default_server).
    ("127.0.0.2", Port::A, Some("s3.test"), "/x"),
    ("127.0.0.2", Port::A, Some("s1.test"), "/x"),
    ("127.0.0.2", Port::A, Some("re42.test"), "/x"),
    ("127.0.0.2", Port::A, Some("re.test"), "/x"),
    ("127.0.0.2", Port::A, Some("www.tail.example"), "/x"),
    ("127.0.0.2", Port::A, Some("a.dot.test"), "/x"),
    ("127.0.0.2", Port::A, Some("dot.test"), "/x"),
    ("127.0.0.2", Port::A, Some("s4.test"), "/x.php"),
    // A regex name with an uppercase letter is caseless; the host is lowercased.
    ("127.0.0.2", Port::A, Some("UP7.test"), "/x"),
    // `www.tail.*` needs a label after `www.tail.`.
    ("127.0.0.2", Port::A, Some("www.tail"), "/x"),
    ("127.0.0.2", Port::A, Some("[::1]:80"), "/x"),
    ("127.0.0.2", Port::A, None, "/x"),
    // Port B: head beats tail, first server is the default, its merge_slashes applies.
    ("127.0.0.1", Port::B, Some("b2.test"), "//m/x"),
    ("127.0.0.1", Port::B, Some("b2.test"), "/m/x"),
    ("127.0.0.1", Port::B, Some("x.b.test"), "/m/x"),
    ("127.0.0.1", Port::B, Some("www.b.org"), "/"),
    ("127.0.0.1", Port::B, Some("www.b.test"), "/"),
    ("127.0.0.1", Port::B, Some("nothing.test"), "/"),
    // Port C: "" (no Host) beats default_server; nothing listens on 127.0.0.2:C.
    ("127.0.0.1", Port::C, None, "/"),
    ("127.0.0.1", Port::C, Some("c1.test"), "/"),
    ("127.0.0.1", Port::C, Some("other.test"), "/"),
    ("127.0.0.2", Port::C, Some("c1.test"), "/"),
    // Locations of s2.
    ("127.0.0.1", Port::A, Some("s2.test"), "/"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/?q=1"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/exact"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/exact/more"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/static/a.gif"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/images/a.gif"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/images/a.css"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/x/A.png"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/x/a.png"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/b/c"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/b/c.gif"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/c.jpg"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/nr/x.jpg"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/nr/x.css"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/e"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/e/"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/ord/a.gif"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/ord/a.css"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/X/A.PNG"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/regex/x"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/regex/x.txt"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/regex/p/x"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/regex/p/x.txt"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/@named"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/docs/x"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/docsx"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/api"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a%20b"),
    (
        "127.0.0.1",
        Port::A,
        Some("s2.test"),
        "/x/..//a/./b/%2E%2E/b/c",
    ),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a%2Fb%2Fc"),
    (
        "127.0.0.1",
        Port::A,
        Some("s2.test"),
        "/static/../a/c.gif?q=/static/",
    ),
    ("127.0.0.1", Port::A, Some("s2.test"), "/tf/x"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/tf2/x"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/../x"),
    ("127.0.0.1", Port::A, Some("s2.test"), "/%2e%2E/x"),
    (
        "127.0.0.1",
        Port::A,
        Some("s2.test"),
        "/a/%2e%2e/static/x.gif",
    ),
    ("127.0.0.1", Port::A, Some("s2.test"), "/a/%00"),
];

/// What nginx answered.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Status and body (trimmed).
    Http(u16, String),
    /// The connection was refused.
    Refused,
}

/// The nginx master started by this test; stopped by its pid on drop.
struct Nginx {
    child: Child,
    error_log: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        fix502_lab::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGTERM,
            Duration::from_secs(10),
        );
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn start(dir: &Path, conf: &Path, probe_port: u16) -> Nginx {
    let mut child = Command::new(NGINX)
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let error_log = dir.join("error.log");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&error_log).unwrap_or_default();
            panic!("nginx exited at start-up ({status}):\n{log}");
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], probe_port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Nginx { child, error_log };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&error_log).unwrap_or_default();
            panic!("nginx did not listen within {START_TIMEOUT:?}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one request with bounded timeouts and reads the whole answer (at most 64 KiB).
fn ask(local: IpAddr, port: u16, host: Option<&str>, uri: &str) -> Answer {
    let addr = SocketAddr::new(local, port);
    let mut stream = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Answer::Refused,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let request = match host {
        Some(h) => format!("GET {uri} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"),
        None => format!("GET {uri} HTTP/1.0\r\n\r\n"),
    };
    stream.write_all(request.as_bytes()).expect("send");
    let mut buf = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .expect("read the answer");
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Answer::Http(status, body.trim_end().to_string())
}

/// The location block a route entry points at.
fn find<'a>(locations: &'a [Location], span: &Span) -> Option<&'a Location> {
    locations.iter().find_map(|l| {
        if &l.span == span {
            Some(l)
        } else {
            find(&l.locations, span)
        }
    })
}

/// What nginx answers according to `route()`: 301 for an auto-redirect, else the `return`
/// text of the handling location; 400 for invalid requests; refused without a listener.
fn predict(view: &ConfigView, routed: &Result<Route, RouteError>) -> Answer {
    match routed {
        Ok(r) => {
            let last = r.locations.last().expect("every server has `location /`");
            if last.how == LocationHow::AutoRedirect {
                // The body is nginx's 301 page; only the status is compared.
                return Answer::Http(301, String::new());
            }
            let server = &view.servers[r.server];
            let location = find(&server.locations, &last.span).expect("location of the route");
            let ret = location
                .settings
                .get("return")
                .unwrap_or_else(|| panic!("no return in {:?}", last.path));
            Answer::Http(200, ret.args[1].trim_end().to_string())
        }
        Err(RouteError::InvalidHost(_) | RouteError::InvalidUri(_)) => {
            Answer::Http(400, String::new())
        }
        Err(RouteError::NoServerForAddress(_)) => Answer::Refused,
        Err(e) => panic!("unexpected route error {e}"),
    }
}

#[test]
fn route_predicts_what_real_nginx_answers() {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} is missing: this suite checks route() against the real nginx 1.22"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    // The worker runs as nobody: let it traverse the prefix.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::create_dir_all(path.join("tmp")).expect("tmp dir");
    std::fs::create_dir_all(path.join("html")).expect("html dir");
    let (a, b, c) = (free_port(), free_port(), free_port());
    let text = CONF
        .replace("{DIR}", &path.display().to_string())
        .replace("{A}", &a.to_string())
        .replace("{B}", &b.to_string())
        .replace("{C}", &c.to_string());
    let conf = path.join("nginx.conf");
    std::fs::write(&conf, text).expect("write config");

    let config = Config::load(&conf).expect("load config");
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    let view = ConfigView::new(&config);

    let nginx = start(&path, &conf, c);
    let mut failures = Vec::new();
    for &(local, port, host, uri) in CASES {
        let port = match port {
            Port::A => a,
            Port::B => b,
            Port::C => c,
        };
        let local: IpAddr = local.parse().expect("ip");
        let routed = route(
            &view,
            &Request {
                local: Some(local),
                port,
                host: host.map(str::to_string),
                uri: uri.to_string(),
            },
        );
        let predicted = predict(&view, &routed);
        let mut answered = ask(local, port, host, uri);
        if let (Answer::Http(301 | 400, body), Answer::Http(_, _)) = (&mut answered, &predicted) {
            body.clear();
        }
        if predicted != answered {
            failures.push(format!(
                "{local}:{port} Host {host:?} {uri}: route() predicts {predicted:?}, nginx \
                 answered {answered:?} (route: {routed:?})"
            ));
        }
    }
    let log = std::fs::read_to_string(&nginx.error_log).unwrap_or_default();
    drop(nginx);
    assert!(
        failures.is_empty(),
        "{} of {} requests differ:\n{}\n--- nginx error log ---\n{log}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
