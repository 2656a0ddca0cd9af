//! Which of the user's enrolled devices a login may ask.

use super::conversation::Conversation;
use crate::log::Q;
use pushmfa_state::Device;
use std::borrow::Cow;

/// The user's devices this login may ask: all of them, except those older
/// than `push.min_protocol` (their requests would cross the relay
/// readable) and, where the service requires user verification, those
/// without a passkey. Skipped ones are logged, never shown at the prompt.
/// Borrowed when none is skipped, the usual case: nothing is copied.
pub(super) fn askable<'a>(
    conv: &Conversation<'_>,
    devices: &'a [Device],
    needs_uv: bool,
) -> Cow<'a, [Device]> {
    let cfg = &conv.ctx.cfg.push;
    let too_old = |d: &Device| d.protocol() < cfg.min_protocol;
    let unverifiable = |d: &Device| !too_old(d) && needs_uv && d.passkey.is_none();
    if !devices.iter().any(|d| too_old(d) || unverifiable(d)) {
        return Cow::Borrowed(devices);
    }
    let names = |skip: &dyn Fn(&Device) -> bool| {
        let names: Vec<String> = devices
            .iter()
            .filter(|d| skip(d))
            .map(|d| Q(&d.name).to_string())
            .collect();
        names.join(", ")
    };
    let (user, service) = (Q(&conv.begin.user), Q(&conv.begin.service));
    if devices.iter().any(too_old) {
        conv.ctx.log.warning(&format!(
            "push skips protocol 1 device(s) of user={user}: {} (push.min_protocol = {}; enroll them again with a current app)",
            names(&too_old),
            cfg.min_protocol
        ));
    }
    if devices.iter().any(unverifiable) {
        conv.ctx.log.warning(&format!(
            "push skips device(s) without a passkey of user={user} service={service}: {} (user verification is required; enroll the web app with a screen lock)",
            names(&unverifiable),
        ));
    }
    Cow::Owned(
        devices
            .iter()
            .filter(|d| !too_old(d) && !unverifiable(d))
            .cloned()
            .collect(),
    )
}
