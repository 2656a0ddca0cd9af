//! Enrollment slots: the helper opens one, a device registers its key in
//! it, the helper collects the registration and posts its verdict, which
//! the device waits for before it believes it is enrolled.

use crate::api::{
    DEFAULT_ENROLL_TTL, LongPoll, MAX_TTL, Relay, WaitQuery, b64_field, bearer, json_body, wait_for,
};
use crate::errors::{ApiResult, err};
use crate::store::{Changed, ChannelKeys, Opened, Slot, SlotCaps, now_ms};
use crate::tokens::{hash_token, token_matches};
use crate::wakeups::Topic;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pushmfa_protocol::relay_api::{
    CreateEnrollment, DeviceChannel, DeviceRegistration, EnrollmentCreated, EnrollmentOutcome,
    EnrollmentResult, MAX_OUTCOME_MESSAGE_LEN,
};
use std::sync::Arc;

pub(crate) async fn create(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    // Anonymous: limited per client address, so one address flooding
    // creates cannot stop other hosts from enrolling.
    let client = relay.client(&headers);
    relay.rate_anonymous("create", client).await?;
    let req: CreateEnrollment = if body.is_empty() {
        CreateEnrollment::default()
    } else {
        json_body(&body)?
    };
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_ENROLL_TTL).clamp(1, MAX_TTL);
    let id = relay.random_id(16)?;
    let token = relay.random_id(32)?;
    let slot = Slot {
        helper_token: hash_token(&token),
        expires_ms: now_ms() + ttl * 1000,
        client,
        device_token: None,
        result: None,
        outcome: None,
    };
    let per_address = relay.cfg.limits.open_enrollments_per_address;
    let caps = SlotCaps {
        per_address,
        total: relay.cfg.max_enrollments,
    };
    match relay.store.open_slot(&id, slot, caps).await? {
        Opened::Done => {}
        Opened::TooManyHere => {
            return Err(err(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{per_address} enrollments from your address are already open; finish or let them expire"
                ),
            )
            .retry_after(30));
        }
        Opened::Full => {
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many open enrollments; try again later",
            )
            .retry_after(30));
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentCreated {
            enrollment_id: id,
            helper_token: token,
            expires_in: ttl,
        }),
    ))
}

/// The device's registration. The relay cannot check the MAC (it never
/// sees the secret) and does not judge the key: the host does both.
pub(crate) async fn register_device(
    State(relay): State<Arc<Relay>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    relay
        .rate_anonymous("register", relay.client(&headers))
        .await?;
    relay.rate(&format!("enroll:{id}")).await?;
    let reg: DeviceRegistration = json_body(&body)?;
    b64_field("public_key", &reg.public_key, Some(65))?;
    b64_field("mac", &reg.mac, Some(32))?;
    if let Some(key) = &reg.encryption_key {
        b64_field("encryption_key", key, Some(65))?;
    }
    if let Some(passkey) = &reg.passkey
        && b64_field("passkey", passkey, None)?.len() > 2048
    {
        return Err(err(StatusCode::BAD_REQUEST, "passkey: at most 2048 bytes"));
    }
    if reg.device_name.is_empty() || reg.device_name.len() > 64 {
        return Err(err(StatusCode::BAD_REQUEST, "device_name: 1 to 64 bytes"));
    }
    let channel_id = relay.random_id(16)?;
    let device_token = relay.random_id(32)?;
    let helper_token = relay.random_id(32)?;
    let result = EnrollmentResult {
        registration: reg,
        channel_id: channel_id.clone(),
        helper_token: helper_token.clone(),
    };
    let keys = ChannelKeys {
        helper: hash_token(&helper_token),
        device: hash_token(&device_token),
    };
    match relay.store.register(&id, &result, keys).await? {
        Changed::Done => {}
        Changed::NotFound => {
            return Err(err(StatusCode::NOT_FOUND, "no such enrollment (expired?)"));
        }
        Changed::Conflict => {
            return Err(err(
                StatusCode::CONFLICT,
                "a device already registered for this enrollment",
            ));
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(DeviceChannel {
            channel_id,
            device_token,
        }),
    ))
}

/// Which token may use a slot's route.
#[derive(Clone, Copy)]
enum Party {
    Helper,
    Device,
}

/// Enrollment `id`, if it is open and `token` is `party`'s.
async fn slot(relay: &Relay, id: &str, party: Party, token: &str) -> ApiResult<Slot> {
    let slot = relay
        .store
        .slot(id)
        .await?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such enrollment (expired?)"))?;
    let expected = match party {
        Party::Helper => Some(&slot.helper_token),
        Party::Device => slot.device_token.as_ref(),
    };
    if !expected.is_some_and(|t| token_matches(t, token)) {
        return Err(err(StatusCode::UNAUTHORIZED, "wrong token"));
    }
    Ok(slot)
}

/// Long-polls slot `id` (after checking `party`'s token) until `pick`
/// finds a value in it; `None` when the wait ends first.
async fn wait_slot<T>(
    relay: &Relay,
    id: &str,
    party: Party,
    token: &str,
    q: &WaitQuery,
    pick: impl Fn(Slot) -> Option<T>,
) -> ApiResult<Option<T>> {
    relay.rate(token).await?;
    slot(relay, id, party, token).await?;
    let mut poll = LongPoll::start(relay, token, Topic::Enrollment(id.to_owned()), wait_for(q));
    loop {
        let open = relay
            .store
            .slot(id)
            .await?
            .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such enrollment (expired?)"))?;
        if let Some(found) = pick(open) {
            return Ok(Some(found));
        }
        if !poll.next().await? {
            return Ok(None);
        }
    }
}

/// The helper collects the registration (long-poll).
pub(crate) async fn wait_registration(
    State(relay): State<Arc<Relay>>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    drop(headers); // see LongPoll
    let found = wait_slot(&relay, &id, Party::Helper, &token, &q, |s| s.result).await?;
    Ok(match found {
        Some(r) => Json(r).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// The helper posts its signed verdict on the registration, once.
pub(crate) async fn post_outcome(
    State(relay): State<Arc<Relay>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers)?;
    relay.rate(&token).await?;
    let outcome: EnrollmentOutcome = json_body(&body)?;
    b64_field("signature", &outcome.signature, Some(64))?;
    if let Some(key) = &outcome.host_encryption_key {
        b64_field("host_encryption_key", key, Some(65))?;
    }
    if outcome.message.len() > MAX_OUTCOME_MESSAGE_LEN {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("message: at most {MAX_OUTCOME_MESSAGE_LEN} bytes"),
        ));
    }
    if slot(&relay, &id, Party::Helper, &token)
        .await?
        .device_token
        .is_none()
    {
        return Err(err(StatusCode::CONFLICT, "no device has registered yet"));
    }
    match relay.store.post_outcome(&id, &outcome).await? {
        Changed::Done => Ok(StatusCode::NO_CONTENT),
        Changed::NotFound => Err(err(StatusCode::NOT_FOUND, "no such enrollment (expired?)")),
        Changed::Conflict => Err(err(StatusCode::CONFLICT, "the outcome was already posted")),
    }
}

/// The registered device waits for the host's verdict; once delivered the
/// slot is done.
pub(crate) async fn wait_outcome(
    State(relay): State<Arc<Relay>>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    drop(headers); // see LongPoll
    let found = wait_slot(&relay, &id, Party::Device, &token, &q, |s| s.outcome).await?;
    Ok(match found {
        Some(o) => {
            relay.store.close_slot(&id).await?;
            Json(o).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
