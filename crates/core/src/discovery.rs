//! Discovery: which nginx to diagnose. Running masters (from the process table), what the
//! binary was built with (`nginx -V`), and the command-line overrides, joined into one
//! [`Discovery`] that says how each path was found.
//!
//! Only finding things belongs here; judging them is the checks' job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};

use crate::command::{CommandError, run_command};
use crate::options::Options;

/// Extra directories searched for `nginx` after PATH, since `/usr/sbin` is often missing
/// from it.
pub(crate) const SBIN_DIRS: &str = "/usr/sbin:/sbin:/usr/local/sbin:/usr/local/nginx/sbin";

/// A running nginx worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// Its pid.
    pub pid: u32,
    /// Its user name, when known.
    pub user: Option<String>,
    /// Its uid, when known.
    pub uid: Option<u32>,
    /// Start time, seconds since the epoch.
    pub start_time: u64,
}

/// A running nginx master process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// Its pid.
    pub pid: u32,
    /// Its executable (`/proc/PID/exe`), when readable.
    pub exe: Option<PathBuf>,
    /// The process title, e.g. `nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf`.
    pub title: String,
    /// The `-c` argument as given, if any.
    pub conf_arg: Option<PathBuf>,
    /// The `-p` argument as given, if any.
    pub prefix_arg: Option<PathBuf>,
    /// Its workers.
    pub workers: Vec<Worker>,
    /// Start time, seconds since the epoch.
    pub start_time: u64,
}

/// What `nginx -V` says about the binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// `1.22.1`.
    pub version: Option<String>,
    /// `--prefix`.
    pub prefix: Option<PathBuf>,
    /// `--conf-path`.
    pub conf_path: Option<PathBuf>,
    /// `--error-log-path`.
    pub error_log_path: Option<String>,
    /// `--http-log-path`.
    pub http_log_path: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--pid-path`.
    pub pid_path: Option<String>,
    /// The `--http-*-temp-path` options given, as `(option, path)`, e.g.
    /// `("--http-proxy-temp-path", "/var/lib/nginx/proxy")`.
    pub http_temp_paths: Vec<(String, String)>,
}

/// The nginx to diagnose, and how each part was found.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The nginx binary, if one was found.
    pub binary: Option<PathBuf>,
    /// What the binary was built with.
    pub build: BuildInfo,
    /// The main configuration file.
    pub config: PathBuf,
    /// The prefix, if known.
    pub prefix: Option<PathBuf>,
    /// The master running this configuration, if any.
    pub master: Option<Master>,
    /// Masters running other configurations.
    pub other_masters: Vec<Master>,
    /// Key (`config`, `binary`, `prefix`, `master`) to how it was found.
    pub via: BTreeMap<String, String>,
    /// Problems met on the way (e.g. `nginx -V` failed), for the report.
    pub notes: Vec<String>,
}

/// Why discovery could not settle on one nginx.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Several masters run and nothing says which one to diagnose.
    #[error("{} nginx masters are running ({}); choose one with --config", .0.len(), describe_masters(.0))]
    AmbiguousMasters(Vec<Master>),
    /// The configuration named with `--config` (or discovered) cannot be read.
    #[error("cannot read nginx config {path}: {source}")]
    ConfigUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// nginx's processes changed during the run and again while it was checked a second time.
    #[error(
        "nginx changed during the run ({0}) and again while fix502 checked it a second time ({1}); run fix502 again once nginx has settled"
    )]
    Unsettled(String, String),
    /// No nginx binary, no running master and no config at the default place.
    #[error(
        "no nginx found: no running master, no `nginx` binary on PATH or in /usr/sbin, and no {0}; pass --config (and --nginx)"
    )]
    NothingFound(PathBuf),
}

fn describe_masters(masters: &[Master]) -> String {
    masters
        .iter()
        .map(|m| match &m.conf_arg {
            Some(c) => format!("pid {} -c {}", m.pid, c.display()),
            None => format!("pid {} (default config)", m.pid),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a master's process title into its `-c` and `-p` arguments.
///
/// nginx rewrites its argv to `nginx: master process <original command line>`, joined by spaces.
pub fn parse_master_title(title: &str) -> Option<(Option<PathBuf>, Option<PathBuf>)> {
    let rest = title.trim().strip_prefix("nginx: master process")?;
    let mut conf = None;
    let mut prefix = None;
    let mut words = rest.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "-c" => conf = words.next().map(PathBuf::from),
            "-p" => prefix = words.next().map(PathBuf::from),
            w if w.starts_with("-c") && w.len() > 2 => conf = Some(PathBuf::from(&w[2..])),
            w if w.starts_with("-p") && w.len() > 2 => prefix = Some(PathBuf::from(&w[2..])),
            _ => {}
        }
    }
    Some((conf, prefix))
}

/// Parses the output of `nginx -V` (nginx writes it to stderr).
pub fn parse_build_info(text: &str) -> BuildInfo {
    let mut info = BuildInfo::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("nginx version: ") {
            let v = v.trim();
            info.version = Some(
                v.split_once('/')
                    .map_or(v, |(_, ver)| ver)
                    .split_whitespace()
                    .next()
                    .unwrap_or(v)
                    .to_owned(),
            );
        }
        if let Some(args) = line.strip_prefix("configure arguments:") {
            for word in args.split_whitespace() {
                let Some((key, value)) = word.split_once('=') else {
                    continue;
                };
                let value = value.trim_matches('\'').to_owned();
                match key {
                    "--prefix" => info.prefix = Some(PathBuf::from(value)),
                    "--conf-path" => info.conf_path = Some(PathBuf::from(value)),
                    "--error-log-path" => info.error_log_path = Some(value),
                    "--http-log-path" => info.http_log_path = Some(value),
                    "--user" => info.user = Some(value),
                    "--pid-path" => info.pid_path = Some(value),
                    k if k.starts_with("--http-") && k.ends_with("-temp-path") => {
                        info.http_temp_paths.push((k.to_owned(), value));
                    }
                    _ => {}
                }
            }
        }
    }
    info
}

/// Lists the running nginx masters with their workers.
pub fn find_masters() -> Vec<Master> {
    let Ok(mut sys) = System::new() else {
        return Vec::new();
    };
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing()
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_exe(UpdateKind::OnlyIfNotSet)
            .with_user(UpdateKind::OnlyIfNotSet),
    );
    let users = Users::new_with_refreshed_list().ok();
    let title_of = |cmd: &[std::ffi::OsString]| {
        cmd.iter()
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut masters = Vec::new();
    for (pid, process) in sys.processes() {
        let title = title_of(process.cmd());
        let Some((conf_arg, prefix_arg)) = parse_master_title(&title) else {
            continue;
        };
        let mut workers: Vec<Worker> = sys
            .processes()
            .iter()
            .filter(|(_, p)| p.parent() == Some(*pid))
            .filter(|(_, p)| title_of(p.cmd()).starts_with("nginx: worker process"))
            .map(|(wpid, p)| {
                let uid = p.user_id().map(|u| **u);
                let user = p
                    .user_id()
                    .and_then(|u| users.as_ref().and_then(|us| us.get_user_by_id(u)))
                    .map(|u| u.name().to_owned());
                Worker {
                    pid: wpid.as_u32(),
                    user,
                    uid,
                    start_time: p.start_time(),
                }
            })
            .collect();
        workers.sort_by_key(|w| w.pid);
        masters.push(Master {
            pid: pid.as_u32(),
            exe: process
                .exe()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty()),
            title,
            conf_arg,
            prefix_arg,
            workers,
            start_time: process.start_time(),
        });
    }
    masters.sort_by_key(|m| m.pid);
    masters
}

/// What changed in nginx's processes since `before` was seen: its master exited (or its pid
/// now belongs to another process), or its workers are not the same ones (a reload, or a
/// worker that died and was replaced). `None` when nothing changed.
pub fn changes_since(before: &Master) -> Option<String> {
    let now = find_masters()
        .into_iter()
        .find(|m| m.pid == before.pid && m.start_time.abs_diff(before.start_time) <= 1);
    let Some(now) = now else {
        return Some(format!("nginx's master (pid {}) exited", before.pid));
    };
    let pids = |m: &Master| m.workers.iter().map(|w| w.pid).collect::<Vec<_>>();
    let (old, new) = (pids(before), pids(&now));
    if old == new {
        return None;
    }
    let list = |p: &[u32]| {
        if p.is_empty() {
            "none".to_owned()
        } else {
            p.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    Some(format!(
        "nginx's workers changed (pids {} → {}): it reloaded, or workers died and were replaced",
        list(&old),
        list(&new)
    ))
}

/// The live worker pids of one master, now.
pub fn worker_pids(master: u32) -> Vec<u32> {
    let Ok(mut sys) = System::new() else {
        return Vec::new();
    };
    sys.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cmd(UpdateKind::OnlyIfNotSet),
    );
    let mut pids: Vec<u32> = sys
        .processes()
        .iter()
        .filter(|(_, p)| p.parent() == Some(Pid::from_u32(master)))
        .filter(|(_, p)| {
            p.cmd()
                .first()
                .is_some_and(|c| c.to_string_lossy().starts_with("nginx: worker process"))
        })
        .map(|(pid, _)| pid.as_u32())
        .collect();
    pids.sort_unstable();
    pids
}

/// Runs `nginx -V` and parses it.
pub async fn build_info(binary: &Path) -> Result<BuildInfo, CommandError> {
    let out = run_command(binary, &["-V"], Duration::from_secs(10)).await?;
    Ok(parse_build_info(&format!("{}\n{}", out.stdout, out.stderr)))
}

/// Finds `nginx` on PATH and in the usual sbin directories.
pub fn which_nginx() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let search = if path.is_empty() {
        SBIN_DIRS.to_owned()
    } else {
        format!("{path}:{SBIN_DIRS}")
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in("nginx", Some(search), cwd).ok()
}

/// Resolves a path nginx takes relative to a prefix.
pub fn under_prefix(path: &Path, prefix: Option<&Path>) -> PathBuf {
    match prefix {
        Some(prefix) if path.is_relative() => prefix.join(path),
        _ => path.to_path_buf(),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The master running `config`, given what the binary was built with.
pub fn master_running<'a>(
    masters: &'a [Master],
    config: &Path,
    build: &BuildInfo,
) -> Option<&'a Master> {
    masters
        .iter()
        .find(|m| master_config(m, build).is_some_and(|c| same_file(&c, config)))
}

/// The config a master runs, given what its binary was built with.
fn master_config(master: &Master, build: &BuildInfo) -> Option<PathBuf> {
    let prefix = master.prefix_arg.clone().or_else(|| build.prefix.clone());
    let conf = master
        .conf_arg
        .clone()
        .or_else(|| build.conf_path.clone())?;
    Some(under_prefix(&conf, prefix.as_deref()))
}

/// Finds the nginx to diagnose, with the defaults of docs/command-line.md.
pub async fn discover(opts: &Options) -> Result<Discovery, DiscoveryError> {
    let mut via = BTreeMap::new();
    let mut notes = Vec::new();
    let masters = find_masters();

    // The binary: flag, else a master's executable, else PATH.
    let (mut binary, mut binary_via) = match &opts.nginx {
        Some(b) => (Some(b.clone()), "--nginx".to_owned()),
        None => match masters
            .iter()
            .find_map(|m| m.exe.clone().map(|e| (e, m.pid)))
        {
            Some((exe, pid)) => (Some(exe), format!("/proc/{pid}/exe")),
            None => (which_nginx(), "PATH and sbin directories".to_owned()),
        },
    };
    let mut build = BuildInfo::default();
    if let Some(b) = &binary {
        match build_info(b).await {
            Ok(info) => build = info,
            Err(e) => {
                notes.push(format!("`{} -V` failed: {e}", b.display()));
                if opts.nginx.is_none() {
                    binary = which_nginx().filter(|w| w != b);
                    binary_via = "PATH and sbin directories".to_owned();
                    if let Some(b) = &binary
                        && let Ok(info) = build_info(b).await
                    {
                        build = info;
                    }
                }
            }
        }
    }
    if let Some(b) = &binary {
        via.insert("binary".to_owned(), binary_via);
        tracing::debug!(binary = %b.display(), "nginx binary");
    }

    // The master: the one matching --config, or the chosen pid, or the only one.
    let (master, config, config_via) = if let Some(pid) = opts.master_pid {
        let m = masters.iter().find(|m| m.pid == pid).cloned();
        let conf = m.as_ref().and_then(|m| master_config(m, &build));
        let conf = opts.config.clone().or(conf);
        (m, conf, format!("master pid {pid} (chosen)"))
    } else if let Some(config) = &opts.config {
        let m = master_running(&masters, config, &build).cloned();
        (m, Some(config.clone()), "--config".to_owned())
    } else {
        match masters.len() {
            0 => match &build.conf_path {
                Some(c) => (
                    None,
                    Some(under_prefix(c, build.prefix.as_deref())),
                    "nginx -V --conf-path".to_owned(),
                ),
                None => (None, None, String::new()),
            },
            1 => {
                let m = masters[0].clone();
                let conf = master_config(&m, &build);
                let how = if m.conf_arg.is_some() {
                    "master command line (-c)".to_owned()
                } else {
                    "nginx -V --conf-path of the running master".to_owned()
                };
                (Some(m), conf, how)
            }
            _ => return Err(DiscoveryError::AmbiguousMasters(masters)),
        }
    };
    let default_conf = PathBuf::from("/etc/nginx/nginx.conf");
    let (config, config_via) = match config {
        Some(c) => (c, config_via),
        None => (
            default_conf.clone(),
            "default /etc/nginx/nginx.conf".to_owned(),
        ),
    };
    if binary.is_none() && master.is_none() && !config.exists() {
        return Err(DiscoveryError::NothingFound(default_conf));
    }
    if let Err(source) = std::fs::File::open(&config) {
        return Err(DiscoveryError::ConfigUnreadable {
            path: config,
            source,
        });
    }
    via.insert("config".to_owned(), config_via);

    let prefix = if let Some(p) = &opts.prefix {
        via.insert("prefix".to_owned(), "--prefix".to_owned());
        Some(p.clone())
    } else if let Some(p) = master.as_ref().and_then(|m| m.prefix_arg.clone()) {
        via.insert("prefix".to_owned(), "master command line (-p)".to_owned());
        Some(p)
    } else if let Some(p) = build.prefix.clone() {
        via.insert("prefix".to_owned(), "nginx -V --prefix".to_owned());
        Some(p)
    } else {
        None
    };
    if let Some(m) = &master {
        via.insert(
            "master".to_owned(),
            format!("process table: pid {} `{}`", m.pid, m.title),
        );
    }
    let other_masters = masters
        .into_iter()
        .filter(|m| Some(m.pid) != master.as_ref().map(|x| x.pid))
        .collect();
    Ok(Discovery {
        binary,
        build,
        config,
        prefix,
        master,
        other_masters,
        via,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_titles() {
        let (c, p) = parse_master_title(
            "nginx: master process /usr/sbin/nginx -p /tmp/lab/ -c /tmp/lab/conf/nginx.conf",
        )
        .unwrap();
        assert_eq!(c, Some(PathBuf::from("/tmp/lab/conf/nginx.conf")));
        assert_eq!(p, Some(PathBuf::from("/tmp/lab/")));
        let (c, p) = parse_master_title(
            "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
        )
        .unwrap();
        assert_eq!((c, p), (None, None));
        assert!(parse_master_title("nginx: worker process").is_none());
        assert!(parse_master_title("/usr/bin/python3 app.py").is_none());
    }

    #[test]
    fn build_info_debian() {
        let text = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.11 19 Sep 2023\nTLS SNI support enabled\nconfigure arguments: --with-cc-opt='-g -O2 -ffile-prefix-map=/build/nginx=. -fstack-protector-strong' --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf --http-log-path=/var/log/nginx/access.log --error-log-path=stderr --lock-path=/var/lock/nginx.lock --pid-path=/run/nginx.pid --http-client-body-temp-path=/var/lib/nginx/body --http-proxy-temp-path=/var/lib/nginx/proxy --with-threads\n";
        let info = parse_build_info(text);
        assert_eq!(info.pid_path.as_deref(), Some("/run/nginx.pid"));
        assert_eq!(
            info.http_temp_paths,
            vec![
                (
                    "--http-client-body-temp-path".to_owned(),
                    "/var/lib/nginx/body".to_owned()
                ),
                (
                    "--http-proxy-temp-path".to_owned(),
                    "/var/lib/nginx/proxy".to_owned()
                ),
            ]
        );
        assert_eq!(info.version.as_deref(), Some("1.22.1"));
        assert_eq!(info.prefix, Some(PathBuf::from("/usr/share/nginx")));
        assert_eq!(info.conf_path, Some(PathBuf::from("/etc/nginx/nginx.conf")));
        assert_eq!(info.error_log_path.as_deref(), Some("stderr"));
        assert_eq!(
            info.http_log_path.as_deref(),
            Some("/var/log/nginx/access.log")
        );
        assert_eq!(parse_build_info("garbage"), BuildInfo::default());
    }

    #[test]
    fn prefix_relative_paths() {
        assert_eq!(
            under_prefix(Path::new("conf/nginx.conf"), Some(Path::new("/opt/n/"))),
            PathBuf::from("/opt/n/conf/nginx.conf")
        );
        assert_eq!(
            under_prefix(Path::new("/etc/n.conf"), Some(Path::new("/opt/n"))),
            PathBuf::from("/etc/n.conf")
        );
    }
}
