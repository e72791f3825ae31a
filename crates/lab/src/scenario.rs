//! The catalogue of lab scenarios: names, summaries and what a correct diagnosis says.
//!
//! This module is data only; how each scenario is built lives in `setup.rs`.

use crate::upstream::BIG_HEADER_BYTES;

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
    /// rather than errno text (musl words them differently); `None` when nginx logs nothing
    /// (then the lab waits for the answer in the access log instead).
    pub fn log_marker(&self) -> Option<&'static str> {
        match self.name {
            "refused" | "wrong-address" | "wrong-port" | "wrong-interface" | "not-reloaded"
            | "failed-reload" | "group-one-dead" | "stale-dns" => Some("failed (111: "),
            "unix-socket-missing" => Some("failed (2: "),
            "unix-socket-permission" => Some("failed (13: "),
            "no-live-upstreams" => Some("no live upstreams"),
            "closed-early" | "keepalive-race" => Some(
                "upstream prematurely closed connection while reading response header from upstream",
            ),
            // php-fpm closes the HTTP request (or the killed worker dies) with unread input.
            "reset" | "proxy-to-fastcgi" | "php-fpm-killed" => Some("recv() failed (104: "),
            "header-too-big" => Some("upstream sent too big header"),
            "invalid-header" => Some("upstream sent invalid header"),
            "https-to-plain" => Some("wrong version number"),
            "http-to-tls" => Some("upstream sent no valid HTTP/1.0 header"),
            "fastcgi-to-http" => Some("upstream sent unsupported FastCGI protocol version: 72"),
            "tls-verify" => Some("upstream SSL certificate verify error: (18:"),
            "read-timeout" => Some("upstream timed out (110: "),
            "no-resolver" => Some("no resolver defined to resolve app.lab.fix502.test"),
            "dns-nxdomain" => Some("missing.lab.fix502.test could not be resolved (3: "),
            _ => None,
        }
    }

    /// The HTTP status a `GET /` through the lab's nginx gets; `None` when the client gets no
    /// HTTP status line: nothing listens, or nginx relays the upstream's bytes as an HTTP/0.9
    /// answer (its access log then shows `009`).
    pub fn http_status(&self) -> Option<u16> {
        match self.name {
            "nginx-not-running" | "http-to-tls" => None,
            "healthy" | "config-invalid" | "keepalive-race" | "group-one-dead" => Some(200),
            "read-timeout" => Some(504),
            _ => Some(502),
        }
    }

    /// Whether the scenario runs a real PHP-FPM pool (it needs a `php-fpm` binary).
    pub fn needs_php_fpm(&self) -> bool {
        matches!(
            self.name,
            "proxy-to-fastcgi" | "php-fpm-killed" | "wrong-port"
        )
    }

    /// The exact size in bytes of the response head the scenario's app sends (status line,
    /// header lines and the blank line, CRLFs included), for `header-too-big`.
    pub fn upstream_header_bytes(&self) -> Option<usize> {
        (self.name == "header-too-big").then_some(BIG_HEADER_BYTES)
    }
}

const fn problem(cause: &'static str, also: &'static [&'static str]) -> Expectation {
    Expectation {
        top_cause: Some(cause),
        also,
        exit_code: 1,
    }
}

static SCENARIOS: [ScenarioInfo; 29] = [
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
    ScenarioInfo {
        name: "closed-early",
        summary: "the app reads the request and closes the connection without answering",
        needs_root: false,
        expect: problem("upstream-closed-early", &[]),
    },
    ScenarioInfo {
        name: "reset",
        summary: "the app closes with the request unread, so the kernel resets the connection",
        needs_root: false,
        expect: problem("upstream-reset", &[]),
    },
    ScenarioInfo {
        name: "header-too-big",
        summary: "the app answers with 16 KiB of Set-Cookie headers; proxy_buffer_size is 4k",
        needs_root: false,
        expect: problem("upstream-header-too-big", &[]),
    },
    ScenarioInfo {
        name: "invalid-header",
        summary: "the app's response has a header value with a NUL byte",
        needs_root: false,
        expect: problem("upstream-invalid-response", &[]),
    },
    ScenarioInfo {
        name: "https-to-plain",
        summary: "proxy_pass https:// points at an app that speaks plain HTTP",
        needs_root: false,
        expect: problem("upstream-protocol-mismatch", &[]),
    },
    ScenarioInfo {
        name: "http-to-tls",
        summary: "proxy_pass http:// points at an app that speaks only TLS",
        needs_root: false,
        expect: problem("upstream-protocol-mismatch", &[]),
    },
    ScenarioInfo {
        name: "proxy-to-fastcgi",
        summary: "proxy_pass http:// points at a PHP-FPM (FastCGI) pool",
        needs_root: false,
        expect: problem("upstream-protocol-mismatch", &[]),
    },
    ScenarioInfo {
        name: "fastcgi-to-http",
        summary: "fastcgi_pass points at an app that speaks HTTP",
        needs_root: false,
        expect: problem("upstream-protocol-mismatch", &[]),
    },
    ScenarioInfo {
        name: "tls-verify",
        summary: "proxy_ssl_verify on, but the app's self-signed certificate is not trusted",
        needs_root: false,
        expect: problem("upstream-tls", &[]),
    },
    ScenarioInfo {
        name: "php-fpm-killed",
        summary: "PHP-FPM kills a script that runs past request_terminate_timeout (1s)",
        needs_root: false,
        expect: problem("upstream-closed-early", &[]),
    },
    ScenarioInfo {
        name: "read-timeout",
        summary: "the app never answers; proxy_read_timeout 1s expires (nginx answers 504)",
        needs_root: false,
        expect: problem("upstream-timeout", &[]),
    },
    ScenarioInfo {
        name: "upstream-502",
        summary: "the app itself answers 502 Bad Gateway; nginx only relays it",
        needs_root: false,
        expect: problem("upstream-returned-502", &[]),
    },
    ScenarioInfo {
        name: "keepalive-race",
        summary: "the app closes kept-alive connections just as nginx reuses them",
        needs_root: false,
        expect: problem("upstream-keepalive-race", &[]),
    },
    ScenarioInfo {
        name: "wrong-port",
        summary: "the PHP-FPM pool listens on 127.0.0.1:Q, but fastcgi_pass names port P",
        needs_root: false,
        expect: problem("upstream-wrong-address", &[]),
    },
    ScenarioInfo {
        name: "wrong-interface",
        summary: "the app listens on 127.0.0.2:PORT only; nginx connects to 127.0.0.1:PORT",
        needs_root: false,
        expect: problem("upstream-wrong-address", &[]),
    },
    ScenarioInfo {
        name: "dns-nxdomain",
        summary: "proxy_pass names a host that the configured resolver does not know",
        needs_root: false,
        expect: problem("upstream-dns", &[]),
    },
    ScenarioInfo {
        name: "no-resolver",
        summary: "proxy_pass with a variable names a host, but no resolver is configured",
        needs_root: false,
        expect: problem("upstream-dns", &[]),
    },
    ScenarioInfo {
        name: "not-reloaded",
        summary: "the config was fixed to the app's new port, but nginx was not reloaded",
        needs_root: false,
        expect: problem("config-not-reloaded", &["upstream-refused"]),
    },
    ScenarioInfo {
        name: "failed-reload",
        summary: "the fix has a typo, so the reload failed and nginx runs the old config",
        needs_root: false,
        expect: problem(
            "config-invalid",
            &["config-not-reloaded", "upstream-refused"],
        ),
    },
    ScenarioInfo {
        name: "group-one-dead",
        summary: "one of two servers in an upstream group refuses; retries hide it (200)",
        needs_root: false,
        expect: problem("upstream-refused", &[]),
    },
    ScenarioInfo {
        name: "stale-dns",
        summary: "nginx resolved the app's name at start; the app moved to a new address",
        needs_root: true,
        expect: problem("upstream-stale-dns", &[]),
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

    /// Cause ids of the report (docs/causes.md) that the lab uses; a typo here would break the
    /// end-to-end tests.
    const CONTRACT_CAUSES: &[&str] = &[
        "nginx-not-running",
        "config-invalid",
        "upstream-refused",
        "upstream-wrong-address",
        "unix-socket-missing",
        "unix-socket-permission",
        "no-live-upstreams",
        "upstream-closed-early",
        "upstream-reset",
        "upstream-header-too-big",
        "upstream-invalid-response",
        "upstream-protocol-mismatch",
        "upstream-tls",
        "upstream-timeout",
        "upstream-returned-502",
        "upstream-keepalive-race",
        "upstream-dns",
        "config-not-reloaded",
        "upstream-stale-dns",
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
    fn php_fpm_and_header_size_belong_to_their_scenarios() {
        let php: Vec<_> = scenarios()
            .iter()
            .filter(|s| s.needs_php_fpm())
            .map(|s| s.name)
            .collect();
        assert_eq!(php, ["proxy-to-fastcgi", "php-fpm-killed", "wrong-port"]);
        for s in scenarios() {
            let want = (s.name == "header-too-big").then_some(16 * 1024);
            assert_eq!(s.upstream_header_bytes(), want, "{}", s.name);
            let logs = s.log_marker().is_some();
            let silent = matches!(
                s.name,
                "healthy" | "nginx-not-running" | "config-invalid" | "upstream-502"
            );
            assert_eq!(logs, !silent, "{}", s.name);
        }
    }

    #[test]
    fn only_retried_scenarios_answer_200_despite_a_problem() {
        let hidden: Vec<_> = scenarios()
            .iter()
            .filter(|s| s.expect.top_cause.is_some() && s.http_status() == Some(200))
            .map(|s| s.name)
            .collect();
        assert_eq!(
            hidden,
            ["config-invalid", "keepalive-race", "group-one-dead"]
        );
        let root: Vec<_> = scenarios()
            .iter()
            .filter(|s| s.needs_root)
            .map(|s| s.name)
            .collect();
        assert_eq!(root, ["unix-socket-permission", "stale-dns"]);
        let refused = find("group-one-dead").and_then(ScenarioInfo::log_marker);
        assert_eq!(refused, Some("failed (111: "));
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
