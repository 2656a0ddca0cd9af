//! `pushmfa policy explain`: the scoping rules applied to a login that has
//! not happened, by the same code a login runs (`scoping`), with the
//! settings that then apply to its service.

use crate::ctx::Ctx;
use crate::peer::Peer;
use crate::push::mode::effective_mode;
use crate::scoping;
use pushmfa_config::{Config, Offline};
use pushmfa_protocol::ipc::{AdminReply, PolicyExplanation};

pub(super) async fn explain(
    ctx: &Ctx,
    peer: Peer,
    user: String,
    service: String,
    rhost: Option<String>,
) -> Result<AdminReply, String> {
    if !peer.is_admin(ctx.helper_uid) {
        return Err("only root may explain the policy".into());
    }
    let decided = scoping::decide(ctx, &user, rhost.as_deref()).await;
    let settings = if decided.scope.required {
        settings(&ctx.cfg, &service, rhost.is_some())
    } else {
        Vec::new()
    };
    Ok(AdminReply::PolicyExplanation(PolicyExplanation {
        user,
        service,
        rhost,
        groups: decided.groups,
        required: decided.scope.required,
        rule: decided.scope.rule.into(),
        why: decided.scope.why,
        settings,
    }))
}

/// What applies to `service` once the second factor is required.
fn settings(cfg: &Config, service: &str, remote: bool) -> Vec<String> {
    let p = &cfg.policy;
    let name = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
    let mut out = Vec::new();
    if cfg.backend.kind == pushmfa_config::BackendKind::Relay {
        out.push(format!(
            "mode = {}",
            name(&effective_mode(cfg, service, remote, false))
        ));
        out.push(format!("failmode = {}", name(&p.failmode_for(service))));
        let offline =
            p.offline_for(service) == Offline::Allow && !cfg.push.user_verification_for(service);
        out.push(format!(
            "offline = {}",
            if offline { "allow" } else { "deny" }
        ));
    }
    out.push(format!("unenrolled = {}", name(&p.unenrolled_for(service))));
    out
}
