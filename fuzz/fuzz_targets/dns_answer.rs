//! The DNS answer parser of the nginx-style resolver query: `dns::parse_answer` (its fuzzing
//! entry point) on one datagram, for the A and the AAAA query of a fixed name; and the
//! hosts-file and resolv.conf readers on the same bytes as text.
#![no_main]

use fix502_probe::dns::{hosts_lookup, parse_answer, resolv_conf_nameservers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = data
        .first_chunk::<2>()
        .map_or(0, |&[hi, lo]| u16::from_be_bytes([hi, lo]));
    for ipv6 in [false, true] {
        if let Some((_truncated, Ok(addrs))) = parse_answer(data, id, ipv6, "app.internal") {
            assert!(addrs.len() <= data.len());
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = hosts_lookup(&text, "app.internal");
    let _ = resolv_conf_nameservers(&text);
});
