//! The app server behind an upstream that answers badly, and what is known to kill it.
//!
//! When nginx logs `upstream prematurely closed connection` or `recv() failed (104: ...)`
//! (docs/nginx-messages.md §10), the cause usually sits in the process behind the upstream's
//! listener: a worker killed by the server's own timeout (gunicorn `WORKER TIMEOUT`, uWSGI harakiri,
//! PHP-FPM `request_terminate_timeout`), a crash or an OOM kill, a full worker pool, or an
//! idle keep-alive timeout shorter than nginx's (the keep-alive race).
//!
//! This module holds everything about that process. This file re-exports the public types
//! (`types.rs`) and functions; the work is done one job a file:
//!
//! - `identify.rs` ([`identify`]): from a listener's pid, walk to the app server's master,
//!   read the settings that matter for 502s from its command line, environment and config
//!   with where each was set, and scan the tail of its log.
//! - `kind.rs` ([`kind_of`]): which app server a process is, from its name and command line.
//! - `options.rs`: command-line options and the settings they give (spellings, precedence,
//!   defaults).
//! - `process.rs`: what `/proc` says about a process (command line, cwd, environment).
//! - `files.rs`: bounded reads of the files an app server names, and paths as it means them.
//! - `python.rs`: gunicorn, uvicorn, hypercorn and daphne (options, environment, config
//!   files).
//! - `uwsgi.rs`: uWSGI (options and `--ini` files).
//! - `php_fpm.rs` ([`parse_php_fpm_config`], [`parse_php_fpm_str`]): PHP-FPM's ini dialect
//!   with `include=` globs and `$pool`, its pools, and its master's config and log.
//! - `listen.rs`: whether a `listen` value accepts connections to an upstream as nginx
//!   writes it.
//! - `logs.rs` ([`scan_log`], [`classify_log_line`]): the log lines that explain a closed or
//!   reset connection.
//! - `log_time.rs`: when a log line was written, from its timestamp.
//! - `oom.rs` ([`oom_kills`]): kernel OOM kills from `/dev/kmsg`.
//!
//! Every file read is bounded in size and count. Paths are read in this process's mount
//! namespace (an app server in a container sees other files).

mod files;
mod identify;
mod kind;
mod listen;
mod log_time;
mod logs;
mod oom;
mod options;
mod php_fpm;
mod process;
mod python;
#[cfg(test)]
mod test_support;
mod types;
mod uwsgi;

pub use identify::identify;
pub use kind::kind_of;
pub use listen::listen_serves;
pub use logs::{classify_log_line, scan_log};
pub use oom::oom_kills;
pub use php_fpm::{PhpFpmConfig, PhpFpmPool, parse_php_fpm_config, parse_php_fpm_str};
pub use types::{AppServer, AppServerKind, LogEvent, LogEventKind, Setting, SettingSource};
