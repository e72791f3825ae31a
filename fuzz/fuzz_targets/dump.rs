//! The `nginx -T` splitter (`dump::split_dump`) and loading a configuration from the dump
//! (`DumpSource` as the `Source` of `Config::load_limited`, includes expanded from the dump).
//! The load runs within small bounds: the same code reaches its limits after thousands of
//! directives instead of a million, so files that include each other cost milliseconds, not
//! a second (docs/fuzzing.md).
#![no_main]

use fix502_nginx::Config;
use fix502_nginx::config::Limits;
use fix502_nginx::dump::{DumpSource, split_dump};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let files = split_dump(&text);
    let source = DumpSource::from_dump(&text);
    assert_eq!(source.files(), files.as_slice());
    if let Some(main) = source.main_file() {
        let main = main.to_path_buf();
        let limits = Limits {
            directives: 5_000,
            files: 64,
            include_depth: 16,
            total_bytes: 1 << 20,
        };
        if let Ok(config) = Config::load_limited(&main, &source, limits) {
            for err in &config.errors {
                let _ = err.to_string();
            }
        }
    }
});
