//! Facts about one process: the systemd unit it belongs to and when it started.
//!
//! Both answer "was the backend restarted, and by whom?" when a 502 burst lines up with
//! a restart.

use std::fs;
use std::time::{Duration, SystemTime};

/// The systemd service unit of `pid`, from `/proc/PID/cgroup`, e.g. `php8.2-fpm.service`.
/// `None` when the process is gone, unreadable, or not in a `.service` cgroup.
pub fn systemd_unit_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    unit_from_cgroup(&text)
}

/// Finds the innermost `.service` unit in the text of a `/proc/PID/cgroup` file.
///
/// Prefers the unified (cgroup v2, `0::/...`) line, then the v1 `name=systemd` line, then
/// any other line.
pub fn unit_from_cgroup(text: &str) -> Option<String> {
    let mut unified = None;
    let mut named = None;
    let mut others = Vec::new();
    for line in text.lines() {
        // hierarchy-ID:controller-list:cgroup-path (the path may contain ':')
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            unified = Some(path);
        } else if controllers == "name=systemd" {
            named = Some(path);
        } else {
            others.push(path);
        }
    }
    unified
        .into_iter()
        .chain(named)
        .chain(others)
        .find_map(service_in_path)
}

fn service_in_path(path: &str) -> Option<String> {
    path.rsplit('/')
        .find(|part| part.len() > ".service".len() && part.ends_with(".service"))
        .map(str::to_owned)
}

/// When `pid` started: `starttime` from `/proc/PID/stat` (clock ticks since boot) plus
/// the boot time from `/proc/stat`. `None` when the process is gone or unreadable.
pub fn process_start_time(pid: u32) -> Option<SystemTime> {
    let process = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    let ticks = process.stat().ok()?.starttime;
    let boot = procfs::boot_time_secs().ok()?;
    start_time_from(boot, ticks, procfs::ticks_per_second())
}

/// Boot time (epoch seconds) plus `ticks` clock ticks at `ticks_per_second`.
fn start_time_from(boot_secs: u64, ticks: u64, ticks_per_second: u64) -> Option<SystemTime> {
    if ticks_per_second == 0 {
        return None;
    }
    let whole = Duration::from_secs(ticks / ticks_per_second);
    let frac_nanos = (ticks % ticks_per_second)
        .checked_mul(1_000_000_000)
        .map_or(0, |n| n / ticks_per_second);
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(boot_secs))?
        .checked_add(whole)?
        .checked_add(Duration::from_nanos(frac_nanos))
}

/// Whether process `pid` is in our namespace of that kind (`"mnt"`, `"net"`), comparing
/// the `/proc/*/ns/*` link targets; `None` when either cannot be read.
pub fn same_namespace(pid: u32, kind: &str) -> Option<bool> {
    let theirs = fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    let ours = fs::read_link(format!("/proc/self/ns/{kind}")).ok()?;
    Some(theirs == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_service() {
        assert_eq!(
            unit_from_cgroup("0::/system.slice/php8.2-fpm.service\n").as_deref(),
            Some("php8.2-fpm.service")
        );
    }

    #[test]
    fn cgroup_v1_name_systemd_line() {
        let text = "\
12:pids:/system.slice/nginx.service
4:memory:/system.slice/nginx.service
1:name=systemd:/system.slice/nginx.service
0::/
";
        assert_eq!(unit_from_cgroup(text).as_deref(), Some("nginx.service"));
    }

    #[test]
    fn innermost_service_of_user_manager() {
        let text = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/gunicorn.service\n";
        assert_eq!(unit_from_cgroup(text).as_deref(), Some("gunicorn.service"));
    }

    #[test]
    fn not_in_a_service() {
        assert_eq!(unit_from_cgroup("0::/\n"), None);
        assert_eq!(
            unit_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n"),
            None
        );
        assert_eq!(
            unit_from_cgroup("0::/system.slice/docker-0123abcd.scope\n"),
            None
        );
        assert_eq!(unit_from_cgroup("garbage"), None);
        assert_eq!(unit_from_cgroup(""), None);
    }

    #[test]
    fn start_time_arithmetic() {
        let t = start_time_from(1_000, 250, 100).unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::from_millis(1_002_500)
        );
        assert_eq!(start_time_from(1_000, 250, 0), None);
    }

    #[test]
    fn own_process_unit_and_start_time() {
        let pid = std::process::id();
        let started = process_start_time(pid).expect("own start time");
        let now = SystemTime::now();
        // Started in the past (allowing a tick of rounding), and not before 2000.
        assert!(started <= now + Duration::from_secs(1));
        assert!(started > SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800));
        assert_eq!(process_start_time(u32::MAX), None);
        assert_eq!(systemd_unit_of(u32::MAX), None);
    }
}
