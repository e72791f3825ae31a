//! `fix502 undo` on a real nginx: a change made with the library's edit and journal API
//! (`return 200` → `return 201` in a symlinked site file) is reverted to the exact bytes,
//! nginx is tested and reloaded and answers as before; a file changed since is refused and
//! left alone.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use fix502_core::changes::{ChangeStatus, Changes, NewChange, NginxTarget, STATE_DIR_ENV};
use fix502_core::edit::{FileEdit, read_text};

use super::harness::{Nginx, bin, write};
use super::nginx_t::NGINX;

/// The status line's code of `GET /` on the socket, if nginx answers.
fn status(socket: &Path) -> Option<u16> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut head = Vec::new();
    s.take(4096).read_to_end(&mut head).ok()?;
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Waits (bounded) until the socket answers `want`.
fn answers(socket: &Path, want: u16) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if status(socket) == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Makes the `return 200` → `return 201` change on `link` with the API, applied and
/// journalled, and reloads nginx onto it.
fn change_to_201(journal: &Changes, nginx: &Nginx, link: &Path, socket: &Path) -> String {
    let text = read_text(link).expect("read the site");
    let line = text
        .lines()
        .position(|l| l.contains("return 200;"))
        .expect("the directive")
        + 1;
    let edit = FileEdit::replace(link, &text, line, 1, "        return 201;").expect("edit");
    assert!(
        edit.diff()
            .contains("-        return 200;\n+        return 201;\n")
    );
    let new = edit.apply_to(&text).expect("new text");
    let mut change = journal
        .begin(NewChange {
            kind: "edit".to_owned(),
            cause: None,
            nginx: NginxTarget {
                binary: NGINX.into(),
                prefix: Some(nginx.dir.path().to_path_buf()),
                config: nginx.config(),
                master_pid: u32::try_from(nginx.pid).ok(),
                test: None,
            },
            app: None,
            files: vec![(link.to_path_buf(), new.into_bytes())],
            proof: None,
        })
        .expect("begin");
    change.apply().expect("apply");
    nginx.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        answers(socket, 201),
        "nginx does not answer 201 after the change"
    );
    change
        .record_status(ChangeStatus::Verified)
        .expect("record");
    change.id().to_owned()
}

#[test]
fn undo_restores_the_exact_bytes_reloads_and_refuses_a_file_changed_since() {
    if !Path::new(NGINX).exists() {
        assert!(
            std::env::var_os("FIX502_SKIP_NGINX").is_some(),
            "{NGINX} is missing (install nginx, or set FIX502_SKIP_NGINX=1)"
        );
        return;
    }
    let sites = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    // A unix socket of its own: no TCP port to race the parallel tests for.
    let socket = sites.path().join("nginx.sock");
    let available = sites.path().join("sites-available/app");
    // Tabs, a comment and no final newline: bytes a rewrite would not keep by chance.
    let original = format!(
        "# the app\nserver {{\n\tlisten unix:{};\n    location / {{\n        return 200;\n    }}\n}}",
        socket.display()
    );
    write(&available, &original);
    let link = sites.path().join("sites-enabled/app");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("../sites-available/app", &link).unwrap();
    let nginx = Nginx::start(
        "",
        &format!("    include {}/sites-enabled/*;", sites.path().display()),
        std::process::Stdio::null(),
    );
    assert!(answers(&socket, 200), "nginx does not answer 200");
    let journal = Changes::at(state.path().join("changes"));
    let undo = |args: &[&str]| {
        bin()
            .arg("undo")
            .args(args)
            .env(STATE_DIR_ENV, state.path())
            .output()
            .expect("run fix502 undo")
    };

    // 1. Undo brings the exact bytes back, tests, reloads: nginx answers 200 again.
    let id = change_to_201(&journal, &nginx, &link, &socket);
    let out = undo(&["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(done["id"], id.as_str());
    assert_eq!(done["status"], "undone");
    assert_eq!(done["reloaded"], nginx.pid);
    assert!(
        done["commands"][0].as_str().unwrap().ends_with(" -t"),
        "{done:#}"
    );
    assert_eq!(std::fs::read_to_string(&available).unwrap(), original);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        status(&socket),
        Some(200),
        "the workers were replaced, so the old status is back"
    );
    assert_eq!(
        journal.get(&id).unwrap().record().status,
        ChangeStatus::Undone
    );

    // 2. Nothing is left to undo: one line, exit 0; an unknown id: one line, exit 2.
    let out = undo(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to undo"));
    let out = undo(&["20260101T000000Z-9"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    // 3. A file changed after the change wrote it is refused, and nothing is touched.
    let id = change_to_201(&journal, &nginx, &link, &socket);
    let by_hand = format!(
        "{}\n# edited by hand\n",
        std::fs::read_to_string(&available).unwrap()
    );
    std::fs::write(&available, &by_hand).unwrap();
    let out = undo(&[id.as_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("sites-enabled/app changed since"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&available).unwrap(), by_hand);
    // Bounded retries: a loaded test host may be slow to answer, never answer 200 here.
    assert!(
        answers(&socket, 201),
        "nginx was not left as it was: {:?}",
        status(&socket)
    );
    assert_eq!(
        journal.get(&id).unwrap().record().status,
        ChangeStatus::Verified
    );
}
