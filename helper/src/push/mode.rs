//! How a login's push step is shown: a prompt with the number, or an info
//! line with the number and a wait.

use pushmfa_config::{Config, PushMode};
use std::collections::BTreeMap;

/// `prompt` for a service configured so, or when there is a remote host
/// (OpenSSH shows info text only with the next prompt); `wait` otherwise.
pub fn mode_for(modes: &BTreeMap<String, PushMode>, service: &str, remote: bool) -> PushMode {
    match modes.get(service) {
        Some(m) => *m,
        None if remote => PushMode::Prompt,
        None => PushMode::Wait,
    }
}

/// Always a prompt under PAM_SILENT (an info line would never be seen),
/// else `[policy.services.NAME] mode`, else `[push.modes]` and PAM_RHOST.
pub fn effective_mode(cfg: &Config, service: &str, remote: bool, silent: bool) -> PushMode {
    if silent {
        return PushMode::Prompt;
    }
    cfg.policy
        .mode_for(service)
        .unwrap_or_else(|| mode_for(&cfg.push.modes, service, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_default_by_remote_host() {
        let mut m = BTreeMap::new();
        assert_eq!(mode_for(&m, "sshd", true), PushMode::Prompt);
        assert_eq!(mode_for(&m, "sudo", false), PushMode::Wait);
        m.insert("sudo".into(), PushMode::Prompt);
        assert_eq!(mode_for(&m, "sudo", false), PushMode::Prompt);
    }

    #[test]
    fn a_service_table_sets_the_mode_and_pam_silent_always_prompts() {
        let mut cfg = Config::default();
        cfg.push.modes.insert("sudo".into(), PushMode::Prompt);
        cfg.policy.services.insert(
            "sudo".into(),
            pushmfa_config::ServicePolicy {
                mode: Some(PushMode::Wait),
                ..Default::default()
            },
        );
        assert_eq!(effective_mode(&cfg, "sudo", false, false), PushMode::Wait);
        assert_eq!(effective_mode(&cfg, "sudo", false, true), PushMode::Prompt);
        assert_eq!(effective_mode(&cfg, "sshd", true, false), PushMode::Prompt);
    }
}
