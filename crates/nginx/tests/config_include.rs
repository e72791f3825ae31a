//! Include expansion on real files: relative paths, globs, missing files, cycles, limits,
//! includes inside blocks, and syntax errors in included files.

use std::path::{Path, PathBuf};

use fix502_nginx::config::{Config, ConfigError, Directive, MAX_INCLUDE_DEPTH};
use tempfile::TempDir;

/// Writes `files` (relative path, content) into a new temporary directory.
fn tree(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, content) in files {
        let full = dir.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(full, content).expect("write");
    }
    dir
}

fn load(dir: &TempDir) -> Config {
    Config::load(&dir.path().join("nginx.conf")).expect("main file loads")
}

/// The files of a config relative to `dir`.
fn rel_files(config: &Config, dir: &Path) -> Vec<String> {
    config
        .files
        .iter()
        .map(|f| {
            f.strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// `name args...` of each directive at one level.
fn names(directives: &[Directive]) -> Vec<String> {
    directives
        .iter()
        .map(|d| {
            std::iter::once(d.name.as_str())
                .chain(d.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn block(d: &Directive) -> &[Directive] {
    d.block.as_deref().expect("a block")
}

#[test]
fn relative_includes_use_the_main_files_directory() {
    let dir = tree(&[
        ("nginx.conf", "include conf.d/a.conf;\n"),
        // conf.d/a.conf includes "b.conf": nginx looks for it next to nginx.conf.
        ("conf.d/a.conf", "a 1;\ninclude b.conf;\n"),
        ("b.conf", "b 1;\n"),
        ("conf.d/b.conf", "wrong 1;\n"),
    ]);
    let config = load(&dir);
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    assert_eq!(names(&config.directives), ["a 1", "b 1"]);
    assert_eq!(
        rel_files(&config, dir.path()),
        ["nginx.conf", "conf.d/a.conf", "b.conf"]
    );
    assert_eq!(
        config.directives[1].span.file.as_ref(),
        dir.path().join("b.conf")
    );
    assert_eq!(config.directives[1].span.line, 1);
}

#[test]
fn globs_are_sorted_bytewise_and_skip_hidden_files() {
    let dir = tree(&[
        ("nginx.conf", "include sites/*;\nend 1;\n"),
        ("sites/b", "b 1;\n"),
        ("sites/a.conf", "a 1;\n"),
        ("sites/a", "a0 1;\n"),
        ("sites/B", "B 1;\n"),
        ("sites/.hidden", "hidden 1;\n"),
        ("sites/_x", "_x 1;\n"),
    ]);
    let config = load(&dir);
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    // Byte order: 'B' < '_' < 'a' < "a.conf" < 'b'.
    assert_eq!(
        names(&config.directives),
        ["B 1", "_x 1", "a0 1", "a 1", "b 1", "end 1"]
    );
}

#[test]
fn glob_matching_nothing_is_fine() {
    let dir = tree(&[(
        "nginx.conf",
        "include conf.d/*.conf;\ninclude none/*;\nx 1;\n",
    )]);
    let config = load(&dir);
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    assert_eq!(names(&config.directives), ["x 1"]);
    assert_eq!(config.files.len(), 1);
}

#[test]
fn missing_plain_include_is_an_error_entry_and_loading_goes_on() {
    let dir = tree(&[("nginx.conf", "a 1;\n\ninclude missing.conf;\nb 1;\n")]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["a 1", "b 1"]);
    assert_eq!(config.errors.len(), 1);
    let err = &config.errors[0];
    match err {
        ConfigError::Include { target, source, .. } => {
            assert_eq!(target, &dir.path().join("missing.conf"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.location(), Some((dir.path().join("nginx.conf"), 3)));
    let text = err.to_string();
    assert!(text.contains("nginx.conf:3:"), "{text}");
    assert!(text.contains("missing.conf"), "{text}");
}

#[test]
fn unreadable_main_file_is_err() {
    let dir = tree(&[]);
    let main = dir.path().join("nginx.conf");
    match Config::load(&main) {
        Err(err @ ConfigError::Io { .. }) => {
            assert!(err.to_string().contains("nginx.conf"));
            assert_eq!(err.location(), None);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn include_cycle_is_reported_and_stops() {
    let dir = tree(&[
        ("nginx.conf", "include a.conf;\nmain 1;\n"),
        ("a.conf", "a 1;\ninclude b.conf;\n"),
        ("b.conf", "b 1;\ninclude a.conf;\ninclude nginx.conf;\n"),
    ]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["a 1", "b 1", "main 1"]);
    let cycles: Vec<(PathBuf, u32, PathBuf)> = config
        .errors
        .iter()
        .filter_map(|e| match e {
            ConfigError::IncludeCycle { file, line, target } => {
                Some((file.clone(), *line, target.clone()))
            }
            _ => None,
        })
        .collect();
    let d = dir.path();
    assert_eq!(
        cycles,
        [
            (d.join("b.conf"), 2, d.join("a.conf")),
            (d.join("b.conf"), 3, d.join("nginx.conf")),
        ]
    );
    assert_eq!(config.errors.len(), 2);
}

#[test]
fn self_include_through_a_glob_is_a_cycle() {
    let dir = tree(&[("nginx.conf", "include *.conf;\nx 1;\n")]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["x 1"]);
    assert!(matches!(
        config.errors.as_slice(),
        [ConfigError::IncludeCycle { .. }]
    ));
}

#[test]
fn includes_inside_blocks_land_in_the_block() {
    let dir = tree(&[
        (
            "nginx.conf",
            "http {\n  include conf.d/*.conf;\n  server {\n    include snippets/loc.inc;\n  }\n}\n",
        ),
        ("conf.d/up.conf", "upstream u {\n  include up.inc;\n}\n"),
        ("up.inc", "server 127.0.0.1:1;\n"),
        (
            "snippets/loc.inc",
            "location / {\n  proxy_pass http://u;\n}\n",
        ),
    ]);
    let config = load(&dir);
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    let http = block(&config.directives[0]);
    assert_eq!(names(http), ["upstream u", "server"]);
    assert_eq!(names(block(&http[0])), ["server 127.0.0.1:1"]);
    let location = &block(&http[1])[0];
    assert_eq!(names(std::slice::from_ref(location)), ["location /"]);
    assert_eq!(names(block(location)), ["proxy_pass http://u"]);
    assert_eq!(
        location.span.file.as_ref(),
        dir.path().join("snippets/loc.inc")
    );
    assert_eq!(block(location)[0].span.line, 2);
}

#[test]
fn file_included_twice_is_listed_once_and_expanded_twice() {
    let dir = tree(&[
        ("nginx.conf", "include p;\nx 1;\ninclude p;\n"),
        ("p", "p 1;\n"),
    ]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["p 1", "x 1", "p 1"]);
    assert_eq!(rel_files(&config, dir.path()), ["nginx.conf", "p"]);
}

#[test]
fn syntax_error_in_an_included_file_keeps_the_rest() {
    let dir = tree(&[
        (
            "nginx.conf",
            "http {\n  include bad.conf;\n  after 1;\n}\nlast 1;\n",
        ),
        (
            "bad.conf",
            "good 1;\nserver {\n  listen 80;\n  broken \"x\"y;\n}\nnever 1;\n",
        ),
    ]);
    let config = load(&dir);
    let http = block(&config.directives[0]);
    assert_eq!(names(http), ["good 1", "server", "after 1"]);
    assert_eq!(names(block(&http[1])), ["listen 80"]);
    assert_eq!(names(&config.directives), ["http", "last 1"]);
    assert_eq!(config.errors.len(), 1);
    assert_eq!(
        config.errors[0].location(),
        Some((dir.path().join("bad.conf"), 4))
    );
}

#[test]
fn syntax_error_in_the_main_file_is_not_fatal() {
    let dir = tree(&[("nginx.conf", "a 1;\nb {\n")]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["a 1", "b"]);
    assert!(matches!(
        config.errors.as_slice(),
        [ConfigError::Syntax { line: 3, .. }]
    ));
}

#[test]
fn absolute_include_paths() {
    let other = tree(&[("abs.conf", "abs 1;\n")]);
    let main = format!("include {};\n", other.path().join("abs.conf").display());
    let dir = tree(&[("nginx.conf", &main)]);
    let config = load(&dir);
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    assert_eq!(names(&config.directives), ["abs 1"]);
    assert_eq!(config.files[1], other.path().join("abs.conf"));
}

#[test]
fn include_with_wrong_argument_count_is_an_error_entry() {
    let dir = tree(&[("nginx.conf", "include a b;\ninclude;\nx 1;\n")]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["x 1"]);
    assert_eq!(config.errors.len(), 2);
    assert!(
        config.errors[0]
            .to_string()
            .contains("invalid number of arguments in \"include\" directive")
    );
}

#[test]
fn include_of_a_directory_is_an_error_entry() {
    let dir = tree(&[("nginx.conf", "include sub;\nx 1;\n"), ("sub/f", "")]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["x 1"]);
    assert!(matches!(
        config.errors.as_slice(),
        [ConfigError::Include { .. }]
    ));
}

#[test]
fn include_depth_is_capped() {
    let mut files: Vec<(String, String)> = vec![("nginx.conf".into(), "include f0;\n".into())];
    for i in 0..(MAX_INCLUDE_DEPTH + 10) {
        files.push((format!("f{i}"), format!("d{i} 1;\ninclude f{};\n", i + 1)));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = tree(&refs);
    let config = load(&dir);
    assert!(
        config
            .errors
            .iter()
            .any(|e| matches!(e, ConfigError::Limit { what, .. } if what.contains("nested"))),
        "{:?}",
        config.errors
    );
    assert!(config.directives.len() >= MAX_INCLUDE_DEPTH - 1);
    assert!(config.directives.len() <= MAX_INCLUDE_DEPTH + 1);
}

#[test]
fn include_explosion_is_bounded() {
    // Each level includes the next ten times: 10^9 expansions if nothing stopped it.
    let line = |next: &str| format!("include {next};\n").repeat(10);
    let files: Vec<(String, String)> = (0..9)
        .map(|i| {
            let name = if i == 0 {
                "nginx.conf".to_string()
            } else {
                format!("x{i}")
            };
            (name, format!("{}leaf 1;\n", line(&format!("x{}", i + 1))))
        })
        .chain(std::iter::once(("x9".to_string(), "leaf 1;\n".to_string())))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = tree(&refs);
    let config = load(&dir);
    assert!(
        config
            .errors
            .iter()
            .any(|e| matches!(e, ConfigError::Limit { what, .. } if what.contains("directives"))),
        "{:?}",
        config.errors
    );
    assert_eq!(config.files.len(), 10);
}

#[test]
fn non_utf8_bytes_are_decoded_lossily() {
    let dir = tree(&[]);
    std::fs::write(
        dir.path().join("nginx.conf"),
        b"add_header X \"caf\xe9\";\nserver_name a;\n",
    )
    .expect("write");
    let config = load(&dir);
    assert!(config.errors.is_empty());
    assert_eq!(config.directives[0].args[1], "caf\u{fffd}");
    assert_eq!(config.directives[1].args, ["a"]);
}

#[test]
fn small_fixture_tree_loads_like_nginx_reads_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/small");
    let config = Config::load(&root.join("nginx.conf")).expect("load");
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| {
            f.strip_prefix(&root)
                .expect("under root")
                .display()
                .to_string()
        })
        .collect();
    // The order `nginx -T` printed for this tree (see small-nginx-T.txt).
    assert_eq!(
        files,
        [
            "nginx.conf",
            "conf.d/A.conf",
            "conf.d/a.conf",
            "snippets/nested.inc",
            "snippets/empty.inc",
            "conf.d/b.conf",
            "snippets/common.inc",
        ]
    );
}

#[test]
fn invalid_glob_pattern_is_an_error_entry() {
    let dir = tree(&[("nginx.conf", "include conf.d/[;\nx 1;\n")]);
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["x 1"]);
    match config.errors.as_slice() {
        [err @ ConfigError::Glob { pattern, .. }] => {
            assert_eq!(pattern, &dir.path().join("conf.d/["));
            assert_eq!(err.location(), Some((dir.path().join("nginx.conf"), 1)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn files_over_64_mib_are_refused() {
    let dir = tree(&[("nginx.conf", "include big.conf;\nx 1;\n")]);
    // A sparse file: no 64 MiB actually written.
    let big = std::fs::File::create(dir.path().join("big.conf")).expect("create");
    big.set_len(fix502_nginx::config::MAX_FILE_SIZE + 1)
        .expect("set_len");
    let config = load(&dir);
    assert_eq!(names(&config.directives), ["x 1"]);
    match config.errors.as_slice() {
        [ConfigError::Include { source, .. }] => {
            assert!(
                source.to_string().contains("larger than 64 MiB"),
                "{source}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        Config::load(&dir.path().join("big.conf")),
        Err(ConfigError::Io { .. })
    ));
}
