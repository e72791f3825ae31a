//! The Ansible playbook (`contrib/ansible/fix502.yml`) for real, opt-in
//! (`FIX502_ANSIBLE=1`): ansible-core from PyPI in a venv kept under the target dir, an
//! inventory of three host names with a local connection pointed at two lab nginx (two at
//! `refused`, one at `healthy`); the playbook runs `fix502 --json` on each (and `collect`
//! in its second mode), fetches the results and prints the fleet table.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::lab;

/// A venv with ansible-playbook, made once and kept (`None`, said why, when it cannot be).
fn ansible() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ansible-venv");
    let playbook = venv.join("bin/ansible-playbook");
    if playbook.exists() {
        return Some(playbook);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "ansible-core"])
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        eprintln!(
            "skipping: cannot install ansible-core from PyPI into {}",
            venv.display()
        );
        return None;
    }
    Some(playbook)
}

fn run_playbook(playbook: &Path, inventory: &Path, work: &Path, extra: &[&str]) -> String {
    let out = Command::new(playbook)
        .arg("-i")
        .arg(inventory)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/ansible/fix502.yml"
        ))
        .args(extra)
        .env("ANSIBLE_LOCAL_TEMP", work.join("ansible-local"))
        .env("ANSIBLE_REMOTE_TEMP", work.join("ansible-remote"))
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(work)
        .output()
        .expect("run ansible-playbook");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the playbook failed:\n{text}");
    text
}

#[test]
fn the_playbook_gathers_every_host_and_prints_the_fleet_table() {
    if std::env::var("FIX502_ANSIBLE").as_deref() != Ok("1") {
        eprintln!("skipping: the Ansible test is opt-in (FIX502_ANSIBLE=1)");
        return;
    }
    let (Some(refused), Some(healthy)) = (lab("refused"), lab("healthy")) else {
        return;
    };
    let Some(playbook) = ansible() else { return };
    let work = tempfile::tempdir().unwrap();
    let python = playbook.with_file_name("python");
    let fix502 = env!("CARGO_BIN_EXE_fix502");
    let host = |name: &str, config: &Path| {
        format!(
            "{name} ansible_connection=local fix502_args=\"--config {}\"\n",
            config.display()
        )
    };
    let inventory = work.path().join("inventory");
    std::fs::write(
        &inventory,
        format!(
            "[web]\n{}{}{}\n[all:vars]\nansible_python_interpreter={}\nfix502={fix502}\nfix502_local={fix502}\n",
            host("web1", refused.config()),
            host("web2", refused.config()),
            host("web3", healthy.config()),
            python.display()
        ),
    )
    .unwrap();
    let reports = work.path().join("reports");
    let dest = format!("fix502_dest={}", reports.display());
    let out = run_playbook(&playbook, &inventory, work.path(), &["-e", &dest]);
    for h in ["web1", "web2", "web3"] {
        assert!(reports.join(format!("{h}.json")).exists(), "{h}:\n{out}");
    }
    let upstream = refused.expected_upstream().unwrap();
    assert!(
        out.contains(&format!("2 hosts: upstream-refused {upstream}")),
        "{out}"
    );
    assert!(out.contains("1 host: no problem found (web3)"), "{out}");

    // The bundles' way: one bundle per host, fetched, the same table.
    let bundles = work.path().join("bundles");
    let dest = format!("fix502_dest={}", bundles.display());
    let out = run_playbook(
        &playbook,
        &inventory,
        work.path(),
        &["-e", &dest, "-e", "fix502_mode=collect"],
    );
    for h in ["web1", "web2", "web3"] {
        assert!(bundles.join(format!("{h}.tar.gz")).exists(), "{h}:\n{out}");
    }
    assert!(out.contains("upstream-refused"), "{out}");
}
