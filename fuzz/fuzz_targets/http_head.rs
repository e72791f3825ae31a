//! The HTTP response-head parser: `http::judge_header`, as nginx's proxy module judges the
//! header block, with the verdict's texts.
#![no_main]

use fix502_probe::http::judge_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match judge_header(data) {
        Ok(head) => {
            assert!(head.header_bytes <= data.len());
            let _ = head.header("content-type");
        }
        Err(invalid) => {
            let _ = invalid.to_string();
            let _ = invalid.nginx_message();
            let _ = invalid.nginx_since();
        }
    }
});
