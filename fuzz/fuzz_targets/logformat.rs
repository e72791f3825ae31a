//! The `log_format` compiler and the access-line splitter: `LogFormat::parse` on the first
//! line (its arguments split at tabs, so `escape=json` can come first), then
//! `LogFormat::parse_line` on every other line, its values read back through `Fields` and
//! `accesslog::attempts`.
#![no_main]

use fix502_nginx::accesslog::attempts;
use fix502_nginx::logformat::LogFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let Some(first) = lines.next() else {
        return;
    };
    let args: Vec<String> = String::from_utf8_lossy(first)
        .split('\t')
        .map(str::to_owned)
        .collect();
    let Ok(format) = LogFormat::parse("main", &args) else {
        return;
    };
    let _ = format.stamp();
    let tz = jiff::tz::TimeZone::UTC;
    for line in lines {
        let Some(fields) = format.parse_line(line) else {
            continue;
        };
        for var in format.variables() {
            let _ = fields.get(var);
            let _ = fields.text(var);
        }
        let _ = fields.status();
        let _ = fields.time(&tz);
        let _ = attempts(&fields);
    }
});
