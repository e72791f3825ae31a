//! A minimal change to one text file, shown as a unified diff and written safely. This file
//! holds what an edit is ([`FileEdit`]: the exact lines at a line number, and what replaces
//! them), how its new text is made (refused when the file no longer holds those lines), its
//! diff, and [`write_atomically`], the one way fix502 writes a file it does not own: at the
//! real target of a symlink, through a temp file in the same directory that gets the
//! original's owner, mode and SELinux label, synced, renamed over the original, and the
//! directory synced. Backing the bytes up and journalling the change is `changes.rs`'s job.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use similar::TextDiff;

/// The largest file fix502 reads to edit or writes: a config file is far smaller.
pub const MAX_FILE: u64 = 8 << 20;

/// The extended attribute that holds a file's SELinux label.
const SELINUX_XATTR: &str = "security.selinux";

/// Lines of context around each change in [`FileEdit::diff_in`].
const CONTEXT: usize = 3;

/// Why an edit cannot be made or a file cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file does not hold the expected text at the line any more.
    #[error("{path}:{line}: the file changed since it was read (expected {expected:?})")]
    Stale {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// The text that was expected there.
        expected: String,
    },
    /// The line number is past the end of the file (or 0).
    #[error("{path}:{line}: no such line (the file has {lines})")]
    NoSuchLine {
        /// The file.
        path: PathBuf,
        /// The line asked for.
        line: usize,
        /// How many lines the file has.
        lines: usize,
    },
    /// The file is larger than [`MAX_FILE`].
    #[error("{path}: {size} bytes is more than fix502 edits ({MAX_FILE})")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The path is not a regular file (after symlinks).
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> EditError + 'a {
    move |source| EditError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One edit: the lines of `path` starting at `line` that read exactly `before` become
/// `after`. An empty `before` inserts `after` before `line` (`line` may be one past the last
/// line). `before` and `after` hold whole lines with their line endings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// The file, as nginx names it (a symlink is written at its target).
    pub path: PathBuf,
    /// The first line replaced, from 1.
    pub line: usize,
    /// The exact text of the lines replaced, as the file holds them now.
    pub before: String,
    /// The text that replaces them.
    pub after: String,
}

/// The lines of `text`, each with its line ending (the last may have none).
fn lines_of(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The leading blanks of a line.
fn indent_of(line: &str) -> &str {
    let rest = line.trim_start_matches([' ', '\t']);
    &line[..line.len() - rest.len()]
}

/// `line` with a line ending, so that it can be followed by another line.
fn terminated(line: &str) -> String {
    if line.ends_with('\n') {
        line.to_owned()
    } else {
        format!("{line}\n")
    }
}

impl FileEdit {
    /// Replaces `count` lines (from 1 at least) of `text`, the file's contents as read, from
    /// `line` on with `after` (whole lines; a missing final newline is added).
    pub fn replace(
        path: impl Into<PathBuf>,
        text: &str,
        line: usize,
        count: usize,
        after: &str,
    ) -> Result<Self, EditError> {
        let path = path.into();
        let lines = lines_of(text);
        let end = line.saturating_sub(1).saturating_add(count.max(1));
        if line == 0 || end > lines.len() {
            return Err(EditError::NoSuchLine {
                path,
                line,
                lines: lines.len(),
            });
        }
        let before = lines[line - 1..end].concat();
        let after = if after.is_empty() || before.ends_with('\n') {
            terminated_unless_empty(after)
        } else {
            after.to_owned()
        };
        Ok(Self {
            path,
            line,
            before,
            after,
        })
    }

    /// Inserts `new_lines` (without indentation or line endings) after `line` of `text`,
    /// indented as the block they go into: after a line that opens a block (`... {`), one
    /// level deeper than it (the next line's indentation when that is deeper, else four
    /// spaces, or a tab where the file indents with tabs); after any other line, as that line.
    pub fn insert_after(
        path: impl Into<PathBuf>,
        text: &str,
        line: usize,
        new_lines: &[&str],
    ) -> Result<Self, EditError> {
        let path = path.into();
        let lines = lines_of(text);
        if line == 0 || line > lines.len() {
            return Err(EditError::NoSuchLine {
                path,
                line,
                lines: lines.len(),
            });
        }
        let anchor = lines[line - 1];
        let own = indent_of(anchor);
        let indent = if anchor.trim_end().ends_with('{') {
            match lines.get(line).map(|l| indent_of(l)) {
                Some(next) if next.len() > own.len() && next.starts_with(own) => next.to_owned(),
                _ if own.contains('\t') => format!("{own}\t"),
                _ => format!("{own}    "),
            }
        } else {
            own.to_owned()
        };
        let mut after = terminated(anchor);
        for l in new_lines {
            after.push_str(&indent);
            after.push_str(l.trim());
            after.push('\n');
        }
        if !anchor.ends_with('\n') {
            // The file ended without a newline: so does the edited one.
            after.pop();
        }
        Ok(Self {
            path,
            line,
            before: anchor.to_owned(),
            after,
        })
    }

    /// The new text of the file whose contents are `text`; refused when `text` does not hold
    /// `before` at `line` (the file changed since the edit was made).
    pub fn apply_to(&self, text: &str) -> Result<String, EditError> {
        let lines = lines_of(text);
        let start = self.line.saturating_sub(1);
        let count = lines_of(&self.before).len();
        let end = start.saturating_add(count);
        if self.line == 0 || start > lines.len() {
            return Err(EditError::NoSuchLine {
                path: self.path.clone(),
                line: self.line,
                lines: lines.len(),
            });
        }
        if end > lines.len() {
            return Err(self.stale());
        }
        if lines[start..end].concat() != self.before {
            return Err(self.stale());
        }
        let mut out = String::with_capacity(text.len() + self.after.len());
        out.push_str(&lines[..start].concat());
        out.push_str(&self.after);
        out.push_str(&lines[end..].concat());
        Ok(out)
    }

    fn stale(&self) -> EditError {
        EditError::Stale {
            path: self.path.clone(),
            line: self.line,
            expected: self.before.clone(),
        }
    }

    fn headers(&self) -> (String, String) {
        let name = self.path.display().to_string();
        let name = name.trim_start_matches('/');
        (format!("a/{name}"), format!("b/{name}"))
    }

    /// The edit as a unified diff (`--- a/PATH`, `+++ b/PATH`), with the file's own line
    /// numbers and no context lines (for context, [`FileEdit::diff_in`]).
    pub fn diff(&self) -> String {
        // The lines above are the same on both sides: with no context they are left out,
        // and the hunk header counts them.
        // No file fix502 edits has more lines than bytes: the bound only stops a line
        // number made up by hand.
        let above = "\n".repeat(self.line.saturating_sub(1).min(MAX_FILE as usize));
        let old = format!("{above}{}", self.before);
        let new = format!("{above}{}", self.after);
        let (a, b) = self.headers();
        TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(0)
            .header(&a, &b)
            .to_string()
    }

    /// The edit as a unified diff of the whole file whose contents are `text`, with three
    /// lines of context; refused as [`FileEdit::apply_to`] is.
    pub fn diff_in(&self, text: &str) -> Result<String, EditError> {
        let new = self.apply_to(text)?;
        let (a, b) = self.headers();
        Ok(TextDiff::from_lines(text, &new)
            .unified_diff()
            .context_radius(CONTEXT)
            .header(&a, &b)
            .to_string())
    }
}

fn terminated_unless_empty(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        terminated(text)
    }
}

/// The real file behind `path` (symlinks followed), checked to be a regular file of at most
/// [`MAX_FILE`] bytes.
pub fn real_file(path: &Path) -> Result<PathBuf, EditError> {
    let real = std::fs::canonicalize(path).map_err(io("cannot resolve", path))?;
    let meta = std::fs::metadata(&real).map_err(io("cannot stat", &real))?;
    if !meta.is_file() {
        return Err(EditError::NotAFile { path: real });
    }
    if meta.len() > MAX_FILE {
        return Err(EditError::TooLarge {
            path: real,
            size: meta.len(),
        });
    }
    Ok(real)
}

/// The bytes of `path` (symlinks followed), at most [`MAX_FILE`] of them.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, EditError> {
    let real = real_file(path)?;
    let file = File::open(&real).map_err(io("cannot open", &real))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io("cannot read", &real))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(EditError::TooLarge {
            path: real,
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// The text of `path`, as [`read_bytes`] reads it; not UTF-8 is an error (fix502 does not
/// edit what it cannot read back).
pub fn read_text(path: &Path) -> Result<String, EditError> {
    String::from_utf8(read_bytes(path)?).map_err(|_| EditError::NotText {
        path: path.to_path_buf(),
    })
}

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Writes `bytes` over the existing file `path` so that a reader sees either the old file or
/// the new one, never a part: at the real target when `path` is a symlink (the link stays),
/// through a temp file in the same directory that is given the original's owner, group,
/// permission bits and SELinux label, synced, and renamed over the original; then the
/// directory is synced. Returns the path written (the real target).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<PathBuf, EditError> {
    let real = real_file(path)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(EditError::TooLarge {
            path: real,
            size: bytes.len() as u64,
        });
    }
    let meta = std::fs::metadata(&real).map_err(io("cannot stat", &real))?;
    let dir = real.parent().unwrap_or(Path::new("/")).to_path_buf();
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let label = match xattr::get(&real, SELINUX_XATTR) {
        Ok(label) => label,
        // No extended attributes on this file system, or none readable: nothing to keep.
        Err(e) => {
            tracing::debug!(path = %real.display(), error = %e, "no SELinux label read");
            None
        }
    };
    let temp = dir.join(format!(
        ".{name}.fix502-{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io("cannot create", &temp))?;
        file.write_all(bytes).map_err(io("cannot write", &temp))?;
        // The owner first: a chown clears the set-id bits that the mode then sets.
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
            .map_err(io("cannot set the owner of", &temp))?;
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io("cannot set the mode of", &temp))?;
        if let Some(label) = &label {
            use xattr::FileExt;
            file.set_xattr(SELINUX_XATTR, label)
                .map_err(io("cannot set the SELinux label of", &temp))?;
        }
        file.sync_all().map_err(io("cannot sync", &temp))?;
        std::fs::rename(&temp, &real).map_err(io("cannot rename over", &real))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot sync the directory", &dir))?;
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str =
        "server {\n    listen 80;\n    location / {\n        return 200;\n    }\n}\n";

    #[test]
    fn replace_makes_the_new_text_and_its_diff() {
        let e = FileEdit::replace(
            "/etc/nginx/sites-enabled/app",
            SITE,
            4,
            1,
            "        return 201;",
        )
        .unwrap();
        assert_eq!(e.before, "        return 200;\n");
        assert_eq!(e.after, "        return 201;\n");
        assert_eq!(e.apply_to(SITE).unwrap(), SITE.replace("200", "201"));
        assert_eq!(
            e.diff(),
            "--- a/etc/nginx/sites-enabled/app\n+++ b/etc/nginx/sites-enabled/app\n@@ -4 +4 @@\n-        return 200;\n+        return 201;\n"
        );
        let full = e.diff_in(SITE).unwrap();
        assert!(
            full.contains("@@ -1,6 +1,6 @@\n server {\n     listen 80;\n     location / {\n-        return 200;\n+        return 201;\n     }\n }\n"),
            "{full}"
        );
    }

    #[test]
    fn a_stale_before_is_refused() {
        let e = FileEdit::replace("app", SITE, 4, 1, "        return 201;").unwrap();
        let changed = SITE.replace("return 200", "return 204");
        assert!(matches!(
            e.apply_to(&changed),
            Err(EditError::Stale { line: 4, .. })
        ));
        // A line added above moves the directive: refused too, never applied elsewhere.
        let moved = format!("# note\n{SITE}");
        assert!(matches!(e.apply_to(&moved), Err(EditError::Stale { .. })));
        assert!(matches!(
            e.apply_to("server {\n"),
            Err(EditError::Stale { .. } | EditError::NoSuchLine { .. })
        ));
        assert!(matches!(
            FileEdit::replace("app", SITE, 7, 1, "x"),
            Err(EditError::NoSuchLine {
                line: 7,
                lines: 6,
                ..
            })
        ));
    }

    #[test]
    fn an_insertion_takes_the_block_s_indentation() {
        let e = FileEdit::insert_after("app", SITE, 3, &["proxy_buffer_size 16k;"]).unwrap();
        let new = e.apply_to(SITE).unwrap();
        assert!(
            new.contains("    location / {\n        proxy_buffer_size 16k;\n        return 200;\n"),
            "{new}"
        );
        assert_eq!(
            e.diff(),
            "--- a/app\n+++ b/app\n@@ -3,0 +4 @@\n+        proxy_buffer_size 16k;\n"
        );
        // After a plain line: its own indentation; tabs are kept.
        let tabs = "server {\n\tlisten 80;\n}\n";
        let e = FileEdit::insert_after("app", tabs, 2, &["listen 81;"]).unwrap();
        assert_eq!(
            e.apply_to(tabs).unwrap(),
            "server {\n\tlisten 80;\n\tlisten 81;\n}\n"
        );
        // An empty block: one level deeper than its opening line.
        let empty = "http {\n  server {\n  }\n}\n";
        let e = FileEdit::insert_after("app", empty, 2, &["listen 80;"]).unwrap();
        assert_eq!(
            e.apply_to(empty).unwrap(),
            "http {\n  server {\n      listen 80;\n  }\n}\n"
        );
    }

    #[test]
    fn a_file_without_a_final_newline_keeps_it_so() {
        let text = "events {}\nhttp {}";
        let e = FileEdit::replace("f", text, 2, 1, "http { }").unwrap();
        assert_eq!(e.apply_to(text).unwrap(), "events {}\nhttp { }");
        assert!(
            e.diff().contains("\\ No newline at end of file"),
            "{}",
            e.diff()
        );
    }

    #[test]
    fn an_atomic_write_keeps_mode_and_owner_and_writes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let available = dir.path().join("sites-available");
        let enabled = dir.path().join("sites-enabled");
        std::fs::create_dir_all(&available).unwrap();
        std::fs::create_dir_all(&enabled).unwrap();
        let target = available.join("app");
        std::fs::write(&target, SITE).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            // nobody/nogroup: an owner fix502 is not.
            std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
        }
        let link = enabled.join("app");
        std::os::unix::fs::symlink("../sites-available/app", &link).unwrap();

        let written = write_atomically(&link, b"new\n").unwrap();
        assert_eq!(written, std::fs::canonicalize(&target).unwrap());
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"new\n");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        if root {
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        } else {
            assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        }
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(&available)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("app")]);
    }

    #[test]
    fn an_atomic_write_keeps_the_selinux_label() {
        if !nix::unistd::geteuid().is_root() {
            return; // Setting a security.* attribute needs root.
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.conf");
        std::fs::write(&f, "old\n").unwrap();
        let label = b"system_u:object_r:httpd_config_t:s0\0";
        xattr::set(&f, SELINUX_XATTR, label).unwrap();
        write_atomically(&f, b"new\n").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new\n");
        assert_eq!(
            xattr::get(&f, SELINUX_XATTR).unwrap().as_deref(),
            Some(&label[..])
        );
    }

    #[test]
    fn too_large_and_not_a_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let big = vec![b'x'; (MAX_FILE + 1) as usize];
        assert!(matches!(
            write_atomically(&f, &big),
            Err(EditError::TooLarge { .. })
        ));
        assert_eq!(std::fs::read(&f).unwrap(), b"x");
        assert!(matches!(
            write_atomically(dir.path(), b"y"),
            Err(EditError::NotAFile { .. })
        ));
        assert!(matches!(
            write_atomically(&dir.path().join("missing"), b"y"),
            Err(EditError::Io { .. })
        ));
    }
}
