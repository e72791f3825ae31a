//! Files as a process in another mount namespace (nginx in a container) sees them: through
//! `/proc/PID/root`, with every symlink resolved from that process's root, not fix502's (an
//! absolute link inside a container points into the container). What belongs here: mapping
//! such paths, and the config [`Source`] that reads nginx's config this way.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use fix502_nginx::config::{FsSource, Source};

/// `path` (absolute in nginx's namespace) as fix502 reaches it.
pub(crate) fn seen(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// `path` (absolute in the namespace whose root is `root`) as fix502 opens it: symlinks
/// resolved inside that root, then seen through it. A path that cannot be resolved (a loop)
/// is seen as written.
pub(crate) fn open_path(root: &Path, path: &Path) -> PathBuf {
    seen(
        root,
        &resolve(path, root).unwrap_or_else(|| path.to_path_buf()),
    )
}

/// `path` (absolute in nginx's namespace) with every symlink resolved as nginx's namespace
/// resolves it (absolute links from its root); the missing tail is kept as written. `None`
/// for a relative path or a symlink loop.
pub(crate) fn resolve(path: &Path, root: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut todo: Vec<OsString> = Vec::new();
    for c in path.components().rev() {
        if let Component::Normal(n) = c {
            todo.push(n.to_owned());
        } else if c == Component::ParentDir {
            todo.push(OsString::from(".."));
        }
    }
    let mut done = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let next = done.join(&part);
        match std::fs::symlink_metadata(seen(root, &next)) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(seen(root, &next)).ok()?;
                if target.is_absolute() {
                    done = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push(n.to_owned()),
                        Component::ParentDir => todo.push(OsString::from("..")),
                        _ => {}
                    }
                }
            }
            _ => done = next,
        }
    }
    Some(done)
}

/// nginx's config as the master in another mount namespace sees it: every file and glob
/// read through its `/proc/PID/root`, symlinks resolved from its root. The paths the config
/// reports are nginx's own (`/etc/nginx/...`).
#[derive(Debug, Clone)]
pub(crate) struct RootedSource {
    /// The root, e.g. `/proc/PID/root`.
    root: PathBuf,
}

impl RootedSource {
    /// Reads through `root` (e.g. `/proc/PID/root`).
    pub(crate) fn new(root: PathBuf) -> Self {
        Self { root }
    }
}

impl Source for RootedSource {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        FsSource.read(&open_path(&self.root, path))
    }

    fn glob(&self, pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
        // The directory part without wildcards is resolved inside the root; the wildcard
        // part is matched there, and the matches are given back as nginx's paths.
        let text = pattern.to_string_lossy();
        let literal = text.find(['*', '?', '[']).map_or(text.len(), |i| {
            text[..i].rfind('/').map_or(0, |slash| slash + 1)
        });
        let (dir, rest) = text.split_at(literal);
        let dir = if dir.is_empty() { "/" } else { dir };
        let inside = resolve(Path::new(dir), &self.root).unwrap_or_else(|| PathBuf::from(dir));
        let host_dir = seen(&self.root, &inside);
        let found = FsSource.glob(&host_dir.join(rest))?;
        Ok(found
            .into_iter()
            .filter_map(|p| p.strip_prefix(&host_dir).ok().map(|tail| inside.join(tail)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_namespace_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("run/real")).unwrap();
        std::os::unix::fs::symlink("/run", r.join("varrun")).unwrap();
        std::os::unix::fs::symlink("real/../real", r.join("run/rel")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(
            resolve(Path::new("/varrun/rel/x.sock"), r),
            Some(PathBuf::from("/run/real/x.sock"))
        );
        assert_eq!(
            resolve(Path::new("/varrun/missing/../real"), r),
            Some(PathBuf::from("/run/real"))
        );
        assert_eq!(resolve(Path::new("/loop/x"), r), None);
        assert_eq!(resolve(Path::new("relative"), r), None);
    }

    #[test]
    fn a_config_is_read_inside_its_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc/nginx/sites-available")).unwrap();
        std::fs::create_dir_all(r.join("etc/nginx/sites-enabled")).unwrap();
        std::fs::write(
            r.join("etc/nginx/nginx.conf"),
            "events {}\nhttp { include /etc/nginx/sites-enabled/*; }\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/nginx/sites-available/app"),
            "server { listen 8080; location / { proxy_pass http://app:3000; } }\n",
        )
        .unwrap();
        // An absolute link, as Debian's package makes: it must resolve inside the root.
        std::os::unix::fs::symlink(
            "/etc/nginx/sites-available/app",
            r.join("etc/nginx/sites-enabled/app"),
        )
        .unwrap();
        let source = RootedSource::new(r.to_path_buf());
        let config =
            fix502_nginx::config::Config::load_from(Path::new("/etc/nginx/nginx.conf"), &source)
                .unwrap();
        assert!(config.errors.is_empty(), "{:?}", config.errors);
        let files = &config.files;
        assert!(
            files.contains(&PathBuf::from("/etc/nginx/sites-enabled/app")),
            "{files:?}"
        );
    }
}
