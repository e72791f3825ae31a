//! Reading a bundle back: its manifest and the report it carries ([`read_bundle`], for
//! `fix502 fleet`), or all of it for an offline run ([`open_bundle`]: the record, and the
//! config files and log windows unpacked under a temp directory as nginx's paths), refused
//! in one line when the file is not a bundle, is cut short, or comes from a newer fix502.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use super::recorded::{self, Recorded};
use super::write::{BUNDLE_VERSION, Manifest};
use crate::report::Report;

/// The most bytes one member may have when read back.
const MAX_READ: u64 = 64 * 1024 * 1024;

/// Why a bundle could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It could not be opened.
    #[error("cannot read {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// It is not a fix502 bundle, or it is cut short or damaged.
    #[error("{path} is not a fix502 bundle, or it is cut short: {why}")]
    NotABundle {
        /// The file.
        path: String,
        /// What was wrong, in a few words.
        why: String,
    },
    /// A newer fix502 wrote it.
    #[error(
        "{path} was written by fix502 {by} (bundle version {version}); this fix502 reads bundle version {BUNDLE_VERSION}: upgrade fix502"
    )]
    Newer {
        /// The file.
        path: String,
        /// The fix502 that wrote it.
        by: String,
        /// Its bundle version.
        version: u32,
    },
}

/// The most bytes a bundle may unpack to (a bundle is capped at 50 MB by default; this
/// bounds a damaged or hostile one).
const MAX_UNPACKED: u64 = 2 * 1024 * 1024 * 1024;

/// A bundle opened for an offline run.
#[derive(Debug)]
pub(crate) struct Opened {
    /// Its manifest.
    pub(crate) manifest: Manifest,
    /// What the live run measured.
    pub(crate) recorded: Recorded,
    /// The temp directory holding the unpacked files (removed when dropped).
    pub(crate) dir: tempfile::TempDir,
    /// nginx's `/` in it: the config files and log windows at their own paths.
    pub(crate) root: PathBuf,
    /// Docker's data root in it: a container's json-file log, when the bundle has one.
    pub(crate) docker_root: PathBuf,
}

/// Opens the bundle at `path` for an offline run: reads its manifest and record, and
/// unpacks its config (split from `nginx -T`, or the files read) and its log windows
/// (a rotated `.gz` part compressed again) at nginx's paths under a temp directory.
pub(crate) fn open_bundle(path: &Path) -> Result<Opened, ReadError> {
    let shown = path.display().to_string();
    let not = |why: String| ReadError::NotABundle {
        path: shown.clone(),
        why,
    };
    let dir = tempfile::Builder::new()
        .prefix("fix502-from-")
        .tempdir()
        .map_err(|source| ReadError::Open {
            path: "a temp directory".to_owned(),
            source,
        })?;
    let root = dir.path().join("root");
    let docker_root = dir.path().join("docker");
    let mut manifest: Option<Vec<u8>> = None;
    let mut record: Option<Vec<u8>> = None;
    let mut dump: Option<Vec<u8>> = None;
    each_member(path, |name, bytes| {
        match name {
            "manifest.json" => manifest = Some(bytes),
            n if n == recorded::MEMBER => record = Some(bytes),
            "nginx/T.txt" => dump = Some(bytes),
            n => {
                let at = ["files/", "logs/error/", "logs/access/"]
                    .iter()
                    .find_map(|p| n.strip_prefix(p));
                match (at, n.strip_prefix(super::DOCKER_MEMBERS)) {
                    (Some(at), _) => place(&root, at, &bytes),
                    (None, Some(at)) => place(&docker_root, at, &bytes),
                    (None, None) => Ok(()),
                }
                .map_err(|e| format!("{n}: {e}"))?;
            }
        }
        Ok(())
    })?;
    let manifest = manifest.ok_or_else(|| not("no manifest.json".to_owned()))?;
    let manifest = check_manifest(&manifest, &shown)?;
    if let Some(dump) = dump {
        for f in fix502_nginx::dump::split_dump(&String::from_utf8_lossy(&dump)) {
            let at = f.path.display().to_string();
            place(&root, &at, f.content.as_bytes())
                .map_err(|e| not(format!("nginx/T.txt: {at}: {e}")))?;
        }
    }
    let record = record.ok_or_else(|| {
        not(format!(
            "no {} (collected by fix502 {}, which did not record what --from needs; collect again)",
            recorded::MEMBER,
            manifest.fix502_version
        ))
    })?;
    let recorded: Recorded =
        serde_json::from_slice(&record).map_err(|e| not(format!("{}: {e}", recorded::MEMBER)))?;
    Ok(Opened {
        manifest,
        recorded,
        dir,
        root,
        docker_root,
    })
}

/// Calls `member` with the name and bytes of every file of the bundle at `path`, in order
/// (each at most [`MAX_READ`] bytes, all at most [`MAX_UNPACKED`]); what `member` refuses,
/// and a file that cannot be unpacked, is [`ReadError::NotABundle`].
fn each_member(
    path: &Path,
    mut member: impl FnMut(&str, Vec<u8>) -> Result<(), String>,
) -> Result<(), ReadError> {
    let shown = path.display().to_string();
    let not = |why: String| ReadError::NotABundle {
        path: shown.clone(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|source| ReadError::Open {
        path: shown.clone(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut unpacked: u64 = 0;
    let entries = archive.entries().map_err(|e| not(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not(e.to_string()))?;
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .map_err(|e| not(e.to_string()))?;
        let name = name.trim_start_matches("./").to_owned();
        if !entry.header().entry_type().is_file() {
            // A directory (a bundle packed again by hand): its files follow.
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_READ)
            .read_to_end(&mut bytes)
            .map_err(|e| not(format!("{name}: {e}")))?;
        unpacked += bytes.len() as u64;
        if unpacked > MAX_UNPACKED {
            return Err(not(format!("it unpacks to more than {MAX_UNPACKED} bytes")));
        }
        member(&name, bytes).map_err(not)?;
    }
    Ok(())
}

/// Writes `bytes` at `path` (absolute, as nginx names it) under `root`; a path that would
/// leave `root` (`..`) is refused. A `.gz` part (stored decompressed) is compressed again,
/// so that it is read as the rotated part it was.
fn place(root: &Path, path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let relative = Path::new(path.trim_start_matches('/'));
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a plain absolute path",
        ));
    }
    let at = root.join(relative);
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::File::create(&at)?;
    if path.ends_with(".gz") {
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(bytes)?;
        gz.finish()?;
    } else {
        file.write_all(bytes)?;
    }
    Ok(())
}

/// The manifest, refused when a newer fix502 wrote it.
fn check_manifest(bytes: &[u8], shown: &str) -> Result<Manifest, ReadError> {
    let not = |why: String| ReadError::NotABundle {
        path: shown.to_owned(),
        why,
    };
    let version: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| not(format!("manifest.json: {e}")))?;
    let bundle_version = version["bundle_version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| not("manifest.json has no bundle_version".to_owned()))?;
    if bundle_version > BUNDLE_VERSION {
        return Err(ReadError::Newer {
            path: shown.to_owned(),
            by: version["fix502_version"].as_str().unwrap_or("?").to_owned(),
            version: bundle_version,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| not(format!("manifest.json: {e}")))
}

/// The manifest and the report of the bundle at `path`.
pub fn read_bundle(path: &Path) -> Result<(Manifest, Report), ReadError> {
    let shown = path.display().to_string();
    let not = |why: String| ReadError::NotABundle {
        path: shown.clone(),
        why,
    };
    let mut manifest: Option<Vec<u8>> = None;
    let mut report: Option<Vec<u8>> = None;
    each_member(path, |name, bytes| {
        match name {
            "manifest.json" => manifest = Some(bytes),
            "report.json" => report = Some(bytes),
            _ => {}
        }
        Ok(())
    })?;
    let manifest = manifest.ok_or_else(|| not("no manifest.json".to_owned()))?;
    let manifest = check_manifest(&manifest, &shown)?;
    let report = report.ok_or_else(|| not("no report.json".to_owned()))?;
    let report: Report =
        serde_json::from_slice(&report).map_err(|e| not(format!("report.json: {e}")))?;
    Ok((manifest, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_placed_at_nginx_s_path_and_never_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        place(&root, "/etc/nginx/nginx.conf", b"events {}\n").unwrap();
        assert_eq!(
            std::fs::read(root.join("etc/nginx/nginx.conf")).unwrap(),
            b"events {}\n"
        );
        for bad in ["/etc/../../escape", "../escape", "/", ""] {
            assert!(place(&root, bad, b"x").is_err(), "{bad}");
        }
        assert!(!dir.path().join("escape").exists());
        // A rotated part stored decompressed is compressed again.
        place(&root, "/var/log/nginx/error.log.2.gz", b"line\n").unwrap();
        let gz = std::fs::read(root.join("var/log/nginx/error.log.2.gz")).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "line\n");
    }
}
