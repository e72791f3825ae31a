//! Reading a bundle back: its manifest and the report it carries, refused in one line when
//! the file is not a bundle, is cut short, or comes from a newer fix502.

use std::io::Read;
use std::path::Path;

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

/// The manifest and the report of the bundle at `path`.
pub fn read_bundle(path: &Path) -> Result<(Manifest, Report), ReadError> {
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
    let mut manifest: Option<Vec<u8>> = None;
    let mut report: Option<Vec<u8>> = None;
    let entries = archive.entries().map_err(|e| not(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not(e.to_string()))?;
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .map_err(|e| not(e.to_string()))?;
        let slot = match name.trim_start_matches("./") {
            "manifest.json" => &mut manifest,
            "report.json" => &mut report,
            _ => continue,
        };
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(MAX_READ)
            .read_to_end(&mut bytes)
            .map_err(|e| not(e.to_string()))?;
        *slot = Some(bytes);
    }
    let manifest = manifest.ok_or_else(|| not("no manifest.json".to_owned()))?;
    let version: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|e| not(format!("manifest.json: {e}")))?;
    let bundle_version = version["bundle_version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| not("manifest.json has no bundle_version".to_owned()))?;
    if bundle_version > BUNDLE_VERSION {
        return Err(ReadError::Newer {
            path: shown,
            by: version["fix502_version"].as_str().unwrap_or("?").to_owned(),
            version: bundle_version,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(&manifest).map_err(|e| not(format!("manifest.json: {e}")))?;
    let report = report.ok_or_else(|| not("no report.json".to_owned()))?;
    let report: Report =
        serde_json::from_slice(&report).map_err(|e| not(format!("report.json: {e}")))?;
    Ok((manifest, report))
}
