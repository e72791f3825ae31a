//! The shape of the problem over time: per-minute counts of 502s and 504s (access log) and
//! of the main error causes (error log) over the `--since` window, the first minute things
//! went wrong, and the sparkline that shows them in the human report and the wizard.
//!
//! Only the series and their drawing live here; the counts come from the log scanners and
//! the engine puts them together for a run.

use std::collections::BTreeMap;

use jiff::civil::DateTime;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most minutes in a series: windows longer than this are drawn in coarser buckets.
pub const MAX_BUCKETS: usize = 240;

/// The per-minute (or coarser) counts over the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Timeline {
    /// The start of the first bucket, local time as nginx logs it (`2026-11-24T14:02`).
    pub start: String,
    /// Minutes per bucket (1 unless the window is longer than 240 minutes).
    pub bucket_minutes: u32,
    /// One series per kind, all of the same length.
    pub series: Vec<Series>,
    /// The start of the first bucket with a count in any series, if any.
    pub first_bad: Option<String>,
}

/// One row of counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Series {
    /// `502`, `504`, or a cause id (`upstream-refused`, ...).
    pub name: String,
    /// Where the counts come from: `access-log` or `error-log`.
    pub source: String,
    /// The count of each bucket, oldest first.
    pub counts: Vec<u64>,
}

/// What goes into a timeline: a name, a source, and event times with their counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// The series name.
    pub name: String,
    /// The series source.
    pub source: String,
    /// Minute (seconds zero) → count.
    pub per_minute: BTreeMap<DateTime, u64>,
}

/// Buckets `events` over `[start, end]`; `None` when no series has a count in the window.
pub fn build(start: DateTime, end: DateTime, events: &[Events]) -> Option<Timeline> {
    let start = minute_of(start);
    let end = minute_of(end);
    let minutes = usize::try_from(end.duration_since(start).as_secs() / 60).ok()? + 1;
    let bucket = minutes.div_ceil(MAX_BUCKETS).max(1);
    let buckets = minutes.div_ceil(bucket);
    let mut series = Vec::new();
    for e in events {
        let mut counts = vec![0u64; buckets];
        for (minute, n) in e.per_minute.range(start..=end) {
            let offset = usize::try_from(minute.duration_since(start).as_secs() / 60).unwrap_or(0);
            if let Some(slot) = counts.get_mut(offset / bucket) {
                *slot += n;
            }
        }
        if counts.iter().any(|n| *n > 0) {
            series.push(Series {
                name: e.name.clone(),
                source: e.source.clone(),
                counts,
            });
        }
    }
    if series.is_empty() {
        return None;
    }
    let first = (0..buckets).find(|i| series.iter().any(|s| s.counts.get(*i) > Some(&0)));
    let at = |i: usize| {
        let minutes = i64::try_from(i * bucket).unwrap_or(0);
        start
            .checked_add(jiff::Span::new().minutes(minutes))
            .map(|t| t.strftime("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default()
    };
    Some(Timeline {
        start: at(0),
        bucket_minutes: u32::try_from(bucket).unwrap_or(u32::MAX),
        series,
        first_bad: first.map(at),
    })
}

/// The bucket width, in minutes, for a window of this length: 1 up to 240 minutes, then
/// coarser so that no series has more than [`MAX_BUCKETS`] buckets.
pub fn bucket_for(window: std::time::Duration) -> u32 {
    let minutes = usize::try_from(window.as_secs() / 60).unwrap_or(usize::MAX);
    u32::try_from(minutes.div_ceil(MAX_BUCKETS).max(1)).unwrap_or(u32::MAX)
}

/// The minute a time falls in (seconds and below dropped).
pub fn minute_of(t: DateTime) -> DateTime {
    t.with().second(0).subsec_nanosecond(0).build().unwrap_or(t)
}

/// How the minutes with 502/504 answers line up with the minutes an app server said it was
/// full (all workers busy, its listen queue overflowing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// 502s and 504s in the access log's window.
    pub errors: u64,
    /// Of those, in a minute the app server said it was full.
    pub errors_when_full: u64,
    /// The minutes with most errors, most first (at most three), with their counts.
    pub peaks: Vec<(DateTime, u64)>,
}

/// The overlap of `errors` (per minute, as counted) with the `full` minutes; `None` when
/// there were no errors.
pub fn overlap(errors: &[(DateTime, u64)], full: &[DateTime]) -> Option<Overlap> {
    let full: std::collections::BTreeSet<DateTime> = full.iter().map(|t| minute_of(*t)).collect();
    let mut by_minute: BTreeMap<DateTime, u64> = BTreeMap::new();
    for (minute, n) in errors.iter().filter(|(_, n)| *n > 0) {
        *by_minute.entry(minute_of(*minute)).or_default() += n;
    }
    if by_minute.is_empty() {
        return None;
    }
    let total = by_minute.values().sum();
    let when_full = by_minute
        .iter()
        .filter(|(m, _)| full.contains(m))
        .map(|(_, n)| n)
        .sum();
    let mut peaks: Vec<(DateTime, u64)> = by_minute.into_iter().collect();
    peaks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    peaks.truncate(3);
    Some(Overlap {
        errors: total,
        errors_when_full: when_full,
        peaks,
    })
}

/// One character per bucket, from a blank for zero to `█` for the series' maximum.
pub fn sparkline(counts: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&n| {
            if n == 0 || max == 0 {
                ' '
            } else {
                // Eight equal steps of the maximum: up to max/8 is the lowest bar.
                let level = ((n * 8 - 1) / max).min(7);
                BARS.get(usize::try_from(level).unwrap_or(7))
                    .copied()
                    .unwrap_or('█')
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_errors_in_full_minutes() {
        let t = |h: i8, m: i8, s: i8| date(2026, 12, 6).at(h, m, s, 0);
        let errors = [
            (t(10, 1, 0), 41),
            (t(10, 2, 0), 17),
            (t(10, 7, 0), 2),
            (t(10, 8, 0), 0),
        ];
        let full = [t(10, 1, 13), t(10, 2, 59), t(10, 8, 1)];
        let o = overlap(&errors, &full).unwrap();
        assert_eq!(o.errors, 60);
        assert_eq!(o.errors_when_full, 58);
        assert_eq!(
            o.peaks,
            vec![(t(10, 1, 0), 41), (t(10, 2, 0), 17), (t(10, 7, 0), 2)]
        );
        assert_eq!(overlap(&[(t(10, 8, 0), 0)], &full), None);
        let none_full = overlap(&errors, &[]).unwrap();
        assert_eq!(none_full.errors_when_full, 0);
    }
    use jiff::civil::date;

    fn events(name: &str, at: &[(DateTime, u64)]) -> Events {
        Events {
            name: name.to_owned(),
            source: "error-log".to_owned(),
            per_minute: at.iter().copied().collect(),
        }
    }

    #[test]
    fn per_minute_series_and_the_first_bad_minute() {
        let start = date(2026, 11, 24).at(14, 0, 30, 0);
        let end = date(2026, 11, 24).at(14, 9, 10, 0);
        let refused = events(
            "upstream-refused",
            &[
                (date(2026, 11, 24).at(14, 3, 0, 0), 2),
                (date(2026, 11, 24).at(14, 4, 0, 0), 5),
                (date(2026, 11, 24).at(13, 0, 0, 0), 99), // before the window
            ],
        );
        let quiet = events("upstream-timeout", &[]);
        let t = build(start, end, &[refused, quiet]).unwrap();
        assert_eq!(t.start, "2026-11-24T14:00");
        assert_eq!(t.bucket_minutes, 1);
        assert_eq!(t.series.len(), 1, "empty series are left out");
        assert_eq!(t.series[0].counts, vec![0, 0, 0, 2, 5, 0, 0, 0, 0, 0]);
        assert_eq!(t.first_bad.as_deref(), Some("2026-11-24T14:03"));
        assert_eq!(sparkline(&t.series[0].counts), "   ▄█     ");
        assert!(build(start, end, &[events("x", &[])]).is_none());
    }

    #[test]
    fn long_windows_use_coarser_buckets() {
        let start = date(2026, 11, 24).at(0, 0, 0, 0);
        let end = date(2026, 11, 24).at(23, 59, 0, 0);
        let e = events("502", &[(date(2026, 11, 24).at(23, 59, 0, 0), 1)]);
        let t = build(start, end, &[e]).unwrap();
        assert_eq!(t.bucket_minutes, 6);
        assert_eq!(t.series[0].counts.len(), 240);
        assert_eq!(t.series[0].counts[239], 1);
    }

    #[test]
    fn sparkline_scales_to_the_maximum() {
        assert_eq!(sparkline(&[0, 1, 7, 14]), " ▁▄█");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[0, 0]), "  ");
    }
}
