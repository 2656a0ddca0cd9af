//! `[policy]`: who needs a second factor (scoping rules), what happens to
//! users without one, when the relay is down, and per-service overrides
//! (`[policy.services.NAME]`). The helper evaluates it; the module stays
//! policy-free.
//!
//! Scoping rules, in the order they are read (the first that matches
//! decides):
//!
//! 1. `exempt_users`: the user is listed -> no second factor;
//! 2. `exempt_groups`: the user is in a listed group -> no second factor;
//! 3. `exempt_networks`: PAM_RHOST is an address inside a listed network ->
//!    no second factor (an unset or non-address PAM_RHOST never matches);
//! 4. `require_groups`: when the list is not empty, a user in none of them
//!    -> no second factor;
//! 5. everyone else needs the second factor (the default).
//!
//! "No second factor" is PAM_IGNORE: the rest of the PAM stack decides.

use crate::PushMode;
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unenrolled {
    #[default]
    Deny,
    Ignore,
    /// Show the enrollment QR code in the login itself (a rollout), until
    /// `enroll_until`; then as `deny`.
    Enroll,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Only members of these groups need the second factor (empty: all).
    pub require_groups: Vec<String>,
    /// Never asked for a second factor (break-glass accounts).
    pub exempt_users: Vec<String>,
    /// Members are never asked for a second factor.
    pub exempt_groups: Vec<String>,
    /// CIDRs: logins whose PAM_RHOST is inside one are not asked.
    pub exempt_networks: Vec<String>,
    pub unenrolled: Unenrolled,
    /// `unenrolled = "enroll"` works through this day (UTC, "YYYY-MM-DD"),
    /// then acts as "deny". Required with "enroll".
    pub enroll_until: String,
    /// With `unenrolled = "enroll"`, a one-time invitation from
    /// `pushmfa invite` must be typed first.
    pub enroll_invitation: bool,
    pub failmode: FailMode,
    /// Offline approval (a code from the phone for a challenge shown as a
    /// QR code), unless a service's own table says otherwise.
    pub offline: Offline,
    /// `[policy.services.NAME]`: settings for one PAM service, overriding
    /// the ones above.
    pub services: BTreeMap<String, ServicePolicy>,
}

/// What `[policy.services.NAME]` may override for that PAM service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServicePolicy {
    /// How the push step is shown (else `push.modes`, else by PAM_RHOST).
    pub mode: Option<PushMode>,
    pub unenrolled: Option<Unenrolled>,
    pub failmode: Option<FailMode>,
    pub offline: Option<Offline>,
}

/// Which scoping rule decided, and whether a second factor is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub required: bool,
    /// The rule, for logs and `pushmfa policy explain`: `exempt_users`,
    /// `exempt_groups`, `exempt_networks`, `require_groups` or `default`.
    pub rule: &'static str,
    /// What matched, in words.
    pub why: String,
}

impl Policy {
    fn service(&self, service: &str) -> Option<&ServicePolicy> {
        self.services.get(service)
    }

    /// Whether offline approval may be used for `service`.
    pub fn offline_for(&self, service: &str) -> Offline {
        self.service(service)
            .and_then(|s| s.offline)
            .unwrap_or(self.offline)
    }

    pub fn unenrolled_for(&self, service: &str) -> Unenrolled {
        self.service(service)
            .and_then(|s| s.unenrolled)
            .unwrap_or(self.unenrolled)
    }

    pub fn failmode_for(&self, service: &str) -> FailMode {
        self.service(service)
            .and_then(|s| s.failmode)
            .unwrap_or(self.failmode)
    }

    /// The push mode `[policy.services.NAME]` sets for `service`, if any.
    pub fn mode_for(&self, service: &str) -> Option<PushMode> {
        self.service(service).and_then(|s| s.mode)
    }

    /// Whether `unenrolled = "enroll"` is set anywhere.
    pub fn enroll_anywhere(&self) -> bool {
        self.unenrolled == Unenrolled::Enroll
            || self
                .services
                .values()
                .any(|s| s.unenrolled == Some(Unenrolled::Enroll))
    }

    /// The first Unix second at which first-login enrollment is over (the
    /// day after `enroll_until`, 00:00 UTC); None when unset or malformed.
    pub fn enroll_ends_at(&self) -> Option<u64> {
        parse_day(&self.enroll_until).map(|days| (days + 1) * 86_400)
    }

    /// Whether `failmode = "safe"` applies anywhere (top level or a service).
    pub fn failmode_anywhere_safe(&self) -> bool {
        self.failmode == FailMode::Safe
            || self
                .services
                .values()
                .any(|s| s.failmode == Some(FailMode::Safe))
    }

    /// Whether any rule needs the user's groups (an NSS lookup).
    pub fn uses_groups(&self) -> bool {
        !self.require_groups.is_empty() || !self.exempt_groups.is_empty()
    }

    /// The scoping rules applied to one login: `groups` are the user's
    /// group names (primary and supplementary), `rhost` is PAM_RHOST.
    pub fn scope(&self, user: &str, groups: &[String], rhost: Option<&str>) -> Scope {
        let exempt = |rule, why| Scope {
            required: false,
            rule,
            why,
        };
        if self.exempt_users.iter().any(|u| u == user) {
            return exempt("exempt_users", format!("user {user} is listed"));
        }
        if let Some(g) = self.exempt_groups.iter().find(|g| groups.contains(g)) {
            return exempt("exempt_groups", format!("user {user} is in group {g}"));
        }
        let addr = rhost.and_then(|r| r.parse::<IpAddr>().ok());
        // Parsed as they are read: no list is built for a login.
        let inside =
            |n: &&String| parse_network(n).is_ok_and(|net| addr.is_some_and(|a| net.contains(&a)));
        if let Some(net) = self.exempt_networks.iter().find(inside) {
            let addr = addr.map(|a| a.to_string()).unwrap_or_default();
            return exempt("exempt_networks", format!("{addr} is inside {net}"));
        }
        if !self.require_groups.is_empty() {
            return match self.require_groups.iter().find(|g| groups.contains(g)) {
                Some(g) => Scope {
                    required: true,
                    rule: "require_groups",
                    why: format!("user {user} is in group {g}"),
                },
                None => exempt(
                    "require_groups",
                    format!(
                        "user {user} is in none of {}",
                        self.require_groups.join(", ")
                    ),
                ),
            };
        }
        Scope {
            required: true,
            rule: "default",
            why: "no rule exempts this login".into(),
        }
    }
}

/// A network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`). A bare address
/// is refused: write `/32` or `/128` to mean one host.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("{text:?} is not a network in CIDR form (like 10.0.0.0/8)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Days since 1970-01-01 of a "YYYY-MM-DD" date (proleptic Gregorian).
pub fn parse_day(text: &str) -> Option<u64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || d < 1
        || d > month_days[(m - 1) as usize]
    {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).ok()
}

/// Whether a login may be approved with an offline code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Offline {
    #[default]
    Allow,
    Deny,
}

/// What happens when the push backend cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Fall back to the recovery-code prompt.
    #[default]
    Secure,
    /// Let the login through, with a loud log line.
    Safe,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            require_groups: vec!["admins".into(), "ops".into()],
            exempt_users: vec!["breakglass".into()],
            exempt_groups: vec!["robots".into()],
            exempt_networks: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            ..Policy::default()
        }
    }

    fn groups(g: &[&str]) -> Vec<String> {
        g.iter().map(|s| s.to_string()).collect()
    }

    /// user, groups, PAM_RHOST, required, rule.
    type Case<'a> = (&'a str, &'a [&'a str], Option<&'a str>, bool, &'a str);

    #[test]
    fn rules_are_read_in_order_and_the_first_match_decides() {
        let p = policy();
        let cases: &[Case] = &[
            // An exempt user is exempt even when in a required group.
            ("breakglass", &["admins"], None, false, "exempt_users"),
            ("bot", &["robots", "admins"], None, false, "exempt_groups"),
            (
                "alice",
                &["admins"],
                Some("10.1.2.3"),
                false,
                "exempt_networks",
            ),
            (
                "alice",
                &["admins"],
                Some("2001:db8::7"),
                false,
                "exempt_networks",
            ),
            (
                "alice",
                &["admins"],
                Some("192.0.2.1"),
                true,
                "require_groups",
            ),
            ("alice", &["admins"], None, true, "require_groups"),
            ("bob", &["users"], None, false, "require_groups"),
            // Unset, a name, or garbage never matches a network.
            (
                "alice",
                &["ops"],
                Some("host.10.0.0.1.example"),
                true,
                "require_groups",
            ),
            ("alice", &["ops"], Some(""), true, "require_groups"),
        ];
        for (user, g, rhost, required, rule) in cases {
            let s = p.scope(user, &groups(g), *rhost);
            assert_eq!(
                (s.required, s.rule),
                (*required, *rule),
                "{user} {g:?} {rhost:?}: {s:?}"
            );
        }
        let everyone = Policy::default().scope("carol", &[], Some("10.1.2.3"));
        assert_eq!((everyone.required, everyone.rule), (true, "default"));
    }

    #[test]
    fn networks_must_be_cidrs_without_host_bits() {
        assert!(parse_network("10.0.0.0/8").is_ok());
        assert!(parse_network("2001:db8::/32").is_ok());
        assert!(parse_network("10.1.2.3").unwrap_err().contains("CIDR"));
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(
            parse_network("10.1.0.0/8")
                .unwrap_err()
                .contains("10.0.0.0/8")
        );
        assert!(parse_network("garbage").is_err());
    }

    #[test]
    fn days_parse_and_end_at_the_next_midnight_utc() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2000-03-01"), Some(11_017));
        assert_eq!(parse_day("2026-12-03"), Some(20_790));
        assert_eq!(parse_day("2024-02-29"), Some(19_782));
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "2026-01-01x",
            "",
            "2026/01/01",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        let p = Policy {
            enroll_until: "2026-12-03".into(),
            ..Policy::default()
        };
        assert_eq!(p.enroll_ends_at(), Some(20_791 * 86_400));
    }

    #[test]
    fn a_service_table_overrides_only_what_it_sets() {
        let mut p = Policy::default();
        p.services.insert(
            "sshd".into(),
            ServicePolicy {
                failmode: Some(FailMode::Safe),
                ..ServicePolicy::default()
            },
        );
        assert_eq!(p.failmode_for("sshd"), FailMode::Safe);
        assert_eq!(p.failmode_for("sudo"), FailMode::Secure);
        assert_eq!(p.unenrolled_for("sshd"), Unenrolled::Deny);
        assert_eq!(p.mode_for("sshd"), None);
    }
}
