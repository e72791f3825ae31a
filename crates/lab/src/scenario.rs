//! What a lab scenario is: its name and summary, what it needs, what nginx logs and answers
//! for it, how it is built, and what a correct diagnosis of it says, with the one check of a
//! report against that. The scenarios themselves are in `scenarios/`, one file per family.

use std::fmt;
use std::net::SocketAddr;

use crate::LabError;
use crate::setup::{LabDir, Setup};

/// Builds a scenario's upstreams and config pieces for nginx listening on the address given.
pub(crate) type Build = fn(SocketAddr, LabDir<'_>) -> Result<Setup, LabError>;

/// What a correct diagnosis of a scenario reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation {
    /// The cause id that must rank first; `None` means the setup is healthy.
    pub top_cause: Option<&'static str>,
    /// Other cause ids that must also appear in the diagnosis.
    pub also: &'static [&'static str],
    /// The exit code `fix502 --non-interactive` must return for this setup.
    pub exit_code: i32,
    /// Whether the top cause is about the upstream (then a diagnosis of it names the lab's
    /// upstream) rather than about nginx itself (then the top diagnosis names none).
    pub about_upstream: bool,
}

impl Expectation {
    /// A healthy setup: no diagnosis, exit 0.
    pub const HEALTHY: Self = Self {
        top_cause: None,
        also: &[],
        exit_code: 0,
        about_upstream: false,
    };

    /// A problem with `cause` first, about the upstream, and `also` among the rest; exit 1.
    pub const fn problem(cause: &'static str, also: &'static [&'static str]) -> Self {
        Self {
            top_cause: Some(cause),
            also,
            exit_code: 1,
            about_upstream: true,
        }
    }

    /// A problem of nginx itself (no upstream named), with `also` among the rest; exit 1.
    pub const fn nginx_problem(cause: &'static str, also: &'static [&'static str]) -> Self {
        Self {
            about_upstream: false,
            ..Self::problem(cause, also)
        }
    }

    /// Every cause id the expectation names.
    pub fn causes(&self) -> impl Iterator<Item = &'static str> {
        self.top_cause.into_iter().chain(self.also.iter().copied())
    }

    /// Whether a diagnosis (ranked causes with their upstreams, most likely first) and exit
    /// code say what this expectation says; `upstream` is the address the lab's nginx
    /// connects to, when it has one. `Err` says what differs.
    pub fn check(
        &self,
        diagnosis: &[Diagnosed<'_>],
        exit_code: i32,
        upstream: Option<&str>,
    ) -> Result<(), String> {
        let found: Vec<&str> = diagnosis.iter().map(|d| d.cause).collect();
        let top = diagnosis.first();
        match (self.top_cause, top) {
            (None, None) => {}
            (None, Some(_)) => return Err(format!("expected no problem, got {found:?}")),
            (Some(c), None) => return Err(format!("expected {c}, got no diagnosis")),
            (Some(c), Some(d)) if d.cause != c => {
                return Err(format!("expected {c} first, got {found:?}"));
            }
            (Some(_), Some(_)) => {}
        }
        for also in self.also {
            if !found.contains(also) {
                return Err(format!(
                    "expected {also} in the diagnosis too, got {found:?}"
                ));
            }
        }
        if exit_code != self.exit_code {
            return Err(format!("expected exit {}, got {exit_code}", self.exit_code));
        }
        match (self.top_cause, top) {
            (Some(cause), Some(d)) if self.about_upstream => {
                if let Some(upstream) = upstream
                    && !diagnosis
                        .iter()
                        .any(|x| x.cause == cause && x.upstream == Some(upstream))
                {
                    return Err(format!(
                        "no {cause} diagnosis names {upstream} (the top one names {:?})",
                        d.upstream
                    ));
                }
            }
            (Some(cause), Some(d)) if d.upstream.is_some() => {
                return Err(format!(
                    "{cause} is about nginx itself, but the top diagnosis names {:?}",
                    d.upstream
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// One ranked cause of a report, as [`Expectation::check`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diagnosed<'a> {
    /// The cause id.
    pub cause: &'a str,
    /// The upstream it names, as nginx writes it.
    pub upstream: Option<&'a str>,
}

/// One reproducible nginx setup.
#[derive(Clone, Copy)]
pub struct ScenarioInfo {
    /// Stable name, e.g. `refused` (used by `fix502 lab run NAME`).
    pub name: &'static str,
    /// One line saying what is broken.
    pub summary: &'static str,
    /// Whether the scenario can only be built when running as root.
    pub needs_root: bool,
    /// What the diagnosis must say.
    pub expect: Expectation,
    pub(crate) log_marker: Option<&'static str>,
    pub(crate) http_status: Option<u16>,
    pub(crate) php_fpm: bool,
    pub(crate) header_bytes: Option<usize>,
    pub(crate) alone: bool,
    pub(crate) build: Build,
}

impl ScenarioInfo {
    /// A scenario whose nginx logs `log_marker` and answers `http_status`, built by `build`;
    /// no root, no PHP-FPM.
    pub(crate) const fn new(
        name: &'static str,
        summary: &'static str,
        expect: Expectation,
        log_marker: Option<&'static str>,
        http_status: Option<u16>,
        build: Build,
    ) -> Self {
        Self {
            name,
            summary,
            needs_root: false,
            expect,
            log_marker,
            http_status,
            php_fpm: false,
            header_bytes: None,
            alone: false,
            build,
        }
    }

    /// The scenario needs root.
    pub(crate) const fn root(mut self) -> Self {
        self.needs_root = true;
        self
    }

    /// The scenario runs a real PHP-FPM pool.
    pub(crate) const fn php_fpm(mut self) -> Self {
        self.php_fpm = true;
        self
    }

    /// The scenario's diagnosis holds only while no other scenario of this kind runs on the
    /// host (an app server that no nginx uses is the answer only when it is the only one):
    /// [`crate::Lab::start`] waits for the others to end.
    pub(crate) const fn alone(mut self) -> Self {
        self.alone = true;
        self
    }

    /// Whether the scenario runs alone among scenarios of its kind (set by `alone()`).
    pub fn runs_alone(&self) -> bool {
        self.alone
    }

    /// The app sends a response head of exactly `bytes`.
    pub(crate) const fn header_bytes(mut self, bytes: usize) -> Self {
        self.header_bytes = Some(bytes);
        self
    }

    /// A fragment of the error-log line nginx writes for this scenario, matched by errno number
    /// rather than errno text (musl words them differently); `None` when nginx logs nothing
    /// (then the lab waits for the answer in the access log instead).
    pub fn log_marker(&self) -> Option<&'static str> {
        self.log_marker
    }

    /// The HTTP status a `GET /` through the lab's nginx gets; `None` when the client gets no
    /// HTTP status line: nothing listens, or nginx relays the upstream's bytes as an HTTP/0.9
    /// answer (its access log then shows `009`).
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// Whether the scenario runs a real PHP-FPM pool (it needs a `php-fpm` binary).
    pub fn needs_php_fpm(&self) -> bool {
        self.php_fpm
    }

    /// The exact size in bytes of the response head the scenario's app sends (status line,
    /// header lines and the blank line, CRLFs included), when that is what it is about.
    pub fn upstream_header_bytes(&self) -> Option<usize> {
        self.header_bytes
    }
}

impl PartialEq for ScenarioInfo {
    /// Scenarios are known by their names.
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ScenarioInfo {}

impl fmt::Debug for ScenarioInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScenarioInfo")
            .field("name", &self.name)
            .field("summary", &self.summary)
            .field("needs_root", &self.needs_root)
            .field("expect", &self.expect)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d<'a>(cause: &'a str, upstream: Option<&'a str>) -> Diagnosed<'a> {
        Diagnosed { cause, upstream }
    }

    #[test]
    fn a_report_matches_or_says_what_differs() {
        let refused = Expectation::problem("upstream-refused", &["no-live-upstreams"]);
        let up = Some("127.0.0.1:9");
        let good = [
            d("upstream-refused", Some("127.0.0.1:9")),
            d("no-live-upstreams", Some("backend")),
        ];
        assert_eq!(refused.check(&good, 1, up), Ok(()));
        assert!(refused.check(&good, 0, up).unwrap_err().contains("exit"));
        assert!(
            refused
                .check(&good[..1], 1, up)
                .unwrap_err()
                .contains("no-live")
        );
        let elsewhere = [d("upstream-refused", Some("127.0.0.1:8")), good[1]];
        assert!(
            refused
                .check(&elsewhere, 1, up)
                .unwrap_err()
                .contains("names")
        );
        assert!(Expectation::HEALTHY.check(&good, 1, up).is_err());
        assert_eq!(Expectation::HEALTHY.check(&[], 0, None), Ok(()));
        let nginx = Expectation::nginx_problem("config-invalid", &[]);
        assert_eq!(nginx.check(&[d("config-invalid", None)], 1, up), Ok(()));
        assert!(nginx.check(&[d("config-invalid", up)], 1, up).is_err());
    }
}
