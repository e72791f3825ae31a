//! The `network.selinux` check: SELinux's mode, the httpd booleans that open TCP connects
//! for `httpd_t`, and the AVC denials of nginx's connects (audit log, else kernel log),
//! together with errno 13 on TCP connects in the error log.
//!
//! What belongs here: reading SELinux's state from the host (`read_selinux`), the pure
//! decision (`selinux_findings`) with its helpers and fixes, and their tests.

use std::collections::BTreeMap;
use std::path::Path;

use fix502_nginx::classify::Signature;
use fix502_nginx::view::Peer;
use fix502_probe::host::{self, AvcDenial, SelinuxState};

use super::hits::{
    AUDIT_LOG, AUDIT_TAIL_BYTES, LogHit, MAX_DENIAL_FINDINGS, MAX_KERNEL_LINES, MAX_SAMPLES,
    SELINUX, is_nginx, is_not_found, since_epoch,
};
use crate::causes::Cause;
use crate::check::FindingsFuture;
use crate::facts::{Endpoint, Facts, LogRead};
use crate::report::{Finding, Severity};
use crate::upstream::Upstream;

/// Ports labelled `http_port_t` in the targeted policy (`semanage port -l`).
const HTTP_PORTS: [u16; 8] = [80, 81, 443, 488, 8008, 8009, 8443, 9000];
/// SELinux port types that mean "no specific label" (add a label with `-a`, not `-m`).
const GENERIC_PORT_TYPES: [&str; 5] = [
    "port_t",
    "unreserved_port_t",
    "reserved_port_t",
    "hi_reserved_port_t",
    "ephemeral_port_t",
];

/// The SELinux booleans that open TCP connects for `httpd_t` (Fedora/RHEL `apache.te`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct HttpdBooleans {
    /// `httpd_can_network_connect`: every port.
    network_connect: Option<bool>,
    /// `httpd_can_network_relay`: `http_port_t`, `http_cache_port_t` and a few more.
    network_relay: Option<bool>,
    /// `httpd_graceful_shutdown`: `http_port_t` (on by default on RHEL).
    graceful_shutdown: Option<bool>,
}

impl HttpdBooleans {
    /// Whether `httpd_t` may `name_connect` to `port`, as far as these booleans and the
    /// default port labels tell. Unknown booleans count as allowing (no false alarm).
    fn allows(&self, port: u16) -> bool {
        if self.network_connect != Some(false) {
            return true;
        }
        let relay = self.network_relay != Some(false);
        if HTTP_PORTS.contains(&port) {
            return relay || self.graceful_shutdown != Some(false);
        }
        // http_cache_port_t: 8080, 8118, 8123, 10001-10010.
        let cache = matches!(port, 8080 | 8118 | 8123 | 10001..=10010);
        cache && relay
    }
}

/// TCP connects that failed with errno 13 (the `permission-denied` groups).
fn tcp_permission_denied(reads: &[LogRead]) -> Vec<LogHit> {
    let mut hits = Vec::new();
    for read in reads {
        let Ok(summary) = &read.summary else { continue };
        for group in &summary.groups {
            if group.failure.signature == Signature::PermissionDenied && !group.failure.unix {
                hits.push(LogHit {
                    peer: group.failure.peer.as_deref().map(Upstream::parse),
                    unix: false,
                    errno: 13,
                    count: group.count,
                    samples: group.samples.iter().take(MAX_SAMPLES).cloned().collect(),
                    from_tail: false,
                });
            }
        }
    }
    hits
}

/// What the SELinux check read from the host.
#[derive(Debug, Clone)]
struct SelinuxFacts {
    /// The mode.
    state: SelinuxState,
    /// The SELinux type of nginx's workers (`httpd_t`), when readable.
    domain: Option<String>,
    /// The booleans that open connects.
    booleans: HttpdBooleans,
    /// nginx's AVC denials in the window, or why none could be read.
    denials: Result<Vec<AvcDenial>, String>,
    /// Sources that could not be read although they exist (the audit log), as notes.
    unreadable: Vec<String>,
}

pub(super) fn selinux_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let pids = facts.nginx_pids();
        let since = since_epoch(facts.options.since);
        let read =
            tokio::task::spawn_blocking(move || read_selinux(Path::new("/"), &pids, since)).await;
        let Ok(read) = read else {
            return vec![Finding::could_not_check(
                SELINUX,
                "the SELinux probe did not finish",
            )];
        };
        let log = tcp_permission_denied(facts.logs().await);
        let window = crate::words::duration(facts.options.since);
        selinux_findings(&read, &facts.endpoints, &log, &window)
    })
}

/// Reads the SELinux state, the workers' domain, the booleans and nginx's denials.
fn read_selinux(root: &Path, pids: &[u32], since: Option<f64>) -> SelinuxFacts {
    let state = host::selinux(root);
    let mut facts = SelinuxFacts {
        state,
        domain: None,
        booleans: HttpdBooleans::default(),
        denials: Ok(Vec::new()),
        unreadable: Vec::new(),
    };
    if !matches!(state, SelinuxState::Enforcing | SelinuxState::Permissive) {
        return facts;
    }
    facts.domain = pids
        .iter()
        .filter_map(|&pid| host::process_context(root, pid))
        .find_map(|c| host::selinux_type(&c).map(str::to_owned));
    facts.booleans = HttpdBooleans {
        network_connect: host::selinux_boolean(root, "httpd_can_network_connect"),
        network_relay: host::selinux_boolean(root, "httpd_can_network_relay"),
        graceful_shutdown: host::selinux_boolean(root, "httpd_graceful_shutdown"),
    };
    // auditd's log when it exists; the kernel log holds them when auditd is not running.
    let mut denials: Vec<AvcDenial> = Vec::new();
    let mut read_any = false;
    let mut errors = Vec::new();
    let audit = root.join(AUDIT_LOG.trim_start_matches('/'));
    match host::avc_denials(&audit, since, AUDIT_TAIL_BYTES) {
        Ok(found) => {
            read_any = true;
            denials.extend(found);
        }
        Err(err) if is_not_found(&err) => {}
        Err(err) => {
            facts
                .unreadable
                .push(format!("cannot read {}: {err}", audit.display()));
            errors.push(err.to_string());
        }
    }
    match host::kernel_messages("avc:", MAX_KERNEL_LINES) {
        Ok(lines) => {
            read_any = true;
            for denial in lines.iter().filter_map(|l| host::parse_avc(l)) {
                if since.is_none_or(|s| denial.time >= s)
                    && !denials.iter().any(|d| same_avc(d, &denial))
                {
                    denials.push(denial);
                }
            }
        }
        Err(err) => errors.push(err.to_string()),
    }
    denials.retain(|d| is_nginx(d.comm.as_deref(), d.pid, pids));
    facts.denials = if read_any {
        Ok(denials)
    } else {
        Err(errors.join("; "))
    };
    facts
}

/// The same AVC record read twice (audit log and kernel log).
fn same_avc(a: &AvcDenial, b: &AvcDenial) -> bool {
    a.time == b.time && a.pid == b.pid && a.permissions == b.permissions
}

/// Whether a denial is about connecting to an upstream (TCP `name_connect`, unix
/// `connectto`, or writing a socket file).
fn is_connect_denial(d: &AvcDenial) -> bool {
    let has = |p: &str| d.permissions.iter().any(|x| x == p);
    match d.tclass.as_deref() {
        Some("tcp_socket") => has("name_connect"),
        Some("unix_stream_socket") => has("connectto"),
        Some("sock_file") => has("write"),
        _ => false,
    }
}

/// The endpoints an AVC denial is about: TCP endpoints on its port, or unix endpoints at
/// its path (or with its file name, when the record only has `name=`).
fn endpoints_of_denial<'a>(d: &AvcDenial, endpoints: &'a [Endpoint]) -> Vec<&'a Endpoint> {
    endpoints
        .iter()
        .filter(|e| match (&e.peer, d.dest_port, d.path.as_deref()) {
            (Peer::Inet { port, .. }, Some(dest), _) => *port == dest,
            (Peer::Unix(path), None, Some(p)) => {
                path == Path::new(p)
                    || (!p.contains('/') && path.file_name().is_some_and(|n| n == p))
            }
            _ => false,
        })
        .collect()
}

/// The SELinux type in a context (`unreserved_port_t`).
fn context_type(context: Option<&str>) -> Option<&str> {
    context.and_then(host::selinux_type)
}

/// The fixes for a denied TCP port.
fn tcp_fixes(port: u16, port_type: Option<&str>) -> [String; 2] {
    let flag = match port_type {
        Some(t) if !GENERIC_PORT_TYPES.contains(&t) => "-m",
        _ => "-a",
    };
    [
        "Let nginx connect to any port: setsebool -P httpd_can_network_connect 1".to_owned(),
        format!(
            "Or label only this port: semanage port {flag} -t http_port_t -p tcp {port} (nginx may reach http_port_t while httpd_can_network_relay or httpd_graceful_shutdown is on)"
        ),
    ]
}

/// The fixes for a denied unix socket.
fn unix_fixes(path: &str) -> [String; 2] {
    let dir = Path::new(path)
        .parent()
        .map_or_else(|| path.to_owned(), |p| p.display().to_string());
    [
        format!(
            "Label the socket's directory for the web server: semanage fcontext -a -t httpd_var_run_t '{dir}(/.*)?' && restorecon -Rv {dir} (or move the socket under /run/php-fpm/)"
        ),
        "If the backend runs unconfined, allow the connect with a local module: ausearch -m avc -c nginx --raw | audit2allow -M nginx_local && semodule -i nginx_local.pp".to_owned(),
    ]
}

/// What groups AVC denials into one finding: TCP port, socket path, target class.
type AvcKey = (Option<u16>, Option<String>, String);

/// The SELinux findings, from what was read. Pure.
fn selinux_findings(
    facts: &SelinuxFacts,
    endpoints: &[Endpoint],
    log: &[LogHit],
    window: &str,
) -> Vec<Finding> {
    match facts.state {
        SelinuxState::NotPresent => {
            return vec![Finding::new(
                SELINUX,
                Severity::Info,
                "SELinux is not enabled on this host (no SELinux in this kernel)",
            )];
        }
        SelinuxState::Enforcing => {}
        SelinuxState::Permissive => {
            let mut f = Finding::new(
                SELINUX,
                Severity::Info,
                "SELinux is permissive: denials are only logged, never enforced",
            );
            if let Ok(denials) = &facts.denials {
                let connects: Vec<_> = denials.iter().filter(|d| is_connect_denial(d)).collect();
                if let Some(first) = connects.first() {
                    f = f.evidence(format!(
                        "{} connect(s) of nginx in the last {window} would be denied when enforcing, e.g. {}",
                        connects.len(),
                        first.line
                    ));
                }
            }
            return vec![f];
        }
        _ => {
            return vec![Finding::new(
                SELINUX,
                Severity::Info,
                "SELinux is not enabled on this host (built in but disabled)",
            )];
        }
    }

    let mut out: Vec<Finding> = Vec::new();
    let domain = facts.domain.as_deref();
    let domain_text = domain.map_or_else(|| "an unknown domain".to_owned(), str::to_owned);

    // 1. AVC denials of nginx's connects, grouped by what was denied.
    let mut groups: BTreeMap<AvcKey, Vec<&AvcDenial>> = BTreeMap::new();
    let mut other_denials = 0usize;
    if let Ok(denials) = &facts.denials {
        for d in denials {
            if d.permissive == Some(true) {
                continue;
            }
            if !is_connect_denial(d) {
                other_denials += 1;
                continue;
            }
            let key = (
                d.dest_port,
                d.path.clone(),
                d.tclass.clone().unwrap_or_default(),
            );
            groups.entry(key).or_default().push(d);
        }
    }
    for ((port, path, tclass), list) in groups.iter().take(MAX_DENIAL_FINDINGS) {
        let Some(first) = list.first() else { continue };
        let last = list.last().unwrap_or(first);
        let target_type = context_type(first.tcontext.as_deref());
        let what = match (port, path) {
            (Some(p), _) => format!("port {p}"),
            (None, Some(p)) => p.clone(),
            (None, None) => "an upstream".to_owned(),
        };
        let type_text = target_type.map_or_else(String::new, |t| format!(", labelled {t}"));
        let message = format!(
            "SELinux denied nginx ({domain_text}) {} to {what}{type_text} ({} time(s) in the last {window}, {tclass})",
            first.permissions.join(" "),
            list.len()
        );
        let fixes = match (port, path) {
            (Some(p), _) => tcp_fixes(*p, target_type).to_vec(),
            (None, Some(p)) => unix_fixes(p).to_vec(),
            (None, None) => Vec::new(),
        };
        let matched = endpoints_of_denial(first, endpoints);
        let mut base = Finding::new(SELINUX, Severity::Error, message.clone())
            .cause(Cause::SELINUX_DENIED)
            .evidence(first.line.clone());
        if list.len() > 1 {
            base = base.evidence(last.line.clone());
        }
        for fix in &fixes {
            base = base.fix(fix.clone());
        }
        if matched.is_empty() {
            out.push(base);
        } else {
            for e in matched {
                out.push(base.clone().upstream(&e.peer).at(e.location()));
            }
        }
    }

    // 2. The error log: TCP connects that failed with 13 while SELinux enforces.
    for hit in log.iter().filter(|h| !h.unix && h.errno == 13) {
        let peer = hit.peer.clone();
        let sample = hit.samples.first().cloned().unwrap_or_default();
        if let Some(existing) = out
            .iter_mut()
            .find(|f| f.upstream.is_some() && f.upstream == peer)
        {
            existing.evidence.push(sample);
            continue;
        }
        let port = peer.as_ref().and_then(Upstream::port);
        let target = peer
            .as_ref()
            .map_or_else(|| "an upstream".to_owned(), ToString::to_string);
        let mut f = Finding::new(
            SELINUX,
            Severity::Error,
            format!(
                "nginx's connects to {target} failed with errno 13 ({} line(s) in the last {window}) while SELinux is enforcing",
                hit.count
            ),
        )
        .cause(Cause::SELINUX_DENIED)
        .evidence(sample);
        if let Some(p) = &peer {
            let endpoint = endpoints.iter().find(|e| p.peer() == Some(&e.peer));
            f = f
                .upstream(p.clone())
                .at(endpoint.and_then(Endpoint::location));
        }
        if let Err(why) = &facts.denials {
            f = f.evidence(format!("AVC denials could not be read: {why}"));
        }
        match port {
            Some(port) => {
                for fix in tcp_fixes(port, None) {
                    f = f.fix(fix);
                }
            }
            None => f = f.fix("setsebool -P httpd_can_network_connect 1"),
        }
        out.push(f);
    }

    // 3. The booleans: TCP upstreams on ports httpd_t may not reach.
    let confined = domain.is_none_or(|d| d == "httpd_t");
    if confined && facts.booleans.network_connect == Some(false) {
        for e in endpoints {
            let Peer::Inet { port, .. } = &e.peer else {
                continue;
            };
            if facts.booleans.allows(*port)
                || out
                    .iter()
                    .any(|f| f.upstream.as_ref().and_then(Upstream::peer) == Some(&e.peer))
            {
                continue;
            }
            let mut f = Finding::new(
                SELINUX,
                Severity::Warning,
                format!(
                    "SELinux enforces and httpd_can_network_connect is off: nginx ({domain_text}) may not connect to {} (port {port} is not an http port)",
                    e.display
                ),
            )
            .cause(Cause::SELINUX_DENIED)
            .upstream(&e.peer)
            .at(e.location())
            .evidence("getsebool httpd_can_network_connect: off");
            for fix in tcp_fixes(*port, None) {
                f = f.fix(fix);
            }
            out.push(f);
        }
    }

    for note in &facts.unreadable {
        out.push(Finding::new(
            SELINUX,
            Severity::Info,
            format!("{note}: AVC denials there are not visible (run as root)"),
        ));
    }
    if out.iter().all(|f| f.severity == Severity::Info) {
        let mut summary = format!("SELinux is enforcing; nginx runs as {domain_text}");
        match facts.booleans.network_connect {
            Some(true) => summary.push_str("; httpd_can_network_connect is on"),
            Some(false) => summary.push_str("; httpd_can_network_connect is off"),
            None => {}
        }
        match &facts.denials {
            Ok(_) => summary.push_str(&format!(
                "; no AVC denials of nginx's connects in the last {window}"
            )),
            Err(why) => summary.push_str(&format!("; AVC denials could not be read ({why})")),
        }
        let mut f = Finding::new(SELINUX, Severity::Info, summary);
        if other_denials > 0 {
            f = f.evidence(format!(
                "{other_denials} other AVC denial(s) of nginx (not about connecting to an upstream)"
            ));
        }
        if !confined {
            f = f.evidence(format!(
                "{domain_text} is not httpd_t: the httpd booleans do not apply to it"
            ));
        }
        out.insert(0, f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use fix502_probe::host::parse_avc;

    const AVC_8000: &str = "type=AVC msg=audit(1700000000.123:456): avc:  denied  { name_connect } for  pid=1235 comm=\"nginx\" dest=8000 scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:object_r:soundd_port_t:s0 tclass=tcp_socket permissive=0";
    const AVC_SOCK: &str = "type=AVC msg=audit(1700000100.5:460): avc:  denied  { write } for  pid=1235 comm=\"nginx\" name=\"app.sock\" dev=\"tmpfs\" ino=4242 scontext=system_u:system_r:httpd_t:s0 tcontext=unconfined_u:object_r:user_tmp_t:s0 tclass=sock_file permissive=0";

    fn enforcing(denials: Vec<AvcDenial>, network_connect: Option<bool>) -> SelinuxFacts {
        SelinuxFacts {
            state: SelinuxState::Enforcing,
            domain: Some("httpd_t".to_owned()),
            booleans: HttpdBooleans {
                network_connect,
                network_relay: Some(false),
                graceful_shutdown: Some(true),
            },
            denials: Ok(denials),
            unreadable: Vec::new(),
        }
    }

    #[test]
    fn selinux_absent_or_disabled_is_info_only() {
        for state in [SelinuxState::NotPresent, SelinuxState::Disabled] {
            let facts = SelinuxFacts {
                state,
                ..enforcing(vec![parse_avc(AVC_8000).unwrap()], Some(false))
            };
            let out = selinux_findings(&facts, &[tcp(8000)], &[], "1h");
            assert_eq!(out.len(), 1);
            let f = out.first().unwrap();
            assert_eq!((f.severity, f.cause), (Severity::Info, None));
            assert!(f.message.contains("SELinux is not enabled on this host"));
        }
    }

    #[test]
    fn selinux_live_on_this_machine_claims_nothing() {
        // Debian test machine: no SELinux. The live read must end in one Info.
        let read = read_selinux(Path::new("/"), &[], None);
        if read.state == SelinuxState::NotPresent {
            let out = selinux_findings(&read, &[tcp(8000)], &[], "1h");
            assert_eq!(out.len(), 1);
            assert!(
                out.iter()
                    .all(|f| f.severity == Severity::Info && f.cause.is_none())
            );
        }
    }

    #[test]
    fn selinux_permissive_is_info_with_would_be_denials() {
        let facts = SelinuxFacts {
            state: SelinuxState::Permissive,
            ..enforcing(vec![parse_avc(AVC_8000).unwrap()], Some(false))
        };
        let out = selinux_findings(&facts, &[tcp(8000)], &[], "1h");
        assert_eq!(out.len(), 1);
        let f = out.first().unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("permissive"));
        assert!(f.evidence.first().unwrap().contains("would be denied"));
    }

    #[test]
    fn selinux_avc_denial_is_an_error_on_the_matching_endpoint() {
        let facts = enforcing(vec![parse_avc(AVC_8000).unwrap()], Some(false));
        let endpoints = [tcp(8000), tcp(80), unix("/run/php/php8.2-fpm.sock")];
        let out = selinux_findings(&facts, &endpoints, &[], "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1, "{out:#?}");
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::SELINUX_DENIED));
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("127.0.0.1:8000")
        );
        assert_eq!(f.evidence.first().map(String::as_str), Some(AVC_8000));
        assert!(f.message.contains("soundd_port_t"));
        assert!(
            f.fix
                .iter()
                .any(|x| x.contains("setsebool -P httpd_can_network_connect 1"))
        );
        // 8000 already has a type: modify, not add.
        assert!(
            f.fix
                .iter()
                .any(|x| x.contains("semanage port -m -t http_port_t -p tcp 8000"))
        );
        // Port 80 is an http port with httpd_graceful_shutdown on: no warning for it; the
        // denied endpoint is not warned about twice.
        assert!(out.iter().all(|f| f.severity != Severity::Warning));
    }

    #[test]
    fn selinux_socket_denial_matches_by_file_name() {
        let facts = enforcing(vec![parse_avc(AVC_SOCK).unwrap()], Some(true));
        let out = selinux_findings(
            &facts,
            &[unix("/tmp/app/app.sock"), unix("/run/other.sock")],
            &[],
            "1h",
        );
        let errs = errors(&out);
        assert_eq!(errs.len(), 1);
        let f = errs.first().unwrap();
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("unix:/tmp/app/app.sock")
        );
        assert!(f.fix.iter().any(|x| x.contains("httpd_var_run_t")));
    }

    #[test]
    fn selinux_near_misses_stay_quiet() {
        // A permissive=1 record (permissive domain), a denial of another kind, and
        // httpd_can_network_connect on: nothing to report but the summary.
        let mut permissive = parse_avc(AVC_8000).unwrap();
        permissive.permissive = Some(true);
        let read_denial = parse_avc(
            "type=AVC msg=audit(1700000000.5:9): avc:  denied  { read } for  pid=1235 comm=\"nginx\" name=\"index.html\" scontext=system_u:system_r:httpd_t:s0 tcontext=unconfined_u:object_r:user_home_t:s0 tclass=file permissive=0",
        )
        .unwrap();
        let facts = enforcing(vec![permissive, read_denial], Some(true));
        let out = selinux_findings(&facts, &[tcp(8000)], &[], "1h");
        assert_eq!(out.len(), 1, "{out:#?}");
        let f = out.first().unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.message
                .contains("SELinux is enforcing; nginx runs as httpd_t")
        );
        assert!(f.evidence.iter().any(|e| e.contains("1 other AVC denial")));
    }

    #[test]
    fn selinux_boolean_off_warns_for_non_http_ports_only() {
        let facts = enforcing(Vec::new(), Some(false));
        let endpoints = [
            tcp(8000),
            tcp(9000),
            tcp(80),
            tcp(8080),
            unix("/run/a.sock"),
        ];
        let out = selinux_findings(&facts, &endpoints, &[], "1h");
        let warned: Vec<_> = out
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .filter_map(|f| f.upstream.as_ref().map(ToString::to_string))
            .collect();
        // 8080 is http_cache_port_t: reachable only with httpd_can_network_relay (off here).
        assert_eq!(warned, ["127.0.0.1:8000", "127.0.0.1:8080"]);
        assert!(errors(&out).is_empty());

        // With the relay boolean on, 8080 is fine; with the connect boolean unknown, nothing.
        let relay = SelinuxFacts {
            booleans: HttpdBooleans {
                network_relay: Some(true),
                ..facts.booleans
            },
            ..facts.clone()
        };
        let out = selinux_findings(&relay, &endpoints, &[], "1h");
        assert_eq!(
            out.iter()
                .filter(|f| f.severity == Severity::Warning)
                .count(),
            1
        );
        let unknown = enforcing(Vec::new(), None);
        let out = selinux_findings(&unknown, &endpoints, &[], "1h");
        assert!(out.iter().all(|f| f.severity == Severity::Info));

        // nginx unconfined (started by hand): the httpd booleans do not apply.
        let unconfined = SelinuxFacts {
            domain: Some("unconfined_t".to_owned()),
            ..facts
        };
        let out = selinux_findings(&unconfined, &endpoints, &[], "1h");
        assert_eq!(out.len(), 1);
        assert!(
            out.first()
                .unwrap()
                .evidence
                .iter()
                .any(|e| e.contains("not httpd_t"))
        );
    }

    #[test]
    fn selinux_errno_13_in_the_log_is_an_error_without_audit_log() {
        let log = tcp_permission_denied(&reads(&format!("{LOG_13_TCP}{LOG_13_UNIX}")));
        assert_eq!(log.len(), 1, "only the TCP group: {log:?}");
        let mut facts = enforcing(Vec::new(), Some(true));
        facts.denials = Err("cannot read /var/log/audit/audit.log: denied".to_owned());
        let out = selinux_findings(&facts, &[tcp(8000)], &log, "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1);
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::SELINUX_DENIED));
        assert_eq!(
            f.upstream.as_ref().map(ToString::to_string).as_deref(),
            Some("127.0.0.1:8000")
        );
        assert!(
            f.evidence
                .first()
                .unwrap()
                .contains("(13: Permission denied)")
        );
        assert!(f.evidence.iter().any(|e| e.contains("could not be read")));
        assert!(f.location.is_some());

        // With the AVC record too, the log line joins the same finding.
        let facts = enforcing(vec![parse_avc(AVC_8000).unwrap()], Some(true));
        let out = selinux_findings(&facts, &[tcp(8000)], &log, "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs.first().unwrap().evidence.len(), 2);

        // Not enforcing: the same log line is not blamed on SELinux.
        let permissive = SelinuxFacts {
            state: SelinuxState::Permissive,
            ..enforcing(Vec::new(), Some(true))
        };
        assert!(errors(&selinux_findings(&permissive, &[tcp(8000)], &log, "1h")).is_empty());
    }

    #[test]
    fn selinux_unreadable_audit_log_is_info() {
        let mut facts = enforcing(Vec::new(), Some(true));
        facts.unreadable =
            vec!["cannot read /var/log/audit/audit.log: permission denied".to_owned()];
        let out = selinux_findings(&facts, &[], &[], "1h");
        assert!(out.iter().all(|f| f.severity == Severity::Info));
        assert!(out.iter().any(|f| f.message.contains("not visible")));
    }

    #[test]
    fn selinux_read_from_a_fixture_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let put = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("sys/fs/selinux/enforce", "1");
        put("sys/fs/selinux/booleans/httpd_can_network_connect", "0 0");
        put("proc/1235/attr/current", "system_u:system_r:httpd_t:s0\0");
        let other = "type=AVC msg=audit(1700000000.2:457): avc:  denied  { name_connect } for  pid=99 comm=\"httpd\" dest=8000 scontext=system_u:system_r:httpd_t:s0 tcontext=system_u:object_r:soundd_port_t:s0 tclass=tcp_socket permissive=0";
        put("var/log/audit/audit.log", &format!("{AVC_8000}\n{other}\n"));
        let read = read_selinux(root, &[1235], None);
        assert_eq!(read.state, SelinuxState::Enforcing);
        assert_eq!(read.domain.as_deref(), Some("httpd_t"));
        assert_eq!(read.booleans.network_connect, Some(false));
        assert_eq!(read.booleans.network_relay, None);
        let denials = read.denials.as_ref().unwrap();
        assert_eq!(denials.len(), 1, "only nginx's: {denials:?}");
        // A window after the record drops it.
        let later = read_selinux(root, &[1235], Some(1_800_000_000.0));
        assert!(later.denials.unwrap().is_empty());
    }
}
