//! Step 4, the host: what makes nginx's connects fail outside its config. SELinux denying
//! the workers' `connect()` (errno 13 on TCP, `httpd_can_network_connect`), AppArmor
//! denying a unix socket connect (errno 13 with file modes that allow it), and the workers
//! running out of file descriptors (errno 24 EMFILE, 23 ENFILE).
//!
//! Each check first reads the host (in a blocking task), then decides with a pure function
//! of what it read (`selinux_findings`, `apparmor_findings`, `worker_files_findings`),
//! so the decisions are tested without the host.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fix502_nginx::classify::Signature;
use fix502_nginx::errorlog;
use fix502_nginx::view::Peer;
use fix502_probe::host::{self, AppArmorDenial, AppArmorState, AvcDenial, FdUsage, SelinuxState};

use crate::check::{FindingsFuture, FnCheck};
use crate::facts::{Endpoint, Facts, LogRead};
use crate::report::{Cause, Finding, Severity, StepId};

/// Check id: SELinux mode, booleans and AVC denials of nginx's connects.
pub const SELINUX: &str = "network.selinux";
/// Check id: AppArmor confinement of the workers and its denials.
pub const APPARMOR: &str = "network.apparmor";
/// Check id: the workers' open files against their limit, and EMFILE/ENFILE in the log.
pub const WORKER_FILES: &str = "network.worker-files";

/// The checks of this part of the step.
pub static CHECKS: [FnCheck; 3] = [
    FnCheck::new(SELINUX, StepId::Network, selinux_check),
    FnCheck::new(APPARMOR, StepId::Network, apparmor_check),
    FnCheck::new(WORKER_FILES, StepId::Network, worker_files_check),
];

/// Where auditd writes AVC and AppArmor records.
const AUDIT_LOG: &str = "/var/log/audit/audit.log";
/// How much of the end of the audit log is read.
const AUDIT_TAIL_BYTES: u64 = 8 * 1024 * 1024;
/// How much of the end of each error log is read for EMFILE/ENFILE lines that are not
/// about an upstream (`accept4() failed (24: ...)`, `open() ... failed (24: ...)`).
const ERROR_LOG_TAIL_BYTES: u64 = 4 * 1024 * 1024;
/// Most kernel log records kept per search.
const MAX_KERNEL_LINES: usize = 2000;
/// Most denial findings per check (each groups identical denials).
const MAX_DENIAL_FINDINGS: usize = 20;
/// Most `/proc/PID/fd` entries counted per worker.
const MAX_FD_COUNT: usize = 1 << 20;
/// Log samples kept per finding.
const MAX_SAMPLES: usize = 2;

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

/// One group of error-log lines this module cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogHit {
    /// The peer, as nginx writes it.
    peer: Option<String>,
    /// The peer is a unix socket.
    unix: bool,
    /// The errno number.
    errno: i32,
    /// Lines in the group.
    count: u64,
    /// Sample lines.
    samples: Vec<String>,
    /// Found by this module's own scan of the log's tail, not in the log summaries.
    from_tail: bool,
}

/// The groups of the error-log summaries whose errno is one of `errnos`.
fn log_hits(reads: &[LogRead], errnos: &[i32]) -> Vec<LogHit> {
    let mut out = Vec::new();
    for read in reads {
        let Ok(summary) = &read.summary else { continue };
        for group in &summary.groups {
            let Some(errno) = group.errno.filter(|e| errnos.contains(e)) else {
                continue;
            };
            out.push(LogHit {
                peer: group.peer.clone(),
                unix: group.unix,
                errno,
                count: group.count,
                samples: group.samples.iter().take(MAX_SAMPLES).cloned().collect(),
                from_tail: false,
            });
        }
    }
    out
}

/// TCP connects that failed with errno 13 (the `permission-denied` groups).
fn tcp_permission_denied(reads: &[LogRead]) -> Vec<LogHit> {
    let mut hits = Vec::new();
    for read in reads {
        let Ok(summary) = &read.summary else { continue };
        for group in &summary.groups {
            if group.signature == Signature::PermissionDenied && !group.unix {
                hits.push(LogHit {
                    peer: group.peer.clone(),
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

/// Unix socket connects that failed with errno 13.
fn unix_permission_denied(reads: &[LogRead]) -> Vec<LogHit> {
    log_hits(reads, &[13])
        .into_iter()
        .filter(|h| h.unix)
        .collect()
}

/// The `--since` window as seconds since the epoch.
fn since_epoch(since: Duration) -> Option<f64> {
    SystemTime::now()
        .checked_sub(since)?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// A denial is nginx's when its command is `nginx` or its pid is one of nginx's.
fn is_nginx(comm: Option<&str>, pid: Option<u32>, pids: &[u32]) -> bool {
    comm == Some("nginx") || pid.is_some_and(|p| pids.contains(&p))
}

// ---------------------------------------------------------------------------------------
// SELinux
// ---------------------------------------------------------------------------------------

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

fn selinux_check(facts: &Facts) -> FindingsFuture<'_> {
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
        let window = super::human_duration(facts.options.since);
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

fn is_not_found(err: &fix502_probe::ProbeError) -> bool {
    matches!(err, fix502_probe::ProbeError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
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
            .cause(Cause::SelinuxDenied)
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
                out.push(base.clone().upstream(e.display.clone()).at(e.location()));
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
        let port = peer
            .as_deref()
            .and_then(|p| p.rsplit_once(':'))
            .and_then(|(_, port)| port.parse::<u16>().ok());
        let target = peer.as_deref().unwrap_or("an upstream");
        let mut f = Finding::new(
            SELINUX,
            Severity::Error,
            format!(
                "nginx's connects to {target} failed with errno 13 ({} line(s) in the last {window}) while SELinux is enforcing",
                hit.count
            ),
        )
        .cause(Cause::SelinuxDenied)
        .evidence(sample);
        if let Some(p) = &peer {
            let endpoint = endpoints.iter().find(|e| &e.display == p);
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
                    .any(|f| f.upstream.as_deref() == Some(e.display.as_str()))
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
            .cause(Cause::SelinuxDenied)
            .upstream(e.display.clone())
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

// ---------------------------------------------------------------------------------------
// AppArmor
// ---------------------------------------------------------------------------------------

/// What the AppArmor check read from the host.
#[derive(Debug, Clone)]
struct AppArmorFacts {
    /// Whether AppArmor is on.
    state: AppArmorState,
    /// Whether nginx runs.
    running: bool,
    /// The profile and mode of each nginx process whose label was readable.
    profiles: Vec<(u32, String, String)>,
    /// nginx's AppArmor denials in the window, or why none could be read.
    denials: Result<Vec<AppArmorDenial>, String>,
}

fn apparmor_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let pids = facts.nginx_pids();
        let running = facts.discovery.master.is_some();
        let since = since_epoch(facts.options.since);
        let read = tokio::task::spawn_blocking(move || {
            read_apparmor(Path::new("/"), &pids, running, since)
        })
        .await;
        let Ok(read) = read else {
            return vec![Finding::could_not_check(
                APPARMOR,
                "the AppArmor probe did not finish",
            )];
        };
        let log = unix_permission_denied(facts.logs().await);
        let window = super::human_duration(facts.options.since);
        apparmor_findings(&read, &facts.endpoints, &log, &window)
    })
}

/// Reads AppArmor's state, the profiles of nginx's processes and their denials.
fn read_apparmor(root: &Path, pids: &[u32], running: bool, since: Option<f64>) -> AppArmorFacts {
    let state = host::apparmor(root);
    let mut facts = AppArmorFacts {
        state,
        running,
        profiles: Vec::new(),
        denials: Ok(Vec::new()),
    };
    if !matches!(state, AppArmorState::Enabled { .. }) {
        return facts;
    }
    facts.profiles = pids
        .iter()
        .filter_map(|&pid| host::apparmor_profile(root, pid).map(|(p, m)| (pid, p, m)))
        .collect();
    let names: Vec<&str> = facts
        .profiles
        .iter()
        .filter(|(_, _, mode)| mode != "unconfined")
        .map(|(_, p, _)| p.as_str())
        .collect();
    let mut lines: Vec<String> = Vec::new();
    let mut read_any = false;
    let mut errors = Vec::new();
    let audit = root.join(AUDIT_LOG.trim_start_matches('/'));
    match host::tail_lines(&audit, AUDIT_TAIL_BYTES) {
        Ok(found) => {
            read_any = true;
            lines.extend(found);
        }
        Err(err) if is_not_found(&err) => {}
        Err(err) => errors.push(err.to_string()),
    }
    match host::kernel_messages("apparmor=\"DENIED\"", MAX_KERNEL_LINES) {
        Ok(found) => {
            read_any = true;
            lines.extend(found);
        }
        Err(err) => errors.push(err.to_string()),
    }
    let mut denials: Vec<AppArmorDenial> = Vec::new();
    for d in host::apparmor_denials(lines.iter().map(String::as_str)) {
        let ours = names.contains(&d.profile.as_str()) || is_nginx(d.comm.as_deref(), d.pid, pids);
        let recent = match (since, d.time) {
            (Some(s), Some(t)) => t >= s,
            _ => true,
        };
        let duplicate = denials.iter().any(|x| {
            x.time == d.time && x.pid == d.pid && x.operation == d.operation && x.name == d.name
        });
        if ours && recent && !duplicate {
            denials.push(d);
        }
    }
    facts.denials = if read_any {
        Ok(denials)
    } else {
        Err(errors.join("; "))
    };
    facts
}

/// The file that usually holds a profile: `/usr/sbin/nginx` is `usr.sbin.nginx`.
fn profile_file(profile: &str) -> String {
    if profile.starts_with('/') {
        format!(
            "/etc/apparmor.d/{}",
            profile.trim_start_matches('/').replace('/', ".")
        )
    } else {
        format!("the file under /etc/apparmor.d/ that defines profile {profile}")
    }
}

/// The AppArmor findings, from what was read. Pure.
fn apparmor_findings(
    facts: &AppArmorFacts,
    endpoints: &[Endpoint],
    log_unix_denied: &[LogHit],
    window: &str,
) -> Vec<Finding> {
    let loaded = match facts.state {
        AppArmorState::NotPresent => {
            return vec![Finding::new(
                APPARMOR,
                Severity::Info,
                "AppArmor is not enabled on this host (not in this kernel)",
            )];
        }
        AppArmorState::Enabled { profiles_loaded } => profiles_loaded,
        _ => {
            return vec![Finding::new(
                APPARMOR,
                Severity::Info,
                "AppArmor is not enabled on this host (disabled)",
            )];
        }
    };
    let loaded_text = loaded.map_or_else(String::new, |n| format!(" ({n} profiles loaded)"));
    if !facts.running {
        return vec![Finding::new(
            APPARMOR,
            Severity::Info,
            format!(
                "AppArmor is enabled{loaded_text}; nginx is not running, so its profile cannot be read"
            ),
        )];
    }
    let confined = facts
        .profiles
        .iter()
        .find(|(_, _, mode)| mode != "unconfined");
    let Some((pid, profile, mode)) = confined else {
        let message = if facts.profiles.is_empty() {
            format!(
                "AppArmor is enabled{loaded_text}; the AppArmor labels of nginx's processes are not readable"
            )
        } else {
            format!("AppArmor is enabled{loaded_text}; nginx's workers are unconfined")
        };
        return vec![Finding::new(APPARMOR, Severity::Info, message)];
    };
    let label = format!("{profile} ({mode})");
    let mut out = vec![
        Finding::new(
            APPARMOR,
            Severity::Info,
            format!("nginx runs under AppArmor profile {label}{loaded_text}"),
        )
        .evidence(format!("/proc/{pid}/attr/current: {label}")),
    ];
    if mode == "complain" {
        if let Some(first) = out.first_mut() {
            first
                .evidence
                .push("complain mode only logs: it never denies".to_owned());
        }
        return out;
    }

    match &facts.denials {
        Ok(denials) => {
            let mut groups: BTreeMap<(String, Option<String>), Vec<&AppArmorDenial>> =
                BTreeMap::new();
            for d in denials {
                groups
                    .entry((d.operation.clone(), d.name.clone()))
                    .or_default()
                    .push(d);
            }
            let mut ignored = 0usize;
            for ((operation, name), list) in groups.iter().take(MAX_DENIAL_FINDINGS) {
                let Some(first) = list.first() else { continue };
                let inet = first
                    .family
                    .as_deref()
                    .is_some_and(|f| f.starts_with("inet"));
                let matched: Vec<&Endpoint> = name
                    .as_deref()
                    .map(|n| {
                        endpoints
                            .iter()
                            .filter(|e| matches!(&e.peer, Peer::Unix(p) if p == Path::new(n)))
                            .collect()
                    })
                    .unwrap_or_default();
                if inet && matches!(operation.as_str(), "connect" | "create") {
                    // A network rule denial: nginx may not open TCP sockets at all.
                    let family = first.family.as_deref().unwrap_or("inet");
                    out.push(
                        Finding::new(
                            APPARMOR,
                            Severity::Error,
                            format!(
                                "AppArmor profile {label} denied nginx a {family} socket ({operation}, {} time(s) in the last {window})",
                                list.len()
                            ),
                        )
                        .evidence(first.line.clone())
                        .fix(format!(
                            "Allow TCP in the profile: add `network {family} stream,` to {}, then apparmor_parser -r {}",
                            profile_file(profile),
                            profile_file(profile)
                        )),
                    );
                    continue;
                }
                let Some(path) = name else {
                    ignored += list.len();
                    continue;
                };
                if operation != "connect" && matched.is_empty() {
                    // Other file operations (reading the docroot) do not make 502s.
                    ignored += list.len();
                    continue;
                }
                let base = Finding::new(
                    APPARMOR,
                    Severity::Error,
                    format!(
                        "AppArmor profile {label} denied nginx {operation} to {path} ({} time(s) in the last {window})",
                        list.len()
                    ),
                )
                .cause(Cause::UnixSocketPermission)
                .evidence(format!("AppArmor profile {label} denied {operation} to {path}"))
                .evidence(first.line.clone())
                .fix(format!(
                    "Allow the socket in the profile: add `{path} rw,` to {} (or its local/ override), then apparmor_parser -r {}",
                    profile_file(profile),
                    profile_file(profile)
                ));
                if matched.is_empty() {
                    out.push(base);
                } else {
                    for e in matched {
                        out.push(base.clone().upstream(e.display.clone()).at(e.location()));
                    }
                }
            }
            if ignored > 0
                && let Some(first) = out.first_mut()
            {
                first.evidence.push(format!(
                    "{ignored} other AppArmor denial(s) of nginx in the last {window} (not about connecting)"
                ));
            }
        }
        Err(why) => {
            if let Some(first) = out.first_mut() {
                first
                    .evidence
                    .push(format!("AppArmor denials could not be read: {why}"));
            }
            for hit in log_unix_denied {
                let Some(peer) = &hit.peer else { continue };
                let endpoint = endpoints.iter().find(|e| &e.display == peer);
                out.push(
                    Finding::new(
                        APPARMOR,
                        Severity::Warning,
                        format!(
                            "nginx's connects to {peer} failed with errno 13 ({} line(s) in the last {window}) and AppArmor enforces profile {label} on the workers: the profile may deny the socket",
                            hit.count
                        ),
                    )
                    .cause(Cause::UnixSocketPermission)
                    .upstream(peer.clone())
                    .at(endpoint.and_then(Endpoint::location))
                    .evidence(hit.samples.first().cloned().unwrap_or_default())
                    .fix("Look for the denial: dmesg | grep 'apparmor=\"DENIED\"' (or journalctl -k)"),
                );
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Worker files
// ---------------------------------------------------------------------------------------

/// What the worker-files check read from the host.
#[derive(Debug, Clone)]
struct WorkerFilesFacts {
    /// Whether nginx runs.
    running: bool,
    /// Each worker's open files, or why they could not be read.
    workers: Vec<(u32, Result<FdUsage, String>)>,
    /// The system file table: (allocated, max).
    file_nr: Option<(u64, u64)>,
}

fn worker_files_check(facts: &Facts) -> FindingsFuture<'_> {
    Box::pin(async move {
        let workers = facts.worker_pids();
        let running = facts.discovery.master.is_some();
        let paths = facts.error_logs.clone();
        let window_start = facts.window_start();
        let read = tokio::task::spawn_blocking(move || {
            let root = Path::new("/");
            let facts = WorkerFilesFacts {
                running,
                workers: workers
                    .iter()
                    .map(|&pid| {
                        (
                            pid,
                            host::fd_usage(root, pid, MAX_FD_COUNT).map_err(|e| e.to_string()),
                        )
                    })
                    .collect(),
                file_nr: host::file_nr(root),
            };
            (facts, scan_fd_errors(&paths, window_start))
        })
        .await;
        let Ok((read, tail_hits)) = read else {
            return vec![Finding::could_not_check(
                WORKER_FILES,
                "the file descriptor probe did not finish",
            )];
        };
        let mut hits = log_hits(facts.logs().await, &[23, 24]);
        hits.extend(tail_hits);
        let window = super::human_duration(facts.options.since);
        worker_files_findings(&read, &hits, &window)
    })
}

/// Lines with errno 23 or 24 in the tail of each error log within the window, including
/// those that are not about an upstream (`accept4() failed (24: ...)`).
fn scan_fd_errors(paths: &[PathBuf], since: Option<jiff::civil::DateTime>) -> Vec<LogHit> {
    let mut out = Vec::new();
    for path in paths {
        let Ok(lines) = host::tail_lines(path, ERROR_LOG_TAIL_BYTES) else {
            continue;
        };
        out.extend(fd_error_hits(lines.iter().map(String::as_str), since));
    }
    out
}

/// Groups error-log lines with errno 23 or 24 at or after `since` by errno. Pure.
fn fd_error_hits<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    since: Option<jiff::civil::DateTime>,
) -> Vec<LogHit> {
    let mut out: Vec<LogHit> = Vec::new();
    for text in lines {
        let Some(line) = errorlog::parse_line(text) else {
            continue;
        };
        if since.is_some_and(|s| line.time < s) {
            continue;
        }
        let Some(errno) = line
            .errno
            .map(|e| e.number)
            .filter(|n| matches!(n, 23 | 24))
        else {
            continue;
        };
        match out.iter_mut().find(|h| h.errno == errno) {
            Some(hit) => {
                hit.count += 1;
                // Keep the first and the latest line.
                if hit.samples.len() >= MAX_SAMPLES {
                    hit.samples.pop();
                }
                hit.samples.push(text.to_owned());
            }
            None => out.push(LogHit {
                peer: None,
                unix: false,
                errno,
                count: 1,
                samples: vec![text.to_owned()],
                from_tail: true,
            }),
        }
    }
    out
}

/// The fixes for a worker that runs out of descriptors.
fn emfile_fixes() -> [&'static str; 2] {
    [
        "Raise the workers' limit: `worker_rlimit_nofile 65535;` in the main context of nginx.conf (keep worker_connections below half of it: a proxied request uses two), then reload",
        "Under systemd raise the service's limit too: systemctl edit nginx, add `[Service]` and `LimitNOFILE=65535`, then systemctl restart nginx",
    ]
}

/// The worker-files findings, from what was read. Pure.
fn worker_files_findings(facts: &WorkerFilesFacts, log: &[LogHit], window: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    if !facts.running {
        out.push(Finding::new(
            WORKER_FILES,
            Severity::Info,
            "nginx is not running: no worker file limits to read",
        ));
    }

    // The workers now.
    let mut busiest: Option<(u32, FdUsage)> = None;
    let mut unreadable = Vec::new();
    for (pid, usage) in &facts.workers {
        let usage = match usage {
            Ok(u) => *u,
            Err(e) => {
                unreadable.push(format!("worker {pid}: {e}"));
                continue;
            }
        };
        let open = u64::try_from(usage.open).unwrap_or(u64::MAX);
        let near = usage
            .soft_limit
            .is_some_and(|soft| soft > 0 && open.saturating_mul(10) >= soft.saturating_mul(9));
        if near {
            let soft = usage.soft_limit.unwrap_or_default();
            let at_least = if usage.truncated { "at least " } else { "" };
            let hard = usage
                .hard_limit
                .map_or_else(|| "unlimited".to_owned(), |h| h.to_string());
            let mut f = Finding::new(
                WORKER_FILES,
                Severity::Error,
                format!("worker {pid} has {at_least}{open} of {soft} files open"),
            )
            .cause(Cause::FdExhaustion)
            .evidence(format!(
                "/proc/{pid}/fd: {at_least}{open} entries; /proc/{pid}/limits: Max open files {soft} (soft), {hard} (hard)"
            ));
            for fix in emfile_fixes() {
                f = f.fix(fix);
            }
            out.push(f);
        } else if busiest.is_none_or(|(_, b)| usage.open > b.open) {
            busiest = Some((*pid, usage));
        }
    }
    let file_table = facts.file_nr.map(|(allocated, max)| {
        (
            allocated,
            max,
            max > 0 && allocated.saturating_mul(10) >= max.saturating_mul(9),
        )
    });
    if let Some((pid, usage)) = busiest {
        let limit = usage
            .soft_limit
            .map_or_else(|| "an unlimited number of".to_owned(), |s| s.to_string());
        let mut f = Finding::new(
            WORKER_FILES,
            Severity::Info,
            format!(
                "{} worker(s): the busiest (worker {pid}) has {} of {limit} files open",
                facts.workers.len(),
                usage.open
            ),
        );
        if let Some((allocated, max, false)) = file_table {
            f = f.evidence(format!(
                "system file table: {allocated} of {max} (/proc/sys/fs/file-nr)"
            ));
        }
        out.push(f);
    }
    if facts.running && !facts.workers.is_empty() && unreadable.len() == facts.workers.len() {
        out.push(
            Finding::could_not_check(
                WORKER_FILES,
                "cannot read the workers' open files (/proc/PID/fd needs root or the workers' user)",
            )
            .evidence(unreadable.join("; ")),
        );
    } else if facts.running && facts.workers.is_empty() {
        out.push(Finding::new(
            WORKER_FILES,
            Severity::Info,
            "nginx runs without worker processes (master_process off?): no worker limits to read",
        ));
    }

    // The system-wide file table now.
    if let Some((allocated, max, true)) = file_table {
        out.push(
            Finding::new(
                WORKER_FILES,
                Severity::Error,
                format!("the system file table is almost full: {allocated} of {max} files (ENFILE)"),
            )
            .cause(Cause::FdExhaustion)
            .evidence(format!("/proc/sys/fs/file-nr: {allocated} allocated, max {max}"))
            .fix("Find the processes holding the most files (lsof -n | awk '{print $2}' | sort | uniq -c | sort -n | tail), then raise the table: sysctl -w fs.file-max=2097152"),
        );
    }

    // The error log: the limit was hit in the window, even if the load has passed.
    for errno in [24, 23] {
        let hits: Vec<&LogHit> = log.iter().filter(|h| h.errno == errno).collect();
        // Upstream groups and the tail scan see the same lines: the larger count is a floor.
        let grouped: u64 = hits.iter().filter(|h| !h.from_tail).map(|h| h.count).sum();
        let scanned: u64 = hits.iter().filter(|h| h.from_tail).map(|h| h.count).sum();
        let count = grouped.max(scanned);
        if count == 0 {
            continue;
        }
        let mut samples: Vec<&str> = Vec::new();
        for s in hits.iter().flat_map(|h| h.samples.iter()) {
            if samples.len() < MAX_SAMPLES && !samples.contains(&s.as_str()) {
                samples.push(s);
            }
        }
        let (name, what) = if errno == 24 {
            ("EMFILE", "a worker reached its open files limit")
        } else {
            ("ENFILE", "the system's file table was full")
        };
        let mut f = Finding::new(
            WORKER_FILES,
            Severity::Error,
            format!(
                "nginx logged {count} \"Too many open files\" error(s) (errno {errno}, {name}) in the last {window}: {what}"
            ),
        )
        .cause(Cause::FdExhaustion);
        for s in samples {
            f = f.evidence(s);
        }
        if errno == 24 {
            for fix in emfile_fixes() {
                f = f.fix(fix);
            }
        } else {
            f = f.fix("Raise the system's file table: sysctl -w fs.file-max=2097152 (and persist it in /etc/sysctl.d/)");
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fix502_nginx::logscan::{self, ScanOptions};
    use fix502_probe::host::parse_avc;

    use crate::facts::EndpointUse;
    use crate::report::Location;

    fn endpoint(peer: Peer) -> Endpoint {
        Endpoint {
            display: peer.to_string(),
            peer,
            group: None,
            uses: vec![EndpointUse {
                directive: "proxy_pass http://x".to_owned(),
                at: Location {
                    file: PathBuf::from("/etc/nginx/nginx.conf"),
                    line: 12,
                },
                server_at: None,
                location: Some("/".to_owned()),
                server_name: None,
                target: 0,
            }],
        }
    }

    fn tcp(port: u16) -> Endpoint {
        endpoint(Peer::inet("127.0.0.1", port))
    }

    fn unix(path: &str) -> Endpoint {
        endpoint(Peer::Unix(PathBuf::from(path)))
    }

    fn reads(text: &str) -> Vec<LogRead> {
        let summary = logscan::scan(text.as_bytes(), &ScanOptions::default()).unwrap();
        vec![LogRead {
            path: PathBuf::from("/var/log/nginx/error.log"),
            summary: Ok(summary),
        }]
    }

    const LOG_13_TCP: &str = "2026/11/24 10:00:00 [crit] 1235#1235: *7 connect() to 127.0.0.1:8000 failed (13: Permission denied) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"localhost\"\n";
    const LOG_13_UNIX: &str = "2026/11/24 10:00:01 [crit] 1235#1235: *8 connect() to unix:/run/php/php8.2-fpm.sock failed (13: Permission denied) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET /index.php HTTP/1.1\", upstream: \"fastcgi://unix:/run/php/php8.2-fpm.sock:\", host: \"localhost\"\n";
    const LOG_24: &str = "2026/11/24 10:00:02 [alert] 1235#1235: *9 socket() failed (24: Too many open files) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"localhost\"\n";
    const LOG_ACCEPT_24: &str =
        "2026/11/24 10:00:03 [crit] 1235#1235: accept4() failed (24: Too many open files)";
    const LOG_23: &str = "2026/11/24 10:00:04 [alert] 1235#1235: *10 socket() failed (23: Too many open files in system) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8000/\", host: \"localhost\"\n";

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

    fn errors(findings: &[Finding]) -> Vec<&Finding> {
        findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect()
    }

    // ---- SELinux ----

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
        assert_eq!(f.cause, Some(Cause::SelinuxDenied));
        assert_eq!(f.upstream.as_deref(), Some("127.0.0.1:8000"));
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
        assert_eq!(f.upstream.as_deref(), Some("unix:/tmp/app/app.sock"));
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
            .map(|f| f.upstream.as_deref().unwrap())
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
        assert_eq!(f.cause, Some(Cause::SelinuxDenied));
        assert_eq!(f.upstream.as_deref(), Some("127.0.0.1:8000"));
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

    // ---- AppArmor ----

    fn confined(denials: Result<Vec<AppArmorDenial>, String>) -> AppArmorFacts {
        AppArmorFacts {
            state: AppArmorState::Enabled {
                profiles_loaded: Some(12),
            },
            running: true,
            profiles: vec![(1235, "/usr/sbin/nginx".to_owned(), "enforce".to_owned())],
            denials,
        }
    }

    const AA_SOCK: &str = r#"audit: type=1400 audit(1700000300.512:88): apparmor="DENIED" operation="connect" class="file" profile="/usr/sbin/nginx" name="/run/php/php8.2-fpm.sock" pid=1235 comm="nginx" requested_mask="wr" denied_mask="wr" fsuid=33 ouid=33"#;
    const AA_FILE: &str = r#"audit: type=1400 audit(1700000301.0:89): apparmor="DENIED" operation="open" class="file" profile="/usr/sbin/nginx" name="/srv/www/index.html" pid=1235 comm="nginx" requested_mask="r" denied_mask="r" fsuid=33 ouid=0"#;
    const AA_NET: &str = r#"audit: type=1400 audit(1700000302.0:90): apparmor="DENIED" operation="create" class="net" profile="/usr/sbin/nginx" pid=1235 comm="nginx" family="inet" sock_type="stream" protocol=6 requested_mask="create" denied_mask="create""#;

    #[test]
    fn apparmor_absent_disabled_unconfined_not_running_are_info() {
        let mut facts = confined(Ok(host::apparmor_denials([AA_SOCK])));
        for state in [AppArmorState::NotPresent, AppArmorState::Disabled] {
            facts.state = state;
            let out = apparmor_findings(&facts, &[], &[], "1h");
            assert_eq!(out.len(), 1);
            assert!(
                out.first()
                    .unwrap()
                    .message
                    .contains("AppArmor is not enabled")
            );
        }
        facts.state = AppArmorState::Enabled {
            profiles_loaded: None,
        };
        facts.profiles = vec![(1235, "unconfined".to_owned(), "unconfined".to_owned())];
        let out = apparmor_findings(&facts, &[], &[], "1h");
        assert_eq!(out.len(), 1);
        assert!(out.first().unwrap().message.contains("unconfined"));
        facts.running = false;
        let out = apparmor_findings(&facts, &[], &[], "1h");
        assert!(out.first().unwrap().message.contains("not running"));
        assert!(out.iter().all(|f| f.severity == Severity::Info));
        // The live machine: whatever its state, no problem claimed without nginx.
        let live = read_apparmor(Path::new("/"), &[], false, None);
        assert!(
            apparmor_findings(&live, &[], &[], "1h")
                .iter()
                .all(|f| f.severity == Severity::Info)
        );
    }

    #[test]
    fn apparmor_socket_denial_is_unix_socket_permission() {
        let facts = confined(Ok(host::apparmor_denials([AA_SOCK, AA_FILE])));
        let endpoints = [unix("/run/php/php8.2-fpm.sock"), tcp(8000)];
        let out = apparmor_findings(&facts, &endpoints, &[], "1h");
        let first = out.first().unwrap();
        assert_eq!(first.severity, Severity::Info);
        assert!(first.message.contains("/usr/sbin/nginx (enforce)"));
        assert!(
            first
                .evidence
                .iter()
                .any(|e| e.contains("1 other AppArmor denial"))
        );
        let errs = errors(&out);
        assert_eq!(errs.len(), 1, "{out:#?}");
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::UnixSocketPermission));
        assert_eq!(f.upstream.as_deref(), Some("unix:/run/php/php8.2-fpm.sock"));
        assert_eq!(
            f.evidence.first().map(String::as_str),
            Some(
                "AppArmor profile /usr/sbin/nginx (enforce) denied connect to /run/php/php8.2-fpm.sock"
            )
        );
        assert!(
            f.fix
                .first()
                .unwrap()
                .contains("/etc/apparmor.d/usr.sbin.nginx")
        );
    }

    #[test]
    fn apparmor_network_denial_and_near_misses() {
        let facts = confined(Ok(host::apparmor_denials([AA_NET])));
        let out = apparmor_findings(&facts, &[tcp(8000)], &[], "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1);
        assert!(
            errs.first()
                .unwrap()
                .fix
                .first()
                .unwrap()
                .contains("network inet stream")
        );

        // Only a file read denied: no error.
        let facts = confined(Ok(host::apparmor_denials([AA_FILE])));
        assert!(errors(&apparmor_findings(&facts, &[], &[], "1h")).is_empty());

        // Complain mode never denies.
        let mut complain = confined(Ok(host::apparmor_denials([AA_SOCK])));
        complain.profiles = vec![(1235, "/usr/sbin/nginx".to_owned(), "complain".to_owned())];
        let out = apparmor_findings(&complain, &[unix("/run/php/php8.2-fpm.sock")], &[], "1h");
        assert_eq!(out.len(), 1);
        assert_eq!(out.first().unwrap().severity, Severity::Info);
    }

    #[test]
    fn apparmor_unreadable_denials_with_errno_13_warns() {
        let log = unix_permission_denied(&reads(&format!("{LOG_13_TCP}{LOG_13_UNIX}")));
        assert_eq!(log.len(), 1);
        let facts = confined(Err("opening /dev/kmsg: denied".to_owned()));
        let endpoints = [unix("/run/php/php8.2-fpm.sock")];
        let out = apparmor_findings(&facts, &endpoints, &log, "1h");
        let warns: Vec<_> = out
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .collect();
        assert_eq!(warns.len(), 1);
        assert_eq!(
            warns.first().unwrap().cause,
            Some(Cause::UnixSocketPermission)
        );
        assert!(errors(&out).is_empty());
        // Readable denials and none about the socket: the log line is not blamed on AppArmor.
        let facts = confined(Ok(Vec::new()));
        let out = apparmor_findings(&facts, &endpoints, &log, "1h");
        assert!(out.iter().all(|f| f.severity == Severity::Info));
    }

    // ---- Worker files ----

    fn usage(open: usize, soft: u64) -> Result<FdUsage, String> {
        Ok(FdUsage {
            open,
            truncated: false,
            soft_limit: Some(soft),
            hard_limit: Some(soft * 4),
        })
    }

    #[test]
    fn worker_near_its_limit_is_an_error() {
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(1019, 1024)), (1235, usage(40, 1024))],
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1);
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::FdExhaustion));
        assert_eq!(f.message, "worker 1234 has 1019 of 1024 files open");
        assert!(
            f.fix
                .iter()
                .any(|x| x.contains("worker_rlimit_nofile 65535;"))
        );
        assert!(f.fix.iter().any(|x| x.contains("LimitNOFILE=")));
        let info = out.iter().find(|f| f.severity == Severity::Info).unwrap();
        assert!(info.message.contains("worker 1235) has 40 of 1024"));
    }

    #[test]
    fn worker_below_ninety_percent_is_info() {
        // 921 of 1024 is 89.9%: a near miss.
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(921, 1024))],
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert_eq!(out.len(), 1);
        let f = out.first().unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("921 of 1024"));
        assert!(f.evidence.iter().any(|e| e.contains("5000 of 1000000")));
        // 922 of 1024 crosses 90%.
        let facts = WorkerFilesFacts {
            workers: vec![(1234, usage(922, 1024))],
            ..facts
        };
        assert_eq!(errors(&worker_files_findings(&facts, &[], "1h")).len(), 1);
    }

    #[test]
    fn emfile_in_the_log_is_an_error_even_when_load_passed() {
        let text = format!("{LOG_24}{LOG_24}");
        let grouped = log_hits(&reads(&text), &[23, 24]);
        assert_eq!(grouped.len(), 1, "{grouped:?}");
        assert_eq!(
            (
                grouped.first().unwrap().errno,
                grouped.first().unwrap().count
            ),
            (24, 2)
        );
        let mut hits = grouped;
        hits.extend(fd_error_hits(
            [LOG_24.trim_end(), LOG_24.trim_end(), LOG_ACCEPT_24],
            None,
        ));
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(12, 1024))],
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &hits, "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 1, "{out:#?}");
        let f = errs.first().unwrap();
        assert_eq!(f.cause, Some(Cause::FdExhaustion));
        assert!(
            f.message.contains("3 \"Too many open files\""),
            "{}",
            f.message
        );
        assert!(f.message.contains("EMFILE"));
        assert_eq!(f.evidence.len(), 2);
        assert!(f.evidence.iter().any(|e| e.contains("accept4()")));
    }

    #[test]
    fn enfile_and_a_full_file_table_are_errors() {
        let hits = fd_error_hits([LOG_23.trim_end()], None);
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, usage(12, 1024))],
            file_nr: Some((950_000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &hits, "1h");
        let errs = errors(&out);
        assert_eq!(errs.len(), 2, "{out:#?}");
        assert!(errs.iter().all(|f| f.cause == Some(Cause::FdExhaustion)));
        assert!(errs.iter().any(|f| f.message.contains("system file table")));
        assert!(
            errs.iter()
                .any(|f| f.message.contains("ENFILE") && f.message.contains("errno 23"))
        );
        // 89% of the table is fine.
        let facts = WorkerFilesFacts {
            file_nr: Some((890_000, 1_000_000)),
            ..facts
        };
        assert!(errors(&worker_files_findings(&facts, &[], "1h")).is_empty());
    }

    #[test]
    fn fd_error_lines_respect_the_window_and_other_errnos() {
        let since = jiff::civil::date(2026, 11, 24).at(10, 0, 3, 0);
        let hits = fd_error_hits(
            [
                LOG_24.trim_end(),
                LOG_ACCEPT_24,
                LOG_13_TCP.trim_end(),
                "garbage",
            ],
            Some(since),
        );
        assert_eq!(hits.len(), 1);
        let hit = hits.first().unwrap();
        assert_eq!((hit.errno, hit.count), (24, 1));
        assert_eq!(hit.samples, [LOG_ACCEPT_24]);
    }

    #[test]
    fn not_running_and_unreadable_workers() {
        let facts = WorkerFilesFacts {
            running: false,
            workers: Vec::new(),
            file_nr: Some((5000, 1_000_000)),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert_eq!(out.len(), 1);
        assert_eq!(
            out.first().unwrap().message,
            "nginx is not running: no worker file limits to read"
        );
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(1234, Err("listing /proc/1234/fd: denied".to_owned()))],
            file_nr: None,
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert_eq!(out.len(), 1);
        assert!(out.first().unwrap().could_not_check);
    }

    #[test]
    fn live_worker_files_of_this_process() {
        // This test process stands in for a worker: its real numbers are read and judged.
        let pid = std::process::id();
        let usage = host::fd_usage(Path::new("/"), pid, MAX_FD_COUNT).unwrap();
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(pid, Ok(usage))],
            file_nr: host::file_nr(Path::new("/")),
        };
        let out = worker_files_findings(&facts, &[], "1h");
        assert!(
            out.iter()
                .any(|f| f.message.contains(&format!("worker {pid}")))
        );
    }

    /// A process started for a test, stopped on drop (SIGQUIT, then SIGKILL).
    struct NginxGuard {
        child: std::process::Child,
    }

    impl Drop for NginxGuard {
        fn drop(&mut self) {
            fix502_lab::stop_child(
                &mut self.child,
                nix::sys::signal::Signal::SIGQUIT,
                Duration::from_secs(5),
            );
        }
    }

    #[test]
    fn real_nginx_worker_out_of_files() {
        use std::net::{TcpListener, TcpStream};
        // nginx with a worker limited to 16 files, flooded with idle connections: its
        // worker sits at its limit and logs accept4() failed (24: ...).
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = prefix.join("error.log");
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\nworker_rlimit_nofile 16;\n\
                 pid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log off; server {{ listen 127.0.0.1:{port}; return 200; }} }}\n",
                p = prefix.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start /usr/sbin/nginx");
        let guard = NginxGuard { child };
        let master = i32::try_from(guard.child.id()).unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut worker = None;
        for _ in 0..100 {
            worker = procfs::process::all_processes()
                .unwrap()
                .flatten()
                .find(|p| p.stat().is_ok_and(|s| s.ppid == master))
                .map(|p| u32::try_from(p.pid()).unwrap());
            if worker.is_some() && TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let worker = worker.expect("an nginx worker within 5 s");
        let clients: Vec<TcpStream> = (0..40)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
            .collect();
        let mut hits = Vec::new();
        for _ in 0..50 {
            let lines = host::tail_lines(&log, ERROR_LOG_TAIL_BYTES).unwrap_or_default();
            hits = fd_error_hits(lines.iter().map(String::as_str), None);
            if !hits.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let usage = host::fd_usage(Path::new("/"), worker, MAX_FD_COUNT).unwrap();
        drop(clients);
        assert_eq!(usage.soft_limit, Some(16), "{usage:?}");
        let hit = hits.first().expect("nginx logged errno 24");
        assert_eq!(hit.errno, 24);
        assert!(hit.samples.first().unwrap().contains("(24: "));
        let facts = WorkerFilesFacts {
            running: true,
            workers: vec![(worker, Ok(usage))],
            file_nr: host::file_nr(Path::new("/")),
        };
        let out = worker_files_findings(&facts, &hits, "1h");
        let errs = errors(&out);
        assert_eq!(
            errs.len(),
            2,
            "the worker at its limit and the log: {out:#?}"
        );
        assert!(errs.iter().all(|f| f.cause == Some(Cause::FdExhaustion)));
        assert!(
            errs.iter().any(
                |f| f.message == format!("worker {worker} has {} of 16 files open", usage.open)
            )
        );
        drop(guard);
    }
}
