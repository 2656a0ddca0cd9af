//! The channel routes: hosts post, withdraw and collect challenges; devices
//! list (long-poll), answer, and register for Web Push.

use crate::api::{
    LongPoll, MAX_TTL, Relay, Role, WaitQuery, authorize, b64_field, bearer, json_body, wait_for,
};
use crate::errors::{ApiError, ApiResult, err};
use crate::store::{Changed, Collected, Pending, Posted, now_ms};
use crate::wakeups::Topic;
use crate::webpush;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pushmfa_protocol::relay_api::*;
use std::sync::Arc;

pub(crate) async fn delete_channel(
    State(relay): State<Arc<Relay>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    authorize(&relay, &channel, Role::Helper, &token).await?;
    relay.store.delete_channel(&channel).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn post_challenge(
    State(relay): State<Arc<Relay>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    let req: PostChallenge = json_body(&body)?;
    b64_field("id", &req.id, Some(32))?;
    signed_or_sealed(
        [
            ("challenge", &req.challenge, None),
            ("signature", &req.signature, Some(64)),
        ],
        req.sealed.as_deref(),
    )?;
    let expires_in = req.expires_in.clamp(1, MAX_TTL);
    authorize(&relay, &channel, Role::Helper, &token).await?;
    let id = req.id.clone();
    // The smaller sealed size fits a push message in base64 (RFC 8291
    // leaves 3993 bytes); the larger one goes as a plain wake-up.
    let push_sealed = req
        .sealed
        .clone()
        .filter(|s| s.len() <= SEALED_LENS[0].div_ceil(3) * 4);
    let pending = Pending {
        record: PostChallenge { expires_in, ..req },
        expires_ms: now_ms() + expires_in * 1000,
        answered: false,
        refused: None,
        response: None,
    };
    let max = relay.cfg.max_pending_per_channel;
    match relay.store.post_challenge(&channel, pending, max).await? {
        Posted::Stored(push) => {
            if let Some(sub) = push {
                let hint = PushHint {
                    v: 1,
                    channel: channel.clone(),
                    id,
                    sealed: push_sealed,
                };
                tokio::spawn(wake_device(relay.clone(), sub, hint, expires_in));
            }
            Ok(StatusCode::CREATED)
        }
        Posted::NoChannel => Err(err(StatusCode::NOT_FOUND, "no such channel")),
        Posted::Duplicate => Err(err(StatusCode::CONFLICT, "challenge id already used")),
        Posted::Full => Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "too many pending challenges on this channel",
        )),
    }
}

/// Sends the device's push service `hint`; forgets the subscription if the
/// push service says it is gone.
pub(crate) async fn wake_device(
    relay: Arc<Relay>,
    sub: PushSubscription,
    hint: PushHint,
    ttl: u64,
) {
    let channel = hint.channel.clone();
    let Ok(payload) = serde_json::to_vec(&hint) else {
        return;
    };
    let pusher = match relay.pusher().await {
        Ok(p) => p,
        Err(e) => {
            let line = format!("pushmfa-relay: web push to channel {channel:?} skipped: {e:?}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            return;
        }
    };
    match pusher.send(&sub, &payload, ttl).await {
        Ok(()) => {}
        Err(webpush::SendError::Gone) => {
            let _ = relay.store.forget_push(&channel, &sub).await;
        }
        Err(webpush::SendError::Failed(why)) => {
            let line = format!("pushmfa-relay: web push to channel {channel:?} failed: {why}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
}

pub(crate) async fn vapid_key(State(relay): State<Arc<Relay>>) -> ApiResult<Json<VapidKey>> {
    Ok(Json(VapidKey {
        public_key: relay.pusher().await?.public_key(),
    }))
}

/// The device registers (or replaces) its Web Push subscription.
pub(crate) async fn put_push(
    State(relay): State<Arc<Relay>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    let sub: PushSubscription = json_body(&body)?;
    relay
        .pusher()
        .await?
        .check(&sub)
        .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    set_push(&relay, &channel, &token, Some(&sub)).await
}

/// The device wants no more Web Push.
pub(crate) async fn delete_push(
    State(relay): State<Arc<Relay>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    set_push(&relay, &channel, &token, None).await
}

async fn set_push(
    relay: &Relay,
    channel: &str,
    token: &str,
    sub: Option<&PushSubscription>,
) -> ApiResult<StatusCode> {
    authorize(relay, channel, Role::Device, token).await?;
    relay.store.set_push(channel, sub).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The host takes a challenge back (the login ended otherwise: a recovery
/// code, an answer from another device, an aborted conversation), so the
/// device stops offering it.
pub(crate) async fn withdraw_challenge(
    State(relay): State<Arc<Relay>>,
    Path((channel, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    authorize(&relay, &channel, Role::Helper, &token).await?;
    if relay.store.withdraw(&channel, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(err(StatusCode::NOT_FOUND, "no such challenge (expired?)"))
    }
}

/// The device's pending list. With `If-None-Match: <ETag of the last list>`
/// it waits until the list differs from that one (or `wait` ends: 304), so
/// a device that shows a request and polls again does not spin. Without
/// it, it answers at once while anything is pending, else waits for an
/// arrival.
pub(crate) async fn list_challenges(
    State(relay): State<Arc<Relay>>,
    Path(channel): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    let cursor = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    drop(headers); // see LongPoll
    authorize(&relay, &channel, Role::Device, &token).await?;
    let mut poll = LongPoll::start(
        &relay,
        &token,
        Topic::Channel(channel.clone()),
        wait_for(&q),
    );
    let mut over = false;
    loop {
        let view = relay
            .store
            .pending(&channel)
            .await?
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such channel"))?;
        let etag = Relay::etag(&view);
        let changed = match &cursor {
            Some(c) => *c != etag,
            None => !view.challenges.is_empty(),
        };
        if changed || over {
            // After the wait: the list if it changed or no cursor was
            // given (so it is empty), else 304.
            return Ok(if changed || cursor.is_none() {
                pending_list(etag, view.challenges)
            } else {
                (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
            });
        }
        over = !poll.next().await?;
    }
}

fn pending_list(etag: String, challenges: Vec<PendingChallenge>) -> Response {
    ([(header::ETAG, etag)], Json(PendingList { challenges })).into_response()
}

pub(crate) async fn post_response(
    State(relay): State<Arc<Relay>>,
    Path((channel, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    let resp: ChallengeResponse = json_body(&body)?;
    signed_or_sealed(
        [
            ("response", &resp.response, None),
            ("signature", &resp.signature, Some(64)),
        ],
        resp.sealed.as_deref(),
    )?;
    authorize(&relay, &channel, Role::Device, &token).await?;
    match relay.store.answer(&channel, &id, &resp).await? {
        Changed::Done => Ok(StatusCode::NO_CONTENT),
        Changed::NotFound => Err(gone()),
        Changed::Conflict => Err(err(StatusCode::CONFLICT, "challenge already answered")),
    }
}

/// A v1 body (both `fields`, base64url, of their lengths) or a v2 one
/// (`sealed` alone, of a sealed length): never a mix, so a client cannot
/// send a sealed message and its contents in clear beside it.
fn signed_or_sealed(
    fields: [(&str, &String, Option<usize>); 2],
    sealed: Option<&str>,
) -> ApiResult<()> {
    match sealed {
        None => {
            for (name, value, len) in fields {
                b64_field(name, value, len)?;
            }
            Ok(())
        }
        Some(sealed) => {
            if let Some((name, _, _)) = fields.iter().find(|(_, v, _)| !v.is_empty()) {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: not allowed with sealed"),
                ));
            }
            let bytes = b64_field("sealed", sealed, None)?;
            if !SEALED_LENS.contains(&bytes.len()) {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("sealed: must be one of {SEALED_LENS:?} bytes"),
                ));
            }
            Ok(())
        }
    }
}

fn gone() -> ApiError {
    err(StatusCode::NOT_FOUND, "no such challenge (expired?)")
}

/// The helper refused the answer it collected: the challenge is open to
/// answers again, and devices see why the last one was refused.
pub(crate) async fn refuse_answer(
    State(relay): State<Arc<Relay>>,
    Path((channel, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    let refusal: AnswerRefused = json_body(&body)?;
    if refusal.reason.len() > MAX_REFUSAL_LEN {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("reason: at most {MAX_REFUSAL_LEN} bytes"),
        ));
    }
    authorize(&relay, &channel, Role::Helper, &token).await?;
    match relay.store.refuse(&channel, &id, &refusal.reason).await? {
        Changed::Done => Ok(StatusCode::NO_CONTENT),
        Changed::NotFound => Err(gone()),
        Changed::Conflict => Err(err(StatusCode::CONFLICT, "challenge is not answered")),
    }
}

/// The helper collects the answer (long-poll). Delivered once: the
/// challenge stays, answered, until the helper withdraws it (accepted) or
/// refuses the answer (open again).
pub(crate) async fn wait_response(
    State(relay): State<Arc<Relay>>,
    Path((channel, id)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    drop(headers); // see LongPoll
    authorize(&relay, &channel, Role::Helper, &token).await?;
    let mut poll = LongPoll::start(
        &relay,
        &token,
        Topic::Channel(channel.clone()),
        wait_for(&q),
    );
    loop {
        match relay.store.collect(&channel, &id).await? {
            Collected::Answer(r) => return Ok(Json(r).into_response()),
            Collected::NotFound => return Err(gone()),
            Collected::Nothing => {}
        }
        if !poll.next().await? {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}
