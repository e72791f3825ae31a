//! The error-log scan over a byte stream: `logscan::scan` with options taken from the
//! first bytes (window start, samples, line cap, bucket width), read through a small
//! buffer so that lines straddle the reads.
#![no_main]

use std::io::BufReader;

use fix502_nginx::logscan::{ScanOptions, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, samples, line_cap, bucket, buffer], log)) = data.split_first_chunk::<5>()
    else {
        return;
    };
    let since = (flags & 1 == 1).then(|| jiff::civil::date(2025, 3, 14).at(9, 22, 0, 0));
    let until = (flags & 4 == 4).then(|| jiff::civil::date(2025, 3, 14).at(10, 0, 0, 0));
    let opts = ScanOptions {
        since,
        until,
        max_samples: usize::from(samples % 8),
        max_line_bytes: if flags & 2 == 2 {
            usize::from(line_cap)
        } else {
            4096
        },
        bucket_minutes: u32::from(bucket % 90),
    };
    let reader = BufReader::with_capacity(usize::from(buffer).max(1), log);
    let Ok(summary) = scan(reader, &opts) else {
        return;
    };
    assert!(summary.lines_in_window <= summary.lines_read);
    assert!(summary.lines_unparsed <= summary.lines_read);
    assert!(summary.lines_future <= summary.lines_read);
    for group in &summary.groups {
        assert!(group.count > 0);
    }
});
