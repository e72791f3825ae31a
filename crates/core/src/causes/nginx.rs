//! Causes in nginx itself: no master runs the config, the config fails `nginx -t`, or the
//! running workers still have the config from before the last change.

use super::cause::Cause;
use super::context::Context;
use super::entry::{Act, Entry, Side};
use crate::report::{Next, StepId};

impl Cause {
    /// `nginx-not-running`.
    pub const NGINX_NOT_RUNNING: Self = Self("nginx-not-running");
    /// `config-invalid`.
    pub const CONFIG_INVALID: Self = Self("config-invalid");
    /// `config-not-reloaded`.
    pub const CONFIG_NOT_RELOADED: Self = Self("config-not-reloaded");
}

pub(super) static ENTRIES: [Entry; 3] = [
    Entry::new(
        Cause::NGINX_NOT_RUNNING,
        "no nginx master process, or nothing listens on the server's port",
        Side::Nginx,
        |ctx| match &ctx.facts.discovery.master {
            Some(_) => format!(
                "nginx runs {} but does not listen where the config says",
                ctx.facts.discovery.config.display()
            ),
            None => format!(
                "No nginx master process runs {}",
                ctx.facts.discovery.config.display()
            ),
        },
        |_, _| {},
    )
    .acts(&[Act::StartNginx])
    .next(|step, _| {
        (step == StepId::Config)
            .then(|| Next::to("Start nginx once nginx -t passes", StepId::Restart))
    }),
    Entry::new(
        Cause::CONFIG_INVALID,
        "`nginx -t` fails: a reload would fail too",
        Side::Nginx,
        |ctx| match ctx.findings.first() {
            Some(f) => f.message.clone(),
            None => "nginx -t fails: a reload or restart would fail too".to_owned(),
        },
        |_, _| {},
    )
    .confidence(|c, support| if support.config { 0.99 } else { c })
    .next(|step, _| {
        (step == StepId::Config).then(|| {
            Next::here("Fix the config at the line nginx -t names, then run nginx -t again")
        })
    }),
    Entry::new(
        Cause::CONFIG_NOT_RELOADED,
        "the config on disk changed after the running workers started",
        Side::Nginx,
        not_reloaded,
        |ctx, v| ctx.add_reload(v),
    )
    .acts(&[Act::ReloadNginx]),
];

/// A failed reload says more than a changed file; with an upstream, what the old config
/// still sends requests to.
fn not_reloaded(ctx: &Context<'_>) -> String {
    let what = ctx
        .headline()
        .or_else(|| {
            ctx.findings
                .iter()
                .find(|f| f.kind.is_config())
                .map(|f| f.message.as_str())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| Cause::CONFIG_NOT_RELOADED.meaning().to_owned());
    match ctx.upstream {
        Some(u) => format!(
            "{what}; it still sends requests to {u}, which the config on disk no longer names"
        ),
        None => what,
    }
}
