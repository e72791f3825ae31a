//! `fix502 collect` and `fix502 fleet` on a real nginx: a bundle holds the report, nginx -T,
//! the log windows and the processes; a planted secret of every redaction kind appears in no
//! member; the size cap keeps a big log's newest lines and says what it cut; `fleet` reads
//! bundles and JSON reports into one table and refuses what is not one, in one line.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::{Nginx, bin, lab};

/// Unpacks `bundle` into `into` with the system's tar, and returns every file's path.
fn unpack(bundle: &Path, into: &Path) -> Vec<PathBuf> {
    let status = Command::new("tar")
        .arg("xzf")
        .arg(bundle)
        .arg("-C")
        .arg(into)
        .status()
        .expect("run tar");
    assert!(
        status.success(),
        "tar could not unpack {}",
        bundle.display()
    );
    let mut files = Vec::new();
    let mut dirs = vec![into.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest.json"))
        .expect("manifest is JSON")
}

/// `fix502 collect` with `args`; it must succeed.
fn collect(args: &[&str]) -> String {
    let out = bin()
        .arg("collect")
        .args(args)
        .output()
        .expect("run collect");
    assert_eq!(
        out.status.code(),
        Some(0),
        "collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A GET through nginx at `port` (the status line only matters to nginx's logs).
fn get(port: u16, target: &str) {
    use std::io::{Read, Write};
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let _ = write!(s, "GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let _ = s.read_to_end(&mut Vec::new());
    }
}

#[test]
fn a_bundle_holds_what_the_engine_read_and_no_planted_secret() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path();
    let secrets = [
        "S1-header-secret",
        "S2-url-secret",
        "S3-query-secret",
        "S4-key-secret",
        "S5-param-secret",
        "S6-env-secret",
        "S7-assign-secret",
        "internal-4242",
    ];
    let nginx = Nginx::start(
        &format!(
            "error_log {}/error.log;\nenv API_TOKEN=S6-env-secret;",
            logs.display()
        ),
        &format!(
            "    # mirror: https://admin:S2-url-secret@backup.example/ for internal-4242
    # deploy: password = S7-assign-secret
    # -----BEGIN PRIVATE KEY-----
    # S4-key-secret
    # -----END PRIVATE KEY-----
    server {{
        listen 127.0.0.1:{port};
        access_log {}/access.log;
        location / {{
            proxy_set_header Authorization \"Bearer S1-header-secret\";
            fastcgi_param DB_PASSWORD S5-param-secret;
            proxy_pass http://127.0.0.1:1;
        }}
    }}",
            logs.display()
        ),
        std::process::Stdio::null(),
    );
    get(port, "/account?user=bob&token=S3-query-secret");
    let bundle = tmp.path().join("b.tar.gz");
    let config = nginx.config();
    let summary = collect(&[
        "--config",
        config.to_str().unwrap(),
        "--output",
        bundle.to_str().unwrap(),
        "--redact",
        "internal-[0-9]+",
    ]);
    assert!(summary.starts_with("Wrote "), "{summary}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&bundle).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "a bundle is its owner's alone");
    let out = tempfile::tempdir().unwrap();
    let files = unpack(&bundle, out.path());
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(out.path()).unwrap().display().to_string())
        .collect();
    for wanted in ["report.json", "manifest.json", "nginx/T.txt", "nginx/V.txt"] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("logs/error/")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("logs/access/")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("sockets/")), "{names:?}");
    // The planted request is in the window: its line is there, its secret is not.
    let access: String = files
        .iter()
        .filter(|f| f.display().to_string().contains("/logs/access/"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(access.contains("GET /account?user=…&token=…"), "{access}");
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        for s in secrets {
            assert!(!text.contains(s), "{s} is in {}:\n{text}", f.display());
        }
    }
    let m = manifest(out.path());
    assert_eq!(m["bundle_version"], 1);
    assert_eq!(m["redaction"]["enabled"], true);
    // Every kind but `Name: value` headers, which a config does not hold.
    for kind in fix502_core::bundle::KINDS
        .iter()
        .filter(|k| **k != "credential-header")
    {
        assert!(
            m["redaction"]["kinds"][kind]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{kind}: {}",
            m["redaction"]
        );
    }
    // --no-redact keeps them, and says so.
    let raw = tmp.path().join("raw.tar.gz");
    collect(&[
        "--config",
        config.to_str().unwrap(),
        "--output",
        raw.to_str().unwrap(),
        "--no-redact",
    ]);
    let out = tempfile::tempdir().unwrap();
    unpack(&raw, out.path());
    assert_eq!(manifest(out.path())["redaction"]["enabled"], false);
    let dump = std::fs::read_to_string(out.path().join("nginx/T.txt")).unwrap();
    assert!(dump.contains("S1-header-secret"), "{dump}");
}

#[test]
fn the_size_cap_keeps_a_big_log_s_newest_lines_and_says_what_it_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("error.log");
    // nginx's local time, as `date` gives it.
    let stamp = Command::new("date")
        .arg("+%Y/%m/%d %H:%M:%S")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap();
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            "{stamp} [error] 7#7: *{i} connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:1/\"\n"
        ));
    }
    text.push_str(&format!("{stamp} [error] 7#7: *99999 the newest line\n"));
    std::fs::write(&log, &text).unwrap();
    let nginx = Nginx::start(
        &format!("error_log {};", log.display()),
        "",
        std::process::Stdio::null(),
    );
    let bundle = tmp.path().join("b.tar.gz");
    collect(&[
        "--config",
        nginx.config().to_str().unwrap(),
        "--error-log",
        log.to_str().unwrap(),
        "--output",
        bundle.to_str().unwrap(),
        "--max-size",
        "200kB",
    ]);
    let out = tempfile::tempdir().unwrap();
    let files = unpack(&bundle, out.path());
    let m = manifest(out.path());
    assert!(m["total_bytes"].as_u64().unwrap() <= 200_000, "{m}");
    let cut = m["cut"].to_string();
    assert!(cut.contains("logs/error/"), "{cut}");
    let kept = files
        .iter()
        .find(|f| f.display().to_string().contains("/logs/error/"))
        .expect("the log's newest part");
    let kept = std::fs::read_to_string(kept).unwrap();
    assert!(kept.ends_with("the newest line\n"), "the newest lines stay");
    assert!(kept.len() < text.len() / 10, "{} bytes kept", kept.len());
    assert!(kept.starts_with(&stamp), "it starts at a whole line");
}

#[test]
fn fleet_reads_bundles_and_reports_into_one_table_and_refuses_what_is_not_one() {
    let (Some(refused), Some(healthy)) = (lab("refused"), lab("healthy")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.tar.gz");
    collect(&[
        "--config",
        refused.config().to_str().unwrap(),
        "--output",
        a.to_str().unwrap(),
    ]);
    let web2 = tmp.path().join("web2.json");
    let out = bin()
        .args(["--json", "--config"])
        .arg(refused.config())
        .output()
        .unwrap();
    std::fs::write(&web2, &out.stdout).unwrap();
    let web3 = tmp.path().join("web3.json");
    let out = bin()
        .args(["--json", "--config"])
        .arg(healthy.config())
        .output()
        .unwrap();
    std::fs::write(&web3, &out.stdout).unwrap();

    let out = bin()
        .arg("fleet")
        .args([&a, &web2, &web3])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(table.starts_with("HOST"), "{table}");
    assert!(table.contains("web2 "), "{table}");
    let upstream = refused.expected_upstream().unwrap();
    assert!(
        table.contains(&format!("2 hosts: upstream-refused {upstream}")),
        "{table}"
    );
    assert!(table.contains("1 host: no problem found (web3)"), "{table}");
    let out = bin()
        .args(["fleet", "--json"])
        .args([&a, &web2, &web3])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["hosts"].as_array().unwrap().len(), 3);
    assert_eq!(json["groups"][0]["hosts"].as_array().unwrap().len(), 2);

    // Not a report, cut short, from a newer fix502: one line each, exit 2.
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let cut = tmp.path().join("cut.tar.gz");
    let bytes = std::fs::read(&a).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let newer = tmp.path().join("newer.tar.gz");
    newer_bundle(&a, &newer);
    for (bad, says) in [
        (&text, "not a fix502 JSON report"),
        (&cut, "cut short"),
        (&newer, "upgrade fix502"),
    ] {
        let out = bin().arg("fleet").arg(bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", bad.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
}

/// `bundle` with its manifest's `bundle_version` set to 99, as a newer fix502 would write.
pub(super) fn newer_bundle(bundle: &Path, to: &Path) {
    let dir = tempfile::tempdir().unwrap();
    unpack(bundle, dir.path());
    let mut m = manifest(dir.path());
    m["bundle_version"] = 99.into();
    std::fs::write(dir.path().join("manifest.json"), m.to_string()).unwrap();
    let status = Command::new("tar")
        .arg("czf")
        .arg(to)
        .arg("-C")
        .arg(dir.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}
