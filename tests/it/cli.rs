//! Bad input and the command line: every mistake gives one clear line and the contract's exit
//! code (or an `error` finding while the other checks go on), never a panic.

use std::process::Output;

use super::harness::{bin, causes, parse_report, write};

// Usage errors, one line each with exit 2: the bad-input matrix in hostile.rs.

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let out = bin().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--non-interactive",
        "--json",
        "--apply",
        "Examples:",
        "fix502 lab run refused",
        "130 interrupted",
    ] {
        assert!(text.contains(needle), "{needle} missing from --help");
    }
}

/// A config tree of our own (no nginx runs it) with the given main file text.
fn tree(main: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("nginx.conf"), main);
    write(&dir.path().join("logs/error.log"), "");
    dir
}

fn run_on(dir: &tempfile::TempDir, extra: &[&str]) -> (Output, serde_json::Value) {
    let out = bin()
        .args(["--json", "--prefix"])
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("nginx.conf"))
        .args(extra)
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let report = parse_report(&out);
    (out, report)
}

#[test]
fn syntax_error_is_config_invalid_with_location() {
    let dir = tree(
        "error_log logs/error.log;\nevents {}\nhttp {\n  server { listen 127.0.0.1:1; location / { proxy_pass http://127.0.0.1:9 }\n}\n",
    );
    let (out, report) = run_on(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let found = causes(&report);
    assert_eq!(
        found.first().map(String::as_str),
        Some("config-invalid"),
        "{found:?}"
    );
    assert!(found.contains(&"nginx-not-running".to_owned()), "{found:?}");
    let d = &report["diagnosis"][0];
    assert!(
        d["summary"].as_str().unwrap().contains("nginx.conf:4"),
        "{d}"
    );
}

#[test]
fn include_cycle_and_missing_include_do_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("nginx.conf");
    write(
        &main,
        &format!(
            "events {{}}\nhttp {{ include {}/a.conf; include {}/missing.conf; }}\n",
            dir.path().display(),
            dir.path().display()
        ),
    );
    write(
        &dir.path().join("a.conf"),
        &format!("include {}/b.conf;\n", dir.path().display()),
    );
    write(
        &dir.path().join("b.conf"),
        &format!("include {}/a.conf;\n", dir.path().display()),
    );
    write(&dir.path().join("logs/error.log"), "");
    let (out, report) = run_on(&dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let config_findings = super::harness::findings(&report, "config");
    let messages: Vec<_> = config_findings
        .iter()
        .map(|f| f["message"].as_str().unwrap().to_owned())
        .collect();
    // nginx -t itself recurses until its stack runs out: said with its signal, not empty.
    assert!(
        messages
            .iter()
            .any(|m| m.contains("nginx -t crashed with signal 11 (SIGSEGV)")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.to_lowercase().contains("cycle") || m.contains("recurs")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("missing.conf")),
        "{messages:?}"
    );
}

#[test]
fn unreadable_log_is_an_error_finding_and_the_rest_goes_on() {
    let dir = tree(
        "error_log logs;\nevents {}\nhttp { server { listen 127.0.0.1:1; location / { proxy_pass http://127.0.0.1:9; } } }\n",
    );
    let (out, report) = run_on(&dir, &[]);
    let logs = &report["steps"][0];
    assert_eq!(logs["step"], "logs");
    assert_eq!(logs["status"], "error", "{logs:#}");
    assert!(
        logs["findings"][0]["could_not_check"]
            .as_bool()
            .unwrap_or(false)
            || logs["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["could_not_check"] == true)
    );
    // The upstream step still ran and found the refusal.
    assert_eq!(report["steps"][1]["status"], "fail");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn garbage_and_huge_lines_in_the_log_are_counted_not_fatal() {
    let dir = tree(
        "error_log logs/error.log;\nevents {}\nhttp { server { listen 127.0.0.1:1; location / { proxy_pass http://127.0.0.1:9; } } }\n",
    );
    let mut bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    bytes.extend(std::iter::repeat_n(b'x', 1 << 20));
    bytes.push(b'\n');
    std::fs::write(dir.path().join("logs/error.log"), bytes).unwrap();
    let (out, report) = run_on(&dir, &["--step", "logs"]);
    assert_eq!(report["steps"][0]["status"], "pass", "{report:#}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn json_schema_in_docs_is_current() {
    let schema =
        serde_json::to_string_pretty(&fix502_core::report::Report::json_schema()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    if std::env::var_os("FIX502_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &schema).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk, schema,
        "docs/report.schema.json is stale: rerun with FIX502_UPDATE_SCHEMA=1"
    );
}

#[test]
fn every_cause_id_is_documented() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/causes.md"),
    )
    .unwrap();
    for c in fix502_core::causes::Cause::all() {
        assert!(
            doc.contains(&format!("## `{}`", c.id())),
            "docs/causes.md lacks a section for {c}"
        );
    }
}

#[test]
fn a_glob_of_thousands_of_files_gives_one_warning_not_thousands() {
    let dir = tree(
        "error_log logs/error.log;\nevents {}\nhttp { include conf.d/*.conf; server { listen 127.0.0.1:1; location / { proxy_pass http://127.0.0.1:9; } } }\n",
    );
    let conf_d = dir.path().join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    for i in 0..4200 {
        std::fs::write(conf_d.join(format!("{i:05}.conf")), "# empty\n").unwrap();
    }
    let (_, report) = run_on(&dir, &["--step", "config"]);
    let json = report.to_string();
    let too_many = json.matches("too many files").count();
    assert_eq!(too_many, 1, "one warning for the files past the limit");
    assert!(
        json.len() < 64 * 1024,
        "the report stays small: {} bytes",
        json.len()
    );
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    // `fix502 --json | head -c 10`: the pipe closes before the report is written.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nginx.conf");
    write(&config, "events {}\nhttp {}\n");
    let mut child = bin()
        .args(["--json", "--step", "config", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_ne!(out.status.code(), Some(3));
}

#[test]
fn explain_prints_a_cause_s_section_and_refuses_an_unknown_id_in_one_line() {
    let out = bin()
        .args(["explain", "upstream-refused"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(text.starts_with("## `upstream-refused`"), "{text}");
    assert!(text.contains("**Fix:**"), "{text}");
    assert!(
        !text.contains("## `upstream-stale-dns`"),
        "one section: {text}"
    );
    let out = bin().args(["explain", "upstream-nope"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("upstream-refused"),
        "the ids are listed: {err}"
    );
}

#[test]
fn completions_man_page_and_long_version_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        for word in ["collect", "fleet", "since"] {
            assert!(text.contains(word), "{shell}: {word}");
        }
    }
    let out = bin().arg("man").output().unwrap();
    let roff = String::from_utf8_lossy(&out.stdout);
    assert!(roff.contains(".TH fix502 1"), "{roff}");
    assert!(roff.contains("collect"), "the subcommands are in it");
    let out = bin().arg("--version").output().unwrap();
    let long = String::from_utf8_lossy(&out.stdout);
    for field in ["fix502 0.", "commit: ", "built: ", "target: "] {
        assert!(long.contains(field), "{long}");
    }
    let out = bin().arg("-V").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn without_a_utf8_locale_or_on_a_dumb_terminal_the_report_draws_only_ascii() {
    let Some(lab) = super::harness::lab("header-too-big") else {
        return;
    };
    for (lang, term) in [("C", "xterm"), ("C.UTF-8", "dumb")] {
        let out = bin()
            .args(["--non-interactive", "--config"])
            .arg(lab.config())
            .env("LANG", lang)
            .env_remove("LC_ALL")
            .env_remove("LC_CTYPE")
            .env("TERM", term)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("[FAIL]"), "{text}");
        let drawn: Vec<char> = text
            .chars()
            .filter(|c| "…→—–•✓✗×±≥§▁▂▃▄▅▆▇█".contains(*c))
            .collect();
        assert!(
            drawn.is_empty(),
            "LANG={lang} TERM={term}: {drawn:?} in\n{text}"
        );
        assert!(text.contains("->"), "the route's arrows: {text}");
    }
}
