//! Fixtures shared by the tests of the three host checks.

use std::path::PathBuf;

use fix502_nginx::logscan::{self, ScanOptions};
use fix502_nginx::view::Peer;

use crate::facts::{Endpoint, EndpointUse, LogRead};
use crate::report::{Finding, Location, Severity};

pub(super) fn endpoint(peer: Peer) -> Endpoint {
    Endpoint {
        display: peer.to_string(),
        peer,
        group: None,
        uses: vec![EndpointUse {
            directive: "proxy_pass http://x".to_owned(),
            at: Location {
                file: PathBuf::from("/etc/nginx/nginx.conf"),
                line: 12,
            },
            server_at: None,
            location: Some("/".to_owned()),
            server_name: None,
            target: 0,
        }],
    }
}

pub(super) fn tcp(port: u16) -> Endpoint {
    endpoint(Peer::inet("127.0.0.1", port))
}

pub(super) fn unix(path: &str) -> Endpoint {
    endpoint(Peer::Unix(PathBuf::from(path)))
}

pub(super) fn reads(text: &str) -> Vec<LogRead> {
    let summary = logscan::scan(text.as_bytes(), &ScanOptions::default()).unwrap();
    vec![LogRead {
        path: PathBuf::from("/var/log/nginx/error.log"),
        summary: Ok(summary),
        notes: Vec::new(),
        source: None,
    }]
}

pub(super) const LOG_13_TCP: &str = "2026/11/24 10:00:00 [crit] 1235#1235: *7 connect() to 127.0.0.1:8000 failed (13: Permission denied) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"localhost\"\n";
pub(super) const LOG_13_UNIX: &str = "2026/11/24 10:00:01 [crit] 1235#1235: *8 connect() to unix:/run/php/php8.2-fpm.sock failed (13: Permission denied) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET /index.php HTTP/1.1\", upstream: \"fastcgi://unix:/run/php/php8.2-fpm.sock:\", host: \"localhost\"\n";

pub(super) fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}
