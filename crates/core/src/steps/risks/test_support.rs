//! What the rules' tests share: a config from text, a run of every rule, a host context.

//! What the tests of every rule file share: loading a config text and running the rules.

use std::path::{Path, PathBuf};

use fix502_nginx::config::Config;
use fix502_nginx::view::ConfigView;

use super::context::HostContext;
use super::{RISKS, rules};
use crate::causes::Cause;
use crate::report::{Finding, Severity};

const MAIN: &str = "/etc/nginx/nginx.conf";

pub(super) fn load(text: &str) -> (Config, ConfigView) {
    let directives = Config::parse_str(text, Path::new(MAIN)).unwrap();
    let config = Config {
        main: PathBuf::from(MAIN),
        files: vec![PathBuf::from(MAIN)],
        directives,
        errors: Vec::new(),
    };
    let view = ConfigView::new(&config);
    (config, view)
}

/// `body` inside `http {}`, with an empty `events {}`.
pub(super) fn http(body: &str) -> (Config, ConfigView) {
    load(&format!("events {{}}\nhttp {{\n{body}\n}}\n"))
}

/// Every rule, checking what every finding must have.
pub(super) fn run(text: (Config, ConfigView), host: &HostContext) -> Vec<Finding> {
    let found = rules(&text.0, &text.1, host);
    for f in &found {
        assert_eq!(f.check, RISKS);
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.cause.is_some());
        assert!(!f.message.is_empty());
        assert!(!f.evidence.is_empty(), "{f:?}");
        assert!(!f.fix.is_empty(), "{f:?}");
    }
    found
}

pub(super) fn with(found: &[Finding], cause: Cause) -> Vec<&Finding> {
    found.iter().filter(|f| f.cause == Some(cause)).collect()
}

/// `localhost` is `::1` and `127.0.0.1`.
pub(super) fn dual() -> HostContext {
    HostContext {
        localhost_addrs: vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        ..HostContext::default()
    }
}
