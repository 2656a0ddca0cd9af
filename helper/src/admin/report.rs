//! `pushmfa report`: before switching the module on for a team, who is in
//! scope and who would be refused now (no device, no code left).

use crate::ctx::Ctx;
use crate::groups;
use crate::peer::Peer;
use crate::recovery;
use crate::scoping;
use pushmfa_config::{Config, Unenrolled};
use pushmfa_protocol::ipc::{AdminReply, UserReport};
use pushmfa_state::{Store, UserName, UserState};

pub(super) async fn report(ctx: &Ctx, peer: Peer) -> Result<AdminReply, String> {
    if !peer.is_admin(ctx.helper_uid) {
        return Err("only root may see the report".into());
    }
    let names = candidates(ctx).await?;
    let mut users = Vec::with_capacity(names.len());
    for name in names {
        let scope = scoping::decide(ctx, &name, None).await.scope;
        let state = load(ctx, &name).await?;
        let now = ctx.clock.now_unix();
        users.push(row(&ctx.cfg, now, name, scope.required, scope.rule, &state));
    }
    Ok(AdminReply::Report { users })
}

/// NSS's people and the required groups' members, and everyone with a
/// state file.
async fn candidates(ctx: &Ctx) -> Result<Vec<String>, String> {
    let (store, groups) = (ctx.store.clone(), ctx.cfg.policy.require_groups.clone());
    tokio::task::spawn_blocking(move || {
        let mut names = groups::report_candidates(&groups)?;
        let stored = store.user_names().map_err(|e| e.to_string())?;
        names.extend(stored.iter().map(|u| u.as_str().to_owned()));
        names.sort();
        names.dedup();
        Ok(names)
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn load(ctx: &Ctx, name: &str) -> Result<UserState, String> {
    let Some(user) = UserName::parse(name) else {
        // A name the store cannot hold has no factors.
        return Ok(UserState::new());
    };
    let store: Store = ctx.store.clone();
    tokio::task::spawn_blocking(move || store.load(&user))
        .await
        .map_err(|e| e.to_string())?
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

fn row(
    cfg: &Config,
    now: u64,
    user: String,
    in_scope: bool,
    rule: &str,
    s: &UserState,
) -> UserReport {
    let st = recovery::status_of(s, &user, &cfg.recovery, now);
    let usable = st.devices > 0 || (st.codes_left > 0 && !st.locked_out);
    // Users without factors: refused, let through, or (until enroll_until)
    // asked to enroll at the login.
    let denied_if_unenrolled = match cfg.policy.unenrolled {
        Unenrolled::Deny => true,
        Unenrolled::Ignore => false,
        Unenrolled::Enroll => cfg.policy.enroll_ends_at().is_none_or(|end| now >= end),
    };
    UserReport {
        user,
        in_scope,
        rule: rule.into(),
        devices: st.devices,
        codes_left: st.codes_left,
        locked_out: st.locked_out,
        last_method: s.last_success.as_ref().map(|l| l.method.clone()),
        last_at: s.last_success.as_ref().map(|l| l.at),
        would_be_locked_out: in_scope && !usable && (denied_if_unenrolled || st.enrolled),
    }
}
