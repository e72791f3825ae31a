//! Writing a bundle: each member scrubbed, kept under the size cap (a log's oldest lines go
//! first, any other member that does not fit is left out, and the manifest says so), then
//! the `.tar.gz` with `manifest.json` last, written to a temp file (mode 0600) and renamed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CollectOptions;
use crate::options::Options;

/// The manifest's format version; a reader refuses a newer one.
pub const BUNDLE_VERSION: u32 = 1;
/// The default size cap of a bundle's members together: 50 MB.
pub const DEFAULT_CAP: u64 = 50 * 1000 * 1000;
/// The most bytes read of one log part (its newest); the cap then applies.
pub(super) const MAX_MEMBER: u64 = 512 * 1024 * 1024;

/// One file of the bundle, before it is written.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its path in the bundle.
    pub path: String,
    /// What it is, for a person.
    pub what: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// A log: when it does not fit, its newest lines are kept.
    pub log: bool,
}

impl Member {
    /// A member that is kept whole or left out.
    pub fn text(path: &str, what: &str, bytes: Vec<u8>) -> Self {
        Self {
            path: path.to_owned(),
            what: what.to_owned(),
            bytes,
            log: false,
        }
    }

    /// A log's lines: cut from the oldest when it does not fit.
    pub fn log(path: &str, what: &str, bytes: Vec<u8>) -> Self {
        Self {
            log: true,
            ..Self::text(path, what, bytes)
        }
    }
}

/// `manifest.json`: what the bundle holds, how it was made, what was taken out or cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`BUNDLE_VERSION`] of the fix502 that wrote it.
    pub bundle_version: u32,
    /// That fix502's version.
    pub fix502_version: String,
    /// The host it was collected on.
    pub host: String,
    /// When (UTC, RFC 3339).
    pub collected_at: String,
    /// The `--since` window, in seconds.
    pub since_seconds: u64,
    /// The `--url`, if one was given.
    pub url: Option<String>,
    /// What was redacted.
    pub redaction: Redaction,
    /// The size cap of the members together, in bytes.
    pub cap_bytes: u64,
    /// The members' bytes together.
    pub total_bytes: u64,
    /// Every member, in order.
    pub members: Vec<MemberEntry>,
    /// What was cut or left out for the cap, one line each.
    pub cut: Vec<String>,
}

/// What was redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// False after `--no-redact`: the bundle holds secrets as they were.
    pub enabled: bool,
    /// How many of each kind were replaced.
    pub kinds: BTreeMap<String, usize>,
    /// How many `--redact` patterns were given.
    pub user_patterns: usize,
    /// What is never read, only named.
    pub never_read: Vec<String>,
}

/// One member in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    /// Its path in the bundle.
    pub path: String,
    /// What it is.
    pub what: String,
    /// Its size.
    pub bytes: u64,
    /// Whether its oldest part was cut for the cap.
    pub truncated: bool,
}

/// Scrubs the members, applies the cap and writes the bundle.
pub(super) fn write(
    output: &Path,
    members: Vec<Member>,
    host: &str,
    options: &Options,
    how: &CollectOptions,
    progress: &mut dyn FnMut(&str),
) -> io::Result<Manifest> {
    let mut kinds = BTreeMap::new();
    let mut kept: Vec<(MemberEntry, Vec<u8>)> = Vec::new();
    let mut cut = Vec::new();
    let mut total = 0u64;
    for m in members {
        progress(&format!("redacting {}", m.path));
        let bytes = how.scrubber.scrub(&m.bytes, &mut kinds);
        let room = how.cap.saturating_sub(total);
        let (bytes, truncated) = if (bytes.len() as u64) <= room {
            (bytes, false)
        } else if m.log && room > 0 {
            let newest = newest_lines(&bytes, room);
            cut.push(format!(
                "{}: the oldest {} of {} bytes left out (size cap)",
                m.path,
                bytes.len() - newest.len(),
                bytes.len()
            ));
            (newest, true)
        } else {
            cut.push(format!(
                "{}: left out, {} bytes (size cap)",
                m.path,
                bytes.len()
            ));
            continue;
        };
        total += bytes.len() as u64;
        kept.push((
            MemberEntry {
                path: m.path,
                what: m.what,
                bytes: bytes.len() as u64,
                truncated,
            },
            bytes,
        ));
    }
    let manifest = Manifest {
        bundle_version: BUNDLE_VERSION,
        fix502_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: host.to_owned(),
        collected_at: crate::engine::now_rfc3339(),
        since_seconds: options.since.as_secs(),
        url: options.url.clone(),
        redaction: Redaction {
            enabled: how.scrubber.enabled(),
            kinds,
            user_patterns: how.scrubber.user_patterns(),
            never_read: [
                "private keys (*_certificate_key)",
                "ssl_password_file",
                "auth_basic_user_file",
            ]
            .map(str::to_owned)
            .to_vec(),
        },
        cap_bytes: how.cap,
        total_bytes: total,
        members: kept.iter().map(|(e, _)| e.clone()).collect(),
        cut,
    };
    progress("writing the bundle");
    write_tar_gz(output, &kept, &manifest)?;
    Ok(manifest)
}

/// The newest whole lines of `bytes` that fit in `room`.
fn newest_lines(bytes: &[u8], room: u64) -> Vec<u8> {
    let room = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
    let tail = &bytes[bytes.len() - room..];
    let start = if room == bytes.len() {
        0
    } else {
        tail.iter()
            .position(|b| *b == b'\n')
            .map_or(tail.len(), |p| p + 1)
    };
    tail[start..].to_vec()
}

fn write_tar_gz(
    output: &Path,
    kept: &[(MemberEntry, Vec<u8>)],
    manifest: &Manifest,
) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".to_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    let written = (|| {
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut add = |path: &str, bytes: &[u8]| -> io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, bytes)
        };
        for (entry, bytes) in kept {
            add(&entry.path, bytes)?;
        }
        let json = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
        add("manifest.json", &json)?;
        let gz = tar.into_inner()?;
        let mut file = gz.finish()?;
        file.flush()?;
        file.sync_all()
    })();
    match written.and_then(|()| std::fs::rename(&temp, output)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_keeps_its_newest_whole_lines() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(newest_lines(log, 7), b"three\n");
        assert_eq!(newest_lines(log, 100), log);
        assert_eq!(newest_lines(log, 3), b"");
    }
}
