//! fix502-nginx: pure parsers for what nginx writes and reads, with no network access.
//!
//! The configuration:
//!
//! - [`lexer`]: the tokens of one configuration file, by nginx's own rules.
//! - [`config`]: the directive tree with `include` expanded, its spans, the sources files come
//!   from, and [`config::ConfigError`].
//! - [`dump`]: the `nginx -T` output split back into files, served as a source.
//! - [`view`]: the semantic view: servers with their listens, names and locations, upstream
//!   groups, pass targets, log directives, `user` and `pid`.
//! - [`settings`]: the directives in effect at a pass target or upstream group (nginx's
//!   inheritance), nginx's size and time syntaxes, and its defaults by version.
//! - [`resolver`]: the `resolver` and `resolver_timeout` in effect at a pass target, and the
//!   host nginx resolves per request when the target has variables.
//! - [`route`]: routing a request (or the request line of a logged failure) through the
//!   configuration exactly as nginx does: server, location, pass target.
//!
//! The error log:
//!
//! - [`errorlog`]: one line split into its parts (time, level, message, errno, action,
//!   context fields, the `upstream:` field).
//! - [`classify`]: what a line says about an upstream, by message and errno number (see
//!   `docs/nginx-messages.md` for every message it knows).
//! - [`logscan`]: the scan of a whole log over the `--since` window, grouping the upstream
//!   failures.
//!
//! The access log:
//!
//! - [`logformat`]: `log_format` compiled the way nginx compiles it, and lines split back
//!   into variable values.
//! - [`accesslog`]: 502s and 504s in a window by upstream, path and minute, the "silent"
//!   502s that left no error-log line, and retries; with the config's `log_format` or the
//!   stock line shapes.
//!
//! Reading log files of either kind:
//!
//! - [`window`]: where a `--since` window starts in a file, found by bisecting on
//!   timestamps, and the timestamp formats.
//! - `parts` (private): one file read in parts on several threads, the results folded in
//!   file order.
//! - [`history`]: the rotated files (`.1`, `.2.gz`, dated names) a window reaches into,
//!   read as one stream.
//! - [`LogFileError`] and [`LogKind`]: why a log file could not be scanned, for either
//!   scanner.
//!
//! The types most callers start from are also here at the root: [`Config`] and
//! [`ConfigView`] (with [`Peer`] and [`PassModule`]), [`Classified`] and [`Signature`],
//! [`Group`] and [`LogSummary`], [`Request`] and [`Route`].
#![deny(missing_docs)]

pub mod accesslog;
pub mod classify;
pub mod config;
pub mod dump;
pub mod errorlog;
mod find;
mod hash;
pub mod history;
pub mod lexer;
mod lines;
pub mod logformat;
pub mod logscan;
mod module;
mod parts;
pub mod resolver;
pub mod route;
pub mod settings;
pub mod view;
pub mod window;

pub use lines::{LogFileError, LogKind};

pub use classify::{Classified, Signature};
pub use config::Config;
pub use logscan::{Group, LogSummary, ScanOptions};
pub use route::{Request, Route};
pub use view::{ConfigView, PassModule, Peer};
