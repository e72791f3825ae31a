//! Snapshots of the human report of every lab scenario, and of the JSON report of a few, so
//! that a change of wording or shape is reviewed as a diff (`tests/it/snapshots/`), not found
//! by eye. Filters replace what differs from run to run: the lab's directory, ports, pids,
//! times and durations.
//!
//! To accept intended changes: `INSTA_UPDATE=always cargo test --test integration snapshots`,
//! then read the diff of `tests/it/snapshots/` before committing it.

use std::process::Command;

use fix502_lab::Lab;

use super::harness::{bin, lab};

/// What changes from one run of the same scenario to the next, and what stands for it.
fn settings(lab: &Lab) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    let dir = lab.dir().to_string_lossy().into_owned();
    s.add_filter(&regex_escape(&dir), "[LAB]");
    // ... also where the report cut the path short.
    s.add_filter(r"/tmp/fix502-lab-\w*", "[LAB]");
    for (pattern, replacement) in [
        // Times: nginx's log format, RFC 3339, and a bare time of day.
        (r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", "[TIME]"),
        (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?Z?", "[TIME]"),
        (r"\b\d{2}:\d{2}:\d{2}\b", "[HH:MM:SS]"),
        (r"\[TIME\]\.\d+", "[TIME]"),
        (r"valid until \d{4}-\d{2}-\d{2}", "valid until [DATE]"),
        // The access log's `$time_local` and php-fpm's log dates.
        (r"\b\d{2}/[A-Z][a-z]{2}/\d{4}:", "[DATE]:"),
        (r"\b\d{2}-[A-Z][a-z]{2}-\d{4}\b", "[DATE]"),
        // nginx's `pid#tid: *connection` and pids everywhere else.
        (r"\d+#\d+: \*\d+", "[PID]#[TID]: *[CONN]"),
        (r"\d+#\d+: ", "[PID]#[TID]: "),
        (r"\bpids? \d+", "pid [PID]"),
        (r"\[pid \d+\]", "[pid [PID]]"),
        (r"\bworker \d+", "worker [PID]"),
        ("\"master_pid\": \\d+", "\"master_pid\": [PID]"),
        (r"\(pid \d+", "(pid [PID]"),
        (r"/proc/\d+/", "/proc/[PID]/"),
        (r"\bchild \d+", "child [PID]"),
        (r"received from \d+", "received from [PID]"),
        (r"kill -(USR2|HUP) \d+", "kill -$1 [PID]"),
        // Durations.
        (r"\d+\.\d+ (s|sec|seconds) after", "[N] $1 after"),
        (r"\(\d+\.\d+ sec\)", "([N] sec)"),
        (r"after \d+\.\d+ seconds", "after [N] seconds"),
        (r#"(uht|urt)="[\d.]+""#, "$1=\"[N]\""),
        (r"\(\d+ ms\)", "([N] ms)"),
        (r"\d+(\.\d+)? ms\b", "[N] ms"),
        (r"within the probe's \d+\.\d s", "within the probe's [N] s"),
        ("\"duration_ms\": \\d+", "\"duration_ms\": [N]"),
        // Ports: the lab binds port 0 and gets whatever the kernel gives.
        (
            r"(127\.0\.0\.\d+|\[::1\]|localhost|lab\.fix502\.test|\]):\d{2,5}\b",
            "$1:[PORT]",
        ),
        (r"sport = :\d+", "sport = :[PORT]"),
        // The busy host's decoy takes its port as its last argument.
        (
            r"(http\.server [^)\n]*--directory \S+) \d{2,5}\b",
            "$1 [PORT]",
        ),
        (r"\bport \d{2,5}\b", "port [PORT]"),
        // A line cut short: where the cut falls moves with the length of pids and ports.
        (r#"(?m)(request: "[^"\n]*")[^\n]*…$"#, "$1, […]"),
        (r"(?m),[^,\n]*…$", ", […]"),
        // What a protocol sniff got before it was sure: its attempts race.
        (r"(?m)^ *sent [^\n]* → got [^\n]*\n", ""),
        // A TLS server's handshake answer carries random bytes.
        (
            r#"got "\\x16\\x03\\x0[0-4][^\n]*?" \(TLS\)"#,
            "got \"[TLS HANDSHAKE]\" (TLS)",
        ),
        // The sparkline's bars move with the minute the lab ran in.
        (r"\|[ ▁▂▃▄▅▆▇█]+\|", "|[BARS]|"),
        // The test binary serves the lab's apps; other tests run other nginx masters.
        (r"/\S*/integration-[0-9a-f]+[^)]*", "[TEST BINARY]"),
        (r"integration-[0-9a-f]+", "[TEST BINARY]"),
        (r"(?m)^[^\n]*another master runs: [^\n]*\n", ""),
        // ... and the header lists them, as does the JSON's nginx.masters.
        (r"(?m)^\d+ nginx masters run:\n(  [^\n]*\n)*", ""),
        (r#"\n    "masters": \[(\n {6,}[^\n]*)*\n    \],"#, ""),
        // Namespace inode ids (the stale-dns lab's nginx has a mount namespace of its own).
        (r"\b(net|mnt|pid):\[\d+\]", "$1:[ID]"),
        // What the host's limits and load are.
        (
            r"against the \d+ ports of \d+-\d+",
            "against the [N] ports of [RANGE]",
        ),
        (
            r"has \d+ of \d+ files open",
            "has [N] of [LIMIT] files open",
        ),
        (r"file table: \d+ of \d+", "file table: [N] of [MAX]"),
        // Counts of lines read that depend on how many runs came before.
        (r"\d+ lines in the last", "[N] lines in the last"),
    ] {
        s.add_filter(pattern, replacement);
    }
    s
}

fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '/' && c != '-' && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Runs the binary with fixed glyphs (UTF-8) and no colour.
fn run(cmd: &mut Command) -> Vec<u8> {
    cmd.env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .output()
        .expect("run fix502")
        .stdout
}

/// Compares every snapshot before failing, so that one run shows every diff.
fn assert_all(
    kind: &str,
    names: impl IntoIterator<Item = &'static str>,
    report: impl Fn(&Lab) -> String,
) {
    let mut differ = Vec::new();
    for name in names {
        let Some(lab) = lab(name) else { continue };
        let text = report(&lab);
        let settings = settings(&lab);
        let compared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_snapshot!(format!("{kind}-{name}"), text));
        }));
        if compared.is_err() {
            differ.push(name);
        }
    }
    assert!(differ.is_empty(), "snapshots differ: {differ:?}");
}

/// Scenarios whose report races, so their end-to-end tests check the cause instead: php-fpm
/// closes the connection of a client it does not allow as soon as it accepts it, so nginx
/// (and fix502's probe) sees a reset or a close, whichever came first; and how many of the
/// saturated pool's connects found its queue full, and whether fix502's own connect does,
/// depends on how far its one worker got.
const RACING: &[&str] = &["php-fpm-allowed-clients", "php-fpm-saturated"];

#[test]
fn human_report_of_every_scenario() {
    let names = fix502_lab::scenarios()
        .map(|s| s.name)
        .filter(|name| !RACING.contains(name));
    // Wide: a live lab's pids and ports vary in length, and would move where lines wrap.
    assert_all("human", names, |lab| {
        let out = run(bin()
            .args(["--non-interactive", "--width", "1000", "--config"])
            .arg(lab.config()));
        String::from_utf8_lossy(&out).into_owned()
    });
}

/// The report of a bundle of the `refused` lab (`tests/fixtures/refused.tar.gz`, made with
/// `fix502 collect`; its pids and ports are fixed, so where lines wrap is too), laid out by
/// `args` with `env`. When the bundle's record changes shape, make it again:
/// `fix502 lab up refused`, then `fix502 collect --config CONF -o tests/fixtures/refused.tar.gz`
/// from another shell, and review the snapshots (`INSTA_UPDATE=always`).
fn fixture_report(args: &[&str], env: &[(&str, &str)]) -> String {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cmd = bin();
    cmd.current_dir(&fixtures)
        .args(["--non-interactive", "--from", "refused.tar.gz"])
        .args(args);
    let out = run(cmd.envs(env.iter().copied()));
    String::from_utf8_lossy(&out).into_owned()
}

/// The same report at 60 and 100 columns, under `TERM=dumb` in a C locale, with `-q` and
/// with `-v`: every line within the width, the glyphs in ASCII where the terminal has none.
#[test]
fn human_report_at_60_and_100_columns_ascii_quiet_and_verbose() {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s.add_filter(r"\(\d+ ms\)", "([N] ms)");
    let mut differ = Vec::new();
    for (name, args, env, width) in [
        ("width-60", &["--width", "60"][..], &[][..], 60),
        ("width-100", &["--width", "100"][..], &[][..], 100),
        ("ascii", &[][..], &[("TERM", "dumb"), ("LANG", "C")][..], 80),
        ("quiet", &["-q"][..], &[][..], 80),
        ("verbose", &["-v", "--width", "100"][..], &[][..], 100),
    ] {
        let text = fixture_report(args, env);
        for line in text.lines() {
            assert!(
                line.chars().count() <= width,
                "{name}: {line:?} is wider than {width}"
            );
        }
        if name == "ascii" {
            assert!(text.is_ascii(), "{text}");
        }
        let compared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.bind(|| insta::assert_snapshot!(format!("fixture-{name}"), text));
        }));
        if compared.is_err() {
            differ.push(name);
        }
    }
    assert!(differ.is_empty(), "snapshots differ: {differ:?}");
}

#[test]
fn json_report_of_a_few_scenarios() {
    let names = ["healthy", "refused", "header-too-big", "no-live-upstreams"];
    assert_all("json", names, |lab| {
        let out = run(bin()
            .args(["--non-interactive", "--json", "--config"])
            .arg(lab.config()));
        String::from_utf8_lossy(&out).into_owned()
    });
}
