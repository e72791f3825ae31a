//! The `nginx -T` output: splitting it into files, and serving those files as a [`Source`].
//!
//! `nginx -T` writes, for every file it read (each once, main file first), a line
//! `# configuration file PATH:` followed by the file's bytes and one extra line feed.
//! So a file ending in a newline is followed by a blank line, a file without a final
//! newline is not, and an empty file shows as one blank line. [`split_dump`] undoes exactly
//! that. If stderr was captured too (`nginx -T 2>&1`), nginx's closing "syntax is ok" /
//! "test is successful" lines are dropped from the last file.
//!
//! A file whose own text contains a line that looks like a section header cannot be told
//! apart from a real header; such a line starts a new section.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::{Source, glob_options, sort_like_glob};

const HEADER_START: &str = "# configuration file ";

/// One file from an `nginx -T` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedFile {
    /// The path as nginx printed it.
    pub path: PathBuf,
    /// The file's text as nginx read it.
    pub content: String,
}

/// Splits `nginx -T` output into its files, in the order printed. Text before the first
/// section header is ignored.
pub fn split_dump(text: &str) -> Vec<DumpedFile> {
    let mut files: Vec<DumpedFile> = Vec::new();
    let mut current: Option<Section> = None;
    for line in text.split_inclusive('\n') {
        if let Some(path) = header_path(line) {
            if let Some(section) = current.take() {
                files.push(section.finish(false));
            }
            current = Some(Section {
                path: PathBuf::from(path),
                raw: String::new(),
                crlf: line.ends_with("\r\n"),
            });
        } else if let Some(section) = current.as_mut() {
            section.raw.push_str(line);
        }
    }
    if let Some(section) = current {
        files.push(section.finish(true));
    }
    files
}

/// The path of a section header line, if `line` is one.
fn header_path(line: &str) -> Option<&str> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let path = line.strip_prefix(HEADER_START)?.strip_suffix(':')?;
    (!path.is_empty()).then_some(path)
}

/// One section of the dump being collected.
struct Section {
    path: PathBuf,
    raw: String,
    /// The header line ended in CRLF: the whole dump was converted to CRLF line ends, so
    /// the line feed nginx added after the file became CRLF too.
    crlf: bool,
}

impl Section {
    /// Turns the section's raw text into the file's content.
    fn finish(mut self, last: bool) -> DumpedFile {
        if last {
            strip_status_lines(&mut self.raw);
        }
        let added = if self.crlf { "\r\n" } else { "\n" };
        if self.raw.ends_with(added) {
            self.raw.truncate(self.raw.len() - added.len());
        }
        DumpedFile {
            path: self.path,
            content: self.raw,
        }
    }
}

/// Drops nginx's closing stderr lines from the end of `raw` (when `2>&1` was used).
fn strip_status_lines(raw: &mut String) {
    // Each iteration removes one line, so the loop is bounded by the line count.
    loop {
        let body = raw.strip_suffix('\n').unwrap_or(raw);
        let start = body.rfind('\n').map_or(0, |i| i + 1);
        let last_line = body.get(start..).unwrap_or_default();
        let is_status = last_line.starts_with("nginx: the configuration file ")
            || last_line.starts_with("nginx: configuration file ");
        if !is_status {
            return;
        }
        raw.truncate(start);
    }
}

/// The files of an `nginx -T` dump, usable as a [`Source`] for
/// [`Config::load_from`](crate::config::Config::load_from).
#[derive(Debug, Clone, Default)]
pub struct DumpSource {
    files: Vec<DumpedFile>,
    by_path: HashMap<PathBuf, usize>,
}

impl DumpSource {
    /// Splits `text` (the output of `nginx -T`) into files.
    pub fn from_dump(text: &str) -> Self {
        Self::from_files(split_dump(text))
    }

    /// A source over already split files. When a path repeats, the first one wins.
    pub fn from_files(files: Vec<DumpedFile>) -> Self {
        let mut by_path = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            by_path.entry(file.path.clone()).or_insert(i);
        }
        Self { files, by_path }
    }

    /// The main configuration file: the first one in the dump.
    pub fn main_file(&self) -> Option<&Path> {
        self.files.first().map(|f| f.path.as_path())
    }

    /// Every file in the dump, in order.
    pub fn files(&self) -> &[DumpedFile] {
        &self.files
    }
}

impl Source for DumpSource {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.by_path
            .get(path)
            .and_then(|&i| self.files.get(i))
            .map(|f| f.content.clone())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not in the nginx -T output")
            })
    }

    fn glob(&self, pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
        let pattern = glob::Pattern::new(&pattern.to_string_lossy())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let options = glob_options();
        let mut out: Vec<PathBuf> = self
            .by_path
            .keys()
            .filter(|p| pattern.matches_path_with(p, options))
            .cloned()
            .collect();
        sort_like_glob(&mut out);
        Ok(out)
    }
}
