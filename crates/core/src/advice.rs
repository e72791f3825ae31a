//! Advice: the summary sentence and the exact fix for each cause, worded from the facts
//! (which location, which socket, which user). Only wording lives here; rules live in
//! [`crate::diagnosis`].

use crate::facts::{Endpoint, Facts};
use crate::report::{Cause, Finding};

/// What a cause's wording may draw on.
pub struct Context<'a> {
    /// The shared facts.
    pub facts: &'a Facts,
    /// The upstream concerned.
    pub upstream: Option<&'a str>,
    /// The findings behind the cause.
    pub findings: &'a [Finding],
    /// The failure is in the logs but the live probe passes now.
    pub recovered: bool,
    /// nginx retries the group's other servers, which answer: clients mostly get 200.
    pub retried: bool,
}

impl Context<'_> {
    fn endpoint(&self) -> Option<&Endpoint> {
        let u = self.upstream?;
        self.facts.endpoints.iter().find(|e| e.display == u)
    }

    fn role(&self) -> String {
        self.endpoint()
            .map(|e| format!(", {}", e.role()))
            .unwrap_or_default()
    }

    fn up(&self) -> &str {
        self.upstream.unwrap_or("the upstream")
    }

    fn worker(&self) -> String {
        self.facts
            .worker_user
            .as_ref()
            .map(|(u, _)| u.clone())
            .unwrap_or_else(|| "the nginx worker user".to_owned())
    }

    fn reload(&self) -> String {
        self.facts.reload_command()
    }

    fn config_line(&self) -> String {
        self.endpoint()
            .and_then(|e| e.location())
            .map(|l| l.to_string())
            .unwrap_or_else(|| "the upstream's line in the config".to_owned())
    }

    /// The message of the first live (non-log) error finding: it carries the measurement.
    fn live_message(&self) -> Option<&str> {
        self.findings
            .iter()
            .find(|f| !f.check.starts_with("logs.") && f.cause.is_some())
            .or_else(|| self.findings.first())
            .map(|f| f.message.as_str())
    }

    fn first_message_with(&self, check: &str) -> Option<&str> {
        self.findings
            .iter()
            .find(|f| f.check == check)
            .map(|f| f.message.as_str())
    }
}

fn port_of(upstream: &str) -> Option<&str> {
    upstream
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// The one-sentence summary of a cause.
pub fn summary(cause: Cause, ctx: &Context<'_>) -> String {
    let up = ctx.up();
    let mut s = match cause {
        Cause::NginxNotRunning => match &ctx.facts.discovery.master {
            Some(_) => format!(
                "nginx runs {} but does not listen where the config says",
                ctx.facts.discovery.config.display()
            ),
            None => format!(
                "No nginx master process runs {}",
                ctx.facts.discovery.config.display()
            ),
        },
        Cause::ConfigInvalid => match ctx.findings.first() {
            Some(f) => f.message.clone(),
            None => "nginx -t fails: a reload or restart would fail too".to_owned(),
        },
        Cause::UpstreamRefused => format!("Nothing listens on {up}{}", ctx.role()),
        Cause::UpstreamWrongAddress => {
            match ctx.first_message_with(crate::steps::upstream::LISTENERS) {
                Some(m) => format!(
                    "nginx connects to {up}{}, but the app listens elsewhere: {}",
                    ctx.role(),
                    m.split_once(", but ").map_or(m, |(_, found)| found)
                ),
                None => format!(
                    "nginx connects to {up}{}, an address that cannot work here",
                    ctx.role()
                ),
            }
        }
        Cause::UnixSocketMissing => format!(
            "The socket {} does not exist{}",
            up.trim_start_matches("unix:"),
            ctx.role()
        ),
        Cause::UnixSocketPermission => format!(
            "{} may not connect to {}{}",
            ctx.worker(),
            up.trim_start_matches("unix:"),
            ctx.role()
        ),
        Cause::UpstreamBacklogFull => format!(
            "The listen queue of {up} is full: the app accepts connections slower than they arrive"
        ),
        Cause::NoLiveUpstreams => format!(
            "Every server of upstream {up} is marked failed, so nginx answers 502 at once for fail_timeout (10s by default)"
        ),
        Cause::UpstreamUnreachable => format!(
            "{up} cannot be reached: no route, host down, or a firewall drops or rejects the connection"
        ),
        Cause::PortExhaustion => format!("No free local port to connect to {up} (EADDRNOTAVAIL)"),
        Cause::SelinuxDenied => format!(
            "The nginx worker may not connect to {up} over TCP (EACCES): on SELinux hosts httpd_can_network_connect is off"
        ),
        Cause::UpstreamTimeout => {
            format!("{up} did not answer in time: nginx answers 504 Gateway Timeout, not 502")
        }
        Cause::UpstreamDns => match ctx.first_message_with(crate::steps::network::DNS) {
            Some(m) => m.to_owned(),
            None => format!("The upstream name {up} cannot be resolved"),
        },
        Cause::UpstreamStaleDns => match ctx.first_message_with(crate::steps::network::DNS) {
            Some(m) => m.to_owned(),
            None => format!(
                "nginx connects to {up}, an address it resolved at start or reload that the name no longer has"
            ),
        },
        Cause::ConfigNotReloaded => {
            // A failed reload says more than a changed file.
            let reload = crate::steps::reload::RELOAD;
            let what = ctx
                .findings
                .iter()
                .find(|f| f.check == reload && f.message.starts_with("the reload at"))
                .map(|f| f.message.as_str())
                .or_else(|| ctx.first_message_with(reload))
                .map(str::to_owned)
                .unwrap_or_else(|| cause.meaning().to_owned());
            match ctx.upstream {
                Some(u) => format!(
                    "{what}; it still sends requests to {u}, which the config on disk no longer names"
                ),
                None => what,
            }
        }
        Cause::FdExhaustion | Cause::ProxyLoop => match ctx.live_message() {
            Some(m) => m.to_owned(),
            None => format!("{up}: {}", cause.meaning()),
        },
        Cause::UpstreamClosedEarly => format!(
            "{up}{} closes the connection before sending a complete response header: the app crashed, was killed, or its own timeout ended the request",
            ctx.role()
        ),
        Cause::UpstreamReset => format!(
            "{up}{} resets the connection (ECONNRESET) before answering: the app process was killed or aborted, or a firewall or NAT idle timer sent RST",
            ctx.role()
        ),
        Cause::UpstreamKeepaliveRace => format!(
            "Sporadic closes or resets from {up} on reused keep-alive connections: it closes idle connections sooner than nginx stops reusing them (retried GETs hide it; POSTs get 502)"
        ),
        Cause::UpstreamReturned502 => format!(
            "{up}{} itself answers 502 Bad Gateway; nginx only relays it, so the fault is behind the upstream",
            ctx.role()
        ),
        Cause::UpstreamHeaderTooBig
        | Cause::UpstreamInvalidResponse
        | Cause::UpstreamProtocolMismatch
        | Cause::UpstreamTls => match ctx.live_message() {
            Some(m) => m.to_owned(),
            None => format!("{up}{}: {}", ctx.role(), cause.meaning()),
        },
    };
    if ctx.retried {
        s.push_str(
            " (nginx retries the group's other servers, which answer: most clients get 200, requests that cannot be retried get 502, and every retry adds delay)",
        );
    }
    if ctx.recovered {
        s.push_str(&format!(
            " (logged in the last {}, but it answers now: intermittent or already fixed)",
            crate::steps::human_duration(ctx.facts.options.since)
        ));
    }
    s
}

/// The fix lines of a cause, most direct first.
pub fn fix(cause: Cause, ctx: &Context<'_>) -> Vec<String> {
    let up = ctx.up();
    let mut v: Vec<String> = ctx
        .findings
        .iter()
        .flat_map(|f| f.fix.iter().cloned())
        .collect();
    match cause {
        Cause::UpstreamRefused => {
            v.push(format!(
                "Start the application that should listen on {up} (or restart it if it crashed)"
            ));
            if let Some(port) = port_of(up) {
                v.push(format!("See what listens: ss -ltnp 'sport = :{port}'"));
            }
            v.push(format!(
                "If the app moved, point nginx at its new address ({}), then: {}",
                ctx.config_line(),
                ctx.reload()
            ));
        }
        Cause::UpstreamWrongAddress if !v.is_empty() => {}
        Cause::UpstreamWrongAddress => {
            v.push(format!(
                "Change the upstream at {} to the address the app listens on, then: {}",
                ctx.config_line(),
                ctx.reload()
            ));
            v.push(format!("Or make the app listen on {up} as well"));
        }
        Cause::UnixSocketMissing => {
            v.push(format!("Start the service that creates {} (e.g. systemctl start php8.2-fpm), and compare its listen path with {}", up.trim_start_matches("unix:"), ctx.config_line()));
            v.push("See the sockets that exist: ss -xlp".to_owned());
        }
        Cause::UnixSocketPermission => {
            let path = up.trim_start_matches("unix:");
            v.push(format!(
                "Let {} write the socket: for php-fpm set listen.owner / listen.group = {} and listen.mode = 0660 in the pool, then restart it",
                ctx.worker(),
                ctx.worker()
            ));
            v.push(format!("Check every directory on the way: namei -l {path}"));
        }
        Cause::UpstreamBacklogFull => {
            v.push("Raise the app's worker count (php-fpm pm.max_children) and listen backlog (listen.backlog, net.core.somaxconn)".to_owned());
            v.push("Look for slow requests holding the workers (php-fpm slowlog)".to_owned());
        }
        Cause::NoLiveUpstreams => {
            v.push(format!("Fix the failures of the servers of {up} (the causes above); nginx tries a failed server again after fail_timeout"));
        }
        Cause::UpstreamUnreachable => {
            v.push(format!(
                "Check the route: ip route get {}",
                up.rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']))
                    .unwrap_or(up)
            ));
            v.push(
                "Check firewalls on both hosts (nft list ruleset) and that the host is up"
                    .to_owned(),
            );
        }
        Cause::PortExhaustion => {
            v.push("Reuse upstream connections: keepalive in the upstream block, proxy_http_version 1.1, proxy_set_header Connection \"\"".to_owned());
        }
        Cause::SelinuxDenied => {
            v.push("setsebool -P httpd_can_network_connect 1".to_owned());
            v.push("Confirm with: ausearch -m avc -ts recent | grep name_connect".to_owned());
        }
        Cause::NginxNotRunning | Cause::ConfigInvalid => {}
        Cause::UpstreamTimeout => {
            v.push("Find what makes the upstream slow; raise proxy_connect_timeout / proxy_read_timeout only if the wait is expected".to_owned());
        }
        Cause::UpstreamDns => {
            v.push("Fix the name or its DNS record. nginx resolves a name written literally once, at start and reload (then reload nginx); a name in a variable it resolves per request with its `resolver`, which ignores /etc/hosts and search domains".to_owned());
        }
        Cause::UpstreamStaleDns | Cause::ConfigNotReloaded => {
            let reload = ctx.reload();
            if !v.iter().any(|line| line.contains(&reload)) {
                v.push(format!("Reload nginx: {reload}"));
            }
        }
        Cause::UpstreamClosedEarly | Cause::UpstreamReset => {
            v.push("Read the app server's log at the times of the errors: gunicorn \"WORKER TIMEOUT\", uWSGI \"HARAKIRI\", php-fpm \"execution timed out\" or \"exited on signal\"".to_owned());
            v.push("Check for OOM kills: journalctl -k | grep -i 'killed process'".to_owned());
        }
        Cause::UpstreamKeepaliveRace => {
            v.push("Set keepalive_timeout in the upstream block below the app's idle keep-alive timeout (gunicorn --keep-alive 2 s, Node keepAliveTimeout 5 s, uvicorn 5 s), or raise the app's timeout above nginx's".to_owned());
            v.push(format!("Then: {}", ctx.reload()));
        }
        Cause::UpstreamReturned502 => {
            v.push(format!("Look behind {up}: its own log, and the service it proxies to (another nginx, a load balancer, the app's upstream)"));
            v.push("If nginx caches errors (proxy_cache_valid any / 502), a cached 502 keeps being served: check $upstream_cache_status".to_owned());
        }
        Cause::UpstreamInvalidResponse => {
            v.push(format!("Fetch the raw header and look at the bytes: curl -sv -o /dev/null http://{up}/ (or printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc ...)"));
        }
        _ => {}
    }
    v.dedup();
    v
}
