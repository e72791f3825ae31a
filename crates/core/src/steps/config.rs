//! Step 3, the configuration: `nginx -t` on the exact config and prefix (its verdict with
//! file:line, and what it changed on the host when it could not be isolated), what fix502's
//! own parser read, and whether a master runs this config and listens where the config says.

use std::net::SocketAddr;
use std::path::PathBuf;

use fix502_nginx::view::ListenAddr;
use fix502_probe::listeners::ListenerKind;

use crate::causes::Cause;
use crate::check::{FindingsFuture, FnCheck};
use crate::command::{CommandOutput, shell_line};
use crate::facts::Facts;
use crate::report::{CheckId, Evidence, Finding, Location, Severity, StepId};
use crate::throwaway::TestRun;

/// Check id: `nginx -t`.
pub const NGINX_T: CheckId = CheckId::new("config.nginx-t", StepId::Config, Evidence::Config);
/// Check id: fix502's own parse of the config.
pub const PARSE: CheckId = CheckId::new("config.parse", StepId::Config, Evidence::Config);
/// Check id: the master process and its listening sockets.
pub const PROCESS: CheckId = CheckId::new("config.process", StepId::Config, Evidence::Config);

/// The checks of this step.
pub static CHECKS: [FnCheck; 3] = [
    FnCheck::new(NGINX_T, nginx_t),
    FnCheck::new(PARSE, parse),
    FnCheck::new(PROCESS, process),
];

/// The first `[emerg]`/`[crit]`/`[alert]` line of `nginx -t` output and its file:line.
pub fn nginx_t_problem(stderr: &str) -> Option<(String, Option<Location>)> {
    let line = stderr.lines().find(|l| l.contains("[emerg]")).or_else(|| {
        stderr
            .lines()
            .find(|l| l.contains("[crit]") || l.contains("[alert]"))
    })?;
    // Debian's build logs to stderr in the error-log format: drop "nginx: " or the timestamp and pid.
    let text = match line.find('[') {
        Some(i) => line[i..].trim().to_owned(),
        None => line.trim().to_owned(),
    };
    let location = text.rsplit_once(" in ").and_then(|(_, tail)| {
        let (file, line) = tail.rsplit_once(':')?;
        Some(Location {
            file: PathBuf::from(file),
            line: line.trim().parse().ok()?,
        })
    });
    Some((text, location))
}

fn nginx_t(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let command = match facts.nginx_command(&["-t"]) {
            Some((program, args)) => shell_line(&program, &args),
            None => "nginx -t".to_owned(),
        };
        let run = match facts.nginx_test_run().await {
            Ok(run) => run,
            Err(e) => {
                return vec![Finding::could_not_check(
                    NGINX_T,
                    format!("cannot run nginx -t: {e}"),
                )];
            }
        };
        let mut findings = verdict(&run.output, &command);
        findings.extend(left_behind(run));
        findings
    })
}

/// The findings of `nginx -t`'s exit status and messages.
fn verdict(out: &CommandOutput, command: &str) -> Vec<Finding> {
    if out.success {
        return vec![Finding::new(
            NGINX_T,
            Severity::Info,
            format!("`{command}`: syntax is ok, test is successful"),
        )];
    }
    let (mut text, location) =
        nginx_t_problem(&out.stderr).unwrap_or_else(|| (out.stderr.trim().to_owned(), None));
    if let Some(signal) = out.signal {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        let said = if text.is_empty() {
            "before it said anything".to_owned()
        } else {
            format!("after: {text}")
        };
        text = format!("nginx -t crashed with signal {signal}{name} {said}");
    } else if text.is_empty() {
        text = format!(
            "nginx -t exited with status {} and said nothing",
            out.code.map_or_else(|| "?".to_owned(), |c| c.to_string())
        );
    }
    let permission_only = out
        .stderr
        .lines()
        .filter(|l| l.contains("[emerg]"))
        .all(|l| l.contains("(13: "))
        && !nix::unistd::geteuid().is_root();
    if permission_only {
        return vec![
            Finding::could_not_check(
                NGINX_T,
                format!("nginx -t needs more permission than this user has: {text}"),
            )
            .fix("Run fix502 as root (sudo fix502)"),
        ];
    }
    let mut f = Finding::new(NGINX_T, Severity::Error, format!("nginx -t fails: {text}"))
        .cause(Cause::CONFIG_INVALID)
        .at(location.clone());
    for line in out.stderr.lines().filter(|l| !l.trim().is_empty()).take(6) {
        f = f.evidence(line.trim().to_owned());
    }
    if let Some(loc) = &location {
        f = f.fix(format!("Fix {loc}, then check with: {command}"));
    } else {
        f = f.fix(format!("Fix the error, then check with: {command}"));
    }
    vec![f]
}

/// What a run of `nginx -t` that could not be isolated changed on this host (docs/architecture.md,
/// "How nginx -t runs").
fn left_behind(run: &TestRun) -> Option<Finding> {
    if run.left.is_empty() {
        return None;
    }
    let how = match &run.unisolated {
        Some(why) => format!("nginx -t could not be isolated ({why})"),
        None => format!(
            "nginx -t wrote through to {} (layering failed there)",
            run.through
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let n = run.left.len();
    let mut f = Finding::new(
        NGINX_T,
        Severity::Info,
        format!(
            "{how} and changed {n} path{} on this host",
            if n == 1 { "" } else { "s" }
        ),
    );
    for change in &run.left {
        f = f.evidence(change.to_string());
    }
    Some(f)
}

/// At most this many different problems of the config are listed, one finding each.
const MAX_PARSE_FINDINGS: usize = 50;

fn parse(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let Some(config) = &facts.config else {
            return vec![Finding::could_not_check(
                PARSE,
                facts
                    .config_error
                    .clone()
                    .unwrap_or_else(|| "config not loaded".to_owned()),
            )];
        };
        let mut out = vec![Finding::new(
            PARSE,
            Severity::Info,
            format!(
                "read {} file(s): {} server(s), {} upstream group(s), {} pass directive(s)",
                config.files.len(),
                facts.view.servers.len(),
                facts.view.upstreams.len(),
                facts.view.targets.len()
            ),
        )];
        // The same problem many times over (a glob of thousands of bad files) is one
        // finding with its count.
        let mut seen: Vec<(String, usize)> = Vec::new();
        for e in &config.errors {
            let text = e.to_string();
            if let Some((_, n)) = seen.iter_mut().find(|(t, _)| *t == text) {
                *n += 1;
                continue;
            }
            if seen.len() >= MAX_PARSE_FINDINGS {
                continue;
            }
            seen.push((text.clone(), 1));
            let location = e.location().map(|(file, line)| Location { file, line });
            out.push(Finding::new(PARSE, Severity::Warning, text).at(location));
        }
        let shown: usize = seen.iter().map(|(_, n)| n).sum();
        for (f, (_, n)) in out.iter_mut().skip(1).zip(&seen) {
            if *n > 1 {
                f.message.push_str(&format!(" ({n} times)"));
            }
        }
        if config.errors.len() > shown {
            out.push(Finding::new(
                PARSE,
                Severity::Warning,
                format!(
                    "{} more problems of the config are not listed",
                    config.errors.len() - shown
                ),
            ));
        }
        out
    })
}

/// Whether a listening TCP socket serves a `listen` address.
fn served(listen: &ListenAddr, listening: &[SocketAddr]) -> Option<bool> {
    let matches = |port: u16, ip: Option<std::net::IpAddr>| {
        listening.iter().any(|l| {
            l.port() == port && (l.ip().is_unspecified() || ip.is_none_or(|ip| ip == l.ip()))
        })
    };
    match listen {
        ListenAddr::Port(p) => Some(listening.iter().any(|l| l.port() == *p)),
        ListenAddr::Inet(a) => Some(matches(a.port(), Some(a.ip()))),
        ListenAddr::Host { port, .. } => Some(matches(*port, None)),
        _ => None,
    }
}

fn process(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let mut out: Vec<Finding> = not_root(nix::unistd::geteuid().as_raw())
            .into_iter()
            .collect();
        out.extend(process_of(facts).await);
        out
    })
}

/// For a run that is not root: what it cannot see, and how to run it so that it can. The
/// checks say so again where it matters; this says it once, up front.
fn not_root(uid: u32) -> Option<Finding> {
    (uid != 0).then(|| {
        Finding::new(
            PROCESS,
            Severity::Warning,
            format!(
                "fix502 runs as uid {uid}, not root: it cannot see which process owns a listening socket, read other users' processes and logs, enter nginx's namespaces, or keep nginx -t from touching files; what it diagnoses may be less sure than it could be"
            ),
        )
        .fix("Run it again as root, with the same arguments: sudo fix502 ...")
    })
}

async fn process_of(facts: &Facts) -> Vec<Finding> {
    let config = facts.discovery.config.display().to_string();
    let Some(master) = &facts.discovery.master else {
        if facts.discovery.binary.is_none() {
            // No binary and no master: nginx is not installed where fix502 looks, which
            // is not the same as nginx being down.
            return vec![
                    Finding::could_not_check(
                        PROCESS,
                        format!(
                            "no nginx master runs {config} and no nginx binary was found (PATH, {}): cannot tell whether nginx should run here",
                            crate::discovery::SBIN_DIRS.replace(':', ", ")
                        ),
                    )
                    .fix("Pass the binary with --nginx, or run fix502 on the host (or in the container) where nginx runs"),
                ];
        }
        let mut f = Finding::new(
            PROCESS,
            Severity::Error,
            format!("no nginx master process runs {config}"),
        )
        .cause(Cause::NGINX_NOT_RUNNING);
        for other in &facts.discovery.other_masters {
            f = f.evidence(format!(
                "another master runs: pid {} `{}`",
                other.pid, other.title
            ));
        }
        if let Some(b) = &facts.discovery.binary {
            f = f.fix(format!(
                "Start it once nginx -t passes: {}",
                shell_line(b, &facts.nginx_args(&[]))
            ));
        }
        return vec![f];
    };
    let users: Vec<_> = master
        .workers
        .iter()
        .filter_map(|w| w.user.clone())
        .collect();
    let mut out = vec![Finding::new(
        PROCESS,
        Severity::Info,
        format!(
            "master pid {} runs this config with {} worker(s){}",
            master.pid,
            master.workers.len(),
            users
                .first()
                .map(|u| format!(" as {u}"))
                .unwrap_or_default()
        ),
    )];
    if master.workers.is_empty() {
        out.push(
            Finding::new(
                PROCESS,
                Severity::Error,
                format!("master pid {} has no worker processes", master.pid),
            )
            .cause(Cause::NGINX_NOT_RUNNING),
        );
    }
    let listening: Vec<SocketAddr> = match facts.listeners().await {
        Ok(all) => all
            .iter()
            .filter(|l| l.kind == ListenerKind::Tcp)
            .filter_map(|l| l.socket_addr)
            .collect(),
        Err(e) => {
            out.push(Finding::new(
                PROCESS,
                Severity::Warning,
                format!("cannot list listening sockets: {e}"),
            ));
            return out;
        }
    };
    for server in &facts.view.servers {
        for listen in &server.listens {
            if served(&listen.addr, &listening) == Some(false) {
                let shown = if listen.raw.is_empty() {
                    "80 (implicit)".to_owned()
                } else {
                    listen.raw.clone()
                };
                out.push(
                    Finding::new(
                        PROCESS,
                        Severity::Error,
                        format!("nothing listens on `listen {shown}` although nginx runs"),
                    )
                    .cause(Cause::NGINX_NOT_RUNNING)
                    .at(listen.span.as_ref().map(|s| Location {
                        file: s.file.to_path_buf(),
                        line: s.line,
                    })),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_is_not_root_says_what_it_cannot_see_and_how_to_run_it() {
        assert!(not_root(0).is_none());
        let f = not_root(65534).expect("a warning");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("uid 65534, not root"), "{}", f.message);
        assert!(
            f.fix.iter().any(|x| x.contains("sudo fix502")),
            "{:?}",
            f.fix
        );
    }

    #[test]
    fn nginx_t_output() {
        let stderr = "nginx: [emerg] unexpected \"}\" in /tmp/lab/conf/app.conf:4\nnginx: configuration file /tmp/lab/conf/nginx.conf test failed\n";
        let (text, loc) = nginx_t_problem(stderr).unwrap();
        assert_eq!(text, "[emerg] unexpected \"}\" in /tmp/lab/conf/app.conf:4");
        assert_eq!(
            loc,
            Some(Location {
                file: PathBuf::from("/tmp/lab/conf/app.conf"),
                line: 4
            })
        );
        let (_, loc) = nginx_t_problem(
            "nginx: [emerg] open() \"/run/nginx.pid\" failed (13: Permission denied)\n",
        )
        .unwrap();
        assert_eq!(loc, None);
        let (text, _) = nginx_t_problem(
            "2026/11/24 00:36:43 [emerg] 22754#22754: unexpected \"}\" in /x/app.conf:5\n",
        )
        .unwrap();
        assert_eq!(
            text,
            "[emerg] 22754#22754: unexpected \"}\" in /x/app.conf:5"
        );
        assert!(
            nginx_t_problem("nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n")
                .is_none()
        );
    }

    #[test]
    fn what_nginx_t_left_when_it_could_not_be_isolated() {
        use crate::throwaway::Change;
        let mut run = TestRun {
            output: CommandOutput {
                success: true,
                code: Some(0),
                stdout: String::new(),
                stderr: String::new(),
                signal: None,
            },
            unisolated: Some("fix502 is not root".to_owned()),
            through: Vec::new(),
            left: vec![
                Change::Created {
                    path: PathBuf::from("/run/nginx.pid"),
                    dir: false,
                    owner: "www".to_owned(),
                    mode: 0o644,
                },
                Change::Appended {
                    path: PathBuf::from("/var/log/nginx/error.log"),
                    lines: 2,
                },
            ],
            workspace: None,
        };
        let f = left_behind(&run).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(
            f.message,
            "nginx -t could not be isolated (fix502 is not root) and changed 2 paths on this host"
        );
        assert_eq!(
            f.evidence,
            [
                "created the file /run/nginx.pid (owner www, mode 0644)",
                "appended 2 lines to /var/log/nginx/error.log"
            ]
        );
        run.unisolated = None;
        run.through = vec![PathBuf::from("/srv")];
        run.left.truncate(1);
        assert_eq!(
            left_behind(&run).unwrap().message,
            "nginx -t wrote through to /srv (layering failed there) and changed 1 path on this host"
        );
        run.left.clear();
        assert!(left_behind(&run).is_none());
    }

    #[test]
    fn listen_served() {
        let l: Vec<SocketAddr> = vec![
            "0.0.0.0:80".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
        ];
        assert_eq!(served(&ListenAddr::Port(80), &l), Some(true));
        assert_eq!(
            served(&ListenAddr::Inet("10.0.0.1:80".parse().unwrap()), &l),
            Some(true)
        );
        assert_eq!(
            served(&ListenAddr::Inet("127.0.0.1:8080".parse().unwrap()), &l),
            Some(true)
        );
        assert_eq!(
            served(&ListenAddr::Inet("127.0.0.2:8080".parse().unwrap()), &l),
            Some(false)
        );
        assert_eq!(served(&ListenAddr::Port(443), &l), Some(false));
    }
}
