//! Whether a login needs the second factor (`[policy]` scoping rules, in
//! pushmfa_config::policy), with the user's groups looked up in NSS only
//! when a rule needs them. Shared by logins and `pushmfa policy explain`,
//! so the two cannot disagree.

use crate::ctx::Ctx;
use crate::groups;
use pushmfa_config::policy::Scope;

/// What the rules say about one login, with the groups they saw.
pub struct Decided {
    pub scope: Scope,
    /// None when no rule needed them (not looked up).
    pub groups: Option<Vec<String>>,
}

/// The scoping rules for `user` logging in from `rhost`. When a rule needs
/// groups and NSS cannot give them (an error, or a user it does not know),
/// the login needs the second factor: a failed lookup never exempts anyone.
pub async fn decide(ctx: &Ctx, user: &str, rhost: Option<&str>) -> Decided {
    let policy = &ctx.cfg.policy;
    let groups = if policy.uses_groups() {
        let u = user.to_owned();
        let looked_up = tokio::task::spawn_blocking(move || groups::groups_of(&u))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match looked_up {
            Ok(g) => Some(g),
            Err(e) => {
                return Decided {
                    scope: Scope {
                        required: true,
                        rule: "nss_lookup",
                        why: format!(
                            "the groups of {user} could not be looked up ({e}): the second factor is required"
                        ),
                    },
                    groups: None,
                };
            }
        }
    } else {
        None
    };
    let scope = policy.scope(user, groups.as_deref().unwrap_or_default(), rhost);
    Decided { scope, groups }
}
