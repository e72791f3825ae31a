//! The shape of an entry of the cause table and the small types its matchers read. The
//! entries themselves are in the family files; the table that lists them is `causes/mod.rs`.

use fix502_nginx::classify::Signature;
use fix502_probe::connect::ConnectOutcome;

use super::cause::Cause;
use super::context::Context;
use crate::report::{Next, StepId};
use crate::upstream::Upstream;

/// Where a cause sits on the way from nginx to the app; it picks the step to suggest next
/// when the entry names none of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// nginx itself: its process or its config.
    Nginx,
    /// Reaching the upstream: nothing there, not allowed, no route, no name.
    Connect,
    /// The upstream accepted the connection and then answered badly.
    Answer,
    /// The state nginx keeps about an upstream group.
    Group,
    /// The host's limits and policies.
    Host,
}

/// Where the findings behind a claim came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    /// nginx's own logs.
    pub log: bool,
    /// A live probe or a reading of the host.
    pub live: bool,
    /// The configuration, or nginx's own verdict on it (`nginx -t`, its processes).
    pub config: bool,
}

impl Support {
    /// How sure a claim with this support can be, before its cause's own rule (docs/causes.md,
    /// "How sure"): what nginx logged and what is true now (a live check, or the config and
    /// nginx's own verdict) together 0.95; nginx's own verdict now 0.9; a live check now
    /// 0.85; the log alone 0.6, or 0.4 when the upstream answers well again (`recovered`);
    /// anything else (hints) 0.5 at most.
    pub fn level(self, recovered: bool) -> f64 {
        match (self.log, self.live, self.config) {
            (true, true, _) | (true, _, true) => 0.95,
            (false, _, true) => 0.9,
            (false, true, false) => 0.85,
            (true, false, false) if recovered => 0.4,
            (true, false, false) => 0.6,
            (false, false, false) => 0.5,
        }
    }
}

/// One group of error-log lines, as the table matches it.
#[derive(Debug, Clone, Copy)]
pub struct Logged<'a> {
    /// What failed.
    pub signature: &'a Signature,
    /// Whether the peer is a unix socket.
    pub unix: bool,
    /// The peer as nginx wrote it.
    pub peer: Option<&'a str>,
}

/// How a live `connect()` was made, as the table matches its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Connected {
    /// To a unix socket.
    pub unix: bool,
    /// To an IPv6 address.
    pub ipv6: bool,
}

/// What a live exchange got back, in the terms the table maps (each probe's own outcome
/// type is translated into this by the check that reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// The connection closed before a complete response header.
    ClosedEarly,
    /// The connection was reset before a complete response header.
    Reset,
    /// No complete header within the time nginx waits.
    TimedOut,
    /// The response header does not fit nginx's buffer.
    HeaderTooBig,
    /// A response the protocol does not allow.
    Invalid,
    /// The port speaks another protocol than the one nginx speaks to it.
    OtherProtocol,
    /// The TLS handshake or the certificate check failed.
    TlsFailed,
    /// The upstream itself answered 502.
    Status502,
}

/// Everything about one cause.
pub struct Entry {
    /// The id.
    pub cause: Cause,
    /// One line: what it means.
    pub meaning: &'static str,
    /// What the client gets.
    pub http_status: u16,
    /// Where it sits between nginx and the app.
    pub side: Side,
    /// For a group of error-log lines of this cause, how the error-log step counts them
    /// ("connection-refused errors"); `None` when the lines are not of this cause.
    pub logged: fn(&Logged<'_>) -> Option<&'static str>,
    /// Whether a live `connect()` that ended so points to this cause.
    pub connect: fn(&ConnectOutcome, Connected) -> bool,
    /// The answers of a live exchange that point to this cause.
    pub answered: &'static [Answered],
    /// Causes this one explains when both are claimed for the same upstream: their claims
    /// join this one's.
    pub absorbs: &'static [Cause],
    /// A consequence of other causes: ranks below them, at most 50% sure while they are
    /// claimed.
    pub consequence: bool,
    /// A connect failure that nginx's `*_next_upstream error` (the default) retries on the
    /// group's other servers.
    pub retried: bool,
    /// The confidence of a claim from the confidence its kinds of support give.
    pub confidence: fn(f64, Support) -> f64,
    /// The next step to suggest after `step` found this cause first, when it is not the
    /// side's usual one.
    pub next: fn(StepId, Option<&Upstream>) -> Option<Next>,
    /// The one-sentence summary.
    pub summary: fn(&Context<'_>) -> String,
    /// Adds the cause's own fix lines after those the findings carry.
    pub fix: fn(&Context<'_>, &mut Vec<String>),
    /// What the fifth step may do about it, each only when its evidence is strong; empty:
    /// the fix is advice for a person, and `--apply` never acts on it.
    pub acts: &'static [Act],
}

/// An action the fifth step may take for a cause (the restart step plans it, shows it, and
/// applies it only after `--apply` or a yes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Start nginx with the config it was found with.
    StartNginx,
    /// Reload nginx.
    ReloadNginx,
    /// Reload nginx so that it looks the upstream's name up again (it resolves names only
    /// when it reads its config), proven by the failing request through nginx.
    ResolveAgain,
    /// Edit nginx's config at the file:line the evidence names, then reload (the restart
    /// step's `edits.rs`).
    EditConfig,
    /// Restart the systemd unit that makes a missing unix socket (the app's side: only
    /// after a yes in the wizard).
    RestartUnit,
    /// Edit the app server's own config at the setting the evidence names, test it with the
    /// app server's own check, and reload it (the restart step's `app.rs`; the app's side:
    /// only after a yes in the wizard).
    EditApp,
}

impl Entry {
    /// An entry with a 502, no log, connect or answer mapping, absorbing nothing.
    pub(super) const fn new(
        cause: Cause,
        meaning: &'static str,
        side: Side,
        summary: fn(&Context<'_>) -> String,
        fix: fn(&Context<'_>, &mut Vec<String>),
    ) -> Self {
        Self {
            cause,
            meaning,
            http_status: 502,
            side,
            logged: |_| None,
            connect: |_, _| false,
            answered: &[],
            absorbs: &[],
            consequence: false,
            retried: false,
            confidence: |c, _| c,
            next: |_, _| None,
            summary,
            fix,
            acts: &[],
        }
    }

    pub(super) const fn acts(mut self, acts: &'static [Act]) -> Self {
        self.acts = acts;
        self
    }

    pub(super) const fn status(mut self, http_status: u16) -> Self {
        self.http_status = http_status;
        self
    }

    pub(super) const fn logged(mut self, logged: fn(&Logged<'_>) -> Option<&'static str>) -> Self {
        self.logged = logged;
        self
    }

    pub(super) const fn connect(mut self, connect: fn(&ConnectOutcome, Connected) -> bool) -> Self {
        self.connect = connect;
        self
    }

    pub(super) const fn answered(mut self, answered: &'static [Answered]) -> Self {
        self.answered = answered;
        self
    }

    pub(super) const fn absorbs(mut self, absorbs: &'static [Cause]) -> Self {
        self.absorbs = absorbs;
        self
    }

    pub(super) const fn consequence(mut self) -> Self {
        self.consequence = true;
        self
    }

    pub(super) const fn retried(mut self) -> Self {
        self.retried = true;
        self
    }

    pub(super) const fn confidence(mut self, confidence: fn(f64, Support) -> f64) -> Self {
        self.confidence = confidence;
        self
    }

    pub(super) const fn next(
        mut self,
        next: fn(StepId, Option<&Upstream>) -> Option<Next>,
    ) -> Self {
        self.next = next;
        self
    }
}
