//! Writes a realistic nginx access log of a given size, deterministically (seeded), in the
//! upstream-timing `log_format` that fix502's lab uses (`UPSTREAM_LOG_FORMAT` in
//! crates/lab/src/config.rs; `scan_accesslog` reads with the same text).
//!
//! ```text
//! gen_accesslog OUT [--size BYTES] [--days DAYS] [--seed SEED] [--mix quiet|incident]
//!               [--end "YYYY/MM/DD HH:MM:SS"]
//! ```
//!
//! Defaults: 1 GiB over 7 days ending 2026/11/24 12:00:00, seed 502. `--size` accepts a
//! `K`, `M` or `G` suffix (powers of 1024).
//!
//! The mix is a busy site's: most requests proxied with a 200 in one attempt, static files
//! and cache hits served without an upstream (`ua="-"`), redirects and 4xx from the app,
//! client aborts (499), and about 3 % 502 and 1 % 504 in the shapes the access-log reader
//! tells apart: refused or reset by nginx (`us="502" uht="-"`), every server of a group
//! failing in turn (`502, 502`), 502s sent by the upstream itself (`uht` a number), `no live
//! upstreams` (the group name as address), `return 502` (no upstream), cached 502s, and
//! timeouts (`us="504"`). About 1.5 % of the 2xx are retries that hid a failure (`502, 200`)
//! and a few are internal redirects (`502 : 200`). User agents are long and now and then
//! carry nginx's `\x22` escapes; one line in about 2000 is garbage (a truncated line or
//! binary bytes). Timestamps advance evenly over the days (in proportion to the bytes
//! written), and now and then go back a second (two workers).
//!
//! `--mix incident` is the day of an incident: about 30 % of the lines are 5xx of every shape
//! above, and more are retries, some through an internal redirect (`a, b : c`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use jiff::SignedDuration;
use jiff::civil::DateTime;

use fix502_benches::{GenArgs, Mix, Rng, run_generator};

/// Seconds with millisecond precision, as nginx writes times: `0.012`.
fn secs(rng: &mut Rng, max_ms: u64) -> String {
    let ms = rng.below(max_ms.max(1));
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

const UPSTREAMS: &[&str] = &[
    "10.0.0.5:8080",
    "10.0.0.6:8080",
    "10.0.0.7:8080",
    "10.0.3.17:3000",
    "unix:/run/php/php8.2-fpm.sock",
];

const APP: &[&str] = &[
    "/api/v1/items",
    "/api/v1/items/search",
    "/api/v2/orders",
    "/login",
    "/checkout",
    "/index.php",
    "/report.php",
    "/graphql",
    "/cart/add",
    "/products",
    "/blog",
];

const STATIC: &[&str] = &[
    "/favicon.ico",
    "/robots.txt",
    "/assets/css/app.min.css",
    "/static/js/vendor.3f9a1c.js",
    "/images/banner-2019.jpg",
    "/fonts/inter-var.woff2",
    "/sitemap.xml",
];

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "Mozilla/5.0 \\x22scanner\\x22 (compatible; zgrab/0.x)",
];

const REFERERS: &[&str] = &[
    "-",
    "-",
    "-",
    "https://example.com/",
    "https://example.com/products?page=2",
    "https://www.google.com/",
];

/// What one line says about the request and its upstream attempts.
struct Shape {
    status: u16,
    /// `$upstream_addr`, `$upstream_status`, `$upstream_header_time`,
    /// `$upstream_response_time`, `$upstream_cache_status`.
    ua: String,
    us: String,
    uht: String,
    urt: String,
    ucs: &'static str,
    /// A static path instead of an app path.
    static_file: bool,
}

fn no_upstream(status: u16, ucs: &'static str, static_file: bool) -> Shape {
    Shape {
        status,
        ua: "-".into(),
        us: "-".into(),
        uht: "-".into(),
        urt: "-".into(),
        ucs,
        static_file,
    }
}

fn one_attempt(rng: &mut Rng, status: u16, header: bool, max_ms: u64) -> Shape {
    let uht = if header {
        secs(rng, max_ms / 2)
    } else {
        "-".into()
    };
    Shape {
        status,
        ua: rng.pick(UPSTREAMS).into(),
        us: status.to_string(),
        uht,
        urt: secs(rng, max_ms),
        ucs: "-",
        static_file: false,
    }
}

/// Two attempts: a failed first one (502 or 504), then `second` after `sep` (`, ` for the
/// next server, ` : ` after an internal redirect).
fn retried(rng: &mut Rng, first: u16, second: u16, sep: &str) -> Shape {
    let a = rng.pick(UPSTREAMS);
    let b = UPSTREAMS
        .iter()
        .find(|u| **u != a)
        .copied()
        .unwrap_or_default();
    let second_header = if second == 502 || second == 504 {
        "-".to_owned()
    } else {
        secs(rng, 80)
    };
    let first_time = if first == 504 {
        "60.001".to_owned()
    } else {
        secs(rng, 3)
    };
    Shape {
        status: second,
        ua: format!("{a}{sep}{b}"),
        us: format!("{first}{sep}{second}"),
        uht: format!("-{sep}{second_header}"),
        urt: format!("{first_time}{sep}{}", secs(rng, 120)),
        ucs: "-",
        static_file: false,
    }
}

/// Two attempts at the group's servers, then an internal redirect to a fallback
/// (`a, b : c`): `502, 502 : 200` or, when the fallback fails too, `: 502`.
fn retried_then_redirected(rng: &mut Rng) -> Shape {
    let [a, b, c] = [0, 1, 2].map(|i| UPSTREAMS.get(i).copied().unwrap_or_default());
    let last = if rng.below(3) == 0 { 502 } else { 200 };
    let last_header = if last == 200 {
        secs(rng, 80)
    } else {
        "-".into()
    };
    Shape {
        status: last,
        ua: format!("{a}, {b} : {c}"),
        us: format!("502, 502 : {last}"),
        uht: format!("-, - : {last_header}"),
        urt: format!("{}, {} : {}", secs(rng, 3), secs(rng, 3), secs(rng, 120)),
        ucs: "-",
        static_file: false,
    }
}

/// Picks the next line's shape; weights are per 10,000 lines. In an incident, 28 % of the
/// lines are drawn from the failures (5xx of every shape) and 6 % from the retries.
fn shape(rng: &mut Rng, mix: Mix) -> Shape {
    let roll = match (mix, rng.below(100)) {
        (Mix::Incident, 0..28) => 9510 + rng.below(490),
        (Mix::Incident, 28..31) => 9300 + rng.below(210),
        (Mix::Incident, 31..34) => return retried_then_redirected(rng),
        _ => rng.below(10_000),
    };
    match roll {
        // Proxied, one attempt, 200.
        0..5700 => one_attempt(rng, 200, true, 250),
        // Static files and cache hits: no upstream.
        5700..6900 => {
            let status = match rng.below(10) {
                0 => 404,
                1 | 2 => 304,
                _ => 200,
            };
            no_upstream(status, "-", true)
        }
        6900..7700 => no_upstream(200, "HIT", false),
        7700..8100 => {
            let mut s = one_attempt(rng, 200, true, 400);
            s.ucs = "MISS";
            s
        }
        // Redirects and client errors from the app.
        8100..8900 => {
            let status = [301, 302, 304, 401, 403, 404]
                .get(rng.below(6) as usize)
                .copied()
                .unwrap_or(404);
            one_attempt(rng, status, true, 100)
        }
        // Client aborts; a 500 from the app now and then.
        8900..9200 => {
            let mut s = one_attempt(rng, 499, false, 5000);
            s.us = "-".into();
            s
        }
        9200..9300 => one_attempt(rng, 500, true, 300),
        // Retries that hid a failure, internal redirects to a fallback.
        9300..9450 => retried(rng, 502, 200, ", "),
        9450..9480 => retried(rng, 504, 200, ", "),
        9480..9510 => retried(rng, 502, 200, " : "),
        // 502 made by nginx: refused or reset, no header.
        9510..9710 => one_attempt(rng, 502, false, 2),
        // Every server of the group failed in turn.
        9710..9790 => retried(rng, 502, 502, ", "),
        // 502 sent by the upstream itself.
        9790..9840 => one_attempt(rng, 502, true, 40),
        // no live upstreams: the group name as address.
        9840..9870 => Shape {
            status: 502,
            ua: "backend".into(),
            us: "502".into(),
            uht: "-".into(),
            urt: "0.000".into(),
            ucs: "-",
            static_file: false,
        },
        // `return 502` or a failed resolve: no upstream; a cached 502.
        9870..9885 => no_upstream(502, "-", false),
        9885..9890 => no_upstream(502, "HIT", false),
        // Timeouts: 504 after proxy_read_timeout.
        _ => {
            let mut s = one_attempt(rng, 504, false, 10);
            s.urt = "60.001".into();
            s
        }
    }
}

fn ip(rng: &mut Rng) -> String {
    let r = rng.next_u64();
    format!(
        "{}.{}.{}.{}",
        81 + (r & 0x7f) as u8,
        (r >> 8) as u8,
        (r >> 16) as u8,
        1 + (r >> 24) as u8 % 254
    )
}

fn write_line(line: &mut String, rng: &mut Rng, time: &str, mix: Mix) {
    if rng.below(2000) == 0 {
        // Garbage: a line cut by a crash, or binary noise from a misdirected client.
        if rng.below(2) == 0 {
            let _ = write!(line, "{} - - [{time}] \"GET /api/v1/it", ip(rng));
        } else {
            line.push_str("\u{1}\u{7f}\u{fffd}\u{16}\u{3}\u{1} garbage");
        }
        return;
    }
    let s = shape(rng, mix);
    let path = if s.static_file {
        rng.pick(STATIC).to_owned()
    } else {
        let base = rng.pick(APP);
        match rng.below(4) {
            0 => format!("{base}/{}", rng.below(100_000)),
            1 => format!("{base}?page={}&sort=price", rng.below(50)),
            _ => base.to_owned(),
        }
    };
    let method = if rng.below(8) == 0 { "POST" } else { "GET" };
    let bytes = match s.status {
        200 => 200 + rng.below(60_000),
        304 | 499 => 0,
        _ => 150 + rng.below(400),
    };
    let user = if rng.below(50) == 0 { "alice" } else { "-" };
    let _ = write!(
        line,
        "{ip} - {user} [{time}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{agent}\" ua=\"{ua}\" us=\"{us}\" uht=\"{uht}\" urt=\"{urt}\" ucs=\"{ucs}\"",
        ip = ip(rng),
        status = s.status,
        referer = rng.pick(REFERERS),
        agent = rng.pick(AGENTS),
        ua = s.ua,
        us = s.us,
        uht = s.uht,
        urt = s.urt,
        ucs = s.ucs,
    );
}

/// `$time_local`: `24/Nov/2026:10:00:01 +0000`.
fn time_local(t: DateTime) -> String {
    t.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

fn generate(args: &GenArgs) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&args.out)?);
    let mut rng = Rng(args.seed);
    let span = i64::try_from(args.days * 86_400).unwrap_or(i64::MAX);
    let start = args
        .end
        .checked_sub(SignedDuration::from_secs(span))
        .unwrap_or(args.end);
    let mut written = 0u64;
    let mut lines = 0u64;
    let mut line = String::with_capacity(4096);
    let mut cached: Option<(i64, String)> = None;
    while written < args.size {
        // Time grows with the bytes written, so the lines spread evenly up to `end`.
        let share = u128::from(written) * u128::from(span.unsigned_abs()) / u128::from(args.size);
        let mut secs = i64::try_from(share).unwrap_or(span).min(span);
        if rng.below(50) == 0 {
            secs = (secs - 1).max(0); // another worker's cached time, a second behind
        }
        if cached.as_ref().is_none_or(|(s, _)| *s != secs) {
            let t = start
                .checked_add(SignedDuration::from_secs(secs))
                .unwrap_or(args.end);
            cached = Some((secs, time_local(t)));
        }
        line.clear();
        write_line(
            &mut line,
            &mut rng,
            cached.as_ref().map_or("", |(_, s)| s),
            args.mix,
        );
        line.push('\n');
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

fn main() -> ExitCode {
    run_generator("gen_accesslog", generate)
}
