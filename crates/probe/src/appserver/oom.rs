//! Kernel OOM kills: the OOM-killer lines still in the kernel ring buffer, with wall-clock
//! times.

use std::fs;
use std::time::{Duration, SystemTime};

use super::logs::{MAX_LINE_BYTES, is_oom_message, truncate};
use super::types::{LogEvent, LogEventKind};
use crate::error::ProbeError;

/// The kernel's OOM-killer lines (`Out of memory: Killed process N (name)`, `Memory cgroup
/// out of memory: Killed process ...`, `oom-kill:...`) still in the kernel ring buffer,
/// oldest first, at most `max` (the most recent ones).
///
/// Reads `/dev/kmsg` without blocking (stops at `EAGAIN`, at most 200 000 records). Record
/// times are microseconds since boot, turned into wall-clock time with `/proc/uptime`;
/// `since` drops older records (it is ignored when the boot time is unknown). Fails when
/// `/dev/kmsg` cannot be opened (it needs root or `CAP_SYSLOG` when
/// `kernel.dmesg_restrict = 1`, and may be absent in containers).
pub fn oom_kills(since: Option<SystemTime>, max: usize) -> Result<Vec<LogEvent>, ProbeError> {
    let boot = boot_time();
    crate::kmsg::read(
        |record| {
            let event = parse_kmsg_record(record, boot)?;
            match (since, event.time, boot) {
                (Some(since), Some(time), Some(_)) if time < since => None,
                _ => Some(event),
            }
        },
        max,
    )
}

/// When the machine booted: now minus `/proc/uptime`.
fn boot_time() -> Option<SystemTime> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let uptime: f64 = text.split_whitespace().next()?.parse().ok()?;
    let uptime = Duration::try_from_secs_f64(uptime).ok()?;
    SystemTime::now().checked_sub(uptime)
}

/// An OOM event from one `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS;MESSAGE` plus
/// continuation lines), or `None` for other messages.
fn parse_kmsg_record(record: &str, boot: Option<SystemTime>) -> Option<LogEvent> {
    let (micros, message) = crate::kmsg::split(record)?;
    if !is_oom_message(message) {
        return None;
    }
    let time = boot
        .zip(micros)
        .and_then(|(boot, us)| boot.checked_add(Duration::from_micros(us)));
    Some(LogEvent {
        kind: LogEventKind::OutOfMemory,
        line: truncate(message, MAX_LINE_BYTES).to_owned(),
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_records() {
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let record = "3,1234,5000000,-;Out of memory: Killed process 4242 (php-fpm8.2) total-vm:812345kB, anon-rss:501234kB\n SUBSYSTEM=x\n";
        let event = parse_kmsg_record(record, Some(boot)).unwrap();
        assert_eq!(event.kind, LogEventKind::OutOfMemory);
        assert!(event.line.starts_with("Out of memory: Killed process 4242"));
        assert_eq!(event.time, Some(boot + Duration::from_secs(5)));
        let oom_kill =
            "6,1233,4999000,-;oom-kill:constraint=CONSTRAINT_NONE,task=php-fpm8.2,pid=4242,uid=33";
        assert!(parse_kmsg_record(oom_kill, None).is_some_and(|e| e.time.is_none()));
        assert_eq!(
            parse_kmsg_record("6,1,0,-;Linux version 6.1", Some(boot)),
            None
        );
        assert_eq!(parse_kmsg_record("garbage", Some(boot)), None);
    }

    #[test]
    fn oom_kills_from_this_kernel() {
        // /dev/kmsg is readable here (root); the buffer may hold no OOM kill.
        let events = oom_kills(None, 10).expect("/dev/kmsg readable");
        assert!(events.len() <= 10);
        assert!(events.iter().all(|e| e.kind == LogEventKind::OutOfMemory));
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert!(oom_kills(Some(future), 10).unwrap().is_empty());
    }
}
