//! The CGI/HTTP response-head parser of the uwsgi, SCGI and FastCGI probes, through
//! `gateway::judge_head_bytes` (its fuzzing entry point): the head read whole and read in
//! pieces must get the same verdict.
#![no_main]

use fix502_probe::gateway::judge_head_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, cap_hi, cap_lo, step], head)) = data.split_first_chunk::<4>() else {
        return;
    };
    let status_line_allowed = flags & 1 == 1;
    let cap = usize::from(u16::from_be_bytes([cap_hi, cap_lo]));
    let whole = judge_head_bytes(head, &[], status_line_allowed, cap);
    let step = usize::from(step).max(1);
    let ends: Vec<usize> = (step..head.len()).step_by(step).collect();
    let pieces = judge_head_bytes(head, &ends, status_line_allowed, cap);
    assert_eq!(whole, pieces);
    if let Some((outcome, _)) = whole {
        let _ = outcome.to_string();
    }
});
