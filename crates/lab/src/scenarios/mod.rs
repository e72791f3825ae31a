//! Every lab scenario, one file per family, in the order `fix502 lab list` shows them:
//!
//! | file | scenarios |
//! | --- | --- |
//! | `connecting.rs` | the healthy baseline; nothing listening, the app elsewhere, unix sockets, no live upstreams, nginx not running, an invalid config |
//! | `answers.rs` | what the app answers: early close, reset, big or invalid headers, read timeout, its own 502, keep-alive race, a killed PHP script |
//! | `protocols.rs` | the wrong protocol or TLS: https to plain, http to TLS, HTTP to FastCGI and back, an untrusted certificate |
//! | `world.rs` | the config and the world: wrong port or interface, DNS, configs not reloaded, a dead group member, a name that moved |
//! | `busy.rs` | a busy host: one app down among healthy ones and a decoy (and all up), a saturated or refusing PHP-FPM pool, uWSGI speaking HTTP, a killed pool's stale socket next to another site's |
//!
//! A scenario is one entry: its name, summary, expectation, what nginx logs and answers,
//! and the function that builds it from the blocks of `setup.rs`.

mod answers;
mod busy;
mod connecting;
mod protocols;
mod world;

use crate::scenario::ScenarioInfo;

/// The families, in the order of `fix502 lab list`.
const FAMILIES: [&[ScenarioInfo]; 5] = [
    &connecting::SCENARIOS,
    &answers::SCENARIOS,
    &protocols::SCENARIOS,
    &world::SCENARIOS,
    &busy::SCENARIOS,
];

/// Every scenario, in a stable order.
pub fn scenarios() -> impl Iterator<Item = &'static ScenarioInfo> {
    FAMILIES.into_iter().flatten()
}

/// The scenario with this name, if any.
pub fn find(name: &str) -> Option<&'static ScenarioInfo> {
    scenarios().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::BIG_HEADER_BYTES;

    #[test]
    fn names_are_unique_and_findable() {
        let all: Vec<_> = scenarios().collect();
        for (i, s) in all.iter().enumerate() {
            assert_eq!(find(s.name).map(|f| f.name), Some(s.name));
            assert!(all[..i].iter().all(|o| o.name != s.name));
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn php_fpm_and_header_size_belong_to_their_scenarios() {
        let php: Vec<_> = scenarios()
            .filter(|s| s.needs_php_fpm())
            .map(|s| s.name)
            .collect();
        assert_eq!(
            php,
            [
                "php-fpm-killed",
                "proxy-to-fastcgi",
                "wrong-port",
                "php-fpm-saturated",
                "php-fpm-allowed-clients",
                "php-fpm-socket-permission",
                "php-fpm-stale-socket"
            ]
        );
        for s in scenarios() {
            let want = (s.name == "header-too-big").then_some(BIG_HEADER_BYTES);
            assert_eq!(s.upstream_header_bytes(), want, "{}", s.name);
            let logs = s.log_marker().is_some();
            let silent = matches!(
                s.name,
                "healthy"
                    | "nginx-not-running"
                    | "config-invalid"
                    | "upstream-502"
                    | "busy-host-healthy"
            );
            assert_eq!(logs, !silent, "{}", s.name);
        }
    }

    #[test]
    fn only_retried_scenarios_answer_200_despite_a_problem() {
        let hidden: Vec<_> = scenarios()
            .filter(|s| s.expect.top_cause.is_some() && s.http_status() == Some(200))
            .map(|s| s.name)
            .collect();
        assert_eq!(
            hidden,
            ["config-invalid", "keepalive-race", "group-one-dead"]
        );
        let root: Vec<_> = scenarios()
            .filter(|s| s.needs_root)
            .map(|s| s.name)
            .collect();
        assert_eq!(
            root,
            [
                "unix-socket-permission",
                "stale-dns",
                "php-fpm-socket-permission"
            ]
        );
        let refused = find("group-one-dead").and_then(ScenarioInfo::log_marker);
        assert_eq!(refused, Some("failed (111: "));
        let alone: Vec<_> = scenarios()
            .filter(|s| s.runs_alone())
            .map(|s| s.name)
            .collect();
        assert_eq!(alone, ["wrong-port", "php-fpm-stale-socket"]);
    }

    #[test]
    fn exit_codes_follow_the_expectation() {
        for s in scenarios() {
            let want = if s.expect.top_cause.is_some() { 1 } else { 0 };
            assert_eq!(s.expect.exit_code, want, "{}", s.name);
        }
    }
}
