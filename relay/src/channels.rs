//! The channel routes: hosts post, withdraw and collect challenges; devices
//! list (long-poll), answer, and register for Web Push.

use crate::webpush;
use crate::{
    ApiResult, Channel, Inner, Pending, Relay, Role, WaitQuery, authorize, b64_field, bearer,
    enrollments, err, json_body, wait_for,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pushmfa_protocol::relay_api::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) async fn delete_channel(
    State(relay): State<Arc<Relay>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    let mut inner = relay.lock()?;
    authorize(&relay, &inner, &channel, Role::Helper, &token)?;
    inner.channels.remove(&channel);
    relay.persist(&inner)?;
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
    b64_field("challenge", &req.challenge, None)?;
    b64_field("signature", &req.signature, Some(64))?;
    let expires_in = req.expires_in.clamp(1, enrollments::MAX_TTL);
    let mut inner = relay.lock()?;
    authorize(&relay, &inner, &channel, Role::Helper, &token)?;
    let max = relay.cfg.max_pending_per_channel;
    let Some(ch) = inner.channels.get_mut(&channel) else {
        return Err(err(StatusCode::NOT_FOUND, "no such channel"));
    };
    let now = Instant::now();
    ch.pending.retain(|_, p| p.expires > now);
    if ch.pending.contains_key(&req.id) {
        return Err(err(StatusCode::CONFLICT, "challenge id already used"));
    }
    // Answered challenges wait only for the helper to collect them.
    if ch.pending.values().filter(|p| !p.answered).count() >= max {
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "too many pending challenges on this channel",
        ));
    }
    let wake = ch.push.clone().map(|sub| (sub, req.id.clone()));
    ch.pending.insert(
        req.id.clone(),
        Pending {
            record: PostChallenge { expires_in, ..req },
            expires: now + Duration::from_secs(expires_in),
            answered: false,
            refused: None,
            response: watch::channel(None).0,
        },
    );
    ch.changes.send_modify(|n| *n += 1);
    drop(inner);
    if let Some((sub, id)) = wake {
        tokio::spawn(wake_device(relay.clone(), channel, sub, id, expires_in));
    }
    Ok(StatusCode::CREATED)
}

/// Sends the device's push service a wake-up for challenge `id`; forgets
/// the subscription if the push service says it is gone.
pub(crate) async fn wake_device(
    relay: Arc<Relay>,
    channel: String,
    sub: PushSubscription,
    id: String,
    ttl: u64,
) {
    let hint = PushHint {
        v: 1,
        channel: channel.clone(),
        id,
    };
    let Ok(payload) = serde_json::to_vec(&hint) else {
        return;
    };
    match relay.pusher.send(&sub, &payload, ttl).await {
        Ok(()) => {}
        Err(webpush::SendError::Gone) => {
            if let Ok(mut inner) = relay.lock() {
                if let Some(ch) = inner.channels.get_mut(&channel) {
                    if ch.push.as_ref() == Some(&sub) {
                        ch.push = None;
                        let _ = relay.persist(&inner);
                    }
                }
            }
        }
        Err(webpush::SendError::Failed(why)) => {
            let line = format!("pushmfa-relay: web push to channel {channel:?} failed: {why}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
}

pub(crate) async fn vapid_key(State(relay): State<Arc<Relay>>) -> Json<VapidKey> {
    Json(VapidKey {
        public_key: relay.pusher.public_key(),
    })
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
        .pusher
        .check(&sub)
        .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    set_push(&relay, &channel, &token, Some(sub))
}

/// The device wants no more Web Push.
pub(crate) async fn delete_push(
    State(relay): State<Arc<Relay>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    set_push(&relay, &channel, &token, None)
}

fn set_push(
    relay: &Relay,
    channel: &str,
    token: &str,
    sub: Option<PushSubscription>,
) -> ApiResult<StatusCode> {
    let mut inner = relay.lock()?;
    authorize(relay, &inner, channel, Role::Device, token)?;
    if let Some(ch) = inner.channels.get_mut(channel) {
        ch.push = sub;
    }
    relay.persist(&inner)?;
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
    let mut inner = relay.lock()?;
    authorize(&relay, &inner, &channel, Role::Helper, &token)?;
    let removed = inner.channels.get_mut(&channel).and_then(|ch| {
        let removed = ch.pending.remove(&id);
        if removed.is_some() {
            ch.changes.send_modify(|n| *n += 1);
        }
        removed
    });
    match removed {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(err(StatusCode::NOT_FOUND, "no such challenge (expired?)")),
    }
}

fn unanswered(ch: &Channel) -> Vec<PendingChallenge> {
    let now = Instant::now();
    ch.pending
        .values()
        .filter(|p| !p.answered && p.expires > now)
        .map(|p| PendingChallenge {
            id: p.record.id.clone(),
            expires_in: p.expires.saturating_duration_since(now).as_secs(),
            challenge: p.record.challenge.clone(),
            signature: p.record.signature.clone(),
            refused: p.refused.clone(),
        })
        .collect()
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
    let deadline = Instant::now() + wait_for(&q);
    let mut rx = {
        let inner = relay.lock()?;
        authorize(&relay, &inner, &channel, Role::Device, &token)?;
        let Some(ch) = inner.channels.get(&channel) else {
            return Err(err(StatusCode::NOT_FOUND, "no such channel"));
        };
        let etag = relay.etag(*ch.changes.borrow());
        let now_pending = unanswered(ch);
        let changed = match &cursor {
            Some(c) => *c != etag,
            None => !now_pending.is_empty(),
        };
        if changed {
            return Ok(pending_list(etag, now_pending));
        }
        ch.changes.subscribe()
    };
    // Nothing new yet: wait for a change (or the deadline), then look again.
    let _slot = relay.poll_slot(&token)?;
    let _ = tokio::time::timeout_at(deadline.into(), rx.changed()).await;
    let inner = relay.lock()?;
    let Some(ch) = inner.channels.get(&channel) else {
        return Err(err(StatusCode::NOT_FOUND, "no such channel"));
    };
    let etag = relay.etag(*ch.changes.borrow());
    if cursor.as_ref() == Some(&etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok(pending_list(etag, unanswered(ch)))
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
    b64_field("response", &resp.response, None)?;
    b64_field("signature", &resp.signature, Some(64))?;
    let mut inner = relay.lock()?;
    authorize(&relay, &inner, &channel, Role::Device, &token)?;
    let (changes, pending) = live_challenge(&mut inner, &channel, &id)?;
    if pending.answered {
        return Err(err(StatusCode::CONFLICT, "challenge already answered"));
    }
    pending.answered = true;
    pending.refused = None;
    pending.response.send_replace(Some(resp));
    changes.send_modify(|n| *n += 1);
    Ok(StatusCode::NO_CONTENT)
}

/// A challenge that has not expired, with its channel.
fn live_challenge<'a>(
    inner: &'a mut Inner,
    channel: &str,
    id: &str,
) -> ApiResult<(&'a watch::Sender<u64>, &'a mut Pending)> {
    let ch = inner
        .channels
        .get_mut(channel)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such channel"))?;
    let pending = ch
        .pending
        .get_mut(id)
        .filter(|p| p.expires > Instant::now())
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such challenge (expired?)"))?;
    Ok((&ch.changes, pending))
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
    let mut inner = relay.lock()?;
    authorize(&relay, &inner, &channel, Role::Helper, &token)?;
    let (changes, pending) = live_challenge(&mut inner, &channel, &id)?;
    if !pending.answered {
        return Err(err(StatusCode::CONFLICT, "challenge is not answered"));
    }
    pending.answered = false;
    pending.refused = Some(refusal.reason);
    pending.response.send_replace(None);
    changes.send_modify(|n| *n += 1);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn wait_response(
    State(relay): State<Arc<Relay>>,
    Path((channel, id)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    let mut rx = {
        let inner = relay.lock()?;
        authorize(&relay, &inner, &channel, Role::Helper, &token)?;
        inner
            .channels
            .get(&channel)
            .and_then(|ch| ch.pending.get(&id))
            .filter(|p| p.expires > Instant::now())
            .map(|p| p.response.subscribe())
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such challenge (expired?)"))?
    };
    let _slot = relay.poll_slot(&token)?;
    let got = match tokio::time::timeout(wait_for(&q), rx.wait_for(Option::is_some)).await {
        Ok(Ok(v)) => v.clone(),
        _ => None,
    };
    match got {
        Some(r) => {
            // Delivered. The challenge stays, answered, until the helper
            // withdraws it (accepted) or refuses the answer (open again).
            if let Some(p) = relay
                .lock()?
                .channels
                .get_mut(&channel)
                .and_then(|ch| ch.pending.get_mut(&id))
            {
                p.response.send_replace(None);
            }
            Ok(Json(r).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
