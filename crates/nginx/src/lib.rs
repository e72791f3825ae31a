//! fix502-nginx: pure parsers for what nginx writes and reads, with no network access.
//!
//! - [`lexer`], [`config`], [`dump`], [`view`]: the configuration (tokens, directive tree with
//!   includes, the `nginx -T` splitter, and the semantic view of servers, locations and
//!   upstream targets); [`settings`] for the directives in effect at a pass target (with
//!   nginx's inheritance), nginx's size/time syntaxes and defaults.
//! - [`errorlog`], [`classify`], [`logscan`]: the error log (line parser, classification of
//!   upstream failures by message and errno number, and the windowed scan that groups them).
//! - [`accesslog`]: the access log in the stock formats: 5xx statuses within a window, to
//!   find 502s that left no error-log line.
#![deny(missing_docs)]

pub mod accesslog;
pub mod classify;
pub mod config;
pub mod dump;
pub mod errorlog;
pub mod history;
pub mod lexer;
mod lines;
pub mod logformat;
pub mod logscan;
mod module;
pub mod resolver;
pub mod route;
pub mod settings;
pub mod view;
pub mod window;

pub use lines::{LogFileError, LogKind};
