//! Enrollment slots: the helper opens one, a device registers its key in
//! it, the helper collects the registration and posts its verdict, which
//! the device waits for before it believes it is enrolled.

use crate::{
    ApiResult, Channel, Inner, Relay, TokenHash, WaitQuery, b64_field, bearer, err, hash_token,
    json_body, now_unix, token_matches, wait_for,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pushmfa_protocol::relay_api::{
    CreateEnrollment, DeviceChannel, DeviceRegistration, EnrollmentCreated, EnrollmentOutcome,
    EnrollmentResult, MAX_OUTCOME_MESSAGE_LEN,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) const DEFAULT_ENROLL_TTL: u64 = 120;
pub(crate) const MAX_TTL: u64 = 600;
/// After a registration, time left for the host to post its verdict and
/// for the device to collect it, even if the slot was about to expire.
const OUTCOME_GRACE: Duration = Duration::from_secs(120);

pub(crate) struct Enrollment {
    helper_token: TokenHash,
    pub(crate) expires: Instant,
    /// The registered device's token (its new channel's), once registered.
    device_token: Option<TokenHash>,
    result: watch::Sender<Option<EnrollmentResult>>,
    outcome: watch::Sender<Option<EnrollmentOutcome>>,
    /// The address that opened the slot (slots per address are capped).
    client: std::net::IpAddr,
}

pub(crate) async fn create(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    // Anonymous: limited per client address, so one address flooding
    // creates cannot stop other hosts from enrolling.
    let client = relay.client(&headers);
    relay.rate_anonymous("create", client)?;
    let req: CreateEnrollment = if body.is_empty() {
        CreateEnrollment::default()
    } else {
        json_body(&body)?
    };
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_ENROLL_TTL).clamp(1, MAX_TTL);
    let id = relay.random_id(16)?;
    let token = relay.random_id(32)?;
    let mut inner = relay.lock()?;
    let now = Instant::now();
    let per_address = relay.cfg.limits.open_enrollments_per_address;
    let open_here = inner
        .enrollments
        .values()
        .filter(|e| e.client == client && e.expires > now)
        .count();
    if open_here >= per_address {
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{per_address} enrollments from your address are already open; finish or let them expire"
            ),
        )
        .retry_after(30));
    }
    if inner.enrollments.len() >= relay.cfg.max_enrollments {
        return Err(err(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open enrollments; try again later",
        )
        .retry_after(30));
    }
    inner.enrollments.insert(
        id.clone(),
        Enrollment {
            client,
            helper_token: hash_token(&token),
            expires: Instant::now() + Duration::from_secs(ttl),
            device_token: None,
            result: watch::channel(None).0,
            outcome: watch::channel(None).0,
        },
    );
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
    relay.rate_anonymous("register", relay.client(&headers))?;
    relay.rate(&format!("enroll:{id}"))?;
    let reg: DeviceRegistration = json_body(&body)?;
    b64_field("public_key", &reg.public_key, Some(65))?;
    b64_field("mac", &reg.mac, Some(32))?;
    if reg.device_name.is_empty() || reg.device_name.len() > 64 {
        return Err(err(StatusCode::BAD_REQUEST, "device_name: 1 to 64 bytes"));
    }
    let channel_id = relay.random_id(16)?;
    let device_token = relay.random_id(32)?;
    let helper_token = relay.random_id(32)?;
    let mut inner = relay.lock()?;
    let enrollment = match inner.enrollments.get_mut(&id) {
        Some(e) if e.expires > Instant::now() => e,
        _ => return Err(err(StatusCode::NOT_FOUND, "no such enrollment (expired?)")),
    };
    if enrollment.device_token.is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            "a device already registered for this enrollment",
        ));
    }
    enrollment.device_token = Some(hash_token(&device_token));
    enrollment.expires = enrollment.expires.max(Instant::now() + OUTCOME_GRACE);
    enrollment.result.send_replace(Some(EnrollmentResult {
        registration: reg,
        channel_id: channel_id.clone(),
        helper_token: helper_token.clone(),
    }));
    inner.channels.insert(
        channel_id.clone(),
        Channel::new(
            hash_token(&helper_token),
            hash_token(&device_token),
            now_unix(),
        ),
    );
    relay.persist(&inner)?;
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
fn slot<'a>(inner: &'a Inner, id: &str, party: Party, token: &str) -> ApiResult<&'a Enrollment> {
    let e = inner
        .enrollments
        .get(id)
        .filter(|e| e.expires > Instant::now())
        .ok_or_else(|| err(StatusCode::NOT_FOUND, "no such enrollment (expired?)"))?;
    let expected = match party {
        Party::Helper => Some(&e.helper_token),
        Party::Device => e.device_token.as_ref(),
    };
    if !expected.is_some_and(|t| token_matches(t, token)) {
        return Err(err(StatusCode::UNAUTHORIZED, "wrong token"));
    }
    Ok(e)
}

/// Subscribes `pick`'s watch of enrollment `id` after checking the token.
fn watch_slot<T>(
    relay: &Relay,
    id: &str,
    party: Party,
    token: &str,
    pick: impl Fn(&Enrollment) -> &watch::Sender<Option<T>>,
) -> ApiResult<watch::Receiver<Option<T>>> {
    let inner = relay.lock()?;
    Ok(pick(slot(&inner, id, party, token)?).subscribe())
}

/// Waits up to the query's `wait` for the watched value; 204 if none came.
async fn wait_value<T: Clone + serde::Serialize>(
    mut rx: watch::Receiver<Option<T>>,
    q: &WaitQuery,
) -> Option<T> {
    match tokio::time::timeout(wait_for(q), rx.wait_for(Option::is_some)).await {
        Ok(Ok(v)) => v.clone(),
        _ => None,
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
    relay.rate(&token)?;
    let rx = watch_slot(&relay, &id, Party::Helper, &token, |e| &e.result)?;
    let _slot = relay.poll_slot(&token)?;
    Ok(match wait_value(rx, &q).await {
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
    relay.rate(&token)?;
    let outcome: EnrollmentOutcome = json_body(&body)?;
    b64_field("signature", &outcome.signature, Some(64))?;
    if outcome.message.len() > MAX_OUTCOME_MESSAGE_LEN {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("message: at most {MAX_OUTCOME_MESSAGE_LEN} bytes"),
        ));
    }
    let tx = {
        let inner = relay.lock()?;
        let e = slot(&inner, &id, Party::Helper, &token)?;
        if e.device_token.is_none() {
            return Err(err(StatusCode::CONFLICT, "no device has registered yet"));
        }
        e.outcome.clone()
    };
    if tx.borrow().is_some() {
        return Err(err(StatusCode::CONFLICT, "the outcome was already posted"));
    }
    tx.send_replace(Some(outcome));
    Ok(StatusCode::NO_CONTENT)
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
    relay.rate(&token)?;
    let rx = watch_slot(&relay, &id, Party::Device, &token, |e| &e.outcome)?;
    let _slot = relay.poll_slot(&token)?;
    Ok(match wait_value(rx, &q).await {
        Some(o) => {
            relay.lock()?.enrollments.remove(&id);
            Json(o).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
