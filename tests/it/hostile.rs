//! The bad-input matrix: hostile command lines, files and environments, each run against the
//! real binary (and the real nginx where a run gets that far). Every case asserts the
//! contract's exit code, at most one line on stderr (exactly one, naming the problem, for a
//! usage error), no panic, a bounded time, and that stdout is empty or exactly one JSON
//! document. Some cases assert more: no secret quoted, a note that must be there.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::{bin, write};

/// The longest any case may take.
const BOUND: Duration = Duration::from_secs(45);
/// Words that must never appear on stdout or stderr: the planted secrets.
const SECRETS: [&str; 3] = ["SECRETHASH", "SECRETTOKEN", "SECRETCOOKIE"];

/// What a case must give.
enum Expect {
    /// Exit 2, nothing on stdout, one stderr line containing this.
    Usage(&'static str),
    /// One JSON report on stdout with one of these exit codes; at most one stderr line.
    Report(&'static [i32]),
}

/// More to check on a report: its text and its parsed form.
type Extra = fn(&str, &Value) -> Result<(), String>;

/// One hostile invocation.
struct Case {
    name: &'static str,
    args: Vec<OsString>,
    env: Vec<(&'static str, &'static str)>,
    cwd: Option<PathBuf>,
    expect: Expect,
    /// More to check on a report (stdout as text, and parsed).
    also: Option<Extra>,
}

fn case(name: &'static str, args: &[&str], expect: Expect) -> Case {
    Case {
        name,
        args: args.iter().map(OsString::from).collect(),
        env: Vec::new(),
        cwd: None,
        expect,
        also: None,
    }
}

fn path_case(name: &'static str, flag: &str, path: &Path, expect: Expect) -> Case {
    let mut c = case(name, &["--json", flag], expect);
    c.args.push(path.as_os_str().to_owned());
    c
}

/// The files the cases name: made once, in one temporary directory.
struct Fixtures {
    dir: tempfile::TempDir,
    /// Kept open so the socket file stays a live socket.
    _socket: std::os::unix::net::UnixListener,
}

impl Fixtures {
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn make() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let socket = std::os::unix::net::UnixListener::bind(d.join("socket")).expect("socket");
        std::os::unix::fs::symlink(d.join("fifo"), d.join("to-fifo")).unwrap();
        std::os::unix::fs::symlink(d.join("missing"), d.join("dangling")).unwrap();
        std::os::unix::fs::symlink(d.join("loop-b"), d.join("loop-a")).unwrap();
        std::os::unix::fs::symlink(d.join("loop-a"), d.join("loop-b")).unwrap();
        std::fs::create_dir(d.join("a-dir")).unwrap();
        std::fs::create_dir(d.join("logs")).unwrap();
        write(&d.join("not-executable"), "#!/bin/sh\nexit 0\n");
        // A root-only file with a planted secret, as /etc/shadow would be.
        write(
            &d.join("secret"),
            "root:$6$SECRETHASHxyz:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        );
        set_mode(&d.join("secret"), 0o600);
        std::os::unix::fs::symlink(d.join("secret"), d.join("logs/error-link.log")).unwrap();

        // nginx stand-ins: endless output, a crash, nonsense.
        write(&d.join("nginx-endless"), "#!/bin/sh\nexec yes nginx\n");
        write(&d.join("nginx-crash"), "#!/bin/sh\nkill -SEGV $$\n");
        write(
            &d.join("nginx-nonsense"),
            "#!/bin/sh\nhead -c 4096 /dev/urandom >&2\nexit 0\n",
        );
        for name in ["nginx-endless", "nginx-crash", "nginx-nonsense"] {
            set_mode(&d.join(name), 0o755);
        }

        let main = |extra: &str, http: &str| {
            format!(
                "error_log {d}/logs/error.log;\npid {d}/nginx.pid;\n{extra}\nevents {{}}\nhttp {{\n    access_log {d}/logs/access.log;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{http}\n}}\n",
                d = d.display()
            )
        };
        let server = "    server {\n        listen 127.0.0.1:18061;\n        location / { proxy_pass http://127.0.0.1:1; }\n    }";
        write(&d.join("healthy.conf"), &main("", server));
        write(&d.join("logs/error.log"), "");
        write(&d.join("logs/access.log"), "");

        // Configs that are not configs, or are configs of an absurd size or shape.
        let garbage: Vec<u8> = (0..65_536_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(d.join("garbage.conf"), &garbage).unwrap();
        std::fs::write(
            d.join("nul.conf"),
            b"events {}\nhttp {\0\0\0 server { listen 1\0; } }\n",
        )
        .unwrap();
        write(
            &d.join("deep.conf"),
            &format!(
                "events {{}}\n{}{}",
                "http {\n".repeat(20_000),
                "}\n".repeat(20_000)
            ),
        );
        write(
            &d.join("token.conf"),
            &format!("events {{}}\nhttp {{ {} }}\n", "x".repeat(1 << 20)),
        );
        write(
            &d.join("comments.conf"),
            &format!(
                "{}{}",
                "# a comment line of some length\n".repeat(160_000),
                main("", server)
            ),
        );
        write(
            &d.join("quote.conf"),
            "events {}\nhttp { server { server_name \"open ; } }\n",
        );
        write(
            &d.join("self.conf"),
            &format!("events {{}}\ninclude {}/self.conf;\n", d.display()),
        );
        write(
            &d.join("shadow.conf"),
            &main(&format!("include {}/secret;", d.display()), server),
        );
        std::fs::write(
            d.join("latin1.conf"),
            b"events {}\nhttp { server { server_name caf\xe9.example; list\xffen 80; } }\n",
        )
        .unwrap();
        write(
            &d.join("wide.conf"),
            &format!(
                "events {{}}\nhttp {{ server {{ server_name {}; }} }}\n",
                (0..20_000)
                    .map(|i| format!("h{i}.example"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
        write(
            &d.join("badport.conf"),
            &main("", "    server {\n        listen 127.0.0.1:70000;\n    }"),
        );
        let many: String = (1..=1000)
            .map(|i| format!("        server 127.0.0.1:{};\n", 20_000 + i))
            .collect();
        write(
            &d.join("many.conf"),
            &main(
                "",
                &format!(
                    "    upstream many {{\n{many}    }}\n    server {{\n        listen 127.0.0.1:18062;\n        location / {{ proxy_pass http://many; }}\n    }}"
                ),
            ),
        );
        write(
            &d.join("creds.conf"),
            &main(
                "",
                "    server {\n        listen 127.0.0.1:18063;\n        location / {\n            proxy_set_header Authorization \"Bearer SECRETTOKEN\";\n            proxy_set_header Cookie \"sid=SECRETCOOKIE\";\n            proxy_pass http://user:SECRETTOKEN@127.0.0.1:1;\n        }\n    }",
            ),
        );

        // Logs that are not logs, or are logs of a bad day.
        let now = jiff::ZonedDateTime::now()
            .strftime("%Y/%m/%d %H:%M:%S")
            .to_string();
        let mut binary = garbage.clone();
        binary.extend_from_slice(b"\nroot:$6$SECRETHASHabc:19000::\n");
        std::fs::write(d.join("logs/binary.log"), &binary).unwrap();
        std::fs::write(d.join("logs/one-line.log"), vec![b'x'; 20 << 20]).unwrap();
        write(
            &d.join("logs/future.log"),
            "9999/12/31 23:59:59 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:1/\", host: \"s\"\n2031/01/01 00:00:00 [error] 7#7: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: s, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:1/\", host: \"s\"\n",
        );
        write(
            &d.join("logs/tokens.log"),
            &format!(
                "{now} [error] 7#7: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: s, request: \"GET /account/delete?id=1&token=SECRETTOKEN HTTP/1.1\", upstream: \"http://127.0.0.1:1/account/delete?id=1&token=SECRETTOKEN\", host: \"s\"\n"
            ),
        );
        write(
            &d.join("logs/wide-access.log"),
            &format!(
                "127.0.0.1 - - [06/Dec/2026:10:00:00 +0000] \"GET /{} HTTP/1.1\" 502 157 \"-\" \"curl\"\n",
                "a".repeat(100_000)
            ),
        );
        std::fs::write(
            d.join("logs/nul-access.log"),
            b"127.0.0.1 - - [06/Dec/2026:10:00:00 +0000] \"GET /\0\0 HTTP/1.1\" 502 1 \"-\" \"\xff\xfe\"\n\0\0\0\n",
        )
        .unwrap();
        Self {
            dir,
            _socket: socket,
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every case of the matrix.
fn cases(f: &Fixtures) -> Vec<Case> {
    use Expect::{Report, Usage};
    const ANY: &[i32] = &[0, 1, 3];
    const PROBLEM: &[i32] = &[1];
    let mut out = vec![
        // Flags and values.
        case("unknown flag", &["--bogus"], Usage("--bogus")),
        case("unknown short flag", &["-x"], Usage("-x")),
        case(
            "since: a word",
            &["--since", "soon"],
            Usage("not a duration"),
        ),
        case("since: zero", &["--since", "0s"], Usage("out of range")),
        case(
            "since: under a second",
            &["--since", "500ms"],
            Usage("out of range"),
        ),
        case(
            "since: over a year",
            &["--since", "367d"],
            Usage("out of range"),
        ),
        case("since: negative", &["--since=-5m"], Usage("-5m")),
        case("since: empty", &["--since", ""], Usage("not a duration")),
        case(
            "since: overflow",
            &["--since", "99999999999999999999d"],
            Usage("99999999999999999999d"),
        ),
        case(
            "since: exponent",
            &["--since", "1e3s"],
            Usage("not a duration"),
        ),
        case("since: space", &["--since", "1 h"], Usage("not a duration")),
        case(
            "since: no unit",
            &["--since", "60"],
            Usage("not a duration"),
        ),
        case("timeout: zero", &["--timeout", "0s"], Usage("out of range")),
        case(
            "timeout: a microsecond",
            &["--timeout", "0.000001ms"],
            Usage("0.000001ms"),
        ),
        case(
            "timeout: under 10ms",
            &["--timeout", "9ms"],
            Usage("out of range"),
        ),
        case(
            "timeout: over 10m",
            &["--timeout", "11m"],
            Usage("out of range"),
        ),
        case(
            "timeout: no unit",
            &["--timeout", "5"],
            Usage("not a duration"),
        ),
        case(
            "timeout: two points",
            &["--timeout", "1.5.5s"],
            Usage("not a duration"),
        ),
        case(
            "timeout: infinity",
            &["--timeout", "infs"],
            Usage("not a duration"),
        ),
        case(
            "timeout: NaN",
            &["--timeout", "NaNms"],
            Usage("not a duration"),
        ),
        case("step: unknown", &["--step", "nope"], Usage("not a step")),
        case("step: empty", &["--step", ""], Usage("not a step")),
        case(
            "step: a list",
            &["--step", "logs,upstream"],
            Usage("not a step"),
        ),
        case(
            "url: another scheme",
            &["--url", "ftp://example.com/"],
            Usage("ftp"),
        ),
        case(
            "url: a space",
            &["--url", "http://exa mple.com/"],
            Usage("--url"),
        ),
        case(
            "url: broken IPv6",
            &["--url", "http://[::1/"],
            Usage("--url"),
        ),
        case(
            "url: port out of range",
            &["--url", "http://example.com:99999/"],
            Usage("--url"),
        ),
        case("url: empty", &["--url", ""], Usage("--url")),
        case(
            "url: a bare word",
            &["--url", "notaurl"],
            Usage("not a URL"),
        ),
        case("config without its value", &["--config"], Usage("--config")),
        case("a flag twice", &["--json", "--json"], Usage("--json")),
        case(
            "lab: unknown scenario",
            &["lab", "run", "nope"],
            Usage("no lab scenario"),
        ),
        case("lab: no scenario", &["lab", "run"], Usage("<NAME>")),
        case(
            "lab with a run flag",
            &["--apply", "lab", "list"],
            Usage("lab"),
        ),
        case(
            "lab list with a flag",
            &["lab", "list", "--config", "x"],
            Usage("--config"),
        ),
        // Named inputs that are not regular files, or not there.
        case(
            "config: missing",
            &["--json", "--config", "/nonexistent/nginx.conf"],
            Usage("/nonexistent/nginx.conf"),
        ),
        path_case(
            "config: a directory",
            "--config",
            &f.p("a-dir"),
            Usage("is a directory"),
        ),
        path_case(
            "config: a FIFO",
            "--config",
            &f.p("fifo"),
            Usage("is a FIFO"),
        ),
        path_case(
            "config: /dev/zero",
            "--config",
            Path::new("/dev/zero"),
            Usage("is a device"),
        ),
        path_case(
            "config: /dev/null",
            "--config",
            Path::new("/dev/null"),
            Usage("is a device"),
        ),
        path_case(
            "config: a socket",
            "--config",
            &f.p("socket"),
            Usage("is a socket"),
        ),
        path_case(
            "config: a link to a FIFO",
            "--config",
            &f.p("to-fifo"),
            Usage("is a FIFO"),
        ),
        path_case(
            "config: a dangling link",
            "--config",
            &f.p("dangling"),
            Usage("dangling"),
        ),
        path_case(
            "config: a link loop",
            "--config",
            &f.p("loop-a"),
            Usage("loop-a"),
        ),
        path_case(
            "config: a name too long",
            "--config",
            &f.p(&"n".repeat(5000)),
            Usage("cannot read"),
        ),
        path_case(
            "error log: a FIFO",
            "--error-log",
            &f.p("fifo"),
            Usage("is a FIFO"),
        ),
        path_case(
            "error log: /dev/urandom",
            "--error-log",
            Path::new("/dev/urandom"),
            Usage("is a device"),
        ),
        path_case(
            "error log: /dev/zero",
            "--error-log",
            Path::new("/dev/zero"),
            Usage("is a device"),
        ),
        path_case(
            "error log: stdin",
            "--error-log",
            Path::new("/proc/self/fd/0"),
            Usage("is a device"),
        ),
        path_case(
            "error log: a directory",
            "--error-log",
            &f.p("a-dir"),
            Usage("is a directory"),
        ),
        path_case(
            "error log: missing",
            "--error-log",
            &f.p("missing.log"),
            Usage("missing.log"),
        ),
        path_case(
            "access log: a FIFO",
            "--access-log",
            &f.p("fifo"),
            Usage("is a FIFO"),
        ),
        path_case(
            "access log: /dev/zero",
            "--access-log",
            Path::new("/dev/zero"),
            Usage("is a device"),
        ),
        path_case(
            "access log: a directory",
            "--access-log",
            &f.p("a-dir"),
            Usage("is a directory"),
        ),
        path_case(
            "nginx: missing",
            "--nginx",
            &f.p("no-nginx"),
            Usage("no such file"),
        ),
        path_case(
            "nginx: a directory",
            "--nginx",
            &f.p("a-dir"),
            Usage("is a directory"),
        ),
        path_case(
            "nginx: not executable",
            "--nginx",
            &f.p("not-executable"),
            Usage("not executable"),
        ),
        path_case("nginx: a FIFO", "--nginx", &f.p("fifo"), Usage("is a FIFO")),
        path_case(
            "prefix: a file",
            "--prefix",
            &f.p("healthy.conf"),
            Usage("not a directory"),
        ),
        path_case(
            "prefix: missing",
            "--prefix",
            &f.p("no-prefix"),
            Usage("not a directory"),
        ),
    ];
    let mut non_utf8 = case("since: not UTF-8", &["--since"], Usage("UTF-8"));
    non_utf8.args.push(OsString::from_vec(b"1\xffh".to_vec()));
    out.push(non_utf8);
    let mut non_utf8 = case(
        "config: a name not in UTF-8",
        &["--json", "--config"],
        Usage("cannot read"),
    );
    non_utf8
        .args
        .push(OsString::from_vec(b"/nonexistent/\xff.conf".to_vec()));
    out.push(non_utf8);

    // Runs that get as far as a report: hostile configs, logs, binaries, environments.
    let with = |name: &'static str, config: &str, extra: &[&str], expect: Expect| {
        let mut c = case(
            name,
            &[
                "--json",
                "--timeout",
                "300ms",
                "--nginx",
                super::nginx_t::NGINX,
                "--config",
            ],
            expect,
        );
        c.args.push(f.p(config).into_os_string());
        c.args.extend(extra.iter().map(OsString::from));
        c
    };
    let log = |name: &'static str, flag: &'static str, file: &str, expect: Expect| {
        let file = f.p(file).display().to_string();
        let mut c = with(name, "healthy.conf", &["--step", "logs", flag], expect);
        c.args.push(file.into());
        c
    };
    let mut relative = case(
        "config: a relative path",
        &[
            "--json",
            "--timeout",
            "300ms",
            "--step",
            "config",
            "--config",
            "./healthy.conf",
        ],
        Report(ANY),
    );
    relative.cwd = Some(f.dir.path().to_path_buf());
    relative.also = Some(|_, r| no_cause(r, "config-invalid"));
    out.push(relative);
    out.extend([
        with("config: random bytes", "garbage.conf", &[], Report(PROBLEM)),
        with("config: NUL bytes", "nul.conf", &[], Report(PROBLEM)),
        with(
            "config: 20,000 nested blocks",
            "deep.conf",
            &[],
            Report(PROBLEM),
        ),
        with("config: a 1 MiB token", "token.conf", &[], Report(PROBLEM)),
        with(
            "config: 5 MB of comments",
            "comments.conf",
            &["--step", "config"],
            Report(ANY),
        ),
        with("config: an open quote", "quote.conf", &[], Report(PROBLEM)),
        with("config: includes itself", "self.conf", &[], Report(PROBLEM)),
        with(
            "config: includes a secret file",
            "shadow.conf",
            &[],
            Report(PROBLEM),
        ),
        with("config: Latin-1 bytes", "latin1.conf", &[], Report(PROBLEM)),
        with(
            "config: 20,000 server names",
            "wide.conf",
            &[],
            Report(PROBLEM),
        ),
        with("config: port 70000", "badport.conf", &[], Report(PROBLEM)),
        with(
            "config: 1,000 upstream servers",
            "many.conf",
            &[],
            Report(ANY),
        ),
        with(
            "config: credentials in directives",
            "creds.conf",
            &[],
            Report(ANY),
        ),
        with(
            "only the restart step",
            "healthy.conf",
            &["--step", "restart"],
            Report(ANY),
        ),
        with(
            "url: 64 KiB long",
            "healthy.conf",
            &[
                "--url",
                &format!("http://127.0.0.1:18061/{}", "p".repeat(65_536)),
            ],
            Report(ANY),
        ),
        log(
            "error log: binary",
            "--error-log",
            "logs/binary.log",
            Report(ANY),
        ),
        log(
            "error log: a link to a secret",
            "--error-log",
            "logs/error-link.log",
            Report(ANY),
        ),
        log(
            "error log: one 20 MiB line",
            "--error-log",
            "logs/one-line.log",
            Report(ANY),
        ),
        log(
            "access log: a 100 KB line",
            "--access-log",
            "logs/wide-access.log",
            Report(ANY),
        ),
        log(
            "access log: NUL bytes",
            "--access-log",
            "logs/nul-access.log",
            Report(ANY),
        ),
    ]);
    let mut bounds = case(
        "boundaries: since 366d, timeout 10ms",
        &["--json", "--since", "366d", "--timeout", "10ms", "--config"],
        Report(ANY),
    );
    bounds.args.push(f.p("healthy.conf").into_os_string());
    out.push(bounds);
    let mut future = log(
        "error log: dated 2031 and 9999",
        "--error-log",
        "logs/future.log",
        Report(ANY),
    );
    future.also = Some(|text, _| {
        contains(text, "2 lines dated after now were left out of the window")?;
        no_text(text, "connection refused errors")
    });
    out.push(future);
    let mut thrice = log(
        "error log: the same file three times",
        "--error-log",
        "logs/tokens.log",
        Report(ANY),
    );
    let again = f.p("logs/tokens.log").into_os_string();
    thrice.args.extend([
        "--error-log".into(),
        again.clone(),
        "--error-log".into(),
        again,
    ]);
    thrice.also = Some(|_, r| {
        let infos = r["steps"][0]["findings"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|f| {
                    f["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("tokens.log:"))
                })
                .count()
        });
        if infos == 1 {
            Ok(())
        } else {
            Err(format!("tokens.log reported {infos} times"))
        }
    });
    out.push(thrice);
    for (name, nginx, extra) in [
        ("nginx: prints without end", "nginx-endless", None),
        ("nginx: crashes", "nginx-crash", Some("signal 11")),
        ("nginx: prints noise", "nginx-nonsense", None),
    ] {
        let mut c = case(
            name,
            &["--json", "--timeout", "300ms", "--config"],
            Report(ANY),
        );
        c.args.push(f.p("healthy.conf").into_os_string());
        c.args.push("--nginx".into());
        c.args.push(f.p(nginx).into_os_string());
        if extra.is_some() {
            c.also = Some(|text, _| contains(text, "crashed with signal 11"));
        }
        out.push(c);
    }
    let mut filter = with(
        "FIX502_LOG: nonsense",
        "healthy.conf",
        &["--step", "logs"],
        Report(ANY),
    );
    filter.env.push(("FIX502_LOG", "garbage[[=,"));
    out.push(filter);
    out
}

fn contains(text: &str, needle: &str) -> Result<(), String> {
    if text.contains(needle) {
        Ok(())
    } else {
        Err(format!("{needle:?} missing"))
    }
}

fn no_text(text: &str, needle: &str) -> Result<(), String> {
    if text.contains(needle) {
        Err(format!("{needle:?} should not be there"))
    } else {
        Ok(())
    }
}

fn no_cause(report: &Value, cause: &str) -> Result<(), String> {
    let causes = super::harness::causes(report);
    if causes.iter().any(|c| c == cause) {
        Err(format!("{cause} diagnosed: {causes:?}"))
    } else {
        Ok(())
    }
}

/// Runs one case under the time bound; the problems found, if any.
fn run(c: &Case) -> Result<(), String> {
    let out_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (out_path, err_path) = (out_dir.path().join("out"), out_dir.path().join("err"));
    let mut cmd = bin();
    cmd.args(&c.args)
        .envs(c.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&err_path).map_err(|e| e.to_string())?);
    if let Some(cwd) = &c.cwd {
        cmd.current_dir(cwd);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    // Bounded: polled until the bound, then killed by its pid.
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {BOUND:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = std::fs::read_to_string(&out_path).map_err(|e| format!("stdout: {e}"))?;
    let stderr = std::fs::read_to_string(&err_path).map_err(|e| format!("stderr: {e}"))?;
    let code = status.code();
    let mut problems = Vec::new();
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push("a panic".to_owned());
    }
    for secret in SECRETS {
        if stdout.contains(secret) || stderr.contains(secret) {
            problems.push(format!("the secret {secret} is quoted"));
        }
    }
    let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
    match &c.expect {
        Expect::Usage(needle) => {
            if code != Some(2) {
                problems.push(format!("exit {code:?}, not 2"));
            }
            if !stdout.is_empty() {
                problems.push("something on stdout".to_owned());
            }
            // One line says what is wrong; a bad flag's is followed by clap's usage line
            // and its hint, nothing else.
            let first = stderr.lines().next().unwrap_or_default();
            let rest_is_help = stderr.lines().skip(1).all(|l| {
                l.trim().is_empty()
                    || l.starts_with("tip:")
                    || l.starts_with("Usage:")
                    || l.starts_with("For more information")
            });
            if lines > 5
                || !rest_is_help
                || !first.starts_with("fix502: ")
                || !first.contains(needle)
            {
                problems.push(format!("stderr is not one line with {needle:?}"));
            }
        }
        Expect::Report(codes) => {
            if !code.is_some_and(|c| codes.contains(&c)) {
                problems.push(format!("exit {code:?}, not one of {codes:?}"));
            }
            if lines > 1 && c.env.is_empty() {
                problems.push(format!("{lines} lines on stderr"));
            }
            match serde_json::from_str::<Value>(&stdout) {
                Ok(report) => {
                    if let Some(also) = c.also
                        && let Err(e) = also(&stdout, &report)
                    {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("stdout is not one JSON document: {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (exit {code:?}, {:.1} s)\n      stderr: {}",
            problems.join("; "),
            start.elapsed().as_secs_f64(),
            stderr
                .trim()
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        ))
    }
}

#[test]
fn every_hostile_input_gets_one_line_the_right_code_and_no_hang() {
    let fixtures = Fixtures::make();
    let all = cases(&fixtures);
    assert!(all.len() >= 60, "the matrix has {} cases", all.len());
    let queue = Mutex::new(all.iter().collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while let Some(c) = queue.lock().unwrap().pop() {
                    if let Err(e) = run(c) {
                        failures.lock().unwrap().push(format!("{}: {e}", c.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n  {}",
        failures.len(),
        all.len(),
        failures.join("\n  ")
    );
}
