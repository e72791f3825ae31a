//! When an app server's log line was written: the timestamp at the start of the line, in
//! the formats PHP-FPM, gunicorn, Ruby's logger and uWSGI write, read with `jiff`. A
//! timestamp without a UTC offset is local time in a given time zone.

use std::time::{Duration, SystemTime};

use jiff::civil::DateTime;
use jiff::fmt::strtime::BrokenDownTime;
use jiff::tz::{Offset, TimeZone};

/// Timestamps without a UTC offset, which [`line_time`] reads as local time: PHP-FPM
/// `24-Nov-2026 10:00:00` (a fraction after it is ignored) and uWSGI's ctime
/// `Mon Nov 24 10:00:00 2026` (the day may be space-padded; the weekday is not checked).
const LOCAL_FORMATS: [&str; 2] = ["%d-%b-%Y %H:%M:%S", "%a %b %e %H:%M:%S %Y"];

/// ISO 8601 timestamps, which a UTC offset may follow: gunicorn `2026-11-24 10:00:00 +0000`,
/// Ruby's logger `2026-11-24T10:00:00.123456`.
const ISO_FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

/// The time a log line was written, from a timestamp at its start (after a `[`, also
/// Ruby's `E, [`), to the whole second; `None` when there is none or it is before 1970.
///
/// A timestamp without an offset is local time in `zone`. A local time that a clock change
/// makes ambiguous or skips is read with the later of the two offsets: the later instant,
/// so that a `since` bound keeps the line when in doubt.
pub(super) fn line_time(line: &str, zone: &TimeZone) -> Option<SystemTime> {
    let line = line.trim_start();
    let text = match line.find('[') {
        Some(at) if at <= 3 => line.get(at + 1..)?,
        _ => line,
    };
    let (civil, offset) = civil_time(text)?;
    let instant = match offset {
        Some(offset) => offset.to_timestamp(civil).ok()?,
        None => zone.to_ambiguous_timestamp(civil).later().ok()?,
    };
    let secs = u64::try_from(instant.as_second()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// The civil time at the start of `text`, and the UTC offset written after it, if any.
fn civil_time(text: &str) -> Option<(DateTime, Option<Offset>)> {
    for format in LOCAL_FORMATS {
        if let Ok((mut parsed, _)) = BrokenDownTime::parse_prefix(format, text) {
            parsed.set_weekday(None);
            return Some((parsed.to_datetime().ok()?, None));
        }
    }
    ISO_FORMATS.iter().find_map(|format| {
        let (parsed, used) = BrokenDownTime::parse_prefix(format, text).ok()?;
        let offset = offset_after(text.get(used..)?)?;
        Some((parsed.to_datetime().ok()?, offset))
    })
}

/// The UTC offset at the start of `rest` (one space may come first): `Z`, `+0200` or
/// `-04:30`. `Some(None)` when there is no offset, `None` when a sign starts a malformed
/// one.
fn offset_after(rest: &str) -> Option<Option<Offset>> {
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.starts_with('Z') {
        return Some(Some(Offset::UTC));
    }
    if !rest.starts_with(['+', '-']) {
        return Some(None);
    }
    ["%z", "%:z"]
        .iter()
        .find_map(|format| BrokenDownTime::parse_prefix(format, rest).ok()?.0.offset())
        .map(Some)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    fn epoch(t: SystemTime) -> i64 {
        i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
    }

    #[test]
    fn timestamps() {
        // 2026-11-24 10:00:00 UTC
        let utc = 1_795_514_400;
        let at = |line: &str| line_time(line, &TimeZone::UTC).map(epoch);
        assert_eq!(at("[01-Jan-1970 00:00:00] x"), Some(0));
        assert_eq!(at("[01-Mar-2000 00:00:00] x"), Some(11_017 * 86_400));
        assert_eq!(at("[24-Nov-2026 10:00:00] x"), Some(utc));
        assert_eq!(at("[2026-13-01 10:00:00 +0000] x"), None);
        assert_eq!(
            at("[2026-11-24 10:00:00 +0000] [1] [CRITICAL] WORKER TIMEOUT (pid:2)"),
            Some(utc)
        );
        assert_eq!(at("[2026-11-24 12:00:00 +0200] [1] [INFO] x"), Some(utc));
        assert_eq!(at("[2026-11-24 05:30:00 -04:30] [1] [INFO] x"), Some(utc));
        // Local-time formats, in a zone one hour east of UTC; a written offset wins.
        let plus_one = Offset::from_seconds(3600).unwrap().to_time_zone();
        let local = |line: &str| line_time(line, &plus_one).map(epoch);
        let hour = 3600;
        assert_eq!(local("[24-Nov-2026 10:00:00] WARNING: x"), Some(utc - hour));
        assert_eq!(
            local("[24-Nov-2026 10:00:00.123456] WARNING: x"),
            Some(utc - hour)
        );
        assert_eq!(
            local("Mon Nov 24 10:00:00 2026 - *** HARAKIRI"),
            Some(utc - hour)
        );
        assert_eq!(
            local("[Mon Nov  4 10:00:00 2026] x"),
            Some(utc - 20 * 86_400 - hour)
        );
        assert_eq!(
            local("E, [2026-11-24T10:00:00.5 #1] ERROR -- : x"),
            Some(utc - hour)
        );
        assert_eq!(at("invalid request block size: 4420"), None);
        assert_eq!(at("[99-Foo-2026 10:00:00]"), None);
        assert_eq!(at("[24-Nov-2026 25:00:00]"), None);
    }

    /// What the hand-written reader that jiff replaced also did: `Z`, a written offset over
    /// the zone, whole seconds, and no time for a malformed offset or a date before 1970.
    #[test]
    fn timestamp_details_kept_from_the_former_reader() {
        let utc = 1_795_514_400;
        let plus_one = Offset::from_seconds(3600).unwrap().to_time_zone();
        let local = |line: &str| line_time(line, &plus_one).map(epoch);
        assert_eq!(local("[2026-11-24 10:00:00 +0000] [1] x"), Some(utc));
        assert_eq!(local("2026-11-24T10:00:00Z x"), Some(utc));
        let fraction = line_time("E, [2026-11-24T10:00:00.9 #1] x", &TimeZone::UTC);
        assert_eq!(
            fraction,
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(1_795_514_400)),
            "a fraction is dropped, not rounded"
        );
        let at = |line: &str| line_time(line, &TimeZone::UTC);
        assert_eq!(at("[2026-11-24 10:00:00 +] x"), None, "a malformed offset");
        assert_eq!(at("[31-Dec-1969 23:59:59] x"), None, "before 1970");
    }

    /// A TZif v1 file with three transitions far apart: +1 h from t=1 000 000, +2 h from
    /// t=5 000 000, back to +1 h from t=9 000 000.
    fn tzif_v1() -> Vec<u8> {
        let mut b = b"TZif".to_vec();
        b.push(0); // version 1
        b.extend([0u8; 15]);
        // isut, isstd, leap, time, type, char
        for count in [0u32, 0, 0, 3, 3, 4] {
            b.extend(count.to_be_bytes());
        }
        for time in [1_000_000i32, 5_000_000, 9_000_000] {
            b.extend(time.to_be_bytes());
        }
        b.extend([1u8, 2, 1]);
        for (offset, dst) in [(0i32, 0u8), (3600, 0), (7200, 1)] {
            b.extend(offset.to_be_bytes());
            b.push(dst);
            b.push(0);
        }
        b.extend(b"UTC\0");
        b
    }

    #[test]
    fn local_times_across_clock_changes() {
        let zone = TimeZone::tzif("Test/Zone", &tzif_v1()).unwrap();
        let offset = |t: i64| zone.to_offset(Timestamp::from_second(t).unwrap()).seconds();
        assert_eq!(
            [
                0,
                1_000_000,
                4_999_999,
                5_000_000,
                9_000_000,
                i64::from(i32::MAX)
            ]
            .map(offset),
            [0, 3600, 3600, 7200, 3600, 3600]
        );
        // A PHP-FPM line whose local clock read `naive` seconds since 1970.
        let line_at = |naive: i64| {
            let civil = Timestamp::from_second(naive)
                .unwrap()
                .to_zoned_datetime(TimeZone::UTC)
                .datetime();
            let line = format!("[{}] WARNING: x", civil.strftime("%d-%b-%Y %H:%M:%S"));
            line_time(&line, &zone).map(epoch)
        };
        assert_eq!(line_at(500_000), Some(500_000));
        assert_eq!(line_at(2_003_600), Some(2_000_000));
        // Skipped local times (the clock jumped forward) and repeated ones (it went back)
        // take the later offset, as the hand-written zone reader did for zones east of UTC.
        assert_eq!(line_at(1_001_800), Some(1_001_800));
        assert_eq!(line_at(5_005_000), Some(5_001_400));
        assert_eq!(line_at(9_005_000), Some(9_001_400));
        assert_eq!(line_at(10_003_600), Some(10_000_000));
        // Truncated zone data is refused, never a panic.
        let full = tzif_v1();
        for len in 0..full.len() {
            assert!(
                TimeZone::tzif("Test/Zone", full.get(..len).unwrap()).is_err(),
                "truncated to {len}"
            );
        }
        // This machine's zone, which scan_log uses, can be read.
        if std::env::var_os("TZ").is_none() && std::fs::metadata("/etc/localtime").is_ok() {
            assert!(TimeZone::try_system().is_ok());
        }
    }
}
