//! Helpers shared by the unit tests of the app-server files.

use std::path::{Path, PathBuf};

use super::types::{Setting, SettingSource};

/// The words of a command line.
pub(super) fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// The source "line `line` of `path`".
pub(super) fn file_source(path: &Path, line: usize) -> SettingSource {
    SettingSource::File {
        path: path.to_path_buf(),
        line,
    }
}

/// The effective (last) value of the setting called `name`.
pub(super) fn value_of<'a>(settings: &'a [Setting], name: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|s| s.name == name)
        .map(|s| s.value.as_str())
}

/// A log fixture of `tests/fixtures/appserver`.
pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/appserver")
        .join(name)
}
