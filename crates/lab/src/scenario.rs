//! The catalogue of lab scenarios: names, summaries and what a correct diagnosis says.
//!
//! This module is data only; how each scenario is built lives in `setup.rs`.

/// What a correct diagnosis of a scenario reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation {
    /// The contract cause id that must rank first; `None` means the setup is healthy.
    pub top_cause: Option<&'static str>,
    /// Other cause ids that must also appear in the diagnosis.
    pub also: &'static [&'static str],
    /// The exit code `fix502 --non-interactive` must return for this setup.
    pub exit_code: i32,
}

/// One reproducible nginx setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioInfo {
    /// Stable name, e.g. `refused` (used by `fix502 lab run NAME`).
    pub name: &'static str,
    /// One line saying what is broken.
    pub summary: &'static str,
    /// Whether the scenario can only be built when running as root.
    pub needs_root: bool,
    /// What the diagnosis must say.
    pub expect: Expectation,
}

impl ScenarioInfo {
    /// A fragment of the error-log line nginx writes for this scenario, matched by errno number
    /// rather than errno text (musl words them differently); `None` when nginx logs nothing.
    pub fn log_marker(&self) -> Option<&'static str> {
        match self.name {
            "refused" | "wrong-address" => Some("failed (111: "),
            "unix-socket-missing" => Some("failed (2: "),
            "unix-socket-permission" => Some("failed (13: "),
            "no-live-upstreams" => Some("no live upstreams"),
            _ => None,
        }
    }

    /// The HTTP status a request through the lab's nginx gets; `None` when nothing listens.
    pub fn http_status(&self) -> Option<u16> {
        match self.name {
            "nginx-not-running" => None,
            "healthy" | "config-invalid" => Some(200),
            _ => Some(502),
        }
    }
}

const fn problem(cause: &'static str, also: &'static [&'static str]) -> Expectation {
    Expectation {
        top_cause: Some(cause),
        also,
        exit_code: 1,
    }
}

static SCENARIOS: [ScenarioInfo; 8] = [
    ScenarioInfo {
        name: "healthy",
        summary: "nginx proxies to a working upstream on 127.0.0.1",
        needs_root: false,
        expect: Expectation {
            top_cause: None,
            also: &[],
            exit_code: 0,
        },
    },
    ScenarioInfo {
        name: "refused",
        summary: "nothing listens at the upstream address 127.0.0.1:PORT",
        needs_root: false,
        expect: problem("upstream-refused", &[]),
    },
    ScenarioInfo {
        name: "wrong-address",
        summary: "the app listens on [::1]:PORT but nginx connects to 127.0.0.1:PORT",
        needs_root: false,
        expect: problem("upstream-wrong-address", &[]),
    },
    ScenarioInfo {
        name: "unix-socket-missing",
        summary: "proxy_pass names a unix socket file that does not exist",
        needs_root: false,
        expect: problem("unix-socket-missing", &[]),
    },
    ScenarioInfo {
        name: "unix-socket-permission",
        summary: "the app's unix socket is root-owned mode 0600; workers run as nobody",
        needs_root: true,
        expect: problem("unix-socket-permission", &[]),
    },
    ScenarioInfo {
        name: "no-live-upstreams",
        summary: "both servers of an upstream group refuse, so nginx marks the group dead",
        needs_root: false,
        expect: problem("upstream-refused", &["no-live-upstreams"]),
    },
    ScenarioInfo {
        name: "nginx-not-running",
        summary: "a valid config with a working upstream, but nginx is not started",
        needs_root: false,
        expect: problem("nginx-not-running", &[]),
    },
    ScenarioInfo {
        name: "config-invalid",
        summary: "nginx runs, but the config on disk was edited and `nginx -t` now fails",
        needs_root: false,
        expect: problem("config-invalid", &[]),
    },
];

/// Every lab scenario, in a stable order (healthy first).
pub fn scenarios() -> &'static [ScenarioInfo] {
    &SCENARIOS
}

/// The scenario with this name, if any.
pub fn find(name: &str) -> Option<&'static ScenarioInfo> {
    SCENARIOS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cause ids from CONTRACT.md that the lab uses; a typo here would break the end-to-end tests.
    const CONTRACT_CAUSES: &[&str] = &[
        "nginx-not-running",
        "config-invalid",
        "upstream-refused",
        "upstream-wrong-address",
        "unix-socket-missing",
        "unix-socket-permission",
        "no-live-upstreams",
    ];

    #[test]
    fn names_are_unique_and_findable() {
        for (i, s) in scenarios().iter().enumerate() {
            assert_eq!(find(s.name), Some(s));
            assert!(scenarios()[..i].iter().all(|o| o.name != s.name));
        }
        assert_eq!(find("nope"), None);
    }

    #[test]
    fn expectations_use_contract_causes_and_exit_codes() {
        for s in scenarios() {
            let causes = s.expect.top_cause.iter().chain(s.expect.also);
            for cause in causes {
                assert!(CONTRACT_CAUSES.contains(cause), "{}: {cause}", s.name);
            }
            let want = if s.expect.top_cause.is_some() { 1 } else { 0 };
            assert_eq!(s.expect.exit_code, want, "{}", s.name);
        }
    }
}
