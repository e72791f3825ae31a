//! The `nginx -T` splitter (`dump::split_dump`) and loading a configuration from the dump
//! (`DumpSource` as the `Source` of `Config::load_from`, includes expanded from the dump).
#![no_main]

use fix502_nginx::Config;
use fix502_nginx::dump::{DumpSource, split_dump};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let files = split_dump(&text);
    let source = DumpSource::from_dump(&text);
    assert_eq!(source.files(), files.as_slice());
    if let Some(main) = source.main_file() {
        let main = main.to_path_buf();
        if let Ok(config) = Config::load_from(&main, &source) {
            for err in &config.errors {
                let _ = err.to_string();
            }
        }
    }
});
