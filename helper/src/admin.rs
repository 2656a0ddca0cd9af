//! Administrative calls from the `pushmfa` CLI.
//!
//! Root and the helper's own user may act on any user. Anyone else acts on
//! themself only, and replacing existing recovery codes needs one of them
//! (so a borrowed, unlocked terminal cannot silently re-enroll a user).

use crate::conn::Conn;
use crate::peer::{self, Peer};
use crate::recovery::{self, Attempt, RecoveryError};
use crate::server::Ctx;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, DeviceInfo, Proof, Response};
use pushmfa_state::UserName;
use pushmfa_state::{Device, UserState};
use zeroize::Zeroizing;

pub async fn run(ctx: &Ctx, conn: &mut Conn, peer: Peer, req: AdminRequest) {
    let result = match req {
        // Enrollment answers twice on this connection: the URI, then the result.
        AdminRequest::Enroll { user, proof } => {
            crate::enroll::run(ctx, conn, peer, user, proof).await
        }
        other => handle(ctx, conn, peer, other).await,
    };
    let response = match result {
        Ok(reply) => Response::AdminReply(reply),
        Err(message) => Response::Refused { message },
    };
    let _ = conn.send(&response).await;
}

async fn handle(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    req: AdminRequest,
) -> Result<AdminReply, String> {
    match req {
        AdminRequest::Ping => Ok(AdminReply::Pong {
            version: env!("CARGO_PKG_VERSION").into(),
            helper_uid: ctx.helper_uid,
        }),
        AdminRequest::Status { user } => status(ctx, peer, user).await,
        AdminRequest::RecoveryGenerate { user, proof } => {
            generate(ctx, conn, peer, user, proof).await
        }
        AdminRequest::Unlock { user } => unlock(ctx, peer, user).await,
        AdminRequest::Devices { user } => devices(ctx, peer, user).await,
        AdminRequest::DeviceRemove {
            user,
            device,
            proof,
        } => remove_device(ctx, conn, peer, user, device, proof).await,
        AdminRequest::DeviceRename { user, device, name } => {
            rename_device(ctx, peer, user, device, name).await
        }
        AdminRequest::Reset { user } => reset(ctx, peer, user).await,
        AdminRequest::Enroll { .. } => Err("enrollment is handled on its own connection".into()),
    }
}

/// The user an admin call acts on: the named one (admins, or the caller
/// naming themself) or the caller.
pub(crate) async fn target(
    ctx: &Ctx,
    peer: Peer,
    requested: Option<String>,
) -> Result<UserName, String> {
    let uid = peer.uid;
    let caller = tokio::task::spawn_blocking(move || peer::name_of(uid))
        .await
        .map_err(|e| e.to_string())?;
    let name = match (requested, caller) {
        (Some(u), Some(me)) if u == me => u,
        (Some(u), _) if peer.is_admin(ctx.helper_uid) => u,
        (Some(u), _) => {
            ctx.log.warning(&format!(
                "refused: uid {uid} asked to manage user {u}; only root may manage other users"
            ));
            return Err(format!("only root may manage user {u}"));
        }
        (None, Some(me)) => me,
        (None, None) => return Err(format!("uid {uid} has no user name; pass --user")),
    };
    UserName::parse(&name).ok_or_else(|| format!("user name {name:?} is not supported"))
}

/// The user a root-only request names (reset, unlock).
fn admin_target(ctx: &Ctx, peer: Peer, user: &str, what: &str) -> Result<UserName, String> {
    if !peer.is_admin(ctx.helper_uid) {
        return Err(format!("only root may {what} a user"));
    }
    UserName::parse(user).ok_or_else(|| format!("user name {user:?} is not supported"))
}

fn store_err(ctx: &Ctx, what: &str, e: RecoveryError) -> String {
    ctx.log.error(&format!("{what}: {e}"));
    format!("{what} failed: {e}")
}

async fn status(ctx: &Ctx, peer: Peer, user: Option<String>) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let (store, cfg, now) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
    );
    let st = tokio::task::spawn_blocking(move || recovery::status(&store, &user, &cfg, now))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| store_err(ctx, "status", e))?;
    Ok(AdminReply::Status(st))
}

/// A non-admin caller who is already enrolled must prove it is them before
/// changing their factors: with one of their recovery codes (used up), or
/// by approving `action` on one of their enrolled devices.
pub(crate) async fn require_proof(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    user: &UserName,
    proof: Option<Proof>,
    action: &str,
) -> Result<(), String> {
    if peer.is_admin(ctx.helper_uid) {
        return Ok(());
    }
    let verdict = match proof {
        Some(Proof::Device) => prove_on_device(ctx, conn, user, action).await,
        other => prove_with_code(ctx, user, other).await,
    };
    if let Err(msg) = &verdict {
        ctx.log.warning(&format!(
            "refused change for user={user} by_uid={}: {msg}",
            peer.uid
        ));
    }
    verdict
}

async fn prove_with_code(ctx: &Ctx, user: &UserName, proof: Option<Proof>) -> Result<(), String> {
    let (store, cfg, now, u) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
        user.clone(),
    );
    let job =
        move |scratch: &mut crate::codes::Scratch| -> Result<Result<(), String>, RecoveryError> {
            if !store.load(&u)?.is_some_and(|s| s.enrolled()) {
                return Ok(Ok(()));
            }
            let Some(Proof::Code { code: proof }) = proof else {
                return Ok(Err(
                "you are already enrolled: give one of your recovery codes or approve on your phone (the CLI asks)".into(),
            ));
            };
            let Ok(code) = crate::codes::normalize(&proof) else {
                return Ok(Err("that is not a recovery code".into()));
            };
            Ok(
                match recovery::attempt(&store, Some(&u), &code, &cfg, now, scratch)? {
                    Attempt::Accepted { .. } => Ok(()),
                    Attempt::Backoff { retry_after } => {
                        Err(format!("too many wrong codes: wait {retry_after} s"))
                    }
                    Attempt::LockedOut => {
                        Err("recovery codes are locked; ask an administrator".into())
                    }
                    Attempt::Wrong | Attempt::NotEnrolled => {
                        Err("that recovery code is not valid".into())
                    }
                },
            )
        };
    ctx.hashers
        .run(job)
        .await?
        .map_err(|e| store_err(ctx, "proof", e))?
}

/// Sends a signed challenge about `action` to the user's devices, tells the
/// CLI the number, and waits for a verified approval.
async fn prove_on_device(
    ctx: &Ctx,
    conn: &mut Conn,
    user: &UserName,
    action: &str,
) -> Result<(), String> {
    use crate::push_login::{Waited, await_answer, field, issue, post_everywhere};
    use pushmfa_protocol::signed::Decision;
    let (store, u) = (ctx.store.clone(), user.clone());
    let state = tokio::task::spawn_blocking(move || store.load(&u))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .unwrap_or_else(UserState::new);
    if state.devices.is_empty() {
        return Err("you have no enrolled device: give one of your recovery codes instead".into());
    }
    let service = format!("pushmfa: {action}");
    let context = pushmfa_protocol::signed::Context {
        user: field(Some(user.as_str())),
        service: field(Some(&service)),
        rhost: String::new(),
        tty: String::new(),
    };
    let ttl = ctx.cfg.push.ttl_secs;
    let mut issued = issue(ctx, context, ttl)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let mut pollers = tokio::task::JoinSet::new();
    post_everywhere(ctx, &issued, &state.devices, &tx, &mut pollers)
        .await
        .map_err(|e| format!("cannot reach your devices ({e}); use a recovery code"))?;
    drop(tx);
    conn.send(&Response::AdminReply(AdminReply::ApproveOnDevice {
        number: issued.number,
        expires_in: u64::from(ttl),
    }))
    .await
    .map_err(|e| e.to_string())?;
    let waited = await_answer(
        ctx,
        &mut issued,
        &state.devices,
        &mut rx,
        user.as_str(),
        &service,
    )
    .await;
    pollers.abort_all();
    match waited {
        Waited::Accepted(Decision::Approve, device) => {
            ctx.log.info(&format!(
                "user={user} approved \"{action}\" on device={device}"
            ));
            Ok(())
        }
        Waited::Accepted(Decision::Fraud, device) => {
            ctx.log.error(&format!(
                "FRAUD REPORTED user={user} for \"{action}\" on device={device}"
            ));
            Err("reported as not you on your device".into())
        }
        Waited::Accepted(Decision::Deny, _) => Err("denied on your device".into()),
        Waited::WrongNumber(_) => Err("the number entered on the device did not match".into()),
        Waited::TimedOut | Waited::Typed(_) => Err("no approval from your device in time".into()),
    }
}

async fn generate(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    user: Option<String>,
    proof: Option<Proof>,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    require_proof(ctx, conn, peer, &user, proof, "replace recovery codes").await?;
    let codes = generate_codes(ctx, &user).await?;
    ctx.log.info(&format!(
        "recovery codes generated user={user} count={} by_uid={}",
        codes.len(),
        peer.uid
    ));
    Ok(AdminReply::RecoveryCodes {
        user: user.to_string(),
        codes,
    })
}

pub(crate) async fn generate_codes(
    ctx: &Ctx,
    user: &UserName,
) -> Result<Vec<Zeroizing<String>>, String> {
    let (store, cfg, now, u) = (
        ctx.store.clone(),
        ctx.cfg.recovery.clone(),
        ctx.clock.now_unix(),
        user.clone(),
    );
    ctx.hashers
        .run(move |scratch| recovery::generate(&store, &u, &cfg, now, scratch))
        .await?
        .map_err(|e| store_err(ctx, "recovery generate", e))
}

/// Runs `f` on the user's state under their lock and saves the result.
pub(crate) async fn with_state<T: Send + 'static>(
    ctx: &Ctx,
    user: &UserName,
    f: impl FnOnce(&mut UserState) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (store, u) = (ctx.store.clone(), user.clone());
    tokio::task::spawn_blocking(move || {
        let lock = store.lock(&u).map_err(|e| e.to_string())?;
        let mut state = store
            .load(&u)
            .map_err(|e| e.to_string())?
            .unwrap_or_else(UserState::new);
        let out = f(&mut state)?;
        store.save(&lock, &u, &state).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn devices(ctx: &Ctx, peer: Peer, user: Option<String>) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let (store, u) = (ctx.store.clone(), user.clone());
    let state = tokio::task::spawn_blocking(move || store.load(&u))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .unwrap_or_else(UserState::new);
    Ok(AdminReply::DeviceList {
        user: user.to_string(),
        devices: state
            .devices
            .iter()
            .map(|d| DeviceInfo {
                id: d.id.clone(),
                name: d.name.clone(),
                added_at: d.added_at,
            })
            .collect(),
    })
}

fn find_device(devices: &[Device], which: &str) -> Result<usize, String> {
    let hits: Vec<usize> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.name == which || (which.len() >= 4 && d.id.starts_with(which)))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!("no device {which:?} (see pushmfa devices list)")),
        _ => Err(format!("{which:?} matches several devices: use its id")),
    }
}

async fn remove_device(
    ctx: &Ctx,
    conn: &mut Conn,
    peer: Peer,
    user: Option<String>,
    device: String,
    proof: Option<Proof>,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    require_proof(ctx, conn, peer, &user, proof, "remove a device").await?;
    let removed = with_state(ctx, &user, move |s| {
        let i = find_device(&s.devices, &device)?;
        Ok(s.devices.remove(i))
    })
    .await?;
    if let Some(relay) = &ctx.relay {
        if let Err(e) = relay
            .delete_channel(&removed.channel_id, &removed.channel_token)
            .await
        {
            ctx.log.warning(&format!(
                "device removed, but its relay channel was not: {e}"
            ));
        }
    }
    ctx.log.info(&format!(
        "device removed user={user} device={} by_uid={}",
        removed.name, peer.uid
    ));
    Ok(AdminReply::Done {
        message: format!("removed device {} ({})", removed.name, removed.id),
    })
}

async fn rename_device(
    ctx: &Ctx,
    peer: Peer,
    user: Option<String>,
    device: String,
    name: String,
) -> Result<AdminReply, String> {
    let user = target(ctx, peer, user).await?;
    let name = pushmfa_protocol::text::sanitize(name.trim(), false);
    if name.is_empty() || name.len() > 64 {
        return Err("a device name has 1 to 64 characters".into());
    }
    let new = name.clone();
    let old = with_state(ctx, &user, move |s| {
        let i = find_device(&s.devices, &device)?;
        Ok(std::mem::replace(&mut s.devices[i].name, new))
    })
    .await?;
    ctx.log.info(&format!(
        "device renamed user={user} {old} -> {name} by_uid={}",
        peer.uid
    ));
    Ok(AdminReply::Done {
        message: format!("renamed {old} to {name}"),
    })
}

async fn reset(ctx: &Ctx, peer: Peer, user: String) -> Result<AdminReply, String> {
    let user = admin_target(ctx, peer, &user, "reset")?;
    let (store, u) = (ctx.store.clone(), user.clone());
    let devices = tokio::task::spawn_blocking(move || -> Result<Vec<Device>, String> {
        let lock = store.lock(&u).map_err(|e| e.to_string())?;
        let devices = store
            .load(&u)
            .ok()
            .flatten()
            .map(|s| s.devices)
            .unwrap_or_default();
        store.remove(&lock, &u).map_err(|e| e.to_string())?;
        Ok(devices)
    })
    .await
    .map_err(|e| e.to_string())??;
    if let Some(relay) = &ctx.relay {
        for d in &devices {
            let _ = relay.delete_channel(&d.channel_id, &d.channel_token).await;
        }
    }
    ctx.log.info(&format!(
        "reset user={user} devices={} by_uid={}",
        devices.len(),
        peer.uid
    ));
    Ok(AdminReply::Done {
        message: format!(
            "{user}: removed {} device(s) and all recovery codes",
            devices.len()
        ),
    })
}

async fn unlock(ctx: &Ctx, peer: Peer, user: String) -> Result<AdminReply, String> {
    let user = admin_target(ctx, peer, &user, "unlock")?;
    let (store, u) = (ctx.store.clone(), user.clone());
    let had_state = tokio::task::spawn_blocking(move || recovery::unlock(&store, &u))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| store_err(ctx, "unlock", e))?;
    ctx.log
        .info(&format!("unlock user={user} by_uid={}", peer.uid));
    Ok(AdminReply::Done {
        message: if had_state {
            format!("{user}: failure counter cleared")
        } else {
            format!("{user}: not enrolled, nothing to unlock")
        },
    })
}
