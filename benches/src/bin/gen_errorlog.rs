//! Writes a realistic nginx error log of a given size, deterministically (seeded).
//!
//! ```text
//! gen_errorlog OUT [--size BYTES] [--days DAYS] [--seed SEED] [--mix quiet|incident]
//!              [--end "YYYY/MM/DD HH:MM:SS"]
//! ```
//!
//! Defaults: 1 GiB over 7 days ending 2026/11/24 12:00:00, seed 502. `--size` accepts a
//! `K`, `M` or `G` suffix (powers of 1024).
//!
//! The mix is mostly noise that a busy site's error log has (missing static files, client
//! aborts, rate limiting, TLS handshake noise from scanners, oversized bodies, forbidden
//! paths, PHP stack-trace continuation lines) with about one line in five about an upstream:
//! the message shapes of docs/nginx-messages.md (refused, timed out, no live upstreams, premature close,
//! resets, a missing PHP-FPM socket, `FastCGI sent in stderr`, DNS failures, TLS to the
//! upstream) plus upstream lines that are not failures (499s with an `upstream:` field,
//! responses buffered to temporary files). Timestamps advance evenly over the days with
//! jitter, and now and then go back a second (two workers).
//!
//! `--mix incident` is the day of an incident: the upstream failures of every family weigh
//! six times as much (about 45 % of the lines), and their request and upstream fields are
//! long and distinct (ids, query strings, a session; thousands of upstream addresses).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use jiff::SignedDuration;
use jiff::civil::DateTime;

use fix502_benches::{GenArgs, Mix, Rng, run_generator};

const SERVERS: &[&str] = &[
    "example.com",
    "www.example.com",
    "shop.example.com",
    "api.example.com",
    "static.example.net",
];

const STATIC: &[&str] = &[
    "favicon.ico",
    "apple-touch-icon.png",
    "apple-touch-icon-precomposed.png",
    "robots.txt",
    "wp-login.php",
    ".env",
    "assets/css/app.min.css.map",
    "images/banner-2019.jpg",
    "sitemap.xml",
    "ads.txt",
    ".git/config",
    "xmlrpc.php",
    "static/js/vendor.3f9a1c.js",
];

const API: &[&str] = &[
    "/api/v1/items",
    "/api/v1/items/search",
    "/api/v2/orders",
    "/login",
    "/checkout",
    "/index.php",
    "/report.php",
    "/graphql",
    "/cart/add",
];

const PEERS: &[&str] = &[
    "10.0.0.5:8080",
    "10.0.0.6:8080",
    "10.0.3.17:3000",
    "127.0.0.1:8000",
    "[::1]:3000",
];

const AGENT_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/about",
    "/products?page=2",
    "/blog/2024/10/hello",
];

/// One line kind, its relative weight, and whether it is an upstream failure (weighed
/// six times as much in an incident).
struct Kind {
    weight: u64,
    failure: bool,
    write: fn(&mut Line<'_>),
}

/// What a line writer needs: the output, the random state, and the kind of day.
struct Line<'a> {
    out: &'a mut String,
    rng: &'a mut Rng,
    cid: u64,
    incident: bool,
}

impl Line<'_> {
    /// An upstream address: one of a few on a quiet day, one of thousands in an incident.
    fn peer(&mut self) -> String {
        if !self.incident {
            return self.rng.pick(PEERS).to_owned();
        }
        let port = [8080, 3000, 9000][self.rng.below(3) as usize];
        format!(
            "10.{}.{}.{}:{port}",
            self.rng.below(8),
            self.rng.below(16),
            1 + self.rng.below(20)
        )
    }

    /// A request path under `base`: as it is on a quiet day, long and distinct in an
    /// incident (ids, query strings, campaign tags, a session).
    fn uri(&mut self, base: &str) -> String {
        if !self.incident {
            return base.to_owned();
        }
        format!(
            "{base}/{}?expand=customer,shipping,items&page={}&utm_source=newsletter&utm_campaign=black-friday-{}&session={:016x}",
            self.rng.below(1_000_000),
            self.rng.below(50),
            self.rng.below(100),
            self.rng.next_u64()
        )
    }

    fn ip(&mut self) -> String {
        let r = self.rng.next_u64();
        format!(
            "{}.{}.{}.{}",
            1 + (r & 0x7f) as u8 + 80,
            (r >> 8) as u8,
            (r >> 16) as u8,
            1 + (r >> 24) as u8 % 254
        )
    }

    fn client(&mut self, server: &str) {
        let ip = self.ip();
        let _ = write!(self.out, ", client: {ip}, server: {server}");
    }

    fn request(&mut self, method: &str, uri: &str, host: &str) {
        let _ = write!(self.out, ", request: \"{method} {uri} HTTP/1.1\"");
        self.host_tail(host, uri);
    }

    /// `, upstream: "..."` then host (and sometimes referrer).
    fn request_upstream(&mut self, method: &str, uri: &str, host: &str, upstream: &str) {
        let _ = write!(
            self.out,
            ", request: \"{method} {uri} HTTP/1.1\", upstream: \"{upstream}\""
        );
        self.host_tail(host, uri);
    }

    fn host_tail(&mut self, host: &str, uri: &str) {
        let _ = write!(self.out, ", host: \"{host}\"");
        if self.rng.below(3) == 0 {
            let _ = write!(self.out, ", referrer: \"https://{host}{uri}\"");
        }
    }

    fn head(&mut self, level: &str) {
        let pid = 2417 + self.rng.below(4);
        let _ = write!(self.out, " [{level}] {pid}#{pid}: *{} ", self.cid);
    }
}

fn static_404(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let path = l.rng.pick(STATIC);
    let _ = write!(
        l.out,
        "open() \"/var/www/{server}/{path}\" failed (2: No such file or directory)"
    );
    l.client(server);
    l.request("GET", &format!("/{path}"), server);
}

fn client_abort(l: &mut Line<'_>) {
    l.head("info");
    let server = l.rng.pick(SERVERS);
    match l.rng.below(3) {
        0 => {
            l.out
                .push_str("client prematurely closed connection while reading client request line");
            let ip = l.ip();
            let _ = write!(l.out, ", client: {ip}, server: 0.0.0.0:443");
        }
        1 => {
            l.out
                .push_str("client prematurely closed connection while sending response to client");
            l.client(server);
            let uri = format!("/downloads/release-{}.tar.gz", l.rng.below(90));
            l.request("GET", &uri, server);
        }
        _ => {
            l.out.push_str(
                "client timed out (110: Connection timed out) while reading client request headers",
            );
            l.client(server);
            l.out.push_str(", request: \"GET / HTTP/1.1\"");
        }
    }
}

fn rate_limit(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let excess = l.rng.below(40_000);
    let _ = write!(
        l.out,
        "limiting requests, excess: {}.{:03} by zone \"perip\"",
        excess / 1000,
        excess % 1000
    );
    l.client(server);
    let uri = format!("{}?q={}", l.rng.pick(API), l.rng.below(100_000));
    l.request("GET", &uri, server);
}

fn tls_noise(l: &mut Line<'_>) {
    l.head("info");
    let ip = l.ip();
    match l.rng.below(4) {
        0 => l.out.push_str("SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking"),
        1 => l.out.push_str("peer closed connection in SSL handshake (104: Connection reset by peer) while SSL handshaking"),
        2 => l.out.push_str("SSL_do_handshake() failed (SSL: error:0A000102:SSL routines::unsupported protocol) while SSL handshaking"),
        _ => l.out.push_str("SSL_read() failed (SSL: error:0A000126:SSL routines::unexpected eof while reading) while keepalive"),
    }
    let _ = write!(l.out, ", client: {ip}, server: 0.0.0.0:443");
}

fn big_body(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let size = 1_048_577 + l.rng.below(50_000_000);
    let _ = write!(
        l.out,
        "client intended to send too large body: {size} bytes"
    );
    l.client(server);
    l.request("POST", "/upload", server);
}

fn forbidden(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    if l.rng.below(2) == 0 {
        l.out.push_str("access forbidden by rule");
        l.client(server);
        l.request("GET", "/.htaccess", server);
    } else {
        let _ = write!(
            l.out,
            "directory index of \"/var/www/{server}/static/\" is forbidden"
        );
        l.client(server);
        l.request("GET", "/static/", server);
    }
}

fn bad_request(l: &mut Line<'_>) {
    l.head("info");
    let server = l.rng.pick(SERVERS);
    l.out
        .push_str("client sent invalid method while reading client request line");
    l.client(server);
    l.out
        .push_str(", request: \"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03\"");
}

fn body_buffered(l: &mut Line<'_>) {
    l.head("warn");
    let server = l.rng.pick(SERVERS);
    let _ = write!(
        l.out,
        "a client request body is buffered to a temporary file /var/cache/nginx/client_temp/{:010}",
        l.rng.below(9_999_999_999)
    );
    l.client(server);
    l.request("POST", "/api/v2/orders", server);
}

fn php_continuation(l: &mut Line<'_>) {
    // A PHP stack trace inside `FastCGI sent in stderr` keeps its newlines: these lines have
    // no timestamp.
    l.out.clear();
    let _ = write!(
        l.out,
        "#{} /var/www/example.com/vendor/laravel/framework/src/Illuminate/Pipeline/Pipeline.php({}): Illuminate\\Pipeline\\Pipeline->Illuminate\\Pipeline\\{{closure}}(Object(Illuminate\\Http\\Request))",
        l.rng.below(40),
        100 + l.rng.below(100)
    );
}

/// Upstream lines that are not failures: a 499 with an `upstream:` field.
fn client_abort_upstream(l: &mut Line<'_>) {
    l.head("info");
    let server = l.rng.pick(SERVERS);
    let peer = l.peer();
    let base = l.rng.pick(API);
    let uri = l.uri(base);
    l.out.push_str("epoll_wait() reported that client prematurely closed connection, so upstream connection is closed too while sending request to upstream");
    l.client(server);
    l.request_upstream("GET", &uri, server, &format!("http://{peer}{uri}"));
}

fn buffered_upstream(l: &mut Line<'_>) {
    l.head("warn");
    let server = l.rng.pick(SERVERS);
    let peer = l.rng.pick(PEERS);
    let _ = write!(
        l.out,
        "an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/{}/{:02}/{:010} while reading upstream",
        l.rng.below(10),
        l.rng.below(100),
        l.rng.below(9_999_999_999)
    );
    l.client(server);
    l.request_upstream(
        "GET",
        "/export.csv",
        server,
        &format!("http://{peer}/export.csv"),
    );
}

fn refused(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let peer = l.peer();
    let base = l.rng.pick(API);
    let uri = l.uri(base);
    l.out
        .push_str("connect() failed (111: Connection refused) while connecting to upstream");
    l.client(server);
    l.request_upstream("GET", &uri, server, &format!("http://{peer}{uri}"));
}

fn timed_out(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let peer = l.peer();
    let base = l.rng.pick(API);
    let uri = l.uri(base);
    l.out.push_str("upstream timed out (110: Connection timed out) while reading response header from upstream");
    l.client(server);
    l.request_upstream("GET", &uri, server, &format!("http://{peer}{uri}"));
}

fn no_live(l: &mut Line<'_>) {
    l.head("error");
    let uri = l.rng.pick(API);
    l.out
        .push_str("no live upstreams while connecting to upstream");
    l.client("api.example.com");
    l.request_upstream(
        "GET",
        uri,
        "api.example.com",
        &format!("http://api_backend{uri}"),
    );
}

fn premature(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let peer = l.peer();
    let base = l.rng.pick(API);
    let uri = l.uri(base);
    l.out.push_str(
        "upstream prematurely closed connection while reading response header from upstream",
    );
    l.client(server);
    l.request_upstream("POST", &uri, server, &format!("http://{peer}{uri}"));
}

fn reset(l: &mut Line<'_>) {
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let peer = l.peer();
    let base = l.rng.pick(API);
    let uri = l.uri(base);
    l.out.push_str(
        "recv() failed (104: Connection reset by peer) while reading response header from upstream",
    );
    l.client(server);
    l.request_upstream("GET", &uri, server, &format!("http://{peer}{uri}"));
}

fn php_socket(l: &mut Line<'_>) {
    l.head("crit");
    l.out.push_str("connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream");
    l.client("example.com");
    l.request_upstream(
        "GET",
        "/index.php",
        "example.com",
        "fastcgi://unix:/run/php/php8.2-fpm.sock:",
    );
}

fn php_stderr(l: &mut Line<'_>) {
    l.head("error");
    let _ = write!(
        l.out,
        "FastCGI sent in stderr: \"PHP message: PHP Warning:  Undefined array key \"id\" in /var/www/example.com/item.php on line {}\" while reading response header from upstream",
        l.rng.below(400)
    );
    l.client("example.com");
    l.request_upstream(
        "GET",
        "/item.php?id=",
        "example.com",
        "fastcgi://unix:/run/php/php8.2-fpm.sock:",
    );
}

fn too_big_header(l: &mut Line<'_>) {
    l.head("error");
    l.out
        .push_str("upstream sent too big header while reading response header from upstream");
    l.client("shop.example.com");
    l.request_upstream(
        "POST",
        "/login",
        "shop.example.com",
        "http://10.0.3.17:3000/login",
    );
}

fn not_resolved(l: &mut Line<'_>) {
    l.head("error");
    l.out
        .push_str("backend.default.svc.cluster.local could not be resolved (3: Host not found)");
    l.client("_");
    l.request("GET", "/", "example.com");
}

fn disabled(l: &mut Line<'_>) {
    l.head("warn");
    let peer = l.rng.pick(PEERS);
    l.out
        .push_str("upstream server temporarily disabled while connecting to upstream");
    l.client("api.example.com");
    l.request_upstream(
        "GET",
        "/v1/items",
        "api.example.com",
        &format!("http://{peer}/v1/items"),
    );
}

fn upstream_tls(l: &mut Line<'_>) {
    l.head("error");
    l.out.push_str("SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version number) while SSL handshaking to upstream");
    l.client("shop.example.com");
    l.request_upstream("GET", "/", "shop.example.com", "https://10.0.0.5:8080/");
}

fn invalid_header(l: &mut Line<'_>) {
    l.head("error");
    l.out.push_str("upstream sent invalid header: \"X-Debug\\x01...\" while reading response header from upstream");
    l.client("api.example.com");
    l.request_upstream(
        "GET",
        "/api/v1/items",
        "api.example.com",
        "http://10.0.0.6:8080/api/v1/items",
    );
}

fn agent_404(l: &mut Line<'_>) {
    // A second common 404 shape: an index file missing under a location.
    l.head("error");
    let server = l.rng.pick(SERVERS);
    let path = l.rng.pick(AGENT_PATHS);
    let _ = write!(
        l.out,
        "\"/var/www/{server}/index.html\" is not found (2: No such file or directory)"
    );
    l.client(server);
    l.request("GET", path, server);
}

const KINDS: &[Kind] = &[
    // Noise: 80%.
    Kind {
        weight: 260,
        failure: false,
        write: static_404,
    },
    Kind {
        weight: 60,
        failure: false,
        write: agent_404,
    },
    Kind {
        weight: 120,
        failure: false,
        write: client_abort,
    },
    Kind {
        weight: 100,
        failure: false,
        write: rate_limit,
    },
    Kind {
        weight: 110,
        failure: false,
        write: tls_noise,
    },
    Kind {
        weight: 50,
        failure: false,
        write: big_body,
    },
    Kind {
        weight: 40,
        failure: false,
        write: forbidden,
    },
    Kind {
        weight: 30,
        failure: false,
        write: bad_request,
    },
    Kind {
        weight: 20,
        failure: false,
        write: body_buffered,
    },
    Kind {
        weight: 10,
        failure: false,
        write: php_continuation,
    },
    // About an upstream: 20%.
    Kind {
        weight: 40,
        failure: false,
        write: client_abort_upstream,
    },
    Kind {
        weight: 25,
        failure: false,
        write: buffered_upstream,
    },
    Kind {
        weight: 30,
        failure: true,
        write: refused,
    },
    Kind {
        weight: 25,
        failure: true,
        write: timed_out,
    },
    Kind {
        weight: 10,
        failure: true,
        write: no_live,
    },
    Kind {
        weight: 15,
        failure: true,
        write: premature,
    },
    Kind {
        weight: 10,
        failure: true,
        write: reset,
    },
    Kind {
        weight: 10,
        failure: true,
        write: php_socket,
    },
    Kind {
        weight: 10,
        failure: false,
        write: php_stderr,
    },
    Kind {
        weight: 5,
        failure: true,
        write: too_big_header,
    },
    Kind {
        weight: 5,
        failure: true,
        write: not_resolved,
    },
    Kind {
        weight: 5,
        failure: false,
        write: disabled,
    },
    Kind {
        weight: 5,
        failure: true,
        write: upstream_tls,
    },
    Kind {
        weight: 5,
        failure: true,
        write: invalid_header,
    },
];

/// Average line length, measured on each mix; only used to spread the timestamps.
const AVG_LINE: u64 = 250;
const AVG_LINE_INCIDENT: u64 = 360;

fn stamp(t: DateTime) -> String {
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn generate(args: &GenArgs) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&args.out)?);
    let mut rng = Rng(args.seed);
    let incident = args.mix == Mix::Incident;
    let weight = |k: &Kind| {
        if incident && k.failure {
            k.weight * 6
        } else {
            k.weight
        }
    };
    let total_weight: u64 = KINDS.iter().map(weight).sum();
    let span = i64::try_from(args.days * 86_400).unwrap_or(i64::MAX);
    let start = args
        .end
        .checked_sub(SignedDuration::from_secs(span))
        .unwrap_or(args.end);
    // Seconds per line, so that the last line lands near `end`.
    let avg = if incident {
        AVG_LINE_INCIDENT
    } else {
        AVG_LINE
    };
    let step = span as f64 / (args.size / avg).max(1) as f64;
    let mut clock = 0f64;
    let mut written = 0u64;
    let mut lines = 0u64;
    let mut line = String::with_capacity(4096);
    let mut cached: Option<(i64, String)> = None;
    while written < args.size {
        clock += step * (rng.below(2000) as f64 / 1000.0);
        let mut secs = (clock as i64).min(span);
        if rng.below(50) == 0 {
            secs = (secs - 1).max(0); // another worker's cached time, a second behind
        }
        if cached.as_ref().is_none_or(|(s, _)| *s != secs) {
            let t = start
                .checked_add(SignedDuration::from_secs(secs))
                .unwrap_or(args.end);
            cached = Some((secs, stamp(t)));
        }
        let mut pick = rng.below(total_weight);
        let kind = KINDS
            .iter()
            .find(|k| {
                if pick < weight(k) {
                    true
                } else {
                    pick -= weight(k);
                    false
                }
            })
            .unwrap_or(&KINDS[0]);
        line.clear();
        line.push_str(cached.as_ref().map_or("", |(_, s)| s));
        let mut l = Line {
            out: &mut line,
            rng: &mut rng,
            cid: 1000 + lines,
            incident,
        };
        (kind.write)(&mut l);
        line.push('\n');
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

fn main() -> ExitCode {
    run_generator("gen_errorlog", generate)
}
