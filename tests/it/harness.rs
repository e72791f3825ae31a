//! Shared helpers: start a lab scenario in this test process, run the binary against it, and
//! read its JSON report.

use std::path::Path;
use std::process::{Command, Output};

use fix502_lab::{Diagnosed, Lab, LabError, LabOptions};
use serde_json::Value;

/// The binary under test.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fix502"));
    cmd.env("NO_COLOR", "1").env_remove("FIX502_LOG");
    cmd
}

/// Starts a scenario, or returns None (with a message) when it needs root and we are not.
/// A missing nginx fails the test: the suite exists to run against the real one.
pub fn lab(name: &str) -> Option<Lab> {
    match Lab::start(name, &LabOptions::default()) {
        Ok(lab) => Some(lab),
        Err(LabError::NeedsRoot(why)) => {
            eprintln!("skipping {name}: needs root ({why})");
            None
        }
        Err(e) => {
            panic!("cannot start lab scenario {name}: {e} (install nginx: apt-get install nginx)")
        }
    }
}

/// `fix502 --non-interactive --json --config <lab config>` plus extra args.
pub fn run_json(lab: &Lab, extra: &[&str]) -> (Output, Value) {
    run_json_in(bin(), lab, extra)
}

/// [`run_json`] with fix502's journal of changes in `state` (`FIX502_STATE_DIR`).
pub fn run_json_journalled(lab: &Lab, state: &Path, extra: &[&str]) -> (Output, Value) {
    let mut cmd = bin();
    cmd.env("FIX502_STATE_DIR", state);
    run_json_in(cmd, lab, extra)
}

fn run_json_in(mut cmd: Command, lab: &Lab, extra: &[&str]) -> (Output, Value) {
    let out = cmd
        .args(["--non-interactive", "--json", "--config"])
        .arg(lab.config())
        .args(extra)
        .output()
        .expect("run fix502");
    let report = parse_report(&out);
    (out, report)
}

/// Parses stdout as exactly one JSON document.
pub fn parse_report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A `--json` run that could not start (exit 3) printed one report whose steps are all
/// `error`, each with a `discovery` finding that says why, and no diagnosis.
pub fn assert_not_started(out: &Output) {
    let report = parse_report(out);
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 5, "{report:#}");
    for s in steps {
        assert_eq!(s["status"], "error", "{report:#}");
        assert_eq!(s["findings"][0]["check"], "discovery", "{report:#}");
        assert_eq!(s["findings"][0]["could_not_check"], true, "{report:#}");
    }
    assert_eq!(report["diagnosis"].as_array().map(Vec::len), Some(0));
}

/// The causes of the diagnosis, in order.
pub fn causes(report: &Value) -> Vec<String> {
    report["diagnosis"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["cause"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a report against the lab scenario's expectation (the lab's one check), with the
/// exit code the binary returned.
pub fn check_expectation(lab: &Lab, report: &Value, exit_code: Option<i32>) -> Result<(), String> {
    let diagnosis = report["diagnosis"].as_array().cloned().unwrap_or_default();
    let diagnosed: Vec<Diagnosed<'_>> = diagnosis
        .iter()
        .map(|d| Diagnosed {
            cause: d["cause"].as_str().unwrap_or_default(),
            upstream: d["upstream"].as_str(),
        })
        .collect();
    lab.info().expect.check(
        &diagnosed,
        exit_code.unwrap_or(-1),
        lab.expected_upstream().as_deref(),
    )
}

/// Writes a file, creating its directory.
pub fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// The findings of one step of a report.
pub fn findings<'a>(report: &'a Value, step: &str) -> &'a Vec<Value> {
    let step = report["steps"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["step"] == step))
        .unwrap_or_else(|| panic!("no step {step} in {report:#}"));
    step["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {step:#}"))
}

/// A real nginx started by a test from its own config in a temporary prefix (daemonized,
/// its stderr where the test says), stopped by its pid when dropped.
pub struct Nginx {
    /// The temporary prefix; holds `nginx.conf`, `nginx.pid` and the temp directories.
    pub dir: tempfile::TempDir,
    /// The master's pid.
    pub pid: i32,
}

impl Nginx {
    /// Writes `http` (the body of the `http` block) and `main` (main-context directives) into
    /// `nginx.conf` with the pid file and every temp path in the prefix, and starts nginx.
    pub fn start(main: &str, http: &str, stderr: std::process::Stdio) -> Self {
        Self::start_under(&[], main, http, stderr)
    }

    /// [`Nginx::start`], with nginx's command line run by `wrapper` (a command and its
    /// arguments, e.g. `unshare --net sh -c '...' sh`), which must exec what follows it.
    pub fn start_under(
        wrapper: &[&str],
        main: &str,
        http: &str,
        stderr: std::process::Stdio,
    ) -> Self {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir logs");
        write(
            &dir.path().join("nginx.conf"),
            &format!(
                "{main}\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{http}\n}}\n"
            ),
        );
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(super::nginx_t::NGINX);
                cmd
            }
            None => Command::new(super::nginx_t::NGINX),
        };
        let status = cmd
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .status()
            .expect("start nginx");
        assert!(status.success(), "nginx did not start");
        // Bounded: the daemon writes its pid file within moments.
        let start = Instant::now();
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(dir.path().join("nginx.pid"))
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                break pid;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no pid file");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { dir, pid }
    }

    /// Its config file.
    pub fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("nginx.conf")
    }

    /// Sends the master a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), signal);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }
}

/// The first diagnosis's summary, evidence and fix lines, joined by newlines.
pub fn top_text(report: &Value) -> String {
    let d = &report["diagnosis"][0];
    let mut out = d["summary"].as_str().unwrap_or_default().to_owned();
    for key in ["evidence", "fix"] {
        for line in d[key].as_array().into_iter().flatten() {
            out.push('\n');
            out.push_str(line.as_str().unwrap_or_default());
        }
    }
    out
}

/// The report's first action, which must be `kind`, planned, with a diff holding each of
/// `in_diff`.
pub fn planned<'a>(report: &'a Value, kind: &str, scenario: &str, in_diff: &[&str]) -> &'a Value {
    let planned = &report["actions"][0];
    assert_eq!(planned["kind"], kind, "{scenario}: {report:#}");
    assert_eq!(planned["status"], "planned", "{scenario}: {report:#}");
    let diff = planned["diff"].as_str().unwrap_or_default();
    for text in in_diff {
        assert!(diff.contains(text), "{scenario}: {text:?} not in\n{diff}");
    }
    planned
}

/// `fix502 undo [ID]` with the journal in `state`; it must succeed. Returns its stdout.
pub fn undo(state: &Path, id: Option<&str>, scenario: &str) -> String {
    let out = bin()
        .env("FIX502_STATE_DIR", state)
        .arg("undo")
        .args(id)
        .output()
        .expect("run fix502 undo");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{scenario}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
