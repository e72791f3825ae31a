//! The wizard in a real terminal (a PTY): it walks through all five steps with dialoguer
//! prompts, and without a terminal it never prompts.

use std::time::Duration;

use super::harness::{bin, lab};

/// `fix502 --config <lab>` in a pseudo-terminal, as a person runs it.
fn wizard_in_pty(lab: &fix502_lab::Lab) -> rexpect::session::PtySession {
    wizard_in_terminal(lab, 100, "xterm", "C.UTF-8")
}

/// The wizard in a pseudo-terminal of `cols` columns (set with `stty` before fix502 starts),
/// with `TERM` and `LANG`.
fn wizard_in_terminal(
    lab: &fix502_lab::Lab,
    cols: u16,
    term: &str,
    lang: &str,
) -> rexpect::session::PtySession {
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            &format!("stty cols {cols} rows 50 && exec \"$0\" \"$@\""),
        ])
        .arg(env!("CARGO_BIN_EXE_fix502"))
        .arg("--config")
        .arg(lab.config())
        .env("NO_COLOR", "1")
        .env("TERM", term)
        .env("LANG", lang)
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE");
    rexpect::session::spawn_command(command, Some(30_000)).expect("spawn in a pty")
}

/// Walks a wizard through its steps with Enter at each prompt and returns all it wrote.
fn walk_to_the_end(mut p: rexpect::session::PtySession) -> String {
    let mut seen = String::new();
    // Bounded: four steps, so at most three prompts.
    for _ in 0..3 {
        match p.exp_string("What next?") {
            Ok(text) => seen.push_str(&text),
            Err(e) => panic!("waiting for a prompt: {e}; so far:\n{seen}"),
        }
        seen.push_str("What next?");
        p.send("\r").unwrap();
        p.flush().unwrap();
    }
    seen.push_str(&p.exp_eof().unwrap_or_default());
    utf8(&seen)
}

/// The terminal's bytes as text: rexpect gives each byte as one char.
fn utf8(text: &str) -> String {
    let bytes: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(c).unwrap_or(b'?'))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What a terminal shows of `text`: escape sequences taken out, each `\r` or `\n` a new
/// line (a prompt drawn again starts over at the line's start).
fn screen_lines(text: &str) -> Vec<String> {
    let escapes = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    escapes
        .replace_all(text, "")
        .split(['\r', '\n'])
        .map(str::to_owned)
        .collect()
}

#[test]
fn wizard_walks_all_five_steps_in_a_pty() {
    let Some(lab) = lab("refused") else { return };
    let mut p = wizard_in_pty(&lab);
    for step in [
        "Error logs",
        "Upstream status",
        "nginx configuration",
        "Network connectivity",
    ] {
        p.exp_string(step)
            .unwrap_or_else(|e| panic!("waiting for {step}: {e}"));
        if step != "Network connectivity" {
            p.exp_string("What next?").expect("prompt");
            p.send("\r").unwrap();
            p.flush().unwrap();
        }
    }
    p.exp_string("Diagnosis").expect("diagnosis");
    p.exp_string("upstream-refused").expect("cause");
    p.exp_string("Likely cause: upstream-refused")
        .expect("verdict");
    let status = p.process().wait().expect("exit");
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 1)),
        "{status:?}"
    );
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn wizard_can_jump_to_the_suggested_step_and_stop() {
    let Some(lab) = lab("refused") else { return };
    let mut p = wizard_in_pty(&lab);
    p.exp_string("Error logs").unwrap();
    p.exp_string("Stop here").unwrap();
    // The step list: continue, jump, run again, diagnosis, stop. Up once wraps to the last.
    p.send("\x1b[A").unwrap();
    p.flush().unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string("Likely cause: upstream-refused")
        .expect("verdict after stopping");
    let status = p.process().wait().expect("exit");
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 1)),
        "{status:?}"
    );
}

#[test]
fn no_terminal_means_no_prompt() {
    let Some(lab) = lab("refused") else { return };
    let out = bin()
        .arg("--config")
        .arg(lab.config())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("What next?"), "{text}");
    assert!(text.contains("Likely cause: upstream-refused"), "{text}");
}

#[test]
fn a_config_the_person_fixed_is_tested_again_and_reloaded_after_a_yes() {
    let Some(lab) = lab("config-invalid") else {
        return;
    };
    let app_conf = lab.dir().join("conf/app.conf");
    let workers = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
    };
    let workers_before = lab.master_pid().map(workers);
    let mut p = wizard_in_pty(&lab);
    for _ in 0..3 {
        p.exp_string("What next?").expect("a step's prompt");
        p.send("\r").unwrap();
        p.flush().unwrap();
    }
    p.exp_string("nothing is reloaded or restarted")
        .expect("no reload of an invalid config");
    p.exp_string("I have fixed the config")
        .expect("the question");
    // The person fixes the file in their editor meanwhile.
    let broken = std::fs::read_to_string(&app_conf).unwrap();
    let fixed = broken.replace(
        "    proxy_read_timeout 30s\n",
        "    proxy_read_timeout 30s;\n",
    );
    assert_ne!(broken, fixed, "the lab's broken line");
    std::fs::write(&app_conf, fixed).unwrap();
    p.send("y").unwrap();
    p.flush().unwrap();
    p.exp_string("nginx -t passes now").expect("tested again");
    p.exp_string("Restart: Reload nginx")
        .expect("the reload offered");
    p.exp_string("Run `").expect("the question");
    p.send("y").unwrap();
    p.flush().unwrap();
    p.exp_string("applied and verified").expect("reloaded");
    let status = p.process().wait().expect("exit");
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );
    let workers_after = lab.master_pid().map(workers);
    assert!(
        workers_after.is_some() && workers_after != workers_before,
        "new workers run the fixed config: {workers_before:?} → {workers_after:?}"
    );
    assert_eq!(lab.request("/").unwrap(), 200);
}

#[test]
fn q_at_a_prompt_stops_cleanly_with_the_verdict_so_far() {
    let Some(lab) = lab("refused") else { return };
    let mut p = wizard_in_pty(&lab);
    p.exp_string("Error logs").unwrap();
    p.exp_string("What next?").expect("the first prompt");
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_string("Stopped (q).").expect("a clean stop");
    let rest = p.exp_eof().unwrap_or_default();
    assert!(
        rest.contains("upstream-refused"),
        "the verdict so far: {rest}"
    );
    let status = p.process().wait().expect("exit");
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 1)),
        "{status:?}"
    );
}

#[test]
fn the_step_list_jumps_ahead_and_runs_a_step_again() {
    let Some(lab) = lab("refused") else { return };
    let mut p = wizard_in_pty(&lab);
    p.exp_string("Error logs").unwrap();
    // The list after the first step, in the order the items are drawn.
    for item in [
        "Continue with step 2/5: Upstream status",
        "Jump to step 3/5: nginx configuration",
        "Jump to step 4/5: Network connectivity",
        "Run step 1/5 again: Error logs (failed)",
        "Show the diagnosis now",
        "Stop here",
    ] {
        p.exp_string(item)
            .unwrap_or_else(|e| panic!("the step list has {item}: {e}"));
    }
    // j moves down: jump to the network step.
    p.send("jj\r").unwrap();
    p.flush().unwrap();
    p.exp_string("Network connectivity (")
        .expect("the network step ran");
    p.exp_string("Run step 4/5 again: Network connectivity")
        .expect("it can run again");
    // Down to "Run step 1/5 again": Continue (2), Jump (3), Run 1 again.
    p.send("jj\r").unwrap();
    p.flush().unwrap();
    p.exp_string("Error logs (")
        .expect("the logs step ran again");
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_string("Stopped (q).").expect("a clean stop");
}

#[test]
fn ctrl_c_at_a_prompt_shows_the_cursor_says_interrupted_and_exits_130() {
    let Some(lab) = lab("refused") else { return };
    let mut p = wizard_in_pty(&lab);
    p.exp_string("What next?").expect("the first prompt");
    p.send_control('c').unwrap();
    p.flush().unwrap();
    let rest = p.exp_eof().unwrap_or_default();
    assert!(rest.contains("fix502: interrupted"), "{rest:?}");
    let shown = rest.rfind("\x1b[?25h");
    let hidden = rest.rfind("\x1b[?25l");
    assert!(
        shown.is_some() && shown > hidden,
        "the cursor is shown again at the end: {rest:?}"
    );
    let status = p.process().wait().expect("exit");
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 130)),
        "{status:?}"
    );
}

#[test]
fn a_60_column_terminal_gets_no_line_wider_than_60() {
    let Some(lab) = lab("refused") else { return };
    let seen = walk_to_the_end(wizard_in_terminal(&lab, 60, "xterm", "C.UTF-8"));
    assert!(seen.contains("Likely cause: upstream-refused"), "{seen}");
    let wide: Vec<String> = screen_lines(&seen)
        .into_iter()
        .filter(|l| l.chars().count() > 60)
        .collect();
    assert!(wide.is_empty(), "wider than 60: {wide:#?}");
}

#[test]
fn a_200_column_terminal_keeps_long_lines_whole() {
    let Some(lab) = lab("refused") else { return };
    let seen = walk_to_the_end(wizard_in_terminal(&lab, 200, "xterm", "C.UTF-8"));
    let lines = screen_lines(&seen);
    assert!(lines.iter().all(|l| l.chars().count() <= 200));
    // The config step's line about the workers is one line at this width.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the running workers (started")
                && l.contains("have every file of the config as it is now")),
        "{seen}"
    );
}

#[test]
fn term_dumb_and_a_c_locale_get_plain_ascii() {
    let Some(lab) = lab("refused") else { return };
    let seen = walk_to_the_end(wizard_in_terminal(&lab, 80, "dumb", "C"));
    assert!(seen.contains("[FAIL]"), "{seen}");
    let other: Vec<char> = seen.chars().filter(|c| !c.is_ascii()).collect();
    assert!(other.is_empty(), "not ASCII: {other:?} in {seen}");
}
