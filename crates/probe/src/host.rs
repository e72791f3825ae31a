//! Host state that explains 502s outside nginx's config: mandatory access control and file
//! descriptor limits.
//!
//! - SELinux: the mode ([`selinux`]), booleans ([`selinux_boolean`]), a process's label
//!   ([`process_context`]) and AVC denials in the audit log ([`avc_denials`],
//!   [`parse_avc`]). A TCP `connect()` failing with errno 13 is almost always SELinux.
//! - AppArmor: whether it is on ([`apparmor`]), a process's profile and mode
//!   ([`apparmor_profile`]) and `apparmor="DENIED"` lines ([`apparmor_denials`]). A unix
//!   socket connect denied by AppArmor also shows as errno 13, with file modes that allow it.
//! - File descriptors: a process's open files against its `RLIMIT_NOFILE` ([`fd_usage`]) and
//!   the system-wide file table ([`file_nr`]) (errno 24 EMFILE and 23 ENFILE).
//! - Reading logs: the tail of a file ([`tail_lines`]) and the kernel ring buffer
//!   ([`kernel_messages`]), both bounded.
//!
//! Every reader of `/proc` and `/sys` takes a `root` under which the machine's `/` is laid
//! out, so tests can use a temporary directory; production passes `Path::new("/")`. Every
//! read is bounded in size and count, and nothing here panics on what it reads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use crate::error::ProbeError;
use crate::kmsg;

/// Largest `/proc` or `/sys` file read whole (labels, limits, flags).
const MAX_SMALL_FILE: u64 = 64 * 1024;
/// Largest part of AppArmor's profile list read to count profiles.
const MAX_PROFILES_BYTES: u64 = 4 * 1024 * 1024;
/// A log line is kept up to this many bytes.
const MAX_LINE_BYTES: usize = 4096;

// ---------------------------------------------------------------------------------------
// SELinux
// ---------------------------------------------------------------------------------------

/// The SELinux mode of the host.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelinuxState {
    /// No SELinux in this kernel (no `/sys/fs/selinux`).
    NotPresent,
    /// Built in but not active (selinuxfs not mounted, or its `enforce` unreadable).
    Disabled,
    /// Active; denials are logged but nothing is blocked.
    Permissive,
    /// Active and enforcing: denials block the operation (`EACCES`).
    Enforcing,
}

/// The SELinux mode, from `<root>/sys/fs/selinux/enforce` (`1` enforcing, `0` permissive).
pub fn selinux(root: &Path) -> SelinuxState {
    let fs_dir = root.join("sys/fs/selinux");
    if !fs_dir.is_dir() {
        return SelinuxState::NotPresent;
    }
    match read_small(&fs_dir.join("enforce"))
        .as_deref()
        .map(str::trim)
    {
        Some("1") => SelinuxState::Enforcing,
        Some("0") => SelinuxState::Permissive,
        _ => SelinuxState::Disabled,
    }
}

/// The current value of an SELinux boolean, from `<root>/sys/fs/selinux/booleans/NAME`
/// (`"1 1"`: current, then pending). `None` when the boolean does not exist, is unreadable,
/// or `name` is not a plain file name.
pub fn selinux_boolean(root: &Path, name: &str) -> Option<bool> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let text = read_small(&root.join("sys/fs/selinux/booleans").join(name))?;
    match text.split_whitespace().next()? {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// The security label of process `pid` from `<root>/proc/PID/attr/current`: an SELinux
/// context (`system_u:system_r:httpd_t:s0`) or an AppArmor label
/// (`/usr/sbin/nginx (enforce)`, `unconfined`). `None` when no such module provides one
/// (the kernel answers `EINVAL`), the process is gone, or the label is empty.
pub fn process_context(root: &Path, pid: u32) -> Option<String> {
    let text = read_small(&root.join(format!("proc/{pid}/attr/current")))?;
    let label = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!label.is_empty()).then(|| label.to_owned())
}

/// The type (domain) of an SELinux context: `httpd_t` in `system_u:system_r:httpd_t:s0`.
pub fn selinux_type(context: &str) -> Option<&str> {
    context.split(':').nth(2).filter(|t| !t.is_empty())
}

/// One `avc: denied` record of the audit log (or of the kernel log when auditd is not
/// running).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvcDenial {
    /// When it happened: the seconds of `audit(SECONDS:SERIAL)`, since the epoch.
    pub time: f64,
    /// `pid=`.
    pub pid: Option<u32>,
    /// `comm=`, without quotes.
    pub comm: Option<String>,
    /// The permissions denied, e.g. `["name_connect"]`.
    pub permissions: Vec<String>,
    /// `dest=`: the TCP port of a `name_connect`.
    pub dest_port: Option<u16>,
    /// `path=`, else `name=` (a socket's path, or only its file name).
    pub path: Option<String>,
    /// `scontext=`: who was denied, e.g. `system_u:system_r:httpd_t:s0`.
    pub scontext: Option<String>,
    /// `tcontext=`: what was denied, e.g. `system_u:object_r:unreserved_port_t:s0`.
    pub tcontext: Option<String>,
    /// `tclass=`, e.g. `tcp_socket`, `unix_stream_socket`, `sock_file`.
    pub tclass: Option<String>,
    /// `permissive=1`: logged only, not blocked (the domain or host is permissive).
    pub permissive: Option<bool>,
    /// The line, cut at 4096 bytes.
    pub line: String,
}

/// Reads the last `max_bytes` of an audit log and returns its `avc: denied` records, oldest
/// first, dropping those older than `since_epoch` (seconds since the epoch). Lines that are
/// not AVC denials or are malformed are skipped.
pub fn avc_denials(
    path: &Path,
    since_epoch: Option<f64>,
    max_bytes: u64,
) -> Result<Vec<AvcDenial>, ProbeError> {
    let lines = tail_lines(path, max_bytes)?;
    Ok(lines
        .iter()
        .filter_map(|line| parse_avc(line))
        .filter(|d| since_epoch.is_none_or(|since| d.time >= since))
        .collect())
}

/// Parses one AVC denial, as auditd writes it (`type=AVC msg=audit(1700000000.123:456):
/// avc:  denied  { name_connect } for  pid=1234 comm="nginx" dest=8000 ...`) or as the
/// kernel logs it (`audit: type=1400 audit(...): avc:  denied ...`). `None` for anything
/// else, including `avc:  granted` and lines without an `audit(...)` time.
pub fn parse_avc(line: &str) -> Option<AvcDenial> {
    let time = audit_time(line)?;
    let (_, after) = line.split_once("avc:")?;
    let after = after.trim_start().strip_prefix("denied")?;
    let after = after.trim_start().strip_prefix('{')?;
    let (perms, rest) = after.split_once('}')?;
    let permissions: Vec<String> = perms.split_whitespace().map(str::to_owned).collect();
    if permissions.is_empty() {
        return None;
    }
    let mut denial = AvcDenial {
        time,
        pid: None,
        comm: None,
        permissions,
        dest_port: None,
        path: None,
        scontext: None,
        tcontext: None,
        tclass: None,
        permissive: None,
        line: cap(line, MAX_LINE_BYTES).to_owned(),
    };
    let mut name = None;
    for (key, value) in fields(rest) {
        match key {
            "pid" => denial.pid = value.parse().ok(),
            "comm" => denial.comm = Some(value.to_owned()),
            "dest" => denial.dest_port = value.parse().ok(),
            "path" => denial.path = Some(value.to_owned()),
            "name" => name = Some(value.to_owned()),
            "scontext" => denial.scontext = Some(value.to_owned()),
            "tcontext" => denial.tcontext = Some(value.to_owned()),
            "tclass" => denial.tclass = Some(value.to_owned()),
            "permissive" => {
                denial.permissive = match value {
                    "1" => Some(true),
                    "0" => Some(false),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    if denial.path.is_none() {
        denial.path = name;
    }
    Some(denial)
}

/// The seconds of `audit(SECONDS:SERIAL)` in a line.
fn audit_time(line: &str) -> Option<f64> {
    let (_, after) = line.split_once("audit(")?;
    let (seconds, _) = after.split_once(':')?;
    let time: f64 = seconds.parse().ok()?;
    (time.is_finite() && time >= 0.0).then_some(time)
}

/// The `key=value` pairs of an audit record; values may be quoted with `"` or `'`. Tokens
/// without `=` are skipped.
fn fields(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    // Each iteration consumes at least one byte of `rest`, so the loop ends with the text.
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = rest.get(..key_end).unwrap_or_default();
        let after_key = rest.get(key_end..).unwrap_or_default();
        let Some(value_text) = after_key.strip_prefix('=') else {
            // A token without `=` (or an empty remainder): skip it.
            rest = after_key;
            if key_end == 0 {
                // Cannot happen after trim_start, but never loop without progress.
                rest = rest.get(1..).unwrap_or_default();
            }
            continue;
        };
        let (value, remainder) = match value_text.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let inner = value_text.get(1..).unwrap_or_default();
                match inner.find(quote) {
                    Some(end) => (
                        inner.get(..end).unwrap_or_default(),
                        inner.get(end + 1..).unwrap_or_default(),
                    ),
                    None => (inner, ""),
                }
            }
            _ => {
                let end = value_text
                    .find(char::is_whitespace)
                    .unwrap_or(value_text.len());
                (
                    value_text.get(..end).unwrap_or_default(),
                    value_text.get(end..).unwrap_or_default(),
                )
            }
        };
        if !key.is_empty() {
            out.push((key, value));
        }
        rest = remainder;
    }
    out
}

// ---------------------------------------------------------------------------------------
// AppArmor
// ---------------------------------------------------------------------------------------

/// Whether AppArmor is on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AppArmorState {
    /// No AppArmor in this kernel (no `/sys/module/apparmor`).
    NotPresent,
    /// Built in but disabled (`enabled` is `N`).
    Disabled,
    /// Enabled.
    Enabled {
        /// How many profiles are loaded, when `/sys/kernel/security/apparmor/profiles` is
        /// readable (securityfs mounted, root).
        profiles_loaded: Option<usize>,
    },
}

/// AppArmor's state, from `<root>/sys/module/apparmor/parameters/enabled` (`Y`/`N`) and the
/// line count of `<root>/sys/kernel/security/apparmor/profiles` (bounded).
pub fn apparmor(root: &Path) -> AppArmorState {
    let Some(enabled) = read_small(&root.join("sys/module/apparmor/parameters/enabled")) else {
        return AppArmorState::NotPresent;
    };
    if enabled.trim() != "Y" {
        return AppArmorState::Disabled;
    }
    let profiles_loaded = count_lines(
        &root.join("sys/kernel/security/apparmor/profiles"),
        MAX_PROFILES_BYTES,
    );
    AppArmorState::Enabled { profiles_loaded }
}

/// Counts the non-empty lines in the first `max_bytes` of a file.
fn count_lines(path: &Path, max_bytes: u64) -> Option<usize> {
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(max_bytes)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(
        bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .count(),
    )
}

/// The AppArmor profile and mode of process `pid`: `("/usr/sbin/nginx", "enforce")`,
/// `("unconfined", "unconfined")`. Read from `<root>/proc/PID/attr/apparmor/current`, else
/// `<root>/proc/PID/attr/current`. `None` when neither holds an AppArmor label (an SELinux
/// context is not one).
pub fn apparmor_profile(root: &Path, pid: u32) -> Option<(String, String)> {
    let proc_dir = root.join(format!("proc/{pid}/attr"));
    [proc_dir.join("apparmor/current"), proc_dir.join("current")]
        .iter()
        .find_map(|path| parse_apparmor_label(&read_small(path)?))
}

/// Parses an AppArmor label: `PROFILE (MODE)` or `unconfined`.
fn parse_apparmor_label(text: &str) -> Option<(String, String)> {
    let label = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if label == "unconfined" {
        return Some(("unconfined".to_owned(), "unconfined".to_owned()));
    }
    let (profile, mode) = label.strip_suffix(')')?.rsplit_once(" (")?;
    if profile.is_empty() || mode.is_empty() || mode.contains(char::is_whitespace) {
        return None;
    }
    Some((profile.to_owned(), mode.to_owned()))
}

/// One `apparmor="DENIED"` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppArmorDenial {
    /// When it happened (`audit(SECONDS:SERIAL)`), when the line carries it.
    pub time: Option<f64>,
    /// `operation=`, e.g. `connect`, `open`, `create`.
    pub operation: String,
    /// `profile=`, e.g. `/usr/sbin/nginx`.
    pub profile: String,
    /// `name=`: the file or socket path.
    pub name: Option<String>,
    /// `pid=`.
    pub pid: Option<u32>,
    /// `comm=`.
    pub comm: Option<String>,
    /// `requested_mask=`.
    pub requested_mask: Option<String>,
    /// `denied_mask=`.
    pub denied_mask: Option<String>,
    /// `family=` of a network rule denial (`inet`, `inet6`, `unix`).
    pub family: Option<String>,
    /// The line, cut at 4096 bytes.
    pub line: String,
}

/// The AppArmor denials among kernel or audit log lines (`apparmor="DENIED"
/// operation="connect" profile="/usr/sbin/nginx" name="/run/php/php8.2-fpm.sock" pid=1
/// comm="nginx" requested_mask="wr" denied_mask="wr"`), in input order. Other lines,
/// `ALLOWED` (complain mode) records and malformed ones are skipped.
pub fn apparmor_denials<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<AppArmorDenial> {
    lines
        .into_iter()
        .filter_map(parse_apparmor_denial)
        .collect()
}

fn parse_apparmor_denial(line: &str) -> Option<AppArmorDenial> {
    if !line.contains("apparmor=") {
        return None;
    }
    let mut verdict = None;
    let mut operation = None;
    let mut profile = None;
    let mut denial = AppArmorDenial {
        time: audit_time(line),
        operation: String::new(),
        profile: String::new(),
        name: None,
        pid: None,
        comm: None,
        requested_mask: None,
        denied_mask: None,
        family: None,
        line: cap(line, MAX_LINE_BYTES).to_owned(),
    };
    for (key, value) in fields(line) {
        match key {
            "apparmor" => verdict = Some(value),
            "operation" => operation = Some(value),
            "profile" => profile = Some(value),
            "name" => denial.name = Some(value.to_owned()),
            "pid" => denial.pid = value.parse().ok(),
            "comm" => denial.comm = Some(value.to_owned()),
            "requested_mask" => denial.requested_mask = Some(value.to_owned()),
            "denied_mask" => denial.denied_mask = Some(value.to_owned()),
            "family" => denial.family = Some(value.to_owned()),
            _ => {}
        }
    }
    if verdict != Some("DENIED") {
        return None;
    }
    denial.operation = operation.filter(|o| !o.is_empty())?.to_owned();
    denial.profile = profile.filter(|p| !p.is_empty())?.to_owned();
    Some(denial)
}

// ---------------------------------------------------------------------------------------
// File descriptors
// ---------------------------------------------------------------------------------------

/// A process's open files against its `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdUsage {
    /// Entries of `/proc/PID/fd` counted (at most the `max_count` asked for).
    pub open: usize,
    /// Counting stopped at `max_count`: more are open.
    pub truncated: bool,
    /// The soft limit ("Max open files" of `/proc/PID/limits`); `None` when unlimited or
    /// unreadable.
    pub soft_limit: Option<u64>,
    /// The hard limit; `None` when unlimited or unreadable.
    pub hard_limit: Option<u64>,
}

/// Counts the open files of `pid` (`<root>/proc/PID/fd`, at most `max_count`) and reads its
/// "Max open files" limits. Fails when the fd directory cannot be read (process gone, or
/// not root).
pub fn fd_usage(root: &Path, pid: u32, max_count: usize) -> Result<FdUsage, ProbeError> {
    let dir = root.join(format!("proc/{pid}/fd"));
    let entries = fs::read_dir(&dir).map_err(|source| ProbeError::Io {
        what: format!("listing {}", dir.display()),
        source,
    })?;
    let mut open = 0usize;
    let mut truncated = false;
    for entry in entries {
        if entry.is_err() {
            // A descriptor closed while listing: not counted.
            continue;
        }
        if open >= max_count {
            truncated = true;
            break;
        }
        open += 1;
    }
    let (soft_limit, hard_limit) = open_files_limit(root, pid).unwrap_or((None, None));
    Ok(FdUsage {
        open,
        truncated,
        soft_limit,
        hard_limit,
    })
}

/// Raises this process's soft open-file limit to its hard limit (at most 65,536), so that
/// probing many upstreams at once does not fail with EMFILE where nginx would not. Returns
/// the (old, new) soft limit when it changed; `None` when it was already high enough or the
/// limit cannot be read or set.
pub fn raise_open_files_limit() -> Option<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    const WANTED: u64 = 65_536;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let target = hard.min(WANTED);
    if soft >= target {
        return None;
    }
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).ok()?;
    Some((soft, target))
}

/// The soft and hard "Max open files" of process `pid` (`<root>/proc/PID/limits`;
/// `unlimited` is `None`); `None` when unreadable.
pub fn open_files_limit(root: &Path, pid: u32) -> Option<(Option<u64>, Option<u64>)> {
    parse_open_files_limit(&read_small(&root.join(format!("proc/{pid}/limits")))?)
}

/// The soft and hard "Max open files" of a `/proc/PID/limits` text (`unlimited` is `None`).
/// `None` when the line is missing.
fn parse_open_files_limit(text: &str) -> Option<(Option<u64>, Option<u64>)> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line.get("Max open files".len()..)?.split_whitespace();
    let soft = values.next()?;
    let hard = values.next()?;
    let parse = |v: &str| -> Option<Option<u64>> {
        if v == "unlimited" {
            Some(None)
        } else {
            v.parse().ok().map(Some)
        }
    };
    Some((parse(soft)?, parse(hard)?))
}

/// The system-wide file table, from `<root>/proc/sys/fs/file-nr`: (allocated, max). When
/// allocated reaches max, every `open()`/`socket()` fails with ENFILE (23).
pub fn file_nr(root: &Path) -> Option<(u64, u64)> {
    let text = read_small(&root.join("proc/sys/fs/file-nr"))?;
    let mut parts = text.split_whitespace();
    let allocated = parts.next()?.parse().ok()?;
    let _unused = parts.next()?;
    let max = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((allocated, max))
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

/// The complete lines in the last `max_bytes` of a regular file, oldest first (a partial
/// first line is dropped when the tail starts mid-file; invalid UTF-8 becomes U+FFFD; each
/// line is cut at 4096 bytes).
pub fn tail_lines(path: &Path, max_bytes: u64) -> Result<Vec<String>, ProbeError> {
    let io_err = |source| ProbeError::Io {
        what: format!("reading {}", path.display()),
        source,
    };
    let bytes = read_tail(path, max_bytes).map_err(io_err)?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let text = String::from_utf8_lossy(line);
            let text = text.strip_suffix('\r').unwrap_or(&text);
            cap(text, MAX_LINE_BYTES).to_owned()
        })
        .collect())
}

/// The last `max_bytes` of a regular file, starting after the first newline when the tail
/// starts mid-file. Opened without blocking, so a FIFO in a log's place cannot hang the
/// read: anything but a regular file is an error.
pub fn read_tail(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let start = meta.len().saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity(usize::try_from(max_bytes.min(1 << 20)).unwrap_or(0));
    file.take(max_bytes).read_to_end(&mut bytes)?;
    if start > 0 {
        let skip = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |at| at + 1);
        bytes.drain(..skip);
    }
    Ok(bytes)
}

/// The kernel log messages (from `/dev/kmsg`, without blocking) that contain `contains`,
/// oldest first, at most the `max` most recent. Each message is the text after the record
/// prefix, cut at 4096 bytes. Fails when `/dev/kmsg` cannot be opened (see [`kmsg::read`]).
pub fn kernel_messages(contains: &str, max: usize) -> Result<Vec<String>, ProbeError> {
    let found = kmsg::read(
        |record| {
            let (_, message) = kmsg::split(record)?;
            message
                .contains(contains)
                .then(|| cap(message, MAX_LINE_BYTES).to_owned())
        },
        max,
    )?;
    tracing::debug!(matched = found.len(), "kernel log read");
    Ok(found)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A small file (at most 64 KiB) as text; `None` when absent or unreadable.
fn read_small(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(MAX_SMALL_FILE)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cap(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_file_limit_is_raised_to_the_hard_limit() {
        use nix::sys::resource::{Resource, getrlimit};
        let changed = raise_open_files_limit();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert!(soft >= hard.min(65_536), "soft {soft}, hard {hard}");
        if let Some((old, new)) = changed {
            assert!(old < new && new == soft);
        }
        // Already high enough: nothing to do the second time.
        assert_eq!(raise_open_files_limit(), None);
    }
    use std::path::PathBuf;

    /// Writes `text` at `root/rel`, creating parents.
    fn put(root: &Path, rel: &str, text: &str) -> PathBuf {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    // ---- SELinux ----

    #[test]
    fn selinux_modes_from_fixtures() {
        let absent = tempfile::tempdir().unwrap();
        assert_eq!(selinux(absent.path()), SelinuxState::NotPresent);

        let disabled = tempfile::tempdir().unwrap();
        fs::create_dir_all(disabled.path().join("sys/fs/selinux")).unwrap();
        assert_eq!(selinux(disabled.path()), SelinuxState::Disabled);

        let permissive = tempfile::tempdir().unwrap();
        put(permissive.path(), "sys/fs/selinux/enforce", "0");
        assert_eq!(selinux(permissive.path()), SelinuxState::Permissive);

        let enforcing = tempfile::tempdir().unwrap();
        put(enforcing.path(), "sys/fs/selinux/enforce", "1\n");
        assert_eq!(selinux(enforcing.path()), SelinuxState::Enforcing);

        let garbage = tempfile::tempdir().unwrap();
        put(garbage.path(), "sys/fs/selinux/enforce", "yes");
        assert_eq!(selinux(garbage.path()), SelinuxState::Disabled);
    }

    #[test]
    fn selinux_absent_on_this_machine() {
        // This Debian test machine has no SELinux; the live reader must say so.
        if !Path::new("/sys/fs/selinux").exists() {
            assert_eq!(selinux(Path::new("/")), SelinuxState::NotPresent);
        }
    }

    #[test]
    fn selinux_booleans() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(
            root,
            "sys/fs/selinux/booleans/httpd_can_network_connect",
            "0 0",
        );
        put(
            root,
            "sys/fs/selinux/booleans/httpd_can_network_relay",
            "1 1",
        );
        // Set but pending a commit: the current value counts.
        put(root, "sys/fs/selinux/booleans/httpd_setrlimit", "0 1");
        assert_eq!(
            selinux_boolean(root, "httpd_can_network_connect"),
            Some(false)
        );
        assert_eq!(selinux_boolean(root, "httpd_can_network_relay"), Some(true));
        assert_eq!(selinux_boolean(root, "httpd_setrlimit"), Some(false));
        assert_eq!(selinux_boolean(root, "no_such_boolean"), None);
        assert_eq!(selinux_boolean(root, "../booleans/httpd_setrlimit"), None);
        assert_eq!(selinux_boolean(root, ""), None);
        put(root, "sys/fs/selinux/booleans/odd", "maybe");
        assert_eq!(selinux_boolean(root, "odd"), None);
    }

    #[test]
    fn process_labels() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(
            root,
            "proc/10/attr/current",
            "system_u:system_r:httpd_t:s0\0",
        );
        put(root, "proc/11/attr/current", "/usr/sbin/nginx (enforce)\n");
        put(root, "proc/12/attr/current", "\0");
        assert_eq!(
            process_context(root, 10).as_deref(),
            Some("system_u:system_r:httpd_t:s0")
        );
        assert_eq!(
            process_context(root, 11).as_deref(),
            Some("/usr/sbin/nginx (enforce)")
        );
        assert_eq!(process_context(root, 12), None);
        assert_eq!(process_context(root, 13), None);
        assert_eq!(
            selinux_type("system_u:system_r:httpd_t:s0"),
            Some("httpd_t")
        );
        assert_eq!(
            selinux_type("unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"),
            Some("unconfined_t")
        );
        assert_eq!(selinux_type("unconfined"), None);
    }

    // ---- AVC ----

    const AVC_TCP: &str = "type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_connect } for  pid=1234 comm=\"nginx\" dest=8000 scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:object_r:soundd_port_t:s0 tclass=tcp_socket permissive=0";
    const AVC_SOCK: &str = "type=AVC msg=audit(1700000100.5:460): avc:  denied  { write } for  pid=1235 comm=\"nginx\" name=\"app.sock\" dev=\"tmpfs\" ino=4242 scontext=system_u:system_r:httpd_t:s0 tcontext=unconfined_u:object_r:user_tmp_t:s0 tclass=sock_file permissive=0";
    const AVC_CONNECTTO: &str = "audit: type=1400 audit(1700000200.000:470): avc:  denied  { connectto } for  pid=1236 comm=\"nginx\" path=\"/srv/app/app.sock\" scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:system_r:unconfined_service_t:s0 tclass=unix_stream_socket permissive=1";

    #[test]
    fn avc_lines_parse() {
        let tcp = parse_avc(AVC_TCP).unwrap();
        assert_eq!(tcp.time, 1_700_000_000.123);
        assert_eq!(tcp.pid, Some(1234));
        assert_eq!(tcp.comm.as_deref(), Some("nginx"));
        assert_eq!(tcp.permissions, ["name_connect"]);
        assert_eq!(tcp.dest_port, Some(8000));
        assert_eq!(tcp.path, None);
        assert_eq!(
            tcp.scontext.as_deref(),
            Some("system_u:system_r:httpd_t:s0")
        );
        assert_eq!(
            tcp.tcontext.as_deref(),
            Some("system_u:object_r:soundd_port_t:s0")
        );
        assert_eq!(tcp.tclass.as_deref(), Some("tcp_socket"));
        assert_eq!(tcp.permissive, Some(false));
        assert_eq!(tcp.line, AVC_TCP);

        let sock = parse_avc(AVC_SOCK).unwrap();
        assert_eq!(sock.path.as_deref(), Some("app.sock"));
        assert_eq!(sock.tclass.as_deref(), Some("sock_file"));
        assert_eq!(sock.dest_port, None);

        // The kernel's own form (no auditd), with path= and permissive=1.
        let connectto = parse_avc(AVC_CONNECTTO).unwrap();
        assert_eq!(connectto.time, 1_700_000_200.0);
        assert_eq!(connectto.path.as_deref(), Some("/srv/app/app.sock"));
        assert_eq!(connectto.permissive, Some(true));
        assert_eq!(connectto.permissions, ["connectto"]);
    }

    #[test]
    fn avc_malformed_and_other_lines_are_skipped() {
        for line in [
            "",
            "garbage",
            "type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=42 success=no exit=-13 comm=\"nginx\"",
            "type=AVC msg=audit(1700000000.123:456): avc:  granted  { setenforce } for pid=1",
            "type=AVC msg=audit(1700000000.123:456): avc:  denied  { } for pid=1",
            "type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_connect for pid=1",
            "type=AVC msg=audit(nope:456): avc:  denied  { name_connect } for pid=1",
            "type=AVC msg=audit(-5:456): avc:  denied  { name_connect } for pid=1",
            "avc:  denied  { name_connect } for pid=1 comm=\"nginx\" dest=8000",
        ] {
            assert_eq!(parse_avc(line), None, "{line}");
        }
        // Broken values are dropped, the record is kept.
        let odd = parse_avc(
            "type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_connect } for pid=x dest=99999 comm=\"unterminated",
        )
        .unwrap();
        assert_eq!((odd.pid, odd.dest_port), (None, None));
        assert_eq!(odd.comm.as_deref(), Some("unterminated"));
    }

    #[test]
    fn avc_denials_from_a_file_with_window_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let noise = "type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=42 success=no exit=-13\n";
        fs::write(
            &path,
            format!("{AVC_TCP}\n{noise}{AVC_SOCK}\n\u{0}\u{ff}binary junk\n{AVC_CONNECTTO}\n"),
        )
        .unwrap();
        let all = avc_denials(&path, None, 1 << 20).unwrap();
        assert_eq!(all.len(), 3);
        let recent = avc_denials(&path, Some(1_700_000_050.0), 1 << 20).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.first().map(|d| d.time), Some(1_700_000_100.5));
        // A tail that starts inside the second denial keeps only the last one.
        let tail = (AVC_CONNECTTO.len() + 1 + "\u{0}\u{ff}binary junk\n".len() + 10) as u64;
        let last = avc_denials(&path, None, tail).unwrap();
        assert_eq!(last.len(), 1);
        assert!(avc_denials(&path, None, 0).unwrap().is_empty());
        assert!(avc_denials(&dir.path().join("missing.log"), None, 100).is_err());
        // A directory is not a log.
        assert!(avc_denials(dir.path(), None, 100).is_err());
    }

    #[test]
    fn fields_parser_never_stalls() {
        assert_eq!(
            fields(r#" a=1 b="x y" junk c='q' d= ="v" e"#),
            [("a", "1"), ("b", "x y"), ("c", "q"), ("d", "")]
        );
        assert!(fields("").is_empty());
        assert!(fields("====").is_empty());
        assert_eq!(fields("k=\"unterminated"), vec![("k", "unterminated")]);
    }

    // ---- AppArmor ----

    #[test]
    fn apparmor_states_from_fixtures() {
        let absent = tempfile::tempdir().unwrap();
        assert_eq!(apparmor(absent.path()), AppArmorState::NotPresent);

        let off = tempfile::tempdir().unwrap();
        put(off.path(), "sys/module/apparmor/parameters/enabled", "N\n");
        assert_eq!(apparmor(off.path()), AppArmorState::Disabled);

        let on = tempfile::tempdir().unwrap();
        put(on.path(), "sys/module/apparmor/parameters/enabled", "Y\n");
        assert_eq!(
            apparmor(on.path()),
            AppArmorState::Enabled {
                profiles_loaded: None
            }
        );
        put(
            on.path(),
            "sys/kernel/security/apparmor/profiles",
            "/usr/sbin/nginx (enforce)\nlsb_release (enforce)\n/usr/sbin/cupsd (complain)\n",
        );
        assert_eq!(
            apparmor(on.path()),
            AppArmorState::Enabled {
                profiles_loaded: Some(3)
            }
        );
    }

    #[test]
    fn apparmor_profiles_of_processes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(
            root,
            "proc/20/attr/apparmor/current",
            "/usr/sbin/nginx (enforce)\n",
        );
        put(root, "proc/20/attr/current", "unconfined\n");
        put(root, "proc/21/attr/current", "unconfined\n");
        put(
            root,
            "proc/22/attr/current",
            "system_u:system_r:httpd_t:s0\0",
        );
        put(root, "proc/23/attr/current", "nginx-profile (complain)");
        assert_eq!(
            apparmor_profile(root, 20),
            Some(("/usr/sbin/nginx".to_owned(), "enforce".to_owned()))
        );
        assert_eq!(
            apparmor_profile(root, 21),
            Some(("unconfined".to_owned(), "unconfined".to_owned()))
        );
        assert_eq!(apparmor_profile(root, 22), None);
        assert_eq!(
            apparmor_profile(root, 23),
            Some(("nginx-profile".to_owned(), "complain".to_owned()))
        );
        assert_eq!(apparmor_profile(root, 24), None);
        assert_eq!(parse_apparmor_label(" (enforce)"), None);
        assert_eq!(parse_apparmor_label("x (a b)"), None);
    }

    #[test]
    fn apparmor_denial_lines() {
        let kernel = r#"audit: type=1400 audit(1700000300.512:88): apparmor="DENIED" operation="connect" class="file" profile="/usr/sbin/nginx" name="/run/php/php8.2-fpm.sock" pid=4321 comm="nginx" requested_mask="wr" denied_mask="wr" fsuid=33 ouid=33"#;
        let audit = r#"type=AVC msg=audit(1700000301.000:89): apparmor="DENIED" operation="create" class="net" profile="/usr/sbin/nginx" pid=4321 comm="nginx" family="inet" sock_type="stream" protocol=6 requested_mask="create" denied_mask="create""#;
        let syslog = r#"Nov 24 10:00:00 host kernel: [ 12.345] audit: type=1400 audit(1700000302.000:90): apparmor="ALLOWED" operation="connect" profile="/usr/sbin/nginx" name="/run/x.sock" pid=1 comm="nginx" requested_mask="wr" denied_mask="wr""#;
        let broken = r#"apparmor="DENIED" operation="connect" name="/run/x.sock""#;
        let bare = r#"apparmor="DENIED" operation="open" profile="nginx" name="/srv/www/index.html" pid=7 comm="nginx" requested_mask="r" denied_mask="r""#;
        let denials = apparmor_denials([kernel, audit, syslog, broken, "noise", "", bare]);
        assert_eq!(denials.len(), 3);
        let first = denials.first().unwrap();
        assert_eq!(first.time, Some(1_700_000_300.512));
        assert_eq!(first.operation, "connect");
        assert_eq!(first.profile, "/usr/sbin/nginx");
        assert_eq!(first.name.as_deref(), Some("/run/php/php8.2-fpm.sock"));
        assert_eq!(first.pid, Some(4321));
        assert_eq!(first.comm.as_deref(), Some("nginx"));
        assert_eq!(first.requested_mask.as_deref(), Some("wr"));
        assert_eq!(first.denied_mask.as_deref(), Some("wr"));
        let second = denials.get(1).unwrap();
        assert_eq!(second.family.as_deref(), Some("inet"));
        assert_eq!(second.name, None);
        let third = denials.get(2).unwrap();
        assert_eq!(third.time, None);
        assert_eq!(third.operation, "open");
    }

    #[test]
    fn kernel_messages_of_this_machine() {
        // /dev/kmsg is readable here (root); the filter and the bound hold.
        let lines = kernel_messages("Linux version", 1).expect("/dev/kmsg readable");
        assert!(lines.len() <= 1);
        assert!(lines.iter().all(|l| l.contains("Linux version")));
        assert!(
            kernel_messages("no such message \u{1}\u{2}", 10)
                .unwrap()
                .is_empty()
        );
    }

    // ---- File descriptors ----

    #[test]
    fn limits_text() {
        let text = "\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
";
        assert_eq!(
            parse_open_files_limit(text),
            Some((Some(1024), Some(524_288)))
        );
        assert_eq!(
            parse_open_files_limit("Max open files unlimited unlimited files\n"),
            Some((None, None))
        );
        assert_eq!(parse_open_files_limit("Max cpu time 1 2 seconds\n"), None);
        assert_eq!(
            parse_open_files_limit("Max open files lots 5 files\n"),
            None
        );
        assert_eq!(parse_open_files_limit("Max open files 5\n"), None);
    }

    #[test]
    fn fd_usage_of_a_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for fd in 0..5 {
            put(root, &format!("proc/77/fd/{fd}"), "");
        }
        put(
            root,
            "proc/77/limits",
            "Limit Soft Hard Units\nMax open files            8                    4096                 files\n",
        );
        let usage = fd_usage(root, 77, 100).unwrap();
        assert_eq!(
            usage,
            FdUsage {
                open: 5,
                truncated: false,
                soft_limit: Some(8),
                hard_limit: Some(4096)
            }
        );
        let capped = fd_usage(root, 77, 3).unwrap();
        assert_eq!((capped.open, capped.truncated), (3, true));
        let exact = fd_usage(root, 77, 5).unwrap();
        assert_eq!((exact.open, exact.truncated), (5, false));
        // No limits file: limits unknown, count still read.
        for fd in 0..2 {
            put(root, &format!("proc/78/fd/{fd}"), "");
        }
        let no_limits = fd_usage(root, 78, 100).unwrap();
        assert_eq!(
            (no_limits.open, no_limits.soft_limit, no_limits.hard_limit),
            (2, None, None)
        );
        assert!(fd_usage(root, 79, 100).is_err());
    }

    #[test]
    fn fd_usage_of_this_process_rises_with_open_files() {
        let root = Path::new("/");
        let pid = std::process::id();
        let before = fd_usage(root, pid, 1 << 20).unwrap();
        assert!(before.open >= 3, "stdin, stdout, stderr at least");
        assert!(before.soft_limit.is_some(), "{before:?}");
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<File> = (0..20)
            .map(|i| File::create(dir.path().join(format!("f{i}"))).unwrap())
            .collect();
        let during = fd_usage(root, pid, 1 << 20).unwrap();
        // Other test threads open and close files too; ours and stdio are certainly there.
        assert!(
            during.open >= 23,
            "before {} during {}",
            before.open,
            during.open
        );
        assert!(during.soft_limit <= during.hard_limit || during.hard_limit.is_none());
        drop(files);
        assert!(fd_usage(root, u32::MAX, 10).is_err());
    }

    #[test]
    fn file_nr_text() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(file_nr(root), None);
        put(root, "proc/sys/fs/file-nr", "521\t0\t2466177\n");
        assert_eq!(file_nr(root), Some((521, 2_466_177)));
        put(root, "proc/sys/fs/file-nr", "521 0\n");
        assert_eq!(file_nr(root), None);
        // The live file is readable and sane.
        let (allocated, max) = file_nr(Path::new("/")).expect("/proc/sys/fs/file-nr");
        assert!(allocated > 0 && allocated <= max);
    }

    #[test]
    fn tail_lines_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = put(dir.path(), "log", "first\r\nsecond\n\nthird");
        assert_eq!(
            tail_lines(&path, 1 << 20).unwrap(),
            ["first", "second", "third"]
        );
        assert_eq!(tail_lines(&path, 8).unwrap(), ["third"]);
        let long = put(dir.path(), "long", &"é".repeat(5000));
        let lines = tail_lines(&long, 1 << 20).unwrap();
        let line = lines.first().unwrap();
        assert!(line.len() <= MAX_LINE_BYTES && line.len() >= MAX_LINE_BYTES - 1);
    }
}
