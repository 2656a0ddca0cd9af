//! `pam_pushmfa.so`: the PAM side of pushmfa.
//!
//! The module only relays: it reads the PAM items, asks the privileged helper
//! over its Unix socket what to show, shows it, sends back the answers and
//! maps the helper's verdict to a PAM code. It has no network, no threads,
//! no secrets and no policy; every error path returns a non-success code.
//!
//! ```text
//! auth  required  pam_pushmfa.so [socket=/run/pushmfa/helper.sock] [timeout=10] [debug]
//! ```
//!
//! `pam_sm_acct_mgmt`, the session hooks and `pam_sm_chauthtok` return
//! `PAM_IGNORE`: pushmfa makes no account, session or password decision, so
//! it must not sway those stacks either way. `pam_sm_setcred` returns
//! `PAM_SUCCESS` because there are no credentials to set.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

pub mod args;
pub mod core;
mod log;
mod pam_conv;

use crate::args::ModuleArgs;
use crate::core::{LoginItems, ModuleCode};
use pam::constants::{PAM_SILENT, PamFlag, PamResultCode};
use pam::items::{RHost, RUser, Service, Tty};
use pam::module::{PamHandle, PamHooks};
use std::ffi::CStr;
use std::os::unix::net::UnixStream;

/// PAM handle data: a device denied an earlier attempt in this transaction.
const DENIED_KEY: &str = "pushmfa_denied_on_device";

struct PushMfa;
pam::pam_hooks!(PushMfa);

impl PamHooks for PushMfa {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        to_pam(authenticate(pamh, &args, flags))
    }

    fn sm_setcred(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }
}

fn item_string<'a, T: pam::items::Item<'a> + std::ops::Deref<Target = &'a CStr>>(
    pamh: &'a PamHandle,
) -> Option<String> {
    match pamh.get_item::<T>() {
        Ok(Some(v)) => Some(v.to_string_lossy().into_owned()),
        _ => None,
    }
}

fn authenticate(pamh: &mut PamHandle, args: &[&CStr], flags: PamFlag) -> ModuleCode {
    let opts = match ModuleArgs::parse(args) {
        Ok(o) => o,
        Err(e) => {
            log::error(&format!("configuration error in the PAM stack: {e}"));
            return ModuleCode::ServiceErr;
        }
    };
    // get_user needs &mut and may prompt: call it before borrowing items.
    let user = match pamh.get_user(None) {
        Ok(u) if !u.is_empty() => u,
        _ => {
            log::error("no user name available (PAM_USER)");
            return ModuleCode::UserUnknown;
        }
    };
    let items = LoginItems {
        user,
        service: item_string::<Service>(pamh).unwrap_or_default(),
        rhost: item_string::<RHost>(pamh).filter(|s| !s.is_empty()),
        tty: item_string::<Tty>(pamh).filter(|s| !s.is_empty()),
        ruser: item_string::<RUser>(pamh).filter(|s| !s.is_empty()),
        silent: flags & PAM_SILENT != 0,
        // SAFETY: this key is only ever set below, always to a Box<bool>.
        after_denial: unsafe { pamh.get_data::<bool>(DENIED_KEY) }.is_ok_and(|b| *b),
    };
    let conv = match pamh.get_item::<pam::conv::Conv>() {
        Ok(Some(c)) => c,
        _ => {
            log::error("the application provided no conversation function");
            return ModuleCode::ConvErr;
        }
    };
    let mut io = pam_conv::PamConversation {
        conv: &conv,
        silent: flags & PAM_SILENT != 0,
    };
    let stream = match UnixStream::connect(&opts.socket) {
        Ok(s) => s,
        Err(e) => {
            log::error(&format!(
                "cannot reach the pushmfa helper at {}: {e} (is pushmfa-helper running?)",
                opts.socket.display()
            ));
            return ModuleCode::AuthinfoUnavail;
        }
    };
    let (code, detail, denied_on_device) =
        core::run_login(&mut io, core::HelperStream::new(stream), &items, &opts);
    if denied_on_device {
        // Retries in this PAM transaction (sudo retries up to three times)
        // must not push again; the helper decides, told by Begin.after_denial.
        let _ = pamh.set_data(DENIED_KEY, Box::new(true));
    }
    let line = format!(
        "user={} service={} rhost={} result={code:?}{}",
        items.user,
        items.service,
        items.rhost.as_deref().unwrap_or("-"),
        detail.map(|d| format!(" ({d})")).unwrap_or_default()
    );
    if code == ModuleCode::Success || code == ModuleCode::AuthErr || code == ModuleCode::MaxTries {
        if opts.debug {
            log::info(&line);
        }
    } else {
        log::error(&line);
    }
    code
}

fn to_pam(code: ModuleCode) -> PamResultCode {
    match code {
        ModuleCode::Success => PamResultCode::PAM_SUCCESS,
        ModuleCode::AuthErr => PamResultCode::PAM_AUTH_ERR,
        ModuleCode::MaxTries => PamResultCode::PAM_MAXTRIES,
        ModuleCode::Ignore => PamResultCode::PAM_IGNORE,
        ModuleCode::AuthinfoUnavail => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        ModuleCode::SystemErr => PamResultCode::PAM_SYSTEM_ERR,
        ModuleCode::ServiceErr => PamResultCode::PAM_SERVICE_ERR,
        ModuleCode::ConvErr => PamResultCode::PAM_CONV_ERR,
        ModuleCode::PermDenied => PamResultCode::PAM_PERM_DENIED,
        ModuleCode::UserUnknown => PamResultCode::PAM_USER_UNKNOWN,
    }
}
