//! The helper's side of the relay API (docs/protocol.md), over one reused
//! HTTPS connection pool (reqwest with rustls), to one relay or several
//! instances of one (tried in order when a connection cannot be made).

use pushmfa_protocol::relay_api::*;
use reqwest::{Method, RequestBuilder, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Clone)]
pub struct RelayClient {
    http: reqwest::Client,
    /// Base URLs of the relay's instances, in the configured order.
    bases: Arc<[String]>,
    /// The one that last answered: tried first next time.
    current: Arc<AtomicUsize>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No connection could be made, or the relay did not answer in time:
    /// the only failure `failmode = "safe"` may treat as "relay down".
    #[error("relay unreachable: {0}")]
    Unreachable(String),
    /// The relay answered, but not with a usable HTTP answer.
    #[error("relay sent a broken answer: {0}")]
    Broken(String),
    #[error("relay answered {0}")]
    Status(String),
    #[error("relay sent a malformed answer: {0}")]
    Malformed(String),
}

/// Classifies a failed request: only a connection that cannot be made, or
/// a timeout, is "unreachable". Anything the relay did answer is not, and
/// neither is a certificate the helper does not trust: that is an attacker
/// on the path (or a wrong `ca_file`), never an outage `failmode = "safe"`
/// may wave through.
fn unreachable(e: reqwest::Error) -> RelayError {
    if is_tls_failure(&e) {
        return RelayError::Broken(format!("TLS: {}", tls_reason(&e)));
    }
    if e.is_connect() || e.is_timeout() {
        RelayError::Unreachable(e.to_string())
    } else {
        RelayError::Broken(e.to_string())
    }
}

/// Whether rustls refused the connection somewhere in `e`'s sources.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    tls_error(e).is_some()
}

/// The rustls error in `e`'s sources. hyper wraps it in an io::Error inside
/// another io::Error, and an io::Error's `source()` skips what it wraps, so
/// wrapped errors are looked into with `get_ref`.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// What went wrong with the relay's certificate, and the likely causes.
fn tls_reason(e: &(dyn std::error::Error + 'static)) -> String {
    match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) => format!(
            "{}: not trusted (someone on the path, or the relay changed keys)",
            o.0
        ),
        Some(t) => format!(
            "{t}: the relay's certificate is not trusted (someone on the path, or backend.ca_file does not hold its CA)"
        ),
        None => String::new(),
    }
}

impl RelayError {
    /// Whether the relay could not be reached at all (see `Unreachable`).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RelayError::Unreachable(_))
    }
}

/// Reads at most `cap` bytes of a body, chunk by chunk: a relay that sends
/// more is refused before it grows the helper (None), however long the
/// body is and whatever Content-Length says.
async fn capped_body(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, RelayError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Longest error body kept (only its start is shown in a log line).
const MAX_ERROR_BODY: usize = 1024;

async fn fail(resp: reqwest::Response) -> RelayError {
    let status = resp.status();
    let body = match capped_body(resp, MAX_ERROR_BODY).await {
        Ok(Some(b)) => String::from_utf8_lossy(&b).chars().take(200).collect(),
        Ok(None) => "(error body too large, not read)".to_owned(),
        Err(_) => String::new(),
    };
    RelayError::Status(format!(
        "{status} {}",
        pushmfa_protocol::text::sanitize(&body, false)
    ))
}

/// Reads a JSON body of at most MAX_BODY_LEN bytes.
async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, RelayError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_LEN as u64)
    {
        return Err(RelayError::Malformed("answer too large".into()));
    }
    let Some(bytes) = capped_body(resp, MAX_BODY_LEN).await? else {
        return Err(RelayError::Malformed("answer too large".into()));
    };
    serde_json::from_slice(&bytes).map_err(|e| RelayError::Malformed(e.to_string()))
}

impl RelayClient {
    /// A client for the relay at `bases` (one URL, or several instances
    /// of one relay sharing a store).
    /// `roots`: PEM certificates to trust instead of the built-in roots
    /// (see `pushmfa_config::trusted_roots`).
    /// `pins`: SHA-256 hashes of keys the relay's certificate must have
    /// (besides a chain to `roots`); empty: no pin.
    pub fn new(
        bases: &[String],
        timeout: Duration,
        roots: Option<&[u8]>,
        pins: &[[u8; 32]],
    ) -> Result<RelayClient, RelayError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90));
        if !pins.is_empty() {
            let tls = crate::tls_pin::pinned_config(roots, pins).map_err(RelayError::Broken)?;
            builder = builder.use_preconfigured_tls(tls);
        } else if let Some(pem) = roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| RelayError::Broken(format!("CA certificates: {e}")))?;
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(unreachable)?;
        let bases: Vec<String> = bases
            .iter()
            .map(|b| b.trim_end_matches('/').to_owned())
            .collect();
        if bases.is_empty() {
            return Err(RelayError::Unreachable("no relay URL configured".into()));
        }
        Ok(RelayClient {
            http,
            bases: bases.into(),
            current: Arc::new(AtomicUsize::new(0)),
            timeout,
        })
    }

    /// The instance that last answered (the first one at start).
    pub fn base(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Sends `method path` to the current instance; when no connection can
    /// be made to it (so nothing was sent), to the next one, in order. Any
    /// other failure, a timeout included, is final: the request may have
    /// arrived, and sending it twice could count twice.
    async fn send(
        &self,
        method: Method,
        path: &str,
        finish: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<reqwest::Response, RelayError> {
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let req = finish(
                self.http
                    .request(method.clone(), format!("{}{path}", self.bases[i])),
            );
            match req.send().await {
                Ok(resp) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(resp);
                }
                // Nothing was sent (a refused certificate included: the
                // next instance may be reached without the attacker).
                Err(e) if e.is_connect() => last = Some(e),
                Err(e) => return Err(unreachable(e)),
            }
        }
        Err(last.map_or_else(
            || RelayError::Unreachable("no relay URL".into()),
            unreachable,
        ))
    }

    pub async fn create_enrollment(&self, ttl_secs: u64) -> Result<EnrollmentCreated, RelayError> {
        let body = CreateEnrollment {
            ttl_secs: Some(ttl_secs),
        };
        let resp = self
            .send(Method::POST, "/v1/enrollments", |r| {
                r.timeout(self.timeout).json(&body)
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(fail(resp).await);
        }
        json(resp).await
    }

    /// Waits up to `wait` for the device; None if it has not registered yet.
    pub async fn wait_enrollment(
        &self,
        id: &str,
        token: &str,
        wait: Duration,
    ) -> Result<Option<EnrollmentResult>, RelayError> {
        self.long_poll(&format!("/v1/enrollments/{id}"), token, wait)
            .await
    }

    pub async fn post_challenge(
        &self,
        channel: &str,
        token: &str,
        body: &PostChallenge,
    ) -> Result<(), RelayError> {
        let path = format!("/v1/channels/{channel}/challenges");
        self.post(&path, token, body, StatusCode::CREATED).await
    }

    /// Refuses the answer collected on `channel`: the relay opens the
    /// challenge to answers again and shows devices `reason`.
    pub async fn refuse_answer(
        &self,
        channel: &str,
        token: &str,
        id: &str,
        reason: &str,
    ) -> Result<(), RelayError> {
        let path = format!("/v1/channels/{channel}/challenges/{id}/refusal");
        let body = AnswerRefused {
            reason: reason.chars().take(200).collect(),
        };
        self.post(&path, token, &body, StatusCode::NO_CONTENT).await
    }

    /// Tells the registered device what the host made of its registration.
    pub async fn post_enrollment_outcome(
        &self,
        id: &str,
        token: &str,
        body: &EnrollmentOutcome,
    ) -> Result<(), RelayError> {
        let path = format!("/v1/enrollments/{id}/outcome");
        self.post(&path, token, body, StatusCode::NO_CONTENT).await
    }

    async fn post<T: serde::Serialize>(
        &self,
        path: &str,
        token: &str,
        body: &T,
        expected: StatusCode,
    ) -> Result<(), RelayError> {
        let resp = self
            .send(Method::POST, path, |r| {
                r.bearer_auth(token).timeout(self.timeout).json(body)
            })
            .await?;
        if resp.status() == expected {
            Ok(())
        } else {
            Err(fail(resp).await)
        }
    }

    /// Waits up to `wait` for the device's answer; None if there is none yet.
    pub async fn wait_response(
        &self,
        channel: &str,
        token: &str,
        id: &str,
        wait: Duration,
    ) -> Result<Option<ChallengeResponse>, RelayError> {
        let path = format!("/v1/channels/{channel}/challenges/{id}/response");
        self.long_poll(&path, token, wait).await
    }

    /// GET `path?wait=`: the relay answers 200 with a body as soon as there
    /// is one, or 204 when `wait` ran out.
    async fn long_poll<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        wait: Duration,
    ) -> Result<Option<T>, RelayError> {
        let path = format!("{path}?wait={}", wait.as_secs());
        let resp = self
            .send(Method::GET, &path, |r| {
                r.bearer_auth(token).timeout(wait + self.timeout)
            })
            .await?;
        match resp.status() {
            StatusCode::OK => json(resp).await.map(Some),
            StatusCode::NO_CONTENT => Ok(None),
            _ => Err(fail(resp).await),
        }
    }

    pub async fn delete_channel(&self, channel: &str, token: &str) -> Result<(), RelayError> {
        self.delete(&format!("/v1/channels/{channel}"), token).await
    }

    /// Takes a pending challenge back; one already gone counts as done.
    pub async fn withdraw_challenge(
        &self,
        channel: &str,
        token: &str,
        id: &str,
    ) -> Result<(), RelayError> {
        self.delete(&format!("/v1/channels/{channel}/challenges/{id}"), token)
            .await
    }

    /// DELETE: 2xx or 404 (already gone) is success.
    async fn delete(&self, path: &str, token: &str) -> Result<(), RelayError> {
        let resp = self
            .send(Method::DELETE, path, |r| {
                r.bearer_auth(token).timeout(self.timeout)
            })
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(fail(resp).await)
        }
    }
}
