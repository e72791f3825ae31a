//! The certificate summary of the TLS probe: `tls::summarize_der` (its fuzzing entry point)
//! on DER bytes, with the host-name check against a fixed name.
#![no_main]

use fix502_probe::tls::summarize_der;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (summary, _matches) = summarize_der(data, "app.internal");
    let _ = summary.names.len();
});
