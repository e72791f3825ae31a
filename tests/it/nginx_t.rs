//! `nginx -t` in a read-only run: `fix502 --step config` gives plain `nginx -t`'s verdict and
//! creates none of the files nginx -t writes (pid file, logs, temp directories). Needs root
//! (nginx -t as root is what writes, and the isolation needs a mount namespace): skipped with
//! a message otherwise.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::harness::{bin, parse_report, write};

/// The distribution's nginx, which the tests run.
pub const NGINX: &str = "/usr/sbin/nginx";

/// The paths the config below makes nginx -t write, relative to the prefix.
const WRITTEN: [&str; 8] = [
    "logs/nginx.pid",
    "logs/error.log",
    "logs/access.log",
    "tmp/body",
    "tmp/proxy",
    "tmp/fastcgi",
    "tmp/uwsgi",
    "tmp/scgi",
];

fn as_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root() && Path::new(NGINX).exists();
    if !root {
        eprintln!("skipping {test}: needs root and {NGINX}");
    }
    root
}

/// A prefix whose `conf/nginx.conf` names a pid file, logs and temp directories that do not
/// exist yet (their directories do); `broken` is put into the `location`.
fn prefix(broken: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write(
        &dir.path().join("conf/nginx.conf"),
        &format!(
            "worker_processes 1;\npid logs/nginx.pid;\nerror_log logs/error.log;\n\
             events {{ worker_connections 64; }}\nhttp {{\n    access_log logs/access.log;\n\
             client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n\
             fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n\
             scgi_temp_path tmp/scgi;\n    server {{\n        listen 127.0.0.1:{port};\n\
             location / {{ {broken}return 200; }}\n    }}\n}}\n"
        ),
    );
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    dir
}

fn run_config_step(dir: &Path) -> (Output, Value) {
    let out = bin()
        .args([
            "--non-interactive",
            "--json",
            "--step",
            "config",
            "--nginx",
            NGINX,
        ])
        .arg("--prefix")
        .arg(dir)
        .arg("--config")
        .arg(dir.join("conf/nginx.conf"))
        .output()
        .unwrap();
    let report = parse_report(&out);
    (out, report)
}

fn nginx_t_findings(report: &Value) -> Vec<Value> {
    report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["check"] == "config.nginx-t")
        .collect()
}

fn plain_nginx_t(dir: &Path) -> Output {
    Command::new(NGINX)
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-c")
        .arg(dir.join("conf/nginx.conf"))
        .arg("-t")
        .output()
        .unwrap()
}

/// nginx's lines without what changes from run to run (the time and `PID#TID: ` of lines in
/// the error-log format, as Debian's build writes them to stderr).
fn messages(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let line = line.trim();
            match (line.find('['), line.split_once("] ")) {
                (Some(i), Some((head, msg))) if line.starts_with(|c: char| c.is_ascii_digit()) => {
                    let msg = msg
                        .split_once(": ")
                        .filter(|(id, _)| id.contains('#'))
                        .map_or(msg, |(_, m)| m);
                    format!("{}] {msg}", &head[i..])
                }
                _ => line.to_owned(),
            }
        })
        .collect()
}

#[test]
fn config_step_tests_the_config_and_creates_nothing() {
    if !as_root("config_step_tests_the_config_and_creates_nothing") {
        return;
    }
    let dir = prefix("");
    let (_, report) = run_config_step(dir.path());
    let found = nginx_t_findings(&report);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["severity"], "info");
    let message = found[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.ends_with(": syntax is ok, test is successful"),
        "{message}"
    );
    for path in WRITTEN {
        assert!(
            !dir.path().join(path).exists(),
            "fix502 --step config created {path}"
        );
    }
    // Plain nginx -t passes too, and writes every one of them.
    let plain = plain_nginx_t(dir.path());
    assert!(plain.status.success());
    for path in WRITTEN {
        assert!(dir.path().join(path).exists(), "nginx -t creates {path}");
    }
}

#[test]
fn config_step_gives_plain_nginx_t_verdict_on_a_broken_config() {
    if !as_root("config_step_gives_plain_nginx_t_verdict_on_a_broken_config") {
        return;
    }
    let dir = prefix("no_such_directive on; ");
    let (out, report) = run_config_step(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let found = nginx_t_findings(&report);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f["severity"], "error");
    assert_eq!(f["cause"], "config-invalid");
    let conf = dir.path().join("conf/nginx.conf");
    let message = f["message"].as_str().unwrap_or_default();
    let verdict = message.strip_prefix("nginx -t fails: ").unwrap_or(message);
    // The pid nginx puts after the level differs from run to run.
    let verdict = match verdict.split_once("] ") {
        Some((level, rest)) => format!(
            "{level}] {}",
            rest.split_once(": ")
                .filter(|(id, _)| id.contains('#'))
                .map_or(rest, |(_, m)| m)
        ),
        None => verdict.to_owned(),
    };
    assert_eq!(
        verdict,
        format!(
            "[emerg] unknown directive \"no_such_directive\" in {}:14",
            conf.display()
        )
    );
    for path in WRITTEN {
        assert!(!dir.path().join(path).exists(), "created {path}");
    }
    // The evidence is nginx -t's own lines, as plain nginx -t prints them.
    let evidence: Vec<String> = f["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect();
    let plain = plain_nginx_t(dir.path());
    assert_eq!(plain.status.code(), Some(1));
    assert_eq!(
        messages(&evidence.join("\n")),
        messages(&String::from_utf8_lossy(&plain.stderr))
    );
}

#[test]
fn unisolated_nginx_t_is_reported_with_what_it_created() {
    if !as_root("unisolated_nginx_t_is_reported_with_what_it_created") {
        return;
    }
    // fix502 run as nobody cannot make a mount namespace: nginx -t runs as it is.
    use std::os::unix::fs::PermissionsExt;
    let dir = prefix("");
    let p = dir.path();
    for (sub, mode) in [("", 0o755), ("logs", 0o777), ("tmp", 0o777)] {
        std::fs::set_permissions(p.join(sub), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // umask 022, so that the modes below do not depend on the test runner's.
    let out = Command::new("/bin/sh")
        .args(["-c", "umask 022 && exec \"$@\"", "sh", "setpriv"])
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_fix502"))
        .args([
            "--non-interactive",
            "--json",
            "--step",
            "config",
            "--nginx",
            NGINX,
        ])
        .arg("--prefix")
        .arg(p)
        .arg("--config")
        .arg(p.join("conf/nginx.conf"))
        .env("NO_COLOR", "1")
        .env_remove("FIX502_LOG")
        .output()
        .unwrap();
    let report = parse_report(&out);
    let found = nginx_t_findings(&report);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(": syntax is ok, test is successful")),
        "{found:#?}"
    );
    assert_eq!(found[1]["severity"], "info");
    assert_eq!(
        found[1]["message"],
        "nginx -t could not be isolated (fix502 is not root) and changed 8 paths on this host"
    );
    let d = p.display();
    let mut expected = vec![
        format!("created the file {d}/logs/nginx.pid (owner nobody, mode 0644)"),
        format!("created the file {d}/logs/error.log (owner nobody, mode 0644)"),
        format!("created the file {d}/logs/access.log (owner nobody, mode 0644)"),
    ];
    for t in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        expected.push(format!(
            "created the directory {d}/tmp/{t} (owner nobody, mode 0700)"
        ));
    }
    assert_eq!(found[1]["evidence"], serde_json::json!(expected));
}
