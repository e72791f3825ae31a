//! Docker's json-file log of a container: where nginx's `error_log stderr` lines are when
//! nginx runs in a Docker container with the default log driver. Each line of
//! `DOCKER_ROOT/containers/ID/ID-json.log` is one JSON object,
//! `{"log":"text\n","stream":"stderr","time":"RFC 3339"}`; the `stderr` ones are nginx's
//! error log (its access log goes to stdout). Docker splits a line longer than 16 KiB over
//! several objects, only the last of which ends in `\n`: they are joined again.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use fix502_nginx::logscan::{self, ScanOptions};

use super::logs::LogRead;

/// Where Docker keeps its data by default (`dockerd --data-root`).
pub const DOCKER_ROOT: &str = "/var/lib/docker";

/// The most of a container's json-file log (its current file and rotated ones together)
/// read, from the newest lines back.
pub(super) const MAX_BYTES: u64 = 64 << 20;

/// The most rotated files (`-json.log.1` ...) looked at.
const MAX_ROTATED: usize = 9;

/// A JSON line longer than this is skipped (Docker writes at most 16 KiB of text each).
const MAX_LINE: usize = 1 << 20;

/// A stderr line longer than this (after joining) keeps only its start: the scanner skips
/// lines over 4 KiB anyway.
const MAX_JOINED: usize = 64 << 10;

/// The json-file log of container `id` under Docker's data root.
pub(super) fn json_log_path(root: &Path, id: &str) -> PathBuf {
    root.join("containers")
        .join(id)
        .join(format!("{id}-json.log"))
}

/// Docker's json-file log of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLog {
    /// The container id, as its cgroup names it.
    pub id: String,
    /// `DOCKER_ROOT/containers/ID/ID-json.log`.
    pub path: PathBuf,
    /// Why it cannot be read, when it cannot: it does not exist (the container's log
    /// driver is not json-file), or it cannot be seen (not root). `None` when it is there.
    pub unreadable: Option<String>,
}

impl DockerLog {
    /// Container `id`'s json-file log under Docker's data root `root`, looked at now.
    pub fn of(root: &Path, id: &str) -> Self {
        let path = json_log_path(root, id);
        let unreadable = match std::fs::metadata(&path) {
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(format!(
                "{} does not exist (the container's log driver is not json-file: local, journald, ...; docker inspect -f '{{{{.HostConfig.LogConfig.Type}}}}' {})",
                path.display(),
                short_id(id)
            )),
            Err(e) => Some(format!("{} cannot be read ({e})", path.display())),
        };
        Self {
            id: id.to_owned(),
            path,
            unreadable,
        }
    }

    /// The id as `docker ps` shows it (12 hex digits).
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// What the decoding of json-file lines gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Decoded {
    /// The stderr text, one line each, joined where Docker split it.
    pub text: Vec<u8>,
    /// stderr lines (after joining).
    pub stderr_lines: u64,
    /// stdout lines, left out.
    pub stdout_lines: u64,
    /// Lines that are not a json-file object (counted, never quoted).
    pub unparsed: u64,
    /// A last line without its `\n` (Docker was writing it): left out.
    pub partial: bool,
}

#[derive(serde::Deserialize)]
struct Entry {
    log: String,
    stream: String,
}

/// The decoder's state across the lines of one or more files.
#[derive(Default)]
struct Decoder {
    out: Decoded,
    stderr: Vec<u8>,
    stdout_open: bool,
}

impl Decoder {
    fn line(&mut self, line: &[u8]) {
        let Ok(entry) = serde_json::from_slice::<Entry>(line) else {
            self.out.unparsed += 1;
            return;
        };
        let ends = entry.log.ends_with('\n');
        match entry.stream.as_str() {
            "stderr" => {
                let room = MAX_JOINED.saturating_sub(self.stderr.len());
                let text = entry.log.trim_end_matches('\n').as_bytes();
                self.stderr
                    .extend_from_slice(text.get(..room.min(text.len())).unwrap_or_default());
                if ends {
                    self.flush();
                }
            }
            "stdout" => {
                self.stdout_open = !ends;
                if ends {
                    self.out.stdout_lines += 1;
                }
            }
            _ => self.out.unparsed += 1,
        }
    }

    fn flush(&mut self) {
        self.out.text.append(&mut self.stderr);
        self.out.text.push(b'\n');
        self.out.stderr_lines += 1;
    }

    /// Reads every complete line of `reader`; `skip_first` drops the text up to the first
    /// `\n` (a line cut by a seek).
    fn read<R: BufRead>(&mut self, mut reader: R, skip_first: bool) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut first = skip_first;
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let complete = buf.last() == Some(&b'\n');
            if !complete && buf.len() > MAX_LINE {
                // Too long to be Docker's: skip to its end.
                self.out.unparsed += u64::from(!first);
                first = false;
                let mut rest = Vec::new();
                while (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)?
                    > 0
                    && rest.last() != Some(&b'\n')
                {
                    rest.clear();
                }
                continue;
            }
            if std::mem::take(&mut first) {
                continue;
            }
            if !complete {
                self.out.partial = true;
                return Ok(());
            }
            self.line(&buf);
        }
    }

    fn finish(mut self) -> Decoded {
        if !self.stderr.is_empty() {
            self.flush();
        }
        if self.stdout_open {
            self.out.stdout_lines += 1;
        }
        self.out
    }
}

#[cfg(test)]
/// Decodes json-file lines read from `reader` (the whole of it).
pub(super) fn decode<R: BufRead>(reader: R) -> io::Result<Decoded> {
    let mut decoder = Decoder::default();
    decoder.read(reader, false)?;
    Ok(decoder.finish())
}

/// Reads container `id`'s json-file log under `root` (blocking): its stderr lines, at most
/// the last [`MAX_BYTES`] of the current and rotated files, scanned like an error-log file.
/// The [`LogRead`]'s path is the json-file log; its source says what the lines are.
pub(super) fn read(root: &Path, id: &str, opts: &ScanOptions) -> LogRead {
    let path = json_log_path(root, id);
    let source = format!(
        "Docker's json-file log of container {}, stderr lines",
        short_id(id)
    );
    let (summary, notes) = match read_files(&path, MAX_BYTES) {
        Ok((decoded, mut notes)) => {
            let summary = logscan::scan(io::Cursor::new(&decoded.text), opts);
            notes.extend(decoded_notes(&decoded));
            (summary.map_err(|e| e.to_string()), notes)
        }
        Err(e) => (Err(e.to_string()), Vec::new()),
    };
    LogRead {
        path,
        summary,
        notes,
        source: Some(source),
    }
}

fn decoded_notes(decoded: &Decoded) -> Vec<String> {
    let mut notes = Vec::new();
    if decoded.stdout_lines > 0 {
        notes.push(format!(
            "{} stdout lines left out (nginx's access log goes to stdout)",
            decoded.stdout_lines
        ));
    }
    if decoded.unparsed > 0 {
        notes.push(format!(
            "{} lines are not Docker json-file objects and were skipped",
            decoded.unparsed
        ));
    }
    if decoded.partial {
        notes.push("the last line was still being written and was left out".to_owned());
    }
    notes
}

/// The current file and its rotated ones, decoded oldest first, from the newest `budget`
/// bytes back; the notes say what was cut or skipped.
fn read_files(path: &Path, budget: u64) -> io::Result<(Decoded, Vec<String>)> {
    let size = std::fs::metadata(path)?.len();
    let mut files = vec![(path.to_path_buf(), size)];
    let mut notes = Vec::new();
    for n in 1..=MAX_ROTATED {
        let rotated = PathBuf::from(format!("{}.{n}", path.display()));
        if let Ok(meta) = std::fs::metadata(&rotated) {
            files.push((rotated, meta.len()));
        } else if Path::new(&format!("{}.{n}.gz", path.display())).exists() {
            notes.push(format!(
                "the compressed rotations from {}.{n}.gz on were not read",
                path.display()
            ));
            break;
        } else {
            break;
        }
    }
    let total: u64 = files.iter().map(|(_, s)| s).sum();
    let mut left = budget;
    let mut parts = Vec::new();
    for (file, size) in files {
        if left == 0 {
            break;
        }
        let take = size.min(left);
        left -= take;
        parts.push((file, size - take));
    }
    if total > budget {
        notes.push(format!(
            "only the last {} MiB of {} MiB of json-file log were read",
            budget >> 20,
            total.div_ceil(1 << 20)
        ));
    }
    let mut decoder = Decoder::default();
    for (file, start) in parts.into_iter().rev() {
        let mut f = File::open(&file)?;
        // Seek one byte early: when that byte is the end of a line, nothing is dropped.
        let from = start.saturating_sub(1);
        f.seek(SeekFrom::Start(from))?;
        decoder.read(BufReader::new(f), start > 0)?;
    }
    Ok((decoder.finish(), notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &str = "2026/11/24 02:11:50 [error] 29#29: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1, server: _, request: \\\"GET / HTTP/1.1\\\", upstream: \\\"http://127.0.0.1:3000/\\\", host: \\\"localhost\\\"";

    fn fixture() -> String {
        [
            format!(r#"{{"log":"{REFUSED}\n","stream":"stderr","time":"2026-11-24T02:11:50.1Z"}}"#),
            r#"{"log":"172.18.0.1 - - [24/Nov/2026:02:11:50 +0000] \"GET / HTTP/1.1\" 502 157\n","stream":"stdout","time":"2026-11-24T02:11:50.2Z"}"#.to_owned(),
            "not json at all".to_owned(),
            // A line Docker split: the first part has no \n.
            r#"{"log":"2026/11/24 02:11:51 [error] 29#29: *5 upstream prematurely closed ","stream":"stderr","time":"2026-11-24T02:11:51.1Z"}"#.to_owned(),
            r#"{"log":"connection while reading response header from upstream, client: 172.18.0.1\n","stream":"stderr","time":"2026-11-24T02:11:51.1Z"}"#.to_owned(),
            // Still being written: no \n.
            r#"{"log":"2026/11/24 02:11:52 [error] 29#29: *7 conn"#.to_owned(),
        ]
        .join("\n")
    }

    #[test]
    fn json_file_lines_are_decoded_and_joined() {
        let decoded = decode(fixture().as_bytes()).unwrap();
        let text = String::from_utf8(decoded.text.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains(r#"request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:3000/""#)
        );
        assert_eq!(
            lines[1],
            "2026/11/24 02:11:51 [error] 29#29: *5 upstream prematurely closed connection while reading response header from upstream, client: 172.18.0.1"
        );
        assert_eq!(decoded.stderr_lines, 2);
        assert_eq!(decoded.stdout_lines, 1);
        assert_eq!(decoded.unparsed, 1);
        assert!(decoded.partial);
        let summary =
            logscan::scan(io::Cursor::new(&decoded.text), &ScanOptions::default()).unwrap();
        assert_eq!(summary.lines_unparsed, 0, "{summary:?}");
        assert_eq!(summary.groups.len(), 2, "{summary:?}");
        assert_eq!(
            summary.groups[0].failure.peer.as_deref(),
            Some("127.0.0.1:3000")
        );
    }

    #[test]
    fn the_read_is_bounded_and_reaches_into_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789ab".repeat(5) + "cdef";
        let path = json_log_path(dir.path(), &id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let line =
            format!(r#"{{"log":"{REFUSED}\n","stream":"stderr","time":"2026-11-24T02:11:50.1Z"}}"#)
                + "\n";
        std::fs::write(&path, line.repeat(3)).unwrap();
        std::fs::write(format!("{}.1", path.display()), line.repeat(2)).unwrap();
        let (decoded, notes) = read_files(&path, 10 << 20).unwrap();
        assert_eq!(decoded.stderr_lines, 5);
        assert!(notes.is_empty(), "{notes:?}");
        // A budget of four and a half lines: the half line cut at the start is dropped.
        let budget = (line.len() * 9 / 2) as u64;
        let (decoded, notes) = read_files(&path, budget).unwrap();
        assert_eq!(decoded.stderr_lines, 4);
        assert_eq!(decoded.unparsed, 0);
        assert_eq!(notes.len(), 1, "{notes:?}");
        // Cut exactly at a line's end: nothing lost.
        let (decoded, _) = read_files(&path, (line.len() * 4) as u64).unwrap();
        assert_eq!(decoded.stderr_lines, 4);
        assert_eq!(decoded.unparsed, 0);

        let read = read(dir.path(), &id, &ScanOptions::default());
        assert_eq!(read.path, path);
        assert_eq!(
            read.source.as_deref(),
            Some("Docker's json-file log of container 0123456789ab, stderr lines")
        );
        assert_eq!(read.summary.unwrap().groups[0].count, 5);
    }
}
