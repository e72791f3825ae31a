//! Every input with which a fuzz target (`fuzz/`, see docs/fuzzing.md) found a crash, a hang
//! or unbounded memory, run through the same entry point as the target, with what a
//! sensible result is.

use std::path::Path;
use std::time::{Duration, Instant};

use fix502_nginx::config::{Config, ConfigError};
use fix502_nginx::dump::DumpSource;

/// Fuzz target `dump`: an `nginx -T` dump whose files each `include *;` — every file
/// includes every other, so there are factorially many include paths. Each include path
/// pushed one more `IncludeCycle` error and only the directives counted against
/// `MAX_DIRECTIVES`: ten such files took 35 s and 1.3 GB. Now every file an include brings
/// in counts, globs are expanded once, and each problem is recorded once. (The fuzzer's
/// input was 3.8 KB of mutated `nginx -T` output with `include **;` lines; this is it
/// reduced.)
#[test]
fn dump_files_including_each_other_stay_bounded() {
    let files = 8;
    let dump: String = (0..files)
        .map(|i| format!("# configuration file /etc/nginx/f{i}.conf:\ninclude *;\nuser u{i};\n\n"))
        .collect();
    let source = DumpSource::from_dump(&dump);
    let main = source.main_file().expect("a main file").to_path_buf();
    let start = Instant::now();
    let config = Config::load_from(&main, &source).expect("the main file is in the dump");
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(config.files.len(), files);
    // One cycle error per (include line, target) at most, and the one limit.
    assert!(
        config.errors.len() <= files * files + 1,
        "{}",
        config.errors.len()
    );
    assert!(
        config
            .errors
            .iter()
            .any(|e| matches!(e, ConfigError::IncludeCycle { target, .. } if target == Path::new("/etc/nginx/f0.conf")))
    );
    let mut texts: Vec<String> = config.errors.iter().map(ToString::to_string).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(
        texts.len(),
        config.errors.len(),
        "an error is recorded twice"
    );
    // The expansion is kept up to the limit: the main file's own directive is there.
    assert!(
        config
            .directives
            .iter()
            .any(|d| d.name == "user" && d.args == ["u0"])
    );
}

/// The bounds the fuzz target `dump` loads with (`Config::load_limited`) stop a load where
/// the default ones would: each limit is recorded once, and what was read so far is kept.
#[test]
fn smaller_limits_stop_the_load_the_same_way() {
    use fix502_nginx::config::Limits;
    let dump: String = (0..8)
        .map(|i| format!("# configuration file /etc/nginx/f{i}.conf:\ninclude *;\nuser u{i};\n\n"))
        .collect();
    let source = DumpSource::from_dump(&dump);
    let main = source.main_file().expect("a main file").to_path_buf();
    let limits = Limits {
        directives: 50,
        files: 3,
        include_depth: 2,
        total_bytes: 1 << 20,
    };
    let config = Config::load_limited(&main, &source, limits).expect("loads");
    assert!(config.files.len() <= 3, "{:?}", config.files);
    let limited: Vec<String> = config
        .errors
        .iter()
        .map(ToString::to_string)
        .filter(|e| e.contains("too many") || e.contains("nested too deeply"))
        .collect();
    assert!(!limited.is_empty(), "{:?}", config.errors);
    let mut unique = limited.clone();
    unique.dedup();
    assert_eq!(unique.len(), limited.len(), "each limit once: {limited:?}");
    // The defaults are the MAX_* constants.
    assert_eq!(
        Limits::default().directives,
        fix502_nginx::config::MAX_DIRECTIVES
    );
}
