//! The error-log line parser and the classifier: `errorlog::parse_line`,
//! `errorlog::parse_upstream_field` and `classify::classify`, one line at a time.
#![no_main]

use fix502_nginx::classify::classify;
use fix502_nginx::errorlog::{parse_line, parse_upstream_field};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let Some(parsed) = parse_line(line) else {
            continue;
        };
        if let Some(upstream) = parsed.upstream {
            let _ = parse_upstream_field(upstream);
        }
        if let Some(classified) = classify(&parsed) {
            let _ = classified.http_status();
            let _ = classified.truncates_response();
            let _ = classified.is_gateway_error();
            let _ = classified.signature.id();
            let _ = classified.signature.to_string();
        }
    }
});
