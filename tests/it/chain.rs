//! Following the chain (issue 13, item 5): a front nginx proxies to a back nginx on this
//! host whose own upstream refuses; the front's `upstream-returned-502` names the back nginx
//! and its refused upstream. The near miss: a plain app that answers 502 itself is no nginx,
//! so there is no chain to follow.
//!
//! Every process here is real and listens on loopback only; each nginx is stopped by its pid
//! when the test ends ([`Nginx`]'s drop), the app thread when it is told to.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::harness::{Nginx, bin, parse_report, top_text};
use super::masters::{free_port, no_nginx};

/// An nginx on 127.0.0.1:`port` whose every location proxies to 127.0.0.1:`to`, logging
/// errors in its prefix.
fn proxy(port: u16, to: u16) -> Nginx {
    Nginx::start(
        "error_log logs/error.log;",
        &format!(
            "    server {{\n        listen 127.0.0.1:{port};\n        location / {{ proxy_pass http://127.0.0.1:{to}; }}\n    }}"
        ),
        Stdio::null(),
    )
}

/// Reads a request head from `stream` (bounded by a read timeout and 64 KiB).
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// Sends one GET to 127.0.0.1:`port` and returns the status line.
fn get(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the front");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send");
    let head = read_head(&mut stream);
    String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `fix502 --non-interactive --json --config <config>`.
fn diagnose(config: &std::path::Path) -> Value {
    let out = bin()
        .args(["--non-interactive", "--json", "--timeout", "1s", "--config"])
        .arg(config)
        .output()
        .expect("run fix502");
    parse_report(&out)
}

/// The evidence lines of diagnosis `d` that name a hop of the chain, in order.
fn hop_lines(d: &Value) -> Vec<&str> {
    d["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|e| e.starts_with("the 502 comes from the nginx at "))
        .collect()
}

/// An app on loopback that answers every request 502 itself, until dropped.
struct App502 {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl App502 {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the app");
        let port = listener.local_addr().expect("app address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                read_head(&mut stream);
                let _ = stream.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for App502 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A front nginx proxying to a back nginx on 127.0.0.1:`b`, whose upstream 127.0.0.1:`c`
/// refuses; one request went through, so both logged their 502. `None` when nginx is not
/// installed and the suite is told to skip.
struct Chain {
    b: u16,
    c: u16,
    back: Nginx,
    front: Nginx,
}

impl Chain {
    fn start() -> Option<Self> {
        if no_nginx() {
            return None;
        }
        let (a, b, c) = (free_port(), free_port(), free_port());
        let back = proxy(b, c);
        let front = proxy(a, b);
        assert!(get(a).contains(" 502 "), "the front must answer 502");
        Some(Self { b, c, back, front })
    }
}

#[test]
fn a_502_relayed_from_another_nginx_names_that_nginx_and_its_refused_upstream() {
    let Some(Chain { b, c, back, front }) = Chain::start() else {
        return;
    };
    let report = diagnose(&front.config());
    let top = &report["diagnosis"][0];
    assert_eq!(top["cause"], "upstream-returned-502", "{report:#}");
    assert_eq!(top["upstream"], format!("127.0.0.1:{b}"), "{report:#}");
    let text = top_text(&report);
    let hop = format!(
        "the 502 comes from the nginx at 127.0.0.1:{b} (pid {}, config {}), whose upstream 127.0.0.1:{c} refuses (upstream-refused, ",
        back.pid,
        back.config().display()
    );
    assert!(
        top["evidence"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with(&hop),
        "{text}"
    );
    assert!(
        top["summary"].as_str().unwrap_or_default().contains(&hop),
        "{text}"
    );
    assert!(
        top["fix"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("On the nginx at 127.0.0.1:{b}: ")),
        "{text}"
    );
    // The front's own report is still about the front.
    assert_eq!(report["nginx"]["master_pid"], front.pid, "{report:#}");
    // The human report shows the hop too.
    let out = bin()
        .args([
            "--non-interactive",
            "--width",
            "1000",
            "--timeout",
            "1s",
            "--config",
        ])
        .arg(front.config())
        .output()
        .expect("run fix502");
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains(&hop), "{human}");
}

#[test]
fn an_app_that_answers_502_itself_is_no_chain() {
    if no_nginx() {
        return;
    }
    let app = App502::start();
    let a = free_port();
    let front = proxy(a, app.port);
    assert!(get(a).contains(" 502 "), "the front must relay the 502");
    let report = diagnose(&front.config());
    let top = &report["diagnosis"][0];
    assert_eq!(top["cause"], "upstream-returned-502", "{report:#}");
    assert_eq!(
        top["upstream"],
        format!("127.0.0.1:{}", app.port),
        "{report:#}"
    );
    let text = top_text(&report);
    assert!(!text.contains("the 502 comes from the nginx"), "{text}");
}

#[test]
fn every_hop_of_a_longer_chain_is_named_in_order() {
    if no_nginx() {
        return;
    }
    let (a, b, c, d) = (free_port(), free_port(), free_port(), free_port());
    let back = proxy(c, d);
    let middle = proxy(b, c);
    let front = proxy(a, b);
    assert!(get(a).contains(" 502 "), "the front must answer 502");
    let report = diagnose(&front.config());
    let top = &report["diagnosis"][0];
    assert_eq!(top["upstream"], format!("127.0.0.1:{b}"), "{report:#}");
    let evidence: Vec<&str> = top["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let first = format!(
        "the 502 comes from the nginx at 127.0.0.1:{b} (pid {}, config {}), whose upstream 127.0.0.1:{c} answers 502 itself (upstream-returned-502, ",
        middle.pid,
        middle.config().display()
    );
    let second = format!(
        "the 502 comes from the nginx at 127.0.0.1:{c} (pid {}, config {}), whose upstream 127.0.0.1:{d} refuses (upstream-refused, ",
        back.pid,
        back.config().display()
    );
    assert!(
        evidence.first().is_some_and(|e| e.starts_with(&first)),
        "{evidence:#?}"
    );
    assert!(
        evidence.get(1).is_some_and(|e| e.starts_with(&second)),
        "{evidence:#?}"
    );
}

#[test]
fn a_loop_back_to_the_front_is_not_followed_twice() {
    if no_nginx() {
        return;
    }
    let (a, b, d) = (free_port(), free_port(), free_port());
    // The front's `/` goes to the back, whose `/` comes back to the front's `/dead`, which
    // is refused: both nginx answer 502, each relaying the other.
    let front = Nginx::start(
        "error_log logs/error.log;",
        &format!(
            "    server {{\n        listen 127.0.0.1:{a};\n        location / {{ proxy_pass http://127.0.0.1:{b}; }}\n        location /dead {{ proxy_pass http://127.0.0.1:{d}; }}\n    }}"
        ),
        Stdio::null(),
    );
    let back = Nginx::start(
        "error_log logs/error.log;",
        &format!(
            "    server {{\n        listen 127.0.0.1:{b};\n        location / {{ proxy_pass http://127.0.0.1:{a}/dead; }}\n    }}"
        ),
        Stdio::null(),
    );
    assert!(get(a).contains(" 502 "), "the front must answer 502");
    let report = diagnose(&front.config());
    let at_back = report["diagnosis"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["upstream"] == format!("127.0.0.1:{b}"))
        .unwrap_or_else(|| panic!("no diagnosis at the back: {report:#}"));
    assert_eq!(at_back["cause"], "upstream-returned-502", "{report:#}");
    let hops = hop_lines(at_back);
    // The back is named once; the front it points back to is not diagnosed again.
    assert_eq!(hops.len(), 1, "{hops:#?}");
    assert!(
        hops[0].starts_with(&format!(
            "the 502 comes from the nginx at 127.0.0.1:{b} (pid {}, config {}), whose upstream 127.0.0.1:{a} answers 502 itself (upstream-returned-502, ",
            back.pid,
            back.config().display()
        )),
        "{hops:#?}"
    );
}

#[test]
fn the_wizard_names_the_hop_too() {
    let Some(Chain { b, c, back, front }) = Chain::start() else {
        return;
    };
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fix502"));
    command
        // Wide enough that each sentence of the diagnosis stays on one line.
        .args(["--timeout", "1s", "--width", "1000", "--config"])
        .arg(front.config())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("LANG", "C.UTF-8");
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).expect("spawn in a pty");
    for _ in 0..3 {
        p.exp_string("What next?").expect("prompt");
        p.send("\r").expect("continue");
        p.flush().expect("flush");
    }
    p.exp_string("Diagnosis").expect("diagnosis");
    p.exp_string(&format!(
        "the 502 comes from the nginx at 127.0.0.1:{b} (pid {}",
        back.pid
    ))
    .expect("the hop");
    p.exp_string(&format!("whose upstream 127.0.0.1:{c} refuses"))
        .expect("the refused upstream");
    p.exp_eof().expect("the wizard ends");
}

#[test]
fn the_chain_is_followed_three_nginx_deep_and_no_further() {
    if no_nginx() {
        return;
    }
    let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
    // ports[0] → ports[1] → … → ports[4] → ports[5], where nothing listens.
    let nginx: Vec<Nginx> = (0..5)
        .rev()
        .map(|i| proxy(ports[i], ports[i + 1]))
        .collect();
    assert!(get(ports[0]).contains(" 502 "), "the front must answer 502");
    let front = nginx.last().expect("the front");
    let report = diagnose(&front.config());
    let top = &report["diagnosis"][0];
    let hops = hop_lines(top);
    assert_eq!(hops.len(), 3, "{hops:#?}");
    for (hop, port) in hops.iter().zip(&ports[1..4]) {
        assert!(
            hop.starts_with(&format!(
                "the 502 comes from the nginx at 127.0.0.1:{port} ("
            )),
            "{hops:#?}"
        );
    }
    assert!(
        hops[2].contains(&format!(
            "whose upstream 127.0.0.1:{} answers 502 itself",
            ports[4]
        )),
        "{hops:#?}"
    );
}
