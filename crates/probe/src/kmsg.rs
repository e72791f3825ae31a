//! The kernel log: reading `/dev/kmsg` without blocking and within a bound, and splitting
//! its records. What to look for in it (OOM kills, AppArmor and SELinux denials) belongs to
//! the modules that judge those ([`crate::appserver`], [`crate::host`]).

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::ProbeError;

/// Most records read in one pass.
const MAX_RECORDS: usize = 200_000;

/// Reads every record still in the kernel ring buffer (stops at `EAGAIN`, at most 200 000
/// records) and keeps what `keep` makes of it, the `max` most recent ones, oldest first.
/// Fails when `/dev/kmsg` cannot be opened: it needs root or `CAP_SYSLOG` when
/// `kernel.dmesg_restrict = 1`, and may be absent in containers.
pub fn read<T>(mut keep: impl FnMut(&str) -> Option<T>, max: usize) -> Result<Vec<T>, ProbeError> {
    let mut kmsg = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open("/dev/kmsg")
        .map_err(|source| ProbeError::Io {
            what: "opening /dev/kmsg (needs root or CAP_SYSLOG when kernel.dmesg_restrict=1)"
                .to_owned(),
            source,
        })?;
    let mut found: VecDeque<T> = VecDeque::new();
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..MAX_RECORDS {
        let n = match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            // Records were overwritten while reading; the next read continues.
            Err(err) if err.raw_os_error() == Some(Errno::EPIPE as i32) => continue,
            Err(source) => {
                return Err(ProbeError::Io {
                    what: "reading /dev/kmsg".to_owned(),
                    source,
                });
            }
        };
        let record = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
        let Some(item) = keep(&record) else { continue };
        found.push_back(item);
        if found.len() > max {
            found.pop_front();
        }
    }
    Ok(found.into())
}

/// One record (`PRI,SEQ,USEC,FLAGS;MESSAGE` then continuation lines) split into its time in
/// microseconds since boot (when readable) and the message; `None` for anything else.
pub fn split(record: &str) -> Option<(Option<u64>, &str)> {
    let first = record.lines().next()?;
    let (prefix, message) = first.split_once(';')?;
    let mut fields = prefix.split(',');
    fields.next()?.parse::<u32>().ok()?;
    let micros = fields.nth(1).and_then(|f| f.parse().ok());
    Some((micros, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split() {
        assert_eq!(
            split("5,1234,5000000,-;audit: type=1400 apparmor=\"DENIED\"\n SUBSYSTEM=x\n"),
            Some((Some(5_000_000), "audit: type=1400 apparmor=\"DENIED\""))
        );
        assert_eq!(split("6,1,x,-;text"), Some((None, "text")));
        assert_eq!(split("garbage"), None);
        assert_eq!(split("x,1,2,-;text"), None);
    }

    #[test]
    fn reading_is_bounded_and_filtered() {
        // /dev/kmsg is readable as root; elsewhere the error names what is needed.
        match read(|r| split(r).map(|(_, m)| m.to_owned()), 3) {
            Ok(found) => assert!(found.len() <= 3),
            Err(e) => assert!(e.to_string().contains("/dev/kmsg"), "{e}"),
        }
    }
}
