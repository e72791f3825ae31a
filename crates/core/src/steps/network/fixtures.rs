//! Fixtures shared by the tests of `network.dns` and the diagnosis: log lines and a [`Facts`] built from a config and an error log.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use fix502_nginx::logscan::{self, ScanOptions};

use crate::facts::{Facts, LogRead};

pub(super) fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

pub(super) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// An error-log line at `time` (nginx's local-time format).
pub(super) fn connect_failed(time: &str, peer: &str) -> String {
    format!(
        "{time} [error] 7#7: *12 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://{peer}/\", host: \"localhost\"\n"
    )
}

pub(super) fn now_text() -> String {
    jiff::ZonedDateTime::now()
        .datetime()
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string()
}

pub(super) fn log_reads(text: &str) -> Vec<LogRead> {
    let summary = logscan::scan(std::io::Cursor::new(text), &ScanOptions::default()).unwrap();
    vec![LogRead {
        path: PathBuf::from("/var/log/nginx/error.log"),
        summary: Ok(summary),
        notes: Vec::new(),
        source: None,
    }]
}

pub(crate) fn facts_for(dir: &Path, conf: &str, log: &str) -> Facts {
    let config = dir.join("nginx.conf");
    std::fs::write(&config, conf).unwrap();
    let error_log = dir.join("error.log");
    std::fs::write(&error_log, log).unwrap();
    let discovery = crate::discovery::Discovery {
        binary: None,
        build: Default::default(),
        config,
        prefix: Some(dir.to_path_buf()),
        master: None,
        other_masters: Vec::new(),
        own_ns: Default::default(),
        via: Default::default(),
        notes: Vec::new(),
    };
    let options = crate::options::Options {
        error_logs: vec![error_log],
        ..crate::options::Options::default()
    };
    Facts::new(options, discovery)
}
