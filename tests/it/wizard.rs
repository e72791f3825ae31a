//! The wizard in a real terminal (a PTY): it walks through all five steps with dialoguer
//! prompts, and without a terminal it never prompts.

use std::time::Duration;

use super::harness::{bin, lab};

/// `fix502 --config <lab>` in a pseudo-terminal, as a person runs it.
fn wizard_in_pty(lab: &fix502_lab::Lab) -> rexpect::session::PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fix502"));
    command
        .arg("--config")
        .arg(lab.config())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("LANG", "C.UTF-8");
    rexpect::session::spawn_command(command, Some(30_000)).expect("spawn in a pty")
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
    // Down three times: Continue, Show diagnosis, Stop here (the logs step suggests the upstream step, which is next anyway).
    for _ in 0..2 {
        p.send("\x1b[B").unwrap();
        p.flush().unwrap();
    }
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
